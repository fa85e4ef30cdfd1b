package dev.jclip.model;

import dev.jclip.graph.GraphBuilder;
import dev.jclip.graph.Value;

/**
 * CLIP's {@code Transformer}: a stack of {@code ResidualAttentionBlock}s, shared by both towers.
 * <pre>
 *   x = x + out_proj(attention(in_proj(ln_1(x))))
 *   x = x + c_proj(act(c_fc(ln_2(x))))
 * </pre>
 * Layout NLD ([B, N, D]) throughout, where the reference permutes to LND.
 */
final class Transformer {
  static final float LN_EPS = 1e-5f;

  private Transformer() {}

  /** Adds {@code layers} blocks named {@code prefix.resblocks.i}; the block's last node carries the block name. */
  static Value build(GraphBuilder g, Weights w, String prefix, Value x, int layers, int heads, boolean causal, Activation act) {
    for (int i = 0; i < layers; i++) {
      String p = prefix + ".resblocks." + i;
      Value h = g.layerNorm(p + ".ln_1", x, w.get(p + ".ln_1.weight"), w.get(p + ".ln_1.bias"), LN_EPS);
      Value qkv = g.linear(p + ".attn.in_proj", h, w.get(p + ".attn.in_proj_weight"), w.get(p + ".attn.in_proj_bias"), null);
      Value a = g.attention(p + ".attn", qkv, heads, causal);
      a = g.linear(p + ".attn.out_proj", a, w.get(p + ".attn.out_proj.weight"), w.get(p + ".attn.out_proj.bias"), null);
      x = g.add(p + ".attn.residual", x, a, false);
      h = g.layerNorm(p + ".ln_2", x, w.get(p + ".ln_2.weight"), w.get(p + ".ln_2.bias"), LN_EPS);
      h = g.linear(p + ".mlp.c_fc", h, w.get(p + ".mlp.c_fc.weight"), w.get(p + ".mlp.c_fc.bias"), act);
      h = g.linear(p + ".mlp.c_proj", h, w.get(p + ".mlp.c_proj.weight"), w.get(p + ".mlp.c_proj.bias"), null);
      x = g.add(p, x, h, false);
    }
    return x;
  }
}
