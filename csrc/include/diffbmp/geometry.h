// Per-primitive preparation (docs/rendering.md, sections 3-5): local frame, effective blur,
// texture level choice, support and screen bounding box, tile overlap test.
#pragma once

#include "common.h"
#include "constants.h"
#include "scene_inputs.h"

namespace diffbmp {

// One of the four pyramid levels a textured primitive blends (section 5.4).
template <typename T>
struct LevelRef {
  int offset;        // first texel of the level in the flat buffer
  int width;         // physical texels along x
  int height;        // physical texels along y
  T half_content_x;  // cw_i / 2: d tx / d u
  T half_content_y;  // ch_j / 2: d ty / d v
  T weight;          // blend weight of the level
};

// The constants of an analytic shape.
template <typename T>
struct AnalyticShape {
  T circle_slope;                   // LOGISTIC_K * rho / sigma_e (circle)
  T gauss_su, gauss_sv, gauss_amp;  // blurred deviations and amplitude (Gaussian)
};

// Everything a pixel needs to evaluate one primitive, computed once per primitive. A texture's
// levels and an analytic shape's constants share their storage: the record the GPU stages
// for every primitive of a tile stays small (176 bytes in float32, 304 in float64).
template <typename T>
struct PrimGeom {
  T mx, my;          // centre
  T cos_t, sin_t;    // rotation
  T sx, sy;          // half-extents
  T inv_sx, inv_sy;
  T eu, ev;          // support half-extents in local units (section 5.1)
  union {
    LevelRef<T> level[4];       // KIND_TEXTURE: the four pyramid levels it blends
    AnalyticShape<T> analytic;  // KIND_CIRCLE, KIND_GAUSSIAN
  };
  int kind;
  int x0, x1, y0, y1;  // inclusive pixel rectangle that may be covered; empty when x0 > x1
};

template <typename T>
DIFFBMP_HD inline T effective_sigma(T blur) {
  return fn::sqrt(blur * blur + T(PIXEL_SIGMA) * T(PIXEL_SIGMA));
}

// Section 5.4, level choice along one axis.
template <typename T>
DIFFBMP_HD inline void choose_levels(int size, int count, T scale, T sigma_e, int& level0, int& level1, T& fraction) {
  T level = fn::log2(sigma_e * T(size) / (T(2) * scale) / T(MIP_BASE_SIGMA));
  level = fn::min(fn::max(level, T(0)), T(count - 1));
  T floored = fn::floor(level);
  level0 = static_cast<int>(floored);
  level1 = level0 + 1 < count ? level0 + 1 : count - 1;
  fraction = level - floored;
}

// Content extent size / 2^level of a pyramid level, in its texels.
template <typename T>
DIFFBMP_HD inline T level_content(int size, int level) {
  return T(size) / T(1 << level);
}

// Section 5.4, support: local coordinate beyond which a level reads only zeros.
template <typename T>
DIFFBMP_HD inline T level_extent(int size, int level) {
  T content = level_content<T>(size, level);
  return T(2) * (fn::ceil(content) + T(MIP_PAD) + T(0.5)) / content - T(1);
}

template <typename T>
DIFFBMP_HD inline void cull(PrimGeom<T>& g) {
  g.x0 = g.y0 = 0;
  g.x1 = g.y1 = -1;
}

template <typename T>
DIFFBMP_HD inline bool is_culled(const PrimGeom<T>& g) {
  return g.x0 > g.x1 || g.y0 > g.y1;
}

// Half-widths (along x, along y) of the screen box of a support rectangle of half-extents
// (reach_u, reach_v) pixels rotated by (cos_t, sin_t); exactly rounded (common.h, mul_rn).
template <typename T>
DIFFBMP_HD inline void rotated_half_box(T cos_t, T sin_t, T reach_u, T reach_v, T& half_w, T& half_h) {
  const T ac = fn::abs(cos_t), as = fn::abs(sin_t);
  half_w = fn::dot2_rn(ac, reach_u, as, reach_v);
  half_h = fn::dot2_rn(as, reach_u, ac, reach_v);
}

// Primitive i of the call (s.entries: [E, 5] (kind, width, height, levels x, levels y);
// s.level_table: [E, MAX_LEVELS, MAX_LEVELS, 3]). A shape id outside the bank gives a culled
// primitive, so the kernels never read outside the tables; the host op reports it.
template <typename T>
DIFFBMP_HD inline PrimGeom<T> prepare_primitive(const SceneInputs<T>& s, int64_t i) {
  const T mx = s.means[2 * i], my = s.means[2 * i + 1], rotation = s.rotations[i];
  const T sx = s.scales[2 * i], sy = s.scales[2 * i + 1], sigma_e = s.sigma_e;
  const int entry = s.shape_ids[i];
  const int32_t *entries = s.entries, *level_table = s.level_table;
  const int height = s.height, width = s.width;
  PrimGeom<T> g;
  g.mx = mx;
  g.my = my;
  g.cos_t = fn::cos(rotation);
  g.sin_t = fn::sin(rotation);
  g.sx = sx;
  g.sy = sy;
  g.inv_sx = T(1) / sx;
  g.inv_sy = T(1) / sy;
  g.eu = g.ev = T(0);
  for (int l = 0; l < 4; ++l) g.level[l] = LevelRef<T>{0, 0, 0, T(0), T(0), T(0)};  // all of the union
  if (entry < 0 || entry >= s.num_entries) {
    g.kind = KIND_CIRCLE;
    cull(g);
    return g;
  }
  const int32_t* info = entries + 5 * entry;
  g.kind = info[0];

  if (g.kind == KIND_TEXTURE) {
    int tex_w = info[1], tex_h = info[2];
    int i[2], j[2];
    T fx, fy;
    choose_levels<T>(tex_w, info[3], sx, sigma_e, i[0], i[1], fx);
    choose_levels<T>(tex_h, info[4], sy, sigma_e, j[0], j[1], fy);
    const T wx[2] = {T(1) - fx, fx};
    const T wy[2] = {T(1) - fy, fy};
    for (int b = 0; b < 2; ++b) {
      for (int a = 0; a < 2; ++a) {
        const int32_t* lv = level_table + ((entry * MAX_LEVELS + i[a]) * MAX_LEVELS + j[b]) * 3;
        LevelRef<T>& ref = g.level[2 * b + a];
        ref.offset = lv[0];
        ref.width = lv[1];
        ref.height = lv[2];
        ref.half_content_x = level_content<T>(tex_w, i[a]) / T(2);
        ref.half_content_y = level_content<T>(tex_h, j[b]) / T(2);
        ref.weight = wx[a] * wy[b];
      }
    }
    g.eu = fn::max(level_extent<T>(tex_w, i[0]), level_extent<T>(tex_w, i[1]));
    g.ev = fn::max(level_extent<T>(tex_h, j[0]), level_extent<T>(tex_h, j[1]));
  } else if (g.kind == KIND_CIRCLE) {
    T rho = fn::sqrt(sx * sy);
    g.analytic.circle_slope = T(LOGISTIC_K) * rho / sigma_e;
    g.eu = g.ev = T(1) + T(CIRCLE_TAPER_END) * sigma_e / rho;
  } else {
    T ex = sigma_e / sx, ey = sigma_e / sy;
    AnalyticShape<T>& a = g.analytic;
    a.gauss_su = fn::sqrt(T(GAUSSIAN_STD) * T(GAUSSIAN_STD) + ex * ex);
    a.gauss_sv = fn::sqrt(T(GAUSSIAN_STD) * T(GAUSSIAN_STD) + ey * ey);
    a.gauss_amp = T(GAUSSIAN_STD) * T(GAUSSIAN_STD) / (a.gauss_su * a.gauss_sv);
    g.eu = T(GAUSSIAN_TAPER_END) * a.gauss_su;
    g.ev = T(GAUSSIAN_TAPER_END) * a.gauss_sv;
  }

  // Screen bounding box of the rotated support rectangle (section 5.1), widened by one
  // pixel so float rounding can never drop a pixel the per-pixel test would accept.
  T half_w, half_h;
  rotated_half_box(g.cos_t, g.sin_t, fn::mul_rn(g.eu, sx), fn::mul_rn(g.ev, sy), half_w, half_h);
  T left = mx - half_w - T(PIXEL_CENTER), right = mx + half_w - T(PIXEL_CENTER);
  T top = my - half_h - T(PIXEL_CENTER), bottom = my + half_h - T(PIXEL_CENTER);
  if (!(right >= T(-1) && left <= T(width) && bottom >= T(-1) && top <= T(height))) {
    cull(g);  // off canvas (or not finite)
    return g;
  }
  g.x0 = fn::max(0, static_cast<int>(fn::ceil(fn::max(left, T(-2)))) - 1);
  g.x1 = fn::min(width - 1, static_cast<int>(fn::floor(fn::min(right, T(width + 1)))) + 1);
  g.y0 = fn::max(0, static_cast<int>(fn::ceil(fn::max(top, T(-2)))) - 1);
  g.y1 = fn::min(height - 1, static_cast<int>(fn::floor(fn::min(bottom, T(height + 1)))) + 1);
  return g;
}

// Separating-axis test of a tile's pixel centres (widened by one pixel) against the primitive's
// rotated support rectangle; the screen axes are already covered by the bounding box.
// Binning evaluates it twice per (primitive, tile), once to count and once to write: every
// product and sum is exactly rounded (common.h, mul_rn) so both always decide alike.
template <typename T>
DIFFBMP_HD inline bool tile_touches(const PrimGeom<T>& g, int tile_x, int tile_y, int height, int width) {
  const int px0 = tile_x * TILE_SIZE, py0 = tile_y * TILE_SIZE;
  const int px1 = fn::min(px0 + TILE_SIZE, width) - 1, py1 = fn::min(py0 + TILE_SIZE, height) - 1;
  // Tile centre minus the primitive's centre, and the tile's half-size plus one pixel: halves
  // of integers, exact in float (the centre of pixel x is x + 1/2).
  static_assert(PIXEL_CENTER == 0.5, "tile_touches places pixel centres at x + 1/2");
  const T cx = fn::add_rn(fn::mul_rn(T(px0 + px1 + 1), T(0.5)), -g.mx);
  const T cy = fn::add_rn(fn::mul_rn(T(py0 + py1 + 1), T(0.5)), -g.my);
  const T hx = fn::mul_rn(T(px1 - px0 + 2), T(0.5)), hy = fn::mul_rn(T(py1 - py0 + 2), T(0.5));
  const T along_u = fn::abs(fn::dot2_rn(g.cos_t, cx, g.sin_t, cy));
  const T along_v = fn::abs(fn::dot2_rn(g.cos_t, cy, -g.sin_t, cx));
  T tile_u, tile_v;  // the tile's reach along the primitive's axes
  rotated_half_box(g.cos_t, g.sin_t, hx, hy, tile_u, tile_v);
  return along_u <= fn::add_rn(fn::mul_rn(g.eu, g.sx), tile_u) && along_v <= fn::add_rn(fn::mul_rn(g.ev, g.sy), tile_v);
}

// Section 3: local coordinates of the pixel centre (px, py).
template <typename T>
DIFFBMP_HD inline void local_uv(const PrimGeom<T>& g, T px, T py, T& u, T& v) {
  T dx = px - g.mx, dy = py - g.my;
  u = (g.cos_t * dx + g.sin_t * dy) * g.inv_sx;
  v = (-g.sin_t * dx + g.cos_t * dy) * g.inv_sy;
}

template <typename T>
DIFFBMP_HD inline bool inside_support(const PrimGeom<T>& g, T u, T v) {
  return fn::abs(u) < g.eu && fn::abs(v) < g.ev;
}

}  // namespace diffbmp
