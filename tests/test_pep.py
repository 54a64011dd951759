"""Performance estimation (docs/theory.md O8, O9): closed forms, PEPit cross-checks, the PEP regime, refusals.

Tolerances: the SDPs are solved to 1e-7 (gap and feasibility, samtheory.convex.pep.TOLERANCE); measured
relative errors against closed forms are about 1e-6, so comparisons with closed forms and with PEPit (which
solves its own formulation to the same tolerance) use 1e-4 relative, as the issue asks.
"""

import json

import cvxpy as cp
import numpy as np
import pytest
from PEPit import PEP
from PEPit.functions import SmoothConvexFunction, SmoothFunction, SmoothStronglyConvexFunction

from samtheory import methods
from samtheory.cli import main
from samtheory.convex import _solver, pep

PEP_RTOL = 1e-4  # solver accuracy (about 1e-6 measured) with margin; the tolerance


# -- PEPit, the independent reference -------------------------------------------------------------------------
def _pepit(L, mu, build, metric_of):
    problem = PEP()
    f = (problem.declare_function(SmoothStronglyConvexFunction, mu=mu, L=L) if mu > 0
         else problem.declare_function(SmoothConvexFunction, L=L))
    x_star = f.stationary_point()
    x0 = problem.set_initial_point()
    problem.set_initial_condition((x0 - x_star) ** 2 <= 1.0)
    x_last = build(f, x0)
    problem.set_performance_metric(metric_of(f, x_last, x_star))
    value = problem.solve(wrapper="cvxpy", solver=cp.CLARABEL, verbose=0,
                          **_solver.solver_options("CLARABEL", pep.TOLERANCE))
    assert problem.wrapper.prob.status == "optimal", "PEPit's own solve must be certified for a fair comparison"
    return value


def _pepit_usam(L, mu, eta, rho, steps, metric):
    def build(f, x):
        for _ in range(steps):
            y = x + rho * f.gradient(x)
            x = x - eta * f.gradient(y)
        return x

    metrics = {"function_value": lambda f, x, xs: f(x) - f(xs), "distance_squared": lambda f, x, xs: (x - xs) ** 2,
               "gradient_norm_squared": lambda f, x, xs: f.gradient(x) ** 2}
    return _pepit(L, mu, build, metrics[metric])


# -- closed forms ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("h", [0.25, 0.5, 1.0])
@pytest.mark.parametrize("steps", [1, 2, 4])
def test_gd_matches_drori_teboulle(h, steps):
    result = pep.worst_case("gd", L=1.0, eta=h, steps=steps)
    assert result.status == "optimal" and result.solver in _solver.PREFERENCE
    assert result.worst_case == pytest.approx(1.0 / (4 * steps * h + 2), rel=PEP_RTOL)


def test_gd_closed_form_scales_with_L_and_R():
    L, R, h, steps = 2.0, 3.0, 0.5, 3
    result = pep.worst_case("gd", L=L, eta=h / L, steps=steps, R=R)
    assert result.worst_case == pytest.approx(L * R * R / (4 * steps * h + 2), rel=PEP_RTOL)
    assert float(pep.gd_worst_case_bound(h / L, L=L, steps=steps, R=R)) == pytest.approx(
        L * R * R / (4 * steps * h + 2), rel=1e-12)  # float64 closed form


@pytest.mark.parametrize("h, steps", [(1.5, 2), (1.8, 3)])
def test_gd_long_steps_match_taylor_hendrickx_glineur_conjecture(h, steps):
    # For 1 < h < 2 the worst case is conjectured (THG 2017) to be (L R²/2) max(1/(2Nh+1), (1-h)^{2N}); measured.
    result = pep.worst_case("gd", eta=h, steps=steps)
    assert result.worst_case == pytest.approx(float(pep.gd_worst_case_bound(h, steps=steps)), rel=PEP_RTOL)


