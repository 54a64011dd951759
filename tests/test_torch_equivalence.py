"""The torch optimizer with plain SGD equals the NumPy engine (THEORY.md §2): the test tying the backends together.

For every method × (adaptive, truncate), 100 steps of ``SAMOptimizer`` in float64 are compared with the NumPy
update rule iterate by iterate and with ``samtheory.simulate``'s final iterate. Tolerance 1e-10 relative:
both sides compute the same float64 expressions, differing only in summation order (autograd vs. the closed-form
gradient, einsum vs. foreach norms), i.e. a few ulps per step, 1e-14 after 100 steps of a stable map; 1e-10
leaves room for the amplification by the (locally expansive) SAM and indefinite dynamics.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import samtheory as st
from samtheory.datasets import make_least_squares
from samtheory.torch import SAMOptimizer

STEPS = 100
RHO = 0.05
RELATIVE_TOLERANCE = 1e-10  # see the module docstring
OPTIONS = list(itertools.product(("gd", "sam", "usam", "ssam", "susam"), (False, True), (False, True)))


def _quadratic_loss(problem):
    H = torch.tensor(problem.hessian_matrix, dtype=torch.float64)
    center = torch.tensor(problem.center, dtype=torch.float64)

    def loss(x):
        shifted = x - center
        return 0.5 * shifted @ (H @ shifted)
    return loss


def _least_squares_loss(problem):
    A = torch.tensor(problem.A, dtype=torch.float64)
    b = torch.tensor(problem.b, dtype=torch.float64)
    return lambda x: 0.5 * torch.mean((A @ x - b) ** 2)


def _problems():
    rng = np.random.default_rng(7)
    diagonal = st.Quadratic([1.0, 10.0, 100.0], minimizer=[0.3, -0.2, 0.1])
    rotated = st.Quadratic(np.geomspace(1.0, 50.0, 6), rotation=11, minimizer=rng.standard_normal(6))
    # A negative eigenvalue makes ‖g(y)‖ < ‖g(x)‖ along it, so γ > 1 and truncate has work to do (THEORY.md O11).
    indefinite = st.Quadratic([-2.0, 1.0, 5.0, 20.0], rotation=5, minimizer=rng.standard_normal(4))
    least_squares = make_least_squares(40, 5, noise=0.3, seed=3)
    return {
        "diagonal": (diagonal, _quadratic_loss(diagonal)),
        "rotated": (rotated, _quadratic_loss(rotated)),
        "indefinite": (indefinite, _quadratic_loss(indefinite)),
        "least_squares": (least_squares, _least_squares_loss(least_squares)),
    }


PROBLEMS = _problems()


def _learning_rate(problem, x0, adaptive=False) -> float:
    # Half the USAM edge 2/(β(1 + ρβ)) (THEORY.md O2): every method stays bounded, and SAM still bounces. The
    # adaptive ascent ρ T² g multiplies the curvature seen by the ascent by |x|², hence the extra factor.
    beta = problem.beta
    scale = 1.0 + (np.max(np.abs(x0)) + 1.0) ** 2 if adaptive else 1.0
    return 1.0 / (beta * (1.0 + RHO * beta * scale))


def _relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.linalg.norm(actual - expected) / max(np.linalg.norm(expected), 1e-300))


@pytest.mark.parametrize("problem_name", list(PROBLEMS))
@pytest.mark.parametrize("method, adaptive, truncate", OPTIONS)
def test_torch_iterates_equal_numpy(problem_name, method, adaptive, truncate):
    problem, loss_fn = PROBLEMS[problem_name]
    x0 = problem.initial_point(seed=1) + 0.5
    eta = _learning_rate(problem, x0, adaptive)
    x = torch.nn.Parameter(torch.tensor(x0, dtype=torch.float64))
    optimizer = SAMOptimizer([x], torch.optim.SGD, method=method, rho=RHO, adaptive=adaptive, truncate=truncate,
                             lr=eta)

    def closure():
        loss = loss_fn(x)
        loss.backward()
        return loss

    rule = st.METHODS[method]
    reference = x0[None, :].copy()
    initial_grad_norm = float(np.linalg.norm(problem.grad(reference)))
    gammas = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        optimizer.step(closure)
        step = rule(reference, problem.grad, eta, RHO, adaptive=adaptive, truncate=truncate)
        reference = step.x
        error = _relative_error(x.detach().numpy(), reference[0])
        assert error <= RELATIVE_TOLERANCE, f"step {len(gammas)}: relative error {error:.3g}"
        if step.gamma is not None:
            # γ is a ratio of gradient norms: the gradients' rounding error is set by the scale at the start,
            # so γ's relative error grows like ‖g(x_0)‖/‖g(x_t)‖ as least squares converges.
            conditioning = max(1.0, initial_grad_norm / float(step.grad_norm[0]))
            torch_gamma = optimizer.last_stats.gamma.item()
            assert abs(torch_gamma - step.gamma[0]) <= RELATIVE_TOLERANCE * conditioning * abs(step.gamma[0])
            gammas.append(step.gamma[0])
        else:
            gammas.append(1.0)
            assert optimizer.last_stats.gamma is None

    engine = st.simulate(problem, method, eta, RHO, steps=STEPS, x0=x0, adaptive=adaptive, truncate=truncate)
    assert engine.status != st.DIVERGED  # a frozen engine row would not be comparable
    assert _relative_error(x.detach().numpy(), engine.x) <= RELATIVE_TOLERANCE
    if truncate and method in ("ssam", "susam"):
        assert max(gammas) <= 1.0  # exact: min(1, γ)
    if problem_name == "indefinite" and method in ("ssam", "susam") and not truncate:
        assert max(gammas) > 1.0  # the test above exercised truncation where it matters


def test_truncation_changes_the_iterates_where_gamma_exceeds_one():
    # Guards against a vacuous truncate check: on the indefinite quadratic the options must give different paths.
    problem, loss_fn = PROBLEMS["indefinite"]
    finals = []
    x0 = problem.initial_point(seed=1) + 0.5
    for truncate in (False, True):
        x = torch.nn.Parameter(torch.tensor(x0, dtype=torch.float64))
        optimizer = SAMOptimizer([x], method="susam", rho=RHO, truncate=truncate, lr=_learning_rate(problem, x0))
        for _ in range(STEPS):
            optimizer.zero_grad()
            loss_fn(x).backward()
            optimizer.step(lambda: loss_fn(x).backward())
        finals.append(x.detach().numpy().copy())
    assert _relative_error(finals[0], finals[1]) > 1e-6  # far above rounding (1e-14)


def test_zero_gradient_start_matches_numpy_convention():
    # x0 = x*: ‖g(x)‖ = 0, so ε = 0 and γ = 1 (THEORY.md §2); no NaN on either side, and x stays at x*.
    problem, loss_fn = PROBLEMS["rotated"]
    for method, adaptive in itertools.product(("sam", "ssam", "susam"), (False, True)):
        x = torch.nn.Parameter(torch.tensor(problem.center, dtype=torch.float64))
        optimizer = SAMOptimizer([x], method=method, rho=RHO, adaptive=adaptive, lr=0.01)
        optimizer.zero_grad()
        loss_fn(x).backward()
        assert float(x.grad.abs().max()) == 0.0  # x − x* is exactly 0
        optimizer.step(lambda: loss_fn(x).backward())
        step = st.METHODS[method](problem.center[None], problem.grad, 0.01, RHO, adaptive=adaptive)
        assert np.array_equal(x.detach().numpy(), problem.center)  # exact: ε = 0 and the step is 0
        assert np.array_equal(step.x[0], problem.center)
        if method != "sam":
            assert optimizer.last_stats.gamma.item() == 1.0 == step.gamma[0]  # exact convention


# -- base optimizers and schedules (docs/theory.md O15): torch.optim.SGD(momentum, nesterov, weight_decay) and
# torch.optim.lr_scheduler against simulate(momentum=, nesterov=, weight_decay=, schedule=), per iterate ------

BASES = {  # name -> (SGD keyword arguments, engine keyword arguments, scheduler factory or None)
    "heavy_ball_weight_decay": ({"momentum": 0.9, "weight_decay": 0.01}, {"momentum": 0.9, "weight_decay": 0.01}, None),
    "nesterov_step_lr": ({"momentum": 0.5, "nesterov": True}, {"momentum": 0.5, "nesterov": True, "schedule": "step:30:0.5"},
                         lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=30, gamma=0.5)),
    "heavy_ball_cosine": ({"momentum": 0.9}, {"momentum": 0.9, "schedule": f"cosine:{STEPS}"},
                          lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=STEPS)),
    "warmup_weight_decay": ({"weight_decay": 0.05}, {"weight_decay": 0.05, "schedule": "warmup:10"},
                            lambda opt: torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=9)),
    "heavy_ball_inverse": ({"momentum": 0.8}, {"momentum": 0.8, "schedule": "inverse"},
                           lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 / (t + 1.0))),
}


@pytest.mark.parametrize("base", list(BASES))
@pytest.mark.parametrize("method, adaptive, truncate", OPTIONS)
def test_torch_base_optimizer_and_scheduler_equal_numpy_engine(base, method, adaptive, truncate):
    problem, loss_fn = PROBLEMS["indefinite" if truncate else "rotated"]
    sgd_options, engine_options, scheduler_factory = BASES[base]
    x0 = problem.initial_point(seed=1) + 0.5
    eta = _learning_rate(problem, x0, adaptive)
    x = torch.nn.Parameter(torch.tensor(x0, dtype=torch.float64))
    optimizer = SAMOptimizer([x], torch.optim.SGD, method=method, rho=RHO, adaptive=adaptive, truncate=truncate,
                             lr=eta, **sgd_options)
    scheduler = None if scheduler_factory is None else scheduler_factory(optimizer)
    engine = st.simulate(problem, method, eta, RHO, steps=STEPS, x0=x0, adaptive=adaptive, truncate=truncate,
                         record_every=1, record_iterates=True, divergence_factor=1e12, **engine_options)
    # The indefinite quadratic grows by ≈ 1.2 per step under heavy ball (β = 0.9): 1e8 in 100 steps, so the
    # divergence factor is raised above it; the comparison is relative.
    assert engine.status != st.DIVERGED  # a frozen engine row would not be comparable
    for t in range(STEPS):
        optimizer.zero_grad()
        optimizer.step(lambda: loss_fn(x).backward())
        if scheduler is not None:
            scheduler.step()
        error = _relative_error(x.detach().numpy(), engine.history.x[t + 1])
        assert error <= RELATIVE_TOLERANCE, f"step {t}: relative error {error:.3g}"
