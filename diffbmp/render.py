"""The differentiable compositor: ``composite()`` and the autograd Function of the native backends.

Every backend computes the primitives' premultiplied colour C and alpha (docs/rendering.md,
sections 1-8); the background term is added here, once, for all of them.
"""

from __future__ import annotations

import math

import torch

from . import _torch_impl
from ._backend import cuda_backward_mode, native_module, resolve_backend
from .errors import InputError
from .params import PrimitiveParams
from .primitives import PreparedBank, TextureBank
from .primitives.pyramid import PreparedBank as _PreparedBank

__all__ = ["composite", "composite_premultiplied"]

# Order of the columns of the native backends' [N, 10] gradient.
_GRAD_COLUMNS = {"means": slice(0, 2), "rotations": slice(2, 3), "scales": slice(3, 5), "colors": slice(5, 8), "opacities": slice(8, 9), "beta": slice(9, 10)}


class _NativeComposite(torch.autograd.Function):
    """C and alpha from the cpu or cuda extension, with its hand-written backward pass."""

    @staticmethod
    def forward(ctx, means, rotations, scales, colors, opacities, beta, shape_ids, bank_tensors, height, width, blur, kind, value_flags):
        module = native_module(kind)
        inputs = [means, rotations, scales, colors, opacities, beta, shape_ids, *bank_tensors]
        saved = module.composite_forward(inputs, height, width, blur, value_flags)
        ctx.kind, ctx.height, ctx.width, ctx.blur = kind, height, width, blur
        ctx.num_inputs = len(inputs)
        ctx.save_for_backward(*inputs, *saved)
        ctx.mark_non_differentiable(*saved[2:])
        return saved[0], saved[1]

    @staticmethod
    def backward(ctx, grad_colour, grad_alpha):
        tensors = ctx.saved_tensors
        inputs, saved = list(tensors[: ctx.num_inputs]), list(tensors[ctx.num_inputs :])
        if not any(ctx.needs_input_grad[:6]):
            return (None,) * 13
        grad_colour = torch.zeros_like(saved[0]) if grad_colour is None else grad_colour.contiguous()
        grad_alpha = torch.zeros_like(saved[1]) if grad_alpha is None else grad_alpha.contiguous()
        backward = _backward_function(native_module(ctx.kind))
        grads = backward(inputs, ctx.height, ctx.width, ctx.blur, grad_colour, grad_alpha, saved)
        out = []
        for index, (name, columns) in enumerate(_GRAD_COLUMNS.items()):
            if not ctx.needs_input_grad[index]:
                out.append(None)
                continue
            g = grads[:, columns]
            out.append(g.reshape(inputs[index].shape) if name in ("rotations", "opacities", "beta") else g.contiguous())
        return (*out, None, None, None, None, None, None, None)


def _backward_function(module):
    """The module's deterministic backward pass, or its atomic one where
    ``DIFFBMP_CUDA_BACKWARD=atomic`` asks for it and PyTorch is not told to be deterministic."""
    if hasattr(module, "composite_backward_atomic") and cuda_backward_mode() == "atomic" and not torch.are_deterministic_algorithms_enabled():
        return module.composite_backward_atomic
    return module.composite_backward


def _bank_for(bank: TextureBank | PreparedBank, params: PrimitiveParams) -> PreparedBank:
    if isinstance(bank, TextureBank):
        return bank.prepare(params.device, params.dtype)
    if isinstance(bank, _PreparedBank):
        if bank.texels.device != params.device or bank.texels.dtype != params.dtype:
            raise InputError(
                f"the prepared bank is {bank.texels.dtype} on {bank.texels.device} but the parameters are "
                f"{params.dtype} on {params.device}; pass the TextureBank itself or prepare it to match"
            )
        return bank
    raise InputError(f"textures must be a TextureBank or PreparedBank, got {type(bank).__name__}")


