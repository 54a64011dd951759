"""Test problems. Every problem works on a batch of points ``X`` of shape ``(B, d)``.

A problem gives ``loss(X, batch=None)`` of shape ``(B,)``, ``grad(X, batch=None)`` of shape ``(B, d)``,
smoothness ``beta`` and, where known, strong convexity ``mu``, a ``minimizer`` and the optimal value
``f_star``. ``batch`` is an array of sample indices (finite-sum problems only); ``None`` means the full sum.
"""

from __future__ import annotations

import itertools
from typing import Callable

import numpy as np
from scipy import special, stats

from . import _validation as check
from .methods import _row_norm

__all__ = ["Problem", "Quadratic", "LeastSquares", "LogisticRegression", "Saddle", "ScalarFactorization",
           "SmoothConvexInterpolant", "as_problem"]

GradientOracle = Callable[[np.ndarray], np.ndarray]
_TILE_LIMIT = 1 << 16  # largest batch (in numbers) for which Quadratic caches a tiled copy of λ


def _rowwise_matmul(X: np.ndarray, M: np.ndarray) -> np.ndarray:
    """``X @ M`` for a batch ``X`` of shape ``(..., k)``, one row at a time: every row goes through the same
    (1, k) @ (k, m) BLAS product, so its rounding depends on that row alone, not on the batch size or the row's
    position (one product over the whole batch would not: BLAS picks its kernels and summation order by shape,
    and a one-row batch takes a different path)."""
    X = np.ascontiguousarray(X)
    return np.matmul(X[..., None, :], M)[..., 0, :]


def _row_dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σ_i a[r, i] b[r, i] for each row r, with a rounding that depends on that row alone (as above)."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return np.matmul(a[:, None, :], b[:, :, None])[:, 0, 0]


def _columns(*columns) -> np.ndarray:
    """Stack 1-D columns into a batch-contiguous (Fortran-ordered) ``(B, k)`` array."""
    out = np.empty((columns[0].shape[0], len(columns)), order="F")
    for j, column in enumerate(columns):
        out[:, j] = column
    return out


class Problem:
    """Base class. Subclasses implement ``_loss(X, batch)`` and ``_grad(X, batch)`` on validated input."""

    dim: int
    beta: float | None = None
    mu: float | None = None
    minimizer: np.ndarray | None = None
    f_star: float | None = None
    n_samples: int | None = None  # number of summands of a finite-sum problem; None if deterministic
    name: str = "problem"

    # -- public, validated -------------------------------------------------------------------------
    def loss(self, X, batch=None) -> np.ndarray:
        X, squeeze = self._check_points(X)
        out = self._loss(X, self._check_batch(batch))
        return out[0] if squeeze else out

    def grad(self, X, batch=None) -> np.ndarray:
        X, squeeze = self._check_points(X)
        out = self._grad(X, self._check_batch(batch))
        return out[0] if squeeze else out

    def hessian(self, X) -> np.ndarray:
        """Hessian at each point, shape ``(B, d, d)`` (small problems only)."""
        X, squeeze = self._check_points(X)
        out = self._hessian(X)
        return out[0] if squeeze else out

    def distance(self, X) -> np.ndarray | None:
        """Distance of each point to the (nearest) minimizer, or None when no minimizer is known."""
        if self.minimizer is None:
            return None
        X, squeeze = self._check_points(X)
        out = _row_norm(np.asfortranarray(X - self.minimizer))  # the engine's norm: overflow-safe, row by row
        return out[0] if squeeze else out

    def quadratic_form(self):
        """``(eigenvalues, eigenvectors, center)`` of a quadratic f(x) = ½(x − c)ᵀH(x − c) + const — the
        eigenvectors as columns (None for the identity basis) — or None when the problem is not quadratic.
        Every analysis that treats quadratics exactly reads this."""
        return None

    def initial_point(self, seed: int = 0) -> np.ndarray:
        """A reproducible starting point: a standard normal draw from ``seed``."""
        return np.random.default_rng(seed).standard_normal(self.dim)

    def gradient_oracle(self, batch=None) -> GradientOracle:
        """The gradient on one fixed minibatch, as a fast callable ``X -> G`` for the engine."""
        return lambda X: self._grad(X, batch)

    # -- for subclasses --------------------------------------------------------------------------
    def _loss(self, X, batch):
        raise NotImplementedError

    def _grad(self, X, batch):
        raise NotImplementedError

    def _hessian(self, X):
        raise NotImplementedError(f"{type(self).__name__} has no Hessian")

    def _check_points(self, X):
        X = check._real_array("X", X, f"a real array of shape (B, {self.dim}) or ({self.dim},)")
        squeeze = X.ndim == 1
        if squeeze:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise ValueError(f"X must have shape (B, {self.dim}) or ({self.dim},), got {X.shape}")
        return X, squeeze

    def _check_batch(self, batch):
        if batch is None:
            return None
        if self.n_samples is None:
            raise ValueError(f"batch must be None for {type(self).__name__}, which is not a finite sum")
        batch = np.asarray(batch)
        if batch.ndim != 1 or batch.dtype.kind not in "iu" or batch.size == 0:
            raise ValueError(f"batch must be a non-empty 1-D integer index array, got {batch!r}")
        if batch.min() < 0 or batch.max() >= self.n_samples:
            raise ValueError(f"batch indices must lie in [0, {self.n_samples}), got min {batch.min()}, max {batch.max()}")
        return batch

    def __repr__(self):
        return f"{type(self).__name__}(dim={self.dim})"


