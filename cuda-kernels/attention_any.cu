// attention_any.cu: multi-head self-attention for heads other than 64 wide (Dh up to 128), fp32
// arithmetic in every precision.
//
// The heads of every OpenAI CLIP model are 64 wide, and attention.cu and flash_attention.cu are
// built for that; open_clip's ViT-H-14 (Dh 80), ViT-g-14 (88) and ViT-bigG-14 (104) are not. These
// kernels take the head size at run time, for correctness first: plain loads, no tensor cores.
//
// Computes, for each batch b, head h and query row i (scale = 1/sqrt(Dh), given by the host as
// the CPU backend rounds it):
//   S[i,j] = scale * <q_i, k_j>              for keys j (j <= i when causal)
//   P[i,:] = softmax(S[i,:])                  (fp32 statistics, online over tiles of keys)
//   out[i] = sum_j P[i,j] v_j
// PyTorch: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal), the core of
// open_clip's nn.MultiheadAttention between in_proj and out_proj.
// Layout: qkv row-major [B, N, 3, H, Dh] (the in_proj output, D = H Dh: q in columns [0, D), k in
//   [D, 2D), v in [2D, 3D), head h at columns h*Dh .. h*Dh+Dh-1 of each); out [B, N, H, Dh].
//
// Versions:
//   attention_any_f32/_f16/_bf16
//                         one warp per query row, 2 rows a warp, 16 rows per block of 8 warps; K/V
//                         tiles of 32 keys converted to fp32 in shared memory (K rows padded to
//                         Dh + 1 floats: conflict-free); lane l accumulates columns l, l+32, l+64,
//                         l+96 of its rows (Dh <= 128).
//                         Launch: grid (ceil(N/16), H, B), block 256, dynamic shared memory
//                         4 * (16 Dh + 32 (Dh + 1) + 32 Dh) bytes (41,088 at Dh = 128).
//   attention_pooled_any_f32/_f16/_bf16
//                         one query row a sequence (the pooled token of a tower's last block:
//                         Fusion.pooledAttention on the Java side): q [B, D], kv [B, N, 2, H, Dh];
//                         the row at `index`, or with ids [B, N] each sequence's first argmax; with
//                         causal the keys up to it. One block of 128 threads per (head, sequence).
//                         Launch: grid (H, B), block 128, dynamic shared memory 4 * (N + Dh) bytes.
#include "common.cuh"

#define ANY_WARPS 8
#define ANY_ROWS_PER_WARP 2
#define ANY_ROWS (ANY_WARPS * ANY_ROWS_PER_WARP)
#define ANY_TILE 32
#define ANY_MAX_HEAD 128
#define ANY_COLS (ANY_MAX_HEAD / 32)

template <typename T>
__device__ __forceinline__ void attention_any(T* __restrict__ out, const T* __restrict__ qkv, int N, int H, int Dh, float scale, int causal) {
  extern __shared__ float any_smem[];
  float* q_s = any_smem;                      // [ANY_ROWS][Dh]
  float* k_s = q_s + ANY_ROWS * Dh;           // [ANY_TILE][Dh + 1]
  float* v_s = k_s + ANY_TILE * (Dh + 1);     // [ANY_TILE][Dh]
  const int b = blockIdx.z, h = blockIdx.y;
  const int D = H * Dh;
  const long long row_stride = 3LL * D;
  const T* base = qkv + (long long)b * N * row_stride + (long long)h * Dh;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row0 = blockIdx.x * ANY_ROWS;

  for (int t = threadIdx.x; t < ANY_ROWS * Dh; t += blockDim.x) {
    const int r = t / Dh, d = t % Dh, i = row0 + r;
    q_s[t] = i < N ? ld(base[(long long)i * row_stride + d]) : 0.0f;
  }

  float m[ANY_ROWS_PER_WARP], l[ANY_ROWS_PER_WARP], acc[ANY_ROWS_PER_WARP][ANY_COLS];
#pragma unroll
  for (int r = 0; r < ANY_ROWS_PER_WARP; r++) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < ANY_COLS; c++) acc[r][c] = 0.0f;
  }

  const int last_row = min(row0 + ANY_ROWS, N) - 1;
  const int kv_end = causal ? last_row + 1 : N;
  for (int j0 = 0; j0 < kv_end; j0 += ANY_TILE) {
    __syncthreads();  // the previous tile's readers are done (and, the first time, q_s is written)
    for (int t = threadIdx.x; t < ANY_TILE * Dh; t += blockDim.x) {
      const int j = t / Dh, d = t % Dh, key = j0 + j;
      const bool ok = key < N;
      k_s[j * (Dh + 1) + d] = ok ? ld(base[(long long)key * row_stride + D + d]) : 0.0f;
      v_s[j * Dh + d] = ok ? ld(base[(long long)key * row_stride + 2 * D + d]) : 0.0f;
    }
    __syncthreads();
    const int key = j0 + lane;
#pragma unroll
    for (int r = 0; r < ANY_ROWS_PER_WARP; r++) {
      const int lr = warp * ANY_ROWS_PER_WARP + r, i = row0 + lr;
      float s = -INFINITY;
      if (i < N && key < N && !(causal && key > i)) {
        float dot = 0.0f;
        const float* q = q_s + lr * Dh;
        const float* k = k_s + lane * (Dh + 1);
        for (int d = 0; d < Dh; d++) dot = fmaf(q[d], k[d], dot);
        s = dot * scale;
      }
      const float m_new = fmaxf(m[r], warp_max(s));
      if (m_new == -INFINITY) continue;  // every key so far masked for this row (or no row)
      const float p = s == -INFINITY ? 0.0f : expf(s - m_new);
      const float corr = m[r] == -INFINITY ? 0.0f : expf(m[r] - m_new);
      l[r] = l[r] * corr + warp_sum(p);
#pragma unroll
      for (int c = 0; c < ANY_COLS; c++) acc[r][c] *= corr;
      for (int j = 0; j < ANY_TILE; j++) {
        const float pj = __shfl_sync(0xffffffffu, p, j);
        const float* v = v_s + j * Dh;
#pragma unroll
        for (int c = 0; c < ANY_COLS; c++) {
          const int d = lane + 32 * c;
          if (d < Dh) acc[r][c] = fmaf(pj, v[d], acc[r][c]);
        }
      }
      m[r] = m_new;
    }
  }
