r"""Performance estimation (PEP): exact worst cases of first-order methods as small SDPs in CVXPY.

For a method whose iterates are *fixed* linear combinations of the starting point and of gradients taken at
points it has visited or extrapolated to, the worst case of a metric after N steps over all L-smooth
μ-strongly convex functions (μ = 0: convex) with ‖x_0 − x*‖ ≤ R is the SDP (Drori & Teboulle 2014; Taylor,
Hendrickx & Glineur 2017, "Smooth strongly convex interpolation and exact worst-case performance of
first-order methods")

    maximize    metric(G, F)
    over        G ⪰ 0 (Gram matrix of x_0 − x*, g_1, ..., g_K),  F (function values, f* = 0)
    subject to  ‖x_0 − x*‖² = G₀₀ ≤ R²,  and for every pair of points i ≠ j (x* included, g* = 0):
                f_i ≥ f_j + ⟨g_j, x_i − x_j⟩ + 1/(2(1 − μ/L)) (‖g_i − g_j‖²/L + μ‖x_i − x_j‖²
                                                               − (2μ/L)⟨g_j − g_i, x_j − x_i⟩).

The constraints are exactly the interpolation conditions of the class, so the SDP value is attained by a
function of the class (tight), not merely an upper bound. samtheory owns this formulation: the method is traced
once on symbolic vectors (:class:`Vector`), each constraint is a row of one matrix acting on ``vec(G)``, and
the solve goes through :mod:`samtheory.convex._solver`.

Methods: ``"gd"`` (x ← x − η g(x)) and ``"usam"`` (y = x + ρ g(x), x ← x − η g(y); a gradient at an
extrapolated point, like extragradient, docs/theory.md O9), or any callable
``algorithm(x0, gradient, eta, rho, steps) -> x_N`` written with ``+``, ``-`` and real scalars.
``"sam"``, ``"ssam"`` and ``"susam"`` divide by gradient norms (g/‖g‖, ‖g(x)‖/‖g(y)‖): their steps are not fixed
linear combinations, so exact PEP does not apply and they are refused with a ``ValueError``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Callable

import cvxpy as cp
import numpy as np
from scipy import sparse

from .. import _validation as check
from .. import theory
from ..methods import METHODS, MethodSpec
from ..result import Threshold
from ..theory import gd_worst_case_bound
from . import _solver

__all__ = ["Vector", "PEPResult", "PEPSweep", "PEPThreshold", "METRICS", "PROGRAMS",
           "gradient_descent", "unnormalized_sam", "worst_case", "worst_case_sweep", "gd_worst_case_bound",
           "usam_quadratic_threshold", "pep_critical_learning_rate", "usam_descent_worst_case",
           "expansivity_worst_case", "SolverError"]

SolverError = _solver.SolverError

#: Performance metrics at the last iterate x_N (each scales as R²).
METRICS = {
    "function_value": "f(x_N) - f*",
    "distance_squared": "||x_N - x*||^2",
    "gradient_norm_squared": "||g(x_N)||^2",
}

#: Requested solver accuracy of every PEP SDP (gap and feasibility). Tighter requests end, for a sizeable part of
#: the (η, ρ, N) range, in Clarabel's `AlmostSolved` (reported as optimal_inaccurate, which raises). Measured
#: relative error against closed forms and 1-D quadratic lower bounds: about 1e-6 (up to 1e-4 where the worst
#: case exceeds 1e5).
TOLERANCE = 1e-7

def _not_fixed_step(spec: MethodSpec) -> str:
    """What makes a method's step divide by gradient norms ("" for a fixed-step method)."""
    parts = (["y = x + rho g/||g||"] if spec.normalized else []) + \
        (["gamma = ||g(x)||/||g(y)||"] if spec.renormalized else [])
    return " and ".join(parts)


# -- symbolic tracing ------------------------------------------------------------------------------------------
class _Tape:
    """The basis (initial vectors, then one gradient per new point) and the points where gradients were taken."""

    def __init__(self, n_initial: int):
        self.size = n_initial
        self.points: list[dict[int, float]] = []   # coefficients of each point
        self.gradient_index: list[int] = []         # basis index of the gradient at each point
        self._memo: dict[tuple, int] = {}

    def gradient(self, point: "Vector") -> "Vector":
        if not isinstance(point, Vector) or point._tape is not self:
            raise TypeError(f"gradient() takes a point of this PEP (a Vector), got {point!r:.80}")
        key = tuple(sorted((i, c) for i, c in point._coef.items() if c != 0.0))
        if key not in self._memo:  # one gradient per distinct point
            self._memo[key] = len(self.points)
            self.points.append(dict(key))
            self.gradient_index.append(self.size)
            self.size += 1
        return Vector(self, {self.gradient_index[self._memo[key]]: 1.0})

    def rows(self, vectors) -> np.ndarray:
        out = np.zeros((len(vectors), self.size))
        for row, coef in zip(out, vectors):
            for i, c in coef.items():
                row[i] = c
        return out


