"""Random scenes and banks shared by the backend tests (reference, cpu, cuda)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from diffbmp import PrimitiveParams, TextureBank

BACKGROUND = (0.2, 0.5, 0.8)


def smooth_texture(height: int, width: int, seed: int) -> torch.Tensor:
    """A straight-RGBA texture with smooth colours and an alpha that has holes and hard zeros."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 4, max(2, height // 4), max(2, width // 4), generator=g)
    rgba = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
    alpha = rgba[..., 3]
    rgba[..., 3] = torch.where(alpha > 0.35, alpha, torch.zeros_like(alpha))
    return rgba.clamp(0, 1).contiguous()


def make_bank() -> TextureBank:
    """Analytic shapes plus textures of several sizes (odd, tiny, non-square)."""
    bank = TextureBank()
    bank.add_analytic("circle")
    bank.add_analytic("gaussian")
    bank.add_texture("blob_30x20", smooth_texture(20, 30, 1))
    bank.add_texture("blob_64", smooth_texture(64, 64, 2))
    bank.add_texture("blob_5x7", smooth_texture(7, 5, 3))
    return bank


def random_params(
    n: int,
    height: int,
    width: int,
    *,
    seed: int,
    dtype: torch.dtype = torch.float32,
    num_shapes: int = 5,
    scale_range: tuple[float, float] = (0.3, 14.0),
    margin: float = 8.0,
    opacity_range: tuple[float, float] = (0.0, 1.0),
) -> PrimitiveParams:
    """N primitives scattered over (and a little beyond) the canvas, every parameter random."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.rand(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    low, high = scale_range
    lo_op, hi_op = opacity_range
    params = PrimitiveParams(
        means=rand(n, 2) * torch.tensor([width + 2 * margin, height + 2 * margin], dtype=torch.float64) - margin,
        rotations=(rand(n) * 2 - 1) * math.pi,
        scales=torch.exp(math.log(low) + rand(n, 2) * (math.log(high) - math.log(low))),
        colors=rand(n, 3),
        opacities=lo_op + rand(n) * (hi_op - lo_op),
        shape_ids=torch.randint(0, num_shapes, (n,), generator=g),
        beta=rand(n),
    )
    return params.map(lambda t: t.to(dtype) if t.is_floating_point() else t)


def requires_grad(params: PrimitiveParams) -> PrimitiveParams:
    """A copy whose float tensors are leaves that require grad."""
    return params.map(lambda t: t.detach().clone().requires_grad_(True) if t.is_floating_point() else t)


FLOAT_FIELDS = ("means", "rotations", "scales", "colors", "opacities", "beta")
