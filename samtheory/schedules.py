r"""Learning-rate schedules η_t = η · s(t) of the engine (``simulate(..., schedule=...)``).

A schedule is a built-in name with its parameters, written ``"NAME[:p1[:p2...]]"`` as on the command line, or
any callable ``s(t) -> float`` of the step index t = 0, 1, ..., T − 1. The factor is the same for every row of
a batch; η broadcasts as usual. Every factor must be finite and > 0 (``ValueError`` naming the step otherwise).

==========================  ===================================  ================================================
schedule                    s(t)                                 torch.optim.lr_scheduler equivalent
==========================  ===================================  ================================================
``constant``                1                                    none (no scheduler)
``step:K[:G]``              G^⌊t/K⌋ (G = 0.1)                    ``StepLR(step_size=K, gamma=G)``
``cosine:T[:M]``            M + (1 − M)(1 + cos(π min(t,T)/T))/2  ``CosineAnnealingLR(T_max=T, eta_min=M·η)``
``warmup:K``                min(1, (t + 1)/K)                    ``LinearLR(start_factor=1/K, total_iters=K − 1)``
``inverse``                 1/(t + 1)                            ``LambdaLR(lambda t: 1/(t + 1))``
``power:C:T0:A``            C/(t + T0)^A                         ``LambdaLR(lambda t: C/(t + T0)**A)``
==========================  ===================================  ================================================

(``cosine`` stays at M past T, where torch's restarts; with M = 0 its factor at t ≥ T is 0 and rejected.)
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

__all__ = ["SCHEDULES", "schedule_factors", "parse_schedule"]

# name -> (parameter names, defaults of the trailing ones, factor(t, *params) on an integer array t)
SCHEDULES: dict[str, tuple[tuple[str, ...], tuple[float, ...], Callable]] = {
    "constant": ((), (), lambda t: np.ones(t.shape)),
    "step": (("K", "G"), (0.1,), lambda t, k, g: g ** np.floor(t / k)),
    "cosine": (("T", "M"), (0.0,), lambda t, T, m: m + (1.0 - m) * (1.0 + np.cos(np.pi * np.minimum(t, T) / T)) / 2.0),
    "warmup": (("K",), (), lambda t, k: np.minimum(1.0, (t + 1.0) / k)),
    "inverse": ((), (), lambda t: 1.0 / (t + 1.0)),
    "power": (("C", "T0", "A"), (), lambda t, c, t0, a: c / (t + t0) ** a),
}
_POSITIVE = {"step": ("K", "G"), "cosine": ("T",), "warmup": ("K",), "power": ("C", "T0")}


def parse_schedule(text: str) -> tuple[str, tuple[float, ...]]:
    """``"NAME[:p1[:p2...]]"`` as (name, parameters with defaults filled in); ``ValueError`` naming what is wrong.

    Parameters
    ----------
    text : str
        A schedule as on the command line, e.g. ``"step:100:0.5"``, ``"cosine:1000"``, ``"power:1:10:0.5"``.

    Returns
    -------
    tuple
        The name and its parameters (floats).
    """
    if not isinstance(text, str):
        raise ValueError(f"schedule must be a string NAME[:params] or a callable, got {text!r:.80}")
    name, *parts = text.strip().split(":")
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)} (NAME[:params]) or a callable, got {text!r}")
    names, defaults, _ = SCHEDULES[name]
    if not len(names) - len(defaults) <= len(parts) <= len(names):
        raise ValueError(f"schedule {name!r} takes parameters {':'.join(names) or '(none)'}"
                         f"{f' (the last {len(defaults)} optional)' if defaults else ''}, got {text!r}")
    try:
        values = [float(part) for part in parts]
    except ValueError:
        raise ValueError(f"schedule parameters must be numbers, got {text!r}") from None
    values += list(defaults[len(values) - (len(names) - len(defaults)):])
    params = dict(zip(names, values))
    for key, value in params.items():
        if not math.isfinite(value) or (key in _POSITIVE.get(name, ()) and value <= 0):
            raise ValueError(f"schedule {name!r}: {key} must be finite{' and > 0' if key in _POSITIVE.get(name, ()) else ''}, "
                             f"got {text!r}")
    return name, tuple(values)


def schedule_factors(schedule, steps: int) -> np.ndarray:
    """The factors s(0), ..., s(steps − 1) of ``schedule``, checked finite and > 0.

    Parameters
    ----------
    schedule : None, str or callable
        None or ``"constant"`` (all ones), ``"NAME[:params]"`` (see the module's table) or ``s(t) -> float``.
    steps : int
        Number of steps T.

    Returns
    -------
    ndarray, shape (steps,)
    """
    t = np.arange(steps)
    if schedule is None:
        return np.ones(steps)
    if callable(schedule):
        try:
            factors = np.array([float(schedule(int(step))) for step in t], dtype=np.float64)
        except (TypeError, ValueError, OverflowError, ArithmeticError) as error:
            raise ValueError(f"schedule {schedule!r:.60} must map a step t to a number: {error}") from None
    else:
        name, params = parse_schedule(schedule)
        with np.errstate(all="ignore"):
            factors = np.asarray(SCHEDULES[name][2](t.astype(np.float64), *params), dtype=np.float64)
    bad = np.flatnonzero(~(np.isfinite(factors) & (factors > 0)))
    if bad.size:
        raise ValueError(f"schedule {schedule!r:.60} must give a finite step factor > 0 at every step, "
                         f"got {float(factors[bad[0]])!r} at t = {int(bad[0])}")
    return factors
