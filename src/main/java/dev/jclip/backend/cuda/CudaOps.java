package dev.jclip.backend.cuda;

import dev.jclip.backend.Precision;
import org.bytedeco.cuda.cudart.CUstream_st;

/**
 * Launchers for jclip's own kernels (cuda-kernels/*.cu), one method per fused op, with the launch
 * shapes documented in each kernel's header. Buffers hold row-major fp32 tensors.
 */
public final class CudaOps implements AutoCloseable {
  private static final int THREADS = 256;
  private final CudaModule gelu;
  private final CudaModule layerNorm;
  private final CudaModule attention;
  private final CudaModule attentionAny;
  private final CudaModule flashAttention;
  private final CudaModule cosineLogits;
  private final CudaModule cast;
  private final CudaModule glue;
  private final CUstream_st stream;
  private final int multiprocessors;

  /** Loads the kernels on {@code device}; launches go to {@code stream} (null: the legacy default stream). */
  public CudaOps(CudaDevice device, CUstream_st stream) {
    // The PTX targets compute_80 (mma.sync with bf16, WMMA): an older GPU would fail to load it
    // with a JIT error that does not say why.
    if (device.computeCapabilityMajor() < 8) {
      throw new CudaUnavailableException("jclip's CUDA kernels need compute capability 8.0 (Ampere) or newer; " + device
          + " has " + device.computeCapability() + ": use --device cpu", null);
    }
    this.stream = stream;
    this.multiprocessors = device.multiprocessors();
    java.util.List<CudaModule> loaded = new java.util.ArrayList<>();
    try {
      this.gelu = load(device, "gelu", loaded);
      this.layerNorm = load(device, "layernorm", loaded);
      this.attention = load(device, "attention", loaded);
      this.attentionAny = load(device, "attention_any", loaded);
      this.flashAttention = load(device, "flash_attention", loaded);
      this.cosineLogits = load(device, "cosine_logits", loaded);
      this.cast = load(device, "cast", loaded);
      this.glue = load(device, "glue", loaded);
    } catch (RuntimeException e) {
      for (CudaModule m : loaded) { // a module that failed to load leaves the others unloaded again
        try {
          m.close();
        } catch (RuntimeException suppressed) {
          e.addSuppressed(suppressed);
        }
      }
      throw e;
    }
  }

  private static CudaModule load(CudaDevice device, String name, java.util.List<CudaModule> loaded) {
    CudaModule m = device.loadModule(name);
    loaded.add(m);
    return m;
  }

  /**
   * Launches one of the glue kernels (cuda-kernels/glue.cu) over {@code n} elements with the
   * grid-stride launch shape; {@code args} in the kernel's order.
   */
  public void glue(String kernel, long n, Object... args) {
    glue.launch(kernel, elementwiseGrid(n), new int[] {THREADS, 1, 1}, 0, stream, args);
  }

  /**
   * {@code x[r, c] = act(x[r, c] + bias[c])} in place over a row-major [rows, cols] activation of
   * {@code precision} (bias fp32 or null; act 0 none, 1 QuickGELU, 2 erf GELU): glue.cu's
   * {@code bias_act_vec}, 16 bytes a thread, where cols is a multiple of that many elements and
   * {@code x} is 16-byte aligned, else the plain {@code bias_act}. Both compute each element alike.
   */
  public void biasAct(DeviceBuffer x, DeviceBuffer bias, long rows, int cols, int act, Precision precision) {
    int perPack = 16 / (precision == Precision.FP32 ? 4 : 2);
    String s = suffix(precision);
    if (cols % perPack == 0 && x.address() % 16 == 0) {
      glue("bias_act_vec_" + s, rows * cols / perPack, x, bias, rows, cols, act);
    } else {
      glue("bias_act_" + s, rows * cols, x, bias, rows, cols, act);
    }
  }

  /**
   * As {@link #biasAct(DeviceBuffer, DeviceBuffer, long, int, int, Precision)}; with {@code fast},
   * in fp16/bf16, glue.cu's {@code bias_act_fast} where it fits (cols a multiple of 8, x and bias
   * 16-byte aligned, under 2^31 packs): QuickGELU through the fast intrinsics, within one unit in
   * the last place of the exact kernels (~6 instead of ~40 instructions an element: the pass
   * becomes memory-bound); fp32 and the rest as the exact method.
   */
  public void biasAct(DeviceBuffer x, DeviceBuffer bias, long rows, int cols, int act, Precision precision, boolean fast) {
    biasAct(x, bias, rows, cols, act, precision, fast, false);
  }

  /**
   * As {@link #biasAct(DeviceBuffer, DeviceBuffer, long, int, int, Precision, boolean)}; with {@code
   * reversed}, the fast kernel walks the packs from the last to the first ({@code
   * bias_act_fast_rev}: the GEMM's last rows are the likeliest in L2, and the GEMM after it reads
   * first what this wrote last; the same bits).
   */
  public void biasAct(DeviceBuffer x, DeviceBuffer bias, long rows, int cols, int act, Precision precision, boolean fast, boolean reversed) {
    if (fast && precision != Precision.FP32 && cols % 8 == 0 && aligned16(x, bias) && rows * cols / 8 < Integer.MAX_VALUE) {
      glue("bias_act_fast_" + (reversed ? "rev_" : "") + suffix(precision), rows * cols / 8, x, bias, (int) rows, cols, act);
    } else {
      biasAct(x, bias, rows, cols, act, precision);
    }
  }

