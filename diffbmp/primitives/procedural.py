"""Built-in primitives made in code, so the package works with no image files at all.

Every texture is straight RGBA float32 ``[h, w, 4]`` in [0, 1], row 0 at the top. The
built-ins are stencils: RGB is white everywhere and the whole character of a mark (edges,
bristle streaks, leaf veins, graphite grain) lives in alpha, so at ``beta = 0`` the per-
primitive tint shows it.

Geometric shapes are signed distance fields (shape units, y up) turned into coverage with a
one-texel ramp, which is the box-filtered coverage of a straight edge: antialiased at every
size and cheap at 4096 texels. Strokes are sums of prefiltered bristle streaks.

Determinism: randomness comes only from ``numpy.random.default_rng`` seeded from the name
(never global state, never ``hash()``), drawn with ``uniform`` only, and evaluated with
element-wise float64 arithmetic (no BLAS reductions whose order varies between machines).
The result is quantised to 1/65535 steps, which absorbs last-ulp differences of libm
functions between CPUs.
"""

from __future__ import annotations

import difflib
import functools
import math
import zlib
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..errors import InputError

__all__ = ["builtin_names", "make_builtin", "natural_aspect"]

MIN_SIZE = 8
MAX_SIZE = 4096
#: Transparent margin on each side, as a fraction of that side (at least one texel).
MARGIN = 0.03
#: Smallest side of a non-square texture, so thin strokes keep a few texels across.
MIN_SIDE = 4

Array = np.ndarray
# A signed distance field in shape units (negative inside), y axis pointing up.
Sdf = Callable[[Array, Array], Array]


# ----------------------------------------------------------------------------- helpers
def _cover(d_texels: Array) -> Array:
    """Coverage of a texel whose centre is ``d_texels`` from a straight edge (box filter)."""
    return np.clip(0.5 - d_texels, 0.0, 1.0)


def _smoothstep(e0: float, e1: float, x: Array) -> Array:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _length(x: Array, y: Array) -> Array:
    return np.sqrt(x * x + y * y)


def _value_noise(rng: np.random.Generator, nx: int, ny: int, u: Array, v: Array) -> Array:
    """Smooth value noise in [0, 1] on a fixed ``nx`` x ``ny`` lattice over u, v in [0, 1]."""
    lattice = rng.uniform(size=(ny + 2, nx + 2))
    fx = np.clip(u, 0.0, 1.0) * nx
    fy = np.clip(v, 0.0, 1.0) * ny
    ix = np.minimum(np.floor(fx).astype(np.int64), nx)
    iy = np.minimum(np.floor(fy).astype(np.int64), ny)
    tx = fx - ix
    ty = fy - iy
    tx = tx * tx * (3.0 - 2.0 * tx)
    ty = ty * ty * (3.0 - 2.0 * ty)
    top = lattice[iy, ix] * (1.0 - tx) + lattice[iy, ix + 1] * tx
    bottom = lattice[iy + 1, ix] * (1.0 - tx) + lattice[iy + 1, ix + 1] * tx
    return top * (1.0 - ty) + bottom * ty


def _fbm(rng: np.random.Generator, nx: int, ny: int, u: Array, v: Array, w: int, h: int,
         octaves: int = 3) -> Array:
    """Fractal value noise in [0, 1]; octaves finer than ~2 texels fade out (prefiltering).

    Every octave's lattice is always drawn, so the random stream does not depend on size.
    """
    total = np.zeros(np.broadcast_shapes(np.shape(u), np.shape(v)))
    weight_sum = 0.0
    for k in range(octaves):
        cx, cy = nx << k, ny << k
        noise = _value_noise(rng, cx, cy, u, v)
        cell = min(w / cx, h / cy)  # texels per lattice cell
        fade = min(max((cell - 1.5) / 1.5, 0.0), 1.0)
        weight = 0.5**k * fade
        if k == 0:
            weight = 1.0  # the coarsest octave is always kept
        total += weight * (noise - 0.5)
        weight_sum += weight
    return 0.5 + total / weight_sum


