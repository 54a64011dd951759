r"""SAM, USAM and StableSAM around any ``torch.optim`` optimizer: the update rules of THEORY.md §2.

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

``adaptive`` (ASAM, Kwon et al. 2021; T(x) = |x|): ε = ρ T² g/‖T g‖ or ρ T² g, and γ = ‖T(x) g(x)‖/‖T(y) g(y)‖
(the official StableSAM code's convention). ``truncate``: γ ← min(1, γ). A zero norm gives ε = 0 and γ = 1.
Norms are global over all parameters (all groups), accumulated in float32 at least, and stay on the device.
The base optimizer then applies its own rule (momentum, weight decay, Adam moments) to the descent gradient at
the restored point x, as in the official code. With plain SGD the iterates equal :mod:`samtheory.methods`'
(tests/test_torch_equivalence.py).

References: Foret et al. (2021); Andriushchenko & Flammarion (2022); Tan et al., arXiv 2401.07250 (JMLR 2025).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from .. import _validation as check

__all__ = ["SAMOptimizer", "StepStats", "METHOD_NAMES"]

METHOD_NAMES = ("gd", "sam", "usam", "ssam", "susam")
_NORMALIZED = frozenset({"sam", "ssam"})
_RENORMALIZED = frozenset({"ssam", "susam"})


class StepStats(NamedTuple):
    """Diagnostics of the last step, as 0-dim tensors on the parameters' device (no host synchronization).

    ``grad_norm`` is ‖g(x)‖, ``ascent_grad_norm`` ‖g(y)‖ and ``gamma`` the renormalization factor; a field is
    None where the step did not compute it (``diagnostics=True`` computes ‖g(x)‖ and ‖g(y)‖ for every method).
    """

    grad_norm: torch.Tensor | None
    ascent_grad_norm: torch.Tensor | None
    gamma: torch.Tensor | None


def _flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def _rho(value) -> float:
    rho = check.as_float_array("rho", value, nonnegative=True)
    if rho.ndim != 0:
        raise ValueError(f"rho must be a number, got {value!r}")
    return float(rho)


def _accumulation_dtype(tensors) -> torch.dtype:
    """float64 if any tensor is float64, else float32 (bfloat16 and float16 norms accumulate in float32)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


# On the CPU, concatenating up to this many elements and taking one norm beats per-tensor norm kernels.
_CPU_CONCATENATE_LIMIT = 1 << 22


def _common_device(tensors: list[torch.Tensor]) -> torch.device | None:
    """The device of all ``tensors``, or None when they are spread over several."""
    device = tensors[0].device
    return device if all(t.device == device for t in tensors) else None


def _by_device(tensors: list[torch.Tensor]) -> dict[torch.device, list[int]]:
    indices: dict[torch.device, list[int]] = {}
    for i, tensor in enumerate(tensors):
        indices.setdefault(tensor.device, []).append(i)
    return indices


