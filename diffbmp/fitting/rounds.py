"""The search strategy's plan and measures (the fit loop does the scene edits).

Few primitives are where gradient descent alone gets stuck: a primitive that starts in the
wrong place has no gradient that brings it to the right one. The search strategy finds
each primitive by search against the residual (:mod:`.search`), all at the start or in
rounds whose counts double, and at a few points moves the primitives whose removal would
cost least to where the search finds the most error now.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import SearchConfig
from ..params import PrimitiveParams
from ..primitives.pyramid import PreparedBank
from ..render import composite
from .search import SearchSettings

__all__ = ["plan_rounds", "relocation_steps", "search_settings", "removal_harm"]

#: Canvases longer than this are measured at a reduced size when ranking primitives.
_HARM_SIDE = 128


def plan_rounds(n: int, steps: int, search: SearchConfig, largest_px: float) -> list[tuple[int, int, float]]:
    """(first step, primitives added, largest half-size in px) of each round: the total
    doubles each round and is ``n`` after the last, which starts at ``search.until``."""
    # A fit of one step has no step boundary at which a later round could arrive.
    count = max(1, min(search.rounds, n)) if steps > 1 else 1
    totals = [max(1, round(n / 2 ** (count - 1 - k))) for k in range(count)]
    plan: list[tuple[int, int, float]] = []
    placed = 0
    for k, total in enumerate(totals):
        if total <= placed:
            continue
        start = 0 if k == 0 else max(1, min(steps - 1, int(round(k * search.until * steps / (count - 1)))))
        plan.append((start, total - placed, largest_px))
        placed = total
    return plan


def relocation_steps(steps: int, search: SearchConfig) -> list[int]:
    """The steps before which the least useful primitives are moved."""
    return sorted({int(round(f * steps)) for f in search.relocate if 0 < int(round(f * steps)) < steps})


def search_settings(search: SearchConfig, side: float, min_size: float) -> SearchSettings:
    """The search settings of ``search`` on a canvas whose longer side is ``side`` pixels."""
    return SearchSettings(
        candidates=search.candidates, climbs=search.climbs, perturbations=search.perturbations, opacity=search.opacity,
        # Candidates below a pixel would waste the search: a few primitives are never that small.
        min_size=max(min_size, 1.0), max_size=max(search.max_size * side, min_size, 1.0), max_aspect=search.max_aspect,
    )


@torch.no_grad()
def removal_harm(params: PrimitiveParams, prepared: PreparedBank, background: torch.Tensor, target: torch.Tensor,
                 weight: torch.Tensor | None, backend: str | None) -> torch.Tensor:
    """How much the squared error [N] would grow if each primitive alone were removed.

    Exact leave-one-out renders at blur 0, on a canvas reduced to at most 128 pixels across
    (the ranking needs the large picture, not the last pixel).
    """
    height, width = target.shape[:2]
    scale = min(1.0, _HARM_SIDE / max(height, width))
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    small = params.map(lambda t: t.detach())
    small.means = small.means * torch.tensor([w / width, h / height], dtype=small.means.dtype, device=small.means.device)
    small.scales = small.scales * scale
    reduce = lambda image: F.adaptive_avg_pool2d(image.permute(2, 0, 1).unsqueeze(0), (h, w))[0].permute(1, 2, 0)  # noqa: E731
    wanted = reduce(target)
    pixel_weight = None if weight is None else reduce(weight.unsqueeze(-1))[..., 0]

    def error(chosen: PrimitiveParams) -> float:
        image, _ = composite(chosen, prepared, background, h, w, blur=0.0, backend=backend, validate=False)
        squared = (image - wanted).pow(2).sum(-1)
        return float((squared if pixel_weight is None else squared * pixel_weight).sum())

    count = small.means.shape[0]
    base = error(small)
    harm = torch.empty(count, dtype=torch.float64)
    keep = torch.ones(count, dtype=torch.bool, device=small.means.device)
    for i in range(count):
        keep[i] = False
        harm[i] = error(small.select(keep)) - base
        keep[i] = True
    return harm
