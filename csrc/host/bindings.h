// The Python API of a backend module (bindings_cpu.cpp, bindings_cuda.cpp define theirs with it):
// the same functions, arguments and constants for every backend, so diffbmp/render.py calls
// them alike.
#pragma once

#include <torch/extension.h>

#include <string>
#include <vector>

#include "checks.h"

namespace diffbmp {

// What one backend implements (its host ops).
struct BackendOps {
  const char* name;  // "cpu" or "cuda"
  std::vector<at::Tensor> (*forward)(const CompositeInputs&);
  at::Tensor (*backward)(const CompositeInputs&, const at::Tensor& grad_colour, const at::Tensor& grad_alpha,
                         const std::vector<at::Tensor>& saved);
  std::vector<at::Tensor> (*bin)(const CompositeInputs&, const at::Tensor& count_skew);
};

inline void define_backend_module(pybind11::module& m, const BackendOps& ops) {
  namespace py = pybind11;
  const std::string op = std::string("diffbmp (") + ops.name + ")";
  m.def(
      "composite_forward",
      [ops, op](const std::vector<at::Tensor>& inputs, int64_t height, int64_t width, double blur,
                const c10::optional<at::Tensor>& value_flags) {
        return ops.forward(make_inputs(inputs, height, width, blur, value_flags, op.c_str()));
      },
      py::arg("inputs"), py::arg("height"), py::arg("width"), py::arg("blur"), py::arg("value_flags") = py::none(),
      "Forward pass; returns the premultiplied colour [H, W, 3], alpha [H, W] and the state the backward pass reads. "
      "value_flags: optional [K] bool tensor of failed value checks; any set raises ValueError.");
  m.def(
      "composite_backward",
      [ops, op](const std::vector<at::Tensor>& inputs, int64_t height, int64_t width, double blur,
                const at::Tensor& grad_colour, const at::Tensor& grad_alpha, const std::vector<at::Tensor>& saved) {
        return ops.backward(make_inputs(inputs, height, width, blur, c10::nullopt, op.c_str()), grad_colour, grad_alpha,
                            saved);
      },
      "Backward pass, deterministic (per-pair rows reduced in a fixed order); returns the [N, 10] parameter gradient");
  m.def(
      "bin_pairs",
      [ops, op](const std::vector<at::Tensor>& inputs, int64_t height, int64_t width, double blur,
                const c10::optional<at::Tensor>& count_skew) {
        const CompositeInputs in = make_inputs(inputs, height, width, blur, c10::nullopt, op.c_str());
        at::Tensor skew;
        if (count_skew.has_value()) {
          skew = *count_skew;
          check_tensor(skew, op.c_str(), "count_skew", at::kLong, in.means.device(), {in.means.size(0)});
        }
        return ops.bin(in, skew);
      },
      py::arg("inputs"), py::arg("height"), py::arg("width"), py::arg("blur"), py::arg("count_skew") = py::none(),
      "Binning alone, for tests and probes; returns [tile_start [tiles + 1], sorted_prim [P], prim_start [N + 1] "
      "(int64), mismatches (int64 scalar: primitives whose counting and writing walks disagreed)]. count_skew: "
      "optional [N] int64 added to the tile counts (floored at 0), which makes the writing walk disagree with them.");
  m.attr("TILE_SIZE") = TILE_SIZE;
  m.attr("ALPHA_MAX") = ALPHA_MAX;
  m.attr("T_MIN") = T_MIN;
}

}  // namespace diffbmp
