"""The box a vector drawing is fitted into when it becomes a bank bitmap.

Every bitmap is cropped to its visible content plus a transparent margin (the bank maps the
whole bitmap onto a primitive's square); a vector drawing (glyph outlines, an SVG stamp) is
scaled so its content's longer side fills ``size`` texels less that margin, and centred.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CROP_MARGIN", "VISIBLE_ALPHA", "TexelBox", "fit_box"]

#: Texels with alpha at or below this count as empty when cropping.
VISIBLE_ALPHA = 1.0 / 255.0
#: Transparent margin kept around the content, as a fraction of its longer side.
CROP_MARGIN = 0.03


@dataclass(frozen=True)
class TexelBox:
    """Content mapped into a ``width`` x ``height`` texel box: texel = content * scale + (dx, dy)
    (for y-up content, the y scale is ``-scale`` and ``dy`` maps the top edge)."""

    width: int
    height: int
    scale: float
    dx: float
    dy: float


def fit_box(x0: float, y0: float, x1: float, y1: float, size: int, *, y_up: bool = False) -> TexelBox:
    """The box for content spanning [x0, x1] x [y0, y1]: its longer side ``size`` texels,
    its shorter side the content's plus the margins, the content's longer side filling
    ``size`` less a margin of ``max(1, round(CROP_MARGIN * size))`` texels each side, centred.
    With ``y_up`` the content's y axis points up (font units) and is flipped."""
    cw, ch = x1 - x0, y1 - y0
    margin = max(1, int(round(CROP_MARGIN * size)))
    scale = (size - 2 * margin) / max(cw, ch)
    width = size if cw >= ch else max(1, int(round(cw * scale))) + 2 * margin
    height = size if ch > cw else max(1, int(round(ch * scale))) + 2 * margin
    dx = (width - cw * scale) / 2 - x0 * scale
    dy = (height - ch * scale) / 2 + (y1 * scale if y_up else -y0 * scale)
    return TexelBox(width, height, scale, dx, dy)
