"""SAMOptimizer under hostile and careless use (issue 15): each regression test here failed before its fix.

- a closure that raises leaves the parameters at x;
- gradient norms neither overflow nor underflow (float32 gradients of 1e20–1e30 and 1e-30, float64 ones of
  1e±200): the step equals the NumPy reference, which rescales (``samtheory.methods._row_norm``);
- bad ``lr``/``rho`` values and complex parameters are refused with a ``ValueError`` naming them;
- the fuzz contract: hypothesis over the constructor's arguments, each bad one refused with a ``ValueError`` or
  ``TypeError`` naming it, and valid use on gradients of any scale leaks no NaN and equals the NumPy reference;
- ``copy.deepcopy`` of an optimizer works;
- the Hessian tools: a non-finite loss or curvature is a clear error, a loss without curvature gives 0, complex
  parameters are refused.

Tolerances, relative to ‖x_0‖ (the iterates stay within a few times ‖x_0‖ here): float64 1e-12 (a handful of
operations, each exact to 1.1e-16, with γ a ratio of two norms); float32 1e-5 (the same operations at 6e-8 each,
≈ 80 units of float32 rounding: measured at most 2.4e-7); bfloat16 1e-2 (≈ 3 units of its 3.9e-3).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as hst

import samtheory as st
from samtheory.torch import SAMOptimizer, hessian_vector_product, top_hessian_eigenvalue
from samtheory.torch import optimizer as optimizer_module
from samtheory.torch.optimizer import METHOD_NAMES

SAM_METHODS = ("sam", "usam", "ssam", "susam")
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 1e-2}  # see the module docstring


def _model(seed=0, dtype=torch.float64):
    """A small network on fixed data, and its loss (on ``model``, or on a copy passed as ``m``)."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(16, 4, generator=generator, dtype=dtype)
    targets = torch.randn(16, 2, generator=generator, dtype=dtype)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)).to(dtype)

    def loss_fn(m=model):
        return torch.mean((m(inputs) - targets) ** 2)
    return model, loss_fn


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _train(optimizer, loss_fn, steps):
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn().backward()
        optimizer.step(lambda: loss_fn().backward())


# -- 1. a closure that raises ---------------------------------------------------------------------------------

class _ClosureFailed(Exception):
    pass


@pytest.mark.parametrize("error_type", [_ClosureFailed, KeyboardInterrupt])
@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("method", SAM_METHODS)
def test_a_closure_that_raises_leaves_the_parameters_at_x(method, adaptive, error_type):
    model, loss_fn = _model()
    optimizer = SAMOptimizer(model.parameters(), torch.optim.SGD, method=method, rho=0.1, adaptive=adaptive,
                             lr=0.05, momentum=0.9)
    _train(optimizer, loss_fn, 2)  # momentum buffers exist
    twin_model, twin_optimizer = copy.deepcopy((model, optimizer))
    x = _flat(model).clone()
    optimizer.zero_grad()
    loss_fn().backward()
    error = error_type("the closure failed at the ascent point")

    def failing_closure():
        loss_fn().backward()  # a gradient at y, then the failure
        raise error

    with pytest.raises(error_type) as raised:
        optimizer.step(failing_closure)
    assert raised.value is error  # propagated unchanged
    assert torch.equal(_flat(model), x)  # exact: x is restored by copy, not by subtracting ε
    assert all(p.grad is None for p in model.parameters())  # the gradients taken at y are dropped

    # The caller carries on: a step without zero_grad() starts from g(x) again (the closure is called at x), and
    # equals the step of a twin that never saw the failure, bit for bit (momentum buffers untouched).
    def closure():
        loss = loss_fn()
        loss.backward()
        return loss

    assert optimizer.step(closure) is not None  # the loss at x: the closure was called there
    twin_optimizer.zero_grad()
    loss_fn(twin_model).backward()
    twin_optimizer.step(lambda: loss_fn(twin_model).backward())
    assert torch.equal(_flat(model), _flat(twin_model))