class Vector:
    """A symbolic point or gradient of a PEP: a fixed linear combination of the basis vectors.

    Supports ``u + v``, ``u - v``, ``-u``, ``a * u``, ``u * a`` and ``u / a`` for real ``a``; nothing else
    (no norms, no inner products: a method that needs them is not a fixed-step method).

    Vectors are made by the PEP functions while they trace a method, not by users.

    Parameters
    ----------
    tape : _Tape
        The trace this vector belongs to (its basis).
    coef : dict of int to float
        Coefficient of each basis vector.
    """

    __slots__ = ("_tape", "_coef")
    __array_ufunc__ = None  # keep NumPy scalars from broadcasting over a Vector

    def __init__(self, tape: _Tape, coef: dict[int, float]):
        self._tape, self._coef = tape, coef

    def _combine(self, other, sign):
        if not isinstance(other, Vector) or other._tape is not self._tape:
            raise TypeError(f"a PEP step adds vectors of the same PEP, got {other!r:.80}")
        coef = dict(self._coef)
        for i, c in other._coef.items():
            coef[i] = coef.get(i, 0.0) + sign * c
        return Vector(self._tape, coef)

    def _scale(self, scalar):
        if isinstance(scalar, (bool, np.bool_)) or not isinstance(scalar, numbers.Real):
            raise TypeError("a PEP step multiplies vectors by fixed real numbers only; a method whose steps "
                            f"depend on the iterates (e.g. divisions by gradient norms) is not a fixed-step method, "
                            f"got a factor {scalar!r:.80}")
        return Vector(self._tape, {i: float(scalar) * c for i, c in self._coef.items()})

    def __add__(self, other):
        return self._combine(other, 1.0)

    def __sub__(self, other):
        return self._combine(other, -1.0)

    def __neg__(self):
        return self._scale(-1.0)

    def __mul__(self, scalar):
        return self._scale(scalar)

    __rmul__ = __mul__

    def __truediv__(self, scalar):
        if isinstance(scalar, numbers.Real) and not isinstance(scalar, (bool, np.bool_)) and scalar != 0:
            return self._scale(1.0 / scalar)
        return self._scale(scalar)  # raises the fixed-step TypeError

    def __repr__(self):
        return f"Vector({len(self._coef)} terms)"


def gradient_descent(x0: Vector, gradient: Callable[[Vector], Vector], eta: float, rho: float, steps: int) -> Vector:
    """GD: x_{k+1} = x_k − η g(x_k) (``rho`` unused).

    Parameters
    ----------
    x0 : Vector
        The symbolic starting point.
    gradient : callable
        ``gradient(point) -> Vector``, the symbolic gradient oracle.
    eta : float
        Learning rate.
    rho : float
        Radius (unused).
    steps : int
        Number of iterations N.

    Returns
    -------
    Vector
        x_N.
    """
    x = x0
    for _ in range(steps):
        x = x - eta * gradient(x)
    return x


def unnormalized_sam(x0: Vector, gradient: Callable[[Vector], Vector], eta: float, rho: float, steps: int) -> Vector:
    """USAM: y_k = x_k + ρ g(x_k), x_{k+1} = x_k − η g(y_k) (Andriushchenko & Flammarion 2022).

    Parameters
    ----------
    x0 : Vector
        The symbolic starting point.
    gradient : callable
        ``gradient(point) -> Vector``, the symbolic gradient oracle.
    eta : float
        Learning rate.
    rho : float
        Radius.
    steps : int
        Number of iterations N.

    Returns
    -------
    Vector
        x_N.
    """
    x = x0
    for _ in range(steps):
        y = x + rho * gradient(x)
        x = x - eta * gradient(y)
    return x


#: Built-in fixed-step programs, by method name.
PROGRAMS: dict[str, Callable] = {"gd": gradient_descent, "usam": unnormalized_sam}


