"""Figure 9: neural validation — final training loss, test accuracy and sharpness against the learning rate.

Every method trains a small MLP on MNIST-1D (generated locally by ``mnist1d``) with plain SGD as the base
optimizer, through :func:`run_neural_validation` of ``experiments/neural.py`` (the ``samtheory neural`` command).
The paper's claim on networks (THEORY.md O5): SAM/USAM training becomes unstable at learning rates where
StableSAM does not, and StableSAM matches SAM where both are stable. Diverged runs are marked; the top Hessian
eigenvalue at the end is set against GD's 2/η (O12).
"""

from pathlib import Path

import numpy as np

from samtheory import BUILTIN_METHODS

ORDER = 9
DESCRIPTION = "MLP on MNIST-1D: final training loss, test accuracy and λ_max vs learning rate per method (O5, O12)"
FULL = {"dataset": "mnist1d", "models": ["mlp"], "learning_rates": [0.3, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0],
        "seeds": [0, 1], "rho": 0.05, "epochs": 8, "batch_size": 128, "n_samples": 4000, "hessian_samples": 500}
QUICK = {**FULL, "learning_rates": [2.0, 8.0], "seeds": [0], "epochs": 1, "n_samples": 1000, "hessian_samples": 100}
FIGSIZE = (3.4, 4.8)
FIELDS = ("final_train_loss", "test_accuracy", "top_hessian_eigenvalue", "diverged_at")


def compute(params):
    from samtheory.repository import load_experiment

    run_neural_validation = load_experiment("neural", Path(__file__).resolve().parents[1]).run_neural_validation

    import sys

    # One torch thread: torch splits its reductions over its threads, so the trained networks (and the figure)
    # would follow the machine's core count.
    results = run_neural_validation(**params, methods=tuple(BUILTIN_METHODS), device="cpu", threads=1,
                                    progress=sys.stderr.isatty())
    lrs, seeds = params["learning_rates"], params["seeds"]
    out = {"lr": np.asarray(lrs, dtype=float), "n_train": results["config"]["n_train"],
           "n_test": results["config"]["n_test"]}
    for name in BUILTIN_METHODS:
        for field in FIELDS:
            out[f"{name}_{field}"] = np.full((len(lrs), len(seeds)), np.nan)
        out[f"{name}_diverged"] = np.zeros((len(lrs), len(seeds)), dtype=bool)
    for run in results["runs"]:
        index = (lrs.index(run["lr"]), seeds.index(run["seed"]))
        for field in FIELDS:
            out[f"{run['method']}_{field}"][index] = np.nan if run[field] is None else run[field]
        out[f"{run['method']}_diverged"][index] = run["diverged"]
    return out


def plot(data, out_dir):
    from samtheory import plotting

    p = data.params
    lr = data["lr"]
    fig, axes = plotting.figure(3, 1, height=FIGSIZE[1], sharex=True)
    for k, name in enumerate(BUILTIN_METHODS):
        diverged = data[f"{name}_diverged"].any(axis=1)
        style = {**plotting.method_style(name, marker=True), "markerfacecolor": "none", "markersize": 3.5,
                 "label": None, "lw": 0.8}
        offset = 1 + 0.025 * (k - 2)  # spread the markers of the five methods a little along the lr axis
        for row, (field, reduce) in enumerate((("final_train_loss", np.nanmedian), ("test_accuracy", np.nanmean),
                                               ("top_hessian_eigenvalue", np.nanmedian))):
            values = data[f"{name}_{field}"].copy()
            values[data[f"{name}_diverged"]] = np.nan
            with np.errstate(all="ignore"):
                summary = np.array([reduce(v) if np.isfinite(v).any() else np.nan for v in values])
            axes[row].plot(lr * offset, summary, **style)
        for ax in axes:
            transform = ax.get_xaxis_transform()
            ax.plot(lr[diverged] * offset, np.full(diverged.sum(), 0.96 - 0.045 * k), marker="x", ls="none",
                    color=plotting.METHOD_COLORS[name], markersize=3.5, transform=transform)
    axes[0].axhline(np.log(10), color="0.6", lw=0.6, ls=":", zorder=0)  # chance level: uniform over 10 classes
    axes[0].text(lr[0], np.log(10), "ln 10 (chance)", fontsize=5.5, color="0.4", va="bottom")
    axes[0].set_ylabel("final training loss" + (" (median)" if len(p["seeds"]) > 1 else ""))
    axes[1].set_ylabel("test accuracy")
    axes[1].set_ylim(0, 1)
    dense = np.geomspace(lr[0], lr[-1], 100)
    axes[2].plot(dense, 2 / dense, color="0.4", lw=0.8, ls="--", label="$2/\\eta$")
    axes[2].set_yscale("log")
    plotting.plain_log_ticks(axes[2].yaxis, [0.1, 0.2, 0.5, 1, 2, 5, 10, 20])
    axes[2].set_ylabel("final $\\lambda_{\\max}$ of the loss")
    axes[2].legend(loc="lower left")
    axes[2].set_xscale("log")
    axes[2].set_xlabel("learning rate $\\eta$ (SGD base, no momentum)")
    plotting.plain_log_ticks(axes[2].xaxis, [v for v in (0.1, 0.3, 1, 3, 10) if lr[0] <= v <= lr[-1] * 1.01])
    plotting.panel_label(axes[0], "a", f"MLP, MNIST-1D, {p['epochs']} epochs, "
                                       f"$\\rho$ = {p['rho']:g}; × diverged"
                                       + (" (any seed)" if len(p["seeds"]) > 1 else ""))
    over = lambda how: f" ({how} over {len(p['seeds'])} seeds)" if len(p["seeds"]) > 1 else ""  # noqa: E731
    plotting.panel_label(axes[1], "b", "test accuracy" + over("mean"))
    plotting.panel_label(axes[2], "c", "top Hessian eigenvalue at the end" + over("median"))
    handles = [plotting.matplotlib_handle(name, markerfacecolor="none") for name in BUILTIN_METHODS]
    fig.legend(handles=handles, loc="outside upper center", ncols=5, columnspacing=1.0)
    return plotting.save(fig, out_dir, "neural")


if __name__ == "__main__":
    from samtheory.cli import run_figure_script

    raise SystemExit(run_figure_script(__file__))
