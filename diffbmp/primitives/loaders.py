"""Load RGBA bitmaps for the texture bank from image files, SVG drawings and fonts.

Every function returns straight (non-premultiplied) RGBA float32 ``[h, w, 4]`` in [0, 1],
row 0 at the top, cropped to the visible content (alpha > 1/255) plus a small transparent
margin, because the bank maps the whole bitmap onto a primitive's [-1, 1]^2 square. Every
failure is an :class:`~diffbmp.errors.InputError` that names the file (or font) and the fix.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Union

import cv2
import numpy as np
from PIL import Image

from ..errors import InputError, similar_files_hint
from ..image_files import read_image
from .boxes import CROP_MARGIN, VISIBLE_ALPHA
from .fonts import FontRef, resolve_font
from .glyphs import text_outline
from .rasterise import render_svg_markup
from .svg_stamps import svg_stamp

__all__ = ["load_image_rgba", "load_svg_rgba", "render_text_rgba", "white_to_alpha"]

PathLike = Union[str, "os.PathLike[str]"]

#: Colour-to-alpha: pixels this close to white become fully transparent (JPEG noise, paper).
WHITE_TOLERANCE = 2.0 / 255.0
#: A border pixel is "near white" when every channel is at least this bright ...
NEAR_WHITE = 0.9
#: ... and the background is removed automatically when this share of the border is.
WHITE_BORDER_SHARE = 0.85
MAX_SIZE_LIMIT = 8192

# ----------------------------------------------------------------------------- helpers


def _check_size(value: int, what: str, low: int = 8, high: int = 4096) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{what} must be an integer number of texels, got {value!r}")
    if not low <= value <= high:
        raise InputError(f"{what} must be between {low} and {high} texels, got {value}")
    return int(value)


def _existing_file(path: PathLike, what: str) -> Path:
    """``path`` as a Path, or an InputError saying it does not exist (with look-alikes)."""
    p = Path(path).expanduser()
    if p.is_file():
        return p
    if p.is_dir():
        raise InputError(f"{what} {str(p)!r} is a folder, not a file")
    raise InputError(f"{what} {str(p)!r} does not exist.{similar_files_hint(p, cutoff=0.6)}")


def _premultiply(rgba: np.ndarray) -> np.ndarray:
    out = rgba.copy()
    out[..., :3] *= rgba[..., 3:4]
    return out


def _unpremultiply(premul: np.ndarray) -> np.ndarray:
    """Straight RGBA from premultiplied, giving transparent texels their neighbours' colour.

    Colour is undefined where alpha is 0; a blurred, alpha-normalised fill keeps it close to
    the nearby visible colour, so any filter that later touches straight RGBA sees no halo.
    """
    alpha = np.clip(premul[..., 3:4], 0.0, 1.0)
    rgb = premul[..., :3]
    straight = np.where(alpha > 0.0, rgb / np.maximum(alpha, 1e-12), 0.0)
    empty = alpha[..., 0] <= 0.0
    if empty.any() and not empty.all():
        sigma = max(2.0, 0.02 * max(alpha.shape[:2]))
        num = cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), sigma)
        den = cv2.GaussianBlur(alpha[..., 0].astype(np.float32), (0, 0), sigma)[..., None]
        mean = rgb.reshape(-1, 3).sum(0) / max(float(alpha.sum()), 1e-12)
        fill = np.where(den > 1e-4, num / np.maximum(den, 1e-4), mean)
        straight[empty] = fill[empty]
    out = np.concatenate([np.clip(straight, 0.0, 1.0), alpha], axis=-1)
    return out.astype(np.float32)


def _crop_resize(rgba: np.ndarray, max_size: int, source: str) -> np.ndarray:
    """Crop straight RGBA to its visible content plus margin, shrink to ``max_size``.

    Works on premultiplied colour so resizing never bleeds the colour of transparent texels
    into the edges. Fully opaque images are left uncropped (a photo is all content).
    """
    alpha = rgba[..., 3]
    visible = alpha > VISIBLE_ALPHA
    if not visible.any():
        raise InputError(f"{source} is entirely transparent; there is nothing to draw with")
    premul = _premultiply(rgba)
    if not (alpha >= 1.0).all():
        rows = np.flatnonzero(visible.any(axis=1))
        cols = np.flatnonzero(visible.any(axis=0))
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        margin = max(1, int(round(CROP_MARGIN * max(y1 - y0, x1 - x0))))
        # Pad with transparent texels where the margin reaches past the image.
        premul = np.pad(premul, ((margin, margin), (margin, margin), (0, 0)))
        premul = premul[y0:y1 + 2 * margin, x0:x1 + 2 * margin]
    h, w = premul.shape[:2]
    scale = max_size / max(h, w)
    if scale < 1.0:
        size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
        premul = cv2.resize(premul.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    return _unpremultiply(np.clip(premul, 0.0, 1.0))


def white_to_alpha(rgb: np.ndarray, tolerance: float = WHITE_TOLERANCE) -> np.ndarray:
    """Colour-to-alpha against white: straight RGBA whose composite over white is ``rgb``.

    Alpha is how far the pixel is from white (``1 - min(r, g, b)``) and the colour is un-mixed
    from white, ``(rgb - (1 - a)) / a``. Pixels within ``tolerance`` of white become fully
    transparent (compositing them over white is then off by less than ``tolerance``).
    """
    rgb = np.clip(np.asarray(rgb, dtype=np.float64), 0.0, 1.0)
    alpha = 1.0 - rgb.min(axis=-1, keepdims=True)
    alpha = np.where(alpha < tolerance, 0.0, alpha)
    colour = np.where(alpha > 0.0, (rgb - (1.0 - alpha)) / np.maximum(alpha, 1e-12), 1.0)
    return np.concatenate([np.clip(colour, 0.0, 1.0), alpha], axis=-1).astype(np.float32)


def _border_is_white(rgb: np.ndarray) -> bool:
    """True when most of the image's outer frame is near-white paper."""
    h, w = rgb.shape[:2]
    band = max(1, int(round(0.02 * min(h, w))))
    frame = np.concatenate([
        rgb[:band].reshape(-1, 3), rgb[-band:].reshape(-1, 3),
        rgb[:, :band].reshape(-1, 3), rgb[:, -band:].reshape(-1, 3),
    ])
    return float((frame.min(axis=1) >= NEAR_WHITE).mean()) >= WHITE_BORDER_SHARE


