package dev.jclip.graph;

import dev.jclip.io.DType;
import dev.jclip.io.Tensor;
import dev.jclip.model.Activation;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Builds a {@link Graph}, inferring and checking every shape as it goes: a wrong weight shape is
 * reported at build time with the node's name, never as a crash inside a backend.
 */
public final class GraphBuilder {
  private final List<Node> nodes = new ArrayList<>();
  private final Map<String, Value> inputs = new LinkedHashMap<>();
  private final Map<String, Value> outputs = new LinkedHashMap<>();
  private int nextId;

  /** A graph input. */
  public Value input(String name, DType dtype, int... shape) {
    if (inputs.containsKey(name)) throw new IllegalArgumentException("input " + name + " defined twice");
    Value v = add(Op.INPUT, name, List.of(), Map.of(), Map.of(), new TensorSpec(name, dtype, shape));
    inputs.put(name, v);
    return v;
  }

  /** Marks {@code v} as a graph output under {@code name}. */
  public GraphBuilder output(String name, Value v) {
    outputs.put(name, v);
    return this;
  }

  public Graph build() {
    if (outputs.isEmpty()) throw new IllegalStateException("graph has no outputs");
    return new Graph(nodes, inputs, outputs);
  }

  // ---- ops ---------------------------------------------------------------------------------

  /** {@code act(x · weightᵀ + bias)}; weight [N, K], bias [N] or null; activation null for none. */
  public Value linear(String name, Value x, Tensor weight, Tensor bias, Activation activation) {
    Map<String, Tensor> p = linearParams(name, x, weight, bias);
    Map<String, Object> a = new LinkedHashMap<>();
    if (activation != null) a.put("activation", activation);
    return add(Op.LINEAR, name, List.of(x), p, a, withLast(name, x, (int) weight.dim(0)));
  }

  /** A LINEAR's parameters, checked against x: weight [N, K] with K x's last dimension, bias [N] or null. */
  private Map<String, Tensor> linearParams(String name, Value x, Tensor weight, Tensor bias) {
    expectShape(name, "weight", weight, -1, x.dim(-1));
    if (bias != null) expectShape(name, "bias", bias, weight.dim(0));
    Map<String, Tensor> p = new LinkedHashMap<>();
    p.put("weight", weight);
    if (bias != null) p.put("bias", bias);
    return p;
  }

  /**
   * {@code x · weightᵀ + bias + residual}; weight [N, K], bias [N] or null, residual shaped as the
   * result. Model code builds LINEAR and ADD; {@link Fusion#linearResidual} makes this node of
   * them, and ops tests build it directly.
   */
  public Value linearResidual(String name, Value x, Tensor weight, Tensor bias, Value residual) {
    Map<String, Tensor> p = linearParams(name, x, weight, bias);
    TensorSpec out = withLast(name, x, (int) weight.dim(0));
    if (!Arrays.equals(out.shape(), residual.shape())) {
      throw new IllegalArgumentException(name + ": residual " + residual.spec() + " does not match the linear's result " + out);
    }
    return add(Op.LINEAR_RESIDUAL, name, List.of(x, residual), p, Map.of(), out);
  }

  /** {@code x · weight} with weight [K, N] (CLIP's {@code proj} and {@code text_projection}). */
  public Value matmul(String name, Value x, Tensor weight) {
    int k = x.dim(-1);
    expectShape(name, "weight", weight, k, -1);
    return add(Op.MATMUL, name, List.of(x), Map.of("weight", weight), Map.of(), withLast(name, x, (int) weight.dim(1)));
  }

  /**
   * {@code act(LayerNorm(x) · weightᵀ + bias)}: LayerNorm with {@code lnWeight}, {@code lnBias},
   * {@code eps}, then a LINEAR (weight [N, K], bias [N] or null). Model code builds LAYER_NORM and
   * LINEAR; {@link Fusion#layerNormLinear} makes this node of them, and ops tests build it directly.
   */
  public Value layerNormLinear(String name, Value x, Tensor lnWeight, Tensor lnBias, float eps, Tensor weight, Tensor bias,
      Activation activation) {
    expectShape(name, "ln_weight", lnWeight, x.dim(-1));
    expectShape(name, "ln_bias", lnBias, x.dim(-1));
    Map<String, Tensor> p = linearParams(name, x, weight, bias);
    p.put("ln_weight", lnWeight);
    p.put("ln_bias", lnBias);
    Map<String, Object> a = new LinkedHashMap<>();
    if (activation != null) a.put("activation", activation);
    a.put("eps", eps);
    return add(Op.LAYER_NORM_LINEAR, name, List.of(x), p, a, withLast(name, x, (int) weight.dim(0)));
  }

  public Value layerNorm(String name, Value x, Tensor weight, Tensor bias, float eps) {
    int d = x.dim(-1);
    expectShape(name, "weight", weight, d);
    expectShape(name, "bias", bias, d);
    return add(Op.LAYER_NORM, name, List.of(x), Map.of("weight", weight, "bias", bias), Map.of("eps", eps), spec(name, x.shape()));
  }

