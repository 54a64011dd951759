"""The interactive explorer (experiments/explorer.py): its computations, its figures, the script run, and the
served app driven in headless Chromium."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as hs

import samtheory as st

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"

from samtheory import explorer as core  # noqa: E402
from samtheory.explorer import _model  # noqa: E402
from samtheory.explorer import browser as browser_driver  # noqa: E402

LAM = np.array([10.0, 3.0, 1.0])
X0 = np.array([1.0, 2.0, 1.0])
# Float64 iterates of a linear map after ≤ 300 steps carry ≤ 300 · (a few ulps) of relative rounding: 1e-11.
ITERATE_RTOL = 1e-11


@pytest.fixture(scope="module")
def problem():
    return st.Quadratic(LAM)


# ----------------------------------------------------------------------------------------------- inputs

def test_spectrum_from_condition_number_or_list():
    # geomspace and sort are exact up to one rounding: 1e-15 relative.
    np.testing.assert_allclose(core.spectrum(10.0, 100.0, 3), [10.0, 1.0, 0.1], rtol=1e-15)
    np.testing.assert_array_equal(core.spectrum(1.0, 1.0, 2, "1, 100; 10"), [100.0, 10.0, 1.0])
    np.testing.assert_array_equal(core.initial_point(4, 0.5, -2.0, 3.0), [0.5, -2.0, 3.0, 3.0])
    assert core.ordered_methods(["ssam", "gd", "usam"]) == ("gd", "usam", "ssam")


@pytest.mark.parametrize("call, argument", [
    (lambda: core.spectrum(10, 10, 2, "1, x"), "eigenvalues"),
    (lambda: core.spectrum(10, 10, 2, "5"), "eigenvalues"),
    (lambda: core.spectrum(10, 10, 2, "-1, 2"), "eigenvalues"),
    (lambda: core.spectrum(0.0, 10, 2), "lam_max"),
    (lambda: core.spectrum(10, 0.5, 2), "condition_number"),
    (lambda: core.spectrum(10, 10, 1), "dim"),
    (lambda: core.initial_point(2, float("nan"), 0.0), "x0"),
    (lambda: core.ordered_methods(["sam", "adam"]), "methods"),
    (lambda: core.run_trajectory(st.Quadratic(LAM), "sam", -0.1, 0.1, steps=5, x0=X0), "eta"),
    (lambda: core.run_trajectory(st.Quadratic(LAM), "sam", 0.1, 0.1, steps=0, x0=X0), "steps"),
])
def test_bad_input_names_the_argument(call, argument):
    with pytest.raises(ValueError, match=argument):
        call()


@given(lam_max=hs.floats(0.1, 1000.0), eta=hs.floats(1e-5, 5.0), rho=hs.floats(0.0, 5.0))
def test_map_axes_contain_the_current_point(lam_max, eta, rho):
    eta_axis, rho_axis = core.map_axes(lam_max, eta, rho)
    assert eta_axis[0] < eta < eta_axis[-1] and rho_axis[0] == 0.0 and rho <= rho_axis[-1]
    # GD's limit is well inside; geomspace's endpoints carry a few ulps of rounding (1e-12 relative).
    assert eta_axis[0] <= 2 / lam_max / 32 * (1 + 1e-12) and eta_axis[-1] >= 1.5 * 2 / lam_max * (1 - 1e-12)


# ------------------------------------------------------------------------------------------ trajectories

@pytest.mark.parametrize("method, eta, rho", [("gd", 0.15, 0.0), ("usam", 0.08, 0.1), ("usam", 0.15, 0.1)])
def test_trajectory_is_the_closed_form_iteration(problem, method, eta, rho):
    """O1/O2: on a diagonal quadratic x_k = (1 − ηλ(1 + ρλ))^k x_0 componentwise, until divergence."""
    trajectory = core.run_trajectory(problem, method, eta, rho, steps=300, x0=X0)
    k = np.arange(len(trajectory.points))[:, None]
    expected = (1 - eta * LAM * (1 + rho * LAM)) ** k * X0
    np.testing.assert_allclose(trajectory.points, expected, rtol=ITERATE_RTOL)
    unstable = eta * LAM[0] * (1 + rho * LAM[0]) > 2
    assert (trajectory.status == "diverged") == unstable
    if unstable:
        assert len(trajectory.points) == trajectory.diverged_at + 1


@pytest.mark.parametrize("method, eta", [("sam", 0.15), ("ssam", 0.15), ("susam", 0.15), ("usam", 0.15)])
def test_trajectory_is_the_engine_run(problem, method, eta):
    """Recording the iterates changes nothing: the final point, status, and the per-step loss, γ and ‖g‖ are
    the engine's own (its history with record_every=1), bit for bit."""
    trajectory = core.run_trajectory(problem, method, eta, 0.1, steps=200, x0=X0)
    plain = st.simulate(problem, method, eta, 0.1, steps=200, x0=X0, record_every=1)
    n = len(trajectory.points) - 1
    np.testing.assert_array_equal(trajectory.points[-1], plain.x)
    assert trajectory.status == plain.status_name
    np.testing.assert_array_equal(trajectory.gamma, plain.history.gamma[:n])
    np.testing.assert_array_equal(trajectory.grad_norm, plain.history.grad_norm[:n])
    np.testing.assert_array_equal(trajectory.loss, plain.history.loss[:n + 1])


