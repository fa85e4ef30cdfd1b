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
            if (p != Precision.FP32) {
              time(device, "flash " + p, () -> ops.flashAttention(out, qkv, b, n, h, causal, p), b, n, h, causal, log);
              time(device, "flash-vkey " + p, () -> ops.flashAttention(out, qkv, b, n, h, causal, p, true), b, n, h, causal, log);
            }
          }
        }
      }
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
