"""benchmarks/gpu_check.py runs on the CPU (--device cpu --quick), so that a lent GPU only has to run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_smoke_runs_on_cpu_and_writes_every_check(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this clone's samtheory, in the script and its subprocess
    completed = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu",
                                "--quick", "--out", str(out)], capture_output=True, text=True, timeout=300,
                               cwd=ROOT, env=env)
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads(out.read_text())
    assert set(report["checks"]) == {"equivalence", "amp", "overhead", "neural"}
    assert report["passed"] and all(check["passed"] for check in report["checks"].values())
    assert max(report["checks"]["equivalence"]["relative_errors"].values()) <= 1e-10
