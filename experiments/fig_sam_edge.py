"""Figure 5: SAM's 2-cycle on a quadratic (THEORY.md O3) and the final sharpness on a non-quadratic (O2, O12).

(a) SAM's iterates along the top eigenvector u_1 settle on ±a with a = ηρλ_1/(2 − ηλ_1); (b) the measured
amplitude against η beside that closed form; (c) on ``ScalarFactorization`` f(u, v) = ½(uv − 1)², whose
sharpness changes along training, the sharpness λ_max at the end of training against η for every method,
beside GD's edge 2/η, USAM's largest stable sharpness λ*(η, ρ) and SAM's edge λ_edge(η, ρ, ‖g‖) at SAM's final
gradient norm.
"""

import numpy as np

from samtheory import BUILTIN_METHODS, METHODS, Quadratic, ScalarFactorization, simulate
from samtheory.theory import gd_critical_learning_rate, sam_cycle_amplitude, sam_edge, usam_max_stable_sharpness

ORDER = 5
DESCRIPTION = "SAM's 2-cycle ±a·u_1 with its predicted amplitude (O3); final sharpness vs η on a factorization (O12)"
FULL = {
    "cycle": {"eigenvalues": [1.0, 4.0, 10.0], "rho": 0.1, "eta_trace": 0.15, "trace_steps": 60,
              "eta_min": 0.002, "eta_max_fraction": 0.995, "n_eta": 24, "steps": 20000, "seed": 0},
    "sharpness": {"target": 1.0, "x0": [3.1, 0.1], "rho": 0.1, "eta_min": 0.03, "eta_max": 0.9, "n_eta": 28,
                  "steps": 20000},
}
QUICK = {"cycle": {**FULL["cycle"], "n_eta": 6, "steps": 3000},
         "sharpness": {**FULL["sharpness"], "n_eta": 6, "steps": 3000}}
FIGSIZE = (3.4, 5.4)


def compute(params):
    out = {}
    c = params["cycle"]
    problem = Quadratic(c["eigenvalues"])
    lam_1 = problem.beta
    # (a) a trajectory, every iterate recorded by the engine.
    trace = simulate(problem, "sam", c["eta_trace"], c["rho"], steps=c["trace_steps"],
                     x0=problem.initial_point(c["seed"]), record_every=1, record_iterates=True)
    out["trace"] = trace.history.x  # (steps + 1, d), eigenbasis = coordinates (diagonal quadratic)
    # (b) the amplitude after many steps over an η grid, one vectorized run.
    eta = np.geomspace(c["eta_min"], c["eta_max_fraction"] * float(gd_critical_learning_rate(lam_1)), c["n_eta"])
    result = simulate(problem, "sam", eta, c["rho"], steps=c["steps"], seed=c["seed"])
    top = int(np.argmax(problem.eigenvalues))
    out["cycle_eta"], out["cycle_status"] = eta, result.status
    out["cycle_amplitude"] = np.abs(result.x[:, top])
    out["cycle_rest"] = np.abs(np.delete(result.x, top, axis=1)).max(axis=1)
    # (c) the sharpness at the end of training on the scalar factorization.
    s = params["sharpness"]
    factorization = ScalarFactorization(s["target"])
    eta = np.geomspace(s["eta_min"], s["eta_max"], s["n_eta"])
    out["sharp_eta"] = eta
    gradient = factorization.gradient_oracle(None)
    for name in BUILTIN_METHODS:
        result = simulate(factorization, name, eta, s["rho"], steps=s["steps"], x0=np.asarray(s["x0"]))
        final = result.x.reshape(-1, 2)
        after = METHODS[name](final, gradient, eta[:, None], s["rho"]).x  # one more step: both points of a cycle
        ok = ~result.diverged
        sharp = np.full(eta.shape, np.nan)
        sharp[ok] = 0.5 * (factorization.sharpness(final[ok]) + factorization.sharpness(after[ok]))
        grad_norm = np.full(eta.shape, np.nan)
        grad_norm[ok] = 0.5 * (np.linalg.norm(gradient(final[ok]), axis=1)
                               + np.linalg.norm(gradient(after[ok]), axis=1))
        out[f"sharp_{name}"], out[f"grad_norm_{name}"], out[f"status_{name}"] = sharp, grad_norm, result.status
    return out


