"""Initialisers: where primitives start, how large, turned which way, and in which colour."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffbmp.errors import InputError
from diffbmp.init import analyse_target, error_init, initialise, random_init, sample_shape_ids, structure_init
from diffbmp.primitives import TextureBank

H = W = 64


def half_detailed_target() -> torch.Tensor:
    """Left half flat grey, right half a fine random checkerboard."""
    image = torch.full((H, W, 3), 0.5)
    rng = np.random.default_rng(0)
    cells = torch.from_numpy(rng.integers(0, 2, size=(H // 2, W // 4)).astype(np.float32))
    texture = cells.repeat_interleave(2, 0).repeat_interleave(2, 1)
    image[:, W // 2 :, :] = texture.unsqueeze(-1)
    return image


def stripes(vertical: bool, period: int = 8) -> torch.Tensor:
    """Black and white stripes: vertical stripes vary along x."""
    coords = torch.arange(W if vertical else H, dtype=torch.float32)
    values = (torch.sin(2 * math.pi * coords / period) > 0).float()
    if vertical:
        plane = values.unsqueeze(0).expand(H, W)
    else:
        plane = values.unsqueeze(1).expand(H, W)
    return plane.unsqueeze(-1).expand(H, W, 3).contiguous()


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def circles() -> TextureBank:
    return TextureBank.from_names(["circle"])


@pytest.fixture(scope="module")
def strokes() -> TextureBank:
    return TextureBank.from_names(["brush_flat"])


def radii(scene) -> torch.Tensor:
    return scene.log_scales.exp().prod(dim=1).sqrt()


def test_structure_init_puts_more_primitives_where_the_detail_is(circles):
    analysis = analyse_target(half_detailed_target())
    scene = structure_init(analysis, circles, 400, generator=generator(), detail_mix=0.8)
    x = scene.means[:, 0]
    detailed, flat = int((x >= W / 2).sum()), int((x < W / 2).sum())
    # 80 % of draws follow the detail map (almost all of it on the right), 20 % are uniform.
    assert detailed > 3 * flat, (detailed, flat)
    assert flat > 0  # the uniform share still reaches the flat half


def test_structure_init_is_large_in_flat_regions_and_small_in_detail(circles):
    analysis = analyse_target(half_detailed_target())
    scene = structure_init(analysis, circles, 400, generator=generator(), detail_mix=0.8)
    x = scene.means[:, 0]
    r = radii(scene)
    assert float(r[x < W / 4].median()) > 1.8 * float(r[x > 3 * W / 4].median())


def test_structure_init_paints_large_primitives_first(circles):
    analysis = analyse_target(half_detailed_target())
    scene = structure_init(analysis, circles, 200, generator=generator())
    area = scene.log_scales.sum(dim=1)
    assert bool((area[:-1] >= area[1:]).all())


@pytest.mark.parametrize("vertical, expected", [(True, math.pi / 2), (False, 0.0)])
def test_structure_init_turns_strokes_along_stripes(strokes, vertical, expected):
    analysis = analyse_target(stripes(vertical))
    scene = structure_init(analysis, strokes, 300, generator=generator())
    # Compare directions modulo pi (a stroke turned by pi is the same stroke axis).
    difference = torch.remainder(scene.rotations - expected + math.pi / 2, math.pi) - math.pi / 2
    assert float(difference.abs().median()) < 0.15
    # The stroke's long side (sx) is its texture's width: brush_flat is 4:1.
    aspect = (scene.log_scales[:, 0] - scene.log_scales[:, 1]).exp()
    assert torch.allclose(aspect, torch.full_like(aspect, strokes[0].aspect), rtol=1e-4)


def test_colours_match_a_flat_target(circles):
    colour = torch.tensor([0.2, 0.6, 0.8])
    analysis = analyse_target(colour.expand(H, W, 3).contiguous())
    for method in ("structure", "random", "error"):
        scene = initialise(method, analysis, circles, 50, generator=generator(), background=torch.tensor([1.0, 1.0, 1.0]))
        colours = torch.sigmoid(scene.color_logits)
        assert torch.allclose(colours, colour.expand_as(colours), atol=1e-4), method


def test_random_colours_are_random(circles):
    analysis = analyse_target(torch.full((H, W, 3), 0.5))
    scene = random_init(analysis, circles, 200, generator=generator(), colors="random")
    assert float(torch.sigmoid(scene.color_logits).std()) > 0.2


def test_random_init_is_uniform_and_covers_the_canvas(circles):
    analysis = analyse_target(half_detailed_target())
    scene = random_init(analysis, circles, 1000, generator=generator(), coverage=2.0, size_jitter=0.0)
    x, y = scene.means[:, 0], scene.means[:, 1]
    assert float(x.min()) >= 0 and float(x.max()) <= W and float(y.min()) >= 0 and float(y.max()) <= H
    right = int((x >= W / 2).sum())
    assert 430 < right < 570  # uniform: about half on each side (binomial sd ~16)
    r = radii(scene)
    assert math.isclose(float((math.pi * r**2).sum()), 2.0 * H * W, rel_tol=1e-3)


def test_initialisation_is_reproducible(circles):
    analysis = analyse_target(half_detailed_target())
    a = structure_init(analysis, circles, 100, generator=generator(3))
    b = structure_init(analysis, circles, 100, generator=generator(3))
    c = structure_init(analysis, circles, 100, generator=generator(4))
    for name in ("means", "log_scales", "rotations", "color_logits", "opacity_logits"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.means, c.means)


def test_error_init_goes_where_the_error_is(circles):
    analysis = analyse_target(torch.full((H, W, 3), 0.5))
    error = np.zeros((H, W), np.float32)
    error[40:56, 8:24] = 1.0
    scene = error_init(analysis, circles, 100, error, generator=generator())
    x, y = scene.means[:, 0], scene.means[:, 1]
    # The density is the error blurred by one pixel, so points stay within a few pixels.
    assert bool(((x > 5) & (x < 27) & (y > 37) & (y < 59)).all())


def test_error_init_sizes_follow_the_error_blob_and_the_targets_detail(circles):
    # The same error everywhere; the target is flat on the left and busy on the right.
    analysis = analyse_target(half_detailed_target())
    error = np.ones((H, W), np.float32) * 0.05
    scene = error_init(analysis, circles, 300, error, generator=generator(), max_size=16.0)
    x = scene.means[:, 0]
    r = radii(scene)
    assert float(r[x < W / 4].median()) >= 8.0  # a flat region: one large primitive fixes it
    assert float(r[x > 3 * W / 4].median()) <= 2.0  # a busy region: only small ones help


def test_mask_restricts_where_primitives_start(circles):
    mask = torch.zeros(H, W)
    mask[:, : W // 2] = 1
    analysis = analyse_target(half_detailed_target(), mask=mask)
    scene = structure_init(analysis, circles, 200, generator=generator())
    assert bool((scene.means[:, 0] <= W / 2).all())


def test_transparent_target_pixels_get_no_primitives(circles):
    alpha = torch.zeros(H, W)
    alpha[16:48, 16:48] = 1
    analysis = analyse_target(torch.rand(H, W, 3, generator=generator()), alpha)
    scene = random_init(analysis, circles, 200, generator=generator())
    x, y = scene.means[:, 0], scene.means[:, 1]
    assert bool(((x >= 16) & (x <= 48) & (y >= 16) & (y <= 48)).all())


def test_shape_ids_uniform_and_weighted():
    bank = TextureBank.from_names(["circle", "gaussian"])
    only_first = sample_shape_ids(bank, 200, generator(), [1.0, 0.0])
    assert bool((only_first == 0).all())
    weighted = sample_shape_ids(bank, 4000, generator(), [1.0, 3.0])
    assert 0.72 < float((weighted == 1).float().mean()) < 0.78
    uniform = sample_shape_ids(bank, 4000, generator())
    assert 0.46 < float((uniform == 1).float().mean()) < 0.54
    with pytest.raises(InputError, match="shape_weights has 3 values"):
        sample_shape_ids(bank, 10, generator(), [1, 2, 3])


def test_beta_and_opacity_start_values(circles):
    analysis = analyse_target(torch.full((H, W, 3), 0.5))
    own = random_init(analysis, circles, 10, generator=generator(), beta=1.0, opacity=0.6)
    assert bool(torch.isinf(own.beta_logits).all()) and bool((torch.sigmoid(own.beta_logits) == 1).all())
    assert torch.allclose(torch.sigmoid(own.opacity_logits), torch.full((10,), 0.6))
    tinted = random_init(analysis, circles, 10, generator=generator(), beta=0.0)
    assert bool((torch.sigmoid(tinted.beta_logits) == 0).all())


def test_unknown_method_is_rejected(circles):
    analysis = analyse_target(torch.full((H, W, 3), 0.5))
    with pytest.raises(InputError, match="unknown init method"):
        initialise("spiral", analysis, circles, 10, generator=generator())
