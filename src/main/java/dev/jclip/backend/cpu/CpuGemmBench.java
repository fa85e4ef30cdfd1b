package dev.jclip.backend.cpu;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Measures fp32 GEMM throughput at CLIP's LINEAR shapes ({@code C[M,N] = A[M,K] · W[N,K]ᵀ}, M =
 * 50 / 77 rows for one image / text, 1600 for 32 images): the peak the model benchmark reports its
 * share of. Warm-up, then the median of timed repetitions.
 */
public final class CpuGemmBench {
  private CpuGemmBench() {}

  /** A row-major {@code C[M,N] = A[M,K] · B[N,K]ᵀ}, as the library under test computes it. */
  @FunctionalInterface
  public interface Sgemm {
    void run(int m, int n, int k, float[] a, float[] b, float[] c);
  }

  /** One measured shape: GFLOP/s median and spread. */
  public record Result(String library, int m, int n, int k, double median, double min, double max) {
    @Override
    public String toString() {
      return String.format("%-8s M=%5d N=%5d K=%5d: %7.1f GFLOP/s (min %.1f, max %.1f)", library, m, n, k, median, min, max);
    }
  }

  /** The (K, N) pairs of ViT-B/32 and its text tower: qkv, out_proj, c_fc, c_proj. */
  public static final int[][] CLIP_KN = {{768, 2304}, {768, 768}, {768, 3072}, {3072, 768}, {512, 1536}, {512, 2048}, {2048, 512}};

  /** Times {@code gemm} at every M × (K, N); at least {@code minSeconds} of calls per repetition. */
  public static List<Result> measure(String library, Sgemm gemm, int[] ms, int[][] kn, double minSeconds, PrintStream log) {
    List<Result> out = new ArrayList<>();
    for (int m : ms) {
      for (int[] s : kn) {
        int k = s[0], n = s[1];
        {
          float[] a = fill(new float[m * k]), b = fill(new float[n * k]), c = new float[m * n];
          double flop = 2.0 * m * n * k;
          for (int i = 0; i < 3; i++) gemm.run(m, n, k, a, b, c);
          long t0 = System.nanoTime();
          int calls = 0;
          while (System.nanoTime() - t0 < minSeconds * 1e9 / 5) {
            gemm.run(m, n, k, a, b, c);
            calls++;
          }
          double[] g = new double[5];
          for (int r = 0; r < g.length; r++) {
            long t = System.nanoTime();
            for (int i = 0; i < calls; i++) gemm.run(m, n, k, a, b, c);
            g[r] = flop * calls / ((System.nanoTime() - t) / 1e9) / 1e9;
          }
          Arrays.sort(g);
          Result res = new Result(library, m, n, k, g[2], g[0], g[4]);
          if (log != null) log.println("[gemm] " + res);
          out.add(res);
        }
      }
    }
    return out;
  }

  private static float[] fill(float[] p) {
    for (int i = 0; i < p.length; i++) p[i] = (float) ((i * 2654435761L % 1000) / 1000.0 - 0.5);
    return p;
  }

  /**
   * OpenBLAS's sgemm with OpenBLAS's own {@code threads} threads. This sets OpenBLAS's
   * process-wide thread count: do not run it beside a {@link CpuBackend}.
   */
  public static Sgemm openblasThreaded(int threads) {
    Blas.init(threads);
    return (m, n, k, a, b, c) -> Blas.sgemmNT(m, n, k, a, 0, b, 0, c, 0);
  }

  /** GEMMs as {@code cpu} runs LINEAR: column blocks over its threads, one single-threaded library call (oneDNN or OpenBLAS) each. */
  public static Sgemm backend(CpuBackend cpu) {
    return (m, n, k, a, b, c) -> cpu.gemmNT(m, n, k, a, b, c);
  }

  /** The peak for the benchmark's "share of GEMM peak": the median of the batch-32 shapes, as {@code cpu} runs GEMMs. */
  public static double peakGflops(CpuBackend cpu, PrintStream log) {
    List<Result> r = measure("cpu", backend(cpu), new int[] {1600}, CLIP_KN, 0.5, log);
    double[] g = r.stream().mapToDouble(Result::median).sorted().toArray();
    return g[g.length / 2];
  }

  /** Usage: {@code CpuGemmBench [threads] [fp32|bf16]}: the backend's LINEAR GEMMs at M = 50, 77, 1600. */
  public static void main(String[] args) {
    int threads = args.length > 0 ? Integer.parseInt(args[0]) : Runtime.getRuntime().availableProcessors();
    dev.jclip.backend.Precision precision = dev.jclip.backend.Precision.parse(args.length > 1 ? args[1] : "fp32");
    try (CpuBackend cpu = new CpuBackend(threads, true, precision)) {
      cpu.noteIfScalar(System.err::println);
      measure(cpu.gemmLibrary().replace(' ', '-'), backend(cpu), new int[] {50, 77, 1600}, CLIP_KN, 1.0, System.out);
    }
  }
}