def _header_size(p: Path) -> tuple[int, int] | None:
    """Width and height from a PNG, GIF or BMP header (Pillow refuses zero-size files, so
    this tells an empty image from a corrupt one)."""
    try:
        with open(p, "rb") as f:
            head = f.read(32)
    except OSError:
        return None
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head[:3] == b"GIF" and len(head) >= 10:
        return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
    if head[:2] == b"BM" and len(head) >= 26:
        return (abs(int.from_bytes(head[18:22], "little", signed=True)),
                abs(int.from_bytes(head[22:26], "little", signed=True)))
    return None


# ----------------------------------------------------------------------------- public API
def load_image_rgba(path: PathLike, *, max_size: int = 256,
                    background_to_alpha: bool | None = None) -> np.ndarray:
    """Load any Pillow-readable image as straight RGBA float32 ``[h, w, 4]`` in [0, 1].

    Args:
        path: the image file (PNG, JPG, WebP, TIFF, BMP, GIF, ...; grayscale, palette,
            16-bit and CMYK files work).
        max_size: the longer side of the result is at most this many texels (the image is
            shrunk with an area filter on premultiplied colour, never enlarged).
        background_to_alpha: turn a white background transparent with colour-to-alpha
            (:func:`white_to_alpha`). ``None`` (default) does it only for a file without
            useful alpha (none, or fully opaque) whose border is mostly near-white, like a
            stamp scanned on paper; ``True`` always does it (on top of any alpha);
            ``False`` never does.

    Returns:
        The bitmap cropped to its visible content plus a small transparent margin (a fully
        opaque image is not cropped).

    Raises:
        InputError: the file is missing, unreadable or corrupt, empty, or fully transparent.
    """
    max_size = _check_size(max_size, "max_size", 1, MAX_SIZE_LIMIT)
    p = _existing_file(path, "image file")
    source = f"image file {str(p)!r}"
    dims = _header_size(p)
    if dims is not None and 0 in dims:  # Pillow refuses zero-size files as unreadable
        raise InputError(f"{source} is empty ({dims[0]}x{dims[1]} pixels)")
    rgba, has_alpha = read_image(p, "image file")
    if rgba.size == 0:
        raise InputError(f"{source} is empty (0 pixels)")
    opaque = bool((rgba[..., 3] >= 1.0).all())
    if background_to_alpha is None:
        background_to_alpha = (not has_alpha or opaque) and _border_is_white(rgba[..., :3])
    if background_to_alpha:
        keyed = white_to_alpha(rgba[..., :3]).astype(np.float64)
        keyed[..., 3] *= rgba[..., 3]
        if not (keyed[..., 3] > VISIBLE_ALPHA).any():
            raise InputError(f"{source} is entirely white, so removing the white background leaves "
                             "nothing; pass background_to_alpha=False to keep it opaque")
        rgba = keyed
    return _crop_resize(rgba.astype(np.float32), max_size, source)


