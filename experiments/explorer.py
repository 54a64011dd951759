"""samtheory explorer: watch GD, SAM, USAM and StableSAM move on a quadratic (a marimo notebook app).

    pip install -e ".[explorer]" && marimo run experiments/explorer.py     # the app, in the browser
    python experiments/explorer.py                                        # headless: prints the explanation

The computations and figures live in :mod:`samtheory.explorer` (tested there); this file only wires the controls.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="full", app_title="samtheory explorer", css_file="explorer_style.css")


@app.cell
def _():
    import marimo as mo

    import samtheory as st
    from samtheory import explorer as core
    return core, mo, st


@app.cell
def _(mo):
    mo.md(r"""
    # samtheory explorer: why SAM diverges where StableSAM does not
    GD, SAM, unnormalized SAM (USAM) and StableSAM (SSAM on SAM, SUSAM on USAM) on f(x) = ½ Σᵢ λᵢ xᵢ².
    Move η and ρ: the table states the closed forms of docs/theory.md (O1–O4) at the current numbers beside what the
    engine measured.
    """)
    return


@app.cell
def _(core, mo):
    method_options = {core.LABELS[name]: name for name in core.METHOD_NAMES}
    methods = mo.ui.multiselect(options=method_options, value=[core.LABELS[m] for m in core.DEFAULT_METHODS],
                                label="methods")
    eta = mo.ui.slider(steps=core.ETA_VALUES, value=0.15, label="learning rate η", show_value=True)
    rho = mo.ui.slider(steps=core.RHO_VALUES, value=0.1, label="radius ρ", show_value=True)
    steps = mo.ui.slider(20, 1000, step=20, value=300, label="steps", show_value=True)
    lam_max = mo.ui.slider(steps=core.LAM_MAX_VALUES, value=10.0, label="λ_max", show_value=True)
    condition_number = mo.ui.slider(steps=core.CONDITION_VALUES, value=10.0, label="condition number κ",
                                    show_value=True)
    dim = mo.ui.slider(2, 50, value=2, label="dimension d", show_value=True)
    eigenvalues = mo.ui.text(placeholder="e.g. 100, 10, 1", label="or eigenvalues")
    x0_u1 = mo.ui.slider(-3.0, 3.0, step=0.1, value=1.0, label="x₀ along u₁", show_value=True)
    x0_u2 = mo.ui.slider(-3.0, 3.0, step=0.1, value=2.0, label="x₀ along u₂", show_value=True)
    x0_rest = mo.ui.slider(-3.0, 3.0, step=0.1, value=1.0, label="x₀ along u₃ … u_d", show_value=True)
    adaptive = mo.ui.checkbox(label="adaptive ascent (ASAM)")
    truncate = mo.ui.checkbox(label="truncate γ ← min(1, γ)")
    return (adaptive, condition_number, dim, eigenvalues, eta, lam_max, methods, rho, steps, truncate, x0_rest,
            x0_u1, x0_u2)


@app.cell
def _(adaptive, condition_number, dim, eigenvalues, eta, lam_max, methods, mo, rho, steps, truncate, x0_rest,
      x0_u1, x0_u2):
    def _group(title, items):
        return mo.vstack([mo.md(f"**{title}**"), *items], gap=0.4)

    mo.hstack(
        [
            _group("Method and hyper-parameters", [methods, eta, rho, steps]),
            _group("Quadratic (λ log-spaced from λ_max/κ to λ_max)", [lam_max, condition_number, dim, eigenvalues]),
            _group("Initial point and options", [x0_u1, x0_u2, x0_rest, adaptive, truncate]),
        ],
        widths="equal", gap=2.0, align="start",
    )
    return


@app.cell
def _(condition_number, core, dim, eigenvalues, lam_max, mo, st, x0_rest, x0_u1, x0_u2):
    try:
        problem = st.Quadratic(core.spectrum(lam_max.value, condition_number.value, dim.value, eigenvalues.value))
        x0 = core.initial_point(problem.dim, x0_u1.value, x0_u2.value, x0_rest.value)
        problem_error = None
    except ValueError as error:
        problem, x0, problem_error = None, None, str(error)
    mo.stop(problem_error is not None, mo.callout(mo.md(f"**Invalid input:** {problem_error}"), kind="danger"))
    return problem, x0


@app.cell
def _(adaptive, core, eta, methods, problem, rho, steps, truncate, x0):
    chosen = core.ordered_methods(methods.value)
    trajectories = core.run_all(problem, chosen, eta.value, rho.value, steps=steps.value, x0=x0,
                                adaptive=adaptive.value, truncate=truncate.value)
    return chosen, trajectories


@app.cell
def _(adaptive, chosen, core, eta, mo, problem, rho, steps, trajectories, truncate, x0):
    # One cell for all views: a slider move then updates the page once (fewer repaints in the browser).
    explanation_text = core.explanation(problem, trajectories, adaptive=adaptive.value)
    lam = problem.eigenvalues
    mo.vstack([
        mo.callout(mo.md(explanation_text), kind="info"),
        mo.md(f"**Trajectories on span(u₁, u₂)** over the contours of f: ● start, ★ end, + minimum. The sharpest "
              f"direction u₁ (λ₁ = {lam[0]:.3g}) is vertical, u₂ (λ₂ = {lam[1]:.3g}) across, so SAM's 2-cycle ±a·u₁ "
              "bounces up and down."),
        mo.image(core.trajectory_png(problem, trajectories), alt="trajectories", style={"max-width": "100%"}),
        mo.md("**Loss and renormalization factor γ_t = ‖g(x_t)‖/‖g(y_t)‖ against steps**"),
        mo.image(core.curves_png(problem, trajectories, steps=steps.value), alt="loss and gamma",
                 style={"max-width": "100%"}),
        mo.md(f"**Measured regime maps**: each cell of the (η, ρ) grid is one engine run ({steps.value} steps from "
              "the same x₀): *converged* when ‖g(x_T)‖ ≤ 10⁻⁶‖g(x₀)‖, *diverged* when ‖g‖ blew up, *bounded* "
              "otherwise (SAM's 2-cycle, or too slow for these steps at small η). Lines: closed forms; ★: the "
              f"current (η, ρ). Units: 2/λ_max = {2 / lam[0]:.3g} for η, 1/λ_max = {1 / lam[0]:.3g} for ρ."),
        mo.image(core.regime_png(problem, chosen, eta.value, rho.value, steps=steps.value, x0=x0,
                                 adaptive=adaptive.value, truncate=truncate.value),
                 alt="regime maps", style={"max-width": "100%"}),
    ], gap=1.0)
    return (explanation_text,)


@app.cell
def _(explanation_text, mo):
    if mo.app_meta().mode == "script":
        print(explanation_text)
    return


if __name__ == "__main__":
    app.run()
