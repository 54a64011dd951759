"""Checks at the public boundary: each raises ``ValueError`` naming the argument and its value (for a value of the
wrong type, :class:`InputTypeError`, which is a ``TypeError`` and a ``ValueError``)."""

from __future__ import annotations

import inspect
import numbers

import numpy as np


class InputTypeError(TypeError, ValueError):
    """An argument of the wrong type (a string, a complex number, an object array, a bool where a number is
    needed...). It is a ``TypeError``, and also a ``ValueError`` so that ``except ValueError`` still catches
    every kind of bad input, as NumPy's ``AxisError`` is both a ``ValueError`` and an ``IndexError``."""


def _show(value) -> str:
    try:
        text = np.array2string(np.asarray(value), threshold=6, precision=6) if np.ndim(value) else repr(value)
    except Exception:  # a ragged list, or an object whose conversion fails
        text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


_KIND_NAMES = {"b": "booleans", "c": "complex numbers", "O": "objects (dtype object)", "U": "strings",
               "S": "bytes", "M": "datetimes", "m": "timedeltas", "V": "structured values"}


def _real_array(name: str, value, what: str) -> np.ndarray:
    """``value`` as a float64 array, refusing anything that is not made of real numbers (ints or floats)."""
    if isinstance(value, (str, bytes)):
        raise InputTypeError(f"{name} must be {what}, got the string {value!r:.80}")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError, OverflowError):  # e.g. a ragged list
        raise InputTypeError(f"{name} must be {what}, got {_show(value)}") from None
    if array.dtype.kind not in "iuf":
        kind = _KIND_NAMES.get(array.dtype.kind, f"dtype {array.dtype}")
        raise InputTypeError(f"{name} must be {what}, got {kind}: {_show(value)}")
    with np.errstate(all="ignore"):  # a long double beyond float64's range becomes inf, refused by the caller
        return array.astype(np.float64, copy=False)


def as_float_array(name: str, value, *, nonnegative: bool = False, positive: bool = False) -> np.ndarray:
    """``value`` as a float64 array of real numbers; finite, and >= 0 or > 0 when asked.

    Parameters
    ----------
    name : str
        The argument's name, for the error message.
    value : array_like
        Real numbers (Python or NumPy ints and floats of any precision). Strings, bools, complex numbers and
        object arrays raise :class:`InputTypeError`; NaN, inf and values outside float64's range raise
        ``ValueError``.
    nonnegative, positive : bool
        Also require every entry to be >= 0, or > 0.

    Returns
    -------
    numpy.ndarray
        The values, dtype float64 (not a copy where ``value`` already is one).
    """
    array = _real_array(name, value, "a real number or array of real numbers")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {_show(value)}")
    if positive and not np.all(array > 0):
        raise ValueError(f"{name} must be > 0, got {_show(value)}")
    if nonnegative and not np.all(array >= 0):
        raise ValueError(f"{name} must be >= 0, got {_show(value)}")
    return array


def as_vector(name: str, value, *, size: int | None = None, match: str = "", nonnegative: bool = False,
              positive: bool = False) -> np.ndarray:
    """``value`` as a non-empty 1-D float64 array (of length ``size`` when given, which the error message says
    is to ``match`` something, e.g. ``"the problem"``); otherwise as :func:`as_float_array`."""
    array = as_float_array(name, value, nonnegative=nonnegative, positive=positive)
    if size is not None and array.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},){' to match ' + match if match else ''}, "
                         f"got shape {array.shape}")
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {array.shape}")
    return array


def as_scalar(name: str, value, *, positive: bool = False, nonnegative: bool = False,
              greater_than: float | None = None) -> float:
    """``value`` as one finite real number (a Python float).

    Parameters
    ----------
    name : str
        The argument's name, for the error message.
    value : real number
        A Python or NumPy int or float, or a 0-d array of one. Arrays of other shapes raise ``ValueError``,
        other types :class:`InputTypeError`.
    positive, nonnegative : bool
        Also require > 0, or >= 0.
    greater_than : float, optional
        Also require ``value > greater_than`` (e.g. 1 for a divergence factor).

    Returns
    -------
    float
    """
    array = _real_array(name, value, "a real number")
    if array.ndim != 0:
        raise ValueError(f"{name} must be a single number, got an array of shape {array.shape}")
    number = float(array)
    if not np.isfinite(number):
        raise ValueError(f"{name} must be finite, got {_show(value)}")
    if positive and not number > 0:
        raise ValueError(f"{name} must be > 0, got {_show(value)}")
    if nonnegative and not number >= 0:
        raise ValueError(f"{name} must be >= 0, got {_show(value)}")
    if greater_than is not None and not number > greater_than:
        raise ValueError(f"{name} must be > {greater_than:g}, got {_show(value)}")
    return number


