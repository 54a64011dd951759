r"""Stochastic regimes (docs/theory.md O16): learning-rate limits of SGD and USAM under minibatch noise.

On realizable least squares f(x) = (1/2n)‖A(x − x*)‖², a step of ``gd`` or ``usam`` on a minibatch ξ of size m is
the random linear map e ↦ M_ξ e = (I − ηG_ξ)e of e = x − x*, with H_ξ = (1/m)Σ_{i∈ξ} a_i a_iᵀ and

- ``gd``: G = H_ξ;
- ``usam``, both gradients on one minibatch (``minibatch="shared"``): G = H_ξ + ρH_ξ²;
- ``usam``, independent minibatches (``"independent"``; ascent on ξ, descent on ξ'): G = H_ξ'(I + ρH_ξ).

Minibatches are drawn uniformly without replacement, as the engine does (``replace=True``: m independent uniform
indices). Two exact objects and one measurement:

- :func:`mean_square_critical_learning_rate`: η_ms, the smallest η at which the spectral radius of
  E[M_ξ ⊗ M_ξ] = I − η(Ḡ ⊗ I + I ⊗ Ḡ) + η²E[G_ξ ⊗ G_ξ] reaches 1, by enumeration of the minibatches, by moment
  formulas (inclusion probabilities p_q = (m)_q/(n)_q of q distinct indices) or matrix-free (ARPACK on
  Σ ↦ E[M_ξ Σ M_ξᵀ]);
- :func:`lyapunov_exponent` and :func:`lyapunov_critical_learning_rate`: the top Lyapunov exponent of
  M_{ξ_T}⋯M_{ξ_1} from renormalized products (vectorized over η and seeds, confidence interval by batch
  means) and η_as where it crosses 0;
- :func:`stochastic_critical_learning_rate`: the engine's measured threshold over many seeds (the η at which
  a stated fraction of the seeds diverge within T steps), any method, all ρ at once;
  :func:`gamma_distribution`: the renormalization factor γ of ``ssam``/``susam`` under noise.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, sparse, stats

from .. import _limits
from .. import _validation as check
from .. import theory
from ..engine import _MINIBATCH_STREAM, simulate
from ..methods import resolve_method
from ..problems import LeastSquares
from ..result import DIVERGED, Threshold
from ._measured import _bisect, _check_rtol, initial_points

__all__ = ["MINIBATCH_MODES", "MEAN_SQUARE_ALGORITHMS", "StochasticThreshold", "LyapunovEstimate",
           "GammaDistribution", "mean_square_spectral_radius", "mean_square_critical_learning_rate",
           "lyapunov_exponent", "lyapunov_critical_learning_rate", "stochastic_critical_learning_rate",
           "gamma_distribution", "full_batch_critical_learning_rate"]

#: How the two gradients of a ``usam`` step see minibatches.
MINIBATCH_MODES = ("shared", "independent")
#: The ways of computing E[M ⊗ M]: ``"enumerate"`` (every minibatch), ``"moments"`` (inclusion
#: probabilities), ``"matrix-free"`` (ARPACK on Σ ↦ E[MΣMᵀ]), ``"auto"`` (enumeration when there are at most
#: 20000 minibatches, else moments for d <= 12, else matrix-free).
MEAN_SQUARE_ALGORITHMS = ("auto", "enumerate", "moments", "matrix-free")
_LINEAR = ("gd", "usam")
_ENUMERATION_LIMIT = 20_000
_MOMENTS_MAX_DIM = 12
_EINSUM_MEMORY = 1 << 25  # largest intermediate (numbers) of a moment contraction
_LYAPUNOV_STREAM = 0x4C59  # second word of the Lyapunov start vectors' seed
_ROUNDING_LEVEL = 1e-6  # gamma_distribution: ‖g‖/‖g(x_0)‖ below which γ is left out
_SCAN_POINTS = 24  # geometric grid on which the first crossing of ρ(E[M ⊗ M]) = 1 is located


@dataclass(frozen=True)
class StochasticThreshold(Threshold):
    """A stochastic threshold per ρ: ``edge`` is ``"mean_square"`` (exact, ``source="analytic"``),
    ``"almost_sure"`` (Lyapunov exponent, ``source="estimated"``; ``lower``/``upper`` the η where the
    confidence interval's upper/lower end crosses 0, ``tolerance`` the largest upper/lower − 1, the confidence
    level in ``details``) or ``"nondivergent"`` (``source="measured"``: the
    engine over seeds).

    Attributes
    ----------
    method, edge, source, value, lower, upper, tolerance, reason, relative
        As in :class:`~samtheory.result.Threshold`.
    rho : ndarray
        The radii, 1-D; ``value`` has its shape.
    batch_size : int
        Minibatch size m.
    minibatch : str
        ``"shared"`` or ``"independent"``.
    replace : bool
        Whether minibatches were drawn with replacement.
    details : dict
        How it was found (algorithm, steps, seeds, rule, the Lyapunov curve, ...).
    """

    rho: np.ndarray | None = None
    batch_size: int = 0
    minibatch: str = "shared"
    replace: bool = False
    details: dict | None = None


@dataclass(frozen=True)
class LyapunovEstimate:
    """Top Lyapunov exponent per η (per step, natural log) with its confidence interval.

    Attributes
    ----------
    eta, rho : ndarray
        The configurations, 1-D of one length.
    exponent, lower, upper, stderr : ndarray
        The estimate (mean over seeds × blocks of the per-step log growth after burn-in), the ends of its
        ``confidence`` interval (Student t over the block means) and the standard error.
    steps, burn_in, seeds, blocks : int
        Products of ``steps`` factors, the first ``burn_in`` discarded, over ``seeds`` seeds, ``blocks``
        blocks each.
    confidence : float
        The interval's confidence level.
    """

    eta: np.ndarray
    rho: np.ndarray
    exponent: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    stderr: np.ndarray
    steps: int
    burn_in: int
    seeds: int
    blocks: int
    confidence: float


@dataclass(frozen=True)
class GammaDistribution:
    """The renormalization factor γ over every step of every seed (before divergence), after burn-in.

    Attributes
    ----------
    method : str
        The method.
    quantiles : ndarray
        The probabilities of ``values``.
    values : ndarray
        γ's quantiles.
    mean : float
        Mean of γ.
    fraction_above_one : float
        Fraction of steps with γ > 1 (where ``truncate=True`` acts).
    samples : int
        Number of γ values.
    """

    method: str
    quantiles: np.ndarray
    values: np.ndarray
    mean: float
    fraction_above_one: float
    samples: int


# -- the linear model -------------------------------------------------------------------------------------------

class _Model:
    """Realizable least squares reduced to the range of Aᵀ: features F = A V (n × r), e ↦ Vᵀe."""

    def __init__(self, problem, method, batch_size, minibatch, replace):
        if not isinstance(problem, LeastSquares):
            raise check.InputTypeError(f"problem must be a samtheory LeastSquares (O16 is for realizable least "
                                       f"squares), got {problem!r:.80}")
        spec = resolve_method(method)
        if spec.kind not in _LINEAR:
            raise ValueError(f"method must be 'gd' or 'usam' (the linear methods; others are measured only: "
                             f"stochastic_critical_learning_rate), got {method!r:.80}")
        self.method = spec.kind
        self.n = problem.n_samples
        self.batch_size = check.as_positive_int("batch_size", batch_size, maximum=self.n)
        self.minibatch = check.choice("minibatch", minibatch, MINIBATCH_MODES)
        self.replace = check.as_bool("replace", replace)
        A, b = problem.A, problem.b
        x_star = problem.minimizer
        residual = float(np.linalg.norm(A @ x_star - b))
        scale = float(np.linalg.norm(b)) + float(np.linalg.norm(A)) * float(np.linalg.norm(x_star))
        if residual > 1e-9 * max(scale, 1e-300):
            raise ValueError(f"problem must be realizable (b = A x* for some x*; O16), got min ‖Ax − b‖ = "
                             f"{residual:.6g} against ‖b‖ = {np.linalg.norm(b):.6g}")
        _, s, Vt = np.linalg.svd(A, full_matrices=False)
        rank = int(np.sum(s > s[0] * max(A.shape) * np.finfo(float).eps)) if s.size and s[0] > 0 else 0
        if rank == 0:
            raise ValueError("problem must have a nonzero A (every learning rate is stable for A = 0)")
        self.V = Vt[:rank].T
        self.F = A @ self.V
        self.r = rank
        self.mean_H = self.F.T @ self.F / self.n
        self.lam_max = float(np.linalg.eigvalsh(self.mean_H)[-1])
        self._paths = {}

    def mean_map_edge(self, rho) -> float:
        """2/λ_max(Ḡ): E[M] = I − ηḠ is unstable beyond it, so ρ(E[M ⊗ M]) >= ρ(E[M])² >= 1 there."""
        G = self.moment_G(rho)
        return float(theory.gd_critical_learning_rate(np.max(np.abs(np.linalg.eigvals(G)))))

    def full_batch_edge(self, rho) -> float:
        if self.method == "gd":
            return float(theory.gd_critical_learning_rate(self.lam_max))
        return float(theory.usam_critical_learning_rate(self.lam_max, rho))

    # weights of the pattern sums: E[z_{i1}⋯z_{iL}] over index tuples constant on the blocks of a partition
    def weights(self, partitions):
        n, m = self.n, self.batch_size
        if self.replace:
            return [math.perm(m, len(p)) / float(n) ** len(p) for p in partitions]
        p = [math.prod((m - k) / (n - k) for k in range(q)) for q in range(5)]
        w = {}
        for sigma in sorted(partitions, key=len, reverse=True):  # finest first
            w[sigma] = p[len(sigma)] - sum(w[tau] for tau in w if tau != sigma and _finer(tau, sigma))
        return [w[s] for s in partitions]

    def pattern_sum(self, lengths, sigma=None):
        """E[H^{L1} ⊗ H^{L2}] (d² × d², ``sigma`` None), E[H^{L1} Σ H^{L2}] (``sigma`` given) or E[H^L]
        (one length), exactly, from the inclusion probabilities."""
        samples = "ijkl"[:sum(lengths)]
        letters = iter("pqrstuvwxyzabcdefgh")
        operands, subscripts, ends, used = [], [], [], 0
        for word, length in enumerate(lengths):
            chain = [next(letters) for _ in range(length + 1)]
            if word == 1 and sigma is not None:
                subscripts.append(ends[-1][1] + chain[0])
                operands.append(sigma)
            for k in range(length):
                s = samples[used + k]
                subscripts += [s + chain[k], s + chain[k + 1]]
                operands += [self.F, self.F]
            used += length
            ends.append((chain[0], chain[-1]))
        if len(lengths) == 1:
            output = ends[0][0] + ends[0][1]
        elif sigma is None:
            output = ends[0][0] + ends[1][0] + ends[0][1] + ends[1][1]
        else:
            output = ends[0][0] + ends[1][1]
        partitions = list(_partitions(samples))
        total = 0.0
        for weight, partition in zip(self.weights(partitions), partitions):
            rename = {s: block[0] for block in partition for s in block}
            spec = ",".join("".join(rename.get(c, c) for c in sub) for sub in subscripts) + "->" + output
            path = self._paths.get(spec)
            if path is None:  # planned once per contraction: planning costs more than a small contraction
                path = self._paths[spec] = np.einsum_path(spec, *operands, optimize=("greedy", _EINSUM_MEMORY))[0]
            total = total + weight * np.einsum(spec, *operands, optimize=path)
        total = total / float(self.batch_size) ** sum(lengths)
        if len(lengths) == 2 and sigma is None:
            total = total.reshape(self.r**2, self.r**2)
        return total

    def moment_G(self, rho):
        H = self.mean_H
        if self.method == "gd":
            return H
        if self.minibatch == "independent":
            return H + rho * H @ H
        return H + rho * self.pattern_sum((2,))

    def moments(self, rho):
        """(Ḡ, E[G ⊗ G]) from the inclusion probabilities."""
        G = self.moment_G(rho)
        HH = self.pattern_sum((1, 1))
        if self.method == "gd":
            return G, HH
        if self.minibatch == "independent":  # G = H'K, K = I + ρH, H' and H independent
            eye = np.eye(self.r)
            KK = np.kron(eye, eye) + rho * (np.kron(self.mean_H, eye) + np.kron(eye, self.mean_H)) + rho**2 * HH
            return G, HH @ KK
        S = HH + rho * (self.pattern_sum((1, 2)) + self.pattern_sum((2, 1))) + rho**2 * self.pattern_sum((2, 2))
        return G, S

    def batches(self):
        n, m = self.n, self.batch_size
        if self.replace:
            return [np.array(t) for t in itertools.product(range(n), repeat=m)]
        return [np.array(t) for t in itertools.combinations(range(n), m)]

    def count_batches(self) -> int:
        n, m = self.n, self.batch_size
        count = n**m if self.replace else math.comb(n, m)
        return count**2 if (self.method == "usam" and self.minibatch == "independent") else count

    def enumerate(self, rho):
        """(Ḡ, E[G ⊗ G]) by averaging over every minibatch (pairs of minibatches for independent ones)."""
        Hs = [self.F[b].T @ self.F[b] / self.batch_size for b in self.batches()]
        if self.method == "gd":
            Gs = Hs
        elif self.minibatch == "shared":
            Gs = [H + rho * H @ H for H in Hs]
        else:
            eye = np.eye(self.r)
            Gs = [Hd @ (eye + rho * Ha) for Hd in Hs for Ha in Hs]
        G = np.mean(Gs, axis=0)
        S = np.mean([np.kron(g, g) for g in Gs], axis=0)
        return G, S

    def apply_second(self, rho, sigma):
        """E[G Σ Gᵀ], matrix-free."""
        if self.method == "gd":
            return self._sandwich_H(sigma)
        if self.minibatch == "independent":  # E[H' E[KΣKᵀ] H']
            H = self.mean_H
            inner = sigma + rho * (H @ sigma + sigma @ H) + rho**2 * self._sandwich_H(sigma)
            return self._sandwich_H(inner)
        out = self._sandwich_H(sigma)
        out = out + rho * (self.pattern_sum((1, 2), sigma) + self.pattern_sum((2, 1), sigma))
        return out + rho**2 * self.pattern_sum((2, 2), sigma)

    def _sandwich_H(self, sigma):
        """E[H Σ H] = (1/m²)(w₂ CΣC/… + w₁ Σ_i c_i Σ c_i), in O(n r²)."""
        F = self.F
        (w_distinct, w_equal) = self.weights([(("i",), ("j",)), (("i", "j"),)])
        C = F.T @ F
        quad = np.einsum("ip,pq,iq->i", F, sigma, F)
        return (w_distinct * C @ sigma @ C + w_equal * (F.T * quad) @ F) / float(self.batch_size) ** 2


def _partitions(letters):
    """Set partitions of ``letters`` as tuples of blocks (tuples of letters)."""
    letters = list(letters)
    if not letters:
        yield ()
        return
    first, rest = letters[0], letters[1:]
    for partition in _partitions(rest):
        yield ((first,),) + partition
        for k in range(len(partition)):
            yield partition[:k] + ((first,) + partition[k],) + partition[k + 1:]


def _finer(tau, sigma) -> bool:
    """Whether every block of ``tau`` lies inside a block of ``sigma``."""
    return all(any(set(block) <= set(big) for big in sigma) for block in tau)


def _spectral_radius_dense(G, S, eta) -> float:
    r = G.shape[0]
    eye = np.eye(r)
    T = np.kron(eye, eye) - eta * (np.kron(G, eye) + np.kron(eye, G)) + eta**2 * S
    return float(np.max(np.abs(np.linalg.eigvals(T))))


def _spectral_radius_free(model, rho, eta, state) -> float:
    """ρ(Σ ↦ E[MΣMᵀ]) by ARPACK, warm-started from the previous call's eigenvector (``state``)."""
    r = model.r
    G = model.moment_G(rho)

    def matvec(v):
        sigma = np.asarray(v, dtype=np.float64).reshape(r, r)
        out = sigma - eta * (G @ sigma + sigma @ G.T) + eta**2 * model.apply_second(rho, sigma)
        return out.ravel()

    if r * r <= 16:
        T = np.column_stack([matvec(e) for e in np.eye(r * r)])
        return float(np.max(np.abs(np.linalg.eigvals(T))))
    operator = sparse.linalg.LinearOperator((r * r, r * r), matvec=matvec, dtype=np.float64)
    # A positive definite start at first: the Perron eigenvector is positive semidefinite.
    start = state.get("vector", np.eye(r).ravel())
    values, vectors = sparse.linalg.eigs(operator, k=1, which="LM", v0=start, tol=1e-13, maxiter=10_000)
    vector = np.real(vectors[:, 0])
    if np.linalg.norm(vector) > 0:
        state["vector"] = vector / np.linalg.norm(vector)
    return float(np.max(np.abs(values)))


