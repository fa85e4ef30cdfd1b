package dev.jclip.backend.cuda;

import static org.bytedeco.cuda.global.cudart.CUDA_R_16BF;
import static org.bytedeco.cuda.global.cudart.CUDA_R_16F;
import static org.bytedeco.cuda.global.cudart.CUDA_R_32F;

import dev.jclip.backend.Precision;
import dev.jclip.graph.Backend;
import dev.jclip.graph.Fusion;
import dev.jclip.graph.Graph;
import dev.jclip.graph.Node;
import dev.jclip.graph.Op;
import dev.jclip.graph.TensorSpec;
import dev.jclip.graph.Value;
import dev.jclip.io.DType;
import dev.jclip.io.Tensor;
import dev.jclip.model.Activation;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.WeakHashMap;

/**
 * Runs graphs on one NVIDIA GPU: cuBLAS and cuBLASLt for the GEMMs, jclip's PTX kernels for
 * everything else.
 *
 * <p>A LINEAR without activation runs as one cuBLASLt matmul that adds the bias in its epilogue,
 * and the residual ADD that reads it is folded into the same matmul ({@link
 * Fusion#linearResidual}, applied by {@link #prepare}: {@code C} = the residual, {@code beta} =
 * 1), so the attention's in-projection, out-projection and the MLP's second linear make no extra
 * pass over their results. A LINEAR with QuickGELU or GELU (erf) stays a cuBLAS GEMM followed by
 * the {@code bias_act} kernel: cuBLASLt's GELU epilogue is the tanh approximation; on Hopper,
 * {@code -Djclip.cuda.fusedLinear=sm90} runs it as one gemm_sm90 kernel instead ({@link Sm90Gemm},
 * opt-in until timed; {@code sm90c2}, {@code sm90pp}, {@code sm90ppc2} its other schedules, and
 * {@code -all} after any of them every LINEAR, bias and residual included, instead of cuBLASLt;
 * {@code -Djclip.cuda.gemmStore=tma} its outputs through the TMA unit, {@link #gemmTmaStore}). The cuBLAS path for everything
 * (GEMM, then bias, then ADD) is kept: {@code -Djclip.cuda.gemm=cublas} or the constructor's flag.
 *
 * <p>Precision is chosen per backend: {@link Precision#FP32} is the parity mode (fp32 GEMMs without
 * TF32, fp32 activations); {@link Precision#FP16} and {@link Precision#BF16} keep activations and
 * GEMM weights in 16 bits, with fp32 accumulation in every GEMM and fp32 statistics in LayerNorm,
 * softmax and the reductions. Biases, LayerNorm weights and embeddings stay fp32 in every mode
 * (cuBLASLt's bias epilogue reads a LINEAR's bias in the output's type: a 16-bit copy is made once).
 * Graph inputs and outputs are fp32 on the host; inputs are cast to 16 bits on the device, outputs
 * widened on the host (exactly).
 *
 * <p>Three streams: the compute stream runs every kernel, cuBLAS call and CUDA graph in order; an
 * upload stream copies inputs from a pinned staging buffer per input buffer (the compute stream
 * waits for each copy through an event), and a download stream copies outputs into a pinned
 * staging buffer. So {@link #write} returns before its copy has run, and an executor's next batch
 * uploads while another executor's batch computes ({@link dev.jclip.graph.Executor#submit}).
 * Parameters are uploaded once, the first time a node uses them, and freed with the backend.
 * Every op of {@link Op} is implemented, the ResNet convolutions as im2col + GEMM. Not
 * thread-safe: calls come from one thread at a time (several executors may have work queued).
 */
public final class CudaBackend implements Backend {
  private final CudaDevice device;
  private final Precision precision;
  private final String s; // kernel name suffix
  private final int elem;
  private final CudaOps ops;
  private final Cublas blas;
  private final Map<Tensor, DeviceBuffer> params = new IdentityHashMap<>();
  /** 16-bit copies (fp16 or bf16) of GEMM weights, and of the biases cuBLASLt's epilogue reads. */
  private final Map<Tensor, DeviceBuffer> gemmWeights = new IdentityHashMap<>();
  private final DeviceBuffer[] scratch = new DeviceBuffer[4];
  private final java.util.List<DeviceBuffer> retired = new java.util.ArrayList<>();
  /** The compute stream: kernels, cuBLAS, CUDA graphs, parameter uploads. */
  private final CudaStream stream;
  /** Input uploads from pinned staging, beside the compute stream. */
  private final CudaStream uploads;
  /** Output downloads into pinned staging, beside the compute stream. */
  private final CudaStream downloads;
  /** Per input buffer (an executor's input slot): its staging, freed with the buffer. */
  private final Map<DeviceBuffer, InputStaging> stagings = new IdentityHashMap<>();
  /** Where {@link #read} copies outputs, grown when needed. */
  private PinnedBuffer output;
  private final boolean flash;
  /** Times each node when set ({@link #profile}). */
  private KernelProfile profile;
  private boolean ownsDevice;
  private final DeviceBuffer blasWorkspace;
  /** LINEAR without activation, with its bias and residual in the epilogue; null: the cuBLAS path. */
  private final CublasLt lt;
  /** Token-id buffers and the table of the TOKEN_EMBED that reads each (see {@link TokenTable}). */
  private final Map<Buffer, TokenTable> tokenReaders = new WeakHashMap<>();
  /** Ids written to a buffer before any TOKEN_EMBED has read it: checked when one first does. */
  private final Map<Buffer, int[]> uncheckedIds = new WeakHashMap<>();

  /** cuBLAS's fixed workspace: 32 MiB, as NVIDIA recommends for Hopper. */
  private static final long BLAS_WORKSPACE = 32L << 20;

  /** A backend that owns a newly opened device {@code ordinal}: closing the backend closes the device. */
  public static CudaBackend open(int ordinal, Precision precision) {
    CudaDevice device = CudaDevice.open(ordinal);
    try {
      CudaBackend b = new CudaBackend(device, precision, flashByDefault());
      b.ownsDevice = true;
      return b;
    } catch (RuntimeException e) {
      device.close();
      throw e;
    }
  }

  /** An fp32 (parity mode) backend on {@code device}; the caller keeps ownership of the device. */
  public CudaBackend(CudaDevice device) {
    this(device, Precision.FP32);
  }

  /** A backend on {@code device} computing in {@code precision}; the caller keeps ownership of the device. */
  public CudaBackend(CudaDevice device, Precision precision) {
    this(device, precision, flashByDefault());
  }

  /**
   * The LayerNorm kernel ({@link CudaOps.LayerNormKernel}): by default STREAM, layernorm.cu's
   * {@code layernorm_stream} (gamma and beta in shared memory, each warp's next row loading while
   * it computes the current one) where it fits, else the plain kernel (docs/gpu.md, run 8: the
   * image tower's 25 LayerNorms 1.69 → 1.07 ms against {@code warps}); {@code
   * -Djclip.cuda.layernorm=plain}, {@code vec} (the first vector kernel: 1.2x slower than the
   * plain one), {@code warps} (gamma and beta in registers while a warp walks rows: run 7's
   * default), {@code smem} (shared memory, no prefetch: run 8, 1.23 ms), {@code deep} (the next
   * two rows loading) or {@code deep-rev} (the same, the rows last to first: both session 14, not
   * yet timed) for backends built without saying.
   */
  private volatile CudaOps.LayerNormKernel layerNormKernel = layerNormProperty().value();

  private static Setting<CudaOps.LayerNormKernel> layerNormProperty() {
    return option("layernorm", "the CUDA LayerNorm kernel", "stream", Map.entry("warps", CudaOps.LayerNormKernel.WARPS),
        Map.entry("smem", CudaOps.LayerNormKernel.SHARED), Map.entry("stream", CudaOps.LayerNormKernel.STREAM),
        Map.entry("deep", CudaOps.LayerNormKernel.DEEP), Map.entry("deep-rev", CudaOps.LayerNormKernel.DEEP_REVERSED),
        Map.entry("vec", CudaOps.LayerNormKernel.VECTOR),
        Map.entry("plain", CudaOps.LayerNormKernel.PLAIN));
  }

  /**
   * The vector glue kernels (glue.cu: patch rows 16 bytes at a time, class and position
   * embeddings, token embeddings, and in fp16/bf16 the bias + activation pass with the fast
   * QuickGELU, within one unit in the last place): on by default; {@code -Djclip.cuda.glue=plain}
   * keeps the plain kernels (their references) for backends built without saying.
   */
  private volatile boolean vectorGlue = glueProperty().value();

  private static Setting<Boolean> glueProperty() {
    return choice("glue", "the CUDA glue kernels", "vec", "plain", "vec");
  }


  /**
   * How the flash kernel stores its V tiles ({@link CudaOps.FlashV}; the same bits every way):
   * transposed, 8 threads a key (the default); {@code -Djclip.cuda.flashV=key} (transposed, a
   * thread a key: docs/gpu.md run 6, 14% slower) or {@code ldm} (row-major, read with ldmatrix.trans:
   * not yet timed) for backends built without saying.
   */
  private volatile CudaOps.FlashV flashV = flashVProperty().value();

  /**
   * The pipelined flash kernel ({@link CudaOps#flashAttentionPipelined}: persistent blocks copying
   * the next K/V tile while computing the current one; the same bits): on by default since run 8
   * (docs/gpu.md: with staging, the image tower's 12 attentions 2.11 → 1.52 ms, the 77-token
   * texts' 3.13 → 2.28 ms); {@code -Djclip.cuda.flashPipe=off} for backends built without saying
   * takes the one-block-a-tile kernels (and their V layout, block count and fitted-rows choices).
   */
  private volatile boolean flashPipelined = flashPipeProperty().value();

  private static Setting<Boolean> flashPipeProperty() {
    return choice("flashPipe", "the pipelined flash kernel", "on", "off", "on");
  }

  /**
   * The flash kernels with Q in and the output out through shared memory, in 16-byte accesses
   * ({@code *_st_*}, {@link CudaOps#flashAttention(DeviceBuffer, DeviceBuffer, int, int, int, boolean, Precision,
   * CudaOps.FlashV, boolean, boolean, boolean)}; the same bits): on by default since run 8 (the
   * pipelined kernel staged: 1.52 ms against 1.66 unstaged, image tower); {@code
   * -Djclip.cuda.flashStage=off} turns it off for backends built without saying (with every other
   * flash choice, the pipelined kernel's included).
   */
  private volatile boolean flashStaged = flashStageProperty().value();

  private static Setting<Boolean> flashStageProperty() {
    return choice("flashStage", "the flash kernel's staged Q and output", "on", "off", "on");
  }

  /** Chooses, for graphs run from now on, the flash kernels that stage Q and the output in shared memory, or the direct ones. */
  public void flashStaged(boolean on) {
    flashStaged = on;
  }

