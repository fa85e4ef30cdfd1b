// gemm_sm90.cu: a LINEAR as one Hopper GEMM with its epilogue fused.
// jclip-ptx-arch: sm_90a
//
// Computes, row-major, with fp32 accumulation and one rounding at the end:
//   C[m, n] = act(sum_k A[m, k] * W[n, k] + bias[n]) (+ residual[m, n])
// PyTorch: act(F.linear(x, weight, bias)) (+ residual) with x [M, K], weight [N, K] (nn.Linear's
// own layout: both operands K-contiguous), act 0 none, 1 QuickGELU (CLIP's c_fc), 2 GELU (erf);
// act -1 times the mainloop alone (no epilogue: nothing is written; benchmarks only).
// cuBLASLt has bias and residual epilogues but no QuickGELU (its GELU is the tanh form), so the
// cuBLAS path writes the c_fc product, then glue.cu's bias_act reads and writes it once more:
// this kernel does both in one pass over C.
//
// How (sm_90a only, hence the PTX target above: wgmma and TMA; loaded on compute capability 9.0 only):
//   - tiles of 128 x 256 of C, K in steps of 64, a 4-stage ring of shared-memory tiles (A 128x64
//     and W 256x64 halves a stage, 48 KB, 1024-byte aligned); persistent: one block per SM walks
//     the tiles (N fastest) and the producer loads the next tile while the consumers finish one;
//   - 3 warpgroups (384 threads): warpgroup 0 is the producer, one thread issuing TMA loads
//     (cp.async.bulk.tensor, 128-byte swizzle, zero fill past M, N and K) that complete on the
//     stage's "full" mbarrier; warpgroups 1 and 2 are consumers, each owning 64 rows of the tile
//     and issuing wgmma.mma_async m64n256k16 (A and W from shared memory, fp32 accumulators in
//     128 registers a thread), releasing a stage on its "empty" mbarrier (one arrive per warp)
//     once the wgmma that read it has completed;
//   - epilogue straight from the accumulators: bias, activation, residual, one rounding to T,
//     32-bit stores of column pairs (a 32-byte sector of C is completed by the same thread's
//     neighbouring stores, so L2 merges them before DRAM).
// wgmma's accumulator layout (m64nNk16, f32): warp w of the warpgroup holds rows 16w..16w+15;
// register 4j+e of lane l is row 16w + l/4 + 8*(e/2), column 8j + 2*(l%4) + (e%2).
// Needs: K % 8 == 0 and N % 8 == 0 (TMA's 16-byte row strides), A and W 16-byte aligned, C and
// residual 4-byte aligned, bias fp32 (8-byte aligned) or null, residual null or [M, N].
// Launch: grid min(tiles, SMs) (tiles = ceil(M/128) * ceil(N/256)), block 384, dynamic shared
// memory GEMM_SMEM_BYTES = 197,696 (above the 48 KB default: cuFuncSetAttribute
// MAX_DYNAMIC_SHARED_SIZE_BYTES first); the two tensor maps (A: dims {K, M}, box {64, 128}; W: dims
// {K, N}, box {64, 256}; 128B swizzle) are __grid_constant__ parameters made by
// cuTensorMapEncodeTiled on the host.
// gemm_bias_act_sm90_c2_*: the same in clusters of two blocks (__cluster_dims__(2, 1, 1)) on M
// tiles 2i and 2i+1 with one N tile: each block loads its A tile and one half of W's tile (box {64,
// 128}), multicast to both, so W's tiles cross L2 once per pair; grid 2 * min(tile pairs, resident
// clusters).
// *_tma_* (gemm_bias_act_sm90_{,pp_}tma_*, gemm_ln_sm90_{,pp_}tma_*): the one-block kernels with
// their outputs staged in shared memory and written by the TMA unit (tma_chunk, below), for
// launches without a residual; dynamic shared memory GEMM_TMA_SMEM_BYTES = 231,424.
// gemm_bias_act_sm90_pp_* and _pp_c2_*: the ping-pong schedule (below): 128x128 tiles, each consumer
// warpgroup on alternate tiles so that one's epilogue overlaps the other's mainloop; W box {64, 128}
// ({64, 64} in clusters), 6 stages, dynamic shared memory PP_SMEM_BYTES = 197,728.
#include "common.cuh"
#include <stdint.h>

#define GEMM_BM 128
#define GEMM_BN 256
#define GEMM_BK 64
#define GEMM_STAGES 4
#define GEMM_A_BYTES (GEMM_BM * GEMM_BK * 2)
#define GEMM_B_BYTES (GEMM_BN * GEMM_BK * 2)
#define GEMM_STAGE_BYTES (GEMM_A_BYTES + GEMM_B_BYTES)
// tiles, then full and empty mbarriers, plus 1 KB to align the tiles to 1024 bytes
#define GEMM_SMEM_BYTES (GEMM_STAGES * GEMM_STAGE_BYTES + 2 * GEMM_STAGES * 8 + 1024)

// CUtensorMap as the driver defines it: 128 opaque bytes, 64-byte aligned.
struct alignas(64) TensorMap {
  unsigned char bytes[128];
};

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}

__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}

__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}

__device__ __forceinline__ bool mbar_try_wait(uint32_t bar, uint32_t parity) {
  uint32_t done;
  asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
               : "=r"(done)
               : "r"(bar), "r"(parity)
               : "memory");
  return done != 0;
}

// Waits until the phase of parity `parity` of the barrier has completed. A wait of more than
// 2^32 cycles (about 2 s) is a broken pipeline, never a slow one: trap, so that the launch fails
// with an error instead of hanging the stream.
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  if (mbar_try_wait(bar, parity)) return;
  const long long start = clock64();
  while (!mbar_try_wait(bar, parity)) {
    if (clock64() - start > (1ll << 32)) asm volatile("trap;");
  }
}

// TMA: the box at (c0 along K, c1 along rows) of the tensor map into shared memory at dst,
// completing `bar`'s transaction count (the whole box's bytes, zero-filled past the tensor's end).
__device__ __forceinline__ void tma_load(uint32_t dst, const TensorMap* map, uint32_t bar, int c0, int c1) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1)
      : "memory");
}

// wgmma shared-memory matrix descriptor of a K-major tile with 128-byte swizzle: rows of 128 bytes
// (64 halves of K), 8-row groups 1024 bytes apart (stride byte offset), leading byte offset unused
// (16), start address advanced by 32 bytes per k16 step inside the swizzled row.
__device__ __forceinline__ uint64_t smem_desc(uint32_t addr) {
  return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)(16 >> 4) << 16) | ((uint64_t)(1024 >> 4) << 32) | ((uint64_t)1 << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}

// Keeps the compiler from moving accesses to the accumulators across wgmma's asynchronous writes.
__device__ __forceinline__ void fence_accumulators(float* d) {
#pragma unroll
  for (int i = 0; i < 128; i++) asm volatile("" : "+f"(d[i])::"memory");
}

#define GEMM_D8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])
#define GEMM_D128                                                                                                      \
  GEMM_D8(0), GEMM_D8(8), GEMM_D8(16), GEMM_D8(24), GEMM_D8(32), GEMM_D8(40), GEMM_D8(48), GEMM_D8(56), GEMM_D8(64),   \
      GEMM_D8(72), GEMM_D8(80), GEMM_D8(88), GEMM_D8(96), GEMM_D8(104), GEMM_D8(112), GEMM_D8(120)
#define GEMM_REGS                                                                                                      \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                            \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                                   \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                                   \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "                                   \
  "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "                                   \
  "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "                                   \
  "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "                       \
  "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}"

// d[64 x 256] += A[64 x 16] * W[256 x 16]^T, both from shared memory (descriptors), no transposes;
// the scale-d predicate is true (accumulate: the accumulators start at zero).
template <typename T> struct Wgmma;
#define GEMM_WGMMA(T, TYPE)                                                                                              \
  template <> struct Wgmma<T> {                                                                                         \
    static __device__ __forceinline__ void run(float* d, uint64_t a, uint64_t b) {                                      \
      asm volatile("{\n .reg .pred acc;\n setp.ne.b32 acc, %130, 0;\n"                                                 \
                   " wgmma.mma_async.sync.aligned.m64n256k16.f32." TYPE "." TYPE " " GEMM_REGS ", %128, %129, acc, 1, 1, 0, 0;\n}\n" \
                   : GEMM_D128                                                                                          \
                   : "l"(a), "l"(b), "r"(1));                                                                           \
    }                                                                                                                   \
  };
GEMM_WGMMA(__half, "f16")
GEMM_WGMMA(__nv_bfloat16, "bf16")

// d[64 x 128] += A[64 x 16] * W[128 x 16]^T (the ping-pong version's shape: 64 accumulators).
#define GEMM_D64 GEMM_D8(0), GEMM_D8(8), GEMM_D8(16), GEMM_D8(24), GEMM_D8(32), GEMM_D8(40), GEMM_D8(48), GEMM_D8(56)
#define GEMM_REGS64                                                                                                    \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                            \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                                   \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                                   \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
template <typename T> struct Wgmma128;
#define GEMM_WGMMA128(T, TYPE)                                                                                           \
  template <> struct Wgmma128<T> {                                                                                      \
    static __device__ __forceinline__ void run(float* d, uint64_t a, uint64_t b) {                                      \
      asm volatile("{\n .reg .pred acc;\n setp.ne.b32 acc, %66, 0;\n"                                                  \
                   " wgmma.mma_async.sync.aligned.m64n128k16.f32." TYPE "." TYPE " " GEMM_REGS64 ", %64, %65, acc, 1, 1, 0, 0;\n}\n" \
                   : GEMM_D64                                                                                           \
                   : "l"(a), "l"(b), "r"(1));                                                                           \
    }                                                                                                                   \
  };
GEMM_WGMMA128(__half, "f16")
GEMM_WGMMA128(__nv_bfloat16, "bf16")

// Two consecutive outputs of T as one 32-bit store.
template <typename T> struct Pair;
template <> struct Pair<__half> {
  static __device__ __forceinline__ void store(__half* p, float a, float b) { *reinterpret_cast<__half2*>(p) = __floats2half2_rn(a, b); }
  static __device__ __forceinline__ float2 load(const __half* p) { return __half22float2(*reinterpret_cast<const __half2*>(p)); }
};
template <> struct Pair<__nv_bfloat16> {
  static __device__ __forceinline__ void store(__nv_bfloat16* p, float a, float b) {
    *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(a, b);
  }
  static __device__ __forceinline__ float2 load(const __nv_bfloat16* p) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
  }
};