class Quadratic(Problem):
    r"""f(x) = ½ (x - x*)ᵀ H (x - x*), with H = Q diag(λ) Qᵀ.

    ``rotation`` is None (H diagonal), an orthogonal ``(d, d)`` matrix Q, or an integer seed for a random
    orthogonal Q (Haar measure). Non-adaptive methods are rotation-equivariant (docs/theory.md O7), so the engine
    simulates a rotated quadratic in its eigenbasis in O(d) per step.

    Parameters
    ----------
    eigenvalues : array_like
        λ, a non-empty finite 1-D array of any sign (d = its length). ``beta`` = max |λ|, ``mu`` = min λ;
        ``minimizer`` and ``f_star`` = 0 are set only when every λ >= 0.
    rotation : None, int or array_like, optional
        None (default: H diagonal), an integer seed of a Haar-random Q, or an orthogonal ``(d, d)`` matrix Q
        (QᵀQ = I to 1e-10, else ``ValueError``).
    minimizer : None or array_like, optional
        The center x*, shape ``(d,)``; None (default) means the origin.
    """

    name = "quadratic"

    def __init__(self, eigenvalues, rotation=None, minimizer=None):
        lam = check.as_vector("eigenvalues", eigenvalues)
        self.eigenvalues = lam
        self.dim = lam.size
        if rotation is None:
            self.eigenvectors = None
        elif isinstance(rotation, (int, np.integer)) and not isinstance(rotation, bool):
            if not 0 <= rotation < 2**32:
                raise ValueError(f"rotation must be None, an orthogonal ({self.dim}, {self.dim}) matrix or a seed in "
                                 f"[0, 2**32), got {rotation!r}")
            self.eigenvectors = stats.ortho_group.rvs(self.dim, random_state=int(rotation)) if self.dim > 1 else np.ones((1, 1))
        else:
            Q = check.as_matrix("rotation", rotation)
            if Q.shape != (self.dim, self.dim):
                raise ValueError(f"rotation must have shape ({self.dim}, {self.dim}), got {Q.shape}")
            error = float(np.max(np.abs(Q.T @ Q - np.eye(self.dim))))
            if error > 1e-10:
                raise ValueError(f"rotation must be orthogonal, got max |QᵀQ - I| = {error:.3g}")
            self.eigenvectors = Q
        center = (np.zeros(self.dim) if minimizer is None
                  else check.as_vector("minimizer", minimizer, size=self.dim, match="the eigenvalues"))
        self.center = center
        self._centered = bool(np.any(center))
        self._tile = None
        self.beta = float(np.max(np.abs(lam)))
        self.mu = float(np.min(lam))
        convex = self.mu >= 0
        self.minimizer = center if convex else None
        self.f_star = 0.0 if convex else None
        self._H = None

    @classmethod
    def from_matrix(cls, H, minimizer=None) -> "Quadratic":
        """The quadratic of a dense symmetric matrix ``H`` (its eigendecomposition is computed once)."""
        H = check.as_matrix("H", H, symmetric=True)
        H = H / 2 + H.T / 2  # not (H + Hᵀ)/2, which overflows for entries near the largest float
        lam, Q = np.linalg.eigh(H)
        problem = cls(lam, rotation=Q, minimizer=minimizer)
        problem._H = H
        return problem

    @property
    def hessian_matrix(self) -> np.ndarray:
        if self._H is None:
            Q = self.eigenvectors
            self._H = np.diag(self.eigenvalues) if Q is None else (Q * self.eigenvalues) @ Q.T
        return self._H

    @property
    def is_diagonal(self) -> bool:
        return self.eigenvectors is None

    def eigenbasis(self):
        """``(diagonal_problem, to_eigen, from_eigen)``: the same quadratic in coordinates z = Qᵀ(x - x*)."""
        Q, c = self.eigenvectors, self.center
        if Q is None and not np.any(c):
            identity = lambda X: X  # noqa: E731
            return self, identity, identity
        diagonal = Quadratic(self.eigenvalues)
        if Q is None:
            return diagonal, (lambda X: X - c), (lambda Z: Z + c)
        # Row by row, so that a configuration's coordinates do not depend on the rest of its batch.
        return diagonal, (lambda X: _rowwise_matmul(X - c, Q)), (lambda Z: _rowwise_matmul(Z, Q.T) + c)

    def quadratic_form(self):
        return self.eigenvalues, self.eigenvectors, self.center

    def _shifted(self, X):
        return X - self.center if self._centered else X

    def _tiled_eigenvalues(self, rows: int) -> np.ndarray:
        """λ repeated over ``rows`` rows (a cached view): a same-shape product runs several times faster in
        NumPy than one broadcast over a short last axis."""
        if self._tile is None or self._tile.shape[0] < rows:
            self._tile = np.tile(self.eigenvalues, (rows, 1))
        return self._tile[:rows]

    def _loss(self, X, batch):
        Z = self._shifted(X)
        HZ = Z * self.eigenvalues if self.eigenvectors is None else _rowwise_matmul(Z, self.hessian_matrix)
        return 0.5 * _row_dots(HZ, Z)

    def _grad(self, X, batch):
        Z = self._shifted(X)
        if self.eigenvectors is None:
            if Z.flags.c_contiguous and not Z.flags.f_contiguous and Z.size <= _TILE_LIMIT:
                return Z * self._tiled_eigenvalues(Z.shape[0])
            return Z * self.eigenvalues
        return _rowwise_matmul(Z, self.hessian_matrix)  # Z H = (H Zᵀ)ᵀ: H is symmetric

    def _hessian(self, X):
        return np.broadcast_to(self.hessian_matrix, (X.shape[0], self.dim, self.dim)).copy()

    def initial_point(self, seed: int = 0) -> np.ndarray:
        return self.center + np.random.default_rng(seed).standard_normal(self.dim)

    def __repr__(self):
        lam = np.array2string(self.eigenvalues, threshold=6, precision=4)
        rotated = "" if self.eigenvectors is None else ", rotated"
        return f"Quadratic(eigenvalues={lam}{rotated})"


