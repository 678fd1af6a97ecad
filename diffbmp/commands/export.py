"""``diffbmp export SCENE.npz --format psd|svg|png|json``: a saved scene for other tools."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from .arguments import add_common_arguments, default_output, describe, load_scene, non_negative_float, non_negative_int

DESCRIPTION = """Export a saved scene (.npz): a layered PSD (one layer per primitive, for Photoshop,
GIMP, Krita), an SVG (each bitmap stored once), a PNG, or a JSON description."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export a saved scene as PSD, SVG, PNG or JSON", description=DESCRIPTION)
    add_common_arguments(parser)
    parser.add_argument("--format", metavar="FORMAT", help="psd, svg, png or json (default: from the ending of -o)")
    parser.add_argument("--group-size", type=non_negative_int, default=None, metavar="K", help="psd: put layers in groups of K (default 500; 0: no groups)")
    parser.add_argument("--transparent", action="store_true", default=None, help="png, svg: leave out the background")
    parser.add_argument("--blur", type=non_negative_float, default=None, help="psd, png, svg: soft-rasterization width in scene pixels (default 0)")
    parser.add_argument("--embed-textures", action="store_true", default=None, help="json: include the bitmaps as base64 PNGs")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..exports import export, resolve_format

    if args.format is None and args.output is None:
        raise InputError("give --format (psd, svg, png or json) or an output file with -o, e.g. -o painting.psd")
    if args.output is None:
        path, name = resolve_format(default_output(args, ""), args.format)
    else:
        path, name = resolve_format(args.output, args.format)
    given = {
        "group_size": args.group_size,
        "transparent": args.transparent,
        "blur": args.blur,
        "texture_size": args.texture_size,
        "embed_textures": args.embed_textures,
    }
    options = {key: value for key, value in given.items() if value is not None}
    _check_applicable(options, name)
    scene = load_scene(args)
    written = export(scene, path, name, args.scale, **options)
    height, width = scene.canvas_size(args.scale)
    detail = f"{len(scene)} primitives" if name == "json" else f"{width}x{height} px, {len(scene)} primitives"
    print(f"wrote {describe(Path(written))}: {detail}")
    return 0


def _check_applicable(options: dict, name: str) -> None:
    """Refuse a flag the chosen format has no use for, naming the formats that take it."""
    from ..exports import FORMATS, writer_options

    for key in options:
        if key not in writer_options(name):
            takers = [fmt for fmt in sorted(FORMATS) if key in writer_options(fmt)]
            flag = "--" + key.replace("_", "-")
            raise InputError(f"{flag} does not apply to {name} exports (it is for {', '.join(takers)})")
