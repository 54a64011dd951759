r"""Neural validation: does each method's sharpness settle at its own edge of stability on a network?

An experiment of the repository, next to the figure scripts: ``samtheory neural`` loads this file from the
repository it runs in (:func:`samtheory.repository.load_experiment`), and so does ``experiments/fig_neural.py``.

:func:`run_neural_validation` trains a 1-D CNN (three 5-tap convolutions, global max pooling, linear; or a
2-hidden-layer MLP) on MNIST-1D (Greydanus 2020), generated locally by the ``mnist1d`` package (no download), or
on scikit-learn's bundled ``digits``, for every (model, method, ρ, learning rate, seed), with
:class:`~samtheory.torch.SAMOptimizer` over the paper's base optimizer, SGD with momentum 0.9 and weight decay
5e-4; both gradients of a step use the same minibatch. The methods carry the paper's names
(:attr:`samtheory.MethodSpec.paper_name`): its SAM is ``usam``, SSAM ``susam``, SAM† ``sam``, SSAM† ``ssam``.

**Sharpness during training** (docs/theory.md O12, with O15's momentum): every ``sharpness_every`` steps,
λ_max of the loss on a fixed subset of ``sharpness_samples`` training samples, by Hessian-vector products and
Lanczos (:func:`samtheory.torch.top_hessian_eigenvalue`, float32, relative tolerance 1e-3), next to the edge
each method predicts, :func:`samtheory.theory.edge_sharpness` with the run's β and w: GD 2(1 + β)/η (− w);
USAM λ* of O2 solving λ(1 + ρλ) = 2(1 + β)/η (− w); SAM λ_edge(‖g‖) of O3 at the mean minibatch ‖g(x)‖ of
the steps since the last measurement. ``edge`` is the base's formula (ssam uses sam's, susam usam's);
``edge_renormalized`` is the same formula at step γ̄η, γ̄ the mean renormalization factor over those steps
(equal to ``edge`` for gd, sam, usam): whether StableSAM's renormalization moves the edge is whether the
measured λ_max follows ``edge_renormalized`` rather than ``edge``. ``edge_ratio`` summarizes a run: the median
of λ_max/edge over the measurements in the second half of training (the last measurement is at the final parameters when
``sharpness_every`` divides the number of steps). At the end, for the runs of the first ``spectrum_seeds``
seeds only (a float64 spectrum costs more than training the network), the top eigenvalue (float64, tolerance
1e-4), the Hessian trace (Hutchinson) and the spectral density (stochastic Lanczos quadrature) of the loss on
``hessian_samples`` training samples.

A run's ``status`` uses the engine's words: *diverged* at the first step whose minibatch loss is not finite or
exceeds ``divergence_factor`` times the initial full training loss (checked at the end of each epoch, on the
device; training stops there and the final values are measured there); otherwise *converged* if the final
full training loss is at most a tenth of the initial one, else *bounded*. A finite run *collapsed* when its
final full training loss is no better than the uniform guess's ln 10 (at least ln 10 − 0.01): with momentum 0.9
a network past its edge typically dies this way (its output turns constant) instead of diverging, so the stability
table counts both.

JSON schema (``schema = "samtheory.neural/2"``; /1 had one ρ, no momentum default, no sharpness trajectory),
the file written by ``output=`` and read by the neural figure::

    {
      "schema": "samtheory.neural/2",
      "config": {"dataset": str, "n_train": int, "n_test": int, "models": [str], "methods": [str],
                 "paper_names": {method: str},              # gd: "GD", usam: "SAM", susam: "SSAM", ...
                 "learning_rates": [float], "seeds": [int], "rhos": [float], "epochs": int, "batch_size": int,
                 "momentum": float, "weight_decay": float, "adaptive": bool, "truncate": bool, "width": int,
                 "channels": int, "divergence_factor": float, "sharpness_every": int,
                 "sharpness_samples": int, "hessian_samples": int, "spectrum_seeds": int,
                 "hutchinson_probes": int, "slq_steps": int, "device": str, "dtype": str,
                 "threads": int | null, "torch_version": str, "samtheory_version": str},
      "runs": [       # one per (model, method, ρ, lr, seed) in that nesting order; gd once, with rho 0
        {"model": "mlp" | "cnn", "method": "gd" | "sam" | "usam" | "ssam" | "susam", "paper_name": str,
         "lr": float, "seed": int, "rho": float,
         "status": "converged" | "bounded" | "diverged",
         "diverged": bool, "diverged_at": int | null,   # step index (0-based) where divergence was detected
         "collapsed": bool,                            # finite, but the final loss ≥ ln(classes) − 0.01
         "steps": int,                                 # steps taken (fewer than planned after divergence)
         "initial_train_loss": float,                  # full training set at initialization (≈ ln 10)
         "final_train_loss": float | null,             # full training set, at the final parameters;
         "train_accuracy": float | null,               #   null where not finite
         "test_accuracy": float | null,
         "top_hessian_eigenvalue": float | null,       # final λ_max (float64, hessian_samples samples),
         "hessian_trace": float | null,                #   trace and its standard error (Hutchinson):
         "hessian_trace_error": float | null,          #   null if diverged, skipped, or not a spectrum seed
         "spectral_density": {"nodes": [float], "weights": [float]} | null,   # SLQ; weights sum to 1
         "edge_ratio": float | null,                   # median late λ_max / edge
         "edge_ratio_renormalized": float | null,      # median late λ_max / edge_renormalized
         "grad_ratio_mean": float | null,              # mean over steps of ‖g(y)‖/‖g(x)‖ (1 for gd)
         "gamma_mean": float, "gamma_min": float, "gamma_max": float,   # γ (1 for gd, sam, usam)
         "history": {"epoch": [int], "step": [int],    # per epoch completed without divergence: means
                     "train_loss": [float | null], "grad_ratio": [float | null], "gamma": [float | null],
                     "test_accuracy": [float | null]},
         "sharpness": {"step": [int], "lambda_max": [float | null],     # every sharpness_every steps
                       "grad_norm": [float | null], "gamma": [float | null],   # window means
                       "edge": [float | null], "edge_renormalized": [float | null]},
         "wall_time_s": float}
      ],
      "summary": [    # one per (model, method, ρ, lr), over seeds
        {"model", "method", "paper_name", "rho", "lr", "n_runs", "n_diverged", "n_collapsed",
         "final_train_loss_median",
         "test_accuracy_mean", "test_accuracy_std", "top_hessian_eigenvalue_median", "edge_ratio_median",
         "edge_ratio_renormalized_median", "gamma_mean", "grad_ratio_mean"}
      ],
      "stability": [  # one per (model, method, ρ)
        {"model", "method", "paper_name", "rho",
         "first_unstable_lr": float | null,            # smallest lr where a seed diverged or collapsed
         "largest_stable_lr": float | null,            # largest lr below it
         "best_lr": float | null, "best_test_accuracy": float | null}                # best mean test accuracy
      ],
      "comparison": [ # StableSAM vs its base where both are stable (no seed diverged or collapsed)
        {"model", "pair": "ssam-sam" | "susam-usam", "paper_pair": "SSAM†-SAM†" | "SSAM-SAM", "rho", "lr",
         "test_accuracy_difference",                   # renormalized − base
         "final_train_loss_ratio",                     # renormalized / base
         "edge_ratio_renormalized", "edge_ratio_base"}  # the two methods' edge_ratio_median
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
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from samtheory import __version__, resolve_method
from samtheory import theory
from samtheory import validation as check
from samtheory.torch import (METHOD_NAMES, SAMOptimizer, hessian_spectral_density, hessian_trace,
                             top_hessian_eigenvalue)
from samtheory.validation import check_output_file, write_atomically

__all__ = ["run_neural_validation", "load_dataset", "build_model", "train_run", "predicted_edges", "Dataset",
           "SCHEMA", "QUICK_CONFIG", "DEFAULT_CONFIG", "MODELS", "DATASETS", "CSV_FIELDS", "PAPER_NAMES"]

SCHEMA = "samtheory.neural/2"
MODELS = ("cnn", "mlp")
DATASETS = ("mnist1d", "digits")
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}
#: The paper's names of our methods (its SAM is our usam, its SAM† our sam).
PAPER_NAMES = {name: resolve_method(name).paper_name or resolve_method(name).label for name in METHOD_NAMES}
#: Sharpness tracking: Lanczos relative tolerance during training (float32) and at the end (float64).
TRACKING_TOL, FINAL_TOL = 1e-3, 1e-4
#: ``converged``: the final full training loss is at most this fraction of the initial one.
CONVERGED_FRACTION = 0.1
#: ``collapsed``: a finite run whose final full training loss is at least ln(classes) minus this margin.
COLLAPSED_MARGIN = 0.01

#: ``samtheory neural`` (full run) and ``samtheory neural --quick`` (CPU, about a minute).
DEFAULT_CONFIG = dict(dataset="mnist1d", models=("cnn",), methods=METHOD_NAMES,
                      learning_rates=(0.03, 0.1, 0.2, 0.4), seeds=(0, 1, 2), rhos=(0.05, 0.1), epochs=6,
                      batch_size=128, n_samples=3000, momentum=0.9, weight_decay=5e-4, sharpness_every=18,
                      sharpness_samples=128, hessian_samples=128, spectrum_seeds=1, hutchinson_probes=16,
                      slq_steps=30)
QUICK_CONFIG = dict(dataset="mnist1d", models=("cnn",), methods=METHOD_NAMES, learning_rates=(0.1, 3.0),
                    seeds=(0,), rhos=(0.05,), epochs=2, batch_size=128, n_samples=1000, momentum=0.9,
                    weight_decay=5e-4, sharpness_every=6, sharpness_samples=64, hessian_samples=128,
                    spectrum_seeds=1, hutchinson_probes=8, slq_steps=12)

_D = DEFAULT_CONFIG

CSV_FIELDS = ("model", "method", "paper_name", "lr", "seed", "rho", "status", "diverged", "diverged_at", "collapsed",
              "steps",
              "initial_train_loss", "final_train_loss", "train_accuracy", "test_accuracy",
              "top_hessian_eigenvalue", "hessian_trace", "hessian_trace_error", "edge_ratio",
              "edge_ratio_renormalized", "grad_ratio_mean", "gamma_mean", "gamma_min", "gamma_max", "wall_time_s")


@dataclass(frozen=True)
class Dataset:
    """Standardized inputs (float32, shape (n, length)) and integer labels; ``name`` and class count."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int = 10


