"""Linearization of the one-step update map: exact Jacobians where smooth, central differences elsewhere."""

from __future__ import annotations

import numpy as np

from .. import _validation as check
from .. import theory
from ..engine import check_step
from ..methods import _row_norm, resolve_method
from ..problems import as_problem

__all__ = ["jacobian", "spectral_radius"]

# Central differences: error O(h²) from the third derivative plus O(ε/h) from rounding, balanced at h ≈ ε^(1/3).
_DEFAULT_RELATIVE_STEP = float(np.finfo(np.float64).eps ** (1 / 3))
#: A difference step must span at least this many float spacings of every coordinate of x: below that the
#: step itself is rounded by more than 1% and rounding dominates the differences.
_MIN_STEP_SPACINGS = 100
#: Longest orbit :func:`spectral_radius` follows (a Jacobian per step): enough for any cycle worth linearizing.
_MAX_PERIOD = 10_000


def _check_point(problem, x) -> np.ndarray:
    return check.as_vector("x", x, size=problem.dim, match="the problem")


def _norm(v: np.ndarray) -> float:
    """‖v‖₂ without overflow or underflow (‖v‖² overflows from ‖v‖ ≈ 1.3e154 on)."""
    return float(_row_norm(v[None, :])[0])


def _exact_jacobian(problem, spec, x, eta, rho, truncate):
    """∂F/∂x for a non-adaptive method of known structure, or None where the map is not smooth at ``x``."""
    d = problem.dim
    identity = np.eye(d)
    g = problem.grad(x)
    hess = problem.hessian(x)
    if not spec.ascent or rho == 0:
        return identity - eta * hess
    g_norm = _norm(g)
    normalize, renormalize = spec.normalized, spec.renormalized
    if g_norm == 0:
        if normalize or renormalize:
            return None  # g/‖g‖ and γ = ‖g‖/‖g(y)‖ are not differentiable where g = 0
        ascent_jacobian, y = rho * hess, x
    elif normalize:
        n = g / g_norm
        ascent_jacobian = rho * (identity - np.outer(n, n)) @ hess / g_norm
        y = x + rho * n
    else:
        ascent_jacobian, y = rho * hess, x + rho * g
    gy = problem.grad(y)
    hess_y_dy = problem.hessian(y) @ (identity + ascent_jacobian)  # ∂g(y)/∂x
    if not renormalize:
        return identity - eta * hess_y_dy
    gy_norm = _norm(gy)
    if gy_norm == 0:
        return None
    gamma = g_norm / gy_norm
    if truncate and gamma >= 1:
        return identity - eta * hess_y_dy if gamma > 1 else None  # min(1, γ) has a kink at γ = 1
    # ∇γ = γ (Hᵀg/‖g‖² − (∂g(y)/∂x)ᵀ g(y)/‖g(y)‖²), with unit vectors first: ‖g‖² would overflow for large g
    gamma_gradient = gamma * ((hess.T @ (g / g_norm)) / g_norm - (hess_y_dy.T @ (gy / gy_norm)) / gy_norm)
    return identity - eta * (np.outer(gy, gamma_gradient) + gamma * hess_y_dy)


def _central_differences(problem, rule, x, eta, rho, options, step):
    d = problem.dim
    h = step if step is not None else _DEFAULT_RELATIVE_STEP * max(1.0, _norm(x))
    smallest = _MIN_STEP_SPACINGS * float(np.max(np.spacing(np.abs(x))))
    if not h >= max(smallest, np.finfo(np.float64).tiny):
        raise ValueError(f"step must be >= {max(smallest, np.finfo(np.float64).tiny):.3g} ({_MIN_STEP_SPACINGS} float "
                         f"spacings of the largest |x_i| = {np.max(np.abs(x)):.3g}, and a normal float) to resolve x, "
                         f"got {h:.3g}")
    with np.errstate(over="ignore"):
        upper, lower = x + h * np.eye(d), x - h * np.eye(d)
        spacing = np.diagonal(upper) - np.diagonal(lower)  # the step actually taken: 2h up to the rounding of x_i ± h
    if not np.all(np.isfinite(spacing)):
        raise ValueError(f"step must keep x ± step within float64's range, got {h:.3g}")
    points = np.concatenate([upper, lower])
    images = check_step(rule(points, problem.gradient_oracle(None), eta, rho, **options), points,
                        f"update rule {getattr(rule, '__name__', 'rule')!r}").x
    return (images[:d] - images[d:]).T / spacing


