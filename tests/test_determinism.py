"""Determinism (issue 15): a configuration's row of a ``simulate`` result is bit-identical whatever the rest of the
batch, its position in it, ``chunk_size`` and ``workers`` — on every built-in problem, the ones whose gradients
are matrix products (least squares, logistic regression, a quadratic simulated with its dense H) included.

Every comparison is exact (tolerance 0): that is the promise. Each property draws problems, methods, batch
sizes, chunk sizes, worker counts and positions with hypothesis.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st_

import samtheory as st
from samtheory.datasets import make_least_squares, make_logistic_regression

_SPD = (lambda M: M @ M.T + 0.5 * np.eye(5))(np.random.default_rng(7).standard_normal((5, 5)))

#: name -> (problem, extra simulate arguments). d >= 8 somewhere: NumPy sums 8 or more numbers pairwise along a
#: contiguous axis, sequentially along a strided one, so a layout-dependent norm would show there.
CASES = {
    "diagonal": (st.Quadratic([27.0, 110.0, 1.0]), {}),
    "diagonal_d9": (st.Quadratic(np.geomspace(0.5, 60.0, 9), minimizer=np.linspace(-1, 1, 9)), {}),
    "rotated_eigenbasis": (st.Quadratic(np.geomspace(1.0, 50.0, 6), rotation=3), {}),
    "rotated_dense": (st.Quadratic(np.geomspace(1.0, 50.0, 6), rotation=3), {"basis": "dense"}),
    "from_matrix_dense": (st.Quadratic.from_matrix(_SPD, minimizer=np.arange(5.0)), {"basis": "dense"}),
    "least_squares": (make_least_squares(60, 9, seed=1), {}),
    "least_squares_minibatch": (make_least_squares(60, 9, seed=1), {"batch_size": 7}),
    "logistic": (make_logistic_regression(60, 8, l2=1e-2, seed=2), {}),
    "logistic_no_l2_minibatch": (make_logistic_regression(60, 8, l2=0.0, seed=2), {"batch_size": 9}),
    "saddle": (st.Saddle(2.0, 1.0, 0.5), {}),
    "factorization": (st.ScalarFactorization(2.0), {}),
}

configurations = st_.fixed_dictionaries({
    "case": st_.sampled_from(sorted(CASES)),
    "method": st_.sampled_from(sorted(st.METHODS)),
    # η·β from 1e-3 to 3: converging, bounded and diverging rows in one batch
    "eta_beta": st_.lists(st_.floats(1e-3, 3.0), min_size=1, max_size=24),
    "rho": st_.floats(0.0, 0.5),
    "seeds": st_.lists(st_.integers(0, 3), min_size=1, max_size=24),
    "options": st_.sampled_from([{}, {"record_every": 5}, {"record_every": 7, "record_iterates": True},
                                 {"adaptive": True}, {"truncate": True}]),
})


def _batch(draw):
    problem, extra = CASES[draw["case"]]
    beta = problem.beta if problem.beta else 2.0
    n = min(len(draw["eta_beta"]), len(draw["seeds"]))
    eta = np.array(draw["eta_beta"][:n]) / beta
    seeds = np.array(draw["seeds"][:n])
    options = dict(extra, **draw["options"])
    return problem, draw["method"], eta, draw["rho"], seeds, options


def _assert_rows_equal(a: st.SimulationResult, b: st.SimulationResult, rows_a=slice(None), rows_b=slice(None)):
    """Every field of the result, bit for bit (history fields have the record axis first)."""
    for field in ("x", "loss", "grad_norm", "distance", "status", "diverged_at"):
        left, right = getattr(a, field), getattr(b, field)
        assert (left is None) == (right is None), field
        if left is not None:
            np.testing.assert_array_equal(left[rows_a], right[rows_b], err_msg=field)
    assert (a.history is None) == (b.history is None)
    if a.history is not None:
        for field in ("loss", "grad_norm", "gamma", "ascent_ratio", "distance", "x"):
            left, right = getattr(a.history, field), getattr(b.history, field)
            assert (left is None) == (right is None), field
            if left is not None:
                np.testing.assert_array_equal(left[:, rows_a], right[:, rows_b], err_msg=f"history.{field}")


@given(draw=configurations, chunk_size=st_.integers(1, 25), workers=st_.integers(1, 3))
def test_chunk_size_and_workers_change_no_bit(draw, chunk_size, workers):
    problem, method, eta, rho, seeds, options = _batch(draw)
    reference = st.simulate(problem, method, eta, rho, steps=40, seed=seeds, workers=1, **options)
    variant = st.simulate(problem, method, eta, rho, steps=40, seed=seeds, workers=workers, chunk_size=chunk_size,
                          **options)
    _assert_rows_equal(reference, variant)


@given(draw=configurations, data=st_.data())
def test_a_row_does_not_depend_on_the_rest_of_its_batch(draw, data):
    """Batched = looped: one configuration run alone equals its row in a batch, at any position."""
    problem, method, eta, rho, seeds, options = _batch(draw)
    position = data.draw(st_.integers(0, eta.size - 1), label="position")
    batch = st.simulate(problem, method, eta, rho, steps=40, seed=seeds, **options)
    alone = st.simulate(problem, method, eta[position], rho, steps=40, seed=int(seeds[position]), **options)
    _assert_rows_equal(batch, alone, rows_a=position, rows_b=Ellipsis)


@settings(max_examples=10)
@given(shift=st_.integers(1, 5), chunk_size=st_.integers(1, 4))
def test_explicit_x0_rows_do_not_depend_on_their_neighbours(shift, chunk_size):
    """The same with explicit initial points (a grid of x0), on the dense-product problems."""
    for name in ("least_squares", "rotated_dense", "logistic"):
        problem, extra = CASES[name]
        x0 = np.random.default_rng(shift).standard_normal((6, problem.dim))
        eta = np.geomspace(0.05, 2.5, 6) / problem.beta
        batch = st.simulate(problem, "ssam", eta, 0.05, steps=60, x0=x0, chunk_size=chunk_size, **extra)
        rolled = st.simulate(problem, "ssam", np.roll(eta, shift), 0.05, steps=60, x0=np.roll(x0, shift, axis=0),
                             **extra)
        np.testing.assert_array_equal(np.roll(batch.x, shift, axis=0), rolled.x)
        np.testing.assert_array_equal(np.roll(batch.grad_norm, shift), rolled.grad_norm)


# -- the cases of issue 15, each of which differed before ---------------------------------------------------

@pytest.mark.parametrize("make", [make_least_squares, make_logistic_regression], ids=["least_squares", "logistic"])
def test_finite_sums_are_the_same_on_one_or_two_workers_and_alone(make):
    problem = make()
    etas = [0.01, 0.05, 0.1]
    one = st.simulate(problem, "ssam", etas, 0.05, steps=300, workers=1)
    two = st.simulate(problem, "ssam", etas, 0.05, steps=300, workers=2)
    alone = st.simulate(problem, "ssam", etas[2], 0.05, steps=300)
    _assert_rows_equal(one, two)
    _assert_rows_equal(one, alone, rows_a=2, rows_b=Ellipsis)


def test_rotated_quadratic_with_the_dense_basis():
    problem = st.Quadratic(np.linspace(1.0, 50.0, 5), rotation=3)
    etas = [0.01, 0.05]
    one = st.simulate(problem, "ssam", etas, 0.05, steps=300, basis="dense", workers=1)
    two = st.simulate(problem, "ssam", etas, 0.05, steps=300, basis="dense", workers=2)
    alone = st.simulate(problem, "ssam", etas[1], 0.05, steps=300, basis="dense")
    _assert_rows_equal(one, two)
    _assert_rows_equal(one, alone, rows_a=1, rows_b=Ellipsis)


@pytest.mark.parametrize("eigenvalues, eta", [([27.0, 110.0, 1.0], 1.125), ([27.0, 110.0, 1.0], 0.01),
                                              (np.geomspace(0.5, 60.0, 9), 0.01), (np.geomspace(0.5, 60.0, 17), 0.01)])
def test_final_grad_norm_of_one_row_chunks(eigenvalues, eta):
    """The final ‖g‖ is taken in the layout of the steps, so one-row chunks round it as larger ones do (it
    was taken on C-ordered rows, whose sum of squares NumPy vectorizes in another order)."""
    problem = st.Quadratic(eigenvalues)
    seeds = np.r_[0, 0, np.arange(62)]
    default = st.simulate(problem, "gd", eta, steps=5, seed=seeds)
    one_row = st.simulate(problem, "gd", eta, steps=5, seed=seeds, chunk_size=1)
    _assert_rows_equal(default, one_row)