def _radius_function(model, rho, algorithm):
    algorithm = _resolve_algorithm(model, algorithm)
    if algorithm == "enumerate":
        G, S = model.enumerate(rho)
    elif algorithm == "moments":
        G, S = model.moments(rho)
    else:
        state = {}
        return algorithm, lambda eta: _spectral_radius_free(model, rho, eta, state)
    return algorithm, lambda eta: _spectral_radius_dense(G, S, eta)


def _perron_inverse(model, rho, algorithm, tol):
    r"""μ = ρ(L⁻¹Q) with L(Σ) = ḠΣ + ΣḠᵀ and Q(Σ) = E[G Σ Gᵀ]; η_ms = 1/μ.

    E[M Σ Mᵀ] − Σ = −η(L − ηQ)(Σ); −L is resolvent positive and stable (Ḡ is positive definite on the range)
    and Q is positive, so the positive map E[M ⊗ M] has spectral radius < 1 iff ρ(ηL⁻¹Q) < 1 (Damm 2004,
    Thm. 3.2.3 on resolvent-positive operators): the mean-square stable η form the interval (0, 1/μ)."""
    algorithm = _resolve_algorithm(model, algorithm)
    G = model.moment_G(rho)
    w, U = np.linalg.eigh(G / 2 + G.T / 2)  # Ḡ is symmetric in every mode
    sums = w[:, None] + w[None, :]
    if algorithm != "matrix-free":
        _, S = model.enumerate(rho) if algorithm == "enumerate" else model.moments(rho)
        r = model.r
        # L⁻¹ column by column in the eigenbasis of Ḡ: vec(U (X / (w_i + w_j)) Uᵀ) for X = Uᵀ S_k U.
        UU = np.kron(U, U)
        K = UU @ ((UU.T @ S) / sums.reshape(-1, 1))
        return algorithm, float(np.max(np.abs(np.linalg.eigvals(K)))) if r else np.nan
    r = model.r

    def matvec(v):
        sigma = np.asarray(v, dtype=np.float64).reshape(r, r)
        q = model.apply_second(rho, sigma)
        return (U @ ((U.T @ q @ U) / sums) @ U.T).ravel()

    if r * r <= 16:
        K = np.column_stack([matvec(e) for e in np.eye(r * r)])
        return algorithm, float(np.max(np.abs(np.linalg.eigvals(K))))
    operator = sparse.linalg.LinearOperator((r * r, r * r), matvec=matvec, dtype=np.float64)
    values = sparse.linalg.eigs(operator, k=1, which="LM", v0=np.eye(r).ravel(), tol=tol, maxiter=100_000,
                                return_eigenvectors=False)
    return algorithm, float(np.max(np.abs(values)))


