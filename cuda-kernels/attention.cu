// attention.cu: fused multi-head self-attention over a packed QKV tensor, head size 64.
//
// Computes, for each batch b, head h and query row i (scale = 1/sqrt(64)):
//   S[i,j] = scale * <q_i, k_j>              for keys j (j <= i when causal)
//   P[i,:] = softmax(S[i,:])                  (fp32 statistics)
//   out[i] = sum_j P[i,j] v_j
// PyTorch: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal), i.e. the
// core of nn.MultiheadAttention in CLIP's ResidualAttentionBlock (attn_mask = CLIP's causal mask
// for the text tower, none for the image tower), between in_proj and out_proj.
// Layout: qkv row-major [B, N, 3, H, 64] (= the [B*N, 3D] output of the in_proj LINEAR, D = 64 H:
//   q in columns [0, D), k in [D, 2D), v in [2D, 3D), head h at columns h*64 .. h*64+63 of each);
//   out row-major [B, N, H, 64] (= [B*N, D], the input of out_proj).
//
// Versions:
//   attention_f32         fp32 parity mode, no tensor cores. One warp per query row, 16 rows per
//                         block of 8 warps; K/V tiles of 32 keys in shared memory (rows padded to
//                         65 floats: conflict-free), online softmax.
//                         Launch: grid (ceil(N/16), H, B), block 256, static shared memory.
//   attention_f16/_bf16   tensor cores (WMMA 16x16x16, fp32 accumulation), fp16/bf16 in and out.
//                         4 warps per block, each owning 16 query rows (64 per block); K/V tiles of
//                         64 keys. Two passes over the keys instead of rescaling accumulators: pass 1
//                         finds each row's max and sum of exponentials, pass 2 accumulates
//                         P = exp(S - max) / sum times V. For CLIP's N <= 577 the extra Q K^T costs
//                         less than the rescaling traffic it avoids.
//                         Launch: grid (ceil(N/64), H, B), block 128, static shared memory (40 KB).
//   attention_pooled_f32/_f16/_bf16
//                         one query row a sequence: the pooled token of a tower's last block (the
//                         class token, the end-of-text token, the attention pool's mean token),
//                         whose row is all the tower reads of that block's attention
//                         (Fusion.pooledAttention on the Java side); at the end of the file.
#include "common.cuh"
#include <mma.h>

#define HEAD 64

// ---------------------------------------------------------------------------------------------
// fp32
// ---------------------------------------------------------------------------------------------
#define F32_WARPS 8
#define F32_ROWS_PER_WARP 2
#define F32_ROWS (F32_WARPS * F32_ROWS_PER_WARP)
#define F32_TILE 32

