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

__all__ = ["FrameStart", "moving_content", "flow_shift", "carry_over"]

#: A primitive is carried by the flow only when at least this many of the pixels it shows
#: move (alpha x transmittance), and ...
_MIN_MOVING = 0.25
#: ... they are at least this share of all it shows.
_MAJORITY = 0.5


@dataclass
class FrameStart:
    """Where a later frame starts and what its primitives are held to.

    Attributes:
        scene: the previous frame's painting, centres moved by the flow.
        anchor: the activated parameters of ``scene`` (the temporal loss's reference).
        weights: [N] temporal penalty weights (0 when the temporal loss is off).
        trainable: [N] bool, False for primitives frozen by ``video.only_changed``.
        lr_scale: [N] learning-rate factor of each primitive (``video.still_lr`` over still
            content, rising to 1 where the target changed).
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
    lr_scale: torch.Tensor
    change: torch.Tensor
    shift: torch.Tensor
    background: torch.Tensor
    background_weight: float
    reference: torch.Tensor
    hold: torch.Tensor


def moving_content(previous: torch.Tensor, current: torch.Tensor, forward: torch.Tensor,
                   backward: torch.Tensor | None = None, min_motion: float = 1.0) -> torch.Tensor:
    """Where the flow is a real motion of the content [H, W] (1.0 or 0.0).

    A pixel ``p`` counts when the flow moves it by at least ``min_motion`` pixels, the
    forward and backward flows agree there, and its content, arriving at ``q = p + forward(p)``,
    explains the next frame at ``q`` at least as well as staying still does, both at ``q``
    (what was there before) and at ``p`` (within one 8-bit level).

    A smooth flow field bleeds out of a moving object into the still content around it.
    That content fails the test at ``q``, which is explained better by staying as it was:
    so the background next to a moving object is not carried along with it. Inside a
    flat-coloured object, where every explanation fits, the flow is trusted.
    """
    tolerance = 1.0 / 255.0
    arrived = warp(current, forward)  # the next frame at q
    followed = (arrived - previous).abs().amax(dim=-1)
    stayed_at_q = (arrived - warp(previous, forward)).abs().amax(dim=-1)
    stayed_at_p = (current - previous).abs().amax(dim=-1)
    moves = (forward.norm(dim=-1) >= min_motion) & (followed <= torch.minimum(stayed_at_q, stayed_at_p) + tolerance)
    if backward is not None:
        moves = moves & consistent(forward, backward)
    return moves.to(previous.dtype)


def flow_shift(scene: Scene, forward: torch.Tensor, moving: torch.Tensor | None = None, *, at: str = "footprint",
               prepared: PreparedBank | TextureBank | None = None, backend: str | None = None) -> torch.Tensor:
    """How far the flow carries each primitive's centre [N, 2].

    Args:
        forward: flow [H, W, 2] from the scene's frame to the next.
        moving: [H, W] where the content really moves (:func:`moving_content`); needed for
            "footprint".
        at: "centre": the flow at the centre. "footprint": the mean flow over the moving
            pixels that the primitive shows (alpha times transmittance), when they are most
            of what it shows; otherwise it stays where it is. So a background primitive that
            a moving object passes over stays, and a primitive partly hidden by others moves
            with what it shows.
    """
    centres = scene.means.detach()
    if at == "centre":
        return sample(forward, centres)
    if moving is None:
        raise ValueError("flow_shift(at='footprint') needs the map of moving content")
    maps = torch.cat([forward * moving.unsqueeze(-1), moving.unsqueeze(-1)], dim=2)
    visible, sums = footprint_sums(scene, maps, prepared=prepared, backend=backend)
    shown_moving = sums[:, 2:3]
    mean = sums[:, :2] / shown_moving.clamp_min(_MIN_MOVING)
    carried = (shown_moving >= _MIN_MOVING) & (shown_moving >= _MAJORITY * visible.unsqueeze(1))
    return torch.where(carried, mean, torch.zeros_like(mean))


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
        moving = moving_content(previous_image, image, forward, backward)
        shift = flow_shift(previous, forward, moving, at=video.flow_at, prepared=prepared, backend=backend)
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
    # A primitive over still content learns slowly, one over a change at the full rates.
    lr_scale = 1.0 - (1.0 - video.still_lr) * hold_map(change, temporal.change_scale)
    params = start.params()
    _, alpha = composite_premultiplied(params, prepared if prepared is not None else start.bank, height, width, blur=0.0, backend=backend)
    uncovered = float((1 - alpha).mean())
    overall = float(torch.minimum(still, followed).mean())
    background_weight = temporal.anchor * uncovered / (1.0 + (overall / temporal.change_scale) ** 2)
    return FrameStart(
        scene=start, anchor=params.map(lambda t: t.detach().clone()), weights=weights, trainable=trainable,
        lr_scale=lr_scale, change=change, shift=shift, background=torch.sigmoid(previous.background_logits.detach()), background_weight=background_weight,
        reference=reference, hold=hold_map(_dilate(torch.minimum(still, followed), temporal.release), temporal.change_scale),
    )
