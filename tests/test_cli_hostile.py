"""The command line under hostile and careless input (issue 15): each test here failed before its fix.

Hang guards use ``signal.alarm`` (60 s) only to turn a hang into a failure; they assert nothing about speed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import samtheory as st
from samtheory import _limits
from samtheory.cli import build_parser, main
from samtheory.stability import _measured

ROOT = Path(__file__).resolve().parents[1]
HANG_GUARD_SECONDS = 60


@contextlib.contextmanager
def hang_guard(seconds: int = HANG_GUARD_SECONDS):
    """Fail (instead of hanging the suite) if the block runs longer than ``seconds``."""
    def expire(signum, frame):
        raise AssertionError(f"still running after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _strict_json(text: str):
    def refuse(constant):
        raise AssertionError(f"non-strict JSON constant {constant} in output")
    return json.loads(text, parse_constant=refuse)


def _cli_env(**extra) -> dict:
    """The environment of a ``python -m samtheory`` subprocess that imports this checkout's package."""
    env = {key: value for key, value in os.environ.items() if key != _limits.MAX_MEMORY_ENV}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return {**env, **extra}


@pytest.fixture(autouse=True)
def default_memory_limit(monkeypatch):
    monkeypatch.delenv(_limits.MAX_MEMORY_ENV, raising=False)


# -- 1. no abbreviations -----------------------------------------------------------------------------------------

def _long_options(parser):
    return {option for action in parser._actions for option in action.option_strings if option.startswith("--")}


def _subparsers(parser):
    choices = next(action.choices for action in parser._actions if getattr(action, "choices", None)
                   and isinstance(action.choices, dict))
    return choices


def test_data_is_not_an_abbreviation_of_data_seed(cli_error):
    line = cli_error(["simulate", "--eta", "0.1", "--problem", "least-squares", "--data", "3"])
    assert "unrecognized arguments: --data 3" in line


def test_no_flag_of_any_command_accepts_a_prefix(cli_error):
    parser = build_parser()
    cases = [([], "--vers")]
    for name, sub in _subparsers(parser).items():
        options = _long_options(sub)
        for option in sorted(options):
            prefix = option[:-1]
            if len(prefix) > 2 and prefix not in options:
                cases.append(([name], prefix))
    assert len(cases) > 50  # every command's flags are covered
    for command, prefix in cases:
        line = cli_error([*command, prefix, "1"] if command else [prefix])
        assert "unrecognized arguments" in line or "the following arguments are required" in line, (prefix, line)


# -- 2. a closed stdout ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_closed_stdout_exits_quietly_with_sigpipe_status(json_flag):
    etas = ",".join(f"{0.001 * k:.3f}" for k in range(1, 3001))  # seq -s, 0.001 0.001 3
    process = subprocess.Popen([sys.executable, "-m", "samtheory", "simulate", "--eta", etas, "--steps", "3",
                                *json_flag], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                               env=_cli_env())
    head = process.stdout.read(10)  # head -c 10
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 128 + signal.SIGPIPE == 141
    assert len(head) == 10 and stderr == ""


# -- 4. memory estimated before allocating --------------------------------------------------------------------

def _never(name):
    def fail(*args, **kwargs):
        raise AssertionError(f"{name} ran although the request is over the memory limit")
    return fail


def test_huge_stability_gap_is_refused_before_any_work(cli_error, monkeypatch):
    from samtheory.stability import _algorithmic

    monkeypatch.setattr(_algorithmic, "simulate", _never("simulate"))
    line = cli_error(["stability-gap", "--trials", "10000000"])
    assert "--trials 10000000" in line and "TiB" in line and "SAMTHEORY_MAX_MEMORY" in line


def test_huge_regime_is_refused_before_any_work(cli_error, monkeypatch):
    monkeypatch.setattr(_measured, "initial_points", _never("initial_points"))
    line = cli_error(["regime", "--points", "100000000"])
    assert "--points 100000000" in line and "GiB" in line


