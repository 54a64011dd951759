"""Stability regimes: closed forms (docs/theory.md O1–O4), linearization, measured thresholds, the regime table."""

import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as hst

import samtheory as st
from samtheory import stability
from samtheory.cli import main
from samtheory.result import BOUNDED, CONVERGED, DIVERGED
from samtheory.testing import assert_converges_below, assert_diverges_above, quadratics, radii, spectra

CLOSED_FORM = 1e-12  # float64 closed forms: a few roundings of O(1) expressions
LINEARIZATION = 1e-6  # the bound for Jacobian spectral radii against closed forms
THREE = st.Quadratic([1.0, 10.0, 100.0])


# -- closed forms -------------------------------------------------------------------------------------------

def test_closed_form_values_on_the_reference_spectrum():
    # Hand-computed: 2/100; 2/(100·(1 + 0.05·100)) = 1/300; SAM's cycle at η = 0.01: 0.01·0.05·100/(2 − 1).
    assert stability.gd_critical_learning_rate(100.0) == pytest.approx(0.02, rel=CLOSED_FORM)
    assert stability.usam_critical_learning_rate(100.0, 0.05) == pytest.approx(1 / 300, rel=CLOSED_FORM)
    assert stability.sam_cycle_amplitude(0.01, 0.05, 100.0) == pytest.approx(0.05, rel=CLOSED_FORM)
    # Vectorized: a (3, 1) column of λ against a (4,) row of ρ.
    lam = np.array([[1.0], [10.0], [100.0]])
    rho = np.array([0.0, 0.01, 0.1, 1.0])
    grid = stability.usam_critical_learning_rate(lam, rho)
    assert grid.shape == (3, 4)
    np.testing.assert_allclose(grid[:, 0], 2 / lam[:, 0], rtol=CLOSED_FORM)


@given(lam=hst.floats(1e-3, 1e3), rho=hst.floats(0.0, 10.0))
def test_usam_threshold_and_max_stable_sharpness_round_trip(lam, rho):
    eta_c = stability.usam_critical_learning_rate(lam, rho)
    assert stability.usam_max_stable_sharpness(eta_c, rho) == pytest.approx(lam, rel=CLOSED_FORM)
    assert eta_c * lam * (1 + rho * lam) == pytest.approx(2.0, rel=CLOSED_FORM)


def test_usam_max_stable_sharpness_rho_to_zero_is_gd_without_division_by_zero():
    eta = np.array([1e-3, 0.1, 10.0])
    np.testing.assert_array_equal(stability.usam_max_stable_sharpness(eta, 0.0), 2 / eta)
    # Tiny ρ: the cancellation-free form stays within float64 rounding of the GD limit (relative O(ρ/η)).
    np.testing.assert_allclose(stability.usam_max_stable_sharpness(eta, 1e-300), 2 / eta, rtol=CLOSED_FORM)
    near = stability.usam_max_stable_sharpness(0.01, 1e-9)
    assert near < 2 / 0.01 and near == pytest.approx(2 / 0.01, rel=1e-5)  # first order: 2/η·(1 − 2ρ/η)


@given(eta_lam=hst.floats(1e-3, 1.999), lam=hst.floats(1e-2, 1e2), rho=hst.floats(1e-4, 1.0))
def test_sam_edge_at_the_cycle_gradient_norm_is_lambda_1(eta_lam, lam, rho):
    eta = eta_lam / lam
    amplitude = stability.sam_cycle_amplitude(eta, rho, lam)
    # O3: the gradient norm on the 2-cycle is λ_1·a, and the SAM edge there is λ_1.
    # 1e-10: for ηλ near 2 the factor 2 − ηλ loses a few digits.
    assert stability.sam_edge(eta, rho, lam * amplitude) == pytest.approx(lam, rel=1e-10)


def test_sam_edge_limits():
    assert stability.sam_edge(0.01, 0.0, 3.0) == pytest.approx(200.0, rel=CLOSED_FORM)  # ρ = 0: GD's 2/η
    assert stability.sam_edge(0.01, 0.05, 0.0) == 0.0  # ‖g‖ → 0: the edge closes
    # SAM at fixed ‖g‖ is USAM with radius ρ/‖g‖.
    assert stability.sam_edge(0.01, 0.05, 2.0) == pytest.approx(stability.usam_max_stable_sharpness(0.01, 0.025),
                                                                rel=CLOSED_FORM)


def test_sam_cycle_needs_eta_lambda_below_two():
    with pytest.raises(ValueError, match="eta \\* lam must be < 2"):
        stability.sam_cycle_amplitude(0.02, 0.05, 100.0)


@settings(max_examples=15)
@given(problem=quadratics(spectra(max_dim=6, max_condition=30)), rho=hst.floats(1e-3, 1.0),
       fraction=hst.floats(0.1, 0.95), method=hst.sampled_from(["ssam", "susam"]))
