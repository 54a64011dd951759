"""Regression tests for hostile and careless input (issue 15): each case here failed before its fix."""

from __future__ import annotations

import json

import numpy as np
import pytest

import samtheory as st
from samtheory.cli import main


def _strict_json(text: str):
    """Parse ``text`` as strict JSON: NaN, Infinity and -Infinity are refused, as RFC 8259 does."""
    def refuse(constant):
        raise AssertionError(f"non-strict JSON constant {constant} in output")
    return json.loads(text, parse_constant=refuse)


# -- no code execution through a figure name -------------------------------------------------------------------

def test_figure_name_cannot_reach_a_file_outside_the_figure_folder(cli_error):
    import tempfile
    from pathlib import Path

    # No hyphen in the folder's path: the loader maps '-' to '_', which would hide the attack.
    with tempfile.TemporaryDirectory(prefix="samtheory_evil_") as folder:
        _attack_figure_loader(Path(folder), cli_error)


def _attack_figure_loader(tmp_path, cli_error):
    marker = tmp_path / "ran"
    for script in ("evil.py", "fig_evil.py"):  # the loader used to resolve experiments/fig_<name>.py
        (tmp_path / script).write_text(f"open({str(marker)!r}, 'w').write('executed')\n")
    from samtheory import figures as _figures

    relative = "x/" + "/".join([".."] * 12) + str(tmp_path / "evil")
    for name in (relative, str(tmp_path / "evil"), "../" * 8 + str(tmp_path)[1:] + "/evil"):
        with pytest.raises(ValueError, match="unknown figure"):
            _figures.load(name)
        assert "unknown figure" in cli_error(["figures", name])
    assert not marker.exists()


def test_figure_name_is_looked_up_among_the_registered_names(cli_error):
    from samtheory import figures as _figures

    names = _figures.figure_names()
    assert names  # the repository's figures are registered
    line = cli_error(["figures", "x" * 5000])
    assert len(line) < 1000 and "unknown figure" in line


# -- strict JSON: no NaN or Infinity in any output ------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["--eta", "0.01", "--eigs", "1e200"],
    ["--eta", "0.01", "--eigs", "1e300"],
    ["--eta", "1e300"],
    ["--eta", "0.01", "--problem", "logistic", "--l2", "1e308"],
])
def test_simulate_json_is_strict_and_marks_overflow_with_null(argv, capsys):
    assert main(["simulate", *argv, "--steps", "50", "--json"]) == 0
    record = _strict_json(capsys.readouterr().out)
    assert record["status"] == "diverged"
    for key in ("final_loss", "final_grad_norm", "final_distance"):
        assert record[key] is None or np.isfinite(record[key])


def test_stability_gap_json_is_strict_when_every_trial_diverges(capsys):
    assert main(["stability-gap", "--eta", "1000", "--quick", "--json", "--methods", "gd,ssam"]) == 0
    records = _strict_json(capsys.readouterr().out)
    for record in records:
        assert record["status"] == "all_diverged" and record["n_diverged"] == record["n_trials"]
        assert record["divergence"] is None and record["generalization_gap"] is None


def test_diverged_rows_report_inf_never_nan():
    result = st.simulate(st.Quadratic([1e200, 1.0]), "ssam", [0.01, 1e-205], 0.05, steps=50)
    assert result.status.tolist() == [st.DIVERGED, st.BOUNDED]
    for field in (result.loss, result.grad_norm, result.distance):
        assert not np.isnan(field).any()
    assert np.isfinite(result.x).all()
    assert np.isfinite(result.loss[1]) and np.isfinite(result.grad_norm[1])


def test_row_norm_of_an_infinite_row_is_inf():
    from samtheory.methods import _row_norm

    rows = np.array([[np.inf, 1.0, 0.0], [3.0, 4.0, 0.0], [-np.inf, np.inf, 2.0]])
    assert _row_norm(rows).tolist() == [np.inf, 5.0, np.inf]
