r"""Hypothesis strategies and assertion helpers for property tests of stability bounds.

A property test of a new update rule's stability threshold in a few lines (needs ``hypothesis``)::

    from hypothesis import given
    from samtheory.testing import quadratics, radii, spectra, assert_converges_below, assert_diverges_above

    @given(problem=quadratics(spectra(max_dim=5, max_condition=10)), rho=radii(max_value=0.5))
    def test_usam_threshold(problem, rho):
        eta_c = 2 / (problem.beta * (1 + rho * problem.beta))       # the claimed bound
        assert_converges_below(problem, "usam", eta_c, rho, steps=3_000)
        assert_diverges_above(problem, "usam", eta_c, rho, steps=3_000)

The helpers classify runs with :func:`samtheory.stability.regime_map` (the same rules as the regime table:
several initial points with a component on every eigenvector) and raise ``AssertionError`` with the
numbers when the claim fails.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

try:
    from hypothesis import strategies as st
except ImportError as error:  # pragma: no cover - hypothesis is a test dependency
    raise ImportError("samtheory.testing needs hypothesis: pip install hypothesis") from error

from . import _validation as check
from .stability import critical_learning_rate, regime_map
from .problems import Quadratic
from .result import CONVERGED, DIVERGED, STATUS_NAMES

__all__ = ["spectra", "quadratics", "radii", "near_threshold", "NearThreshold", "assert_converges",
           "assert_bounded", "assert_diverges", "assert_converges_below", "assert_diverges_above", "assert_threshold"]


# -- strategies -------------------------------------------------------------------------------------------

def spectra(*, min_value: float = 1e-2, max_value: float = 1e2, min_dim: int = 1, max_dim: int = 20,
            max_condition: float | None = None):
    """Strategy: eigenvalues in [min_value, max_value], log-uniform, sorted in decreasing order (λ_max first).

    ``max_condition`` bounds λ_max/λ_min (well-conditioned draws converge in few steps).

    Parameters
    ----------
    min_value, max_value : float, optional
        Range of the eigenvalues, 0 < min_value <= max_value (defaults 1e-2 and 1e2).
    min_dim, max_dim : int, optional
        Range of the dimension, 1 <= min_dim <= max_dim (defaults 1 and 20).
    max_condition : float or None, optional
        Largest λ_max/λ_min, >= 1; None (default) for no bound.

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of 1-D float arrays.
    """
    if not 0 < min_value <= max_value:
        raise ValueError(f"need 0 < min_value <= max_value, got {min_value!r}, {max_value!r}")
    check.as_positive_int("min_dim", min_dim)
    if check.as_positive_int("max_dim", max_dim) < min_dim:
        raise ValueError(f"max_dim must be >= min_dim = {min_dim}, got {max_dim!r}")
    if max_condition is not None and not max_condition >= 1:
        raise ValueError(f"max_condition must be >= 1, got {max_condition!r}")
    low, high = float(np.log10(min_value)), float(np.log10(max_value))

    @st.composite
    def draw_spectrum(draw):
        dim = draw(st.integers(min_dim, max_dim))
        top = draw(st.floats(low, high))
        bottom = low if max_condition is None else max(low, top - float(np.log10(max_condition)))
        rest = draw(st.lists(st.floats(bottom, top), min_size=dim - 1, max_size=dim - 1))
        return np.sort(10.0 ** np.array([top, *rest]))[::-1].copy()

    return draw_spectrum()


def quadratics(eigenvalues=None, *, rotated=None):
    """Strategy: a :class:`~samtheory.problems.Quadratic` with a spectrum from ``eigenvalues`` (default
    :func:`spectra`), diagonal or rotated by a random orthogonal matrix (``rotated``: a boolean strategy,
    default both).

    Parameters
    ----------
    eigenvalues : SearchStrategy or None, optional
        Strategy of spectra; None (default) for ``spectra()``.
    rotated : SearchStrategy or None, optional
        Strategy of booleans; None (default) for ``st.booleans()``.

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of :class:`~samtheory.problems.Quadratic`.
    """
    eigenvalues = spectra() if eigenvalues is None else eigenvalues
    rotated = st.booleans() if rotated is None else rotated

    @st.composite
    def draw_quadratic(draw):
        lam = draw(eigenvalues)
        return Quadratic(lam, rotation=draw(st.integers(0, 2**31 - 1)) if draw(rotated) else None)

    return draw_quadratic()


def radii(min_value: float = 0.0, max_value: float = 1.0):
    """Strategy: radii ρ in [min_value, max_value] (0 included: every method is GD there).

    Parameters
    ----------
    min_value, max_value : float, optional
        The range, 0 <= min_value <= max_value (defaults 0 and 1).

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of floats.
    """
    if not 0 <= min_value <= max_value:
        raise ValueError(f"need 0 <= min_value <= max_value, got {min_value!r}, {max_value!r}")
    return st.floats(min_value, max_value, allow_nan=False, allow_infinity=False)


class NearThreshold(NamedTuple):
    """A learning rate ``eta`` = ``threshold`` · (1 + ``side`` · δ) just below (side −1) or above (+1) it."""

    eta: float
    rho: float
    threshold: float
    side: int


def near_threshold(threshold: Callable[[float], float], *, rho=None, delta: float = 1e-2):
    """Strategy: :class:`NearThreshold` (η, ρ) pairs a relative distance ``delta`` below or above
    ``threshold(ρ)``, with ρ from ``rho`` (default :func:`radii`).

    Parameters
    ----------
    threshold : callable
        ``threshold(rho) -> eta_c``.
    rho : SearchStrategy or None, optional
        Strategy of radii; None (default) for ``radii()``.
    delta : float, optional
        Relative distance from the threshold, in (0, 1) (default 1e-2).

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of :class:`NearThreshold`.
    """
    if not callable(threshold):
        raise ValueError(f"threshold must be a callable rho -> eta_c, got {threshold!r}")
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    rho = radii() if rho is None else rho

    @st.composite
    def draw_pair(draw):
        r = draw(rho)
        side = draw(st.sampled_from((-1, 1)))
        eta_c = float(threshold(r))
        return NearThreshold(eta_c * (1 + side * delta), r, eta_c, side)

    return draw_pair()


# -- assertions -------------------------------------------------------------------------------------------

def _classify(problem, method, eta, rho, steps, options):
    eta = check.as_scalar("eta", eta, positive=True)
    rho = check.as_scalar("rho", rho, nonnegative=True)
    result = regime_map(problem, method, eta, rho, steps=steps, **options)
    status = result.point_status[0, 0]
    simulation = result.simulation
    detail = (f"{result.method} at eta={eta:.6g}, rho={rho:.6g}, {steps} steps: statuses "
              f"{[STATUS_NAMES[s] for s in status]}, "
              f"final ‖g‖ {np.array2string(simulation.grad_norm[0, 0], precision=3)}, "
              f"diverged_at {simulation.diverged_at[0, 0].tolist()}")
    return status, detail


def assert_converges(problem, method, eta, rho, *, steps: int, **rules) -> None:
    """Every run converges within ``steps`` (‖g_T‖ ≤ tol·‖g_0‖). ``rules``: ``tol``, ``divergence_factor``,
    ``n_points``, ``seed``, ``x0``, ``adaptive``, ``truncate`` as in :func:`~samtheory.stability.regime_map`.

    Parameters
    ----------
    problem : Problem
        The problem.
    method : str, MethodSpec or callable
        The method.
    eta : float
        Learning rate, > 0.
    rho : float
        Radius, >= 0.
    steps : int
        Updates per run, >= 1.
    **rules
        ``tol``, ``divergence_factor``, ``n_points``, ``seed``, ``x0``, ``adaptive``, ``truncate``, as in
        :func:`~samtheory.stability.regime_map`.

    Raises
    ------
    AssertionError
        With the statuses and final gradient norms, when the claim fails.
    """
    status, detail = _classify(problem, method, eta, rho, steps, rules)
    if not np.all(status == CONVERGED):
        raise AssertionError(f"expected convergence: {detail}")


def assert_bounded(problem, method, eta, rho, *, steps: int, **rules) -> None:
    """No run diverges within ``steps`` (converged or bounded).

    Parameters
    ----------
    problem : Problem
        The problem.
    method : str, MethodSpec or callable
        The method.
    eta : float
        Learning rate, > 0.
    rho : float
        Radius, >= 0.
    steps : int
        Updates per run, >= 1.
    **rules
        As in :func:`assert_converges`.

    Raises
    ------
    AssertionError
        With the statuses and final gradient norms, when the claim fails.
    """
    status, detail = _classify(problem, method, eta, rho, steps, rules)
    if np.any(status == DIVERGED):
        raise AssertionError(f"expected no divergence: {detail}")


def assert_diverges(problem, method, eta, rho, *, steps: int, **rules) -> None:
    """Every run diverges within ``steps`` (‖g_t‖ passes the divergence threshold or stops being finite).

    Parameters
    ----------
    problem : Problem
        The problem.
    method : str, MethodSpec or callable
        The method.
    eta : float
        Learning rate, > 0.
    rho : float
        Radius, >= 0.
    steps : int
        Updates per run, >= 1.
    **rules
        As in :func:`assert_converges`.

    Raises
    ------
    AssertionError
        With the statuses and final gradient norms, when the claim fails.
    """
    status, detail = _classify(problem, method, eta, rho, steps, rules)
    if not np.all(status == DIVERGED):
        raise AssertionError(f"expected divergence: {detail}")


def _offset(eta_c, delta, side):
    eta_c = check.as_scalar("eta_c", eta_c, positive=True)
    delta = check.as_scalar("delta", delta, positive=True)
    if not delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    return eta_c * (1 + side * delta)


def assert_converges_below(problem, method, eta_c, rho, *, delta: float = 1e-2, steps: int, **rules) -> None:
    """Every run converges at η = (1 − ``delta``)·``eta_c`` within ``steps``.

    Parameters
    ----------
    problem : Problem
        The problem.
    method : str, MethodSpec or callable
        The method.
    eta_c : float
        The claimed threshold, > 0.
    rho : float
        Radius, >= 0.
    delta : float, optional
        Relative offset from ``eta_c``, in (0, 1) (default 1e-2).
    steps : int
        Updates per run, >= 1.
    **rules
        As in :func:`assert_converges`.

    Raises
    ------
    AssertionError
        When the claim fails.
    """
    assert_converges(problem, method, _offset(eta_c, delta, -1), rho, steps=steps, **rules)


def assert_diverges_above(problem, method, eta_c, rho, *, delta: float = 1e-2, steps: int, **rules) -> None:
    """Every run diverges at η = (1 + ``delta``)·``eta_c`` within ``steps``.

    Parameters
    ----------
    problem : Problem
        The problem.
    method : str, MethodSpec or callable
        The method.
    eta_c : float
        The claimed threshold, > 0.
    rho : float
        Radius, >= 0.
    delta : float, optional
        Relative offset from ``eta_c``, in (0, 1) (default 1e-2).
    steps : int
        Updates per run, >= 1.
    **rules
        As in :func:`assert_converges`.

    Raises
    ------
    AssertionError
        When the claim fails.
    """
    assert_diverges(problem, method, _offset(eta_c, delta, +1), rho, steps=steps, **rules)


def assert_threshold(problem, method, rho, expected, *, rtol: float = 1e-2, edge: str = "nondivergent",
                     **rules) -> None:
    """The measured critical learning rate (:func:`~samtheory.stability.critical_learning_rate`, bisection to
    ``rtol``) equals ``expected`` (broadcast against ``rho``) to ``rtol`` relative.

    Parameters
    ----------
    problem : Problem
        The problem.
    method : str, MethodSpec or callable
        The method.
    rho : array_like
        Radii, scalar or 1-D, >= 0.
    expected : array_like
        The claimed threshold(s), > 0.
    rtol : float, optional
        Bisection tolerance and allowed relative error, in (0, 1) (default 1e-2).
    edge : {"nondivergent", "converged"}, optional
        The edge (default ``"nondivergent"``).
    **rules
        Further keyword arguments of :func:`~samtheory.stability.critical_learning_rate` (``steps``, ``tol``,
        ``eta_range``, ``x0``, ...).

    Raises
    ------
    AssertionError
        With the measured and expected values, when they differ by more than ``rtol`` or no edge is found.
    """
    rho = np.atleast_1d(check.as_float_array("rho", rho, nonnegative=True))
    expected = np.broadcast_to(check.as_float_array("expected", expected, positive=True), rho.shape)
    measured = critical_learning_rate(problem, method, rho, edge=edge, rtol=rtol, **rules)
    error = np.abs(measured.value - expected) / expected
    if not np.all(error <= rtol):  # NaN (no edge found) fails too
        raise AssertionError(f"{measured.method} {edge} threshold: measured {measured.value.tolist()}, expected "
                             f"{expected.tolist()}, relative error {error.tolist()} > rtol = {rtol:g}; "
                             f"reasons {list(measured.reason)}")