def test_renormalization_factor_stays_within_the_o4_bounds(problem, rho, fraction, method):
    eta = fraction * 2 / problem.beta
    result = st.simulate(problem, method, eta, rho, steps=200, x0=stability.initial_points(problem, 1)[0],
                         record_every=1)
    gamma = result.history.gamma[:-1]  # the last record has no step
    grad_norm = result.history.grad_norm[:-1]
    bounds = stability.renormalization_bounds(method, problem.eigenvalues, rho, grad_norm=grad_norm)
    # Relative 1e-12: γ is a ratio of two norms, each computed to a few ulps, as long as the gradient is a normal
    # float; a subnormal ‖g‖ (the run has converged to ~1e-310) has lost its relative precision.
    normal = grad_norm >= np.finfo(np.float64).tiny
    assert np.all(gamma[normal] >= bounds.lower[normal] * (1 - CLOSED_FORM))
    assert np.all(gamma[normal] <= bounds.upper[normal] * (1 + CLOSED_FORM))
    assert np.all(bounds.upper <= 1.0)  # the O4 interval [.., 1] contains ours


def test_renormalization_bounds_of_rules_without_renormalization_are_one():
    for method in ("gd", "sam", "usam"):
        bounds = stability.renormalization_bounds(method, [1.0, 10.0], 0.3)
        assert bounds.lower == 1.0 and bounds.upper == 1.0


@settings(max_examples=20)
@given(lam=hst.floats(1e-2, 1e2), fraction=hst.floats(0.05, 0.99), rho=hst.floats(0.0, 1.0),
       x0=hst.floats(-3.0, 3.0).filter(lambda v: abs(v) > 1e-3), method=hst.sampled_from(["ssam", "susam"]))
def test_renormalized_methods_are_gd_in_one_dimension(lam, fraction, rho, x0, method):
    problem = st.Quadratic([lam])
    eta = fraction * 2 / lam
    ours = st.simulate(problem, method, eta, rho, steps=60, x0=[x0], record_every=1).history.distance
    gd = st.simulate(problem, "gd", eta, rho, steps=60, x0=[x0], record_every=1).history.distance
    # Same iterates up to rounding: γ·g(y) = g(x) holds to a few ulps per step, and the map contracts.
    np.testing.assert_allclose(ours, gd, rtol=1e-10, atol=1e-13 * abs(x0))
    analytic = stability.analytic_critical_learning_rate(method, [lam], rho).value
    assert analytic == pytest.approx(2 / lam, rel=CLOSED_FORM)


# -- the analytic table --------------------------------------------------------------------------------------

def test_analytic_thresholds_and_reasons():
    lam = [1.0, 10.0, 100.0]
    rho = np.array([0.0, 0.05])
    gd = stability.analytic_critical_learning_rate("gd", lam, rho)
    np.testing.assert_allclose(gd.value, [0.02, 0.02], rtol=CLOSED_FORM)
    usam = stability.analytic_critical_learning_rate("usam", lam, rho, edge="converged")
    np.testing.assert_allclose(usam.value, [0.02, 1 / 300], rtol=CLOSED_FORM)
    sam = stability.analytic_critical_learning_rate("sam", lam, rho, edge="converged")
    assert sam.value[0] == pytest.approx(0.02, rel=CLOSED_FORM) and np.isnan(sam.value[1])
    assert sam.reason[0] == "" and "2-cycle" in sam.reason[1] and "2-cycle" in sam.reason_text
    assert sam.source == "analytic" and sam.tolerance == 0 and np.array_equal(sam.lower, sam.value, equal_nan=True)
    positive = stability.analytic_critical_learning_rate("ssam", lam, 0.05)
    assert np.isnan(positive.value) and "no closed form for ssam in d > 1" in positive.reason_text
    # O13: susam's non-divergent edge is 2/λ_max in any dimension; its converged edge is ill-posed.
    susam = stability.analytic_critical_learning_rate("susam", lam, 0.05)
    assert susam.value == pytest.approx(0.02, rel=CLOSED_FORM) and susam.reason_text == ""
    susam = stability.analytic_critical_learning_rate("susam", lam, 0.05, edge="converged")
    assert np.isnan(susam.value) and "ill-posed" in susam.reason_text
    assert np.isnan(stability.analytic_critical_learning_rate("usam", lam, 0.05, adaptive=True).value)
    assert np.isfinite(stability.analytic_critical_learning_rate(st.usam.rule, lam, 0.05).value)  # the built-in rule
    custom = stability.analytic_critical_learning_rate(lambda *a, **k: None, lam, 0.05)
    assert np.isnan(custom.value) and "user-defined" in custom.reason_text
    indefinite = stability.analytic_critical_learning_rate("gd", [1.0, -1.0], 0.05)
    assert np.isnan(indefinite.value) and "negative eigenvalue" in indefinite.reason_text
    batch = stability.analytic_critical_learning_rate("usam", [[1.0, 10.0], [1.0, 100.0]], [[0.0], [0.1], [1.0]])
    assert batch.value.shape == (3, 2)


