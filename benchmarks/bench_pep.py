"""PEP solve time for USAM: samtheory's Gram-matrix SDP against PEPit, same problem, same solver, one run.

    python benchmarks/bench_pep.py [--steps 1,2,5,10,20] [--solver CLARABEL]

For each N both formulations are built and solved once (CVXPY canonicalization included: that is what a user
waits for), with the same solver and tolerances; the script prints both times, their ratio and both worst
cases. PEPit is a test/bench dependency, imported here only.
"""

from __future__ import annotations

import argparse
import time

import cvxpy as cp
from PEPit import PEP
from PEPit.functions import SmoothConvexFunction

from samtheory.convex import _solver, pep


def pepit_usam(L, eta, rho, steps, solver):
    start = time.perf_counter()
    problem = PEP()
    f = problem.declare_function(SmoothConvexFunction, L=L)
    x_star = f.stationary_point()
    x0 = problem.set_initial_point()
    problem.set_initial_condition((x0 - x_star) ** 2 <= 1.0)
    x = x0
    for _ in range(steps):
        y = x + rho * f.gradient(x)
        x = x - eta * f.gradient(y)
    problem.set_performance_metric(f(x) - f(x_star))
    value = problem.solve(wrapper="cvxpy", solver=getattr(cp, solver), verbose=0,
                          **_solver.solver_options(solver, pep.TOLERANCE))
    return value, time.perf_counter() - start, problem.wrapper.prob.status


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="1,2,5,10,20")
    parser.add_argument("--eta", type=float, default=1.0)
    parser.add_argument("--rho", type=float, default=0.5)
    parser.add_argument("--solver", default="CLARABEL")
    args = parser.parse_args()
    steps_list = [int(s) for s in args.steps.split(",")]
    print(f"USAM worst case f(x_N) - f*, L = 1, eta = {args.eta}, rho = {args.rho}, solver {args.solver}, "
          f"tolerance {pep.TOLERANCE:g}; wall time of build + solve, one run each")
    print(f"{'N':>3} {'samtheory s':>12} {'PEPit s':>9} {'PEPit/ours':>10} {'samtheory value':>16} "
          f"{'PEPit value':>12} {'PEPit status':>13}")
    pep.worst_case("usam", eta=args.eta, rho=args.rho, steps=1, solver=args.solver)  # warm imports once
    for steps in steps_list:
        start = time.perf_counter()
        ours = pep.worst_case("usam", eta=args.eta, rho=args.rho, steps=steps, solver=args.solver)
        ours_seconds = time.perf_counter() - start
        value, theirs_seconds, status = pepit_usam(1.0, args.eta, args.rho, steps, args.solver)
        print(f"{steps:>3} {ours_seconds:>12.3f} {theirs_seconds:>9.3f} {theirs_seconds / ours_seconds:>10.1f} "
              f"{ours.worst_case:>16.8g} {value:>12.8g} {status:>13}")


if __name__ == "__main__":
    main()
