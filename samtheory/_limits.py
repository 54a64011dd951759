"""Limits checked before any work: memory estimates made before allocating, and the largest step count.

A request whose estimated memory exceeds the limit is refused with a ``ValueError`` that names the arguments
responsible and the estimate, instead of failing (or being killed) after allocating. The limit is
:data:`DEFAULT_MAX_MEMORY` (8 GiB) unless the environment variable ``SAMTHEORY_MAX_MEMORY`` sets another: a
number of bytes, optionally with a binary suffix K, M, G or T (``SAMTHEORY_MAX_MEMORY=64G``), read at each
call. The estimates count the arrays that the computation keeps alive at its peak (8 bytes a number) and are
meant to be within a factor of about two of the real peak; they are not exact.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np

__all__ = ["DEFAULT_MAX_MEMORY", "MAX_MEMORY_ENV", "MAX_STEPS", "max_memory", "format_bytes", "check_memory",
           "simulate_bytes", "check_simulate", "dataset_bytes", "stability_bytes", "regime_bytes", "pep_bytes",
           "mnist1d_bytes"]

#: Memory limit in bytes when ``SAMTHEORY_MAX_MEMORY`` is not set.
DEFAULT_MAX_MEMORY = 8 * 2**30
#: The environment variable that overrides :data:`DEFAULT_MAX_MEMORY`.
MAX_MEMORY_ENV = "SAMTHEORY_MAX_MEMORY"
#: The largest number of steps of one run (a day and more of work per configuration at a microsecond a step;
#: it also keeps step counts and their sums inside int64).
MAX_STEPS = 10**12

_NUMBER = 8  # bytes of a float64 or int64
_SUFFIXES = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def max_memory() -> int:
    """The memory limit in bytes: ``SAMTHEORY_MAX_MEMORY`` if set, else :data:`DEFAULT_MAX_MEMORY`."""
    text = os.environ.get(MAX_MEMORY_ENV)
    if text is None or not text.strip():
        return DEFAULT_MAX_MEMORY
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([KMGT]?)(?:i?B)?\s*", text, flags=re.IGNORECASE)
    if match is None or float(match[1]) <= 0:
        raise ValueError(f"the environment variable {MAX_MEMORY_ENV} must be a positive number of bytes, "
                         f"optionally with a suffix K, M, G or T (e.g. 64G), got {text[:40]!r}")
    return int(float(match[1]) * _SUFFIXES[match[2].upper()])


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units, e.g. ``'67.1 GiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_memory(what: str, estimate: float) -> None:
    """``ValueError`` when ``estimate`` bytes exceed :func:`max_memory`.

    Parameters
    ----------
    what : str
        The request in the words of the caller, naming the arguments that set its size (the message begins
        with it), e.g. ``"--trials 10000000"``.
    estimate : float
        Estimated peak memory in bytes.
    """
    limit = max_memory()
    if estimate > limit:
        raise ValueError(f"{what} needs about {format_bytes(estimate)} of memory, more than the limit of "
                         f"{format_bytes(limit)} (set the environment variable {MAX_MEMORY_ENV}, e.g. "
                         f"{MAX_MEMORY_ENV}=64G, to raise it)")


def simulate_bytes(n_rows: int, dim: int, steps: int, *, record_every: int = 0, record_iterates: bool = False,
                   n_samples: int | None = None, batch_size: int | None = None, workers: int = 1,
                   chunk_rows: int | None = None, transformed: bool = False) -> float:
    """Estimated peak memory in bytes of :func:`samtheory.simulate` on a batch of ``n_rows`` configurations.

    Parameters
    ----------
    n_rows, dim, steps : int
        Batch size (the broadcast size of eta, rho and seed), problem dimension and number of updates.
    record_every : int
        History stride (0: no history); ``record_iterates`` adds the iterates to it.
    n_samples, batch_size : int or None
        A finite sum's size and minibatch size: a gradient holds a residual per sample and row.
    workers, chunk_rows : int
        Threads and rows per chunk (default: about 2^17 numbers per chunk array, as the engine picks).
    transformed : bool
        The iterates are mapped to a quadratic's eigenbasis and back (a rotated or shifted Quadratic).

    Returns
    -------
    float
        Bytes: per row, the start points, outputs and result copies (2d + 8 numbers, 2d more when
        ``transformed``, and one per worker), the history (5 numbers per record, d more with the iterates)
        and each worker's chunk temporaries (6d + 6 numbers and two per summand per chunk row). Fitted to
        tracemalloc's peak (tests/test_cli_hostile.py checks it stays within a factor of two).
    """
    n_rows, dim, steps = float(n_rows), float(dim), float(steps)
    records = steps // record_every + 1 if record_every else 0.0
    if chunk_rows is None:
        chunk_rows = max(64.0, 2.0**17 // dim)
    chunk_rows = min(float(chunk_rows), math.ceil(n_rows / max(workers, 1)))
    summands = batch_size or n_samples or 0
    per_row = 2 * dim + 8 + workers + (2 * dim if transformed else 0)
    history = records * (5 + (dim if record_iterates else 0))
    chunk = workers * chunk_rows * (6 * dim + 6 + 2 * summands)
    return _NUMBER * (n_rows * (per_row + history) + chunk)


def check_simulate(problem, eta, rho, seed, *, steps, record_every=0, record_iterates=False, batch_size=None,
                   chunk_size=None, workers=None) -> None:
    """Called first by :func:`samtheory.simulate`: ``ValueError`` for more than :data:`MAX_STEPS` steps or a
    batch whose estimated memory exceeds :func:`max_memory`. Arguments that are not yet valid are left to
    simulate's own checks (this one then does nothing)."""
    if isinstance(steps, (int, np.integer)) and not isinstance(steps, bool) and steps > MAX_STEPS:
        raise ValueError(f"steps must be <= {MAX_STEPS:.0e} (samtheory._limits.MAX_STEPS), got {steps}")
    integers = (int, np.integer)
    record_every = 0 if record_every is None else record_every
    if not isinstance(steps, integers) or not isinstance(record_every, integers) or isinstance(steps, bool):
        return  # simulate refuses them, naming the argument
    try:
        shape = np.broadcast_shapes(np.shape(eta), np.shape(rho), np.shape(seed))
        dim, steps, record_every = int(problem.dim), int(steps), int(record_every)
    except (AttributeError, TypeError, ValueError):
        return
    if steps < 1 or record_every < 0:
        return
    n_rows = math.prod(shape)
    workers = workers if isinstance(workers, int) and workers > 0 else os.cpu_count() or 1
    chunk_rows = chunk_size if isinstance(chunk_size, int) and chunk_size > 0 else None
    batch = batch_size if isinstance(batch_size, int) and batch_size > 0 else None
    estimate = simulate_bytes(n_rows, dim, steps, record_every=record_every, record_iterates=bool(record_iterates),
                              n_samples=getattr(problem, "n_samples", None), batch_size=batch, workers=workers,
                              chunk_rows=chunk_rows, transformed=getattr(problem, "eigenvectors", None) is not None
                              or bool(np.any(getattr(problem, "center", 0))))
    records = f", record_every={record_every}: {steps // record_every + 1} records" if record_every else ""
    check_memory(f"simulate with steps={steps}{records}, eta, rho and seed broadcast to shape {shape} ({n_rows} "
                 f"configurations of dimension {dim})", estimate)


