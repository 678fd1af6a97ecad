"""Loss terms: known values, zero on identical images, weight maps and masks."""

from __future__ import annotations

import math

import pytest
import torch

from diffbmp.errors import InputError
from diffbmp.losses import (
    LossWeights,
    alpha_loss,
    l1,
    msssim_loss,
    mse,
    outside_loss,
    overlap_loss,
    psnr,
    size_loss,
    ssim_loss,
    ssim_value,
    total_loss,
)


def random_image(h: int = 64, w: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(h, w, 3, generator=torch.Generator().manual_seed(seed))


def test_mse_and_l1_known_values():
    zeros, half, ones = torch.zeros(8, 8, 3), torch.full((8, 8, 3), 0.5), torch.ones(8, 8, 3)
    assert float(mse(zeros, ones)) == 1.0
    assert float(mse(half, zeros)) == 0.25
    assert float(l1(half, zeros)) == 0.5
    # One channel of one pixel off by 1: 1 / (8 * 8 * 3).
    image = zeros.clone()
    image[2, 3, 1] = 1.0
    assert math.isclose(float(mse(image, zeros)), 1 / 192, rel_tol=1e-6)
    assert math.isclose(float(l1(image, zeros)), 1 / 192, rel_tol=1e-6)


@pytest.mark.parametrize("loss", [mse, l1, ssim_loss, msssim_loss])
@pytest.mark.parametrize("side", [48, 168])
def test_zero_on_identical_images_and_positive_otherwise(loss, side):
    image = random_image(side, side)
    assert abs(float(loss(image, image.clone()))) < 1e-5
    assert float(loss(image, random_image(side, side, seed=1))) > 0.05


def test_ssim_known_relationships():
    image = random_image()
    noisy = (image + 0.1 * torch.randn(64, 64, 3, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    very_noisy = (image + 0.4 * torch.randn(64, 64, 3, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    assert 0 < float(ssim_loss(noisy, image)) < float(ssim_loss(very_noisy, image))
    assert math.isclose(ssim_value(noisy, image), 1 - float(ssim_loss(noisy, image)), rel_tol=1e-6)


def test_weight_map_zero_weights_a_region():
    target = random_image()
    image = target.clone()
    image[:, :32] = 1 - image[:, :32]  # wrong only in the left half
    right_only = torch.zeros(64, 64)
    right_only[:, 32:] = 1
    for loss in (mse, l1):
        assert float(loss(image, target, right_only)) == 0.0
        assert float(loss(image, target)) > 0.1
    # Weighted means: the left half alone gives twice the unweighted loss (same total error, half the pixels).
    left_only = 1 - right_only
    assert math.isclose(float(mse(image, target, left_only)), 2 * float(mse(image, target)), rel_tol=1e-5)
    # No gradient flows into zero-weighted pixels.
    image.requires_grad_(True)
    mse(image, target, right_only).backward()
    assert float(image.grad[:, :32].abs().max()) == 0.0


def test_masked_ssim_ignores_pixels_outside_the_mask():
    target = random_image(168, 168)
    image = target.clone()
    image[:, :84] = 0.0
    inside = torch.zeros(168, 168)
    inside[:, 84:] = 1
    assert abs(float(ssim_loss(image, target, inside))) < 1e-6
    assert abs(float(msssim_loss(image, target, inside))) < 1e-6
    assert float(ssim_loss(image, target)) > 0.2


def test_alpha_and_outside_losses():
    alpha = torch.zeros(10, 10)
    alpha[:, :5] = 1.0
    target_alpha = torch.ones(10, 10)
    assert float(alpha_loss(alpha, target_alpha)) == 0.5
    mask = torch.zeros(10, 10)
    mask[:, :5] = 1.0
    assert float(outside_loss(alpha, mask)) == 0.0  # everything painted is inside
    assert float(outside_loss(torch.ones(10, 10), mask)) == 1.0
    assert float(outside_loss(alpha, 1 - mask)) == 1.0


def test_overlap_loss():
    area = 100.0 * 100.0
    # Discs of total area 2 x canvas at opacity 1: one layer too many.
    radius = math.sqrt(2 * area / (math.pi * 50))
    scales = torch.full((50, 2), radius)
    assert math.isclose(float(overlap_loss(torch.ones(50), scales, area)), 1.0, rel_tol=1e-5)
    assert float(overlap_loss(torch.full((50,), 0.4), scales, area)) == 0.0  # 0.8 layers: no penalty


def test_size_loss():
    inside = torch.tensor([[1.0, 2.0], [10.0, 5.0]])
    assert float(size_loss(inside, 0.5, 10.0)) == 0.0
    too_big = torch.tensor([[10.0 * math.e, 10.0]])
    assert math.isclose(float(size_loss(too_big, 0.5, 10.0)), 0.5, rel_tol=1e-5)  # (1^2 + 0) / 2
    too_small = torch.tensor([[0.5 / math.e**2, 1.0]])
    assert math.isclose(float(size_loss(too_small, 0.5, 10.0)), 2.0, rel_tol=1e-5)  # (2^2 + 0) / 2


def test_psnr_known_value():
    zeros = torch.zeros(4, 4, 3)
    assert math.isclose(psnr(torch.full((4, 4, 3), 0.1), zeros), 20.0, rel_tol=1e-6)


def test_total_loss_combines_weighted_terms():
    target = random_image()
    image = random_image(seed=1)
    weights = LossWeights(mse=2.0, l1=0.5, ssim=0.0, alpha=0.0)
    total, terms = total_loss(weights, image, target)
    assert set(terms) == {"mse", "l1"}
    assert math.isclose(float(total), 2.0 * terms["mse"] + 0.5 * terms["l1"], rel_tol=1e-6)
    alpha = torch.full((64, 64), 0.5)
    total, terms = total_loss(LossWeights(mse=1.0, alpha=3.0), image, target, alpha=alpha, target_alpha=torch.ones(64, 64))
    assert math.isclose(terms["alpha"], 0.5, rel_tol=1e-6)
    assert math.isclose(float(total), terms["mse"] + 1.5, rel_tol=1e-6)
    with pytest.raises(InputError, match="every loss weight is 0"):
        total_loss(LossWeights(mse=0.0), image, target)


def test_total_loss_mask_restricts_image_terms_and_penalises_outside():
    target = random_image()
    image = target.clone()
    image[:, 32:] = 0.0
    mask = torch.zeros(64, 64)
    mask[:, :32] = 1
    alpha = torch.ones(64, 64)
    total, terms = total_loss(LossWeights(mse=1.0, ssim=1.0, outside=1.0), image, target, alpha=alpha, mask=mask)
    assert terms["mse"] == 0.0
    assert abs(terms["ssim"]) < 1e-6
    assert terms["outside"] == 1.0


def test_shape_mismatch_is_an_input_error():
    with pytest.raises(InputError, match="shape"):
        mse(torch.zeros(4, 4, 3), torch.zeros(5, 4, 3))
