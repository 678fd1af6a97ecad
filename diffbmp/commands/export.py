"""``diffbmp export SCENE.npz --format psd,svg,png,json``: a saved scene for other tools."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from .arguments import (
    add_common_arguments,
    add_select_argument,
    count_text,
    describe,
    load_scene,
    non_negative_float,
    dpi_value,
    non_negative_int,
    selected_scene,
)

DESCRIPTION = """Export a saved scene (.npz): a layered PSD (one layer per primitive, for Photoshop,
GIMP, Krita), an SVG (each bitmap stored once), a PNG, or a JSON description. Several formats
in one call: --format psd,svg,png (then -o is the name without an ending). --select exports a
subset of the primitives."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export a saved scene as PSD, SVG, PNG or JSON", description=DESCRIPTION)
    add_common_arguments(parser)
    parser.add_argument(
        "--format", metavar="FORMAT[,FORMAT]",
        help="psd, svg, png or json, or several separated by commas (default: from the ending of -o)",
    )
    add_select_argument(parser)
    parser.add_argument("--group-by", choices=("stage", "shape", "none"), default=None,
                        help="psd: group layers by the fit stage that added them (default), by shape, or by index runs only")
    parser.add_argument("--group-size", type=non_negative_int, default=None, metavar="K",
                        help="psd: at most K layers directly in a group; bigger groups get sub-groups (default 500; 0: no limit)")
    parser.add_argument("--transparent", action="store_true", default=None, help="psd, png, svg: leave out the background")
    parser.add_argument("--dpi", type=dpi_value, default=None, help="psd, png: resolution written in the file, pixels per inch (psd default 72; png: none unless given)")
    parser.add_argument("--blur", type=non_negative_float, default=None, help="psd, png, svg: soft-rasterization width in scene pixels (default 0)")
    parser.add_argument("--embed-textures", action="store_true", default=None, help="json: include the bitmaps as base64 PNGs")
    parser.add_argument("--no-vectors", dest="vectors", action="store_false", default=None,
                        help="svg: embed glyphs and SVG stamps as bitmaps instead of their outlines and drawings")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..exports import export, writer_options
    from ..exports.atomic import check_output_path
    from ..exports.selection import parse_selection

    outputs = output_paths(args)
    given = {
        "group_by": args.group_by,
        "group_size": args.group_size,
        "transparent": args.transparent,
        "dpi": args.dpi,
        "blur": args.blur,
        "texture_size": args.texture_size,
        "embed_textures": args.embed_textures,
        "vectors": args.vectors,
    }
    options = {key: value for key, value in given.items() if value is not None}
    _check_applicable(options, [name for _, name in outputs])
    for spec in args.select or []:
        parse_selection(spec)  # a malformed selection is refused before the scene is read
    for path, _ in outputs:
        check_output_path(path)  # every folder checked before the first file is written
    scene = selected_scene(load_scene(args), args)
    height, width = scene.canvas_size(args.scale)
    for path, name in outputs:
        accepted = writer_options(name)
        written = export(scene, path, name, args.scale, **{k: v for k, v in options.items() if k in accepted})
        detail = count_text(scene) if name == "json" else f"{width}x{height} px, {count_text(scene)}"
        print(f"wrote {describe(Path(written))}: {detail}")
    return 0


def output_paths(args: argparse.Namespace) -> list[tuple[Path, str]]:
    """(path, format) of every file the call writes.

    One format: ``-o`` is the file (its ending picks the format when ``--format`` is not
    given); without ``-o`` the file goes next to the scene. Several formats: ``-o`` is the
    name without an ending (``-o out/painting`` writes ``out/painting.psd``, ...); without
    ``-o``, the files go next to the scene.
    """
    from ..exports import FORMATS, resolve_format

    if args.format is None:
        if args.output is None:
            raise InputError("give --format (psd, svg, png or json, or several: psd,svg,png) or an output file with -o, e.g. -o painting.psd")
        return [resolve_format(args.output, None)]
    names = [item.strip().lower().lstrip(".") for item in str(args.format).split(",")]
    if any(not name for name in names):
        raise InputError(f"--format {args.format!r} has an empty item; list formats separated by commas, e.g. --format psd,svg,png")
    names = list(dict.fromkeys(names))  # a format asked for twice is written once
    if len(names) == 1:
        target = args.output if args.output is not None else Path(f"{_next_to_scene(args)}.{names[0]}")
        return [resolve_format(target, names[0])]
    if args.output is not None:
        stem = Path(args.output).expanduser()
        ending = stem.suffix.lower().lstrip(".")
        if ending in FORMATS:
            raise InputError(
                f"with several formats, -o names the files without an ending: -o {str(stem.with_suffix(''))!r} writes "
                + ", ".join(repr(f"{stem.with_suffix('')}.{name}") for name in names)
            )
    else:
        stem = _next_to_scene(args)
    return [resolve_format(Path(f"{stem}.{name}"), name) for name in names]


def _next_to_scene(args: argparse.Namespace) -> Path:
    """The scene's path without its ``.npz`` ending."""
    scene = Path(args.scene).expanduser()
    return scene.with_suffix("") if scene.suffix.lower() == ".npz" else scene


def _check_applicable(options: dict, names: list[str]) -> None:
    """Refuse a flag that none of the chosen formats has a use for, naming the formats that take it.

    In a call with several formats a flag is passed to the formats that take it (``--group-by``
    with ``--format psd,png`` shapes the PSD) and refused only when none of them does.
    """
    from ..exports import FORMATS, writer_options

    for key in options:
        if not any(key in writer_options(name) for name in names):
            takers = [fmt for fmt in sorted(FORMATS) if key in writer_options(fmt)]
            flag = "--" + ("no-" if options[key] is False else "") + key.replace("_", "-")
            asked = names[0] if len(names) == 1 else " or ".join([", ".join(names[:-1]), names[-1]])
            raise InputError(f"{flag} does not apply to {asked} exports (it is for {', '.join(takers)})")
