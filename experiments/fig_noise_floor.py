"""Noise and the O(ρ²) floor (docs/theory.md O17): stationary variance and bias against η and ρ.

(a) USAM's stationary variance on ½λx² with Gaussian gradient noise, shared or independent draws in its two
gradients, against O17a. (b) E f against η under the three-point noise of O17b: SAM's floor λρ²/18, USAM's
none, and what SSAM and SUSAM do. (c) The stationary mean of x (the bias) against ρ at small η.
"""

import numpy as np

from samtheory import simulate
from samtheory.problems import NoisyQuadratic
from samtheory.theory import sam_noise_floor, sam_noise_loss, usam_noise_variance

ORDER = 13
DESCRIPTION = "stationary variance and bias under gradient noise: USAM vs O17a, SAM's floor lambda rho^2/18 (O17)"
FULL = {"lam": 1.0, "sigma": 1.0, "rhos_a": [0.5, 2.0], "etas": [0.01, 0.02, 0.05, 0.1, 0.2, 0.4],
        "rho_b": 0.5, "eta_c": 0.02, "rhos_c": [0.1, 0.25, 0.5, 1.0, 1.5, 2.0], "steps": 20_000, "burn_in": 2000,
        "seed": 0}
QUICK = {**FULL, "etas": [0.05, 0.2], "rhos_c": [0.5, 1.0], "steps": 600, "burn_in": 100}
FIGSIZE = (6.8, 2.5)
METHODS = ("sam", "usam", "ssam", "susam")
THREE_POINT = (np.array([2.0, -1.0]), np.array([1 / 3, 2 / 3]))


def _stationary(problem, method, eta, rho, params):
    """Time averages of x and f after burn-in, one row per configuration."""
    result = simulate(problem, method, eta, rho, steps=params["steps"], seed=params["seed"], x0=[0.0],
                      record_every=1, record_iterates=True)
    x = result.history.x[params["burn_in"]:, :, 0]
    return x.mean(axis=0), result.history.loss[params["burn_in"]:].mean(axis=0)


def compute(params):
    lam, sigma, out = params["lam"], params["sigma"], {}
    etas = np.array(params["etas"])
    eta_grid, rho_grid = np.meshgrid(etas, np.array(params["rhos_a"]), indexing="ij")
    for draws in ("shared", "independent"):
        problem = NoisyQuadratic([lam], sigma, draws=draws)
        mean, loss = _stationary(problem, "usam", eta_grid.ravel(), rho_grid.ravel(), params)
        out[f"variance_{draws}"] = (2 * loss / lam - mean**2).reshape(eta_grid.shape)
    three = NoisyQuadratic([lam], (sigma * THREE_POINT[0], THREE_POINT[1]))
    rhos = np.array(params["rhos_c"])
    for method in METHODS:
        out[f"loss_{method}"] = _stationary(three, method, etas, params["rho_b"], params)[1]
        out[f"mean_{method}"] = _stationary(three, method, params["eta_c"], rhos, params)[0]
    return out


def plot(data, out_dir):
    from samtheory import plotting

    params = data.params
    lam, sigma = params["lam"], params["sigma"]
    etas, rhos = np.array(params["etas"]), np.array(params["rhos_c"])
    fine = np.geomspace(etas[0], etas[-1], 100)
    fig, axes = plotting.figure(1, 3, height=FIGSIZE[1], width=FIGSIZE[0])
    ax = axes[0]
    for j, rho in enumerate(params["rhos_a"]):
        for draws, marker in (("shared", "o"), ("independent", "s")):
            ax.plot(fine, usam_noise_variance(fine, rho, lam, sigma**2, draws=draws), color=f"C{j}", lw=0.9,
                    ls="-" if draws == "shared" else "--")
            ax.plot(etas, data[f"variance_{draws}"][:, j], color=f"C{j}", marker=marker, lw=0, ms=3,
                    label=rf"$\rho$ = {rho:g}, {draws}")
    ax.set_xscale("log"), ax.set_yscale("log")
    ax.set_xlabel(r"$\eta$"), ax.set_ylabel("stationary Var x")
    ax.set_title("(a) USAM vs O17a (lines)", fontsize=6.5, loc="left")
    ax.legend(fontsize=5)
    ax = axes[1]
    rho = params["rho_b"]
    for method in METHODS:
        ax.plot(etas, data[f"loss_{method}"], **plotting.method_style(method, marker=True))
    ax.plot(fine, sam_noise_loss(fine, rho, lam, sigma), color=plotting.METHOD_COLORS["sam"], lw=0.6)
    ax.axhline(float(sam_noise_floor(lam, rho)), color="0.5", lw=0.8, ls=":", label=r"$\lambda\rho^2/18$")
    ax.set_xscale("log"), ax.set_yscale("log")
    ax.set_xlabel(r"$\eta$"), ax.set_ylabel(r"stationary $E f$")
    ax.set_title(rf"(b) three-point noise, $\rho$ = {rho:g}", fontsize=6.5, loc="left")
    ax.legend(fontsize=5)
    ax = axes[2]
    for method in METHODS:
        ax.plot(rhos, data[f"mean_{method}"], **plotting.method_style(method, marker=True))
    ax.plot(rhos, rhos / 3, color="0.5", lw=0.8, ls=":", label=r"$\rho/3$")
    ax.set_xlabel(r"$\rho$"), ax.set_ylabel(r"stationary $E x$ (bias)")
    ax.set_title(rf"(c) bias, $\eta$ = {params['eta_c']:g}", fontsize=6.5, loc="left")
    ax.legend(fontsize=5)
    return plotting.save(fig, out_dir, "noise_floor")


if __name__ == "__main__":
    from samtheory.cli import run_figure_script

    raise SystemExit(run_figure_script(__file__))