def dataset_bytes(n_samples: int, dim: int) -> float:
    """Estimated peak bytes of a synthetic ``n_samples × dim`` data set and its problem (the matrix and two
    numbers per sample; fitted to tracemalloc's peak)."""
    return _NUMBER * float(n_samples) * (float(dim) + 2)


def pep_bytes(steps: int) -> float:
    """Estimated peak bytes of one PEP of ``steps`` iterations: CVXPY's data for about (N + 2)² interpolation
    constraints over an (N + 2)² Gram matrix, about 32 (N + 2)⁴ bytes (measured: 1.3 GB at N = 80)."""
    return 32.0 * (float(steps) + 2) ** 4


def mnist1d_bytes(n_samples: int) -> float:
    """Estimated peak bytes of generating MNIST-1D with ``n_samples`` samples (measured: about 1.25 kB a
    sample with tracemalloc, for the templates, the transformed sequences and the split)."""
    return 1300.0 * float(n_samples)


def regime_bytes(n_points: int, n_rho: int, dim: int, steps: int) -> float:
    """Estimated peak bytes of a regime measurement: the initial points and the largest simulate batch of
    the bisection (four probes per ρ below the non-divergent edge, from every point)."""
    points = _NUMBER * 4.0 * float(n_points) * dim
    return points + simulate_bytes(4.0 * n_rho * n_points, dim, steps)


def stability_bytes(n_trials: int, steps: int, record_every: int, dim: int, n_train: int, n_test: int,
                    n_methods: int) -> float:
    """Estimated peak bytes of :func:`samtheory.stability.stability_experiment`: one simulate call with the
    iterates recorded, the per-method record arrays, the test losses of every recorded iterate and the
    per-example gradients of the largest-gradient bound."""
    records = float(steps // record_every + 2)
    rows = records * n_trials
    run = simulate_bytes(n_trials, dim, steps, record_every=record_every, record_iterates=True, n_samples=n_train)
    kept = _NUMBER * (3.0 * n_methods * rows + 4.0 * rows * dim)
    losses = _NUMBER * 3.0 * rows * n_test
    gradients = _NUMBER * 2.0 * rows * n_train * (dim + 1)
    return run + kept + max(losses, gradients)
