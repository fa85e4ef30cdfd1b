package dev.jclip.backend.cuda;

import dev.jclip.backend.Precision;
import static org.bytedeco.cuda.global.cudart.CUDA_R_16BF;
import static org.bytedeco.cuda.global.cudart.CUDA_R_16F;

import java.io.PrintStream;
import java.util.Arrays;

/**
 * Measures cuBLAS GEMM throughput on this GPU (fp32 without TF32, fp16 and bf16 with fp32
 * accumulation) at a square size and at CLIP's largest LINEAR shapes: the peak the model benchmark
 * reports its share of. Warm-up, then the median of timed repetitions (device synchronised).
 */
public final class CudaGemmBench {
  private CudaGemmBench() {}

  /** One measured GEMM: TFLOP/s median and spread. */
  public record Result(String type, int m, int n, int k, double medianTflops, double minTflops, double maxTflops) {
    @Override
    public String toString() {
      return String.format("%-5s %6d x %5d x %5d: %8.1f TFLOP/s (min %.1f, max %.1f)", type, m, n, k, medianTflops, minTflops, maxTflops);
    }
  }

  public static Result[] run(CudaDevice device, PrintStream log) {
    int[][] shapes = {{8192, 8192, 8192}, {1024 * 50, 3072, 768}, {1024 * 50, 768, 3072}, {1024 * 257, 4096, 1024}};
    java.util.List<Result> out = new java.util.ArrayList<>();
    try (Cublas blas = new Cublas(device)) {
      for (int[] s : shapes) {
        out.add(measure(device, blas, "fp32", 0, s[0], s[1], s[2]));
        out.add(measure(device, blas, "fp16", CUDA_R_16F, s[0], s[1], s[2]));
        out.add(measure(device, blas, "bf16", CUDA_R_16BF, s[0], s[1], s[2]));
        for (int i = out.size() - 3; i < out.size(); i++) log.println("[gemm] " + out.get(i));
      }
    }
    return out.toArray(Result[]::new);
  }

  /**
   * Times the fused attention kernels at CLIP shapes (ViT-B/32 image and text towers at batch
   * 1024, ViT-L/14@336 image at batch 64): milliseconds per call and effective TFLOP/s of the
   * 4·B·H·N²·64 multiply-adds (causal counted in full).
   */
  public static void attention(CudaDevice device, PrintStream log) {
    int[][] shapes = {{1024, 50, 12, 0}, {1024, 77, 8, 1}, {64, 577, 16, 0}, {256, 197, 12, 0}};
    try (CudaOps ops = new CudaOps(device, null)) {
      for (int[] s : shapes) {
        int b = s[0], n = s[1], h = s[2];
        boolean causal = s[3] == 1;
        for (Precision p : Precision.values()) {
          int elem = p == Precision.FP32 ? 4 : 2;
          long qkvBytes = (long) b * n * 3 * h * 64 * elem;
          try (DeviceBuffer qkv = device.allocate(qkvBytes);
              DeviceBuffer out = device.allocate(qkvBytes / 3)) {
            zero(qkv);
            time(device, p.toString(), () -> ops.attention(out, qkv, b, n, h, causal, p), b, n, h, causal, log);
            if (p != Precision.FP32) time(device, "flash " + p, () -> ops.flashAttention(out, qkv, b, n, h, causal, p), b, n, h, causal, log);
          }
        }
      }
    }
  }

