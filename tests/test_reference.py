"""The torch reference backend against values computed by hand from docs/rendering.md,
float64 gradcheck of every differentiable input, resolution independence, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from diffbmp import InputError, PrimitiveParams, TextureBank, composite
from diffbmp.constants import (
    ALPHA_MAX,
    CIRCLE_TAPER_END,
    CIRCLE_TAPER_START,
    GAUSSIAN_STD,
    GAUSSIAN_TAPER_END,
    LOGISTIC_K,
    PIXEL_SIGMA,
)

from scenes import FLOAT_FIELDS, make_bank, random_params, requires_grad, smooth_texture

F64 = torch.float64


def one(mean, scale, color, opacity, shape_id=0, rotation=0.0, beta=0.0) -> PrimitiveParams:
    t = lambda x: torch.tensor(x, dtype=F64)  # noqa: E731
    return PrimitiveParams(
        means=t([mean]), rotations=t([rotation]), scales=t([scale]), colors=t([color]),
        opacities=t([opacity]), shape_ids=torch.tensor([shape_id]), beta=t([beta]),
    )


def join(*parts: PrimitiveParams) -> PrimitiveParams:
    fields = ("means", "rotations", "scales", "colors", "opacities", "shape_ids", "beta")
    return PrimitiveParams(**{f: torch.cat([getattr(p, f) for p in parts]) for f in fields})


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def hand_circle_cov(distance_in_radii: float, radius: float, blur: float) -> float:
    """Section 5.2 evaluated with scalar maths."""
    sigma_e = math.sqrt(blur**2 + PIXEL_SIGMA**2)
    z = LOGISTIC_K * (1 - distance_in_radii) * radius / sigma_e
    t = min(1.0, max(0.0, (z + LOGISTIC_K * CIRCLE_TAPER_END) / (LOGISTIC_K * (CIRCLE_TAPER_END - CIRCLE_TAPER_START))))
    return sigmoid(z) * t * t * (3 - 2 * t)


# ---------------------------------------------------------------- hand-computed values


def test_one_opaque_square_is_exact():
    bank = TextureBank()
    bank.add_texture("square", torch.ones(8, 8, 4))
    params = one(mean=(8.0, 8.0), scale=(4.0, 4.0), color=(1.0, 0.0, 0.0), opacity=1.0)
    image, alpha = composite(params, bank, torch.tensor([0.0, 0.0, 1.0], dtype=F64), 16, 16, backend="torch")
    # The 8x8 texels map exactly onto pixels 4..11; level 0 is chosen (a texel is one pixel),
    # and at pixel centres the bilinear weights are 0 or 1, so coverage is exactly 1 or 0.
    expected = torch.zeros(16, 16, 3, dtype=F64)
    expected[..., 2] = 1.0
    expected[4:12, 4:12] = torch.tensor([ALPHA_MAX, 0.0, 1 - ALPHA_MAX], dtype=F64)
    expected_alpha = torch.zeros(16, 16, dtype=F64)
    expected_alpha[4:12, 4:12] = ALPHA_MAX
    torch.testing.assert_close(image, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(alpha, expected_alpha, atol=1e-12, rtol=0)


def test_two_overlapping_half_transparent_discs():
    bank = TextureBank()
    bank.add_analytic("circle")
    red = one(mean=(10.0, 10.0), scale=(6.0, 6.0), color=(1.0, 0.0, 0.0), opacity=0.5)
    green = one(mean=(14.0, 10.0), scale=(6.0, 6.0), color=(0.0, 1.0, 0.0), opacity=0.5)
    image, alpha = composite(join(red, green), bank, torch.ones(3, dtype=F64), 24, 24, backend="torch")
    # Pixel (row 9, column 11), centre (11.5, 9.5): inside both discs.
    a_red = 0.5 * hand_circle_cov(math.hypot(1.5, 0.5) / 6, 6.0, 0.0)
    a_green = 0.5 * hand_circle_cov(math.hypot(2.5, 0.5) / 6, 6.0, 0.0)
    behind = (1 - a_red) * (1 - a_green)
    expected = [a_red * (1 - a_green) + behind, a_green + behind, behind]
    torch.testing.assert_close(image[9, 11], torch.tensor(expected, dtype=F64), atol=1e-12, rtol=0)
    assert alpha[9, 11].item() == pytest.approx(1 - behind, abs=1e-12)
    assert alpha[9, 11].item() == pytest.approx(0.75, abs=1e-9)  # both discs are opaque there
    # Pixel (row 3, column 14), centre (14.5, 3.5): only the green disc, near its edge.
    a_edge = 0.5 * hand_circle_cov(math.hypot(0.5, 6.5) / 6, 6.0, 0.0)
    assert 0 < a_edge < 0.25
    assert alpha[3, 14].item() == pytest.approx(a_edge, abs=1e-12)


def test_circle_edge_is_half_covered_and_blur_widens_it():
    bank = TextureBank()
    bank.add_analytic("circle")
    params = one(mean=(10.5, 10.5), scale=(5.0, 5.0), color=(1.0, 1.0, 1.0), opacity=1.0)
    for blur in (0.0, 2.0):
        _, alpha = composite(params, bank, None, 21, 21, blur=blur, backend="torch")
        # Pixel (row 10, column 15) is exactly on the outline: r = 1.
        assert alpha[10, 15].item() == pytest.approx(hand_circle_cov(1.0, 5.0, blur), abs=1e-12)
        assert alpha[10, 16].item() == pytest.approx(hand_circle_cov(1.2, 5.0, blur), abs=1e-12)
        assert alpha[10, 17].item() == pytest.approx(hand_circle_cov(1.4, 5.0, blur), abs=1e-12)
    # The circle tapers to exactly zero 4 effective deviations outside its outline.
    _, alpha = composite(params, bank, None, 21, 40, blur=1.0, backend="torch")
    sigma_e = math.sqrt(1 + PIXEL_SIGMA**2)
    beyond = int(math.ceil(10.5 + 5 + CIRCLE_TAPER_END * sigma_e))
    assert alpha[10, beyond:].abs().max().item() == 0.0
    assert alpha[10, beyond - 2].item() > 0.0


def test_gaussian_peak_and_cutoff():
    bank = TextureBank()
    bank.add_analytic("gaussian")
    params = one(mean=(10.5, 10.5), scale=(6.0, 3.0), color=(1.0, 1.0, 1.0), opacity=0.8)
    blur = 1.5
    _, alpha = composite(params, bank, None, 21, 21, blur=blur, backend="torch")
    sigma_e = math.sqrt(blur**2 + PIXEL_SIGMA**2)
    su = math.sqrt(GAUSSIAN_STD**2 + (sigma_e / 6.0) ** 2)
    sv = math.sqrt(GAUSSIAN_STD**2 + (sigma_e / 3.0) ** 2)
    amplitude = GAUSSIAN_STD**2 / (su * sv)
    assert alpha[10, 10].item() == pytest.approx(0.8 * amplitude, abs=1e-12)
    # One pixel right: u = 1/6, well inside the untapered core.
    falloff = math.exp(-0.5 * (1 / 6) ** 2 / su**2)
    assert alpha[10, 11].item() == pytest.approx(0.8 * amplitude * falloff, abs=1e-12)
    # Zero beyond three blurred deviations along x: |u| >= 3 su.
    reach = GAUSSIAN_TAPER_END * su * 6.0
    columns = torch.arange(21, dtype=F64) + 0.5
    outside = (columns - 10.5).abs() >= reach
    assert alpha[10, outside].abs().max().item() == 0.0


def test_rotated_stamp_keeps_own_colours_or_takes_the_tint():
    # 4x2 texture: left half red, right half blue, opaque.
    texture = torch.zeros(2, 4, 4, dtype=F64)
    texture[:, :2] = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=F64)
    texture[:, 2:] = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=F64)
    bank = TextureBank()
    bank.add_texture("halves", texture)
    white = torch.ones(3, dtype=F64)
    # Rotated by 90 degrees the texture's +u axis points down the screen: red on top.
    stamp = one(mean=(10.0, 10.0), scale=(4.0, 2.0), color=(0.0, 1.0, 0.0), opacity=0.9, rotation=math.pi / 2, beta=1.0)
    image, _ = composite(stamp, bank, white, 20, 20, backend="torch")
    torch.testing.assert_close(image[7, 10], torch.tensor([1.0, 0.1, 0.1], dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(image[12, 10], torch.tensor([0.1, 0.1, 1.0], dtype=F64), atol=1e-12, rtol=0)
    assert torch.allclose(image[10, 4], white)  # left of the rotated stamp: background
    # beta = 0: the bitmap is a stencil tinted green.
    stencil = one(mean=(10.0, 10.0), scale=(4.0, 2.0), color=(0.0, 1.0, 0.0), opacity=0.9, rotation=math.pi / 2, beta=0.0)
    image, _ = composite(stencil, bank, white, 20, 20, backend="torch")
    torch.testing.assert_close(image[7, 10], torch.tensor([0.1, 1.0, 0.1], dtype=F64), atol=1e-12, rtol=0)
    # beta = 0.25 mixes the two linearly (section 6).
    mixed = one(mean=(10.0, 10.0), scale=(4.0, 2.0), color=(0.0, 1.0, 0.0), opacity=0.9, rotation=math.pi / 2, beta=0.25)
    image, _ = composite(mixed, bank, white, 20, 20, backend="torch")
    col = 0.75 * torch.tensor([0.0, 1.0, 0.0], dtype=F64) + 0.25 * torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    torch.testing.assert_close(image[7, 10], 0.9 * col + 0.1 * white, atol=1e-12, rtol=0)


def test_painting_order_puts_the_last_primitive_on_top():
    bank = TextureBank()
    bank.add_analytic("circle")
    red = one(mean=(8.0, 8.0), scale=(6.0, 6.0), color=(1.0, 0.0, 0.0), opacity=1.0)
    blue = one(mean=(8.0, 8.0), scale=(6.0, 6.0), color=(0.0, 0.0, 1.0), opacity=1.0)
    image, _ = composite(join(red, blue), bank, torch.zeros(3, dtype=F64), 16, 16, backend="torch")
    # Top (blue) has alpha 0.99; red shows through the remaining 1 %.
    torch.testing.assert_close(image[8, 8], torch.tensor([0.0099, 0.0, 0.99], dtype=F64), atol=1e-9, rtol=0)


def test_early_termination_drops_primitives_behind_an_opaque_stack():
    bank = TextureBank()
    bank.add_analytic("circle")
    # Three opaque discs take the transmittance from 1 to 1e-2, 1e-4 (still >= T_MIN, so the
    # third paints) and 1e-6: the disc below them is skipped.
    bottom = one(mean=(8.0, 8.0), scale=(6.0, 6.0), color=(1.0, 0.0, 0.0), opacity=1.0)
    stack = join(bottom, *[one(mean=(8.0, 8.0), scale=(6.0, 6.0), color=(0.0, 0.0, 1.0), opacity=1.0)] * 3)
    image, alpha = composite(stack, bank, torch.zeros(3, dtype=F64), 16, 16, backend="torch")
    assert image[8, 8, 0].item() == 0.0
    assert alpha[8, 8].item() == pytest.approx(1 - 0.01**3, abs=1e-12)
    # With one opaque disc on top, T = 0.01 >= 1e-4 and the bottom one still shows.
    image, _ = composite(join(bottom, stack.select(torch.tensor([1]))), bank, torch.zeros(3, dtype=F64), 16, 16, backend="torch")
    assert image[8, 8, 0].item() == pytest.approx(0.01 * 0.99, abs=1e-12)


def test_no_primitives_gives_the_background():
    bank = make_bank()
    params = random_params(0, 10, 12, seed=0, dtype=F64)
    image, alpha = composite(params, bank, torch.tensor([0.1, 0.2, 0.3], dtype=F64), 10, 12, backend="torch")
    assert torch.equal(alpha, torch.zeros(10, 12, dtype=F64))
    assert torch.equal(image, torch.tensor([0.1, 0.2, 0.3], dtype=F64).expand(10, 12, 3))


def test_background_image_is_used_per_pixel():
    bank = make_bank()
    params = random_params(6, 11, 13, seed=3, dtype=F64)
    background = torch.rand(11, 13, 3, dtype=F64)
    image, alpha = composite(params, bank, background, 11, 13, backend="torch")
    colour, alpha2 = composite(params, bank, None, 11, 13, backend="torch")
    torch.testing.assert_close(image, colour + background * (1 - alpha2).unsqueeze(-1), atol=1e-14, rtol=0)


# ---------------------------------------------------------------- gradients


def gradcheck_bank() -> TextureBank:
    bank = TextureBank()
    bank.add_analytic("circle")
    bank.add_analytic("gaussian")
    bank.add_texture("blob", smooth_texture(7, 5, 3).to(F64))
    return bank


def gradcheck_params(seed: int) -> PrimitiveParams:
    # Textured primitives at least 7 px wide use pyramid level 0 only (blur 0.5), where the
    # level weights are constant; opacities below 0.9 keep the alpha clamp inactive.
    params = random_params(5, 9, 10, seed=seed, dtype=F64, num_shapes=3, scale_range=(7.0, 9.0), margin=0.0, opacity_range=(0.1, 0.85))
    return params


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("backend", ["torch", "cpu", "cpu:scalar", "cpu:lanes"])
def test_gradcheck_every_parameter(seed, backend):
    # "cpu" takes the build's default pixel path; the two others name each path, so both are
    # checked on any machine.
    if ":" in backend:
        from diffbmp._backend import cpu_pixel_path

        backend, path = backend.split(":")
        with cpu_pixel_path(path):
            return test_gradcheck_every_parameter(seed, backend)
    bank = gradcheck_bank()
    base = gradcheck_params(seed)
    background = torch.tensor([0.3, 0.6, 0.2], dtype=F64, requires_grad=True)

    def render(means, rotations, scales, colors, opacities, beta, background):
        params = PrimitiveParams(means, rotations, scales, colors, opacities, base.shape_ids, beta)
        return composite(params, bank, background, 9, 10, blur=0.5, backend=backend)

    inputs = [getattr(requires_grad(base), name) for name in FLOAT_FIELDS] + [background]
    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradcheck_textures_and_background_image():
    texture = smooth_texture(6, 6, 9).to(F64).clamp(0.05, 0.95).requires_grad_(True)
    base = random_params(3, 8, 8, seed=4, dtype=F64, num_shapes=1, scale_range=(5.0, 6.0), margin=0.0, opacity_range=(0.2, 0.8))
    background = torch.rand(8, 8, 3, dtype=F64, requires_grad=True)

    def render(texture, background):
        bank = TextureBank()
        bank.add_texture("learned", texture)
        return composite(base, bank, background, 8, 8, blur=0.3, backend="torch")

    assert torch.autograd.gradcheck(render, [texture, background], eps=1e-6, atol=1e-6, rtol=1e-4)


# ---------------------------------------------------------------- resolution independence


def test_rendering_at_scale_k_matches_scale_one_downsampled():
    from diffbmp.scene import Scene

    bank = TextureBank.from_names(["circle", "gaussian", "disc", "star", "brush_flat"])
    params = random_params(40, 48, 64, seed=11, num_shapes=5, scale_range=(3.0, 12.0), opacity_range=(0.3, 0.9))
    scene = Scene.from_params(params, bank, 48, 64, background=(0.9, 0.85, 0.8))
    # The pixel prefilter is a one-pixel box's deviation, so both are equally soft; what
    # differs is the filter's shape (Gaussian vs box) and the texture levels chosen. Measured
    # here: about 49 dB at blur 0 and 62 dB at blur 1.
    for blur, floor_db in ((0.0, 45.0), (1.0, 55.0)):
        small, _ = scene.render(1.0, blur=blur, backend="torch")
        for k in (2, 4):
            large, _ = scene.render(float(k), blur=blur, backend="cpu")
            assert large.shape == (48 * k, 64 * k, 3)
            down = F.avg_pool2d(large.permute(2, 0, 1).unsqueeze(0), k)[0].permute(1, 2, 0)
            psnr = 10 * math.log10(1.0 / torch.mean((down - small) ** 2).item())
            assert psnr > floor_db, f"blur {blur}, scale {k}: PSNR {psnr:.1f} dB"


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_bad_parameters_raise_clear_errors(backend):
    # The cpu backend reads the value checks back inside its forward pass (as the cuda one
    # does, to save a synchronisation); the messages must be the same.
    bank = make_bank()
    good = random_params(4, 10, 10, seed=1)

    def fails(message: str, **changes):
        params = good.map(lambda t: t.clone())
        for name, value in changes.items():
            setattr(params, name, value)
        with pytest.raises(InputError, match=message):
            composite(params, bank, None, 10, 10, backend=backend)

    fails("scales must be > 0", scales=-good.scales)
    fails("means contains NaN", means=torch.full_like(good.means, float("nan")))
    fails("opacities must lie in", opacities=good.opacities + 2)
    fails("beta must lie in", beta=good.beta - 2)
    fails("shape_ids must index the texture bank", shape_ids=good.shape_ids + 10)
    fails(r"means must have shape \[4, 2\]", means=good.means[:, :1])
    fails("shape_ids must be an integer tensor", shape_ids=good.shape_ids.float())
    fails("colors is torch.float64", colors=good.colors.double())
    with pytest.raises(InputError, match="height must be at least 1"):
        composite(good, bank, None, 0, 10)
    with pytest.raises(InputError, match="blur must be a finite number"):
        composite(good, bank, None, 10, 10, blur=-1.0)
    with pytest.raises(InputError, match=r"background must have shape \[3\] or \[10, 10, 3\]"):
        composite(good, bank, torch.zeros(4), 10, 10)
    with pytest.raises(InputError, match="unknown backend 'gpu'"):
        composite(good, bank, None, 10, 10, backend="gpu")


def test_bank_errors_name_the_problem(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        TextureBank.from_names([str(tmp_path / "missing_stamp.png")])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a png")
    with pytest.raises(InputError, match="broken.png"):
        TextureBank.from_names([str(broken)])
    bank = TextureBank()
    with pytest.raises(InputError, match="empty"):
        bank.add_texture("nothing", np.zeros((0, 5, 4), dtype=np.float32))
    with pytest.raises(InputError, match="outside"):
        bank.add_texture("too_bright", np.full((4, 4, 4), 2.0, dtype=np.float32))
    with pytest.raises(InputError, match="Did you mean 'circle'"):
        TextureBank.from_names(["circel"])
    with pytest.raises(InputError, match="no primitives"):
        TextureBank.from_names([])
    bank.add_analytic("circle")
    with pytest.raises(InputError, match="already has an entry"):
        bank.add_analytic("circle")
