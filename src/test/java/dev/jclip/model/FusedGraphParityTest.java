package dev.jclip.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.Precision;
import dev.jclip.backend.ReferenceBackend;
import dev.jclip.backend.cpu.CpuBackend;
import dev.jclip.backend.cpu.CpuFeatures;
import dev.jclip.graph.Backend;
import dev.jclip.graph.Executor;
import dev.jclip.graph.Fusion;
import dev.jclip.graph.Graph;
import dev.jclip.graph.Node;
import dev.jclip.graph.Op;
import dev.jclip.io.Checkpoint;
import dev.jclip.io.SafetensorsReader;
import dev.jclip.testing.TestRandom;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The graphs with their residual ADDs folded into LINEAR_RESIDUAL nodes ({@link
 * Fusion#linearResidual}, what the CUDA backend runs) give exactly the unfused graphs' bits on the
 * CPU backend (fp32, and bf16 where the CPU has it) and on the reference backend: every reference
 * model with its golden inputs, features and the debug intermediates captured by name, and a
 * full-geometry ViT-B/32 with random weights and inputs. The GPU runs the same fused graphs
 * against the golden outputs in CudaGoldenParityTest.
 */
class FusedGraphParityTest {
  static java.util.stream.Stream<Path> models() throws IOException {
    return GoldenParityTest.models();
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("models")
  void referenceModelsGiveTheUnfusedBits(Path dir) throws IOException {
    try (Checkpoint ck = Checkpoint.open(dir.resolve("state_dict.pt"));
        SafetensorsReader golden = SafetensorsReader.open(dir.resolve("golden.safetensors"));
        ReferenceBackend ref = new ReferenceBackend();
        CpuBackend cpu = new CpuBackend()) {
      ClipConfig cfg = ClipConfig.infer(ck);
      ClipGraphs graphs = new ClipGraphs(cfg, ck.tensors());
      float[] pixels = golden.tensor("pixels").toFloatArray();
      int[] ids = GoldenParityTest.toInts(golden.tensor("tokens"));
      int images = (int) golden.tensor("pixels").dim(0), texts = (int) golden.tensor("tokens").dim(0), len = ids.length / texts;
      List<String> imageCapture = cfg.isVit()
          ? List.of("visual.conv1", "visual.ln_pre", "visual.transformer.resblocks.0", "visual.transformer.resblocks.0.attn.out_proj",
              "visual.ln_post")
          : List.of("visual.stem", "visual.layer1", "visual.attnpool");
      List<String> textCapture = List.of("transformer.resblocks.0", "transformer.resblocks.0.mlp.c_proj", "ln_final");
      List<Case> cases = List.of(
          new Case("image (all tokens)", graphs.image(images, true), Map.of("pixels", pixels), imageCapture),
          new Case("image", graphs.image(images), Map.of("pixels", pixels), List.of()),
          new Case("text (all tokens)", graphs.text(texts, len, true), Map.of("tokens", ids), textCapture),
          new Case("text", graphs.text(texts, len), Map.of("tokens", ids), List.of()));
      for (Case c : cases) {
        Graph fused = Fusion.linearResidual(c.graph, c.capture);
        int folded = count(fused, Op.LINEAR_RESIDUAL);
        boolean hasResiduals = cfg.isVit() || !c.name.startsWith("image"); // transformers have them
        if (hasResiduals) {
          assertTrue(folded > 0, dir.getFileName() + " " + c.name + ": nothing folded");
        } else {
          assertSame(c.graph, fused, "a ModifiedResNet image tower has no LINEAR + residual ADD");
          continue; // the same graph: nothing to compare
        }
        System.out.printf("[fusion] %s %s: %d residual ADDs folded%n", dir.getFileName(), c.name, folded);
        for (Backend b : List.<Backend>of(cpu, ref)) assertSameBits(dir.getFileName() + " " + c.name, c, fused, b);
      }
    }
  }

  /** ViT-B/32, full geometry, random weights and inputs: image and text towers, pooled and all-tokens, fp32 and bf16. */
  @Test
  void randomFullGeometryGraphsGiveTheUnfusedBits() {
    Random random = TestRandom.create("FusedGraphParityTest");
    ClipConfig cfg = RandomWeights.config("ViT-B/32");
    ClipGraphs graphs = new ClipGraphs(cfg, RandomWeights.generate(cfg, random.nextLong()));
    int images = 2, texts = 3, len = 77;
    float[] pixels = TestRandom.gaussian(random, images * 3 * 224 * 224, 1);
    int[] ids = new int[texts * len];
    for (int t = 0; t < texts; t++) {
      int eot = 2 + random.nextInt(len - 2);
      ids[t * len] = 49406;
      for (int i = 1; i < eot; i++) ids[t * len + i] = random.nextInt(49406);
      ids[t * len + eot] = 49407;
    }
    List<Case> cases = List.of(
        new Case("image", graphs.image(images), Map.of("pixels", pixels), List.of()),
        new Case("image (all tokens)", graphs.image(images, true), Map.of("pixels", pixels),
            List.of("visual.transformer.resblocks.6", "visual.transformer.resblocks.11.mlp.c_proj")),
        new Case("text", graphs.text(texts, len), Map.of("tokens", ids), List.of()),
        new Case("text (all tokens)", graphs.text(texts, len, true), Map.of("tokens", ids), List.of("transformer.resblocks.3")));
    List<Precision> precisions = new ArrayList<>(List.of(Precision.FP32));
    if (CpuFeatures.bf16()) precisions.add(Precision.BF16);
    for (Precision p : precisions) {
      try (CpuBackend cpu = new CpuBackend(Runtime.getRuntime().availableProcessors(), true, p)) {
        for (Case c : cases) {
          Graph fused = Fusion.linearResidual(c.graph, c.capture);
          long keptLinears = c.capture.stream().filter(n -> c.graph.node(n).op() == Op.LINEAR).count();
          assertEquals(24 - keptLinears, count(fused, Op.LINEAR_RESIDUAL), c.name + ": two per block, less the captured LINEARs");
          assertSameBits("ViT-B/32 " + p + " " + c.name, c, fused, cpu);
        }
      }
    }
  }

  private record Case(String name, Graph graph, Map<String, ?> inputs, List<String> capture) {}

  private static void assertSameBits(String what, Case c, Graph fused, Backend backend) {
    Map<String, float[]> want, got;
    try (Executor ex = new Executor(c.graph, backend, c.capture)) {
      want = ex.run(c.inputs);
    }
    try (Executor ex = new Executor(fused, backend, c.capture)) {
      got = ex.run(c.inputs);
    }
    assertEquals(want.keySet(), got.keySet(), what);
    for (String k : want.keySet()) assertArrayEquals(want.get(k), got.get(k), what + " on " + backend.name() + ": " + k);
  }

  private static int count(Graph g, Op op) {
    int n = 0;
    for (Node node : g.nodes()) if (node.op() == op) n++;
    return n;
  }
}
