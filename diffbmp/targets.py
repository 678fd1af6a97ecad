"""Loading the image a fit paints, and the per-pixel maps (weights, masks) that go with it.

A target is an image file, a NumPy/PyTorch/Pillow image, or ``skimage:<name>`` for an image
bundled with scikit-image (``astronaut``, ``coffee``, ``chelsea``, ``rocket``, ``camera``,
``logo`` ...). It is resized so that its longer side is the fitting canvas size.
An RGBA target keeps its alpha, which the alpha loss and the noisy canvas use.
"""

from __future__ import annotations

import difflib
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import cv2
import numpy as np
import torch

from .errors import InputError, similar_files_hint
from .colour import ColourNote
from .image_files import pillow_srgb_pixels, pixels_to_float, read_image

__all__ = [
    "Target", "load_target", "load_map", "SKIMAGE_PREFIX", "SKIMAGE_ANIMATIONS", "skimage_names", "skimage_file", "canvas_shape",
    "read_image_file", "image_array", "resize_map",
]

SKIMAGE_PREFIX = "skimage:"

#: scikit-image images that ship inside the package (no download needed).
_SKIMAGE_BUNDLED = (
    "astronaut", "brick", "camera", "cat", "cell", "checkerboard", "chelsea", "clock", "coffee", "coins",
    "colorwheel", "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo",
    "microaneurysms", "moon", "page", "retina", "rocket", "shepp_logan_phantom", "text",
)

#: Animated GIFs that ship with scikit-image: ``skimage:no_time_for_that_tiny`` (or with
#: ``.gif``) is a video target.
SKIMAGE_ANIMATIONS = ("no_time_for_that_tiny",)

ImageLike = Union[str, "os.PathLike[str]", np.ndarray, torch.Tensor, Any]


#: scikit-image images whose file is named differently from the function.
_SKIMAGE_FILES = {"colorwheel": "color", "immunohistochemistry": "ihc", "shepp_logan_phantom": "phantom"}


def skimage_names() -> list[str]:
    """Names usable as ``skimage:<name>`` targets."""
    return list(_SKIMAGE_BUNDLED)


def skimage_file(name: str) -> Path:
    """The file of the bundled scikit-image image ``name`` (so it can be a primitive too).

    The animations in :data:`SKIMAGE_ANIMATIONS` are found with or without their ``.gif``.
    """
    import skimage.data

    folder = Path(skimage.data.data_dir)
    animation = name.removesuffix(".gif")
    if animation in SKIMAGE_ANIMATIONS and (folder / f"{animation}.gif").is_file():
        return folder / f"{animation}.gif"
    stem = _SKIMAGE_FILES.get(name, name)
    matches = sorted(folder.glob(f"{stem}.*")) if name in _SKIMAGE_BUNDLED else []
    if not matches:
        close = difflib.get_close_matches(name, skimage_names() + list(SKIMAGE_ANIMATIONS), n=3)
        hint = f" Did you mean {', '.join(repr(SKIMAGE_PREFIX + c) for c in close)}?" if close else ""
        raise InputError(f"'skimage:{name}' is not a bundled scikit-image image file.{hint}")
    return matches[0]


