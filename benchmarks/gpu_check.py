"""One short script for a lent GPU (under 5 minutes on one device): the four checks of issue 14.

1. ``equivalence``: ``SAMOptimizer`` on the device, float64, equals the NumPy engine (``samtheory.simulate``) on a
   least-squares problem, every method, 1e-10 relative per final iterate (same expressions, different summation
   order; tests/test_torch_equivalence.py).
2. ``amp``: a float16 run with ``torch.amp.GradScaler`` (CUDA) or a bfloat16 autocast run (CPU) of every SAM
   method stays finite and ends within 5e-2 relative of the float32 run's loss (float16/bfloat16 rounding over
   the run).
3. ``overhead``: seconds per step of ssam over sam (and susam over usam) on a 1-D CNN, median of paired blocks;
   reported, passed when below 1.10 (the paper: "almost no extra cost").
4. ``neural``: ``samtheory neural`` end to end on the device, timed (the full grid without ``--quick``).

    python benchmarks/gpu_check.py --device cuda --out gpu_check.json          # on the lent GPU
    python benchmarks/gpu_check.py --device cpu --quick --out FILE             # CPU smoke test (CI)

Writes the results to ``--out`` as JSON (``{"device", "torch", "quick", "checks": {name: {...,"passed"}},
"passed"}``) and exits 1 if a check failed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import samtheory as st
from samtheory.datasets import make_least_squares
from samtheory.torch import SAMOptimizer

SAM_METHODS = ("sam", "usam", "ssam", "susam")
EQUIVALENCE_TOLERANCE = 1e-10
AMP_TOLERANCE = 5e-2
OVERHEAD_LIMIT = 1.10


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_equivalence(device: torch.device, steps: int) -> dict:
    """Final iterates of every method on the device (float64) against the NumPy engine."""
    problem = make_least_squares(40, 5, noise=0.3, seed=3)
    A = torch.tensor(problem.A, dtype=torch.float64, device=device)
    b = torch.tensor(problem.b, dtype=torch.float64, device=device)
    x0 = problem.initial_point(seed=1) + 0.5
    eta, rho = 0.5 / (problem.beta * (1 + 0.05 * problem.beta)), 0.05
    errors = {}
    for method in ("gd",) + SAM_METHODS:
        x = torch.nn.Parameter(torch.tensor(x0, dtype=torch.float64, device=device))
        optimizer = SAMOptimizer([x], torch.optim.SGD, method=method, rho=rho, lr=eta)
        for _ in range(steps):
            optimizer.zero_grad()
            optimizer.step(lambda: (0.5 * torch.mean((A @ x - b) ** 2)).backward())
        expected = st.simulate(problem, method, eta, rho, steps=steps, x0=x0).x
        errors[method] = float(np.linalg.norm(x.detach().cpu().numpy() - expected) / np.linalg.norm(expected))
    return {"relative_errors": errors, "tolerance": EQUIVALENCE_TOLERANCE,
            "passed": all(e <= EQUIVALENCE_TOLERANCE for e in errors.values())}


def _cnn(seed: int, channels: int) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.nn.Sequential(
            torch.nn.Conv1d(1, channels, 5, padding=2), torch.nn.BatchNorm1d(channels), torch.nn.ReLU(),
            torch.nn.Conv1d(channels, channels, 5, padding=2, stride=2), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool1d(8), torch.nn.Flatten(), torch.nn.Linear(8 * channels, 10))


def _data(device: torch.device, n: int, length: int = 40):
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(n, 1, length, generator=generator)
    labels = torch.randint(0, 10, (n,), generator=generator)
    return inputs.to(device), labels.to(device)


def _train(method: str, device: torch.device, steps: int, channels: int, precision: str) -> list[float]:
    model = _cnn(0, channels).to(device)
    inputs, labels = _data(device, 256)
    fp16 = precision == "float16"
    scaler = torch.amp.GradScaler(device.type, enabled=fp16)
    optimizer = SAMOptimizer(model.parameters(), torch.optim.SGD, method=method, rho=0.05, lr=0.05, momentum=0.9,
                             grad_scaler=scaler if fp16 else None, model=model)
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(precision)

    def closure():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(inputs).float(), labels)
        scaler.scale(loss).backward() if fp16 else loss.backward()
        return loss

    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        losses.append(float(optimizer.step(closure).detach()))
        scaler.update()
    return losses


def check_amp(device: torch.device, steps: int, channels: int) -> dict:
    precisions = ("float16", "bfloat16") if device.type == "cuda" else ("bfloat16",)
    results, passed = {}, True
    for method in SAM_METHODS:
        reference = _train(method, device, steps, channels, "float32")
        for precision in precisions:
            losses = _train(method, device, steps, channels, precision)
            finite = bool(np.isfinite(losses).all())
            gap = abs(losses[-1] - reference[-1]) / reference[-1]
            results[f"{method}/{precision}"] = {"final_loss": losses[-1], "float32_final_loss": reference[-1],
                                                "relative_gap": gap, "finite": finite}
            passed &= finite and gap <= AMP_TOLERANCE
    return {"runs": results, "tolerance": AMP_TOLERANCE, "passed": passed}


def _seconds_per_step(method, device, steps, channels, batch) -> float:
    model = _cnn(0, channels).to(device)
    inputs, labels = _data(device, batch)
    optimizer = SAMOptimizer(model.parameters(), torch.optim.SGD, method=method, rho=0.05, lr=0.01)

    def closure():
        loss = torch.nn.functional.cross_entropy(model(inputs), labels)
        loss.backward()
        return loss

    for _ in range(3):  # warm-up
        optimizer.zero_grad()
        optimizer.step(closure)
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad()
        optimizer.step(closure)
    _synchronize(device)
    return (time.perf_counter() - start) / steps


def check_overhead(device: torch.device, steps: int, repeats: int, channels: int, batch: int) -> dict:
    ratios: dict[str, list[float]] = {"ssam/sam": [], "susam/usam": []}
    for _ in range(repeats):  # paired blocks, back to back, so that machine load hits both sides alike
        for pair in ratios:
            new, old = pair.split("/")
            ratios[pair].append(_seconds_per_step(new, device, steps, channels, batch)
                                / _seconds_per_step(old, device, steps, channels, batch))
    medians = {pair: statistics.median(values) for pair, values in ratios.items()}
    return {"median_ratios": medians, "limit": OVERHEAD_LIMIT, "steps": steps, "repeats": repeats,
            "channels": channels, "batch": batch, "passed": all(v <= OVERHEAD_LIMIT for v in medians.values())}


def check_neural(device: torch.device, quick: bool, timeout: float) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "neural.json"
        command = [sys.executable, "-m", "samtheory", "neural", "--device", device.type, "--output", str(output),
                   "--no-progress"]
        if quick:  # the smallest end-to-end run: the CLI, the experiment, its JSON
            command += ["--quick", "--models", "mlp", "--methods", "gd,ssam", "--lr", "0.1", "--epochs", "1",
                        "--n-samples", "400", "--hessian-samples", "0"]
        start = time.perf_counter()
        try:
            completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"command": command[2:], "seconds": timeout, "passed": False, "error": "timed out"}
        seconds = time.perf_counter() - start
        ok = completed.returncode == 0 and output.is_file()
        result = {"command": command[2:], "seconds": seconds, "returncode": completed.returncode, "passed": ok}
        if not ok:
            result["stderr"] = completed.stderr[-2000:]
        return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--quick", action="store_true", help="a smoke test of a few seconds per check")
    parser.add_argument("--out", required=True, help="the JSON file to write")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: --device cuda, but torch sees no CUDA device", file=sys.stderr)
        return 2
    quick = args.quick
    checks = {}
    started = time.perf_counter()
    checks["equivalence"] = check_equivalence(device, steps=20 if quick else 100)
    checks["amp"] = check_amp(device, steps=3 if quick else 60, channels=8 if quick else 64)
    checks["overhead"] = check_overhead(device, steps=3 if quick else 50, repeats=1 if quick else 5,
                                        channels=8 if quick else 128, batch=32 if quick else 512)
    if quick:  # a CPU timing of three steps says nothing: the smoke test checks that it runs, not the ratio
        checks["overhead"]["passed"] = all(np.isfinite(v) for v in checks["overhead"]["median_ratios"].values())
    checks["neural"] = check_neural(device, quick, timeout=120 if quick else 600)
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
              or "cpu", "torch": torch.__version__, "quick": quick, "seconds": time.perf_counter() - started,
              "checks": checks, "passed": all(c["passed"] for c in checks.values())}
    Path(args.out).write_text(json.dumps(report, indent=2))
    for name, check in checks.items():
        print(f"{name:12s} {'ok' if check['passed'] else 'FAILED'}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