@pytest.mark.parametrize("problem", ["least-squares", "logistic"])
def test_huge_data_set_is_refused_before_any_work(cli_error, monkeypatch, problem):
    from samtheory import datasets

    monkeypatch.setattr(datasets, "make_least_squares", _never("make_least_squares"))
    monkeypatch.setattr(datasets, "make_logistic_regression", _never("make_logistic_regression"))
    line = cli_error(["simulate", "--eta", "0.1", "--problem", problem, "--n-samples", "100000000", "--dim", "100"])
    assert "--n-samples 100000000 --dim 100" in line and "GiB" in line


def test_huge_grid_is_refused_by_simulate_before_any_work(cli_error, monkeypatch):
    from samtheory import engine

    monkeypatch.setattr(engine, "_initial_points", _never("_initial_points"))
    grid = ",".join(f"{0.001 + 1e-7 * k:.7f}" for k in range(20000))
    line = cli_error(["simulate", "--eta", grid, "--rho", grid])
    assert "(20000, 20000, 1)" in line and "400000000 configurations" in line and "GiB" in line
    with pytest.raises(ValueError, match=r"eta, rho and seed broadcast to shape \(20000, 20000\)"):
        st.simulate(st.Quadratic([1.0, 2.0, 3.0]), "gd", np.full((20000, 1), 0.1), np.zeros((1, 20000)), steps=1)


def test_memory_limit_is_overridable_and_checked(monkeypatch):
    problem = st.Quadratic([1.0, 2.0])
    st.simulate(problem, "gd", np.full(100, 0.1), steps=2)  # well under the default limit
    monkeypatch.setenv(_limits.MAX_MEMORY_ENV, "16K")
    with pytest.raises(ValueError, match="more than the limit of 16.0 KiB"):
        st.simulate(problem, "gd", np.full(100, 0.1), steps=2)
    monkeypatch.setenv(_limits.MAX_MEMORY_ENV, "2.5G")
    assert _limits.max_memory() == int(2.5 * 2**30)
    st.simulate(problem, "gd", np.full(100, 0.1), steps=2)
    monkeypatch.setenv(_limits.MAX_MEMORY_ENV, "lots")
    with pytest.raises(ValueError, match="SAMTHEORY_MAX_MEMORY must be a positive number of bytes"):
        st.simulate(problem, "gd", 0.1, steps=2)


def _traced_peak(compute) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        compute()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _simulate_case(record_iterates, problem, steps=20):
    eta, record_every = np.full(20000, 0.01), 5
    n_samples = getattr(problem, "n_samples", None)
    estimate = _limits.simulate_bytes(eta.size, problem.dim, steps, record_every=record_every,
                                      record_iterates=record_iterates, workers=2, n_samples=n_samples,
                                      transformed=getattr(problem, "eigenvectors", None) is not None)
    return estimate, lambda: st.simulate(problem, "ssam", eta, 0.05, steps=steps, record_every=record_every,
                                         record_iterates=record_iterates, workers=2)


def _stability_case():
    split = st.stability.synthetic_split()
    estimate = _limits.stability_bytes(100, 40, 2, split.train.dim, split.train.n_samples, split.test.n_samples, 2)
    return estimate, lambda: st.stability.stability_experiment(split, methods=("gd", "ssam"), steps=40,
                                                               n_trials=100, batch_size=None)


@pytest.mark.parametrize("case", [
    lambda: _simulate_case(False, st.Quadratic(np.linspace(1.0, 10.0, 10))),
    lambda: _simulate_case(True, st.Quadratic(np.linspace(1.0, 10.0, 10))),
    lambda: _simulate_case(False, st.Quadratic(np.linspace(1.0, 10.0, 10), rotation=0)),
    lambda: _simulate_case(False, st.datasets.make_least_squares(200, 10), steps=5),
    lambda: (_limits.dataset_bytes(100000, 10), lambda: st.datasets.make_logistic_regression(100000, 10)),
    _stability_case,
], ids=["simulate", "simulate-iterates", "simulate-rotated", "simulate-least-squares", "data", "stability"])
def test_memory_estimates_are_within_a_factor_of_two_of_the_peak(case):
    """The estimates are estimates: checked against tracemalloc's peak (NumPy reports its allocations to it)
    on requests large enough for the per-row arrays to dominate; within a factor 2 either way, as documented."""
    estimate, compute = case()
    peak = _traced_peak(compute)
    assert 0.5 <= estimate / peak <= 2.0, (estimate, peak)


