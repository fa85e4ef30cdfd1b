package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.Precision;
import dev.jclip.backend.ReferenceOps;
import dev.jclip.testing.TestRandom;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** Every CUDA op against the reference on fresh random inputs at CLIP shapes, fp32 parity mode. */
@Tag("cuda")
class CudaOpsTest {
  static final int[] WIDTHS = {64, 128, 512, 640, 768, 1024, 1280}; // 640: RN50x4's text tower
  static final int[] SEQS = {50, 77, 197, 257, 577};
  static final double FP32_TOL = 1e-5;

  static CudaDevice device;
  static CudaOps ops;
  static Cublas cublas;
  final Random random = TestRandom.create(getClass().getSimpleName());

  @BeforeAll
  static void open() {
    device = CudaTestSupport.openDevice();
    System.out.println("[cuda] testing on " + device + ", driver CUDA " + CudaDriver.driverVersion());
    ops = new CudaOps(device, null);
    cublas = new Cublas(device);
  }

  @AfterAll
  static void close() {
    if (cublas != null) cublas.close();
    if (ops != null) ops.close();
    if (device != null) device.close();
  }

  float[] randn(int n, double scale) {
    return TestRandom.gaussian(random, n, scale);
  }

  DeviceBuffer upload(float[] a) {
    return device.allocate(4L * a.length).upload(a);
  }

  static void assertClose(String what, float[] got, float[] want, double tol) {
    double err = ReferenceOps.relativeError(got, want);
    int worst = 0;
    for (int i = 0; i < got.length; i++) if (Math.abs(got[i] - want[i]) > Math.abs(got[worst] - want[worst])) worst = i;
    assertTrue(err <= tol, what + ": relative error " + err + " > " + tol + "; worst at " + worst + ": got " + got[worst]
        + ", want " + want[worst]);
  }

  @Test
  void biasActivationsMatchReference() {
    for (int d : WIDTHS) {
      int cols = 4 * d; // the MLP hidden width c_fc produces
      int rows = SEQS[random.nextInt(SEQS.length)] * (1 + random.nextInt(2));
      float[] x = randn(rows * cols, 3);
      float[] bias = randn(cols, 0.5);
      try (DeviceBuffer dx = upload(x);
          DeviceBuffer db = upload(bias);
          DeviceBuffer dx2 = upload(x)) {
        ops.biasQuickGelu(dx, db, rows, cols);
        assertClose("bias+QuickGELU " + rows + "x" + cols, dx.downloadFloats(x.length), ReferenceOps.biasQuickGelu(x, bias, cols), FP32_TOL);
        ops.biasGelu(dx2, db, rows, cols);
        assertClose("bias+GELU " + rows + "x" + cols, dx2.downloadFloats(x.length), ReferenceOps.biasGelu(x, bias, cols), FP32_TOL);
      }
    }
    // no bias
    float[] x = randn(77 * 64, 2);
    try (DeviceBuffer dx = upload(x)) {
      ops.biasQuickGelu(dx, null, 77, 64);
      assertClose("QuickGELU without bias", dx.downloadFloats(x.length), ReferenceOps.biasQuickGelu(x, null, 64), FP32_TOL);
    }
  }

