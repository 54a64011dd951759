r"""What the interactive explorer (the marimo app ``experiments/explorer.py``) computes and draws; no marimo here.

The explorer runs the five update rules of docs/theory.md §2 on a diagonal quadratic f(x) = ½ Σ λ_i x_i² with
λ_1 ≥ λ_2 ≥ … (so coordinate i is the eigen-direction u_i), and shows

- the trajectories, projected on span(u_1, u_2), over the contours of f there (:func:`trajectory_png`);
- f(x_t) and the renormalization factor γ_t against t (:func:`curves_png`);
- the measured (η, ρ) regime map of each method with the analytic boundaries of O1/O2 (:func:`regime_png`);
- the closed forms of docs/theory.md O1–O4 with the current numbers substituted, beside what was measured
  (:func:`explanation`).

Trajectories run through :func:`samtheory.simulate` with ``record_iterates=True``, so
divergence detection and the status are the engine's own; the maps come from
:func:`samtheory.stability.regime_map` and every closed form from :mod:`samtheory.theory`.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import EllipseCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedFormatter, FixedLocator, MaxNLocator, NullLocator
from PIL import Image

from .. import _validation as check
from .. import plotting, problems, stability, theory
from ..engine import simulate
from ..methods import METHODS

# Display order (a choice of presentation): GD, then each unstable method beside its StableSAM version.
METHOD_NAMES = ("gd", "usam", "susam", "sam", "ssam")
DEFAULT_METHODS = METHOD_NAMES[1:]
LABELS = plotting.METHOD_LABELS
COLORS = plotting.METHOD_COLORS
RENORMALIZED = tuple(name for name in METHOD_NAMES if METHODS[name].renormalized)

# Slider values: readable numbers, about 14 per decade.
_MANTISSAS = (1, 1.2, 1.5, 1.8, 2, 2.5, 3, 3.5, 4, 5, 6, 7, 8, 9)
ETA_VALUES = tuple(round(m * 10.0 ** e, 6) for e in range(-4, 0) for m in _MANTISSAS) + (1.0,)
RHO_VALUES = (0.0,) + tuple(round(m * 10.0 ** e, 6) for e in range(-3, 0) for m in _MANTISSAS) + (1.0, 1.5, 2.0)
LAM_MAX_VALUES = tuple(round(m * 10.0 ** e, 6) for e in range(-1, 3) for m in _MANTISSAS) + (1000.0,)
CONDITION_VALUES = (1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)

# Regime-map grid: η log-spaced around GD's limit 2/λ_max, ρ linear from 0.
MAP_ETA_POINTS, MAP_RHO_POINTS = 56, 36
PNG_DPI = 100
PANEL_SIZE = 2.6  # inches per method panel (plus margins)


def ordered_methods(methods) -> tuple[str, ...]:
    """The chosen method names in display order (``ValueError`` for an unknown name).

    Parameters
    ----------
    methods : iterable of str
        Names among :data:`METHOD_NAMES`.

    Returns
    -------
    tuple of str
    """
    chosen = set(methods)
    unknown = sorted(chosen - set(METHOD_NAMES))
    if unknown:
        raise ValueError(f"methods must be among {', '.join(METHOD_NAMES)}, got {', '.join(map(repr, unknown))}")
    return tuple(name for name in METHOD_NAMES if name in chosen)


def spectrum(lam_max: float, condition_number: float, dim: int, eigenvalues: str = "") -> np.ndarray:
    """The eigenvalues, largest first: ``eigenvalues`` (comma-separated) if given, else ``dim`` values
    log-spaced from ``lam_max / condition_number`` to ``lam_max``.

    Parameters
    ----------
    lam_max : float
        Largest eigenvalue, > 0.
    condition_number : float
        λ_max/λ_min, >= 1.
    dim : int
        Number of eigenvalues, >= 2.
    eigenvalues : str, optional
        Comma- (or semicolon-) separated positive values, at least 2; when given, the other arguments are
        ignored (default ``""``).

    Returns
    -------
    ndarray
        Sorted in decreasing order.
    """
    if eigenvalues is not None and str(eigenvalues).strip():
        try:
            values = [float(v) for v in str(eigenvalues).replace(";", ",").split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"eigenvalues must be comma-separated numbers, got {eigenvalues!r}") from None
        lam = check.as_float_array("eigenvalues", values, positive=True)
        if lam.size < 2:
            raise ValueError(f"eigenvalues must hold at least 2 values (the plot shows 2 directions), "
                             f"got {eigenvalues!r}")
        return np.sort(lam)[::-1]
    lam_max = check.as_scalar("lam_max", lam_max, positive=True)
    condition_number = check.as_scalar("condition_number", condition_number, positive=True)
    if condition_number < 1:
        raise ValueError(f"condition_number must be >= 1, got {condition_number!r}")
    dim = check.as_positive_int("dim", dim, minimum=2)
    return np.geomspace(lam_max, lam_max / condition_number, dim)


def initial_point(dim: int, along_u1: float, along_u2: float, others: float = 1.0) -> np.ndarray:
    """x_0 with coordinates ``along_u1``, ``along_u2`` on the two sharpest directions and ``others`` on the rest.

    Parameters
    ----------
    dim : int
        Dimension, >= 2.
    along_u1, along_u2 : float
        Coordinates on u_1 and u_2 (finite).
    others : float, optional
        Coordinate on every other direction (default 1).

    Returns
    -------
    ndarray
        Shape ``(dim,)``.
    """
    dim = check.as_positive_int("dim", dim, minimum=2)
    coordinates = check.as_float_array("x0", [along_u1, along_u2, others])
    x0 = np.full(dim, coordinates[2])
    x0[:2] = coordinates[:2]
    return x0


@dataclass(frozen=True)
class Trajectory:
    """One run: iterates ``points`` (n + 1, d), x_0 … x_n (n = steps, or the step where divergence was
    detected), ``loss`` f(x_t) at those, and ``gamma``, ``grad_norm``: γ_t and ‖g(x_t)‖ of the update from
    x_t (t < n), as the rule returned them.

    Attributes
    ----------
    method : str
        The method's name.
    eta, rho : float
        Learning rate and radius.
    requested_steps : int
        The step budget asked for.
    points : ndarray
        Iterates x_0 … x_n, shape ``(n + 1, d)``.
    steps : ndarray of int
        0 … n.
    loss : ndarray
        f(x_t), shape ``(n + 1,)``.
    gamma, grad_norm : ndarray
        γ_t and ‖g(x_t)‖ of the updates, shape ``(n,)``.
    status : str
        ``"converged"``, ``"bounded"`` or ``"diverged"``.
    diverged_at : int or None
        The divergence step, None if the run did not diverge.
    final_grad_norm : float
        ‖g‖ at the final (or frozen) iterate.
    """

    method: str
    eta: float
    rho: float
    requested_steps: int
    points: np.ndarray
    steps: np.ndarray
    loss: np.ndarray
    gamma: np.ndarray
    grad_norm: np.ndarray
    status: str
    diverged_at: int | None
    final_grad_norm: float


def run_trajectory(problem: problems.Quadratic, method: str, eta: float, rho: float, *, steps: int, x0,
                   adaptive: bool = False, truncate: bool = False) -> Trajectory:
    """Run ``method`` once through :func:`samtheory.simulate`, recording every iterate with γ_t and ‖g(x_t)‖
    (the engine's status and divergence detection decide where the run ends).

    Parameters
    ----------
    problem : Quadratic
        The explorer's diagonal quadratic, eigenvalues largest first.
    method : str
        The method.
    eta : float
        Learning rate, > 0.
    rho : float
        Radius, >= 0.
    steps : int
        Updates, >= 1.
    x0 : array_like
        Initial point, shape ``(d,)``.
    adaptive, truncate : bool, optional
        The rule's options, as in :func:`samtheory.simulate` (default False).

    Returns
    -------
    Trajectory
    """
    result = simulate(problem, method, eta, rho, steps=steps, x0=x0, adaptive=adaptive, truncate=truncate,
                         record_every=1, record_iterates=True)
    history, diverged_at = result.history, int(result.diverged_at)
    n = steps if diverged_at < 0 else diverged_at  # the step computed at x_n (where divergence was detected) was not taken
    return Trajectory(method=result.method, eta=float(eta), rho=float(rho), requested_steps=steps,
                      points=history.x[:n + 1], steps=np.arange(n + 1), loss=history.loss[:n + 1],
                      gamma=history.gamma[:n], grad_norm=history.grad_norm[:n], status=str(result.status_name),
                      diverged_at=None if diverged_at < 0 else diverged_at, final_grad_norm=float(result.grad_norm))


def run_all(problem, methods, eta, rho, *, steps, x0, adaptive=False, truncate=False) -> list[Trajectory]:
    """:func:`run_trajectory` for each method, in the given order.

    Parameters
    ----------
    problem : Quadratic
        The explorer's diagonal quadratic, eigenvalues largest first.
    methods : iterable of str
        The methods.
    eta, rho : float
        Learning rate (> 0) and radius (>= 0), shared by every method.
    steps : int
        Updates, >= 1.
    x0 : array_like
        Initial point, shape ``(d,)``.
    adaptive, truncate : bool, optional
        The rule's options, as in :func:`samtheory.simulate` (default False).

    Returns
    -------
    list of Trajectory
    """
    return [run_trajectory(problem, m, eta, rho, steps=steps, x0=x0, adaptive=adaptive, truncate=truncate)
            for m in methods]


def _covering_power_of_two(base: float, value: float, above: bool) -> float:
    """base · 2^k for the smallest k ≥ 0 with the result ≥ value (``above``) or ≤ value (below)."""
    ratio = value / base if above else base / value
    k = max(0, int(np.ceil(np.log2(ratio)))) if ratio > 0 else 0
    return base * 2.0 ** k if above else base / 2.0 ** k


def map_axes(lam_max: float, eta: float, rho: float) -> tuple[np.ndarray, np.ndarray]:
    """The regime map's η axis (log) and ρ axis (linear): around GD's limit 2/λ_max and ρ ∈ [0, 2/λ_max],
    widened by powers of 2 until they contain the current (η, ρ) (so small moves reuse the cached map).

    Parameters
    ----------
    lam_max : float
        Largest eigenvalue, > 0.
    eta, rho : float
        The current learning rate (> 0) and radius (>= 0).

    Returns
    -------
    (ndarray, ndarray)
        The η axis (``MAP_ETA_POINTS`` values) and the ρ axis (``MAP_RHO_POINTS`` values).
    """
    eta_gd = float(theory.gd_critical_learning_rate(lam_max))
    eta_low = _covering_power_of_two(eta_gd / 32, eta / 1.2, above=False)
    eta_high = _covering_power_of_two(1.5 * eta_gd, eta * 1.2, above=True)
    rho_high = _covering_power_of_two(eta_gd, rho * 1.1, above=True)  # ρ up to 2/λ_max, in units of 1/λ_max
    return np.geomspace(eta_low, eta_high, MAP_ETA_POINTS), np.linspace(0.0, rho_high, MAP_RHO_POINTS)


@lru_cache(maxsize=64)
def _regime_status(eigenvalues: tuple, method: str, eta_axis: tuple, rho_axis: tuple, steps: int, x0: tuple,
                   adaptive: bool, truncate: bool) -> np.ndarray:
    problem = problems.Quadratic(np.array(eigenvalues))
    regimes = stability.regime_map(problem, method, np.array(eta_axis), np.array(rho_axis), steps=steps,
                                   x0=np.array(x0), adaptive=adaptive, truncate=truncate)
    status = np.asarray(regimes.status)
    status.setflags(write=False)
    return status


def regime_status(problem: problems.Quadratic, method: str, eta_axis, rho_axis, *, steps: int, x0,
                  adaptive: bool = False, truncate: bool = False) -> np.ndarray:
    """Status codes (len(eta_axis), len(rho_axis)) of ``method`` over the grid (cached per setting).

    Parameters
    ----------
    problem : Quadratic
        The explorer's diagonal quadratic, eigenvalues largest first.
    method : str
        The method.
    eta_axis, rho_axis : array_like
        The grid's axes, as :func:`~samtheory.stability.regime_map` takes them.
    steps : int
        Updates, >= 1.
    x0 : array_like
        Initial point, shape ``(d,)``.
    adaptive, truncate : bool, optional
        The rule's options, as in :func:`samtheory.simulate` (default False).

    Returns
    -------
    ndarray of int
        Read-only (shared by the cache).
    """
    return _regime_status(tuple(problem.eigenvalues.tolist()), method, tuple(np.asarray(eta_axis).tolist()),
                          tuple(np.asarray(rho_axis).tolist()), int(steps), tuple(np.asarray(x0).tolist()),
                          bool(adaptive), bool(truncate))


# ---------------------------------------------------------------------------------------------- explanation

def _f(value: float, digits: int = 3) -> str:
    return f"{float(value):.{digits}g}"


def _relation(value: float, limit: float = 2.0) -> str:
    return "<" if value < limit else ("=" if value == limit else ">")


@dataclass(frozen=True)
class Explanation:
    """One method's closed form at the current numbers (``reason``), what it predicts (``converges``,
    ``bounded`` (and not convergent), ``nondivergent``, ``diverges``, or None where docs/theory.md states nothing),
    what was measured, and whether the two agree (None: no prediction, or stable but not yet within the
    convergence tolerance).

    Attributes
    ----------
    method : str
        The method's name.
    reason : str
        The closed form with the current numbers substituted.
    prediction : str or None
        ``"converges"``, ``"bounded"``, ``"nondivergent"``, ``"diverges"`` or None.
    measured : str
        What the run did.
    agrees : bool or None
        Whether prediction and measurement agree.
    """

    method: str
    reason: str
    prediction: str | None
    measured: str
    agrees: bool | None


def _measured_status(trajectory: Trajectory) -> str:
    if trajectory.status == "diverged":
        return f"diverged at step {trajectory.diverged_at}"
    if trajectory.status == "converged":
        return "converged"
    return f"bounded (‖g(x_T)‖ = {_f(trajectory.final_grad_norm)})"


def _agreement(prediction: str | None, trajectory: Trajectory) -> bool | None:
    status = trajectory.status
    if prediction is None:
        return None
    if prediction == "diverges":
        return status == "diverged"
    if prediction == "converges":
        return None if status == "bounded" else status == "converged"
    if prediction == "bounded":  # O3 (SAM): bounded and not convergent
        return status == "bounded"
    return status != "diverged"  # "nondivergent" (O5 for SSAM)


def explain(problem: problems.Quadratic, trajectory: Trajectory, *, adaptive: bool = False) -> Explanation:
    """The relevant closed form of docs/theory.md O1–O5 for ``trajectory``'s method at its (η, ρ), and the verdict.

    Parameters
    ----------
    problem : Quadratic
        The explorer's diagonal quadratic, eigenvalues largest first.
    trajectory : Trajectory
        The run to explain.
    adaptive : bool, optional
        Whether the run used the adaptive ascent (then no closed form applies; default False).

    Returns
    -------
    Explanation
    """
    lam = problem.eigenvalues
    lam_max, lam_min = float(lam[0]), float(lam[-1])
    eta, rho, method = trajectory.eta, trajectory.rho, trajectory.method
    eta_gd = float(theory.gd_critical_learning_rate(lam_max))
    measured = _measured_status(trajectory)
    if adaptive and method != "gd":
        reason = "adaptive (ASAM) ascent: O2–O4 are for the plain ascent, so no closed form applies"
        prediction = None
    elif method == "gd" or (method == "sam" and rho == 0):
        product = eta * lam_max
        prediction = {"<": "converges", "=": "bounded", ">": "diverges"}[_relation(product)]
        prefix = "" if method == "gd" else "ρ = 0 makes SAM GD; "
        reason = (f"{prefix}{'stable' if product < 2 else 'unstable'} because ηλ_max = {_f(eta)}·{_f(lam_max)} = "
                  f"{_f(product)} {_relation(product)} 2 (O1: η < 2/λ_max = {_f(eta_gd)})")
    elif method == "usam":
        product = eta * float(theory.usam_curvature(lam_max, rho))
        prediction = {"<": "converges", "=": "bounded", ">": "diverges"}[_relation(product)]
        reason = (f"{'stable' if product < 2 else 'unstable'} because ηλ_max(1 + ρλ_max) = {_f(eta)}·{_f(lam_max)}·"
                  f"(1 + {_f(rho)}·{_f(lam_max)}) = {_f(product)} {_relation(product)} 2 (O2: stable iff η < η_c = "
                  f"{_f(theory.usam_critical_learning_rate(lam_max, rho))}, i.e. λ_max < λ* = "
                  f"{_f(theory.usam_max_stable_sharpness(eta, rho))})")
    elif method == "sam":
        product = eta * lam_max
        if product < 2:
            prediction = "bounded"
            amplitude = float(theory.sam_cycle_amplitude(eta, rho, lam_max))
            reason = (f"bounded, not convergent: ηλ_max = {_f(product)} < 2 and ρ > 0, so it approaches the 2-cycle "
                      f"±a·u₁ with a = ηρλ₁/(2 − ηλ₁) = {_f(amplitude, 4)} (O3)")
            if trajectory.status == "bounded" and len(trajectory.points) >= 2:
                grad_norm = trajectory.final_grad_norm
                measured += (f"; amplitude of x_T·u₁: {_f(np.mean(np.abs(trajectory.points[-2:, 0])), 4)}, "
                             f"λ_edge(η, ρ, ‖g(x_T)‖) = {_f(theory.sam_edge(eta, rho, grad_norm), 4)} "
                             f"vs λ₁ = {_f(lam_max, 4)}")
        else:
            prediction = None
            reason = f"ηλ_max = {_f(product)} ≥ 2: outside O3, which covers η < 2/λ_max = {_f(eta_gd)}"
    else:  # ssam, susam
        lower, upper = gamma_bounds(problem, method, rho, trajectory.grad_norm)
        if method == "susam":
            bound = f"γ ∈ [1/(1 + ρλ_max), 1/(1 + ρλ_min)] = [{_f(lower[0])}, {_f(upper[0])}]"
            claim, prediction_text = "converges", "convergent"
        else:
            bound = "γ_t ∈ [1/(1 + ρλ_max/‖g(x_t)‖), 1/(1 + ρλ_min/‖g(x_t)‖)]"
            claim, prediction_text = "nondivergent", "bounded"
        prediction = claim if eta < eta_gd else None
        reason = (f"steps of length η‖g(x_t)‖ with {bound} (O4); the paper's claim (O5): {prediction_text} up to "
                  f"about 2/λ_max = {_f(eta_gd)}, and η = {_f(eta / eta_gd)}·2/λ_max")
        gamma = trajectory.gamma
        if gamma.size:
            # γ is a ratio of two float64 norms: 1e-12 relative slack at the bounds.
            inside = int(np.sum((gamma >= lower * (1 - 1e-12)) & (gamma <= upper * (1 + 1e-12))))
            measured += (f"; γ_t ∈ [{_f(np.min(gamma))}, {_f(np.max(gamma))}], within O4's bound at {inside} of "
                         f"{gamma.size} steps")
    rate = _rates(problem, trajectory) if not (adaptive and method != "gd") else None
    if rate is not None:
        measured += f"; ‖g‖ shrinks by {_f(rate[0])} per step (asymptotic_rate predicts {_f(rate[1])})"
    return Explanation(method, reason, prediction, measured, _agreement(prediction, trajectory))


def _rates(problem: problems.Quadratic, trajectory: Trajectory) -> tuple[float, float] | None:
    """(measured, predicted) contraction of ‖g(x_t)‖ per step over the second half of a non-diverged run
    (None for SAM with ρ > 0, whose ‖g‖ tends to the 2-cycle's, and where ‖g‖ underflowed to 0)."""
    grad_norm = trajectory.grad_norm
    if trajectory.status == "diverged" or grad_norm.size < 4 or (trajectory.method == "sam" and trajectory.rho > 0):
        return None
    window = grad_norm.size // 2
    first, last = grad_norm[-1 - window], grad_norm[-1]
    if not (first > 0 and last > 0):
        return None
    measured = float((last / first) ** (1.0 / window))
    predicted = float(theory.asymptotic_rate(trajectory.method, problem.eigenvalues, trajectory.eta,
                                                trajectory.rho))
    return measured, predicted


def explanation(problem: problems.Quadratic, trajectories: list[Trajectory], *, adaptive: bool = False) -> str:
    """A Markdown table: per method, the closed form with the current numbers, and what was measured.

    Parameters
    ----------
    problem : Quadratic
        The explorer's diagonal quadratic, eigenvalues largest first.
    trajectories : list of Trajectory
        The runs, one per method (all at the same η, ρ).
    adaptive : bool, optional
        As in :func:`explain` (default False).

    Returns
    -------
    str
    """
    if not trajectories:
        return "Choose at least one method."
    lam = problem.eigenvalues
    first = trajectories[0]
    spectrum_text = ", ".join(_f(v) for v in lam[:6]) + (", …" if lam.size > 6 else "")
    lines = [f"λ = ({spectrum_text}) (d = {lam.size}), η = {_f(first.eta)}, ρ = {_f(first.rho)}, "
             f"{first.requested_steps} steps.",
             "", "| method | why (closed form, current numbers) | measured | agrees |", "|:--|:--|:--|:--|"]
    marks = {True: "✓", False: "**✗ disagrees**", None: "–"}
    for trajectory in trajectories:
        item = explain(problem, trajectory, adaptive=adaptive)
        mark = marks[item.agrees]
        if item.agrees is None and item.prediction == "converges" and trajectory.status == "bounded":
            mark = "stable, not yet converged"
        lines.append(f"| **{LABELS[item.method]}** | {item.reason} | {item.measured} | {mark} |")
    return "\n".join(lines)


def gamma_bounds(problem: problems.Quadratic, method: str, rho: float, grad_norm) -> tuple[np.ndarray, np.ndarray]:
    """O4's bounds on γ for ``method`` at points with gradient norms ``grad_norm`` (``susam``: constant).

    Parameters
    ----------
    problem : Quadratic
        The explorer's diagonal quadratic, eigenvalues largest first.
    method : str
        A method of known structure.
    rho : float
        Radius, >= 0.
    grad_norm : array_like
        Gradient norms ‖g(x)‖, >= 0.

    Returns
    -------
    (ndarray, ndarray)
        Lower and upper bounds, each of the shape of ``np.atleast_1d(grad_norm)``.
    """
    grad_norm = np.atleast_1d(np.asarray(grad_norm, dtype=float))
    bounds = theory.renormalization_bounds(method, problem.eigenvalues, rho, grad_norm=grad_norm)
    shape = grad_norm.shape
    return np.broadcast_to(bounds.lower, shape), np.broadcast_to(bounds.upper, shape)


# -------------------------------------------------------------------------------------------------- figures
# Each view is a Scene with three tiers: the frame (axes, ticks, titles, legend: slow to draw) is rendered once
# per frame key; the layer (contours, regime colours, boundaries) once per layer key over that frame; the moving
# artists (paths, the current point) are blitted over the layer at every update. Moving η or ρ only redraws the
# moving artists; a new spectrum redraws the layers, not the frames.

class Scene:
    """A figure whose frame is rendered once; :meth:`render` draws a cached layer and the moving artists.

    Parameters
    ----------
    figure : Figure
        The figure with its frame (axes, ticks, titles, legend) already built; drawn once here.
    """

    _MAX_LAYERS = 8

    def __init__(self, figure: Figure):
        self.figure = figure
        self.canvas = FigureCanvasAgg(figure)
        self.canvas.draw()
        self.frame = self.canvas.copy_from_bbox(figure.bbox)
        self.layers = OrderedDict()
        self._lock = threading.Lock()  # one Scene may be shared by several app sessions

    def _draw(self, artists, keep: bool = False) -> None:
        try:
            for artist in artists:
                self.figure.draw_artist(artist)
            for ax in self.figure.axes:  # the frame's spines over what was drawn inside the axes
                for spine in ax.spines.values():
                    ax.draw_artist(spine)
        finally:
            if not keep:
                for artist in artists:
                    artist.remove()

    def render(self, draw, layer_key=None, draw_layer=None) -> bytes:
        """PNG of the frame, the layer ``draw_layer(figure)`` (cached under ``layer_key``) and the moving
        artists ``draw(figure)``; both callables add artists to the figure and return them (removed after)."""
        with self._lock:
            if layer_key is None:
                base = self.frame
            elif layer_key in self.layers:
                base = self.layers[layer_key]
                self.layers.move_to_end(layer_key)
            else:
                self.canvas.restore_region(self.frame)
                self._draw(draw_layer(self.figure))
                base = self.layers[layer_key] = self.canvas.copy_from_bbox(self.figure.bbox)
                if len(self.layers) > self._MAX_LAYERS:
                    self.layers.popitem(last=False)
            self.canvas.restore_region(base)
            self._draw(draw(self.figure))
            buffer = io.BytesIO()
            Image.fromarray(np.asarray(self.canvas.buffer_rgba())).save(buffer, format="png", compress_level=1)
        return buffer.getvalue()


def _panels(n: int, panel: tuple[float, float], *, left=0.6, right=0.15, bottom=0.5, top=0.35, gap=0.25,
            shared_y: bool = True):
    """A figure of ``n`` side-by-side axes of ``panel`` = (width, height) inches with fixed margins in inches.

    Fixed margins instead of a layout engine: constrained layout costs several times the drawing itself.
    """
    n = max(n, 1)
    width, height = panel
    figure_width = left + n * width + (n - 1) * gap + right
    figure_height = bottom + height + top
    figure = Figure(figsize=(figure_width, figure_height), dpi=PNG_DPI)
    figure.subplots_adjust(left=left / figure_width, right=1 - right / figure_width, bottom=bottom / figure_height,
                           top=1 - top / figure_height, wspace=gap / width)
    axes = figure.subplots(1, n, squeeze=False, sharey=shared_y)[0]
    for ax in axes:
        ax.tick_params(labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(5))  # a log scale set later replaces it
        if shared_y and ax is not axes[0]:
            ax.tick_params(labelleft=False)
    return figure, axes


def _quantized_up(value: float, factor: float = np.sqrt(2.0)) -> float:
    """The smallest factor^k (k integer) ≥ value: nearby settings share a cached frame."""
    return float(factor ** np.ceil(np.log(max(value, 1e-12)) / np.log(factor)))


def _status_text(trajectory: Trajectory) -> str:
    if trajectory.diverged_at is not None:
        return f"diverged at step {trajectory.diverged_at}"
    return trajectory.status


def trajectory_half_width(trajectories: list[Trajectory]) -> float:
    """Half-width of the square shown: the start and every non-diverged iterate (up to 4× the start's size),
    rounded up to a power of √2.

    Parameters
    ----------
    trajectories : list of Trajectory
        The runs, at least one (the first one's start sets the scale).

    Returns
    -------
    float
    """
    start = float(np.max(np.abs(trajectories[0].points[0, :2]))) or 1.0
    reach = [float(np.max(np.abs(t.points[:, :2]))) for t in trajectories if t.status != "diverged"]
    return _quantized_up(1.1 * min(max([start] + reach), 4 * start))


def _inside_frame(points: np.ndarray, half: float) -> np.ndarray:
    """The path up to its first point outside the frame (that point included; the axes clip the segment)."""
    outside = np.flatnonzero(np.max(np.abs(points), axis=1) > half)
    return points if outside.size == 0 else points[:outside[0] + 1]


@lru_cache(maxsize=16)
def _trajectory_scene(methods: tuple, half: float, panel_size: float) -> Scene:
    figure, axes = _panels(len(methods), (panel_size, panel_size))
    for ax, method in zip(axes, methods):
        ax.set_xlim(-half, half)
        ax.set_ylim(-half, half)
        ax.set_aspect("equal")
        ax.set_title(LABELS[method], color=COLORS[method], fontsize=11, fontweight="bold")
        ax.set_xlabel("along u₂", fontsize=9)
    axes[0].set_ylabel("along u₁ (sharpest)", fontsize=9)
    if not methods:
        axes[0].set_axis_off()
        axes[0].text(0.5, 0.5, "choose at least one method", ha="center", va="center")
    return Scene(figure)


def trajectory_png(problem: problems.Quadratic, trajectories: list[Trajectory], *, panel_size: float = PANEL_SIZE) -> bytes:
    """One panel per method: the iterates on span(u₁, u₂) (u₂ across, u₁ up) over the contours of f there.

    Parameters
    ----------
    problem : Quadratic
        The explorer's diagonal quadratic, eigenvalues largest first.
    trajectories : list of Trajectory
        The runs, one panel each.
    panel_size : float, optional
        Panel side in inches (default :data:`PANEL_SIZE`).

    Returns
    -------
    bytes
        A PNG.
    """
    methods = tuple(t.method for t in trajectories)
    half = trajectory_half_width(trajectories) if trajectories else 1.0
    lam1, lam2 = (float(v) for v in problem.eigenvalues[:2])
    scene = _trajectory_scene(methods, half, panel_size)

    def contours(figure):
        # Level sets ½(λ₁u² + λ₂v²) = c are ellipses with semi-axes √(2c/λ₂) across and √(2c/λ₁) up.
        levels = 0.5 * (lam1 + lam2) * half ** 2 * np.linspace(0.0, 1.0, 12)[1:] ** 2
        artists = []
        for ax in figure.axes[:len(methods)]:
            ellipses = EllipseCollection(2 * np.sqrt(2 * levels / lam2), 2 * np.sqrt(2 * levels / lam1),
                                         np.zeros_like(levels), units="xy", offsets=np.zeros((levels.size, 2)),
                                         offset_transform=ax.transData, facecolors="none", edgecolors="#bbbbbb",
                                         linewidths=0.7)
            artists.append(ax.add_collection(ellipses, autolim=False))
            artists += ax.plot(0, 0, "+", color="black", ms=8)
        return artists

    def paths(figure):
        artists = []
        for ax, trajectory in zip(figure.axes, trajectories):
            points = _inside_frame(trajectory.points[:, :2], half)
            color = COLORS[trajectory.method]
            artists += ax.plot(points[:, 1], points[:, 0], "-o", color=color, lw=0.9, ms=2.2, alpha=0.9)
            artists += ax.plot(points[0, 1], points[0, 0], "o", color="black", ms=5)
            if trajectory.status != "diverged":
                artists += ax.plot(points[-1, 1], points[-1, 0], "*", color="black", ms=10)
            artists.append(ax.text(0.03, 0.97, _status_text(trajectory), transform=ax.transAxes, va="top",
                                   fontsize=9, color=color, bbox=dict(fc="white", ec="none", alpha=0.85, pad=1.5)))
        return artists

    return scene.render(paths, layer_key=(lam1, lam2), draw_layer=contours)


@lru_cache(maxsize=16)
def _curves_scene(methods: tuple, steps: int, loss_range: tuple, gamma_top: float, width: float) -> Scene:
    figure, (loss_ax, gamma_ax) = _panels(2, ((width - 3.0) / 2, 2.0), right=1.95, gap=0.6, shared_y=False)
    loss_ax.set_yscale("log")
    loss_ax.set_ylim(*loss_range)
    gamma_ax.set_ylim(0.0, gamma_top)
    for ax, title in ((loss_ax, "loss f(x_t)"), (gamma_ax, "renormalization factor γ_t")):
        ax.set_xlim(0, steps)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step t", fontsize=9)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=COLORS[m], lw=1.4, ls="-" if m in RENORMALIZED else ":",
                      label=LABELS[m] + ("" if m in RENORMALIZED else " (γ ≡ 1)")) for m in methods]
    if "susam" in methods:
        handles.append(Patch(facecolor=COLORS["susam"], alpha=0.15, label="SUSAM's γ range (O4)"))
    if handles:
        figure.legend(handles=handles, loc="upper right", fontsize=8, frameon=False)
    return Scene(figure)


