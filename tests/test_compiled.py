"""The compiled fast path (backend="compiled", samtheory/_compiled.py) equals the NumPy reference path.

Every built-in rule × problem (Quadratic diagonal, rotated: eigenbasis and dense, centred; LeastSquares and
LogisticRegression, full batch and minibatch) × option (plain, adaptive, truncate, momentum, Nesterov with
weight decay, decoupled weight decay, schedule) is run on both paths over a small (η, ρ) grid that crosses the
divergence edge, recording every iterate. Tolerance: 1e-12 relative per recorded iterate, per row in the
Euclidean norm (‖x_compiled − x_numpy‖ ≤ 1e-12 · ‖x_numpy‖): the kernels do the reference's arithmetic in the
same order except for the summation order of norms and matrix products, a few ulps per step, and 40 steps of
these contracting or diverging maps amplify that by far less than 1e4. The exception is the normalized ascent
of sam and ssam near a minimizer: ρ g/‖g‖ has Lipschitz constant about ρβ/‖g‖, so once ‖g(x_t)‖ falls to the
scale of ρβ (the SAM 2-cycle regime of O3) each step amplifies rounding differences by up to ηρβ²/‖g‖ (the
NumPy path itself is reproducible only bit for bit on one BLAS build there). For those methods an iterate is
held to 1e-12 while every ‖g(x_s)‖, s ≤ t, is ≥ 10ρβ (amplification ≤ 1.1 per step), and to 1e-7 after
(measured worst case 9e-9 over this grid). Statuses, ``diverged_at`` and
``converged_at`` must agree exactly except for a run whose deciding norm lies within 1e-9 relative of its
threshold (rounding could flip that comparison): such a run is allowed to differ, and the test checks that no
such run occurs more than a handful of times (none in practice).
"""

from __future__ import annotations

import numpy as np
import pytest

import samtheory as st

METHODS = ("gd", "sam", "usam", "ssam", "susam")
STEPS, EVERY = 40, 5
RTOL = 1e-12  # see the module docstring
# Values derived from an iterate (loss, ‖g‖, γ, ‖g(y)‖/‖g(x)‖): their relative error is at most about 2κ times
# the iterate's (κ = 20 = λ_max/λ_min of the quadratic; similar for the data problems) near a minimizer.
DERIVED = 1e-10
SENSITIVE = 1e-7  # sam/ssam iterates once ‖g‖ < 10ρβ (see the module docstring)
NEAR = 1e-9  # relative distance of a norm to its threshold within which rounding may flip a status


def _problems():
    rng = np.random.default_rng(7)
    A = rng.standard_normal((24, 5))
    b = A @ rng.standard_normal(5) + 0.1 * rng.standard_normal(24)
    X = rng.standard_normal((24, 5))
    y = np.where(X @ rng.standard_normal(5) + 0.5 * rng.standard_normal(24) > 0, 1.0, -1.0)
    lam = np.array([0.5, 1.0, 3.0, 7.0, 10.0])
    return {
        "diagonal": (st.Quadratic(lam), {}),
        "eigen": (st.Quadratic(lam, rotation=3, minimizer=np.linspace(-1, 1, 5)), {"basis": "eigen"}),
        "dense": (st.Quadratic(lam, rotation=3, minimizer=np.linspace(-1, 1, 5)), {"basis": "dense"}),
        "centred": (st.Quadratic(lam, minimizer=np.full(5, 0.3)), {"basis": "dense"}),
        "lsq": (st.LeastSquares(A, b), {}),
        "lsq-minibatch": (st.LeastSquares(A, b), {"batch_size": 6, "seed": np.arange(6)[:, None] % 2}),
        "logistic": (st.LogisticRegression(X, y, l2=0.05), {}),
        "logistic-minibatch": (st.LogisticRegression(X, y), {"batch_size": 8, "seed": 4}),
    }


PROBLEMS = _problems()
OPTIONS = {
    "plain": {},
    "adaptive": {"adaptive": True, "adaptive_eta": 0.01},
    "truncate": {"truncate": True},
    "momentum": {"momentum": 0.6, "schedule": "cosine:30:0.1"},
    "nesterov": {"momentum": 0.5, "nesterov": True, "weight_decay": 0.05},
    "decoupled": {"decoupled_weight_decay": 0.1, "schedule": "step:10:0.5"},
}


