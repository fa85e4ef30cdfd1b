// flash_attention.cu: fused multi-head self-attention on tensor cores, FlashAttention-2 style.
//
// Computes, for each batch b, head h and query row i (scale = 1/sqrt(64)):
//   out[i] = sum_j softmax_j(scale * <q_i, k_j>) v_j      over keys j (j <= i when causal)
// PyTorch: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal) between
// CLIP's in_proj and out_proj. Same layout and semantics as attention.cu (its attention_f16/_bf16
// are the first, WMMA-based versions; these are the second):
//   qkv row-major [B, N, 3, H, 64] (the [B*N, 3D] in_proj output), out row-major [B, N, H, 64].
//
// How: each warp owns 16 query rows and keeps everything in registers with the mma.sync
// m16n8k16 fragment layouts (g = lane / 4, t = lane % 4):
//   A (16x16, row):  a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 = (g+8, 2t+8..)
//   B (16x8, col):   b0 = (rows 2t..2t+1, col g), b1 = (rows 2t+8.., col g)
//   C (16x8, f32):   c0, c1 = (g, 2t), (g, 2t+1); c2, c3 = (g+8, 2t), (g+8, 2t+1)
// S = Q K^T comes out in C layout, which is exactly the A layout P needs for O += P V, so the
// probabilities never leave registers; the online softmax rescales O per row (rows g and g+8 of
// the thread). K tiles are stored row-major (a B operand for K^T is a row of K), V tiles
// transposed (a B operand for V is a row of V^T). fp32 accumulation and statistics throughout.
// Launch: grid (ceil(N/64), H, B), block 128 (4 warps x 16 rows), static shared memory 18 KB.
// flash_attention_vkey_*: the same, with the V tile read key by key (bank-conflict-free transposed
// stores), bit for bit the same results; opt-in until timed. flash_attention_occ4_* and
// flash_attention_vkey_occ4_*: both compiled for 4 resident blocks an SM; flash_attention_fit_* and
// flash_attention_vkey_fit_*: one block of 16 * ceil(N/16) rows for N <= 80 (grid (1, H, B), block
// 32 * ceil(N/16)); flash_attention_ldm[_occ4|_fit]_*: the V tile row-major, its fragments read
// with ldmatrix.trans (all at the end of the file).
#include "common.cuh"

#define FA_HEAD 64
#define FA_WARPS 4
#define FA_ROWS (FA_WARPS * 16)
#define FA_TILE 64
#define FA_PAD 8  // halves of padding per smem row: rows 144 bytes apart, conflict-free 32-bit loads

template <typename T> struct Mma;
template <> struct Mma<__half> {
  static __device__ __forceinline__ void run(float* c, const unsigned* a, const unsigned* b) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
  static __device__ __forceinline__ unsigned pack(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&h);
  }
};
template <> struct Mma<__nv_bfloat16> {
  static __device__ __forceinline__ void run(float* c, const unsigned* a, const unsigned* b) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
  static __device__ __forceinline__ unsigned pack(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&h);
  }
};

// Two consecutive 16-bit elements as one 32-bit register.
template <typename T>
__device__ __forceinline__ unsigned pair(const T* p) {
  return *reinterpret_cast<const unsigned*>(p);
}

// Four 8x8 matrices of 16-bit elements from shared memory, transposed: lane l gives the address of
// row l % 8 of matrix l / 8 (16 contiguous bytes) and receives, in r[i], elements (2t, g) and
// (2t + 1, g) of matrix i (g = l / 4, t = l % 4): an mma B fragment of a row-major tile.
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], const void* row) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

// Four 8x8 matrices of 16-bit elements from shared memory, as stored: lane l gives the address of
// row l % 8 of matrix l / 8 (16 contiguous bytes) and receives, in r[i], elements (g, 2t) and
// (g, 2t + 1) of matrix i: the A fragment of a row-major 16x16 tile (matrices: rows 0-7 and 8-15
// of columns 0-7, then of 8-15), or two k-steps' B fragments of a tile stored n-major (K, for K^T).
__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const void* row) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

// Helpers shared by fa_tile and fa_tile_lean (inlined: the same instructions in either).
// A row's 64 scores are spread over the 4 threads of a quad: its max and its sum over them.
__device__ __forceinline__ void fa_quad_max(float& lo, float& hi) {
  lo = fmaxf(lo, __shfl_xor_sync(0xffffffffu, lo, 1));
  lo = fmaxf(lo, __shfl_xor_sync(0xffffffffu, lo, 2));
  hi = fmaxf(hi, __shfl_xor_sync(0xffffffffu, hi, 1));
  hi = fmaxf(hi, __shfl_xor_sync(0xffffffffu, hi, 2));
}
__device__ __forceinline__ void fa_quad_sum(float& lo, float& hi) {
  lo += __shfl_xor_sync(0xffffffffu, lo, 1);
  lo += __shfl_xor_sync(0xffffffffu, lo, 2);
  hi += __shfl_xor_sync(0xffffffffu, hi, 1);
  hi += __shfl_xor_sync(0xffffffffu, hi, 2);
}

// O's rows g (lo) and g + 8 (hi) scaled by the online softmax's corrections.
__device__ __forceinline__ void fa_rescale(float (&o)[8][4], float corr_lo, float corr_hi) {
#pragma unroll
  for (int n = 0; n < 8; n++) {
    o[n][0] *= corr_lo;
    o[n][1] *= corr_lo;
    o[n][2] *= corr_hi;
    o[n][3] *= corr_hi;
  }
}

// O += P V: P's A fragments are S's C fragments (p, the probabilities), two key blocks per 16-key
// step; V's B fragments by ldmatrix.trans from a row-major tile (LDM), else by 32-bit loads from a
// transposed one.
template <typename T, bool LDM>
__device__ __forceinline__ void fa_pv(float (&o)[8][4], const float (&p)[8][4], const T (*vt_s)[FA_TILE + FA_PAD], int lane) {
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int ks = 0; ks < 4; ks++) {
    unsigned pa[4] = {Mma<T>::pack(p[2 * ks][0], p[2 * ks][1]), Mma<T>::pack(p[2 * ks][2], p[2 * ks][3]),
                      Mma<T>::pack(p[2 * ks + 1][0], p[2 * ks + 1][1]), Mma<T>::pack(p[2 * ks + 1][2], p[2 * ks + 1][3])};
    if (LDM) {
      // matrices: keys ks*16 + 0..7 and + 8..15 of dims 8n..8n+7, then the same of block n + 1
      const int mi = lane / 8, key = ks * 16 + (mi & 1) * 8 + lane % 8;
#pragma unroll
      for (int n = 0; n < 8; n += 2) {
        unsigned vb[4];
        ldmatrix_x4_trans(vb, &vt_s[key][(n + (mi >> 1)) * 8]);
        Mma<T>::run(o[n], pa, vb);
        Mma<T>::run(o[n + 1], pa, vb + 2);
      }
    } else {
#pragma unroll
      for (int n = 0; n < 8; n++) {
        unsigned vb[2] = {pair(&vt_s[n * 8 + g][ks * 16 + 2 * t]), pair(&vt_s[n * 8 + g][ks * 16 + 2 * t + 8])};
        Mma<T>::run(o[n], pa, vb);
      }
    }
  }
}