  /**
   * The patch rows of a ViT's conv1 ({@code kernel = stride = P}): pixels [B, C, H, W] to
   * {@code out} [B * (H/P) * (W/P), C * P * P]: with {@code vector}, glue.cu's {@code patchify_v<V>}
   * (8, 4 or 2 pixels a thread, as P, W and the buffers allow), else (or where none fits) its
   * {@code patchify_rows} (one block a patch row); the same bits either way.
   */
  public void patchify(DeviceBuffer out, DeviceBuffer pixels, int b, int c, int h, int w, int p, Precision precision, boolean vector) {
    int v = vector ? patchVector(out, pixels, (long) b * c * h * w, w, p, precision) : 0;
    if (v == 0) {
      patchify(out, pixels, b, c, h, w, p, precision);
    } else {
      glue("patchify_v" + v + "_" + suffix(precision), (long) b * c * h * w / v, out, pixels, b, c, h, w, p);
    }
  }

  /**
   * The widest run of pixels glue.cu's {@code patchify_v<V>} can copy at once (V in 8, 4, 2, at
   * most 16 bytes, dividing P and W, both buffers aligned to it, under 2^31 runs), or 0.
   */
  private static int patchVector(DeviceBuffer out, DeviceBuffer pixels, long elements, int w, int p, Precision precision) {
    for (int v = 8; v >= 2; v /= 2) {
      long bytes = (long) v * precision.bytes();
      if (bytes <= 16 && p % v == 0 && w % v == 0 && out.address() % bytes == 0 && pixels.address() % bytes == 0
          && elements / v < Integer.MAX_VALUE) {
        return v;
      }
    }
    return 0;
  }

  /**
   * {@code out[b, 0] = cls + pos[0]; out[b, t] = patches[b, t-1] + pos[t]} over [B, N, D]: glue.cu's
   * {@code class_pos_embed}, or with {@code vector} its 16-bytes-a-thread version where D and the
   * buffers allow it (the same bits).
   */
  public void classPosEmbed(DeviceBuffer out, DeviceBuffer patches, DeviceBuffer cls, DeviceBuffer pos, int b, int n, int d,
      Precision precision, boolean vector) {
    long elements = (long) b * n * d;
    int per = 16 / precision.bytes();
    if (vector && d % per == 0 && elements / per < Integer.MAX_VALUE && aligned16(out, patches, cls, pos)) {
      glue("class_pos_embed_vec_" + suffix(precision), elements / per, out, patches, cls, pos, b, n, d);
    } else {
      glue("class_pos_embed_" + suffix(precision), elements, out, patches, cls, pos, b, n, d);
    }
  }

  /**
   * {@code out[b, t] = tok[ids[b, t]] + pos[t]} over [B, L, D]: glue.cu's {@code token_embed}, or
   * with {@code vector} its 16-bytes-a-thread version where D and the buffers allow it (the same bits).
   */
  public void tokenEmbed(DeviceBuffer out, DeviceBuffer ids, DeviceBuffer tok, DeviceBuffer pos, int b, int l, int d, Precision precision,
      boolean vector) {
    long elements = (long) b * l * d;
    int per = 16 / precision.bytes();
    if (vector && d % per == 0 && elements / per < Integer.MAX_VALUE && aligned16(out, tok, pos)) {
      glue("token_embed_vec_" + suffix(precision), elements / per, out, ids, tok, pos, b, l, d);
    } else {
      glue("token_embed_" + suffix(precision), elements, out, ids, tok, pos, b, l, d);
    }
  }

  /** Whether every buffer given (nulls skipped: absent optional operands) starts on a 16-byte boundary. */
  private static boolean aligned16(DeviceBuffer... buffers) {
    for (DeviceBuffer b : buffers) if (b != null && b.address() % 16 != 0) return false;
    return true;
  }

  /** The patch rows by {@code patchify_rows} (one block a patch row): the reference of the vector version. */
  public void patchify(DeviceBuffer out, DeviceBuffer pixels, int b, int c, int h, int w, int p, Precision precision) {
    long rows = (long) b * (h / p) * (w / p);
    if (rows > Integer.MAX_VALUE) throw new IllegalArgumentException("too many patch rows for one launch: " + rows);
    glue.launch("patchify_rows_" + suffix(precision), new int[] {(int) rows, 1, 1}, new int[] {THREADS, 1, 1}, 0, stream,
        out, pixels, b, c, h, w, p);
  }

  /** Launches a one-warp-per-row glue kernel over {@code rows} rows. */
  public void glueRows(String kernel, long rows, Object... args) {
    launchRows(glue, kernel, rows, args);
  }

  /** One warp a row, 8 rows a block of 256 threads. */
  private void launchRows(CudaModule m, String kernel, long rows, Object... args) {
    int perBlock = THREADS / 32;
    long blocks = (rows + perBlock - 1) / perBlock;
    if (blocks > Integer.MAX_VALUE) throw new IllegalArgumentException("too many rows for one launch: " + rows);
    m.launch(kernel, new int[] {(int) blocks, 1, 1}, new int[] {THREADS, 1, 1}, 0, stream, args);
  }

  /** The suffix of a kernel's version in {@code precision}: {@code f32}, {@code f16} or {@code bf16}. */
  static String suffix(Precision precision) {
    return switch (precision) {
      case FP32 -> "f32";
      case FP16 -> "f16";
      case BF16 -> "bf16";
    };
  }

