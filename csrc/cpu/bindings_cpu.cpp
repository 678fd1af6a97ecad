// Python module of the cpu backend (the API is csrc/host/bindings.h).
#include <torch/extension.h>

#include <vector>

#include "../host/bindings.h"

namespace diffbmp {
std::vector<at::Tensor> composite_forward_cpu(const CompositeInputs& in);
at::Tensor composite_backward_cpu(const CompositeInputs& in, const at::Tensor& grad_colour,
                                  const at::Tensor& grad_alpha, const std::vector<at::Tensor>& saved);
std::vector<at::Tensor> bin_pairs_cpu(const CompositeInputs& in, const at::Tensor& count_skew);
}  // namespace diffbmp

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "diffbmp cpu backend: tiled forward and backward compositing";
  diffbmp::define_backend_module(
      m, {"cpu", diffbmp::composite_forward_cpu, diffbmp::composite_backward_cpu, diffbmp::bin_pairs_cpu});
}
