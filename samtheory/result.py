"""The result of :func:`samtheory.simulate`: arrays over the batch shape, scipy.optimize style."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["CONVERGED", "BOUNDED", "DIVERGED", "STATUS_NAMES", "History", "SimulationResult", "Threshold",
           "THRESHOLD_EDGES", "reasons"]

#: ``status`` codes. CONVERGED: ‖g(x_T)‖ ≤ tol · ‖g(x_0)‖. BOUNDED: finite and never past the divergence
#: threshold, but not converged (e.g. SAM's 2-cycle). DIVERGED: ‖g(x_t)‖ passed the divergence threshold
#: or stopped being finite at step ``diverged_at`` (0 where ‖g(x_0)‖ is not finite; T where only the final
#: loss is not finite); the configuration was frozen there.
CONVERGED, BOUNDED, DIVERGED = 0, 1, 2
STATUS_NAMES = ("converged", "bounded", "diverged")


#: The edges of a stability regime. ``"nondivergent"``: the largest η at which no run diverges (converged or
#: bounded); ``"converged"``: the largest η at which every run converges; ``"pep"``: the largest η at which the
#: PEP worst case over a function class still decreases with the number of steps; ``"mean_square"`` and
#: ``"almost_sure"``: the stochastic edges of docs/theory.md O16 (second moments, top Lyapunov exponent).
THRESHOLD_EDGES = ("nondivergent", "converged", "pep", "mean_square", "almost_sure")


@dataclass(frozen=True)
class Threshold:
    r"""A critical learning rate — a closed form, a measurement or a PEP certificate — with its bracket.

    Every threshold samtheory reports has this type (or a subclass that adds the details of how it was found:
    :class:`samtheory.stability.MeasuredThreshold`, :class:`samtheory.convex.pep.PEPThreshold`).

    Attributes
    ----------
    method : str
        The method's name.
    edge : str
        One of :data:`THRESHOLD_EDGES`.
    source : str
        ``"analytic"`` (a closed form of docs/theory.md), ``"measured"`` (bisection over simulations),
        ``"pep"`` (bisection over SDP certificates) or ``"estimated"`` (a Monte-Carlo estimate with a confidence
        interval: the Lyapunov edge of O16).
    value : ndarray
        The threshold, NaN where there is none (``reason`` says why).
    lower, upper : ndarray
        A bracket of the threshold: η = ``lower`` passes the edge's test and η = ``upper`` fails it; both equal
        ``value`` for a closed form, NaN where there is none.
    tolerance : float
        The stated tolerance of the bracket: relative (upper/lower − 1 ≤ tolerance) when ``relative``, else
        absolute in η (upper − lower ≤ tolerance, PEP's bisection); 0 for a closed form.
    reason : ndarray of str
        Same shape as ``value``: ``""`` where there is a threshold, else why there is none.
    relative : bool
        Whether ``tolerance`` is relative.
    """

    method: str
    edge: str
    source: str
    value: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    tolerance: float
    reason: np.ndarray
    relative: bool = True

    @property
    def found(self) -> np.ndarray:
        """Where there is a threshold."""
        return ~np.isnan(self.value)

    @property
    def reason_text(self) -> str:
        """The distinct reasons why some entry has no threshold, joined; "" when every entry has one."""
        return "; ".join(dict.fromkeys(r for r in np.ravel(self.reason) if r))


def reasons(shape, missing, reason: str) -> np.ndarray:
    """An array of reasons of ``shape``: ``reason`` where ``missing``, "" elsewhere.

    Parameters
    ----------
    shape : tuple of int
        Shape of the output.
    missing : array_like of bool
        Where there is no threshold; broadcasts to ``shape``.
    reason : str
        Why there is none.

    Returns
    -------
    ndarray of object
    """
    out = np.full(shape, "", dtype=object)
    out[np.broadcast_to(missing, shape)] = reason
    return out


@dataclass
class History:
    """Diagnostics recorded every ``record_every`` steps; each field has shape ``(len(steps), *batch_shape)``.

    After a configuration diverges its entries hold the frozen values. ``gamma`` is the renormalization
    factor (1 for rules that do not renormalize); ``ascent_ratio`` is ‖g(y)‖/‖g(x)‖ (None when the rule did
    not compute ‖g(y)‖); ``distance`` is ‖x − x*‖ (None when no minimizer is known); ``x`` holds the
    iterates themselves, shape ``(len(steps), *batch_shape, d)``, when ``record_iterates=True`` (else None).
    At a recorded step t, ``gamma`` and ``ascent_ratio`` describe the update from x_t (the last record, at
    step T, has no update: its entries repeat the previous record's).

    Attributes
    ----------
    steps : ndarray of int
        The recorded steps 0, k, 2k, ... (T included when k divides it).
    loss, grad_norm : ndarray
        f(x_t) and ‖g(x_t)‖ (full gradient).
    gamma : ndarray
        The renormalization factor γ of the update from x_t (1 where the rule does not renormalize).
    ascent_ratio : ndarray or None
        ‖g(y_t)‖/‖g(x_t)‖, None when the rule did not compute ‖g(y)‖.
    distance : ndarray or None
        ‖x_t − x*‖, None when no minimizer is known.
    x : ndarray or None
        The iterates, shape ``(len(steps), *batch_shape, d)``, when recorded (else None).
    """

    steps: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    gamma: np.ndarray
    ascent_ratio: np.ndarray | None
    distance: np.ndarray | None
    x: np.ndarray | None = None


@dataclass
class SimulationResult:
    """Final state of every configuration of a batch. Array fields have the batch shape ``shape``.

    ``x`` is always finite. ``loss``, ``grad_norm`` and ``distance`` are finite for every configuration that
    did not diverge (one whose loss left float64's range by step T is diverged there); for a diverged one they
    are evaluated at the frozen iterate and may be ``inf`` (never NaN) where that evaluation overflows. :meth:`to_records` writes such a value as ``None`` (JSON ``null``),
    next to ``"status": "diverged"``.

    Attributes
    ----------
    method : str
        The method's name.
    problem : Problem
        The problem simulated.
    steps : int
        Number of updates T.
    eta, rho : ndarray
        Learning rate and radius of each configuration, broadcast to ``shape``.
    seed : ndarray of int
        Seed of each configuration, broadcast to ``shape``.
    x : ndarray
        Final (or frozen) iterates, shape ``(*shape, d)``.
    loss, grad_norm : ndarray
        f and ‖g‖ at ``x`` (full gradient); ``inf`` where a diverged one overflows.
    distance : ndarray or None
        ‖x − x*‖, None when no minimizer is known.
    status : ndarray of int
        :data:`CONVERGED`, :data:`BOUNDED` or :data:`DIVERGED`.
    diverged_at : ndarray of int
        The step at which divergence was detected; -1 where the configuration did not diverge.
    tol : float
        The convergence tolerance used.
    converged_at : ndarray of int
        The first step t ∈ {0, …, T} at which ‖g(x_t)‖ ≤ ``tol · ‖g(x_0)‖`` (the norm the step computes), -1
        where never; recorded whether or not the run stopped there (``simulate(..., early_stop=True)``).
    history : History or None
        The recorded diagnostics, None unless ``record_every > 0``.
    options : dict
        The options of the run (``adaptive``, ``truncate``, ``batch_size``, ``basis``, ...).
    """

    method: str
    problem: object
    steps: int
    eta: np.ndarray
    rho: np.ndarray
    seed: np.ndarray
    x: np.ndarray  # shape (*shape, d)
    loss: np.ndarray
    grad_norm: np.ndarray
    distance: np.ndarray | None
    status: np.ndarray
    diverged_at: np.ndarray  # step of detection; -1 where the configuration did not diverge
    tol: float
    history: History | None = None
    options: dict = field(default_factory=dict)
    converged_at: np.ndarray | None = None  # first step meeting the tolerance; -1 where never

    @property
    def shape(self) -> tuple:
        return self.status.shape

    @property
    def converged(self) -> np.ndarray:
        return self.status == CONVERGED

    @property
    def bounded(self) -> np.ndarray:
        return self.status == BOUNDED

    @property
    def diverged(self) -> np.ndarray:
        return self.status == DIVERGED

    @property
    def status_name(self) -> np.ndarray:
        return np.asarray(STATUS_NAMES)[self.status]

    @property
    def suboptimality(self) -> np.ndarray | None:
        """f(x_T) − f*, where f* is known."""
        f_star = getattr(self.problem, "f_star", None)
        return None if f_star is None else self.loss - f_star

    def to_records(self) -> list[dict]:
        """One plain dict per configuration (row-major over the batch shape), JSON-ready: a value that is
        not finite (only possible for a diverged configuration) is ``None``, and so are ``diverged_at`` and
        ``converged_at`` where they did not happen."""
        distance = None if self.distance is None else self.distance.ravel()
        converged_at = None if self.converged_at is None else self.converged_at.ravel()
        records = []
        for i, (eta, rho, seed, status, loss, gnorm, step) in enumerate(zip(
                self.eta.ravel(), self.rho.ravel(), self.seed.ravel(), self.status.ravel(),
                self.loss.ravel(), self.grad_norm.ravel(), self.diverged_at.ravel())):
            records.append({
                "method": self.method,
                "eta": float(eta),
                "rho": float(rho),
                "seed": int(seed),
                "status": STATUS_NAMES[status],
                "final_loss": _finite_or_none(loss),
                "final_grad_norm": _finite_or_none(gnorm),
                "final_distance": None if distance is None else _finite_or_none(distance[i]),
                "diverged_at": None if step < 0 else int(step),
                "converged_at": None if converged_at is None or converged_at[i] < 0 else int(converged_at[i]),
                "steps": self.steps,
            })
        return records

    def __repr__(self):
        counts = ", ".join(f"{name}={int(np.sum(self.status == code))}" for code, name in enumerate(STATUS_NAMES))
        return f"SimulationResult(method={self.method!r}, shape={self.shape}, steps={self.steps}, {counts})"


def _finite_or_none(value) -> float | None:
    """``float(value)``, or None where it is not finite (strict JSON has no NaN or Infinity)."""
    value = float(value)
    return value if np.isfinite(value) else None
