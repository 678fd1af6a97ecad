"""SVG files as stamps: the drawing fitted into a bitmap's texel box, as markup.

A stamp's bitmap is rasterised from the same markup the SVG export draws
(:func:`diffbmp.primitives.outlines.vector_art`), so both agree by construction. The markup
is ``<g transform="matrix(...)"><svg ...>...</svg></g>``: the file's root ``<svg>`` kept as a
nested viewport (its viewBox, preserveAspectRatio, presentation attributes and clipping to
the page are what they were), its page size in pixels written out, mapped so that the visible
content plus a margin fills the box. Ids are prefixed (and ``#id`` / ``url(#id)`` references,
class names and ``<style>`` rules with them) so that many stamps live in one document; style
rules are scoped to the stamp. Elements of other XML namespaces (editor metadata) are dropped.
"""

from __future__ import annotations

import base64
import gzip
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from ..errors import InputError
from .boxes import VISIBLE_ALPHA, fit_box
from .rasterise import SVG_NS, XLINK_NS, render_svg_markup

__all__ = ["SvgStamp", "svg_stamp"]

#: The content is located on a raster this many times the bitmap's size (at most 4096 a side).
LOCATE_ZOOM = 4
_XML_NS = "http://www.w3.org/XML/1998/namespace"
_UNITS_PX = {"": 1.0, "px": 1.0, "pt": 96 / 72, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54, "in": 96.0,
             "em": 16.0, "ex": 8.0}
_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
                ".webp": "image/webp", ".svg": "image/svg+xml"}
_ROOT_DROPPED = {"width", "height", "x", "y", "version", "baseProfile", "id"}


@dataclass(frozen=True)
class SvgStamp:
    """An SVG drawing fitted into a ``width`` x ``height`` texel box (y down): ``markup``
    draws it there in its own colours. ``uses_text``: it has ``<text>`` elements, which
    need the installed fonts to be drawn (resvg takes a moment to load them)."""

    markup: str
    width: int
    height: int
    uses_text: bool = False  #: the drawing has <text>: rasterising it needs the installed fonts


def _read_root(p: Path) -> ET.Element:
    try:
        data = p.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        root = ET.fromstring(data)
    except (OSError, ET.ParseError, EOFError, ValueError) as exc:
        raise InputError(f"cannot read SVG file {str(p)!r} as XML ({exc})") from None
    if root.tag not in ("svg", f"{{{SVG_NS}}}svg"):
        raise InputError(f"SVG file {str(p)!r} has no <svg> root element (found <{root.tag}>)")
    return root


def _local(tag: str) -> tuple[str | None, str]:
    """``(namespace, local name)``; unqualified names count as SVG."""
    if tag.startswith("{"):
        ns, name = tag[1:].split("}", 1)
        return ns, name
    return None, tag


def _length(value: str | None) -> float | None:
    """A length attribute in pixels (96 per inch); None when absent, relative (%) or unreadable."""
    if value is None:
        return None
    match = re.fullmatch(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-z]*)\s*", value)
    if not match or match.group(2) not in _UNITS_PX:
        return None
    return float(match.group(1)) * _UNITS_PX[match.group(2)]


def _page_size(root: ET.Element, p: Path) -> tuple[float, float]:
    """The page in pixels: width and height attributes, else the viewBox's size (SVG's
    rules for a standalone document whose size is missing or relative)."""
    box = _view_box(root)
    width, height = _length(root.get("width")), _length(root.get("height"))
    if box is not None:
        if width is None and height is None:
            width, height = box[2], box[3]
        elif width is None:
            width = height * box[2] / box[3]
        elif height is None:
            height = width * box[3] / box[2]
    if not width or not height or width <= 0 or height <= 0:
        raise InputError(f"SVG file {str(p)!r} has zero or unknown size; give the <svg> a width and height, or a viewBox")
    return float(width), float(height)