def test_more_steps_than_the_limit_are_refused():
    with pytest.raises(ValueError, match="steps must be <= 1e[+]12"):
        st.simulate(st.Quadratic([1.0]), "gd", 0.1, steps=10**20)


# -- 5. absurd numbers ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, fragment", [
    (["regime", "--rtol", "1e-300"], "rtol must be >= 1e-12"),
    (["regime", "--rtol", "1e-11"], "use rtol >= 1.4e-11 or set divergence_steps"),
    (["regime", "--divergence-factor", "1e308", "--steps", "10"], "divergence_factor must be > 1 and <= 1e+100"),
    (["regime", "--steps", "100000000000000000000"], "steps must be <= 1e+12"),
    (["regime", "--divergence-steps", "100000000000000000000"], "divergence_steps must be <= 1e+12"),
    (["simulate", "--eta", "0.1", "--steps", "100000000000000000000"], "steps must be <= 1e+12"),
])
def test_absurd_numbers_are_one_line_errors(cli_error, argv, fragment):
    with hang_guard():
        assert fragment in cli_error(argv)


# -- 6. the bisection always ends, at a cost known in advance -----------------------------------------------------

def _cost_bound(eta_range, rtol, n_rho, n_points, budget):
    """The documented bound of _nondivergent_edge: 1 + 3·(R + 1) calls of ≤ 2·n_rho·n_points runs ≤ budget."""
    rounds = math.ceil(math.log2(math.log(eta_range[1] / eta_range[0]) / math.log1p(rtol)))
    return (1 + 3 * (rounds + 1)) * 2 * n_rho * n_points * budget


def test_bisection_with_a_short_budget_and_tiny_rtol_ends_within_its_bound(capsys):
    with hang_guard():
        assert main(["regime", "--method", "gd", "--rtol", "1e-6", "--divergence-steps", "100", "--steps", "100",
                     "--json"]) == 0
    row = _strict_json(capsys.readouterr().out)
    assert row["divergence_steps"] == 100
    problem = st.Quadratic([1.0, 10.0, 100.0])
    with hang_guard():
        result = st.stability.critical_learning_rate(problem, "gd", [0.0, 0.05], rtol=1e-6, divergence_steps=100,
                                                     steps=100)
    eta_range = (1e-4 * 2 / 100, 4 * 2 / 100)
    assert 0 < result.config_steps <= _cost_bound(eta_range, 1e-6, 2, 3, 100)


@pytest.mark.parametrize("method", ["gd", "sam", "usam", "ssam", "susam"])
def test_concave_quadratic_has_no_edge_and_says_why(method):
    with hang_guard():
        result = st.stability.critical_learning_rate(st.Quadratic([-1.0, -2.0]), method, [0.0, 0.05])
    assert np.isnan(result.value).all()
    assert all("no stable learning rate" in reason for reason in result.reason)
    assert result.config_steps == 0  # answered from the spectrum, before any simulation


def test_regime_on_a_concave_quadratic_answers_with_a_reason(capsys):
    with hang_guard():
        assert main(["regime", "--eigs=-1,-2", "--method", "gd", "--json"]) == 0
    row = _strict_json(capsys.readouterr().out)
    assert row["empirical_eta"] is None and "no stable learning rate" in row["note"]


def test_usam_with_a_large_radius_is_stable_along_a_concave_direction():
    """λ(1 + ρλ) > 0 for λ < −1/ρ: USAM contracts along such a direction for small η (no shortcut there)."""
    with hang_guard():
        result = st.stability.critical_learning_rate(st.Quadratic([-1.0, 10.0]), "usam", 2.0, rtol=1e-2)
    assert result.reason == ("",) and np.isfinite(result.value[0])


