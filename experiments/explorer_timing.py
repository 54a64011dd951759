"""How long one update of the explorer takes, at the default sizes (4 methods, d = 2, 300 steps).

    python experiments/explorer_timing.py            # the Python work of an update, then the browser round trip
    python experiments/explorer_timing.py --no-browser

*Python work*: what the app's cells compute when a control moves (the four trajectories, the explanation, the
three PNG figures), wall-clock and CPU time, median and max over the moves. An η or ρ move reuses the cached
regime maps and figure backgrounds; a spectrum move (λ_max) recomputes the four regime maps and redraws all.
*Browser*: from the key press on the η slider in headless Chromium to all three figures replaced, through
``marimo run`` on 127.0.0.1, and the CPU time the server and the browser spent on it. The load average is
printed too: other processes on the machine stretch wall-clock times, not CPU times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import samtheory as st
from samtheory import explorer as core

DEFAULT = {"lam_max": 10.0, "condition_number": 10.0, "dim": 2, "eta": 0.15, "rho": 0.1, "steps": 300}


def update(lam_max: float, eta: float, rho: float) -> None:
    """The work of the app's cells after a control moved."""
    problem = st.Quadratic(core.spectrum(lam_max, DEFAULT["condition_number"], DEFAULT["dim"]))
    x0 = core.initial_point(problem.dim, 1.0, 2.0, 1.0)
    methods = core.ordered_methods(core.DEFAULT_METHODS)
    steps = DEFAULT["steps"]
    trajectories = core.run_all(problem, methods, eta, rho, steps=steps, x0=x0)
    core.explanation(problem, trajectories)
    core.trajectory_png(problem, trajectories)
    core.curves_png(problem, trajectories, steps=steps)
    core.regime_png(problem, methods, eta, rho, steps=steps, x0=x0)


def _timed(calls) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    for call in calls:
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return walls, cpus


def _descendants_cpu() -> float:
    """CPU seconds used so far by this process's children (the marimo server, Playwright, Chromium)."""
    import psutil  # a dependency of marimo

    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def _summary(name: str, walls: list[float], cpus: list[float] | None = None) -> str:
    text = f"{name:<34} wall median {statistics.median(walls):.3f} s, max {max(walls):.3f} s"
    if cpus is not None:
        text += f"; CPU median {statistics.median(cpus):.3f} s, max {max(cpus):.3f} s"
    return text + f"  ({len(walls)} updates)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=12, help="updates per measurement (default: 12)")
    parser.add_argument("--no-browser", action="store_true", help="skip the browser round trip")
    args = parser.parse_args(argv)
    print(f"load average before: {', '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")

    update(DEFAULT["lam_max"], DEFAULT["eta"], DEFAULT["rho"])  # warm the caches at the default point
    index = core.ETA_VALUES.index(DEFAULT["eta"])
    etas = [core.ETA_VALUES[index - 1 - i % 6] for i in range(args.moves)]  # η slider moves left and back
    print(_summary("η moves (cached maps):", *_timed(
        [lambda eta=eta: update(DEFAULT["lam_max"], eta, DEFAULT["rho"]) for eta in etas])))
    rhos = [core.RHO_VALUES[core.RHO_VALUES.index(DEFAULT["rho"]) - 1 - i % 6] for i in range(args.moves)]
    print(_summary("ρ moves (cached maps):", *_timed(
        [lambda rho=rho: update(DEFAULT["lam_max"], DEFAULT["eta"], rho) for rho in rhos])))
    lam_values = np.geomspace(5.0, 20.0, args.moves) * (1 + 1e-9 * np.arange(args.moves))  # each one new
    print(_summary("λ_max moves (4 new regime maps):", *_timed(
        [lambda lam=lam: update(float(lam), DEFAULT["eta"], DEFAULT["rho"]) for lam in lam_values])))

    if not args.no_browser:
        from samtheory.explorer import browser as driver

        with driver.served(Path(__file__).resolve().with_name("explorer.py")) as url, driver.chromium() as browser:
            app = driver.AppPage(browser, url)
            latencies, cpus = [], []
            for i in range(args.moves):
                before, cpu = app.sources(), _descendants_cpu()
                app.press("learning rate η", "ArrowLeft" if i % 6 < 3 else "ArrowRight")
                latencies.append(app.wait_for_change(before))
                cpus.append(_descendants_cpu() - cpu)
            errors = app.errors()
        print(_summary("browser round trip per η move:", latencies, cpus)
              + "\n  (CPU: the marimo server, Playwright's driver and Chromium together)")
        if errors:
            print(f"errors shown: {errors}")
            return 1
    print(f"load average after: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
