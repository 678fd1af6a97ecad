// Shared by the cpu and cuda backends: the host-and-device macro and scalar maths that
// resolve to the right overload for float and double under both g++ and nvcc.
// No torch headers here: nvcc compiles these in seconds.
#pragma once

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define DIFFBMP_HD __host__ __device__
#else
#define DIFFBMP_HD
#endif

namespace diffbmp {
namespace fn {

DIFFBMP_HD inline float exp(float x) { return expf(x); }
DIFFBMP_HD inline double exp(double x) { return ::exp(x); }
DIFFBMP_HD inline float sqrt(float x) { return sqrtf(x); }
DIFFBMP_HD inline double sqrt(double x) { return ::sqrt(x); }
DIFFBMP_HD inline float floor(float x) { return floorf(x); }
DIFFBMP_HD inline double floor(double x) { return ::floor(x); }
DIFFBMP_HD inline float ceil(float x) { return ceilf(x); }
DIFFBMP_HD inline double ceil(double x) { return ::ceil(x); }
DIFFBMP_HD inline float log2(float x) { return log2f(x); }
DIFFBMP_HD inline double log2(double x) { return ::log2(x); }
DIFFBMP_HD inline float abs(float x) { return fabsf(x); }
DIFFBMP_HD inline double abs(double x) { return ::fabs(x); }
DIFFBMP_HD inline float cos(float x) { return cosf(x); }
DIFFBMP_HD inline double cos(double x) { return ::cos(x); }
DIFFBMP_HD inline float sin(float x) { return sinf(x); }
DIFFBMP_HD inline double sin(double x) { return ::sin(x); }

template <typename T>
DIFFBMP_HD inline T min(T a, T b) { return a < b ? a : b; }
template <typename T>
DIFFBMP_HD inline T max(T a, T b) { return a > b ? a : b; }
template <typename T>
DIFFBMP_HD inline T clamp(T x, T lo, T hi) { return min(max(x, lo), hi); }

template <typename T>
DIFFBMP_HD inline T sigmoid(T z) { return T(1) / (T(1) + exp(-z)); }

// Products and sums that no compiler may fuse into a multiply-add. Binning walks a primitive's
// tiles twice (count, then write) and both walks must take the same decisions bit for bit;
// nvcc contracts a * b + c differently in different kernels unless told not to, so on the
// device these are the explicitly rounded intrinsics. On the host the build turns contraction
// off (-ffp-contract=off in diffbmp/_build_spec.py), which makes the plain operators exact.
DIFFBMP_HD inline float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
DIFFBMP_HD inline double mul_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
DIFFBMP_HD inline float add_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
DIFFBMP_HD inline double add_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
// a * b + c * d, each operation rounded on its own.
template <typename T>
DIFFBMP_HD inline T dot2_rn(T a, T b, T c, T d) {
  return add_rn(mul_rn(a, b), mul_rn(c, d));
}

}  // namespace fn
}  // namespace diffbmp
