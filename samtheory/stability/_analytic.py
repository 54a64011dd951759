"""Closed forms of the stability regimes on quadratics (THEORY.md O1–O4): see :mod:`samtheory.stability`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _validation as check
from ..methods import METHODS, get_method

__all__ = [
    "EDGES", "gd_critical_learning_rate", "usam_critical_learning_rate", "usam_max_stable_sharpness",
    "sam_cycle_amplitude", "sam_edge", "GammaBounds", "renormalization_bounds", "AnalyticThreshold",
    "analytic_critical_learning_rate", "asymptotic_rate",
]

#: The two edges of a stability regime. ``"nondivergent"``: the largest η at which no initial point diverges
#: (converged or bounded); ``"converged"``: the largest η at which every initial point converges.
EDGES = ("nondivergent", "converged")


# -- closed forms (O1–O4) -----------------------------------------------------------------------------------

def gd_critical_learning_rate(lam_max):
    r"""GD's threshold η_c = 2/λ_max (THEORY.md O1): x_T = (I − ηH)^T x_0 converges iff η < 2/λ_max."""
    lam_max = check.as_float_array("lam_max", lam_max, positive=True)
    return 2.0 / lam_max


def usam_critical_learning_rate(lam_max, rho):
    r"""USAM's threshold η_c = 2/(λ_max(1 + ρλ_max)) (THEORY.md O2; Agarwala & Dauphin 2023).

    On a PSD quadratic x_T = (I − ηH − ηρH²)^T x_0, which converges iff ηλ(1 + ρλ) < 2 for every eigenvalue
    λ; the left side increases with λ, so λ_max decides. Broadcasts over ``lam_max`` and ``rho``.
    """
    lam_max = check.as_float_array("lam_max", lam_max, positive=True)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    return 2.0 / (lam_max * (1.0 + rho * lam_max))


def usam_max_stable_sharpness(eta, rho):
    r"""The largest sharpness USAM tolerates at (η, ρ): λ*(η, ρ) = (√(1 + 8ρ/η) − 1)/(2ρ) (THEORY.md O2).

    The positive root of ηλ(1 + ρλ) = 2, the inverse of :func:`usam_critical_learning_rate` in λ. Evaluated
    as 4/(η(1 + √(1 + 8ρ/η))), which is the same number without the cancellation, and equals GD's 2/η at ρ = 0.
    """
    eta = check.as_float_array("eta", eta, positive=True)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    return 4.0 / (eta * (1.0 + np.sqrt(1.0 + 8.0 * rho / eta)))


def sam_cycle_amplitude(eta, rho, lam):
    r"""Amplitude of SAM's 2-cycle ±a·u_1 on a quadratic: a = ηρλ_1/(2 − ηλ_1) (THEORY.md O3).

    Along u_1 SAM is z ← (1 − ηλ)z − ηλρ·sign(z); z = a → −a gives a(2 − ηλ) = ηλρ. The cycle exists for
    0 < ηλ < 2 (``ValueError`` otherwise: there SAM diverges). Bartlett, Long & Bousquet (2023).
    """
    eta = check.as_float_array("eta", eta, positive=True)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    lam = check.as_float_array("lam", lam, positive=True)
    product = eta * lam
    if np.any(product >= 2):
        raise ValueError(f"eta * lam must be < 2 for SAM's 2-cycle to exist, got max eta*lam = {np.max(product):.6g}")
    return product * rho / (2.0 - product)


