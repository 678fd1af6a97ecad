"""Argument types and the scene handling that ``diffbmp render`` and ``diffbmp export`` share.

Nothing here imports PyTorch at import time, so ``diffbmp --help`` stays fast.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError

if TYPE_CHECKING:
    from ..scene import Scene


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


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    value = non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text!r}")
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


#: The largest resolution a PSD can record (16.16 fixed point).
MAX_DPI = 65535


def dpi_value(text: str) -> float:
    """argparse type: a resolution in pixels per inch, above 0 and at most MAX_DPI."""
    value = positive_float(text)
    if value > MAX_DPI:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_DPI} pixels per inch, got {text!r}")
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


def add_select_argument(parser: argparse.ArgumentParser) -> None:
    """``--select SPEC`` (repeatable): export or render a subset of the primitives."""
    parser.add_argument(
        "--select", action="append", default=None, metavar="SPEC",
        help="only some primitives: shape=NAME[,NAME], index=A-B[,C-D] (inclusive; A- to the end) or stage=K[,K]; "
             "repeat to combine with AND",
    )


def selected_scene(scene: "Scene", args: argparse.Namespace) -> "Scene":
    """``scene``, or the subset ``--select`` asks for."""
    if not getattr(args, "select", None):
        return scene
    from ..exports.selection import select_primitives

    return select_primitives(scene, args.select)


def count_text(scene: "Scene") -> str:
    """``12 primitives``, or ``12 of 40 primitives`` for a subset."""
    from ..exports.selection import source_indices

    _, total = source_indices(scene)
    return f"{len(scene)} primitives" if total == len(scene) else f"{len(scene)} of {total} primitives"


def load_scene(args: argparse.Namespace) -> "Scene":
    """The scene named on the command line, on the requested device."""
    import torch

    from ..scene import Scene

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
