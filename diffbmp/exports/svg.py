"""Scalable Vector Graphics: every bitmap stored once, every primitive a transformed reference.

Structure of the document (user units are pixels of the scene's canvas; ``width``/``height``
give the size in px at the chosen scale, and the ``viewBox`` lets it render at any size):

- ``<defs>``: each bitmap used once as ``<image id="tex3">`` (a base64 PNG of its own
  straight RGBA colours, drawn over the local box ``[-w/2, w/2] x [-h/2, h/2]`` in texels)
  and, for tinting, ``<mask id="mask3">`` over a white copy carrying the bitmap's alpha
  (the bitmap itself when it is white already, as the built-ins are).
- the background as a full ``<rect>``.
- primitives in painting order, each with ``transform="translate(x y) rotate(deg) ..."``:

  * a bitmap at ``beta = 0``: ``<rect fill="tint" fill-opacity="o" mask="url(#mask3)">``
    (the tint seen through the bitmap's alpha); at ``beta = 1``: ``<use href="#tex3"
    opacity="o">`` (its own colours); in between both, stacked (see :func:`blend_opacities`).
  * an analytic circle: an ``<ellipse>`` with fill and fill-opacity; when its edge is soft
    (a fitted blur of half a pixel or more, or a primitive under 2 px), a radial gradient
    that follows the model's edge profile (docs/rendering.md, 5.2).
  * an analytic Gaussian: an ``<ellipse>`` filled with a radial gradient that follows the
    blurred Gaussian exactly (5.3), including its taper and the 0.99 alpha clamp.

Soft edges are gradients rather than ``feGaussianBlur`` filters where the profile is known in
closed form (circles, Gaussians): that is exact, cheap to render, and renders the same in
viewers that ignore filters (cairosvg, many editors' previews). Bitmaps at a fitted blur of
half a pixel or more get an ``feGaussianBlur`` in user units (viewers without filter support
draw them sharp).
"""

from __future__ import annotations

import base64
import functools
import math
import os
import re
from pathlib import Path

import numpy as np
import torch

from ..constants import (
    ALPHA_MAX,
    CIRCLE_TAPER_END,
    CIRCLE_TAPER_START,
    GAUSSIAN_STD,
    GAUSSIAN_TAPER_END,
    GAUSSIAN_TAPER_START,
    KIND_CIRCLE,
    KIND_GAUSSIAN,
    KIND_TEXTURE,
    LOGISTIC_K,
    PIXEL_SIGMA,
)
from ..errors import InputError
from ..primitives import TextureBank
from ..scene import Scene
from .atomic import atomic_open
from .textures import bank_for_scale, hex_color, png_bytes, to_uint8

__all__ = ["svg_document", "write_svg", "blend_opacities", "SOFT_EDGE_PX", "SMALL_CIRCLE_PX"]

#: A fitted blur (in output pixels) from which circle edges and bitmaps are drawn soft.
SOFT_EDGE_PX = 0.5
#: Circles whose mean radius (output pixels) is below this are drawn with their exact soft
#: profile: at that size the model's blur is a visible part of the shape.
SMALL_CIRCLE_PX = 2.0
#: Largest error of a gradient's piecewise-linear profile, in alpha.
_STOP_TOLERANCE = 0.5 / 255
_XLINK = "http://www.w3.org/1999/xlink"


def blend_opacities(opacity: float, beta: float) -> tuple[float, float]:
    """Opacities (tinted stencil below, own colours on top) that draw one bitmap primitive.

    The model paints colour ``(1 - beta) c + beta Q`` with alpha ``a = o cov`` (section 6-7).
    Two layers over a backdrop ``X``: the stencil tinted ``c`` with alpha ``a1`` and the own
    colours ``Q`` with alpha ``a2`` on top give ``Q a2 + (c a1 + X (1 - a1)) (1 - a2)``. Equal to
    the model for every backdrop when ``a2 = beta a`` and ``a1 = (1 - beta) a / (1 - beta a)``.
    SVG scales a bitmap's alpha by a constant, so the constants are taken at full coverage
    (``a = o``): exact wherever the bitmap is opaque or empty, approximate only on its
    partially transparent texels. (Opacities ``1 - beta`` and ``beta`` instead would let the
    backdrop show through an opaque stamp.) ``o`` is clamped to ALPHA_MAX, as the model clamps
    ``o cov``.
    """
    o = min(float(opacity), ALPHA_MAX)
    top = beta * o
    bottom = (1.0 - beta) * o / (1.0 - top) if top < 1.0 else 0.0
    return bottom, top


