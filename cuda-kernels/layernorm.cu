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
//
// layernorm_warps<P>_f32 / _f16 / _bf16: add_layernorm_vec<P>'s arithmetic, bit for bit, for many
// rows at a time: each warp loads gamma and beta of its lanes' packs into registers once (the
// vector kernel re-reads them for every row, as scalar loads 32 bytes apart: most of its memory
// instructions) and walks rows w, w + warps, w + 2 * warps, ..., for P <= 3 two at a time (both
// rows' loads in flight before either's sums). Same conditions as add_layernorm_vec, P up to 4. Launch:
// block 256 (8 warps; at most 128 registers a thread: 2 blocks an SM), grid = min(ceil(rows / 8),
// 2 * SMs) (one resident wave; warps = grid * 8).
//
// layernorm_smem<P>_f32 / _f16 / _bf16 and layernorm_stream<P>_f32 / _f16 / _bf16: the same again,
// gamma and beta in shared memory, many warps walking rows one at a time; the stream kernel also
// loads the next row of its walk while it computes the current one, layernorm_deep<P> the next two
// (see each below).
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

// A row's packs of x (+ residual) as floats (lane l: packs l, l + 32, ...).
template <typename T, int P>
__device__ __forceinline__ void ln_load(float (&v)[P][16 / sizeof(T)], const T* x, const T* residual, long long row, int D, int packs,
                                        int lane) {
  constexpr int V = 16 / sizeof(T);
  const LnPack<T>* xr = reinterpret_cast<const LnPack<T>*>(x + row * D);
  const LnPack<T>* rr = residual ? reinterpret_cast<const LnPack<T>*>(residual + row * D) : nullptr;
#pragma unroll
  for (int j = 0; j < P; j++) {
    const int q = lane + j * JCLIP_WARP;
    if (q < packs) {
      LnPack<T> a = xr[q];
      LnPack<T> b;
      if (rr) b = rr[q];
#pragma unroll
      for (int k = 0; k < V; k++) v[j][k] = ld(a.v[k]) + (rr ? ld(b.v[k]) : 0.0f);
    }
  }
}

