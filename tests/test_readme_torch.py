"""The README's PyTorch integration patterns run as written (all but DDP, which needs a launcher:
tests/test_torch_training.py runs it on 2 gloo processes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _pattern_blocks():
    text = README.read_text()
    section = text[text.index("### Integration patterns"):text.index("**Equal to the NumPy engine.**")]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_section_shows_every_pattern():
    section = "\n".join(_pattern_blocks())
    for needle in ("frozen_running_stats", "GradScaler", "micro_batches", "max_grad_norm", "torch.compile",
                   "ascent_mode=\"per_replica\"", "asam_param_groups"):
        assert needle in section


@pytest.mark.parametrize("index", range(1, 7))
def test_readme_integration_pattern_runs(index):
    import torch

    blocks = _pattern_blocks()
    assert len(blocks) == 8  # set-up, six patterns, DDP
    torch._dynamo.reset()  # compiled graphs of earlier tests (dynamic shapes) must not leak into the compile pattern
    namespace: dict = {}
    exec(compile(blocks[0], "README set-up", "exec"), namespace)
    exec(compile(blocks[index], f"README pattern {index}", "exec"), namespace)
