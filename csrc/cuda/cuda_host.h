// What the cuda host op needs from the CUDA side of PyTorch: a device guard, the current
// stream and the device test. Under DIFFBMP_CUDA_EMULATION (tests only; see
// csrc/cuda/emulation/README.md) the same op runs on CPU tensors with host stand-ins.
#pragma once

#include <torch/extension.h>

#include "rasterize_cuda.h"

#ifndef DIFFBMP_CUDA_EMULATION
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace diffbmp {
namespace cuda {

#ifndef DIFFBMP_CUDA_EMULATION
using DeviceGuard = c10::cuda::CUDAGuard;
inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }
inline bool on_backend_device(const at::Tensor& t) { return t.is_cuda(); }
constexpr const char* BACKEND_DEVICE = "a CUDA device";
#else
struct DeviceGuard {
  explicit DeviceGuard(const at::Device&) {}
};
inline cudaStream_t current_stream() { return nullptr; }
inline bool on_backend_device(const at::Tensor& t) { return t.is_cpu(); }
constexpr const char* BACKEND_DEVICE = "the CPU (cuda emulation build)";
#endif

// Turns the error of a launch (or of a CUB call) into an exception naming the op and the step.
inline void check_cuda(cudaError_t err, const char* op, const char* step) {
  TORCH_CHECK(err == cudaSuccess, op, ": CUDA error in ", step, ": ", cudaGetErrorString(err));
}

}  // namespace cuda
}  // namespace diffbmp