// The tile sequence of a block (CLUSTER 1) or of a cluster of 2 (CLUSTER 2), tiles of 128 x BN:
// unit u of the sequence covers N tile u % tilesN and M tile u / tilesN (CLUSTER 1), or M tiles
// 2 (u / tilesN) and the one after it, one per block of the cluster (CLUSTER 2).
template <int CLUSTER, int BN>
struct Tiles {
  int tilesN, units, first, stride, rank;
  __device__ __forceinline__ Tiles(int M, int N) {
    tilesN = (N + BN - 1) / BN;
    const int tilesM = (M + GEMM_BM - 1) / GEMM_BM;
    units = tilesN * ((tilesM + CLUSTER - 1) / CLUSTER);
    if (CLUSTER == 1) {
      first = blockIdx.x, stride = gridDim.x, rank = 0;
    } else {
      uint32_t r, id, n;
      asm("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
      asm("mov.u32 %0, %%clusterid.x;" : "=r"(id));
      asm("mov.u32 %0, %%nclusterid.x;" : "=r"(n));
      first = id, stride = n, rank = r;
    }
  }
  __device__ __forceinline__ int m0(int u) const { return ((u / tilesN) * CLUSTER + rank) * GEMM_BM; }
  __device__ __forceinline__ int n0(int u) const { return (u % tilesN) * BN; }
};

// Both blocks of the cluster reach this point (all their threads) before either goes on.
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}

// The address of the same shared-memory location in block `rank` of the cluster.
__device__ __forceinline__ uint32_t peer_addr(uint32_t local, uint32_t rank) {
  uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(local), "r"(rank));
  return remote;
}

__device__ __forceinline__ void mbar_arrive_cluster(uint32_t remote_bar) {
  asm volatile("mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%0];" ::"r"(remote_bar) : "memory");
}

// TMA with multicast: the box lands at the same offset `dst` in every block of `mask`, completing
// the barrier at offset `bar` of each.
__device__ __forceinline__ void tma_load_multicast(uint32_t dst, const TensorMap* map, uint32_t bar, int c0, int c1, uint16_t mask) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1, {%3, %4}], [%2], %5;" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1), "h"(mask)
      : "memory");
}

// The ring's barriers: "full" completes on the producer's arrive and the stage's TMA bytes,
// "empty" on `releases` arrivals (the consumer warps of a step, in every block of the cluster).
// Returns once every block of the cluster has initialised its barriers.
template <int CLUSTER>
__device__ __forceinline__ void init_ring(uint32_t full, uint32_t empty, int stages, uint32_t releases) {
  if (threadIdx.x == 0) {
    for (int s = 0; s < stages; s++) {
      mbar_init(full + 8 * s, 1);
      mbar_init(empty + 8 * s, releases);
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  }
  if (CLUSTER > 1) cluster_sync();  // the peer's barriers exist before anything lands in them
  else __syncthreads();
}

// The producer (one thread): the block's units in sequence order, k-step g of the whole sequence
// into stage g % stages once its previous round has been released, A's 128 rows and W's BN rows
// (CLUSTER 2: this block's half of them, multicast to both blocks).
// BK: K a step (GEMM_BK; the epilogue-warps kernel's 32).
template <int CLUSTER, int BN, int BK = GEMM_BK>
__device__ __forceinline__ void produce(const Tiles<CLUSTER, BN>& tiles, const TensorMap* tmA, const TensorMap* tmB, uint32_t base,
                                        uint32_t full, uint32_t empty, int stages, int steps) {
  constexpr uint32_t a_bytes = GEMM_BM * BK * 2, stage_bytes = a_bytes + BN * BK * 2;
  int g = 0;
  for (int u = tiles.first; u < tiles.units; u += tiles.stride) {
    const int m0 = tiles.m0(u), n0 = tiles.n0(u);
    for (int kt = 0; kt < steps; kt++, g++) {
      const int s = g % stages;
      if (g >= stages) mbar_wait(empty + 8 * s, ((g / stages) + 1) & 1);
      const uint32_t a = base + s * stage_bytes;
      mbar_expect_tx(full + 8 * s, stage_bytes);
      tma_load(a, tmA, full + 8 * s, kt * BK, m0);
      if (CLUSTER == 1) {
        tma_load(a + a_bytes, tmB, full + 8 * s, kt * BK, n0);
      } else {
        const int half = BN / 2;
        tma_load_multicast(a + a_bytes + tiles.rank * (half * BK * 2), tmB, full + 8 * s, kt * BK, n0 + tiles.rank * half,
                           (uint16_t)0x3);
      }
    }
  }
}

// A consumer warp's release of step g's stage (lane 0): on its own block's empty barrier, and on
// the peer's (`peer`: the peer's empty barriers) in a cluster.
template <int CLUSTER>
__device__ __forceinline__ void release(uint32_t empty, uint32_t peer, int g, int stages, int lane) {
  if (lane != 0) return;
  const int s = g % stages;
  mbar_arrive(empty + 8 * s);
  if (CLUSTER > 1) mbar_arrive_cluster(peer + 8 * s);
}

// A LayerNorm folded into the GEMM (the gemm_ln_* kernels): A is the LayerNorm's input x and W
// is W' = W gamma (each column k scaled by gamma[k]), so that LayerNorm(x) . W^T + b = rstd * (x .
// W'^T - mean * colsum) + b' with colsum[n] = sum_k W'[n, k] (fp32, 8-byte aligned) and b' = b +
// W beta (the caller's bias); each row's (mean, rstd) comes from layernorm.cu's layernorm_stats.
// Two neighbouring accumulators (one row with statistics st, columns c and c + 1 with column sums
// cs) before the epilogue adds b'. The product is rounded on its own (__fmul_rn: never contracted
// with the bias add that follows into one fma), so that the inside-tile and the generic epilogue
// give the same bits.
__device__ __forceinline__ void ln_fold_pair(float& a0, float& a1, float2 st, float2 cs) {
  a0 = __fmul_rn(st.y, fmaf(-st.x, cs.x, a0));
  a1 = __fmul_rn(st.y, fmaf(-st.x, cs.y, a1));
}

// A row's statistics for ln_fold_pair; rows past M (never stored) read the last row's.
__device__ __forceinline__ float2 ln_row(const float2* __restrict__ stats, int r, int M) { return stats[min(r, M - 1)]; }

// The bias of columns c and c + 1 (zero without one).
__device__ __forceinline__ float2 bias_pair(const float* bias, int c) {
  return bias ? *reinterpret_cast<const float2*>(bias + c) : make_float2(0.0f, 0.0f);
}

// The epilogue of two neighbouring outputs (r, c), (r, c + 1) from their accumulators: bias b,
// activation, residual, one rounding, one 32-bit store; nothing past row M.
template <typename T>
__device__ __forceinline__ void store_pair(T* C, float2 b, const T* residual, int M, int N, int r, int c, float a0, float a1, int act) {
  if (r >= M) return;
  float v0 = fast_act(a0 + b.x, act), v1 = fast_act(a1 + b.y, act);
  const size_t at = (size_t)r * N + c;
  if (residual) {
    const float2 rv = Pair<T>::load(residual + at);
    v0 = __fadd_rn(v0, rv.x), v1 = __fadd_rn(v1, rv.y);  // rounded on its own: never contracted with the activation's last multiply
  }
  Pair<T>::store(C + at, v0, v1);
}

// The epilogue of a warp's 16 rows x 8J columns inside the matrix (a tile wholly inside C; act 0
// or 1 as ACT; with RES, a residual of C's shape): the same arithmetic as store_pair, without its
// per-element bounds checks, activation switch and address arithmetic (GPU run 7: the generic
// epilogue took 13-25 us a 128x256 tile, the mainloop ~9, stalled on dependent integer and branch
// chains at 2 warps a scheduler). d[4j + 2h + e] is row r0 + 8h, column c0 + 8j + e. The bias
// (and residual) of CH column pairs are loaded before any of their stores: 8 without a residual,
// 4 with one (its 16 more registers a chunk, within the 168 a thread); addresses are one base
// pointer plus constants.
//
// With LNF (the gemm_ln_* kernels, no residual): a LayerNorm folded in (ln_fold_pair, then the
// bias, as the generic epilogue), st0 and st1 the statistics of rows r0 and r0 + 8, colsum W''s
// column sums; 4 column pairs a chunk.
template <typename T, int ACT, bool RES, int J, bool LNF = false>
__device__ __forceinline__ void epilogue_inside(const float* d, T* __restrict__ C, const float* __restrict__ bias,
                                                const T* __restrict__ residual, int N, int r0, int c0, float2 st0 = {},
                                                float2 st1 = {}, const float* __restrict__ colsum = nullptr) {
  constexpr int CH = RES || LNF ? 4 : 8;
  T* out = C + (size_t)r0 * N + c0;
  const T* res = RES ? residual + (size_t)r0 * N + c0 : nullptr;
  const size_t down = (size_t)8 * N;
#pragma unroll
  for (int jc = 0; jc < J; jc += CH) {
    float2 b[CH], r[CH][2];
    if (bias) {
#pragma unroll
      for (int jj = 0; jj < CH; jj++) b[jj] = *reinterpret_cast<const float2*>(bias + c0 + 8 * (jc + jj));
    } else {
#pragma unroll
      for (int jj = 0; jj < CH; jj++) b[jj] = make_float2(0.0f, 0.0f);
    }
    if (RES) {
#pragma unroll
      for (int jj = 0; jj < CH; jj++) {
#pragma unroll
        for (int h = 0; h < 2; h++) r[jj][h] = Pair<T>::load(res + h * down + 8 * (jc + jj));
      }
    }
    float2 cs[LNF ? CH : 1];
    if (LNF) {
#pragma unroll
      for (int jj = 0; jj < CH; jj++) cs[jj] = *reinterpret_cast<const float2*>(colsum + c0 + 8 * (jc + jj));
    }
#pragma unroll
    for (int jj = 0; jj < CH; jj++) {
#pragma unroll
      for (int h = 0; h < 2; h++) {
        const int i = 4 * (jc + jj) + 2 * h;
        float a0 = d[i], a1 = d[i + 1];
        if (LNF) ln_fold_pair(a0, a1, h == 0 ? st0 : st1, cs[jj]);
        float v0 = a0 + b[jj].x, v1 = a1 + b[jj].y;
        if (ACT == 1) v0 = fast_act(v0, 1), v1 = fast_act(v1, 1);
        if (RES) v0 = __fadd_rn(v0, r[jj][h].x), v1 = __fadd_rn(v1, r[jj][h].y);  // as store_pair
        Pair<T>::store(out + h * down + 8 * (jc + jj), v0, v1);
      }
    }
  }
}

// epilogue_inside with a LayerNorm folded in (no residual), for the launch's activation (0 or 1).
template <typename T, int J>
__device__ __forceinline__ void epilogue_inside_ln(const float* d, T* C, const float* bias, int act, int N, int r0, int c0,
                                                   const float2* __restrict__ stats, const float* colsum) {
  const float2 st0 = stats[r0], st1 = stats[r0 + 8];
  if (act == 1) epilogue_inside<T, 1, false, J, true>(d, C, bias, nullptr, N, r0, c0, st0, st1, colsum);
  else epilogue_inside<T, 0, false, J, true>(d, C, bias, nullptr, N, r0, c0, st0, st1, colsum);
}

// epilogue_inside for the activation and residual of the launch (act 0 or 1; others are not
// "inside": the caller runs the generic epilogue for them).
template <typename T, int J>
__device__ __forceinline__ void epilogue_inside(const float* d, T* C, const float* bias, const T* residual, int act, int N, int r0, int c0) {
  if (residual) {
    if (act == 1) epilogue_inside<T, 1, true, J>(d, C, bias, residual, N, r0, c0);
    else epilogue_inside<T, 0, true, J>(d, C, bias, residual, N, r0, c0);
  } else {
    if (act == 1) epilogue_inside<T, 1, false, J>(d, C, bias, residual, N, r0, c0);
    else epilogue_inside<T, 0, false, J>(d, C, bias, residual, N, r0, c0);
  }
}

// ---- the TMA-store epilogue (the *_tma_* kernels) -----------------------------------------------
// The epilogue above stores each thread's column pairs straight from its accumulators: 32-bit
// stores, eight rows of 16 bytes a warp instruction, and the warps wait for nothing but issue
// slots. The *_tma_* kernels instead write each 64 x 64 chunk of a consumer's outputs (after the
// same arithmetic, the same rounding) into a shared-memory staging buffer in the 128-byte swizzled
// layout, and one thread hands the chunk to the TMA unit (cp.async.bulk.tensor, shared to global,
// clipped at M and N by the tensor map), which writes whole 128-byte rows while the warps go on:
// to the next chunk, then to the next tile's mainloop. Two 8 KB buffers a consumer warpgroup,
// used alternately; before a buffer is written again its store must have read it
// (cp.async.bulk.wait_group.read 1 by the thread that committed the stores), and a named barrier
// (3 + consumer: the ping-pong kernel's hand-over barriers are 1 and 2) orders the warpgroup's
// writes, the async-proxy fence and the store. Launches without a residual only; with one, the
// kernels run the register epilogue above.
// Chunk layout (CU_TENSOR_MAP_SWIZZLE_128B, box 64 x 64 of 2-byte T, 1024-byte aligned buffer):
// row r at byte 128 r, its 16-byte group g at (g ^ (r % 8)) * 16.
#define TMA_CHUNK_BYTES 8192
#define TMA_STORE_BYTES (4 * TMA_CHUNK_BYTES)  // two buffers for each of the two consumers
// The TMA kernels' dynamic shared memory: the ring (4 x 48 KB or 6 x 32 KB: 196,608 bytes either
// way), its barriers padded to 1 KB, the staging buffers, 1 KB to align (Sm90Gemm.TMA_SHARED_BYTES).
#define GEMM_TMA_SMEM_BYTES (GEMM_STAGES * GEMM_STAGE_BYTES + 1024 + TMA_STORE_BYTES + 1024)

// Traps (the launch fails) unless the block has `need` bytes of dynamic shared memory: a launch
// with less would have the buffers past the ring (the TMA kernels' and the epilogue-warps kernel's
// staging) overrun the end silently.
__device__ __forceinline__ void check_smem(uint32_t need) {
  uint32_t size;
  asm volatile("mov.u32 %0, %%dynamic_smem_size;" : "=r"(size));
  if (size < need) asm volatile("trap;");
}

__device__ __forceinline__ void tma_store(const TensorMap* map, uint32_t src, int c0, int c1) {
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%2, %3}], [%1];" ::"l"(reinterpret_cast<uint64_t>(map)),
               "r"(src), "r"(c0), "r"(c1)
               : "memory");
  asm volatile("cp.async.bulk.commit_group;" ::: "memory");
}

