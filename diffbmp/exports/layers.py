"""Each primitive rendered on its own, cropped to its box: the pixel layers of a PSD.

A layer holds primitive ``n`` painted alone over nothing: its straight colour and its
coverage as alpha, on the box ``screen_bounds`` gives, rounded out to whole pixels. The box
is *not* clipped to the canvas: a primitive that crosses the edge keeps its whole footprint,
so an artist who moves the layer sees the rest of the mark, not a straight cut. Only a
primitive reaching further than :data:`LAYER_MARGIN` (half the canvas, at most
:data:`MAX_LAYER_MARGIN` pixels) beyond an edge is cut there (:func:`footprint_boxes`), so a
giant primitive costs at most a layer of twice the canvas's width and height, and a layer
larger than an atlas page is rendered in bands of rows, so memory stays bounded. Stacked bottom to top with normal blending and the primitive's
opacity as the layer opacity, the layers reproduce ``composite()`` (docs/exports.md says
where the two differ: 8-bit quantisation and the opacity rounding).

Rendering thousands of tiny canvases one call at a time costs far more in call overhead than
in pixels, so the boxes are packed side by side into a few *atlas pages* and each page is
drawn with one ``composite()`` call. A primitive paints nothing outside its box
(docs/rendering.md, 5.1), so on a page every pixel sees at most one primitive and gets
exactly the value it has when that primitive is drawn alone; boxes are moved by whole
pixels, which keeps every pixel centre at the same place relative to the primitive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from ..bounds import screen_bounds
from ..params import PrimitiveParams
from ..primitives import PreparedBank, TextureBank
from ..render import composite

__all__ = ["PrimitiveLayer", "LAYER_MARGIN", "MAX_LAYER_MARGIN", "footprint_boxes", "layer_boxes", "painted_colours", "quantized_opacity", "render_layers", "iter_layers"]

#: Pixels of one atlas page (colour + alpha in float32 take 16 bytes a pixel).
PAGE_PIXELS = 1 << 22
#: Smallest width of an atlas page.
PAGE_WIDTH = 1024
#: Empty pixels between boxes on a page (a margin of safety: boxes already contain their primitives).
GUTTER = 1
#: How far beyond each canvas edge a layer may reach, as a fraction of the canvas's side
#: along that axis: a layer is at most (1 + 2 * LAYER_MARGIN) times the canvas's width and
#: height, whatever the size of its primitive.
LAYER_MARGIN = 0.5
#: The most pixels a layer may reach beyond a canvas edge, whatever the canvas's size: on a
#: very large canvas half its side would make layers of many times the pixels of the render.
MAX_LAYER_MARGIN = 4096


@dataclass
class PrimitiveLayer:
    """One primitive as a pixel layer.

    Attributes:
        index: the primitive's index (its painting order; 0 is the bottom).
        left, top: offset of the layer on the canvas, in pixels; negative, or beyond the
            canvas, for a primitive that crosses an edge.
        rgba: straight (not premultiplied) 8-bit RGBA [h, w, 4]: the primitive's whole
            footprint (see :func:`footprint_boxes`); h = w = 0 when the primitive lies
            entirely outside the canvas and its margin.
        opacity: layer opacity, 0-255.
    """

    index: int
    left: int
    top: int
    rgba: np.ndarray
    opacity: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) in canvas coordinates (may reach beyond the canvas)."""
        return self.left, self.top, self.left + int(self.rgba.shape[1]), self.top + int(self.rgba.shape[0])


