package dev.jclip.backend.cuda;

import static org.bytedeco.cuda.global.cublas.CUBLAS_COMPUTE_32F;
import static org.bytedeco.cuda.global.cublas.CUBLAS_DEFAULT_MATH;
import static org.bytedeco.cuda.global.cublas.CUBLAS_GEMM_DEFAULT;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_N;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_T;
import static org.bytedeco.cuda.global.cublas.CUBLAS_STATUS_ALLOC_FAILED;
import static org.bytedeco.cuda.global.cublas.CUBLAS_STATUS_SUCCESS;
import static org.bytedeco.cuda.global.cublas.cublasCreate_v2;
import static org.bytedeco.cuda.global.cublas.cublasDestroy_v2;
import static org.bytedeco.cuda.global.cublas.cublasGemmEx;
import static org.bytedeco.cuda.global.cublas.cublasGemmStridedBatchedEx;
import static org.bytedeco.cuda.global.cublas.cublasGetStatusString;
import static org.bytedeco.cuda.global.cublas.cublasGetVersion_v2;
import static org.bytedeco.cuda.global.cublas.cublasSetMathMode;
import static org.bytedeco.cuda.global.cublas.cublasSetStream_v2;
import static org.bytedeco.cuda.global.cublas.cublasSetWorkspace_v2;
import static org.bytedeco.cuda.global.cublas.cublasSgemm_v2;

import org.bytedeco.cuda.cublas.cublasContext;
import org.bytedeco.cuda.global.cublas;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Loader;

/**
 * A cuBLAS handle on one device. GEMMs are expressed row-major, as the graph stores tensors:
 * {@code C[M,N] = A[M,K] · B[N,K]ᵀ} is PyTorch's {@code F.linear(A, B)}.
 *
 * <p>fp32 GEMMs run with {@code CUBLAS_DEFAULT_MATH}: no TF32, so results match the CPU within
 * float32 rounding (the parity mode).
 */
public final class Cublas implements AutoCloseable {
  private final CudaDevice device;
  private final cublasContext handle;
  private boolean closed;