// The mean and 1/sqrt(var + eps) of a row loaded by ln_load (sums in pack order, then across the warp).
template <typename T, int P>
__device__ __forceinline__ float2 ln_stats(const float (&v)[P][16 / sizeof(T)], int D, int packs, int lane, float eps) {
  constexpr int V = 16 / sizeof(T);
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < P; j++) {
    if (lane + j * JCLIP_WARP < packs) {
#pragma unroll
      for (int k = 0; k < V; k++) sum += v[j][k];
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
  return make_float2(mean, 1.0f / sqrtf(warp_sum(sq) / D + eps));
}

// Pack j of a row's outputs (and of its sum) from the statistics, with that pack's gamma and beta.
template <typename T>
__device__ __forceinline__ void ln_pack_out(const float* v, const float* g, const float* bt, float2 stats, LnPack<T>* orow, LnPack<T>* srow,
                                            int q) {
  constexpr int V = 16 / sizeof(T);
  LnPack<T> o, sm;
#pragma unroll
  for (int k = 0; k < V; k++) {
    o.v[k] = st<T>((v[k] - stats.x) * stats.y * g[k] + bt[k]);
    sm.v[k] = st<T>(v[k]);
  }
  if (srow) srow[q] = sm;
  orow[q] = o;
}

// The statistics and outputs of a row loaded by ln_load; gamma_beta(j, q, g, bt) gives pack q's
// (lane pack j's) gamma and beta in g and bt, from wherever the kernel keeps them.
template <typename T, int P, typename GammaBeta>
__device__ __forceinline__ void ln_store(const float (&v)[P][16 / sizeof(T)], GammaBeta gamma_beta, T* out, T* sum_out, long long row,
                                         int D, int packs, int lane, float eps) {
  constexpr int V = 16 / sizeof(T);
  const float2 stats = ln_stats<T, P>(v, D, packs, lane, eps);
  LnPack<T>* orow = reinterpret_cast<LnPack<T>*>(out + row * D);
  LnPack<T>* srow = sum_out ? reinterpret_cast<LnPack<T>*>(sum_out + row * D) : nullptr;
#pragma unroll
  for (int j = 0; j < P; j++) {
    const int q = lane + j * JCLIP_WARP;
    if (q < packs) {
      float g[V], bt[V];
      gamma_beta(j, q, g, bt);
      ln_pack_out<T>(v[j], g, bt, stats, orow, srow, q);
    }
  }
}

template <typename T, int P>
__device__ __forceinline__ void add_layernorm_vec(T* out, T* sum_out, const T* x, const T* residual, const float* __restrict__ gamma,
                                                  const float* __restrict__ beta, long long rows, int D, float eps) {
  constexpr int V = 16 / sizeof(T);
  const int lane = threadIdx.x % JCLIP_WARP;
  const long long row = (long long)blockIdx.x * (blockDim.x / JCLIP_WARP) + threadIdx.x / JCLIP_WARP;
  if (row >= rows) return;
  const int packs = D / V;
  float v[P][V];
  ln_load<T, P>(v, x, residual, row, D, packs, lane);
  ln_store<T, P>(v, [&](int, int q, float* g, float* bt) {
#pragma unroll
    for (int k = 0; k < V; k++) g[k] = gamma[q * V + k], bt[k] = beta[q * V + k];
  }, out, sum_out, row, D, packs, lane, eps);
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

template <typename T, int P>
__device__ __forceinline__ void layernorm_warps(T* out, T* sum_out, const T* x, const T* residual, const float* __restrict__ gamma,
                                                const float* __restrict__ beta, long long rows, int D, float eps) {
  constexpr int V = 16 / sizeof(T);
  const int lane = threadIdx.x % JCLIP_WARP, packs = D / V;
  const long long warps = (long long)gridDim.x * (blockDim.x / JCLIP_WARP);
  float g[P][V], bt[P][V];
#pragma unroll
  for (int j = 0; j < P; j++) {
    const int q = lane + j * JCLIP_WARP;
#pragma unroll
    for (int k = 0; k < V; k++) g[j][k] = bt[j][k] = 0.0f;
    if (q < packs) {
#pragma unroll
      for (int k = 0; k < V; k += 4) {
        const float4 a = *reinterpret_cast<const float4*>(gamma + q * V + k), b = *reinterpret_cast<const float4*>(beta + q * V + k);
        g[j][k] = a.x, g[j][k + 1] = a.y, g[j][k + 2] = a.z, g[j][k + 3] = a.w;
        bt[j][k] = b.x, bt[j][k + 1] = b.y, bt[j][k + 2] = b.z, bt[j][k + 3] = b.w;
      }
    }
  }
  // two rows in flight a warp where their registers fit beside gamma and beta (P <= 3), else one
  constexpr int R = P <= 3 ? 2 : 1;
  for (long long row = (long long)blockIdx.x * (blockDim.x / JCLIP_WARP) + threadIdx.x / JCLIP_WARP; row < rows; row += R * warps) {
    const long long row2 = row + warps;
    float v[P][V], w[P][V];
    ln_load<T, P>(v, x, residual, row, D, packs, lane);
    if (R == 2 && row2 < rows) ln_load<T, P>(w, x, residual, row2, D, packs, lane);
    // gamma and beta from the registers loaded above
    auto held = [&](int j, int, float* gj, float* bj) {
#pragma unroll
      for (int k = 0; k < V; k++) gj[k] = g[j][k], bj[k] = bt[j][k];
    };
    ln_store<T, P>(v, held, out, sum_out, row, D, packs, lane, eps);
    if (R == 2 && row2 < rows) ln_store<T, P>(w, held, out, sum_out, row2, D, packs, lane, eps);
  }
}

// The entry point NAME<P>_S of the row-walking kernel NAME<T, P>, at least MIN_BLOCKS blocks of 256 an SM.
#define LAYERNORM_WALK(NAME, MIN_BLOCKS, S, T, P)                                                                 \
  extern "C" __global__ void __launch_bounds__(256, MIN_BLOCKS) NAME##P##_##S(T* out, T* sum_out, const T* x,       \
                                                                              const T* residual, const float* gamma, \
                                                                              const float* beta, long long rows, int D, \
                                                                              float eps) {                        \
    NAME<T, P>(out, sum_out, x, residual, gamma, beta, rows, D, eps);                                             \
  }
// P = 1..4 (fp16/bf16 D up to 1024, fp32 up to 512; P = 5 would spill): wider rows take the plain kernel.
#define LAYERNORM_WARPS_ALL(S, T)                                                                                 \
  LAYERNORM_WALK(layernorm_warps, 2, S, T, 1) LAYERNORM_WALK(layernorm_warps, 2, S, T, 2)                        \
  LAYERNORM_WALK(layernorm_warps, 2, S, T, 3) LAYERNORM_WALK(layernorm_warps, 2, S, T, 4)
JCLIP_FOR_TYPES(LAYERNORM_WARPS_ALL)

// Gamma and beta in shared memory as float4s, laid out so that the lanes' 16-byte reads of them
// are consecutive (conflict-free): float4 k of pack q at [k * packs + q]. smem_gamma_beta fills
// them with the whole block (dynamic shared memory 8 * D bytes) and synchronises; the result is
// ln_store's gamma_beta.
template <typename T>
struct SmemGammaBeta {
  const float4* g4;
  const float4* b4;
  int packs;
  __device__ __forceinline__ void operator()(int, int q, float* g, float* bt) const {
    constexpr int K4 = 16 / sizeof(T) / 4;
#pragma unroll
    for (int k = 0; k < K4; k++) {
      const float4 a = g4[k * packs + q], b = b4[k * packs + q];
      g[4 * k] = a.x, g[4 * k + 1] = a.y, g[4 * k + 2] = a.z, g[4 * k + 3] = a.w;
      bt[4 * k] = b.x, bt[4 * k + 1] = b.y, bt[4 * k + 2] = b.z, bt[4 * k + 3] = b.w;
    }
  }
};

template <typename T>
__device__ __forceinline__ SmemGammaBeta<T> smem_gamma_beta(const float* __restrict__ gamma, const float* __restrict__ beta, int packs) {
  constexpr int V = 16 / sizeof(T), K4 = V / 4;
  extern __shared__ float4 ln_smem[];
  float4* g4 = ln_smem;
  float4* b4 = ln_smem + K4 * packs;
  for (int i = threadIdx.x; i < K4 * packs; i += blockDim.x) {
    const int q = i % packs, k = i / packs;  // float4 k of pack q
    g4[i] = *reinterpret_cast<const float4*>(gamma + q * V + 4 * k);
    b4[i] = *reinterpret_cast<const float4*>(beta + q * V + 4 * k);
  }
  __syncthreads();
  return SmemGammaBeta<T>{g4, b4, packs};
}

// layernorm_smem<P>_f32 / _f16 / _bf16: the vector kernel's arithmetic, bit for bit, with gamma
// and beta in shared memory (smem_gamma_beta). Few registers, many warps (run 7: the
// register-hoarding warps kernel ran 4 warps a scheduler and waited on memory); each warp walks
// rows w, w + warps, ... one at a time. Same conditions as add_layernorm_vec, P up to 4. Launch:
// block 256 (at most 64 registers a thread: 4 blocks, 32 warps an SM), grid = min(ceil(rows / 8),
// 4 * SMs), dynamic shared memory 8 * D bytes (gamma and beta as fp32).
template <typename T, int P>
__device__ __forceinline__ void layernorm_smem(T* out, T* sum_out, const T* x, const T* residual, const float* __restrict__ gamma,
                                               const float* __restrict__ beta, long long rows, int D, float eps) {
  constexpr int V = 16 / sizeof(T);
  const int packs = D / V, lane = threadIdx.x % JCLIP_WARP;
  const SmemGammaBeta<T> held = smem_gamma_beta<T>(gamma, beta, packs);
  const long long warps = (long long)gridDim.x * (blockDim.x / JCLIP_WARP);
  for (long long row = (long long)blockIdx.x * (blockDim.x / JCLIP_WARP) + threadIdx.x / JCLIP_WARP; row < rows; row += warps) {
    float v[P][V];
    ln_load<T, P>(v, x, residual, row, D, packs, lane);
    ln_store<T, P>(v, held, out, sum_out, row, D, packs, lane, eps);
  }
}

#define LAYERNORM_SMEM_ALL(S, T)                                                                                  \
  LAYERNORM_WALK(layernorm_smem, 4, S, T, 1) LAYERNORM_WALK(layernorm_smem, 4, S, T, 2)                          \
  LAYERNORM_WALK(layernorm_smem, 4, S, T, 3) LAYERNORM_WALK(layernorm_smem, 4, S, T, 4)
JCLIP_FOR_TYPES(LAYERNORM_SMEM_ALL)

// layernorm_stream<P>_f32 / _f16 / _bf16 (no residual: the transformer's ln_1 and ln_2) and
// layernorm_stream_res<P>_* (with one): layernorm_smem with the next row of each warp's walk
// already on its way: the 16-byte packs of row i + warps (x, and the residual) are loaded into
// registers before row i's statistics and stores, so a warp keeps a row's loads in flight while it
// computes, where the smem kernel's warps wait for each row in turn (run 7: the LayerNorms moved
// ~2.3 TB/s, half the card's bandwidth). The loaded packs stay 16-bit until they are used, and are
// widened with ln_load's arithmetic: the vector kernel's bits. Rows are distinct, so the early
// loads read nothing this warp's stores write (out may alias x; sum_out x or residual). Same
// conditions as layernorm_smem; launch: block 256, grid = min(ceil(rows / 8), B * SMs), dynamic
// shared memory 8 * D bytes, with B blocks an SM as below (the residual's packs, and at P = 4 the
// wider row, do not fit in 64 registers).
template <typename T, int P, bool RES>
__device__ __forceinline__ void ln_fetch(LnPack<T> (&a)[P], LnPack<T>* b, const T* x, const T* residual, long long row, int D,
                                         int packs, int lane) {
  const LnPack<T>* xr = reinterpret_cast<const LnPack<T>*>(x + row * D);
  const LnPack<T>* rr = RES ? reinterpret_cast<const LnPack<T>*>(residual + row * D) : nullptr;
#pragma unroll
  for (int j = 0; j < P; j++) {
    const int q = lane + j * JCLIP_WARP;
    if (q < packs) {
      a[j] = xr[q];
      if (RES) b[j] = rr[q];
    }
  }
}

template <typename T, int P, bool RES>
__device__ __forceinline__ void layernorm_stream(T* out, T* sum_out, const T* x, const T* residual, const float* __restrict__ gamma,
                                                 const float* __restrict__ beta, long long rows, int D, float eps) {
  constexpr int V = 16 / sizeof(T);
  const int packs = D / V, lane = threadIdx.x % JCLIP_WARP;
  const SmemGammaBeta<T> held = smem_gamma_beta<T>(gamma, beta, packs);
  const long long warps = (long long)gridDim.x * (blockDim.x / JCLIP_WARP);
  long long row = (long long)blockIdx.x * (blockDim.x / JCLIP_WARP) + threadIdx.x / JCLIP_WARP;
  if (row >= rows) return;
  LnPack<T> a[P], b[RES ? P : 1];
  ln_fetch<T, P, RES>(a, b, x, residual, row, D, packs, lane);  // b: the residual's packs (RES only)
  for (; row < rows; row += warps) {
    float v[P][V];
#pragma unroll
    for (int j = 0; j < P; j++) {
      if (lane + j * JCLIP_WARP < packs) {
#pragma unroll
        for (int k = 0; k < V; k++) v[j][k] = ld(a[j].v[k]) + (RES ? ld(b[j].v[k]) : 0.0f);  // ln_load's sum
      }
    }
    if (row + warps < rows) ln_fetch<T, P, RES>(a, b, x, residual, row + warps, D, packs, lane);  // in flight during this row
    ln_store<T, P>(v, held, out, sum_out, row, D, packs, lane, eps);
  }
}

// blocks an SM of layernorm_stream[_res]<P> (CudaOps.streamBlocksPerSm mirrors it): 4 (at most 64
// registers a thread) without a residual up to P = 3, else 3 (85) without one and 2 (128) with one.
#define LAYERNORM_STREAM(S, T, P, B)                                                                              \
  extern "C" __global__ void __launch_bounds__(256, B) layernorm_stream##P##_##S(                                 \
      T* out, T* sum_out, const T* x, const T* residual, const float* gamma, const float* beta, long long rows, int D, \
      float eps) {                                                                                                \
    layernorm_stream<T, P, false>(out, sum_out, x, residual, gamma, beta, rows, D, eps);                          \
  }                                                                                                               \
  extern "C" __global__ void __launch_bounds__(256, 2) layernorm_stream_res##P##_##S(                             \
      T* out, T* sum_out, const T* x, const T* residual, const float* gamma, const float* beta, long long rows, int D, \
      float eps) {                                                                                                \
    layernorm_stream<T, P, true>(out, sum_out, x, residual, gamma, beta, rows, D, eps);                           \
  }