  /**
   * The order in which the pipelined flash kernel's blocks walk their items ({@link
   * CudaOps#flashAttentionPipelined(DeviceBuffer, DeviceBuffer, int, int, int, boolean, Precision, boolean, boolean,
   * boolean)}; the same bits): first to last by default; {@code -Djclip.cuda.flashOrder=reversed}
   * (session 14, not yet timed) walks them last to first, so that its first reads find in L2 the
   * rows in_proj wrote last, and out_proj first reads what it wrote last.
   */
  private volatile boolean flashReversed = flashOrderProperty().value();

  private static Setting<Boolean> flashOrderProperty() {
    return choice("flashOrder", "the pipelined flash kernel's item order", "reversed", "forward", "forward");
  }

  /** Chooses, for graphs run from now on, the pipelined flash kernel walking its items last to first, or first to last. */
  public void flashReversed(boolean on) {
    flashReversed = on;
  }

  /**
   * The staged pipelined flash kernel's tile arithmetic ({@link CudaOps.FlashLean}): fa_tile by
   * default; {@code -Djclip.cuda.flashLean=on} (session 15, not yet timed) the same arithmetic and
   * bits in fewer instructions (GPU run 8: the kernel is bound by the SM, not by memory; static
   * SASS 1,574 against 1,793, the tile 659 against 867), {@code exp2} besides the softmax in base 2
   * with the scale folded in (1,257, the tile 384; other bits, within the 16-bit tolerance). The
   * unstaged kernel ({@code flashStage=off}) has no lean version and ignores it.
   */
  private volatile CudaOps.FlashLean flashLean = flashLeanProperty().value();

  private static Setting<CudaOps.FlashLean> flashLeanProperty() {
    return option("flashLean", "the staged pipelined flash kernel's tile", "off", Map.entry("off", CudaOps.FlashLean.OFF),
        Map.entry("on", CudaOps.FlashLean.ON), Map.entry("exp2", CudaOps.FlashLean.EXP2));
  }

  /** Chooses, for graphs run from now on, the staged pipelined flash kernel's tile arithmetic. */
  public void flashLean(CudaOps.FlashLean lean) {
    flashLean = java.util.Objects.requireNonNull(lean);
  }

  /** How many attentions ran a pipelined flash kernel (the run that records a CUDA graph counts, replays do not). */
  public long flashPipelinedLaunches() {
    return ops.flashPipelinedLaunches();
  }

  /** How many of those ran a lean one ({@link #flashLean}). */
  public long flashLeanLaunches() {
    return ops.flashLeanLaunches();
  }

  /**
   * The order in which the bias + activation pass after a GEMM walks its elements ({@link
   * CudaOps#biasAct(DeviceBuffer, DeviceBuffer, long, int, int, Precision, boolean, boolean)}, the
   * fast kernel; the same bits): first to last by default; {@code -Djclip.cuda.actOrder=reversed}
   * (session 14, not yet timed) last to first, so that its first reads find in L2 the rows c_fc
   * wrote last, and c_proj first reads what it wrote last.
   */
  private volatile boolean actReversed = actOrderProperty().value();

  private static Setting<Boolean> actOrderProperty() {
    return choice("actOrder", "the bias + activation pass's order", "reversed", "forward", "forward");
  }

  /** Chooses, for graphs run from now on, the bias + activation pass walking its elements last to first, or first to last. */
  public void actReversed(boolean on) {
    actReversed = on;
  }

  /**
   * Where a 16-bit backend rounds its float inputs (the pixels) to fp16 or bf16: on the device by
   * default (the fp32 values uploaded into a device staging buffer, then the cast kernel); with
   * {@code -Djclip.cuda.inputCast=host} (session 22, not yet timed) on the host while they are
   * copied into the pinned staging ({@link HostCopy#putHalf}), so that half the bytes cross the
   * bus and no fp32 device staging is kept. The same bits: {@link HalfFloats} rounds as the cast
   * kernel does.
   */
  private volatile boolean hostInputCast = inputCastProperty().value();

  private static Setting<Boolean> inputCastProperty() {
    return choice("inputCast", "where 16-bit inputs are rounded", "host", "device", "device");
  }

  /** Rounds 16-bit float inputs written from now on on the host (true) or on the device (false); fp32 backends upload as they are. */
  public void hostInputCast(boolean on) {
    hostInputCast = on;
  }

  /** Whether 16-bit float inputs are rounded on the host ({@link #hostInputCast(boolean)}). */
  public boolean hostInputCast() {
    return hostInputCast;
  }

  /** {@code -Djclip.cuda.gemmTune}, read before the constructor allocates anything (a bad value fails first). */
  private final Tune tuneFromProperty = gemmTuneProperty().value();

  /** The GEMM tuning levels of {@code -Djclip.cuda.gemmTune}. */
  public enum Tune {
    /** The default: ON for fp16 and bf16, OFF for fp32 (the parity mode: the same algorithm, and bits, every run). */
    AUTO,
    /** The heuristic's first algorithm, untimed. */
    OFF,
    /** The fastest of the heuristic's algorithms ({@link CudaBackend#gemmTune}). */
    ON,
    /** As ON, then a search around the fastest ({@link CudaBackend#gemmSearch}). */
    SEARCH
  }

  /** How many of cuBLASLt's algorithms a GEMM problem times when tuning is on ({@link #gemmTune}). */
  public static final int TUNE_CANDIDATES = 16;

  /**
   * Whether backends built without saying in {@code precision} tune their cuBLASLt GEMMs ({@link
   * #gemmTune}): by default ({@code auto}) in fp16 and bf16 since run 8 (docs/gpu.md: image tower
   * 18.61 → 17.65 ms, 77-token texts 17.16 → 15.51), not in fp32, the parity mode, whose GEMMs keep
   * the heuristic's first algorithm and so the same bits every run (a tuned choice can differ
   * between runs, and with it the last bits); {@code -Djclip.cuda.gemmTune=on} (or {@code search})
   * tunes every precision, {@code off} none.
   */
  public static boolean gemmTuneByDefault(Precision precision) {
    return tunes(gemmTuneProperty().value(), precision);
  }

  private static boolean tunes(Tune t, Precision precision) {
    return switch (t) {
      case AUTO -> precision != Precision.FP32;
      case OFF -> false;
      case ON, SEARCH -> true;
    };
  }

  private static Setting<Tune> gemmTuneProperty() {
    return option("gemmTune", "cuBLASLt tuning", "auto", Map.entry("auto", Tune.AUTO), Map.entry("on", Tune.ON), Map.entry("off", Tune.OFF),
        Map.entry("search", Tune.SEARCH));
  }

  /**
   * Tunes (or not) the cuBLASLt GEMMs of graphs first run from now on ({@link CublasLt#tune}): the
   * first call of each LINEAR problem times up to {@value #TUNE_CANDIDATES} of the heuristic's
   * algorithms on its own buffers and keeps the fastest, and the GEMMs that run on cuBLAS untuned
   * (a LINEAR with an activation before its bias_act pass, the patch embedding) become tuned
   * cuBLASLt matmuls too. Problems already planned keep their
   * algorithm. A no-op on the cuBLAS path.
   */
  public void gemmTune(boolean on) {
    if (lt != null) lt.tune(on ? TUNE_CANDIDATES : 1);
  }

  /** Whether new GEMM problems are tuned ({@link #gemmTune}). */
  public boolean gemmTuned() {
    return lt != null && lt.tuneCandidates() > 1;
  }

  /**
   * With tuning on, whether each new GEMM problem also searches around the heuristic's fastest
   * algorithm ({@link CublasLt#search}: its other tiles, stage counts, cluster shapes and CTA
   * swizzle, one at a time, up to 48 more candidates a problem); {@code -Djclip.cuda.gemmTune=search}
   * for backends built without saying. Opt-in: not yet run on a GPU. Problems already planned keep
   * their algorithm. A no-op on the cuBLAS path.
   */
  public void gemmSearch(boolean on) {
    if (lt != null) lt.search(on);
  }

  /** Whether new tuned GEMM problems search around the heuristic's fastest ({@link #gemmSearch}). */
  public boolean gemmSearched() {
    return lt != null && lt.searching();
  }

  /** What tuning measured, a line per tuned problem ({@link CublasLt#tuning}); empty when nothing was tuned. */
  public List<String> gemmTuning() {
    return lt == null ? List.of() : lt.tuning();
  }

  /** Chooses, for graphs run from now on, the pipelined flash kernel or the one-block-a-tile ones. */
  public void flashPipelined(boolean on) {
    flashPipelined = on;
  }

  /**
   * Heads other than 64 wide (open_clip's ViT-H-14 80, ViT-g-14 88, ViT-bigG-14 104) on jclip's
   * plain kernels ({@link CudaOps#attentionAnyHead}, cuda-kernels/attention_any.cu: fp32 arithmetic,
   * no tensor cores, heads up to 128): off by default until a GPU run has tested them, when a model
   * with such heads is refused (run it on the CPU); {@code -Djclip.cuda.anyHead=on} for backends
   * built without saying.
   */
  private volatile boolean anyHead = anyHeadProperty().value();

  private static Setting<Boolean> anyHeadProperty() {
    return choice("anyHead", "the kernels for heads other than 64", "on", "off", "off");
  }

  /** Chooses, for graphs run from now on, whether heads other than 64 run on the plain kernels or are refused. */
  public void anyHead(boolean on) {
    anyHead = on;
  }

  private static Setting<CudaOps.FlashV> flashVProperty() {
    return option("flashV", "the flash kernel's V tiles", "row", Map.entry("row", CudaOps.FlashV.ROWS),
        Map.entry("key", CudaOps.FlashV.KEYS), Map.entry("ldm", CudaOps.FlashV.LDMATRIX));
  }

  /**
   * A LINEAR with an activation (the MLP's c_fc) as one gemm_sm90 kernel with the bias and
   * activation in its epilogue ({@link Sm90Gemm}: Hopper only, fp16/bf16), instead of a cuBLAS GEMM
   * and a bias_act pass: off by default until it has been timed faster on a GPU; {@code
   * -Djclip.cuda.fusedLinear=sm90} (or another of its schedules, {@link #fusedLinearProperty}; a
   * {@link FusedScope} suffix for more LINEARs) turns it on for backends built without saying. Null: off.
   */
  private volatile FusedLinearChoice fusedLinear = fusedLinearProperty().value();

  /** Which LINEARs run on gemm_sm90 when it is on. */
  public enum FusedScope {
    /** Those with an activation (c_fc): no suffix. */
    ACTIVATION,
    /** Every LINEAR without a residual (c_fc, in_proj; the pooled projections): {@code -linear}. */
    LINEAR,
    /** Every LINEAR and LINEAR_RESIDUAL (out_proj and c_proj with the residual in the epilogue): {@code -all}. */
    ALL
  }

  /** A choice of fused LINEARs: gemm_sm90's schedule, and which LINEARs run on it. */
  private record FusedLinearChoice(Sm90Gemm.Schedule schedule, FusedScope scope) {}