@given(eta=hst.floats(1e-3, 1.0), rho=hst.floats(0.0, 1.0), lam=spectra(max_dim=5, max_condition=100))
def test_asymptotic_rates_are_consistent_with_the_thresholds(eta, rho, lam):
    gd_rate = stability.asymptotic_rate("gd", lam, eta, rho)
    assert (gd_rate < 1) == (eta < 2 / lam[0]) or abs(eta * lam[0] - 2) < 1e-12
    usam_rate = stability.asymptotic_rate("usam", lam, eta, rho)
    assert (usam_rate < 1) == (eta < stability.usam_critical_learning_rate(lam[0], rho)) or abs(usam_rate - 1) < 1e-12
    # susam: GD's rate, floored at USAM's best rate — never better than either.
    susam_rate = stability.asymptotic_rate("susam", lam, eta, rho)
    assert susam_rate >= gd_rate
    a_max, a_min = lam[0] * (1 + rho * lam[0]), lam[-1] * (1 + rho * lam[-1])
    assert susam_rate >= (a_max - a_min) / (a_max + a_min) - CLOSED_FORM


# -- linearization ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("exact", [None, False])
def test_spectral_radius_is_one_at_the_gd_and_usam_thresholds(exact):
    problem = st.Quadratic([1.0, 10.0, 100.0], rotation=4)
    assert stability.spectral_radius(problem, "gd", 0.02, 0.0, exact=exact) == pytest.approx(1.0, rel=LINEARIZATION)
    for rho in (0.01, 0.5):
        eta_c = float(stability.usam_critical_learning_rate(100.0, rho))
        radius = stability.spectral_radius(problem, "usam", eta_c, rho, exact=exact)
        assert radius == pytest.approx(1.0, rel=LINEARIZATION)
        # and λ*(η, ρ) from O2 is the sharpness at which the radius reaches 1
        sharp = st.Quadratic([1.0, float(stability.usam_max_stable_sharpness(0.004, rho))])
        radius = stability.spectral_radius(sharp, "usam", 0.004, rho, exact=exact)
        assert radius == pytest.approx(1.0, rel=LINEARIZATION)


@pytest.mark.parametrize("exact", [None, False])
def test_sam_two_cycle_jacobian_matches_o3(exact):
    lam = np.array([100.0, 10.0, 1.0])
    problem = st.Quadratic(lam)
    eta, rho = 0.015, 0.05
    a = float(stability.sam_cycle_amplitude(eta, rho, lam[0]))
    cycle = np.array([a, 0.0, 0.0])
    two_step = (stability.jacobian(problem, "sam", -cycle, eta, rho, exact=exact)
                @ stability.jacobian(problem, "sam", cycle, eta, rho, exact=exact))
    # Diagonal in the eigenbasis: (1 − ηλ_1)² along u_1, (1 − ηλ_i(1 + ρλ_i/‖g_c‖))² across, ‖g_c‖ = λ_1·a.
    expected = np.array([(1 - eta * lam[0]) ** 2, *((1 - eta * lam[1:] * (1 + rho * lam[1:] / (lam[0] * a))) ** 2)])
    np.testing.assert_allclose(np.diag(two_step), expected, rtol=LINEARIZATION, atol=LINEARIZATION)
    radius = stability.spectral_radius(problem, "sam", eta, rho, exact=exact)
    assert radius == pytest.approx(np.max(expected), rel=LINEARIZATION)
    # A second direction with the top eigenvalue sits exactly at the SAM edge: multiplier −1, radius 1.
    degenerate = st.Quadratic([100.0, 100.0, 1.0], rotation=2)
    assert stability.spectral_radius(degenerate, "sam", eta, rho, exact=exact) == pytest.approx(1.0, rel=LINEARIZATION)
    # SAM's bounded edge: the radius along u_1 reaches 1 at η = 2/λ_1.
    edge = stability.spectral_radius(problem, "sam", 0.02 * (1 - 1e-9), rho, exact=exact)
    assert edge == pytest.approx(1.0, rel=LINEARIZATION)


@pytest.mark.parametrize("method", ["ssam", "susam"])
def test_renormalized_jacobian_in_one_dimension_is_gd(method):
    problem = st.Quadratic([40.0])
    for exact in (None, False):
        radius = stability.spectral_radius(problem, method, 0.05, 0.3, x=[0.7], exact=exact)
        assert radius == pytest.approx(1.0, rel=LINEARIZATION)  # |1 − ηλ| at η = 2/λ
    with pytest.raises(ValueError, match="not differentiable at the minimizer"):
        stability.spectral_radius(problem, method, 0.05, 0.3)


@settings(max_examples=20)
@given(problem=quadratics(spectra(max_dim=5, max_condition=100)), rho=hst.floats(0.0, 1.0),
       fraction=hst.floats(0.05, 1.5), method=hst.sampled_from(list(st.METHODS)), truncate=hst.booleans(),
       seed=hst.integers(0, 1000))
def test_exact_jacobian_agrees_with_central_differences(problem, rho, fraction, method, truncate, seed):
    x = problem.center + np.random.default_rng(seed).standard_normal(problem.dim)
    eta = fraction * 2 / problem.beta
    exact = stability.jacobian(problem, method, x, eta, rho, truncate=truncate)
    numeric = stability.jacobian(problem, method, x, eta, rho, truncate=truncate, exact=False)
    scale = np.max(np.abs(exact)) + 1
    # Central differences, h ≈ 6e-6·‖x‖: O(h²·f''') truncation plus O(ε/h) rounding, far below 1e-6.
    np.testing.assert_allclose(numeric, exact, rtol=0, atol=LINEARIZATION * scale)