extern "C" __global__ void __launch_bounds__(F32_WARPS * 32)
attention_f32(float* __restrict__ out, const float* __restrict__ qkv, int N, int H, int causal) {
  __shared__ float q_s[F32_ROWS][HEAD];
  __shared__ float k_s[F32_TILE][HEAD + 1];
  __shared__ float v_s[F32_TILE][HEAD];
  const int b = blockIdx.z, h = blockIdx.y;
  const int D = H * HEAD;
  const long long row_stride = 3LL * D;
  const float* base = qkv + (long long)b * N * row_stride + h * HEAD;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row0 = blockIdx.x * F32_ROWS;
  const float scale = 0.125f;

  for (int t = threadIdx.x; t < F32_ROWS * HEAD; t += blockDim.x) {
    int r = t / HEAD, d = t % HEAD, i = row0 + r;
    q_s[r][d] = i < N ? base[(long long)i * row_stride + d] : 0.0f;
  }

  float m[F32_ROWS_PER_WARP], l[F32_ROWS_PER_WARP], acc0[F32_ROWS_PER_WARP], acc1[F32_ROWS_PER_WARP];
#pragma unroll
  for (int r = 0; r < F32_ROWS_PER_WARP; r++) { m[r] = -INFINITY; l[r] = 0.0f; acc0[r] = 0.0f; acc1[r] = 0.0f; }

  const int last_row = min(row0 + F32_ROWS, N) - 1;
  const int kv_end = causal ? last_row + 1 : N;
  for (int j0 = 0; j0 < kv_end; j0 += F32_TILE) {
    __syncthreads();
    for (int t = threadIdx.x; t < F32_TILE * HEAD; t += blockDim.x) {
      int j = t / HEAD, d = t % HEAD, key = j0 + j;
      bool ok = key < N;
      k_s[j][d] = ok ? base[(long long)key * row_stride + D + d] : 0.0f;
      v_s[j][d] = ok ? base[(long long)key * row_stride + 2 * D + d] : 0.0f;
    }
    __syncthreads();
    const int key = j0 + lane;
#pragma unroll
    for (int r = 0; r < F32_ROWS_PER_WARP; r++) {
      const int lr = warp * F32_ROWS_PER_WARP + r, i = row0 + lr;
      float s = -INFINITY;
      if (key < N && !(causal && key > i)) {
        float dot = 0.0f;
#pragma unroll 16
        for (int d = 0; d < HEAD; d++) dot = fmaf(q_s[lr][d], k_s[lane][d], dot);
        s = dot * scale;
      }
      const float m_new = fmaxf(m[r], warp_max(s));
      if (m_new == -INFINITY) continue;  // every key so far masked for this row
      const float p = s == -INFINITY ? 0.0f : expf(s - m_new);
      const float corr = m[r] == -INFINITY ? 0.0f : expf(m[r] - m_new);
      l[r] = l[r] * corr + warp_sum(p);
      float a0 = acc0[r] * corr, a1 = acc1[r] * corr;
#pragma unroll 8
      for (int j = 0; j < F32_TILE; j++) {
        const float pj = __shfl_sync(0xffffffffu, p, j);
        a0 = fmaf(pj, v_s[j][lane], a0);
        a1 = fmaf(pj, v_s[j][lane + 32], a1);
      }
      acc0[r] = a0; acc1[r] = a1; m[r] = m_new;
    }
  }
#pragma unroll
  for (int r = 0; r < F32_ROWS_PER_WARP; r++) {
    const int i = row0 + warp * F32_ROWS_PER_WARP + r;
    if (i < N) {
      float* o = out + ((long long)b * N + i) * D + h * HEAD;
      const float inv = 1.0f / l[r];
      o[lane] = acc0[r] * inv;
      o[lane + 32] = acc1[r] * inv;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// fp16 / bf16 on tensor cores
// ---------------------------------------------------------------------------------------------
#define TC_WARPS 4
#define TC_ROWS (TC_WARPS * 16)
#define TC_TILE 64

using namespace nvcuda;

template <typename T> __device__ __forceinline__ float to_float(T v);
template <> __device__ __forceinline__ float to_float<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// Loads rows [row0, row0 + rows) of one 64-wide head slice into smem[rows][64], zero beyond N.
template <typename T>
__device__ __forceinline__ void load_tile(T* smem, const T* base, long long row_stride, int row0, int rows, int N) {
  // 64 elements of 2 bytes = 8 chunks of 16 bytes per row
  for (int t = threadIdx.x; t < rows * 8; t += blockDim.x) {
    const int r = t / 8, c = t % 8, i = row0 + r;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (i < N) v = *reinterpret_cast<const uint4*>(base + (long long)i * row_stride + c * 8);
    *reinterpret_cast<uint4*>(smem + r * HEAD + c * 8) = v;
  }
}

// S[16][64] (this warp's rows against one K tile) = Q K^T, fp32.
template <typename T>
__device__ __forceinline__ void scores(float* s_w, const T* q_w, const T* k_s) {
#pragma unroll
  for (int n = 0; n < TC_TILE / 16; n++) {
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
    wmma::fill_fragment(c, 0.0f);
#pragma unroll
    for (int kk = 0; kk < HEAD / 16; kk++) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> bk;
      wmma::load_matrix_sync(a, q_w + kk * 16, HEAD);
      wmma::load_matrix_sync(bk, k_s + n * 16 * HEAD + kk * 16, HEAD);  // K^T as column-major
      wmma::mma_sync(c, a, bk, c);
    }
    wmma::store_matrix_sync(s_w + n * 16, c, TC_TILE, wmma::mem_row_major);
  }
}

template <typename T>
__device__ __forceinline__ void attention_tc(T* __restrict__ out, const T* __restrict__ qkv, int N, int H, int causal) {
  __shared__ __align__(32) T q_s[TC_ROWS * HEAD];
  __shared__ __align__(32) T k_s[TC_TILE * HEAD];
  __shared__ __align__(32) T v_s[TC_TILE * HEAD];
  __shared__ __align__(32) float s_s[TC_WARPS][16 * TC_TILE];
  __shared__ __align__(32) T p_s[TC_WARPS][16 * TC_TILE];

  const int b = blockIdx.z, h = blockIdx.y;
  const int D = H * HEAD;
  const long long row_stride = 3LL * D;
  const T* base = qkv + (long long)b * N * row_stride + h * HEAD;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row0 = blockIdx.x * TC_ROWS;
  const float scale = 0.125f;
  float* s_w = s_s[warp];
  T* p_w = p_s[warp];
  const T* q_w = q_s + warp * 16 * HEAD;

  load_tile(q_s, base, row_stride, row0, TC_ROWS, N);

  // Each lane owns half a row of the warp's 16x64 score tile: row lane/2, columns (lane%2)*32 ...
  const int my_row = lane / 2, col0 = (lane % 2) * 32;
  const int i = row0 + warp * 16 + my_row;
  const int last_row = min(row0 + TC_ROWS, N) - 1;
  const int kv_end = causal ? last_row + 1 : N;

  // Pass 1: row max and sum of exponentials (online over tiles).
  float m = -INFINITY, l = 0.0f;
  for (int j0 = 0; j0 < kv_end; j0 += TC_TILE) {
    __syncthreads();
    load_tile(k_s, base + D, row_stride, j0, TC_TILE, N);
    __syncthreads();
    scores(s_w, q_w, k_s);
    __syncwarp();
    float tm = -INFINITY;
    for (int c = 0; c < 32; c++) {
      const int key = j0 + col0 + c;
      if (key < N && !(causal && key > i)) tm = fmaxf(tm, s_w[my_row * TC_TILE + col0 + c] * scale);
    }
    tm = fmaxf(tm, __shfl_xor_sync(0xffffffffu, tm, 1));
    const float m_new = fmaxf(m, tm);
    float ts = 0.0f;
    if (m_new != -INFINITY) {
      for (int c = 0; c < 32; c++) {
        const int key = j0 + col0 + c;
        if (key < N && !(causal && key > i)) ts += expf(s_w[my_row * TC_TILE + col0 + c] * scale - m_new);
      }
    }
    ts += __shfl_xor_sync(0xffffffffu, ts, 1);
    l = (m == -INFINITY ? 0.0f : l * expf(m - m_new)) + ts;
    m = m_new;
    __syncwarp();
  }
  const float inv_l = l > 0.0f ? 1.0f / l : 0.0f;

  // Pass 2: O = sum over tiles of P V, with P already normalised.
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> o[HEAD / 16];
#pragma unroll
  for (int n = 0; n < HEAD / 16; n++) wmma::fill_fragment(o[n], 0.0f);
  for (int j0 = 0; j0 < kv_end; j0 += TC_TILE) {
    __syncthreads();
    load_tile(k_s, base + D, row_stride, j0, TC_TILE, N);
    load_tile(v_s, base + 2 * D, row_stride, j0, TC_TILE, N);
    __syncthreads();
    scores(s_w, q_w, k_s);
    __syncwarp();
    for (int c = 0; c < 32; c++) {
      const int key = j0 + col0 + c;
      float p = 0.0f;
      if (key < N && !(causal && key > i)) p = expf(s_w[my_row * TC_TILE + col0 + c] * scale - m) * inv_l;
      p_w[my_row * TC_TILE + col0 + c] = from_float<T>(p);
    }
    __syncwarp();
#pragma unroll
    for (int kk = 0; kk < TC_TILE / 16; kk++) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
      wmma::load_matrix_sync(a, p_w + kk * 16, TC_TILE);
#pragma unroll
      for (int n = 0; n < HEAD / 16; n++) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> bv;
        wmma::load_matrix_sync(bv, v_s + kk * 16 * HEAD + n * 16, HEAD);
        wmma::mma_sync(o[n], a, bv, o[n]);
      }
    }
  }
  __syncwarp();
#pragma unroll
  for (int n = 0; n < HEAD / 16; n++) wmma::store_matrix_sync(s_w + n * 16, o[n], HEAD, wmma::mem_row_major);
  __syncwarp();
  for (int t = lane; t < 16 * HEAD; t += 32) {
    const int r = t / HEAD, d = t % HEAD, row = row0 + warp * 16 + r;
    if (row < N) out[((long long)b * N + row) * D + h * HEAD + d] = from_float<T>(s_w[r * HEAD + d]);
  }
}

