"""Figure 1: the regime atlas — converged / bounded / diverged over the (η, ρ) plane for each method.

On the {1, 10, 100} quadratic, one vectorized :func:`samtheory.stability.regime_map` per method, with the
analytic boundaries drawn over it: GD's 2/λ_max (O1, also SAM's bounded edge, O3) and USAM's
2/(λ_max(1 + ρλ_max)) (O2); for ``ssam`` and ``susam``, which have no closed form in d > 1, the measured
non-divergent edge from :func:`samtheory.stability.critical_learning_rate` (vectorized bisection over η).
"Bounded" means finite but not converged within the step budget (a 2-cycle, or convergence too slow for it:
left of the dotted line (1 − ηλ_min)^T = tol·κ, κ = λ_max/λ_min, even GD cannot bring ‖g‖ from ‖g_0‖ ≈ λ_max|x_0|
to tol·‖g_0‖ in T steps).
"""

import numpy as np

from samtheory import BUILTIN_METHODS, Quadratic
from samtheory.figures import progress
from samtheory.stability import (
    critical_learning_rate, gd_critical_learning_rate, regime_map, usam_critical_learning_rate,
)

ORDER = 1
DESCRIPTION = "regime atlas: converged/bounded/diverged over (η, ρ) per method, analytic and measured edges (O1-O5)"
FULL = {"eigenvalues": [1.0, 10.0, 100.0], "eta_min": 5e-4, "eta_max": 0.05, "n_eta": 72, "rho_min": 1e-3,
        "rho_max": 1.0, "n_rho": 48, "steps": 8000, "tol": 1e-6, "n_points": 3, "edge_n_rho": 10, "edge_rtol": 1e-3}
QUICK = {**FULL, "n_eta": 20, "n_rho": 12, "steps": 800, "edge_n_rho": 3, "edge_rtol": 2e-2}
FIGSIZE = (3.4, 4.6)
MEASURED_EDGES = ("ssam", "susam")


def compute(params):
    problem = Quadratic(params["eigenvalues"])
    eta = np.geomspace(params["eta_min"], params["eta_max"], params["n_eta"])
    rho = np.geomspace(params["rho_min"], params["rho_max"], params["n_rho"])
    edge_rho = np.geomspace(params["rho_min"], params["rho_max"], params["edge_n_rho"])
    out = {"eta": eta, "rho": rho, "edge_rho": edge_rho}
    rules = {"steps": params["steps"], "tol": params["tol"], "n_points": params["n_points"]}
    for name in progress(BUILTIN_METHODS, "regime maps"):
        out[f"status_{name}"] = regime_map(problem, name, eta, rho, **rules).status
    for name in MEASURED_EDGES:
        measured = critical_learning_rate(problem, name, edge_rho, rtol=params["edge_rtol"], **rules)
        out[f"edge_{name}"], out[f"edge_{name}_lower"], out[f"edge_{name}_upper"] = \
            measured.value, measured.lower, measured.upper
    return out


def plot(data, out_dir):
    from samtheory import plotting

    p = data.params
    lam_max = max(p["eigenvalues"])
    eta, rho = data["eta"], data["rho"]
    fig, axes = plotting.figure(3, 2, height=FIGSIZE[1], sharex=True, sharey=True)
    dense_rho = np.geomspace(rho[0], rho[-1], 200)
    gd_edge = float(gd_critical_learning_rate(lam_max))
    lam_min = min(p["eigenvalues"])
    budget_edge = -np.log(p["tol"] * lam_max / lam_min) / (lam_min * p["steps"])  # GD: (1 - ηλ_min)^T ≈ tol·κ
    usam_edge = usam_critical_learning_rate(lam_max, dense_rho)
    for ax, name in zip(axes.flat, BUILTIN_METHODS):
        plotting.regime_panel(ax, eta, rho, data[f"status_{name}"], name)
        ax.axvline(gd_edge, color="k", lw=0.9, ls="--")
        ax.axvline(budget_edge, color="0.35", lw=0.7, ls=":")
        ax.plot(usam_edge, dense_rho, color=plotting.METHOD_COLORS["usam"], lw=1.0, ls="-")
        if name in MEASURED_EDGES:
            ax.plot(data[f"edge_{name}"], data["edge_rho"], **plotting.method_style(name, marker=True),
                    markerfacecolor="white", markersize=3, lw=0.9)
    for ax in axes[-1]:
        ax.set_xlabel("learning rate $\\eta$")
    for ax in axes[:, 0]:
        ax.set_ylabel("radius $\\rho$")
    # The sixth cell holds the legend.
    legend_ax = axes.flat[-1]
    legend_ax.set_axis_off()
    from matplotlib.lines import Line2D

    handles = plotting.status_handles() + [
        Line2D([], [], color="k", lw=0.9, ls="--", label="$2/\\lambda_{\\max}$ (GD, O1; SAM bounded, O3)"),
        Line2D([], [], color=plotting.METHOD_COLORS["usam"], lw=1.0,
               label="$2/(\\lambda_{\\max}(1 + \\rho\\lambda_{\\max}))$ (USAM, O2)"),
        Line2D([], [], color="0.35", lw=0.7, ls=":",
               label="$(1 - \\eta\\lambda_{\\min})^T = \\mathrm{tol}\\,\\kappa$ (GD's step budget)"),
    ] + [Line2D([], [], **{**plotting.method_style(name, marker=True), "label": f"{plotting.METHOD_LABELS[name]}"
                f" measured edge"}, markerfacecolor="white", markersize=3) for name in MEASURED_EDGES]
    legend_ax.legend(handles=handles, loc="center", fontsize=5.5, handlelength=2.2, borderaxespad=0,
                     title=f"$\\lambda$ = {{1, 10, 100}}; {p['steps']} steps,\ntol {p['tol']:g}, "
                           f"{p['n_points']} starts per (η, ρ)", title_fontsize=5.5)
    return plotting.save(fig, out_dir, "regime_atlas")


if __name__ == "__main__":
    from samtheory.cli import run_figure_script

    raise SystemExit(run_figure_script(__file__))