def plot(data, out_dir):
    from samtheory import plotting

    p = data.params
    c, s = p["cycle"], p["sharpness"]
    lam_1 = max(c["eigenvalues"])
    fig, axes = plotting.figure(3, 1, height=FIGSIZE[1], gridspec_kw={"height_ratios": [1, 1, 1.35]})
    sam_style = plotting.method_style("sam", marker=True)

    # (a) trace along u_1
    ax = axes[0]
    trace = data["trace"]
    top = int(np.argmax(c["eigenvalues"]))
    a = float(sam_cycle_amplitude(c["eta_trace"], c["rho"], lam_1))
    t = np.arange(trace.shape[0])
    ax.plot(t, trace[:, top], lw=0.7, markersize=2.5, **{**sam_style, "linestyle": "-"})
    others = np.delete(trace, top, axis=1)
    second = sorted(c["eigenvalues"])[-2]
    ax.plot(t, others[:, -1], color="0.5", lw=0.8, label=f"$x_t \\cdot u_2$ ($\\lambda_2$ = {second:g})")
    for sign in (1, -1):
        ax.axhline(sign * a, color="k", lw=0.7, ls="--", label="$\\pm a$ (O3)" if sign == 1 else None)
    ax.set_xlabel("step $t$")
    ax.set_ylabel("$x_t \\cdot u_1$")
    ax.set_ylim(-4 * a, 4 * a)
    ax.set_xlim(0, t[-1])
    ax.legend(loc="upper right", ncols=3, fontsize=6, handlelength=1.8)
    plotting.panel_label(ax, "a", f"SAM on $\\lambda$ = {{{', '.join(f'{v:g}' for v in c['eigenvalues'])}}}, "
                                  f"$\\eta$ = {c['eta_trace']:g}, $\\rho$ = {c['rho']:g}: $a$ = {a:.4f}")

    # (b) amplitude against η
    ax = axes[1]
    eta = data["cycle_eta"]
    dense = np.geomspace(eta[0], eta[-1], 400)
    ax.plot(dense, sam_cycle_amplitude(dense, c["rho"], lam_1), color="k", lw=0.9,
            label="$a = \\eta\\rho\\lambda_1/(2 - \\eta\\lambda_1)$")
    ax.plot(eta, data["cycle_amplitude"], **{**plotting.method_style("sam", line=False),
                                             "label": f"SAM, $|x_T \\cdot u_1|$ after {c['steps']} steps"},
            markerfacecolor="none")
    gd_edge = float(gd_critical_learning_rate(lam_1))
    ax.axvline(gd_edge, color="0.5", lw=0.7, ls=":")
    ax.text(gd_edge, 1.02, "$2/\\lambda_1$", transform=ax.get_xaxis_transform(), ha="center", fontsize=6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate $\\eta$")
    ax.set_ylabel("cycle amplitude")
    ax.legend(loc="upper left")
    worst = float(np.max(np.abs(data["cycle_amplitude"] / sam_cycle_amplitude(eta, c["rho"], lam_1) - 1)))
    plotting.panel_label(ax, "b", f"amplitude vs $\\eta$: max relative error {worst:.1e}")

    # (c) sharpness against η on the factorization
    ax = axes[2]
    eta = data["sharp_eta"]
    dense = np.geomspace(eta[0], eta[-1], 400)
    ax.plot(dense, 2 / dense, color=plotting.METHOD_COLORS["gd"], lw=0.9)
    ax.plot(dense, usam_max_stable_sharpness(dense, s["rho"]), color=plotting.METHOD_COLORS["usam"], lw=0.9)
    ok = np.isfinite(data["grad_norm_sam"])
    ax.plot(eta[ok], sam_edge(eta[ok], s["rho"], data["grad_norm_sam"][ok]), color=plotting.METHOD_COLORS["sam"],
            lw=0.9)
    u0, v0 = s["x0"]
    flow_limit = np.hypot(u0**2 - v0**2, 2 * s["target"])  # u² − v² is conserved by gradient flow
    ax.axhline(flow_limit, color="0.6", lw=0.7, ls=":", zorder=0)
    ax.text(eta[-1], flow_limit * 1.06, "gradient-flow limit", fontsize=5.5, color="0.4", ha="right")
    ax.axhline(2 * s["target"], color="0.6", lw=0.7, ls=":", zorder=0)
    ax.text(eta[-1], 2 * s["target"] * 0.8, "flattest minimum", fontsize=5.5, color="0.4", ha="right", va="top")
    top = 60.0
    for k, name in enumerate(BUILTIN_METHODS):
        sharp = data[f"sharp_{name}"]
        ax.plot(eta, sharp, **{**plotting.method_style(name, line=False), "label": None}, markerfacecolor="none",
                markeredgewidth=0.8)
        bad = data[f"status_{name}"] == 2
        ax.plot(eta[bad], np.full(bad.sum(), top * 0.88**k), marker="x", ls="none", color=plotting.METHOD_COLORS[name],
                markersize=3, clip_on=False)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(1, top)
    ax.set_xlabel("learning rate $\\eta$")
    ax.set_ylabel("final sharpness $\\lambda_{\\max}$")
    # Inline labels instead of a legend (the upper right holds the divergence marks).
    usam_at = float(usam_max_stable_sharpness(eta[0], s["rho"]))
    ax.text(0.1, 2 / 0.1 * 1.6, "$2/\\eta$ (GD, O1)", fontsize=5.5, rotation=-28,
            rotation_mode="anchor", color=plotting.METHOD_COLORS["gd"], va="bottom")
    ax.text(eta[0], usam_at * 1.1, "$\\lambda^*(\\eta, \\rho)$ (USAM, O2)", fontsize=5.5,
            color=plotting.METHOD_COLORS["usam"])
    ax.text(eta[0], 2 * s["target"] * 0.78, "$\\lambda_{edge}(\\eta, \\rho, \\|g_T\\|)$ (SAM, O3)", fontsize=5.5,
            color=plotting.METHOD_COLORS["sam"], va="top")
    plotting.panel_label(ax, "c", f"$f = \\frac{{1}}{{2}}(uv - 1)^2$ from $(u_0, v_0)$ = ({u0:g}, {v0:g}), "
                                  f"$\\rho$ = {s['rho']:g}; × diverged")
    handles = [plotting.matplotlib_handle(name, markerfacecolor="none") for name in BUILTIN_METHODS]
    fig.legend(handles=handles, loc="outside upper center", ncols=5, columnspacing=1.0)
    return plotting.save(fig, out_dir, "sam_edge")


if __name__ == "__main__":
    from samtheory.cli import run_figure_script

    raise SystemExit(run_figure_script(__file__))