# ----------------------------------------------------------------------------- formatting
def _f(value: float, decimals: int = 3) -> str:
    """A coordinate with fixed decimals and no trailing zeros."""
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "", "-") else text


def _g(value: float) -> str:
    """A factor with six significant digits."""
    return f"{value:.6g}"


def _transform(x: float, y: float, degrees: float, sx: float | None = None, sy: float | None = None) -> str:
    parts = [f"translate({_f(x)} {_f(y)})"]
    if abs(degrees) > 5e-4:
        parts.append(f"rotate({_f(degrees)})")
    if sx is not None:
        parts.append(f"scale({_g(sx)} {_g(sy)})")
    return " ".join(parts)


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


# ----------------------------------------------------------------------------- profiles
def _fewest_stops(xs: np.ndarray, values: np.ndarray, tolerance: float) -> np.ndarray:
    """Indices of samples whose piecewise-linear interpolation stays within ``tolerance``."""
    keep = [0]
    start = 0
    while start < len(xs) - 1:
        end = start + 1
        while end + 1 < len(xs):
            candidate = end + 1
            t = (xs[start:candidate + 1] - xs[start]) / (xs[candidate] - xs[start])
            line = values[start] + t * (values[candidate] - values[start])
            if np.abs(line - values[start:candidate + 1]).max() > tolerance:
                break
            end = candidate
        keep.append(end)
        start = end
    return np.asarray(keep)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _circle_profile(d: np.ndarray) -> np.ndarray:
    """Circle coverage at ``d`` effective deviations outside its outline (section 5.2)."""
    z = -LOGISTIC_K * d
    span = LOGISTIC_K * (CIRCLE_TAPER_END - CIRCLE_TAPER_START)
    return 1.0 / (1.0 + np.exp(-z)) * _smoothstep((z + LOGISTIC_K * CIRCLE_TAPER_END) / span)


def _gaussian_profile(t: np.ndarray) -> np.ndarray:
    """Unit-peak Gaussian coverage at ``t`` = distance over the support radius (section 5.3)."""
    q = (t * GAUSSIAN_TAPER_END) ** 2
    end, start = GAUSSIAN_TAPER_END**2, GAUSSIAN_TAPER_START**2
    return np.exp(-q / 2.0) * _smoothstep((end - q) / (end - start))


@functools.lru_cache(maxsize=None)
def _circle_stops() -> np.ndarray:
    """Distances ``d`` (deviations from the outline) where a circle's gradient needs stops."""
    d = np.linspace(-CIRCLE_TAPER_END, CIRCLE_TAPER_END, 641)
    return d[_fewest_stops(d, _circle_profile(d), _STOP_TOLERANCE)]


@functools.lru_cache(maxsize=None)
def _gaussian_stops() -> np.ndarray:
    t = np.linspace(0.0, 1.0, 801)
    return t[_fewest_stops(t, _gaussian_profile(t), _STOP_TOLERANCE)]


def _gradient(gid: str, colour: str, offsets: np.ndarray, alphas: np.ndarray) -> str:
    stops = "".join(
        f'<stop offset="{_f(t, 4)}" stop-color="{colour}" stop-opacity="{_f(a, 4)}"/>' for t, a in zip(offsets, alphas)
    )
    return f'<radialGradient id="{gid}">{stops}</radialGradient>'


