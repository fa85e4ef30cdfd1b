package dev.jclip.model;

import dev.jclip.io.CheckpointException;
import dev.jclip.io.Checkpoint;
import dev.jclip.io.ConfigHints;
import dev.jclip.io.Tensor;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * The hyper-parameters of a CLIP model, inferred from its weights exactly as the reference {@code
 * clip.model.build_model} does, plus the activation (which shapes cannot tell).
 *
 * <p>Fields follow the reference constructor {@code CLIP(embed_dim, image_resolution,
 * vision_layers, vision_width, vision_patch_size, context_length, vocab_size, transformer_width,
 * transformer_heads, transformer_layers)}; {@code visionLayers} has one element for a ViT and four
 * for a ModifiedResNet, {@code visionPatchSize} is null for a ResNet. Heads are {@code width / 64}
 * (ViT and text) and {@code width * 32 / 64} (ResNet attention pool), as the reference computes
 * them, unless a HuggingFace config.json or an open_clip config says otherwise (open_clip's
 * ViT-H-14, ViT-g-14 and ViT-bigG-14 have heads of 80, 88 and 104). The MLPs' hidden widths
 * ({@code visionMlpWidth}, {@code transformerMlpWidth}; 4 × width in the reference, 6144 and 8192
 * in ViT-g-14's and ViT-bigG-14's towers) come from the first block's {@code mlp.c_fc} weight; a
 * ResNet's {@code visionMlpWidth} is 0.
 *
 * <pre>{@code
 * ClipConfig cfg = ClipConfig.infer(checkpoint);        // throws naming missing keys / wrong shapes
 * cfg = cfg.withActivation(Activation.GELU);            // e.g. an open_clip model without -quickgelu
 * }</pre>
 */
