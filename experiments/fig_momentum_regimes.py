"""Figure 10: regimes under heavy-ball momentum — converged / bounded / diverged over the (η, β) plane (O15).

On the {1, 10, 100} quadratic with ρ = 0.05, one :func:`samtheory.stability.regime_map` per momentum β and
method (PyTorch's SGD momentum, v ← βv + g, x ← x − ηv, applied after the ascent and the renormalization), with
the closed-form edges of O15 drawn over every panel: 2(1 + β)/λ_max (GD with heavy ball) and
2(1 + β)/(λ_max(1 + ρλ_max)) (USAM). ``sam``, ``ssam`` and ``susam`` have no closed form with a base optimizer:
their maps are measured only.
"""

import numpy as np

from samtheory import BUILTIN_METHODS, Quadratic
from samtheory.figures import progress
from samtheory.stability import regime_map
from samtheory.theory import base_optimizer_critical_learning_rate, usam_curvature

ORDER = 10
DESCRIPTION = "momentum regimes: converged/bounded/diverged over (η, β) per method with the O15 edges"
FULL = {"eigenvalues": [1.0, 10.0, 100.0], "rho": 0.05, "eta_min": 5e-4, "eta_max": 0.08, "n_eta": 64,
        "beta_max": 0.95, "n_beta": 39, "steps": 6000, "tol": 1e-6, "n_points": 3}
QUICK = {**FULL, "n_eta": 16, "n_beta": 5, "steps": 400}
FIGSIZE = (3.4, 4.6)
PANELS = ("gd", "usam", "susam", "sam", "ssam")


def compute(params):
    problem = Quadratic(params["eigenvalues"])
    eta = np.geomspace(params["eta_min"], params["eta_max"], params["n_eta"])
    beta = np.linspace(0.0, params["beta_max"], params["n_beta"])
    rules = {"steps": params["steps"], "tol": params["tol"], "n_points": params["n_points"]}
    out = {"eta": eta, "beta": beta}
    for name in progress(PANELS, "momentum regime maps"):
        out[f"status_{name}"] = np.stack([regime_map(problem, name, eta, params["rho"], momentum=float(b),
                                                     **rules).status[:, 0] for b in beta], axis=1)
    return out


def plot(data, out_dir):
    from matplotlib.lines import Line2D

    from samtheory import plotting

    p = data.params
    lam_max = max(p["eigenvalues"])
    eta, beta = data["eta"], data["beta"]
    dense = np.linspace(0.0, beta[-1], 200)
    gd_edge = base_optimizer_critical_learning_rate(lam_max, momentum=dense)
    usam_edge = base_optimizer_critical_learning_rate(float(usam_curvature(lam_max, p["rho"])), momentum=dense)
    fig, axes = plotting.figure(3, 2, height=FIGSIZE[1], sharex=True, sharey=True)
    for ax, name in zip(axes.flat, PANELS):
        plotting.regime_panel(ax, eta, beta, data[f"status_{name}"], name, ylog=False, tag_y=0.90)
        ax.plot(gd_edge, dense, color="k", lw=0.9, ls="--")
        ax.plot(usam_edge, dense, color=plotting.METHOD_COLORS["usam"], lw=1.0)
    for ax in axes[-1]:
        ax.set_xlabel("learning rate $\\eta$")
    for ax in axes[:, 0]:
        ax.set_ylabel("momentum $\\beta$")
    legend_ax = axes.flat[-1]
    legend_ax.set_axis_off()
    handles = plotting.status_handles() + [
        Line2D([], [], color="k", lw=0.9, ls="--", label="$2(1 + \\beta)/\\lambda_{\\max}$ (GD, O15)"),
        Line2D([], [], color=plotting.METHOD_COLORS["usam"], lw=1.0,
               label="$2(1 + \\beta)/(\\lambda_{\\max}(1 + \\rho\\lambda_{\\max}))$ (USAM, O15)"),
    ]
    legend_ax.legend(handles=handles, loc="center", fontsize=5.5, handlelength=2.2, borderaxespad=0,
                     title=f"$\\lambda$ = {{1, 10, 100}}, $\\rho$ = {p['rho']:g};\nheavy ball (PyTorch SGD); "
                           f"{p['steps']} steps,\ntol {p['tol']:g}, {p['n_points']} starts per (η, β)",
                     title_fontsize=5.5)
    return plotting.save(fig, out_dir, "momentum_regimes")


if __name__ == "__main__":
    from samtheory.cli import run_figure_script

    raise SystemExit(run_figure_script(__file__))