def _program(method) -> tuple[str, Callable]:
    """``(name, algorithm)``; a clear ``ValueError`` for the norm-dividing methods and unknown names."""
    spec = method if isinstance(method, MethodSpec) else (
        METHODS.get(method) if isinstance(method, str) else
        next((s for s in METHODS.values() if s.rule is method), None))
    if spec is not None:
        if spec.known and _not_fixed_step(spec):
            raise ValueError(
                f"method {spec.name!r} has no exact PEP: its step divides by gradient norms ({_not_fixed_step(spec)}), "
                "so it is not a fixed linear combination of gradients and the Gram-matrix SDP does not describe it; "
                f"exact PEP applies to {', '.join(map(repr, PROGRAMS))} or a user-defined fixed-step algorithm")
        if spec.kind in PROGRAMS:
            return spec.name, PROGRAMS[spec.kind]
    elif callable(method):
        return getattr(method, "__name__", type(method).__name__), method
    raise ValueError(f"method must be one of {', '.join(map(repr, PROGRAMS))}, a fixed-step algorithm "
                     f"algorithm(x0, gradient, eta, rho, steps) -> x_N, got {method!r:.80}")


def _trace(algorithm, **params):
    """Run ``algorithm`` once on symbolic vectors from x_0 − x* (basis vector 0); returns the tape and x_N."""
    tape = _Tape(1)
    try:
        x_last = algorithm(Vector(tape, {0: 1.0}), tape.gradient, **params)
    except TypeError as error:
        raise ValueError(f"method: tracing the algorithm failed: {error}") from None
    if not isinstance(x_last, Vector):
        raise ValueError(f"method: the algorithm must return the last iterate (a Vector), got {x_last!r:.80}")
    return tape, x_last


# -- the SDP ---------------------------------------------------------------------------------------------------
def _interpolation(X: np.ndarray, Gr: np.ndarray, L: float, mu: float):
    """Rows (D, A) with constraints ``D @ F + A @ vec(G) <= 0``, one per ordered pair of distinct points."""
    n_points, size = X.shape
    i, j = np.nonzero(~np.eye(n_points, dtype=bool))
    dx, dg, gj = X[i] - X[j], Gr[i] - Gr[j], Gr[j]
    c = 1.0 / (2.0 * (1.0 - mu / L))

    def sym(u, v):
        outer = np.einsum("pa,pb->pab", u, v)
        return 0.5 * (outer + outer.transpose(0, 2, 1))

    M = sym(gj, dx) + (c / L) * sym(dg, dg) + (c * mu) * sym(dx, dx) - (2 * c * mu / L) * sym(dg, dx)
    A = M.reshape(i.size, size * size)
    # Each row scaled to unit norm: the same constraints, and Clarabel reaches `optimal` far more often.
    scale = 1.0 / np.sqrt(2.0 + np.einsum("pk,pk->p", A, A))
    pairs = np.arange(i.size)
    D = sparse.csr_matrix((np.r_[scale, -scale], (np.r_[pairs, pairs], np.r_[j, i])), shape=(i.size, n_points))
    return D, A * scale[:, None]


def _inner(G, u: np.ndarray, v: np.ndarray):
    """⟨u, v⟩ = uᵀ G v as an affine expression of G."""
    outer = np.outer(u, v)
    return cp.sum(cp.multiply(0.5 * (outer + outer.T), G))


@dataclass
class _SDP:
    tape: _Tape
    L: float
    mu: float
    with_minimizer: bool

    def __post_init__(self):
        coefs = ([{}] if self.with_minimizer else []) + self.tape.points
        grads = ([{}] if self.with_minimizer else []) + [{k: 1.0} for k in self.tape.gradient_index]
        self.X, self.Gr = self.tape.rows(coefs), self.tape.rows(grads)
        self.G = cp.Variable((self.tape.size, self.tape.size), PSD=True)
        self.F = cp.Variable(len(coefs))
        D, A = _interpolation(self.X, self.Gr, self.L, self.mu)
        self.constraints = [D @ self.F + A @ cp.vec(self.G, order="F") <= 0]
        if self.with_minimizer:
            self.constraints.append(self.F[0] == 0)

    def point(self, vector: Vector) -> int:
        """Index (in X, Gr, F) of the point ``vector`` (whose gradient must have been taken)."""
        key = tuple(sorted((i, c) for i, c in vector._coef.items() if c != 0.0))
        return self.tape._memo[key] + (1 if self.with_minimizer else 0)

    def row(self, vector: Vector) -> np.ndarray:
        return self.tape.rows([vector._coef])[0]

    def solve(self, objective, extra, *, maximize: bool, solver, what):
        problem = cp.Problem(cp.Maximize(objective) if maximize else cp.Minimize(objective), self.constraints + extra)
        return _solver.solve(problem, solver=solver, tolerance=TOLERANCE, what=what)

    def gram_rank(self, relative: float = 1e-5) -> int:
        eigenvalues = np.linalg.eigvalsh(self.G.value)
        return int(np.sum(eigenvalues > relative * max(eigenvalues[-1], 1e-300)))


