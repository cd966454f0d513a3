r"""The latent ODE (Rubanova, Chen & Duvenaud, 2019): a variational autoencoder whose latent
state follows a neural ODE, for irregularly sampled time series.

**Generative model.** A latent initial state at $t_0$ and a deterministic latent path,

$$
z_0 \sim \mathcal N(0, I), \qquad \dot z = f_\theta(z), \qquad
x_i \sim \mathcal N\big(g(z(t_i)),\, \mathrm{diag}\, s^2\big),
$$

with a linear or MLP readout $g$ and an observation noise $s$ (fixed, or learned).

**Inference.** An `ODERNN` encoder runs *backwards* in time over the observations (from the
last to the first, its hidden state following its own ODE between them and then on to
$t_0$), and a linear layer of its final state gives the mean $m$ and log-variance $v$ of
$q(z_0 \mid x) = \mathcal N(m, \mathrm{diag}\, e^{v})$. A sample
$z_0 = m + e^{v/2} \odot \varepsilon$, $\varepsilon \sim \mathcal N(0, I)$ drawn from an
explicit ``key`` (the reparameterisation trick), is decoded by solving the ODE at the
requested times: the observed times (interpolation) or later ones (extrapolation).

**Loss.** The negative evidence lower bound of one sequence, with the mask
$M \in \{0, 1\}^{T \times X}$ and $S$ posterior samples,

$$
-\mathrm{ELBO} = \frac1S \sum_{s=1}^S \Big[-\sum_{i,j} M_{ij}
\log \mathcal N\big(x_{ij};\, g(z^{(s)}(t_i))_j,\, s_j^2\big)\Big]
+ \mathrm{KL}\big(q(z_0 \mid x) \,\|\, \mathcal N(0, I)\big),
\quad \mathrm{KL} = \tfrac12 \sum_k \big(e^{v_k} + m_k^2 - 1 - v_k\big).
$$

Masks and padding work as in `ODERNN`: fully masked steps are skipped by the encoder and the
decoder (and contribute nothing), so padded sequences give the results of unpadded ones;
``jax.vmap`` maps a padded batch. Each interval between consecutive times is one
`SolveConfig.solve` on the unit interval (see `ODERNN`: a fixed ``dt0`` is a fraction of
each interval).
"""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from .._helpers import check_int, check_number
from .._model import AbstractModel
from .._solve import SolveConfig
from ._node import _check_solve, get_activation
from ._recurrent import ODERNN, Mask, _first_time, _is_concrete, _prepare, _scan, _start

__all__ = ["LatentODE"]

_DECODERS = ("linear", "mlp")


