package dev.jclip.model;

import dev.jclip.graph.GraphBuilder;
import dev.jclip.graph.Value;

/**
 * CLIP's text tower ({@code CLIP.encode_text}):
 * <pre>
 *   x = token_embedding[ids] + positional_embedding[:L]   [B, L, D]
 *   x = ln_final(transformer(x))                          causal blocks
 *   features = x[b, argmax(ids[b])] @ text_projection     [B, E]
 * </pre>
 * The causal mask means position i never sees j > i, so a batch may be cut after its last
 * end-of-text token (L = max EOT position + 1 instead of 77) without changing any feature. And
 * only the end-of-text row of the last block's output is read, so everything after its attention
 * runs for that row alone.
 */
public final class TextTransformer {
  private TextTransformer() {}

  /** Builds the text tower on {@code ids} [B, L] (I32); returns the text features [B, E]. */
  static Value build(GraphBuilder g, ClipConfig cfg, Weights w, Value ids) {
    return build(g, cfg, w, ids, false);
  }

  /**
   * @param allTokens run the last block and ln_final for every position, so that they can be
   *     captured; otherwise the last block after its attention, and ln_final, run only for each
   *     text's end-of-text token, which is all the features read (same values, less work)
   */
  static Value build(GraphBuilder g, ClipConfig cfg, Weights w, Value ids, boolean allTokens) {
    Value x = g.tokenEmbed("token_embedding", ids, w.get("token_embedding.weight"), w.get("positional_embedding"));
    if (allTokens) {
      x = Transformer.build(g, w, "transformer", x, cfg.transformerLayers(), cfg.transformerHeads(), true, cfg.activation());
      x = g.layerNorm("ln_final", x, w.get("ln_final.weight"), w.get("ln_final.bias"), Transformer.LN_EPS);
      x = g.eotGather("eot", x, ids);
    } else {
      x = Transformer.build(g, w, "transformer", x, cfg.transformerLayers(), cfg.transformerHeads(), true, cfg.activation(),
          (name, v) -> g.eotGather(name, v, ids));
      x = g.layerNorm("ln_final.eot", x, w.get("ln_final.weight"), w.get("ln_final.bias"), Transformer.LN_EPS);
    }
    return g.matmul("text_projection", x, w.get("text_projection"));
  }
}