# -- public API ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PEPResult:
    """One PEP solve. ``worst_case`` is the exact worst case of ``metric`` (see :data:`METRICS`).

    ``solve_seconds`` is the wall time of the CVXPY solve (canonicalization included); ``solver_seconds`` the
    solver's own time; ``gram_rank`` the numerical rank of the optimal Gram matrix (the dimension of a
    worst-case function); ``n_gradients`` the number of gradient evaluations K.

    Attributes
    ----------
    method : str
        The method's name.
    L, mu : float
        The function class: L-smooth, μ-strongly convex (μ may be negative for :func:`usam_descent_worst_case`).
    eta, rho : float
        Learning rate and radius.
    steps : int
        Iterations N.
    metric : str
        A key of :data:`METRICS`, or ``"descent_ratio"`` / ``"expansivity"`` for the one-step programs.
    R : float
        Bound on ‖x_0 − x*‖.
    worst_case : float
        The SDP's optimal value.
    solver, status : str
        The certifying solver and its status (``"optimal"``).
    solve_seconds : float
        Wall time of the CVXPY solve.
    solver_seconds : float or None
        The solver's own time, None if it reports none.
    n_gradients : int
        Gradient evaluations K.
    gram_rank : int
        Numerical rank of the optimal Gram matrix.
    gram : ndarray
        The optimal Gram matrix G.
    function_values : ndarray
        The optimal function values F.
    """

    method: str
    L: float
    mu: float
    eta: float
    rho: float
    steps: int
    metric: str
    R: float
    worst_case: float
    solver: str
    status: str
    solve_seconds: float
    solver_seconds: float | None
    n_gradients: int
    gram_rank: int
    gram: np.ndarray = field(repr=False)
    function_values: np.ndarray = field(repr=False)

    def to_record(self) -> dict:
        """A JSON-ready dict (the arrays left out)."""
        return {"method": self.method, "L": self.L, "mu": self.mu, "eta": self.eta, "rho": self.rho,
                "steps": self.steps, "metric": self.metric, "R": self.R, "worst_case": self.worst_case,
                "solver": self.solver, "status": self.status, "solve_seconds": self.solve_seconds,
                "solver_seconds": self.solver_seconds, "n_gradients": self.n_gradients, "gram_rank": self.gram_rank}


def _check_class(L, mu, *, allow_nonconvex: bool = False):
    L = check.as_scalar("L", L, positive=True)
    mu = check.as_scalar("mu", mu)
    low = -L if allow_nonconvex else 0.0
    if not low <= mu < L:
        raise ValueError(f"mu must satisfy {'-L' if allow_nonconvex else '0'} <= mu < L = {L:g}, got {mu!r}")
    return L, mu


def _scalar(name, value, **kind) -> float:
    return check.as_scalar(name, value, **kind)


def worst_case(method, *, L: float = 1.0, mu: float = 0.0, eta: float, rho: float = 0.0, steps: int,
               metric: str = "function_value", R: float = 1.0, solver: str | None = None) -> PEPResult:
    r"""Exact worst case of ``metric`` after ``steps`` iterations of ``method`` over L-smooth μ-strongly convex f.

    ``metric``: ``"function_value"`` f(x_N) − f*, ``"distance_squared"`` ‖x_N − x*‖², or
    ``"gradient_norm_squared"`` ‖g(x_N)‖²; the initial condition is ‖x_0 − x*‖ ≤ R. For GD with η = h/L,
    0 < h ≤ 1, the function-value worst case is L R²/(4Nh + 2) (Drori & Teboulle 2014; docs/theory.md O9).
    Raises ``ValueError`` for ``sam``/``ssam``/``susam`` (no exact PEP) and :class:`SolverError` unless the
    solver reports ``optimal``.

    Parameters
    ----------
    method : str, MethodSpec or callable
        ``"gd"``, ``"usam"`` (or a spec of that structure) or a fixed-step
        ``algorithm(x0, gradient, eta, rho, steps) -> x_N``.
    L : float, optional
        Smoothness constant, > 0 (default 1).
    mu : float, optional
        Strong-convexity constant, 0 <= mu < L (default 0: convex).
    eta : float
        Learning rate, > 0.
    rho : float, optional
        Radius, >= 0 (default 0).
    steps : int
        Iterations N, >= 1.
    metric : str, optional
        A key of :data:`METRICS` (default ``"function_value"``).
    R : float, optional
        Bound on ‖x_0 − x*‖, > 0 (default 1).
    solver : {"CLARABEL", "SCS"} or None, optional
        The solver; None (default) tries the installed ones in that order.

    Returns
    -------
    PEPResult
    """
    name, algorithm = _program(method)
    L, mu = _check_class(L, mu)
    eta = _scalar("eta", eta, positive=True)
    rho = _scalar("rho", rho, nonnegative=True)
    steps = check.as_positive_int("steps", steps)
    R = _scalar("R", R, positive=True)
    check.choice("metric", metric, tuple(METRICS))
    tape, x_last = _trace(algorithm, eta=eta, rho=rho, steps=steps)
    g_last = tape.gradient(x_last)  # x_N becomes a point with a value and a gradient
    sdp = _SDP(tape, L, mu, with_minimizer=True)
    last = sdp.point(x_last)
    if metric == "function_value":
        objective = sdp.F[last]
    elif metric == "distance_squared":
        objective = _inner(sdp.G, sdp.row(x_last), sdp.row(x_last))
    else:
        objective = _inner(sdp.G, sdp.row(g_last), sdp.row(g_last))
    initial = [sdp.G[0, 0] <= R * R]
    solution = sdp.solve(objective, initial, maximize=True, solver=solver,
                         what=f"PEP of {name} ({metric}, N={steps}, eta={eta:g}, rho={rho:g})")
    return PEPResult(method=name, L=L, mu=mu, eta=eta, rho=rho, steps=steps, metric=metric, R=R,
                     worst_case=solution.value, solver=solution.solver, status=solution.status,
                     solve_seconds=solution.solve_seconds, solver_seconds=solution.solver_seconds,
                     n_gradients=len(tape.points), gram_rank=sdp.gram_rank(), gram=np.array(sdp.G.value),
                     function_values=np.array(sdp.F.value))


