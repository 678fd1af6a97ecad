"""Radial gradients that draw the model's analytic shapes (docs/rendering.md, 5.2 and 5.3) in SVG.

A circle's soft edge and a Gaussian's bell are functions of the distance from the centre
only, so a ``<radialGradient>`` with piecewise-linear stops reproduces them; the stops are
the fewest that keep the error below :data:`STOP_TOLERANCE` in alpha.
"""

from __future__ import annotations

import functools

import numpy as np

from ..constants import (
    CIRCLE_TAPER_END,
    CIRCLE_TAPER_START,
    GAUSSIAN_TAPER_END,
    GAUSSIAN_TAPER_START,
    LOGISTIC_K,
)

__all__ = ["STOP_TOLERANCE", "circle_profile", "gaussian_profile", "circle_stops", "gaussian_stops", "radial_gradient"]

#: Largest error of a gradient's piecewise-linear profile, in alpha.
STOP_TOLERANCE = 0.5 / 255


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


def circle_profile(d: np.ndarray) -> np.ndarray:
    """Circle coverage at ``d`` effective deviations outside its outline (section 5.2)."""
    z = -LOGISTIC_K * d
    span = LOGISTIC_K * (CIRCLE_TAPER_END - CIRCLE_TAPER_START)
    return 1.0 / (1.0 + np.exp(-z)) * _smoothstep((z + LOGISTIC_K * CIRCLE_TAPER_END) / span)


def gaussian_profile(t: np.ndarray) -> np.ndarray:
    """Unit-peak Gaussian coverage at ``t`` = distance over the support radius (section 5.3)."""
    q = (t * GAUSSIAN_TAPER_END) ** 2
    end, start = GAUSSIAN_TAPER_END**2, GAUSSIAN_TAPER_START**2
    return np.exp(-q / 2.0) * _smoothstep((end - q) / (end - start))


@functools.lru_cache(maxsize=None)
def circle_stops() -> np.ndarray:
    """Distances ``d`` (deviations from the outline) where a circle's gradient needs stops."""
    d = np.linspace(-CIRCLE_TAPER_END, CIRCLE_TAPER_END, 641)
    return d[_fewest_stops(d, circle_profile(d), STOP_TOLERANCE)]


@functools.lru_cache(maxsize=None)
def gaussian_stops() -> np.ndarray:
    """Distances ``t`` (fractions of the support radius) where a Gaussian's gradient needs stops."""
    t = np.linspace(0.0, 1.0, 801)
    return t[_fewest_stops(t, gaussian_profile(t), STOP_TOLERANCE)]


def _f(value: float, decimals: int = 4) -> str:
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "", "-") else text


def radial_gradient(gid: str, colour: str, offsets: np.ndarray, alphas: np.ndarray, rx: float, ry: float) -> str:
    """A ``<radialGradient>`` over the ellipse ``rx, ry`` centred on the origin of the user space
    of the element that uses it: ``offsets`` in [0, 1] along the radius, ``alphas`` the stop
    opacities of ``colour``.

    The gradient is in ``userSpaceOnUse`` units, with the ellipse's radii as its transform:
    some viewers (librsvg) stretch an ``objectBoundingBox`` gradient over the axis-aligned box
    of the rotated ellipse instead of the ellipse's own box.
    """
    stops = "".join(f'<stop offset="{_f(t)}" stop-color="{colour}" stop-opacity="{_f(a)}"/>' for t, a in zip(offsets, alphas))
    return (
        f'<radialGradient id="{gid}" gradientUnits="userSpaceOnUse" cx="0" cy="0" r="1" '
        f'gradientTransform="scale({rx:.6g} {ry:.6g})">{stops}</radialGradient>'
    )
