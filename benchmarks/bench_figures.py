"""Figure benchmark: the compute time of every non-neural figure (FULL parameters) with the fast path (the
compiled Numba kernels and the regime bisection's early stop, the defaults) against the NumPy path with early
stop off, in one run on one machine. Prints seconds per figure and the ratio; no timed tests anywhere.

The NumPy path is forced by making the compiled path's planner decline every run (``backend="auto"`` then
falls back to NumPy, exactly as without Numba) and by turning off the bisection's early stop
(``samtheory.stability._measured.FAST_PATH``). The figures run in this process, one thread per numeric library
(run it under ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1`` for numbers comparable to ``samtheory figures``).

Usage: ``python benchmarks/bench_figures.py [--quick] [--only name,name]`` (from a clone).
"""

from __future__ import annotations

import argparse
import contextlib
import time

from samtheory import _compiled, figures
from samtheory.stability import _measured


@contextlib.contextmanager
def numpy_path():
    """Every simulate call on the NumPy path, and no early stop in the bisection (the state before issue 13)."""
    plan, fast = _compiled.plan, _measured.FAST_PATH

    def decline(backend, spec, inner, **kwargs):
        if backend == "compiled":
            raise ValueError("the benchmark's NumPy pass declines backend='compiled'")
        return None

    _compiled.plan, _measured.FAST_PATH = decline, False
    try:
        yield
    finally:
        _compiled.plan, _measured.FAST_PATH = plan, fast


def seconds(module, params) -> float:
    start = time.perf_counter()
    module.compute(params)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="QUICK parameters (a smoke run)")
    parser.add_argument("--only", default="", help="comma-separated figure names (default: all but neural)")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or [n for n in figures.figure_names() if n != "neural"]
    seconds(figures.load(names[0]), figures.load(names[0]).QUICK)  # compile the kernels once, outside the timing
    print(f"{'figure':<22}{'fast path s':>12}{'NumPy path s':>14}{'ratio':>8}")
    total_fast = total_numpy = 0.0
    for name in names:
        module = figures.load(name)
        params = module.QUICK if args.quick else module.FULL
        fast = seconds(module, params)
        with numpy_path():
            slow = seconds(module, params)
        total_fast, total_numpy = total_fast + fast, total_numpy + slow
        print(f"{name:<22}{fast:>12.1f}{slow:>14.1f}{slow / fast:>7.2f}x", flush=True)
    print(f"{'total':<22}{total_fast:>12.1f}{total_numpy:>14.1f}{total_numpy / total_fast:>7.2f}x")


if __name__ == "__main__":
    main()
