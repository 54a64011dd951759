"""Hutchinson's trace and the stochastic-Lanczos-quadrature density on quadratics whose Hessian is known exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from samtheory.torch import hessian_spectral_density, hessian_trace


def _quadratic(H: np.ndarray):
    x = torch.zeros(H.shape[0], dtype=torch.float64, requires_grad=True)
    Ht = torch.tensor(H)
    center = torch.linspace(-1.0, 1.0, H.shape[0], dtype=torch.float64)
    return (lambda: 0.5 * (x - center) @ (Ht @ (x - center))), x


def _rotated(eigenvalues, seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((len(eigenvalues),) * 2))
    return (q * eigenvalues) @ q.T


def test_hutchinson_is_exact_on_a_diagonal_hessian():
    eigenvalues = np.array([-2.0, 0.5, 3.0, 10.0, 40.0])
    loss, x = _quadratic(np.diag(eigenvalues))
    estimate, _ = hessian_trace(loss, [x], probes=3, seed=4)
    assert abs(estimate - eigenvalues.sum()) <= 1e-12 * np.abs(eigenvalues).sum()  # v_i² = 1: rounding only


def test_hutchinson_is_unbiased_on_a_rotated_hessian():
    eigenvalues = np.geomspace(0.1, 50.0, 12)
    H = _rotated(eigenvalues)
    loss, x = _quadratic(H)
    estimate, error = hessian_trace(loss, [x], probes=400, seed=1)
    exact_std = np.sqrt(2 * (np.sum(H ** 2) - np.sum(np.diag(H) ** 2)) / 400)
    assert abs(error - exact_std) <= 0.2 * exact_std  # the sample standard error estimates the exact one
    assert abs(estimate - eigenvalues.sum()) <= 4 * exact_std  # a 4σ band: fails with probability < 1e-4


def test_slq_with_n_steps_finds_every_eigenvalue_and_its_moments():
    eigenvalues = np.array([-1.0, 0.2, 1.0, 5.0, 7.5, 30.0])
    H = _rotated(eigenvalues, seed=3)
    loss, x = _quadratic(H)
    nodes, weights = hessian_spectral_density(loss, [x], steps=6, probes=4, seed=2)
    assert abs(weights.sum() - 1) <= 1e-12
    # each probe's 6 Ritz values are H's eigenvalues (Lanczos on n = 6 with full reorthogonalization)
    for value in eigenvalues:
        assert np.min(np.abs(nodes - value)) <= 1e-9 * np.abs(eigenvalues).max()
    # Σ w θ = mean over probes of vᵀHv/‖v‖², which Rademacher probes make unbiased for tr(H)/n;
    # with 4 probes it is within a few standard errors of it, and the top node is λ_max.
    assert nodes.max() == pytest.approx(30.0, rel=1e-10)
    assert abs(np.sum(weights * nodes) - eigenvalues.mean()) <= 0.5 * np.abs(eigenvalues).max()


def test_slq_on_a_diagonal_hessian_has_the_exact_first_moment():
    eigenvalues = np.linspace(1.0, 20.0, 40)
    loss, x = _quadratic(np.diag(eigenvalues))
    nodes, weights = hessian_spectral_density(loss, [x], steps=15, probes=2, seed=0)
    assert abs(np.sum(weights * nodes) - eigenvalues.mean()) <= 1e-12 * eigenvalues.mean()  # v_i² = 1
    assert nodes.max() <= 20.0 + 1e-9 and nodes.min() >= 1.0 - 1e-9  # Ritz values lie in the spectrum's hull
    assert nodes.max() == pytest.approx(20.0, rel=1e-3)  # 15 steps resolve the edge of a uniform spectrum


def test_bad_arguments():
    loss, x = _quadratic(np.eye(3))
    with pytest.raises(ValueError, match="probes"):
        hessian_trace(loss, [x], probes=0)
    with pytest.raises(ValueError, match="steps"):
        hessian_spectral_density(loss, [x], steps=0)
