package dev.jclip.model;

import dev.jclip.io.Tensor;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Random CLIP weights at any geometry, for benchmarks and for testing fast backends at full size
 * without downloading a checkpoint. Scales follow CLIP's {@code initialize_parameters} (so
 * activations stay O(1) through the layers), with non-trivial LayerNorm and bias values.
 *
 * <pre>{@code
 * ClipConfig cfg = RandomWeights.config("ViT-B/32");
 * Map<String, Tensor> w = RandomWeights.generate(cfg, 42);
 * }</pre>
 */
public final class RandomWeights {
  private RandomWeights() {}

  /** The geometry of an OpenAI ViT model by its release name (ViT-B/32, ViT-B/16, ViT-L/14, ViT-L/14@336px). */
  public static ClipConfig config(String name) {
    return switch (name) {
      case "ViT-B/32" -> vit(512, 224, 12, 768, 32, 512, 12);
      case "ViT-B/16" -> vit(512, 224, 12, 768, 16, 512, 12);
      case "ViT-L/14" -> vit(768, 224, 24, 1024, 14, 768, 12);
      case "ViT-L/14@336px" -> vit(768, 336, 24, 1024, 14, 768, 12);
      default -> throw new IllegalArgumentException("no random geometry for '" + name + "' (ViT-B/32, ViT-B/16, ViT-L/14, ViT-L/14@336px)");
    };
  }

  private static ClipConfig vit(int embed, int res, int layers, int width, int patch, int textWidth, int textLayers) {
    return new ClipConfig(ClipConfig.Architecture.VIT, embed, res, List.of(layers), width, patch, width / 64, 77, 49408,
        textWidth, textWidth / 64, textLayers, Activation.QUICK_GELU, "random");
  }

  /** Canonical (OpenAI state-dict) float32 weights for a ViT {@code cfg}, deterministic in {@code seed}. */
  public static Map<String, Tensor> generate(ClipConfig cfg, long seed) {
    if (!cfg.isVit()) throw new IllegalArgumentException("random weights are generated for ViT models only");
    SplittableRandom r = new SplittableRandom(seed);
    Map<String, Tensor> w = new LinkedHashMap<>();
    int vw = cfg.visionWidth(), p = cfg.visionPatchSize(), grid = cfg.imageResolution() / p;
    put(w, r, "visual.conv1.weight", Math.pow(3 * p * p, -0.5), 0, vw, 3, p, p);
    put(w, r, "visual.class_embedding", Math.pow(vw, -0.5), 0, vw);
    put(w, r, "visual.positional_embedding", Math.pow(vw, -0.5), 0, grid * grid + 1, vw);
    layerNorm(w, r, "visual.ln_pre", vw);
    blocks(w, r, "visual.transformer", cfg.visionLayers().get(0), vw);
    layerNorm(w, r, "visual.ln_post", vw);
    put(w, r, "visual.proj", Math.pow(vw, -0.5), 0, vw, cfg.embedDim());
    int tw = cfg.transformerWidth();
    put(w, r, "token_embedding.weight", 0.02, 0, cfg.vocabSize(), tw);
    put(w, r, "positional_embedding", 0.01, 0, cfg.contextLength(), tw);
    blocks(w, r, "transformer", cfg.transformerLayers(), tw);
    layerNorm(w, r, "ln_final", tw);
    put(w, r, "text_projection", Math.pow(tw, -0.5), 0, tw, cfg.embedDim());
    w.put("logit_scale", Tensor.ofFloats("logit_scale", new long[] {}, new float[] {(float) Math.log(1 / 0.07)}));
    return w;
  }

  private static void blocks(Map<String, Tensor> w, SplittableRandom r, String prefix, int layers, int d) {
    double proj = Math.pow(d, -0.5) * Math.pow(2 * layers, -0.5);
    for (int i = 0; i < layers; i++) {
      String b = prefix + ".resblocks." + i;
      layerNorm(w, r, b + ".ln_1", d);
      put(w, r, b + ".attn.in_proj_weight", Math.pow(d, -0.5), 0, 3 * d, d);
      put(w, r, b + ".attn.in_proj_bias", 0.05, 0, 3 * d);
      put(w, r, b + ".attn.out_proj.weight", proj, 0, d, d);
      put(w, r, b + ".attn.out_proj.bias", 0.05, 0, d);
      layerNorm(w, r, b + ".ln_2", d);
      put(w, r, b + ".mlp.c_fc.weight", Math.pow(2 * d, -0.5), 0, 4 * d, d);
      put(w, r, b + ".mlp.c_fc.bias", 0.05, 0, 4 * d);
      put(w, r, b + ".mlp.c_proj.weight", proj, 0, d, 4 * d);
      put(w, r, b + ".mlp.c_proj.bias", 0.05, 0, d);
    }
  }

  private static void layerNorm(Map<String, Tensor> w, SplittableRandom r, String prefix, int d) {
    put(w, r, prefix + ".weight", 0.1, 1, d);
    put(w, r, prefix + ".bias", 0.05, 0, d);
  }

  private static void put(Map<String, Tensor> w, SplittableRandom r, String name, double std, double mean, int... shape) {
    long[] s = new long[shape.length];
    int n = 1;
    for (int i = 0; i < shape.length; i++) {
      s[i] = shape[i];
      n *= shape[i];
    }
    float[] v = new float[n];
    for (int i = 0; i < n; i++) v[i] = (float) (mean + std * gaussian(r));
    w.put(name, Tensor.ofFloats(name, s, v));
  }

  private static double gaussian(SplittableRandom r) {
    // Box-Muller: SplittableRandom has no nextGaussian before Java 17's RandomGenerator default
    double u = 1 - r.nextDouble(), v = r.nextDouble();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}
