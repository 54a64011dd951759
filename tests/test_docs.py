"""docs/theory.md stays in sync with the repository: one section per oracle O1–O18, each saying what checks it;
every test it names exists; every oracle number cited in the code, tests, experiments and READMEs is defined there."""

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THEORY = ROOT / "docs" / "theory.md"
ORACLES = list(range(1, 19))  # numbered as THEORY.md
ORACLE_HEADING = re.compile(r"^### O(\d+) (.*)$")
SECTION_END = re.compile(r"^#{1,3} ")
SOURCE_TAG = re.compile(r"\[[^\]]+\]")  # [classical], [derived; lit: ...], ...
TEST_ID = re.compile(r"(tests/[\w/]+\.py)((?:::\w+)+)")
# An oracle citation: O followed by digits, not inside a word (but `_O4_` in a test name counts).
CITATION = re.compile(r"(?<![A-Za-z0-9])O(\d+)(?!\d)")
SCANNED = ["samtheory", "tests", "experiments", "benchmarks", "README.md", "figures/README.md", "docs/theory.md"]


def _theory_lines():
    return THEORY.read_text(encoding="utf-8").splitlines()


def oracle_sections(lines):
    """[(number, heading title, body lines)] in document order."""
    sections = []
    for line in lines:
        heading = ORACLE_HEADING.match(line)
        if heading:
            sections.append((int(heading.group(1)), heading.group(2), []))
        elif SECTION_END.match(line):
            sections.append((None, None, []))  # a body ends at the next heading of level ≤ 3
        elif sections:
            sections[-1][2].append(line)
    return [section for section in sections if section[0] is not None]


@cache
def defined_names(path):
    """Names of every function and class defined in a Python file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def missing_tests(text):
    """(named test ids, those that do not exist in the repository)."""
    named, missing = [], []
    for match in TEST_ID.finditer(text):
        path, names = ROOT / match.group(1), match.group(2).split("::")[1:]
        named.append(match.group(0))
        if not path.is_file() or not set(names) <= defined_names(path):
            missing.append(match.group(0))
    return named, missing


def cited_oracles():
    """{oracle number: ['file:line', ...] citing it} over the scanned .py and .md files."""
    files = []
    for entry in SCANNED:
        path = ROOT / entry
        files += sorted(p for p in path.rglob("*") if p.suffix in {".py", ".md"}) if path.is_dir() else [path]
    cited = {}
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in CITATION.finditer(line):
                cited.setdefault(int(match.group(1)), []).append(f"{path.relative_to(ROOT)}:{number}")
    return cited


def test_every_oracle_has_one_section_in_order_with_its_source():
    sections = oracle_sections(_theory_lines())
    assert [number for number, _, _ in sections] == ORACLES
    untagged = [f"O{number}" for number, title, _ in sections if not SOURCE_TAG.search(title)]
    assert not untagged, f"oracle headings without a [source] tag: {untagged}"


def test_every_oracle_says_what_checks_it():
    for number, _, body in oracle_sections(_theory_lines()):
        checked = [line for line in body if line.startswith("Checked by:")]
        assert len(checked) == 1, f"O{number} needs exactly one 'Checked by:' line, has {len(checked)}"
        named, _ = missing_tests(checked[0])
        assert named or re.search(r"not yet implemented \(issue \d+\)", checked[0]), (
            f"O{number}: 'Checked by:' names no test (file::name) and no issue: {checked[0]!r}")


def test_every_test_named_in_the_doc_exists():
    named, missing = missing_tests(THEORY.read_text(encoding="utf-8"))
    assert len(named) >= 50, f"only {len(named)} test ids parsed: has the 'file::name' format changed?"
    assert not missing, f"docs/theory.md names tests that do not exist: {missing}"


def test_every_cited_oracle_is_defined_in_the_doc():
    defined = {number for number, _, _ in oracle_sections(_theory_lines())}
    cited = cited_oracles()
    outside_the_doc = {number for number, where in cited.items() if any(not w.startswith("docs/") for w in where)}
    assert len(outside_the_doc) >= 10, f"the scan found only {sorted(outside_the_doc)} cited outside docs/"
    undefined = {f"O{number}": where[:3] for number, where in cited.items() if number not in defined}
    assert not undefined, f"oracles cited but not defined in docs/theory.md: {undefined}"


def test_the_doc_ends_with_the_architecture_section():
    headings = [line for line in _theory_lines() if line.startswith("## ")]
    assert headings[-1] == "## Architecture"
