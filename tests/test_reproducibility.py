"""Reproducibility of the committed figures (issue 15): the same numbers and the same bytes whatever the thread
counts and CPU kernels of the process that runs `samtheory figures`.

On a fresh machine 5 of the 18 committed files changed. Measured causes: torch's reductions follow its thread
count (neural), and OpenBLAS, NumPy and torch pick CPU-specific kernels that round differently (pep,
renormalization, uniform_stability; neural). The fixes: the neural figure trains on one torch thread, and every
figure runs in a worker process under `_figures.numeric_environment()` (one thread per library, AVX2 kernels).
"""

import filecmp
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import samtheory
from samtheory import figures as _figures

ROOT = Path(samtheory.__file__).resolve().parents[1]
#: The four figures whose files changed on a fresh machine (the others were already reproduced).
CHANGED = ("neural", "pep", "renormalization", "uniform_stability")
TIMEOUT = 300  # seconds per process; the pair takes about 30 s on 2 busy cores


def _settings(threads: int, *, other_kernels: bool) -> tuple[dict, object]:
    """An environment with ``threads`` threads per library (and other CPU kernels than the native ones), and
    a preexec function that pins the process to ``threads`` cores (so the engine's default workers follow)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    if other_kernels and "OPENBLAS_CORETYPE" in _figures.numeric_environment():  # an x86-64 CPU with AVX2
        # What another x86 CPU would pick: OpenBLAS's Sandy Bridge kernels, NumPy's baseline loops, torch's
        # non-vector ATen kernels. Each is known to change the numbers when it takes effect.
        _, dispatch = _figures._numpy_simd()
        env.update({"OPENBLAS_CORETYPE": "Sandybridge", "NPY_DISABLE_CPU_FEATURES": " ".join(dispatch),
                    "ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"})
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cores) < threads:
        return env, None
    return env, lambda: os.sched_setaffinity(0, cores[:threads])


def _start(argv, threads: int, *, other_kernels: bool = False) -> subprocess.Popen:
    env, pin = _settings(threads, other_kernels=other_kernels)
    return subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, preexec_fn=pin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> None:
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, err[-3000:]


def _assert_same_arrays(first: Path, second: Path, name: str, ignore=("__seconds__",)) -> None:
    """Every cached array of ``name`` bit for bit (NaN where NaN), parameters and environment included, but
    ``ignore`` (by default the wall time)."""
    with np.load(_figures.cache_path(first, name, quick=True)) as a, \
            np.load(_figures.cache_path(second, name, quick=True)) as b:
        assert a.files == b.files, name
        for key in a.files:
            if key in ignore:
                continue
            x, y = a[key], b[key]
            assert x.dtype == y.dtype and x.shape == y.shape, (name, key)
            # Exact: equal_nan only where both are NaN; the bytes of the figures follow from these arrays.
            assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), (name, key)


def _assert_same_files(first: Path, second: Path, name: str) -> None:
    for suffix in (".png", ".pdf"):
        assert filecmp.cmp(first / f"{name}{suffix}", second / f"{name}{suffix}", shallow=False), name + suffix


def test_samtheory_figures_gives_the_same_bytes_for_any_threads_and_cpu_kernels(tmp_path):
    """Two `samtheory figures --quick` runs, one on 1 core with 1 thread per library and the native kernels,
    one on 2 cores with 2 threads and the kernels of an older CPU: the same arrays and the same PNG and PDF
    bytes for the four figures that differed."""
    one, two = tmp_path / "one", tmp_path / "two"
    command = ["-m", "samtheory", "figures", *CHANGED, "--quick", "--out"]
    processes = [_start([*command, str(one)], 1), _start([*command, str(two)], 2, other_kernels=True)]
    for process in processes:
        _finish(process)
    for name in CHANGED:
        _assert_same_arrays(one / "cache", two / "cache", name)
        _assert_same_files(one, two, name)


NEURAL_HERE = """
import sys
from samtheory import figures as _figures
_figures.run_figure("neural", quick=True, out_dir=sys.argv[1], cache_dir=sys.argv[1], isolated=False)
"""


def test_neural_figure_does_not_follow_the_thread_count(tmp_path):
    """At the cause, without the worker's environment: the neural figure trains on one torch thread, so a
    process with 1 thread and one with 2 train the same networks (before the fix torch used every core and the
    final losses differed by up to 2e-5 relative, the PNG visibly at full size)."""
    one, two = tmp_path / "one", tmp_path / "two"
    processes = [_start(["-c", NEURAL_HERE, str(one)], 1), _start(["-c", NEURAL_HERE, str(two)], 2)]
    for process in processes:
        _finish(process)
    for cache, threads in ((one, "1"), (two, "2")):  # each ran here, under its own thread count
        with np.load(_figures.cache_path(cache, "neural", quick=True)) as stored:
            assert json.loads(str(stored["__environment__"]))["OMP_NUM_THREADS"] == threads
    _assert_same_arrays(one, two, "neural", ignore=("__seconds__", "__environment__"))
    _assert_same_files(one, two, "neural")
