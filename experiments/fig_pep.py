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


def _certified(solve, *args, **kwargs):
    """``(result, "optimal")`` of one PEP computation, or ``(None, status)`` with the solver's status when no
    solver certified a value (huge worst cases). A failure is kept in the figure's ``*_status`` and
    ``*_failed`` arrays and drawn as such, never as a number."""
    from samtheory.convex import SolverError

    try:
        return solve(*args, **kwargs), "optimal"
    except SolverError as error:
        return None, error.status


def _worst_case(method, **kwargs):
    from samtheory.convex import pep

    result, status = _certified(pep.worst_case, method, **kwargs)
    return (np.nan if result is None else result.worst_case), status


def _record(out, key, solves):
    """``out[key]`` (values, NaN where not certified), ``out[key + "_status"]`` and ``out[key + "_failed"]``
    from nested lists of ``(value, status)``."""
    solves = np.array(solves, dtype=object)
    out[key] = solves[..., 0].astype(float)
    out[f"{key}_status"] = solves[..., 1].astype(str)
    out[f"{key}_failed"] = out[f"{key}_status"] != "optimal"


def compute(params):
    from samtheory.figures import progress
    from samtheory.convex import pep

    out = {}
    h = np.linspace(0.1, 1.9, params["gd_h"])
    out["gd_h"] = h
    _record(out, "gd_worst", [[_worst_case("gd", eta=float(v), steps=n) for v in h]
                              for n in progress(params["gd_steps"], "PEP gd")])
    usam_eta = []
    usam_solves = []
    for rho in progress(params["usam_rho"], "PEP usam"):
        threshold = float(pep.usam_quadratic_threshold(rho))
        eta = np.linspace(0.1, 1.25, params["usam_eta"]) * threshold
        usam_eta.append(eta)
        usam_solves.append([_worst_case("usam", eta=float(v), rho=rho, steps=params["usam_steps"]) for v in eta])
    out["usam_eta"] = np.array(usam_eta)
    _record(out, "usam_worst", usam_solves)
    edges = [_certified(pep.pep_critical_learning_rate, "usam", rho=rho, steps=params["regime_steps"],
                        xtol=params["regime_xtol"]) for rho in progress(params["regime_rho"], "PEP regime")]
    _record(out, "regime_eta", [(np.nan if edge is None else edge.eta, status) for edge, status in edges])
    out["regime_bracket"] = np.array([(np.nan, np.nan) if edge is None else edge.bracket for edge, _ in edges])
    out["regime_quadratic"] = np.array([float(pep.usam_quadratic_threshold(rho)) for rho in params["regime_rho"]])
    return out


def _mark_failures(ax, x, failed, color):
    """An × at the top of ``ax`` for every solve that no solver certified; returns how many."""
    x, failed = np.ravel(x), np.ravel(failed)
    if failed.any():
        ax.plot(x[failed], np.full(failed.sum(), 0.97), ls="none", marker="x", color=color, markersize=3.5,
                transform=ax.get_xaxis_transform(), clip_on=False)
    return int(failed.sum())


def _failure_note(count):
    return f"; × not certified ({count})" if count else ""


def plot(data, out_dir):
    from matplotlib.lines import Line2D

    from samtheory import plotting
    from samtheory.convex.pep import gd_worst_case_bound, usam_quadratic_threshold

    p = data.params
    fig, axes = plotting.figure(3, 1, height=FIGSIZE[1])
    # (a) GD
    ax = axes[0]
    dense = np.linspace(0.02, 1.98, 300)
    failures = 0
    for n, color, worst, failed in zip(p["gd_steps"], plotting.shades("gd", len(p["gd_steps"])), data["gd_worst"],
                                       data["gd_worst_failed"]):
        failures += _mark_failures(ax, data["gd_h"], failed, color)
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
    certified = ~data["gd_worst_failed"]
    gap = np.abs(data["gd_worst"] / gd_worst_case_bound(data["gd_h"][None, :], steps=np.array(p["gd_steps"])[:, None])
                 - 1)[certified]
    gap_text = f"max relative gap {gap.max():.1e}" if gap.size else "no certified value"
    plotting.panel_label(ax, "a", f"GD, PEP (○) vs closed form: {gap_text}{_failure_note(failures)}")

    # (b) USAM
    ax = axes[1]
    failures = 0
    for rho, color, eta, worst, failed in zip(p["usam_rho"], plotting.shades("usam", len(p["usam_rho"]), 0.55),
                                              data["usam_eta"], data["usam_worst"], data["usam_worst_failed"]):
        failures += _mark_failures(ax, eta, failed, color)
        ax.plot(eta, worst, color=color, marker="^", markerfacecolor="none", markersize=3, lw=0.8,
                label=f"$\\rho$ = {rho:g}")
        ax.axvline(float(usam_quadratic_threshold(rho)), color=color, lw=0.7, ls="--")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate $\\eta$ ($L$ = 1)")
    ax.set_ylabel("worst $f(x_N) - f^*$")
    ax.set_ylim(None, 2e3)  # room for the legend above the curves
    ax.legend(loc="upper center", ncols=4, fontsize=5.5, columnspacing=0.8, handlelength=1.8)
    plotting.panel_label(ax, "b", f"USAM, N = {p['usam_steps']}; dashed: $2/(L(1+\\rho L))$ (O2)"
                                  f"{_failure_note(failures)}")

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
    failures = _mark_failures(ax, rho, data["regime_eta_failed"], plotting.METHOD_COLORS["usam"])
    gap = np.abs(data["regime_eta"] - data["regime_quadratic"])[~data["regime_eta_failed"]]
    gap_text = f"max |PEP − O2| = {gap.max():.1e}" if gap.size else "no certified edge"
    plotting.panel_label(ax, "c", f"USAM's PEP regime: {gap_text}{_failure_note(failures)}")
    return plotting.save(fig, out_dir, "pep")


if __name__ == "__main__":
    from samtheory.cli import run_figure_script

    raise SystemExit(run_figure_script(__file__))
