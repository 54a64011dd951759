"""Benchmark: the full regime comparison, five methods × 32 ρ on a d = 100 quadratic, thresholds to 1e-3.

Run ``python benchmarks/bench_regime.py`` (target: under 60 s on a 2-core machine). Prints the
configuration, the wall time, the number of simulated configuration-steps (one update of one (η, ρ, x0)
configuration) and their rate, and a summary of the measured thresholds against the closed forms; then the same
comparison with the fast path disabled (NumPy backend, no early stop: ``stability._measured.FAST_PATH = False``)
and the ratio of the two times, measured in this run (target: >= 5x). ``--skip-slow`` runs only the fast path.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import samtheory as st
from samtheory.stability import ClassificationRules, compare_regimes
from samtheory.stability import _measured as _stability_measured


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--n-rho", type=int, default=32)
    parser.add_argument("--rtol", type=float, default=1e-3)
    parser.add_argument("--skip-slow", action="store_true", help="do not time the path without the fast path")
    args = parser.parse_args(argv)
    fast = measure(args, fast_path=True)
    if args.skip_slow:
        return 0
    slow = measure(args, fast_path=False)
    same = all(a["empirical_eta"] == b["empirical_eta"] and a["empirical_converged_eta"] == b["empirical_converged_eta"]
               for a, b in zip(fast[1], slow[1]))
    print(f"\nfast path (compiled + early stop) vs NumPy without early stop: {fast[0]:.1f} s vs {slow[0]:.1f} s, "
          f"speed-up {slow[0] / fast[0]:.1f}x (target >= 5x: {'met' if slow[0] >= 5 * fast[0] else 'MISSED'}); "
          f"thresholds identical: {same}")
    return 0


def measure(args, fast_path):
    """Time compare_regimes with the fast path on or off; print its summary; (seconds, rows)."""
    print(f"\n== {'fast path: compiled kernels + early stop' if fast_path else 'NumPy path, no early stop'} ==")

    problem = st.Quadratic(np.geomspace(1.0, 100.0, args.dim), rotation=0)
    rhos = np.geomspace(1e-3, 1.0, args.n_rho)
    rules = ClassificationRules()
    counted = []
    original = _stability_measured._Runner.run

    def counting_run(self, *a, **k):  # count the configuration-steps each simulate call really ran
        before = self.config_steps
        result = original(self, *a, **k)
        counted.append(self.config_steps - before)
        return result

    _stability_measured._Runner.run = counting_run
    _stability_measured.FAST_PATH = fast_path
    try:
        start = time.perf_counter()
        rows = compare_regimes(problem, "all", rhos, rtol=args.rtol, rules=rules)
        elapsed = time.perf_counter() - start
    finally:
        _stability_measured._Runner.run = original
        _stability_measured.FAST_PATH = True
    config_steps = sum(counted)
    print(f"problem: Quadratic(d={args.dim}, eigenvalues geomspace(1, 100), random rotation); "
          f"{len(st.METHODS)} methods x {args.n_rho} rho in [1e-3, 1]; rtol = {args.rtol:g}")
    print(f"rules: steps={rules.steps} (converged edge), divergence budget={rules.divergence_budget(args.rtol)} steps, "
          f"tol={rules.tol:g}, divergence_factor={rules.divergence_factor:g}, n_points={rules.n_points}")
    print(f"time: {elapsed:.1f} s for {len(counted)} simulate calls; {config_steps / 1e6:.1f} M configuration-steps, "
          f"{config_steps / elapsed / 1e6:.2f} M configuration-steps/s")
    errors = [r["relative_error"] for r in rows if r["relative_error"] is not None]
    print(f"non-divergent edge vs closed form: {len(errors)} rows with a closed form, max relative error "
          f"{max(errors):.2e} (tolerance {args.rtol:g})")
    for method in st.METHODS:
        widths = [r["width_vs_gd"] for r in rows if r["method"] == method]
        converged = [r["empirical_converged_eta"] is not None for r in rows if r["method"] == method]
        print(f"  {method:6s} width vs GD: min {min(widths):.4f} max {max(widths):.4f}; "
              f"converged edge found for {sum(converged)}/{len(converged)} rho")
    print(f"target < 60 s: {'met' if elapsed < 60 else 'MISSED'} ({elapsed:.1f} s)")
    return elapsed, rows


if __name__ == "__main__":
    raise SystemExit(main())
