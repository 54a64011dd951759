r"""SAM, USAM and StableSAM around any ``torch.optim`` optimizer: the update rules of docs/theory.md §2.

One step from parameters x with the gradient g = g(x) of the current minibatch:

=========  =====================================  ====================================
method     ascent point y = x + ε                  gradient handed to the base optimizer
=========  =====================================  ====================================
``gd``     --                                     g(x)
``sam``    ε = ρ g/‖g‖                             g(y)
``usam``   ε = ρ g                                 g(y)
``ssam``   ε = ρ g/‖g‖                             γ g(y),  γ = ‖g(x)‖/‖g(y)‖
``susam``  ε = ρ g                                 γ g(y),  γ = ‖g(x)‖/‖g(y)‖
=========  =====================================  ====================================

``adaptive`` (ASAM, Kwon et al. 2021; T(x) = |x| + η_ASAM with the group's ``adaptive_eta``, default 0 as in the
official StableSAM code; the official ASAM code uses 0.01 and scales weights only, see :func:`asam_param_groups`):
ε = ρ T² g/‖T g‖ or ρ T² g, and γ = ‖T(x) g(x)‖/‖T(y) g(y)‖ (the official StableSAM code's convention). ``truncate``: γ ← min(1, γ). A zero norm gives ε = 0 and γ = 1.
Norms are global over all parameters (all groups), accumulated in float32 at least, and stay on the device. They
neither overflow nor underflow: gradients far from 1 (beyond 2^±40 in float32, 2^±400 in float64) are scaled by an
exact power of two first, as :mod:`samtheory.methods` scales its row norms, so a float32 gradient of 1e30 or 1e-30
gives the step of the float64 reference; ρ/‖g‖ is applied to the scaled gradient, so it cannot overflow either.
The base optimizer then applies its own rule (momentum, weight decay, Adam moments) to the descent gradient at
the restored point x, as in the official code. With plain SGD the iterates equal :mod:`samtheory.methods`'
(tests/test_torch_equivalence.py).

Training-loop integration (tests/test_torch_training.py; README "PyTorch"):

- **DDP.** ``ascent_mode="global"`` (default): let DDP all-reduce both passes; the step equals one process on the
  concatenated batch. ``"per_replica"`` (m-sharpness): run both passes under ``model.no_sync()``; each rank ascends
  with its own gradient, takes its own γ, and the optimizer all-reduces (averages) the descent gradients γ_r g_r(y_r),
  so the ranks stay bit-identical (``samtheory.simulate(..., ascent_groups=k)`` is the NumPy twin).
- **AMP.** Pass ``grad_scaler=scaler``: both gradients are unscaled once each; an inf/NaN at x or at y restores x,
  skips the base step and is recorded in the scaler, so ``scaler.update()`` backs off. Use ``scaler.step(opt,
  closure)`` or ``first_step``, ``scaler.step(opt)`` (or ``second_step()``), then ``scaler.update()``.
- **BatchNorm.** ``model=`` makes ``step(closure)`` run the pass at y under :func:`frozen_running_stats`, so
  running statistics are updated once per step, at x; in the two-half style, wrap the second pass yourself.
- **Clipping.** γ rescales g(y) back to ‖g(x)‖, so clipping g(y) before ``second_step`` does nothing for
  ssam/susam: pass ``max_grad_norm`` instead, which clips the final descent gradient (after γ, after the DDP
  average) by its global norm. Clipping g(x) before ``first_step`` changes only the unnormalized ascents.
- **torch.compile.** The state of a half-finished step lives in a dict and in tensors, never in attributes
  assigned during a step, so ``torch.compile(opt.first_step)`` and ``torch.compile(opt.step)`` keep it.

References: Foret et al. (2021); Andriushchenko & Flammarion (2022); Tan et al., arXiv 2401.07250 (JMLR 2025).
"""

from __future__ import annotations

import contextlib
import math
import numbers
import reprlib
from typing import Callable, NamedTuple

import numpy as np
import torch

from .. import _validation as check
from ..methods import BUILTIN_METHODS, METHODS, MethodSpec

__all__ = ["SAMOptimizer", "StepStats", "METHOD_NAMES", "frozen_running_stats", "asam_param_groups"]

#: The built-in method names (any registered method of known structure is accepted too).
METHOD_NAMES = BUILTIN_METHODS


class StepStats(NamedTuple):
    """Diagnostics of the last step, as 0-dim tensors on the parameters' device (no host synchronization).

    ``grad_norm`` is ‖g(x)‖, ``ascent_grad_norm`` ‖g(y)‖ and ``gamma`` the renormalization factor; a field is
    None where the step did not compute it (``diagnostics=True`` computes ‖g(x)‖ and ‖g(y)‖ for every method).
    """

    grad_norm: torch.Tensor | None
    ascent_grad_norm: torch.Tensor | None
    gamma: torch.Tensor | None


def _flag(name: str, value) -> bool:
    return check.as_bool(name, value)


