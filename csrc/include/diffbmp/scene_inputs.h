// The read-only inputs of one composite call as raw pointers: what the cpu loops and the
// cuda kernels read (passed to kernels by value). The host ops fill it from the checked
// tensors (scene_inputs in csrc/host/checks.h).
#pragma once

#include <cstdint>

namespace diffbmp {

template <typename T>
struct SceneInputs {
  int64_t n;
  const T* means;              // [N, 2]
  const T* rotations;          // [N]
  const T* scales;             // [N, 2]
  const T* colors;             // [N, 3]
  const T* opacities;          // [N]
  const T* beta;               // [N]
  const int32_t* shape_ids;    // [N]
  const T* texels;             // [T, 4]
  const int32_t* level_table;  // [E, MAX_LEVELS, MAX_LEVELS, 3]
  const int32_t* entries;      // [E, 5]
  int num_entries;             // E
  int height, width;
  T sigma_e;                   // effective blur (effective_sigma of the call's blur)
};

}  // namespace diffbmp
