"""Figure 8: uniform stability (Hardt, Recht & Singer 2016; THEORY.md O10).

:func:`samtheory.stability.stability_experiment`: every method trains L2-regularized logistic regression
with single-example SGD on data sets S and S' that differ in one example, with the same initial point and the
same minibatch sequence. The mean parameter divergence ‖w_t − w'_t‖ and the generalization gap
R_test(w_t) − R_S(w_t) are drawn against t beside SGD's bounds (2L/n)Σ_s η and (2L²/n)Σ_s η (HRS Theorem 3.8,
convex L-Lipschitz β-smooth losses, η ≤ 2/β; L over the visited region as the module states), on synthetic
data and on scikit-learn's breast-cancer data.
"""

import numpy as np

from samtheory import BUILTIN_METHODS

ORDER = 8
DESCRIPTION = "uniform stability: ‖w_t − w'_t‖ and generalization gap vs steps per method, with the SGD bound (O10)"
FULL = {"cases": [{"data": "synthetic", "eta": 0.05}, {"data": "breast_cancer", "eta": 0.015}], "rho": 0.05,
        "steps": 1000, "batch_size": 1, "n_trials": 10, "seed": 0}
QUICK = {**FULL, "steps": 60, "n_trials": 2}
FIGSIZE = (3.4, 3.6)


def compute(params):
    from samtheory.figures import progress
    from samtheory.stability import stability_experiment

    out = {}
    for k, case in enumerate(progress(params["cases"], "stability")):
        result = stability_experiment(case["data"], methods=tuple(BUILTIN_METHODS), eta=case["eta"], rho=params["rho"],
                                      steps=params["steps"], batch_size=params["batch_size"],
                                      n_trials=params["n_trials"], seed=params["seed"])
        out[f"{k}_steps"] = result.steps
        out[f"{k}_divergence"] = result.divergence          # (methods, records)
        out[f"{k}_gap"] = result.generalization_gap
        out[f"{k}_parameter_bound"] = result.parameter_bound
        out[f"{k}_stability_bound"] = result.stability_bound
        out[f"{k}_lipschitz"], out[f"{k}_n_samples"] = result.lipschitz, result.n_samples
        out[f"{k}_beta_max"], out[f"{k}_bound_applies"] = result.beta_max, result.bound_applies
        out[f"{k}_n_diverged"] = result.n_diverged
    return out


def plot(data, out_dir):
    from matplotlib.ticker import NullFormatter

    from samtheory import plotting

    p = data.params
    titles = {"synthetic": "synthetic logistic", "breast_cancer": "breast cancer"}
    fig, axes = plotting.figure(2, len(p["cases"]), height=FIGSIZE[1], sharex="col")
    axes = np.asarray(axes).reshape(2, -1)
    for k, case in enumerate(p["cases"]):
        steps = data[f"{k}_steps"]
        keep = steps > 0
        top, bottom = axes[0, k], axes[1, k]
        for m, name in enumerate(BUILTIN_METHODS):
            style = {**plotting.method_style(name), "label": None}
            top.plot(steps[keep], data[f"{k}_divergence"][m, keep], **style)
            bottom.plot(steps[keep], data[f"{k}_gap"][m, keep], **style)
        top.plot(steps[keep], data[f"{k}_parameter_bound"][keep], color="0.45", lw=0.8, ls=(0, (4, 2)))
        bottom.plot(steps[keep], data[f"{k}_stability_bound"][keep], color="0.45", lw=0.8, ls=(0, (4, 2)))
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        top.set_yscale("log")  # zero before the replaced example is first sampled: not drawn
        bottom.set_yscale("symlog", linthresh=1e-3, linscale=0.5)  # the gap can be negative
        bottom.axhline(0.0, color="0.7", lw=0.5, zorder=0)
        bottom.set_xlabel("step $t$")
        applies = "" if bool(data[f"{k}_bound_applies"]) else " (bound not proven: η > 2/β)"
        top.set_title(f"{titles.get(case['data'], case['data'])}, n = {int(data[f'{k}_n_samples'])}\n"
                      f"$\\eta$ = {case['eta']:g}, $\\rho$ = {p['rho']:g}, L = {float(data[f'{k}_lipschitz']):.3g}"
                      f"{applies}", fontsize=6)
    axes[0, 0].set_ylabel("$\\|w_t - w'_t\\|$")
    axes[1, 0].set_ylabel("gap $R_{test} - R_S$")
    from matplotlib.lines import Line2D

    handles = [plotting.matplotlib_handle(name, marker=None) for name in BUILTIN_METHODS]
    handles.append(Line2D([], [], color="0.45", lw=0.8, ls=(0, (4, 2)), label="SGD bound (O10)"))
    fig.legend(handles=handles, loc="outside upper center", ncols=3, columnspacing=1.0)
    return plotting.save(fig, out_dir, "uniform_stability")


if __name__ == "__main__":
    from samtheory.cli import run_figure_script

    raise SystemExit(run_figure_script(__file__))
