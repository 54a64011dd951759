"""The engine: batching, status, divergence handling, minibatches, history, determinism."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st_

import samtheory as st
from samtheory.datasets import make_least_squares, make_logistic_regression

METHOD_NAMES = list(st.METHODS)


@pytest.mark.parametrize("method", METHOD_NAMES)
@given(lam=st_.lists(st_.floats(0.01, 100.0), min_size=1, max_size=6).map(np.array),
       etas=st_.lists(st_.floats(1e-4, 0.05), min_size=1, max_size=4),
       rhos=st_.lists(st_.floats(0.0, 1.0), min_size=1, max_size=3), seed=st_.integers(0, 1000))
def test_batched_run_equals_loop_over_rows(method, lam, etas, rhos, seed):
    """One call over an (η, ρ) grid gives each row exactly what a one-row call gives (tolerance 0: the
    arithmetic of a row does not depend on its neighbours)."""
    problem = st.Quadratic(lam)
    eta, rho = np.array(etas)[:, None], np.array(rhos)[None, :]
    batch = st.simulate(problem, method, eta, rho, steps=80, seed=seed)
    for i in range(len(etas)):
        for j in range(len(rhos)):
            row = st.simulate(problem, method, etas[i], rhos[j], steps=80, seed=seed)
            np.testing.assert_array_equal(batch.x[i, j], row.x)
            assert batch.status[i, j] == row.status
            assert batch.diverged_at[i, j] == row.diverged_at


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_chunking_does_not_change_results(method):
    problem = st.Quadratic(np.linspace(1, 50, 7), rotation=2)
    eta = np.geomspace(1e-3, 0.08, 50)[:, None]
    rho = np.linspace(0, 0.3, 7)[None, :]
    whole = st.simulate(problem, method, eta, rho, steps=200, seed=np.arange(3)[:, None, None])
    chunked = st.simulate(problem, method, eta, rho, steps=200, seed=np.arange(3)[:, None, None], chunk_size=37)
    np.testing.assert_array_equal(whole.x, chunked.x)
    np.testing.assert_array_equal(whole.diverged_at, chunked.diverged_at)


def test_same_seed_same_result_bit_for_bit():
    problem = make_logistic_regression(60, 5, seed=3)
    kwargs = dict(steps=150, seed=np.array([0, 1, 2]), batch_size=8, record_every=10)
    a = st.simulate(problem, "ssam", np.array([0.05, 0.5, 5.0])[:, None], 0.1, **kwargs)
    b = st.simulate(problem, "ssam", np.array([0.05, 0.5, 5.0])[:, None], 0.1, **kwargs)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.history.gamma, b.history.gamma)
    np.testing.assert_array_equal(a.history.loss, b.history.loss)


def test_status_codes_on_a_quadratic():
    """GD converges below 2/λ_max and diverges above (O1); SAM stays bounded on its 2-cycle (O3); USAM
    diverges above 2/(λ_max(1 + ρλ_max)) (O2). Margins of 10% keep the classification unambiguous."""
    problem = st.Quadratic([1.0, 10.0, 100.0])
    x0 = np.ones(3)
    gd = st.simulate(problem, "gd", [0.9 * 0.02, 1.1 * 0.02], steps=3000, x0=x0)
    assert gd.status_name.tolist() == ["converged", "diverged"]
    sam = st.simulate(problem, "sam", 0.9 * 0.02, 0.05, steps=3000, x0=x0)
    assert sam.status_name == "bounded"
    usam_edge = 2 / (100 * (1 + 0.05 * 100))
    usam = st.simulate(problem, "usam", [0.9 * usam_edge, 1.1 * usam_edge], 0.05, steps=3000, x0=x0)
    assert usam.status_name.tolist() == ["converged", "diverged"]
    assert usam.diverged_at[0] == -1 and usam.diverged_at[1] > 0


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_divergent_rows_are_frozen_finite_and_silent(method):
    """Wildly divergent configurations leak no NaN, inf or warning (pytest turns RuntimeWarning into errors)."""
    problem = st.Quadratic([1.0, 1e3, 1e5])
    eta = np.geomspace(1e-11, 10.0, 30)
    result = st.simulate(problem, method, eta, 0.5, steps=500, seed=0, record_every=50)
    assert result.diverged.any() and not result.diverged.all()
    for field in (result.x, result.loss, result.grad_norm, result.distance, result.history.loss,
                  result.history.grad_norm, result.history.gamma):
        assert np.all(np.isfinite(field))
    frozen = result.diverged
    # Frozen at detection: the gradient there passed the threshold 10⁶ · max(‖g(x0)‖, 1).
    g0 = np.linalg.norm(problem.grad(problem.initial_point(0)))
    assert np.all(result.grad_norm[frozen] > 1e6 * max(g0, 1.0))
    # History after the freeze holds the frozen values.
    later = result.history.steps[:, None] > result.diverged_at[None, :]
    np.testing.assert_array_equal(np.where(later & frozen, result.history.loss, 0),
                                  np.where(later & frozen, result.loss[None, :], 0))


def test_history_records_gamma_and_ratio():
    problem = st.Quadratic([1.0, 10.0, 100.0], rotation=0)
    result = st.simulate(problem, "susam", 0.01, 0.05, steps=100, record_every=10, x0=problem.initial_point(1))
    history = result.history
    np.testing.assert_array_equal(history.steps, np.arange(0, 101, 10))
    assert history.gamma.shape == (11,)
    # γ = ‖g(x)‖/‖g(y)‖ = 1/ratio for susam; both computed from the same norms: 1e-15 relative.
    np.testing.assert_allclose(history.gamma[:-1] * history.ascent_ratio[:-1], 1.0, rtol=1e-15)
    np.testing.assert_allclose(history.loss[-1], result.loss, rtol=0)
    np.testing.assert_allclose(history.distance[0], np.linalg.norm(problem.initial_point(1)), rtol=1e-15)


class _LoggingLeastSquares(st.LeastSquares):
    """Records every minibatch the engine asks for, and every gradient evaluation."""

    def __init__(self, *args):
        super().__init__(*args)
        self.batches, self.calls = [], []

    def gradient_oracle(self, batch=None):
        if batch is None:
            return super().gradient_oracle(None)
        key = tuple(batch.tolist())
        self.batches.append(key)

        def grad(X):
            self.calls.append(key)
            return self._grad(X, batch)

        return grad


def test_both_gradients_of_a_step_share_one_minibatch():
    base = make_least_squares(40, 3, seed=0)
    problem = _LoggingLeastSquares(base.A, base.b)
    st.simulate(problem, "sam", 0.05, 0.1, steps=25, seed=7, batch_size=5)
    assert len(problem.batches) == 25
    assert problem.calls == [b for b in problem.batches for _ in range(2)]


def test_minibatch_sequence_depends_only_on_the_seed():
    base = make_least_squares(40, 3, seed=0)
    first, second = _LoggingLeastSquares(base.A, base.b), _LoggingLeastSquares(base.A, base.b)
    st.simulate(first, "ssam", 0.05, 0.1, steps=20, seed=4, batch_size=5)
    # workers=1: the logging problem keeps Python state, so it is not thread-safe.
    st.simulate(second, "gd", [0.01, 0.02, 0.2], 0.0, steps=20, seed=4, batch_size=5, x0=np.ones(3), workers=1,
                chunk_size=3)
    assert first.batches == second.batches
    other = _LoggingLeastSquares(base.A, base.b)
    st.simulate(other, "ssam", 0.05, 0.1, steps=20, seed=5, batch_size=5)
    assert other.batches != first.batches


def test_workers_do_not_change_results():
    problem = make_logistic_regression(50, 4, seed=1)
    eta = np.geomspace(0.01, 20.0, 40)[:, None]
    kwargs = dict(steps=60, seed=np.arange(3)[:, None, None], batch_size=10, record_every=20)
    one = st.simulate(problem, "ssam", eta, 0.05, workers=1, **kwargs)
    many = st.simulate(problem, "ssam", eta, 0.05, workers=3, chunk_size=7, **kwargs)
    np.testing.assert_array_equal(one.x, many.x)
    np.testing.assert_array_equal(one.history.loss, many.history.loss)
    np.testing.assert_array_equal(one.diverged_at, many.diverged_at)


def test_stochastic_grid_over_seeds_equals_loop():
    problem = make_logistic_regression(50, 4, seed=1)
    seeds = np.arange(4)
    batch = st.simulate(problem, "usam", 0.5, 0.05, steps=100, seed=seeds, batch_size=10)
    for s in seeds:
        row = st.simulate(problem, "usam", 0.5, 0.05, steps=100, seed=int(s), batch_size=10)
        np.testing.assert_array_equal(batch.x[s], row.x)


def test_sgd_on_interpolating_least_squares_converges():
    """With b = A x* (zero residual) SGD with a constant step converges to x*."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((30, 3))
    problem = st.LeastSquares(A, A @ np.array([1.0, -2.0, 0.5]))
    result = st.simulate(problem, "gd", 0.05, steps=3000, seed=0, batch_size=5)
    assert result.status_name == "converged"
    # converged means ‖g(x_T)‖ ≤ 1e-6 ‖g(x_0)‖; the distance follows within the conditioning.
    assert result.distance < 1e-4


