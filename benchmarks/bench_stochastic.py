"""Stochastic-regime benchmark (issue 12): prints times and ratios measured in one run on one machine.

1. The mean-square threshold η_ms of ``gd`` and ``usam`` (shared minibatches): enumeration of the minibatches
   (small n), the moment formulas and the matrix-free ARPACK operator, for d = 3 … 100 and n up to 10⁴; each
   cell is one full threshold (root to rtol 1e-12), '-' where a way does not apply (enumeration beyond n = 30,
   moments beyond d = 12, usam's matrix-free operator beyond n = 1000: with a shared minibatch its fourth
   moments are pattern sums over index pairs, O(n²d) per application, where gd's operator is O(nd²)).
2. The Lyapunov estimator: configuration-products (one factor of one (η, seed) product) per second, vectorized
   over η and seeds, against a plain NumPy loop over η (one seed's product at a time, the same factors).

Usage: ``python benchmarks/bench_stochastic.py [--quick]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import samtheory as st
from samtheory import stability


def problem(n, d, seed=0):
    A = np.random.default_rng(seed).standard_normal((n, d))
    return st.LeastSquares(A, A @ np.ones(d))


def timed(function):
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def mean_square_table(cases, methods):
    print("1. mean-square threshold: seconds per threshold (value), rho = 0.1, m = 2")
    print(f"{'method':>6} {'n':>6} {'d':>4} {'enumerate':>22} {'moments':>22} {'matrix-free':>22}")
    for method in methods:
        for n, d in cases:
            p = problem(n, d)
            cells = []
            for algorithm, ok in (("enumerate", n <= 30), ("moments", d <= 12), ("matrix-free", True)):
                if not ok or (algorithm == "matrix-free" and method == "usam" and n > 1000):
                    cells.append("-")
                    continue
                seconds, th = timed(lambda: stability.mean_square_critical_learning_rate(
                    p, method, 0.1, batch_size=2, algorithm=algorithm))
                cells.append(f"{seconds:8.3f} s ({th.value[0]:.6g})")
            print(f"{method:>6} {n:>6} {d:>4} " + " ".join(f"{c:>22}" for c in cells))


def lyapunov_loop(p, eta, rho, steps, batch_size, seed):
    """One product per η, written plainly: the same minibatches (the engine's stream) and start vector."""
    from samtheory.engine import _MINIBATCH_STREAM  # the benchmark compares against the library's own stream

    A, n = p.A, p.n_samples
    sampler = np.random.default_rng([seed, _MINIBATCH_STREAM])
    batches = [sampler.choice(n, size=batch_size, replace=False) for _ in range(steps)]
    total = []
    for e in eta:
        v = np.ones(p.dim) / np.sqrt(p.dim)
        log = 0.0
        for b in batches:
            rows = A[b]
            hv = rows.T @ (rows @ v) / batch_size
            v = v - e * (hv + rho * rows.T @ (rows @ hv) / batch_size)
            norm = np.linalg.norm(v)
            log += np.log(norm)
            v /= norm
        total.append(log / steps)
    return np.array(total)


def lyapunov_rates(quick):
    p = problem(200, 10)
    steps, seeds, points = (200, 4, 8) if quick else (2000, 16, 32)
    eta = np.geomspace(0.05, 0.5, points)
    seconds, _ = timed(lambda: stability.lyapunov_exponent(p, "usam", eta, 0.1, batch_size=4, steps=steps,
                                                           seeds=seeds))
    vectorized = points * seeds * steps / seconds
    loop_seconds, _ = timed(lambda: lyapunov_loop(p, eta, 0.1, steps, 4, 0))
    loop = points * steps / loop_seconds
    print(f"2. Lyapunov estimator (usam, n = 200, d = 10, m = 4): {points} eta x {seeds} seeds x {steps} steps")
    print(f"   vectorized: {vectorized:,.0f} configuration-products/s; NumPy loop over eta: {loop:,.0f}/s; "
          f"ratio {vectorized / loop:.1f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small cases only (seconds)")
    args = parser.parse_args()
    if args.quick:
        cases = [(8, 3), (200, 3)]
    else:
        cases = [(8, 3), (12, 6), (1000, 3), (10_000, 3), (10_000, 10), (1000, 30), (1000, 100), (10_000, 100)]
    mean_square_table(cases, ("gd", "usam"))
    lyapunov_rates(args.quick)


if __name__ == "__main__":
    main()
