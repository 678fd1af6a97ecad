// What the cuda host op needs from the CUDA side of PyTorch: a device guard, the current
// stream and the device test. Under DIFFBMP_CUDA_EMULATION (tests only; see
// csrc/cuda/emulation/README.md) the same op runs on CPU tensors with host stand-ins.
#pragma once

#include <torch/extension.h>

#include <cstdlib>

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

// DIFFBMP_CUDA_SYNC=1: wait for every launch and check it, so a fault inside a kernel is
// reported by that kernel's step instead of by whatever synchronises next (slow; for
// debugging). Read at every launch, so it can be switched within a process.
inline bool sync_after_launches() {
  const char* value = std::getenv("DIFFBMP_CUDA_SYNC");
  return value != nullptr && value[0] == '1' && value[1] == '\0';
}

// check_cuda for the error of a launch, and, under DIFFBMP_CUDA_SYNC=1, for its execution.
inline void check_launch(cudaError_t err, const char* op, const char* step, cudaStream_t stream) {
  check_cuda(err, op, step);
  if (sync_after_launches()) check_cuda(cudaStreamSynchronize(stream), op, step);
}

}  // namespace cuda
}  // namespace diffbmp
