"""The update rules against closed forms and the conventions of docs/theory.md §2–3 (O1, O2, O4, O7)."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st_

import samtheory as st
import samtheory.datasets
from samtheory.methods import Step

METHOD_NAMES = list(st.METHODS)

# Spectra and hyperparameters drawn from bounded ranges: no NaN/inf draws by construction.
eigenvalues = st_.lists(st_.floats(0.01, 100.0), min_size=1, max_size=8).map(np.array)


def _rel_err(a, b):
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))


@pytest.mark.parametrize("steps", [1, 50, 200])
def test_gd_matches_closed_form(steps):
    """O1: x_T = (I − ηH)^T x_0 on a diagonal quadratic."""
    lam = np.array([0.5, 2.0, 10.0, 40.0])
    x0 = np.array([1.0, -2.0, 0.5, 3.0])
    eta = np.array([0.001, 0.01, 0.04])
    result = st.simulate(st.Quadratic(lam), "gd", eta, steps=steps, x0=x0)
    expected = (1 - eta[:, None] * lam) ** steps * x0
    # Per component, T roundings of a product: relative error <= ~T·ε ≈ 4e-14 for T = 200; 1e-12 leaves margin.
    assert _rel_err(result.x, expected) <= 1e-12


@pytest.mark.parametrize("steps", [1, 50, 200])
def test_usam_matches_closed_form(steps):
    """O2: x_T = (I − ηH − ηρH²)^T x_0 on a diagonal quadratic."""
    lam = np.array([0.5, 2.0, 10.0, 40.0])
    x0 = np.array([1.0, -2.0, 0.5, 3.0])
    eta = np.array([0.001, 0.005, 0.01])[:, None]
    rho = np.array([0.0, 0.01, 0.1])[None, :]
    result = st.simulate(st.Quadratic(lam), "usam", eta, rho, steps=steps, x0=x0)
    factor = 1 - eta[..., None] * lam - eta[..., None] * rho[..., None] * lam**2
    expected = factor**steps * x0
    # Each step is a few roundings per component (≤ ~3ε), compounded T times: ≤ 1e-12 relative.
    assert _rel_err(result.x, expected) <= 1e-12


@pytest.mark.parametrize("method", ["ssam", "susam"])
@given(lam=st_.floats(0.01, 100.0), x0=st_.floats(-10, 10), eta_fraction=st_.floats(0.01, 0.99),
       rho=st_.floats(0.0, 1.0))
def test_renormalized_step_equals_gd_step_in_one_dimension(method, lam, x0, eta_fraction, rho):
    """O4: in 1-D (λ > 0) one ssam/susam step from x equals one GD step from x, along a GD trajectory."""
    problem = st.Quadratic([lam])
    eta = eta_fraction * 2 / lam
    x = np.array([[x0]])
    for _ in range(30):
        renormalized = st.METHODS[method](x, problem.grad, eta, rho).x
        plain = st.METHODS["gd"](x, problem.grad, eta).x
        # γ g(y) equals g(x) up to ~3 roundings of g; the update x − η·(…) then errs by ≤ 4ε(|x| + η|g|).
        # Where g, γ or ηγ is subnormal it carries an absolute error of up to the spacing 2^-1074 instead, which
        # the step multiplies by |g(y)| ≤ λ(|x| + max(ρ, ρλ|x|)) ≤ λ(1 + ρ) here: we allow 4(2 + λ(1 + ρ)) units.
        subnormal = 4 * (2 + lam * (1 + rho)) * np.finfo(float).smallest_subnormal
        bound = 4 * np.finfo(float).eps * (1 + eta * lam) * abs(x[0, 0]) + subnormal
        assert abs(renormalized[0, 0] - plain[0, 0]) <= bound
        x = plain


@pytest.mark.parametrize("method", ["ssam", "susam"])
@given(lam=st_.floats(0.01, 100.0), x0=st_.floats(-10, 10), eta_fraction=st_.floats(0.01, 0.4),
       rho=st_.floats(0.0, 1.0))
def test_renormalized_methods_equal_gd_in_one_dimension(method, lam, x0, eta_fraction, rho):
    """O4 over whole runs: the engine's ssam/susam iterates equal GD's in 1-D (λ > 0)."""
    assume(abs(x0) > 1e-3)
    problem = st.Quadratic([lam])
    eta = eta_fraction * 2 / lam
    a = st.simulate(problem, method, eta, rho, steps=60, x0=[x0])
    b = st.simulate(problem, "gd", eta, steps=60, x0=[x0])
    # Per step ≤ 4ε(1 + ηλ)|x_t| (previous test), amplified by 1/|1 − ηλ| ≤ 1/0.2 relative to x_{t+1}:
    # 60 steps · 4ε · 1.8 · 5 ≈ 5e-13 relative; 1e-12 leaves margin (η ≤ 0.8/λ keeps |1 − ηλ| ≥ 0.2).
    assert abs(a.x[0] - b.x[0]) <= 1e-12 * abs(b.x[0]) + 1e-300


def test_one_dimensional_reduction_needs_positive_curvature():
    """Where O4 stops holding: on a concave 1-D quadratic (λ < 0) with |x| < ρ the normalized ascent step
    crosses the maximum, g(y) points the other way, and ssam moves opposite to GD."""
    problem = st.Quadratic([-1.0])
    x0, eta, rho = np.array([0.1]), 0.1, 0.5
    ssam_step = st.simulate(problem, "ssam", eta, rho, steps=1, x0=x0)
    gd_step = st.simulate(problem, "gd", eta, steps=1, x0=x0)
    # Exact arithmetic: GD gives 0.1·(1 + 0.1) = 0.11; ssam gives 0.1 − 0.1·0.1 = 0.09. Tolerance: 1e-15 absolute.
    assert gd_step.x[0] == pytest.approx(0.11, abs=1e-15)
    assert ssam_step.x[0] == pytest.approx(0.09, abs=1e-15)


@pytest.mark.parametrize("method", METHOD_NAMES)
@pytest.mark.parametrize("problem", [st.Quadratic([1.0, 10.0, 100.0], rotation=3),
                                     st.datasets.make_least_squares(30, 4, seed=1),
                                     st.datasets.make_logistic_regression(30, 4, seed=2)],
                         ids=["quadratic", "least_squares", "logistic"])
def test_rho_zero_is_gd(method, problem):
    """Every method with ρ = 0 is GD: the ascent point is x itself and γ = ‖g‖/‖g‖ = 1, exactly in IEEE
    arithmetic, so the iterates are bit-identical (tolerance 0)."""
    eta = np.array([1e-3, 5e-3])
    a = st.simulate(problem, method, eta, 0.0, steps=100, seed=1, basis="dense")
    b = st.simulate(problem, "gd", eta, 0.0, steps=100, seed=1, basis="dense")
    np.testing.assert_array_equal(a.x, b.x)


@pytest.mark.parametrize("method", METHOD_NAMES)
@pytest.mark.parametrize("options", [{}, {"adaptive": True}, {"truncate": True}])
def test_zero_gradient_gives_no_nan(method, options):
    """docs/theory.md §2: ‖g(x)‖ = 0 means ε = 0 and γ = 1; the iterate stays put, no NaN, no warning."""
    x = np.zeros((2, 3))
    step = st.METHODS[method](x, st.Quadratic([1.0, 2.0, 3.0]).grad, 0.1, 0.05, **options)
    assert np.array_equal(step.x, x)
    assert step.gamma is None or np.array_equal(step.gamma, np.ones(2))


def test_adaptive_ascent_and_weighted_gamma():
    """ASAM convention of the official code: ε = ρ T(x)² g/‖T(x) g‖, γ = ‖T(x) g(x)‖/‖T(y) g(y)‖ times the
    unweighted g(y). Checked against a direct transcription on one point."""
    problem = st.Quadratic([1.0, 4.0, 9.0], rotation=1)
    x = np.array([[0.3, -1.2, 2.0]])
    eta, rho = 0.05, 0.2
    g = problem.grad(x)[0]
    for normalize, method in ((True, "ssam"), (False, "susam")):
        weighted = np.abs(x[0]) * g
        eps = rho * np.abs(x[0]) ** 2 * g / (np.linalg.norm(weighted) if normalize else 1.0)
        y = x[0] + eps
        gy = problem.grad(y)
        gamma = np.linalg.norm(weighted) / np.linalg.norm(np.abs(y) * gy)
        expected = x[0] - eta * gamma * gy
        step = st.METHODS[method](x, problem.grad, eta, rho, adaptive=True)
        # Same operations in a different order: agreement to 1e-14 relative.
        np.testing.assert_allclose(step.x[0], expected, rtol=1e-14)
        np.testing.assert_allclose(step.gamma[0], gamma, rtol=1e-14)


@pytest.mark.parametrize("method", ["ssam", "susam"])
def test_truncate_caps_gamma_at_one(method):
    """On a concave direction ‖g(y)‖ < ‖g(x)‖ so γ > 1 (O11); truncate caps it at 1."""
    problem = st.Saddle()
    x = np.array([[0.01, 0.2], [0.02, -0.3]])  # gradient dominated by the concave direction
    free = st.METHODS[method](x, problem.grad, 0.1, 0.05)
    capped = st.METHODS[method](x, problem.grad, 0.1, 0.05, truncate=True)
    assert np.all(free.gamma > 1)
    np.testing.assert_array_equal(capped.gamma, np.minimum(free.gamma, 1.0))


@given(lam=eigenvalues, rho=st_.floats(0.0, 1.0), eta_fraction=st_.floats(0.05, 1.5), seed=st_.integers(0, 2**16))
def test_gamma_within_o4_bounds_along_trajectories(lam, rho, eta_fraction, seed):
    """O4 on PSD quadratics: susam's γ ∈ [1/(1 + ρλ_max), 1]; ssam's γ ∈ [1/(1 + ρλ_max/‖Hx‖), 1]."""
    problem = st.Quadratic(lam, rotation=seed % 7)
    eta = eta_fraction * 2 / problem.beta
    x = problem.initial_point(seed)[None, :]
    lam_max = problem.beta
    for _ in range(40):
        for method in ("susam", "ssam"):
            step = st.METHODS[method](x, problem.grad, eta, rho)
            if method == "susam":
                lower = 1 / (1 + rho * lam_max)
            else:
                lower = 1 / (1 + rho * lam_max / step.grad_norm)
            # γ is a ratio of computed norms: bounds hold to a few ε, 1e-12 relative slack.
            assert np.all(step.gamma >= lower * (1 - 1e-12))
            assert np.all(step.gamma <= 1 + 1e-12)
        x = step.x
        if not np.all(np.isfinite(x)) or np.linalg.norm(x) > 1e100 or np.linalg.norm(x) < 1e-100:
            break


@pytest.mark.parametrize("method", METHOD_NAMES)
@given(lam=eigenvalues, rotation_seed=st_.integers(0, 2**16), rho=st_.floats(0.0, 0.5),
       eta_fraction=st_.floats(0.05, 0.5))
def test_rotation_equivariance(method, lam, rotation_seed, rho, eta_fraction):
    """O7: simulating H = Q diag(λ) Qᵀ densely equals simulating diag(λ) and rotating back. Also the core
    engine check: the dense path and the eigenbasis path agree to 1e-10 relative."""
    problem = st.Quadratic(lam, rotation=rotation_seed)
    lam_max = problem.beta
    eta = eta_fraction * 2 / (lam_max * (1 + rho * lam_max))  # inside every method's stable range
    x0 = problem.initial_point(rotation_seed)
    # 20 steps: SAM's normalized ascent makes its map expansive near the minimum (derivative ~ ρλ²/‖g‖),
    # so rounding differences grow along long bouncing trajectories whatever the implementation.
    dense = st.simulate(problem, method, eta, rho, steps=20, x0=x0, basis="dense")
    eigen = st.simulate(problem, method, eta, rho, steps=20, x0=x0, basis="eigen")
    # The largest vector the step computes: x itself, or for the normalized ascent (sam, ssam) the
    # ascent point of norm ≈ ρ, whose rounding (ε‖y‖) lands in x even when x is tiny.
    scale = max(np.linalg.norm(dense.x), rho if method in ("sam", "ssam") else 0.0, 1e-300)
    # Rotations cost O(dε) of that scale per step; 20 steps stay below 1e-10.
    assert np.linalg.norm(dense.x - eigen.x) <= 1e-10 * scale


def test_adaptive_breaks_rotation_equivariance():
    """O7's second half: T(x) = |x| depends on the basis, so adaptive SAM on a rotated quadratic differs
    from the rotated run in the eigenbasis (difference far above round-off, 1e-6 relative)."""
    problem = st.Quadratic([1.0, 10.0, 50.0], rotation=5)
    diagonal = st.Quadratic([1.0, 10.0, 50.0])
    x0 = problem.initial_point(0)
    rotated = st.simulate(problem, "sam", 0.01, 0.1, steps=30, x0=x0, adaptive=True)
    z0 = x0 @ problem.eigenvectors
    in_eigenbasis = st.simulate(diagonal, "sam", 0.01, 0.1, steps=30, x0=z0, adaptive=True)
    back = in_eigenbasis.x @ problem.eigenvectors.T
    assert np.linalg.norm(rotated.x - back) > 1e-6 * np.linalg.norm(back)


def test_user_rule_signature_runs_through_engine():
    def heavy_ball_free(x, grad, eta, rho, **options):
        g = grad(x)
        norm = np.linalg.norm(g, axis=1)
        return Step(x - eta * g, norm)

    a = st.simulate(st.Quadratic([1.0, 5.0]), heavy_ball_free, [0.1, 0.3], steps=20, x0=[1.0, 1.0])
    b = st.simulate(st.Quadratic([1.0, 5.0]), "gd", [0.1, 0.3], steps=20, x0=[1.0, 1.0])
    np.testing.assert_array_equal(a.x, b.x)
    assert a.method == "heavy_ball_free"


def test_builtin_rules_keep_their_names():
    for name, spec in st.METHODS.items():
        for form in (name, spec, spec.rule):  # a name, the spec and its bare rule all resolve to the spec
            assert st.resolve_method(form) is spec
            assert st.simulate(st.Quadratic([1.0]), form, 0.1, steps=2).method == name


def test_registry_describes_each_builtin_method():
    structure = {name: (spec.ascent, spec.normalized, spec.renormalized) for name, spec in st.METHODS.items()}
    assert structure == {"gd": (False, False, False), "sam": (True, True, False), "usam": (True, False, False),
                         "ssam": (True, True, True), "susam": (True, False, True)}
    assert all(spec.kind == name and spec.builtin for name, spec in st.METHODS.items())
    # The paper (Tan et al.) calls the unnormalized ascent SAM: its SAM/SSAM are usam/susam, SAM†/SSAM† sam/ssam.
    assert {name: spec.paper_name for name, spec in st.METHODS.items()} == {
        "gd": "SGD", "sam": "SAM†", "usam": "SAM", "ssam": "SSAM†", "susam": "SSAM"}


def test_a_registered_family_member_runs_everywhere_by_name():
    spec = st.sharpness_aware_method("my_susam", normalized=False, renormalized=True, label="mine")
    try:
        st.register_method(spec)
        problem = st.Quadratic([1.0, 10.0])
        ours = st.simulate(problem, "my_susam", [0.05, 0.15], 0.1, steps=50)
        builtin = st.simulate(problem, "susam", [0.05, 0.15], 0.1, steps=50)
        np.testing.assert_array_equal(ours.x, builtin.x)  # same rule, same structure: bit for bit
        assert ours.method == "my_susam"
        assert st.resolve_method("my_susam").kind == "susam"
        rate = st.stability.asymptotic_rate("my_susam", [1.0, 10.0], 0.1, 0.1)
        assert rate == st.stability.asymptotic_rate("susam", [1.0, 10.0], 0.1, 0.1)
        with pytest.raises(ValueError, match="already registered"):
            st.register_method(spec)
    finally:
        st.METHODS.pop("my_susam", None)


@pytest.mark.parametrize("bad, message", [
    (42, "method must be one of"), ("adam", "method must be one of"), (None, "method must be one of")])
def test_resolve_method_names_the_argument(bad, message):
    with pytest.raises(ValueError, match=message):
        st.resolve_method(bad)


def test_user_rules_have_unknown_structure():
    def my_rule(x, grad, eta, rho, **options):
        return st.gd(x, grad, eta, rho)

    spec = st.resolve_method(my_rule)
    assert spec.name == "my_rule" and spec.kind is None and not spec.known and not spec.builtin
    with pytest.raises(ValueError, match="normalized must be True or False"):
        st.sharpness_aware_method("x", normalized=1, renormalized=False)
