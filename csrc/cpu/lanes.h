// Vectors of pixel lanes for the cpu backend: 32 bytes of float (8 lanes) or double (4 lanes),
// as GCC/Clang vector types. The compiler maps them onto whatever the target has (two SSE2
// registers on any x86-64, one AVX register where the build targets AVX2, NEON pairs on Arm);
// every operation is the IEEE operation of the scalar code, lane by lane, so a vector result
// equals the scalar one bit for bit wherever the operations are the same.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
// Vectors passed by value: GCC notes that their calling convention changed in GCC 4.6.
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

// The lane helpers are small and called once per vector of pixels: a call (through the PLT,
// since the module is position-independent) would cost more than their work.
#define DIFFBMP_LANES_INLINE inline __attribute__((always_inline))

namespace diffbmp {
namespace cpu {

constexpr int LANE_BYTES = 32;

template <typename T>
struct LaneTypes;
template <>
struct LaneTypes<float> {
  typedef int32_t Int;
  typedef float V __attribute__((vector_size(LANE_BYTES)));
  typedef int32_t M __attribute__((vector_size(LANE_BYTES)));
};
template <>
struct LaneTypes<double> {
  typedef int64_t Int;
  typedef double V __attribute__((vector_size(LANE_BYTES)));
  typedef int64_t M __attribute__((vector_size(LANE_BYTES)));
};

template <typename T>
using Vec = typename LaneTypes<T>::V;  // one value per lane
template <typename T>
using Mask = typename LaneTypes<T>::M;  // all bits set in a lane where a condition holds

template <typename T>
constexpr int lane_count() {
  return LANE_BYTES / int(sizeof(T));
}

template <typename T>
DIFFBMP_LANES_INLINE Vec<T> splat(T x) {
  Vec<T> v;
  for (int l = 0; l < lane_count<T>(); ++l) v[l] = x;
  return v;
}

template <typename T>
DIFFBMP_LANES_INLINE Vec<T> iota() {
  Vec<T> v;
  for (int l = 0; l < lane_count<T>(); ++l) v[l] = T(l);
  return v;
}

template <typename T>
DIFFBMP_LANES_INLINE Vec<T> load(const T* p) {
  Vec<T> v;
  memcpy(&v, p, sizeof(v));
  return v;
}

template <typename T>
DIFFBMP_LANES_INLINE void store(T* p, const Vec<T>& v) {
  memcpy(p, &v, sizeof(v));
}

// a where m, else b.
template <typename T>
DIFFBMP_LANES_INLINE Vec<T> select(const Mask<T>& m, const Vec<T>& a, const Vec<T>& b) {
  typedef Mask<T> M;
  return (Vec<T>)(((M)a & m) | ((M)b & ~m));
}

template <typename T>
DIFFBMP_LANES_INLINE Vec<T> zero_unless(const Mask<T>& m, const Vec<T>& a) {
  return select<T>(m, a, Vec<T>{});
}

// Whether any lane is set: the mask's 32 bytes as four words (one vptest with AVX), not a
// walk over the lanes.
template <typename T>
DIFFBMP_LANES_INLINE bool any(const Mask<T>& m) {
  uint64_t words[LANE_BYTES / 8];
  memcpy(words, &m, sizeof(words));
  return (words[0] | words[1] | words[2] | words[3]) != 0;
}

// The scalar helpers of common.h, lane by lane: fn::min(a, b) is a < b ? a : b, and so on.
template <typename T>
DIFFBMP_LANES_INLINE Vec<T> vmin(const Vec<T>& a, const Vec<T>& b) {
  return select<T>(a < b, a, b);
}
template <typename T>
DIFFBMP_LANES_INLINE Vec<T> vmax(const Vec<T>& a, const Vec<T>& b) {
  return select<T>(a > b, a, b);
}
template <typename T>
DIFFBMP_LANES_INLINE Vec<T> vabs(const Vec<T>& a) {
  return select<T>(a < T(0), -a, a);
}

// Floor through the integers: exact for |x| < 2^31, which local texel coordinates always are
// (they lie within a level's support).
template <typename T>
DIFFBMP_LANES_INLINE Vec<T> vfloor(const Vec<T>& x) {
  const Vec<T> t = __builtin_convertvector(__builtin_convertvector(x, Mask<T>), Vec<T>);
  return select<T>(t > x, t - T(1), t);
}

// Square root and exponential lane by lane through the C library, so they round as the
// scalar code's calls do (sqrt is one instruction where errno is not kept).
DIFFBMP_LANES_INLINE float sqrt_lane(float x) { return sqrtf(x); }
DIFFBMP_LANES_INLINE double sqrt_lane(double x) { return sqrt(x); }
template <typename T>
DIFFBMP_LANES_INLINE Vec<T> vsqrt(const Vec<T>& x) {
  Vec<T> r;
  for (int l = 0; l < lane_count<T>(); ++l) r[l] = sqrt_lane(x[l]);
  return r;
}
// exp in double: the C library's, lane by lane (double serves checks, not speed).
DIFFBMP_LANES_INLINE Vec<double> vexp(const Vec<double>& x) {
  Vec<double> r;
  for (int l = 0; l < lane_count<double>(); ++l) r[l] = exp(x[l]);
  return r;
}

// exp in float, vectorised: x = n ln 2 + r with |r| <= ln 2 / 2 (ln 2 split in two parts so
// n ln 2 is exact), a degree-7 polynomial for e^r (Cephes' expf coefficients), times 2^n made
// from the exponent bits. Within 1 ulp of the exact exponential over [-87, 88] (the same
// operations replayed in float32 on 3 million points); below -87.3 it returns 0 (expf gives
// denormals there), above 88.7 +inf.
DIFFBMP_LANES_INLINE Vec<float> vexp(const Vec<float>& x_in) {
  typedef Mask<float> M;
  const Vec<float> x = vmin<float>(vmax<float>(x_in, splat(-87.3f)), splat(88.7f));
  const Vec<float> n = vfloor<float>(x * 1.44269504088896341f + 0.5f);
  Vec<float> r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  // Estrin's scheme: three independent pairs, then r^2 and r^4, a short dependency chain.
  const Vec<float> r2 = r * r, r4 = r2 * r2;
  const Vec<float> q01 = r * 1.9875691500e-4f + 1.3981999507e-3f;
  const Vec<float> q23 = r * 8.3334519073e-3f + 4.1665795894e-2f;
  const Vec<float> q45 = r * 1.6666665459e-1f + 5.0000001201e-1f;
  const Vec<float> p = (q01 * r4 + (q23 * r2 + q45)) * r2 + r + 1.0f;
  const M bits = (__builtin_convertvector(n, M) + 127) << 23;
  const Vec<float> result = p * (Vec<float>)bits;
  return select<float>(x_in < -87.3f, Vec<float>{}, select<float>(x_in > 88.7f, splat(__builtin_inff()), result));
}

// Horizontal sum, lanes in order.
template <typename T>
DIFFBMP_LANES_INLINE T sum_lanes(const Vec<T>& v) {
  T s = T(0);
  for (int l = 0; l < lane_count<T>(); ++l) s += v[l];
  return s;
}

}  // namespace cpu
}  // namespace diffbmp