def _resolve_algorithm(model, algorithm):
    if algorithm == "auto":
        if model.count_batches() <= _ENUMERATION_LIMIT:
            return "enumerate"
        return "moments" if model.r <= _MOMENTS_MAX_DIM else "matrix-free"
    if algorithm == "enumerate" and model.count_batches() > 10 * _ENUMERATION_LIMIT:
        raise ValueError(f"algorithm='enumerate' would average over {model.count_batches()} minibatches "
                         f"(more than {10 * _ENUMERATION_LIMIT}); use 'moments' or 'matrix-free'")
    return algorithm


def _check_rho(rho) -> np.ndarray:
    rho = np.atleast_1d(check.as_float_array("rho", rho, nonnegative=True))
    if rho.ndim != 1:
        raise ValueError(f"rho must be a scalar or 1-D array, got shape {rho.shape}")
    return rho


def mean_square_spectral_radius(problem, method, eta, rho=0.0, *, batch_size: int, minibatch: str = "shared",
                                replace: bool = False, algorithm: str = "auto") -> np.ndarray:
    r"""The spectral radius of E[M_ξ ⊗ M_ξ] at each η (O16): < 1 iff the method is mean-square stable there.

    Parameters
    ----------
    problem : LeastSquares
        Realizable least squares (b = A x*; ``ValueError`` otherwise).
    method : {"gd", "usam"}
        The linear method.
    eta : array_like
        Learning rates > 0, scalar or 1-D.
    rho : float, optional
        Radius ρ >= 0 (default 0; ignored by ``gd``).
    batch_size : int
        Minibatch size m, 1 <= m <= n.
    minibatch : {"shared", "independent"}, optional
        ``usam``'s two gradients on one minibatch (default) or on independent ones.
    replace : bool, optional
        Draw minibatches with replacement (default False, as the engine).
    algorithm : {"auto", "enumerate", "moments", "matrix-free"}, optional
        How E[M ⊗ M] is computed (:data:`MEAN_SQUARE_ALGORITHMS`).

    Returns
    -------
    ndarray
        ρ(E[M ⊗ M]) per η, the shape of ``eta``.
    """
    model = _Model(problem, method, batch_size, minibatch, replace)
    check.choice("algorithm", algorithm, MEAN_SQUARE_ALGORITHMS)
    rho = check.as_scalar("rho", rho, nonnegative=True)
    eta = check.as_float_array("eta", eta, positive=True)
    _, radius = _radius_function(model, rho, algorithm)
    return np.vectorize(radius, otypes=[np.float64])(eta)