def test_a_closure_that_is_not_callable_or_a_bad_zero_grad_is_refused_before_any_move():
    model, loss_fn = _model()
    optimizer = SAMOptimizer(model.parameters(), method="ssam", rho=0.1, lr=0.1)
    loss_fn().backward()
    x = _flat(model).clone()
    with pytest.raises(TypeError, match="^closure must be callable"):  # was "'int' object is not callable"
        optimizer.step(3)
    with pytest.raises(ValueError, match="^zero_grad must be True or False"):  # "yes" was taken as True
        optimizer.first_step(zero_grad="yes")
    assert torch.equal(_flat(model), x) and all(p.grad is not None for p in model.parameters())
    optimizer.first_step()
    with pytest.raises(ValueError, match="^zero_grad must be True or False"):
        optimizer.second_step(zero_grad=None)
    optimizer.second_step()  # the step is still pending, and completes


# -- 2. norms that neither overflow nor underflow ---------------------------------------------------------------

def _quadratic_run(method, dtype, scale, *, adaptive=False, truncate=False, steps=2, rho_factor=0.05,
                   lr_factor=0.1, dim=6, seed=0):
    """``steps`` steps of SAMOptimizer and of the NumPy reference rule on f(x) = ½ Σ λ_i x_i², λ ∝ ``scale``.

    The closure sets the gradient λ ⊙ x in ``dtype`` (no autograd, so that f itself need not be representable).
    ρ is ``rho_factor`` for the normalized ascents and ``rho_factor``/λ_max for the unnormalized ones (so ε is of
    the size of x either way), and η is ``lr_factor`` times the step that keeps the map stable. Returns the largest error over the iterates relative
    to ‖x_0‖, with torch's statistics and the reference's result of the last step.
    """
    rng = np.random.default_rng(seed)
    x0 = torch.tensor(rng.uniform(0.5, 2.0, dim) * rng.choice([-1.0, 1.0], dim), dtype=dtype)
    lam = torch.tensor(scale * np.linspace(1.0, 4.0, dim), dtype=dtype)
    lam64 = lam.double().numpy()  # the reference sees exactly the λ that torch uses
    beta = float(lam64[-1])
    # The unnormalized ascent multiplies the curvature by 1 + ρβ, times |x|² when adaptive (T = |x|): ρ and η are
    # chosen so that the map stays contracting or marginal, where rounding errors are not amplified.
    curvature = 1.0 + (float(x0.abs().max()) ** 2 if adaptive else 0.0)
    if method in ("sam", "ssam"):
        rho, eta = rho_factor, lr_factor / beta
    else:
        rho = rho_factor / (beta * curvature)
        eta = lr_factor / (beta * (1.0 + rho * beta * curvature))
    x = torch.nn.Parameter(x0.clone())
    optimizer = SAMOptimizer([x], torch.optim.SGD, method=method, rho=rho, adaptive=adaptive, truncate=truncate,
                             lr=eta, diagnostics=True)

    def closure():
        x.grad = lam * x.detach()

    problem = st.Quadratic(lam64)
    reference = x0.double().numpy()[None, :]
    scale_of_x = float(np.linalg.norm(reference))  # the iterates stay within a few times ‖x_0‖, or shrink to 0
    worst = 0.0
    for _ in range(steps):
        optimizer.zero_grad()
        closure()
        optimizer.step(closure)
        step = st.METHODS[method](reference, problem.grad, eta, rho, adaptive=adaptive, truncate=truncate)
        worst = max(worst, float(np.linalg.norm(x.detach().double().numpy() - step.x[0]) / scale_of_x))
        reference = step.x
        stats = optimizer.last_stats
        assert all(v is None or bool(torch.isfinite(v)) for v in stats), stats
    return worst, optimizer.last_stats, step


EXTREME_SCALES = [(torch.float32, 1e20), (torch.float32, 1e25), (torch.float32, 1e30), (torch.float32, 1e-30),
                  (torch.float64, 1e200), (torch.float64, 1e-200)]


@pytest.mark.parametrize("concatenate", [True, False], ids=["cpu-concatenated", "per-tensor"])
@pytest.mark.parametrize("dtype, scale", EXTREME_SCALES)
@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_extreme_gradients_give_the_reference_step(method, adaptive, dtype, scale, concatenate, monkeypatch):
    """Norms of gradients near 1e20 and beyond overflowed in float32 (ε = 0 and γ = 1 silently); near 1e-30 they
    underflowed to 0. The reference rescales; so must the optimizer (both of its norm paths)."""
    if not concatenate:
        monkeypatch.setattr(optimizer_module, "_CPU_CONCATENATE_LIMIT", 0)
    error, stats, step = _quadratic_run(method, dtype, scale, adaptive=adaptive)
    assert error <= TOLERANCE[dtype]
    tolerance = TOLERANCE[dtype]
    assert math.isclose(stats.grad_norm.item(), step.grad_norm[0], rel_tol=tolerance)
    if step.gamma is not None:
        assert math.isclose(stats.gamma.item(), step.gamma[0], rel_tol=tolerance)


