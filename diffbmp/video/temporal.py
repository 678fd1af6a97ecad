"""The temporal loss: later frames of a video pay for changing what did not change.

It has two terms. The hold term (:func:`hold_loss`, ``video.temporal.weight``) is in image
space: the painting's squared change from the previous painting (moved along the flow where
the target moved), weighted per pixel by :func:`hold_map` of the target's change. The anchor
term (:func:`temporal_loss`, ``video.temporal.anchor``, off by default) is in parameter
space: for each primitive ``i`` of a later frame the penalty is

    w_i * ( c_means     * |mean_i - anchor_mean_i|^2                     (pixels^2)
          + c_scales    * |halfsize_i - anchor_halfsize_i|^2             (pixels^2)
          + c_rotations * (wrap(angle_i - anchor_angle_i) * r_i)^2         (pixels^2 of arc)
          + c_colors    * |colour_i - anchor_colour_i|^2                 (colour in 0..1)
          + c_opacities * (opacity_i - anchor_opacity_i)^2 )

where the anchor is the previous frame's primitive (its centre moved by the optical flow),
``r_i`` its larger half-size, and the weight

    w_i = weight * max(visible_i, 1) / (H * W) / (1 + (change_i / change_scale)^2)

is large for a primitive that shows many pixels (``visible_i``: sum over pixels of its alpha
times the transmittance in front of it) of a region where the target did not change
(``change_i``: mean target change over those pixels). Summed over primitives, the visible
shares add up to at most one, so ``weight`` is the cost per pixel of the canvas.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from ..params import PrimitiveParams
from ..primitives import PreparedBank, TextureBank
from ..render import composite_premultiplied
from ..scene import Scene
from .flow import warp

__all__ = [
    "TemporalCosts", "temporal_loss", "hold_loss", "hold_map", "footprint_sums", "footprint_means", "change_map", "penalty_weights",
]


@dataclass(frozen=True)
class TemporalCosts:
    """Cost of a unit change of each parameter group (see the module docstring for the units)."""

    means: float = 1.0
    scales: float = 1.0
    rotations: float = 1.0
    colors: float = 100.0
    opacities: float = 100.0

    @classmethod
    def from_config(cls, temporal: Any) -> "TemporalCosts":
        """From the ``video.temporal`` section of a config."""
        return cls(temporal.means, temporal.scales, temporal.rotations, temporal.colors, temporal.opacities)


def temporal_loss(params: PrimitiveParams, anchor: PrimitiveParams, weights: torch.Tensor, costs: TemporalCosts) -> torch.Tensor:
    """``sum_i weights_i * d_i``: the weighted squared change of every primitive from its anchor.

    Args:
        params: the primitives now (activated; gradients flow through them).
        anchor: what they are held to (same N; treated as constants).
        weights: [N] per-primitive weights (:func:`penalty_weights`).
        costs: cost of each parameter group.
    """
    anchor = anchor.map(lambda t: t.detach())
    weights = weights.detach()
    change = params.rotations - anchor.rotations
    turned = torch.atan2(torch.sin(change), torch.cos(change))  # the shorter way round
    reach = anchor.scales.max(dim=1).values
    per_primitive = (
        costs.means * (params.means - anchor.means).pow(2).sum(dim=1)
        + costs.scales * (params.scales - anchor.scales).pow(2).sum(dim=1)
        + costs.rotations * (turned * reach).pow(2)
        + costs.colors * (params.colors - anchor.colors).pow(2).sum(dim=1)
        + costs.opacities * (params.opacities - anchor.opacities).pow(2)
    )
    return (weights * per_primitive).sum()


@torch.no_grad()
def _probe(params: PrimitiveParams, prepared: PreparedBank | TextureBank, maps: torch.Tensor, backend: str | None) -> torch.Tensor:
    """``sum_p alpha_i(p) T_i(p) maps(p)`` [N, 3] for three maps [H, W, 3], by one backward pass.

    The premultiplied colour of channel k is ``sum_i alpha_i T_i colour_ik``, so its gradient
    with respect to ``colour_ik`` is the footprint of primitive i: probing with zero colours
    and weighting the output by the maps gives the weighted footprint sums.
    """
    probe = torch.zeros_like(params.colors, requires_grad=True)
    probed = replace(params, colors=probe, beta=torch.zeros_like(params.opacities))
    height, width = maps.shape[:2]
    with torch.enable_grad():
        colour, _ = composite_premultiplied(probed, prepared, height, width, blur=0.0, backend=backend)
        (colour * maps).sum().backward()
    return probe.grad.detach()


def footprint_sums(scene: Scene, maps: torch.Tensor, *, prepared: PreparedBank | TextureBank | None = None,
                   backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each primitive's visible pixels [N] and its footprint sums [N, K] of ``maps`` [H, W, K].

    ``visible_i = sum_p alpha_i(p) T_i(p)`` (at blur 0, occlusion included) and
    ``sums_ik = sum_p alpha_i(p) T_i(p) maps_k(p)``.
    """
    params = scene.params().map(lambda t: t.detach())
    prepared = prepared if prepared is not None else scene.bank
    height, width, count = maps.shape
    ones = torch.ones(height, width, 1, dtype=maps.dtype, device=maps.device)
    columns = torch.cat([ones, maps], dim=2)
    parts = []
    for start in range(0, count + 1, 3):
        chunk = columns[..., start:start + 3]
        padded = torch.cat([chunk, chunk.new_zeros(height, width, 3 - chunk.shape[2])], dim=2) if chunk.shape[2] < 3 else chunk
        parts.append(_probe(params, prepared, padded.contiguous(), backend)[:, : chunk.shape[2]])
    sums = torch.cat(parts, dim=1)
    return sums[:, 0], sums[:, 1:]