  /**
   * layernorm_stats (each row's mean and 1/sqrt(var + eps), for the LayerNorm folded into a GEMM)
   * against double sums of the same 16-bit (or fp32) values, on rows with means of a few units,
   * at every width the vector kernels take up to 4 packs a lane; wider rows (and fp32 past 512)
   * are refused, nothing queued. Used as LayerNorm statistics, they normalise the row as the
   * LayerNorm kernel does: within 1e-5 relative of it (fp32).
   */
  @Test
  void layerNormStatsMatchTheRowsMeanAndSpread() {
    for (Precision p : Precision.values()) {
      for (int d : new int[] {64, 512, 640, 768, 1024, 1280}) {
        int rows = 1 + random.nextInt(700);
        float[] x = new float[rows * d];
        for (int r = 0; r < rows; r++) {
          double mean = 3 * random.nextGaussian(), spread = 0.2 + 2 * random.nextDouble();
          for (int c = 0; c < d; c++) x[r * d + c] = (float) (mean + spread * random.nextGaussian());
        }
        float[] seen = p == Precision.FP32 ? x : CudaAttentionTest.fromHalf(CudaAttentionTest.toHalf(x, p), p);
        boolean fits = d / (16 / p.bytes()) <= 128;
        try (DeviceBuffer dx = p == Precision.FP32 ? upload(x) : device.allocate(2L * x.length).upload(CudaAttentionTest.toHalf(x, p));
            DeviceBuffer stats = device.allocate(8L * rows).zero()) {
          boolean ran = ops.layerNormStats(stats, dx, rows, d, 1e-5f, p);
          org.junit.jupiter.api.Assertions.assertEquals(fits, ran, p + " D=" + d + ": taken or refused");
          if (!ran) continue;
          float[] got = stats.downloadFloats(2 * rows);
          double worstMean = 0, worstRstd = 0;
          for (int r = 0; r < rows; r++) {
            double sum = 0, sq = 0;
            for (int c = 0; c < d; c++) sum += seen[r * d + c];
            double mean = sum / d;
            for (int c = 0; c < d; c++) sq += (seen[r * d + c] - mean) * (seen[r * d + c] - mean);
            double rstd = 1 / Math.sqrt(sq / d + 1e-5), std = 1 / rstd;
            worstMean = Math.max(worstMean, Math.abs(got[2 * r] - mean) / (Math.abs(mean) + std));
            worstRstd = Math.max(worstRstd, Math.abs(got[2 * r + 1] - rstd) / rstd);
          }
          System.out.printf("[cuda] layernorm_stats %-4s D=%-4d rows=%-3d mean error %.1e (of |mean| + std), rstd %.1e%n", p, d, rows, worstMean, worstRstd);
          assertTrue(worstMean <= 1e-5 && worstRstd <= 1e-5, p + " D=" + d + ": mean " + worstMean + ", rstd " + worstRstd);
        }
      }
    }
  }

  @Test
  void addLayerNormMatchesReference() {
    // every CLIP width, and ViT-bigG's 1664
    int[] widths = java.util.stream.IntStream.concat(java.util.Arrays.stream(WIDTHS), java.util.stream.IntStream.of(1664)).toArray();
    for (int d : widths) {
      for (int seq : SEQS) {
        int rows = seq * (1 + random.nextInt(2));
        float[] x = randn(rows * d, 1);
        float[] res = randn(rows * d, 2);
        float[] g = randn(d, 0.1);
        for (int i = 0; i < d; i++) g[i] += 1;
        float[] b = randn(d, 0.05);
        float[] sum = new float[x.length];
        for (int i = 0; i < x.length; i++) sum[i] = x[i] + res[i];
        try (DeviceBuffer dx = upload(x);
            DeviceBuffer dr = upload(res);
            DeviceBuffer dg = upload(g);
            DeviceBuffer db = upload(b);
            DeviceBuffer out = device.allocate(4L * x.length);
            DeviceBuffer dsum = device.allocate(4L * x.length)) {
          ops.addLayerNorm(out, dsum, dx, dr, dg, db, rows, d, 1e-5f);
          String shape = rows + "x" + d;
          assertClose("add+LayerNorm " + shape, out.downloadFloats(x.length), ReferenceOps.addLayerNorm(x, res, g, b, rows, d, 1e-5), FP32_TOL);
          assertClose("residual sum " + shape, dsum.downloadFloats(x.length), sum, 0);
          // plain LayerNorm, in place
          ops.addLayerNorm(dx, null, dx, null, dg, db, rows, d, 1e-5f);
          assertClose("LayerNorm in place " + shape, dx.downloadFloats(x.length), ReferenceOps.addLayerNorm(x, null, g, b, rows, d, 1e-5), FP32_TOL);
        }
      }
    }
  }