def test_sam_two_cycle_amplitude():
    """O3: deterministic SAM on a quadratic settles on ±a·u_1 with a = ηρλ_1/(2 − ηλ_1)."""
    lam = np.array([1.0, 10.0, 100.0])
    eta, rho = np.array([0.01, 0.015, 0.018]), 0.05
    result = st.simulate(st.Quadratic(lam), "sam", eta, rho, steps=4000, x0=np.ones(3))
    amplitude = eta * rho * 100 / (2 - eta * 100)
    # After 4000 steps the other components have decayed below 1e-10 relative to a.
    np.testing.assert_allclose(np.abs(result.x[:, 2]), amplitude, rtol=1e-10)
    assert np.all(np.abs(result.x[:, :2]) < 1e-10 * amplitude[:, None])


@pytest.mark.parametrize("bad, match", [
    (dict(eta=-0.1), "eta must be > 0"),
    (dict(eta=np.nan), "eta must be finite"),
    (dict(eta=0.0), "eta must be > 0"),
    (dict(rho=-1.0), "rho must be >= 0"),
    (dict(rho=np.inf), "rho must be finite"),
    (dict(steps=0), "steps must be an integer >= 1"),
    (dict(steps=2.5), "steps must be an integer >= 1"),
    (dict(method="adam"), "method must be one of gd, sam, usam, ssam, susam"),
    (dict(eta=[0.1, 0.2], rho=[0.1, 0.2, 0.3]), "must broadcast together"),
    (dict(x0=np.ones(4)), r"x0 must have shape \(3,\)"),
    (dict(x0=[np.nan, 0, 0]), "x0 must be finite"),
    (dict(seed=-1), "seed must be a non-negative integer"),
    (dict(seed=0.5), "seed must be a non-negative integer"),
    (dict(batch_size=4), "batch_size must be None for Quadratic"),
    (dict(basis="fourier"), "basis must be one of"),
    (dict(adaptive=True, basis="eigen"), "adaptive=True is not"),
    (dict(record_every=-1), "record_every must be an integer >= 0"),
    (dict(tol=0.0), "tol must be > 0"),
    (dict(divergence_factor=0.5), "divergence_factor must be > 1"),
    (dict(adaptive="yes"), "adaptive must be True or False"),
    (dict(workers=0), "workers must be an integer >= 1"),
    (dict(eta=np.array([])), "the batch is empty"),
])
def test_bad_input_raises_value_error_naming_the_argument(bad, match):
    kwargs = dict(problem=st.Quadratic([1.0, 2.0, 3.0]), method="sam", eta=0.1, rho=0.05, steps=10)
    kwargs.update(bad)
    with pytest.raises(ValueError, match=match):
        st.simulate(**kwargs)


