package dev.jclip.model;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.jclip.backend.ReferenceOps;
import dev.jclip.backend.cpu.CpuBackend;
import dev.jclip.graph.Executor;
import dev.jclip.io.Tensor;
import dev.jclip.testing.TestRandom;
import dev.jclip.testing.TorchOracle;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Configurations the reference data does not cover, against PyTorch itself
 * (src/test/python/torch_clip_features.py: openai/CLIP's modules with open_clip's head counts, MLP
 * widths and activation; skipped where no Python with PyTorch is installed): heads of 80 and 88 with
 * MLPs of 5 and 3 × width and GELU, as open_clip's ViT-H-14 / ViT-g-14 / ViT-bigG-14 are built; and,
 * as the oracle's own check, heads of 64 with QuickGELU, the reference's architecture.
 */
class TorchParityTest {
  @TempDir Path tmp;

  @Test
  void otherHeadSizesAndMlpWidthsMatchPyTorch() throws Exception {
    String python = TorchOracle.python();
    assumeTrue(python != null, "no python3 with PyTorch here (Debian: apt-get install python3-torch)");
    Random random = TestRandom.create("TorchParityTest");
    int vocab = 1000; // a small table: the .npy files stay small
    List<ClipConfig> configs = List.of(
        new ClipConfig(ClipConfig.Architecture.VIT, 96, 56, List.of(2), 160, 14, 2, 77, vocab, 176, 2, 2, Activation.GELU, "test", 800, 528),
        new ClipConfig(ClipConfig.Architecture.VIT, 64, 56, List.of(2), 128, 14, 2, 77, vocab, 128, 2, 2, Activation.QUICK_GELU, "test"));
    for (ClipConfig cfg : configs) {
      Map<String, Tensor> weights = RandomWeights.generate(cfg, random.nextLong());
      ClipGraphs graphs = new ClipGraphs(cfg, weights);
      int images = 2, texts = 3, len = cfg.contextLength(), r = cfg.imageResolution();
      float[] pixels = TestRandom.gaussian(random, images * 3 * r * r, 1);
      int[] ids = OtherHeadSizesTest.texts(random, texts, len, vocab);
      float[][] torch = TorchOracle.features(python, tmp.resolve(cfg.summary().hashCode() + ""), cfg, weights, pixels, ids);
      try (CpuBackend cpu = new CpuBackend()) {
        float[] image, text;
        try (Executor ex = new Executor(graphs.image(images), cpu, List.of())) {
          image = ex.run(Map.of("pixels", pixels)).get("image_features");
        }
        try (Executor ex = new Executor(graphs.text(texts, len), cpu, List.of())) {
          text = ex.run(Map.of("tokens", ids)).get("text_features");
        }
        double ei = ReferenceOps.relativeError(image, torch[0]), et = ReferenceOps.relativeError(text, torch[1]);
        System.out.printf("[torch] %s: image %.2e, text %.2e%n", cfg.summary(), ei, et);
        assertTrue(ei <= 1e-4 && et <= 1e-4, cfg.summary() + ": image " + ei + ", text " + et + " against PyTorch");
      }
    }
  }
}