  /**
   * {@code -Djclip.cuda.fusedLinear}: null for {@code off} (or unset); {@code sm90} (cooperative),
   * {@code sm90c2} (cooperative, clusters of two), {@code sm90pp} (ping-pong), {@code sm90ppc2}
   * (ping-pong, clusters of two), {@code sm90ew} (cooperative tiles with epilogue warps; a launch
   * whose C or residual is not 16-byte aligned runs cooperative), {@code sm90ew16} (the same with
   * the tile staged in 16 bits and a deeper ring), {@code sm90ew16s} (sm90ew16 with the consumer
   * warpgroups out of step by {@code -Djclip.cuda.ewLag} k steps), each optionally followed by
   * {@code -linear} or {@code -all}
   * ({@link FusedScope}); anything else is refused.
   */
  private static Setting<FusedLinearChoice> fusedLinearProperty() {
    String v = System.getProperty(PROPERTY_PREFIX + "fusedLinear", "off");
    if (v.equals("off")) return new Setting<>("fusedLinear", v, null);
    FusedScope scope = v.endsWith("-all") ? FusedScope.ALL : v.endsWith("-linear") ? FusedScope.LINEAR : FusedScope.ACTIVATION;
    String name = scope == FusedScope.ACTIVATION ? v : v.substring(0, v.lastIndexOf('-'));
    Sm90Gemm.Schedule schedule = switch (name) {
      case "sm90" -> Sm90Gemm.Schedule.COOPERATIVE;
      case "sm90c2" -> Sm90Gemm.Schedule.COOPERATIVE_CLUSTER;
      case "sm90pp" -> Sm90Gemm.Schedule.PINGPONG;
      case "sm90ppc2" -> Sm90Gemm.Schedule.PINGPONG_CLUSTER;
      case "sm90ew" -> Sm90Gemm.Schedule.EPILOGUE_WARPS;
      case "sm90ew16" -> Sm90Gemm.Schedule.EPILOGUE_WARPS_16;
      case "sm90ew16s" -> Sm90Gemm.Schedule.EPILOGUE_WARPS_16_SPLIT;
      default -> throw new IllegalArgumentException("the fused LINEAR kernel (-Djclip.cuda.fusedLinear) must be off, or sm90, sm90c2, sm90pp,"
          + " sm90ppc2, sm90ew, sm90ew16 or sm90ew16s, each optionally followed by -linear or -all; not '" + v + "'");
    };
    return new Setting<>("fusedLinear", v, new FusedLinearChoice(schedule, scope));
  }

  /** gemm_sm90's launcher, loaded the first time a fused LINEAR runs; null before (or off Hopper). */
  private Sm90Gemm sm90;

  /**
   * Chooses, for graphs run from now on, whether LINEARs with an activation run as one gemm_sm90
   * kernel (where {@link #fusedLinearAvailable}) or as a cuBLAS GEMM and a bias_act pass.
   */
  public void fusedLinear(boolean on) {
    fusedLinear(on, Sm90Gemm.Schedule.COOPERATIVE, FusedScope.ACTIVATION);
  }

  /**
   * As {@link #fusedLinear(boolean)}, with gemm_sm90's {@code schedule}; with {@code all}, every
   * LINEAR and LINEAR_RESIDUAL (bias and residual in the epilogue) runs on it, not only those with
   * an activation.
   */
  public void fusedLinear(boolean on, Sm90Gemm.Schedule schedule, boolean all) {
    fusedLinear(on, schedule, all ? FusedScope.ALL : FusedScope.ACTIVATION);
  }

  /** As {@link #fusedLinear(boolean)}, with gemm_sm90's {@code schedule} for the LINEARs of {@code scope}. */
  public void fusedLinear(boolean on, Sm90Gemm.Schedule schedule, FusedScope scope) {
    fusedLinear = on ? new FusedLinearChoice(schedule, java.util.Objects.requireNonNull(scope)) : null;
    if (on && fusedLinearAvailable()) sm90(); // loaded now, not while a graph records
  }

  /** gemm_sm90's launcher, loaded on first use. */
  private Sm90Gemm sm90() {
    if (sm90 == null) {
      sm90 = new Sm90Gemm(device, stream.handle());
      sm90.splitLag(splitLag);
    }
    return sm90;
  }

  /**
   * The k steps by which the ew16s kernels' second consumer warpgroup starts behind the first
   * ({@link Sm90Gemm#splitLag(int)}; {@code -Djclip.cuda.ewLag=0..4}, default {@link
   * Sm90Gemm#DEFAULT_SPLIT_LAG}): used where {@code fusedLinear} or {@code lnFold} is {@code sm90ew16s}.
   */
  private volatile int splitLag = ewLagProperty().value();

  private static Setting<Integer> ewLagProperty() {
    String dflt = Integer.toString(Sm90Gemm.DEFAULT_SPLIT_LAG);
    @SuppressWarnings("unchecked")
    Map.Entry<String, Integer>[] lags = java.util.stream.IntStream.rangeClosed(0, Sm90Gemm.MAX_SPLIT_LAG)
        .mapToObj(i -> Map.entry(Integer.toString(i), i)).toArray(Map.Entry[]::new);
    return option("ewLag", "the ew16s kernels' lag in k steps", dflt, lags);
  }

  /** Sets, for launches queued from now on, the ew16s kernels' lag ({@link Sm90Gemm#splitLag(int)}: 0 to {@link Sm90Gemm#MAX_SPLIT_LAG}). */
  public void splitLag(int steps) {
    splitLag = Sm90Gemm.checkedSplitLag(steps);
    if (sm90 != null) sm90.splitLag(steps);
  }

  /** How many LINEARs have been queued as gemm_sm90 kernels (the run that records a CUDA graph counts; replays do not). */
  public long fusedLinearLaunches() {
    return fusedLinearLaunches;
  }

  private long fusedLinearLaunches;

  /** Whether this backend can run gemm_sm90: a 16-bit precision on compute capability 9.0. */
  public boolean fusedLinearAvailable() {
    return precision != Precision.FP32 && Sm90Gemm.available(device);
  }

  /**
   * The flash kernel compiled for 4 resident blocks an SM (at most 128 registers a thread; the same
   * bits): on by default since docs/gpu.md's run 6 (12% faster on the image tower's and the text
   * tower's attention); {@code -Djclip.cuda.flashBlocks=3} keeps the compiler's register count (3
   * blocks an SM) for backends built without saying.
   */
  private volatile boolean flashFourBlocks = flashBlocksProperty().value();

  private static Setting<Boolean> flashBlocksProperty() {
    return choice("flashBlocks", "the flash kernel's resident blocks", "4", "3", "4");
  }

  /**
   * The flash kernel in blocks fitted to sequences of up to 80 tokens (16 · ⌈n/16⌉ rows, one block
   * per batch and head: the text tower's 77 tokens, short prompts; the same bits): off by default
   * (runs 6-8: no faster as one-block kernels); {@code -Djclip.cuda.flashRows=fit} turns it on for
   * backends built without saying. With the pipelined kernel (the default since run 8) it takes
   * sequences of 65 to 80 tokens as one 80-row item ({@link CudaOps#flashAttentionPipelined(DeviceBuffer,
   * DeviceBuffer, int, int, int, boolean, Precision, boolean, boolean)}, session 13, not yet run;
   * shorter and longer ones keep 64-row items).
   */
  private volatile boolean flashFitRows = flashRowsProperty().value();

  private static Setting<Boolean> flashRowsProperty() {
    return choice("flashRows", "the flash kernel's rows a block", "fit", "64", "64");
  }

  /** Chooses, for graphs run from now on, flash blocks fitted to sequences of up to 80 tokens, or 64-row ones. */
  public void flashFitRows(boolean on) {
    flashFitRows = on;
  }

  /** Chooses, for graphs run from now on, the flash kernel compiled for 4 resident blocks an SM, or the default one. */
  public void flashFourBlocks(boolean on) {
    flashFourBlocks = on;
  }

  /** Chooses the flash kernel's V tile layout for graphs run from now on. */
  public void flashV(CudaOps.FlashV v) {
    flashV = java.util.Objects.requireNonNull(v);
  }


  /**
   * Chooses the LayerNorm kernel for graphs run from now on (a CUDA graph already recorded keeps
   * the kernel it captured).
   */
  public void layerNormKernel(CudaOps.LayerNormKernel kernel) {
    layerNormKernel = java.util.Objects.requireNonNull(kernel);
  }

  /** Chooses, for graphs run from now on, the vector glue kernels ({@link #vectorGlue}) or the plain ones. */
  public void vectorGlue(boolean on) {
    vectorGlue = on;
  }

  /**
   * Whether backends built without saying use the FlashAttention-2 style kernel in fp16/bf16: yes
   * since its first GPU run (docs/gpu.md: the same errors as the WMMA kernel, 7.5-10.7x faster);
   * {@code -Djclip.cuda.attention=wmma} keeps the first kernel.
   */
  public static boolean flashByDefault() {
    return attentionProperty().value();
  }

  private static Setting<Boolean> attentionProperty() {
    return choice("attention", "the CUDA attention kernel", "flash", "wmma", "flash");
  }

  /**
   * @param flashAttention in fp16/bf16, use the register-resident FlashAttention-2 style kernel
   *     (flash_attention.cu) instead of the first WMMA version (the default: {@link #flashByDefault})
   */
  public CudaBackend(CudaDevice device, Precision precision, boolean flashAttention) {
    this(device, precision, flashAttention, cublasLtByDefault());
  }

  /**
   * Whether backends built without saying use cuBLASLt: yes, unless {@code -Djclip.cuda.gemm=cublas}
   * asks for the cuBLAS path ({@code cublaslt}, the default, asks for cuBLASLt).
   */
  public static boolean cublasLtByDefault() {
    return gemmProperty().value();
  }

  private static Setting<Boolean> gemmProperty() {
    return choice("gemm", "the CUDA GEMM library", "cublaslt", "cublas", "cublaslt");
  }

  /** The kernel-choice properties' common prefix: {@code -Djclip.cuda.<name>}. */
  private static final String PROPERTY_PREFIX = "jclip.cuda.";

  /** A kernel-choice property as read: its name (after {@link #PROPERTY_PREFIX}), its setting, and the choice it selects. */
  private record Setting<V>(String name, String text, V value) {
    @Override
    public String toString() {
      return name + "=" + text;
    }
  }

