// Python module of the cuda backend: the API of csrc/host/bindings.h, plus the atomic backward.
#include <torch/extension.h>

#include <vector>

#include "../host/bindings.h"

namespace diffbmp {
std::vector<at::Tensor> composite_forward_cuda(const CompositeInputs& in);
at::Tensor composite_backward_cuda(const CompositeInputs& in, const at::Tensor& grad_colour,
                                   const at::Tensor& grad_alpha, const std::vector<at::Tensor>& saved);
at::Tensor composite_backward_atomic_cuda(const CompositeInputs& in, const at::Tensor& grad_colour,
                                          const at::Tensor& grad_alpha, const std::vector<at::Tensor>& saved);
std::vector<at::Tensor> bin_pairs_cuda(const CompositeInputs& in, const at::Tensor& count_skew);
}  // namespace diffbmp

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "diffbmp cuda backend: tiled forward and backward compositing, one thread block per 16x16 tile";
  diffbmp::define_backend_module(
      m, {"cuda", diffbmp::composite_forward_cuda, diffbmp::composite_backward_cuda, diffbmp::bin_pairs_cuda});
  m.def(
      "composite_backward_atomic",
      [](const std::vector<at::Tensor>& inputs, int64_t height, int64_t width, double blur,
         const at::Tensor& grad_colour, const at::Tensor& grad_alpha, const std::vector<at::Tensor>& saved) {
        return diffbmp::composite_backward_atomic_cuda(
            diffbmp::make_inputs(inputs, height, width, blur, c10::nullopt, "diffbmp (cuda)"), grad_colour, grad_alpha,
            saved);
      },
      "Backward pass with float atomics: the order of the sums varies from run to run (raises PyTorch's "
      "nondeterminism alert); returns the [N, 10] parameter gradient");
}
