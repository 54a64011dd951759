r"""Neural validation: SAM, USAM and StableSAM training small networks over a learning-rate grid.

An experiment of the repository, next to the figure scripts: ``samtheory neural`` loads this file from the
repository it runs in (:func:`samtheory.repository.load_experiment`), and so does ``experiments/fig_neural.py``.

:func:`run_neural_validation` trains a small MLP and a small 1-D CNN on MNIST-1D (Greydanus 2020), generated
locally by the ``mnist1d`` package (no download), or on scikit-learn's ``digits`` (bundled with sklearn), for
every (model, method, learning rate, seed), with :class:`~samtheory.torch.SAMOptimizer` over plain SGD
(optionally with momentum); both gradients of a step use the same minibatch. It answers docs/theory.md O5 on
networks: at which learning rates does SAM/USAM training become unstable where StableSAM does not, and does
StableSAM match SAM where both are stable? ``samtheory neural`` runs it from the command line.

A run *diverged* at the first step whose minibatch loss is not finite or exceeds ``divergence_factor`` times
the initial full training loss (checked at the end of each epoch, on the device, so that a step needs no host
synchronization); training stops at the end of that epoch and the final values are measured there.

JSON schema (``schema = "samtheory.neural/1"``), the file written by ``output=`` and read by the neural figure::

    {
      "schema": "samtheory.neural/1",
      "config": {"dataset": str, "n_train": int, "n_test": int, "models": [str], "methods": [str],
                 "learning_rates": [float], "seeds": [int], "rho": float, "epochs": int, "batch_size": int,
                 "momentum": float, "adaptive": bool, "truncate": bool, "width": int, "channels": int,
                 "divergence_factor": float, "hessian_samples": int, "device": str, "dtype": str,
                 "threads": int | null, "torch_version": str, "samtheory_version": str},
      "runs": [                                  # one per (model, method, lr, seed), in that nesting order
        {"model": "mlp" | "cnn", "method": "gd" | "sam" | "usam" | "ssam" | "susam", "lr": float,
         "seed": int, "rho": float,
         "diverged": bool, "diverged_at": int | null,   # step index (0-based) where divergence was detected
         "steps": int,                                 # steps taken (fewer than planned after divergence)
         "initial_train_loss": float,                  # full training set at initialization (≈ ln 10: a
                                                       #   final loss near it means training collapsed)
         "final_train_loss": float | null,             # full training set, at the final parameters;
         "train_accuracy": float | null,               #   null where not finite
         "test_accuracy": float | null,
         "top_hessian_eigenvalue": float | null,       # λ_max of the training loss at the end (Lanczos,
                                                       #   float64, on hessian_samples samples); null if diverged
         "grad_ratio_mean": float | null,              # mean over steps of ‖g(y)‖/‖g(x)‖ (1 for gd)
         "gamma_mean": float, "gamma_min": float, "gamma_max": float,   # γ (1 for gd, sam, usam)
         "history": {"epoch": [int], "step": [int],    # per epoch completed without divergence: means
                     "train_loss": [float | null], "grad_ratio": [float | null], "gamma": [float | null]},
         "wall_time_s": float}
      ],
      "summary": [                               # one per (model, method, lr), over seeds
        {"model", "method", "lr", "n_runs", "n_diverged", "final_train_loss_median", "test_accuracy_mean",
         "top_hessian_eigenvalue_median", "gamma_mean", "grad_ratio_mean"}
      ],
      "stability": [                             # one per (model, method)
        {"model", "method", "first_unstable_lr": float | null,   # smallest lr where some seed diverged
         "largest_stable_lr": float | null}                      # largest lr below it (all seeds finite)
      ],
      "comparison": [                            # StableSAM vs its base where both are stable (no seed diverged)
        {"model", "pair": "ssam-sam" | "susam-usam", "lr", "test_accuracy_difference",   # renormalized − base
         "final_train_loss_ratio"}                                                      # renormalized / base
      ]
    }

A CSV (``csv=``) has one row per run with the scalar fields above.
"""

from __future__ import annotations

import copy
import csv as _csv
import json
import math
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from samtheory import __version__
from samtheory import validation as check
from samtheory.torch import METHOD_NAMES, SAMOptimizer, top_hessian_eigenvalue
from samtheory.validation import check_output_file, write_atomically

__all__ = ["run_neural_validation", "load_dataset", "build_model", "train_run", "Dataset", "SCHEMA",
           "QUICK_CONFIG", "DEFAULT_CONFIG", "MODELS", "DATASETS", "CSV_FIELDS"]

