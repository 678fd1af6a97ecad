"""The cpu backend's two pixel paths: vectors of lanes (the default, which test_cpu_backend.py
checks against the torch reference) and one pixel at a time (the readable reference path),
against each other and against the reference, on the edge cases of the lane layout."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

from diffbmp._backend import cpu_pixel_path, native_module
from diffbmp.errors import InputError

from backend_parity import FORWARD_ATOL_F32, FORWARD_ATOL_F64, assert_gradients_close, render_with_grads
from scenes import make_bank, random_params
from test_cpu_backend import EDGE_CASES, check_against_reference, custom, random_case

#: Lanes and scalar differ in the order of each pair's gradient sum (per lane, then over the
#: lanes) and, in float32, in exp (a polynomial in the lanes, expf in the scalar path).
PATH_RTOL = {torch.float32: 2e-5, torch.float64: 1e-12}
PATH_ATOL = {torch.float32: 1e-6, torch.float64: 1e-14}


@pytest.fixture(scope="module")
def bank():
    return make_bank()


def both_paths(params, bank, height, width, blur):
    results = {}
    for path in ("lanes", "scalar"):
        with cpu_pixel_path(path):
            results[path] = render_with_grads(params, bank, height, width, blur, "cpu")
    return results["lanes"], results["scalar"]


def assert_paths_agree(params, bank, height, width, blur, context):
    lanes, scalar = both_paths(params, bank, height, width, blur)
    dtype = params.dtype
    atol = FORWARD_ATOL_F32 if dtype == torch.float32 else FORWARD_ATOL_F64
    for index, name in ((0, "image"), (1, "alpha")):
        torch.testing.assert_close(lanes[index], scalar[index], atol=atol, rtol=0, msg=f"{context}: {name}")
    assert_gradients_close(lanes[2], scalar[2], PATH_RTOL[dtype], f"{context} ({dtype})", atol=PATH_ATOL[dtype])


@pytest.mark.parametrize("width", [1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 23, 31, 33])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_widths_that_are_not_a_multiple_of_the_lanes(bank, width, dtype):
    # 8 float or 4 double lanes per vector, 16-pixel tiles: rows that end inside a vector, in
    # the second vector of a tile row, and one pixel into the next tile.
    params = random_params(40, 11, width, seed=width, margin=3.0, scale_range=(0.3, 9.0))
    params = params.map(lambda t: t.to(dtype) if t.is_floating_point() else t)
    assert_paths_agree(params, bank, 11, width, 0.6, f"11x{width}")


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_edge_cases_agree(bank, case, dtype):
    params = custom(len(bank), 6, seed=len(case), **EDGE_CASES[case])
    params = params.map(lambda t: t.to(dtype) if t.is_floating_point() else t)
    assert_paths_agree(params, bank, 40, 37, 0.0, case)


def test_huge_and_sub_pixel_primitives_together(bank):
    params = random_params(30, 45, 50, seed=3, scale_range=(0.02, 0.4))
    params.scales[:5] = torch.tensor([400.0, 250.0])  # each covers the canvas many times over
    params.rotations[:5] = math.pi / 4
    assert_paths_agree(params, bank, 45, 50, 0.3, "huge over sub-pixel")
    check_against_reference(params, bank, 45, 50, 0.3, "huge over sub-pixel (lanes)")


def test_the_forward_is_the_scalar_one_bit_for_bit_where_no_exp_is_taken(bank):
    # Textures sample with no exponential: the lanes perform the scalar path's operations in
    # its order, so the image is identical; float64 takes the C library's exp in both paths.
    textured = [i for i in range(len(bank)) if bank[i].kind == 0]  # KIND_TEXTURE
    params = random_params(80, 33, 41, seed=8, num_shapes=len(bank))
    params.shape_ids = torch.tensor([textured[i % len(textured)] for i in range(80)])
    lanes, scalar = both_paths(params, bank, 33, 41, 0.5)
    assert torch.equal(lanes[0], scalar[0]) and torch.equal(lanes[1], scalar[1])
    params64 = random_params(80, 33, 41, seed=9).map(lambda t: t.double() if t.is_floating_point() else t)
    lanes, scalar = both_paths(params64, bank, 33, 41, 0.5)
    assert torch.equal(lanes[0], scalar[0]) and torch.equal(lanes[1], scalar[1])


@pytest.mark.parametrize("block", range(2))
def test_the_scalar_path_still_matches_the_reference(bank, block):
    # The scalar path is the readable reference of the lanes: it keeps its own check, on the
    # first of test_cpu_backend.py's scenes (whose float32 bounds were measured on them).
    with cpu_pixel_path("scalar"):
        for seed in range(block * 15, block * 15 + 15):
            params, height, width, blur = random_case(seed)
            check_against_reference(params, bank, height, width, blur, f"scalar path, seed {seed}")


def test_thousands_of_overlaps_agree(bank):
    n = 2000
    params = random_params(n, 5, 19, seed=5, scale_range=(20.0, 30.0), opacity_range=(0.0005, 0.0015))
    params.means = torch.full((n, 2), 3.0) + torch.randn(n, 2, generator=torch.Generator().manual_seed(1)) * 0.3
    params64 = params.map(lambda t: t.double() if t.is_floating_point() else t)
    assert_paths_agree(params64, bank, 5, 19, 0.5, "2000-deep stack")


def test_pixel_path_setting_is_restored_and_checked():
    module = native_module("cpu")
    default = module.pixel_path()
    for path in ("scalar", "lanes"):
        with cpu_pixel_path(path):
            assert module.pixel_path() == path
        assert module.pixel_path() == default
    with pytest.raises(InputError, match="lanes, scalar"):
        with cpu_pixel_path("simd"):
            pass
    with pytest.raises(ValueError, match="'lanes' or 'scalar'"):
        module.set_pixel_path("fast")


def test_builds_for_avx2_take_the_lanes_by_default():
    from diffbmp import _build_spec

    if "-mavx2" not in _build_spec.cxx_flags(this_machine=True):
        pytest.skip("this processor has no AVX2: its builds keep the scalar loops by default")
    code = "from diffbmp._backend import native_module; print(native_module('cpu').pixel_path())"
    env = {k: v for k, v in os.environ.items() if k != "DIFFBMP_CPU_PIXELS"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "lanes", done.stderr[-2000:]


def test_environment_chooses_the_path_and_a_bad_value_is_named():
    code = "from diffbmp._backend import native_module; print(native_module('cpu').pixel_path())"
    for path in ("scalar", "lanes"):
        env = dict(os.environ, DIFFBMP_CPU_PIXELS=path)
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0 and done.stdout.strip() == path, done.stderr[-2000:]
    env = dict(os.environ)
    env["DIFFBMP_CPU_PIXELS"] = "vector"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "DIFFBMP_CPU_PIXELS='vector' is not a pixel path" in done.stderr