  /**
   * The kernel choices a backend built now takes from the system properties (docs/gpu.md's
   * table), as "property=value" pairs ("jclip.cuda." left out), each read and checked as the
   * backend reads it: a bad value throws the backend's error. For reports: which kernels ran.
   */
  public static String kernelChoices() {
    return java.util.stream.Stream.of(attentionProperty(), flashBlocksProperty(), flashVProperty(), flashRowsProperty(), flashPipeProperty(),
        flashStageProperty(), flashOrderProperty(), flashLeanProperty(), anyHeadProperty(), layerNormProperty(), glueProperty(), actOrderProperty(), gemmProperty(), gemmTuneProperty(), fusedLinearProperty(),
        pooledAttentionProperty(), actChunkProperty(), lnFoldProperty(), lnStatsProperty(), ewLagProperty(), gemmStoreProperty(), inputCastProperty())
        .map(Setting::toString).collect(java.util.stream.Collectors.joining(", "));
  }

  /** Whether property {@code name} (default {@code fallback}) names {@code yes} rather than {@code no}; anything else is refused. */
  private static Setting<Boolean> choice(String name, String what, String yes, String no, String fallback) {
    return option(name, what, fallback, Map.entry(yes, true), Map.entry(no, false));
  }

  /**
   * The value of property {@code name} (default {@code fallback}) among {@code choices} (name,
   * value); any other setting is refused, naming {@code what}, the property and the names.
   */
  @SafeVarargs
  private static <V> Setting<V> option(String name, String what, String fallback, Map.Entry<String, V>... choices) {
    String key = PROPERTY_PREFIX + name;
    String v = System.getProperty(key, fallback);
    List<String> names = new java.util.ArrayList<>();
    for (Map.Entry<String, V> c : choices) {
      if (c.getKey().equals(v)) return new Setting<>(name, v, c.getValue());
      names.add(c.getKey());
    }
    String last = names.remove(names.size() - 1);
    throw new IllegalArgumentException(what + " (-D" + key + ") must be " + String.join(", ", names) + " or " + last + ", not '" + v + "'");
  }

  /**
   * @param cublasLt run each LINEAR without activation as one cuBLASLt matmul with the bias, and
   *     the residual its ADD adds, in the epilogue (the executor's graph is fused by {@link
   *     #prepare}); false: cuBLAS GEMMs with separate bias and ADD passes, the unfused graph
   */
  public CudaBackend(CudaDevice device, Precision precision, boolean flashAttention, boolean cublasLt) {
    this.flash = flashAttention && precision != Precision.FP32;
    this.device = device;
    this.precision = precision;
    this.s = CudaOps.suffix(precision);
    this.elem = precision == Precision.FP32 ? 4 : 2;
    this.stream = new CudaStream(device);
    CudaStream up = null, down = null;
    CudaOps o = null;
    Cublas b = null;
    CublasLt l = null;
    DeviceBuffer w = null;
    try {
      up = new CudaStream(device);
      down = new CudaStream(device);
      o = new CudaOps(device, stream.handle());
      b = new Cublas(device);
      w = device.allocate(BLAS_WORKSPACE);
      b.bind(stream, w);
      if (cublasLt) {
        l = new CublasLt(device);
        l.bind(stream, w); // one workspace: cuBLAS and cuBLASLt calls are ordered on the one stream
      }
    } catch (RuntimeException e) {
      // e.g. cuBLAS missing: free what was made, the device (the caller's) stays usable
      for (AutoCloseable c : new AutoCloseable[] {l, w, b, o, down, up, stream}) {
        try {
          if (c != null) c.close();
        } catch (Exception suppressed) {
          e.addSuppressed(suppressed);
        }
      }
      throw e;
    }
    this.uploads = up;
    this.downloads = down;
    this.ops = o;
    this.blas = b;
    this.lt = l;
    this.blasWorkspace = w;
    gemmTune(tunes(tuneFromProperty, precision));
    gemmSearch(tuneFromProperty == Tune.SEARCH);
  }

  public CudaDevice device() {
    return device;
  }

  @Override
  public String name() {
    return "cuda:" + device.ordinal() + (precision == Precision.FP32 ? "" : "/" + precision);
  }

  public Precision precision() {
    return precision;
  }

  /** Which library runs the LINEARs without activation: "cuBLASLt" (bias and residual in the epilogue) or "cuBLAS". */
  public String gemmLibrary() {
    return lt != null ? "cuBLASLt" : "cuBLAS";
  }

  /**
   * The problems cuBLASLt found no algorithm for, which ran on the cuBLAS path instead (empty
   * when every LINEAR ran as one cuBLASLt matmul, or on the cuBLAS backend).
   */
  public List<String> cublasLtUnsupported() {
    return lt == null ? List.of() : lt.unsupported();
  }

  /** How many cuBLASLt problems (shape, type, epilogue) this backend has planned: 0 on the cuBLAS path. */
  public int cublasLtPlans() {
    return lt == null ? 0 : lt.plans();
  }

  /**
   * With cuBLASLt, the graph with each residual ADD folded into the LINEAR it adds ({@link
   * Fusion#linearResidual}); with {@link #pooledAttention(boolean)} on, first the pooled towers'
   * last attention for the pooled rows alone ({@link Fusion#pooledAttention}); captured nodes are
   * kept. On the cuBLAS path without pooled attention, the graph as given.
   */
  @Override
  public Graph prepare(Graph graph, Set<String> keep) {
    Graph g = pooledAttention ? Fusion.pooledAttention(graph, keep) : graph;
    if (lt != null) g = Fusion.linearResidual(g, keep);
    // folded only where the statistics kernel takes the rows (widths up to 1024 in 16 bits): a
    // wider fold would only fall back, through a scratch buffer the size of the LayerNorm's output
    if (layerNormFold == null || !fusedLinearAvailable()) return g;
    g = Fusion.layerNormLinear(g, keep, d -> CudaOps.layerNormStatsFit(d, precision));
    // with lnStats=epilogue, the residual LINEARs whose output a fold reads write its statistics too (statsProducer)
    if (layerNormStatsInEpilogue) statsWanted.addAll(Fusion.layerNormStatsProducers(g));
    return g;
  }

  /**
   * The LayerNorm statistics of a folded LayerNorm computed by the residual LINEAR that writes its
   * input ({@code -Djclip.cuda.lnStats=epilogue}, with {@code lnFold}; {@link
   * Fusion#layerNormStatsProducers}): that LINEAR runs on gemm_sm90's epilogue-warps residual
   * kernel (the fold's schedule's, ew or ew16; ew when the fold is not on epilogue warps), whose
   * epilogue warps sum each stored row in parts
   * of 256 columns (mean and squared deviations, {@link Sm90Gemm#runWithLayerNormParts}); the fold
   * then combines a row's parts ({@link CudaOps#layerNormStatsCombine}, one small pass over 16
   * bytes a row or so) instead of reading x once more for them ({@link CudaOps#layerNormStats}).
   * The residual LINEARs so chosen run on that kernel whatever {@code fusedLinear} says (its
   * outputs are the cooperative kernel's bits with ew, within a second rounding of them with ew16,
   * and within 16-bit rounding of cuBLASLt's either way); where it
   * cannot take one (alignment), the fold reads x for its statistics as without. Off by default
   * until timed.
   */
  private volatile boolean layerNormStatsInEpilogue = lnStatsProperty().value();

  private static Setting<Boolean> lnStatsProperty() {
    return choice("lnStats", "where a folded LayerNorm's statistics come from", "epilogue", "pass", "pass");
  }

  /** Chooses, for graphs prepared from now on, whether folded LayerNorms take their statistics from the residual LINEAR's epilogue. */
  public void layerNormStatsInEpilogue(boolean on) {
    layerNormStatsInEpilogue = on;
  }

  /** The values whose writer (a LINEAR_RESIDUAL) also writes a folded LayerNorm's statistics' parts ({@link Fusion#layerNormStatsProducers}). */
  private final Set<Value> statsWanted = java.util.Collections.synchronizedSet(java.util.Collections.newSetFromMap(new java.util.WeakHashMap<>()));

  /** A value and the buffer (scratch slot 3) its writer wrote its LayerNorm statistics' parts into. */
  private record StatsParts(Value of, DeviceBuffer parts) {}

  /** The statistics' parts the last residual LINEAR that wrote any wrote ({@link #statsProducer}), or null. */
  private StatsParts statsParts;

  /** How many folded LayerNorms took their statistics from a residual LINEAR's epilogue. */
  public long layerNormEpilogueStats() {
    return layerNormEpilogueStats;
  }

  private long layerNormEpilogueStats;

  /**
   * A pooled tower's last attention for the pooled rows alone ({@link Fusion#pooledAttention}:
   * their gather, query LINEAR, every position's keys and values, and one ATTENTION_POOLED kernel
   * instead of in_proj and the attention of every row; ~1.5% of the image tower and ~2% of the
   * 77-token text tower by the run-7 profile): on by default since run 8 (the image tower 18.61 →
   * 18.45 ms, the texts 17.16 → 16.89); {@code -Djclip.cuda.pooledAttention=off} turns it off
   * for backends built without saying.
   */
  private volatile boolean pooledAttention = pooledAttentionProperty().value();

  private static Setting<Boolean> pooledAttentionProperty() {
    return choice("pooledAttention", "the pooled last attention", "on", "off", "on");
  }

  /** Chooses, for graphs prepared from now on (each executor prepares its graph once), whether the last attention is pooled. */
  public void pooledAttention(boolean on) {
    pooledAttention = on;
  }

  /**
   * A LINEAR with an activation (the MLP's c_fc) on the cuBLAS + bias_act path in row chunks whose
   * GEMM output is about this many bytes (0: the whole LINEAR at once), each chunk's GEMM followed by
   * its bias_act, so that bias_act reads the product back from L2 (50 MB on an H100 or H200)
   * instead of from DRAM: at batch 1024 the product is 315-323 MB, read and written back by the
   * separate pass (~0.17 ms a layer in run 7). Off by default until timed; {@code
   * -Djclip.cuda.actChunk=8|16|32} (MB) for backends built without saying. The same arithmetic per
   * row; cuBLAS may pick another kernel for the chunk's row count, so within 16-bit rounding of the
   * whole LINEAR. No effect where gemm_sm90 takes the LINEAR.
   */
  private volatile long activationChunkBytes = (long) actChunkProperty().value() << 20;

  private static Setting<Integer> actChunkProperty() {
    return option("actChunk", "c_fc's row chunks (MB of GEMM output)", "off", Map.entry("off", 0), Map.entry("8", 8), Map.entry("16", 16),
        Map.entry("32", 32));
  }

  /** Chooses, for graphs run from now on, c_fc in row chunks of about {@code megabytes} MB of GEMM output (0: whole). */
  public void activationChunk(int megabytes) {
    activationChunkBytes(((long) megabytes) << 20);
  }

  /** {@link #activationChunk} in bytes (tests: chunks smaller than a megabyte). */
  void activationChunkBytes(long bytes) {
    if (bytes < 0) throw new IllegalArgumentException("chunk of " + bytes + " bytes");
    activationChunkBytes = bytes;
  }

  /** How many row chunks LINEARs with an activation ran in, beyond one a LINEAR ({@link #activationChunk}; for tests). */
  long activationChunksLaunched() {
    return activationChunksLaunched;
  }

