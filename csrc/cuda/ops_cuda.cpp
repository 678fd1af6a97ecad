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

constexpr int64_t INT32_LIMIT = std::numeric_limits<int32_t>::max();

void check_device(const CompositeInputs& in, const char* op) {
  TORCH_CHECK(cuda::on_backend_device(in.means), op, ": means must be on ", cuda::BACKEND_DEVICE, ", got ",
              in.means.device());
}

// Tiles of the canvas; tile indices are int32 keys and block indices.
int64_t num_tiles_of(const CompositeInputs& in, const char* op) {
  const int64_t tiles = int64_t(cuda::tiles_x_of(int(in.width))) * cuda::tiles_y_of(int(in.height));
  TORCH_CHECK(tiles < INT32_LIMIT, op, ": a canvas of ", in.height, "x", in.width, " has ", tiles, " tiles of ",
              TILE_SIZE, "x", TILE_SIZE, " pixels; at most 2^31 - 2 are supported");
  return tiles;
}

// Device-side min/max (one synchronisation, like the cpu backend's check).
void check_shape_ids(const CompositeInputs& in, const char* op) {
  if (in.shape_ids.numel() == 0) return;
  const at::Tensor range = at::stack({in.shape_ids.min(), in.shape_ids.max()}).cpu();
  const int64_t lo = range[0].item<int64_t>(), hi = range[1].item<int64_t>();
  TORCH_CHECK(lo >= 0 && hi < in.entries.size(0), op, ": shape_ids must lie in [0, ", in.entries.size(0),
              "), got values in [", lo, ", ", hi, "]");
}

at::Tensor byte_buffer(int64_t bytes, const at::Tensor& like) {
  return at::empty({bytes > 0 ? bytes : 1}, like.options().dtype(at::kByte));
}

}  // namespace

// Returns {colour [H, W, 3], alpha [H, W], t_final [H, W], count [H, W] int32,
//          tile_start [tiles + 1] int32, sorted_prim [P] int32, prims [N * sizeof(Prim)] uint8}.
std::vector<at::Tensor> composite_forward_cuda(const CompositeInputs& in) {
  const char* op = "diffbmp composite_forward (cuda)";
  in.check(op);
  check_device(in, op);
  cuda::DeviceGuard guard(in.means.device());
  check_shape_ids(in, op);
  const int64_t num_tiles = num_tiles_of(in, op);
  const cudaStream_t stream = cuda::current_stream();
  const auto fopts = in.means.options();
  const auto iopts = fopts.dtype(at::kInt);
  const auto lopts = fopts.dtype(at::kLong);
  const int64_t n = in.means.size(0);
  TORCH_CHECK(n < INT32_LIMIT, op, ": at most 2^31 - 2 primitives are supported, got ", n);
  at::Tensor colour = at::empty({in.height, in.width, 3}, fopts);
  at::Tensor alpha = at::empty({in.height, in.width}, fopts);
  at::Tensor t_final = at::empty({in.height, in.width}, fopts);
  at::Tensor count = at::empty({in.height, in.width}, iopts);
  at::Tensor tile_start = at::empty({num_tiles + 1}, iopts);
  at::Tensor sorted_prim, prims;
  AT_DISPATCH_FLOATING_TYPES(in.means.scalar_type(), "composite_forward_cuda", [&] {
    using Prim = cuda::Prim<scalar_t>;
    const cuda::SceneArgs<scalar_t> s = scene_inputs<scalar_t>(in);
    prims = byte_buffer(n * int64_t(sizeof(Prim)), in.means);
    Prim* prims_ptr = reinterpret_cast<Prim*>(prims.data_ptr<uint8_t>());

    // Tiles per primitive, then their exclusive sum: offsets[n] is the number of pairs.
    at::Tensor tile_counts = at::zeros({n + 1}, lopts);
    at::Tensor offsets = at::empty({n + 1}, lopts);
    check_cuda(cuda::prepare_and_count(s, prims_ptr, tile_counts.data_ptr<int64_t>(), stream), op, "prepare_and_count");
    size_t temp_bytes = 0;
    check_cuda(cuda::exclusive_sum(nullptr, temp_bytes, tile_counts.data_ptr<int64_t>(), offsets.data_ptr<int64_t>(),
                                   int(n + 1), stream),
               op, "exclusive_sum (size query)");
    at::Tensor temp = byte_buffer(int64_t(temp_bytes), in.means);
    check_cuda(cuda::exclusive_sum(temp.data_ptr(), temp_bytes, tile_counts.data_ptr<int64_t>(),
                                   offsets.data_ptr<int64_t>(), int(n + 1), stream),
               op, "exclusive_sum");
    // The one synchronisation of the pass: the pair buffers are allocated at their exact size.
    const int64_t pairs = offsets[n].item<int64_t>();
    TORCH_CHECK(pairs <= INT32_LIMIT, op, ": the scene has ", pairs, " (primitive, tile) pairs but at most 2^31 - 1 ",
                "are supported; render fewer or smaller primitives, or a smaller canvas");

    sorted_prim = at::empty({pairs}, iopts);
    if (pairs > 0) {
      at::Tensor keys = at::empty({pairs}, iopts), keys_sorted = at::empty({pairs}, iopts);
      at::Tensor prim_ids = at::empty({pairs}, iopts);
      // Tile ids are < 2^31 - 1: the int32 buffers hold them bit for bit as uint32 keys.
      uint32_t* keys_ptr = reinterpret_cast<uint32_t*>(keys.data_ptr<int32_t>());
      uint32_t* keys_sorted_ptr = reinterpret_cast<uint32_t*>(keys_sorted.data_ptr<int32_t>());
      check_cuda(cuda::emit_pairs(s, prims_ptr, offsets.data_ptr<int64_t>(), keys_ptr, prim_ids.data_ptr<int32_t>(),
                                  stream),
                 op, "emit_pairs");
      const int key_bits = cuda::tile_key_bits(num_tiles);
      temp_bytes = 0;
      check_cuda(cuda::sort_pairs(nullptr, temp_bytes, keys_ptr, keys_sorted_ptr, prim_ids.data_ptr<int32_t>(),
                                  sorted_prim.data_ptr<int32_t>(), int(pairs), key_bits, stream),
                 op, "sort_pairs (size query)");
      temp = byte_buffer(int64_t(temp_bytes), in.means);
      check_cuda(cuda::sort_pairs(temp.data_ptr(), temp_bytes, keys_ptr, keys_sorted_ptr, prim_ids.data_ptr<int32_t>(),
                                  sorted_prim.data_ptr<int32_t>(), int(pairs), key_bits, stream),
                 op, "sort_pairs");
      check_cuda(cuda::tile_ranges(keys_sorted_ptr, int(pairs), int(num_tiles), tile_start.data_ptr<int32_t>(), stream),
                 op, "tile_ranges");
    } else {
      tile_start.zero_();
    }
    check_cuda(cuda::forward(s, prims_ptr, tile_start.data_ptr<int32_t>(), sorted_prim.data_ptr<int32_t>(),
                             colour.data_ptr<scalar_t>(), alpha.data_ptr<scalar_t>(), t_final.data_ptr<scalar_t>(),
                             count.data_ptr<int32_t>(), stream),
               op, "forward");
  });
  return {colour, alpha, t_final, count, tile_start, sorted_prim, prims};
}

