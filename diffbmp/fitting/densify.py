"""Splitting: the large primitives over the most error become two smaller ones.

The other ways a fit adds primitives live elsewhere: where the error is (:func:`diffbmp.init.error_init`),
by search against the residual (:mod:`.search`), and dead ones re-seeded (``Fitter.prune``). A
split keeps the painting almost as it was (two children cover the parent's footprint along its
longer axis) and gives the optimiser two primitives where one was too coarse for the detail
under it, the densification of 3D Gaussian splatting brought to flat primitives.
"""

from __future__ import annotations

import torch

from ..params import PrimitiveParams

__all__ = ["split_choice", "split_geometry", "SMALLEST_SPLIT"]

#: Primitives whose larger half-size is below this (pixels) are not split.
SMALLEST_SPLIT = 2.0
#: A child's half-size along the split axis, and across it, as a share of the parent's.
_ALONG, _ACROSS = 0.55, 0.85


def split_choice(params: PrimitiveParams, error: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the ``count`` primitives to split: those covering the most error (the error
    summed over each one's bounding square), among those at least :data:`SMALLEST_SPLIT` pixels."""
    height, width = error.shape
    summed = torch.nn.functional.pad(error.detach().double().cpu().cumsum(0).cumsum(1), (1, 0, 1, 0))
    means = params.means.detach().double().cpu()
    reach = params.scales.detach().double().cpu().max(dim=1).values
    x0 = (means[:, 0] - reach).floor().clamp(0, width).long()
    x1 = (means[:, 0] + reach).ceil().clamp(0, width).long()
    y0 = (means[:, 1] - reach).floor().clamp(0, height).long()
    y1 = (means[:, 1] + reach).ceil().clamp(0, height).long()
    covered = summed[y1, x1] - summed[y0, x1] - summed[y1, x0] + summed[y0, x0]
    covered = torch.where(reach >= SMALLEST_SPLIT, covered, torch.full_like(covered, -1.0))
    count = min(count, int((reach >= SMALLEST_SPLIT).sum()))
    return torch.sort(covered, descending=True, stable=True).indices[:count].to(params.means.device)


def split_geometry(means: torch.Tensor, scales: torch.Tensor, rotations: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centres of the two children [K, 2] each and their half-sizes [K, 2] for parents with
    ``means`` [K, 2], ``scales`` [K, 2] and ``rotations`` [K] (the children sit half the
    parent's half-size either side of its centre along its longer axis)."""
    along_x = scales[:, 0] >= scales[:, 1]
    # The parent's local x axis is (cos, sin) on the canvas, its y axis (-sin, cos).
    cos, sin = torch.cos(rotations), torch.sin(rotations)
    axis = torch.where(along_x.unsqueeze(-1), torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1))
    major = torch.where(along_x, scales[:, 0], scales[:, 1])
    offset = axis * (0.5 * major).unsqueeze(-1)
    factors = torch.where(along_x.unsqueeze(-1), scales.new_tensor([_ALONG, _ACROSS]), scales.new_tensor([_ACROSS, _ALONG]))
    return means - offset, means + offset, scales * factors