  /**
   * Multi-head self-attention, head size 64: {@code qkv} [B, N, 3, H, 64] (the in_proj output) to
   * {@code out} [B, N, H, 64], causal or not, in {@code precision}.
   */
  public void attention(DeviceBuffer out, DeviceBuffer qkv, int batch, int n, int heads, boolean causal, Precision precision) {
    if (batch > 65535 || heads > 65535) throw new IllegalArgumentException("batch " + batch + " or heads " + heads + " above 65535");
    int rowsPerBlock = precision == Precision.FP32 ? 16 : 64;
    int threads = precision == Precision.FP32 ? 256 : 128;
    attention.launch("attention_" + suffix(precision), new int[] {(n + rowsPerBlock - 1) / rowsPerBlock, heads, batch},
        new int[] {threads, 1, 1}, 0, stream, out, qkv, n, heads, causal ? 1 : 0);
  }

  /** The widest head {@link #attentionAnyHead} takes (attention_any.cu's ANY_MAX_HEAD). */
  public static final int ANY_MAX_HEAD = 128;

  /**
   * Multi-head self-attention for heads of {@code hd} other than 64 (attention_any.cu's {@code
   * attention_any_*}: one warp a query row, fp32 arithmetic, no tensor cores): {@code qkv} [B, N, 3,
   * H, hd] to {@code out} [B, N, H, hd], scores scaled by 1/√hd rounded to float as the CPU backend
   * rounds it.
   */
  public void attentionAnyHead(DeviceBuffer out, DeviceBuffer qkv, int batch, int n, int heads, int hd, boolean causal, Precision precision) {
    checkAnyHead(batch, heads, hd);
    int smem = 4 * (16 * hd + 32 * (hd + 1) + 32 * hd);
    attentionAny.launch("attention_any_" + suffix(precision), new int[] {(n + 15) / 16, heads, batch}, new int[] {256, 1, 1}, smem, stream, out, qkv,
        n, heads, hd, anyHeadScale(hd), causal ? 1 : 0);
  }

  /**
   * {@link #attentionPooled} for heads of {@code hd} other than 64 (attention_any.cu's {@code
   * attention_pooled_any_*}): {@code q} [B, H·hd], {@code kv} [B, N, 2, H, hd].
   */
  public void attentionPooledAnyHead(DeviceBuffer out, DeviceBuffer q, DeviceBuffer kv, DeviceBuffer ids, int batch, int n, int heads, int hd,
      int index, boolean causal, Precision precision) {
    checkAnyHead(batch, heads, hd);
    if (ids == null && (index < 0 || index >= n)) throw new IllegalArgumentException("pooled position " + index + " outside " + n + " tokens");
    attentionAny.launch("attention_pooled_any_" + suffix(precision), new int[] {heads, batch, 1}, new int[] {128, 1, 1}, 4 * (n + hd), stream, out,
        q, kv, ids, n, heads, hd, anyHeadScale(hd), ids == null ? index : 0, causal ? 1 : 0);
  }

  private static void checkAnyHead(int batch, int heads, int hd) {
    if (batch > 65535 || heads > 65535) throw new IllegalArgumentException("batch " + batch + " or heads " + heads + " above 65535");
    if (hd < 1 || hd > ANY_MAX_HEAD) throw new IllegalArgumentException("heads of " + hd + ": the kernels take heads of 1 to " + ANY_MAX_HEAD);
  }

  /** 1/√hd in float, as the CPU backend's scale ({@code ScalarKernels.attentionScale}). */
  static float anyHeadScale(int hd) {
    return (float) (1 / Math.sqrt(hd));
  }

  /**
   * One query row a sequence (attention.cu's {@code attention_pooled_*}, the graph's
   * ATTENTION_POOLED): {@code q} [B, D] the pooled rows' queries, {@code kv} [B, N, 2, H, 64] every
   * position's keys and values, to {@code out} [B, D]; the pooled position is {@code index}, or
   * with {@code ids} (int32 [B, N], may be null) each sequence's first argmax; with {@code causal}
   * only the keys up to it count. fp32 arithmetic in every precision.
   */
  public void attentionPooled(DeviceBuffer out, DeviceBuffer q, DeviceBuffer kv, DeviceBuffer ids, int batch, int n, int heads, int index,
      boolean causal, Precision precision) {
    if (batch > 65535 || heads > 65535) throw new IllegalArgumentException("batch " + batch + " or heads " + heads + " above 65535");
    if (ids == null && (index < 0 || index >= n)) throw new IllegalArgumentException("pooled position " + index + " outside " + n + " tokens");
    attention.launch("attention_pooled_" + suffix(precision), new int[] {heads, batch, 1}, new int[] {128, 1, 1}, 4 * n, stream, out, q, kv,
        ids, n, heads, ids == null ? index : 0, causal ? 1 : 0);
  }

  /**
   * The same attention as {@link #attention} on tensor cores with the probabilities kept in
   * registers (cuda-kernels/flash_attention.cu, the second version); fp16 and bf16 only.
   */
  public void flashAttention(DeviceBuffer out, DeviceBuffer qkv, int batch, int n, int heads, boolean causal, Precision precision) {
    flashAttention(out, qkv, batch, n, heads, causal, precision, false);
  }

  /**
   * As {@link #flashAttention(DeviceBuffer, DeviceBuffer, int, int, int, boolean, Precision)}; with
   * {@code vByKey} the kernel that reads its V tiles key by key ({@code flash_attention_vkey_*}:
   * bank-conflict-free transposed stores, bit for bit the same result).
   */
  public void flashAttention(DeviceBuffer out, DeviceBuffer qkv, int batch, int n, int heads, boolean causal, Precision precision,
      boolean vByKey) {
    flashAttention(out, qkv, batch, n, heads, causal, precision, vByKey, false);
  }