#define LAYERNORM_STREAM_ALL(S, T) \
  LAYERNORM_STREAM(S, T, 1, 4) LAYERNORM_STREAM(S, T, 2, 4) LAYERNORM_STREAM(S, T, 3, 4) LAYERNORM_STREAM(S, T, 4, 3)
JCLIP_FOR_TYPES(LAYERNORM_STREAM_ALL)

// layernorm_deep<P>_f32 / _f16 / _bf16 (no residual: the transformer's ln_1 and ln_2):
// layernorm_stream with each warp's next two rows on their way, not one. Run 8's streaming kernel
// moved 3.3 TB/s (text, D = 512: 1 KB a row) to 3.6 (image, D = 768), short of the card's ~4.8:
// with 32 warps an SM each holding one row in flight, and none while it computes, too few bytes
// are in flight to cover the memory's latency. Here rows i + warps and i + 2 * warps are loaded
// before row i's statistics and stores (a ring of two: the walk goes two rows a step, each
// buffer's index fixed by the unrolled step, so the packs stay in registers). The widening and
// ln_store are layernorm_stream's: the same bits. Rows are distinct and each is walked by one warp
// only, so the early loads read nothing any store before them writes (out may alias x). Same
// conditions as layernorm_smem; launch: block 256, grid = min(ceil(rows / 8), B * SMs), dynamic
// shared memory 8 * D bytes, B blocks an SM as below (the two rows' packs: 4 up to P = 2, 3 at P =
// 3, 2 at P = 4; CudaOps.deepBlocksPerSm mirrors it). residual is not read (launch the stream
// kernel for one); sum_out, when not NULL, gets x exactly. The loaded values are widened without
// the streaming kernel's "+ 0.0f" (its sum with a residual of zero, an add an element: run 8's
// Nsight Compute had layernorm_stream issuing on 70% of cycles, so instructions count): that add
// only turns -0 into +0, which changes neither the mean nor any nonzero v - mean, so no output bit
// but the sign of a zero output (an element -0, its row's mean and its beta exactly 0); sum_out
// keeps x's -0 where the streaming kernel writes +0.
// layernorm_deep_rev<P>_*: the same walking the rows from the last to the first (warp w takes rows
// rows - 1 - w, rows - 1 - w - warps, ...). The GEMM before a LayerNorm writes its rows roughly in
// order, so its last rows are the likeliest still in L2 (50 MB on an H100/H200, against 77-81 MB
// of CLIP's LayerNorm inputs at batch 1024), and the LayerNorm's own last writes, now its first
// rows, are what the GEMM after it reads first. The same bits, row for row.
template <typename T, int P, bool REV>
__device__ __forceinline__ void layernorm_deep(T* out, T* sum_out, const T* x, const float* __restrict__ gamma,
                                               const float* __restrict__ beta, long long rows, int D, float eps) {
  constexpr int V = 16 / sizeof(T);
  const int packs = D / V, lane = threadIdx.x % JCLIP_WARP;
  const SmemGammaBeta<T> held = smem_gamma_beta<T>(gamma, beta, packs);
  const long long warps = (long long)gridDim.x * (blockDim.x / JCLIP_WARP);
  long long row = (long long)blockIdx.x * (blockDim.x / JCLIP_WARP) + threadIdx.x / JCLIP_WARP;
  if (row >= rows) return;
  // step i of the walk is row i, or with REV row rows - 1 - i
  const auto at = [&](long long i) { return REV ? rows - 1 - i : i; };
  LnPack<T> a[2][P], none[1];
  ln_fetch<T, P, false>(a[0], none, x, nullptr, at(row), D, packs, lane);
  if (row + warps < rows) ln_fetch<T, P, false>(a[1], none, x, nullptr, at(row + warps), D, packs, lane);
  for (; row < rows; row += 2 * warps) {
#pragma unroll
    for (int h = 0; h < 2; h++) {  // steps row and row + warps, from buffers 0 and 1
      const long long r = row + h * warps;
      if (r < rows) {
        float v[P][V];
#pragma unroll
        for (int j = 0; j < P; j++) {
          if (lane + j * JCLIP_WARP < packs) {
#pragma unroll
            for (int k = 0; k < V; k++) v[j][k] = ld(a[h][j].v[k]);  // (not + 0.0f: one add an element less; see above)
          }
        }
        if (r + 2 * warps < rows) ln_fetch<T, P, false>(a[h], none, x, nullptr, at(r + 2 * warps), D, packs, lane);  // in flight for two rows
        ln_store<T, P>(v, held, out, sum_out, at(r), D, packs, lane, eps);
      }
    }
  }
}

