"""Argument types, problem options and output shared by the sub-commands."""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

PROBLEMS = ("quadratic", "least-squares", "logistic", "saddle", "factorization")


def float_list(text: str) -> list[float]:
    """'1,10,100' -> [1.0, 10.0, 100.0]; a clear argparse error otherwise."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r:.60}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite comma-separated numbers, got {text!r:.60}")
    return values


def int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r:.60}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r:.60}")
    return values


#: Seeds are integers in [0, 2**32 - 1] (the range every NumPy and SciPy generator accepts).
SEED_MAX = 2**32 - 1


def _seed(text: str, name: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"{name} must be an integer >= 0 and <= 2**32 - 1, got {text!r:.60}")
    return value


def seed_type(name: str):
    """An argparse type for one seed; the message names ``name`` (e.g. ``"seed"``)."""
    def parse(text: str) -> int:
        return _seed(text, name)
    parse.__name__ = name
    return parse


def seed_list(text: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]: comma-separated seeds in [0, 2**32 - 1]."""
    values = [_seed(part.strip(), "seed") for part in text.split(",") if part.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated seeds, got {text!r:.60}")
    return values


def add_problem_arguments(parser: argparse.ArgumentParser, default_eigs: str = "1,10,100") -> None:
    group = parser.add_argument_group("problem")
    group.add_argument("--problem", choices=PROBLEMS, default="quadratic", help="test problem (default: quadratic)")
    group.add_argument("--eigs", type=float_list, default=float_list(default_eigs),
                       help=f"quadratic: Hessian eigenvalues, comma-separated (default: {default_eigs})")
    group.add_argument("--rotation", type=seed_type("rotation"), default=None, metavar="SEED",
                       help="quadratic: rotate the eigenbasis by a random orthogonal matrix drawn from SEED")
    group.add_argument("--n-samples", type=int, default=200, help="least-squares/logistic: samples (default: 200)")
    group.add_argument("--dim", type=int, default=10, help="least-squares/logistic: dimension (default: 10)")
    group.add_argument("--l2", type=float, default=1e-2, help="logistic: L2 regularization (default: 0.01)")
    group.add_argument("--data-seed", type=seed_type("data-seed"), default=0,
                       help="seed of the synthetic data (default: 0)")


def add_base_optimizer_arguments(parser: argparse.ArgumentParser, *, schedule: bool = True) -> None:
    """--momentum, --nesterov, --weight-decay (and --schedule): the engine's base optimizer (docs/theory.md O15)."""
    group = parser.add_argument_group("base optimizer")
    group.add_argument("--momentum", type=float, default=0.0, help="heavy-ball momentum beta in [0, 1) (default: 0)")
    group.add_argument("--nesterov", action="store_true", help="Nesterov momentum (PyTorch's nesterov=True)")
    group.add_argument("--weight-decay", type=float, default=0.0,
                       help="coupled weight decay w >= 0, added to the renormalized gradient (default: 0)")
    if schedule:
        group.add_argument("--schedule", default=None, metavar="NAME[:PARAMS]",
                           help="learning-rate schedule: constant, step:K[:G], cosine:T[:M], warmup:K, inverse, "
                                "power:C:T0:A (default: constant)")


def base_optimizer_from_args(args) -> dict:
    """The base-optimizer keyword arguments of :func:`samtheory.simulate` from the parsed flags."""
    base = {"momentum": args.momentum, "nesterov": args.nesterov, "weight_decay": args.weight_decay}
    if getattr(args, "schedule", None) is not None:
        base["schedule"] = args.schedule
    return base


def problem_from_args(args):
    from .. import _limits, problems
    from ..datasets import make_least_squares, make_logistic_regression

    if args.problem in ("least-squares", "logistic") and args.n_samples > 0 and args.dim > 0:
        _limits.check_memory(f"--n-samples {args.n_samples} --dim {args.dim}",
                             _limits.dataset_bytes(args.n_samples, args.dim))
    if args.problem == "quadratic":
        if args.rotation is not None:  # a dense d × d orthogonal matrix and its QR factorization
            _limits.check_memory(f"--rotation with {len(args.eigs)} eigenvalues", 8 * 4.0 * len(args.eigs) ** 2)
        return problems.Quadratic(args.eigs, rotation=args.rotation)
    if args.problem == "least-squares":
        return make_least_squares(args.n_samples, args.dim, seed=args.data_seed)
    if args.problem == "logistic":
        return make_logistic_regression(args.n_samples, args.dim, l2=args.l2, seed=args.data_seed)
    if args.problem == "saddle":
        return problems.Saddle()
    return problems.ScalarFactorization()


def show_progress() -> bool:
    """Progress bars go to stderr, and only when it is a terminal (as ``samtheory figures`` does)."""
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def progress_bar(iterable, desc: str, unit: str, total: int | None = None):
    """A tqdm bar over ``iterable`` on stderr, shown only when stderr is a terminal, removed when done."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, unit=unit, total=total, disable=not show_progress(), leave=False,
                file=sys.stderr)


def strict_json(value):
    """``value`` with NumPy scalars and arrays made plain and every non-finite float replaced by None, so that
    ``json.dumps(..., allow_nan=False)`` always succeeds: the output is strict JSON (RFC 8259 has no NaN or
    Infinity). Each command documents the status field that tells why a value is ``null``."""
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    if isinstance(value, np.ndarray):
        return strict_json(value.tolist())
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def dumps(value, **options) -> str:
    """Strict JSON text of ``value`` (see :func:`strict_json`)."""
    return json.dumps(strict_json(value), allow_nan=False, **options)


def emit(rows: list[dict], as_json: bool, columns: list[str] | None = None) -> None:
    """Print rows as strict JSON (one object for one row, else a list; non-finite numbers as null) or as an
    aligned table."""
    if as_json:
        print(dumps(rows[0] if len(rows) == 1 else rows))
        return
    print(format_table(rows, columns))


def format_table(rows: list[dict], columns: list[str] | None = None) -> str:
    columns = columns or list(rows[0])
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