@dataclass(frozen=True)
class PEPSweep:
    """:func:`worst_case` over a broadcast grid: every array has the broadcast shape of (eta, rho, steps).

    Attributes
    ----------
    method : str
        The method's name.
    L, mu : float
        The function class.
    metric : str
        A key of :data:`METRICS`.
    R : float
        Bound on ‖x_0 − x*‖.
    eta, rho : ndarray
        Learning rates and radii.
    steps : ndarray of int
        Iterations N.
    worst_case : ndarray
        The worst cases.
    solve_seconds : ndarray
        Wall time of each solve.
    solver, status : str
        The solver and status of the last solve (every solve is ``"optimal"``, else it raises).
    """

    method: str
    L: float
    mu: float
    metric: str
    R: float
    eta: np.ndarray
    rho: np.ndarray
    steps: np.ndarray
    worst_case: np.ndarray
    solve_seconds: np.ndarray
    solver: str
    status: str


def worst_case_sweep(method, *, L: float = 1.0, mu: float = 0.0, eta, rho=0.0, steps, metric: str = "function_value",
                     R: float = 1.0, solver: str | None = None, progress: bool = False) -> PEPSweep:
    """:func:`worst_case` at every point of the broadcast grid of ``eta``, ``rho`` and ``steps`` (one SDP each).

    Parameters
    ----------
    method : str, MethodSpec or callable
        As in :func:`worst_case`.
    L : float, optional
        Smoothness constant, > 0 (default 1).
    mu : float, optional
        Strong-convexity constant, 0 <= mu < L (default 0: convex).
    eta : array_like
        Learning rates, > 0.
    rho : array_like, optional
        Radii, >= 0 (default 0).
    steps : int or array_like of int
        Iterations N, >= 1.
    metric : str, optional
        A key of :data:`METRICS` (default ``"function_value"``).
    R : float, optional
        Bound on ‖x_0 − x*‖, > 0 (default 1).
    solver : {"CLARABEL", "SCS"} or None, optional
        The solver; None (default) tries the installed ones in that order.
    progress : bool, optional
        Show a tqdm progress bar (default False).

    Returns
    -------
    PEPSweep
    """
    eta = check.as_float_array("eta", eta, positive=True)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    steps_array = np.asarray(steps)
    if steps_array.dtype.kind not in "iu" or np.any(steps_array < 1):
        raise ValueError(f"steps must be a positive integer or an array of them, got {steps!r}")
    eta, rho, steps_array = check.broadcast(("eta", "rho", "steps"), eta, rho, steps_array)
    values, seconds = np.empty(eta.shape), np.empty(eta.shape)
    indices = list(np.ndindex(eta.shape))
    if progress:
        from tqdm.auto import tqdm
        indices = tqdm(indices, desc=f"PEP {method}", leave=False)
    result = None
    for index in indices:
        result = worst_case(method, L=L, mu=mu, eta=float(eta[index]), rho=float(rho[index]),
                            steps=int(steps_array[index]), metric=metric, R=R, solver=solver)
        values[index], seconds[index] = result.worst_case, result.solve_seconds
    return PEPSweep(method=result.method, L=result.L, mu=result.mu, metric=metric, R=result.R, eta=eta.copy(),
                    rho=rho.copy(), steps=steps_array.copy(), worst_case=values, solve_seconds=seconds,
                    solver=result.solver, status=result.status)


