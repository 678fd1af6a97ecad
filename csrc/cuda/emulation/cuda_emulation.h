// A host stand-in for the small part of CUDA the kernels of csrc/cuda use, so that a machine
// without a GPU can run them (tests/test_cuda_compiles.py builds csrc/cuda with
// -DDIFFBMP_CUDA_EMULATION into a CPU extension and compares it with the other backends).
// Never part of a real build.
//
// Model: blocks run one after another, in a new random order at every launch; the threads of
// a block are cooperative fibers
// (ucontext) run round-robin on the calling thread. Every barrier (__syncthreads,
// __syncthreads_count) and warp collective (__ballot_sync, __shfl_down_sync) suspends the
// fiber until all threads of the block or warp have arrived, exactly as strict as the
// hardware: a collective that not every thread reaches is reported as a deadlock.
// __shared__ variables become function statics (one block runs at a time), atomics are
// plain read-modify-writes (one fiber runs at a time).
#pragma once

#include <ucontext.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

using cudaError_t = int;
using cudaStream_t = void*;
constexpr cudaError_t cudaSuccess = 0;
constexpr cudaError_t cudaErrorInvalidConfiguration = 9;

struct uint4 {
  unsigned x, y, z, w;
};

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

inline dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace diffbmp {
namespace emulation {

constexpr int WARP = 32;
constexpr size_t STACK_BYTES = 256 * 1024;

struct Barrier {
  int size = 0, arrived = 0;
  uint64_t generation = 0;
  uint64_t sum = 0, result = 0;
};

struct Fiber {
  ucontext_t context;
  std::unique_ptr<char[]> stack;
  bool finished = false;
  const Barrier* waiting = nullptr;  // suspended in this barrier's generation `waiting_generation`
  uint64_t waiting_generation = 0;
};

struct Block {
  std::vector<Fiber> fibers;
  ucontext_t scheduler;
  Barrier block_barrier;
  std::vector<Barrier> warp_barriers;
  std::vector<unsigned char> exchange[2];  // shuffle slots, 16 bytes per thread, by generation parity
  std::function<void()> body;
  int current = 0;
};

inline Block& block() {
  static Block b;
  return b;
}

inline cudaError_t& last_error() {
  static cudaError_t e = cudaSuccess;
  return e;
}

// Adds `value` to the barrier's sum, waits for every participant, returns the total.
inline uint64_t arrive(Barrier& bar, uint64_t value) {
  Block& b = block();
  Fiber& me = b.fibers[b.current];
  const uint64_t generation = bar.generation;
  bar.sum += value;
  if (++bar.arrived == bar.size) {
    bar.result = bar.sum;
    bar.sum = 0;
    bar.arrived = 0;
    ++bar.generation;
    return bar.result;
  }
  me.waiting = &bar;
  me.waiting_generation = generation;
  swapcontext(&me.context, &b.scheduler);
  // Only this generation can have completed: the next one needs this fiber too.
  return bar.result;
}

inline void fiber_entry() {
  Block& b = block();
  b.body();
  b.fibers[b.current].finished = true;  // uc_link returns to the scheduler
}

inline void set_thread_index(int linear) {
  threadIdx.x = unsigned(linear) % blockDim.x;
  threadIdx.y = (unsigned(linear) / blockDim.x) % blockDim.y;
  threadIdx.z = unsigned(linear) / (blockDim.x * blockDim.y);
}

inline void run_block(int threads) {
  Block& b = block();
  if (int(b.fibers.size()) < threads) b.fibers.resize(threads);
  b.block_barrier = Barrier{threads};
  const int warps = (threads + WARP - 1) / WARP;
  b.warp_barriers.assign(warps, Barrier{});
  for (int w = 0; w < warps; ++w) b.warp_barriers[w].size = threads - w * WARP < WARP ? threads - w * WARP : WARP;
  for (auto& slots : b.exchange) slots.assign(size_t(threads) * 16, 0);
  for (int t = 0; t < threads; ++t) {
    Fiber& f = b.fibers[t];
    if (!f.stack) f.stack.reset(new char[STACK_BYTES]);
    f.finished = false;
    f.waiting = nullptr;
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack.get();
    f.context.uc_stack.ss_size = STACK_BYTES;
    f.context.uc_link = &b.scheduler;
    makecontext(&f.context, fiber_entry, 0);
  }
  for (int left = threads; left > 0;) {
    bool progress = false;
    for (int t = 0; t < threads; ++t) {
      Fiber& f = b.fibers[t];
      if (f.finished) continue;
      if (f.waiting != nullptr && f.waiting->generation == f.waiting_generation) continue;
      f.waiting = nullptr;
      b.current = t;
      set_thread_index(t);
      swapcontext(&b.scheduler, &f.context);
      progress = true;
      if (f.finished) --left;
    }
    if (!progress) {
      std::fprintf(stderr,
                   "cuda emulation: deadlock in block (%u, %u, %u): %d threads wait at a barrier or warp collective "
                   "that the others never reach\n",
                   blockIdx.x, blockIdx.y, blockIdx.z, left);
      std::abort();
    }
  }
}

// kernel<<<grid, block>>>: runs `body` (which calls the kernel) for every thread of every block.
inline void launch(dim3 grid, dim3 threads, std::function<void()> body) {
  const uint64_t per_block = uint64_t(threads.x) * threads.y * threads.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || per_block == 0 || per_block > 1024) {
    last_error() = cudaErrorInvalidConfiguration;
    return;
  }
  Block& b = block();
  b.body = std::move(body);
  gridDim = grid;
  blockDim = threads;
  // Blocks run in a new random order at every launch, as a GPU's schedule may run them: a
  // result that depends on the order of blocks (float atomics) changes from run to run here
  // too, and a kernel that waits on another block's work fails.
  std::vector<dim3> blocks;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) blocks.emplace_back(x, y, z);
  static std::mt19937_64 schedule{std::random_device{}()};
  std::shuffle(blocks.begin(), blocks.end(), schedule);
  for (const dim3& block_index : blocks) {
    blockIdx = block_index;
    run_block(int(per_block));
  }
  b.body = nullptr;
}

