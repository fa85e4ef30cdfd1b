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
//
// add_layernorm_vec<P>_f32 / _f16 / _bf16 (P = 1..5): the same function, each lane reading and
// writing 16 bytes at a time (4 floats or 8 halves: a "pack") and keeping its P packs of the row
// in registers between the statistics and the output: one read of x and residual instead of
// three. For rows of D elements with D a multiple of the pack, D / pack <= 32 * P, every row
// 16-byte aligned (x, residual, out, sum_out); P is the smallest that fits (the launcher picks it):
// fp16/bf16 D up to 1280, fp32 up to 640. Lane l holds packs l, l + 32, ...: the sums run in
// another order than add_layernorm's, so results may differ from it in the last bit.
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

template <typename T>
struct alignas(16) LnPack {
  T v[16 / sizeof(T)];
};

template <typename T, int P>
__device__ __forceinline__ void add_layernorm_vec(T* out, T* sum_out, const T* x, const T* residual, const float* __restrict__ gamma,
                                                  const float* __restrict__ beta, long long rows, int D, float eps) {
  constexpr int V = 16 / sizeof(T);
  const int lane = threadIdx.x % JCLIP_WARP;
  const long long row = (long long)blockIdx.x * (blockDim.x / JCLIP_WARP) + threadIdx.x / JCLIP_WARP;
  if (row >= rows) return;
  const int packs = D / V;
  const LnPack<T>* xr = reinterpret_cast<const LnPack<T>*>(x + row * D);
  const LnPack<T>* rr = residual ? reinterpret_cast<const LnPack<T>*>(residual + row * D) : nullptr;
  float v[P][V];
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < P; j++) {
    const int q = lane + j * JCLIP_WARP;
    if (q < packs) {
      LnPack<T> a = xr[q];
      LnPack<T> b;
      if (rr) b = rr[q];
#pragma unroll
      for (int k = 0; k < V; k++) {
        v[j][k] = ld(a.v[k]) + (rr ? ld(b.v[k]) : 0.0f);
        sum += v[j][k];
      }
    }
  }
  const float mean = warp_sum(sum) / D;
  float sq = 0.0f;
#pragma unroll
  for (int j = 0; j < P; j++) {
    if (lane + j * JCLIP_WARP < packs) {
#pragma unroll
      for (int k = 0; k < V; k++) {
        const float d = v[j][k] - mean;
        sq += d * d;
      }
    }
  }
  const float rstd = 1.0f / sqrtf(warp_sum(sq) / D + eps);
  LnPack<T>* orow = reinterpret_cast<LnPack<T>*>(out + row * D);
  LnPack<T>* srow = sum_out ? reinterpret_cast<LnPack<T>*>(sum_out + row * D) : nullptr;
#pragma unroll
  for (int j = 0; j < P; j++) {
    const int q = lane + j * JCLIP_WARP;
    if (q < packs) {
      LnPack<T> o, sm;
#pragma unroll
      for (int k = 0; k < V; k++) {
        const int i = q * V + k;
        o.v[k] = st<T>((v[j][k] - mean) * rstd * gamma[i] + beta[i]);
        sm.v[k] = st<T>(v[j][k]);
      }
      if (srow) srow[q] = sm;
      orow[q] = o;
    }
  }
}

#define LAYERNORM_VEC(S, T, P)                                                                                    \
  extern "C" __global__ void add_layernorm_vec##P##_##S(T* out, T* sum_out, const T* x, const T* residual,         \
                                                        const float* gamma, const float* beta, long long rows, int D, \
                                                        float eps) {                                               \
    add_layernorm_vec<T, P>(out, sum_out, x, residual, gamma, beta, rows, D, eps);                                \
  }
#define LAYERNORM_VECS(S, T) LAYERNORM_VEC(S, T, 1) LAYERNORM_VEC(S, T, 2) LAYERNORM_VEC(S, T, 3) LAYERNORM_VEC(S, T, 4) LAYERNORM_VEC(S, T, 5)
JCLIP_FOR_TYPES(LAYERNORM_VECS)

#define LAYERNORM(S, T)                                                                                          \
  extern "C" __global__ void add_layernorm_##S(T* out, T* sum_out, const T* x, const T* residual, const float* gamma, \
                                               const float* beta, long long rows, int D, float eps) {            \
    add_layernorm<T>(out, sum_out, x, residual, gamma, beta, rows, D, eps);                                      \
  }
JCLIP_FOR_TYPES(LAYERNORM)
