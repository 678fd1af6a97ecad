"""Screen bounding boxes of primitives (docs/rendering.md, section 5.1), for exports and crops."""

from __future__ import annotations

import torch

from . import _torch_impl
from .constants import KIND_TEXTURE
from .params import PrimitiveParams
from .primitives import PreparedBank, TextureBank


def support_extents(params: PrimitiveParams, bank: TextureBank | PreparedBank, blur: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Support half-extents (eu, ev) in local units of every primitive, each [N]."""
    prepared = bank.prepare(params.device, params.dtype) if isinstance(bank, TextureBank) else bank
    sigma_e = _torch_impl.effective_sigma(blur)
    scales = params.scales.detach()
    ids = params.shape_ids.long()
    eu, ev = _torch_impl.analytic_support(scales, sigma_e, prepared.entries[ids, 0])
    textured = prepared.entries[ids, 0] == KIND_TEXTURE
    if bool(textured.any()):
        info = prepared.entries[ids[textured]].long()
        i0, i1, _ = _torch_impl.choose_levels(info[:, 1], info[:, 3], scales[textured, 0], sigma_e)
        j0, j1, _ = _torch_impl.choose_levels(info[:, 2], info[:, 4], scales[textured, 1], sigma_e)
        extent = _torch_impl.level_extent
        eu = eu.clone()
        ev = ev.clone()
        eu[textured] = torch.maximum(extent(info[:, 1], i0, scales.dtype), extent(info[:, 1], i1, scales.dtype))
        ev[textured] = torch.maximum(extent(info[:, 2], j0, scales.dtype), extent(info[:, 2], j1, scales.dtype))
    return eu, ev


def screen_bounds(params: PrimitiveParams, bank: TextureBank | PreparedBank, blur: float = 0.0) -> torch.Tensor:
    """[N, 4] boxes (x_min, y_min, x_max, y_max) in pixels that contain everything each primitive paints."""
    eu, ev = support_extents(params, bank, blur)
    scales = params.scales.detach()
    cos = torch.cos(params.rotations.detach()).abs()
    sin = torch.sin(params.rotations.detach()).abs()
    half_w = cos * eu * scales[:, 0] + sin * ev * scales[:, 1]
    half_h = sin * eu * scales[:, 0] + cos * ev * scales[:, 1]
    centre = params.means.detach()
    return torch.stack([centre[:, 0] - half_w, centre[:, 1] - half_h, centre[:, 0] + half_w, centre[:, 1] + half_h], dim=1)