def _device_norm(group: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    if group[0].device.type == "cpu" and sum(t.numel() for t in group) <= _CPU_CONCATENATE_LIMIT:
        return torch.linalg.vector_norm(torch.cat([t.reshape(-1) for t in group]), dtype=dtype)
    try:  # one fused multi-tensor kernel on CUDA
        norms = torch._foreach_norm(group, 2, dtype=dtype)
    except (TypeError, RuntimeError):  # older torch: no dtype argument
        norms = [torch.linalg.vector_norm(t, dtype=dtype) for t in group]
    return torch.linalg.vector_norm(torch.stack(norms))


def _global_norm(tensors: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """‖(t_1, ..., t_n)‖₂ accumulated in ``dtype``, on the first tensor's device, without host synchronization."""
    if _common_device(tensors) is not None:
        return _device_norm(tensors, dtype)
    target = tensors[0].device
    partial = [_device_norm([tensors[i] for i in indices], dtype).to(target)
               for indices in _by_device(tensors).values()]
    return torch.linalg.vector_norm(torch.stack(partial))


def _scale_(tensors: list[torch.Tensor], factor: torch.Tensor) -> None:
    """tensors ← factor · tensors in place, with the 0-dim ``factor`` copied once to each device."""
    if _common_device(tensors) == factor.device:
        torch._foreach_mul_(tensors, factor)
        return
    for device, indices in _by_device(tensors).items():
        torch._foreach_mul_([tensors[i] for i in indices], factor.to(device))


def _scaled(tensors: list[torch.Tensor], factor: torch.Tensor) -> list[torch.Tensor]:
    """factor · tensors as new tensors, in order (``factor`` a 0-dim tensor, copied once to each device)."""
    if _common_device(tensors) == factor.device:
        return torch._foreach_mul(tensors, factor)
    out: list[torch.Tensor] = [None] * len(tensors)  # type: ignore[list-item]
    for device, indices in _by_device(tensors).items():
        for i, value in zip(indices, torch._foreach_mul([tensors[i] for i in indices], factor.to(device))):
            out[i] = value
    return out


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
        One of :data:`METHOD_NAMES` (default ``"ssam"``).
    rho : float, optional
        Default radius of the param groups, >= 0 (default 0.05).
    adaptive : bool, optional
        Default ASAM ascent of the param groups (default False).
    truncate : bool, optional
        Use min(1, γ) (default False).
    diagnostics : bool, optional
        Compute ‖g(x)‖ and ‖g(y)‖ at every step for :attr:`last_stats` (default False).
    **base_kwargs
        Passed to ``base_optimizer`` (``lr``, ``momentum``, ...); ``ValueError`` if it rejects them.
    """

    def __init__(self, params, base_optimizer=None, *, method: str = "ssam", rho: float = 0.05,
                 adaptive: bool = False, truncate: bool = False, diagnostics: bool = False, **base_kwargs):
        self.method = check.choice("method", method, METHOD_NAMES)
        self.truncate = _flag("truncate", truncate)
        self.diagnostics = _flag("diagnostics", diagnostics)
        defaults = {"rho": _rho(rho), "adaptive": _flag("adaptive", adaptive)}
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
            super().__init__(params, {**defaults, **base_kwargs})
            try:
                base = base_optimizer(self.param_groups, **base_kwargs)
            except TypeError as error:
                raise ValueError(f"base_optimizer {base_optimizer.__name__} rejected its arguments: {error}") from None
        self.base_optimizer = base
        self.param_groups = base.param_groups
        self.state = base.state
        self.defaults.update(base.defaults)
        for group in self.param_groups:
            self._check_group(group)
        self.last_stats = StepStats(None, None, None)
        self._saved: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None
        self._buffers: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])  # reused copies of x
        self._ascent_numerator: torch.Tensor | None = None

    def _check_group(self, group: dict) -> None:
        group["rho"] = _rho(group.get("rho", self.defaults["rho"]))
        group["adaptive"] = _flag("adaptive", group.get("adaptive", self.defaults["adaptive"]))

    def add_param_group(self, param_group: dict) -> None:
        if not hasattr(self, "base_optimizer"):  # called by torch.optim.Optimizer.__init__
            return super().add_param_group(param_group)
        self._check_group(param_group)
        self.base_optimizer.add_param_group(param_group)

    # -- the two half-steps --------------------------------------------------------------------------------------

    def _with_grad(self):
        """(group, params with a gradient) for every group."""
        return [(group, [p for p in group["params"] if p.grad is not None]) for group in self.param_groups]

    @staticmethod
    def _weighted(groups) -> list[torch.Tensor]:
        """T ⊙ g for every parameter with a gradient: T = |p| in adaptive groups, 1 elsewhere."""
        return [torch.abs(p) * p.grad if group["adaptive"] else p.grad for group, params in groups for p in params]

    def _save(self, params: list[torch.Tensor]) -> None:
        """Copy x into buffers kept from step to step (one foreach copy, no allocation once warm)."""
        cached, buffers = self._buffers
        if len(cached) != len(params) or any(a is not b for a, b in zip(cached, params)) or any(
                b.shape != p.shape or b.dtype != p.dtype or b.device != p.device for b, p in zip(buffers, params)):
            buffers = [torch.empty_like(p) for p in params]
            self._buffers = (params, buffers)
        torch._foreach_copy_(buffers, params)
        self._saved = (params, buffers)

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Move every parameter with a gradient to the ascent point y = x + ε, remembering x."""
        groups = self._with_grad()
        params = [p for _, ps in groups for p in ps]
        self._saved, self._ascent_numerator = None, None
        if not params:
            self.last_stats = StepStats(None, None, None)
            self._saved = ([], [])
            return
        grads = [p.grad for p in params]
        dtype = _accumulation_dtype(grads)
        any_adaptive = any(group["adaptive"] for group, ps in groups if ps)
        normalize, renormalize = self.method in _NORMALIZED, self.method in _RENORMALIZED
        grad_norm = None
        if self.diagnostics or (not any_adaptive and (normalize or renormalize)):
            grad_norm = _global_norm(grads, dtype)
        if self.method == "gd":
            self.last_stats = StepStats(grad_norm, grad_norm, None)
            self._saved = ([], [])
            if zero_grad:
                self.zero_grad()
            return
        weighted = self._weighted(groups) if any_adaptive else grads
        weighted_norm = _global_norm(weighted, dtype) if any_adaptive and (normalize or renormalize) else grad_norm
        self._ascent_numerator = weighted_norm
        self.last_stats = StepStats(grad_norm, None, None)
        self._save(params)
        offset = 0
        for group, ps in groups:
            if not ps:
                continue
            chunk = weighted[offset:offset + len(ps)]
            offset += len(ps)
            # ε = T ⊙ (T ⊙ g) · scale, in the NumPy reference's order of operations.
            ascent = torch._foreach_mul([torch.abs(p) for p in ps], chunk) if group["adaptive"] else chunk
            if normalize:  # ρ/‖·‖, and 0 where the norm is 0
                scale = torch.full_like(weighted_norm, group["rho"]).div_(weighted_norm).nan_to_num_(0.0, 0.0)
                ascent = _scaled(ascent, scale)
            else:
                ascent = torch._foreach_mul(ascent, group["rho"])
            torch._foreach_add_(ps, ascent)
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Restore x, rescale the gradient g(y) by γ (StableSAM) and take the base optimizer's step."""
        if self._saved is None:
            raise ValueError("second_step() needs a first_step() before it (or use step(closure))")
        saved_params, saved_values = self._saved
        self._saved = None
        renormalize = self.method in _RENORMALIZED
        groups = self._with_grad() if (renormalize or self.diagnostics) and self.method != "gd" else []
        grads = [p.grad for _, ps in groups for p in ps]
        if grads:
            dtype = _accumulation_dtype(grads)
            ascent_grad_norm = _global_norm(grads, dtype)
            gamma = None
            if renormalize:
                any_adaptive = any(group["adaptive"] for group, ps in groups if ps)
                denominator = _global_norm(self._weighted(groups), dtype) if any_adaptive \
                    else ascent_grad_norm
                numerator = self._ascent_numerator
                if numerator is None:  # no parameter had a gradient at x
                    numerator = torch.zeros((), dtype=dtype, device=denominator.device)
                # γ = numerator/denominator, and 1 where the denominator is 0 (0/0 = NaN, x/0 = inf).
                gamma = torch.div(numerator.to(denominator.device, dtype), denominator).nan_to_num_(1.0, 1.0)
                if self.truncate:
                    gamma.clamp_(max=1.0)
                _scale_(grads, gamma)
            self.last_stats = StepStats(self.last_stats.grad_norm, ascent_grad_norm, gamma)
        if saved_params:
            torch._foreach_copy_(saved_params, saved_values)
        self._ascent_numerator = None
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None):
        """One full step. ``closure`` re-evaluates the loss on the step's minibatch, calls ``backward()`` and returns
        the loss (zeroing the gradients inside it is allowed, not needed: ``first_step`` has done it).

        If no parameter has a gradient yet, ``closure`` is first called at x; its loss is returned (else None).
        ``gd`` needs no closure when the gradient is present; the other methods always need one (for g(y)).
        """
        if closure is not None:
            closure = torch.enable_grad()(closure)
        loss = None
        if all(p.grad is None for group in self.param_groups for p in group["params"]):
            if closure is None and self.method != "gd":
                raise ValueError(f"method {self.method!r} needs a closure: no parameter has a gradient, call "
                                 "loss.backward() first and pass a closure that recomputes the loss and its gradient")
            if closure is not None:
                loss = closure()
        if self.method == "gd":
            self.first_step()
            self.second_step()
            return loss
        if closure is None:
            raise ValueError(f"method {self.method!r} needs a closure that recomputes the loss and its gradient "
                             "(called at the ascent point); or call first_step() and second_step() yourself")
        self.first_step(zero_grad=True)
        closure()
        self.second_step()
        return loss

    # -- checkpointing -------------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """The base optimizer's state dict (its groups carry ``rho`` and ``adaptive``) plus a ``"sam"`` entry."""
        state = self.base_optimizer.state_dict()
        state["sam"] = {"method": self.method, "truncate": self.truncate, "diagnostics": self.diagnostics}
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        options = state_dict.pop("sam", None)
        if options is not None:
            self.method = check.choice("method", options.get("method", self.method), METHOD_NAMES)
            self.truncate = _flag("truncate", options.get("truncate", self.truncate))
            self.diagnostics = _flag("diagnostics", options.get("diagnostics", self.diagnostics))
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups  # load_state_dict builds new group dicts
        self.state = self.base_optimizer.state
        for group in self.param_groups:
            self._check_group(group)

    def __repr__(self) -> str:
        return (f"SAMOptimizer(method={self.method!r}, truncate={self.truncate}, "
                f"base_optimizer={self.base_optimizer!r})")
