"""The torch optimizer in real training loops (issue 14): DDP in both ascent modes, float16 AMP with GradScaler,
closures of every style and wrong use, BatchNorm statistics updated once, torch.compile, clipping, ASAM's η.

Tolerances: float64 comparisons with the NumPy engine use 1e-10 relative (same expressions, different summation
order: a few ulps per step, tests/test_torch_equivalence.py); float32 ones use 1e-6 (float32's 6e-8 rounding
amplified over a few steps); the float16-AMP run is compared with float32 at 2e-2 (float16's 2^-11 ≈ 5e-4 per
matmul product, over 15 steps of a contracting loss).
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
        for mode, momentum in (("global", 0.0), ("per_replica", 0.0), ("global", 0.9), ("per_replica", 0.9)):
            for method in SAM_METHODS:
                model = torch.nn.parallel.DistributedDataParallel(_Linear(x0))
                optimizer = SAMOptimizer(model.parameters(), torch.optim.SGD, method=method, rho=rho, lr=eta,
                                         momentum=momentum, ascent_mode=mode)
                local = model.no_sync if mode == "per_replica" else torch.enable_grad
                for _ in range(DDP_STEPS):
                    with local():
                        model(A, b).backward()
                    optimizer.first_step(zero_grad=True)
                    with local():
                        model(A, b).backward()
                    optimizer.second_step(zero_grad=True)
                results[mode, method, momentum] = model.module.x.detach().clone()
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


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("method", SAM_METHODS)
def test_ddp_global_ascent_equals_one_process_on_the_whole_batch(ddp_results, method, momentum):
    ranks, problem, eta, rho = ddp_results
    x0 = problem.initial_point(seed=1) + 0.5
    expected = st.simulate(problem, method, eta, rho, steps=DDP_STEPS, x0=x0, momentum=momentum).x
    for result in ranks:
        actual = result["global", method, momentum].numpy()
        assert np.linalg.norm(actual - expected) <= 1e-10 * np.linalg.norm(expected)  # float64 rounding


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("method", SAM_METHODS)
def test_ddp_per_replica_ascent_is_bit_identical_across_ranks_and_equals_numpy_m_sharpness(ddp_results, method,
                                                                                           momentum):
    ranks, problem, eta, rho = ddp_results
    key = ("per_replica", method, momentum)
    assert torch.equal(ranks[0][key], ranks[1][key])
    x0 = problem.initial_point(seed=1) + 0.5
    expected = st.simulate(problem, method, eta, rho, steps=DDP_STEPS, x0=x0, ascent_groups=2, momentum=momentum).x
    actual = ranks[0][key].numpy()
    assert np.linalg.norm(actual - expected) <= 1e-10 * np.linalg.norm(expected)  # float64 rounding
    global_x = ranks[0]["global", method, momentum].numpy()
    assert np.linalg.norm(actual - global_x) > 1e-8 * np.linalg.norm(global_x)  # m-sharpness is another method


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


# -- AMP ----------------------------------------------------------------------------------------------------------

def _network(seed=0, batchnorm=False):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers = [torch.nn.Linear(6, 16)] + ([torch.nn.BatchNorm1d(16)] if batchnorm else []) + [
            torch.nn.Tanh(), torch.nn.Linear(16, 1)]
        model = torch.nn.Sequential(*layers)
    generator = torch.Generator().manual_seed(seed + 1)
    inputs = torch.randn(64, 6, generator=generator)
    targets = torch.randn(64, 1, generator=generator)
    return model, inputs, targets


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).double() for p in model.parameters()])


def _amp_run(method, style, steps=15, amp=True, scale=2.0 ** 10):
    model, inputs, targets = _network()
    scaler = torch.amp.GradScaler("cpu", init_scale=scale, enabled=amp)
    optimizer = SAMOptimizer(model.parameters(), torch.optim.SGD, method=method, rho=0.05, lr=0.1,
                             grad_scaler=scaler)

    def loss_fn():
        with torch.autocast("cpu", dtype=torch.float16, enabled=amp):
            return torch.nn.functional.mse_loss(model(inputs).float(), targets)

    def closure():
        loss = loss_fn()
        scaler.scale(loss).backward()
        return loss

    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        if style == "closure":
            loss = optimizer.step(closure)  # the closure is called at x (no gradient yet) and at y
        elif style == "scaler_closure":  # the gradient at x first, then the scaler's step with the closure
            loss = closure()
            scaler.step(optimizer, closure)
        else:
            loss = loss_fn()
            scaler.scale(loss).backward()
            optimizer.first_step(zero_grad=True)
            scaler.scale(loss_fn()).backward()
            scaler.step(optimizer)
        scaler.update()
        losses.append(float(loss.detach()))
    return model, losses


@pytest.mark.parametrize("style", ["closure", "scaler_closure", "two_halves"])
@pytest.mark.parametrize("method", SAM_METHODS)
def test_float16_amp_with_grad_scaler_follows_float32(method, style):
    reference, reference_losses = _amp_run(method, style, amp=False)
    model, losses = _amp_run(method, style)
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0]  # it trains (with S times the gradient, the loss grew to 1e3)
    assert abs(losses[-1] - reference_losses[-1]) <= 2e-2 * reference_losses[-1]  # see the module docstring
    assert float((_flat(model) - _flat(reference)).norm()) <= 2e-2 * float(_flat(reference).norm())


@pytest.mark.parametrize("where", ["x", "y"])
@pytest.mark.parametrize("method", SAM_METHODS)
def test_amp_overflow_skips_the_step_at_x_and_the_scaler_backs_off(method, where):
    model, inputs, targets = _network()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8)
    optimizer = SAMOptimizer(model.parameters(), torch.optim.SGD, method=method, rho=0.05, lr=0.1,
                             grad_scaler=scaler)
    calls = []

    def closure():
        calls.append(1)
        scaler.scale(torch.nn.functional.mse_loss(model(inputs), targets)).backward()
        if (where == "x") == (len(calls) == 1):
            model[0].weight.grad[0, 0] = float("inf")
        return None

    before = _flat(model)
    optimizer.step(closure)
    scaler.update()
    assert torch.equal(_flat(model), before)  # back at x, not at y
    assert optimizer.last_step_skipped
    assert scaler.get_scale() == 2.0 ** 7  # the default backoff factor 0.5
    optimizer.zero_grad()
    optimizer.step(lambda: scaler.scale(torch.nn.functional.mse_loss(model(inputs), targets)).backward())
    scaler.update()
    assert not optimizer.last_step_skipped and torch.isfinite(_flat(model)).all()
    assert not torch.equal(_flat(model), before)


def test_bfloat16_autocast_without_scaler_still_trains():
    model, inputs, targets = _network()
    optimizer = SAMOptimizer(model.parameters(), torch.optim.SGD, method="ssam", rho=0.05, lr=0.1)

    def closure():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = torch.nn.functional.mse_loss(model(inputs).float(), targets)
        loss.backward()
        return loss

    losses = [float(optimizer.step(closure).detach()) for _ in range(20) if optimizer.zero_grad() is None]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


# -- closures and wrong use ---------------------------------------------------------------------------------------

def _closure_run(style, method="ssam", steps=5):
    model, inputs, targets = _network()
    optimizer = SAMOptimizer(model.parameters(), torch.optim.SGD, method=method, rho=0.05, lr=0.1,
                             diagnostics=True)

    def closure():
        if style == "lbfgs":
            optimizer.zero_grad(set_to_none=False)
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        loss.backward()
        return loss

    losses, gammas = [], []
    for _ in range(steps):
        if style == "backward_first":
            optimizer.zero_grad()
            closure()
        elif style == "zeroed":
            optimizer.zero_grad(set_to_none=False)
        losses.append(optimizer.step(closure))
        gammas.append(optimizer.last_stats.gamma)
    return model, losses, gammas


@pytest.mark.parametrize("style", ["zeroed", "lbfgs", "only_step"])
@pytest.mark.parametrize("method", SAM_METHODS)
def test_every_closure_style_takes_the_same_steps(method, style):
    reference, _, _ = _closure_run("backward_first", method)
    model, losses, gammas = _closure_run(style, method)
    assert torch.equal(_flat(model), _flat(reference))  # the same float operations: bit for bit
    assert all(isinstance(loss, torch.Tensor) for loss in losses)
    if method in ("ssam", "susam"):
        assert all(float(g) > 0.5 for g in gammas)  # γ = 0 was the stall


def test_step_returns_the_loss_at_x():
    model, inputs, targets = _network()
    optimizer = SAMOptimizer(model.parameters(), torch.optim.SGD, method="sam", rho=0.05, lr=0.1)
    expected = torch.nn.functional.mse_loss(model(inputs), targets).detach()

    def closure():
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        loss.backward()
        return loss
    assert torch.equal(optimizer.step(closure).detach(), expected)


def test_wrong_use_raises_clearly():
    model, inputs, targets = _network()
    optimizer = SAMOptimizer(model.parameters(), torch.optim.SGD, method="ssam", rho=0.05, lr=0.1)
    torch.nn.functional.mse_loss(model(inputs), targets).backward()
    optimizer.first_step(zero_grad=True)
    with pytest.raises(ValueError, match="first_step\\(\\) was called twice"):
        optimizer.first_step()
    with pytest.raises(ValueError, match="middle of a step"):
        optimizer.step(lambda: None)
    torch.nn.functional.mse_loss(model(inputs), targets).backward()
    optimizer.second_step(zero_grad=True)
    with pytest.raises(ValueError, match="produced no gradient"):
        optimizer.step(lambda: torch.nn.functional.mse_loss(model(inputs), targets))  # no backward()
    with pytest.raises(ValueError, match="method='ssam'"):
        SAMOptimizer(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1, stable=True)
    with pytest.raises(ValueError, match="rho must be a real number"):
        SAMOptimizer(model.parameters(), torch.optim.SGD, rho="0.05", lr=0.1)
    with pytest.raises(ValueError, match="ascent_mode"):
        SAMOptimizer(model.parameters(), lr=0.1, ascent_mode="local")
    with pytest.raises(ValueError, match="max_grad_norm must be > 0"):
        SAMOptimizer(model.parameters(), lr=0.1, max_grad_norm=0.0)
    with pytest.raises(TypeError, match="grad_scaler"):
        SAMOptimizer(model.parameters(), lr=0.1, grad_scaler=2.0)
    with pytest.raises(ValueError, match="adaptive_eta must be >= 0"):
        SAMOptimizer(model.parameters(), lr=0.1, adaptive_eta=-0.01)


# -- BatchNorm ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("style", ["closure", "two_halves"])
def test_batchnorm_statistics_are_updated_once_per_step_at_x(style):
    steps = 4
    model, inputs, targets = _network(batchnorm=True)
    plain = copy.deepcopy(model)
    optimizer = SAMOptimizer(model.parameters(), torch.optim.SGD, method="ssam", rho=0.05, lr=0.1,
                             model=model if style == "closure" else None)
    sgd = torch.optim.SGD(plain.parameters(), lr=0.1)

    def loss_fn(m=model):
        return torch.nn.functional.mse_loss(m(inputs), targets)

    for step in range(steps):
        optimizer.zero_grad()
        if style == "closure":
            optimizer.step(lambda: loss_fn().backward())
        else:
            loss_fn().backward()
            optimizer.first_step(zero_grad=True)
            with frozen_running_stats(model):
                loss_fn().backward()
            optimizer.second_step()
        if step == 0:
            sgd.zero_grad()
            loss_fn(plain).backward()
            sgd.step()  # one forward at x: the statistics a SAM step must leave
            bn, plain_bn = model[1], plain[1]
            assert torch.equal(bn.running_mean, plain_bn.running_mean)
            assert torch.equal(bn.running_var, plain_bn.running_var)
    assert int(model[1].num_batches_tracked) == steps
    assert model[1].track_running_stats  # restored


# -- torch.compile ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("compiled", ["first_step", "step"])
def test_compiled_steps_equal_eager(compiled):
    """aot_eager runs TorchDynamo and AOTAutograd (where the step state was lost) without inductor's C++ build,
    which takes a minute on a CI machine; the GPU check compiles with inductor."""
    results = []
    for compile_it in (False, True):
        torch._dynamo.reset()
        model, inputs, targets = _network()
        optimizer = SAMOptimizer(model.parameters(), torch.optim.SGD, method="ssam", rho=0.05, lr=0.1,
                                 momentum=0.9)
        first_step, step = optimizer.first_step, optimizer.step
        if compile_it:
            first_step = torch.compile(first_step, backend="aot_eager")
            step = torch.compile(step, backend="aot_eager")

        def closure():
            loss = torch.nn.functional.mse_loss(model(inputs), targets)
            loss.backward()
            return loss

        for _ in range(3):
            optimizer.zero_grad()
            if compiled == "first_step":
                closure()
                first_step(zero_grad=True)
                closure()
                optimizer.second_step()
            else:
                step(closure)
        results.append(_flat(model))
    assert float((results[1] - results[0]).norm()) <= 1e-6 * float(results[0].norm())  # float32 tolerance


# -- clipping -----------------------------------------------------------------------------------------------------

def test_clipping_g_of_y_does_nothing_for_ssam_and_max_grad_norm_clips_the_descent():
    def run(clip_ascent_gradient=False, max_grad_norm=None):
        model, inputs, targets = _network()
        optimizer = SAMOptimizer(model.parameters(), torch.optim.SGD, method="ssam", rho=0.05, lr=0.1,
                                 max_grad_norm=max_grad_norm)
        before = _flat(model)
        torch.nn.functional.mse_loss(model(inputs), targets).backward()
        optimizer.first_step(zero_grad=True)
        torch.nn.functional.mse_loss(model(inputs), targets).backward()
        if clip_ascent_gradient:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1e-3)
        optimizer.second_step()
        descent = torch.cat([p.grad.reshape(-1).double() for p in model.parameters()])
        return _flat(model), before, descent

    plain, _, plain_descent = run()
    clipped_y, _, _ = run(clip_ascent_gradient=True)
    # γ rescales the clipped g(y) back to ‖g(x)‖: the same step to float32 rounding (1e-6 relative).
    assert float((clipped_y - plain).norm()) <= 1e-6 * float(plain.norm())
    limit = 0.5 * float(plain_descent.norm())
    clipped, x, descent = run(max_grad_norm=limit)
    assert abs(float(descent.norm()) - limit) <= 1e-5 * limit  # clip_grad_norm_'s 1e-6 offset, float32
    assert abs(float((clipped - x).norm()) - 0.1 * limit) <= 1e-5 * 0.1 * limit  # plain SGD moves lr · ‖d‖
    unclipped, _, _ = run(max_grad_norm=10 * limit)
    assert torch.equal(unclipped, plain)


# -- ASAM's η -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", SAM_METHODS)
def test_asam_eta_in_torch_equals_numpy(method):
    problem = _least_squares()
    x0 = problem.initial_point(seed=1) + 0.5
    eta, rho, asam_eta = 0.02, 0.05, 0.01
    module = _Linear(x0)
    optimizer = SAMOptimizer(module.parameters(), torch.optim.SGD, method=method, rho=rho, lr=eta,
                             adaptive=True, adaptive_eta=asam_eta)
    A, b = torch.tensor(problem.A), torch.tensor(problem.b)
    for _ in range(30):
        optimizer.zero_grad()
        optimizer.step(lambda: module(A, b).backward())
    expected = st.simulate(problem, method, eta, rho, steps=30, x0=x0, adaptive=True, adaptive_eta=asam_eta).x
    default = st.simulate(problem, method, eta, rho, steps=30, x0=x0, adaptive=True).x
    actual = module.x.detach().numpy()
    assert np.linalg.norm(actual - expected) <= 1e-10 * np.linalg.norm(expected)  # float64 rounding
    assert np.linalg.norm(default - expected) > 1e-6 * np.linalg.norm(expected)  # η changes the step


def test_asam_param_groups_scale_weights_only():
    model, _, _ = _network()
    groups = asam_param_groups(model, eta=0.01)
    assert [len(g["params"]) for g in groups] == [2, 2]
    assert groups[0]["adaptive"] and groups[0]["adaptive_eta"] == 0.01 and not groups[1]["adaptive"]
    optimizer = SAMOptimizer(groups, torch.optim.SGD, method="sam", rho=0.05, lr=0.1)
    assert optimizer.param_groups[1]["adaptive_eta"] == 0.0
