// Host ops of the cpu backend: input checks, allocation, dtype dispatch. The loops live in
// rasterize_cpu.h, the mathematics in csrc/include/diffbmp.
#include <torch/extension.h>

#include <atomic>
#include <string>
#include <vector>

#include "../host/checks.h"
#include "rasterize_cpu.h"

namespace diffbmp {
namespace {

// The tile loops' pixel path for every later call (set_cpu_pixel_path). Lanes by default where
// the build targets AVX2; built for any x86-64 (SSE2 pairs) they are slower than the scalar
// loops on small primitives, and elsewhere they are not measured, so the scalar loops stay
// the default there.
#if defined(DIFFBMP_CPU_LANES) && defined(__AVX2__)
constexpr cpu::PixelPath DEFAULT_PIXEL_PATH = cpu::PixelPath::lanes;
#else
constexpr cpu::PixelPath DEFAULT_PIXEL_PATH = cpu::PixelPath::scalar;
#endif
std::atomic<cpu::PixelPath> pixel_path_setting{DEFAULT_PIXEL_PATH};

void check_values(const CompositeInputs& in, const char* op) {
  TORCH_CHECK_VALUE(!in.value_flags.defined() || !in.value_flags.any().item<bool>(), op, INVALID_VALUES);
  if (in.shape_ids.numel() == 0) return;
  const int64_t lo = in.shape_ids.min().item<int64_t>(), hi = in.shape_ids.max().item<int64_t>();
  TORCH_CHECK(lo >= 0 && hi < in.entries.size(0), op, ": shape_ids must lie in [0, ", in.entries.size(0),
              "), got values in [", lo, ", ", hi, "]");
}

void check_host(const CompositeInputs& in, const char* op) {
  in.check(op);
  TORCH_CHECK(in.means.device().is_cpu(), op, ": tensors must be on the CPU");
  check_values(in, op);
}

// Binning of a checked call: prim_start [N + 1], tile_start [tiles + 1], sorted_prim [P] and
// pair_slot [P]; returns the number of primitives whose two walks disagreed. count_skew:
// undefined, or [N] int64 added to the counts (bin_pairs_cpu, for tests).
template <typename T>
int64_t bin(const cpu::SceneView<T>& s, const std::vector<PrimGeom<T>>& geoms, at::Tensor& prim_start,
            at::Tensor& tile_start, at::Tensor& sorted_prim, at::Tensor& pair_slot,
            const at::Tensor& count_skew = at::Tensor()) {
  const auto lopts = prim_start.options();
  int64_t* starts = prim_start.data_ptr<int64_t>();
  cpu::TileWalks walks =
      cpu::count_pairs(s, geoms, starts, count_skew.defined() ? count_skew.data_ptr<int64_t>() : nullptr);
  const int64_t pairs = starts[s.n];
  tile_start = at::empty({s.num_tiles() + 1}, lopts);
  sorted_prim = at::empty({pairs}, lopts.dtype(at::kInt));
  pair_slot = at::empty({pairs}, lopts);
  return cpu::bin_pairs(s, geoms, walks, starts, tile_start.data_ptr<int64_t>(), sorted_prim.data_ptr<int32_t>(),
                        pair_slot.data_ptr<int64_t>());
}

}  // namespace

// Returns {colour [H, W, 3], alpha [H, W], t_final [H, W], count [H, W] int32,
//          tile_start [tiles + 1] int64, sorted_prim [P] int32, pair_slot [P] int64, prim_start [N + 1] int64}.
std::vector<at::Tensor> composite_forward_cpu(const CompositeInputs& in) {
  const char* op = "diffbmp composite_forward (cpu)";
  check_host(in, op);
  const auto fopts = in.means.options();
  const auto lopts = fopts.dtype(at::kLong);
  at::Tensor colour = at::empty({in.height, in.width, 3}, fopts);
  at::Tensor alpha = at::empty({in.height, in.width}, fopts);
  at::Tensor t_final = at::empty({in.height, in.width}, fopts);
  at::Tensor count = at::empty({in.height, in.width}, fopts.dtype(at::kInt));
  const int64_t n = in.means.size(0);
  at::Tensor prim_start = at::empty({n + 1}, lopts);
  at::Tensor tile_start, sorted_prim, pair_slot;
  AT_DISPATCH_FLOATING_TYPES(in.means.scalar_type(), "composite_forward_cpu", [&] {
    const cpu::SceneView<scalar_t> s(scene_inputs<scalar_t>(in));
    const auto geoms = cpu::prepare_all(s);
    bin(s, geoms, prim_start, tile_start, sorted_prim, pair_slot);
    cpu::forward_tiles(s, geoms, tile_start.data_ptr<int64_t>(), sorted_prim.data_ptr<int32_t>(),
                       colour.data_ptr<scalar_t>(), alpha.data_ptr<scalar_t>(), t_final.data_ptr<scalar_t>(),
                       count.data_ptr<int32_t>(), pixel_path_setting.load());
  });
  return {colour, alpha, t_final, count, tile_start, sorted_prim, pair_slot, prim_start};
}

// Returns the [N, 10] gradient (mx, my, rotation, sx, sy, r, g, b, opacity, beta).
at::Tensor composite_backward_cpu(const CompositeInputs& in, const at::Tensor& grad_colour,
                                  const at::Tensor& grad_alpha, const std::vector<at::Tensor>& saved) {
  const char* op = "diffbmp composite_backward (cpu)";
  in.check(op);
  TORCH_CHECK(saved.size() == 8, op, ": expected the 8 tensors saved by the forward pass, got ", saved.size());
  const auto dtype = in.means.scalar_type();
  const auto device = in.means.device();
  check_tensor(grad_colour, op, "grad_colour", dtype, device, {in.height, in.width, 3});
  check_tensor(grad_alpha, op, "grad_alpha", dtype, device, {in.height, in.width});
  const at::Tensor &colour = saved[0], &t_final = saved[2], &count = saved[3], &tile_start = saved[4],
                   &sorted_prim = saved[5], &pair_slot = saved[6], &prim_start = saved[7];
  const int64_t n = in.means.size(0);
  at::Tensor pair_grads = at::empty({sorted_prim.size(0), int64_t(GRAD_SLOTS)}, in.means.options());
  at::Tensor grads = at::empty({n, int64_t(GRAD_SLOTS)}, in.means.options());
  AT_DISPATCH_FLOATING_TYPES(dtype, "composite_backward_cpu", [&] {
    const cpu::SceneView<scalar_t> s(scene_inputs<scalar_t>(in));
    const auto geoms = cpu::prepare_all(s);
    cpu::backward_tiles(s, geoms, tile_start.data_ptr<int64_t>(), sorted_prim.data_ptr<int32_t>(),
                        pair_slot.data_ptr<int64_t>(), grad_colour.data_ptr<scalar_t>(),
                        grad_alpha.data_ptr<scalar_t>(), colour.data_ptr<scalar_t>(), t_final.data_ptr<scalar_t>(),
                        count.data_ptr<int32_t>(), sorted_prim.size(0), pair_grads.data_ptr<scalar_t>(),
                        pixel_path_setting.load());
    cpu::reduce_pair_grads(n, prim_start.data_ptr<int64_t>(), pair_grads.data_ptr<scalar_t>(),
                           grads.data_ptr<scalar_t>());
  });
  return grads;
}

// Returns {tile_start [tiles + 1] int64, sorted_prim [P] int32, prim_start [N + 1] int64, mismatches int64 scalar}.
std::vector<at::Tensor> bin_pairs_cpu(const CompositeInputs& in, const at::Tensor& count_skew) {
  const char* op = "diffbmp bin_pairs (cpu)";
  check_host(in, op);
  at::Tensor prim_start = at::empty({in.means.size(0) + 1}, in.means.options().dtype(at::kLong));
  at::Tensor tile_start, sorted_prim, pair_slot;
  int64_t mismatches = 0;
  AT_DISPATCH_FLOATING_TYPES(in.means.scalar_type(), "bin_pairs_cpu", [&] {
    const cpu::SceneView<scalar_t> s(scene_inputs<scalar_t>(in));
    mismatches = bin(s, cpu::prepare_all(s), prim_start, tile_start, sorted_prim, pair_slot, count_skew);
  });
  return {tile_start, sorted_prim, prim_start, at::scalar_tensor(mismatches, prim_start.options())};
}

// "lanes" (vectors of neighbouring pixels) or "scalar" (one pixel at a time, the reference the
// vector path is tested against) for every later call; DEFAULT_PIXEL_PATH until set.
void set_cpu_pixel_path(const std::string& name) {
  TORCH_CHECK_VALUE(name == "lanes" || name == "scalar", "pixel path must be 'lanes' or 'scalar', got '", name, "'");
  pixel_path_setting = name == "lanes" ? cpu::PixelPath::lanes : cpu::PixelPath::scalar;
}

std::string cpu_pixel_path() { return pixel_path_setting.load() == cpu::PixelPath::lanes ? "lanes" : "scalar"; }

}  // namespace diffbmp
