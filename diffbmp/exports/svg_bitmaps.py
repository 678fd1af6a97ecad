"""The images an SVG export embeds for a bitmap: resolution levels, pre-blurred copies, and the
two pictures (alpha stencil, opaque colours) that make the colour blend exact.

**Variants.** A primitive refers to a *variant* of its bitmap, picked per primitive:

- halved ``halve_x`` times along x and ``halve_y`` times along y (a rip-map level, as the model
  keeps, docs/rendering.md 5.4), so that the viewer finds 1-2 texels per output pixel along
  each axis of the primitive: many viewers (resvg, browsers at some zoom levels) sample a
  minified image without prefiltering it, which aliases its edges;
- at a fitted blur, blurred as the model blurs it. An isotropic screen Gaussian of deviation
  ``sigma_e`` is an axis-aligned Gaussian of ``sigma_e * w / (2 sx)`` by
  ``sigma_e * h / (2 sy)`` texels (section 4), which the model draws from a blend of two
  rip-map levels (5.4); the copy carries the spread of that blend (:func:`model_variance`)
  less what the viewer adds itself (its one-pixel antialiasing and its interpolation of the
  copy's texels), quantised to quarter octaves so that primitives of similar sizes share a
  copy. Blurring the image itself rather than through ``feGaussianBlur`` draws the same in
  every viewer: librsvg (2.54) draws deviations under two device pixels far too sharp (its
  kernel's outer taps are sampled one pixel too far out), and viewers without filters
  ignore the blur.

Sharp exports (no fitted blur) leave the prefilter to the viewer, which antialiases a
magnified or minified image on its own.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..constants import MIP_BASE_SIGMA, PIXEL_SIGMA
from ..primitives.pyramid import num_levels
from .textures import to_uint8

__all__ = ["Variant", "VariantImage", "choose_variants", "model_variance", "outline_softening",
           "variant_image", "opaque_colours", "white_stencil", "is_white"]

#: Steps per octave of the blur deviations that get a copy of their own.
BLUR_STEPS_PER_OCTAVE = 4
#: Deviation (in texels of the stored copy) under which a blur is left out: it moves no
#: 8-bit value.
_NEGLIGIBLE_TEXELS = 0.05


@dataclass(frozen=True, order=True)
class Variant:
    """One stored copy of a bitmap: halvings along x and y, and the blur deviation along x and y
    in base texels as a quantised step ``2 ** (step / BLUR_STEPS_PER_OCTAVE)`` (None: sharp)."""

    halve_x: int = 0
    halve_y: int = 0
    blur_x: int | None = None
    blur_y: int | None = None

    @property
    def suffix(self) -> str:
        """A short id part, unique per variant: ``1_2`` or ``1_2_b3_-1``."""
        text = f"{self.halve_x}_{self.halve_y}"
        if self.blur_x is not None or self.blur_y is not None:
            text += f"_b{_step_text(self.blur_x)}_{_step_text(self.blur_y)}"
        return text


def _step_text(step: int | None) -> str:
    return "n" if step is None else str(step)


@dataclass(frozen=True)
class VariantImage:
    """A variant's straight RGBA pixels and the box it is drawn over, in base texels (the
    bitmap's own box is ``[-w/2, w/2] x [-h/2, h/2]``; a blurred copy is larger by its tails)."""

    pixels: np.ndarray
    x: float
    y: float
    width: float
    height: float