@dataclass
class Target:
    """The image a fit paints, on the fitting canvas.

    Attributes:
        rgb: [H, W, 3] float32 straight colour in [0, 1].
        alpha: [H, W] float32 in [0, 1], or None for an opaque target.
        name: short name (file stem or scikit-image name), used for run folders.
        source: where it came from, for the record.
    """

    rgb: torch.Tensor
    alpha: torch.Tensor | None
    name: str
    source: str

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def has_alpha(self) -> bool:
        return self.alpha is not None

    def over(self, background: torch.Tensor) -> torch.Tensor:
        """The target composited over ``background`` ([3] or [H, W, 3]); the rgb if opaque."""
        if self.alpha is None:
            return self.rgb
        a = self.alpha.unsqueeze(-1)
        return self.rgb * a + background * (1 - a)

    def mean_color(self) -> torch.Tensor:
        """Mean colour [3] of the visible pixels (alpha-weighted)."""
        if self.alpha is None:
            return self.rgb.mean(dim=(0, 1))
        weight = self.alpha.unsqueeze(-1)
        return (self.rgb * weight).sum(dim=(0, 1)) / weight.sum().clamp_min(1e-6)

    def to(self, device: torch.device | str) -> "Target":
        return Target(self.rgb.to(device), None if self.alpha is None else self.alpha.to(device), self.name, self.source)

    def resized(self, height: int, width: int) -> "Target":
        """The target averaged down (or interpolated up) to ``height`` x ``width`` pixels, on its
        device; colour is resampled premultiplied, so transparent pixels do not bleed into it."""
        if (height, width) == (self.height, self.width):
            return self
        rgb = self.rgb.detach().cpu().numpy()
        if self.alpha is None:
            return Target(torch.from_numpy(_resize(rgb, height, width)).to(self.rgb.device), None, self.name, self.source)
        alpha = self.alpha.detach().cpu().numpy()[..., None]
        resized = _resize(np.concatenate([rgb * alpha, alpha], axis=2), height, width)
        coverage = resized[..., 3:]
        colour = np.where(coverage > 1e-6, resized[..., :3] / np.maximum(coverage, 1e-6), 0.0).clip(0, 1).astype(np.float32)
        return Target(torch.from_numpy(colour).to(self.rgb.device),
                      torch.from_numpy(np.ascontiguousarray(coverage[..., 0])).to(self.rgb.device), self.name, self.source)


