// glue.cu: the small ops between the GEMMs and the fused kernels.
//
// Each kernel names its PyTorch equivalent. Layouts are row-major and contiguous; images NCHW.
// Every kernel exists as <name>_f32, <name>_f16 and <name>_bf16 (activations in that type;
// parameters such as biases, embeddings and LayerNorm weights always fp32; arithmetic fp32).
// Launch (unless stated): 1-D grid-stride loop, block 256, grid = min(ceil(n/256), 262140).
//   bias_act            x[r, c] = act(x[r, c] + bias[c]); act 0 none, 1 QuickGELU, 2 GELU (erf)
//                       (the LINEAR epilogue; F.linear's bias then the activation)
//   bias_act_vec        bias_act, element for element the same arithmetic, 16 bytes a thread (8 halves or
//                       4 floats): needs cols a multiple of that count and x 16-byte aligned; launched
//                       over rows * cols / count items (the plain bias_act is its reference)
//   channel_affine_act  y[b, o, p] = g[b, o, p] * scale[o] + bias[o], then ReLU if relu, from the conv
//                       GEMM's fp32 output g (which may be y itself in fp32): an inference BatchNorm
//                       (F.batch_norm's scale and shift) on the unrounded GEMM result, one rounding to
//                       T; scale null for 1
//   add                 y = a + b, then ReLU if relu (residual adds; Bottleneck's relu3(out + identity))
//   patchify            pixels [B, C, H, W] -> rows [(b, gy, gx), (c, ky, kx)] for the patch GEMM
//                       (conv1 of VisionTransformer with kernel = stride = P)
//   patchify_rows       patchify, the same copy, one block of 256 threads a patch row (grid = B * gh * gw
//                       blocks): 32-bit index arithmetic, coalesced writes (patchify is its reference)
//   im2col              N images [N, C, H, W] -> col [N, (c, ky, kx), (oy, ox)] for a k x k conv
//   class_pos_embed     out[b, 0] = cls + pos[0]; out[b, t] = patches[b, t-1] + pos[t]
//                       (torch.cat([class_embedding + zeros, x], 1) + positional_embedding)
//   token_embed         out[b, t] = tok[ids[b, t]] + pos[t]   (token_embedding(text) + positional_embedding)
//   take_token          out[b] = x[b, index]                  (x[:, 0, :])
//   eot_gather          out[b] = x[b, argmax_t ids[b, t]] (first maximum, as torch.argmax)
//   avg_pool            nn.AvgPool2d(k) (kernel = stride = k, no padding)
//   attnpool_tokens     AttentionPool2d's flatten + mean token + positional embedding, to [B, HW+1, C]
//   l2_normalize        x / x.norm(dim=-1, keepdim=True); one warp per row, block 256
//   softmax             x.softmax(dim=-1); one warp per row, block 256
//
// The vector versions (what the CUDA backend runs by default; each plain kernel above is its
// reference and its fallback): 32-bit index arithmetic (the launcher checks that the item count
// fits), several elements a thread, grid-stride launch over the items (not the elements):
//   patchify_v<V>       patchify, V elements (V * sizeof(T) <= 16 bytes) of a patch row a thread: V
//                       divides P and W, px and out V * sizeof(T)-byte aligned; the same bits
//   class_pos_embed_vec class_pos_embed, 16 bytes of out a thread (D a multiple of 16 / sizeof(T),
//                       out, patches, cls and pos 16-byte aligned); the same bits
//   token_embed_vec     token_embed, likewise (D a multiple of 16 / sizeof(T), tok and pos too)
//   bias_act_fast       bias_act_vec for fp16/bf16 with fast_act (QuickGELU through __expf and
//                       __fdividef: within one unit in the last place of bias_act; none and GELU
//                       alike): cols a multiple of 8, x and bias 16-byte aligned
//   bias_act_fast_rev   bias_act_fast with the packs walked from the last to the first: the GEMM
//                       before it wrote its last rows last, so they are the likeliest still in
//                       L2, and c_proj's GEMM after it reads first the rows it wrote last; each
//                       element computed alike (the same bits)
#include "common.cuh"

template <typename T>
__device__ void bias_act(T* x, const float* bias, long long rows, int cols, int act) {
  JCLIP_GRID_STRIDE(i, rows * cols) x[i] = st<T>(apply_act(ld(x[i]) + (bias ? bias[i % cols] : 0.0f), act));
}