def load_dataset(name: str = "mnist1d", n_samples: int = 4000, seed: int = 0) -> Dataset:
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
                channels: int = 32) -> torch.nn.Module:
    """``cnn``: three Conv1d (kernel 5, padding 2, ``channels`` each) + ReLU, global max pooling, linear;
    ``mlp``: input → width → width → classes with ReLU."""
    check.choice("model", name, MODELS)
    nn = torch.nn
    if name == "mlp":
        return nn.Sequential(nn.Linear(input_length, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                             nn.Linear(width, n_classes))
    return nn.Sequential(
        nn.Unflatten(1, (1, input_length)),
        nn.Conv1d(1, channels, 5, padding=2), nn.ReLU(),
        nn.Conv1d(channels, channels, 5, padding=2), nn.ReLU(),
        nn.Conv1d(channels, channels, 5, padding=2), nn.ReLU(),
        nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(channels, n_classes))


def predicted_edges(method: str, lr: float, rho: float, *, momentum: float, weight_decay: float,
                    grad_norm: float | None, gamma: float | None) -> tuple[float, float]:
    """(edge, edge_renormalized) of the module docstring: :func:`samtheory.theory.edge_sharpness` of the
    method's base (ssam → sam, susam → usam) at step η and at step γη; ``grad_norm`` is needed for sam/ssam."""
    base = {"ssam": "sam", "susam": "usam"}.get(method, method)
    options = dict(momentum=momentum, weight_decay=weight_decay)
    if base == "sam":
        options["grad_norm"] = grad_norm
    edge = float(theory.edge_sharpness(base, lr, rho, **options))
    if base == method or gamma is None:
        return edge, edge
    return edge, float(theory.edge_sharpness(method, lr, rho, gamma=gamma, **options))


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
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _all_finite(model) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _final_spectrum(model, inputs, labels, *, seed: int, probes: int, steps: int) -> dict:
    """λ_max, the Hutchinson trace and the SLQ density of the loss, in float64."""
    model64 = copy.deepcopy(model).to(torch.float64)
    inputs64 = inputs.to(torch.float64)
    loss_fn = lambda: _loss(model64, inputs64, labels)  # noqa: E731
    out = {"top_hessian_eigenvalue": _finite(top_hessian_eigenvalue(loss_fn, model64.parameters(), tol=FINAL_TOL,
                                                                     seed=seed))}
    trace, error = hessian_trace(loss_fn, model64.parameters(), probes=probes, seed=seed)
    nodes, weights = hessian_spectral_density(loss_fn, model64.parameters(), steps=steps, seed=seed)
    out.update(hessian_trace=_finite(trace), hessian_trace_error=_finite(error),
               spectral_density={"nodes": [float(v) for v in nodes], "weights": [float(v) for v in weights]})
    return out


def train_run(model_name: str, method: str, lr: float, seed: int, data: Dataset, *, rho: float = 0.05,
              epochs: int = _D["epochs"], batch_size: int = _D["batch_size"], momentum: float = _D["momentum"],
              weight_decay: float = _D["weight_decay"], adaptive: bool = False, truncate: bool = False,
              width: int = 100, channels: int = 32, divergence_factor: float = 100.0,
              sharpness_every: int = _D["sharpness_every"], sharpness_samples: int = _D["sharpness_samples"],
              hessian_samples: int = _D["hessian_samples"], spectrum: bool = False,
              hutchinson_probes: int = _D["hutchinson_probes"], slq_steps: int = _D["slq_steps"], device="cpu",
              dtype=torch.float32) -> dict:
    """Train one network and return its run record (see the module docstring for the fields).

    The building block of :func:`run_neural_validation`, which checks the grid's arguments once; here only the
    ones a run cannot do without are checked (``SAMOptimizer`` and ``build_model`` check the rest).
    ``sharpness_every`` 0 skips the tracking; ``spectrum`` (with ``hessian_samples`` > 0) computes the final
    λ_max, trace and density.
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
    x_test = torch.as_tensor(data.x_test).to(device=device, dtype=dtype)
    y_test = torch.as_tensor(data.y_test).to(device)
    optimizer = SAMOptimizer(model.parameters(), torch.optim.SGD, method=method, rho=rho, adaptive=adaptive,
                             truncate=truncate, diagnostics=True, lr=lr, momentum=momentum,
                             weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    n_train = x_train.shape[0]
    steps_per_epoch = max(1, n_train // batch_size)
    # Tracking in float32 (bfloat16 would be too coarse for Lanczos), on a fixed subset of the training set.
    tracked_x = x_train[:sharpness_samples].float() if sharpness_every else None
    tracked_y = y_train[:sharpness_samples]
    tracked_model = copy.deepcopy(model).float() if dtype != torch.float32 and sharpness_every else model
    with torch.no_grad():
        initial_loss = _loss(model, x_train, y_train)
    threshold = divergence_factor * initial_loss
    history = {"epoch": [], "step": [], "train_loss": [], "grad_ratio": [], "gamma": [], "test_accuracy": []}
    sharpness = {"step": [], "lambda_max": [], "grad_norm": [], "gamma": [], "edge": [], "edge_renormalized": []}
    gamma_min, gamma_max = math.inf, -math.inf
    ratio_sum = gamma_sum = 0.0
    window_norm = torch.zeros((), device=device, dtype=torch.float64)
    window_gamma = torch.zeros((), device=device, dtype=torch.float64)
    window = 0
    diverged_at, steps = None, 0

    def measure(step: int, last_loss: torch.Tensor) -> None:
        grad_norm = float(window_norm / window)
        gamma = float(window_gamma / window)
        value = None
        if bool(last_loss <= threshold) and _all_finite(model):  # else the epoch's check stops the run
            if tracked_model is not model:
                tracked_model.load_state_dict(model.state_dict())
            value = _finite(top_hessian_eigenvalue(lambda: _loss(tracked_model, tracked_x, tracked_y),
                                                   tracked_model.parameters(), tol=TRACKING_TOL, seed=seed))
        edge, renormalized = (predicted_edges(method, lr, rho, momentum=momentum, weight_decay=weight_decay,
                                              grad_norm=grad_norm, gamma=gamma)
                              if math.isfinite(grad_norm) and math.isfinite(gamma) and gamma > 0 else (None, None))
        for key, item in (("step", step), ("lambda_max", value), ("grad_norm", _finite(grad_norm)),
                          ("gamma", _finite(gamma)), ("edge", _finite(edge)),
                          ("edge_renormalized", _finite(renormalized))):
            sharpness[key].append(item)

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
            window_norm += stats.grad_norm.double()
            window_gamma += gammas[i].double()
            window += 1
            step = epoch * steps_per_epoch + i + 1
            if sharpness_every and step % sharpness_every == 0:
                measure(step, losses[i])
                window_norm.zero_()
                window_gamma.zero_()
                window = 0
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
        history["test_accuracy"].append(_finite(_evaluate(model, x_test, y_test)[1]))
        gamma_min, gamma_max = min(gamma_min, float(gammas.min())), max(gamma_max, float(gammas.max()))
        ratio_sum, gamma_sum = ratio_sum + float(ratios.sum()), gamma_sum + float(gammas.sum())

    train_loss, train_accuracy = _evaluate(model, x_train, y_train)
    _, test_accuracy = _evaluate(model, x_test, y_test)
    spectra = {"top_hessian_eigenvalue": None, "hessian_trace": None, "hessian_trace_error": None,
               "spectral_density": None}
    finite_parameters = _all_finite(model)
    if spectrum and diverged_at is None and finite_parameters and hessian_samples > 0:
        spectra.update(_final_spectrum(model, x_train[:hessian_samples], y_train[:hessian_samples], seed=seed,
                                       probes=hutchinson_probes, steps=slq_steps))
    completed = len(history["epoch"]) * steps_per_epoch
    if diverged_at is not None and not finite_parameters:
        train_loss = train_accuracy = test_accuracy = math.nan
    if diverged_at is not None:
        status = "diverged"
    else:
        status = "converged" if train_loss <= CONVERGED_FRACTION * float(initial_loss) else "bounded"
    return {
        "model": model_name, "method": method, "paper_name": PAPER_NAMES.get(method, method), "lr": float(lr),
        "seed": int(seed), "rho": float(rho), "status": status,
        "diverged": diverged_at is not None, "diverged_at": diverged_at,
        "collapsed": diverged_at is None and train_loss >= math.log(data.n_classes) - COLLAPSED_MARGIN,
        "steps": steps,
        "initial_train_loss": _finite(initial_loss), "final_train_loss": _finite(train_loss),
        "train_accuracy": _finite(train_accuracy), "test_accuracy": _finite(test_accuracy),
        **spectra,
        "edge_ratio": _late_ratio(sharpness, "edge", steps),
        "edge_ratio_renormalized": _late_ratio(sharpness, "edge_renormalized", steps),
        "grad_ratio_mean": _finite(ratio_sum / completed) if completed else None,
        "gamma_mean": _finite(gamma_sum / completed) if completed else None,
        "gamma_min": _finite(gamma_min) if completed else None,
        "gamma_max": _finite(gamma_max) if completed else None,
        "history": history, "sharpness": sharpness, "wall_time_s": time.perf_counter() - started,
    }


def _late_ratio(sharpness: dict, edge_key: str, steps: int) -> float | None:
    """Median of λ_max / edge over the measurements in the second half of the run's steps."""
    ratios = [value / edge for step, value, edge in zip(sharpness["step"], sharpness["lambda_max"],
                                                         sharpness[edge_key])
              if step > steps / 2 and value is not None and edge]
    return float(np.median(ratios)) if ratios else None


def run_neural_validation(*, dataset: str = _D["dataset"], models=_D["models"], methods=_D["methods"],
                          learning_rates=_D["learning_rates"], seeds=_D["seeds"], rhos=_D["rhos"],
                          epochs: int = _D["epochs"], batch_size: int = _D["batch_size"],
                          momentum: float = _D["momentum"], weight_decay: float = _D["weight_decay"],
                          adaptive: bool = False, truncate: bool = False, n_samples: int = _D["n_samples"],
                          width: int = 100, channels: int = 32, divergence_factor: float = 100.0,
                          sharpness_every: int = _D["sharpness_every"],
                          sharpness_samples: int = _D["sharpness_samples"],
                          hessian_samples: int = _D["hessian_samples"], spectrum_seeds: int = _D["spectrum_seeds"],
                          hutchinson_probes: int = _D["hutchinson_probes"], slq_steps: int = _D["slq_steps"],
                          device: str = "auto",
                          dtype: str = "float32", threads: int | None = 1, output=None, csv=None,
                          progress: bool | None = None) -> dict:
    """Train every (model, method, ρ, learning rate, seed) and return the results dict of the module docstring.

    The defaults are :data:`DEFAULT_CONFIG` (``samtheory neural``); :data:`QUICK_CONFIG` is ``--quick``.
    ``gd`` ignores ρ and runs once per learning rate and seed (with ``rho`` 0). ``output`` (a path) receives the
    JSON, ``csv`` one row per run: both are checked before any training (``ValueError`` for a folder, a path
    under a file, an unwritable folder) and written atomically. Same arguments, same numbers (CPU: bit for bit;
    CUDA: up to its non-deterministic kernels). ``threads`` sets torch's CPU threads for the call (default 1:
    these networks are too small to gain from more, and one thread makes the numbers independent of the
    machine; None leaves the setting). ``progress``: a tqdm bar over the runs on stderr (None: when stderr is a
    terminal).
    """
    models = tuple(check.choice("models", m, MODELS) for m in _as_tuple("models", models))
    methods = tuple(check.choice("methods", m, METHOD_NAMES) for m in _as_tuple("methods", methods))
    learning_rates = tuple(float(v) for v in check.as_float_array("learning_rates", learning_rates,
                                                                     positive=True).reshape(-1))
    seeds = tuple(int(s) for s in check.as_seed_array("seeds", seeds).reshape(-1))
    rhos = tuple(float(v) for v in check.as_float_array("rhos", rhos, nonnegative=True).reshape(-1))
    if not learning_rates or not seeds or not rhos:
        raise ValueError(f"learning_rates, seeds and rhos must not be empty, got {learning_rates!r}, {seeds!r} "
                         f"and {rhos!r}")
    momentum = float(check.as_float_array("momentum", momentum, nonnegative=True))
    if momentum >= 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    weight_decay = float(check.as_float_array("weight_decay", weight_decay, nonnegative=True))
    epochs = check.as_positive_int("epochs", epochs)
    batch_size = check.as_positive_int("batch_size", batch_size)
    width = check.as_positive_int("width", width)
    channels = check.as_positive_int("channels", channels)
    sharpness_every = check.as_positive_int("sharpness_every", sharpness_every, minimum=0)
    sharpness_samples = check.as_positive_int("sharpness_samples", sharpness_samples)
    hessian_samples = check.as_positive_int("hessian_samples", hessian_samples, minimum=0)
    spectrum_seeds = check.as_positive_int("spectrum_seeds", spectrum_seeds, minimum=0)
    hutchinson_probes = check.as_positive_int("hutchinson_probes", hutchinson_probes, minimum=2)
    slq_steps = check.as_positive_int("slq_steps", slq_steps)
    divergence_factor = float(check.as_float_array("divergence_factor", divergence_factor, positive=True))
    if divergence_factor <= 1:
        raise ValueError(f"divergence_factor must be > 1, got {divergence_factor!r}")
    check.choice("dtype", dtype, tuple(DTYPES))
    if threads is not None:
        threads = check.as_positive_int("threads", threads)
    for name, flag in (("adaptive", adaptive), ("truncate", truncate)):
        if not isinstance(flag, bool):
            raise ValueError(f"{name} must be True or False, got {flag!r}")
    if progress is not None and not isinstance(progress, bool):
        raise ValueError(f"progress must be True, False or None, got {progress!r}")
    for name, path in (("output", output), ("csv", csv)):
        if path is not None:  # before any training: a bad path must not lose the results
            check_output_file(name, path)
    if output is not None and csv is not None and os.path.abspath(output) == os.path.abspath(csv):
        raise ValueError(f"output and csv must be different files, got {os.fspath(output)!r} for both")
    torch_device = _resolve_device(device)
    data = load_dataset(dataset, n_samples, seed=0)
    if batch_size > len(data.y_train):
        raise ValueError(f"batch_size must be <= the {len(data.y_train)} training samples, got {batch_size}")

    settings = dict(epochs=epochs, batch_size=batch_size, momentum=momentum, weight_decay=weight_decay,
                    adaptive=adaptive, truncate=truncate, width=width, channels=channels,
                    divergence_factor=divergence_factor, sharpness_every=sharpness_every,
                    sharpness_samples=sharpness_samples, hessian_samples=hessian_samples,
                    hutchinson_probes=hutchinson_probes, slq_steps=slq_steps, device=torch_device,
                    dtype=DTYPES[dtype])
    grid = [(m, method, rho, lr, seed) for m in models for method in methods
            for rho in ((0.0,) if method == "gd" else rhos) for lr in learning_rates for seed in seeds]
    spectrum_for = set(seeds[:spectrum_seeds])
    runs = []
    from tqdm.auto import tqdm

    previous_threads = torch.get_num_threads()
    show = sys.stderr.isatty() if progress is None else progress
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        with tqdm(total=len(grid), desc="neural runs", unit="run", disable=not show, file=sys.stderr) as bar:
            for model_name, method, rho, lr, seed in grid:
                bar.set_postfix_str(f"{model_name} {method} rho={rho:g} lr={lr:g} seed={seed}")
                runs.append(train_run(model_name, method, lr, seed, data, rho=rho, spectrum=seed in spectrum_for,
                                      **settings))
                bar.update()
    finally:
        torch.set_num_threads(previous_threads)

    config = {"dataset": dataset, "n_train": int(len(data.y_train)), "n_test": int(len(data.y_test)),
              "models": list(models), "methods": list(methods),
              "paper_names": {m: PAPER_NAMES[m] for m in methods}, "learning_rates": list(learning_rates),
              "seeds": list(seeds), "rhos": list(rhos), "epochs": epochs, "batch_size": batch_size,
              "momentum": momentum, "weight_decay": weight_decay, "adaptive": adaptive, "truncate": truncate,
              "width": width, "channels": channels, "divergence_factor": divergence_factor,
              "sharpness_every": sharpness_every, "sharpness_samples": sharpness_samples,
              "hessian_samples": hessian_samples, "spectrum_seeds": spectrum_seeds,
              "hutchinson_probes": hutchinson_probes, "slq_steps": slq_steps, "device": str(torch_device),
              "dtype": dtype, "threads": threads, "torch_version": torch.__version__,
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


def _present(values) -> list[float]:
    return [v for v in values if v is not None]


def _mean(values) -> float | None:
    values = _present(values)
    return float(np.mean(values)) if values else None


def _std(values) -> float | None:
    values = _present(values)
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def _median(values) -> float | None:
    values = _present(values)
    return float(np.median(values)) if values else None


def _summarize(runs: list[dict]) -> list[dict]:
    cells: dict[tuple, list[dict]] = {}
    for run in runs:
        cells.setdefault((run["model"], run["method"], run["rho"], run["lr"]), []).append(run)
    return [{
        "model": model, "method": method, "paper_name": PAPER_NAMES.get(method, method), "rho": rho, "lr": lr,
        "n_runs": len(group), "n_diverged": sum(r["diverged"] for r in group),
        "n_collapsed": sum(r["collapsed"] for r in group),
        "final_train_loss_median": _median(r["final_train_loss"] for r in group),
        "test_accuracy_mean": _mean(r["test_accuracy"] for r in group),
        "test_accuracy_std": _std(r["test_accuracy"] for r in group),
        "top_hessian_eigenvalue_median": _median(r["top_hessian_eigenvalue"] for r in group),
        "edge_ratio_median": _median(r["edge_ratio"] for r in group),
        "edge_ratio_renormalized_median": _median(r["edge_ratio_renormalized"] for r in group),
        "gamma_mean": _mean(r["gamma_mean"] for r in group),
        "grad_ratio_mean": _mean(r["grad_ratio_mean"] for r in group),
    } for (model, method, rho, lr), group in cells.items()]


def _unstable(cell: dict) -> bool:
    return bool(cell["n_diverged"] or cell["n_collapsed"])


def _stability(summary: list[dict]) -> list[dict]:
    rows: dict[tuple, list[dict]] = {}
    for cell in summary:
        rows.setdefault((cell["model"], cell["method"], cell["rho"]), []).append(cell)
    out = []
    for (model, method, rho), cells in rows.items():
        cells = sorted(cells, key=lambda c: c["lr"])
        unstable = [c["lr"] for c in cells if _unstable(c)]
        first = unstable[0] if unstable else None
        stable = [c["lr"] for c in cells if first is None or c["lr"] < first]
        scored = [c for c in cells if c["test_accuracy_mean"] is not None and not _unstable(c)]
        best = max(scored, key=lambda c: c["test_accuracy_mean"]) if scored else None
        out.append({"model": model, "method": method, "paper_name": PAPER_NAMES.get(method, method), "rho": rho,
                    "first_unstable_lr": first, "largest_stable_lr": stable[-1] if stable else None,
                    "best_lr": best["lr"] if best else None,
                    "best_test_accuracy": best["test_accuracy_mean"] if best else None})
    return out


def _comparison(summary: list[dict]) -> list[dict]:
    cells = {(c["model"], c["method"], c["rho"], c["lr"]): c for c in summary}
    out = []
    for (model, method, rho, lr), cell in cells.items():
        base = {"ssam": "sam", "susam": "usam"}.get(method)
        other = cells.get((model, base, rho, lr))
        if other is None or _unstable(cell) or _unstable(other):
            continue
        accuracy = (None if cell["test_accuracy_mean"] is None or other["test_accuracy_mean"] is None
                    else cell["test_accuracy_mean"] - other["test_accuracy_mean"])
        loss = (None if not cell["final_train_loss_median"] or not other["final_train_loss_median"]
                else cell["final_train_loss_median"] / other["final_train_loss_median"])
        out.append({"model": model, "pair": f"{method}-{base}",
                    "paper_pair": f"{PAPER_NAMES[method]}-{PAPER_NAMES[base]}", "rho": rho, "lr": lr,
                    "test_accuracy_difference": accuracy, "final_train_loss_ratio": loss,
                    "edge_ratio_renormalized": cell["edge_ratio_median"], "edge_ratio_base": other["edge_ratio_median"]})
    return out
