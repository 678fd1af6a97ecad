// The kernels of the cuda backend (launched by rasterize_cuda.cu). They mirror the cpu
// backend's loops (csrc/cpu/rasterize_cpu.h) step for step, so both compute the same numbers;
// the mathematics of one primitive and one pair come from csrc/include/diffbmp.
//
// Kept in a header of their own so that tests/test_cuda_compiles.py can also run them on the
// host through emulation/cuda_emulation.h when no GPU is at hand.
#pragma once

#include "rasterize_cuda.h"

namespace diffbmp {
namespace cuda {

constexpr unsigned FULL_WARP = 0xffffffffu;
constexpr int WARP_SIZE = 32;
constexpr int WARPS = TILE_PIXELS / WARP_SIZE;

static_assert(sizeof(Prim<float>) % 16 == 0 && sizeof(Prim<double>) % 16 == 0, "Prim is staged in 16-byte words");
static_assert(sizeof(Prim<float>) == 176 && sizeof(Prim<double>) == 304, "the sizes the comments and docs quote");

// Primitives staged in shared memory per batch by the forward and atomic backward kernels: as
// many as fit in 24 KB (139 in float32, 80 in float64), well under the 48 KB a block may use
// without opting in, and never more than one per thread so each thread stages at most one id.
template <typename T>
constexpr int batch_size() {
  return int(24 * 1024 / sizeof(Prim<T>)) < TILE_PIXELS ? int(24 * 1024 / sizeof(Prim<T>)) : TILE_PIXELS;
}

// The deterministic backward also keeps every warp's partial gradient of every staged entry
// (and the entries' slots): batches of 81 in float32 and 43 in float64 fill 40 KB.
template <typename T>
constexpr int deterministic_batch_size() {
  return int(40 * 1024 / (sizeof(Prim<T>) + 2 * sizeof(int32_t) + WARPS * GRAD_SLOTS * sizeof(T)));
}

template <typename T>
__global__ void __launch_bounds__(TILE_PIXELS)
    prepare_kernel(const SceneArgs<T> s, Prim<T>* __restrict__ prims, int64_t* __restrict__ tile_counts) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= s.n) return;
  const PrimGeom<T> g = prepare_primitive<T>(s, i);
  Prim<T>& p = prims[i];
  p.geom = g;
  p.look.color[0] = s.colors[3 * i];
  p.look.color[1] = s.colors[3 * i + 1];
  p.look.color[2] = s.colors[3 * i + 2];
  p.look.opacity = s.opacities[i];
  p.look.beta = s.beta[i];
  tile_counts[i] = count_tiles(g, s.height, s.width);
}

template <typename T>
__global__ void __launch_bounds__(TILE_PIXELS)
    emit_kernel(const SceneArgs<T> s, const Prim<T>* __restrict__ prims, const int64_t* __restrict__ pair_offsets,
                uint32_t* __restrict__ tile_keys, int32_t* __restrict__ prim_ids, int64_t* __restrict__ mismatches) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= s.n) return;
  const int64_t begin = pair_offsets[i], end = pair_offsets[i + 1];
  const int64_t sentinel = int64_t(tiles_x_of(s.width)) * tiles_y_of(s.height);
  const int64_t found = write_pairs(prims[i].geom, s.height, s.width, begin, end, sentinel, [&](int64_t k, int64_t tile) {
    tile_keys[k] = uint32_t(tile);
    prim_ids[k] = int32_t(i);
  });
  if (mismatches != nullptr && found != end - begin) atomicAdd(reinterpret_cast<unsigned long long*>(mismatches), 1ull);
}

// One thread per tile boundary t in [0, num_tiles]: the first pair whose tile is >= t (a
// lower bound in the sorted keys), so tiles without pairs get empty ranges.
__global__ void tile_ranges_kernel(const uint32_t* __restrict__ sorted_keys, int num_pairs, int num_tiles,
                                   int32_t* __restrict__ tile_start) {
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t > num_tiles) return;
  int lo = 0, hi = num_pairs;
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    if (int64_t(sorted_keys[mid]) < t)
      lo = mid + 1;
    else
      hi = mid;
  }
  tile_start[t] = lo;
}