def test_jacobian_on_a_non_quadratic_problem_agrees_with_central_differences():
    problem = st.LogisticRegression(*_logistic_data(), l2=0.1)
    x = np.linspace(-0.5, 0.5, problem.dim)
    for method in st.METHODS:
        exact = stability.jacobian(problem, method, x, 0.5, 0.2)
        numeric = stability.jacobian(problem, method, x, 0.5, 0.2, exact=False)
        np.testing.assert_allclose(numeric, exact, rtol=0, atol=LINEARIZATION)  # entries O(1); FD error ~1e-9
    with pytest.raises(ValueError, match="x is required"):
        stability.spectral_radius(problem, "gd", 0.5, 0.0)


def _logistic_data():
    rng = np.random.default_rng(3)
    features = rng.standard_normal((30, 4))
    return features, (features @ np.ones(4) + 0.3 * rng.standard_normal(30) > 0).astype(float)


# -- measured regimes ---------------------------------------------------------------------------------------

@settings(max_examples=12)
@given(problem=quadratics(spectra(max_dim=20, max_condition=100)), rho=radii(), method=hst.sampled_from(["gd", "usam"]))
def test_gd_and_usam_converge_below_and_diverge_above_their_thresholds(problem, rho, method):
    lam = problem.eigenvalues
    eta_c = float(stability.analytic_critical_learning_rate(method, lam, rho).value)
    delta = 1e-2
    rate = float(stability.asymptotic_rate(method, lam, (1 - delta) * eta_c, rho))
    steps_needed = int(np.ceil(np.log(1e-7) / np.log(rate)))  # ‖g‖ down by 1e-6 with a 10x margin on the constant
    assume(steps_needed <= 20_000)  # off the degenerate draws (USAM with ρλ_max ≫ 1 on a wide spectrum)
    assert_converges_below(problem, method, eta_c, rho, delta=delta, steps=steps_needed)
    # Above: ‖g‖ grows at least like (1 + 2δ)^t; 1e6·max(‖g_0‖, 1)/‖g_0‖ ≤ 1e6/min(λ_1/2, 1)·… → 3000 steps.
    assert_diverges_above(problem, method, eta_c, rho, delta=delta, steps=3000)
    # The bisection's tolerance is the stated tolerance of the measured threshold.
    measured = stability.critical_learning_rate(problem, method, rho, rtol=delta)
    assert abs(measured.value[0] - eta_c) / eta_c <= delta


@settings(max_examples=10)
@given(problem=quadratics(spectra(min_dim=2, max_dim=8, max_condition=100)), rho=hst.floats(1e-3, 1.0),
       method=hst.sampled_from(["sam", "ssam", "susam"]))
def test_sam_ssam_susam_stay_non_divergent_up_to_gds_threshold(problem, rho, method):
    # Measured relation (O5): the non-divergent edge of sam, ssam and susam is GD's 2/λ_max, to the stated
    # tolerance. (Divergence above it is provable for ssam/susam from γ's lower bound, O4.)
    measured = stability.critical_learning_rate(problem, method, rho, rtol=1e-2)
    gd_edge = 2 / problem.beta
    assert abs(measured.value[0] - gd_edge) / gd_edge <= 1e-2


@settings(max_examples=8)
@given(problem=quadratics(spectra(max_dim=8, max_condition=10)), rho=hst.floats(1e-3, 1.0),
       eta_lam=hst.floats(0.2, 1.8))
def test_sam_reaches_the_o3_two_cycle(problem, rho, eta_lam):
    lam = problem.eigenvalues
    assume(problem.dim == 1 or lam[1] <= 0.9 * lam[0])  # a gap: the cycle attracts at rate ≤ 0.8 across u_1
    eta = eta_lam / lam[0]
    result = st.simulate(problem, "sam", eta, rho, steps=4000, x0=stability.initial_points(problem, 1)[0])
    z = result.x - problem.center
    top = z @ (np.eye(problem.dim)[:, 0] if problem.eigenvectors is None else problem.eigenvectors[:, 0])
    a = float(stability.sam_cycle_amplitude(eta, rho, lam[0]))
    assert result.status == BOUNDED
    assert abs(abs(top) - a) <= 1e-6 * a  # O3 amplitude to 1e-6 relative (the bound)
    assert np.linalg.norm(z - top * (problem.eigenvectors[:, 0] if problem.eigenvectors is not None
                                     else np.eye(problem.dim)[:, 0])) <= 1e-6 * a
    # and the SAM edge at the measured gradient norm is λ_1
    assert stability.sam_edge(eta, rho, result.grad_norm) == pytest.approx(lam[0], rel=1e-6)