def test_measured_edge_on_a_concave_problem_without_a_shortcut_ends_within_its_bound():
    """Adaptive ascent has no spectral shortcut: the bisection measures, and still ends within its bound."""
    problem = st.Quadratic([-1.0, 2.0])
    rules = st.stability.ClassificationRules(steps=200, divergence_steps=400)
    with hang_guard():
        result = st.stability.critical_learning_rate(problem, "sam", 0.05, rtol=1e-4, rules=rules, adaptive=True)
    assert result.config_steps <= _cost_bound((1e-4, 4.0), 1e-4, 1, 3, 400)


# -- 8. messages name the argument -----------------------------------------------------------------------------

@pytest.mark.parametrize("argv, fragment", [
    (["simulate", "--eta", "0.1", "--rotation=-1"], "argument --rotation: rotation must be an integer >= 0"),
    (["simulate", "--eta", "0.1", "--rotation", str(2**32)], "rotation must be an integer >= 0 and <= 2**32 - 1"),
    (["simulate", "--eta", "0.1", "--problem", "logistic", "--data-seed=-1"], "argument --data-seed: data-seed must"),
    (["simulate", "--eta", "0.1", "--seed", "0,-1"], "argument --seed: seed must be an integer >= 0"),
    (["stability-gap", "--seed", "-5"], "argument --seed: seed must be an integer >= 0"),
])
def test_seed_messages_name_the_argument(cli_error, argv, fragment):
    assert fragment in cli_error(argv)


# -- 3. output paths checked before any work ----------------------------------------------------------------

@pytest.fixture
def no_figure_work(monkeypatch):
    from samtheory import figures as _figures

    monkeypatch.setattr(_figures, "run_figure", _never("run_figure"))


def _bad_folders(tmp_path):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "with_cache").mkdir()
    (tmp_path / "with_cache" / "cache").write_text("not a folder")
    return {
        "is a file": tmp_path / "a_file",
        "under a file": tmp_path / "a_file" / "out",
        "unwritable": Path("/proc/x"),
        "long component": tmp_path / ("n" * 300),
        "holds a file named cache": tmp_path / "with_cache",
    }


@pytest.mark.parametrize("case, fragment", [
    ("is a file", "must be a folder, got the file"),
    ("under a file", "lies under the file"),
    ("unwritable", "cannot be written"),
    ("long component", "component of 300 bytes"),
    ("holds a file named cache", "holds a file named 'cache'"),
])
def test_figures_out_is_checked_before_any_figure_is_computed(cli_error, tmp_path, no_figure_work, case, fragment):
    line = cli_error(["figures", "pep", "--quick", "--out", str(_bad_folders(tmp_path)[case])])
    assert line.startswith("samtheory figures: error: --out") and fragment in line


def test_figures_out_holding_a_folder_where_a_figure_goes_is_refused(cli_error, tmp_path, no_figure_work):
    (tmp_path / "pep.png").mkdir()
    assert "holds a folder named 'pep.png'" in cli_error(["figures", "pep", "--quick", "--out", str(tmp_path)])


@pytest.mark.parametrize("flag", ["--output", "--csv"])
@pytest.mark.parametrize("case, fragment", [
    ("folder", "is a folder"),
    ("under a file", "lies under the file"),
    ("unwritable", "cannot be written"),
    ("long component", "component of 300 bytes"),
])
def test_neural_outputs_are_checked_before_training(cli_error, tmp_path, monkeypatch, flag, case, fragment):
    """The CLI checks before importing torch, and the library before training (both are checked)."""
    from samtheory.repository import load_experiment

    neural = load_experiment("neural", Path(__file__).resolve().parents[1])

    (tmp_path / "a_file").write_text("x")
    path = {"folder": tmp_path, "under a file": tmp_path / "a_file" / "r.json", "unwritable": Path("/proc/x"),
            "long component": tmp_path / ("n" * 300)}[case]
    monkeypatch.setattr(neural, "train_run", _never("train_run"))
    monkeypatch.setattr(neural, "load_dataset", _never("load_dataset"))
    line = cli_error(["neural", "--quick", flag, str(path)])
    assert f"error: {flag} " in line and fragment in line
    with pytest.raises(ValueError, match=fragment):
        neural.run_neural_validation(**{flag[2:]: path})