def curves_png(problem: problems.Quadratic, trajectories: list[Trajectory], *, steps: int,
               width: float | None = None) -> bytes:
    """f(x_t) (log scale) and γ_t against t for every method; the band is O4's γ range of SUSAM.

    Parameters
    ----------
    problem : Quadratic
        The explorer's diagonal quadratic, eigenvalues largest first.
    trajectories : list of Trajectory
        The runs.
    steps : int
        The x-axis extent (the requested step budget).
    width : float or None, optional
        Figure width in inches; None (default) for max(9.3, ``PANEL_SIZE`` per method).

    Returns
    -------
    bytes
        A PNG.
    """
    methods = tuple(t.method for t in trajectories)
    width = max(9.3, PANEL_SIZE * len(methods)) if width is None else width
    start = max(float(trajectories[0].loss[0]), 1e-300) if trajectories else 1.0
    decade = np.floor(np.log10(start))
    loss_range = (10.0 ** (decade - 15), 10.0 ** (decade + 5))
    gamma_max = max([1.0] + [float(np.max(t.gamma)) for t in trajectories if t.gamma.size])
    scene = _curves_scene(methods, int(steps), loss_range, 1.1 * _quantized_up(gamma_max, 2.0), width)

    def draw(figure):
        loss_ax, gamma_ax = figure.axes
        artists = []
        for trajectory in trajectories:
            color = COLORS[trajectory.method]
            if trajectory.method == "susam":
                lower, upper = gamma_bounds(problem, "susam", trajectory.rho, 1.0)
                artists.append(gamma_ax.axhspan(lower[0], upper[0], color=color, alpha=0.12, lw=0))
            loss = np.clip(trajectory.loss, loss_range[0] / 10, loss_range[1] * 10)
            artists += loss_ax.plot(trajectory.steps, loss, color=color, lw=1.4)
            style = "-" if trajectory.method in RENORMALIZED else ":"
            artists += gamma_ax.plot(trajectory.steps[:-1], trajectory.gamma, style, color=color, lw=1.4)
        return artists

    return scene.render(draw)


