"""Figure 2: regime widths — the critical learning rate against ρ for every method (THEORY.md O5).

The toolkit's answer to the paper's central claim ("SAM's effectiveness is assured only in a limited regime
of learning rate; StableSAM extends it"): :func:`samtheory.stability.compare_regimes` on the {1, 10, 100}
quadratic measures, for each method and ρ, (a) the non-divergent edge (largest η at which no run diverges)
and (b) the converged edge (largest η at which every run converges within T steps), both by vectorized
bisection to a relative tolerance, beside the closed forms of O1–O3 where they exist.
"""

import numpy as np

from samtheory import BUILTIN_METHODS, Quadratic
from samtheory.figures import progress
from samtheory.stability import compare_regimes, gd_critical_learning_rate, usam_critical_learning_rate

ORDER = 2
DESCRIPTION = "critical learning rate vs ρ for every method, analytic lines and measured points (O5)"
FULL = {"eigenvalues": [1.0, 10.0, 100.0], "rho_min": 1e-3, "rho_max": 1.0, "n_rho": 13, "rtol": 1e-3,
        "steps": 8000, "tol": 1e-6, "n_points": 3}
QUICK = {**FULL, "n_rho": 3, "rtol": 2e-2, "steps": 800}
FIGSIZE = (3.4, 4.2)
FIELDS = ("analytic_eta", "empirical_eta", "analytic_converged_eta", "empirical_converged_eta")


def compute(params):
    problem = Quadratic(params["eigenvalues"])
    rho = np.geomspace(params["rho_min"], params["rho_max"], params["n_rho"])
    out = {"rho": rho}
    for name in progress(BUILTIN_METHODS, "regime widths"):
        rows = compare_regimes(problem, [name], rho, rtol=params["rtol"], steps=params["steps"], tol=params["tol"],
                               n_points=params["n_points"])
        for field in FIELDS:
            out[f"{name}_{field}"] = np.array([np.nan if row[field] is None else row[field] for row in rows])
    return out


def plot(data, out_dir):
    from matplotlib.lines import Line2D

    from samtheory import plotting

    p = data.params
    lam_max = max(p["eigenvalues"])
    rho = data["rho"]
    dense = np.geomspace(rho[0], rho[-1], 200)
    gd_edge = float(gd_critical_learning_rate(lam_max))
    fig, axes = plotting.figure(2, 1, height=FIGSIZE[1], sharex=True)
    for ax, field, title in ((axes[0], "empirical_eta", "non-divergent edge (no run diverges)"),
                             (axes[1], "empirical_converged_eta", f"converged edge (every run converges in "
                                                                 f"{p['steps']} steps)")):
        ax.axhline(gd_edge, color="k", lw=0.9, ls="--", zorder=1)
        ax.plot(dense, usam_critical_learning_rate(lam_max, dense), color=plotting.METHOD_COLORS["usam"], lw=1.0,
                zorder=1)
        missing = []
        for k, name in enumerate(BUILTIN_METHODS):
            values = data[f"{name}_{field}"]
            if np.all(np.isnan(values)):
                missing.append(plotting.METHOD_LABELS[name])
                continue
            ax.plot(rho, values, **{**plotting.method_style(name, line=False), "label": None},
                    markerfacecolor="none", markersize=3 + 0.9 * (4 - k), markeredgewidth=0.8, zorder=2 + k)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylabel("critical learning rate $\\eta_c$")
        errors = []
        for name in ("gd", "sam", "usam"):
            analytic = data[f"{name}_{field.replace('empirical', 'analytic')}"]
            ok = np.isfinite(analytic) & np.isfinite(data[f"{name}_{field}"])
            if ok.any():
                errors.append(np.max(np.abs(data[f"{name}_{field}"][ok] / analytic[ok] - 1)))
        note = f"max |measured/closed form − 1| = {max(errors):.1e} (rtol {p['rtol']:g})" if errors else ""
        if missing:
            note += f"\nno converged edge at any ρ: {', '.join(missing)}"
        ax.text(0.02, 0.04, note, transform=ax.transAxes, fontsize=5.5, va="bottom")
        plotting.panel_label(ax, "ab"[field.startswith("empirical_c")], title)
    axes[1].set_xlabel("radius $\\rho$")
    handles = [Line2D([], [], color="k", lw=0.9, ls="--", label="$2/\\lambda_{\\max}$ (O1, O3)"),
               Line2D([], [], color=plotting.METHOD_COLORS["usam"], lw=1.0,
                      label="$2/(\\lambda_{\\max}(1+\\rho\\lambda_{\\max}))$ (O2)")]
    handles += [plotting.matplotlib_handle(name, markerfacecolor="none", linestyle="none") for name in BUILTIN_METHODS]
    fig.legend(handles=handles, loc="outside upper center", ncols=4, columnspacing=0.8, fontsize=5.8,
               handlelength=2.0)
    return plotting.save(fig, out_dir, "regime_widths")


if __name__ == "__main__":
    from samtheory.cli import run_figure_script

    raise SystemExit(run_figure_script(__file__))
