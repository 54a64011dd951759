"""samtheory pep: exact worst cases (performance estimation) of GD and USAM over smooth convex functions."""

from __future__ import annotations

from ._common import emit, float_list, int_list

HELP = "exact worst case (PEP, an SDP in CVXPY) of gd/usam over L-smooth (strongly) convex functions"


def add_arguments(parser):
    parser.add_argument("--method", default="usam",
                        help="gd or usam (sam/ssam/susam have no exact PEP) (default: usam)")
    parser.add_argument("--L", type=float, default=1.0, help="smoothness constant (default: 1)")
    parser.add_argument("--mu", type=float, default=0.0, help="strong convexity, 0 <= mu < L (default: 0)")
    parser.add_argument("--eta", type=float_list, default=[1.0], help="learning rate(s), comma-separated (default: 1)")
    parser.add_argument("--rho", type=float_list, default=[0.0], help="USAM radius/radii, comma-separated (default: 0)")
    parser.add_argument("--steps", type=int_list, default=[5], help="number(s) of iterations N (default: 5)")
    parser.add_argument("--metric", default="function_value",
                        help="function_value (f(x_N)-f*), distance_squared or gradient_norm_squared "
                             "(default: function_value)")
    parser.add_argument("--R", type=float, default=1.0, help="initial distance bound ||x_0 - x*|| <= R (default: 1)")
    parser.add_argument("--solver", default=None, help="CLARABEL or SCS (default: the first installed)")
    parser.add_argument("--critical", action="store_true",
                        help="instead: bisect the largest eta at which the worst case still decreases with N, "
                             "beside the quadratic threshold 2/(L(1+rho L))")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args) -> int:
    import sys

    from ..convex import pep
    from ..convex._solver import SolverError

    from .. import _limits

    for steps in args.steps:
        if steps >= 1:
            _limits.check_memory(f"--steps {steps}", _limits.pep_bytes(steps))
    rows = []
    try:
        if args.critical:
            for rho in args.rho:
                for steps in args.steps:
                    rows.append(_numeric(f"--rho {rho:g} --steps {steps} --L {args.L:g}", lambda: (
                        pep.pep_critical_learning_rate(args.method, L=args.L, mu=args.mu, rho=rho, steps=steps,
                                                       metric=args.metric, solver=args.solver).to_record())))
            columns = ["method", "L", "mu", "rho", "steps", "pep_eta", "quadratic_eta", "agree", "relative_difference"]
        else:
            for eta in args.eta:
                for rho in args.rho:
                    for steps in args.steps:
                        rows.append(_numeric(f"--eta {eta:g} --rho {rho:g} --L {args.L:g} --R {args.R:g}", lambda: (
                            pep.worst_case(args.method, L=args.L, mu=args.mu, eta=eta, rho=rho, steps=steps,
                                           metric=args.metric, R=args.R, solver=args.solver).to_record())))
            columns = ["method", "L", "mu", "eta", "rho", "steps", "metric", "worst_case", "solver", "status",
                       "solve_seconds"]
    except SolverError as error:
        print(f"samtheory pep: solver failed: {error}", file=sys.stderr)
        return 1
    emit(rows, args.json, columns)
    return 0


def _numeric(arguments: str, solve):
    """``solve()``, with float64 overflow in the PEP's data (a RuntimeWarning, made an error by the CLI, or
    CVXPY refusing NaN/Inf data) reported as bad input naming the arguments."""
    try:
        return solve()
    except (RuntimeWarning, FloatingPointError, OverflowError) as error:
        detail = str(error)
    except ValueError as error:
        if "NaN or Inf" not in str(error):  # CVXPY's words for data that overflowed
            raise
        detail = "the problem data contain NaN or Inf"
    raise ValueError(f"{arguments}: the PEP's numbers overflow float64 ({detail}); use smaller values") from None
