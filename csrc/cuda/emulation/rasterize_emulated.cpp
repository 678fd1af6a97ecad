// rasterize_cuda.cu compiled by the host compiler against cuda_emulation.h (tests only;
// built with -DDIFFBMP_CUDA_EMULATION, see README.md beside this file).
#ifndef DIFFBMP_CUDA_EMULATION
#error "rasterize_emulated.cpp is only built with -DDIFFBMP_CUDA_EMULATION"
#endif
#include "../rasterize_cuda.cu"
