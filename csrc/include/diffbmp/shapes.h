// Coverage and premultiplied colour of a shape at local coordinates (docs/rendering.md, 5.2-5.4):
// `shape_sample` for the forward pass, `shape_sample_grad` for the backward pass (values plus
// their derivatives with respect to u, v and, for analytic shapes, the half-extents).
#pragma once

#include "common.h"
#include "constants.h"
#include "geometry.h"

namespace diffbmp {

template <typename T>
struct ShapeSample {
  T cov;   // coverage in [0, 1]
  T p[3];  // premultiplied colour (equal to cov for analytic shapes)
};

template <typename T>
struct ShapeSampleGrad {
  T cov, p[3];
  T dcov_du, dcov_dv;
  T dp_du[3], dp_dv[3];
  T dcov_dsx, dcov_dsy;  // direct dependence on the half-extents (analytic shapes only)
};

// Section 5.2: the C1 taper that ends analytic shapes, and its derivative with respect to t.
template <typename T>
DIFFBMP_HD inline T smoothstep(T t, T& d_dt) {
  t = fn::clamp(t, T(0), T(1));
  d_dt = T(6) * t * (T(1) - t);
  return t * t * (T(3) - T(2) * t);
}

// Circle taper position t(z) and dt/dz (section 5.2).
template <typename T>
DIFFBMP_HD inline T circle_taper_t(T z, T& dt_dz) {
  const T width = T(LOGISTIC_K) * (T(CIRCLE_TAPER_END) - T(CIRCLE_TAPER_START));
  dt_dz = T(1) / width;
  return (z + T(LOGISTIC_K) * T(CIRCLE_TAPER_END)) / width;
}

// Gaussian taper position t(q) and dt/dq (section 5.3).
template <typename T>
DIFFBMP_HD inline T gaussian_taper_t(T q, T& dt_dq) {
  const T end = T(GAUSSIAN_TAPER_END) * T(GAUSSIAN_TAPER_END);
  const T width = end - T(GAUSSIAN_TAPER_START) * T(GAUSSIAN_TAPER_START);
  dt_dq = T(-1) / width;
  return (end - q) / width;
}

// q = u^2 / su^2 + v^2 / sv^2 of the Gaussian.
template <typename T>
DIFFBMP_HD inline T gaussian_q(const PrimGeom<T>& g, T u, T v) {
  return u * u / (g.analytic.gauss_su * g.analytic.gauss_su) + v * v / (g.analytic.gauss_sv * g.analytic.gauss_sv);
}

// One RGBA texel. On the GPU a single 16-byte load for float (two for double) through the
// read-only cache; the host op checks that the texels start 16-byte aligned.
DIFFBMP_HD inline void load_texel(const float* t, float out[4]) {
#ifdef __CUDA_ARCH__
  const float4 v = __ldg(reinterpret_cast<const float4*>(t));
  out[0] = v.x;
  out[1] = v.y;
  out[2] = v.z;
  out[3] = v.w;
#else
  for (int c = 0; c < 4; ++c) out[c] = t[c];
#endif
}

DIFFBMP_HD inline void load_texel(const double* t, double out[4]) {
#ifdef __CUDA_ARCH__
  const double2 a = __ldg(reinterpret_cast<const double2*>(t)), b = __ldg(reinterpret_cast<const double2*>(t) + 1);
  out[0] = a.x;
  out[1] = a.y;
  out[2] = b.x;
  out[3] = b.y;
#else
  for (int c = 0; c < 4; ++c) out[c] = t[c];
#endif
}

// texels: [T, 4] premultiplied RGBA. Returns 0 outside the level (transparent border).
template <typename T>
DIFFBMP_HD inline void fetch_texel(const T* texels, const LevelRef<T>& lv, int x, int y, T out[4]) {
  if (x >= 0 && x < lv.width && y >= 0 && y < lv.height) {
    load_texel(texels + 4 * (static_cast<int64_t>(lv.offset) + static_cast<int64_t>(y) * lv.width + x), out);
  } else {
    out[0] = out[1] = out[2] = out[3] = T(0);
  }
}

// Bilinear RGBA of one level at (u, v), accumulated with the level's weight into `value`
// and, when `d_du` is not null, its derivatives into `d_du` / `d_dv`.
template <typename T>
DIFFBMP_HD inline void bilinear_level(const T* texels, const LevelRef<T>& lv, T u, T v, T value[4], T* d_du, T* d_dv) {
  if (lv.weight == T(0)) return;
  T tx = (u + T(1)) * lv.half_content_x + T(MIP_PAD) - T(0.5);
  T ty = (v + T(1)) * lv.half_content_y + T(MIP_PAD) - T(0.5);
  T fx0 = fn::floor(tx), fy0 = fn::floor(ty);
  T ax = tx - fx0, ay = ty - fy0;
  int x0 = static_cast<int>(fx0), y0 = static_cast<int>(fy0);
  T t00[4], t10[4], t01[4], t11[4];
  fetch_texel(texels, lv, x0, y0, t00);
  fetch_texel(texels, lv, x0 + 1, y0, t10);
  fetch_texel(texels, lv, x0, y0 + 1, t01);
  fetch_texel(texels, lv, x0 + 1, y0 + 1, t11);
  const T w = lv.weight;
  for (int c = 0; c < 4; ++c) {
    T top = t00[c] + (t10[c] - t00[c]) * ax;
    T bottom = t01[c] + (t11[c] - t01[c]) * ax;
    value[c] += w * (top + (bottom - top) * ay);
    if (d_du) {
      T d_tx = (t10[c] - t00[c]) * (T(1) - ay) + (t11[c] - t01[c]) * ay;
      T d_ty = bottom - top;
      d_du[c] += w * d_tx * lv.half_content_x;
      d_dv[c] += w * d_ty * lv.half_content_y;
    }
  }
}

template <typename T>
DIFFBMP_HD inline ShapeSample<T> shape_sample(const PrimGeom<T>& g, const T* texels, T u, T v) {
  ShapeSample<T> s;
  if (g.kind == KIND_TEXTURE) {
    T value[4] = {T(0), T(0), T(0), T(0)};
    for (int l = 0; l < 4; ++l) bilinear_level(texels, g.level[l], u, v, value, static_cast<T*>(nullptr), static_cast<T*>(nullptr));
    s.cov = value[3];
    s.p[0] = value[0];
    s.p[1] = value[1];
    s.p[2] = value[2];
    return s;
  }
  T unused;
  s.cov = T(0);
  if (g.kind == KIND_CIRCLE) {
    T r2 = u * u + v * v;
    // Beyond r = eu the taper is zero: skip the exponential.
    if (r2 < g.eu * g.eu) {
      T z = (T(1) - fn::sqrt(r2)) * g.analytic.circle_slope;
      s.cov = fn::sigmoid(z) * smoothstep(circle_taper_t(z, unused), unused);
    }
  } else {
    T q = gaussian_q(g, u, v);
    if (q < T(GAUSSIAN_TAPER_END) * T(GAUSSIAN_TAPER_END)) {
      s.cov = g.analytic.gauss_amp * fn::exp(T(-0.5) * q) * smoothstep(gaussian_taper_t(q, unused), unused);
    }
  }
  s.p[0] = s.p[1] = s.p[2] = s.cov;
  return s;
}

// sigma_e is needed for the analytic shapes' direct half-extent derivatives.
template <typename T>
DIFFBMP_HD inline ShapeSampleGrad<T> shape_sample_grad(const PrimGeom<T>& g, const T* texels, T u, T v, T sigma_e) {
  ShapeSampleGrad<T> s;
  s.dcov_dsx = s.dcov_dsy = T(0);
  if (g.kind == KIND_TEXTURE) {
    T value[4] = {T(0), T(0), T(0), T(0)};
    T d_du[4] = {T(0), T(0), T(0), T(0)};
    T d_dv[4] = {T(0), T(0), T(0), T(0)};
    for (int l = 0; l < 4; ++l) bilinear_level(texels, g.level[l], u, v, value, d_du, d_dv);
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
  const bool outside = g.kind == KIND_CIRCLE ? u * u + v * v >= g.eu * g.eu
                                             : gaussian_q(g, u, v) >= T(GAUSSIAN_TAPER_END) * T(GAUSSIAN_TAPER_END);
  if (outside) {  // the taper is zero with a zero derivative there
    s.cov = s.dcov_du = s.dcov_dv = T(0);
    for (int c = 0; c < 3; ++c) s.p[c] = s.dp_du[c] = s.dp_dv[c] = T(0);
    return s;
  }
  if (g.kind == KIND_CIRCLE) {
    T r = fn::sqrt(u * u + v * v);
    T z = (T(1) - r) * g.analytic.circle_slope;
    T sig = fn::sigmoid(z);
    T dt_dz, dw_dt;
    T w = smoothstep(circle_taper_t(z, dt_dz), dw_dt);
    T dcov_dz = sig * (T(1) - sig) * w + sig * dw_dt * dt_dz;
    // dz/du = -slope * u / r, taken as zero at r = 0.
    T inv_r = r > T(0) ? T(1) / r : T(0);
    s.cov = sig * w;
    s.dcov_du = -dcov_dz * g.analytic.circle_slope * u * inv_r;
    s.dcov_dv = -dcov_dz * g.analytic.circle_slope * v * inv_r;
    // Through rho = sqrt(sx sy): dz/dsx = z / (2 sx).
    s.dcov_dsx = dcov_dz * z * T(0.5) * g.inv_sx;
    s.dcov_dsy = dcov_dz * z * T(0.5) * g.inv_sy;
  } else {
    T su = g.analytic.gauss_su, sv = g.analytic.gauss_sv;
    T q = gaussian_q(g, u, v);
    T dt_dq, dw_dt;
    T w = smoothstep(gaussian_taper_t(q, dt_dq), dw_dt);
    T peak = g.analytic.gauss_amp * fn::exp(T(-0.5) * q);
    T cov = peak * w;
    T dcov_dq = peak * (T(-0.5) * w + dw_dt * dt_dq);
    s.cov = cov;
    s.dcov_du = dcov_dq * T(2) * u / (su * su);
    s.dcov_dv = dcov_dq * T(2) * v / (sv * sv);
    // Through su, sv (amplitude and q): dsu/dsx = -(sigma_e^2 / sx^3) / su.
    T ex = sigma_e * g.inv_sx, ey = sigma_e * g.inv_sy;
    T dsu_dsx = -(ex * ex * g.inv_sx) / su;
    T dsv_dsy = -(ey * ey * g.inv_sy) / sv;
    s.dcov_dsx = (-cov / su - dcov_dq * T(2) * u * u / (su * su * su)) * dsu_dsx;
    s.dcov_dsy = (-cov / sv - dcov_dq * T(2) * v * v / (sv * sv * sv)) * dsv_dsy;
  }
  for (int c = 0; c < 3; ++c) {
    s.p[c] = s.cov;
    s.dp_du[c] = s.dcov_du;
    s.dp_dv[c] = s.dcov_dv;
  }
  return s;
}

}  // namespace diffbmp
