package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.Precision;
import dev.jclip.backend.ReferenceBackend;
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
 * The LINEARs of CLIP's transformer blocks at every CLIP width and the row counts they run at, on
 * the cuBLASLt path (bias, and bias + residual, in the GEMM epilogue) and on the cuBLAS path
 * (GEMM, bias pass, ADD), in fp32, fp16 and bf16, against the reference backend: in_proj (D to 3D,
 * bias), out_proj and c_proj folded with their residual (D to D and 4D to D, bias + residual; one
 * also without bias), a plain out_proj (bias only) and c_fc (D to 4D, bias + QuickGELU: cuBLAS GEMM
 * + bias_act on both paths), and on tuned cuBLASLt ({@link CudaBackend#gemmTune}: every LINEAR's
 * GEMM a cuBLASLt matmul with the fastest of the heuristic's algorithms, c_fc's then bias_act),
 * also with the search around that fastest ({@link CudaBackend#gemmSearch}: whatever neighbour it
 * keeps must compute the same product). Tolerances as in CudaBackendOpsTest: fp32 (parity) 1e-5 relative,
 * fp16 1e-2, bf16 5e-2. Each runs twice on one executor, the second time replaying a CUDA graph,
 * which must give the first run's bits. Weights are scaled by 1/√K so that x·Wᵀ, the bias and the
 * residual are all of size ~1: a missing bias or residual is an error of ~0.5 in every precision.
 */
@Tag("cuda")
class CudaLinearEpilogueTest {
  static final Random RNG = TestRandom.create("CudaLinearEpilogueTest");
  static CudaDevice device;

  @RegisterExtension
  static final CudaTestSupport.Gpu GPU = CudaTestSupport.gpu(d -> device = d);

  /** One single-node graph, its inputs, and the reference backend's answer. */
  record Case(String name, Graph graph, Map<String, Object> inputs, boolean epilogue, float[][] want) {
    @Override
    public String toString() {
      return name;
    }
  }

  /**
   * Width D and rows M: one sequence of ViT-B/32 (50 tokens, 2 images), text (77, 2 texts),
   * ViT-B/16 (197), ViT-L/14 (257), ViT-L/14@336 (577), width 1280, and the pooled last block's
   * rows (the class or end-of-text token of 1 and 3 sequences).
   */
  static final int[][] SHAPES = {{768, 100}, {512, 154}, {768, 197}, {1024, 257}, {1024, 577}, {1280, 50}, {768, 1}, {512, 3}, {1024, 3}};

  static List<Case> cases() {
    List<Case> cases = new ArrayList<>();
    for (int[] s : SHAPES) {
      int d = s[0], m = s[1];
      String at = " D=" + d + " M=" + m;
      cases.add(linear("in_proj (bias)" + at, m, d, 3 * d, true, null, false));
      cases.add(linear("out_proj (bias)" + at, m, d, d, true, null, false));
      cases.add(linear("out_proj + residual (bias)" + at, m, d, d, true, null, true));
      cases.add(linear("c_fc (bias, QuickGELU)" + at, m, d, 4 * d, true, Activation.QUICK_GELU, false));
      cases.add(linear("c_proj + residual (bias)" + at, m, 4 * d, d, true, null, true));
    }
    cases.add(linear("out_proj + residual (no bias) D=768 M=100", 100, 768, 768, false, null, true));
    cases.add(linear("out_proj (no bias) D=512 M=77", 77, 512, 512, false, null, false));
    // The reference backend is the slow part (up to 2.4e9 multiply-adds per case): all cases at once.
    cases.parallelStream().forEach(c -> {
      try (ReferenceBackend ref = new ReferenceBackend();
          Executor ex = new Executor(c.graph, ref, List.of())) {
        c.want[0] = ex.run(c.inputs).get("y");
      }
    });
    return cases;
  }

  static Case linear(String name, int m, int k, int n, boolean bias, Activation act, boolean residual) {
    GraphBuilder g = new GraphBuilder();
    Map<String, Object> inputs = new java.util.LinkedHashMap<>();
    inputs.put("x", TestRandom.gaussian(RNG, m * k, 1));
    Value x = g.input("x", DType.F32, m, k);
    Tensor w = Tensor.ofFloats("w", new long[] {n, k}, TestRandom.gaussian(RNG, n * k, 1 / Math.sqrt(k)));
    Tensor b = bias ? Tensor.ofFloats("b", new long[] {n}, TestRandom.gaussian(RNG, n, 1)) : null;
    Value y;
    if (residual) {
      inputs.put("r", TestRandom.gaussian(RNG, m * n, 1));
      y = g.linearResidual("lin", x, w, b, g.input("r", DType.F32, m, n));
    } else {
      y = g.linear("lin", x, w, b, act);
    }
    return new Case(name, g.output("y", y).build(), inputs, act == null, new float[1][]);
  }

  @Test
  void everyClipLinearShapeMatchesTheReferenceOnBothPaths() {
    List<Case> cases = cases();
    List<String> failures = new ArrayList<>();
    for (Precision p : Precision.values()) {
      double tol = switch (p) {
        case FP32 -> 1e-5;
        case FP16 -> 1e-2;
        case BF16 -> 5e-2;
      };
      // {cuBLASLt, tuned, searched}: cuBLASLt, cuBLAS, tuned cuBLASLt (every LINEAR a cuBLASLt matmul, its
      // algorithm timed), and tuned with the search around the fastest (its neighbours' configurations timed too)
      for (boolean[] path : new boolean[][] {{true, false, false}, {false, false, false}, {true, true, false}, {true, true, true}}) {
        boolean lt = path[0], tune = path[1], search = path[2];
        try (CudaBackend backend = new CudaBackend(device, p, false, lt)) {
          backend.gemmTune(tune);
          backend.gemmSearch(search);
          String library = backend.gemmLibrary() + (search ? " searched" : tune ? " tuned" : "");
          for (Case c : cases) {
            String what = c + " " + p + " " + library;
            try {
              float[] got, replayed;
              try (Executor ex = new Executor(c.graph, backend, List.of(), true)) {
                got = ex.run(c.inputs).get("y");
                replayed = ex.run(c.inputs).get("y");
                assertTrue(ex.replaying(), what + ": the second run did not replay a CUDA graph: " + ex.recordingFailure());
              }
              assertArrayEquals(got, replayed, what + ": the CUDA-graph replay differs from the first run");
              double err = ReferenceOps.relativeError(got, c.want[0]);
              System.out.printf("[cuda linear] %-48s %-4s %-14s relative error %.2e%n", c, p, library, err);
              for (int i = 0; i < got.length; i++) assertTrue(Float.isFinite(got[i]), what + ": element " + i + " is " + got[i]);
              assertTrue(err <= tol, what + ": relative error " + err + " > " + tol);
            } catch (AssertionError | RuntimeException e) {
              failures.add(what + ": " + e.getMessage());
            }
          }
          if (lt) {
            // every LINEAR without activation ran as one cuBLASLt matmul, none fell back to cuBLAS
            if (!backend.cublasLtUnsupported().isEmpty()) failures.add(p + ": cuBLASLt had no algorithm for " + backend.cublasLtUnsupported());
            int epilogues = (int) cases.stream().filter(Case::epilogue).count();
            if (backend.cublasLtPlans() == 0) failures.add(p + ": no cuBLASLt matmul ran for " + epilogues + " epilogue cases");
          } else if (backend.cublasLtPlans() != 0) {
            failures.add(p + ": the cuBLAS path made cuBLASLt plans");
          }
          if (tune) {
            // c_fc's GEMM is a cuBLASLt matmul when tuned: a plan for every case (no two cases are one
            // problem: each differs in rows, columns, depth, bias or residual), and tuning measured something
            if (backend.cublasLtPlans() < cases.size()) failures.add(p + " tuned: " + backend.cublasLtPlans() + " cuBLASLt plans for " + cases.size() + " cases");
            if (backend.gemmTuning().isEmpty()) failures.add(p + " tuned: no problem was tuned (every heuristic offered one algorithm?)");
            if (search && backend.gemmTuning().stream().noneMatch(line -> line.contains(": search from "))) {
              failures.add(p + " searched: no problem was searched");
            }
            backend.gemmTuning().forEach(line -> System.out.println("[cuda linear " + (search ? "search" : "tune") + "] " + line));
          }
        }
      }
    }
    assertTrue(failures.isEmpty(), failures.size() + " failures:\n" + String.join("\n", failures));
  }

  /**
   * c_fc in row chunks ({@link CudaBackend#activationChunk}; here chunks of 64 and 200 KB of
   * product, so that the test's row counts make several, the last one short), fp16 and bf16:
   * within the precision's tolerance of the reference and within 16-bit rounding of the whole LINEAR (cuBLAS
   * may take another kernel for the chunk's rows), the chunks launched, and a CUDA-graph replay
   * giving the first run's bits; on cuBLAS and on tuned cuBLASLt GEMMs.
   */
  @Test
  void cFcInRowChunksMatchesTheWholeLinear() {
    List<Case> cases = new ArrayList<>();
    for (int[] s : new int[][] {{768, 577}, {512, 154}}) {
      cases.add(linear("c_fc (bias, QuickGELU) D=" + s[0] + " M=" + s[1], s[1], s[0], 4 * s[0], true, Activation.QUICK_GELU, false));
    }
    cases.add(linear("c_fc (no bias, GELU) D=768 M=300", 300, 768, 3072, false, Activation.GELU, false));
    cases.parallelStream().forEach(c -> {
      try (ReferenceBackend ref = new ReferenceBackend();
          Executor ex = new Executor(c.graph, ref, List.of())) {
        c.want[0] = ex.run(c.inputs).get("y");
      }
    });
    List<String> failures = new ArrayList<>();
    for (Precision p : new Precision[] {Precision.FP16, Precision.BF16}) { // fp32 chunks run the same code
      double tol = p == Precision.FP16 ? 1e-2 : 5e-2;
      double vsWhole = p == Precision.FP16 ? 2e-3 : 1.6e-2;
      for (boolean tune : new boolean[] {false, true}) {
        for (Case c : cases) {
          float[] whole;
          try (CudaBackend backend = new CudaBackend(device, p, false, true)) {
            backend.gemmTune(tune);
            try (Executor ex = new Executor(c.graph, backend, List.of())) {
              whole = ex.run(c.inputs).get("y");
            }
          }
          for (long chunk : new long[] {64 * 1024, 200 * 1024}) {
            String what = c + " " + p + (tune ? " tuned" : "") + ", chunks of " + chunk / 1024 + " KB";
            try (CudaBackend backend = new CudaBackend(device, p, false, true)) {
              backend.gemmTune(tune);
              backend.activationChunkBytes(chunk);
              float[] got, replayed;
              try (Executor ex = new Executor(c.graph, backend, List.of(), true)) {
                got = ex.run(c.inputs).get("y");
                replayed = ex.run(c.inputs).get("y");
                assertTrue(ex.replaying(), what + ": the second run did not replay a CUDA graph: " + ex.recordingFailure());
              }
              assertTrue(backend.activationChunksLaunched() > 0, what + ": ran in one piece");
              assertArrayEquals(got, replayed, what + ": the CUDA-graph replay differs from the first run");
              double err = ReferenceOps.relativeError(got, c.want[0]), whole1 = ReferenceOps.relativeError(got, whole);
              System.out.printf("[cuda linear chunks] %-48s %-30s vs reference %.2e, vs the whole LINEAR %.2e (%d chunks after the first)%n",
                  c, p + (tune ? " tuned" : "") + " " + chunk / 1024 + " KB", err, whole1, backend.activationChunksLaunched());
              for (int i = 0; i < got.length; i++) assertTrue(Float.isFinite(got[i]), what + ": element " + i + " is " + got[i]);
              assertTrue(err <= tol, what + ": relative error " + err + " > " + tol);
              assertTrue(whole1 <= vsWhole, what + ": " + whole1 + " off the whole LINEAR");
            } catch (AssertionError | RuntimeException e) {
              failures.add(what + ": " + e.getMessage());
            }
          }
        }
      }
    }
    assertTrue(failures.isEmpty(), failures.size() + " failures:\n" + String.join("\n", failures));
  }
}