@pytest.mark.parametrize("eta", [0.1, 0.15])
def test_sam_reaches_the_two_cycle(problem, eta):
    """O3: a = ηρλ₁/(2 − ηλ₁) along u₁, the other components gone (after 300 steps they are < 1e-15)."""
    rho = 0.1
    trajectory = core.run_trajectory(problem, "sam", eta, rho, steps=300, x0=X0)
    amplitude = eta * rho * LAM[0] / (2 - eta * LAM[0])
    # The cycle is reached to rounding: 1e-12 relative.
    np.testing.assert_allclose(np.abs(trajectory.points[-2:, 0]), amplitude, rtol=1e-12)
    assert np.all(np.abs(trajectory.points[-2:, 1:]) < 1e-12)
    explanation = core.explain(problem, trajectory)
    assert explanation.prediction == "bounded" and explanation.agrees is True
    assert f"{amplitude:.4g}" in explanation.reason


# ----------------------------------------------------------------------------------------------- explanation

@pytest.mark.parametrize("eta, stable", [(0.08, True), (0.12, False)])
def test_usam_explanation_substitutes_the_numbers(problem, eta, stable):
    rho = 0.1
    trajectory = core.run_trajectory(problem, "usam", eta, rho, steps=300, x0=X0)
    explanation = core.explain(problem, trajectory)
    product = eta * LAM[0] * (1 + rho * LAM[0])
    assert f"= {product:.3g} {'<' if stable else '>'} 2" in explanation.reason
    assert f"η_c = {2 / (LAM[0] * (1 + rho * LAM[0])):.3g}" in explanation.reason
    assert explanation.reason.startswith("stable" if stable else "unstable")
    assert explanation.prediction == ("converges" if stable else "diverges")
    assert explanation.agrees is True


@pytest.mark.parametrize("method", ["ssam", "susam"])
def test_renormalized_gamma_stays_in_the_O4_bounds(problem, method):
    rho = 0.1
    trajectory = core.run_trajectory(problem, method, 0.15, rho, steps=300, x0=X0)
    lower, upper = core.gamma_bounds(problem, method, rho, trajectory.grad_norm)
    if method == "susam":  # O4 in closed form: [1/(1 + ρλ_max), 1/(1 + ρλ_min)], exact to 1e-15 relative
        np.testing.assert_allclose([lower[0], upper[0]], [1 / (1 + rho * LAM[0]), 1 / (1 + rho * LAM[-1])], rtol=1e-15)
    # γ is a ratio of two float64 norms: 1e-12 relative slack at the bounds.
    assert np.all(trajectory.gamma >= lower * (1 - 1e-12)) and np.all(trajectory.gamma <= upper * (1 + 1e-12))
    measured = core.explain(problem, trajectory).measured
    assert f"within O4's bound at {trajectory.gamma.size} of {trajectory.gamma.size} steps" in measured


def test_explanation_table_and_adaptive(problem):
    trajectories = core.run_all(problem, core.METHOD_NAMES, 0.15, 0.1, steps=100, x0=X0, adaptive=True)
    table = core.explanation(problem, trajectories, adaptive=True)
    rows = [line for line in table.splitlines() if line.startswith("| **")]
    assert [row.split("**")[1] for row in rows] == [core.LABELS[m] for m in core.METHOD_NAMES]
    assert all(core.explain(problem, t, adaptive=True).prediction is None for t in trajectories if t.method != "gd")


# ------------------------------------------------------------------------------------------------ figures

def _image(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)))