// One K/V tile (keys j0 .. j0 + 63, in k_s and vt_s) of a warp's 16 query rows: S = Q K^T,
// scale and mask, the online softmax's running maxima and sums, O rescaled, O += P V. Shared by
// the kernels below, so that they compute alike (the same bits).
template <typename T, bool LDM>
__device__ __forceinline__ void fa_tile(const T (*k_s)[FA_HEAD + FA_PAD], const T (*vt_s)[FA_TILE + FA_PAD], const unsigned (&qf)[4][4],
                                        float (&o)[8][4], float& m_lo, float& m_hi, float& l_lo, float& l_hi, int j0, int N,
                                        int causal, int r_lo, int r_hi, int lane) {
  const int g = lane / 4, t = lane % 4;
  const float scale = 0.125f;
  // S = Q K^T: 8 blocks of 8 keys.
  float s[8][4];
#pragma unroll
  for (int n = 0; n < 8; n++) {
    s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < 4; ks++) {
      unsigned kb[2] = {pair(&k_s[n * 8 + g][ks * 16 + 2 * t]), pair(&k_s[n * 8 + g][ks * 16 + 2 * t + 8])};
      Mma<T>::run(s[n], qf[ks], kb);
    }
  }
  // scale, mask, row maxima (a row's 64 scores are spread over the 4 threads of a quad)
  float mx_lo = -INFINITY, mx_hi = -INFINITY;
#pragma unroll
  for (int n = 0; n < 8; n++) {
#pragma unroll
    for (int u = 0; u < 2; u++) {
      const int key = j0 + n * 8 + 2 * t + u;
      const bool ok_lo = key < N && !(causal && key > r_lo);
      const bool ok_hi = key < N && !(causal && key > r_hi);
      s[n][u] = ok_lo ? s[n][u] * scale : -INFINITY;
      s[n][2 + u] = ok_hi ? s[n][2 + u] * scale : -INFINITY;
      mx_lo = fmaxf(mx_lo, s[n][u]);
      mx_hi = fmaxf(mx_hi, s[n][2 + u]);
    }
  }
  fa_quad_max(mx_lo, mx_hi);
  const float mn_lo = fmaxf(m_lo, mx_lo), mn_hi = fmaxf(m_hi, mx_hi);
  // rows whose every key so far is masked keep max -inf: use 0 as the reference, all p are 0
  const float ref_lo = mn_lo == -INFINITY ? 0.0f : mn_lo, ref_hi = mn_hi == -INFINITY ? 0.0f : mn_hi;
  const float corr_lo = m_lo == -INFINITY ? 0.0f : expf(m_lo - ref_lo);
  const float corr_hi = m_hi == -INFINITY ? 0.0f : expf(m_hi - ref_hi);
  float sum_lo = 0.0f, sum_hi = 0.0f;
#pragma unroll
  for (int n = 0; n < 8; n++) {
    s[n][0] = expf(s[n][0] - ref_lo);
    s[n][1] = expf(s[n][1] - ref_lo);
    s[n][2] = expf(s[n][2] - ref_hi);
    s[n][3] = expf(s[n][3] - ref_hi);
    sum_lo += s[n][0] + s[n][1];
    sum_hi += s[n][2] + s[n][3];
  }
  fa_quad_sum(sum_lo, sum_hi);
  l_lo = l_lo * corr_lo + sum_lo;
  l_hi = l_hi * corr_hi + sum_hi;
  m_lo = mn_lo;
  m_hi = mn_hi;
  fa_rescale(o, corr_lo, corr_hi);
  fa_pv<T, LDM>(o, s, vt_s, lane);
}

