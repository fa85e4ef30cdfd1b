package dev.jclip.backend.cuda;

import static dev.jclip.backend.cuda.CudaAttentionTest.fromHalf;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.jclip.backend.Precision;
import dev.jclip.backend.ReferenceOps;
import dev.jclip.testing.TestRandom;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * gemm_sm90's ew16 kernels ({@link Sm90Gemm.Schedule#EPILOGUE_WARPS_16}: the epilogue-warps
 * schedule with the tile staged in 16 bits after the bias and a folded LayerNorm, and a ring of 6
 * stages), against the cooperative kernel. Without an activation or a residual the same bits
 * (in_proj, alone and with a LayerNorm folded in: the one-ulp allowance CudaSm90EpilogueWarpsTest
 * gives its fold). With an activation or a residual the epilogue warps round a second time, so
 * each output is held within 4 units of 16-bit rounding of its row's largest output (a misplaced
 * row or column is off by the outputs' own size) and each row within the 16-bit tolerance
 * (fp16 1e-3, bf16 8e-3, relative) of the cooperative kernel's. Then the statistics kernel (C the
 * residual kernel's bits, the parts the stored rows' within 1e-5), the mainloop alone, and a
 * transformer block through the backend with every LINEAR, both folds and their statistics on the
 * ew16 kernels, CUDA-graph replay included. A class of its own: a fault leaves only these tests'
 * context unusable, and run.sh then leaves the "ew16" profile columns out. Skipped (with the
 * reason) off compute capability 9.0.
 */
@Tag("cuda")
class CudaSm90EpilogueWarps16Test {
  static final Random RNG = TestRandom.create("CudaSm90EpilogueWarps16Test");
  static final Sm90Gemm.Schedule EW16 = Sm90Gemm.Schedule.EPILOGUE_WARPS_16, COOPERATIVE = Sm90Gemm.Schedule.COOPERATIVE;
  static CudaDevice device;

  @RegisterExtension
  static final CudaTestSupport.Gpu GPU = CudaTestSupport.sm90(d -> device = d);

  /** in_proj-like problems (bias, no activation, no residual): the staged bits are the outputs, the cooperative kernel's. */
  @Test
  void withoutActivationOrResidualTheCooperativeKernelsBits() {
    List<CudaSm90GemmTest.Problem> problems = List.of(new CudaSm90GemmTest.Problem("text in_proj", 154, 1536, 512, 0, true, false),
        new CudaSm90GemmTest.Problem("image in_proj", 200, 2304, 768, 0, true, false),
        new CudaSm90GemmTest.Problem("N tail", 129, 520, 768, 0, true, false), new CudaSm90GemmTest.Problem("no bias", 77, 512, 512, 0, false, false),
        new CudaSm90GemmTest.Problem("one K step", 200, 768, 32, 0, true, false),
        new CudaSm90GemmTest.Problem("6 tiles a block", 66 * 128, 12 * 256, 512, 0, true, false));
    CudaSm90EpilogueWarpsTest.eachProblem(device, problems, (gemm, stream, in, what) -> {
      short[] cooperative = in.run(gemm, stream, COOPERATIVE, false, 0);
      long before = gemm.epilogueWarps16Launches();
      short[] ew16 = in.run(gemm, stream, EW16, false, 0);
      assertEquals(before + 1, gemm.epilogueWarps16Launches(), "the ew16 kernel did not run");
      assertArrayEquals(cooperative, ew16, what + ": not the cooperative kernel's bits");
      System.out.printf("[gemm_sm90 ew16] %-60s the cooperative kernel's bits%n", what);
    });
  }