@pytest.mark.parametrize("dtype, magnitude", [(torch.float32, m) for m in (1e-44, 1e-38, 1e-30, 1e20, 1e30, 1e37)]
                         + [(torch.bfloat16, m) for m in (1e-38, 1e-30, 1e20, 1e30, 1e37)])  # bfloat16 has no 1e-44
def test_the_normalized_ascent_has_length_rho_at_any_gradient_scale(dtype, magnitude):
    """ε = ρ g/‖g‖ from subnormal float32 gradients to ones whose norm nears float32's largest value: the two
    factors g·2^-k and ρ/‖g·2^-k‖ are applied separately, so ρ/‖g‖ never overflows nor becomes subnormal."""
    values = torch.tensor([1.0, -3.0, 2.0, 0.5] * 64, dtype=torch.float64) * magnitude
    p = torch.nn.Parameter(torch.zeros(values.numel(), dtype=dtype))
    p.grad = values.to(dtype)
    if dtype == torch.float32 and magnitude == 1e-44:
        assert p.grad[0].item() != 0.0  # subnormal, not flushed
    grad = p.grad.double().numpy()
    expected = 0.1 * grad / np.linalg.norm(grad)  # float64: no overflow or underflow at these scales
    optimizer = SAMOptimizer([p], method="sam", rho=0.1, lr=0.1, diagnostics=True)
    optimizer.first_step()
    ascent = p.detach().double().numpy()
    # float32: 1e-6 relative (a few roundings); bfloat16: 1e-2; subnormal gradients carry fewer digits (1e-44
    # has 4 bits in float32), whose rounding the reference sees too: the comparison is with the rounded g.
    tolerance = 1e-6 if dtype == torch.float32 else 1e-2
    assert np.linalg.norm(ascent - expected) <= tolerance * 0.1
    # The reported ‖g‖ is a float32 number: below 1.2e-38 it is subnormal, spaced by 1.4e-45.
    norm = float(np.linalg.norm(grad))
    assert abs(optimizer.last_stats.grad_norm.item() - norm) <= tolerance * norm + torch.finfo(torch.float32).tiny * 2 ** -23
    optimizer.second_step()


def test_norms_still_overflow_where_the_norm_itself_does():
    """A norm beyond float32's range is reported as inf (honestly), and the step stays what the rule gives."""
    p = torch.nn.Parameter(torch.zeros(16))
    p.grad = torch.full((16,), 3e38)
    optimizer = SAMOptimizer([p], method="sam", rho=0.1, lr=0.0, diagnostics=True)
    optimizer.first_step()
    assert optimizer.last_stats.grad_norm.item() == math.inf  # ‖g‖ = 1.2e39 > 3.4e38
    assert torch.allclose(p.detach(), torch.full((16,), 0.1 / 4), rtol=1e-6)  # ε = ρ g/‖g‖ is still exact
    optimizer.second_step()


# -- 3. bad lr and rho; 4. complex parameters ---------------------------------------------------------------------

BAD_NUMBERS = [float("nan"), float("inf"), -float("inf"), -0.1, True, False, "0.1", None, [0.1], 1 + 0j,
               np.float64("nan"), torch.tensor(float("nan")), torch.tensor([0.1, 0.2]), torch.tensor(True)]


@pytest.mark.parametrize("value", BAD_NUMBERS, ids=repr)
@pytest.mark.parametrize("name", ["lr", "rho"])
def test_a_bad_lr_or_rho_is_refused_naming_it(name, value):
    model, _ = _model()
    kwargs = {"lr": 0.1, "rho": 0.05, name: value}
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        SAMOptimizer(model.parameters(), **kwargs)
    with pytest.raises(ValueError, match=rf"^{name} must be .*\(param group 1\)"):  # in a group of its own
        SAMOptimizer([{"params": model[0].parameters()}, {"params": model[2].parameters(), name: value}], lr=0.1)
    optimizer = SAMOptimizer(model[0].parameters(), lr=0.1)
    with pytest.raises(ValueError, match=rf"^{name} must be .*\(param group 1\)"):
        optimizer.add_param_group({"params": model[2].parameters(), name: value})
    assert len(optimizer.param_groups) == 1  # nothing half-added