def sam_edge(eta, rho, grad_norm):
    r"""SAM's edge of stability at gradient norm ‖g‖ (THEORY.md O3; Long & Bartlett 2023).

    λ_edge(η, ρ, ‖g‖) = (‖g‖/(2ρ))(√(1 + 8ρ/(η‖g‖)) − 1): with ‖g‖ frozen, SAM along an eigenvector of
    eigenvalue λ is z ← (1 − ηλ − ηρλ²/‖g‖)z, i.e. USAM with radius ρ/‖g‖, so λ_edge is
    :func:`usam_max_stable_sharpness` at (η, ρ/‖g‖). At the 2-cycle, λ_edge(η, ρ, λ_1·a) = λ_1. ‖g‖ = 0
    gives 0 (the limit); ρ = 0 gives GD's 2/η.
    """
    eta = check.as_float_array("eta", eta, positive=True)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    grad_norm = check.as_float_array("grad_norm", grad_norm, nonnegative=True)
    # 4/(η(1 + √(1 + 8ρ/(η‖g‖)))) = 4‖g‖/(η‖g‖ + √(η‖g‖(η‖g‖ + 8ρ))): finite at ‖g‖ = 0 and at ρ = 0.
    scaled = eta * grad_norm
    denominator = scaled + np.sqrt(scaled * (scaled + 8.0 * rho))
    with np.errstate(invalid="ignore", divide="ignore"):
        edge = np.where(denominator > 0, 4.0 * grad_norm / np.where(denominator > 0, denominator, 1.0), 0.0)
    return np.where(rho == 0, 2.0 / eta, edge)



def _as_spectrum(eigenvalues) -> np.ndarray:
    lam = check.as_float_array("eigenvalues", eigenvalues)
    if lam.ndim == 0 or lam.shape[-1] == 0:
        raise ValueError(f"eigenvalues must have shape (..., d) with d >= 1, got shape {lam.shape}")
    return lam


def _method_name(method) -> str | None:
    """The built-in name of ``method`` — a name or a built-in rule object (``ValueError`` if unknown) — or None
    for a user-defined rule."""
    rule = get_method(method)[1]
    return next((key for key, builtin in METHODS.items() if builtin is rule), None)


def _method_label(method) -> str:
    """The built-in name, else the rule's own name."""
    return _method_name(method) or get_method(method)[0]


def _psd_extremes(lam: np.ndarray, name: str = "eigenvalues"):
    """(λ_max, smallest positive λ) along the last axis of a PSD spectrum with λ_max > 0."""
    if np.any(lam < 0):
        raise ValueError(f"{name} must be >= 0 (a PSD quadratic), got min {np.min(lam):.6g}")
    lam_max = lam.max(axis=-1)
    if np.any(lam_max <= 0):
        raise ValueError(f"{name} must have a positive entry, got {lam!r:.80}")
    lam_min = np.min(np.where(lam > 0, lam, np.inf), axis=-1)
    return lam_max, lam_min


@dataclass(frozen=True)
class GammaBounds:
    """Bounds ``lower ≤ γ ≤ upper`` on the renormalization factor γ = ‖g(x)‖/‖g(y)‖ (arrays)."""

    lower: np.ndarray
    upper: np.ndarray


def renormalization_bounds(method, eigenvalues, rho, grad_norm=None) -> GammaBounds:
    r"""Bounds on γ = ‖g(x)‖/‖g(y)‖ on a PSD quadratic with spectrum ``eigenvalues`` (THEORY.md O4).

    ``susam``: g(y) = (I + ρH)g, so γ ∈ [1/(1 + ρλ_max), 1/(1 + ρλ_min)] ⊆ [1/(1 + ρλ_max), 1].
    ``ssam``: g(y) = (I + (ρ/‖g‖)H)g, so γ ∈ [1/(1 + ρλ_max/‖g‖), 1/(1 + ρλ_min/‖g‖)]; needs ``grad_norm``
    = ‖g(x)‖ = ‖H(x − x*)‖ (optional for ``susam``; where it is 0, γ = 1, the zero-gradient rule).
    ``gd``, ``sam``, ``usam`` do not renormalize: γ = 1. λ_min is the smallest eigenvalue (0 allowed).
    ``eigenvalues`` has shape (..., d); ``rho`` and ``grad_norm`` broadcast against its leading shape.
    """
    name = _method_name(method)
    if name is None:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got a user-defined rule {method!r}")
    lam = _as_spectrum(eigenvalues)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    if np.any(lam < 0):
        raise ValueError(f"eigenvalues must be >= 0 (a PSD quadratic), got min {np.min(lam):.6g}")
    lam_max, lam_min = lam.max(axis=-1), lam.min(axis=-1)
    if name == "ssam":
        if grad_norm is None:
            raise ValueError("grad_norm is required for ssam: its bounds depend on ‖g(x)‖, got None")
        grad_norm = check.as_float_array("grad_norm", grad_norm, nonnegative=True)
        # ‖g‖/(‖g‖ + ρλ): no overflow for tiny ‖g‖; γ = 1 where ‖g‖ = 0 (the zero-gradient rule).
        safe = np.where(grad_norm > 0, grad_norm, 1.0)
        lower = np.where(grad_norm > 0, safe / (safe + rho * lam_max), 1.0)
        upper = np.where(grad_norm > 0, safe / (safe + rho * lam_min), 1.0)
    else:
        scale = rho if name == "susam" else np.zeros_like(rho)
        lower, upper = 1.0 / (1.0 + scale * lam_max), 1.0 / (1.0 + scale * lam_min)
        if grad_norm is not None:  # susam at ‖g‖ = 0: γ = 1 by the zero-gradient rule
            at_zero = check.as_float_array("grad_norm", grad_norm, nonnegative=True) == 0
            lower, upper = np.where(at_zero, 1.0, lower), np.where(at_zero, 1.0, upper)
    return GammaBounds(*np.broadcast_arrays(lower, upper))


