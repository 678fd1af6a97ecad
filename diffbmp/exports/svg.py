"""Scalable Vector Graphics: every bitmap stored once per resolution, every primitive a
transformed reference.

Structure of the document (user units are pixels of the scene's canvas; ``width``/``height``
give the size in px at the chosen scale, and the ``viewBox`` lets it render at any size):

- ``<defs>``: the images of each bitmap in use (:mod:`.svg_bitmaps`: a resolution level fit
  for the primitive's size on each axis and, at a fitted blur, a copy blurred by it), each once
  as ``<image id="tex3_1_0">``, a base64 PNG of the bitmap's straight RGBA colours over its box
  in texels (``[-w/2, w/2] x [-h/2, h/2]``, larger by the tails of a blur); for tinting,
  ``<mask id="mask3_1_0">`` over a white copy carrying the alpha (the image itself when it is
  white already, as the built-ins are); for blends, ``<image id="opaque3_1_0">``, the same
  colours without alpha.
- the background as a full ``<rect>``.
- primitives in painting order, each with ``transform="translate(x y) rotate(deg) ..."``:

  * a bitmap at ``beta = 0``: ``<rect fill="tint" fill-opacity="o" mask="url(#mask3_1_0)">``
    (the tint seen through the bitmap's alpha); at ``beta = 1``: ``<use href="#tex3_1_0">`` in
    a group of opacity ``o`` (its own colours); in between, a group masked by the alpha and
    faded by ``o`` holding the tint and, over it at opacity ``beta``, the opaque colours: the
    group's colour is ``(1 - beta) c + beta Q`` exactly, its alpha ``o cov`` (docs/rendering.md,
    6-7), for every texel, opaque or not.
  * an analytic circle: an ``<ellipse>`` with fill and fill-opacity; when its edge is soft
    (a fitted blur of half a pixel or more, or a primitive under 2 px), a radial gradient
    that follows the model's edge profile (5.2).
  * an analytic Gaussian: an ``<ellipse>`` filled with a radial gradient that follows the
    blurred Gaussian exactly (5.3), including its taper and the 0.99 alpha clamp.

No filters: soft edges are gradients (circles, Gaussians) or pre-blurred images (bitmaps),
which every viewer draws the same, filters or not.
"""

from __future__ import annotations

import base64
import math
import os
import re
from pathlib import Path

import numpy as np
import torch

from ..constants import (
    ALPHA_MAX,
    CIRCLE_TAPER_END,
    GAUSSIAN_STD,
    GAUSSIAN_TAPER_END,
    KIND_CIRCLE,
    KIND_GAUSSIAN,
    KIND_TEXTURE,
    PIXEL_SIGMA,
)
from ..errors import InputError
from ..primitives import TextureBank
from ..primitives.outlines import VectorArt, vector_art
from ..scene import Scene
from .atomic import atomic_open
from .layers import painted_colours
from .selection import source_indices
from .svg_bitmaps import (
    Variant,
    VariantImage,
    choose_variants,
    is_white,
    opaque_colours,
    outline_softening,
    variant_image,
    white_stencil,
)
from .svg_profiles import circle_profile, circle_stops, gaussian_profile, gaussian_stops, radial_gradient
from .textures import bank_for_scale, hex_color, png_bytes

__all__ = ["svg_document", "write_svg", "blend_mode", "SOFT_EDGE_PX", "SMALL_CIRCLE_PX", "BETA_TOLERANCE"]

#: A fitted blur (in output pixels) from which circle edges are drawn with their soft profile.
SOFT_EDGE_PX = 0.5
#: Circles whose mean radius (output pixels) is below this are drawn with their exact soft
#: profile: at that size the model's blur is a visible part of the shape.
SMALL_CIRCLE_PX = 2.0
#: A beta this close to 0 or 1 is drawn as 0 or 1: the blend would move no 8-bit value.
BETA_TOLERANCE = 0.5 / 255
#: Outline softness (output pixels) under which no filter is written: it moves no 8-bit value.
MIN_SOFTENING_PX = 0.05
_XLINK = "http://www.w3.org/1999/xlink"