template <typename T>
__device__ void bias_act_vec(T* x, const float* bias, long long rows, int cols, int act) {
  constexpr int V = 16 / sizeof(T);
  Pack16<T>* xv = reinterpret_cast<Pack16<T>*>(x);
  JCLIP_GRID_STRIDE(j, rows * cols / V) {
    const int c = (int)((j * V) % cols);  // one division per V elements; c + V <= cols since V divides cols
    Pack16<T> p = xv[j];
#pragma unroll
    for (int k = 0; k < V; k++) p.v[k] = st<T>(apply_act(ld(p.v[k]) + (bias ? bias[c + k] : 0.0f), act));
    xv[j] = p;
  }
}

template <typename T>
__device__ void channel_affine_act(T* y, const float* g, const float* scale, const float* bias, long long batch, int channels,
                                   int plane, int relu) {
  JCLIP_GRID_STRIDE(i, batch * channels * plane) {
    const int o = (int)((i / plane) % channels);
    const float v = fmaf(g[i], scale ? scale[o] : 1.0f, bias[o]);
    y[i] = st<T>(relu ? fmaxf(v, 0.0f) : v);
  }
}

template <typename T>
__device__ void add(T* y, const T* a, const T* b, long long n, int relu) {
  JCLIP_GRID_STRIDE(i, n) {
    float v = ld(a[i]) + ld(b[i]);
    y[i] = st<T>(relu ? fmaxf(v, 0.0f) : v);
  }
}

template <typename T>
__device__ void patchify(T* out, const T* px, int B, int C, int H, int W, int P) {
  const int gw = W / P, gh = H / P, K = C * P * P;
  JCLIP_GRID_STRIDE(i, (long long)B * gh * gw * K) {
    const int k = i % K;
    const long long row = i / K;
    const int cell = row % (gh * gw), b = row / (gh * gw);
    const int c = k / (P * P), ky = (k / P) % P, kx = k % P;
    const int y = (cell / gw) * P + ky, x = (cell % gw) * P + kx;
    out[i] = px[(((long long)b * C + c) * H + y) * W + x];
  }
}

template <typename T>
__device__ void patchify_rows(T* out, const T* px, int B, int C, int H, int W, int P) {
  const int gw = W / P, gh = H / P, K = C * P * P, PP = P * P;
  const long long row = blockIdx.x;  // (b, gy, gx)
  const int cell = (int)(row % (gh * gw)), b = (int)(row / (gh * gw));
  const int y0 = (cell / gw) * P, x0 = (cell % gw) * P;
  const T* img = px + (long long)b * C * H * W;
  T* o = out + row * K;
  for (int k = threadIdx.x; k < K; k += blockDim.x) {
    const int c = k / PP, r = k - c * PP, ky = r / P, kx = r - ky * P;
    o[k] = img[((long long)c * H + y0 + ky) * W + x0 + kx];
  }
}

template <typename T>
__device__ void im2col(T* col, const T* img, int N, int C, int H, int W, int k, int stride, int pad, int OH, int OW) {
  const long long P = (long long)OH * OW, per = (long long)C * k * k * P;
  JCLIP_GRID_STRIDE(i, N * per) {
    const long long n = i / per, j = i % per;
    const long long p = j % P;
    const int kk = j / P;
    const int c = kk / (k * k), ky = (kk / k) % k, kx = kk % k;
    const int oy = p / OW, ox = p % OW;
    const int y = oy * stride - pad + ky, x = ox * stride - pad + kx;
    col[i] = (y >= 0 && y < H && x >= 0 && x < W) ? img[((n * C + c) * H + y) * W + x] : st<T>(0.0f);
  }
}

template <typename T>
__device__ void class_pos_embed(T* out, const T* patches, const float* cls, const float* pos, int B, int N, int D) {
  JCLIP_GRID_STRIDE(i, (long long)B * N * D) {
    const int d = i % D, t = (i / D) % N;
    const long long b = i / ((long long)N * D);
    const float v = t == 0 ? cls[d] : ld(patches[(b * (N - 1) + t - 1) * D + d]);
    out[i] = st<T>(v + pos[(long long)t * D + d]);
  }
}

template <typename T>
__device__ void token_embed(T* out, const int* ids, const float* tok, const float* pos, int B, int L, int D) {
  JCLIP_GRID_STRIDE(i, (long long)B * L * D) {
    const int d = i % D;
    const long long bt = i / D;
    const int t = bt % L;
    out[i] = st<T>(tok[(long long)ids[bt] * D + d] + pos[(long long)t * D + d]);
  }
}

