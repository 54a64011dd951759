r"""The update rules of THEORY.md section 2, as pure batched functions.

Every rule has the signature ``rule(x, grad, eta, rho, **options) -> Step``:

- ``x``: iterates, shape ``(B, d)``; ``grad``: a callable ``(B, d) -> (B, d)`` evaluating the gradient on the
  step's minibatch (both gradients of one step see the same minibatch);
- ``eta``, ``rho``: learning rate and radius, scalars or arrays of shape ``(B, 1)``;
- options: ``adaptive`` and ``truncate`` (THEORY.md §2) and ``diagnostics`` (compute ‖g(y)‖ even where the
  rule does not need it). A rule ignores options it has no use for.

A user-defined rule with this signature runs through :func:`samtheory.simulate` like a built-in one.

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

from functools import partial
from typing import Callable, NamedTuple

import numpy as np

__all__ = ["Step", "gd", "sam", "usam", "ssam", "susam", "METHODS", "get_method", "sharpness_aware"]


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
    """numerator / denominator, and ``fallback`` where the denominator is 0 (THEORY.md zero-gradient rule)."""
    if denominator.size and denominator.min() > 0:  # the common case, without the masked division
        return numerator / denominator
    return np.divide(numerator, denominator, out=np.full_like(numerator, fallback), where=denominator > 0)


def gd(x, grad, eta, rho=0.0, **options) -> Step:
    r"""Gradient descent (SGD with a minibatch oracle): x ← x − η g(x). ``rho`` is ignored."""
    g = grad(x)
    if np.may_share_memory(g, x):  # a gradient oracle may hand back its input (f = ½‖x‖²)
        g = g.copy()
    grad_norm = _row_norm(g)
    g *= eta
    return Step(np.subtract(x, g, out=g), grad_norm, grad_norm, None)


def sharpness_aware(x, grad, eta, rho, *, normalize: bool, renormalize: bool, adaptive: bool = False,
                    truncate: bool = False, diagnostics: bool = False) -> Step:
    r"""The SAM family in one rule: ascent to y = x + ε, then x ← x − η γ g(y).

    ε = ρ g/‖g‖ (``normalize``) or ρ g; with ``adaptive``, T = |x| and ε = ρ T² g/‖T g‖ or ρ T² g.
    γ = ‖g(x)‖/‖g(y)‖ (``renormalize``; with ``adaptive`` the norms are weighted, ‖T(x) g(x)‖/‖T(y) g(y)‖),
    truncated to min(1, γ) with ``truncate``; γ = 1 otherwise. A zero norm gives ε = 0 and γ = 1.
    """
    g = grad(x)
    grad_norm = _row_norm(g)
    if adaptive:
        weighted = np.abs(x) * g
        weighted_norm = _row_norm(weighted)
        ascent = np.abs(x) * weighted
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
            gamma = _safe_ratio(weighted_norm, _row_norm(np.abs(y) * gy), 1.0)
        else:
            gamma = _safe_ratio(grad_norm, ascent_grad_norm, 1.0)
        if truncate:
            np.minimum(gamma, 1.0, out=gamma)
        gy *= eta * gamma[:, None]  # one per-row product: broadcasting over a short axis is slow in NumPy
    else:
        gy *= eta
    return Step(np.subtract(x, gy, out=gy), grad_norm, ascent_grad_norm, gamma)


sam = partial(sharpness_aware, normalize=True, renormalize=False)
sam.__doc__ = "SAM (Foret et al. 2021): y = x + ρ g(x)/‖g(x)‖, x ← x − η g(y)."
usam = partial(sharpness_aware, normalize=False, renormalize=False)
usam.__doc__ = "Unnormalized SAM (Andriushchenko & Flammarion 2022): y = x + ρ g(x), x ← x − η g(y)."
ssam = partial(sharpness_aware, normalize=True, renormalize=True)
ssam.__doc__ = "StableSAM on SAM (Tan et al. 2025): y = x + ρ g/‖g‖, x ← x − η (‖g(x)‖/‖g(y)‖) g(y)."
susam = partial(sharpness_aware, normalize=False, renormalize=True)
susam.__doc__ = "StableSAM on USAM (Tan et al. 2025): y = x + ρ g(x), x ← x − η (‖g(x)‖/‖g(y)‖) g(y)."

METHODS: dict[str, Callable[..., Step]] = {"gd": gd, "sam": sam, "usam": usam, "ssam": ssam, "susam": susam}

# The built-in rules that commute with orthogonal changes of basis (THEORY.md O7) when not adaptive.
ROTATION_EQUIVARIANT = frozenset(METHODS.values())


def get_method(method) -> tuple[str, Callable[..., Step]]:
    """``(name, rule)`` for a method name or a user-defined rule; ``ValueError`` for anything else."""
    if callable(method):
        for name, rule in METHODS.items():
            if rule is method:
                return name, rule
        return getattr(method, "__name__", type(method).__name__), method
    if isinstance(method, str) and method in METHODS:
        return method, METHODS[method]
    raise ValueError(f"method must be one of {', '.join(METHODS)} or a callable update rule, got {method!r}")
