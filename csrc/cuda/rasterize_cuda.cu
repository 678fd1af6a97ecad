// Launchers of the cuda backend (declared in rasterize_cuda.h): grid sizes, CUB calls and
// the error of every launch. No torch headers: `nvcc -c` of this file takes seconds.
#include "kernels_cuda.cuh"

#ifndef DIFFBMP_CUDA_EMULATION
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>
// kernel<<<grid, block, 0, stream>>>(args...)
#define DIFFBMP_LAUNCH(kernel, grid, block, stream, ...) kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#else
#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>
#define DIFFBMP_LAUNCH(kernel, grid, block, stream, ...) \
  ::diffbmp::emulation::launch((grid), (block), [&] { kernel(__VA_ARGS__); })
#endif

namespace diffbmp {
namespace cuda {
namespace {

// Blocks of `threads` covering `items` threads; items > 0.
inline unsigned blocks_for(int64_t items, int threads) { return unsigned((items + threads - 1) / threads); }

}  // namespace

template <typename T>
cudaError_t prepare_and_count(const SceneArgs<T>& s, Prim<T>* prims, int64_t* tile_counts, cudaStream_t stream) {
  if (s.n == 0) return cudaSuccess;
  DIFFBMP_LAUNCH(prepare_kernel<T>, blocks_for(s.n, TILE_PIXELS), TILE_PIXELS, stream, s, prims, tile_counts);
  return cudaGetLastError();
}

cudaError_t exclusive_sum(void* temp, size_t& temp_bytes, const int64_t* in, int64_t* out, int n, cudaStream_t stream) {
#ifndef DIFFBMP_CUDA_EMULATION
  cudaError_t err = cub::DeviceScan::ExclusiveSum(temp, temp_bytes, in, out, n, stream);
  if (err != cudaSuccess) return err;
  return cudaGetLastError();
#else
  (void)stream;
  if (temp == nullptr) {
    temp_bytes = 1;
    return cudaSuccess;
  }
  std::exclusive_scan(in, in + n, out, int64_t(0));
  return cudaSuccess;
#endif
}

template <typename T>
cudaError_t emit_pairs(const SceneArgs<T>& s, const Prim<T>* prims, const int64_t* pair_offsets, uint32_t* tile_keys,
                       int32_t* prim_ids, int64_t* mismatches, cudaStream_t stream) {
  if (s.n == 0) return cudaSuccess;
  DIFFBMP_LAUNCH(emit_kernel<T>, blocks_for(s.n, TILE_PIXELS), TILE_PIXELS, stream, s, prims, pair_offsets, tile_keys,
                 prim_ids, mismatches);
  return cudaGetLastError();
}

cudaError_t sort_pairs(void* temp, size_t& temp_bytes, const uint32_t* keys_in, uint32_t* keys_out,
                       const int32_t* values_in, int32_t* values_out, int num_pairs, int key_bits,
                       cudaStream_t stream) {
#ifndef DIFFBMP_CUDA_EMULATION
  // Radix sort is stable: pairs emitted in primitive order stay in painting order per tile.
  cudaError_t err = cub::DeviceRadixSort::SortPairs(temp, temp_bytes, keys_in, keys_out, values_in, values_out,
                                                    num_pairs, 0, key_bits, stream);
  if (err != cudaSuccess) return err;
  return cudaGetLastError();
#else
  (void)stream;
  if (temp == nullptr) {
    temp_bytes = 1;
    return cudaSuccess;
  }
  const uint32_t mask = key_bits >= 32 ? ~0u : ((1u << key_bits) - 1u);
  std::vector<int> order(num_pairs);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return (keys_in[a] & mask) < (keys_in[b] & mask); });
  for (int p = 0; p < num_pairs; ++p) {
    keys_out[p] = keys_in[order[p]];
    values_out[p] = values_in[order[p]];
  }
  return cudaSuccess;
#endif
}

cudaError_t tile_ranges(const uint32_t* sorted_keys, int num_pairs, int num_tiles, int32_t* tile_start,
                        cudaStream_t stream) {
  DIFFBMP_LAUNCH(tile_ranges_kernel, blocks_for(int64_t(num_tiles) + 1, TILE_PIXELS), TILE_PIXELS, stream,
                 sorted_keys, num_pairs, num_tiles, tile_start);
  return cudaGetLastError();
}

