"""Checks of a backend's binning (its ``bin_pairs`` function): the invariants every pair list
must hold, and a float64 reference of the tile test. Shared by tests/test_binning.py,
tests/test_cuda.py and bench/cuda_probe.py."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from diffbmp import PrimitiveParams, TextureBank
from diffbmp.bounds import support_extents
from scenes import grazing_params, random_params, strokes_params

TILE = 16


@dataclass
class Binning:
    """What ``bin_pairs`` returns, on the CPU."""

    tile_start: torch.Tensor  # [tiles + 1] int64
    sorted_prim: torch.Tensor  # [P] int32
    prim_start: torch.Tensor  # [N + 1] int64
    mismatches: int

    @property
    def num_tiles(self) -> int:
        return self.tile_start.numel() - 1

    def tile_of_entries(self) -> torch.Tensor:
        """[tile_start[-1]] the tile of every sorted pair that lies in a tile's range."""
        lengths = self.tile_start[1:] - self.tile_start[:-1]
        return torch.repeat_interleave(torch.arange(self.num_tiles), lengths)

    def membership(self, n: int) -> torch.Tensor:
        """[N, tiles] bool: which tiles list each primitive."""
        member = torch.zeros(n, self.num_tiles, dtype=torch.bool)
        listed = int(self.tile_start[-1])
        member[self.sorted_prim[:listed].long(), self.tile_of_entries()] = True
        return member


def native_inputs(params: PrimitiveParams, bank: TextureBank, device: str = "cpu") -> list[torch.Tensor]:
    """The ten tensors a backend module takes, on ``device``."""
    p = params.map(lambda t: t.to(device))
    prepared = bank.prepare(torch.device(device), p.dtype)
    return [p.means.contiguous(), p.rotations.contiguous(), p.scales.contiguous(), p.colors.contiguous(),
            p.opacities.contiguous(), p.beta_or_zeros().contiguous(), p.shape_ids.to(torch.int32).contiguous(),
            prepared.texels, prepared.level_table, prepared.entries]


def run_binning(module, params: PrimitiveParams, bank: TextureBank, height: int, width: int, blur: float,
                device: str = "cpu", count_skew: torch.Tensor | None = None) -> Binning:
    skew = None if count_skew is None else count_skew.to(device)
    tile_start, sorted_prim, prim_start, mismatches = module.bin_pairs(
        native_inputs(params, bank, device), height, width, blur, skew)
    return Binning(tile_start.cpu().long(), sorted_prim.cpu(), prim_start.cpu(), int(mismatches))


def invariant_violations(b: Binning, n: int) -> list[str]:
    """What is wrong with a pair list, as sentences (empty when nothing is):
    ranges that do not ascend, ids outside [0, N), a primitive listed twice in a tile or out
    of painting order, and lists whose length is not what the primitive counted."""
    problems = []
    starts = b.tile_start
    pairs = b.sorted_prim.numel()
    if int(starts[0]) != 0 or bool((starts[1:] < starts[:-1]).any()) or int(starts[-1]) > pairs:
        problems.append(f"tile ranges do not ascend from 0 to at most {pairs}")
        return problems
    listed = int(starts[-1])
    ids = b.sorted_prim[:listed].long()
    if listed and (int(ids.min()) < 0 or int(ids.max()) >= n):
        problems.append(f"primitive ids outside [0, {n}) in the tile lists")
        return problems
    tiles = b.tile_of_entries()
    same_tile = tiles[1:] == tiles[:-1]
    if bool((same_tile & (ids[1:] <= ids[:-1])).any()):
        problems.append("a tile lists a primitive twice or out of painting order")
    counted = b.prim_start[1:] - b.prim_start[:-1]
    listed_per_prim = torch.bincount(ids, minlength=n)
    if b.mismatches == 0 and not torch.equal(listed_per_prim, counted):
        problems.append("the tile lists hold a different number of pairs than the primitives counted")
    if bool((listed_per_prim > counted).any()):
        problems.append("a primitive is listed in more tiles than its counted slots")
    return problems