def layer_boxes(params: PrimitiveParams, bank: TextureBank | PreparedBank, height: int, width: int, blur: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Whole-pixel boxes [N, 4] (x0, y0, x1, y1) of every primitive: unclipped, and clipped to the canvas.

    A clipped box with x1 <= x0 or y1 <= y0 is empty (the primitive is off the canvas); empty
    boxes are returned as (0, 0, 0, 0).
    """
    if len(params) == 0:
        empty = np.zeros((0, 4), dtype=np.int64)
        return empty, empty.copy()
    bounds = screen_bounds(params, bank, blur).detach().double().cpu().numpy()
    # Pixel j is touched when its centre j + 0.5 lies inside the box: flooring the low edge
    # and ceiling the high one keeps every such pixel.
    full = np.concatenate([np.floor(bounds[:, :2]), np.ceil(bounds[:, 2:])], axis=1)
    full = np.clip(full, -2**40, 2**40).astype(np.int64)
    clipped = full.copy()
    clipped[:, [0, 2]] = np.clip(clipped[:, [0, 2]], 0, width)
    clipped[:, [1, 3]] = np.clip(clipped[:, [1, 3]], 0, height)
    empty = (clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])
    clipped[empty] = 0
    return full, clipped


def footprint_boxes(
    full: np.ndarray, height: int, width: int, margin: float = LAYER_MARGIN, max_margin: int = MAX_LAYER_MARGIN,
) -> np.ndarray:
    """The layer box [N, 4] of each primitive: its unclipped box ``full`` (from
    :func:`layer_boxes`) cut to the canvas widened on each side by ``margin`` times its width
    (left and right) and height (top and bottom), at most ``max_margin`` pixels. Empty boxes
    (a primitive wholly outside that area) are (0, 0, 0, 0)."""
    mx, my = min(math.ceil(margin * width), max_margin), min(math.ceil(margin * height), max_margin)
    boxes = np.asarray(full, dtype=np.int64).copy()
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], -mx, width + mx)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], -my, height + my)
    empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    boxes[empty] = 0
    return boxes


def painted_colours(params: PrimitiveParams, bank: TextureBank) -> np.ndarray:
    """The colour [N, 3] in [0, 1] each primitive paints, as one flat colour (for names and swatches).

    The model paints ``(1 - beta) c + beta Q`` (docs/rendering.md): the tint ``c`` blended
    with the shape's own colour ``Q``. Here ``Q`` is the bitmap's average own colour,
    weighted by its alpha (white for analytic shapes and for a bitmap with no opaque texel),
    so a tinted stencil (``beta = 0``) gives exactly its tint, and a stamp with its own
    colours (``beta = 1``) its average colour.
    """
    own = torch.ones(len(bank), 3, dtype=torch.float64)
    for k, entry in enumerate(bank):
        if entry.rgba is not None:
            rgba = entry.rgba.detach().double().cpu()
            weight = rgba[..., 3].sum()
            if float(weight) > 0:
                own[k] = (rgba[..., :3] * rgba[..., 3:]).sum(dim=(0, 1)) / weight
    with torch.no_grad():
        beta = params.beta_or_zeros().detach().double().cpu().unsqueeze(-1)
        tint = params.colors.detach().double().cpu()
        colour = (1 - beta) * tint + beta * own[params.shape_ids.cpu()]
    return colour.clamp(0, 1).numpy()


def quantized_opacity(opacities: torch.Tensor) -> np.ndarray:
    """Layer opacities 0-255 (rounded to nearest)."""
    return np.clip(np.rint(opacities.detach().double().cpu().numpy() * 255.0), 0, 255).astype(np.int64)


@dataclass
class _Job:
    index: int
    source: tuple[int, int, int, int]  # the layer's box (canvas coordinates), drawn whole
    alone: bool = False                # drawn alone on a canvas the size of ``source``
    slot: tuple[int, int] = (0, 0)     # where ``source`` lands on its page
    page: int = -1


def render_layers(
    params: PrimitiveParams,
    bank: TextureBank | PreparedBank,
    height: int,
    width: int,
    *,
    blur: float = 0.0,
    backend: str | None = None,
    page_pixels: int = PAGE_PIXELS,
    margin: float = LAYER_MARGIN,
) -> list[PrimitiveLayer]:
    """Every primitive of ``params`` as a pixel layer holding its whole footprint, in painting order.

    Args:
        params: activated parameters on the export canvas (already scaled).
        bank: the bank ``params.shape_ids`` index.
        height, width: the export canvas.
        blur: soft-rasterization width in pixels of that canvas.
        page_pixels: size of an atlas page; smaller pages use less memory.
        margin: how far a layer may reach beyond each canvas edge, as a fraction of the
            canvas's side (see :func:`footprint_boxes`).
    """
    layers = list(iter_layers(params, bank, height, width, blur=blur, backend=backend, page_pixels=page_pixels, margin=margin))
    return sorted(layers, key=lambda layer: layer.index)


def iter_layers(
    params: PrimitiveParams,
    bank: TextureBank | PreparedBank,
    height: int,
    width: int,
    *,
    blur: float = 0.0,
    backend: str | None = None,
    page_pixels: int = PAGE_PIXELS,
    margin: float = LAYER_MARGIN,
) -> Iterator[PrimitiveLayer]:
    """The layers of :func:`render_layers` one at a time, as their atlas pages are drawn (in no
    particular order; each layer once), so a caller that writes them away holds one page."""
    count = len(params)
    if count == 0:
        return
    if isinstance(bank, TextureBank):
        bank = bank.prepare(params.device, params.dtype)
    full, _ = layer_boxes(params, bank, height, width, blur)
    boxes = footprint_boxes(full, height, width, margin)
    opacity = quantized_opacity(params.opacities)
    # Draw with the quantised opacity, so that layer alpha x layer opacity reproduces
    # min(opacity * coverage, ALPHA_MAX) with the opacity the file stores; a layer whose
    # opacity rounds to 0 is drawn at full opacity (it is invisible either way).
    drawn_opacity = np.where(opacity > 0, opacity / 255.0, 1.0)
    jobs = _plan(full, boxes, page_pixels)

    def layer(n: int, pixels: np.ndarray) -> PrimitiveLayer:
        return PrimitiveLayer(index=n, left=int(boxes[n, 0]), top=int(boxes[n, 1]), rgba=pixels, opacity=int(opacity[n]))

    placed = {job.index for job in jobs}
    for n in range(count):
        if n not in placed:  # wholly outside the canvas and its margin: an empty layer
            yield layer(n, np.zeros((0, 0, 4), dtype=np.uint8))
    with torch.no_grad():
        drawn = params.map(lambda t: t.detach())
        drawn.opacities = torch.as_tensor(drawn_opacity, dtype=params.dtype, device=params.device)
        fallback = _fallback_colours(drawn)
        for page_jobs in _group_by_page(jobs).values():
            if page_jobs[0].alone:
                job = page_jobs[0]
                yield layer(job.index, _render_alone(drawn, bank, job, blur, backend, drawn_opacity, fallback, page_pixels))
                continue
            pixels = _render_page(drawn, bank, page_jobs, blur, backend, drawn_opacity, fallback)
            for job in page_jobs:
                yield layer(job.index, _cut(pixels, job))


def _plan(full: np.ndarray, boxes: np.ndarray, page_pixels: int) -> list[_Job]:
    """Assign each visible primitive a slot on an atlas page (shelf packing, tallest first)."""
    jobs: list[_Job] = []
    for n in range(len(full)):
        box = tuple(int(v) for v in boxes[n])
        if box[2] <= box[0]:
            continue  # wholly outside the canvas and its margin: an empty layer
        # A primitive cut at the margin paints beyond its box: drawn alone on a canvas the
        # size of its box, which cuts it there, it cannot reach a neighbour's slot. A box
        # larger than a page is drawn alone too, in bands (see _render_alone).
        area = (box[2] - box[0]) * (box[3] - box[1])
        jobs.append(_Job(n, box, alone=box != tuple(int(v) for v in full[n]) or area > page_pixels))
    packable = [job for job in jobs if not job.alone]
    page_width = max([PAGE_WIDTH] + [job.source[2] - job.source[0] + GUTTER for job in packable])
    page, x, y, shelf = 0, 0, 0, 0
    for job in sorted(packable, key=lambda j: (j.source[3] - j.source[1], j.source[2] - j.source[0]), reverse=True):
        w = job.source[2] - job.source[0] + GUTTER
        h = job.source[3] - job.source[1] + GUTTER
        if x + w > page_width:  # next shelf
            x, y, shelf = 0, y + shelf, 0
        if y > 0 and (y + h) * page_width > page_pixels:  # next page
            page, x, y, shelf = page + 1, 0, 0, 0
        job.slot, job.page = (x, y), page
        x += w
        shelf = max(shelf, h)
    for job in jobs:
        if job.alone:
            page += 1
            job.slot, job.page = (0, 0), page
    return jobs


def _group_by_page(jobs: list[_Job]) -> dict[int, list[_Job]]:
    groups: dict[int, list[_Job]] = {}
    for job in jobs:
        groups.setdefault(job.page, []).append(job)
    return groups


def _render_alone(
    params: PrimitiveParams,
    bank: PreparedBank,
    job: _Job,
    blur: float,
    backend: str | None,
    drawn_opacity: np.ndarray,
    fallback: np.ndarray,
    page_pixels: int,
) -> np.ndarray:
    """The layer pixels of a primitive drawn alone on a canvas the size of its box, in bands
    of rows of at most ``page_pixels`` (each pixel's value does not depend on the band)."""
    x0, y0, x1, y1 = job.source
    rows = max(1, page_pixels // (x1 - x0))
    out = np.empty((y1 - y0, x1 - x0, 4), dtype=np.uint8)
    for top in range(y0, y1, rows):
        bottom = min(y1, top + rows)
        band = _Job(job.index, (x0, top, x1, bottom), alone=True)
        out[top - y0:bottom - y0] = _render_page(params, bank, [band], blur, backend, drawn_opacity, fallback)
    return out


def _render_page(
    params: PrimitiveParams,
    bank: PreparedBank,
    jobs: list[_Job],
    blur: float,
    backend: str | None,
    drawn_opacity: np.ndarray,
    fallback: np.ndarray,
) -> np.ndarray:
    """Straight 8-bit RGBA [H, W, 4] of one page: every slot holds its primitive's layer pixels."""
    index = torch.tensor([job.index for job in jobs], device=params.device)
    shift = torch.tensor([[job.slot[0] - job.source[0], job.slot[1] - job.source[1]] for job in jobs], dtype=torch.float64)
    sub = params.select(index)
    sub.means = (sub.means.double() + shift.to(params.device)).to(params.dtype)
    page_width = max(job.slot[0] + job.source[2] - job.source[0] for job in jobs)
    page_height = max(job.slot[1] + job.source[3] - job.source[1] for job in jobs)
    colour, alpha = composite(sub, bank, None, page_height, page_width, blur=blur, backend=backend, validate=False)
    colour = colour.float().cpu().numpy()
    alpha = alpha.float().cpu().numpy()
    # Per-slot constants, painted as rectangles: the opacity the primitive was drawn with
    # and the colour given to its fully transparent pixels.
    opacity = np.ones_like(alpha)
    tint = np.zeros_like(colour)
    for job in jobs:
        x, y = job.slot
        h, w = job.source[3] - job.source[1], job.source[2] - job.source[0]
        opacity[y:y + h, x:x + w] = drawn_opacity[job.index]
        tint[y:y + h, x:x + w] = fallback[job.index]
    # The render is premultiplied; layers store straight colour, and alpha without the
    # opacity, which becomes the layer's own.
    covered = alpha > 0
    inverse = np.divide(1.0, alpha, out=np.zeros_like(alpha), where=covered)
    rgba = np.empty(alpha.shape + (4,), dtype=np.float32)
    np.multiply(colour, inverse[..., None], out=rgba[..., :3])
    np.copyto(rgba[..., :3], tint, where=~covered[..., None])
    np.divide(alpha, opacity, out=rgba[..., 3])
    rgba *= 255.0
    np.clip(rgba, 0.0, 255.0, out=rgba)
    return np.rint(rgba, out=rgba).astype(np.uint8)


def _cut(pixels: np.ndarray, job: _Job) -> np.ndarray:
    """The layer pixels of ``job`` (a copy) from its page."""
    x, y = job.slot
    h, w = job.source[3] - job.source[1], job.source[2] - job.source[0]
    return pixels[y:y + h, x:x + w].copy()


def _fallback_colours(params: PrimitiveParams) -> np.ndarray:
    """Colour [N, 3] given to fully transparent pixels: the primitive's tint blended as for an
    analytic shape (invisible, but what an artist sees on unlocking the layer's transparency)."""
    beta = params.beta_or_zeros().unsqueeze(-1)
    return ((1 - beta) * params.colors + beta).float().cpu().numpy()
