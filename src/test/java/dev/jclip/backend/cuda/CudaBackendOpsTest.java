package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.Precision;
import dev.jclip.backend.ReferenceBackend;
import dev.jclip.backend.ReferenceOps;
import dev.jclip.backend.cpu.CpuBackendOpsTest;
import dev.jclip.backend.cpu.CpuBackendOpsTest.Case;
import dev.jclip.graph.Executor;
import dev.jclip.graph.GraphBuilder;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every op on the CUDA backend against the reference backend, with the cases of the CPU ops test
 * (ggml's test-backend-ops idea: one list of cases, every backend). fp32 (parity mode) within
 * 1e-5; fp16 within 1e-2 and bf16 within 5e-2: there the inputs themselves are rounded to 11 and
 * 8 significant bits on the way in, so these bounds catch wrong indexing and broken kernels, while
 * the model-level tolerance of the 16-bit modes is checked against the golden outputs
 * (CudaGoldenParityTest, 5e-3).
 */
@Tag("cuda")
class CudaBackendOpsTest {
  static CudaDevice device;
  static ReferenceBackend reference;
  static final Map<Precision, CudaBackend> backends = new java.util.EnumMap<>(Precision.class);

  @BeforeAll
  static void open() {
    device = CudaTestSupport.openDevice();
    reference = new ReferenceBackend();
    for (Precision p : Precision.values()) backends.put(p, new CudaBackend(device, p)); // one per precision: modules load once
  }

  @AfterAll
  static void close() {
    for (CudaBackend b : backends.values()) b.close();
    backends.clear();
    if (reference != null) reference.close();
    if (device != null) device.close();
  }

  static Stream<Case> cases() {
    return CpuBackendOpsTest.cases().stream();
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
    for (Precision p : Precision.values()) {
      float[] got;
      try (Executor ex = new Executor(graph, backends.get(p), List.of(), true)) {
        got = ex.run(inputs).get("y");
        float[] replayed = ex.run(inputs).get("y"); // the second run replays a CUDA graph
        assertArrayEquals(got, replayed, c + " " + p + ": the CUDA-graph replay differs from the first run");
      }
      double tol = switch (p) {
        case FP32 -> 1e-5;
        case FP16 -> 1e-2;
        case BF16 -> 5e-2;
      };
      double err = ReferenceOps.relativeError(got, want);
      System.out.printf("[cuda ops] %-55s %-4s relative error %.2e%n", c, p, err);
      for (int i = 0; i < got.length; i++) assertTrue(Float.isFinite(got[i]), c + " " + p + ": element " + i + " is " + got[i]);
      assertTrue(err <= tol, c + " " + p + ": relative error " + err + " > " + tol);
    }
  }
}
