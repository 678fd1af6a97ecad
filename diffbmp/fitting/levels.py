"""Coarse to fine in resolution, and crops on large canvases.

A fit with levels ``[0.25, 0.5, 1]`` spends its first share of steps on the target shrunk to a
quarter of its size (a sixteenth of the pixels), then on half, then on the whole canvas. The
scene itself never changes resolution: primitives live in canvas pixels, and a level renders
them scaled (as ``Scene.render(scale)`` does), so the painting carries over from level to level
unchanged. When a level starts, primitives are split where the error at the new resolution is
(:mod:`.densify`), so the count grows with the detail the level can see.

On a canvas (or level) larger than :data:`AUTO_CROP_ABOVE` pixels a side, each step renders a
random square crop (``minibatch.crop: auto``), which bounds a step's time and memory.

Everything here is a pure function of the configuration and the canvas size, so a resumed fit
finds the same levels and crops.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..config import FitConfig
from ..errors import ConfigError
from ..params import PrimitiveParams
from ..targets import Target, resize_map

__all__ = ["Level", "LevelView", "plan_levels", "level_index", "crop_side", "resolved_settings", "AUTO_LEVELS", "AUTO_LEVELS_ABOVE", "AUTO_CROP_ABOVE"]

#: ``levels.scales: auto`` on a canvas whose longer side exceeds AUTO_LEVELS_ABOVE pixels.
AUTO_LEVELS = (0.25, 0.5, 1.0)
AUTO_LEVELS_ABOVE = 2048
#: ``minibatch.crop: auto`` renders crops of this side on canvases (levels) larger than it.
AUTO_CROP_ABOVE = 2048


@dataclass(frozen=True)
class Level:
    """One resolution level: from ``first_step`` on, the fit renders at ``scale`` with ``count``
    primitives (the canvas size is that of ``Scene.canvas_size(scale)``)."""

    scale: float
    first_step: int
    count: int


def _shares(values: list[float] | None, default: list[float], what: str, count: int) -> list[float]:
    chosen = default if values is None else [float(v) for v in values]
    if len(chosen) != count:
        raise ConfigError(f"levels.{what} has {len(chosen)} values but levels.scales has {count}; give one per level")
    return chosen


def plan_levels(config: FitConfig, height: int, width: int, *, plain_fixed_count: bool) -> list[Level]:
    """The levels of a fit on a ``height`` x ``width`` canvas (one level at scale 1: none).

    ``plain_fixed_count``: whether the fit is a fixed-count fit of the plain strategy without
    stages, the only kind levels apply to (``auto`` is then off; asked for explicitly with
    another kind of fit, levels are a ConfigError that says what to change).
    """
    levels = config.levels
    n, steps = config.n, config.steps
    if levels.scales == "auto":
        if not plain_fixed_count or max(height, width) <= AUTO_LEVELS_ABOVE or steps < len(AUTO_LEVELS):
            return [Level(1.0, 0, n)]
        scales = list(AUTO_LEVELS)
    else:
        scales = [float(s) for s in levels.scales]
        if len(scales) > 1 and not plain_fixed_count:
            raise ConfigError("levels.scales applies to fixed-count fits of the plain strategy without stages; set "
                              "strategy: plain and stages.count: 1 (and no budget), or levels.scales: [1]")
    count = len(scales)
    step_shares = _shares(levels.steps, [1.0 / count] * count, "steps", count)
    count_shares = _shares(levels.counts, scales, "counts", count)
    if any(b < a for a, b in zip(count_shares, count_shares[1:])) or count_shares[-1] != 1.0:
        raise ConfigError(f"levels.counts must not decrease and must end at 1 (all n primitives), got {count_shares}")
    if steps < count:
        raise ConfigError(f"{count} levels need at least {count} steps, but steps is {steps}")
    total = sum(step_shares)
    plan: list[Level] = []
    for k, (scale, share) in enumerate(zip(scales, count_shares)):
        first = 0 if k == 0 else int(round(steps * sum(step_shares[:k]) / total))
        first = min(max(first, plan[-1].first_step + 1 if plan else 0), steps - (count - k))
        primitives = max(1, min(n, int(round(n * share))))
        plan.append(Level(scale, first, max(primitives, plan[-1].count if plan else 1)))
    return plan


def level_index(plan: list[Level], step: int) -> int:
    """The level that step ``step`` (0-based) runs in."""
    index = 0
    for k, level in enumerate(plan):
        if level.first_step <= step:
            index = k
    return index


def _auto_crop(height: int, width: int) -> int:
    """What ``minibatch.crop: auto`` means on a ``height`` x ``width`` canvas."""
    return AUTO_CROP_ABOVE if max(height, width) > AUTO_CROP_ABOVE else 0


def crop_side(config: FitConfig, height: int, width: int) -> int:
    """Side of the random crop rendered per step on a ``height`` x ``width`` canvas (0: whole)."""
    crop = config.minibatch.crop
    if crop == "auto":
        crop = _auto_crop(height, width)
    return 0 if crop <= 0 or (crop >= height and crop >= width) else int(crop)


def resolved_settings(relevant: dict, height: int, width: int) -> dict:
    """``relevant`` settings (``result_relevant``) with ``minibatch.crop: auto`` replaced by the
    side it means on a ``height`` x ``width`` canvas, so that runs are compared by what they
    do: a run saved with ``crop: 0`` (the default before ``auto``) resumes on canvases where
    ``auto`` means the whole canvas."""
    minibatch = relevant.get("minibatch")
    if not isinstance(minibatch, dict) or minibatch.get("crop") != "auto":
        return relevant
    return {**relevant, "minibatch": {**minibatch, "crop": _auto_crop(height, width)}}


class LevelView:
    """The target, weight map and mask at one level's resolution, and the scaling of
    parameters onto its canvas (the identity at scale 1)."""

    def __init__(self, scale: float, height: int, width: int, target: Target, weight_map: torch.Tensor | None,
                 mask: torch.Tensor | None):
        self.scale = scale
        self.height, self.width = height, width
        self.target = target.resized(height, width)
        self.weight_map = None if weight_map is None else resize_map(weight_map, height, width)
        self.mask = None if mask is None else resize_map(mask, height, width)

    @property
    def full(self) -> bool:
        return self.scale == 1.0

    def scaled(self, params: PrimitiveParams) -> PrimitiveParams:
        """``params`` (canvas pixels) on this level's canvas."""
        if self.full:
            return params
        return replace(params, means=params.means * self.scale, scales=params.scales * self.scale)

    def to_canvas(self, values: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """A per-pixel map [h, w] of this level (an error, say) on the ``height`` x ``width`` canvas,
        each level pixel repeated over the canvas pixels it covers."""
        if self.full:
            return values
        return torch.nn.functional.interpolate(values[None, None], size=(height, width), mode="nearest")[0, 0]