def test_bad_problem_and_rule_output():
    with pytest.raises(ValueError, match="problem must be a samtheory Problem"):
        st.simulate("quadratic", "gd", 0.1, steps=1)
    with pytest.raises(ValueError, match="batch_size must be <= n_samples"):
        st.simulate(make_least_squares(10, 2), "gd", 0.1, steps=1, batch_size=11)
    with pytest.raises(ValueError, match="must return a samtheory.methods.Step"):
        st.simulate(st.Quadratic([1.0]), lambda x, grad, eta, rho, **o: x - eta * grad(x), 0.1, steps=1)


@pytest.mark.parametrize("problem", [st.Quadratic([1.0, 10.0, 100.0]), st.Quadratic([1.0, 10.0, 100.0], rotation=1),
                                     make_least_squares(30, 3, seed=0)], ids=["diagonal", "rotated", "least_squares"])
def test_recorded_iterates_are_the_iterates(problem):
    eta = np.array([0.005, 0.05])[:, None]
    kwargs = dict(steps=40, seed=np.array([0, 1]), record_every=10)
    full = st.simulate(problem, "ssam", eta, 0.05, record_iterates=True, **kwargs)
    assert full.history.x.shape == (5, 2, 2, problem.dim)
    np.testing.assert_array_equal(full.history.x[-1], full.x)
    for slot, steps in enumerate(full.history.steps[1:], start=1):
        short = st.simulate(problem, "ssam", eta, 0.05, steps=int(steps), seed=np.array([0, 1]))
        # Same arithmetic; only the rotation back from the eigenbasis may round differently (matrix shapes).
        np.testing.assert_allclose(full.history.x[slot], short.x, rtol=1e-13, atol=1e-15)


