package dev.jclip.backend.cuda;

import static org.bytedeco.cuda.global.cublas.CUBLASLT_ALGO_CAP_CTA_SWIZZLING_SUPPORT;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_ALGO_CAP_STAGES_IDS;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_ALGO_CAP_TILE_IDS;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_ALGO_CONFIG_ID;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_ALGO_CONFIG_INNER_SHAPE_ID;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_ALGO_CONFIG_SPLITK_NUM;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_ALGO_CONFIG_STAGES_ID;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_ALGO_CONFIG_TILE_ID;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_CLUSTER_SHAPE_1x1x1;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_CLUSTER_SHAPE_1x2x1;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_CLUSTER_SHAPE_2x1x1;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_CLUSTER_SHAPE_2x2x1;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_CLUSTER_SHAPE_4x1x1;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_CLUSTER_SHAPE_AUTO;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_EPILOGUE_BIAS;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_EPILOGUE_DEFAULT;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_DESC_BIAS_POINTER;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_DESC_EPILOGUE;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_DESC_TRANSA;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_DESC_TRANSB;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES;
import static org.bytedeco.cuda.global.cublas.CUBLAS_COMPUTE_32F;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_N;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_T;
import static org.bytedeco.cuda.global.cublas.CUBLAS_STATUS_NOT_SUPPORTED;
import static org.bytedeco.cuda.global.cublas.CUBLAS_STATUS_SUCCESS;
import static org.bytedeco.cuda.global.cublas.cublasLtCreate;
import static org.bytedeco.cuda.global.cublas.cublasLtDestroy;
import static org.bytedeco.cuda.global.cublas.cublasLtGetStatusString;
import static org.bytedeco.cuda.global.cublas.cublasLtGetVersion;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmul;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulAlgoCapGetAttribute;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulAlgoCheck;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulAlgoConfigGetAttribute;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulAlgoConfigSetAttribute;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulAlgoGetHeuristic;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulDescCreate;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulDescDestroy;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulDescSetAttribute;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulPreferenceCreate;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulPreferenceDestroy;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulPreferenceSetAttribute;
import static org.bytedeco.cuda.global.cublas.cublasLtMatrixLayoutCreate;
import static org.bytedeco.cuda.global.cublas.cublasLtMatrixLayoutDestroy;
import static org.bytedeco.cuda.global.cudart.CUDA_R_16BF;
import static org.bytedeco.cuda.global.cudart.CUDA_R_16F;
import static org.bytedeco.cuda.global.cudart.CUDA_R_32F;
import static org.bytedeco.cuda.global.cudart.CU_EVENT_DEFAULT;
import static org.bytedeco.cuda.global.cudart.CU_STREAM_CAPTURE_STATUS_NONE;
import static org.bytedeco.cuda.global.cudart.cuEventCreate;
import static org.bytedeco.cuda.global.cudart.cuEventDestroy;
import static org.bytedeco.cuda.global.cudart.cuEventElapsedTime;
import static org.bytedeco.cuda.global.cudart.cuEventRecord;
import static org.bytedeco.cuda.global.cudart.cuEventSynchronize;
import static org.bytedeco.cuda.global.cudart.cuStreamIsCapturing;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.cuda.cublas.cublasLtContext;
import org.bytedeco.cuda.cublas.cublasLtMatmulAlgo_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulDescOpaque_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulHeuristicResult_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulPreferenceOpaque_t;
import org.bytedeco.cuda.cublas.cublasLtMatrixLayoutOpaque_t;
import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.global.cublas;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;
import org.bytedeco.javacpp.ShortPointer;
import org.bytedeco.javacpp.SizeTPointer;

/**
 * A cuBLASLt handle on one device, for the LINEAR GEMMs whose bias (and residual) cuBLASLt adds
 * in the GEMM's epilogue, where cuBLAS needs a separate pass over the result for each:
 * <pre>
 *   y[M,N] = x[M,K] · w[N,K]ᵀ + bias[N] + residual[M,N]      (bias and residual optional)
 * </pre>
 * all row-major and contiguous, seen as column-major transposed as {@link Cublas} does:
 * {@code yᵀ[N,M] = op(w)·xᵀ + residualᵀ} with {@code A = w} (stored K x N column-major,
 * {@code TRANSA = T}), {@code B = x} (K x M, {@code TRANSB = N}), {@code C = residual} with
 * {@code beta = 1} (or {@code C = y}, {@code beta = 0}), {@code D = y} (N x M); the bias epilogue
 * adds {@code bias[i]} to row i of D, i.e. to output feature i, after {@code alpha·A·B + beta·C}.
 *
 * <p>Types: every matrix in {@code CUDA_R_32F} (the parity mode: {@code CUBLAS_COMPUTE_32F} with
 * fp32 operands is true fp32, cuBLASLt uses TF32 only for {@code CUBLAS_COMPUTE_32F_FAST_TF32}),
 * or all in {@code CUDA_R_16F} / {@code CUDA_R_16BF} with fp32 accumulation and fp32 scale type.
 * The bias is in the output's type: cuBLASLt's default bias type ({@code
 * CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE} unset) is D's type, and an fp32 bias with a 16-bit D is
 * documented only for FP8 GEMMs; the caller converts the bias once.
 *
 * <p>Per problem (shape, type, epilogue, operand alignment) the matmul descriptor, the three
 * layouts and the heuristic's algorithm are made once and cached; the bias pointer, a descriptor
 * attribute, is set before each call (a host-side write: a CUDA graph capture records the pointer
 * of the call it captures). When cuBLASLt has no algorithm for a problem, {@link #linear} returns
 * false (cached too) and the caller runs its cuBLAS path. Every call's status is checked and a
 * failure names the call and the problem. Not thread-safe, like the backend that owns it.
 *
 * <p>Tuning ({@link #tune}): the heuristic's first algorithm is its guess for the problem, not a
 * measurement. With tuning on, a new problem's plan asks the heuristic for up to that many
 * algorithms, times each on the call's own buffers (one warm-up call, then {@value #TUNE_CALLS}
 * calls between two timing events) and keeps the fastest; {@link #tuning} says what each choice
 * measured. The candidates compute the same product (each may sum in its own order, split K
 * included), so the result differs from the heuristic's first by float rounding only.
 */
