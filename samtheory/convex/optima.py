r"""Exact optima of the convex test problems with CVXPY: x* and f* with the solver's name and status.

``solve(problem)`` minimizes a :class:`~samtheory.problems.LeastSquares`, a
:class:`~samtheory.problems.LogisticRegression` (with or without L2) or a convex
:class:`~samtheory.problems.Quadratic`, optionally over a box ``lower ≤ x ≤ upper`` and/or a ball
``‖x‖ ≤ radius``. ``attach_optimum(problem)`` stores the unconstrained optimum on the problem, so that
:func:`samtheory.simulate`'s ``result.suboptimality`` (f(x_T) − f*) and ``distance`` (‖x_T − x*‖) use it.

Logistic regression without L2 has no minimizer on linearly separable data (the loss decreases forever along a
separating direction): :func:`solve` detects this with a linear program before calling the solver, and raises
``ValueError`` instead of returning the large finite point a solver stops at.

Without constraints, ``polish=True`` (default) refines the solver's point by Newton steps on the problem's own
gradient and Hessian until ‖∇f(x*)‖ stops decreasing (the solver's answer is accurate to about 1e-8; the
polished one to rounding), and reports ‖∇f(x*)‖ as the first-order certificate.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np
from scipy import optimize

from .. import _validation as check
from ..problems import LeastSquares, LogisticRegression, Problem, Quadratic
from . import _solver

__all__ = ["Optimum", "solve", "attach_optimum", "SolverError"]

SolverError = _solver.SolverError

#: Requested solver accuracy (these are small SOC / exponential-cone problems; Clarabel reaches it).
TOLERANCE = 1e-10


@dataclass(frozen=True)
class Optimum:
    """The minimizer ``x_star`` and minimum ``f_star`` of a problem, as certified by ``solver``.

    ``status`` is the solver's status (always ``"optimal"``: anything else raises :class:`SolverError`).
    ``solver_f_star`` is the solver's own objective value; ``f_star`` is the problem's ``loss`` at ``x_star``
    (after polishing, if any). ``grad_norm`` is ‖∇f(x_star)‖ (None with constraints, where it need not be 0).

    Attributes
    ----------
    x_star : ndarray
        The minimizer, shape ``(d,)``.
    f_star : float
        ``problem.loss(x_star)``.
    solver : str
        The solver whose answer this is (``"CLARABEL"`` or ``"SCS"``).
    status : str
        The solver's status, ``"optimal"``.
    solve_seconds : float
        Wall time of the CVXPY solve.
    solver_f_star : float
        The solver's objective value.
    grad_norm : float or None
        ‖∇f(x_star)‖, None with constraints.
    newton_steps : int
        Newton steps taken by the polish (0 without).
    constrained : bool
        Whether a box or ball constraint was imposed.
    """

    x_star: np.ndarray
    f_star: float
    solver: str
    status: str
    solve_seconds: float
    solver_f_star: float
    grad_norm: float | None
    newton_steps: int
    constrained: bool

    def to_record(self) -> dict:
        return {"f_star": self.f_star, "solver_f_star": self.solver_f_star, "solver": self.solver,
                "status": self.status, "solve_seconds": self.solve_seconds, "grad_norm": self.grad_norm,
                "newton_steps": self.newton_steps, "constrained": self.constrained, "x_star": self.x_star.tolist()}


def _objective(problem: Problem, x: cp.Variable):
    if isinstance(problem, LeastSquares):
        return cp.sum_squares(problem.A @ x - problem.b) / (2 * problem.n_samples)
    if isinstance(problem, LogisticRegression):
        margins = cp.multiply(problem.targets, problem.features @ x)
        loss = cp.sum(cp.logistic(-margins)) / problem.n_samples
        return loss + (problem.l2 / 2) * cp.sum_squares(x) if problem.l2 else loss
    if isinstance(problem, Quadratic):
        if problem.mu < 0:
            raise ValueError(f"problem must be convex: this Quadratic has eigenvalue {problem.mu:g} < 0")
        # ½ (x − c)ᵀ H (x − c) = ½ ‖diag(√λ) Qᵀ (x − c)‖²
        root = np.sqrt(problem.eigenvalues)
        Q = np.eye(problem.dim) if problem.eigenvectors is None else problem.eigenvectors
        return 0.5 * cp.sum_squares((Q * root).T @ (x - problem.center))
    raise ValueError(f"problem must be a LeastSquares, LogisticRegression or convex Quadratic, got {problem!r}")


def _bounds(dim, lower, upper, radius):
    """``lower``, ``upper`` as arrays of shape (dim,) or None, and ``radius`` as a float or None, checked."""
    bounds = []
    for name, bound in (("lower", lower), ("upper", upper)):
        if bound is not None:
            bound = check.as_float_array(name, bound)
            if bound.ndim == 0:
                bound = np.broadcast_to(bound, (dim,))
            if bound.shape != (dim,):
                raise ValueError(f"{name} must be a number or have shape ({dim},), got shape {bound.shape}")
        bounds.append(bound)
    lower, upper = bounds
    if lower is not None and upper is not None and np.any(lower > upper):
        raise ValueError(f"lower must be <= upper, got lower={check._show(lower)}, upper={check._show(upper)}")
    radius = None if radius is None else check.as_scalar("radius", radius, positive=True)
    return lower, upper, radius


def _constraints(x, lower, upper, radius):
    constraints = []
    if lower is not None:
        constraints.append(x >= lower)
    if upper is not None:
        constraints.append(x <= upper)
    if radius is not None:
        constraints.append(cp.norm(x, 2) <= radius)
    return constraints


def _separating_direction(problem: LogisticRegression, lower, upper) -> np.ndarray | None:
    r"""A direction w, feasible for ever from any feasible point, with y_i x_iᵀw ≥ 0 for every example and > 0
    for some, or None if there is none. Along such a w the logistic loss without L2 decreases for ever, so it
    has no minimizer; without one the data overlap and a minimizer exists (Albert & Anderson 1984).

    Found by the linear program max Σ_i z_iᵀw s.t. z_iᵀw ≥ 0, |w_j| ≤ 1 (w ≥ 0 with only ``lower``, w ≤ 0
    with only ``upper``), z_i = y_i x_i / max|y x|: its value is 0 exactly when no such direction exists.
    """
    if lower is not None and upper is not None:
        return None  # a bounded box: the minimum is attained
    Z = problem.targets[:, None] * problem.features
    Z = Z / np.max(np.abs(Z))
    box = (0.0, 1.0) if lower is not None else (-1.0, 0.0) if upper is not None else (-1.0, 1.0)
    program = optimize.linprog(-Z.sum(axis=0), A_ub=-Z, b_ub=np.zeros(Z.shape[0]), bounds=box, method="highs")
    if program.status != 0:
        return None
    margins = Z @ program.x
    # Tolerances of the scaled program (entries of Z and w within [-1, 1]): HiGHS solves it to about 1e-9.
    if margins.sum() > 1e-7 and margins.min() >= -1e-9:
        return program.x
    return None


def _polish(problem: Problem, x: np.ndarray, max_steps: int = 20) -> tuple[np.ndarray, float, int]:
    """Newton steps x ← x − H⁻¹∇f while ‖∇f‖ decreases; returns the best point, its ‖∇f‖ and the steps taken."""
    best, best_norm = x, float(np.linalg.norm(problem.grad(x)))
    steps = 0
    for _ in range(max_steps):
        if best_norm == 0.0:
            break
        g = problem.grad(best)
        H = problem.hessian(best)
        candidate = best - np.linalg.lstsq(H, g, rcond=None)[0]
        norm = float(np.linalg.norm(problem.grad(candidate)))
        if not norm < best_norm:
            break
        best, best_norm, steps = candidate, norm, steps + 1
    return best, best_norm, steps


def solve(problem: Problem, *, lower=None, upper=None, radius=None, solver: str | None = None,
          polish: bool = True) -> Optimum:
    r"""Minimize ``problem`` with CVXPY, optionally subject to ``lower ≤ x ≤ upper`` and ``‖x‖₂ ≤ radius``.

    Least squares: min (1/2n)‖Ax − b‖²; logistic: min (1/n) Σ log(1 + exp(−yᵢ xᵢᵀw)) + (l2/2)‖w‖²;
    quadratic: min ½(x − c)ᵀH(x − c). ``solver`` is ``"CLARABEL"``, ``"SCS"`` or None (the first installed).
    Raises :class:`SolverError` (with the status) unless the solver reports ``optimal``.

    Parameters
    ----------
    problem : LeastSquares, LogisticRegression or Quadratic
        The problem; a Quadratic must be convex (``ValueError`` otherwise).
    lower, upper : None, float or array_like, optional
        Box bounds, numbers or shape ``(d,)``, with ``lower <= upper``; None (default) for none.
    radius : None or float, optional
        Ball constraint ‖x‖₂ ≤ ``radius``, > 0; None (default) for none.
    solver : {"CLARABEL", "SCS"} or None, optional
        The solver (any case); None (default) tries the installed ones in that order.
    polish : bool, optional
        Newton-polish an unconstrained solution (default True).

    Returns
    -------
    Optimum
    """
    polish = check.as_bool("polish", polish)
    x = cp.Variable(getattr(problem, "dim", 0) or 1)
    objective = _objective(problem, x)  # refuses anything but the problems it knows, naming them
    lower, upper, radius = _bounds(problem.dim, lower, upper, radius)
    if isinstance(problem, LogisticRegression) and not problem.l2 and radius is None:
        direction = _separating_direction(problem, lower, upper)
        if direction is not None:
            positive = int(np.sum(problem.targets * (problem.features @ direction) > 0))
            raise ValueError(f"problem has no minimizer: LogisticRegression with l2 = 0 on linearly separable data "
                             f"(y_i x_iᵀw >= 0 for every example and > 0 for {positive} of {problem.n_samples} along "
                             f"w = {check._show(direction)}, so the loss decreases for ever along w); use l2 > 0 "
                             "or a radius")
    constraints = _constraints(x, lower, upper, radius)
    solution = _solver.solve(cp.Problem(cp.Minimize(objective), constraints), solver=solver, tolerance=TOLERANCE,
                             what=f"minimizing {type(problem).__name__}")
    x_star = np.asarray(x.value, dtype=np.float64).reshape(problem.dim)
    if not np.all(np.isfinite(x_star)):
        raise SolverError(f"minimizing {type(problem).__name__}", solution.solver, "optimal, with a non-finite x*")
    constrained = bool(constraints)
    grad_norm, steps = None, 0
    if not constrained:
        if polish:
            x_star, grad_norm, steps = _polish(problem, x_star)
        else:
            grad_norm = float(np.linalg.norm(problem.grad(x_star)))
    return Optimum(x_star=x_star, f_star=float(problem.loss(x_star)), solver=solution.solver,
                   status=solution.status, solve_seconds=solution.solve_seconds, solver_f_star=solution.value,
                   grad_norm=grad_norm, newton_steps=steps, constrained=constrained)


def attach_optimum(problem: Problem, optimum: Optimum | None = None, *, solver: str | None = None) -> Optimum:
    """Set ``problem.minimizer`` and ``problem.f_star`` from the unconstrained optimum (computed if not given).

    Afterwards ``samtheory.simulate(problem, ...)`` reports ``distance`` ‖x_T − x*‖ and ``suboptimality``
    f(x_T) − f*.

    Parameters
    ----------
    problem : Problem
        A problem :func:`solve` accepts; modified in place.
    optimum : Optimum or None, optional
        An unconstrained optimum of ``problem`` with ``x_star`` of shape ``(d,)``; None (default) solves for it.
    solver : str or None, optional
        The solver, when ``optimum`` is None (as in :func:`solve`).

    Returns
    -------
    Optimum
        The optimum used.
    """
    if optimum is None:
        optimum = solve(problem, solver=solver)
    elif not isinstance(optimum, Optimum):
        raise ValueError(f"optimum must be an Optimum from samtheory.convex.optima.solve or None, got {optimum!r:.80}")
    if optimum.constrained:
        raise ValueError("optimum must be unconstrained to serve as the problem's minimizer, got a constrained one")
    if optimum.x_star.shape != (problem.dim,):
        raise ValueError(f"optimum must have x_star of shape ({problem.dim},), got {optimum.x_star.shape}")
    problem.minimizer = optimum.x_star.copy()
    problem.f_star = optimum.f_star
    return optimum