  /**
   * The whole model on the GPU in each precision: a random ViT-B/32 at several batch sizes,
   * images/s and 77-token texts/s, each call including the host-to-device copy of the inputs and
   * the copy of the features back; node by node and replaying a CUDA graph. Median of 5 after 2
   * warm-ups.
   */
  public static void model(CudaDevice device, PrintStream log) {
    dev.jclip.model.ClipConfig cfg = dev.jclip.model.RandomWeights.config("ViT-B/32");
    dev.jclip.model.ClipGraphs graphs = new dev.jclip.model.ClipGraphs(cfg, dev.jclip.model.RandomWeights.generate(cfg, 1));
    for (Precision precision : Precision.values()) {
      for (boolean flash : precision == Precision.FP32 ? new boolean[] {false} : new boolean[] {false, true}) {
        try (CudaBackend backend = new CudaBackend(device, precision, flash)) {
          for (int batch : new int[] {1, 32, 256, 1024}) {
            float[] pixels = new float[batch * 3 * 224 * 224];
            int[] ids = new int[batch * 77];
            for (int b = 0; b < batch; b++) {
              ids[b * 77] = 49406;
              for (int i = 1; i < 76; i++) ids[b * 77 + i] = 1000 + i;
              ids[b * 77 + 76] = 49407;
            }
            for (boolean replay : new boolean[] {false, true}) {
              double img = perSecond(backend, graphs.image(batch), java.util.Map.of("pixels", pixels), batch, replay);
              double txt = perSecond(backend, graphs.text(batch, 77), java.util.Map.of("tokens", ids), batch, replay);
              log.printf("[model] ViT-B/32 %s%s %-10s batch %4d: %9.1f images/s (%.3f ms), %9.1f texts/s (77 tokens)%n", precision,
                  flash ? "+flash" : "", replay ? "cuda-graph" : "launches", batch, img, 1e3 * batch / img, txt);
            }
          }
        }
      }
    }
  }

  private static double perSecond(CudaBackend backend, dev.jclip.graph.Graph graph, java.util.Map<String, ?> inputs, int batch, boolean replay) {
    try (dev.jclip.graph.Executor ex = new dev.jclip.graph.Executor(graph, backend, java.util.List.of(), replay)) {
      for (int i = 0; i < 2; i++) ex.run(inputs);
      double[] s = new double[5];
      for (int r = 0; r < s.length; r++) {
        long t0 = System.nanoTime();
        ex.run(inputs);
        s[r] = (System.nanoTime() - t0) / 1e9;
      }
      Arrays.sort(s);
      return batch / s[2];
    }
  }

  private static void time(CudaDevice device, String what, Runnable call, int b, int n, int h, boolean causal, PrintStream log) {
    for (int i = 0; i < 3; i++) call.run();
    device.synchronize();
    double[] ms = new double[7];
    for (int r = 0; r < ms.length; r++) {
      long t0 = System.nanoTime();
      for (int i = 0; i < 10; i++) call.run();
      device.synchronize();
      ms[r] = (System.nanoTime() - t0) / 1e6 / 10;
    }
    Arrays.sort(ms);
    report(what, ms, b, n, h, causal, log);
  }

  private static void report(String what, double[] ms, int b, int n, int h, boolean causal, PrintStream log) {
    double flop = 4.0 * b * h * (double) n * n * 64;
    log.printf("[attention] %-10s B=%4d N=%3d H=%2d%s: %8.3f ms (min %.3f, max %.3f), %6.1f TFLOP/s%n", what, b, n, h,
        causal ? " causal" : "       ", ms[3], ms[0], ms[ms.length - 1], flop / (ms[3] / 1e3) / 1e12);
  }

  private static Result measure(CudaDevice device, Cublas blas, String type, int cudaType, int m, int n, int k) {
    int elem = cudaType == 0 ? 4 : 2;
    try (DeviceBuffer a = device.allocate((long) m * k * elem);
        DeviceBuffer b = device.allocate((long) n * k * elem);
        DeviceBuffer c = device.allocate((long) m * n * elem)) {
      // contents do not matter for timing, but zeroed memory keeps NaNs out of the way
      zero(a);
      zero(b);
      Runnable gemm = cudaType == 0 ? () -> blas.sgemmNT(m, n, k, 1f, a, b, 0f, c) : () -> blas.gemmExNT(m, n, k, cudaType, a, b, c);
      for (int i = 0; i < 3; i++) gemm.run();
      device.synchronize();
      int reps = 7;
      double[] tflops = new double[reps];
      double flop = 2.0 * m * n * k;
      for (int r = 0; r < reps; r++) {
        int inner = 5;
        long t0 = System.nanoTime();
        for (int i = 0; i < inner; i++) gemm.run();
        device.synchronize();
        double s = (System.nanoTime() - t0) / 1e9 / inner;
        tflops[r] = flop / s / 1e12;
      }
      Arrays.sort(tflops);
      return new Result(type, m, n, k, tflops[reps / 2], tflops[0], tflops[reps - 1]);
    }
  }

  private static void zero(DeviceBuffer buf) {
    CudaDriver.check(org.bytedeco.cuda.global.cudart.cuMemsetD8(buf.address(), (byte) 0, buf.bytes()), "cuMemsetD8");
  }
}
