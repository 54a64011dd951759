r"""Uniform stability (Hardt, Recht & Singer 2016, "Train faster, generalize better"; docs/theory.md O10).

Two measurements:

- **Expansivity** of a method's one-step map G(w) = w − η d(w): the largest ‖G(w) − G(w')‖ / ‖w − w'‖ over
  sampled pairs (a lower bound on the Lipschitz constant), the exact value on quadratics for the linear maps
  (GD: max|1 − ηλ|, USAM: max|1 − ηλ − ηρλ²|), and the analytic constants of O10
  (:func:`samtheory.theory.analytic_expansivity`).
- **Algorithmic stability** (:func:`stability_experiment`): train on data sets S and S' that differ in one
  example, with the same initial point and the same minibatch sequence, and follow the parameter divergence
  ‖w_t − w'_t‖, the loss difference sup_z |f(w_t; z) − f(w'_t; z)| (over held-out z) and the generalization
  gap R_test(w_t) − R_S(w_t), beside SGD's bounds E‖w_T − w'_T‖ ≤ (2L/n) Σ_t η_t and
  ε_stab ≤ (2L²/n) Σ_t η_t (HRS Theorem 3.8, convex L-Lipschitz β-smooth losses, η ≤ 2/β).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import _validation as check
from ..datasets import make_logistic_regression
from ..engine import check_step, simulate
from .. import theory
from ..methods import BUILTIN_METHODS, METHODS, resolve_method
from ..problems import as_problem, LogisticRegression, Problem, Quadratic, SmoothConvexInterpolant
from ..result import DIVERGED

__all__ = ["Expansivity", "spectral_expansivity", "expansivity", "StabilitySplit",
           "synthetic_split", "breast_cancer_split", "StabilityResult", "stability_experiment", "DATASETS"]


# -- expansivity ---------------------------------------------------------------------------------------------
def spectral_expansivity(problem: Quadratic, method: str, eta, rho=0.0) -> np.ndarray:
    r"""Exact Lipschitz constant of the (linear) one-step map on a quadratic: ‖I − ηH − ηρH²‖₂ for USAM,
    ‖I − ηH‖₂ for GD, from the eigenvalues λ_i (max_i |1 − ηλ_i(1 + ρλ_i)|). Broadcasts over η and ρ.

    Parameters
    ----------
    problem : Quadratic
        The quadratic (``ValueError`` for any other problem).
    method : str or MethodSpec
        A method with the structure of ``gd`` or ``usam`` (linear one-step maps).
    eta : array_like
        Learning rate(s), > 0.
    rho : array_like, optional
        Radius (radii), >= 0 (default 0; ignored for ``gd``).

    Returns
    -------
    ndarray
        Shape the broadcast of ``eta`` and ``rho``.
    """
    if not isinstance(problem, Quadratic):
        raise ValueError(f"problem must be a Quadratic for the spectral expansivity, got {problem!r}")
    kind = resolve_method(method).kind
    if kind not in ("gd", "usam"):
        raise ValueError(f"method must be 'gd' or 'usam' (linear one-step maps on a quadratic), got {method!r}")
    eta = check.as_float_array("eta", eta, positive=True)
    rho = check.as_float_array("rho", rho, nonnegative=True) if kind == "usam" else np.zeros(())
    eta, rho = check.broadcast(("eta", "rho"), eta, rho)
    factors = 1.0 - eta[..., None] * theory.usam_curvature(problem.eigenvalues, rho[..., None])
    return np.max(np.abs(factors), axis=-1)


@dataclass(frozen=True)
class Expansivity:
    """Expansivity of one step of ``method``; arrays have the broadcast shape of (eta, rho).

    ``measured``: max over ``n_pairs`` sampled pairs of ‖G(w) − G(w')‖/‖w − w'‖ (a lower bound on the
    Lipschitz constant); ``exact``: the spectral value on a quadratic for ``gd``/``usam`` (None otherwise);
    ``analytic``: :func:`samtheory.theory.analytic_expansivity` with the problem's β and μ (NaN where O10 gives none).

    Attributes
    ----------
    method : str
        The method's name.
    eta, rho : ndarray
        Learning rates and radii, broadcast together.
    measured : ndarray
        The largest sampled ratio.
    exact : ndarray or None
        The spectral value (quadratics, ``gd``/``usam``), else None.
    analytic : ndarray
        The O10 constant, NaN where none is known.
    n_pairs : int
        Sampled pairs per (η, ρ).
    radius : float
        Radius of the sampling ball.
    beta, mu : float
        The problem's smoothness (NaN if unknown) and curvature lower bound (0 if unknown or negative).
    """

    method: str
    eta: np.ndarray
    rho: np.ndarray
    measured: np.ndarray
    exact: np.ndarray | None
    analytic: np.ndarray
    n_pairs: int
    radius: float
    beta: float
    mu: float

    def to_records(self) -> list[dict]:
        exact = None if self.exact is None else self.exact.ravel()
        return [{"method": self.method, "eta": float(e), "rho": float(r), "measured": float(m),
                 "exact": None if exact is None else float(exact[k]),
                 "analytic": None if np.isnan(a) else float(a), "n_pairs": self.n_pairs}
                for k, (e, r, m, a) in enumerate(zip(self.eta.ravel(), self.rho.ravel(), self.measured.ravel(),
                                                     self.analytic.ravel()))]


def expansivity(problem: Problem, method, eta, rho=0.0, *, n_pairs: int = 512, radius: float = 1.0,
                center=None, seed: int = 0) -> Expansivity:
    r"""Measured Lipschitz constant of the one-step map w ↦ G(w) of ``method`` on ``problem`` (full gradient).

    Pairs: w uniform in the ball of ``radius`` around ``center`` (default: the problem's minimizer, else 0),
    w' = w + δ u with u a uniform direction and δ log-uniform in [1e-4, 1]·radius (near and far pairs). All
    pairs and all (η, ρ) run as one batch through the method's update rule. Same seed, same result.

    Parameters
    ----------
    problem : Problem
        The problem.
    method : str, MethodSpec or callable
        The method.
    eta : array_like
        Learning rate(s), > 0.
    rho : array_like, optional
        Radius (radii), >= 0 (default 0); broadcasts with ``eta``.
    n_pairs : int, optional
        Number of pairs, >= 1 (default 512).
    radius : float, optional
        Radius of the sampling ball, > 0 (default 1).
    center : None or array_like, optional
        Center of the ball, shape ``(d,)``; None (default): the minimizer if known, else 0.
    seed : int, optional
        Non-negative seed of the pairs (default 0).

    Returns
    -------
    Expansivity
    """
    problem = as_problem("problem", problem)
    spec = resolve_method(method)
    name, rule = spec.name, spec.rule
    check.check_rule_signature("method", name, rule, {})
    eta = check.as_float_array("eta", eta, positive=True)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    n_pairs = check.as_positive_int("n_pairs", n_pairs)
    radius = check.as_scalar("radius", radius, positive=True)
    d = problem.dim
    if center is None:
        center = problem.minimizer if problem.minimizer is not None else np.zeros(d)
    center = check.as_vector("center", center, size=d, match="the problem")
    seed = check.as_seed("seed", seed)
    eta, rho = check.broadcast(("eta", "rho"), eta, rho)
    if eta.size == 0:
        raise ValueError(f"eta and rho must not be empty, got shapes {eta.shape} and {rho.shape}")
    rng = np.random.default_rng(seed)
    direction = rng.standard_normal((n_pairs, d))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    w = center + direction * radius * rng.random((n_pairs, 1)) ** (1.0 / d)
    u = rng.standard_normal((n_pairs, d))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    w_other = w + u * radius * 10.0 ** rng.uniform(-4.0, 0.0, (n_pairs, 1))
    n_configs = eta.size
    points = np.concatenate([np.tile(w, (n_configs, 1)), np.tile(w_other, (n_configs, 1))])
    eta_rows = np.tile(np.repeat(eta.reshape(-1), n_pairs), 2)[:, None]
    rho_rows = np.tile(np.repeat(rho.reshape(-1), n_pairs), 2)[:, None]
    half = n_configs * n_pairs
    with np.errstate(all="ignore"):  # a map that overflows is reported as expansivity inf, never NaN
        moved = check_step(rule(points, problem.gradient_oracle(None), eta_rows, rho_rows), points,
                           f"update rule {name!r}").x
        ratio = (np.linalg.norm(moved[:half] - moved[half:], axis=1)
                 / np.linalg.norm(points[:half] - points[half:], axis=1))
    ratio[np.isnan(ratio)] = np.inf
    measured = ratio.reshape(n_configs, n_pairs).max(axis=1).reshape(eta.shape)
    beta = float(problem.beta) if problem.beta is not None else np.nan
    mu = float(max(problem.mu, 0.0)) if problem.mu is not None else 0.0
    quadratic = isinstance(problem, Quadratic)
    exact = spectral_expansivity(problem, spec, eta, rho) if quadratic and spec.kind in ("gd", "usam") else None
    analytic = (theory.analytic_expansivity(spec, eta, rho, beta=beta, mu=mu, quadratic=quadratic)
                if spec.kind is not None and np.isfinite(beta) else np.full(eta.shape, np.nan))
    return Expansivity(method=name, eta=eta.copy(), rho=rho.copy(), measured=measured, exact=exact,
                       analytic=analytic, n_pairs=n_pairs, radius=radius, beta=beta, mu=mu)


@dataclass(frozen=True)
class ExpansivityWitness:
    """A 2-D L-smooth convex function on which one USAM step expands the pair (x, x') by exactly κ(η, ρ) (O14).

    Attributes
    ----------
    problem : SmoothConvexInterpolant
        The function: piecewise quadratic, a Moreau envelope of a polyhedral function, Hessian LA = L aaᵀ around
        x and x' and LB = L bbᵀ around their ascent points, (aᵀb)² = ``fraction``.
    x, x_prime : ndarray
        The pair, shape (2,).
    eta, rho, L : float
        The step, the radius and the smoothness constant.
    kappa : float
        :func:`samtheory.theory.usam_expansivity` at (η, ρ, L).
    fraction : float
        :func:`samtheory.theory.usam_expansivity_fraction`: t* = (aᵀb)².
    """

    problem: SmoothConvexInterpolant
    x: np.ndarray
    x_prime: np.ndarray
    eta: float
    rho: float
    L: float
    kappa: float
    fraction: float

    def ratio(self) -> float:
        """‖T(x) − T(x')‖/‖x − x'‖ for one step T of the engine's ``usam`` on :attr:`problem`."""
        moved = simulate(self.problem, "usam", np.full(2, self.eta), self.rho, steps=1,
                         x0=np.stack([self.x, self.x_prime])).x
        return float(np.linalg.norm(moved[0] - moved[1]) / np.linalg.norm(self.x - self.x_prime))


def usam_expansivity_witness(eta: float, rho: float, *, L: float = 1.0, separation: float | None = None
                             ) -> ExpansivityWitness:
    r"""The function of docs/theory.md O14 that attains USAM's expansivity κ(η, ρ) over L-smooth convex f.

    With unit a = (1, 0), b = (√t*, √(1 − t*)), A = aaᵀ, B = bbᵀ, the map δ ↦ (I − ηLB(I + ρLA))δ has largest
    singular value κ (its determinant and Frobenius norm are O14's D and F). Its top right singular vector,
    scaled to ``separation``, is δ = x − x'. The first-order data are: x' = 0 with g(x') = q = (0.3, 0.7),
    x = δ with g(x) = q + LAδ; ascent points y' = ρq, y = x + ρ g(x) with g(y') = (1 + ρL/2)q and
    g(y) = g(y') + LB(y − y'); values quadratic within each pair (co-coercivity tight) and f(y') in the middle
    of the interval that the pair (x', y') allows. Every interpolation condition of L-smooth convex functions
    holds (the within-pair ones with equality, the cross ones strictly for ρ > 0 and a small separation), so
    :class:`~samtheory.problems.SmoothConvexInterpolant` through these four points is a valid f with
    ∇f = g there, and one USAM step maps x, x' to x − ηg(y), x' − ηg(y').

    Parameters
    ----------
    eta : float
        Learning rate, > 0.
    rho : float
        Radius, > 0.
    L : float, optional
        Smoothness constant, > 0 (default 1).
    separation : float or None, optional
        ‖x − x'‖, in (0, 0.01]; None (default) for min(1e-3, 10ρ²L): the cross conditions between the pairs
        have a margin of order ρ²L‖q‖², which the pairs' own extent must stay below. With the default, one
        engine step attains κ to 1e-8 relative for ρL >= 1e-3 (measured ≤ 7e-9 over η ∈ [0.05, 3]/L); below,
        the evaluation's rounding relative to the separation grows (1e-3 at ρL = 1e-4).

    Returns
    -------
    ExpansivityWitness
    """
    eta = check.as_scalar("eta", eta, positive=True)
    rho = check.as_scalar("rho", rho, positive=True)
    L = check.as_scalar("L", L, positive=True)
    separation = (min(1e-3, 10.0 * rho**2 * L) if separation is None
                  else check.as_scalar("separation", separation, positive=True))
    if separation > 0.01:
        raise ValueError(f"separation must be in (0, 0.01], got {separation!r}")
    t = float(theory.usam_expansivity_fraction(eta, rho, L=L))
    a, b = np.array([1.0, 0.0]), np.array([np.sqrt(t), np.sqrt(1.0 - t)])
    A, B = L * np.outer(a, a), L * np.outer(b, b)
    delta = separation * np.linalg.svd(np.eye(2) - eta * B @ (np.eye(2) + rho * A))[2][0]
    q = np.array([0.3, 0.7])
    x_prime, x = np.zeros(2), delta
    g_x = q + A @ delta
    y_prime, y = x_prime + rho * q, x + rho * g_x
    g_y_prime = (1.0 + 0.5 * rho * L) * q
    g_y = g_y_prime + B @ (y - y_prime)
    f_x = q @ delta + 0.5 * delta @ A @ delta
    gap = np.sum((g_y_prime - q) ** 2) / (2.0 * L)
    low, high = q @ (y_prime - x_prime) + gap, g_y_prime @ (y_prime - x_prime) - gap
    f_y_prime = 0.5 * (low + high)
    step = y - y_prime
    f_y = f_y_prime + g_y_prime @ step + 0.5 * step @ B @ step
    problem = SmoothConvexInterpolant(np.array([x, x_prime, y, y_prime]), np.array([g_x, q, g_y, g_y_prime]),
                                      np.array([f_x, 0.0, f_y, f_y_prime]), L=L)
    return ExpansivityWitness(problem=problem, x=x, x_prime=x_prime, eta=eta, rho=rho, L=L,
                              kappa=float(theory.usam_expansivity(eta, rho, L=L)), fraction=t)


# -- data sets S and S' ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StabilitySplit:
    """Training sets S (``train``) and S' (``perturbed``: S with example ``replaced_index`` replaced by a fresh
    draw) and a held-out ``test`` set, all :class:`~samtheory.problems.LogisticRegression` with one ``l2``.

    Attributes
    ----------
    name : str
        The data set's name (``"synthetic"``, ``"breast_cancer"``).
    train, perturbed, test : LogisticRegression
        S, S' and the test set.
    replaced_index : int
        The example of S replaced in S'.
    """

    name: str
    train: LogisticRegression
    perturbed: LogisticRegression
    test: LogisticRegression
    replaced_index: int


def _split(name, X, y, n_train, l2, replaced_index):
    """S = rows [0, n), replacement = row n, test = rows n+1 onwards."""
    replaced_index = check.as_positive_int("replaced_index", replaced_index, minimum=0)
    if not replaced_index < n_train:
        raise ValueError(f"replaced_index must be in [0, {n_train}), got {replaced_index!r}")
    X_perturbed, y_perturbed = X[:n_train].copy(), y[:n_train].copy()
    X_perturbed[replaced_index], y_perturbed[replaced_index] = X[n_train], y[n_train]
    return StabilitySplit(name=name, train=LogisticRegression(X[:n_train], y[:n_train], l2=l2),
                          perturbed=LogisticRegression(X_perturbed, y_perturbed, l2=l2),
                          test=LogisticRegression(X[n_train + 1:], y[n_train + 1:], l2=l2),
                          replaced_index=int(replaced_index))


def synthetic_split(n_samples: int = 200, dim: int = 10, *, l2: float = 1e-2, label_noise: float = 0.1,
                    n_test: int = 1000, replaced_index: int = 0, seed: int = 0) -> StabilitySplit:
    """S, S' and a test set from one draw of :func:`samtheory.datasets.make_logistic_regression` (one w_true).

    Parameters
    ----------
    n_samples : int, optional
        Size n of S, >= 2 (default 200).
    dim : int, optional
        Number of features, >= 1 (default 10).
    l2, label_noise : float, optional
        As in :func:`~samtheory.datasets.make_logistic_regression` (defaults 1e-2 and 0.1).
    n_test : int, optional
        Size of the test set, >= 1 (default 1000).
    replaced_index : int, optional
        The example replaced in S', in [0, n) (default 0).
    seed : int, optional
        Seed of the draw (default 0).

    Returns
    -------
    StabilitySplit
    """
    n_samples = check.as_positive_int("n_samples", n_samples, minimum=2)
    n_test = check.as_positive_int("n_test", n_test)
    data = make_logistic_regression(n_samples + 1 + n_test, dim, l2=l2, label_noise=label_noise, seed=seed)
    return _split("synthetic", data.features, data.targets, n_samples, data.l2, replaced_index)


def breast_cancer_split(n_train: int = 400, *, l2: float = 1e-2, replaced_index: int = 0,
                        seed: int = 0) -> StabilitySplit:
    """scikit-learn's breast-cancer data (569 × 30, shipped with the package, no download), features
    standardized (mean and scale of the whole set), rows shuffled by ``seed``; ``n_train`` rows form S, the
    next one replaces example ``replaced_index`` in S', the rest is the test set.

    Parameters
    ----------
    n_train : int, optional
        Size n of S, in [2, 567] (default 400).
    l2 : float, optional
        Ridge coefficient, >= 0 (default 1e-2).
    replaced_index : int, optional
        The example replaced in S', in [0, n) (default 0).
    seed : int, optional
        Seed of the shuffle (default 0).

    Returns
    -------
    StabilitySplit
    """
    try:
        from sklearn.datasets import load_breast_cancer
    except ImportError:
        raise ImportError("breast_cancer_split needs scikit-learn (pip install scikit-learn, "
                          "or pip install -e '.[test]')") from None
    n_train = check.as_positive_int("n_train", n_train, minimum=2)
    seed = check.as_seed("seed", seed)
    X, y = load_breast_cancer(return_X_y=True)
    if n_train > X.shape[0] - 2:
        raise ValueError(f"n_train must be <= {X.shape[0] - 2} (one replacement and one test example), got {n_train}")
    l2 = check.as_scalar("l2", l2, nonnegative=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    order = np.random.default_rng(seed).permutation(X.shape[0])
    return _split("breast_cancer", X[order], y[order].astype(np.float64), n_train, l2, replaced_index)


#: Named data sets for :func:`stability_experiment` (builders with their default sizes).
DATASETS = {"synthetic": synthetic_split, "breast_cancer": breast_cancer_split}


# -- the Hardt–Recht–Singer experiment ------------------------------------------------------------------------
@dataclass(frozen=True)
class StabilityResult:
    """The stability experiment. Per-method arrays have shape ``(len(methods), len(steps))``, means over the
    non-diverged trials; the ``*_trials`` arrays add a last axis of trials (NaN after a trial diverged).

    ``divergence``: ‖w_t − w'_t‖; ``loss_difference``: max over the test examples z of |f(w_t; z) − f(w'_t; z)|;
    ``generalization_gap``: R_test(w_t) − R_S(w_t) of the run on S (f the per-example objective, logistic loss
    plus (l2/2)‖w‖², whose L2 term cancels in the gap). ``parameter_bound`` = (2L/n) Σ_{s<t} η and
    ``stability_bound`` = (2L²/n) Σ_{s<t} η (shape ``(len(steps),)``), SGD's bounds of HRS Theorem 3.8, with
    L = ``lipschitz`` (see ``lipschitz_how``); they are proven for ``gd`` (SGD) with η ≤ 2/``beta_max`` only
    (``bound_applies``). ``lipschitz_measured`` is the largest per-example gradient norm seen at the
    recorded iterates (≤ L).

    Attributes
    ----------
    data : str
        The data set's name.
    methods : tuple of str
        The methods, in the order of the first axis.
    steps : ndarray of int
        The recorded steps (the last one included).
    eta, rho : float
        Learning rate and radius.
    batch_size : int or None
        Minibatch size (None: full batch).
    n_samples : int
        Size n of S.
    n_trials : int
        Number of trials.
    divergence, loss_difference, generalization_gap : ndarray
        Means over the non-diverged trials, shape ``(len(methods), len(steps))`` (NaN where all diverged).
    parameter_bound, stability_bound : ndarray
        SGD's HRS bounds, shape ``(len(steps),)``.
    lipschitz : float
        The Lipschitz bound L used by the bounds.
    lipschitz_measured : float
        The largest per-example gradient norm seen.
    lipschitz_how : str
        How L was computed, with its terms.
    beta_max : float
        max_i ‖x_i‖²/4 + l2, the per-example smoothness bound.
    bound_applies : bool
        Whether η ≤ 2/``beta_max`` (where the bounds are proven, for ``gd``).
    n_diverged : ndarray of int
        Diverged trials per method (on S or S').
    usam_parameter_bound, usam_stability_bound : ndarray
        USAM's bounds with κ in place of 1 (docs/theory.md O14,
        :func:`samtheory.theory.usam_uniform_stability_bound` with G = ``lipschitz`` and β = ``beta_max``), shape
        ``(len(steps),)``; the second is G times the first. Proven for ``usam`` with ``batch_size=1``
        (``usam_bound_applies``), for every η.
    usam_kappa : float
        κ(η, ρ) with L = ``beta_max``.
    usam_bound_applies : bool
        Whether ``batch_size`` is 1.
    divergence_trials, loss_difference_trials, generalization_gap_trials : ndarray
        Per trial, shape ``(len(methods), len(steps), n_trials)``.
    """

    data: str
    methods: tuple[str, ...]
    steps: np.ndarray
    eta: float
    rho: float
    batch_size: int | None
    n_samples: int
    n_trials: int
    divergence: np.ndarray
    loss_difference: np.ndarray
    generalization_gap: np.ndarray
    parameter_bound: np.ndarray
    stability_bound: np.ndarray
    lipschitz: float
    lipschitz_measured: float
    lipschitz_how: str
    beta_max: float
    bound_applies: bool
    n_diverged: np.ndarray
    divergence_trials: np.ndarray = field(repr=False)
    loss_difference_trials: np.ndarray = field(repr=False)
    generalization_gap_trials: np.ndarray = field(repr=False)
    usam_parameter_bound: np.ndarray = field(default=None, repr=False)
    usam_stability_bound: np.ndarray = field(default=None, repr=False)
    usam_kappa: float = float("nan")
    usam_bound_applies: bool = False

    def to_records(self) -> list[dict]:
        """One row per method: the values at the last step, beside the bounds. ``status`` is ``"ok"``, or
        ``"all_diverged"`` when every trial of the method diverged: its means are then undefined and are None
        (never NaN). USAM's κ bound (``usam_parameter_bound``, ``usam_stability_bound``, the same on every row,
        like SGD's) is None where it exceeds the float range; ``usam_bound_status`` is ``"ok"``, ``"vacuous"``
        (inf) or ``"not_proven"`` (batch size other than 1)."""
        def mean_at_end(values, m):
            value = float(values[m, -1])
            return value if np.isfinite(value) else None

        usam_bound = None if self.usam_parameter_bound is None else float(self.usam_parameter_bound[-1])
        finite = usam_bound is not None and np.isfinite(usam_bound)
        usam_status = "not_proven" if not self.usam_bound_applies else ("ok" if finite else "vacuous")
        usam = {"usam_kappa": self.usam_kappa if np.isfinite(self.usam_kappa) else None,
                "usam_parameter_bound": usam_bound if finite else None,
                "usam_stability_bound": self.lipschitz * usam_bound if finite else None,
                "usam_bound_status": usam_status}

        return [{"data": self.data, "method": name, "steps": int(self.steps[-1]), "eta": self.eta, "rho": self.rho,
                 "batch_size": self.batch_size, "n_trials": self.n_trials,
                 "status": "all_diverged" if int(self.n_diverged[m]) == self.n_trials else "ok",
                 "divergence": mean_at_end(self.divergence, m),
                 "parameter_bound": float(self.parameter_bound[-1]),
                 "loss_difference": mean_at_end(self.loss_difference, m),
                 "generalization_gap": mean_at_end(self.generalization_gap, m),
                 "stability_bound": float(self.stability_bound[-1]), "lipschitz": self.lipschitz,
                 "n_diverged": int(self.n_diverged[m]), **usam} for m, name in enumerate(self.methods)]


def _per_example_loss(problem: LogisticRegression, W: np.ndarray) -> np.ndarray:
    """f(w; z_i) = log(1 + exp(−y_i x_iᵀ w)) + (l2/2)‖w‖² for every row of W and example i: shape (B, n)."""
    out = np.logaddexp(0.0, -(W @ problem.features.T) * problem.targets)
    return out + 0.5 * problem.l2 * np.einsum("bi,bi->b", W, W)[:, None]


def _trajectory(problem, method, eta, rho, steps, record_every, trial_seeds, batch_size, x0):
    """Iterates at the recorded steps (K, trials, d), from one simulate call; trial r uses the seed
    ``trial_seeds[r]`` (shared by S and S', hence the same minibatches). Records from a configuration's
    divergence on are NaN (excluded from the means)."""
    result = simulate(problem, method, eta, rho, steps=steps, seed=trial_seeds, x0=x0, batch_size=batch_size,
                      record_every=record_every, record_iterates=True)
    checkpoints, iterates = result.history.steps, result.history.x
    if checkpoints[-1] != steps:
        checkpoints, iterates = np.r_[checkpoints, steps], np.concatenate([iterates, result.x[None]])
    diverged = result.status == DIVERGED
    iterates[(checkpoints[:, None] >= result.diverged_at[None, :]) & diverged[None, :]] = np.nan
    return checkpoints, iterates, diverged


def stability_experiment(data="synthetic", *, methods=BUILTIN_METHODS, eta: float = 0.05, rho: float = 0.05,
                         steps: int = 1000, batch_size: int | None = 1, n_trials: int = 10,
                         record_every: int | None = None, seed: int = 0, x0=None) -> StabilityResult:
    r"""Hardt–Recht–Singer algorithmic stability of every method on S and S' (one example replaced).

    ``data``: ``"synthetic"`` (default: :func:`synthetic_split`), ``"breast_cancer"``
    (:func:`breast_cancer_split`) or a :class:`StabilitySplit`. Both runs of a trial start at ``x0`` (default
    0) and use the same minibatch sequence (``samtheory.simulate`` with the same seeds; ``batch_size=None`` is
    full-batch GD). Iterates are recorded every ``record_every`` steps (default steps/20) and at the last step;
    trial r's minibatch seed is the r-th word drawn from SeedSequence(seed).

    The Lipschitz constant of the per-example objective over the visited region is bounded as
    L = max_i ‖x_i‖ + l2 · max_t ‖w_t‖: the logistic part has gradient σ(·) y_i x_i with σ ∈ (0, 1), the L2
    part l2·w, and max_t ‖w_t‖ is taken over every recorded iterate of every method, trial and data set.

    Parameters
    ----------
    data : str or StabilitySplit, optional
        A name in :data:`DATASETS` (default ``"synthetic"``) or a split.
    methods : str or sequence of str, optional
        Registered method names, at least one (default: the built-in methods).
    eta : float, optional
        Learning rate, > 0 (default 0.05).
    rho : float, optional
        Radius, >= 0 (default 0.05).
    steps : int, optional
        Updates T, >= 1 (default 1000).
    batch_size : int or None, optional
        Minibatch size (default 1: SGD); None for full-batch gradients.
    n_trials : int, optional
        Number of trials, >= 1 (default 10).
    record_every : int or None, optional
        Recording interval, >= 1; None (default) for ``max(1, steps // 20)``.
    seed : int, optional
        Non-negative seed of the trials' minibatch seeds (default 0).
    x0 : None or array_like, optional
        Initial point, shape ``(d,)``; None (default) for 0.

    Returns
    -------
    StabilityResult
    """
    if isinstance(data, str):
        check.choice("data", data, tuple(DATASETS))
        split = DATASETS[data]()
    elif isinstance(data, StabilitySplit):
        split = data
    else:
        raise ValueError(f"data must be one of {', '.join(map(repr, DATASETS))} or a StabilitySplit, got {data!r:.80}")
    if isinstance(methods, str):
        methods = (methods,)
    try:
        methods = tuple(methods)
    except TypeError:
        raise check.InputTypeError(f"methods must be a method name or a sequence of them, got {methods!r:.80}") from None
    if not methods:
        raise ValueError("methods must name at least one method, got an empty sequence")
    for name in methods:
        check.choice("methods", name, tuple(METHODS))
    eta = check.as_scalar("eta", eta, positive=True)
    rho = check.as_scalar("rho", rho, nonnegative=True)
    steps = check.as_positive_int("steps", steps)
    n_trials = check.as_positive_int("n_trials", n_trials)
    record_every = max(1, steps // 20) if record_every is None else check.as_positive_int("record_every", record_every)
    seed = check.as_seed("seed", seed)
    d, n = split.train.dim, split.train.n_samples
    if batch_size is not None:
        batch_size = check.as_positive_int("batch_size", batch_size)
        if batch_size > n:
            raise ValueError(f"batch_size must be <= n_samples = {n}, got {batch_size}")
    x0 = np.zeros(d) if x0 is None else check.as_vector("x0", x0, size=d, match="the data")
    trial_seeds = np.random.SeedSequence(seed).generate_state(n_trials).astype(np.int64)
    n_records = np.arange(0, steps + 1, record_every).size + (steps % record_every != 0)

    n_methods = len(methods)
    divergence = np.empty((n_methods, n_records, n_trials))
    loss_difference = np.empty_like(divergence)
    gap = np.empty_like(divergence)
    n_diverged = np.zeros(n_methods, dtype=np.int64)
    largest_norm, measured_lipschitz = float(np.linalg.norm(x0)), 0.0
    for m, name in enumerate(methods):
        # batch_size=None: the full gradient, the same for every trial; simulate it once and copy.
        checkpoints, w, diverged = _trajectory(split.train, name, eta, rho, steps, record_every, trial_seeds,
                                               batch_size, x0)
        _, w_prime, diverged_prime = _trajectory(split.perturbed, name, eta, rho, steps, record_every, trial_seeds,
                                                 batch_size, x0)
        n_diverged[m] = int(np.sum(diverged | diverged_prime))
        divergence[m] = np.linalg.norm(w - w_prime, axis=-1)
        flat, flat_prime = w.reshape(-1, d), w_prime.reshape(-1, d)
        with np.errstate(invalid="ignore"):
            difference = _per_example_loss(split.test, flat) - _per_example_loss(split.test, flat_prime)
            loss_difference[m] = np.max(np.abs(difference), axis=1).reshape(n_records, n_trials)
            gap[m] = (split.test.loss(flat) - split.train.loss(flat)).reshape(n_records, n_trials)
        finite = np.isfinite(flat).all(axis=1) & np.isfinite(flat_prime).all(axis=1)
        if finite.any():
            visited = np.r_[flat[finite], flat_prime[finite]]
            largest_norm = max(largest_norm, float(np.max(np.linalg.norm(visited, axis=1))))
            measured_lipschitz = max(measured_lipschitz, _largest_example_gradient(split.train, flat[finite]))
    features = np.r_[split.train.features, split.perturbed.features[split.replaced_index][None]]
    feature_norm = float(np.max(np.linalg.norm(features, axis=1)))
    lipschitz = feature_norm + split.train.l2 * largest_norm
    beta_max = float(np.max(np.sum(features * features, axis=1))) / 4.0 + split.train.l2
    cumulative_eta = eta * checkpoints.astype(np.float64)
    usam_bound = theory.usam_uniform_stability_bound(eta, rho, checkpoints, n_samples=n, lipschitz=lipschitz,
                                                     beta=beta_max)

    def mean(values):
        with np.errstate(invalid="ignore"):
            counts = np.sum(np.isfinite(values), axis=-1)
            return np.where(counts > 0, np.nansum(values, axis=-1) / np.maximum(counts, 1), np.nan)

    return StabilityResult(
        data=split.name, methods=methods, steps=checkpoints, eta=eta, rho=rho, batch_size=batch_size, n_samples=n,
        n_trials=n_trials, divergence=mean(divergence), loss_difference=mean(loss_difference),
        generalization_gap=mean(gap), parameter_bound=2 * lipschitz / n * cumulative_eta,
        stability_bound=2 * lipschitz ** 2 / n * cumulative_eta, lipschitz=lipschitz,
        lipschitz_measured=measured_lipschitz,
        lipschitz_how=(f"L = max_i ||x_i|| + l2 * max_t ||w_t|| = {feature_norm:.4g} + {split.train.l2:g} * "
                       f"{largest_norm:.4g} (max over the examples of S and S', and over every recorded iterate)"),
        beta_max=beta_max, bound_applies=bool(eta <= 2.0 / beta_max), n_diverged=n_diverged,
        divergence_trials=divergence, loss_difference_trials=loss_difference, generalization_gap_trials=gap,
        usam_parameter_bound=usam_bound, usam_stability_bound=lipschitz * usam_bound,
        usam_kappa=float(theory.usam_expansivity(eta, rho, L=beta_max)),
        usam_bound_applies=batch_size == 1)


def _largest_example_gradient(problem: LogisticRegression, W: np.ndarray) -> float:
    """max over rows w of W and examples i of ‖∇f(w; z_i)‖ = ‖−σ(−y_i x_iᵀw) y_i x_i + l2 w‖."""
    X, y = problem.features, problem.targets
    weights = -y / (1.0 + np.exp(np.clip((W @ X.T) * y, -500, 500)))  # (B, n): −σ(−y xᵀw) y
    gradients = weights[:, :, None] * X[None] + problem.l2 * W[:, None, :]
    return float(np.max(np.linalg.norm(gradients, axis=-1)))
