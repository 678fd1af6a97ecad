"""The ``diffbmp`` command. Each subcommand lives in ``diffbmp/commands/<name>.py`` and
registers itself through a ``register(subparsers)`` function."""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import DiffBMPError

#: Subcommand modules, in the order ``diffbmp --help`` lists them.
COMMANDS = ("fit", "render", "export")


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
        return int(args.handler(args) or 0)
    except DiffBMPError as error:
        print(f"diffbmp {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ndiffbmp {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