def test_neural_output_and_csv_must_differ(cli_error, tmp_path):
    same = str(tmp_path / "r.json")
    assert "--output and --csv must be different files" in cli_error(["neural", "--output", same, "--csv", same])


def test_atomic_write_keeps_the_previous_file_and_leaves_no_partial_file(tmp_path):
    from samtheory._paths import write_atomically

    target = tmp_path / "results.json"
    target.write_text("previous")

    def interrupted(handle):
        handle.write("half of the new")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, interrupted)
    assert target.read_text() == "previous" and sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
    write_atomically(target, lambda handle: handle.write("new"))
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # usual permissions, not mkstemp's private ones


# -- 7. Ctrl-C and progress -------------------------------------------------------------------------------------

_READY = "samtheory-test: ready"


@pytest.mark.parametrize("argv", [
    ["simulate", "--eta", "0.001", "--steps", "100000000"],  # one chunk: the main thread unwinds
    ["simulate", "--eta", "0.001,0.002,0.003", "--rho", "0.01,0.02", "--steps", "100000000"],  # worker threads
    ["demo", "--steps", "100000000"],
    ["stability-gap", "--steps", "100000000"],
], ids=["simulate", "simulate-grid", "demo", "stability-gap"])
def test_ctrl_c_exits_with_130_and_one_line(argv, tmp_path):
    # The child says when its imports are done (a SIGINT during `import numpy` is Python's, not ours), then
    # runs main(): the signal is sent a second later, long before 10^8 steps end.
    script = (f"import sys; import samtheory.cli as cli; print({_READY!r}, file=sys.stderr, flush=True); "
              f"sys.exit(cli.main({argv!r}))")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               cwd=tmp_path, env=_cli_env(), text=True)
    try:
        assert process.stderr.readline().strip() == _READY
        import time

        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=HANG_GUARD_SECONDS)
    finally:
        process.kill()
    assert process.returncode == 130
    assert err.splitlines() == [f"samtheory {argv[0]}: interrupted"] and out == ""
    assert list(tmp_path.iterdir()) == []  # no partial file


def test_progress_is_shown_on_a_terminal_only(capsys, monkeypatch):
    assert main(["demo", "--steps", "20", "--json"]) == 0
    assert capsys.readouterr().err == ""  # stderr is not a terminal here
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["demo", "--steps", "20", "--json"]) == 0
    err = capsys.readouterr().err
    assert "demo" in err and "method" in err and "simulate" in err


# -- 8. the PEP: one line naming the arguments, solver output kept off stdout --------------------------------------

@pytest.mark.parametrize("argv, fragment", [
    (["pep", "--eta", "1e300"], "--eta 1e+300 --rho 0 --L 1 --R 1: the PEP's numbers overflow float64"),
    (["pep", "--rho", "1e300"], "--rho 1e+300"),
    (["pep", "--critical", "--rho", "1e300", "--steps", "2"], "--rho 1e+300 --steps 2"),
    (["pep", "--steps", "1000"], "--steps 1000 needs about"),
])
def test_pep_bad_numbers_are_one_line_naming_the_argument(cli_error, argv, fragment):
    with hang_guard():
        assert fragment in cli_error(argv)


def test_solver_output_never_reaches_stdout(capfd):
    """SCS prints "ERROR: could not determine problem status." from C on this input (captured at the file
    descriptor: capfd, not capsys); the failure is the documented exit status 1 with one line on stderr."""
    assert main(["pep", "--R", "1e300", "--json"]) == 1
    out, err = capfd.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and "solver failed" in err and "SCS" in err


def test_solver_silencing_keeps_python_output_in_order(capfd):
    from samtheory.convex import _solver

    print("before", flush=False)
    with _solver._stdout_silenced():
        os.write(1, b"from C\n")
        print("from PySys_WriteStdout")
    print("after")
    assert capfd.readouterr().out == "before\nafter\n"
