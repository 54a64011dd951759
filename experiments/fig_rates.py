"""Figure 11: asymptotic rates across η — measured against the closed forms of O13 (gd, usam, susam, ssam).

On the {1, 10, 100} quadratic with ρ = 0.05, :func:`samtheory.stability.measured_rate` (the contraction of ‖g‖
per step over the second half of the run, worst of the starting points) beside
:func:`samtheory.theory.asymptotic_rate`: GD's max|1 − ηλ|, USAM's max|1 − ηA| with A = λ(1 + ρλ), and the
renormalized methods' rate, floored at USAM's best rate (susam: (A_max − A_min)/(A_max + A_min)) or at its
small-gradient limit (ssam: A = λ²). The plot shows 1 − rate (larger is faster) on a log scale; a method whose
rate reaches 1 has stopped converging (diverged: above its edge).
"""

import numpy as np

from samtheory import Quadratic
from samtheory.figures import progress
from samtheory.stability import asymptotic_rate, measured_rate

ORDER = 11
DESCRIPTION = "asymptotic rates across η: measured vs closed form for gd, usam, susam, ssam (O13)"
METHODS = ("gd", "usam", "susam", "ssam")
FULL = {"eigenvalues": [1.0, 10.0, 100.0], "rho": 0.05, "eta_min": 2e-4, "eta_max": 0.0199, "n_eta": 48,
        "steps": 20000, "dense": 400}
QUICK = {**FULL, "n_eta": 8, "steps": 2000, "dense": 60}
FIGSIZE = (3.4, 3.6)


def compute(params):
    problem = Quadratic(params["eigenvalues"])
    eta = np.geomspace(params["eta_min"], params["eta_max"], params["n_eta"])
    dense = np.geomspace(params["eta_min"], params["eta_max"], params["dense"])
    out = {"eta": eta, "dense": dense}
    for name in progress(METHODS, "rates"):
        out[f"measured_{name}"] = measured_rate(problem, name, eta, params["rho"], steps=params["steps"])
        out[f"closed_{name}"] = asymptotic_rate(name, params["eigenvalues"], dense, params["rho"])
        out[f"closed_at_{name}"] = asymptotic_rate(name, params["eigenvalues"], eta, params["rho"])
    return out


def plot(data, out_dir):
    from samtheory import plotting

    p = data.params
    eta, dense = data["eta"], data["dense"]
    fig, axes = plotting.figure(2, 1, height=FIGSIZE[1], sharex=True, gridspec_kw={"height_ratios": [2.2, 1]})
    ax, bottom = axes
    worst = {}
    for name in METHODS:
        closed = data[f"closed_{name}"]
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = np.where(closed < 1, 1 - closed, np.nan)
        ax.plot(dense, gap, color=plotting.METHOD_COLORS[name], lw=0.9, ls=plotting.METHOD_LINESTYLES[name],
                label=plotting.METHOD_LABELS[name])
        measured = data[f"measured_{name}"]
        ok = np.isfinite(measured) & (measured < 1)
        ax.plot(eta[ok], 1 - measured[ok], **{**plotting.method_style(name, line=False), "label": None},
                markerfacecolor="none", markersize=3, markeredgewidth=0.7)
        at = data[f"closed_at_{name}"]
        both = ok & (at < 1)
        relative = np.abs(measured[both] - at[both]) / at[both]
        worst[name] = float(relative.max()) if relative.size else float("nan")
        bottom.plot(eta[both], np.maximum(relative, 1e-16), **plotting.method_style(name, marker=True),
                    markerfacecolor="none", markersize=2.5, lw=0.6)
    for a in axes:
        a.set_xscale("log")
        a.set_yscale("log")
        a.axvline(2 / max(p["eigenvalues"]) / (1 + p["rho"] * max(p["eigenvalues"])), color="0.6", lw=0.6, ls=":")
    ax.set_ylabel("$1 -$ rate per step")
    usam_edge = 2 / max(p["eigenvalues"]) / (1 + p["rho"] * max(p["eigenvalues"]))
    ax.text(usam_edge * 1.05, 0.35, "USAM's edge", transform=ax.get_xaxis_transform(), rotation=90, fontsize=5.5,
            color="0.4", va="bottom")
    ax.legend(loc="upper left", fontsize=5.5, title="lines: closed form (O13); markers: measured",
              title_fontsize=5.5)
    plotting.panel_label(ax, "a", f"$\\lambda$ = {{1, 10, 100}}, $\\rho$ = {p['rho']:g}, {p['steps']} steps")
    bottom.set_xlabel("learning rate $\\eta$")
    bottom.set_ylabel("|measured/closed $- 1$|")
    plotting.panel_label(bottom, "b", "max: " + ", ".join(f"{plotting.METHOD_LABELS[n]} {worst[n]:.0e}"
                                                           for n in METHODS))
    return plotting.save(fig, out_dir, "rates")


if __name__ == "__main__":
    from samtheory.cli import run_figure_script

    raise SystemExit(run_figure_script(__file__))