def _decode_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0


def _render_svg(p: Path, width: int | None = None, height: int | None = None) -> np.ndarray:
    import resvg_py

    kwargs = {"width": width} if width is not None else {"height": height}
    try:
        data = resvg_py.svg_to_bytes(svg_path=str(p), **kwargs)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # resvg's Rust panics derive from BaseException
        raise InputError(f"cannot render SVG file {str(p)!r}: resvg reported: {exc}") from None
    try:
        return _decode_png(bytes(data))
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"cannot render SVG file {str(p)!r}: its raster could not be decoded ({exc})") from None


def load_svg_rgba(path: PathLike, *, size: int = 256) -> np.ndarray:
    """Rasterise an SVG file (with resvg) as straight RGBA float32 ``[h, w, 4]`` in [0, 1].

    The drawing is cropped to its visible content plus a small margin, and rendered at the
    resolution that makes the longer side of that crop ``size`` texels (aspect kept). The
    bitmap is drawn from the markup :func:`diffbmp.primitives.svg_stamps.svg_stamp` makes
    (the vector form the SVG export uses), supersampled.

    Raises:
        InputError: the file is missing, not valid SVG, or draws nothing visible.
    """
    size = _check_size(size, "size")
    p = _existing_file(path, "SVG file")
    source = f"SVG file {str(p)!r}"
    first = _render_svg(p, width=size)  # resvg's own verdict on the file first: its errors are the clearest
    if first.size == 0:
        raise InputError(f"{source} has zero size; give the <svg> a width, height or viewBox")
    if not (first[..., 3] > VISIBLE_ALPHA).any():
        raise InputError(f"{source} is entirely transparent; it draws nothing visible")
    stamp = svg_stamp(p, size)
    return _unpremultiply(np.clip(render_svg_markup(stamp.markup, stamp.width, stamp.height, what=source,
                                                     system_fonts=stamp.uses_text), 0.0, 1.0))


def render_text_rgba(text: str, *, font: str | FontRef | None = None, size: int = 128) -> np.ndarray:
    """Render a glyph or short string as white RGBA float32 ``[h, w, 4]`` with alpha coverage.

    The bitmap is rasterised (supersampled) from the text's outlines
    (:func:`diffbmp.primitives.glyphs.text_outline`), the vector form the SVG export uses.

    Args:
        text: the characters to draw (letters, digits, punctuation, any Unicode the font has;
            ``\\n`` starts a new line).
        font: a font family or full name (``"DejaVu Serif"``), a font file name
            (``"DejaVuSans.ttf"``), a .ttf/.otf path, or a resolved
            :class:`~diffbmp.primitives.fonts.FontRef`; ``None`` uses Pillow's built-in
            scalable font (see :func:`diffbmp.primitives.fonts.resolve_font`).
        size: the longer side of the result in texels: the ink is scaled to fill it, less a
            small transparent margin.

    Raises:
        InputError: empty or whitespace-only text, an unknown font, a character the font
            has no glyph for (named with its code point), or nothing visible to draw.
    """
    size = _check_size(size, "size")
    if not isinstance(text, str):
        raise InputError(f"text must be a string, got {type(text).__name__}")
    if not text.strip():
        raise InputError(f"text {text!r} has no visible characters; there is nothing to draw")
    ref = font if isinstance(font, FontRef) else resolve_font(font)
    outline = text_outline(text, ref, size)
    coverage = render_svg_markup(f'<path d="{outline.d}"/>', outline.width, outline.height,
                                 what=f"the text {text!r}")[..., 3]
    out = np.ones(coverage.shape + (4,), dtype=np.float32)
    out[..., 3] = np.clip(coverage, 0.0, 1.0)
    return out
