package dev.jclip.model;

import dev.jclip.graph.GraphBuilder;
import dev.jclip.graph.Value;
import dev.jclip.io.Tensor;

/**
 * CLIP's {@code ModifiedResNet} (clip/model.py), as graph nodes, NCHW:
 * <pre>
 *   stem:   3 x (conv 3x3 + BN + ReLU), the first with stride 2, then avgpool 2     [B, W, R/4, R/4]
 *   layer1..layer4: Bottlenecks (1x1, 3x3, avgpool(stride), 1x1 x4; avgpool+1x1 downsample)
 *   attnpool: mean token + positional embedding, multi-head attention read at the mean token,
 *             c_proj                                                              [B, E]
 * </pre>
 * BatchNorm (inference: running statistics, eps 1e-5) becomes a per-channel scale and bias on the
 * preceding convolution's output, {@code y = scale[o] · (W ∗ x)[o] + bias[o]} with {@code scale =
 * γ / sqrt(var + eps)} and {@code bias = β - mean · scale} (computed in double). The convolution keeps
 * the checkpoint's own weight: folding the scale into it would give weights that 16-bit storage
 * rounds (OpenAI's ResNet weights are fp16 values, the folded ones are not), which alone costs
 * rn50-tiny ~5e-3 of its fp16 features (docs/gpu.md, "ResNets in 16 bits"); PyTorch's fp16 keeps
 * BatchNorm apart from the weights the same way.
 */
public final class ModifiedResNet {
  private static final double BN_EPS = 1e-5;

  private ModifiedResNet() {}

  static Value build(GraphBuilder g, ClipConfig cfg, Weights w, Value pixels) {
    Value x = convBn(g, w, "visual.conv1", "visual.bn1", pixels, 2, 1, true);
    x = convBn(g, w, "visual.conv2", "visual.bn2", x, 1, 1, true);
    x = convBn(g, w, "visual.conv3", "visual.bn3", x, 1, 1, true);
    x = g.avgPool("visual.stem", x, 2);
    int width = cfg.visionWidth();
    int inplanes = width;
    for (int layer = 0; layer < 4; layer++) {
      int planes = width << layer;
      int blocks = cfg.visionLayers().get(layer);
      for (int b = 0; b < blocks; b++) {
        int stride = (b == 0 && layer > 0) ? 2 : 1;
        String name = "visual.layer" + (layer + 1) + "." + b;
        boolean last = b == blocks - 1;
        x = bottleneck(g, w, name, last ? "visual.layer" + (layer + 1) : name, x, inplanes, planes, stride);
        inplanes = planes * 4;
      }
    }
    return attnPool(g, cfg, w, x);
  }

  private static Value bottleneck(GraphBuilder g, Weights w, String p, String outName, Value x, int inplanes, int planes, int stride) {
    Value out = convBn(g, w, p + ".conv1", p + ".bn1", x, 1, 0, true);
    out = convBn(g, w, p + ".conv2", p + ".bn2", out, 1, 1, true);
    if (stride > 1) out = g.avgPool(p + ".avgpool", out, stride);
    out = convBn(g, w, p + ".conv3", p + ".bn3", out, 1, 0, false);
    Value identity = x;
    if (stride > 1 || inplanes != planes * 4) {
      // the reference's Sequential is named ("-1": AvgPool2d(stride), "0": conv 1x1, "1": BatchNorm)
      if (stride > 1) identity = g.avgPool(p + ".downsample.-1", identity, stride);
      identity = convBn(g, w, p + ".downsample.0", p + ".downsample.1", identity, 1, 0, false);
    }
    return g.add(outName, out, identity, true);
  }

  private static Value convBn(GraphBuilder g, Weights w, String conv, String bn, Value x, int stride, int padding, boolean relu) {
    // made once per model, shared by the graphs of every batch size (see Weights)
    Tensor scale = w.derived(bn + ".scale", () -> batchNorm(w, conv, bn)[0]);
    Tensor bias = w.derived(bn + ".shift", () -> batchNorm(w, conv, bn)[1]);
    return g.conv2d(conv, x, w.get(conv + ".weight"), scale, bias, stride, padding, relu);
  }

  /** BatchNorm as a per-channel affine map of the convolution's output: {scale, bias}. */
  private static Tensor[] batchNorm(Weights w, String conv, String bn) {
    Tensor weight = w.get(conv + ".weight");
    float[] gamma = w.get(bn + ".weight").toFloatArray();
    float[] beta = w.get(bn + ".bias").toFloatArray();
    float[] mean = w.get(bn + ".running_mean").toFloatArray();
    float[] var = w.get(bn + ".running_var").toFloatArray();
    int out = (int) weight.dim(0);
    if (gamma.length != out || beta.length != out || mean.length != out || var.length != out) {
      throw new IllegalArgumentException(bn + ": BatchNorm of " + gamma.length + " channels after " + conv + " with " + out + " outputs");
    }
    float[] scale = new float[out], bias = new float[out];
    for (int o = 0; o < out; o++) {
      double sc = gamma[o] / Math.sqrt((double) var[o] + BN_EPS);
      scale[o] = (float) sc;
      bias[o] = (float) (beta[o] - mean[o] * sc);
    }
    return new Tensor[] {Tensor.ofFloats(bn + ".scale", new long[] {out}, scale), Tensor.ofFloats(bn + ".shift", new long[] {out}, bias)};
  }

  /** AttentionPool2d: q, k, v projections fused into one [3C, C] LINEAR over all tokens; the mean token's row is kept. */
  private static Value attnPool(GraphBuilder g, ClipConfig cfg, Weights w, Value x) {
    String p = "visual.attnpool";
    Value tokens = g.attnPoolTokens(p + ".tokens", x, w.get(p + ".positional_embedding"));
    Tensor qkvWeight = w.derived(p + ".qkv_proj.weight",
        () -> concatRows(p + ".qkv_proj.weight", w.get(p + ".q_proj.weight"), w.get(p + ".k_proj.weight"), w.get(p + ".v_proj.weight")));
    Tensor qkvBias = w.derived(p + ".qkv_proj.bias",
        () -> concatRows(p + ".qkv_proj.bias", w.get(p + ".q_proj.bias"), w.get(p + ".k_proj.bias"), w.get(p + ".v_proj.bias")));
    Value qkv = g.linear(p + ".qkv_proj", tokens, qkvWeight, qkvBias, null);
    Value a = g.attention(p + ".attn", qkv, cfg.visionHeads(), false);
    a = g.takeToken(p + ".mean_token", a, 0);
    return g.linear(p, a, w.get(p + ".c_proj.weight"), w.get(p + ".c_proj.bias"), null);
  }

  private static Tensor concatRows(String name, Tensor... parts) {
    long[] shape = parts[0].shape();
    long rows = 0;
    int total = 0;
    for (Tensor t : parts) {
      rows += t.dim(0);
      total += (int) t.numel();
    }
    float[] all = new float[total];
    int at = 0;
    for (Tensor t : parts) {
      float[] f = t.toFloatArray();
      System.arraycopy(f, 0, all, at, f.length);
      at += f.length;
    }
    shape[0] = rows;
    return Tensor.ofFloats(name, shape, all);
  }
}