@dataclass(frozen=True)
class AnalyticThreshold:
    """A closed-form critical learning rate, or the reason there is none.

    ``value`` is a float array (the broadcast shape of ``rho`` and the spectra's leading shape) or None when
    no entry has a closed form; NaN entries have none (``reason`` says why; "" when every entry has a value).
    """

    method: str
    edge: str
    value: np.ndarray | None
    reason: str


def analytic_critical_learning_rate(method, eigenvalues, rho, edge: str = "nondivergent", *, adaptive: bool = False,
                                    truncate: bool = False) -> AnalyticThreshold:
    r"""The critical learning rate of ``method`` on a PSD quadratic with spectrum ``eigenvalues``, where known.

    ========  ==============================  ===========================================================
    method    ``edge="nondivergent"``         ``edge="converged"``
    ========  ==============================  ===========================================================
    gd        2/λ_max (O1)                    2/λ_max
    usam      2/(λ_max(1 + ρλ_max)) (O2)      2/(λ_max(1 + ρλ_max))
    sam       2/λ_max (O3: bounded below)     None for ρ > 0: SAM approaches a 2-cycle, it does not converge
    ssam      2/λ_max in d = 1 (O4: = GD)     2/λ_max in d = 1; None in d > 1 (no closed form)
    susam     2/λ_max in d = 1 (O4: = GD)     2/λ_max in d = 1; None in d > 1 (no closed form)
    ========  ==============================  ===========================================================

    At ρ = 0 every method is GD. ``adaptive=True`` and user-defined rules have no closed form (None).
    ``truncate`` changes nothing on a PSD quadratic: γ ≤ 1 there already (:func:`renormalization_bounds`).
    A spectrum with a negative eigenvalue has no threshold (None). ``eigenvalues`` has shape (..., d).
    """
    check.choice("edge", edge, EDGES)
    name = _method_name(method)
    label = _method_label(method)
    lam = _as_spectrum(eigenvalues)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    if not isinstance(truncate, (bool, np.bool_)):
        raise ValueError(f"truncate must be True or False, got {truncate!r}")
    try:
        shape = np.broadcast_shapes(rho.shape, lam.shape[:-1])
    except ValueError:
        raise ValueError(f"rho of shape {rho.shape} does not broadcast with spectra of shape {lam.shape}") from None

    def none(reason):
        return AnalyticThreshold(label, edge, None, reason)

    if name is None:
        return none(f"no closed form for the user-defined rule {label!r}")
    if adaptive:
        return none("no closed form with adaptive=True (the ASAM ascent breaks rotation equivariance, O7)")
    if np.any(lam < 0):
        return none("the spectrum has a negative eigenvalue: iterates leave along it at every η, no threshold")
    lam_max = lam.max(axis=-1)
    if np.any(lam_max == 0):
        return none("H = 0: every learning rate is stable")
    rho = np.broadcast_to(rho, shape)
    gd_value = np.broadcast_to(2.0 / lam_max, shape)
    reason = ""
    if name == "gd":
        value = gd_value
    elif name == "usam":
        value = 2.0 / (lam_max * (1.0 + rho * lam_max))
    elif name == "sam":
        value = gd_value
        if edge == "converged":
            value = np.where(rho == 0, gd_value, np.nan)
            reason = "sam does not converge at constant η for ρ > 0: it approaches the 2-cycle ±a·u_1 (O3)"
    elif lam.shape[-1] == 1:
        value = gd_value  # one dimension: ssam and susam are GD (O4)
    else:
        value = np.where(rho == 0, gd_value, np.nan)
        # γ's lower bound (renormalization_bounds) does show divergence above 2/λ_max, but that is a bound.
        reason = f"no closed form for {name} in d > 1 (O4 reduces it to GD only in d = 1)"
    value = np.array(value, dtype=np.float64)
    if np.all(np.isnan(value)):
        return none(reason)
    return AnalyticThreshold(label, edge, value, reason if np.any(np.isnan(value)) else "")


