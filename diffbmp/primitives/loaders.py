"""Load RGBA bitmaps for the texture bank from image files, SVG drawings and fonts.

Every function returns straight (non-premultiplied) RGBA float32 ``[h, w, 4]`` in [0, 1],
row 0 at the top, cropped to the visible content (alpha > 1/255) plus a small transparent
margin, because the bank maps the whole bitmap onto a primitive's [-1, 1]^2 square. Every
failure is an :class:`~diffbmp.errors.InputError` that names the file (or font) and the fix.
"""

from __future__ import annotations

import difflib
import io
import os
from pathlib import Path
from typing import Union

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import InputError, similar_files_hint
from ..image_files import read_image

__all__ = ["load_image_rgba", "load_svg_rgba", "render_text_rgba", "white_to_alpha"]

PathLike = Union[str, "os.PathLike[str]"]

#: Texels with alpha at or below this count as empty when cropping.
VISIBLE_ALPHA = 1.0 / 255.0
#: Transparent margin kept around the content, as a fraction of its longer side.
CROP_MARGIN = 0.03
#: Colour-to-alpha: pixels this close to white become fully transparent (JPEG noise, paper).
WHITE_TOLERANCE = 2.0 / 255.0
#: A border pixel is "near white" when every channel is at least this bright ...
NEAR_WHITE = 0.9
#: ... and the background is removed automatically when this share of the border is.
WHITE_BORDER_SHARE = 0.85
MAX_SIZE_LIMIT = 8192
#: An SVG whose drawing covers a small part of its page is re-rendered at most this much
#: larger, and never beyond this many pixels a side.
MAX_SVG_ZOOM = 8.0
MAX_SVG_RASTER = 8192

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
    resolution that makes the longer side of that crop ``size`` texels (aspect kept).

    Raises:
        InputError: the file is missing, not valid SVG, or draws nothing visible.
    """
    size = _check_size(size, "size")
    p = _existing_file(path, "SVG file")
    source = f"SVG file {str(p)!r}"
    first = _render_svg(p, width=size)
    if first.shape[0] > first.shape[1]:
        first = _render_svg(p, height=size)
    if first.size == 0:
        raise InputError(f"{source} has zero size; give the <svg> a width, height or viewBox")
    visible = first[..., 3] > VISIBLE_ALPHA
    if not visible.any():
        raise InputError(f"{source} is entirely transparent; it draws nothing visible")
    # Render again, larger, so that the cropped content rather than the page gets `size`.
    rows = np.flatnonzero(visible.any(axis=1))
    cols = np.flatnonzero(visible.any(axis=0))
    extent = max(rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]) * (1.0 + 2.0 * CROP_MARGIN)
    longer = max(first.shape[:2])
    zoom = min(size / extent, MAX_SVG_ZOOM, MAX_SVG_RASTER / longer)
    rgba = first
    if zoom > 1.01:
        if first.shape[1] >= first.shape[0]:
            rgba = _render_svg(p, width=int(round(first.shape[1] * zoom)))
        else:
            rgba = _render_svg(p, height=int(round(first.shape[0] * zoom)))
    return _crop_resize(rgba, size, source)


_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.fonts", "~/.local/share/fonts",
              "/Library/Fonts", "/System/Library/Fonts", "~/Library/Fonts", "C:/Windows/Fonts")


def _installed_fonts(limit: int = 2000) -> list[str]:
    """Font file names under the usual system folders (for 'did you mean' hints)."""
    found: list[str] = []
    for folder in _FONT_DIRS:
        root = Path(folder).expanduser()
        if not root.is_dir():
            continue
        for dirpath, _, files in os.walk(root):
            found.extend(f for f in files if f.lower().endswith((".ttf", ".otf", ".ttc")))
            if len(found) >= limit:
                return sorted(found)
    return sorted(found)


_FONT_HINT = ("Pass the path of a .ttf or .otf file, e.g. "
              "font='/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf', or font=None for "
              "Pillow's built-in font")


def _load_font(font: str | None, px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if font is None:
        try:
            return ImageFont.load_default(px)
        except (OSError, ImportError, TypeError):  # Pillow without FreeType: fixed-size bitmap font
            return ImageFont.load_default()
    font = str(font)
    looks_like_path = os.sep in font or "/" in font
    if looks_like_path and not Path(font).expanduser().is_file():
        raise InputError(f"font file {font!r} does not exist. {_FONT_HINT}")
    try:
        return ImageFont.truetype(str(Path(font).expanduser()) if looks_like_path else font, px)
    except (OSError, ValueError) as exc:
        close = difflib.get_close_matches(font, _installed_fonts(), n=3, cutoff=0.5)
        hint = f" Installed fonts with a similar name: {', '.join(close)}." if close else ""
        raise InputError(f"cannot load font {font!r} (Pillow reported: {exc}).{hint} {_FONT_HINT}") from None


def _missing_characters(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> list[str]:
    """The characters of ``text`` (spaces and line breaks aside) that the font has no glyph for,
    by its character map (read with fontTools); a font would draw them as its "missing glyph"
    box. Empty when the font's tables cannot be read (Pillow's fixed bitmap font)."""
    from fontTools.ttLib import TTFont

    source = getattr(font, "path", None)
    if source is None:
        return []
    try:
        if hasattr(source, "seek"):  # Pillow's built-in font, loaded from memory
            source.seek(0)
        cmap = TTFont(source, fontNumber=getattr(font, "index", 0), lazy=True).getBestCmap() or {}
    except Exception:  # not a font fontTools reads: let the ink check below decide
        return []
    finally:
        if hasattr(source, "seek"):
            source.seek(0)
    return [c for c in dict.fromkeys(text) if not c.isspace() and ord(c) not in cmap]


def _draw_text(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> np.ndarray:
    """Coverage (float, [0, 1]) of ``text`` drawn at the font's size, with room all round."""
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, top, right, bottom = probe.multiline_textbbox((0, 0), text, font=font)
    pad = 4 + (bottom - top) // 4  # glyphs may ink slightly outside their advertised box
    canvas = Image.new("L", (int(right - left) + 2 * pad, int(bottom - top) + 2 * pad), 0)
    ImageDraw.Draw(canvas).multiline_text((pad - left, pad - top), text, font=font, fill=255)
    return np.asarray(canvas, dtype=np.float32) / 255.0