template <typename T>
__device__ void take_token(T* out, const T* x, int B, int N, int D, int index) {
  JCLIP_GRID_STRIDE(i, (long long)B * D) {
    const long long b = i / D;
    out[i] = x[(b * N + index) * D + i % D];
  }
}

template <typename T>
__device__ void eot_gather(T* out, const T* x, const int* ids, int B, int L, int D) {
  JCLIP_GRID_STRIDE(i, (long long)B * D) {
    const long long b = i / D;
    int best = 0;
    for (int t = 1; t < L; t++) if (ids[b * L + t] > ids[b * L + best]) best = t;
    out[i] = x[(b * L + best) * D + i % D];
  }
}

template <typename T>
__device__ void avg_pool(T* out, const T* x, long long BC, int H, int W, int k, int OH, int OW) {
  const float inv = 1.0f / (k * k);
  JCLIP_GRID_STRIDE(i, BC * OH * OW) {
    const int ox = i % OW, oy = (i / OW) % OH;
    const long long bc = i / ((long long)OH * OW);
    float s = 0.0f;
    for (int ky = 0; ky < k; ky++)
      for (int kx = 0; kx < k; kx++) s += ld(x[(bc * H + oy * k + ky) * W + ox * k + kx]);
    out[i] = st<T>(s * inv);
  }
}

template <typename T>
__device__ void attnpool_tokens(T* out, const T* x, const float* pos, int B, int C, int HW) {
  const int N = HW + 1;
  JCLIP_GRID_STRIDE(i, (long long)B * N * C) {
    const int c = i % C, t = (i / C) % N;
    const long long b = i / ((long long)N * C);
    const T* plane = x + (b * C + c) * HW;
    float v;
    if (t == 0) {
      float s = 0.0f;
      for (int j = 0; j < HW; j++) s += ld(plane[j]);
      v = s / HW;
    } else {
      v = ld(plane[t - 1]);
    }
    out[i] = st<T>(v + pos[(long long)t * C + c]);
  }
}

template <typename T>
__device__ void l2_normalize(T* y, const T* x, long long rows, int D) {
  const int lane = threadIdx.x % 32;
  const long long row = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= rows) return;
  float s = 0.0f;
  for (int i = lane; i < D; i += 32) {
    const float v = ld(x[row * D + i]);
    s = fmaf(v, v, s);
  }
  const float inv = 1.0f / sqrtf(warp_sum(s));
  for (int i = lane; i < D; i += 32) y[row * D + i] = st<T>(ld(x[row * D + i]) * inv);
}

template <typename T>
__device__ void softmax(T* y, const T* x, long long rows, int D) {
  const int lane = threadIdx.x % 32;
  const long long row = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= rows) return;
  float m = -INFINITY;
  for (int i = lane; i < D; i += 32) m = fmaxf(m, ld(x[row * D + i]));
  m = warp_max(m);
  float s = 0.0f;
  for (int i = lane; i < D; i += 32) s += expf(ld(x[row * D + i]) - m);
  const float inv = 1.0f / warp_sum(s);
  for (int i = lane; i < D; i += 32) y[row * D + i] = st<T>(expf(ld(x[row * D + i]) - m) * inv);
}

