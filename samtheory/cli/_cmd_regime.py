"""samtheory regime: analytic against measured critical learning rates, one row per (method, ρ).

With ``--batch-size`` (least squares only; ``--data FILE.npz`` with an array ``A`` and optionally ``b``): the
stochastic regimes of docs/theory.md O16 — mean-square η_ms, almost-sure η_as with its interval, the engine's
threshold over seeds and the full-batch edge, one row per (method, ρ)."""

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
    parser.add_argument("--rtol", type=float, default=None,
                        help="relative tolerance of the measured thresholds (bisection; default: 1e-3, "
                             "1e-2 with --batch-size)")
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
    group = parser.add_argument_group("stochastic regimes (O16; with --batch-size)")
    group.add_argument("--data", default=None, metavar="FILE.npz",
                       help="least-squares data: an .npz with an array A (n x d) and optionally b (default b = 0, "
                            "realizable with x* = 0); without it, synthetic noiseless data (--n-samples, --dim)")
    group.add_argument("--batch-size", type=int, default=None,
                       help="minibatch size m, 1 <= m <= n: report the stochastic thresholds")
    group.add_argument("--minibatch", default="shared",
                       help="usam's two gradients on one minibatch ('shared', default) or on 'independent' ones")
    group.add_argument("--seeds", type=int, default=16,
                       help="seeds (minibatch sequences) of the measured and Lyapunov thresholds (default: 16)")
    group.add_argument("--fraction", type=float, default=0.5,
                       help="measured edge: the eta at which this fraction of the seeds diverge (default: 0.5)")
    group.add_argument("--lyapunov-steps", type=int, default=2000,
                       help="factors per product of the Lyapunov estimate (default: 2000)")


_STOCHASTIC_COLUMNS = ["method", "rho", "batch_size", "minibatch", "mean_square_eta", "lyapunov_eta",
                       "lyapunov_low", "lyapunov_high", "empirical_eta", "full_batch_eta"]


