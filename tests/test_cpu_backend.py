"""The cpu backend against the torch reference: hundreds of random scenes, the edge cases of
the rendering model, thread-count independence, and very deep stacks."""

from __future__ import annotations

import math
import random
import zlib

import pytest
import torch

from diffbmp import PrimitiveParams, TextureBank, composite

from backend_parity import FORWARD_ATOL_F32, FORWARD_ATOL_F64, assert_gradients_close, render_with_grads
from scenes import make_bank, random_params

F64 = torch.float64

#: float32 gradients against the float64 reference, relative to the largest entry of each
#: gradient tensor, plus GRAD_ATOL_F32. Worst seen over 200 scenes x 2 cotangents: 3e-5 for
#: scales and beta, 1e-5 for means and opacities, 4e-6 for colours and background. The
#: geometric gradients carry (g . S_n) / (1 - a_n), where the colour behind S_n comes from a
#: float32 subtraction and 1 / (1 - a) reaches 100 at the alpha clamp.
GRAD_RTOL_F32 = {"means": 1e-4, "rotations": 1e-4, "scales": 2e-4, "colors": 3e-5, "opacities": 1e-4, "beta": 2e-4, "background": 3e-5}
#: Gradients are sums of per-pixel terms up to about 1 in size; where they nearly cancel (the
#: rotation of a near-circular primitive) float32 leaves about 5e-7 absolute.
GRAD_ATOL_F32 = 2e-6
#: float64: the two backends evaluate the same formulas; only summation order differs.
GRAD_RTOL_F64 = 1e-10
#: ... and where a whole gradient nearly vanishes (the rotation of sub-pixel primitives, about
#: 1e-7) the relative bound falls below the rounding of its terms, which are up to about 1.
GRAD_ATOL_F64 = 1e-14


def random_case(seed: int):
    rng = random.Random(seed)
    n = rng.choice([0, 1, 2, 5, 20, 60, 150])
    height, width = rng.randint(1, 70), rng.randint(1, 70)
    blur = rng.choice([0.0, 0.4, 2.5])
    return random_params(n, height, width, seed=seed), height, width, blur


@pytest.fixture(scope="module")
def bank() -> TextureBank:
    return make_bank()


def check_against_reference(params: PrimitiveParams, bank, height, width, blur, context, f32_rtol=None):
    image, alpha, grads = render_with_grads(params, bank, height, width, blur, "cpu")
    ref_image, ref_alpha, _ = render_with_grads(params, bank, height, width, blur, "torch")
    torch.testing.assert_close(image, ref_image, atol=FORWARD_ATOL_F32, rtol=0, msg=f"{context}: image")
    torch.testing.assert_close(alpha, ref_alpha, atol=FORWARD_ATOL_F32, rtol=0, msg=f"{context}: alpha")
    params64 = params.map(lambda t: t.double() if t.is_floating_point() else t)
    image64, alpha64, grads64 = render_with_grads(params64, bank, height, width, blur, "cpu")
    ref_image64, ref_alpha64, ref_grads64 = render_with_grads(params64, bank, height, width, blur, "torch")
    torch.testing.assert_close(image64, ref_image64, atol=FORWARD_ATOL_F64, rtol=0, msg=f"{context}: image (float64)")
    torch.testing.assert_close(alpha64, ref_alpha64, atol=FORWARD_ATOL_F64, rtol=0, msg=f"{context}: alpha (float64)")
    assert_gradients_close(grads64, ref_grads64, GRAD_RTOL_F64, f"{context} (float64)", atol=GRAD_ATOL_F64)
    for name, rtol in (f32_rtol or GRAD_RTOL_F32).items():
        assert_gradients_close({name: grads[name]}, {name: ref_grads64[name]}, rtol, f"{context} (float32)", atol=GRAD_ATOL_F32)