def mean_square_critical_learning_rate(problem, method, rho=0.0, *, batch_size: int, minibatch: str = "shared",
                                       replace: bool = False, algorithm: str = "auto", solver: str = "perron",
                                       rtol: float = 1e-12) -> StochasticThreshold:
    r"""η_ms (O16): the smallest η at which ρ(E[M_ξ ⊗ M_ξ]) reaches 1, per ρ.

    ``solver="perron"`` (default): η_ms = 1/ρ(L⁻¹Q) with L(Σ) = ḠΣ + ΣḠ and Q(Σ) = E[G_ξ Σ G_ξᵀ], since
    E[M Σ Mᵀ] = Σ − η(L − ηQ)(Σ) is a positive map and −L + ηQ is a resolvent-positive operator plus a positive
    one (Damm 2004): the mean-square stable learning rates are exactly the interval (0, η_ms). One eigenvalue
    problem (dense, or ARPACK on L⁻¹Q with L inverted in the eigenbasis of Ḡ). ``solver="brent"``: an
    independent route, the first crossing of ρ(E[M ⊗ M]) = 1 on a 24-point geometric grid of
    [10⁻⁴, 1.01]·2/λ_max(Ḡ) refined by Brent's method (E[M] = I − ηḠ is unstable beyond 2/λ_max(Ḡ) and
    ρ(E[M ⊗ M]) >= ρ(E[M])²). For ``gd`` and for ``usam`` with independent minibatches Ḡ is the full-batch
    matrix, so η_ms <= the full-batch edge; at m = n the two are equal.

    Parameters
    ----------
    problem : LeastSquares
        Realizable least squares (b = A x*; ``ValueError`` otherwise).
    method : {"gd", "usam"}
        The linear method.
    rho : array_like, optional
        Radii ρ >= 0, scalar or 1-D (default 0).
    batch_size : int
        Minibatch size m, 1 <= m <= n.
    minibatch : {"shared", "independent"}, optional
        ``usam``'s two gradients on one minibatch (default) or on independent ones.
    replace : bool, optional
        Minibatches with replacement (default False, as the engine).
    algorithm : {"auto", "enumerate", "moments", "matrix-free"}, optional
        How E[M ⊗ M] is computed (:data:`MEAN_SQUARE_ALGORITHMS`; default ``"auto"``).
    solver : {"perron", "brent"}, optional
        The Perron root of L⁻¹Q (default) or root finding on ρ(E[M ⊗ M]) − 1.
    rtol : float, optional
        Relative tolerance, in [1e-14, 0.1] (default 1e-12): of ARPACK (matrix-free) or of Brent's root.

    Returns
    -------
    StochasticThreshold
        ``edge="mean_square"``, ``source="analytic"``, one entry per ρ.
    """
    model = _Model(problem, method, batch_size, minibatch, replace)
    check.choice("algorithm", algorithm, MEAN_SQUARE_ALGORITHMS)
    check.choice("solver", solver, ("perron", "brent"))
    rho = _check_rho(rho)
    rtol = check.as_scalar("rtol", rtol, positive=True)
    if not 1e-14 <= rtol <= 0.1:
        raise ValueError(f"rtol must be in [1e-14, 0.1], got {rtol!r}")
    value, why, used = [], [], None
    for r in rho:
        if solver == "perron":
            used, mu = _perron_inverse(model, float(r), algorithm, rtol)
            found = mu > 0 and np.isfinite(mu)
            value.append(1.0 / mu if found else np.nan)
            why.append("" if found else "E[G ⊗ G] vanishes: mean-square stable at every eta")
            continue
        used, radius = _radius_function(model, float(r), algorithm)
        top = 1.01 * model.mean_map_edge(float(r))
        grid = top * np.geomspace(1e-4 / 1.01, 1.0, _SCAN_POINTS)
        previous = None
        for eta in grid:
            if radius(eta) >= 1.0:
                break
            previous = eta
        if previous is None:
            value.append(np.nan), why.append(f"mean-square unstable already at eta = {grid[0]:.3g}")
            continue
        value.append(optimize.brentq(lambda e: radius(e) - 1.0, previous, eta, rtol=rtol, xtol=1e-300))
        why.append("")
    value = np.array(value)
    return StochasticThreshold(model.method, "mean_square", "analytic", value, value * (1 - rtol),
                               value * (1 + rtol), rtol, np.array(why, dtype=object), rho=rho.copy(),
                               batch_size=model.batch_size, minibatch=model.minibatch, replace=model.replace,
                               details={"algorithm": used, "solver": solver})


