"""Property-based fuzzing of the command line (issue 15): hypothesis draws argument vectors from a grammar of
valid and invalid tokens for every subcommand and checks the CLI's contract on each.

The contract: exit status 0 or 2 (1 only for ``pep``'s documented solver failure), never a traceback, exactly
one line on stderr on error (none on success), strict JSON on stdout with ``--json``, and no case runs past
``CASE_SECONDS`` (a hang guard through ``signal.alarm``, not a speed assertion).

Budget: ``SAMTHEORY_FUZZ_EXAMPLES`` examples in all (default 300, under 2 minutes on a 2-core machine);
examples are derandomized, so CI sees the same ones each run and a larger budget explores further. Each
command starts from cheap settings (few steps, coarse tolerances) that the drawn flags may override: argparse
keeps the last occurrence of a flag. The two commands whose real work takes minutes run with their work
stubbed: ``figures`` (computing a figure) and ``neural`` (training one network), so that what is fuzzed is
the argument handling, the validation and the output writing around them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as strats

from samtheory import _limits
from samtheory.cli import build_parser, main

EXAMPLES = int(os.environ.get("SAMTHEORY_FUZZ_EXAMPLES", "300"))
CASE_SECONDS = 60

# -- tokens -------------------------------------------------------------------------------------------------
GARBAGE = ["", " ", "abc", "--", "-", "nan", "inf", "-inf", "1e400", "-1e400", "0x10", "1_0", "١٢", "é", "🙂",
           "$(touch /tmp/samtheory-fuzz-pwned)", "`id`", "; rm -rf /", "'\"", "a" * 300, "1,,2", ",", "1e-400",
           "\t1", "%s%n", "../../etc/passwd", "NaN,1", "1;2"]
FLOATS = ["0", "1", "-1", "0.5", "0.05", "2", "10", "1e-300", "1e300", "1e308", "-0.0", "5e-324", "0.001"]
SMALL_INTS = ["0", "1", "2", "3", "-1", "7", "20", "2.5", "1e3", "100000000000000000000", "4294967296"]
SEEDS = ["0", "1", "42", "-1", "4294967295", "4294967296", "1.0"]


def _lists(pool, size=4):
    return strats.lists(strats.sampled_from(pool), min_size=1, max_size=size).map(",".join)


def _value(pool):
    """A token of ``pool`` three times in four, else garbage."""
    return strats.integers(0, 3).flatmap(lambda k: strats.sampled_from(GARBAGE if k == 0 else pool))


def _flag(name, values=None):
    """``[name]`` for a switch, else ``[name, value]`` (one time in ten the value is missing: ``[name]``)."""
    if values is None:
        return strats.just([name])
    return strats.tuples(values, strats.integers(0, 9)).map(lambda t: [name] if t[1] == 0 else [name, t[0]])


PROBLEM_FLAGS = [
    _flag("--problem", _value(["quadratic", "least-squares", "logistic", "saddle", "factorization", "QUADRATIC"])),
    _flag("--eigs", strats.one_of(_lists(FLOATS), _value(["1,10,100", "-1,-2", "0", "1e300,1"]))),
    _flag("--rotation", _value(SEEDS)),
    _flag("--n-samples", _value(SMALL_INTS + ["100000000"])),
    _flag("--dim", _value(SMALL_INTS)),
    _flag("--l2", _value(FLOATS)),
    _flag("--data-seed", _value(SEEDS)),
]
METHODS = ["gd", "sam", "usam", "ssam", "susam", "all", "adam", "gd,sam", "GD", ""]


def _paths(tmp):
    names = ["out", "out/sub", "a_file", "a_file/x", "/proc/x", "n" * 300, "", ".", "folder_with_cache"]
    return [name if name.startswith("/") or not name else os.path.join(tmp, name) for name in names]


# Per command: the cheap starting argv and the flags hypothesis may add.
def _grammar(tmp):
    paths = _paths(tmp)
    common = [_flag("--json"), _flag("--bogus-flag", _value(FLOATS)), _flag("--help")]
    return {
        "simulate": (["--eta", "0.01", "--steps", "20"], PROBLEM_FLAGS + common + [
            _flag("--method", _value(METHODS)), _flag("--eta", strats.one_of(_lists(FLOATS), _value(FLOATS))),
            _flag("--rho", _lists(FLOATS)), _flag("--seed", _lists(SEEDS)), _flag("--steps", _value(SMALL_INTS)),
            _flag("--batch-size", _value(SMALL_INTS)), _flag("--adaptive"), _flag("--truncate"),
            _flag("--tol", _value(FLOATS))]),
        "demo": (["--steps", "20"], common + [_flag("--rho", _value(FLOATS)), _flag("--steps", _value(SMALL_INTS))]),
        "regime": (["--method", "gd", "--rtol", "0.1", "--steps", "30", "--divergence-steps", "30"],
                   PROBLEM_FLAGS + common + [
            _flag("--method", _value(METHODS)), _flag("--rho", _lists(FLOATS, 2)),
            _flag("--rtol", _value(["0.5", "0.1", "0.2", "0", "1", "2", "1e-300", "1e-12"])),
            _flag("--steps", _value(SMALL_INTS)), _flag("--divergence-steps", _value(SMALL_INTS)),
            _flag("--tol", _value(FLOATS)), _flag("--divergence-factor", _value(FLOATS + ["1e100", "1.5"])),
            _flag("--points", _value(SMALL_INTS + ["100000000"])), _flag("--seed", _value(SEEDS)),
            _flag("--eta-range", _value(["1e-3,1", "1,0.1", "0.1", "1e-300,1e300", "0,1", "0.01,0.02,0.03"])),
            _flag("--adaptive"), _flag("--truncate")]),
        "stability-gap": (["--quick", "--steps", "20", "--trials", "2"], common + [
            _flag("--data", _value(["synthetic", "breast-cancer", "breast_cancer", "mnist"])),
            _flag("--methods", _value(METHODS)), _flag("--eta", _value(FLOATS)), _flag("--rho", _value(FLOATS)),
            _flag("--steps", _value(SMALL_INTS)), _flag("--batch-size", _value(SMALL_INTS)),
            _flag("--trials", _value(SMALL_INTS + ["10000000"])), _flag("--seed", _value(SEEDS)),
            _flag("--quick")]),
        "pep": (["--steps", "2"], common + [
            _flag("--method", _value(["gd", "usam", "sam", ""])), _flag("--L", _value(FLOATS)),
            _flag("--mu", _value(FLOATS)), _flag("--eta", _lists(FLOATS, 2)), _flag("--rho", _lists(FLOATS, 2)),
            _flag("--steps", _lists(["1", "2", "3", "0", "-1", "1000"], 2)),
            _flag("--metric", _value(["function_value", "distance_squared", "gradient_norm_squared", "x"])),
            _flag("--R", _value(FLOATS)), _flag("--solver", _value(["CLARABEL", "SCS", "scs", "MOSEK"])),
            _flag("--critical")]),
        "figures": (["--quick"], [_flag("--help"), _flag("--bogus-flag", _value(FLOATS)), _flag("--list"),
                                  _flag("--force"), _flag("--quick"), _flag("--out", _value(paths)),
                                  strats.lists(_value(["pep", "renormalization", "sam-cycle", "nope", "x/../y"]),
                                               max_size=2)]),
        "neural": (["--quick", "--models", "mlp", "--methods", "gd", "--lr", "0.1", "--seeds", "0", "--epochs", "1",
                    "--n-samples", "200", "--hessian-samples", "0", "--no-progress", "--device", "cpu"], common + [
            _flag("--dataset", _value(["mnist1d", "digits", "cifar"])),
            _flag("--models", _value(["mlp", "cnn", "mlp,cnn", "resnet"])),
            _flag("--methods", _value(["gd", "sam,ssam", "adam"])), _flag("--lr", _lists(FLOATS, 2)),
            _flag("--seeds", _lists(SEEDS, 2)), _flag("--rho", _value(FLOATS)),
            _flag("--epochs", _value(["1", "0", "-1", "2.5"])), _flag("--batch-size", _value(SMALL_INTS)),
            _flag("--momentum", _value(FLOATS)), _flag("--adaptive"), _flag("--truncate"),
            _flag("--n-samples", _value(["20", "200", "0", "-1", "100000000"])),
            _flag("--hessian-samples", _value(["0", "-1", "10"])), _flag("--device", _value(["cpu", "tpu"])),
            _flag("--dtype", _value(["float32", "float64", "bfloat16", "int8"])),
            _flag("--threads", _value(["1", "0", "-1"])),
            _flag("--output", _value(paths)), _flag("--csv", _value(paths))]),
    }


def _argv(tmp):
    grammar = _grammar(tmp)

    @strats.composite
    def draw(draw_):
        command = draw_(strats.sampled_from(sorted(grammar)))
        start, flags = grammar[command]
        chosen = draw_(strats.lists(strats.sampled_from(range(len(flags))), max_size=4))
        argv = [command, *start]
        for index in chosen:
            argv += draw_(flags[index])
        return argv

    return draw()


# -- the stubs for the two slow commands -----------------------------------------------------------------------

def _stub_slow_work(monkeypatch):
    from samtheory import figures as _figures

    def fake_figure(name, *, quick, out_dir, cache_dir, force, directory=None):
        return _figures.FigureRun(name, [os.path.join(str(out_dir), f"{name}.png")], False, 0.0, 0.0)

    monkeypatch.setattr(_figures, "run_figure", fake_figure)
    from samtheory import repository

    torch_neural = repository.load_experiment("neural", Path(__file__).resolve().parents[1])  # needs torch
    real_train_run = torch_neural.train_run

    def one_step(model_name, method, lr, seed, data, **settings):
        settings["epochs"] = 1  # the real training code, on a few samples and one epoch
        small = torch_neural.Dataset(data.name, data.x_train[:32], data.y_train[:32], data.x_test[:16],
                                     data.y_test[:16])
        settings["batch_size"] = min(settings["batch_size"], 32)
        return real_train_run(model_name, method, lr, seed, small, **settings)

    monkeypatch.setattr(torch_neural, "train_run", one_step)
    monkeypatch.setattr(repository, "load_experiment", lambda name, root=None: torch_neural)


def _prepare(tmp):
    with open(os.path.join(tmp, "a_file"), "w") as handle:
        handle.write("x")
    os.makedirs(os.path.join(tmp, "folder_with_cache"), exist_ok=True)
    with open(os.path.join(tmp, "folder_with_cache", "cache"), "w") as handle:
        handle.write("x")


# -- the property -------------------------------------------------------------------------------------------

def _strict_json(text: str):
    def refuse(constant):
        raise AssertionError(f"non-strict JSON constant {constant} in output")
    return json.loads(text, parse_constant=refuse)


def _run(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()

    def expire(signum, frame):
        raise AssertionError(f"samtheory {' '.join(argv)[:300]} still running after {CASE_SECONDS} s: a hang")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(CASE_SECONDS)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as exit_:  # argparse: errors, --help
                code = exit_.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return code, out.getvalue(), err.getvalue()


def check_contract(argv, code, out, err):
    """The CLI's promises for one argument vector (see the module docstring)."""
    shown = " ".join(argv)[:400]
    assert "Traceback" not in err, (shown, err)
    if code == 0:
        assert err == "", (shown, err)
        if "--json" in argv and "--help" not in argv and "--list" not in argv:
            _strict_json(out)
        return
    lines = err.strip().splitlines()
    assert len(lines) == 1, (shown, err)
    if code == 1:
        assert argv[0] == "pep" and "solver failed" in lines[0], (shown, err)
        return
    assert code == 2, (shown, code, err)
    assert "error:" in lines[0], (shown, err)


