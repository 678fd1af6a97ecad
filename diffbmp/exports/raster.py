"""A scene rendered band by band: the rasters of PNG and PSD exports at any size in bounded memory.

A raster of more than :data:`BAND_PIXELS` pixels is drawn in bands of whole rows, each a
``composite()`` call on a canvas one band high with the primitives moved up by the band's
offset (a primitive paints nothing outside its box, so a band sees every primitive that
reaches it). The caller turns each band into 8-bit pixels before the next is drawn, so an
8192x8192 export holds its 8-bit pixels and one band of floats, not 2 GB of floats.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterator

import torch

from ..primitives import TextureBank
from ..render import composite
from ..scene import Scene

__all__ = ["BAND_PIXELS", "render_bands"]

#: Pixels rendered at once (about 64 MB of colour and alpha in float32).
BAND_PIXELS = 4 * 1024 * 1024


def render_bands(
    scene: Scene,
    scale: float,
    bank: TextureBank,
    *,
    blur: float = 0.0,
    transparent: bool = False,
    backend: str | None = None,
    band_pixels: int = BAND_PIXELS,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """(first row, image [h, W, 3], alpha [h, W]) of each band of the scene rendered at ``scale``
    with ``bank``, top to bottom: over its background, or premultiplied on a transparent canvas.

    A raster of at most ``band_pixels`` pixels is one band, rendered exactly as
    ``Scene.render``; the bands of a larger one agree with it to the float rounding of their
    offsets.
    """
    height, width = scene.raster_size(scale)
    rows = max(1, band_pixels // width)
    with torch.no_grad():
        if rows >= height:
            image, alpha = scene.render(scale, blur=blur, background=not transparent, bank=bank, backend=backend)
            yield 0, image, alpha
            return
        params = scene.scaled_params(scale).map(lambda t: t.detach())
        prepared = bank.prepare(params.device, params.dtype)
        background = None if transparent else scene.background().detach()
        for top in range(0, height, rows):
            band = min(rows, height - top)
            shifted = replace(params, means=params.means - params.means.new_tensor([0.0, float(top)]))
            image, alpha = composite(shifted, prepared, background, band, width, blur=blur * scale, backend=backend)
            yield top, image, alpha
