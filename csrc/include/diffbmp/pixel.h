// One (primitive, pixel) pair: its alpha and colour (docs/rendering.md, 6-7) in the forward
// pass, and in the backward pass the chain from dL/dC, dL/dalpha to every parameter (section 9).
#pragma once

#include "common.h"
#include "constants.h"
#include "geometry.h"
#include "shapes.h"

namespace diffbmp {

// Per-primitive appearance, read once per primitive.
template <typename T>
struct PrimLook {
  T color[3];
  T opacity;
  T beta;
};

// Gradient of one primitive, in the order of the [N, 10] gradient buffer.
enum GradSlot { G_MX = 0, G_MY, G_ROT, G_SX, G_SY, G_R, G_G, G_B, G_OPACITY, G_BETA, GRAD_SLOTS };

template <typename T>
struct PairValue {
  T alpha;
  T col[3];
};

// Sections 6-7: alpha and colour from a shape sample.
template <typename T>
DIFFBMP_HD inline PairValue<T> pair_value(const PrimGeom<T>& g, const PrimLook<T>& look, const ShapeSample<T>& s) {
  PairValue<T> out;
  out.alpha = fn::min(look.opacity * s.cov, T(ALPHA_MAX));
  bool texture = g.kind == KIND_TEXTURE;
  T inv_cov = s.cov > T(0) ? T(1) / s.cov : T(0);
  for (int c = 0; c < 3; ++c) {
    T own = texture ? s.p[c] * inv_cov : T(1);
    out.col[c] = (T(1) - look.beta) * look.color[c] + look.beta * own;
  }
  return out;
}

// Forward: evaluate the pair at pixel centre (px, py). Returns false outside the support.
template <typename T>
DIFFBMP_HD inline bool eval_pair(const PrimGeom<T>& g, const PrimLook<T>& look, const T* texels, T px, T py, PairValue<T>& out) {
  T u, v;
  local_uv(g, px, py, u, v);
  if (!inside_support(g, u, v)) return false;
  ShapeSample<T> s = shape_sample(g, texels, u, v);
  // Zero coverage changes neither colour nor transmittance (and P <= cov is zero too).
  if (s.cov == T(0)) return false;
  out = pair_value(g, look, s);
  return true;
}

// What the backward pass knows about a pixel while it walks the pixel's list front to back.
template <typename T>
struct PixelGrad {
  T g[3];         // dL/dC
  T g_alpha;      // dL/dalpha
  T colour[3];    // saved C of the pixel
  T t_final;      // 1 - alpha
};

// Backward: the pair's contribution to every gradient of its primitive, added to `grad`
// (GRAD_SLOTS values). `transmittance` is T_n on entry and T_{n-1} (behind n) on return;
// `accumulated` is sum_{m >= n} col_m a_m T_m after the call. Returns false outside the support.
template <typename T>
DIFFBMP_HD inline bool backward_pair(
    const PrimGeom<T>& g, const PrimLook<T>& look, const T* texels, T px, T py, T sigma_e,
    const PixelGrad<T>& pix, T& transmittance, T accumulated[3], T* grad) {
  T u, v;
  local_uv(g, px, py, u, v);
  if (!inside_support(g, u, v)) return false;
  ShapeSampleGrad<T> s = shape_sample_grad(g, texels, u, v, sigma_e);
  // Where the coverage and its slope vanish every term below is zero and T is unchanged.
  if (s.cov == T(0) && s.dcov_du == T(0) && s.dcov_dv == T(0) && s.dp_du[0] == T(0) && s.dp_dv[0] == T(0) &&
      s.dp_du[1] == T(0) && s.dp_dv[1] == T(0) && s.dp_du[2] == T(0) && s.dp_dv[2] == T(0))
    return false;
  ShapeSample<T> value;
  value.cov = s.cov;
  value.p[0] = s.p[0];
  value.p[1] = s.p[1];
  value.p[2] = s.p[2];
  PairValue<T> pv = pair_value(g, look, value);
  const T a = pv.alpha, t = transmittance;
  const T one_minus_a = T(1) - a;

  // Section 9, compositing: S_n is the colour behind n, from the saved C.
  T g_dot_col = T(0), g_dot_behind = T(0);
  for (int c = 0; c < 3; ++c) {
    accumulated[c] += pv.col[c] * (a * t);  // the same rounding as the forward pass
    T behind = pix.colour[c] - accumulated[c];
    g_dot_col += pix.g[c] * pv.col[c];
    g_dot_behind += pix.g[c] * behind;
  }
  T dL_da = t * g_dot_col - g_dot_behind / one_minus_a + pix.g_alpha * pix.t_final / one_minus_a;
  transmittance = t * one_minus_a;

  // Alpha (section 7): zero derivative where the clamp is active.
  bool clamped = look.opacity * s.cov > T(ALPHA_MAX);
  T da_dopacity = clamped ? T(0) : s.cov;
  T da_dcov = clamped ? T(0) : look.opacity;

  // Colour blend (section 6): dL/dcol = a T g.
  bool texture = g.kind == KIND_TEXTURE;
  T inv_cov = s.cov > T(0) ? T(1) / s.cov : T(0);
  T g_dot_own_minus_c = T(0);
  for (int c = 0; c < 3; ++c) {
    T dL_dcol = a * t * pix.g[c];
    T own = texture ? s.p[c] * inv_cov : T(1);
    grad[G_R + c] += (T(1) - look.beta) * dL_dcol;
    g_dot_own_minus_c += dL_dcol * (own - look.color[c]);
  }
  grad[G_BETA] += g_dot_own_minus_c;
  grad[G_OPACITY] += dL_da * da_dopacity;

  // Shape: dL/dcov and dL/dP, written with a / cov so nothing grows as cov -> 0.
  T dL_dcov = dL_da * da_dcov;
  T dL_du = T(0), dL_dv = T(0);
  if (texture) {
    T a_over_cov = a * inv_cov;
    T scale = look.beta * t * a_over_cov;
    for (int c = 0; c < 3; ++c) {
      T dL_dp = scale * pix.g[c];
      dL_dcov -= dL_dp * s.p[c] * inv_cov;
      dL_du += dL_dp * s.dp_du[c];
      dL_dv += dL_dp * s.dp_dv[c];
    }
  }
  dL_du += dL_dcov * s.dcov_du;
  dL_dv += dL_dcov * s.dcov_dv;

  // Geometry (section 9): d = p - mu.
  const T cs = g.cos_t, sn = g.sin_t;
  grad[G_MX] += dL_du * (-cs * g.inv_sx) + dL_dv * (sn * g.inv_sy);
  grad[G_MY] += dL_du * (-sn * g.inv_sx) + dL_dv * (-cs * g.inv_sy);
  grad[G_ROT] += dL_du * (v * g.sy * g.inv_sx) + dL_dv * (-u * g.sx * g.inv_sy);
  grad[G_SX] += dL_du * (-u * g.inv_sx) + dL_dcov * s.dcov_dsx;
  grad[G_SY] += dL_dv * (-v * g.inv_sy) + dL_dcov * s.dcov_dsy;
  return true;
}

// The deterministic reduction of both backends: gradient slot q of a primitive is the sum of
// its pairs' rows (pair_grads: [P, GRAD_SLOTS], rows in emission order) from first to last,
// an order that depends on neither the thread count nor the GPU's schedule.
template <typename T>
DIFFBMP_HD inline T sum_pair_rows(const T* pair_grads, int64_t first, int64_t last, int q) {
  T sum = T(0);
  for (int64_t p = first; p < last; ++p) sum += pair_grads[p * GRAD_SLOTS + q];
  return sum;
}

}  // namespace diffbmp