# ----------------------------------------------------------------------------- arrays
def _as_float_array(image: Any, what: str) -> np.ndarray:
    """Any image-like value as float64 [H, W, C] with C in (1, 3, 4), values in [0, 1]."""
    if isinstance(image, torch.Tensor):
        array = image.detach().cpu()
        if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[2] not in (1, 3, 4):
            array = array.permute(1, 2, 0)  # CHW -> HWC
        array = array.numpy()
    elif isinstance(image, np.ndarray):
        array = image
    elif hasattr(image, "mode") and hasattr(image, "convert"):  # a Pillow image
        array, applied = pillow_srgb_pixels(image, what)
        if applied is not None:
            warnings.warn(f"{what}: converted from its embedded profile {applied!r} to sRGB", ColourNote, stacklevel=3)
        if array.ndim == 3 and array.shape[2] == 2:  # grey and alpha
            array = np.concatenate([np.repeat(array[..., :1], 3, axis=2), array[..., 1:]], axis=2)
    else:
        raise InputError(f"{what} must be an image path, 'skimage:<name>', or a numpy/torch image; got {type(image).__name__}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise InputError(f"{what} must have shape [H, W], [H, W, 3] or [H, W, 4] (or [C, H, W]); got {list(array.shape)}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(f"{what} is empty ({array.shape[1]}x{array.shape[0]} pixels)")
    return pixels_to_float(array, what)


def canvas_shape(height: int, width: int, size: int | None) -> tuple[int, int]:
    """(H, W) of the canvas whose longer side is ``size`` (``None`` keeps the image's size)."""
    if size is None:
        return height, width
    scale = size / max(height, width)
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def _resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    if array.shape[:2] == (height, width):
        return array
    shrinking = height < array.shape[0] or width < array.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    out = cv2.resize(np.asarray(array, dtype=np.float32), (width, height), interpolation=interpolation)
    if out.ndim == 2:
        out = out[:, :, None]
    return np.clip(out, 0.0, 1.0, out=out)


# ----------------------------------------------------------------------------- sources
def _existing_path(spec: str | os.PathLike, what: str) -> Path:
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise InputError(f"{what} {str(path)!r} is a folder, not an image file")
    folder = path.parent if str(path.parent) else Path(".")
    hint = similar_files_hint(path, cutoff=0.5)
    if not folder.is_dir() and not str(spec).startswith(SKIMAGE_PREFIX):
        close = difflib.get_close_matches(str(spec), skimage_names(), n=1, cutoff=0.8)
        if close:
            hint = f" Did you mean 'skimage:{close[0]}'?"
    raise InputError(f"{what} {str(path)!r} does not exist.{hint}")


def _read_file(path: Path, what: str, dtype: type = np.float64) -> np.ndarray:
    """[H, W, 3], or [H, W, 4] for a file with alpha (image_files.read_image)."""
    rgba, has_alpha = read_image(path, what, dtype)
    return rgba if has_alpha else rgba[..., :3]


def read_image_file(path: str | os.PathLike, what: str = "image") -> np.ndarray:
    """The pixels of an image file as float64 [H, W, C] in [0, 1] (InputError naming the file)."""
    return _read_file(Path(path), what)


def image_array(image: Any, what: str = "image") -> np.ndarray:
    """Any image value (numpy, torch, Pillow) as float64 [H, W, C] in [0, 1], C in (1, 3, 4)."""
    return _as_float_array(image, what)


def _read_skimage(name: str, what: str) -> np.ndarray:
    import skimage.data

    if name not in _SKIMAGE_BUNDLED:
        close = difflib.get_close_matches(name, skimage_names(), n=3)
        hint = f" Did you mean {', '.join(repr(SKIMAGE_PREFIX + c) for c in close)}?" if close else ""
        raise InputError(f"{what} 'skimage:{name}' is not a bundled scikit-image image.{hint} Choose one of: {', '.join(skimage_names())}")
    try:
        image = getattr(skimage.data, name)()
    except Exception as error:  # e.g. a scikit-image version that no longer bundles it
        raise InputError(f"scikit-image could not load {name!r}: {error}") from None
    return _as_float_array(np.asarray(image), f"{what} 'skimage:{name}'")


def _read_any(spec: ImageLike, what: str, dtype: type = np.float64) -> tuple[np.ndarray, str, str]:
    """(float array [H, W, C], name, source) of any supported image value (a file's pixels as
    ``dtype``; arrays and bundled images as float64)."""
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        if text.startswith(SKIMAGE_PREFIX):
            name = text[len(SKIMAGE_PREFIX):]
            return _read_skimage(name, what), name, text
        path = _existing_path(text, what)
        return _read_file(path, what, dtype), path.stem, str(path)
    return _as_float_array(spec, what), "array", f"<{type(spec).__name__}>"


def load_target(spec: ImageLike, size: int | None = 256) -> Target:
    """Load a target image and resize it so that its longer side is ``size`` pixels.

    Args:
        spec: an image path, ``"skimage:<name>"``, or a numpy/torch/Pillow image ([H, W],
            [H, W, 3], [H, W, 4] or [C, H, W]; uint8, uint16, bool, or float in [0, 1]). A
            file's bit depth comes from the file (image_files.read_image).
        size: longer side of the fitting canvas; None keeps the image's own size.

    Raises:
        InputError: the file is missing (with similar names), unreadable, or the array is
            not an image.
    """
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise InputError(f"size must be a positive whole number of pixels, got {size!r}")
    # float32 from the start: a 16-megapixel target is fitted in float32, and a float64 copy
    # of it would take 0.5 GB.
    array, name, source = _read_any(spec, "target image", np.float32)
    height, width = canvas_shape(array.shape[0], array.shape[1], size)
    channels = array.shape[2]
    alpha = None
    if channels == 4:
        alpha_full = array[..., 3:4]
        if float(alpha_full.min()) >= 1.0:
            array = array[..., :3]  # fully opaque: treat as RGB
        else:
            # Resize premultiplied colour so transparent pixels do not bleed their colour.
            premultiplied = np.concatenate([array[..., :3] * alpha_full, alpha_full], axis=2)
            resized = _resize(premultiplied, height, width)
            alpha = resized[..., 3]
            rgb = np.where(alpha[..., None] > 1e-6, resized[..., :3] / np.maximum(alpha[..., None], 1e-6), 0.0)
            array = np.concatenate([np.clip(rgb, 0, 1), alpha[..., None]], axis=2)
    if alpha is None:
        array = _resize(array[..., :3] if array.shape[2] >= 3 else np.repeat(array, 3, axis=2), height, width)
        if array.shape[2] == 1:
            array = np.repeat(array, 3, axis=2)
    rgb = torch.from_numpy(np.ascontiguousarray(array[..., :3], dtype=np.float32))
    alpha_tensor = None if alpha is None else torch.from_numpy(np.ascontiguousarray(array[..., 3], dtype=np.float32))
    return Target(rgb, alpha_tensor, name, source)


# ----------------------------------------------------------------------------- maps
_SHAPE_MAPS = ("ellipse", "rect")


def _shape_map(spec: str, height: int, width: int, what: str) -> np.ndarray:
    """An antialiased ellipse or rectangle given in fractions of the canvas."""
    kind, _, args = spec.partition(":")
    defaults = {"ellipse": [0.5, 0.5, 0.4, 0.45], "rect": [0.25, 0.25, 0.75, 0.75]}[kind]
    try:
        values = [float(v) for v in args.split(",")] if args else defaults
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        form = "ellipse:cx,cy,rx,ry" if kind == "ellipse" else "rect:x0,y0,x1,y1"
        raise InputError(f"{what} {spec!r} must be written {form!r} with four numbers in canvas fractions (0..1)")
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    x = (x + 0.5) / width
    y = (y + 0.5) / height
    pixel = 1.0 / max(height, width)
    if kind == "ellipse":
        cx, cy, rx, ry = values
        if rx <= 0 or ry <= 0:
            raise InputError(f"{what} {spec!r}: the radii must be > 0")
        r = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
        distance = (r - 1.0) * min(rx, ry)  # about the distance to the outline, in canvas fractions
    else:
        x0, y0, x1, y1 = values
        if x1 <= x0 or y1 <= y0:
            raise InputError(f"{what} {spec!r}: need x0 < x1 and y0 < y1")
        distance = np.maximum(np.maximum(x0 - x, x - x1), np.maximum(y0 - y, y - y1))
    return np.clip(0.5 - distance / pixel, 0.0, 1.0)


def resize_map(values: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A per-pixel map [H, W] (weights, a mask) averaged down or interpolated up to ``height`` x
    ``width``, on its device."""
    if tuple(values.shape) == (height, width):
        return values
    array = _resize(values.detach().cpu().numpy()[:, :, None], height, width)[..., 0]
    return torch.from_numpy(np.ascontiguousarray(array)).to(values.device)


def load_map(spec: ImageLike, height: int, width: int, what: str = "weight map") -> torch.Tensor:
    """A per-pixel map [H, W] in [0, 1] on the fitting canvas.

    Args:
        spec: a greyscale (or RGBA: its alpha) image path or array, resized to the canvas;
            or ``"ellipse"`` / ``"ellipse:cx,cy,rx,ry"`` / ``"rect:x0,y0,x1,y1"`` (canvas
            fractions) for a generated shape.
        height, width: the canvas.
        what: what the map is for, used in error messages.
    """
    if isinstance(spec, str) and spec.partition(":")[0] in _SHAPE_MAPS:
        array = _shape_map(spec, height, width, what)
    else:
        image, _, _ = _read_any(spec, what)
        if image.shape[2] == 4 and float(image[..., 3].min()) < 1.0:
            channel = image[..., 3]
        elif image.shape[2] >= 3:
            channel = image[..., :3] @ np.array([0.299, 0.587, 0.114])
        else:
            channel = image[..., 0]
        source_aspect = channel.shape[1] / channel.shape[0]
        if abs(source_aspect - width / height) > 0.02 * max(source_aspect, 1.0):
            raise InputError(
                f"{what} is {channel.shape[1]}x{channel.shape[0]} pixels but the target is {width}x{height}; "
                "give a map with the target's aspect ratio"
            )
        array = _resize(channel[:, :, None], height, width)[..., 0]
    if float(array.max()) <= 0.0:
        raise InputError(f"{what} is zero everywhere, so no pixel would count; paint the region that matters white")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
