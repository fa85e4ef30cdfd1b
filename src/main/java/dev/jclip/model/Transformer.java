package dev.jclip.model;

import dev.jclip.graph.GraphBuilder;
import dev.jclip.graph.Value;
import java.util.function.BiFunction;

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
    return build(g, w, prefix, x, layers, heads, causal, act, null);
  }

  /**
   * As {@link #build(GraphBuilder, Weights, String, Value, int, int, boolean, Activation)}, but when
   * {@code pool} is given the tower's output is only the pooled token ([B, D]: the class token, or
   * the end-of-text token), and the last block computes only what that token needs: attention for
   * every position (its keys and values), then the out-projection, residuals, ln_2 and MLP for the
   * pooled rows alone. Those ops work row by row, so the pooled rows get the same values as in the
   * full tower; about 9/12 of the last block's GEMM work (6% of the tower) is saved. The last
   * block's output node is then named {@code prefix.resblocks.(layers-1).pooled}.
   *
   * @param pool takes a node name and a [B, N, D] value to its pooled [B, D] rows, or null
   */
  static Value build(
      GraphBuilder g, Weights w, String prefix, Value x, int layers, int heads, boolean causal, Activation act,
      BiFunction<String, Value, Value> pool) {
    for (int i = 0; i < layers; i++) {
      String p = prefix + ".resblocks." + i;
      boolean pooled = pool != null && i == layers - 1;
      Value h = g.layerNorm(p + ".ln_1", x, w.get(p + ".ln_1.weight"), w.get(p + ".ln_1.bias"), LN_EPS);
      Value qkv = g.linear(p + ".attn.in_proj", h, w.get(p + ".attn.in_proj_weight"), w.get(p + ".attn.in_proj_bias"), null);
      Value a = g.attention(p + ".attn", qkv, heads, causal);
      if (pooled) {
        a = pool.apply(p + ".attn.pooled", a);
        x = pool.apply(p + ".input.pooled", x);
      }
      a = g.linear(p + ".attn.out_proj", a, w.get(p + ".attn.out_proj.weight"), w.get(p + ".attn.out_proj.bias"), null);
      x = g.add(p + ".attn.residual", x, a, false);
      h = g.layerNorm(p + ".ln_2", x, w.get(p + ".ln_2.weight"), w.get(p + ".ln_2.bias"), LN_EPS);
      h = g.linear(p + ".mlp.c_fc", h, w.get(p + ".mlp.c_fc.weight"), w.get(p + ".mlp.c_fc.bias"), act);
      h = g.linear(p + ".mlp.c_proj", h, w.get(p + ".mlp.c_proj.weight"), w.get(p + ".mlp.c_proj.bias"), null);
      x = g.add(pooled ? p + ".pooled" : p, x, h, false);
    }
    if (pool != null && layers == 0) x = pool.apply(prefix + ".pooled", x);
    return x;
  }
}
