"""Stochastic regimes (docs/theory.md O16, O17): mean-square and almost-sure thresholds of SGD and USAM under
minibatch noise, the engine's measured thresholds over seeds, additive gradient noise and SAM's O(ρ²) floor."""

import json
import warnings

import numpy as np
import pytest

import samtheory as st
from samtheory import stability, theory
from samtheory.cli import main
from samtheory.problems import NoisyQuadratic

EXACT = 1e-10  # exact computations of one threshold: eigenvalues to rounding, Brent's root to rtol 1e-12
MC_SIGMAS = 4.0  # Monte-Carlo checks: |estimate − exact| <= 4 standard errors (two-sided p ≈ 6e-5 per check)


def _problem(n=6, d=3, seed=3):
    A = np.random.default_rng(seed).standard_normal((n, d))
    return st.LeastSquares(A, A @ np.ones(d))  # realizable: x* = (1, 1, 1)


SMALL = _problem()
CASES = [("gd", "shared"), ("usam", "shared"), ("usam", "independent")]


def _ms(problem, method, minibatch="shared", **options):
    options.setdefault("batch_size", 2)
    return stability.mean_square_critical_learning_rate(problem, method, 0.1, minibatch=minibatch, **options)


# -- mean-square threshold (O16) -------------------------------------------------------------------------------

@pytest.mark.parametrize("method,minibatch", CASES)
@pytest.mark.parametrize("replace", [False, True])
def test_mean_square_threshold_agrees_across_algorithms(method, minibatch, replace):
    # Enumeration of every minibatch (pairs for independent ones) against the inclusion-probability formulas
    # and the matrix-free operator: three computations of one root, to EXACT.
    # Each both ways: the Perron root of L⁻¹Q and Brent's root of ρ(E[M ⊗ M]) = 1 (two independent routes).
    values = [_ms(SMALL, method, minibatch, replace=replace, algorithm=a, solver=s).value[0]
              for a in ("enumerate", "moments", "matrix-free") for s in ("perron", "brent")]
    np.testing.assert_allclose(values[1:], values[0], rtol=EXACT)
    # The stable set is the interval (0, η_ms): ρ(E[M ⊗ M]) < 1 just below, > 1 just above (1e-6 relative).
    radius = stability.mean_square_spectral_radius(SMALL, method, values[0] * np.array([1e-3, 0.5, 1 - 1e-6,
                                                                                         1 + 1e-6]), 0.1,
                                                   batch_size=2, minibatch=minibatch, replace=replace)
    assert np.all(radius[:3] < 1) and radius[3] > 1


def test_mean_square_threshold_moments_for_large_n():
    # n = 400 samples: no enumeration; the moment formulas against matrix-free (same root to EXACT) and the
    # bounds of the theory: η_ms below the full-batch edge, and above the m = 1 value (less noise, larger η_ms).
    A = np.random.default_rng(0).standard_normal((400, 4)) * np.array([1.0, 0.8, 0.5, 0.3])
    problem = st.LeastSquares(A, A @ np.ones(4))
    for method, minibatch in CASES:
        moments = _ms(problem, method, minibatch, batch_size=8, algorithm="moments").value[0]
        free = _ms(problem, method, minibatch, batch_size=8, algorithm="matrix-free").value[0]
        assert free == pytest.approx(moments, rel=EXACT)
        assert moments > _ms(problem, method, minibatch, batch_size=1, algorithm="moments").value[0]


@pytest.mark.parametrize("method,minibatch", [("gd", "shared"), ("usam", "shared")])
def test_mean_square_radius_against_monte_carlo_second_moments(method, minibatch):
    # An independent computation: E[M ⊗ M] estimated from 20000 minibatches drawn as the engine draws them
    # (uniform, without replacement), M_ξ built here from its definition. Both operators are self-adjoint
    # (M_ξ symmetric), so |ρ̂ − ρ| <= ‖T̂ − T‖₂ <= ‖T̂ − T‖_F, whose root-mean-square is the Frobenius norm of the
    # entries' standard errors: allowed MC_SIGMAS times that.
    problem, rho, eta, draws = SMALL, 0.1, 0.3, 20_000
    rng = np.random.default_rng(11)
    A, n, d = problem.A, problem.n_samples, problem.dim
    krons = np.empty((draws, d * d, d * d))
    for k in range(draws):
        rows = A[rng.choice(n, size=2, replace=False)]
        H = rows.T @ rows / 2
        G = H if method == "gd" else H + rho * H @ H
        M = np.eye(d) - eta * G
        krons[k] = np.kron(M, M)
    estimate = krons.mean(axis=0)
    standard_errors = krons.std(axis=0, ddof=1) / np.sqrt(draws)
    radius_mc = np.max(np.abs(np.linalg.eigvals(estimate)))
    exact = stability.mean_square_spectral_radius(problem, method, eta, rho, batch_size=2, minibatch=minibatch,
                                                  algorithm="moments")
    assert abs(radius_mc - exact) <= MC_SIGMAS * np.linalg.norm(standard_errors)