// 2^x by the SFU (ex2.approx.ftz.f32: ~2 ulp; -inf gives +0).
__device__ __forceinline__ float fa_ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// fa_tile in fewer instructions, for the pipelined kernels' lean entries (flash_attention_pipe_*lean*).
// GPU run 8's Nsight Compute had the pipelined kernel issuing on half its cycles at the base clock
// and taking as many cycles at the boost clock (bound by the SM, not by memory), and its SASS spends
// ~15 instructions an element of S around 2 tensor-core ones: a scale, two compares and a select for
// the mask, a max, expf's 8 (range reduction around MUFU.EX2), a subtraction and a sum; and 64 32-bit
// shared loads for K's fragments. Arguments as fa_tile's, but for the mask: lim_lo / lim_hi, how many
// keys from the thread's first (j0 + 2t) are valid for rows r_lo / r_hi, min(N, causal ? row + 1 : N)
// - j0 - 2t, so that element (n, u)'s key is valid when 8n + u < lim (fa_tile's two conditions as one
// compare against a constant). first: the item's first tile (o and l zero, m -inf before; a branch,
// not a second copy of the tile: with two copies ptxas spilled 64-108 bytes at the 128 registers,
// with the branch 28-36, at the stage's level as the default kernel's 40).
// EXP2 false: fa_tile's arithmetic, so the same bits, in fewer instructions around it: K's B
// fragments by ldmatrix (16 instructions instead of 64 loads), the mask as above, and at an item's
// first tile no rescaling (fa_tile computes o * 0 and l * 0 + sum there: the same zeros and sums).
// EXP2 true: besides, the softmax in base 2 with the scale folded in, as FlashAttention and PyTorch's
// fused kernels compute it: the running max kept unscaled, p = 2^(s c - m c) with c = scale log2(e),
// one FFMA and one MUFU.EX2 an element instead of a multiply, a subtraction and expf. Other bits:
// p within ~1e-6 relative of fa_tile's before both are rounded to 16 bits for P V.
template <typename T, bool EXP2>
__device__ __forceinline__ void fa_tile_lean(const T (*k_s)[FA_HEAD + FA_PAD], const T (*v_s)[FA_HEAD + FA_PAD], const unsigned (&qf)[4][4],
                                             float (&o)[8][4], float& m_lo, float& m_hi, float& l_lo, float& l_hi, int lim_lo, int lim_hi,
                                             bool first, int lane) {
  const float scale = 0.125f, c = 0.125f * 1.44269504088896341f;
  // S = Q K^T: 8 blocks of 8 keys; ldmatrix gives two k-steps' B fragments (keys 8n + lane % 8,
  // dims 32 kp + 8 (lane / 8): matrices 0 and 1 are k-step 2 kp's b0 and b1, 2 and 3 k-step 2 kp + 1's)
  float s[8][4];
#pragma unroll
  for (int n = 0; n < 8; n++) {
    s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
    for (int kp = 0; kp < 2; kp++) {
      unsigned kb[4];
      ldmatrix_x4(kb, &k_s[n * 8 + lane % 8][kp * 32 + (lane / 8) * 8]);
      Mma<T>::run(s[n], qf[2 * kp], kb);
      Mma<T>::run(s[n], qf[2 * kp + 1], kb + 2);
    }
  }
  // (EXP2: unscaled) scores, masked, and the row maxima
  float mx_lo = -INFINITY, mx_hi = -INFINITY;
#pragma unroll
  for (int n = 0; n < 8; n++) {
#pragma unroll
    for (int u = 0; u < 2; u++) {
      s[n][u] = n * 8 + u < lim_lo ? (EXP2 ? s[n][u] : s[n][u] * scale) : -INFINITY;
      s[n][2 + u] = n * 8 + u < lim_hi ? (EXP2 ? s[n][2 + u] : s[n][2 + u] * scale) : -INFINITY;
      mx_lo = fmaxf(mx_lo, s[n][u]);
      mx_hi = fmaxf(mx_hi, s[n][2 + u]);
    }
  }
  fa_quad_max(mx_lo, mx_hi);
  const float mn_lo = fmaxf(m_lo, mx_lo), mn_hi = fmaxf(m_hi, mx_hi);
  // the reference subtracted (EXP2: in the exponent's units); 0 for a row with every key so far masked
  const float ref_lo = mn_lo == -INFINITY ? 0.0f : (EXP2 ? mn_lo * c : mn_lo);
  const float ref_hi = mn_hi == -INFINITY ? 0.0f : (EXP2 ? mn_hi * c : mn_hi);
  float sum_lo = 0.0f, sum_hi = 0.0f;
#pragma unroll
  for (int n = 0; n < 8; n++) {
#pragma unroll
    for (int e = 0; e < 4; e++) {
      const float ref = e < 2 ? ref_lo : ref_hi;
      s[n][e] = EXP2 ? fa_ex2(fmaf(s[n][e], c, -ref)) : expf(s[n][e] - ref);
    }
    sum_lo += s[n][0] + s[n][1];
    sum_hi += s[n][2] + s[n][3];
  }
  fa_quad_sum(sum_lo, sum_hi);
  if (first) {
    l_lo = sum_lo;
    l_hi = sum_hi;
  } else {
    const float corr_lo = m_lo == -INFINITY ? 0.0f : (EXP2 ? fa_ex2(fmaf(m_lo, c, -ref_lo)) : expf(m_lo - ref_lo));
    const float corr_hi = m_hi == -INFINITY ? 0.0f : (EXP2 ? fa_ex2(fmaf(m_hi, c, -ref_hi)) : expf(m_hi - ref_hi));
    l_lo = l_lo * corr_lo + sum_lo;
    l_hi = l_hi * corr_hi + sum_hi;
    fa_rescale(o, corr_lo, corr_hi);
  }
  m_lo = mn_lo;
  m_hi = mn_hi;
  fa_pv<T, true>(o, s, v_s, lane);  // V row-major, read with ldmatrix.trans
}

// The warp's 16 output rows: O / l, rounded to T, rows past N left alone.
template <typename T>
__device__ __forceinline__ void fa_store(T* __restrict__ out, const float (&o)[8][4], float l_lo, float l_hi, int b, int h, int N, int D,
                                         int r_lo, int r_hi, int t) {
  const float inv_lo = l_lo > 0.0f ? 1.0f / l_lo : 0.0f, inv_hi = l_hi > 0.0f ? 1.0f / l_hi : 0.0f;
#pragma unroll
  for (int n = 0; n < 8; n++) {
    const int d = n * 8 + 2 * t;
    if (r_lo < N) {
      T* o_lo = out + ((long long)b * N + r_lo) * D + h * FA_HEAD + d;
      *reinterpret_cast<unsigned*>(o_lo) = Mma<T>::pack(o[n][0] * inv_lo, o[n][1] * inv_lo);
    }
    if (r_hi < N) {
      T* o_hi = out + ((long long)b * N + r_hi) * D + h * FA_HEAD + d;
      *reinterpret_cast<unsigned*>(o_hi) = Mma<T>::pack(o[n][2] * inv_hi, o[n][3] * inv_hi);
    }
  }
}

// A warp's Q fragments for 4 k-steps of 16 dims from its 16 rows of a Q tile in shared memory
// (rows of 72: conflict-free 32-bit loads, lane (g, t) at bank 4g + t + 8ks).
template <typename T>
__device__ __forceinline__ void fa_q_fragments(unsigned (&qf)[4][4], const T (*rows)[FA_HEAD + FA_PAD], int lane) {
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int ks = 0; ks < 4; ks++) {
    qf[ks][0] = pair(&rows[g][ks * 16 + 2 * t]);
    qf[ks][1] = pair(&rows[g + 8][ks * 16 + 2 * t]);
    qf[ks][2] = pair(&rows[g][ks * 16 + 2 * t + 8]);
    qf[ks][3] = pair(&rows[g + 8][ks * 16 + 2 * t + 8]);
  }
}

// fa_q_fragments by ldmatrix: 4 instructions instead of 16 32-bit loads, the same values (lane l
// gives row l % 8 + 8 ((l / 8) % 2), columns 16 ks + 8 (l / 16): matrices 0-3 are a0-a3).
template <typename T>
__device__ __forceinline__ void fa_q_fragments_ldm(unsigned (&qf)[4][4], const T (*rows)[FA_HEAD + FA_PAD], int lane) {
#pragma unroll
  for (int ks = 0; ks < 4; ks++) ldmatrix_x4(qf[ks], &rows[lane % 8 + ((lane / 8) % 2) * 8][ks * 16 + (lane / 16) * 8]);
}