#define LAYERNORM_DEEP(S, T, P, B)                                                                                \
  extern "C" __global__ void __launch_bounds__(256, B) layernorm_deep##P##_##S(                                   \
      T* out, T* sum_out, const T* x, const T* residual, const float* gamma, const float* beta, long long rows, int D, \
      float eps) {                                                                                                \
    layernorm_deep<T, P, false>(out, sum_out, x, gamma, beta, rows, D, eps);                                      \
  }                                                                                                               \
  extern "C" __global__ void __launch_bounds__(256, B) layernorm_deep_rev##P##_##S(                               \
      T* out, T* sum_out, const T* x, const T* residual, const float* gamma, const float* beta, long long rows, int D, \
      float eps) {                                                                                                \
    layernorm_deep<T, P, true>(out, sum_out, x, gamma, beta, rows, D, eps);                                       \
  }
#define LAYERNORM_DEEP_ALL(S, T) \
  LAYERNORM_DEEP(S, T, 1, 4) LAYERNORM_DEEP(S, T, 2, 4) LAYERNORM_DEEP(S, T, 3, 3) LAYERNORM_DEEP(S, T, 4, 2)
JCLIP_FOR_TYPES(LAYERNORM_DEEP_ALL)

// layernorm_stats<P>_f32 / _f16 / _bf16: each row's mean and 1 / sqrt(var + eps), computed as every
// vector LayerNorm above computes them (ln_load, ln_stats: the same values, bit for bit), into
// stats [rows] (float2: mean, rstd), for a LayerNorm folded into the GEMM that reads its input
// (gemm_sm90.cu's gemm_ln_* kernels: rstd * (x . W'^T - mean * colsum(W')) + b', W' = W gamma,
// b' = b + W beta). One read of x, no write of the normalised row. Same conditions as
// add_layernorm_vec, P up to 4; launch: block 256, grid = min(ceil(rows / 8), 4 * SMs), each warp
// walking rows w, w + warps, ...
template <typename T, int P>
__device__ __forceinline__ void layernorm_stats(float2* __restrict__ stats, const T* x, long long rows, int D, float eps) {
  constexpr int V = 16 / sizeof(T);
  const int packs = D / V, lane = threadIdx.x % JCLIP_WARP;
  const long long warps = (long long)gridDim.x * (blockDim.x / JCLIP_WARP);
  for (long long row = (long long)blockIdx.x * (blockDim.x / JCLIP_WARP) + threadIdx.x / JCLIP_WARP; row < rows; row += warps) {
    float v[P][V];
    ln_load<T, P>(v, x, nullptr, row, D, packs, lane);
    const float2 st = ln_stats<T, P>(v, D, packs, lane, eps);
    if (lane == 0) stats[row] = st;
  }
}

