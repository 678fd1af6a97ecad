// Host ops of the cuda backend: input checks, allocation (every buffer is a torch tensor on the
// inputs' device, CUB's temporary storage included), dtype dispatch and the error check after
// every launch. The kernels live in rasterize_cuda.cu, the mathematics in csrc/include/diffbmp.
#include <torch/extension.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "../host/checks.h"
#include "cuda_host.h"
#include "rasterize_cuda.h"

namespace diffbmp {
namespace {

using cuda::check_cuda;
using cuda::check_launch;

constexpr int64_t INT32_LIMIT = std::numeric_limits<int32_t>::max();

void check_device(const CompositeInputs& in, const char* op) {
  TORCH_CHECK(cuda::on_backend_device(in.means), op, ": means must be on ", cuda::BACKEND_DEVICE, ", got ",
              in.means.device());
  // Texels are read as one 16-byte vector each.
  TORCH_CHECK(reinterpret_cast<uintptr_t>(in.texels.data_ptr()) % 16 == 0, op,
              ": texels must start at a 16-byte aligned address; pass texels.clone()");
}

// Tiles of the canvas; tile indices are int32 keys and block indices, and one more key marks
// the sentinel pairs.
int64_t num_tiles_of(const CompositeInputs& in, const char* op) {
  const int64_t tiles = int64_t(tiles_x_of(int(in.width))) * tiles_y_of(int(in.height));
  TORCH_CHECK(tiles < INT32_LIMIT, op, ": a canvas of ", in.height, "x", in.width, " has ", tiles, " tiles of ",
              TILE_SIZE, "x", TILE_SIZE, " pixels; at most 2^31 - 2 are supported");
  return tiles;
}

at::Tensor byte_buffer(int64_t bytes, const at::Tensor& like) {
  return at::empty({bytes > 0 ? bytes : 1}, like.options().dtype(at::kByte));
}

// The number of pairs, read back together with everything else the host must check before
// it goes on: the range of the shape ids and the caller's value flags. This is the one
// synchronisation of a forward pass; the kernels before it are safe with any values
// (prepare_primitive culls a shape id outside the bank).
int64_t read_back_pairs(const CompositeInputs& in, const at::Tensor& pair_offsets, const char* op) {
  const int64_t n = in.means.size(0);
  const auto lopts = pair_offsets.options();
  std::vector<at::Tensor> parts = {pair_offsets.slice(0, n, n + 1)};
  if (n > 0) {
    const auto range = at::aminmax(in.shape_ids);
    parts.push_back(std::get<0>(range).to(at::kLong).view({1}));
    parts.push_back(std::get<1>(range).to(at::kLong).view({1}));
  } else {
    parts.push_back(at::zeros({2}, lopts));
  }
  const bool has_flags = in.value_flags.defined() && in.value_flags.numel() > 0;
  parts.push_back(has_flags ? in.value_flags.any().to(at::kLong).view({1}) : at::zeros({1}, lopts));
  const at::Tensor host = at::cat(parts).cpu();
  const int64_t* v = host.data_ptr<int64_t>();
  const int64_t pairs = v[0], lo = v[1], hi = v[2];
  TORCH_CHECK_VALUE(v[3] == 0, op, INVALID_VALUES);
  TORCH_CHECK(lo >= 0 && hi < in.entries.size(0), op, ": shape_ids must lie in [0, ", in.entries.size(0),
              "), got values in [", lo, ", ", hi, "]");
  TORCH_CHECK(pairs <= INT32_LIMIT, op, ": the scene has ", pairs, " (primitive, tile) pairs but at most 2^31 - 1 ",
              "are supported; render fewer or smaller primitives, or a smaller canvas");
  return pairs;
}

// The binning of one call (steps 1-5): primitive records, every primitive's first pair
// (pair_offsets [N + 1] int64), the tile ranges (tile_start [tiles + 1] int32) and, per sorted
// pair, its primitive (sorted_prim [P] int32) and emission slot (pair_slot [P] int32).
struct Binning {
  at::Tensor prims, pair_offsets, tile_start, sorted_prim, pair_slot;
};

// mismatches: [1] counter of primitives whose two walks disagreed, or nullptr. count_skew:
// undefined, or [N] int64 added to the counts (bin_pairs_cuda, for tests).
template <typename T>
Binning bin(const CompositeInputs& in, const cuda::SceneArgs<T>& s, int64_t* mismatches, const char* op,
            const at::Tensor& count_skew = at::Tensor()) {
  using Prim = cuda::Prim<T>;
  const cudaStream_t stream = cuda::current_stream();
  const int64_t n = in.means.size(0), num_tiles = num_tiles_of(in, op);
  const auto iopts = in.means.options().dtype(at::kInt);
  const auto lopts = in.means.options().dtype(at::kLong);
  Binning b;
  b.prims = at::zeros({std::max<int64_t>(1, n * int64_t(sizeof(Prim)))}, in.means.options().dtype(at::kByte));
  Prim* prims = reinterpret_cast<Prim*>(b.prims.data_ptr<uint8_t>());

  // Tiles per primitive, then their exclusive sum: pair_offsets[n] is the number of pairs.
  at::Tensor tile_counts = at::zeros({n + 1}, lopts);
  b.pair_offsets = at::empty({n + 1}, lopts);
  check_launch(cuda::prepare_and_count(s, prims, tile_counts.data_ptr<int64_t>(), stream), op, "prepare_and_count",
               stream);
  if (count_skew.defined()) tile_counts.slice(0, 0, n).add_(count_skew).clamp_min_(0);
  size_t temp_bytes = 0;
  check_cuda(cuda::exclusive_sum(nullptr, temp_bytes, tile_counts.data_ptr<int64_t>(),
                                 b.pair_offsets.data_ptr<int64_t>(), int(n + 1), stream),
             op, "exclusive_sum (size query)");
  at::Tensor temp = byte_buffer(int64_t(temp_bytes), in.means);
  check_launch(cuda::exclusive_sum(temp.data_ptr(), temp_bytes, tile_counts.data_ptr<int64_t>(),
                                   b.pair_offsets.data_ptr<int64_t>(), int(n + 1), stream),
               op, "exclusive_sum", stream);
  const int64_t pairs = read_back_pairs(in, b.pair_offsets, op);

  b.tile_start = at::empty({num_tiles + 1}, iopts);
  b.sorted_prim = at::empty({pairs}, iopts);
  b.pair_slot = at::empty({pairs}, iopts);
  if (pairs == 0) {
    b.tile_start.zero_();
    return b;
  }
  at::Tensor keys = at::empty({pairs}, iopts), keys_sorted = at::empty({pairs}, iopts);
  at::Tensor prim_ids = at::empty({pairs}, iopts);
  // Tile ids are < 2^31 - 1: the int32 buffers hold them bit for bit as uint32 keys.
  uint32_t* keys_ptr = reinterpret_cast<uint32_t*>(keys.data_ptr<int32_t>());
  uint32_t* keys_sorted_ptr = reinterpret_cast<uint32_t*>(keys_sorted.data_ptr<int32_t>());
  check_launch(cuda::emit_pairs(s, prims, b.pair_offsets.data_ptr<int64_t>(), keys_ptr, prim_ids.data_ptr<int32_t>(),
                                mismatches, stream),
               op, "emit_pairs", stream);
  // Sorted by tile, the sentinel key num_tiles included; the values are the emission slots.
  const int key_bits = cuda::key_bits_for(num_tiles + 1);
  const at::Tensor slots = at::arange(pairs, iopts);
  temp_bytes = 0;
  check_cuda(cuda::sort_pairs(nullptr, temp_bytes, keys_ptr, keys_sorted_ptr, slots.data_ptr<int32_t>(),
                              b.pair_slot.data_ptr<int32_t>(), int(pairs), key_bits, stream),
             op, "sort_pairs (size query)");
  temp = byte_buffer(int64_t(temp_bytes), in.means);
  check_launch(cuda::sort_pairs(temp.data_ptr(), temp_bytes, keys_ptr, keys_sorted_ptr, slots.data_ptr<int32_t>(),
                                b.pair_slot.data_ptr<int32_t>(), int(pairs), key_bits, stream),
               op, "sort_pairs", stream);
  at::index_select_out(b.sorted_prim, prim_ids, 0, b.pair_slot);
  check_launch(cuda::tile_ranges(keys_sorted_ptr, int(pairs), int(num_tiles), b.tile_start.data_ptr<int32_t>(), stream),
               op, "tile_ranges", stream);
  return b;
}

// The state a backward pass reads (saved by the forward pass), checked.
struct Saved {
  at::Tensor colour, t_final, count, tile_start, sorted_prim, prims, pair_slot, pair_offsets;
};

Saved check_saved(const CompositeInputs& in, const at::Tensor& grad_colour, const at::Tensor& grad_alpha,
                  const std::vector<at::Tensor>& saved, const char* op) {
  in.check(op);
  check_device(in, op);
  TORCH_CHECK(saved.size() == 9, op, ": expected the 9 tensors saved by the forward pass, got ", saved.size());
  const int64_t num_tiles = num_tiles_of(in, op), n = in.means.size(0);
  const auto dtype = in.means.scalar_type();
  const auto device = in.means.device();
  check_tensor(grad_colour, op, "grad_colour", dtype, device, {in.height, in.width, 3});
  check_tensor(grad_alpha, op, "grad_alpha", dtype, device, {in.height, in.width});
  Saved s{saved[0], saved[2], saved[3], saved[4], saved[5], saved[6], saved[7], saved[8]};
  check_tensor(s.colour, op, "saved colour", dtype, device, {in.height, in.width, 3});
  check_tensor(s.t_final, op, "saved t_final", dtype, device, {in.height, in.width});
  check_tensor(s.count, op, "saved count", at::kInt, device, {in.height, in.width});
  check_tensor(s.tile_start, op, "saved tile_start", at::kInt, device, {num_tiles + 1});
  check_tensor(s.sorted_prim, op, "saved sorted_prim", at::kInt, device, {-1});
  check_tensor(s.pair_slot, op, "saved pair_slot", at::kInt, device, {s.sorted_prim.size(0)});
  check_tensor(s.pair_offsets, op, "saved pair_offsets", at::kLong, device, {n + 1});
  const int64_t record = dtype == at::kDouble ? sizeof(cuda::Prim<double>) : sizeof(cuda::Prim<float>);
  check_tensor(s.prims, op, "saved prims", at::kByte, device, {std::max<int64_t>(1, n * record)});
  return s;
}

}  // namespace

// Returns {colour [H, W, 3], alpha [H, W], t_final [H, W], count [H, W] int32, tile_start [tiles + 1] int32,
//          sorted_prim [P] int32, prims [N * sizeof(Prim)] uint8, pair_slot [P] int32, pair_offsets [N + 1] int64}.
std::vector<at::Tensor> composite_forward_cuda(const CompositeInputs& in) {
  const char* op = "diffbmp composite_forward (cuda)";
  in.check(op);
  check_device(in, op);
  cuda::DeviceGuard guard(in.means.device());
  const auto fopts = in.means.options();
  at::Tensor colour = at::empty({in.height, in.width, 3}, fopts);
  at::Tensor alpha = at::empty({in.height, in.width}, fopts);
  at::Tensor t_final = at::empty({in.height, in.width}, fopts);
  at::Tensor count = at::empty({in.height, in.width}, fopts.dtype(at::kInt));
  Binning b;
  AT_DISPATCH_FLOATING_TYPES(in.means.scalar_type(), "composite_forward_cuda", [&] {
    using Prim = cuda::Prim<scalar_t>;
    const cuda::SceneArgs<scalar_t> s = scene_inputs<scalar_t>(in);
    b = bin(in, s, nullptr, op);
    const cudaStream_t stream = cuda::current_stream();
    check_launch(cuda::forward(s, reinterpret_cast<const Prim*>(b.prims.data_ptr<uint8_t>()),
                               b.tile_start.data_ptr<int32_t>(), b.sorted_prim.data_ptr<int32_t>(),
                               colour.data_ptr<scalar_t>(), alpha.data_ptr<scalar_t>(), t_final.data_ptr<scalar_t>(),
                               count.data_ptr<int32_t>(), stream),
                 op, "forward", stream);
  });
  return {colour, alpha, t_final, count, b.tile_start, b.sorted_prim, b.prims, b.pair_slot, b.pair_offsets};
}

// Returns the [N, 10] gradient (mx, my, rotation, sx, sy, r, g, b, opacity, beta), the same
// bits on every run: per-pair rows reduced in emission order.
at::Tensor composite_backward_cuda(const CompositeInputs& in, const at::Tensor& grad_colour,
                                   const at::Tensor& grad_alpha, const std::vector<at::Tensor>& saved) {
  const char* op = "diffbmp composite_backward (cuda)";
  const Saved sv = check_saved(in, grad_colour, grad_alpha, saved, op);
  cuda::DeviceGuard guard(in.means.device());
  const cudaStream_t stream = cuda::current_stream();
  const int64_t n = in.means.size(0);
  at::Tensor pair_grads = at::zeros({sv.sorted_prim.size(0), int64_t(GRAD_SLOTS)}, in.means.options());
  at::Tensor grads = at::empty({n, int64_t(GRAD_SLOTS)}, in.means.options());
  AT_DISPATCH_FLOATING_TYPES(in.means.scalar_type(), "composite_backward_cuda", [&] {
    using Prim = cuda::Prim<scalar_t>;
    const cuda::SceneArgs<scalar_t> s = scene_inputs<scalar_t>(in);
    check_launch(cuda::backward(s, reinterpret_cast<const Prim*>(sv.prims.data_ptr<uint8_t>()),
                                sv.tile_start.data_ptr<int32_t>(), sv.sorted_prim.data_ptr<int32_t>(),
                                sv.pair_slot.data_ptr<int32_t>(), grad_colour.data_ptr<scalar_t>(),
                                grad_alpha.data_ptr<scalar_t>(), sv.colour.data_ptr<scalar_t>(),
                                sv.t_final.data_ptr<scalar_t>(), sv.count.data_ptr<int32_t>(),
                                pair_grads.data_ptr<scalar_t>(), stream),
                 op, "backward", stream);
    check_launch(cuda::reduce_pair_grads(n, sv.pair_offsets.data_ptr<int64_t>(), pair_grads.data_ptr<scalar_t>(),
                                         grads.data_ptr<scalar_t>(), stream),
                 op, "reduce_pair_grads", stream);
  });
  return grads;
}

// As composite_backward_cuda, with float atomics: no per-pair rows, but the last bits of the
// result vary from run to run.
at::Tensor composite_backward_atomic_cuda(const CompositeInputs& in, const at::Tensor& grad_colour,
                                          const at::Tensor& grad_alpha, const std::vector<at::Tensor>& saved) {
  const char* op = "diffbmp composite_backward_atomic (cuda)";
  at::globalContext().alertNotDeterministic(op);
  const Saved sv = check_saved(in, grad_colour, grad_alpha, saved, op);
  cuda::DeviceGuard guard(in.means.device());
  const cudaStream_t stream = cuda::current_stream();
  at::Tensor grads = at::zeros({in.means.size(0), int64_t(GRAD_SLOTS)}, in.means.options());
  AT_DISPATCH_FLOATING_TYPES(in.means.scalar_type(), "composite_backward_atomic_cuda", [&] {
    using Prim = cuda::Prim<scalar_t>;
    const cuda::SceneArgs<scalar_t> s = scene_inputs<scalar_t>(in);
    check_launch(cuda::backward_atomic(s, reinterpret_cast<const Prim*>(sv.prims.data_ptr<uint8_t>()),
                                       sv.tile_start.data_ptr<int32_t>(), sv.sorted_prim.data_ptr<int32_t>(),
                                       grad_colour.data_ptr<scalar_t>(), grad_alpha.data_ptr<scalar_t>(),
                                       sv.colour.data_ptr<scalar_t>(), sv.t_final.data_ptr<scalar_t>(),
                                       sv.count.data_ptr<int32_t>(), grads.data_ptr<scalar_t>(), stream),
                 op, "backward_atomic", stream);
  });
  return grads;
}

// Returns {tile_start [tiles + 1] int64, sorted_prim [P] int32, prim_start [N + 1] int64, mismatches int64 scalar}.
std::vector<at::Tensor> bin_pairs_cuda(const CompositeInputs& in, const at::Tensor& count_skew) {
  const char* op = "diffbmp bin_pairs (cuda)";
  in.check(op);
  check_device(in, op);
  cuda::DeviceGuard guard(in.means.device());
  at::Tensor mismatches = at::zeros({}, in.means.options().dtype(at::kLong));
  Binning b;
  AT_DISPATCH_FLOATING_TYPES(in.means.scalar_type(), "bin_pairs_cuda", [&] {
    b = bin(in, scene_inputs<scalar_t>(in), mismatches.data_ptr<int64_t>(), op, count_skew);
  });
  return {b.tile_start.to(at::kLong), b.sorted_prim, b.pair_offsets, mismatches};
}

}  // namespace diffbmp