# -- PEPit agreement -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method, eta, rho, steps, mu, metric", [
    ("gd", 0.7, 0.0, 3, 0.0, "function_value"),
    ("gd", 1.2, 0.0, 2, 0.1, "distance_squared"),
    ("usam", 1.0, 0.5, 3, 0.0, "function_value"),
    ("usam", 1.2, 0.5, 2, 0.0, "function_value"),
    ("usam", 0.5, 1.0, 2, 0.0, "gradient_norm_squared"),
    ("usam", 0.8, 1.0, 3, 0.1, "distance_squared"),
    ("usam", 1.5, 0.1, 1, 0.0, "function_value"),
])
def test_agrees_with_pepit(method, eta, rho, steps, mu, metric):
    ours = pep.worst_case(method, L=1.0, mu=mu, eta=eta, rho=rho, steps=steps, metric=metric)
    theirs = _pepit_usam(1.0, mu, eta, rho if method == "usam" else 0.0, steps, metric)
    assert ours.worst_case == pytest.approx(theirs, rel=PEP_RTOL)


def test_usam_with_rho_zero_is_gd():
    gd = pep.worst_case("gd", eta=0.8, steps=3)
    usam = pep.worst_case("usam", eta=0.8, rho=0.0, steps=3)
    assert usam.n_gradients == gd.n_gradients  # y = x is recognised as the same point: the same SDP
    assert usam.worst_case == pytest.approx(gd.worst_case, rel=PEP_RTOL)
    nearly = pep.worst_case("usam", eta=0.8, rho=1e-6, steps=3)  # a distinct SDP with 2N + 1 gradients
    assert nearly.n_gradients == 2 * 3 + 1
    assert nearly.worst_case == pytest.approx(gd.worst_case, rel=PEP_RTOL)


@pytest.mark.parametrize("h, rho, steps", [(0.5, 2.0, 3), (1.0, 0.5, 2), (0.25, 1.0, 4)])
def test_usam_worst_case_equals_gd_for_short_steps(h, rho, steps):
    # Measured: for ηL ≤ 1 the worst function is GD's (Huber-like, linear where the iterates are), on which
    # the extrapolated gradient equals g(x); USAM's worst case is then exactly L R²/(4Nh + 2).
    usam = pep.worst_case("usam", eta=h, rho=rho, steps=steps)
    assert usam.worst_case == pytest.approx(1.0 / (4 * steps * h + 2), rel=PEP_RTOL)


def test_user_defined_fixed_step_algorithm():
    def my_gd(x0, gradient, eta, rho, steps):
        x = x0
        for _ in range(steps):
            x = x - gradient(x) * eta / 1.0
        return x

    assert pep.worst_case(my_gd, eta=0.5, steps=2).worst_case == pytest.approx(1.0 / 6.0, rel=PEP_RTOL)


def test_worst_case_sweep_matches_single_solves():
    sweep = pep.worst_case_sweep("usam", eta=np.array([0.5, 1.0])[:, None], rho=np.array([0.0, 0.5]), steps=2)
    assert sweep.worst_case.shape == (2, 2) and sweep.status == "optimal"
    single = pep.worst_case("usam", eta=1.0, rho=0.5, steps=2).worst_case
    assert sweep.worst_case[1, 1] == pytest.approx(single, rel=1e-9)  # the same SDP solved twice


# -- O8: the USAM descent inequality ---------------------------------------------------------------------------
@pytest.mark.parametrize("rho", [0.3, 1.0, 1.5])
def test_descent_inequality_tight_over_smooth_functions(rho):
    # Over every β-smooth f (μ = −β) the worst ratio is exactly 1 − ρβ (f = −β x²/2 attains it).
    result = pep.usam_descent_worst_case(rho, beta=1.0, mu=-1.0)
    assert result.worst_case == pytest.approx(1.0 - rho, abs=1e-5)  # solver accuracy, absolute (value may be 0)