// fa_store through shared memory: the warp's 16 output rows go into `st` (16 rows of 72, the
// warp's own; 32-bit stores, conflict-free: lane (g, t) writes bank 4g + t + 4n), then each row
// leaves as 8 lanes' 16-byte stores of its 128 contiguous bytes (fa_store's 32-bit stores fill
// half a sector each: ncu, GPU run 7, 16 of 32 bytes a sector). The same values: the same bits.
template <typename T>
__device__ __forceinline__ void fa_store_staged(T* __restrict__ out, const float (&o)[8][4], float l_lo, float l_hi, int b, int h, int N,
                                                int D, int row0, T (*st)[FA_HEAD + FA_PAD], int lane) {
  const int g = lane / 4, t = lane % 4;
  const float inv_lo = l_lo > 0.0f ? 1.0f / l_lo : 0.0f, inv_hi = l_hi > 0.0f ? 1.0f / l_hi : 0.0f;
  __syncwarp();  // every lane has read what these rows held before (the warp's Q fragments)
#pragma unroll
  for (int n = 0; n < 8; n++) {
    const int d = n * 8 + 2 * t;
    *reinterpret_cast<unsigned*>(&st[g][d]) = Mma<T>::pack(o[n][0] * inv_lo, o[n][1] * inv_lo);
    *reinterpret_cast<unsigned*>(&st[g + 8][d]) = Mma<T>::pack(o[n][2] * inv_hi, o[n][3] * inv_hi);
  }
  __syncwarp();
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int r = 4 * i + lane / 8, c = (lane % 8) * 8;
    if (row0 + r < N)
      *reinterpret_cast<uint4*>(out + ((long long)b * N + row0 + r) * D + h * FA_HEAD + c) = *reinterpret_cast<const uint4*>(&st[r][c]);
  }
}

