// common.cuh: helpers shared by every jclip kernel.
// Kernels are compiled to PTX (scripts/build-ptx.sh) and launched from Java through the driver API
// (cuModuleLoadData / cuModuleGetFunction / cuLaunchKernel), so every entry point is extern "C".
// Kernels that exist in several precisions are written once as a template over the element type
// and instantiated by JCLIP_FOR_TYPES as <name>_f32, <name>_f16 and <name>_bf16; arithmetic is
// always fp32 (ld converts on load, st<T> rounds to nearest even on store).
#pragma once
#include <cuda_fp16.h>
#include <cuda_bf16.h>

#define JCLIP_WARP 32

#define JCLIP_FOR_TYPES(M) M(f32, float) M(f16, __half) M(bf16, __nv_bfloat16)

#define JCLIP_GRID_STRIDE(i, n) \
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

__device__ __forceinline__ float ld(float v) { return v; }
__device__ __forceinline__ float ld(__half v) { return __half2float(v); }
__device__ __forceinline__ float ld(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T st(float v);
template <> __device__ __forceinline__ float st<float>(float v) { return v; }
template <> __device__ __forceinline__ __half st<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 st<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

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

// The LINEAR epilogue's activation: 0 none, 1 QuickGELU (x * sigmoid(1.702 x), CLIP's), 2 GELU (erf)
// (glue.cu's bias_act and gemm_sm90.cu's epilogue compute it alike).
__device__ __forceinline__ float apply_act(float v, int act) {
  if (act == 1) return v / (1.0f + expf(-1.702f * v));
  if (act == 2) return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
  return v;
}

// apply_act for results rounded to 16 bits: QuickGELU with the fast intrinsics (ex2.approx and
// rcp.approx, 2 SFU operations an element instead of ~40 instructions for expf and IEEE division:
// within ~1e-6 relative of apply_act, far below the fp16/bf16 rounding that follows, which it
// changes by at most one unit in the last place; the tail's limits hold: v -> -inf gives 0,
// v -> +inf gives v); none and the erf GELU as apply_act. Used by gemm_sm90.cu's epilogue and
// glue.cu's bias_act_fast (fp32 keeps apply_act: its parity mode is within 1e-5).
__device__ __forceinline__ float fast_act(float v, int act) {
  if (act == 1) return __fdividef(v, 1.0f + __expf(-1.702f * v));
  return apply_act(v, act);
}

// 16 bytes of T, loaded and stored as one vector.
template <typename T>
struct alignas(16) Pack16 {
  T v[16 / sizeof(T)];
};
