// Python module of the cpu backend (the API is csrc/host/bindings.h).
#include <torch/extension.h>

#include <string>
#include <vector>

#include "../host/bindings.h"

namespace diffbmp {
std::vector<at::Tensor> composite_forward_cpu(const CompositeInputs& in);
at::Tensor composite_backward_cpu(const CompositeInputs& in, const at::Tensor& grad_colour,
                                  const at::Tensor& grad_alpha, const std::vector<at::Tensor>& saved);
std::vector<at::Tensor> bin_pairs_cpu(const CompositeInputs& in, const at::Tensor& count_skew);
void set_cpu_pixel_path(const std::string& name);
std::string cpu_pixel_path();
}  // namespace diffbmp

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "diffbmp cpu backend: tiled forward and backward compositing";
  diffbmp::define_backend_module(
      m, {"cpu", diffbmp::composite_forward_cpu, diffbmp::composite_backward_cpu, diffbmp::bin_pairs_cpu});
  m.def("set_pixel_path", &diffbmp::set_cpu_pixel_path,
        "Evaluate pixels in vectors of lanes ('lanes') or one at a time ('scalar') from now on");
  m.def("pixel_path", &diffbmp::cpu_pixel_path, "The pixel path the tile loops take: 'lanes' or 'scalar'");
}