def _halvings(texels: int, extent_px: np.ndarray) -> np.ndarray:
    """Halvings that leave 1-2 texels per output pixel over ``extent_px`` output pixels."""
    density = texels / np.maximum(extent_px, 1e-9)
    level = np.floor(np.log2(np.maximum(density, 1.0))).astype(np.int64)
    deepest = int(math.floor(math.log2(max(1, texels // 2)))) if texels >= 2 else 0
    return np.clip(level, 0, max(0, deepest))


def model_variance(deviation: np.ndarray, texels: int) -> np.ndarray:
    """Variance (base texels squared) of the model's texture filter for a Gaussian of
    ``deviation`` base texels along an axis of ``texels`` texels (docs/rendering.md 5.4).

    Level ``i >= 1`` is the texture blurred by ``MIP_BASE_SIGMA * 2**i`` texels, read halfway
    between base texels (a quarter texel squared) and interpolated linearly between its own
    texels ``2**i`` apart (a sixth of their spacing squared, over all phases); level 0 is the
    linear interpolation alone. The model blends two neighbouring levels linearly.
    """
    deepest = num_levels(texels) - 1
    lx = np.clip(np.log2(np.maximum(deviation, 1e-12) / MIP_BASE_SIGMA), 0, deepest)
    i0 = np.floor(lx)
    i1 = np.minimum(i0 + 1, deepest)
    f = lx - i0

    def level(i: np.ndarray) -> np.ndarray:
        spread = (MIP_BASE_SIGMA * 2.0**i) ** 2 + 0.25 + 4.0**i / 6.0
        return np.where(i == 0, 1.0 / 6.0, spread)

    return (1.0 - f) * level(i0) + f * level(i1)


def _copy_deviation(texels: int, extent_px: np.ndarray, halvings: np.ndarray, sigma_e: float, scale: float) -> np.ndarray:
    """Deviation (base texels) a copy carries so that the viewer, adding its one-pixel box and
    its interpolation of the copy's texels, draws the model's spread."""
    per_px = texels / np.maximum(extent_px, 1e-9)  # base texels per output pixel
    target = model_variance(sigma_e * scale * per_px, texels)
    viewer = (PIXEL_SIGMA * per_px) ** 2 + 4.0**halvings / 6.0
    return np.sqrt(np.maximum(target - viewer, 0.0))


def outline_softening(texels: int, extent_px: np.ndarray) -> np.ndarray:
    """Deviation (texels of the bitmap) of the blur that makes a vector outline drawn
    ``extent_px`` output pixels across look like the model's drawing of its ``texels``-texel
    bitmap, along one axis.

    The model draws the bitmap (the outline's area coverage per texel: a one-texel box)
    through its texture filter at the pixel prefilter's deviation (:func:`model_variance`);
    a viewer draws the outline with its one-pixel antialiasing alone. The difference matters
    where a primitive is drawn at a few texels per pixel or fewer; an export at a larger scale
    re-makes the bitmaps finer, and it shrinks.
    """
    per_px = texels / np.maximum(np.asarray(extent_px, np.float64), 1e-9)  # texels per output pixel
    target = 1.0 / 12.0 + model_variance(PIXEL_SIGMA * per_px, texels)
    viewer = (PIXEL_SIGMA * per_px) ** 2
    return np.sqrt(np.maximum(target - viewer, 0.0))


def _blur_steps(deviation_texels: np.ndarray) -> list[int | None]:
    steps = np.rint(BLUR_STEPS_PER_OCTAVE * np.log2(np.maximum(deviation_texels, 1e-12))).astype(np.int64)
    return [int(s) if d > 0 else None for s, d in zip(steps, deviation_texels)]


def choose_variants(
    width: int, height: int, sx: np.ndarray, sy: np.ndarray, scale: float, blur: float, mipmaps: bool
) -> list[Variant]:
    """The variant each primitive of a ``width x height`` bitmap draws with.

    Args:
        sx, sy: half-extents of the primitives in canvas pixels.
        scale: output pixels per canvas pixel.
        blur: fitted blur in canvas pixels (0: sharp copies).
        mipmaps: False keeps the full resolution for every primitive.
    """
    sx, sy = np.asarray(sx, np.float64), np.asarray(sy, np.float64)
    if mipmaps:
        hx, hy = _halvings(width, 2 * sx * scale), _halvings(height, 2 * sy * scale)
    else:
        hx = hy = np.zeros(len(sx), dtype=np.int64)
    if blur > 0:
        sigma_e = math.sqrt(blur**2 + (PIXEL_SIGMA / scale) ** 2)  # canvas pixels (section 4)
        bx = _blur_steps(_copy_deviation(width, 2 * sx * scale, hx, sigma_e, scale))
        by = _blur_steps(_copy_deviation(height, 2 * sy * scale, hy, sigma_e, scale))
    else:
        bx = by = [None] * len(sx)
    return [Variant(int(a), int(b), c, d) for a, b, c, d in zip(hx, hy, bx, by)]


def _halved(premultiplied: torch.Tensor, halve_x: int, halve_y: int) -> torch.Tensor:
    """Premultiplied [4, H, W] box-filtered down by 2**halve_y rows and 2**halve_x columns."""
    if halve_x == 0 and halve_y == 0:
        return premultiplied
    h, w = premultiplied.shape[1:]
    size = (max(1, -(-h // 2**halve_y)), max(1, -(-w // 2**halve_x)))
    return torch.nn.functional.interpolate(premultiplied[None], size=size, mode="area")[0]


@functools.lru_cache(maxsize=256)
def _kernel(variance: float) -> tuple[float, ...]:
    """A symmetric sampled-Gaussian kernel whose variance is ``variance`` (texels squared).

    A Gaussian sampled at the texels has less variance than its parameter when that is under
    a texel or so; the parameter is solved for, so small blurs keep their exact spread.
    """
    def sampled(s: float) -> tuple[np.ndarray, float]:
        radius = max(1, math.ceil(4 * s))
        k = np.arange(-radius, radius + 1, dtype=np.float64)
        g = np.exp(-0.5 * (k / s) ** 2)
        g /= g.sum()
        return g, float((g * k * k).sum())

    low, high = 1e-3, math.sqrt(variance) + 1.0
    for _ in range(60):
        middle = 0.5 * (low + high)
        if sampled(middle)[1] < variance:
            low = middle
        else:
            high = middle
    return tuple(sampled(high)[0].tolist())


def _blurred(premultiplied: torch.Tensor, deviation_x: float, deviation_y: float) -> tuple[torch.Tensor, int, int]:
    """Premultiplied [4, H, W] blurred by Gaussians of the given deviations (texels), padded by
    their tails; also the padding along x and y in texels."""
    out, pads = premultiplied[None].double(), []
    for axis, deviation in ((3, deviation_x), (2, deviation_y)):
        if deviation < _NEGLIGIBLE_TEXELS:
            pads.append(0)
            continue
        kernel = torch.tensor(_kernel(deviation * deviation), dtype=torch.float64)
        radius = (len(kernel) - 1) // 2
        shape = (1, 1, 1, len(kernel)) if axis == 3 else (1, 1, len(kernel), 1)
        padding = (radius, radius, 0, 0) if axis == 3 else (0, 0, radius, radius)
        out = torch.nn.functional.pad(out, padding)
        out = torch.nn.functional.conv2d(out.reshape(-1, 1, *out.shape[2:]), kernel.reshape(shape), padding="same")
        out = out.reshape(1, 4, *out.shape[2:])
        pads.append(radius)
    return out[0].float(), pads[0], pads[1]


def variant_image(rgba: torch.Tensor, variant: Variant) -> VariantImage:
    """The pixels of ``variant`` of a bitmap given as straight RGBA [H, W, 4] floats."""
    rgba = rgba.detach().float().cpu()
    h, w = rgba.shape[:2]
    premultiplied = torch.cat([rgba[..., :3] * rgba[..., 3:], rgba[..., 3:]], dim=-1).permute(2, 0, 1)
    level = _halved(premultiplied, variant.halve_x, variant.halve_y)
    texel_x, texel_y = w / level.shape[2], h / level.shape[1]  # base texels per stored texel
    pad_x = pad_y = 0
    if variant.blur_x is not None or variant.blur_y is not None:
        deviations = []
        for step, halvings, texel in ((variant.blur_x, variant.halve_x, texel_x), (variant.blur_y, variant.halve_y, texel_y)):
            if step is None:
                deviations.append(0.0)
                continue
            # The box filter of the halving already spread the copy by (4**j - 1) / 12 texels^2.
            variance = (2.0 ** (step / BLUR_STEPS_PER_OCTAVE)) ** 2 - (4.0**halvings - 1.0) / 12.0
            deviations.append(math.sqrt(max(variance, 0.0)) / texel)
        level, pad_x, pad_y = _blurred(level, deviations[0], deviations[1])
    alpha = level[3:].clamp(0, 1)
    colour = torch.where(alpha > 0, level[:3] / alpha.clamp_min(1e-12), torch.ones_like(level[:3])).clamp(0, 1)
    pixels = to_uint8(torch.cat([colour, alpha]).permute(1, 2, 0).numpy())
    return VariantImage(pixels, -w / 2 - pad_x * texel_x, -h / 2 - pad_y * texel_y, w + 2 * pad_x * texel_x, h + 2 * pad_y * texel_y)


def is_white(pixels: np.ndarray) -> bool:
    """Whether every visible texel of 8-bit RGBA ``pixels`` is white (a stencil already)."""
    return bool((pixels[..., :3][pixels[..., 3] > 0] >= 255).all())


def white_stencil(pixels: np.ndarray) -> np.ndarray:
    """8-bit grey-alpha [H, W, 2]: white carrying the alpha of RGBA ``pixels`` (a mask whose
    luminance equals its alpha, read the same with or without ``mask-type:alpha``)."""
    return np.stack([np.full(pixels.shape[:2], 255, np.uint8), pixels[..., 3]], axis=-1)


def _box3(values: np.ndarray) -> np.ndarray:
    """Sum over each texel's 3x3 neighbourhood (zero outside) of [H, W, ...] values."""
    h, w = values.shape[:2]
    padded = np.pad(values, ((1, 1), (1, 1)) + ((0, 0),) * (values.ndim - 2))
    return sum(padded[i:i + h, j:j + w] for i in range(3) for j in range(3))


def opaque_colours(pixels: np.ndarray, reach: int = 4) -> np.ndarray:
    """8-bit RGB [H, W, 3]: the straight colours of RGBA ``pixels``, carried ``reach`` texels
    into the transparent ones (an image filter reading across the edge then finds the edge's
    colour, as the model's premultiplied interpolation does) and the mean colour beyond."""
    alpha = pixels[..., 3].astype(np.float64) / 255
    colour = pixels[..., :3].astype(np.float64) / 255
    known = alpha > 0
    if not known.any():
        return np.full(pixels.shape[:2] + (3,), 255, np.uint8)
    mean = (colour * alpha[..., None]).sum((0, 1)) / alpha.sum()
    weight = alpha  # the first ring: the neighbours' colours weighted as the model weighs them
    for _ in range(reach):
        sums, weights = _box3(colour * weight[..., None]), _box3(weight)
        ring = ~known & (weights > 0)
        colour[ring] = sums[ring] / weights[ring, None]
        known = known | ring
        weight = known.astype(np.float64)
    colour[~known] = mean
    return to_uint8(colour)