def _run(problem, method, kwargs, backend):
    beta = problem.beta
    # Crosses GD's edge 2/β, but only to 2.2/β: beyond, a map that expands by up to |1 − ηλ| ≤ 1.2 per step
    # amplifies rounding by at most 1.2^40 ≈ 1.5e3 over the run (3e-13 from a few ulps), within RTOL.
    eta = (np.geomspace(0.2, 2.2, 6) / beta)[:, None]
    rho = np.array([[0.0, 0.05, 0.3]])
    return st.simulate(problem, method, eta, rho, steps=STEPS, record_every=EVERY, record_iterates=True,
                       backend=backend, **kwargs)


def _relative(a, b, history=True):
    """‖a − b‖ per row over the largest ‖b_s‖ so far (axis 0: the recorded steps): a rounding error is relative
    to the largest scale the iterate had (a run that grows by 1e6 and shrinks back keeps its absolute error)."""
    scale = np.linalg.norm(b, axis=-1)
    if history:
        scale = np.maximum.accumulate(scale, axis=0)
    return np.linalg.norm(a - b, axis=-1) / np.where(scale > 0, scale, 1.0)


def _near(value, threshold):
    return np.abs(value - threshold) <= NEAR * np.abs(threshold)


@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("problem_name", sorted(PROBLEMS))
@pytest.mark.parametrize("method", METHODS)
def test_compiled_equals_numpy(method, problem_name, option):
    problem, extra = PROBLEMS[problem_name]
    kwargs = {**extra, **OPTIONS[option]}
    if kwargs.get("adaptive") and kwargs.get("basis") == "eigen":
        kwargs["basis"] = "dense"  # the eigenbasis is exact only for rotation-equivariant rules
    reference = _run(problem, method, kwargs, "numpy")
    fast = _run(problem, method, kwargs, "compiled")
    assert reference.options["backend"] == "numpy" and fast.options["backend"] == "compiled"
    h, hf = reference.history, fast.history
    tolerance = np.full(h.grad_norm.shape, RTOL)
    if method in ("sam", "ssam"):
        sensitive = np.maximum.accumulate(h.grad_norm < 10 * reference.rho[None] * problem.beta, axis=0)
        tolerance[sensitive] = SENSITIVE
    assert np.all(_relative(hf.x, h.x) <= tolerance), np.max(_relative(hf.x, h.x) / tolerance)
    final = tolerance[-1] if STEPS % EVERY == 0 else SENSITIVE
    assert np.all(_relative(fast.x, reference.x, history=False) <= final)
    # Scalars per row (loss, ‖g‖, γ, ‖g(y)‖/‖g(x)‖), relative to their size and, for cancelling sums (a gradient
    # or loss near a minimizer), to 1e-13 of the row's largest value along the run (inf where frozen values
    # overflow must be inf on both).
    # A ratio of two such norms (γ, ‖g(y)‖/‖g(x)‖) then has relative error up to 1e-13 · max_s ‖g_s‖ / ‖g(x_t)‖.
    relative = tolerance * (DERIVED / RTOL)
    g_scale = np.max(np.where(np.isfinite(h.grad_norm), h.grad_norm, 0), axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_error = relative + 1e-13 * g_scale / h.grad_norm
    pairs = [(hf.loss, h.loss, relative), (hf.grad_norm, h.grad_norm, relative), (hf.gamma, h.gamma, ratio_error)]
    assert (h.ascent_ratio is None) == (hf.ascent_ratio is None)
    if h.ascent_ratio is not None:
        pairs.append((hf.ascent_ratio, h.ascent_ratio, ratio_error))
    for a, b, allowed in pairs:
        finite = np.isfinite(b)
        assert np.array_equal(np.isfinite(a), finite)
        scale = np.max(np.where(finite, np.abs(b), 0), axis=0, keepdims=True)
        assert np.all(np.abs(a - b)[finite] <= (allowed * np.abs(b) + 1e-13 * scale)[finite])
    for a, b in ((fast.loss, reference.loss), (fast.grad_norm, reference.grad_norm)):
        np.testing.assert_array_equal(np.isfinite(a), np.isfinite(b))
    # Statuses and steps: equal, except for runs within rounding of a threshold (none here in practice).
    g0 = reference.history.grad_norm[0]
    borderline = _near(reference.grad_norm, reference.tol * g0)
    differ = ((fast.status != reference.status) | (fast.diverged_at != reference.diverged_at)
              | (fast.converged_at != reference.converged_at))
    assert not np.any(differ & ~borderline), np.argwhere(differ)
    assert differ.sum() <= 2


def test_auto_picks_compiled_where_it_applies_and_numpy_for_user_rules():
    problem = st.Quadratic([1.0, 10.0])
    assert st.simulate(problem, "ssam", 0.1, 0.05, steps=5).options["backend"] == "compiled"

    def rule(x, grad, eta, rho=0.0, **options):
        g = grad(x)
        return st.Step(x - eta * g, np.linalg.norm(g, axis=1))

    assert st.simulate(problem, rule, 0.1, steps=5).options["backend"] == "numpy"
    assert st.simulate(problem, "sam", 0.1, 0.05, steps=5, ascent_groups=1,
                       backend="numpy").options["backend"] == "numpy"


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "user"}, "not a built-in rule"),
    ({"problem": st.Saddle()}, "no compiled gradient"),
    ({"ascent_groups": 2}, "ascent_groups"),
])
def test_compiled_where_it_does_not_apply_says_why(kwargs, message):
    def rule(x, grad, eta, rho=0.0, **options):
        g = grad(x)
        return st.Step(x - eta * g, np.linalg.norm(g, axis=1))

    A = np.arange(12.0).reshape(6, 2) / 10
    problem = kwargs.pop("problem", st.LeastSquares(A, np.ones(6)))
    method = rule if kwargs.pop("method", None) == "user" else "sam"
    with pytest.raises(ValueError, match="backend='compiled' does not apply: .*" + message):
        st.simulate(problem, method, 0.1, 0.05, steps=3, backend="compiled", **kwargs)


