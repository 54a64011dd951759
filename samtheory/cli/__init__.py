"""The ``samtheory`` command line. Each sub-command lives in a module ``samtheory/cli/_cmd_<name>.py``
exposing ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``; modules are discovered,
so adding a command touches no other file.

Exit status: 0 on success; 2 for bad input, printed as one line on stderr (an unknown or misspelled flag, a
value out of range, a request over the memory limit, arguments whose numbers overflow float64); 1 for a
documented solver failure (``samtheory pep``); 141 (128 + SIGPIPE) when stdout is closed early, as Unix tools
report, with nothing on stderr; 130 (128 + SIGINT) on Ctrl-C, with one line on stderr. Never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import signal
import sys
import threading
import warnings

__all__ = ["main", "run_figure_script"]

# Ctrl-C unwinds normally (finally blocks remove temporary files); a simulate worker thread cannot be
# interrupted, so if unwinding waits for one longer than this the process exits at once with the same status.
_INTERRUPT_GRACE_SECONDS = 2.0


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        # No prefix matching: later commands add flags with shared prefixes (--data must not mean --data-seed).
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):  # one line, exit 2, no usage dump
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def _commands():
    package = importlib.import_module(__name__)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_cmd_"):
            yield info.name[5:].replace("_", "-"), importlib.import_module(f"{__name__}.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(prog="samtheory", description="Theory-verification toolkit for sharpness-aware minimization.")
    parser.add_argument("--version", action="version", version=f"samtheory {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, module in _commands():
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv=None) -> int:
    """Run ``samtheory ARGV`` (default: ``sys.argv[1:]``) and return its exit status (see the module docstring).

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name.

    Returns
    -------
    int
        The exit status.
    """
    command = "samtheory"
    interrupt = _Interrupt()
    with interrupt.installed(), warnings.catch_warnings():
        # A NumPy RuntimeWarning (overflow, invalid value) from arguments outside float64's range becomes the
        # one-line error below instead of a warning's two lines on stderr.
        warnings.simplefilter("error", RuntimeWarning)
        try:
            try:
                args = build_parser().parse_args(argv)
            except SystemExit:
                sys.stdout.flush()  # --help or --version into a closed pipe fails here
                raise
            command = interrupt.command = f"samtheory {args.command}"
            code = int(args._run(args) or 0)
            sys.stdout.flush()  # a closed pipe must fail here, not in the interpreter's final flush
            return code
        except BrokenPipeError:
            return _closed_stdout()
        except KeyboardInterrupt:
            return interrupt.report(command)
        except (ValueError, ImportError) as error:  # bad input, or an optional dependency that is not installed
            return _error(command, str(error))
        except (OverflowError, FloatingPointError, RuntimeWarning) as error:
            return _error(command, f"an argument is out of the range this computation supports ({error})")
        except MemoryError as error:
            return _error(command, f"out of memory ({error or 'no detail'}); ask for a smaller computation")


def _error(command: str, message: str) -> int:
    try:
        print(f"{command}: error: {' '.join(message.split())}", file=sys.stderr, flush=True)
    except BrokenPipeError:  # stderr is closed too: the status alone reports the error
        pass
    return 2


def _closed_stdout() -> int:
    """The reader of stdout went away: the remaining output goes nowhere, quietly, and the status is the one a
    process killed by SIGPIPE reports (as ``head`` leaves ``seq`` or ``cat``)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no real file descriptor (e.g. captured)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 128 + signal.SIGPIPE


class _Interrupt:
    """SIGINT handling for one :func:`main` call: exactly one line on stderr and status 130."""

    def __init__(self):
        self._lock = threading.Lock()
        self._reported = False
        self._timer = None
        self.command = "samtheory"

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set from the main thread
            return
        previous = signal.signal(signal.SIGINT, self._handle)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
            if self._timer is not None:
                self._timer.cancel()

    def _handle(self, signum, frame):
        if self._timer is None:
            self._timer = threading.Timer(_INTERRUPT_GRACE_SECONDS, self._exit_now)
            self._timer.daemon = True
            self._timer.start()
        raise KeyboardInterrupt

    def _say(self, command: str) -> bool:
        with self._lock:
            if self._reported:
                return False
            self._reported = True
        with contextlib.suppress(OSError, ValueError):
            print(f"{command}: interrupted", file=sys.stderr, flush=True)
        return True

    def report(self, command: str) -> int:
        self._say(command)
        return 128 + signal.SIGINT

    def _exit_now(self):
        if self._say(self.command):
            with contextlib.suppress(OSError, ValueError):
                sys.stdout.flush()
            os._exit(128 + signal.SIGINT)


def run_figure_script(file: str) -> int:
    """``python experiments/fig_<name>.py [--quick] [--out DIR] [--force]`` is ``samtheory figures <name> ...``
    on the clone that holds the script.

    Parameters
    ----------
    file : str
        The script's ``__file__``.

    Returns
    -------
    int
        The exit status.
    """
    from pathlib import Path

    script = Path(file).resolve()
    name = script.stem[len("fig_"):]
    return main(["figures", name, "--root", str(script.parents[1]), *sys.argv[1:]])
