"""The one plotting style of samtheory's figures: colours, sizes and savers.

Figures are built object-oriented on :class:`matplotlib.figure.Figure` (no pyplot, no global backend state) and
rendered with the Agg canvas, so plotting is headless everywhere. Every method keeps one colour, marker and line
style across all figures; the colours are the Okabe & Ito (2008) colour-blind-safe palette, and the regime
colours are from Paul Tol's colour-blind-safe "muted" scheme. Sizes are for a single paper column (3.4 in).

>>> from samtheory import plotting
>>> fig, ax = plotting.figure(height=2.4)
>>> ax.plot([0, 1], [1, 0], **plotting.method_style("ssam"))     # doctest: +ELLIPSIS
[...]
>>> paths = plotting.save(fig, "out", "example")                  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .methods import BUILTIN_METHODS, METHODS

__all__ = [
    "COLUMN_WIDTH", "DPI", "METHOD_ORDER", "METHOD_COLORS", "METHOD_LABELS", "METHOD_MARKERS", "METHOD_LINESTYLES",
    "STATUS_COLORS", "STATUS_LABELS", "RC", "style", "figure", "blank_figure", "method_style", "matplotlib_handle",
    "shades", "status_cmap", "status_handles", "cell_edges", "regime_panel", "panel_label", "plain_log_ticks", "finite_segment", "pixel_size",
    "save",
]

#: Width of a single column in inches (two-column papers: 3.25–3.5 in) and the PNG resolution.
COLUMN_WIDTH = 3.4
DPI = 200

METHOD_ORDER = BUILTIN_METHODS
#: Okabe–Ito: black, orange, vermillion, sky blue, bluish green. SAM-family warm, StableSAM cool.
METHOD_COLORS = {"gd": "#000000", "sam": "#E69F00", "usam": "#D55E00", "ssam": "#56B4E9", "susam": "#009E73"}
METHOD_LABELS = {name: METHODS[name].label for name in BUILTIN_METHODS}
# Markers and dashes repeat the colour code for greyscale print and for colour-blind readers.
METHOD_MARKERS = {"gd": "o", "sam": "s", "usam": "^", "ssam": "D", "susam": "v"}
METHOD_LINESTYLES = {"gd": "-", "sam": "--", "usam": "-.", "ssam": (0, (1, 1)), "susam": (0, (5, 1, 1, 1, 1, 1))}

#: Regime colours (converged, bounded, diverged): Tol's muted cyan, sand and rose.
STATUS_COLORS = ("#88CCEE", "#DDCC77", "#CC6677")
STATUS_LABELS = ("converged", "bounded", "diverged")

RC = {
    "font.size": 7.5,
    "axes.titlesize": 7.5,
    "axes.labelsize": 7.5,
    "legend.fontsize": 6.5,
    "xtick.labelsize": 6.5,
    "ytick.labelsize": 6.5,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.1,
    "lines.markersize": 3.5,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.minor.width": 0.4,
    "ytick.minor.width": 0.4,
    "legend.frameon": False,
    "legend.handlelength": 2.4,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "mathtext.fontset": "dejavusans",
    "savefig.dpi": DPI,
    "pdf.fonttype": 42,  # TrueType in PDFs: editable text, accepted by publishers
    "svg.fonttype": "none",
    "figure.constrained_layout.h_pad": 0.02,
    "figure.constrained_layout.w_pad": 0.02,
}


@contextlib.contextmanager
def style():
    """Context in which samtheory's rcParams apply (restored on exit)."""
    with mpl.rc_context(RC):
        yield


def figure(nrows: int = 1, ncols: int = 1, *, height: float = 2.4, width: float = COLUMN_WIDTH, **subplot_kw):
    """A constrained-layout ``(Figure, axes)`` of ``width`` × ``height`` inches on an Agg canvas.

    Call it inside :func:`style` (fonts and line widths are read when artists are created). ``subplot_kw`` goes
    to :meth:`Figure.subplots` (``sharex``, ``gridspec_kw``, ...).

    Parameters
    ----------
    nrows, ncols : int, optional
        Grid of axes (default 1 × 1).
    height : float, optional
        Height in inches (default 2.4).
    width : float, optional
        Width in inches (default :data:`COLUMN_WIDTH`, one paper column).
    **subplot_kw
        Passed to :meth:`Figure.subplots`.

    Returns
    -------
    (Figure, Axes or ndarray of Axes)
        The axes squeezed as by :meth:`Figure.subplots`.
    """
    fig = blank_figure(height=height, width=width)
    axes = fig.subplots(nrows, ncols, squeeze=True, **subplot_kw)
    return fig, axes