  public Value add(String name, Value a, Value b, boolean relu) {
    if (!Arrays.equals(a.shape(), b.shape())) {
      throw new IllegalArgumentException(name + ": cannot add " + a.spec() + " and " + b.spec());
    }
    return add(Op.ADD, name, List.of(a, b), Map.of(), Map.of("relu", relu), spec(name, a.shape()));
  }

  /**
   * Self-attention over qkv [B, N, 3D] in {@code heads} heads of D / heads (64 in every OpenAI
   * model; open_clip's ViT-H-14 80, ViT-g-14 88, ViT-bigG-14 104): [B, N, D].
   */
  public Value attention(String name, Value qkv, int heads, boolean causal) {
    int[] s = qkv.shape();
    if (heads < 1 || s.length != 3 || s[2] % (3 * heads) != 0) {
      throw new IllegalArgumentException(name + ": attention expects qkv [B, N, 3*Dh*" + heads + "] (" + heads + " heads of Dh), got " + qkv.spec());
    }
    return add(Op.ATTENTION, name, List.of(qkv), Map.of(), Map.of("heads", heads, "causal", causal), spec(name, s[0], s[1], s[2] / 3));
  }

  /**
   * One query row a sequence ({@link Op#ATTENTION_POOLED}): q [B, D], kv [B, N, 2·D], D = Dh·heads;
   * the pooled position is {@code index}, or with {@code ids} [B, N] each sequence's end-of-text
   * position (then {@code index} is ignored).
   */
  public Value attentionPooled(String name, Value q, Value kv, Value ids, int index, int heads, boolean causal) {
    int[] s = kv.shape();
    int d = q.shape().length == 2 ? q.dim(1) : -1;
    if (heads < 1 || d % heads != 0 || s.length != 3 || s[2] != 2 * d || s[0] != q.dim(0)) {
      throw new IllegalArgumentException(name + ": pooled attention expects q [B, " + d + "] and kv [B, N, " + 2 * d + "], got " + q.spec() + " and " + kv.spec());
    }
    if (ids != null && (ids.dim(0) != s[0] || ids.dim(1) != s[1])) throw new IllegalArgumentException(name + ": " + kv.spec() + " vs ids " + ids.spec());
    if (ids == null && (index < 0 || index >= s[1])) throw new IllegalArgumentException(name + ": pooled position " + index + " outside " + kv.spec());
    Map<String, Object> a = new LinkedHashMap<>();
    a.put("heads", heads);
    a.put("causal", causal);
    if (ids == null) a.put("index", index);
    return add(Op.ATTENTION_POOLED, name, ids == null ? List.of(q, kv) : List.of(q, kv, ids), Map.of(), a, spec(name, s[0], d));
  }

  public Value activation(String name, Value x, Activation act) {
    return add(act == Activation.GELU ? Op.GELU : Op.QUICK_GELU, name, List.of(x), Map.of(), Map.of(), spec(name, x.shape()));
  }

  /** Patch embedding: pixels [B, 3, R, R], weight [D, 3, P, P] to [B, (R/P)², D]. */
  public Value patchEmbed(String name, Value pixels, Tensor weight) {
    int[] s = pixels.shape();
    long p = weight.rank() == 4 ? weight.dim(2) : -1;
    if (s.length != 4 || weight.rank() != 4 || weight.dim(1) != s[1] || weight.dim(3) != p || p <= 0 || s[2] % p != 0 || s[3] % p != 0) {
      throw new IllegalArgumentException(name + ": patch embedding of " + pixels.spec() + " with weight " + Arrays.toString(weight.shape()));
    }
    int g = (int) (s[2] / p), gw = (int) (s[3] / p);
    return add(Op.PATCH_EMBED, name, List.of(pixels), Map.of("weight", weight), Map.of("patch", (int) p),
        spec(name, s[0], g * gw, (int) weight.dim(0)));
  }

  public Value classPosEmbed(String name, Value patches, Tensor classEmbedding, Tensor positional) {
    int n = patches.dim(1) + 1, d = patches.dim(2);
    expectShape(name, "class_embedding", classEmbedding, d);
    expectShape(name, "positional_embedding", positional, n, d);
    return add(Op.CLASS_POS_EMBED, name, List.of(patches), Map.of("class", classEmbedding, "positional", positional), Map.of(),
        spec(name, patches.dim(0), n, d));
  }

  /** Token ids [B, L] to embeddings [B, L, D] plus positions 0..L-1 of {@code positional} [ctx, D]. */
  public Value tokenEmbed(String name, Value ids, Tensor tokenEmbedding, Tensor positional) {
    if (ids.spec().dtype() != DType.I32 || ids.spec().rank() != 2) throw new IllegalArgumentException(name + ": token ids must be I32 [B, L]");
    int d = (int) tokenEmbedding.dim(1);
    expectShape(name, "positional_embedding", positional, -1, d);
    if (ids.dim(1) > positional.dim(0)) throw new IllegalArgumentException(name + ": " + ids.dim(1) + " tokens exceed the context length " + positional.dim(0));
    return add(Op.TOKEN_EMBED, name, List.of(ids), Map.of("token", tokenEmbedding, "positional", positional), Map.of(),
        spec(name, ids.dim(0), ids.dim(1), d));
  }

