"""Outlines of text: glyphs laid out with fontTools and fitted into a bitmap's texel box.

The outline is the single source of a glyph primitive: the bank bitmap is rasterised from it
(:func:`diffbmp.primitives.loaders.render_text_rgba`) and the SVG export draws it as a path
(:func:`diffbmp.primitives.outlines.vector_art`), so both always agree.

Layout: left to right, glyph advances from ``hmtx``, pair kerning from the font's GPOS ``kern``
feature (or its legacy ``kern`` table), lines (``\\n``) left-aligned and ``ascender - descender
+ line gap`` apart. No shaping: no ligatures, no right-to-left or complex scripts.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

from fontTools.pens.boundsPen import BoundsPen
from fontTools.pens.recordingPen import RecordingPen
from fontTools.pens.svgPathPen import SVGPathPen
from fontTools.pens.transformPen import TransformPen

from ..errors import InputError
from .boxes import fit_box
from .fonts import FONT_HINT, FontRef, builtin_font_bytes

__all__ = ["TextOutline", "text_outline", "missing_characters"]


@dataclass(frozen=True)
class TextOutline:
    """Text fitted into a bitmap: ``d`` is SVG path data (fill-rule nonzero) in texel units of a
    ``width`` x ``height`` box, y down, the ink's longer side filling the box less a margin."""

    d: str
    width: int
    height: int


class _Font:
    """A font read with fontTools, with what layout needs."""

    def __init__(self, path: str | None, index: int):
        from fontTools.ttLib import TTFont

        self.tt = TTFont(io.BytesIO(builtin_font_bytes()) if path is None else path, fontNumber=index)
        self.glyph_set = self.tt.getGlyphSet()
        self.cmap = self.tt.getBestCmap() or {}
        self.hmtx = self.tt["hmtx"].metrics
        hhea = self.tt["hhea"]
        upem = self.tt["head"].unitsPerEm
        self.line_height = (hhea.ascent - hhea.descent + hhea.lineGap) or 1.2 * upem
        self.space = self.hmtx[self.cmap[32]][0] if 32 in self.cmap else upem / 4
        self.kerning = _pair_kerning(self.tt)


@functools.lru_cache(maxsize=16)
def _read(path: str | None, index: int) -> _Font:
    return _Font(path, index)


def _load(ref: FontRef) -> _Font:
    try:
        return _read(ref.path, ref.index)
    except InputError:
        raise
    except Exception as exc:  # fontTools raises many kinds on a file that is not a font
        raise InputError(f"cannot load font {ref.label!r}: it is not a TrueType/OpenType font fontTools "
                         f"reads ({type(exc).__name__}: {exc}). {FONT_HINT}") from None


def _pair_kerning(tt) -> "dict[tuple[str, str], float] | _GposKerning":
    """Horizontal pair adjustments (font units, read with ``.get(pair, 0)``) from GPOS 'kern'
    lookups (pair positioning, formats 1 and 2, with extensions), else from a format-0
    legacy 'kern' table."""
    if "GPOS" in tt and tt["GPOS"].table.FeatureList is not None:
        table = tt["GPOS"].table
        indices = sorted({i for rec in table.FeatureList.FeatureRecord if rec.FeatureTag == "kern"
                          for i in rec.Feature.LookupListIndex})
        lookups = [table.LookupList.Lookup[i] for i in indices]
        if lookups:
            return _GposKerning(lookups)
    if "kern" in tt:
        pairs: dict[tuple[str, str], float] = {}
        for sub in getattr(tt["kern"], "kernTables", []):
            if getattr(sub, "format", None) == 0 and getattr(sub, "coverage", 1) & 1:  # horizontal
                for pair, value in sub.kernTable.items():
                    pairs.setdefault(pair, value)
        return pairs
    return {}