def blank_figure(*, height: float = 2.4, width: float = COLUMN_WIDTH) -> Figure:
    """A constrained-layout Figure on an Agg canvas with no axes (lay them out with ``add_gridspec``).

    Parameters
    ----------
    height : float, optional
        Height in inches (default 2.4).
    width : float, optional
        Width in inches (default :data:`COLUMN_WIDTH`, one paper column).

    Returns
    -------
    Figure
    """
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def method_style(method: str, *, marker: bool = False, line: bool = True) -> dict:
    """Keyword arguments (colour, label, line style, marker) for plotting ``method`` consistently.

    Parameters
    ----------
    method : str
        A built-in method name (``ValueError`` otherwise).
    marker : bool, optional
        Add the method's marker (default False; always added when ``line`` is False).
    line : bool, optional
        Draw the method's line style (default True); False gives ``linestyle="none"``.

    Returns
    -------
    dict
        ``color``, ``label``, ``linestyle`` and, when asked, ``marker``.
    """
    if method not in METHOD_COLORS:
        raise ValueError(f"method must be one of {', '.join(METHOD_ORDER)}, got {method!r}")
    kwargs = {"color": METHOD_COLORS[method], "label": METHOD_LABELS[method]}
    kwargs["linestyle"] = METHOD_LINESTYLES[method] if line else "none"
    if marker or not line:
        kwargs["marker"] = METHOD_MARKERS[method]
    return kwargs


def matplotlib_handle(method: str, **kwargs):
    """A legend handle (line and marker) for ``method``, for figure-level legends.

    Parameters
    ----------
    method : str
        A built-in method name.
    **kwargs
        Overrides of the :class:`~matplotlib.lines.Line2D` properties.

    Returns
    -------
    matplotlib.lines.Line2D
    """
    from matplotlib.lines import Line2D

    return Line2D([], [], **{**method_style(method, marker=True), **kwargs})


def shades(method: str, n: int, lightest: float = 0.65) -> list:
    """``n`` shades of ``method``'s colour, from a light tint (mixed with ``lightest`` white) to the colour
    itself, for a family of curves of one method (several ρ or N).

    Parameters
    ----------
    method : str
        A built-in method name.
    n : int
        Number of shades.
    lightest : float, optional
        Fraction of white in the lightest shade, in [0, 1] (default 0.65).

    Returns
    -------
    list of tuple
        RGB colours, lightest first.
    """
    from matplotlib.colors import to_rgb

    base = np.array(to_rgb(METHOD_COLORS[method]))
    weights = np.linspace(lightest, 0.0, n) if n > 1 else np.zeros(1)
    return [tuple(base * (1 - w) + w) for w in weights]