def _halved(rgba: torch.Tensor, level: int) -> torch.Tensor:
    """Straight RGBA [H, W, 4] box-filtered down ``level`` times by two (in premultiplied form)."""
    if level == 0:
        return rgba
    h, w = rgba.shape[:2]
    size = (max(1, -(-h // 2**level)), max(1, -(-w // 2**level)))
    premultiplied = torch.cat([rgba[..., :3] * rgba[..., 3:], rgba[..., 3:]], dim=-1).permute(2, 0, 1)[None]
    small = torch.nn.functional.interpolate(premultiplied, size=size, mode="area")[0].permute(1, 2, 0)
    alpha = small[..., 3:]
    colour = torch.where(alpha > 0, small[..., :3] / alpha.clamp_min(1e-12), torch.ones_like(small[..., :3]))
    return torch.cat([colour.clamp(0, 1), alpha.clamp(0, 1)], dim=-1)


# ----------------------------------------------------------------------------- document
class _Writer:
    """Accumulates the SVG text of one scene."""

    def __init__(self, scene: Scene, bank: TextureBank, scale: float, blur: float, transparent: bool, mipmaps: bool):
        self.scene, self.bank, self.scale, self.blur = scene, bank, scale, blur
        self.transparent, self.mipmaps = transparent, mipmaps
        # Effective deviation in user units at the chosen output size (section 4).
        self.sigma = math.sqrt(blur**2 + (PIXEL_SIGMA / scale) ** 2)
        self.soft = blur * scale >= SOFT_EDGE_PX
        params = scene.params()
        self.means = params.means.detach().double().cpu().numpy()
        self.scales = params.scales.detach().double().cpu().numpy()
        self.rotations = params.rotations.detach().double().cpu().numpy()
        self.colors = params.colors.detach().double().cpu().numpy()
        self.opacities = params.opacities.detach().double().cpu().numpy()
        self.beta = params.beta_or_zeros().detach().double().cpu().numpy()
        self.ids = params.shape_ids.detach().cpu().numpy()
        self.filters: dict[float, tuple[str, str]] = {}  # margin -> (id, element)
        self.levels = self._levels()

    def document(self) -> str:
        height, width = self.scene.canvas_size(self.scale)
        view_w, view_h = width / self.scale, height / self.scale
        body = [self._primitive(n) for n in range(len(self.ids))]
        defs = self._texture_defs() + [element for _, element in self.filters.values()]
        out = [
            '<?xml version="1.0" encoding="UTF-8"?>\n',
            f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="{_XLINK}" version="1.1" '
            f'width="{width}" height="{height}" viewBox="0 0 {_g(view_w)} {_g(view_h)}" preserveAspectRatio="none">\n',
            "<desc>diffbmp painting: one element per primitive, in painting order (bottom first)</desc>\n",
        ]
        if defs:
            out += ["<defs>\n", *(d + "\n" for d in defs), "</defs>\n"]
        if not self.transparent:
            colour = hex_color(self.scene.background().detach().cpu().tolist())
            out.append(f'<rect id="background" x="0" y="0" width="{_g(view_w)}" height="{_g(view_h)}" fill="{colour}"/>\n')
        out += ['<g id="primitives">\n', *(b + "\n" for b in body if b), "</g>\n</svg>\n"]
        return "".join(out)

    # -- bitmaps -------------------------------------------------------------
    def _levels(self) -> np.ndarray:
        """Resolution level of each primitive's bitmap: 0 full, j the bitmap halved j times.

        Many SVG viewers (resvg, and browsers at some zoom levels) sample a minified bitmap
        without prefiltering it, which aliases its edges. So a primitive shown at a fraction
        of its bitmap's resolution at the chosen output size refers to a copy halved until
        it has 1-2 texels per output pixel (a mip level), and only levels in use are stored.
        """
        levels = np.zeros(len(self.ids), dtype=np.int64)
        if not self.mipmaps:
            return levels
        for k, entry in enumerate(self.bank):
            users = self.ids == k
            if entry.kind != KIND_TEXTURE or not users.any():
                continue
            h, w = entry.rgba.shape[:2]
            density_x = w / (2 * self.scales[users, 0] * self.scale)
            density_y = h / (2 * self.scales[users, 1] * self.scale)
            level = np.floor(np.log2(np.maximum(np.sqrt(density_x * density_y), 1.0))).astype(np.int64)
            deepest = max(0, int(math.floor(math.log2(max(1, min(h, w) // 2)))))
            levels[users] = np.clip(level, 0, deepest)
        return levels

    def _texture_defs(self) -> list[str]:
        defs = []
        for k, entry in enumerate(self.bank):
            if entry.kind != KIND_TEXTURE or not (self.ids == k).any():
                continue
            rgba = entry.rgba.detach().float().cpu()
            h, w = rgba.shape[:2]
            box = f'x="{_g(-w / 2)}" y="{_g(-h / 2)}" width="{w}" height="{h}"'
            for level in sorted(set(self.levels[self.ids == k].tolist())):
                users = (self.ids == k) & (self.levels == level)
                pairs = [blend_opacities(o, b) for o, b in zip(self.opacities[users], self.beta[users])]
                needs_stencil = any(bottom > 0 for bottom, _ in pairs)
                needs_colour = any(top > 0 for _, top in pairs)
                pixels = to_uint8(_halved(rgba, level).numpy())
                white = bool((pixels[..., :3][pixels[..., 3] > 0] >= 255).all())
                name = f"{k}_{level}"
                if needs_colour or (needs_stencil and white):
                    defs.append(self._image(f"tex{name}", box, pixels))
                if needs_stencil:
                    source = f"tex{name}"
                    if not white:
                        source = f"stencil{name}"
                        stencil = np.stack([np.full(pixels.shape[:2], 255, np.uint8), pixels[..., 3]], axis=-1)
                        defs.append(self._image(source, box, stencil))
                    defs.append(
                        f'<mask id="mask{name}" maskUnits="userSpaceOnUse" maskContentUnits="userSpaceOnUse" {box} '
                        f'style="mask-type:alpha"><use xlink:href="#{source}"/></mask>'
                    )
        return defs

    @staticmethod
    def _image(image_id: str, box: str, pixels: np.ndarray) -> str:
        data = base64.b64encode(png_bytes(pixels, compress_level=9)).decode("ascii")
        return f'<image id="{image_id}" {box} preserveAspectRatio="none" xlink:href="data:image/png;base64,{data}"/>'

    # -- primitives ----------------------------------------------------------
    def _primitive(self, n: int) -> str:
        entry = self.bank[int(self.ids[n])]
        pid = f"p{n:0{max(4, len(str(len(self.ids) - 1)))}d}-{_safe_id(entry.name)}"
        if entry.kind == KIND_CIRCLE:
            return self._circle(n, pid)
        if entry.kind == KIND_GAUSSIAN:
            return self._gaussian(n, pid)
        name = f"{int(self.ids[n])}_{int(self.levels[n])}"
        return self._texture(n, pid, name, entry.rgba.shape[1], entry.rgba.shape[0])

    def _flat_colour(self, n: int) -> str:
        # Analytic shapes are white (Q = 1), so the blend is a lerp towards white.
        return hex_color((1.0 - self.beta[n]) * self.colors[n] + self.beta[n])

    def _circle(self, n: int, pid: str) -> str:
        (x, y), (sx, sy) = self.means[n], self.scales[n]
        degrees = math.degrees(self.rotations[n])
        rho = math.sqrt(sx * sy)
        colour, opacity = self._flat_colour(n), self.opacities[n]
        if not self.soft and rho * self.scale >= SMALL_CIRCLE_PX:
            # The viewer's antialiasing plays the part of the model's one-pixel prefilter.
            return (
                f'<ellipse id="{pid}" rx="{_f(sx)}" ry="{_f(sy)}" fill="{colour}" '
                f'fill-opacity="{_f(min(opacity, ALPHA_MAX), 4)}" transform="{_transform(x, y, degrees)}"/>'
            )
        kappa = rho / self.sigma  # radius in effective deviations
        extent = 1.0 + CIRCLE_TAPER_END / kappa  # support radius in local units
        d = _circle_stops()
        d = d[d > -kappa]  # stops inside the centre do not exist
        radii = np.concatenate([[0.0], 1.0 + d / kappa])
        alphas = np.minimum(opacity * _circle_profile(np.concatenate([[-kappa], d])), ALPHA_MAX)
        gid = f"g{n}"
        return _gradient(gid, colour, radii / extent, alphas) + (
            f'<ellipse id="{pid}" rx="{_f(extent * sx)}" ry="{_f(extent * sy)}" fill="url(#{gid})" '
            f'transform="{_transform(x, y, degrees)}"/>'
        )

    def _gaussian(self, n: int, pid: str) -> str:
        (x, y), (sx, sy) = self.means[n], self.scales[n]
        su = math.sqrt(GAUSSIAN_STD**2 + (self.sigma / sx) ** 2)
        sv = math.sqrt(GAUSSIAN_STD**2 + (self.sigma / sy) ** 2)
        amplitude = GAUSSIAN_STD**2 / (su * sv)
        t = _gaussian_stops()
        alphas = np.minimum(self.opacities[n] * amplitude * _gaussian_profile(t), ALPHA_MAX)
        gid = f"g{n}"
        rx, ry = GAUSSIAN_TAPER_END * su * sx, GAUSSIAN_TAPER_END * sv * sy
        return _gradient(gid, self._flat_colour(n), t, alphas) + (
            f'<ellipse id="{pid}" rx="{_f(rx)}" ry="{_f(ry)}" fill="url(#{gid})" '
            f'transform="{_transform(x, y, math.degrees(self.rotations[n]))}"/>'
        )

    def _texture(self, n: int, pid: str, name: str, w: int, h: int) -> str:
        (x, y), (sx, sy) = self.means[n], self.scales[n]
        degrees = math.degrees(self.rotations[n])
        bottom, top = blend_opacities(self.opacities[n], self.beta[n])
        parts = []
        if bottom > 0:
            parts.append(
                f'<rect x="{_g(-w / 2)}" y="{_g(-h / 2)}" width="{w}" height="{h}" fill="{hex_color(self.colors[n])}" '
                f'fill-opacity="{_f(bottom, 4)}" mask="url(#mask{name})"/>'
            )
        if top > 0:
            # Opacity on a <g>, not on the <use>: some viewers (cairosvg) ignore it there.
            parts.append(f'<g opacity="{_f(top, 4)}"><use xlink:href="#tex{name}"/></g>')
        if not parts:
            return ""
        transform = _transform(x, y, degrees, 2 * sx / w, 2 * sy / h)
        if len(parts) == 1 and bottom > 0:
            element = parts[0].replace("<rect ", f'<rect id="{pid}" transform="{transform}" ', 1)
        elif len(parts) == 1:
            element = parts[0].replace("<g ", f'<g id="{pid}" transform="{transform}" ', 1)
        else:
            element = f'<g id="{pid}" transform="{transform}">{"".join(parts)}</g>'
        if self.soft:
            element = f'<g filter="url(#{self._blur_filter(n)})">{element}</g>'
        return element

    def _blur_filter(self, n: int) -> str:
        """Id of a Gaussian blur filter whose region holds the blurred primitive ``n``."""
        (sx, sy), angle = self.scales[n], self.rotations[n]
        c, s = abs(math.cos(angle)), abs(math.sin(angle))
        side = 2 * min(c * sx + s * sy, s * sx + c * sy)
        # Margin as a fraction of the bounding box, rounded up to a few shared values.
        needed = 3.0 * self.blur / max(side, 1e-6)
        margin = next((m for m in (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0) if m >= needed), 16.0)
        if margin not in self.filters:
            fid = f"blur{len(self.filters)}"
            self.filters[margin] = fid, (
                f'<filter id="{fid}" x="{_g(-margin)}" y="{_g(-margin)}" width="{_g(1 + 2 * margin)}" '
                f'height="{_g(1 + 2 * margin)}" color-interpolation-filters="sRGB">'
                f'<feGaussianBlur stdDeviation="{_f(self.blur, 4)}"/></filter>'
            )
        return self.filters[margin][0]


def svg_document(
    scene: Scene,
    scale: float = 1.0,
    *,
    blur: float = 0.0,
    transparent: bool = False,
    texture_size: int | None = None,
    mipmaps: bool = True,
) -> str:
    """The scene as SVG text.

    Args:
        scale: size in px of the document (``width``/``height``) relative to the scene's
            canvas; the drawing itself is resolution independent, but bitmaps are embedded
            at a resolution fit for this size and soft profiles include the pixel prefilter
            at this size.
        blur: fitted soft-rasterization width in pixels of the scene's canvas.
        transparent: leave out the background rectangle.
        texture_size: bitmap resolution, see :func:`~diffbmp.exports.textures.bank_for_scale`.
        mipmaps: also store halved copies of a bitmap for primitives shown much smaller
            than it (see ``_Writer._levels``); False stores exactly one image per bitmap.
    """
    scene.check_drawable()
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise InputError(f"scale must be a positive number, got {scale!r}")
    if not (isinstance(blur, (int, float)) and math.isfinite(blur) and blur >= 0):
        raise InputError(f"blur must be a number >= 0 (pixels), got {blur!r}")
    bank = bank_for_scale(scene, scale, texture_size)
    with torch.no_grad():
        return _Writer(scene, bank, float(scale), float(blur), bool(transparent), bool(mipmaps)).document()


def write_svg(
    scene: Scene,
    path: str | os.PathLike,
    scale: float = 1.0,
    *,
    blur: float = 0.0,
    transparent: bool = False,
    texture_size: int | None = None,
    mipmaps: bool = True,
) -> Path:
    """Write ``scene`` as SVG at ``path`` (atomically); see :func:`svg_document`."""
    text = svg_document(scene, scale, blur=blur, transparent=transparent, texture_size=texture_size, mipmaps=mipmaps)
    with atomic_open(path) as handle:
        handle.write(text.encode("utf-8"))
    return Path(path)
