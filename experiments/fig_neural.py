"""Figure 9: neural validation — a 1-D CNN on MNIST-1D: accuracy against η, and λ_max against each method's edge.

Every method trains the CNN of ``experiments/neural.py`` (three convolutions, global max pooling) on MNIST-1D
(generated locally by ``mnist1d``) with the paper's base optimizer, SGD with momentum 0.9 and weight decay 5e-4,
at ρ = 0.05 and 0.1, through :func:`run_neural_validation` (the ``samtheory neural`` command). The paper's
claim on networks (docs/theory.md O5): StableSAM trains at learning rates where its base fails. O12: each
method's sharpness settles at its own edge with momentum (GD 2(1 + β)/η, USAM's λ*, SAM's λ_edge(‖g‖);
:func:`samtheory.theory.edge_sharpness`). Row 1: mean test accuracy (× a seed diverged or collapsed to
chance); row 2: late λ_max over the predicted edge (median over seeds; dashed: over the edge at step γ̄η, the
renormalized methods; stable runs only); row 3: λ_max during training (seed 0, at one learning rate) and the predicted edges.
"""

from pathlib import Path

import numpy as np

from samtheory import BUILTIN_METHODS

ORDER = 9
DESCRIPTION = ("CNN on MNIST-1D, SGD momentum 0.9: test accuracy vs η and λ_max against each method's edge "
               "(O5, O12)")
FULL = {"dataset": "mnist1d", "models": ["cnn"], "learning_rates": [0.03, 0.1, 0.2, 0.4], "seeds": [0, 1, 2],
        "rhos": [0.05, 0.1], "epochs": 6, "batch_size": 128, "n_samples": 3000, "momentum": 0.9,
        "weight_decay": 5e-4, "channels": 32, "sharpness_every": 18, "sharpness_samples": 128,
        "hessian_samples": 128, "spectrum_seeds": 1, "hutchinson_probes": 16, "slq_steps": 30}
QUICK = {**FULL, "learning_rates": [0.1, 3.0], "seeds": [0], "rhos": [0.05], "epochs": 1, "n_samples": 600,
         "channels": 8, "sharpness_every": 2, "sharpness_samples": 32, "hessian_samples": 32, "hutchinson_probes": 4,
         "slq_steps": 8}
FIGSIZE = (7.0, 6.0)
#: Row 3 shows the learning rate of the grid nearest to this one.
TRAJECTORY_LR = 0.1
SCALARS = ("test_accuracy", "edge_ratio", "edge_ratio_renormalized", "top_hessian_eigenvalue", "hessian_trace",
           "gamma_mean")
TRAJECTORIES = ("lambda_max", "edge", "edge_renormalized")


def compute(params):
    from samtheory.repository import load_experiment

    run_neural_validation = load_experiment("neural", Path(__file__).resolve().parents[1]).run_neural_validation

    import sys

    # One torch thread: torch splits its reductions over its threads, so the trained networks (and the figure)
    # would follow the machine's core count.
    results = run_neural_validation(**params, methods=tuple(BUILTIN_METHODS), device="cpu", threads=1,
                                    progress=sys.stderr.isatty())
    lrs, seeds, rhos = params["learning_rates"], params["seeds"], params["rhos"]
    shape = (len(rhos), len(lrs), len(seeds))
    measurements = max(len(r["sharpness"]["step"]) for r in results["runs"])
    density = params["slq_steps"]
    out = {"lr": np.asarray(lrs, dtype=float), "rho": np.asarray(rhos, dtype=float),
           "n_train": results["config"]["n_train"], "n_test": results["config"]["n_test"],
           "trajectory_step": np.full(measurements, np.nan)}
    for name in BUILTIN_METHODS:
        for field in SCALARS:
            out[f"{name}_{field}"] = np.full(shape, np.nan)
        for flag in ("diverged", "collapsed"):
            out[f"{name}_{flag}"] = np.zeros(shape, dtype=bool)
        for field in TRAJECTORIES:
            out[f"{name}_trajectory_{field}"] = np.full((*shape, measurements), np.nan)
        for field in ("nodes", "weights"):
            out[f"{name}_density_{field}"] = np.full((*shape, density), np.nan)
    for run in results["runs"]:
        name = run["method"]
        # gd ignores ρ: its one run per (lr, seed) fills every ρ row
        rows = range(len(rhos)) if name == "gd" else [rhos.index(run["rho"])]
        for r in rows:
            index = (r, lrs.index(run["lr"]), seeds.index(run["seed"]))
            for field in SCALARS:
                out[f"{name}_{field}"][index] = np.nan if run[field] is None else run[field]
            for flag in ("diverged", "collapsed"):
                out[f"{name}_{flag}"][index] = run[flag]
            track = run["sharpness"]
            count = len(track["step"])
            out["trajectory_step"][:count] = track["step"]
            for field in TRAJECTORIES:
                out[f"{name}_trajectory_{field}"][index][:count] = [np.nan if v is None else v for v in track[field]]
            if run["spectral_density"] is not None:
                nodes, weights = run["spectral_density"]["nodes"], run["spectral_density"]["weights"]
                out[f"{name}_density_nodes"][index][:len(nodes)] = nodes
                out[f"{name}_density_weights"][index][:len(weights)] = weights
    return out


