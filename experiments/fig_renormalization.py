"""Figure 4: the renormalization factor γ_t = ‖g(x_t)‖/‖g(y_t)‖ and the ratio ‖g(y_t)‖/‖g(x_t)‖ along trajectories.

On a quadratic and on L2-regularized logistic regression, with the bounds of THEORY.md O4 from
:func:`samtheory.stability.renormalization_bounds`: γ ∈ [1/(1 + ρβ), 1/(1 + ρμ)] for ``susam`` and
γ ∈ [1/(1 + ρβ/‖g(x)‖), 1/(1 + ρμ/‖g(x)‖)] for ``ssam``, with [μ, β] the range of the Hessian's spectrum; the
ratio ‖g(y)‖/‖g(x)‖ of ``usam``/``sam`` lies between the reciprocals. O4 states them for PSD quadratics; the
same bounds hold for any μ-strongly convex β-smooth f (‖g(y)‖ ≤ ‖g(x)‖ + β‖y − x‖ above, strong monotonicity
⟨g(y) − g(x), y − x⟩ ≥ μ‖y − x‖² along y − x ∝ g(x) below), which the logistic panels check with μ = ℓ2.
"""

import numpy as np

from samtheory import Quadratic, simulate
from samtheory.datasets import make_logistic_regression
from samtheory.stability import renormalization_bounds

ORDER = 4
DESCRIPTION = "renormalization factor γ_t and ‖g(y)‖/‖g(x)‖ along trajectories (quadratic, logistic) with O4 bounds"
FULL = {
    "quadratic": {"eigenvalues": [1.0, 10.0, 100.0], "eta": 0.003, "rho": 0.05, "steps": 3000},
    "logistic": {"n_samples": 200, "dim": 10, "l2": 0.01, "eta_times_beta": 1.0, "rho": 2.0, "steps": 600},
    "seed": 0,
    # Below this fraction of ‖g(x_0)‖ the gradients are rounding noise and γ is meaningless.
    "noise_floor": 1e-10,
}
QUICK = {**FULL, "quadratic": {**FULL["quadratic"], "steps": 300}, "logistic": {**FULL["logistic"], "steps": 100}}
FIGSIZE = (3.4, 3.5)
METHODS_SHOWN = ("sam", "usam", "ssam", "susam")


def problems(params):
    q, lg = params["quadratic"], params["logistic"]
    logistic = make_logistic_regression(lg["n_samples"], lg["dim"], l2=lg["l2"], seed=params["seed"])
    return {"quadratic": (Quadratic(q["eigenvalues"]), q["eta"], q["rho"], q["steps"]),
            "logistic": (logistic, lg["eta_times_beta"] / logistic.beta, lg["rho"], lg["steps"])}


def compute(params):
    out = {}
    for key, (problem, eta, rho, steps) in problems(params).items():
        out[f"{key}_beta"], out[f"{key}_mu"] = problem.beta, problem.mu
        out[f"{key}_eta"], out[f"{key}_rho"] = eta, rho
        for name in METHODS_SHOWN:
            result = simulate(problem, name, eta, rho, steps=steps, seed=params["seed"], record_every=1)
            history = result.history
            out[f"{key}_steps"] = history.steps[:-1]  # the last record describes no update
            out[f"{key}_{name}_gamma"] = history.gamma[:-1]
            out[f"{key}_{name}_ratio"] = history.ascent_ratio[:-1]
            out[f"{key}_{name}_grad_norm"] = history.grad_norm[:-1]
            out[f"{key}_{name}_status"] = result.status
    return out


def _meaningful(data, key, name, floor):
    grad_norm = data[f"{key}_{name}_grad_norm"]
    keep = grad_norm > floor * grad_norm[0]
    return data[f"{key}_steps"][keep] + 1, keep  # steps from 1 on the log axis


def plot(data, out_dir):
    from matplotlib.lines import Line2D
    from samtheory import plotting

    floor = data.params["noise_floor"]
    fig, axes = plotting.figure(2, 2, height=FIGSIZE[1], sharex="col")
    titles = {"quadratic": "quadratic, $\\lambda$ = {1, 10, 100}", "logistic": "logistic regression, $\\ell_2$ = 0.01"}
    for col, key in enumerate(("quadratic", "logistic")):
        beta, rho, eta = float(data[f"{key}_beta"]), float(data[f"{key}_rho"]), float(data[f"{key}_eta"])
        spectrum = [float(data[f"{key}_mu"]), beta]
        top, bottom = axes[0, col], axes[1, col]
        top.set_title(f"{titles[key]}\n$\\eta$ = {eta:.3g}, $\\rho$ = {rho:g}, $\\beta$ = {beta:.3g}", fontsize=6)
        for name, ax, field in (("ssam", top, "gamma"), ("susam", top, "gamma"), ("sam", bottom, "ratio"),
                                ("usam", bottom, "ratio")):
            t, keep = _meaningful(data, key, name, floor)
            color = plotting.METHOD_COLORS[name]
            grad_norm = data[f"{key}_{name}_grad_norm"][keep]
            # Bounds (thin solid, the method's colour): O4 on γ; their reciprocals on ‖g(y)‖/‖g(x)‖.
            renormalized = {"sam": "ssam", "usam": "susam"}.get(name, name)
            bounds = renormalization_bounds(renormalized, spectrum, rho, grad_norm)
            for bound in (bounds.lower, bounds.upper):
                bound = np.broadcast_to(bound, t.shape)
                ax.plot(t, bound if field == "gamma" else 1 / bound, color=color, lw=0.6, alpha=0.8)
            ax.plot(t, data[f"{key}_{name}_{field}"][keep], **plotting.method_style(name))
        for ax in (top, bottom):
            ax.axhline(1.0, color="0.6", lw=0.6, zorder=0)
            ax.set_xscale("log")
            ax.set_yscale("log")
        plotting.plain_log_ticks(bottom.yaxis, [1, 2, 4, 8, 16, 32])
        bottom.set_xlabel("step $t$")
    axes[0, 0].set_ylabel(r"$\gamma_t = \|g(x_t)\| \,/\, \|g(y_t)\|$")
    axes[1, 0].set_ylabel(r"$\|g(y_t)\| \,/\, \|g(x_t)\|$")
    handles = [Line2D([], [], **plotting.method_style(name)) for name in METHODS_SHOWN]
    handles.append(Line2D([], [], color="0.3", lw=0.6, label="bound (O4)"))
    fig.legend(handles=handles, loc="outside upper center", ncols=5, columnspacing=0.8, handlelength=2.0)
    return plotting.save(fig, out_dir, "renormalization")


if __name__ == "__main__":
    from samtheory.cli import run_figure_script

    raise SystemExit(run_figure_script(__file__))