  private long activationChunksLaunched;

  /**
   * Rows a chunk for {@code m} rows of {@code rowBytes} bytes of output in chunks of about {@code
   * chunkBytes} (0: all {@code m}): as many chunks as that size asks for, balanced, each a multiple
   * of 128 rows (whole GEMM tiles, 16-byte aligned views) but the last.
   */
  static long chunkRows(long m, long rowBytes, long chunkBytes) {
    if (chunkBytes <= 0 || m * rowBytes <= chunkBytes) return m;
    long chunks = (m * rowBytes + chunkBytes - 1) / chunkBytes;
    long rows = (m + chunks - 1) / chunks;
    rows = (rows + 127) / 128 * 128;
    return Math.min(rows, m);
  }

  /**
   * Each transformer block's ln_1 and ln_2 folded into the LINEAR it feeds (in_proj, c_fc; {@link
   * Fusion#layerNormLinear}): a statistics pass reading x (nothing written but 8 bytes a row) and
   * one gemm_ln_sm90 kernel of this schedule on x, gamma folded into the weight and beta into the
   * bias, instead of a LayerNorm pass writing the normalised rows and a GEMM reading them back
   * (run 7: the 24 LayerNorms 1.62 ms of the image tower, 1.75 of the 77-token texts). Hopper,
   * fp16/bf16 only; off by default until timed; {@code -Djclip.cuda.lnFold=sm90|sm90pp|sm90ew|sm90ew16|sm90ew16s} turns it
   * on for backends built without saying. Null: off. Within 16-bit rounding of the unfolded
   * LayerNorm and LINEAR (the weight is rounded once as W γ; the normalised rows are never rounded).
   */
  private volatile Sm90Gemm.Schedule layerNormFold = lnFoldProperty().value();

  private static Setting<Sm90Gemm.Schedule> lnFoldProperty() {
    Setting<String> v = option("lnFold", "the LayerNorm folded into its LINEAR", "off", Map.entry("off", "off"), Map.entry("sm90", "sm90"),
        Map.entry("sm90pp", "sm90pp"), Map.entry("sm90ew", "sm90ew"), Map.entry("sm90ew16", "sm90ew16"), Map.entry("sm90ew16s", "sm90ew16s"));
    Sm90Gemm.Schedule schedule = switch (v.value()) {
      case "sm90" -> Sm90Gemm.Schedule.COOPERATIVE;
      case "sm90pp" -> Sm90Gemm.Schedule.PINGPONG;
      case "sm90ew" -> Sm90Gemm.Schedule.EPILOGUE_WARPS;
      case "sm90ew16" -> Sm90Gemm.Schedule.EPILOGUE_WARPS_16;
      case "sm90ew16s" -> Sm90Gemm.Schedule.EPILOGUE_WARPS_16_SPLIT;
      default -> null;
    };
    return new Setting<>(v.name(), v.text(), schedule);
  }

  /**
   * Folds, in graphs prepared from now on, each block's LayerNorms into the LINEARs they feed, run
   * as gemm_ln_sm90 kernels of {@code schedule} (its one-block form; null: no folding). Only where
   * gemm_sm90 can run ({@link #fusedLinearAvailable}).
   */
  public void layerNormFold(Sm90Gemm.Schedule schedule) {
    layerNormFold = schedule;
    if (schedule != null && fusedLinearAvailable()) sm90(); // loaded now, not while a graph records
  }

  /**
   * How gemm_sm90's kernels (the fused LINEARs, {@link #fusedLinear}, and the folded LayerNorms,
   * {@link #layerNormFold}) write their outputs: from the accumulators' registers (the default), or
   * staged in shared memory and written by the TMA unit ({@code -Djclip.cuda.gemmStore=tma}: the
   * {@code *_tma_*} kernels, the same values; one-block schedules, launches without a residual
   * and 16-byte aligned outputs only, {@link Sm90Gemm#tmaStore}; the others keep the register
   * epilogue). Opt-in until timed.
   */
  private volatile boolean gemmTmaStore = gemmStoreProperty().value();

  private static Setting<Boolean> gemmStoreProperty() {
    return choice("gemmStore", "gemm_sm90's output stores", "tma", "registers", "registers");
  }

  /** Chooses, for graphs run from now on, gemm_sm90's TMA-store kernels where they apply, or its register epilogue. */
  public void gemmTmaStore(boolean on) {
    gemmTmaStore = on;
  }

  /** How many gemm_sm90 launches took a TMA-store kernel (the run that records a CUDA graph counts; replays do not). */
  public long gemmTmaStoreLaunches() {
    return sm90 == null ? 0 : sm90.tmaLaunches();
  }

  /**
   * How many gemm_sm90 launches took an epilogue-warps kernel ({@code fusedLinear=sm90ew[16]} or
   * {@code lnFold=sm90ew[16]}; those whose C or residual is not 16-byte aligned run the cooperative one).
   */
  public long epilogueWarpsLaunches() {
    return sm90 == null ? 0 : sm90.epilogueWarpsLaunches();
  }

  /** How many of {@link #epilogueWarpsLaunches} took an ew16 or ew16s kernel (the tile staged in 16 bits). */
  public long epilogueWarps16Launches() {
    return sm90 == null ? 0 : sm90.epilogueWarps16Launches();
  }

  /** How many of {@link #epilogueWarpsLaunches} took an ew16s kernel (the consumer warpgroups out of step). */
  public long epilogueWarpsSplitLaunches() {
    return sm90 == null ? 0 : sm90.splitLaunches();
  }

  @Override
  public boolean supports(Op op) {
    return op != Op.INPUT;
  }

  @Override
  public String refuses(Node n) {
    String why = headSizeRefusal(n);
    if (why == null || !anyHead) return why;
    int hd = headSize(n);
    return hd <= CudaOps.ANY_MAX_HEAD ? null : "heads of " + hd + ": jclip's CUDA kernels take heads of up to " + CudaOps.ANY_MAX_HEAD + "; run this model on the CPU (--device cpu)";
  }

  /** The head size of an ATTENTION (qkv [B, N, 3D]) or ATTENTION_POOLED (q [B, D]) node: D / heads. */
  private static int headSize(Node n) {
    int d = n.op() == Op.ATTENTION ? n.input(0).dim(2) / 3 : n.input(0).dim(1);
    return d / n.intAttr("heads");
  }

  /**
   * Why the CUDA kernels cannot run an attention node: their head size is 64 (every OpenAI model's),
   * and open_clip's ViT-H-14, ViT-g-14 and ViT-bigG-14 have heads of 80, 88 and 104. Null when they can.
   */
  public static String headSizeRefusal(Node n) {
    if (n.op() != Op.ATTENTION && n.op() != Op.ATTENTION_POOLED) return null;
    int heads = n.intAttr("heads"), hd = headSize(n);
    if (hd == 64) return null;
    return heads + " heads of " + hd + " (width " + heads * hd + "): the CUDA attention kernels take heads of 64, as in every OpenAI CLIP model; run this model"
        + " on the CPU (--device cpu), or try -Djclip.cuda.anyHead=on (plain kernels for other heads, not yet run on a GPU)";
  }

  /** One compute stream: executors take turns queueing their work on it. */
  @Override
  public boolean oneRunAtATime() {
    return true;
  }

  /**
   * 256. On the H200 (docs/gpu.md, runs 3 and 8; ViT-B/32, resident, CUDA graphs), batches of 32
   * ran the image tower at 38,165 images/s in fp16 and those of 256 at 58,138 (1024: 56,728), the
   * 77-token texts at 42,497 and 68,666 texts/s (1024: 69,284); fp32 3,991 and 4,629 images/s.
   * A batch of 32 leaves the GEMMs too few rows (1,600 tokens for ViT-B/32) and pays each of its
   * ~90 kernels' ramp and tail. {@code Clip} halves the batch when one does not fit in the GPU's
   * memory.
   */
  @Override
  public int defaultBatch() {
    return 256;
  }

  @Override
  public int elementBytes(TensorSpec spec) {
    return spec.dtype() == DType.I32 ? 4 : elem;
  }

  @Override
  public Buffer allocate(long bytes) {
    return device.allocate(bytes);
  }

  /**
   * One activation arena per executor: a single device allocation, each slot a 256-byte aligned
   * view of it. The arena is freed when the last of its views is closed.
   */
  @Override
  public List<Buffer> allocateAll(long[] bytes) {
    if (bytes.length == 0) return List.of();
    long total = 0;
    long[] offsets = new long[bytes.length], sizes = new long[bytes.length];
    for (int i = 0; i < bytes.length; i++) {
      offsets[i] = total;
      sizes[i] = Math.max(bytes[i], 1);
      total += (sizes[i] + 255) & ~255L;
    }
    return List.copyOf(device.allocate(total).split(offsets, sizes));
  }

  /**
   * Queues {@code host}'s upload into {@code dst} and returns without waiting for it: the array is
   * copied into the pinned staging of {@code dst} (after that staging's previous upload has left
   * it), copied to the device on the upload stream, and the compute stream waits for that copy
   * before its next work (in 16-bit modes: the cast from the input's own fp32 device staging, or,
   * with {@link #hostInputCast(boolean)}, the values rounded on the host into the pinned staging
   * and copied into {@code dst} as they are).
   * Token ids are checked against the embedding table on the host first.
   */
  @Override
  public void write(Buffer dst, TensorSpec spec, Object host) {
    DeviceBuffer d = (DeviceBuffer) dst;
    InputStaging st = staging(d);
    if (spec.dtype() == DType.I32) {
      int[] ids = (int[]) host;
      TokenTable table = tokenReaders.get(dst);
      if (table != null) table.check(ids, spec.dim(-1));
      else uncheckedIds.put(dst, ids.clone()); // checked when the TOKEN_EMBED first runs; the caller may reuse ids
      st.upload(ids, d);
    } else if (precision == Precision.FP32) {
      st.upload((float[]) host, d, null);
    } else if (hostInputCast) {
      st.uploadRounded((float[]) host, d, precision);
    } else {
      st.upload((float[]) host, d, precision);
    }
  }

  /** The staging of input buffer {@code d}, made on its first write and freed when {@code d} is closed (or the backend). */
  private InputStaging staging(DeviceBuffer d) {
    InputStaging st = stagings.get(d);
    if (st == null) {
      st = new InputStaging();
      stagings.put(d, st);
      InputStaging own = st;
      d.onClose(() -> {
        stagings.remove(d);
        own.close();
      });
    }
    return st;
  }

  /**
   * What {@link #write} keeps per input buffer, so that two executors' inputs never share a
   * staging: a pinned host buffer with the event of its last upload, and in 16-bit modes the fp32
   * device buffer that the upload lands in and the cast reads, with the event of that cast. (Not
   * the shared scratch buffers: another executor's queued work may still read those when this
   * upload, on its own stream, lands.)
   */
  private final class InputStaging implements AutoCloseable {
    private final CudaEvent uploaded = new CudaEvent(device, "input upload");
    private final CudaEvent cast;
    private PinnedBuffer host;
    private DeviceBuffer fp32;
    private boolean closed;

