"""Placing new primitives by search against the residual (the small-budget strategy).

Each new primitive is chosen the way a hill climber chooses a shape, then handed to
gradient descent: candidates are drawn where the error is (random sizes, aspects,
rotations and shapes), each scored by the squared error it would remove if painted on top
with the best colour (closed form, clamped to [0, 1]); the best is improved by a few
rounds of random perturbation, painted on the working canvas, and the next search starts
from there. Gradient descent then refines all primitives together.

A candidate is scored on a fixed grid of samples in its own frame (its footprint, whatever
its size), so a search costs the same on any canvas: the footprint's coverage on that grid
is the same for every candidate of a shape (rendered once by the compositor), and only the
target and canvas are sampled under it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..constants import ALPHA_MAX
from ..constraints import ShapeConstraints
from ..params import PrimitiveParams
from ..primitives import TextureBank
from ..primitives.pyramid import PreparedBank
from ..render import composite_premultiplied
from ..scene import Scene, logit

__all__ = ["SearchSettings", "ShapeSearch"]

#: Half-side of the sampled footprint in the primitive's local units (shapes end within 1.25).
_EXTENT = 1.25
#: Coverage masks are rendered at this many pixels across.
_MASK_SIDE = 64


@dataclass(frozen=True)
class SearchSettings:
    """How new primitives are searched for."""

    candidates: int = 128       # random candidates per new primitive
    climbs: int = 8             # rounds of perturbation of the best candidate
    perturbations: int = 24     # perturbed copies tried per round
    samples: int = 20           # footprint grid: samples x samples points per candidate
    opacity: float = 0.8        # opacity the candidates are scored (and start) with
    min_size: float = 1.0       # smallest half-size, pixels of the fitting canvas
    max_size: float = 64.0      # largest half-size, pixels of the fitting canvas
    max_aspect: float = 4.0     # width/height of a candidate lies in [1/max_aspect, max_aspect]


class ShapeSearch:
    """Finds primitives one at a time against a working canvas.

    Args:
        target: [H, W, 3] in [0, 1], the fitting canvas's target.
        bank: the shapes.
        weight: optional [H, W] per-pixel weight of the error.
        outside_cost: optional [H, W] cost of each unit of alpha painted at a pixel, in units
            of the (weighted) squared error (a mask's ``loss.outside`` term).
        constraints: rotation and aspect constraints the candidates keep (None: none).
    """

    def __init__(self, target: torch.Tensor, bank: TextureBank, weight: torch.Tensor | None = None,
                 outside_cost: torch.Tensor | None = None, constraints: ShapeConstraints | None = None):
        self.bank = bank
        self.constraints = constraints
        self.height, self.width = target.shape[:2]
        self.target = target.detach().float().cpu().permute(2, 0, 1).contiguous()  # [3, H, W]
        self.weight = None if weight is None else weight.detach().float().cpu().unsqueeze(0)
        self.outside_cost = None if outside_cost is None else outside_cost.detach().float().cpu().unsqueeze(0)
        self.masks = self._footprints(bank.prepare("cpu", torch.float32))
        self._grids: dict[int, torch.Tensor] = {}

    def _footprints(self, prepared: PreparedBank) -> torch.Tensor:
        """Coverage [S, 1, M, M] of every shape over [-_EXTENT, _EXTENT]^2 of its local frame."""
        count = len(self.bank)
        side = _MASK_SIDE
        centre = side / 2.0
        half = side / (2.0 * _EXTENT)
        masks = []
        for shape in range(count):
            params = PrimitiveParams(
                means=torch.tensor([[centre, centre]]), rotations=torch.zeros(1), scales=torch.tensor([[half, half]]),
                colors=torch.ones(1, 3), opacities=torch.ones(1), shape_ids=torch.tensor([shape]),
            )
            _, alpha = composite_premultiplied(params, prepared, side, side, blur=0.0, backend="torch")
            masks.append((alpha / ALPHA_MAX).clamp(0, 1))
        return torch.stack(masks).unsqueeze(1)

    # ------------------------------------------------------------------ geometry
    def _sample_points(self, means: torch.Tensor, scales: torch.Tensor, rotations: torch.Tensor, n: int) -> torch.Tensor:
        """Canvas positions [K, n, n, 2] (x, y in pixels) of each candidate's footprint grid."""
        q = (torch.arange(n, dtype=torch.float32) + 0.5) / n * 2 - 1  # [-1, 1] cell centres
        qy, qx = torch.meshgrid(q, q, indexing="ij")
        lx = qx * _EXTENT * scales[:, 0].view(-1, 1, 1)
        ly = qy * _EXTENT * scales[:, 1].view(-1, 1, 1)
        cos, sin = torch.cos(rotations).view(-1, 1, 1), torch.sin(rotations).view(-1, 1, 1)
        x = means[:, 0].view(-1, 1, 1) + cos * lx - sin * ly
        y = means[:, 1].view(-1, 1, 1) + sin * lx + cos * ly
        return torch.stack([x, y], dim=-1)

    def _sample(self, image: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Bilinear samples [K, C, n, n] of image [C, H, W] at canvas positions [K, n, n, 2]."""
        k = points.shape[0]
        grid = torch.empty_like(points)
        grid[..., 0] = points[..., 0] / self.width * 2 - 1
        grid[..., 1] = points[..., 1] / self.height * 2 - 1
        out = F.grid_sample(image.unsqueeze(0), grid.reshape(1, k * points.shape[1], points.shape[2], 2),
                            mode="bilinear", padding_mode="border", align_corners=False)
        return out.view(image.shape[0], k, points.shape[1], points.shape[2]).transpose(0, 1)

    def _coverage_grid(self, shape_ids: torch.Tensor, n: int) -> torch.Tensor:
        """Coverage [K, n, n] of each candidate's shape on its footprint grid."""
        if n not in self._grids:
            self._grids[n] = F.adaptive_avg_pool2d(self.masks, (n, n))[:, 0]  # [S, n, n]
        return self._grids[n][shape_ids]

    # ------------------------------------------------------------------ scoring
    def _score(self, canvas: torch.Tensor, means: torch.Tensor, scales: torch.Tensor, rotations: torch.Tensor,
               shape_ids: torch.Tensor, opacity: float, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(error removed [K], best colours [K, 3]) of painting each candidate on ``canvas``."""
        points = self._sample_points(means, scales, rotations, n)
        inside = ((points[..., 0] >= 0) & (points[..., 0] <= self.width) & (points[..., 1] >= 0)
                  & (points[..., 1] <= self.height)).float()
        extra = [t for t in (self.weight, self.outside_cost) if t is not None]
        sampled = self._sample(torch.cat([self.target, canvas, *extra], dim=0), points)
        target, current = sampled[:, :3], sampled[:, 3:6]
        pixel_weight = inside * (sampled[:, 6] if self.weight is not None else 1.0)
        # Each sample stands for the same area of the canvas.
        area = (2 * _EXTENT) ** 2 * scales[:, 0] * scales[:, 1] / (n * n)
        alpha = opacity * self._coverage_grid(shape_ids, n)  # [K, n, n]
        residual = target - current
        wa = (pixel_weight * alpha).unsqueeze(1)  # [K, 1, n, n]
        w2 = (wa * alpha.unsqueeze(1)).sum(dim=(2, 3))  # [K, 1]
        # The colour minimising sum (a (c - R) - e)^2 is c = sum a (a R + e) / sum a^2.
        numerator = (wa * (alpha.unsqueeze(1) * current + residual)).sum(dim=(2, 3))
        colours = (numerator / w2.clamp_min(1e-9)).clamp(0, 1)
        change = alpha.unsqueeze(1) * (colours.view(-1, 3, 1, 1) - current)
        gain = ((2 * change * residual - change * change) * pixel_weight.unsqueeze(1)).sum(dim=(1, 2, 3)) * area
        if self.outside_cost is not None:
            gain = gain - (alpha * inside * sampled[:, -1]).sum(dim=(1, 2)) * area
        return gain, colours

    # ------------------------------------------------------------------ search
    def find(self, canvas: torch.Tensor, count: int, generator: torch.Generator, settings: SearchSettings,
             shape_pool: torch.Tensor, on_found: Callable[[], None] | None = None) -> tuple[Scene, torch.Tensor]:
        """``count`` primitives found one after another on ``canvas`` [H, W, 3].

        ``on_found`` is called after each (a progress bar). Returns the scene of new
        primitives (painted in the order found) and the canvas with them painted on it.
        """
        work = canvas.detach().float().cpu().permute(2, 0, 1).contiguous()
        found = []
        for _ in range(count):
            best = self._random_candidates(work, generator, settings, shape_pool)
            best = self._climb(work, best, generator, settings, shape_pool)
            work = self._paint(work, best, settings.opacity)
            found.append(best)
            if on_found is not None:
                on_found()
        scene = self._scene(found, settings.opacity)
        return scene, work.permute(1, 2, 0)

    def _random_candidates(self, work: torch.Tensor, generator: torch.Generator, settings: SearchSettings,
                           shape_pool: torch.Tensor) -> dict:
        k = settings.candidates
        error = (self.target - work).pow(2).sum(0)
        if self.weight is not None:
            error = error * self.weight[0]
        density = F.avg_pool2d(error[None, None], 4, ceil_mode=True)[0, 0]
        dh, dw = density.shape
        flat = (density + 1e-3 * density.mean() + 1e-12).flatten()
        cells = torch.multinomial(flat, k, replacement=True, generator=generator)
        jitter = torch.rand(k, 2, generator=generator)
        means = torch.stack([((cells % dw).float() + jitter[:, 0]) * self.width / dw,
                             ((cells // dw).float() + jitter[:, 1]) * self.height / dh], dim=1)
        lo, hi = math.log(settings.min_size), math.log(max(settings.max_size, settings.min_size))
        size = torch.exp(lo + (hi - lo) * torch.rand(k, generator=generator))
        aspect = torch.exp(math.log(settings.max_aspect) * (2 * torch.rand(k, generator=generator) - 1)).sqrt()
        scales = torch.stack([size * aspect, size / aspect], dim=1)
        unit = 2 * torch.rand(k, generator=generator) - 1
        ids = shape_pool[torch.randint(0, shape_pool.numel(), (k,), generator=generator)]
        if self.constraints is None:
            rotations = unit * math.pi
        else:
            # Candidates are drawn inside the constraints, so the search scores what will be painted.
            rotations = self.constraints.spread_rotations(unit, ids)
            scales = self.constraints.fit_scales(scales, ids)
        gain, colours = self._score(work, means, scales, rotations, ids, settings.opacity, settings.samples)
        i = int(torch.argmax(gain))
        return {"mean": means[i], "scale": scales[i], "rotation": rotations[i], "id": ids[i], "colour": colours[i],
                "gain": float(gain[i])}

    def _climb(self, work: torch.Tensor, best: dict, generator: torch.Generator, settings: SearchSettings,
               shape_pool: torch.Tensor) -> dict:
        p = settings.perturbations
        lo, hi = math.log(settings.min_size), math.log(max(settings.max_size, settings.min_size))
        for round_ in range(settings.climbs):
            step = 0.5 ** (round_ / 2)  # perturbations shrink as the climb goes on
            size = float(best["scale"].max())
            means = best["mean"] + step * 0.3 * size * (2 * torch.rand(p, 2, generator=generator) - 1)
            log_scales = (best["scale"].log() + step * 0.3 * (2 * torch.rand(p, 2, generator=generator) - 1)).clamp(lo, hi)
            rotations = best["rotation"] + step * 0.4 * (2 * torch.rand(p, generator=generator) - 1)
            ids = best["id"].expand(p).clone()
            if shape_pool.numel() > 1:
                switch = torch.rand(p, generator=generator) < 0.2
                ids[switch] = shape_pool[torch.randint(0, shape_pool.numel(), (int(switch.sum()),), generator=generator)]
            scales = log_scales.exp()
            if self.constraints is not None:
                scales = self.constraints.fit_scales(scales, ids)
                rotations = self.constraints.fit_rotations(rotations, ids)
            gain, colours = self._score(work, means, scales, rotations, ids, settings.opacity, settings.samples)
            i = int(torch.argmax(gain))
            if float(gain[i]) > best["gain"]:
                best = {"mean": means[i], "scale": scales[i], "rotation": rotations[i], "id": ids[i],
                        "colour": colours[i], "gain": float(gain[i])}
        return best

    def _paint(self, work: torch.Tensor, shape: dict, opacity: float) -> torch.Tensor:
        """The working canvas with ``shape`` painted on it (over its bounding box)."""
        reach = float(shape["scale"].max()) * _EXTENT * math.sqrt(2)
        x0 = max(0, int(math.floor(float(shape["mean"][0]) - reach)))
        x1 = min(self.width, int(math.ceil(float(shape["mean"][0]) + reach)))
        y0 = max(0, int(math.floor(float(shape["mean"][1]) - reach)))
        y1 = min(self.height, int(math.ceil(float(shape["mean"][1]) + reach)))
        if x1 <= x0 or y1 <= y0:
            return work
        ys = torch.arange(y0, y1, dtype=torch.float32) + 0.5
        xs = torch.arange(x0, x1, dtype=torch.float32) + 0.5
        py, px = torch.meshgrid(ys, xs, indexing="ij")
        dx, dy = px - shape["mean"][0], py - shape["mean"][1]
        cos, sin = math.cos(float(shape["rotation"])), math.sin(float(shape["rotation"]))
        u = (cos * dx + sin * dy) / (shape["scale"][0] * _EXTENT)
        v = (-sin * dx + cos * dy) / (shape["scale"][1] * _EXTENT)
        grid = torch.stack([u, v], dim=-1).unsqueeze(0)
        cover = F.grid_sample(self.masks[int(shape["id"])].unsqueeze(0), grid, mode="bilinear",
                              padding_mode="zeros", align_corners=False)[0, 0]
        alpha = opacity * cover
        work = work.clone()
        region = work[:, y0:y1, x0:x1]
        work[:, y0:y1, x0:x1] = region + alpha * (shape["colour"].view(3, 1, 1) - region)
        return work

    def _scene(self, found: list[dict], opacity: float) -> Scene:
        count = len(found)
        stack = lambda key, empty: torch.stack([f[key] for f in found]) if found else empty  # noqa: E731
        return Scene(
            height=self.height, width=self.width, bank=self.bank,
            means=stack("mean", torch.zeros(0, 2)).float().contiguous(),
            log_scales=stack("scale", torch.ones(0, 2)).float().log().contiguous(),
            rotations=stack("rotation", torch.zeros(0)).float().contiguous(),
            color_logits=logit(stack("colour", torch.zeros(0, 3)).clamp(0.01, 0.99)).float().contiguous(),
            opacity_logits=torch.full((count,), math.log(opacity / (1 - opacity))),
            beta_logits=torch.full((count,), -math.inf),
            shape_ids=stack("id", torch.zeros(0, dtype=torch.long)).long(),
        )