class _FiniteSum(Problem):
    """Shared checks for problems f(x) = (1/n) Σ_i f_i(x) built from a data matrix."""

    def _rows(self, batch):
        if batch is None:
            return self.features, self.targets
        return self.features[batch], self.targets[batch]


class LeastSquares(_FiniteSum):
    r"""f(x) = (1/2n) ‖A x - b‖², minibatch f_S(x) = (1/2|S|) ‖A_S x - b_S‖².

    ``beta`` and ``mu`` are the extreme eigenvalues of AᵀA/n (``mu`` clipped at 0); the minimizer is the
    least-squares solution (minimum norm when A is rank deficient).

    Parameters
    ----------
    A : array_like
        Finite data matrix, shape ``(n, d)``.
    b : array_like
        Finite targets, shape ``(n,)``.
    """

    name = "least_squares"

    def __init__(self, A, b):
        A = check.as_matrix("A", A)
        b = check.as_float_array("b", b)
        if b.shape != (A.shape[0],):
            raise ValueError(f"b must have shape ({A.shape[0]},) to match A of shape {A.shape}, got {b.shape}")
        self.features, self.targets = A, b
        self.n_samples, self.dim = A.shape
        with np.errstate(all="ignore"):  # data near the largest float: refused below, without a warning
            gram = A.T @ A / self.n_samples
        if not np.all(np.isfinite(gram)):
            raise ValueError(f"A is too large for float64: AᵀA/n overflows (max |A| = {np.max(np.abs(A)):.3g}); "
                             "rescale the data")
        curvature = np.linalg.eigvalsh(gram)
        self.beta = float(curvature[-1])
        self.mu = float(max(curvature[0], 0.0))
        with np.errstate(all="ignore"):
            self.minimizer = np.linalg.lstsq(A, b, rcond=None)[0]
            residual = A @ self.minimizer - b
            self.f_star = float(0.5 * np.mean(residual * residual))
        if not (np.all(np.isfinite(self.minimizer)) and np.isfinite(self.f_star)):
            raise ValueError(f"A and b are too large for float64: the minimizer or f* = ½ mean((Ax* − b)²) overflows "
                             f"(max |A| = {np.max(np.abs(A)):.3g}, max |b| = {np.max(np.abs(b)):.3g}); rescale the data")

    @property
    def A(self):
        return self.features

    @property
    def b(self):
        return self.targets

    def _loss(self, X, batch):
        A, b = self._rows(batch)
        residual = _rowwise_matmul(X, A.T) - b
        return 0.5 * np.mean(residual * residual, axis=1)

    def _grad(self, X, batch):
        A, b = self._rows(batch)
        return _rowwise_matmul(_rowwise_matmul(X, A.T) - b, A) / A.shape[0]

    def _hessian(self, X):
        H = self.features.T @ self.features / self.n_samples
        return np.broadcast_to(H, (X.shape[0], self.dim, self.dim)).copy()

    def quadratic_form(self):
        eigenvalues, eigenvectors = np.linalg.eigh(self.features.T @ self.features / self.n_samples)
        return eigenvalues, eigenvectors, self.minimizer