def _is_real_number(value) -> bool:
    """A real number: Python/NumPy int or float, or a 0-dim real NumPy array or tensor; never a bool or a string."""
    if isinstance(value, torch.Tensor):
        return value.ndim == 0 and value.dtype != torch.bool and not value.dtype.is_complex
    if isinstance(value, np.ndarray):
        return value.ndim == 0 and value.dtype.kind in "fiu"
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _nonnegative_number(name: str, value, where: str = ""):
    """``value`` unchanged if it is a finite real number >= 0, else a ValueError naming ``name``."""
    if not _is_real_number(value):
        raise ValueError(f"{name} must be a real number >= 0{where}, got {reprlib.repr(value)}")
    number = float(value)  # a tensor here is 0-dim: one host read, at construction only
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite{where}, got {value!r}")
    if number < 0:
        raise ValueError(f"{name} must be >= 0{where}, got {value!r}")
    return value


def _method(value) -> MethodSpec:
    """The registered method named ``value`` (or the spec itself), whose structure the optimizer follows."""
    if isinstance(value, MethodSpec):
        spec = value
    elif isinstance(value, str) and value in METHODS:  # a list or an array would fail the lookup unclearly
        spec = METHODS[value]
    else:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))} or a MethodSpec, "
                         f"got {reprlib.repr(value)}")
    if not spec.known:
        raise ValueError(f"method {spec.name!r} has unknown structure (a bare NumPy rule): the torch optimizer needs "
                         "its ascent, normalized and renormalized flags, e.g. samtheory.sharpness_aware_method(...)")
    return spec


def _rho(value, where: str = "") -> float:
    return float(_nonnegative_number("rho", value, where))


