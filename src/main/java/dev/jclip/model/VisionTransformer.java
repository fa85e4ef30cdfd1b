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
    Value x = g.patchEmbed("visual.conv1", pixels, w.get("visual.conv1.weight"));
    x = g.classPosEmbed("visual.positional_embedding", x, w.get("visual.class_embedding"), w.get("visual.positional_embedding"));
    x = g.layerNorm("visual.ln_pre", x, w.get("visual.ln_pre.weight"), w.get("visual.ln_pre.bias"), Transformer.LN_EPS);
    x = Transformer.build(g, w, "visual.transformer", x, cfg.visionLayers().get(0), cfg.visionHeads(), false, cfg.activation());
    x = g.takeToken("visual.class_token", x, 0);
    x = g.layerNorm("visual.ln_post", x, w.get("visual.ln_post.weight"), w.get("visual.ln_post.bias"), Transformer.LN_EPS);
    return g.matmul("visual.proj", x, w.get("visual.proj"));
  }
}
