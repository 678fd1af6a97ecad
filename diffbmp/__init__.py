"""diffbmp: paint images with thousands of primitives through a differentiable compositor.

The core operator is :func:`composite`; :class:`TextureBank` holds the shapes and
:class:`PrimitiveParams` the per-primitive parameters. docs/rendering.md is the contract.
:func:`fit` paints a target image, :func:`fit_video` a clip, :func:`batch` many of them,
and :func:`export` writes a painting as PSD, SVG, PNG or JSON.

The names below are imported on first use: ``import diffbmp`` (and ``diffbmp --help``) does
not import PyTorch until something needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it. Every submodule keeps its own name: no function
#: here shares a name with a module of the package (``diffbmp.fit`` is the function,
#: ``diffbmp.fitting.image`` the module behind it; ``diffbmp.export`` and ``diffbmp.exports``).
_PUBLIC = {
    "ALPHA_MAX": "constants",
    "PIXEL_CENTER": "constants",
    "PIXEL_SIGMA": "constants",
    "T_MIN": "constants",
    "TILE_SIZE": "constants",
    "BackendUnavailableError": "errors",
    "ConfigError": "errors",
    "DiffBMPError": "errors",
    "InputError": "errors",
    "PrimitiveParams": "params",
    "PreparedBank": "primitives",
    "TextureBank": "primitives",
    "builtin_names": "primitives",
    "composite": "render",
    "composite_premultiplied": "render",
    "Scene": "scene",
    "export": "exports",
    "FitResult": "fitting.image",
    "fit": "fitting.image",
    "VideoResult": "video",
    "fit_video": "video",
    "batch": "batching",
    "BatchResult": "batching",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'diffbmp' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from .constants import ALPHA_MAX, PIXEL_CENTER, PIXEL_SIGMA, T_MIN, TILE_SIZE  # noqa: F401
    from .errors import BackendUnavailableError, ConfigError, DiffBMPError, InputError  # noqa: F401
    from .batching import BatchResult, batch  # noqa: F401
    from .exports import export  # noqa: F401
    from .fitting.image import FitResult, fit  # noqa: F401
    from .params import PrimitiveParams  # noqa: F401
    from .primitives import PreparedBank, TextureBank, builtin_names  # noqa: F401
    from .render import composite, composite_premultiplied  # noqa: F401
    from .scene import Scene  # noqa: F401
    from .video import VideoResult, fit_video  # noqa: F401