  public Cublas(CudaDevice device) {
    this.device = device;
    device.makeCurrent();
    try {
      Loader.load(cublas.class);
    } catch (UnsatisfiedLinkError | NoClassDefFoundError e) { // (the second once a first load failed)
      throw new CudaUnavailableException(
          "cuBLAS could not be loaded (" + e.getMessage() + "): put the CUDA 13 toolkit's lib64 directory on LD_LIBRARY_PATH", e);
    }
    this.handle = new cublasContext();
    check(cublasCreate_v2(handle), "cublasCreate");
    check(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH), "cublasSetMathMode(CUBLAS_DEFAULT_MATH)");
  }

  /**
   * Puts this handle's work on {@code stream}, with {@code workspace} as its scratch memory (a
   * fixed workspace is what lets cuBLAS calls be captured into a CUDA graph).
   */
  public void bind(CudaStream stream, DeviceBuffer workspace) {
    device.makeCurrent();
    check(cublasSetStream_v2(handle, stream.handle()), "cublasSetStream");
    check(cublasSetWorkspace_v2(handle, workspace.asPointer(), workspace.bytes()), "cublasSetWorkspace(" + workspace.bytes() + " bytes)");
  }

  /** The cuBLAS library version, e.g. 130001. */
  public int version() {
    int[] v = new int[1];
    check(cublasGetVersion_v2(handle, v), "cublasGetVersion");
    return v[0];
  }

  /** fp32 {@code C[M,N] = alpha · A[M,K] · B[N,K]ᵀ + beta · C}, all row-major and contiguous. */
  public void sgemmNT(int m, int n, int k, float alpha, DeviceBuffer a, DeviceBuffer b, float beta, DeviceBuffer c) {
    device.makeCurrent();
    // Row-major C[M,N] is column-major Cᵀ[N,M] = B · Aᵀ with B seen as column-major [K,N] transposed.
    try (FloatPointer al = new FloatPointer(1).put(alpha);
        FloatPointer be = new FloatPointer(1).put(beta)) {
      check(
          cublasSgemm_v2(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, al, new FloatPointer(b.asPointer()), k,
              new FloatPointer(a.asPointer()), k, be, new FloatPointer(c.asPointer()), n),
          "cublasSgemm(" + m + "x" + n + "x" + k + ")");
    }
  }

  /** fp32 {@code C[M,N] = A[M,K] · B[K,N]}, all row-major and contiguous. */
  public void sgemmNN(int m, int n, int k, DeviceBuffer a, DeviceBuffer b, DeviceBuffer c) {
    device.makeCurrent();
    // Row-major C[M,N] is column-major Cᵀ[N,M] = Bᵀ · Aᵀ, and row-major B[K,N] is column-major Bᵀ.
    try (FloatPointer al = new FloatPointer(1).put(1f);
        FloatPointer be = new FloatPointer(1).put(0f)) {
      check(
          cublasSgemm_v2(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, al, new FloatPointer(b.asPointer()), n,
              new FloatPointer(a.asPointer()), k, be, new FloatPointer(c.asPointer()), n),
          "cublasSgemm(NN " + m + "x" + n + "x" + k + ")");
    }
  }

  /**
   * Mixed-precision {@code C[M,N] = A[M,K] · B[N,K]ᵀ} with {@code A}, {@code B} and {@code C} in
   * {@code dataType} (a {@code CUDA_R_*} constant, e.g. CUDA_R_16BF) and fp32 accumulation.
   */
  public void gemmExNT(int m, int n, int k, int dataType, DeviceBuffer a, DeviceBuffer b, DeviceBuffer c) {
    gemmEx(CUBLAS_OP_T, k, m, n, k, dataType, a, b, c, "NT");
  }

  /** Mixed-precision {@code C[M,N] = A[M,K] · B[K,N]}, types and accumulation as {@link #gemmExNT}. */
  public void gemmExNN(int m, int n, int k, int dataType, DeviceBuffer a, DeviceBuffer b, DeviceBuffer c) {
    gemmEx(CUBLAS_OP_N, n, m, n, k, dataType, a, b, c, "NN");
  }

  /** Row-major {@code C = A · op(B)} as column-major {@code Cᵀ = op(B)ᵀ · Aᵀ}; {@code ldb} is B's row length. */
  private void gemmEx(int opB, int ldb, int m, int n, int k, int dataType, DeviceBuffer a, DeviceBuffer b, DeviceBuffer c, String what) {
    device.makeCurrent();
    try (FloatPointer al = new FloatPointer(1).put(1f);
        FloatPointer be = new FloatPointer(1).put(0f)) {
      check(
          cublasGemmEx(handle, opB, CUBLAS_OP_N, n, m, k, al, b.asPointer(), dataType, ldb, a.asPointer(), dataType, k, be,
              c.asPointer(), dataType, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "cublasGemmEx(" + what + " " + m + "x" + n + "x" + k + ", type " + dataType + ")");
    }
  }

  /**
   * {@code count} row-major GEMMs {@code C_i[M,N] = A_i[M,K] · B_i[K,N]}, where operand {@code i}
   * starts {@code stride*} elements after operand {@code i - 1} (a stride of 0 shares one
   * operand), all in {@code dataType} (CUDA_R_32F, CUDA_R_16F or CUDA_R_16BF) with fp32
   * accumulation; fp32 runs without TF32 (the handle's default math mode), as {@link #sgemmNN}.
   */
  public void gemmStridedBatchedNN(int m, int n, int k, int dataType, DeviceBuffer a, long strideA, DeviceBuffer b, long strideB,
      DeviceBuffer c, long strideC, int count) {
    gemmStridedBatchedNN(m, n, k, dataType, a, strideA, b, strideB, c, dataType, strideC, count);
  }

  /**
   * As {@link #gemmStridedBatchedNN(int, int, int, int, DeviceBuffer, long, DeviceBuffer, long,
   * DeviceBuffer, long, int)} with C in {@code outType}: CUDA_R_32F keeps 16-bit operands' fp32
   * accumulators unrounded (cuBLAS takes fp16 or bf16 A and B with fp32 C).
   */
  public void gemmStridedBatchedNN(int m, int n, int k, int dataType, DeviceBuffer a, long strideA, DeviceBuffer b, long strideB,
      DeviceBuffer c, int outType, long strideC, int count) {
    device.makeCurrent();
    // Per matrix as gemmExNN: row-major C = A · B is column-major Cᵀ = Bᵀ · Aᵀ.
    try (FloatPointer al = new FloatPointer(1).put(1f);
        FloatPointer be = new FloatPointer(1).put(0f)) {
      check(
          cublasGemmStridedBatchedEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, al, b.asPointer(), dataType, n, strideB, a.asPointer(),
              dataType, k, strideA, be, c.asPointer(), outType, n, strideC, count, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "cublasGemmStridedBatchedEx(NN " + count + " x " + m + "x" + n + "x" + k + ", type " + dataType + ", C type " + outType + ")");
    }
  }

  static void check(int status, String call) {
    if (status != CUBLAS_STATUS_SUCCESS) {
      String text = "";
      try {
        BytePointer p = cublasGetStatusString(status);
        if (p != null && !p.isNull()) text = ": " + p.getString();
      } catch (RuntimeException | UnsatisfiedLinkError ignored) {
        // best effort
      }
      throw new CudaException(call + " failed: cuBLAS status " + status + allocationFailure(status) + text);
    }
  }

  /**
   * " (CUBLAS_STATUS_ALLOC_FAILED)" for cuBLAS's (or cuBLASLt's) failed allocation, which {@code
   * Backends.outOfMemory} takes for the device's memory running out; else "".
   */
  static String allocationFailure(int status) {
    return status == CUBLAS_STATUS_ALLOC_FAILED ? " (CUBLAS_STATUS_ALLOC_FAILED)" : "";
  }

  @Override
  public void close() {
    if (closed) return;
    closed = true;
    device.makeCurrent();
    check(cublasDestroy_v2(handle), "cublasDestroy");
  }
}
