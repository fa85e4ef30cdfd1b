package dev.jclip.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.Precision;
import dev.jclip.graph.Executor;
import dev.jclip.graph.Graph;
import dev.jclip.graph.Node;
import dev.jclip.graph.Op;
import dev.jclip.graph.Value;
import dev.jclip.io.Checkpoint;
import dev.jclip.io.SafetensorsReader;
import dev.jclip.model.ClipConfig;
import dev.jclip.model.ClipGraphs;
import dev.jclip.model.RandomWeights;
import dev.jclip.testing.Reference;
import dev.jclip.testing.TestRandom;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * ResNet activations kept channels last between the convolutions ({@link
 * dev.jclip.graph.Fusion#channelsLast}, what the CPU backend prepares) give exactly the bits of the
 * graph run in NCHW throughout: the same convolution primitives, and AVG_POOL and the attention
 * pool's tokens summed in the same order. fp32 and bf16, the reference rn50-tiny with its golden
 * pixels and captured intermediates (which stay NCHW), and RN50 at full geometry.
 */
class ChannelsLastTest {
  private static List<Precision> precisions() {
    List<Precision> p = new ArrayList<>(List.of(Precision.FP32));
    if (CpuFeatures.bf16()) p.add(Precision.BF16);
    return p;
  }

  private static Map<String, float[]> run(CpuBackend cpu, boolean channelsLast, Graph graph, Map<String, ?> inputs, List<String> capture) {
    cpu.channelsLast(channelsLast);
    try (Executor ex = new Executor(graph, cpu, capture)) {
      return ex.run(inputs);
    }
  }

  private static void assertSameBits(String what, CpuBackend cpu, Graph graph, Map<String, ?> inputs, List<String> capture) {
    Map<String, float[]> nchw = run(cpu, false, graph, inputs, capture), nhwc = run(cpu, true, graph, inputs, capture);
    assertEquals(nchw.keySet(), nhwc.keySet(), what);
    for (String k : nchw.keySet()) assertArrayEquals(nchw.get(k), nhwc.get(k), what + ": " + k);
  }

  @Test
  void referenceResNetGivesTheNchwBits() throws IOException {
    Path dir = Reference.dir().resolve("models/rn50-tiny");
    try (Checkpoint ck = Checkpoint.open(dir.resolve("state_dict.pt")); SafetensorsReader golden = SafetensorsReader.open(dir.resolve("golden.safetensors"))) {
      ClipConfig cfg = ClipConfig.infer(ck);
      ClipGraphs graphs = new ClipGraphs(cfg, ck.tensors());
      float[] pixels = golden.tensor("pixels").toFloatArray();
      int images = (int) golden.tensor("pixels").dim(0);
      for (Precision p : precisions()) {
        try (CpuBackend cpu = new CpuBackend(2, true, p)) {
          assertSameBits("rn50-tiny " + p, cpu, graphs.image(images), Map.of("pixels", pixels), List.of());
          assertSameBits("rn50-tiny " + p + " with captures", cpu, graphs.image(images, true), Map.of("pixels", pixels),
              List.of("visual.stem", "visual.layer1", "visual.attnpool"));
        }
      }
    }
  }

  @Test
  void fullGeometryRn50GivesTheNchwBits() {
    Random random = TestRandom.create("ChannelsLastTest");
    ClipConfig cfg = RandomWeights.config("RN50");
    ClipGraphs graphs = new ClipGraphs(cfg, RandomWeights.generate(cfg, random.nextLong()));
    float[] pixels = TestRandom.gaussian(random, 3 * 3 * 224 * 224, 1);
    for (Precision p : precisions()) {
      try (CpuBackend cpu = new CpuBackend(2, true, p)) {
        assertSameBits("RN50 " + p, cpu, graphs.image(3), Map.of("pixels", pixels), List.of());
      }
    }
  }

  /**
   * What the pass marks: every convolution's output and all but the stem's first input in RN50;
   * a captured value stays NCHW, and so do its ADD's other inputs and the convolutions reading it.
   */
  @Test
  void theMarks() {
    ClipConfig cfg = RandomWeights.config("RN50");
    ClipGraphs graphs = new ClipGraphs(cfg, RandomWeights.generate(cfg, 1));
    try (CpuBackend cpu = new CpuBackend(2, true)) {
      Graph g = cpu.prepare(graphs.image(1), Set.of());
      int convs = 0, in = 0, out = 0;
      for (Node n : g.nodes()) {
        if (n.op() != Op.CONV2D) continue;
        convs++;
        if (n.boolAttr("nhwcIn")) in++;
        if (n.boolAttr("nhwcOut")) out++;
      }
      assertEquals(55, convs);
      assertEquals(55, out, "every convolution writes channels last");
      assertEquals(54, in, "all but the stem's first read channels last");
      // visual.layer1 is its last block's ADD: captured, its output stays NCHW, so its inputs (an ADD
      // works in one order) and every reader of it do too
      Graph kept = cpu.prepare(graphs.image(1, true), Set.of("visual.layer1"));
      Node layer1 = kept.node("visual.layer1");
      assertEquals(Op.ADD, layer1.op());
      int readers = 0;
      for (Node n : kept.nodes()) {
        if (!n.inputs().contains(layer1.output())) continue;
        readers++;
        assertFalse(n.boolAttr("nhwcIn") || n.boolAttr("nhwc"), n.name() + " reads the captured value as NHWC");
      }
      assertTrue(readers >= 2, "layer2's first block and its downsample read it");
      for (Value v : layer1.inputs()) {
        Node p = v.producer();
        assertFalse(p.boolAttr("nhwcOut") || p.boolAttr("nhwc"), p.name() + " writes an input of the captured ADD as NHWC");
      }
      cpu.channelsLast(false);
      assertTrue(cpu.prepare(graphs.image(1), Set.of()).nodes().stream().noneMatch(n -> n.boolAttr("nhwcOut")), "off: nothing marked");
    }
  }
}
