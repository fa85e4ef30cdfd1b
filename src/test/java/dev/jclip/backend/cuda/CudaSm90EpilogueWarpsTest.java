package dev.jclip.backend.cuda;

import static dev.jclip.backend.cuda.CudaAttentionTest.fromHalf;
import static dev.jclip.backend.cuda.CudaAttentionTest.toHalf;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.Precision;
import dev.jclip.backend.ReferenceOps;
import dev.jclip.graph.Executor;
import dev.jclip.graph.Graph;
import dev.jclip.graph.GraphBuilder;
import dev.jclip.graph.Value;
import dev.jclip.io.DType;
import dev.jclip.io.Tensor;
import dev.jclip.model.Activation;
import dev.jclip.testing.TestRandom;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * gemm_sm90's epilogue-warps kernel ({@link Sm90Gemm.Schedule#EPILOGUE_WARPS}: the consumers stage
 * each 128x256 tile's fp32 accumulators in shared memory and go on to the next tile, three other
 * warps apply the epilogue and store), against the cooperative kernel it stands in for: the same
 * wgmma sequence and the same arithmetic, so the same bits (allowed, as CudaSm90StoreTest allows
 * the TMA stores: one unit of 16-bit rounding in at most 0.1% of the outputs, should nvcc order an
 * epilogue's instructions differently). Every problem of CudaSm90GemmTest without a residual (the
 * kernel's scope), and problems of its own: a single tile, N below a tile, K of one and of one and a
 * quarter 32-wide steps, and enough tiles that every block goes round its persistent loop six
 * times (the staged and drained barriers' phases wrap); where the double product is cheap, within
 * its 16-bit tolerance too. Then what it does not take (C not 16-byte aligned: the cooperative
 * kernel, no launch of its own), the mainloop alone (act -1: nothing written, no hang), the
 * residual kernel (out_proj and c_proj; in place too), the LayerNorm-folded kernel, and the
 * backend's LINEARs on it (fusedLinear=sm90ew, -linear, -all; lnFold=sm90ew), CUDA-graph replay
 * included; and the residual kernel that also writes the rows' LayerNorm statistics in parts, their
 * combination, and the folds fed from it through the backend (lnStats=epilogue). A class of its
 * own: a fault leaves only these tests' context unusable, and run.sh then leaves only the "ew"
 * profile columns out (only "ewres", every LINEAR with the residual kernel, where only the
 * residual tests failed: their names start with "residual"; only "ewln", the fold on it, where
 * only the layerNorm tests failed; only "ewst", the statistics from the epilogue, where only the
 * statistics tests failed). Skipped (with the reason) off compute capability 9.0.
 */
@Tag("cuda")
class CudaSm90EpilogueWarpsTest {
  static final Random RNG = TestRandom.create("CudaSm90EpilogueWarpsTest");
  static final Sm90Gemm.Schedule EW = Sm90Gemm.Schedule.EPILOGUE_WARPS, COOPERATIVE = Sm90Gemm.Schedule.COOPERATIVE;
  static CudaDevice device;

  @RegisterExtension
  static final CudaTestSupport.Gpu GPU = CudaTestSupport.sm90(d -> device = d);

  @Test
  void theEpilogueWarpsWriteWhatTheCooperativeKernelWrites() {
    List<CudaSm90GemmTest.Problem> problems = new ArrayList<>(CudaSm90GemmTest.problems().stream().filter(p -> !p.residual()).toList());
    problems.add(new CudaSm90GemmTest.Problem("one tile", 128, 256, 64, 1, true, false));
    problems.add(new CudaSm90GemmTest.Problem("N below a tile", 30, 56, 64, 1, true, false));
    problems.add(new CudaSm90GemmTest.Problem("one K step", 200, 768, 32, 0, true, false));
    problems.add(new CudaSm90GemmTest.Problem("K 1.25 steps", 200, 768, 40, 1, false, false));
    // 132 SMs: 66 x 12 = 792 tiles, 6 a block (fewer SMs: more); the text tower's c_fc K
    problems.add(new CudaSm90GemmTest.Problem("6 tiles a block", 66 * 128, 12 * 256, 512, 1, true, false));
    eachProblem(device, problems, (gemm, stream, in, what) -> {
      CudaSm90GemmTest.Problem pr = in.pr;
      short[] cooperative = in.run(gemm, stream, COOPERATIVE, false, 0);
      long before = gemm.epilogueWarpsLaunches();
      short[] ew = in.run(gemm, stream, EW, false, 0);
      assertEquals(before + 1, gemm.epilogueWarpsLaunches(), "the epilogue-warps kernel did not run");
      int differ = CudaSm90StoreTest.compareWithinOneUlp(cooperative, ew, what);
      String vsDouble = "";
      if ((double) pr.m() * pr.n() * pr.k() <= 1e8) { // the double product on the host: small problems only
        double tol = in.p == Precision.FP16 ? 1e-3 : 8e-3;
        double err = ReferenceOps.relativeError(fromHalf(ew, in.p), in.want());
        vsDouble = String.format("; vs double %.2e", err);
        assertTrue(err <= tol, "relative error " + err + " > " + tol);
      }
      System.out.printf("[gemm_sm90 ew] %-72s %d of %d outputs differ by one ulp%s%n", what, differ, ew.length, vsDouble);
    });
  }

  /** One problem's check in {@link #eachProblem}: throws (an assertion) on a failure. */
  @FunctionalInterface
  interface ProblemCheck {
    void check(Sm90Gemm gemm, CudaStream stream, CudaSm90GemmTest.Inputs in, String what);
  }

  /**
   * Runs {@code check} on every problem in fp16 and bf16 (fresh inputs each) on {@code device},
   * collecting the failures and asserting none at the end; a CUDA fault ends the loop (it leaves
   * the context unusable).
   */
  static void eachProblem(CudaDevice device, List<CudaSm90GemmTest.Problem> problems, ProblemCheck check) {
    List<String> failures = new ArrayList<>();
    try (CudaStream stream = new CudaStream(device);
        Sm90Gemm gemm = new Sm90Gemm(device, stream.handle())) {
      problems:
      for (Precision p : new Precision[] {Precision.FP16, Precision.BF16}) {
        for (CudaSm90GemmTest.Problem pr : problems) {
          String what = pr + " " + p;
          try {
            check.check(gemm, stream, new CudaSm90GemmTest.Inputs(p, pr), what);
          } catch (AssertionError | RuntimeException e) {
            failures.add(what + ": " + e.getMessage());
            if (e instanceof CudaException) break problems;
          }
        }
      }
    }
    assertTrue(failures.isEmpty(), failures.size() + " failures:\n" + String.join("\n", failures));
  }

  /**
   * A launch the kernel does not take runs the cooperative kernel: C not 16-byte aligned (8 bytes
   * into a buffer), with or without a residual; the same bits as the cooperative kernel, and no
   * epilogue-warps launch.
   */
  @Test
  void whatItDoesNotTakeRunsTheCooperativeKernel() {
    try (CudaStream stream = new CudaStream(device);
        Sm90Gemm gemm = new Sm90Gemm(device, stream.handle())) {
      for (Precision p : new Precision[] {Precision.FP16, Precision.BF16}) {
        CudaSm90GemmTest.Inputs residual = new CudaSm90GemmTest.Inputs(p, new CudaSm90GemmTest.Problem("c_proj", 200, 768, 3072, 0, true, true));
        CudaSm90GemmTest.Inputs plain = new CudaSm90GemmTest.Inputs(p, new CudaSm90GemmTest.Problem("c_fc", 200, 3072, 768, 1, true, false));
        long before = gemm.epilogueWarpsLaunches();
        assertArrayEquals(residual.run(gemm, stream, COOPERATIVE, false, 8), residual.run(gemm, stream, EW, false, 8),
            p + " with a residual, C 8 bytes into its buffer");
        assertArrayEquals(plain.run(gemm, stream, COOPERATIVE, false, 8), plain.run(gemm, stream, EW, false, 8),
            p + " with C 8 bytes into its buffer");
        assertEquals(before, gemm.epilogueWarpsLaunches(), p + ": the epilogue-warps kernel ran where it cannot");
      }
    }
  }

  /**
   * The residual kernel ({@code gemm_bias_act_sm90_ew_res_*}): every problem of CudaSm90GemmTest
   * with a residual (c_proj and out_proj at every width, a residual without a bias, N off the
   * tile), plus one with six tiles a block, the text tower's out_proj shape on 16 texts and both
   * activations before a residual: within
   * one ulp of the cooperative kernel (its register epilogue adds the residual the same way), the
   * residual kernel launched; then, in place (C is the residual's buffer, as the backend may give
   * it), the same bits as out of place.
   */
  @Test
  void residualLinearsWriteWhatTheCooperativeKernelWrites() {
    List<CudaSm90GemmTest.Problem> problems = new ArrayList<>(CudaSm90GemmTest.problems().stream().filter(p -> p.residual()).toList());
    problems.add(new CudaSm90GemmTest.Problem("out_proj 16 texts", 16 * 77, 512, 512, 0, true, true));
    // both activations before a residual (no CLIP LINEAR has one: each residual add is rounded on its own in every kernel)
    problems.add(new CudaSm90GemmTest.Problem("QuickGELU + residual", 200, 768, 768, 1, true, true));
    problems.add(new CudaSm90GemmTest.Problem("GELU + residual", 200, 768, 768, 2, true, true));
    problems.add(new CudaSm90GemmTest.Problem("6 tiles a block", 66 * 128, 12 * 256, 512, 0, true, true));
    eachProblem(device, problems, (gemm, stream, in, what) -> {
      short[] cooperative = in.run(gemm, stream, COOPERATIVE, false, 0);
      long before = gemm.epilogueWarpsResidualLaunches();
      short[] ew = in.run(gemm, stream, EW, false, 0);
      assertEquals(before + 1, gemm.epilogueWarpsResidualLaunches(), "the residual kernel did not run");
      int differ = CudaSm90StoreTest.compareWithinOneUlp(cooperative, ew, what);
      assertArrayEquals(ew, inPlace(gemm, stream, in), what + ": in place differs from out of place");
      System.out.printf("[gemm_sm90 ew residual] %-64s %d of %d outputs differ by one ulp%n", what, differ, ew.length);
    });
  }

  /**
   * The LayerNorm-folded kernel ({@code gemm_ln_sm90_ew_*}, {@link Sm90Gemm#runLayerNormFolded}):
   * in_proj and c_fc after a LayerNorm at the text tower's and ViT-B/32's widths, N off the tile
   * with the erf GELU, no bias, and six tiles a block, on random rows' statistics (means of a few
   * units, rstd 0.3-3) and column sums: within one ulp of the cooperative gemm_ln kernel (the
   * same ln_fold_pair arithmetic), the epilogue-warps kernel launched.
   */
  @Test
  void layerNormFoldedWritesWhatTheCooperativeKernelWrites() {
    List<CudaSm90GemmTest.Problem> problems = List.of(new CudaSm90GemmTest.Problem("in_proj", 154, 1536, 512, 0, true, false),
        new CudaSm90GemmTest.Problem("c_fc", 154, 2048, 512, 1, true, false), new CudaSm90GemmTest.Problem("c_fc", 400, 3072, 768, 1, true, false),
        new CudaSm90GemmTest.Problem("N tail gelu", 129, 520, 768, 2, true, false),
        new CudaSm90GemmTest.Problem("no bias", 77, 512, 512, 0, false, false),
        new CudaSm90GemmTest.Problem("6 tiles a block", 66 * 128, 12 * 256, 512, 1, true, false));
    eachProblem(device, problems, (gemm, stream, in, what) -> {
      CudaSm90GemmTest.Problem pr = in.pr;
      float[] stats = new float[2 * pr.m()], colsum = TestRandom.gaussian(RNG, pr.n(), 4);
      for (int r = 0; r < pr.m(); r++) {
        stats[2 * r] = (float) (4 * RNG.nextGaussian());
        stats[2 * r + 1] = (float) (0.3 + 2.7 * RNG.nextDouble());
      }
      short[] cooperative = folded(gemm, stream, in, stats, colsum, COOPERATIVE);
      long before = gemm.epilogueWarpsLaunches();
      short[] ew = folded(gemm, stream, in, stats, colsum, EW);
      assertEquals(before + 1, gemm.epilogueWarpsLaunches(), "the LayerNorm-folded epilogue-warps kernel did not run");
      int differ = CudaSm90StoreTest.compareWithinOneUlp(cooperative, ew, what);
      System.out.printf("[gemm_ln_sm90 ew] %-64s %d of %d outputs differ by one ulp%n", what, differ, ew.length);
    });
  }

  /** {@code in}'s problem as a folded LayerNorm's LINEAR ({@code stats} mean/rstd pairs, {@code colsum}) with {@code schedule}; returns C. */
  static short[] folded(Sm90Gemm gemm, CudaStream stream, CudaSm90GemmTest.Inputs in, float[] stats, float[] colsum,
      Sm90Gemm.Schedule schedule) {
    CudaSm90GemmTest.Problem pr = in.pr;
    CudaDevice device = stream.device();
    try (DeviceBuffer da = device.allocate(2L * in.aHalf.length).upload(in.aHalf);
        DeviceBuffer dw = device.allocate(2L * in.wHalf.length).upload(in.wHalf);
        DeviceBuffer db = in.bias == null ? null : device.allocate(4L * pr.n()).upload(in.bias);
        DeviceBuffer ds = device.allocate(4L * stats.length).upload(stats);
        DeviceBuffer dcs = device.allocate(4L * colsum.length).upload(colsum);
        DeviceBuffer dc = device.allocate(2L * pr.m() * pr.n())) {
      gemm.runLayerNormFolded(in.p, pr.m(), pr.n(), pr.k(), da, dw, db, pr.act(), dc, schedule, ds, dcs);
      stream.synchronize();
      return dc.downloadShorts(pr.m() * pr.n());
    }
  }

  /**
   * Through the backend ({@code lnFold=sm90ew}): a LayerNorm folded into in_proj and into c_fc at
   * the text tower's and ViT-B/32's widths on rows off the tile, fp16 and bf16: within one ulp of
   * the cooperative fold, the fold run on the epilogue warps, and a CUDA-graph replay giving the
   * first run's bits.
   */
  @Test
  void layerNormFoldedThroughTheBackend() {
    List<BackendCase> cases = new ArrayList<>();
    for (int[] cs : new int[][] {{154, 512, 1536, 0}, {154, 512, 2048, 1}, {400, 768, 3072, 1}}) {
      int m = cs[0], d = cs[1], n = cs[2];
      GraphBuilder g = new GraphBuilder();
      Value x = g.input("x", DType.F32, m, d);
      Value normed = g.layerNorm("ln", x, gamma("gamma", d), bias("beta", d), 1e-5f);
      Tensor w = weight("w", n, d);
      Tensor b = Tensor.ofFloats("b", new long[] {n}, TestRandom.gaussian(RNG, n, 1));
      Graph graph = g.output("y", g.linear("lin", normed, w, b, cs[3] == 1 ? Activation.QUICK_GELU : null)).build();
      cases.add(new BackendCase("LayerNorm -> LINEAR " + m + "x" + d + " -> " + n + (cs[3] == 1 ? " QuickGELU" : ""), graph,
          Map.of("x", rowsOffCentre(m, d)),
          CudaBackend::layerNormFold, 1));
    }
    onTheBackend(cases);
  }

  /**
   * One case of {@link #onTheBackend}: a graph and its inputs, how to choose a gemm_sm90 schedule
   * on a backend, and how many launches the epilogue warps must take with it.
   */
  record BackendCase(String what, Graph graph, Map<String, Object> inputs, java.util.function.BiConsumer<CudaBackend, Sm90Gemm.Schedule> choose,
      int launches) {}

  /**
   * Runs each case on a backend in fp16 and bf16, first with the cooperative schedule, then with
   * the epilogue warps under a CUDA graph: the epilogue warps take the case's launches (none with
   * the cooperative schedule), the replay gives the first run's bits, and the outputs are within
   * one ulp of the cooperative ones. Collects the failures and asserts none; a CUDA fault ends it.
   */
  private static void onTheBackend(List<BackendCase> cases) {
    List<String> failures = new ArrayList<>();
    cases:
    for (BackendCase c : cases) {
      for (Precision p : new Precision[] {Precision.FP16, Precision.BF16}) {
        String what = c.what() + " " + p;
        try (CudaBackend backend = new CudaBackend(device, p, true, true)) {
          backend.gemmTmaStore(false); // whatever -Djclip.cuda.gemmStore says
          c.choose().accept(backend, COOPERATIVE);
          float[] cooperative;
          try (Executor ex = new Executor(c.graph(), backend, List.of())) {
            cooperative = ex.run(c.inputs()).get("y");
          }
          assertEquals(0, backend.epilogueWarpsLaunches(), what + ": the epilogue warps ran while not asked for");
          c.choose().accept(backend, EW);
          float[] ew, replayed;
          try (Executor ex = new Executor(c.graph(), backend, List.of(), true)) {
            ew = ex.run(c.inputs()).get("y");
            assertEquals(c.launches(), backend.epilogueWarpsLaunches(), what + ": not every launch asked for ran on the epilogue warps");
            replayed = ex.run(c.inputs()).get("y");
            assertTrue(ex.replaying(), what + ": the second run did not replay a CUDA graph: " + ex.recordingFailure());
          }
          assertArrayEquals(ew, replayed, what + ": the CUDA-graph replay differs from the first run");
          int differ = CudaSm90StoreTest.compareWithinOneUlp(toHalf(cooperative, p), toHalf(ew, p), what);
          System.out.printf("[gemm_sm90 ew backend] %-56s %d of %d outputs differ by one ulp%n", what, differ, ew.length);
        } catch (AssertionError | RuntimeException e) {
          failures.add(what + ": " + e.getMessage());
          if (e instanceof CudaException) break cases; // a fault leaves the context unusable
        }
      }
    }
    assertTrue(failures.isEmpty(), failures.size() + " failures:\n" + String.join("\n", failures));
  }

  /**
   * The residual kernel that also writes the rows' LayerNorm statistics in parts ({@code
   * gemm_bias_act_sm90_ew_res_st_*}, {@link Sm90Gemm#runWithLayerNormParts}): out_proj at the text
   * tower's width, c_proj at ViT-B/32's, RN50x4's text width 640 (parts of 256, 256 and 128), N
   * off the tile (parts of 256, 256 and 8), no bias, QuickGELU before the residual (the kernel's
   * other branch; no CLIP LINEAR has it), two tiles a block; residual rows with means of a few
   * units, as the residual stream has. C: the residual kernel's bits. Parts past the rows' (a guard
   * of NaN) left alone. Each part: the mean and the squared deviations of its columns of C as
   * stored (in double on the host) within 1e-5 (the mean relative to |mean| + std, the sum
   * relative). Combined ({@link
   * CudaOps#layerNormStatsCombine}): each row's mean and rstd within 1e-5 of the row's, as
   * layernorm_stats is held, and of layernorm_stats' own on the same C. Names start with
   * "statistics": run.sh then leaves out only the "ewst" profile columns.
   */
  @Test
  void statisticsOfTheStoredRowsInParts() {
    List<CudaSm90GemmTest.Problem> problems = List.of(new CudaSm90GemmTest.Problem("out_proj", 154, 512, 512, 0, true, true),
        new CudaSm90GemmTest.Problem("c_proj", 200, 768, 3072, 0, true, true),
        new CudaSm90GemmTest.Problem("width 640", 130, 640, 640, 0, true, true),
        new CudaSm90GemmTest.Problem("N tail", 129, 520, 768, 0, true, true), new CudaSm90GemmTest.Problem("no bias", 77, 512, 512, 0, false, true),
        new CudaSm90GemmTest.Problem("QuickGELU + residual", 100, 768, 768, 1, true, true),
        new CudaSm90GemmTest.Problem("2 tiles a block", 66 * 128, 4 * 256, 512, 0, true, true));
    eachProblem(device, problems, (gemm, stream, in, what) -> {
      CudaSm90GemmTest.Problem pr = in.pr;
      int m = pr.m(), n = pr.n(), parts = CudaOps.statsParts(n);
      float[] res = fromHalf(in.resHalf, in.p);
      for (int r = 0; r < m; r++) {
        double mean = 4 * RNG.nextGaussian();
        for (int c = 0; c < n; c++) res[r * n + c] += (float) mean;
      }
      System.arraycopy(toHalf(res, in.p), 0, in.resHalf, 0, res.length);
      System.arraycopy(fromHalf(in.resHalf, in.p), 0, in.res, 0, res.length); // the residual's values, as uploaded
      short[] plain = in.run(gemm, stream, EW, false, 0);
      CudaDevice device = stream.device();
      float eps = 1e-5f;
      short[] c;
      float[] part, combined, pass;
      try (CudaOps ops = new CudaOps(device, stream.handle());
          DeviceBuffer da = device.allocate(2L * in.aHalf.length).upload(in.aHalf);
          DeviceBuffer dw = device.allocate(2L * in.wHalf.length).upload(in.wHalf);
          DeviceBuffer db = in.bias == null ? null : device.allocate(4L * n).upload(in.bias);
          DeviceBuffer dr = device.allocate(2L * in.resHalf.length).upload(in.resHalf);
          DeviceBuffer dc = device.allocate(2L * m * n);
          DeviceBuffer dp = device.allocate(8L * (m * parts + GUARD_PARTS));
          DeviceBuffer ds = device.allocate(8L * m);
          DeviceBuffer ds2 = device.allocate(8L * m)) {
        float[] sentinel = new float[2 * (m * parts + GUARD_PARTS)];
        java.util.Arrays.fill(sentinel, Float.NaN); // a part never written stays NaN and fails the checks below
        dp.upload(sentinel);
        long before = gemm.epilogueWarpsStatsLaunches();
        assertTrue(gemm.runWithLayerNormParts(in.p, m, n, pr.k(), da, dw, db, dr, pr.act(), dc, dp, EW), "refused");
        assertEquals(before + 1, gemm.epilogueWarpsStatsLaunches(), "the statistics kernel did not run");
        ops.layerNormStatsCombine(ds, dp, m, n, eps);
        boolean passRan = ops.layerNormStats(ds2, dc, m, n, eps, in.p);
        stream.synchronize();
        c = dc.downloadShorts(m * n);
        float[] all = dp.downloadFloats(2 * (m * parts + GUARD_PARTS));
        for (int i = 2 * m * parts; i < all.length; i++) assertTrue(Float.isNaN(all[i]), what + ": a part past the rows' was written");
        part = java.util.Arrays.copyOf(all, 2 * m * parts);
        combined = ds.downloadFloats(2 * m);
        pass = passRan ? ds2.downloadFloats(2 * m) : null;
      }
      assertArrayEquals(plain, c, what + ": C differs from the residual kernel's");
      float[] x = fromHalf(c, in.p);
      double[] partErrors = partErrors(x, part, m, n);
      double worstPartMean = partErrors[0], worstPartSq = partErrors[1], worstMean = 0, worstRstd = 0, worstVsPass = 0;
      for (int r = 0; r < m; r++) {
        double[] row = meanAndSquares(x, r * n, r * n + n);
        double mean = row[0], rstd = 1 / Math.sqrt(row[1] / n + eps), std = 1 / rstd;
        worstMean = Math.max(worstMean, Math.abs(combined[2 * r] - mean) / (Math.abs(mean) + std));
        worstRstd = Math.max(worstRstd, Math.abs(combined[2 * r + 1] - rstd) / rstd);
        if (pass != null) {
          worstVsPass = Math.max(worstVsPass, Math.max(Math.abs(combined[2 * r] - pass[2 * r]) / (Math.abs(pass[2 * r]) + 1 / pass[2 * r + 1]),
              Math.abs(combined[2 * r + 1] - pass[2 * r + 1]) / pass[2 * r + 1]));
        }
      }
      System.out.printf("[gemm_sm90 ew statistics] %-48s parts: mean %.1e, squares %.1e; combined: mean %.1e, rstd %.1e; vs layernorm_stats %.1e%n",
          what, worstPartMean, worstPartSq, worstMean, worstRstd, worstVsPass);
      assertTrue(worstPartMean <= 1e-5 && worstPartSq <= 1e-5, what + ": parts off by " + worstPartMean + " (mean), " + worstPartSq + " (squares)");
      assertTrue(worstMean <= 1e-5 && worstRstd <= 1e-5, what + ": combined statistics off by " + worstMean + " (mean), " + worstRstd + " (rstd)");
      assertTrue(worstVsPass <= 1e-5, what + ": " + worstVsPass + " from layernorm_stats' statistics");
    });
  }

  /**
   * Through the backend ({@code lnFold=sm90ew} with {@code lnStats=epilogue}): a transformer
   * block's MLP half and the next block's in_proj at the text tower's and ViT-B/32's widths, rows
   * off the tile, and at RN50x4's text width 640 (a short last part): h = out_proj(x) + x,
   * c_fc(ln_2(h)), y = c_proj(..) + h, in_proj(ln_1(y)). Both residual LINEARs run on the
   * statistics kernel and both folds combine their parts (no
   * layernorm_stats pass); a CUDA-graph replay gives the first run's bits; the outputs within 16-bit
   * rounding (fp16 2e-3, bf16 1.6e-2 relative) of the same graph with the statistics read by
   * layernorm_stats, whose statistics differ in the last bits.
   */
  @Test
  void statisticsFromTheResidualEpilogueThroughTheBackend() {
    blockOnTheBackend(device, new int[][] {{154, 512}, {100, 768}, {130, 640}}, // 640: RN50x4's text width, a short last part
        "ew statistics", "the statistics pass's", backend -> {
          backend.fusedLinear(false, EW, CudaBackend.FusedScope.ACTIVATION);
          backend.layerNormFold(EW);
        }, (backend, what) -> assertEquals(0, backend.layerNormEpilogueStats(), what + ": statistics from the epilogue while not asked for"),
        backend -> backend.layerNormStatsInEpilogue(true),
        (backend, what) -> assertEquals(2, backend.layerNormEpilogueStats(), what + ": not both folds took their statistics from the epilogue"));
  }

  /**
   * {@link #block} at each {rows, width} of {@code shapes} on a backend in fp16 and bf16: run once
   * as {@code baseline} sets the backend (besides the register stores and the statistics pass),
   * {@code afterBaseline} checking it; then as {@code chosen} changes it, under a CUDA graph,
   * {@code afterFirst} checking the first run. The replay gives the first run's bits and the
   * outputs are within 16-bit rounding (fp16 2e-3, bf16 1.6e-2 relative) of the baseline's
   * ({@code against} names it in the log and the failures). Collects the failures and asserts
   * none; a CUDA fault ends it.
   */
  static void blockOnTheBackend(CudaDevice device, int[][] shapes, String label, String against, java.util.function.Consumer<CudaBackend> baseline,
      java.util.function.BiConsumer<CudaBackend, String> afterBaseline, java.util.function.Consumer<CudaBackend> chosen,
      java.util.function.BiConsumer<CudaBackend, String> afterFirst) {
    blockOnTheBackend(device, shapes, label, against, baseline, afterBaseline, chosen, afterFirst, false);
  }

  /** As above; with {@code sameBits}, the first run's outputs must also be the baseline's bits. */
  static void blockOnTheBackend(CudaDevice device, int[][] shapes, String label, String against, java.util.function.Consumer<CudaBackend> baseline,
      java.util.function.BiConsumer<CudaBackend, String> afterBaseline, java.util.function.Consumer<CudaBackend> chosen,
      java.util.function.BiConsumer<CudaBackend, String> afterFirst, boolean sameBits) {
    List<String> failures = new ArrayList<>();
    cases:
    for (int[] cs : shapes) {
      int m = cs[0], d = cs[1];
      Graph graph = block(m, d);
      Map<String, Object> inputs = Map.of("x", rowsOffCentre(m, d));
      for (Precision p : new Precision[] {Precision.FP16, Precision.BF16}) {
        String what = "block " + m + "x" + d + " " + p;
        try (CudaBackend backend = new CudaBackend(device, p, true, true)) {
          backend.gemmTmaStore(false);
          backend.layerNormStatsInEpilogue(false);
          baseline.accept(backend);
          float[] want;
          try (Executor ex = new Executor(graph, backend, List.of())) {
            want = ex.run(inputs).get("z");
          }
          afterBaseline.accept(backend, what);
          chosen.accept(backend);
          float[] first, replayed;
          try (Executor ex = new Executor(graph, backend, List.of(), true)) {
            first = ex.run(inputs).get("z");
            afterFirst.accept(backend, what);
            replayed = ex.run(inputs).get("z");
            assertTrue(ex.replaying(), what + ": the second run did not replay a CUDA graph: " + ex.recordingFailure());
          }
          assertArrayEquals(first, replayed, what + ": the CUDA-graph replay differs from the first run");
          if (sameBits) assertArrayEquals(want, first, what + ": not " + against + " bits");
          double err = ReferenceOps.relativeError(first, want), tol = p == Precision.FP16 ? 2e-3 : 1.6e-2;
          System.out.printf("[gemm_sm90 %s backend] %-40s %.2e from %s outputs%n", label, what, err, against);
          assertTrue(err <= tol, what + ": " + err + " from " + against + " outputs (> " + tol + ")");
        } catch (AssertionError | RuntimeException e) {
          failures.add(what + ": " + e.getMessage());
          if (e instanceof CudaException) break cases; // a fault leaves the context unusable
        }
      }
    }
    assertTrue(failures.isEmpty(), failures.size() + " failures:\n" + String.join("\n", failures));
  }

  /**
   * A transformer block's MLP half and the next block's in_proj on rows of width {@code d}, input
   * "x" [m, d], output "z": h = out_proj(x) + x, c_fc(ln_2(h)) with QuickGELU, y = c_proj(..) + h,
   * in_proj(ln_1(y)); random weights (LayerNorm gains near 1).
   */
  static Graph block(int m, int d) {
    GraphBuilder g = new GraphBuilder();
    Value x = g.input("x", DType.F32, m, d);
    Value h = g.linearResidual("out_proj", x, weight("w1", d, d), bias("b1", d), x);
    Value f = g.linear("c_fc", g.layerNorm("ln_2", h, gamma("g2", d), bias("be2", d), 1e-5f), weight("w2", 4 * d, d), bias("b2", 4 * d),
        Activation.QUICK_GELU);
    Value y = g.linearResidual("c_proj", f, weight("w3", d, 4 * d), bias("b3", d), h);
    return g.output("z", g.linear("in_proj", g.layerNorm("ln_1", y, gamma("g1", d), bias("be1", d), 1e-5f), weight("w4", 3 * d, d),
        bias("b4", 3 * d), null)).build();
  }

  /** [m, d] rows of a residual stream: each row's mean a few units (4 σ), its spread 0.3-3. */
  static float[] rowsOffCentre(int m, int d) {
    float[] xs = new float[m * d];
    for (int r = 0; r < m; r++) {
      double mean = 4 * RNG.nextGaussian(), spread = 0.3 + 2.7 * RNG.nextDouble();
      for (int c = 0; c < d; c++) xs[r * d + c] = (float) (mean + spread * RNG.nextGaussian());
    }
    return xs;
  }

  /** The mean of x[from .. to - 1] and the sum of squared deviations from it, in double. */
  private static double[] meanAndSquares(float[] x, int from, int to) {
    double sum = 0, sq = 0;
    for (int i = from; i < to; i++) sum += x[i];
    double mean = sum / (to - from);
    for (int i = from; i < to; i++) sq += (x[i] - mean) * (x[i] - mean);
    return new double[] {mean, sq};
  }

  /**
   * How far a statistics kernel's parts ({@code part}, [m, parts] float pairs) are from those of
   * the rows of {@code x} [m, n] as stored, each part's 256 columns in double: the worst mean
   * (relative to |mean| + std) and the worst sum of squared deviations (relative).
   */
  static double[] partErrors(float[] x, float[] part, int m, int n) {
    int parts = CudaOps.statsParts(n);
    double worstMean = 0, worstSq = 0;
    for (int r = 0; r < m; r++) {
      for (int j = 0; j < parts; j++) {
        int c0 = r * n + 256 * j, c1 = r * n + Math.min(n, 256 * j + 256);
        double[] ms = meanAndSquares(x, c0, c1);
        double mean = ms[0], sq = ms[1], std = Math.sqrt(sq / (c1 - c0));
        worstMean = Math.max(worstMean, Math.abs(part[2 * (r * parts + j)] - mean) / (Math.abs(mean) + std));
        worstSq = Math.max(worstSq, Math.abs(part[2 * (r * parts + j) + 1] - sq) / sq);
      }
    }
    return new double[] {worstMean, worstSq};
  }

  /** Float pairs past a statistics test's parts, which the kernel must leave alone. */
  private static final int GUARD_PARTS = 4;

  private static Tensor weight(String name, int rows, int cols) {
    return Tensor.ofFloats(name, new long[] {rows, cols}, TestRandom.gaussian(RNG, rows * cols, 1 / Math.sqrt(cols)));
  }

  private static Tensor bias(String name, int n) {
    return Tensor.ofFloats(name, new long[] {n}, TestRandom.gaussian(RNG, n, 0.2));
  }

  private static Tensor gamma(String name, int n) {
    float[] g = TestRandom.gaussian(RNG, n, 0.2);
    for (int i = 0; i < n; i++) g[i] += 1;
    return Tensor.ofFloats(name, new long[] {n}, g);
  }

  /** {@code in}'s problem on the epilogue warps with C the residual's own buffer (loaded with it); returns C. */
  private static short[] inPlace(Sm90Gemm gemm, CudaStream stream, CudaSm90GemmTest.Inputs in) {
    CudaSm90GemmTest.Problem pr = in.pr;
    CudaDevice device = stream.device();
    try (DeviceBuffer da = device.allocate(2L * in.aHalf.length).upload(in.aHalf);
        DeviceBuffer dw = device.allocate(2L * in.wHalf.length).upload(in.wHalf);
        DeviceBuffer db = in.bias == null ? null : device.allocate(4L * pr.n()).upload(in.bias);
        DeviceBuffer dc = device.allocate(2L * in.resHalf.length).upload(in.resHalf)) {
      gemm.run(in.p, pr.m(), pr.n(), pr.k(), da, dw, db, dc, pr.act(), dc, EW);
      stream.synchronize();
      return dc.downloadShorts(in.resHalf.length);
    }
  }

  /**
   * act -1 (the benchmark's "mainloop only"): the consumers skip the staging and the epilogue
   * warps wait for nothing, so the launch ends (a wait left hanging would trap after ~2 s and fail
   * it) and C keeps its sentinel everywhere; then a real launch on the same module still works.
   */
  @Test
  void theMainloopAloneEndsAndWritesNothing() {
    try (CudaStream stream = new CudaStream(device);
        Sm90Gemm gemm = new Sm90Gemm(device, stream.handle())) {
      for (Precision p : new Precision[] {Precision.FP16, Precision.BF16}) {
        CudaSm90GemmTest.Problem loop = new CudaSm90GemmTest.Problem("mainloop", 66 * 128, 8 * 256, 256, -1, true, false);
        short[] c = new CudaSm90GemmTest.Inputs(p, loop).run(gemm, stream, EW, false, 0);
        short sentinel = p == Precision.FP16 ? HalfFloats.fp16(-7.25f) : HalfFloats.bf16(-7.25f);
        for (int i = 0; i < c.length; i++) assertEquals(sentinel, c[i], p + ": output " + i + " was written by the mainloop alone");
        CudaSm90GemmTest.Inputs after = new CudaSm90GemmTest.Inputs(p, new CudaSm90GemmTest.Problem("c_fc", 400, 3072, 768, 1, true, false));
        CudaSm90StoreTest.compareWithinOneUlp(after.run(gemm, stream, COOPERATIVE, false, 0), after.run(gemm, stream, EW, false, 0),
            p + " after the mainloop alone");
      }
    }
  }

  /**
   * Through the backend ({@code fusedLinear=sm90ew-all}): out_proj and c_proj with their residuals
   * (LINEAR_RESIDUAL) at ViT-B/32's and the text tower's widths, fp16 and bf16: within one ulp of
   * the cooperative kernel's outputs, the residual kernel launched for both, and a CUDA-graph replay
   * giving the first run's bits.
   */
  @Test
  void residualLinearsThroughTheBackend() {
    List<BackendCase> cases = new ArrayList<>();
    for (int[] cs : new int[][] {{100, 768}, {154, 512}}) {
      int m = cs[0], d = cs[1];
      GraphBuilder g = new GraphBuilder();
      Value x = g.input("x", DType.F32, m, d);
      Tensor w1 = weight("w1", d, d);
      Tensor b1 = Tensor.ofFloats("b1", new long[] {d}, TestRandom.gaussian(RNG, d, 1));
      Tensor w2 = weight("w2", d, 4 * d);
      Tensor b2 = Tensor.ofFloats("b2", new long[] {d}, TestRandom.gaussian(RNG, d, 1));
      Value h = g.linearResidual("out_proj", x, w1, b1, x);
      Value wide = g.input("wide", DType.F32, m, 4 * d);
      Graph graph = g.output("y", g.linearResidual("c_proj", wide, w2, b2, h)).build();
      cases.add(new BackendCase("out_proj, c_proj + residual " + m + "x" + d, graph,
          Map.of("x", TestRandom.gaussian(RNG, m * d, 1), "wide", TestRandom.gaussian(RNG, m * 4 * d, 1)),
          (backend, schedule) -> backend.fusedLinear(true, schedule, CudaBackend.FusedScope.ALL), 2));
    }
    onTheBackend(cases);
  }

  /**
   * Through the backend ({@code fusedLinear=sm90ew}): c_fc (bias + QuickGELU) at ViT-B/32's and
   * the text tower's widths on rows off the tile, and in_proj (bias, no activation) with every
   * LINEAR without a residual on it, fp16 and bf16: within one ulp of the cooperative kernel's
   * outputs, the epilogue-warps kernel launched, and a CUDA-graph replay giving the first run's bits.
   */
  @Test
  void theBackendsLinearsOnTheEpilogueWarps() {
    List<BackendCase> cases = new ArrayList<>();
    // {rows, width, columns, activation (0 none, 1 QuickGELU)}
    for (int[] cs : new int[][] {{400, 768, 3072, 1}, {154, 512, 2048, 1}, {400, 768, 2304, 0}}) {
      int m = cs[0], d = cs[1], n = cs[2];
      GraphBuilder g = new GraphBuilder();
      Value x = g.input("x", DType.F32, m, d);
      Tensor w = weight("w", n, d);
      Tensor b = Tensor.ofFloats("b", new long[] {n}, TestRandom.gaussian(RNG, n, 1));
      Graph graph = g.output("y", g.linear("lin", x, w, b, cs[3] == 1 ? Activation.QUICK_GELU : null)).build();
      CudaBackend.FusedScope scope = cs[3] == 1 ? CudaBackend.FusedScope.ACTIVATION : CudaBackend.FusedScope.LINEAR;
      cases.add(new BackendCase("LINEAR " + m + "x" + d + " -> " + n + (cs[3] == 1 ? " QuickGELU" : ""), graph,
          Map.of("x", TestRandom.gaussian(RNG, m * d, 2)), (backend, schedule) -> backend.fusedLinear(true, schedule, scope), 1));
    }
    onTheBackend(cases);
  }
}
