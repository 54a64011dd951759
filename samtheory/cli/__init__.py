"""The ``samtheory`` command line. Each sub-command lives in a module ``samtheory/cli/_cmd_<name>.py``
exposing ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``; modules are discovered,
so adding a command touches no other file. Bad input prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


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
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (ValueError, ImportError) as error:  # bad input, or an optional dependency that is not installed
        message = " ".join(str(error).split())
        print(f"samtheory {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("samtheory: interrupted", file=sys.stderr)
        return 130