def _accumulation_dtype(tensors) -> torch.dtype:
    """float64 if any tensor is float64, else float32 (bfloat16 and float16 norms accumulate in float32)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


# On the CPU, concatenating up to this many elements and taking one norm beats per-tensor norm kernels.
_CPU_CONCATENATE_LIMIT = 1 << 22

# Peaks max|t| within 2^±safe keep the scale 2^0 (the plain sum of squares neither overflows nor underflows for
# up to 2^48 elements in float32); outside, t is scaled by the power of two 2^-k that brings the peak to [½, 1),
# with |k| <= largest (the largest binary exponent but 1, so that 2^±k and a sum of squares near 1 fit).
_EXPONENTS = {torch.float32: (40, 126), torch.float64: (400, 1022)}  # (safe, largest)


def _common_device(tensors: list[torch.Tensor]) -> torch.device | None:
    """The device of all ``tensors``, or None when they are spread over several."""
    device = tensors[0].device
    return device if all(t.device == device for t in tensors) else None


def _by_device(tensors: list[torch.Tensor]) -> dict[torch.device, list[int]]:
    indices: dict[torch.device, list[int]] = {}
    for i, tensor in enumerate(tensors):
        indices.setdefault(tensor.device, []).append(i)
    return indices


def _power_of_two(exponent: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """2^exponent in ``dtype`` (float32 or float64) for an int32 tensor with |exponent| <= 126 or 1022, built from
    its bits: exact on every device, where exp2 and pow need not be."""
    if dtype == torch.float64:
        return ((exponent.to(torch.int64) + 1023) << 52).view(torch.float64)
    return ((exponent + 127) << 23).view(torch.float32)


def _ldexp(value: torch.Tensor, exponent: torch.Tensor) -> torch.Tensor:
    """value · 2^exponent for |exponent| <= 252 or 2044 (a difference of two scaling exponents), in two exact
    factors."""
    half = exponent >> 1
    return value * _power_of_two(half, value.dtype) * _power_of_two(exponent - half, value.dtype)


class _Norm(NamedTuple):
    """‖t‖ = value · 2^exponent, where ``scaled`` = t · 2^-exponent (new tensors, in t's order) and value = ‖scaled‖.

    The squares of ``scaled`` neither overflow nor underflow, whatever the scale of t (samtheory.methods scales
    its row norms the same way), and the power of two is exact: in the common case (exponent 0) the value is the
    plain norm, bit for bit. All 0-dim tensors stay on the first tensor's device (no host synchronization).
    """

    scaled: list[torch.Tensor]
    value: torch.Tensor
    exponent: torch.Tensor  # int32

    def norm(self) -> torch.Tensor:
        """‖t‖ itself (inf where it exceeds the accumulation dtype)."""
        return self.value * _power_of_two(self.exponent, self.value.dtype)


def _peak(group: list[torch.Tensor], flat: torch.Tensor | None) -> torch.Tensor:
    """max |t| over ``group`` (0 when it holds no element), one fused kernel where the device has one."""
    if flat is not None:
        return flat.abs().amax() if flat.numel() else flat.new_zeros(())
    nonempty = [t for t in group if t.numel()]
    if not nonempty:
        return group[0].new_zeros(())
    return torch.stack(torch._foreach_norm(nonempty, math.inf)).amax()


def _sum_of_squares_norm(group: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    try:  # one fused multi-tensor kernel on CUDA
        norms = torch._foreach_norm(group, 2, dtype=dtype)
    except (TypeError, RuntimeError):  # older torch: no dtype argument
        norms = [torch.linalg.vector_norm(t, dtype=dtype) for t in group]
    return torch.linalg.vector_norm(torch.stack(norms))


def _global_norm(tensors: list[torch.Tensor], dtype: torch.dtype) -> _Norm:
    """‖(t_1, ..., t_n)‖₂ accumulated in ``dtype`` (float32 or float64), scaled by a power of two so that it
    neither overflows nor underflows, on the first tensor's device, without host synchronization."""
    target = tensors[0].device
    devices = _by_device(tensors)
    flats, peaks = {}, []
    for device, indices in devices.items():
        group = [tensors[i] for i in indices]
        if device.type == "cpu" and sum(t.numel() for t in group) <= _CPU_CONCATENATE_LIMIT:
            flats[device] = torch.cat([t.reshape(-1) for t in group])  # a copy: scaled in place below
        peaks.append(_peak(group, flats.get(device)).to(target, dtype))
    peak = peaks[0] if len(peaks) == 1 else torch.stack(peaks).amax()
    safe, largest = _EXPONENTS[dtype]
    # frexp's exponent of inf or NaN is unspecified: clamped, it is harmless, as such a t has that norm at any scale.
    exponent = torch.frexp(peak).exponent.clamp_(-largest, largest)
    exponent = torch.where(exponent.abs() <= safe, 0, exponent)
    down = _power_of_two(-exponent, dtype)
    scaled: list[torch.Tensor] = [None] * len(tensors)  # type: ignore[list-item]
    partial = []
    for device, indices in devices.items():
        factor = down.to(device)
        flat = flats.get(device)
        if flat is not None:
            flat.mul_(factor)
            partial.append(torch.linalg.vector_norm(flat, dtype=dtype).to(target))
            pieces = flat.split([tensors[i].numel() for i in indices])
            for i, piece in zip(indices, pieces):
                scaled[i] = piece.view(tensors[i].shape)
        else:
            group = torch._foreach_mul([tensors[i] for i in indices], factor)
            partial.append(_sum_of_squares_norm(group, dtype).to(target))
            for i, tensor in zip(indices, group):
                scaled[i] = tensor
    value = partial[0] if len(partial) == 1 else torch.linalg.vector_norm(torch.stack(partial))
    return _Norm(scaled, value, exponent)


def _scale_(tensors: list[torch.Tensor], factor: torch.Tensor) -> None:
    """tensors ← factor · tensors in place, with the 0-dim ``factor`` copied once to each device."""
    if _common_device(tensors) == factor.device:
        torch._foreach_mul_(tensors, factor)
        return
    for device, indices in _by_device(tensors).items():
        torch._foreach_mul_([tensors[i] for i in indices], factor.to(device))


_NORMALIZATION_LAYERS = (torch.nn.modules.batchnorm._BatchNorm,)


@contextlib.contextmanager
def frozen_running_stats(module: torch.nn.Module):
    """Within the block, the BatchNorm layers of ``module`` normalize by the batch's statistics (in training mode,
    as usual) but update neither their running statistics nor ``num_batches_tracked``: the pass at the ascent
    point y then leaves them as the pass at x set them.

    Parameters
    ----------
    module : torch.nn.Module
        The model (or any module containing BatchNorm layers, SyncBatchNorm included).
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {reprlib.repr(module)}")
    layers = [m for m in module.modules() if isinstance(m, _NORMALIZATION_LAYERS) and m.track_running_stats]
    for layer in layers:
        layer.track_running_stats = False  # training mode then uses batch statistics and updates nothing
    try:
        yield
    finally:
        for layer in layers:
            layer.track_running_stats = True


def asam_param_groups(model: torch.nn.Module, eta: float = 0.01) -> list[dict]:
    """Param groups for the official ASAM convention: T = |w| + η on parameters whose name contains ``weight``,
    T = 1 (no adaptive scaling) on the others (biases).

    Parameters
    ----------
    model : torch.nn.Module
        The model whose ``named_parameters()`` are split.
    eta : float, optional
        η_ASAM, >= 0 (default 0.01, the official ASAM code's).

    Returns
    -------
    list of dict
        ``[{"params": weights, "adaptive": True, "adaptive_eta": eta}, {"params": others, "adaptive": False}]``,
        without empty groups.
    """
    eta = float(_nonnegative_number("eta", eta))
    weights, others = [], []
    for name, parameter in model.named_parameters():
        (weights if "weight" in name else others).append(parameter)
    groups = [{"params": weights, "adaptive": True, "adaptive_eta": eta}, {"params": others, "adaptive": False}]
    return [group for group in groups if group["params"]]


_ASCENT_MODES = ("global", "per_replica")


class SAMOptimizer(torch.optim.Optimizer):
    r"""Sharpness-aware wrapper: ascent to y = x + ε, descent gradient g(y) (or γ g(y)) for the base optimizer.

    Two ways to build it, as in the public PyTorch SAM implementations:

    - ``SAMOptimizer(model.parameters(), torch.optim.SGD, method="ssam", rho=0.05, lr=0.1, momentum=0.9)``:
      the base optimizer class is built on the wrapper's param groups with the remaining keyword arguments
      (davda54/sam style; ``base_optimizer`` defaults to ``torch.optim.SGD``);
    - ``SAMOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), method="ssam", rho=0.05)``: wraps an optimizer
      already built (the official StableSAM code's style).

    ``rho`` and ``adaptive`` are per-group hyperparameters (a param group may set its own); ``method``,
    ``truncate`` and ``diagnostics`` apply to the whole step, since the norms are global. The wrapper shares
    ``param_groups`` and ``state`` with ``base_optimizer``, so an LR scheduler may be attached to either.

    Call styles: ``loss.backward(); optimizer.step(closure)`` where ``closure`` re-evaluates the loss and its
    gradient (called at y), or ``first_step(zero_grad=True)``, a second forward/backward, ``second_step()``.
    If no parameter has a gradient when ``step(closure)`` is called, the closure is first called at x too.
    Parameters whose ``grad`` is None are skipped. ``last_stats`` holds the last step's :class:`StepStats`.

    Parameters
    ----------
    params : iterable of Tensor or dict, or torch.optim.Optimizer
        The parameters or param groups to optimize, or an optimizer already built (then it is the base
        optimizer, and ``base_optimizer`` and ``**base_kwargs`` must not be given).
    base_optimizer : type or None, optional
        A :class:`torch.optim.Optimizer` subclass built on the wrapper's param groups; None (default) for
        :class:`torch.optim.SGD`.
    method : str, optional
        A registered method name (:data:`samtheory.METHODS`; default ``"ssam"``) or a
        :class:`~samtheory.MethodSpec` of known structure (e.g. from :func:`samtheory.sharpness_aware_method`):
        the optimizer follows its ``ascent``, ``normalized`` and ``renormalized`` flags.
    rho : float, optional
        Default radius of the param groups, >= 0 (default 0.05).
    adaptive : bool, optional
        Default ASAM ascent of the param groups (default False).
    adaptive_eta : float, optional
        Default η_ASAM of the param groups, >= 0: T = |w| + η_ASAM (default 0, the StableSAM code's T = |w|).
    truncate : bool, optional
        Use min(1, γ) (default False).
    diagnostics : bool, optional
        Compute ‖g(x)‖ and ‖g(y)‖ at every step for :attr:`last_stats` (default False).
    ascent_mode : {"global", "per_replica"}, optional
        Under ``torch.distributed``: ``"global"`` (default), gradients all-reduced in both passes (plain DDP);
        ``"per_replica"``, both passes local (``no_sync``) and the descent gradients averaged by the optimizer.
    process_group : optional
        The ``torch.distributed`` process group of ``"per_replica"`` (default: the world).
    grad_scaler : torch.amp.GradScaler or None, optional
        The scaler of a float16 AMP loop (default None).
    max_grad_norm : float or None, optional
        Clip the final descent gradient to this global norm, > 0 (default None: no clipping).
    model : torch.nn.Module or None, optional
        Run the closure's pass at y under :func:`frozen_running_stats` (default None).
    **base_kwargs
        Passed to ``base_optimizer`` (``lr``, ``momentum``, ...); ``ValueError`` if it rejects them.
    """

    def __init__(self, params, base_optimizer=None, *, method: str = "ssam", rho: float = 0.05,
                 adaptive: bool = False, adaptive_eta: float = 0.0, truncate: bool = False,
                 diagnostics: bool = False, ascent_mode: str = "global", process_group=None, grad_scaler=None,
                 max_grad_norm: float | None = None, model: torch.nn.Module | None = None, **base_kwargs):
        if "stable" in base_kwargs:  # the official StableSAM code's switch
            raise ValueError(f"stable={base_kwargs['stable']!r} is the official StableSAM code's switch; here the "
                             "method says it: method='ssam' (normalized ascent) or method='susam' (unnormalized)")
        self._spec = _method(method)
        self.method = self._spec.name
        self.truncate = _flag("truncate", truncate)
        self.diagnostics = _flag("diagnostics", diagnostics)
        if ascent_mode not in _ASCENT_MODES:
            raise ValueError(f"ascent_mode must be 'global' or 'per_replica', got {reprlib.repr(ascent_mode)}")
        self.ascent_mode = ascent_mode
        self.process_group = process_group
        if grad_scaler is not None and not isinstance(grad_scaler, torch.amp.GradScaler):
            raise TypeError(f"grad_scaler must be a torch.amp.GradScaler, got {reprlib.repr(grad_scaler)}")
        self.grad_scaler = grad_scaler
        if max_grad_norm is not None:
            _nonnegative_number("max_grad_norm", max_grad_norm)
            if float(max_grad_norm) <= 0:
                raise ValueError(f"max_grad_norm must be > 0 (or None), got {max_grad_norm!r}")
            max_grad_norm = float(max_grad_norm)
        self.max_grad_norm = max_grad_norm
        if model is not None and not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {reprlib.repr(model)}")
        self.model = model
        defaults = {"rho": _rho(rho), "adaptive": _flag("adaptive", adaptive),
                    "adaptive_eta": float(_nonnegative_number("adaptive_eta", adaptive_eta))}
        if "lr" in base_kwargs:
            _nonnegative_number("lr", base_kwargs["lr"])
        if isinstance(params, torch.optim.Optimizer):
            if base_optimizer is not None or base_kwargs:
                raise ValueError("when params is an optimizer, it is the base optimizer: pass neither base_optimizer "
                                 f"nor base keyword arguments (got {base_optimizer!r}, {sorted(base_kwargs)})")
            base = params
            super().__init__(base.param_groups, defaults)  # the same group dicts, given rho and adaptive
        else:
            if base_optimizer is None:
                base_optimizer = torch.optim.SGD
            if not (isinstance(base_optimizer, type) and issubclass(base_optimizer, torch.optim.Optimizer)):
                raise ValueError("base_optimizer must be a torch.optim.Optimizer class (or pass a built optimizer as "
                                 f"the first argument), got {base_optimizer!r}")
            try:
                super().__init__(params, {**defaults, **base_kwargs})
            except (TypeError, ValueError) as error:  # torch's own checks, which do not say which argument
                raise type(error)(f"params must be an iterable of tensors or of param group dicts: {error}") from None
            try:
                base = base_optimizer(self.param_groups, **base_kwargs)
            except TypeError as error:
                raise ValueError(f"base_optimizer {base_optimizer.__name__} rejected its arguments "
                                 f"{base_kwargs}: {error}") from None
        self.base_optimizer = base
        self.param_groups = base.param_groups
        self.state = base.state
        self.defaults.update(base.defaults)
        for index, group in enumerate(self.param_groups):
            self._check_group(group, index)
            self._check_params(group, index)
        # Everything a step changes lives in this dict (mutated in place, never reassigned): torch.compile keeps
        # in-place changes of a dict, but drops attribute assignments on an optimizer that defines __getstate__.
        self._step = self._fresh_step_state()

    @staticmethod
    def _fresh_step_state() -> dict:
        return {"saved": None,  # (params, copies of x) between first_step and second_step
                "buffers": ([], []),  # reused copies of x
                "numerator": None,  # (value, exponent) of the _Norm of γ's numerator
                "stats": StepStats(None, None, None),
                "skip": False,  # an inf/NaN gradient at x under AMP: the step is skipped
                "skipped": False,  # whether the last step was skipped
                "consumed": None}  # the gradients the last step left behind (tensor, version)

    @property
    def last_stats(self) -> StepStats:
        """The last step's :class:`StepStats`."""
        return self._step["stats"]

    @property
    def last_step_skipped(self) -> bool:
        """Whether the last step was skipped (an inf or NaN gradient under ``grad_scaler``)."""
        return self._step["skipped"]

    def __getstate__(self) -> dict:
        """For copy.deepcopy and pickle: torch.optim.Optimizer keeps only defaults, state and param_groups."""
        state = super().__getstate__()
        state.update(base_optimizer=self.base_optimizer, method=self.method, _spec=self._spec,
                     truncate=self.truncate, diagnostics=self.diagnostics, ascent_mode=self.ascent_mode,
                     process_group=None, grad_scaler=self.grad_scaler, max_grad_norm=self.max_grad_norm,
                     model=self.model, _stats=self.last_stats)
        return state

    def __setstate__(self, state: dict) -> None:
        stats = state.pop("_stats", StepStats(None, None, None))
        super().__setstate__(state)
        self._step = self._fresh_step_state()  # not in the middle of a step
        self._step["stats"] = stats

    def _check_group(self, group: dict, index: int) -> None:
        """Set and check the SAM hyperparameters of param group ``index``, check its ``lr``, and refuse NaN in any
        other numeric hyperparameter (momentum, weight decay, betas, ...), which would turn every step into NaN."""
        where = f" (param group {index})"
        group["rho"] = _rho(group.get("rho", self.defaults["rho"]), where)
        group["adaptive"] = _flag("adaptive", group.get("adaptive", self.defaults["adaptive"]))
        group["adaptive_eta"] = float(_nonnegative_number(
            "adaptive_eta", group.get("adaptive_eta", self.defaults.get("adaptive_eta", 0.0)), where))
        if "lr" in group:
            _nonnegative_number("lr", group["lr"], where)
        for key, value in group.items():
            values = value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, float) and math.isnan(v) for v in values):
                raise ValueError(f"{key} must not be NaN{where}, got {value!r}")

    @staticmethod
    def _check_params(group: dict, index: int) -> None:
        for position, p in enumerate(group["params"]):
            if p.is_complex() or not p.is_floating_point():
                raise ValueError(f"param group {index}: parameter {position} has dtype {p.dtype}; SAMOptimizer needs "
                                 "real floating-point parameters (optimize torch.view_as_real of a complex one)")

    def add_param_group(self, param_group: dict) -> None:
        if not hasattr(self, "base_optimizer"):  # called by torch.optim.Optimizer.__init__
            return super().add_param_group(param_group)
        index = len(self.param_groups)
        self._check_group(param_group, index)
        self.base_optimizer.add_param_group(param_group)  # which makes params a list
        try:
            self._check_group(self.param_groups[index], index)  # with the base optimizer's defaults filled in
            self._check_params(self.param_groups[index], index)
        except ValueError:
            self.param_groups.pop(index)
            raise

    # -- the two half-steps --------------------------------------------------------------------------------------

    def _with_grad(self):
        """(group, params with a gradient) for every group."""
        return [(group, [p for p in group["params"] if p.grad is not None]) for group in self.param_groups]

    @staticmethod
    def _scaling(group: dict, p: torch.Tensor) -> torch.Tensor:
        """ASAM's T = |p| + η_ASAM (a new tensor)."""
        eta = group["adaptive_eta"]
        return torch.abs(p).add_(eta) if eta else torch.abs(p)

    @classmethod
    def _weighted(cls, groups) -> list[torch.Tensor]:
        """T ⊙ g for every parameter with a gradient: T = |p| + η_ASAM in adaptive groups, 1 elsewhere."""
        return [cls._scaling(group, p) * p.grad if group["adaptive"] else p.grad
                for group, params in groups for p in params]

    def _save(self, params: list[torch.Tensor]) -> None:
        """Copy x into buffers kept from step to step (one foreach copy, no allocation once warm)."""
        cached, buffers = self._step["buffers"]
        if len(cached) != len(params) or any(a is not b for a, b in zip(cached, params)) or any(
                b.shape != p.shape or b.dtype != p.dtype or b.device != p.device for b, p in zip(buffers, params)):
            buffers = [torch.empty_like(p) for p in params]
            self._step["buffers"] = (params, buffers)
        torch._foreach_copy_(buffers, params)
        self._step["saved"] = (params, buffers)

    def _restore(self) -> None:
        """Put the parameters back at x and forget the half-finished step."""
        saved = self._step["saved"]
        if saved is not None and saved[0]:
            torch._foreach_copy_(*saved)
        self._step.update(saved=None, numerator=None, skip=False)

    # -- AMP and DDP ---------------------------------------------------------------------------------------------

    def _scaler_state(self) -> dict | None:
        """The GradScaler's record of this optimizer, or None without an enabled scaler."""
        scaler = self.grad_scaler
        if scaler is None or not scaler.is_enabled():
            return None
        # GradScaler keeps per-optimizer inf checks in this (private, stable since torch 1.6) dict; update() reads
        # it, so writing our checks of both gradients there is what makes the scaler back off after a skip.
        return scaler._per_optimizer_states[id(self)]

    def _unscale(self, grads: list[torch.Tensor], present: bool) -> bool:
        """Unscale ``grads`` in place by the scaler's 1/S (unless the user's ``scaler.unscale_(opt)`` already did,
        for the gradients ``present`` at the call) and say whether one of them is inf or NaN (one host read)."""
        state = self._scaler_state()
        if state is None or not grads:
            return False
        from torch.amp.grad_scaler import OptState
        scale = self.grad_scaler._scale
        found = torch.zeros((), dtype=torch.float32, device=scale.device)
        if present and state["stage"] is OptState.UNSCALED:
            found = torch.stack([(~torch.isfinite(g)).any() for g in grads]).any().to(found)
        else:
            inverse = scale.double().reciprocal().float()  # as GradScaler.unscale_ computes it
            for device, indices in _by_device(grads).items():
                for dtype in {grads[i].dtype for i in indices}:
                    group = [grads[i] for i in indices if grads[i].dtype == dtype]
                    found_here = torch.zeros((), dtype=torch.float32, device=device)
                    torch._amp_foreach_non_finite_check_and_unscale_(group, found_here, inverse.to(device))
                    found = found + found_here.to(found.device)
        if self.ascent_mode == "per_replica":  # every rank must skip together
            found = self._all_reduce(found, torch.distributed.ReduceOp.MAX)
        return bool(found.item())

    def _record_inf(self, found: bool) -> None:
        """Tell the scaler whether this step met an inf/NaN, so that ``scaler.update()`` follows."""
        state = self._scaler_state()
        if state is None:
            return
        scale = self.grad_scaler._scale
        checks = state["found_inf_per_device"]
        previous = checks.get(scale.device, torch.zeros((), dtype=torch.float32, device=scale.device))
        checks[scale.device] = previous + float(found)

    def _distributed(self) -> bool:
        return torch.distributed.is_available() and torch.distributed.is_initialized()

    def _all_reduce(self, tensor: torch.Tensor, op) -> torch.Tensor:
        if self._distributed():
            torch.distributed.all_reduce(tensor, op=op, group=self.process_group)
        return tensor

    def _average_over_replicas(self, grads: list[torch.Tensor]) -> None:
        """grads ← the mean over the replicas of grads (per_replica mode), as one flat all-reduce."""
        if not grads or not self._distributed():
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat, group=self.process_group)
        flat.div_(torch.distributed.get_world_size(self.process_group))
        for g, piece in zip(grads, flat.split([g.numel() for g in grads])):
            g.copy_(piece.view_as(g))

    def _clip(self, grads: list[torch.Tensor]) -> None:
        """Scale the descent gradient down to ‖·‖ <= max_grad_norm (torch.nn.utils.clip_grad_norm_'s rule)."""
        if self.max_grad_norm is None or not grads:
            return
        norm = _global_norm(grads, _accumulation_dtype(grads)).norm()
        factor = torch.clamp(self.max_grad_norm / (norm + 1e-6), max=1.0).nan_to_num_(1.0, 1.0)
        _scale_(grads, factor)

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Move every parameter with a gradient to the ascent point y = x + ε, remembering x."""
        _flag("zero_grad", zero_grad)
        if self._step["saved"] is not None:
            raise ValueError("first_step() was called twice: call second_step() (after the backward pass at the "
                             "ascent point) before the next first_step()")
        groups = self._with_grad()
        params = [p for _, ps in groups for p in ps]
        self._step.update(numerator=None, skip=False)
        if not params:
            self._step.update(stats=StepStats(None, None, None), saved=([], []))
            return
        grads = [p.grad for p in params]
        if self._unscale(grads, present=True):  # AMP: an inf/NaN at x, the step will be skipped
            self._step.update(stats=StepStats(None, None, None), saved=([], []), skip=True)
            if zero_grad:
                self.zero_grad()
            return
        dtype = _accumulation_dtype(grads)
        any_adaptive = any(group["adaptive"] for group, ps in groups if ps)
        normalize, renormalize = self._spec.normalized, self._spec.renormalized
        grad_norm = None
        if self.diagnostics or (not any_adaptive and (normalize or renormalize)):
            grad_norm = _global_norm(grads, dtype)
        grad_norm_value = None if grad_norm is None else grad_norm.norm()
        if not self._spec.ascent:
            self._step.update(stats=StepStats(grad_norm_value, grad_norm_value, None), saved=([], []))
            if zero_grad:
                self.zero_grad()
            return
        weighted = self._weighted(groups) if any_adaptive else grads
        ascent_norm = _global_norm(weighted, dtype) if any_adaptive and (normalize or renormalize) else grad_norm
        del grad_norm  # its scaled copies, unless they are the ascent's
        if ascent_norm is not None:
            self._step["numerator"] = (ascent_norm.value, ascent_norm.exponent)
        self._step["stats"] = StepStats(grad_norm_value, None, None)
        # Normalized: ε = (T ⊙ (T ⊙ g) 2^-k) · ρ/‖(T ⊙ g) 2^-k‖, with the norm's scaled copies, so that neither
        # factor overflows nor underflows; the product rounds as the NumPy reference's T ⊙ (T ⊙ g) · ρ/‖T ⊙ g‖.
        directions = ascent_norm.scaled if normalize else weighted
        del ascent_norm
        self._save(params)
        try:
            offset = 0
            for group, ps in groups:
                if not ps:
                    continue
                chunk = directions[offset:offset + len(ps)]
                offset += len(ps)
                ascent = (torch._foreach_mul([self._scaling(group, p) for p in ps], chunk) if group["adaptive"]
                          else chunk)
                if normalize:  # ascent holds new tensors: scale them in place, by 0 where the norm is 0
                    value = self._step["numerator"][0]
                    _scale_(ascent, torch.full_like(value, group["rho"]).div_(value).nan_to_num_(0.0, 0.0))
                else:
                    ascent = torch._foreach_mul(ascent, group["rho"])
                torch._foreach_add_(ps, ascent)
        except BaseException:
            self._restore()
            raise
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Restore x, rescale the gradient g(y) by γ (StableSAM) and take the base optimizer's step."""
        _flag("zero_grad", zero_grad)
        if self._step["saved"] is None:
            raise ValueError("second_step() needs a first_step() before it (or use step(closure))")
        try:
            grads = [p.grad for _, ps in self._with_grad() for p in ps]
            skip = self._step["skip"]
            if self._spec.ascent:  # gd's "second" gradient is g(x) itself, unscaled by first_step
                skip = self._unscale(grads, present=not self._step.get("from_closure", False)) or skip
            if not skip:
                self._rescale_ascent_gradient()
                if self.ascent_mode == "per_replica":
                    self._average_over_replicas(grads)
                self._clip(grads)
        finally:
            self._restore()  # x again, whatever happened
        self._record_inf(skip)
        self._step["skipped"] = skip
        if not skip:
            self.base_optimizer.step()
        if zero_grad:
            self.zero_grad()

    def _rescale_ascent_gradient(self) -> None:
        """g(y) ← γ g(y) for ssam/susam, and the statistics of g(y)."""
        renormalize = self._spec.renormalized
        groups = self._with_grad() if (renormalize or self.diagnostics) and self._spec.ascent else []
        grads = [p.grad for _, ps in groups for p in ps]
        if not grads:
            return
        dtype = _accumulation_dtype(grads)
        ascent_grad_norm = _global_norm(grads, dtype)
        gamma = None
        if renormalize:
            any_adaptive = any(group["adaptive"] for group, ps in groups if ps)
            denominator = _global_norm(self._weighted(groups), dtype) if any_adaptive else ascent_grad_norm
            value, exponent = denominator.value, denominator.exponent
            numerator = self._step["numerator"]
            if numerator is None:  # no parameter had a gradient at x
                numerator = (torch.zeros((), dtype=dtype, device=value.device), exponent)
            # γ = ‖·(x)‖/‖·(y)‖ = (v_x/v_y) 2^(k_x − k_y), and 1 where the denominator is 0 (0/0 = NaN, x/0 = inf).
            ratio = torch.div(numerator[0].to(value.device, dtype), value)
            gamma = _ldexp(ratio, numerator[1].to(value.device) - exponent).nan_to_num_(1.0, 1.0)
            if self.truncate:
                gamma.clamp_(max=1.0)
            _scale_(grads, gamma)
        self._step["stats"] = StepStats(self.last_stats.grad_norm, ascent_grad_norm.norm(), gamma)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None):
        """One full step. ``closure`` re-evaluates the loss on the step's minibatch, calls ``backward()`` and returns
        the loss; it may zero the gradients first, in either way (``zero_grad(set_to_none=False)`` included).

        The closure is called at x whenever the gradient there is missing: no parameter has one, every one is
        exactly zero (``zero_grad(set_to_none=False)``; one host read), or they are the ones the previous step left
        (an LBFGS-style loop that calls only ``step(closure)``). Then it is called at y. The loss at x is returned
        when the closure computed it, else the closure's loss at y (None without a closure).
        ``gd`` needs no closure when the gradient is present; the other methods always need one (for g(y)).
        Without a closure in the middle of a step (after ``first_step``), this is ``second_step()``: what
        ``scaler.step(optimizer)`` calls in the two-half AMP style.
        If the closure raises at y (an exception or Ctrl-C), the parameters are put back at x, the gradients it
        left are dropped, and the exception propagates unchanged: the caller may catch it and carry on from x.
        """
        if closure is not None:
            if not callable(closure):
                raise TypeError(f"closure must be callable (a function that recomputes the loss and calls "
                                f"backward()), got {reprlib.repr(closure)}")
            closure = torch.enable_grad()(closure)
        if self._step["saved"] is not None:
            if closure is not None:
                raise ValueError("step(closure) in the middle of a step: first_step() was called; finish it with "
                                 "second_step() (or step() without a closure)")
            self.second_step()
            self._consume()
            return None
        loss = None
        if closure is not None and self._gradient_missing():
            self.zero_grad(set_to_none=True)  # stale or zero: the closure must not add g(x) onto them
            loss = closure()
            self._check_gradient("at x")
        elif all(p.grad is None for group in self.param_groups for p in group["params"]) and self._spec.ascent:
            raise ValueError(f"method {self.method!r} needs a closure: no parameter has a gradient, call "
                             "loss.backward() first and pass a closure that recomputes the loss and its gradient")
        if not self._spec.ascent:
            self.first_step()
            self.second_step()
            self._consume()
            return loss
        if closure is None:
            raise ValueError(f"method {self.method!r} needs a closure that recomputes the loss and its gradient "
                             "(called at the ascent point); or call first_step() and second_step() yourself")
        self.first_step(zero_grad=True)
        try:
            with frozen_running_stats(self.model) if self.model is not None else contextlib.nullcontext():
                ascent_loss = closure()
            self._check_gradient("at the ascent point y")
        except BaseException:
            self._restore()
            self.zero_grad(set_to_none=True)  # gradients taken at y: a next step must not mistake them for g(x)
            raise
        self._step["from_closure"] = True
        try:
            self.second_step()
        finally:
            self._step["from_closure"] = False
        self._consume()
        return ascent_loss if loss is None else loss

    def _grads(self) -> list[torch.Tensor | None]:
        return [p.grad for group in self.param_groups for p in group["params"]]

    def _consume(self) -> None:
        """Remember the gradients this step leaves behind, so that the next step(closure) does not take them
        for g(x)."""
        self._step["consumed"] = [(g, None if g is None else g._version) for g in self._grads()]

    def _gradient_missing(self) -> bool:
        grads = self._grads()
        present = [g for g in grads if g is not None]
        if not present:
            return True
        consumed = self._step["consumed"]
        if consumed is not None and len(consumed) == len(grads) and all(
                g is c and (g is None or g._version == version) for g, (c, version) in zip(grads, consumed)):
            return True  # untouched since the last step: its gradients at y, not g(x)
        return not bool(torch.stack([g.detach().abs().amax().float() if g.numel() else g.new_zeros((), dtype=torch.float32)
                                     for g in present]).amax().to("cpu", non_blocking=False) > 0)

    def _check_gradient(self, where: str) -> None:
        if all(g is None for g in self._grads()):
            raise ValueError(f"the closure produced no gradient {where}: it must call loss.backward() (under "
                             "torch.enable_grad(), which step() provides) and return the loss")

    # -- checkpointing -------------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """The base optimizer's state dict (its groups carry ``rho`` and ``adaptive``) plus a ``"sam"`` entry."""
        state = self.base_optimizer.state_dict()
        state["sam"] = {"method": self.method, "truncate": self.truncate, "diagnostics": self.diagnostics,
                        "ascent_mode": self.ascent_mode, "max_grad_norm": self.max_grad_norm}
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        options = state_dict.pop("sam", None)
        if options is not None:
            self._spec = _method(options.get("method", self.method))
            self.method = self._spec.name
            self.truncate = _flag("truncate", options.get("truncate", self.truncate))
            self.diagnostics = _flag("diagnostics", options.get("diagnostics", self.diagnostics))
            mode = options.get("ascent_mode", self.ascent_mode)
            if mode not in _ASCENT_MODES:
                raise ValueError(f"ascent_mode must be 'global' or 'per_replica', got {reprlib.repr(mode)}")
            self.ascent_mode = mode
            self.max_grad_norm = options.get("max_grad_norm", self.max_grad_norm)
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups  # load_state_dict builds new group dicts
        self.state = self.base_optimizer.state
        for index, group in enumerate(self.param_groups):
            self._check_group(group, index)

    def __repr__(self) -> str:
        return (f"SAMOptimizer(method={self.method!r}, truncate={self.truncate}, "
                f"base_optimizer={self.base_optimizer!r})")