// Waits (the committing thread) until at most N of its bulk stores still read shared memory.
template <int N>
__device__ __forceinline__ void tma_store_wait_read() {
  asm volatile("cp.async.bulk.wait_group.read %0;" ::"n"(N) : "memory");
}

// Waits (the committing thread) until all its bulk stores have completed.
__device__ __forceinline__ void tma_store_wait_all() { asm volatile("cp.async.bulk.wait_group 0;" ::: "memory"); }

__device__ __forceinline__ void named_barrier(int id) { asm volatile("bar.sync %0, 128;" ::"r"(id) : "memory"); }

// One 64 x 64 chunk of a consumer warpgroup's outputs through staging buffer `buf` (shared
// address; `sbuf` the same as a generic pointer) to C at (row0, col0): d holds the chunk's
// accumulators as the wgmma layout gives them, d[4 jj + 2 h + e] row 16 warp + lane / 4 + 8 h,
// column 8 jj + 2 (lane % 4) + e of the chunk. The arithmetic is the register epilogue's (bias,
// with LNF the folded LayerNorm first, the activation, one rounding); columns past N are written
// as zeros and rows past M computed from the last row's statistics: the store clips both.
template <typename T, bool LNF>
__device__ __forceinline__ void tma_chunk(const float* d, uint32_t buf, unsigned char* sbuf, const TensorMap* tmC, const float* bias,
                                          int act, int M, int N, int row0, int col0, int warp, int lane, int tid, int barrier,
                                          const float2* __restrict__ stats, const float* __restrict__ colsum) {
  if (tid == 0) tma_store_wait_read<1>();  // the store that last read this buffer (two chunks ago) is done with it
  named_barrier(barrier);
  const int r = 16 * warp + lane / 4;
  const float2 st0 = LNF ? ln_row(stats, row0 + r, M) : float2{}, st1 = LNF ? ln_row(stats, row0 + r + 8, M) : float2{};
#pragma unroll
  for (int jj = 0; jj < 8; jj++) {
    const int c = col0 + 8 * jj + 2 * (lane % 4);
    const bool in = c < N;  // N % 8 == 0: c + 1 < N as well
    const float2 b = in ? bias_pair(bias, c) : make_float2(0.0f, 0.0f);
    const float2 cs = LNF && in ? *reinterpret_cast<const float2*>(colsum + c) : make_float2(0.0f, 0.0f);
#pragma unroll
    for (int h = 0; h < 2; h++) {
      float a0 = d[4 * jj + 2 * h], a1 = d[4 * jj + 2 * h + 1];
      if (LNF) ln_fold_pair(a0, a1, h == 0 ? st0 : st1, cs);
      const float v0 = in ? fast_act(a0 + b.x, act) : 0.0f, v1 = in ? fast_act(a1 + b.y, act) : 0.0f;
      const int rr = r + 8 * h;
      Pair<T>::store(reinterpret_cast<T*>(sbuf + rr * 128 + ((jj ^ (rr & 7)) << 4) + 4 * (lane % 4)), v0, v1);
    }
  }
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");  // the writes, visible to the TMA unit
  named_barrier(barrier);
  if (tid == 0) tma_store(tmC, buf, col0, row0);
}

// CLUSTER 1: one block a 128x256 tile, W tiles loaded whole (tensor map box 256 rows).
// CLUSTER 2: a cluster of two blocks on M tiles 2i and 2i+1 with the same N tile: each block loads
// its own A tile and one half of the shared W tile (box 128 rows), multicast to both, so W crosses
// L2 once per pair. A stage is refilled only when the consumers of both blocks have released it
// (each consumer warp arrives on its own block's "empty" barrier and on its peer's).
// TMA: the TMA-store epilogue (tma_chunk, tmC the map of C) for launches without a residual.
template <typename T, int CLUSTER, bool LNF = false, bool TMA = false>
__device__ __forceinline__ void gemm_sm90(const TensorMap& tmA, const TensorMap& tmB, T* C, const float* bias, const T* residual, int M,
                                          int N, int K, int act, const float2* ln_stats = nullptr, const float* colsum = nullptr,
                                          const TensorMap* tmC = nullptr) {
  extern __shared__ unsigned char gemm_smem[];
  const uint32_t raw = smem_addr(gemm_smem);
  const uint32_t base = raw + ((1024 - (raw & 1023)) & 1023);  // stage s: A at base + s * STAGE_BYTES, W right after
  const uint32_t full = base + GEMM_STAGES * GEMM_STAGE_BYTES, empty = full + GEMM_STAGES * 8;
  if (TMA) check_smem(GEMM_TMA_SMEM_BYTES);

  const int wg = threadIdx.x / 128, lane = threadIdx.x % 32, warp = (threadIdx.x % 128) / 32;
  const Tiles<CLUSTER, GEMM_BN> tiles(M, N);
  const int steps = (K + GEMM_BK - 1) / GEMM_BK;

  init_ring<CLUSTER>(full, empty, GEMM_STAGES, 8 * CLUSTER);  // both consumer warpgroups release every step

  // Persistent: unit u = first, first + stride, ... (N tiles fastest: blocks running together
  // share rows of A, and W stays in L2). Producer and consumers walk the same sequence of k-steps;
  // step g uses stage g % STAGES in its (g / STAGES)-th round.
  if (wg == 0) {  // producer: one thread keeps the ring full, running ahead into the next tile
    if (threadIdx.x == 0) produce<CLUSTER, GEMM_BN>(tiles, &tmA, &tmB, base, full, empty, GEMM_STAGES, steps);
  } else {
    // consumers: warpgroup 1 rows 0..63 of each tile, warpgroup 2 rows 64..127
    const int rows = (wg - 1) * 64;
    const uint32_t peer = CLUSTER > 1 ? peer_addr(empty, tiles.rank ^ 1) : 0;  // the peer's empty barriers
    float d[128];
    int g = 0;
    int chunks = 0;  // TMA: chunks staged so far (their buffers alternate)
    for (int u = tiles.first; u < tiles.units; u += tiles.stride) {
      const int m0 = tiles.m0(u), n0 = tiles.n0(u);
#pragma unroll
      for (int i = 0; i < 128; i++) d[i] = 0.0f;
      for (int kt = 0; kt < steps; kt++, g++) {
        const int s = g % GEMM_STAGES;
        mbar_wait(full + 8 * s, (g / GEMM_STAGES) & 1);
        const uint32_t a = base + s * GEMM_STAGE_BYTES + rows * (GEMM_BK * 2), b = base + s * GEMM_STAGE_BYTES + GEMM_A_BYTES;
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < GEMM_BK / 16; kk++) Wgmma<T>::run(d, smem_desc(a + 32 * kk), smem_desc(b + 32 * kk));
        wgmma_commit();
        wgmma_wait<1>();  // the previous step's wgmma are done: its stage can be refilled
        if (kt > 0) release<CLUSTER>(empty, peer, g - 1, GEMM_STAGES, lane);
      }
      wgmma_wait<0>();
      fence_accumulators(d);
      release<CLUSTER>(empty, peer, g - 1, GEMM_STAGES, lane);  // the tile's last step
      if (act < 0) continue;  // timing only: the mainloop without the epilogue (nothing written)

      if (TMA && residual == nullptr) {  // the consumer's 64 x 256 outputs as four chunks through the TMA unit
        const uint32_t stage = base + GEMM_STAGES * GEMM_STAGE_BYTES + 1024 + (wg - 1) * 2 * TMA_CHUNK_BYTES;
#pragma unroll  // whole: d's registers are indexed by constants only (a variable index would put them in local memory)
        for (int cc = 0; cc < 4; cc++) {
          if (m0 + rows >= M || n0 + 64 * cc >= N) continue;  // wholly outside C (the same for the whole warpgroup)
          const uint32_t buf = stage + (chunks++ & 1) * TMA_CHUNK_BYTES;
          tma_chunk<T, LNF>(d + 32 * cc, buf, gemm_smem + (buf - raw), tmC, bias, act, M, N, m0 + rows, n0 + 64 * cc, warp, lane,
                            threadIdx.x % 128, 2 + wg, ln_stats, colsum);
        }
        continue;
      }
      // Epilogue straight from the accumulators (the producer is already filling the ring with
      // the next tile): bias, activation, residual, one rounding, 32-bit stores of column pairs.
      const int r0 = m0 + rows + warp * 16 + lane / 4;
      const bool inside = (act == 0 || act == 1) && m0 + GEMM_BM <= M && n0 + GEMM_BN <= N && !(LNF && residual);
      if (inside) {
        if (LNF) epilogue_inside_ln<T, 32>(d, C, bias, act, N, r0, n0 + 2 * (lane % 4), ln_stats, colsum);
        else epilogue_inside<T, 32>(d, C, bias, residual, act, N, r0, n0 + 2 * (lane % 4));
      } else {
        const float2 st0 = LNF ? ln_row(ln_stats, r0, M) : float2{}, st1 = LNF ? ln_row(ln_stats, r0 + 8, M) : float2{};
#pragma unroll
        for (int j = 0; j < 32; j++) {
          const int c = n0 + 8 * j + 2 * (lane % 4);
          if (c >= N) continue;  // N % 8 == 0: c + 1 < N as well
          const float2 b = bias_pair(bias, c), cs = LNF ? *reinterpret_cast<const float2*>(colsum + c) : float2{};
#pragma unroll
          for (int h = 0; h < 2; h++) {
            float a0 = d[4 * j + 2 * h], a1 = d[4 * j + 2 * h + 1];
            if (LNF) ln_fold_pair(a0, a1, h == 0 ? st0 : st1, cs);
            store_pair(C, b, residual, M, N, r0 + 8 * h, c, a0, a1, act);
          }
        }
      }
    }
    if (TMA && threadIdx.x % 128 == 0) tma_store_wait_all();  // the staged chunks are written before the block leaves
  }
  // A block may not leave while its peer can still arrive on its barriers.
  if (CLUSTER > 1) cluster_sync();
}