def status_cmap():
    """``(cmap, norm)`` mapping status codes 0/1/2 to :data:`STATUS_COLORS` (for ``pcolormesh``)."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    return ListedColormap(STATUS_COLORS), BoundaryNorm([-0.5, 0.5, 1.5, 2.5], 3)


def status_handles():
    """Legend patches for the three regimes."""
    from matplotlib.patches import Patch

    return [Patch(facecolor=c, edgecolor="none", label=s) for c, s in zip(STATUS_COLORS, STATUS_LABELS)]


def cell_edges(values, *, log: bool = True) -> np.ndarray:
    """Cell boundaries around grid ``values`` (midpoints, geometric where ``log``), for ``pcolormesh``.

    Parameters
    ----------
    values : array_like
        Increasing grid values, at least two (positive where ``log``).
    log : bool, optional
        Geometric midpoints for a log-spaced grid (default True); arithmetic otherwise.

    Returns
    -------
    ndarray
        ``len(values) + 1`` boundaries.
    """
    v = np.log(values) if log else np.asarray(values, dtype=float)
    middle = (v[1:] + v[:-1]) / 2
    edges = np.concatenate([[2 * v[0] - middle[0]], middle, [2 * v[-1] - middle[-1]]])
    return np.exp(edges) if log else edges


def regime_panel(ax, x, y, status, name: str, *, xlog: bool = True, ylog: bool = True, tag_y: float = 0.06) -> None:
    """One panel of a regime map: ``status`` (shape ``(len(x), len(y))``) coloured by regime over the cells of
    the grid, axes limited to it, and the method's label in a corner.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The panel.
    x, y : array_like
        The grid's values along the horizontal and vertical axes.
    status : array_like
        Status codes (0 converged, 1 bounded, 2 diverged), shape ``(len(x), len(y))``.
    name : str
        The method, for its label.
    xlog, ylog : bool, optional
        Log-spaced axes (default True).
    tag_y : float, optional
        Height of the label in axes coordinates (default 0.06).
    """
    cmap, norm = status_cmap()
    ax.pcolormesh(cell_edges(x, log=xlog), cell_edges(y, log=ylog), np.asarray(status).T, cmap=cmap, norm=norm,
                  rasterized=True)
    if xlog:
        ax.set_xscale("log")
    if ylog:
        ax.set_yscale("log")
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(y[0], y[-1])
    ax.text(0.04, tag_y, METHOD_LABELS[name], transform=ax.transAxes, fontsize=7, fontweight="bold", color="k",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.2})


def panel_label(ax, letter: str, text: str = "", *, fontsize: float = 6.5) -> None:
    """A panel title, "(a) text", left-aligned above the axes (outside the data area).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The panel.
    letter : str
        The panel's letter.
    text : str, optional
        The title after the letter (default none).
    fontsize : float, optional
        Font size in points (default 6.5).
    """
    ax.set_title(f"({letter}) {text}".rstrip(), loc="left", fontsize=fontsize)


def pixel_size(figsize) -> tuple[int, int]:
    """``(width, height)`` in pixels of a PNG saved by :func:`save` from a figure of ``figsize`` inches.

    Parameters
    ----------
    figsize : (float, float)
        Width and height in inches.

    Returns
    -------
    (int, int)
    """
    width, height = figsize
    return int(round(width * DPI)), int(round(height * DPI))


def save(fig: Figure, out_dir, name: str) -> list[Path]:
    """Write ``name.png`` (at :data:`DPI`) and ``name.pdf`` into ``out_dir``; returns the two paths.

    No ``bbox_inches="tight"``: the constrained layout already fits, and the PNG keeps its exact pixel size
    (:func:`pixel_size`). PDF metadata carries no creation date, so reruns give identical files. Both files
    are rendered to temporary names first and then renamed over the old ones, so a failed or interrupted save
    leaves the previous PNG and PDF intact.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure to write.
    out_dir : path-like
        The folder (created if missing).
    name : str
        The file name without suffix.

    Returns
    -------
    list of Path
        ``[out_dir/name.png, out_dir/name.pdf]``.
    """
    import logging

    from ._paths import replacing

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    with replacing(*paths) as (png, pdf):
        fig.savefig(png, format="png", dpi=DPI, metadata={"Software": None})
        # fontTools, subsetting the embedded fonts, logs a warning about DejaVu's old 'created' timestamp.
        font_log = logging.getLogger("fontTools")
        level = font_log.level
        font_log.setLevel(logging.ERROR)
        try:
            fig.savefig(pdf, format="pdf", metadata={"CreationDate": None, "Producer": None, "Creator": None})
        finally:
            font_log.setLevel(level)
    return paths


def plain_log_ticks(axis, ticks) -> None:
    """Fixed, plainly written ticks (e.g. 1, 2, 4, 8) on a log ``axis`` spanning less than a few decades.

    Parameters
    ----------
    axis : matplotlib.axis.Axis
        E.g. ``ax.xaxis``.
    ticks : sequence of float
        The tick positions.
    """
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator, ScalarFormatter

    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(ScalarFormatter())
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def finite_segment(steps, values, diverged_at):
    """The part of a recorded curve before divergence (``diverged_at`` < 0: all of it).

    Parameters
    ----------
    steps : array_like
        The recorded steps.
    values : array_like
        The recorded values, same length.
    diverged_at : int or None
        The divergence step; None or < 0 keeps the whole curve.

    Returns
    -------
    (ndarray, ndarray)
        The steps and values up to ``diverged_at`` included.
    """
    steps, values = np.asarray(steps), np.asarray(values)
    if diverged_at is None or diverged_at < 0:
        return steps, values
    keep = steps <= diverged_at
    return steps[keep], values[keep]
