// Input checks shared by the cpu and cuda host ops. Every message names the op and the tensor;
// TORCH_CHECK stays active in release builds, unlike assert.
#pragma once

#include <torch/extension.h>

#include <cmath>
#include <string>
#include <vector>

#include "diffbmp/constants.h"
#include "diffbmp/geometry.h"
#include "diffbmp/scene_inputs.h"

namespace diffbmp {

inline void check_tensor(const at::Tensor& t, const char* op, const char* name, at::ScalarType dtype,
                         const at::Device& device, std::initializer_list<int64_t> shape) {
  TORCH_CHECK(t.scalar_type() == dtype, op, ": ", name, " must be ", c10::toString(dtype), ", got ",
              c10::toString(t.scalar_type()));
  TORCH_CHECK(t.device() == device, op, ": ", name, " must be on ", device, ", got ", t.device());
  TORCH_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous");
  TORCH_CHECK(t.dim() == int64_t(shape.size()), op, ": ", name, " must have ", shape.size(), " dimensions, got ",
              t.sizes());
  int64_t d = 0;
  for (int64_t expected : shape) {
    TORCH_CHECK(expected < 0 || t.size(d) == expected, op, ": ", name, " has shape ", t.sizes(), ", expected size ",
                expected, " in dimension ", d);
    ++d;
  }
}

// The inputs of one composite call, checked once for both passes.
struct CompositeInputs {
  at::Tensor means, rotations, scales, colors, opacities, beta, shape_ids, texels, level_table, entries;
  int64_t height, width;
  double blur;
  // [K] bool, or undefined: value checks the caller computed on the inputs' device
  // (PrimitiveParams.value_flags). The forward pass reads them back with the first result it
  // needs on the host anyway, instead of synchronising once more, and raises ValueError
  // (TORCH_CHECK_VALUE) when any is set; the caller then names the problem.
  at::Tensor value_flags;

  void check(const char* op) const {
    const int64_t n = means.size(0);
    const auto dtype = means.scalar_type();
    const auto device = means.device();
    TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, op, ": means must be float32 or float64, got ",
                c10::toString(dtype));
    TORCH_CHECK(height > 0 && width > 0, op, ": height and width must be positive, got ", height, "x", width);
    TORCH_CHECK(height < (1 << 24) && width < (1 << 24), op, ": canvas of ", height, "x", width, " is too large");
    TORCH_CHECK(blur >= 0.0 && std::isfinite(blur), op, ": blur must be a finite number >= 0, got ", blur);
    check_tensor(means, op, "means", dtype, device, {n, 2});
    check_tensor(rotations, op, "rotations", dtype, device, {n});
    check_tensor(scales, op, "scales", dtype, device, {n, 2});
    check_tensor(colors, op, "colors", dtype, device, {n, 3});
    check_tensor(opacities, op, "opacities", dtype, device, {n});
    check_tensor(beta, op, "beta", dtype, device, {n});
    check_tensor(shape_ids, op, "shape_ids", at::kInt, device, {n});
    check_tensor(texels, op, "texels", dtype, device, {-1, 4});
    check_tensor(entries, op, "entries", at::kInt, device, {-1, 5});
    check_tensor(level_table, op, "level_table", at::kInt, device, {entries.size(0), MAX_LEVELS, MAX_LEVELS, 3});
    TORCH_CHECK(n < (int64_t(1) << 31), op, ": at most 2^31 - 1 primitives are supported, got ", n);
    if (value_flags.defined()) check_tensor(value_flags, op, "value_flags", at::kBool, device, {-1});
  }
};

// The message of the ValueError raised when a value flag is set.
constexpr const char* INVALID_VALUES =
    ": the primitive parameters hold invalid values (NaN or infinity, scales <= 0, opacities or beta outside "
    "[0, 1], or shape_ids outside the bank)";

// The ten input tensors in the order the Python side passes them.
inline CompositeInputs make_inputs(const std::vector<at::Tensor>& t, int64_t height, int64_t width, double blur,
                                   const c10::optional<at::Tensor>& value_flags, const char* op) {
  TORCH_CHECK(t.size() == 10, op, ": expected 10 input tensors (means, rotations, scales, colors, opacities, beta, ",
              "shape_ids, texels, level_table, entries), got ", t.size());
  CompositeInputs in{t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], height, width, blur};
  if (value_flags.has_value()) in.value_flags = *value_flags;
  return in;
}

// The raw view of checked inputs that both backends' rasterisers read.
template <typename T>
SceneInputs<T> scene_inputs(const CompositeInputs& in) {
  SceneInputs<T> s;
  s.n = in.means.size(0);
  s.means = in.means.data_ptr<T>();
  s.rotations = in.rotations.data_ptr<T>();
  s.scales = in.scales.data_ptr<T>();
  s.colors = in.colors.data_ptr<T>();
  s.opacities = in.opacities.data_ptr<T>();
  s.beta = in.beta.data_ptr<T>();
  s.shape_ids = in.shape_ids.data_ptr<int32_t>();
  s.texels = in.texels.data_ptr<T>();
  s.level_table = in.level_table.data_ptr<int32_t>();
  s.entries = in.entries.data_ptr<int32_t>();
  s.num_entries = int(in.entries.size(0));
  s.height = int(in.height);
  s.width = int(in.width);
  s.sigma_e = effective_sigma<T>(T(in.blur));
  return s;
}

}  // namespace diffbmp