def test_susam_between_usams_and_gds_thresholds_converges_slowly_at_usams_best_rate():
    """The demo's 'bounded, loss ≈ 4e-7' for susam: slow convergence, not an equilibrium.

    Quadratic([1, 10, 100]), ρ = 0.05, x0 = 1: between η_a = 2(1 + ρλ_min)/(A_max + A_min) ≈ 0.00349 and
    2/λ_max the sharp component bounces (period 2) and ηγ settles at 2/(A_max + A_min) (A = λ(1 + ρλ)),
    USAM's optimal step, whatever η is; ‖g‖ then contracts by (A_max − A_min)/(A_max + A_min) ≈ 0.996506
    per step, so 2000 steps reach ‖g_T‖/‖g_0‖ ≈ 1e-5 (bounded), 8000 steps converge.
    """
    eta = np.array([0.004, 0.006, 0.01, 0.015, 0.018])
    rho = 0.05
    lam = THREE.eigenvalues
    a_max, a_min = lam[-1] * (1 + rho * lam[-1]), lam[0] * (1 + rho * lam[0])
    short = st.simulate(THREE, "susam", eta, rho, steps=2000, x0=np.ones(3), record_every=1000)
    assert np.all(short.status == BOUNDED)
    # Same loss for every η (spread < 10%, the period-2 phase of the bouncing sharp component): η does not matter.
    assert np.ptp(np.log(short.loss)) < 0.1
    rate = (short.history.grad_norm[-1] / short.history.grad_norm[-2]) ** (1 / 1000)
    # Measured rate = the predicted plateau to 1e-6 relative (the transient has died out after 1000 steps).
    np.testing.assert_allclose(rate, (a_max - a_min) / (a_max + a_min), rtol=1e-6)
    np.testing.assert_allclose(rate, stability.asymptotic_rate("susam", lam, eta, rho), rtol=1e-6)
    np.testing.assert_allclose(eta * short.history.gamma[-2], 2 / (a_max + a_min), rtol=1e-3)  # the clamped step
    assert np.all(st.simulate(THREE, "susam", eta, rho, steps=8000, x0=np.ones(3)).status == CONVERGED)
    # GD at the same η converges within the 2000 steps: susam is slower than GD there, never faster.
    assert np.all(st.simulate(THREE, "gd", eta[1:], rho, steps=2000, x0=np.ones(3)).status == CONVERGED)


def test_ssam_rate_tends_to_its_small_gradient_limit():
    # ssam with ‖g‖ ≪ ρλ acts like USAM with radius ρ/‖g‖ → ∞: rate → (λ_1² − λ_d²)/(λ_1² + λ_d²), for every η
    # in the plateau (here {10, 1}: 99/101).
    problem = st.Quadratic([10.0, 1.0])
    eta = np.array([0.05, 0.1, 0.19])
    rate = stability.measured_rate(problem, "ssam", eta, 0.05, steps=4000, window=1000)
    np.testing.assert_allclose(rate, 99 / 101, rtol=1e-6)  # ‖g‖ ~ 1e-30 here: the limit holds to ~1e-12
    predicted = stability.asymptotic_rate("ssam", problem.eigenvalues, eta, 0.05)
    np.testing.assert_allclose(predicted, 99 / 101, rtol=CLOSED_FORM)


@settings(max_examples=10)
@given(lam=spectra(min_dim=2, max_dim=6, min_value=0.1, max_value=10.0), rho=hst.floats(0.01, 1.0),
       fraction=hst.floats(0.05, 0.97))
def test_susam_measured_rate_matches_the_derived_asymptotic_rate(lam, rho, fraction):
    problem = st.Quadratic(lam)
    eta = fraction * 2 / lam[0]
    predicted = float(stability.asymptotic_rate("susam", lam, eta, rho))
    # Two windows of at most 1000 steps, short enough that ‖g‖ stays far above the subnormal range.
    window = 2 * int(min(500, 40 / -np.log(predicted)))
    measured = float(stability.measured_rate(problem, "susam", eta, rho, steps=2 * window, window=window))
    assert measured == pytest.approx(predicted, rel=1e-3)  # 1e-3: transients of modes within ~1% of the slowest


def test_regime_map_is_one_simulate_call_and_classifies_the_reference_spectrum(monkeypatch):
    calls = []
    import samtheory.stability._measured as measured

    original = measured.simulate
    monkeypatch.setattr(measured, "simulate", lambda *a, **k: calls.append(1) or original(*a, **k))
    eta = np.array([0.002, 0.01, 0.0199, 0.0201])
    rho = np.array([0.0, 0.05])
    result = stability.regime_map(THREE, "usam", eta, rho, steps=2000)
    assert len(calls) == 1
    assert result.status.shape == (4, 2) and result.point_status.shape == (4, 2, 3)
    # ρ = 0 is GD: stable to 2/λ_max; ρ = 0.05: only below 2/(λ(1 + ρλ)) ≈ 0.00333.
    assert result.status[-1, 0] == DIVERGED and np.all(result.status[:-1, 0] != DIVERGED)
    assert result.status[0, 1] != DIVERGED and np.all(result.status[1:, 1] == DIVERGED)
    np.testing.assert_allclose(result.grid_edge(), [0.0199, 0.002], rtol=CLOSED_FORM)
    assert result.status_name.shape == (4, 2)


