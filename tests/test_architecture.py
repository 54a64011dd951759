"""The layout of issue 10, kept by tests: one home per concept, imports that point downward, every closed form
once, no test that edits sys.path, experiments that use only the public API."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "samtheory"

# Layers, lowest first: a module may import from its own layer or a lower one, never from a higher one.
LAYERS = [
    {"_validation", "_limits", "_paths", "validation", "result"},
    {"methods", "problems", "datasets", "schedules"},
    {"engine", "_compiled", "_kernels"},
    {"theory", "stability", "convex", "torch"},
    {"plotting", "testing", "explorer", "figures", "_figures", "repository"},
    {"cli", "__main__"},
]
LAYER = {name: level for level, names in enumerate(LAYERS) for name in names}


def _modules():
    return [path for path in PACKAGE.rglob("*.py") if path.name != "__init__.py" or path.parent != PACKAGE]


def _top(path: Path) -> str:
    """The first component below samtheory/ of a module path (samtheory/stability/_measured.py -> stability)."""
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def _imported(path: Path) -> set[str]:
    """The samtheory top-level modules that ``path`` imports (absolute or relative)."""
    tree = ast.parse(path.read_text())
    depth = len(path.relative_to(PACKAGE).parts) - 1  # 0 for samtheory/x.py
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package path
                if node.level - 1 < depth:
                    continue  # inside the same subpackage
                base = [] if node.module is None else node.module.split(".")
                names = [".".join(["samtheory", *base, alias.name]) if not base else ".".join(["samtheory", *base])
                         for alias in node.names]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "samtheory" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_imports_point_downward():
    upward = []
    for path in _modules():
        own = _top(path)
        assert own in LAYER, f"{path.relative_to(ROOT)}: module {own!r} has no layer in tests/test_architecture.py"
        for target in _imported(path):
            if target in LAYER and LAYER[target] > LAYER[own]:
                upward.append(f"{path.relative_to(ROOT)} imports samtheory.{target}")
    assert upward == []


def test_only_the_cli_imports_the_cli():
    offenders = [str(p.relative_to(ROOT)) for p in _modules() if _top(p) not in ("cli", "__main__")
                 and "cli" in _imported(p)]
    assert offenders == []


def test_experiments_use_only_the_public_api():
    private = re.compile(r"^\s*(from|import)\s+samtheory(\.\w+)*\._\w+", re.M)
    private_from = re.compile(r"^\s*from\s+samtheory(\.\w+)*\s+import\s+.*\b_(?!_)\w+", re.M)  # not __version__
    offenders = []
    for path in sorted((ROOT / "experiments").glob("*.py")):
        text = path.read_text()
        if private.search(text) or private_from.search(text):
            offenders.append(path.name)
    assert offenders == []


def test_no_test_edits_sys_path():
    offenders = [p.name for p in (ROOT / "tests").glob("*.py")
                 if p.name != Path(__file__).name and "sys.path" in p.read_text()]
    assert offenders == []


def _code_without_strings(path: Path) -> str:
    """The Python source of ``path`` without its strings and comments (formulas in docstrings are text)."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    kept = [tok.string for tok in tokens if tok.type not in (tokenize.STRING, tokenize.COMMENT)
            and tok.type != getattr(tokenize, "FSTRING_MIDDLE", -1)]
    return " ".join(kept)


#: Fragments of the closed forms of docs/theory.md, as they are written in code.
FORMULAS = {
    "USAM's curvature λ(1 + ρλ) (O2)": r"\(\s*1(\.0)?\s*\+\s*[\w.]*rho\w*(\s*\[[^\]]*\])?\s*\*",
    "GD's threshold 2/λ (O1)": r"\b2(\.0)?\s*/\s*lam",
    "SAM's cycle a = ηρλ/(2 − ηλ) (O3)": r"/\s*\(\s*2(\.0)?\s*-\s*(eta|product)",
    "USAM's largest stable sharpness √(1 + 8ρ/η) (O2)": r"8(\.0)?\s*\*\s*rho",
}


@pytest.mark.parametrize("formula", FORMULAS)
def test_each_closed_form_is_written_once(formula):
    pattern = re.compile(FORMULAS[formula])
    homes = [str(path.relative_to(ROOT)) for path in sorted([*PACKAGE.rglob("*.py"), *(ROOT / "experiments").glob("*.py")])
             if pattern.search(_code_without_strings(path))]
    assert homes == ["samtheory/theory.py"], f"{formula} is written in {homes}"