def _edges(centers: np.ndarray, log: bool) -> np.ndarray:
    values = np.log(centers) if log else centers
    middle = (values[1:] + values[:-1]) / 2
    edges = np.concatenate([[2 * values[0] - middle[0]], middle, [2 * values[-1] - middle[-1]]])
    return np.exp(edges) if log else np.maximum(edges, 0.0)


def _fraction(value: float) -> str:
    return f"1/{round(1 / value)}" if value < 1 else f"{value:g}"


@lru_cache(maxsize=16)
def _regime_scene(methods: tuple, x_limits: tuple, y_limits: tuple, panel_size: float) -> Scene:
    """The maps' frame, in units where every quadratic looks alike: x = ηλ_max/2, y = ρλ_max."""
    figure, axes = _panels(len(methods), (panel_size, panel_size * 0.85), bottom=0.8)
    ticks = [2.0 ** k for k in range(-8, 8) if x_limits[0] <= 2.0 ** k <= x_limits[1]]
    for ax, method in zip(axes, methods):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FixedFormatter([_fraction(t) for t in ticks]))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(*x_limits)
        ax.set_ylim(*y_limits)
        ax.set_title(f"{LABELS[method]}: measured regimes", color=COLORS[method], fontsize=11, fontweight="bold")
        ax.set_xlabel("η in units of 2/λ_max", fontsize=9)
    axes[0].set_ylabel("ρ in units of 1/λ_max", fontsize=9)
    handles = plotting.status_handles() + [
        Line2D([], [], color="black", ls="--", lw=1.1, label="η = 2/λ_max (O1)"),
        Line2D([], [], color="black", lw=1.4, label="η = 2/(λ_max(1+ρλ_max)) (O2)"),
        Line2D([], [], marker="*", color="black", mec="white", ls="none", ms=11, label="current (η, ρ)")]
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    return Scene(figure)


