"""Loss terms of a fit: image losses, the alpha loss, and regularisers on the primitives.

Images are ``[H, W, 3]`` tensors in [0, 1] (the layout ``composite()`` returns); the
SSIM-based terms convert them to ``[1, 3, H, W]`` for pytorch-msssim.

A per-pixel ``weight`` map [H, W] says which pixels matter: the pixel losses are weighted
means (``sum(w * e) / sum(w)``), so a zero weight removes a region entirely and the scale of
the loss does not depend on how much of the canvas is weighted. The SSIM terms take a
weight map as a mask: where the weight is zero the render is replaced by the target before
comparing, so those pixels neither count nor receive gradient.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from pytorch_msssim import ms_ssim, ssim

from .errors import InputError

__all__ = [
    "mse",
    "l1",
    "ssim_loss",
    "msssim_loss",
    "alpha_loss",
    "outside_loss",
    "overlap_loss",
    "size_loss",
    "psnr",
    "ssim_value",
    "LossWeights",
    "total_loss",
]


def _check_pair(image: torch.Tensor, target: torch.Tensor) -> None:
    if image.shape != target.shape:
        raise InputError(f"the render has shape {list(image.shape)} but the target {list(target.shape)}")


def _weighted_mean(per_pixel: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``per_pixel`` [H, W] (or [H, W, C], averaged over C) under ``weight`` [H, W]."""
    if weight is None:
        return per_pixel.mean()
    if per_pixel.ndim == 3:
        per_pixel = per_pixel.mean(dim=-1)
    if weight.shape != per_pixel.shape:
        raise InputError(f"the weight map has shape {list(weight.shape)} but the image {list(per_pixel.shape)}")
    return (per_pixel * weight).sum() / weight.sum().clamp_min(1e-12)