// ---- the ping-pong version -------------------------------------------------------------------
// The cooperative kernel above runs its epilogue (~2.5 us of SFU work a 128x256 tile with
// QuickGELU) while the tensor cores wait. Here each consumer warpgroup owns whole 128x128 tiles,
// the even and the odd units of the block's sequence: the producer fills the ring in sequence
// order, so one consumer's mainloop runs while the other finishes its epilogue; two named barriers
// hand the mainloop from one consumer to the other. A stage holds a
// 128x64 A tile and a 128x64 W tile (32 KB), 6 stages; a consumer issues two m64n128k16 per k16
// step (rows 0..63 and 64..127 of A against the same W), 128 accumulators a thread. With CLUSTER
// 2, W's tile is multicast as in the cooperative version (64 rows a block).
#define PP_BN 128
#define PP_STAGES 6
#define PP_A_BYTES (GEMM_BM * GEMM_BK * 2)
#define PP_B_BYTES (PP_BN * GEMM_BK * 2)
#define PP_STAGE_BYTES (PP_A_BYTES + PP_B_BYTES)
#define PP_SMEM_BYTES (PP_STAGES * PP_STAGE_BYTES + 2 * PP_STAGES * 8 + 1024)
static_assert(PP_STAGES * PP_STAGE_BYTES == GEMM_STAGES * GEMM_STAGE_BYTES, "the TMA kernels' staging follows a ring of the same size");

template <typename T, int CLUSTER, bool LNF = false, bool TMA = false>
__device__ __forceinline__ void gemm_sm90_pp(const TensorMap& tmA, const TensorMap& tmB, T* C, const float* bias, const T* residual, int M,
                                             int N, int K, int act, const float2* ln_stats = nullptr, const float* colsum = nullptr,
                                             const TensorMap* tmC = nullptr) {
  extern __shared__ unsigned char gemm_smem[];
  const uint32_t raw = smem_addr(gemm_smem);
  const uint32_t base = raw + ((1024 - (raw & 1023)) & 1023);
  const uint32_t full = base + PP_STAGES * PP_STAGE_BYTES, empty = full + PP_STAGES * 8;
  if (TMA) check_smem(GEMM_TMA_SMEM_BYTES);  // PP_STAGES * PP_STAGE_BYTES == GEMM_STAGES * GEMM_STAGE_BYTES: the same layout after the ring

  const int wg = threadIdx.x / 128, lane = threadIdx.x % 32, warp = (threadIdx.x % 128) / 32;
  const Tiles<CLUSTER, PP_BN> tiles(M, N);
  const int steps = (K + GEMM_BK - 1) / GEMM_BK;

  init_ring<CLUSTER>(full, empty, PP_STAGES, 4 * CLUSTER);  // one consumer warpgroup releases a step

  if (wg == 0) {  // producer: the units in sequence order, k-steps numbered g as in the cooperative kernel
    if (threadIdx.x == 0) produce<CLUSTER, PP_BN>(tiles, &tmA, &tmB, base, full, empty, PP_STAGES, steps);
  } else {
    // Consumer c takes the units at positions c, c + 2, ... of the block's sequence, whose k-steps
    // are g = position * steps + kt. It starts the mainloop of a position only once the other
    // consumer has finished the mainloop of the position before (named barrier 1 + c, arrived at
    // by the other): the full barriers' phases are told apart by parity alone, so a consumer that
    // skipped the other's steps must not wait on a stage two rounds early (it would take the
    // other's data), and the tensor cores go to one mainloop at a time.
    const int c = wg - 1;
    const int count = tiles.first < tiles.units ? (tiles.units - tiles.first + tiles.stride - 1) / tiles.stride : 0;
    const uint32_t peer = CLUSTER > 1 ? peer_addr(empty, tiles.rank ^ 1) : 0;
    float d[128];  // d[0..63]: rows 0..63 of the tile, d[64..127]: rows 64..127
    int position = 0;
    int chunks = 0;  // TMA: chunks staged so far (their buffers alternate)
    for (int u = tiles.first; u < tiles.units; u += tiles.stride, position++) {
      if ((position & 1) != c) continue;
      if (position > 0) asm volatile("bar.sync %0, 256;" ::"r"(1 + c) : "memory");
      const int m0 = tiles.m0(u), n0 = tiles.n0(u);
      int g = position * steps;
#pragma unroll
      for (int i = 0; i < 128; i++) d[i] = 0.0f;
      for (int kt = 0; kt < steps; kt++, g++) {
        const int s = g % PP_STAGES;
        mbar_wait(full + 8 * s, (g / PP_STAGES) & 1);
        const uint32_t a = base + s * PP_STAGE_BYTES, b = a + PP_A_BYTES;
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < GEMM_BK / 16; kk++) {
          Wgmma128<T>::run(d, smem_desc(a + 32 * kk), smem_desc(b + 32 * kk));
          Wgmma128<T>::run(d + 64, smem_desc(a + 64 * (GEMM_BK * 2) + 32 * kk), smem_desc(b + 32 * kk));
        }
        wgmma_commit();
        wgmma_wait<1>();
        if (kt > 0) release<CLUSTER>(empty, peer, g - 1, PP_STAGES, lane);
      }
      wgmma_wait<0>();
      fence_accumulators(d);
      release<CLUSTER>(empty, peer, g - 1, PP_STAGES, lane);
      // the other consumer may start the next position's mainloop (if there is one: an arrival
      // nobody waits for would be left on the barrier)
      if (position + 1 < count) asm volatile("bar.arrive %0, 256;" ::"r"(1 + (c ^ 1)) : "memory");
      if (act < 0) continue;  // timing only: the mainloop without the epilogue (nothing written)
      if (TMA && residual == nullptr) {  // the 128 x 128 tile as four chunks through the TMA unit
        const uint32_t stage = base + PP_STAGES * PP_STAGE_BYTES + 1024 + c * 2 * TMA_CHUNK_BYTES;
#pragma unroll  // whole, as the cooperative kernel's
        for (int q = 0; q < 4; q++) {
          const int half = q >> 1, cc = q & 1;
          if (m0 + 64 * half >= M || n0 + 64 * cc >= N) continue;  // wholly outside C
          const uint32_t buf = stage + (chunks++ & 1) * TMA_CHUNK_BYTES;
          tma_chunk<T, LNF>(d + 64 * half + 32 * cc, buf, gemm_smem + (buf - raw), tmC, bias, act, M, N, m0 + 64 * half, n0 + 64 * cc, warp,
                            lane, threadIdx.x % 128, 3 + c, ln_stats, colsum);
        }
        continue;
      }
      // epilogue, as the cooperative kernel's: register 64*half + 4j + e of lane l is row
      // 64*half + 16*warp + l/4 + 8*(e/2), column 8j + 2*(l%4) + (e%2)
      const bool inside = (act == 0 || act == 1) && m0 + GEMM_BM <= M && n0 + PP_BN <= N && !(LNF && residual);
#pragma unroll
      for (int half = 0; half < 2; half++) {
        const int r0 = m0 + 64 * half + warp * 16 + lane / 4;
        if (inside) {
          if (LNF) epilogue_inside_ln<T, 16>(d + 64 * half, C, bias, act, N, r0, n0 + 2 * (lane % 4), ln_stats, colsum);
          else epilogue_inside<T, 16>(d + 64 * half, C, bias, residual, act, N, r0, n0 + 2 * (lane % 4));
        } else {
          const float2 st0 = LNF ? ln_row(ln_stats, r0, M) : float2{}, st1 = LNF ? ln_row(ln_stats, r0 + 8, M) : float2{};
#pragma unroll
          for (int j = 0; j < 16; j++) {
            const int col = n0 + 8 * j + 2 * (lane % 4);
            if (col >= N) continue;
            const float2 b = bias_pair(bias, col), cs = LNF ? *reinterpret_cast<const float2*>(colsum + col) : float2{};
#pragma unroll
            for (int h = 0; h < 2; h++) {
              const int i = 64 * half + 4 * j + 2 * h;
              float a0 = d[i], a1 = d[i + 1];
              if (LNF) ln_fold_pair(a0, a1, h == 0 ? st0 : st1, cs);
              store_pair(C, b, residual, M, N, r0 + 8 * h, col, a0, a1, act);
            }
          }
        }
      }
    }
    if (TMA && threadIdx.x % 128 == 0) tma_store_wait_all();  // the staged chunks are written before the block leaves
  }
  if (CLUSTER > 1) cluster_sync();
}

