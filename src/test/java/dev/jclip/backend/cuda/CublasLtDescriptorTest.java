package dev.jclip.backend.cuda;

import static org.bytedeco.cuda.global.cublas.CUBLASLT_EPILOGUE_BIAS;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_EPILOGUE_DEFAULT;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_DESC_BIAS_POINTER;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_DESC_COMPUTE_TYPE;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_DESC_EPILOGUE;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_DESC_SCALE_TYPE;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_DESC_TRANSA;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_DESC_TRANSB;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATRIX_LAYOUT_COLS;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATRIX_LAYOUT_LD;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATRIX_LAYOUT_ORDER;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATRIX_LAYOUT_ROWS;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATRIX_LAYOUT_TYPE;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_ORDER_COL;
import static org.bytedeco.cuda.global.cublas.CUBLAS_COMPUTE_32F;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_N;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_T;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulDescGetAttribute;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulPreferenceGetAttribute;
import static org.bytedeco.cuda.global.cublas.cublasLtMatrixLayoutGetAttribute;
import static org.bytedeco.cuda.global.cudart.CUDA_R_16BF;
import static org.bytedeco.cuda.global.cudart.CUDA_R_16F;
import static org.bytedeco.cuda.global.cudart.CUDA_R_32F;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import org.bytedeco.cuda.cublas.cublasLtMatrixLayoutOpaque_t;
import org.bytedeco.cuda.global.cublas;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.SizeTPointer;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * What {@link CublasLt} asks of cuBLASLt, read back from the descriptors it makes: every attribute
 * accepted at the size it is set with, and the row-major linear {@code y[M,N] = x[M,K] · w[N,K]ᵀ}
 * described as column-major {@code D[N,M] = op(A)·B} with A = w (K x N, TRANSA = T), B = x (K x M),
 * C = D (N x M), compute type 32F and scale type 32F, the bias epilogue and its pointer, the
 * workspace and alignment preferences. Host objects only: this needs the cuBLASLt library but no
 * GPU, and is skipped where the library does not load (as in the default build without CUDA; a
 * machine with the nvidia-cublas wheel's libraries and any libcuda.so.1 on LD_LIBRARY_PATH runs it).
 * What the descriptors compute is tested on a GPU (CudaLinearEpilogueTest).
 */
class CublasLtDescriptorTest {
  @BeforeAll
  static void load() {
    try {
      Loader.load(cublas.class);
    } catch (LinkageError e) {
      Assumptions.assumeTrue(false, "cuBLASLt cannot be loaded here (" + e + "): libcublasLt.so.13 and libcuda.so.1 must be on LD_LIBRARY_PATH");
    }
  }

  @Test
  void descriptorsDescribeTheRowMajorLinear() {
    int m = 77, n = 2304, k = 768;
    long bias = 0x7f0012345600L, workspace = 32L << 20;
    for (int type : new int[] {CUDA_R_32F, CUDA_R_16F, CUDA_R_16BF}) {
      for (boolean withBias : new boolean[] {true, false}) {
        for (boolean residual : new boolean[] {true, false}) {
          CublasLt.Problem p = new CublasLt.Problem(m, n, k, type, withBias, residual, 256, 128, 64, 256, withBias ? 256 : 0);
          CublasLt.Plan plan = CublasLt.describe(p, bias, workspace);
          try {
            String what = p.toString();
            assertEquals(CUBLAS_COMPUTE_32F, descInt(plan, CUBLASLT_MATMUL_DESC_COMPUTE_TYPE), what + ": compute type");
            assertEquals(CUDA_R_32F, descInt(plan, CUBLASLT_MATMUL_DESC_SCALE_TYPE), what + ": scale type");
            assertEquals(CUBLAS_OP_T, descInt(plan, CUBLASLT_MATMUL_DESC_TRANSA), what + ": TRANSA");
            assertEquals(CUBLAS_OP_N, descInt(plan, CUBLASLT_MATMUL_DESC_TRANSB), what + ": TRANSB");
            assertEquals(withBias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT, descInt(plan, CUBLASLT_MATMUL_DESC_EPILOGUE), what);
            if (withBias) assertEquals(bias, descLong(plan, CUBLASLT_MATMUL_DESC_BIAS_POINTER), what + ": bias pointer");
            checkLayout(what + " A = w", plan.a, type, k, n, k);
            checkLayout(what + " B = x", plan.b, type, k, m, k);
            checkLayout(what + " C = D = y", plan.c, type, n, m, n);
            try (LongPointer v = new LongPointer(1); SizeTPointer written = new SizeTPointer(1)) {
              CublasLt.check(cublasLtMatmulPreferenceGetAttribute(plan.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, v, 8, written), "get");
              assertEquals(workspace, v.get(), what + ": workspace");
              v.put(0L);
              CublasLt.check(cublasLtMatmulPreferenceGetAttribute(plan.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, v, 4, written), "get");
              assertEquals(256, (int) v.get(), what + ": alignment of A = w");
              v.put(0L);
              CublasLt.check(cublasLtMatmulPreferenceGetAttribute(plan.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, v, 4, written), "get");
              assertEquals(64, (int) v.get(), what + ": alignment of C");
            }
          } finally {
            CublasLt.destroy(plan);
          }
          assertNull(plan.desc);
          assertNull(plan.pref);
        }
      }
    }
  }

  private static int descInt(CublasLt.Plan plan, int attr) {
    try (LongPointer v = new LongPointer(1); SizeTPointer written = new SizeTPointer(1)) {
      CublasLt.check(cublasLtMatmulDescGetAttribute(plan.desc, attr, v, 4, written), "cublasLtMatmulDescGetAttribute(" + attr + ")");
      assertEquals(4, written.get(), "size of attribute " + attr);
      return (int) v.get();
    }
  }

  private static long descLong(CublasLt.Plan plan, int attr) {
    try (LongPointer v = new LongPointer(1); SizeTPointer written = new SizeTPointer(1)) {
      CublasLt.check(cublasLtMatmulDescGetAttribute(plan.desc, attr, v, 8, written), "cublasLtMatmulDescGetAttribute(" + attr + ")");
      assertEquals(8, written.get(), "size of attribute " + attr);
      return v.get();
    }
  }

  private static void checkLayout(String what, cublasLtMatrixLayoutOpaque_t l, int type, long rows, long cols, long ld) {
    assertEquals(type, (int) layout(l, CUBLASLT_MATRIX_LAYOUT_TYPE, 4), what + ": type");
    assertEquals(CUBLASLT_ORDER_COL, (int) layout(l, CUBLASLT_MATRIX_LAYOUT_ORDER, 4), what + ": order");
    assertEquals(rows, layout(l, CUBLASLT_MATRIX_LAYOUT_ROWS, 8), what + ": rows");
    assertEquals(cols, layout(l, CUBLASLT_MATRIX_LAYOUT_COLS, 8), what + ": cols");
    assertEquals(ld, layout(l, CUBLASLT_MATRIX_LAYOUT_LD, 8), what + ": leading dimension");
  }

  private static long layout(cublasLtMatrixLayoutOpaque_t l, int attr, int size) {
    try (LongPointer v = new LongPointer(1); SizeTPointer written = new SizeTPointer(1)) {
      CublasLt.check(cublasLtMatrixLayoutGetAttribute(l, attr, (Pointer) v, size, written), "cublasLtMatrixLayoutGetAttribute(" + attr + ")");
      return v.get();
    }
  }
}