// Stages the nb primitives of s_ids into s_prims, 16-byte words spread over the whole block
// so the global reads of consecutive threads are contiguous. Call between two barriers.
template <typename T>
__device__ __forceinline__ void stage_batch(Prim<T>* s_prims, const int32_t* s_ids, const Prim<T>* __restrict__ prims,
                                            int nb) {
  constexpr int WORDS = int(sizeof(Prim<T>) / sizeof(uint4));
  uint4* dst = reinterpret_cast<uint4*>(s_prims);
  const uint4* src = reinterpret_cast<const uint4*>(prims);
  for (int w = threadIdx.x; w < nb * WORDS; w += TILE_PIXELS) {
    const int j = w / WORDS;
    dst[w] = src[int64_t(s_ids[j]) * WORDS + (w - j * WORDS)];
  }
}

// Pixel of this thread in tile `tile`.
struct TilePixel {
  int px0, py0;  // tile origin
  int x, y;      // pixel
  bool inside;   // on the canvas (edge tiles are partial)
};

__device__ __forceinline__ TilePixel tile_pixel(int64_t tile, int tiles_x, int height, int width) {
  TilePixel p;
  p.px0 = int(tile % tiles_x) * TILE_SIZE;
  p.py0 = int(tile / tiles_x) * TILE_SIZE;
  p.x = p.px0 + int(threadIdx.x) % TILE_SIZE;
  p.y = p.py0 + int(threadIdx.x) / TILE_SIZE;
  p.inside = p.x < width && p.y < height;
  return p;
}

// The cpu backend clips each primitive to its bounding box before the support test; the same
// test here keeps the two backends' per-pixel decisions identical.
template <typename T>
__device__ __forceinline__ bool in_box(const PrimGeom<T>& g, int x, int y) {
  return x >= g.x0 && x <= g.x1 && y >= g.y0 && y <= g.y1;
}

// One block per tile, one thread per pixel: cpu::forward_tiles with the tile's pixels in
// parallel. The list is walked from its end (the top primitive) down.
template <typename T>
__global__ void __launch_bounds__(TILE_PIXELS)
    forward_kernel(const SceneArgs<T> s, const Prim<T>* __restrict__ prims, const int32_t* __restrict__ tile_start,
                   const int32_t* __restrict__ sorted_prim, T* __restrict__ colour_out, T* __restrict__ alpha_out,
                   T* __restrict__ t_final_out, int32_t* __restrict__ count_out) {
  constexpr int B = batch_size<T>();
  __shared__ Prim<T> s_prims[B];
  __shared__ int32_t s_ids[B];
  const int64_t tile = blockIdx.x;
  const TilePixel pix = tile_pixel(tile, tiles_x_of(s.width), s.height, s.width);
  const T px = T(pix.x) + T(PIXEL_CENTER), py = T(pix.y) + T(PIXEL_CENTER);
  const int32_t end = tile_start[tile + 1];
  const int32_t length = end - tile_start[tile];

  T trans = T(1);
  T colour[3] = {T(0), T(0), T(0)};
  int32_t consumed = -1;
  bool done = !pix.inside;
  for (int32_t start = 0; start < length; start += B) {
    // Every pixel terminated: the rest of the list is hidden. Also the barrier that keeps
    // the previous batch alive until every thread is through with it.
    if (__syncthreads_count(!done) == 0) break;
    const int nb = fn::min<int32_t>(B, length - start);
    if (int(threadIdx.x) < nb) s_ids[threadIdx.x] = sorted_prim[end - 1 - (start + int32_t(threadIdx.x))];
    __syncthreads();
    stage_batch(s_prims, s_ids, prims, nb);
    __syncthreads();
    if (done) continue;
    for (int j = 0; j < nb; ++j) {
      const Prim<T>& p = s_prims[j];
      if (!in_box(p.geom, pix.x, pix.y)) continue;
      PairValue<T> pv;
      if (!eval_pair(p.geom, p.look, s.texels, px, py, pv)) continue;
      const T weight = pv.alpha * trans;
      for (int c = 0; c < 3; ++c) colour[c] += pv.col[c] * weight;
      trans *= T(1) - pv.alpha;
      if (trans < T(T_MIN)) {
        consumed = start + j + 1;
        done = true;
        break;
      }
    }
  }
  if (!pix.inside) return;
  const int64_t o = int64_t(pix.y) * s.width + pix.x;
  for (int c = 0; c < 3; ++c) colour_out[3 * o + c] = colour[c];
  alpha_out[o] = T(1) - trans;
  t_final_out[o] = trans;
  count_out[o] = consumed >= 0 ? consumed : length;
}