  @Test
  void cublasSgemmIsFp32Exact() {
    // LINEAR shapes of CLIP: [B*N, D] x [D', D]^T
    int[][] shapes = {{50, 768, 768}, {77, 2048, 512}, {2 * 197, 768, 3072}, {257, 3 * 1024, 1024}, {64, 512, 768}, {1, 512, 512}};
    for (int[] s : shapes) {
      int m = s[0], n = s[1], k = s[2];
      float[] a = randn(m * k, 1);
      float[] w = randn(n * k, 1 / Math.sqrt(k));
      try (DeviceBuffer da = upload(a);
          DeviceBuffer dw = upload(w);
          DeviceBuffer dc = device.allocate(4L * m * n)) {
        cublas.sgemmNT(m, n, k, 1f, da, dw, 0f, dc);
        assertClose("sgemm " + m + "x" + n + "x" + k, dc.downloadFloats(m * n), ReferenceOps.linear(a, w, null, m, n, k), FP32_TOL);
      }
    }
  }

  /** Random values of {@code p} as raw bits (fp32 bit patterns, or 16-bit halves widened to int). */
  DeviceBuffer uploadAs(Precision p, float[] v) {
    return fill(device.allocate((p == Precision.FP32 ? 4L : 2L) * v.length), p, v);
  }

  /** Writes {@code v} in precision {@code p} to the start of {@code target}. */
  static DeviceBuffer fill(DeviceBuffer target, Precision p, float[] v) {
    return p == Precision.FP32 ? target.upload(v) : target.upload(CudaAttentionTest.toHalf(v, p));
  }

  /** The same bit patterns, but that a zero may have either sign. */
  static void sameUpToSignOfZero(Precision p, int[] want, int[] got, String what) {
    int magnitude = p == Precision.FP32 ? 0x7fffffff : 0x7fff;
    for (int i = 0; i < want.length; i++) {
      if (want[i] != got[i] && ((want[i] & magnitude) != 0 || (got[i] & magnitude) != 0)) {
        throw new AssertionError(what + ": element " + i + " is 0x" + Integer.toHexString(got[i]) + ", want 0x" + Integer.toHexString(want[i]));
      }
    }
  }

  static int[] bits(Precision p, DeviceBuffer b, int n) {
    int[] out = new int[n];
    if (p == Precision.FP32) {
      float[] f = b.downloadFloats(n);
      for (int i = 0; i < n; i++) out[i] = Float.floatToRawIntBits(f[i]);
    } else {
      short[] h = b.downloadShorts(n);
      for (int i = 0; i < n; i++) out[i] = h[i];
    }
    return out;
  }

  /**
   * The vectorized bias + activation pass (what LINEAR uses) writes exactly what the plain
   * per-element kernel writes, in every precision and activation, with and without bias, at the
   * MLP widths of every CLIP model; shapes it cannot take (cols not a multiple of the pack, a
   * misaligned buffer) fall back to the plain kernel.
   */
  @Test
  void vectorizedBiasActIsBitIdenticalToThePlainKernel() {
    int[] colsList = {8 * 4 * 64, 4 * 512, 4 * 768, 4 * 1024, 4 * 1280, 2304, 768, 24, 100, 4};
    for (Precision p : Precision.values()) {
      int elem = p == Precision.FP32 ? 4 : 2;
      for (int cols : colsList) {
        for (int act = 0; act <= 2; act++) {
          int rows = 1 + random.nextInt(160);
          float[] x = randn(rows * cols, 3);
          float[] bias = random.nextBoolean() || act == 0 ? randn(cols, 0.5) : null;
          boolean misalign = random.nextInt(4) == 0;
          String what = p + " act " + act + " " + rows + "x" + cols + (bias == null ? " no bias" : "") + (misalign ? " misaligned" : "");
          try (DeviceBuffer plain = uploadAs(p, x);
              DeviceBuffer whole = device.allocate((long) elem * (x.length + 8));
              DeviceBuffer db = bias == null ? null : upload(bias)) {
            // the same input at a 16-byte aligned or a one-element-off offset of a larger buffer
            DeviceBuffer fast = fill(whole.view(misalign ? elem : 0, (long) elem * x.length), p, x);
            ops.glue("bias_act_" + CudaOps.suffix(p), (long) rows * cols, plain, db, (long) rows, cols, act);
            ops.biasAct(fast, db, rows, cols, act, p);
            assertArrayEquals(bits(p, plain, x.length), bits(p, fast, x.length), what);
          }
        }
      }
    }
  }

