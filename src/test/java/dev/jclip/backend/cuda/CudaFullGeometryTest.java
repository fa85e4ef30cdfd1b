package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.ReferenceBackend;
import dev.jclip.backend.ReferenceOps;
import dev.jclip.graph.Backend;
import dev.jclip.graph.Executor;
import dev.jclip.graph.Graph;
import dev.jclip.io.Tensor;
import dev.jclip.model.ClipConfig;
import dev.jclip.model.ClipGraphs;
import dev.jclip.model.RandomWeights;
import dev.jclip.testing.TestRandom;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** A full-geometry ViT-B/32 with random weights: the GPU (fp32) against the reference backend. */
@Tag("cuda")
class CudaFullGeometryTest {
  @Test
  void vitB32ImageAndTextTowersMatchTheReference() {
    Random random = TestRandom.create(getClass().getSimpleName());
    ClipConfig cfg = RandomWeights.config("ViT-B/32");
    Map<String, Tensor> weights = RandomWeights.generate(cfg, random.nextLong());
    ClipGraphs graphs = new ClipGraphs(cfg, weights);
    int images = 2, texts = 3, len = 77;
    float[] pixels = new float[images * 3 * 224 * 224];
    for (int i = 0; i < pixels.length; i++) pixels[i] = (float) random.nextGaussian();
    int[] ids = new int[texts * len];
    for (int t = 0; t < texts; t++) {
      int eot = 5 + random.nextInt(len - 5);
      ids[t * len] = 49406;
      for (int i = 1; i < eot; i++) ids[t * len + i] = random.nextInt(49406);
      ids[t * len + eot] = 49407;
    }
    try (CudaDevice device = CudaTestSupport.openDevice();
        CudaBackend cuda = new CudaBackend(device);
        ReferenceBackend ref = new ReferenceBackend()) {
      compare("image_features", graphs.image(images), Map.of("pixels", pixels), cuda, ref);
      compare("text_features", graphs.text(texts, len), Map.of("tokens", ids), cuda, ref);
    }
  }

  private static void compare(String output, Graph graph, Map<String, ?> inputs, Backend cuda, Backend ref) {
    float[] got, want;
    try (Executor e = new Executor(graph, cuda, List.of())) {
      got = e.run(inputs).get(output);
    }
    try (Executor e = new Executor(graph, ref, List.of())) {
      want = e.run(inputs).get(output);
    }
    double err = ReferenceOps.relativeError(got, want);
    System.out.printf("[cuda] ViT-B/32 full geometry %s: relative error %.2e%n", output, err);
    assertTrue(err <= 1e-4, output + ": relative error " + err);
  }
}
