"""Generated clips, so that examples and tests need no video file: ``demo:moving_disc``.

``moving_disc`` is a pale yellow disc gliding from left to right (bobbing up and down once) over a
still colour gradient. The gradient never changes, so most pixels are static: a good test
of temporal coherence (a painting should not flicker there) and of optical flow (the disc
translates). Frames are 8-bit, like a real clip, so static pixels are exactly equal.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["DEMO_CLIPS", "demo_frames", "make_demo_clip", "parse_demo"]

#: Names of the generated clips.
DEMO_CLIPS = ("moving_disc",)
#: Frames of a demo clip unless asked otherwise.
DEFAULT_FRAMES = 24


def parse_demo(spec: str) -> tuple[str, dict[str, Any]]:
    """``"demo:moving_disc"`` -> ``("moving_disc", {})``; ``"demo:moving_disc:frames=12"`` -> frames=12."""
    name, _, rest = spec.removeprefix("demo:").partition(":")
    if name not in DEMO_CLIPS:
        import difflib

        close = difflib.get_close_matches(name, DEMO_CLIPS, n=1)
        hint = f" Did you mean 'demo:{close[0]}'?" if close else ""
        raise InputError(f"unknown demo clip {spec!r}.{hint} Demo clips: {', '.join('demo:' + c for c in DEMO_CLIPS)}")
    options: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if key != "frames" or not value.isdigit() or int(value) < 1:
            raise InputError(f"demo clip option {item!r} in {spec!r} is not understood; the only option is frames=<count>, "
                             "e.g. 'demo:moving_disc:frames=12'")
        options["frames"] = int(value)
    return name, options


def _canvas(size: int | tuple[int, int]) -> tuple[int, int]:
    """(width, height) from a longer side (4:3) or an explicit pair."""
    if isinstance(size, (tuple, list)):
        width, height = (int(v) for v in size)
    else:
        width, height = int(size), max(1, int(round(int(size) * 0.75)))
    if width < 8 or height < 8:
        raise InputError(f"a demo clip needs at least 8x8 pixels, got {width}x{height}")
    return width, height


def demo_frames(name: str = "moving_disc", frames: int = DEFAULT_FRAMES, size: int | tuple[int, int] = 128) -> np.ndarray:
    """The frames of a generated clip as uint8 ``[T, H, W, 3]``.

    Args:
        name: one of :data:`DEMO_CLIPS`.
        frames: number of frames.
        size: the width (height is three quarters of it), or ``(width, height)``.
    """
    if name not in DEMO_CLIPS:
        raise InputError(f"unknown demo clip {name!r}; choose one of {', '.join(DEMO_CLIPS)}")
    if frames < 1:
        raise InputError(f"a demo clip needs at least one frame, got {frames}")
    width, height = _canvas(size)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = (x + 0.5) / width, (y + 0.5) / height
    # Deep blue on the left to warm orange on the right, darker towards the bottom.
    left, right = np.array([0.16, 0.26, 0.62]), np.array([0.97, 0.72, 0.32])
    background = (left + (right - left) * u[..., None]) * (1.0 - 0.35 * v[..., None])
    radius = 0.16 * height
    colour = np.array([0.98, 0.92, 0.55])  # bright against both ends of the gradient, for the flow
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        phase = t / max(frames - 1, 1)
        cx = (0.2 + 0.6 * phase) * width
        cy = (0.5 - 0.18 * math.sin(2 * math.pi * phase)) * height
        # One-pixel antialiased edge.
        coverage = np.clip(radius - np.hypot(x + 0.5 - cx, y + 0.5 - cy) + 0.5, 0.0, 1.0)[..., None]
        image = background * (1 - coverage) + colour * coverage
        out[t] = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def make_demo_clip(path: str | os.PathLike, frames: int = DEFAULT_FRAMES, size: int | tuple[int, int] = 128,
                   name: str = "moving_disc", fps: float = 12.0) -> Path:
    """Write a generated clip to ``path``: a video (``.mp4``, ...), an animated ``.gif``, or,
    for a path without a suffix, a folder of PNG frames (``frame_00000.png`` ...).

    Returns the path written. The same clip is available without a file as ``demo:<name>``.
    """
    import imageio.v3 as iio

    from .sources import VIDEO_SUFFIXES

    path = Path(path)
    pixels = demo_frames(name, frames, size)
    suffix = path.suffix.lower()
    if suffix == "":
        from PIL import Image

        path.mkdir(parents=True, exist_ok=True)
        for index, frame in enumerate(pixels):
            Image.fromarray(frame).save(path / f"frame_{index:05d}.png")
    elif suffix == ".gif":
        path.parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(path, pixels, extension=".gif", duration=1000.0 / fps, loop=0)
    elif suffix in VIDEO_SUFFIXES:
        path.parent.mkdir(parents=True, exist_ok=True)
        # yuv420p needs even sides: repeat the last row/column where one is odd.
        pad = ((0, 0), (0, pixels.shape[1] % 2), (0, pixels.shape[2] % 2), (0, 0))
        iio.imwrite(path, np.pad(pixels, pad, mode="edge"), plugin="FFMPEG", fps=fps, codec="libx264", macro_block_size=1,
                    quality=9, pixelformat="yuv420p")
    else:
        raise InputError(f"cannot write a clip as {path.name!r}: use a video suffix ({', '.join(VIDEO_SUFFIXES[:4])}, ...), "
                         ".gif, or a folder name without a suffix")
    return path
