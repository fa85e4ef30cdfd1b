package dev.jclip.backend.cuda;

import static dev.jclip.backend.cuda.CudaAttentionTest.fromHalf;
import static dev.jclip.backend.cuda.CudaAttentionTest.toHalf;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.Precision;
import dev.jclip.backend.ReferenceBackend;
import dev.jclip.backend.ReferenceOps;
import dev.jclip.graph.Executor;
import dev.jclip.graph.Graph;
import dev.jclip.graph.GraphBuilder;
import dev.jclip.graph.Op;
import dev.jclip.graph.Value;
import dev.jclip.io.DType;
import dev.jclip.io.Tensor;
import dev.jclip.model.Activation;
import dev.jclip.testing.TestRandom;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * gemm_sm90 (the Hopper GEMM with bias, activation and residual fused; {@link Sm90Gemm}) on fresh
 * random inputs, in fp16 and bf16, against a double-precision product of the same 16-bit inputs:
 * every CLIP LINEAR shape (in_proj, out_proj, c_fc, c_proj at widths 512..1280) at the row counts
 * the towers run (1 token row, 50..577-token sequences, batches of them), and the edges of the
 * kernel's tiling (M, N and K that are not multiples of its 128 x 256 x 64 tile, problems with
 * more tiles than SMs, so that blocks go round their persistent loop and the stage ring wraps
 * across tiles). The output has one rounding to 16 bits, so its error is that rounding's: at most
 * 1e-3 relative (fp16, unit roundoff 4.9e-4) and 8e-3 (bf16, 3.9e-3). Rows past M are a guard band
 * that must stay untouched. Every schedule but the epilogue-warps one ({@link #SCHEDULES}: cooperative and ping-pong,
 * each alone and in clusters of two blocks multicasting W; M tile counts odd and even, so that a
 * cluster's second block sometimes has no rows, and unit counts odd and even, so that a ping-pong
 * consumer sometimes has one tile fewer). Skipped (with the reason) off compute capability 9.0.
 */
@Tag("cuda")
class CudaSm90GemmTest {
  static final Random RNG = TestRandom.create("CudaSm90GemmTest");
  static CudaDevice device;

  /**
   * The schedules this class tests: all but the epilogue-warps kernel, which has a class of its own
   * (CudaSm90EpilogueWarpsTest), so that a failure of the newest kernel leaves the others timed.
   */
  static final Sm90Gemm.Schedule[] SCHEDULES = {Sm90Gemm.Schedule.COOPERATIVE, Sm90Gemm.Schedule.COOPERATIVE_CLUSTER, Sm90Gemm.Schedule.PINGPONG,
    Sm90Gemm.Schedule.PINGPONG_CLUSTER};

  @RegisterExtension
  static final CudaTestSupport.Gpu GPU = CudaTestSupport.sm90(d -> device = d);

  /** One problem: M x N x K, activation, with or without bias and residual. */
  record Problem(String name, int m, int n, int k, int act, boolean bias, boolean residual) {
    @Override
    public String toString() {
      return name + " " + m + "x" + n + "x" + k + " act=" + act + (bias ? " bias" : "") + (residual ? " residual" : "");
    }
  }

  static List<Problem> problems() {
    List<Problem> ps = new ArrayList<>();
    // rows per width: one token row (the pooled last block), then what the towers of that width run:
    // 2 texts (154), 2 ViT-B/32 images (100), ViT-B/16 (197), ViT-L/14 (257), ViT-L/14@336 (577),
    // and 400 (8 ViT-B/32 images or texts: more than one M tile, not a multiple of 128)
    int[][] widths = {{512, 1, 154, 400}, {768, 1, 100, 197, 400}, {1024, 1, 257, 577}, {1280, 1, 100}};
    for (int[] wr : widths) {
      int d = wr[0];
      for (int m : java.util.Arrays.copyOfRange(wr, 1, wr.length)) {
        ps.add(new Problem("c_fc", m, 4 * d, d, 1, true, false));
        ps.add(new Problem("in_proj", m, 3 * d, d, 0, true, false));
        ps.add(new Problem("c_proj", m, d, 4 * d, 0, true, true));
      }
      ps.add(new Problem("out_proj", 77, d, d, 0, true, true));
    }
    // the erf GELU (open_clip's and HF's MLPs), no bias
    ps.add(new Problem("c_fc gelu", 100, 3072, 768, 2, true, false));
    ps.add(new Problem("no bias", 154, 2048, 512, 1, false, false));
    // a residual without a bias, on whole tiles (the inside-tile epilogue) and with a row tail
    ps.add(new Problem("residual, no bias", 256, 512, 512, 0, false, true));
    ps.add(new Problem("residual, no bias", 200, 768, 768, 0, false, true));
    // tails: N not a multiple of 256, K not a multiple of 64 (zero-filled by TMA), M = 129
    ps.add(new Problem("N tail", 129, 520, 768, 1, true, true));
    ps.add(new Problem("K tail", 129, 768, 72, 0, true, false));
    ps.add(new Problem("K tail", 300, 1032, 1000, 1, true, false));
    // more tiles than SMs: 64 ViT-B/32 images' c_fc (25 x 12 tiles), 16 ViT-L/14 sequences' c_proj
    ps.add(new Problem("c_fc persistent", 3200, 3072, 768, 1, true, false));
    ps.add(new Problem("c_proj persistent", 4112, 1024, 4096, 0, true, true));
    return ps;
  }

  @Test
  void everyClipLinearShapeAndTileEdgeMatchesTheDoubleProduct() {
    List<String> failures = new ArrayList<>();
    try (CudaStream stream = new CudaStream(device);
        Sm90Gemm gemm = new Sm90Gemm(device, stream.handle())) {
      problems:
      for (Precision p : new Precision[] {Precision.FP16, Precision.BF16}) {
        double tol = p == Precision.FP16 ? 1e-3 : 8e-3;
        for (Problem pr : problems()) {
          Inputs in = new Inputs(p, pr); // one set of inputs and one reference for every schedule
          for (Sm90Gemm.Schedule schedule : SCHEDULES) {
            String what = pr + " " + p + " " + schedule;
            try {
              double err = in.check(gemm, stream, schedule, tol);
              System.out.printf("[gemm_sm90] %-84s relative error %.2e%n", what, err);
              assertTrue(err <= tol, "relative error " + err + " > " + tol);
            } catch (AssertionError | RuntimeException e) {
              failures.add(what + ": " + e.getMessage());
              if (e instanceof CudaException) break problems; // a fault leaves the context unusable: the rest would only repeat it
            }
          }
        }
      }
    }
    assertTrue(failures.isEmpty(), failures.size() + " failures:\n" + String.join("\n", failures));
  }

  /**
   * One problem's random inputs (of size ~1 after the product: weights scaled by 1/sqrt(K)),
   * rounded to 16 bits first, and the double product of those 16-bit values (made when first asked).
   */
  static final class Inputs {
    final Precision p;
    final Problem pr;
    /** The 16-bit inputs as uploaded, and their values. */
    final short[] aHalf, wHalf, resHalf;
    final float[] a, w, bias, res;
    private float[] want;

    Inputs(Precision p, Problem pr) {
      this.p = p;
      this.pr = pr;
      aHalf = toHalf(TestRandom.gaussian(RNG, pr.m * pr.k, 1), p);
      wHalf = toHalf(TestRandom.gaussian(RNG, pr.n * pr.k, 1 / Math.sqrt(pr.k)), p);
      resHalf = pr.residual ? toHalf(TestRandom.gaussian(RNG, pr.m * pr.n, 1), p) : null;
      a = fromHalf(aHalf, p);
      w = fromHalf(wHalf, p);
      bias = pr.bias ? TestRandom.gaussian(RNG, pr.n, 1) : null;
      res = resHalf == null ? null : fromHalf(resHalf, p);
    }

    /** The double product of the 16-bit inputs (with bias, activation and residual), made when first asked for. */
    float[] want() {
      if (want == null) want = reference(a, w, bias, res, pr.m, pr.n, pr.k, pr.act);
      return want;
    }

    /** Runs the problem with {@code schedule} and returns its relative error against the double product. */
    double check(Sm90Gemm gemm, CudaStream stream, Sm90Gemm.Schedule schedule, double tol) {
      int m = pr.m, n = pr.n, k = pr.k;
      float[] got = fromHalf(run(gemm, stream, schedule, false, 0), p);
      for (int i = 0; i < got.length; i++) assertTrue(Float.isFinite(got[i]), "element " + i + " is " + got[i]);
      float[] want = want();
      double err = ReferenceOps.relativeError(got, want);
      // and row by row, so that a few wrong rows or columns cannot hide in the whole product's norm
      double worstRow = 0;
      int worst = 0;
      for (int r = 0; r < m; r++) {
        double e = ReferenceOps.relativeError(java.util.Arrays.copyOfRange(got, r * n, r * n + n),
            java.util.Arrays.copyOfRange(want, r * n, r * n + n));
        if (e > worstRow) {
          worstRow = e;
          worst = r;
        }
      }
      if (err > tol || worstRow > 2 * tol) System.out.print(errorMap(got, want, m, n, tol));
      assertTrue(worstRow <= 2 * tol, "row " + worst + ": relative error " + worstRow + " > " + 2 * tol);
      return err;
    }

    /**
     * Runs the problem with {@code schedule}, register or TMA stores ({@code tma}), C {@code
     * offset} bytes into its buffer, two guard rows past C set to a sentinel that must survive;
     * returns C.
     */
    short[] run(Sm90Gemm gemm, CudaStream stream, Sm90Gemm.Schedule schedule, boolean tma, int offset) {
      int m = pr.m, n = pr.n, k = pr.k;
      int guard = 2 * n; // two rows past C, which must keep their sentinel
      short sentinel = p == Precision.FP16 ? HalfFloats.fp16(-7.25f) : HalfFloats.bf16(-7.25f);
      short[] cInit = new short[m * n + guard];
      java.util.Arrays.fill(cInit, sentinel);
      // the stream's device: CudaSm90StoreTest runs these inputs with a device of its own
      CudaDevice device = stream.device();
      try (DeviceBuffer da = device.allocate(2L * aHalf.length).upload(aHalf);
          DeviceBuffer dw = device.allocate(2L * wHalf.length).upload(wHalf);
          DeviceBuffer db = bias == null ? null : device.allocate(4L * n).upload(bias);
          DeviceBuffer dr = resHalf == null ? null : device.allocate(2L * resHalf.length).upload(resHalf);
          DeviceBuffer whole = device.allocate(2L * cInit.length + offset)) {
        DeviceBuffer dc = offset == 0 ? whole : whole.view(offset, 2L * cInit.length);
        dc.upload(cInit);
        assertNull(Sm90Gemm.unsupported(p, n, k, da, dw, db, dr, dc));
        gemm.run(p, m, n, k, da, dw, db, dr, pr.act, dc, schedule, tma);
        stream.synchronize();
        short[] c = dc.downloadShorts(cInit.length);
        for (int i = m * n; i < c.length; i++) assertEquals(sentinel, c[i], "element " + i + " past C was written");
        return java.util.Arrays.copyOf(c, m * n);
      }
    }
  }

  /**
   * Where a wrong result is wrong, for a first GPU run to tell a layout mistake from a pipeline
   * one: over the first 128 x 256 tile, one character per block of 16 rows x 8 columns (a warp's
   * rows, a wgmma core matrix's columns): '.' within {@code tol} of the reference (relative to the
   * block's norm), 'x' off, '0' all zero; then a few single elements.
   */
  static String errorMap(float[] got, float[] want, int m, int n, double tol) {
    StringBuilder sb = new StringBuilder("  error map of the first tile (rows of 16, columns of 8):\n");
    for (int rb = 0; rb < Math.min(8, (m + 15) / 16); rb++) {
      sb.append("  ");
      for (int cb = 0; cb < Math.min(32, n / 8); cb++) {
        double e = 0, w = 0, g = 0;
        for (int r = rb * 16; r < Math.min(m, rb * 16 + 16); r++) {
          for (int c = cb * 8; c < cb * 8 + 8; c++) {
            double d = got[r * n + c] - want[r * n + c];
            e += d * d;
            w += (double) want[r * n + c] * want[r * n + c];
            g += Math.abs(got[r * n + c]);
          }
        }
        sb.append(g == 0 ? '0' : Math.sqrt(e / Math.max(w, 1e-30)) <= tol ? '.' : 'x');
      }
      sb.append('\n');
    }
    for (int[] rc : new int[][] {{0, 0}, {0, 1}, {0, 2}, {0, 8}, {1, 0}, {8, 0}, {0, 64}, {64, 0}}) {
      if (rc[0] < m && rc[1] < n) {
        sb.append(String.format("  C[%d][%d] = %.5f, want %.5f%n", rc[0], rc[1], got[rc[0] * n + rc[1]], want[rc[0] * n + rc[1]]));
      }
    }
    return sb.toString();
  }

  /** act(a · wᵀ + bias) + residual in double, rounded to float once. */
  static float[] reference(float[] a, float[] w, float[] bias, float[] res, int m, int n, int k, int act) {
    float[] y = new float[m * n];
    IntStream.range(0, m).parallel().forEach(i -> {
      for (int j = 0; j < n; j++) {
        double s = bias == null ? 0 : bias[j];
        for (int t = 0; t < k; t++) s += (double) a[i * k + t] * w[j * k + t];
        if (act == 1) s = s / (1 + Math.exp(-1.702 * s));
        else if (act == 2) s = 0.5 * s * (1 + ReferenceOps.erf(s / Math.sqrt(2)));
        if (res != null) s += res[i * n + j];
        y[i * n + j] = (float) s;
      }
    });
    return y;
  }

  @Test
  void refusesWhatItCannotTake() {
    try (DeviceBuffer buf = device.allocate(1 << 20)) {
      assertNotNull(Sm90Gemm.unsupported(Precision.FP32, 256, 256, buf, buf, null, null, buf));
      assertNotNull(Sm90Gemm.unsupported(Precision.FP16, 256, 588, buf, buf, null, null, buf)); // ViT-B/16's patch K
      assertNotNull(Sm90Gemm.unsupported(Precision.FP16, 250, 256, buf, buf, null, null, buf));
      assertNotNull(Sm90Gemm.unsupported(Precision.FP16, 256, 256, buf.view(2, 1024), buf, null, null, buf));
      assertNull(Sm90Gemm.unsupported(Precision.BF16, 256, 256, buf, buf, buf, buf, buf));
    }
  }

  /**
   * In the backend: c_fc (bias + QuickGELU) at ViT-B/32's width on 2 and 8 images, with fused
   * LINEARs on, against the reference backend (the tolerances of CudaLinearEpilogueTest: fp16
   * 1e-2, bf16 5e-2) and within 2 units of 16-bit rounding of the unfused path (cuBLAS GEMM then
   * bias_act: it rounds the product before the bias, the fused kernel once); its CUDA-graph replay
   * gives the first run's bits. Every schedule of the kernel.
   */
  @Test
  void theBackendRunsCfcAsOneKernelWhenAsked() {
    for (int m : new int[] {100, 400}) {
      int k = 768, n = 3072;
      GraphBuilder g = new GraphBuilder();
      Value x = g.input("x", DType.F32, m, k);
      Tensor w = Tensor.ofFloats("w", new long[] {n, k}, TestRandom.gaussian(RNG, n * k, 1 / Math.sqrt(k)));
      Tensor b = Tensor.ofFloats("b", new long[] {n}, TestRandom.gaussian(RNG, n, 1));
      Graph graph = g.output("y", g.linear("c_fc", x, w, b, Activation.QUICK_GELU)).build();
      Map<String, Object> in = Map.of("x", TestRandom.gaussian(RNG, m * k, 1));
      float[] want = onReference(graph, in);
      for (Precision p : new Precision[] {Precision.FP16, Precision.BF16}) {
        for (Sm90Gemm.Schedule schedule : SCHEDULES) {
          String what = "M=" + m + " " + p + " " + schedule;
          float[] fused, replayed, unfused;
          try (CudaBackend backend = new CudaBackend(device, p)) {
            assertTrue(backend.fusedLinearAvailable());
            backend.fusedLinear(false);
            try (Executor ex = new Executor(graph, backend, List.of())) {
              unfused = ex.run(in).get("y");
            }
            assertEquals(0, backend.fusedLinearLaunches(), "gemm_sm90 ran while off");
            backend.fusedLinear(true, schedule, false);
            try (Executor ex = new Executor(graph, backend, List.of(), true)) {
              fused = ex.run(in).get("y");
              assertEquals(1, backend.fusedLinearLaunches(), what + ": c_fc did not run as one gemm_sm90 kernel");
              replayed = ex.run(in).get("y");
              assertTrue(ex.replaying(), what + ": the second run did not replay a CUDA graph: " + ex.recordingFailure());
            }
          }
          assertArrayEquals(fused, replayed, what + ": the CUDA-graph replay differs from the first run");
          double err = ReferenceOps.relativeError(fused, want), vsUnfused = ReferenceOps.relativeError(fused, unfused);
          double u = p == Precision.FP16 ? 4.9e-4 : 3.9e-3;
          System.out.printf("[gemm_sm90 backend] c_fc %-28s vs reference %.2e, vs cuBLAS + bias_act %.2e%n", what, err, vsUnfused);
          assertTrue(err <= (p == Precision.FP16 ? 1e-2 : 5e-2), what + ": relative error " + err);
          assertTrue(vsUnfused <= 2 * u, what + ": " + vsUnfused + " from the unfused path");
        }
      }
    }
  }

  /**
   * With every LINEAR asked for ({@code sm90-all}): an out_proj (bias) and a c_proj with its
   * residual (LINEAR_RESIDUAL) at ViT-B/32's width on 2 images run as gemm_sm90 kernels, within the
   * tolerances of CudaLinearEpilogueTest of the reference; with only activations asked for, neither
   * does (cuBLASLt takes them).
   */
  @Test
  void everyLinearRunsOnItWhenAskedForAll() { // and with -linear, those without a residual
    int m = 100, d = 768;
    GraphBuilder g = new GraphBuilder();
    Value x = g.input("x", DType.F32, m, d);
    Tensor w1 = Tensor.ofFloats("w1", new long[] {d, d}, TestRandom.gaussian(RNG, d * d, 1 / Math.sqrt(d)));
    Tensor b1 = Tensor.ofFloats("b1", new long[] {d}, TestRandom.gaussian(RNG, d, 1));
    Tensor w2 = Tensor.ofFloats("w2", new long[] {d, 4 * d}, TestRandom.gaussian(RNG, 4 * d * d, 1 / Math.sqrt(4 * d)));
    Tensor b2 = Tensor.ofFloats("b2", new long[] {d}, TestRandom.gaussian(RNG, d, 1));
    Value h = g.linear("out_proj", x, w1, b1, null);
    Value wide = g.input("wide", DType.F32, m, 4 * d);
    Graph graph = g.output("y", g.linearResidual("c_proj", wide, w2, b2, h)).build();
    Map<String, Object> in = Map.of("x", TestRandom.gaussian(RNG, m * d, 1), "wide", TestRandom.gaussian(RNG, m * 4 * d, 1));
    float[] want = onReference(graph, in);
    for (Precision p : new Precision[] {Precision.FP16, Precision.BF16}) {
      for (Sm90Gemm.Schedule schedule : SCHEDULES) {
        String what = p + " " + schedule;
        try (CudaBackend backend = new CudaBackend(device, p, true, true)) {
          backend.fusedLinear(true, schedule, false);
          try (Executor ex = new Executor(graph, backend, List.of())) {
            ex.run(in);
          }
          assertEquals(0, backend.fusedLinearLaunches(), what + ": LINEARs without activation ran on gemm_sm90 without -all");
          backend.fusedLinear(true, schedule, CudaBackend.FusedScope.LINEAR);
          try (Executor ex = new Executor(graph, backend, List.of())) {
            float[] linear = ex.run(in).get("y");
            double err = ReferenceOps.relativeError(linear, want);
            assertTrue(err <= (p == Precision.FP16 ? 1e-2 : 5e-2), what + " -linear: relative error " + err);
          }
          assertEquals(1, backend.fusedLinearLaunches(), what + ": -linear did not run out_proj, and only it, on gemm_sm90");
          backend.fusedLinear(true, schedule, true);
          float[] got;
          try (Executor ex = new Executor(graph, backend, List.of())) {
            got = ex.run(in).get("y");
          }
          assertEquals(3, backend.fusedLinearLaunches(), what + ": out_proj and c_proj + residual did not both run on gemm_sm90");
          double err = ReferenceOps.relativeError(got, want);
          System.out.printf("[gemm_sm90 backend] out_proj, c_proj + residual %-20s vs reference %.2e%n", what, err);
          assertTrue(err <= (p == Precision.FP16 ? 1e-2 : 5e-2), what + ": relative error " + err);
        }
      }
    }
  }

  /**
   * A LayerNorm folded into the LINEAR it feeds ({@link CudaBackend#layerNormFold}: the rows'
   * statistics, then gemm_ln_sm90 on x with gamma in the weight and beta in the bias), through the
   * backend, at the shapes of in_proj and c_fc after ln_1 and ln_2 (text, ViT-B/32, ViT-L/14; M
   * off the tile, N off the ping-pong tile with the erf GELU, no bias), on rows with means of a few
   * units and spreads from 0.3 to 3 (so that a wrong mean or rstd shows), in fp16 and bf16, both
   * schedules, against the reference backend's LayerNorm then LINEAR in double: within the
   * tolerances of CudaLinearEpilogueTest's 16-bit LINEARs (the folded weight is rounded once; the
   * normalised rows never are). The fold must run (one launch a LAYER_NORM_LINEAR), and a CUDA-graph
   * replay must give the first run's bits.
   */
  @Test
  void aLayerNormFoldedIntoItsLinearMatchesTheReference() {
    // {rows, width D, columns, activation (0 none, 1 QuickGELU, 2 GELU), bias}
    int[][] shapes = {{154, 512, 1536, 0, 1}, {154, 512, 2048, 1, 1}, {400, 768, 2304, 0, 1}, {400, 768, 3072, 1, 1}, {257, 1024, 4096, 1, 1},
      {129, 768, 520, 2, 1}, {77, 512, 512, 0, 0}};
    List<String> failures = new ArrayList<>();
    for (int[] sh : shapes) {
      int m = sh[0], d = sh[1], n = sh[2];
      dev.jclip.model.Activation act = sh[3] == 1 ? dev.jclip.model.Activation.QUICK_GELU : sh[3] == 2 ? dev.jclip.model.Activation.GELU : null;
      float[] x = new float[m * d];
      for (int r = 0; r < m; r++) {
        double mean = 4 * RNG.nextGaussian(), spread = 0.3 + 2.7 * RNG.nextDouble();
        for (int c = 0; c < d; c++) x[r * d + c] = (float) (mean + spread * RNG.nextGaussian());
      }
      GraphBuilder g = new GraphBuilder();
      Value in = g.input("x", DType.F32, m, d);
      Tensor gamma = Tensor.ofFloats("gamma", new long[] {d}, plusOne(TestRandom.gaussian(RNG, d, 0.2)));
      Tensor beta = Tensor.ofFloats("beta", new long[] {d}, TestRandom.gaussian(RNG, d, 0.2));
      Tensor w = Tensor.ofFloats("w", new long[] {n, d}, TestRandom.gaussian(RNG, n * d, 1 / Math.sqrt(d)));
      Tensor b = sh[4] == 1 ? Tensor.ofFloats("b", new long[] {n}, TestRandom.gaussian(RNG, n, 1)) : null;
      Graph graph = g.output("y", g.linear("lin", g.layerNorm("ln", in, gamma, beta, 1e-5f), w, b, act)).build();
      Map<String, Object> inputs = Map.of("x", x);
      String shape = "LayerNorm " + m + "x" + d + " -> LINEAR " + n + (act == null ? "" : " " + act) + (b == null ? " no bias" : "");
      // the references on the 16-bit inputs the GPU reads, both precisions at once (the slow part)
      Precision[] precisions = {Precision.FP16, Precision.BF16};
      float[][] wants = new float[precisions.length][];
      IntStream.range(0, precisions.length).parallel()
          .forEach(i -> wants[i] = onReference(graph, Map.of("x", fromHalf(toHalf(x, precisions[i]), precisions[i]))));
      for (int pi = 0; pi < precisions.length; pi++) {
        Precision p = precisions[pi];
        float[] want = wants[pi];
        double tol = p == Precision.FP16 ? 1e-2 : 5e-2;
        for (Sm90Gemm.Schedule schedule : new Sm90Gemm.Schedule[] {Sm90Gemm.Schedule.COOPERATIVE, Sm90Gemm.Schedule.PINGPONG}) {
          String what = shape + " " + p + " " + schedule;
          try (CudaBackend backend = new CudaBackend(device, p, true, true)) {
            backend.layerNormFold(schedule);
            float[] got, replayed;
            try (Executor ex = new Executor(graph, backend, List.of(), true)) {
              assertEquals(Op.LAYER_NORM_LINEAR, ex.graph().node("lin").op(), what + ": not folded");
              got = ex.run(inputs).get("y");
              assertEquals(1, backend.layerNormFoldLaunches(), what + ": the folded kernel did not run");
              replayed = ex.run(inputs).get("y"); // records the node loop (the fold queued again), then replays it
              assertTrue(ex.replaying(), what + ": the second run did not replay a CUDA graph: " + ex.recordingFailure());
            }
            org.junit.jupiter.api.Assertions.assertArrayEquals(got, replayed, what + ": the CUDA-graph replay differs");
            for (int i = 0; i < got.length; i++) assertTrue(Float.isFinite(got[i]), what + ": element " + i + " is " + got[i]);
            double err = ReferenceOps.relativeError(got, want);
            System.out.printf("[gemm_ln_sm90 backend] %-52s %-4s %-11s vs reference %.2e%n", shape, p, schedule, err);
            assertTrue(err <= tol, "relative error " + err + " > " + tol);
          } catch (AssertionError | RuntimeException e) {
            failures.add(what + ": " + e.getMessage());
            if (e instanceof CudaException) break;
          }
        }
      }
    }
    assertTrue(failures.isEmpty(), failures.size() + " failures:\n" + String.join("\n", failures));
  }

  private static float[] plusOne(float[] a) {
    for (int i = 0; i < a.length; i++) a[i] += 1;
    return a;
  }

  /** The graph's output "y" on the reference backend. */
  static float[] onReference(Graph graph, Map<String, Object> in) {
    try (ReferenceBackend ref = new ReferenceBackend();
        Executor ex = new Executor(graph, ref, List.of())) {
      return ex.run(in).get("y");
    }
  }
}
