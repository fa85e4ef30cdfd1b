package dev.jclip.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.ReferenceBackend;
import dev.jclip.backend.ReferenceOps;
import dev.jclip.backend.cpu.CpuBackend;
import dev.jclip.graph.Executor;
import dev.jclip.io.ConfigHints;
import dev.jclip.io.Tensor;
import dev.jclip.testing.TestRandom;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Random weights at the nine OpenAI geometries: the shapes are what CLIP's build_model infers back
 * (our {@link ClipConfig#infer}), the parameter counts those of the released models, and a
 * full-geometry RN50 runs on the CPU backend as on the reference backend.
 */
class RandomWeightsTest {
  @Test
  void everyReleasedModelHasAGeometry() {
    assertEquals(9, RandomWeights.NAMES.size());
    for (String name : RandomWeights.NAMES) {
      ClipConfig cfg = RandomWeights.config(name);
      assertEquals(name.startsWith("RN"), !cfg.isVit(), name);
      assertEquals(name.endsWith("@336px") ? 336 : name.equals("RN50x4") ? 288 : name.equals("RN50x16") ? 384
          : name.equals("RN50x64") ? 448 : 224, cfg.imageResolution(), name);
    }
  }

  /**
   * The counts CLIP prints for its released models ({@code sum(p.numel() for p in
   * model.parameters())}: BatchNorm's running statistics are buffers, not parameters).
   */
  @Test
  void rn50AndVitB32HaveTheReleasedShapesAndParameterCounts() throws Exception {
    for (var c : Map.of("RN50", 102_007_137L, "ViT-B/32", 151_277_313L).entrySet()) {
      ClipConfig cfg = RandomWeights.config(c.getKey());
      Map<String, Tensor> w = RandomWeights.generate(cfg, 7);
      long params = 0;
      for (var e : w.entrySet()) {
        if (e.getKey().contains(".running_") || e.getKey().endsWith(".num_batches_tracked")) continue;
        params += Tensor.numel(e.getValue().shape());
      }
      assertEquals(c.getValue(), params, c.getKey() + " parameters");
      ClipConfig back = ClipConfig.infer(Path.of(c.getKey()), w, ConfigHints.NONE);
      assertEquals(cfg, new ClipConfig(back.architecture(), back.embedDim(), back.imageResolution(), back.visionLayers(),
          back.visionWidth(), back.visionPatchSize(), back.visionHeads(), back.contextLength(), back.vocabSize(),
          back.transformerWidth(), back.transformerHeads(), back.transformerLayers(), back.activation(), cfg.activationSource()),
          c.getKey() + ": the shapes infer another geometry");
    }
  }

  /**
   * A full-geometry RN50 image tower (stem, 16 bottlenecks, attention pool) on the CPU backend
   * against the reference backend, one image of random pixels: the features agree within 1e-4,
   * and the random weights keep them finite and O(1) (the GPU's full-geometry test runs the same).
   */
  @Test
  void fullGeometryRn50RunsOnTheCpuAsOnTheReference() {
    Random random = TestRandom.create(getClass().getSimpleName());
    ClipConfig cfg = RandomWeights.config("RN50");
    ClipGraphs graphs = new ClipGraphs(cfg, RandomWeights.generate(cfg, random.nextLong()));
    float[] pixels = TestRandom.gaussian(random, 3 * 224 * 224, 1);
    float[] want, got;
    try (ReferenceBackend ref = new ReferenceBackend();
        Executor ex = new Executor(graphs.image(1), ref, List.of())) {
      want = ex.run(Map.of("pixels", pixels)).get("image_features");
    }
    try (CpuBackend cpu = new CpuBackend();
        Executor ex = new Executor(graphs.image(1), cpu, List.of())) {
      got = ex.run(Map.of("pixels", pixels)).get("image_features");
    }
    double norm = 0;
    for (float v : want) norm += v * v;
    norm = Math.sqrt(norm / want.length);
    assertTrue(norm > 1e-3 && norm < 1e3, "feature rms " + norm);
    double err = ReferenceOps.relativeError(got, want);
    System.out.printf("[random] RN50 full geometry, cpu vs reference: relative error %.2e, feature rms %.3f%n", err, norm);
    assertTrue(err <= 1e-4, "relative error " + err);
  }
}
