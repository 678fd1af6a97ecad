"""``diffbmp render SCENE.npz``: a saved scene as a PNG at any resolution."""

from __future__ import annotations

import argparse

from ..errors import InputError
from .arguments import (
    add_common_arguments,
    add_select_argument,
    count_text,
    default_output,
    describe,
    dpi_value,
    load_scene,
    non_negative_float,
    selected_scene,
)

DESCRIPTION = """Render a saved scene (.npz) as a PNG. Primitives are resolution independent, so
--scale 8 renders a scene fitted at 256 px as a crisp 2048 px image."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("render", help="render a saved scene as a PNG at any resolution", description=DESCRIPTION)
    add_common_arguments(parser)
    parser.add_argument("--transparent", action="store_true", help="leave out the background (RGBA PNG)")
    parser.add_argument("--blur", type=non_negative_float, default=0.0, help="soft-rasterization width in scene pixels (default 0)")
    parser.add_argument("--dpi", type=dpi_value, default=None, help="resolution written in the PNG (default: none written)")
    add_select_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..exports import export

    output = default_output(args, ".png")
    if output.suffix.lower() != ".png":
        raise InputError(f"`diffbmp render` writes PNG files; name the output with a .png ending (got {str(output)!r}) or use `diffbmp export`")
    scene = selected_scene(load_scene(args), args)
    options = {} if args.dpi is None else {"dpi": args.dpi}
    path = export(scene, output, "png", args.scale, blur=args.blur, transparent=args.transparent, texture_size=args.texture_size, **options)
    height, width = scene.canvas_size(args.scale)
    subset = f", {count_text(scene)}" if args.select else ""
    print(f"wrote {describe(path)}: {width}x{height} px{subset}")
    return 0