// ---- the epilogue-warps version (gemm_bias_act_sm90_ew_*) ----------------------------------------
// The cooperative kernel's tensor cores wait while its consumers run the epilogue. GPU run 8 (H200)
// timed its mainloop alone at 0.226 ms on the text tower's c_fc (78848 x 2048 x 512, fp16) and the
// whole kernel at 0.482 ms: more than cuBLASLt's GEMM (0.235) plus the separate bias + QuickGELU
// pass (0.139). Here the consumers hand their fp32 accumulators over through shared memory and go
// straight on to the next tile's mainloop, while warps 1-3 of the producer warpgroup (idle in the
// other kernels: one thread of warp 0 issues the TMA loads) apply the epilogue to the staged tile
// (bias, activation, one rounding) and store it, 16 bytes a thread: a warp writes 512 consecutive
// bytes of a row. The epilogue's work (two SFU operations an output for QuickGELU) then runs
// beside the tensor cores instead of between their tiles.
// Shared memory: the staged tile is 128 x 256 fp32 = 128 KB, so the ring is 4 stages of K 32 (A
// 128 x 32 and W 256 x 32 halves, 24 KB a stage, 64-byte swizzle: 96 KB, where the cooperative
// kernel's 4 stages of K 64 take 192 KB), then the staging buffer, then the barriers
// (EW_SMEM_BYTES = 231,424, with 1 KB to align the tiles). The consumers issue the cooperative
// kernel's wgmma sequence (the same k16 steps in the same order) and the epilogue does the register
// epilogue's arithmetic, so the outputs are the cooperative kernel's bits.
// Staging layout: row r (0..127 of the tile) at byte 1024 r, its 16-byte unit u (columns 4u..4u+3)
// at unit u ^ (2 (r % 4)) (ew_unit). A consumer warp's float2 stores (8 rows x 32 bytes) then take
// the minimum two wavefronts, and an epilogue warp's 16-byte loads (one row, 512 bytes a warp)
// four: lane c takes its units 2c and 2c + 1 in the order p = (c >> 2) & 1 gives, so that any 8
// neighbouring lanes cover the 8 bank groups.
// Barriers: the ring's full and empty as the cooperative kernel's; "staged" (256 arrivals: every
// consumer thread after its stores) and "drained" (96: every epilogue thread after its last read of
// the tile) pass the buffer back and forth, the t-th tile of the block in phase t of each, told
// apart by parity: the consumers write tile t only once the epilogue warps have drained tile t - 1,
// which they read only once it was staged. Every wait traps after ~2 s (mbar_wait): no hang.
// C (and a residual, the _res kernels) 16-byte aligned (Sm90Gemm runs the cooperative kernel otherwise).
#define EW_BK 32
#define EW_STAGES 4
#define EW_A_BYTES (GEMM_BM * EW_BK * 2)
#define EW_STAGE_BYTES (EW_A_BYTES + GEMM_BN * EW_BK * 2)
#define EW_STAGED_BYTES (GEMM_BM * GEMM_BN * 4)
#define EW_SMEM_BYTES (EW_STAGES * EW_STAGE_BYTES + EW_STAGED_BYTES + 1024 + 1024)
#define EW_EPILOGUE_THREADS 96

// The ew16 kernels (gemm_*_sm90_ew16_*): the same schedule with the tile staged in 16 bits. The
// consumers add the bias (and fold the LayerNorm) and round once to T before staging, so the
// staged tile is 64 KB and the ring 6 stages of K 32 (144 KB: five stages in flight while the
// consumers read one, where the fp32 staging leaves room for 4); the epilogue warps apply the
// activation and the residual to the rounded values and round again. Without an activation or a
// residual (in_proj) the epilogue warps copy the staged bits: the cooperative kernel's outputs.
// With either, the activation or the residual add sees the rounded sum: a second rounding, so
// within a few units in the last place of the cooperative kernel's (QuickGELU's tail, where the
// output is much smaller than its input, magnifies the first rounding's half unit).
// Staging layout: row r at byte 512 r, its 16-byte unit u (columns 8u..8u+7) at unit u ^ (r % 8)
// (ew16_unit): a consumer warp's 32-bit stores (8 rows x 16 bytes) and an epilogue warp's 16-byte
// loads (one row) each take the minimum wavefronts (1 and 4).
#define EW16_STAGES 6
#define EW16_STAGED_BYTES (GEMM_BM * GEMM_BN * 2)
#define EW16_SMEM_BYTES (EW16_STAGES * EW_STAGE_BYTES + EW16_STAGED_BYTES + 1024 + 1024)

// wgmma shared-memory descriptor of a K-major tile with 64-byte swizzle: rows of 64 bytes (32
// halves of K), 8-row groups 512 bytes apart, start advanced by 32 bytes a k16 step in the row.
__device__ __forceinline__ uint64_t smem_desc64(uint32_t addr) {
  return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)(16 >> 4) << 16) | ((uint64_t)(512 >> 4) << 32) | ((uint64_t)2 << 62);
}

// The byte offset of 16-byte unit u of row r in the staging buffer.
__device__ __forceinline__ uint32_t ew_unit(int r, int u) { return (uint32_t)(1024 * r + 16 * (u ^ (2 * (r & 3)))); }

// The same in the ew16 kernels' 16-bit staging buffer (8 columns a unit, 32 units a row).
__device__ __forceinline__ uint32_t ew16_unit(int r, int u) { return (uint32_t)(512 * r + 16 * (u ^ (r & 7))); }

// Two outputs rounded to T (as Pair<T>::store rounds them), as 32 bits.
__device__ __forceinline__ uint32_t pack_pair(__half, float a, float b) {
  const __half2 h = __floats2half2_rn(a, b);
  return *reinterpret_cast<const uint32_t*>(&h);
}
__device__ __forceinline__ uint32_t pack_pair(__nv_bfloat16, float a, float b) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
  return *reinterpret_cast<const uint32_t*>(&h);
}

// The bias of an epilogue lane's 8 columns from col (zeros past N, or without a bias).
__device__ __forceinline__ void ew_bias8(float* b, const float* __restrict__ bias, int col, bool in) {
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const float2 bb = in ? bias_pair(bias, col + 2 * i) : make_float2(0.0f, 0.0f);
    b[2 * i] = bb.x, b[2 * i + 1] = bb.y;
  }
}

// v = act(staged row r's 8 accumulators of the lane + bias): its units 2 lane and 2 lane + 1, read
// in the order p = (lane >> 2) & 1 gives (the layout's comment above). With LNF, a LayerNorm folded
// in first (ln_fold_pair's arithmetic: the row's statistics st, the columns' sums cs).
template <int ACT, bool LNF = false>
__device__ __forceinline__ void ew_row8(float* v, const unsigned char* staged, int r, int lane, int p, const float* b, float2 st = {},
                                        const float* cs = nullptr) {
  const float4 f0 = *reinterpret_cast<const float4*>(staged + ew_unit(r, 2 * lane + p));
  const float4 f1 = *reinterpret_cast<const float4*>(staged + ew_unit(r, 2 * lane + 1 - p));
  const float4 lo = p ? f1 : f0, hi = p ? f0 : f1;
  float a[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
#pragma unroll
  for (int i = 0; i < 8; i += 2) {
    if (LNF) ln_fold_pair(a[i], a[i + 1], st, make_float2(cs[i], cs[i + 1]));
    v[i] = fast_act(a[i] + b[i], ACT), v[i + 1] = fast_act(a[i + 1] + b[i + 1], ACT);
  }
}

// v rounded to T (as Pair<T>::store rounds) and stored as one 16-byte store at `at`; returns the
// stored bits.
template <typename T>
__device__ __forceinline__ uint4 ew_store8(T* at, const float* v) {
  uint4 o;
  o.x = pack_pair(T(), v[0], v[1]);
  o.y = pack_pair(T(), v[2], v[3]);
  o.z = pack_pair(T(), v[4], v[5]);
  o.w = pack_pair(T(), v[6], v[7]);
  *reinterpret_cast<uint4*>(at) = o;
  return o;
}

// Eight values of T (16 bytes, as loaded or stored) as floats.
template <typename T>
__device__ __forceinline__ void unpack8(float* x, uint4 o) {
  const uint32_t w[4] = {o.x, o.y, o.z, o.w};
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const float2 f = Pair<T>::load(reinterpret_cast<const T*>(&w[i]));
    x[2 * i] = f.x, x[2 * i + 1] = f.y;
  }
}

// The ew16 kernels' v = act(the staged row r's 8 values of the lane): the bias (and a folded
// LayerNorm) are in them already, rounded to T.
template <typename T, int ACT>
__device__ __forceinline__ void ew16_row8(float* v, const unsigned char* staged, int r, int lane) {
  unpack8<T>(v, *reinterpret_cast<const uint4*>(staged + ew16_unit(r, lane)));
#pragma unroll
  for (int i = 0; i < 8; i++) v[i] = fast_act(v[i], ACT);
}

// ew_row8, or with H16 ew16_row8 (b unused).
template <typename T, int ACT, bool H16>
__device__ __forceinline__ void ew_read8(float* v, const unsigned char* staged, int r, int lane, int p, const float* b) {
  if (H16) ew16_row8<T, ACT>(v, staged, r, lane);
  else ew_row8<ACT>(v, staged, r, lane, p, b);
}

// The epilogue warps (e = 0..2): rows e, e + 3, ... of each staged tile; lane c columns 8c..8c+7
// of the tile (bias loaded once a tile), C[m0 + r, n0 + 8c ..] = round(act(staged + bias)), 16
// bytes a store; nothing past M or N (N % 8 == 0: a group of 8 columns is all in or all out).
// LNF (the gemm_ln_sm90_ew_* kernels): a LayerNorm folded in, as the gemm_ln kernels fold it:
// the rows' statistics from layernorm_stats, W''s column sums colsum (loaded once a tile, as the bias).
// H16 (the ew16 kernels): the 16-bit staged values have their bias (and fold) already: the
// activation and a second rounding, or without an activation the staged bits stored as they are.
// SPLIT (the ew16s kernels): the tile's two halves of rows (0..63, staged by consumer warpgroup 1,
// and 64..127, by warpgroup 2) each with barriers of their own (staged_bar + 8 h, drained_bar +
// 8 h): half 0's rows, then half 1's, each half handed back as soon as it is read.
template <typename T, int ACT, bool LNF = false, bool H16 = false, bool SPLIT = false>
__device__ __forceinline__ void ew_epilogue(const Tiles<1, GEMM_BN>& tiles, const unsigned char* staged, uint32_t staged_bar,
                                            uint32_t drained_bar, T* __restrict__ C, const float* __restrict__ bias, int M, int N, int e,
                                            int lane, const float2* __restrict__ stats = nullptr, const float* __restrict__ colsum = nullptr) {
  constexpr int HALVES = SPLIT ? 2 : 1, HROWS = GEMM_BM / HALVES;
  const int p = (lane >> 2) & 1;
  int t = 0;
  for (int u = tiles.first; u < tiles.units; u += tiles.stride, t++) {
    const int m0 = tiles.m0(u), col = tiles.n0(u) + 8 * lane;
    const bool in = col < N;
    float b[8], cs[8];  // cs: the column sums (LNF only)
    if (!H16) {
      ew_bias8(b, bias, col, in);
      if (LNF) ew_bias8(cs, colsum, col, in);
    }
    T* out = C + (size_t)m0 * N + col;
#pragma unroll 1
    for (int h = 0; h < HALVES; h++) {
      mbar_wait(staged_bar + 8 * h, t & 1);
#pragma unroll 2
      for (int r = HROWS * h + e; r < HROWS * (h + 1); r += 3) {
        if (in && m0 + r < M) {
          if (H16 && ACT == 0) {  // the staged bits are the outputs
            *reinterpret_cast<uint4*>(out + (size_t)r * N) = *reinterpret_cast<const uint4*>(staged + ew16_unit(r, lane));
            continue;
          }
          float v[8];
          if (H16) ew16_row8<T, ACT>(v, staged, r, lane);
          else if (LNF) ew_row8<ACT, true>(v, staged, r, lane, p, b, stats[m0 + r], cs);
          else ew_row8<ACT>(v, staged, r, lane, p, b);
          ew_store8(out + (size_t)r * N, v);
        }
      }
      mbar_arrive(drained_bar + 8 * h);  // this thread's reads of the tile (or half) are done
    }
  }
}

