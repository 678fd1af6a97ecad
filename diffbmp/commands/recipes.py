"""``diffbmp recipes``: the fit recipes that ship with diffbmp, one line each."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recipes", help="list the ready-to-run fit recipes",
        description="The fit recipes that ship with diffbmp. Paint with one: `diffbmp fit NAME` "
        "(e.g. `diffbmp fit brush_strokes --set target=photo.jpg`); copy one to edit: "
        "`diffbmp config NAME > mine.yaml`, then `diffbmp fit mine.yaml`.",
    )
    parser.add_argument("--paths", action="store_true", help="also print where each recipe file is")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from .. import recipes

    names = recipes.names()
    width = max(len(name) for name in names)
    for name in names:
        line = f"{name:<{width}}  {recipes.describe(name)}"
        print(line + (f"\n{'':<{width}}  {recipes.path(name)}" if args.paths else ""))
    print("\nPaint with one: diffbmp fit NAME [--set key=value ...]; copy one to edit: diffbmp config NAME > mine.yaml")
    return 0