public final class CublasLt implements AutoCloseable {
  private final CudaDevice device;
  private final cublasLtContext handle;
  private final Map<Problem, Plan> plans = new HashMap<>();
  /** alpha = 1, beta = 1 or 0 (host pointers, read when each matmul is enqueued). */
  private final FloatPointer one = new FloatPointer(1).put(1f);
  private final FloatPointer zero = new FloatPointer(1).put(0f);
  /** The bias address, as the 8-byte value {@code CUBLASLT_MATMUL_DESC_BIAS_POINTER} reads. */
  private final LongPointer biasAddress = new LongPointer(1);
  private CUstream_st stream;
  private DeviceBuffer workspace;
  private boolean closed;
  /** How many of the heuristic's algorithms a new plan times (1: its first, untimed). */
  private int candidates = 1;
  /** One line per tuned problem: what its candidates measured. */
  private final List<String> tuning = new ArrayList<>();
  /** With tuning, whether a plan also searches around the heuristic's fastest ({@link #search}). */
  private boolean search;

  /** Calls timed per candidate when tuning. */
  static final int TUNE_CALLS = 10;

  public CublasLt(CudaDevice device) {
    this.device = device;
    device.makeCurrent();
    try {
      Loader.load(cublas.class);
    } catch (UnsatisfiedLinkError | NoClassDefFoundError e) { // (the second once a first load failed)
      closePointers();
      throw new CudaUnavailableException(
          "cuBLASLt could not be loaded (" + e.getMessage() + "): put the CUDA 13 toolkit's lib64 directory on LD_LIBRARY_PATH", e);
    }
    this.handle = new cublasLtContext();
    try {
      check(cublasLtCreate(handle), "cublasLtCreate");
    } catch (RuntimeException e) {
      closePointers();
      throw e;
    }
  }

  /**
   * Puts the matmuls on {@code stream} with {@code workspace} as their scratch memory: a fixed
   * workspace is what lets them be captured into a CUDA graph. The backend's cuBLAS handle may
   * share it: both queue work on the same stream, so their uses never overlap.
   */
  public void bind(CudaStream stream, DeviceBuffer workspace) {
    this.stream = stream.handle();
    this.workspace = workspace;
  }

  /**
   * From now on, plans each new problem by timing up to {@code candidates} of the heuristic's
   * algorithms and keeping the fastest; 1 (the default) takes the heuristic's first untimed.
   * Problems already planned keep their algorithm. A problem first met while the bound stream is
   * being captured into a CUDA graph (where nothing can be timed) takes the heuristic's first;
   * the backend's executors run each graph once before recording it, so their problems are
   * planned by then.
   */
  public void tune(int candidates) {
    if (candidates < 1 || candidates > 64) throw new IllegalArgumentException("cuBLASLt tuning candidates must be 1 to 64, not " + candidates);
    this.candidates = candidates;
  }

  /** How many algorithms a new plan times (1: none, the heuristic's first). */
  public int tuneCandidates() {
    return candidates;
  }

  /**
   * From now on, with tuning on ({@link #tune}), a new plan also times the neighbours of the
   * heuristic's fastest algorithm: the same algorithm with each other tile, then each other stage
   * count, cluster shape and CTA swizzle that cuBLASLt accepts for the problem
   * ({@code cublasLtMatmulAlgoCheck}), one dimension at a time, keeping a change only when it is
   * faster by more than {@link Search#MARGIN} ({@link Search#descend}); at most {@link
   * Search#BUDGET} candidates a problem, {@link Search#PER_DIMENSION} a dimension. The fastest
   * found replaces the start only if it wins again, by the margin, in {@link Search#CONFIRM}
   * timings each alternating with the start's. The heuristic ranks configurations by a model; this
   * measures some it ranked below its first 8. Off by default: it has not run on a GPU yet.
   */
  public void search(boolean on) {
    this.search = on;
  }

  /** Whether new tuned plans search around the heuristic's fastest ({@link #search}). */
  public boolean searching() {
    return search;
  }

  /**
   * One line per problem planned with tuning on: the number of candidates, the heuristic's first
   * and the fastest with their milliseconds a call and their configuration (algorithm, tile,
   * stages, split-K, cluster shape ids), and the candidates that failed.
   */
  public List<String> tuning() {
    return List.copyOf(tuning);
  }

  /** The cuBLASLt library version, e.g. 130100. */
  public long version() {
    return cublasLtGetVersion();
  }

  /** The cuBLASLt type of a precision's matrices: CUDA_R_32F, CUDA_R_16F or CUDA_R_16BF. */
  public static int dataType(dev.jclip.backend.Precision p) {
    return switch (p) {
      case FP32 -> CUDA_R_32F;
      case FP16 -> CUDA_R_16F;
      case BF16 -> CUDA_R_16BF;
    };
  }