#define GLUE(S, T)                                                                                                       \
  extern "C" __global__ void bias_act_##S(T* x, const float* bias, long long rows, int cols, int act) {                  \
    bias_act<T>(x, bias, rows, cols, act);                                                                               \
  }                                                                                                                      \
  extern "C" __global__ void bias_act_vec_##S(T* x, const float* bias, long long rows, int cols, int act) {              \
    bias_act_vec<T>(x, bias, rows, cols, act);                                                                           \
  }                                                                                                                      \
  extern "C" __global__ void patchify_rows_##S(T* out, const T* px, int B, int C, int H, int W, int P) {                 \
    patchify_rows<T>(out, px, B, C, H, W, P);                                                                            \
  }                                                                                                                      \
  extern "C" __global__ void channel_affine_act_##S(T* y, const float* g, const float* scale, const float* bias,          \
                                                    long long batch, int channels, int plane, int relu) {                \
    channel_affine_act<T>(y, g, scale, bias, batch, channels, plane, relu);                                              \
  }                                                                                                                      \
  extern "C" __global__ void add_##S(T* y, const T* a, const T* b, long long n, int relu) { add<T>(y, a, b, n, relu); } \
  extern "C" __global__ void patchify_##S(T* out, const T* px, int B, int C, int H, int W, int P) {                      \
    patchify<T>(out, px, B, C, H, W, P);                                                                                 \
  }                                                                                                                      \
  extern "C" __global__ void im2col_##S(T* col, const T* img, int N, int C, int H, int W, int k, int stride, int pad,   \
                                        int OH, int OW) {                                                                \
    im2col<T>(col, img, N, C, H, W, k, stride, pad, OH, OW);                                                             \
  }                                                                                                                      \
  extern "C" __global__ void class_pos_embed_##S(T* out, const T* patches, const float* cls, const float* pos, int B,    \
                                                 int N, int D) {                                                         \
    class_pos_embed<T>(out, patches, cls, pos, B, N, D);                                                                 \
  }                                                                                                                      \
  extern "C" __global__ void token_embed_##S(T* out, const int* ids, const float* tok, const float* pos, int B, int L,   \
                                             int D) {                                                                    \
    token_embed<T>(out, ids, tok, pos, B, L, D);                                                                         \
  }                                                                                                                      \
  extern "C" __global__ void take_token_##S(T* out, const T* x, int B, int N, int D, int index) {                        \
    take_token<T>(out, x, B, N, D, index);                                                                               \
  }                                                                                                                      \
  extern "C" __global__ void eot_gather_##S(T* out, const T* x, const int* ids, int B, int L, int D) {                   \
    eot_gather<T>(out, x, ids, B, L, D);                                                                                 \
  }                                                                                                                      \
  extern "C" __global__ void avg_pool_##S(T* out, const T* x, long long BC, int H, int W, int k, int OH, int OW) {       \
    avg_pool<T>(out, x, BC, H, W, k, OH, OW);                                                                            \
  }                                                                                                                      \
  extern "C" __global__ void attnpool_tokens_##S(T* out, const T* x, const float* pos, int B, int C, int HW) {           \
    attnpool_tokens<T>(out, x, pos, B, C, HW);                                                                           \
  }                                                                                                                      \
  extern "C" __global__ void l2_normalize_##S(T* y, const T* x, long long rows, int D) { l2_normalize<T>(y, x, rows, D); } \
  extern "C" __global__ void softmax_##S(T* y, const T* x, long long rows, int D) { softmax<T>(y, x, rows, D); }
JCLIP_FOR_TYPES(GLUE)

// ---- the vector versions -------------------------------------------------------------------------

#define JCLIP_GRID_STRIDE32(i, n) for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += gridDim.x * blockDim.x)

template <typename T, int V>
struct alignas(V * sizeof(T)) Vec {
  T v[V];
};

// Item i: elements V*i .. V*i + V-1 of the patch rows (row i / (K/V), a run of V pixels along x).
template <typename T, int V>
__device__ void patchify_v(T* out, const T* px, int B, int C, int H, int W, int P) {
  const unsigned gw = W / P, cells = (H / P) * gw, PV = P / V, KV = C * P * PV;
  const unsigned n = B * cells * KV;
  JCLIP_GRID_STRIDE32(i, n) {
    const unsigned row = i / KV, kv = i - row * KV;
    const unsigned b = row / cells, cell = row - b * cells;
    const unsigned c = kv / (P * PV), r = kv - c * (P * PV), ky = r / PV, kx = (r - ky * PV) * V;
    const unsigned y = (cell / gw) * P + ky, x = (cell % gw) * P + kx;
    reinterpret_cast<Vec<T, V>*>(out)[i] = *reinterpret_cast<const Vec<T, V>*>(px + ((size_t)(b * C + c) * H + y) * W + x);
  }
}

// V fp32 values at p (16-byte aligned, V a multiple of 4) as float4 loads.
template <int V>
__device__ __forceinline__ void load_floats(float (&f)[V], const float* p) {
#pragma unroll
  for (int k = 0; k < V; k += 4) {
    const float4 q = *reinterpret_cast<const float4*>(p + k);
    f[k] = q.x, f[k + 1] = q.y, f[k + 2] = q.z, f[k + 3] = q.w;
  }
}

// Pack i of out (16 bytes of T) = a + b, each rounded once to T: the vector embeddings' last step.
template <typename T, int V>
__device__ __forceinline__ void store_sum(T* out, unsigned i, const float (&a)[V], const float (&b)[V]) {
  Pack16<T> o;
#pragma unroll
  for (int k = 0; k < V; k++) o.v[k] = st<T>(a[k] + b[k]);
  reinterpret_cast<Pack16<T>*>(out)[i] = o;
}

