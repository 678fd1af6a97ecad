"""The bank an export draws with, and small encoders shared by the writers.

Bitmaps are fitted at a modest resolution (e.g. 128 texels); an export at ``scale`` > 1 can
show a primitive far larger than that, so the bank is re-made at a resolution that matches
the largest primitive on the exported canvas (:meth:`TextureBank.rebuilt`).
"""

from __future__ import annotations

import io
import math
import weakref

import numpy as np
import torch
from PIL import Image

from ..colour import check_dpi, png_save_options
from ..constants import KIND_TEXTURE
from ..errors import InputError
from ..primitives import TextureBank
from ..scene import Scene

__all__ = ["bank_for_scale", "hex_color", "png_bytes", "to_uint8", "AUTO_TEXTURE_CAP"]

#: Largest bitmap side the automatic choice re-makes textures at. The pyramid of a texture
#: costs memory and time quadratic in its side, and 1024 texels is sharp for a primitive
#: 1024 px across on the exported canvas.
AUTO_TEXTURE_CAP = 1024

# Banks re-made from a scene's bank, by texture size: exporting one scene in several formats
# at one scale re-makes (and prepares the pyramid of) its bitmaps once.
_REBUILT: "weakref.WeakKeyDictionary[TextureBank, dict]" = weakref.WeakKeyDictionary()


def _largest_texture_side(bank: TextureBank) -> int:
    sides = [max(int(e.rgba.shape[0]), int(e.rgba.shape[1])) for e in bank if e.kind == KIND_TEXTURE and e.rgba is not None]
    return max(sides, default=0)


def bank_for_scale(scene: Scene, scale: float, texture_size: int | None = None) -> TextureBank:
    """The bank to export ``scene`` with at ``scale``.

    Args:
        texture_size: None picks automatically (the scene's own bank unless a primitive on
            the exported canvas is wider than the bitmaps, then bitmaps re-made at the next
            power of two, at most :data:`AUTO_TEXTURE_CAP`); 0 always keeps the scene's own
            bitmaps; a positive number re-makes them at that many texels (longest side).
    """
    if texture_size is None:
        texture_size = _auto_texture_size(scene, scale)
        if texture_size == 0:
            return scene.bank
    if isinstance(texture_size, bool) or not isinstance(texture_size, int) or texture_size < 0:
        raise InputError(f"texture_size must be a whole number of texels >= 0 (0 keeps the scene's bitmaps), got {texture_size!r}")
    if texture_size == 0 or texture_size == _largest_texture_side(scene.bank):
        return scene.bank
    if texture_size < 8:
        raise InputError(f"texture_size must be at least 8 texels, got {texture_size}")
    # Keyed on the entries' identities too, so a bank edited since is re-made.
    key = (texture_size, tuple((e.name, id(e.rgba)) for e in scene.bank))
    cache = _REBUILT.setdefault(scene.bank, {})
    if key not in cache:
        cache.clear()
        cache[key] = scene.bank.rebuilt(texture_size)
    return cache[key]


def _auto_texture_size(scene: Scene, scale: float) -> int:
    current = _largest_texture_side(scene.bank)
    if current == 0 or scale <= 1 or len(scene) == 0:
        return 0
    kinds = torch.tensor([entry.kind for entry in scene.bank], device=scene.shape_ids.device)
    textured = kinds[scene.shape_ids] == KIND_TEXTURE
    if not bool(textured.any()):
        return 0
    # A primitive spans 2 * max(sx, sy) pixels of the exported canvas along its longer side.
    needed = float(2.0 * scene.params().scales.detach()[textured].max()) * scale
    if needed <= current:
        return 0
    target = min(AUTO_TEXTURE_CAP, 2 ** math.ceil(math.log2(needed)))
    return target if target > current else 0


def hex_color(rgb) -> str:
    """``#rrggbb`` of a colour given as three floats in [0, 1]."""
    values = [min(255, max(0, int(round(float(c) * 255.0)))) for c in rgb]
    return "#{:02x}{:02x}{:02x}".format(*values)


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] to 8-bit, rounding to nearest."""
    return np.clip(np.rint(np.asarray(values, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def png_bytes(pixels: np.ndarray, compress_level: int = 6, *, srgb: bool = False, dpi: float | None = None) -> bytes:
    """PNG file contents of an 8-bit image [H, W] (L), [H, W, 2] (LA), [H, W, 3] or [H, W, 4].

    Args:
        srgb: tag the file as sRGB (``sRGB``, ``gAMA`` and ``cHRM`` chunks, about 90 bytes),
            for PNG files of their own; textures embedded in SVG and JSON stay untagged
            (the smallest files; an SVG's images are sRGB by definition).
        dpi: write ``pHYs`` stating this many dots per inch (None: no pHYs).
    """
    buffer = io.BytesIO()
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (2, 3, 4))):
        raise ValueError(f"expected an image [H, W] or [H, W, 2|3|4], got shape {pixels.shape}")
    options = png_save_options(dpi) if srgb else ({"dpi": (check_dpi(dpi),) * 2} if dpi is not None else {})
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=compress_level, **options)
    return buffer.getvalue()