@pytest.mark.parametrize("rho", [0.3, 1.5])
def test_descent_inequality_over_convex_functions_is_one(rho):
    # Over convex f the bound 1 − ρβ holds but is not tight: co-coercivity gives ratio ≥ 1, attained (linear f).
    result = pep.usam_descent_worst_case(rho, beta=1.0, mu=0.0)
    assert result.worst_case >= 1.0 - rho
    assert result.worst_case == pytest.approx(1.0, abs=1e-5)  # solver accuracy


def test_descent_inequality_agrees_with_pepit_smooth_class():
    problem = PEP()
    f = problem.declare_function(SmoothFunction, L=1.0)
    x = problem.set_initial_point()
    g = f.gradient(x)
    problem.set_initial_condition(g ** 2 == 1.0)
    problem.set_performance_metric(-(f.gradient(x + 0.6 * g) * g))  # PEPit maximizes: minus the inner product
    theirs = -problem.solve(wrapper="cvxpy", solver=cp.CLARABEL, verbose=0)
    ours = pep.usam_descent_worst_case(0.6, beta=1.0, mu=-1.0).worst_case
    assert ours == pytest.approx(theirs, abs=1e-5)  # solver accuracy


# -- the PEP regime --------------------------------------------------------------------------------------------
def test_pep_regime_of_gd_is_two_over_L():
    result = pep.pep_critical_learning_rate("gd", L=1.0, steps=2, xtol=2e-3)
    assert abs(result.eta - 2.0) <= result.xtol  # the bisection tolerance
    assert result.agree and result.bracket[1] - result.bracket[0] <= result.xtol


@pytest.mark.parametrize("rho", [0.5, 1.0])
def test_pep_regime_of_usam_agrees_with_quadratic_threshold(rho):
    # Measured (not assumed): the largest η at which USAM's worst case still decreases from N = 2 to 3 is the
    # quadratic threshold 2/(L(1 + ρL)) of O2, to the bisection tolerance.
    result = pep.pep_critical_learning_rate("usam", L=1.0, rho=rho, steps=2, xtol=2e-3)
    assert result.quadratic_eta == pytest.approx(2.0 / (1.0 + rho), rel=1e-12)  # float64 closed form
    assert abs(result.eta - result.quadratic_eta) <= result.xtol
    assert result.agree


# -- expansivity over the whole class (O10) --------------------------------------------------------------------
@pytest.mark.parametrize("eta, mu", [(0.5, 0.0), (1.5, 0.1), (2.5, 0.0)])
def test_gd_expansivity_worst_case(eta, mu):
    result = pep.expansivity_worst_case("gd", L=1.0, mu=mu, eta=eta)
    assert result.worst_case == pytest.approx(max(abs(1 - eta), abs(1 - eta * mu)), rel=PEP_RTOL)


def test_usam_is_not_one_expansive_on_smooth_convex_functions():
    # ηL(1 + ρL) = 1 ≤ 2: every quadratic gives a 1-expansive USAM step (O10), but a smooth convex function
    # does not: the SDP certifies a Lipschitz constant > 1 (PEPit agrees).
    eta, rho = 0.5, 1.0
    ours = pep.expansivity_worst_case("usam", L=1.0, eta=eta, rho=rho).worst_case
    problem = PEP()
    f = problem.declare_function(SmoothConvexFunction, L=1.0)
    w, w_other = problem.set_initial_point(), problem.set_initial_point()
    problem.set_initial_condition((w - w_other) ** 2 <= 1.0)
    step = lambda x: x - eta * f.gradient(x + rho * f.gradient(x))  # noqa: E731
    problem.set_performance_metric((step(w) - step(w_other)) ** 2)
    theirs = np.sqrt(problem.solve(wrapper="cvxpy", solver=cp.CLARABEL, verbose=0))
    assert ours == pytest.approx(theirs, rel=PEP_RTOL)
    assert ours > 1.0 + 1e-2  # 1.0328 measured; far above the solver accuracy