def reference_tiles(params: PrimitiveParams, bank: TextureBank, height: int, width: int, blur: float,
                    tol: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """(must, may): [N, tiles] bool from the tile test of docs/rendering.md evaluated in float64
    (a separating-axis test of the primitive's support rectangle against the tile's pixel
    centres widened by a pixel, within the pixel bounding box). A correct binning lists a
    primitive in every tile where the test passes by more than ``tol`` pixels (must), and in no
    tile where it fails by more (outside may)."""
    eu, ev = (e.double() for e in support_extents(params, bank, blur))  # the level choice of the params' dtype
    p = params.map(lambda t: t.double() if t.is_floating_point() else t)
    mx, my = p.means[:, 0:1], p.means[:, 1:2]
    sx, sy = p.scales[:, 0:1], p.scales[:, 1:2]
    cos, sin = torch.cos(p.rotations)[:, None], torch.sin(p.rotations)[:, None]
    tiles_x, tiles_y = -(-width // TILE), -(-height // TILE)
    tx = torch.arange(tiles_x).repeat(tiles_y)
    ty = torch.arange(tiles_y).repeat_interleave(tiles_x)
    px0, py0 = tx * TILE, ty * TILE
    px1, py1 = torch.clamp(px0 + TILE, max=width) - 1, torch.clamp(py0 + TILE, max=height) - 1
    cx = (px0 + px1 + 1).double()[None] / 2 - mx
    cy = (py0 + py1 + 1).double()[None] / 2 - my
    hx, hy = (px1 - px0 + 2).double()[None] / 2, (py1 - py0 + 2).double()[None] / 2
    margin_u = (cos * cx + sin * cy).abs() - (eu[:, None] * sx + cos.abs() * hx + sin.abs() * hy)
    margin_v = (-sin * cx + cos * cy).abs() - (ev[:, None] * sy + sin.abs() * hx + cos.abs() * hy)
    margin = torch.maximum(margin_u, margin_v)
    half_w = cos.abs() * eu[:, None] * sx + sin.abs() * ev[:, None] * sy
    half_h = sin.abs() * eu[:, None] * sx + cos.abs() * ev[:, None] * sy
    left, right = mx - half_w - 0.5, mx + half_w - 0.5
    top, bottom = my - half_h - 0.5, my + half_h - 0.5

    def boxed(shrink: float) -> torch.Tensor:
        # The backends' pixel box: ceil(left) - 1 .. floor(right) + 1, culled off canvas.
        visible = (right - shrink >= -1) & (left + shrink <= width) & (bottom - shrink >= -1) & (top + shrink <= height)
        x0, x1 = torch.ceil(left + shrink) - 1, torch.floor(right - shrink) + 1
        y0, y1 = torch.ceil(top + shrink) - 1, torch.floor(bottom - shrink) + 1
        overlap = (px0[None] <= x1) & (px1[None] >= x0) & (py0[None] <= y1) & (py1[None] >= y0)
        return visible & overlap

    return (margin < -tol) & boxed(tol), (margin <= tol) & boxed(-tol)


def reference_disagreements(b: Binning, params: PrimitiveParams, bank: TextureBank, height: int, width: int,
                            blur: float) -> tuple[int, int]:
    """(missing, extra): pairs the float64 reference requires but the lists lack, and pairs
    the lists hold that the reference rules out."""
    must, may = reference_tiles(params, bank, height, width, blur)
    member = b.membership(len(params))
    return int((must & ~member).sum()), int((member & ~may).sum())


def huge_params(n_huge: int, n_small: int, height: int, width: int, *, seed: int) -> PrimitiveParams:
    """``n_huge`` primitives from a fifth of the canvas to three times its size (a quarter at 45
    degrees, some centred off the canvas), painted among ``n_small`` small ones: primitives whose
    bounding boxes span thousands of tiles."""
    big = random_params(n_huge, height, width, seed=seed, scale_range=(0.1 * max(height, width), 1.5 * max(height, width)),
                        margin=0.3 * max(height, width))
    big.rotations[::4] = math.pi / 4
    small = random_params(n_small, height, width, seed=seed + 1, scale_range=(1.0, 30.0))
    fields = ("means", "rotations", "scales", "colors", "opacities", "shape_ids", "beta")
    mixed = PrimitiveParams(**{f: torch.cat([getattr(big, f), getattr(small, f)]) for f in fields})
    return mixed.select(torch.randperm(n_huge + n_small, generator=torch.Generator().manual_seed(seed)))


def stress_scenes(bank, quick: bool = False):
    """(name, params, height, width, blur): random, stroke-painting and tile-grazing float32 scenes."""
    shape_ids = tuple(range(len(bank)))
    count = 3 if quick else 12
    for seed in range(count):
        height, width, blur = 37 + 23 * seed, 211 - 9 * seed, (0.0, 0.7, 3.0)[seed % 3]
        yield f"grazing {seed}", grazing_params(400, height, width, seed=seed, shape_ids=shape_ids, blur=blur, bank=bank), height, width, blur
    for seed in range(count // 3):
        yield f"strokes {seed}", strokes_params(1500, 256, seed=seed, bank_size=len(bank)), 256, 256, 0.5
        yield f"random {seed}", random_params(800, 97, 130, seed=seed, scale_range=(0.05, 90.0)), 97, 130, 1.0


def check_skewed_binning(module, bank, device: str = "cpu", scene: tuple[PrimitiveParams, int, int] | None = None) -> None:
    """Counts made to disagree with the writing walk (count_skew) against the true lists, on
    ``scene`` (params, height, width) or 300 random primitives on 70x90."""
    params, height, width = scene or (random_params(300, 70, 90, seed=5, scale_range=(2.0, 40.0)), 70, 90)
    n = len(params)
    true = run_binning(module, params, bank, height, width, 0.5, device)
    counted = true.prim_start[1:] - true.prim_start[:-1]
    skew = torch.randint(-1, 2, (n,), generator=torch.Generator().manual_seed(0))
    skew[counted == 0] = skew[counted == 0].clamp(min=0)  # a count cannot go below zero
    skewed = run_binning(module, params, bank, height, width, 0.5, device, count_skew=skew)
    assert skewed.mismatches == int((skew != 0).sum())
    assert torch.equal(skewed.prim_start[1:] - skewed.prim_start[:-1], counted + skew)
    assert not invariant_violations(skewed, n), invariant_violations(skewed, n)
    # Surplus slots are sentinels in no tile; a short count loses the primitive's last tile
    # in row-major order, and every other pair is where it was.
    expected = true.membership(n)
    for i in torch.nonzero(skew < 0).flatten().tolist():
        expected[i, torch.nonzero(expected[i]).max()] = False
    assert torch.equal(skewed.membership(n), expected)
    assert int(skewed.tile_start[-1]) == skewed.sorted_prim.numel() - int((skew > 0).sum())