def asymptotic_rate(method, eigenvalues, eta, rho):
    r"""Predicted asymptotic contraction factor per step of ‖g(x_t)‖ on a PSD quadratic (> 1: divergence).

    With λ_max and λ_min the largest and smallest positive eigenvalues, and r = max(|1 − ηλ_min|, |1 − ηλ_max|):

    - ``gd``: r (O1); ``usam``: max_i |1 − ηλ_i(1 + ρλ_i)| (O2);
    - ``sam`` (ρ > 0): max(1, |1 − ηλ_max|): ‖g‖ tends to the 2-cycle's, not to 0 (O3);
    - ``susam`` [derived here, confirmed by the tests]: max(r, (A_max − A_min)/(A_max + A_min)) with
      A = λ(1 + ρλ). The renormalization self-tunes the effective step ηγ: once η exceeds
      η_a = 2(1 + ρλ_min)/(A_max + A_min) the sharp component bounces (period 2, multiplier ≈ −rate) and
      ηγ → 2/(A_max + A_min), USAM's optimal step, so the rate stops improving with η: it is USAM's best
      rate, never GD's. Below 2/λ_max it is < 1, so susam converges (slowly) up to GD's edge.
    - ``ssam``: the same with A = λ² — the limit ‖g‖ → 0, where ssam acts like USAM with radius ρ/‖g‖ → ∞;
      its rate tends to (λ_max² − λ_min²)/(λ_max² + λ_min²) for every η in (2λ_min/(λ_max² + λ_min²),
      2λ_max/(λ_max² + λ_min²)).

    The ssam/susam rates assume iterates with components on the extreme eigenvectors (in floating point a
    component that underflows to 0 stays 0). ``eigenvalues`` (..., d); ``eta``, ``rho`` broadcast against
    its leading shape.
    """
    name = _method_name(method)
    if name is None:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got a user-defined rule {method!r}")
    lam = _as_spectrum(eigenvalues)
    eta = check.as_float_array("eta", eta, positive=True)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    lam_max, lam_min = _psd_extremes(lam)
    gd_rate = np.maximum(np.abs(1.0 - eta * lam_min), np.abs(1.0 - eta * lam_max))
    if name == "gd":
        return gd_rate
    if name == "usam":
        return np.maximum(np.abs(1.0 - eta * lam_min * (1 + rho * lam_min)),
                          np.abs(1.0 - eta * lam_max * (1 + rho * lam_max)))
    if name == "sam":
        return np.where(rho > 0, np.maximum(1.0, np.abs(1.0 - eta * lam_max)), gd_rate)
    if name == "susam":
        a_max, a_min = lam_max * (1 + rho * lam_max), lam_min * (1 + rho * lam_min)
    else:
        a_max, a_min = lam_max**2, lam_min**2
    plateau = (a_max - a_min) / (a_max + a_min)
    return np.where(rho > 0, np.maximum(gd_rate, plateau), gd_rate)

