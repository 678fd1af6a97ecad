"""Numeric constants of the rendering model.

Each value is defined once here and once in ``csrc/include/diffbmp/constants.h``;
``tests/test_constants.py`` checks that the two agree. ``docs/rendering.md`` explains
what each one means.
"""

import math

#: Side of the square screen tiles the native backends bin primitives into (pixels).
TILE_SIZE = 16

#: Offset from a pixel's integer index to its centre: pixel (i, j) sits at (j + 0.5, i + 0.5).
PIXEL_CENTER = 0.5

#: Upper bound on a primitive's per-pixel alpha; keeps 1 - alpha >= 0.01 so the backward
#: pass never divides by a number close to zero.
ALPHA_MAX = 0.99

#: A pixel stops accepting primitives once the transmittance in front of the next one is
#: below this value (its remaining contribution is at most this much).
T_MIN = 1e-4

#: Standard deviation (screen pixels) of the pixel prefilter that is always added to the
#: user's blur. 1/sqrt(12) is the deviation of a one-pixel box, so rendering at scale k and
#: box-downsampling by k keeps the same total softness as rendering at scale 1.
PIXEL_SIGMA = 1.0 / math.sqrt(12.0)

#: Slope of the logistic curve that approximates the normal CDF: Phi(x) ~ sigmoid(1.702 x).
LOGISTIC_K = 1.702

#: The circle's edge is tapered smoothly to zero between these many effective blur
#: deviations outside its outline (a C1 taper, so even the gradient has no jump).
CIRCLE_TAPER_START = 2.0
CIRCLE_TAPER_END = 4.0

#: Standard deviation of the Gaussian primitive in local units: the half-extent is 3 std.
GAUSSIAN_STD = 1.0 / 3.0

#: The Gaussian is tapered smoothly to zero between these many (blurred) deviations.
GAUSSIAN_TAPER_START = 2.5
GAUSSIAN_TAPER_END = 3.0

#: Blur of mip level i is MIP_BASE_SIGMA * 2**i texels of the base texture (i >= 1).
MIP_BASE_SIGMA = 0.5

#: Transparent texels stored around every pyramid level so blurred tails are kept.
MIP_PAD = 2

#: Most pyramid levels per axis (a 512-texel side has 10).
MAX_LEVELS = 10

#: Shape kinds of a bank entry.
KIND_TEXTURE = 0
KIND_CIRCLE = 1
KIND_GAUSSIAN = 2
