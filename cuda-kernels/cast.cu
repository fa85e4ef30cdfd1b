// cast.cu: precision casts between the fp32 graph and the fp16/bf16 fast modes.
//
// Computes dst[i] = (T) src[i] with round-to-nearest-even, for n elements.
// PyTorch: tensor.to(torch.float16) / .to(torch.bfloat16) / .float().
// Layout: contiguous. Launch: 1-D grid-stride loop, block 256, grid = min(ceil(n/256), 262140).
#include "common.cuh"

#define GRID_STRIDE(i, n) JCLIP_GRID_STRIDE(i, n)

extern "C" __global__ void cast_f32_f16(__half* __restrict__ dst, const float* __restrict__ src, long long n) {
  GRID_STRIDE(i, n) dst[i] = __float2half_rn(src[i]);
}
extern "C" __global__ void cast_f32_bf16(__nv_bfloat16* __restrict__ dst, const float* __restrict__ src, long long n) {
  GRID_STRIDE(i, n) dst[i] = __float2bfloat16_rn(src[i]);
}
extern "C" __global__ void cast_f16_f32(float* __restrict__ dst, const __half* __restrict__ src, long long n) {
  GRID_STRIDE(i, n) dst[i] = __half2float(src[i]);
}
extern "C" __global__ void cast_bf16_f32(float* __restrict__ dst, const __nv_bfloat16* __restrict__ src, long long n) {
  GRID_STRIDE(i, n) dst[i] = __bfloat162float(src[i]);
}