def test_critical_learning_rate_bisects_all_rho_at_once_and_is_deterministic(monkeypatch):
    rho = np.array([0.0, 0.01, 0.1, 0.5])
    calls = []
    import samtheory.stability._measured as measured

    original = measured.simulate
    monkeypatch.setattr(measured, "simulate", lambda *a, **k: calls.append(np.shape(a[2])) or original(*a, **k))
    first = stability.critical_learning_rate(THREE, "usam", rho, rtol=1e-3)
    # One call per bisection round for all ρ: ~log2(ln(4e4)/1e-3) ≈ 14 rounds, plus the bracket checks.
    assert len(calls) <= 20
    assert np.all(first.upper / first.lower - 1 <= 1e-3)
    np.testing.assert_array_equal(first.value, first.lower)
    analytic = stability.usam_critical_learning_rate(100.0, rho)
    assert np.all(np.abs(first.value - analytic) / analytic <= 1e-3)  # the stated tolerance
    second = stability.critical_learning_rate(THREE, "usam", rho, rtol=1e-3)
    np.testing.assert_array_equal(first.value, second.value)  # same rules, same result, bit for bit


def test_converged_edge_is_budget_dependent_and_absent_for_sam():
    gd = stability.critical_learning_rate(THREE, "gd", 0.0, edge="converged", rtol=1e-3, steps=2000)
    # Within T steps GD needs |1 − ηλ_1|^T ≲ 1e-6: its converged edge sits ≈ ln(1e6)/(2T) ≈ 3.5e-3 below 2/λ_max.
    shortfall = 1 - gd.value[0] / 0.02
    assert 1e-3 < shortfall < 1e-2
    sam = stability.critical_learning_rate(THREE, "sam", 0.05, edge="converged", rtol=1e-2)
    assert np.isnan(sam.value[0]) and "no run converged" in sam.reason[0]
    # susam converges nowhere within 2000 steps (best rate 0.9965), but within 20000 up to near 2/λ_max.
    short = stability.critical_learning_rate(THREE, "susam", 0.05, edge="converged", rtol=1e-2, steps=2000)
    long = stability.critical_learning_rate(THREE, "susam", 0.05, edge="converged", rtol=1e-2, steps=20_000)
    assert np.isnan(short.value[0])
    assert long.value[0] > 0.99 * 0.02


def test_eta_range_that_misses_the_edge_gives_none_with_a_reason():
    result = stability.critical_learning_rate(THREE, "gd", 0.0, eta_range=(1e-4, 1e-2), rtol=1e-2)
    assert np.isnan(result.value[0]) and "no divergence up to" in result.reason[0]
    result = stability.critical_learning_rate(THREE, "gd", 0.0, eta_range=(0.03, 0.1), rtol=1e-2)
    assert np.isnan(result.value[0]) and "bottom of eta_range" in result.reason[0]


def test_compare_regimes_rows():
    rows = stability.compare_regimes(THREE, ["usam", "susam"], [0.05, 0.1], rtol=1e-2)
    assert [(r["method"], r["rho"]) for r in rows] == [("usam", 0.05), ("usam", 0.1), ("susam", 0.05), ("susam", 0.1)]
    for row in rows:
        assert {"method", "rho", "analytic_eta", "empirical_eta", "relative_error", "tolerance", "width_vs_gd",
                "analytic_converged_eta", "empirical_converged_eta", "converged_relative_error",
                "converged_width_vs_gd", "steps", "divergence_steps", "note"} <= set(row)
        assert row["tolerance"] == 1e-2
    usam, susam = rows[0], rows[2]
    assert usam["relative_error"] <= 1e-2
    # USAM's regime is 1/(1 + ρλ_max) of GD's; susam's is GD's (both to the measured tolerance, 2·rtol).
    assert usam["width_vs_gd"] == pytest.approx(1 / 6, rel=2e-2)
    assert susam["width_vs_gd"] == pytest.approx(1.0, rel=2e-2)
    # O13: susam's analytic edge 2/λ_max, measured to the bisection tolerance; no converged edge (ill-posed).
    assert susam["analytic_eta"] == pytest.approx(0.02, rel=CLOSED_FORM) and susam["relative_error"] <= 1e-2
    assert susam["empirical_converged_eta"] is None and "ill-posed" in susam["note"]
    # The rate comparison that replaces it: measured against asymptotic_rate at half GD's edge.
    assert susam["rate_eta"] == pytest.approx(0.01, rel=2e-2)
    assert susam["rate_relative_error"] <= 1e-6
    json.dumps(rows)  # plain types only


def test_compare_regimes_on_a_non_quadratic_problem_has_no_analytic_values():
    problem = st.LogisticRegression(*_logistic_data(), l2=0.1)
    rows = stability.compare_regimes(problem, "gd", [0.0], rtol=1e-2, steps=500, eta_range=(0.1, 100.0))
    assert rows[0]["analytic_eta"] is None and "not a quadratic" in rows[0]["note"]
    # Far from the optimum the logistic gradient is bounded and the l2 term decides: GD diverges iff η·l2 > 2.
    assert rows[0]["empirical_eta"] == pytest.approx(2 / problem.l2, rel=1e-2)  # the bisection tolerance
    # Near the optimum the curvature is below the global β: GD converges beyond 2/β.
    assert rows[0]["empirical_converged_eta"] > 2 / problem.beta