def jacobian(problem, method, x, eta, rho, *, adaptive: bool = False, truncate: bool = False, exact: bool | None = None,
             step: float | None = None) -> np.ndarray:
    r"""Jacobian ∂F/∂x (shape (d, d)) of the one-step map F(x) = x − η γ g(y) of ``method`` at the point ``x``.

    Exact, from ``problem.hessian``, for the built-in non-adaptive rules where they are smooth (ε the ascent,
    y = x + ε, n = g/‖g‖):

    - ``gd``: I − ηH(x); ``usam``: I − ηH(y)(I + ρH(x)); ``sam``: I − ηH(y)(I + ρ(I − nnᵀ)H(x)/‖g‖);
    - ``ssam``/``susam``: I − η(g(y)∇γᵀ + γ ∂g(y)/∂x), ∇γ = γ(H(x)g/‖g‖² − (∂g(y)/∂x)ᵀg(y)/‖g(y)‖²).

    Otherwise (``adaptive``, user-defined rules, ``exact=False``, or γ = 1 exactly under ``truncate``):
    central differences (F(x + he_i) − F(x − he_i))/(2h) with h = ``step``, by default
    ε^(1/3)·max(1, ‖x‖) ≈ 6.1e-6·max(1, ‖x‖) (error O(h²)). ``sam``, ``ssam``, ``susam`` are not
    differentiable where ∇f(x) = 0 (for ρ > 0): ``ValueError``. ``exact=True`` refuses to fall back.

    A ``step`` below 100 float spacings of the largest |x_i| (or below the smallest normal float) cannot
    resolve x and raises ``ValueError``; the differences are divided by the step actually taken,
    (x_i + h) − (x_i − h). A Jacobian that is not finite (the map overflows near x) raises ``ValueError``.

    Parameters
    ----------
    problem : Problem
        A :class:`~samtheory.problems.Problem`; the exact Jacobian needs its ``hessian``.
    method : str, MethodSpec or callable
        The method (a registered name, a spec or a user rule).
    x : array_like
        The point, shape ``(d,)``, finite.
    eta : float
        Learning rate, > 0.
    rho : float
        Radius, >= 0.
    adaptive, truncate : bool, optional
        The rule's options (default False); ``adaptive`` always uses central differences.
    exact : bool or None, optional
        None (default): exact where available, else central differences; True: exact or ``ValueError``;
        False: central differences always.
    step : float or None, optional
        The central-difference step h, > 0; None (default) for ε^(1/3)·max(1, ‖x‖).

    Returns
    -------
    ndarray
        ∂F/∂x, shape ``(d, d)``.
    """
    problem = as_problem("problem", problem)
    spec = resolve_method(method)
    name = spec.name
    x = _check_point(problem, x)
    eta = check.as_scalar("eta", eta, positive=True)
    rho = check.as_scalar("rho", rho, nonnegative=True)
    adaptive, truncate = check.as_bool("adaptive", adaptive), check.as_bool("truncate", truncate)
    if exact is not None:
        exact = check.as_bool("exact", exact)
    if step is not None:
        step = check.as_scalar("step", step, positive=True)
    check.check_rule_signature("method", spec.name, spec.rule, {"adaptive": adaptive, "truncate": truncate})
    with np.errstate(all="ignore"):  # overflow far from the origin: reported below as a non-finite Jacobian
        result = _jacobian(problem, spec, x, eta, rho, adaptive, truncate, exact, step)
    if not np.all(np.isfinite(result)):
        differences = "" if step is None else f", by central differences with step={step:g}"
        raise ValueError(f"the Jacobian of {name} at eta={eta:g}, rho={rho:g} is not finite at x (max |x_i| = "
                         f"{np.max(np.abs(x)):.3g}){differences}: the one-step map overflows float64 there")
    return result


def _jacobian(problem, spec, x, eta, rho, adaptive, truncate, exact, step):
    rule, name = spec.rule, spec.name
    if spec.known and not adaptive and exact is not False:
        result = _exact_jacobian(problem, spec, x, eta, rho, truncate)
        if result is not None:
            return result
        if rho > 0 and (spec.normalized or spec.renormalized) and not np.any(problem.grad(x)):
            raise ValueError(f"{name} is not differentiable where the gradient is 0 (x = {x!r:.80})")
    if exact:
        raise ValueError(f"no exact Jacobian for method {name!r} here (adaptive={adaptive}, truncate={truncate}); "
                         "use exact=None for central differences")
    return _central_differences(problem, rule, x, eta, rho, {"adaptive": adaptive, "truncate": truncate}, step)