// Returns the [N, 10] gradient (mx, my, rotation, sx, sy, r, g, b, opacity, beta).
at::Tensor composite_backward_cuda(const CompositeInputs& in, const at::Tensor& grad_colour,
                                   const at::Tensor& grad_alpha, const std::vector<at::Tensor>& saved) {
  const char* op = "diffbmp composite_backward (cuda)";
  in.check(op);
  check_device(in, op);
  cuda::DeviceGuard guard(in.means.device());
  TORCH_CHECK(saved.size() == 7, op, ": expected the 7 tensors saved by the forward pass, got ", saved.size());
  const int64_t num_tiles = num_tiles_of(in, op);
  const int64_t n = in.means.size(0);
  const auto dtype = in.means.scalar_type();
  const auto device = in.means.device();
  check_tensor(grad_colour, op, "grad_colour", dtype, device, {in.height, in.width, 3});
  check_tensor(grad_alpha, op, "grad_alpha", dtype, device, {in.height, in.width});
  const at::Tensor &colour = saved[0], &t_final = saved[2], &count = saved[3], &tile_start = saved[4],
                   &sorted_prim = saved[5], &prims = saved[6];
  check_tensor(colour, op, "saved colour", dtype, device, {in.height, in.width, 3});
  check_tensor(t_final, op, "saved t_final", dtype, device, {in.height, in.width});
  check_tensor(count, op, "saved count", at::kInt, device, {in.height, in.width});
  check_tensor(tile_start, op, "saved tile_start", at::kInt, device, {num_tiles + 1});
  check_tensor(sorted_prim, op, "saved sorted_prim", at::kInt, device, {-1});
  const cudaStream_t stream = cuda::current_stream();
  at::Tensor grads = at::zeros({n, int64_t(GRAD_SLOTS)}, in.means.options());
  AT_DISPATCH_FLOATING_TYPES(dtype, "composite_backward_cuda", [&] {
    using Prim = cuda::Prim<scalar_t>;
    check_tensor(prims, op, "saved prims", at::kByte, device, {std::max<int64_t>(1, n * int64_t(sizeof(Prim)))});
    const cuda::SceneArgs<scalar_t> s = scene_inputs<scalar_t>(in);
    check_cuda(cuda::backward(s, reinterpret_cast<const Prim*>(prims.data_ptr<uint8_t>()),
                              tile_start.data_ptr<int32_t>(), sorted_prim.data_ptr<int32_t>(),
                              grad_colour.data_ptr<scalar_t>(), grad_alpha.data_ptr<scalar_t>(),
                              colour.data_ptr<scalar_t>(), t_final.data_ptr<scalar_t>(), count.data_ptr<int32_t>(),
                              grads.data_ptr<scalar_t>(), stream),
               op, "backward");
  });
  return grads;
}

}  // namespace diffbmp