def usam_quadratic_threshold(rho, *, L: float = 1.0) -> np.ndarray:
    """2/(L(1 + ρL)): USAM converges on every quadratic with spectrum in [0, L] iff η is below it (O2); this is
    :func:`samtheory.theory.usam_critical_learning_rate` at λ_max = L, the quadratic reference of the PEP regime.

    Parameters
    ----------
    rho : array_like
        Radius (radii), >= 0.
    L : float, optional
        Smoothness constant, > 0 (default 1).

    Returns
    -------
    ndarray
    """
    L = check.as_float_array("L", L, positive=True)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    return theory.usam_critical_learning_rate(L, rho)


@dataclass(frozen=True)
class PEPThreshold(Threshold):
    """The PEP regime of one (method, ρ) (``source="pep"``, ``edge="pep"``): the largest η at which the worst
    case still decreases with N.

    ``value`` is the midpoint of the final bisection bracket [``lower``, ``upper``] (width ≤ ``tolerance``,
    absolute in η: ``relative`` is False); ``quadratic_eta`` is 2/(L(1 + ρL)) (O2; 2/L for GD); ``agree``
    says whether |value − quadratic_eta| ≤ tolerance. ``solver`` names the solver(s) that certified the solves.
    ``scan_eta`` and ``scan_decreasing`` are the coarse upward scan that located the bracket (it stops at the
    first η where the worst case no longer decreases, so ``value`` is the first such edge).

    Attributes
    ----------
    method, edge, source, value, lower, upper, tolerance, reason, relative
        As in :class:`~samtheory.result.Threshold`; ``tolerance`` is ``xtol``, scalars here.
    L, mu : float
        The function class.
    rho : float
        The radius.
    steps : int
        N: the test compares W(N + 1) with W(N).
    metric : str
        A key of :data:`METRICS`.
    quadratic_eta : float
        2/(L(1 + ρL)) (2/L for GD).
    agree : bool
        Whether |value − quadratic_eta| ≤ tolerance.
    relative_difference : float
        (value − quadratic_eta)/quadratic_eta.
    scan_eta : ndarray
        The learning rates of the coarse scan.
    scan_decreasing : ndarray of bool
        Whether the worst case decreased at each.
    n_solves : int
        SDPs solved.
    rtol : float
        The relative decrease required.
    solver : str
        The solver(s) used, joined by ``+``.
    """

    L: float = 1.0
    mu: float = 0.0
    rho: float = 0.0
    steps: int = 0
    metric: str = ""
    quadratic_eta: float = float("nan")
    agree: bool = False
    relative_difference: float = float("nan")
    scan_eta: np.ndarray = field(default=None, repr=False)
    scan_decreasing: np.ndarray = field(default=None, repr=False)
    n_solves: int = 0
    rtol: float = 0.0
    solver: str = ""

    @property
    def eta(self) -> float:
        return float(self.value)

    @property
    def bracket(self) -> tuple[float, float]:
        return float(self.lower), float(self.upper)

    @property
    def xtol(self) -> float:
        return self.tolerance

    def to_record(self) -> dict:
        return {"method": self.method, "L": self.L, "mu": self.mu, "rho": self.rho, "steps": self.steps,
                "metric": self.metric, "pep_eta": self.eta, "quadratic_eta": self.quadratic_eta,
                "agree": self.agree, "relative_difference": self.relative_difference,
                "bracket": list(self.bracket), "n_solves": self.n_solves, "xtol": self.xtol, "solver": self.solver}


