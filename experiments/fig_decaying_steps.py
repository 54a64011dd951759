"""Figure 12: SAM under decaying learning rates against the O3 cycle's prediction (O18).

With constant η, deterministic SAM stalls on the 2-cycle ±a·u₁ with f − f* = λ₁³η²ρ²/(2(2 − ηλ₁)²)
(:func:`samtheory.theory.sam_cycle_suboptimality`). Under a schedule η_t the prediction is that value at η_t.
(a) f(x_t) on f = ½·100x² (η = 0.015, ρ = 0.05, ηλ₁ = 1.5) under a step decay, cosine, 1/√t and 1/t, with the
prediction dashed. (b) The ratio f(x_t)/prediction for the same runs and for the 2-D quadratic {1, 100}, where
the flat mode can dominate, and for 1/t with ηλ₁ = 0.5. (c) The step decay by exactly ½ on {1, 100}: the sharp
coordinate lands on 0 (a(1 − 2G) = 0, :func:`samtheory.theory.sam_step_decay_landing`) and SAM moves to the
flat mode's own 2-cycle, whose value (λ = 1) is drawn dotted.
"""

import numpy as np

from samtheory import Quadratic, simulate
from samtheory.schedules import schedule_factors
from samtheory.theory import sam_cycle_suboptimality

ORDER = 12
DESCRIPTION = "SAM's f(x_t) under step, cosine, 1/sqrt(t), 1/t schedules vs the O3-cycle prediction at eta_t (O18)"
FULL = {"rho": 0.05, "eta": 0.015, "steps": 8000, "x0": 0.3, "step_every": 2000,
        "schedules": ["step:2000:0.3", "cosine:8000:0.01", "power:1:1:0.5", "inverse"]}
QUICK = {**FULL, "steps": 800, "step_every": 200, "schedules": ["step:200:0.3", "cosine:800:0.01", "power:1:1:0.5",
                                                                  "inverse"]}
FIGSIZE = (3.4, 5.6)


def _run(eigenvalues, eta, rho, schedule, steps, x0):
    run = simulate(Quadratic(eigenvalues), "sam", eta, rho, steps=steps, x0=np.full(len(eigenvalues), x0),
                   schedule=schedule, record_every=1, record_iterates=True)
    s = schedule_factors(schedule, steps)
    predicted = sam_cycle_suboptimality(eta * s, rho, max(eigenvalues))  # x_{t+1} made with η_t
    return run.history.loss.ravel()[1:], predicted, run.history.x.reshape(steps + 1, -1)[1:], s


def compute(params):
    rho, eta, steps, x0 = params["rho"], params["eta"], params["steps"], params["x0"]
    out = {"t": np.arange(1, steps + 1)}
    for k, schedule in enumerate(params["schedules"]):
        for tag, eigenvalues, base in (("1d", [100.0], eta), ("2d", [1.0, 100.0], eta)):
            f, predicted, _, _ = _run(eigenvalues, base, rho, schedule, steps, x0)
            out[f"f_{tag}_{k}"], out[f"pred_{tag}_{k}"] = f, predicted
    f, predicted, _, _ = _run([100.0], eta / 3, rho, "inverse", steps, x0)
    out["f_slow_inverse"], out["pred_slow_inverse"] = f, predicted
    half = f"step:{params['step_every']}:0.5"
    f, predicted, x, s = _run([1.0, 100.0], eta, rho, half, steps, x0)
    out["f_half"], out["pred_half"], out["x_half"] = f, predicted, x
    out["flat_half"] = sam_cycle_suboptimality(eta * s, rho, 1.0)
    return out


def plot(data, out_dir):
    from samtheory import plotting

    p = data.params
    t = data["t"]
    colors = ["#0072B2", "#E69F00", "#009E73", "#CC79A7"]
    fig, axes = plotting.figure(3, 1, height=FIGSIZE[1], sharex=True)
    ax = axes[0]
    for k, schedule in enumerate(p["schedules"]):
        ax.plot(t, data[f"f_1d_{k}"], color=colors[k], lw=0.8, label=schedule)
        ax.plot(t, data[f"pred_1d_{k}"], color="k", lw=0.6, ls=(0, (3, 2)))
    ax.set_yscale("log")
    ax.set_ylabel("$f(x_t) - f^*$")
    ax.legend(loc="lower left", fontsize=5.5, ncols=2, title="schedule (dashed: prediction)", title_fontsize=5.5)
    plotting.panel_label(ax, "a", f"SAM on $\\frac{{1}}{{2}}100x^2$, $\\eta$ = {p['eta']:g}, "
                                  f"$\\rho$ = {p['rho']:g}")

    ax = axes[1]
    for k, schedule in enumerate(p["schedules"]):
        ax.plot(t, data[f"f_1d_{k}"] / data[f"pred_1d_{k}"], color=colors[k], lw=0.8, label=f"{schedule}, 1-D")
        ax.plot(t, data[f"f_2d_{k}"] / data[f"pred_2d_{k}"], color=colors[k], lw=0.8, ls=(0, (1, 1)),
                label=f"{schedule}, {{1, 100}}")
    slow = data["f_slow_inverse"] / data["pred_slow_inverse"]
    ax.plot(t[:-1], np.maximum(slow[:-1], slow[1:]), color="0.45", lw=0.8,  # a 2-cycle: the larger of each pair
            label=f"inverse, 1-D, $\\eta\\lambda_1$ = {p['eta'] * 100 / 3:g} (pair max)")
    ax.axhline(1.0, color="k", lw=0.6, ls=(0, (3, 2)))
    ax.set_yscale("log")
    ax.set_ylim(1e-3, 1e9)
    ax.set_ylabel("$f(x_t)$ / prediction")
    ax.legend(loc="upper left", fontsize=4.8, ncols=2, handlelength=1.8)
    plotting.panel_label(ax, "b", "ratio to the O3-cycle value at $\\eta_t$ (solid 1-D, dotted 2-D)")

    ax = axes[2]
    ax.plot(t, data["f_half"], color=colors[0], lw=0.8, label="SAM on {1, 100}")
    ax.plot(t, data["pred_half"], color="k", lw=0.6, ls=(0, (3, 2)), label="sharp-mode cycle ($\\lambda_1$ = 100)")
    ax.plot(t, data["flat_half"], color="0.4", lw=0.8, ls=":", label="flat-mode cycle ($\\lambda_2$ = 1)")
    ax.set_yscale("log")
    ax.set_xlabel("step $t$")
    ax.set_ylabel("$f(x_t) - f^*$")
    ax.set_xlim(t[0], t[-1])
    ax.legend(loc="lower left", fontsize=5.5)
    plotting.panel_label(ax, "c", f"step:{p['step_every']}:0.5 on {{1, 100}}: sharp mode lands on 0")
    return plotting.save(fig, out_dir, "decaying_steps")


if __name__ == "__main__":
    from samtheory.cli import run_figure_script

    raise SystemExit(run_figure_script(__file__))
