package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.Precision;
import dev.jclip.backend.ReferenceBackend;
import dev.jclip.backend.ReferenceOps;
import dev.jclip.backend.cpu.CpuBackendOpsTest;
import dev.jclip.backend.cpu.CpuBackendOpsTest.Case;
import dev.jclip.graph.Executor;
import dev.jclip.graph.GraphBuilder;
import dev.jclip.io.DType;
import dev.jclip.io.Tensor;
import dev.jclip.testing.TestRandom;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every op on the CUDA backend against the reference backend, with the cases of the CPU ops test
 * (ggml's test-backend-ops idea: one list of cases, every backend). fp32 (parity mode) within
 * 1e-5; fp16 within 1e-2 and bf16 within 5e-2: there the inputs themselves are rounded to 11 and
 * 8 significant bits on the way in, so these bounds catch wrong indexing and broken kernels, while
 * the model-level tolerance of the 16-bit modes is checked against the golden outputs
 * (CudaGoldenParityTest, 5e-3). The LINEAR and LINEAR_RESIDUAL cases run on both GEMM paths
 * (cuBLASLt epilogues, and cuBLAS with separate passes); CudaLinearEpilogueTest covers every CLIP
 * LINEAR shape.
 */
@Tag("cuda")
class CudaBackendOpsTest {
  static CudaDevice device;
  static ReferenceBackend reference;
  static final Map<Precision, CudaBackend> backends = new java.util.EnumMap<>(Precision.class);
  /** The same on the cuBLAS path, for the LINEAR cases. */
  static final Map<Precision, CudaBackend> cublas = new java.util.EnumMap<>(Precision.class);

  @BeforeAll
  static void open() {
    device = CudaTestSupport.openDevice();
    reference = new ReferenceBackend();
    for (Precision p : Precision.values()) { // one per precision: modules load once
      backends.put(p, new CudaBackend(device, p, false, true));
      cublas.put(p, new CudaBackend(device, p, false, false));
    }
  }

  @AfterAll
  static void close() {
    for (CudaBackend b : backends.values()) b.close();
    for (CudaBackend b : cublas.values()) b.close();
    backends.clear();
    cublas.clear();
    if (reference != null) reference.close();
    if (device != null) device.close();
  }

  /** The CPU ops test's cases; those with heads other than 64 last (attention_any.cu's first GPU run: a fault would spoil the cases after it). */
  static Stream<Case> cases() {
    return CpuBackendOpsTest.cases().stream().sorted(java.util.Comparator.comparing(CudaBackendOpsTest::otherHeads));
  }

  private static boolean otherHeads(Case c) {
    if (c.op() != dev.jclip.graph.Op.ATTENTION && c.op() != dev.jclip.graph.Op.ATTENTION_POOLED) return false;
    GraphBuilder g = new GraphBuilder();
    c.build().apply(g);
    return g.build().nodes().stream().anyMatch(n -> CudaBackend.headSizeRefusal(n) != null);
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("cases")
  void matchesTheReferenceBackendInEveryPrecision(Case c) {
    GraphBuilder g = new GraphBuilder();
    Map<String, Object> inputs = c.build().apply(g);
    var graph = g.build();
    float[] want;
    try (Executor ex = new Executor(graph, reference, List.of())) {
      want = ex.run(inputs).get("y");
    }
    boolean linear = c.op() == dev.jclip.graph.Op.LINEAR || c.op() == dev.jclip.graph.Op.LINEAR_RESIDUAL;
    if (graph.nodes().stream().anyMatch(n -> CudaBackend.headSizeRefusal(n) != null)) {
      // heads other than 64: refused by name before any launch, unless anyHead (attention_any.cu, fp32 arithmetic: fp32's tolerance in every precision but the inputs' rounding)
      boolean anyHeadSet = "on".equals(System.getProperty("jclip.cuda.anyHead")); // the backends were built with it on
      for (Precision p : Precision.values()) {
        CudaBackend b = backends.get(p);
        if (!anyHeadSet) {
          UnsupportedOperationException e = org.junit.jupiter.api.Assertions.assertThrows(UnsupportedOperationException.class,
              () -> new Executor(graph, b, List.of(), true).close(), c + " " + p);
          assertTrue(e.getMessage().contains("heads of 64"), e.getMessage());
        }
        b.anyHead(true);
        try {
          check(c, graph, inputs, want, p, b);
        } finally {
          b.anyHead(anyHeadSet);
        }
      }
      return;
    }
    for (Precision p : Precision.values()) {
      for (CudaBackend backend : linear ? List.of(backends.get(p), cublas.get(p)) : List.of(backends.get(p))) {
        check(c, graph, inputs, want, p, backend);
      }
      if (linear) {
        assertTrue(backends.get(p).cublasLtUnsupported().isEmpty(), c + " " + p + ": cuBLASLt had no algorithm for "
            + backends.get(p).cublasLtUnsupported());
      }
    }
  }

  private static void check(Case c, dev.jclip.graph.Graph graph, Map<String, Object> inputs, float[] want, Precision p, CudaBackend backend) {
    float[] got;
    try (Executor ex = new Executor(graph, backend, List.of(), true)) {
      got = ex.run(inputs).get("y");
      float[] replayed = ex.run(inputs).get("y"); // the second run replays a CUDA graph
      assertTrue(ex.replaying(), c + " " + p + " " + backend.gemmLibrary() + ": the second run did not replay a CUDA graph: " + ex.recordingFailure());
      assertArrayEquals(got, replayed, c + " " + p + " " + backend.gemmLibrary() + ": the CUDA-graph replay differs from the first run");
    }
    double tol = switch (p) {
      case FP32 -> 1e-5;
      case FP16 -> 1e-2;
      case BF16 -> 5e-2;
    };
    double err = ReferenceOps.relativeError(got, want);
    System.out.printf("[cuda ops] %-55s %-4s %-8s relative error %.2e%n", c, p, backend.gemmLibrary(), err);
    for (int i = 0; i < got.length; i++) assertTrue(Float.isFinite(got[i]), c + " " + p + " " + backend.gemmLibrary() + ": element " + i + " is " + got[i]);
    assertTrue(err <= tol, c + " " + p + " " + backend.gemmLibrary() + ": relative error " + err + " > " + tol);
  }

  /**
   * Convolutions run in groups of images whose im2col (and in fp16/bf16, whose fp32 GEMM output)
   * fits the scratch limit: with the limit lowered to two images' worth, a batch of 5 runs as groups
   * of 2, 2 and 1, and must still match the reference (a 1x1 conv, which needs no im2col, runs as
   * one batched GEMM in fp32 and in groups of its fp32 outputs in fp16).
   */
  @Test
  void convolutionsInGroupsOfImagesMatchTheReference() {
    int b = 5, c = 16, size = 14, o = 32;
    String key = "jclip.cuda.im2colBytes";
    for (Precision p : List.of(Precision.FP32, Precision.FP16)) {
      // fp32: two images' im2col (k = 3); fp16: two images' fp32 GEMM output (k = 1; k = 3's 16-bit im2col alone exceeds it)
      long limit = p == Precision.FP32 ? 2L * 4 * c * 9 * size * size : 2L * 4 * o * size * size;
      System.setProperty(key, Long.toString(limit));
      try (CudaBackend grouped = new CudaBackend(device, p)) {
        System.clearProperty(key);
        for (int k : new int[] {3, 1}) {
          GraphBuilder g = new GraphBuilder();
          var rnd = TestRandom.create("conv groups " + k);
          float[] x = TestRandom.gaussian(rnd, b * c * size * size, 1);
          Tensor w = Tensor.ofFloats("w", new long[] {o, c, k, k}, TestRandom.gaussian(rnd, o * c * k * k, 0.1f));
          Tensor scale = Tensor.ofFloats("s", new long[] {o}, TestRandom.gaussian(rnd, o, 1f));
          Tensor bias = Tensor.ofFloats("b", new long[] {o}, TestRandom.gaussian(rnd, o, 0.1f));
          g.output("y", g.conv2d("conv", g.input("x", DType.F32, b, c, size, size), w, scale, bias, 1, k / 2, true));
          var graph = g.build();
          float[] want, got;
          try (Executor ex = new Executor(graph, reference, List.of())) {
            want = ex.run(Map.of("x", x)).get("y");
          }
          try (Executor ex = new Executor(graph, grouped, List.of())) {
            got = ex.run(Map.of("x", x)).get("y");
          }
          double err = ReferenceOps.relativeError(got, want), tol = p == Precision.FP32 ? 1e-5 : 2e-3;
          System.out.printf("[cuda ops] conv k=%d %s in groups: relative error %.2e%n", k, p, err);
          assertTrue(err <= tol, "k=" + k + " " + p + ": relative error " + err);
        }
      } finally {
        System.clearProperty(key);
      }
    }
  }

  /**
   * A token id outside the embedding table is refused on the host with the CPU backend's message,
   * on an executor's first run and when written before a replay, and the device stays usable (an
   * unchecked gather would be an illegal address, fatal to the CUDA context).
   */
  @Test
  void tokenIdsOutsideTheVocabularyAreRefused() {
    GraphBuilder g = new GraphBuilder();
    Tensor table = Tensor.ofFloats("t", new long[] {100, 64}, TestRandom.gaussian(TestRandom.create("vocab"), 6400, 1));
    Tensor pos = Tensor.ofFloats("p", new long[] {4, 64}, new float[256]);
    g.output("y", g.tokenEmbed("tok", g.input("ids", DType.I32, 2, 4), table, pos));
    var graph = g.build();
    int[] good = {0, 1, 2, 99, 5, 6, 7, 8}, bad = {0, 1, 2, 100, 5, 6, 7, 8};
    CudaBackend cuda = backends.get(Precision.FP32);
    try (Executor ex = new Executor(graph, cuda, List.of(), true)) {
      var e = assertThrows(IllegalArgumentException.class, () -> ex.run(Map.of("ids", bad)));
      assertTrue(e.getMessage().contains("token id 100 at sequence 0, position 3"), e.getMessage());
    }
    try (Executor ex = new Executor(graph, cuda, List.of(), true)) {
      float[] want = ex.run(Map.of("ids", good)).get("y");
      ex.run(Map.of("ids", good));
      assertTrue(ex.replaying());
      assertThrows(IllegalArgumentException.class, () -> ex.run(Map.of("ids", new int[] {0, 1, 2, 3, 4, 5, 6, -1})));
      assertArrayEquals(want, ex.run(Map.of("ids", good)).get("y"), "the backend works on after a refused input");
    }
  }
}
