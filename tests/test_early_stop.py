"""simulate(..., early_stop=True) and SimulationResult.converged_at.

Why early stop cannot change the status of gd and usam on a quadratic (the property tested below). In the
eigenbasis both are linear and diagonal: each component z_i of x − x* is multiplied by f_i = 1 − ηλ_i (gd) or
1 − ηλ_i(1 + ρλ_i) (usam) every step, so ‖g(x_t)‖² = Σ_i λ_i² z_i(0)² f_i^{2t} is a sum of terms that are each
monotone in t. If some |f_i| ≥ 1 with λ_i z_i(0) ≠ 0, that term never drops below λ_i² z_i(0)², so ‖g(x_t)‖ ≤
tol·‖g(x_0)‖ is impossible as long as |λ_i z_i(0)| > tol·‖g(x_0)‖ for every i with λ_i ≠ 0 (which the starting
points below satisfy by a wide margin). Hence a run that meets the tolerance at some t has every |f_i| < 1, every
term is then non-increasing, and ‖g(x_T)‖ ≤ ‖g(x_t)‖ ≤ tol·‖g(x_0)‖ for every T ≥ t: it would have been
*converged* at T anyway; and a run that never meets it is untouched by early stop. So statuses are equal.

For sam, ssam and susam this argument does not hold (the map is not linear; SAM's ascent ρ g/‖g‖ keeps a run in
its 2-cycle near the minimizer, so a transient small ‖g‖ can be followed by a bounded orbit):
test_early_stop_measured_on_nonlinear_rules measures how often the status changes and documents it.
"""

from __future__ import annotations

import numpy as np
import pytest

import samtheory as st
from samtheory.result import BOUNDED, CONVERGED, DIVERGED

LAM = np.geomspace(1.0, 100.0, 8)


def _grid(method):
    edge = 2 / LAM[-1] if method == "gd" else None
    eta = np.geomspace(1e-3, 2.5e-2, 12)[:, None]  # below and above GD's edge 0.02
    rho = np.array([[0.0, 0.01, 0.1]]) if edge is None else np.array([[0.0]])
    return eta, rho


def _x0():
    # Components of modulus in [0.5, 1] on every eigenvector: |λ_i z_i(0)| >= 0.5 > tol·‖g(x_0)‖ (< 1e-6·283).
    rng = np.random.default_rng(3)
    return rng.choice([-1.0, 1.0], size=(4, LAM.size)) * rng.uniform(0.5, 1.0, (4, LAM.size))


@pytest.mark.parametrize("backend", ["numpy", "compiled"])
@pytest.mark.parametrize("basis, rotation", [("eigen", 5), ("dense", 5), ("auto", None)])
@pytest.mark.parametrize("method", ["gd", "usam"])
def test_early_stop_keeps_statuses_of_linear_rules(method, basis, rotation, backend):
    problem = st.Quadratic(LAM, rotation=rotation)
    eta, rho = _grid(method)
    x0 = _x0()[:, None, None, :] if rotation is None else (_x0() @ problem.eigenvectors.T)[:, None, None, :]
    kwargs = dict(steps=1500, x0=x0, seed=np.zeros((4, 1, 1), dtype=int), basis=basis, backend=backend)
    full = st.simulate(problem, method, eta[None], rho[None], **kwargs)
    stopped = st.simulate(problem, method, eta[None], rho[None], early_stop=True, **kwargs)
    assert np.array_equal(stopped.status, full.status)
    # All three statuses occur, so the test can fail either way.
    assert {CONVERGED, BOUNDED, DIVERGED} <= set(np.unique(full.status)) or method == "usam"
    assert np.any(full.status == CONVERGED) and np.any(full.status == DIVERGED)
    # converged_at is recorded in both modes, identically; the stopped run's final state is x_t.
    assert np.array_equal(stopped.converged_at, full.converged_at)
    hit = full.converged_at >= 0
    assert np.all(full.status[hit] == CONVERGED) and np.all(full.status[~hit] != CONVERGED)
    g0 = np.broadcast_to(np.linalg.norm(problem.grad(x0.reshape(-1, LAM.size)), axis=1).reshape(4, 1, 1), hit.shape)
    # Stopped at a point meeting the tolerance (1e-12 relative: the final norm is recomputed, in another layout).
    assert np.all(stopped.grad_norm[hit] <= stopped.tol * g0[hit] * (1 + 1e-12))
    again = st.simulate(problem, method, eta[None], rho[None], steps=int(full.converged_at[hit].max()), x0=x0, seed=kwargs["seed"],
                        basis=basis, backend=backend)
    first = np.unravel_index(np.argmax(np.where(hit, full.converged_at, -1)), hit.shape)
    # The latest stopper ran exactly converged_at steps: the same iterate as a run of that many steps (bit for bit).
    assert np.array_equal(stopped.x[first], again.x[first])