// Eight values of T (16 bytes) as floats, added to v[0..7], each add rounded on its own (as store_pair
// adds the residual: never contracted into an fma with the activation's last multiply).
template <typename T>
__device__ __forceinline__ void add8(float* v, uint4 r) {
  float x[8];
  unpack8<T>(x, r);
#pragma unroll
  for (int i = 0; i < 8; i++) v[i] = __fadd_rn(v[i], x[i]);  // as store_pair
}

// The LayerNorm statistics' part of one output row in one column tile (the _res_st kernels): the
// warp's row segment as stored (o, the lane's 8 rounded values; lanes past N give nothing), its
// mean over the segment's n columns and the sum of squared deviations from that mean, both summed
// in lane order then across the warp (warp_sum), written by lane 0 as one float pair at `at`.
// layernorm_stats_combine turns a row's parts into its (mean, rstd) (Chan et al.'s pairwise
// update: the variance's sum never subtracts two large sums, as E[x²] - mean² would).
template <typename T>
__device__ __forceinline__ void ew_row_stats(float2* at, uint4 o, bool in, int n, int lane) {
  float x[8];
  unpack8<T>(x, o);
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < 8; i++) sum += in ? x[i] : 0.0f;
  const float mean = warp_sum(sum) / (float)n;
  float sq = 0.0f;
#pragma unroll
  for (int i = 0; i < 8; i++) {
    const float d = x[i] - mean;
    sq += in ? d * d : 0.0f;
  }
  sq = warp_sum(sq);
  if (lane == 0) *at = make_float2(mean, sq);
}