@pytest.mark.parametrize("block", range(10))
def test_random_scenes_match_the_reference(bank, block):
    # 200 scenes in 10 groups: N from 0 to 150, canvases from 1x1 to 70x70 (rarely a multiple
    # of the tile size), every shape kind, blur 0 to 2.5, primitives partly off-canvas.
    for seed in range(block * 20, block * 20 + 20):
        params, height, width, blur = random_case(seed)
        check_against_reference(params, bank, height, width, blur, f"seed {seed} (N={len(params)}, {height}x{width}, blur {blur})")


def custom(bank_size: int, n: int, seed: int, **overrides) -> PrimitiveParams:
    params = random_params(n, 40, 40, seed=seed, num_shapes=bank_size)
    for name, value in overrides.items():
        setattr(params, name, value if isinstance(value, torch.Tensor) else torch.full_like(getattr(params, name), value))
    return params


EDGE_CASES = {
    "off_canvas": dict(means=torch.tensor([[-30.0, 20.0], [70.0, 20.0], [20.0, -50.0], [20.0, 90.0], [-8.0, -8.0], [45.0, 41.0]])),
    "covering_everything": dict(scales=torch.full((6, 2), 300.0)),
    "sub_pixel": dict(scales=torch.full((6, 2), 0.05)),
    "opacity_near_one": dict(opacities=torch.tensor([0.999, 1.0, 0.995, 0.9999, 1.0, 0.98])),
    "rotated_45_degrees": dict(rotations=torch.full((6,), math.pi / 4)),
    "rotated_minus_135_degrees": dict(rotations=torch.full((6,), -3 * math.pi / 4)),
    "needle_thin": dict(scales=torch.tensor([[30.0, 0.2]] * 6)),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
@pytest.mark.parametrize("blur", [0.0, 1.5])
def test_edge_cases(bank, case, blur):
    # crc32, not hash(): str hashes change from one Python process to the next.
    params = custom(len(bank), 6, seed=zlib.crc32(case.encode()) % 1000, **EDGE_CASES[case])
    check_against_reference(params, bank, 40, 40, blur, case)


@pytest.mark.parametrize("size", [(1, 1), (1, 33), (17, 1), (15, 17), (16, 16), (31, 49)])
def test_canvases_not_a_multiple_of_the_tile(bank, size):
    height, width = size
    params = random_params(25, height, width, seed=height * 100 + width, margin=4.0)
    check_against_reference(params, bank, height, width, 0.7, f"{height}x{width}")


def test_one_primitive_of_each_kind(bank):
    for shape in range(len(bank)):
        params = random_params(1, 20, 30, seed=shape, scale_range=(4.0, 9.0), margin=0.0)
        params.shape_ids = torch.tensor([shape])
        check_against_reference(params, bank, 20, 30, 0.5, f"single {bank[shape].name}")


def test_thousands_of_overlaps_at_one_pixel(bank):
    # 3000 faint primitives all covering a small canvas: no early termination (T stays near
    # 0.05), so every pixel walks 3000 entries forward and backward.
    n = 3000
    params = random_params(n, 6, 7, seed=5, scale_range=(20.0, 30.0), opacity_range=(0.0005, 0.0015))
    params.means = torch.full((n, 2), 3.5) + torch.randn(n, 2, generator=torch.Generator().manual_seed(1)) * 0.3
    # The float32 transmittance is a product of 3000 factors: its rounding grows with depth.
    looser = {name: rtol * 10 for name, rtol in GRAD_RTOL_F32.items()}
    check_against_reference(params, bank, 6, 7, 0.5, "3000-deep stack", f32_rtol=looser)


def test_deep_opaque_stack_terminates_early(bank):
    n = 500
    params = random_params(n, 16, 16, seed=9, scale_range=(40.0, 50.0), opacity_range=(0.95, 1.0))
    params.means = torch.full((n, 2), 8.0)
    params.shape_ids = torch.zeros(n, dtype=torch.long)  # opaque circles
    check_against_reference(params, bank, 16, 16, 0.0, "opaque stack")


@pytest.mark.slow
def test_a_million_pairs_at_one_pixel_stack(bank):
    # One million primitives stacked on a one-pixel canvas, each with alpha 1e-6: a million
    # (primitive, pixel) pairs in one tile and one pixel, forward and backward.
    n = 1_000_000
    params = PrimitiveParams(
        means=torch.full((n, 2), 0.5), rotations=torch.zeros(n), scales=torch.full((n, 2), 3.0),
        colors=torch.rand(n, 3, generator=torch.Generator().manual_seed(0)), opacities=torch.full((n,), 1e-6),
        shape_ids=torch.zeros(n, dtype=torch.long),
    )
    params = params.map(lambda t: t.requires_grad_(True) if t.is_floating_point() else t)
    image, alpha = composite(params, bank, torch.zeros(3), 1, 1, backend="cpu")
    coverage = 1.0  # the pixel is at the centre of a 3-pixel circle: sigmoid(17.7)
    # float32 stores 1 - 1e-6 as 1 - 1.013e-6 (its spacing near 1 is 6e-8), and that is the
    # factor the kernel multiplies a million times.
    factor = (torch.tensor(1.0) - torch.tensor(1e-6 * coverage)).item()
    assert alpha.item() == pytest.approx(1 - factor**n, abs=1e-3)
    (image.sum() + alpha.sum()).backward()
    assert torch.isfinite(params.means.grad).all() and torch.isfinite(params.opacities.grad).all()
    # dL/dc_n = a_n T_n: the top primitive is seen directly, the bottom one through the rest
    # of the stack (T = (1 - alpha) / (1 - a)). float32 rounds 1 - 1e-6 to 2 % of its gap
    # below 1, so the million-fold product is checked to 5 %.
    a = 1e-6 * coverage
    assert params.colors.grad[-1, 0].item() == pytest.approx(a, rel=1e-4)
    assert params.colors.grad[0, 0].item() < params.colors.grad[-1, 0].item() / 2
    assert params.colors.grad[0, 0].item() == pytest.approx(a * (1 - alpha.item()) / (1 - a), rel=5e-2)


def test_result_does_not_depend_on_the_number_of_threads(bank):
    params = random_params(300, 70, 90, seed=21, scale_range=(1.0, 20.0))
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append(render_with_grads(params, bank, 70, 90, 0.8, "cpu"))
    finally:
        torch.set_num_threads(before)
    first = results[0]
    for other in results[1:]:
        assert torch.equal(first[0], other[0]) and torch.equal(first[1], other[1])
        for name in first[2]:
            assert torch.equal(first[2][name], other[2][name]), name


def test_native_errors_are_clear(bank):
    from diffbmp._backend import native_module

    module = native_module("cpu")
    params = random_params(3, 10, 10, seed=0)
    prepared = bank.prepare("cpu", torch.float32)
    inputs = [params.means, params.rotations, params.scales, params.colors, params.opacities, params.beta,
              params.shape_ids.to(torch.int32), prepared.texels, prepared.level_table, prepared.entries]
    bad = list(inputs)
    bad[0] = params.means.long()
    with pytest.raises(RuntimeError, match=r"composite_forward \(cpu\): means must be float32 or float64"):
        module.composite_forward(bad, 10, 10, 0.0)
    bad = list(inputs)
    bad[1] = params.rotations.double()
    with pytest.raises(RuntimeError, match="rotations must be Float, got Double"):
        module.composite_forward(bad, 10, 10, 0.0)
    bad = list(inputs)
    bad[6] = torch.tensor([0, 1, 99], dtype=torch.int32)
    with pytest.raises(RuntimeError, match="shape_ids must lie in"):
        module.composite_forward(bad, 10, 10, 0.0)
    with pytest.raises(RuntimeError, match="height and width must be positive"):
        module.composite_forward(inputs, 0, 10, 0.0)