def regime_png(problem: problems.Quadratic, methods, eta: float, rho: float, *, steps: int, x0, adaptive: bool = False,
               truncate: bool = False, panel_size: float = PANEL_SIZE) -> bytes:
    """One measured (η, ρ) map per method, GD's limit η = 2/λ_max, USAM's η_c(ρ), and the current point,
    with η in units of 2/λ_max and ρ in units of 1/λ_max.

    Parameters
    ----------
    problem : Quadratic
        The explorer's diagonal quadratic, eigenvalues largest first.
    methods : iterable of str
        The methods, one panel each.
    eta, rho : float
        The current learning rate (> 0) and radius (>= 0): the marked point, which the axes contain.
    steps : int
        Updates, >= 1.
    x0 : array_like
        Initial point of every run, shape ``(d,)``.
    adaptive, truncate : bool, optional
        The rule's options, as in :func:`samtheory.simulate` (default False).
    panel_size : float, optional
        Panel width in inches (default :data:`PANEL_SIZE`).

    Returns
    -------
    bytes
        A PNG.
    """
    methods = tuple(methods)
    lam_max = float(problem.eigenvalues[0])
    eta_unit = float(theory.gd_critical_learning_rate(lam_max))
    rho_unit = 1.0 / lam_max
    eta_axis, rho_axis = map_axes(lam_max, eta, rho)
    x_edges, y_edges = _edges(eta_axis, log=True) / eta_unit, _edges(rho_axis, log=False) / rho_unit
    limits = [float(f"{value:.10g}") for value in (x_edges[0], x_edges[-1], y_edges[-1])]  # one frame per range
    scene = _regime_scene(methods, tuple(limits[:2]), (0.0, limits[2]), panel_size)
    x0 = tuple(np.asarray(x0, dtype=float).tolist())
    layer_key = (tuple(problem.eigenvalues.tolist()), tuple(eta_axis.tolist()), tuple(rho_axis.tolist()), int(steps),
                 x0, bool(adaptive), bool(truncate))

    def maps(figure):
        colormap, norm = plotting.status_cmap()
        y_curve = np.linspace(0.0, y_edges[-1], 200)
        x_usam = theory.usam_critical_learning_rate(lam_max, y_curve * rho_unit) / eta_unit
        artists = []
        for ax, method in zip(figure.axes, methods):
            status = regime_status(problem, method, eta_axis, rho_axis, steps=steps, x0=x0, adaptive=adaptive,
                                   truncate=truncate)
            artists.append(ax.pcolormesh(x_edges, y_edges, status.T, cmap=colormap, norm=norm, shading="flat"))
            artists.append(ax.axvline(1.0, color="black", ls="--", lw=1.1))
            artists += ax.plot(x_usam, y_curve, color="black", lw=1.4)
        return artists

    def current_point(figure):
        return [ax.plot(eta / eta_unit, rho / rho_unit, marker="*", color="black", mec="white", ms=15, ls="none")[0]
                for ax in figure.axes[:len(methods)]]

    return scene.render(current_point, layer_key=layer_key, draw_layer=maps)
