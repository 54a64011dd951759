"""The repository a command runs in: its figure scripts and experiments, found from the working directory.

The package never locates the repository through its own file path (an installed samtheory has none): the
``figures`` and ``neural`` commands look for a samtheory clone at the working directory or above it, or use
``--root``. Only files of the clone's ``experiments/`` folder are imported, and only by exact name.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["find_root", "experiments_dir", "load_experiment", "load_file"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LOADED: dict[Path, ModuleType] = {}


def _is_clone(folder: Path) -> bool:
    project = folder / "pyproject.toml"
    if not ((folder / "experiments").is_dir() and project.is_file()):
        return False
    try:
        return re.search(r'^name\s*=\s*"samtheory"', project.read_text(errors="replace"), flags=re.M) is not None
    except OSError:
        return False


def find_root(root=None) -> Path:
    """The root of the samtheory clone: ``root`` if given (checked), else the working directory or the nearest
    folder above it that holds ``experiments/`` and a ``pyproject.toml`` naming samtheory.

    Parameters
    ----------
    root : str or path-like, optional
        The clone's root folder.

    Returns
    -------
    Path
        The resolved root; ``ValueError`` (one line) where there is no clone.
    """
    if root is not None:
        folder = Path(root).expanduser()
        if not _is_clone(folder):
            raise ValueError(f"root: {str(root)[:200]!r} is not a samtheory clone (no experiments/ folder and "
                             "pyproject.toml naming samtheory there)")
        return folder.resolve()
    start = Path.cwd().resolve()
    for folder in (start, *start.parents):
        if _is_clone(folder):
            return folder
    raise ValueError(f"cannot find the experiments: {str(start)[:200]!r} is not inside a samtheory clone (run from "
                     "a clone of the repository, or pass --root)")


def experiments_dir(root=None) -> Path:
    """``experiments/`` of the clone (:func:`find_root`)."""
    return find_root(root) / "experiments"


def load_experiment(name: str, root=None) -> ModuleType:
    """Import ``experiments/<name>.py`` of the clone once (later calls return the same module).

    Parameters
    ----------
    name : str
        A module name (letters, digits, underscores), never a path.
    root : str or path-like, optional
        The clone's root (default: :func:`find_root`).

    Returns
    -------
    module
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"name must be a module name (letters, digits, underscores), got {name!r:.80}")
    path = experiments_dir(root) / f"{name}.py"
    if not path.is_file():
        raise ValueError(f"there is no experiment {name!r} in {str(path.parent)!r}")
    return load_file(path, name)


def load_file(path, name: str) -> ModuleType:
    """Import the Python file ``path`` once, as ``samtheory_experiments.<name>`` (later calls return the same
    module). Callers pass only paths they built from a validated name inside ``experiments/``."""
    path = Path(path).resolve()
    if path not in _LOADED:
        spec = importlib.util.spec_from_file_location(f"samtheory_experiments.{name}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[spec.name]
            raise
        _LOADED[path] = module
    return _LOADED[path]