@pytest.fixture(scope="module")
def fuzz_folder(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("fuzz"))
    _prepare(folder)
    return folder


@pytest.fixture(autouse=True)
def default_memory_limit(monkeypatch):
    monkeypatch.delenv(_limits.MAX_MEMORY_ENV, raising=False)


def test_every_subcommand_is_in_the_grammar(fuzz_folder):
    parser = build_parser()
    commands = next(action.choices for action in parser._actions if isinstance(getattr(action, "choices", None),
                                                                               dict))
    assert set(commands) == set(_grammar(fuzz_folder))


def test_the_contract_holds_on_the_documented_hostile_cases(fuzz_folder, monkeypatch):
    """A few vectors from the issue, always run whatever hypothesis draws."""
    monkeypatch.chdir(fuzz_folder)  # whatever the CLI writes for a relative path lands here, not in the clone
    _stub_slow_work(monkeypatch)
    for argv in (["simulate", "--eta", "0.01", "--eigs", "1e300", "--steps", "50", "--json"],
                 ["regime", "--rtol", "1e-300"], ["pep", "--eta", "1e300"], ["pep", "--R", "1e300", "--json"],
                 ["figures", "x/../../evil"], ["neural", "--output", "/proc/x"],
                 ["simulate", "--eta", "0.1", "--rotation=-1"]):
        check_contract(argv, *_run(argv))


def test_fuzzed_argument_vectors_keep_the_contract(fuzz_folder, monkeypatch):
    monkeypatch.chdir(fuzz_folder)  # whatever the CLI writes for a relative path lands here, not in the clone
    _stub_slow_work(monkeypatch)
    pwned = "/tmp/samtheory-fuzz-pwned"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(pwned)

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(_argv(fuzz_folder))
    def case(argv):
        check_contract(argv, *_run(argv))

    case()
    assert not os.path.exists(pwned)  # no token was ever run by a shell