# -- bad input ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, match", [
    (lambda: stability.gd_critical_learning_rate(0.0), "lam_max must be > 0"),
    (lambda: stability.usam_critical_learning_rate(1.0, -0.1), "rho must be >= 0"),
    (lambda: stability.usam_max_stable_sharpness(float("nan"), 0.1), "eta must be finite"),
    (lambda: stability.sam_cycle_amplitude(0.01, 0.1, -1.0), "lam must be > 0"),
    (lambda: stability.sam_edge(0.01, 0.1, -1.0), "grad_norm must be >= 0"),
    (lambda: stability.renormalization_bounds("ssam", [1.0, 2.0], 0.1), "grad_norm is required"),
    (lambda: stability.renormalization_bounds("adam", [1.0], 0.1), "method must be one of"),
    (lambda: stability.renormalization_bounds("susam", [1.0, -2.0], 0.1), "eigenvalues must be >= 0"),
    (lambda: stability.analytic_critical_learning_rate("gd", [1.0], 0.1, edge="fast"), "edge must be one of"),
    (lambda: stability.analytic_critical_learning_rate("gd", [], 0.1), "eigenvalues must have shape"),
    (lambda: stability.asymptotic_rate("gd", [0.0, 0.0], 0.1, 0.0), "must have a positive entry"),
    (lambda: stability.jacobian(THREE, "gd", [1.0, 2.0], 0.1, 0.0), "x must have shape"),
    (lambda: stability.jacobian(THREE, "sam", np.zeros(3), 0.01, 0.1), "not differentiable where the gradient is 0"),
    (lambda: stability.jacobian(THREE, "gd", np.ones(3), 0.01, 0.1, adaptive=True, exact=True), "no exact Jacobian"),
    (lambda: stability.jacobian("quadratic", "gd", np.ones(3), 0.01, 0.1), "problem must be a samtheory Problem"),
    (lambda: stability.spectral_radius(THREE, "sam", 0.03, 0.1), "no 2-cycle"),
    (lambda: stability.spectral_radius(THREE, "gd", 0.01, 0.1, period=0), "period must be an integer >= 1"),
    (lambda: stability.regime_map(THREE, "gd", [[0.1]], 0.1), "eta must be a scalar or 1-D"),
    (lambda: stability.regime_map(THREE, "gd", 0.1, 0.1, n_points=0), "n_points must be an integer >= 1"),
    (lambda: stability.regime_map(THREE, "gd", 0.1, 0.1, x0=np.ones(4)), "x0 must have shape"),
    (lambda: stability.regime_map(THREE, "gd", 0.1, 0.1, rules="strict"), "rules must be a ClassificationRules"),
    (lambda: stability.critical_learning_rate(THREE, "gd", 0.1, rtol=0.0), "rtol must be > 0"),
    (lambda: stability.critical_learning_rate(THREE, "gd", 0.1, rtol=1.5), "rtol must be in \\(0, 1\\)"),
    (lambda: stability.critical_learning_rate(THREE, "gd", 0.1, eta_range=(0.1, 0.01)), "eta_range must be"),
    (lambda: stability.critical_learning_rate(st.Saddle(), "gd", 0.1), "eta_range is required"),
    (lambda: stability.critical_learning_rate(THREE, "gd", 0.1, edge="both"), "edge must be one of"),
    (lambda: stability.compare_regimes(THREE, [], [0.1]), "methods must name at least one"),
    (lambda: stability.compare_regimes(THREE, "gd", [-0.1]), "rhos must be >= 0"),
    (lambda: stability.measured_rate(THREE, "gd", 0.01, 0.0, steps=100, window=30), "window must divide"),
    (lambda: stability.ClassificationRules(divergence_factor=1.0), "divergence_factor must be > 1"),
    (lambda: stability.ClassificationRules(steps=0), "steps must be an integer >= 1"),
    (lambda: stability.initial_points(THREE, 0), "n_points must be an integer >= 1"),
])
def test_bad_input_raises_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# -- command line -------------------------------------------------------------------------------------------

