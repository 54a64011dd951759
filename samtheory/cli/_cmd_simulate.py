"""samtheory simulate: one configuration or a small (η, ρ, seed) grid."""

from __future__ import annotations

from ._common import (add_base_optimizer_arguments, add_problem_arguments, base_optimizer_from_args, emit, float_list,
                      problem_from_args, seed_list, show_progress)

HELP = "run one configuration or a small (eta, rho, seed) grid and print a table (or JSON with --json)"


def add_arguments(parser):
    from ..methods import METHODS

    add_problem_arguments(parser)
    parser.add_argument("--method", default="ssam", help=f"one of {', '.join(METHODS)} (default: ssam)")
    parser.add_argument("--eta", type=float_list, required=True, help="learning rate(s), comma-separated")
    parser.add_argument("--rho", type=float_list, default=[0.05], help="radius/radii, comma-separated (default: 0.05)")
    parser.add_argument("--seed", type=seed_list, default=[0],
                        help="seed(s) of x0 and minibatches, in [0, 2**32 - 1] (default: 0)")
    parser.add_argument("--steps", type=int, default=1000, help="number of updates (default: 1000)")
    parser.add_argument("--batch-size", type=int, default=None, help="minibatch size (finite-sum problems)")
    parser.add_argument("--adaptive", action="store_true", help="ASAM-style adaptive ascent")
    parser.add_argument("--truncate", action="store_true", help="truncate the renormalization factor at 1")
    parser.add_argument("--tol", type=float, default=1e-6, help="convergence tolerance on ‖g‖/‖g0‖ (default: 1e-6)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_base_optimizer_arguments(parser)


def run(args) -> int:
    import numpy as np

    from ..engine import simulate

    problem = problem_from_args(args)
    eta = np.asarray(args.eta)[:, None, None]
    rho = np.asarray(args.rho)[None, :, None]
    seed = np.asarray(args.seed)[None, None, :]
    result = simulate(problem, args.method, eta, rho, seed=seed, steps=args.steps, batch_size=args.batch_size,
                      adaptive=args.adaptive, truncate=args.truncate, tol=args.tol, progress=show_progress(),
                      **base_optimizer_from_args(args))
    columns = ["method", "eta", "rho", "seed", "status", "final_loss", "final_grad_norm", "diverged_at", "steps"]
    emit(result.to_records(), args.json, columns)
    return 0