class LogisticRegression(_FiniteSum):
    r"""f(w) = (1/n) Σ_i log(1 + exp(-y_i x_iᵀ w)) + (l2/2) ‖w‖², labels y in {0, 1} or {-1, 1}.

    β = ‖X‖₂² / (4n) + l2 and μ = l2. The minimizer is not known in closed form (None); the convex module
    computes it with CVXPY.

    Parameters
    ----------
    X : array_like
        Finite feature matrix, shape ``(n, d)``.
    y : array_like
        Labels, shape ``(n,)``, all in {0, 1} or all in {-1, 1} (0/1 labels are mapped to -1/1).
    l2 : float, optional
        Ridge coefficient, >= 0 (default 0).
    """

    name = "logistic"

    def __init__(self, X, y, l2: float = 0.0):
        X = check.as_matrix("X", X)
        y = check.as_float_array("y", y)
        if y.shape != (X.shape[0],):
            raise ValueError(f"y must have shape ({X.shape[0]},) to match X of shape {X.shape}, got {y.shape}")
        labels = set(np.unique(y).tolist())
        if labels <= {0.0, 1.0}:
            y = 2.0 * y - 1.0
        elif not labels <= {-1.0, 1.0}:
            raise ValueError(f"y must take values in {{0, 1}} or {{-1, 1}}, got values {sorted(labels)[:6]}")
        self.l2 = check.as_scalar("l2", l2, nonnegative=True)
        self.features, self.targets = X, y
        self.n_samples, self.dim = X.shape
        with np.errstate(all="ignore"):  # data near the largest float: refused below, without a warning
            norm = float(np.linalg.norm(X, 2))
            self.beta = norm * (norm / (4 * self.n_samples)) + self.l2
        if not np.isfinite(self.beta):
            raise ValueError(f"X and l2 are too large for float64: β = ‖X‖₂²/(4n) + l2 overflows (‖X‖₂ = {norm:.3g}, "
                             f"l2 = {self.l2:.3g}); rescale the data")
        self.mu = self.l2

    def _loss(self, W, batch):
        X, y = self._rows(batch)
        margins = _rowwise_matmul(W, X.T) * y
        out = np.mean(np.logaddexp(0.0, -margins), axis=1)
        return out + 0.5 * self.l2 * _row_dots(W, W) if self.l2 else out

    def _grad(self, W, batch):
        X, y = self._rows(batch)
        weights = special.expit(-_rowwise_matmul(W, X.T) * y) * y
        out = _rowwise_matmul(weights, X) / (-X.shape[0])
        return out + self.l2 * W if self.l2 else out

    def _hessian(self, W):
        X = self.features
        p = special.expit(W @ X.T)
        curvature = np.einsum("bn,ni,nj->bij", p * (1 - p), X, X) / self.n_samples
        return curvature + self.l2 * np.eye(self.dim)