def full_batch_critical_learning_rate(problem, method, rho=0.0) -> np.ndarray:
    """The deterministic edge of ``gd`` (2/λ_max, O1) or ``usam`` (2/(λ_max(1 + ρλ_max)), O2) on ``problem``.

    Parameters
    ----------
    problem : LeastSquares
        The problem (its λ_max = that of AᵀA/n).
    method : {"gd", "usam"}
        The method.
    rho : array_like, optional
        Radii ρ >= 0 (default 0).

    Returns
    -------
    ndarray
        The edge per ρ, 1-D.
    """
    model = _Model(problem, method, 1, "shared", False)
    return np.array([model.full_batch_edge(float(r)) for r in _check_rho(rho)])


# -- Lyapunov exponents -----------------------------------------------------------------------------------------

def _batch_indices(n, m, seeds, steps, replace, draws):
    """(draws, seeds, steps, m) minibatch indices: each seed's stream is the engine's (seed, minibatch stream)."""
    out = np.empty((draws, len(seeds), steps, m), dtype=np.int64)
    for j, s in enumerate(seeds):
        sampler = np.random.default_rng([int(s), _MINIBATCH_STREAM])
        for t in range(steps):
            for k in range(draws):
                out[k, j, t] = sampler.choice(n, size=m, replace=replace)
    return out


def _products(model, eta, rho, indices, seeds, steps, burn_in, blocks):
    """Per-step log growth of ‖v‖ under renormalized products, block means of shape (seeds, blocks, E)."""
    F, m = model.F, float(model.batch_size)
    S, E = len(seeds), eta.size
    V = np.empty((S, model.r, E))
    for j, s in enumerate(seeds):
        v = np.random.default_rng([int(s), _LYAPUNOV_STREAM]).standard_normal(model.r)
        V[j] = (v / np.linalg.norm(v))[:, None]
    sums = np.zeros((S, blocks, E))
    length = (steps - burn_in) // blocks
    independent = model.method == "usam" and model.minibatch == "independent"
    for t in range(steps):
        Fa = F[indices[0, :, t]]  # (S, m, r): the ascent (or only) minibatch
        Fd = F[indices[1, :, t]] if independent else Fa

        def H(batch, X):
            return np.matmul(batch.transpose(0, 2, 1), np.matmul(batch, X)) / m

        HV = H(Fa, V)
        if model.method == "gd":
            GV = HV
        elif independent:
            GV = H(Fd, V + rho * HV)
        else:
            GV = HV + rho * H(Fa, HV)
        V = V - eta * GV
        norms = np.sqrt(np.einsum("sre,sre->se", V, V))
        norms = np.maximum(norms, np.finfo(np.float64).tiny)
        V /= norms[:, None, :]
        if t >= burn_in:
            block = (t - burn_in) // length
            if block < blocks:
                sums[:, block] += np.log(norms)
    return sums / length