// atomicAdd on double is native from sm_60; older targets fall back to compare-and-swap.
__device__ __forceinline__ void atomic_add(float* address, float value) { atomicAdd(address, value); }
__device__ __forceinline__ void atomic_add(double* address, double value) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 600
  unsigned long long* bits = reinterpret_cast<unsigned long long*>(address);
  unsigned long long old = *bits, assumed;
  do {
    assumed = old;
    old = atomicCAS(bits, assumed, __double_as_longlong(value + __longlong_as_double(assumed)));
  } while (assumed != old);
#else
  atomicAdd(address, value);
#endif
}

// The sum of v over the 32 lanes of the warp, in lane 0 (a fixed tree: deterministic).
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) v += __shfl_down_sync(FULL_WARP, v, offset);
  return v;
}

// One block per tile, one thread per pixel: cpu::backward_tiles with the tile's pixels in
// parallel. Every thread walks the same list entries (the warp shuffles need all 32 lanes);
// a pixel only takes part in the entries it consumed in the forward pass.
//
// Deterministic (kPerPair): every warp leaves its partial sum of each staged entry in shared
// memory; at the end of the batch the warps' partials are added in warp order into the
// entry's own row of `out` (pair_grads [P, GRAD_SLOTS], at the pair's emission slot), and
// reduce_pair_grads_kernel sums each primitive's rows in emission order.
// Atomic (!kPerPair): lane 0 of each warp adds its sum into the primitive's row of `out`
// (grads [N, GRAD_SLOTS]) with atomicAdd, in whatever order the warps get there.
template <typename T, bool kPerPair>
__global__ void __launch_bounds__(TILE_PIXELS)
    backward_kernel(const SceneArgs<T> s, const Prim<T>* __restrict__ prims, const int32_t* __restrict__ tile_start,
                    const int32_t* __restrict__ sorted_prim, const int32_t* __restrict__ pair_slot,
                    const T* __restrict__ grad_colour, const T* __restrict__ grad_alpha, const T* __restrict__ colour,
                    const T* __restrict__ t_final, const int32_t* __restrict__ count, T* __restrict__ out) {
  constexpr int B = kPerPair ? deterministic_batch_size<T>() : batch_size<T>();
  __shared__ Prim<T> s_prims[B];
  __shared__ int32_t s_ids[B];
  __shared__ int32_t s_slots[kPerPair ? B : 1];
  __shared__ T s_partial[kPerPair ? B * WARPS * GRAD_SLOTS : 1];  // [entry][warp][slot]
  __shared__ int32_t s_longest;
  const int64_t tile = blockIdx.x;
  const TilePixel tp = tile_pixel(tile, tiles_x_of(s.width), s.height, s.width);
  const T px = T(tp.x) + T(PIXEL_CENTER), py = T(tp.y) + T(PIXEL_CENTER);
  const int32_t end = tile_start[tile + 1];
  const int lane = int(threadIdx.x) % WARP_SIZE, warp = int(threadIdx.x) / WARP_SIZE;

  PixelGrad<T> pix;
  T trans = T(1);
  T accumulated[3] = {T(0), T(0), T(0)};
  int32_t consumed = 0;
  for (int c = 0; c < 3; ++c) pix.g[c] = pix.colour[c] = T(0);
  pix.g_alpha = pix.t_final = T(0);
  if (tp.inside) {
    const int64_t o = int64_t(tp.y) * s.width + tp.x;
    for (int c = 0; c < 3; ++c) {
      pix.g[c] = grad_colour[3 * o + c];
      pix.colour[c] = colour[3 * o + c];
    }
    pix.g_alpha = grad_alpha[o];
    pix.t_final = t_final[o];
    consumed = count[o];
  }
  if (threadIdx.x == 0) s_longest = 0;
  __syncthreads();
  if (consumed > 0) atomicMax(&s_longest, consumed);
  __syncthreads();
  const int32_t longest = s_longest;

  for (int32_t start = 0; start < longest; start += B) {
    const int nb = fn::min<int32_t>(B, longest - start);
    __syncthreads();  // the previous batch is no longer read
    if (int(threadIdx.x) < nb) {
      const int32_t pair = end - 1 - (start + int32_t(threadIdx.x));
      s_ids[threadIdx.x] = sorted_prim[pair];
      if (kPerPair) s_slots[threadIdx.x] = pair_slot[pair];
    }
    __syncthreads();
    stage_batch(s_prims, s_ids, prims, nb);
    __syncthreads();
    for (int j = 0; j < nb; ++j) {
      const Prim<T>& p = s_prims[j];
      T grad[GRAD_SLOTS];
      for (int q = 0; q < GRAD_SLOTS; ++q) grad[q] = T(0);
      const bool touched = start + j < consumed && in_box(p.geom, tp.x, tp.y) &&
                           backward_pair(p.geom, p.look, s.texels, px, py, s.sigma_e, pix, trans, accumulated, grad);
      // Warp-uniform: skip the reduction where no lane of the warp saw the primitive.
      const bool seen = __ballot_sync(FULL_WARP, touched) != 0u;
      if constexpr (kPerPair) {
        T* partial = s_partial + (j * WARPS + warp) * GRAD_SLOTS;
        if (!seen) {
          if (lane < GRAD_SLOTS) partial[lane] = T(0);
          continue;
        }
        for (int q = 0; q < GRAD_SLOTS; ++q) {
          const T v = warp_sum(grad[q]);
          if (lane == 0) partial[q] = v;
        }
      } else {
        if (!seen) continue;
        for (int q = 0; q < GRAD_SLOTS; ++q) {
          const T v = warp_sum(grad[q]);
          if (lane == 0) atomic_add(out + int64_t(s_ids[j]) * GRAD_SLOTS + q, v);
        }
      }
    }
    if constexpr (kPerPair) {
      __syncthreads();  // every warp's partials of the batch are in shared memory
      for (int e = threadIdx.x; e < nb * GRAD_SLOTS; e += TILE_PIXELS) {
        const int j = e / GRAD_SLOTS, q = e % GRAD_SLOTS;
        T sum = T(0);
        for (int w = 0; w < WARPS; ++w) sum += s_partial[(j * WARPS + w) * GRAD_SLOTS + q];
        out[int64_t(s_slots[j]) * GRAD_SLOTS + q] = sum;
      }
    }
  }
}

// One thread per (primitive, gradient slot); neighbouring threads read neighbouring values.
template <typename T>
__global__ void reduce_pair_grads_kernel(int64_t n, const int64_t* __restrict__ pair_offsets,
                                         const T* __restrict__ pair_grads, T* __restrict__ grads) {
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= n * GRAD_SLOTS) return;
  const int64_t i = e / GRAD_SLOTS;
  grads[e] = sum_pair_rows(pair_grads, pair_offsets[i], pair_offsets[i + 1], int(e - i * GRAD_SLOTS));
}

}  // namespace cuda
}  // namespace diffbmp