def test_cli_regime_json_for_one_pair(capsys):
    assert main(["regime", "--problem", "quadratic", "--eigs", "1,10,100", "--method", "usam", "--rho", "0.05",
                 "--rtol", "1e-2", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["method"] == "usam" and row["rho"] == 0.05 and row["tolerance"] == 0.01
    assert row["analytic_eta"] == pytest.approx(1 / 300, rel=CLOSED_FORM)
    assert row["relative_error"] <= 1e-2


def test_cli_regime_all_methods_table(capsys):
    assert main(["regime", "--eigs", "1,10", "--method", "all", "--rho", "0.1,0.2", "--rtol", "5e-2",
                 "--steps", "500", "--points", "2"]) == 0
    out = capsys.readouterr().out
    table = out.split("notes")[0]
    lines = [line for line in table.splitlines() if line.strip().startswith(tuple(st.METHODS))]
    assert len(lines) == 10  # 5 methods x 2 rho
    assert "empirical_eta" in out and "notes" in out


@pytest.mark.parametrize("argv, message", [
    (["regime", "--method", "adam"], "method must be one of"),
    (["regime", "--method", "all,gd"], "--method must be 'all' or"),
    (["regime", "--rho", "-0.1"], "rhos must be >= 0"),
    (["regime", "--rtol", "0"], "rtol must be > 0"),
    (["regime", "--points", "0"], "n_points must be an integer >= 1"),
    (["regime", "--steps", "0"], "steps must be an integer >= 1"),
    (["regime", "--divergence-factor", "1"], "divergence_factor must be > 1"),
    (["regime", "--divergence-steps", "-3"], "divergence_steps must be an integer >= 1"),
    (["regime", "--eta-range", "0.1"], "--eta-range must be two numbers"),
    (["regime", "--eta-range", "0.1,0.01"], "eta_range must be"),
    (["regime", "--tol", "-1"], "tol must be > 0"),
    (["regime", "--seed", "-1"], "seed must be an integer >= 0"),
    (["regime", "--rho", "abc"], "expected comma-separated numbers"),
])
def test_cli_regime_bad_input_is_one_line_exit_2(cli_error, argv, message):
    assert message in cli_error(argv)


# -- linearization on hostile input (issue 15) ----------------------------------------------------------------

@pytest.mark.parametrize("method", list(st.METHODS))
def test_jacobian_far_from_the_origin_is_finite_and_silent(method):
    """x = 1e300: ‖g‖² overflowed (a RuntimeWarning, and sam's normal g/‖g‖ became 0)."""
    problem = st.Quadratic([1.0, 2.0, 3.0])
    far = stability.jacobian(problem, method, np.full(3, 1e300), 0.1, 0.05)
    numeric = stability.jacobian(problem, method, np.full(3, 1e300), 0.1, 0.05, exact=False)
    assert np.all(np.isfinite(far))
    # Central differences at h = ε^(1/3)‖x‖: truncation O(h²) relative, rounding ε/ε^(1/3) ≈ 4e-11.
    np.testing.assert_allclose(far, numeric, rtol=0, atol=1e-9)
    if method in ("gd", "usam", "susam"):  # maps homogeneous of degree 1 on a quadratic: J(t·x) = J(x)
        np.testing.assert_allclose(far, stability.jacobian(problem, method, np.ones(3), 0.1, 0.05), rtol=1e-13,
                                   atol=1e-15)


def test_jacobian_that_overflows_raises():
    problem = st.Quadratic([1e300, 1.0])
    with pytest.raises(ValueError, match=r"the Jacobian of usam at eta=1, rho=1e\+300 is not finite at x"):
        stability.jacobian(problem, "usam", [1.0, 1.0], 1.0, 1e300)
    with pytest.raises(ValueError, match="overflows float64: the orbit diverges"):
        stability.spectral_radius(st.Quadratic([1e200, 1.0]), "gd", 1.0, 0.0, x=[1.0, 1.0], period=3)


@pytest.mark.parametrize("step, x", [(1e-320, np.ones(3)), (1e-310, np.zeros(3)), (1e-15, np.ones(3)),
                                     (1e-3, np.full(3, 1e20))])
def test_difference_steps_too_small_to_resolve_x_are_refused(step, x):
    """step = 1e-320 left x ± step = x and returned a zero Jacobian."""
    with pytest.raises(ValueError, match=r"step must be >= .* to resolve x, got"):
        stability.jacobian(st.Quadratic([1.0, 2.0, 3.0]), "gd", x, 0.1, 0.0, exact=False, step=step)


@pytest.mark.parametrize("call, error, match", [
    (lambda: stability.jacobian(st.Quadratic([1.0]), "gd", np.array([1j]), 0.1, 0.0), TypeError, "x must be"),
    (lambda: stability.jacobian(st.Quadratic([1.0]), "gd", 1.0, 0.1, 0.0), ValueError, r"x must have shape \(1,\)"),
    (lambda: stability.jacobian(st.Quadratic([1.0]), "gd", [1.0], [0.1], 0.0), ValueError, "eta must be a single"),
    (lambda: stability.jacobian(st.Quadratic([1.0]), "gd", [1.0], 0.1, 0.0, exact="yes"), TypeError,
     "exact must be True or False"),
    (lambda: stability.jacobian(st.Quadratic([1.0]), "gd", [1.0], 0.1, 0.0, truncate=1), TypeError,
     "truncate must be True or False"),
    (lambda: stability.spectral_radius(st.Quadratic([1.0]), "gd", 0.1, 0.0, period=10**400), ValueError,
     "period must be an integer <= 10000"),
    (lambda: stability.expansivity(st.Quadratic([1.0]), "gd", 0.1, seed=[0, 1]), TypeError,
     "seed must be a non-negative integer"),
    (lambda: stability.expansivity(st.Quadratic([1.0]), "gd", np.array([]), 0.0), ValueError,
     "eta and rho must not be empty"),
    (lambda: stability.analytic_expansivity("gd", 0.1, beta=[1.0, 2.0]), ValueError, "beta must be a single number"),
    (lambda: stability.analytic_expansivity("usam", 0.1, beta=1.0, quadratic="no"), TypeError,
     "quadratic must be True or False"),
    (lambda: stability.synthetic_split(20, 2, replaced_index=0.5), TypeError, "replaced_index must be an integer"),
    (lambda: stability.stability_experiment(methods=5), TypeError, "methods must be a method name or a sequence"),
    (lambda: stability.stability_experiment(methods="gd", batch_size=10**6), ValueError,
     "batch_size must be <= n_samples"),
])
def test_linearization_and_expansivity_inputs_are_checked(call, error, match):
    """Each used to pass silently or end in an unclear error (a hang for period = 10**400)."""
    with pytest.raises(error, match=match):
        call()
