"""Perception sensitivities, fixed points and stability (`diffdyn.nca`), and ``nca analyse``."""

import json
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.common import laplacian
from diffdyn.common.cli import main
from diffdyn.nca import (
    NCA,
    AbstractNCA,
    Cells,
    MultiScaleNCA,
    fixed_point,
    perception_sensitivity,
    stability,
)
from diffdyn.pde import GrayScott

FILTERS = ("identity", "sobel_x", "laplacian")


class LinearNCA(AbstractNCA):
    """``dx = W P(x) + b`` at every cell: the Jacobian with respect to ``P`` is ``W``."""

    cells: Cells
    weight: jax.Array
    bias: jax.Array

    def __init__(self, cells, weight, bias):
        self.cells = cells
        self.weight = jnp.asarray(weight)
        self.bias = jnp.asarray(bias)

    def increment(self, x):
        p = self.perception(x)
        return jnp.einsum("of,fhw->ohw", self.weight, p) + self.bias[:, None, None]


def _state(c, n, key=0):
    return jax.random.uniform(jax.random.key(key), (c, n, n))


def test_sensitivity_of_a_linear_network_is_its_weight_column_norm():
    c, k = 3, len(FILTERS)
    w = np.asarray(jax.random.normal(jax.random.key(1), (c, k * c)))
    model = LinearNCA(Cells(c, FILTERS), w, np.ones(c))
    s = perception_sensitivity(model, _state(c, 5))
    # feature k*C + c is filter k on channel c
    np.testing.assert_allclose(s.total, np.linalg.norm(w, axis=0).reshape(k, c), rtol=1e-5)
    np.testing.assert_allclose(s.per_output, np.abs(w).reshape(c, k, c), rtol=1e-5)
    assert s.filters == FILTERS and s.cells == 25
    best = s.top(1)[0]
    kk, cc = np.unravel_index(np.argmax(s.total), s.total.shape)
    assert (best["filter"], best["channel"]) == (FILTERS[kk], cc)


def test_sensitivity_is_nonzero_only_at_the_one_feature_the_network_reads():
    c, k = 3, len(FILTERS)
    read = 2 * c + 1  # laplacian of channel 1
    w = np.zeros((c, k * c))
    w[:, read] = [0.5, -2.0, 1.0]
    s = perception_sensitivity(LinearNCA(Cells(c, FILTERS), w, np.zeros(c)), _state(c, 4))
    expected = np.zeros((k, c))
    expected[2, 1] = math.sqrt(0.25 + 4.0 + 1.0)
    np.testing.assert_allclose(s.total, expected, rtol=1e-6, atol=0)

    # the same for a ReLU MLP NCA whose first layer reads only that feature
    model = NCA(Cells(c, FILTERS), hidden=6, key=jax.random.key(0))
    w1 = np.zeros((6, k * c))
    w1[:, read] = np.linspace(-1.0, 1.0, 6)
    model = eqx.tree_at(lambda m: m.net.hidden_layer.weight, model, jnp.asarray(w1))
    model = eqx.tree_at(
        lambda m: m.net.output_layer.weight, model, jax.random.normal(jax.random.key(3), (c, 6))
    )
    s = perception_sensitivity(model, _state(c, 6) - 0.5)
    assert s.total[2, 1] > 0
    mask = np.ones((k, c), bool)
    mask[2, 1] = False
    assert np.all(s.total[mask] == 0) and np.all(s.per_output[:, mask] == 0)


def test_sensitivity_refuses_an_update_that_is_not_per_cell_on_the_perception():
    model = MultiScaleNCA(Cells(4, FILTERS), hidden=4, scales=(1, 2), key=jax.random.key(0))
    with pytest.raises(ValueError, match="perception applied once"):
        perception_sensitivity(model, _state(4, 4))


def _mu(n, dx=1.0):
    """Eigenvalues of -Δ (5-point, periodic n x n): (4/dx²)(sin²(πk/n) + sin²(πl/n))."""
    s = np.sin(np.pi * np.arange(n) / n) ** 2
    return (4 / dx**2) * (s[:, None] + s[None, :]).ravel()


def test_fixed_point_and_spectrum_of_a_linear_reaction_diffusion_match_closed_forms():
    n, d, a, dx = 6, 0.3, 0.5, 1.0
    h = np.arange(n)
    source = np.cos(2 * np.pi * h / n)[:, None] * np.ones(n)[None, :]  # mode (1, 0)
    source = jnp.asarray(source[None])

    def rate(x):  # dx/dt = D Δx - a x + s
        return d * laplacian(x, dx=dx) - a * x + source

    with jax.enable_x64(True):
        x0 = jnp.zeros((1, n, n), jnp.float64)
        fp = fixed_point(rate, x0, kind="flow")
        mu_1 = 4 * math.sin(math.pi / n) ** 2
        assert fp.converged and fp.kind == "flow"
        np.testing.assert_allclose(fp.point, source / (a + d * mu_1), atol=1e-10)
        st = stability(rate, fp.point, kind="flow")
        expected = np.sort(-a - d * _mu(n, dx))[::-1]
        np.testing.assert_allclose(np.sort(st.eigenvalues.real)[::-1], expected, atol=1e-10)
        np.testing.assert_allclose(st.eigenvalues.imag, 0, atol=1e-10)
        assert st.verdict == "stable" and st.leading == pytest.approx(-a)

        # the Euler map x + t F(x): same fixed point, eigenvalues 1 + t λ, stable iff
        # t < 2 / (a + 8D) (the most negative λ is -a - 8D/dx² on an even grid)
        for t, verdict in ((0.9 * 2 / (a + 8 * d), "stable"), (1.1 * 2 / (a + 8 * d), "unstable")):
            euler = lambda x, t=t: x + t * rate(x)  # noqa: E731
            mp = fixed_point(euler, x0, kind="map")
            np.testing.assert_allclose(mp.point, fp.point, atol=1e-10)
            sm = stability(euler, mp.point, kind="map", k=3)
            assert sm.verdict == verdict and len(sm.eigenvalues) == 3
            assert sm.leading == pytest.approx(np.max(np.abs(1 + t * (-a - d * _mu(n)))))
            # Arnoldi over the whole Krylov space gives the same spectral radius
            sa = stability(euler, mp.point, kind="map", dense_limit=8, krylov=n * n)
            assert sa.method == "arnoldi" and sa.leading == pytest.approx(sm.leading, rel=1e-8)
        with pytest.raises(ValueError, match="dense Jacobian"):
            stability(rate, fp.point, kind="flow", dense_limit=8)


