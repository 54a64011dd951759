"""samtheory stability-gap: the Hardt-Recht-Singer algorithmic-stability experiment for every method."""

from __future__ import annotations

from ._common import emit, seed_type

HELP = "uniform stability: parameter divergence and generalization gap on data sets differing in one example"


def add_arguments(parser):
    from ..methods import METHODS

    parser.add_argument("--data", default="synthetic", help="synthetic or breast-cancer (default: synthetic)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated (default: {','.join(METHODS)})")
    parser.add_argument("--eta", type=float, default=0.05, help="learning rate (default: 0.05)")
    parser.add_argument("--rho", type=float, default=0.05, help="radius (default: 0.05)")
    parser.add_argument("--steps", type=int, default=None, help="number of updates (default: 1000; 200 with --quick)")
    parser.add_argument("--batch-size", type=int, default=1, help="minibatch size; 0 for full-batch (default: 1)")
    parser.add_argument("--trials", type=int, default=None,
                        help="minibatch sequences averaged (default: 10; 4 with --quick)")
    parser.add_argument("--seed", type=seed_type("seed"), default=0,
                        help="seed of the minibatch sequences (default: 0)")
    parser.add_argument("--quick", action="store_true", help="a small run (200 steps, 4 trials), a few seconds")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args) -> int:
    import numpy as np

    from .. import stability as uniform

    data = args.data.replace("-", "_")
    if data not in uniform.DATASETS:
        names = ", ".join(name.replace("_", "-") for name in uniform.DATASETS)
        raise ValueError(f"--data must be one of {names}, got {args.data!r}")
    if args.batch_size is not None and args.batch_size < 0:
        raise ValueError(f"--batch-size must be >= 0, got {args.batch_size}")
    steps = args.steps if args.steps is not None else (200 if args.quick else 1000)
    trials = args.trials if args.trials is not None else (4 if args.quick else 10)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    split = uniform.DATASETS[data]()
    if steps >= 1 and trials >= 1:
        from .. import _limits

        record_every = max(1, steps // 20)  # stability_experiment's default
        _limits.check_memory(f"--trials {trials} with --steps {steps}", _limits.stability_bytes(
            trials, steps, record_every, split.train.dim, split.train.n_samples, split.test.n_samples,
            max(len(methods), 1)))
    result = uniform.stability_experiment(
        split, methods=methods, eta=args.eta, rho=args.rho,
        steps=steps, batch_size=args.batch_size or None, n_trials=trials, seed=args.seed)
    if not args.json:
        print(f"{result.data}: n = {result.n_samples}, eta = {result.eta:g}, rho = {result.rho:g}, batch size "
              f"{result.batch_size or 'full'}, {result.n_trials} trials; {result.lipschitz_how}.")
        print(f"SGD bounds (HRS Thm 3.8) {'apply' if result.bound_applies else 'do NOT apply'} to gd: "
              f"eta {'<=' if result.bound_applies else '>'} 2/beta_max = {2 / result.beta_max:.4g}.")
        bound = float(result.usam_parameter_bound[-1])
        print(f"USAM bound with kappa = {result.usam_kappa:.6g} in place of 1 (O14): "
              + ("not proven for batch size != 1" if not result.usam_bound_applies else
                 f"divergence <= {bound:.6g}, loss difference <= {result.lipschitz * bound:.6g}"
                 if np.isfinite(bound) else "vacuous (beyond the float range)") + ".")
    columns = ["method", "steps", "divergence", "parameter_bound", "loss_difference", "stability_bound",
               "generalization_gap", "n_diverged"]
    emit(result.to_records(), args.json, columns)
    return 0
