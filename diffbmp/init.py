"""Where primitives start: random, structure-aware, and error-driven initialisation.

All three build a :class:`~diffbmp.scene.Scene` of ``n`` primitives on the target's canvas.
Every random draw comes from the ``torch.Generator`` passed in, so a fit that checkpoints
the generator's state can be resumed exactly.

* :func:`random_init` scatters primitives uniformly, sized so that together they cover the
  canvas about ``coverage`` times.
* :func:`structure_init` draws positions from a mix of the target's detail map (smoothed
  gradient magnitude) and a uniform density, sizes each primitive from the local density of
  its neighbours (large in flat regions, small where there is detail), turns it along the
  image's structure tensor (strokes follow edges and stripes), and paints it with the
  target's colour under it. Large primitives are painted first (bottom), small ones on top.
* :func:`error_init` places primitives where the current render is most wrong (importance
  sampling of the per-pixel error), sizes each by the extent of the error blob around it,
  and colours it from the target; a fit uses it to re-seed pruned primitives and to add
  stages of finer primitives.

Shape ids are drawn from the bank (uniform or weighted) and a bitmap keeps its natural
aspect ratio ``entry.aspect`` (the ratio ``sx / sy``) while its area follows the size rule.
With ``constraints`` (:class:`~diffbmp.constraints.ShapeConstraints`) the scene carries them
and its raw values come from the inverse maps: a rotation outside a shape's range starts at
the range's centre, a kept aspect is the shape's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch

from .constraints import ShapeConstraints
from .errors import InputError
from .primitives import TextureBank
from .scene import Scene

__all__ = [
    "TargetAnalysis",
    "analyse_target",
    "random_init",
    "structure_init",
    "error_init",
    "initialise",
    "INIT_METHODS",
    "sample_shape_ids",
]

INIT_METHODS = ("structure", "random", "error")

#: Colours and opacities start this far from 0 and 1, so their logits are not saturated.
_LOGIT_MARGIN = 0.01
#: Blur levels (Gaussian deviation in pixels) of the colour and error pyramids.
_LEVEL_SIGMAS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0)


def _blur(array: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return array
    return cv2.GaussianBlur(array, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


#: Images of more pixels take their wide blurs on a shrunk copy (:func:`_blurred_at`).
SHRINK_ABOVE_PIXELS = 2048 * 2048


def _blurred_at(array: np.ndarray, sigma: float, iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
    """``_blur(array, sigma)[iy, ix]``: the blurred image at the pixels (iy, ix) only.

    Exact on images of up to :data:`SHRINK_ABOVE_PIXELS` pixels. On a larger one a deviation
    of 4 pixels or more is taken on a copy shrunk by area averaging by a power of two up to
    ``sigma / 2`` (which blurs by part of the deviation already), blurred by the rest and read
    bilinearly: a 64-pixel blur of a 16-megapixel image costs tens of milliseconds instead of
    seconds, and differs from the exact one by a small fraction of the image's local contrast.
    """
    height, width = array.shape[:2]
    factor = 1
    if height * width > SHRINK_ABOVE_PIXELS:
        while 4 * factor <= sigma:
            factor *= 2
    if factor == 1:
        return _blur(array, sigma)[iy, ix]
    small_w, small_h = max(1, width // factor), max(1, height // factor)
    small = cv2.resize(array, (small_w, small_h), interpolation=cv2.INTER_AREA)
    # Averaging f x f pixels has a per-axis variance of (f^2 - 1) / 12 pixels^2.
    rest = math.sqrt(max(sigma * sigma - (factor * factor - 1) / 12.0, 0.25)) / factor
    channels = int(np.prod(array.shape[2:], dtype=np.int64))
    small = _blur(small, rest).reshape(small_h, small_w, channels)
    # Pixel centres of the canvas in the small image's pixel coordinates, read bilinearly.
    x = np.clip((ix + 0.5) * small_w / width - 0.5, 0, small_w - 1)
    y = np.clip((iy + 0.5) * small_h / height - 0.5, 0, small_h - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, small_w - 1), np.minimum(y0 + 1, small_h - 1)
    ax, ay = (x - x0)[:, None], (y - y0)[:, None]
    top = small[y0, x0] * (1 - ax) + small[y0, x1] * ax
    bottom = small[y1, x0] * (1 - ax) + small[y1, x1] * ax
    values = (top * (1 - ay) + bottom * ay).astype(array.dtype)
    return values.reshape((len(iy),) + array.shape[2:])


@dataclass
class TargetAnalysis:
    """Maps of a target computed once per fit and shared by every initialiser.

    Attributes:
        rgb: [H, W, 3] float32 target colour (composited over its mean colour if RGBA).
        detail: [H, W] smoothed gradient magnitude, normalised to mean 1.
        angle: [H, W] direction of the image's structure (along edges), radians.
        coherence: [H, W] in [0, 1]: how strongly oriented the structure is.
        support: [H, W] in [0, 1] where primitives may be placed (target alpha x mask).
    """

    rgb: np.ndarray
    detail: np.ndarray
    angle: np.ndarray
    coherence: np.ndarray
    support: np.ndarray

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    def colour_at(self, points: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
        """Mean target colour [N, 3] over a disc of radius ``radii`` around ``points`` [N, 2]."""
        level = _level_index(radii * 0.5).numpy()
        ix, iy = (i.numpy() for i in _pixel_index(points, self.height, self.width))
        colours = np.zeros((points.shape[0], 3), dtype=np.float32)
        # Blurred images are made on demand, one per level in use (they are cheap, and keeping
        # all of them would cost gigabytes on large canvases).
        for index in np.unique(level):
            chosen = level == index
            colours[chosen] = _blurred_at(self.rgb, _LEVEL_SIGMAS[index], iy[chosen], ix[chosen])
        return torch.from_numpy(colours)

    def angle_at(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Structure direction and coherence at ``points`` [N, 2], each [N]."""
        ix, iy = _pixel_index(points, self.height, self.width)
        angle = torch.from_numpy(self.angle[iy.numpy(), ix.numpy()].astype(np.float32))
        coherence = torch.from_numpy(self.coherence[iy.numpy(), ix.numpy()].astype(np.float32))
        return angle, coherence


