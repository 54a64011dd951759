"""SAMOptimizer: call styles, base optimizers, param groups, checkpoints, schedulers, dtypes, bad input.

Exact comparisons (``torch.equal``) where both sides run the same float operations; otherwise the tolerance is
stated: float64 closed forms 1e-12 relative (a few ulps of a handful of operations); for the descent gradient of
one step against a float64 run, float32 1e-6 and bfloat16 3e-2 relative (about 8 and 4 units of each dtype's
epsilon, 1.2e-7 and 7.8e-3; measured 1.9e-7 and 5.0e-3 over five seeds).
"""

from __future__ import annotations

import copy
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import samtheory

from samtheory.torch import SAMOptimizer
from samtheory.torch.optimizer import METHOD_NAMES

SAM_METHODS = ("sam", "usam", "ssam", "susam")


def _problem(dtype=torch.float64, seed=0):
    """A small two-layer network on fixed data, and a loss closure factory."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(32, 5, generator=generator, dtype=torch.float64)
    targets = torch.randn(32, 2, generator=generator, dtype=torch.float64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    model = model.to(dtype)
    inputs, targets = inputs.to(dtype), targets.to(dtype)

    def loss_fn(m=model):
        return torch.mean((m(inputs).double() - targets.double()) ** 2)
    return model, loss_fn


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).double() for p in model.parameters()])


def _train(optimizer, loss_fn, steps):
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn().backward()
        optimizer.step(lambda: loss_fn().backward())


# -- import isolation -------------------------------------------------------------------------------------------

def test_import_samtheory_and_its_cli_do_not_import_torch():
    code = ("import sys, samtheory, samtheory.cli; samtheory.cli.build_parser(); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr


def test_samtheory_torch_uses_the_real_torch_package():
    import samtheory.torch.optimizer as module

    assert module.torch is torch  # absolute import: not shadowed by the samtheory.torch subpackage
    package = Path(samtheory.__file__).resolve().parent
    assert not Path(torch.__file__).resolve().is_relative_to(package)  # torch's file lies outside samtheory/


# -- the update rule ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", SAM_METHODS)
def test_first_and_second_step_equal_step_with_closure(method):
    model_a, loss_a = _problem()
    model_b, loss_b = _problem()
    a = SAMOptimizer(model_a.parameters(), torch.optim.SGD, method=method, rho=0.1, lr=0.05)
    b = SAMOptimizer(model_b.parameters(), torch.optim.SGD, method=method, rho=0.1, lr=0.05)
    _train(a, loss_a, 3)
    for _ in range(3):
        b.zero_grad()
        loss_b().backward()
        b.first_step(zero_grad=True)
        loss_b().backward()
        b.second_step(zero_grad=True)
    assert torch.equal(_flat(model_a), _flat(model_b))


def test_step_calls_the_closure_at_x_when_no_gradient_is_present():
    model_a, loss_a = _problem()
    model_b, loss_b = _problem()
    a = SAMOptimizer(model_a.parameters(), method="ssam", rho=0.1, lr=0.05)
    b = SAMOptimizer(model_b.parameters(), method="ssam", rho=0.1, lr=0.05)
    _train(a, loss_a, 2)
    for _ in range(2):
        b.zero_grad()

        def closure():
            loss = loss_b()
            loss.backward()
            return loss
        returned = b.step(closure)
        assert returned is not None and returned.ndim == 0  # the loss at x
    assert torch.equal(_flat(model_a), _flat(model_b))


def test_built_base_optimizer_and_class_form_agree():
    model_a, loss_a = _problem()
    model_b, loss_b = _problem()
    a = SAMOptimizer(model_a.parameters(), torch.optim.SGD, method="susam", rho=0.1, lr=0.05, momentum=0.9)
    b = SAMOptimizer(torch.optim.SGD(model_b.parameters(), lr=0.05, momentum=0.9), method="susam", rho=0.1)
    assert b.param_groups is b.base_optimizer.param_groups and b.param_groups[0]["rho"] == 0.1
    _train(a, loss_a, 4)
    _train(b, loss_b, 4)
    assert torch.equal(_flat(model_a), _flat(model_b))


@pytest.mark.parametrize("base", ["sgd_momentum", "adamw"])
@pytest.mark.parametrize("method", SAM_METHODS)
def test_base_optimizer_receives_the_renormalized_ascent_gradient(base, method):
    """docs/theory.md §2: momentum and weight decay act on γ g(y), at the restored point x (official code)."""
    make = {"sgd_momentum": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3),
            "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=1e-2)}[base]
    model, loss_fn = _problem()
    manual_model = copy.deepcopy(model)
    optimizer = SAMOptimizer(make(model.parameters()), method=method, rho=0.1)
    manual = make(manual_model.parameters())
    params = list(manual_model.parameters())
    for _ in range(3):
        _train(optimizer, loss_fn, 1)
        # The same step by hand (docs/theory.md §2 table).
        grads = torch.autograd.grad(loss_fn(manual_model), params)
        norm = torch.sqrt(sum((g * g).sum() for g in grads))
        scale = 0.1 / norm if method in ("sam", "ssam") else 0.1
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.add_(g * scale)
        ascent = torch.autograd.grad(loss_fn(manual_model), params)
        gamma = norm / torch.sqrt(sum((g * g).sum() for g in ascent)) if method in ("ssam", "susam") else 1.0
        with torch.no_grad():
            for p, g, a in zip(params, grads, ascent):
                p.sub_(g * scale)
                p.grad = a * gamma
        manual.step()
        # 1e-12 relative: the same operations up to summation order (foreach norm vs. a Python sum).
        difference = (_flat(model) - _flat(manual_model)).norm() / _flat(manual_model).norm()
        assert difference <= 1e-12


def test_gd_is_the_base_optimizer_itself():
    model_a, loss_a = _problem()
    model_b, loss_b = _problem()
    a = SAMOptimizer(model_a.parameters(), torch.optim.SGD, method="gd", lr=0.05, momentum=0.9)
    b = torch.optim.SGD(model_b.parameters(), lr=0.05, momentum=0.9)
    for _ in range(3):
        a.zero_grad()
        loss_a().backward()
        a.step()  # gd needs no closure
        b.zero_grad()
        loss_b().backward()
        b.step()
    assert torch.equal(_flat(model_a), _flat(model_b))


def test_normalized_ascent_has_length_rho_over_all_parameters():
    model, loss_fn = _problem()
    optimizer = SAMOptimizer(model.parameters(), method="sam", rho=0.3, lr=0.1)
    before = _flat(model)
    loss_fn().backward()
    optimizer.first_step()
    # Global norm: ‖y − x‖ over all parameters together is ρ (1e-12 relative, float64).
    assert abs(float((_flat(model) - before).norm()) - 0.3) <= 1e-12 * 0.3
    optimizer.second_step()


def test_renormalized_step_has_the_length_of_lr_times_grad_norm():
    """docs/theory.md O4: with plain SGD, ‖x_{t+1} − x_t‖ = η ‖g(x_t)‖ for ssam and susam."""
    for method in ("ssam", "susam"):
        model, loss_fn = _problem()
        optimizer = SAMOptimizer(model.parameters(), method=method, rho=0.2, lr=0.07)
        before = _flat(model)
        optimizer.zero_grad()
        loss_fn().backward()
        grad_norm = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).norm()
        optimizer.step(lambda: loss_fn().backward())
        step = (_flat(model) - before).norm()
        assert abs(float(step - 0.07 * grad_norm)) <= 1e-12 * float(step)  # float64, a few ulps
        assert abs(float(optimizer.last_stats.grad_norm - grad_norm)) <= 1e-12 * float(grad_norm)


def test_per_group_rho_and_global_norm():
    model, loss_fn = _problem()
    first, second = model[0], model[2]
    optimizer = SAMOptimizer([{"params": first.parameters(), "rho": 0.0}, {"params": second.parameters()}],
                             method="sam", rho=0.1, lr=0.1)
    loss_fn().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    norm = torch.sqrt(sum((g * g).sum() for g in grads))
    x = [p.detach().clone() for p in model.parameters()]
    optimizer.first_step()
    for p, p0, g in zip(first.parameters(), x[:2], grads[:2]):
        assert torch.equal(p, p0)  # rho = 0 in this group: not moved at all
    for p, p0, g in zip(second.parameters(), x[2:], grads[2:]):
        # ε = ρ g/‖g‖ with the norm over both groups (1e-12 relative, float64)
        assert torch.allclose(p - p0, 0.1 * g / norm, rtol=1e-12, atol=1e-15)
    optimizer.second_step()
    for p, p0 in zip(model.parameters(), x):
        assert not torch.equal(p, p0)  # both groups took the descent step


def test_parameters_without_gradient_are_skipped():
    model, loss_fn = _problem()
    unused = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    optimizer = SAMOptimizer([*model.parameters(), unused], torch.optim.SGD, method="ssam", rho=0.1, lr=0.1,
                             momentum=0.9)
    _train(optimizer, loss_fn, 2)
    assert unused.grad is None
    assert torch.equal(unused.detach(), torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("method", SAM_METHODS)
def test_zero_gradient_gives_no_step_and_no_nan(method, adaptive):
    x = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    optimizer = SAMOptimizer([x], method=method, rho=0.1, adaptive=adaptive, lr=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        (0.0 * x).sum().backward()
        optimizer.step(lambda: (0.0 * x).sum().backward())
    assert torch.equal(x.detach(), torch.tensor([1.0, -2.0], dtype=torch.float64))
    if method in ("ssam", "susam"):
        assert optimizer.last_stats.gamma.item() == 1.0  # docs/theory.md: ‖g(y)‖ = 0 → γ = 1


def test_truncate_caps_gamma_at_one():
    # f = −cos on a saddle-like region: ‖g(y)‖ < ‖g(x)‖ near the maximum, so γ > 1 without truncation.
    values = []
    for truncate in (False, True):
        x = torch.nn.Parameter(torch.tensor([0.3, -0.2], dtype=torch.float64))
        optimizer = SAMOptimizer([x], method="susam", rho=0.5, truncate=truncate, lr=0.1)
        optimizer.zero_grad()
        torch.cos(x).sum().backward()
        optimizer.step(lambda: torch.cos(x).sum().backward())
        values.append(optimizer.last_stats.gamma.item())
    assert values[0] > 1.0 and values[1] == 1.0


# -- param groups, checkpoints, schedulers ----------------------------------------------------------------------

def test_state_dict_round_trip_resumes_exactly():
    model_a, loss_a = _problem()
    a = SAMOptimizer(model_a.parameters(), torch.optim.SGD, method="ssam", rho=0.1, truncate=True, lr=0.05,
                     momentum=0.9)
    _train(a, loss_a, 3)
    checkpoint = copy.deepcopy(a.state_dict())
    assert checkpoint["sam"] == {"method": "ssam", "truncate": True, "diagnostics": False, "ascent_mode": "global",
                                 "max_grad_norm": None}
    model_b, loss_b = _problem()
    model_b.load_state_dict(model_a.state_dict())
    b = SAMOptimizer(model_b.parameters(), torch.optim.SGD, method="sam", rho=0.7, lr=1.0, momentum=0.9)
    b.load_state_dict(checkpoint)
    assert (b.method, b.truncate, b.param_groups[0]["rho"], b.param_groups[0]["lr"]) == ("ssam", True, 0.1, 0.05)
    assert b.param_groups is b.base_optimizer.param_groups and b.state is b.base_optimizer.state
    _train(a, loss_a, 3)
    _train(b, loss_b, 3)
    assert torch.equal(_flat(model_a), _flat(model_b))  # momentum buffers restored


@pytest.mark.parametrize("attach_to", ["base", "wrapper"])
def test_lr_scheduler_drives_the_step_size(attach_to):
    model, loss_fn = _problem()
    optimizer = SAMOptimizer(model.parameters(), method="ssam", rho=0.1, lr=0.08)
    target = optimizer.base_optimizer if attach_to == "base" else optimizer
    scheduler = torch.optim.lr_scheduler.StepLR(target, step_size=1, gamma=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "lr_scheduler.step() before optimizer.step()"
        for t in range(3):
            before = _flat(model)
            optimizer.zero_grad()
            loss_fn().backward()
            grad_norm = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).norm()
            optimizer.step(lambda: loss_fn().backward())
            scheduler.step()
            # O4 again: the step length is lr_t ‖g‖ with lr_t = 0.08 · 0.5^t (1e-12 relative, float64).
            expected = 0.08 * 0.5 ** t * float(grad_norm)
            assert abs(float((_flat(model) - before).norm()) - expected) <= 1e-12 * expected
    assert optimizer.param_groups[0]["lr"] == 0.08 * 0.5 ** 3


def test_add_param_group_reaches_the_base_optimizer():
    model, loss_fn = _problem()
    optimizer = SAMOptimizer(model[0].parameters(), method="sam", rho=0.1, lr=0.1)
    optimizer.add_param_group({"params": model[2].parameters(), "rho": 0.2})
    assert len(optimizer.base_optimizer.param_groups) == 2
    assert optimizer.param_groups[1]["rho"] == 0.2 and optimizer.param_groups[1]["adaptive"] is False
    before = _flat(model)
    _train(optimizer, loss_fn, 1)
    assert not torch.equal(before[-18:], _flat(model)[-18:])  # the added group was updated


# -- devices, dtypes, synchronization ---------------------------------------------------------------------------

class _OpRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_no_host_synchronization_inside_a_step(method):
    """A device→host read is an ``aten._local_scalar_dense`` call (``.item()``, ``bool(t)``); a step makes none."""
    model, loss_fn = _problem(torch.float32)
    optimizer = SAMOptimizer(model.parameters(), method=method, rho=0.1, adaptive=True, truncate=True,
                             diagnostics=True, lr=0.05, momentum=0.9)
    recorder = _OpRecorder()
    loss_fn().backward()
    with recorder:
        optimizer.first_step(zero_grad=True)
    loss_fn().backward()
    with recorder:
        optimizer.second_step()
    assert recorder.ops, "the recorder saw nothing"
    assert not [op for op in recorder.ops if "_local_scalar_dense" in op or "is_nonzero" in op]


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-6), (torch.bfloat16, 3e-2)])
@pytest.mark.parametrize("method", SAM_METHODS)
def test_low_precision_matches_float64(dtype, tolerance, method):
    model64, loss64 = _problem(torch.float64)
    model, loss_fn = _problem(dtype)
    model.load_state_dict({k: v.to(dtype) for k, v in model64.state_dict().items()})
    model64.load_state_dict({k: v.to(torch.float64) for k, v in model.state_dict().items()})  # same start
    reference = SAMOptimizer(model64.parameters(), method=method, rho=0.1, lr=0.05, diagnostics=True)
    optimizer = SAMOptimizer(model.parameters(), method=method, rho=0.1, lr=0.05, diagnostics=True)
    _train(reference, loss64, 1)
    _train(optimizer, loss_fn, 1)
    # The descent gradient γ g(y) handed to the base optimizer (left in .grad): the parameters themselves are
    # rounded to the dtype's grid after the step, which says nothing about the rule.
    descent64 = torch.cat([p.grad.reshape(-1) for p in model64.parameters()])
    descent = torch.cat([p.grad.reshape(-1).double() for p in model.parameters()])
    assert float((descent - descent64).norm() / descent64.norm()) <= tolerance  # see the module docstring
    assert optimizer.last_stats.grad_norm.dtype == torch.float32  # accumulated in float32 at least
    assert reference.last_stats.grad_norm.dtype == torch.float64
    assert all(p.dtype == dtype for p in model.parameters())


def test_bfloat16_norm_is_accumulated_in_float32():
    p = torch.nn.Parameter(torch.zeros(4096, dtype=torch.bfloat16))
    p.grad = torch.full((4096,), 0.01, dtype=torch.bfloat16)
    optimizer = SAMOptimizer([p], method="sam", rho=0.1, lr=0.1, diagnostics=True)
    optimizer.first_step()
    exact = float(p.grad.double().norm())
    # float32 pairwise summation of 4096 equal squares: error ≲ log2(4096)·6e-8 < 1e-6 relative
    assert abs(optimizer.last_stats.grad_norm.item() - exact) <= 1e-6 * exact
    optimizer.second_step()


# -- bad input ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(rho=-0.1), "rho must be >= 0"),
    (dict(rho=float("nan")), "rho must be finite"),
    (dict(rho=[0.1, 0.2]), "rho must be a real number"),
    (dict(method="adam"), "method must be one of"),
    (dict(adaptive="yes"), "adaptive must be True or False"),
    (dict(truncate=1), "truncate must be True or False"),
    (dict(diagnostics=None), "diagnostics must be True or False"),
    (dict(base_optimizer=torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1)), "base_optimizer must be"),
    (dict(base_optimizer=torch.optim.SGD, momentum="x"), "rejected its arguments|momentum"),
])
def test_bad_constructor_arguments(kwargs, match):
    model, _ = _problem()
    with pytest.raises(ValueError, match=match):
        SAMOptimizer(model.parameters(), **{"lr": 0.1, **kwargs})


def test_bad_use():
    model, loss_fn = _problem()
    with pytest.raises(ValueError, match="pass neither base_optimizer"):
        SAMOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), lr=0.1)
    with pytest.raises(ValueError, match="rho must be >= 0"):
        SAMOptimizer([{"params": model.parameters(), "rho": -1.0}], lr=0.1)
    optimizer = SAMOptimizer(model.parameters(), method="ssam", lr=0.1)
    with pytest.raises(ValueError, match="needs a closure"):
        optimizer.step()  # no gradient and no closure
    loss_fn().backward()
    with pytest.raises(ValueError, match="needs a closure"):
        optimizer.step()  # the gradient at x, but nothing to compute g(y)
    with pytest.raises(ValueError, match="needs a first_step"):
        optimizer.second_step()
    with pytest.raises(ValueError, match="rho must be >= 0"):
        optimizer.add_param_group({"params": [torch.nn.Parameter(torch.ones(1))], "rho": -0.5})
    state = optimizer.state_dict()
    state["sam"] = {"method": "lion"}
    with pytest.raises(ValueError, match="method must be one of"):
        optimizer.load_state_dict(state)


def test_a_registered_family_member_runs_in_torch_like_its_builtin_twin():
    """The optimizer reads the method's structure from the registry: a new spec with susam's flags steps exactly
    like susam, and a bare NumPy rule (unknown structure) is refused with the reason."""
    import samtheory as st
    from samtheory.torch import SAMOptimizer

    spec = st.sharpness_aware_method("torch_susam", normalized=False, renormalized=True)
    results = []
    for method in (spec, "susam"):
        torch.manual_seed(0)
        weight = torch.nn.Parameter(torch.randn(4, dtype=torch.float64))
        optimizer = SAMOptimizer([weight], torch.optim.SGD, method=method, rho=0.1, lr=0.05)

        def closure():
            optimizer.zero_grad()
            loss = (torch.arange(1.0, 5.0, dtype=torch.float64) * weight**2).sum()
            loss.backward()
            return loss

        for _ in range(5):
            optimizer.step(closure)
        results.append(weight.detach().clone())
    assert torch.equal(results[0], results[1])  # same rule, same structure: bit for bit
    with pytest.raises(ValueError, match="unknown structure"):
        SAMOptimizer([torch.nn.Parameter(torch.zeros(2))], torch.optim.SGD, method=st.resolve_method(lambda *a, **k: None),
                     lr=0.1)