public record ClipConfig(
    Architecture architecture,
    int embedDim,
    int imageResolution,
    List<Integer> visionLayers,
    int visionWidth,
    Integer visionPatchSize,
    int visionHeads,
    int contextLength,
    int vocabSize,
    int transformerWidth,
    int transformerHeads,
    int transformerLayers,
    Activation activation,
    String activationSource,
    int visionMlpWidth,
    int transformerMlpWidth) {

  /** The image tower. */
  public enum Architecture {
    VIT("ViT"),
    MODIFIED_RESNET("ModifiedResNet");

    private final String referenceName;

    Architecture(String referenceName) {
      this.referenceName = referenceName;
    }

    /** The reference class name: {@code VisionTransformer} is reported as "ViT", as in the manifests. */
    public String referenceName() {
      return referenceName;
    }
  }

  /** Whether {@code o} computes the same functions given the same weights: every field but where the activation was read from. */
  public boolean sameModel(ClipConfig o) {
    return new ClipConfig(architecture, embedDim, imageResolution, visionLayers, visionWidth, visionPatchSize, visionHeads, contextLength, vocabSize,
        transformerWidth, transformerHeads, transformerLayers, activation, o.activationSource, visionMlpWidth, transformerMlpWidth).equals(o);
  }

  public ClipConfig {
    visionLayers = List.copyOf(visionLayers);
  }

  /** The reference's architecture: MLPs 4 × their width wide. */
  public ClipConfig(Architecture architecture, int embedDim, int imageResolution, List<Integer> visionLayers, int visionWidth, Integer visionPatchSize,
      int visionHeads, int contextLength, int vocabSize, int transformerWidth, int transformerHeads, int transformerLayers, Activation activation,
      String activationSource) {
    this(architecture, embedDim, imageResolution, visionLayers, visionWidth, visionPatchSize, visionHeads, contextLength, vocabSize, transformerWidth,
        transformerHeads, transformerLayers, activation, activationSource, architecture == Architecture.VIT ? 4 * visionWidth : 0, 4 * transformerWidth);
  }

  /** The same configuration with another activation (an explicit user choice). */
  public ClipConfig withActivation(Activation a) {
    return new ClipConfig(architecture, embedDim, imageResolution, visionLayers, visionWidth, visionPatchSize, visionHeads, contextLength, vocabSize,
        transformerWidth, transformerHeads, transformerLayers, a, "override", visionMlpWidth, transformerMlpWidth);
  }

  public boolean isVit() {
    return architecture == Architecture.VIT;
  }

  /**
   * Infers the configuration of an opened checkpoint and checks every weight's shape against it.
   * Activation: the HuggingFace {@code hidden_act} when the checkpoint has a config.json, else
   * QuickGELU (OpenAI's weights; open_clip models without {@code -quickgelu} need {@link
   * #withActivation}).
   */
  public static ClipConfig infer(Checkpoint ck) throws CheckpointException {
    ClipConfig c = infer(ck.path(), ck.tensors(), ck.hints());
    // TorchScript archives also record these as int64 scalars: they must agree with the shapes.
    check(ck, "input_resolution", c.imageResolution);
    check(ck, "context_length", c.contextLength);
    check(ck, "vocab_size", c.vocabSize);
    return c;
  }

  private static void check(Checkpoint ck, String key, int inferred) throws CheckpointException {
    Tensor t = ck.extras().get(key);
    if (t == null || t.numel() != 1 || t.dtype().isFloating()) return;
    long stored = t.toLongArray()[0];
    if (stored != inferred) {
      throw new CheckpointException(ck.path(), key, "the archive says " + stored + " but the weight shapes give " + inferred);
    }
  }

  /**
   * Infers the configuration from canonical (OpenAI-named) weights and checks every shape.
   *
   * @param file the checkpoint, for messages
   */
  public static ClipConfig infer(Path file, Map<String, Tensor> sd, ConfigHints hints) throws CheckpointException {
    ClipConfig c;
    try {
      c = inferShapes(file, sd, hints);
    } catch (ArithmeticException e) {
      throw new CheckpointException(file, null, "weight shapes give a configuration too large to be real: " + e.getMessage(), e);
    }
    Map<String, Object> args = c.constructorArgs();
    for (var d : hints.declared().entrySet()) {
      Object inferred = args.get(d.getKey());
      if (inferred instanceof Integer i && !i.equals(d.getValue())) {
        throw new CheckpointException(hints.source(), d.getKey(), "the config declares " + d.getValue() + " but the weight shapes give " + i);
      }
    }
    c.validate(file, sd);
    return c;
  }

  /**
   * ViT widths of open_clip models whose heads are not 64 wide, which no OpenAI model has: the
   * model and its head width. Their state dicts alone cannot say the head count.
   */
  private static final Map<Integer, String[]> OPEN_CLIP_HEADS =
      Map.of(1280, new String[] {"ViT-H-14", "80"}, 1408, new String[] {"ViT-g-14", "88"}, 1664, new String[] {"ViT-bigG-14", "104"}, 1792,
          new String[] {"ViT-e-14", "112"});

  private static ClipConfig inferShapes(Path file, Map<String, Tensor> sd, ConfigHints hints) throws CheckpointException {
    boolean vit = sd.containsKey("visual.proj");
    List<String> required = new ArrayList<>(List.of("text_projection", "positional_embedding", "token_embedding.weight", "ln_final.weight"));
    if (vit) {
      required.addAll(List.of("visual.conv1.weight", "visual.positional_embedding"));
    } else {
      required.addAll(List.of("visual.layer1.0.conv1.weight", "visual.attnpool.positional_embedding"));
    }
    List<String> missing = required.stream().filter(k -> !sd.containsKey(k)).toList();
    if (!missing.isEmpty()) {
      throw new CheckpointException(
          file,
          missing.get(0),
          "cannot infer the CLIP configuration: missing "
              + missing
              + (vit ? " (a ViT model: visual.proj is present)" : " (no visual.proj, so a ModifiedResNet model is assumed)")
              + "; is this a CLIP checkpoint? It has " + sd.size() + " tensors" + sample(sd));
    }
    Activation act = Activation.QUICK_GELU;
    String actSource = "default for OpenAI-layout weights (open_clip models without -quickgelu use gelu: override it)";
    if (hints.hiddenAct() != null) {
      try {
        act = Activation.parse(hints.hiddenAct());
      } catch (IllegalArgumentException e) {
        throw new CheckpointException(hints.source(), "hidden_act", e.getMessage());
      }
      boolean openClip = hints.source() != null && hints.source().getFileName().toString().equals("open_clip_config.json");
      actSource = (openClip ? (act == Activation.QUICK_GELU ? "quick_gelu true" : "no quick_gelu") : "hidden_act") + " in " + hints.source();
    }

    int visionWidth;
    List<Integer> visionLayers;
    Integer patch;
    int resolution;
    int visionHeads;
    int visionMlp = 0;
    if (vit) {
      Tensor conv1 = rank(file, sd, "visual.conv1.weight", 4);
      visionWidth = dim(file, conv1, 0);
      visionLayers = List.of((int) sd.keySet().stream().filter(k -> k.startsWith("visual.") && k.endsWith(".attn.in_proj_weight")).count());
      patch = dim(file, conv1, 3);
      int grid = grid(file, rank(file, sd, "visual.positional_embedding", 2), 0);
      resolution = Math.multiplyExact(patch, grid);
      if (hints.visionHeads() == null && OPEN_CLIP_HEADS.containsKey(visionWidth)) {
        String[] known = OPEN_CLIP_HEADS.get(visionWidth);
        throw new CheckpointException(file, "visual.conv1.weight", "a ViT " + visionWidth + " wide is open_clip's " + known[0] + ", whose heads are "
            + known[1] + " wide, and this file does not say its heads (the reference's rule, heads of 64, would give " + visionWidth / 64
            + " heads and wrong features): open the model's folder instead, with its open_clip_config.json (open_clip: beside"
            + " open_clip_model.safetensors or open_clip_pytorch_model.bin) or config.json (HuggingFace)");
      }
      visionHeads = hints.visionHeads() != null ? hints.visionHeads() : visionWidth / 64;
      visionMlp = mlpWidth(file, sd, "visual.transformer.resblocks.0.mlp.c_fc.weight", visionWidth);
    } else {
      List<Integer> counts = new ArrayList<>();
      for (int b = 1; b <= 4; b++) {
        String p = "visual.layer" + b;
        counts.add((int) sd.keySet().stream().filter(k -> k.startsWith(p)).map(k -> part(k, 2)).distinct().count());
      }
      visionLayers = counts;
      visionWidth = dim(file, rank(file, sd, "visual.layer1.0.conv1.weight", 4), 0);
      patch = null;
      int outputWidth = grid(file, rank(file, sd, "visual.attnpool.positional_embedding", 2), 0);
      resolution = outputWidth * 32;
      visionHeads = visionWidth * 32 / 64;
    }
    int embedDim = dim(file, rank(file, sd, "text_projection", 2), 1);
    int contextLength = dim(file, rank(file, sd, "positional_embedding", 2), 0);
    int vocabSize = dim(file, rank(file, sd, "token_embedding.weight", 2), 0);
    int width = dim(file, rank(file, sd, "ln_final.weight", 1), 0);
    int heads = hints.textHeads() != null ? hints.textHeads() : width / 64;
    int layers = (int) sd.keySet().stream().filter(k -> k.startsWith("transformer.resblocks")).map(k -> part(k, 2)).distinct().count();
    int textMlp = mlpWidth(file, sd, "transformer.resblocks.0.mlp.c_fc.weight", width);
    ClipConfig c = new ClipConfig(vit ? Architecture.VIT : Architecture.MODIFIED_RESNET, embedDim, resolution, visionLayers, visionWidth, patch, visionHeads,
        contextLength, vocabSize, width, heads, layers, act, actSource, visionMlp, textMlp);
    List<String> zero = new ArrayList<>();
    if (visionWidth <= 0 || visionHeads <= 0) {
      zero.add("vision width " + visionWidth + " (from " + (vit ? "visual.conv1.weight" : "visual.layer1.0.conv1.weight") + ") / heads " + visionHeads);
    }
    if (width <= 0 || heads <= 0) zero.add("text width " + width + " (from ln_final.weight) / heads " + heads);
    if (layers == 0) zero.add("no transformer.resblocks.* (text layers)");
    if (visionLayers.contains(0)) zero.add("vision layers " + visionLayers);
    if (!zero.isEmpty()) throw new CheckpointException(file, null, "cannot infer a usable CLIP configuration: " + String.join("; ", zero));
    if (visionWidth % visionHeads != 0 || width % heads != 0) {
      throw new CheckpointException(file, null, "widths (vision " + visionWidth + ", text " + width + ") are not divisible by the head counts (" + visionHeads + ", " + heads + ")");
    }
    return c;
  }

  /**
   * The MLP's hidden width from a block's c_fc weight [hidden, width]; 4 × width when the tensor is
   * missing or not 2-D (then {@link #validate} names it).
   */
  private static int mlpWidth(Path file, Map<String, Tensor> sd, String key, int width) throws CheckpointException {
    Tensor t = sd.get(key);
    if (t == null || t.rank() != 2 || t.dim(0) <= 0) return 4 * width;
    return dim(file, t, 0);
  }

  private static String sample(Map<String, Tensor> sd) {
    List<String> k = sd.keySet().stream().limit(8).toList();
    return k.isEmpty() ? "" : ", e.g. " + k;
  }

  /** The {@code i}-th dot-separated part of a key, as the reference's {@code k.split(".")[i]}. */
  private static String part(String k, int i) {
    String[] p = k.split("\\.", -1);
    return i < p.length ? p[i] : "";
  }

  private static Tensor rank(Path file, Map<String, Tensor> sd, String key, int rank) throws CheckpointException {
    Tensor t = sd.get(key);
    if (t.rank() != rank) throw new CheckpointException(file, key, "expected a " + rank + "-D tensor, found shape " + Arrays.toString(t.shape()));
    return t;
  }

  private static int dim(Path file, Tensor t, int i) throws CheckpointException {
    long d = t.dim(i);
    if (d > Integer.MAX_VALUE) throw new CheckpointException(file, t.name(), "dimension " + i + " of " + Arrays.toString(t.shape()) + " is too large");
    return (int) d;
  }

  /** {@code round(sqrt(n - 1))} for a positional embedding of n = grid² + 1 rows, checked. */
  private static int grid(Path file, Tensor pos, int i) throws CheckpointException {
    long n = pos.dim(i);
    long g = Math.round(Math.sqrt(Math.max(0, n - 1)));
    if (g * g + 1 != n || g == 0) {
      throw new CheckpointException(file, pos.name(), "has " + n + " positions, which is not grid*grid + 1 for a square grid (shape " + Arrays.toString(pos.shape()) + ")");
    }
    return (int) g;
  }

  /**
   * Every weight of this architecture and its shape, in the reference state-dict order: what
   * {@code CLIP(...).state_dict()} holds. Model builders use it to find their parameters.
   */
  public Map<String, long[]> expectedShapes() {
    Map<String, long[]> m = new LinkedHashMap<>();
    long tw = transformerWidth;
    long vw = visionWidth;
    long e = embedDim;
    m.put("positional_embedding", new long[] {contextLength, tw});
    m.put("text_projection", new long[] {tw, e});
    m.put("logit_scale", new long[] {});
    if (isVit()) {
      long g = imageResolution / visionPatchSize;
      m.put("visual.class_embedding", new long[] {vw});
      m.put("visual.positional_embedding", new long[] {g * g + 1, vw});
      m.put("visual.proj", new long[] {vw, e});
      m.put("visual.conv1.weight", new long[] {vw, 3, visionPatchSize, visionPatchSize});
      m.put("visual.ln_pre.weight", new long[] {vw});
      m.put("visual.ln_pre.bias", new long[] {vw});
      for (int i = 0; i < visionLayers.get(0); i++) block(m, "visual.transformer.resblocks." + i + ".", vw, visionMlpWidth);
      m.put("visual.ln_post.weight", new long[] {vw});
      m.put("visual.ln_post.bias", new long[] {vw});
    } else {
      long half = vw / 2;
      m.put("visual.conv1.weight", new long[] {half, 3, 3, 3});
      batchNorm(m, "visual.bn1.", half);
      m.put("visual.conv2.weight", new long[] {half, half, 3, 3});
      batchNorm(m, "visual.bn2.", half);
      m.put("visual.conv3.weight", new long[] {vw, half, 3, 3});
      batchNorm(m, "visual.bn3.", vw);
      long inplanes = vw;
      for (int layer = 0; layer < 4; layer++) {
        long planes = vw << layer;
        for (int b = 0; b < visionLayers.get(layer); b++) {
          String p = "visual.layer" + (layer + 1) + "." + b + ".";
          int stride = layer > 0 && b == 0 ? 2 : 1;
          m.put(p + "conv1.weight", new long[] {planes, inplanes, 1, 1});
          batchNorm(m, p + "bn1.", planes);
          m.put(p + "conv2.weight", new long[] {planes, planes, 3, 3});
          batchNorm(m, p + "bn2.", planes);
          m.put(p + "conv3.weight", new long[] {planes * 4, planes, 1, 1});
          batchNorm(m, p + "bn3.", planes * 4);
          if (stride > 1 || inplanes != planes * 4) {
            m.put(p + "downsample.0.weight", new long[] {planes * 4, inplanes, 1, 1});
            batchNorm(m, p + "downsample.1.", planes * 4);
          }
          inplanes = planes * 4;
        }
      }
      long spatial = imageResolution / 32;
      long ed = vw * 32;
      m.put("visual.attnpool.positional_embedding", new long[] {spatial * spatial + 1, ed});
      for (String proj : List.of("k_proj", "q_proj", "v_proj")) {
        m.put("visual.attnpool." + proj + ".weight", new long[] {ed, ed});
        m.put("visual.attnpool." + proj + ".bias", new long[] {ed});
      }
      m.put("visual.attnpool.c_proj.weight", new long[] {e, ed});
      m.put("visual.attnpool.c_proj.bias", new long[] {e});
    }
    for (int i = 0; i < transformerLayers; i++) block(m, "transformer.resblocks." + i + ".", tw, transformerMlpWidth);
    m.put("token_embedding.weight", new long[] {vocabSize, tw});
    m.put("ln_final.weight", new long[] {tw});
    m.put("ln_final.bias", new long[] {tw});
    return m;
  }

  private static void block(Map<String, long[]> m, String p, long w, long mlp) {
    m.put(p + "attn.in_proj_weight", new long[] {3 * w, w});
    m.put(p + "attn.in_proj_bias", new long[] {3 * w});
    m.put(p + "attn.out_proj.weight", new long[] {w, w});
    m.put(p + "attn.out_proj.bias", new long[] {w});
    m.put(p + "ln_1.weight", new long[] {w});
    m.put(p + "ln_1.bias", new long[] {w});
    m.put(p + "mlp.c_fc.weight", new long[] {mlp, w});
    m.put(p + "mlp.c_fc.bias", new long[] {mlp});
    m.put(p + "mlp.c_proj.weight", new long[] {w, mlp});
    m.put(p + "mlp.c_proj.bias", new long[] {w});
    m.put(p + "ln_2.weight", new long[] {w});
    m.put(p + "ln_2.bias", new long[] {w});
  }

  private static void batchNorm(Map<String, long[]> m, String p, long c) {
    m.put(p + "weight", new long[] {c});
    m.put(p + "bias", new long[] {c});
    m.put(p + "running_mean", new long[] {c});
    m.put(p + "running_var", new long[] {c});
    m.put(p + "num_batches_tracked", new long[] {});
  }

  /**
   * Checks that {@code sd} holds exactly the weights of this architecture with the right shapes,
   * like the reference's strict {@code load_state_dict}.
   *
   * @throws CheckpointException naming the first wrong key with the expected and found shapes, or
   *     listing missing / unexpected keys
   */
  public void validate(Path file, Map<String, Tensor> sd) throws CheckpointException {
    Map<String, long[]> want = expectedShapes();
    // BatchNorm's num_batches_tracked counts training steps and is never read at inference; state
    // dicts saved without it load in PyTorch too (BatchNorm's _load_from_state_dict fills it in)
    List<String> missing = want.keySet().stream().filter(k -> !sd.containsKey(k) && !k.endsWith(".num_batches_tracked")).toList();
    if (!missing.isEmpty()) {
      throw new CheckpointException(file, missing.get(0), missing.size() + " weight" + (missing.size() == 1 ? "" : "s") + " of the inferred " + summary()
          + (missing.size() == 1 ? " is" : " are") + " missing: " + abbreviate(missing));
    }
    for (var e : want.entrySet()) {
      Tensor t = sd.get(e.getKey());
      if (t == null) continue; // a num_batches_tracked left out
      if (!Arrays.equals(t.shape(), e.getValue())) {
        throw new CheckpointException(file, e.getKey(), "shape " + Arrays.toString(t.shape()) + " does not match the inferred " + summary() + ", which expects " + Arrays.toString(e.getValue()));
      }
      if (!t.dtype().isFloating() && !e.getKey().endsWith("num_batches_tracked")) {
        throw new CheckpointException(file, e.getKey(), "has integer dtype " + t.dtype() + ", expected a floating-point weight");
      }
    }
    List<String> unexpected = new ArrayList<>(new TreeSet<>(sd.keySet()));
    unexpected.removeAll(want.keySet());
    if (!unexpected.isEmpty()) {
      throw new CheckpointException(file, unexpected.get(0), unexpected.size() + (unexpected.size() == 1 ? " tensor" : " tensors") + " that the inferred " + summary() + " does not have: " + abbreviate(unexpected) + " (not an OpenAI-architecture CLIP?)");
    }
  }

  private static String abbreviate(List<String> keys) {
    return keys.size() <= 10 ? keys.toString() : keys.subList(0, 10) + " and " + (keys.size() - 10) + " more";
  }

  /** One line, e.g. "ViT (width 768, 12 layers, patch 32, 224 px) + text (width 512, 12 layers, 8 heads), embed 512, quick_gelu". */
  public String summary() {
    String vision =
        isVit()
            ? "ViT (width " + visionWidth + ", " + visionLayers.get(0) + " layers, " + heads(visionHeads, visionWidth) + ", patch " + visionPatchSize + ", "
                + imageResolution + " px" + mlp(visionMlpWidth, visionWidth) + ")"
            : "ModifiedResNet (width " + visionWidth + ", layers " + visionLayers + ", " + visionHeads + " heads, " + imageResolution + " px)";
    return vision + " + text transformer (width " + transformerWidth + ", " + transformerLayers + " layers, " + heads(transformerHeads, transformerWidth)
        + ", context " + contextLength + ", vocab " + vocabSize + mlp(transformerMlpWidth, transformerWidth) + "), embed " + embedDim + ", " + activation.hfName();
  }

  /** "12 heads", or with a head size other than the reference's 64 "16 heads of 80". */
  private static String heads(int heads, int width) {
    return heads + " heads" + (width == 64 * heads ? "" : " of " + width / heads);
  }

  /** Nothing for the reference's MLP of 4 × width, else ", MLP 6144". */
  private static String mlp(int hidden, int width) {
    return hidden == 4 * width ? "" : ", MLP " + hidden;
  }

  /**
   * The reference constructor's arguments, as {@code manifest.json} lists them ({@code vision_layers}
   * an int for a ViT, a list for a ResNet; {@code vision_patch_size} null for a ResNet).
   */
  public Map<String, Object> constructorArgs() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("embed_dim", embedDim);
    m.put("image_resolution", imageResolution);
    m.put("vision_layers", isVit() ? (Object) visionLayers.get(0) : visionLayers);
    m.put("vision_width", visionWidth);
    m.put("vision_patch_size", visionPatchSize);
    m.put("context_length", contextLength);
    m.put("vocab_size", vocabSize);
    m.put("transformer_width", transformerWidth);
    m.put("transformer_heads", transformerHeads);
    m.put("transformer_layers", transformerLayers);
    return m;
  }
}