def lyapunov_exponent(problem, method, eta, rho=0.0, *, batch_size: int, minibatch: str = "shared",
                      replace: bool = False, steps: int = 2000, burn_in: int | None = None, seeds: int = 16,
                      seed: int = 0, blocks: int = 10, confidence: float = 0.95) -> LyapunovEstimate:
    r"""The top Lyapunov exponent lim (1/T) log‖M_{ξ_T}⋯M_{ξ_1} v‖ of ``gd``/``usam`` per η (O16).

    Products are renormalized every step; all η run at once on the same minibatch sequences (common random
    numbers), which are the engine's for the seeds ``seed, seed + 1, …`` (so a measured run with one of these
    seeds sees the same minibatches). After ``burn_in`` steps (default T/10) each seed's remaining steps are
    cut into ``blocks`` blocks; the estimate is the mean of the seeds × blocks block means and its interval
    the Student-t ``confidence`` interval over them (batch means). Same arguments, same result, bit for bit.

    Parameters
    ----------
    problem : LeastSquares
        Realizable least squares.
    method : {"gd", "usam"}
        The linear method.
    eta : array_like
        Learning rates > 0, scalar or 1-D.
    rho : array_like, optional
        Radius (radii) ρ >= 0, broadcast with ``eta`` (default 0).
    batch_size : int
        Minibatch size m, 1 <= m <= n.
    minibatch : {"shared", "independent"}, optional
        ``usam``'s two gradients on one minibatch (default) or on independent ones.
    replace : bool, optional
        Minibatches with replacement (default False).
    steps : int, optional
        Factors per product T >= 2 (default 2000).
    burn_in : int or None, optional
        Discarded leading factors, 0 <= burn_in, and T − burn_in >= blocks (default T // 10).
    seeds : int, optional
        Number of independent products >= 1 (default 16).
    seed : int, optional
        First seed >= 0 (default 0).
    blocks : int, optional
        Batch-means blocks per seed >= 1, with seeds·blocks >= 2 (default 10).
    confidence : float, optional
        Confidence level in (0, 1) (default 0.95).

    Returns
    -------
    LyapunovEstimate
    """
    model = _Model(problem, method, batch_size, minibatch, replace)
    eta = np.atleast_1d(check.as_float_array("eta", eta, positive=True))
    rho = np.atleast_1d(check.as_float_array("rho", rho, nonnegative=True))
    if eta.ndim != 1 or rho.ndim != 1:
        raise ValueError(f"eta and rho must be scalars or 1-D, got shapes {eta.shape} and {rho.shape}")
    eta, rho = check.broadcast(("eta", "rho"), eta, rho)
    if eta.size == 0:
        raise ValueError(f"eta and rho must not be empty, got shapes {eta.shape} and {rho.shape}")
    steps = check.as_positive_int("steps", steps, minimum=2)
    burn_in = steps // 10 if burn_in is None else check.as_positive_int("burn_in", burn_in, minimum=0)
    seeds = check.as_positive_int("seeds", seeds)
    seed = check.as_seed("seed", seed)
    blocks = check.as_positive_int("blocks", blocks)
    confidence = check.as_scalar("confidence", confidence, positive=True)
    if not confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if steps - burn_in < blocks:
        raise ValueError(f"steps - burn_in must be >= blocks, got steps={steps}, burn_in={burn_in}, blocks={blocks}")
    if seeds * blocks < 2:
        raise ValueError(f"seeds * blocks must be >= 2 for a confidence interval, got {seeds} * {blocks}")
    if seed + seeds - 1 > 2**32 - 1:
        raise ValueError(f"seed + seeds - 1 must be <= 2**32 - 1, got seed={seed}, seeds={seeds}")
    seed_list = np.arange(seed, seed + seeds)
    draws = 2 if (model.method == "usam" and model.minibatch == "independent") else 1
    _limits.check_memory(f"lyapunov_exponent with seeds={seeds}, steps={steps}, batch_size={model.batch_size} "
                         f"and {eta.size} eta", 8.0 * seeds * (draws * steps * model.batch_size
                                                               + 4 * eta.size * model.r + 2 * blocks * eta.size))
    indices = _batch_indices(model.n, model.batch_size, seed_list, steps, model.replace, draws)
    return _estimate(model, eta, rho, indices, seed_list, steps, burn_in, blocks, confidence)


def _estimate(model, eta, rho, indices, seed_list, steps, burn_in, blocks, confidence):
    means = _products(model, eta, rho, indices, seed_list, steps, burn_in, blocks).reshape(-1, eta.size)
    count = means.shape[0]
    exponent = means.mean(axis=0)
    stderr = means.std(axis=0, ddof=1) / math.sqrt(count)
    half = stats.t.ppf(0.5 + confidence / 2, count - 1) * stderr
    return LyapunovEstimate(eta.copy(), rho.copy(), exponent, exponent - half, exponent + half, stderr, steps,
                            burn_in, len(seed_list), blocks, confidence)


def _first_crossing(eta, values):
    """The η of the first sign change of ``values`` from <= 0 to > 0 on the geometric grid ``eta`` (log-linear
    interpolation), or NaN."""
    above = values > 0
    if not above.any() or above[0]:
        return np.nan
    k = int(np.argmax(above))
    x0, x1 = math.log(eta[k - 1]), math.log(eta[k])
    y0, y1 = values[k - 1], values[k]
    return math.exp(x0 + (x1 - x0) * (-y0) / (y1 - y0))


def lyapunov_critical_learning_rate(problem, method, rho=0.0, *, batch_size: int, minibatch: str = "shared",
                                    replace: bool = False, eta_range=None, points: int = 16, steps: int = 2000,
                                    seeds: int = 16, seed: int = 0, blocks: int = 10,
                                    confidence: float = 0.95) -> StochasticThreshold:
    r"""η_as (O16): where the top Lyapunov exponent crosses 0, per ρ, with an interval [lower, upper].

    Two passes of :func:`lyapunov_exponent` over ``points`` geometric η each (common random numbers): over
    ``eta_range`` (default: [0.9·η_ms, 2·2/λ_max(Ḡ)] — by Jensen the exponent is <= ½ log ρ(E[M ⊗ M]) < 0
    below η_ms), then over the grid cell around the first crossing, widened to hold the crossings of the interval's
    ends. ``value`` is the crossing of the estimate, ``lower``/``upper`` those of the interval's upper/lower
    end (log-linear interpolation); NaN with a reason where the exponent does not cross 0 in the range.

    Parameters
    ----------
    problem : LeastSquares
        Realizable least squares.
    method : {"gd", "usam"}
        The linear method.
    rho : array_like, optional
        Radii ρ >= 0, scalar or 1-D (default 0).
    batch_size : int
        Minibatch size m, 1 <= m <= n.
    minibatch : {"shared", "independent"}, optional
        ``usam``'s two gradients on one minibatch (default) or on independent ones.
    replace : bool, optional
        Minibatches with replacement (default False).
    eta_range : None or (float, float), optional
        The first pass's range, 0 < low < high (default above).
    points : int, optional
        η per pass, >= 3 (default 16).
    steps, seeds, seed, blocks, confidence : optional
        As in :func:`lyapunov_exponent`.

    Returns
    -------
    StochasticThreshold
        ``edge="almost_sure"``, ``source="estimated"``; ``details`` holds the curves of both passes.
    """
    model = _Model(problem, method, batch_size, minibatch, replace)
    rho = _check_rho(rho)
    points = check.as_positive_int("points", points, minimum=3)
    if eta_range is not None:
        eta_range = check.as_float_array("eta_range", eta_range, positive=True)
        if eta_range.shape != (2,) or not eta_range[0] < eta_range[1]:
            raise ValueError(f"eta_range must be (low, high) with 0 < low < high, got {eta_range!r}")
    value, lower, upper, why, curves = [], [], [], [], []
    estimate = None
    for r in rho:
        r = float(r)
        if eta_range is None:
            ms = mean_square_critical_learning_rate(problem, model.method, r, batch_size=model.batch_size,
                                                    minibatch=model.minibatch, replace=model.replace, rtol=1e-6)
            # Below η_ms, since at m = n the exponent is exactly 0 at η_ms (the deterministic edge).
            low = 0.9 * float(ms.value[0]) if ms.found[0] else 1e-6 * model.mean_map_edge(r)
            span = (low, 4.0 * model.mean_map_edge(r))
        else:
            span = (float(eta_range[0]), float(eta_range[1]))
        grid = np.geomspace(span[0], span[1], points)
        first = lyapunov_exponent(problem, model.method, grid, r, batch_size=model.batch_size,
                                  minibatch=model.minibatch, replace=model.replace, steps=steps, seeds=seeds,
                                  seed=seed, blocks=blocks, confidence=confidence)
        crossing = _first_crossing(grid, first.exponent)
        passes = [first]
        if np.isfinite(crossing):
            a = _first_crossing(grid, first.upper)
            b = _first_crossing(grid, first.lower)
            step = (span[1] / span[0]) ** (1 / (points - 1))
            fine_low = (a if np.isfinite(a) else crossing) / step
            fine_high = (b if np.isfinite(b) else crossing) * step
            fine = np.geomspace(max(fine_low, span[0]), min(fine_high, span[1]), points)
            estimate = lyapunov_exponent(problem, model.method, fine, r, batch_size=model.batch_size,
                                         minibatch=model.minibatch, replace=model.replace, steps=steps,
                                         seeds=seeds, seed=seed, blocks=blocks, confidence=confidence)
            passes.append(estimate)
            crossing = _first_crossing(fine, estimate.exponent)
            a, b = _first_crossing(fine, estimate.upper), _first_crossing(fine, estimate.lower)
        if not np.isfinite(crossing):
            value.append(np.nan), lower.append(np.nan), upper.append(np.nan)
            why.append(f"the Lyapunov exponent does not cross 0 on [{span[0]:.6g}, {span[1]:.6g}]")
        else:
            value.append(crossing), why.append("")
            lower.append(a if np.isfinite(a) else np.nan)
            upper.append(b if np.isfinite(b) else np.nan)
        curves.append(passes)
    lower, upper = np.array(lower), np.array(upper)
    with np.errstate(all="ignore"):
        widths = upper / lower - 1
    width = float(np.max(widths[np.isfinite(widths)])) if np.any(np.isfinite(widths)) else float("nan")
    return StochasticThreshold(model.method, "almost_sure", "estimated", np.array(value), lower, upper, width,
                               np.array(why, dtype=object),
                               rho=rho.copy(), batch_size=model.batch_size, minibatch=model.minibatch,
                               replace=model.replace, details={"curves": curves, "steps": steps, "seeds": seeds,
                                                               "blocks": blocks, "confidence": confidence})