class LatentODE(AbstractModel):
    r"""The latent ODE of Rubanova, Chen & Duvenaud (2019): an ODE-RNN encoder run backwards
    in time, a Gaussian $q(z_0 \mid x)$, an ODE decoder $\dot z = f(z)$ and a Gaussian
    likelihood (see the module docstring for the mathematics).

    Args:
        data_dim: $X$, the dimension of one observation.
        latent_dim: $L$, the dimension of $z$.
        hidden_dim: the encoder's hidden size.
        width: hidden width of the MLPs (the encoder's field, the latent field, an MLP
            readout).
        depth: hidden layers of those MLPs.
        activation: the MLPs' activation (`ACTIVATIONS`).
        decoder: the readout $g$: ``linear`` ($g(z) = W z + b$) or ``mlp``.
        obs_std: the observation noise $s$ (> 0), or its starting value when learned.
        learn_obs_std: train $\log s \in \mathbb{R}^X$ (else $s$ = ``obs_std`` is fixed).
        solve: how each interval is solved, for the encoder and the decoder (`SolveConfig`).
        key: initialises the layers.

    The start time $t_0$ of the latent path is a keyword of every method (default: the first
    observed time of the sequence). Methods act on one sequence (``jax.vmap`` for a
    batch): `negative_elbo`, `elbo_terms`, `encode`, `kl`, `sample_z0`, `latent_path`, `decode`,
    `reconstruct`, `sample_prior`.
    """

    encoder: ODERNN
    dynamics: eqx.nn.MLP
    decoder_net: eqx.nn.Linear | eqx.nn.MLP
    log_obs_std: Float[Array, " X"] | None
    data_dim: int = eqx.field(static=True)
    latent_dim: int = eqx.field(static=True)
    hidden_dim: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    decoder: str = eqx.field(static=True)
    obs_std: float = eqx.field(static=True)
    learn_obs_std: bool = eqx.field(static=True)
    solve: SolveConfig = eqx.field(static=True)

    def __init__(
        self,
        data_dim: int,
        latent_dim: int,
        *,
        hidden_dim: int = 16,
        width: int = 32,
        depth: int = 1,
        activation: str = "tanh",
        decoder: str = "linear",
        obs_std: float = 0.1,
        learn_obs_std: bool = False,
        solve: SolveConfig = SolveConfig(),  # noqa: B008 (frozen, hashable)
        key: PRNGKeyArray,
    ):
        self.data_dim = check_int(data_dim, "data_dim")
        self.latent_dim = check_int(latent_dim, "latent_dim")
        self.hidden_dim = check_int(hidden_dim, "hidden_dim")
        self.width = check_int(width, "width")
        self.depth = check_int(depth, "depth", 0)
        act = get_activation(activation)
        self.activation = activation
        if decoder not in _DECODERS:
            raise ValueError(f"argument 'decoder' must be one of {_DECODERS}; got {decoder!r}")
        self.decoder = decoder
        self.obs_std = check_number(obs_std, "obs_std")
        if not (self.obs_std > 0 and math.isfinite(self.obs_std)):
            raise ValueError(f"argument 'obs_std' must be a finite number > 0; got {obs_std!r}")
        if not isinstance(learn_obs_std, bool):
            raise TypeError(f"argument 'learn_obs_std' must be a bool; got {learn_obs_std!r}")
        self.learn_obs_std = learn_obs_std
        self.solve = _check_solve(solve)
        k_enc, k_dyn, k_dec = jax.random.split(key, 3)
        lat, x = self.latent_dim, self.data_dim
        self.encoder = ODERNN(
            x,
            self.hidden_dim,
            2 * lat,
            width=self.width,
            depth=self.depth,
            activation=activation,
            solve=self.solve,
            key=k_enc,
        )
        self.dynamics = eqx.nn.MLP(lat, lat, self.width, self.depth, activation=act, key=k_dyn)
        if decoder == "linear":
            self.decoder_net = eqx.nn.Linear(lat, x, key=k_dec)
        else:
            self.decoder_net = eqx.nn.MLP(lat, x, self.width, self.depth, activation=act, key=k_dec)
        dtype = self.dynamics.layers[0].weight.dtype
        self.log_obs_std = jnp.full((x,), math.log(self.obs_std), dtype) if learn_obs_std else None

    # ------------------------------------------------------------------ the pieces

    def vector_field(self, t: Any, z: Float[Array, " L"], args: Any = None) -> Float[Array, " L"]:
        r"""The latent dynamics $\dot z = f_\theta(z)$ (autonomous: ``t`` is ignored)."""
        return self.dynamics(z)

    def decode(self, zs: Float[Array, "T L"]) -> Float[Array, "T X"]:
        """The observation means $g(z(t_i))$ of a latent path."""
        return jax.vmap(self.decoder_net)(zs)

    def observation_std(self) -> Float[Array, " X"]:
        """The observation noise $s$ (learned or fixed)."""
        if self.log_obs_std is None:
            return jnp.full((self.data_dim,), self.obs_std)
        return jnp.exp(self.log_obs_std)

    @staticmethod
    def kl(mean: Float[ArrayLike, " L"], logvar: Float[ArrayLike, " L"]) -> Float[Array, ""]:
        r"""$\mathrm{KL}\big(\mathcal N(m, \mathrm{diag}\, e^{v}) \,\|\, \mathcal N(0, I)\big)
        = \tfrac12 \sum_k (e^{v_k} + m_k^2 - 1 - v_k)$."""
        mean, logvar = jnp.asarray(mean), jnp.asarray(logvar)
        return 0.5 * jnp.sum(jnp.exp(logvar) + mean**2 - 1.0 - logvar)

    def sample_z0(
        self, mean: Float[Array, " L"], logvar: Float[Array, " L"], *, key: PRNGKeyArray
    ) -> Float[Array, " L"]:
        r"""$z_0 = m + e^{v/2} \odot \varepsilon$, $\varepsilon \sim \mathcal N(0, I)$ from
        ``key``."""
        eps = jax.random.normal(key, jnp.shape(mean), jnp.result_type(mean))
        return mean + jnp.exp(0.5 * logvar) * eps

    def _encode(self, ts, xs, mask, observed, t0):
        enc = self.encoder
        field = lambda t, h: enc.field(h)  # noqa: E731
        update = lambda h, x, m: (enc.update(h, x, m), None)  # noqa: E731
        t_last = _first_time(ts, observed, True)
        h0 = jnp.zeros((self.hidden_dim,), xs.dtype)
        # from the last observation back to the first, then on to t0: one scan over the
        # steps [t0, t_0, ..., t_{T-1}] in reverse, the extra first step evolving only
        ts = jnp.concatenate([t0[None], ts])
        blank = jnp.zeros_like(xs[:1])
        xs, mask = jnp.concatenate([blank, xs]), jnp.concatenate([blank, mask])
        evolve = jnp.concatenate([jnp.ones((1,), bool), observed])
        jump = jnp.concatenate([jnp.zeros((1,), bool), observed])
        h, _, _, _ = _scan(self.solve, field, update, h0, t_last, ts, xs, mask, evolve, True, jump)
        mean, logvar = jnp.split(enc.readout(h), 2)
        return mean, logvar

    def _path(self, z0, ts, observed, t0):
        field = lambda t, z: self.dynamics(z)  # noqa: E731
        keep = lambda z, x, m: (z, None)  # noqa: E731
        empty = jnp.zeros((ts.shape[0], 1), z0.dtype)
        _, zs, _, _ = _scan(self.solve, field, keep, z0, t0, ts, empty, empty, observed)
        return zs

    def _check_times(self, ts: Any, mask: Any, t0: Any) -> tuple[Array, Array, Array]:
        owner = type(self).__name__
        ts = jnp.asarray(ts)
        if ts.ndim != 1 or ts.shape[0] < 1:
            raise ValueError(f"{owner}: argument 'ts' must have shape [T]; got {ts.shape}")
        if mask is not None and jnp.ndim(mask) != 1:
            raise ValueError(f"{owner}: argument 'mask' must have shape [T]; got {jnp.shape(mask)}")
        dummy = jnp.zeros((ts.shape[0], 1), jnp.result_type(float))
        ts, _, _, observed = _prepare(owner, ts, dummy, mask, 1)
        return ts, observed, _start(owner, t0, ts, observed, False)

    # ------------------------------------------------------------------ public steps

    def encode(
        self,
        ts: Real[ArrayLike, " T"],
        xs: Float[ArrayLike, "T X"],
        mask: Mask | None = None,
        *,
        t0: Real[ArrayLike, ""] | None = None,
    ) -> tuple[Float[Array, " L"], Float[Array, " L"]]:
        r"""The mean $m$ and log-variance $v$ of $q(z_0 \mid x)$, $z_0 = z(t_0)$: the
        encoder runs from the last observation back to the first, then on to ``t0``
        (default: the first observed time; it must not be later)."""
        ts, xs, mask, observed = _prepare(type(self).__name__, ts, xs, mask, self.data_dim)
        t0 = _start(type(self).__name__, t0, ts, observed, False)
        return self._encode(ts, xs, mask, observed, t0)

    def latent_path(
        self,
        z0: Float[ArrayLike, " L"],
        ts: Real[ArrayLike, " T"],
        mask: Real[ArrayLike, " T"] | None = None,
        *,
        t0: Real[ArrayLike, ""] | None = None,
    ) -> Float[Array, "T L"]:
        r"""$z(t_i)$ from $z(t_0) = z_0$ under $\dot z = f_\theta(z)$, one solve per interval
        between consecutive times (non-decreasing, not before ``t0``; default ``t0``: the
        first kept time). Steps with ``mask [T]`` 0 are skipped and repeat the last kept
        state."""
        z0 = jnp.asarray(z0)
        if z0.shape != (self.latent_dim,):
            raise ValueError(
                f"LatentODE: argument 'z0' must have shape [{self.latent_dim}]; got {z0.shape}"
            )
        ts, observed, t0 = self._check_times(ts, mask, t0)
        return self._path(z0, ts, observed, t0)

    def elbo_terms(
        self,
        ts: Real[ArrayLike, " T"],
        xs: Float[ArrayLike, "T X"],
        mask: Mask | None = None,
        *,
        t0: Real[ArrayLike, ""] | None = None,
        samples: int = 1,
        key: PRNGKeyArray,
    ) -> dict[str, Float[Array, ""]]:
        r"""The negative ELBO's parts for one sequence: ``nll`` (the negative Gaussian
        log-likelihood of the observed entries, averaged over ``samples`` posterior draws,
        draw $s$ from ``jax.random.split(key, samples)[s]``), ``kl`` (closed form) and
        their sum ``loss``."""
        samples = check_int(samples, "samples")
        owner = type(self).__name__
        ts, xs, mask, observed = _prepare(owner, ts, xs, mask, self.data_dim)
        t0 = _start(owner, t0, ts, observed, False)
        mean, logvar = self._encode(ts, xs, mask, observed, t0)
        std = self.observation_std().astype(xs.dtype)

        def one(k):
            zs = self._path(self.sample_z0(mean, logvar, key=k), ts, observed, t0)
            r = (xs - self.decode(zs)) / std
            logp = -0.5 * r**2 - jnp.log(std) - 0.5 * math.log(2 * math.pi)
            return -jnp.sum(mask * logp)

        nll = jax.vmap(one)(jax.random.split(key, samples))
        terms = {"nll": jnp.mean(nll), "kl": self.kl(mean, logvar)}
        terms["loss"] = terms["nll"] + terms["kl"]
        return terms

    def negative_elbo(
        self,
        ts: Real[ArrayLike, " T"],
        xs: Float[ArrayLike, "T X"],
        mask: Mask | None = None,
        *,
        t0: Real[ArrayLike, ""] | None = None,
        samples: int = 1,
        key: PRNGKeyArray,
    ) -> Float[Array, ""]:
        r"""The **negative** ELBO of one sequence (a loss to minimise):
        $-\mathbb E_q[\log p(x \mid z_0)] + \mathrm{KL}(q(z_0 \mid x) \| \mathcal N(0, I))$,
        a Monte-Carlo estimate over ``samples`` draws (`elbo_terms` ``["loss"]``).

        ``ts [T]`` (non-decreasing over observed steps), ``xs [T, X]``, ``mask [T]`` or
        ``[T, X]`` (bool or 0/1; None: all observed; masked values are ignored)."""
        return self.elbo_terms(ts, xs, mask, t0=t0, samples=samples, key=key)["loss"]

    def reconstruct(
        self,
        ts: Real[ArrayLike, " T"],
        xs: Float[ArrayLike, "T X"],
        mask: Mask | None = None,
        ts_out: Real[ArrayLike, " S"] | None = None,
        *,
        t0: Real[ArrayLike, ""] | None = None,
        key: PRNGKeyArray | None,
    ) -> tuple[Float[Array, "S L"], Float[Array, "S X"]]:
        r"""``(zs, means)``: the latent path and its observation means $g(z(t))$ at
        ``ts_out`` given the data: interpolation at the observed times (``ts_out=None``:
        ``ts``, padded steps repeating the last observed one), extrapolation at later times.
        $z_0$ is drawn from $q(z_0 \mid x)$ with ``key``, or is its mean when ``key`` is
        None. ``ts_out`` must be non-decreasing and not before ``t0``."""
        owner = type(self).__name__
        ts, xs, mask, observed = _prepare(owner, ts, xs, mask, self.data_dim)
        t0 = _start(owner, t0, ts, observed, False)
        if ts_out is not None:
            ts_out = jnp.asarray(ts_out)
            if ts_out.ndim != 1 or ts_out.shape[0] < 1:
                raise ValueError(
                    f"{owner}: argument 'ts_out' must have shape [S]; got {ts_out.shape}"
                )
            if _is_concrete(ts_out, t0) and np.any(np.asarray(ts_out) < float(t0)):
                raise ValueError(f"{owner}: argument 'ts_out' must not be before t0 = {float(t0)}")
            ts_out, kept, _ = self._check_times(ts_out, None, t0)
        mean, logvar = self._encode(ts, xs, mask, observed, t0)
        z0 = mean if key is None else self.sample_z0(mean, logvar, key=key)
        if ts_out is None:
            zs = self._path(z0, ts, observed, t0)
        else:
            zs = self._path(z0, ts_out, kept, t0)
        return zs, self.decode(zs)

    def sample_prior(
        self,
        ts: Real[ArrayLike, " T"],
        *,
        t0: Real[ArrayLike, ""] | None = None,
        key: PRNGKeyArray,
    ) -> tuple[Float[Array, "T L"], Float[Array, "T X"]]:
        r"""A draw from the generative model: $z_0 \sim \mathcal N(0, I)$ at ``t0`` (default
        ``ts[0]``), its latent path at ``ts`` and the observation means there."""
        ts, observed, t0 = self._check_times(ts, None, t0)
        z0 = jax.random.normal(key, (self.latent_dim,), self.dynamics.layers[0].weight.dtype)
        zs = self._path(z0, ts, observed, t0)
        return zs, self.decode(zs)
