"""Carrying a painting from one frame to the next.

Before a later frame is refined, the previous frame's scene is moved with the optical flow
(each primitive's centre by the flow where it is seen), and every primitive gets what the
temporal loss needs: its anchor (the moved scene's parameters), its penalty weight (large
where the target did not change under it), and whether it is optimised at all
(``video.only_changed``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..params import PrimitiveParams
from ..primitives import PreparedBank, TextureBank
from ..render import composite_premultiplied
from ..scene import Scene
from .flow import consistent, optical_flow, sample, warp
from .temporal import change_map, footprint_means, footprint_sums, hold_map, penalty_weights

__all__ = ["FrameStart", "motion_evidence", "flow_shift", "carry_over"]

#: A primitive moves only when its footprint holds at least this much evidence of motion
#: (pixels x intensity: about one pixel whose change the flow explains clearly).
_MIN_EVIDENCE = 0.25


@dataclass
class FrameStart:
    """Where a later frame starts and what its primitives are held to.

    Attributes:
        scene: the previous frame's painting, centres moved by the flow.
        anchor: the activated parameters of ``scene`` (the temporal loss's reference).
        weights: [N] temporal penalty weights (0 when the temporal loss is off).
        trainable: [N] bool, False for primitives frozen by ``video.only_changed``.
        change: [N] mean target change over each primitive's visible pixels (0..1).
        shift: [N, 2] how far the flow moved each centre, pixels.
        background: [3] the previous background colour (the anchor of a learned one).
        background_weight: penalty weight of the background colour.
        reference: [H, W, 3] the previous painting moved along the flow (what the hold loss
            keeps the new painting close to).
        hold: [H, W] how firmly each pixel is held to ``reference`` (1: the target did not change).
    """

    scene: Scene
    anchor: PrimitiveParams
    weights: torch.Tensor
    trainable: torch.Tensor
    change: torch.Tensor
    shift: torch.Tensor
    background: torch.Tensor
    background_weight: float
    reference: torch.Tensor
    hold: torch.Tensor


def motion_evidence(previous: torch.Tensor, current: torch.Tensor, forward: torch.Tensor,
                    backward: torch.Tensor | None = None) -> torch.Tensor:
    """How much better the flow explains each pixel's next value than standing still [H, W]:
    ``|current(p) - previous(p)| - |current(p + forward(p)) - previous(p)|`` (largest
    channel), clipped at 0, and 0 where the flows disagree (content that gets covered up).

    Zero on still content, however much a smooth flow field bleeds into it from a moving
    neighbour; positive where something moved and the flow followed it.
    """
    still = (current - previous).abs().amax(dim=-1)
    followed = (warp(current, forward) - previous).abs().amax(dim=-1)
    evidence = (still - followed).clamp_min(0)
    if backward is not None:
        evidence = evidence * consistent(forward, backward).to(evidence.dtype)
    return evidence


def flow_shift(scene: Scene, forward: torch.Tensor, evidence: torch.Tensor | None = None, *, at: str = "footprint",
               prepared: PreparedBank | TextureBank | None = None, backend: str | None = None) -> torch.Tensor:
    """How far the flow carries each primitive's centre [N, 2].

    Args:
        forward: flow [H, W, 2] from the scene's frame to the next.
        evidence: [H, W] how much each pixel's motion is supported (:func:`motion_evidence`);
            needed for "footprint".
        at: "centre": the flow at the centre. "footprint": the mean flow over the pixels the
            primitive shows, weighted by the evidence of motion there; a primitive with
            (almost) no evidence under it stays where it is. So a background primitive next
            to a moving object is not dragged along by the flow that bleeds out of it, and a
            large primitive partly hidden by others moves with what it shows.
    """
    centres = scene.means.detach()
    if at == "centre":
        return sample(forward, centres)
    if evidence is None:
        raise ValueError("flow_shift(at='footprint') needs the evidence map")
    maps = torch.cat([forward * evidence.unsqueeze(-1), evidence.unsqueeze(-1)], dim=2)
    _, sums = footprint_sums(scene, maps, prepared=prepared, backend=backend)
    weight = sums[:, 2:3]
    mean = sums[:, :2] / weight.clamp_min(_MIN_EVIDENCE)
    return torch.where(weight >= _MIN_EVIDENCE, mean, torch.zeros_like(mean))


def _dilate(change: torch.Tensor, radius: int) -> torch.Tensor:
    """The largest change within ``radius`` pixels of each pixel [H, W] (a square max filter)."""
    if radius <= 0:
        return change
    return torch.nn.functional.max_pool2d(change[None, None], 2 * radius + 1, stride=1, padding=radius)[0, 0]


def _moved(scene: Scene, shift: torch.Tensor, margin: float) -> Scene:
    moved = scene.detached()
    means = moved.means + shift
    # Keep the anchor where the fit's clamp lets a centre be, or the loss would pull at a wall.
    means[:, 0] = means[:, 0].clamp(-margin, scene.width + margin)
    means[:, 1] = means[:, 1].clamp(-margin, scene.height + margin)
    moved.means = means
    return moved


@torch.no_grad()
def carry_over(previous: Scene, previous_image: torch.Tensor, image: torch.Tensor, previous_painted: torch.Tensor, video: Any, *,
               margin: float, prepared: PreparedBank | TextureBank | None = None, backend: str | None = None) -> FrameStart:
    """The start of a later frame.

    Args:
        previous: the previous frame's fitted scene (raw tensors as the fit left them).
        previous_image, image: the previous and the new target [H, W, 3] (over the background).
        previous_painted: the previous frame's painting [H, W, 3].
        video: the ``video`` config section (flow, flow_at, only_changed, change_threshold, temporal).
        margin: how far (pixels) a centre may leave the canvas (``limits.margin`` x side).
    """
    height, width = image.shape[:2]
    still = change_map(previous_image, image)
    if video.flow != "none":
        forward = optical_flow(previous_image, image, video.flow)
        backward = optical_flow(image, previous_image, video.flow)
        evidence = motion_evidence(previous_image, image, forward, backward)
        shift = flow_shift(previous, forward, evidence, at=video.flow_at, prepared=prepared, backend=backend)
        start = _moved(previous, shift, margin)
        followed = change_map(previous_image, image, backward)
        # Content that stayed is held to the painting as it was; content that moved, to the
        # painting moved along the flow.
        reference = torch.where((still <= followed).unsqueeze(-1), previous_painted, warp(previous_painted, backward))
    else:
        shift = torch.zeros_like(previous.means.detach())
        start = previous.detached()
        followed = still
        reference = previous_painted.detach().clone()
    # The change under a primitive that stayed is the plain difference; under one that the
    # flow moved, the difference left once the previous frame is moved along the flow too.
    visible, means = footprint_means(start, torch.stack([still, followed], dim=-1), prepared=prepared, backend=backend)
    moved = shift.norm(dim=1) > 1e-3
    change = torch.where(moved, means[:, 1], means[:, 0])
    hidden = visible <= 1e-3
    if bool(hidden.any()):
        change = torch.where(hidden, sample(still.unsqueeze(-1), start.means.detach())[:, 0], change)
    temporal = video.temporal
    weights = penalty_weights(visible, change, height, width, temporal.anchor, temporal.change_scale)
    if video.only_changed:
        trainable = change > video.change_threshold
    else:
        trainable = torch.ones(len(start), dtype=torch.bool, device=change.device)
    params = start.params()
    _, alpha = composite_premultiplied(params, prepared if prepared is not None else start.bank, height, width, blur=0.0, backend=backend)
    uncovered = float((1 - alpha).mean())
    overall = float(torch.minimum(still, followed).mean())
    background_weight = temporal.anchor * uncovered / (1.0 + (overall / temporal.change_scale) ** 2)
    return FrameStart(
        scene=start, anchor=params.map(lambda t: t.detach().clone()), weights=weights, trainable=trainable, change=change,
        shift=shift, background=torch.sigmoid(previous.background_logits.detach()), background_weight=background_weight,
        reference=reference, hold=hold_map(_dilate(torch.minimum(still, followed), temporal.release), temporal.change_scale),
    )