#pragma unroll
  for (int r = 0; r < ANY_ROWS_PER_WARP; r++) {
    const int i = row0 + warp * ANY_ROWS_PER_WARP + r;
    if (i < N) {
      T* o = out + ((long long)b * N + i) * D + (long long)h * Dh;
      const float inv = 1.0f / l[r];
#pragma unroll
      for (int c = 0; c < ANY_COLS; c++) {
        const int d = lane + 32 * c;
        if (d < Dh) o[d] = st<T>(acc[r][c] * inv);
      }
    }
  }
}

#define ATTENTION_ANY_ENTRY(S, T)                                                                                      \
  extern "C" __global__ void __launch_bounds__(ANY_WARPS * 32)                                                         \
      attention_any_##S(T* __restrict__ out, const T* __restrict__ qkv, int N, int H, int Dh, float scale, int causal) { \
    attention_any<T>(out, qkv, N, H, Dh, scale, causal);                                                               \
  }
JCLIP_FOR_TYPES(ATTENTION_ANY_ENTRY)

#define ANY_POOLED_THREADS 128
#define ANY_POOLED_WARPS (ANY_POOLED_THREADS / 32)

template <typename T>
__device__ __forceinline__ void attention_pooled_any(T* __restrict__ out, const T* __restrict__ q, const T* __restrict__ kv,
                                                     const int* __restrict__ ids, int N, int H, int Dh, float scale, int index,
                                                     int causal) {
  extern __shared__ float pooled_smem[];
  float* p_s = pooled_smem;  // [N]: the scores, then exp(score - max)
  float* q_s = p_s + N;      // [Dh]: the query, scaled
  __shared__ float red[ANY_POOLED_WARPS];
  __shared__ int pos_s;
  const int h = blockIdx.x, b = blockIdx.y, D = H * Dh;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (threadIdx.x == 0) {
    int pos = index;
    if (ids) {
      const int* row = ids + (long long)b * N;
      pos = 0;
      for (int t = 1; t < N; t++) if (row[t] > row[pos]) pos = t;
    }
    pos_s = pos;
  }
  for (int d = threadIdx.x; d < Dh; d += ANY_POOLED_THREADS) q_s[d] = ld(q[(long long)b * D + (long long)h * Dh + d]) * scale;
  __syncthreads();
  const int keys = causal ? pos_s + 1 : N;
  const T* kb = kv + (long long)b * N * 2 * D + (long long)h * Dh;

  float mx = -INFINITY;
  for (int j = warp; j < keys; j += ANY_POOLED_WARPS) {
    const T* k = kb + (long long)j * 2 * D;
    float part = 0.0f;
    for (int d = lane; d < Dh; d += 32) part = fmaf(ld(k[d]), q_s[d], part);
    const float s = warp_sum(part);
    if (lane == 0) p_s[j] = s;
    mx = fmaxf(mx, s);
  }
  if (lane == 0) red[warp] = mx;
  __syncthreads();
  mx = red[0];
#pragma unroll
  for (int w = 1; w < ANY_POOLED_WARPS; w++) mx = fmaxf(mx, red[w]);
  __syncthreads();  // every thread has read red before it holds the sums

  float sum = 0.0f;
  for (int j = threadIdx.x; j < keys; j += ANY_POOLED_THREADS) {
    const float e = expf(p_s[j] - mx);
    p_s[j] = e;
    sum += e;
  }
  sum = warp_sum(sum);
  if (lane == 0) red[warp] = sum;
  __syncthreads();  // the sums, and every p_s
  float total = red[0];
#pragma unroll
  for (int w = 1; w < ANY_POOLED_WARPS; w++) total += red[w];

  for (int d = threadIdx.x; d < Dh; d += ANY_POOLED_THREADS) {
    float o = 0.0f;
    for (int j = 0; j < keys; j++) o = fmaf(p_s[j], ld(kb[(long long)j * 2 * D + D + d]), o);
    out[(long long)b * D + (long long)h * Dh + d] = st<T>(o / total);
  }
}

#define ATTENTION_POOLED_ANY_ENTRY(S, T)                                                                               \
  extern "C" __global__ void __launch_bounds__(ANY_POOLED_THREADS)                                                     \
      attention_pooled_any_##S(T* __restrict__ out, const T* __restrict__ q, const T* __restrict__ kv,                 \
                               const int* __restrict__ ids, int N, int H, int Dh, float scale, int index, int causal) { \
    attention_pooled_any<T>(out, q, kv, ids, N, H, Dh, scale, index, causal);                                          \
  }
JCLIP_FOR_TYPES(ATTENTION_POOLED_ANY_ENTRY)
