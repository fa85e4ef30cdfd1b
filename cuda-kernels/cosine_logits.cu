// cosine_logits.cu: the normalised cosine-logit GEMM of CLIP, in one kernel.
//
// Computes, for image features x [M, E] and text features y [T, E] (not normalised):
//   logits[i, t] = scale * <x_i, y_t> / (||x_i|| * ||y_t||)
// PyTorch (clip/model.py, CLIP.forward): x = x / x.norm(dim=1, keepdim=True);
//   y = y / y.norm(dim=1, keepdim=True); logits = logit_scale.exp() * x @ y.t()
// The squared norms are accumulated from the same shared-memory tiles as the dot products, so the
// features are read once and never written back normalised. fp32 throughout.
// Layout: x, y row-major contiguous; logits row-major [M, T] (logits_per_image; its transpose is
//   logits_per_text). `scale` is exp(logit_scale), computed on the host.
// Launch: grid (ceil(T/64), ceil(M/64)), block (16, 16); each thread computes a 4x4 patch.
#include "common.cuh"

#define CL_TILE 64
#define CL_K 16

extern "C" __global__ void __launch_bounds__(256)
cosine_logits_f32(float* __restrict__ logits, const float* __restrict__ x, const float* __restrict__ y,
                  int M, int T, int E, float scale) {
  __shared__ float x_s[CL_K][CL_TILE + 1];
  __shared__ float y_s[CL_K][CL_TILE + 1];
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 16 + tx;
  const int i0 = blockIdx.y * CL_TILE, t0 = blockIdx.x * CL_TILE;
  float acc[4][4] = {};
  float nx[4] = {}, ny[4] = {};
  for (int k0 = 0; k0 < E; k0 += CL_K) {
    // 64 rows x 16 columns of each operand, stored transposed (k-major) for conflict-free reads
    for (int t = tid; t < CL_TILE * CL_K; t += 256) {
      const int r = t / CL_K, k = t % CL_K;
      x_s[k][r] = (i0 + r < M && k0 + k < E) ? x[(long long)(i0 + r) * E + k0 + k] : 0.0f;
      y_s[k][r] = (t0 + r < T && k0 + k < E) ? y[(long long)(t0 + r) * E + k0 + k] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < CL_K; k++) {
      float a[4], b[4];
#pragma unroll
      for (int u = 0; u < 4; u++) { a[u] = x_s[k][ty + 16 * u]; b[u] = y_s[k][tx + 16 * u]; }
#pragma unroll
      for (int u = 0; u < 4; u++) {
        nx[u] = fmaf(a[u], a[u], nx[u]);
        ny[u] = fmaf(b[u], b[u], ny[u]);
#pragma unroll
        for (int v = 0; v < 4; v++) acc[u][v] = fmaf(a[u], b[v], acc[u][v]);
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int u = 0; u < 4; u++) {
    const int i = i0 + ty + 16 * u;
    if (i >= M) continue;
    const float rx = 1.0f / sqrtf(nx[u]);
#pragma unroll
    for (int v = 0; v < 4; v++) {
      const int t = t0 + tx + 16 * v;
      if (t < T) logits[(long long)i * T + t] = scale * acc[u][v] * rx * (1.0f / sqrtf(ny[v]));
    }
  }
}
