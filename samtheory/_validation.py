"""Checks at the public boundary: each raises ``ValueError`` naming the argument and its value."""

from __future__ import annotations

import numbers

import numpy as np


def _show(value) -> str:
    text = np.array2string(np.asarray(value), threshold=6, precision=6) if np.ndim(value) else repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def as_float_array(name: str, value, *, nonnegative: bool = False, positive: bool = False) -> np.ndarray:
    """``value`` as a float64 array; finite, and >= 0 or > 0 when asked."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number or array of real numbers, got {_show(value)}") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {_show(value)}")
    if positive and not np.all(array > 0):
        raise ValueError(f"{name} must be > 0, got {_show(value)}")
    if nonnegative and not np.all(array >= 0):
        raise ValueError(f"{name} must be >= 0, got {_show(value)}")
    return array


def as_positive_int(name: str, value, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def as_seed_array(name: str, value) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "iu" or np.any(array < 0):
        raise ValueError(f"{name} must be a non-negative integer or array of them, got {_show(value)}")
    return array.astype(np.int64)


def as_matrix(name: str, value, *, symmetric: bool = False) -> np.ndarray:
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real matrix, got {_show(value)}") from None
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{name} must be finite, got {_show(value)}")
    if symmetric:
        if matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"{name} must be square, got shape {matrix.shape}")
        scale = max(1.0, float(np.max(np.abs(matrix))))
        asymmetry = float(np.max(np.abs(matrix - matrix.T)))
        if asymmetry > 1e-12 * scale:
            raise ValueError(f"{name} must be symmetric, got max |H - H^T| = {asymmetry:.3g}")
    return matrix


def broadcast(names: tuple[str, ...], *arrays) -> list[np.ndarray]:
    """``np.broadcast_arrays`` with a ``ValueError`` naming the arguments and their shapes."""
    try:
        return np.broadcast_arrays(*arrays)
    except ValueError:
        shapes = ", ".join(str(np.shape(a)) for a in arrays)
        raise ValueError(f"{', '.join(names[:-1])} and {names[-1]} must broadcast together, got shapes {shapes}") from None


def choice(name: str, value, options) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def as_bool(name: str, value) -> bool:
    """``value`` as a bool: True/False or NumPy's bool scalars, nothing else (not 0/1, not strings)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r:.80}")
    return bool(value)


def as_divergence_factor(name: str, value, maximum: float = float("inf")) -> float:
    """A divergence threshold factor: a finite real number > 1 (and <= ``maximum``)."""
    factor = as_float_array(name, value, positive=True)
    if factor.ndim or not 1 < float(factor) <= maximum:
        bound = "" if maximum == float("inf") else f" and <= {maximum:g}"
        raise ValueError(f"{name} must be > 1{bound}, got {value!r:.80}")
    return float(factor)