  /**
   * The patch-row copy (one block a row) and the vector copy (8, 4 or 2 pixels a thread, as P and the
   * precision allow) equal the plain per-element patchify at every ViT geometry.
   */
  @Test
  void patchRowsEqualThePlainPatchify() {
    int[][] geometries = {{224, 32}, {224, 16}, {224, 14}, {336, 14}, {240, 16}, {35, 7}};
    for (Precision p : Precision.values()) {
      int elem = p == Precision.FP32 ? 4 : 2;
      for (int[] g : geometries) {
        int b = 1 + random.nextInt(3), c = 3, hw = g[0], patch = g[1];
        float[] px = randn(b * c * hw * hw, 1);
        long out = (long) b * (hw / patch) * (hw / patch) * c * patch * patch;
        try (DeviceBuffer dpx = uploadAs(p, px);
            DeviceBuffer want = device.allocate(elem * out);
            DeviceBuffer got = device.allocate(elem * out)) {
          ops.glue("patchify_" + CudaOps.suffix(p), out, want, dpx, b, c, hw, hw, patch);
          ops.patchify(got, dpx, b, c, hw, hw, patch, p);
          assertArrayEquals(bits(p, want, (int) out), bits(p, got, (int) out), p + " " + b + "x" + c + "x" + hw + " patch " + patch);
          got.zero();
          ops.patchify(got, dpx, b, c, hw, hw, patch, p, true);
          assertArrayEquals(bits(p, want, (int) out), bits(p, got, (int) out), p + " " + b + "x" + c + "x" + hw + " patch " + patch + ", vector");
        }
      }
    }
  }