def _level_index(sigma: torch.Tensor) -> torch.Tensor:
    levels = torch.tensor(_LEVEL_SIGMAS, dtype=torch.float32)
    return (sigma.float().unsqueeze(1) - levels.unsqueeze(0)).abs().argmin(dim=1)


def _pixel_index(points: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    ix = points[:, 0].floor().long().clamp(0, width - 1)
    iy = points[:, 1].floor().long().clamp(0, height - 1)
    return ix, iy


def analyse_target(
    rgb: torch.Tensor,
    alpha: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    *,
    detail_sigma: float = 1.5,
    structure_sigma: float = 3.0,
) -> TargetAnalysis:
    """Detail, orientation and blurred-colour maps of a target image.

    Args:
        rgb: [H, W, 3] target colour in [0, 1].
        alpha: [H, W] target alpha (primitives are placed only where it is > 0), or None.
        mask: [H, W] weight map or mask (primitives are placed only where it is > 0), or None.
        detail_sigma: smoothing of the gradient magnitude, pixels.
        structure_sigma: integration scale of the structure tensor, pixels.
    """
    image = rgb.detach().cpu().float().numpy()
    support = np.ones(image.shape[:2], dtype=np.float32)
    if alpha is not None:
        a = alpha.detach().cpu().float().numpy()
        mean = (image * a[..., None]).sum(axis=(0, 1)) / max(float(a.sum()), 1e-6)
        image = image * a[..., None] + mean * (1 - a[..., None])
        support = support * (a > 0.05)
    if mask is not None:
        support = support * (mask.detach().cpu().float().numpy() > 0)
    if float(support.sum()) <= 0:
        raise InputError("nothing of the target may be painted: its alpha and the mask leave no pixel")
    image = np.ascontiguousarray(image, dtype=np.float32)
    # Gradients of every channel: colour edges count as much as brightness edges.
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT) / 8.0
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT) / 8.0
    magnitude = np.sqrt((gx**2 + gy**2).sum(axis=2))
    detail = _blur(magnitude, detail_sigma)
    detail = detail / max(float(detail.mean()), 1e-8)
    jxx = _blur((gx * gx).sum(axis=2), structure_sigma)
    jyy = _blur((gy * gy).sum(axis=2), structure_sigma)
    jxy = _blur((gx * gy).sum(axis=2), structure_sigma)
    # The dominant gradient direction is 0.5 atan2(2 Jxy, Jxx - Jyy); structure runs across it.
    gradient_angle = 0.5 * np.arctan2(2 * jxy, jxx - jyy)
    angle = gradient_angle + math.pi / 2
    root = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2)
    coherence = (root / np.maximum(jxx + jyy, 1e-12)) ** 2
    return TargetAnalysis(
        rgb=image,
        detail=detail.astype(np.float32),
        angle=angle.astype(np.float32),
        coherence=np.clip(coherence, 0, 1).astype(np.float32),
        support=support.astype(np.float32),
    )


