"""Random scenes and banks shared by the backend tests (reference, cpu, cuda), and the
scene comparison the fit tests share."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from diffbmp import PrimitiveParams, TextureBank, fit
from diffbmp.scene import Scene

BACKGROUND = (0.2, 0.5, 0.8)
#: A scene's raw tensors (what a fit optimises and a checkpoint saves).
RAW = ("means", "log_scales", "rotations", "color_logits", "opacity_logits", "beta_logits", "background_logits")


def resumed_after_interrupt(folder, stop: int, *args, **options):
    """The result of a fit (``diffbmp.fit(*args, out=folder, **options)``) interrupted by Ctrl-C
    after step ``stop`` and resumed from its checkpoint."""
    def interrupt(info):
        if info.step == stop:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(*args, out=folder, callback=interrupt, **options)
    return fit(*args, out=folder, resume=True, **options)


def assert_same_scene(a: Scene, b: Scene) -> None:
    """The two scenes are equal bit for bit (shapes, stages, constraints and every raw tensor)."""
    assert torch.equal(a.shape_ids, b.shape_ids)
    assert torch.equal(a.stages, b.stages)
    assert a.constraints == b.constraints
    for name in RAW:
        assert torch.equal(getattr(a, name), getattr(b, name)), name


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


def strokes_params(n: int, size: int, *, seed: int, bank_size: int, dtype: torch.dtype = torch.float32) -> PrimitiveParams:
    """A stroke painting's worth of primitives on a size x size canvas: long thin and round
    shapes of every size from a pixel to a quarter of the canvas, at every angle."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.rand(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    length = torch.exp(math.log(1.0) + rand(n) * (math.log(size / 4) - math.log(1.0)))
    aspect = 0.1 + 0.9 * rand(n)
    params = PrimitiveParams(
        means=rand(n, 2) * (size + 20) - 10,
        rotations=(rand(n) * 2 - 1) * math.pi,
        scales=torch.stack([length, length * aspect], dim=1),
        colors=rand(n, 3),
        opacities=rand(n),
        shape_ids=torch.randint(0, bank_size, (n,), generator=g),
        beta=rand(n),
    )
    return params.map(lambda t: t.to(dtype) if t.is_floating_point() else t)


#: Rotations at which the tile test's products are not exact: near the axes (where sin or cos
#: is tiny but not zero), the diagonals and arbitrary angles.
GRAZING_ROTATIONS = (0.0, 1e-3, -2e-6, math.pi / 2 + 1e-4, math.pi / 4, -3 * math.pi / 4, 0.7, 2.9)


def grazing_params(n: int, height: int, width: int, *, seed: int, shape_ids: tuple[int, ...], blur: float, bank: TextureBank) -> PrimitiveParams:
    """float32 primitives whose support rectangles graze tile borders: each is placed so that
    the separating-axis test of binning against a neighbouring tile sits within a few ulps of
    its threshold, where a multiply-add rounded differently flips the decision."""
    from diffbmp.bounds import support_extents

    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.rand(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    ids = torch.tensor(shape_ids)[torch.randint(0, len(shape_ids), (n,), generator=g)]
    rotations = torch.tensor(GRAZING_ROTATIONS, dtype=torch.float64)[torch.randint(0, len(GRAZING_ROTATIONS), (n,), generator=g)]
    scales = torch.exp(math.log(0.5) + rand(n, 2) * (math.log(40.0) - math.log(0.5)))
    params = PrimitiveParams(
        means=torch.zeros(n, 2, dtype=torch.float64), rotations=rotations, scales=scales, colors=rand(n, 3),
        opacities=rand(n), shape_ids=ids, beta=rand(n),
    ).map(lambda t: t.float() if t.is_floating_point() else t)
    eu, ev = support_extents(params, bank, blur)
    # A tile of the canvas, and a point on the boundary of the primitive's support rectangle
    # widened by that tile's half-size plus a pixel (the threshold of the tile test): the
    # centre goes there, then a few float32 ulps either way.
    tiles_x, tiles_y = -(-width // 16), -(-height // 16)
    tile_x = torch.randint(0, tiles_x, (n,), generator=g)
    tile_y = torch.randint(0, tiles_y, (n,), generator=g)
    x0, y0 = tile_x * 16, tile_y * 16
    x1, y1 = torch.minimum(x0 + 16, torch.tensor(width)) - 1, torch.minimum(y0 + 16, torch.tensor(height)) - 1
    centre = torch.stack([(x0 + x1 + 1) / 2, (y0 + y1 + 1) / 2], 1).double()
    half = torch.stack([(x1 - x0 + 2) / 2, (y1 - y0 + 2) / 2], 1).double()
    cos, sin = torch.cos(rotations), torch.sin(rotations)
    reach_u = eu.double() * params.scales[:, 0].double() + cos.abs() * half[:, 0] + sin.abs() * half[:, 1]
    reach_v = ev.double() * params.scales[:, 1].double() + sin.abs() * half[:, 0] + cos.abs() * half[:, 1]
    # Along u (or v), with a random sign and a random offset along the other axis inside it.
    along_u = rand(n) < 0.5
    sign = torch.where(rand(n) < 0.5, -1.0, 1.0).double()
    u = torch.where(along_u, sign * reach_u, (rand(n) * 2 - 1) * reach_u)
    v = torch.where(along_u, (rand(n) * 2 - 1) * reach_v, sign * reach_v)
    # The tile centre sits at (u, v) in the primitive's frame: centre = mean + R(u, v).
    offset = torch.stack([cos * u - sin * v, sin * u + cos * v], 1)
    means = (centre - offset).float()
    ulps = torch.randint(-3, 4, (n, 2), generator=g).float()
    params.means = means + ulps * torch.finfo(torch.float32).eps * means.abs().clamp(min=1.0) / 2
    return params