#define LAYERNORM_STATS(S, T, P)                                                                                  \
  extern "C" __global__ void __launch_bounds__(256, 4) layernorm_stats##P##_##S(float2* stats, const T* x,        \
                                                                                long long rows, int D, float eps) { \
    layernorm_stats<T, P>(stats, x, rows, D, eps);                                                                \
  }
#define LAYERNORM_STATS_ALL(S, T) \
  LAYERNORM_STATS(S, T, 1) LAYERNORM_STATS(S, T, 2) LAYERNORM_STATS(S, T, 3) LAYERNORM_STATS(S, T, 4)
JCLIP_FOR_TYPES(LAYERNORM_STATS_ALL)

// layernorm_stats_combine: each row's (mean, rstd) for a folded LayerNorm (as layernorm_stats
// writes them) from the parts gemm_sm90.cu's _res_st kernels wrote while storing the row: part
// [rows, parts] float pairs, part j the mean m_j and the sum of squared deviations q_j of columns
// 256 j .. min(256 (j + 1), D) - 1 (n_j of them). Combined in part order (Chan, Golub and LeVeque's
// pairwise update, all parts at once): mean = sum n_j m_j / D, var = (sum q_j + n_j (m_j - mean)^2) / D,
// rstd = 1 / sqrt(var + eps). No subtraction of two large sums, so fp32 keeps var's digits as the
// two-pass layernorm_stats does; the sums run in another order, so the results may differ from
// layernorm_stats' in the last bits. Launch: one thread a row, block 256, grid ceil(rows / 256).
extern "C" __global__ void __launch_bounds__(256) layernorm_stats_combine(float2* __restrict__ stats, const float2* __restrict__ part,
                                                                          long long rows, int parts, int D, float eps) {
  const long long row = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= rows) return;
  const float2* p = part + row * parts;
  float mean = 0.0f;
  for (int j = 0; j < parts; j++) mean += (float)min(256, D - 256 * j) * p[j].x;
  mean /= D;
  float q = 0.0f;
  for (int j = 0; j < parts; j++) {
    const float d = p[j].x - mean;
    q += p[j].y + (float)min(256, D - 256 * j) * d * d;
  }
  stats[row] = make_float2(mean, 1.0f / sqrtf(q / D + eps));
}