# ----------------------------------------------------------------------------- sampling
def sample_shape_ids(bank: TextureBank, n: int, generator: torch.Generator, weights: Sequence[float] | None = None) -> torch.Tensor:
    """``n`` shape ids drawn from the bank, uniformly or with ``weights`` (one per entry)."""
    if weights is None:
        probabilities = torch.ones(len(bank), dtype=torch.float64)
    else:
        if len(weights) != len(bank):
            raise InputError(f"shape_weights has {len(weights)} values but the bank has {len(bank)} shapes ({', '.join(bank.names)})")
        probabilities = torch.tensor([float(w) for w in weights], dtype=torch.float64)
        if bool((probabilities < 0).any()) or float(probabilities.sum()) <= 0:
            raise InputError("shape_weights must be >= 0 with at least one > 0")
    if n == 0:
        return torch.zeros(0, dtype=torch.long)
    return torch.multinomial(probabilities, n, replacement=True, generator=generator)


def _sample_points(density: np.ndarray, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` points [N, 2] (x, y) drawn from a per-pixel density, uniform inside each pixel."""
    height, width = density.shape
    flat = torch.from_numpy(np.ascontiguousarray(density, dtype=np.float64)).flatten()
    if float(flat.sum()) <= 0:
        flat = torch.ones_like(flat)
    index = torch.multinomial(flat, n, replacement=True, generator=generator)
    jitter = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    x = (index % width).double() + jitter[:, 0]
    y = torch.div(index, width, rounding_mode="floor").double() + jitter[:, 1]
    return torch.stack([x, y], dim=1).float()


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(_LOGIT_MARGIN, 1 - _LOGIT_MARGIN)
    return torch.log(p) - torch.log1p(-p)


def _beta_logits(beta: float, n: int) -> torch.Tensor:
    if not 0.0 <= beta <= 1.0:
        raise InputError(f"beta must lie in [0, 1], got {beta}")
    if beta <= 0.0:
        return torch.full((n,), -math.inf)
    if beta >= 1.0:
        return torch.full((n,), math.inf)
    return torch.full((n,), math.log(beta) - math.log1p(-beta))


def _build(
    analysis: TargetAnalysis,
    bank: TextureBank,
    points: torch.Tensor,
    radii: torch.Tensor,
    angles: torch.Tensor,
    generator: torch.Generator,
    *,
    opacity: float,
    colors: str,
    beta: float,
    shape_weights: Sequence[float] | None,
    aspect: float | None,
    order: str,
    constraints: ShapeConstraints | None = None,
) -> Scene:
    """A scene of primitives at ``points`` with area-equivalent radii ``radii``."""
    n = int(points.shape[0])
    shape_ids = sample_shape_ids(bank, n, generator, shape_weights)
    aspects = torch.tensor([bank[i].aspect if aspect is None else float(aspect) for i in range(len(bank))], dtype=torch.float32)
    root = aspects[shape_ids].sqrt() if n else torch.ones(0)
    scales = torch.stack([radii * root, radii / root], dim=1)
    if colors == "target":
        rgb = analysis.colour_at(points, radii)
    elif colors == "random":
        rgb = torch.rand(n, 3, generator=generator)
    elif colors == "gray":
        rgb = torch.full((n, 3), 0.5)
    else:
        raise InputError(f"colors must be 'target', 'random' or 'gray', got {colors!r}")
    max_side = float(max(analysis.height, analysis.width))
    log_scales = scales.clamp(0.3, max_side).log()
    scene = Scene(
        height=analysis.height,
        width=analysis.width,
        bank=bank,
        means=points.float().contiguous(),
        log_scales=log_scales.contiguous(),
        rotations=angles.float().contiguous(),
        color_logits=_logit(rgb).contiguous(),
        opacity_logits=_logit(torch.full((n,), float(opacity))),
        beta_logits=_beta_logits(beta, n),
        shape_ids=shape_ids,
    )
    if order == "size":
        # Large primitives at the bottom, details on top (stable, so ties keep their draw order).
        area = (scales[:, 0] * scales[:, 1]).double()
        scene = scene.select(torch.sort(-area, stable=True).indices)
    return scene.with_constraints(constraints, start=True)


def _structure_angles(analysis: TargetAnalysis, points: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    angle, coherence = analysis.angle_at(points)
    # Where nothing is oriented, the angle is noise anyway: spread it out instead of aligning.
    jitter = (torch.rand(points.shape[0], generator=generator) - 0.5) * math.pi * (1 - coherence)
    return angle + jitter


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InputError(f"the number of primitives must be a whole number >= 0, got {n!r}")
    return n


def _coverage_radius(area: float, n: int, coverage: float) -> float:
    """Radius at which ``n`` discs cover ``area`` pixels ``coverage`` times over."""
    return math.sqrt(coverage * area / (math.pi * max(n, 1)))


def random_init(
    analysis: TargetAnalysis,
    bank: TextureBank,
    n: int,
    *,
    generator: torch.Generator,
    coverage: float = 2.0,
    size_jitter: float = 0.5,
    opacity: float = 0.8,
    colors: str = "target",
    beta: float = 0.0,
    shape_weights: Sequence[float] | None = None,
    aspect: float | None = None,
    min_size: float = 0.5,
    max_size: float | None = None,
    constraints: ShapeConstraints | None = None,
) -> Scene:
    """``n`` primitives at uniform random positions (inside the support) and random angles.

    Sizes are log-uniform within ``size_jitter`` (natural log units) of the radius at which
    the primitives cover the support ``coverage`` times.
    """
    n = _check_n(n)
    points = _sample_points(analysis.support, n, generator)
    base = _coverage_radius(float(analysis.support.sum()), n, coverage)
    jitter = (torch.rand(n, generator=generator) * 2 - 1) * size_jitter
    radii = _clamp_radii(base * jitter.exp(), analysis, min_size, max_size)
    angles = (torch.rand(n, generator=generator) * 2 - 1) * math.pi
    return _build(analysis, bank, points, radii, angles, generator, opacity=opacity, colors=colors, beta=beta,
                  shape_weights=shape_weights, aspect=aspect, order="none",
                  constraints=constraints)


def _clamp_radii(radii: torch.Tensor, analysis: TargetAnalysis, min_size: float, max_size: float | None) -> torch.Tensor:
    high = max_size if max_size is not None else 0.25 * max(analysis.height, analysis.width)
    return radii.clamp(min_size, max(high, min_size))


def structure_init(
    analysis: TargetAnalysis,
    bank: TextureBank,
    n: int,
    *,
    generator: torch.Generator,
    detail_mix: float = 0.7,
    detail_power: float = 1.0,
    coverage: float = 2.0,
    opacity: float = 0.8,
    colors: str = "target",
    beta: float = 0.0,
    shape_weights: Sequence[float] | None = None,
    aspect: float | None = None,
    min_size: float = 0.5,
    max_size: float | None = None,
    constraints: ShapeConstraints | None = None,
) -> Scene:
    """``n`` primitives placed, sized, turned and coloured by the target's structure.

    Args:
        detail_mix: share of the positions drawn from the detail map (the rest uniformly).
        detail_power: the detail map is raised to this power first (>1 concentrates more).
        coverage: about how many primitives cover each pixel; the radius at a point is
            ``sqrt(coverage / (pi * local density))``, so flat regions get large primitives.
        opacity: initial opacity.
        colors: "target" (mean target colour under each primitive), "random" or "gray".
        beta: initial blend towards the bitmaps' own colours (0 tint, 1 own colours).
        shape_weights: relative frequency of each bank entry (default uniform).
        aspect: sx / sy of every primitive (default: each entry's natural aspect).
        min_size, max_size: bounds of the radius in pixels (default max: a quarter canvas).
        constraints: rotation and aspect constraints the scene carries (None: none).
    """
    n = _check_n(n)
    if not 0.0 <= detail_mix <= 1.0:
        raise InputError(f"detail_mix must lie in [0, 1], got {detail_mix}")
    support = analysis.support
    detail = analysis.detail ** detail_power if detail_power != 1.0 else analysis.detail
    detail = detail * support
    uniform = support / max(float(support.sum()), 1e-12)
    detail = detail / max(float(detail.sum()), 1e-12)
    density = (1 - detail_mix) * uniform + detail_mix * detail
    points = _sample_points(density, n, generator)
    # The local density of primitives, smoothed over about one mean spacing, sets the sizes.
    spacing = math.sqrt(float(support.sum()) / max(n, 1))
    ix, iy = _pixel_index(points, analysis.height, analysis.width)
    smooth = _blurred_at(density.astype(np.float32), max(spacing, 1.0), iy.numpy(), ix.numpy())
    local = torch.from_numpy(smooth.astype(np.float64)).clamp_min(1e-12) * n
    radii = torch.sqrt(coverage / (math.pi * local)).float()
    radii = _clamp_radii(radii, analysis, min_size, max_size)
    angles = _structure_angles(analysis, points, generator)
    return _build(analysis, bank, points, radii, angles, generator, opacity=opacity, colors=colors, beta=beta,
                  shape_weights=shape_weights, aspect=aspect, order="size",
                  constraints=constraints)


def error_map(render: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> np.ndarray:
    """Per-pixel squared error [H, W] (summed over channels, times ``weight``) as float32."""
    error = (render.detach().float() - target.detach().float()).pow(2).sum(dim=-1)
    if weight is not None:
        error = error * weight.detach().float()
    return error.cpu().numpy().astype(np.float32)


def error_init(
    analysis: TargetAnalysis,
    bank: TextureBank,
    n: int,
    error: np.ndarray | torch.Tensor,
    *,
    generator: torch.Generator,
    power: float = 1.0,
    blob_fraction: float = 0.3,
    opacity: float = 0.9,
    colors: str = "target",
    beta: float = 0.0,
    shape_weights: Sequence[float] | None = None,
    aspect: float | None = None,
    min_size: float = 0.5,
    max_size: float | None = None,
    constraints: ShapeConstraints | None = None,
) -> Scene:
    """``n`` primitives where ``error`` [H, W] is largest, sized by the error blob around each.

    Positions are drawn with probability proportional to ``error ** power`` (inside the
    support). A primitive grows, window by window, while a disc of the target's mean colour
    over the window would leave at most ``blob_fraction`` of the error the window has now
    (the target's variance in the window is that leftover error), so a wide wrong region of
    even colour gets one large primitive and a wrong edge or texture a small one. Colours
    are the target's mean over the primitive; orientations follow the target's structure.
    """
    n = _check_n(n)
    error = error.detach().cpu().float().numpy() if isinstance(error, torch.Tensor) else np.asarray(error, dtype=np.float32)
    if error.shape != analysis.support.shape:
        raise InputError(f"the error map must have shape {list(analysis.support.shape)}, got {list(error.shape)}")
    error = np.maximum(error, 0) * analysis.support
    density = _blur(error, 1.0)
    if power != 1.0:
        density = density**power
    points = _sample_points(density * analysis.support, n, generator)
    high = max_size if max_size is not None else 0.25 * max(analysis.height, analysis.width)
    ix, iy = (i.numpy() for i in _pixel_index(points, analysis.height, analysis.width))
    squares = analysis.rgb * analysis.rgb
    radii = torch.full((n,), max(min_size, 1.0))
    growing = torch.ones(n, dtype=torch.bool)
    for sigma in _LEVEL_SIGMAS[1:]:
        radius = 2.0 * sigma
        if radius > high or not bool(growing.any()):
            break
        # A disc of the target's mean colour over this window would leave the target's
        # variance in it as error; it is worth placing only where that is well below the
        # error there now.
        mean = _blurred_at(analysis.rgb, sigma, iy, ix)
        variance = (_blurred_at(squares, sigma, iy, ix) - mean * mean).sum(axis=1)
        current = _blurred_at(error, sigma, iy, ix)
        fits = torch.from_numpy(variance <= blob_fraction * current)
        growing &= fits
        radii = torch.where(growing, torch.tensor(radius), radii)
    radii = _clamp_radii(radii, analysis, min_size, max_size)
    angles = _structure_angles(analysis, points, generator)
    return _build(analysis, bank, points, radii, angles, generator, opacity=opacity, colors=colors, beta=beta,
                  shape_weights=shape_weights, aspect=aspect, order="size",
                  constraints=constraints)


def initialise(
    method: str,
    analysis: TargetAnalysis,
    bank: TextureBank,
    n: int,
    *,
    generator: torch.Generator,
    background: torch.Tensor | None = None,
    **options,
) -> Scene:
    """Dispatch to :func:`structure_init`, :func:`random_init` or :func:`error_init`.

    For ``"error"`` the error is measured against a canvas of the ``background`` colour
    (default: the target's mean colour), i.e. the primitives go where the empty canvas is
    most wrong.
    """
    if method == "structure":
        return structure_init(analysis, bank, n, generator=generator, **options)
    if method == "random":
        options.pop("detail_mix", None)
        options.pop("detail_power", None)
        return random_init(analysis, bank, n, generator=generator, **options)
    if method == "error":
        options.pop("detail_mix", None)
        options.pop("detail_power", None)
        options.pop("coverage", None)
        target = torch.from_numpy(analysis.rgb)
        colour = target.mean(dim=(0, 1)) if background is None else background.detach().cpu().float()
        canvas = colour.expand_as(target)
        return error_init(analysis, bank, n, error_map(canvas, target), generator=generator, **options)
    raise InputError(f"unknown init method {method!r}; choose one of {', '.join(INIT_METHODS)}")
