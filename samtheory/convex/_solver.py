"""All solver-calling code of :mod:`samtheory.convex`: solver choice, tolerances, status checks, timing.

Every CVXPY problem of the package is solved through :func:`solve`, which returns the solver's name, its status
and the time spent, and raises :class:`SolverError` (carrying the status) instead of returning a number when
no solver reports ``optimal``. Without a named solver, Clarabel is tried first and SCS second.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import time
import warnings
from dataclasses import dataclass

import cvxpy as cp

__all__ = ["SolverError", "Solution", "PREFERENCE", "available_solvers", "pick_solver", "solve"]

#: Solvers tried in this order when none is named (both handle exponential and semidefinite cones).
PREFERENCE = ("CLARABEL", "SCS")

#: Default requested accuracy (duality gap and feasibility, absolute and relative); Clarabel's own default is
#: 1e-8. A PEP worst case is compared with closed forms and PEPit at 1e-4 relative, an optimum at 1e-8.
DEFAULT_TOLERANCE = 1e-8


class SolverError(RuntimeError):
    """No solver returned ``optimal``; ``status`` and ``solver`` say what each one returned.

    Parameters
    ----------
    what : str
        What was being solved (the start of the message).
    solver : str
        The solver(s) tried, joined by ``/``.
    status : str
        What each solver returned.
    """

    def __init__(self, what: str, solver: str, status: str):
        self.what, self.solver, self.status = what, solver, status
        super().__init__(f"{what}: no optimal status (solver {solver} returned {status}); no value is returned")


@dataclass(frozen=True)
class Solution:
    """What :func:`solve` returns: the optimal value, the solver's name and status, and timings in seconds.

    ``solve_seconds`` is the wall time of ``cvxpy.Problem.solve`` (canonicalization included);
    ``solver_seconds`` the time the solver itself reports (None if it reports none).
    """

    value: float
    solver: str
    status: str
    solve_seconds: float
    solver_seconds: float | None


def available_solvers() -> tuple[str, ...]:
    """The solvers of :data:`PREFERENCE` installed with CVXPY, in order of preference."""
    installed = set(cp.installed_solvers())
    return tuple(name for name in PREFERENCE if name in installed)


def pick_solver(solver: str | None = None) -> str:
    """``solver`` upper-cased and checked, or the first installed of :data:`PREFERENCE`."""
    available = available_solvers()
    if solver is None:
        if not available:
            raise ValueError(f"solver: none of {', '.join(PREFERENCE)} is installed with cvxpy; "
                             f"pip install clarabel (or scs)")
        return available[0]
    name = str(solver).upper()
    if name not in PREFERENCE:
        raise ValueError(f"solver must be one of {', '.join(map(repr, PREFERENCE))} or None, got {solver!r}")
    if name not in available:
        raise ValueError(f"solver {solver!r} is not installed with cvxpy (installed: {', '.join(available) or 'none'})")
    return name


def solver_options(solver: str, tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """The keyword arguments :func:`solve` passes to ``cvxpy.Problem.solve`` for ``solver``."""
    if solver == "CLARABEL":
        # faer: Clarabel's supernodal factorization, several times faster than its default (qdldl) on the
        # dense KKT systems of PEP SDPs (measured by benchmarks/bench_pep.py).
        return {"tol_gap_abs": tolerance, "tol_gap_rel": tolerance, "tol_feas": tolerance, "max_iter": 500,
                "direct_solve_method": "faer"}
    return {"eps_abs": tolerance, "eps_rel": tolerance, "max_iters": 20_000}


@contextlib.contextmanager
def _stdout_silenced():
    """Send stdout to /dev/null for the duration, at both levels a solver prints to: ``sys.stdout`` (SCS's
    ``PySys_WriteStdout``, e.g. "ERROR: could not determine problem status." even when not verbose, which
    would corrupt ``--json`` output) and file descriptor 1 (C's printf). The solver's status is reported
    through :class:`SolverError` instead. Python's buffered output is flushed first and C's after, so nothing
    else is reordered or lost. Both are process-wide: other threads' output during a solve is dropped too."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stdout.flush()
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        try:
            saved = os.dup(1)
        except OSError:  # no file descriptor 1: nothing more to protect
            yield
            return
        try:
            libc = ctypes.CDLL(None)
        except OSError:
            libc = None
        try:
            os.dup2(sink.fileno(), 1)
            yield
        finally:
            if libc is not None:
                libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)


def solve(problem: cp.Problem, *, solver: str | None = None, tolerance: float | None = None,
          what: str = "problem") -> Solution:
    """Solve a CVXPY problem to ``tolerance``; :class:`SolverError` unless a solver reports ``optimal``.

    With ``solver=None`` the installed solvers of :data:`PREFERENCE` are tried in turn until one reports
    ``optimal`` (Clarabel, an interior-point method, sometimes stalls just short of the requested accuracy on
    PEP SDPs, ending ``optimal_inaccurate``; SCS then usually certifies the same problem). ``Solution.solver``
    names the solver whose answer is returned; a named ``solver`` is the only one tried.
    """
    names = (pick_solver(solver),) if solver is not None else available_solvers() or (pick_solver(None),)
    tolerance = DEFAULT_TOLERANCE if tolerance is None else tolerance
    failures = []
    for name in names:
        start = time.perf_counter()
        try:
            with warnings.catch_warnings(), _stdout_silenced():  # failures are reported below
                warnings.simplefilter("ignore", UserWarning)
                problem.solve(solver=name, **solver_options(name, tolerance))
            status = str(problem.status)
        except cp.error.SolverError as error:
            status = f"solver_error ({' '.join(str(error).split())[:120]})"
        elapsed = time.perf_counter() - start
        if status == cp.OPTIMAL:
            stats = problem.solver_stats
            solver_seconds = None if stats is None or stats.solve_time is None else float(stats.solve_time)
            return Solution(value=float(problem.value), solver=name, status=status, solve_seconds=elapsed,
                            solver_seconds=solver_seconds)
        failures.append((name, status))
    raise SolverError(what, "/".join(name for name, _ in failures), "; ".join(f"{n}: {st}" for n, st in failures))
