package dev.jclip.model;

import dev.jclip.graph.GraphBuilder;
import dev.jclip.graph.Value;

/**
 * CLIP's {@code VisionTransformer} (clip/model.py), as graph nodes:
 * <pre>
 *   x = conv1(pixels)                       [B, G*G, D]   patches, raster order
 *   x = [class_embedding; x] + positional   [B, G*G+1, D]
 *   x = transformer(ln_pre(x))
 *   features = ln_post(x[:, 0]) @ proj      [B, E]
 * </pre>
 */
public final class VisionTransformer {
  private VisionTransformer() {}

  /** Builds the image tower on {@code pixels} [B, 3, R, R]; returns the image features [B, E]. */
  static Value build(GraphBuilder g, ClipConfig cfg, Weights w, Value pixels) {
    return build(g, cfg, w, pixels, false);
  }

  /**
   * @param allTokens run the last block for every token, so that its output (and every node named
   *     after the state dict) can be captured; otherwise it runs only for the class token, which is
   *     all the features read (same values, less work: {@link Transformer#build(GraphBuilder, Weights,
   *     String, Value, int, int, boolean, Activation, java.util.function.BiFunction)})
   */
  static Value build(GraphBuilder g, ClipConfig cfg, Weights w, Value pixels, boolean allTokens) {
    Value x = g.patchEmbed("visual.conv1", pixels, w.get("visual.conv1.weight"));
    x = g.classPosEmbed("visual.positional_embedding", x, w.get("visual.class_embedding"), w.get("visual.positional_embedding"));
    x = g.layerNorm("visual.ln_pre", x, w.get("visual.ln_pre.weight"), w.get("visual.ln_pre.bias"), Transformer.LN_EPS);
    int layers = cfg.visionLayers().get(0);
    if (allTokens) {
      x = Transformer.build(g, w, "visual.transformer", x, layers, cfg.visionHeads(), false, cfg.activation());
      x = g.takeToken("visual.class_token", x, 0);
    } else {
      x = Transformer.build(g, w, "visual.transformer", x, layers, cfg.visionHeads(), false, cfg.activation(), (name, v) -> g.takeToken(name, v, 0));
    }
    x = g.layerNorm("visual.ln_post", x, w.get("visual.ln_post.weight"), w.get("visual.ln_post.bias"), Transformer.LN_EPS);
    return g.matmul("visual.proj", x, w.get("visual.proj"));
  }
}
