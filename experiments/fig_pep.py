"""Figure 7: worst-case certificates by performance estimation (PEP, THEORY.md O9).

The exact worst case of f(x_N) − f* over all L-smooth convex f with ‖x_0 − x*‖ ≤ R (L = R = 1), as a
Gram-matrix SDP in CVXPY (:mod:`samtheory.convex.pep`): (a) GD against h = ηL for several N beside
L R²/(4Nh + 2) (proven tight for h ≤ 1, Drori & Teboulle 2014) and its continuation max(·, (1 − h)^{2N})/…
for 1 < h < 2 (Taylor, Hendrickx & Glineur 2017, conjecture); (b) USAM at N steps for several ρ, with the
quadratic threshold 2/(L(1 + ρL)) of O2; (c) the "PEP regime" — the largest η at which the worst case still
decreases with N — against that threshold. SAM, SSAM and SUSAM divide by gradient norms: no exact PEP.
"""

import numpy as np

ORDER = 7
DESCRIPTION = "PEP worst case of f(x_N) − f* vs η for GD and USAM at several N and ρ, with O2/O9 thresholds"
FULL = {"gd_steps": [1, 2, 5, 10], "gd_h": 14, "usam_steps": 5, "usam_rho": [0.0, 0.25, 1.0, 4.0], "usam_eta": 16,
        "regime_rho": [0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0], "regime_steps": 5, "regime_xtol": 1e-3}
QUICK = {**FULL, "gd_steps": [1, 5], "gd_h": 4, "usam_rho": [0.0, 1.0], "usam_eta": 4, "regime_rho": [1.0],
         "regime_xtol": 2e-2}
FIGSIZE = (3.4, 5.0)


def _worst_case_or_nan(method, **kwargs):
    from samtheory.convex import SolverError, pep

    try:
        return pep.worst_case(method, **kwargs).worst_case
    except SolverError:  # the solver could not certify this value (huge worst cases): leave it out
        return np.nan


def compute(params):
    from samtheory._figures import progress
    from samtheory.convex import pep

    out = {}
    h = np.linspace(0.1, 1.9, params["gd_h"])
    out["gd_h"] = h
    out["gd_worst"] = np.array([[_worst_case_or_nan("gd", eta=float(v), steps=n) for v in h]
                                for n in progress(params["gd_steps"], "PEP gd")])
    usam_eta = []
    usam_worst = []
    for rho in progress(params["usam_rho"], "PEP usam"):
        threshold = float(pep.usam_quadratic_threshold(rho))
        eta = np.linspace(0.1, 1.25, params["usam_eta"]) * threshold
        usam_eta.append(eta)
        usam_worst.append([_worst_case_or_nan("usam", eta=float(v), rho=rho, steps=params["usam_steps"]) for v in eta])
    out["usam_eta"], out["usam_worst"] = np.array(usam_eta), np.array(usam_worst)
    regime = [pep.pep_critical_learning_rate("usam", rho=rho, steps=params["regime_steps"], xtol=params["regime_xtol"])
              for rho in progress(params["regime_rho"], "PEP regime")]
    out["regime_eta"] = np.array([r.eta for r in regime])
    out["regime_bracket"] = np.array([r.bracket for r in regime])
    out["regime_quadratic"] = np.array([r.quadratic_eta for r in regime])
    return out


def plot(data, out_dir):
    from matplotlib.lines import Line2D

    from samtheory import plotting
    from samtheory.convex.pep import gd_worst_case_bound, usam_quadratic_threshold

    p = data.params
    fig, axes = plotting.figure(3, 1, height=FIGSIZE[1])
    # (a) GD
    ax = axes[0]
    dense = np.linspace(0.02, 1.98, 300)
    for n, color, worst in zip(p["gd_steps"], plotting.shades("gd", len(p["gd_steps"])), data["gd_worst"]):
        bound = gd_worst_case_bound(dense, steps=n)
        proven = dense <= 1
        ax.plot(dense[proven], bound[proven], color=color, lw=0.9)
        ax.plot(dense[~proven], bound[~proven], color=color, lw=0.9, ls=":")
        ax.plot(data["gd_h"], worst, ls="none", marker="o", markerfacecolor="none", color=color, markersize=3.5,
                label=f"N = {n}")
    ax.set_yscale("log")
    ax.set_xlabel("$h = \\eta L$")
    ax.set_ylabel("worst $f(x_N) - f^*$")
    handles, _ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="0.3", lw=0.9, label="$LR^2/(4Nh+2)$, proven"),
                Line2D([], [], color="0.3", lw=0.9, ls=":", label="conjectured, $h > 1$")]
    ax.set_ylim(4e-3, None)
    ax.legend(handles=handles, loc="lower left", ncols=2, fontsize=5.5, columnspacing=0.8)
    worst_error = np.nanmax(np.abs(data["gd_worst"] / gd_worst_case_bound(data["gd_h"][None, :],
                                   steps=np.array(p["gd_steps"])[:, None]) - 1))
    plotting.panel_label(ax, "a", f"GD, PEP (○) vs closed form: max relative gap {worst_error:.1e}")

    # (b) USAM
    ax = axes[1]
    for rho, color, eta, worst in zip(p["usam_rho"], plotting.shades("usam", len(p["usam_rho"]), 0.55),
                                      data["usam_eta"], data["usam_worst"]):
        ax.plot(eta, worst, color=color, marker="^", markerfacecolor="none", markersize=3, lw=0.8,
                label=f"$\\rho$ = {rho:g}")
        ax.axvline(float(usam_quadratic_threshold(rho)), color=color, lw=0.7, ls="--")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate $\\eta$ ($L$ = 1)")
    ax.set_ylabel("worst $f(x_N) - f^*$")
    ax.set_ylim(None, 2e3)  # room for the legend above the curves
    ax.legend(loc="upper center", ncols=4, fontsize=5.5, columnspacing=0.8, handlelength=1.8)
    plotting.panel_label(ax, "b", f"USAM, N = {p['usam_steps']}; dashed: $2/(L(1+\\rho L))$ (O2)")

    # (c) the PEP regime against the quadratic threshold
    ax = axes[2]
    rho = np.array(p["regime_rho"], dtype=float)
    dense = np.linspace(0, max(rho.max(), 0.1) * 1.05, 200)
    ax.plot(dense, usam_quadratic_threshold(dense), color=plotting.METHOD_COLORS["usam"], lw=0.9,
            label="$2/(L(1 + \\rho L))$ (quadratics, O2)")
    ax.plot(rho, data["regime_eta"], **{**plotting.method_style("usam", line=False),
                                                    "label": f"PEP: worst case decreases N={p['regime_steps']}→"
                                                             f"{p['regime_steps'] + 1}"},
            markerfacecolor="none")
    ax.set_xlabel("radius $\\rho$ ($L$ = 1)")
    ax.set_ylabel("largest $\\eta$")
    ax.legend(loc="upper right", fontsize=5.5)
    gap = np.max(np.abs(data["regime_eta"] - data["regime_quadratic"]))
    plotting.panel_label(ax, "c", f"USAM's PEP regime: max |PEP − O2| = {gap:.1e}")
    return plotting.save(fig, out_dir, "pep")


if __name__ == "__main__":
    from samtheory._figures import run_as_script

    raise SystemExit(run_as_script(__file__))
