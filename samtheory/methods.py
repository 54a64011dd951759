r"""The methods of docs/theory.md §2: one registry of method specifications and the pure batched rules.

:data:`METHODS` maps each name to a :class:`MethodSpec` (its ascent, whether it renormalizes, its rule, its
label); every other module reads it, and :func:`resolve_method` is the one way a name, a spec or a user rule
is turned into a spec. Every rule has the signature ``rule(x, grad, eta, rho, **options) -> Step``:

- ``x``: iterates, shape ``(B, d)``; ``grad``: a callable ``(B, d) -> (B, d)`` evaluating the gradient on the
  step's minibatch (both gradients of one step see the same minibatch);
- ``eta``, ``rho``: learning rate and radius, scalars or arrays of shape ``(B, 1)``;
- options: ``adaptive`` and ``truncate`` (docs/theory.md §2) and ``diagnostics`` (compute ‖g(y)‖ even where the
  rule does not need it). A rule ignores options it has no use for.

A user-defined rule with this signature runs through :func:`samtheory.simulate` like a built-in one; a new
member of the SAM family (:func:`sharpness_aware_method`) also runs in the torch optimizer and, once passed to
:func:`register_method`, is accepted by name everywhere.

=========  =====================================  ====================================
name       ascent point y                         update
=========  =====================================  ====================================
``gd``     --                                     x - η g(x)
``sam``    x + ρ g(x)/‖g(x)‖                      x - η g(y)
``usam``   x + ρ g(x)                             x - η g(y)
``ssam``   x + ρ g(x)/‖g(x)‖                      x - η γ g(y),  γ = ‖g(x)‖/‖g(y)‖
``susam``  x + ρ g(x)                             x - η γ g(y),  γ = ‖g(x)‖/‖g(y)‖
=========  =====================================  ====================================

References: Foret et al. (2021) for SAM; Andriushchenko & Flammarion (2022) for USAM; Tan et al.,
arXiv 2401.07250 (JMLR 2025) for StableSAM; Kwon et al. (2021) for the adaptive (ASAM) ascent.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from typing import Callable, NamedTuple

import numpy as np

from . import _validation as check

__all__ = ["Step", "MethodSpec", "gd", "sam", "usam", "ssam", "susam", "METHODS", "BUILTIN_METHODS", "RENORMALIZED_PAIRS",
           "resolve_method", "register_method", "sharpness_aware", "sharpness_aware_method"]


class Step(NamedTuple):
    """What one update returns; every field but ``x`` has shape ``(B,)``.

    ``grad_norm`` is ‖g(x)‖ at the point the step started from (the engine detects divergence with it).
    ``ascent_grad_norm`` is ‖g(y)‖ (None where not computed), ``gamma`` the renormalization factor
    (None means 1: the rule does not renormalize).
    """

    x: np.ndarray
    grad_norm: np.ndarray
    ascent_grad_norm: np.ndarray | None = None
    gamma: np.ndarray | None = None


_TINY_NORM = 1e-290  # below this, ρ/‖g‖ may overflow


def _row_norm(a: np.ndarray) -> np.ndarray:
    """Euclidean norm of each row. The fast sum of squares under- or overflows for norms outside about
    [1e-135, 1e135]; those rows (rare: near a minimizer or diverging) are recomputed with scaling."""
    if a.shape[0] == 1 and a.shape[1] > 1:
        # A single row would take einsum's contiguous-row path, whose summation order differs from the
        # batch-contiguous path of a larger batch: pad it so every batch size rounds the same way.
        return _row_norm(np.asfortranarray(np.repeat(a, 2, axis=0)))[:1]
    squares = np.einsum("ij,ij->i", a, a)
    norm = np.sqrt(squares)
    if squares.size and not (squares.min() > 1e-270 and squares.max() < 1e270):
        extreme = ~((squares > 1e-270) & (squares < 1e270))
        rows = a[extreme]
        scale = np.max(np.abs(rows), axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            scaled = np.where(scale > 0, rows / scale, 0.0)
        # A row holding an infinity has norm inf (inf/inf would make it NaN).
        norm[extreme] = np.where(np.isinf(scale[:, 0]), np.inf,
                                 scale[:, 0] * np.sqrt(np.einsum("ij,ij->i", scaled, scaled)))
    return norm


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray, fallback: float) -> np.ndarray:
    """numerator / denominator, and ``fallback`` where the denominator is 0 (docs/theory.md zero-gradient rule)."""
    if denominator.size and denominator.min() > 0:  # the common case, without the masked division
        return numerator / denominator
    return np.divide(numerator, denominator, out=np.full_like(numerator, fallback), where=denominator > 0)


def _gradient_descent(x, grad, eta, rho=0.0, **options) -> Step:
    r"""Gradient descent (SGD with a minibatch oracle): x ← x − η g(x). ``rho`` is ignored."""
    g = grad(x)
    if np.may_share_memory(g, x):  # a gradient oracle may hand back its input (f = ½‖x‖²)
        g = g.copy()
    grad_norm = _row_norm(g)
    g *= eta
    return Step(np.subtract(x, g, out=g), grad_norm, grad_norm, None)


def sharpness_aware(x, grad, eta, rho, *, normalize: bool, renormalize: bool, adaptive: bool = False,
                    adaptive_eta: float = 0.0, truncate: bool = False, diagnostics: bool = False) -> Step:
    r"""The SAM family in one rule: ascent to y = x + ε, then x ← x − η γ g(y).

    ε = ρ g/‖g‖ (``normalize``) or ρ g; with ``adaptive``, T = |x| + η_ASAM and ε = ρ T² g/‖T g‖ or ρ T² g.
    γ = ‖g(x)‖/‖g(y)‖ (``renormalize``; with ``adaptive`` the norms are weighted, ‖T(x) g(x)‖/‖T(y) g(y)‖),
    truncated to min(1, γ) with ``truncate``; γ = 1 otherwise. A zero norm gives ε = 0 and γ = 1.

    Parameters
    ----------
    x : ndarray
        Iterates, shape ``(B, d)``.
    grad : callable
        The step's gradient oracle ``(B, d) -> (B, d)``; evaluated at x and at y.
    eta, rho : float or ndarray
        Learning rate and radius, scalars or arrays of shape ``(B, 1)`` (not validated here: the engine does).
    normalize : bool
        Normalized ascent ε = ρ g/‖g‖ (SAM) rather than ε = ρ g (USAM).
    renormalize : bool
        Descend along γ g(y) with γ = ‖g(x)‖/‖g(y)‖ (StableSAM) rather than g(y).
    adaptive : bool, optional
        ASAM's weighting T = |x| + η_ASAM of the ascent and of γ's norms (default False).
    adaptive_eta : float, optional
        η_ASAM >= 0 (default 0, the StableSAM code's T = |x|; the official ASAM code uses 0.01).
    truncate : bool, optional
        Use min(1, γ) (only with ``renormalize``; default False).
    diagnostics : bool, optional
        Compute ‖g(y)‖ even where the rule does not need it (default False).

    Returns
    -------
    Step
        The new iterates, ‖g(x)‖, ‖g(y)‖ (None unless renormalizing or ``diagnostics``) and γ (None unless
        renormalizing).
    """
    g = grad(x)
    grad_norm = _row_norm(g)
    if adaptive:
        scaling = np.abs(x) + adaptive_eta if adaptive_eta else np.abs(x)
        weighted = scaling * g
        weighted_norm = _row_norm(weighted)
        ascent = scaling * weighted
        ascent_norm = weighted_norm
    else:
        ascent, ascent_norm = g, grad_norm
    if normalize:
        rho_column = np.broadcast_to(rho, ascent_norm[:, None].shape)
        if ascent_norm.size and ascent_norm.min() >= _TINY_NORM:  # the common case
            y = ascent * (rho_column / ascent_norm[:, None])
        else:  # zero norms (ε = 0) and norms so small that ρ/‖g‖ would overflow: normalize first, then scale
            usable = ascent_norm >= _TINY_NORM
            scale = np.where(usable, rho_column[:, 0] / np.where(usable, ascent_norm, 1.0), 0.0)
            y = ascent * scale[:, None]
            tiny = ~usable & (ascent_norm > 0)
            y[tiny] = rho_column[tiny] * (ascent[tiny] / ascent_norm[tiny, None])
    else:
        y = ascent * rho
    y += x
    gy = grad(y)
    ascent_grad_norm = _row_norm(gy) if (renormalize or diagnostics) else None
    gamma = None
    if renormalize:
        if adaptive:
            scaling_y = np.abs(y) + adaptive_eta if adaptive_eta else np.abs(y)
            gamma = _safe_ratio(weighted_norm, _row_norm(scaling_y * gy), 1.0)
        else:
            gamma = _safe_ratio(grad_norm, ascent_grad_norm, 1.0)
        if truncate:
            np.minimum(gamma, 1.0, out=gamma)
        gy *= eta * gamma[:, None]  # one per-row product: broadcasting over a short axis is slow in NumPy
    else:
        gy *= eta
    return Step(np.subtract(x, gy, out=gy), grad_norm, ascent_grad_norm, gamma)


@dataclass(frozen=True, eq=False)
class MethodSpec:
    r"""One method: what it is (its ascent and whether it renormalizes) and its batched NumPy rule.

    Every part of samtheory that needs to know about a method reads its spec: the engine runs ``rule``; the
    torch optimizer, the linearization, PEP, the closed forms, the plots and the explorer read ``ascent``,
    ``normalized`` and ``renormalized``. A spec is callable like its rule, so ``samtheory.sam(x, grad, eta,
    rho)`` is one SAM step.

    Attributes
    ----------
    name : str
        The method's name (the key in :data:`METHODS` for a registered method).
    rule : callable
        ``rule(x, grad, eta, rho, **options) -> Step`` on a batch.
    ascent : bool or None
        Whether the method takes an ascent step y = x + ε before its descent gradient (False for ``gd``).
        None for a user-defined rule whose structure is unknown.
    normalized : bool or None
        ε = ρ g/‖g‖ (True) or ε = ρ g (False); False without an ascent; None if unknown.
    renormalized : bool or None
        The descent gradient is γ g(y) with γ = ‖g(x)‖/‖g(y)‖ (StableSAM); None if unknown.
    label : str
        A short display name (plots, tables, the explorer).
    paper_name : str or None
        The name in Tan et al. (2025), whose experiments call the unnormalized ascent SAM: ``usam`` is the
        paper's SAM, ``susam`` its SSAM, ``sam`` its SAM†, ``ssam`` its SSAM†.
    builtin : bool
        One of the five rules of docs/theory.md §2, whose closed forms samtheory knows.
    """

    name: str
    rule: Callable[..., Step] = field(repr=False)
    ascent: bool | None
    normalized: bool | None
    renormalized: bool | None
    label: str = ""
    paper_name: str | None = None
    builtin: bool = False

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        if not callable(self.rule):
            raise ValueError(f"rule must be callable, got {self.rule!r}")
        if not self.label:
            object.__setattr__(self, "label", self.name)

    def __call__(self, x, grad, eta, rho=0.0, **options) -> Step:
        return self.rule(x, grad, eta, rho, **options)

    @property
    def known(self) -> bool:
        """Whether the method's structure (ascent, normalization, renormalization) is known."""
        return None not in (self.ascent, self.normalized, self.renormalized)

    @property
    def kind(self) -> str | None:
        """The built-in method of the same structure (``"gd"``, ``"sam"``, ``"usam"``, ``"ssam"``, ``"susam"``),
        whose closed forms apply; None for a rule of unknown structure."""
        if not self.known:
            return None
        if not self.ascent:
            return "gd"
        return ("s" if self.renormalized else "") + ("sam" if self.normalized else "usam")

    @property
    def rotation_equivariant(self) -> bool:
        """Commutes with orthogonal changes of basis when not adaptive (docs/theory.md O7): every method of the
        SAM family, whose ascent and descent are built from g and norms; unknown for a user rule (False)."""
        return self.known


def sharpness_aware_method(name: str, *, normalized: bool, renormalized: bool, label: str = "",
                           paper_name: str | None = None) -> MethodSpec:
    """A method of the SAM family (ascent, then descent along g(y) or γ g(y)) as a :class:`MethodSpec`.

    Parameters
    ----------
    name : str
        Its name; pass the spec to :func:`register_method` to make the name usable everywhere.
    normalized, renormalized : bool
        ε = ρ g/‖g‖ or ρ g; descent γ g(y) with γ = ‖g(x)‖/‖g(y)‖, or g(y).
    label, paper_name : str
        Display name; the name in Tan et al. (2025), if any.

    Returns
    -------
    MethodSpec
    """
    normalized = check.as_bool("normalized", normalized)
    renormalized = check.as_bool("renormalized", renormalized)
    rule = partial(sharpness_aware, normalize=normalized, renormalize=renormalized)
    return MethodSpec(name, rule, True, normalized, renormalized, label, paper_name)


gd = MethodSpec("gd", _gradient_descent, False, False, False, "GD", "SGD", builtin=True)
sam = replace(sharpness_aware_method("sam", normalized=True, renormalized=False, label="SAM", paper_name="SAM†"),
              builtin=True)
usam = replace(sharpness_aware_method("usam", normalized=False, renormalized=False, label="USAM", paper_name="SAM"),
               builtin=True)
ssam = replace(sharpness_aware_method("ssam", normalized=True, renormalized=True, label="SSAM", paper_name="SSAM†"),
               builtin=True)
susam = replace(sharpness_aware_method("susam", normalized=False, renormalized=True, label="SUSAM",
                                       paper_name="SSAM"), builtin=True)

#: The registry: name -> :class:`MethodSpec`. The five built-in methods, in their display order, and whatever
#: :func:`register_method` added.
METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in (gd, sam, usam, ssam, susam)}
BUILTIN_METHODS = tuple(METHODS)
#: Each built-in StableSAM method with the method it renormalizes: (("ssam", "sam"), ("susam", "usam")).
RENORMALIZED_PAIRS = tuple((spec.name, base.name) for spec in METHODS.values() if spec.renormalized
                           for base in METHODS.values()
                           if base.ascent and not base.renormalized and base.normalized == spec.normalized)


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` to :data:`METHODS`, so that its name is accepted everywhere a method name is (the engine,
    the stability functions, the torch optimizer when its structure is known, the CLI).

    Parameters
    ----------
    spec : MethodSpec
        The method to register; ``ValueError`` if it is not a :class:`MethodSpec` or its name is already taken.

    Returns
    -------
    MethodSpec
        ``spec`` itself.
    """
    if not isinstance(spec, MethodSpec):
        raise ValueError(f"spec must be a samtheory MethodSpec, got {spec!r:.80}")
    if spec.name in METHODS:
        raise ValueError(f"a method named {spec.name!r} is already registered")
    METHODS[spec.name] = spec
    return spec


def resolve_method(method) -> MethodSpec:
    """The :class:`MethodSpec` of ``method``: a registered name, a spec, or a user-defined rule (a callable
    ``rule(x, grad, eta, rho, **options) -> Step``, wrapped as a spec of unknown structure, unless it is the
    rule of a registered spec). ``ValueError`` for anything else.

    Parameters
    ----------
    method : str, MethodSpec or callable
        A name in :data:`METHODS`, a spec (returned as is) or an update rule.

    Returns
    -------
    MethodSpec
    """
    if isinstance(method, MethodSpec):
        return method
    if isinstance(method, str):
        if method in METHODS:
            return METHODS[method]
    elif callable(method):
        for spec in METHODS.values():
            if spec.rule is method:
                return spec
        name = getattr(method, "__name__", type(method).__name__)
        return MethodSpec(name, method, None, None, None)
    raise ValueError(f"method must be one of {', '.join(METHODS)}, a MethodSpec or a callable update rule, "
                     f"got {method!r:.80}")
