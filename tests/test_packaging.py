"""The README's two commands, CI, and lazy imports."""

import re
import subprocess
import sys
from pathlib import Path

import samtheory.methods as samtheory_methods

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text, flags=re.S)[:2]


def test_readme_opens_with_two_commands_and_ci_runs_the_second_verbatim():
    main_job, tests = _readme_commands()
    assert main_job.startswith("pip install") and "samtheory" in main_job
    assert "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci


def test_import_is_light():
    """`import samtheory` loads neither torch nor cvxpy (optional / slow to import)."""
    code = "import sys, samtheory; print(sorted(m for m in ('torch', 'cvxpy', 'jax') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_names():
    import samtheory

    for name in samtheory.__all__:
        assert hasattr(samtheory, name), name


def test_readme_engine_examples_run():
    """The Python examples of the README's engine section run as written."""
    text = (ROOT / "README.md").read_text()
    section = text.split("<!-- section: engine -->")[1].split("<!-- end section: engine -->")[0]
    blocks = re.findall(r"```python\n(.+?)\n```", section, flags=re.S)
    assert len(blocks) >= 2
    registry = dict(samtheory_methods.METHODS)
    try:
        for block in blocks:
            namespace = {}
            exec(compile(block, "README.md", "exec"), namespace)
    finally:  # an example registers a method: leave the registry as it was for the other tests
        samtheory_methods.METHODS.clear()
        samtheory_methods.METHODS.update(registry)
