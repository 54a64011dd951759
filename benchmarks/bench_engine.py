"""Engine benchmark: prints ratios measured in one run on one machine (no timed tests anywhere).

1.–4. run the NumPy path (``backend="numpy"``). 1. The vectorized sweep of a G × G (η, ρ) grid × T steps on quadratics of d = 10 and d = 100, every method,
   against a per-configuration Python loop (one NumPy vector per configuration; a sample of configurations is
   timed and the time scaled to the grid).
2. ssam/susam against sam/usam, per simulated configuration-step (the paper's "almost no extra cost").
3. The eigenbasis path against the dense path at d = 500.
4. The same ssam sweep written the way a JAX user would (``jax.jit`` over ``lax.fori_loop``, float64, CPU):
   samtheory's throughput as a fraction of JAX's. JAX is needed only here (``pip install "jax[cpu]"``).
5. The compiled path (``backend="compiled"``) against the NumPy path on the sweep of 1., every method, and against
   a minimal hand-fused Numba kernel for ssam written here (one pass per step over a block of configurations,
   batch axis innermost, no divergence handling, no history): the limit (target compiled >= 0.7x of it).
6. Renormalization cost on the compiled path (ssam/sam, susam/usam; target <= 1.10).
7. Peak resident memory of a 512 x 512 grid x 1000 steps at d = 100 without history (compiled, in a fresh
   process) against the size of its state (the final iterates, 512² x 100 float64; target <= 2x).

8. ``--dask`` (this section only): the ssam sweep on a 2-worker Dask ``LocalCluster`` (``simulate(...,
   executor=client.get_executor())``) and a 2-process ``ProcessPoolExecutor`` against in-process threads, and the
   per-task overhead of each. Needs ``pip install "dask[distributed]"`` (the ``cluster`` extra).

Usage: ``python benchmarks/bench_engine.py [--grid 128] [--steps 1000] [--quick] [--only 5,6,7] [--dask]``
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
            seconds, result = time_call(lambda: st.simulate(problem, method, eta, rho, steps=steps, x0=x0,
                                                            backend="numpy"))
            rate = configuration_steps(result) / seconds
            etas, rhos = np.broadcast_arrays(eta, rho)
            loop_seconds, _ = time_call(lambda: [loop_one_configuration(
                problem.eigenvalues, x0, etas.flat[i], rhos.flat[i], steps, method, threshold) for i in picks])
            loop_estimate = loop_seconds * size * size / sample
            print(f"{d:>4} {method:>6} {seconds:>10.2f} {rate:>12.3g} {loop_estimate:>13.1f} {loop_estimate / seconds:>8.0f}×")


def bench_renormalization_cost(size, steps, dims, repeats=3, backend="numpy", logistic=True, title="2.", target=1.15):
    """Same configurations, none diverging (η below USAM's limit at the largest ρ), so every method
    simulates exactly size² × steps configuration-steps; runs interleaved, best of ``repeats``. On a quadratic
    the gradient is one elementwise product, so the extra norm of g(y) weighs as much as it ever can; logistic
    regression (n = 200, two matrix products per gradient) is closer to real training."""
    rho_max = 0.2
    cases = [(f"quadratic d = {d}", st.Quadratic(np.geomspace(1.0, 100.0, d)), size, steps) for d in dims]
    if logistic:
        data = st.datasets.make_logistic_regression(200, 10, seed=0)
        cases.append(("logistic n = 200, d = 10", data, size // 4, steps // 4))
    print(f"\n{title} Renormalization cost, {backend} path, no divergent configuration, one worker, best of {repeats} "
          f"(target ≤ {target:.2f})")
    for label, problem, n, t in cases:
        lam = problem.beta
        eta = np.geomspace(1e-3 / lam, 0.9 * 2 / (lam * (1 + rho_max * lam)), n)[:, None]
        grid_rho = np.linspace(0.0, rho_max, n)[None, :]
        best = dict.fromkeys(("sam", "ssam", "usam", "susam"), np.inf)
        for _ in range(repeats):
            for method in best:
                seconds, result = time_call(lambda: st.simulate(problem, method, eta, grid_rho, steps=t,
                                                                x0=np.ones(problem.dim), workers=1, backend=backend))
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
    dense_seconds, dense = time_call(lambda: st.simulate(problem, "ssam", eta, rho, steps=steps, x0=x0, basis="dense",
                                                         backend="numpy"))
    eigen_seconds, eigen = time_call(lambda: st.simulate(problem, "ssam", eta, rho, steps=steps, x0=x0, basis="eigen",
                                                         backend="numpy"), 3)
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
        for backend in ("numpy", "compiled"):
            ours, _ = time_call(lambda: st.simulate(problem, "ssam", eta, rho, steps=steps, x0=np.ones(d),
                                                    backend=backend), 3)
            print(f"   d = {d:>3}: JAX {jax_seconds:.2f} s, samtheory ({backend}) {ours:.2f} s: samtheory's throughput = "
                  f"{jax_seconds / ours:.2f} × JAX's")


def _fused_ssam():
    """The limit: ssam on a diagonal quadratic, hand-fused in Numba (no divergence handling, no history)."""
    import numba

    @numba.njit(nogil=True, cache=False)
    def fused(lam, X, eta, rho, steps, block):
        d, n = X.shape
        g = np.empty((d, block))
        y = np.empty((d, block))
        gn = np.empty(block)
        gyn = np.empty(block)
        scale = np.empty(block)
        x = np.empty((d, block))
        for first in range(0, n, block):
            nb = min(block, n - first)
            x[:, :nb] = X[:, first:first + nb]  # the block in a contiguous buffer, batch axis innermost
            for _ in range(steps):
                gn[:nb] = 0.0
                for i in range(d):
                    for b in range(nb):
                        v = lam[i] * x[i, b]
                        g[i, b] = v
                        gn[b] += v * v
                for b in range(nb):
                    gn[b] = np.sqrt(gn[b])
                    scale[b] = rho[first + b] / gn[b]
                    gyn[b] = 0.0
                for i in range(d):
                    for b in range(nb):
                        v = lam[i] * (x[i, b] + g[i, b] * scale[b])
                        y[i, b] = v
                        gyn[b] += v * v
                for b in range(nb):
                    gyn[b] = eta[first + b] * gn[b] / np.sqrt(gyn[b])
                for i in range(d):
                    for b in range(nb):
                        x[i, b] -= y[i, b] * gyn[b]
            X[:, first:first + nb] = x[:, :nb]
        return X

    return fused


def bench_compiled(size, steps, dims):
    from samtheory import _compiled
    if _compiled.available():
        print(f"\n5. Compiled path skipped: {_compiled.available()}")
        return
    eta, rho = grid(size)
    print(f"\n5. Compiled path against the NumPy path, {size}×{size} grid × {steps} steps (same sweep as 1.; "
          "statuses compared), and against a hand-fused ssam kernel (the limit)")
    print(f"{'d':>4} {'method':>6} {'numpy [s]':>10} {'compiled [s]':>12} {'speed-up':>9} {'same status':>12}")
    st.simulate(st.Quadratic([1.0, 2.0]), "ssam", 0.1, 0.1, steps=2, backend="compiled")  # load the kernels
    fused = _fused_ssam()
    compiled_ssam = {}
    for d in dims:
        problem = st.Quadratic(np.geomspace(1.0, 100.0, d))
        x0 = np.ones(d)
        for method in METHODS:
            numpy_seconds, reference = time_call(lambda: st.simulate(problem, method, eta, rho, steps=steps, x0=x0,
                                                                     backend="numpy"))
            seconds, result = time_call(lambda: st.simulate(problem, method, eta, rho, steps=steps, x0=x0,
                                                            backend="compiled"), 3)
            if method == "ssam":
                compiled_ssam[d] = seconds
            same = np.array_equal(result.status, reference.status)
            print(f"{d:>4} {method:>6} {numpy_seconds:>10.2f} {seconds:>12.3f} {numpy_seconds / seconds:>8.1f}× {str(same):>12}")
    etas, rhos = (np.ascontiguousarray(np.broadcast_arrays(eta, rho)[i].ravel()) for i in range(2))
    print("   hand-fused ssam kernel (the limit; one thread per half of the grid, like the engine's two workers):")
    import concurrent.futures
    workers = st.engine._available_cores()
    for d in dims:
        lam = np.geomspace(1.0, 100.0, d)
        block = max(8, (1 << 13) // d)
        def run():
            X = np.ones((d, etas.size))
            parts = np.array_split(np.arange(etas.size), workers)
            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                list(pool.map(lambda p: fused(lam, X[:, p[0]:p[-1] + 1].copy(), etas[p[0]:p[-1] + 1],
                                               rhos[p[0]:p[-1] + 1], steps, block), parts))
        fused(lam, np.ones((d, 4)), etas[:4], rhos[:4], 2, block)  # compile outside the timing
        seconds, _ = time_call(run, 3)
        ratio = seconds / compiled_ssam[d]
        print(f"   d = {d:>3}: fused {seconds:.3f} s, compiled ssam {compiled_ssam[d]:.3f} s: compiled = {ratio:.2f}× "
              f"the limit's throughput (target >= 0.7: {'met' if ratio >= 0.7 else 'MISSED'})")


_MEMORY_SCRIPT = """
import resource, sys, numpy as np, samtheory as st
size, steps, d = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
problem = st.Quadratic(np.geomspace(1.0, 100.0, d))
st.simulate(problem, "ssam", 0.01, 0.1, steps=2, backend="compiled")  # kernels and imports: the baseline
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
eta = np.geomspace(1e-3, 3e-2, size)[:, None]
rho = np.linspace(0.0, 0.2, size)[None, :]
result = st.simulate(problem, "ssam", eta, rho, steps=steps, x0=np.ones(d), backend="compiled")
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(base * 1024, peak * 1024, result.x.nbytes)
"""


def bench_memory(size, steps, dim):
    import subprocess
    import sys
    print(f"\n7. Peak memory of a {size}×{size} grid × {steps} steps, d = {dim}, ssam, compiled, no history (fresh process)")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(size), str(steps), str(dim)], check=True,
                         capture_output=True, text=True).stdout.split()
    base, peak, state = (int(v) for v in out)
    ratio = (peak - base) / state
    print(f"   {time.perf_counter() - start:.1f} s; state (final iterates) {state / 2**20:.0f} MiB; peak RSS above "
          f"the process's baseline {(peak - base) / 2**20:.0f} MiB = {ratio:.2f}× the state "
          f"(target <= 2: {'met' if ratio <= 2 else 'MISSED'})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=128)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=48, help="configurations timed in the per-configuration loop")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script runs")
    parser.add_argument("--only", default="1,2,3,4,5,6,7", help="comma-separated sections to run")
    parser.add_argument("--memory-grid", type=int, default=512)
    parser.add_argument("--dask", action="store_true", help="only section 8: Dask LocalCluster and process pool")
    args = parser.parse_args()
    if args.quick:
        args.grid, args.steps, args.sample, args.memory_grid = 16, 100, 8, 32
    if args.dask:
        return bench_dask(args.grid, args.steps, (10, 100))
    only = {int(part) for part in args.only.split(",")}
    try:  # the dense path's BLAS on one core, like the rest of NumPy (JAX keeps its default threads)
        import threadpoolctl

        threadpoolctl.threadpool_limits(1)
    except ImportError:
        pass
    print(f"samtheory {st.__version__}, numpy {np.__version__}; simulate uses its default workers = "
          f"{st.engine._available_cores()} (threads over chunks); the per-configuration loop runs on one core")
    sections = {
        1: lambda: bench_sweeps(args.grid, args.steps, args.sample, (10, 100)),
        2: lambda: bench_renormalization_cost(args.grid, args.steps, (10, 100)),
        3: lambda: bench_eigenbasis(500, max(args.steps // 5, 20), max(args.grid // 4, 2)),
        4: lambda: bench_jax(args.grid, args.steps, (10, 100)),
        5: lambda: bench_compiled(args.grid, args.steps, (10, 100)),
        6: lambda: bench_renormalization_cost(args.grid, args.steps, (10, 100), 7, "compiled", False, "6.", 1.10),
        7: lambda: bench_memory(args.memory_grid, args.steps, 100),
    }
    for key in sorted(only):
        sections[key]()


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
