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
   * open_clip's wider models: the image and text parameter counts open_clip's docs/model_profile.csv
   * gives (millions, two decimals), from the configuration's shapes alone (ViT-bigG-14 is 10 GB of
   * float32); their heads are not 64 wide.
   */
  @Test
  void openClipsWiderModelsHaveTheirPublishedParameterCounts() {
    Map<String, double[]> published = Map.of("ViT-H-14", new double[] {632.08, 354.03}, "ViT-g-14", new double[] {1012.65, 354.03}, "ViT-bigG-14",
        new double[] {1844.91, 694.66});
    assertEquals(published.keySet(), java.util.Set.copyOf(RandomWeights.OPEN_CLIP_NAMES));
    for (String name : RandomWeights.OPEN_CLIP_NAMES) {
      ClipConfig cfg = RandomWeights.config(name);
      long image = 0, text = 0;
      for (var e : cfg.expectedShapes().entrySet()) {
        if (e.getKey().equals("logit_scale")) continue;
        if (e.getKey().startsWith("visual.")) image += Tensor.numel(e.getValue());
        else text += Tensor.numel(e.getValue());
      }
      assertEquals(published.get(name)[0], Math.round(image / 1e4) / 100.0, 0, name + " image parameters");
      assertEquals(published.get(name)[1], Math.round(text / 1e4) / 100.0, 0, name + " text parameters");
      assertTrue(cfg.visionWidth() != 64 * cfg.visionHeads() && cfg.activation() == Activation.GELU, cfg.summary());
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
  /**
   * The values depend on the seed alone: the same with the filling on one thread as on many, and
   * another seed gives others; and they have the moments asked for (c_fc's weights: mean 0, std
   * (2 · 512)^-1/2; ln_1's weights: mean 1, std 0.1).
   */
  @Test
  void valuesDependOnTheSeedOnlyAndHaveTheirMoments() throws Exception {
    ClipConfig cfg = RandomWeights.config("ViT-B/32");
    long seed = TestRandom.create(getClass().getSimpleName()).nextLong();
    Map<String, Tensor> many = RandomWeights.generate(cfg, seed);
    Map<String, Tensor> one;
    java.util.concurrent.ForkJoinPool pool = new java.util.concurrent.ForkJoinPool(1);
    try {
      one = pool.submit(() -> RandomWeights.generate(cfg, seed)).get();
    } finally {
      pool.shutdown();
    }
    Map<String, Tensor> other = RandomWeights.generate(cfg, seed + 1);
    assertEquals(many.keySet(), one.keySet());
    for (String k : many.keySet()) {
      assertEquals(many.get(k).data(), one.get(k).data(), k + ": another thread count gave other values");
    }
    String fc = "transformer.resblocks.3.mlp.c_fc.weight";
    assertTrue(!many.get(fc).data().equals(other.get(fc).data()), "another seed gave the same values");
    moments(many.get(fc).toFloatArray(), 0, Math.pow(2 * 512, -0.5), fc);
    moments(many.get("visual.transformer.resblocks.0.mlp.c_fc.weight").toFloatArray(), 0, Math.pow(2 * 768, -0.5), "visual c_fc");
    moments(many.get("transformer.resblocks.0.ln_1.weight").toFloatArray(), 1, 0.1, "ln_1");
  }

  private static void moments(float[] v, double mean, double std, String what) {
    double s = 0, ss = 0;
    for (float x : v) s += x;
    double m = s / v.length;
    for (float x : v) ss += (x - m) * (x - m);
    double sd = Math.sqrt(ss / v.length);
    // the sample moments of n normal values: mean within 5 std/sqrt(n), std within 5 std/sqrt(2n) (and 2%)
    assertTrue(Math.abs(m - mean) <= 5 * std / Math.sqrt(v.length), what + ": mean " + m + ", want " + mean);
    assertTrue(Math.abs(sd - std) <= Math.max(5 * std / Math.sqrt(2.0 * v.length), 0.02 * std), what + ": std " + sd + ", want " + std);
  }
}
