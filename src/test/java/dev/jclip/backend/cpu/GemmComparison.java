package dev.jclip.backend.cpu;

import java.util.ArrayList;
import java.util.List;
import org.bytedeco.dnnl.global.dnnl;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.openblas.global.openblas_nolapack;

/**
 * Which native sgemm the CPU backend uses, by measurement (not a unit test: run it by hand, see
 * docs/cpu-backend.md): OpenBLAS through FFM on off-heap and on heap arrays, OpenBLAS through
 * JavaCPP's {@code float[]} overload (which copies), and oneDNN's {@code dnnl_sgemm}, at CLIP's
 * LINEAR shapes. Usage: {@code java -cp ... dev.jclip.backend.cpu.GemmComparison [threads] [seconds]}.
 */
public final class GemmComparison {
  public static void main(String[] args) {
    int threads = args.length > 0 ? Integer.parseInt(args[0]) : Runtime.getRuntime().availableProcessors();
    double seconds = args.length > 1 ? Double.parseDouble(args[1]) : 0.5;
    int[] ms = {50, 77, 1600};
    Loader.load(dnnl.class);
    float[] ha = new float[1600 * 3072], hb = new float[3072 * 3072], hc = new float[1600 * 3072];
    for (int i = 0; i < ha.length; i++) ha[i] = (i % 1000) / 1000f - 0.5f;
    for (int i = 0; i < hb.length; i++) hb[i] = (i % 997) / 997f - 0.5f;
    List<CpuGemmBench.Result> all = new ArrayList<>();
    all.addAll(CpuGemmBench.measure("openblas", CpuGemmBench.openblas(threads), ms, CpuGemmBench.CLIP_KN, seconds, System.out));
    all.addAll(CpuGemmBench.measure("ob-heap", (m, n, k, a, b, c) -> Blas.sgemmNT(m, n, k, ha, 0, hb, 0, hc, 0), ms, CpuGemmBench.CLIP_KN,
        seconds, System.out));
    all.addAll(CpuGemmBench.measure("ob-jcpp", (m, n, k, a, b, c) -> openblas_nolapack.cblas_sgemm(openblas_nolapack.CblasRowMajor,
        openblas_nolapack.CblasNoTrans, openblas_nolapack.CblasTrans, m, n, k, 1f, ha, k, hb, k, 0f, hc, n), ms, CpuGemmBench.CLIP_KN,
        seconds, System.out));
    all.addAll(CpuGemmBench.measure("onednn", (m, n, k, a, b, c) -> {
      int rc = dnnl.dnnl_sgemm((byte) 'N', (byte) 'T', m, n, k, 1f, a, k, b, k, 0f, c, n);
      if (rc != 0) throw new IllegalStateException("dnnl_sgemm: " + rc);
    }, ms, CpuGemmBench.CLIP_KN, seconds, System.out));
    System.out.println("| M | K | N | OpenBLAS (off-heap) | OpenBLAS (heap, FFM) | OpenBLAS (JavaCPP float[]) | oneDNN |");
    System.out.println("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    int per = all.size() / 4;
    for (int i = 0; i < per; i++) {
      CpuGemmBench.Result r = all.get(i);
      System.out.printf("| %d | %d | %d | %.0f | %.0f | %.0f | %.0f |%n", r.m(), r.k(), r.n(), r.median(), all.get(i + per).median(),
          all.get(i + 2 * per).median(), all.get(i + 3 * per).median());
    }
  }
}
