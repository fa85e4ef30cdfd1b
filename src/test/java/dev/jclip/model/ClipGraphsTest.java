package dev.jclip.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.graph.Graph;
import dev.jclip.graph.Node;
import dev.jclip.graph.Op;
import dev.jclip.io.Checkpoint;
import dev.jclip.io.Tensor;
import dev.jclip.testing.Reference;
import java.io.IOException;
import java.util.Map;
import org.junit.jupiter.api.Test;

class ClipGraphsTest {
  /**
   * Backends convert and upload parameters once per tensor object, so the graphs of every batch
   * size must share their parameter tensors, the derived ones (each BatchNorm's channel scale and
   * shift, AttentionPool2d's joined q/k/v) included: rebuilt per graph, every new batch
   * size would upload another copy of the ResNet's weights to the GPU.
   */
  @Test
  void graphsOfEveryBatchSizeShareTheirParameterTensors() throws IOException {
    try (Checkpoint ck = Checkpoint.open(Reference.file("models/rn50-tiny/state_dict.pt"))) {
      ClipGraphs graphs = new ClipGraphs(ClipConfig.infer(ck), ck.tensors());
      Graph a = graphs.image(1), b = graphs.image(3);
      assertEquals(a.nodes().size(), b.nodes().size());
      int convs = 0;
      for (int i = 0; i < a.nodes().size(); i++) {
        Node x = a.nodes().get(i), y = b.nodes().get(i);
        assertEquals(x.name(), y.name());
        if (x.op() == Op.CONV2D) convs++;
        for (Map.Entry<String, Tensor> p : x.params().entrySet()) {
          assertSame(p.getValue(), y.param(p.getKey()), x.name() + " " + p.getKey() + ": a new tensor for another batch size");
        }
      }
      assertTrue(convs > 0, "rn50-tiny has convolutions");
    }
  }
}