def test_gray_scott_homogeneous_state_is_a_stable_fixed_point_with_the_analytic_spectrum():
    n = 4
    gs = GrayScott()
    f, k, da, db = 0.0623, 0.06268, 0.1, 0.05
    with jax.enable_x64(True):
        x0 = jnp.stack([jnp.full((n, n), 0.95), jnp.full((n, n), 0.03)]).astype(jnp.float64)
        x0 = x0 + 0.01 * jax.random.normal(jax.random.key(0), x0.shape, jnp.float64)
        fp = fixed_point(gs, x0)
        assert fp.converged and fp.residual < 1e-10
        np.testing.assert_allclose(fp.point[0], 1.0, atol=1e-9)
        np.testing.assert_allclose(fp.point[1], 0.0, atol=1e-9)
        st = stability(gs, fp.point)
    # at (1, 0): J = diag(D_A Δ - F, D_B Δ - (F + k)), both blocks diagonal in Fourier modes
    mu = _mu(n)
    expected = np.sort(np.concatenate([-f - da * mu, -(f + k) - db * mu]))[::-1]
    np.testing.assert_allclose(st.eigenvalues.real, expected, atol=1e-9)
    # the parameters are float32 scalars: F is 0.0623 to float32 rounding
    assert st.verdict == "stable" and st.leading == pytest.approx(-f, rel=1e-7)


def test_a_function_without_root_is_reported_as_not_converged():
    fn = lambda x: x**2 + 1.0  # noqa: E731
    x0 = jnp.full((1, 2, 2), 0.3)
    with pytest.raises(RuntimeError, match="did not converge"):
        fixed_point(fn, x0, kind="flow", max_steps=20)
    fp = fixed_point(fn, x0, kind="flow", max_steps=20, throw=False)
    assert not fp.converged and not fp.residual < 1.0
    with pytest.raises(ValueError, match="kind"):
        fixed_point(fn, x0)


def _save_run(folder):
    """A growing NCA with dx = -x/2 at every cell for |x| < 2 (per channel the ReLU pair
    relu(x + 2) - relu(2 - x) = 2x) and its training config."""
    folder.mkdir()
    c = 4
    model = NCA(
        Cells(c, ("identity", "laplacian"), alive_threshold=0.1),
        hidden=2 * c,
        key=jax.random.key(0),
    )
    eye = np.eye(c)
    w1 = np.zeros((2 * c, 2 * c))
    w1[:c, :c], w1[c:, :c] = eye, -eye  # reads the identity features only
    w2 = -0.25 * np.concatenate([eye, -eye], axis=1)
    model = eqx.tree_at(
        lambda m: (m.net.hidden_layer.weight, m.net.hidden_layer.bias, m.net.output_layer.weight),
        model,
        (jnp.asarray(w1, jnp.float32), jnp.full(2 * c, 2.0), jnp.asarray(w2, jnp.float32)),
    )
    model.save(folder / "model.eqx")
    (folder / "config.yaml").write_text(
        "task: grow\ngrow:\n  size: 6\n  pad: 0\n  rollout_steps: 3\n"
    )


def test_nca_analyse_writes_figures_and_metrics(tmp_path, capsys):
    _save_run(tmp_path / "run")
    out = tmp_path / "analysis"
    rc = main(["nca", "analyse", "--model", str(tmp_path / "run"), "--out", str(out), "--json"])
    assert rc == 0, capsys.readouterr().err
    for name in ("sensitivity.png", "eigenvalues.png", "metrics.json"):
        assert (out / name).stat().st_size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["state_size"] == 4 * 6 * 6
    # dx_o = -p_o/2 with p_o the identity feature of channel o: sensitivity 1/2 there only
    top = metrics["top_sensitivities"]
    assert {(t["filter"], t["channel"]) for t in top[:4]} == {("identity", c) for c in range(4)}
    assert [t["value"] for t in top[:4]] == pytest.approx([0.5] * 4)
    assert top[4]["value"] == 0.0
    # the fixed point is 0 on the living cells; there T has eigenvalues 1/2, elsewhere 0
    assert metrics["fixed_point_converged"] is True
    assert metrics["fixed_point_residual"] < 1e-5
    assert metrics["spectral_radius"] == pytest.approx(0.5, rel=1e-5)
    assert metrics["stability"] == "stable"
    assert metrics["eigenvalues"][0] == pytest.approx([0.5, 0.0], abs=1e-5)


def test_nca_analyse_without_a_model_exits_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc = main(["nca", "analyse", "--model", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "no model" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