inline Barrier& my_warp_barrier() {
  Block& b = block();
  return b.warp_barriers[b.current / WARP];
}

}  // namespace emulation
}  // namespace diffbmp

inline cudaError_t cudaGetLastError() {
  cudaError_t e = diffbmp::emulation::last_error();
  diffbmp::emulation::last_error() = cudaSuccess;
  return e;
}

// Launches run to completion when they are made: there is never anything to wait for.
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return diffbmp::emulation::last_error(); }

inline const char* cudaGetErrorString(cudaError_t e) {
  return e == cudaSuccess ? "no error" : e == cudaErrorInvalidConfiguration ? "invalid configuration argument" : "error";
}

inline void __syncthreads() { diffbmp::emulation::arrive(diffbmp::emulation::block().block_barrier, 0); }

inline int __syncthreads_count(int predicate) {
  return int(diffbmp::emulation::arrive(diffbmp::emulation::block().block_barrier, predicate != 0 ? 1 : 0));
}

inline unsigned __ballot_sync(unsigned mask, int predicate) {
  using namespace diffbmp::emulation;
  if (mask != 0xffffffffu || my_warp_barrier().size != WARP) {
    std::fprintf(stderr, "cuda emulation: __ballot_sync needs a full warp and mask\n");
    std::abort();
  }
  const int lane = block().current % WARP;
  return unsigned(arrive(my_warp_barrier(), predicate != 0 ? (uint64_t(1) << lane) : 0));
}

template <typename V>
inline V __shfl_down_sync(unsigned mask, V value, unsigned delta, int width = 32) {
  using namespace diffbmp::emulation;
  static_assert(sizeof(V) <= 16, "shuffle of a value wider than 16 bytes");
  Block& b = block();
  Barrier& bar = my_warp_barrier();
  if (mask != 0xffffffffu || width != WARP || bar.size != WARP) {
    std::fprintf(stderr, "cuda emulation: __shfl_down_sync needs a full warp and mask\n");
    std::abort();
  }
  const int me = b.current, lane = me % WARP;
  std::vector<unsigned char>& slots = b.exchange[bar.generation & 1];
  std::memcpy(&slots[size_t(me) * 16], &value, sizeof(V));
  arrive(bar, 0);
  if (lane + int(delta) >= WARP) return value;  // source lane out of range: own value
  V out;
  std::memcpy(&out, &slots[size_t(me + int(delta)) * 16], sizeof(V));
  return out;
}

template <typename V>
inline V atomicAdd(V* address, V value) {
  V old = *address;
  *address = old + value;
  return old;
}

inline int atomicMax(int* address, int value) {
  int old = *address;
  if (value > old) *address = value;
  return old;
}
