"""Vector forms of bank entries, for the SVG export: glyph outlines and SVG stamps.

``vector_art(entry)`` gives the markup that draws an entry in the texel box of its bitmap
(x in [0, w], y in [0, h], y down, w and h the bitmap's width and height), or None when the
entry has no vector source. Glyph and SVG-stamp bitmaps are rasterised from this very markup
(:mod:`diffbmp.primitives.glyphs`, :mod:`diffbmp.primitives.svg_stamps`), so the two agree;
an entry whose source no longer makes its bitmap (a changed file, another font, a learned
texture) gets None, and the export keeps drawing its bitmap.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..constants import KIND_TEXTURE
from ..errors import InputError
from . import BankEntry, SVG_SUFFIXES, TEXT_PREFIX
from .fonts import parse_text_spec, resolve_font
from .glyphs import text_outline
from .rasterise import render_svg_markup
from .svg_stamps import svg_stamp

__all__ = ["VectorArt", "vector_art", "default_id_prefix", "MATCH_PSNR"]

#: A vector form counts as its entry's bitmap when, rasterised, it is this close (dB).
MATCH_PSNR = 30.0


@dataclass(frozen=True)
class VectorArt:
    """An entry drawn as SVG markup.

    Attributes:
        markup: SVG elements drawing the shape in the bitmap's texel box: x in [0, w],
            y in [0, h] of ``entry.rgba`` (w = ``rgba.shape[1]``, h = ``rgba.shape[0]``), y down.
            A glyph is one ``<path d="..."/>`` (fill-rule nonzero, no fill set: it inherits
            the fill of its parent); an SVG stamp is ``<g transform="..."><svg ...>...</svg></g>``
            (the file's drawing, its <defs> kept, ids prefixed), clipped to the file's page.
        own_colours: False for a stencil (only its coverage matters: fill it with the tint);
            True for a drawing in its own colours.
        width: w, the box's width in texels.
        height: h, the box's height in texels.
    """

    markup: str
    own_colours: bool
    width: int
    height: int


def default_id_prefix(entry: BankEntry) -> str:
    """The prefix of ids in an entry's markup: its name made id-safe plus a short hash of
    the name, so the entries of one bank never share an id."""
    digest = hashlib.sha1(entry.name.encode("utf-8")).hexdigest()[:6]
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", Path(entry.name).name)[:24]
    if not re.match(r"[A-Za-z_]", stem):  # an XML id and a CSS selector start with a letter
        stem = "s" + stem
    return f"{stem}-{digest}-"


def vector_art(entry: BankEntry, *, id_prefix: str | None = None, check: bool = True) -> VectorArt | None:
    """The vector form of a glyph (``text:``) or SVG-file entry, in the texel box of its
    bitmap; None for built-ins, raster files, analytic shapes, or when the source is gone
    (font or file missing here) or no longer makes this bitmap.

    Args:
        entry: a bank entry (``bank[k]``).
        id_prefix: starts every id the markup defines (SVG stamps); default
            :func:`default_id_prefix`. Give each entry's markup once per document (e.g. in
            ``<defs>``, drawn with ``<use>``): its ids are not repeated per copy.
        check: rasterise the markup and compare it with the entry's bitmap (at least
            :data:`MATCH_PSNR` dB on alpha, and on premultiplied colour for a stamp); None
            when they differ: a learned texture, a file changed since, a bitmap made by an
            older diffbmp. Without the check only the box size is compared.
    """
    if entry.kind != KIND_TEXTURE or entry.rgba is None:
        return None
    height, width = int(entry.rgba.shape[0]), int(entry.rgba.shape[1])
    size = max(width, height)
    source = entry.source or ""
    try:
        if source.startswith(TEXT_PREFIX):
            parsed = parse_text_spec(source[len(TEXT_PREFIX):])
            outline = text_outline(parsed.text, resolve_font(parsed.font), size)
            art, fonts = VectorArt(f'<path d="{outline.d}"/>', False, outline.width, outline.height), False
        else:
            path = Path(source).expanduser() if source else None
            if path is None or path.suffix.lower() not in SVG_SUFFIXES or not path.is_file():
                return None
            stamp = svg_stamp(path, size, id_prefix=default_id_prefix(entry) if id_prefix is None else id_prefix)
            art, fonts = VectorArt(stamp.markup, True, stamp.width, stamp.height), stamp.uses_text
        if (art.width, art.height) != (width, height):
            return None
        if check and not _draws_bitmap(art, entry.rgba.detach().cpu().double().numpy(), fonts):
            return None
        return art
    except InputError:  # the font or file is unusable here: the bitmap stays the only form
        return None


def _draws_bitmap(art: VectorArt, rgba: np.ndarray, fonts: bool) -> bool:
    """Whether the markup, rasterised as the bank does, is the bitmap ``rgba`` (straight)."""
    drawn = render_svg_markup(art.markup, art.width, art.height, what="the vector form",
                              system_fonts=fonts).astype(np.float64)
    if _psnr(drawn[..., 3], rgba[..., 3]) < MATCH_PSNR:
        return False
    return not art.own_colours or _psnr(drawn[..., :3], rgba[..., :3] * rgba[..., 3:4]) >= MATCH_PSNR


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(1.0 / mse))
