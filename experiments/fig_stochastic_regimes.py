"""Stochastic regimes (docs/theory.md O16): the learning-rate limits of SGD, USAM and StableSAM against batch size.

On a fixed realizable least-squares problem (n = 8, d = 3), for m = 1 … n: the exact mean-square threshold
η_ms, the almost-sure threshold η_as (Lyapunov exponent, 95% interval), the engine's measured threshold (half of
the seeds diverge) and the full-batch edge, for ``gd`` and ``usam`` with shared and independent minibatches;
the renormalized and normalized methods' measured thresholds on the same axes.
"""

import numpy as np

from samtheory import LeastSquares
from samtheory.stability import (full_batch_critical_learning_rate, lyapunov_critical_learning_rate,
                                 mean_square_critical_learning_rate, stochastic_critical_learning_rate)

ORDER = 12
DESCRIPTION = "SGD/USAM/StableSAM thresholds vs batch size: mean-square, almost-sure, measured, full-batch (O16)"
FULL = {"n": 8, "d": 3, "data_seed": 3, "rho": 0.1, "batch_sizes": [1, 2, 3, 4, 6, 8], "seeds": 8,
        "steps": 600, "lyapunov_steps": 1000, "points": 12, "rtol": 0.03}
QUICK = {**FULL, "batch_sizes": [2, 8], "seeds": 2, "steps": 100, "lyapunov_steps": 200, "points": 4, "rtol": 0.2}
FIGSIZE = (6.8, 2.9)
LINEAR = [("gd", "shared"), ("usam", "shared"), ("usam", "independent")]
NONLINEAR = ["sam", "ssam", "susam"]


def problem_of(params):
    A = np.random.default_rng(params["data_seed"]).standard_normal((params["n"], params["d"]))
    return LeastSquares(A, A @ np.ones(params["d"]))


def compute(params):
    problem, rho, sizes = problem_of(params), params["rho"], params["batch_sizes"]
    out = {"batch_sizes": np.array(sizes)}
    gd_edge = float(full_batch_critical_learning_rate(problem, "gd")[0])
    for method, mode in LINEAR:
        key = f"{method}_{mode}"
        full = float(full_batch_critical_learning_rate(problem, method, rho)[0])
        rows = []
        for m in sizes:
            ms = mean_square_critical_learning_rate(problem, method, rho, batch_size=m, minibatch=mode).value[0]
            lyapunov = lyapunov_critical_learning_rate(problem, method, rho, batch_size=m, minibatch=mode,
                                                       steps=params["lyapunov_steps"], seeds=params["seeds"],
                                                       points=params["points"])
            measured = stochastic_critical_learning_rate(problem, method, rho, batch_size=m, minibatch=mode,
                                                         steps=params["steps"], seeds=params["seeds"],
                                                         rtol=params["rtol"], eta_range=(0.5 * ms, 2.0 * full))
            rows.append([ms, lyapunov.value[0], lyapunov.lower[0], lyapunov.upper[0], measured.value[0], full])
        out[key] = np.array(rows)  # columns: ms, as, as_low, as_high, measured, full batch
    for method in NONLINEAR:
        out[method] = np.array([stochastic_critical_learning_rate(
            problem, method, rho, batch_size=m, steps=params["steps"], seeds=params["seeds"], rtol=params["rtol"],
            eta_range=(0.1 * gd_edge, 2.0 * gd_edge)).value[0] for m in sizes])
    out["gd_edge"] = np.array(gd_edge)
    return out


def plot(data, out_dir):
    from samtheory import plotting

    sizes = data["batch_sizes"]
    fig, axes = plotting.figure(1, 4, height=FIGSIZE[1], width=FIGSIZE[0], sharey=True)
    titles = {"gd_shared": "SGD (gd)", "usam_shared": "USAM, shared minibatch",
              "usam_independent": "USAM, independent minibatches"}
    for ax, (method, mode) in zip(axes, LINEAR):
        rows = data[f"{method}_{mode}"]
        color = plotting.METHOD_COLORS[method]
        ax.plot(sizes, rows[:, 5], color="0.6", lw=1, label="full-batch edge")
        ax.plot(sizes, rows[:, 0], color=color, lw=1.2, marker="o", ms=3, label=r"$\eta_{ms}$ (exact)")
        ax.fill_between(sizes, rows[:, 2], rows[:, 3], color=color, alpha=0.25, lw=0)
        ax.plot(sizes, rows[:, 1], color=color, lw=1, ls="--", label=r"$\eta_{as}$ (Lyapunov, 95%)")
        ax.plot(sizes, rows[:, 4], color="k", lw=0, marker="x", ms=4, label="measured (half the seeds diverge)")
        ax.set_title(titles[f"{method}_{mode}"], fontsize=6.5, loc="left")
        ax.set_xlabel("batch size m")
    axes[0].set_ylabel(r"critical learning rate $\eta$")
    ax = axes[3]
    for method in NONLINEAR:
        ax.plot(sizes, data[method], **plotting.method_style(method, marker=True))
    ax.plot(sizes, np.full(sizes.shape, float(data["gd_edge"])), color="0.6", lw=1, label=r"GD edge $2/\lambda_{max}$")
    ax.set_title("measured: SAM, SSAM, SUSAM", fontsize=6.5, loc="left")
    ax.set_xlabel("batch size m")
    ax.legend(fontsize=5.5, loc="lower right")
    axes[0].legend(fontsize=5.5, loc="lower right")
    params = data.params
    fig.suptitle(rf"realizable least squares, n = {params['n']}, d = {params['d']}, $\rho$ = {params['rho']:g}",
                 fontsize=7)
    return plotting.save(fig, out_dir, "stochastic_regimes")


if __name__ == "__main__":
    from samtheory.cli import run_figure_script

    raise SystemExit(run_figure_script(__file__))
