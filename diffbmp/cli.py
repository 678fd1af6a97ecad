"""The ``diffbmp`` command. Each subcommand lives in ``diffbmp/commands/<name>.py`` and
registers itself through a ``register(subparsers)`` function."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__
from .errors import DiffBMPError
from .interrupts import exit_code, signal_name, signals_as_interrupts

#: Subcommand modules, in the order ``diffbmp --help`` lists them.
COMMANDS = ("fit", "batch", "recipes", "config", "render", "export")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffbmp",
        description="Paint images and videos with thousands of primitives by gradient descent.",
    )
    parser.add_argument("--version", action="version", version=f"diffbmp {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"diffbmp.commands.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"diffbmp.commands.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        with signals_as_interrupts():  # SIGTERM and SIGHUP stop work as Ctrl-C does
            return int(args.handler(args) or 0)
    except DiffBMPError as error:
        print(f"diffbmp {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as error:
        print(f"\ndiffbmp {args.command}: interrupted ({signal_name(error)})", file=sys.stderr)
        return exit_code(error)
    except BrokenPipeError:  # the reader of our output went away (`diffbmp recipes | head`)
        sys.stdout = open(os.devnull, "w")
        return 0


if __name__ == "__main__":
    sys.exit(main())
