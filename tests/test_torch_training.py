"""The torch optimizer in real training loops (issue 14): DDP in both ascent modes, float16 AMP with GradScaler,
closures of every style and wrong use, BatchNorm statistics updated once, torch.compile, clipping, ASAM's η.

Tolerances: float64 comparisons with the NumPy engine use 1e-10 relative (same expressions, different summation
order: a few ulps per step, tests/test_torch_equivalence.py); float32 ones use 1e-6 (float32's 6e-8 rounding
amplified over a few steps); the float16-AMP run is compared with float32 at 2e-2 (float16's 2^-11 ≈ 5e-4 per
matmul product, over 30 steps of a contracting loss).
"""

from __future__ import annotations

import copy
import datetime
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

import samtheory as st
from samtheory.datasets import make_least_squares
from samtheory.torch import SAMOptimizer, asam_param_groups, frozen_running_stats

SAM_METHODS = ("sam", "usam", "ssam", "susam")
DDP_STEPS = 20
DDP_TIMEOUT_S = 120  # bounded: the whole 2-process run takes a few seconds


def _least_squares():
    return make_least_squares(40, 5, noise=0.3, seed=3)


class _Linear(torch.nn.Module):
    """0.5 · mean((A x − b)²) as a module with the single parameter x, as the NumPy LeastSquares defines it."""

    def __init__(self, x0):
        super().__init__()
        self.x = torch.nn.Parameter(torch.tensor(x0, dtype=torch.float64))

    def forward(self, A, b):
        return 0.5 * torch.mean((A @ self.x - b) ** 2)


def _ddp_worker(rank, world, port, out, eta, rho):
    """One rank: for each mode × method, DDP_STEPS steps on its half of the rows; saves its final iterates."""
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                         world_size=world, timeout=datetime.timedelta(seconds=DDP_TIMEOUT_S))
    try:
        problem = _least_squares()
        rows = np.array_split(np.arange(problem.n_samples), world)[rank]
        A = torch.tensor(problem.A[rows], dtype=torch.float64)
        b = torch.tensor(problem.b[rows], dtype=torch.float64)
        x0 = problem.initial_point(seed=1) + 0.5
        results = {}
        for mode in ("global", "per_replica"):
            for method in SAM_METHODS:
                model = torch.nn.parallel.DistributedDataParallel(_Linear(x0))
                optimizer = SAMOptimizer(model.parameters(), torch.optim.SGD, method=method, rho=rho, lr=eta,
                                         ascent_mode=mode)
                local = model.no_sync if mode == "per_replica" else torch.enable_grad
                for _ in range(DDP_STEPS):
                    with local():
                        model(A, b).backward()
                    optimizer.first_step(zero_grad=True)
                    with local():
                        model(A, b).backward()
                    optimizer.second_step(zero_grad=True)
                results[mode, method] = model.module.x.detach().clone()
        torch.save(results, out / f"rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    problem = _least_squares()
    eta, rho = 0.5 / (problem.beta * (1 + 0.05 * problem.beta)), 0.05
    context = mp.start_processes(_ddp_worker, args=(2, _free_port(), out, eta, rho), nprocs=2, join=False,
                                 start_method="spawn")
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=DDP_TIMEOUT_S)
    while not context.join(timeout=5):
        if datetime.datetime.now() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the 2-process DDP run did not finish in {DDP_TIMEOUT_S} s")
    return [torch.load(out / f"rank{r}.pt") for r in range(2)], problem, eta, rho


@pytest.mark.parametrize("method", SAM_METHODS)
def test_ddp_global_ascent_equals_one_process_on_the_whole_batch(ddp_results, method):
    ranks, problem, eta, rho = ddp_results
    x0 = problem.initial_point(seed=1) + 0.5
    expected = st.simulate(problem, method, eta, rho, steps=DDP_STEPS, x0=x0).x
    for result in ranks:
        actual = result["global", method].numpy()
        assert np.linalg.norm(actual - expected) <= 1e-10 * np.linalg.norm(expected)  # float64 rounding


@pytest.mark.parametrize("method", SAM_METHODS)
def test_ddp_per_replica_ascent_is_bit_identical_across_ranks_and_equals_numpy_m_sharpness(ddp_results, method):
    ranks, problem, eta, rho = ddp_results
    assert torch.equal(ranks[0]["per_replica", method], ranks[1]["per_replica", method])
    x0 = problem.initial_point(seed=1) + 0.5
    expected = st.simulate(problem, method, eta, rho, steps=DDP_STEPS, x0=x0, ascent_groups=2).x
    actual = ranks[0]["per_replica", method].numpy()
    assert np.linalg.norm(actual - expected) <= 1e-10 * np.linalg.norm(expected)  # float64 rounding
    if method in ("sam", "ssam", "usam", "susam"):  # m-sharpness is a different method: not the global step
        global_x = ranks[0]["global", method].numpy()
        assert np.linalg.norm(actual - global_x) > 1e-8 * np.linalg.norm(global_x)


# -- the NumPy m-sharpness option -------------------------------------------------------------------------------

def test_ascent_groups_one_is_the_default_and_gd_is_unchanged_by_groups():
    problem = _least_squares()
    x0 = problem.initial_point(seed=1)
    plain = st.simulate(problem, "ssam", 0.05, 0.1, steps=30, x0=x0, batch_size=8, seed=2)
    one = st.simulate(problem, "ssam", 0.05, 0.1, steps=30, x0=x0, batch_size=8, seed=2, ascent_groups=1)
    assert np.array_equal(plain.x, one.x)
    # GD's averaged group gradients are the batch gradient: equal to rounding (1e-12 relative, 30 steps).
    gd = st.simulate(problem, "gd", 0.05, steps=30, x0=x0, batch_size=8, seed=2)
    grouped = st.simulate(problem, "gd", 0.05, steps=30, x0=x0, batch_size=8, seed=2, ascent_groups=4)
    assert np.linalg.norm(gd.x - grouped.x) <= 1e-12 * np.linalg.norm(gd.x)


def test_ascent_groups_by_hand():
    """Two groups, one step of usam, written out: x − η/2 Σ_j g_j(x + ρ g_j(x))."""
    problem = _least_squares()
    x0 = problem.initial_point(seed=1)
    eta, rho = 0.05, 0.1
    halves = np.split(np.arange(problem.n_samples), 2)
    descent = sum(problem.gradient_oracle(h)(x0[None] + rho * problem.gradient_oracle(h)(x0[None])) for h in halves)
    expected = x0 - eta * descent[0] / 2
    actual = st.simulate(problem, "usam", eta, rho, steps=1, x0=x0, ascent_groups=2).x
    assert np.linalg.norm(actual - expected) <= 1e-14 * np.linalg.norm(expected)  # one step: a few ulps


@pytest.mark.parametrize("kwargs, match", [
    (dict(ascent_groups=0), "ascent_groups"),
    (dict(ascent_groups=3), "ascent_groups must divide"),
    (dict(ascent_groups=2, batch_size=5), "ascent_groups must divide"),
])
def test_ascent_groups_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        st.simulate(_least_squares(), "sam", 0.1, 0.1, steps=2, **kwargs)
    with pytest.raises(ValueError, match="finite-sum"):
        st.simulate(st.Quadratic([1.0, 2.0]), "sam", 0.1, 0.1, steps=2, ascent_groups=2)
