"""Engine benchmark: prints ratios measured in one run on one machine (no timed tests anywhere).

1. The vectorized sweep of a G × G (η, ρ) grid × T steps on quadratics of d = 10 and d = 100, every method,
   against a per-configuration Python loop (one NumPy vector per configuration; a sample of configurations is
   timed and the time scaled to the grid).
2. ssam/susam against sam/usam, per simulated configuration-step (the paper's "almost no extra cost").
3. The eigenbasis path against the dense path at d = 500.
4. The same ssam sweep written the way a JAX user would (``jax.jit`` over ``lax.fori_loop``, float64, CPU):
   samtheory's throughput as a fraction of JAX's. JAX is needed only here (``pip install "jax[cpu]"``).

5. ``--dask`` (this section only): the ssam sweep on a 2-worker Dask ``LocalCluster`` (``simulate(...,
   executor=client.get_executor())``) and a 2-process ``ProcessPoolExecutor`` against in-process threads, and the
   per-task overhead of each. Needs ``pip install "dask[distributed]"`` (the ``cluster`` extra).

Usage: ``python benchmarks/bench_engine.py [--grid 128] [--steps 1000] [--quick] [--dask]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import samtheory as st
import samtheory.datasets

METHODS = ("gd", "sam", "usam", "ssam", "susam")


def grid(size):
    eta = np.geomspace(1e-3, 3e-2, size)[:, None]  # GD's limit 2/λ_max = 0.02 lies inside the range
    rho = np.linspace(0.0, 0.2, size)[None, :]
    return eta, rho


def configuration_steps(result):
    """Configuration-steps actually simulated: a diverged configuration stops at its detection step."""
    return int(np.where(result.diverged, result.diverged_at, result.steps).sum())


def loop_one_configuration(lam, x0, eta, rho, steps, method, threshold):
    """What a user writes without the engine: one configuration, 1-D NumPy vectors, a Python loop."""
    x = x0.copy()
    for _ in range(steps):
        g = lam * x
        g_norm = np.linalg.norm(g)
        if not g_norm <= threshold:
            break
        if method == "gd":
            x = x - eta * g
            continue
        ascent = g / g_norm if method in ("sam", "ssam") and g_norm > 0 else g
        if method in ("sam", "ssam") and g_norm == 0:
            ascent = np.zeros_like(g)
        gy = lam * (x + rho * ascent)
        if method in ("ssam", "susam"):
            gy_norm = np.linalg.norm(gy)
            gy = gy * (g_norm / gy_norm if gy_norm > 0 else 1.0)
        x = x - eta * gy
    return x


def time_call(function, repeats=1):
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return best, value


def bench_sweeps(size, steps, sample, dims):
    eta, rho = grid(size)
    print(f"\n1. Vectorized (η, ρ) sweep, {size}×{size} grid × {steps} steps, x0 = 1, spectrum geomspace(1, 100, d)")
    print(f"{'d':>4} {'method':>6} {'sweep [s]':>10} {'cfg-steps/s':>12} {'loop est. [s]':>13} {'speed-up':>9}")
    rng = np.random.default_rng(0)
    for d in dims:
        problem = st.Quadratic(np.geomspace(1.0, 100.0, d))
        x0 = np.ones(d)
        threshold = 1e6 * max(np.linalg.norm(problem.grad(x0)), 1.0)
        picks = rng.choice(size * size, size=sample, replace=False)
        for method in METHODS:
            seconds, result = time_call(lambda: st.simulate(problem, method, eta, rho, steps=steps, x0=x0))
            rate = configuration_steps(result) / seconds
            etas, rhos = np.broadcast_arrays(eta, rho)
            loop_seconds, _ = time_call(lambda: [loop_one_configuration(
                problem.eigenvalues, x0, etas.flat[i], rhos.flat[i], steps, method, threshold) for i in picks])
            loop_estimate = loop_seconds * size * size / sample
            print(f"{d:>4} {method:>6} {seconds:>10.2f} {rate:>12.3g} {loop_estimate:>13.1f} {loop_estimate / seconds:>8.0f}×")


def bench_renormalization_cost(size, steps, dims, repeats=3):
    """Same configurations, none diverging (η below USAM's limit at the largest ρ), so every method
    simulates exactly size² × steps configuration-steps; runs interleaved, best of ``repeats``. On a quadratic
    the gradient is one elementwise product, so the extra norm of g(y) weighs as much as it ever can; logistic
    regression (n = 200, two matrix products per gradient) is closer to real training."""
    rho_max = 0.2
    cases = [(f"quadratic d = {d}", st.Quadratic(np.geomspace(1.0, 100.0, d)), size, steps) for d in dims]
    logistic = st.datasets.make_logistic_regression(200, 10, seed=0)
    cases.append(("logistic n = 200, d = 10", logistic, size // 4, steps // 4))
    print(f"\n2. Renormalization cost, no divergent configuration, one worker, best of {repeats} (target ≤ 1.15)")
    for label, problem, n, t in cases:
        lam = problem.beta
        eta = np.geomspace(1e-3 / lam, 0.9 * 2 / (lam * (1 + rho_max * lam)), n)[:, None]
        grid_rho = np.linspace(0.0, rho_max, n)[None, :]
        best = dict.fromkeys(("sam", "ssam", "usam", "susam"), np.inf)
        for _ in range(repeats):
            for method in best:
                seconds, result = time_call(lambda: st.simulate(problem, method, eta, grid_rho, steps=t,
                                                                x0=np.ones(problem.dim), workers=1))
                assert not result.diverged.any()
                best[method] = min(best[method], seconds)
        print(f"   {label:<26} ({n}×{n} × {t} steps): ssam/sam = {best['ssam'] / best['sam']:.3f}, "
              f"susam/usam = {best['susam'] / best['usam']:.3f}  (sam {best['sam']:.2f} s, ssam {best['ssam']:.2f} s, "
              f"usam {best['usam']:.2f} s, susam {best['susam']:.2f} s)")


def bench_eigenbasis(dim, steps, size):
    print(f"\n3. Eigenbasis against dense H at d = {dim} ({size}×{size} grid × {steps} steps, ssam, random rotation)")
    problem = st.Quadratic(np.geomspace(1.0, 100.0, dim), rotation=0)
    eta, rho = grid(size)
    x0 = problem.initial_point(0)
    dense_seconds, dense = time_call(lambda: st.simulate(problem, "ssam", eta, rho, steps=steps, x0=x0, basis="dense"))
    eigen_seconds, eigen = time_call(lambda: st.simulate(problem, "ssam", eta, rho, steps=steps, x0=x0, basis="eigen"), 3)
    same = np.array_equal(dense.status, eigen.status)
    print(f"   dense {dense_seconds:.2f} s, eigenbasis {eigen_seconds:.3f} s: {dense_seconds / eigen_seconds:.0f}× faster "
          f"(same statuses: {same})")


def bench_jax(size, steps, dims):
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        print("\n4. JAX comparison skipped: JAX is not installed (pip install 'jax[cpu]')")
        return
    jax.config.update("jax_enable_x64", True)
    eta, rho = grid(size)
    etas, rhos = (np.broadcast_arrays(eta, rho)[i].reshape(-1, 1) for i in range(2))
    print(f"\n4. ssam sweep against JAX (jit + lax.fori_loop, float64, CPU), {size}×{size} grid × {steps} steps")
    for d in dims:
        lam_np = np.geomspace(1.0, 100.0, d)
        lam = jnp.asarray(lam_np)

        @jax.jit
        def sweep(x0, eta, rho):
            def body(_, x):
                g = x * lam
                g_norm = jnp.linalg.norm(g, axis=1, keepdims=True)
                y = x + rho * g / jnp.where(g_norm > 0, g_norm, 1.0)
                gy = y * lam
                gy_norm = jnp.linalg.norm(gy, axis=1, keepdims=True)
                gamma = jnp.where(gy_norm > 0, g_norm / jnp.where(gy_norm > 0, gy_norm, 1.0), 1.0)
                return x - eta * gamma * gy
            return jax.lax.fori_loop(0, steps, body, x0)

        arguments = (jnp.ones((etas.shape[0], d)), jnp.asarray(etas), jnp.asarray(rhos))
        sweep(*arguments).block_until_ready()  # compile outside the timing
        jax_seconds, _ = time_call(lambda: sweep(*arguments).block_until_ready(), 3)
        problem = st.Quadratic(lam_np)
        ours, _ = time_call(lambda: st.simulate(problem, "ssam", eta, rho, steps=steps, x0=np.ones(d)), 3)
        print(f"   d = {d:>3}: JAX {jax_seconds:.2f} s, samtheory {ours:.2f} s: samtheory's throughput = "
              f"{jax_seconds / ours:.2f} × JAX's")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=128)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=48, help="configurations timed in the per-configuration loop")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script runs")
    parser.add_argument("--dask", action="store_true", help="only section 5: Dask LocalCluster and process pool")
    args = parser.parse_args()
    if args.quick:
        args.grid, args.steps, args.sample = 16, 100, 8
    if args.dask:
        return bench_dask(args.grid, args.steps, (10, 100))
    try:  # the dense path's BLAS on one core, like the rest of NumPy (JAX keeps its default threads)
        import threadpoolctl

        threadpoolctl.threadpool_limits(1)
    except ImportError:
        pass
    print(f"samtheory {st.__version__}, numpy {np.__version__}; simulate uses its default workers = "
          f"{st.engine._available_cores()} (threads over chunks); the per-configuration loop runs on one core")
    bench_sweeps(args.grid, args.steps, args.sample, (10, 100))
    bench_renormalization_cost(args.grid, args.steps, (10, 100))
    bench_eigenbasis(500, max(args.steps // 5, 20), max(args.grid // 4, 2))
    bench_jax(args.grid, args.steps, (10, 100))


def bench_dask(size, steps, dims, tiny_tasks=200, repeats=3):
    """The ssam sweep in-process (threads), on a 2-process pool and on a 2-worker Dask LocalCluster; per-task
    overhead from ``tiny_tasks`` one-row, one-step chunks."""
    import concurrent.futures
    import multiprocessing

    from distributed import Client, LocalCluster

    import dask

    eta, rho = grid(size)
    pool = concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
    started = time.perf_counter()
    # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which makes glibc map and unmap every large
    # NumPy temporary (see malloc_trim_cost below): unset it, as the README says.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0",
                               silence_logs=40)
    client = Client(cluster)
    startup = time.perf_counter() - started
    executors = {"process pool": pool, "Dask": client.get_executor()}
    print(f"\n5. Executors, ssam, {size}×{size} grid × {steps} steps, best of {repeats} interleaved (Dask LocalCluster of 2 worker processes × 1 "
          f"thread started in {startup:.2f} s); in-process = {st.engine._available_cores()} threads")
    try:
        tiny = st.Quadratic([1.0])
        for label, executor in executors.items():  # warm: workers started, samtheory imported
            st.simulate(tiny, "ssam", np.full(8, 0.1), 0.1, steps=1, chunk_size=1, executor=executor)
        overhead = {}
        for label, executor in executors.items():
            seconds, _ = time_call(lambda: st.simulate(tiny, "ssam", np.full(tiny_tasks, 0.1), 0.1, steps=1,
                                                       chunk_size=1, executor=executor), repeats)
            overhead[label] = seconds / tiny_tasks
        print("per-task overhead (one-row, one-step chunks, 2 workers): "
              + ", ".join(f"{label} {1e3 * value:.2f} ms" for label, value in overhead.items()))
        print(f"MALLOC_TRIM_THRESHOLD_=65536 (Dask's default for its workers) multiplies a 1-process sweep's CPU "
              f"time by {malloc_trim_cost(size, steps):.2f}")
        print(f"{'d':>4} {'in-process [s]':>15} " + " ".join(f"{label + ' [s]':>16} {'× threads':>10}"
                                                           for label in executors))
        for d in dims:
            problem = st.Quadratic(np.geomspace(1.0, 100.0, d), rotation=0)
            x0 = np.ones(d)
            runs = {"in-process": None, **executors}
            best, results = dict.fromkeys(runs, np.inf), {}
            for _ in range(repeats):  # interleaved, best of `repeats`: the machine's load changes between calls
                for label, executor in runs.items():
                    seconds, results[label] = time_call(lambda: st.simulate(problem, "ssam", eta, rho, steps=steps,
                                                                            x0=x0, executor=executor))
                    best[label] = min(best[label], seconds)
            for label in executors:
                assert np.array_equal(results[label].x, results["in-process"].x)
                assert np.array_equal(results[label].status, results["in-process"].status)
            cells = [f"{best[label]:16.2f} {best['in-process'] / best[label]:9.2f}×" for label in executors]
            print(f"{d:4d} {best['in-process']:15.2f} " + " ".join(cells) + "   (results bit-identical)")
    finally:
        pool.shutdown()
        client.close()
        cluster.close()


def malloc_trim_cost(size, steps):
    """CPU time of one ssam sweep (d = 10, one thread) in a fresh process with glibc's MALLOC_TRIM_THRESHOLD_=65536,
    over the same without it (best of 2 each)."""
    import os
    import subprocess
    import sys

    code = ("import time, numpy as np, samtheory as st; p = st.Quadratic(np.geomspace(1.0, 100.0, 10)); "
            f"eta = np.geomspace(1e-3, 3e-2, {size})[:, None]; rho = np.linspace(0.0, 0.2, {size})[None, :]; "
            "c = time.process_time(); "
            f"st.simulate(p, 'ssam', eta, rho, steps={steps}, x0=np.ones(10), workers=1); "
            "print(time.process_time() - c)")
    seconds = {}
    for label, extra in (("default", {}), ("trim", {"MALLOC_TRIM_THRESHOLD_": "65536"})):
        env = {key: value for key, value in os.environ.items() if key != "MALLOC_TRIM_THRESHOLD_"}
        env.update(extra)
        seconds[label] = min(float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                                  text=True, check=True).stdout) for _ in range(2))
    return seconds["trim"] / seconds["default"]


if __name__ == "__main__":
    main()