    InputStaging() {
      CudaEvent c = null;
      try {
        c = new CudaEvent(device, "input cast");
      } finally {
        if (c == null) uploaded.close();
      }
      cast = c;
    }

    void upload(int[] ids, DeviceBuffer dst) {
      long bytes = 4L * ids.length;
      pinned(bytes).put(ids);
      copy(dst, bytes);
    }

    /** @param castTo null: {@code dst} holds fp32; else the 16-bit format {@code dst} holds */
    void upload(float[] values, DeviceBuffer dst, Precision castTo) {
      long bytes = 4L * values.length;
      pinned(bytes).put(values);
      if (castTo == null) {
        copy(dst, bytes);
        return;
      }
      if (fp32 == null || fp32.bytes() < bytes) {
        if (fp32 != null) {
          cast.synchronize(); // the last cast from it has run
          fp32.close();
          fp32 = null;
        }
        fp32 = device.allocate(bytes);
      }
      uploads.waitFor(cast); // the previous cast has read the old values
      copy(fp32, bytes);
      ops.cast(dst, castTo, fp32, Precision.FP32, values.length);
      cast.record(stream);
    }

    /**
     * {@code values} rounded to {@code half} on the host into the pinned buffer, and uploaded into
     * {@code dst} (16-bit) as they are; an fp32 device staging left from the device cast is freed.
     */
    void uploadRounded(float[] values, DeviceBuffer dst, Precision half) {
      long bytes = 2L * values.length;
      pinned(bytes).putHalf(values, half);
      if (fp32 != null) { // the device cast's staging, unused from now on
        cast.synchronize(); // its last cast, which writes dst too, has run
        fp32.close();
        fp32 = null;
      }
      copy(dst, bytes);
    }

    /** The pinned buffer, free again (its last upload done) and at least {@code bytes} long. */
    private PinnedBuffer pinned(long bytes) {
      ensureOpen();
      uploaded.synchronize();
      if (host == null || host.bytes() < bytes) {
        if (host != null) host.close();
        host = null;
        host = PinnedBuffer.allocate(device, bytes);
      }
      return host;
    }

    /** Uploads the pinned buffer's first {@code bytes} into {@code target} and orders the compute stream after it. */
    private void copy(DeviceBuffer target, long bytes) {
      target.copyFromHostAsync(host, bytes, uploads);
      uploaded.record(uploads);
      stream.waitFor(uploaded);
    }

    private void ensureOpen() {
      if (closed) throw new IllegalStateException("input staging is closed");
    }

    /** Waits for the staging's pending copy and cast, then frees it. */
    @Override
    public void close() {
      if (closed) return;
      closed = true;
      PinnedBuffer h = host;
      DeviceBuffer f = fp32;
      host = null;
      fp32 = null;
      try (uploaded; cast; h; f) { // closed whatever the waits throw
        uploaded.synchronize();
        cast.synchronize();
      }
    }
  }

  /** Reads after all work queued so far. */
  @Override
  public float[] read(Buffer src, TensorSpec spec) {
    stream.synchronize();
    return download((DeviceBuffer) src, spec);
  }

  /**
   * Reads after the work marked by {@code written} only: the copy runs on the download stream, so
   * it does not wait behind work queued on the compute stream since (the next batch).
   */
  @Override
  public float[] read(Buffer src, TensorSpec spec, Fence written) {
    written.await();
    return download((DeviceBuffer) src, spec);
  }

  /**
   * Copies a value whose writers have finished into the pinned output staging, then into a new
   * array; 16-bit values are widened on the host (exactly, as the device's cast would).
   */
  private float[] download(DeviceBuffer src, TensorSpec spec) {
    int n = Math.toIntExact(spec.elements());
    int bytesPer = elementBytes(spec);
    long bytes = (long) bytesPer * n;
    if (output == null || output.bytes() < bytes) {
      if (output != null) output.close(); // every download waits for its copy: nothing uses it now
      output = null;
      output = PinnedBuffer.allocate(device, Math.max(bytes, 1L << 20));
    }
    src.copyToHostAsync(output, bytes, downloads);
    downloads.synchronize();
    float[] out = new float[n];
    if (bytesPer == 4) {
      output.get(out);
    } else {
      short[] h = new short[n];
      output.get(h);
      for (int i = 0; i < n; i++) out[i] = precision == Precision.FP16 ? HalfFloats.fromFp16(h[i]) : HalfFloats.fromBf16(h[i]);
    }
    return out;
  }

  @Override
  public void synchronize() {
    stream.synchronize();
  }

  /** A CUDA event recorded on the compute stream. */
  @Override
  public Fence newFence() {
    CudaEvent event = new CudaEvent(device, "executor run");
    return new Fence() {
      @Override
      public void mark() {
        event.record(stream);
      }

      @Override
      public void await() {
        event.synchronize();
      }

      @Override
      public void close() {
        event.close();
      }
    };
  }

  /**
   * Captures {@code body}'s launches on this backend's stream into a CUDA graph. Everything the
   * body needs must already exist (the executor records on its second run, after the first has
   * uploaded the parameters and sized the scratch buffers).
   */
  @Override
  public Recording record(Runnable body) {
    return CudaGraph.capture(device, stream, body);
  }

  /** The fp32 device copy of a parameter (bias, LayerNorm weight, embedding), uploaded once. */
  private DeviceBuffer param(Node n, String role) {
    Tensor t = n.param(role);
    if (t == null) return null;
    return params.computeIfAbsent(t, k -> device.allocate(4L * k.numel()).upload(k.toFloatArray(), stream));
  }

  /** A GEMM operand weight in the compute precision, uploaded once. */
  private DeviceBuffer gemmWeight(Node n) {
    return computeTypeParam(n, "weight");
  }

  /**
   * Parameter {@code role} in the compute precision (fp32, or converted once to fp16/bf16), or
   * null when the node has none: GEMM weights, and the biases cuBLASLt's epilogue reads in the
   * output's type.
   */
  private DeviceBuffer computeTypeParam(Node n, String role) {
    if (precision == Precision.FP32) return param(n, role);
    Tensor t = n.param(role);
    if (t == null) return null;
    return gemmWeights.computeIfAbsent(t, k -> {
      float[] f = k.toFloatArray();
      short[] h = new short[f.length];
      for (int i = 0; i < f.length; i++) h[i] = precision == Precision.FP16 ? HalfFloats.fp16(f[i]) : HalfFloats.bf16(f[i]);
      return device.allocate(2L * h.length).upload(h, stream);
    });
  }

  /**
   * {@code y = x · Wᵀ + bias (+ residual)} of a LINEAR without activation or a LINEAR_RESIDUAL as
   * one cuBLASLt matmul; false (nothing queued) on the cuBLAS path or when cuBLASLt has no
   * algorithm for the problem ({@link #cublasLtUnsupported}).
   */
  private boolean ltLinear(Node n, DeviceBuffer x, DeviceBuffer residual, DeviceBuffer y, long m, int cols, int k) {
    if (lt == null) return false;
    return lt.linear(Math.toIntExact(m), cols, k, CublasLt.dataType(precision), x, gemmWeight(n), computeTypeParam(n, "bias"), residual, y);
  }

  /**
   * A LINEAR: on gemm_sm90 where it is asked for and takes the problem; else without activation
   * one cuBLASLt matmul (bias in the epilogue); else a cuBLAS GEMM and the bias + activation pass
   * (QuickGELU and erf-GELU are no cuBLASLt epilogue: its GELU is the tanh form), in row chunks
   * where {@link #activationChunk} asks for them.
   */
  private void linear(Node n, DeviceBuffer x, DeviceBuffer y, long m, int cols, int k) {
    Activation act = n.enumAttr("activation", (Activation) null);
    if (fusedLinear(n, x, null, y, m, cols, k, actCode(act))) return;
    if (act == null && ltLinear(n, x, null, y, m, cols, k)) return;
    DeviceBuffer bias = param(n, "bias");
    long rows = act == null ? m : chunkRows(m, (long) elem * cols, activationChunkBytes);
    for (long r0 = 0; r0 < m; r0 += rows) {
      long r = Math.min(rows, m - r0);
      DeviceBuffer xc = r == m ? x : x.view(r0 * k * elem, r * k * elem), yc = r == m ? y : y.view(r0 * cols * elem, r * cols * elem);
      gemmNT(r, cols, k, xc, gemmWeight(n), yc);
      if (bias != null || act != null) ops.biasAct(yc, bias, r, cols, actCode(act), precision, vectorGlue, actReversed);
      if (r0 > 0) activationChunksLaunched++;
    }
  }

  /**
   * A LAYER_NORM_LINEAR ({@link #layerNormFold}): each row's statistics ({@link
   * CudaOps#layerNormStats}, one read of x), then one gemm_ln_sm90 kernel on x with gamma folded into
   * the weight and beta into the bias ({@link #folded}); where either kernel cannot take the
   * problem, the LayerNorm into scratch and the LINEAR as {@link #linear} runs it.
   */
  private void layerNormLinear(Node n, DeviceBuffer x, DeviceBuffer y, long m, int cols, int k) {
    float eps = n.floatAttr("eps");
    Sm90Gemm.Schedule schedule = layerNormFold;
    // the weights are folded and uploaded only where both kernels take the problem (x stands in
    // for the folded weight, allocated 16-byte aligned, in the check)
    if (schedule != null && fusedLinearAvailable() && m <= Integer.MAX_VALUE && Sm90Gemm.unsupported(precision, cols, k, x, x, null, null, y) == null
        && CudaOps.layerNormStatsFit(k, precision, x)) {
      Folded f = folded(n);
      DeviceBuffer stats = scratch(2, 8L * m);
      StatsParts parts = statsParts;
      if (parts != null && parts.of() == n.input(0)) { // written by the residual LINEAR that wrote x (statsProducer)
        ops.layerNormStatsCombine(stats, parts.parts(), m, k, eps);
        layerNormEpilogueStats++;
      } else if (!ops.layerNormStats(stats, x, m, k, eps, precision)) {
        throw new IllegalStateException("layernorm_stats refused " + m + "x" + k);
      }
      sm90().runLayerNormFolded(precision, (int) m, cols, k, x, f.weight(), f.bias(), actCode(n.enumAttr("activation", (Activation) null)), y,
          schedule, stats, f.colsum(), gemmTmaStore);
      layerNormFoldLaunches++;
      return;
    }
    DeviceBuffer normed = scratch(1, (long) elem * m * k);
    ops.layerNorm(normed, null, x, null, param(n, "ln_weight"), param(n, "ln_bias"), m, k, eps, precision, layerNormKernel);
    linear(n, normed, y, m, cols, k);
  }

