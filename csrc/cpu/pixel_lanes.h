// The per-pair mathematics of csrc/include/diffbmp (shapes.h, pixel.h) over a vector of pixel
// lanes: the same operations in the same order, lane by lane, so the forward values equal the
// scalar code's bit for bit; the backward sums a pair's gradient per lane, then over the lanes,
// so its gradients differ from the scalar order by rounding only. Lanes outside `live` are
// computed (on whatever they hold) and then discarded by selection, never by multiplication,
// so nothing they compute, infinities included, reaches a result.
#pragma once

#include "diffbmp/geometry.h"
#include "diffbmp/pixel.h"
#include "diffbmp/shapes.h"
#include "lanes.h"

namespace diffbmp {
namespace cpu {

// Coverage, premultiplied colour and, for the backward pass, their derivatives at (u, v).
template <typename T>
struct SampleLanes {
  Vec<T> cov, p[3];
  Vec<T> dcov_du, dcov_dv, dp_du[3], dp_dv[3];
  Vec<T> dcov_dsx, dcov_dsy;
};

#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define DIFFBMP_LANES_TRANSPOSE 1
#endif
#endif

// The four channels of the texels at (ix + dx, iy + dy), one per lane, zero outside the level
// or outside `live` (shapes.h, fetch_texel). Each texel is one 16-byte (float) or 32-byte
// (double) load; the lanes' texels are then transposed into channel vectors by shuffles.
alignas(32) static const double ZERO_TEXEL[4] = {0.0, 0.0, 0.0, 0.0};

template <typename T>
DIFFBMP_LANES_INLINE const T* texel_or_zero(const T* texels, const LevelRef<T>& lv, int x, int y, bool live) {
  const bool inside = live && x >= 0 && x < lv.width && y >= 0 && y < lv.height;
  return inside ? texels + 4 * (int64_t(lv.offset) + int64_t(y) * lv.width + x) : reinterpret_cast<const T*>(ZERO_TEXEL);
}

#ifdef DIFFBMP_LANES_TRANSPOSE
DIFFBMP_LANES_INLINE void gather_texels(const float* texels, const LevelRef<float>& lv, const Mask<float>& ix,
                                        const Mask<float>& iy, int dx, int dy, const Mask<float>& live,
                                        Vec<float> out[4]) {
  typedef float Texel __attribute__((vector_size(16)));
  Texel t[8];
  for (int l = 0; l < 8; ++l) memcpy(&t[l], texel_or_zero(texels, lv, int(ix[l]) + dx, int(iy[l]) + dy, live[l] != 0), 16);
  // Rows of two texels, then channel pairs of four lanes, then the channels of all eight.
  const Vec<float> r0 = __builtin_shufflevector(t[0], t[1], 0, 1, 2, 3, 4, 5, 6, 7);
  const Vec<float> r1 = __builtin_shufflevector(t[2], t[3], 0, 1, 2, 3, 4, 5, 6, 7);
  const Vec<float> r2 = __builtin_shufflevector(t[4], t[5], 0, 1, 2, 3, 4, 5, 6, 7);
  const Vec<float> r3 = __builtin_shufflevector(t[6], t[7], 0, 1, 2, 3, 4, 5, 6, 7);
  const Vec<float> a0 = __builtin_shufflevector(r0, r1, 0, 4, 8, 12, 1, 5, 9, 13);
  const Vec<float> a1 = __builtin_shufflevector(r0, r1, 2, 6, 10, 14, 3, 7, 11, 15);
  const Vec<float> b0 = __builtin_shufflevector(r2, r3, 0, 4, 8, 12, 1, 5, 9, 13);
  const Vec<float> b1 = __builtin_shufflevector(r2, r3, 2, 6, 10, 14, 3, 7, 11, 15);
  out[0] = __builtin_shufflevector(a0, b0, 0, 1, 2, 3, 8, 9, 10, 11);
  out[1] = __builtin_shufflevector(a0, b0, 4, 5, 6, 7, 12, 13, 14, 15);
  out[2] = __builtin_shufflevector(a1, b1, 0, 1, 2, 3, 8, 9, 10, 11);
  out[3] = __builtin_shufflevector(a1, b1, 4, 5, 6, 7, 12, 13, 14, 15);
}

DIFFBMP_LANES_INLINE void gather_texels(const double* texels, const LevelRef<double>& lv, const Mask<double>& ix,
                                        const Mask<double>& iy, int dx, int dy, const Mask<double>& live,
                                        Vec<double> out[4]) {
  Vec<double> t[4];
  for (int l = 0; l < 4; ++l) memcpy(&t[l], texel_or_zero(texels, lv, int(ix[l]) + dx, int(iy[l]) + dy, live[l] != 0), 32);
  const Vec<double> a0 = __builtin_shufflevector(t[0], t[1], 0, 4, 1, 5);
  const Vec<double> a1 = __builtin_shufflevector(t[0], t[1], 2, 6, 3, 7);
  const Vec<double> b0 = __builtin_shufflevector(t[2], t[3], 0, 4, 1, 5);
  const Vec<double> b1 = __builtin_shufflevector(t[2], t[3], 2, 6, 3, 7);
  out[0] = __builtin_shufflevector(a0, b0, 0, 1, 4, 5);
  out[1] = __builtin_shufflevector(a0, b0, 2, 3, 6, 7);
  out[2] = __builtin_shufflevector(a1, b1, 0, 1, 4, 5);
  out[3] = __builtin_shufflevector(a1, b1, 2, 3, 6, 7);
}
#else
// Without shuffles: the texels' channels are written into the lanes one by one.
template <typename T>
DIFFBMP_LANES_INLINE void gather_texels(const T* texels, const LevelRef<T>& lv, const Mask<T>& ix, const Mask<T>& iy,
                                        int dx, int dy, const Mask<T>& live, Vec<T> out[4]) {
  for (int l = 0; l < lane_count<T>(); ++l) {
    const T* p = texel_or_zero(texels, lv, int(ix[l]) + dx, int(iy[l]) + dy, live[l] != 0);
    for (int c = 0; c < 4; ++c) out[c][l] = p[c];
  }
}
#endif

// The texels at (ix, iy + dy) and (ix + 1, iy + dy) of every lane, as `left` and `right`
// channel vectors (zero outside the level or outside `live`, as texel by texel).
#ifdef DIFFBMP_LANES_TRANSPOSE
// float: a lane whose two texels both lie inside the level (all but those at the level's
// border) loads them with one 32-byte load, and one 8x8 transpose of shuffles makes the
// channel vectors: half the loads and bounds tests of fetching the texels one at a time.
DIFFBMP_LANES_INLINE void gather_texel_pairs(const float* texels, const LevelRef<float>& lv, const Mask<float>& ix,
                                             const Mask<float>& iy, int dy, const Mask<float>& live,
                                             Vec<float> left[4], Vec<float> right[4]) {
  Vec<float> t[8];  // lane l: the left texel's RGBA, then the right one's
  for (int l = 0; l < 8; ++l) {
    const int x = int(ix[l]), y = int(iy[l]) + dy;
    const bool row = live[l] != 0 && y >= 0 && y < lv.height;
    if (row && x >= 0 && x + 1 < lv.width) {
      memcpy(&t[l], texels + 4 * (int64_t(lv.offset) + int64_t(y) * lv.width + x), 32);
    } else {
      memcpy(&t[l], texel_or_zero(texels, lv, x, y, row), 16);
      memcpy(reinterpret_cast<char*>(&t[l]) + 16, texel_or_zero(texels, lv, x + 1, y, row), 16);
    }
  }
  // Lane pairs, then lane quads, then all eight lanes of each of the eight channels.
  Vec<float> a[8], b[8];
  for (int p = 0; p < 4; ++p) {
    a[p] = __builtin_shufflevector(t[2 * p], t[2 * p + 1], 0, 8, 1, 9, 2, 10, 3, 11);      // channels 0-3
    a[4 + p] = __builtin_shufflevector(t[2 * p], t[2 * p + 1], 4, 12, 5, 13, 6, 14, 7, 15);  // channels 4-7
  }
  for (int h = 0; h < 2; ++h) {
    for (int q = 0; q < 2; ++q) {
      const Vec<float>& lo = a[4 * h + 2 * q];
      const Vec<float>& hi = a[4 * h + 2 * q + 1];
      b[4 * h + 2 * q] = __builtin_shufflevector(lo, hi, 0, 1, 8, 9, 2, 3, 10, 11);       // 2 channels x 4 lanes
      b[4 * h + 2 * q + 1] = __builtin_shufflevector(lo, hi, 4, 5, 12, 13, 6, 7, 14, 15);
    }
  }
  Vec<float>* out[8] = {&left[0], &left[1], &left[2], &left[3], &right[0], &right[1], &right[2], &right[3]};
  for (int h = 0; h < 2; ++h) {
    for (int k = 0; k < 2; ++k) {
      const Vec<float>& first = b[4 * h + k];   // lanes 0-3 of channels 4h + 2k, 4h + 2k + 1
      const Vec<float>& second = b[4 * h + 2 + k];  // lanes 4-7 of the same channels
      *out[4 * h + 2 * k] = __builtin_shufflevector(first, second, 0, 1, 2, 3, 8, 9, 10, 11);
      *out[4 * h + 2 * k + 1] = __builtin_shufflevector(first, second, 4, 5, 6, 7, 12, 13, 14, 15);
    }
  }
}
#endif

template <typename T>
DIFFBMP_LANES_INLINE void gather_texel_pairs(const T* texels, const LevelRef<T>& lv, const Mask<T>& ix, const Mask<T>& iy,
                                             int dy, const Mask<T>& live, Vec<T> left[4], Vec<T> right[4]) {
  gather_texels(texels, lv, ix, iy, 0, dy, live, left);
  gather_texels(texels, lv, ix, iy, 1, dy, live, right);
}

// Bilinear RGBA of one level (shapes.h, bilinear_level) for every lane in `live`.
template <typename T, bool WithGrad>
DIFFBMP_LANES_INLINE void bilinear_level_lanes(const T* texels, const LevelRef<T>& lv, const Vec<T>& u, const Vec<T>& v,
                                               const Mask<T>& live, Vec<T> value[4], Vec<T> d_du[4], Vec<T> d_dv[4]) {
  if (lv.weight == T(0)) return;
  const Vec<T> tx = (u + T(1)) * lv.half_content_x + T(MIP_PAD) - T(0.5);
  const Vec<T> ty = (v + T(1)) * lv.half_content_y + T(MIP_PAD) - T(0.5);
  const Vec<T> fx0 = vfloor<T>(tx), fy0 = vfloor<T>(ty);
  const Vec<T> ax = tx - fx0, ay = ty - fy0;
  const Mask<T> ix = __builtin_convertvector(fx0, Mask<T>), iy = __builtin_convertvector(fy0, Mask<T>);
  Vec<T> t00[4], t10[4], t01[4], t11[4];
  gather_texel_pairs(texels, lv, ix, iy, 0, live, t00, t10);
  gather_texel_pairs(texels, lv, ix, iy, 1, live, t01, t11);
  const T w = lv.weight;
  for (int c = 0; c < 4; ++c) {
    const Vec<T> top = t00[c] + (t10[c] - t00[c]) * ax;
    const Vec<T> bottom = t01[c] + (t11[c] - t01[c]) * ax;
    value[c] += w * (top + (bottom - top) * ay);
    if (WithGrad) {
      const Vec<T> d_tx = (t10[c] - t00[c]) * (T(1) - ay) + (t11[c] - t01[c]) * ay;
      const Vec<T> d_ty = bottom - top;
      d_du[c] += w * d_tx * lv.half_content_x;
      d_dv[c] += w * d_ty * lv.half_content_y;
    }
  }
}

// smoothstep of shapes.h: the C1 taper and its derivative.
template <typename T>
DIFFBMP_LANES_INLINE Vec<T> smoothstep_lanes(Vec<T> t, Vec<T>& d_dt) {
  t = vmin<T>(vmax<T>(t, splat<T>(T(0))), splat<T>(T(1)));
  d_dt = T(6) * t * (T(1) - t);
  return t * t * (T(3) - T(2) * t);
}

template <typename T>
DIFFBMP_LANES_INLINE Vec<T> sigmoid_lanes(const Vec<T>& z) {
  return T(1) / (T(1) + vexp(-z));
}

template <typename T>
DIFFBMP_LANES_INLINE Vec<T> gaussian_q_lanes(const PrimGeom<T>& g, const Vec<T>& u, const Vec<T>& v) {
  return u * u / (g.analytic.gauss_su * g.analytic.gauss_su) + v * v / (g.analytic.gauss_sv * g.analytic.gauss_sv);
}

// shapes.h, shape_sample (WithGrad false: cov and p only) and shape_sample_grad (true). Lanes
// outside `live` may hold anything.
template <typename T, bool WithGrad>
DIFFBMP_LANES_INLINE SampleLanes<T> sample_lanes(const PrimGeom<T>& g, const T* texels, const Vec<T>& u, const Vec<T>& v,
                                   const Mask<T>& live, T sigma_e) {
  SampleLanes<T> s;
  const Vec<T> zero{};
  s.dcov_dsx = s.dcov_dsy = zero;
  if (g.kind == KIND_TEXTURE) {
    Vec<T> value[4], d_du[4], d_dv[4];
    for (int c = 0; c < 4; ++c) value[c] = d_du[c] = d_dv[c] = zero;
    for (int l = 0; l < 4; ++l) bilinear_level_lanes<T, WithGrad>(texels, g.level[l], u, v, live, value, d_du, d_dv);
    s.cov = value[3];
    s.dcov_du = d_du[3];
    s.dcov_dv = d_dv[3];
    for (int c = 0; c < 3; ++c) {
      s.p[c] = value[c];
      s.dp_du[c] = d_du[c];
      s.dp_dv[c] = d_dv[c];
    }
    return s;
  }
  if (g.kind == KIND_CIRCLE) {
    const Vec<T> r2 = u * u + v * v;
    const Mask<T> inside = r2 < g.eu * g.eu;  // beyond eu the taper is zero (and so is its slope)
    const T width = T(LOGISTIC_K) * (T(CIRCLE_TAPER_END) - T(CIRCLE_TAPER_START));
    const T dt_dz = T(1) / width;
    const T slope = g.analytic.circle_slope;
    const Vec<T> r = vsqrt<T>(r2);
    const Vec<T> z = (T(1) - r) * slope;
    const Vec<T> sig = sigmoid_lanes<T>(z);
    Vec<T> dw_dt;
    const Vec<T> w = smoothstep_lanes<T>((z + T(LOGISTIC_K) * T(CIRCLE_TAPER_END)) / width, dw_dt);
    s.cov = zero_unless<T>(inside, sig * w);
    if (WithGrad) {
      const Vec<T> dcov_dz = sig * (T(1) - sig) * w + sig * dw_dt * dt_dz;
      const Vec<T> inv_r = select<T>(r > T(0), T(1) / r, zero);
      s.dcov_du = zero_unless<T>(inside, -dcov_dz * slope * u * inv_r);
      s.dcov_dv = zero_unless<T>(inside, -dcov_dz * slope * v * inv_r);
      s.dcov_dsx = zero_unless<T>(inside, dcov_dz * z * T(0.5) * g.inv_sx);
      s.dcov_dsy = zero_unless<T>(inside, dcov_dz * z * T(0.5) * g.inv_sy);
    }
  } else {
    const T su = g.analytic.gauss_su, sv = g.analytic.gauss_sv;
    const T end = T(GAUSSIAN_TAPER_END) * T(GAUSSIAN_TAPER_END);
    const T width = end - T(GAUSSIAN_TAPER_START) * T(GAUSSIAN_TAPER_START);
    const T dt_dq = T(-1) / width;
    const Vec<T> q = gaussian_q_lanes<T>(g, u, v);
    const Mask<T> inside = q < end;
    Vec<T> dw_dt;
    const Vec<T> w = smoothstep_lanes<T>((end - q) / width, dw_dt);
    const Vec<T> peak = g.analytic.gauss_amp * vexp(T(-0.5) * q);
    const Vec<T> cov = peak * w;
    s.cov = zero_unless<T>(inside, cov);
    if (WithGrad) {
      const Vec<T> dcov_dq = peak * (T(-0.5) * w + dw_dt * dt_dq);
      s.dcov_du = zero_unless<T>(inside, dcov_dq * T(2) * u / (su * su));
      s.dcov_dv = zero_unless<T>(inside, dcov_dq * T(2) * v / (sv * sv));
      const T ex = sigma_e * g.inv_sx, ey = sigma_e * g.inv_sy;
      const T dsu_dsx = -(ex * ex * g.inv_sx) / su;
      const T dsv_dsy = -(ey * ey * g.inv_sy) / sv;
      s.dcov_dsx = zero_unless<T>(inside, (-cov / su - dcov_dq * T(2) * u * u / (su * su * su)) * dsu_dsx);
      s.dcov_dsy = zero_unless<T>(inside, (-cov / sv - dcov_dq * T(2) * v * v / (sv * sv * sv)) * dsv_dsy);
    }
  }
  for (int c = 0; c < 3; ++c) {
    s.p[c] = s.cov;
    if (WithGrad) {
      s.dp_du[c] = s.dcov_du;
      s.dp_dv[c] = s.dcov_dv;
    }
  }
  return s;
}

// Local coordinates (geometry.h, local_uv) of the pixel centres px of one row at height py.
template <typename T>
DIFFBMP_LANES_INLINE void local_uv_lanes(const PrimGeom<T>& g, const Vec<T>& px, T py, Vec<T>& u, Vec<T>& v) {
  const Vec<T> dx = px - g.mx;
  const T dy = py - g.my;
  u = (g.cos_t * dx + g.sin_t * dy) * g.inv_sx;
  v = (-g.sin_t * dx + g.cos_t * dy) * g.inv_sy;
}

// Narrows [x0, x1] to the pixels of row py whose centres can lie in the support rectangle
// (|u| < eu, |v| < ev): each bound is linear in the pixel's x, so the row meets the rectangle
// in one interval. Widened by a pixel, so rounding never drops one the per-pixel test keeps;
// the per-pixel test still decides. A rotated primitive's screen box holds up to twice its
// support, and this skips the vectors of a row that lie wholly outside it.
template <typename T>
DIFFBMP_LANES_INLINE void support_span(const PrimGeom<T>& g, T py, int& x0, int& x1) {
  const T dy = py - g.my;
  T lo = -T(1e30), hi = T(1e30);  // bounds on dx = px - mx
  const T reach_u = g.eu * g.sx, reach_v = g.ev * g.sy;
  // |cos dx + sin dy| < reach_u and |-sin dx + cos dy| < reach_v
  const T slopes[2] = {g.cos_t, -g.sin_t}, offsets[2] = {g.sin_t * dy, g.cos_t * dy}, reaches[2] = {reach_u, reach_v};
  for (int k = 0; k < 2; ++k) {
    const T a = slopes[k], b = offsets[k], r = reaches[k];
    if (fn::abs(a) < T(1e-6)) {
      if (!(fn::abs(b) < r + T(1))) {  // the row misses this band (with a pixel to spare)
        x1 = x0 - 1;
        return;
      }
      continue;
    }
    T p = (-r - b) / a, q = (r - b) / a;
    if (p > q) {
      const T t = p;
      p = q;
      q = t;
    }
    lo = fn::max(lo, p);
    hi = fn::min(hi, q);
  }
  if (!(lo <= hi)) {  // empty, or not a number: keep the whole range then
    if (lo > hi) x1 = x0 - 1;
    return;
  }
  const T first = fn::floor(lo + g.mx - T(PIXEL_CENTER)) - T(1), last = fn::ceil(hi + g.mx - T(PIXEL_CENTER)) + T(1);
  if (first > T(x0)) x0 = first > T(x1) ? x1 + 1 : int(first);
  if (last < T(x1)) x1 = last < T(x0) ? x0 - 1 : int(last);
}

template <typename T>
DIFFBMP_LANES_INLINE Mask<T> inside_support_lanes(const PrimGeom<T>& g, const Vec<T>& u, const Vec<T>& v) {
  return (vabs<T>(u) < g.eu) & (vabs<T>(v) < g.ev);
}

// pixel.h, pair_value: alpha and colour of the pair in every lane (inv_cov: 1 / cov where a
// texture's cov > 0, else 0; analytic shapes need none).
template <typename T>
DIFFBMP_LANES_INLINE void pair_value_lanes(const PrimGeom<T>& g, const PrimLook<T>& look, const SampleLanes<T>& s, Vec<T>& alpha,
                             Vec<T> col[3], Vec<T>& inv_cov) {
  alpha = vmin<T>(look.opacity * s.cov, splat<T>(T(ALPHA_MAX)));
  if (g.kind != KIND_TEXTURE) {  // own colour 1: one colour for every lane, and no 1 / cov
    inv_cov = Vec<T>{};
    for (int c = 0; c < 3; ++c) col[c] = splat<T>((T(1) - look.beta) * look.color[c] + look.beta * T(1));
    return;
  }
  inv_cov = select<T>(s.cov > T(0), T(1) / s.cov, Vec<T>{});
  for (int c = 0; c < 3; ++c) col[c] = (T(1) - look.beta) * look.color[c] + look.beta * (s.p[c] * inv_cov);
}

// Texture sampling is bound by memory latency (a bank's pyramids outgrow the caches): before a
// pair is evaluated, the cache lines of the next pair's texels in this tile are requested, so
// their misses overlap with the current pair's work. The footprint is the texel box of the
// rectangle's four corners in each level the primitive blends; at most `budget` lines.
template <typename T>
DIFFBMP_LANES_INLINE void prefetch_texels(const PrimGeom<T>& g, const T* texels, int x0, int x1, int y0, int y1, int budget = 96) {
  if (g.kind != KIND_TEXTURE || x0 > x1 || y0 > y1) return;
  T u_lo = T(0), u_hi = T(0), v_lo = T(0), v_hi = T(0);
  for (int corner = 0; corner < 4; ++corner) {
    T u, v;
    local_uv(g, T(corner & 1 ? x1 : x0) + T(PIXEL_CENTER), T(corner & 2 ? y1 : y0) + T(PIXEL_CENTER), u, v);
    u_lo = corner ? fn::min(u_lo, u) : u;
    u_hi = corner ? fn::max(u_hi, u) : u;
    v_lo = corner ? fn::min(v_lo, v) : v;
    v_hi = corner ? fn::max(v_hi, v) : v;
  }
  u_lo = fn::max(u_lo, -g.eu);
  u_hi = fn::min(u_hi, g.eu);
  v_lo = fn::max(v_lo, -g.ev);
  v_hi = fn::min(v_hi, g.ev);
  if (u_lo > u_hi || v_lo > v_hi) return;
  for (int l = 0; l < 4; ++l) {
    const LevelRef<T>& lv = g.level[l];
    if (lv.weight == T(0)) continue;
    const int tx0 = fn::max(0, int(fn::floor((u_lo + T(1)) * lv.half_content_x + T(MIP_PAD) - T(0.5))));
    const int tx1 = fn::min(lv.width - 1, int(fn::floor((u_hi + T(1)) * lv.half_content_x + T(MIP_PAD) - T(0.5))) + 1);
    const int ty0 = fn::max(0, int(fn::floor((v_lo + T(1)) * lv.half_content_y + T(MIP_PAD) - T(0.5))));
    const int ty1 = fn::min(lv.height - 1, int(fn::floor((v_hi + T(1)) * lv.half_content_y + T(MIP_PAD) - T(0.5))) + 1);
    if (tx0 > tx1 || ty0 > ty1) continue;
    const int64_t row_bytes = int64_t(tx1 - tx0 + 1) * 4 * int64_t(sizeof(T));
    for (int y = ty0; y <= ty1; ++y) {
      const char* row = reinterpret_cast<const char*>(texels + 4 * (int64_t(lv.offset) + int64_t(y) * lv.width + tx0));
      for (int64_t b = 0; b < row_bytes + 63; b += 64) {
        if (--budget < 0) return;
        __builtin_prefetch(row + fn::min<int64_t>(b, row_bytes - 1));
      }
    }
  }
}

// What the backward pass knows about the pixels of a tile, one array per quantity (so a
// vector of neighbouring pixels is one load), padded by a vector's worth of lanes so a row's
// last vector may read past the tile's last pixel.
template <typename T, int Pixels>
struct TileGradState {
  static constexpr int N = Pixels + lane_count<T>();
  T g[3][N], g_alpha[N], colour[3][N], t_final[N];
  T trans[N], accumulated[3][N];
  T consumed[N];  // list entries the pixel consumed in the forward pass (exact integers)
};

// pixel.h, backward_pair, for the lanes in `live` of the pixels starting at index i of the
// tile; adds to the per-lane gradient sums `grad` (GRAD_SLOTS vectors).
template <typename T, int Pixels>
DIFFBMP_LANES_INLINE void backward_lanes(const PrimGeom<T>& g, const PrimLook<T>& look, const T* texels, const Vec<T>& px, T py,
                           T sigma_e, Mask<T> live, int i, TileGradState<T, Pixels>& st, Vec<T>* grad) {
  Vec<T> u, v;
  local_uv_lanes(g, px, py, u, v);
  live &= inside_support_lanes(g, u, v);
  if (!any<T>(live)) return;
  const SampleLanes<T> s = sample_lanes<T, true>(g, texels, u, v, live, sigma_e);
  // Where the coverage and its slope vanish every term is zero and T is unchanged.
  const T z0 = T(0);
  live &= (s.cov != z0) | (s.dcov_du != z0) | (s.dcov_dv != z0) | (s.dp_du[0] != z0) | (s.dp_dv[0] != z0) |
          (s.dp_du[1] != z0) | (s.dp_dv[1] != z0) | (s.dp_du[2] != z0) | (s.dp_dv[2] != z0);
  if (!any<T>(live)) return;
  Vec<T> a, col[3], inv_cov;
  pair_value_lanes(g, look, s, a, col, inv_cov);
  const Vec<T> t = load(st.trans + i);
  const Vec<T> one_minus_a = T(1) - a;
  Vec<T> gc[3];
  Vec<T> g_dot_col{}, g_dot_behind{};
  for (int c = 0; c < 3; ++c) {
    gc[c] = load(st.g[c] + i);
    const Vec<T> acc_old = load(st.accumulated[c] + i);
    const Vec<T> acc = acc_old + col[c] * (a * t);
    store(st.accumulated[c] + i, select<T>(live, acc, acc_old));
    const Vec<T> behind = load(st.colour[c] + i) - acc;
    g_dot_col += gc[c] * col[c];
    g_dot_behind += gc[c] * behind;
  }
  const Vec<T> dL_da =
      t * g_dot_col - g_dot_behind / one_minus_a + load(st.g_alpha + i) * load(st.t_final + i) / one_minus_a;
  store(st.trans + i, select<T>(live, t * one_minus_a, t));

  const Mask<T> clamped = look.opacity * s.cov > T(ALPHA_MAX);
  const Vec<T> zero{};
  const Vec<T> da_dopacity = select<T>(clamped, zero, s.cov);
  const Vec<T> da_dcov = select<T>(clamped, zero, splat<T>(look.opacity));

  const bool texture = g.kind == KIND_TEXTURE;
  Vec<T> g_dot_own_minus_c{};
  for (int c = 0; c < 3; ++c) {
    const Vec<T> dL_dcol = a * t * gc[c];
    const Vec<T> own = texture ? s.p[c] * inv_cov : splat<T>(T(1));
    grad[G_R + c] += zero_unless<T>(live, (T(1) - look.beta) * dL_dcol);
    g_dot_own_minus_c += dL_dcol * (own - look.color[c]);
  }
  grad[G_BETA] += zero_unless<T>(live, g_dot_own_minus_c);
  grad[G_OPACITY] += zero_unless<T>(live, dL_da * da_dopacity);

  Vec<T> dL_dcov = dL_da * da_dcov;
  Vec<T> dL_du{}, dL_dv{};
  if (texture) {
    const Vec<T> a_over_cov = a * inv_cov;
    const Vec<T> scale = look.beta * t * a_over_cov;
    for (int c = 0; c < 3; ++c) {
      const Vec<T> dL_dp = scale * gc[c];
      dL_dcov -= dL_dp * s.p[c] * inv_cov;
      dL_du += dL_dp * s.dp_du[c];
      dL_dv += dL_dp * s.dp_dv[c];
    }
  }
  dL_du += dL_dcov * s.dcov_du;
  dL_dv += dL_dcov * s.dcov_dv;

  const T cs = g.cos_t, sn = g.sin_t;
  grad[G_MX] += zero_unless<T>(live, dL_du * (-cs * g.inv_sx) + dL_dv * (sn * g.inv_sy));
  grad[G_MY] += zero_unless<T>(live, dL_du * (-sn * g.inv_sx) + dL_dv * (-cs * g.inv_sy));
  grad[G_ROT] += zero_unless<T>(live, dL_du * (v * g.sy * g.inv_sx) + dL_dv * (-u * g.sx * g.inv_sy));
  grad[G_SX] += zero_unless<T>(live, dL_du * (-u * g.inv_sx) + dL_dcov * s.dcov_dsx);
  grad[G_SY] += zero_unless<T>(live, dL_dv * (-v * g.inv_sy) + dL_dcov * s.dcov_dsy);
}

}  // namespace cpu
}  // namespace diffbmp
