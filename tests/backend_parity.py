"""Comparing a native backend (cpu or cuda) with the torch reference: forward values and
gradients under random cotangents. Shared by test_cpu_backend.py and test_cuda.py."""

from __future__ import annotations

import torch

from diffbmp import PrimitiveParams, TextureBank, composite

from scenes import BACKGROUND, FLOAT_FIELDS, requires_grad

#: float32 forward: the issue's bar. Both sides sum the same terms in the same order, so the
#: differences are a few ulps of values in [0, 1] (about 5e-7 is seen).
FORWARD_ATOL_F32 = 1e-5
#: float64 forward: rounding only.
FORWARD_ATOL_F64 = 1e-12


def render_with_grads(params: PrimitiveParams, bank: TextureBank, height: int, width: int, blur: float, backend: str, device: str = "cpu", seed: int = 0):
    """Image, alpha and the gradients of <image, W1> + <alpha, W2> for random W1, W2."""
    params = requires_grad(params.map(lambda t: t.to(device)))
    background = torch.tensor(BACKGROUND, dtype=params.dtype, device=device, requires_grad=True)
    image, alpha = composite(params, bank, background, height, width, blur=blur, backend=backend)
    g = torch.Generator().manual_seed(seed)
    w_image = torch.randn(image.shape, generator=g, dtype=torch.float64).to(device=device, dtype=params.dtype)
    w_alpha = torch.randn(alpha.shape, generator=g, dtype=torch.float64).to(device=device, dtype=params.dtype)
    inputs = [getattr(params, name) for name in FLOAT_FIELDS] + [background]
    # allow_unused: with N = 0 the reference never touches the primitive tensors.
    grads = torch.autograd.grad((image * w_image).sum() + (alpha * w_alpha).sum(), inputs, allow_unused=True)
    grads = [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, grads)]
    names = list(FLOAT_FIELDS) + ["background"]
    return image.detach(), alpha.detach(), {n: g.detach().cpu() for n, g in zip(names, grads)}


def assert_gradients_close(actual: dict, expected: dict, rtol_of_scale: float, context: str, atol: float = 0.0) -> None:
    """Each gradient within ``atol`` plus ``rtol_of_scale`` of the largest entry of the expected gradient.

    Gradients are sums over many pixels with terms of both signs, so an element-wise relative
    tolerance is meaningless for the entries that nearly cancel; the scale of the whole tensor
    is what float rounding is proportional to.
    """
    for name, want in expected.items():
        got = actual[name].to(want.dtype)
        if want.numel() == 0:
            assert got.numel() == 0, f"{context}: d/d{name} should be empty"
            continue
        scale = max(want.abs().max().item(), 1e-6)
        err = (got - want).abs().max().item()
        assert err <= atol + rtol_of_scale * scale, f"{context}: d/d{name} differs by {err:.3g} (scale {scale:.3g})"
