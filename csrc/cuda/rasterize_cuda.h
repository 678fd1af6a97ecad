// The cuda backend's launchers: prepare, bin, forward and backward over 16x16 tiles, one
// thread block per tile. Raw pointers, sizes and a stream in, a cudaError_t out: no torch
// here, so rasterize_cuda.cu compiles with nvcc alone in seconds. The host op
// (ops_cuda.cpp) checks inputs, owns every allocation and turns errors into exceptions.
// The per-primitive and per-pair mathematics come from csrc/include/diffbmp.
#pragma once

#include <cstddef>
#include <cstdint>

#ifdef DIFFBMP_CUDA_EMULATION
#include "emulation/cuda_emulation.h"  // host stand-in for the CUDA runtime (tests only)
#else
#include <cuda_runtime_api.h>
#endif

#include "diffbmp/binning.h"
#include "diffbmp/constants.h"
#include "diffbmp/geometry.h"
#include "diffbmp/pixel.h"
#include "diffbmp/scene_inputs.h"

namespace diffbmp {
namespace cuda {

// One thread per pixel of a tile.
constexpr int TILE_PIXELS = TILE_SIZE * TILE_SIZE;

// What every pixel of a tile needs about one primitive: computed once per call by
// prepare_and_count and staged through shared memory by the tile kernels in 16-byte words.
// The host op allocates the buffer zeroed, so padding bytes are never uninitialised.
template <typename T>
struct alignas(16) Prim {
  PrimGeom<T> geom;
  PrimLook<T> look;
};

// Read-only inputs of one composite call (csrc/include/diffbmp/scene_inputs.h).
template <typename T>
using SceneArgs = SceneInputs<T>;

// Radix-sort key bits that hold every key in [0, num_keys).
inline int key_bits_for(int64_t num_keys) {
  int bits = 1;
  while (bits < 32 && (int64_t(1) << bits) < num_keys) ++bits;
  return bits;
}

// Step 1: prims[i] = geometry and look of primitive i; tile_counts[i] = number of tiles
// primitive i touches (tile_counts[N] is left untouched).
template <typename T>
cudaError_t prepare_and_count(const SceneArgs<T>& s,
                              Prim<T>* prims,         // [N], zeroed
                              int64_t* tile_counts,   // [N + 1]
                              cudaStream_t stream);

// Step 2: out[i] = sum_{j < i} in[j] over n items (CUB). Call with temp == nullptr to get
// temp_bytes, then again with temp_bytes of device memory.
cudaError_t exclusive_sum(void* temp, size_t& temp_bytes,
                          const int64_t* in,  // [n]
                          int64_t* out,       // [n]
                          int n, cudaStream_t stream);

// Step 3: the (tile, primitive) pairs of primitive i into its slots [pair_offsets[i],
// pair_offsets[i + 1]) in row-major tile order (binning.h, write_pairs), so the pairs are
// emitted in primitive order; a slot the writing walk leaves holds the sentinel key
// num_tiles. When `mismatches` is not null, it counts the primitives whose counting and
// writing walks disagreed.
template <typename T>
cudaError_t emit_pairs(const SceneArgs<T>& s,
                       const Prim<T>* prims,          // [N]
                       const int64_t* pair_offsets,   // [N + 1]
                       uint32_t* tile_keys,           // [P]
                       int32_t* prim_ids,             // [P]
                       int64_t* mismatches,           // [1] or nullptr
                       cudaStream_t stream);

// Step 4: stable radix sort of the pairs by tile over the low key_bits bits (CUB); two-phase
// temp storage like exclusive_sum. The values are the pairs' emission slots.
cudaError_t sort_pairs(void* temp, size_t& temp_bytes,
                       const uint32_t* keys_in,   // [P]
                       uint32_t* keys_out,        // [P]
                       const int32_t* values_in,  // [P]
                       int32_t* values_out,       // [P]
                       int num_pairs, int key_bits, cudaStream_t stream);

// Step 5: tile_start[t] = first sorted pair of tile t; tile t owns [tile_start[t], tile_start[t + 1]).
// Sentinel pairs sort after tile_start[num_tiles], in no tile.
cudaError_t tile_ranges(const uint32_t* sorted_keys,  // [P]
                        int num_pairs, int num_tiles,
                        int32_t* tile_start,           // [num_tiles + 1]
                        cudaStream_t stream);

// Step 6: front to back over each tile's list with early termination. Writes C, alpha,
// the final transmittance and, per pixel, how many list entries it consumed.
template <typename T>
cudaError_t forward(const SceneArgs<T>& s,
                    const Prim<T>* prims,         // [N]
                    const int32_t* tile_start,    // [num_tiles + 1]
                    const int32_t* sorted_prim,   // [P]
                    T* colour,                    // [H, W, 3]
                    T* alpha,                     // [H, W]
                    T* t_final,                   // [H, W]
                    int32_t* count,               // [H, W]
                    cudaStream_t stream);

// Step 7, deterministic: front to back again, rebuilding each pixel's transmittance as the
// forward pass did; each list entry's gradient is summed over the tile's pixels in a fixed
// order (warp shuffles, then the warps in turn) into its own row, at its emission slot.
template <typename T>
cudaError_t backward(const SceneArgs<T>& s,
                     const Prim<T>* prims,         // [N]
                     const int32_t* tile_start,    // [num_tiles + 1]
                     const int32_t* sorted_prim,   // [P]
                     const int32_t* pair_slot,     // [P] emission slot of each sorted pair
                     const T* grad_colour,         // [H, W, 3]
                     const T* grad_alpha,          // [H, W]
                     const T* colour,              // [H, W, 3] saved C
                     const T* t_final,             // [H, W]
                     const int32_t* count,         // [H, W]
                     T* pair_grads,                // [P, GRAD_SLOTS], zero on entry
                     cudaStream_t stream);

// Step 8, deterministic: grads[i] = the sum of primitive i's rows of pair_grads in emission
// order (pixel.h, sum_pair_rows), as the cpu backend sums them.
template <typename T>
cudaError_t reduce_pair_grads(int64_t n,
                              const int64_t* pair_offsets,  // [N + 1]
                              const T* pair_grads,          // [P, GRAD_SLOTS]
                              T* grads,                     // [N, GRAD_SLOTS]
                              cudaStream_t stream);

// Step 7, atomic: as `backward`, but each warp adds its pixels' share of a primitive's
// gradient straight into grads with one atomicAdd per slot, in whatever order the warps run.
template <typename T>
cudaError_t backward_atomic(const SceneArgs<T>& s,
                            const Prim<T>* prims,         // [N]
                            const int32_t* tile_start,    // [num_tiles + 1]
                            const int32_t* sorted_prim,   // [P]
                            const T* grad_colour,         // [H, W, 3]
                            const T* grad_alpha,          // [H, W]
                            const T* colour,              // [H, W, 3] saved C
                            const T* t_final,             // [H, W]
                            const int32_t* count,         // [H, W]
                            T* grads,                     // [N, GRAD_SLOTS], zero on entry
                            cudaStream_t stream);

}  // namespace cuda
}  // namespace diffbmp