def test_record_iterates_needs_record_every():
    with pytest.raises(ValueError, match="record_iterates=True needs record_every >= 1"):
        st.simulate(st.Quadratic([1.0]), "gd", 0.1, steps=5, record_iterates=True)


@settings(max_examples=25)
@example(method="ssam", chunk_size=1, workers=1, position=1, seed=0)  # 1 ulp in grad_norm before the fix
@given(method=st_.sampled_from(METHOD_NAMES), chunk_size=st_.integers(1, 9), workers=st_.integers(1, 3),
       position=st_.integers(0, 6), seed=st_.integers(0, 3))
def test_quadratic_results_do_not_depend_on_chunks_workers_or_batch_position(method, chunk_size, workers, position,
                                                                          seed):
    """Issue 15: every result field, final norms included, is bit-identical whatever the chunking, the threads
    and the row's position in the batch (a single run included), on a quadratic in its eigenbasis."""
    problem = st.Quadratic([1.0, 10.0, 100.0])
    eta = np.array([0.001, 0.003, 0.01, 0.015, 0.019, 0.0199, 0.021])
    batch = st.simulate(problem, method, eta, 0.05, seed=seed, steps=300)
    other = st.simulate(problem, method, eta, 0.05, seed=seed, steps=300, chunk_size=chunk_size, workers=workers)
    single = st.simulate(problem, method, eta[position], 0.05, seed=seed, steps=300)
    for field in ("x", "loss", "grad_norm", "distance", "status", "diverged_at"):
        np.testing.assert_array_equal(getattr(other, field), getattr(batch, field))
        np.testing.assert_array_equal(getattr(single, field), getattr(batch, field)[position])


# -- hostile rules, problems and starting points (issue 15) --------------------------------------------------

def _gd_like(transform):
    """A user rule: GD whose output goes through ``transform`` (to make it return garbage)."""
    def rule(x, grad, eta, rho, **options):
        g = grad(x)
        return transform(st.Step(x - eta * g, np.linalg.norm(g, axis=1)), x)
    rule.__name__ = "my_rule"
    return rule


