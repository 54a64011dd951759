"""samtheory explorer: watch GD, SAM, USAM and StableSAM move on a quadratic (a marimo notebook app).

    pip install -e ".[explorer]" && marimo run experiments/explorer.py     # the app, in the browser
    python experiments/explorer.py                                        # headless: prints the explanation

The computations and figures live in ``experiments/explorer_core.py``; this file only wires the controls.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="full", app_title="samtheory explorer")


@app.cell
def _():
    import sys

    import marimo as mo

    if str(mo.notebook_dir()) not in sys.path:
        sys.path.insert(0, str(mo.notebook_dir()))
    import samtheory as st
    import explorer_core as core
    return core, mo, st


@app.cell
def _(mo):
    mo.md(
        """
        # samtheory explorer: why SAM diverges where StableSAM does not

        Gradient descent (GD), SAM, unnormalized SAM (USAM) and StableSAM (SSAM on SAM, SUSAM on USAM) on the
        quadratic f(x) = ½ Σᵢ λᵢ xᵢ². Move the learning rate η and the radius ρ and watch the trajectories, the
        loss, the renormalization factor γ and where the current point sits in each method's measured regime map.
        The closed forms are those of THEORY.md (O1–O4), evaluated at the current numbers.
        """
    )
    return


@app.cell
def _(core, mo):
    method_options = {core.LONG_LABELS[name]: name for name in core.METHOD_NAMES}
    methods = mo.ui.multiselect(options=method_options, value=[core.LONG_LABELS[m] for m in core.DEFAULT_METHODS],
                                label="methods")
    eta = mo.ui.slider(steps=core.ETA_VALUES, value=0.15, label="learning rate η", show_value=True, full_width=True)
    rho = mo.ui.slider(steps=core.RHO_VALUES, value=0.1, label="radius ρ", show_value=True, full_width=True)
    steps = mo.ui.slider(20, 1000, step=20, value=200, label="steps", show_value=True, full_width=True)
    lam_max = mo.ui.slider(steps=core.LAM_MAX_VALUES, value=10.0, label="λ_max", show_value=True, full_width=True)
    condition_number = mo.ui.slider(steps=core.CONDITION_VALUES, value=10.0, label="condition number κ = λ_max/λ_min",
                                    show_value=True, full_width=True)
    dim = mo.ui.slider(2, 50, value=2, label="dimension d", show_value=True, full_width=True)
    eigenvalues = mo.ui.text(placeholder="e.g. 100, 10, 1", label="or eigenvalues", full_width=True)
    x0_u1 = mo.ui.slider(-3.0, 3.0, step=0.1, value=1.0, label="x₀ along u₁", show_value=True, full_width=True)
    x0_u2 = mo.ui.slider(-3.0, 3.0, step=0.1, value=2.0, label="x₀ along u₂", show_value=True, full_width=True)
    x0_rest = mo.ui.slider(-3.0, 3.0, step=0.1, value=1.0, label="x₀ along u₃ … u_d", show_value=True,
                           full_width=True)
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
            _group("Initial point and options", [x0_u1, x0_u2, x0_rest, mo.hstack([adaptive, truncate], justify="start")]),
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
def _(adaptive, core, mo, problem, trajectories):
    explanation_text = core.explanation(problem, trajectories, adaptive=adaptive.value)
    mo.callout(mo.md(explanation_text), kind="info")
    return (explanation_text,)


@app.cell
def _(core, mo, problem, trajectories):
    mo.vstack([
        mo.md("### Trajectories on span(u₁, u₂)\nContours of f; ● start, ★ end, + minimum. Sharpest direction u₁ "
              "vertical, so SAM's 2-cycle ±a·u₁ bounces up and down."),
        mo.image(core.trajectory_png(problem, trajectories), alt="trajectories", style={"max-width": "100%"}),
    ])
    return


@app.cell
def _(adaptive, chosen, core, eta, mo, problem, rho, steps, truncate, x0):
    mo.vstack([
        mo.md(f"### Regime maps ({steps.value} steps from the same x₀)\nEach cell of the (η, ρ) grid is one run "
              "of the engine; the lines are the closed forms, ★ is the current (η, ρ)."),
        mo.image(core.regime_png(problem, chosen, eta.value, rho.value, steps=steps.value, x0=x0,
                                 adaptive=adaptive.value, truncate=truncate.value),
                 alt="regime maps", style={"max-width": "100%"}),
    ])
    return


@app.cell
def _(core, mo, problem, steps, trajectories):
    mo.vstack([
        mo.md("### Loss and renormalization factor against steps"),
        mo.image(core.curves_png(problem, trajectories, steps=steps.value), alt="loss and gamma",
                 style={"max-width": "100%"}),
    ])
    return


@app.cell
def _(explanation_text, mo):
    if mo.app_meta().mode == "script":
        print(explanation_text)
    return


if __name__ == "__main__":
    app.run()
