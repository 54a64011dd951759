"""Closed-form critical learning rates on quadratics (docs/theory.md O1–O4), per method: see
:mod:`samtheory.stability`. The formulas themselves live in :mod:`samtheory.theory`."""

from __future__ import annotations

import numpy as np

from .. import _validation as check
from .. import theory
from ..methods import resolve_method
from ..result import THRESHOLD_EDGES, Threshold, reasons

__all__ = ["EDGES", "analytic_critical_learning_rate"]

#: The two edges of a stability regime (see :data:`samtheory.result.THRESHOLD_EDGES`).
EDGES = THRESHOLD_EDGES[:2]


def analytic_critical_learning_rate(method, eigenvalues, rho, edge: str = "nondivergent", *, adaptive: bool = False,
                                    truncate: bool = False, momentum=0.0, nesterov: bool = False,
                                    weight_decay=0.0) -> Threshold:
    r"""The critical learning rate of ``method`` on a PSD quadratic with spectrum ``eigenvalues``, where known.

    ========  ==============================  ===========================================================
    method    ``edge="nondivergent"``         ``edge="converged"``
    ========  ==============================  ===========================================================
    gd        2/λ_max (O1)                    2/λ_max
    usam      2/(λ_max(1 + ρλ_max)) (O2)      2/(λ_max(1 + ρλ_max))
    sam       2/λ_max (O3: bounded below)     none for ρ > 0: SAM approaches a 2-cycle, it does not converge
    ssam      2/λ_max in d = 1 (O4: = GD)     2/λ_max in d = 1; none in d > 1 (no closed form)
    susam     2/λ_max in any d (O13)          2/λ_max in d = 1; none in d > 1 (ill-posed, O13: compare rates)
    ========  ==============================  ===========================================================

    With a base optimizer (O15: heavy-ball ``momentum`` β, ``nesterov``, coupled ``weight_decay`` w) ``gd`` and
    ``usam`` have :func:`~samtheory.theory.base_optimizer_critical_learning_rate` of λ_max and
    λ_max(1 + ρλ_max) on both edges (the recursion converges wherever it is stable); ``ssam`` and ``susam`` in
    d = 1 are GD's (O4: the base optimizer receives g(x)); every other case has no closed form.

    At ρ = 0 every method is GD. ``adaptive=True`` and user-defined rules have no closed form.
    ``truncate`` changes nothing on a PSD quadratic: γ ≤ 1 there already (:func:`renormalization_bounds`).
    A spectrum with a negative eigenvalue has no threshold.

    Parameters
    ----------
    method : str, MethodSpec or callable
        The method.
    eigenvalues : array_like, shape (..., d)
        Spectra.
    rho : array_like
        Radius ρ ≥ 0, broadcast against the spectra's leading shape.
    edge : {"nondivergent", "converged"}
    adaptive, truncate : bool
        The rule's options.
    momentum, nesterov, weight_decay : optional
        The base optimizer of :func:`samtheory.simulate` (scalars; default none).

    Returns
    -------
    Threshold
        ``source="analytic"``, with the broadcast shape of ``rho`` and the spectra's leading shape; NaN
        entries have no closed form and ``reason`` says why.
    """
    check.choice("edge", edge, EDGES)
    spec = resolve_method(method)
    kind = spec.kind
    lam = theory._spectrum(eigenvalues)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    adaptive = check.as_bool("adaptive", adaptive)
    check.as_bool("truncate", truncate)
    momentum, nesterov, weight_decay = theory._base_arguments(momentum, nesterov, weight_decay)
    if momentum.ndim or weight_decay.ndim:
        raise ValueError(f"momentum and weight_decay must be numbers, got shapes {momentum.shape}, {weight_decay.shape}")
    with_base = bool(momentum > 0 or weight_decay > 0)
    try:
        shape = np.broadcast_shapes(rho.shape, lam.shape[:-1])
    except ValueError:
        raise ValueError(f"rho of shape {rho.shape} does not broadcast with spectra of shape {lam.shape}") from None

    def threshold(value, missing_reason=""):
        value = np.array(np.broadcast_to(value, shape), dtype=np.float64)
        return Threshold(spec.name, edge, "analytic", value, value.copy(), value.copy(), 0.0,
                         reasons(shape, np.isnan(value), missing_reason))

    def none(reason):
        return threshold(np.nan, reason)

    if kind is None:
        return none(f"no closed form for the user-defined rule {spec.name!r}")
    if adaptive:
        return none("no closed form with adaptive=True (the ASAM ascent breaks rotation equivariance, O7)")
    if np.any(lam < 0):
        return none("the spectrum has a negative eigenvalue: iterates leave along it at every η, no threshold")
    lam_max = lam.max(axis=-1)
    if np.any(lam_max == 0):
        return none("H = 0: every learning rate is stable")
    rho = np.broadcast_to(rho, shape)
    if with_base:
        base = dict(momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
        if kind in ("ssam", "susam") and lam.shape[-1] == 1:
            kind = "gd"  # O4: in one dimension the base optimizer receives g(x)
        if kind == "gd":
            return threshold(np.broadcast_to(theory.base_optimizer_critical_learning_rate(lam_max, **base), shape))
        if kind == "usam":
            return threshold(theory.base_optimizer_critical_learning_rate(theory.usam_curvature(lam_max, rho), **base))
        return none(f"no closed form for {spec.name} with momentum or weight decay (O15 covers gd and usam, "
                    "and ssam/susam in d = 1)")
    gd_value = np.broadcast_to(theory.gd_critical_learning_rate(lam_max), shape)
    if kind == "gd":
        return threshold(gd_value)
    if kind == "usam":
        return threshold(theory.usam_critical_learning_rate(lam_max, rho))
    if kind == "sam":
        if edge == "converged":
            return threshold(np.where(rho == 0, gd_value, np.nan),
                             "sam does not converge at constant η for ρ > 0: it approaches the 2-cycle ±a·u_1 (O3)")
        return threshold(gd_value)
    if lam.shape[-1] == 1:
        return threshold(gd_value)  # one dimension: ssam and susam are GD (O4)
    if kind == "susam":
        if edge == "nondivergent":  # O13: x⁺ = (I − s_t A)x, and the sharp mode's multiplier ≤ 1 − ηλ_max
            return threshold(gd_value)
        return threshold(np.where(rho == 0, gd_value, np.nan),
                         "a converged-within-T-steps edge is ill-posed for susam in d > 1: its rate is flat in η "
                         "over most of (0, 2/λ_max), so the edge tracks the tolerance (O13); compare rates")
    # γ's lower bound (renormalization_bounds) does show divergence above 2/λ_max, but that is a bound.
    return threshold(np.where(rho == 0, gd_value, np.nan),
                     f"no closed form for {spec.name} in d > 1 (O4 reduces it to GD only in d = 1)")