  /**
   * As {@link #flashAttention(DeviceBuffer, DeviceBuffer, int, int, int, boolean, Precision,
   * boolean)}; with {@code fourBlocks} the same kernel compiled for 4 resident blocks an SM ({@code
   * *_occ4_*}: at most 128 registers a thread, the same bits).
   */
  public void flashAttention(DeviceBuffer out, DeviceBuffer qkv, int batch, int n, int heads, boolean causal, Precision precision,
      boolean vByKey, boolean fourBlocks) {
    flashAttention(out, qkv, batch, n, heads, causal, precision, vByKey, fourBlocks, false);
  }

  /**
   * As {@link #flashAttention(DeviceBuffer, DeviceBuffer, int, int, int, boolean, Precision,
   * boolean, boolean)}; with {@code fitRows}, a sequence of up to 80 tokens runs in one block per
   * batch and head of 16 · ⌈n/16⌉ query rows ({@code *_fit_*}: 1 to 5 warps; the same bits), where
   * that is not the 64 rows of the usual block, {@code fourBlocks} then not applying. Longer
   * sequences ignore {@code fitRows}.
   */
  public void flashAttention(DeviceBuffer out, DeviceBuffer qkv, int batch, int n, int heads, boolean causal, Precision precision,
      boolean vByKey, boolean fourBlocks, boolean fitRows) {
    flashAttention(out, qkv, batch, n, heads, causal, precision, vByKey ? FlashV.KEYS : FlashV.ROWS, fourBlocks, fitRows);
  }

  /** How the flash kernel stores a V tile in shared memory and reads its mma fragments back (the same bits every way). */
  public enum FlashV {
    /** Transposed, loaded 8 threads a key (coalesced global reads; the transposed stores conflict 8-way). */
    ROWS,
    /** Transposed, loaded a thread a key ({@code flash_attention_vkey_*}: conflict-free stores, scattered global reads). */
    KEYS,
    /** Row-major as K, its fragments read with ldmatrix.trans ({@code flash_attention_ldm_*}: no transpose at all). */
    LDMATRIX
  }

  /**
   * The flash attention of {@link #flashAttention(DeviceBuffer, DeviceBuffer, int, int, int, boolean, Precision)} with the V
   * tile stored as {@code v} says, compiled for 4 blocks an SM with {@code fourBlocks}, in blocks
   * fitted to sequences of up to 80 tokens with {@code fitRows} (longer sequences ignore it).
   */
  public void flashAttention(DeviceBuffer out, DeviceBuffer qkv, int batch, int n, int heads, boolean causal, Precision precision,
      FlashV v, boolean fourBlocks, boolean fitRows) {
    flashAttention(out, qkv, batch, n, heads, causal, precision, v, fourBlocks, fitRows, false);
  }

  /**
   * As {@link #flashAttention(DeviceBuffer, DeviceBuffer, int, int, int, boolean, Precision, FlashV, boolean, boolean)}; with
   * {@code staged}, Q comes in and the output goes out through shared memory in 16-byte
   * accesses, 8 threads a 128-byte row ({@code *_st_*}), instead of 32-bit accesses straight
   * from and to the mma fragments: the same values, the same bits.
   */
  public void flashAttention(DeviceBuffer out, DeviceBuffer qkv, int batch, int n, int heads, boolean causal, Precision precision,
      FlashV v, boolean fourBlocks, boolean fitRows, boolean staged) {
    if (precision == Precision.FP32) throw new IllegalArgumentException("flash attention runs in fp16 or bf16");
    if (batch > 65535 || heads > 65535) throw new IllegalArgumentException("batch " + batch + " or heads " + heads + " above 65535");
    if (n < 1) throw new IllegalArgumentException("flash attention over " + n + " tokens");
    requireFlashAlignment(out, qkv);
    // the staged kernels' 16-byte output stores need a 16-byte aligned output (the arena's are);
    // another takes the unstaged kernel, the same bits
    staged = staged && aligned16(out);
    int fitted = 16 * ((n + 15) / 16);
    boolean fit = fitRows && n <= 80 && fitted != 64;
    int rows = fit ? fitted : 64;
    String layout = switch (v) {
      case ROWS -> "";
      case KEYS -> "vkey_";
      case LDMATRIX -> "ldm_";
    };
    String kernel = "flash_attention_" + layout + (staged ? "st_" : "") + (fit ? "fit_" : fourBlocks ? "occ4_" : "") + suffix(precision);
    flashAttention.launch(kernel, new int[] {(n + rows - 1) / rows, heads, batch}, new int[] {2 * rows, 1, 1}, 0, stream, out, qkv, n, heads,
        causal ? 1 : 0);
  }

  /**
   * Every flash kernel reads Q, K and V 16 bytes at a time (cp.async in the pipelined ones) and
   * writes the output at least in 32-bit pairs: {@code qkv} must be 16-byte aligned and {@code out}
   * 4-byte aligned (the activation arena's buffers are 256-byte aligned; {@link
   * #flashAligned} tells a caller beforehand).
   */
  private static void requireFlashAlignment(DeviceBuffer out, DeviceBuffer qkv) {
    if (!flashAligned(out, qkv)) {
      throw new IllegalArgumentException("flash attention needs the qkv buffer 16-byte aligned and the output 4-byte aligned; they are at "
          + qkv.address() % 16 + " and " + out.address() % 4 + " bytes past those boundaries");
    }
  }

  /** Whether the flash kernels can take these buffers ({@link #requireFlashAlignment}). */
  public static boolean flashAligned(DeviceBuffer out, DeviceBuffer qkv) {
    return qkv.address() % 16 == 0 && out.address() % 4 == 0;
  }

