"""The figure pipeline: `samtheory figures`, its cache, the shared style. Nothing here writes into figures/."""

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import samtheory
from samtheory import figures as _figures, plotting
from samtheory.cli import main

ROOT = Path(__file__).resolve().parents[1]
CHEAP = "convergence"  # the cheapest real figure (a second or two with --quick)


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG header's IHDR chunk."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def test_every_figure_with_quick(tmp_path, capsys):
    """The CI smoke test: all figures, reduced grids, into a temporary folder."""
    assert main(["figures", "--quick", "--out", str(tmp_path)]) == 0
    names = _figures.figure_names()
    assert len(names) >= 9
    printed = capsys.readouterr().out
    for name in names:
        module = _figures.load(name)
        png, pdf = tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"
        assert png.stat().st_size > 0 and pdf.stat().st_size > 0
        assert png_size(png) == plotting.pixel_size(module.FIGSIZE), name  # exact: no tight bbox
        assert pdf.read_bytes()[:5] == b"%PDF-"
        assert (tmp_path / "cache" / f"{name}-quick.npz").is_file()
        assert f"{name}: " in printed
    assert not any((tmp_path / "cache").glob("*.partial.npz"))


TINY = """
import numpy as np

DESCRIPTION = "a tiny figure for the pipeline's tests"
QUICK = {"n": 3}
FULL = {"n": 5}
FIGSIZE = (1.0, 0.8)
CALLS = []


def compute(params):
    CALLS.append(params)
    return {"x": np.arange(params["n"], dtype=float), "label": np.asarray("tiny")}


def plot(data, out_dir):
    from samtheory import plotting

    fig, ax = plotting.figure(width=FIGSIZE[0], height=FIGSIZE[1])
    ax.plot(data["x"], data["x"] ** 2)
    return plotting.save(fig, out_dir, "tiny")
"""


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """An experiments/ folder holding one instant figure, ``tiny``; returns its module."""
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "fig_tiny.py").write_text(TINY)
    monkeypatch.setattr(_figures, "experiments_dir", lambda root=None: folder)
    return _figures.load("tiny")


def test_cached_rerun_does_not_recompute(tmp_path, tiny, monkeypatch):
    options = dict(quick=True, out_dir=tmp_path / "out", cache_dir=tmp_path / "cache", isolated=False)
    first = _figures.run_figure("tiny", **options)
    assert first.computed and tiny.CALLS == [{"n": 3}]
    for path in first.paths:
        path.unlink()
    again = _figures.run_figure("tiny", **options)
    assert not again.computed and len(tiny.CALLS) == 1  # replotted from the cache
    assert all(path.stat().st_size > 0 for path in again.paths)
    assert again.compute_seconds == first.compute_seconds  # stored with the cache, exactly

    _figures.run_figure("tiny", **options, force=True)
    assert len(tiny.CALLS) == 2

    assert _figures.run_figure("tiny", **{**options, "quick": False}).computed  # FULL has its own cache
    assert not _figures.run_figure("tiny", **options).computed
    assert len(tiny.CALLS) == 3

    monkeypatch.setattr(tiny, "QUICK", {"n": 4})
    assert _figures.run_figure("tiny", **options).computed  # other parameters, other numbers
    assert tiny.CALLS[-1] == {"n": 4}

    monkeypatch.setattr(samtheory, "__version__", samtheory.__version__ + ".dev1")
    assert _figures.run_figure("tiny", **options).computed  # another samtheory version made the cache
    assert len(tiny.CALLS) == 5

    monkeypatch.setattr(_figures, "source_fingerprint", lambda script=None: "edited-code")
    assert _figures.run_figure("tiny", **options).computed  # the code changed since the cache was made
    assert not _figures.run_figure("tiny", **options).computed
    assert len(tiny.CALLS) == 6


def test_source_fingerprint_follows_the_script(tmp_path):
    script = tmp_path / "fig_x.py"
    script.write_text("A = 1\n")
    before = _figures.source_fingerprint(script)
    assert _figures.source_fingerprint(script) == before
    script.write_text("A = 2\n")
    assert _figures.source_fingerprint(script) != before


