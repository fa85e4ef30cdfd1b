package dev.jclip.model;

import dev.jclip.io.Tensor;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

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

  /** The nine OpenAI models' release names, each a geometry {@link #config} knows. */
  public static final List<String> NAMES =
      List.of("RN50", "RN101", "RN50x4", "RN50x16", "RN50x64", "ViT-B/32", "ViT-B/16", "ViT-L/14", "ViT-L/14@336px");

  /**
   * open_clip's wider models of the OpenAI architecture, whose heads are not 64 wide (and, but for
   * ViT-H-14, whose MLPs are not 4 × width): GELU, at the geometry whose parameter counts open_clip
   * publishes (docs/model_profile.csv; RandomWeightsTest checks them).
   */
  public static final List<String> OPEN_CLIP_NAMES = List.of("ViT-H-14", "ViT-g-14", "ViT-bigG-14");

  /**
   * The geometry of an OpenAI model by its release name (one of {@link #NAMES}), as clip/model.py's
   * build_model infers it; or of one of {@link #OPEN_CLIP_NAMES}, as open_clip's config gives it.
   */
  public static ClipConfig config(String name) {
    return switch (name) {
      case "ViT-H-14" -> openClip(1024, 32, 1280, 80, 5120, 1024, 16, 24);
      case "ViT-g-14" -> openClip(1024, 40, 1408, 88, 6144, 1024, 16, 24);
      case "ViT-bigG-14" -> openClip(1280, 48, 1664, 104, 8192, 1280, 20, 32);
      case "RN50" -> resnet(1024, 224, List.of(3, 4, 6, 3), 64, 512);
      case "RN101" -> resnet(512, 224, List.of(3, 4, 23, 3), 64, 512);
      case "RN50x4" -> resnet(640, 288, List.of(4, 6, 10, 6), 80, 640);
      case "RN50x16" -> resnet(768, 384, List.of(6, 8, 18, 8), 96, 768);
      case "RN50x64" -> resnet(1024, 448, List.of(3, 15, 36, 10), 128, 1024);
      case "ViT-B/32" -> vit(512, 224, 12, 768, 32, 512, 12);
      case "ViT-B/16" -> vit(512, 224, 12, 768, 16, 512, 12);
      case "ViT-L/14" -> vit(768, 224, 24, 1024, 14, 768, 12);
      case "ViT-L/14@336px" -> vit(768, 336, 24, 1024, 14, 768, 12);
      default -> throw new IllegalArgumentException("no random geometry for '" + name + "' (" + String.join(", ", NAMES) + ", "
          + String.join(", ", OPEN_CLIP_NAMES) + ")");
    };
  }

  private static ClipConfig resnet(int embed, int res, List<Integer> layers, int width, int textWidth) {
    return new ClipConfig(ClipConfig.Architecture.MODIFIED_RESNET, embed, res, layers, width, null, width * 32 / 64, 77, 49408,
        textWidth, textWidth / 64, 12, Activation.QUICK_GELU, "random");
  }

  /** An open_clip ViT at 224 px, patch 14, GELU: vision layers, width, head width and MLP width; text width, heads and layers. */
  private static ClipConfig openClip(int embed, int layers, int width, int headWidth, int mlp, int textWidth, int textHeads, int textLayers) {
    return new ClipConfig(ClipConfig.Architecture.VIT, embed, 224, List.of(layers), width, 14, width / headWidth, 77, 49408, textWidth, textHeads,
        textLayers, Activation.GELU, "random", mlp, 4 * textWidth);
  }

  private static ClipConfig vit(int embed, int res, int layers, int width, int patch, int textWidth, int textLayers) {
    return new ClipConfig(ClipConfig.Architecture.VIT, embed, res, List.of(layers), width, patch, width / 64, 77, 49408,
        textWidth, textWidth / 64, textLayers, Activation.QUICK_GELU, "random");
  }

  /**
   * {@code n} values of N(0, std²), as the weights are drawn: the same for the same seed on every
   * machine and thread count (inputs for a model made by {@link #generate}).
   */
  public static float[] normal(long seed, int n, double std) {
    return draw(new SplittableRandom(seed), n, 0, std);
  }

  /**
   * Canonical (OpenAI state-dict) float32 weights for {@code cfg}, determined by {@code seed}: the
   * same values on every machine and thread count.
   */
  public static Map<String, Tensor> generate(ClipConfig cfg, long seed) {
    SplittableRandom r = new SplittableRandom(seed);
    Map<String, Tensor> w = new LinkedHashMap<>();
    if (cfg.isVit()) vitTower(w, r, cfg);
    else resnetTower(w, r, cfg);
    int tw = cfg.transformerWidth();
    put(w, r, "token_embedding.weight", 0.02, 0, cfg.vocabSize(), tw);
    put(w, r, "positional_embedding", 0.01, 0, cfg.contextLength(), tw);
    blocks(w, r, "transformer", cfg.transformerLayers(), tw, cfg.transformerMlpWidth());
    layerNorm(w, r, "ln_final", tw);
    put(w, r, "text_projection", Math.pow(tw, -0.5), 0, tw, cfg.embedDim());
    w.put("logit_scale", Tensor.ofFloats("logit_scale", new long[] {}, new float[] {(float) Math.log(1 / 0.07)}));
    return w;
  }

  /**
   * ModifiedResNet: He-scaled convolutions, BatchNorm with running statistics near (0, 1) and the
   * last BatchNorm of each residual branch scaled down (0.2), so that activations stay O(1) over
   * up to 64 bottlenecks; the attention pool as CLIP initialises it (std width^-0.5).
   */
  private static void resnetTower(Map<String, Tensor> w, SplittableRandom r, ClipConfig cfg) {
    int width = cfg.visionWidth();
    conv(w, r, "visual.conv1", width / 2, 3, 3);
    batchNorm(w, r, "visual.bn1", width / 2, 1);
    conv(w, r, "visual.conv2", width / 2, width / 2, 3);
    batchNorm(w, r, "visual.bn2", width / 2, 1);
    conv(w, r, "visual.conv3", width, width / 2, 3);
    batchNorm(w, r, "visual.bn3", width, 1);
    int inplanes = width;
    for (int layer = 0; layer < 4; layer++) {
      int planes = width << layer;
      for (int b = 0; b < cfg.visionLayers().get(layer); b++) {
        String p = "visual.layer" + (layer + 1) + "." + b;
        conv(w, r, p + ".conv1", planes, inplanes, 1);
        batchNorm(w, r, p + ".bn1", planes, 1);
        conv(w, r, p + ".conv2", planes, planes, 3);
        batchNorm(w, r, p + ".bn2", planes, 1);
        conv(w, r, p + ".conv3", planes * 4, planes, 1);
        batchNorm(w, r, p + ".bn3", planes * 4, 0.2);
        if ((b == 0 && layer > 0) || inplanes != planes * 4) {
          conv(w, r, p + ".downsample.0", planes * 4, inplanes, 1);
          batchNorm(w, r, p + ".downsample.1", planes * 4, 1);
        }
        inplanes = planes * 4;
      }
    }
    int d = width * 32, grid = cfg.imageResolution() / 32;
    String a = "visual.attnpool";
    put(w, r, a + ".positional_embedding", Math.pow(d, -0.5), 0, grid * grid + 1, d);
    for (String proj : new String[] {"q_proj", "k_proj", "v_proj"}) {
      put(w, r, a + "." + proj + ".weight", Math.pow(d, -0.5), 0, d, d);
      put(w, r, a + "." + proj + ".bias", 0.02, 0, d);
    }
    put(w, r, a + ".c_proj.weight", Math.pow(d, -0.5), 0, cfg.embedDim(), d);
    put(w, r, a + ".c_proj.bias", 0.02, 0, cfg.embedDim());
  }

  private static void conv(Map<String, Tensor> w, SplittableRandom r, String name, int out, int in, int k) {
    put(w, r, name + ".weight", Math.sqrt(2.0 / (in * k * k)), 0, out, in, k, k);
  }

  private static void batchNorm(Map<String, Tensor> w, SplittableRandom r, String prefix, int c, double gain) {
    put(w, r, prefix + ".weight", 0.1 * gain, gain, c);
    put(w, r, prefix + ".bias", 0.05, 0, c);
    put(w, r, prefix + ".running_mean", 0.1, 0, c);
    float[] var = new float[c];
    for (int i = 0; i < c; i++) var[i] = (float) (1 + 0.2 * Math.abs(gaussian(r)));
    w.put(prefix + ".running_var", Tensor.ofFloats(prefix + ".running_var", new long[] {c}, var));
    // the int64 scalar every torch BatchNorm keeps (a complete state dict has it)
    w.put(prefix + ".num_batches_tracked", new Tensor(prefix + ".num_batches_tracked", dev.jclip.io.DType.I64, new long[] {},
        java.nio.ByteBuffer.allocate(8)));
  }

  private static void vitTower(Map<String, Tensor> w, SplittableRandom r, ClipConfig cfg) {
    int vw = cfg.visionWidth(), p = cfg.visionPatchSize(), grid = cfg.imageResolution() / p;
    put(w, r, "visual.conv1.weight", Math.pow(3 * p * p, -0.5), 0, vw, 3, p, p);
    put(w, r, "visual.class_embedding", Math.pow(vw, -0.5), 0, vw);
    put(w, r, "visual.positional_embedding", Math.pow(vw, -0.5), 0, grid * grid + 1, vw);
    layerNorm(w, r, "visual.ln_pre", vw);
    blocks(w, r, "visual.transformer", cfg.visionLayers().get(0), vw, cfg.visionMlpWidth());
    layerNorm(w, r, "visual.ln_post", vw);
    put(w, r, "visual.proj", Math.pow(vw, -0.5), 0, vw, cfg.embedDim());
  }

  private static void blocks(Map<String, Tensor> w, SplittableRandom r, String prefix, int layers, int d, int mlp) {
    double proj = Math.pow(d, -0.5) * Math.pow(2 * layers, -0.5);
    for (int i = 0; i < layers; i++) {
      String b = prefix + ".resblocks." + i;
      layerNorm(w, r, b + ".ln_1", d);
      put(w, r, b + ".attn.in_proj_weight", Math.pow(d, -0.5), 0, 3 * d, d);
      put(w, r, b + ".attn.in_proj_bias", 0.05, 0, 3 * d);
      put(w, r, b + ".attn.out_proj.weight", proj, 0, d, d);
      put(w, r, b + ".attn.out_proj.bias", 0.05, 0, d);
      layerNorm(w, r, b + ".ln_2", d);
      put(w, r, b + ".mlp.c_fc.weight", Math.pow(2 * d, -0.5), 0, mlp, d);
      put(w, r, b + ".mlp.c_fc.bias", 0.05, 0, mlp);
      put(w, r, b + ".mlp.c_proj.weight", proj, 0, d, mlp);
      put(w, r, b + ".mlp.c_proj.bias", 0.05, 0, d);
    }
  }

  private static void layerNorm(Map<String, Tensor> w, SplittableRandom r, String prefix, int d) {
    put(w, r, prefix + ".weight", 0.1, 1, d);
    put(w, r, prefix + ".bias", 0.05, 0, d);
  }

  /** Values a generator fills: tensors are filled in chunks of this many, in parallel. */
  private static final int CHUNK = 1 << 16;

  /**
   * {@code name}: N(mean, std²) values of {@code shape}. Each tensor takes a generator of its own
   * from {@code r}, and each chunk of it one from the tensor's, drawn in order before any value:
   * the values depend on the seed only, not on how many threads fill the chunks.
   */
  private static void put(Map<String, Tensor> w, SplittableRandom r, String name, double std, double mean, int... shape) {
    long[] s = new long[shape.length];
    int n = 1;
    for (int i = 0; i < shape.length; i++) {
      s[i] = shape[i];
      n = Math.multiplyExact(n, shape[i]);
    }
    w.put(name, Tensor.ofFloats(name, s, draw(r.split(), n, mean, std)));
  }

  /** n values of N(mean, std²): each chunk of {@link #CHUNK} from its own generator, split from {@code r} in order, filled in parallel. */
  private static float[] draw(SplittableRandom r, int n, double mean, double std) {
    float[] v = new float[n];
    int chunks = (n + CHUNK - 1) / CHUNK;
    SplittableRandom[] rs = new SplittableRandom[chunks];
    for (int c = 0; c < chunks; c++) rs[c] = r.split();
    IntStream range = IntStream.range(0, chunks);
    (chunks > 1 ? range.parallel() : range).forEach(c -> fill(v, c * CHUNK, Math.min(n, (c + 1) * CHUNK), rs[c], mean, std));
    return v;
  }

  /**
   * v[from, to): mean + std · N(0, 1), both values of each pair of Marsaglia's polar method (a
   * point drawn in the unit disc, one logarithm a pair, no sine or cosine). StrictMath's logarithm
   * (fdlibm's results, bit for bit on every JVM and CPU; the square root is exact everywhere), so
   * that another machine regenerates the same values from the seed: the GPU bundle ships features
   * computed here for weights the GPU machine makes again.
   */
  private static void fill(float[] v, int from, int to, SplittableRandom r, double mean, double std) {
    for (int i = from; i < to; i += 2) {
      double x, y, s;
      do {
        x = 2 * r.nextDouble() - 1;
        y = 2 * r.nextDouble() - 1;
        s = x * x + y * y;
      } while (s >= 1 || s == 0);
      double f = std * Math.sqrt(-2 * StrictMath.log(s) / s);
      v[i] = (float) (mean + f * x);
      if (i + 1 < to) v[i + 1] = (float) (mean + f * y);
    }
  }

  private static double gaussian(SplittableRandom r) {
    // Box-Muller: SplittableRandom has no nextGaussian before Java 17's RandomGenerator default
    double u = 1 - r.nextDouble(), v = r.nextDouble();
    return Math.sqrt(-2 * StrictMath.log(u)) * StrictMath.cos(2 * Math.PI * v);
  }
}