  public Value takeToken(String name, Value x, int index) {
    return add(Op.TAKE_TOKEN, name, List.of(x), Map.of(), Map.of("index", index), spec(name, x.dim(0), x.dim(2)));
  }

  public Value eotGather(String name, Value x, Value ids) {
    if (x.dim(0) != ids.dim(0) || x.dim(1) != ids.dim(1)) throw new IllegalArgumentException(name + ": " + x.spec() + " vs ids " + ids.spec());
    return add(Op.EOT_GATHER, name, List.of(x, ids), Map.of(), Map.of(), spec(name, x.dim(0), x.dim(2)));
  }

  /** Convolution, NCHW: weight [O, C, k, k], bias [O]; output size floor((H + 2p - k) / s) + 1. */
  public Value conv2d(String name, Value x, Tensor weight, Tensor bias, int stride, int padding, boolean relu) {
    return conv2d(name, x, weight, null, bias, stride, padding, relu);
  }

  /**
   * Convolution with a per-output-channel scale (an inference BatchNorm):
   * {@code y[o] = scale[o] · (weight ∗ x)[o] + bias[o]}, then ReLU if asked; {@code scale} null for 1.
   */
  public Value conv2d(String name, Value x, Tensor weight, Tensor scale, Tensor bias, int stride, int padding, boolean relu) {
    int[] s = x.shape();
    if (s.length != 4 || weight.rank() != 4 || weight.dim(1) != s[1] || weight.dim(2) != weight.dim(3)) {
      throw new IllegalArgumentException(name + ": conv of " + x.spec() + " with weight " + Arrays.toString(weight.shape()));
    }
    int k = (int) weight.dim(2), o = (int) weight.dim(0);
    expectShape(name, "bias", bias, o);
    if (scale != null) expectShape(name, "scale", scale, o);
    int h = (s[2] + 2 * padding - k) / stride + 1, w = (s[3] + 2 * padding - k) / stride + 1;
    Map<String, Tensor> params = scale == null ? Map.of("weight", weight, "bias", bias) : Map.of("weight", weight, "scale", scale, "bias", bias);
    return add(Op.CONV2D, name, List.of(x), params,
        Map.of("stride", stride, "padding", padding, "kernel", k, "relu", relu), spec(name, s[0], o, h, w));
  }

  public Value avgPool(String name, Value x, int k) {
    int[] s = x.shape();
    return add(Op.AVG_POOL, name, List.of(x), Map.of(), Map.of("kernel", k), spec(name, s[0], s[1], s[2] / k, s[3] / k));
  }

  public Value attnPoolTokens(String name, Value x, Tensor positional) {
    int[] s = x.shape();
    int n = s[2] * s[3] + 1;
    expectShape(name, "positional_embedding", positional, n, s[1]);
    return add(Op.ATTNPOOL_TOKENS, name, List.of(x), Map.of("positional", positional), Map.of(), spec(name, s[0], n, s[1]));
  }

  public Value l2Normalize(String name, Value x) {
    return add(Op.L2_NORMALIZE, name, List.of(x), Map.of(), Map.of(), spec(name, x.shape()));
  }

  public Value cosineLogits(String name, Value images, Value texts, float scale) {
    if (images.dim(-1) != texts.dim(-1)) throw new IllegalArgumentException(name + ": " + images.spec() + " vs " + texts.spec());
    return add(Op.COSINE_LOGITS, name, List.of(images, texts), Map.of(), Map.of("scale", scale), spec(name, images.dim(0), texts.dim(0)));
  }

  public Value softmax(String name, Value x) {
    return add(Op.SOFTMAX, name, List.of(x), Map.of(), Map.of(), spec(name, x.shape()));
  }

  // ---- helpers -----------------------------------------------------------------------------

  private Value add(Op op, String name, List<Value> in, Map<String, Tensor> params, Map<String, Object> attrs, TensorSpec out) {
    Node n = new Node(op, name, in, params, attrs);
    Value v = new Value(nextId++, out, n);
    n.setOutput(v);
    nodes.add(n);
    return v;
  }

  private static TensorSpec spec(String name, int... shape) {
    return TensorSpec.f32(name, shape);
  }

  private static TensorSpec withLast(String name, Value x, int last) {
    int[] s = x.shape();
    s[s.length - 1] = last;
    return TensorSpec.f32(name, s);
  }

  /** Checks a parameter's shape; -1 matches any size. */
  private static void expectShape(String node, String role, Tensor t, long... dims) {
    if (t == null) throw new IllegalArgumentException(node + ": missing parameter " + role);
    long[] s = t.shape();
    boolean ok = s.length == dims.length;
    for (int i = 0; ok && i < dims.length; i++) ok = dims[i] < 0 || dims[i] == s[i];
    if (!ok) {
      throw new IllegalArgumentException(node + ": parameter " + role + " (" + t.name() + ") has shape " + Arrays.toString(s)
          + ", expected " + Arrays.toString(dims).replace("-1", "*"));
    }
  }
}
