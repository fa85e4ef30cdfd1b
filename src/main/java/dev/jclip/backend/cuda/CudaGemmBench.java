package dev.jclip.backend.cuda;

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