# -- refusals and bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["sam", "ssam", "susam", methods.sam, methods.susam])
def test_norm_dividing_methods_are_refused(method):
    with pytest.raises(ValueError, match="no exact PEP.*divides by gradient norms"):
        pep.worst_case(method, eta=0.5, steps=2)


def test_algorithm_with_norm_division_is_refused():
    def normalized(x0, gradient, eta, rho, steps):
        g = gradient(x0)
        return x0 - eta * g / g  # a division by an iterate-dependent quantity

    with pytest.raises(ValueError, match="fixed real numbers"):
        pep.worst_case(normalized, eta=0.5, steps=1)


@pytest.mark.parametrize("kwargs, match", [
    ({"L": 0.0}, "L must be > 0"), ({"mu": 1.0}, "mu must satisfy"), ({"mu": -0.5}, "mu must satisfy"),
    ({"eta": -1.0}, "eta must be > 0"), ({"eta": [0.5, 1.0]}, "eta must be a single number"),
    ({"rho": -0.1}, "rho must be >= 0"), ({"steps": 0}, "steps must be an integer >= 1"),
    ({"steps": 2.5}, "steps must be an integer"), ({"metric": "loss"}, "metric must be one of"),
    ({"R": 0.0}, "R must be > 0"), ({"solver": "MOSEK"}, "solver must be one of"),
])
def test_bad_input(kwargs, match):
    arguments = {"eta": 0.5, "steps": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        pep.worst_case("usam", **arguments)


def test_bad_input_other_entry_points():
    with pytest.raises(ValueError, match="method must be one of"):
        pep.worst_case("newton", eta=0.5, steps=1)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        pep.worst_case_sweep("gd", eta=[0.5], steps=[0])
    with pytest.raises(ValueError, match="eta_max"):
        pep.pep_critical_learning_rate("gd", eta_max=1.0, n_scan=2)  # GD still decreases at η = 1/L
    with pytest.raises(ValueError, match="xtol must be > 0"):
        pep.pep_critical_learning_rate("gd", xtol=0.0)
    with pytest.raises(ValueError, match="mu must satisfy"):
        pep.usam_descent_worst_case(0.5, beta=1.0, mu=-2.0)
    with pytest.raises(ValueError, match="no exact PEP"):
        pep.expansivity_worst_case("ssam", eta=0.5)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        pep.gd_worst_case_bound(0.5, steps=0)


def test_solver_error_carries_status():
    x = cp.Variable()
    with pytest.raises(_solver.SolverError) as caught:
        _solver.solve(cp.Problem(cp.Minimize(x), [x >= 1, x <= 0]), what="an infeasible problem")
    assert "infeasible" in caught.value.status and "no value is returned" in str(caught.value)


# -- command line ----------------------------------------------------------------------------------------------
def test_cli_pep_json(capsys):
    code = main(["pep", "--method", "usam", "--L", "1", "--eta", "1.0", "--rho", "0.5", "--steps", "5", "--json"])
    record = json.loads(capsys.readouterr().out)
    assert code == 0
    keys = ("method", "L", "mu", "eta", "rho", "steps", "metric", "worst_case", "solver", "status", "solve_seconds")
    assert all(key in record for key in keys)
    assert record["status"] == "optimal" and record["method"] == "usam" and record["steps"] == 5
    assert record["worst_case"] == pytest.approx(1.0 / 22.0, rel=PEP_RTOL)  # = GD's 1/(4Nh+2), h = 1 (measured)


def test_cli_pep_critical_table(capsys):
    assert main(["pep", "--method", "gd", "--critical", "--steps", "1"]) == 0
    assert "quadratic_eta" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["pep", "--method", "sam"], "no exact PEP"),
    (["pep", "--mu", "2"], "mu must satisfy"),
    (["pep", "--eta", "abc"], "expected comma-separated numbers"),
    (["pep", "--metric", "loss"], "metric must be one of"),
])
def test_cli_pep_bad_input(cli_error, argv, message):
    assert message in cli_error(argv)