  /** flash_attention.cu's FA_PIPE_SMEM: two buffers of K, V and Q tiles of 64 rows x 72 halves. */
  static final int FLASH_PIPE_SMEM = 2 * 3 * 64 * 72 * 2;

  /** flash_attention.cu's FA_PIPE_FIT_SMEM: two buffers of K and V tiles of 64 rows and a Q tile of 80, rows of 72 halves. */
  static final int FLASH_PIPE_FIT_SMEM = 2 * (2 * 64 + 80) * 72 * 2;

  /** Whether the fitted pipelined kernel takes sequences of {@code n} tokens: 65 to 80 (one 80-row item a sequence). */
  public static boolean flashPipeFits(int n) {
    return n > 64 && n <= 80;
  }

  /**
   * The pipelined kernels' resident blocks an SM on this device, by kernel name (asked of the driver
   * once, after the kernel's dynamic shared memory above 48 KB is allowed).
   */
  private final java.util.Map<String, Integer> flashPipeBlocks = new java.util.concurrent.ConcurrentHashMap<>();

  /**
   * The flash attention of {@link #flashAttention(DeviceBuffer, DeviceBuffer, int, int, int, boolean, Precision)} in
   * persistent blocks that copy the next K/V tile (cp.async, double-buffered) while computing the
   * current one ({@code flash_attention_pipe_*}: the same per-tile arithmetic, the same bits);
   * fp16 and bf16.
   */
  public void flashAttentionPipelined(DeviceBuffer out, DeviceBuffer qkv, int batch, int n, int heads, boolean causal, Precision precision) {
    flashAttentionPipelined(out, qkv, batch, n, heads, causal, precision, false);
  }

  /**
   * As {@link #flashAttentionPipelined(DeviceBuffer, DeviceBuffer, int, int, int, boolean, Precision)}; with {@code staged}
   * the output leaves through shared memory in 16-byte stores ({@code flash_attention_pipe_st_*}:
   * the same bits; its Q already comes in that way).
   */
  public void flashAttentionPipelined(DeviceBuffer out, DeviceBuffer qkv, int batch, int n, int heads, boolean causal, Precision precision,
      boolean staged) {
    flashAttentionPipelined(out, qkv, batch, n, heads, causal, precision, staged, false);
  }

  /**
   * As {@link #flashAttentionPipelined(DeviceBuffer, DeviceBuffer, int, int, int, boolean, Precision, boolean)}; with
   * {@code fit}, sequences of 65 to 80 tokens ({@link #flashPipeFits}) run as one 80-row item a
   * (batch, head) ({@code flash_attention_pipe[_st]_fit_*}: 5 warps, Q loaded once and each K/V
   * tile once, where 64-row items take three stages and read the first K/V tile twice; the same
   * bits); other lengths take the 64-row kernel.
   */
  public void flashAttentionPipelined(DeviceBuffer out, DeviceBuffer qkv, int batch, int n, int heads, boolean causal, Precision precision,
      boolean staged, boolean fit) {
    flashAttentionPipelined(out, qkv, batch, n, heads, causal, precision, staged, fit, false);
  }

  /**
   * As {@link #flashAttentionPipelined(DeviceBuffer, DeviceBuffer, int, int, int, boolean, Precision, boolean, boolean)};
   * with {@code reversed}, the blocks walk the items from the last to the first ({@code
   * flash_attention_pipe[_st][_fit]_rev_*}: in_proj's last rows are the likeliest in L2, and
   * out_proj reads first what the attention wrote last; the same bits).
   */
  public void flashAttentionPipelined(DeviceBuffer out, DeviceBuffer qkv, int batch, int n, int heads, boolean causal, Precision precision,
      boolean staged, boolean fit, boolean reversed) {
    flashAttentionPipelined(out, qkv, batch, n, heads, causal, precision, staged, fit, reversed, FlashLean.OFF);
  }

  private final java.util.concurrent.atomic.AtomicLong pipeLaunches = new java.util.concurrent.atomic.AtomicLong();
  private final java.util.concurrent.atomic.AtomicLong leanLaunches = new java.util.concurrent.atomic.AtomicLong();

  /** How many launches took a pipelined flash kernel (a recorded CUDA graph's launches count once). */
  public long flashPipelinedLaunches() {
    return pipeLaunches.get();
  }

  /** How many of those took a lean one ({@link FlashLean} ON or EXP2). */
  public long flashLeanLaunches() {
    return leanLaunches.get();
  }

  /** Which tile arithmetic the staged pipelined flash kernel runs ({@code flash_attention.cu}'s fa_tile or fa_tile_lean). */
  public enum FlashLean {
    /** fa_tile, as every other flash kernel. */
    OFF,
    /**
     * fa_tile_lean, its arithmetic fa_tile's (the same bits) in fewer instructions: K's and Q's
     * fragments by ldmatrix, the mask as one compare an element, no rescaling at an item's first
     * tile, the items' indices by a multiply-high ({@code *_lean_*}).
     */
    ON,
    /**
     * fa_tile_lean with the softmax in base 2 and the scale folded in, as FlashAttention's: one FFMA
     * and one ex2.approx an element instead of a multiply, a subtraction and expf (other bits,
     * within the 16-bit tolerance; {@code *_lean2_*}).
     */
    EXP2
  }