  /**
   * The vector LayerNorm (16-byte accesses, the row in registers): fp32 against the reference within
   * 1e-5 at every width it takes; fp16 and bf16 against the plain kernel on the same inputs within
   * one unit in the last place (the statistics are summed in another order), the residual sum bit
   * for bit; widths it does not take and misaligned buffers run the plain kernel, bit for bit. The
   * warps kernel (gamma and beta in registers, warps walking rows), the shared-memory kernel and
   * the streaming one (the next row loaded early) write the vector kernel's bits, with and without
   * a residual, in place, on more rows than they have warps; the two-row streaming one (no residual:
   * the next two rows loaded early), walking the rows first to last or last to first, the
   * streaming one's, in place and with x written as the sum.
   */
  @Test
  void vectorLayerNormMatchesTheReferenceAndThePlainKernel() {
    int[] widths = {64, 128, 512, 640, 768, 1024, 1280, 100, 1664};
    for (Precision p : Precision.values()) {
      int elem = p.bytes();
      for (int d : widths) {
        // a few rows, or more rows than the row-walking kernels have warps (up to 4 blocks of 8 an SM),
        // up to 5 rows a warp (the streaming kernels' early loads of the next row or two)
        int rows = random.nextBoolean() ? 1 + random.nextInt(200) : 32 * device.multiprocessors() * (1 + random.nextInt(5)) + 1 + random.nextInt(3000);
        boolean misalign = random.nextInt(4) == 0;
        float[] x = randn(rows * d, 1), res = randn(rows * d, 2), g = randn(d, 0.1), b = randn(d, 0.05);
        for (int i = 0; i < d; i++) g[i] += 1;
        boolean fits = CudaOps.vectorLayerNormFits(d, p) && !misalign;
        String what = p + " " + rows + "x" + d + (misalign ? " misaligned" : "") + (fits ? "" : " (plain kernel)");
        try (DeviceBuffer whole = device.allocate((long) elem * (x.length + 8));
            DeviceBuffer dr = uploadAs(p, res);
            DeviceBuffer dg = upload(g);
            DeviceBuffer db = upload(b);
            DeviceBuffer plainOut = device.allocate((long) elem * x.length);
            DeviceBuffer plainSum = device.allocate((long) elem * x.length);
            DeviceBuffer vecOut = device.allocate((long) elem * x.length);
            DeviceBuffer vecSum = device.allocate((long) elem * x.length);
            DeviceBuffer warpsOut = device.allocate((long) elem * x.length);
            DeviceBuffer warpsSum = device.allocate((long) elem * x.length);
            DeviceBuffer streamOut = device.allocate((long) elem * x.length);
            DeviceBuffer streamSum = device.allocate((long) elem * x.length)) {
          DeviceBuffer dx = fill(whole.view(misalign ? elem : 0, (long) elem * x.length), p, x);
          ops.layerNorm(plainOut, plainSum, dx, dr, dg, db, rows, d, 1e-5f, p, CudaOps.LayerNormKernel.PLAIN);
          ops.layerNorm(vecOut, vecSum, dx, dr, dg, db, rows, d, 1e-5f, p, CudaOps.LayerNormKernel.VECTOR);
          assertArrayEquals(bits(p, plainSum, x.length), bits(p, vecSum, x.length), what + ": residual sum");
          // layernorm_warps: the vector kernel's arithmetic, warps walking many rows: the same bits
          ops.layerNorm(warpsOut, warpsSum, dx, dr, dg, db, rows, d, 1e-5f, p, CudaOps.LayerNormKernel.WARPS);
          assertArrayEquals(bits(p, vecSum, x.length), bits(p, warpsSum, x.length), what + ": residual sum, warps kernel");
          assertArrayEquals(bits(p, vecOut, x.length), bits(p, warpsOut, x.length), what + ": warps kernel against the vector one");
          // layernorm_smem: the same arithmetic with gamma and beta in shared memory: the same bits
          warpsOut.zero();
          warpsSum.zero();
          ops.layerNorm(warpsOut, warpsSum, dx, dr, dg, db, rows, d, 1e-5f, p, CudaOps.LayerNormKernel.SHARED);
          assertArrayEquals(bits(p, vecSum, x.length), bits(p, warpsSum, x.length), what + ": residual sum, shared-memory kernel");
          assertArrayEquals(bits(p, vecOut, x.length), bits(p, warpsOut, x.length), what + ": shared-memory kernel against the vector one");
          // layernorm_stream_res: the shared-memory kernel loading each warp's next row early: the same bits
          warpsOut.zero();
          warpsSum.zero();
          ops.layerNorm(warpsOut, warpsSum, dx, dr, dg, db, rows, d, 1e-5f, p, CudaOps.LayerNormKernel.STREAM);
          assertArrayEquals(bits(p, vecSum, x.length), bits(p, warpsSum, x.length), what + ": residual sum, streaming kernel");
          assertArrayEquals(bits(p, vecOut, x.length), bits(p, warpsOut, x.length), what + ": streaming kernel against the vector one");
          // and without residual or sum (the transformer's ln_1 and ln_2), in place
          try (DeviceBuffer inPlace = uploadAs(p, res)) {
            ops.layerNorm(warpsSum, null, inPlace, null, dg, db, rows, d, 1e-5f, p, CudaOps.LayerNormKernel.VECTOR);
            ops.layerNorm(inPlace, null, inPlace, null, dg, db, rows, d, 1e-5f, p, CudaOps.LayerNormKernel.WARPS);
            assertArrayEquals(bits(p, warpsSum, x.length), bits(p, inPlace, x.length), what + ": warps kernel in place, no residual");
          }
          try (DeviceBuffer inPlace = uploadAs(p, res)) {
            ops.layerNorm(inPlace, null, inPlace, null, dg, db, rows, d, 1e-5f, p, CudaOps.LayerNormKernel.SHARED);
            assertArrayEquals(bits(p, warpsSum, x.length), bits(p, inPlace, x.length), what + ": shared-memory kernel in place, no residual");
          }
          try (DeviceBuffer inPlace = uploadAs(p, res)) {
            // layernorm_stream (no residual): its early loads of the next row must not see this row's stores
            ops.layerNorm(inPlace, null, inPlace, null, dg, db, rows, d, 1e-5f, p, CudaOps.LayerNormKernel.STREAM);
            assertArrayEquals(bits(p, warpsSum, x.length), bits(p, inPlace, x.length), what + ": streaming kernel in place, no residual");
          }
          int[] noResidual = bits(p, warpsSum, x.length); // the vector kernel's LayerNorm of res alone (warpsSum is reused below)
          for (CudaOps.LayerNormKernel deep : new CudaOps.LayerNormKernel[] {CudaOps.LayerNormKernel.DEEP, CudaOps.LayerNormKernel.DEEP_REVERSED}) {
            String name = deep == CudaOps.LayerNormKernel.DEEP ? "two-row streaming kernel" : "two-row streaming kernel, rows last to first";
            try (DeviceBuffer inPlace = uploadAs(p, res)) {
              // layernorm_deep[_rev] (no residual): the next two rows loaded early, in place
              ops.layerNorm(inPlace, null, inPlace, null, dg, db, rows, d, 1e-5f, p, deep);
              assertArrayEquals(noResidual, bits(p, inPlace, x.length), what + ": " + name + " in place, no residual");
            }
            // and out of place with the sum written (x itself: no residual)
            warpsOut.zero();
            warpsSum.zero();
            streamOut.zero();
            streamSum.zero();
            ops.layerNorm(streamOut, streamSum, dx, null, dg, db, rows, d, 1e-5f, p, CudaOps.LayerNormKernel.STREAM);
            ops.layerNorm(warpsOut, warpsSum, dx, null, dg, db, rows, d, 1e-5f, p, deep);
            // x itself as the sum (the streaming kernels' x + 0 makes a -0 +0; the two-row ones write x as it is)
            sameUpToSignOfZero(p, bits(p, dx, x.length), bits(p, warpsSum, x.length), what + ": x as the sum, " + name);
            assertArrayEquals(bits(p, streamOut, x.length), bits(p, warpsOut, x.length), what + ": " + name + " against the streaming one");
            // with a residual it is the streaming kernel (the vector kernel's bits, above)
            warpsOut.zero();
            ops.layerNorm(warpsOut, null, dx, dr, dg, db, rows, d, 1e-5f, p, deep);
            assertArrayEquals(bits(p, vecOut, x.length), bits(p, warpsOut, x.length), what + ": with a residual, the streaming kernel (" + name + ")");
          }
          if (!fits) {
            assertArrayEquals(bits(p, plainOut, x.length), bits(p, vecOut, x.length), what);
          } else if (p == Precision.FP32) {
            assertClose("vector LayerNorm " + what, vecOut.downloadFloats(x.length), ReferenceOps.addLayerNorm(x, res, g, b, rows, d, 1e-5),
                FP32_TOL);
          } else {
            float[] want = CudaAttentionTest.fromHalf(plainOut.downloadShorts(x.length), p);
            float[] got = CudaAttentionTest.fromHalf(vecOut.downloadShorts(x.length), p);
            double ulp = p == Precision.FP16 ? 0x1p-10 : 0x1p-7;
            assertClose("vector LayerNorm against the plain kernel " + what, got, want, ulp);
          }
        }
      }
    }
  }