def _view_box(root: ET.Element) -> tuple[float, float, float, float] | None:
    try:
        box = [float(v) for v in re.split(r"[\s,]+", (root.get("viewBox") or "").strip())]
    except ValueError:
        return None
    return (box[0], box[1], box[2], box[3]) if len(box) == 4 and box[2] > 0 and box[3] > 0 else None


class _Prefixer:
    """Renames ids and class names with a prefix, and the references to them; inlines the
    local files ``<image>`` elements name (relative to the SVG file's folder), which would
    otherwise be looked for beside the document the markup ends up in."""

    def __init__(self, root: ET.Element, prefix: str, folder: Path):
        self.prefix = prefix
        self.folder = folder
        self.ids = {el.get("id") for el in root.iter() if el.get("id")}

    def image(self, value: str) -> str:
        ref = value.strip()
        if ref.startswith("file:"):
            path = Path(url2pathname(urlparse(ref).path))
        elif re.match(r"^(#|[a-zA-Z][a-zA-Z0-9+.-]*:)", ref):  # a reference, inline data, a web address
            return self.href(value)
        else:
            path = self.folder / unquote(ref)
        mime = _IMAGE_TYPES.get(path.suffix.lower())
        if mime is None or not path.is_file():
            return value  # left as it is: a viewer resolves it, or shows nothing, as with the file itself
        return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"

    def ref(self, value: str) -> str:
        """``#id`` and ``url(#id)`` references in an attribute or CSS text."""
        value = re.sub(r"url\(\s*(['\"]?)#([^)'\"\s]+)\1\s*\)",
                       lambda m: f"url(#{self.prefix}{m.group(2)})" if m.group(2) in self.ids else m.group(0), value)
        return value

    def href(self, value: str) -> str:
        return f"#{self.prefix}{value[1:]}" if value.startswith("#") and value[1:] in self.ids else value

    def css(self, text: str, scope: str) -> str:
        """A style sheet with ids, classes and references renamed and every plain rule's
        selectors scoped to ``#scope`` (rules inside @-blocks keep their selectors)."""
        text = self.ref(text)
        text = re.sub(r"#(-?[_a-zA-Z][\w-]*)", lambda m: f"#{self.prefix}{m.group(1)}" if m.group(1) in self.ids else m.group(0), text)
        text = re.sub(r"(?<![\w\d])\.(-?[_a-zA-Z][\w-]*)", lambda m: f".{self.prefix}{m.group(1)}", text)
        if "@" in text:
            return text  # nested blocks: renamed but not scoped

        def scoped(match: re.Match) -> str:
            selectors = ", ".join(f"#{scope} {s.strip()}" for s in match.group(1).split(",") if s.strip())
            return f"{selectors} {{{match.group(2)}}}"

        return re.sub(r"([^{}]+)\{([^{}]*)\}", scoped, text)


def _serialise(el: ET.Element, prefixer: _Prefixer, scope: str, out: list[str]) -> None:
    ns, name = _local(el.tag)
    if ns not in (None, SVG_NS):
        return  # editor metadata (Inkscape, Sodipodi, RDF): not drawn
    attrs = []
    for key, value in el.attrib.items():
        kns, kname = _local(key)
        if kns == XLINK_NS:
            kname = "xlink:" + kname
        elif kns == _XML_NS:
            kname = "xml:" + kname
        elif kns is not None:
            continue
        if kname == "id":
            value = prefixer.prefix + value
        elif kname in ("href", "xlink:href"):
            value = prefixer.image(value) if name == "image" else prefixer.href(value)
        elif kname == "class":
            value = " ".join(prefixer.prefix + c for c in value.split())
        else:
            value = prefixer.ref(value)
        attrs.append(f" {kname}={quoteattr(value)}")
    out.append(f"<{name}{''.join(attrs)}>")
    if el.text:
        out.append(escape(prefixer.css(el.text, scope) if name == "style" else el.text))
    for child in el:
        _serialise(child, prefixer, scope, out)
        if child.tail:
            out.append(escape(child.tail))
    out.append(f"</{name}>")