@pytest.mark.parametrize("method,minibatch", CASES)
def test_full_batch_minibatch_gives_the_deterministic_edge(method, minibatch):
    # m = n: every minibatch is the whole sum, E[M ⊗ M] = M ⊗ M and η_ms = 2/λ_max (gd, O1) or
    # 2/(λ_max(1 + ρλ_max)) (usam, O2) in both minibatch modes, to EXACT.
    lam_max = np.linalg.eigvalsh(SMALL.A.T @ SMALL.A / SMALL.n_samples)[-1]
    edge = (theory.gd_critical_learning_rate(lam_max) if method == "gd"
            else theory.usam_critical_learning_rate(lam_max, 0.1))
    for algorithm in ("enumerate", "moments", "matrix-free"):
        value = _ms(SMALL, method, minibatch, batch_size=SMALL.n_samples, algorithm=algorithm).value[0]
        assert value == pytest.approx(edge, rel=EXACT)
    assert stability.full_batch_critical_learning_rate(SMALL, method, 0.1)[0] == pytest.approx(edge, rel=EXACT)


def test_rank_deficient_features_are_reduced_to_their_range():
    # A duplicated column: a null direction of A, on which every M_ξ is the identity; η_ms is that of the
    # problem on the range (the column merged, scaled by √2), to EXACT.
    A = SMALL.A
    wide = np.column_stack([A, A[:, 2]])
    merged = np.column_stack([A[:, :2], np.sqrt(2) * A[:, 2]])
    for method, minibatch in CASES:
        a = _ms(st.LeastSquares(wide, wide @ np.ones(4)), method, minibatch).value[0]
        b = _ms(st.LeastSquares(merged, merged @ np.ones(3)), method, minibatch).value[0]
        assert a == pytest.approx(b, rel=EXACT)


# -- almost-sure threshold, measured thresholds (O16) ----------------------------------------------------------

def test_lyapunov_estimate_is_deterministic_and_follows_the_seed():
    options = dict(batch_size=2, steps=300, seeds=4, blocks=5)
    eta = np.array([0.2, 0.4])
    a = stability.lyapunov_exponent(SMALL, "usam", eta, 0.1, **options)
    b = stability.lyapunov_exponent(SMALL, "usam", eta, 0.1, **options)
    c = stability.lyapunov_exponent(SMALL, "usam", eta, 0.1, seed=1, **options)
    for field in ("exponent", "lower", "upper", "stderr"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))  # bit for bit
    assert not np.array_equal(a.exponent, c.exponent)
    # η_ms < η_as: below η_ms every product contracts in mean square, hence almost surely.
    assert np.all(a.upper[:1] < 0)


@pytest.mark.parametrize("method,minibatch", CASES)
def test_thresholds_are_ordered_and_the_lyapunov_interval_holds_the_measured_edge(method, minibatch):
    # Theory (Jensen): η_ms <= η_as; for gd and for usam with independent minibatches E[M] is the full-batch
    # map, so η_ms <= the full-batch edge. The engine's measured edge (half of 8 seeds diverge within 1000
    # steps, bisected to rtol 1e-2) must lie in the Lyapunov interval widened by that rtol — the interval
    # brackets the zero of the exponent at 95% confidence from 8 × 10 blocks of 1000-step products on the
    # same minibatch sequences.
    ms = _ms(SMALL, method, minibatch).value[0]
    lyapunov = stability.lyapunov_critical_learning_rate(SMALL, method, 0.1, batch_size=2, minibatch=minibatch,
                                                         steps=1000, seeds=8, points=12)
    full = stability.full_batch_critical_learning_rate(SMALL, method, 0.1)[0]
    assert ms <= lyapunov.lower[0] <= lyapunov.value[0] <= lyapunov.upper[0]
    if not (method == "usam" and minibatch == "shared"):
        assert ms <= full
    measured = stability.stochastic_critical_learning_rate(SMALL, method, 0.1, batch_size=2, minibatch=minibatch,
                                                           steps=1000, seeds=8, eta_range=(0.5 * ms, full * 1.5))
    rtol = measured.tolerance
    assert lyapunov.lower[0] / (1 + rtol) <= measured.value[0] <= lyapunov.upper[0] * (1 + rtol)


