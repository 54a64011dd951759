"""Output paths checked before any work starts, and files written atomically (private).

A bad output path (a folder where a file goes, a path under a file, a folder that cannot be written, a name
longer than the file system allows) is refused with a one-line ``ValueError`` naming the argument before any
computation, so that no finished work is lost to it. Files are written to a temporary file in the same folder
and renamed over the target (``os.replace``): an interrupted write leaves the previous file intact and no
partial file behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

__all__ = ["check_output_file", "check_output_folder", "replacing", "write_atomically"]

_FALLBACK_NAME_MAX = 255
_FALLBACK_PATH_MAX = 4096


def _shown(path) -> str:
    text = repr(str(path))
    return text if len(text) <= 80 else text[:60] + "..." + text[-17:]


def _as_path(name: str, path) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(path).__name__}")
    text = os.fspath(path)
    if isinstance(text, bytes) or not text.strip():
        raise ValueError(f"{name} must be a non-empty path, got {_shown(text)}")
    if "\0" in text:
        raise ValueError(f"{name} must not contain a NUL character, got {_shown(text)}")
    return Path(text).expanduser()


def _existing_folder(name: str, path: Path, start: Path) -> Path:
    """The deepest existing folder at or above ``start`` (absolute); a file on the way is refused."""
    current = start.absolute()
    while not os.path.lexists(current):
        current = current.parent
    if not current.is_dir():
        if current == path.absolute():
            raise ValueError(f"{name} must be a folder, got the file {_shown(path)}")
        raise ValueError(f"{name} {_shown(path)} lies under the file {_shown(current)}, which is not a folder")
    return current


def _check_lengths(name: str, path: Path) -> None:
    """Each component within the file system's name limit and the whole within its path limit (checked
    first: longer paths make the existence tests themselves fail)."""
    try:
        name_max = os.pathconf(path.absolute().anchor or os.sep, "PC_NAME_MAX")
        path_max = os.pathconf(path.absolute().anchor or os.sep, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):
        name_max, path_max = _FALLBACK_NAME_MAX, _FALLBACK_PATH_MAX
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > name_max:
            raise ValueError(f"{name} has a component of {size} bytes ({_shown(part)}), more than the file "
                             f"system's limit of {name_max}")
    size = len(os.fsencode(str(path.absolute())))
    if size >= path_max:
        raise ValueError(f"{name} is {size} bytes long, more than the file system's limit of {path_max}")


def _check_writable(name: str, path: Path, folder: Path) -> None:
    """Create and remove a file in ``folder``: the one test of writability that holds for every user (root
    included) and every file system (read-only mounts, /proc)."""
    try:
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".samtheory-probe-")
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise ValueError(f"{name} {_shown(path)} cannot be written: no file can be created in "
                         f"{_shown(folder)} ({reason})") from None
    os.close(handle)
    os.unlink(probe)


def check_output_file(name: str, path) -> Path:
    """Check that ``path`` can be written as a file, before any work.

    Parameters
    ----------
    name : str
        The argument's name in messages (``"output"``, ``"--csv"``).
    path : str or os.PathLike
        The file to be written: a regular file (replaced) or a new name; missing parent folders are allowed
        (they are created when writing).

    Returns
    -------
    Path
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = _as_path(name, path)
    _check_lengths(name, path)
    if os.path.lexists(path):
        if path.is_dir():
            raise ValueError(f"{name} {_shown(path)} is a folder; give a file path")
        if not path.is_file():  # a device, a pipe or a dangling link: a rename would replace it, not write it
            raise ValueError(f"{name} {_shown(path)} exists but is not a regular file")
    _check_writable(name, path, _existing_folder(name, path, path.parent))
    return path


def check_output_folder(name: str, path, *, folders=(), files=()) -> Path:
    """Check that ``path`` can be used (or created) as an output folder, before any work.

    Parameters
    ----------
    name : str
        The argument's name in messages (``"--out"``).
    path : str or os.PathLike
        The folder; it may not exist yet.
    folders, files : iterable of str
        Names inside it that will be folders (e.g. ``"cache"``) or files (``"pep.png"``): a file where a
        folder goes, or a folder where a file goes, is refused.

    Returns
    -------
    Path
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = _as_path(name, path)
    _check_lengths(name, path)
    folder = _existing_folder(name, path, path)
    for inner in folders:
        target = path / inner
        _check_lengths(name, target)
        if os.path.lexists(target) and not target.is_dir():
            raise ValueError(f"{name} {_shown(path)} holds a file named {inner!r} where the folder {inner}/ goes")
    for inner in files:
        target = path / inner
        _check_lengths(name, target)
        if target.is_dir():
            raise ValueError(f"{name} {_shown(path)} holds a folder named {inner!r} where the file {inner} goes")
    _check_writable(name, path, folder)
    return path


@contextlib.contextmanager
def replacing(*paths):
    """Write files atomically: yields one temporary path in the folder of each of ``paths``; when the block
    ends without an exception, each temporary file is renamed over its path (``os.replace``), else removed.
    A path that is a symbolic link is written through: the file it points to is replaced, the link kept.

    Parameters
    ----------
    *paths : path-like
        The files to write; their folders must exist.

    Yields
    ------
    list of Path
        The temporary paths to write to, in the order of ``paths`` (each ends in ``.partial`` plus the final
        suffix, so writers that pick a format from the suffix see the right one).
    """
    paths = [Path(p).resolve() if Path(p).is_symlink() else Path(p) for p in paths]
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    temporary = [p.with_name(f".{p.stem[:200]}.{token}.partial{p.suffix}") for p in paths]
    try:
        yield temporary
        for temp, path in zip(temporary, paths):
            os.replace(temp, path)
    finally:
        for temp in temporary:
            temp.unlink(missing_ok=True)


def write_atomically(path, write, *, mode: str = "w", **open_options) -> Path:
    """Write ``path`` through ``write(handle)`` into a temporary file in the same folder, then rename it over
    ``path`` (:func:`replacing`): readers see the old file or the whole new one, and an exception (Ctrl-C
    included) removes the temporary file and leaves the old file as it was.

    Parameters
    ----------
    path : str or os.PathLike
        The target; missing parent folders are created.
    write : callable
        ``write(handle)`` writes the content to the open file.
    mode : str
        ``"w"`` (text) or ``"wb"`` (bytes); ``open_options`` go to :func:`open` (e.g. ``newline=""``).

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as (temporary,):
        with open(temporary, mode, **open_options) as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
    return path