template <typename T>
__device__ void class_pos_embed_vec(T* out, const T* patches, const float* cls, const float* pos, int B, int N, int D) {
  constexpr int V = 16 / sizeof(T);
  const unsigned DV = D / V, n = B * N * DV;
  JCLIP_GRID_STRIDE32(i, n) {
    const unsigned bt = i / DV, d = (i - bt * DV) * V, b = bt / N, t = bt - b * N;
    float v[V], p[V];
    if (t == 0) {
      load_floats<V>(v, cls + d);
    } else {
      const Pack16<T> q = reinterpret_cast<const Pack16<T>*>(patches)[(size_t)(b * (N - 1) + t - 1) * DV + d / V];
#pragma unroll
      for (int k = 0; k < V; k++) v[k] = ld(q.v[k]);
    }
    load_floats<V>(p, pos + (size_t)t * D + d);
    store_sum<T, V>(out, i, v, p);
  }
}

template <typename T>
__device__ void token_embed_vec(T* out, const int* ids, const float* tok, const float* pos, int B, int L, int D) {
  constexpr int V = 16 / sizeof(T);
  const unsigned DV = D / V, n = B * L * DV;
  JCLIP_GRID_STRIDE32(i, n) {
    const unsigned bt = i / DV, d = (i - bt * DV) * V, t = bt % L;
    float e[V], p[V];
    load_floats<V>(e, tok + (size_t)ids[bt] * D + d);
    load_floats<V>(p, pos + (size_t)t * D + d);
    store_sum<T, V>(out, i, e, p);
  }
}

// REV: the threads walk the packs from the last to the first (bias_act_fast_rev_*, below).
template <typename T, bool REV = false>
__device__ void bias_act_fast(T* x, const float* bias, int rows, int cols, int act) {
  constexpr int V = 16 / sizeof(T);
  const unsigned CV = cols / V, n = rows * CV;
  Pack16<T>* xv = reinterpret_cast<Pack16<T>*>(x);
  JCLIP_GRID_STRIDE32(i, n) {
    const unsigned j = REV ? n - 1 - i : i;
    const unsigned c = (j % CV) * V;
    float b[V];
    if (bias) {
      load_floats<V>(b, bias + c);
    } else {
#pragma unroll
      for (int k = 0; k < V; k++) b[k] = 0.0f;
    }
    Pack16<T> p = xv[j];
#pragma unroll
    for (int k = 0; k < V; k++) p.v[k] = st<T>(fast_act(ld(p.v[k]) + b[k], act));
    xv[j] = p;
  }
}

#define PATCHIFY_V(S, T, V)                                                                                             \
  extern "C" __global__ void patchify_v##V##_##S(T* out, const T* px, int B, int C, int H, int W, int P) {              \
    patchify_v<T, V>(out, px, B, C, H, W, P);                                                                            \
  }
#define GLUE_VEC(S, T)                                                                                                  \
  PATCHIFY_V(S, T, 2)                                                                                                   \
  PATCHIFY_V(S, T, 4)                                                                                                   \
  extern "C" __global__ void class_pos_embed_vec_##S(T* out, const T* patches, const float* cls, const float* pos,      \
                                                     int B, int N, int D) {                                             \
    class_pos_embed_vec<T>(out, patches, cls, pos, B, N, D);                                                            \
  }                                                                                                                     \
  extern "C" __global__ void token_embed_vec_##S(T* out, const int* ids, const float* tok, const float* pos, int B,     \
                                                 int L, int D) {                                                        \
    token_embed_vec<T>(out, ids, tok, pos, B, L, D);                                                                    \
  }
JCLIP_FOR_TYPES(GLUE_VEC)

// 8 elements (16 bytes) a thread: 16-bit types only.
#define GLUE_VEC16(S, T)                                                                                                \
  PATCHIFY_V(S, T, 8)                                                                                                   \
  extern "C" __global__ void bias_act_fast_##S(T* x, const float* bias, int rows, int cols, int act) {                 \
    bias_act_fast<T>(x, bias, rows, cols, act);                                                                         \
  }                                                                                                                     \
  extern "C" __global__ void bias_act_fast_rev_##S(T* x, const float* bias, int rows, int cols, int act) {             \
    bias_act_fast<T, true>(x, bias, rows, cols, act);                                                                   \
  }
GLUE_VEC16(f16, __half)
GLUE_VEC16(bf16, __nv_bfloat16)