def test_renormalization_factor_under_noise():
    # Derived (docs/theory.md O17): with one draw per step (shared minibatch or shared additive noise) the
    # step's loss is a convex quadratic, so γ <= 1/(1 + ρλ_min) <= 1 exactly (O4) and truncation is a no-op;
    # with independent draws γ > 1 happens and truncation acts. 1e-12: the rounding of γ's two norms.
    shared = stability.gamma_distribution(SMALL, "susam", 0.3, 0.1, batch_size=2, steps=300, seeds=4)
    independent = stability.gamma_distribution(SMALL, "susam", 0.3, 0.1, batch_size=2, minibatch="independent",
                                               steps=300, seeds=4)
    assert shared.values[-1] <= 1 + 1e-12 and shared.fraction_above_one == 0.0
    assert independent.fraction_above_one > 0.05
    noisy = NoisyQuadratic([1.0, 4.0], 0.5, draws="independent")
    ssam = stability.gamma_distribution(noisy, "ssam", 0.1, 0.2, steps=300, seeds=4)
    assert ssam.fraction_above_one > 0.05
    noisy_shared = NoisyQuadratic([1.0, 4.0], 0.5)
    assert stability.gamma_distribution(noisy_shared, "ssam", 0.1, 0.2, steps=300, seeds=4).values[-1] <= 1 + 1e-12


# -- noise models (O17) ----------------------------------------------------------------------------------------