template <typename T>
cudaError_t forward(const SceneArgs<T>& s, const Prim<T>* prims, const int32_t* tile_start,
                    const int32_t* sorted_prim, T* colour, T* alpha, T* t_final, int32_t* count, cudaStream_t stream) {
  const int64_t num_tiles = int64_t(tiles_x_of(s.width)) * tiles_y_of(s.height);
  DIFFBMP_LAUNCH(forward_kernel<T>, unsigned(num_tiles), TILE_PIXELS, stream, s, prims, tile_start, sorted_prim,
                 colour, alpha, t_final, count);
  return cudaGetLastError();
}

template <typename T>
cudaError_t backward(const SceneArgs<T>& s, const Prim<T>* prims, const int32_t* tile_start,
                     const int32_t* sorted_prim, const int32_t* pair_slot, const T* grad_colour, const T* grad_alpha,
                     const T* colour, const T* t_final, const int32_t* count, T* pair_grads, cudaStream_t stream) {
  if (s.n == 0) return cudaSuccess;
  const int64_t num_tiles = int64_t(tiles_x_of(s.width)) * tiles_y_of(s.height);
  auto* kernel = &backward_kernel<T, true>;
  DIFFBMP_LAUNCH(kernel, unsigned(num_tiles), TILE_PIXELS, stream, s, prims, tile_start,
                 sorted_prim, pair_slot, grad_colour, grad_alpha, colour, t_final, count, pair_grads);
  return cudaGetLastError();
}

template <typename T>
cudaError_t reduce_pair_grads(int64_t n, const int64_t* pair_offsets, const T* pair_grads, T* grads,
                              cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  DIFFBMP_LAUNCH(reduce_pair_grads_kernel<T>, blocks_for(n * GRAD_SLOTS, TILE_PIXELS), TILE_PIXELS, stream, n,
                 pair_offsets, pair_grads, grads);
  return cudaGetLastError();
}

template <typename T>
cudaError_t backward_atomic(const SceneArgs<T>& s, const Prim<T>* prims, const int32_t* tile_start,
                            const int32_t* sorted_prim, const T* grad_colour, const T* grad_alpha, const T* colour,
                            const T* t_final, const int32_t* count, T* grads, cudaStream_t stream) {
  if (s.n == 0) return cudaSuccess;
  const int64_t num_tiles = int64_t(tiles_x_of(s.width)) * tiles_y_of(s.height);
  auto* kernel = &backward_kernel<T, false>;
  DIFFBMP_LAUNCH(kernel, unsigned(num_tiles), TILE_PIXELS, stream, s, prims, tile_start,
                 sorted_prim, static_cast<const int32_t*>(nullptr), grad_colour, grad_alpha, colour, t_final, count,
                 grads);
  return cudaGetLastError();
}

#define DIFFBMP_INSTANTIATE(T)                                                                                     \
  template cudaError_t prepare_and_count<T>(const SceneArgs<T>&, Prim<T>*, int64_t*, cudaStream_t);               \
  template cudaError_t emit_pairs<T>(const SceneArgs<T>&, const Prim<T>*, const int64_t*, uint32_t*, int32_t*,    \
                                     int64_t*, cudaStream_t);                                                      \
  template cudaError_t forward<T>(const SceneArgs<T>&, const Prim<T>*, const int32_t*, const int32_t*, T*, T*, T*, \
                                  int32_t*, cudaStream_t);                                                         \
  template cudaError_t backward<T>(const SceneArgs<T>&, const Prim<T>*, const int32_t*, const int32_t*,            \
                                   const int32_t*, const T*, const T*, const T*, const T*, const int32_t*, T*,     \
                                   cudaStream_t);                                                                  \
  template cudaError_t reduce_pair_grads<T>(int64_t, const int64_t*, const T*, T*, cudaStream_t);                 \
  template cudaError_t backward_atomic<T>(const SceneArgs<T>&, const Prim<T>*, const int32_t*, const int32_t*,     \
                                          const T*, const T*, const T*, const T*, const int32_t*, T*, cudaStream_t);

DIFFBMP_INSTANTIATE(float)
DIFFBMP_INSTANTIATE(double)

}  // namespace cuda
}  // namespace diffbmp