def footprint_means(scene: Scene, maps: torch.Tensor, *, prepared: PreparedBank | TextureBank | None = None,
                    backend: str | None = None, min_visible: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Visible pixels [N] and the mean of ``maps`` [H, W, K] over each primitive's visible
    pixels [N, K] (0 for primitives that show less than ``min_visible`` pixels)."""
    visible, sums = footprint_sums(scene, maps, prepared=prepared, backend=backend)
    shown = visible > min_visible
    means = torch.where(shown.unsqueeze(1), sums / visible.clamp_min(min_visible).unsqueeze(1), torch.zeros_like(sums))
    return visible, means


def change_map(previous: torch.Tensor, current: torch.Tensor, backward_flow: torch.Tensor | None = None) -> torch.Tensor:
    """How much the target changed at each pixel [H, W]: the largest channel of
    ``|current - previous|``, with ``previous`` first moved along the flow when
    ``backward_flow`` (from ``current`` to ``previous``) is given, so that content that only
    moved counts as unchanged."""
    if backward_flow is not None:
        previous = warp(previous, backward_flow)
    return (current - previous).abs().amax(dim=-1)


def penalty_weights(visible: torch.Tensor, change: torch.Tensor, height: int, width: int, weight: float,
                    change_scale: float) -> torch.Tensor:
    """Per-primitive weights of :func:`temporal_loss`:
    ``weight * max(visible, 1) / (H * W) / (1 + (change / change_scale)^2)``.

    A hidden primitive counts as showing one pixel: its image gradient is (nearly) zero, so a
    small penalty is enough to keep it from wandering off and reappearing somewhere else.
    """
    return weight * (visible.clamp_min(1.0) / float(height * width)) / (1.0 + (change / change_scale) ** 2)


def hold_map(change: torch.Tensor, change_scale: float) -> torch.Tensor:
    """How firmly each pixel of the painting is held to the previous one [H, W]:
    ``1 / (1 + (change / change_scale)^2)``, 1 where the target did not change (after
    following the flow) and near 0 where it did."""
    return 1.0 / (1.0 + (change / change_scale) ** 2)


def hold_loss(image: torch.Tensor, reference: torch.Tensor, hold: torch.Tensor,
              window: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """``sum_p hold(p) * mean_c (image - reference)^2 / (H * W)``: the painting's change from
    ``reference`` (the previous painting, moved along the flow) where the target held still.

    Scaled like the image MSE (a mean over the canvas), so a weight of 1 makes a static
    pixel cost as much to change as to be wrong. ``image`` may be a crop ``window`` =
    (y0, x0, h, w) of the canvas that ``reference`` [H, W, 3] and ``hold`` [H, W] cover.
    """
    if window is not None:
        y0, x0, height, width = window
        reference = reference[y0:y0 + height, x0:x0 + width]
        hold = hold[y0:y0 + height, x0:x0 + width]
    difference = (image - reference.to(image.dtype)).pow(2).mean(dim=-1)
    return (hold.to(image.dtype) * difference).mean()