  /**
   * c_fc (QuickGELU), the erf GELU with N off the tile, out_proj and c_proj with their residuals,
   * and six tiles a block with QuickGELU: within the second rounding of the cooperative kernel's
   * outputs ({@link #withinSecondRounding}), and within the 16-bit tolerance of a double product
   * where that is cheap.
   */
  @Test
  void activationsAndResidualsWithinTheirSecondRounding() {
    List<CudaSm90GemmTest.Problem> problems = List.of(new CudaSm90GemmTest.Problem("text c_fc", 154, 2048, 512, 1, true, false),
        new CudaSm90GemmTest.Problem("image c_fc", 200, 3072, 768, 1, true, false),
        new CudaSm90GemmTest.Problem("GELU N tail", 129, 520, 768, 2, true, false),
        new CudaSm90GemmTest.Problem("out_proj", 154, 512, 512, 0, true, true), new CudaSm90GemmTest.Problem("c_proj", 200, 768, 3072, 0, true, true),
        new CudaSm90GemmTest.Problem("6 tiles a block", 66 * 128, 12 * 256, 512, 1, true, false));
    CudaSm90EpilogueWarpsTest.eachProblem(device, problems, (gemm, stream, in, what) -> {
      CudaSm90GemmTest.Problem pr = in.pr;
      short[] cooperative = in.run(gemm, stream, COOPERATIVE, false, 0);
      long before = gemm.epilogueWarps16Launches();
      short[] ew16 = in.run(gemm, stream, EW16, false, 0);
      assertEquals(before + 1, gemm.epilogueWarps16Launches(), "the ew16 kernel did not run");
      String row = withinSecondRounding(cooperative, ew16, pr.m(), pr.n(), in.p, what);
      String vsDouble = "";
      if ((double) pr.m() * pr.n() * pr.k() <= 1e8) {
        double tol = in.p == Precision.FP16 ? 1e-3 : 8e-3, err = ReferenceOps.relativeError(fromHalf(ew16, in.p), in.want());
        vsDouble = String.format("; vs double %.2e", err);
        assertTrue(err <= tol, what + ": relative error " + err + " > " + tol + " against the double product");
      }
      System.out.printf("[gemm_sm90 ew16] %-60s %s%s%n", what, row, vsDouble);
    });
  }

  /**
   * {@code got} against {@code want} (the cooperative kernel's, [m, n]): every output within 4
   * units of 16-bit rounding (2^-11 fp16, 2^-8 bf16) of its row's largest output, every row within
   * the 16-bit tolerance (fp16 1e-3, bf16 8e-3) relative; returns the worst of each, for the log.
   */
  static String withinSecondRounding(short[] want, short[] got, int m, int n, Precision p, String what) {
    float[] w = fromHalf(want, p), g = fromHalf(got, p);
    double unit = p == Precision.FP16 ? 0x1p-11 : 0x1p-8, tol = p == Precision.FP16 ? 1e-3 : 8e-3, worstElement = 0, worstRow = 0;
    int differ = 0;
    for (int r = 0; r < m; r++) {
      double max = 0, num = 0, den = 0;
      for (int c = 0; c < n; c++) max = Math.max(max, Math.abs(w[r * n + c]));
      for (int c = 0; c < n; c++) {
        double d = Math.abs((double) g[r * n + c] - w[r * n + c]);
        if (d > 0) differ++;
        if (d > 4 * unit * max) { // the message built only on a failure (millions of outputs)
          fail(what + ": output (" + r + ", " + c + ") is " + g[r * n + c] + ", the cooperative kernel's " + w[r * n + c] + " (row's largest " + max + ")");
        }
        worstElement = Math.max(worstElement, max > 0 ? d / (unit * max) : 0);
        num += d * d;
        den += (double) w[r * n + c] * w[r * n + c];
      }
      double e = den > 0 ? Math.sqrt(num / den) : 0;
      worstRow = Math.max(worstRow, e);
      if (e > tol) fail(what + ": row " + r + " relative error " + e + " > " + tol + " from the cooperative kernel's");
    }
    return String.format("%d of %d outputs differ; worst %.2f units of the row's largest, worst row %.2e", differ, w.length, worstElement, worstRow);
  }