def pep_critical_learning_rate(method="usam", *, L: float = 1.0, mu: float = 0.0, rho: float = 0.0, steps: int = 5,
                               metric: str = "function_value", eta_max: float | None = None, n_scan: int = 12,
                               xtol: float = 1e-3, rtol: float = 1e-5,
                               solver: str | None = None) -> PEPThreshold:
    r"""Bisection for the largest η with W(N + 1) < (1 − rtol) W(N), W the PEP worst case of ``metric``.

    A coarse upward scan of ``n_scan`` learning rates in (0, ``eta_max``] (default 4/L) finds the first η where
    the worst case stops decreasing from N = ``steps`` to N + 1; bisection then narrows it to ``xtol``
    (absolute, in η). ``rtol`` (default 1e-5, above the solver's accuracy of about 1e-6) keeps solver noise
    from counting as a decrease.
    The result is set beside the quadratic threshold 2/(L(1 + ρL)) of docs/theory.md O2; whether they agree is
    measured, not assumed.

    Parameters
    ----------
    method : str, MethodSpec or callable, optional
        As in :func:`worst_case` (default ``"usam"``).
    L : float, optional
        Smoothness constant, > 0 (default 1).
    mu : float, optional
        Strong-convexity constant, 0 <= mu < L (default 0: convex).
    rho : float, optional
        Radius, >= 0 (default 0).
    steps : int, optional
        N, >= 1 (default 5).
    metric : str, optional
        A key of :data:`METRICS` (default ``"function_value"``).
    eta_max : float or None, optional
        Top of the scan, > 0; None (default) for 4/L. ``ValueError`` if the worst case still decreases there.
    n_scan : int, optional
        Learning rates in the scan, >= 2 (default 12).
    xtol : float, optional
        Absolute width of the final bracket, > 0 (default 1e-3).
    rtol : float, optional
        Relative decrease that counts, >= 0 (default 1e-5).
    solver : {"CLARABEL", "SCS"} or None, optional
        The solver; None (default) tries the installed ones in that order.

    Returns
    -------
    PEPThreshold
    """
    name, algorithm = _program(method)
    L, mu = _check_class(L, mu)
    rho = _scalar("rho", rho, nonnegative=True)
    steps = check.as_positive_int("steps", steps)
    eta_max = 4.0 / L if eta_max is None else _scalar("eta_max", eta_max, positive=True)
    n_scan = check.as_positive_int("n_scan", n_scan, minimum=2)
    xtol = _scalar("xtol", xtol, positive=True)
    rtol = _scalar("rtol", rtol, nonnegative=True)
    check.choice("metric", metric, tuple(METRICS))
    n_solves = 0
    solvers_used = set()

    def decreasing(eta: float) -> bool:
        nonlocal n_solves
        now = worst_case(method, L=L, mu=mu, eta=eta, rho=rho, steps=steps, metric=metric, solver=solver)
        later = worst_case(method, L=L, mu=mu, eta=eta, rho=rho, steps=steps + 1, metric=metric, solver=solver)
        n_solves += 2
        solvers_used.update((now.solver, later.solver))
        return later.worst_case < (1.0 - rtol) * now.worst_case

    # Scan upwards and stop at the first η where the worst case no longer decreases: beyond it the worst case
    # grows geometrically with N and the SDP soon exceeds what the solver can certify.
    scan, flags = [], []
    for eta in eta_max * np.arange(1, n_scan + 1) / n_scan:
        scan.append(float(eta))
        flags.append(decreasing(float(eta)))
        if not flags[-1]:
            break
    if flags[-1]:
        raise ValueError(f"eta_max: the worst case still decreases at eta_max = {eta_max:g}; raise eta_max")
    low, high = (scan[-2] if len(scan) > 1 else 0.0), scan[-1]
    while high - low > xtol:
        middle = 0.5 * (low + high)
        if decreasing(middle):
            low = middle
        else:
            high = middle
    eta = 0.5 * (low + high)
    quadratic = float(usam_quadratic_threshold(rho if algorithm is unnormalized_sam else 0.0, L=L))
    return PEPThreshold(
        method=name, edge="pep", source="pep", value=np.float64(eta), lower=np.float64(low), upper=np.float64(high),
        tolerance=xtol, reason=np.array("", dtype=object), relative=False, L=L, mu=mu, rho=rho, steps=steps,
        metric=metric, quadratic_eta=quadratic, agree=bool(abs(eta - quadratic) <= xtol),
        relative_difference=(eta - quadratic) / quadratic, scan_eta=np.array(scan),
        scan_decreasing=np.array(flags), n_solves=n_solves, rtol=rtol, solver="+".join(sorted(solvers_used)))


