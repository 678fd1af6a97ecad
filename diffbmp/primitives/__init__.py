"""The texture bank: the shapes primitives are drawn with.

A bank holds named entries, each a bitmap (straight RGBA, loaded from a file, rendered from
a font, or made in code) or an analytic shape (circle, Gaussian). ``prepare()`` turns it into
the flat, pyramid-filtered form the compositor reads (docs/rendering.md, 5.4).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from ..constants import KIND_CIRCLE, KIND_GAUSSIAN, KIND_TEXTURE
from ..errors import InputError
from .pyramid import PreparedBank, flatten_bank

__all__ = ["BankEntry", "TextureBank", "PreparedBank", "ANALYTIC_SHAPES", "IMAGE_SUFFIXES"]

#: Names of the analytic shapes and their kinds.
ANALYTIC_SHAPES = {"circle": KIND_CIRCLE, "gaussian": KIND_GAUSSIAN}

#: File endings read as bitmaps (anything Pillow opens) or vector drawings.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".tga"}
SVG_SUFFIXES = {".svg", ".svgz"}
TEXT_PREFIX = "text:"


@dataclass
class BankEntry:
    """One shape of the bank.

    Attributes:
        name: unique name (used in exports and layer names).
        kind: KIND_TEXTURE, KIND_CIRCLE or KIND_GAUSSIAN.
        rgba: straight (non-premultiplied) RGBA in [0, 1], [H, W, 4]; None for analytic shapes.
            May require grad to learn the texture (torch backend).
        source: where the bitmap came from (a path, "builtin:<name>", "text:<string>" or
            "text:<string>@<font>|<font file>"), for provenance in saved scenes and for
            re-making the bitmap (:meth:`TextureBank.rebuilt`); a spec :meth:`TextureBank.add` reads.
    """

    name: str
    kind: int
    rgba: torch.Tensor | None = None
    source: str = ""

    @property
    def aspect(self) -> float:
        """Width over height of the bitmap (1 for analytic shapes): the natural sx / sy."""
        if self.rgba is None:
            return 1.0
        return float(self.rgba.shape[1]) / float(self.rgba.shape[0])


def _as_rgba_tensor(rgba: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    tensor = rgba if isinstance(rgba, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(rgba))
    if tensor.ndim != 3 or tensor.shape[2] != 4:
        raise InputError(f"texture {name!r} must have shape [height, width, 4] (RGBA), got {tuple(tensor.shape)}")
    if tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise InputError(f"texture {name!r} is empty ({tensor.shape[0]}x{tensor.shape[1]} texels); give it at least 1x1 texels")
    if not tensor.is_floating_point():
        raise InputError(f"texture {name!r} must be floating point in [0, 1], got {tensor.dtype}; divide 8-bit data by 255")
    if not bool(torch.isfinite(tensor.detach()).all()):
        raise InputError(f"texture {name!r} contains NaN or infinite values")
    if float(tensor.detach().min()) < 0.0 or float(tensor.detach().max()) > 1.0:
        raise InputError(f"texture {name!r} has values outside [0, 1]; RGBA textures are stored as fractions")
    return tensor if tensor.requires_grad else tensor.to(torch.float32)


class TextureBank:
    """An ordered collection of shapes; a primitive's shape id indexes it.

    Example:
        >>> bank = TextureBank.from_names(["circle", "brush_flat", "my_stamp.png"])  # doctest: +SKIP
    """

    def __init__(self, entries: Iterable[BankEntry] = ()):
        self._entries: list[BankEntry] = []
        self._cache: dict[tuple[str, torch.dtype], PreparedBank] = {}
        for entry in entries:
            self._append(entry)

    # ----------------------------------------------------------------- building
    def _append(self, entry: BankEntry) -> int:
        if any(existing.name == entry.name for existing in self._entries):
            raise InputError(f"the bank already has an entry named {entry.name!r}; give each shape a unique name")
        self._entries.append(entry)
        self._cache.clear()
        return len(self._entries) - 1

    def add_texture(self, name: str, rgba: np.ndarray | torch.Tensor, *, source: str = "") -> int:
        """Add a straight-RGBA bitmap [H, W, 4] in [0, 1]; returns its shape id."""
        return self._append(BankEntry(name, KIND_TEXTURE, _as_rgba_tensor(rgba, name), source or name))

    def add_analytic(self, name: str) -> int:
        """Add the analytic ``"circle"`` or ``"gaussian"``; returns its shape id."""
        if name not in ANALYTIC_SHAPES:
            raise InputError(f"unknown analytic shape {name!r}; choose one of {sorted(ANALYTIC_SHAPES)}")
        return self._append(BankEntry(name, ANALYTIC_SHAPES[name], None, f"analytic:{name}"))

    def add(self, spec: str, *, texture_size: int = 128, font: str | None = None) -> int:
        """Add a shape named by ``spec``; returns its shape id.

        ``spec`` is an analytic shape (``circle``, ``gaussian``), a built-in primitive
        (``diffbmp.primitives.builtin_names()``), ``text:<characters>`` or
        ``text:<characters>@<font>`` for glyphs, or the path of an image (PNG, JPG, ...) or
        SVG file.

        A text spec's font (after a single ``@``; ``@@`` is an at-sign, a lone ``text:@`` the
        at-sign) is a family or full name (``DejaVu Serif``, looked up with fontconfig), a
        font file name or a .ttf/.otf path; without one, ``font`` draws it (same forms; None:
        Pillow's built-in font, which has the Latin letters, digits and punctuation). The
        entry is named ``spec`` as written; its source keeps the font as asked and the file it
        resolved to (see :func:`diffbmp.primitives.fonts.text_source`), so :meth:`rebuilt` uses it.
        """
        from . import fonts, loaders, procedural

        if spec in ANALYTIC_SHAPES:
            return self.add_analytic(spec)
        if spec.startswith(TEXT_PREFIX):
            parsed = fonts.parse_text_spec(spec[len(TEXT_PREFIX):])
            try:
                ref = fonts.resolve_font(parsed.font if parsed.font is not None else font)
            except InputError as error:
                if parsed.font is None:
                    raise
                raise InputError(f"{error} (In {spec!r} the font is named after a single '@'; write '@@' for an "
                                 "at-sign in the text, e.g. 'text:me@@home'.)") from None
            rgba = loaders.render_text_rgba(parsed.text, font=ref, size=texture_size)
            return self.add_texture(spec, rgba, source=fonts.text_source(parsed.text, ref))
        if spec in procedural.builtin_names():
            return self.add_texture(spec, procedural.make_builtin(spec, texture_size), source=f"builtin:{spec}")
        path = Path(spec).expanduser()
        suffix = path.suffix.lower()
        if suffix in SVG_SUFFIXES:
            return self.add_texture(path.stem, loaders.load_svg_rgba(path, size=texture_size), source=str(path))
        if suffix in IMAGE_SUFFIXES or path.exists():
            return self.add_texture(path.stem, loaders.load_image_rgba(path, max_size=texture_size), source=str(path))
        known = sorted(ANALYTIC_SHAPES) + procedural.builtin_names()
        close = difflib.get_close_matches(spec, known, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise InputError(
            f"unknown primitive {spec!r}.{hint} Use an analytic shape ({', '.join(sorted(ANALYTIC_SHAPES))}), "
            f"a built-in ({', '.join(procedural.builtin_names())}), 'text:<characters>', or an image/SVG file path."
        )

    @classmethod
    def from_names(cls, specs: Sequence[str] | str, *, texture_size: int = 128, font: str | None = None) -> "TextureBank":
        """A bank of the shapes named in ``specs`` (see :meth:`add`; ``font`` draws the
        ``text:`` ones); a folder adds every image in it."""
        if isinstance(specs, str):
            specs = [specs]
        bank = cls()
        for spec in specs:
            path = Path(spec).expanduser()
            if path.is_dir():
                files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES | SVG_SUFFIXES)
                if not files:
                    raise InputError(f"the folder {str(path)!r} holds no image or SVG files to use as primitives")
                for file in files:
                    bank.add(str(file), texture_size=texture_size)
            else:
                bank.add(spec, texture_size=texture_size, font=font)
        if len(bank) == 0:
            raise InputError("no primitives were named; list at least one shape, e.g. ['circle']")
        return bank

    # ----------------------------------------------------------------- reading
    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: int) -> BankEntry:
        return self._entries[index]

    def __iter__(self):
        return iter(self._entries)

    @property
    def names(self) -> list[str]:
        return [entry.name for entry in self._entries]

    def index(self, name: str) -> int:
        """Shape id of the entry called ``name``."""
        for i, entry in enumerate(self._entries):
            if entry.name == name:
                return i
        close = difflib.get_close_matches(name, self.names, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise InputError(f"the bank has no shape named {name!r}.{hint} It has: {', '.join(self.names)}")

    def rebuilt(self, texture_size: int) -> "TextureBank":
        """The same shapes with bitmaps re-made at ``texture_size`` texels where their source
        allows it (built-ins, text in the font it was made with, files that still exist);
        other bitmaps (a font or file this machine lacks, learned textures' sources that
        fail) are kept as they are.

        Rendering a scene far larger than it was fitted wants sharper bitmaps than fitting did.
        """
        rebuilt = TextureBank()
        for entry in self._entries:
            source = entry.source
            remade = None
            if entry.kind == KIND_TEXTURE:
                try:
                    if source.startswith("builtin:") or source.startswith(TEXT_PREFIX):
                        spec = source[len("builtin:"):] if source.startswith("builtin:") else source
                        probe = TextureBank()
                        probe.add(spec, texture_size=texture_size)
                        remade = probe[0].rgba
                    elif source and Path(source).is_file():
                        probe = TextureBank()
                        probe.add(source, texture_size=texture_size)
                        remade = probe[0].rgba
                except InputError:
                    remade = None
            rebuilt._append(BankEntry(entry.name, entry.kind, entry.rgba if remade is None else remade, source))
        return rebuilt

    @property
    def requires_grad(self) -> bool:
        return any(e.rgba is not None and e.rgba.requires_grad for e in self._entries)

    def prepare(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> PreparedBank:
        """The flat pyramid form of the bank on ``device`` (cached unless a texture requires grad)."""
        device = torch.device(device)
        key = (str(device), dtype)
        if not self.requires_grad and key in self._cache:
            return self._cache[key]
        kinds = [entry.kind for entry in self._entries]
        premultiplied = [None if e.rgba is None else _premultiply(e.rgba) for e in self._entries]
        prepared = flatten_bank(kinds, premultiplied, dtype, device)
        if not self.requires_grad:
            self._cache[key] = prepared
        return prepared


def _premultiply(rgba: torch.Tensor) -> torch.Tensor:
    return torch.cat([rgba[..., :3] * rgba[..., 3:4], rgba[..., 3:4]], dim=-1)


def builtin_names() -> list[str]:
    """Names of the built-in procedural primitives."""
    from .procedural import builtin_names as names

    return names()