// ew_epilogue with a residual of C's shape (the _res kernels: out_proj and c_proj):
// C = round(act(staged + bias) + residual), the register epilogue's arithmetic (store_pair). The
// warp's rows go in steps of EW_RES_ROWS (rows e + 3 (8 s + j)); each step's residual (16 bytes a
// row and thread) is loaded one step ahead, the first step's before the tile is staged (the
// residual does not depend on the GEMM), so that the loads' latency hides behind a step's work.
// Each thread reads its residual bytes before it writes the same C bytes, and no other thread
// touches them: C may be the residual itself.
// ST (the _res_st kernels): besides, each output row's LayerNorm statistics' part in this column
// tile (ew_row_stats) into part[row * ceil(N / 256) + tile column], for the LayerNorm a next
// LINEAR folds in (layernorm_stats_combine, then gemm_ln_*): no pass of its own over C.
// H16 (the ew16 kernels): the staged values have their bias; the residual is added to them as rounded.
// SPLIT (the ew16s kernels): as ew_epilogue's, each half of the tile's rows a walk of its own,
// handed back when read; half 1's first step's residual is loaded during half 0's last step.
#define EW_RES_ROWS 8
template <typename T, int ACT, bool ST = false, bool H16 = false, bool SPLIT = false>
__device__ __forceinline__ void ew_epilogue_res(const Tiles<1, GEMM_BN>& tiles, const unsigned char* staged, uint32_t staged_bar,
                                                uint32_t drained_bar, T* C, const float* __restrict__ bias, const T* residual, int M, int N,
                                                int e, int lane, float2* __restrict__ part = nullptr) {
  constexpr int HALVES = SPLIT ? 2 : 1, HROWS = GEMM_BM / HALVES;
  const int p = (lane >> 2) & 1;
  constexpr int steps = (HROWS / 3 + 1 + EW_RES_ROWS - 1) / EW_RES_ROWS;  // 43 rows at most a warp (22 a half)
  int t = 0;
  for (int u = tiles.first; u < tiles.units; u += tiles.stride, t++) {
    const int m0 = tiles.m0(u), col = tiles.n0(u) + 8 * lane;
    const bool in = col < N;
    float b[8];
    if (!H16) ew_bias8(b, bias, col, in);
    uint4 cur[EW_RES_ROWS], next[EW_RES_ROWS];
    const T* res_tile = residual + (size_t)m0 * N + col;
#pragma unroll
    for (int j = 0; j < EW_RES_ROWS; j++) {  // the first step's residual (half 0's), before the tile is staged
      const int r = e + 3 * j;
      cur[j] = in && m0 + r < M ? *reinterpret_cast<const uint4*>(res_tile + (size_t)r * N) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll 1
    for (int h = 0; h < HALVES; h++) {
      const int h0 = HROWS * h;  // the half's first row in the tile (rows h0 + e + 3 i, i = 0, 1, ... below HROWS)
      T* out = C + (size_t)(m0 + h0) * N + col;
      const T* res = res_tile + (size_t)h0 * N;
      const int mh = M - h0;  // rows past the half's first that exist
      mbar_wait(staged_bar + 8 * h, t & 1);
#pragma unroll 1
      for (int st = 0; st < steps; st++) {
        // the next step: this half's, or after its last (SPLIT) the next half's first, or none
        const bool more = st + 1 < steps, next_half = SPLIT && !more;
#pragma unroll
        for (int j = 0; j < EW_RES_ROWS; j++) {  // the next step's residual (rn: its row from this half's first)
          const int rn = next_half ? HROWS + e + 3 * j : e + 3 * (EW_RES_ROWS * (st + 1) + j);
          next[j] = (next_half ? h + 1 < HALVES : more && rn < HROWS) && in && m0 + rn < mh
                        ? *reinterpret_cast<const uint4*>(res + (size_t)rn * N)
                        : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int j = 0; j < EW_RES_ROWS; j++) {
          const int r = e + 3 * (EW_RES_ROWS * st + j);
          if (ST) {  // every lane of the warp in the row (the statistics' shuffles), those past N with nothing
            if (r < HROWS && m0 + r < mh) {
              uint4 o = make_uint4(0, 0, 0, 0);
              if (in) {
                float v[8];
                ew_read8<T, ACT, H16>(v, staged, h0 + r, lane, p, b);
                add8<T>(v, cur[j]);
                o = ew_store8(out + (size_t)r * N, v);
              }
              const int n0 = tiles.n0(u);
              ew_row_stats<T>(part + (size_t)(m0 + h0 + r) * ((N + GEMM_BN - 1) / GEMM_BN) + n0 / GEMM_BN, o, in, min(GEMM_BN, N - n0), lane);
            }
          } else if (r < HROWS && in && m0 + r < mh) {
            float v[8];
            ew_read8<T, ACT, H16>(v, staged, h0 + r, lane, p, b);
            add8<T>(v, cur[j]);
            ew_store8(out + (size_t)r * N, v);
          }
        }
#pragma unroll
        for (int j = 0; j < EW_RES_ROWS; j++) cur[j] = next[j];
      }
      mbar_arrive(drained_bar + 8 * h);  // this thread's reads of the tile (or half) are done
    }
  }
}

// The ew kernels' staging of a consumer thread's fp32 accumulators (rows r0 and r0 + 8 of the
// tile, columns 8j + 2q and 8j + 2q + 1) as float2 stores at ew_unit(r, 2j + q / 2) + 8 (q % 2).
// Column pair j = 4a + b of rows r0 and r0 + 8 lies at 128 a + 32 (b ^ (r0 % 4)) past the thread's
// place in row r0 (r0 + 8 has r0's low bits), so each b takes one address and its 16 stores
// immediate offsets (the consumers' tensor cores wait while this runs).
__device__ __forceinline__ void ew_stage(const float* d, unsigned char* staged, int r0, int q) {
  unsigned char* row = staged + 1024 * r0 + 16 * (q >> 1) + 8 * (q & 1);
#pragma unroll
  for (int b = 0; b < 4; b++) {
    unsigned char* at = row + 32 * (b ^ (r0 & 3));
#pragma unroll
    for (int a = 0; a < 8; a++) {
      const int j = 4 * a + b;
#pragma unroll
      for (int h = 0; h < 2; h++) {  // ew_unit(r0 + 8 h, 2 j + q / 2) + 8 (q % 2)
        *reinterpret_cast<float2*>(at + 128 * a + 8192 * h) = make_float2(d[4 * j + 2 * h], d[4 * j + 2 * h + 1]);
      }
    }
  }
}

// The ew16 kernels' staging of a consumer thread's accumulators (rows r0 and r0 + 8 of the tile,
// columns 8j + 2q and 8j + 2q + 1): with LNF the LayerNorm folded in (ln_fold_pair with the rows'
// statistics and the columns' sums), then the bias, rounded once to T (the register epilogue's
// arithmetic up to its activation and residual), two values a 32-bit store at ew16_unit. Columns
// past N take no bias or column sums (nothing reads them); rows past M the last row's statistics.
// The consumers' tensor cores wait while this runs (ew16), or the other warpgroup's keep busy
// (ew16s), so it is kept short: unit j = 8a + b of rows r0 and r0 + 8 lies at 128 a + 16 (b ^ (r0
// % 8)) past the thread's place in row r0 (r0 + 8 has r0's low bits), so each b takes one address
// and its 8 stores immediate offsets; and a tile inside N (all but a last column tile) tests no
// column (N % 8 == 0: with n0 + 256 <= N every column of the tile is inside).
template <typename T, bool LNF, bool CHECK>
__device__ __forceinline__ void ew16_stage_cols(const float* d, unsigned char* row, const float* __restrict__ bias,
                                                const float* __restrict__ colsum, const float2* st, int n0, int N, int sw, int q) {
#pragma unroll
  for (int b = 0; b < 8; b++) {
    unsigned char* at = row + 16 * (b ^ sw);
#pragma unroll
    for (int a = 0; a < 4; a++) {
      const int j = 8 * a + b, c = n0 + 8 * j + 2 * q;
      const bool in = !CHECK || c < N;  // N % 8 == 0: c + 1 < N too
      const float2 bb = in ? bias_pair(bias, c) : make_float2(0.0f, 0.0f);
      float2 cs = make_float2(0.0f, 0.0f);
      if (LNF && in) cs = *reinterpret_cast<const float2*>(colsum + c);
#pragma unroll
      for (int h = 0; h < 2; h++) {
        float a0 = d[4 * j + 2 * h], a1 = d[4 * j + 2 * h + 1];
        if (LNF) ln_fold_pair(a0, a1, st[h], cs);
        *reinterpret_cast<uint32_t*>(at + 128 * a + 4096 * h) = pack_pair(T(), a0 + bb.x, a1 + bb.y);  // ew16_unit(r0 + 8 h, j) + 4 q
      }
    }
  }
}

template <typename T, bool LNF>
__device__ __forceinline__ void ew16_stage(const float* d, unsigned char* staged, const float* __restrict__ bias,
                                           const float* __restrict__ colsum, const float2* __restrict__ stats, int m0, int n0, int M,
                                           int N, int r0, int q) {
  float2 st[2] = {};
  if (LNF) st[0] = ln_row(stats, m0 + r0, M), st[1] = ln_row(stats, m0 + r0 + 8, M);
  unsigned char* row = staged + 512 * r0 + 4 * q;
  if (n0 + GEMM_BN <= N) ew16_stage_cols<T, LNF, false>(d, row, bias, colsum, st, n0, N, r0 & 7, q);
  else ew16_stage_cols<T, LNF, true>(d, row, bias, colsum, st, n0, N, r0 & 7, q);
}

// RES: the _res kernels (a residual of C's shape, 16-byte aligned, added after the activation).
// LNF: the gemm_ln_sm90_ew_* kernels (a LayerNorm folded in; no residual).
// ST: the _res_st kernels (RES, and the rows' LayerNorm statistics' parts into ln_part).
// H16: the ew16 kernels (the tile staged in 16 bits after the bias and the fold; 6 stages).
// SPLIT: the ew16s kernels (H16 with each consumer warpgroup's half of the tile handed over on
// barriers of its own, and warpgroup 2 starting `lag` k steps after warpgroup 1: below).
template <typename T, bool RES = false, bool LNF = false, bool ST = false, bool H16 = false, bool SPLIT = false>
__device__ __forceinline__ void gemm_sm90_ew(const TensorMap& tmA, const TensorMap& tmB, T* C, const float* bias, const T* residual, int M,
                                             int N, int K, int act, const float2* ln_stats = nullptr, const float* colsum = nullptr,
                                             float2* ln_part = nullptr, int lag = 0) {
  constexpr int STAGES = H16 ? EW16_STAGES : EW_STAGES;
  constexpr int HALVES = SPLIT ? 2 : 1;
  constexpr uint32_t STAGED_BYTES = H16 ? EW16_STAGED_BYTES : EW_STAGED_BYTES;
  extern __shared__ unsigned char gemm_smem[];
  const uint32_t raw = smem_addr(gemm_smem);
  const uint32_t base = raw + ((1024 - (raw & 1023)) & 1023);  // stage s: A at base + s * EW_STAGE_BYTES, W right after
  const uint32_t staged_addr = base + STAGES * EW_STAGE_BYTES;
  // staged and drained: one barrier each, or with SPLIT one a half (half h at + 8 h); go: SPLIT's start
  const uint32_t full = staged_addr + STAGED_BYTES, empty = full + STAGES * 8, staged_bar = empty + STAGES * 8,
                 drained_bar = staged_bar + 8 * HALVES, go_bar = drained_bar + 8 * HALVES;
  unsigned char* staged = gemm_smem + (staged_addr - raw);
  check_smem(H16 ? EW16_SMEM_BYTES : EW_SMEM_BYTES);
  if ((residual != nullptr) != RES) asm volatile("trap;");  // a residual is the _res kernels', and theirs needs one
  if (ST && ln_part == nullptr) asm volatile("trap;");        // the _res_st kernels write the statistics' parts
  if (SPLIT && (lag < 0 || lag > STAGES - 2)) asm volatile("trap;");  // Sm90Gemm keeps it within 0..4

  const int wg = threadIdx.x / 128, lane = threadIdx.x % 32, warp = (threadIdx.x % 128) / 32;
  const Tiles<1, GEMM_BN> tiles(M, N);
  const int steps = (K + EW_BK - 1) / EW_BK;

  if (threadIdx.x == 0) {
    for (int h = 0; h < HALVES; h++) {
      mbar_init(staged_bar + 8 * h, 256 / HALVES);
      mbar_init(drained_bar + 8 * h, EW_EPILOGUE_THREADS);
    }
    if (SPLIT) mbar_init(go_bar, 1);
  }
  init_ring<1>(full, empty, STAGES, 8);  // fences thread 0's barrier inits, then __syncthreads

  if (wg == 0) {
    if (warp == 0) {  // the producer, as the cooperative kernel's in steps of K 32
      if (lane == 0) produce<1, GEMM_BN, EW_BK>(tiles, &tmA, &tmB, base, full, empty, STAGES, steps);
    } else if (act >= 0) {  // the epilogue warps (none when timing the mainloop alone)
      if (ST) {
        if (act == 1) ew_epilogue_res<T, 1, true, H16, SPLIT>(tiles, staged, staged_bar, drained_bar, C, bias, residual, M, N, warp - 1, lane, ln_part);
        else if (act == 2) ew_epilogue_res<T, 2, true, H16, SPLIT>(tiles, staged, staged_bar, drained_bar, C, bias, residual, M, N, warp - 1, lane, ln_part);
        else ew_epilogue_res<T, 0, true, H16, SPLIT>(tiles, staged, staged_bar, drained_bar, C, bias, residual, M, N, warp - 1, lane, ln_part);
      } else if (RES) {
        if (act == 1) ew_epilogue_res<T, 1, false, H16, SPLIT>(tiles, staged, staged_bar, drained_bar, C, bias, residual, M, N, warp - 1, lane);
        else if (act == 2) ew_epilogue_res<T, 2, false, H16, SPLIT>(tiles, staged, staged_bar, drained_bar, C, bias, residual, M, N, warp - 1, lane);
        else ew_epilogue_res<T, 0, false, H16, SPLIT>(tiles, staged, staged_bar, drained_bar, C, bias, residual, M, N, warp - 1, lane);
      } else {
        if (act == 1) ew_epilogue<T, 1, LNF, H16, SPLIT>(tiles, staged, staged_bar, drained_bar, C, bias, M, N, warp - 1, lane, ln_stats, colsum);
        else if (act == 2) ew_epilogue<T, 2, LNF, H16, SPLIT>(tiles, staged, staged_bar, drained_bar, C, bias, M, N, warp - 1, lane, ln_stats, colsum);
        else ew_epilogue<T, 0, LNF, H16, SPLIT>(tiles, staged, staged_bar, drained_bar, C, bias, M, N, warp - 1, lane, ln_stats, colsum);  // none
      }
    }
  } else {
    // consumers: warpgroup 1 rows 0..63 of each tile, warpgroup 2 rows 64..127
    const int rows = (wg - 1) * 64;
    // SPLIT: the half's barriers; warpgroup 2 starts once warpgroup 1 has issued its first `lag`
    // k steps (all of its first tile's, if fewer), and the lead holds: while one warpgroup hands
    // its half over, the other has the tensor cores alone and gains what the first gains back at
    // the other's hand-over. At most STAGES - 2 steps, so that warpgroup 1 still finds stages
    // loaded ahead while warpgroup 2 holds the older ones; a longer lead shortens itself as
    // warpgroup 1 waits for stages.
    const int half = SPLIT ? wg - 1 : 0, go_step = min(lag, steps) - 1;
    if (SPLIT && wg == 2 && lag > 0 && steps > 0 && tiles.first < tiles.units) mbar_wait(go_bar, 0);
    float d[128];
    int g = 0, t = 0;
    for (int u = tiles.first; u < tiles.units; u += tiles.stride, t++) {
#pragma unroll
      for (int i = 0; i < 128; i++) d[i] = 0.0f;
      for (int kt = 0; kt < steps; kt++, g++) {
        const int s = g % STAGES;
        mbar_wait(full + 8 * s, (g / STAGES) & 1);
        const uint32_t a = base + s * EW_STAGE_BYTES + rows * (EW_BK * 2), b = base + s * EW_STAGE_BYTES + EW_A_BYTES;
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < EW_BK / 16; kk++) Wgmma<T>::run(d, smem_desc64(a + 32 * kk), smem_desc64(b + 32 * kk));
        wgmma_commit();
        if (SPLIT && wg == 1 && t == 0 && kt == go_step && threadIdx.x == 128) mbar_arrive(go_bar);  // lag > 0 only (go_step >= 0)
        wgmma_wait<1>();  // the previous step's wgmma are done: its stage can be refilled
        if (kt > 0) release<1>(empty, 0, g - 1, STAGES, lane);
      }
      wgmma_wait<0>();
      fence_accumulators(d);
      release<1>(empty, 0, g - 1, STAGES, lane);  // the tile's last step
      if (act < 0) continue;  // timing only: the mainloop without the epilogue (nothing written)
      if (t > 0) mbar_wait(drained_bar + 8 * half, (t - 1) & 1);  // the epilogue warps are done with the previous tile (half)
      // d[4j + 2h + e] is row r0 + 8h, column 8j + 2q + e of the tile (the wgmma layout)
      const int r0 = rows + 16 * warp + lane / 4, q = lane % 4;
      if (H16) ew16_stage<T, LNF>(d, staged, bias, colsum, ln_stats, tiles.m0(u), tiles.n0(u), M, N, r0, q);
      else ew_stage(d, staged, r0, q);
      mbar_arrive(staged_bar + 8 * half);  // this thread's part of the tile is staged
    }
  }
}

#define GEMM_SM90(S, T)                                                                                                  \
  extern "C" __global__ void __launch_bounds__(384, 1)                                                                  \
      gemm_bias_act_sm90_##S(const __grid_constant__ TensorMap tmA, const __grid_constant__ TensorMap tmB, T* C,      \
                             const float* bias, const T* residual, int M, int N, int K, int act) {                      \
    gemm_sm90<T, 1>(tmA, tmB, C, bias, residual, M, N, K, act);                                                         \
  }                                                                                                                     \
  extern "C" __global__ void __cluster_dims__(2, 1, 1) __launch_bounds__(384, 1)                                        \
      gemm_bias_act_sm90_c2_##S(const __grid_constant__ TensorMap tmA, const __grid_constant__ TensorMap tmB, T* C,   \
                                const float* bias, const T* residual, int M, int N, int K, int act) {                   \
    gemm_sm90<T, 2>(tmA, tmB, C, bias, residual, M, N, K, act);                                                         \
  }                                                                                                                     \
  extern "C" __global__ void __launch_bounds__(384, 1)                                                                  \
      gemm_bias_act_sm90_pp_##S(const __grid_constant__ TensorMap tmA, const __grid_constant__ TensorMap tmB, T* C,   \
                                const float* bias, const T* residual, int M, int N, int K, int act) {                   \
    gemm_sm90_pp<T, 1>(tmA, tmB, C, bias, residual, M, N, K, act);                                                      \
  }                                                                                                                     \
  extern "C" __global__ void __cluster_dims__(2, 1, 1) __launch_bounds__(384, 1)                                        \
      gemm_bias_act_sm90_pp_c2_##S(const __grid_constant__ TensorMap tmA, const __grid_constant__ TensorMap tmB, T* C,\
                                   const float* bias, const T* residual, int M, int N, int K, int act) {                \
    gemm_sm90_pp<T, 2>(tmA, tmB, C, bias, residual, M, N, K, act);                                                      \
  }