def usam_descent_worst_case(rho: float, *, beta: float = 1.0, mu: float = 0.0, solver: str | None = None) -> PEPResult:
    r"""min ⟨g(x + ρ g(x)), g(x)⟩ / ‖g(x)‖² over β-smooth functions with curvature ≥ μ (docs/theory.md O8).

    O8 (Andriushchenko & Flammarion 2022) bounds it below by 1 − ρβ for every β-smooth f. ``mu = 0``: convex f
    (co-coercivity gives ⟨g(y) − g(x), ρ g(x)⟩ ≥ ‖g(y) − g(x)‖²/β ≥ 0, so the value is at least 1);
    ``mu = -beta``: every β-smooth f, where f = −β‖x‖²/2 attains 1 − ρβ. Solved as the SDP
    min ⟨g_y, g_x⟩ s.t. ‖g_x‖² = 1 with the interpolation conditions of F_{μ,β} at x and y (the same
    conditions hold for μ < 0: Rotaru, Glineur & Patrinos 2022). ``worst_case`` is that minimum ratio.

    Parameters
    ----------
    rho : float
        Radius, >= 0.
    beta : float, optional
        Smoothness β, > 0 (default 1).
    mu : float, optional
        Curvature lower bound, -β <= mu < β (default 0: convex).
    solver : {"CLARABEL", "SCS"} or None, optional
        The solver; None (default) tries the installed ones in that order.

    Returns
    -------
    PEPResult
        ``metric="descent_ratio"``.
    """
    rho = _scalar("rho", rho, nonnegative=True)
    beta, mu = _check_class(beta, mu, allow_nonconvex=True)
    tape = _Tape(1)
    x = Vector(tape, {0: 1.0})
    g_x = tape.gradient(x)
    g_y = tape.gradient(x + rho * g_x)
    sdp = _SDP(tape, beta, mu, with_minimizer=False)
    u, v = sdp.row(g_x), sdp.row(g_y)
    solution = sdp.solve(_inner(sdp.G, v, u), [_inner(sdp.G, u, u) == 1], maximize=False, solver=solver,
                         what=f"USAM descent PEP (rho={rho:g}, beta={beta:g}, mu={mu:g})")
    return PEPResult(method="usam", L=beta, mu=mu, eta=0.0, rho=rho, steps=1, metric="descent_ratio", R=1.0,
                     worst_case=solution.value, solver=solution.solver, status=solution.status,
                     solve_seconds=solution.solve_seconds, solver_seconds=solution.solver_seconds,
                     n_gradients=len(tape.points), gram_rank=sdp.gram_rank(), gram=np.array(sdp.G.value),
                     function_values=np.array(sdp.F.value))


def expansivity_worst_case(method, *, L: float = 1.0, mu: float = 0.0, eta: float, rho: float = 0.0,
                           solver: str | None = None) -> PEPResult:
    r"""The exact Lipschitz constant of one step w ↦ G(w) of ``method`` over all L-smooth μ-strongly convex f.

    sup ‖G(w) − G(w')‖ / ‖w − w'‖ = √(max ‖G(w) − G(w')‖² s.t. ‖w − w'‖² ≤ 1), an SDP with the interpolation
    conditions at w, w' and every extrapolated point (uniform stability, docs/theory.md O10; Hardt, Recht & Singer
    2016). For GD it is max(|1 − ηL|, |1 − ημ|). ``worst_case`` is the Lipschitz constant (not its square).

    Parameters
    ----------
    method : str, MethodSpec or callable
        As in :func:`worst_case`.
    L : float, optional
        Smoothness constant, > 0 (default 1).
    mu : float, optional
        Strong-convexity constant, 0 <= mu < L (default 0: convex).
    eta : float
        Learning rate, > 0.
    rho : float, optional
        Radius, >= 0 (default 0).
    solver : {"CLARABEL", "SCS"} or None, optional
        The solver; None (default) tries the installed ones in that order.

    Returns
    -------
    PEPResult
        ``metric="expansivity"``.
    """
    name, algorithm = _program(method)
    L, mu = _check_class(L, mu)
    eta = _scalar("eta", eta, positive=True)
    rho = _scalar("rho", rho, nonnegative=True)
    tape = _Tape(1)
    start = Vector(tape, {0: 1.0})
    reference = Vector(tape, {})  # w' = 0, w = w' + δ with δ the basis vector
    moved = algorithm(start, tape.gradient, eta=eta, rho=rho, steps=1)
    moved_reference = algorithm(reference, tape.gradient, eta=eta, rho=rho, steps=1)
    if not isinstance(moved, Vector):
        raise ValueError(f"method: the algorithm must return the last iterate (a Vector), got {moved!r:.80}")
    sdp = _SDP(tape, L, mu, with_minimizer=False)
    difference = sdp.row(moved - moved_reference)
    solution = sdp.solve(_inner(sdp.G, difference, difference), [sdp.G[0, 0] <= 1.0], maximize=True, solver=solver,
                         what=f"expansivity PEP of {name} (eta={eta:g}, rho={rho:g})")
    return PEPResult(method=name, L=L, mu=mu, eta=eta, rho=rho, steps=1, metric="expansivity", R=1.0,
                     worst_case=float(np.sqrt(max(solution.value, 0.0))), solver=solution.solver,
                     status=solution.status, solve_seconds=solution.solve_seconds,
                     solver_seconds=solution.solver_seconds, n_gradients=len(tape.points),
                     gram_rank=sdp.gram_rank(), gram=np.array(sdp.G.value), function_values=np.array(sdp.F.value))