def test_cache_stores_parameters_and_version(tmp_path, tiny):
    _figures.run_figure("tiny", quick=True, out_dir=tmp_path, cache_dir=tmp_path, isolated=False)
    with np.load(_figures.cache_path(tmp_path, "tiny", quick=True)) as stored:
        assert json.loads(str(stored["__params__"])) == tiny.QUICK
        assert str(stored["__version__"]) == samtheory.__version__
        assert str(stored["__source__"]) == _figures.source_fingerprint(tiny.__file__)
        assert str(stored["__environment__"]) == _figures._current_environment()
        assert stored["x"].tolist() == [0.0, 1.0, 2.0] and str(stored["label"]) == "tiny"
    assert not list(tmp_path.glob("*.partial.npz"))


@pytest.mark.parametrize("damage", ["garbage", "empty", "truncated", "overwritten"])
def test_damaged_cache_is_recomputed(tmp_path, tiny, damage):
    options = dict(quick=True, out_dir=tmp_path, cache_dir=tmp_path, isolated=False)
    path = _figures.cache_path(tmp_path, "tiny", quick=True)
    if damage in ("truncated", "overwritten"):  # a good cache cut in half, or with its middle overwritten
        _figures.run_figure("tiny", **options)
        good = path.read_bytes()
        half = len(good) // 2
        path.write_bytes(good[:half] if damage == "truncated" else good[:half - 40] + b"\xff" * 80 + good[half + 40:])
    else:
        path.write_bytes(b"not an npz file" if damage == "garbage" else b"")
    calls = len(tiny.CALLS)
    assert _figures.run_figure("tiny", **options).computed
    assert len(tiny.CALLS) == calls + 1
    with np.load(path) as stored:  # replaced by a good cache
        assert stored["x"].tolist() == [0.0, 1.0, 2.0]
    assert not _figures.run_figure("tiny", **options).computed


