"""How good a painted video is: per-frame PSNR (from the fit) and flicker.

Flicker is the mean absolute change between consecutive painted frames over the pixels
where the target did not change (every channel of ``|target_t - target_t-1|`` below
1/255): a painting of a still region should not move. It is reported in 8-bit grey levels
(0..255), averaged over channels and those pixels; a frame whose target changed everywhere
has no flicker value (NaN).
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

__all__ = ["STATIC_THRESHOLD", "static_pixels", "flicker", "mean_flicker"]

#: A pixel is static when no channel of the target changed by this much (one 8-bit level).
STATIC_THRESHOLD = 1.0 / 255.0


def static_pixels(previous_target: torch.Tensor, target: torch.Tensor, threshold: float = STATIC_THRESHOLD) -> torch.Tensor:
    """[H, W] bool: pixels where every channel of the target changed by less than ``threshold``."""
    return (target - previous_target).abs().amax(dim=-1) < threshold


def flicker(previous_painted: torch.Tensor, painted: torch.Tensor, previous_target: torch.Tensor, target: torch.Tensor) -> float:
    """Mean ``|painted_t - painted_t-1|`` (grey levels, 0..255) over the target's static pixels; NaN if none."""
    still = static_pixels(previous_target, target)
    count = int(still.sum())
    if count == 0:
        return float("nan")
    change = (painted - previous_painted).abs().mean(dim=-1)
    return float(change[still].sum()) / count * 255.0


def mean_flicker(values: Iterable[float]) -> float:
    """The mean of the per-frame flicker values that are defined (NaN if none is)."""
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return sum(kept) / len(kept) if kept else float("nan")
