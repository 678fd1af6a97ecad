"""Binning of the native backends: the (tile, primitive) pairs every tile walks.

Both backends walk each primitive's tiles twice, once to count them and once to write them
into the slots the count gave it (docs/architecture.md, "Binning"). Here:

1. The tile test compiles without fused multiply-adds, for the host (with FMA instructions
   available, as on aarch64) and for the GPU (the PTX), so the two walks always agree.
2. On random and tile-grazing float32 scenes the walks agree (zero mismatches), the lists hold
   every primitive once per tile in painting order, and they agree with a float64 reference
   of the tile test.
3. Counts made to disagree with the writing walk (``count_skew``) never write outside a
   primitive's slots: surplus slots hold a sentinel that lies in no tile, and a short count
   drops the primitive's last tiles and nothing else.
4. Primitives over thousands of tiles (walked in bands of rows on the cpu backend) are listed
   where the reference says, each primitive's pairs come out in row-major order, and the lists
   and gradients are the same for any number of threads (the sort runs in chunks).

tests/test_cuda.py runs 2 and 3 on the cuda kernels (on a GPU, or emulated on the host).
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from diffbmp import _build_spec
from diffbmp._backend import native_module
from binning_checks import (Binning, check_skewed_binning, huge_params, invariant_violations, native_inputs,
                            reference_disagreements, run_binning, stress_scenes)
from scenes import grazing_params, make_bank, random_params, strokes_params
from nvcc_check import NVCC, needs_nvcc

INCLUDE = Path(__file__).resolve().parent.parent / "csrc" / "include"

PROBE = """
#include "diffbmp/geometry.h"
using namespace diffbmp;
#ifdef __CUDACC__
#define PROBE extern "C" __global__ void
#else
#define PROBE extern "C" void
#endif
PROBE probe_float(const PrimGeom<float>* g, int* out) { out[0] = tile_touches(*g, out[1], out[2], out[3], out[4]); }
PROBE probe_double(const PrimGeom<double>* g, int* out) { out[0] = tile_touches(*g, out[1], out[2], out[3], out[4]); }
"""


@pytest.fixture(scope="module")
def bank():
    return make_bank()


# -- 1. no multiply-add can make the two walks differ ----------------------------------------


def test_tile_test_has_no_fused_multiply_adds_on_the_host(tmp_path):
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None or _build_spec.is_msvc():
        pytest.skip("no GCC-style host compiler")
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        fma_flags, fused = ["-mfma"], r"\bv?f(n?m(add|sub))"  # vfmadd231ss, vfnmadd...
    elif machine in ("aarch64", "arm64"):
        fma_flags, fused = [], r"\bf(n?m(add|sub))\b"  # fmadd, fmsub, fnmadd, fnmsub
    else:
        pytest.skip(f"no multiply-add pattern known for {machine}")
    source = tmp_path / "probe.cpp"
    source.write_text(PROBE)
    flags = _build_spec.cxx_flags(openmp=False)
    command = [compiler, "-S", "-o", str(tmp_path / "probe.s"), *flags, *fma_flags, f"-I{INCLUDE}", str(source)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    assembly = (tmp_path / "probe.s").read_text()
    assert "probe_float" in assembly and "probe_double" in assembly
    found = sorted(set(m.group(0) for m in re.finditer(fused, assembly)))
    assert not found, f"the tile test compiles to fused multiply-adds {found} with {' '.join(flags + fma_flags)}"


@needs_nvcc
def test_tile_test_has_no_fused_multiply_adds_on_the_device(tmp_path):
    source = tmp_path / "probe.cu"
    source.write_text(PROBE)
    ptx = tmp_path / "probe.ptx"
    command = [NVCC, "-ptx", "-arch=sm_90", *_build_spec.NVCC_FLAGS, f"-I{INCLUDE}", str(source), "-o", str(ptx)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    ops = re.findall(r"^\s+((?:mul|add|sub|fma|mad)\.[\w.]+)", ptx.read_text(), flags=re.M)
    float_ops = [op for op in ops if op.endswith((".f32", ".f64"))]
    assert float_ops, "the probe compiled to no floating-point arithmetic"
    # ptxas never fuses an instruction that carries an explicit rounding mode.
    loose = sorted(set(op for op in float_ops if op.startswith(("fma", "mad")) or ".rn." not in op))
    assert not loose, f"the tile test compiles to {loose}, which ptxas may contract differently per kernel"


# -- 2. the walks agree, and the lists are right ---------------------------------------------


def test_counting_and_writing_agree_and_match_the_reference(bank):
    module = native_module("cpu")
    for name, params, height, width, blur in stress_scenes(bank):
        b = run_binning(module, params, bank, height, width, blur)
        assert b.mismatches == 0, f"{name}: {b.mismatches} primitives counted a different number of tiles than they wrote"
        assert not invariant_violations(b, len(params)), f"{name}: {invariant_violations(b, len(params))}"
        missing, extra = reference_disagreements(b, params, bank, height, width, blur)
        assert missing == 0 and extra == 0, f"{name}: {missing} pairs missing and {extra} extra against the float64 tile test"


@pytest.mark.slow
def test_large_stroke_paintings_bin_consistently(bank):
    # Ten thousand strokes on 1024x1024, as in the GPU probe: far too many tiles for the dense
    # float64 reference, so only the agreement of the walks and the invariants.
    module = native_module("cpu")
    for seed in range(3):
        params = strokes_params(10_000, 1024, seed=seed, bank_size=len(bank))
        b = run_binning(module, params, bank, 1024, 1024, 0.5)
        assert b.mismatches == 0 and not invariant_violations(b, len(params)), f"seed {seed}: {b.mismatches} mismatches, {invariant_violations(b, len(params))}"


def test_grazing_scenes_do_graze(bank):
    # The point of the grazing scenes: many primitives sit within float32 rounding of the
    # threshold of the tile test, where a differently rounded multiply-add flips it.
    from binning_checks import reference_tiles

    params = grazing_params(400, 60, 80, seed=0, shape_ids=tuple(range(len(bank))), blur=0.0, bank=bank)
    must, may = reference_tiles(params, bank, 60, 80, 0.0, tol=1e-4)
    undecided = (may & ~must).any(dim=1).float().mean()
    assert undecided > 0.5, f"only {float(undecided):.0%} of the grazing primitives sit at a threshold"


# -- 3. a count that disagrees never writes outside the primitive's slots ---------------------


def test_skewed_counts_stay_inside_their_slots(bank):
    check_skewed_binning(native_module("cpu"), bank)


def test_bin_pairs_rejects_a_skew_of_the_wrong_shape(bank):
    from binning_checks import native_inputs

    params = random_params(5, 20, 20, seed=1)
    with pytest.raises(RuntimeError, match=r"count_skew has shape \[4\], expected size 5"):
        native_module("cpu").bin_pairs(native_inputs(params, bank), 20, 20, 0.0, torch.zeros(4, dtype=torch.long))


# -- 4. primitives over thousands of tiles, and the sort in chunks ----------------------------
# The cpu backend walks a primitive whose bounding box spans more than a thousand tiles in bands
# of tile rows on several threads, and sorts a long pair list in chunks, one per thread.


def test_huge_primitives_are_listed_in_every_tile_they_touch(bank):
    module = native_module("cpu")
    for seed, (height, width) in enumerate(((1000, 1040), (1024, 1024), (600, 2000))):
        params = huge_params(40, 0, height, width, seed=seed)
        b = run_binning(module, params, bank, height, width, 0.5)
        assert b.mismatches == 0 and not invariant_violations(b, len(params)), invariant_violations(b, len(params))
        missing, extra = reference_disagreements(b, params, bank, height, width, 0.5)
        assert missing == 0 and extra == 0, f"{height}x{width}: {missing} pairs missing and {extra} extra"
        assert int(b.tile_start[-1]) > 40 * 1000, "the scene should hold primitives over a thousand tiles"


def test_each_primitive_emits_its_pairs_in_row_major_order(bank):
    # The per-primitive gradient sums its pairs in emission order, which must not depend on
    # how a primitive's walk was cut into bands.
    module = native_module("cpu")
    params = huge_params(30, 500, 1000, 1040, seed=3)
    saved = module.composite_forward(native_inputs(params, bank), 1000, 1040, 0.5)
    tile_start, pair_slot, prim_start = saved[4], saved[6], saved[7]
    b = Binning(tile_start, saved[5], prim_start, 0)
    listed = int(tile_start[-1])
    tile_by_slot = torch.full((pair_slot.numel(),), -1, dtype=torch.long)
    tile_by_slot[pair_slot[:listed]] = b.tile_of_entries()
    for i in range(len(params)):
        tiles = tile_by_slot[int(prim_start[i]):int(prim_start[i + 1])]
        assert bool((tiles[1:] > tiles[:-1]).all()), f"primitive {i}'s pairs are not in row-major tile order"


def test_skewed_counts_of_huge_primitives_stay_inside_their_slots(bank):
    check_skewed_binning(native_module("cpu"), bank, scene=(huge_params(30, 200, 800, 900, seed=4), 800, 900))


def test_binning_and_gradients_do_not_depend_on_the_number_of_threads(bank):
    # Over 200,000 pairs: the sort runs in as many chunks as threads.
    module = native_module("cpu")
    params = huge_params(100, 3000, 1000, 1040, seed=5)
    inputs = native_inputs(params, bank)
    grad_colour = torch.rand(1000, 1040, 3, generator=torch.Generator().manual_seed(0))
    grad_alpha = torch.rand(1000, 1040, generator=torch.Generator().manual_seed(1))
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            saved = module.composite_forward(inputs, 1000, 1040, 0.5)
            grads = module.composite_backward(inputs, 1000, 1040, 0.5, grad_colour, grad_alpha, saved)
            results.append((saved, grads))
    finally:
        torch.set_num_threads(before)
    assert results[0][0][5].numel() > 3 * 65536, "the pair list should be long enough to sort in three chunks"
    first_saved, first_grads = results[0]
    for saved, grads in results[1:]:
        for a, b in zip(first_saved, saved):
            assert torch.equal(a, b)
        assert torch.equal(first_grads, grads)
