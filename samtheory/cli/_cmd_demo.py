"""samtheory demo: the five methods on the {1, 10, 100} quadratic across learning rates."""

from __future__ import annotations

from ._common import emit, progress_bar, show_progress

HELP = "quick tour: status of every method on a quadratic across learning rates (built-in defaults)"


def add_arguments(parser):
    parser.add_argument("--rho", type=float, default=0.05, help="radius (default: 0.05)")
    parser.add_argument("--steps", type=int, default=2000, help="number of updates (default: 2000)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args) -> int:
    import numpy as np

    from .. import theory
    from ..engine import simulate
    from ..methods import BUILTIN_METHODS
    from ..problems import Quadratic

    problem = Quadratic([1.0, 10.0, 100.0])
    lam = problem.beta
    # Learning rates as fractions of GD's limit 2/λ_max.
    fractions = np.array([0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.99, 1.01])
    eta = fractions * theory.gd_critical_learning_rate(lam)
    rows = []
    for name in progress_bar(list(BUILTIN_METHODS), "demo", "method"):
        result = simulate(problem, name, eta, args.rho, steps=args.steps, x0=np.ones(problem.dim),
                          progress=show_progress())
        for fraction, record in zip(fractions, result.to_records()):
            rows.append({"method": name, "eta*lam_max/2": float(fraction), **{k: record[k] for k in
                         ("eta", "rho", "status", "final_loss", "diverged_at")}})
    if not args.json:
        gd_edge = float(theory.gd_critical_learning_rate(lam))
        usam_edge = float(theory.usam_critical_learning_rate(lam, args.rho))
        print(f"Quadratic with eigenvalues {problem.eigenvalues.tolist()}, rho = {args.rho}, {args.steps} steps, x0 = 1.")
        print(f"GD is stable for eta < 2/lam_max = {gd_edge:.4g}; USAM for eta < 2/(lam_max(1+rho lam_max)) = {usam_edge:.4g}.")
    emit(rows, args.json)
    return 0
