"""Figure 6: SAM and StableSAM near a strict saddle (THEORY.md O11).

``Saddle``: f(x, y) = ½x² − ½y² + ¼y⁴, a strict saddle at the origin (Hessian diag(1, −1)) and minima at
(0, ±1). Starting near the stable direction (|y_0| ~ 10⁻³), GD escapes along y. The paper's v2 motivation is
that near negative curvature ‖g(y)‖ < ‖g(x)‖, so γ > 1 and StableSAM enlarges the step; the figure measures
which methods escape and how fast.
"""

import numpy as np

from samtheory import BUILTIN_METHODS, Saddle, simulate

ORDER = 6
DESCRIPTION = "trajectories near a strict saddle: which of SAM/StableSAM escape and how fast (O11)"
FULL = {"a": 1.0, "b": 1.0, "c": 1.0, "eta": 0.1, "rho_trace": 0.1, "trace_steps": 400, "x0": [1.0, 1e-3],
        "rho_min": 1e-3, "rho_max": 3.0, "n_rho": 28, "n_seeds": 64, "steps": 3000, "record_every": 2}
QUICK = {**FULL, "trace_steps": 200, "n_rho": 6, "n_seeds": 8, "steps": 600}
FIGSIZE = (3.4, 4.9)


def escape_threshold(problem):
    """Escaped: f(x_t) below half of the minimum value f* (the saddle has f = 0)."""
    return 0.5 * problem.f_star


def compute(params):
    problem = Saddle(params["a"], params["b"], params["c"])
    out = {}
    # Trajectories from one starting point, every iterate and γ_t recorded by the engine.
    for name in BUILTIN_METHODS:
        run = simulate(problem, name, params["eta"], params["rho_trace"], steps=params["trace_steps"],
                       x0=params["x0"], record_every=1, record_iterates=True)
        # γ_t describes the update from x_t: the last record (step T) has no update.
        out[f"trace_{name}"], out[f"gamma_{name}"] = run.history.x, run.history.gamma[:-1]
    # Escape statistics over ρ × random starting points near the stable direction.
    rho = np.geomspace(params["rho_min"], params["rho_max"], params["n_rho"])
    seeds = np.arange(params["n_seeds"])
    threshold = escape_threshold(problem)
    out["rho"] = rho
    for name in BUILTIN_METHODS:
        result = simulate(problem, name, params["eta"], rho[:, None], seed=seeds[None, :], steps=params["steps"],
                          record_every=params["record_every"])
        below = result.history.loss < threshold            # (records, n_rho, n_seeds)
        escaped = below.any(axis=0)
        first = np.where(escaped, result.history.steps[np.argmax(below, axis=0)], -1)
        out[f"escape_step_{name}"] = first
        out[f"final_distance_to_saddle_{name}"] = np.linalg.norm(result.x, axis=-1)
    return out