extern "C" __global__ void __launch_bounds__(TC_WARPS * 32)
attention_f16(__half* __restrict__ out, const __half* __restrict__ qkv, int N, int H, int causal) {
  attention_tc<__half>(out, qkv, N, H, causal);
}

extern "C" __global__ void __launch_bounds__(TC_WARPS * 32)
attention_bf16(__nv_bfloat16* __restrict__ out, const __nv_bfloat16* __restrict__ qkv, int N, int H, int causal) {
  attention_tc<__nv_bfloat16>(out, qkv, N, H, causal);
}

// ---------------------------------------------------------------------------------------------
// One query row a sequence
// ---------------------------------------------------------------------------------------------
// attention_pooled_<T>: for each batch b and head h,
//   out[b, h] = sum_j softmax_j(scale * <q[b, h], k[b, j, h]>) v[b, j, h]
// over the keys j < N, or j <= pos_b when causal; pos_b = index, or with ids the first argmax of
// ids[b, :] (the end-of-text position, as glue.cu's eot_gather). PyTorch: row pos_b of
// scaled_dot_product_attention(q, k, v, is_causal=causal), the only row a pooled tower reads.
// Layout: q [B, D] (the pooled rows' queries), kv [B, N, 2, H, 64] (keys in columns [0, D),
// values in [D, 2D): the in_proj rows of k and v), out [B, D]; D = 64 H.
// fp32 scores, softmax and sums (scale applied to q: a power of two, exact), one rounding at the
// end. A warp a key for the scores (two dimensions a lane), then two threads a dimension for the
// sum over keys (coalesced 128-byte rows of V).
// Launch: grid (H, B), block 128, dynamic shared memory 4 * N bytes (the scores).
#define POOLED_THREADS 128
#define POOLED_WARPS (POOLED_THREADS / 32)