  /**
   * flash_attention.cu's FaDiv for divisor {@code d} ≥ 1: {@code (m, shift)} with {@code n / d ==
   * umulhi(n, m) >>> shift} for every {@code 0 <= n < 2^31}, and {@code m == 0} standing for
   * {@code d == 1} (n itself). With {@code l = ceil(log2 d)} and {@code m = ceil(2^(31+l) / d)}
   * (below 2^32, since {@code d > 2^(l-1)}), {@code n m / 2^(31+l) = n / d + e} where {@code 0 <= e
   * < n / 2^(31+l) < 2^-l <= 1/d}; n / d's fraction is at most {@code (d-1)/d}, so the floor is
   * unchanged ({@code d = 2^l}: m is 2^31 exactly, e = 0). {@code FastDivisorTest} checks it.
   */
  static int[] fastDivisor(int d) {
    if (d < 1) throw new IllegalArgumentException("divisor " + d);
    if (d == 1) return new int[] {0, 0};
    int l = 32 - Integer.numberOfLeadingZeros(d - 1);
    long m = ((1L << (31 + l)) + d - 1) / d;
    return new int[] {(int) m, l - 1};
  }

  /**
   * As {@link #flashAttentionPipelined(DeviceBuffer, DeviceBuffer, int, int, int, boolean, Precision, boolean, boolean,
   * boolean)}; {@code lean} chooses the staged kernel's tile arithmetic ({@link FlashLean}: {@code
   * flash_attention_pipe_st[_fit][_rev]_lean[2]_*}; not for the unstaged kernel, which has none).
   * An output off a 16-byte boundary takes the unstaged block kernel whatever is asked, as for the
   * other pipelined kernels: fa_tile's arithmetic (the same bits as {@code ON}, not as {@code EXP2}).
   */
  public void flashAttentionPipelined(DeviceBuffer out, DeviceBuffer qkv, int batch, int n, int heads, boolean causal, Precision precision,
      boolean staged, boolean fit, boolean reversed, FlashLean lean) {
    if (lean != FlashLean.OFF && !staged) throw new IllegalArgumentException("the lean flash kernels are staged ones (flashStage=on)");
    if (precision == Precision.FP32) throw new IllegalArgumentException("flash attention runs in fp16 or bf16");
    if (n < 1) throw new IllegalArgumentException("flash attention over " + n + " tokens");
    if (heads < 1 || batch < 0) throw new IllegalArgumentException("flash attention over " + heads + " heads of " + batch + " sequences");
    requireFlashAlignment(out, qkv);
    if (!aligned16(out)) {
      // an output off a 16-byte boundary takes the block kernel, the same bits (lean: fa_tile's
      // arithmetic, which is the lean tile's bits but not the base-2 softmax's)
      flashAttention(out, qkv, batch, n, heads, causal, precision, FlashV.LDMATRIX, true, false, false);
      return;
    }
    boolean fitted = fit && flashPipeFits(n);
    int rows = fitted ? 80 : 64;
    long items = (long) batch * heads * ((n + rows - 1) / rows);
    if (items > Integer.MAX_VALUE) throw new IllegalArgumentException("too many attention blocks for one launch: " + items);
    String kernel = "flash_attention_pipe_" + (staged ? "st_" : "") + (fitted ? "fit_" : "") + (reversed ? "rev_" : "")
        + switch (lean) {
          case OFF -> "";
          case ON -> "lean_";
          case EXP2 -> "lean2_";
        } + suffix(precision);
    // one wave of persistent blocks: as many as an SM holds (on an H100/H200 their __launch_bounds__:
    // 4 of 128 threads, fitted 3 of 160; fewer where an SM has less shared memory, e.g. an A100)
    int smem = fitted ? FLASH_PIPE_FIT_SMEM : FLASH_PIPE_SMEM, threads = 2 * rows;
    int perSm = flashPipeBlocks.computeIfAbsent(kernel, k -> {
      flashAttention.allowSharedMemory(k, smem); // above the 48 KB default: once a kernel, before its first launch
      return flashAttention.blocksPerMultiprocessor(k, threads, smem, fitted ? 3 : 4);
    });
    int grid = (int) Math.max(1, Math.min(items, (long) perSm * multiprocessors));
    pipeLaunches.incrementAndGet();
    if (lean == FlashLean.OFF) {
      flashAttention.launch(kernel, new int[] {grid, 1, 1}, new int[] {threads, 1, 1}, smem, stream, out, qkv, batch, n, heads, causal ? 1 : 0);
    } else {
      leanLaunches.incrementAndGet();
      int[] q = fastDivisor((n + rows - 1) / rows), h = fastDivisor(heads);
      flashAttention.launch(kernel, new int[] {grid, 1, 1}, new int[] {threads, 1, 1}, smem, stream, out, qkv, batch, n, heads, causal ? 1 : 0,
          q[0], q[1], h[0], h[1]);
    }
  }

  /**
   * {@code logits[M,T] = scale · normalise(x[M,E]) · normalise(y[T,E])ᵀ}, fp32: CLIP's
   * logits_per_image with {@code scale = exp(logit_scale)}.
   */
  public void cosineLogits(DeviceBuffer logits, DeviceBuffer x, DeviceBuffer y, int m, int t, int e, float scale) {
    if ((m + 63) / 64 > 65535) throw new IllegalArgumentException("too many image rows for one launch: " + m);
    cosineLogits.launch("cosine_logits_f32", new int[] {(t + 63) / 64, (m + 63) / 64, 1}, new int[] {16, 16, 1}, 0, stream,
        logits, x, y, m, t, e, scale);
  }

  /** Converts {@code n} elements from {@code from} to {@code to} (one of them FP32). */
  public void cast(DeviceBuffer dst, Precision to, DeviceBuffer src, Precision from, long n) {
    if ((from == Precision.FP32) == (to == Precision.FP32)) throw new IllegalArgumentException("cast " + from + " -> " + to);
    cast.launch("cast_" + suffix(from) + "_" + suffix(to), elementwiseGrid(n), new int[] {THREADS, 1, 1}, 0, stream, dst, src, n);
  }