# -- measured over seeds ----------------------------------------------------------------------------------------

class _SeedRunner:
    """The ``status`` of (η, ρ) as the fraction rule over seeds: DIVERGED when at least ``fraction`` of the
    seeds diverge within the steps, else not."""

    def __init__(self, problem, method, batch_size, minibatch, seeds, x0, fraction, truncate, divergence_factor):
        self.problem, self.method = problem, method
        self.batch_size, self.minibatch, self.seeds, self.x0 = batch_size, minibatch, seeds, x0
        self.fraction, self.truncate, self.divergence_factor = fraction, truncate, divergence_factor
        self.config_steps = 0

    def status(self, eta, rho, steps):
        result = simulate(self.problem, self.method, np.asarray(eta)[:, None], np.asarray(rho)[:, None],
                          seed=self.seeds[None, :], steps=steps, x0=self.x0, batch_size=self.batch_size,
                          minibatch=self.minibatch, truncate=self.truncate, divergence_factor=self.divergence_factor)
        diverged = result.status == DIVERGED
        ran = np.where(result.diverged_at >= 0, np.minimum(result.diverged_at + 1, steps), steps)
        self.config_steps += int(ran.sum())
        return np.where(diverged.mean(axis=1) >= self.fraction, DIVERGED, 0)


def stochastic_critical_learning_rate(problem, method, rho=0.0, *, batch_size: int | None,
                                      minibatch: str = "shared", steps: int = 1000, seeds: int = 16, seed: int = 0,
                                      fraction: float = 0.5, rtol: float = 1e-2, eta_range=None, x0=None,
                                      truncate: bool = False, divergence_factor: float = 1e6) -> StochasticThreshold:
    r"""Measured threshold under minibatch noise: the η at which ``fraction`` of the seeds diverge within
    ``steps`` steps of :func:`samtheory.simulate`, for every ρ at once (vectorized geometric bisection).

    Seeds ``seed, …, seed + seeds − 1`` fix the minibatch sequences (those of :func:`lyapunov_exponent`); every
    run starts from the same point ``x0`` (default: the first of :func:`initial_points` of ``seed``). Any
    method, the nonlinear ``sam``/``ssam``/``susam`` included; ``batch_size=None`` is full batch (or a noisy
    problem's own noise).

    Parameters
    ----------
    problem : Problem
        The problem (a finite sum when ``batch_size`` is set).
    method : str
        A method name.
    rho : array_like, optional
        Radii ρ >= 0, scalar or 1-D (default 0).
    batch_size : int or None
        Minibatch size, or None.
    minibatch : {"shared", "independent"}, optional
        As in :func:`samtheory.simulate` (default ``"shared"``).
    steps : int, optional
        Step budget T >= 1 (default 1000).
    seeds : int, optional
        Number of seeds >= 1 (default 16).
    seed : int, optional
        First seed >= 0 (default 0).
    fraction : float, optional
        The rule's fraction of diverging seeds, in (0, 1] (default 0.5).
    rtol : float, optional
        Relative bracket width, in (0, 1) (default 1e-2).
    eta_range : None or (float, float), optional
        Initial bracket, 0 < low < high (default (0.05, 2)·2/β).
    x0 : None or array_like, optional
        Start point, shape (d,).
    truncate : bool, optional
        γ ← min(1, γ) for ``ssam``/``susam`` (default False).
    divergence_factor : float, optional
        As in :func:`samtheory.simulate` (default 1e6).

    Returns
    -------
    StochasticThreshold
        ``edge="nondivergent"``, ``source="measured"``; ``details`` has the rule and the work done.
    """
    spec = resolve_method(method)
    rho = _check_rho(rho)
    steps = check.as_positive_int("steps", steps)
    seeds = check.as_positive_int("seeds", seeds)
    seed = check.as_seed("seed", seed)
    fraction = check.as_scalar("fraction", fraction, positive=True)
    if not fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    rtol = check.as_scalar("rtol", rtol, positive=True)
    if not rtol < 1:
        raise ValueError(f"rtol must be in (0, 1), got {rtol!r}")
    _check_rtol(rtol)
    check.choice("minibatch", minibatch, MINIBATCH_MODES)
    truncate = check.as_bool("truncate", truncate)
    if eta_range is None:
        beta = getattr(problem, "beta", None)
        if not beta:
            raise ValueError(f"eta_range is required for {type(problem).__name__}, which has no beta")
        eta_range = (0.05 * 2 / beta, 2 * 2 / beta)
    eta_range = check.as_float_array("eta_range", eta_range, positive=True)
    if eta_range.shape != (2,) or not eta_range[0] < eta_range[1]:
        raise ValueError(f"eta_range must be (low, high) with 0 < low < high, got {eta_range!r}")
    if x0 is None:
        x0 = initial_points(problem, 1, seed)[0]
    runner = _SeedRunner(problem, spec.name, batch_size, minibatch, np.arange(seed, seed + seeds), x0, fraction,
                         truncate, divergence_factor)
    n = rho.size
    lower, upper = np.full(n, float(eta_range[0])), np.full(n, float(eta_range[1]))
    ends = runner.status(np.concatenate([lower, upper]), np.concatenate([rho, rho]), steps)
    why = np.full(n, "", dtype=object)
    why[ends[:n] == DIVERGED] = f"at least {fraction:g} of the seeds diverge at the bottom of eta_range"
    why[(ends[n:] != DIVERGED) & (why == "")] = f"fewer than {fraction:g} of the seeds diverge at the top of eta_range"
    rows = np.flatnonzero(why == "")
    _bisect(runner, rho, lower, upper, rows, rtol, lambda status: status != DIVERGED, steps)
    found = why == ""
    return StochasticThreshold(spec.name, "nondivergent", "measured", np.where(found, lower, np.nan),
                               np.where(found, lower, np.nan), np.where(found, upper, np.nan), rtol, why,
                               rho=rho.copy(), batch_size=0 if batch_size is None else int(batch_size),
                               minibatch=minibatch, replace=False,
                               details={"rule": f"diverged when >= {fraction:g} of {seeds} seeds diverge within "
                                                f"{steps} steps", "steps": steps, "seeds": seeds,
                                        "config_steps": runner.config_steps, "truncate": truncate})