  /**
   * The fast bias + activation pass (fp16/bf16, QuickGELU through the fast intrinsics) is within one
   * unit in the last place of the exact kernel element by element, and bit for bit the same without
   * an activation and with the erf GELU, at every CLIP MLP width, with and without bias; shapes it
   * cannot take fall back to the exact kernels. Walked from the last pack to the first it writes
   * the same bits.
   */
  @Test
  void fastBiasActIsWithinOneUlpOfTheExactKernel() {
    int[] colsList = {4 * 512, 4 * 640, 4 * 768, 4 * 1024, 4 * 1280, 2304, 768, 100, 4};
    for (Precision p : new Precision[] {Precision.FP16, Precision.BF16}) {
      for (int cols : colsList) {
        for (int act = 0; act <= 2; act++) {
          int rows = 1 + random.nextInt(300);
          float[] x = randn(rows * cols, 4);
          float[] bias = random.nextBoolean() || act == 0 ? randn(cols, 0.5) : null;
          String what = p + " act " + act + " " + rows + "x" + cols + (bias == null ? " no bias" : "");
          try (DeviceBuffer exact = uploadAs(p, x);
              DeviceBuffer fast = uploadAs(p, x);
              DeviceBuffer reversed = uploadAs(p, x);
              DeviceBuffer db = bias == null ? null : upload(bias)) {
            ops.biasAct(exact, db, rows, cols, act, p, false);
            ops.biasAct(fast, db, rows, cols, act, p, true);
            ops.biasAct(reversed, db, rows, cols, act, p, true, true);
            int[] want = bits(p, exact, x.length), got = bits(p, fast, x.length);
            // bias_act_fast_rev: the packs walked last to first, each computed alike: the fast kernel's bits
            assertArrayEquals(got, bits(p, reversed, x.length), what + ": the fast pass walked last to first");
            if (act != 1) {
              assertArrayEquals(want, got, what);
              continue;
            }
            int off = 0;
            for (int i = 0; i < want.length; i++) {
              int d = Math.abs(ordered(want[i]) - ordered(got[i]));
              assertTrue(d <= 1, what + ": element " + i + " is " + d + " units in the last place off (exact 0x"
                  + Integer.toHexString(want[i] & 0xffff) + ", fast 0x" + Integer.toHexString(got[i] & 0xffff) + ")");
              if (d != 0) off++;
            }
            System.out.printf("[bias_act_fast] %s: %d of %d elements one unit in the last place off%n", what, off, want.length);
          }
        }
      }
    }
  }

