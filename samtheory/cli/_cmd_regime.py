"""samtheory regime: analytic against measured critical learning rates, one row per (method, ρ)."""

from __future__ import annotations

from ._common import (add_base_optimizer_arguments, add_problem_arguments, base_optimizer_from_args, emit, float_list,
                      seed_type)

HELP = "stability regimes: analytic vs measured critical learning rates per method and rho (table or --json)"

_COLUMNS = ["method", "rho", "analytic_eta", "empirical_eta", "relative_error", "tolerance", "width_vs_gd",
            "analytic_converged_eta", "empirical_converged_eta", "converged_width_vs_gd", "rate_eta", "analytic_rate",
            "measured_rate"]


def add_arguments(parser):
    from ..methods import METHODS

    add_problem_arguments(parser)
    parser.add_argument("--method", default="all",
                        help=f"'all' or comma-separated names among {', '.join(METHODS)} (default: all)")
    parser.add_argument("--rho", type=float_list, default=[0.05], help="radius/radii, comma-separated (default: 0.05)")
    parser.add_argument("--rtol", type=float, default=1e-3,
                        help="relative tolerance of the measured thresholds (bisection; default: 1e-3)")
    parser.add_argument("--steps", type=int, default=2000,
                        help="step budget in which a run must converge (converged edge; default: 2000)")
    parser.add_argument("--divergence-steps", type=int, default=None,
                        help="step budget of the non-divergent edge (default: ceil(ln(divergence factor)/rtol))")
    parser.add_argument("--tol", type=float, default=1e-6, help="converged: ‖g_T‖ <= tol ‖g_0‖ (default: 1e-6)")
    parser.add_argument("--divergence-factor", type=float, default=1e6,
                        help="diverged: ‖g_t‖ > factor max(‖g_0‖, 1) (default: 1e6)")
    parser.add_argument("--points", type=int, default=3, help="initial points per configuration (default: 3)")
    parser.add_argument("--seed", type=seed_type("seed"), default=0, help="seed of the initial points (default: 0)")
    parser.add_argument("--eta-range", type=float_list, default=None, metavar="LOW,HIGH",
                        help="initial bisection bracket (default: 1e-4*2/beta,4*2/beta)")
    parser.add_argument("--adaptive", action="store_true", help="ASAM-style adaptive ascent")
    parser.add_argument("--truncate", action="store_true", help="truncate the renormalization factor at 1")
    parser.add_argument("--json", action="store_true", help="print JSON (a list of rows) instead of a table")
    add_base_optimizer_arguments(parser)


def run(args) -> int:
    from ..stability import ClassificationRules, compare_regimes
    from ._common import problem_from_args

    if args.eta_range is not None and len(args.eta_range) != 2:
        raise ValueError(f"--eta-range must be two numbers LOW,HIGH, got {args.eta_range}")
    methods = [name.strip() for name in args.method.split(",") if name.strip()]
    if methods == ["all"]:
        methods = "all"
    elif not methods or "all" in methods:
        raise ValueError(f"--method must be 'all' or a comma-separated list of method names, got {args.method!r}")
    if args.points >= 1:
        from .. import _limits

        dim = len(args.eigs) if args.problem == "quadratic" else args.dim if args.problem in (
            "least-squares", "logistic") else 2
        _limits.check_memory(f"--points {args.points} with {len(args.rho)} rho value(s)",
                             _limits.regime_bytes(args.points, len(args.rho), max(dim, 1), 1))
    problem = problem_from_args(args)
    rules = ClassificationRules(steps=args.steps, tol=args.tol, divergence_factor=args.divergence_factor,
                                n_points=args.points, seed=args.seed, divergence_steps=args.divergence_steps)
    rows = compare_regimes(problem, methods, args.rho, rtol=args.rtol, eta_range=args.eta_range, rules=rules,
                           adaptive=args.adaptive, truncate=args.truncate, **base_optimizer_from_args(args))
    if args.json:
        emit(rows, True)
        return 0
    first = rows[0]
    print(f"{problem!r}: non-divergent edge within {first['divergence_steps']} steps, converged edge within "
          f"{first['steps']} steps; thresholds to rtol = {args.rtol:g} "
          f"({args.points} initial points, seed {args.seed}).")
    emit(rows, False, _COLUMNS)
    notes = dict.fromkeys(f"  {row['method']}: {row['note']}" for row in rows if row["note"])
    if notes:
        print("notes (why a value is '-'):")
        print("\n".join(notes))
    return 0