// ROWS: query rows a block (16 a warp); 0: blockDim.x / 2, the block's warps' rows.
// LDM: the V tile stored row-major as K is (16-byte stores, no transpose) and its B fragments read
// with ldmatrix.trans: the same operands, so the same bits (V_BY_KEY is then ignored).
// STAGE: Q comes in and O goes out through shared memory (q_s), 16 bytes a thread, 8 threads a
// 128-byte row, instead of 32-bit loads and stores straight from and to the fragments: the same
// operands and values, the same bits.
template <typename T, bool V_BY_KEY, int ROWS = FA_ROWS, bool LDM = false, bool STAGE = false>
__device__ __forceinline__ void flash_attention(T* __restrict__ out, const T* __restrict__ qkv, int N, int H, int causal) {
  __shared__ __align__(16) T k_s[FA_TILE][FA_HEAD + FA_PAD];
  // V transposed ([dim][key]), or with LDM row-major ([key][dim]); 64 x 72 either way
  __shared__ __align__(16) T vt_s[FA_HEAD][FA_TILE + FA_PAD];
  // STAGE: the block's Q rows (up to 80 in fitted blocks), then each warp's output rows
  __shared__ __align__(16) T q_s[STAGE ? (ROWS > 0 ? ROWS : 80) : 1][FA_HEAD + FA_PAD];

  const int b = blockIdx.z, h = blockIdx.y;
  const int D = H * FA_HEAD;
  const long long row_stride = 3LL * D;
  const T* base = qkv + (long long)b * N * row_stride + h * FA_HEAD;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int rows = ROWS > 0 ? ROWS : (int)blockDim.x / 2;
  const int row0 = blockIdx.x * rows + warp * 16;  // this warp's first query row
  const int r_lo = row0 + g, r_hi = row0 + g + 8;     // the two rows this thread holds

  // Q fragments for 4 k-steps of 16 dims, straight from global memory (read once); with STAGE
  // through q_s (rows past N zero: computed, never stored).
  unsigned qf[4][4];
  if (STAGE) {
    for (int e = threadIdx.x; e < rows * (FA_HEAD / 8); e += blockDim.x) {
      const int r = e / (FA_HEAD / 8), c = (e % (FA_HEAD / 8)) * 8, row = blockIdx.x * rows + r;
      uint4 qv = make_uint4(0, 0, 0, 0);
      if (row < N) qv = *reinterpret_cast<const uint4*>(base + (long long)row * row_stride + c);
      *reinterpret_cast<uint4*>(&q_s[r][c]) = qv;
    }
    __syncthreads();
    fa_q_fragments<T>(qf, &q_s[warp * 16], lane);
  } else {
    const T* q_lo = base + (long long)min(r_lo, N - 1) * row_stride;
    const T* q_hi = base + (long long)min(r_hi, N - 1) * row_stride;
#pragma unroll
    for (int ks = 0; ks < 4; ks++) {
      qf[ks][0] = pair(q_lo + ks * 16 + 2 * t);
      qf[ks][1] = pair(q_hi + ks * 16 + 2 * t);
      qf[ks][2] = pair(q_lo + ks * 16 + 2 * t + 8);
      qf[ks][3] = pair(q_hi + ks * 16 + 2 * t + 8);
    }
  }

  float o[8][4];  // 8 blocks of 8 output dims, C layout
#pragma unroll
  for (int n = 0; n < 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m_lo = -INFINITY, m_hi = -INFINITY, l_lo = 0.0f, l_hi = 0.0f;

  const int block_last = min(blockIdx.x * rows + rows, N) - 1;
  const int kv_end = causal ? block_last + 1 : N;
  for (int j0 = 0; j0 < kv_end; j0 += FA_TILE) {
    __syncthreads();
    // K tile row-major, V tile transposed (LDM: row-major too); keys past N are zero (and masked below).
    if (LDM || !V_BY_KEY) {
      // 8 consecutive threads read one key's 128 bytes of K and of V. K is stored as it is; V too
      // with LDM, else transposed: a warp's transposed stores land on 8 rows 1152 bytes apart, all
      // in the same two banks.
      for (int e = threadIdx.x; e < FA_TILE * (FA_HEAD / 8); e += blockDim.x) {
        const int r = e / (FA_HEAD / 8), c = (e % (FA_HEAD / 8)) * 8, key = j0 + r;
        uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
        if (key < N) {
          kv = *reinterpret_cast<const uint4*>(base + (long long)key * row_stride + D + c);
          vv = *reinterpret_cast<const uint4*>(base + (long long)key * row_stride + 2 * D + c);
        }
        *reinterpret_cast<uint4*>(&k_s[r][c]) = kv;
        if (LDM) {
          *reinterpret_cast<uint4*>(&vt_s[r][c]) = vv;  // vt_s[key][dim]
        } else {
          const T* v8 = reinterpret_cast<const T*>(&vv);
#pragma unroll
          for (int u = 0; u < 8; u++) vt_s[c + u][r] = v8[u];
        }
      }
    } else {
      // K as above; V with consecutive threads on consecutive keys, so that a warp's transposed
      // stores fill 64 contiguous bytes of one vt_s row (no bank conflicts). The same values land
      // in the same places: the result is bit for bit the other mapping's.
      for (int e = threadIdx.x; e < FA_TILE * (FA_HEAD / 8); e += blockDim.x) {
        const int r = e / (FA_HEAD / 8), c = (e % (FA_HEAD / 8)) * 8, key = j0 + r;
        uint4 kv = make_uint4(0, 0, 0, 0);
        if (key < N) kv = *reinterpret_cast<const uint4*>(base + (long long)key * row_stride + D + c);
        *reinterpret_cast<uint4*>(&k_s[r][c]) = kv;
      }
      for (int e = threadIdx.x; e < FA_TILE * (FA_HEAD / 8); e += blockDim.x) {
        const int r = e % FA_TILE, c = (e / FA_TILE) * 8, key = j0 + r;
        uint4 vv = make_uint4(0, 0, 0, 0);
        if (key < N) vv = *reinterpret_cast<const uint4*>(base + (long long)key * row_stride + 2 * D + c);
        const T* v8 = reinterpret_cast<const T*>(&vv);
#pragma unroll
        for (int u = 0; u < 8; u++) vt_s[c + u][r] = v8[u];
      }
    }
    __syncthreads();
    if (row0 >= N) continue;  // a warp past the end still joins every barrier
    // STAGE: a causal tile wholly past the warp's last row is all masked (in fitted blocks of 77
    // tokens, 4 warps of 5 on the second tile): skipped. Its p are all 0 and its correction
    // exp(0) = 1, so skipping leaves m, l and O as they were (an exact 0 of O aside, whose sign
    // the zero products could flip).
    if (STAGE && causal && j0 > row0 + 15) continue;

    fa_tile<T, LDM>(k_s, vt_s, qf, o, m_lo, m_hi, l_lo, l_hi, j0, N, causal, r_lo, r_hi, lane);
  }
  if (row0 >= N) return;
  if (STAGE) fa_store_staged<T>(out, o, l_lo, l_hi, b, h, N, D, row0, &q_s[warp * 16], lane);
  else fa_store<T>(out, o, l_lo, l_hi, b, h, N, D, r_lo, r_hi, t);
}

// One entry point: NAME runs flash_attention<T, V_BY_KEY, ROWS, LDM, STAGE> under the launch bounds given last.
#define FA_ENTRY_STAGE(NAME, T, V_BY_KEY, ROWS, LDM, STAGE, ...)                                               \
  extern "C" __global__ void __launch_bounds__(__VA_ARGS__) NAME(T* __restrict__ out, const T* __restrict__ qkv, int N, int H, \
                                                                 int causal) {                                \
    flash_attention<T, V_BY_KEY, ROWS, LDM, STAGE>(out, qkv, N, H, causal);                                   \
  }
#define FA_ENTRY_LDM(NAME, T, V_BY_KEY, ROWS, LDM, ...) FA_ENTRY_STAGE(NAME, T, V_BY_KEY, ROWS, LDM, false, __VA_ARGS__)
#define FA_ENTRY_ROWS(NAME, T, V_BY_KEY, ROWS, ...) FA_ENTRY_LDM(NAME, T, V_BY_KEY, ROWS, false, __VA_ARGS__)
#define FA_ENTRY(NAME, T, V_BY_KEY, ...) FA_ENTRY_ROWS(NAME, T, V_BY_KEY, FA_ROWS, __VA_ARGS__)

FA_ENTRY(flash_attention_f16, __half, false, FA_WARPS * 32)
FA_ENTRY(flash_attention_bf16, __nv_bfloat16, false, FA_WARPS * 32)

// The same kernels with the V tile loaded key by key (see the tile loads above).
FA_ENTRY(flash_attention_vkey_f16, __half, true, FA_WARPS * 32)
FA_ENTRY(flash_attention_vkey_bf16, __nv_bfloat16, true, FA_WARPS * 32)

// Both versions again, compiled for 4 resident blocks an SM (128 registers a thread at most, from
// 138/146): the same code and the same bits, for the occupancy the short sequences of CLIP may
// need (a block is a load, a few MMAs and a store). Opt-in until timed.
FA_ENTRY(flash_attention_occ4_f16, __half, false, FA_WARPS * 32, 4)
FA_ENTRY(flash_attention_occ4_bf16, __nv_bfloat16, false, FA_WARPS * 32, 4)
FA_ENTRY(flash_attention_vkey_occ4_f16, __half, true, FA_WARPS * 32, 4)
FA_ENTRY(flash_attention_vkey_occ4_bf16, __nv_bfloat16, true, FA_WARPS * 32, 4)

// Blocks fitted to short sequences: as many warps as the sequence has 16-row groups, up to 5
// (block 32..160, rows = blockDim.x / 2): a sequence of up to 80 tokens in one block per (batch,
// head). The text tower's 77 tokens ran in two 64-row blocks, the second with 13 rows to compute
// that read the whole of K and V again; a 15-token prompt ran in 4 warps of which 3 had nothing to
// do. Each row's arithmetic is the 64-row kernel's: the same bits. Opt-in until timed.
FA_ENTRY_ROWS(flash_attention_fit_f16, __half, false, 0, 160)
FA_ENTRY_ROWS(flash_attention_fit_bf16, __nv_bfloat16, false, 0, 160)
FA_ENTRY_ROWS(flash_attention_vkey_fit_f16, __half, true, 0, 160)
FA_ENTRY_ROWS(flash_attention_vkey_fit_bf16, __nv_bfloat16, true, 0, 160)

// The V tile row-major, read with ldmatrix.trans (GPU run 7: the transposed V stores were 82% of
// the shared-store wavefronts, 7.6-way bank conflicts, and L1 the busiest unit at 84%): the same
// operands, the same bits; in the three launch shapes above. Opt-in until timed.
FA_ENTRY_LDM(flash_attention_ldm_f16, __half, false, FA_ROWS, true, FA_WARPS * 32)
FA_ENTRY_LDM(flash_attention_ldm_bf16, __nv_bfloat16, false, FA_ROWS, true, FA_WARPS * 32)
FA_ENTRY_LDM(flash_attention_ldm_occ4_f16, __half, false, FA_ROWS, true, FA_WARPS * 32, 4)
FA_ENTRY_LDM(flash_attention_ldm_occ4_bf16, __nv_bfloat16, false, FA_ROWS, true, FA_WARPS * 32, 4)
FA_ENTRY_LDM(flash_attention_ldm_fit_f16, __half, false, 0, true, 160)
FA_ENTRY_LDM(flash_attention_ldm_fit_bf16, __nv_bfloat16, false, 0, true, 160)

// Every kernel above again with Q and O through shared memory (STAGE; GPU run 7's ncu on the text
// shape: Q's 32-bit loads used 26 of a sector's 32 bytes, O's 32-bit stores 16): *_st_* after the
// V layout's name, the same bits. Opt-in until timed.
#define FA_STAGED(LAYOUT, V_BY_KEY, LDM)                                                                                  \
  FA_ENTRY_STAGE(flash_attention_##LAYOUT##st_f16, __half, V_BY_KEY, FA_ROWS, LDM, true, FA_WARPS * 32)                  \
  FA_ENTRY_STAGE(flash_attention_##LAYOUT##st_bf16, __nv_bfloat16, V_BY_KEY, FA_ROWS, LDM, true, FA_WARPS * 32)          \
  FA_ENTRY_STAGE(flash_attention_##LAYOUT##st_occ4_f16, __half, V_BY_KEY, FA_ROWS, LDM, true, FA_WARPS * 32, 4)          \
  FA_ENTRY_STAGE(flash_attention_##LAYOUT##st_occ4_bf16, __nv_bfloat16, V_BY_KEY, FA_ROWS, LDM, true, FA_WARPS * 32, 4)  \
  FA_ENTRY_STAGE(flash_attention_##LAYOUT##st_fit_f16, __half, V_BY_KEY, 0, LDM, true, 160)                              \
  FA_ENTRY_STAGE(flash_attention_##LAYOUT##st_fit_bf16, __nv_bfloat16, V_BY_KEY, 0, LDM, true, 160)
FA_STAGED(, false, false)
FA_STAGED(vkey_, true, false)
FA_STAGED(ldm_, false, true)

// ---- the pipelined version ---------------------------------------------------------------------
// flash_attention_pipe_*: the same attention (fa_tile and fa_store: the same bits) in persistent
// blocks that load the next K/V tile while computing the current one. GPU run 7: a CLIP-sized
// block (50 or 77 tokens: one or two tiles) is a load, a few MMAs and a store, and at 4 blocks an
// SM the loads' latency was not hidden (2.11 ms for the image tower's 12 layers, where reading
// qkv and writing the output once is ~0.8 ms at the card's bandwidth). Here block i takes the
// work items (batch, head, 64-row query block) i, i + gridDim.x, ...; their K/V tiles form one
// sequence of stages, and stage s + 1's tiles (and, at an item's first tile, its Q tile) are
// copied with cp.async into the other half of a double buffer while stage s computes. V is kept
// row-major and read with ldmatrix.trans (as flash_attention_ldm_*). Keys and rows past N are
// zero-filled by the copies and masked as in the other kernels.
// Launch: grid min(items, 4 * SMs) with items = B * H * ceil(N/64), block 128, dynamic shared
// memory FA_PIPE_SMEM = 2 x (K, V, Q tiles of 64 x 72) = 55,296 bytes (above the 48 KB default:
// cuFuncSetAttribute MAX_DYNAMIC_SHARED_SIZE_BYTES first).
#define FA_PIPE_TILE_ELEMS (FA_TILE * (FA_HEAD + FA_PAD))
#define FA_PIPE_SMEM (2 * 3 * FA_PIPE_TILE_ELEMS * 2)

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(valid ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int PENDING>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING) : "memory");
}

// A position in a block's sequence of stages: work item `it` (valid while below `items`), its
// K/V tile j of `tiles`; an item is ROWS query rows. The item's (batch, head, query block) is
// item(): `it` itself, or with REV items - 1 - it (the walk from the last item to the first).
// n / d for 0 <= n < 2^31 and 1 <= d < 2^31 by a multiply-high and a shift instead of the ~20
// instructions of an integer division by a variable. The host computes (m, shift) per divisor
// (CudaOps.FastDivisor, which documents the proof and tests it): d = 1 is m = 0 and divides by
// nothing; otherwise n / d = umulhi(n, m) >> shift. Passed as kernel parameters, they stay in the
// constant bank, not in registers.
struct FaDiv {
  unsigned m;
  int shift;
  __device__ __forceinline__ int div(int n) const { return m == 0 ? n : static_cast<int>(__umulhi(static_cast<unsigned>(n), m) >> shift); }
};

// FAST: no division where an item is a whole sequence (qblocks 1: the image tower's 50 tokens, the
// text tower's 77 in 80-row items), and none for a sequence without the causal mask (every item has
// all the tiles).
template <int ROWS = FA_ROWS, bool REV = false, bool FAST = false>
struct FaCursor {
  int it, j, tiles, items, stride, qblocks, N, causal;
  __device__ __forceinline__ FaCursor(int first, int items_, int stride_, int qblocks_, int N_, int causal_)
      : it(first), j(0), items(items_), stride(stride_), qblocks(qblocks_), N(N_), causal(causal_) {
    tiles = count();
  }
  __device__ __forceinline__ int item() const { return REV ? items - 1 - it : it; }
  // the item's K/V tiles: all keys, or with causal those up to the block's last row
  __device__ __forceinline__ int count() const {
    const int qb = FAST && (qblocks == 1 || !causal) ? 0 : item() % qblocks;
    const int kv_end = causal ? min(qb * ROWS + ROWS, N) : N;
    return (kv_end + FA_TILE - 1) / FA_TILE;
  }
  __device__ __forceinline__ bool valid() const { return it < items; }
  __device__ __forceinline__ void advance() {
    if (++j == tiles) {
      j = 0;
      it += stride;
      if (it < items) tiles = count();
    }
  }
};

// STAGE: the output rows leave through the warp's rows of the stage's Q tile (fa_store_staged):
// the warp alone reads them (its Q fragments, before), and no copy lands in this buffer until the
// barrier that ends the stage.
// ROWS: query rows an item (16 a warp, blockDim.x / 2): FA_ROWS (64), or FA_FIT_ROWS (80) for
// sequences of 65 to 80 tokens, one item a (batch, head) (flash_attention_pipe_fit_*, below).
// REV: the blocks walk the items from the last to the first (flash_attention_pipe_*rev_*, below).
// LEAN: 0 fa_tile; 1 fa_tile_lean (the same bits) and the items' indices by FaDiv; 2 fa_tile_lean
// with the softmax in base 2 (other bits), the same indices.
// qdiv, hdiv: division by qblocks (the items' query blocks a sequence) and by H, used with LEAN.
template <typename T, bool STAGE = false, int ROWS = FA_ROWS, bool REV = false, int LEAN = 0>
__device__ __forceinline__ void flash_attention_pipe(T* __restrict__ out, const T* __restrict__ qkv, int B, int N, int H, int causal,
                                                     FaDiv qdiv = FaDiv{0, 0}, FaDiv hdiv = FaDiv{0, 0}) {
  extern __shared__ __align__(16) unsigned char fa_pipe_smem[];
  typedef T Row[FA_HEAD + FA_PAD];
  // buffer u: K rows at u * BUF, V at u * BUF + 64, Q (ROWS rows) at u * BUF + 128
  constexpr int BUF = 2 * FA_TILE + ROWS;
  Row* tiles = reinterpret_cast<Row*>(fa_pipe_smem);
  const int D = H * FA_HEAD;
  const long long row_stride = 3LL * D;
  const int qblocks = (N + ROWS - 1) / ROWS, items = B * H * qblocks;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;

  // An item's query block, head and batch (LEAN: by FaDiv, the same values).
  auto split = [&](int item, int& qb, int& h, int& b) {
    const int bh = LEAN ? qdiv.div(item) : item / qblocks;
    qb = LEAN ? item - bh * qblocks : item % qblocks;
    b = LEAN ? hdiv.div(bh) : bh / H;
    h = LEAN ? bh - b * H : bh % H;
  };

  // Queues the copies of the stage at `c` into buffer u: its K and V tiles, and at an item's first
  // tile its Q tile; 8 consecutive threads a 128-byte row.
  auto issue = [&](const FaCursor<ROWS, REV, LEAN != 0>& c, int u) {
    int qb, h, b;
    split(c.item(), qb, h, b);
    const T* base = qkv + (long long)b * N * row_stride + h * FA_HEAD;
    Row* k_s = tiles + u * BUF;
    Row* v_s = k_s + FA_TILE;
    Row* q_s = v_s + FA_TILE;
    if (LEAN) {
      // the same copies with the addresses stepped, not recomputed (64-bit products, ~48
      // instructions a pass): thread i copies the 16 bytes at column 8 (i % 8) of rows i / 8,
      // i / 8 + STEP, ... (STEP = the block's 2 * ROWS threads / 8: 16 or 20 rows a pass); a key or
      // row past N is copied from the sequence's first row with no bytes read (zeros).
      constexpr int STEP = 2 * ROWS / 8;
      const int r0 = threadIdx.x / 8, col = (threadIdx.x % 8) * 8;
      const T* first = base + col;
      const long long step = (long long)STEP * row_stride;
      const T* src = first + (long long)(c.j * FA_TILE + r0) * row_stride;
#pragma unroll
      for (int i = 0; i < (FA_TILE + STEP - 1) / STEP; i++, src += step) {
        const int r = r0 + i * STEP;
        if (FA_TILE % STEP != 0 && r >= FA_TILE) break;
        const bool ok = c.j * FA_TILE + r < N;
        const T* from = ok ? src : first;
        cp_async16(&k_s[r][col], from + D, ok);
        cp_async16(&v_s[r][col], from + 2 * D, ok);
      }
      if (c.j == 0) {
        const T* q = first + (long long)(qb * ROWS + r0) * row_stride;
#pragma unroll
        for (int i = 0; i < (ROWS + STEP - 1) / STEP; i++, q += step) {
          const int r = r0 + i * STEP;
          if (ROWS % STEP != 0 && r >= ROWS) break;
          const bool in = qb * ROWS + r < N;
          cp_async16(&q_s[r][col], in ? q : first, in);
        }
      }
    } else {
      for (int e = threadIdx.x; e < FA_TILE * (FA_HEAD / 8); e += blockDim.x) {
        const int r = e / (FA_HEAD / 8), col = (e % (FA_HEAD / 8)) * 8, key = c.j * FA_TILE + r;
        const bool ok = key < N;
        const T* src = base + (long long)(ok ? key : 0) * row_stride + col;
        cp_async16(&k_s[r][col], src + D, ok);
        cp_async16(&v_s[r][col], src + 2 * D, ok);
        if (ROWS == FA_TILE && c.j == 0) {
          const int row = qb * ROWS + r;
          const bool in = row < N;
          cp_async16(&q_s[r][col], base + (long long)(in ? row : 0) * row_stride + col, in);
        }
      }
      if (ROWS != FA_TILE && c.j == 0) {  // a Q tile of another height than the K/V tiles: a loop of its own
        for (int e = threadIdx.x; e < ROWS * (FA_HEAD / 8); e += blockDim.x) {
          const int r = e / (FA_HEAD / 8), col = (e % (FA_HEAD / 8)) * 8, row = qb * ROWS + r;
          const bool in = row < N;
          cp_async16(&q_s[r][col], base + (long long)(in ? row : 0) * row_stride + col, in);
        }
      }
    }
  };

  FaCursor<ROWS, REV, LEAN != 0> cur(blockIdx.x, items, gridDim.x, qblocks, N, causal), next = cur;
  if (next.valid()) {
    issue(next, 0);
    next.advance();
  }
  cp_async_commit();

  unsigned qf[4][4];
  float o[8][4];
  float m_lo = -INFINITY, m_hi = -INFINITY, l_lo = 0.0f, l_hi = 0.0f;
  for (int s = 0; cur.valid(); s++) {
    // the next stage's copies into the other buffer (an empty group when there is none), then
    // wait for this stage's
    if (next.valid()) {
      issue(next, (s + 1) & 1);
      next.advance();
    }
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();

    const int u = s & 1;
    const Row* k_s = tiles + u * BUF;
    const Row* v_s = k_s + FA_TILE;
    Row* q_s = tiles + u * BUF + 2 * FA_TILE;
    int qb, h, b;
    split(cur.item(), qb, h, b);
    const int row0 = qb * ROWS + warp * 16, r_lo = row0 + g, r_hi = row0 + g + 8;
    if (cur.j == 0) {
      // a new item: its Q fragments (rows past N are zeros and are never written), fresh sums
      if (LEAN) fa_q_fragments_ldm<T>(qf, &q_s[warp * 16], lane);
      else fa_q_fragments<T>(qf, &q_s[warp * 16], lane);
#pragma unroll
      for (int n = 0; n < 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
      m_lo = -INFINITY, m_hi = -INFINITY, l_lo = 0.0f, l_hi = 0.0f;
    }
    // (an item taller than a tile: with causal, a warp whose rows all lie before the tile skips it,
    // as the 64-row items never reach such a tile. Needed for the same bits, not only for speed: its
    // keys are all masked, but running it would still compute o * 1 + 0, turning a -0 into +0)
    const bool before = ROWS != FA_TILE && causal && cur.j * FA_TILE > row0 + 15;
    if (row0 < N && !before) {
      if (LEAN) {
        const int j0 = cur.j * FA_TILE;
        const int lim_lo = (causal ? min(N, r_lo + 1) : N) - j0 - 2 * t, lim_hi = (causal ? min(N, r_hi + 1) : N) - j0 - 2 * t;
        fa_tile_lean<T, LEAN == 2>(k_s, v_s, qf, o, m_lo, m_hi, l_lo, l_hi, lim_lo, lim_hi, cur.j == 0, lane);
      } else {
        fa_tile<T, true>(k_s, v_s, qf, o, m_lo, m_hi, l_lo, l_hi, cur.j * FA_TILE, N, causal, r_lo, r_hi, lane);
      }
    }
    if (cur.j + 1 == cur.tiles && row0 < N) {
      if (STAGE) fa_store_staged<T>(out, o, l_lo, l_hi, b, h, N, D, row0, &q_s[warp * 16], lane);
      else fa_store<T>(out, o, l_lo, l_hi, b, h, N, D, r_lo, r_hi, t);
    }
    __syncthreads();  // every warp is done with buffer u before stage s + 2's copies refill it
    cur.advance();
  }
  cp_async_wait<0>();
}

// One entry of flash_attention_pipe: NAME runs it with T, STAGE, ROWS query rows an item (block
// 2 * ROWS threads, at least BLOCKS resident an SM) and REV.
#define FA_PIPE_ENTRY(NAME, T, STAGE, ROWS, BLOCKS, REV)                                                      \
  extern "C" __global__ void __launch_bounds__(ROWS * 2, BLOCKS)                                                \
      NAME(T* __restrict__ out, const T* __restrict__ qkv, int B, int N, int H, int causal) {                    \
    flash_attention_pipe<T, STAGE, ROWS, REV>(out, qkv, B, N, H, causal);                                       \
  }
// NAME_f16 and NAME_bf16.
#define FA_PIPE_ENTRIES(NAME, STAGE, ROWS, BLOCKS, REV)                     \
  FA_PIPE_ENTRY(NAME##_f16, __half, STAGE, ROWS, BLOCKS, REV)               \
  FA_PIPE_ENTRY(NAME##_bf16, __nv_bfloat16, STAGE, ROWS, BLOCKS, REV)
FA_PIPE_ENTRIES(flash_attention_pipe, false, FA_ROWS, 4, false)
// ... with the output through shared memory (STAGE; the kernel's Q already comes that way). The default since run 8.
FA_PIPE_ENTRIES(flash_attention_pipe_st, true, FA_ROWS, 4, false)

// flash_attention_pipe_fit_*: items of 80 query rows (5 warps) for sequences of 65 to 80 tokens (the
// text tower's 77): one item a (batch, head), its Q tile of 80 rows loaded once, and its two K/V
// tiles each loaded once. With 64-row items the 77 tokens took three stages, the second item's
// 13 rows reading the first K/V tile again with three warps idle. Every row's arithmetic is the
// 64-row kernel's in the same order (rows 0-63: the first tile; rows 64-79: both), so the same
// bits. Launch: grid min(B * H * ceil(N/80), 3 * SMs), block 160, dynamic shared memory
// FA_PIPE_FIT_SMEM = 2 x (K, V tiles of 64 rows and a Q tile of 80, rows of 72) = 59,904 bytes.
// Opt-in until timed.
#define FA_FIT_ROWS 80
#define FA_PIPE_FIT_SMEM (2 * (2 * FA_TILE + FA_FIT_ROWS) * (FA_HEAD + FA_PAD) * 2)
FA_PIPE_ENTRIES(flash_attention_pipe_fit, false, FA_FIT_ROWS, 3, false)
FA_PIPE_ENTRIES(flash_attention_pipe_st_fit, true, FA_FIT_ROWS, 3, false)

// flash_attention_pipe[_st][_fit]_rev_*: the pipelined kernels above with the blocks walking the
// items from the last to the first (item i is i's mirror, items - 1 - i). in_proj's GEMM writes
// qkv's rows roughly in order, so its last rows are the likeliest still in L2 (50 MB on an
// H100/H200, against ~240 MB of qkv at batch 1024) when the attention starts; and the attention's
// own last writes, then its first rows, are what out_proj's GEMM reads first. Each item is
// computed as before: the same bits. Launch as the kernels they mirror. Opt-in until timed.
FA_PIPE_ENTRIES(flash_attention_pipe_rev, false, FA_ROWS, 4, true)
FA_PIPE_ENTRIES(flash_attention_pipe_st_rev, true, FA_ROWS, 4, true)
FA_PIPE_ENTRIES(flash_attention_pipe_fit_rev, false, FA_FIT_ROWS, 3, true)
FA_PIPE_ENTRIES(flash_attention_pipe_st_fit_rev, true, FA_FIT_ROWS, 3, true)

// flash_attention_pipe_st[_fit][_rev]_lean_*: the staged pipelined kernels above (64- or 80-row
// items, either order) in fewer instructions (fa_tile_lean, Q's fragments by ldmatrix, the items'
// indices by FaDiv): the same bits as the kernels they mirror. *_lean2_*: besides, the softmax in
// base 2 with the scale folded in (FlashAttention's), other bits within the fp16/bf16 tolerance.
// Launch as the kernels they mirror, with four more parameters: FaDiv's (m, shift) for qblocks and
// for H. Opt-in until timed (-Djclip.cuda.flashLean=on or exp2).
#define FA_PIPE_LEAN_ENTRY(NAME, T, STAGE, ROWS, BLOCKS, REV, LEAN)                                                    \
  extern "C" __global__ void __launch_bounds__(ROWS * 2, BLOCKS)                                                         \
      NAME(T* __restrict__ out, const T* __restrict__ qkv, int B, int N, int H, int causal, unsigned qm, int qs, unsigned hm, int hs) { \
    flash_attention_pipe<T, STAGE, ROWS, REV, LEAN>(out, qkv, B, N, H, causal, FaDiv{qm, qs}, FaDiv{hm, hs});            \
  }
#define FA_PIPE_LEAN_ENTRIES(NAME, ROWS, BLOCKS, REV, LEAN)                  \
  FA_PIPE_LEAN_ENTRY(NAME##_f16, __half, true, ROWS, BLOCKS, REV, LEAN)         \
  FA_PIPE_LEAN_ENTRY(NAME##_bf16, __nv_bfloat16, true, ROWS, BLOCKS, REV, LEAN)
#define FA_PIPE_LEAN(SUFFIX, LEAN)                                                         \
  FA_PIPE_LEAN_ENTRIES(flash_attention_pipe_st_##SUFFIX, FA_ROWS, 4, false, LEAN)          \
  FA_PIPE_LEAN_ENTRIES(flash_attention_pipe_st_fit_##SUFFIX, FA_FIT_ROWS, 3, false, LEAN)  \
  FA_PIPE_LEAN_ENTRIES(flash_attention_pipe_st_rev_##SUFFIX, FA_ROWS, 4, true, LEAN)       \
  FA_PIPE_LEAN_ENTRIES(flash_attention_pipe_st_fit_rev_##SUFFIX, FA_FIT_ROWS, 3, true, LEAN)
FA_PIPE_LEAN(lean, 1)
FA_PIPE_LEAN(lean2, 2)
