r"""The interactive explorer's model: trajectories, closed-form explanations and the cached scenes it draws.

The marimo app ``experiments/explorer.py`` only wires controls to these functions (``marimo run
experiments/explorer.py``); everything it shows is computed and tested here (tests/test_explorer.py):

- :func:`run_trajectory`, :func:`run_all`: trajectories through :func:`samtheory.simulate`;
- :func:`explain`, :func:`explanation`: the closed forms of :mod:`samtheory.theory` (O1–O5) at the current
  numbers, beside what was measured;
- :func:`trajectory_png`, :func:`curves_png`, :func:`regime_png`: the three views, drawn from a scene cache
  (:class:`Scene`) so that moving a slider redraws only what moved;
- :mod:`samtheory.explorer.browser`: drive the served app in headless Chromium (browser test, screenshot).
"""

from ._model import (
    COLORS, CONDITION_VALUES, DEFAULT_METHODS, ETA_VALUES, LABELS, LAM_MAX_VALUES, METHOD_NAMES, PANEL_SIZE, PNG_DPI,
    RENORMALIZED, RHO_VALUES, Explanation, Scene, Trajectory, curves_png, explain, explanation, gamma_bounds,
    initial_point, map_axes, ordered_methods, regime_png, regime_status, run_all, run_trajectory, spectrum,
    trajectory_half_width, trajectory_png,
)

__all__ = [
    "COLORS", "CONDITION_VALUES", "DEFAULT_METHODS", "ETA_VALUES", "LABELS", "LAM_MAX_VALUES", "METHOD_NAMES",
    "PANEL_SIZE", "PNG_DPI", "RENORMALIZED", "RHO_VALUES", "Explanation", "Scene", "Trajectory", "curves_png",
    "explain", "explanation", "gamma_bounds", "initial_point", "map_axes", "ordered_methods", "regime_png",
    "regime_status", "run_all", "run_trajectory", "spectrum", "trajectory_half_width", "trajectory_png",
]