def _nested_svg(root: ET.Element, page: tuple[float, float], prefix: str, folder: Path) -> str:
    """The file's root as a nested ``<svg>`` of the page's size in pixels."""
    prefixer = _Prefixer(root, prefix, folder)
    scope = f"{prefix}root"
    attrs = [f' id="{scope}"', f' xmlns:xlink="{XLINK_NS}"', f' width="{page[0]!r}" height="{page[1]!r}"']
    for key, value in root.attrib.items():
        kns, kname = _local(key)
        if kns is not None or kname in _ROOT_DROPPED:
            continue
        if kname == "class":
            value = " ".join(prefix + c for c in value.split())
        attrs.append(f" {kname}={quoteattr(prefixer.ref(value))}")
    out = [f"<svg{''.join(attrs)}>"]
    if root.text and root.text.strip():
        out.append(escape(root.text))
    for child in root:
        _serialise(child, prefixer, scope, out)
    out.append("</svg>")
    return "".join(out)


def _ink_box(alpha: np.ndarray) -> tuple[int, int, int, int] | None:
    visible = alpha > VISIBLE_ALPHA
    if not visible.any():
        return None
    rows = np.flatnonzero(visible.any(axis=1))
    cols = np.flatnonzero(visible.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _number(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def svg_stamp(path: str | Path, size: int, *, id_prefix: str = "s-") -> SvgStamp:
    """The drawing of the SVG file at ``path`` fitted into a box whose longer side is ``size``
    texels: its visible content (alpha > 1/255, located on a raster ``LOCATE_ZOOM`` times
    finer) scaled to fill the box less the margin, centred
    (:func:`~diffbmp.primitives.boxes.fit_box`). ``id_prefix`` starts every id the markup
    defines.

    Raises:
        InputError: the file is not readable SVG, has no size, or draws nothing visible.
    """
    p = Path(path).expanduser()
    root = _read_root(p)
    page = _page_size(root, p)
    body = _nested_svg(root, page, id_prefix, p.parent)
    what = f"SVG file {str(p)!r}"
    uses_text = any(_local(el.tag)[1] == "text" for el in root.iter())
    # Locate the content on the whole page, then again, finer, on the part that holds it.
    longer = max(page)
    k = size / longer
    pw, ph = max(1, int(round(page[0] * k))), max(1, int(round(page[1] * k)))
    coarse = render_svg_markup(body, pw, ph, view_box=(0.0, 0.0, page[0], page[1]), samples=1, what=what, system_fonts=uses_text)
    ink = _ink_box(coarse[..., 3])
    if ink is None:
        raise InputError(f"{what} is entirely transparent; it draws nothing visible")
    px = (page[0] / pw, page[1] / ph)
    x0, y0 = max(0.0, (ink[0] - 1) * px[0]), max(0.0, (ink[1] - 1) * px[1])
    x1, y1 = min(page[0], (ink[2] + 1) * px[0]), min(page[1], (ink[3] + 1) * px[1])
    fine = min(LOCATE_ZOOM * size, 4096) / max(x1 - x0, y1 - y0)
    fw, fh = max(1, int(np.ceil((x1 - x0) * fine))), max(1, int(np.ceil((y1 - y0) * fine)))
    view = (x0, y0, fw / fine, fh / fine)
    ink = _ink_box(render_svg_markup(body, fw, fh, view_box=view, samples=1, what=what, system_fonts=uses_text)[..., 3])
    if ink is None:  # content thinner than the coarse raster suggested: keep the coarse box
        ink = (0, 0, fw, fh)
    cx0, cy0 = x0 + ink[0] / fine, y0 + ink[1] / fine
    cw, ch = (ink[2] - ink[0]) / fine, (ink[3] - ink[1]) / fine
    box = fit_box(cx0, cy0, cx0 + cw, cy0 + ch, size)
    transform = f"matrix({_number(box.scale)} 0 0 {_number(box.scale)} {_number(box.dx)} {_number(box.dy)})"
    return SvgStamp(f'<g transform="{transform}">{body}</g>', box.width, box.height, uses_text)
