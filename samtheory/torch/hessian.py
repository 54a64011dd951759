r"""Sharpness λ_max(∇²f) of a torch loss by Hessian-vector products (docs/theory.md O12).

H v = ∇(∇f · v) by double back-propagation (Pearlmutter 1994). The top eigenvalue comes from Lanczos
(:func:`scipy.sparse.linalg.eigsh` with ``which="LA"`` on a :class:`~scipy.sparse.linalg.LinearOperator`) or from
power iteration (which converges to the eigenvalue of largest magnitude). The Lanczos start vector is drawn
from ``seed``, so the result is reproducible.

``params`` is one tensor or an iterable of real floating-point tensors (a complex one is refused). A loss whose
gradient does not depend on them has H = 0, and λ_max = 0.0. A non-finite loss, vector or Hessian-vector product
raises a ``ValueError`` (never a NaN result, an ARPACK error or a RuntimeWarning).

Beyond the top eigenvalue: :func:`hessian_trace` (Hutchinson's estimator with Rademacher probes) and
:func:`hessian_spectral_density` (stochastic Lanczos quadrature, Ubaru, Chen & Saad 2017; as PyHessian computes
it, Yao et al. 2020), both checked on quadratics whose Hessian is known exactly (tests/test_torch_hessian_density.py).
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch

from .. import _validation as check

__all__ = ["hessian_vector_product", "top_hessian_eigenvalue", "hessian_trace", "hessian_spectral_density"]


def _parameters(params) -> list[torch.Tensor]:
    """The real floating-point tensors of ``params`` (one tensor, or an iterable of them) that require a gradient."""
    if isinstance(params, torch.Tensor):
        params = [params]
    try:
        params = list(params)
    except TypeError:
        raise TypeError(f"params must be a tensor or an iterable of tensors, got {type(params).__name__}") from None
    for position, p in enumerate(params):
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"params must be a tensor or an iterable of tensors, got a {type(p).__name__} at "
                            f"position {position}")
        if p.is_complex() or not p.is_floating_point():
            raise ValueError(f"params: parameter {position} has dtype {p.dtype}; the Hessian tools need real "
                             "floating-point parameters (use torch.view_as_real for a complex one)")
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("params must contain at least one tensor with requires_grad=True")
    return params


class _HessianOperator:
    """v ↦ H v for a flat float64 NumPy vector v, keeping the first-order graph for repeated products."""

    def __init__(self, loss_fn: Callable[[], torch.Tensor], params: list[torch.Tensor]):
        self.params = params
        self.sizes = [p.numel() for p in params]
        self.dim = sum(self.sizes)
        with torch.enable_grad():
            loss = loss_fn()
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise ValueError(f"loss_fn must return a scalar tensor, got {type(loss).__name__}")
            if not bool(torch.isfinite(loss.detach()).all()):
                raise ValueError(f"loss_fn returned a non-finite loss ({loss.item()}): its Hessian is undefined")
            if not loss.requires_grad:  # a constant: H = 0
                self.grads = [None] * len(params)
                return
            self.grads = torch.autograd.grad(loss.reshape(()), params, create_graph=True, allow_unused=True)

    def products(self, vectors: list[torch.Tensor]) -> list[torch.Tensor]:
        # A gradient that is None or constant (no graph) contributes nothing: its rows of H are 0.
        used = [(g, v) for g, v in zip(self.grads, vectors) if g is not None and g.requires_grad]
        if not used:
            return [torch.zeros_like(p) for p in self.params]
        with torch.enable_grad():
            hv = torch.autograd.grad([g for g, _ in used], self.params, grad_outputs=[v for _, v in used],
                                     retain_graph=True, allow_unused=True)
        return [torch.zeros_like(p) if h is None else h for p, h in zip(self.params, hv)]

    def __call__(self, vector: np.ndarray) -> np.ndarray:
        flat = torch.as_tensor(np.ascontiguousarray(vector, dtype=np.float64).ravel())
        pieces = [piece.reshape(p.shape).to(device=p.device, dtype=p.dtype)
                  for piece, p in zip(torch.split(flat, self.sizes), self.params)]
        hv = self.products(pieces)
        product = torch.cat([h.detach().reshape(-1).to("cpu", torch.float64) for h in hv]).numpy()
        if not np.all(np.isfinite(product)):
            raise ValueError("the Hessian-vector product is not finite: the loss's curvature overflows or is "
                             "undefined at these parameters")
        return product


def hessian_vector_product(loss_fn: Callable[[], torch.Tensor], params: Iterable[torch.Tensor],
                           vectors: list[torch.Tensor]) -> list[torch.Tensor]:
    """H v for ``v`` given as one tensor per parameter (the shapes of ``params``); H = ∇² loss_fn().

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn() -> Tensor``, a scalar loss built from ``params``.
    params : iterable of Tensor
        The parameters; those with ``requires_grad=False`` are left out (at least one must remain).
    vectors : list of Tensor
        v, one tensor per kept parameter, of its shape.

    Returns
    -------
    list of Tensor
        H v, one detached tensor per parameter.
    """
    params = _parameters(params)
    try:
        vectors = list(vectors)
    except TypeError:
        raise TypeError(f"vectors must be a list of tensors, got {type(vectors).__name__}") from None
    if not all(isinstance(v, torch.Tensor) for v in vectors):
        raise TypeError(f"vectors must be a list of tensors, got {[type(v).__name__ for v in vectors]}")
    if any(v.is_complex() or not v.is_floating_point() for v in vectors):
        raise ValueError(f"vectors must be real floating-point tensors, got dtypes {[v.dtype for v in vectors]}")
    if not all(bool(torch.isfinite(v).all()) for v in vectors):
        raise ValueError("vectors must be finite, got NaN or inf")
    if len(vectors) != len(params) or any(v.shape != p.shape for v, p in zip(vectors, params)):
        raise ValueError(f"vectors must have the shapes of params {[tuple(p.shape) for p in params]}, "
                         f"got {[tuple(v.shape) for v in vectors]}")
    vectors = [v.to(device=p.device, dtype=p.dtype) for v, p in zip(vectors, params)]  # autograd needs p's dtype
    return [h.detach() for h in _HessianOperator(loss_fn, params).products(vectors)]


def top_hessian_eigenvalue(loss_fn: Callable[[], torch.Tensor], params: Iterable[torch.Tensor], *,
                           method: str = "lanczos", tol: float = 1e-6, maxiter: int | None = None,
                           seed: int = 0) -> float:
    r"""The largest eigenvalue of H = ∇² loss_fn() with respect to ``params``.

    ``method="lanczos"``: ``eigsh(k=1, which="LA")`` to relative accuracy ``tol`` (largest algebraic eigenvalue);
    ``method="power"``: power iteration until the Rayleigh quotient changes by less than ``tol`` relative (the
    eigenvalue of largest magnitude, which is λ_max when H has no larger negative eigenvalue). The products
    are taken in the parameters' dtype; use a float64 copy of the model for accuracy beyond float32's.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn() -> Tensor``, a scalar loss built from ``params``.
    params : iterable of Tensor
        The parameters; those with ``requires_grad=False`` are left out (at least one must remain).
    method : {"lanczos", "power"}, optional
        The algorithm (default ``"lanczos"``).
    tol : float, optional
        Relative tolerance, > 0 (default 1e-6).
    maxiter : int or None, optional
        Iteration limit, >= 1; None (default) for max(20 n, 1000) Lanczos or 1000 power iterations.
    seed : int, optional
        Non-negative seed of the start vector (default 0).

    Returns
    -------
    float
        The eigenvalue (exact, from the full Hessian, when the parameters hold n <= 2 entries in all).
    """
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    check.choice("method", method, ("lanczos", "power"))
    tol = check.as_scalar("tol", tol, positive=True)
    if maxiter is not None:
        maxiter = check.as_positive_int("maxiter", maxiter)
    seed = int(check.as_seed_array("seed", seed))
    operator = _HessianOperator(loss_fn, _parameters(params))
    n = operator.dim
    start = np.random.default_rng(seed).standard_normal(n)
    if n <= 2:  # ARPACK needs k < n: build H from n products
        hessian = np.column_stack([operator(column) for column in np.eye(n)])
        return float(np.linalg.eigvalsh((hessian + hessian.T) / 2)[-1])
    if method == "lanczos":
        if not np.any(operator(start)):  # H v0 = 0 (as when H = 0): ARPACK would fail; power iteration answers 0
            return 0.0
        linear = LinearOperator((n, n), matvec=operator, dtype=np.float64)
        try:
            values = eigsh(linear, k=1, which="LA", tol=tol, maxiter=maxiter or max(20 * n, 1000), v0=start,
                           return_eigenvectors=False)
        except ArpackNoConvergence as error:
            if len(error.eigenvalues) == 0:
                raise
            values = error.eigenvalues
        return float(values[-1])
    vector = start / np.linalg.norm(start)
    estimate = np.inf
    for _ in range(maxiter or 1000):
        product = operator(vector)
        rayleigh = float(vector @ product)
        norm = float(np.linalg.norm(product))
        if norm == 0:
            return 0.0
        vector = product / norm
        if abs(rayleigh - estimate) <= tol * abs(rayleigh):
            return rayleigh
        estimate = rayleigh
    return estimate


def _probes(n: int, probes: int, seed: int) -> np.ndarray:
    """``probes`` Rademacher vectors (entries ±1) of length n, reproducibly from ``seed``."""
    return np.random.default_rng(seed).choice(np.array([-1.0, 1.0]), size=(probes, n))


def hessian_trace(loss_fn: Callable[[], torch.Tensor], params: Iterable[torch.Tensor], *, probes: int = 100,
                  seed: int = 0) -> tuple[float, float]:
    r"""Hutchinson's estimate of tr(H) = E[vᵀ H v] over Rademacher vectors v, and its standard error.

    Exact (any ``probes``) when H is diagonal, since v_i² = 1; otherwise the variance of one probe is
    2 Σ_{i≠j} H_ij².

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn() -> Tensor``, a scalar loss built from ``params``.
    params : iterable of Tensor
        The parameters; those with ``requires_grad=False`` are left out (at least one must remain).
    probes : int, optional
        Number of probe vectors, >= 1 (default 100).
    seed : int, optional
        Non-negative seed of the probes (default 0).

    Returns
    -------
    (float, float)
        The estimate and its standard error (0.0 for a single probe).
    """
    probes = check.as_positive_int("probes", probes)
    seed = int(check.as_seed_array("seed", seed))
    operator = _HessianOperator(loss_fn, _parameters(params))
    samples = np.array([v @ operator(v) for v in _probes(operator.dim, probes, seed)])
    error = float(samples.std(ddof=1) / np.sqrt(probes)) if probes > 1 else 0.0
    return float(samples.mean()), error


def hessian_spectral_density(loss_fn: Callable[[], torch.Tensor], params: Iterable[torch.Tensor], *,
                             steps: int = 80, probes: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r"""The spectral density of H by stochastic Lanczos quadrature: Ritz values θ and weights w with
    Σ w = 1, such that Σ_k w_k f(θ_k) ≈ tr f(H) / n (one Gauss quadrature per probe, averaged).

    ``steps`` Lanczos steps per probe, with full reorthogonalization (at most n; with n steps the nodes are
    H's eigenvalues). Smooth the result with a Gaussian kernel to plot a density.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn() -> Tensor``, a scalar loss built from ``params``.
    params : iterable of Tensor
        The parameters; those with ``requires_grad=False`` are left out (at least one must remain).
    steps : int, optional
        Lanczos steps per probe, >= 1 (default 80; capped at n).
    probes : int, optional
        Number of Rademacher start vectors, >= 1 (default 1).
    seed : int, optional
        Non-negative seed of the probes (default 0).

    Returns
    -------
    (ndarray, ndarray)
        The nodes θ (ascending) and their weights w (summing to 1), each of length <= ``probes · steps``.
    """
    from scipy.linalg import eigh_tridiagonal

    steps = check.as_positive_int("steps", steps)
    probes = check.as_positive_int("probes", probes)
    seed = int(check.as_seed_array("seed", seed))
    operator = _HessianOperator(loss_fn, _parameters(params))
    n = operator.dim
    steps = min(steps, n)
    nodes, weights = [], []
    for start in _probes(n, probes, seed):
        basis = np.zeros((steps, n))
        basis[0] = start / np.linalg.norm(start)
        alpha, beta = [], []
        for j in range(steps):
            w = operator(basis[j])
            alpha.append(float(basis[j] @ w))
            w -= basis[:j + 1].T @ (basis[:j + 1] @ w)  # full reorthogonalization, twice for stability
            w -= basis[:j + 1].T @ (basis[:j + 1] @ w)
            if j + 1 == steps:
                break
            norm = float(np.linalg.norm(w))
            if norm <= 1e-12 * max(1.0, abs(alpha[-1])):  # an invariant subspace: the quadrature is exact
                break
            beta.append(norm)
            basis[j + 1] = w / norm
        theta, vectors = eigh_tridiagonal(np.array(alpha), np.array(beta[:len(alpha) - 1]))
        nodes.append(theta)
        weights.append(vectors[0] ** 2 / probes)
    nodes, weights = np.concatenate(nodes), np.concatenate(weights)
    order = np.argsort(nodes, kind="stable")
    return nodes[order], weights[order]