template <typename T>
__device__ __forceinline__ void attention_pooled(T* __restrict__ out, const T* __restrict__ q, const T* __restrict__ kv,
                                                 const int* __restrict__ ids, int N, int H, int index, int causal) {
  extern __shared__ float p_s[];  // the scores, then exp(score - max)
  __shared__ float q_s[HEAD], o_s[HEAD], red[POOLED_WARPS];
  __shared__ int pos_s;
  const int h = blockIdx.x, b = blockIdx.y, D = H * HEAD;
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
  if (threadIdx.x < HEAD) q_s[threadIdx.x] = ld(q[(long long)b * D + h * HEAD + threadIdx.x]) * 0.125f;
  __syncthreads();
  const int keys = causal ? pos_s + 1 : N;
  const T* kb = kv + (long long)b * N * 2 * D + h * HEAD;

  float mx = -INFINITY;
  for (int j = warp; j < keys; j += POOLED_WARPS) {
    const T* k = kb + (long long)j * 2 * D;
    const float s = warp_sum(ld(k[lane]) * q_s[lane] + ld(k[lane + 32]) * q_s[lane + 32]);
    if (lane == 0) p_s[j] = s;
    mx = fmaxf(mx, s);
  }
  if (lane == 0) red[warp] = mx;
  __syncthreads();
  mx = red[0];
#pragma unroll
  for (int w = 1; w < POOLED_WARPS; w++) mx = fmaxf(mx, red[w]);
  __syncthreads();  // every thread has read red before it holds the sums

  float sum = 0.0f;
  for (int j = threadIdx.x; j < keys; j += POOLED_THREADS) {
    const float e = expf(p_s[j] - mx);
    p_s[j] = e;
    sum += e;
  }
  sum = warp_sum(sum);
  if (lane == 0) red[warp] = sum;
  __syncthreads();  // the sums, and every p_s
  float total = red[0];
#pragma unroll
  for (int w = 1; w < POOLED_WARPS; w++) total += red[w];

  const int d = threadIdx.x % HEAD, half = threadIdx.x / HEAD;  // POOLED_THREADS = 2 * HEAD
  float o = 0.0f;
  for (int j = half; j < keys; j += 2) o += p_s[j] * ld(kb[(long long)j * 2 * D + D + d]);
  if (half == 1) o_s[d] = o;
  __syncthreads();
  if (half == 0) out[(long long)b * D + h * HEAD + d] = st<T>((o + o_s[d]) / total);
}

#define ATTENTION_POOLED_ENTRY(S, T)                                                                                   \
  extern "C" __global__ void __launch_bounds__(POOLED_THREADS)                                                        \
      attention_pooled_##S(T* __restrict__ out, const T* __restrict__ q, const T* __restrict__ kv, const int* __restrict__ ids, \
                           int N, int H, int index, int causal) {                                                    \
    attention_pooled<T>(out, q, kv, ids, N, H, index, causal);                                                         \
  }
JCLIP_FOR_TYPES(ATTENTION_POOLED_ENTRY)