def _polygon_sdf(vertices: list[tuple[float, float]]) -> Sdf:
    """Exact signed distance to a simple polygon (Inigo Quilez's sdPolygon)."""
    vx = np.array([p[0] for p in vertices])
    vy = np.array([p[1] for p in vertices])

    def sdf(x: Array, y: Array) -> Array:
        x, y = np.broadcast_arrays(x, y)
        d2 = (x - vx[0]) ** 2 + (y - vy[0]) ** 2
        inside = np.zeros(x.shape, dtype=bool)
        for i in range(len(vx)):
            j = i - 1
            ex, ey = vx[j] - vx[i], vy[j] - vy[i]
            wx, wy = x - vx[i], y - vy[i]
            t = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0.0, 1.0)
            bx, by = wx - ex * t, wy - ey * t
            d2 = np.minimum(d2, bx * bx + by * by)
            # Crossing-number test for the sign.
            c1 = y >= vy[i]
            c2 = y < vy[j]
            c3 = ex * wy > ey * wx
            inside ^= (c1 == c2) & (c2 == c3)
        return np.where(inside, -1.0, 1.0) * np.sqrt(d2)

    return sdf


def _regular_polygon(n: int, radius: float, phase_deg: float) -> list[tuple[float, float]]:
    angles = [math.radians(phase_deg + 360.0 * k / n) for k in range(n)]
    return [(radius * math.cos(a), radius * math.sin(a)) for a in angles]


def _star_vertices(points: int, outer: float, inner: float) -> list[tuple[float, float]]:
    verts = []
    for k in range(2 * points):
        r = outer if k % 2 == 0 else inner
        a = math.radians(90.0 + 180.0 * k / points)
        verts.append((r * math.cos(a), r * math.sin(a)))
    return verts


# ----------------------------------------------------------------------------- shapes (SDF)
def _disc(x: Array, y: Array) -> Array:
    return _length(x, y) - 1.0


def _ring(x: Array, y: Array) -> Array:
    return np.abs(_length(x, y) - 0.79) - 0.21


