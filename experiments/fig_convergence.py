"""Figure 3: loss against steps on the {1, 10, 100} quadratic at several learning rates, for every method.

The paper's quadratic experiment: where USAM diverges (η > 2/(λ_max(1 + ρλ_max)), THEORY.md O2), StableSAM
does not (O4, O5); SAM stalls on its 2-cycle (O3); GD converges up to 2/λ_max (O1).
"""

import numpy as np

from samtheory import BUILTIN_METHODS, Quadratic, simulate
from samtheory.theory import usam_critical_learning_rate

ORDER = 3
DESCRIPTION = "loss vs steps on a quadratic at several η: where USAM diverges, StableSAM does not (O1-O5)"
FULL = {"eigenvalues": [1.0, 10.0, 100.0], "rho": 0.05, "eta": [0.003, 0.005, 0.015], "steps": 4000,
        "record_every": 10, "seed": 0}
QUICK = {**FULL, "steps": 400, "record_every": 4}
FIGSIZE = (3.4, 4.6)


def compute(params):
    problem = Quadratic(params["eigenvalues"])
    eta = np.asarray(params["eta"])
    out = {}
    for name in BUILTIN_METHODS:
        result = simulate(problem, name, eta, params["rho"], steps=params["steps"], seed=params["seed"],
                          record_every=params["record_every"])
        out[f"{name}_loss"] = result.history.loss        # (records, len(eta))
        out[f"{name}_diverged_at"] = result.diverged_at
        out[f"{name}_status"] = result.status
        out["steps"] = result.history.steps
    return out


def plot(data, out_dir):
    from samtheory import plotting

    params = data.params
    lam_max, rho = max(params["eigenvalues"]), params["rho"]
    usam_edge = float(usam_critical_learning_rate(lam_max, rho))
    fig, axes = plotting.figure(len(params["eta"]), 1, height=FIGSIZE[1], sharex=True)
    steps = data["steps"]
    floor, ceiling = 1e-16, 1e5  # GD reaches 1e-40: the axis stops at the float64-relevant range
    for k, (ax, eta) in enumerate(zip(axes, params["eta"])):
        for name in BUILTIN_METHODS:
            diverged_at = int(data[f"{name}_diverged_at"][k])
            s, loss = plotting.finite_segment(steps, data[f"{name}_loss"][:, k], diverged_at)
            ax.plot(s, np.minimum(loss, ceiling), **plotting.method_style(name))
            if diverged_at >= 0:
                ax.plot([diverged_at], [ceiling], marker="x", markersize=6, mew=1.5,
                        color=plotting.METHOD_COLORS[name], clip_on=False, linestyle="none")
                ax.annotate(f"{plotting.METHOD_LABELS[name]} diverges (step {diverged_at})",
                            (diverged_at, ceiling), xytext=(8, -2), textcoords="offset points",
                            va="top", fontsize=6, color=plotting.METHOD_COLORS[name])
        ax.set_yscale("log")
        ax.set_ylim(floor, ceiling * 3)
        ax.set_yticks([1e-15, 1e-10, 1e-5, 1e0, 1e5])
        where = "<" if eta < usam_edge else ">"
        ax.set_title(rf"$\eta$ = {eta:g}:  $\eta\lambda_{{\max}}/2$ = {eta * lam_max / 2:.2f},  "
                     rf"$\eta$ {where} USAM's $\eta_c$ = {usam_edge:.4f}", fontsize=6.5, loc="left")
        ax.set_ylabel(r"loss $f(x_t)$")
    axes[-1].set_xlabel(r"step $t$")
    axes[-1].set_xlim(0, steps[-1])
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=5, columnspacing=1.0, handlelength=2.2,
               title=rf"quadratic, $\lambda$ = {{{', '.join(f'{v:g}' for v in params['eigenvalues'])}}}, "
                     rf"$\rho$ = {rho:g}", title_fontsize=6.5)
    return plotting.save(fig, out_dir, "convergence")


if __name__ == "__main__":
    from samtheory.cli import run_figure_script

    raise SystemExit(run_figure_script(__file__))