SCHEMA = "samtheory.neural/1"
MODELS = ("mlp", "cnn")
DATASETS = ("mnist1d", "digits")
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}

#: ``samtheory neural`` (full run) and ``samtheory neural --quick`` (CPU, a few minutes).
DEFAULT_CONFIG = dict(dataset="mnist1d", models=MODELS, methods=METHOD_NAMES,
                      learning_rates=(0.03, 0.1, 0.3, 1.0, 2.0, 4.0, 6.0, 10.0), seeds=(0, 1, 2), rho=0.05,
                      epochs=20, batch_size=128, n_samples=5000, hessian_samples=1000)
QUICK_CONFIG = dict(dataset="mnist1d", models=MODELS, methods=METHOD_NAMES, learning_rates=(0.1, 1.0, 6.0),
                    seeds=(0,), rho=0.05, epochs=5, batch_size=128, n_samples=3000, hessian_samples=500)

_D = DEFAULT_CONFIG

CSV_FIELDS = ("model", "method", "lr", "seed", "rho", "diverged", "diverged_at", "steps", "initial_train_loss",
              "final_train_loss",
              "train_accuracy", "test_accuracy", "top_hessian_eigenvalue", "grad_ratio_mean", "gamma_mean",
              "gamma_min", "gamma_max", "wall_time_s")


@dataclass(frozen=True)
class Dataset:
    """Standardized inputs (float32, shape (n, length)) and integer labels; ``name`` and class count."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int = 10


def load_dataset(name: str = "mnist1d", n_samples: int = 5000, seed: int = 0) -> Dataset:
    """MNIST-1D generated locally (``mnist1d.data.make_dataset``, 80/20 split; sequences of length 40) or
    scikit-learn's digits (8×8 images flattened to length 64, a seeded 80/20 split). No download."""
    check.choice("dataset", name, DATASETS)
    n_samples = check.as_positive_int("n_samples", n_samples, minimum=20)
    seed = int(check.as_seed_array("seed", seed))
    if name == "mnist1d":
        import random

        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.num_samples, args.seed = n_samples, seed
        numpy_state, python_state = np.random.get_state(), random.getstate()
        try:  # make_dataset seeds the global generators; leave the caller's untouched
            data = make_dataset(args)
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)
        x_train, x_test, y_train, y_test = data["x"], data["x_test"], data["y"], data["y_test"]
    else:
        from sklearn.datasets import load_digits

        digits = load_digits()
        order = np.random.default_rng(seed).permutation(len(digits.target))[:n_samples]
        inputs, labels = digits.data[order], digits.target[order]
        split = int(0.8 * len(labels))
        mean, std = inputs[:split].mean(), inputs[:split].std()
        inputs = (inputs - mean) / std
        x_train, x_test, y_train, y_test = inputs[:split], inputs[split:], labels[:split], labels[split:]
    as_x = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    as_y = lambda a: np.ascontiguousarray(a, dtype=np.int64)  # noqa: E731
    return Dataset(name, as_x(x_train), as_y(y_train), as_x(x_test), as_y(y_test))


