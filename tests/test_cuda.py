"""The cuda backend against the torch reference and the cpu backend (needs a CUDA GPU).

The checks live in :class:`CudaBackendChecks`, parametrised by the backend name and the device
its tensors live on, so tests/test_cuda_compiles.py runs the very same checks on the host
emulation of the kernels (csrc/cuda/emulation) on machines without a GPU.

Every comparison is made on the CPU. The reference is the torch backend in float64 evaluated
at the float32 parameters (upcast), so the tolerances below bound the float32 error of the
backend under test alone; the cpu backend is held to the same tolerances as a sanity check
of the tolerances themselves.
"""

from __future__ import annotations

import contextlib
import math

import pytest
import torch

from diffbmp import InputError, PrimitiveParams, composite
from diffbmp._backend import native_module
from binning_checks import check_skewed_binning, invariant_violations, reference_disagreements, run_binning, stress_scenes
from scenes import BACKGROUND, FLOAT_FIELDS, make_bank, random_params

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="the cuda backend needs a CUDA GPU (torch.cuda.is_available() is False)"),
]

# Forward: C and alpha are sums of at most a few hundred float32 terms in [0, 1], each a
# product of a few roundings (relative 6e-8 each); 1e-5 absolute is the contract.
FORWARD_ATOL = 1e-5

# Gradients are compared per tensor relative to the gradient's scale: a primitive's gradient
# is a sum over its pixels of terms of either sign, so where they cancel an element-wise
# relative error says nothing. The scale of a tensor is its largest reference element, but at
# least SCALE_FLOOR of the largest in its group (geometry: means, rotations, scales;
# appearance: colors, opacities, beta), so a tensor whose terms cancel (the beta gradient of a
# single primitive, say) is judged by the size of the terms. Sources of error: float32
# rounding of every pair term, the order of the sum (warp shuffles, then atomicAdd in
# whatever order the warps finish), FMA contraction on the GPU and CUDA's maths library.
GRAD_RTOL = {
    # Geometry: dL/du is scaled by 1/sx and by edge slopes of up to rho/sigma_e, so the
    # rounding of u, v (~1e-7 of the coordinates in pixels) is amplified. The cpu backend's
    # float32 errors on 72 random scenes reach 4.4e-6 of the scale: 2e-4 leaves 45x for the
    # GPU's different rounding.
    "means": 2e-4,
    "rotations": 2e-4,
    "scales": 2e-4,
    # Appearance: products of alpha, transmittance and dL/dC with no amplification; the cpu
    # backend's float32 errors reach 7e-6 of the scale, 1e-4 leaves 14x.
    "colors": 1e-4,
    "opacities": 1e-4,
    "beta": 1e-4,
}
GRAD_GROUPS = (("means", "rotations", "scales"), ("colors", "opacities", "beta"))
SCALE_FLOOR = 0.1
# A pixel centre within float32 rounding of a texel centre of a coarse pyramid level sits on
# a kink of the bilinear interpolation, where float32 and float64 take different one-sided
# derivatives (seen: single primitives at 7e-3 and 3.4e-2 of the scale in 72 random float32
# scenes, for the cpu backend and for the torch backend run in float32 alike). Up to 1% of the
# primitives may differ by up to OUTLIER_RTOL of the scale; a wrong list order, a lost pair or
# a broken reduction moves far more primitives, or moves them further.
OUTLIER_FRACTION = 0.01
OUTLIER_RTOL = 0.1

# (name, N, height, width, blur, random_params keyword arguments). Canvases are mostly not
# multiples of 16 so the edge tiles are partial.
SCENES = [
    ("empty", 0, 20, 30, 0.0, {}),
    ("single", 1, 17, 23, 0.0, {}),
    ("few_blurred", 7, 16, 16, 0.5, {}),
    ("hundreds", 300, 45, 61, 0.0, {}),
    ("hundreds_blurred", 250, 40, 33, 2.0, {}),
    # Long lists: early termination within the first shared-memory batch (139 primitives in
    # float32, 80 in float64, and 81 and 43 in the deterministic backward), then termination
    # several batches down.
    ("deep", 600, 24, 20, 0.3, {"scale_range": (5.0, 30.0), "opacity_range": (0.3, 1.0)}),
    ("deep_translucent", 500, 24, 20, 0.0, {"scale_range": (5.0, 30.0), "opacity_range": (0.0, 0.15)}),
    ("sub_pixel", 400, 31, 29, 0.0, {"scale_range": (0.05, 1.0)}),
    ("wide", 150, 7, 130, 0.0, {}),
    ("tall", 150, 131, 9, 1.0, {}),
]


