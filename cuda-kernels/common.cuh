// common.cuh: helpers shared by every jclip kernel.
// Kernels are compiled to PTX (scripts/build-ptx.sh) and launched from Java through the driver API
// (cuModuleLoadData / cuModuleGetFunction / cuLaunchKernel), so every entry point is extern "C".
#pragma once
#include <cuda_fp16.h>
#include <cuda_bf16.h>

#define JCLIP_WARP 32

// Sum of v over the 32 lanes of a warp; every lane gets the result.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Max of v over the 32 lanes of a warp; every lane gets the result.
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}
