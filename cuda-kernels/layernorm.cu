// layernorm.cu: LayerNorm over the last dimension, optionally fused with the residual add.
//
// Computes, for row-major [rows, D] inputs:
//   s   = x + residual            (residual may be NULL: s = x)
//   sum_out = s                   (when sum_out is not NULL: the new residual stream)
//   out = (s - mean(s)) / sqrt(var(s) + eps) * gamma + beta    (biased variance, as PyTorch)
// PyTorch: torch.nn.functional.layer_norm(x + residual, (D,), gamma, beta, eps), CLIP's LayerNorm
// subclass computes it in fp32, as this kernel does (two-pass statistics: mean first, then the
// centred sum of squares, for accuracy at D up to 1280).
// Versions: add_layernorm_f32 / _f16 / _bf16: x, residual, out, sum_out in that type; gamma and
// beta always fp32; statistics always fp32.
// Layout: every tensor contiguous row-major; out may alias x; sum_out may alias x or residual.
// Launch: one warp per row; block = 256 threads (8 rows), grid = ceil(rows / 8).
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void add_layernorm(T* out, T* sum_out, const T* x, const T* residual, const float* __restrict__ gamma,
                                              const float* __restrict__ beta, long long rows, int D, float eps) {
  const int lane = threadIdx.x % JCLIP_WARP;
  const long long row = (long long)blockIdx.x * (blockDim.x / JCLIP_WARP) + threadIdx.x / JCLIP_WARP;
  if (row >= rows) return;
  const T* xr = x + row * D;
  const T* rr = residual ? residual + row * D : nullptr;

  float sum = 0.0f;
  for (int i = lane; i < D; i += JCLIP_WARP) sum += ld(xr[i]) + (rr ? ld(rr[i]) : 0.0f);
  const float mean = warp_sum(sum) / D;

  float sq = 0.0f;
  for (int i = lane; i < D; i += JCLIP_WARP) {
    float d = ld(xr[i]) + (rr ? ld(rr[i]) : 0.0f) - mean;
    sq += d * d;
  }
  const float rstd = 1.0f / sqrtf(warp_sum(sq) / D + eps);

  T* orow = out + row * D;
  T* srow = sum_out ? sum_out + row * D : nullptr;
  for (int i = lane; i < D; i += JCLIP_WARP) {
    float s = ld(xr[i]) + (rr ? ld(rr[i]) : 0.0f);
    if (srow) srow[i] = st<T>(s);
    orow[i] = st<T>((s - mean) * rstd * gamma[i] + beta[i]);
  }
}

#define LAYERNORM(S, T)                                                                                          \
  extern "C" __global__ void add_layernorm_##S(T* out, T* sum_out, const T* x, const T* residual, const float* gamma, \
                                               const float* beta, long long rows, int D, float eps) {            \
    add_layernorm<T>(out, sum_out, x, residual, gamma, beta, rows, D, eps);                                      \
  }
JCLIP_FOR_TYPES(LAYERNORM)