def mse(image: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error (over pixels and channels), weighted per pixel by ``weight``."""
    _check_pair(image, target)
    return _weighted_mean((image - target).pow(2), weight)


def l1(image: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error (over pixels and channels), weighted per pixel by ``weight``."""
    _check_pair(image, target)
    return _weighted_mean((image - target).abs(), weight)


def _nchw(image: torch.Tensor) -> torch.Tensor:
    return image.permute(2, 0, 1).unsqueeze(0)


def _masked_pair(image: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    _check_pair(image, target)
    if weight is not None:
        keep = (weight > 0).unsqueeze(-1)
        image = torch.where(keep, image, target)
    return _nchw(image), _nchw(target)


def _ssim_window(side: int, wanted: int = 11) -> int:
    """Largest odd Gaussian window <= ``wanted`` that fits an image whose smaller side is ``side``."""
    return max(3, min(wanted, side if side % 2 == 1 else side - 1))


def ssim_loss(image: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """``1 - SSIM`` (Gaussian window 11, sigma 1.5, data range 1)."""
    x, y = _masked_pair(image, target, weight)
    side = min(x.shape[-2:])
    if side < 3:
        raise InputError(f"SSIM needs an image of at least 3x3 pixels, got {list(image.shape[:2])}")
    return 1.0 - ssim(x, y, data_range=1.0, size_average=True, win_size=_ssim_window(side))


_warned_small_msssim = False


def msssim_loss(image: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """``1 - MS-SSIM`` over 5 scales.

    pytorch-msssim needs the smaller side to exceed ``(window - 1) * 16`` pixels; on smaller
    images the window shrinks (down to 3, i.e. images larger than 32 pixels), and below
    that single-scale SSIM is used with a warning.
    """
    global _warned_small_msssim
    x, y = _masked_pair(image, target, weight)
    side = min(x.shape[-2:])
    window = 11
    while window > 3 and side <= (window - 1) * 16:
        window -= 2
    if side <= (window - 1) * 16:
        if not _warned_small_msssim:
            warnings.warn(f"MS-SSIM needs images larger than 32 pixels; using SSIM on this {side}-pixel image", stacklevel=2)
            _warned_small_msssim = True
        return ssim_loss(image, target, weight)
    return 1.0 - ms_ssim(x, y, data_range=1.0, size_average=True, win_size=window)


def alpha_loss(alpha: torch.Tensor, target_alpha: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute difference between the render's alpha and the target's (both [H, W])."""
    if alpha.shape != target_alpha.shape:
        raise InputError(f"the alpha has shape {list(alpha.shape)} but the target alpha {list(target_alpha.shape)}")
    return _weighted_mean((alpha - target_alpha).abs(), weight)


def outside_loss(alpha: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean alpha painted where ``mask`` [H, W] is 0 (0 when nothing is painted outside)."""
    outside = (1 - mask).clamp_min(0)
    return (alpha * outside).sum() / outside.sum().clamp_min(1.0)


def overlap_loss(opacities: torch.Tensor, scales: torch.Tensor, area: float) -> torch.Tensor:
    """How much the primitives pile up: total opacity-weighted area beyond one layer.

    ``sum(o * pi * sx * sy) / area - 1`` clamped at 0: zero while the primitives together
    cover the canvas at most once, then growing linearly. (The rendered alpha saturates at
    1 and cannot tell one layer from ten, so the penalty uses the primitives' footprints.)
    """
    footprint = (opacities * math.pi * scales[:, 0] * scales[:, 1]).sum() / max(area, 1.0)
    return (footprint - 1.0).clamp_min(0.0)


def size_loss(scales: torch.Tensor, min_size: float, max_size: float) -> torch.Tensor:
    """Mean squared log-distance of each half-extent outside [min_size, max_size] pixels."""
    if scales.numel() == 0:
        return scales.sum()
    log = scales.log()
    below = (math.log(min_size) - log).clamp_min(0)
    above = (log - math.log(max_size)).clamp_min(0)
    return (below.pow(2) + above.pow(2)).mean()


def psnr(image: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> float:
    """Peak signal-to-noise ratio in dB of images in [0, 1]."""
    value = float(mse(image.detach(), target.detach(), weight))
    return 10.0 * math.log10(1.0 / max(value, 1e-12))


#: Rows of SSIM map the metric computes at once: bounds its memory on any canvas (a whole
#: 16-megapixel image would take about 1.3 GB of filtered copies).
SSIM_BAND_ROWS = 256


@torch.no_grad()
def ssim_value(image: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> float:
    """SSIM of two [H, W, 3] images in [0, 1] (the weight map taken as a mask, as in
    :func:`ssim_loss`), computed band by band of rows so that large canvases need little memory.

    The same value as ``1 - ssim_loss(...)`` up to float rounding: pytorch-msssim filters with
    a valid (unpadded) window, so each band of the SSIM map needs only its own rows plus the
    window's, and the mean over the map is the row-weighted mean of the bands' means.
    """
    _check_pair(image, target)
    height, width = image.shape[:2]
    side = min(height, width)
    if side < 3:
        raise InputError(f"SSIM needs an image of at least 3x3 pixels, got {[height, width]}")
    window = _ssim_window(side)
    rows = height - window + 1  # rows of the SSIM map
    if rows <= SSIM_BAND_ROWS:
        return 1.0 - float(ssim_loss(image.detach(), target.detach(), weight))
    total = 0.0
    for first in range(0, rows, SSIM_BAND_ROWS):
        count = min(SSIM_BAND_ROWS, rows - first)
        band = slice(first, first + count + window - 1)
        x, y = _masked_pair(image[band].detach(), target[band].detach(), None if weight is None else weight[band])
        total += count * float(ssim(x, y, data_range=1.0, size_average=True, win_size=window))
    return total / rows


@dataclass
class LossWeights:
    """Weights of the loss terms (0 switches a term off).

    Attributes:
        mse, l1, ssim, msssim: image terms.
        alpha: alpha loss, used when the target has alpha.
        outside: penalty on alpha painted outside the mask.
        overlap: overlap regulariser (:func:`overlap_loss`).
        size: size regulariser (:func:`size_loss`) with bounds ``size_min``/``size_max`` px.
    """

    mse: float = 1.0
    l1: float = 0.0
    ssim: float = 0.0
    msssim: float = 0.0
    alpha: float = 1.0
    outside: float = 0.0
    overlap: float = 0.0
    size: float = 0.0
    size_min: float = 0.5
    size_max: float = 64.0


def total_loss(
    weights: LossWeights,
    image: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: torch.Tensor | None = None,
    target_alpha: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    opacities: torch.Tensor | None = None,
    scales: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted sum of the enabled terms, and each term's value (for logging).

    ``weight`` weights the pixel terms; ``mask`` (a region that may be painted) restricts
    the image terms to it and, with ``weights.outside``, penalises painting outside it.
    """
    pixel_weight = weight
    if mask is not None:
        pixel_weight = mask if pixel_weight is None else pixel_weight * mask
    terms: dict[str, torch.Tensor] = {}
    if weights.mse:
        terms["mse"] = mse(image, target, pixel_weight)
    if weights.l1:
        terms["l1"] = l1(image, target, pixel_weight)
    if weights.ssim:
        terms["ssim"] = ssim_loss(image, target, pixel_weight)
    if weights.msssim:
        terms["msssim"] = msssim_loss(image, target, pixel_weight)
    if weights.alpha and alpha is not None and target_alpha is not None:
        terms["alpha"] = alpha_loss(alpha, target_alpha, pixel_weight)
    if weights.outside and alpha is not None and mask is not None:
        terms["outside"] = outside_loss(alpha, mask)
    if weights.overlap and opacities is not None and scales is not None:
        terms["overlap"] = overlap_loss(opacities, scales, float(image.shape[0] * image.shape[1]))
    if weights.size and scales is not None:
        terms["size"] = size_loss(scales, weights.size_min, weights.size_max)
    if not terms:
        raise InputError("every loss weight is 0; enable at least one term (e.g. loss.mse: 1)")
    total = sum(getattr(weights, name) * value for name, value in terms.items())
    return total, {name: float(value.detach()) for name, value in terms.items()}
