r"""Latent stochastic differential equations (Li, Wong, Chen & Duvenaud, 2020).

A latent path $z(t) \in \mathbb{R}^D$ explains irregularly sampled, partially observed
data $x_k \in \mathbb{R}^X$ at the times $t_0 < \dots < t_{T-1}$. The generative model is the
*prior* SDE with a Gaussian observation model,

$$
z(t_0) \sim p(z_0) = \mathcal N(\mu_p, \mathrm{diag}\,e^{2 s_p}), \qquad
dz = h_\theta(z)\,dt + \sigma(z)\,dW_t, \qquad
x_k \sim \mathcal N\big(g(z(t_k)), \mathrm{diag}\,s_x^2\big),
$$

and the approximate posterior is the *posterior* SDE with the same diagonal diffusion,

$$
z(t_0) \sim q(z_0 \mid x) = \mathcal N(m, \mathrm{diag}\,e^{v}), \qquad
dz = f_\phi\big(z, c(t)\big)\,dt + \sigma(z)\,dW_t,
$$

where a GRU run backwards in time over the observations gives $(m, v)$ and a context
$c_k$ per observation time ($c_k$ summarises $x_k, \dots, x_{T-1}$); between observations
the posterior drift sees the context of the observations still ahead,
$c(t) = c_{i(t)}$ with $i(t) = \min(\#\{k : t_k \le t\}, T - 1)$.

Because both SDEs share $\sigma$, Girsanov's theorem gives the KL divergence between the two
path measures as a time integral along the posterior path,

$$
\mathrm{KL}_{\text{path}} = \mathbb E_q \int_{t_0}^{t_{T-1}} \tfrac12 \lVert u(t, z)\rVert^2
\,dt, \qquad u = \frac{f_\phi - h_\theta}{\sigma} \ \text{(elementwise)},
$$

in the Itô and in the Stratonovich sense alike (the Itô--Stratonovich drift correction is
the same for both SDEs and cancels in $f - h$). It is accumulated by the solver as one
extra state: the posterior is solved on the concatenated array $y = [z, \kappa] \in
\mathbb{R}^{D+1}$ with $d\kappa = \tfrac12 \lVert u \rVert^2 dt$, $\kappa(t_0) = 0$, as a
`NeuralSDE` with general noise: the diffusion is the $(D+1) \times D$ matrix
$[\mathrm{diag}\,\sigma; 0]$, driven by the same $D$-dimensional virtual Brownian tree as
the prior (so one key gives one Brownian path $W$ to both SDEs). With the initial term

$$
\mathrm{KL}_0 = \sum_i \Big[ s_{p,i} - \tfrac12 v_i
+ \frac{e^{v_i} + (m_i - \mu_{p,i})^2}{2 e^{2 s_{p,i}}} - \tfrac12 \Big],
$$

the negative evidence lower bound, estimated with $S$ posterior samples (each its own
$z_0$ and Brownian path), is

$$
-\mathrm{ELBO} = \frac1S \sum_{s=1}^S \Big[ -\sum_{k, j} M_{kj}
\log \mathcal N\big(x_{kj};\, g(z^{(s)}(t_k))_j,\, s_{x,j}^2\big)
+ \kappa^{(s)}(t_{T-1}) \Big] + \mathrm{KL}_0,
$$

with the observation mask $M \in \{0, 1\}^{T \times X}$. Padding is harmless: a fully
masked time step leaves the encoder's state unchanged, and from the last observed time
$t_\text{last}$ the posterior drift *is* the prior drift ($u = 0$: no data to explain
there, so the padded stretch adds nothing to the KL).
"""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray, Real

from .._helpers import check_int, check_number
from .._model import AbstractModel
from .._solve import _check_ts
from ._node import get_activation
from ._sde import NeuralSDE, SDESolveConfig

__all__ = ["LatentSDE"]

_DIFFUSIONS = ("mlp", "constant")
_DECODERS = ("linear", "mlp")


def _choice(value: Any, name: str, known: tuple[str, ...]) -> str:
    if value not in known:
        raise ValueError(f"argument {name!r} must be one of {known}; got {value!r}")
    return value


