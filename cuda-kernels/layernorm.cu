// layernorm.cu: LayerNorm over the last dimension, optionally fused with the residual add.
//
// Computes, for row-major [rows, D] inputs:
//   s   = x + residual            (residual may be NULL: s = x)
//   sum_out = s                   (when sum_out is not NULL: the new residual stream)
//   out = (s - mean(s)) / sqrt(var(s) + eps) * gamma + beta    (biased variance, as PyTorch)
// PyTorch: torch.nn.functional.layer_norm(x + residual, (D,), gamma, beta, eps), CLIP's LayerNorm
// subclass computes it in fp32, as this kernel does (two-pass statistics: mean first, then the
// centred sum of squares, for accuracy at D up to 1280).
// Layout: every tensor contiguous row-major; out may alias x; sum_out may alias x or residual.
// Launch: one warp per row; block = 256 threads (8 rows), grid = ceil(rows / 8).
#include "common.cuh"

extern "C" __global__ void add_layernorm_f32(float* out, float* sum_out, const float* x,
                                             const float* residual, const float* __restrict__ gamma,
                                             const float* __restrict__ beta, long long rows, int D, float eps) {
  const int lane = threadIdx.x % JCLIP_WARP;
  const long long row = (long long)blockIdx.x * (blockDim.x / JCLIP_WARP) + threadIdx.x / JCLIP_WARP;
  if (row >= rows) return;
  const float* xr = x + row * D;
  const float* rr = residual ? residual + row * D : nullptr;

  float sum = 0.0f;
  for (int i = lane; i < D; i += JCLIP_WARP) {
    float s = xr[i] + (rr ? rr[i] : 0.0f);
    sum += s;
  }
  const float mean = warp_sum(sum) / D;

  float sq = 0.0f;
  for (int i = lane; i < D; i += JCLIP_WARP) {
    float d = xr[i] + (rr ? rr[i] : 0.0f) - mean;
    sq += d * d;
  }
  const float rstd = 1.0f / sqrtf(warp_sum(sq) / D + eps);

  float* orow = out + row * D;
  float* srow = sum_out ? sum_out + row * D : nullptr;
  for (int i = lane; i < D; i += JCLIP_WARP) {
    float s = xr[i] + (rr ? rr[i] : 0.0f);
    if (srow) srow[i] = s;
    orow[i] = (s - mean) * rstd * gamma[i] + beta[i];
  }
}