def plot(data, out_dir):
    from matplotlib.ticker import NullLocator

    from samtheory import plotting

    p = data.params
    problem = Saddle(p["a"], p["b"], p["c"])
    fig = plotting.blank_figure(height=FIGSIZE[1])
    grid = fig.add_gridspec(3, 2, height_ratios=[1.25, 1, 1])
    ax_plane = fig.add_subplot(grid[0, :])
    ax_y = fig.add_subplot(grid[1, 0])
    ax_gamma = fig.add_subplot(grid[1, 1], sharex=ax_y)
    ax_frac = fig.add_subplot(grid[2, 0])
    ax_time = fig.add_subplot(grid[2, 1], sharex=ax_frac)

    # (a) trajectories in the plane, |y| on a symmetric log axis so the approach to the saddle shows.
    linthresh = 1e-5
    xs = np.linspace(-1.1, 1.1, 200)
    ys = np.concatenate([-np.geomspace(1.3, linthresh, 120), [0.0], np.geomspace(linthresh, 1.3, 120)])
    X, Y = np.meshgrid(xs, ys)
    F = problem.loss(np.stack([X.ravel(), Y.ravel()], axis=1)).reshape(X.shape)
    ax_plane.contour(X, Y, F, levels=[-0.2, -0.1, 0.1, 0.2, 0.4], colors="0.8", linewidths=0.4)
    ax_plane.contour(X, Y, F, levels=[0.0], colors="0.55", linewidths=0.6, linestyles="--")
    for name in BUILTIN_METHODS:
        trace = data[f"trace_{name}"]
        ax_plane.plot(trace[:, 0], trace[:, 1], lw=0.8, **{**plotting.method_style(name), "label": None})
        ax_plane.plot(trace[-1, 0], trace[-1, 1], marker=plotting.METHOD_MARKERS[name], ls="none",
                      color=plotting.METHOD_COLORS[name], markersize=4, markerfacecolor="none")
    ax_plane.plot([0], [0], marker="+", color="k", markersize=7, ls="none")
    ax_plane.annotate("saddle", (0, 0), xytext=(4, 3), textcoords="offset points", fontsize=6)
    ax_plane.plot([p["x0"][0]], [p["x0"][1]], marker="*", color="k", markersize=5, ls="none")
    ax_plane.set_yscale("symlog", linthresh=linthresh, linscale=0.6)
    ax_plane.set_ylim(-1.3, 1.3)
    ax_plane.set_yticks([-1, -1e-3, 0, 1e-3, 1])
    ax_plane.yaxis.set_minor_locator(NullLocator())
    ax_plane.set_xlabel("$x$ (positive curvature $a$)")
    ax_plane.set_ylabel("$y$ (negative curvature $-b$)")
    plotting.panel_label(ax_plane, "a", f"$f = \\frac{{1}}{{2}}x^2 - \\frac{{1}}{{2}}y^2 + \\frac{{1}}{{4}}y^4$: "
                                        f"{p['trace_steps']} steps, $\\eta$ = {p['eta']:g}, "
                                        f"$\\rho$ = {p['rho_trace']:g}"
                                        " (○ end)")

    # (b) |y_t| and (c) γ_t along the same trajectories.
    for name in BUILTIN_METHODS:
        trace = data[f"trace_{name}"]
        ax_y.plot(np.arange(trace.shape[0]), np.abs(trace[:, 1]), **plotting.method_style(name))
        if name in ("ssam", "susam"):
            gamma = data[f"gamma_{name}"]
            ax_gamma.plot(np.arange(gamma.size), gamma, **plotting.method_style(name))
    ax_y.set_yscale("log")
    ax_y.set_ylim(1e-24, 10)
    ax_y.set_yticks([1e-20, 1e-15, 1e-10, 1e-5, 1])
    ax_y.set_xlabel("step $t$")
    ax_y.set_ylabel("$|y_t|$")
    plotting.panel_label(ax_y, "b", "escape coordinate")
    ax_gamma.axhline(1.0, color="0.6", lw=0.6, zorder=0)
    ax_gamma.set_yscale("log")
    ax_gamma.set_ylim(1e-18, 10)
    ax_gamma.set_yticks([1e-15, 1e-10, 1e-5, 1])
    ax_gamma.set_xlabel("step $t$")
    ax_gamma.set_ylabel("$\\gamma_t$")
    plotting.panel_label(ax_gamma, "c", "StableSAM's $\\gamma_t$")

    # (d) fraction of starting points that escape and (e) their median escape step, against ρ.
    rho = data["rho"]
    for name in BUILTIN_METHODS:
        steps = data[f"escape_step_{name}"]
        escaped = steps >= 0
        style = plotting.method_style(name, marker=True)
        ax_frac.plot(rho, escaped.mean(axis=1), **style, markerfacecolor="none", markersize=3)
        median = np.array([np.median(row[row >= 0]) if (row >= 0).any() else np.nan for row in steps])
        ax_time.plot(rho, median, **style, markerfacecolor="none", markersize=3)
    ax_frac.set_xscale("log")
    ax_frac.set_ylim(-0.05, 1.05)
    ax_frac.set_xlabel("radius $\\rho$")
    ax_frac.set_ylabel("fraction escaped")
    plotting.panel_label(ax_frac, "d", f"{data['escape_step_gd'].shape[1]} starts, {p['steps']} steps")
    ax_time.set_xscale("log")
    ax_time.set_yscale("log")
    ax_time.set_xlabel("radius $\\rho$")
    ax_time.set_ylabel("median escape step")
    plotting.plain_log_ticks(ax_time.yaxis, [50, 100, 200, 500, 1000])
    plotting.panel_label(ax_time, "e", "of those that escape")
    handles = [plotting.matplotlib_handle(name, markerfacecolor="none") for name in BUILTIN_METHODS]
    fig.legend(handles=handles, loc="outside upper center", ncols=5, columnspacing=1.0)
    return plotting.save(fig, out_dir, "saddle")


if __name__ == "__main__":
    from samtheory.cli import run_figure_script

    raise SystemExit(run_figure_script(__file__))
