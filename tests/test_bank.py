"""The texture bank and its rip-map pyramid (docs/rendering.md, 5.4)."""

from __future__ import annotations

import math

import pytest
import torch

from diffbmp import InputError, TextureBank, builtin_names
from diffbmp.constants import KIND_CIRCLE, KIND_TEXTURE, MAX_LEVELS, MIP_BASE_SIGMA, MIP_PAD
from diffbmp.primitives.pyramid import build_ripmap, level_physical_size, num_levels

from scenes import smooth_texture


def premultiplied(rgba: torch.Tensor) -> torch.Tensor:
    return torch.cat([rgba[..., :3] * rgba[..., 3:], rgba[..., 3:]], -1)


@pytest.mark.parametrize("size", [(1, 1), (7, 5), (16, 16), (13, 40), (3, 300)])
def test_level_sizes_follow_the_specification(size):
    height, width = size
    levels = build_ripmap(premultiplied(smooth_texture(height, width, 0).double()))
    assert len(levels) == num_levels(width) * num_levels(height)
    for (i, j), level in levels.items():
        assert level.shape == (level_physical_size(height, j), level_physical_size(width, i), 4)
        assert level.shape[1] == math.ceil(width / 2**i) + 2 * MIP_PAD


def test_level_zero_is_the_padded_texture():
    texture = premultiplied(smooth_texture(9, 11, 1).double())
    level = build_ripmap(texture)[(0, 0)]
    assert torch.equal(level[MIP_PAD:-MIP_PAD, MIP_PAD:-MIP_PAD], texture)
    assert level[:MIP_PAD].abs().max() == 0 and level[:, -MIP_PAD:].abs().max() == 0


def test_levels_keep_mass_and_blur_more():
    texture = torch.zeros(64, 64, 4, dtype=torch.float64)
    texture[30:34, 30:34] = 1.0  # a small opaque square in the middle
    levels = build_ripmap(texture)
    base_mass = texture[..., 3].sum().item()
    previous_spread = 0.0
    for i in range(num_levels(64)):
        level = levels[(i, i)][..., 3]
        # Each level covers the same area with 2^i times fewer texels per axis. A level samples
        # a blur of half its texel spacing, which aliases a few percent of the mass.
        assert level.sum().item() * 4**i == pytest.approx(base_mass, rel=0.04)
        # Spread in base texels grows with the level: its blur is MIP_BASE_SIGMA * 2^i.
        weights = level.sum(0)
        coords = (torch.arange(level.shape[1], dtype=torch.float64) - MIP_PAD + 0.5) * 2**i
        mean = (weights * coords).sum() / weights.sum()
        spread = math.sqrt(((weights * (coords - mean) ** 2).sum() / weights.sum()).item())
        if i >= 2:
            assert spread > previous_spread
            assert spread == pytest.approx(math.hypot(MIP_BASE_SIGMA * 2**i, 4 / math.sqrt(12)), rel=0.35)
        previous_spread = spread


def test_anisotropic_levels_blur_one_axis():
    texture = torch.zeros(32, 32, 4, dtype=torch.float64)
    texture[16, 16] = 1.0
    level = build_ripmap(texture)[(3, 0)][..., 3]
    rows = (level.sum(1) > 1e-9).sum().item()
    columns = (level.sum(0) > 1e-9).sum().item()
    assert rows == 1 and columns > 2  # blurred along x only


def test_every_builtin_loads_and_prepares():
    names = builtin_names()
    assert len(names) >= 12
    bank = TextureBank.from_names(["circle", "gaussian", *names], texture_size=64)
    for dtype in (torch.float32, torch.float64):
        prepared = bank.prepare("cpu", dtype)
        assert prepared.texels.dtype == dtype
        assert prepared.entries.shape == (len(bank), 5)
        assert prepared.level_table.shape == (len(bank), MAX_LEVELS, MAX_LEVELS, 3)
        assert int(prepared.entries[0, 0]) == KIND_CIRCLE
        assert all(int(k) == KIND_TEXTURE for k in prepared.entries[2:, 0])
        assert torch.isfinite(prepared.texels).all()
        # premultiplied: colour never exceeds alpha
        assert (prepared.texels[:, :3] <= prepared.texels[:, 3:] + 1e-6).all()


def test_prepare_is_cached_unless_a_texture_learns():
    bank = TextureBank.from_names(["circle", "star"])
    assert bank.prepare() is bank.prepare()
    learned = TextureBank()
    learned.add_texture("learned", smooth_texture(8, 8, 4).requires_grad_(True))
    first, second = learned.prepare(), learned.prepare()
    assert first is not second and first.texels.requires_grad


def test_bank_lookup_errors():
    bank = TextureBank.from_names(["circle", "brush_flat"])
    assert bank.index("brush_flat") == 1
    with pytest.raises(InputError, match="Did you mean 'brush_flat'"):
        bank.index("brush_flt")
    with pytest.raises(InputError, match=r"shape \[height, width, 4\]"):
        bank.add_texture("rgb_only", torch.ones(4, 4, 3))
    with pytest.raises(InputError, match="NaN"):
        bank.add_texture("nan", torch.full((4, 4, 4), float("nan")))
    with pytest.raises(InputError, match="floating point"):
        bank.add_texture("bytes", torch.ones(4, 4, 4, dtype=torch.uint8))


def test_folders_and_files_become_entries(tmp_path):
    from PIL import Image

    for name, colour in (("a_red.png", (255, 0, 0, 255)), ("b_blue.png", (0, 0, 255, 128))):
        image = Image.new("RGBA", (20, 10), (0, 0, 0, 0))
        image.paste(Image.new("RGBA", (12, 6), colour), (4, 2))
        image.save(tmp_path / name)
    bank = TextureBank.from_names([str(tmp_path), "circle"])
    assert bank.names == ["a_red", "b_blue", "circle"]
    assert bank[0].aspect == pytest.approx(2.0, rel=0.2)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no image"):
        TextureBank.from_names([str(empty)])