def test_a_bad_lr_of_a_built_base_optimizer_is_refused():
    model, _ = _model()
    with pytest.raises(ValueError, match=r"^lr must be finite \(param group 0\), got nan"):
        SAMOptimizer(torch.optim.SGD(model.parameters(), lr=float("nan")))
    with pytest.raises(ValueError, match=r"^momentum must not be NaN \(param group 0\)"):
        SAMOptimizer(model.parameters(), lr=0.1, momentum=float("nan"))
    with pytest.raises(ValueError, match=r"^weight_decay must not be NaN \(param group 1\)"):  # SGD accepts it
        SAMOptimizer([{"params": model[0].parameters()},
                      {"params": model[2].parameters(), "weight_decay": float("nan")}], lr=0.1)


@pytest.mark.parametrize("lr", [0, 0.05, np.float32(0.05), torch.tensor(0.05)], ids=repr)
def test_valid_learning_rates_of_every_kind_step_alike(lr):
    model, loss_fn = _model()
    reference_model = copy.deepcopy(model)
    optimizer = SAMOptimizer(model.parameters(), method="ssam", rho=0.1, lr=lr)
    reference = SAMOptimizer(reference_model.parameters(), method="ssam", rho=0.1, lr=float(lr))
    _train(optimizer, loss_fn, 2)
    _train(reference, lambda: loss_fn(reference_model), 2)
    # a float32 lr differs from 0.05 in float64 by 7e-10 relative; a step moves x by lr ‖g‖ ≲ 0.05
    assert torch.allclose(_flat(model), _flat(reference_model), rtol=0, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_complex_parameters_are_refused_naming_the_group(dtype):
    real = torch.nn.Parameter(torch.ones(3))
    z = torch.nn.Parameter(torch.ones(2, dtype=dtype))
    with pytest.raises(ValueError, match=r"param group 0: parameter 1 has dtype torch\.complex"):
        SAMOptimizer([real, z], lr=0.1)
    with pytest.raises(ValueError, match=r"param group 1: parameter 0 has dtype torch\.complex"):
        SAMOptimizer([{"params": [real]}, {"params": [z]}], lr=0.1)
    optimizer = SAMOptimizer([real], lr=0.1)
    with pytest.raises(ValueError, match=r"param group 1: parameter 0 has dtype torch\.complex"):
        optimizer.add_param_group({"params": z})
    assert len(optimizer.param_groups) == 1 and len(optimizer.base_optimizer.param_groups) == 1
    with pytest.raises(ValueError, match=r"param group 0: parameter 0 has dtype torch\.complex"):
        SAMOptimizer(torch.optim.SGD([z], lr=0.1))


def test_a_deep_copy_is_a_working_optimizer():
    """copy.deepcopy kept only torch.optim.Optimizer's fields: the copy had no method and failed in step()."""
    model, loss_fn = _model()
    optimizer = SAMOptimizer(model.parameters(), torch.optim.SGD, method="susam", rho=0.1, truncate=True, lr=0.05,
                             momentum=0.9)
    _train(optimizer, loss_fn, 2)
    twin_model, twin = copy.deepcopy((model, optimizer))
    assert (twin.method, twin.truncate) == ("susam", True)
    assert twin.param_groups is twin.base_optimizer.param_groups
    assert twin.param_groups[0]["params"][0] is next(twin_model.parameters())
    _train(optimizer, loss_fn, 2)
    _train(twin, lambda: loss_fn(twin_model), 2)
    assert torch.equal(_flat(model), _flat(twin_model))


# -- 5. the fuzz contract -----------------------------------------------------------------------------------------

def _params_valid(kind):
    """Fresh parameters for one example (a tensor cannot be drawn once and reused: steps change it)."""
    model, loss_fn = _model(dtype=torch.float64 if kind.endswith("64") else torch.float32)
    if kind.startswith("groups"):
        return [{"params": model[0].parameters(), "rho": 0.02}, {"params": model[2].parameters()}], model, loss_fn
    if kind.startswith("generator"):
        return model.parameters(), model, loss_fn
    return list(model.parameters()), model, loss_fn


_BAD_PARAMS = {
    "empty list": lambda: [],
    "empty generator": lambda: iter(()),
    "None": lambda: None,
    "a number": lambda: 3,
    "a string": lambda: "weights",
    "a bare tensor": lambda: torch.nn.Parameter(torch.ones(2)),
    "a complex parameter": lambda: [torch.nn.Parameter(torch.ones(2, dtype=torch.complex64))],
    "a list of lists": lambda: [[torch.nn.Parameter(torch.ones(2))]],
    "a non-leaf tensor": lambda: [torch.ones(2, requires_grad=True) * 2],
    "a group with a complex parameter": lambda: [{"params": [torch.nn.Parameter(torch.ones(2))]},
                                                 {"params": [torch.nn.Parameter(torch.ones(1, dtype=torch.complex128))]}],
}


def _bad_numbers():
    return hst.one_of(hst.sampled_from(BAD_NUMBERS), hst.floats(max_value=-1e-300, allow_infinity=True),
                      hst.text(max_size=4), hst.complex_numbers(min_magnitude=1e-3, allow_nan=False,
                                                                  allow_infinity=False))


def _numbers(max_value):
    return hst.one_of(hst.floats(0.0, max_value), hst.integers(0, 0 if max_value < 1 else 1),
                      hst.floats(0.0, max_value).map(np.float64), hst.floats(0.0, max_value).map(torch.tensor))


_FLAG = (hst.booleans(), hst.one_of(hst.integers(-1, 2), hst.text(max_size=3), hst.none(),
                                     hst.sampled_from([np.bool_(True), 1.0, "True"])))
_ARGUMENTS = {  # name: (valid values, invalid values)
    "params": (hst.sampled_from(["list32", "list64", "groups32", "generator64"]),
               hst.sampled_from(sorted(_BAD_PARAMS))),
    "method": (hst.sampled_from(METHOD_NAMES),
               hst.one_of(hst.text(max_size=6).filter(lambda m: m not in METHOD_NAMES), hst.none(), hst.integers(),
                          hst.sampled_from(["SAM", " sam", ["sam"], ("ssam",), np.array(["sam", "gd"])]))),
    "rho": (_numbers(1.0), _bad_numbers()),
    "lr": (_numbers(0.1), _bad_numbers()),
    "adaptive": _FLAG, "truncate": _FLAG, "diagnostics": _FLAG,
    "base_optimizer": (hst.sampled_from([None, torch.optim.SGD, torch.optim.Adam]),
                       hst.sampled_from(["sgd", 3, len, torch.nn.Linear, torch.optim.lr_scheduler.StepLR])),
    "extra": (hst.just({}), hst.sampled_from([{"stable": True}, {"momentm": 0.9}, {"weight_decay": float("nan")}])),
}


@hst.composite
def _constructor_calls(draw):
    """(arguments, names of the bad ones): at most two bad arguments, none in about half the examples."""
    bad = draw(hst.sets(hst.sampled_from(sorted(_ARGUMENTS)), max_size=2) | hst.just(set()))
    return {name: draw(_ARGUMENTS[name][name in bad]) for name in _ARGUMENTS}, bad


@given(call=_constructor_calls())
def test_fuzz_the_constructor(call):
    """Every bad argument gives a ValueError or TypeError naming it (or one of the bad ones when several are), in
    one line; valid ones build an optimizer whose steps leak no NaN."""
    arguments, bad = call
    kwargs = {name: value for name, value in arguments.items() if name not in ("params", "extra")}
    kwargs.update(arguments["extra"])
    names = {name for name in bad if name not in ("params", "extra")}
    if "extra" in bad:
        names |= set(arguments["extra"])
    if "params" in bad:
        values = _BAD_PARAMS[arguments["params"]]()
        names.add("param")  # "params must ..." or "param group i: ..."
    else:
        values, model, loss_fn = _params_valid(arguments["params"])
    if names:
        with pytest.raises((ValueError, TypeError)) as raised:
            SAMOptimizer(values, **kwargs)
        message = str(raised.value)
        assert any(name in message for name in names), (names, message)
        assert "\n" not in message
        return
    optimizer = SAMOptimizer(values, **kwargs)
    _train(optimizer, loss_fn, 2)
    assert bool(torch.isfinite(_flat(model)).all())
    assert all(v is None or bool(torch.isfinite(v)) for v in optimizer.last_stats)


@given(method=hst.sampled_from(METHOD_NAMES), adaptive=hst.booleans(), truncate=hst.booleans(),
       dtype=hst.sampled_from([torch.float32, torch.float64]), exponent=hst.floats(-1.0, 1.0),
       rho_factor=hst.floats(0.0, 1.0), lr_factor=hst.floats(0.0, 1.0), dim=hst.integers(1, 8),
       seed=hst.integers(0, 2 ** 16))
def test_valid_use_at_any_gradient_scale_leaks_no_nan_and_equals_the_reference(method, adaptive, truncate, dtype,
                                                                               exponent, rho_factor, lr_factor,
                                                                               dim, seed):
    """Gradients of 1e-30 to 1e30 in float32 and 1e-250 to 1e250 in float64: 3 steps, finite statistics, and the
    iterates of the NumPy reference rule (tolerances in the module docstring)."""
    scale = 10.0 ** (exponent * (30 if dtype == torch.float32 else 250))
    error, _, _ = _quadratic_run(method, dtype, scale, adaptive=adaptive, truncate=truncate, steps=3,
                                 rho_factor=rho_factor, lr_factor=lr_factor, dim=dim, seed=seed)
    assert error <= TOLERANCE[dtype]


# -- the Hessian tools under the same contract ---------------------------------------------------------------------

def _vector():
    return torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_hessian_of_a_non_finite_loss_is_a_clear_error(method):
    """A NaN loss gave an ArpackError (Lanczos) or NaN (power); so did an infinite curvature."""
    x = _vector()
    with pytest.raises(ValueError, match="loss_fn returned a non-finite loss"):
        top_hessian_eigenvalue(lambda: (x * float("nan")).sum(), [x], method=method)
    with pytest.raises(ValueError, match="Hessian-vector product is not finite"):  # f'' = ¾|x − 1|^-½ = inf at 1
        top_hessian_eigenvalue(lambda: (torch.abs(x - 1.0) ** 1.5).sum(), [x], method=method)


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_hessian_of_a_loss_without_curvature_is_zero(method):
    """A linear loss (its gradient does not depend on the parameters) gave a RuntimeError or an ArpackError."""
    x = _vector()
    assert top_hessian_eigenvalue(lambda: (3.0 * x).sum(), [x], method=method) == 0.0  # exact: H = 0
    assert top_hessian_eigenvalue(lambda: ((0.0 * x) ** 2).sum(), [x], method=method) == 0.0  # H = 0, with a graph
    y = torch.nn.Parameter(torch.ones(4, dtype=torch.float64))
    # y does not enter the loss: its rows and columns of H are 0, and λ_max = 10 comes from x alone (1e-9 relative)
    value = top_hessian_eigenvalue(lambda: 5.0 * (x ** 2).sum(), [x, y], method=method, tol=1e-12)
    assert abs(value - 10.0) <= 1e-9 * 10.0


def test_hessian_tools_refuse_bad_params_and_vectors():
    x = _vector()
    z = torch.nn.Parameter(torch.ones(3, dtype=torch.complex128))
    with pytest.raises(ValueError, match=r"params: parameter 0 has dtype torch\.complex128"):
        top_hessian_eigenvalue(lambda: (z.abs() ** 2).sum(), [z])  # was cast to real with a UserWarning
    with pytest.raises(TypeError, match="params must be a tensor or an iterable of tensors"):
        top_hessian_eigenvalue(lambda: (x ** 2).sum(), None)
    with pytest.raises(TypeError, match="params must be a tensor or an iterable of tensors"):
        top_hessian_eigenvalue(lambda: (x ** 2).sum(), [x, "w"])
    # A bare tensor is one parameter (as torch.autograd.grad takes it), not an iterable of its rows.
    assert abs(top_hessian_eigenvalue(lambda: 5.0 * (x ** 2).sum(), x, tol=1e-12) - 10.0) <= 1e-9 * 10.0
    loss_fn = lambda: (x ** 2).sum()  # noqa: E731
    (hv,) = hessian_vector_product(loss_fn, [x], [torch.ones(3, dtype=torch.float32)])  # was a dtype mismatch error
    assert torch.equal(hv, torch.full((3,), 2.0, dtype=torch.float64))  # exact: H = 2 I
    for vectors, match in [([torch.ones(3, dtype=torch.complex128)], "vectors must be real"),
                           ([torch.full((3,), math.nan, dtype=torch.float64)], "vectors must be finite"),
                           (None, "vectors must be"), ([[1.0, 2.0, 3.0]], "vectors must be")]:
        with pytest.raises((ValueError, TypeError), match=match):
            hessian_vector_product(loss_fn, [x], vectors)