  /**
   * The LayerNorm-folded ew16 kernel ({@code gemm_ln_sm90_ew16_*}): in_proj within one ulp of the
   * cooperative fold (CudaSm90EpilogueWarpsTest's allowance: the consumers apply ln_fold_pair and
   * the bias as its epilogue does), c_fc with QuickGELU within the second rounding; random rows'
   * statistics and column sums as there.
   */
  @Test
  void layerNormFoldedOnTheEw16Kernel() {
    List<CudaSm90GemmTest.Problem> problems = List.of(new CudaSm90GemmTest.Problem("in_proj", 154, 1536, 512, 0, true, false),
        new CudaSm90GemmTest.Problem("c_fc", 400, 3072, 768, 1, true, false), new CudaSm90GemmTest.Problem("N tail", 129, 520, 768, 0, true, false));
    CudaSm90EpilogueWarpsTest.eachProblem(device, problems, (gemm, stream, in, what) -> {
      CudaSm90GemmTest.Problem pr = in.pr;
      float[] stats = new float[2 * pr.m()], colsum = TestRandom.gaussian(RNG, pr.n(), 4);
      for (int r = 0; r < pr.m(); r++) {
        stats[2 * r] = (float) (4 * RNG.nextGaussian());
        stats[2 * r + 1] = (float) (0.3 + 2.7 * RNG.nextDouble());
      }
      short[] cooperative = CudaSm90EpilogueWarpsTest.folded(gemm, stream, in, stats, colsum, COOPERATIVE);
      long before = gemm.epilogueWarps16Launches();
      short[] ew16 = CudaSm90EpilogueWarpsTest.folded(gemm, stream, in, stats, colsum, EW16);
      assertEquals(before + 1, gemm.epilogueWarps16Launches(), "the LayerNorm-folded ew16 kernel did not run");
      String how = pr.act() == 0 ? CudaSm90StoreTest.compareWithinOneUlp(cooperative, ew16, what) + " outputs differ by one ulp"
          : withinSecondRounding(cooperative, ew16, pr.m(), pr.n(), in.p, what);
      System.out.printf("[gemm_ln_sm90 ew16] %-56s %s%n", what, how);
    });
  }

  /**
   * The ew16 statistics kernel ({@code gemm_bias_act_sm90_ew16_res_st_*}): out_proj at the text
   * tower's width and width 640 (a short last part): C the ew16 residual kernel's bits, each part
   * the mean and squared deviations of its stored columns within 1e-5 (as in
   * CudaSm90EpilogueWarpsTest).
   */
  @Test
  void statisticsOnTheEw16Kernel() {
    List<CudaSm90GemmTest.Problem> problems = List.of(new CudaSm90GemmTest.Problem("out_proj", 154, 512, 512, 0, true, true),
        new CudaSm90GemmTest.Problem("width 640", 130, 640, 640, 0, true, true));
    CudaSm90EpilogueWarpsTest.eachProblem(device, problems, (gemm, stream, in, what) -> {
      CudaSm90GemmTest.Problem pr = in.pr;
      int m = pr.m(), n = pr.n(), parts = CudaOps.statsParts(n);
      short[] plain = in.run(gemm, stream, EW16, false, 0);
      short[] c;
      float[] part;
      try (DeviceBuffer da = device.allocate(2L * in.aHalf.length).upload(in.aHalf);
          DeviceBuffer dw = device.allocate(2L * in.wHalf.length).upload(in.wHalf);
          DeviceBuffer db = device.allocate(4L * n).upload(in.bias);
          DeviceBuffer dr = device.allocate(2L * in.resHalf.length).upload(in.resHalf);
          DeviceBuffer dc = device.allocate(2L * m * n);
          DeviceBuffer dp = device.allocate(8L * m * parts)) {
        float[] nan = new float[2 * m * parts];
        java.util.Arrays.fill(nan, Float.NaN);
        dp.upload(nan);
        assertTrue(gemm.runWithLayerNormParts(in.p, m, n, pr.k(), da, dw, db, dr, pr.act(), dc, dp, EW16), "refused");
        stream.synchronize();
        c = dc.downloadShorts(m * n);
        part = dp.downloadFloats(2 * m * parts);
      }
      assertArrayEquals(plain, c, what + ": C differs from the ew16 residual kernel's");
      double[] errors = CudaSm90EpilogueWarpsTest.partErrors(fromHalf(c, in.p), part, m, n);
      double worst = Math.max(errors[0], errors[1]);
      System.out.printf("[gemm_sm90 ew16 statistics] %-48s parts within %.1e%n", what, worst);
      assertTrue(worst <= 1e-5, what + ": parts off by " + worst);
    });
  }

