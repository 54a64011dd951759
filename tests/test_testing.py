"""samtheory.testing: the public strategies and assertion helpers, used as a researcher would."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

import samtheory as st
from samtheory.methods import Step
from samtheory.testing import (
    NearThreshold, assert_bounded, assert_converges, assert_converges_below, assert_diverges, assert_diverges_above,
    assert_threshold, near_threshold, quadratics, radii, spectra,
)

THREE = st.Quadratic([1.0, 10.0, 100.0])


@given(lam=spectra(min_value=0.5, max_value=50.0, min_dim=2, max_dim=7, max_condition=20.0))
def test_spectra_respect_their_bounds(lam):
    assert 2 <= lam.size <= 7
    assert np.all(lam >= 0.5) and np.all(lam <= 50.0)
    assert np.all(np.diff(lam) <= 0)  # λ_max first
    assert lam[0] / lam[-1] <= 20.0 * (1 + 1e-12)  # float rounding of 10**exponent


@given(problem=quadratics(spectra(max_dim=4), rotated=hst.just(True)))
def test_quadratics_are_rotated_quadratics_with_the_drawn_spectrum(problem):
    assert isinstance(problem, st.Quadratic) and not problem.is_diagonal
    np.testing.assert_allclose(np.linalg.eigvalsh(problem.hessian_matrix)[::-1], problem.eigenvalues,
                               rtol=1e-10, atol=1e-12)  # eigh of QΛQᵀ: a few ulps of ‖H‖


@given(pair=near_threshold(lambda rho: 2 / (10 * (1 + 10 * rho)), rho=radii(max_value=0.5), delta=0.05))
def test_near_threshold_draws_sit_delta_away(pair):
    assert isinstance(pair, NearThreshold) and pair.side in (-1, 1)
    assert pair.threshold == pytest.approx(2 / (10 * (1 + 10 * pair.rho)), rel=1e-15)
    assert pair.eta == pytest.approx(pair.threshold * (1 + 0.05 * pair.side), rel=1e-15)


# The README example: a property test of USAM's bound (docs/theory.md O2) in a few lines.
@settings(max_examples=10)
@given(problem=quadratics(spectra(max_dim=5, max_condition=10)), rho=radii(max_value=0.5))
def test_readme_example_usam_threshold(problem, rho):
    eta_c = 2 / (problem.beta * (1 + rho * problem.beta))
    assert_converges_below(problem, "usam", eta_c, rho, steps=3_000)
    assert_diverges_above(problem, "usam", eta_c, rho, steps=3_000)


def half_step_gd(x, grad, eta, rho, **options):
    """A user-defined rule: x ← x − (η/2) g(x); its threshold is 4/λ_max."""
    g = grad(x)
    return Step(x - 0.5 * eta * g, np.linalg.norm(g, axis=1))


def test_a_user_defined_rule_gets_the_same_checks():
    assert_converges_below(THREE, half_step_gd, 4 / 100, 0.0, steps=3000)
    assert_diverges_above(THREE, half_step_gd, 4 / 100, 0.0, steps=3000)
    assert_threshold(THREE, half_step_gd, 0.0, 4 / 100, rtol=1e-2)


def test_helpers_fail_on_false_claims():
    # GD's threshold claimed twice too large: it does not converge below the claim.
    with pytest.raises(AssertionError, match="expected convergence"):
        assert_converges_below(THREE, "gd", 4 / 100, 0.0, steps=2000)
    # ... and claimed twice too small: it does not diverge above it.
    with pytest.raises(AssertionError, match="expected divergence"):
        assert_diverges_above(THREE, "gd", 1 / 100, 0.0, steps=2000)
    with pytest.raises(AssertionError, match="expected no divergence"):
        assert_bounded(THREE, "usam", 0.01, 0.05, steps=2000)
    with pytest.raises(AssertionError, match="relative error"):
        assert_threshold(THREE, "usam", 0.05, 2 / 100, rtol=1e-2)  # GD's threshold is not USAM's


def test_helpers_pass_on_true_claims():
    assert_converges(THREE, "gd", 0.015, 0.0, steps=2000)
    assert_bounded(THREE, "sam", 0.015, 0.05, steps=2000)  # the 2-cycle: bounded, not converged
    assert_diverges(THREE, "sam", 0.0202, 0.05, steps=2000)
    assert_threshold(THREE, "usam", [0.01, 0.05], 2 / (100 * (1 + 100 * np.array([0.01, 0.05]))), rtol=1e-2)
    assert_threshold(THREE, "susam", 0.05, 2 / 100, rtol=1e-2)  # the measured relation of the regime table


@pytest.mark.parametrize("call, match", [
    (lambda: spectra(min_value=0.0), "need 0 < min_value <= max_value"),
    (lambda: spectra(min_dim=3, max_dim=2), "max_dim must be >= min_dim"),
    (lambda: spectra(min_dim=0), "min_dim must be an integer >= 1"),
    (lambda: spectra(max_condition=0.5), "max_condition must be >= 1"),
    (lambda: radii(-1.0), "need 0 <= min_value <= max_value"),
    (lambda: near_threshold(0.02), "threshold must be a callable"),
    (lambda: near_threshold(lambda rho: 0.02, delta=1.5), "delta must be in \\(0, 1\\)"),
    (lambda: assert_converges(THREE, "gd", -0.01, 0.0, steps=10), "eta must be > 0"),
    (lambda: assert_converges(THREE, "gd", 0.01, 0.0, steps=0), "steps must be an integer >= 1"),
    (lambda: assert_diverges(THREE, "adam", 0.01, 0.0, steps=10), "method must be one of"),
    (lambda: assert_converges_below(THREE, "gd", 0.02, 0.0, delta=1.0, steps=10), "delta must be in \\(0, 1\\)"),
    (lambda: assert_diverges_above(THREE, "gd", 0.0, 0.0, steps=10), "eta_c must be > 0"),
    (lambda: assert_threshold(THREE, "gd", 0.0, -0.02), "expected must be > 0"),
])
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