@contextlib.contextmanager
def torch_deterministic():
    """torch.use_deterministic_algorithms(True) for the duration."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def max_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def grad_scale(g: torch.Tensor) -> float:
    return float(g.double().abs().max()) if g.numel() else 0.0


class CudaBackendChecks:
    """Checks of one implementation of the cuda backend; subclasses set the attributes."""

    backend = "cuda"  # name passed to composite()
    device = "cuda"  # where its tensors live
    stack_pairs = 1_000_000  # size of the one-pixel stack test
    large_scenes = True  # also run the scenes too large for the torch reference

    @pytest.fixture(scope="class")
    @classmethod
    def bank(cls):
        return make_bank()

    # -- helpers ---------------------------------------------------------------------------

    def run(self, backend, device, params, bank, height, width, blur, *, background=BACKGROUND, dtype=None, seed=0):
        """image, alpha and the gradients of a fixed random linear loss, all on the CPU."""
        dtype = dtype or params.dtype
        p = params.map(lambda t: t.detach().to(device=device, dtype=dtype if t.is_floating_point() else t.dtype))
        p = p.map(lambda t: t.requires_grad_(True) if t.is_floating_point() else t)
        bg = None if background is None else torch.tensor(background, dtype=dtype, device=device)
        image, alpha = composite(p, bank, bg, height, width, blur=blur, backend=backend)
        g = torch.Generator().manual_seed(seed)
        w_image = torch.randn(height, width, 3, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
        w_alpha = torch.randn(height, width, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
        loss = (image * w_image).sum() + (alpha * w_alpha).sum()
        if loss.requires_grad:
            loss.backward()
        grads = {}
        for name in FLOAT_FIELDS:
            t = getattr(p, name)
            grads[name] = torch.zeros_like(t).cpu() if t.grad is None else t.grad.detach().cpu()
        return image.detach().cpu(), alpha.detach().cpu(), grads

    def run_self(self, params, bank, height, width, blur, **kwargs):
        return self.run(self.backend, self.device, params, bank, height, width, blur, **kwargs)

    def run_reference(self, params, bank, height, width, blur, **kwargs):
        return self.run("torch", "cpu", params, bank, height, width, blur, dtype=torch.float64, **kwargs)

    def assert_matches(self, got, ref, *, atol=FORWARD_ATOL, rtol=None, outliers=OUTLIER_FRACTION, what=""):
        rtol = rtol or GRAD_RTOL
        image, alpha, grads = got
        ref_image, ref_alpha, ref_grads = ref
        assert max_error(image, ref_image) <= atol, f"{what}: image differs by {max_error(image, ref_image):.3g}"
        assert max_error(alpha, ref_alpha) <= atol, f"{what}: alpha differs by {max_error(alpha, ref_alpha):.3g}"
        for group in GRAD_GROUPS:
            group_scale = max(grad_scale(ref_grads[name]) for name in group)
            for name in group:
                scale = max(grad_scale(ref_grads[name]), SCALE_FLOOR * group_scale)
                n = ref_grads[name].shape[0]
                if n == 0:
                    continue
                per_prim = (grads[name].double() - ref_grads[name].double()).abs().reshape(n, -1).amax(dim=1)
                limit = rtol[name] * scale + 1e-12
                bad = int((per_prim > limit).sum())
                worst = float(per_prim.max())
                assert bad <= int(outliers * n) and worst <= max(limit, OUTLIER_RTOL * scale * (outliers > 0)), (
                    f"{what}: d/d{name} of {bad} of {n} primitives differs by more than {rtol[name]:.0e} of its "
                    f"scale {scale:.3g}; the worst by {worst:.3g} ({worst / max(scale, 1e-300):.3g} of the scale)"
                )

    # -- parity on random scenes -------------------------------------------------------------

    @pytest.mark.parametrize("name,n,height,width,blur,kwargs", SCENES, ids=[s[0] for s in SCENES])
    @pytest.mark.parametrize("seed", [0, 1])
    def test_matches_reference_and_cpu_float32(self, bank, name, n, height, width, blur, kwargs, seed):
        params = random_params(n, height, width, seed=100 * seed + n, **kwargs)
        background = None if seed == 1 else BACKGROUND  # with and without the dL/dalpha of a background
        got = self.run_self(params, bank, height, width, blur, background=background, seed=seed)
        ref = self.run_reference(params, bank, height, width, blur, background=background, seed=seed)
        cpu = self.run("cpu", "cpu", params, bank, height, width, blur, background=background, seed=seed)
        self.assert_matches(got, ref, what=f"{name} vs torch float64")
        self.assert_matches(cpu, ref, what=f"{name}: cpu backend vs torch float64 (tolerance sanity)")
        self.assert_matches(got, cpu, what=f"{name} vs cpu")

    @pytest.mark.parametrize("name,n,height,width,blur,kwargs", SCENES[:7], ids=[s[0] for s in SCENES[:7]])
    def test_matches_reference_float64(self, bank, name, n, height, width, blur, kwargs):
        params = random_params(n, height, width, seed=7 + n, dtype=torch.float64, **kwargs)
        got = self.run_self(params, bank, height, width, blur)
        ref = self.run_reference(params, bank, height, width, blur)
        # float64 throughout: only the order of the sums differs.
        self.assert_matches(got, ref, atol=1e-12, rtol={k: 1e-9 for k in GRAD_RTOL}, outliers=0.0,
                            what=f"{name} float64")

    def test_gradcheck_float64(self, bank):
        # Analytic shapes plus one texture large enough that its pyramid level is clamped to 0:
        # the level blend weights depend on the scales but are constants for the gradient by
        # contract (docs/rendering.md 5.4), so finite differences would disagree elsewhere.
        # Opacities <= 0.8 on four layers keep T above T_MIN and o * cov below ALPHA_MAX.
        height, width, n = 11, 13, 5
        params = random_params(n, height, width, seed=3, dtype=torch.float64, scale_range=(2.0, 6.0), margin=1.0,
                               opacity_range=(0.2, 0.8), num_shapes=2)
        params.shape_ids[-1] = 3  # blob_64: level 0 for scales above ~37 pixels at this blur
        params.scales[-1] = torch.tensor([50.0, 45.0], dtype=torch.float64)
        params = params.map(lambda t: t.to(self.device))
        background = torch.tensor(BACKGROUND, dtype=torch.float64, device=self.device)

        def f(means, rotations, scales, colors, opacities, beta):
            p = PrimitiveParams(means, rotations, scales, colors, opacities, params.shape_ids, beta)
            return composite(p, bank, background, height, width, blur=0.5, backend=self.backend, validate=False)

        inputs = [getattr(params, name).detach().clone().requires_grad_(True) for name in FLOAT_FIELDS]
        assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=self.device == "cpu")

    # -- edge cases ---------------------------------------------------------------------------

    def edge_case(self, bank, params, height, width, blur=0.0, **kwargs):
        got = self.run_self(params, bank, height, width, blur, **kwargs)
        ref = self.run_reference(params, bank, height, width, blur, **kwargs)
        self.assert_matches(got, ref)
        return got

    def test_off_canvas(self, bank):
        params = random_params(50, 20, 24, seed=1)
        params.means = params.means + torch.tensor([1000.0, -1000.0])
        image, alpha, grads = self.edge_case(bank, params, 20, 24)
        assert torch.all(alpha == 0)
        assert torch.allclose(image, torch.tensor(BACKGROUND).expand(20, 24, 3))
        assert all(torch.all(g == 0) for g in grads.values())

    def test_covering_everything(self, bank):
        params = random_params(6, 37, 41, seed=2, scale_range=(200.0, 400.0), opacity_range=(0.1, 0.6))
        params.means = torch.full_like(params.means, 20.0)
        self.edge_case(bank, params, 37, 41, blur=0.5)

    def test_sub_pixel(self, bank):
        self.edge_case(bank, random_params(200, 19, 21, seed=3, scale_range=(0.02, 0.3)), 19, 21)

    def test_opacity_near_one(self, bank):
        # o * cov above ALPHA_MAX: the clamp and its zero derivative, and early termination.
        params = random_params(80, 30, 30, seed=4, scale_range=(4.0, 12.0), opacity_range=(0.999, 1.0))
        params.opacities[::3] = 1.0
        self.edge_case(bank, params, 30, 30)

    def test_45_degree_rotations(self, bank):
        params = random_params(120, 33, 35, seed=5)
        params.rotations = (torch.arange(120) % 8 - 4).to(torch.float32) * (math.pi / 4)
        self.edge_case(bank, params, 33, 35, blur=0.25)

    def test_thousands_of_overlaps_at_one_pixel(self, bank):
        n = 3000
        params = random_params(n, 16, 16, seed=6, scale_range=(1.0, 3.0), opacity_range=(0.0, 0.05))
        params.means = torch.full_like(params.means, 8.3) + 0.2 * torch.rand(n, 2, generator=torch.Generator().manual_seed(0))
        self.edge_case(bank, params, 16, 16)

    def test_million_pair_stack_at_one_pixel(self, bank):
        # Identical primitives centred on pixel (0, 0) (and touching a few neighbours): one tile
        # holds all the pairs, far more than any fixed-capacity buffer would, and every pixel
        # walks the whole list (T never drops below T_MIN).
        # float64, because in float32 1 - a rounds to a multiple of 6e-8 when a ~ 1e-6, which
        # makes the product of a million such factors wrong by percents in every backend.
        n = self.stack_pairs
        f64 = dict(dtype=torch.float64)
        params = PrimitiveParams(
            means=torch.full((n, 2), 0.5, **f64),
            rotations=torch.zeros(n, **f64),
            scales=torch.full((n, 2), 0.3, **f64),
            colors=torch.tensor([0.25, 0.5, 1.0], **f64).expand(n, 3).contiguous(),
            opacities=torch.full((n,), 1.0 / n, **f64),
            shape_ids=torch.zeros(n, dtype=torch.long),  # the analytic circle
            beta=torch.zeros(n, **f64),
        )
        image, alpha, grads = self.run_self(params, bank, 3, 3, 0.0, background=None)
        cpu_image, cpu_alpha, cpu_grads = self.run("cpu", "cpu", params, bank, 3, 3, 0.0, background=None)
        one = PrimitiveParams(**{f: getattr(params, f)[:1] for f in ("means", "rotations", "scales", "colors",
                                                                   "opacities", "shape_ids", "beta")})
        _, one_alpha = composite(one, bank, None, 3, 3, backend="torch")
        exact = 1 - (1 - one_alpha) ** n  # n identical layers
        assert 0.3 < float(exact[0, 0]) < 0.99
        assert max_error(alpha, exact) <= 1e-9
        assert max_error(image, exact[..., None] * params.colors[0]) <= 1e-9
        assert max_error(alpha, cpu_alpha) <= 1e-9 and max_error(image, cpu_image) <= 1e-9
        for name in FLOAT_FIELDS:
            assert torch.isfinite(grads[name]).all()
            err, scale = max_error(grads[name], cpu_grads[name]), grad_scale(cpu_grads[name])
            assert err <= 1e-7 * scale + 1e-15, f"d/d{name} differs from the cpu backend by {err:.3g} of {scale:.3g}"

    @pytest.mark.slow
    def test_large_scene_matches_cpu(self, bank):
        if not self.large_scenes:
            pytest.skip("too slow for this implementation")
        params = random_params(5000, 300, 257, seed=9, scale_range=(0.5, 40.0))
        got = self.run_self(params, bank, 300, 257, 0.5)
        cpu = self.run("cpu", "cpu", params, bank, 300, 257, 0.5)
        self.assert_matches(got, cpu, what="5000 primitives on 300x257 vs cpu")

    # -- binning (tests/test_binning.py) --------------------------------------------------------

    def test_binning_is_consistent_and_matches_the_reference(self, bank):
        module, cpu = self.module(), native_module("cpu")
        for name, params, height, width, blur in stress_scenes(bank, quick=self.device == "cpu"):
            got = run_binning(module, params, bank, height, width, blur, self.device)
            n = len(params)
            assert got.mismatches == 0, f"{name}: the counting and writing walks disagreed for {got.mismatches} primitives"
            assert not invariant_violations(got, n), f"{name}: {invariant_violations(got, n)}"
            missing, extra = reference_disagreements(got, params, bank, height, width, blur)
            assert missing == 0 and extra == 0, f"{name}: {missing} pairs missing, {extra} extra against the float64 tile test"
            if self.device == "cpu":  # the same host maths as the cpu backend: the same lists
                expected = run_binning(cpu, params, bank, height, width, blur)
                assert torch.equal(got.membership(n), expected.membership(n)), f"{name}: lists differ from the cpu backend's"

    def test_skewed_counts_stay_inside_their_slots(self, bank):
        check_skewed_binning(self.module(), bank, self.device)

    # -- determinism --------------------------------------------------------------------------

    def test_backward_is_the_same_on_every_run(self, bank):
        # Primitives spanning many tiles, so each gradient is a sum over many blocks.
        params = random_params(300, 50, 45, seed=21, scale_range=(3.0, 30.0))
        first = self.run_self(params, bank, 50, 45, 0.5)
        for _ in range(2):
            again = self.run_self(params, bank, 50, 45, 0.5)
            assert torch.equal(again[0], first[0]) and torch.equal(again[1], first[1])
            for name in FLOAT_FIELDS:
                assert torch.equal(again[2][name], first[2][name]), f"d/d{name} changed from one run to the next"

    def test_atomic_backward(self, bank, monkeypatch):
        params = random_params(300, 50, 45, seed=21, scale_range=(3.0, 30.0))
        deterministic = self.run_self(params, bank, 50, 45, 0.5)
        monkeypatch.setenv("DIFFBMP_CUDA_BACKWARD", "atomic")
        atomic = self.run_self(params, bank, 50, 45, 0.5)
        self.assert_matches(atomic, deterministic, outliers=0.0, what="atomic backward vs deterministic")
        # PyTorch's deterministic mode keeps the deterministic pass, and the atomic pass raises
        # PyTorch's nondeterminism alert when called directly.
        with torch_deterministic():
            assert all(torch.equal(a, b) for a, b in zip(self.run_self(params, bank, 50, 45, 0.5)[2].values(),
                                                         deterministic[2].values()))
            inputs = self.native_inputs(bank)
            saved = self.module().composite_forward(inputs, 10, 10, 0.0)
            with pytest.raises(RuntimeError, match="composite_backward_atomic.*does not have a deterministic implementation"):
                self.module().composite_backward_atomic(inputs, 10, 10, 0.0, torch.ones_like(saved[0]),
                                                        torch.ones_like(saved[1]), saved)

    def test_unknown_backward_mode_is_an_error(self, bank, monkeypatch):
        monkeypatch.setenv("DIFFBMP_CUDA_BACKWARD", "fastest")
        with pytest.raises(InputError, match="DIFFBMP_CUDA_BACKWARD='fastest' is not a backward mode"):
            self.run_self(random_params(5, 10, 10, seed=0), bank, 10, 10, 0.0)

    def test_sync_after_every_launch_changes_nothing(self, bank, monkeypatch):
        params = random_params(100, 30, 40, seed=13)
        expected = self.run_self(params, bank, 30, 40, 0.5)
        monkeypatch.setenv("DIFFBMP_CUDA_SYNC", "1")
        got = self.run_self(params, bank, 30, 40, 0.5)
        self.assert_matches(got, expected, outliers=0.0, what="DIFFBMP_CUDA_SYNC=1")

    # -- errors -------------------------------------------------------------------------------

    @pytest.mark.parametrize("field,value,message", [
        ("means", float("nan"), "means contains NaN"),
        ("scales", -1.0, "scales must be > 0"),
        ("opacities", 2.0, "opacities must lie in"),
        ("shape_ids", 99, r"shape_ids must index the texture bank \(0..4\)"),
    ])
    def test_bad_values_are_named(self, bank, field, value, message):
        # The value checks travel with the pair count (one synchronisation); the kernels
        # before it must survive the bad values, then composite() names the problem.
        params = random_params(20, 12, 12, seed=2).map(lambda t: t.to(self.device))
        getattr(params, field)[3] = value
        with pytest.raises(InputError, match=message):
            composite(params, bank, None, 12, 12, backend=self.backend)

    def test_rejects_misaligned_texels(self, bank):
        inputs = self.native_inputs(bank)
        texels = inputs[7]
        shifted = torch.empty(texels.numel() + 1, dtype=texels.dtype, device=texels.device)[1:].view_as(texels)
        shifted.copy_(texels)
        inputs[7] = shifted
        with pytest.raises(RuntimeError, match="texels must start at a 16-byte aligned address"):
            self.module().composite_forward(inputs, 10, 10, 0.0)


    def native_inputs(self, bank, n=4, dtype=torch.float32):
        params = random_params(n, 10, 10, seed=0, dtype=dtype).map(lambda t: t.to(self.device))
        prepared = bank.prepare(self.device, dtype)
        return [params.means, params.rotations, params.scales, params.colors, params.opacities, params.beta,
                params.shape_ids.to(torch.int32), prepared.texels, prepared.level_table, prepared.entries]

    def module(self):
        return native_module(self.backend)

    def test_rejects_int64_means(self, bank):
        inputs = self.native_inputs(bank)
        inputs[0] = inputs[0].to(torch.int64)
        with pytest.raises(RuntimeError, match=r"composite_forward \(cuda\): means must be float32 or float64"):
            self.module().composite_forward(inputs, 10, 10, 0.0)

    def test_rejects_mixed_dtypes(self, bank):
        inputs = self.native_inputs(bank)
        inputs[3] = inputs[3].double()
        with pytest.raises(RuntimeError, match=r"colors must be Float"):
            self.module().composite_forward(inputs, 10, 10, 0.0)

    def test_rejects_out_of_range_shape_ids(self, bank):
        inputs = self.native_inputs(bank)
        inputs[6] = torch.full_like(inputs[6], 99)
        with pytest.raises(RuntimeError, match=r"shape_ids must lie in \[0, 5\)"):
            self.module().composite_forward(inputs, 10, 10, 0.0)

    def test_rejects_bad_saved_state(self, bank):
        inputs = self.native_inputs(bank)
        saved = self.module().composite_forward(inputs, 10, 10, 0.0)
        grad_colour, grad_alpha = torch.zeros_like(saved[0]), torch.zeros_like(saved[1])
        with pytest.raises(RuntimeError, match=r"expected the 9 tensors saved by the forward pass"):
            self.module().composite_backward(inputs, 10, 10, 0.0, grad_colour, grad_alpha, saved[:5])
        with pytest.raises(RuntimeError, match=r"grad_alpha"):
            self.module().composite_backward(inputs, 10, 10, 0.0, grad_colour, grad_alpha[:5], saved)


class TestCuda(CudaBackendChecks):
    backend = "cuda"
    device = "cuda"

    def test_rejects_mixed_devices(self, bank):
        inputs = self.native_inputs(bank)
        inputs[7] = inputs[7].cpu()  # texels left on the CPU
        with pytest.raises(RuntimeError, match=r"composite_forward \(cuda\): texels must be on cuda"):
            self.module().composite_forward(inputs, 10, 10, 0.0)

    def test_rejects_cpu_tensors(self, bank):
        inputs = [t.cpu() for t in self.native_inputs(bank)]
        with pytest.raises(RuntimeError, match=r"means must be on a CUDA device"):
            self.module().composite_forward(inputs, 10, 10, 0.0)
        params = random_params(3, 8, 8, seed=0)
        with pytest.raises(InputError, match="backend='cuda' needs the parameters on a CUDA device"):
            composite(params, bank, None, 8, 8, backend="cuda")

    def test_side_stream_matches_default_stream(self, bank):
        params = random_params(200, 40, 50, seed=11)
        expected = self.run_self(params, bank, 40, 50, 0.5)
        stream = torch.cuda.Stream()
        with torch.cuda.stream(stream):
            got = self.run_self(params, bank, 40, 50, 0.5)
        torch.cuda.synchronize()
        self.assert_matches(got, expected)

    @pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
    def test_second_device(self, bank):
        params = random_params(100, 30, 30, seed=12)
        got = self.run(self.backend, "cuda:1", params, bank, 30, 30, 0.0)
        ref = self.run_reference(params, bank, 30, 30, 0.0)
        self.assert_matches(got, ref)