GEMM_SM90(f16, __half)
GEMM_SM90(bf16, __nv_bfloat16)

// gemm_ln_sm90_* and gemm_ln_sm90_pp_*: the cooperative and ping-pong kernels with a LayerNorm
// folded in (ln_fold_pair above: A is the LayerNorm's input, W = W' = W gamma, bias = b', plus the rows'
// statistics and W''s column sums), for the LINEAR a LayerNorm feeds (in_proj after ln_1, c_fc
// after ln_2): the LayerNorm's pass writes nothing. Launch as their kernels.
#define GEMM_LN_SM90(S, T)                                                                                               \
  extern "C" __global__ void __launch_bounds__(384, 1)                                                                  \
      gemm_ln_sm90_##S(const __grid_constant__ TensorMap tmA, const __grid_constant__ TensorMap tmB, T* C,            \
                       const float* bias, const T* residual, int M, int N, int K, int act, const float2* ln_stats,     \
                       const float* colsum) {                                                                           \
    gemm_sm90<T, 1, true>(tmA, tmB, C, bias, residual, M, N, K, act, ln_stats, colsum);                                 \
  }                                                                                                                     \
  extern "C" __global__ void __launch_bounds__(384, 1)                                                                  \
      gemm_ln_sm90_pp_##S(const __grid_constant__ TensorMap tmA, const __grid_constant__ TensorMap tmB, T* C,         \
                          const float* bias, const T* residual, int M, int N, int K, int act, const float2* ln_stats,  \
                          const float* colsum) {                                                                        \
    gemm_sm90_pp<T, 1, true>(tmA, tmB, C, bias, residual, M, N, K, act, ln_stats, colsum);                              \
  }
GEMM_LN_SM90(f16, __half)
GEMM_LN_SM90(bf16, __nv_bfloat16)

// The *_tma_* kernels: gemm_bias_act_sm90_{,pp_}tma_* and gemm_ln_sm90_{,pp_}tma_*, the one-block
// kernels above with the TMA-store epilogue (tma_chunk) for launches without a residual; the
// same values in the same places as their register-epilogue kernels. tmC: the map of C, dims {N,
// M}, box {64, 64}, 128-byte swizzle. C 16-byte aligned. Dynamic shared memory
// GEMM_TMA_SMEM_BYTES = 231,424: the ring (196,608 either way), its barriers padded to 1 KB, the
// four staging buffers, 1 KB to align.
#define GEMM_TMA_SM90(S, T)                                                                                              \
  extern "C" __global__ void __launch_bounds__(384, 1)                                                                  \
      gemm_bias_act_sm90_tma_##S(const __grid_constant__ TensorMap tmA, const __grid_constant__ TensorMap tmB,        \
                                 const __grid_constant__ TensorMap tmC, T* C, const float* bias, const T* residual, int M, \
                                 int N, int K, int act) {                                                               \
    gemm_sm90<T, 1, false, true>(tmA, tmB, C, bias, residual, M, N, K, act, nullptr, nullptr, &tmC);                    \
  }                                                                                                                     \
  extern "C" __global__ void __launch_bounds__(384, 1)                                                                  \
      gemm_bias_act_sm90_pp_tma_##S(const __grid_constant__ TensorMap tmA, const __grid_constant__ TensorMap tmB,     \
                                    const __grid_constant__ TensorMap tmC, T* C, const float* bias, const T* residual,  \
                                    int M, int N, int K, int act) {                                                     \
    gemm_sm90_pp<T, 1, false, true>(tmA, tmB, C, bias, residual, M, N, K, act, nullptr, nullptr, &tmC);                 \
  }                                                                                                                     \
  extern "C" __global__ void __launch_bounds__(384, 1)                                                                  \
      gemm_ln_sm90_tma_##S(const __grid_constant__ TensorMap tmA, const __grid_constant__ TensorMap tmB,              \
                           const __grid_constant__ TensorMap tmC, T* C, const float* bias, const T* residual, int M,    \
                           int N, int K, int act, const float2* ln_stats, const float* colsum) {                        \
    gemm_sm90<T, 1, true, true>(tmA, tmB, C, bias, residual, M, N, K, act, ln_stats, colsum, &tmC);                     \
  }                                                                                                                     \
  extern "C" __global__ void __launch_bounds__(384, 1)                                                                  \
      gemm_ln_sm90_pp_tma_##S(const __grid_constant__ TensorMap tmA, const __grid_constant__ TensorMap tmB,           \
                              const __grid_constant__ TensorMap tmC, T* C, const float* bias, const T* residual, int M, \
                              int N, int K, int act, const float2* ln_stats, const float* colsum) {                     \
    gemm_sm90_pp<T, 1, true, true>(tmA, tmB, C, bias, residual, M, N, K, act, ln_stats, colsum, &tmC);                  \
  }
GEMM_TMA_SM90(f16, __half)
GEMM_TMA_SM90(bf16, __nv_bfloat16)

// gemm_bias_act_sm90_ew_*: the epilogue-warps kernel above without a residual (the parameter is
// kept so that every gemm_bias_act_* launch passes the same arguments; non-null traps);
// gemm_bias_act_sm90_ew_res_*: with one (residual [M, N], 16-byte aligned; null traps);
// gemm_ln_sm90_ew_*: a LayerNorm folded in as gemm_ln_sm90_* folds it (ln_stats [M] float pairs,
// colsum [N], both 8-byte aligned; no residual);
// gemm_bias_act_sm90_ew_res_st_*: the _res kernel that also writes each row's LayerNorm
// statistics' parts (ln_part [M, ceil(N / 256)] float pairs, 8-byte aligned: a tile column's mean
// and sum of squared deviations; null traps) for layernorm_stats_combine. Launch:
// grid min(tiles, SMs), block 384, dynamic shared memory EW_SMEM_BYTES = 231,424; the tensor maps of
// A (box {32, 128}) and W (box {32, 256}) with 64-byte swizzle.
// The ew16 kernels (TAG ew16, H16): gemm_bias_act_sm90_ew16_*, gemm_bias_act_sm90_ew16_res_*,
// gemm_ln_sm90_ew16_* and gemm_bias_act_sm90_ew16_res_st_*, the same four with the tile staged in
// 16 bits (the bias and a folded LayerNorm applied by the consumers, one rounding; the activation
// and the residual by the epilogue warps, a second) and 6 stages; the same arguments and launch,
// dynamic shared memory EW16_SMEM_BYTES = 215,040.
// The ew16s kernels (TAG ew16s, SPLIT): the ew16 kernels with the two consumer warpgroups' halves
// of a tile handed over apart and warpgroup 2 starting `lag` (0..4) k steps behind warpgroup 1, so
// that one's hand-over overlaps the other's mainloop; the same bits as the ew16 kernels. One more
// argument, int lag, after the others; the same launch.
// LAGP: the entries' extra parameter (a macro: EW_LAG_PARAM, or EW_NO_PARAM for none); LAG what
// they pass as gemm_sm90_ew's lag.
#define EW_NO_PARAM
#define EW_LAG_PARAM , int lag
#define GEMM_EW_SM90(TAG, H16, SPLIT, S, T, LAGP, LAG)                                                                   \
  extern "C" __global__ void __launch_bounds__(384, 1)                                                                  \
      gemm_bias_act_sm90_##TAG##_##S(const __grid_constant__ TensorMap tmA, const __grid_constant__ TensorMap tmB,    \
                                     T* C, const float* bias, const T* residual, int M, int N, int K, int act LAGP) {   \
    gemm_sm90_ew<T, false, false, false, H16, SPLIT>(tmA, tmB, C, bias, residual, M, N, K, act, nullptr, nullptr, nullptr, LAG); \
  }                                                                                                                     \
  extern "C" __global__ void __launch_bounds__(384, 1)                                                                  \
      gemm_bias_act_sm90_##TAG##_res_##S(const __grid_constant__ TensorMap tmA, const __grid_constant__ TensorMap tmB,\
                                         T* C, const float* bias, const T* residual, int M, int N, int K, int act LAGP) { \
    gemm_sm90_ew<T, true, false, false, H16, SPLIT>(tmA, tmB, C, bias, residual, M, N, K, act, nullptr, nullptr, nullptr, LAG); \
  }                                                                                                                     \
  extern "C" __global__ void __launch_bounds__(384, 1)                                                                  \
      gemm_ln_sm90_##TAG##_##S(const __grid_constant__ TensorMap tmA, const __grid_constant__ TensorMap tmB, T* C,    \
                               const float* bias, const T* residual, int M, int N, int K, int act,                      \
                               const float2* ln_stats, const float* colsum LAGP) {                                      \
    gemm_sm90_ew<T, false, true, false, H16, SPLIT>(tmA, tmB, C, bias, residual, M, N, K, act, ln_stats, colsum, nullptr, LAG); \
  }                                                                                                                     \
  extern "C" __global__ void __launch_bounds__(384, 1)                                                                  \
      gemm_bias_act_sm90_##TAG##_res_st_##S(const __grid_constant__ TensorMap tmA,                                     \
                                            const __grid_constant__ TensorMap tmB, T* C, const float* bias,             \
                                            const T* residual, int M, int N, int K, int act, float2* ln_part LAGP) {    \
    gemm_sm90_ew<T, true, false, true, H16, SPLIT>(tmA, tmB, C, bias, residual, M, N, K, act, nullptr, nullptr, ln_part, LAG); \
  }
GEMM_EW_SM90(ew, false, false, f16, __half, EW_NO_PARAM, 0)
GEMM_EW_SM90(ew, false, false, bf16, __nv_bfloat16, EW_NO_PARAM, 0)
GEMM_EW_SM90(ew16, true, false, f16, __half, EW_NO_PARAM, 0)
GEMM_EW_SM90(ew16, true, false, bf16, __nv_bfloat16, EW_NO_PARAM, 0)
GEMM_EW_SM90(ew16s, true, true, f16, __half, EW_LAG_PARAM, lag)
GEMM_EW_SM90(ew16s, true, true, bf16, __nv_bfloat16, EW_LAG_PARAM, lag)
