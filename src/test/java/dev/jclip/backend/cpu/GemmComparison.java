package dev.jclip.backend.cpu;

import java.util.ArrayList;
import java.util.List;
import org.bytedeco.dnnl.global.dnnl;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.openblas.global.openblas_nolapack;

/**
 * Which native sgemm the CPU backend uses, and how, by measurement (not a unit test: run it by
 * hand, see docs/cpu-backend.md), at CLIP's LINEAR shapes: the backend's way (column blocks over
 * its threads, single-threaded OpenBLAS through FFM on heap arrays), OpenBLAS with its own threads
 * (FFM, heap arrays), OpenBLAS through JavaCPP's {@code float[]} overload (which copies), and
 * oneDNN's {@code dnnl_sgemm} on off-heap memory with its own OpenMP threads.
 * Usage: {@code java -cp ... dev.jclip.backend.cpu.GemmComparison [threads] [seconds] [only]}.
 */
public final class GemmComparison {
  public static void main(String[] args) {
    int threads = args.length > 0 ? Integer.parseInt(args[0]) : Runtime.getRuntime().availableProcessors();
    double seconds = args.length > 1 ? Double.parseDouble(args[1]) : 0.5;
    String only = args.length > 2 ? args[2] : "";
    int[] ms = {50, 77, 1600};
    int[][] kn = CpuGemmBench.CLIP_KN;
    List<String> names = new ArrayList<>();
    List<List<CpuGemmBench.Result>> all = new ArrayList<>();
    if (only.isEmpty() || only.contains("cpu")) {
      try (CpuBackend cpu = new CpuBackend(threads, true)) {
        names.add("backend (split, OpenBLAS 1 thread each)");
        all.add(CpuGemmBench.measure("cpu", CpuGemmBench.backend(cpu), ms, kn, seconds, System.out));
      }
    }
    if (only.isEmpty() || only.contains("openblas")) {
      names.add("OpenBLAS threads");
      all.add(CpuGemmBench.measure("openblas", CpuGemmBench.openblasThreaded(threads), ms, kn, seconds, System.out));
    }
    if (only.isEmpty() || only.contains("javacpp")) {
      names.add("OpenBLAS via JavaCPP float[] (copies)");
      all.add(CpuGemmBench.measure("ob-jcpp", (m, n, k, a, b, c) -> openblas_nolapack.cblas_sgemm(openblas_nolapack.CblasRowMajor,
          openblas_nolapack.CblasNoTrans, openblas_nolapack.CblasTrans, m, n, k, 1f, a, k, b, k, 0f, c, n), ms, kn, seconds, System.out));
    }
    if (only.isEmpty() || only.contains("onednn")) {
      Loader.load(dnnl.class);
      FloatPointer pa = new FloatPointer(1600L * 3072), pb = new FloatPointer(3072L * 3072), pc = new FloatPointer(1600L * 3072);
      names.add("oneDNN (OpenMP threads)");
      all.add(CpuGemmBench.measure("onednn", (m, n, k, a, b, c) -> {
        int rc = dnnl.dnnl_sgemm((byte) 'N', (byte) 'T', m, n, k, 1f, pa, k, pb, k, 0f, pc, n);
        if (rc != 0) throw new IllegalStateException("dnnl_sgemm: " + rc);
      }, ms, kn, seconds, System.out));
    }
    StringBuilder h = new StringBuilder("| M | K | N |");
    for (String n : names) h.append(' ').append(n).append(" |");
    System.out.println(h);
    System.out.println("| ---: | ---: | ---: |" + " ---: |".repeat(names.size()));
    for (int i = 0; i < all.get(0).size(); i++) {
      CpuGemmBench.Result r = all.get(0).get(i);
      StringBuilder row = new StringBuilder(String.format("| %d | %d | %d |", r.m(), r.k(), r.n()));
      for (List<CpuGemmBench.Result> l : all) row.append(String.format(" %.0f |", l.get(i).median()));
      System.out.println(row);
    }
  }
}
