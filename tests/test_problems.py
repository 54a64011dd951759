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