def test_cache_from_other_threads_or_kernels_is_recomputed(tmp_path, tiny, monkeypatch):
    """The cache records the numeric environment: numbers made under other threads or CPU kernels are not
    replotted as if they were this environment's."""
    options = dict(quick=True, out_dir=tmp_path, cache_dir=tmp_path, isolated=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert _figures.run_figure("tiny", **options).computed
    assert not _figures.run_figure("tiny", **options).computed
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert _figures.run_figure("tiny", **options).computed
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Zen")
    assert _figures.run_figure("tiny", **options).computed
    assert len(tiny.CALLS) == 3


def test_cli_reuses_the_cache_under_out(tmp_path, tiny, capsys):
    out = tmp_path / "out"
    for _ in range(2):
        assert main(["figures", "tiny", "--quick", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "computed in" in lines[0] and "cached" in lines[1]
    assert (out / "cache" / "tiny-quick.npz").is_file()
    assert png_size(out / "tiny.png") == plotting.pixel_size(tiny.FIGSIZE) == (200, 160)


def test_list(capsys):
    assert main(["figures", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = _figures.figure_names()
    assert [line.split()[0] for line in lines] == names
    assert names[:2] == ["regime_atlas", "regime_widths"]  # ORDER: the numbering
    for line, name in zip(lines, names):
        assert line.split(maxsplit=1)[1] == _figures.load(name).DESCRIPTION


def test_unknown_figure_is_a_one_line_error(tmp_path, capsys):
    assert main(["figures", "no_such_figure", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "unknown figure 'no_such_figure'" in error and CHEAP in error
    assert not any(tmp_path.iterdir())  # checked before anything ran


def test_out_must_be_a_folder(tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("")
    assert main(["figures", CHEAP, "--out", str(target)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--out must be a folder" in error


def test_outside_a_clone_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the package finds the clone from the working directory, not from its own path
    assert main(["figures", "--list"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "is not inside a samtheory clone" in error and str(tmp_path) in error
    assert main(["figures", "--list", "--root", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "is not a samtheory clone" in error


def test_figures_come_from_the_clone_the_command_runs_in(tmp_path, monkeypatch, capsys):
    """Another clone's figure scripts, found from the working directory (and with --root): not this package's."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "samtheory"\n')
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "fig_tiny.py").write_text(TINY)
    monkeypatch.chdir(tmp_path / "experiments")  # a subfolder of the clone
    assert main(["figures", "--list"]) == 0
    assert capsys.readouterr().out.split()[0] == "tiny"
    monkeypatch.chdir(ROOT)
    assert main(["figures", "--list", "--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split()[0] == "tiny"


def test_figure_script_without_the_interface_is_refused(tmp_path):
    (tmp_path / "fig_incomplete.py").write_text("DESCRIPTION = 'no compute, no plot'\n")
    with pytest.raises(ValueError, match="fig_incomplete.py lacks QUICK, FULL, FIGSIZE, compute, plot"):
        _figures.load("incomplete", tmp_path)


def test_compute_returning_objects_is_refused(tmp_path):
    (tmp_path / "fig_objects.py").write_text(
        "DESCRIPTION = 'x'\nQUICK = FULL = {'n': 1}\nFIGSIZE = (1, 1)\n"
        "def compute(params):\n    return {'bad': [1, 'a', None]}\n"
        "def plot(data, out_dir):\n    return []\n")
    with pytest.raises(ValueError, match="'bad' that cannot be cached"):
        _figures.run_figure("objects", quick=True, out_dir=tmp_path, cache_dir=tmp_path, directory=tmp_path)


def test_script_runs_directly(tmp_path):
    script = _figures.experiments_dir() / f"fig_{CHEAP}.py"
    done = subprocess.run([sys.executable, str(script), "--quick", "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert png_size(tmp_path / f"{CHEAP}.png") == plotting.pixel_size(_figures.load(CHEAP).FIGSIZE)


def test_default_quick_output_is_not_the_committed_folder():
    assert _figures.default_out_dir(quick=False) == ROOT / "figures"
    assert _figures.default_out_dir(quick=True) != _figures.default_out_dir(quick=False)
    assert "cache" in _figures.default_out_dir(quick=True).parts  # git-ignored experiments/cache/


def test_method_style_is_fixed_and_distinct():
    assert set(plotting.METHOD_COLORS) == set(samtheory.METHODS)
    assert len(set(plotting.METHOD_COLORS.values())) == len(plotting.METHOD_COLORS)
    assert len(set(plotting.METHOD_MARKERS.values())) == len(plotting.METHOD_MARKERS)
    style = plotting.method_style("ssam", marker=True)
    assert style["color"] == plotting.METHOD_COLORS["ssam"] and style["label"] == "SSAM" and style["marker"] == "D"
    assert plotting.method_style("gd", line=False)["linestyle"] == "none"


def test_method_style_rejects_an_unknown_method():
    with pytest.raises(ValueError, match="method must be one of gd, sam, usam, ssam, susam, got 'adam'"):
        plotting.method_style("adam")


def test_save_writes_png_and_pdf_of_the_stated_size(tmp_path):
    with plotting.style():
        fig, ax = plotting.figure(height=2.0)
        ax.plot([1, 2], [3, 4], **plotting.method_style("sam"))
        paths = plotting.save(fig, tmp_path / "sub", "example")
    assert [p.name for p in paths] == ["example.png", "example.pdf"]
    assert png_size(paths[0]) == plotting.pixel_size((plotting.COLUMN_WIDTH, 2.0)) == (680, 400)


ENVIRONMENT_FIGURE = """
import os

import numpy as np

DESCRIPTION = "records the process and environment that computed it"
QUICK = FULL = {"keys": %r}
FIGSIZE = (1.0, 0.8)


def compute(params):
    import torch  # reads its thread count from OMP_NUM_THREADS at import

    return {"pid": np.asarray(os.getpid()), "torch_threads": np.asarray(torch.get_num_threads()),
            **{key: np.asarray(os.environ.get(key, "")) for key in params["keys"]}}


def plot(data, out_dir):
    from samtheory import plotting

    fig, ax = plotting.figure(width=FIGSIZE[0], height=FIGSIZE[1])
    return plotting.save(fig, out_dir, "environment")
"""


def test_worker_computes_under_the_numeric_environment(tmp_path, monkeypatch):
    """A figure runs in a fresh process with one thread per library and fixed CPU kernels, whatever the
    caller's settings."""
    import os

    environment = _figures.numeric_environment()
    assert {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}.items() <= environment.items()
    (tmp_path / "fig_environment.py").write_text(ENVIRONMENT_FIGURE % (sorted(environment),))
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Zen")
    run = _figures.run_figure("environment", quick=True, out_dir=tmp_path / "out", cache_dir=tmp_path, directory=tmp_path)
    assert run.computed and [p.name for p in run.paths] == ["environment.png", "environment.pdf"]
    with np.load(_figures.cache_path(tmp_path, "environment", quick=True)) as stored:
        assert int(stored["pid"]) != os.getpid()
        assert int(stored["torch_threads"]) == 1
        assert {key: str(stored[key]) for key in environment} == environment
    again = _figures.run_figure("environment", quick=True, out_dir=tmp_path / "out", cache_dir=tmp_path,
                                directory=tmp_path)
    assert not again.computed  # the worker's cache matches the worker's environment


def test_a_process_already_in_the_numeric_environment_runs_the_figure_itself(tmp_path, tiny, monkeypatch):
    for key, value in _figures.numeric_environment().items():
        monkeypatch.setenv(key, value)
    assert _figures.run_figure("tiny", quick=True, out_dir=tmp_path, cache_dir=tmp_path).computed
    assert tiny.CALLS == [{"n": 3}]  # computed here, not in a worker


FAILING_FIGURE = """
DESCRIPTION = "fails in compute with %s"
QUICK = FULL = {}
FIGSIZE = (1, 1)


def compute(params):
    raise %s("no figure today")


def plot(data, out_dir):
    return []
"""


@pytest.mark.parametrize("kind, expected", [("ValueError", ValueError), ("ModuleNotFoundError", ImportError),
                                            ("KeyboardInterrupt", KeyboardInterrupt),
                                            ("ZeroDivisionError", RuntimeError)])
def test_worker_errors_come_back_as_themselves(tmp_path, kind, expected):
    """Bad input and missing dependencies stay ValueError/ImportError (the CLI's one-line errors), Ctrl-C stays
    KeyboardInterrupt, anything else becomes a RuntimeError naming the figure."""
    (tmp_path / "fig_failing.py").write_text(FAILING_FIGURE % (kind, kind))
    with pytest.raises(expected) as raised:
        _figures.run_figure("failing", quick=True, out_dir=tmp_path, cache_dir=tmp_path, directory=tmp_path)
    if expected is not KeyboardInterrupt:
        assert "no figure today" in str(raised.value)
    if expected is RuntimeError:
        assert "figure failing failed in its worker process: ZeroDivisionError" in str(raised.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig_failing.py"]


def test_worker_keeps_the_callers_warning_filters(tmp_path):
    """Under the suite's error::RuntimeWarning a figure that leaks a RuntimeWarning fails in its worker too."""
    (tmp_path / "fig_warns.py").write_text(
        "import numpy as np\nDESCRIPTION = 'x'\nQUICK = FULL = {}\nFIGSIZE = (1, 1)\n"
        "def compute(params):\n    return {'x': np.log(np.zeros(1))}\n"
        "def plot(data, out_dir):\n    return []\n")
    with pytest.raises(RuntimeError, match="figure warns failed in its worker process: RuntimeWarning: divide by zero"):
        _figures.run_figure("warns", quick=True, out_dir=tmp_path, cache_dir=tmp_path, directory=tmp_path)


def _example_figure():
    fig, ax = plotting.figure(height=2.0)
    ax.plot([1, 2], [3, 4], **plotting.method_style("sam"))
    return fig


def test_an_interrupted_save_leaves_the_previous_files(tmp_path, monkeypatch):
    """The PNG and PDF are rendered to temporary files and renamed over the old ones only when both are done."""
    from matplotlib.figure import Figure

    with plotting.style():
        paths = plotting.save(_example_figure(), tmp_path, "example")
        before = [p.read_bytes() for p in paths]
        original = Figure.savefig
        calls = []

        def savefig_then_fail(self, fname, **kwargs):
            calls.append(fname)
            if len(calls) == 2:  # the PDF, after the PNG: half written, then Ctrl-C
                Path(fname).write_bytes(b"%PDF-1.4 half")
                raise KeyboardInterrupt
            original(self, fname, **kwargs)

        monkeypatch.setattr(Figure, "savefig", savefig_then_fail)
        fig = _example_figure()
        fig.axes[0].set_title("changed")
        with pytest.raises(KeyboardInterrupt):
            plotting.save(fig, tmp_path, "example")
    assert [p.read_bytes() for p in paths] == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["example.pdf", "example.png"]  # no partial file left


def test_a_figure_that_fails_while_plotting_leaves_the_previous_files(tmp_path, tiny, monkeypatch):
    """The real pipeline: the PNG is rendered, then the PDF breaks half-way; both old files stay as they were."""
    import inspect

    from matplotlib.artist import Artist

    options = dict(quick=True, out_dir=tmp_path / "out", cache_dir=tmp_path / "cache", isolated=False)
    paths = _figures.run_figure("tiny", **options).paths
    before = [p.read_bytes() for p in paths]

    class BreaksWhileWritingThePdf(Artist):
        breaks = 0

        def draw(self, renderer):
            if any(frame.function == "print_pdf" for frame in inspect.stack()):  # the PDF file is open
                BreaksWhileWritingThePdf.breaks += 1
                raise RuntimeError("the plot broke")

    def plot_that_fails(data, out_dir):
        fig, ax = plotting.figure(width=1.0, height=0.8)
        ax.plot(data["x"], -data["x"])
        fig.add_artist(BreaksWhileWritingThePdf())
        return plotting.save(fig, out_dir, "tiny")

    monkeypatch.setattr(tiny, "plot", plot_that_fails)
    with pytest.raises(RuntimeError, match="the plot broke"):
        _figures.run_figure("tiny", **options, force=True)
    assert BreaksWhileWritingThePdf.breaks == 1
    assert [p.read_bytes() for p in paths] == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["tiny.pdf", "tiny.png"]


def test_pep_figure_records_solver_failures(monkeypatch):
    """fig_pep keeps a solve that no solver certified as a failure (mask, status, × and a note in the panel
    title), never as a silent NaN."""
    from types import SimpleNamespace

    from samtheory.convex import SolverError, pep

    module = _figures.load("pep")

    def worst_case(method, *, eta, steps, rho=0.0):
        if eta > 1.5 or (method == "usam" and rho == 1.0 and eta > 0.9):
            raise SolverError(f"{method} PEP", "CLARABEL/SCS", "CLARABEL: optimal_inaccurate; SCS: infeasible")
        return SimpleNamespace(worst_case=float(pep.gd_worst_case_bound(eta, steps=steps)))

    def critical(method, *, rho, steps, xtol):
        if rho == 1.0:
            raise SolverError("usam PEP", "CLARABEL", "CLARABEL: max_iterations")
        return SimpleNamespace(eta=2 / (1 + rho), bracket=(2 / (1 + rho) - xtol, 2 / (1 + rho)))

    monkeypatch.setattr(pep, "worst_case", worst_case)
    monkeypatch.setattr(pep, "pep_critical_learning_rate", critical)
    params = {**module.QUICK, "usam_rho": [0.0, 1.0], "regime_rho": [0.0, 1.0]}
    data = module.compute(params)

    failed = data["gd_h"] > 1.5
    assert data["gd_worst_failed"].tolist() == [failed.tolist()] * len(params["gd_steps"])
    assert np.isnan(data["gd_worst"][:, failed]).all() and np.isfinite(data["gd_worst"][:, ~failed]).all()
    assert set(data["gd_worst_status"][:, failed].ravel()) == {"CLARABEL: optimal_inaccurate; SCS: infeasible"}
    assert set(data["gd_worst_status"][:, ~failed].ravel()) == {"optimal"}
    usam_failed = (data["usam_eta"] > 1.5) | ((np.array(params["usam_rho"]) == 1.0)[:, None] & (data["usam_eta"] > 0.9))
    assert (data["usam_worst_failed"] == usam_failed).all() and usam_failed.any() and not usam_failed.all()
    assert data["regime_eta_failed"].tolist() == [False, True]
    assert data["regime_eta_status"].tolist() == ["optimal", "CLARABEL: max_iterations"]
    assert data["regime_eta"][0] == 2.0 and np.isnan(data["regime_eta"][1])

    figures = []
    monkeypatch.setattr(plotting, "save", lambda fig, out_dir, name: figures.append(fig) or [])
    with plotting.style():
        module.plot(_figures.FigureData(data, params, samtheory.__version__, 0.0), "unused")
    titles = [ax.get_title(loc="left") for ax in figures[0].axes]
    counts = (int(data["gd_worst_failed"].sum()), int(usam_failed.sum()), 1)
    for title, count in zip(titles, counts):
        assert title.endswith(f"× not certified ({count})"), title
    crosses = [sum(len(line.get_xdata()) for line in ax.get_lines() if line.get_marker() == "x")
               for ax in figures[0].axes]
    assert crosses == list(counts)