def _load_data(path):
    """The LeastSquares problem of an .npz file with A (n × d) and optionally b; ValueError naming what is wrong."""
    import os
    import zipfile

    import numpy as np

    from ..problems import LeastSquares

    if not os.path.isfile(path):
        raise ValueError(f"--data: no such file: {path!r}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"--data: {path!r} is not an .npz archive (numpy.savez)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "A" not in archive.files:
                raise ValueError(f"--data: {path!r} has no array 'A' (arrays: {', '.join(archive.files) or 'none'})")
            A = np.asarray(archive["A"])
            b = np.asarray(archive["b"]) if "b" in archive.files else None
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(f"--data: cannot read {path!r} ({error})") from None
    if A.ndim != 2 or A.dtype.kind not in "iuf" or A.size == 0:
        raise ValueError(f"--data: A must be a non-empty 2-D real array, got shape {A.shape}, dtype {A.dtype}")
    A = A.astype(np.float64)
    if not np.all(np.isfinite(A)):
        raise ValueError("--data: A must have finite entries only")
    if b is None:
        b = np.zeros(A.shape[0])
    elif b.shape != (A.shape[0],) or b.dtype.kind not in "iuf" or not np.all(np.isfinite(b)):
        raise ValueError(f"--data: b must be a finite real array of shape ({A.shape[0]},), got shape {b.shape}")
    return LeastSquares(A, b.astype(np.float64))


def _run_stochastic(args) -> int:
    import numpy as np

    from .. import stability
    from ..datasets import make_least_squares
    from ..methods import METHODS
    from ._common import emit

    if args.problem != "least-squares":
        raise ValueError(f"--batch-size needs --problem least-squares (O16), got --problem {args.problem}")
    if args.minibatch not in stability.MINIBATCH_MODES:
        raise ValueError(f"--minibatch must be 'shared' or 'independent', got {args.minibatch!r}")
    for flag, value in (("--seeds", args.seeds), ("--lyapunov-steps", args.lyapunov_steps), ("--steps", args.steps)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    if args.data:
        problem = _load_data(args.data)
    else:
        from .. import _limits

        if args.n_samples > 0 and args.dim > 0:
            _limits.check_memory(f"--n-samples {args.n_samples} --dim {args.dim}",
                                 _limits.dataset_bytes(args.n_samples, args.dim))
        problem = make_least_squares(args.n_samples, args.dim, noise=0.0, seed=args.data_seed)
    if not 1 <= args.batch_size <= problem.n_samples:
        raise ValueError(f"--batch-size must be in [1, n = {problem.n_samples}], got {args.batch_size}")
    names = [name.strip() for name in args.method.split(",") if name.strip()]
    if names == ["all"]:
        names = list(METHODS)
    rtol = 1e-2 if args.rtol is None else args.rtol
    eigenvalues = np.linalg.eigvalsh(problem.A.T @ problem.A / problem.n_samples)
    options = {"batch_size": args.batch_size, "minibatch": args.minibatch}
    rows = []
    for name in names:
        full = stability.analytic_critical_learning_rate(name, eigenvalues, np.asarray(args.rho)).value
        linear = name in ("gd", "usam")
        if linear:
            ms = stability.mean_square_critical_learning_rate(problem, name, args.rho, **options).value
            lyapunov = stability.lyapunov_critical_learning_rate(problem, name, args.rho, steps=args.lyapunov_steps,
                                                                 seeds=args.seeds, seed=args.seed, **options)
        top = 2 * float(np.nanmax(full)) if np.any(np.isfinite(full)) else 4 * 2 / problem.beta
        bottom = 0.5 * float(np.nanmin(ms)) if linear and np.any(np.isfinite(ms)) else 0.01 * top
        measured = stability.stochastic_critical_learning_rate(
            problem, name, args.rho, steps=args.steps, seeds=args.seeds, seed=args.seed, fraction=args.fraction,
            rtol=rtol, eta_range=(bottom, top), truncate=args.truncate, **options)
        for i, rho in enumerate(args.rho):
            note = measured.reason[i] or ("" if linear else "nonlinear: measured only (no mean-square or "
                                                            "Lyapunov threshold)")
            row = {"method": name, "rho": rho, "batch_size": args.batch_size, "minibatch": args.minibatch,
                   "mean_square_eta": ms[i] if linear else None,
                   "lyapunov_eta": lyapunov.value[i] if linear else None,
                   "lyapunov_eta_interval": [lyapunov.lower[i], lyapunov.upper[i]] if linear else None,
                   "lyapunov_confidence": lyapunov.details["confidence"] if linear else None,
                   "empirical_eta": measured.value[i], "empirical_rule": measured.details["rule"],
                   "empirical_rtol": rtol, "full_batch_eta": full[i], "note": note}
            rows.append(row)
    if args.json:
        emit(rows, True)
        return 0
    for row in rows:
        interval = row["lyapunov_eta_interval"] or [None, None]
        row["lyapunov_low"], row["lyapunov_high"] = interval
    print(f"{problem!r}, minibatches of {args.batch_size} of {problem.n_samples} ({args.minibatch}): mean-square "
          f"(exact), almost-sure (Lyapunov, {args.seeds} seeds x {args.lyapunov_steps} steps, 95% interval), "
          f"measured ({rows[0]['empirical_rule']}, rtol {rtol:g}) and full-batch edges.")
    emit(rows, False, _STOCHASTIC_COLUMNS)
    return 0


def run(args) -> int:
    from ..stability import ClassificationRules, compare_regimes
    from ._common import problem_from_args

    if args.batch_size is not None or args.data is not None:
        if args.batch_size is None:
            raise ValueError("--data needs --batch-size (the stochastic regimes of O16)")
        return _run_stochastic(args)
    if args.rtol is None:
        args.rtol = 1e-3
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
