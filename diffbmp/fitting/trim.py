"""What a painting can do without: every primitive's removal harm estimated at once, and the
largest removal of the least useful that keeps a quality.

A primitive's layer is affine in its opacity ``o`` (``C = F + T (o m c + (1 - o m) B)`` at
every pixel), so removing it changes the render by exactly ``dC = -o dC/do``, and the squared
error grows by ``-o dL/do`` (one backward pass for all primitives) plus ``sum ||dC||^2``,
which random probes estimate without bias: for ``v`` of independent unit normals per pixel
and channel, ``E[(v . dC)^2] = sum ||dC||^2`` (Hutchinson), one backward pass per probe.
The compositor caps a pixel's alpha at ``ALPHA_MAX``, where the layer stops being affine, so
opacities above it are measured at ``ALPHA_MAX`` (the render differs only at the antialiased rim).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import torch

from ..constants import ALPHA_MAX
from ..params import PrimitiveParams
from ..primitives.pyramid import PreparedBank
from ..render import composite

__all__ = ["estimated_removal_harm", "largest_removal"]


def _opacity_gradient(params: PrimitiveParams, prepared: PreparedBank, background: torch.Tensor, height: int, width: int,
                      backend: str | None, objective: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """d objective(render) / d opacity [N] at blur 0."""
    opacities = params.opacities.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        image, _ = composite(replace(params, opacities=opacities), prepared, background, height, width, blur=0.0,
                             backend=backend, validate=False)
        objective(image).backward()
    return opacities.grad.detach()


def estimated_removal_harm(params: PrimitiveParams, prepared: PreparedBank, background: torch.Tensor, wanted: torch.Tensor,
                           weight: torch.Tensor | None, backend: str | None, generator: torch.Generator,
                           probes: int = 4) -> torch.Tensor:
    """How much the (weighted) squared error summed over the canvas would grow if each
    primitive alone were removed, [N] float64: the first-order part exactly, the rest
    estimated with ``probes`` random probes (unbiased; the ranking needs no more).

    Args:
        params: the scene's parameters (detached).
        background: the background colour [3] (or image [H, W, 3]).
        wanted: the image the render should match [H, W, 3].
        weight: per-pixel weights [H, W] of the error, or None.
        generator: draws the probes (CPU generator; the draws are reproducible).
    """
    height, width = wanted.shape[:2]
    params = params.map(lambda t: t.detach())
    params = replace(params, opacities=params.opacities.clamp(max=ALPHA_MAX))
    opacity = params.opacities.double()
    root = None if weight is None else weight.sqrt().unsqueeze(-1)

    def squared_error(image: torch.Tensor) -> torch.Tensor:
        error = (image - wanted).pow(2)
        return (error if weight is None else error * weight.unsqueeze(-1)).sum()

    harm = -opacity * _opacity_gradient(params, prepared, background, height, width, backend, squared_error).double()
    spread = torch.zeros_like(harm)
    for _ in range(probes):
        probe = torch.randn(wanted.shape, generator=generator).to(wanted.device, wanted.dtype)
        if root is not None:
            probe = probe * root
        projected = _opacity_gradient(params, prepared, background, height, width, backend,
                                      lambda image: (image * probe).sum()).double()
        spread += (opacity * projected).pow(2)
    return harm + spread / max(probes, 1)


def largest_removal(count: int, keeps: Callable[[int], bool]) -> int:
    """The largest ``m`` in [0, count) for which ``keeps(m)`` holds (removing the ``m`` least
    useful keeps the quality), found by bisection (``keeps`` is assumed to hold up to some
    ``m`` and fail beyond it; ``keeps(0)`` is taken as true)."""
    low, high = 0, count - 1  # keeps(low) holds; the answer lies in [low, high]
    while low < high:
        middle = (low + high + 1) // 2
        if keeps(middle):
            low = middle
        else:
            high = middle - 1
    return max(low, 0)
