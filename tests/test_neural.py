"""Neural validation (experiments/neural.py, ``samtheory neural``) and the Hessian tools, on tiny configurations."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from samtheory.cli import main
from samtheory.torch import hessian_vector_product, top_hessian_eigenvalue
from samtheory.repository import load_experiment

neural = load_experiment("neural", Path(__file__).resolve().parents[1])
CSV_FIELDS, DEFAULT_CONFIG, QUICK_CONFIG, SCHEMA = neural.CSV_FIELDS, neural.DEFAULT_CONFIG, neural.QUICK_CONFIG, neural.SCHEMA
build_model, load_dataset, run_neural_validation = neural.build_model, neural.load_dataset, neural.run_neural_validation

TINY = dict(dataset="mnist1d", models=("mlp", "cnn"), methods=("gd", "sam", "ssam"), learning_rates=(0.05, 1000.0),
            seeds=(0,), rhos=(0.05,), epochs=3, batch_size=32, n_samples=400, sharpness_every=10, sharpness_samples=64,
            hessian_samples=64, hutchinson_probes=4, slq_steps=6, width=16, channels=4, device="cpu", threads=1)
BETA, DECAY = DEFAULT_CONFIG["momentum"], DEFAULT_CONFIG["weight_decay"]  # TINY keeps the paper's 0.9 and 5e-4


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("neural")
    results = run_neural_validation(**TINY, output=folder / "neural.json", csv=folder / "neural.csv")
    return results, folder


# -- Hessian ------------------------------------------------------------------------------------------------------

def _rotated_quadratic(eigenvalues, seed=0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((len(eigenvalues), len(eigenvalues))))
    H = (Q * np.asarray(eigenvalues)) @ Q.T
    x = torch.nn.Parameter(torch.tensor(rng.standard_normal(len(eigenvalues))))
    H_t = torch.tensor(H)
    return H, x, (lambda: 0.5 * x @ (H_t @ x))


def test_top_eigenvalue_of_a_quadratic():
    H, x, loss_fn = _rotated_quadratic([-30.0, 1.0, 4.0, 10.0, 2.5])
    # Lanczos: largest *algebraic* eigenvalue, 10, although |−30| is larger; eigsh tol 1e-10 → 1e-9 relative.
    assert abs(top_hessian_eigenvalue(loss_fn, [x], tol=1e-10) - 10.0) <= 1e-9 * 10.0
    H, x, loss_fn = _rotated_quadratic([0.5, 1.0, 4.0, 10.0, 2.5])
    # Power iteration: converges at rate 4/10 per product; stopping at 1e-12 relative change of the Rayleigh
    # quotient (which converges quadratically) leaves well under 1e-9 relative error.
    assert abs(top_hessian_eigenvalue(loss_fn, [x], method="power", tol=1e-12) - 10.0) <= 1e-9 * 10.0
    _, x, loss_fn = _rotated_quadratic([3.0, -1.0])  # n ≤ 2: dense path
    assert abs(top_hessian_eigenvalue(loss_fn, [x]) - 3.0) <= 1e-12 * 3.0


def test_hessian_vector_product_of_a_quadratic():
    H, x, loss_fn = _rotated_quadratic([1.0, 2.0, 3.0])
    v = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    (hv,) = hessian_vector_product(loss_fn, [x], [v])
    assert np.allclose(hv.numpy(), H @ v.numpy(), rtol=1e-12, atol=1e-12)  # float64, one product


def test_top_eigenvalue_of_a_network_matches_the_dense_hessian():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    inputs, labels = torch.randn(20, 3, dtype=torch.float64), torch.randint(0, 2, (20,))
    params = list(model.parameters())
    loss_fn = lambda: torch.nn.functional.cross_entropy(model(inputs), labels)  # noqa: E731
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]

    def flat_loss(flat):
        pieces = [piece.reshape(shape) for piece, shape in zip(torch.split(flat, sizes), shapes)]
        return torch.nn.functional.cross_entropy(torch.func.functional_call(
            model, dict(zip([n for n, _ in model.named_parameters()], pieces)), (inputs,)), labels)

    dense = torch.autograd.functional.hessian(flat_loss, torch.cat([p.detach().reshape(-1) for p in params]))
    expected = float(np.linalg.eigvalsh(dense.numpy())[-1])
    # eigsh tol 1e-10 on a 22-dimensional float64 operator: agreement to 1e-8 relative.
    assert abs(top_hessian_eigenvalue(loss_fn, params, tol=1e-10) - expected) <= 1e-8 * abs(expected)


def test_hessian_bad_input():
    _, x, loss_fn = _rotated_quadratic([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="method must be one of"):
        top_hessian_eigenvalue(loss_fn, [x], method="qr")
    with pytest.raises(ValueError, match="tol must be > 0"):
        top_hessian_eigenvalue(loss_fn, [x], tol=0.0)
    with pytest.raises(ValueError, match="requires_grad"):
        top_hessian_eigenvalue(loss_fn, [torch.ones(3)])
    with pytest.raises(ValueError, match="scalar"):
        top_hessian_eigenvalue(lambda: x * 2, [x])
    with pytest.raises(ValueError, match="shapes of params"):
        hessian_vector_product(loss_fn, [x], [torch.ones(2, dtype=torch.float64)])


# -- the predicted edges (theory.edge_sharpness, O12 with O15's momentum) ---------------------------------------

def _momentum_radius(eta, curvature, beta, nesterov=False):
    """Largest |root| of the heavy-ball (or Nesterov) recursion along one descent curvature, by numpy.roots."""
    if nesterov:
        coefficients = [1.0, -(1 + beta) * (1 - eta * curvature), beta * (1 - eta * curvature)]
    else:
        coefficients = [1.0, -(1 + beta - eta * curvature), beta]
    return float(np.max(np.abs(np.roots(coefficients))))


@pytest.mark.parametrize("method, gamma, grad_norm", [("gd", 1.0, None), ("usam", 1.0, None), ("sam", 1.0, 0.7),
                                                      ("susam", 0.6, None), ("ssam", 0.45, 2.0)])
@pytest.mark.parametrize("eta, rho, beta, w, nesterov", [(0.1, 0.05, 0.9, 5e-4, False), (0.03, 0.1, 0.0, 0.0, False),
                                                          (0.5, 0.2, 0.5, 1e-2, True)])
def test_edge_sharpness_is_where_the_momentum_recursion_loses_stability(method, gamma, grad_norm, eta, rho, beta,
                                                                         w, nesterov):
    from samtheory import theory

    edge = float(theory.edge_sharpness(method, eta, rho, momentum=beta, nesterov=nesterov, weight_decay=w,
                                       grad_norm=grad_norm, gamma=gamma))
    # The descent curvature of an eigenvalue λ, written out here independently: γ·(λ, λ(1 + ρλ), λ(1 + ρλ/‖g‖)) + w.
    radius = rho * (0 if method == "gd" else 1) / (grad_norm if grad_norm else 1.0)
    curvature = lambda lam: gamma * lam * (1 + radius * lam) + w  # noqa: E731
    # At the edge a root sits on the unit circle: |z| = 1 to 1e-7 (numpy.roots of a float64 quadratic whose
    # roots nearly coincide near z = -1 lose half the digits); just below it the recursion contracts, just above
    # it expands (a relative step of 1e-3 moves |z| by far more than that error).
    assert abs(_momentum_radius(eta, curvature(edge), beta, nesterov) - 1.0) <= 1e-7
    assert _momentum_radius(eta, curvature(edge * (1 - 1e-3)), beta, nesterov) < 1.0
    assert _momentum_radius(eta, curvature(edge * (1 + 1e-3)), beta, nesterov) > 1.0


def test_edge_sharpness_special_cases():
    from samtheory import theory

    # Without momentum and weight decay the edges are O1-O3's: 2/η, λ*(η, ρ), λ_edge(η, ρ, ‖g‖) (float64: 1e-12).
    assert abs(float(theory.edge_sharpness("gd", 0.25)) - 8.0) <= 1e-12 * 8.0
    assert np.allclose(theory.edge_sharpness("usam", [0.1, 1.0], 0.05), theory.usam_max_stable_sharpness([0.1, 1.0], 0.05),
                       rtol=1e-12, atol=0)
    assert np.allclose(theory.edge_sharpness("sam", 0.1, 0.05, grad_norm=[0.0, 0.3, 5.0]),
                       theory.sam_edge(0.1, 0.05, [0.0, 0.3, 5.0]), rtol=1e-12, atol=0)
    # Weight decay beyond 2(1 + β)/η: no positive sharpness is stable.
    assert float(theory.edge_sharpness("usam", 10.0, 0.05, momentum=0.0, weight_decay=1.0)) == 0.0
    with pytest.raises(ValueError, match="grad_norm is required for ssam"):
        theory.edge_sharpness("ssam", 0.1, 0.05)
    with pytest.raises(ValueError, match="gamma must be 1 for sam"):
        theory.edge_sharpness("sam", 0.1, 0.05, grad_norm=1.0, gamma=0.5)
    with pytest.raises(ValueError, match="momentum must be in"):
        theory.edge_sharpness("gd", 0.1, momentum=1.0)
    with pytest.raises(ValueError, match="eta must be > 0"):
        theory.edge_sharpness("gd", -0.1)


# -- data and models ------------------------------------------------------------------------------------------------

def test_mnist1d_is_generated_locally_and_reproducibly(monkeypatch):
    import urllib.request

    def no_network(*args, **kwargs):
        raise AssertionError("load_dataset tried to download")
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    np.random.seed(123)
    random.seed(123)
    numpy_state, python_state = np.random.get_state()[1].copy(), random.getstate()
    first = load_dataset("mnist1d", 200, seed=1)
    assert np.array_equal(np.random.get_state()[1], numpy_state) and random.getstate() == python_state
    second = load_dataset("mnist1d", 200, seed=1)
    assert first.x_train.shape == (160, 40) and first.x_test.shape == (40, 40)
    assert np.array_equal(first.x_train, second.x_train) and np.array_equal(first.y_test, second.y_test)
    assert set(np.unique(first.y_train)) <= set(range(10)) and first.x_train.dtype == np.float32


def test_digits_fallback():
    data = load_dataset("digits", 500, seed=0)
    assert data.x_train.shape == (400, 64) and data.x_test.shape == (100, 64)
    # standardized with the training split's statistics (float32 rounding: 1e-5)
    assert abs(float(data.x_train.mean())) <= 1e-5 and abs(float(data.x_train.std()) - 1.0) <= 1e-5


@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize("length", [40, 64])
def test_models_map_sequences_to_class_scores(name, length):
    model = build_model(name, length, 10, width=8, channels=3)
    assert model(torch.zeros(5, length)).shape == (5, 10)


def test_data_and_model_bad_input():
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_dataset("cifar10")
    with pytest.raises(ValueError, match="n_samples must be an integer >= 20"):
        load_dataset("mnist1d", 5)
    with pytest.raises(ValueError, match="model must be one of"):
        build_model("resnet", 40)


# -- the validation run ---------------------------------------------------------------------------------------------

def test_results_follow_the_documented_schema(tiny_results):
    results, folder = tiny_results
    assert results["schema"] == SCHEMA
    on_disk = json.loads((folder / "neural.json").read_text())  # strict JSON: no NaN or Infinity
    assert on_disk["runs"][0].keys() == results["runs"][0].keys()
    assert results["schema"] == "samtheory.neural/2"
    assert len(results["runs"]) == 2 * 3 * 2
    for key in ("dataset", "n_train", "n_test", "models", "methods", "paper_names", "learning_rates", "seeds", "rhos",
                "epochs", "momentum", "weight_decay", "sharpness_every", "device", "dtype", "torch_version"):
        assert key in results["config"]
    assert results["config"]["momentum"] == 0.9 and results["config"]["weight_decay"] == 5e-4  # the paper's SGD
    # The paper's names: its SAM is our usam, SSAM susam, SAM† sam, SSAM† ssam.
    assert neural.PAPER_NAMES == {"gd": "SGD", "sam": "SAM†", "usam": "SAM", "ssam": "SSAM†", "susam": "SSAM"}
    assert results["config"]["paper_names"] == {"gd": "SGD", "sam": "SAM†", "ssam": "SSAM†"}
    run_keys = {"model", "method", "paper_name", "lr", "seed", "rho", "status", "diverged", "diverged_at",
                "collapsed", "steps", "initial_train_loss", "final_train_loss", "train_accuracy", "test_accuracy",
                "top_hessian_eigenvalue", "hessian_trace", "hessian_trace_error", "spectral_density", "edge_ratio",
                "edge_ratio_renormalized", "grad_ratio_mean", "gamma_mean", "gamma_min", "gamma_max", "history",
                "sharpness", "wall_time_s"}
    assert all(set(run) == run_keys for run in results["runs"])
    assert all(run["paper_name"] == neural.PAPER_NAMES[run["method"]] for run in results["runs"])
    assert {r["rho"] for r in results["runs"] if r["method"] == "gd"} == {0.0}  # gd ignores ρ: one run
    with open(folder / "neural.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(results["runs"]) and tuple(rows[0]) == CSV_FIELDS
    assert len(results["summary"]) == 2 * 3 * 2 and len(results["stability"]) == 2 * 3
    assert {row["status"] for row in rows} <= {"converged", "bounded", "diverged"}


def test_small_learning_rate_trains_and_huge_one_diverges(tiny_results):
    results, _ = tiny_results
    by_key = {(r["model"], r["method"], r["lr"]): r for r in results["runs"]}
    for model in ("mlp", "cnn"):
        for method in ("gd", "sam", "ssam"):
            small = by_key[(model, method, 0.05)]
            assert not small["diverged"] and small["diverged_at"] is None and small["status"] != "diverged"
            assert small["final_train_loss"] < small["initial_train_loss"]  # it learned something
            assert small["top_hessian_eigenvalue"] is not None and small["top_hessian_eigenvalue"] > 0
            assert len(small["history"]["epoch"]) == TINY["epochs"] == len(small["history"]["test_accuracy"])
            assert small["steps"] == TINY["epochs"] * (320 // TINY["batch_size"]) == 30
            assert not small["collapsed"]
        # lr = 1000 is far beyond the stable range of these networks: all blow up (measured, not assumed).
        for method in ("gd", "sam", "ssam"):
            big = by_key[(model, method, 1000.0)]
            assert big["diverged"] and big["diverged_at"] is not None and big["top_hessian_eigenvalue"] is None
            assert big["status"] == "diverged" and not big["collapsed"] and big["spectral_density"] is None
    for run in results["runs"]:
        if run["method"] in ("gd", "sam") and run["gamma_mean"] is not None:
            assert run["gamma_min"] == run["gamma_max"] == 1.0  # no renormalization: γ ≡ 1
        if run["method"] == "gd" and run["grad_ratio_mean"] is not None:
            assert run["grad_ratio_mean"] == 1.0  # y = x
    ssam = [r for r in results["runs"] if r["method"] == "ssam" and r["gamma_mean"] is not None]
    assert ssam and all(r["gamma_min"] != r["gamma_max"] for r in ssam)  # γ actually varies


def test_status_uses_the_engine_vocabulary(tiny_results):
    results, _ = tiny_results
    for run in results["runs"]:
        assert (run["status"] == "diverged") == run["diverged"]
        if not run["diverged"]:  # converged: the final loss is at most a tenth of the initial one
            converged = run["final_train_loss"] <= 0.1 * run["initial_train_loss"]
            assert run["status"] == ("converged" if converged else "bounded")
            # collapsed: no better than the uniform guess over ten classes (ln 10, less a margin of 0.01)
            assert run["collapsed"] == (run["final_train_loss"] >= np.log(10) - 0.01)


def test_sharpness_is_tracked_against_the_predicted_edges(tiny_results):
    results, _ = tiny_results
    for run in (r for r in results["runs"] if r["lr"] == 0.05):
        track = run["sharpness"]
        assert track["step"] == [10, 20, 30] and all(v is not None and v > 0 for v in track["lambda_max"])
        eta, rho, c = run["lr"], run["rho"], 2 * (1 + BETA) / run["lr"]  # heavy ball's curvature edge 2(1 + β)/η
        for edge, renormalized, grad_norm, gamma in zip(track["edge"], track["edge_renormalized"],
                                                        track["grad_norm"], track["gamma"]):
            # The edge solves a(λ) + w = 2(1 + β)/η with a(λ) written out here: λ for gd, λ(1 + ρλ/‖g‖) for
            # sam and ssam's base; the renormalized edge γ a(λ) + w = 2(1 + β)/η. float64 closed forms: 1e-10.
            if run["method"] == "gd":
                assert abs(edge - (c - DECAY)) <= 1e-10 * edge and renormalized == edge and gamma == 1.0
            else:
                curvature = lambda lam: lam * (1 + rho * lam / grad_norm)  # noqa: E731
                assert abs(curvature(edge) + DECAY - c) <= 1e-10 * c
                factor = gamma if run["method"] == "ssam" else 1.0
                assert abs(factor * curvature(renormalized) + DECAY - c) <= 1e-10 * c
        if run["method"] == "ssam":
            assert 0 < track["gamma"][0] < 1  # ‖g(y)‖ > ‖g(x)‖ here: the renormalization lengthens the edge
            assert track["edge_renormalized"][0] > track["edge"][0]
        # The last measurement is at the final parameters on the same 64 samples as the final λ_max: float32
        # Lanczos to 1e-3 against float64 to 1e-4, so they agree to 2e-3 relative.
        final = run["top_hessian_eigenvalue"]
        assert abs(track["lambda_max"][-1] - final) <= 2e-3 * final
        late = [v / e for s, v, e in zip(track["step"], track["lambda_max"], track["edge"]) if s > run["steps"] / 2]
        assert run["edge_ratio"] == pytest.approx(float(np.median(late)), rel=1e-12)  # the documented summary


def test_final_trace_and_spectral_density(tiny_results):
    results, _ = tiny_results
    for run in (r for r in results["runs"] if not r["diverged"]):
        density = run["spectral_density"]
        nodes, weights = np.array(density["nodes"]), np.array(density["weights"])
        assert len(nodes) == TINY["slq_steps"] and np.all(np.diff(nodes) >= 0)
        assert abs(weights.sum() - 1.0) <= 1e-12  # Gauss weights of a unit start vector: float64 rounding
        # The largest Ritz value cannot exceed λ_max (Lanczos interlacing), and after 6 steps it is near it.
        assert nodes[-1] <= run["top_hessian_eigenvalue"] * (1 + 1e-3)
        assert run["hessian_trace"] is not None and run["hessian_trace_error"] >= 0


def test_stability_and_comparison_tables_are_consistent(tiny_results):
    results, _ = tiny_results
    cells = {(c["model"], c["method"], c["lr"]): c for c in results["summary"]}
    assert results["comparison"]  # both learned at lr 0.05, so ssam is compared with sam there
    assert all(row["paper_pair"] == "SSAM†-SAM†" for row in results["comparison"])
    for row in results["stability"]:
        diverged = sorted(lr for (m, method, lr), c in cells.items()
                          if m == row["model"] and method == row["method"] and (c["n_diverged"] or c["n_collapsed"]))
        assert row["first_unstable_lr"] == (diverged[0] if diverged else None)
    for row in results["comparison"]:
        assert row["pair"] == "ssam-sam"
        assert cells[(row["model"], "ssam", row["lr"])]["n_diverged"] == 0
        assert cells[(row["model"], "sam", row["lr"])]["n_diverged"] == 0


def test_same_arguments_same_numbers(tiny_results):
    results, _ = tiny_results
    again = run_neural_validation(**{**TINY, "models": ("mlp",)})
    first = [r for r in results["runs"] if r["model"] == "mlp"]
    strip = lambda run: {k: v for k, v in run.items() if k != "wall_time_s"}  # noqa: E731
    assert [strip(r) for r in again["runs"]] == [strip(r) for r in first]  # bit for bit on the CPU


def test_bfloat16_and_digits_runs():
    results = run_neural_validation(**{**TINY, "dataset": "digits", "models": ("mlp",), "methods": ("susam",),
                                       "learning_rates": (0.1,), "dtype": "bfloat16", "hessian_samples": 0})
    (run,) = results["runs"]
    assert not run["diverged"] and run["final_train_loss"] < run["initial_train_loss"]
    assert run["top_hessian_eigenvalue"] is None and results["config"]["dtype"] == "bfloat16"


@pytest.mark.parametrize("change, match", [
    (dict(learning_rates=(0.1, -1.0)), "learning_rates must be > 0"),
    (dict(models=("mlp", "vit")), "models must be one of"),
    (dict(methods=("adam",)), "methods must be one of"),
    (dict(methods=()), "methods must not be empty"),
    (dict(seeds=(-1,)), "seeds must be a non-negative integer"),
    (dict(momentum=1.0), "momentum must be in"),
    (dict(rhos=(-0.1,)), "rhos must be >= 0"),
    (dict(weight_decay=-1.0), "weight_decay must be >= 0"),
    (dict(sharpness_every=-1), "sharpness_every must be an integer >= 0"),
    (dict(hutchinson_probes=1), "hutchinson_probes must be an integer >= 2"),
    (dict(progress="yes"), "progress must be True, False or None"),
    (dict(epochs=0), "epochs must be an integer >= 1"),
    (dict(batch_size=10_000), "batch_size must be <="),
    (dict(dtype="float16"), "dtype must be one of"),
    (dict(device="tpu"), "device must be one of"),
    (dict(threads=0), "threads must be an integer >= 1"),
    (dict(divergence_factor=1.0), "divergence_factor must be > 1"),
    (dict(truncate="yes"), "truncate must be True or False"),
])
def test_run_bad_input(change, match):
    with pytest.raises(ValueError, match=match):
        run_neural_validation(**{**TINY, **change})


def test_train_run_bad_input():
    data = load_dataset("mnist1d", 100, seed=0)
    with pytest.raises(ValueError, match="lr must be > 0"):
        neural.train_run("mlp", "ssam", 0.0, 0, data)
    with pytest.raises(ValueError, match="method must be one of"):
        neural.train_run("mlp", "adam", 0.1, 0, data, epochs=1)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        neural.train_run("mlp", "ssam", 0.1, 0, data, epochs=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where CUDA is absent")
def test_cuda_requested_without_cuda():
    with pytest.raises(ValueError, match="CUDA is not available"):
        run_neural_validation(**{**TINY, "device": "cuda"})


def test_the_cnn_learns_mnist1d_at_a_good_learning_rate():
    """Meaningful accuracy on CPU: the 1-D CNN with the paper's SGD (momentum 0.9, weight decay 5e-4) at η = 0.1.

    Chance is 10%; the MLP of version 1 reached about 50%. Threshold 85%: measured 90.0% for both gd and susam
    after these 6 epochs on 2400 training samples; the 600 test samples give a standard error of 1.2 points, so
    85% is 4 standard errors below (and the full run's 8 epochs reach 93-94%)."""
    results = run_neural_validation(dataset="mnist1d", models=("cnn",), methods=("gd", "susam"), learning_rates=(0.1,),
                                    seeds=(0,), rhos=(0.05,), epochs=6, n_samples=3000, sharpness_every=0,
                                    hessian_samples=0, device="cpu", progress=False)
    for run in results["runs"]:
        assert run["test_accuracy"] > 0.85, (run["method"], run["test_accuracy"])
        assert run["status"] != "diverged" and not run["collapsed"]


# -- command line ----------------------------------------------------------------------------------------------------

def test_cli_writes_json_and_csv(tmp_path, capsys):
    output, table = tmp_path / "out.json", tmp_path / "out.csv"
    code = main(["neural", "--models", "mlp", "--methods", "sam,ssam", "--lr", "0.1", "--seeds", "0", "--rho", "0.05",
                 "--epochs", "1", "--n-samples", "200", "--hessian-samples", "32", "--batch-size", "32",
                 "--sharpness-every", "2", "--sharpness-samples", "32",
                 "--output", str(output), "--csv", str(table), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "first_unstable_lr" in printed and "SSAM†" in printed
    results = json.loads(output.read_text())
    assert [r["method"] for r in results["runs"]] == ["sam", "ssam"] and table.exists()
    assert results["config"]["momentum"] == 0.9 and len(results["runs"][0]["sharpness"]["step"]) == 2


def test_cli_quick_and_default_configurations(monkeypatch):
    seen = []
    monkeypatch.setattr(neural, "run_neural_validation", lambda **kwargs: seen.append(kwargs) or
                        {"summary": [], "stability": [], "comparison": []})
    assert main(["neural", "--quick", "--no-progress", "--json"]) == 0
    assert main(["neural", "--no-progress", "--epochs", "3", "--json"]) == 0
    quick, full = seen
    for key, value in QUICK_CONFIG.items():
        assert tuple(quick[key]) == tuple(value) if isinstance(value, tuple) else quick[key] == value
    assert quick["device"] == "cpu" and full["device"] == "auto" and full["epochs"] == 3
    assert tuple(full["learning_rates"]) == DEFAULT_CONFIG["learning_rates"]


def test_cli_help_quotes_the_default_configuration(capsys):
    with pytest.raises(SystemExit):
        main(["neural", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ",".join(f"{v:g}" for v in DEFAULT_CONFIG["learning_rates"]) in text
    assert ",".join(f"{v:g}" for v in QUICK_CONFIG["learning_rates"]) in text
    assert f"{QUICK_CONFIG['epochs']} epochs" in text and f"default: {DEFAULT_CONFIG['epochs']})" in text
    for flag, key in (("--n-samples", "n_samples"), ("--sharpness-every", "sharpness_every"),
                      ("--sharpness-samples", "sharpness_samples"), ("--hessian-samples", "hessian_samples"),
                      ("--momentum", "momentum"), ("--weight-decay", "weight_decay")):
        assert f"{flag} " in text and f"(default: {DEFAULT_CONFIG[key]:g})" in text, flag
    assert "0.05,0.1" in text and "paper's SAM is usam" in text


@pytest.mark.parametrize("argv", [
    ["neural", "--lr", "-1", "--models", "mlp"],
    ["neural", "--models", "transformer"],
    ["neural", "--epochs", "0"],
    ["neural", "--threads", "0"],
    ["neural", "--device", "gpu"],
    ["neural", "--lr", "abc"],
])
def test_cli_bad_input_is_one_line_and_exit_2(argv, cli_error):
    assert cli_error(argv + ["--no-progress"]).startswith("samtheory")
