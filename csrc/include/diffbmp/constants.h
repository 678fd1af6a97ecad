// Numeric constants of the rendering model (see docs/rendering.md).
// Mirrored in diffbmp/constants.py; tests/test_constants.py checks that they agree.
#pragma once

namespace diffbmp {

constexpr int TILE_SIZE = 16;
constexpr double PIXEL_CENTER = 0.5;
constexpr double ALPHA_MAX = 0.99;
constexpr double T_MIN = 1e-4;
constexpr double PIXEL_SIGMA = 0.28867513459481287;  // 1 / sqrt(12)
constexpr double LOGISTIC_K = 1.702;
constexpr double CIRCLE_TAPER_START = 2.0;
constexpr double CIRCLE_TAPER_END = 4.0;
constexpr double GAUSSIAN_STD = 0.33333333333333333;  // 1 / 3
constexpr double GAUSSIAN_TAPER_START = 2.5;
constexpr double GAUSSIAN_TAPER_END = 3.0;
constexpr double MIP_BASE_SIGMA = 0.5;
constexpr int MIP_PAD = 2;
constexpr int MAX_LEVELS = 10;

constexpr int KIND_TEXTURE = 0;
constexpr int KIND_CIRCLE = 1;
constexpr int KIND_GAUSSIAN = 2;

}  // namespace diffbmp
