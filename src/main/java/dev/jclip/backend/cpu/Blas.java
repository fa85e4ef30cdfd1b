package dev.jclip.backend.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.openblas.global.openblas_nolapack;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * OpenBLAS's {@code cblas_sgemm}. The library comes from the JavaCPP preset (which extracts and
 * loads it); the call goes through a critical FFM downcall because that passes heap {@code float[]}
 * to native code without copying, whereas JavaCPP's {@code float[]} overloads copy the arrays in and
 * out on every call (docs/cpu-backend.md has the figures).
 */
final class Blas {
  private static final int ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;

  /** Loaded once per JVM: the native library is process-wide anyway (immutable after class init). */
  private static final MethodHandle SGEMM;
  private static final MethodHandle SET_THREADS;

  static {
    String jni = Loader.load(openblas_nolapack.class);
    Path dir = Path.of(jni).getParent();
    Path lib = dir.resolve("libopenblas_nolapack.so.0");
    if (!Files.exists(lib)) lib = dir.resolve("libopenblas_nolapack.so");
    SymbolLookup look = SymbolLookup.libraryLookup(lib, Arena.global());
    Linker linker = Linker.nativeLinker();
    SGEMM = linker.downcallHandle(look.find("cblas_sgemm").orElseThrow(() -> new IllegalStateException("no cblas_sgemm in " + jni)),
        FunctionDescriptor.ofVoid(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_FLOAT, ADDRESS, JAVA_INT, ADDRESS,
            JAVA_INT, JAVA_FLOAT, ADDRESS, JAVA_INT),
        Linker.Option.critical(true));
    SET_THREADS = linker.downcallHandle(look.find("openblas_set_num_threads").orElseThrow(), FunctionDescriptor.ofVoid(JAVA_INT));
  }

  private Blas() {}

  /** Sets OpenBLAS's thread count (process-wide in OpenBLAS itself). */
  static void init(int threads) {
    try {
      SET_THREADS.invokeExact(threads);
    } catch (Throwable t) {
      throw new IllegalStateException("openblas_set_num_threads failed", t);
    }
  }

  /**
   * Row-major {@code c[M,N] = a[M,K] · b[N,K]ᵀ} on heap arrays (offsets in floats), the layout of
   * PyTorch's F.linear.
   */
  static void sgemmNT(int m, int n, int k, float[] a, int aOff, float[] b, int bOff, float[] c, int cOff) {
    gemm(NO_TRANS, TRANS, m, n, k, seg(a, aOff), k, seg(b, bOff), k, seg(c, cOff), n);
  }

  /** Row-major {@code c[M,N] = a[M,K] · b[K,N]}. */
  static void sgemmNN(int m, int n, int k, float[] a, int aOff, float[] b, int bOff, float[] c, int cOff) {
    gemm(NO_TRANS, NO_TRANS, m, n, k, seg(a, aOff), k, seg(b, bOff), n, seg(c, cOff), n);
  }

  /** Row-major {@code c[M,N] = a[M,K] · b[K,N]} with leading dimensions given. */
  static void sgemm(boolean transB, int m, int n, int k, float[] a, int aOff, int lda, float[] b, int bOff, int ldb, float[] c, int cOff, int ldc) {
    gemm(NO_TRANS, transB ? TRANS : NO_TRANS, m, n, k, seg(a, aOff), lda, seg(b, bOff), ldb, seg(c, cOff), ldc);
  }

  private static MemorySegment seg(float[] a, int off) {
    MemorySegment s = MemorySegment.ofArray(a);
    return off == 0 ? s : s.asSlice(4L * off);
  }

  private static void gemm(int ta, int tb, int m, int n, int k, MemorySegment a, int lda, MemorySegment b, int ldb, MemorySegment c, int ldc) {
    try {
      SGEMM.invokeExact(ROW_MAJOR, ta, tb, m, n, k, 1f, a, lda, b, ldb, 0f, c, ldc);
    } catch (Throwable t) {
      throw new IllegalStateException("cblas_sgemm(" + m + "x" + n + "x" + k + ") failed", t);
    }
  }
}
