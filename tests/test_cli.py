"""The command line: JSON contract, tables, one-line errors with exit status 2."""

import json
import subprocess
import sys

import pytest

from samtheory.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_simulate_json_contract(capsys):
    code, out, _ = run_cli(capsys, "simulate", "--problem", "quadratic", "--eigs", "1,10,100", "--method", "usam",
                           "--eta", "0.003", "--rho", "0.05", "--steps", "3000", "--seed", "0", "--json")
    assert code == 0
    record = json.loads(out)
    for key in ("method", "eta", "rho", "status", "final_loss", "final_grad_norm", "diverged_at", "steps"):
        assert key in record
    assert record["method"] == "usam" and record["steps"] == 3000 and record["diverged_at"] is None
    # η = 0.003 < 2/(100·6) = 0.00333: USAM converges (O2).
    assert record["status"] == "converged"


def test_simulate_grid_gives_a_list_and_reports_divergence(capsys):
    code, out, _ = run_cli(capsys, "simulate", "--method", "usam", "--eta", "0.003,0.004", "--rho", "0.05",
                           "--seed", "0,1", "--steps", "2000", "--json")
    records = json.loads(out)
    assert code == 0 and len(records) == 4
    diverged = [r for r in records if r["eta"] == 0.004]
    assert all(r["status"] == "diverged" and isinstance(r["diverged_at"], int) for r in diverged)


def test_simulate_table(capsys):
    code, out, _ = run_cli(capsys, "simulate", "--eta", "0.01", "--problem", "logistic", "--batch-size", "10")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].split()[:3] == ["method", "eta", "rho"] and len(lines) == 3


@pytest.mark.parametrize("argv, fragment", [
    (["simulate", "--eta", "-1"], "eta must be > 0"),
    (["simulate", "--eta", "0.1", "--method", "adam"], "method must be one of gd, sam, usam, ssam, susam"),
    (["simulate", "--eta", "0.1", "--steps", "0"], "steps must be an integer >= 1"),
    (["simulate", "--eta", "0.1", "--eigs", "1,x"], "expected comma-separated numbers"),
    (["simulate", "--eta", "nan"], "expected finite comma-separated numbers"),
    (["simulate", "--eta", "0.1", "--problem", "logistic", "--batch-size", "5000"], "batch_size must be <="),
    (["simulate"], "required: --eta"),
    (["no-such-command"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_2(cli_error, argv, fragment):
    assert fragment in cli_error(argv)


def test_console_script_runs_without_traceback():
    ok = subprocess.run([sys.executable, "-m", "samtheory", "demo", "--steps", "200", "--json"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0
    rows = json.loads(ok.stdout)
    assert {r["method"] for r in rows} == {"gd", "sam", "usam", "ssam", "susam"}
    bad = subprocess.run([sys.executable, "-m", "samtheory", "simulate", "--eta", "0.1", "--rho", "-2"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "rho must be >= 0" in bad.stderr


def test_missing_optional_dependency_is_one_line(monkeypatch, capsys):
    """A command that needs an optional extra says so in one line (exit 2), e.g. scikit-learn's data."""
    import builtins

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    code = main(["stability-gap", "--data", "breast-cancer", "--quick"])
    err = capsys.readouterr().err
    assert code == 2 and "scikit-learn" in err and len(err.strip().splitlines()) == 1