def _default_orbit(problem, spec, eta, rho):
    """A point of the fixed point (period 1) or of SAM's 2-cycle (period 2) on a quadratic."""
    parts = problem.quadratic_form()
    if parts is None:
        raise ValueError(f"x is required for {type(problem).__name__}: the fixed point/cycle is known only on "
                         "quadratics (Quadratic, LeastSquares)")
    lam, vectors, center = parts
    name = spec.name
    if spec.kind in ("gd", "usam") or rho == 0:
        return center.copy(), 1
    if spec.kind == "sam":
        top = int(np.argmax(lam))
        if eta * lam[top] >= 2:
            raise ValueError(f"sam has no 2-cycle at eta * lam_max = {eta * lam[top]:.6g} >= 2: it diverges")
        amplitude = float(theory.sam_cycle_amplitude(eta, rho, lam[top]))
        direction = np.eye(problem.dim)[:, top] if vectors is None else vectors[:, top]
        return center + amplitude * direction, 2
    raise ValueError(f"{name} is not differentiable at the minimizer (γ = ‖g(x)‖/‖g(y)‖ is 0/0 there): "
                     "pass a point x of the orbit to linearize")


def spectral_radius(problem, method, eta, rho, x=None, *, period: int | None = None, adaptive: bool = False,
                    truncate: bool = False, exact: bool | None = None, step: float | None = None) -> float:
    r"""Spectral radius of the Jacobian of the ``period``-step map, J = DF(x_{p−1}) ⋯ DF(x_0), x_{k+1} = F(x_k).

    With ``x=None`` on a quadratic (Quadratic or LeastSquares) the orbit is the fixed point x* for ``gd``
    and ``usam`` (period 1; radius max_i |1 − ηλ_i(1 + ρλ_i)|, = 1 at the O1/O2 thresholds) and SAM's
    2-cycle x* ± a·u_1 (period 2, O3). At the cycle the two-step Jacobian has eigenvalue (1 − ηλ_1)² along
    u_1 and (1 − ηλ_i(1 + ρλ_i/‖g_c‖))² along u_i, ‖g_c‖ = λ_1·a: a direction with λ_i = λ_1 sits exactly
    at the SAM edge (:func:`sam_edge` (η, ρ, ‖g_c‖) = λ_1). ``ssam``/``susam`` are not differentiable at x*:
    pass ``x``. Radius < 1: linearly stable. ``period`` is at most 10 000. Options as in :func:`jacobian`; an
    orbit or a product of Jacobians that leaves float64's range raises ``ValueError``.

    Parameters
    ----------
    problem : Problem
        A :class:`~samtheory.problems.Problem`; with ``x=None`` one whose ``quadratic_form`` is known.
    method : str, MethodSpec or callable
        The method; a user rule needs ``x``.
    eta : float
        Learning rate, > 0 (for SAM's default 2-cycle, ηλ_max < 2).
    rho : float
        Radius, >= 0.
    x : array_like or None, optional
        The orbit's first point, shape ``(d,)``; None (default) for the default orbit above.
    period : int or None, optional
        Number of steps p, >= 1; None (default) for the default orbit's period (1 when ``x`` is given).
    adaptive, truncate, exact, step : optional
        As in :func:`jacobian`.

    Returns
    -------
    float
        The spectral radius of J.
    """
    problem = as_problem("problem", problem)
    spec = resolve_method(method)
    rule, name = spec.rule, spec.name
    eta = check.as_scalar("eta", eta, positive=True)
    rho = check.as_scalar("rho", rho, nonnegative=True)
    adaptive, truncate = check.as_bool("adaptive", adaptive), check.as_bool("truncate", truncate)
    if x is None:
        if not spec.known:
            raise ValueError(f"x is required for the user-defined rule {name!r}: its fixed points are unknown")
        x, default_period = _default_orbit(problem, spec, eta, rho)
    else:
        x, default_period = _check_point(problem, x), 1
    period = default_period if period is None else check.as_positive_int("period", period, maximum=_MAX_PERIOD)
    options = {"adaptive": adaptive, "truncate": truncate}
    product = np.eye(problem.dim)
    for k in range(period):
        with np.errstate(all="ignore"):  # a product or an orbit past float64's range: refused just below
            product = jacobian(problem, method, x, eta, rho, exact=exact, step=step, **options) @ product
            x = check_step(rule(x[None], problem.gradient_oracle(None), eta, rho, **options), x[None],
                           f"update rule {name!r}").x[0]
        if not np.all(np.isfinite(product)):
            raise ValueError(f"the {k + 1}-step Jacobian of {name} overflows float64: the orbit diverges")
        if k + 1 < period and not np.all(np.isfinite(x)):
            raise ValueError(f"the orbit of {name} from x leaves float64's range after {k + 1} steps")
    return float(np.max(np.abs(np.linalg.eigvals(product))))