def composite_premultiplied(
    params: PrimitiveParams,
    textures: TextureBank | PreparedBank,
    height: int,
    width: int,
    *,
    blur: float = 0.0,
    backend: str | None = None,
    validate: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Premultiplied colour [H, W, 3] and alpha [H, W] of the primitives over nothing.

    See :func:`composite` for the arguments.
    """
    height, width = _canvas_size(height, width)
    if not (isinstance(blur, (int, float)) and math.isfinite(blur) and blur >= 0):
        raise InputError(f"blur must be a finite number >= 0 (screen pixels), got {blur!r}")
    bank = _bank_for(textures, params)
    if validate:
        params.validate_structure()
    kind = resolve_backend(backend, params.device)
    beta = params.beta_or_zeros()
    if kind == "torch":
        if validate:
            params.check_values(bank.num_entries)
        return _torch_impl.composite_reference(
            params.means, params.rotations, params.scales, params.colors, params.opacities, beta,
            params.shape_ids, bank, height, width, float(blur),
        )
    if bank.texels.requires_grad and torch.is_grad_enabled():
        raise InputError("gradients with respect to the textures are only computed by backend='torch'")
    # The native forward pass reads the value checks back with its pair count: one
    # synchronisation instead of two.
    value_flags = params.value_flags(bank.num_entries) if validate else None
    texels = bank.texels.detach().contiguous()
    if texels.data_ptr() % 16:  # the kernels read a texel as one 16-byte vector
        texels = texels.clone()
    contiguous = lambda t: t.contiguous()  # noqa: E731
    try:
        return _NativeComposite.apply(
            contiguous(params.means), contiguous(params.rotations), contiguous(params.scales), contiguous(params.colors),
            contiguous(params.opacities), contiguous(beta), params.shape_ids.to(torch.int32).contiguous(),
            (texels, bank.level_table, bank.entries), height, width, float(blur), kind, value_flags,
        )
    except ValueError:
        if value_flags is not None:
            params.check_values(bank.num_entries)  # raises the InputError that names the problem
        raise


def composite(
    params: PrimitiveParams,
    textures: TextureBank | PreparedBank,
    background: torch.Tensor | None,
    height: int,
    width: int,
    *,
    blur: float = 0.0,
    backend: str | None = None,
    validate: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paint ``params`` over ``background``; differentiable with respect to every float input.

    Args:
        params: the primitives, activated (see :class:`PrimitiveParams`), in painting order.
        textures: the bank their ``shape_ids`` index.
        background: colour [3], image [H, W, 3], or None for a transparent canvas (then the
            image is premultiplied by ``alpha``).
        height, width: canvas size in pixels.
        blur: soft-rasterization width in screen pixels (docs/rendering.md, section 4).
        backend: "torch" (reference), "cpu", "cuda", or None for the fastest one for the
            parameters' device.
        validate: check the parameters' shapes and values (the native backends read the value
            checks back with their own first result: no extra host synchronisation).

    Returns:
        image [H, W, 3] and alpha [H, W], both in the parameters' dtype and device.
    """
    colour, alpha = composite_premultiplied(params, textures, height, width, blur=blur, backend=backend, validate=validate)
    if background is None:
        return colour, alpha
    background = _check_background(background, params, height, width)
    return colour + background * (1 - alpha).unsqueeze(-1), alpha


def _canvas_size(height, width) -> tuple[int, int]:
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) and not (isinstance(value, float) and value.is_integer()):
            raise InputError(f"{name} must be a whole number of pixels, got {value!r}")
        if value <= 0:
            raise InputError(f"{name} must be at least 1 pixel, got {value}")
    return int(height), int(width)


def _check_background(background, params: PrimitiveParams, height: int, width: int) -> torch.Tensor:
    if not isinstance(background, torch.Tensor):
        background = torch.as_tensor(background, dtype=params.dtype, device=params.device)
    if tuple(background.shape) not in ((3,), (height, width, 3)):
        raise InputError(f"background must have shape [3] or [{height}, {width}, 3], got {list(background.shape)}")
    if background.device != params.device:
        raise InputError(f"background is on {background.device} but the parameters are on {params.device}")
    return background.to(params.dtype)