class Saddle(Problem):
    r"""f(x, y) = (a/2) x² - (b/2) y² + (c/4) y⁴: a strict saddle at the origin, minima at (0, ±√(b/c)).

    The Hessian at the saddle is diag(a, -b); at the minima diag(a, 2b). The quartic term makes f not
    globally smooth, so ``beta`` is None.

    Parameters
    ----------
    a, b, c : float, optional
        Positive, finite coefficients (default 1 each).
    """

    name = "saddle"
    dim = 2

    def __init__(self, a: float = 1.0, b: float = 1.0, c: float = 1.0):
        self.a = check.as_scalar("a", a, positive=True)
        self.b = check.as_scalar("b", b, positive=True)
        self.c = check.as_scalar("c", c, positive=True)
        with np.errstate(all="ignore"):  # refused below, without a warning
            self.minima = np.array([[0.0, np.sqrt(self.b / self.c)], [0.0, -np.sqrt(self.b / self.c)]])
            self.f_star = float(-np.float64(self.b) ** 2 / (4 * self.c))
        if not (np.all(np.isfinite(self.minima)) and np.isfinite(self.f_star)):
            raise ValueError(f"b and c must give minima (0, ±√(b/c)) and f* = −b²/(4c) within float64's range, "
                             f"got b = {self.b:g}, c = {self.c:g}")
        self.beta = None
        self.mu = None

    def distance(self, X):
        X, squeeze = self._check_points(X)
        out = np.min(np.linalg.norm(X[:, None, :] - self.minima[None], axis=-1), axis=1)
        return out[0] if squeeze else out

    def _loss(self, X, batch):
        x, y = X[:, 0], X[:, 1]
        return 0.5 * self.a * x * x - 0.5 * self.b * y * y + 0.25 * self.c * y**4

    def _grad(self, X, batch):
        x, y = X[:, 0], X[:, 1]
        return _columns(self.a * x, -self.b * y + self.c * y**3)

    def _hessian(self, X):
        out = np.zeros((X.shape[0], 2, 2))
        out[:, 0, 0] = self.a
        out[:, 1, 1] = -self.b + 3 * self.c * X[:, 1] ** 2
        return out

    def initial_point(self, seed: int = 0) -> np.ndarray:
        """A point near the saddle, mostly along its stable direction."""
        rng = np.random.default_rng(seed)
        return np.array([1.0, 1e-3]) * rng.uniform(0.5, 1.0, size=2) * rng.choice([-1.0, 1.0], size=2)

    def __repr__(self):
        return f"Saddle(a={self.a:g}, b={self.b:g}, c={self.c:g})"


