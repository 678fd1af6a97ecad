"""``diffbmp render SCENE.npz``: a saved scene as a PNG at any resolution."""

from __future__ import annotations

import argparse

from ..errors import InputError
from .arguments import add_common_arguments, default_output, describe, load_scene, non_negative_float

DESCRIPTION = """Render a saved scene (.npz) as a PNG. Primitives are resolution independent, so
--scale 8 renders a scene fitted at 256 px as a crisp 2048 px image."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("render", help="render a saved scene as a PNG at any resolution", description=DESCRIPTION)
    add_common_arguments(parser)
    parser.add_argument("--transparent", action="store_true", help="leave out the background (RGBA PNG)")
    parser.add_argument("--blur", type=non_negative_float, default=0.0, help="soft-rasterization width in scene pixels (default 0)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..exports import export

    scene = load_scene(args)
    output = default_output(args, ".png")
    if output.suffix.lower() != ".png":
        raise InputError(f"`diffbmp render` writes PNG files; name the output with a .png ending (got {str(output)!r}) or use `diffbmp export`")
    path = export(scene, output, "png", args.scale, blur=args.blur, transparent=args.transparent, texture_size=args.texture_size)
    height, width = scene.canvas_size(args.scale)
    print(f"wrote {describe(path)}: {width}x{height} px")
    return 0
