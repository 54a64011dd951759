"""Every public function and class of samtheory documents every parameter (numpydoc ``Parameters``), as scipy
does: a newcomer reads the signature and its meaning in one place."""

from __future__ import annotations

import importlib
import inspect
import re

import pytest

MODULES = [
    "samtheory.engine", "samtheory.methods", "samtheory.problems", "samtheory.datasets", "samtheory.result",
    "samtheory.theory", "samtheory.stability", "samtheory.convex.optima", "samtheory.convex.pep",
    "samtheory.testing", "samtheory.plotting", "samtheory.explorer", "samtheory.torch.optimizer",
    "samtheory.torch.hessian",
]


def _public(module_name):
    module = importlib.import_module(module_name)
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            yield f"{module_name}.{name}", obj


def _documented_parameters(doc: str) -> set[str]:
    """Names listed in the numpydoc Parameters (and Other Parameters) sections of a cleaned (``inspect.getdoc``)
    docstring: the ``a, b : type`` (or bare ``a``) lines at column 0, up to the next section header (a line over
    dashes)."""
    sections = re.findall(r"^(?:Other )?Parameters\n-{3,}\n(.*?)(?=^\S[^\n]*\n-{3,}$|\Z)", doc, flags=re.S | re.M)
    names = set()
    for line in "\n".join(sections).splitlines():
        head = re.match(r"([\w*][\w*, ]*?)\s*(:|$)", line)  # indented lines are descriptions
        if head:
            names.update(part.strip().lstrip("*") for part in head.group(1).split(","))
    return names


def test_the_parser_reads_names_not_descriptions_and_stops_at_any_section():
    doc = inspect.cleandoc("""Summary.

        Parameters
        ----------
        eta, rho : array_like
            Learning rate and radius
            tol
        steps
        **rules
            Extra.

        Other Parameters
        ----------------
        rarely : int

        References
        ----------
        Foret : 2021
        """)
    assert _documented_parameters(doc) == {"eta", "rho", "steps", "rules", "rarely"}
    assert _documented_parameters("Summary.\n\nReturns\n-------\nfloat") == set()


def _parameters(obj) -> list[str]:
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return []
    return [p.name for p in signature.parameters.values()
            if p.name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


CASES = [case for module in MODULES for case in _public(module)]


@pytest.mark.parametrize("qualified, obj", CASES, ids=[c[0] for c in CASES])
def test_public_callables_document_every_parameter(qualified, obj):
    if inspect.isclass(obj) and obj.__init__ is object.__init__:
        return  # nothing to document
    parameters = _parameters(obj)
    if inspect.isclass(obj) and getattr(obj, "__dataclass_fields__", None):
        doc = inspect.getdoc(obj) or ""
        section = "Attributes" if "Attributes\n" in doc else "Parameters"
        documented = _documented_parameters(doc.replace("Attributes\n", "Parameters\n")) if section else set()
    else:
        doc = inspect.getdoc(obj) or ""
        if inspect.isclass(obj):
            doc += "\n" + (inspect.getdoc(obj.__init__) or "")
        documented = _documented_parameters(doc)
    missing = [name for name in parameters if name not in documented]
    assert not missing, f"{qualified}: parameters not documented in its docstring: {missing}"
