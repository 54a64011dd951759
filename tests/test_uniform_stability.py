"""Uniform stability (docs/theory.md O10): expansivity of one-step maps and the Hardt–Recht–Singer experiment.

Tolerances: spectral values are float64 closed forms (1e-12 relative); a sampled expansivity is a lower bound
on the Lipschitz constant, so it is checked to lie below the exact value (rounding, 1e-12) and, with 4000
random pairs in 3-D, within 1% of it (the angular deficit of the best of 4000 random directions).
"""

import json
import sys

import numpy as np
import pytest

import samtheory as st
from samtheory.cli import main
from samtheory import stability as uniform
from samtheory.datasets import make_logistic_regression


# -- expansivity -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method, rho", [("gd", 0.0), ("usam", 0.3)])
def test_spectral_expansivity_is_the_operator_norm(method, rho):
    problem = st.Quadratic([0.5, 2.0, 7.0], rotation=1)
    H = problem.hessian_matrix
    eta = np.array([0.05, 0.2, 0.35])
    exact = uniform.spectral_expansivity(problem, method, eta, rho)
    for e, value in zip(eta, exact):
        step = np.eye(3) - e * H - (e * rho * H @ H if method == "usam" else 0.0)
        assert value == pytest.approx(np.linalg.norm(step, 2), rel=1e-12)  # float64 linear algebra


@pytest.mark.parametrize("method, rho", [("gd", 0.0), ("usam", 0.3)])
def test_measured_expansivity_approaches_the_exact_value_from_below(method, rho):
    problem = st.Quadratic([0.5, 2.0, 7.0], rotation=2)
    result = uniform.expansivity(problem, method, eta=np.array([0.05, 0.2, 0.35]), rho=rho, n_pairs=4000, seed=1)
    assert np.all(result.measured <= result.exact * (1 + 1e-12))  # a sampled max cannot exceed the true one
    assert np.all(result.measured >= result.exact * (1 - 1e-2))  # 4000 random directions in 3-D


def test_usam_quadratic_one_expansive_iff_threshold():
    # O10 [derived]: the USAM step on a PSD quadratic is 1-expansive iff ηλ_max(1 + ρλ_max) ≤ 2.
    problem = st.Quadratic([0.0, 1.0, 4.0, 10.0])
    eta = np.geomspace(1e-3, 1.0, 61)[:, None]
    rho = np.array([0.0, 0.05, 0.3, 1.0])[None, :]
    criterion = eta * 10.0 * (1 + rho * 10.0)
    exact = uniform.spectral_expansivity(problem, "usam", eta, rho)
    away = np.abs(criterion - 2.0) > 1e-9  # off the boundary itself
    np.testing.assert_array_equal((exact <= 1 + 1e-12)[away], (criterion <= 2.0)[away])
    np.testing.assert_allclose(uniform.analytic_expansivity("usam", eta, rho, beta=10.0, quadratic=True), exact,
                               rtol=1e-12)  # the closed form from the ends of the spectrum


def test_gd_on_logistic_respects_hardt_recht_singer_constants():
    problem = make_logistic_regression(100, 5, l2=0.1, seed=0)
    beta, mu = problem.beta, problem.mu
    eta = np.array([0.5, 1.0, 2.0]) / (beta + mu)  # all ≤ 2/(β + μ)
    result = uniform.expansivity(problem, "gd", eta, n_pairs=2000, radius=3.0, seed=2)
    expected = 1.0 - eta * beta * mu / (beta + mu)
    np.testing.assert_allclose(result.analytic, expected, rtol=1e-12)  # float64 closed form
    assert np.all(result.measured <= result.analytic)  # HRS Lemma 3.7: a proven upper bound
    convex = make_logistic_regression(100, 5, l2=0.0, seed=0)
    result = uniform.expansivity(convex, "gd", np.array([1.0, 2.0]) / convex.beta, n_pairs=2000, seed=3)
    assert np.all(result.analytic == 1.0) and np.all(result.measured <= 1.0)


def test_gd_expansive_beyond_two_over_beta_on_a_quadratic():
    problem = st.Quadratic([1.0, 4.0])
    result = uniform.expansivity(problem, "gd", eta=0.75, n_pairs=500)  # ηβ = 3
    assert float(result.exact) == pytest.approx(2.0, rel=1e-12)  # |1 − ηβ|
    assert float(result.analytic) == pytest.approx(4.0, rel=1e-12)  # 1 + ηβ, the general bound
    assert float(result.measured) <= float(result.exact) * (1 + 1e-12)


def test_expansivity_of_normalized_methods_has_no_analytic_constant():
    problem = make_logistic_regression(60, 3, seed=1)
    for method in ("sam", "ssam", "susam"):
        result = uniform.expansivity(problem, method, eta=0.1, rho=0.05, n_pairs=200)
        assert result.exact is None and np.isnan(result.analytic) and np.isfinite(result.measured)
    first = uniform.expansivity(problem, "susam", eta=[0.1, 0.2], rho=0.05, n_pairs=200, seed=4)
    second = uniform.expansivity(problem, "susam", eta=[0.1, 0.2], rho=0.05, n_pairs=200, seed=4)
    np.testing.assert_array_equal(first.measured, second.measured)  # same seed, same result, bit for bit


