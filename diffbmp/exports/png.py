"""PNG at any resolution: ``Scene.render`` at a scale, over the background or transparent."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from ..colour import check_dpi
from ..errors import InputError
from ..scene import Scene
from .atomic import atomic_open
from .raster import BAND_PIXELS, render_bands
from .textures import bank_for_scale, png_bytes, to_uint8

__all__ = ["render_pixels", "write_png"]


def render_pixels(
    scene: Scene,
    scale: float = 1.0,
    *,
    blur: float = 0.0,
    transparent: bool = False,
    texture_size: int | None = None,
    backend: str | None = None,
    band_pixels: int = BAND_PIXELS,
) -> np.ndarray:
    """The scene as 8-bit pixels: RGB [H, W, 3] over its background, or straight RGBA
    [H, W, 4] on a transparent canvas.

    Args:
        scale: resolution multiplier (the canvas is ``scene.canvas_size(scale)``).
        blur: soft-rasterization width in pixels of the scene's canvas.
        transparent: leave out the background; pixels no primitive covers get alpha 0.
        texture_size: bitmap resolution, see :func:`~diffbmp.exports.textures.bank_for_scale`.
        backend: rendering backend (None: the fastest for the scene's device).
        band_pixels: a raster of more pixels is rendered in bands of rows of about this many
            pixels (the same picture, to float rounding of the band's offset).
    """
    scene.check_drawable()
    height, width = scene.raster_size(scale)  # a canvas too large is refused before anything is built
    if not (isinstance(blur, (int, float)) and math.isfinite(blur) and blur >= 0):
        raise InputError(f"blur must be a number >= 0 (pixels), got {blur!r}")
    bank = bank_for_scale(scene, scale, texture_size)
    out = np.empty((height, width, 4 if transparent else 3), dtype=np.uint8)
    for top, image, alpha in render_bands(scene, scale, bank, blur=blur, transparent=transparent, backend=backend,
                                          band_pixels=band_pixels):
        out[top:top + image.shape[0]] = _to_pixels(image, alpha, transparent)
    return out


def _to_pixels(image: torch.Tensor, alpha: torch.Tensor, transparent: bool) -> np.ndarray:
    """8-bit RGB of a render over its background, or straight RGBA of a premultiplied one."""
    image = image.detach().float().cpu().numpy()
    if not transparent:
        return to_uint8(image)
    alpha = alpha.detach().float().cpu().numpy()
    # The transparent render is premultiplied; PNG stores straight colour.
    covered = alpha > 0
    straight = np.where(covered[..., None], image / np.where(covered, alpha, 1.0)[..., None], 0.0)
    return to_uint8(np.concatenate([straight, alpha[..., None]], axis=-1))


def write_png(
    scene: Scene,
    path: str | os.PathLike,
    scale: float = 1.0,
    *,
    blur: float = 0.0,
    transparent: bool = False,
    texture_size: int | None = None,
    backend: str | None = None,
    dpi: float | None = None,
) -> Path:
    """Write the scene as a PNG at ``path`` (atomically); see :func:`render_pixels`.

    The file is tagged sRGB (the ``sRGB`` chunk, with ``gAMA`` and ``cHRM`` for older
    readers), the space diffbmp paints in.

    Args:
        dpi: dots per inch stated in the ``pHYs`` chunk, the print size layout and print
            programs use (e.g. 300: a 3000-pixel-wide export prints 10 inches wide). None
            writes no pHYs: programs then use their own default (72 or 96 dpi).
    """
    if dpi is not None:
        check_dpi(dpi)  # refused before the render
    pixels = render_pixels(scene, scale, blur=blur, transparent=transparent, texture_size=texture_size, backend=backend)
    data = png_bytes(pixels, srgb=True, dpi=dpi)
    with atomic_open(path) as handle:
        handle.write(data)
    return Path(path)
