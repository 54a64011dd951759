"""Problems: gradients and Hessians against finite differences, constants, bad input."""

import numpy as np
import pytest

import samtheory as st
from samtheory.datasets import make_least_squares, make_logistic_regression

PROBLEMS = {
    "quadratic": st.Quadratic([0.5, 2.0, 7.0]),
    "rotated_quadratic": st.Quadratic([0.5, 2.0, 7.0], rotation=4, minimizer=[1.0, -1.0, 2.0]),
    "dense_quadratic": st.Quadratic.from_matrix([[2.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 1.0]]),
    "least_squares": make_least_squares(40, 3, seed=1),
    "logistic": make_logistic_regression(40, 3, l2=0.1, seed=2),
    "saddle": st.Saddle(a=2.0, b=1.0, c=0.5),
    "factorization": st.ScalarFactorization(2.0),
}


def central_differences(function, X, h=1e-6):
    """Derivative of ``function`` along each coordinate, stacked on the last axis."""
    return np.stack([(function(X + h * e) - function(X - h * e)) / (2 * h) for e in np.eye(X.shape[1])], axis=-1)


@pytest.mark.parametrize("name", PROBLEMS)
def test_gradient_matches_central_differences(name):
    problem = PROBLEMS[name]
    X = np.random.default_rng(0).standard_normal((4, problem.dim))
    # Central differences: truncation O(h²·f‴) ≈ 1e-12, rounding O(ε·f/h) ≈ 1e-9 on these scales.
    np.testing.assert_allclose(problem.grad(X), central_differences(problem.loss, X), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", PROBLEMS)
def test_hessian_matches_differences_of_gradients(name):
    problem = PROBLEMS[name]
    X = np.random.default_rng(1).standard_normal((3, problem.dim))
    # Same error budget as the gradient test, one derivative higher.
    np.testing.assert_allclose(problem.hessian(X), central_differences(problem.grad, X), rtol=1e-6, atol=1e-7)


def test_minibatch_gradients_average_to_the_full_gradient():
    for problem in (PROBLEMS["least_squares"], PROBLEMS["logistic"]):
        X = np.random.default_rng(2).standard_normal((2, problem.dim))
        halves = [np.arange(0, 20), np.arange(20, 40)]
        mean = sum(problem.grad(X, batch=b) for b in halves) / 2
        # Equal halves of a mean: the average is the full gradient up to summation order (1e-13).
        np.testing.assert_allclose(mean, problem.grad(X), rtol=1e-13, atol=1e-15)


def test_constants():
    lam = np.array([0.5, 2.0, 7.0])
    q = PROBLEMS["rotated_quadratic"]
    assert q.beta == 7.0 and q.mu == 0.5 and q.f_star == 0.0
    np.testing.assert_allclose(np.linalg.eigvalsh(q.hessian_matrix), lam, rtol=1e-13)
    ls = PROBLEMS["least_squares"]
    curvature = np.linalg.eigvalsh(ls.A.T @ ls.A / 40)
    assert ls.beta == pytest.approx(curvature[-1], rel=1e-14) and ls.mu == pytest.approx(curvature[0], rel=1e-14)
    # The minimizer makes the gradient vanish (to the conditioning times ε).
    assert np.linalg.norm(ls.grad(ls.minimizer)) < 1e-12
    lr = PROBLEMS["logistic"]
    # β bounds the Hessian's largest eigenvalue everywhere (σ(1−σ) ≤ 1/4).
    H = lr.hessian(np.random.default_rng(3).standard_normal((20, 3)))
    assert np.all(np.linalg.eigvalsh(H)[:, -1] <= lr.beta * (1 + 1e-12))
    saddle = PROBLEMS["saddle"]
    np.testing.assert_allclose(saddle.hessian(np.zeros(2)), np.diag([2.0, -1.0]))
    assert np.allclose(saddle.grad(saddle.minima), 0.0)
    assert saddle.loss(saddle.minima[0]) == pytest.approx(saddle.f_star, rel=1e-15)


def test_logistic_labels_zero_one_and_plus_minus_one_agree():
    X = np.random.default_rng(0).standard_normal((10, 2))
    y01 = (X[:, 0] > 0).astype(float)
    a = st.LogisticRegression(X, y01, l2=0.1)
    b = st.LogisticRegression(X, 2 * y01 - 1, l2=0.1)
    W = np.ones((1, 2))
    np.testing.assert_array_equal(a.grad(W), b.grad(W))


@pytest.mark.parametrize("make, match", [
    (lambda: st.Quadratic([]), "eigenvalues must be a non-empty 1-D array"),
    (lambda: st.Quadratic([1.0, np.nan]), "eigenvalues must be finite"),
    (lambda: st.Quadratic([1.0, 2.0], rotation=np.ones((2, 2))), "rotation must be orthogonal"),
    (lambda: st.Quadratic([1.0, 2.0], rotation=np.eye(3)), r"rotation must have shape \(2, 2\)"),
    (lambda: st.Quadratic([1.0, 2.0], minimizer=[1.0]), r"minimizer must have shape \(2,\)"),
    (lambda: st.Quadratic.from_matrix([[1.0, 2.0], [0.0, 1.0]]), "H must be symmetric"),
    (lambda: st.Quadratic.from_matrix([[1.0, np.inf], [np.inf, 1.0]]), "H must be finite"),
    (lambda: st.Quadratic.from_matrix(np.ones((2, 3))), "H must be square"),
    (lambda: st.LeastSquares(np.ones((3, 2)), np.ones(4)), r"b must have shape \(3,\)"),
    (lambda: st.LogisticRegression(np.ones((3, 2)), [0, 1, 2]), r"y must take values in \{0, 1\} or \{-1, 1\}"),
    (lambda: st.LogisticRegression(np.ones((3, 2)), [0, 1, 1], l2=-1), "l2 must be >= 0"),
    (lambda: st.Saddle(a=-1), "a must be > 0"),
    (lambda: make_least_squares(0, 2), "n_samples must be an integer >= 1"),
    (lambda: make_logistic_regression(10, 2, label_noise=0.7), "label_noise must be in"),
])
def test_bad_problem_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_points_and_batches():
    q = st.Quadratic([1.0, 2.0])
    with pytest.raises(ValueError, match=r"X must have shape \(B, 2\)"):
        q.grad(np.ones((3, 3)))
    with pytest.raises(ValueError, match="batch must be None for Quadratic"):
        q.grad(np.ones(2), batch=[0])
    ls = make_least_squares(5, 2)
    with pytest.raises(ValueError, match=r"batch indices must lie in \[0, 5\)"):
        ls.grad(np.ones(2), batch=np.array([0, 7]))


# -- hostile data (issue 15) ----------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [1e160, 1e200, 1e300])
def test_data_past_float64s_range_is_refused_without_a_warning(scale):
    """AᵀA, ‖X‖₂² or f* overflow: a clear error naming the data, not a RuntimeWarning and inf constants."""
    rng = np.random.default_rng(0)
    A, y = rng.standard_normal((20, 3)), np.sign(rng.standard_normal(20))
    with pytest.raises(ValueError, match=r"A is too large for float64: AᵀA/n overflows"):
        st.LeastSquares(A * scale, rng.standard_normal(20))
    with pytest.raises(ValueError, match=r"A and b are too large for float64: the minimizer or f\*"):
        st.LeastSquares(A, rng.standard_normal(20) * scale)
    with pytest.raises(ValueError, match=r"X and l2 are too large for float64: β = ‖X‖₂²/\(4n\) \+ l2 overflows"):
        st.LogisticRegression(A * scale, y)
    with pytest.raises(ValueError, match="noise = .* is too large"):
        make_least_squares(20, 3, noise=scale)


def test_large_but_representable_data_is_accepted():
    """At 1e100 every constant is finite: the problem is built, and simulating it warns about nothing."""
    rng = np.random.default_rng(1)
    A = rng.standard_normal((20, 3)) * 1e100
    problem = st.LeastSquares(A, A @ np.ones(3))
    assert np.isfinite(problem.beta) and np.isfinite(problem.f_star)
    result = st.simulate(problem, "ssam", [1e-210, 1.0], 0.05, steps=20, x0=np.zeros(3))
    assert result.status_name.tolist() == ["bounded", "diverged"]
    assert not np.isnan(result.loss).any() and not np.isnan(result.grad_norm).any()


@pytest.mark.parametrize("make, match", [
    (lambda: st.Quadratic(np.array([1.0 + 1j, 2.0])), "eigenvalues must be .* got complex numbers"),
    (lambda: st.Quadratic([1.0, 2.0], minimizer=np.array([1j, 0.0])), "minimizer must be .* got complex numbers"),
    (lambda: st.Quadratic.from_matrix(np.eye(2) * (1 + 1j)), "H must be a real matrix, got complex numbers"),
    (lambda: st.LeastSquares(np.ones((3, 2)) + 0j, np.ones(3)), "A must be a real matrix, got complex numbers"),
    (lambda: st.LogisticRegression(np.ones((3, 2)), np.array([0, 1, 1]) + 0j), "y must be .* got complex numbers"),
    (lambda: st.Saddle(a=np.complex128(1.0)), "a must be a real number, got complex numbers"),
    (lambda: st.Quadratic(["1", "2"]), "eigenvalues must be .* got strings"),
    (lambda: st.Quadratic(np.array([1.0, None])), r"eigenvalues must be .* got objects \(dtype object\)"),
    (lambda: st.Quadratic(3.0), "eigenvalues must be a non-empty 1-D array, got shape ()"),
    (lambda: st.LeastSquares(np.ones((0, 2)), np.ones(0)), "A must be a 2-D matrix with at least one row"),
    (lambda: st.LogisticRegression(np.ones((3, 2)), [0, 1, 1], l2=[0.1]), "l2 must be a single number"),
    (lambda: st.Quadratic([1.0, 2.0], rotation=-1), r"rotation must be None, an orthogonal \(2, 2\) matrix or a seed"),
    (lambda: st.Quadratic([1.0, 2.0], rotation=True), "rotation must be a real matrix, got booleans"),
    (lambda: st.Saddle(b=1e200, c=1e-200), r"b and c must give minima"),
    (lambda: make_least_squares(10, 2, seed=-1), "seed must be a non-negative integer"),
    (lambda: make_logistic_regression(10, 2, seed=1.5), "seed must be a non-negative integer"),
])
def test_complex_strings_objects_and_empty_inputs_raise(make, match):
    """Complex arrays used to lose their imaginary part, strings and object arrays were parsed as numbers."""
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_points_of_the_wrong_type_raise():
    q = st.Quadratic([1.0, 2.0])
    with pytest.raises(TypeError, match="X must be a real array of shape"):
        q.grad(np.array([1.0 + 1j, 0.0]))
    with pytest.raises(TypeError, match="X must be a real array of shape"):
        q.loss("1, 2")


@pytest.mark.parametrize("name", PROBLEMS)
def test_a_row_of_loss_grad_and_distance_does_not_depend_on_its_batch(name):
    """Row by row (see tests/test_determinism.py for the engine): one row alone, in a C- or a Fortran-ordered
    batch, at any position, gives the same bits."""
    problem = PROBLEMS[name]
    X = np.random.default_rng(3).standard_normal((11, problem.dim))
    for function in (problem.loss, problem.grad, problem.distance):
        if function(X) is None:
            continue
        whole = function(X)
        np.testing.assert_array_equal(function(np.asfortranarray(X)), whole)
        for row in (0, 5, 10):
            np.testing.assert_array_equal(function(X[row]), whole[row])
            np.testing.assert_array_equal(function(X[row:row + 2]), whole[row:row + 2])
