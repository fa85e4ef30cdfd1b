package dev.jclip.backend.cuda;

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

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.cuda.cublas.cublasLtContext;
import org.bytedeco.cuda.cublas.cublasLtMatmulAlgo_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulDescOpaque_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulHeuristicResult_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulPreferenceOpaque_t;
import org.bytedeco.cuda.cublas.cublasLtMatrixLayoutOpaque_t;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.global.cublas;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;

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
      plan = plan(p, bias);
      plans.put(p, plan);
    }
    if (plan.algo == null) return false;
    if (bias != null) {
      biasAddress.put(0, bias.address());
      check(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, biasAddress, 8),
          "cublasLtMatmulDescSetAttribute(BIAS_POINTER) for " + p);
    }
    DeviceBuffer c = residual != null ? residual : y;
    check(cublasLtMatmul(handle, plan.desc, one, w.asPointer(), plan.a, x.asPointer(), plan.b, residual != null ? one : zero,
        c.asPointer(), plan.c, y.asPointer(), plan.c, plan.algo, workspace.asPointer(), workspace.bytes(), stream),
        "cublasLtMatmul(" + p + ")");
    return true;
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
    String reason;
  }

  private Plan plan(Problem p, DeviceBuffer bias) {
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
      plan.heuristic = new cublasLtMatmulHeuristicResult_t();
      int[] found = new int[1];
      int status = cublasLtMatmulAlgoGetHeuristic(handle, plan.desc, plan.a, plan.b, plan.c, plan.c, plan.pref, 1, plan.heuristic, found);
      if (status == CUBLAS_STATUS_NOT_SUPPORTED || (status == CUBLAS_STATUS_SUCCESS && found[0] == 0)) {
        plan.reason = "cublasLtMatmulAlgoGetHeuristic found no algorithm (" + statusText(status) + ")";
      } else {
        check(status, "cublasLtMatmulAlgoGetHeuristic for " + p);
        check(plan.heuristic.state(), "cublasLtMatmulAlgoGetHeuristic's algorithm state for " + p);
        plan.algo = plan.heuristic.algo();
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
    if (plan.heuristic != null) plan.heuristic.close();
    plan.heuristic = null;
    if (first != null) throw first;
  }

  static void check(int status, String call) {
    if (status != CUBLAS_STATUS_SUCCESS) throw new CudaException(call + " failed: cuBLAS status " + status + statusText(status));
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
