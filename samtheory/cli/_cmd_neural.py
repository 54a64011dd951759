"""samtheory neural: SAM/USAM/StableSAM training a CNN over a learning-rate grid, sharpness against the edges (needs samtheory[torch])."""

from __future__ import annotations

import argparse
import os

from ._common import emit, float_list, format_table, seed_list

HELP = ("train a 1-D CNN on MNIST-1D with gd/sam/usam/ssam/susam (SGD, momentum 0.9) over a learning-rate grid, "
        "tracking λ_max against each method's edge (needs samtheory[torch])")

# The experiment is experiments/neural.py of the clone the command runs in (or --root); its DEFAULT_CONFIG and
# QUICK_CONFIG (--quick) are read in run() so that `samtheory --help` does not import torch; the help texts
# quote them (tests/test_neural.py checks).


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def add_arguments(parser):
    parser.add_argument("--quick", action="store_true",
                        help="a small grid on the CPU (under a minute): the CNN, lr 0.1,3, one seed, ρ 0.05, "
                             "2 epochs")
    parser.add_argument("--dataset", choices=("mnist1d", "digits"), default=None,
                        help="MNIST-1D generated locally (default) or scikit-learn's digits")
    parser.add_argument("--models", type=_names, default=None, help="comma-separated: cnn,mlp (default: cnn)")
    parser.add_argument("--methods", type=_names, default=None,
                        help="comma-separated: gd,sam,usam,ssam,susam (default: all; the paper's SAM is usam, "
                             "SSAM susam, SAM† sam, SSAM† ssam)")
    parser.add_argument("--lr", type=float_list, default=None, dest="learning_rates",
                        help="learning rates, comma-separated (default: 0.03,0.1,0.2,0.4)")
    parser.add_argument("--seeds", type=seed_list, default=None, help="seeds, comma-separated (default: 0,1,2)")
    parser.add_argument("--rho", type=float_list, default=None, dest="rhos",
                        help="radii ρ, comma-separated; gd runs once (default: 0.05,0.1)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: 6)")
    parser.add_argument("--batch-size", type=int, default=None, help="minibatch size (default: 128)")
    parser.add_argument("--momentum", type=float, default=None,
                        help="SGD momentum β of the base optimizer (default: 0.9)")
    parser.add_argument("--weight-decay", type=float, default=None,
                        help="SGD weight decay of the base optimizer (default: 0.0005)")
    parser.add_argument("--adaptive", action="store_true", help="ASAM-style adaptive ascent")
    parser.add_argument("--truncate", action="store_true", help="truncate the renormalization factor at 1")
    parser.add_argument("--n-samples", type=int, default=None,
                        help="data set size before the 80/20 split (default: 3000)")
    parser.add_argument("--sharpness-every", type=int, default=None,
                        help="steps between λ_max measurements during training, 0 to skip (default: 18)")
    parser.add_argument("--sharpness-samples", type=int, default=None,
                        help="training samples of the λ_max tracked during training (default: 128)")
    parser.add_argument("--hessian-samples", type=int, default=None,
                        help="training samples of the final λ_max, trace and density, 0 to skip (default: 128)")
    parser.add_argument("--spectrum-seeds", type=int, default=None,
                        help="the first this many seeds get the final λ_max, trace and density (default: 1)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                        help="auto (CUDA if available; the default), cpu or cuda; --quick defaults to cpu")
    parser.add_argument("--dtype", choices=("float32", "float64", "bfloat16"), default="float32",
                        help="parameter dtype (default: float32)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--output", default=None, metavar="PATH", help="write the results JSON here")
    parser.add_argument("--csv", default=None, metavar="PATH", help="write one CSV row per run here")
    parser.add_argument("--json", action="store_true", help="print the results JSON instead of tables")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (there is none anyway when stderr is not a terminal)")
    parser.add_argument("--root", default=None, metavar="DIR",
                        help="the samtheory clone whose experiments/neural.py runs (default: the one the working "
                             "directory is in)")


def run(args) -> int:
    from .._paths import check_output_file

    # Checked before torch is imported and hours of training start: a bad path must not lose the results.
    for flag, path in (("--output", args.output), ("--csv", args.csv)):
        if path is not None:
            check_output_file(flag, path)
    if args.output is not None and args.csv is not None and \
            os.path.abspath(args.output) == os.path.abspath(args.csv):
        raise ValueError(f"--output and --csv must be different files, got {args.output!r} for both")
    if args.dtype != "float64":  # torch cannot apply a step size beyond the parameters' float range
        largest = 3.3e38  # float32's (and bfloat16's) largest finite value, rounded down
        for flag, values in (("--lr", args.learning_rates or []), ("--rho", args.rhos or [0.0]),
                             ("--momentum", [args.momentum or 0.0]), ("--weight-decay", [args.weight_decay or 0.0])):
            if any(abs(value) > largest for value in values):
                raise ValueError(f"{flag} must be <= {largest:g} with --dtype {args.dtype}, got "
                                 f"{max(values, key=abs):g}")
    if args.n_samples is not None and args.n_samples > 0 and args.dataset != "digits":
        from .. import _limits

        _limits.check_memory(f"--n-samples {args.n_samples}", _limits.mnist1d_bytes(args.n_samples))
    from ..repository import load_experiment

    try:
        neural = load_experiment("neural", args.root)  # root None: the clone the command runs in
    except ImportError as error:
        raise ValueError(f"samtheory neural needs PyTorch: pip install 'samtheory[torch]' ({error})") from None
    DEFAULT_CONFIG, QUICK_CONFIG, run_neural_validation = (neural.DEFAULT_CONFIG, neural.QUICK_CONFIG,
                                                           neural.run_neural_validation)

    defaults = QUICK_CONFIG if args.quick else DEFAULT_CONFIG
    chosen = {key: getattr(args, key) for key in ("dataset", "models", "methods", "learning_rates", "seeds", "rhos",
                                                  "epochs", "batch_size", "momentum", "weight_decay", "n_samples",
                                                  "sharpness_every", "sharpness_samples", "hessian_samples",
                                                  "spectrum_seeds")}
    settings = {**defaults, **{key: value for key, value in chosen.items() if value is not None}}
    device = args.device or ("cpu" if args.quick else "auto")
    results = run_neural_validation(**settings, adaptive=args.adaptive, truncate=args.truncate, device=device,
                                    dtype=args.dtype, threads=args.threads, output=args.output, csv=args.csv,
                                    progress=False if args.no_progress else None)
    if args.json:
        emit([results], True)
        return 0
    rows = [{"model": c["model"], "method": c["method"], "paper": c["paper_name"], "rho": c["rho"], "lr": c["lr"],
             "diverged": f"{c['n_diverged']}/{c['n_runs']}", "collapsed": f"{c['n_collapsed']}/{c['n_runs']}",
             "train_loss": c["final_train_loss_median"], "test_acc": c["test_accuracy_mean"],
             "lambda_max": c["top_hessian_eigenvalue_median"], "lam/edge": c["edge_ratio_median"],
             "lam/edge_renorm": c["edge_ratio_renormalized_median"], "gamma": c["gamma_mean"],
             "ratio_gy_gx": c["grad_ratio_mean"]} for c in results["summary"]]
    print(format_table(rows))
    print()
    print(format_table(results["stability"]))
    if results["comparison"]:
        print()
        print(format_table(results["comparison"]))
    if args.output:
        print(f"\nresults written to {args.output}")
    return 0