def build_model(name: str, input_length: int, n_classes: int = 10, *, width: int = 100,
                channels: int = 16) -> torch.nn.Module:
    """``mlp``: input → width → width → classes with ReLU; ``cnn``: three stride-2 Conv1d + ReLU, then linear."""
    check.choice("model", name, MODELS)
    nn = torch.nn
    if name == "mlp":
        return nn.Sequential(nn.Linear(input_length, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                             nn.Linear(width, n_classes))
    length = input_length
    for _ in range(3):
        length = (length + 1) // 2  # kernel 2p + 1, stride 2, padding p
    return nn.Sequential(
        nn.Unflatten(1, (1, input_length)),
        nn.Conv1d(1, channels, 5, stride=2, padding=2), nn.ReLU(),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(channels * length, n_classes))


def _resolve_device(device: str) -> torch.device:
    check.choice("device", device, ("auto", "cpu", "cuda"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device must be 'cpu' or 'auto' here: CUDA is not available, got 'cuda'")
    return torch.device(device)


def _loss(model, inputs, labels) -> torch.Tensor:
    return F.cross_entropy(model(inputs).float(), labels)


@torch.no_grad()
def _evaluate(model, inputs, labels) -> tuple[float, float]:
    logits = model(inputs).float()
    loss = F.cross_entropy(logits, labels)
    accuracy = (logits.argmax(dim=1) == labels).float().mean()
    return float(loss), float(accuracy)


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def train_run(model_name: str, method: str, lr: float, seed: int, data: Dataset, *, rho: float = _D["rho"],
              epochs: int = _D["epochs"], batch_size: int = _D["batch_size"], momentum: float = 0.0,
              adaptive: bool = False, truncate: bool = False, width: int = 100, channels: int = 16,
              divergence_factor: float = 100.0, hessian_samples: int = _D["hessian_samples"], device="cpu",
              dtype=torch.float32) -> dict:
    """Train one network and return its run record (see the module docstring for the fields).

    The building block of :func:`run_neural_validation`, which checks the grid's arguments once; here only the
    ones a run cannot do without are checked (``SAMOptimizer`` and ``build_model`` check the rest).
    """
    lr = float(check.as_float_array("lr", lr, positive=True))
    epochs = check.as_positive_int("epochs", epochs)
    batch_size = check.as_positive_int("batch_size", batch_size)
    started = time.perf_counter()
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(model_name, data.x_train.shape[1], data.n_classes, width=width, channels=channels)
    model = model.to(device=device, dtype=dtype)
    x_train = torch.as_tensor(data.x_train).to(device=device, dtype=dtype)
    y_train = torch.as_tensor(data.y_train).to(device)
    optimizer = SAMOptimizer(model.parameters(), torch.optim.SGD, method=method, rho=rho, adaptive=adaptive,
                             truncate=truncate, diagnostics=True, lr=lr, momentum=momentum)
    generator = torch.Generator().manual_seed(seed)
    n_train = x_train.shape[0]
    steps_per_epoch = max(1, n_train // batch_size)
    with torch.no_grad():
        initial_loss = _loss(model, x_train, y_train)
    threshold = divergence_factor * initial_loss
    history = {"epoch": [], "step": [], "train_loss": [], "grad_ratio": [], "gamma": []}
    gamma_min, gamma_max = math.inf, -math.inf
    ratio_sum = gamma_sum = 0.0
    diverged_at, steps = None, 0
    for epoch in range(epochs):
        order = torch.randperm(n_train, generator=generator).to(device)
        losses = torch.empty(steps_per_epoch, device=device)
        ratios = torch.empty(steps_per_epoch, device=device)
        gammas = torch.empty(steps_per_epoch, device=device)
        for i in range(steps_per_epoch):
            batch = order[i * batch_size:(i + 1) * batch_size]
            inputs, labels = x_train[batch], y_train[batch]
            optimizer.zero_grad()
            loss = _loss(model, inputs, labels)
            loss.backward()
            optimizer.step(lambda: _loss(model, inputs, labels).backward())
            stats = optimizer.last_stats
            losses[i] = loss.detach()
            ratios[i] = torch.where(stats.grad_norm > 0, stats.ascent_grad_norm / stats.grad_norm, 1.0)
            gammas[i] = 1.0 if stats.gamma is None else stats.gamma
        bad = ~(losses <= threshold)  # NaN counts as bad
        if bool(bad.any()):
            first = int(torch.nonzero(bad)[0, 0])
            diverged_at, steps = epoch * steps_per_epoch + first, (epoch + 1) * steps_per_epoch
            break
        steps = (epoch + 1) * steps_per_epoch
        history["epoch"].append(epoch + 1)
        history["step"].append(steps)
        for key, values in (("train_loss", losses), ("grad_ratio", ratios), ("gamma", gammas)):
            history[key].append(_finite(values.mean()))
        gamma_min, gamma_max = min(gamma_min, float(gammas.min())), max(gamma_max, float(gammas.max()))
        ratio_sum, gamma_sum = ratio_sum + float(ratios.sum()), gamma_sum + float(gammas.sum())

    x_test = torch.as_tensor(data.x_test).to(device=device, dtype=dtype)
    y_test = torch.as_tensor(data.y_test).to(device)
    train_loss, train_accuracy = _evaluate(model, x_train, y_train)
    _, test_accuracy = _evaluate(model, x_test, y_test)
    eigenvalue = None
    finite_parameters = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    if diverged_at is None and finite_parameters and hessian_samples > 0:
        model64 = copy.deepcopy(model).to(torch.float64)
        inputs64, labels64 = x_train[:hessian_samples].to(torch.float64), y_train[:hessian_samples]
        eigenvalue = _finite(top_hessian_eigenvalue(lambda: _loss(model64, inputs64, labels64),
                                                    model64.parameters(), tol=1e-4, seed=seed))
    completed = len(history["epoch"]) * steps_per_epoch
    if diverged_at is not None and not finite_parameters:
        train_loss = train_accuracy = test_accuracy = math.nan
    return {
        "model": model_name, "method": method, "lr": float(lr), "seed": int(seed), "rho": float(rho),
        "diverged": diverged_at is not None, "diverged_at": diverged_at, "steps": steps,
        "initial_train_loss": _finite(initial_loss), "final_train_loss": _finite(train_loss),
        "train_accuracy": _finite(train_accuracy), "test_accuracy": _finite(test_accuracy),
        "top_hessian_eigenvalue": eigenvalue,
        "grad_ratio_mean": _finite(ratio_sum / completed) if completed else None,
        "gamma_mean": _finite(gamma_sum / completed) if completed else None,
        "gamma_min": _finite(gamma_min) if completed else None,
        "gamma_max": _finite(gamma_max) if completed else None,
        "history": history, "wall_time_s": time.perf_counter() - started,
    }


def run_neural_validation(*, dataset: str = _D["dataset"], models=_D["models"], methods=_D["methods"],
                          learning_rates=_D["learning_rates"], seeds=_D["seeds"], rho: float = _D["rho"],
                          epochs: int = _D["epochs"], batch_size: int = _D["batch_size"], momentum: float = 0.0,
                          adaptive: bool = False, truncate: bool = False, n_samples: int = _D["n_samples"],
                          width: int = 100, channels: int = 16, divergence_factor: float = 100.0,
                          hessian_samples: int = _D["hessian_samples"], device: str = "auto",
                          dtype: str = "float32", threads: int | None = None, output=None, csv=None,
                          progress: bool = False) -> dict:
    """Train every (model, method, learning rate, seed) and return the results dict of the module docstring.

    The defaults are :data:`DEFAULT_CONFIG` (``samtheory neural``); :data:`QUICK_CONFIG` is ``--quick``.
    ``output`` (a path) receives the JSON, ``csv`` one row per run: both are checked before any training
    (``ValueError`` for a folder, a path under a file, an unwritable folder) and written atomically. Same
    arguments, same numbers (CPU: bit for bit; CUDA: up to its non-deterministic kernels). ``threads`` sets
    torch's CPU threads for the call (these networks are too small to gain from more than one; None leaves
    the setting). ``progress`` shows a tqdm bar over the runs.
    """
    models = tuple(check.choice("models", m, MODELS) for m in _as_tuple("models", models))
    methods = tuple(check.choice("methods", m, METHOD_NAMES) for m in _as_tuple("methods", methods))
    learning_rates = tuple(float(v) for v in check.as_float_array("learning_rates", learning_rates,
                                                                     positive=True).reshape(-1))
    seeds = tuple(int(s) for s in check.as_seed_array("seeds", seeds).reshape(-1))
    if not learning_rates or not seeds:
        raise ValueError(f"learning_rates and seeds must not be empty, got {learning_rates!r} and {seeds!r}")
    rho = float(check.as_float_array("rho", rho, nonnegative=True))
    momentum = float(check.as_float_array("momentum", momentum, nonnegative=True))
    if momentum >= 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    epochs = check.as_positive_int("epochs", epochs)
    batch_size = check.as_positive_int("batch_size", batch_size)
    width = check.as_positive_int("width", width)
    channels = check.as_positive_int("channels", channels)
    hessian_samples = check.as_positive_int("hessian_samples", hessian_samples, minimum=0)
    divergence_factor = float(check.as_float_array("divergence_factor", divergence_factor, positive=True))
    if divergence_factor <= 1:
        raise ValueError(f"divergence_factor must be > 1, got {divergence_factor!r}")
    check.choice("dtype", dtype, tuple(DTYPES))
    if threads is not None:
        threads = check.as_positive_int("threads", threads)
    for name, flag in (("adaptive", adaptive), ("truncate", truncate), ("progress", progress)):
        if not isinstance(flag, bool):
            raise ValueError(f"{name} must be True or False, got {flag!r}")
    for name, path in (("output", output), ("csv", csv)):
        if path is not None:  # before any training: a bad path must not lose the results
            check_output_file(name, path)
    if output is not None and csv is not None and os.path.abspath(output) == os.path.abspath(csv):
        raise ValueError(f"output and csv must be different files, got {os.fspath(output)!r} for both")
    torch_device = _resolve_device(device)
    data = load_dataset(dataset, n_samples, seed=0)
    if batch_size > len(data.y_train):
        raise ValueError(f"batch_size must be <= the {len(data.y_train)} training samples, got {batch_size}")

    settings = dict(rho=rho, epochs=epochs, batch_size=batch_size, momentum=momentum, adaptive=adaptive,
                    truncate=truncate, width=width, channels=channels, divergence_factor=divergence_factor,
                    hessian_samples=hessian_samples, device=torch_device, dtype=DTYPES[dtype])
    grid = [(m, method, lr, seed) for m in models for method in methods for lr in learning_rates for seed in seeds]
    runs = []
    from tqdm.auto import tqdm

    previous_threads = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        with tqdm(total=len(grid), desc="neural runs", unit="run", disable=not progress) as bar:
            for model_name, method, lr, seed in grid:
                bar.set_postfix_str(f"{model_name} {method} lr={lr:g} seed={seed}")
                runs.append(train_run(model_name, method, lr, seed, data, **settings))
                bar.update()
    finally:
        torch.set_num_threads(previous_threads)

    config = {"dataset": dataset, "n_train": int(len(data.y_train)), "n_test": int(len(data.y_test)),
              "models": list(models), "methods": list(methods), "learning_rates": list(learning_rates),
              "seeds": list(seeds), "rho": rho, "epochs": epochs, "batch_size": batch_size, "momentum": momentum,
              "adaptive": adaptive, "truncate": truncate, "width": width, "channels": channels,
              "divergence_factor": divergence_factor, "hessian_samples": hessian_samples,
              "device": str(torch_device), "dtype": dtype, "threads": threads, "torch_version": torch.__version__,
              "samtheory_version": __version__}
    summary = _summarize(runs)
    results = {"schema": SCHEMA, "config": config, "runs": runs, "summary": summary,
               "stability": _stability(summary), "comparison": _comparison(summary)}
    # Atomic writes: an interrupted or failed write leaves any previous file intact and no partial file.
    if output is not None:
        text = json.dumps(results, indent=1, allow_nan=False) + "\n"
        write_atomically(output, lambda handle: handle.write(text))
    if csv is not None:
        def write_rows(handle):
            writer = _csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(runs)
        write_atomically(csv, write_rows, newline="")
    return results


def _as_tuple(name, values) -> tuple:
    if isinstance(values, str):
        values = (values,)
    try:
        values = tuple(values)
    except TypeError:
        raise ValueError(f"{name} must be a list of names, got {values!r}") from None
    if not values:
        raise ValueError(f"{name} must not be empty")
    return values


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def _summarize(runs: list[dict]) -> list[dict]:
    cells: dict[tuple, list[dict]] = {}
    for run in runs:
        cells.setdefault((run["model"], run["method"], run["lr"]), []).append(run)
    return [{
        "model": model, "method": method, "lr": lr, "n_runs": len(group),
        "n_diverged": sum(r["diverged"] for r in group),
        "final_train_loss_median": _median(r["final_train_loss"] for r in group),
        "test_accuracy_mean": _mean(r["test_accuracy"] for r in group),
        "top_hessian_eigenvalue_median": _median(r["top_hessian_eigenvalue"] for r in group),
        "gamma_mean": _mean(r["gamma_mean"] for r in group),
        "grad_ratio_mean": _mean(r["grad_ratio_mean"] for r in group),
    } for (model, method, lr), group in cells.items()]


def _stability(summary: list[dict]) -> list[dict]:
    rows: dict[tuple, list[dict]] = {}
    for cell in summary:
        rows.setdefault((cell["model"], cell["method"]), []).append(cell)
    out = []
    for (model, method), cells in rows.items():
        cells = sorted(cells, key=lambda c: c["lr"])
        unstable = [c["lr"] for c in cells if c["n_diverged"]]
        first = unstable[0] if unstable else None
        stable = [c["lr"] for c in cells if first is None or c["lr"] < first]
        out.append({"model": model, "method": method, "first_unstable_lr": first,
                    "largest_stable_lr": stable[-1] if stable else None})
    return out


def _comparison(summary: list[dict]) -> list[dict]:
    cells = {(c["model"], c["method"], c["lr"]): c for c in summary}
    out = []
    for (model, method, lr), cell in cells.items():
        base = {"ssam": "sam", "susam": "usam"}.get(method)
        other = cells.get((model, base, lr))
        if other is None or cell["n_diverged"] or other["n_diverged"]:
            continue
        accuracy = (None if cell["test_accuracy_mean"] is None or other["test_accuracy_mean"] is None
                    else cell["test_accuracy_mean"] - other["test_accuracy_mean"])
        loss = (None if not cell["final_train_loss_median"] or not other["final_train_loss_median"]
                else cell["final_train_loss_median"] / other["final_train_loss_median"])
        out.append({"model": model, "pair": f"{method}-{base}", "lr": lr, "test_accuracy_difference": accuracy,
                    "final_train_loss_ratio": loss})
    return out
