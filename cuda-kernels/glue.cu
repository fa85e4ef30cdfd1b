// glue.cu: the small ops between the GEMMs and the fused kernels, fp32.
//
// Each kernel names its PyTorch equivalent. Layouts are row-major and contiguous; images NCHW.
// Launch (unless stated): 1-D grid-stride loop, block 256, grid = min(ceil(n/256), 262140).
//   bias_act_f32        x[r, c] = act(x[r, c] + bias[c]); act 0 none, 1 QuickGELU, 2 GELU (erf)
//                       (the LINEAR epilogue; F.linear's bias then the activation)
//   bias_channel_act_f32 y[b, o, p] += bias[o], then ReLU if relu (conv bias + folded BN + ReLU)
//   add_f32             y = a + b, then ReLU if relu (residual adds; Bottleneck's relu3(out + identity))
//   patchify_f32        pixels [B, C, H, W] -> rows [(b, gy, gx), (c, ky, kx)] for the patch GEMM
//                       (conv1 of VisionTransformer with kernel = stride = P)
//   im2col_f32          one image [C, H, W] -> col [(c, ky, kx), (oy, ox)] for a k x k conv
//   class_pos_embed_f32 out[b, 0] = cls + pos[0]; out[b, t] = patches[b, t-1] + pos[t]
//                       (torch.cat([class_embedding + zeros, x], 1) + positional_embedding)
//   token_embed_f32     out[b, t] = tok[ids[b, t]] + pos[t]   (token_embedding(text) + positional_embedding)
//   take_token_f32      out[b] = x[b, index]                  (x[:, 0, :])
//   eot_gather_f32      out[b] = x[b, argmax_t ids[b, t]] (first maximum, as torch.argmax)
//   avg_pool_f32        nn.AvgPool2d(k) (kernel = stride = k, no padding)
//   attnpool_tokens_f32 AttentionPool2d's flatten + mean token + positional embedding, to [B, HW+1, C]
//   l2_normalize_f32    x / x.norm(dim=-1, keepdim=True); one warp per row, block 256
//   softmax_f32         x.softmax(dim=-1); one warp per row, block 256
#include "common.cuh"

#define GRID_STRIDE(i, n) \
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

__device__ __forceinline__ float apply_act(float v, int act) {
  if (act == 1) return v / (1.0f + expf(-1.702f * v));
  if (act == 2) return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
  return v;
}

extern "C" __global__ void bias_act_f32(float* x, const float* bias, long long rows, int cols, int act) {
  GRID_STRIDE(i, rows * cols) x[i] = apply_act(x[i] + (bias ? bias[i % cols] : 0.0f), act);
}

extern "C" __global__ void bias_channel_act_f32(float* y, const float* bias, long long batch, int channels, int plane, int relu) {
  GRID_STRIDE(i, batch * channels * plane) {
    float v = y[i] + bias[(i / plane) % channels];
    y[i] = relu ? fmaxf(v, 0.0f) : v;
  }
}

extern "C" __global__ void add_f32(float* y, const float* a, const float* b, long long n, int relu) {
  GRID_STRIDE(i, n) {
    float v = a[i] + b[i];
    y[i] = relu ? fmaxf(v, 0.0f) : v;
  }
}

extern "C" __global__ void patchify_f32(float* out, const float* px, int B, int C, int H, int W, int P) {
  const int gw = W / P, gh = H / P, K = C * P * P;
  GRID_STRIDE(i, (long long)B * gh * gw * K) {
    const int k = i % K;
    const long long row = i / K;
    const int cell = row % (gh * gw), b = row / (gh * gw);
    const int c = k / (P * P), ky = (k / P) % P, kx = k % P;
    const int y = (cell / gw) * P + ky, x = (cell % gw) * P + kx;
    out[i] = px[(((long long)b * C + c) * H + y) * W + x];
  }
}

extern "C" __global__ void im2col_f32(float* col, const float* img, int C, int H, int W, int k, int stride, int pad, int OH, int OW) {
  const long long P = (long long)OH * OW;
  GRID_STRIDE(i, (long long)C * k * k * P) {
    const long long p = i % P;
    const int kk = i / P;
    const int c = kk / (k * k), ky = (kk / k) % k, kx = kk % k;
    const int oy = p / OW, ox = p % OW;
    const int y = oy * stride - pad + ky, x = ox * stride - pad + kx;
    col[i] = (y >= 0 && y < H && x >= 0 && x < W) ? img[((long long)c * H + y) * W + x] : 0.0f;
  }
}