def _is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class LatentSDE(AbstractModel):
    r"""A latent SDE: prior and posterior SDEs with one diagonal diffusion, a backward GRU
    encoder and a Gaussian decoder, trained by the negative ELBO (see the module docstring for
    the mathematics).

    Args:
        data_dim: $X$, the dimension of one observation.
        latent_dim: $D$, the dimension of the latent state.
        context_dim: $C$, the dimension of the encoder's context $c_k$.
        hidden_dim: the GRU's hidden size.
        width: hidden width of the drift, diffusion and decoder MLPs.
        depth: hidden layers of the drift MLPs (and of an MLP decoder).
        activation: the MLPs' activation (`ACTIVATIONS`).
        diffusion: ``mlp``: $\sigma_i(z) = \mathrm{softplus}(g_i(z_i) + \beta)$ with one
            small MLP $g_i: \mathbb{R} \to \mathbb{R}$ per coordinate (diagonal, and
            commutative noise, as Milstein solvers need) and $\beta$ chosen so that
            $g_i = 0$ gives ``sigma``; ``constant``: $\sigma = e^{\ell}$ with a trained
            $\ell \in \mathbb{R}^D$ starting at $\log$ ``sigma``.
        sigma: the diffusion's starting scale (> 0).
        decoder: ``linear`` ($g(z) = W z + b$) or ``mlp``.
        obs_std: the observation noise $s_x$ (> 0), or its starting value when learned.
        learn_obs_std: train $\log s_x \in \mathbb{R}^X$ (else $s_x$ = ``obs_std`` is fixed).
        learn_prior: train the prior's mean $\mu_p$ and log-std $s_p$ (starting at
            $\mathcal N(0, I)$; else $p(z_0) = \mathcal N(0, I)$).
        sde_type: ``ito`` or ``stratonovich``, the calculus of both SDEs.
        solve: the solver, fixed step, adjoint and Brownian resolution (`SDESolveConfig`;
            default Itô Euler--Maruyama, recorded on the model).
        key: initialises the layers.

    The prior drift $h_\theta(z)$ is autonomous (an MLP of $z$), so the prior extrapolates
    past the data; the posterior drift is an MLP of $[z, c(t)]$. Methods act on one
    sequence (``vmap`` for a batch): `negative_elbo`, `elbo_terms`, `encode`, `posterior_path`,
    `prior_path`, `sample_prior`, `reconstruct`, `kl0`, `decode`.
    """

    encoder: eqx.nn.GRUCell
    context_layer: eqx.nn.Linear
    initial_layer: eqx.nn.Linear
    prior_drift: eqx.nn.MLP
    posterior_drift: eqx.nn.MLP
    diffusion_net: eqx.nn.MLP | None
    log_sigma: Float[Array, " d"] | None
    decoder_net: eqx.nn.Linear | eqx.nn.MLP
    log_obs_std: Float[Array, " x"] | None
    prior_mean: Float[Array, " d"] | None
    prior_logstd: Float[Array, " d"] | None
    data_dim: int = eqx.field(static=True)
    latent_dim: int = eqx.field(static=True)
    context_dim: int = eqx.field(static=True)
    hidden_dim: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    diffusion: str = eqx.field(static=True)
    sigma: float = eqx.field(static=True)
    decoder: str = eqx.field(static=True)
    obs_std: float = eqx.field(static=True)
    learn_obs_std: bool = eqx.field(static=True)
    learn_prior: bool = eqx.field(static=True)
    sde_type: str = eqx.field(static=True)
    solve: SDESolveConfig = eqx.field(static=True)

    def __init__(
        self,
        data_dim: int,
        latent_dim: int,
        *,
        context_dim: int = 8,
        hidden_dim: int = 16,
        width: int = 32,
        depth: int = 1,
        activation: str = "softplus",
        diffusion: str = "mlp",
        sigma: float = 0.5,
        decoder: str = "linear",
        obs_std: float = 0.1,
        learn_obs_std: bool = False,
        learn_prior: bool = False,
        sde_type: str = "ito",
        solve: SDESolveConfig = SDESolveConfig(),  # noqa: B008 (frozen, hashable)
        key: PRNGKeyArray,
    ):
        self.data_dim = check_int(data_dim, "data_dim")
        self.latent_dim = check_int(latent_dim, "latent_dim")
        self.context_dim = check_int(context_dim, "context_dim")
        self.hidden_dim = check_int(hidden_dim, "hidden_dim")
        self.width = check_int(width, "width")
        self.depth = check_int(depth, "depth", 0)
        act = get_activation(activation)
        self.activation = activation
        self.diffusion = _choice(diffusion, "diffusion", _DIFFUSIONS)
        self.decoder = _choice(decoder, "decoder", _DECODERS)
        for name, value in (("sigma", sigma), ("obs_std", obs_std)):
            if not check_number(value, name) > 0 or not math.isfinite(value):
                raise ValueError(f"argument {name!r} must be a finite number > 0; got {value!r}")
        self.sigma, self.obs_std = float(sigma), float(obs_std)
        for name, value in (("learn_obs_std", learn_obs_std), ("learn_prior", learn_prior)):
            if not isinstance(value, bool):
                raise TypeError(f"argument {name!r} must be a bool; got {value!r}")
        self.learn_obs_std, self.learn_prior = learn_obs_std, learn_prior
        if not isinstance(solve, SDESolveConfig):
            raise TypeError(f"argument 'solve' must be an SDESolveConfig; got {solve!r}")
        # NeuralSDE checks the calculus and the solver, and names the default solver
        self.solve = self._sde(lambda t, y, a: y, lambda t, y, a: y, 1, sde_type, solve).solve
        self.sde_type = sde_type

        d, x, c, hid = self.latent_dim, self.data_dim, self.context_dim, self.hidden_dim
        keys = jax.random.split(key, 7)
        self.encoder = eqx.nn.GRUCell(2 * x + 1, hid, key=keys[0])
        self.context_layer = eqx.nn.Linear(hid, c, key=keys[1])
        self.initial_layer = eqx.nn.Linear(hid, 2 * d, key=keys[2])
        self.prior_drift = eqx.nn.MLP(d, d, self.width, self.depth, activation=act, key=keys[3])
        self.posterior_drift = eqx.nn.MLP(
            d + c, d, self.width, self.depth, activation=act, key=keys[4]
        )
        dtype = self.initial_layer.weight.dtype
        if self.diffusion == "mlp":
            make = lambda k: eqx.nn.MLP(1, 1, self.width, 1, activation=act, key=k)  # noqa: E731
            self.diffusion_net = eqx.filter_vmap(make)(jax.random.split(keys[5], d))
            self.log_sigma = None
        else:
            self.diffusion_net = None
            self.log_sigma = jnp.full((d,), math.log(self.sigma), dtype)
        if self.decoder == "linear":
            self.decoder_net = eqx.nn.Linear(d, x, key=keys[6])
        else:
            self.decoder_net = eqx.nn.MLP(d, x, self.width, self.depth, activation=act, key=keys[6])
        self.log_obs_std = jnp.full((x,), math.log(self.obs_std), dtype) if learn_obs_std else None
        self.prior_mean = jnp.zeros((d,), dtype) if learn_prior else None
        self.prior_logstd = jnp.zeros((d,), dtype) if learn_prior else None

    # ------------------------------------------------------------------ the pieces

    @staticmethod
    def _sde(drift, diffusion, dim, sde_type, solve, noise_dim=None) -> NeuralSDE:
        noise = "diagonal" if noise_dim is None else "general"
        return NeuralSDE(
            drift, diffusion, dim, noise=noise, noise_dim=noise_dim, sde_type=sde_type, solve=solve
        )

    def sigma_of(self, z: Float[Array, " d"]) -> Float[Array, " d"]:
        r"""The diagonal diffusion $\sigma(z) \in \mathbb{R}^D$ (positive)."""
        if self.diffusion == "constant":
            return jnp.exp(self.log_sigma) * jnp.ones_like(z)
        shift = _inverse_softplus(self.sigma)
        g = eqx.filter_vmap(lambda net, zi: net(zi[None])[0])(self.diffusion_net, z)
        return jax.nn.softplus(g + shift)

    def decode(self, zs: Float[Array, "T d"]) -> Float[Array, "T x"]:
        """The observation means $g(z(t_k))$ of a latent path."""
        return jax.vmap(self.decoder_net)(zs)

    def observation_std(self) -> Float[Array, " x"]:
        """The observation noise $s_x$ (learned or fixed)."""
        if self.log_obs_std is None:
            return jnp.full((self.data_dim,), self.obs_std)
        return jnp.exp(self.log_obs_std)

    def _prior_moments(self) -> tuple[Array, Array]:
        """The prior's mean and log-variance."""
        if self.prior_mean is None:
            zeros = jnp.zeros((self.latent_dim,))
            return zeros, zeros
        return self.prior_mean, 2 * self.prior_logstd

    def kl0(self, mean: Float[Array, " d"], logvar: Float[Array, " d"]) -> Float[Array, ""]:
        r"""$\mathrm{KL}\big(\mathcal N(m, \mathrm{diag}\,e^{v}) \,\|\, p(z_0)\big) =
        \sum_i \big[\tfrac12(v_{p,i} - v_i) + \frac{e^{v_i} + (m_i - \mu_{p,i})^2}{2
        e^{v_{p,i}}} - \tfrac12\big]$ with $v_p = 2 s_p$ the prior's log-variance."""
        prior_mean, prior_logvar = self._prior_moments()
        return 0.5 * jnp.sum(
            prior_logvar
            - logvar
            + (jnp.exp(logvar) + (mean - prior_mean) ** 2) * jnp.exp(-prior_logvar)
            - 1.0
        )

    def encode(
        self,
        ts: Real[ArrayLike, " T"],
        xs: Float[ArrayLike, "T x"],
        mask: Bool[ArrayLike, "T x"] | Float[ArrayLike, "T x"] | None = None,
    ) -> tuple[Float[Array, "T c"], Float[Array, " d"], Float[Array, " d"]]:
        r"""The contexts $c_k$ and the mean $m$ and log-variance $v$ of $q(z_0 \mid x)$.

        A GRU runs from $t_{T-1}$ back to $t_0$ on $[M_k \odot x_k, M_k, t_k]$ (missing
        values enter as zeros, flagged by the mask); a step with no observed value leaves
        its state unchanged. Its state after step $k$ gives $c_k$ (a linear layer), and
        after step 0 gives $(m, v)$ (another)."""
        ts, xs, mask = self._check_data(ts, xs, mask)
        return self._encode(ts, xs, mask)

    def _encode(self, ts, xs, mask):
        observed = jnp.any(mask > 0, axis=1)

        def step(h, inputs):
            x, m, t, seen = inputs
            new = self.encoder(jnp.concatenate([x, m, t[None]]), h)
            h = jnp.where(seen, new, h)
            return h, h

        h0 = jnp.zeros((self.hidden_dim,), xs.dtype)
        inputs = (xs[::-1], mask[::-1], ts[::-1], observed[::-1])
        last, hs = jax.lax.scan(step, h0, inputs)
        context = jax.vmap(self.context_layer)(hs[::-1])
        mean, logvar = jnp.split(self.initial_layer(last), 2)
        return context, mean, logvar

    # ------------------------------------------------------------------ the two SDEs

    def _prior_vf(self, t, z, args):
        return self.prior_drift(z)

    def _diffusion_vf(self, t, z, args):
        return self.sigma_of(z)

    def _posterior_vf(self, t, y, args):
        ts, context, t_last = args
        z = y[: self.latent_dim]
        h = self.prior_drift(z)
        i = jnp.minimum(jnp.searchsorted(ts, t, side="right"), ts.shape[0] - 1)
        f = self.posterior_drift(jnp.concatenate([z, context[i]]))
        f = jnp.where(t < t_last, f, h)
        u = (f - h) / self.sigma_of(z)
        return jnp.concatenate([f, 0.5 * jnp.sum(u**2)[None]])

    def _posterior_diffusion(self, t, y, args):
        s = self.sigma_of(y[: self.latent_dim])
        return jnp.concatenate([jnp.diag(s), jnp.zeros((1, self.latent_dim), s.dtype)])

    def posterior_path(
        self,
        ts: Real[ArrayLike, " T"],
        z0: Float[Array, " d"],
        context: Float[Array, "T c"],
        *,
        t_last: Real[ArrayLike, ""] | None = None,
        key: PRNGKeyArray,
    ) -> tuple[Float[Array, "T d"], Float[Array, " T"]]:
        r"""One posterior path $z(t_k)$ from ``z0`` and the KL accumulated so far,
        $\kappa(t_k) = \int_{t_0}^{t_k} \tfrac12 \lVert u \rVert^2 dt$ (so ``kl[-1]`` is
        $\mathrm{KL}_\text{path}$ for this Brownian path), with the contexts ``context``
        (one per time of ``ts``) and the Brownian path of ``key``. From ``t_last`` on
        (default ``ts[-1]``) the posterior drift is the prior drift."""
        ts = self._check_ts(ts)
        z0 = self._check_vector(z0, "z0")
        context = jnp.asarray(context)
        if context.shape != (ts.shape[0], self.context_dim):
            raise ValueError(
                f"LatentSDE: argument 'context' must have shape [{ts.shape[0]}, "
                f"{self.context_dim}]; got {context.shape}"
            )
        t_last = ts[-1] if t_last is None else jnp.asarray(t_last, ts.dtype)
        return self._posterior(ts, z0, context, t_last, key)

    def _posterior(self, ts, z0, context, t_last, key):
        sde = self._sde(
            self._posterior_vf,
            self._posterior_diffusion,
            self.latent_dim + 1,
            self.sde_type,
            self.solve,
            noise_dim=self.latent_dim,
        )
        y0 = jnp.concatenate([z0, jnp.zeros((1,), z0.dtype)])
        ys = sde(y0, ts, key, (ts.astype(z0.dtype), context, t_last))
        return ys[:, : self.latent_dim], ys[:, -1]

    def prior_path(
        self, ts: Real[ArrayLike, " T"], z0: Float[Array, " d"], *, key: PRNGKeyArray
    ) -> Float[Array, "T d"]:
        r"""One prior path $z(t_k)$, $dz = h_\theta(z)\,dt + \sigma(z)\,dW$, from ``z0``
        with the Brownian path of ``key`` (the same $W$ `posterior_path` uses for ``key``)."""
        ts = self._check_ts(ts)
        z0 = self._check_vector(z0, "z0")
        sde = self._sde(
            self._prior_vf, self._diffusion_vf, self.latent_dim, self.sde_type, self.solve
        )
        return sde(z0, ts, key)

    def sample_prior(
        self, ts: Real[ArrayLike, " T"], *, key: PRNGKeyArray
    ) -> tuple[Float[Array, "T d"], Float[Array, "T x"]]:
        r"""A draw from the generative model at the times ``ts``: $z_0 \sim p(z_0)$, a prior
        path, and its observation means $g(z(t_k))$ (add $s_x \epsilon$ for noisy data).
        Returns ``(zs, means)``."""
        ts = self._check_ts(ts)
        k_z0, k_w = jax.random.split(key)
        mean, logvar = self._prior_moments()
        z0 = mean + jnp.exp(0.5 * logvar) * jax.random.normal(k_z0, mean.shape, mean.dtype)
        zs = self.prior_path(ts, z0, key=k_w)
        return zs, self.decode(zs)

    # ------------------------------------------------------------------ the bound

    def elbo_terms(
        self,
        ts: Real[ArrayLike, " T"],
        xs: Float[ArrayLike, "T x"],
        mask: Bool[ArrayLike, "T x"] | Float[ArrayLike, "T x"] | None = None,
        *,
        samples: int = 1,
        key: PRNGKeyArray,
    ) -> dict[str, Float[Array, ""]]:
        r"""The terms of the negative ELBO of one sequence: ``nll`` (the masked negative
        Gaussian log-likelihood, averaged over the ``samples`` posterior draws), ``kl0``,
        ``kl_path`` (averaged likewise) and their sum ``loss``. Draw $s$ uses
        ``jax.random.split(key, samples)[s]``, split once more into the key of $z_0$ and
        that of the Brownian path."""
        ts, xs, mask = self._check_data(ts, xs, mask)
        samples = check_int(samples, "samples")
        context, mean, logvar = self._encode(ts, xs, mask)
        observed = jnp.any(mask > 0, axis=1)
        t_last = jnp.max(jnp.where(observed, ts, ts[0]))
        std = self.observation_std().astype(xs.dtype)

        def one(k):
            k_z0, k_w = jax.random.split(k)
            z0 = mean + jnp.exp(0.5 * logvar) * jax.random.normal(k_z0, mean.shape, mean.dtype)
            zs, kl = self._posterior(ts, z0, context, t_last, k_w)
            r = (xs - self.decode(zs)) / std
            logp = -0.5 * r**2 - jnp.log(std) - 0.5 * math.log(2 * math.pi)
            return -jnp.sum(mask * logp), kl[-1]

        keys = jax.random.split(key, samples)
        if samples == 1:  # the same draw, without batching the solve (cheaper to compile)
            nll, kl_path = jax.tree_util.tree_map(lambda a: a[None], one(keys[0]))
        else:
            nll, kl_path = jax.vmap(one)(keys)
        terms = {"nll": jnp.mean(nll), "kl0": self.kl0(mean, logvar), "kl_path": jnp.mean(kl_path)}
        terms["loss"] = terms["nll"] + terms["kl0"] + terms["kl_path"]
        return terms

    def negative_elbo(
        self,
        ts: Real[ArrayLike, " T"],
        xs: Float[ArrayLike, "T x"],
        mask: Bool[ArrayLike, "T x"] | Float[ArrayLike, "T x"] | None = None,
        *,
        samples: int = 1,
        key: PRNGKeyArray,
    ) -> Float[Array, ""]:
        r"""The **negative** ELBO of one sequence (a loss to minimise):
        $-\mathbb E_q[\log p(x \mid z)] + \mathrm{KL}_0 + \mathrm{KL}_\text{path}$, a
        Monte-Carlo estimate over ``samples`` posterior draws (`elbo_terms` ``["loss"]``).

        ``ts [T]`` strictly increasing, ``xs [T, X]``, ``mask [T, X]`` (bool or 0/1; None:
        all observed; values where the mask is 0 are ignored and may be NaN)."""
        return self.elbo_terms(ts, xs, mask, samples=samples, key=key)["loss"]

    def reconstruct(
        self,
        ts: Real[ArrayLike, " T"],
        xs: Float[ArrayLike, "T x"],
        mask: Bool[ArrayLike, "T x"] | Float[ArrayLike, "T x"] | None = None,
        *,
        key: PRNGKeyArray,
    ) -> tuple[Float[Array, "T d"], Float[Array, "T x"]]:
        """One posterior draw given the data: ``(zs, means)``, the latent path and its
        observation means at ``ts`` (the keys are used as in `elbo_terms` with one sample)."""
        ts, xs, mask = self._check_data(ts, xs, mask)
        context, mean, logvar = self._encode(ts, xs, mask)
        t_last = jnp.max(jnp.where(jnp.any(mask > 0, axis=1), ts, ts[0]))
        k_z0, k_w = jax.random.split(jax.random.split(key, 1)[0])
        z0 = mean + jnp.exp(0.5 * logvar) * jax.random.normal(k_z0, mean.shape, mean.dtype)
        zs, _ = self._posterior(ts, z0, context, t_last, k_w)
        return zs, self.decode(zs)

    # ------------------------------------------------------------------ checks

    def _check_ts(self, ts: Any) -> Array:
        if np.ndim(ts) != 1 or np.shape(ts)[0] < 2:
            raise ValueError(
                f"LatentSDE: argument 'ts' must be [T] with T >= 2; got {np.shape(ts)}"
            )
        return _check_ts(ts, None)[0]  # `solve`'s checks: real, finite, increasing

    def _check_vector(self, z: Any, name: str) -> Array:
        z = jnp.asarray(z)
        if z.shape != (self.latent_dim,):
            raise ValueError(
                f"LatentSDE: argument {name!r} must have shape [{self.latent_dim}]; got {z.shape}"
            )
        return z

    def _check_data(self, ts: Any, xs: Any, mask: Any) -> tuple[Array, Array, Array]:
        ts = self._check_ts(ts)
        xs = jnp.asarray(xs)
        expected = (ts.shape[0], self.data_dim)
        if xs.shape != expected:
            raise ValueError(
                f"LatentSDE: argument 'xs' must have shape [T={expected[0]}, X={expected[1]}]; "
                f"got {xs.shape}"
            )
        if not jnp.issubdtype(xs.dtype, jnp.floating):
            xs = xs.astype(jnp.result_type(float))
        ts = ts.astype(xs.dtype)  # one floating dtype for the encoder's inputs
        if mask is None:
            mask = jnp.ones(xs.shape, xs.dtype)
        else:
            mask = jnp.asarray(mask)
            if mask.shape != xs.shape:
                raise ValueError(
                    f"LatentSDE: argument 'mask' must have the shape of xs {xs.shape}; got "
                    f"{mask.shape}"
                )
            if _is_concrete(mask) and not np.all(np.isin(np.asarray(mask), (0, 1))):
                raise ValueError("LatentSDE: argument 'mask' must hold only 0/1 (or bools)")
            mask = mask.astype(xs.dtype)
        if _is_concrete(xs) and _is_concrete(mask):
            bad = ~np.isfinite(np.asarray(xs)) & (np.asarray(mask) > 0)
            if np.any(bad):
                raise ValueError(
                    f"LatentSDE: argument 'xs' has NaN or inf at {int(bad.sum())} observed "
                    "entries (mask them out with 0 in 'mask')"
                )
        # missing entries enter as zeros (no NaN reaches the encoder or the likelihood)
        xs = jnp.where(mask > 0, xs, 0.0)
        return ts, xs, mask