  /**
   * {@code y[M,N] = x[M,K] · w[N,K]ᵀ (+ bias[N]) (+ residual[M,N])}, every buffer in {@code
   * dataType} (CUDA_R_32F, CUDA_R_16F or CUDA_R_16BF; the bias too), fp32 accumulation. Queued on
   * the bound stream. {@code y} must not overlap {@code x}, {@code w} or {@code residual}.
   *
   * @return false, having queued nothing, when cuBLASLt has no algorithm for this problem
   */
  public boolean linear(int m, int n, int k, int dataType, DeviceBuffer x, DeviceBuffer w, DeviceBuffer bias, DeviceBuffer residual,
      DeviceBuffer y) {
    if (closed) throw new IllegalStateException("cuBLASLt handle is closed");
    if (stream == null) throw new IllegalStateException("cuBLASLt handle is not bound to a stream (bind)");
    if (m <= 0 || n <= 0 || k <= 0) throw new IllegalArgumentException("cuBLASLt linear of " + m + "x" + n + "x" + k);
    if (dataType != CUDA_R_32F && dataType != CUDA_R_16F && dataType != CUDA_R_16BF) {
      throw new IllegalArgumentException("cuBLASLt linear: data type " + dataType + " is none of CUDA_R_32F, CUDA_R_16F, CUDA_R_16BF");
    }
    int elem = dataType == CUDA_R_32F ? 4 : 2;
    requireBytes("x", x, (long) m * k * elem);
    requireBytes("w", w, (long) n * k * elem);
    requireBytes("y", y, (long) m * n * elem);
    if (residual != null) requireBytes("residual", residual, (long) m * n * elem);
    if (bias != null) requireBytes("bias", bias, (long) n * elem);
    device.makeCurrent();
    Problem p = new Problem(m, n, k, dataType, bias != null, residual != null, alignment(w), alignment(x),
        alignment(residual != null ? residual : y), alignment(y), bias == null ? 0 : alignment(bias));
    Plan plan = plans.get(p);
    if (plan == null) {
      plan = plan(p, x, w, bias, residual, y);
      plans.put(p, plan);
    }
    if (plan.algo == null) return false;
    if (bias != null) {
      biasAddress.put(0, bias.address());
      check(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, biasAddress, 8),
          "cublasLtMatmulDescSetAttribute(BIAS_POINTER) for " + p);
    }
    check(matmul(plan, plan.algo, x, w, residual, y), "cublasLtMatmul(" + p + ")");
    return true;
  }

  /** Queues one matmul of {@code plan} with {@code algo} (the bias pointer already set); returns its status. */
  private int matmul(Plan plan, cublasLtMatmulAlgo_t algo, DeviceBuffer x, DeviceBuffer w, DeviceBuffer residual, DeviceBuffer y) {
    DeviceBuffer c = residual != null ? residual : y;
    return cublasLtMatmul(handle, plan.desc, one, w.asPointer(), plan.a, x.asPointer(), plan.b, residual != null ? one : zero,
        c.asPointer(), plan.c, y.asPointer(), plan.c, algo, workspace.asPointer(), workspace.bytes(), stream);
  }

  /** The problems cuBLASLt had no algorithm for (their calls returned false), for reports. */
  public List<String> unsupported() {
    List<String> out = new ArrayList<>();
    for (Map.Entry<Problem, Plan> e : plans.entrySet()) if (e.getValue().algo == null) out.add(e.getKey() + ": " + e.getValue().reason);
    return out;
  }

  /** How many problems have a cached plan (for tests and reports). */
  public int plans() {
    return plans.size();
  }

  private static void requireBytes(String what, DeviceBuffer b, long bytes) {
    if (b.bytes() < bytes) throw new IllegalArgumentException("cuBLASLt linear: " + what + " holds " + b.bytes() + " bytes, needs " + bytes);
  }

  /** The largest power of two up to 256 dividing the buffer's address: what cuBLASLt may assume of it. */
  private static int alignment(DeviceBuffer b) {
    long a = b.address();
    return a == 0 ? 256 : (int) Math.min(256, Long.lowestOneBit(a));
  }

  /**
   * One problem: D[N,M] = op(A)[N,K]·B[K,M] (+ C) in column-major terms, the epilogue, and the
   * alignments the algorithm may rely on (A = w, B = x, C = the residual or y, D = y).
   */
  record Problem(int m, int n, int k, int type, boolean bias, boolean residual, int alignW, int alignX, int alignC, int alignY,
      int alignBias) {
    @Override
    public String toString() {
      String t = type == CUDA_R_32F ? "fp32" : type == CUDA_R_16F ? "fp16" : type == CUDA_R_16BF ? "bf16" : "type " + type;
      return "y[" + m + "x" + n + "] = x[" + m + "x" + k + "]·w[" + n + "x" + k + "]ᵀ" + (bias ? " + bias" : "") + (residual ? " + residual" : "")
          + ", " + t + ", alignment w/x/c/y/bias " + alignW + "/" + alignX + "/" + alignC + "/" + alignY + "/" + alignBias;
    }
  }

  /** The pure part of tuning: choosing and reporting (tested without a GPU). */
  static final class Tuning {
    private Tuning() {}

    /** The index of the smallest time, NaN (a candidate that did not run) skipped; -1 when none ran. Ties go to the earlier (the heuristic's order). */
    static int fastest(double[] ms) {
      int best = -1;
      for (int i = 0; i < ms.length; i++) if (!Double.isNaN(ms[i]) && (best < 0 || ms[i] < ms[best])) best = i;
      return best;
    }

    /** "problem: n candidates; heuristic's first 0.356 ms (config); fastest #5 0.331 ms (config), 1.08x the first[; failed: ...]". */
    static String report(String problem, double[] ms, String[] config, List<String> failed) {
      int best = fastest(ms);
      StringBuilder b = new StringBuilder(problem).append(": ").append(ms.length).append(" candidates; ");
      b.append("heuristic's first ").append(Double.isNaN(ms[0]) ? "did not run" : String.format("%.4f ms", ms[0])).append(" (").append(config[0]).append(')');
      if (best < 0) b.append("; none ran");
      else if (best == 0) b.append("; the first is the fastest");
      else {
        b.append(String.format("; fastest #%d %.4f ms (%s)", best, ms[best], config[best]));
        if (!Double.isNaN(ms[0])) b.append(String.format(", %.2fx the first", ms[0] / ms[best]));
      }
      if (!failed.isEmpty()) b.append("; failed: ").append(String.join(", ", failed));
      return b.toString();
    }
  }

  /**
   * The cached objects of one problem; {@code algo} null when cuBLASLt has none ({@code reason} says
   * why). {@code pref} only feeds the heuristic and is destroyed after it.
   */
  static final class Plan {
    cublasLtMatmulDescOpaque_t desc;
    cublasLtMatrixLayoutOpaque_t a, b, c;
    cublasLtMatmulPreferenceOpaque_t pref;
    cublasLtMatmulHeuristicResult_t heuristic;
    cublasLtMatmulAlgo_t algo;
    /** The search's choice ({@link #search}), owned by the plan; {@code algo} then points to it. */
    cublasLtMatmulAlgo_t searched;
    /** What tuning measured for the heuristic's fastest (NaN when not timed). */
    double tunedMs = Double.NaN;
    String reason;
  }

  private Plan plan(Problem p, DeviceBuffer x, DeviceBuffer w, DeviceBuffer bias, DeviceBuffer residual, DeviceBuffer y) {
    if (p.bias() && p.alignBias() < 16) {
      // cuBLASLt takes no alignment preference for the bias, and other users of its bias
      // epilogue require 16 bytes: do not find out. (The backend's biases are allocations of
      // their own, 256-byte aligned.)
      Plan plan = new Plan();
      plan.reason = "the bias address is aligned to " + p.alignBias() + " bytes only";
      return plan;
    }
    // The heuristic may look at the bias pointer (its alignment): give it this call's.
    Plan plan = describe(p, bias == null ? 0 : bias.address(), workspace.bytes());
    try {
      int wanted = candidates > 1 && !capturing() ? candidates : 1;
      plan.heuristic = new cublasLtMatmulHeuristicResult_t(wanted);
      int[] found = new int[1];
      int status = cublasLtMatmulAlgoGetHeuristic(handle, plan.desc, plan.a, plan.b, plan.c, plan.c, plan.pref, wanted, plan.heuristic, found);
      if (status == CUBLAS_STATUS_NOT_SUPPORTED || (status == CUBLAS_STATUS_SUCCESS && found[0] == 0)) {
        plan.reason = "cublasLtMatmulAlgoGetHeuristic found no algorithm (" + statusText(status) + ")";
      } else {
        check(status, "cublasLtMatmulAlgoGetHeuristic for " + p);
        check(plan.heuristic.getPointer(0).state(), "cublasLtMatmulAlgoGetHeuristic's algorithm state for " + p);
        plan.algo = plan.heuristic.getPointer(0).algo();
        if (wanted > 1 && found[0] > 1) {
          plan.algo = fastest(p, plan, found[0], x, w, residual, y);
          if (plan.algo == null) plan.reason = "cuBLASLt tuning: none of the heuristic's " + found[0] + " algorithms ran (see tuning())";
        }
        if (wanted > 1 && search && plan.algo != null) {
          try {
            searchAround(p, plan, x, w, residual, y);
          } catch (RuntimeException e) { // the search is an extra: the tuned algorithm stands
            tuning.add(p + ": search failed, the tuned algorithm kept: " + e);
          }
        }
      }
      int destroyed = cublasLtMatmulPreferenceDestroy(plan.pref);
      plan.pref = null; // destroyed or not, never again
      check(destroyed, "cublasLtMatmulPreferenceDestroy for " + p);
      return plan;
    } catch (RuntimeException e) {
      try {
        destroy(plan);
      } catch (RuntimeException suppressed) {
        e.addSuppressed(suppressed);
      }
      throw e;
    }
  }

  /** Whether the bound stream is being captured into a CUDA graph (nothing on it can be timed then). */
  private boolean capturing() {
    int[] st = new int[1];
    CudaDriver.check(cuStreamIsCapturing(stream, st), "cuStreamIsCapturing");
    return st[0] != CU_STREAM_CAPTURE_STATUS_NONE;
  }

  /**
   * Times the first {@code count} algorithms of {@code plan}'s heuristic on the call's buffers and
   * returns the fastest ({@link Tuning#fastest}); candidates whose state or first call fails are
   * skipped and named in the report line; null when none ran (the problem then goes to cuBLAS, as
   * one cuBLASLt has no algorithm for). The stream is idle when this returns.
   */
  private cublasLtMatmulAlgo_t fastest(Problem p, Plan plan, int count, DeviceBuffer x, DeviceBuffer w, DeviceBuffer residual, DeviceBuffer y) {
    double[] ms = new double[count];
    String[] config = new String[count];
    List<String> failed = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      ms[i] = Double.NaN;
      cublasLtMatmulHeuristicResult_t h = plan.heuristic.getPointer(i);
      config[i] = describe(h.algo());
      if (h.state() != CUBLAS_STATUS_SUCCESS) {
        failed.add("#" + i + " state " + h.state());
        continue;
      }
      ms[i] = time(plan, h.algo(), x, w, residual, y, failed, "#" + i); // NaN (and named in failed) where a call is refused
    }
    int best = Tuning.fastest(ms);
    tuning.add(Tuning.report(p.toString(), ms, config, failed));
    if (best >= 0) plan.tunedMs = ms[best];
    return best < 0 ? null : plan.heuristic.getPointer(best).algo();
  }

  /**
   * {@link #search}: descends from {@code plan.algo} (the heuristic's fastest, timed or not) over
   * its tiles, stages, cluster shapes and CTA swizzle; where a neighbour is faster, {@code
   * plan.algo} becomes it (a copy the plan owns). Adds a line to {@link #tuning}. The stream is
   * idle when this returns.
   */
  private void searchAround(Problem p, Plan plan, DeviceBuffer x, DeviceBuffer w, DeviceBuffer residual, DeviceBuffer y) {
    cublasLtMatmulAlgo_t start = plan.algo;
    Search.Config from = new Search.Config(configAttr(start, CUBLASLT_ALGO_CONFIG_TILE_ID), configAttr(start, CUBLASLT_ALGO_CONFIG_STAGES_ID),
        configAttr(start, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID), configAttr(start, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING));
    java.util.EnumMap<Search.Dim, int[]> values = new java.util.EnumMap<>(Search.Dim.class);
    values.put(Search.Dim.TILE, capIds(start, CUBLASLT_ALGO_CAP_TILE_IDS));
    values.put(Search.Dim.STAGES, capIds(start, CUBLASLT_ALGO_CAP_STAGES_IDS));
    values.put(Search.Dim.CLUSTER, from.cluster() < 0 ? new int[0] : Search.CLUSTER_SHAPES);
    int[] swizzle = capIds(start, CUBLASLT_ALGO_CAP_CTA_SWIZZLING_SUPPORT);
    values.put(Search.Dim.SWIZZLE, from.swizzle() < 0 || swizzle.length == 0 || swizzle[0] == 0 ? new int[0] : new int[] {0, 1});
    List<String> refused = new ArrayList<>();
    Map<Search.Config, cublasLtMatmulAlgo_t> made = new HashMap<>();
    try (cublasLtMatmulHeuristicResult_t checked = new cublasLtMatmulHeuristicResult_t()) {
      Search.Timer timer = c -> {
        cublasLtMatmulAlgo_t algo = new cublasLtMatmulAlgo_t();
        Pointer.memcpy(algo, start, algo.sizeof());
        String why = Search.apply(c, from, (attr, v) -> setConfigAttr(algo, attr, v));
        if (why == null) {
          int st = cublasLtMatmulAlgoCheck(handle, plan.desc, plan.a, plan.b, plan.c, plan.c, algo, checked);
          if (st != CUBLAS_STATUS_SUCCESS) why = "check " + st;
          else if (checked.workspaceSize() > workspace.bytes()) why = "workspace " + checked.workspaceSize();
        }
        if (why != null) {
          algo.close();
          return Double.NaN; // not a candidate: not timed, not counted
        }
        double ms;
        try {
          ms = time(plan, algo, x, w, residual, y, refused, c.toString());
        } catch (RuntimeException e) {
          algo.close();
          throw e;
        }
        if (Double.isNaN(ms)) {
          algo.close();
          return Search.REFUSED;
        }
        made.put(c, algo);
        return ms;
      };
      double startMs = Double.isNaN(plan.tunedMs) ? time(plan, start, x, w, residual, y, refused, "start") : plan.tunedMs;
      if (Double.isNaN(startMs)) return; // the start itself no longer runs: keep it, as tuning chose it
      Search.Result r = Search.descend(from, startMs, values, timer, Search.BUDGET);
      String outcome;
      if (r.best().equals(from)) {
        outcome = String.format("none faster than the start's %.4f ms by %.0f%%", startMs, 100 * Search.MARGIN);
      } else {
        // the fastest of many noisy timings is flattered: time it and the start again, alternately,
        // and move only if it still wins by the margin
        cublasLtMatmulAlgo_t candidate = made.get(r.best());
        double[] again = new double[2 * Search.CONFIRM];
        for (int i = 0; i < again.length; i++) again[i] = time(plan, i % 2 == 0 ? start : candidate, x, w, residual, y, refused, "confirming");
        double startAgain = Search.median(again, 0), bestAgain = Search.median(again, 1);
        if (bestAgain < startAgain * (1 - Search.MARGIN)) {
          made.remove(r.best());
          plan.searched = candidate;
          plan.algo = candidate;
          outcome = String.format("fastest %s %.4f ms; again, alternating with the start: %.4f against %.4f ms, %.2fx", r.best(), r.bestMs(),
              bestAgain, startAgain, startAgain / bestAgain);
        } else {
          outcome = String.format("fastest %s %.4f ms, but again, alternating with the start: %.4f against %.4f ms: the start kept", r.best(),
              r.bestMs(), bestAgain, startAgain);
        }
      }
      tuning.add(p + ": search from " + describe(start) + " (" + from + "): " + r.timed() + " candidates run; " + outcome
          + (refused.isEmpty() ? "" : "; refused when run: " + String.join(", ", refused)));
    } finally {
      for (cublasLtMatmulAlgo_t a : made.values()) a.close();
    }
  }

  /**
   * Milliseconds a call of {@code plan} with {@code algo} takes (one warm-up call, then {@value
   * #TUNE_CALLS} between two events), or NaN when a call is refused (named in {@code failed}).
   */
  private double time(Plan plan, cublasLtMatmulAlgo_t algo, DeviceBuffer x, DeviceBuffer w, DeviceBuffer residual, DeviceBuffer y,
      List<String> failed, String what) {
    int status = matmul(plan, algo, x, w, residual, y);
    if (status != CUBLAS_STATUS_SUCCESS) {
      failed.add(what + " status " + status + statusText(status));
      return Double.NaN;
    }
    CUevent_st start = new CUevent_st(), stop = new CUevent_st();
    CudaDriver.check(cuEventCreate(start, CU_EVENT_DEFAULT), "cuEventCreate(cuBLASLt timing)");
    try {
      CudaDriver.check(cuEventCreate(stop, CU_EVENT_DEFAULT), "cuEventCreate(cuBLASLt timing)");
      try (FloatPointer elapsed = new FloatPointer(1)) {
        CudaDriver.check(cuEventRecord(start, stream), "cuEventRecord(cuBLASLt timing)");
        int timed = CUBLAS_STATUS_SUCCESS;
        for (int r = 0; r < TUNE_CALLS && timed == CUBLAS_STATUS_SUCCESS; r++) timed = matmul(plan, algo, x, w, residual, y);
        CudaDriver.check(cuEventRecord(stop, stream), "cuEventRecord(cuBLASLt timing)");
        CudaDriver.check(cuEventSynchronize(stop), "cuEventSynchronize(cuBLASLt timing)");
        if (timed != CUBLAS_STATUS_SUCCESS) {
          failed.add(what + " status " + timed + statusText(timed) + " when timed");
          return Double.NaN;
        }
        CudaDriver.check(cuEventElapsedTime(elapsed, start, stop), "cuEventElapsedTime(cuBLASLt timing)");
        return elapsed.get() / TUNE_CALLS;
      } finally {
        CudaDriver.check(cuEventDestroy(stop), "cuEventDestroy(cuBLASLt timing)");
      }
    } finally {
      CudaDriver.check(cuEventDestroy(start), "cuEventDestroy(cuBLASLt timing)");
    }
  }

  /**
   * The size cuBLASLt stores configuration attribute {@code attr} in (cublasLt.h): 2 bytes for the
   * cluster and inner shape ids (uint16_t), 4 for the rest; a get or set of another size is refused.
   */
  static int configAttrBytes(int attr) {
    return attr == CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID || attr == CUBLASLT_ALGO_CONFIG_INNER_SHAPE_ID ? 2 : 4;
  }

  /** An algorithm's configuration attribute {@code attr}, or -1 where it has none. */
  private static int configAttr(cublasLtMatmulAlgo_t algo, int attr) {
    try (SizeTPointer written = new SizeTPointer(1)) {
      if (configAttrBytes(attr) == 2) {
        try (ShortPointer value = new ShortPointer(1)) {
          int status = cublasLtMatmulAlgoConfigGetAttribute(algo, attr, value, 2, written);
          return status == CUBLAS_STATUS_SUCCESS ? value.get() & 0xFFFF : -1;
        }
      }
      try (IntPointer value = new IntPointer(1)) {
        value.put(0, -1);
        int status = cublasLtMatmulAlgoConfigGetAttribute(algo, attr, value, 4, written);
        return status == CUBLAS_STATUS_SUCCESS ? value.get() : -1;
      }
    }
  }

  /** Sets {@code algo}'s configuration attribute {@code attr} to {@code value}; null, or why not. */
  private static String setConfigAttr(cublasLtMatmulAlgo_t algo, int attr, int value) {
    int status;
    if (configAttrBytes(attr) == 2) {
      try (ShortPointer v = new ShortPointer(1)) {
        v.put(0, (short) value);
        status = cublasLtMatmulAlgoConfigSetAttribute(algo, attr, v, 2);
      }
    } else {
      try (IntPointer v = new IntPointer(1)) {
        v.put(0, value);
        status = cublasLtMatmulAlgoConfigSetAttribute(algo, attr, v, 4);
      }
    }
    return status == CUBLAS_STATUS_SUCCESS ? null : "set " + attr + " = " + value + ": status " + status;
  }

  /** A capability of {@code algo} that is an array of 32-bit ids (tiles, stages) or one value (swizzle support); empty where it has none. */
  private static int[] capIds(cublasLtMatmulAlgo_t algo, int cap) {
    try (SizeTPointer written = new SizeTPointer(1)) {
      int status = cublasLtMatmulAlgoCapGetAttribute(algo, cap, null, 0, written);
      long bytes = written.get();
      if (status != CUBLAS_STATUS_SUCCESS || bytes < 4) return new int[0];
      try (IntPointer ids = new IntPointer(bytes / 4)) {
        status = cublasLtMatmulAlgoCapGetAttribute(algo, cap, ids, 4 * (bytes / 4), written);
        if (status != CUBLAS_STATUS_SUCCESS) return new int[0];
        int[] out = new int[(int) (bytes / 4)];
        ids.get(out);
        return out;
      }
    }
  }

  /**
   * The pure part of {@link #search} (tested without a GPU): a configuration's searched
   * dimensions, and the descent over them.
   */
  static final class Search {
    private Search() {}

    /** A neighbour must be faster than the best so far by this fraction to replace it (timing noise is ~1%). */
    static final double MARGIN = 0.01;

    /** The most candidates a problem times in its search (those cuBLASLt refuses before running do not count). */
    static final int BUDGET = 48;

    /** The most candidates one dimension times, so that many tiles leave room for the stages, clusters and swizzle. */
    static final int PER_DIMENSION = 24;

    /** Alternate timings of the start and the search's fastest before a move (each). */
    static final int CONFIRM = 3;

    /** The median of every other element of {@code ms} from {@code first} (NaN counts as slowest). */
    static double median(double[] ms, int first) {
      double[] mine = new double[(ms.length - first + 1) / 2];
      for (int i = 0; i < mine.length; i++) mine[i] = Double.isNaN(ms[first + 2 * i]) ? Double.POSITIVE_INFINITY : ms[first + 2 * i];
      Arrays.sort(mine);
      return mine[mine.length / 2];
    }

    /** What {@link Timer#ms} returns for a candidate that passed the check but was refused when run: counted, never chosen. */
    static final double REFUSED = Double.POSITIVE_INFINITY;

    /** The cluster shapes tried (cuBLASLt has no capability listing them; the check refuses those an algorithm lacks). */
    static final int[] CLUSTER_SHAPES = {CUBLASLT_CLUSTER_SHAPE_AUTO, CUBLASLT_CLUSTER_SHAPE_1x1x1, CUBLASLT_CLUSTER_SHAPE_2x1x1,
      CUBLASLT_CLUSTER_SHAPE_1x2x1, CUBLASLT_CLUSTER_SHAPE_2x2x1, CUBLASLT_CLUSTER_SHAPE_4x1x1};

    /** The dimensions, in the order searched. */
    enum Dim {
      TILE(CUBLASLT_ALGO_CONFIG_TILE_ID),
      STAGES(CUBLASLT_ALGO_CONFIG_STAGES_ID),
      CLUSTER(CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID),
      SWIZZLE(CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING);

      final int attr;

      Dim(int attr) {
        this.attr = attr;
      }
    }

    /** One configuration: tile, stages, cluster shape and CTA swizzle ids (-1: the algorithm has no such attribute). */
    record Config(int tile, int stages, int cluster, int swizzle) {
      int get(Dim d) {
        return switch (d) {
          case TILE -> tile;
          case STAGES -> stages;
          case CLUSTER -> cluster;
          case SWIZZLE -> swizzle;
        };
      }

      Config with(Dim d, int v) {
        return new Config(d == Dim.TILE ? v : tile, d == Dim.STAGES ? v : stages, d == Dim.CLUSTER ? v : cluster, d == Dim.SWIZZLE ? v : swizzle);
      }

      @Override
      public String toString() {
        return "tile " + tile + " stages " + stages + " cluster " + cluster + " swizzle " + swizzle;
      }
    }

    /** Times a configuration: milliseconds a call; NaN when cuBLASLt refuses it before it runs (not counted); {@link #REFUSED} when it fails running. */
    interface Timer {
      double ms(Config c);
    }

    /** Sets one attribute of the algorithm being built; null, or why it could not. */
    interface Setter {
      String set(int attr, int value);
    }

    /** The descent's outcome: the fastest configuration found (the start when none beat it), its milliseconds, and how many were timed. */
    record Result(Config best, double bestMs, int timed) {}

    /**
     * Sets the attributes in which {@code c} differs from {@code from} (the algorithm being built is
     * a copy of {@code from}'s); null, or the first refusal.
     */
    static String apply(Config c, Config from, Setter setter) {
      for (Dim d : Dim.values()) {
        if (c.get(d) == from.get(d)) continue;
        String why = setter.set(d.attr, c.get(d));
        if (why != null) return why;
      }
      return null;
    }

    /**
     * Coordinate descent from {@code start} ({@code startMs}): for each dimension in order, times
     * every other value of {@code values} (the rest of the best configuration so far kept), and
     * moves to the fastest when it beats the best by more than {@link #MARGIN}; stops timing once
     * {@code budget} candidates have been timed, and a dimension after {@link #PER_DIMENSION}. Each
     * configuration is timed once.
     */
    static Result descend(Config start, double startMs, Map<Dim, int[]> values, Timer timer, int budget) {
      Config best = start;
      double bestMs = startMs;
      int timed = 0;
      java.util.Set<Config> seen = new java.util.HashSet<>();
      seen.add(start);
      for (Dim d : Dim.values()) {
        Config dimBest = null;
        double dimMs = Double.POSITIVE_INFINITY;
        int dimTimed = 0;
        for (int v : values.getOrDefault(d, new int[0])) {
          if (timed >= budget || dimTimed >= PER_DIMENSION) break;
          Config c = best.with(d, v);
          if (!seen.add(c)) continue;
          double ms = timer.ms(c);
          if (Double.isNaN(ms)) continue;
          timed++;
          dimTimed++;
          if (ms < dimMs) {
            dimMs = ms;
            dimBest = c;
          }
        }
        if (dimBest != null && dimMs < bestMs * (1 - MARGIN)) {
          best = dimBest;
          bestMs = dimMs;
        }
      }
      return new Result(best, bestMs, timed);
    }
  }

  /** An algorithm's configuration ids, for the tuning report: "algo 66 tile 21 stages 31 split-K 1 cluster 2". */
  private static String describe(cublasLtMatmulAlgo_t algo) {
    StringBuilder b = new StringBuilder();
    int[] attrs = {CUBLASLT_ALGO_CONFIG_ID, CUBLASLT_ALGO_CONFIG_TILE_ID, CUBLASLT_ALGO_CONFIG_STAGES_ID, CUBLASLT_ALGO_CONFIG_SPLITK_NUM,
      CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID};
    String[] names = {"algo", "tile", "stages", "split-K", "cluster"};
    for (int i = 0; i < attrs.length; i++) {
      int value = configAttr(algo, attrs[i]);
      if (i > 0) b.append(' ');
      b.append(names[i]).append(' ').append(value == -1 ? "?" : Integer.toString(value));
    }
    return b.toString();
  }

  /**
   * The matmul descriptor, layouts and heuristic preference of {@code p}, with the bias pointer
   * set when {@code p} has a bias: host objects only, made without a handle or a device (tested
   * without a GPU). On failure, what was made is destroyed.
   */
  static Plan describe(Problem p, long biasAddress, long workspaceBytes) {
    Plan plan = new Plan();
    try (PointerPointer<Pointer> out = new PointerPointer<>(1);
        IntPointer int32 = new IntPointer(1);
        LongPointer int64 = new LongPointer(1)) {
      check(cublasLtMatmulDescCreate(out, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate(COMPUTE_32F, scale 32F) for " + p);
      plan.desc = new cublasLtMatmulDescOpaque_t(out.get(0));
      setDesc(plan.desc, int32, CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T, "TRANSA", p);
      setDesc(plan.desc, int32, CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N, "TRANSB", p);
      setDesc(plan.desc, int32, CUBLASLT_MATMUL_DESC_EPILOGUE, p.bias() ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT, "EPILOGUE", p);
      if (p.bias()) {
        int64.put(0, biasAddress);
        check(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, int64, 8),
            "cublasLtMatmulDescSetAttribute(BIAS_POINTER) for " + p);
      }
      plan.a = layout(out, p.type(), p.k(), p.n(), p.k(), "A = w", p);
      plan.b = layout(out, p.type(), p.k(), p.m(), p.k(), "B = x", p);
      plan.c = layout(out, p.type(), p.n(), p.m(), p.n(), "C = D = y", p);
      check(cublasLtMatmulPreferenceCreate(out), "cublasLtMatmulPreferenceCreate for " + p);
      plan.pref = new cublasLtMatmulPreferenceOpaque_t(out.get(0));
      int64.put(0, workspaceBytes);
      check(cublasLtMatmulPreferenceSetAttribute(plan.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, int64, 8),
          "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES " + workspaceBytes + ") for " + p);
      setPref(plan.pref, int32, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, p.alignW(), "MIN_ALIGNMENT_A_BYTES", p);
      setPref(plan.pref, int32, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, p.alignX(), "MIN_ALIGNMENT_B_BYTES", p);
      setPref(plan.pref, int32, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, p.alignC(), "MIN_ALIGNMENT_C_BYTES", p);
      setPref(plan.pref, int32, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, p.alignY(), "MIN_ALIGNMENT_D_BYTES", p);
      return plan;
    } catch (RuntimeException e) {
      try {
        destroy(plan);
      } catch (RuntimeException suppressed) {
        e.addSuppressed(suppressed);
      }
      throw e;
    }
  }

  private static cublasLtMatrixLayoutOpaque_t layout(PointerPointer<Pointer> out, int type, long rows, long cols, long ld, String what,
      Problem p) {
    check(cublasLtMatrixLayoutCreate(out, type, rows, cols, ld),
        "cublasLtMatrixLayoutCreate(" + what + ": " + rows + "x" + cols + ", ld " + ld + ") for " + p);
    return new cublasLtMatrixLayoutOpaque_t(out.get(0));
  }

  private static void setDesc(cublasLtMatmulDescOpaque_t desc, IntPointer int32, int attr, int value, String name, Problem p) {
    int32.put(0, value);
    check(cublasLtMatmulDescSetAttribute(desc, attr, int32, 4), "cublasLtMatmulDescSetAttribute(" + name + " = " + value + ") for " + p);
  }

  private static void setPref(cublasLtMatmulPreferenceOpaque_t pref, IntPointer int32, int attr, int value, String name, Problem p) {
    int32.put(0, value);
    check(cublasLtMatmulPreferenceSetAttribute(pref, attr, int32, 4),
        "cublasLtMatmulPreferenceSetAttribute(" + name + " = " + value + ") for " + p);
  }

  /** Destroys what {@code plan} holds (each object once), reporting the first failure after trying all. */
  static void destroy(Plan plan) {
    RuntimeException first = null;
    for (cublasLtMatrixLayoutOpaque_t l : new cublasLtMatrixLayoutOpaque_t[] {plan.a, plan.b, plan.c}) {
      if (l == null) continue;
      try {
        check(cublasLtMatrixLayoutDestroy(l), "cublasLtMatrixLayoutDestroy");
      } catch (RuntimeException e) {
        if (first == null) first = e;
      }
    }
    plan.a = plan.b = plan.c = null;
    if (plan.pref != null) {
      try {
        check(cublasLtMatmulPreferenceDestroy(plan.pref), "cublasLtMatmulPreferenceDestroy");
      } catch (RuntimeException e) {
        if (first == null) first = e;
      }
      plan.pref = null;
    }
    if (plan.desc != null) {
      try {
        check(cublasLtMatmulDescDestroy(plan.desc), "cublasLtMatmulDescDestroy");
      } catch (RuntimeException e) {
        if (first == null) first = e;
      }
      plan.desc = null;
    }
    plan.algo = null;
    if (plan.searched != null) plan.searched.close();
    plan.searched = null;
    if (plan.heuristic != null) plan.heuristic.close();
    plan.heuristic = null;
    if (first != null) throw first;
  }

  static void check(int status, String call) {
    if (status != CUBLAS_STATUS_SUCCESS) throw new CudaException(call + " failed: cuBLAS status " + status + Cublas.allocationFailure(status) + statusText(status));
  }

  private static String statusText(int status) {
    try {
      BytePointer p = cublasLtGetStatusString(status);
      if (p != null && !p.isNull()) return ": " + p.getString();
    } catch (RuntimeException | UnsatisfiedLinkError ignored) {
      // best effort
    }
    return "";
  }

  private void closePointers() {
    one.close();
    zero.close();
    biasAddress.close();
  }

  /**
   * Destroys every cached descriptor and layout, then the handle. The caller synchronises its
   * stream first (queued matmuls read the descriptors' algorithms only when enqueued, but the
   * handle must outlive them).
   */
  @Override
  public void close() {
    if (closed) return;
    closed = true;
    device.makeCurrent();
    RuntimeException first = null;
    for (Plan plan : plans.values()) {
      try {
        destroy(plan);
      } catch (RuntimeException e) {
        if (first == null) first = e;
      }
    }
    plans.clear();
    try {
      check(cublasLtDestroy(handle), "cublasLtDestroy");
    } catch (RuntimeException e) {
      if (first == null) first = e;
    }
    closePointers();
    if (first != null) throw first;
  }
}