  /** {@code x = QuickGELU(x + bias)} over a [rows, cols] tensor; bias [cols] may be null. */
  public void biasQuickGelu(DeviceBuffer x, DeviceBuffer bias, long rows, int cols) {
    gelu.launch("bias_quick_gelu_f32", elementwiseGrid(rows * cols), new int[] {THREADS, 1, 1}, 0, stream, x, bias, rows, cols);
  }

  /** {@code x = GELU(x + bias)} (erf form) over a [rows, cols] tensor; bias [cols] may be null. */
  public void biasGelu(DeviceBuffer x, DeviceBuffer bias, long rows, int cols) {
    gelu.launch("bias_gelu_f32", elementwiseGrid(rows * cols), new int[] {THREADS, 1, 1}, 0, stream, x, bias, rows, cols);
  }

  /**
   * {@code s = x + residual; sumOut = s; out = LayerNorm(s)} over [rows, d]; residual and sumOut
   * may be null.
   */
  public void addLayerNorm(
      DeviceBuffer out, DeviceBuffer sumOut, DeviceBuffer x, DeviceBuffer residual, DeviceBuffer gamma, DeviceBuffer beta,
      long rows, int d, float eps) {
    layerNorm(out, sumOut, x, residual, gamma, beta, rows, d, eps, Precision.FP32, LayerNormKernel.PLAIN);
  }

  /** LayerNorm kernels: the plain one, the vector one (a warp a row), the vector one with warps walking rows (five ways). */
  public enum LayerNormKernel {
    /** layernorm.cu's {@code add_layernorm}: one warp a row, element by element (the reference). */
    PLAIN,
    /** {@code add_layernorm_vec<P>}: one warp a row, 16-byte accesses, the row in registers. */
    VECTOR,
    /**
     * {@code layernorm_warps<P>}: the vector kernel's arithmetic (the same bits) with gamma and beta
     * kept in registers while each warp walks many rows, two at a time up to P = 3.
     */
    WARPS,
    /**
     * {@code layernorm_smem<P>}: the vector kernel's arithmetic (the same bits) with gamma and beta
     * in shared memory, few registers and many warps, each walking rows one at a time.
     */
    SHARED,
    /**
     * {@code layernorm_stream[_res]<P>}: the shared-memory kernel with each warp's next row loaded
     * while it computes the current one (the same bits).
     */
    STREAM,
    /**
     * {@code layernorm_deep<P>}: the streaming kernel with each warp's next two rows loaded (the
     * same bits); with a residual, the streaming kernel.
     */
    DEEP,
    /**
     * {@code layernorm_deep_rev<P>}: DEEP walking the rows from the last to the first (those the
     * GEMM before it wrote last are the likeliest in L2); the same bits.
     */
    DEEP_REVERSED
  }

  /**
   * Blocks of 256 an SM of {@code layernorm_stream<P>} ({@code residual} false) or {@code
   * layernorm_stream_res<P>}: their {@code __launch_bounds__} in layernorm.cu.
   */
  static int streamBlocksPerSm(int packs, boolean residual) {
    return residual ? 2 : packs <= 3 ? 4 : 3;
  }

  /** Blocks of 256 an SM of {@code layernorm_deep[_rev]<P>}: their {@code __launch_bounds__} in layernorm.cu. */
  static int deepBlocksPerSm(int packs) {
    return packs <= 2 ? 4 : packs == 3 ? 3 : 2;
  }

  /**
   * {@code s = x + residual; sumOut = s; out = LayerNorm(s)} over [rows, d] in {@code precision}
   * (residual and sumOut may be null; gamma, beta fp32) with {@code kernel}; the vector kernels
   * where d and the buffers allow them ({@link #vectorLayerNormFits}; the row-walking kernels up to 4
   * packs a lane, else VECTOR), else the plain one.
   */
  public void layerNorm(DeviceBuffer out, DeviceBuffer sumOut, DeviceBuffer x, DeviceBuffer residual, DeviceBuffer gamma,
      DeviceBuffer beta, long rows, int d, float eps, Precision precision, LayerNormKernel kernel) {
    int p = kernel == LayerNormKernel.PLAIN ? 0 : vectorLayerNormPacks(d, precision, out, sumOut, x, residual);
    // the row-walking kernels: their name and blocks an SM (their __launch_bounds__)
    String walker = switch (kernel) {
      case WARPS -> "layernorm_warps";
      case SHARED -> "layernorm_smem";
      case STREAM -> residual != null ? "layernorm_stream_res" : "layernorm_stream";
      case DEEP -> residual != null ? "layernorm_stream_res" : "layernorm_deep";
      case DEEP_REVERSED -> residual != null ? "layernorm_stream_res" : "layernorm_deep_rev";
      case PLAIN, VECTOR -> null;
    };
    if (walker != null && p > 0 && p <= 4 && aligned16(gamma, beta)) {
      int perSm = switch (kernel) {
        case WARPS -> 2;
        case SHARED -> 4;
        case DEEP, DEEP_REVERSED -> residual != null ? streamBlocksPerSm(p, true) : deepBlocksPerSm(p);
        default -> streamBlocksPerSm(p, residual != null);
      };
      long blocks = Math.min((rows + 7) / 8, (long) perSm * multiprocessors);
      int sharedBytes = kernel == LayerNormKernel.WARPS ? 0 : 8 * d; // gamma and beta as fp32
      layerNorm.launch(walker + p + "_" + suffix(precision), new int[] {(int) Math.max(blocks, 1), 1, 1},
          new int[] {THREADS, 1, 1}, sharedBytes, stream, out, sumOut, x, residual, gamma, beta, rows, d, eps);
      return;
    }
    String name = (p > 0 ? "add_layernorm_vec" + p + "_" : "add_layernorm_") + suffix(precision);
    launchRows(layerNorm, name, rows, out, sumOut, x, residual, gamma, beta, rows, d, eps);
  }