def test_unknown_backend_is_a_value_error():
    with pytest.raises(ValueError, match="backend must be one of 'auto', 'numpy', 'compiled', got 'jax'"):
        st.simulate(st.Quadratic([1.0]), "gd", 0.1, steps=3, backend="jax")


def test_compiled_rows_do_not_depend_on_chunking_or_workers():
    problem = st.Quadratic(np.geomspace(1, 100, 7), rotation=1)
    eta = np.geomspace(1e-3, 3e-2, 9)[:, None]
    rho = np.linspace(0, 0.3, 5)[None, :]
    runs = [st.simulate(problem, "ssam", eta, rho, steps=300, backend="compiled", chunk_size=c, workers=w,
                        momentum=0.3) for c, w in ((None, 1), (1, 1), (7, 2), (64, 2))]
    single = st.simulate(problem, "ssam", eta[4, 0], rho[0, 2], steps=300, backend="compiled", momentum=0.3)
    for run in runs[1:]:
        for field in ("x", "loss", "grad_norm", "status", "diverged_at", "converged_at"):
            assert np.array_equal(getattr(run, field), getattr(runs[0], field)), field  # bit for bit
    assert np.array_equal(single.x, runs[0].x[4, 2])


def test_compiled_overflow_is_divergence_without_warnings():
    """Huge starting points and learning rates: inf/NaN inside the kernel become divergence, frozen at a
    finite iterate, exactly as on the NumPy path; RuntimeWarnings are errors in this suite (pyproject)."""
    problem = st.Quadratic([1.0, 1e3])
    x0 = np.array([[1e150, 1.0], [1.0, 1e-300], [1e300, 1e300]])[:, None, :]
    eta = np.array([1e-3, 10.0, 1e200])[None, :]
    rho = np.full((3, 1), 0.1)
    for method in METHODS:
        a = st.simulate(problem, method, eta, rho, steps=50, x0=x0, backend="numpy", basis="dense")
        b = st.simulate(problem, method, eta, rho, steps=50, x0=x0, backend="compiled", basis="dense")
        assert np.array_equal(a.status, b.status) and np.array_equal(a.diverged_at, b.diverged_at)
        assert np.all(np.isfinite(b.x))
        np.testing.assert_allclose(b.x, a.x, rtol=RTOL, atol=0)


def test_without_numba_auto_falls_back_to_numpy_and_compiled_says_why(monkeypatch):
    from samtheory import _compiled

    monkeypatch.setattr(_compiled, "available", lambda: "Numba is not installed (simulated); pip install numba")
    problem = st.Quadratic([1.0, 10.0])
    reference = st.simulate(problem, "ssam", 0.05, 0.1, steps=20, backend="numpy")
    fallback = st.simulate(problem, "ssam", 0.05, 0.1, steps=20)
    assert fallback.options["backend"] == "numpy" and np.array_equal(fallback.x, reference.x)
    with pytest.raises(ValueError, match="backend='compiled' does not apply: Numba is not installed"):
        st.simulate(problem, "ssam", 0.05, 0.1, steps=20, backend="compiled")


def test_records_carry_converged_at():
    result = st.simulate(st.Quadratic([1.0, 2.0]), "gd", [0.1, 1.5], steps=300, x0=np.ones(2))
    records = result.to_records()
    assert records[0]["converged_at"] == int(result.converged_at[0]) >= 0 and records[1]["converged_at"] is None