def _square(x: Array, y: Array) -> Array:
    r = 0.07  # slightly rounded corners read better as a painted mark
    qx = np.abs(x) - (1.0 - r)
    qy = np.abs(y) - (1.0 - r)
    outside = _length(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    return outside + np.minimum(np.maximum(qx, qy), 0.0) - r


def _rounded(sdf: Sdf, r: float) -> Sdf:
    return lambda x, y: sdf(x, y) - r


def _heart(x: Array, y: Array) -> Array:
    # Inigo Quilez's exact heart: two arcs and two lines, tip at the origin.
    x = np.abs(x)
    upper = _length(x - 0.25, y - 0.75) - math.sqrt(2.0) / 4.0
    m = 0.5 * np.maximum(x + y, 0.0)
    lower = np.sqrt(np.minimum((x - 0.0) ** 2 + (y - 1.0) ** 2, (x - m) ** 2 + (y - m) ** 2))
    lower = lower * np.sign(x - y)
    return np.where(x + y > 1.0, upper, lower)


def _crescent(x: Array, y: Array) -> Array:
    # Inigo Quilez's exact moon: a disc minus an offset disc, with exact distance at the horns.
    d, ra, rb = 0.42, 1.0, 0.84
    y = np.abs(y)
    a = (ra * ra - rb * rb + d * d) / (2.0 * d)
    b = math.sqrt(max(ra * ra - a * a, 0.0))
    horn = d * (x * b - y * a) > d * d * np.maximum(b - y, 0.0)
    body = np.maximum(_length(x, y) - ra, -(_length(x - d, y) - rb))
    return np.where(horn, _length(x - a, y - b), body)


def _drop(x: Array, y: Array) -> Array:
    # Uneven capsule (IQ's sdUnevenCapsule): round bottom, nearly pointed top.
    r1, r2, h = 1.0, 0.05, 2.15
    x = np.abs(x)
    b = (r1 - r2) / h
    a = math.sqrt(1.0 - b * b)
    k = -b * x + a * y
    return np.where(k < 0.0, _length(x, y) - r1,
                    np.where(k > a * h, _length(x, y - h) - r2, a * x + b * y - r1))


# Leaf: a vesica (two intersecting arcs) along x, gently bent, wider near the stalk.
_LEAF_L, _LEAF_W, _LEAF_BEND = 2.0, 0.78, 0.16


def _leaf_frame(x: Array, y: Array) -> tuple[Array, Array, Array]:
    """Along-leaf t in [-1, 1], across offset from the midrib, and the taper factor."""
    t = x / _LEAF_L
    centre = _LEAF_BEND * (t * t - 0.5)
    taper = 1.0 - 0.14 * np.clip(t, -1.0, 1.0)  # widest towards the stalk (t < 0)
    return t, (y - centre) / taper, taper


def _leaf_body(x: Array, y: Array) -> Array:
    _, across, taper = _leaf_frame(x, y)
    r = (_LEAF_L**2 / _LEAF_W + _LEAF_W) / 2.0
    b = r - _LEAF_W
    d = np.maximum(_length(x, across - b), _length(x, across + b)) - r
    return d * taper


def _leaf(x: Array, y: Array) -> Array:
    # A short stalk out of the base (left end).
    stalk_y = _LEAF_BEND * 0.5
    sx = np.clip(x, -_LEAF_L - 0.35, -_LEAF_L + 0.2)
    stalk = _length(x - sx, y - stalk_y - 0.08 * (sx + _LEAF_L)) - 0.045
    return np.minimum(_leaf_body(x, y), stalk)


def _leaf_alpha(x: Array, y: Array, s: float) -> Array:
    """Leaf coverage, with the midrib and veins cut into alpha as lighter lines."""
    body = _cover(_leaf(x, y) / s)
    t, across, _ = _leaf_frame(x, y)
    inside = _cover(_leaf_body(x, y) / s)
    half_width = 0.012 + 0.018 * np.clip(1.0 - t, 0.0, 2.0) / 2.0  # midrib thins to the tip
    midrib = _cover((np.abs(across) - half_width) / s) * (t < 0.97)
    # Veins leave the midrib at an angle towards the tip and fade out before the margin.
    slope, spacing = 1.3, 0.42
    phase = (x - slope * np.abs(across)) / spacing + 0.35
    dist = np.abs(phase - np.round(phase)) * spacing / math.sqrt(1.0 + slope * slope)
    vein = _cover((dist - 0.011) / s) * (1.0 - _smoothstep(0.35, 0.7, np.abs(across)))
    vein *= _smoothstep(-0.95, -0.75, t) * (1.0 - _smoothstep(0.75, 0.95, t))
    lines = np.maximum(midrib * 0.62, vein * 0.48)
    return body * (1.0 - lines * inside)


def _blob_radius(theta: Array) -> Array:
    rng = np.random.default_rng(7213)
    r = np.ones_like(theta)
    for k in range(2, 8):
        amp, phase = rng.uniform(0.4, 1.0) * 0.16 / k, rng.uniform(0.0, 2.0 * math.pi)
        r = r + amp * np.cos(k * theta + phase)
    return r


def _soft_blob(x: Array, y: Array) -> Array:
    # Pseudo-distance used only for the bounding box: <= 0 where alpha > 0.
    return _length(x, y) / _blob_radius(np.arctan2(y, x)) - 1.0


def _soft_blob_alpha(x: Array, y: Array, s: float) -> Array:
    t = _length(x, y) / _blob_radius(np.arctan2(y, x))
    return 1.0 - _smoothstep(0.4, 1.0, t)


@dataclass(frozen=True)
class _Shape:
    sdf: Sdf
    alpha: Optional[Callable[[Array, Array, float], Array]] = None  # custom alpha from (x, y, s)
    extent: float = 3.0  # half side of the box searched for the outline


_SHAPES: dict[str, _Shape] = {
    "disc": _Shape(_disc),
    "ring": _Shape(_ring),
    "square": _Shape(_square),
    "triangle": _Shape(_rounded(_polygon_sdf(_regular_polygon(3, 1.0, 90.0)), 0.035)),
    # Stretched and turned, the two triangles give every isosceles and right triangle.
    "right_triangle": _Shape(_rounded(_polygon_sdf([(-1.0, -1.0), (1.0, -1.0), (-1.0, 1.0)]), 0.02)),
    "star": _Shape(_rounded(_polygon_sdf(_star_vertices(5, 1.0, 0.45)), 0.025)),
    "hexagon": _Shape(_rounded(_polygon_sdf(_regular_polygon(6, 1.0, 0.0)), 0.03)),
    "heart": _Shape(_heart),
    "crescent": _Shape(_crescent),
    "drop": _Shape(_drop),
    "leaf": _Shape(_leaf, _leaf_alpha),
    "soft_blob": _Shape(_soft_blob, _soft_blob_alpha),
}


@functools.lru_cache(maxsize=None)
def _bbox(name: str) -> tuple[float, float, float, float]:
    """Bounding box (x0, x1, y0, y1) of the shape's inside, found on a fine grid."""
    shape = _SHAPES[name]
    n = 1201
    c = np.linspace(-shape.extent, shape.extent, n)
    inside = shape.sdf(c[None, :], c[:, None]) <= 0.0
    cols = np.flatnonzero(inside.any(axis=0))
    rows = np.flatnonzero(inside.any(axis=1))
    step = c[1] - c[0]
    return (c[cols[0]] - step, c[cols[-1]] + step, c[rows[0]] - step, c[rows[-1]] + step)


def _paint_shape(name: str, w: int, h: int) -> Array:
    shape = _SHAPES[name]
    x0, x1, y0, y1 = _bbox(name)
    mx, my = max(1.0, MARGIN * w), max(1.0, MARGIN * h)
    s = max((x1 - x0) / (w - 2.0 * mx), (y1 - y0) / (h - 2.0 * my))  # shape units per texel
    x = (x0 + x1) / 2.0 + (np.arange(w) + 0.5 - w / 2.0)[None, :] * s
    y = (y0 + y1) / 2.0 - (np.arange(h) + 0.5 - h / 2.0)[:, None] * s
    x, y = np.broadcast_arrays(x, y)
    if shape.alpha is not None:
        return shape.alpha(x, y, s)
    return _cover(shape.sdf(x, y) / s)


# ----------------------------------------------------------------------------- strokes
@dataclass
class _Grid:
    """Stroke coordinates: u in [0, 1] along the content box, v in [-1, 1] across it."""

    u: Array  # [1, w]
    v: Array  # [h, 1]
    du: float  # u units per texel
    dv: float  # v units per texel
    w: int
    h: int


def _grid(w: int, h: int) -> _Grid:
    mx, my = max(1.0, MARGIN * w), max(1.0, MARGIN * h)
    du = 1.0 / (w - 2.0 * mx)
    dv = 2.0 / (h - 2.0 * my)
    u = ((np.arange(w) + 0.5 - mx) * du)[None, :]
    v = ((np.arange(h) + 0.5 - h / 2.0) * dv)[:, None]
    return _Grid(u, v, du, dv, w, h)


def _streak(v: Array, centre: Array | float, sigma: Array | float, dv: float) -> Array:
    """A bristle's Gaussian profile across the stroke, widened by the texel box (prefilter)
    with its ink kept, so sub-texel bristles dim instead of aliasing."""
    eff = np.sqrt(np.square(sigma) + dv * dv / 12.0)
    return (sigma / eff) * np.exp(-0.5 * np.square((v - centre) / eff))


def _span(u: Array, start: float, end: float, du: float, soft: float = 1.5) -> Array:
    """1 between ``start`` and ``end`` along the stroke, with ramps ``soft`` texels wide."""
    width = soft * du
    return np.clip((u - start) / width + 0.5, 0.0, 1.0) * np.clip((end - u) / width + 0.5, 0.0, 1.0)


def _box_edges(g: _Grid) -> Array:
    """Antialiased cut at the content box, so nothing reaches the transparent margin."""
    across = _cover((np.abs(g.v) - 1.0) / g.dv)
    along = _cover(np.maximum(-g.u, g.u - 1.0) / g.du)
    return across * along


def _ink(field: Array, gain: float) -> Array:
    """Soft saturation: overlapping bristles add up without flattening the streaks to 1."""
    return 1.0 - np.exp(-gain * field)


def _brush_flat(g: _Grid, rng: np.random.Generator) -> Array:
    n = 46
    spacing = 1.9 / n
    centres = np.linspace(-0.95, 0.95, n) + rng.uniform(-0.45, 0.45, n) * spacing
    sigmas = rng.uniform(0.35, 0.8, n) * spacing
    strength = rng.uniform(0.35, 1.0, n)
    starts = 0.005 + 0.05 * rng.uniform(size=n) ** 2
    ends = 1.0 - 0.22 * rng.uniform(size=n) ** 1.6
    freq = rng.uniform(1.0, 4.0, n)
    phase = rng.uniform(0.0, 1.0, n)
    depletion = rng.uniform(0.2, 0.6, n)
    field = np.zeros((g.h, g.w))
    for i in range(n):
        along = _span(g.u, starts[i], ends[i], g.du)
        along = along * (1.0 - depletion[i] * g.u**2) * (1.0 + 0.18 * np.sin(2 * math.pi * (freq[i] * g.u + phase[i])))
        field += strength[i] * _streak(g.v, centres[i], sigmas[i], g.dv) * along
    return _ink(field, 1.7) * _box_edges(g)


def _brush_round(g: _Grid, rng: np.random.Generator) -> Array:
    # Half-width: tapers to points at both ends, widest a third of the way along.
    uu = np.clip(g.u, 0.0, 1.0)
    width = (uu**0.55 * (1.0 - uu) ** 0.85) / (0.393**0.55 * 0.607**0.85)
    width = np.clip(width, 0.0, 1.0)
    n = 34
    spacing = 1.9 / n
    centres = np.linspace(-0.95, 0.95, n) + rng.uniform(-0.4, 0.4, n) * spacing
    sigmas = rng.uniform(0.35, 0.75, n) * spacing
    strength = rng.uniform(0.4, 1.0, n)
    # Outer bristles stop short of the tips; the centre ones make the points.
    reach = 1.0 - np.abs(np.linspace(-1.0, 1.0, n))
    starts = 0.01 + 0.05 * rng.uniform(size=n) * (1.0 - reach)
    ends = 1.0 - 0.01 - 0.12 * rng.uniform(size=n) ** 1.5 * (1.0 - 0.5 * reach)
    freq = rng.uniform(1.0, 3.0, n)
    phase = rng.uniform(0.0, 1.0, n)
    field = np.zeros((g.h, g.w))
    for i in range(n):
        along = _span(g.u, starts[i], ends[i], g.du)
        along = along * (1.0 + 0.15 * np.sin(2 * math.pi * (freq[i] * g.u + phase[i])))
        sigma = sigmas[i] * np.maximum(width, 0.05)
        field += strength[i] * _streak(g.v, centres[i] * width, sigma, g.dv) * along
    envelope = _cover((np.abs(g.v) - width) / g.dv)
    return _ink(field, 1.6) * envelope * _box_edges(g)


def _brush_dry(g: _Grid, rng: np.random.Generator) -> Array:
    n = 30
    spacing = 1.9 / n
    centres = np.linspace(-0.95, 0.95, n) + rng.uniform(-0.4, 0.4, n) * spacing
    sigmas = rng.uniform(0.25, 0.55, n) * spacing
    strength = rng.uniform(0.5, 1.0, n)
    starts = 0.005 + 0.06 * rng.uniform(size=n)
    ends = 1.0 - 0.3 * rng.uniform(size=n)
    # More of the paper shows through towards the end of the stroke, as the brush runs dry.
    threshold = 0.22 + 0.4 * np.clip(g.u, 0.0, 1.0) ** 1.3
    field = np.zeros((g.h, g.w))
    for i in range(n):
        breaks = _value_noise(rng, 7, 1, g.u, np.zeros_like(g.u))
        gaps = _smoothstep(-0.06, 0.06, breaks - threshold)
        along = _span(g.u, starts[i], ends[i], g.du) * gaps
        field += strength[i] * _streak(g.v, centres[i], sigmas[i], g.dv) * along
    # Paper tooth, in cells much longer than tall: the brush skips the paper's valleys.
    grain = _fbm(rng, 10, 20, g.u, (g.v + 1.0) / 2.0, g.w, g.h)
    tooth = _smoothstep(0.25, 0.45, grain)
    return _ink(field, 2.2) * tooth * _box_edges(g)


def _brush_fan(g: _Grid, rng: np.random.Generator) -> Array:
    # A few well-separated bristles that spread apart along the stroke.
    n = 15
    centres = np.linspace(-0.94, 0.94, n) + rng.uniform(-0.25, 0.25, n) * (1.8 / n)
    sigmas = rng.uniform(0.018, 0.035, n)
    strength = rng.uniform(0.55, 1.0, n)
    starts = 0.01 + 0.08 * rng.uniform(size=n)
    ends = 1.0 - 0.01 - 0.3 * rng.uniform(size=n) ** 1.3
    wobble_f = rng.uniform(0.6, 2.0, n)
    wobble_p = rng.uniform(0.0, 1.0, n)
    spread = 0.45 + 0.55 * np.clip(g.u, 0.0, 1.0) ** 0.8
    field = np.zeros((g.h, g.w))
    for i in range(n):
        centre = centres[i] * spread + 0.025 * np.sin(2 * math.pi * (wobble_f[i] * g.u + wobble_p[i]))
        along = _span(g.u, starts[i], ends[i], g.du, soft=3.0) * (1.0 - 0.45 * np.clip(g.u, 0.0, 1.0) ** 1.5)
        field += strength[i] * _streak(g.v, centre, sigmas[i], g.dv) * along
    return np.clip(field, 0.0, 1.0) * _box_edges(g)


def _brush_splatter(g: _Grid, rng: np.random.Generator) -> Array:
    # Shape units: x in [-a, a], y in [-1, 1] over the content box; a flick from the left.
    a = 0.5 * (g.w - 2.0 * max(1.0, MARGIN * g.w)) * g.dv
    x = (g.u - 0.5) * 2.0 * a
    y = g.v
    s = g.dv  # shape units per texel
    # Main splash: an irregular blob at the left end, droplets flung out to the right.
    bx = -a + 0.72
    theta = np.arctan2(y, x - bx)
    radius = 0.62 + 0.06 * np.cos(3 * theta + 1.0) + 0.05 * np.cos(5 * theta + 2.0) + 0.04 * np.cos(7 * theta)
    alpha = _cover((_length(x - bx, y) - radius) / s)
    for _ in range(70):
        t = rng.uniform() ** 1.4
        r = 0.025 + 0.2 * (1.0 - t) * rng.uniform() ** 2
        elong = 1.0 + 1.8 * t * rng.uniform()
        rx, ry = r * elong, r
        cx = np.clip(bx + (0.2 + 1.05 * t) * (a - bx) * rng.uniform(0.4, 1.0), -a + rx, a - rx)
        cy = np.clip((rng.uniform() * 2.0 - 1.0) * (0.95 - 0.1 * t), -1.0 + ry, 1.0 - ry)
        # IQ's cheap ellipse distance, evaluated only in the drop's own window.
        cols = np.flatnonzero(np.abs(x[0] - cx) <= rx + 2 * s)
        rows = np.flatnonzero(np.abs(y[:, 0] - cy) <= ry + 2 * s)
        if cols.size == 0 or rows.size == 0:
            continue
        px = x[:, cols] - cx
        py = y[rows, :] - cy
        k0 = _length(px / rx, py / ry)
        k1 = _length(px / rx**2, py / ry**2)
        d = k0 * (k0 - 1.0) / np.maximum(k1, 1e-12)
        window = alpha[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        np.maximum(window, _cover(d / s), out=window)
    return alpha * _box_edges(g)


def _pencil(g: _Grid, rng: np.random.Generator) -> Array:
    # A capsule in texel units (round ends), pressing harder in the middle.
    radius = 0.8 / g.dv
    x = g.u / g.du
    x_end = 1.0 / g.du
    cx = np.clip(x, radius, x_end - radius)
    envelope = _cover(_length(x - cx, g.v / g.dv) - radius)
    uu = np.clip(g.u, 0.0, 1.0)
    pressure = (0.7 + 0.3 * _value_noise(rng, 5, 1, g.u, np.zeros_like(g.u)))
    pressure = pressure * (0.6 + 0.4 * _smoothstep(0.0, 0.15, uu) * _smoothstep(1.0, 0.8, uu))
    # Graphite catches the paper tooth (fine grain) and leaves faint lines along the stroke.
    tooth = _fbm(rng, 64, 12, g.u, (g.v + 1.0) / 2.0, g.w, g.h, octaves=2)
    lines = _fbm(rng, 3, 24, g.u, (g.v + 1.0) / 2.0, g.w, g.h, octaves=2)
    grain = 0.6 * tooth + 0.4 * lines
    density = _smoothstep(0.3, 0.62, grain)
    edge_fade = 1.0 - 0.6 * _smoothstep(0.5, 1.0, np.abs(g.v) / 0.8)
    return (0.15 + 0.85 * density) * pressure * edge_fade * envelope * _box_edges(g)


@dataclass(frozen=True)
class _Stroke:
    paint: Callable[[_Grid, np.random.Generator], Array]
    aspect: float


_STROKES: dict[str, _Stroke] = {
    "brush_flat": _Stroke(_brush_flat, 4.0),
    "brush_round": _Stroke(_brush_round, 4.0),
    "brush_dry": _Stroke(_brush_dry, 4.0),
    "brush_fan": _Stroke(_brush_fan, 3.0),
    "brush_splatter": _Stroke(_brush_splatter, 2.0),
    "pencil": _Stroke(_pencil, 8.0),
}


# ----------------------------------------------------------------------------- public API
def builtin_names() -> list[str]:
    """Sorted names of every built-in procedural primitive."""
    return sorted([*_SHAPES, *_STROKES])


def _check_name(name: str) -> None:
    if name in _SHAPES or name in _STROKES:
        return
    names = builtin_names()
    close = difflib.get_close_matches(str(name), names, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise InputError(f"unknown built-in primitive {name!r}.{hint} Built-ins are: {', '.join(names)}")


def natural_aspect(name: str) -> float:
    """Width over height of the built-in's texture content (1.0 for a disc, 4.0 for brush_flat)."""
    _check_name(name)
    if name in _STROKES:
        return _STROKES[name].aspect
    x0, x1, y0, y1 = _bbox(name)
    return float((x1 - x0) / (y1 - y0))


def _dims(aspect: float, size: int) -> tuple[int, int]:
    """(w, h) with the longer side ``size``."""
    if aspect >= 1.0:
        return size, max(MIN_SIDE, int(round(size / aspect)))
    return max(MIN_SIDE, int(round(size * aspect))), size


def make_builtin(name: str, size: int = 128) -> np.ndarray:
    """Render the built-in primitive ``name`` as straight RGBA float32 ``[h, w, 4]`` in [0, 1].

    ``size`` is the longer side in texels (8 to 4096). RGB is white; the mark is in alpha.
    The same name and size give a bit-identical array on every run and machine.

    Raises:
        InputError: unknown name (with close matches and the full list) or size out of range.
    """
    _check_name(name)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise InputError(f"size must be an integer number of texels, got {size!r}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise InputError(f"size must be between {MIN_SIZE} and {MAX_SIZE} texels, got {size}")
    size = int(size)
    w, h = _dims(natural_aspect(name), size)
    if name in _SHAPES:
        alpha = _paint_shape(name, w, h)
    else:
        rng = np.random.default_rng(zlib.crc32(name.encode("utf-8")))
        alpha = _STROKES[name].paint(_grid(w, h), rng)
    # Quantise: identical bits even if a libm function differs in its last ulp.
    alpha = np.round(np.clip(alpha, 0.0, 1.0) * 65535.0) / 65535.0
    out = np.ones((h, w, 4), dtype=np.float32)
    out[..., 3] = alpha.astype(np.float32)
    return out