class ScalarFactorization(Problem):
    r"""f(u, v) = ½ (u v - t)²: non-convex, minima on the hyperbola u v = t with sharpness u² + v².

    A minimal model whose sharpness changes during training (edge-of-stability experiments, docs/theory.md O12).

    Parameters
    ----------
    target : float, optional
        The product t, > 0 and finite (default 1).
    """

    name = "factorization"
    dim = 2

    def __init__(self, target: float = 1.0):
        self.target = check.as_scalar("target", target, positive=True)
        self.f_star = 0.0

    def sharpness(self, X) -> np.ndarray:
        """Largest Hessian eigenvalue at each point."""
        return np.linalg.eigvalsh(self.hessian(np.atleast_2d(X)))[:, -1]

    def _loss(self, X, batch):
        r = X[:, 0] * X[:, 1] - self.target
        return 0.5 * r * r

    def _grad(self, X, batch):
        r = X[:, 0] * X[:, 1] - self.target
        return _columns(r * X[:, 1], r * X[:, 0])

    def _hessian(self, X):
        u, v = X[:, 0], X[:, 1]
        out = np.empty((X.shape[0], 2, 2))
        out[:, 0, 0] = v * v
        out[:, 1, 1] = u * u
        out[:, 0, 1] = out[:, 1, 0] = 2 * u * v - self.target
        return out

    def __repr__(self):
        return f"ScalarFactorization(target={self.target:g})"


class SmoothConvexInterpolant(Problem):
    r"""The L-smooth convex function through given first-order data (x_i, g_i, f_i), i = 1…m.

    Data satisfy the interpolation conditions of L-smooth convex functions (Taylor, Hendrickx & Glineur 2017)
    f_i ≥ f_j + ⟨g_j, x_i − x_j⟩ + ‖g_i − g_j‖²/(2L) for all i ≠ j (checked: ``ValueError`` otherwise), and
    the function is the conjugate of the (1/L)-strongly convex max-of-quadratics through the conjugate data:

        f(z) = min over λ in the simplex of  Σ λ_i (f_i − ‖g_i‖²/(2L)) + ‖Lz + Σ λ_i (g_i − L x_i)‖²/(2L),
        ∇f(z) = Lz + Σ λ*_i (g_i − L x_i).

    It is piecewise quadratic: the Moreau envelope, with parameter 1/L, of a polyhedral function. It is convex
    and L-smooth, and f(x_i) = f_i, ∇f(x_i) = g_i. The minimum over λ is exact: every support of λ is tried
    (the stationary point on each face by a pseudo-inverse, kept where λ ≥ 0), so m is at most 10.
    :func:`samtheory.stability.usam_expansivity_witness` builds the function that attains USAM's expansivity
    κ(η, ρ) (docs/theory.md O14).

    Parameters
    ----------
    points : array_like
        x_i, shape (m, d), finite, 1 <= m <= 10.
    gradients : array_like
        g_i, shape (m, d), finite.
    values : array_like
        f_i, shape (m,), finite.
    L : float, optional
        Smoothness constant, > 0 (default 1).
    """

    name = "interpolant"
    _MAX_POINTS = 10

    def __init__(self, points, gradients, values, L: float = 1.0):
        X = check.as_float_array("points", points)
        G = check.as_float_array("gradients", gradients)
        F = check.as_float_array("values", values)
        if X.ndim != 2 or not 1 <= X.shape[0] <= self._MAX_POINTS or X.shape[1] < 1:
            raise ValueError(f"points must have shape (m, d) with 1 <= m <= {self._MAX_POINTS}, got {X.shape}")
        if G.shape != X.shape:
            raise ValueError(f"gradients must have the shape of points {X.shape}, got {G.shape}")
        if F.shape != X.shape[:1]:
            raise ValueError(f"values must have shape ({X.shape[0]},), got {F.shape}")
        self.L = self.beta = check.as_scalar("L", L, positive=True)
        self.mu, self.dim = 0.0, X.shape[1]
        self.points, self.gradients, self.values = X, G, F
        slack = self.interpolation_slack()
        scale = 1.0 + np.abs(F).max() + np.abs(G).max() * np.abs(X).max() + np.abs(G).max() ** 2 / self.L
        if slack.min() < -1e-10 * scale:
            i, j = np.unravel_index(np.argmin(slack), slack.shape)
            raise ValueError(f"points, gradients, values: no L-smooth convex function interpolates them (L = "
                             f"{self.L:g}): the condition from point {j} to point {i} fails by {-slack[i, j]:.3g}")
        self._offsets = F - np.sum(G * G, axis=1) / (2.0 * self.L)   # c_i
        self._directions = (G - self.L * X).T                          # V, shape (d, m)
        self._faces = []
        m = F.size
        for k in range(1, m + 1):
            for support in itertools.combinations(range(m), k):
                S = list(support)
                kkt = np.zeros((k + 1, k + 1))
                kkt[:k, :k] = self._directions[:, S].T @ self._directions[:, S] / self.L
                kkt[:k, k] = kkt[k, :k] = 1.0
                inverse = np.linalg.pinv(kkt)
                self._faces.append((S, np.ascontiguousarray(self._directions[:, S]),
                                    np.ascontiguousarray(inverse[:k, :k].T), inverse[:k, k]))

    def interpolation_slack(self) -> np.ndarray:
        """S[i, j] = f_i − f_j − ⟨g_j, x_i − x_j⟩ − ‖g_i − g_j‖²/(2L) (>= 0 for interpolable data; 0 on the
        diagonal), shape (m, m)."""
        X, G, F = self.points, self.gradients, self.values
        dx, dg = X[:, None, :] - X[None, :, :], G[:, None, :] - G[None, :, :]
        return (F[:, None] - F[None, :] - np.sum(G[None, :, :] * dx, axis=-1)
                - np.sum(dg * dg, axis=-1) / (2.0 * self.L))

    def _solve(self, X):
        """(f, ∇f) at each row of X: the smallest objective over the faces' feasible stationary points."""
        best = np.full(X.shape[0], np.inf)
        with np.errstate(over="ignore", invalid="ignore"):  # far from the data: inf, the engine's divergence
            LX = self.L * X
            gradient = LX.copy()  # the leading term, kept where no face is found (non-finite input)
            for S, V, P, p in self._faces:
                lam = _rowwise_matmul(-(self._offsets[S] + _rowwise_matmul(X, V)), P) + p
                feasible = (lam.min(axis=1) >= -1e-12) & (np.abs(lam.sum(axis=1) - 1.0) <= 1e-12)
                lam = np.maximum(lam, 0.0)
                lam /= np.maximum(lam.sum(axis=1, keepdims=True), 1e-300)
                w = LX + _rowwise_matmul(lam, V.T.copy())
                value = _rowwise_matmul(lam, self._offsets[S][:, None])[:, 0] + _row_dots(w, w) / (2.0 * self.L)
                better = feasible & (value < best)
                best[better], gradient[better] = value[better], w[better]
        return best, gradient

    def _loss(self, X, batch):
        return self._solve(X)[0]

    def _grad(self, X, batch):
        return self._solve(X)[1]

    def __repr__(self):
        return f"SmoothConvexInterpolant(m={self.values.size}, d={self.dim}, L={self.L:g})"


