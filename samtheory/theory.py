r"""Every closed form of docs/theory.md, once, vectorized over NumPy arrays; the oracle number is in each docstring.

The rest of samtheory calls these functions (the stability thresholds, the linearization's default orbits, the
uniform-stability constants, the PEP regime, the explorer's explanations, the figures) and never writes the
formulas again. Each function validates its arguments at the boundary (``ValueError`` naming the argument) and
broadcasts them against each other.

========================================  ====  ========================================================
function                                  ora.  formula
========================================  ====  ========================================================
:func:`gd_critical_learning_rate`         O1    2/λ_max
:func:`usam_curvature`                    O2    A(λ, ρ) = λ(1 + ρλ)  (USAM is GD on A)
:func:`usam_critical_learning_rate`       O2    2/(λ_max(1 + ρλ_max))
:func:`usam_max_stable_sharpness`         O2    (√(1 + 8ρ/η) − 1)/(2ρ)
:func:`sam_cycle_amplitude`               O3    ηρλ_1/(2 − ηλ_1)
:func:`sam_edge`                          O3    (‖g‖/(2ρ))(√(1 + 8ρ/(η‖g‖)) − 1)
:func:`renormalization_bounds`            O4    γ ∈ [1/(1 + ρλ_max), 1/(1 + ρλ_min)] (susam), … (ssam)
:func:`asymptotic_rate`                   O13   per-step contraction of ‖g‖ on a PSD quadratic (+ O15 bases)
:func:`base_optimizer_critical_learning_rate` O15  2(1 + β)/((1 + 2β if Nesterov else 1)(a_max + w))
:func:`heavy_ball_rate`                   O15   largest |root| of the momentum recursion on one curvature
:func:`usam_expansivity`                  O14   κ(η, ρ) of USAM over L-smooth convex functions
:func:`usam_expansivity_fraction`         O14   t* = cos² of the worst case's two curvature directions
:func:`usam_uniform_stability_bound`      O14   HRS with κ: (2ηG(1 + ρβ)/n)(a^T − 1)/(a − 1), a = 1 + (1 − 1/n)(κ − 1)
:func:`sam_cycle_suboptimality`           O18   λ₁³η²ρ²/(2(2 − ηλ₁)²)
:func:`sam_step_decay_landing`            O18   a(1 − 2G): SAM one step after η → Gη on its 2-cycle
:func:`gd_worst_case_bound`               O9    L R²/(4Nh + 2), h = ηL
:func:`analytic_expansivity`              O10   HRS constants of GD, USAM's (1 + ηβ(1 + ρβ))
:func:`edge_sharpness`                    O12   λ at each method's edge with momentum β, weight decay w, γ
========================================  ====  ========================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _validation as check
from .methods import resolve_method

__all__ = [
    "gd_critical_learning_rate", "usam_curvature", "usam_critical_learning_rate", "usam_max_stable_sharpness",
    "sam_cycle_amplitude", "sam_edge", "GammaBounds", "renormalization_bounds", "asymptotic_rate",
    "gd_worst_case_bound", "analytic_expansivity", "base_optimizer_critical_learning_rate", "heavy_ball_rate",
    "usam_expansivity", "sam_cycle_suboptimality", "usam_expansivity_fraction",
    "usam_uniform_stability_bound", "sam_step_decay_landing", "edge_sharpness",
]


def _spectrum(eigenvalues) -> np.ndarray:
    lam = check.as_float_array("eigenvalues", eigenvalues)
    if lam.ndim == 0 or lam.shape[-1] == 0:
        raise ValueError(f"eigenvalues must have shape (..., d) with d >= 1, got shape {lam.shape}")
    return lam


def _psd_extremes(lam: np.ndarray, name: str = "eigenvalues"):
    """(λ_max, smallest positive λ) along the last axis of a PSD spectrum with λ_max > 0."""
    if np.any(lam < 0):
        raise ValueError(f"{name} must be >= 0 (a PSD quadratic), got min {np.min(lam):.6g}")
    lam_max = lam.max(axis=-1)
    if np.any(lam_max <= 0):
        raise ValueError(f"{name} must have a positive entry, got {lam!r:.80}")
    lam_min = np.min(np.where(lam > 0, lam, np.inf), axis=-1)
    return lam_max, lam_min


def _builtin_kind(method, what: str) -> str:
    """The built-in method (gd, sam, usam, ssam, susam) whose structure ``method`` has; ``ValueError`` for a
    user-defined rule, whose closed forms are unknown."""
    spec = resolve_method(method)
    kind = spec.kind
    if kind is None:
        raise ValueError(f"method must be a method of known structure for {what}, got the user-defined rule "
                         f"{spec.name!r}")
    return kind


# -- O1, O2 ----------------------------------------------------------------------------------------------------

def gd_critical_learning_rate(lam_max):
    r"""GD's threshold η_c = 2/λ_max (O1): x_T = (I − ηH)^T x_0 converges iff η < 2/λ_max.

    Parameters
    ----------
    lam_max : array_like
        Largest Hessian eigenvalue(s), > 0.

    Returns
    -------
    ndarray
    """
    lam_max = check.as_float_array("lam_max", lam_max, positive=True)
    with np.errstate(over="ignore"):  # 2/λ for subnormal λ is inf: the true (unbounded) threshold
        return 2.0 / lam_max


def usam_curvature(lam, rho):
    r"""USAM's effective curvature A(λ, ρ) = λ(1 + ρλ) (O2): on a quadratic USAM is x ← (I − ηA(H))x.

    Parameters
    ----------
    lam : array_like
        Eigenvalue(s) λ (any sign).
    rho : array_like
        Radius ρ ≥ 0.

    Returns
    -------
    ndarray
        Broadcast of λ and ρ; may be inf where λ(1 + ρλ) overflows.
    """
    lam = check.as_float_array("lam", lam)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    with np.errstate(over="ignore", invalid="ignore"):
        return lam * (1.0 + rho * lam)


def usam_critical_learning_rate(lam_max, rho):
    r"""USAM's threshold η_c = 2/(λ_max(1 + ρλ_max)) (O2; Agarwala & Dauphin 2023).

    On a PSD quadratic x_T = (I − ηH − ηρH²)^T x_0, which converges iff ηλ(1 + ρλ) < 2 for every eigenvalue
    λ; the left side increases with λ, so λ_max decides.

    Parameters
    ----------
    lam_max : array_like
        Largest eigenvalue(s), > 0 (the smoothness constant L for the PEP regime).
    rho : array_like
        Radius ρ ≥ 0; broadcasts with ``lam_max``.

    Returns
    -------
    ndarray
        η_c; 0 where λ_max(1 + ρλ_max) overflows (no positive learning rate is stable there).
    """
    lam_max = check.as_float_array("lam_max", lam_max, positive=True)
    curvature = usam_curvature(lam_max, rho)
    with np.errstate(over="ignore"):
        return 2.0 / curvature


def usam_max_stable_sharpness(eta, rho):
    r"""The largest sharpness USAM tolerates at (η, ρ): λ*(η, ρ) = (√(1 + 8ρ/η) − 1)/(2ρ) (O2).

    The positive root of ηλ(1 + ρλ) = 2, the inverse of :func:`usam_critical_learning_rate` in λ. Evaluated
    as 4/(η(1 + √(1 + 8ρ/η))), the same number without the cancellation, which equals GD's 2/η at ρ = 0.

    Parameters
    ----------
    eta : array_like
        Learning rate(s), > 0.
    rho : array_like
        Radius ρ ≥ 0.

    Returns
    -------
    ndarray
    """
    eta = check.as_float_array("eta", eta, positive=True)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    with np.errstate(over="ignore"):
        return 4.0 / (eta * (1.0 + np.sqrt(1.0 + 8.0 * rho / eta)))


# -- O3 --------------------------------------------------------------------------------------------------------

def sam_cycle_amplitude(eta, rho, lam):
    r"""Amplitude of SAM's 2-cycle ±a·u_1 on a quadratic: a = ηρλ_1/(2 − ηλ_1) (O3).

    Along u_1 SAM is z ← (1 − ηλ)z − ηλρ·sign(z); z = a → −a gives a(2 − ηλ) = ηλρ. The cycle exists for
    0 < ηλ < 2 (``ValueError`` otherwise: there SAM diverges). Bartlett, Long & Bousquet (2023).

    Parameters
    ----------
    eta, rho, lam : array_like
        Learning rate (> 0), radius (≥ 0) and the top eigenvalue λ_1 (> 0); broadcast together.

    Returns
    -------
    ndarray
    """
    eta = check.as_float_array("eta", eta, positive=True)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    lam = check.as_float_array("lam", lam, positive=True)
    with np.errstate(over="ignore"):
        product = eta * lam
    if not np.all(product < 2):
        raise ValueError(f"eta * lam must be < 2 for SAM's 2-cycle to exist, got max eta*lam = {np.max(product):.6g}")
    return product * rho / (2.0 - product)


def sam_edge(eta, rho, grad_norm):
    r"""SAM's edge of stability at gradient norm ‖g‖ (O3; Long & Bartlett 2023).

    λ_edge(η, ρ, ‖g‖) = (‖g‖/(2ρ))(√(1 + 8ρ/(η‖g‖)) − 1): with ‖g‖ frozen, SAM along an eigenvector of
    eigenvalue λ is z ← (1 − ηλ − ηρλ²/‖g‖)z, i.e. USAM with radius ρ/‖g‖, so λ_edge is
    :func:`usam_max_stable_sharpness` at (η, ρ/‖g‖). At the 2-cycle, λ_edge(η, ρ, λ_1·a) = λ_1. ‖g‖ = 0
    gives 0 (the limit); ρ = 0 gives GD's 2/η.

    Parameters
    ----------
    eta, rho, grad_norm : array_like
        Learning rate (> 0), radius (≥ 0) and gradient norm (≥ 0); broadcast together.

    Returns
    -------
    ndarray
    """
    eta = check.as_float_array("eta", eta, positive=True)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    grad_norm = check.as_float_array("grad_norm", grad_norm, nonnegative=True)
    # 4/(η(1 + √(1 + 8ρ/(η‖g‖)))) = 4‖g‖/(η‖g‖ + √(η‖g‖(η‖g‖ + 8ρ))): finite at ‖g‖ = 0 and at ρ = 0.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        scaled = eta * grad_norm
        denominator = scaled + np.sqrt(scaled * (scaled + 8.0 * rho))
        edge = np.where(denominator > 0, 4.0 * grad_norm / np.where(denominator > 0, denominator, 1.0), 0.0)
        return np.where(rho == 0, 2.0 / eta, edge)


# -- O4 --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GammaBounds:
    """Bounds ``lower ≤ γ ≤ upper`` on the renormalization factor γ = ‖g(x)‖/‖g(y)‖ (arrays).

    Attributes
    ----------
    lower, upper : ndarray
        The bounds, broadcast to one shape; both 1 where γ = 1 exactly.
    """

    lower: np.ndarray
    upper: np.ndarray


def renormalization_bounds(method, eigenvalues, rho, grad_norm=None) -> GammaBounds:
    r"""Bounds on γ = ‖g(x)‖/‖g(y)‖ on a PSD quadratic with spectrum ``eigenvalues`` (O4).

    ``susam``: g(y) = (I + ρH)g, so γ ∈ [1/(1 + ρλ_max), 1/(1 + ρλ_min)] ⊆ [1/(1 + ρλ_max), 1].
    ``ssam``: g(y) = (I + (ρ/‖g‖)H)g, so γ ∈ [1/(1 + ρλ_max/‖g‖), 1/(1 + ρλ_min/‖g‖)]; needs ``grad_norm``
    = ‖g(x)‖ = ‖H(x − x*)‖ (optional for ``susam``; where it is 0, γ = 1, the zero-gradient rule).
    ``gd``, ``sam``, ``usam`` do not renormalize: γ = 1. λ_min is the smallest eigenvalue (0 allowed).

    Parameters
    ----------
    method : str or MethodSpec
        A method of known structure.
    eigenvalues : array_like, shape (..., d)
        PSD spectra.
    rho : array_like
        Radius ρ ≥ 0, broadcast against the spectra's leading shape.
    grad_norm : array_like, optional
        ‖g(x)‖; required for ``ssam``.

    Returns
    -------
    GammaBounds
    """
    kind = _builtin_kind(method, "renormalization bounds")
    lam = _spectrum(eigenvalues)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    if np.any(lam < 0):
        raise ValueError(f"eigenvalues must be >= 0 (a PSD quadratic), got min {np.min(lam):.6g}")
    lam_max, lam_min = lam.max(axis=-1), lam.min(axis=-1)
    with np.errstate(over="ignore"):
        if kind == "ssam":
            if grad_norm is None:
                raise ValueError("grad_norm is required for ssam: its bounds depend on ‖g(x)‖, got None")
            grad_norm = check.as_float_array("grad_norm", grad_norm, nonnegative=True)
            # ‖g‖/(‖g‖ + ρλ): no overflow for tiny ‖g‖; γ = 1 where ‖g‖ = 0 (the zero-gradient rule).
            safe = np.where(grad_norm > 0, grad_norm, 1.0)
            lower = np.where(grad_norm > 0, safe / (safe + rho * lam_max), 1.0)
            upper = np.where(grad_norm > 0, safe / (safe + rho * lam_min), 1.0)
        else:
            scale = rho if kind == "susam" else np.zeros_like(rho)
            lower, upper = 1.0 / (1.0 + scale * lam_max), 1.0 / (1.0 + scale * lam_min)
            if grad_norm is not None:  # susam at ‖g‖ = 0: γ = 1 by the zero-gradient rule
                at_zero = check.as_float_array("grad_norm", grad_norm, nonnegative=True) == 0
                lower, upper = np.where(at_zero, 1.0, lower), np.where(at_zero, 1.0, upper)
    return GammaBounds(*np.broadcast_arrays(lower, upper))


# -- O15: momentum and weight decay ----------------------------------------------------------------------------

def _base_arguments(momentum, nesterov, weight_decay):
    momentum = check.as_float_array("momentum", momentum, nonnegative=True)
    if not np.all(momentum < 1):
        raise ValueError(f"momentum must be in [0, 1), got {check._show(momentum)}")
    nesterov = check.as_bool("nesterov", nesterov)
    weight_decay = check.as_float_array("weight_decay", weight_decay, nonnegative=True)
    return momentum, nesterov, weight_decay


def base_optimizer_critical_learning_rate(curvature_max, momentum=0.0, nesterov: bool = False, weight_decay=0.0):
    r"""O15: the edge of PyTorch's SGD (heavy ball β, Nesterov, coupled weight decay w) on a descent operator
    with largest curvature a_max: η_c = 2(1 + β)/(a_max + w), or 2(1 + β)/((1 + 2β)(a_max + w)) with Nesterov.

    a_max = λ_max for ``gd`` and A(λ_max, ρ) = λ_max(1 + ρλ_max) for ``usam`` (:func:`usam_curvature`); at
    β = 0 and w = 0 it is :func:`gd_critical_learning_rate` of a_max. The heavy ball x⁺ = x − ηa x + β(x − x⁻)
    has characteristic polynomial z² − (1 + β − ηa)z + β, whose root −1 sits at ηa = 2(1 + β); Nesterov's
    z² − (1 + β)(1 − ηa)z + β(1 − ηa) has it at ηa = 2(1 + β)/(1 + 2β).

    Parameters
    ----------
    curvature_max : array_like
        a_max > 0.
    momentum : array_like, optional
        β ∈ [0, 1) (default 0).
    nesterov : bool, optional
        Nesterov's variant (default False).
    weight_decay : array_like, optional
        Coupled weight decay w >= 0 (default 0).

    Returns
    -------
    ndarray
        η_c, the broadcast shape of the arguments.
    """
    curvature_max = check.as_float_array("curvature_max", curvature_max, positive=True)
    momentum, nesterov, weight_decay = _base_arguments(momentum, nesterov, weight_decay)
    damping = 1.0 + 2.0 * momentum if nesterov else 1.0
    return 2.0 * (1.0 + momentum) / (damping * (curvature_max + weight_decay))


def heavy_ball_rate(eta, curvature, momentum=0.0, nesterov: bool = False):
    r"""O15: the asymptotic rate max |z| of the momentum recursion on one curvature a (> 1: divergence).

    The roots of z² − (1 + β − ηa)z + β (heavy ball) or z² − (1 + β)(1 − ηa)z + β(1 − ηa) (Nesterov); at β = 0
    both are |1 − ηa|, GD's (O1).

    Parameters
    ----------
    eta : array_like
        η > 0.
    curvature : array_like
        a (any real; with weight decay a = λ + w).
    momentum : array_like, optional
        β ∈ [0, 1) (default 0).
    nesterov : bool, optional
        Nesterov's variant (default False).

    Returns
    -------
    ndarray
    """
    eta = check.as_float_array("eta", eta, positive=True)
    curvature = check.as_float_array("curvature", curvature)
    momentum, nesterov, _ = _base_arguments(momentum, nesterov, 0.0)
    step = 1.0 - eta * curvature
    trace, determinant = ((1.0 + momentum) * step, momentum * step) if nesterov else (step + momentum, momentum + 0.0 * step)
    root = np.sqrt((trace**2 - 4.0 * determinant).astype(np.complex128))
    return np.maximum(np.abs((trace + root) / 2.0), np.abs((trace - root) / 2.0))


# -- O13: rates ------------------------------------------------------------------------------------------------

def asymptotic_rate(method, eigenvalues, eta, rho, *, momentum=0.0, nesterov: bool = False, weight_decay=0.0):
    r"""Predicted asymptotic contraction factor per step of ‖g(x_t)‖ on a PSD quadratic (> 1: divergence).

    With a base optimizer (``momentum`` β > 0 or ``weight_decay`` w > 0, O15) only ``gd`` and ``usam`` have a
    closed form: the largest :func:`heavy_ball_rate` over the curvatures a = λ + w or A(λ, ρ) + w of the
    extreme eigenvalues; the other methods return None (no closed form: their step depends nonlinearly on x,
    and the velocity mixes steps of different renormalization factors). In one dimension with λ > 0, ``ssam``
    and ``susam`` hand the base optimizer GD's gradient (O4) and get GD's rate.

    With λ_max and λ_min the largest and smallest positive eigenvalues, and r = max(|1 − ηλ_min|, |1 − ηλ_max|):

    - ``gd``: r (O1); ``usam``: max_i |1 − ηA_i| with A = :func:`usam_curvature` (O2);
    - ``sam`` (ρ > 0): max(1, |1 − ηλ_max|): ‖g‖ tends to the 2-cycle's, not to 0 (O3);
    - ``susam`` (O13): max(r, (A_max − A_min)/(A_max + A_min)). The renormalization self-tunes the
      effective step ηγ: once η exceeds η_a = 2(1 + ρλ_min)/(A_max + A_min) the sharp component bounces
      (period 2) and ηγ → 2/(A_max + A_min), USAM's optimal step, so the rate stops improving with η: it is
      USAM's best rate, never GD's. Below 2/λ_max it is < 1, so susam converges (slowly) up to GD's edge.
    - ``ssam`` (O13): the same with A = λ² — the limit ‖g‖ → 0, where ssam acts like USAM with radius
      ρ/‖g‖ → ∞; its rate tends to (λ_max² − λ_min²)/(λ_max² + λ_min²).

    The ssam/susam rates assume iterates with components on the extreme eigenvectors.

    Parameters
    ----------
    method : str or MethodSpec
        A method of known structure.
    eigenvalues : array_like, shape (..., d)
        PSD spectra with a positive entry.
    eta, rho : array_like
        Learning rate (> 0) and radius (≥ 0), broadcast against the spectra's leading shape.
    momentum : array_like, optional
        Heavy-ball β ∈ [0, 1) (default 0).
    nesterov : bool, optional
        Nesterov's variant (default False).
    weight_decay : array_like, optional
        Coupled weight decay w >= 0 (default 0).

    Returns
    -------
    ndarray or None
        None where the method has no closed form with this base optimizer (see above).
    """
    kind = _builtin_kind(method, "asymptotic rates")
    lam = _spectrum(eigenvalues)
    eta = check.as_float_array("eta", eta, positive=True)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    momentum, nesterov, weight_decay = _base_arguments(momentum, nesterov, weight_decay)
    lam_max, lam_min = _psd_extremes(lam)
    if np.any(momentum > 0) or np.any(weight_decay > 0):
        if kind in ("ssam", "susam") and lam.shape[-1] == 1:
            kind = "gd"  # O4: in one dimension the renormalized gradient is g(x)
        if kind not in ("gd", "usam"):
            return None
        with np.errstate(over="ignore", invalid="ignore"):
            a_max, a_min = (lam_max, lam_min) if kind == "gd" else (usam_curvature(lam_max, rho), usam_curvature(lam_min, rho))
            return np.maximum(heavy_ball_rate(eta, a_max + weight_decay, momentum, nesterov),
                              heavy_ball_rate(eta, a_min + weight_decay, momentum, nesterov))
    with np.errstate(over="ignore", invalid="ignore"):
        gd_rate = np.maximum(np.abs(1.0 - eta * lam_min), np.abs(1.0 - eta * lam_max))
        if kind == "gd":
            return gd_rate
        if kind == "usam":
            return np.maximum(np.abs(1.0 - eta * usam_curvature(lam_min, rho)),
                              np.abs(1.0 - eta * usam_curvature(lam_max, rho)))
        if kind == "sam":
            return np.where(rho > 0, np.maximum(1.0, np.abs(1.0 - eta * lam_max)), gd_rate)
        if kind == "susam":
            a_max, a_min = usam_curvature(lam_max, rho), usam_curvature(lam_min, rho)
        else:
            a_max, a_min = lam_max**2, lam_min**2
        plateau = (a_max - a_min) / (a_max + a_min)
        return np.where(rho > 0, np.maximum(gd_rate, plateau), gd_rate)


# -- O9, O10: convex analysis ----------------------------------------------------------------------------------

def gd_worst_case_bound(eta, *, L: float = 1.0, steps, R: float = 1.0) -> np.ndarray:
    r"""(L R²/2) · max(1/(2Nh + 1), (1 − h)^{2N}) with h = ηL: GD's worst f(x_N) − f* on L-smooth convex f (O9).

    For 0 < h ≤ 1 this is L R²/(4Nh + 2), proven tight (Drori & Teboulle 2014). For 1 < h < 2 it is the
    conjecture of Taylor, Hendrickx & Glineur (2017, Conjecture 3.1), which
    :func:`samtheory.convex.pep.worst_case` lets you check numerically.

    Parameters
    ----------
    eta : array_like
        Learning rate(s), > 0.
    L, R : float
        Smoothness constant and initial distance ‖x_0 − x*‖, > 0.
    steps : int or array_like of int
        N ≥ 1; broadcasts with ``eta``.

    Returns
    -------
    ndarray
    """
    eta = check.as_float_array("eta", eta, positive=True)
    L = check.as_scalar("L", L, positive=True)
    R = check.as_scalar("R", R, positive=True)
    steps = np.asarray(steps)
    if steps.dtype.kind not in "iu" or np.any(steps < 1):
        raise ValueError(f"steps must be a positive integer or an array of them, got {steps!r}")
    h = eta * L
    with np.errstate(over="ignore"):
        return 0.5 * L * R * R * np.maximum(1.0 / (2 * steps * h + 1), (1 - h) ** (2 * steps))


def analytic_expansivity(method, eta, rho=0.0, *, beta: float, mu: float = 0.0,
                         quadratic: bool = False) -> np.ndarray:
    r"""The O10 expansivity constant of one step on β-smooth f with curvature ≥ μ (NaN where none is known).

    GD (Hardt, Recht & Singer 2016, Lemma 3.6/3.7): 1 − ηβμ/(β + μ) for μ > 0 and η ≤ 2/(β + μ); 1 for
    convex f and η ≤ 2/β; 1 + ηβ otherwise. USAM: on a quadratic with spectrum in [μ, β] (``quadratic=True``)
    exactly max(|1 − ηA(μ)|, |1 − ηA(β)|) with A = :func:`usam_curvature`, which is ≤ 1 iff ηβ(1 + ρβ) ≤ 2
    [derived]; on any β-smooth f, w ↦ w + ρ g(w) is (1 + ρβ)-Lipschitz, hence 1 + ηA(β). ``sam``, ``ssam``,
    ``susam``: NaN (the normalized ascent g/‖g‖ and the factor ‖g(x)‖/‖g(y)‖ have no Lipschitz constant
    near g = 0).

    Parameters
    ----------
    method : str or MethodSpec
        A method of known structure.
    eta, rho : array_like
        Learning rate (> 0) and radius (≥ 0), broadcast together.
    beta, mu : float
        Smoothness β > 0 and curvature lower bound 0 ≤ μ ≤ β.
    quadratic : bool
        USAM's exact constant on quadratics instead of the general bound.

    Returns
    -------
    ndarray
    """
    kind = _builtin_kind(method, "expansivity constants")
    eta = check.as_float_array("eta", eta, positive=True)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    beta = check.as_scalar("beta", beta, positive=True)
    mu = check.as_scalar("mu", mu, nonnegative=True)
    quadratic = check.as_bool("quadratic", quadratic)
    if mu > beta:
        raise ValueError(f"mu must be <= beta = {beta:g}, got {mu!r}")
    eta, rho = np.broadcast_arrays(eta, rho)
    with np.errstate(over="ignore", invalid="ignore"):
        if kind == "gd":
            general = 1.0 + eta * beta
            convex = np.where(eta <= gd_critical_learning_rate(beta), 1.0, general)
            if mu > 0:
                return np.where(eta <= 2.0 / (beta + mu), 1.0 - eta * beta * mu / (beta + mu), convex)
            return convex
        if kind == "usam":
            if quadratic:
                return np.maximum(np.abs(1 - eta * usam_curvature(mu, rho)), np.abs(1 - eta * usam_curvature(beta, rho)))
            return 1.0 + eta * usam_curvature(beta, rho)
    return np.full(eta.shape, np.nan)


# -- O14, O18 ----------------------------------------------------------------------------------------------------

def _usam_expansivity_squared(t, h, r):
    """½[F + √(F² − 4D²)] of O14 at the fraction t ∈ [0, 1] (inf where it exceeds the float range)."""
    with np.errstate(over="ignore", invalid="ignore"):
        damping = 1.0 - h * (1.0 + r * t)
        trace = damping**2 + 1.0 + h**2 * r**2 * t * (1.0 - t)
        value = 0.5 * (trace + np.sqrt(np.maximum(trace**2 - 4.0 * damping**2, 0.0)))
    return np.where(np.isnan(value), np.inf, value)


def _usam_expansivity_maximizer(eta, rho, L):
    """(t*, κ²): the maximizing fraction of O14 and the maximum, broadcast over η and ρ (validated)."""
    eta = check.as_float_array("eta", eta, positive=True)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    L = check.as_scalar("L", L, positive=True)
    with np.errstate(over="ignore"):
        h, r = np.broadcast_arrays(eta * L, rho * L)
    grid = np.linspace(0.0, 1.0, 1025)
    values = _usam_expansivity_squared(grid, h[..., None], r[..., None])
    best = np.argmax(values, axis=-1)
    low, high = grid[np.maximum(best - 1, 0)], grid[np.minimum(best + 1, grid.size - 1)]
    golden = (np.sqrt(5.0) - 1.0) / 2.0
    for _ in range(80):
        a, b = high - golden * (high - low), low + golden * (high - low)
        left_better = _usam_expansivity_squared(a, h, r) >= _usam_expansivity_squared(b, h, r)
        low, high = np.where(left_better, low, a), np.where(left_better, b, high)
    middle = 0.5 * (low + high)
    refined = _usam_expansivity_squared(middle, h, r)
    on_grid = refined < values.max(axis=-1)
    return np.where(on_grid, grid[best], middle), np.where(on_grid, values.max(axis=-1), refined)


def usam_expansivity(eta, rho, *, L: float = 1.0):
    r"""O14: the expansivity κ(η, ρ) of the USAM map x ↦ x − η∇f(x + ρ∇f(x)) over L-smooth convex f.

    κ² = max over t ∈ [0, 1] of ½[F + √(F² − 4D²)] with D = 1 − h(1 + rt), F = D² + 1 + h²r²t(1 − t), h = ηL,
    r = ρL (e.g. κ(1, 1) = 2/√3). The maximum over t is taken on a grid of 1025 points, refined by 80
    golden-section steps around the best one (to about 1e-15). ½[F + √(F² − 4D²)] is the squared largest
    singular value of the 2 × 2 matrix I − hB(I + rA) with A = aaᵀ, B = bbᵀ, unit a, b and t = (aᵀb)²: the
    worst case is USAM on a function whose Hessian is LA around x, x' and LB around the ascent points
    (:func:`usam_expansivity_fraction`, :func:`samtheory.stability.usam_expansivity_witness`).

    Parameters
    ----------
    eta, rho : array_like
        η > 0 and ρ >= 0, broadcast together.
    L : float, optional
        Smoothness constant, > 0 (default 1).

    Returns
    -------
    ndarray
        κ >= 1, the broadcast shape of ``eta`` and ``rho``; inf where κ² exceeds the float range.
    """
    return np.sqrt(_usam_expansivity_maximizer(eta, rho, L)[1])


def usam_expansivity_fraction(eta, rho, *, L: float = 1.0):
    r"""O14: the maximizing t* ∈ [0, 1] of κ², the squared cosine between the two curvature directions a, b of
    the worst case (see :func:`usam_expansivity`).

    Parameters
    ----------
    eta, rho : array_like
        η > 0 and ρ >= 0, broadcast together.
    L : float, optional
        Smoothness constant, > 0 (default 1).

    Returns
    -------
    ndarray
        t*, the broadcast shape of ``eta`` and ``rho``.
    """
    return _usam_expansivity_maximizer(eta, rho, L)[0]


def sam_cycle_suboptimality(eta, rho, lam):
    r"""O18: f − f* = λ₁³η²ρ²/(2(2 − ηλ₁)²) on SAM's 2-cycle ±a·u_1 (:func:`sam_cycle_amplitude`), ηλ₁ < 2.

    Parameters
    ----------
    eta, rho, lam : array_like
        η > 0, ρ >= 0 and λ₁ > 0, broadcast together.

    Returns
    -------
    ndarray
        ½λ₁a², the broadcast shape.
    """
    lam = check.as_float_array("lam", lam, positive=True)
    amplitude = sam_cycle_amplitude(eta, rho, lam)
    return 0.5 * lam * amplitude**2


def usam_uniform_stability_bound(eta, rho, steps, *, n_samples, lipschitz, beta):
    r"""O14 with Hardt–Recht–Singer: E‖w_T − w'_T‖ for SGD-style USAM (one example per step) on S and S'.

    Per-example losses convex, β-smooth and G-Lipschitz at the iterates (G = ``lipschitz``); S and S' differ in
    one of n examples; each step draws its example uniformly, the same in both runs, and USAM takes both
    gradients on it. Shared example (probability 1 − 1/n): one USAM step is κ-expansive,
    κ = :func:`usam_expansivity` (η, ρ, L = β), in place of GD's 1. Differing example (1/n): the gradient at
    the ascent point y = w + ρ∇f(w) has norm ≤ ‖∇f(w)‖ + βρ‖∇f(w)‖ ≤ G(1 + ρβ), so each step moves by at most
    σ = ηG(1 + ρβ) and ‖T(w) − T'(w')‖ ≤ ‖w − w'‖ + 2σ (HRS Lemma 2.5). Hence
    E δ_{t+1} ≤ a E δ_t + 2σ/n with a = 1 + (1 − 1/n)(κ − 1), and from δ_0 = 0

        E δ_T ≤ (2ηG(1 + ρβ)/n) (a^T − 1)/(a − 1)   (= 2ηG(1 + ρβ)T/n when κ = 1).

    The loss-stability bound is G times this (:math:`|f(w; z) − f(w'; z)| ≤ G‖w − w'‖`). With ρ = 0 it is
    HRS Theorem 3.8 for η ≤ 2/β (κ = 1 there).

    Parameters
    ----------
    eta : array_like
        Learning rate(s), > 0 (constant over the run).
    rho : array_like
        Radius (radii), >= 0.
    steps : array_like
        T, >= 0 (integers or floats).
    n_samples : int
        n, >= 1.
    lipschitz : float
        G, >= 0.
    beta : float
        Per-example smoothness β, > 0.

    Returns
    -------
    ndarray
        The bound on E‖w_T − w'_T‖, the broadcast shape of ``eta``, ``rho``, ``steps``; inf where it exceeds
        the float range (e.g. κ = 5.6 and T = 1000).
    """
    steps = check.as_float_array("steps", steps, nonnegative=True)
    n_samples = check.as_positive_int("n_samples", n_samples)
    lipschitz = check.as_scalar("lipschitz", lipschitz, nonnegative=True)
    beta = check.as_scalar("beta", beta, positive=True)
    kappa = usam_expansivity(eta, rho, L=beta)
    eta, rho, steps, kappa = np.broadcast_arrays(check.as_float_array("eta", eta), check.as_float_array("rho", rho),
                                                 steps, kappa)
    with np.errstate(over="ignore", invalid="ignore"):  # a bound beyond the float range is inf (vacuous)
        growth = (1.0 - 1.0 / n_samples) * (kappa - 1.0)  # a − 1 >= 0
        safe = np.where(np.isfinite(growth) & (growth > 0), growth, 1.0)
        geometric = np.where(growth > 0, np.expm1(steps * np.log1p(growth)) / safe, steps)
        bound = 2.0 * eta * lipschitz * (1.0 + rho * beta) / n_samples * geometric
    return np.where(np.isnan(bound), np.inf, bound)


def sam_step_decay_landing(eta, rho, lam, factor):
    r"""O18: where SAM lands, one step after η drops to Gη on its 2-cycle: x_{k+1} = a(1 − 2G) (times the side's
    sign), a = :func:`sam_cycle_amplitude` (η, ρ, λ₁) the old amplitude.

    From x = a > 0, x⁺ = a − Gηλ₁(a + ρ) and a + ρ = 2ρ/(2 − ηλ₁), so x⁺ = a − 2Ga. The new cycle has amplitude
    a' = :func:`sam_cycle_amplitude` (Gη, ρ, λ₁); in 1-D the deviation |x| − a' then shrinks by |1 − Gηλ₁| per
    step. G = ½ lands exactly on the minimizer of the sharp mode.

    Parameters
    ----------
    eta, rho, lam : array_like
        The step before the drop η > 0 (ηλ₁ < 2), ρ >= 0 and λ₁ > 0, broadcast together.
    factor : array_like
        G > 0, the drop η → Gη.

    Returns
    -------
    ndarray
        a(1 − 2G), the broadcast shape.
    """
    factor = check.as_float_array("factor", factor, positive=True)
    return sam_cycle_amplitude(eta, rho, lam) * (1.0 - 2.0 * factor)


# -- O17: stochastic SAM under additive gradient noise (issue 12) ------------------------------------------------
# usam_noise_variance (O17a): ησ²(1 + ρλ)/(λ(2 − ηA)) shared, η(1 + ρ²λ²)σ²/(A(2 − ηA)) independent draws;
# sam_noise_floor (O17b): λρ²/18; sam_noise_loss (O17b at finite η).
__all__ += ["usam_noise_variance", "sam_noise_floor", "sam_noise_loss"]

def usam_noise_variance(eta, rho, lam, sigma2, *, draws: str = "shared"):
    r"""O17a: USAM's stationary variance on f = ½λx² with additive gradient noise of variance σ².

    With one noise draw ξ shared by both gradients, x⁺ = (1 − ηA)x − η(1 + ρλ)ξ, A = λ(1 + ρλ)
    (:func:`usam_curvature`), so Var x = ησ²(1 + ρλ)/(λ(2 − ηA)); with independent draws in the two gradients,
    x⁺ = (1 − ηA)x − ηρλξ₁ − ηξ₂ and Var x = η(1 + ρ²λ²)σ²/(A(2 − ηA)). Per coordinate of a diagonal quadratic
    with independent noise coordinates. NaN where there is no stationary law (ηA ≥ 2).

    Parameters
    ----------
    eta, rho, lam, sigma2 : array_like
        η > 0, ρ >= 0, λ > 0 and σ² >= 0, broadcast together.
    draws : {"shared", "independent"}, optional
        Whether the two gradients of a step see the same noise draw (default) or independent ones.

    Returns
    -------
    ndarray
        The stationary variance, the broadcast shape.
    """
    eta = check.as_float_array("eta", eta, positive=True)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    lam = check.as_float_array("lam", lam, positive=True)
    sigma2 = check.as_float_array("sigma2", sigma2, nonnegative=True)
    check.choice("draws", draws, ("shared", "independent"))
    eta, rho, lam, sigma2 = np.broadcast_arrays(eta, rho, lam, sigma2)
    curvature = usam_curvature(lam, rho)
    margin = 2.0 - eta * curvature
    stable = margin > 0
    if draws == "shared":
        numerator = eta * sigma2 * (curvature / lam)  # ησ²(1 + ρλ)
        denominator = lam * margin
    else:
        numerator = eta * (1.0 + (rho * lam) ** 2) * sigma2
        denominator = curvature * margin
    with np.errstate(all="ignore"):
        return np.where(stable, numerator / np.where(stable, denominator, 1.0), np.nan)


def sam_noise_floor(lam, rho):
    r"""O17b: the floor λρ²/18 of E f for ``sam`` as η → 0 under the three-point noise of docs/theory.md.

    With ξ = +2σ (probability 1/3) or −σ (probability 2/3), the same ξ in both gradients and λρ/3 < σ, the
    mean drift of ``sam`` is λx − ρλ/3, so its iterates settle around x = ρ/3 and E f → λ(ρ/3)²/2.

    Parameters
    ----------
    lam, rho : array_like
        λ > 0 and ρ >= 0, broadcast together.

    Returns
    -------
    ndarray
        λρ²/18, the broadcast shape.
    """
    lam = check.as_float_array("lam", lam, positive=True)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    return lam * rho**2 / 18.0


def sam_noise_loss(eta, rho, lam, sigma):
    r"""O17b at a finite η: the stationary E f of ``sam`` under the three-point noise (derived here).

    While |λx| < σ the sign of g = λx + ξ is that of ξ, so the step is the linear recursion
    x⁺ = (1 − ηλ)x + ηρλ/3 − ηζ with ζ = ξ + ρλ(sign ξ + 1/3), E ζ = 0 and Var ζ = 2(σ + 2ρλ/3)². Its
    stationary law has mean ρ/3 and variance η·2(σ + 2ρλ/3)²/(λ(2 − ηλ)), so
    E f = λρ²/18 + η(σ + 2ρλ/3)²/(2 − ηλ) (:func:`sam_noise_floor` at η = 0). Exact as long as the iterates
    stay in |λx| < σ (bounded noise: when η(σ + 2ρλ/3) is small against σ − λρ/3); NaN unless λρ/3 < σ and
    ηλ < 2.

    Parameters
    ----------
    eta, rho, lam, sigma : array_like
        η > 0, ρ >= 0, λ > 0 and σ > 0, broadcast together.

    Returns
    -------
    ndarray
        The stationary expected loss, the broadcast shape.
    """
    eta = check.as_float_array("eta", eta, positive=True)
    sigma = check.as_float_array("sigma", sigma, positive=True)
    floor = sam_noise_floor(lam, rho)
    lam = check.as_float_array("lam", lam, positive=True)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    eta, rho, lam, sigma, floor = np.broadcast_arrays(eta, rho, lam, sigma, floor)
    margin = 2.0 - eta * lam
    valid = (margin > 0) & (lam * rho < 3.0 * sigma)
    spread = (sigma + 2.0 * rho * lam / 3.0) ** 2
    with np.errstate(all="ignore"):
        return np.where(valid, floor + eta * spread / np.where(valid, margin, 1.0), np.nan)


# -- O12: the edges of stability with momentum (the sharpness each method tolerates) ---------------------------

def edge_sharpness(method, eta, rho=0.0, *, momentum=0.0, nesterov: bool = False, weight_decay=0.0,
                   grad_norm=None, gamma=1.0):
    r"""O12 with O15: the largest sharpness λ at which ``method`` is stable, with SGD's momentum and weight decay.

    The heavy ball with coupled weight decay w is stable along a descent curvature a iff a + w < c with
    c = 2(1 + β)/η (Nesterov: 2(1 + β)/((1 + 2β)η)), the inverse of :func:`base_optimizer_critical_learning_rate`.
    The descent curvature of an eigenvalue λ is λ (``gd``), A(λ, ρ) = λ(1 + ρλ) (``usam``, O2) or, with ‖g‖
    frozen, λ(1 + ρλ/‖g‖) (``sam``, O3). So the edge is c − w for ``gd``, :func:`usam_max_stable_sharpness` at
    (2/(c − w), ρ) for ``usam`` and :func:`sam_edge` at (2/(c − w), ρ, ‖g‖) for ``sam``: at β = w = 0 these are
    2/η, λ*(η, ρ) and λ_edge(η, ρ, ‖g‖). The renormalized methods scale the descent gradient by γ; with γ frozen
    they are their bases at step γη: ``susam`` is ``usam``'s formula and ``ssam`` is ``sam``'s at γη (γ = 1,
    the default, gives the base's edge). Where c ≤ w no positive sharpness is stable: 0.

    Parameters
    ----------
    method : str or MethodSpec
        A method of known structure (``gd``, ``sam``, ``usam``, ``ssam``, ``susam``).
    eta : array_like
        Learning rate(s) η > 0.
    rho : array_like, optional
        Radius ρ >= 0 (default 0; ignored for ``gd``).
    momentum : array_like, optional
        β ∈ [0, 1) (default 0).
    nesterov : bool, optional
        Nesterov's variant (default False).
    weight_decay : array_like, optional
        Coupled weight decay w >= 0 (default 0).
    grad_norm : array_like, optional
        ‖g(x)‖ >= 0, required for ``sam`` and ``ssam``.
    gamma : array_like, optional
        The renormalization factor γ > 0 of ``ssam``/``susam`` (default 1; must be 1 for the others).

    Returns
    -------
    ndarray
        The edge λ, the broadcast shape of the arguments.
    """
    kind = _builtin_kind(method, "the edge of stability")
    eta = check.as_float_array("eta", eta, positive=True)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    momentum, nesterov, weight_decay = _base_arguments(momentum, nesterov, weight_decay)
    gamma = check.as_float_array("gamma", gamma, positive=True)
    if kind in ("gd", "sam", "usam") and not np.all(gamma == 1):
        raise ValueError(f"gamma must be 1 for {kind}, which does not renormalize, got {check._show(gamma)}")
    damping = 1.0 + 2.0 * momentum if nesterov else 1.0
    with np.errstate(over="ignore", divide="ignore"):
        curvature = 2.0 * (1.0 + momentum) / (damping * gamma * eta) - weight_decay / gamma
    stable = curvature > 0
    step = 2.0 / np.where(stable, curvature, 1.0)  # the plain (β = w = 0) step with the same edge
    if kind == "gd":
        edge = np.broadcast_to(curvature, np.broadcast_shapes(curvature.shape, rho.shape))
    elif kind in ("usam", "susam"):
        edge = usam_max_stable_sharpness(step, rho)
    else:
        if grad_norm is None:
            raise ValueError(f"grad_norm is required for {kind}: its edge depends on ‖g(x)‖, got None")
        edge = sam_edge(step, rho, grad_norm)
    return np.where(stable, edge, 0.0)