  /** A LINEAR's weight with a LayerNorm's gamma and beta folded in ({@link #folded}). */
  private record Folded(DeviceBuffer weight, DeviceBuffer bias, DeviceBuffer colsum) {}

  /** The folded parameters by what they are made of (the tensors, by identity), uploaded once. */
  private final Map<FoldKey, Folded> folded = new java.util.HashMap<>();

  /** A LINEAR's weight and bias and its LayerNorm's gamma and beta, compared by identity. */
  private record FoldKey(Tensor weight, Tensor bias, Tensor gamma, Tensor beta) {
    @Override
    public boolean equals(Object o) {
      return o instanceof FoldKey f && weight == f.weight && bias == f.bias && gamma == f.gamma && beta == f.beta;
    }

    @Override
    public int hashCode() {
      return java.util.Arrays.hashCode(new int[] {System.identityHashCode(weight), System.identityHashCode(bias), System.identityHashCode(gamma),
        System.identityHashCode(beta)});
    }
  }

  /**
   * The folded parameters of a LAYER_NORM_LINEAR, made and uploaded once: W' = W γ (column t of
   * the weight times gamma[t], rounded once to the compute precision), colsum[j] = the sum of row j
   * of W' as rounded, b'[j] = b[j] + Σ_t W[j, t] β[t] (fp32). Then LayerNorm(x) · Wᵀ + b =
   * rstd · (x · W'ᵀ − mean · colsum) + b' for each row's mean and rstd.
   */
  private Folded folded(Node n) {
    Tensor wt = n.param("weight"), gt = n.param("ln_weight");
    return folded.computeIfAbsent(new FoldKey(wt, n.param("bias"), gt, n.param("ln_bias")), key -> {
      float[] w = wt.toFloatArray(), gamma = gt.toFloatArray(), beta = n.param("ln_bias").toFloatArray();
      float[] bias = n.param("bias") == null ? null : n.param("bias").toFloatArray();
      int cols = (int) wt.dim(0), d = (int) wt.dim(1);
      short[] wq = new short[w.length];
      float[] colsum = new float[cols], b2 = new float[cols];
      for (int j = 0; j < cols; j++) {
        double cs = 0, bb = bias == null ? 0 : bias[j];
        for (int t = 0; t < d; t++) {
          float v = (float) ((double) w[j * d + t] * gamma[t]);
          short h = precision == Precision.FP16 ? HalfFloats.fp16(v) : HalfFloats.bf16(v);
          wq[j * d + t] = h;
          cs += precision == Precision.FP16 ? HalfFloats.fromFp16(h) : HalfFloats.fromBf16(h);
          bb += (double) w[j * d + t] * beta[t];
        }
        colsum[j] = (float) cs;
        b2[j] = (float) bb;
      }
      List<DeviceBuffer> made = new java.util.ArrayList<>(3);
      try {
        made.add(device.allocate(2L * wq.length).upload(wq, stream));
        made.add(device.allocate(4L * cols).upload(b2, stream));
        made.add(device.allocate(4L * cols).upload(colsum, stream));
        return new Folded(made.get(0), made.get(1), made.get(2));
      } catch (RuntimeException e) { // out of memory: nothing kept
        for (DeviceBuffer b : made) b.close();
        throw e;
      }
    });
  }

  /**
   * How many LAYER_NORM_LINEARs have been queued as a statistics pass and one gemm_ln_sm90 kernel
   * (the run that records a CUDA graph queues its nodes again and counts; replays do not).
   */
  public long layerNormFoldLaunches() {
    return layerNormFoldLaunches;
  }

  private long layerNormFoldLaunches;

  /**
   * A LINEAR_RESIDUAL whose output a folded LayerNorm reads ({@link #layerNormStatsInEpilogue}) as
   * gemm_sm90's statistics-writing residual kernel, the parts into scratch slot 3; false (nothing
   * queued) for the others, or where the kernel cannot take the problem.
   */
  private boolean statsProducer(Node n, DeviceBuffer x, DeviceBuffer residual, DeviceBuffer y, long m, int cols, int k) {
    if (!statsWanted.contains(n.output()) || !fusedLinearAvailable() || m > Integer.MAX_VALUE) return false;
    statsParts = null; // slot 3 may be reallocated below, and may not be written
    DeviceBuffer w = gemmWeight(n), bias = param(n, "bias");
    if (Sm90Gemm.unsupported(precision, cols, k, x, w, bias, residual, y) != null) return false;
    DeviceBuffer part = scratch(3, 8L * m * CudaOps.statsParts(cols));
    // the fold's epilogue-warps schedule where it has one (the ew16 kernels' rounding), else EPILOGUE_WARPS
    Sm90Gemm.Schedule fold = layerNormFold, schedule = fold != null && fold.epilogueWarps() ? fold : Sm90Gemm.Schedule.EPILOGUE_WARPS;
    if (!sm90().runWithLayerNormParts(precision, (int) m, cols, k, x, w, bias, residual, 0, y, part, schedule)) return false;
    statsParts = new StatsParts(n.output(), part);
    return true;
  }

  /**
   * {@code y = act(x · Wᵀ + bias) (+ residual)} as one gemm_sm90 kernel; false (nothing queued)
   * when fused LINEARs are off (for LINEARs without activation: unless every LINEAR is asked for),
   * unavailable here, or the problem does not fit the kernel.
   */
  private boolean fusedLinear(Node n, DeviceBuffer x, DeviceBuffer residual, DeviceBuffer y, long m, int cols, int k, int act) {
    FusedLinearChoice choice = fusedLinear;
    if (choice == null || !fusedLinearAvailable() || m > Integer.MAX_VALUE) return false;
    boolean inScope = switch (choice.scope()) {
      case ACTIVATION -> act != 0;
      case LINEAR -> residual == null;
      case ALL -> true;
    };
    if (!inScope) return false;
    DeviceBuffer w = gemmWeight(n), bias = param(n, "bias");
    if (Sm90Gemm.unsupported(precision, cols, k, x, w, bias, residual, y) != null) return false;
    sm90().run(precision, (int) m, cols, k, x, w, bias, residual, act, y, choice.schedule(), gemmTmaStore);
    fusedLinearLaunches++;
    return true;
  }

  /** Scratch buffer {@code slot}, grown to at least {@code bytes}. */
  private DeviceBuffer scratch(int slot, long bytes) {
    if (scratch[slot] == null || scratch[slot].bytes() < bytes) {
      // Recorded CUDA graphs of other executors may hold the old address: keep it until close.
      if (scratch[slot] != null) retired.add(scratch[slot]);
      scratch[slot] = device.allocate(bytes);
    }
    return scratch[slot];
  }

  /**
   * {@code C[M,N] = A[M,K] · B[N,K]ᵀ} in the compute precision: cuBLAS, or when tuning ({@link
   * #gemmTune}) a tuned cuBLASLt matmul (cuBLAS takes no algorithm choice): c_fc before its
   * bias_act pass, the patch embedding (the ResNets' batched convolution GEMMs stay on cuBLAS).
   */
  private void gemmNT(long m, int n, int k, DeviceBuffer a, DeviceBuffer b, DeviceBuffer c) {
    int rows = Math.toIntExact(m);
    if (gemmTuned() && lt.linear(rows, n, k, CublasLt.dataType(precision), a, b, null, null, c)) return;
    if (precision == Precision.FP32) blas.sgemmNT(rows, n, k, 1f, a, b, 0f, c);
    else blas.gemmExNT(rows, n, k, cudaType(), a, b, c);
  }

  /** {@code C[M,N] = A[M,K] · B[K,N]} in the compute precision. */
  private void gemmNN(long m, int n, int k, DeviceBuffer a, DeviceBuffer b, DeviceBuffer c) {
    int rows = Math.toIntExact(m);
    if (precision == Precision.FP32) blas.sgemmNN(rows, n, k, a, b, c);
    else blas.gemmExNN(rows, n, k, cudaType(), a, b, c);
  }

  private int cudaType() {
    return precision == Precision.FP16 ? CUDA_R_16F : CUDA_R_16BF;
  }

  @Override
  public void execute(Node n, List<Buffer> inputs, Buffer output) {
    if (profile == null) {
      executeNode(n, inputs, output);
      return;
    }
    profile.begin(KernelProfile.label(n.op().toString(), n.name()), stream);
    executeNode(n, inputs, output);
    profile.end(stream);
  }

  /**
   * Times every node this backend runs from now on into {@code p} (null: stop). Only for executors
   * that run node by node: events between nodes cannot be recorded into a CUDA graph replay.
   */
  public void profile(KernelProfile p) {
    this.profile = p;
  }