def blend_mode(beta: float) -> str:
    """How a bitmap at ``beta`` is drawn: ``"tint"`` (the tinted stencil), ``"own"`` (its own
    colours) or ``"blend"`` (the tint and, at opacity ``beta``, the opaque own colours, masked
    by the bitmap's alpha)."""
    if beta <= BETA_TOLERANCE:
        return "tint"
    if beta >= 1.0 - BETA_TOLERANCE:
        return "own"
    return "blend"


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


def _box(image: VariantImage) -> str:
    return f'x="{_g(image.x)}" y="{_g(image.y)}" width="{_g(image.width)}" height="{_g(image.height)}"'


# ----------------------------------------------------------------------------- document
class _Writer:
    """Accumulates the SVG text of one scene."""

    def __init__(
        self, scene: Scene, bank: TextureBank, scale: float, blur: float, transparent: bool, mipmaps: bool, vectors: bool
    ):
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
        self.indices, self.total = source_indices(scene)
        self.variants = self._variants()
        self.images: dict[tuple[int, Variant], VariantImage] = {}
        self.art = self._vector_art() if vectors and blur == 0 else {}
        self.softening = self._softening()
        # The one flat colour each primitive paints: an analytic shape's or a glyph's whole fill.
        self.painted = painted_colours(params, bank)

    def document(self) -> str:
        height, width = self.scene.canvas_size(self.scale)
        view_w, view_h = width / self.scale, height / self.scale
        defs = self._vector_defs() + self._texture_defs()
        body = [self._primitive(n) for n in range(len(self.ids))]
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
    def _variants(self) -> list[Variant | None]:
        """The stored copy (:class:`~.svg_bitmaps.Variant`) each bitmap primitive refers to."""
        variants: list[Variant | None] = [None] * len(self.ids)
        for k, entry in enumerate(self.bank):
            users = np.flatnonzero(self.ids == k)
            if entry.kind != KIND_TEXTURE or len(users) == 0:
                continue
            h, w = entry.rgba.shape[:2]
            chosen = choose_variants(w, h, self.scales[users, 0], self.scales[users, 1], self.scale, self.blur, self.mipmaps)
            for n, variant in zip(users, chosen):
                variants[n] = variant
        return variants

    def _vector_art(self) -> dict[int, VectorArt]:
        """The vector forms (glyph outlines, SVG stamps) of the bitmaps in use that have one."""
        art = {}
        for k, entry in enumerate(self.bank):
            if entry.kind == KIND_TEXTURE and (self.ids == k).any():
                form = vector_art(entry)
                if form is not None:
                    art[k] = form
        return art

    def _as_vector(self, n: int) -> bool:
        """Whether primitive ``n`` is drawn from its bitmap's vector form.

        A stencil (a glyph) is filled with its blended colour at any beta; a drawing in its
        own colours only at beta = 1: its tint and blends need its alpha as a mask, which
        viewers without ``mask-type:alpha`` read from its colours instead.
        """
        form = self.art.get(int(self.ids[n]))
        return form is not None and (not form.own_colours or blend_mode(self.beta[n]) == "own")

    def _softening(self) -> dict[int, str]:
        """Per vector-drawn primitive, the id of the blur filter that gives its outline the
        softness of the model's drawing of its bitmap (:func:`~.svg_bitmaps.outline_softening`).

        The blur is isotropic and in the canvas's frame (the geometric mean of the two axes'
        deviations), on a group around the primitive, with its region given as the primitive's
        box on the canvas: viewers that render a filter in the frame of a rotated, scaled
        element (Chromium, Inkscape) resample it there, and viewers differ on a ``<use>``'s
        bounding box.
        """
        softening: dict[int, str] = {}
        self.softening_filters: list[str] = []
        for k, form in self.art.items():
            users = np.array([n for n in np.flatnonzero(self.ids == k) if self._as_vector(n)], dtype=np.int64)
            if len(users) == 0:
                continue
            extent_x, extent_y = 2 * self.scales[users, 0] * self.scale, 2 * self.scales[users, 1] * self.scale
            # Deviations in output pixels along the primitive's two axes.
            dx = outline_softening(form.width, extent_x) * extent_x / form.width
            dy = outline_softening(form.height, extent_y) * extent_y / form.height
            deviation = np.sqrt(dx * dy) / self.scale  # user units
            for n, sigma in zip(users, deviation):
                if sigma * self.scale < MIN_SOFTENING_PX:
                    continue
                fid = f"soft{len(self.softening_filters)}"
                self.softening_filters.append(self._softening_filter(fid, int(n), float(sigma)))
                softening[int(n)] = fid
        return softening

    def _softening_filter(self, fid: str, n: int, sigma: float) -> str:
        (x, y), (sx, sy), angle = self.means[n], self.scales[n], self.rotations[n]
        c, s = abs(math.cos(angle)), abs(math.sin(angle))
        margin = 3 * sigma + 1 / self.scale
        ex, ey = c * sx + s * sy + margin, s * sx + c * sy + margin
        return (
            f'<filter id="{fid}" filterUnits="userSpaceOnUse" x="{_f(x - ex)}" y="{_f(y - ey)}" width="{_f(2 * ex)}" '
            f'height="{_f(2 * ey)}" color-interpolation-filters="sRGB"><feGaussianBlur stdDeviation="{_f(sigma, 4)}"/></filter>'
        )

    def _vector_defs(self) -> list[str]:
        defs = list(self.softening_filters)
        for k, form in self.art.items():
            if any(self._as_vector(n) for n in np.flatnonzero(self.ids == k)):
                # The markup's box [0, w] x [0, h] moved onto the bitmap's [-w/2, w/2] x [-h/2, h/2].
                defs.append(f'<g id="vec{k}" transform="translate({_g(-form.width / 2)} {_g(-form.height / 2)})">{form.markup}</g>')
        return defs

    def _texture_defs(self) -> list[str]:
        defs = []
        for k, entry in enumerate(self.bank):
            if entry.kind != KIND_TEXTURE:
                continue
            users = [n for n in np.flatnonzero(self.ids == k) if not self._as_vector(n)]
            for variant in sorted({self.variants[n] for n in users}):
                modes = {blend_mode(self.beta[n]) for n in users if self.variants[n] == variant and self.opacities[n] > 0}
                if not modes:
                    continue
                image = variant_image(entry.rgba, variant)
                self.images[k, variant] = image
                name, box, pixels = f"{k}_{variant.suffix}", _box(image), image.pixels
                white = is_white(pixels)
                if "own" in modes or ({"tint", "blend"} & modes and white):
                    defs.append(self._image(f"tex{name}", box, pixels))
                if {"tint", "blend"} & modes:
                    source = f"tex{name}"
                    if not white:
                        source = f"stencil{name}"
                        defs.append(self._image(source, box, white_stencil(pixels)))
                    defs.append(
                        f'<mask id="mask{name}" maskUnits="userSpaceOnUse" maskContentUnits="userSpaceOnUse" {box} '
                        f'style="mask-type:alpha"><use xlink:href="#{source}"/></mask>'
                    )
                if "blend" in modes:
                    defs.append(self._image(f"opaque{name}", box, opaque_colours(pixels)))
        return defs

    @staticmethod
    def _image(image_id: str, box: str, pixels: np.ndarray) -> str:
        data = base64.b64encode(png_bytes(pixels, compress_level=9)).decode("ascii")
        return f'<image id="{image_id}" {box} preserveAspectRatio="none" xlink:href="data:image/png;base64,{data}"/>'

    # -- primitives ----------------------------------------------------------
    def _primitive(self, n: int) -> str:
        entry = self.bank[int(self.ids[n])]
        # A subset (select_primitives) keeps the indices of the scene it was selected from.
        pid = f"p{self.indices[n]:0{max(4, len(str(self.total - 1)))}d}-{_safe_id(entry.name)}"
        if entry.kind == KIND_CIRCLE:
            return self._circle(n, pid)
        if entry.kind == KIND_GAUSSIAN:
            return self._gaussian(n, pid)
        return self._texture(n, pid, entry.rgba.shape[1], entry.rgba.shape[0])

    def _circle(self, n: int, pid: str) -> str:
        (x, y), (sx, sy) = self.means[n], self.scales[n]
        degrees = math.degrees(self.rotations[n])
        rho = math.sqrt(sx * sy)
        colour, opacity = hex_color(self.painted[n]), self.opacities[n]
        if not self.soft and rho * self.scale >= SMALL_CIRCLE_PX:
            # The viewer's antialiasing plays the part of the model's one-pixel prefilter.
            return (
                f'<ellipse id="{pid}" rx="{_f(sx)}" ry="{_f(sy)}" fill="{colour}" '
                f'fill-opacity="{_f(min(opacity, ALPHA_MAX), 4)}" transform="{_transform(x, y, degrees)}"/>'
            )
        kappa = rho / self.sigma  # radius in effective deviations
        extent = 1.0 + CIRCLE_TAPER_END / kappa  # support radius in local units
        d = circle_stops()
        d = d[d > -kappa]  # stops inside the centre do not exist
        radii = np.concatenate([[0.0], 1.0 + d / kappa])
        alphas = np.minimum(opacity * circle_profile(np.concatenate([[-kappa], d])), ALPHA_MAX)
        gid = f"g{n}"
        return radial_gradient(gid, colour, radii / extent, alphas, extent * sx, extent * sy) + (
            f'<ellipse id="{pid}" rx="{_f(extent * sx)}" ry="{_f(extent * sy)}" fill="url(#{gid})" '
            f'transform="{_transform(x, y, degrees)}"/>'
        )

    def _gaussian(self, n: int, pid: str) -> str:
        (x, y), (sx, sy) = self.means[n], self.scales[n]
        su = math.sqrt(GAUSSIAN_STD**2 + (self.sigma / sx) ** 2)
        sv = math.sqrt(GAUSSIAN_STD**2 + (self.sigma / sy) ** 2)
        amplitude = GAUSSIAN_STD**2 / (su * sv)
        t = gaussian_stops()
        alphas = np.minimum(self.opacities[n] * amplitude * gaussian_profile(t), ALPHA_MAX)
        gid = f"g{n}"
        rx, ry = GAUSSIAN_TAPER_END * su * sx, GAUSSIAN_TAPER_END * sv * sy
        return radial_gradient(gid, hex_color(self.painted[n]), t, alphas, rx, ry) + (
            f'<ellipse id="{pid}" rx="{_f(rx)}" ry="{_f(ry)}" fill="url(#{gid})" '
            f'transform="{_transform(x, y, math.degrees(self.rotations[n]))}"/>'
        )

    def _texture(self, n: int, pid: str, w: int, h: int) -> str:
        k, variant = int(self.ids[n]), self.variants[n]
        (x, y), (sx, sy) = self.means[n], self.scales[n]
        # SVG scales an image's alpha by a constant: min(o, 0.99) cov equals the model's
        # min(o cov, 0.99) but where o > 0.99 on partially transparent texels (by < 0.01).
        opacity = _f(min(float(self.opacities[n]), ALPHA_MAX), 4)
        transform = _transform(x, y, math.degrees(self.rotations[n]), 2 * sx / w, 2 * sy / h)
        mode = blend_mode(self.beta[n])
        if self._as_vector(n):
            if self.opacities[n] <= 0:
                return ""
            if self.art[k].own_colours:
                element = f'<g transform="{transform}" opacity="{opacity}"><use xlink:href="#vec{k}"/></g>'
            else:
                # A stencil's own colour Q is its bitmap's (white for glyphs): the blend is one flat fill.
                colour = hex_color(self.painted[n])
                element = f'<use xlink:href="#vec{k}" transform="{transform}" fill="{colour}" fill-opacity="{opacity}"/>'
            if n in self.softening:
                return f'<g id="{pid}" filter="url(#{self.softening[n]})">{element}</g>'
            return element.replace(" ", f' id="{pid}" ', 1)
        if (k, variant) not in self.images:
            return ""  # fully transparent
        image, name = self.images[k, variant], f"{k}_{variant.suffix}"
        if mode == "tint":
            return (
                f'<rect id="{pid}" transform="{transform}" {_box(image)} fill="{hex_color(self.colors[n])}" '
                f'fill-opacity="{opacity}" mask="url(#mask{name})"/>'
            )
        if mode == "own":
            # Opacity on a <g>, not on the <use>: some viewers (cairosvg) ignore it there.
            return f'<g id="{pid}" transform="{transform}" opacity="{opacity}"><use xlink:href="#tex{name}"/></g>'
        # Inside the group every texel is opaque: the tint, then the own colours at opacity
        # beta over it, i.e. (1 - beta) c + beta Q; the mask then gives it the alpha cov and the
        # group's opacity o. Exact for any beta and any texel, in any viewer with masks.
        return (
            f'<g id="{pid}" transform="{transform}" mask="url(#mask{name})" opacity="{opacity}">'
            f'<rect {_box(image)} fill="{hex_color(self.colors[n])}"/>'
            f'<g opacity="{_f(float(self.beta[n]), 4)}"><use xlink:href="#opaque{name}"/></g></g>'
        )


