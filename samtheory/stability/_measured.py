"""Measured stability regimes: status maps, thresholds by vectorized bisection, the comparison table."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from .. import _validation as check
from .. import theory
from .._limits import MAX_STEPS
from ..engine import simulate
from ..methods import BUILTIN_METHODS, resolve_method
from ..problems import as_problem, LeastSquares, Problem, Quadratic
from ..result import BOUNDED, CONVERGED, DIVERGED, STATUS_NAMES, Threshold, reasons
from ._analytic import EDGES, analytic_critical_learning_rate

__all__ = ["ClassificationRules", "RegimeMap", "regime_map", "MeasuredThreshold", "critical_learning_rate",
           "compare_regimes", "measured_rate"]

_POINT_STREAM = 0x53544142  # second word of the initial points' generator seed
_SMALLEST_MEANINGFUL = 1e-280  # below, gradient norms are near the subnormal range and their ratios meaningless
# Probes for the converged edge, as fractions of the non-divergent edge, in two stages: first next to it (where
# GD's and USAM's converged edges lie), then, for the ρ values still without a converged probe, further below.
_CONVERGED_PROBES = (np.array([1.0, 0.99]), np.array([0.9, 0.5, 0.1, 0.01]))
#: The smallest ``rtol``: a bracket's relative width must stay far above float64's resolution (2.2e-16) for
#: its geometric midpoints to be distinct numbers.
MIN_RTOL = 1e-12
#: The largest ``divergence_factor``: ln(1e100) = 230 makes the automatic budget 230/rtol steps already, and
#: a threshold factor·‖g_0‖ near float64's limit (1.8e308) would flag only overflow.
MAX_DIVERGENCE_FACTOR = 1e100
# Bisection phases of the non-divergent edge: a row's bracket is restarted at most twice (see
# _nondivergent_edge), so its cost is at most this many times that of one bisection.
_PHASES = 3


@dataclass(frozen=True)
class ClassificationRules:
    r"""How a configuration (η, ρ) is classified from simulations.

    Every configuration is run from ``n_points`` initial points (drawn from ``seed``; on a quadratic each has
    a component of modulus in [0.5, 1] on every eigenvector, random signs). A run *diverged* when ‖g(x_t)‖
    passed ``divergence_factor · max(‖g(x_0)‖, 1)`` or stopped being finite, *converged* when
    ‖g(x_T)‖ ≤ ``tol · ‖g(x_0)‖`` after T = ``steps`` updates, else it is *bounded*
    (:func:`samtheory.simulate`). A configuration is diverged if any run diverged, converged if every run
    converged, else bounded.

    ``divergence_steps`` is the step budget in which the non-divergent edge is measured (None: automatic,
    ⌈ln(divergence_factor)/rtol⌉ — enough for a run whose ‖g‖ grows by a factor 1 + 2·rtol per step, as GD's
    and USAM's do at (1 + rtol) times their threshold, to be flagged; see :func:`critical_learning_rate`).

    Limits: ``divergence_factor`` in (1, 1e100], ``steps`` and ``divergence_steps`` at most 10**12
    (:data:`samtheory._limits.MAX_STEPS`), and so is the automatic budget (a smaller ``rtol`` is refused).

    Attributes
    ----------
    steps : int
        Updates T per run, >= 1 (default 2000); also the converged edge's step budget.
    tol : float
        Relative gradient-norm tolerance of *converged*, > 0 (default 1e-6).
    divergence_factor : float
        Divergence threshold factor, > 1 (default 1e6).
    n_points : int
        Initial points per configuration, >= 1 (default 3).
    seed : int
        Seed of the initial points, >= 0 (default 0).
    divergence_steps : int or None
        Step budget of the non-divergent edge, >= 1 (at least ``steps`` is used); None (default): automatic.
    """

    steps: int = 2000
    tol: float = 1e-6
    divergence_factor: float = 1e6
    n_points: int = 3
    seed: int = 0
    divergence_steps: int | None = None

    def __post_init__(self):
        _check_steps("steps", self.steps)
        if check.as_float_array("tol", self.tol, positive=True).ndim:
            raise ValueError(f"tol must be a scalar, got {self.tol!r:.80}")
        check.as_divergence_factor("divergence_factor", self.divergence_factor, MAX_DIVERGENCE_FACTOR)
        check.as_positive_int("n_points", self.n_points)
        check.as_positive_int("seed", self.seed, minimum=0)
        if self.divergence_steps is not None:
            _check_steps("divergence_steps", self.divergence_steps)

    def divergence_budget(self, rtol: float) -> int:
        """Steps in which the non-divergent edge is measured at relative tolerance ``rtol`` (``ValueError``
        when the automatic budget ⌈ln(divergence_factor)/rtol⌉ exceeds 10**12 steps)."""
        if self.divergence_steps is not None:
            return max(self.divergence_steps, self.steps)
        budget = math.log(self.divergence_factor) / rtol
        if budget > MAX_STEPS:
            raise ValueError(f"rtol = {rtol:g} makes the non-divergent edge's step budget "
                             f"ceil(ln(divergence_factor)/rtol) = {budget:.3g}, more than {MAX_STEPS:.0e} steps; "
                             f"use rtol >= {math.log(self.divergence_factor) / MAX_STEPS:.2g} or set divergence_steps")
        return max(self.steps, math.ceil(budget))


def _check_steps(name, value) -> int:
    value = check.as_positive_int(name, value)
    if value > MAX_STEPS:
        raise ValueError(f"{name} must be <= {MAX_STEPS:.0e}, got {value}")
    return value


def _check_rtol(rtol) -> float:
    """``rtol`` as validated by the callers (a float in (0, 1)), at least :data:`MIN_RTOL`."""
    if not rtol >= MIN_RTOL:
        raise ValueError(f"rtol must be >= {MIN_RTOL:g} (float64 cannot resolve a finer bracket), got {rtol!r}")
    return rtol


def _bisection_rounds(eta_range, rtol: float) -> int:
    """R = ⌈log2(ln(high/low)/ln(1 + rtol))⌉: the rounds a geometric bisection of ``eta_range`` takes until
    upper/lower − 1 ≤ ``rtol`` (each round halves ln(upper/lower))."""
    low, high = float(eta_range[0]), float(eta_range[1])
    return max(0, math.ceil(math.log2(math.log(high / low) / math.log1p(rtol))))


def _rules(rules, **overrides) -> ClassificationRules:
    if rules is None:
        rules = ClassificationRules()
    elif not isinstance(rules, ClassificationRules):
        raise ValueError(f"rules must be a ClassificationRules or None, got {rules!r}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return replace(rules, **overrides) if overrides else rules


def initial_points(problem: Problem, n_points: int, seed: int = 0) -> np.ndarray:
    """``n_points`` starting points, shape (n_points, d), each with a component on every eigenvector.

    On a quadratic (Quadratic, LeastSquares): x* + Σ_i s_i c_i u_i with random signs s_i and moduli c_i
    uniform in [0.5, 1]. Otherwise ``problem.initial_point(seed + k)`` (a Gaussian draw, which has a component
    on every fixed direction with probability 1).

    Parameters
    ----------
    problem : Problem
        The problem.
    n_points : int
        Number of points, >= 1.
    seed : int, optional
        Seed, >= 0 (default 0).

    Returns
    -------
    ndarray
        Shape ``(n_points, d)``.
    """
    n_points = check.as_positive_int("n_points", n_points)
    seed = check.as_positive_int("seed", seed, minimum=0)
    form = problem.quadratic_form()
    if form is not None:
        rng = np.random.default_rng([seed, _POINT_STREAM])
        shape = (n_points, problem.dim)
        coefficients = rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 1.0, shape)
        _, vectors, center = form
        return center + (coefficients if vectors is None else coefficients @ vectors.T)
    return np.stack([np.asarray(problem.initial_point(seed + k), dtype=np.float64) for k in range(n_points)])


def _base(base) -> dict:
    """The base-optimizer keyword arguments of simulate (momentum, nesterov, weight_decay), checked to be numbers."""
    if not base:
        return {}
    momentum, nesterov, weight_decay = theory._base_arguments(base.get("momentum", 0.0), base.get("nesterov", False),
                                                              base.get("weight_decay", 0.0))
    if momentum.ndim or weight_decay.ndim:
        raise ValueError(f"momentum and weight_decay must be numbers, got shapes {momentum.shape}, {weight_decay.shape}")
    options = {"momentum": float(momentum), "nesterov": nesterov, "weight_decay": float(weight_decay)}
    if base.get("schedule") is not None:
        options["schedule"] = base["schedule"]  # simulate checks it
    return options


#: Whether the measurements use the compiled path and early stop where they keep every status (a switch for
#: benchmarks/bench_regime.py, which times both in one run).
FAST_PATH = True


def _early_stop_keeps_status(problem, spec, points, tol, options) -> bool:
    r"""Whether stopping a run once ‖g(x_t)‖ ≤ tol·‖g(x_0)‖ provably leaves its status unchanged.

    True for gd and usam, non-adaptive, without a base optimizer or schedule, on a problem with a linear
    gradient (a quadratic form: Quadratic, LeastSquares), when every starting point has |λ_i z_i(0)| >
    tol·‖g(x_0)‖ along every eigenvector with λ_i ≠ 0 (z = eigen-coordinates of x − x*). Then each term of
    ‖g(x_t)‖² = Σ λ_i² z_i(0)² f_i^{2t} (f_i the rule's per-eigenvector factor) is monotone; meeting the
    tolerance forces every |f_i| < 1, after which ‖g‖ only decreases, so the run is converged at T as well
    (tests/test_early_stop.py). Not for sam, ssam, susam (not linear; measured there, not proven).
    """
    if spec.kind not in ("gd", "usam") or options.get("adaptive") or type(problem) not in (Quadratic, LeastSquares):
        return False
    if options.get("momentum") or options.get("weight_decay") or options.get("schedule") is not None:
        return False
    eigenvalues, vectors, center = problem.quadratic_form()
    z = points - center if vectors is None else (points - center) @ vectors
    components = np.abs(eigenvalues * z)
    g0 = np.linalg.norm(components, axis=1, keepdims=True)
    return bool(np.all((components > tol * g0) | (eigenvalues == 0)))


class _Runner:
    """Runs batches of (η, ρ) for one problem and method from the rules' initial points; counts the work."""

    def __init__(self, problem, method, rules: ClassificationRules, x0, adaptive, truncate, base=None, executor=None):
        as_problem("problem", problem)
        self.method = resolve_method(method)  # ValueError for an unknown method, before any work
        self.name = self.method.name
        self.problem, self.rules = problem, rules
        if x0 is None:
            self.points = initial_points(problem, rules.n_points, rules.seed)
        else:
            points = check.as_float_array("x0", x0)
            if points.ndim == 1:
                points = points[None]
            if points.ndim != 2 or points.shape[1] != problem.dim:
                raise ValueError(f"x0 must have shape ({problem.dim},) or (n_points, {problem.dim}), "
                                 f"got {points.shape}")
            self.points = points
        # simulate checks them; the base optimizer's hyperparameters are numbers shared by the whole batch
        self.options = {"adaptive": adaptive, "truncate": truncate, **_base(base)}
        if executor is not None:  # simulate checks it
            self.options["executor"] = executor
        self.early_stop = FAST_PATH and _early_stop_keeps_status(problem, self.method, self.points, rules.tol,
                                                                 self.options)
        self.config_steps = 0

    def run(self, eta, rho, steps, record_every=0):
        """Simulate the batch eta ⊗ rho (broadcast shape S) from every point: result shape S + (n_points,)."""
        eta, rho = np.broadcast_arrays(np.asarray(eta, dtype=np.float64), np.asarray(rho, dtype=np.float64))
        shape = eta.shape + (len(self.points),)
        eta, rho = np.broadcast_to(eta[..., None], shape), np.broadcast_to(rho[..., None], shape)
        result = simulate(self.problem, self.method, eta, rho, steps=steps, x0=self.points, tol=self.rules.tol,
                          divergence_factor=self.rules.divergence_factor, record_every=record_every,
                          early_stop=self.early_stop and not record_every,
                          backend="auto" if FAST_PATH else "numpy", **self.options)
        ran = np.where(result.diverged_at >= 0, np.minimum(result.diverged_at + 1, steps), steps)
        if self.early_stop and not record_every:
            ran = np.where(result.converged_at >= 0, np.minimum(result.converged_at + 1, ran), ran)
        self.config_steps += int(ran.sum())
        return result

    def status(self, eta, rho, steps):
        """Aggregate status over the initial points, shape S."""
        return aggregate_status(self.run(eta, rho, steps).status)


def aggregate_status(point_status: np.ndarray) -> np.ndarray:
    """Status over the last axis (initial points): diverged if any diverged, converged if all converged."""
    return np.where((point_status == DIVERGED).any(axis=-1), DIVERGED,
                    np.where((point_status == CONVERGED).all(axis=-1), CONVERGED, BOUNDED))


@dataclass
class RegimeMap:
    """Status of a method over an (η, ρ) grid. ``status`` has shape (len(eta), len(rho)); ``point_status``
    adds the initial-point axis; ``simulation`` is the underlying :class:`~samtheory.SimulationResult`.

    Attributes
    ----------
    method : str
        The method's name.
    eta, rho : ndarray
        The 1-D grid axes.
    status : ndarray of int
        Aggregate status (see :class:`ClassificationRules`), shape ``(len(eta), len(rho))``.
    point_status : ndarray of int
        Status of each run, shape ``(len(eta), len(rho), n_points)``.
    rules : ClassificationRules
        The rules used.
    simulation : SimulationResult
        The underlying simulation, batch shape that of ``point_status``.
    """

    method: str
    eta: np.ndarray
    rho: np.ndarray
    status: np.ndarray
    point_status: np.ndarray
    rules: ClassificationRules
    simulation: object = field(repr=False)

    @property
    def status_name(self) -> np.ndarray:
        return np.asarray(STATUS_NAMES)[self.status]

    def grid_edge(self, edge: str = "nondivergent") -> np.ndarray:
        """Per ρ, the largest grid η of the first run (from the smallest η) of non-divergent (or converged)
        configurations; NaN where there is none. Its resolution is the grid spacing."""
        check.choice("edge", edge, EDGES)
        ok = self.status != DIVERGED if edge == "nondivergent" else self.status == CONVERGED
        order = np.argsort(self.eta)
        ok = ok[order]
        first = np.argmax(ok, axis=0)
        # Index of the last success of the run that starts at `first`.
        after = np.where(np.arange(ok.shape[0])[:, None] >= first[None, :], ~ok, False)
        stop = np.where(after.any(axis=0), np.argmax(after, axis=0), ok.shape[0]) - 1
        return np.where(ok.any(axis=0), self.eta[order][np.maximum(stop, 0)], np.nan)


def regime_map(problem, method, eta, rho, *, rules: ClassificationRules | None = None, steps=None, tol=None,
               divergence_factor=None, n_points=None, seed=None, x0=None, adaptive: bool = False,
               truncate: bool = False, momentum=0.0, nesterov: bool = False, weight_decay=0.0,
               executor=None) -> RegimeMap:
    r"""Status (converged / bounded / diverged) of ``method`` on every (η, ρ) of a grid, in one simulate call.

    ``eta`` and ``rho`` are 1-D (scalars allowed); the batch is η × ρ × initial points. Classification by
    ``rules`` (:class:`ClassificationRules`; keyword arguments override its fields). ``x0``: None (the
    rules' points), a point (d,), or points (n_points, d).

    Parameters
    ----------
    problem : Problem
        The problem.
    method : str, MethodSpec or callable
        The method.
    eta : array_like
        Learning rates, scalar or 1-D, > 0.
    rho : array_like
        Radii, scalar or 1-D, >= 0.
    rules : ClassificationRules or None, optional
        The classification rules; None (default) for ``ClassificationRules()``.
    steps, tol, divergence_factor, n_points, seed : optional
        Override the fields of ``rules`` of the same name; None (default) keeps the rules' values.
    x0 : None or array_like, optional
        Initial points: None (default: :func:`initial_points` of the rules), a point ``(d,)`` or points
        ``(n_points, d)``.
    adaptive, truncate : bool, optional
        The rule's options, as in :func:`samtheory.simulate` (default False).
    momentum, nesterov, weight_decay : optional
        The base optimizer of :func:`samtheory.simulate` (numbers; default none, O15).
    executor : None or concurrent.futures.Executor, optional
        Runs the simulations' chunks as tasks of this executor (a process pool, a Dask cluster's
        ``Client.get_executor()``; see :func:`samtheory.simulate`); bit-identical results. None (default): threads.

    Returns
    -------
    RegimeMap
    """
    rules = _rules(rules, steps=steps, tol=tol, divergence_factor=divergence_factor, n_points=n_points, seed=seed)
    eta = np.atleast_1d(check.as_float_array("eta", eta, positive=True))
    rho = np.atleast_1d(check.as_float_array("rho", rho, nonnegative=True))
    for label, values in (("eta", eta), ("rho", rho)):
        if values.ndim != 1:
            raise ValueError(f"{label} must be a scalar or 1-D array, got shape {values.shape}")
    base = {"momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay}
    runner = _Runner(problem, method, rules, x0, adaptive, truncate, base, executor)
    result = runner.run(eta[:, None], rho[None, :], rules.steps)
    return RegimeMap(runner.name, eta, rho, aggregate_status(result.status), result.status, rules, result)


@dataclass(frozen=True)
class MeasuredThreshold(Threshold):
    """A measured edge of a method's regime for each ρ (``source="measured"``), by bisection over η.

    ``value`` is the largest η found to pass the edge's test (non-divergent, or converged) — equal to
    ``lower`` — and ``upper`` the smallest found to fail it, with upper/lower − 1 ≤ ``tolerance``; NaN where
    no edge was found (``reason`` says why). ``steps``: the step budget of the test; ``config_steps``:
    configuration-updates simulated to measure it (both edges, when measured together).

    Attributes
    ----------
    method, edge, source, value, lower, upper, tolerance, reason, relative
        As in :class:`~samtheory.result.Threshold`; ``tolerance`` is the bisection's ``rtol``.
    rho : ndarray
        The radii, 1-D; ``value`` and the bracket have its shape.
    steps : int
        The step budget of the edge's test.
    rules : ClassificationRules
        The rules used.
    config_steps : int
        Configuration-updates simulated.
    """

    rho: np.ndarray | None = None
    steps: int = 0
    rules: ClassificationRules | None = None
    config_steps: int = 0


def _default_eta_range(problem) -> tuple[float, float]:
    beta = getattr(problem, "beta", None)
    if not beta:
        raise ValueError(f"eta_range is required for {type(problem).__name__}, which has no smoothness constant beta")
    return 1e-4 * 2 / beta, 4 * 2 / beta


def _bisect(runner, rho, lower, upper, rows, rtol, passes, steps):
    """Geometric bisection of [lower, upper] (updated in place on ``rows``) until upper/lower − 1 ≤ rtol, all
    active ρ in one simulate call of ``steps`` steps per round; ``passes(status)`` is the edge's test. At most
    :func:`_bisection_rounds` of the widest bracket rounds (and none once a midpoint cannot be told apart from
    an end)."""
    active = rows[upper[rows] / lower[rows] - 1 > rtol]
    if not active.size:
        return
    for _ in range(_bisection_rounds((1.0, float(np.max(upper[active] / lower[active]))), rtol)):
        middle = np.sqrt(lower[active] * upper[active])
        splits = (middle > lower[active]) & (middle < upper[active])  # else float64 cannot split it further
        ok = passes(runner.status(middle, rho[active], steps))
        lower[active[ok]] = middle[ok]
        upper[active[~ok]] = middle[~ok]
        active = active[(upper[active] / lower[active] - 1 > rtol) & splits]
        if not active.size:
            break


def _no_edge_reasons(runner, rho) -> list[str]:
    """Per ρ, why no learning rate is non-divergent, where a quadratic's spectrum shows it ("" elsewhere).

    Along an eigenvector with λ < 0, the component z of every built-in non-adaptive rule is multiplied each
    step by 1 − ηλ(1 + ρλ) (usam), 1 − ηγλ(1 + ρλ) (susam, γ > 0), 1 − ηλ (gd) or 1 − ηλ(1 + ρλ/‖g‖) (sam;
    ssam with η·γ): > 1 at every η > 0 when λ(1 + ρλ) < 0, resp. always, resp. once ‖g‖ > ρ|λ|, which
    |z| > ρ ensures and which then persists. So |z| grows geometrically and the run diverges at every η.
    """
    reasons = [""] * rho.size
    spectrum, _ = _problem_spectrum(runner.problem)
    name = runner.method.kind
    if spectrum is None or name is None or runner.options["adaptive"] or not np.any(spectrum < 0):
        return reasons
    negative = spectrum[spectrum < 0]
    lam_min = float(np.min(negative))
    for i, r in enumerate(rho):
        if name == "gd" or r == 0:
            growing = negative
            why = "|1 - eta*lambda| > 1"
        elif name in ("usam", "susam"):
            growing = negative[negative * (1 + r * negative) < 0]
            why = "|1 - eta*lambda*(1 + rho*lambda)| > 1 for -1/rho < lambda < 0"
        else:  # sam, ssam: the growth needs |z| > rho along that eigenvector, from every initial point
            growing = [lam for lam, size in zip(spectrum, _eigen_components(runner)) if lam < 0 and size > r]
            why = "a component larger than rho along it keeps growing"
        if len(growing):
            reasons[i] = (f"no stable learning rate: the spectrum has a negative eigenvalue (min {lam_min:.6g}) and "
                          f"{runner.name}'s iterates grow along its eigenvector at every eta > 0 ({why})")
    return reasons


def _eigen_components(runner) -> np.ndarray:
    """Smallest modulus over the initial points of each eigen-component of x − x* (the quadratic's eigenbasis)."""
    _, vectors, center = runner.problem.quadratic_form()
    shifted = runner.points - center
    coefficients = shifted if vectors is None else shifted @ vectors
    return np.min(np.abs(coefficients), axis=0)


def _nondivergent_edge(runner, rho, rtol, eta_range):
    r"""Vectorized bisection for the non-divergent edge, with a step budget that grows as the bracket shrinks.

    A run that diverges within t steps diverges within any longer budget (same trajectory), so an upper
    bracket found with a short budget stays valid. A lower one found with t steps may be a slow divergence
    (within ≈ ln(100·factor)/(2t) of the edge for growth like GD's): it is re-checked in the same call as the
    midpoints once the budget has grown 16-fold, and with the full budget before the end; one that fails
    becomes the upper bracket and the lower one moves down by twice that bias bound. From then on that row is
    bisected with the full budget only (its new brackets need no re-check), so a row's bracket restarts at
    most twice: after its first failed re-check, and from the bottom of eta_range if the lowered bracket
    fails too (where a failure ends the row with a reason).

    Cost, predictable from the arguments: at most 1 + 3·(R + 1) simulate calls, R = ⌈log2(ln(high/low) /
    ln(1 + rtol))⌉ (:func:`_bisection_rounds`), each of at most 2·len(rho)·n_points runs of at most
    ``rules.divergence_budget(rtol)`` steps. A row still open after that many rounds ends with a reason.
    """
    _check_rtol(rtol)
    budget = runner.rules.divergence_budget(rtol)
    log_factor = math.log(100 * runner.rules.divergence_factor)
    n = rho.size
    lower, upper = np.full(n, eta_range[0]), np.full(n, eta_range[1])
    lower_steps = np.zeros(n, dtype=np.int64)  # the budget with which each lower bracket passed (0: not run)
    full_budget_only = np.zeros(n, dtype=bool)  # rows whose lower bracket failed a re-check once
    reason = _no_edge_reasons(runner, rho)
    valid = np.array([not r for r in reason], dtype=bool)
    if valid.any():
        top = runner.status(upper[valid], rho[valid], budget)
        for i in np.flatnonzero(valid)[top != DIVERGED]:
            reason[i] = f"no divergence up to eta = {eta_range[1]:.6g} (the top of eta_range) in {budget} steps"
            valid[i] = False

    def steps_for(width):
        # ∝ 1/width: a midpoint is misjudged only within ~width/8 of the edge; full budget from width 4·rtol on.
        return int(min(budget, max(runner.rules.steps // 4, math.ceil(budget * 4 * rtol / width))))

    max_calls = _PHASES * (_bisection_rounds(eta_range, rtol) + 1)
    for _ in range(max_calls):
        rows = np.flatnonzero(valid)
        bisect = rows[upper[rows] / lower[rows] - 1 > rtol]
        if bisect.size and full_budget_only[bisect].any():
            steps = budget
        else:
            steps = steps_for(float(np.min(np.log(upper[bisect] / lower[bisect])))) if bisect.size else budget
        stale = rows[(lower_steps[rows] < budget) & ((16 * lower_steps[rows] <= steps) | (steps == budget))]
        if not bisect.size and not stale.size:
            break
        eta = np.concatenate([np.sqrt(lower[bisect] * upper[bisect]), lower[stale]])
        status = runner.status(eta, np.concatenate([rho[bisect], rho[stale]]), steps)
        ok_middle, ok_lower = status[:bisect.size] != DIVERGED, status[bisect.size:] != DIVERGED
        failed = stale[~ok_lower]
        passed = stale[ok_lower]
        lower_steps[passed] = steps
        # Midpoints of rows whose lower bracket just failed are discarded: that bracket no longer holds.
        keep = ~np.isin(bisect, failed)
        bisect, ok_middle, middle = bisect[keep], ok_middle[keep], eta[:keep.size][keep]
        lower[bisect[ok_middle]], lower_steps[bisect[ok_middle]] = middle[ok_middle], steps
        upper[bisect[~ok_middle]] = middle[~ok_middle]
        for i in failed:
            if lower_steps[i] == 0 and lower[i] == eta_range[0]:
                reason[i] = f"diverges at the bottom of eta_range (eta = {eta_range[0]:.6g}) within {steps} steps"
                valid[i] = False
                continue
            upper[i] = lower[i]
            if full_budget_only[i]:  # the lowered bracket failed too: restart from the bottom
                lower[i] = eta_range[0]
            else:
                lower[i] = max(eta_range[0], lower[i] * math.exp(-max(2 * rtol, log_factor / max(lower_steps[i], 1))))
            lower_steps[i] = 0
            full_budget_only[i] = True
    else:
        rows = np.flatnonzero(valid)
        for i in rows[(upper[rows] / lower[rows] - 1 > rtol) | (lower_steps[rows] < budget)]:
            reason[i] = (f"no edge to rtol = {rtol:g} within {max_calls} bisection rounds of {budget} steps: "
                         "the run's divergence keeps moving with the step budget")
    return _finish(runner, "nondivergent", rho, lower, upper, reason, rtol, budget)


def _converged_edge(runner, rho, rtol, nondivergent: MeasuredThreshold):
    """Bisection for the largest η at which every run converges within ``rules.steps`` steps, starting from
    probes below the non-divergent edge (the largest converged probe and the probe above it). Cost: two probe
    calls, then at most :func:`_bisection_rounds` calls, each of at most 4·len(rho)·n_points runs of
    ``rules.steps`` steps."""
    _check_rtol(rtol)
    steps = runner.rules.steps
    lower, upper = nondivergent.lower.copy(), nondivergent.upper.copy()
    reason = list(nondivergent.reason)
    rows = np.flatnonzero(np.isfinite(nondivergent.value))
    pending, found = rows, []
    above = nondivergent.upper.copy()  # the smallest probe above, per ρ: it did not converge
    for fractions in _CONVERGED_PROBES:
        if not pending.size:
            break
        probes = nondivergent.lower[pending][None, :] * fractions[:, None]
        converged = runner.status(probes, rho[pending][None, :], steps) == CONVERGED
        hit = converged.any(axis=0)
        first = np.argmax(converged, axis=0)
        for j in np.flatnonzero(hit):
            i = pending[j]
            lower[i] = probes[first[j], j]
            upper[i] = probes[first[j] - 1, j] if first[j] > 0 else above[i]
        above[pending] = probes[-1]
        found.extend(pending[hit])
        pending = pending[~hit]
    probed = ", ".join(f"{fraction:g}" for fraction in np.concatenate(_CONVERGED_PROBES))
    for i in pending:
        reason[i] = f"no run converged within {steps} steps at eta/eta_nondivergent in {{{probed}}}"
    rows = np.array(sorted(found), dtype=np.int64)
    _bisect(runner, rho, lower, upper, rows, rtol, lambda status: status == CONVERGED, steps)
    return _finish(runner, "converged", rho, lower, upper, reason, rtol, steps)


def _finish(runner, edge, rho, lower, upper, reason, rtol, steps):
    found = np.array([not r for r in reason], dtype=bool)
    value = np.where(found, lower, np.nan)
    return MeasuredThreshold(runner.name, edge, "measured", value, np.where(found, lower, np.nan),
                             np.where(found, upper, np.nan), rtol, np.array(reason, dtype=object),
                             rho=rho.copy(), steps=steps, rules=runner.rules, config_steps=runner.config_steps)


def _measure(problem, method, rho, edges, rtol, eta_range, rules, x0, adaptive, truncate, base=None, executor=None):
    rho = np.atleast_1d(check.as_float_array("rho", rho, nonnegative=True))
    if rho.ndim != 1:
        raise ValueError(f"rho must be a scalar or 1-D array, got shape {rho.shape}")
    rtol = check.as_scalar("rtol", rtol, positive=True)
    if not rtol < 1:
        raise ValueError(f"rtol must be in (0, 1), got {rtol!r}")
    if eta_range is None:
        eta_range = _default_eta_range(problem)
    else:
        eta_range = check.as_float_array("eta_range", eta_range, positive=True)
        if eta_range.shape != (2,) or not eta_range[0] < eta_range[1]:
            raise ValueError(f"eta_range must be (low, high) with 0 < low < high, got {eta_range!r}")
    eta_range = (float(eta_range[0]), float(eta_range[1]))
    runner = _Runner(problem, method, rules, x0, adaptive, truncate, base, executor)
    measured = {"nondivergent": _nondivergent_edge(runner, rho, rtol, eta_range)}
    if "converged" in edges:
        measured["converged"] = _converged_edge(runner, rho, rtol, measured["nondivergent"])
    return measured


def critical_learning_rate(problem, method, rho, *, edge: str = "nondivergent", rtol: float = 1e-3,
                           eta_range=None, rules: ClassificationRules | None = None, steps=None, tol=None,
                           divergence_factor=None, divergence_steps=None, n_points=None, seed=None, x0=None,
                           adaptive: bool = False, truncate: bool = False, momentum=0.0, nesterov: bool = False,
                           weight_decay=0.0, executor=None) -> MeasuredThreshold:
    r"""Measured critical learning rate of ``method`` for every ρ at once, by vectorized bisection over η.

    ``edge="nondivergent"``: the largest η at which no run diverges within the divergence budget
    (:meth:`ClassificationRules.divergence_budget`, ⌈ln(divergence_factor)/rtol⌉ steps by default).
    ``edge="converged"``: the largest η at which every run converges within ``steps`` steps (a budget-
    dependent edge: GD's lies ≈ ln(1/tol)/(2·steps) below 2/λ_max; SAM has none).

    The bracket starts at ``eta_range`` (default (10⁻⁴, 4)·2/β), each round evaluates the geometric midpoint
    of every ρ's bracket in one :func:`samtheory.simulate` call, and it stops when upper/lower − 1 ≤ ``rtol``,
    the stated tolerance. For the non-divergent edge the early rounds use fewer steps (∝ 1/bracket width);
    divergence found early stays valid, and the final lower brackets are re-checked with the full budget.
    The converged edge starts from probes at fractions of the non-divergent edge. Bisection assumes one
    crossing: :func:`regime_map` shows the whole picture.

    Parameters
    ----------
    problem : Problem
        The problem; without ``eta_range``, one with a smoothness constant ``beta``.
    method : str, MethodSpec or callable
        The method.
    rho : array_like
        Radii, scalar or 1-D, >= 0.
    edge : {"nondivergent", "converged"}, optional
        The edge to measure (default ``"nondivergent"``).
    rtol : float, optional
        Relative tolerance of the bracket, in (0, 1) (default 1e-3).
    eta_range : (float, float) or None, optional
        Initial bracket (low, high) with 0 < low < high; None (default) for (10⁻⁴, 4)·2/β.
    rules : ClassificationRules or None, optional
        The classification rules; None (default) for ``ClassificationRules()``.
    steps, tol, divergence_factor, divergence_steps, n_points, seed : optional
        Override the fields of ``rules`` of the same name; None (default) keeps the rules' values.
    x0 : None or array_like, optional
        Initial points: None (default: :func:`initial_points` of the rules), a point ``(d,)`` or points
        ``(n_points, d)``.
    adaptive, truncate : bool, optional
        The rule's options, as in :func:`samtheory.simulate` (default False).
    momentum, nesterov, weight_decay : optional
        The base optimizer of :func:`samtheory.simulate` (numbers; default none, O15).
    executor : None or concurrent.futures.Executor, optional
        Runs the simulations' chunks as tasks of this executor (a process pool, a Dask cluster's
        ``Client.get_executor()``; see :func:`samtheory.simulate`); bit-identical results. None (default): threads.

    Returns
    -------
    MeasuredThreshold
        One entry per ρ.
    """
    problem = as_problem("problem", problem)
    check.choice("edge", edge, EDGES)
    rules = _rules(rules, steps=steps, tol=tol, divergence_factor=divergence_factor, n_points=n_points, seed=seed,
                   divergence_steps=divergence_steps)
    base = {"momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay}
    return _measure(problem, method, rho, (edge,), rtol, eta_range, rules, x0, adaptive, truncate, base, executor)[edge]


def _problem_spectrum(problem):
    form = problem.quadratic_form()
    if form is None:
        return None, f"no closed form for {type(problem).__name__} (not a quadratic)"
    return form[0], ""


def _ratio(numerator, denominator):
    if numerator is None or denominator is None or not np.isfinite(numerator) or not np.isfinite(denominator):
        return None
    return float(numerator / denominator)


def _finite(value):
    return float(value) if value is not None and np.isfinite(value) else None


def compare_regimes(problem, methods="all", rhos=(0.05,), *, rtol: float = 1e-3, eta_range=None,
                    rules: ClassificationRules | None = None, steps=None, tol=None, divergence_factor=None,
                    divergence_steps=None, n_points=None, seed=None, x0=None, adaptive: bool = False,
                    truncate: bool = False, momentum=0.0, nesterov: bool = False, weight_decay=0.0,
                    schedule=None, executor=None) -> list[dict]:
    r"""Analytic against measured critical learning rates, one row per (method, ρ) — the regime table.

    Each row: ``method``, ``rho``; the non-divergent edge — ``analytic_eta`` (None without closed form),
    ``empirical_eta``, ``relative_error`` = |empirical − analytic|/analytic (None without analytic value),
    ``tolerance`` (= ``rtol``), ``width_vs_gd`` = empirical_eta / GD's empirical edge; the converged-only edge
    within ``steps`` updates — ``analytic_converged_eta``, ``empirical_converged_eta``,
    ``converged_relative_error``, ``converged_width_vs_gd``; ``steps``, ``divergence_steps``; ``note``
    (why a value is None). GD is measured too when not listed (it ignores ρ). For ``ssam`` and ``susam`` in
    d > 1 the converged edge is not compared (ill-posed, O13: their rate is flat in η); every row instead
    carries ``rate_eta`` (half GD's measured edge), ``analytic_rate`` (:func:`asymptotic_rate`),
    ``measured_rate`` (:func:`measured_rate` over 2000 steps) and ``rate_relative_error``.

    Parameters
    ----------
    problem : Problem
        The problem (see :func:`critical_learning_rate`).
    methods : str or sequence, optional
        ``"all"`` (default: the built-in methods), one method, or a non-empty list of methods.
    rhos : array_like, optional
        Radii, >= 0 (default (0.05,)).
    rtol, eta_range, rules, steps, tol, divergence_factor, divergence_steps, n_points, seed : optional
        As in :func:`critical_learning_rate`.
    x0 : None or array_like, optional
        Initial points: None (default: :func:`initial_points` of the rules), a point ``(d,)`` or points
        ``(n_points, d)``.
    adaptive, truncate : bool, optional
        The rule's options, as in :func:`samtheory.simulate` (default False).
    momentum, nesterov, weight_decay : optional
        The base optimizer of :func:`samtheory.simulate` (numbers; default none, O15).
    schedule : None, str or callable, optional
        Learning-rate schedule of every run (:func:`samtheory.simulate`); the closed forms are then not compared.
    executor : None or concurrent.futures.Executor, optional
        Runs the simulations' chunks as tasks of this executor (a process pool, a Dask cluster's
        ``Client.get_executor()``; see :func:`samtheory.simulate`); bit-identical results. None (default): threads.

    Returns
    -------
    list of dict
        The rows, method by method, ρ by ρ.
    """
    rules = _rules(rules, steps=steps, tol=tol, divergence_factor=divergence_factor, n_points=n_points, seed=seed,
                   divergence_steps=divergence_steps)
    if isinstance(methods, str):
        methods = list(BUILTIN_METHODS) if methods == "all" else [methods]
    methods = list(methods)
    if not methods:
        raise ValueError("methods must name at least one method, got an empty list")
    names = [resolve_method(m).name for m in methods]
    base = _base({"momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay, "schedule": schedule})
    constant_base = {key: value for key, value in base.items() if key != "schedule"}
    if schedule is not None:
        spectrum, spectrum_reason = None, "the closed forms are for a constant learning rate, not under a schedule"
    rho = np.atleast_1d(check.as_float_array("rhos", rhos, nonnegative=True))
    if schedule is None:
        spectrum, spectrum_reason = _problem_spectrum(problem)
    measured = {}
    for name, method in zip(names, methods):
        ill_posed = _converged_edge_ill_posed(method, spectrum)
        measured[name] = _measure(problem, method, rho, EDGES[:1] if ill_posed else EDGES, rtol, eta_range, rules, x0,
                                  adaptive, truncate, base, executor)
        if ill_posed:
            missing = np.full(rho.shape, np.nan)
            measured[name]["converged"] = replace(measured[name]["nondivergent"], edge="converged", value=missing,
                                                  lower=missing, upper=missing,
                                                  reason=np.full(rho.shape, _ILL_POSED, dtype=object))
    if "gd" in measured:
        gd = {edge: measured["gd"][edge].value for edge in EDGES}
    else:
        reference = _measure(problem, "gd", np.zeros(1), EDGES, rtol, eta_range, rules, x0, False, False, base, executor)
        gd = {edge: np.broadcast_to(reference[edge].value, rho.shape) for edge in EDGES}
    rows = []
    for name, method in zip(names, methods):
        analytic = {}
        for edge in EDGES:
            if spectrum is None:
                analytic[edge] = (None, spectrum_reason)
            else:
                result = analytic_critical_learning_rate(method, spectrum, rho, edge, adaptive=adaptive, **constant_base,
                                                         truncate=truncate)
                analytic[edge] = ([_finite(v) for v in result.value], result.reason_text)
        for i, r in enumerate(rho):
            row = {"method": name, "rho": float(r)}
            notes = []
            for edge, prefix in (("nondivergent", ""), ("converged", "converged_")):
                values, analytic_reason = analytic[edge]
                a = None if values is None else values[i]
                m = measured[name][edge]
                e = _finite(m.value[i])
                if a is None and analytic_reason:
                    notes.append(f"{edge} analytic: {analytic_reason}")
                if e is None:
                    notes.append(f"{edge} measured: {m.reason[i]}")
                if edge == "nondivergent":
                    row.update(analytic_eta=a, empirical_eta=e)
                    row["relative_error"] = None if a is None or e is None else abs(e - a) / a
                    row["tolerance"] = rtol
                    row["width_vs_gd"] = _ratio(e, gd[edge][i])
                else:
                    row.update(analytic_converged_eta=a, empirical_converged_eta=e)
                    row["converged_relative_error"] = None if a is None or e is None else abs(e - a) / a
                    row["converged_width_vs_gd"] = _ratio(e, gd[edge][i])
            row.update(_rate_columns(problem, method, spectrum, 0.5 * gd["nondivergent"][i], float(r), rules, x0,
                                     adaptive, truncate, constant_base, base.get("schedule"), notes, executor))
            row["steps"] = rules.steps
            row["divergence_steps"] = rules.divergence_budget(rtol)
            row["note"] = "; ".join(dict.fromkeys(notes))
            rows.append(row)
    return rows


_ILL_POSED = ("not compared: a converged-within-T-steps edge is ill-posed for a renormalized method in d > 1 "
              "(its rate is flat in η, O13); see the rate columns")
_RATE_STEPS = 2000


def _converged_edge_ill_posed(method, spectrum) -> bool:
    return bool(resolve_method(method).renormalized) and (spectrum is None or np.shape(spectrum)[-1] > 1)


def _rate_columns(problem, method, spectrum, eta, rho, rules, x0, adaptive, truncate, base, schedule, notes,
                  executor=None) -> dict:
    """The O13 rate comparison at η = half GD's measured edge: ``rate_eta``, ``analytic_rate``, ``measured_rate``,
    ``rate_relative_error`` (None where a value does not exist; ``notes`` gets why)."""
    columns = {"rate_eta": _finite(eta), "analytic_rate": None, "measured_rate": None, "rate_relative_error": None}
    if columns["rate_eta"] is None:
        return columns
    spec = resolve_method(method)
    if spectrum is not None and spec.kind is not None and not adaptive and np.all(spectrum >= 0) and np.any(spectrum > 0):
        predicted = theory.asymptotic_rate(spec, spectrum, eta, rho, **base)
        if predicted is None:
            notes.append(f"rate analytic: no closed form for {spec.name} with momentum or weight decay")
        else:
            columns["analytic_rate"] = _finite(predicted)
    rate = measured_rate(problem, method, eta, rho, steps=_RATE_STEPS, rules=rules, x0=x0, adaptive=adaptive,
                         truncate=truncate, **base, schedule=schedule, executor=executor)
    columns["measured_rate"] = _finite(rate)
    if columns["measured_rate"] is None:
        notes.append("rate measured: " + ("diverged" if np.isinf(rate) else "‖g‖ reached the subnormal range"))
    a, m = columns["analytic_rate"], columns["measured_rate"]
    columns["rate_relative_error"] = None if a is None or m is None else abs(m - a) / a
    return columns


def measured_rate(problem, method, eta, rho, *, steps: int = 4000, window: int | None = None,
                  rules: ClassificationRules | None = None, n_points=None, seed=None, x0=None, adaptive: bool = False,
                  truncate: bool = False, momentum=0.0, nesterov: bool = False, weight_decay=0.0,
                  schedule=None, executor=None) -> np.ndarray:
    r"""Measured contraction factor per step of ‖g‖ over the last ``window`` of ``steps`` updates (worst over
    the initial points): (‖g(x_T)‖/‖g(x_{T−w})‖)^{1/w}; inf where a run diverged. Compare
    :func:`asymptotic_rate`; NaN where ‖g‖ fell below 1e-280 (subnormal floats). ``eta``, ``rho`` broadcast;
    ``window`` (default steps/2) must divide ``steps``.

    Parameters
    ----------
    problem : Problem
        The problem.
    method : str, MethodSpec or callable
        The method.
    eta, rho : array_like
        Learning rate(s) > 0 and radius (radii) >= 0; broadcast together.
    steps : int, optional
        Updates T, >= 1 (default 4000; overrides ``rules.steps``).
    window : int or None, optional
        The window w, >= 1, dividing ``steps``; None (default) for ``steps // 2``.
    rules : ClassificationRules or None, optional
        Supplies the initial points and tolerances; None (default) for ``ClassificationRules()``.
    n_points, seed : optional
        Override the fields of ``rules`` of the same name; None (default) keeps the rules' values.
    x0 : None or array_like, optional
        Initial points: None (default: :func:`initial_points` of the rules), a point ``(d,)`` or points
        ``(n_points, d)``.
    adaptive, truncate : bool, optional
        The rule's options, as in :func:`samtheory.simulate` (default False).
    momentum, nesterov, weight_decay : optional
        The base optimizer of :func:`samtheory.simulate` (numbers; default none, O15).
    schedule : None, str or callable, optional
        Learning-rate schedule, as in :func:`samtheory.simulate` (default constant).
    executor : None or concurrent.futures.Executor, optional
        Runs the simulations' chunks as tasks of this executor (a process pool, a Dask cluster's
        ``Client.get_executor()``; see :func:`samtheory.simulate`); bit-identical results. None (default): threads.

    Returns
    -------
    ndarray
        The rate, shape the broadcast of ``eta`` and ``rho``.
    """
    steps = check.as_positive_int("steps", steps)
    window = steps // 2 if window is None else check.as_positive_int("window", window)
    if window == 0 or steps % window:
        raise ValueError(f"window must divide steps = {steps}, got {window!r}")
    rules = _rules(rules, steps=steps, n_points=n_points, seed=seed)
    eta = check.as_float_array("eta", eta, positive=True)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    base = {"momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay, "schedule": schedule}
    result = _Runner(problem, method, rules, x0, adaptive, truncate, base, executor).run(eta, rho, steps,
                                                                          record_every=window)
    start, end = result.history.grad_norm[-2], result.history.grad_norm[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = (end / start) ** (1.0 / window)
    # Near the bottom of the float64 range the ratio is meaningless (subnormal numbers): NaN.
    rate = np.where(np.minimum(start, end) < _SMALLEST_MEANINGFUL, np.nan, rate)
    rate = np.where(result.status == DIVERGED, np.inf, rate)
    return np.where(np.isnan(rate).any(axis=-1), np.nan, rate.max(axis=-1))
