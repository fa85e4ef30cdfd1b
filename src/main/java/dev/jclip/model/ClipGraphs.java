package dev.jclip.model;

import dev.jclip.graph.Graph;
import dev.jclip.graph.GraphBuilder;
import dev.jclip.graph.Value;
import dev.jclip.io.DType;
import dev.jclip.io.Tensor;
import java.util.Map;

/**
 * Builds CLIP's graphs for concrete shapes from a configuration and canonical weights. Model code
 * only builds graphs; it never runs them.
 */
public final class ClipGraphs {
  private final ClipConfig config;
  private final Weights weights;
  private final Map<String, Tensor> canonical;
  private volatile String fingerprint;

  public ClipGraphs(ClipConfig config, Map<String, Tensor> canonicalWeights) {
    this.config = config;
    this.weights = new Weights(canonicalWeights);
    this.canonical = canonicalWeights;
  }

  /**
   * A fingerprint of the weights: SHA-256 over every tensor's name, type, shape and the CRC-32C of
   * all its bytes (CRC-32C runs at several GB/s: ViT-L/14's 0.9 GB in about a tenth of a second).
   * Equal for the same weights from any file or format holding them in the same type; for other
   * weights, different unless a CRC collides. Made on first call.
   */
  public String fingerprint() {
    String f = fingerprint;
    if (f != null) return f;
    try {
      java.security.MessageDigest md = java.security.MessageDigest.getInstance("SHA-256");
      java.util.zip.CRC32C crc = new java.util.zip.CRC32C();
      for (String name : new java.util.TreeSet<>(canonical.keySet())) {
        Tensor t = canonical.get(name);
        crc.reset();
        crc.update(t.data().duplicate());
        md.update((name + " " + t.dtype() + " " + java.util.Arrays.toString(t.shape()) + " " + Long.toHexString(crc.getValue()) + "\n")
            .getBytes(java.nio.charset.StandardCharsets.UTF_8));
      }
      f = java.util.HexFormat.of().formatHex(md.digest());
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
    fingerprint = f;
    return f;
  }

  public ClipConfig config() {
    return config;
  }

  /**
   * {@code encode_image}: input "pixels" [B, 3, R, R], output "image_features" [B, E]. A ViT's last
   * block runs only for the class token after its attention (the same features, ~6% less work).
   */
  public Graph image(int batch) {
    return image(batch, false);
  }

  /**
   * @param allTokens keep every intermediate the reference has (a ViT's last block for every
   *     token), for capturing nodes by their state-dict names; the features are the same
   */
  public Graph image(int batch, boolean allTokens) {
    GraphBuilder g = new GraphBuilder();
    int r = config.imageResolution();
    Value pixels = g.input("pixels", DType.F32, batch, 3, r, r);
    Value f = config.isVit() ? VisionTransformer.build(g, config, weights, pixels, allTokens) : ModifiedResNet.build(g, config, weights, pixels);
    return g.output("image_features", f).build();
  }

  /**
   * {@code encode_text}: input "tokens" [B, L] (I32, L ≤ context length), output "text_features" [B,
   * E]. The last block runs only for each end-of-text row after its attention, and ln_final only
   * on those rows (the same features, ~6% less work).
   */
  public Graph text(int batch, int length) {
    return text(batch, length, false);
  }

  /** @param allTokens keep every intermediate the reference has (the last block and ln_final for every position) */
  public Graph text(int batch, int length, boolean allTokens) {
    GraphBuilder g = new GraphBuilder();
    Value ids = g.input("tokens", DType.I32, batch, length);
    return g.output("text_features", TextTransformer.build(g, config, weights, ids, allTokens)).build();
  }

  /** The stored {@code logit_scale} (its natural log: see {@link #logitScale}). */
  public float logitScaleParameter() {
    return weights.get("logit_scale").toFloatArray()[0];
  }

  /** {@code exp(logit_scale)}, the temperature applied to cosine similarities. */
  public float logitScale() {
    return (float) Math.exp(weights.get("logit_scale").toFloatArray()[0]);
  }

  /**
   * Logits and probabilities from features: inputs "image_features" [I, E], "text_features" [T,
   * E]; outputs "logits_per_image" [I, T] and "probs" [I, T].
   */
  public Graph logits(int images, int texts) {
    GraphBuilder g = new GraphBuilder();
    Value img = g.input("image_features", DType.F32, images, config.embedDim());
    Value txt = g.input("text_features", DType.F32, texts, config.embedDim());
    Value logits = g.cosineLogits("logits", img, txt, logitScale());
    return g.output("logits_per_image", logits).output("probs", g.softmax("probs", logits)).build();
  }
}
