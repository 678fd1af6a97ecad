"""Rasterise SVG markup to straight RGBA with resvg, supersampled for smooth edges.

Glyph outlines and SVG stamps are made into bank bitmaps here from the same markup the SVG
export draws, so the bitmap and the vector agree by construction.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ..errors import InputError

__all__ = ["render_svg_markup", "supersampling", "svg_document", "SVG_NS", "XLINK_NS"]

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
#: Most supersampled pixels along a side: larger bitmaps take fewer samples per texel (a
#: 128-texel glyph 4 x 4, a 256-texel one 2 x 2, larger ones resvg's own antialiasing, whose
#: coarse steps matter less the larger the bitmap). resvg hands back PNG bytes, so time
#: grows quickly with pixels.
MAX_SUPERSAMPLED_SIDE = 512


def supersampling(width: int, height: int, most: int = 4) -> int:
    """Samples per texel along each axis: resvg's own antialiasing has few coverage levels
    along y, so a glyph is drawn ``k`` times larger and averaged over k x k blocks (exact
    area coverage to about 1/200 at k = 4), within :data:`MAX_SUPERSAMPLED_SIDE`."""
    return max(1, min(most, MAX_SUPERSAMPLED_SIDE // max(1, width, height)))


def svg_document(body: str, width: float, height: float, view_box: tuple[float, float, float, float] | None = None) -> str:
    """A standalone SVG of ``width`` x ``height`` pixels drawing ``body`` (its user units are
    texels, or ``view_box`` when given)."""
    vb = view_box if view_box is not None else (0.0, 0.0, float(width), float(height))
    return (f'<svg xmlns="{SVG_NS}" xmlns:xlink="{XLINK_NS}" width="{width}" height="{height}" '
            f'viewBox="{vb[0]!r} {vb[1]!r} {vb[2]!r} {vb[3]!r}">{body}</svg>')


def _render(document: str, what: str, system_fonts: bool) -> np.ndarray:
    import resvg_py

    try:
        data = resvg_py.svg_to_bytes(svg_string=document, skip_system_fonts=not system_fonts)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # resvg's Rust panics derive from BaseException
        raise InputError(f"cannot render {what}: resvg reported: {exc}") from None
    try:
        with Image.open(io.BytesIO(bytes(data))) as img:
            return np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"cannot render {what}: its raster could not be decoded ({exc})") from None


def render_svg_markup(body: str, width: int, height: int, *, view_box: tuple[float, float, float, float] | None = None,
                      samples: int | None = None, what: str = "SVG markup", system_fonts: bool = False) -> np.ndarray:
    """Premultiplied RGBA float32 ``[height, width, 4]`` of ``body`` drawn in a ``width`` x
    ``height`` texel box (or onto ``view_box`` of user space), averaged over ``samples`` x
    ``samples`` sub-texels (default: :func:`supersampling`). ``system_fonts`` lets ``<text>``
    elements use the installed fonts (loading them takes resvg a moment; paths need none).

    Raises:
        InputError: resvg cannot render it (``what`` names it).
    """
    k = supersampling(width, height) if samples is None else max(1, int(samples))
    vb = view_box if view_box is not None else (0.0, 0.0, float(width), float(height))
    raster = _render(svg_document(body, width * k, height * k, vb), what, system_fonts)
    if raster.shape[:2] != (height * k, width * k):  # resvg sizes the page itself; never expected
        raise InputError(f"cannot render {what}: resvg drew {raster.shape[1]}x{raster.shape[0]} pixels, "
                         f"not {width * k}x{height * k}")
    premul = raster.copy()
    premul[..., :3] *= premul[..., 3:4]
    if k > 1:
        premul = premul.reshape(height, k, width, k, 4).mean(axis=(1, 3))
    return np.ascontiguousarray(premul, dtype=np.float32)