  /**
   * Each row's LayerNorm statistics, {@code stats[r] = (mean, 1 / sqrt(var + eps))} as float pairs,
   * computed as the vector LayerNorms compute them (the same values): {@code layernorm_stats<P>},
   * for a LayerNorm folded into the GEMM that reads x ({@link Sm90Gemm#runLayerNormFolded}). False
   * (nothing queued) where the kernel does not take the rows: not a multiple of 16 bytes, more than
   * 32 x 4 packs, or x not 16-byte aligned; stats must hold {@code rows} pairs, 8-byte aligned.
   */
  public boolean layerNormStats(DeviceBuffer stats, DeviceBuffer x, long rows, int d, float eps, Precision precision) {
    int p = statsPacks(d, precision, x);
    if (p == 0) return false;
    if (stats.address() % 8 != 0 || stats.bytes() < 8 * rows) throw new IllegalArgumentException("statistics buffer of " + stats.bytes() + " bytes for " + rows + " rows");
    long blocks = Math.min((rows + 7) / 8, 4L * multiprocessors);
    layerNorm.launch("layernorm_stats" + p + "_" + suffix(precision), new int[] {(int) Math.max(blocks, 1), 1, 1}, new int[] {THREADS, 1, 1}, 0,
        stream, stats, x, rows, d, eps);
    return true;
  }

  /** Columns of one LayerNorm statistics part ({@link #layerNormStatsCombine}): the epilogue-warps GEMM's tile width. */
  public static final int STATS_PART_COLUMNS = 256;

  /** The statistics parts of a row of {@code d} columns: one a {@link #STATS_PART_COLUMNS} columns, the last maybe fewer. */
  public static int statsParts(int d) {
    return (d + STATS_PART_COLUMNS - 1) / STATS_PART_COLUMNS;
  }

  /**
   * Each row's LayerNorm statistics, {@code stats[r] = (mean, 1 / sqrt(var + eps))} as {@link
   * #layerNormStats} writes them, from the parts that {@link Sm90Gemm#runWithLayerNormParts} wrote
   * while storing the rows ({@code layernorm_stats_combine}): {@code part} [rows, {@link
   * #statsParts}(d)] float pairs, each a part's mean and its sum of squared deviations. The same
   * statistics within fp32 rounding (another summation order), without reading the rows again.
   */
  public void layerNormStatsCombine(DeviceBuffer stats, DeviceBuffer part, long rows, int d, float eps) {
    int parts = statsParts(d);
    if (stats.address() % 8 != 0 || stats.bytes() < 8 * rows) throw new IllegalArgumentException("statistics buffer of " + stats.bytes() + " bytes for " + rows + " rows");
    if (part.address() % 8 != 0 || part.bytes() < 8 * rows * parts) {
      throw new IllegalArgumentException("statistics parts buffer of " + part.bytes() + " bytes for " + rows + " rows of " + parts + " parts");
    }
    if (rows <= 0) return;
    layerNorm.launch("layernorm_stats_combine", new int[] {(int) ((rows + THREADS - 1) / THREADS), 1, 1}, new int[] {THREADS, 1, 1}, 0, stream,
        stats, part, rows, parts, d, eps);
  }

  /** Whether {@link #layerNormStats} takes rows of {@code d} elements of {@code precision} in {@code x}: at most 32 x 4 packs, x 16-byte aligned. */
  public static boolean layerNormStatsFit(int d, Precision precision, DeviceBuffer x) {
    return statsPacks(d, precision, x) > 0;
  }

  /** Whether layernorm_stats takes rows of {@code d} elements of {@code precision} in 16-byte aligned buffers (the arena's). */
  public static boolean layerNormStatsFit(int d, Precision precision) {
    return statsPacks(d, precision) > 0;
  }

  /** layernorm_stats' packs per lane for these rows (1 to 4) in {@code buffers}, or 0 where it does not take them. */
  private static int statsPacks(int d, Precision precision, DeviceBuffer... buffers) {
    int p = vectorLayerNormPacks(d, precision, buffers);
    return p <= 4 ? p : 0;
  }

  /** Whether the vector LayerNorm takes rows of {@code d} elements of {@code precision}: a multiple of 16 bytes, at most 32 x 5 packs. */
  public static boolean vectorLayerNormFits(int d, Precision precision) {
    int perPack = 16 / precision.bytes();
    return d % perPack == 0 && d / perPack <= 32 * 5;
  }

  /** The vector kernel's packs per lane for these rows and buffers, or 0 where it does not fit. */
  private static int vectorLayerNormPacks(int d, Precision precision, DeviceBuffer... buffers) {
    if (!vectorLayerNormFits(d, precision) || !aligned16(buffers)) return 0;
    return (d / (16 / precision.bytes()) + 31) / 32;
  }

  private static int[] elementwiseGrid(long n) {
    long blocks = Math.min((n + THREADS - 1) / THREADS, 65535L * 4);
    return new int[] {(int) Math.max(blocks, 1), 1, 1};
  }

  @Override
  public void close() {
    try (gelu;
        layerNorm;
        attention;
        attentionAny;
        flashAttention;
        cosineLogits;
        cast;
        glue) {
      // closes every module, even if one close fails
    }
  }
}