def as_problem(name: str, value) -> Problem:
    """``value`` if it is a samtheory :class:`Problem`, else a ``ValueError`` naming the argument.

    Parameters
    ----------
    name : str
        The argument's name, for the message.
    value : object
        The value to check.

    Returns
    -------
    Problem
    """
    if not isinstance(value, Problem):
        raise check.InputTypeError(f"{name} must be a samtheory Problem, got {value!r:.80}")
    return value


class NoisyQuadratic(Problem):
    r"""f(x) = ½ Σ_i λ_i x_i² whose gradient oracle adds a noise draw ξ each step: g̃(x) = λ ⊙ x + ξ (O17).

    The noise is Gaussian with a covariance, or a discrete distribution given by its values and probabilities.
    :func:`samtheory.simulate` draws it per step from the configuration's seed (like minibatches: rows that
    share a seed share their draws, and a row's draws depend on its seed alone). ``draws`` says what the two
    gradients of a SAM step see: ``"shared"`` (one ξ for g(x) and g(y)) or ``"independent"`` (ξ₁ for the
    ascent gradient g(x), ξ₂ for the descent gradient g(y)). ``loss`` and ``grad`` are the noiseless ones,
    which the engine uses for ‖g(x_0)‖, the final status and the reported values.

    Parameters
    ----------
    eigenvalues : array_like
        λ, a non-empty finite 1-D array (d = its length).
    noise : float, array_like or tuple, optional
        σ >= 0 (Gaussian, covariance σ²I; default 1), a symmetric positive semidefinite ``(d, d)`` covariance
        matrix, or a pair ``(values, probabilities)``: values of shape ``(k, d)`` (or ``(k,)`` when d = 1) and
        k probabilities >= 0 summing to 1.
    draws : {"shared", "independent"}, optional
        Whether both gradients of a step see the same draw (default) or independent draws.
    """

    name = "noisy_quadratic"

    def __init__(self, eigenvalues, noise=1.0, *, draws: str = "shared"):
        lam = check.as_vector("eigenvalues", eigenvalues)
        self.eigenvalues, self.dim = lam, lam.size
        self.draws = check.choice("draws", draws, ("shared", "independent"))
        d = self.dim
        if isinstance(noise, tuple):
            if len(noise) != 2:
                raise ValueError(f"noise must be sigma, a covariance matrix or a pair (values, probabilities), "
                                 f"got a tuple of length {len(noise)}")
            values = check.as_float_array("noise values", noise[0])
            if values.ndim == 1 and d == 1:
                values = values[:, None]
            if values.ndim != 2 or values.shape[1] != d or values.shape[0] == 0:
                raise ValueError(f"noise values must have shape (k, {d}), got {values.shape}")
            probabilities = check.as_vector("noise probabilities", noise[1], size=values.shape[0],
                                            match="the noise values", nonnegative=True)
            if abs(probabilities.sum() - 1.0) > 1e-12:
                raise ValueError(f"noise probabilities must sum to 1, got sum {probabilities.sum():.17g}")
            self.kind, self.values, self.probabilities = "discrete", values, probabilities
            self.mean = probabilities @ values
            centered = values - self.mean
            self.covariance = (centered * probabilities[:, None]).T @ centered
            self._factor = None
        else:
            value = check.as_float_array("noise", noise)
            if value.ndim == 0:
                sigma = check.as_scalar("noise", noise, nonnegative=True)
                covariance = sigma**2 * np.eye(d)
            else:
                covariance = check.as_matrix("noise", value, symmetric=True)
                if covariance.shape != (d, d):
                    raise ValueError(f"noise covariance must have shape ({d}, {d}), got {covariance.shape}")
            w, V = np.linalg.eigh(covariance)
            if w[0] < -1e-12 * max(1.0, abs(w[-1])):
                raise ValueError(f"noise covariance must be positive semidefinite, got eigenvalue {w[0]:.6g}")
            self.kind, self.values, self.probabilities = "gaussian", None, None
            self.mean, self.covariance = np.zeros(d), covariance
            self._factor = V * np.sqrt(np.maximum(w, 0.0))  # ξ = factor @ z, z standard normal
        self.beta = float(np.max(np.abs(lam)))
        self.mu = float(np.min(lam))
        convex = self.mu >= 0
        self.minimizer = np.zeros(d) if convex else None
        self.f_star = 0.0 if convex else None

    def sample(self, rng, size: int) -> np.ndarray:
        """``size`` noise draws from the generator ``rng``, shape ``(size, d)``."""
        if self.kind == "discrete":
            return self.values[rng.choice(self.values.shape[0], size=size, p=self.probabilities)]
        return rng.standard_normal((size, self.dim)) @ self._factor.T

    def noisy_gradient_oracle(self, batch, rng) -> GradientOracle:
        """The gradient of one step with its noise: two draws from ``rng`` (always two, so that both modes
        consume the stream alike); the first call of a step sees ξ₁, later calls ξ₁ (``"shared"``) or ξ₂."""
        first, second = self.sample(rng, 2)
        calls = [0]

        def gradient(X):
            noise = first if calls[0] == 0 or self.draws == "shared" else second
            calls[0] += 1
            return X * self.eigenvalues + noise

        return gradient

    def _loss(self, X, batch):
        return 0.5 * _row_dots(X * self.eigenvalues, X)

    def _grad(self, X, batch):
        return X * self.eigenvalues

    def _hessian(self, X):
        return np.broadcast_to(np.diag(self.eigenvalues), (X.shape[0], self.dim, self.dim)).copy()

    def __repr__(self):
        lam = np.array2string(self.eigenvalues, threshold=6, precision=4)
        return f"NoisyQuadratic(eigenvalues={lam}, noise={self.kind}, draws={self.draws!r})"


__all__ += ["NoisyQuadratic"]
