"""The rip-map pyramid of a texture and the flat layout every backend reads.

See docs/rendering.md, section 5.4. The pyramid is built once per bank, in PyTorch, for all
backends; gradients flow through it when a texture requires grad.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..constants import MAX_LEVELS, MIP_BASE_SIGMA, MIP_PAD


def num_levels(size: int) -> int:
    """Pyramid levels along an axis of ``size`` texels."""
    return min(MAX_LEVELS, int(math.floor(math.log2(size))) + 1)


def level_content_size(size: int, level: int) -> float:
    """Content extent, in that level's texels, of a ``size``-texel axis at ``level``."""
    return size / float(2**level)


def level_physical_size(size: int, level: int) -> int:
    """Stored texels of ``level`` along an axis: the content plus MIP_PAD on each side."""
    return int(math.ceil(level_content_size(size, level))) + 2 * MIP_PAD


def _gaussian_kernel(sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    radius = int(math.ceil(3.0 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return (kernel / kernel.sum()).to(dtype=dtype, device=device)


def _axis_level(rows: torch.Tensor, level: int) -> torch.Tensor:
    """Blur and resample the last axis of ``rows`` ([R, size]) to ``level``.

    Returns [R, physical size of the level]: texel k is the row convolved with the level's
    Gaussian and read by linear interpolation at base position (k - MIP_PAD + 0.5) * 2**level - 0.5.
    """
    size = rows.shape[-1]
    if level == 0:
        return F.pad(rows, (MIP_PAD, MIP_PAD))
    stride = 2**level
    kernel = _gaussian_kernel(MIP_BASE_SIGMA * stride, torch.float64, rows.device)
    radius = (kernel.numel() - 1) // 2
    # For level >= 1 every read position sits exactly halfway between two base texels, so
    # "blur, then interpolate" is one convolution with the kernel averaged with its own shift,
    # evaluated only at the level's texels (stride 2**level) instead of at every base texel.
    halfway = 0.5 * (F.pad(kernel, (0, 1)) + F.pad(kernel, (1, 0)))
    count = level_physical_size(size, level)
    # Texel k reads base texels from (k - MIP_PAD) * stride + stride / 2 - 1 - radius onwards.
    left = MIP_PAD * stride - stride // 2 + 1 + radius
    right = max(0, (count - 1) * stride + halfway.numel() - left - size)
    padded = F.pad(rows, (left, right))
    # [R, count, taps] windows times the kernel: cheaper than conv1d for long, strided kernels.
    windows = padded.unfold(1, halfway.numel(), stride)[:, :count]
    return windows @ halfway.to(rows.dtype)


def build_ripmap(premultiplied: torch.Tensor) -> dict[tuple[int, int], torch.Tensor]:
    """All levels (i, j) of a premultiplied RGBA texture [H, W, 4], each [ph_j, pw_i, 4]."""
    height, width, channels = premultiplied.shape
    levels_x, levels_y = num_levels(width), num_levels(height)
    # x step on rows: [H * 4, W]
    rows = premultiplied.permute(0, 2, 1).reshape(height * channels, width)
    by_x = []
    for i in range(levels_x):
        level = _axis_level(rows, i)  # [H * 4, pw]
        by_x.append(level.reshape(height, channels, -1).permute(2, 1, 0))  # [pw, 4, H]
    levels = {}
    for i, x_level in enumerate(by_x):
        pw = x_level.shape[0]
        columns = x_level.reshape(pw * channels, height)
        for j in range(levels_y):
            level = _axis_level(columns, j)  # [pw * 4, ph]
            levels[(i, j)] = level.reshape(pw, channels, -1).permute(2, 0, 1).contiguous()  # [ph, pw, 4]
    return levels


@dataclass
class PreparedBank:
    """The flat, backend-ready form of a texture bank (docs/rendering.md, 5.4).

    Attributes:
        texels: [T, 4] premultiplied RGBA of every pyramid level of every texture.
        level_table: [E, MAX_LEVELS, MAX_LEVELS, 3] int32: (offset into texels, width, height)
            of level (i, j) of entry e; zero for levels an entry does not have.
        entries: [E, 5] int32: (kind, base width, base height, levels along x, levels along y);
            sizes and level counts are zero for analytic shapes.
    """

    texels: torch.Tensor
    level_table: torch.Tensor
    entries: torch.Tensor

    @property
    def num_entries(self) -> int:
        return int(self.entries.shape[0])

    def to(self, device: torch.device | str) -> "PreparedBank":
        return PreparedBank(self.texels.to(device), self.level_table.to(device), self.entries.to(device))


def flatten_bank(
    kinds: list[int],
    textures: list[torch.Tensor | None],
    dtype: torch.dtype,
    device: torch.device,
) -> PreparedBank:
    """Build the pyramids of ``textures`` (premultiplied [H, W, 4] or None) and flatten them."""
    num_entries = len(kinds)
    level_table = torch.zeros(num_entries, MAX_LEVELS, MAX_LEVELS, 3, dtype=torch.int32)
    entries = torch.zeros(num_entries, 5, dtype=torch.int32)
    chunks: list[torch.Tensor] = []
    offset = 0
    for e, (kind, texture) in enumerate(zip(kinds, textures)):
        entries[e, 0] = kind
        if texture is None:
            continue
        height, width = int(texture.shape[0]), int(texture.shape[1])
        levels = build_ripmap(texture.to(device=device, dtype=dtype))
        entries[e, 1:] = torch.tensor([width, height, num_levels(width), num_levels(height)], dtype=torch.int32)
        for (i, j), level in levels.items():
            ph, pw = int(level.shape[0]), int(level.shape[1])
            level_table[e, i, j] = torch.tensor([offset, pw, ph], dtype=torch.int32)
            chunks.append(level.reshape(-1, 4))
            offset += ph * pw
    if offset >= 2**31:
        raise ValueError("the texture bank is too large (more than 2**31 texels); use fewer or smaller textures")
    texels = torch.cat(chunks) if chunks else torch.zeros(0, 4, dtype=dtype, device=device)
    return PreparedBank(texels.contiguous(), level_table.to(device), entries.to(device))
