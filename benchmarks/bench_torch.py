"""Time per training step of StableSAM (ssam, susam) against SAM/USAM (sam, usam) on the neural-validation MLP.

The renormalization adds one global norm of g(y) and one scaling of the gradients to a step of two forward and
backward passes; the paper says this costs almost nothing. Target: ssam/sam and susam/usam ≤ 1.05.

    python benchmarks/bench_torch.py                 # CPU (or CUDA when available), batch 128, 1 thread
    python benchmarks/bench_torch.py --device cpu --threads 2 --steps 300 --repeats 9

Methods are timed in interleaved blocks (each repeat runs every method once, in a rotating order); the table
reports the median block, and each ratio is the median over repeats of the ratio of two blocks run back to back
(paired), so that load from other processes hits both sides of a ratio alike. On the CPU the clock is the
process CPU time (``--clock cpu``, the default there), which other processes on a shared machine disturb far
less than wall time; on CUDA it is wall time after a synchronization.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from samtheory.torch import SAMOptimizer
from samtheory.repository import load_experiment

_neural = load_experiment("neural", Path(__file__).resolve().parents[1])
build_model, load_dataset = _neural.build_model, _neural.load_dataset

METHODS = ("gd", "sam", "usam", "ssam", "susam")


def _synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(method, model, inputs, labels, steps, device, clock=time.perf_counter) -> float:
    """Seconds per step of ``steps`` SAM steps (closure style), after the caller's warm-up."""
    optimizer = SAMOptimizer(model.parameters(), torch.optim.SGD, method=method, rho=0.05, lr=0.01)
    loss_fn = torch.nn.functional.cross_entropy

    def closure():
        loss = loss_fn(model(inputs), labels)
        loss.backward()
        return loss

    _synchronize(device)
    started = clock()
    for _ in range(steps):
        optimizer.zero_grad()
        closure()
        optimizer.step(closure)
    _synchronize(device)
    return (clock() - started) / steps


def time_optimizer_only(method, model, inputs, labels, steps, device, clock=time.perf_counter) -> float:
    """Seconds per first_step() + second_step() on fixed gradients: the optimizer's share of a step, without
    the forward and backward passes (whose timing noise would otherwise swamp a few dozen microseconds)."""
    optimizer = SAMOptimizer(model.parameters(), torch.optim.SGD, method=method, rho=0.05, lr=1e-9)
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(inputs), labels).backward()
    _synchronize(device)
    started = clock()
    for _ in range(steps):
        optimizer.first_step()
        optimizer.second_step()
    _synchronize(device)
    return (clock() - started) / steps


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--steps", type=int, default=200, help="steps per timed block (default: 200)")
    parser.add_argument("--repeats", type=int, default=7, help="timed blocks per method (default: 7)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--clock", choices=("cpu", "wall"), default=None,
                        help="process CPU time or wall time (default: cpu on the CPU, wall on CUDA)")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    clock_name = args.clock or ("cpu" if device.type == "cpu" else "wall")
    clock = time.process_time if clock_name == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist1d", 1000, seed=0)
    inputs = torch.as_tensor(data.x_train[:args.batch_size]).to(device)
    labels = torch.as_tensor(data.y_train[:args.batch_size]).to(device)
    torch.manual_seed(0)
    models = {m: build_model("mlp", inputs.shape[1]).to(device) for m in METHODS}
    for method in METHODS:  # warm-up
        time_steps(method, models[method], inputs, labels, max(10, args.steps // 10), device)
    times = {m: [] for m in METHODS}
    ratios = {("ssam", "sam"): [], ("susam", "usam"): []}
    for repeat in range(args.repeats):
        order = ["gd", "sam", "ssam", "usam", "susam"] if repeat % 2 else ["gd", "ssam", "sam", "susam", "usam"]
        for method in order:
            times[method].append(time_steps(method, models[method], inputs, labels, args.steps, device, clock))
        for renormalized, base in ratios:
            ratios[(renormalized, base)].append(times[renormalized][-1] / times[base][-1])
    median = {m: statistics.median(values) for m, values in times.items()}
    alone = {m: [] for m in METHODS[1:]}
    for repeat in range(args.repeats):
        for method in (METHODS[1:] if repeat % 2 else METHODS[:0:-1]):
            alone[method].append(time_optimizer_only(method, models[method], inputs, labels, 4 * args.steps, device,
                                                     clock))
    alone = {m: statistics.median(values) for m, values in alone.items()}
    print(f"MLP 40-100-100-10, batch {args.batch_size}, device {device}, threads {args.threads}, "
          f"torch {torch.__version__}; {clock_name} time, median of {args.repeats} blocks of {args.steps} steps")
    for method in METHODS:
        spread = max(times[method]) / min(times[method])
        print(f"  {method:6s} {median[method] * 1e3:8.3f} ms/step   (max/min over blocks {spread:.2f})")
    for (renormalized, base), values in ratios.items():
        ratio = statistics.median(values)
        quartiles = statistics.quantiles(values, n=4)
        verdict = "meets" if ratio <= 1.05 else "misses"
        print(f"  {renormalized}/{base} = {ratio:.3f}  (paired median; quartiles {quartiles[0]:.3f}–{quartiles[2]:.3f}; "
              f"{verdict} the target ≤ 1.05)")
    print(f"  sam/gd = {median['sam'] / median['gd']:.3f}  (two gradients per step: about 2 expected)")
    print("optimizer alone (first_step + second_step on fixed gradients, median of blocks):")
    for renormalized, base in (("ssam", "sam"), ("susam", "usam")):
        extra = alone[renormalized] - alone[base]
        print(f"  {base} {alone[base] * 1e6:.1f} µs, {renormalized} {alone[renormalized] * 1e6:.1f} µs: the "
              f"renormalization adds {extra * 1e6:.1f} µs = {extra / median[base]:.1%} of a {base} training step, "
              f"i.e. {renormalized}/{base} ≈ {1 + extra / median[base]:.3f}")


if __name__ == "__main__":
    main()