def as_bool(name: str, value) -> bool:
    """``value`` as a bool: only ``True``, ``False`` and NumPy's ``np.True_``/``np.False_`` are accepted (not 0,
    1, strings or arrays), else :class:`InputTypeError`."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise InputTypeError(f"{name} must be True or False, got {value!r:.80}")


def check_rule_signature(name: str, label: str, rule, options: dict) -> None:
    """``InputTypeError`` naming the argument ``name`` unless the update rule ``rule`` (called ``label``) accepts
    ``rule(x, grad, eta, rho, **options)``. A rule without an inspectable signature is left to its call."""
    try:
        signature = inspect.signature(rule)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(None, None, None, None, **options)
    except TypeError as error:
        raise InputTypeError(f"{name}: the update rule {label!r} must accept rule(x, grad, eta, rho, **options) with "
                             f"options {', '.join(sorted(options)) or 'none'}; {error}") from None


def as_positive_int(name: str, value, *, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int >= ``minimum`` (and <= ``maximum`` if given); bools, floats and arrays raise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InputTypeError(f"{name} must be an integer >= {minimum}, got {value!r:.80}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be an integer <= {maximum}, got {value!r:.80}")
    return int(value)


def as_seed_array(name: str, value) -> np.ndarray:
    """``value`` as an int64 array of seeds in [0, 2^63); bools, floats and other types raise."""
    message = f"{name} must be a non-negative integer or array of them, got {_show(value)}"
    if isinstance(value, (str, bytes)):
        raise InputTypeError(message)
    try:
        array = np.asarray(value)
    except (TypeError, ValueError, OverflowError):
        raise InputTypeError(message) from None
    if array.dtype.kind not in "iu":
        raise InputTypeError(message)
    if array.size and (np.any(array < 0) or np.any(array > np.iinfo(np.int64).max)):
        raise ValueError(message)
    return array.astype(np.int64)


def as_seed(name: str, value) -> int:
    """``value`` as one seed: a non-negative integer (bools, floats and arrays raise)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InputTypeError(f"{name} must be a non-negative integer, got {value!r:.80}")
    if not 0 <= value <= np.iinfo(np.int64).max:
        raise ValueError(f"{name} must be a non-negative integer below 2**63, got {value!r}")
    return int(value)


def as_matrix(name: str, value, *, symmetric: bool = False) -> np.ndarray:
    """``value`` as a finite, non-empty 2-D float64 array (square and symmetric to 1e-12 relative, if asked)."""
    matrix = _real_array(name, value, "a real matrix")
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {matrix.shape}")
    if matrix.size == 0:
        raise ValueError(f"{name} must be a 2-D matrix with at least one row and one column, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{name} must be finite, got {_show(value)}")
    if symmetric:
        if matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"{name} must be square, got shape {matrix.shape}")
        scale = max(1.0, float(np.max(np.abs(matrix))))
        with np.errstate(over="ignore"):  # entries near ±1e308: an overflowing difference is asymmetry
            asymmetry = float(np.max(np.abs(matrix - matrix.T)))
        if not asymmetry <= 1e-12 * scale:
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
    """``value`` if it is one of the strings ``options``, else ``ValueError`` listing them."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r:.80}")
    return value


def as_divergence_factor(name: str, value, maximum: float = float("inf")) -> float:
    """A divergence threshold factor: a finite real number > 1 (and <= ``maximum``)."""
    factor = as_scalar(name, value, greater_than=1)
    if not factor <= maximum:
        raise ValueError(f"{name} must be > 1 and <= {maximum:g}, got {_show(value)}")
    return factor