  private void executeNode(Node n, List<Buffer> inputs, Buffer output) {
    DeviceBuffer y = (DeviceBuffer) output;
    DeviceBuffer x = (DeviceBuffer) inputs.get(0);
    TensorSpec in = n.input(0).spec(), out = n.output().spec();
    switch (n.op()) {
      case LINEAR -> linear(n, x, y, in.rows(), out.dim(-1), in.dim(-1));
      case LAYER_NORM_LINEAR -> layerNormLinear(n, x, y, in.rows(), out.dim(-1), in.dim(-1));
      case LINEAR_RESIDUAL -> {
        DeviceBuffer residual = (DeviceBuffer) inputs.get(1);
        if (statsProducer(n, x, residual, y, in.rows(), out.dim(-1), in.dim(-1))) return;
        if (fusedLinear(n, x, residual, y, in.rows(), out.dim(-1), in.dim(-1), 0)) return;
        if (ltLinear(n, x, residual, y, in.rows(), out.dim(-1), in.dim(-1))) return;
        // the cuBLAS path: LINEAR's GEMM and bias pass, then the ADD in place (elementwise)
        int k = in.dim(-1), cols = out.dim(-1);
        long m = in.rows();
        gemmNT(m, cols, k, x, gemmWeight(n), y);
        DeviceBuffer bias = param(n, "bias");
        if (bias != null) ops.biasAct(y, bias, m, cols, 0, precision, vectorGlue, actReversed);
        ops.glue("add_" + s, out.elements(), y, residual, y, out.elements(), 0);
      }
      case MATMUL -> gemmNN(in.rows(), out.dim(-1), in.dim(-1), x, gemmWeight(n), y);
      case LAYER_NORM -> ops.layerNorm(y, null, x, null, param(n, "weight"), param(n, "bias"), in.rows(), in.dim(-1), n.floatAttr("eps"),
          precision, layerNormKernel);
      case ADD -> ops.glue("add_" + s, out.elements(), y, x, inputs.get(1), out.elements(), n.boolAttr("relu") ? 1 : 0);
      case ATTENTION -> {
        int heads = n.intAttr("heads"), hd = headSize(n);
        if (hd != 64) { // (refused unless anyHead: see refuses)
          ops.attentionAnyHead(y, x, in.dim(0), in.dim(1), heads, hd, n.boolAttr("causal"), precision);
          return;
        }
        boolean flash = this.flash && CudaOps.flashAligned(y, x); // (arena buffers always are)
        if (flash && flashPipelined) ops.flashAttentionPipelined(y, x, in.dim(0), in.dim(1), n.intAttr("heads"), n.boolAttr("causal"), precision,
            flashStaged, flashFitRows, flashReversed, flashStaged ? flashLean : CudaOps.FlashLean.OFF);
        else if (flash) ops.flashAttention(y, x, in.dim(0), in.dim(1), n.intAttr("heads"), n.boolAttr("causal"), precision, flashV, flashFourBlocks,
            flashFitRows, flashStaged);
        else ops.attention(y, x, in.dim(0), in.dim(1), n.intAttr("heads"), n.boolAttr("causal"), precision);
      }
      case QUICK_GELU, GELU -> {
        copy(y, x, (long) elem * in.elements());
        ops.biasAct(y, null, in.rows(), in.dim(-1), n.op() == Op.GELU ? 2 : 1, precision, vectorGlue, actReversed);
      }
      case PATCH_EMBED -> {
        int b = in.dim(0), c = in.dim(1), h = in.dim(2), w = in.dim(3), p = n.intAttr("patch");
        int cells = out.dim(1), d = out.dim(2), k = c * p * p;
        long rows = (long) b * cells;
        DeviceBuffer patches = scratch(1, (long) elem * rows * k);
        ops.patchify(patches, x, b, c, h, w, p, precision, vectorGlue);
        gemmNT(rows, d, k, patches, gemmWeight(n), y);
      }
      case CLASS_POS_EMBED -> ops.classPosEmbed(y, x, param(n, "class"), param(n, "positional"), out.dim(0), out.dim(1), out.dim(2),
          precision, vectorGlue);
      case TOKEN_EMBED -> {
        TokenTable table = new TokenTable(n.name(), n.param("token").dim(0));
        int[] ids = uncheckedIds.remove(x);
        if (ids != null) table.check(ids, in.dim(-1));
        tokenReaders.put(x, table);
        ops.tokenEmbed(y, x, param(n, "token"), param(n, "positional"), out.dim(0), out.dim(1), out.dim(2), precision, vectorGlue);
      }
      case TAKE_TOKEN -> ops.glue("take_token_" + s, out.elements(), y, x, in.dim(0), in.dim(1), in.dim(2), n.intAttr("index"));
      case EOT_GATHER -> ops.glue("eot_gather_" + s, out.elements(), y, x, inputs.get(1), in.dim(0), in.dim(1), in.dim(2));
      case ATTENTION_POOLED -> {
        TensorSpec kv = n.input(1).spec();
        boolean eot = inputs.size() > 2;
        int heads = n.intAttr("heads"), hd = headSize(n);
        if (hd != 64) {
          ops.attentionPooledAnyHead(y, x, (DeviceBuffer) inputs.get(1), eot ? (DeviceBuffer) inputs.get(2) : null, kv.dim(0), kv.dim(1), heads, hd,
              eot ? 0 : n.intAttr("index"), n.boolAttr("causal"), precision);
          return;
        }
        ops.attentionPooled(y, x, (DeviceBuffer) inputs.get(1), eot ? (DeviceBuffer) inputs.get(2) : null, kv.dim(0), kv.dim(1), n.intAttr("heads"),
            eot ? 0 : n.intAttr("index"), n.boolAttr("causal"), precision);
      }
      case CONV2D -> conv2d(n, x, y, in, out);
      case AVG_POOL -> ops.glue("avg_pool_" + s, out.elements(), y, x, (long) in.dim(0) * in.dim(1), in.dim(2), in.dim(3),
          n.intAttr("kernel"), out.dim(2), out.dim(3));
      case ATTNPOOL_TOKENS -> ops.glue("attnpool_tokens_" + s, out.elements(), y, x, param(n, "positional"), in.dim(0), in.dim(1),
          in.dim(2) * in.dim(3));
      case L2_NORMALIZE -> ops.glueRows("l2_normalize_" + s, in.rows(), y, x, in.rows(), in.dim(-1));
      case SOFTMAX -> ops.glueRows("softmax_" + s, in.rows(), y, x, in.rows(), in.dim(-1));
      case COSINE_LOGITS -> cosineLogits(n, x, (DeviceBuffer) inputs.get(1), y, in, out);
      case INPUT -> throw new IllegalStateException("INPUT nodes are not executed");
    }
  }

  /**
   * The embedding table a TOKEN_EMBED node gathers from. The kernel reads {@code token[id]}
   * unchecked, and an id outside the table is an illegal address that leaves the CUDA context
   * unusable, so ids are checked on the host as the CPU backend checks them: when written, once the
   * node reading the buffer is known (from its first run on), else when that node first runs.
   */
  private record TokenTable(String node, long vocab) {
    void check(int[] ids, int len) {
      for (int r = 0; r < ids.length; r++) {
        if (ids[r] < 0 || ids[r] >= vocab) {
          throw new IllegalArgumentException(node + ": token id " + ids[r] + " at sequence " + r / len + ", position " + r % len
              + " is outside the vocabulary [0, " + vocab + ")");
        }
      }
    }
  }

  /** The fused cosine-logit kernel is fp32: 16-bit features are widened first, the logits narrowed after. */
  private void cosineLogits(Node n, DeviceBuffer img, DeviceBuffer txt, DeviceBuffer y, TensorSpec in, TensorSpec out) {
    int m = in.dim(0), e = in.dim(1), t = out.dim(1);
    float scale = n.floatAttr("scale");
    if (precision == Precision.FP32) {
      ops.cosineLogits(y, img, txt, m, t, e, scale);
      return;
    }
    DeviceBuffer a = scratch(0, 4L * m * e), b = scratch(1, 4L * t * e), c = scratch(2, 4L * m * t);
    ops.cast(a, Precision.FP32, img, precision, (long) m * e);
    ops.cast(b, Precision.FP32, txt, precision, (long) t * e);
    ops.cosineLogits(c, a, b, m, t, e, scale);
    ops.cast(y, precision, c, Precision.FP32, (long) m * t);
  }

  /**
   * k x k convolution as im2col + GEMM, then the channel scale (an inference BatchNorm), bias and
   * ReLU. Images go in groups whose im2col fits {@link #im2colBytes}: one im2col launch and one
   * strided-batched GEMM ({@code Y_i[O, P] = W[O, C·k·k] · col_i[C·k·k, P]}, W shared) per group. A
   * 1x1 stride-1 conv reads the images as their own im2col. In fp16/bf16 the GEMM writes its fp32
   * accumulators (a group's, within the same budget) and {@code channel_affine_act} rounds once,
   * after the scale, bias and ReLU: the weights stay the checkpoint's (no BatchNorm folded into
   * them, which 16-bit storage would round) and the GEMM's result is not rounded before the
   * BatchNorm (docs/gpu.md, "ResNets in 16 bits").
   */
  private void conv2d(Node n, DeviceBuffer x, DeviceBuffer y, TensorSpec in, TensorSpec out) {
    int b = in.dim(0), c = in.dim(1), h = in.dim(2), w = in.dim(3);
    int o = out.dim(1), oh = out.dim(2), ow = out.dim(3);
    int k = n.intAttr("kernel"), stride = n.intAttr("stride"), pad = n.intAttr("padding");
    int plane = oh * ow, kk = c * k * k, relu = n.boolAttr("relu") ? 1 : 0;
    DeviceBuffer weight = gemmWeight(n), scale = param(n, "scale"), bias = param(n, "bias");
    boolean direct = k == 1 && stride == 1 && pad == 0, wide = precision != Precision.FP32;
    long colPerImage = (long) kk * plane, outPerImage = (long) o * plane;
    int group = direct ? b : (int) Math.max(1, Math.min(b, im2colBytes / (elem * colPerImage)));
    if (wide) group = (int) Math.max(1, Math.min(group, im2colBytes / (4 * outPerImage)));
    DeviceBuffer col = direct ? null : scratch(1, (long) elem * colPerImage * group);
    DeviceBuffer acc = wide ? scratch(0, 4L * outPerImage * group) : null;
    int type = precision == Precision.FP32 ? CUDA_R_32F : cudaType();
    for (int i0 = 0; i0 < b; i0 += group) {
      int g = Math.min(group, b - i0);
      DeviceBuffer img = x.view((long) elem * i0 * c * h * w, (long) elem * g * c * h * w);
      DeviceBuffer dst = y.view((long) elem * i0 * outPerImage, (long) elem * g * outPerImage);
      if (!direct) ops.glue("im2col_" + s, g * colPerImage, col, img, g, c, h, w, k, stride, pad, oh, ow);
      DeviceBuffer src = direct ? img : col;
      long srcStride = direct ? (long) c * h * w : colPerImage;
      blas.gemmStridedBatchedNN(o, plane, kk, type, weight, 0, src, srcStride, wide ? acc : dst, CUDA_R_32F, outPerImage, g);
      if (wide) ops.glue("channel_affine_act_" + s, g * outPerImage, dst, acc, scale, bias, (long) g, o, plane, relu);
    }
    if (!wide) ops.glue("channel_affine_act_" + s, out.elements(), y, y, scale, bias, (long) b, o, plane, relu);
  }

  /**
   * The most im2col scratch one convolution group uses, and in fp16/bf16 the most fp32 GEMM output
   * (all of RN50x64's images at batch 1024 at once would need tens of GB); {@code
   * -Djclip.cuda.im2colBytes} lowers it for tests.
   */
  private final long im2colBytes = Long.getLong("jclip.cuda.im2colBytes", 256L << 20);

  private static int actCode(Activation a) {
    return a == null ? 0 : a == Activation.QUICK_GELU ? 1 : 2;
  }

  private void copy(DeviceBuffer dst, DeviceBuffer src, long bytes) {
    dst.copyFrom(src, bytes, stream);
  }

  @Override
  public void close() {
    stream.synchronize();
    uploads.synchronize();
    downloads.synchronize();
    for (InputStaging st : List.copyOf(stagings.values())) st.close();
    stagings.clear();
    if (output != null) output.close();
    output = null;
    for (DeviceBuffer b : params.values()) b.close();
    for (DeviceBuffer b : gemmWeights.values()) b.close();
    for (Folded f : folded.values()) {
      f.weight().close();
      f.bias().close();
      f.colsum().close();
    }
    folded.clear();
    params.clear();
    gemmWeights.clear();
    for (DeviceBuffer b : retired) b.close();
    retired.clear();
    for (int i = 0; i < scratch.length; i++) {
      if (scratch[i] != null) scratch[i].close();
      scratch[i] = null;
    }
    if (lt != null) lt.close();
    if (sm90 != null) sm90.close();
    blas.close();
    blasWorkspace.close();
    ops.close();
    downloads.close();
    uploads.close();
    stream.close();
    if (ownsDevice) device.close();
  }
}