@pytest.mark.parametrize("transform, error, match", [
    (lambda step, x: step._replace(x=step.x[:, :1]), ValueError, r"'my_rule' \(step 0\) returned Step.x of shape \(2, 1\)"),
    (lambda step, x: step._replace(x=step.x[:1]), ValueError, r"Step.x of shape \(1, 3\); it must have shape \(2, 3\)"),
    (lambda step, x: step._replace(x=step.x.tolist()), TypeError, r"'my_rule' \(step 0\) returned Step.x of list"),
    (lambda step, x: step._replace(x=step.x.astype(np.float32)), TypeError, "Step.x of dtype float32"),
    (lambda step, x: step._replace(x=step.x + 0j), TypeError, "Step.x of dtype complex128"),
    (lambda step, x: step._replace(grad_norm=step.grad_norm[:1]), ValueError, r"Step.grad_norm of shape \(1,\)"),
    (lambda step, x: step._replace(gamma=np.ones((2, 1))), ValueError, r"Step.gamma of shape \(2, 1\)"),
    (lambda step, x: step._replace(grad_norm=np.full(2, np.nan)), ValueError,
     "'my_rule' returned grad_norm NaN at step 0 at a finite x"),
    (lambda step, x: step.x, TypeError, "'my_rule' .* must return a samtheory.methods.Step"),
])
def test_a_rule_returning_garbage_is_named(transform, error, match):
    """Before, a wrong-shaped iterate was broadcast into the batch and a NaN norm read as divergence."""
    with pytest.raises(error, match=match):
        st.simulate(st.Quadratic([1.0, 2.0, 3.0]), _gd_like(transform), [0.1, 0.2], steps=3, seed=0, workers=1)


@pytest.mark.parametrize("rule", [lambda x: x, lambda x, grad, eta, rho: None, lambda x, grad, eta, rho, *, adaptive: None])
def test_a_rule_with_the_wrong_signature_is_refused_before_running(rule):
    """It used to fail inside the loop with Python's own TypeError, which names neither the argument nor the rule."""
    with pytest.raises(TypeError, match=r"method: the update rule '<lambda>' must accept rule\(x, grad, eta, rho"):
        st.simulate(st.Quadratic([1.0]), rule, 0.1, steps=2)
    with pytest.raises(TypeError, match=r"method: the update rule '<lambda>' must accept"):
        st.stability.jacobian(st.Quadratic([1.0]), rule, [1.0], 0.1, 0.1)


def test_a_rule_that_raises_is_named_and_its_error_chained():
    def broken(x, grad, eta, rho, **options):
        raise ZeroDivisionError("my bug")

    with pytest.raises(RuntimeError, match="update rule 'broken' raised ZeroDivisionError at step 0: my bug") as info:
        st.simulate(st.Quadratic([1.0]), broken, 0.1, steps=2)
    assert isinstance(info.value.__cause__, ZeroDivisionError)


class _Garbage(st.Quadratic):
    """A Quadratic whose gradient is replaced by ``wrong(X)``."""

    def __init__(self, wrong):
        super().__init__([1.0, 2.0])
        self.wrong = wrong

    def _grad(self, X, batch):
        return self.wrong(X)


@pytest.mark.parametrize("wrong, error, match", [
    (lambda X: X[:, :1], ValueError, r"_Garbage's gradient must return an array of the shape of its input \(1, 2\)"),
    (lambda X: X.tolist(), TypeError, "_Garbage's gradient must return a float64 array"),
    (lambda X: X.astype(np.complex128), TypeError, "_Garbage's gradient must return a float64 array"),
    (lambda X: 1 / 0, RuntimeError, "problem _Garbage's gradient raised ZeroDivisionError"),
])
@pytest.mark.parametrize("method", ["gd", "ssam"])
def test_a_problem_returning_garbage_is_named(wrong, error, match, method):
    with pytest.raises(error, match=match):
        st.simulate(_Garbage(wrong), method, 0.1, 0.05, steps=2, workers=1)