def gamma_distribution(problem, method, eta, rho, *, batch_size: int | None = None, minibatch: str = "shared",
                       steps: int = 1000, burn_in: int | None = None, seeds: int = 8, seed: int = 0, x0=None,
                       truncate: bool = False,
                       quantiles=(0.0, 0.01, 0.1, 0.5, 0.9, 0.99, 1.0)) -> GammaDistribution:
    r"""The distribution of StableSAM's γ = ‖g_ξ(x)‖/‖g_ξ'(y)‖ along runs under noise (one (η, ρ)).

    Without noise on a convex quadratic γ <= 1/(1 + ρλ_min) <= 1 (O4), so ``truncate`` changes nothing there;
    with noise the two gradients differ by more than the curvature and γ > 1 happens: ``fraction_above_one``
    is how often ``truncate=True`` acts. Steps after a run's divergence, and steps where ‖g‖ has fallen below
    1e-6·‖g(x_0)‖ (where rounding decides γ), are left out.

    Parameters
    ----------
    problem : Problem
        The problem.
    method : {"ssam", "susam"} or another renormalized method
        The method.
    eta, rho : float
        η > 0 and ρ >= 0.
    batch_size : int or None, optional
        Minibatch size (None: full batch, or a noisy problem's noise).
    minibatch : {"shared", "independent"}, optional
        As in :func:`samtheory.simulate`.
    steps : int, optional
        Steps per run (default 1000).
    burn_in : int or None, optional
        Leading steps left out (default steps // 10).
    seeds : int, optional
        Runs (default 8), seeds ``seed, …``.
    seed : int, optional
        First seed (default 0).
    x0 : None or array_like, optional
        Start point (default: :func:`initial_points` of ``seed``).
    truncate : bool, optional
        Run with γ ← min(1, γ) (default False).
    quantiles : sequence of float, optional
        Probabilities in [0, 1].

    Returns
    -------
    GammaDistribution
    """
    spec = resolve_method(method)
    if not spec.renormalized:
        raise ValueError(f"method must renormalize (ssam, susam), got {spec.name!r}")
    eta = check.as_scalar("eta", eta, positive=True)
    rho = check.as_scalar("rho", rho, nonnegative=True)
    steps = check.as_positive_int("steps", steps)
    burn_in = steps // 10 if burn_in is None else check.as_positive_int("burn_in", burn_in, minimum=0)
    if burn_in >= steps:
        raise ValueError(f"burn_in must be < steps = {steps}, got {burn_in}")
    seeds = check.as_positive_int("seeds", seeds)
    seed = check.as_seed("seed", seed)
    probabilities = check.as_float_array("quantiles", quantiles, nonnegative=True)
    if probabilities.ndim != 1 or not probabilities.size or np.any(probabilities > 1):
        raise ValueError(f"quantiles must be a non-empty 1-D array of probabilities in [0, 1], got {quantiles!r}")
    if x0 is None:
        x0 = initial_points(problem, 1, seed)[0]
    result = simulate(problem, spec.name, eta, rho, seed=np.arange(seed, seed + seeds), steps=steps, x0=x0,
                      batch_size=batch_size, minibatch=minibatch, truncate=truncate, record_every=1)
    gamma = result.history.gamma[burn_in:steps]  # (steps − burn_in, seeds)
    t = np.arange(burn_in, steps)[:, None]
    alive = (result.diverged_at[None, :] < 0) | (t < result.diverged_at[None, :])
    # Near convergence g is a difference of nearly equal numbers and γ a ratio of rounding errors: left out.
    norms = result.history.grad_norm
    alive &= norms[burn_in:steps] > _ROUNDING_LEVEL * norms[:1]
    values = gamma[alive & np.isfinite(gamma)]
    if not values.size:
        raise ValueError(f"every run diverged before step {burn_in}: no γ to report at eta={eta:g}, rho={rho:g}")
    return GammaDistribution(spec.name, probabilities, np.quantile(values, probabilities), float(values.mean()),
                             float(np.mean(values > 1)), int(values.size))