def _label(name: str) -> str:
    from samtheory import resolve_method

    spec = resolve_method(name)
    return f"{name} (paper: {spec.paper_name})" if spec.paper_name else f"{name} (SGD)"


def plot(data, out_dir):
    from samtheory import plotting

    p = data.params
    lr, rhos = data["lr"], data["rho"]
    steps = data["trajectory_step"]
    column = int(np.argmin(np.abs(np.log(lr / TRAJECTORY_LR))))
    fig, axes = plotting.figure(3, len(rhos), height=FIGSIZE[1], width=FIGSIZE[0], sharex="row")
    axes = np.asarray(axes).reshape(3, len(rhos))
    for r, rho in enumerate(rhos):
        top, middle, bottom = axes[0, r], axes[1, r], axes[2, r]
        for k, name in enumerate(BUILTIN_METHODS):
            style = {**plotting.method_style(name, marker=True), "markerfacecolor": "none", "markersize": 3.5,
                     "label": None, "lw": 0.8}
            offset = 1 + 0.02 * (k - 2)  # spread the five methods' markers a little along the lr axis
            unstable = data[f"{name}_diverged"][r] | data[f"{name}_collapsed"][r]
            accuracy = np.where(unstable, np.nan, data[f"{name}_test_accuracy"][r])
            with np.errstate(all="ignore"):
                mean = np.array([np.nanmean(v) if np.isfinite(v).any() else np.nan for v in accuracy])
            top.plot(lr * offset, mean, **style)
            failed = unstable.any(axis=1)
            top.plot(lr[failed] * offset, np.full(failed.sum(), 0.05 + 0.06 * k), marker="x", ls="none",
                     color=plotting.METHOD_COLORS[name], markersize=3.5)
            for field, dashed in (("edge_ratio", False), ("edge_ratio_renormalized", True)):
                if dashed and name not in ("ssam", "susam"):
                    continue
                values = np.where(unstable, np.nan, data[f"{name}_{field}"][r])  # a dead network has λ ≈ 0
                with np.errstate(all="ignore"):
                    median = np.array([np.nanmedian(v) if np.isfinite(v).any() else np.nan for v in values])
                middle.plot(lr * offset, median, **{**style, "linestyle": "--" if dashed else style["linestyle"],
                                                    "lw": 0.6 if dashed else 0.8})
            measured = data[f"{name}_trajectory_lambda_max"][r, column, 0]
            edge = data[f"{name}_trajectory_edge"][r, column, 0]
            colour = plotting.METHOD_COLORS[name]
            bottom.plot(steps, measured, color=colour, lw=0.9, marker=plotting.method_style(name, marker=True)["marker"],
                        markersize=2.5, markerfacecolor="none")
            bottom.plot(steps, edge, color=colour, lw=0.7, ls="--")
            if name in ("ssam", "susam"):
                bottom.plot(steps, data[f"{name}_trajectory_edge_renormalized"][r, column, 0], color=colour,
                            lw=0.6, ls=":")
        top.set_ylim(0, 1)
        top.axhline(0.1, color="0.6", lw=0.6, ls=":", zorder=0)  # chance: ten classes
        middle.axhline(1.0, color="0.4", lw=0.6, ls=":", zorder=0)
        for ax in (top, middle):
            ax.set_xscale("log")
            plotting.plain_log_ticks(ax.xaxis, [float(v) for v in lr])
            ax.set_xlabel("learning rate $\\eta$")
        middle.set_yscale("log")
        bottom.set_yscale("log")
        bottom.set_xlabel("step")
        over = f", {len(p['seeds'])} seeds" if len(p["seeds"]) > 1 else ""
        plotting.panel_label(top, f"a{r + 1}", f"$\\rho$ = {rho:g}: test accuracy (mean{over}); × failed")
        plotting.panel_label(middle, f"b{r + 1}", f"late $\\lambda_{{\\max}}$/edge (median, stable runs)")
        plotting.panel_label(bottom, f"c{r + 1}", f"$\\lambda_{{\\max}}$ and edge (--), $\\eta$ = {lr[column]:g}, "
                                                  f"seed {p['seeds'][0]}")
    axes[0, 0].set_ylabel("test accuracy")
    axes[1, 0].set_ylabel("$\\lambda_{\\max}$ / edge")
    axes[2, 0].set_ylabel("$\\lambda_{\\max}$ of the loss")
    handles = [plotting.matplotlib_handle(name, markerfacecolor="none", label=_label(name)) for name in BUILTIN_METHODS]
    fig.legend(handles=handles, loc="outside upper center", ncols=3, columnspacing=1.0,
               title=f"CNN, MNIST-1D ({int(data['n_train'])} train), SGD momentum {p['momentum']:g}, weight decay "
                     f"{p['weight_decay']:g}, {p['epochs']} epochs. × failed: a seed diverged or collapsed to chance;\n"
                     "dashed in (b): over the edge at step $\\gamma\\eta$ (ssam, susam); dotted in (c): that edge",
               title_fontsize=6)
    return plotting.save(fig, out_dir, "neural")


if __name__ == "__main__":
    from samtheory.cli import run_figure_script

    raise SystemExit(run_figure_script(__file__))