def test_huge_initial_points_leak_no_warning_and_are_marked():
    """x0 = 1e200: the loss overflows (used to warn and return a non-diverged row with loss inf)."""
    problem = st.Quadratic([1.0, 2.0, 3.0])
    result = st.simulate(problem, "sam", [0.1, 0.2], 0.05, steps=10, x0=np.full(3, 1e200), record_every=5)
    assert result.status_name.tolist() == ["diverged", "diverged"]
    assert result.diverged_at.tolist() == [10, 10]  # the loss is still past float64's range at T
    assert np.all(np.isfinite(result.x)) and np.all(np.isfinite(result.grad_norm))
    assert np.all(result.loss == np.inf)
    assert not np.isnan(result.history.loss).any()


def test_an_infinite_initial_gradient_diverges_at_step_zero():
    """‖g(x0)‖ = inf made the threshold inf, which an infinite ‖g‖ never passed."""
    problem = st.Quadratic([1e300, 1.0])
    result = st.simulate(problem, "gd", [0.1, 1e-310], steps=5, x0=[1e10, 1.0])
    assert result.status_name.tolist() == ["diverged", "diverged"]
    assert result.diverged_at.tolist() == [0, 0]
    np.testing.assert_array_equal(result.x, [[1e10, 1.0], [1e10, 1.0]])  # frozen at x0


@pytest.mark.parametrize("bad, error, match", [
    (dict(eta=np.array([0.1 + 1j])), TypeError, "eta must be a real number or array of real numbers, got complex"),
    (dict(x0=np.array([1j, 0.0, 0.0])), TypeError, "x0 must be a real number .* got complex"),
    (dict(rho=np.array([0.1], dtype=object)), TypeError, r"rho must be .* got objects \(dtype object\)"),
    (dict(eta="0.1"), TypeError, "eta must be .* got the string '0.1'"),
    (dict(eta=True), TypeError, "eta must be .* got booleans"),
    (dict(x0=1.0), ValueError, r"x0 must have shape \(3,\)"),
    (dict(x0=np.ones((2, 1))), ValueError, r"x0 must have shape \(3,\)"),
    (dict(tol=[1e-6, 1e-3]), ValueError, "tol must be a single number"),
    (dict(divergence_factor=np.inf), ValueError, "divergence_factor must be finite"),
    (dict(truncate=1), TypeError, "truncate must be True or False"),
    (dict(record_iterates="no"), TypeError, "record_iterates must be True or False"),
    (dict(progress=None), TypeError, "progress must be True or False"),
    (dict(basis=["eigen"]), ValueError, "basis must be one of"),
    (dict(seed=np.uint64(2**63 + 5)), ValueError, "seed must be a non-negative integer"),
    (dict(seed=True), TypeError, "seed must be a non-negative integer"),
])
def test_wrong_types_and_shapes_raise_naming_the_argument(bad, error, match):
    """Complex arrays were cast to real (a warning only), strings and bools read as numbers, a number x0 spread
    over the coordinates."""
    kwargs = dict(problem=st.Quadratic([1.0, 2.0, 3.0]), method="sam", eta=0.1, rho=0.05, steps=10)
    kwargs.update(bad)
    with pytest.raises(error, match=match):
        st.simulate(**kwargs)


def test_numpy_bools_are_flags_everywhere():
    """np.bool_ flags are accepted like bools (the flag checks used to disagree on them)."""
    problem = st.Quadratic([1.0, 2.0])
    a = st.simulate(problem, "ssam", 0.1, 0.05, steps=5, truncate=np.True_, adaptive=np.False_,
                    record_iterates=np.True_, record_every=1)
    b = st.simulate(problem, "ssam", 0.1, 0.05, steps=5, truncate=True, adaptive=False, record_iterates=True,
                    record_every=1)
    np.testing.assert_array_equal(a.history.x, b.history.x)
    assert st.stability.jacobian(problem, "ssam", [1.0, 1.0], 0.1, 0.05, truncate=np.True_).shape == (2, 2)
    from samtheory.convex import optima
    assert optima.solve(problem, polish=np.False_).status == "optimal"
