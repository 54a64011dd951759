"""Synthetic data sets, generated locally and reproducibly (no download)."""

from __future__ import annotations

import numpy as np

from . import _validation as check
from .problems import LeastSquares, LogisticRegression

__all__ = ["make_least_squares", "make_logistic_regression"]


def make_least_squares(n_samples: int = 200, dim: int = 10, *, noise: float = 0.1, seed: int = 0) -> LeastSquares:
    """A = standard normal (n × d), b = A x_true + noise · N(0, 1); x_true standard normal.

    Parameters
    ----------
    n_samples : int, optional
        Number of rows n, >= 1 (default 200).
    dim : int, optional
        Dimension d, >= 1 (default 10).
    noise : float, optional
        Standard deviation of the additive noise, >= 0 (default 0.1).
    seed : int, optional
        Seed of the NumPy generator (default 0).

    Returns
    -------
    LeastSquares
    """
    n_samples = check.as_positive_int("n_samples", n_samples)
    dim = check.as_positive_int("dim", dim)
    noise = check.as_scalar("noise", noise, nonnegative=True)
    seed = check.as_seed("seed", seed)
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n_samples, dim))
    with np.errstate(over="ignore"):  # a huge noise level: refused just below
        b = A @ rng.standard_normal(dim) + noise * rng.standard_normal(n_samples)
    try:
        return LeastSquares(A, b)
    except ValueError as error:  # b past float64's range: the fault is the noise level asked for
        raise ValueError(f"noise = {noise:g} is too large: {error}") from None


def make_logistic_regression(n_samples: int = 200, dim: int = 10, *, l2: float = 1e-2, label_noise: float = 0.1,
                             seed: int = 0) -> LogisticRegression:
    """Gaussian features, labels sign(xᵀw_true) with a fraction ``label_noise`` flipped (not separable).

    Parameters
    ----------
    n_samples : int, optional
        Number of samples n, >= 1 (default 200).
    dim : int, optional
        Number of features d, >= 1 (default 10).
    l2 : float, optional
        Ridge coefficient of the problem, >= 0 (default 1e-2).
    label_noise : float, optional
        Probability that a label is flipped, in [0, 0.5] (default 0.1).
    seed : int, optional
        Seed of the NumPy generator (default 0).

    Returns
    -------
    LogisticRegression
    """
    n_samples = check.as_positive_int("n_samples", n_samples)
    dim = check.as_positive_int("dim", dim)
    label_noise = check.as_scalar("label_noise", label_noise, nonnegative=True)
    if label_noise > 0.5:
        raise ValueError(f"label_noise must be in [0, 0.5], got {label_noise!r}")
    seed = check.as_seed("seed", seed)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, dim))
    y = np.where(X @ rng.standard_normal(dim) >= 0, 1.0, -1.0)
    y[rng.random(n_samples) < label_noise] *= -1
    return LogisticRegression(X, y, l2=l2)