def test_converged_at_is_the_first_step_meeting_the_tolerance():
    """1-D GD on f = x²/2 from x0 = 1: ‖g(x_t)‖ = (1 − η)^t, so converged_at = ⌈ln(tol)/ln(1 − η)⌉ (exact
    integer arithmetic on the closed form, away from ties: the ratio is not within 1e-6 of an integer)."""
    problem = st.Quadratic([1.0])
    eta = np.array([0.1, 0.3, 0.5])
    tol = 1e-6
    result = st.simulate(problem, "gd", eta, steps=200, x0=np.ones(1), tol=tol, backend="numpy")
    expected = np.ceil(np.log(tol) / np.log1p(-eta)).astype(int)
    ratio = np.log(tol) / np.log1p(-eta)
    assert np.all(np.abs(ratio - np.round(ratio)) > 1e-6)
    assert np.array_equal(result.converged_at, expected)
    never = st.simulate(problem, "gd", 2.5, steps=50, x0=np.ones(1))
    assert never.converged_at == -1 and never.status == DIVERGED
    at_zero = st.simulate(problem, "gd", 0.1, steps=5, x0=np.ones(1), tol=1.0)
    assert at_zero.converged_at == 0  # ‖g(x_0)‖ ≤ 1 · ‖g(x_0)‖
    compiled = st.simulate(problem, "gd", eta, steps=200, x0=np.ones(1), tol=tol, backend="compiled")
    assert np.array_equal(compiled.converged_at, expected)


@pytest.mark.parametrize("kwargs, name", [({"batch_size": 2}, "batch_size"), ({"record_every": 5}, "record_every")])
def test_early_stop_refuses_noisy_criterion_and_history(kwargs, name):
    problem = st.LeastSquares(np.eye(4), np.ones(4))
    with pytest.raises(ValueError, match=f"early_stop=True .*{name}"):
        st.simulate(problem, "sam", 0.1, 0.05, steps=10, early_stop=True, **kwargs)
    with pytest.raises(ValueError, match="early_stop"):
        st.simulate(problem, "sam", 0.1, 0.05, steps=10, early_stop="yes")


def test_early_stop_measured_on_nonlinear_rules():
    """Measurement (not a promise): how often early stop changes a status for sam, ssam and susam on the grid
    above. SAM (normalized ascent) never converges at constant η (O3), so it never meets the tolerance and early
    stop cannot change it; ssam and susam: recorded here, and the regime bisection uses early stop only for gd
    and usam."""
    problem = st.Quadratic(LAM, rotation=5)
    x0 = (_x0() @ problem.eigenvectors.T)[:, None, None, :]
    eta, rho = _grid("sam")
    changed = {}
    for method in ("sam", "ssam", "susam"):
        full = st.simulate(problem, method, eta[None], rho[None], steps=1500, x0=x0, seed=np.zeros((4, 1, 1), dtype=int))
        stopped = st.simulate(problem, method, eta[None], rho[None], steps=1500, x0=x0, early_stop=True,
                              seed=np.zeros((4, 1, 1), dtype=int))
        changed[method] = int(np.sum(stopped.status != full.status))
        # Where a status changes, it is a run that met the tolerance and later stopped meeting it.
        moved = stopped.status != full.status
        assert np.all(stopped.status[moved] == CONVERGED) and np.all(full.converged_at[moved] >= 0)
    assert changed["sam"] == 0
    print("status changes under early stop:", changed)


@pytest.mark.parametrize("method", ["gd", "usam", "ssam"])
def test_regime_measurements_are_unchanged_by_the_fast_path(method, monkeypatch):
    """critical_learning_rate (both edges) and regime_map give the same thresholds and statuses with the fast
    path (compiled kernels, early stop where _early_stop_keeps_status allows it) as without it; early stop is
    used for gd and usam only."""
    from samtheory.stability import _measured

    problem = st.Quadratic(np.geomspace(1.0, 20.0, 6), rotation=2)
    rho = np.array([0.0, 0.05, 0.5])
    rules = st.stability.ClassificationRules(steps=400, n_points=2)
    runner = _measured._Runner(problem, method, rules, None, False, False)
    assert runner.early_stop == (method in ("gd", "usam"))

    def measure():
        edges = [st.stability.critical_learning_rate(problem, method, rho, edge=edge, rtol=1e-2, rules=rules)
                 for edge in ("nondivergent", "converged")]
        grid = st.stability.regime_map(problem, method, np.geomspace(0.01, 0.2, 7), rho, rules=rules)
        return edges, grid

    fast_edges, fast_map = measure()
    monkeypatch.setattr(_measured, "FAST_PATH", False)
    slow_edges, slow_map = measure()
    for fast, slow in zip(fast_edges, slow_edges):
        np.testing.assert_array_equal(fast.lower, slow.lower)  # bit for bit: the same bisection decisions
        np.testing.assert_array_equal(fast.upper, slow.upper)
    assert np.array_equal(fast_map.point_status, slow_map.point_status)
    assert fast_map.simulation.options["backend"] == "compiled" and slow_map.simulation.options["backend"] == "numpy"
