package dev.jclip.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jclip.backend.ReferenceBackend;
import dev.jclip.backend.ReferenceOps;
import dev.jclip.backend.cpu.CpuBackend;
import dev.jclip.graph.Executor;
import dev.jclip.graph.Graph;
import dev.jclip.graph.Node;
import dev.jclip.graph.Op;
import dev.jclip.io.Checkpoint;
import dev.jclip.io.CheckpointException;
import dev.jclip.io.ConfigHints;
import dev.jclip.io.SafetensorsWriter;
import dev.jclip.io.Tensor;
import dev.jclip.testing.TestRandom;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Models whose attention heads are not 64 wide and whose MLPs are not 4 × their width, as open_clip's
 * ViT-H-14 (heads of 80), ViT-g-14 (88, MLP 6144 for 1408) and ViT-bigG-14 (104, MLP 8192 for
 * 1664) are: the configuration read from an open_clip folder, and the CPU backend's features
 * (vector and scalar kernels) against the reference backend's, at small widths with random weights.
 */
public class OtherHeadSizesTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  @TempDir Path tmp;

  /** A small ViT with 2 heads of 80 and an MLP of 5 × its width; a text tower with 2 heads of 88 and an MLP of 3 × its width. */
  public static ClipConfig config() {
    return new ClipConfig(ClipConfig.Architecture.VIT, 96, 56, List.of(2), 160, 14, 2, 77, 49408, 176, 2, 2, Activation.GELU, "test", 800, 528);
  }

  /**
   * {@code texts} token rows of {@code len}: the start token (vocab - 2), random ids below it, the
   * end-of-text token (vocab - 1, the largest) at the last position in the first row and at a
   * random one in the others, zeros after it.
   */
  public static int[] texts(Random random, int texts, int len, int vocab) {
    int[] ids = new int[texts * len];
    for (int t = 0; t < texts; t++) {
      int eot = t == 0 ? len - 1 : 2 + random.nextInt(len - 2);
      ids[t * len] = vocab - 2;
      for (int i = 1; i < eot; i++) ids[t * len + i] = random.nextInt(vocab - 2);
      ids[t * len + eot] = vocab - 1;
    }
    return ids;
  }

  /** open_clip's open_clip_config.json for {@code c}: head_width and mlp_ratio as open_clip writes them. */
  static ObjectNode openClipConfig(ClipConfig c) {
    ObjectNode cfg = JSON.createObjectNode();
    ObjectNode model = cfg.putObject("model_cfg");
    model.put("embed_dim", c.embedDim());
    ObjectNode v = model.putObject("vision_cfg");
    v.put("image_size", c.imageResolution()).put("layers", c.visionLayers().get(0)).put("width", c.visionWidth())
        .put("head_width", c.visionWidth() / c.visionHeads()).put("mlp_ratio", (double) c.visionMlpWidth() / c.visionWidth())
        .put("patch_size", c.visionPatchSize());
    model.putObject("text_cfg").put("context_length", c.contextLength()).put("vocab_size", c.vocabSize()).put("width", c.transformerWidth())
        .put("heads", c.transformerHeads()).put("layers", c.transformerLayers()).put("mlp_ratio", (double) c.transformerMlpWidth() / c.transformerWidth());
    return cfg;
  }

  @Test
  void anOpenClipFolderGivesTheHeadsAndMlpWidths() throws IOException {
    Path bare = tmp.resolve("bare.pt");
    ClipConfig want = config();
    Map<String, Tensor> weights = RandomWeights.generate(want, 7);
    Path folder = Files.createDirectories(tmp.resolve("vit-h-like"));
    JSON.writeValue(folder.resolve("open_clip_config.json").toFile(), openClipConfig(want));
    SafetensorsWriter.write(folder.resolve("open_clip_model.safetensors"), new ArrayList<>(weights.values()), Map.of());
    try (Checkpoint ck = Checkpoint.open(folder)) {
      ClipConfig c = ClipConfig.infer(ck);
      assertEquals(2, c.visionHeads());
      assertEquals(2, c.transformerHeads());
      assertEquals(800, c.visionMlpWidth());
      assertEquals(528, c.transformerMlpWidth());
      assertEquals(Activation.GELU, c.activation());
      assertTrue(c.summary().contains("2 heads of 80") && c.summary().contains("MLP 800") && c.summary().contains("2 heads of 88")
          && c.summary().contains("MLP 528"), c.summary());
    }
    // Without a config, a width of open_clip's ViT-H-14 (heads of 80) is refused rather than read as 20 heads of 64.
    ClipConfig h = new ClipConfig(ClipConfig.Architecture.VIT, 64, 28, List.of(1), 1280, 14, 16, 77, 49408, 64, 1, 1, Activation.GELU, "test");
    Map<String, Tensor> hw = RandomWeights.generate(h, 5);
    CheckpointException e = assertThrows(CheckpointException.class, () -> ClipConfig.infer(bare, hw, ConfigHints.NONE));
    assertTrue(e.getMessage().contains("ViT-H-14") && e.getMessage().contains("open_clip_config.json"), e.getMessage());
    ConfigHints given = new ConfigHints(null, 16, null, Map.of(), tmp.resolve("open_clip_config.json"));
    ClipConfig read = ClipConfig.infer(bare, hw, given);
    assertEquals(16, read.visionHeads());
    assertEquals(h.summary(), read.withActivation(Activation.GELU).summary());
  }

  @Test
  void theReferenceModelsKeepTheReferenceShapes() {
    ClipConfig vit = RandomWeights.config("ViT-B/32");
    assertEquals(4 * 768, vit.visionMlpWidth());
    assertEquals(4 * 512, vit.transformerMlpWidth());
    assertTrue(!vit.summary().contains("MLP") && !vit.summary().contains(" of "), vit.summary());
    assertEquals(0, RandomWeights.config("RN50").visionMlpWidth());
  }

  /** Every tower's features on the CPU backend (vector kernels, then scalar ones) against the reference backend's, fp32. */
  @Test
  void theCpuBackendMatchesTheReference() {
    Random random = TestRandom.create("OtherHeadSizesTest");
    ClipConfig cfg = config();
    ClipGraphs graphs = new ClipGraphs(cfg, RandomWeights.generate(cfg, random.nextLong()));
    int images = 2, texts = 3, len = 77, r = cfg.imageResolution();
    float[] pixels = TestRandom.gaussian(random, images * 3 * r * r, 1);
    int[] ids = texts(random, texts, len, cfg.vocabSize());
    List<Object[]> cases = List.of(new Object[] {"image", graphs.image(images), Map.of("pixels", pixels), "image_features"},
        new Object[] {"image (all tokens)", graphs.image(images, true), Map.of("pixels", pixels), "image_features"},
        new Object[] {"text", graphs.text(texts, len), Map.of("tokens", ids), "text_features"},
        new Object[] {"text (all tokens)", graphs.text(texts, len, true), Map.of("tokens", ids), "text_features"});
    try (ReferenceBackend ref = new ReferenceBackend();
        CpuBackend vector = new CpuBackend();
        CpuBackend scalar = new CpuBackend(Runtime.getRuntime().availableProcessors(), false)) {
      for (Object[] c : cases) {
        Graph g = (Graph) c[1];
        @SuppressWarnings("unchecked")
        Map<String, ?> in = (Map<String, ?>) c[2];
        float[] want;
        try (Executor ex = new Executor(g, ref, List.of())) {
          want = ex.run(in).get((String) c[3]);
        }
        for (CpuBackend b : List.of(vector, scalar)) {
          try (Executor ex = new Executor(g, b, List.of())) {
            float[] got = ex.run(in).get((String) c[3]);
            double err = ReferenceOps.relativeError(got, want);
            System.out.printf("[heads] %s on %s (%s): relative error %.2e%n", c[0], b.name(), b.vectorized() ? "vector" : "scalar", err);
            assertTrue(err <= 1e-5, c[0] + " on " + (b.vectorized() ? "vector" : "scalar") + " kernels: relative error " + err);
          }
        }
      }
    }
  }

  /** The CUDA kernels' heads are 64 wide: a model with other heads is refused by node, naming the head size. */
  @Test
  void theCudaBackendRefusesOtherHeadSizesByName() {
    ClipConfig cfg = config();
    ClipGraphs graphs = new ClipGraphs(cfg, RandomWeights.generate(cfg, 3));
    int refused = 0;
    for (Graph g : List.of(graphs.image(2), graphs.text(2, 77), dev.jclip.graph.Fusion.pooledAttention(graphs.text(2, 77), List.of()))) {
      for (Node n : g.nodes()) {
        String why = dev.jclip.backend.cuda.CudaBackend.headSizeRefusal(n);
        if (n.op() != Op.ATTENTION && n.op() != Op.ATTENTION_POOLED) {
          assertNull(why, n.name());
          continue;
        }
        refused++;
        assertTrue(why != null && why.contains("2 heads of " + (n.name().startsWith("visual") ? 80 : 88)) && why.contains("--device cpu"), n.name() + ": " + why);
      }
    }
    assertEquals(2 + 2 + 2, refused, "every attention of both towers (the pooled graph's last one too)");
    ClipConfig b32 = RandomWeights.config("ViT-B/32");
    ClipGraphs ok = new ClipGraphs(b32, RandomWeights.generate(b32, 3));
    for (Node n : ok.text(1, 77).nodes()) assertNull(dev.jclip.backend.cuda.CudaBackend.headSizeRefusal(n), n.name());
  }
}
