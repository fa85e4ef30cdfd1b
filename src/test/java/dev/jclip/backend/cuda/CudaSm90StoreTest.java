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
 * gemm_sm90's TMA-store kernels ({@code *_tma_*}: each 64 x 64 chunk of outputs staged in shared
 * memory, swizzled, and written by the TMA unit; {@link Sm90Gemm#run} with {@code tmaStore}),
 * against the register-epilogue kernels they stand in for: the same arithmetic, so the same bits
 * (allowed: one unit of 16-bit rounding in at most 0.1% of the outputs, should nvcc order an
 * epilogue's instructions differently), nothing written past C (the TMA unit clips the
 * chunks at M and N), and within the 16-bit tolerance of a double product. Every problem of
 * CudaSm90GemmTest without a residual (the TMA kernels' scope), both one-block schedules, fp16 and
 * bf16; then the fallbacks (a residual, C not 16-byte aligned: the register kernel, no TMA
 * launch), and through the backend the fused c_fc and the folded LayerNorm with {@link
 * CudaBackend#gemmTmaStore} on and off, CUDA-graph replay included. A class of its own: a TMA
 * fault leaves only these tests' context unusable, and run.sh then leaves only the "tma" profile
 * columns out. Skipped (with the reason) off compute capability 9.0.
 */
@Tag("cuda")
class CudaSm90StoreTest {
  static final Random RNG = TestRandom.create("CudaSm90StoreTest");
  static CudaDevice device;
  static final Sm90Gemm.Schedule[] ONE_BLOCK = {Sm90Gemm.Schedule.COOPERATIVE, Sm90Gemm.Schedule.PINGPONG};

  @RegisterExtension
  static final CudaTestSupport.Gpu GPU = CudaTestSupport.sm90(d -> device = d);

  @Test
  void theTmaKernelsWriteWhatTheRegisterEpilogueWrites() {
    List<String> failures = new ArrayList<>();
    List<CudaSm90GemmTest.Problem> problems = new ArrayList<>(CudaSm90GemmTest.problems().stream().filter(p -> !p.residual()).toList());
    problems.add(new CudaSm90GemmTest.Problem("one chunk", 64, 64, 64, 0, true, false));
    problems.add(new CudaSm90GemmTest.Problem("N below a chunk", 30, 56, 64, 1, true, false));
    try (CudaStream stream = new CudaStream(device);
        Sm90Gemm gemm = new Sm90Gemm(device, stream.handle())) {
      problems:
      for (Precision p : new Precision[] {Precision.FP16, Precision.BF16}) {
        double tol = p == Precision.FP16 ? 1e-3 : 8e-3;
        for (CudaSm90GemmTest.Problem pr : problems) {
          CudaSm90GemmTest.Inputs in = new CudaSm90GemmTest.Inputs(p, pr);
          for (Sm90Gemm.Schedule schedule : ONE_BLOCK) {
            String what = pr + " " + p + " " + schedule;
            try {
              long before = gemm.tmaLaunches();
              short[] registers = in.run(gemm, stream, schedule, false, 0);
              short[] tma = in.run(gemm, stream, schedule, true, 0);
              assertEquals(before + 1, gemm.tmaLaunches(), "the TMA-store kernel did not run");
              int differ = compareWithinOneUlp(registers, tma, what);
              double err = ReferenceOps.relativeError(fromHalf(tma, p), in.want());
              System.out.printf("[gemm_sm90 tma] %-76s %d of %d outputs differ by one ulp; vs double %.2e%n", what, differ, tma.length, err);
              assertTrue(err <= tol, "relative error " + err + " > " + tol);
            } catch (AssertionError | RuntimeException e) {
              failures.add(what + ": " + e.getMessage());
              if (e instanceof CudaException) break problems; // a fault leaves the context unusable
            }
          }
        }
      }
    }
    assertTrue(failures.isEmpty(), failures.size() + " failures:\n" + String.join("\n", failures));
  }

  /**
   * A launch the TMA kernels do not take runs the register kernel: with a residual, or with C not
   * 16-byte aligned (8 bytes into a buffer); the same bits as asking for it, and no TMA launch.
   */
  @Test
  void whatTheTmaKernelsDoNotTakeRunsTheRegisterKernel() {
    try (CudaStream stream = new CudaStream(device);
        Sm90Gemm gemm = new Sm90Gemm(device, stream.handle())) {
      for (Precision p : new Precision[] {Precision.FP16, Precision.BF16}) {
        CudaSm90GemmTest.Inputs residual = new CudaSm90GemmTest.Inputs(p, new CudaSm90GemmTest.Problem("c_proj", 200, 768, 3072, 0, true, true));
        CudaSm90GemmTest.Inputs plain = new CudaSm90GemmTest.Inputs(p, new CudaSm90GemmTest.Problem("c_fc", 200, 3072, 768, 1, true, false));
        for (Sm90Gemm.Schedule schedule : ONE_BLOCK) {
          long before = gemm.tmaLaunches();
          assertArrayEquals(residual.run(gemm, stream, schedule, false, 0), residual.run(gemm, stream, schedule, true, 0),
              p + " " + schedule + " with a residual");
          assertArrayEquals(plain.run(gemm, stream, schedule, false, 8), plain.run(gemm, stream, schedule, true, 8),
              p + " " + schedule + " with C 8 bytes into its buffer");
          assertEquals(before, gemm.tmaLaunches(), p + " " + schedule + ": a TMA-store kernel ran where it cannot");
        }
      }
    }
  }

  /**
   * Through the backend ({@link CudaBackend#gemmTmaStore}): c_fc fused (bias + QuickGELU) and a
   * LayerNorm folded into in_proj and into c_fc, at ViT-B/32's and the text tower's widths on rows
   * off the tile, in fp16 and bf16, both one-block schedules: within one ulp of the register
   * epilogue's output, the TMA kernels launched, and a CUDA-graph replay giving the first run's bits.
   */
  @Test
  void theBackendsFusedAndFoldedLinearsWithTmaStores() {
    List<String> failures = new ArrayList<>();
    // {rows, width, columns, activation (0 none, 1 QuickGELU), fold the LayerNorm}
    int[][] cases = {{400, 768, 3072, 1, 0}, {154, 512, 2048, 1, 0}, {400, 768, 2304, 0, 1}, {154, 512, 2048, 1, 1}};
    cases:
    for (int[] cs : cases) {
      int m = cs[0], d = cs[1], n = cs[2];
      boolean fold = cs[4] == 1;
      GraphBuilder g = new GraphBuilder();
      Value x = g.input("x", DType.F32, m, d);
      Value in = fold ? g.layerNorm("ln", x, Tensor.ofFloats("gamma", new long[] {d}, plusOne(TestRandom.gaussian(RNG, d, 0.2))),
          Tensor.ofFloats("beta", new long[] {d}, TestRandom.gaussian(RNG, d, 0.2)), 1e-5f) : x;
      Tensor w = Tensor.ofFloats("w", new long[] {n, d}, TestRandom.gaussian(RNG, n * d, 1 / Math.sqrt(d)));
      Tensor b = Tensor.ofFloats("b", new long[] {n}, TestRandom.gaussian(RNG, n, 1));
      Graph graph = g.output("y", g.linear("lin", in, w, b, cs[3] == 1 ? Activation.QUICK_GELU : null)).build();
      Map<String, Object> inputs = Map.of("x", TestRandom.gaussian(RNG, m * d, 2));
      for (Precision p : new Precision[] {Precision.FP16, Precision.BF16}) {
        for (Sm90Gemm.Schedule schedule : ONE_BLOCK) {
          String what = (fold ? "LayerNorm -> " : "") + "LINEAR " + m + "x" + d + " -> " + n + (cs[3] == 1 ? " QuickGELU" : "") + " " + p + " "
              + schedule;
          try (CudaBackend backend = new CudaBackend(device, p, true, true)) {
            backend.gemmTmaStore(false); // whatever -Djclip.cuda.gemmStore says: the register epilogue first
            if (fold) backend.layerNormFold(schedule);
            else backend.fusedLinear(true, schedule, false);
            float[] registers;
            try (Executor ex = new Executor(graph, backend, List.of())) {
              registers = ex.run(inputs).get("y");
            }
            assertEquals(0, backend.gemmTmaStoreLaunches(), what + ": a TMA-store kernel ran while off");
            backend.gemmTmaStore(true);
            float[] tma, replayed;
            try (Executor ex = new Executor(graph, backend, List.of(), true)) {
              tma = ex.run(inputs).get("y");
              assertEquals(1, backend.gemmTmaStoreLaunches(), what + ": the TMA-store kernel did not run");
              replayed = ex.run(inputs).get("y");
              assertTrue(ex.replaying(), what + ": the second run did not replay a CUDA graph: " + ex.recordingFailure());
            }
            assertArrayEquals(tma, replayed, what + ": the CUDA-graph replay differs from the first run");
            int differ = compareWithinOneUlp(toHalf(registers, p), toHalf(tma, p), what);
            System.out.printf("[gemm_sm90 tma backend] %-64s %d of %d outputs differ by one ulp%n", what, differ, tma.length);
          } catch (AssertionError | RuntimeException e) {
            failures.add(what + ": " + e.getMessage());
            if (e instanceof CudaException) break cases; // a fault leaves the context unusable
          }
        }
      }
    }
    assertTrue(failures.isEmpty(), failures.size() + " failures:\n" + String.join("\n", failures));
  }

  /**
   * Asserts that {@code got} is within one unit in the last place of {@code want} everywhere and
   * the same bits in all but 0.1% of the outputs (a rounding that differs in kind, not an
   * instruction order, would change far more); returns how many differ.
   */
  static int compareWithinOneUlp(short[] want, short[] got, String what) {
    assertEquals(want.length, got.length, what);
    int differ = 0;
    for (int i = 0; i < want.length; i++) {
      if (want[i] == got[i]) continue;
      int d = Math.abs(ordered(want[i]) - ordered(got[i]));
      assertTrue(d <= 1, what + ": output " + i + " is " + Integer.toHexString(got[i] & 0xffff) + ", the register epilogue's "
          + Integer.toHexString(want[i] & 0xffff) + " (" + d + " units apart)");
      differ++;
    }
    assertTrue(differ <= want.length / 1000, what + ": " + differ + " of " + want.length + " outputs differ from the register epilogue's");
    return differ;
  }

  /** A 16-bit float's bits as an integer that orders like its value (both formats are sign-magnitude). */
  private static int ordered(short h) {
    int v = h & 0xffff;
    return (v & 0x8000) != 0 ? -(v & 0x7fff) : v;
  }

  private static float[] plusOne(float[] a) {
    for (int i = 0; i < a.length; i++) a[i] += 1;
    return a;
  }
}
