"""``diffbmp config [RECIPE | CONFIG.yaml] [--set ...]`` and ``diffbmp config --reference``."""

from __future__ import annotations

import argparse
import sys

from .._resources import doc_reference


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "config", help="print a resolved fit config, or the reference of every key",
        description="Print the configuration a fit would run with (a recipe or a YAML file, with --set overrides "
        "applied) as YAML to copy and edit, or, with --reference, every key with its type, default, range and "
        f"meaning. The guide to the keys: {doc_reference('fitting.md')}",
    )
    parser.add_argument("source", nargs="?", metavar="RECIPE|CONFIG.yaml", help="a recipe name or a YAML file (default: the built-in defaults)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a key (repeatable)")
    parser.add_argument("--reference", action="store_true", help="print every key: type, default, range, meaning")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..config import config_reference, dump_config, load_config

    if args.reference:
        sys.stdout.write(config_reference())
        return 0
    sys.stdout.write(dump_config(load_config(args.source, args.overrides)))
    return 0