# -- the stability experiment ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic():
    # 500 steps of batch size 1 on n = 200: each trial samples the replaced example with probability
    # 1 − (199/200)^500 ≈ 0.92, so S and S' runs separate in at least one of three trials.
    return uniform.stability_experiment("synthetic", steps=500, n_trials=3, record_every=50, eta=0.1, rho=0.05)


def test_identical_data_sets_give_identical_runs():
    split = uniform.synthetic_split(80, 4, n_test=50, seed=1)
    same = uniform.StabilitySplit("same", split.train, split.train, split.test, 0)
    result = uniform.stability_experiment(same, steps=30, n_trials=2, record_every=10)
    np.testing.assert_array_equal(result.divergence, 0.0)  # same data, same minibatches: bit-for-bit equal
    np.testing.assert_array_equal(result.loss_difference, 0.0)
    again = uniform.stability_experiment(split, steps=30, n_trials=2, record_every=10)
    np.testing.assert_array_equal(again.generalization_gap_trials, result.generalization_gap_trials)  # same seed


def test_divergence_starts_at_zero_and_grows(synthetic):
    assert synthetic.divergence.shape == (5, synthetic.steps.size)
    assert synthetic.steps[0] == 0 and synthetic.steps[-1] == 500
    np.testing.assert_array_equal(synthetic.divergence[:, 0], 0.0)  # common start
    assert np.all(synthetic.divergence[:, -1] > 0)
    assert np.all(synthetic.n_diverged == 0)


def test_sgd_respects_the_hrs_bounds(synthetic):
    gd = synthetic.methods.index("gd")
    assert synthetic.bound_applies
    assert np.all(synthetic.divergence[gd] <= synthetic.parameter_bound)
    assert np.all(synthetic.loss_difference[gd] <= synthetic.stability_bound)
    assert synthetic.lipschitz_measured <= synthetic.lipschitz  # the bound used is an upper bound
    np.testing.assert_allclose(synthetic.stability_bound, synthetic.lipschitz * synthetic.parameter_bound, rtol=1e-12)


def test_full_batch_gd_respects_the_bound():
    result = uniform.stability_experiment("synthetic", methods=["gd"], steps=60, n_trials=1, batch_size=None,
                                          eta=0.2, record_every=20)
    assert np.all(result.divergence[0] <= result.parameter_bound)
    assert np.all(result.divergence[0, 1:] > 0)


def test_breast_cancer_split_and_run():
    split = uniform.breast_cancer_split(300, seed=0)
    assert split.train.n_samples == 300 and split.test.n_samples == 569 - 301 and split.train.dim == 30
    np.testing.assert_array_equal(split.train.features[1:], split.perturbed.features[1:])
    assert not np.array_equal(split.train.features[0], split.perturbed.features[0])
    result = uniform.stability_experiment("breast_cancer", methods=["gd", "susam"], steps=40, n_trials=2)
    assert result.data == "breast_cancer" and np.all(np.isfinite(result.generalization_gap))


def test_missing_scikit_learn_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="needs scikit-learn"):
        uniform.breast_cancer_split()


@pytest.mark.parametrize("call, match", [
    (lambda: uniform.stability_experiment("mnist"), "data must be one of"),
    (lambda: uniform.stability_experiment(methods=["adam"]), "methods must be one of"),
    (lambda: uniform.stability_experiment(methods=[]), "at least one method"),
    (lambda: uniform.stability_experiment(eta=-0.1), "eta must be > 0"),
    (lambda: uniform.stability_experiment(steps=0), "steps must be an integer"),
    (lambda: uniform.stability_experiment(x0=np.zeros(3)), "x0 must have shape"),
    (lambda: uniform.synthetic_split(replaced_index=500), "replaced_index must be in"),
    (lambda: uniform.breast_cancer_split(n_train=568), "n_train must be <="),
    (lambda: uniform.expansivity(st.Quadratic([1.0]), "gd", eta=0.0), "eta must be > 0"),
    (lambda: uniform.expansivity("quadratic", "gd", eta=0.1), "problem must be a samtheory Problem"),
    (lambda: uniform.expansivity(st.Quadratic([1.0]), "gd", eta=0.1, center=[0.0, 1.0]), "center must have shape"),
    (lambda: uniform.spectral_expansivity(st.Quadratic([1.0]), "sam", 0.1), "method must be 'gd' or 'usam'"),
    (lambda: uniform.analytic_expansivity("gd", 0.1, beta=1.0, mu=2.0), "mu must be <= beta"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_cli_stability_gap_quick(capsys):
    code = main(["stability-gap", "--quick", "--steps", "40", "--trials", "2", "--methods", "gd,susam", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0 and [row["method"] for row in rows] == ["gd", "susam"]
    assert all(row["divergence"] <= row["parameter_bound"] for row in rows)


@pytest.mark.parametrize("argv, message", [
    (["stability-gap", "--data", "cifar"], "--data must be one of"),
    (["stability-gap", "--methods", "gd,adam", "--steps", "5"], "methods must be one of"),
    (["stability-gap", "--batch-size", "-1"], "--batch-size must be >= 0"),
])
def test_cli_stability_gap_bad_input(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