def test_regime_map_status_is_the_trajectory_status(problem):
    """The map cell under the ★ shows what the trajectory did: same engine, same x₀, same steps."""
    eta_axis, rho_axis = core.map_axes(LAM[0], 0.15, 0.1)
    status = core.regime_status(problem, "usam", eta_axis, rho_axis, steps=300, x0=X0)
    for i, j in [(10, 5), (40, 20), (50, 30)]:
        trajectory = core.run_trajectory(problem, "usam", eta_axis[i], rho_axis[j], steps=300, x0=X0)
        assert st.STATUS_NAMES[status[i, j]] == trajectory.status
    # O2 away from the boundary: growth |1 − ηλ(1 + ρλ)| ≥ 1.1 per step passes 1e6 within 300 steps, and
    # ≤ 0.9 never does.
    product = eta_axis[:, None] * LAM[0] * (1 + rho_axis[None, :] * LAM[0])
    assert np.all(status[product > 2.1] == st.DIVERGED)
    assert np.all(status[product < 1.9] != st.DIVERGED)


def test_figures_render_and_follow_eta(problem):
    methods = ("usam", "susam")
    images = {}
    for eta in (0.08, 0.15):
        trajectories = core.run_all(problem, methods, eta, 0.1, steps=100, x0=X0)
        images[eta] = (core.trajectory_png(problem, trajectories),
                       core.regime_png(problem, methods, eta, 0.1, steps=100, x0=X0),
                       core.curves_png(problem, trajectories, steps=100))
    hits = _model._regime_scene.cache_info().hits
    core.regime_png(problem, methods, 0.1, 0.1, steps=100, x0=X0)
    assert _model._regime_scene.cache_info().hits == hits + 1  # moving η within the map reuses its background
    width = round(core.PANEL_SIZE * len(methods) * core.PNG_DPI)
    for before, after in zip(images[0.08], images[0.15]):
        a, b = _image(before), _image(after)
        assert a.shape == b.shape and a.shape[1] >= width - 1  # ±1 px of rounding of inches × dpi
        assert np.any(a != b)


# ------------------------------------------------------------------------------------------- script & app

def test_runs_as_a_script():
    run = subprocess.run([sys.executable, str(EXPERIMENTS / "explorer.py")], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "MPLBACKEND": "Agg"})
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith("| **")]
    assert [row.split("**")[1] for row in rows] == [core.LABELS[m] for m in core.ordered_methods(core.DEFAULT_METHODS)]


def _require_browser():
    """Skip with the reason when Chromium or Playwright is missing, unless SAMTHEORY_REQUIRE_BROWSER=1 (CI)."""
    missing = None
    if not Path(browser_driver.CHROMIUM).exists():
        missing = f"{browser_driver.CHROMIUM} is missing (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "the playwright package is missing (pip install playwright)"
    if missing is None:
        return
    if os.environ.get("SAMTHEORY_REQUIRE_BROWSER") == "1":
        pytest.fail(f"SAMTHEORY_REQUIRE_BROWSER=1 but {missing}")
    pytest.skip(f"browser test not run: {missing}; set SAMTHEORY_REQUIRE_BROWSER=1 to make this a failure")


def test_served_app_follows_a_slider_in_chromium():
    _require_browser()
    with browser_driver.served(EXPERIMENTS / "explorer.py") as url, browser_driver.chromium() as browser:
        app = browser_driver.AppPage(browser, url)
        assert app.errors() == []
        assert "0.15·10" in app.explanation()  # the default η = 0.15 substituted
        before = app.sources()
        app.press("learning rate η", "ArrowRight")  # 0.15 → 0.18, the next slider value
        app.wait_for_change(before)  # raises if any of the three figures stays the same
        assert app.slider("learning rate η").get_attribute("aria-valuenow") == str(core.ETA_VALUES.index(0.18))
        assert "0.18·10" in app.explanation()
        assert app.errors() == []
        # The error check can fail: invalid eigenvalues show the app's error callout.
        field = app.page.get_by_placeholder("e.g. 100, 10, 1")
        field.fill("1, -2")
        field.press("Enter")
        app.page.get_by_text("Invalid input").first.wait_for(timeout=30_000)
        assert "Invalid input" in app.errors()


def test_missing_browser_skips_visibly_or_fails_in_ci(monkeypatch):
    monkeypatch.setattr(browser_driver, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv("SAMTHEORY_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="SAMTHEORY_REQUIRE_BROWSER=1"):
        _require_browser()
    monkeypatch.setenv("SAMTHEORY_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="/nonexistent/chromium is missing"):
        _require_browser()