  /** A 16-bit pattern (sign bit 15) as an integer that counts representable values in order, -0 and +0 alike. */
  static int ordered(int bits16) {
    int b = bits16 & 0xffff;
    return (b & 0x8000) != 0 ? -(b & 0x7fff) : b;
  }

  /**
   * The vector class/position embedding and token embedding kernels write the plain kernels' bits at
   * every CLIP width; widths that are not a multiple of 16 bytes and misaligned buffers fall back to
   * the plain kernels.
   */
  @Test
  void vectorEmbeddingsEqualThePlainKernels() {
    int[] widths = {512, 640, 768, 1024, 1280, 100};
    for (Precision p : Precision.values()) {
      int elem = p.bytes();
      for (int d : widths) {
        int b = 1 + random.nextInt(40), n = random.nextBoolean() ? 50 : 257, l = 77, vocab = 300;
        boolean misalign = random.nextInt(4) == 0;
        String what = p + " D " + d + (misalign ? " misaligned" : "");
        float[] patches = randn(b * (n - 1) * d, 1), cls = randn(d, 1), pos = randn(n * d, 0.1), tok = randn(vocab * d, 1), tpos = randn(l * d, 0.1);
        int[] ids = new int[b * l];
        for (int i = 0; i < ids.length; i++) ids[i] = random.nextInt(vocab);
        try (DeviceBuffer dp = uploadAs(p, patches);
            DeviceBuffer dc = upload(cls);
            DeviceBuffer dpos = upload(pos);
            DeviceBuffer dtok = upload(tok);
            DeviceBuffer dtpos = upload(tpos);
            DeviceBuffer dids = device.allocate(4L * ids.length).upload(ids);
            DeviceBuffer want = device.allocate((long) elem * b * Math.max(n, l) * d);
            DeviceBuffer whole = device.allocate((long) elem * (b * Math.max(n, l) * d + 8))) {
          DeviceBuffer got = whole.view(misalign ? elem : 0, (long) elem * b * Math.max(n, l) * d);
          int count = b * n * d;
          ops.classPosEmbed(want, dp, dc, dpos, b, n, d, p, false);
          ops.classPosEmbed(got, dp, dc, dpos, b, n, d, p, true);
          assertArrayEquals(bits(p, want, count), bits(p, got, count), what + ": class and position embeddings");
          count = b * l * d;
          ops.tokenEmbed(want, dids, dtok, dtpos, b, l, d, p, false);
          ops.tokenEmbed(got, dids, dtok, dtpos, b, l, d, p, true);
          assertArrayEquals(bits(p, want, count), bits(p, got, count), what + ": token embeddings");
        }
      }
    }
  }
}
