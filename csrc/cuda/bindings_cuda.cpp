// Python module of the cuda backend: the same API as the cpu backend's (bindings_cpu.cpp).
#include <torch/extension.h>

#include <vector>

#include "../host/checks.h"

namespace diffbmp {
std::vector<at::Tensor> composite_forward_cuda(const CompositeInputs& in);
at::Tensor composite_backward_cuda(const CompositeInputs& in, const at::Tensor& grad_colour,
                                   const at::Tensor& grad_alpha, const std::vector<at::Tensor>& saved);
}  // namespace diffbmp

namespace {

diffbmp::CompositeInputs make_inputs(const std::vector<at::Tensor>& t, int64_t height, int64_t width, double blur) {
  TORCH_CHECK(t.size() == 10, "diffbmp (cuda): expected 10 input tensors (means, rotations, scales, colors, opacities, "
              "beta, shape_ids, texels, level_table, entries), got ", t.size());
  return diffbmp::CompositeInputs{t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], height, width, blur};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "diffbmp cuda backend: tiled forward and backward compositing, one thread block per 16x16 tile";
  m.def(
      "composite_forward",
      [](const std::vector<at::Tensor>& inputs, int64_t height, int64_t width, double blur) {
        return diffbmp::composite_forward_cuda(make_inputs(inputs, height, width, blur));
      },
      "Forward pass; returns [colour, alpha, t_final, count, tile_start, sorted_prim, prims]");
  m.def(
      "composite_backward",
      [](const std::vector<at::Tensor>& inputs, int64_t height, int64_t width, double blur,
         const at::Tensor& grad_colour, const at::Tensor& grad_alpha, const std::vector<at::Tensor>& saved) {
        return diffbmp::composite_backward_cuda(make_inputs(inputs, height, width, blur), grad_colour, grad_alpha,
                                                saved);
      },
      "Backward pass; returns the [N, 10] parameter gradient");
  m.attr("TILE_SIZE") = diffbmp::TILE_SIZE;
  m.attr("ALPHA_MAX") = diffbmp::ALPHA_MAX;
  m.attr("T_MIN") = diffbmp::T_MIN;
}
