"""Exports of a painted scene: layered PSD, SVG, PNG at any resolution, and JSON.

>>> from diffbmp.exports import export                      # doctest: +SKIP
>>> export(scene, "painting.psd", scale=2)                 # format from the suffix
>>> export(scene, "painting", format="svg")                # writes painting.svg
>>> export(scene, "strokes.psd", select="shape=brush_flat") # a subset (see .selection)

Every file is written atomically (see :mod:`diffbmp.exports.atomic`). docs/exports.md
describes each format, what is exact and what is approximated.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import math
import os
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import InputError
from ..scene import Scene

__all__ = ["export", "FORMATS", "resolve_format", "writer_options"]

#: Export formats: name -> (module, writer function). Writers are imported on first use, so
#: ``import diffbmp`` does not pay for psd-tools.
FORMATS: dict[str, tuple[str, str]] = {
    "json": ("json_format", "write_json"),
    "png": ("png", "write_png"),
    "psd": ("psd", "write_psd"),
    "svg": ("svg", "write_svg"),
}


def _writer(format: str) -> Callable[..., Path]:
    module, function = FORMATS[format]
    return getattr(importlib.import_module(f"{__name__}.{module}"), function)


def writer_options(format: str) -> list[str]:
    """Names of the keyword options the ``format`` writer accepts (besides ``scale``)."""
    return [
        name for name, parameter in inspect.signature(_writer(format)).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]


def resolve_format(path: str | os.PathLike, format: str | None = None) -> tuple[Path, str]:
    """The output path and format of an export.

    ``format`` wins when given (a path without a suffix gets the format's); otherwise the
    path's suffix names it.

    Raises:
        InputError: for an unknown format (listing the valid ones and the closest match),
            a path whose suffix names no format, or a suffix that contradicts ``format``.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise InputError(f"cannot write {str(path)!r}: it is a folder; give a file name such as {str(path / 'painting.psd')!r}")
    valid = ", ".join(sorted(FORMATS))
    suffix = path.suffix.lower().lstrip(".")
    if format is None:
        if suffix in FORMATS:
            return path, suffix
        if not suffix:
            raise InputError(f"cannot tell the export format of {str(path)!r}: give a format ({valid}) or a file ending such as .psd")
        raise InputError(f"unknown export format {suffix!r}{_closest(suffix)}, taken from the ending of {str(path)!r}; valid formats: {valid}")
    name = str(format).lower().lstrip(".")
    if name not in FORMATS:
        raise InputError(f"unknown export format {str(format)!r}{_closest(name)}; valid formats: {valid}")
    if not suffix:
        return path.with_name(path.name + "." + name), name
    if suffix != name:
        raise InputError(
            f"the output {str(path)!r} ends in .{suffix} but the format is {name}; "
            f"name the file {path.with_suffix('.' + name).name!r} or choose --format {suffix if suffix in FORMATS else name}"
        )
    return path, name


def _closest(name: str) -> str:
    close = difflib.get_close_matches(name, list(FORMATS), n=1, cutoff=0.4)
    return f" (did you mean {close[0]!r}?)" if close else ""


def export(
    scene: Scene,
    path: str | os.PathLike,
    format: str | None = None,
    scale: float = 1.0,
    *,
    select: str | Sequence[str] | None = None,
    **options: Any,
) -> Path:
    """Write ``scene`` to ``path`` as PSD, SVG, PNG or JSON; returns the path written.

    Args:
        scene: the painting.
        path: output file; its suffix picks the format unless ``format`` is given.
        format: ``"psd"``, ``"svg"``, ``"png"`` or ``"json"``.
        scale: resolution multiplier (``scale=4``: a canvas 4x wider and taller).
        select: export only some primitives: ``"shape=brush_flat,star"``,
            ``"index=0-499"``, ``"stage=0,2"``, or a list of these (combined with AND); see
            :func:`~diffbmp.exports.selection.select_primitives`.
        **options: format options, e.g. ``group_by``, ``group_size`` (psd), ``transparent``
            (psd, png, svg), ``dpi`` (psd, png), ``blur`` (psd, png, svg), ``texture_size``
            (psd, png, svg), ``mipmaps`` (svg), ``embed_textures`` (json); see each writer.

    Raises:
        InputError: for an unknown format or option, a bad scale or selection, or an output
            folder that does not exist or cannot be written.
    """
    if not isinstance(scene, Scene):
        raise InputError(f"export() needs a diffbmp Scene, got {type(scene).__name__}")
    if isinstance(scale, bool) or not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise InputError(f"scale must be a positive number, got {scale!r}")
    path, name = resolve_format(path, format)
    accepted = writer_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InputError(f"{name} export has no option {', '.join(repr(u) for u in unknown)}; it accepts: {', '.join(accepted)}")
    if select is not None:
        from .selection import select_primitives

        scene = select_primitives(scene, select)
    return _writer(name)(scene, path, float(scale), **options)
