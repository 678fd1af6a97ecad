"""``diffbmp render SCENE.npz``: a saved scene as a PNG at any resolution.

Also holds the argument types and scene loading that ``diffbmp export`` shares.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from ..errors import InputError
from ..scene import Scene

DESCRIPTION = """Render a saved scene (.npz) as a PNG. Primitives are resolution independent, so
--scale 8 renders a scene fitted at 256 px as a crisp 2048 px image."""


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments every scene-output command takes."""
    parser.add_argument("scene", metavar="SCENE.npz", help="a scene saved by `diffbmp fit` or Scene.save()")
    parser.add_argument("-o", "--output", metavar="PATH", help="output file (default: next to the scene, same name)")
    parser.add_argument("--scale", type=positive_float, default=1.0, help="resolution multiplier (default 1)")
    parser.add_argument(
        "--texture-size", type=non_negative_int, default=None, metavar="N",
        help="re-make bitmaps at N texels for a sharp large render (default: automatic; 0 keeps the scene's)",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to render (default: cuda if available)")


def load_scene(args: argparse.Namespace) -> Scene:
    """The scene named on the command line, on the requested device."""
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was requested but no CUDA GPU is available; use --device cpu")
    path = Path(args.scene).expanduser()
    if path.is_dir():
        raise InputError(f"{str(path)!r} is a folder; give the scene's .npz file")
    if not path.exists() and path.suffix != ".npz" and path.with_name(path.name + ".npz").exists():
        path = path.with_name(path.name + ".npz")
    return Scene.load(path, device=device)


def default_output(args: argparse.Namespace, suffix: str) -> Path:
    """``-o`` if given, else the scene's path with ``suffix``."""
    if args.output:
        return Path(args.output).expanduser()
    return Path(args.scene).expanduser().with_suffix(suffix)


def describe(path: Path) -> str:
    """``out.png (1.2 MB)``."""
    size = path.stat().st_size
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            amount = f"{size:d}" if unit == "bytes" else f"{size:.1f}"
            return f"{path} ({amount} {unit})"
        size /= 1024.0
    return str(path)


def register(subparsers) -> None:
    parser = subparsers.add_parser("render", help="render a saved scene as a PNG at any resolution", description=DESCRIPTION)
    add_common_arguments(parser)
    parser.add_argument("--transparent", action="store_true", help="leave out the background (RGBA PNG)")
    parser.add_argument("--blur", type=non_negative_float, default=0.0, help="soft-rasterization width in scene pixels (default 0)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..export import export

    scene = load_scene(args)
    output = default_output(args, ".png")
    if output.suffix.lower() != ".png":
        raise InputError(f"`diffbmp render` writes PNG files; name the output with a .png ending (got {str(output)!r}) or use `diffbmp export`")
    path = export(scene, output, "png", args.scale, blur=args.blur, transparent=args.transparent, texture_size=args.texture_size)
    height, width = scene.canvas_size(args.scale)
    print(f"wrote {describe(path)}: {width}x{height} px")
    return 0