def render_text_rgba(text: str, *, font: str | None = None, size: int = 128) -> np.ndarray:
    """Render a glyph or short string as white RGBA float32 ``[h, w, 4]`` with alpha coverage.

    Args:
        text: the characters to draw (letters, digits, punctuation, any Unicode the font has;
            ``\\n`` starts a new line).
        font: a .ttf/.otf path, or a font file name Pillow can find (e.g. ``"DejaVuSans"``);
            ``None`` uses Pillow's built-in scalable font.
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
    margin = max(1, int(round(CROP_MARGIN * size)))
    inner = size - 2 * margin
    # Measure the ink at a probe size, then draw again at the size that fills `inner`.
    probe_px = 64
    probe_font = _load_font(font, probe_px)
    missing = _missing_characters(text, probe_font)
    if missing:
        names = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in missing)
        raise InputError(f"the font {font or 'built-in'!r} has no glyph for {names}: it would draw its 'missing glyph' "
                         "box instead. Choose a font that covers these characters: the config key text_font, or "
                         "font='path/to/font.ttf' in Python")
    coverage = _draw_text(text, probe_font)
    ink = coverage > VISIBLE_ALPHA
    if not ink.any():
        raise InputError(f"the font {font or 'built-in'!r} has no visible glyph for {text!r}; "
                         "pass a .ttf/.otf font that covers these characters")
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    extent = max(rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0])
    px = max(1, int(probe_px * inner / extent))
    coverage = _draw_text(text, _load_font(font, px))
    ink = coverage > VISIBLE_ALPHA
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    coverage = coverage[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = coverage.shape
    # Hinting can make the ink a texel or two larger than predicted, and a bitmap font
    # ignores the size: rescale when it is off by more than that.
    if max(h, w) > inner or max(h, w) < inner - 2:
        scale = inner / max(h, w)
        dsize = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
        method = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
        coverage = np.clip(cv2.resize(coverage, dsize, interpolation=method), 0.0, 1.0)
        h, w = coverage.shape
    # Pad to exactly `size` along the longer side (the margin takes the last texels).
    extra = inner - max(h, w)
    pad_y = (margin + extra // 2, margin + extra - extra // 2) if h >= w else (margin, margin)
    pad_x = (margin + extra // 2, margin + extra - extra // 2) if w > h else (margin, margin)
    alpha = np.pad(coverage, (pad_y, pad_x))
    out = np.ones(alpha.shape + (4,), dtype=np.float32)
    out[..., 3] = alpha
    return out