def _time_average(values, blocks=100):
    """Mean and batch-means standard error of a stationary series (axis 0: time)."""
    means = values[: values.shape[0] // blocks * blocks].reshape(blocks, -1, *values.shape[1:]).mean(axis=1)
    return means.mean(axis=0), means.std(axis=0, ddof=1) / np.sqrt(blocks)


@pytest.mark.parametrize("draws", ["shared", "independent"])
def test_usam_stationary_variance_matches_o17a(draws):
    # USAM on ½λx² (λ = 1) with Gaussian noise σ = 0.7: the time average of x² = 2f over 12000 steps after 500
    # steps of burn-in (mixing in ~1/(ηA(2 − ηA)) <= 7 steps) against O17a, to MC_SIGMAS batch-means errors.
    eta, rho = np.array([0.05, 0.2, 0.2]), np.array([0.5, 0.5, 2.0])
    problem = NoisyQuadratic([1.0], 0.7, draws=draws)
    result = st.simulate(problem, "usam", eta, rho, steps=12_500, seed=5, x0=[0.0], record_every=1)
    mean, error = _time_average(2 * result.history.loss[500:])
    expected = theory.usam_noise_variance(eta, rho, 1.0, 0.49, draws=draws)
    assert np.all(np.abs(mean - expected) <= MC_SIGMAS * error)


def test_sam_floor_and_usam_none_o17b():
    # ξ = +2σ w.p. 1/3, −σ w.p. 2/3 (σ = 1, shared by both gradients), λ = 1, ρ = 0.5 (λρ/3 < σ), η = 0.05.
    # SAM's mean dynamics stop at x = ρ/3 (the bias behind the floor λρ²/18) and its stationary E f is
    # λρ²/18 + η(σ + 2ρλ/3)²/(2 − ηλ) (theory.sam_noise_loss); USAM's mean is 0 and its E f = ½λ·Var (O17a with
    # σ² = E ξ² = 2), which → 0 with η. Time averages over 12000 steps in 20 blocks of 600 steps (30 mixing
    # times 1/(ηλ)), to MC_SIGMAS batch-means errors; SAM's mean is also more than MC_SIGMAS errors from 0.
    noise = (np.array([2.0, -1.0]), np.array([1 / 3, 2 / 3]))
    problem = NoisyQuadratic([1.0], noise)
    eta, rho = 0.05, 0.5
    runs = {name: st.simulate(problem, name, eta, rho, steps=12_500, seed=2, x0=[rho / 3], record_every=1,
                              record_iterates=True) for name in ("sam", "usam")}
    x, u = runs["sam"].history.x[500:, 0], runs["usam"].history.x[500:, 0]
    mean, error = _time_average(x, blocks=20)
    assert abs(mean - rho / 3) <= MC_SIGMAS * error and mean > MC_SIGMAS * error
    loss, loss_error = _time_average(0.5 * x**2, blocks=20)
    assert abs(loss - theory.sam_noise_loss(eta, rho, 1.0, 1.0)) <= MC_SIGMAS * loss_error
    u_mean, u_error = _time_average(u, blocks=20)
    assert abs(u_mean) <= MC_SIGMAS * u_error
    u_loss, u_loss_error = _time_average(0.5 * u**2, blocks=20)
    assert abs(u_loss - 0.5 * theory.usam_noise_variance(eta, rho, 1.0, 2.0)) <= MC_SIGMAS * u_loss_error


def test_noise_closed_forms_by_hand():
    # Hand-computed: A = 1·1.5; shared 0.1·1·1.5/(1·(2 − 0.15)) = 0.15/1.85; independent
    # 0.1·1.25/(1.5·1.85); floor 0.25/18. 1e-12: float64 closed forms.
    assert theory.usam_noise_variance(0.1, 0.5, 1.0, 1.0) == pytest.approx(0.15 / 1.85, rel=1e-12)
    assert theory.usam_noise_variance(0.1, 0.5, 1.0, 1.0, draws="independent") == pytest.approx(
        0.125 / (1.5 * 1.85), rel=1e-12)
    assert theory.sam_noise_floor(1.0, 0.5) == pytest.approx(0.25 / 18, rel=1e-12)
    assert np.isnan(theory.usam_noise_variance(2.0, 0.5, 1.0, 1.0))  # ηA = 3 >= 2: no stationary law


def test_noisy_problem_is_deterministic_row_by_row():
    # Same seed, same draws, whatever the rest of the batch: a row alone equals that row in a larger batch.
    problem = NoisyQuadratic([1.0, 3.0], np.array([[1.0, 0.3], [0.3, 0.5]]), draws="independent")
    batch = st.simulate(problem, "susam", np.array([0.1, 0.2, 0.1]), 0.1, seed=np.array([0, 0, 1]), steps=50)
    alone = st.simulate(problem, "susam", 0.1, 0.1, seed=1, steps=50, x0=problem.initial_point(1))
    np.testing.assert_array_equal(batch.x[2], alone.x)
    assert not np.array_equal(batch.x[0], batch.x[2])


# -- CLI ---------------------------------------------------------------------------------------------------------

def _data(tmp_path, name="data.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def test_cli_regime_least_squares_json(tmp_path, capsys):
    path = _data(tmp_path, A=SMALL.A)  # no b: realizable with x* = 0
    code = main(["regime", "--problem", "least-squares", "--data", path, "--batch-size", "2", "--method",
                 "gd,usam", "--rho", "0.1", "--json", "--seeds", "4", "--steps", "300", "--lyapunov-steps", "300"])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["method"] for row in rows] == ["gd", "usam"]
    for row in rows:
        for key in ("rho", "batch_size", "mean_square_eta", "lyapunov_eta", "lyapunov_eta_interval",
                    "empirical_eta", "full_batch_eta", "minibatch"):
            assert key in row
        assert row["minibatch"] == "shared" and row["batch_size"] == 2
        expected = _ms(SMALL, row["method"]).value[0]
        assert row["mean_square_eta"] == pytest.approx(expected, rel=EXACT)
        low, high = row["lyapunov_eta_interval"]
        assert row["mean_square_eta"] <= low <= high


@pytest.mark.parametrize("arrays,extra,message", [
    (None, [], "no such file"),
    ("text", [], "not an .npz"),
    ({"B": np.ones((4, 2))}, [], "no array 'A'"),
    ({"A": np.array([[1.0, np.nan], [0.0, 1.0]])}, [], "finite"),
    ({"A": np.ones((3, 2))}, ["--batch-size", "4"], "batch-size"),
    ({"A": np.ones((3, 2))}, ["--batch-size", "0"], "batch-size"),
    ({"A": np.ones((3, 2))}, ["--minibatch", "both"], "minibatch"),
    ({"A": np.eye(3), "b": np.ones(2)}, [], "b"),
    ({"A": np.eye(3)}, ["--seeds", "0"], "--seeds"),
    ({"A": np.eye(3)}, ["--lyapunov-steps", "0"], "--lyapunov-steps"),
    ({"A": np.eye(3)}, ["--problem", "quadratic"], "least-squares"),
])
def test_cli_regime_bad_data_is_one_line_exit_2(tmp_path, capsys, arrays, extra, message):
    if arrays is None:
        path = str(tmp_path / "missing.npz")
    elif arrays == "text":
        path = str(tmp_path / "bad.npz")
        (tmp_path / "bad.npz").write_text("not a zip")
    else:
        path = _data(tmp_path, **arrays)
    args = ["regime", "--problem", "least-squares", "--data", path, "--batch-size", "2", "--method", "gd", *extra]
    try:
        code = main(args)
    except SystemExit as raised:  # an argparse error
        code = raised.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("samtheory regime: error:") and message in err[0]


# -- bad input ---------------------------------------------------------------------------------------------------

MS = stability.mean_square_critical_learning_rate


@pytest.mark.parametrize("call,name", [
    (lambda: MS(st.Quadratic([1.0]), "gd", batch_size=1), "problem"),
    (lambda: MS(st.LeastSquares(np.eye(3)[:, :2], np.ones(3)), "gd", batch_size=1), "realizable"),
    (lambda: MS(SMALL, "sam", batch_size=1), "method"),
    (lambda: MS(SMALL, "gd", batch_size=0), "batch_size"),
    (lambda: MS(SMALL, "gd", batch_size=7), "batch_size"),
    (lambda: MS(SMALL, "gd", batch_size=1.5), "batch_size"),
    (lambda: MS(SMALL, "usam", batch_size=2, minibatch="both"), "minibatch"),
    (lambda: MS(SMALL, "gd", batch_size=2, replace="yes"), "replace"),
    (lambda: MS(SMALL, "gd", batch_size=2, algorithm="fast"), "algorithm"),
    (lambda: MS(SMALL, "gd", batch_size=2, solver="newton"), "solver"),
    (lambda: MS(SMALL, "gd", batch_size=2, rtol=0.5), "rtol"),
    (lambda: MS(SMALL, "usam", -0.1, batch_size=2), "rho"),
    (lambda: stability.mean_square_spectral_radius(SMALL, "gd", 0.0, batch_size=2), "eta"),
    (lambda: stability.lyapunov_exponent(SMALL, "gd", 0.1, batch_size=2, steps=1), "steps"),
    (lambda: stability.lyapunov_exponent(SMALL, "gd", 0.1, batch_size=2, burn_in=-1), "burn_in"),
    (lambda: stability.lyapunov_exponent(SMALL, "gd", 0.1, batch_size=2, seeds=0), "seeds"),
    (lambda: stability.lyapunov_exponent(SMALL, "gd", 0.1, batch_size=2, seed=-1), "seed"),
    (lambda: stability.lyapunov_exponent(SMALL, "gd", 0.1, batch_size=2, blocks=0), "blocks"),
    (lambda: stability.lyapunov_exponent(SMALL, "gd", 0.1, batch_size=2, confidence=1.5), "confidence"),
    (lambda: stability.lyapunov_critical_learning_rate(SMALL, "gd", batch_size=2, points=2), "points"),
    (lambda: stability.lyapunov_critical_learning_rate(SMALL, "gd", batch_size=2, eta_range=(2, 1)), "eta_range"),
    (lambda: stability.stochastic_critical_learning_rate(SMALL, "gd", batch_size=2, fraction=0), "fraction"),
    (lambda: stability.stochastic_critical_learning_rate(SMALL, "gd", batch_size=2, fraction=1.5), "fraction"),
    (lambda: stability.stochastic_critical_learning_rate(SMALL, "gd", batch_size=2, minibatch="x"), "minibatch"),
    (lambda: stability.gamma_distribution(SMALL, "usam", 0.1, 0.1, batch_size=2), "method"),
    (lambda: stability.gamma_distribution(SMALL, "susam", 0.1, 0.1, batch_size=2, quantiles=[2.0]), "quantiles"),
    (lambda: NoisyQuadratic([1.0, 2.0], -1.0), "noise"),
    (lambda: NoisyQuadratic([1.0, 2.0], np.ones((3, 3))), "noise"),
    (lambda: NoisyQuadratic([1.0, 2.0], np.array([[1.0, 2.0], [2.0, 1.0]])), "semidefinite"),
    (lambda: NoisyQuadratic([1.0], (np.array([1.0, -1.0]), np.array([0.5, 0.6]))), "sum to 1"),
    (lambda: NoisyQuadratic([1.0, 2.0], (np.array([1.0, -1.0]), np.array([0.5, 0.5]))), "noise values"),
    (lambda: NoisyQuadratic([1.0], 1.0, draws="both"), "draws"),
    (lambda: st.simulate(SMALL, "usam", 0.1, 0.1, steps=2, batch_size=2, minibatch="both"), "minibatch"),
    (lambda: theory.usam_noise_variance(0.1, 0.1, 1.0, 1.0, draws="x"), "draws"),
    (lambda: theory.usam_noise_variance(0.1, 0.1, 1.0, -1.0), "sigma2"),
    (lambda: theory.sam_noise_loss(0.1, 0.1, 1.0, 0.0), "sigma"),
])
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


HOSTILE = ["0.1", None, np.nan, np.inf, -1, 0, [], np.array([]), 1 + 2j, np.ones((2, 2)), True, 10**30]
BASELINES = {
    "mean_square": (stability.mean_square_critical_learning_rate,
                    dict(problem=SMALL, method="usam", rho=0.1, batch_size=2, minibatch="shared", replace=False,
                         algorithm="moments", solver="perron", rtol=1e-8)),
    "lyapunov": (stability.lyapunov_exponent,
                 dict(problem=SMALL, method="gd", eta=0.1, rho=0.0, batch_size=2, minibatch="shared", replace=False,
                      steps=20, burn_in=2, seeds=2, seed=0, blocks=2, confidence=0.9)),
    "noisy": (NoisyQuadratic, dict(eigenvalues=[1.0, 2.0], noise=0.5, draws="shared")),
    "variance": (theory.usam_noise_variance, dict(eta=0.1, rho=0.1, lam=1.0, sigma2=1.0, draws="shared")),
    "floor_loss": (theory.sam_noise_loss, dict(eta=0.1, rho=0.1, lam=1.0, sigma=1.0)),
}
HOSTILE_CASES = [(name, argument, k) for name, (_, baseline) in BASELINES.items() for argument in baseline
                 for k in range(len(HOSTILE))]


@pytest.mark.parametrize("name,argument,k", HOSTILE_CASES)
def test_hostile_arguments_are_refused_naming_them_or_give_a_clean_result(name, argument, k):
    # Every argument of each new public function, one at a time, replaced by a wrong type, shape or value: a
    # ValueError/TypeError that names the argument, or a result without NaN or a RuntimeWarning.
    function, baseline = BASELINES[name]
    arguments = {**baseline, argument: HOSTILE[k]}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        try:
            result = function(**arguments)
        except (ValueError, TypeError) as error:
            label = {"eigenvalues": "eigenvalues", "problem": "problem"}.get(argument, argument)
            assert label in str(error) or (argument == "method" and "method" in str(error)), str(error)
            return
    values = [getattr(result, field) for field in ("value", "exponent", "covariance") if hasattr(result, field)]
    values = values or [result]
    for value in values:
        assert not np.any(np.isnan(np.asarray(value, dtype=float))) or name in ("mean_square",)


@pytest.mark.parametrize("arguments, message", [((-1.0, 0.1), "lam must be > 0"), ((1.0, "x"), "rho must be a real number")])
def test_sam_noise_floor_refuses_bad_input_naming_it(arguments, message):
    with pytest.raises(ValueError, match=message):
        st.theory.sam_noise_floor(*arguments)