def svg_document(
    scene: Scene,
    scale: float = 1.0,
    *,
    blur: float = 0.0,
    transparent: bool = False,
    texture_size: int | None = None,
    mipmaps: bool = True,
    vectors: bool = True,
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
            than it (see :mod:`.svg_bitmaps`); False stores one resolution per bitmap (and,
            at a blur, one blurred copy per blur step in use).
        vectors: draw glyphs (``text:`` shapes) and SVG-file stamps from their vector forms
            (:func:`diffbmp.primitives.outlines.vector_art`: a glyph's outline filled with its
            colour, a stamp's own drawing at beta = 1), so they stay sharp at any zoom; False
            embeds their bitmaps like any other. At a blur, bitmaps are drawn (pre-blurred).
    """
    scene.check_drawable()
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise InputError(f"scale must be a positive number, got {scale!r}")
    if not (isinstance(blur, (int, float)) and math.isfinite(blur) and blur >= 0):
        raise InputError(f"blur must be a number >= 0 (pixels), got {blur!r}")
    for name, value in (("mipmaps", mipmaps), ("vectors", vectors)):
        if not isinstance(value, (bool, np.bool_)):
            raise InputError(f"{name} must be true or false, got {value!r}")
    bank = bank_for_scale(scene, scale, texture_size)
    with torch.no_grad():
        return _Writer(scene, bank, float(scale), float(blur), bool(transparent), bool(mipmaps), bool(vectors)).document()


def write_svg(
    scene: Scene,
    path: str | os.PathLike,
    scale: float = 1.0,
    *,
    blur: float = 0.0,
    transparent: bool = False,
    texture_size: int | None = None,
    mipmaps: bool = True,
    vectors: bool = True,
) -> Path:
    """Write ``scene`` as SVG at ``path`` (atomically); see :func:`svg_document`."""
    text = svg_document(
        scene, scale, blur=blur, transparent=transparent, texture_size=texture_size, mipmaps=mipmaps, vectors=vectors
    )
    with atomic_open(path) as handle:
        handle.write(text.encode("utf-8"))
    return Path(path)