  /** act -1: the mainloop alone ends and writes nothing (the sentinel everywhere); a real launch after it still works. */
  @Test
  void theMainloopAloneEndsAndWritesNothing() {
    try (CudaStream stream = new CudaStream(device);
        Sm90Gemm gemm = new Sm90Gemm(device, stream.handle())) {
      for (Precision p : new Precision[] {Precision.FP16, Precision.BF16}) {
        CudaSm90GemmTest.Problem loop = new CudaSm90GemmTest.Problem("mainloop", 66 * 128, 8 * 256, 256, -1, true, false);
        short[] c = new CudaSm90GemmTest.Inputs(p, loop).run(gemm, stream, EW16, false, 0);
        short sentinel = p == Precision.FP16 ? HalfFloats.fp16(-7.25f) : HalfFloats.bf16(-7.25f);
        for (int i = 0; i < c.length; i++) assertEquals(sentinel, c[i], p + ": output " + i + " was written by the mainloop alone");
        CudaSm90GemmTest.Inputs after = new CudaSm90GemmTest.Inputs(p, new CudaSm90GemmTest.Problem("in_proj", 400, 2304, 768, 0, true, false));
        assertArrayEquals(after.run(gemm, stream, COOPERATIVE, false, 0), after.run(gemm, stream, EW16, false, 0), p + " after the mainloop alone");
      }
    }
  }

  /**
   * Through the backend, a transformer block's MLP half and the next block's in_proj (as
   * CudaSm90EpilogueWarpsTest's statistics test builds it) at the text tower's and ViT-B/32's
   * widths, fp16 and bf16, with every LINEAR on the ew16 kernels ({@code fusedLinear=sm90ew16-all}),
   * both LayerNorms folded into them ({@code lnFold=sm90ew16}) and their statistics from the
   * residual LINEARs ({@code lnStats=epilogue}): every GEMM on the ew16 kernels, both folds fed
   * from epilogues, a CUDA-graph replay giving the first run's bits, and the outputs within 16-bit
   * rounding (fp16 2e-3, bf16 1.6e-2 relative) of the backend's defaults (cuBLASLt, LayerNorm passes).
   */
  @Test
  void aBlockOnTheEw16KernelsThroughTheBackend() {
    CudaSm90EpilogueWarpsTest.blockOnTheBackend(device, new int[][] {{154, 512}, {100, 768}}, "ew16", "the defaults'", backend -> {
      backend.fusedLinear(false, COOPERATIVE, CudaBackend.FusedScope.ACTIVATION);
      backend.layerNormFold(null);
    }, (backend, what) -> {}, backend -> {
      backend.fusedLinear(true, EW16, CudaBackend.FusedScope.ALL);
      backend.layerNormFold(EW16);
      backend.layerNormStatsInEpilogue(true);
    }, (backend, what) -> {
      // out_proj and c_proj (statistics kernels), c_fc and in_proj (folds)
      assertEquals(4, backend.epilogueWarps16Launches(), what + ": not every GEMM ran on the ew16 kernels");
      assertEquals(2, backend.layerNormEpilogueStats(), what + ": not both folds took their statistics from the epilogue");
    });
  }
}