extern "C" __global__ void class_pos_embed_f32(float* out, const float* patches, const float* cls, const float* pos, int B, int N, int D) {
  GRID_STRIDE(i, (long long)B * N * D) {
    const int d = i % D, t = (i / D) % N;
    const long long b = i / ((long long)N * D);
    const float v = t == 0 ? cls[d] : patches[(b * (N - 1) + t - 1) * D + d];
    out[i] = v + pos[(long long)t * D + d];
  }
}

extern "C" __global__ void token_embed_f32(float* out, const int* ids, const float* tok, const float* pos, int B, int L, int D) {
  GRID_STRIDE(i, (long long)B * L * D) {
    const int d = i % D;
    const long long bt = i / D;
    const int t = bt % L;
    out[i] = tok[(long long)ids[bt] * D + d] + pos[(long long)t * D + d];
  }
}

extern "C" __global__ void take_token_f32(float* out, const float* x, int B, int N, int D, int index) {
  GRID_STRIDE(i, (long long)B * D) {
    const long long b = i / D;
    out[i] = x[(b * N + index) * D + i % D];
  }
}

extern "C" __global__ void eot_gather_f32(float* out, const float* x, const int* ids, int B, int L, int D) {
  GRID_STRIDE(i, (long long)B * D) {
    const long long b = i / D;
    int best = 0;
    for (int t = 1; t < L; t++) if (ids[b * L + t] > ids[b * L + best]) best = t;
    out[i] = x[(b * L + best) * D + i % D];
  }
}

extern "C" __global__ void avg_pool_f32(float* out, const float* x, long long BC, int H, int W, int k, int OH, int OW) {
  const float inv = 1.0f / (k * k);
  GRID_STRIDE(i, BC * OH * OW) {
    const int ox = i % OW, oy = (i / OW) % OH;
    const long long bc = i / ((long long)OH * OW);
    float s = 0.0f;
    for (int ky = 0; ky < k; ky++)
      for (int kx = 0; kx < k; kx++) s += x[(bc * H + oy * k + ky) * W + ox * k + kx];
    out[i] = s * inv;
  }
}

extern "C" __global__ void attnpool_tokens_f32(float* out, const float* x, const float* pos, int B, int C, int HW) {
  const int N = HW + 1;
  GRID_STRIDE(i, (long long)B * N * C) {
    const int c = i % C, t = (i / C) % N;
    const long long b = i / ((long long)N * C);
    const float* plane = x + (b * C + c) * HW;
    float v;
    if (t == 0) {
      float s = 0.0f;
      for (int j = 0; j < HW; j++) s += plane[j];
      v = s / HW;
    } else {
      v = plane[t - 1];
    }
    out[i] = v + pos[(long long)t * C + c];
  }
}

extern "C" __global__ void l2_normalize_f32(float* y, const float* x, long long rows, int D) {
  const int lane = threadIdx.x % 32;
  const long long row = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= rows) return;
  float s = 0.0f;
  for (int i = lane; i < D; i += 32) s = fmaf(x[row * D + i], x[row * D + i], s);
  const float inv = 1.0f / sqrtf(warp_sum(s));
  for (int i = lane; i < D; i += 32) y[row * D + i] = x[row * D + i] * inv;
}

extern "C" __global__ void softmax_f32(float* y, const float* x, long long rows, int D) {
  const int lane = threadIdx.x % 32;
  const long long row = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= rows) return;
  float m = -INFINITY;
  for (int i = lane; i < D; i += 32) m = fmaxf(m, x[row * D + i]);
  m = warp_max(m);
  float s = 0.0f;
  for (int i = lane; i < D; i += 32) s += expf(x[row * D + i] - m);
  const float inv = 1.0f / warp_sum(s);
  for (int i = lane; i < D; i += 32) y[row * D + i] = expf(x[row * D + i] - m) * inv;
}
