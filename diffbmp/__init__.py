"""diffbmp: paint images with thousands of primitives through a differentiable compositor.

The core operator is :func:`composite`; :class:`TextureBank` holds the shapes and
:class:`PrimitiveParams` the per-primitive parameters. docs/rendering.md is the contract.
"""

from .constants import ALPHA_MAX, PIXEL_CENTER, PIXEL_SIGMA, T_MIN, TILE_SIZE
from .errors import BackendUnavailableError, ConfigError, DiffBMPError, InputError
from .params import PrimitiveParams
from .primitives import PreparedBank, TextureBank, builtin_names
from .render import composite, composite_premultiplied
from .scene import Scene
from .export import export
from .fit import FitResult, fit
from .video import VideoResult, fit_video

__version__ = "0.1.0"

__all__ = [
    "ALPHA_MAX",
    "PIXEL_CENTER",
    "PIXEL_SIGMA",
    "T_MIN",
    "TILE_SIZE",
    "BackendUnavailableError",
    "ConfigError",
    "DiffBMPError",
    "FitResult",
    "VideoResult",
    "InputError",
    "PrimitiveParams",
    "PreparedBank",
    "Scene",
    "TextureBank",
    "builtin_names",
    "composite",
    "composite_premultiplied",
    "export",
    "fit",
    "fit_video",
]