class _GposKerning:
    """``kerning.get((left, right), 0)`` from GPOS pair-positioning lookups, computed on
    demand (a class-kerned font has far more pairs than a text uses)."""

    def __init__(self, lookups):
        self.cache: dict[tuple[str, str], float] = {}
        self.subtables = []
        for lookup in lookups:
            subs = []
            for sub in lookup.SubTable:
                if lookup.LookupType == 9:  # extension: the real subtable is inside
                    if sub.ExtensionLookupType != 2:
                        continue
                    sub = sub.ExtSubTable
                elif lookup.LookupType != 2:
                    continue
                subs.append((sub, {g: i for i, g in enumerate(sub.Coverage.glyphs)}))
            self.subtables.append(subs)

    def get(self, pair: tuple[str, str], default: float = 0.0) -> float:
        if pair not in self.cache:
            self.cache[pair] = self._value(*pair)
        return self.cache[pair] or default

    def _value(self, left: str, right: str) -> float:
        total = 0.0
        for subs in self.subtables:
            for sub, coverage in subs:  # within a lookup, the first subtable covering `left` applies
                if left not in coverage:
                    continue
                value = None
                if sub.Format == 1:
                    for record in sub.PairSet[coverage[left]].PairValueRecord:
                        if record.SecondGlyph == right:
                            value = record.Value1
                            break
                else:
                    c1 = sub.ClassDef1.classDefs.get(left, 0) if sub.ClassDef1 else 0
                    c2 = sub.ClassDef2.classDefs.get(right, 0) if sub.ClassDef2 else 0
                    value = sub.Class1Record[c1].Class2Record[c2].Value1
                if value is not None or sub.Format == 2:
                    total += float(getattr(value, "XAdvance", 0) or 0)
                    break
        return total


def missing_characters(text: str, font: FontRef) -> list[str]:
    """The characters of ``text`` (whitespace aside) the font has no glyph for."""
    cmap = _load(font).cmap
    return [c for c in dict.fromkeys(text) if not c.isspace() and ord(c) not in cmap]


def _layout(text: str, font: _Font) -> RecordingPen:
    """The outlines of ``text`` in font units, y up, first baseline at y = 0."""
    pen = RecordingPen()
    for line_no, line in enumerate(text.split("\n")):
        x, y, previous = 0.0, -line_no * font.line_height, None
        for char in line:
            glyph = font.cmap.get(ord(char))
            if glyph is None:  # whitespace the font lacks (tab, ...): a space
                x += font.space * (4 if char == "\t" else 1)
                previous = None
                continue
            if previous is not None:
                x += font.kerning.get((previous, glyph), 0.0)
            font.glyph_set[glyph].draw(TransformPen(pen, (1, 0, 0, 1, x, y)))
            x += font.hmtx[glyph][0]
            previous = glyph
    return pen


def _number(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def text_outline(text: str, font: FontRef, size: int) -> TextOutline:
    """``text`` in ``font``, its outlines' bounds fitted into a box whose longer side is
    ``size`` texels, less the margin, centred (:func:`~diffbmp.primitives.boxes.fit_box`).

    Raises:
        InputError: the font cannot be read, lacks a character (named with its code point),
            or draws no ink for the text.
    """
    loaded = _load(font)
    missing = missing_characters(text, font)
    if missing:
        names = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in missing)
        raise InputError(f"the font {font.label!r} has no glyph for {names}: it would draw its 'missing glyph' "
                         "box instead. Choose a font that covers these characters: 'text:<characters>@<font>', the "
                         "config key text_font, or font='path/to/font.ttf' in Python")
    recording = _layout(text, loaded)
    bounds_pen = BoundsPen(loaded.glyph_set)
    recording.replay(bounds_pen)
    if bounds_pen.bounds is None or bounds_pen.bounds[2] <= bounds_pen.bounds[0] or bounds_pen.bounds[3] <= bounds_pen.bounds[1]:
        raise InputError(f"the font {font.label!r} has no visible glyph for {text!r}; "
                         "choose a font that draws these characters")
    box = fit_box(*bounds_pen.bounds, size, y_up=True)
    svg_pen = SVGPathPen(loaded.glyph_set, ntos=_number)
    recording.replay(TransformPen(svg_pen, (box.scale, 0, 0, -box.scale, box.dx, box.dy)))
    return TextOutline(svg_pen.getCommands(), box.width, box.height)
