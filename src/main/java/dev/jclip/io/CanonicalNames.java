package dev.jclip.io;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Maps the tensor names of every supported checkpoint layout to one canonical naming: the keys of
 * OpenAI's {@code clip.model.CLIP.state_dict()} ({@code visual.transformer.resblocks.0.attn.in_proj_weight},
 * {@code text_projection}, ...).
 *
 * <ul>
 *   <li>Wrappers: a {@code module.} (DistributedDataParallel) or {@code _orig_mod.} ({@code
 *       torch.compile}) prefix shared by every key is stripped. ({@code {"state_dict": ...}}
 *       wrappers are unwrapped by {@link TorchArchive}.)
 *   <li>OpenAI (state dicts and TorchScript archives): already canonical. TorchScript archives
 *       also hold the int64 scalars {@code input_resolution}, {@code context_length} and {@code
 *       vocab_size}, which the reference {@code build_model} deletes: they go to the extras.
 *   <li>open_clip: {@code CLIP} models use exactly OpenAI's names ({@code attn.in_proj_weight}
 *       included). What differs: {@code CustomTextCLIP} models put the text tower under {@code
 *       text.} ({@code text.token_embedding.weight}, {@code text.transformer.resblocks...}, {@code
 *       text.ln_final}, {@code text.text_projection}), which is stripped; an {@code attn_mask}
 *       buffer (the causal mask, saved by some versions) goes to the extras. Towers that are not
 *       CLIP's (HF text encoders, timm trunks, layer scale {@code ls_1}) keep their names and are
 *       reported as unexpected by the architecture check.
 *   <li>HuggingFace {@code CLIPModel} ({@code text_model.*}, {@code vision_model.*}): renamed as
 *       transformers' {@code convert_clip_original_pytorch_to_hf.py} does in reverse: q/k/v
 *       projections are concatenated into {@code in_proj_weight}/{@code in_proj_bias}, {@code
 *       text_projection.weight} and {@code visual_projection.weight} are transposed into {@code
 *       text_projection} and {@code visual.proj}, {@code pre_layrnorm} becomes {@code ln_pre},
 *       {@code layer_norm1/2} become {@code ln_1/2}, {@code fc1/fc2} become {@code c_fc/c_proj}.
 *       Concatenated and transposed tensors are copies; all others stay views of the file. The
 *       {@code position_ids} buffers go to the extras. HuggingFace has no ResNet CLIP.
 * </ul>
 */
public final class CanonicalNames {
  private CanonicalNames() {}

  /** Which naming the raw keys used. */
  public enum Naming {
    OPENAI,
    OPEN_CLIP_CUSTOM_TEXT,
    HUGGINGFACE
  }

  /** The canonical weights and the non-weight tensors set aside. */
  public record Result(Naming naming, Map<String, Tensor> tensors, Map<String, Tensor> extras) {}

  private static final List<String> TORCHSCRIPT_SCALARS = List.of("input_resolution", "context_length", "vocab_size");
  private static final List<String> WRAPPER_PREFIXES = List.of("module.", "_orig_mod.");
  private static final List<String> TEXT_TOWER = List.of("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection", "attn_mask");

  /** Renames {@code raw} (names as stored in {@code file}) to canonical names. */
  public static Result canonicalize(Path file, Map<String, Tensor> raw) throws CheckpointException {
    Map<String, Tensor> in = raw;
    for (boolean changed = true; changed; ) {
      changed = false;
      for (String p : WRAPPER_PREFIXES) {
        if (!in.isEmpty() && in.keySet().stream().allMatch(k -> k.startsWith(p))) {
          Map<String, Tensor> m = new LinkedHashMap<>();
          for (var e : in.entrySet()) m.put(e.getKey().substring(p.length()), e.getValue());
          in = m;
          changed = true;
        }
      }
    }
    boolean hf = in.keySet().stream().anyMatch(k -> k.startsWith("text_model.") || k.startsWith("vision_model."));
    if (hf) return fromHuggingFace(file, in);
    Map<String, Tensor> out = new LinkedHashMap<>();
    Map<String, Tensor> extras = new LinkedHashMap<>();
    boolean customText = in.keySet().stream().anyMatch(k -> k.startsWith("text.transformer.") || k.startsWith("text.token_embedding."));
    for (var e : in.entrySet()) {
      String k = e.getKey();
      if (customText && k.startsWith("text.") && TEXT_TOWER.stream().anyMatch(k.substring(5)::startsWith)) k = k.substring(5);
      if (TORCHSCRIPT_SCALARS.contains(k) || k.equals("attn_mask")) {
        extras.put(k, e.getValue().renamed(k));
      } else {
        put(file, out, k, e.getValue());
      }
    }
    return new Result(customText ? Naming.OPEN_CLIP_CUSTOM_TEXT : Naming.OPENAI, out, extras);
  }

  private static void put(Path file, Map<String, Tensor> out, String name, Tensor t) throws CheckpointException {
    if (out.put(name, t.renamed(name)) != null) throw new CheckpointException(file, name, "two tensors map to this name");
  }

  // ---- HuggingFace CLIPModel ----

  private static final Pattern LAYER = Pattern.compile("(text|vision)_model\\.encoder\\.layers\\.(\\d+)\\.(.+)");
  private static final Map<String, String> LAYER_PARTS =
      Map.of(
          "self_attn.out_proj.weight", "attn.out_proj.weight",
          "self_attn.out_proj.bias", "attn.out_proj.bias",
          "layer_norm1.weight", "ln_1.weight",
          "layer_norm1.bias", "ln_1.bias",
          "layer_norm2.weight", "ln_2.weight",
          "layer_norm2.bias", "ln_2.bias",
          "mlp.fc1.weight", "mlp.c_fc.weight",
          "mlp.fc1.bias", "mlp.c_fc.bias",
          "mlp.fc2.weight", "mlp.c_proj.weight",
          "mlp.fc2.bias", "mlp.c_proj.bias");
  private static final Map<String, String> PLAIN =
      Map.ofEntries(
          Map.entry("text_model.embeddings.token_embedding.weight", "token_embedding.weight"),
          Map.entry("text_model.embeddings.position_embedding.weight", "positional_embedding"),
          Map.entry("text_model.final_layer_norm.weight", "ln_final.weight"),
          Map.entry("text_model.final_layer_norm.bias", "ln_final.bias"),
          Map.entry("vision_model.embeddings.class_embedding", "visual.class_embedding"),
          Map.entry("vision_model.embeddings.patch_embedding.weight", "visual.conv1.weight"),
          Map.entry("vision_model.embeddings.position_embedding.weight", "visual.positional_embedding"),
          Map.entry("vision_model.pre_layrnorm.weight", "visual.ln_pre.weight"),
          Map.entry("vision_model.pre_layrnorm.bias", "visual.ln_pre.bias"),
          Map.entry("vision_model.post_layernorm.weight", "visual.ln_post.weight"),
          Map.entry("vision_model.post_layernorm.bias", "visual.ln_post.bias"),
          Map.entry("logit_scale", "logit_scale"));
  private static final Map<String, String> TRANSPOSED =
      Map.of("text_projection.weight", "text_projection", "visual_projection.weight", "visual.proj");

  private static Result fromHuggingFace(Path file, Map<String, Tensor> in) throws CheckpointException {
    try {
      return mapHuggingFace(file, in);
    } catch (ArithmeticException e) {
      throw new CheckpointException(file, null, "tensor too large to convert from the HuggingFace layout (over 2 GiB)", e);
    }
  }

  private static Result mapHuggingFace(Path file, Map<String, Tensor> in) throws CheckpointException {
    Map<String, Tensor> out = new LinkedHashMap<>();
    Map<String, Tensor> extras = new LinkedHashMap<>();
    for (var e : in.entrySet()) {
      String k = e.getKey();
      Tensor t = e.getValue();
      if (k.endsWith("embeddings.position_ids")) {
        extras.put(k, t);
        continue;
      }
      String plain = PLAIN.get(k);
      if (plain != null) {
        put(file, out, plain, t);
        continue;
      }
      String tr = TRANSPOSED.get(k);
      if (tr != null) {
        put(file, out, tr, transpose(file, k, t, tr));
        continue;
      }
      Matcher m = LAYER.matcher(k);
      if (m.matches()) {
        String prefix = (m.group(1).equals("text") ? "" : "visual.") + "transformer.resblocks." + m.group(2) + ".";
        String part = m.group(3);
        String mapped = LAYER_PARTS.get(part);
        if (mapped != null) {
          put(file, out, prefix + mapped, t);
          continue;
        }
        if (part.matches("self_attn\\.[qkv]_proj\\.(weight|bias)")) {
          // Handled once per layer, at q: in_proj = cat(q, k, v) along dim 0.
          if (part.startsWith("self_attn.q_proj.")) {
            String kind = part.substring("self_attn.q_proj.".length());
            String base = k.substring(0, k.length() - part.length()) + "self_attn.";
            String name = prefix + "attn.in_proj_" + kind;
            put(file, out, name, concat(file, name, in, base + "q_proj." + kind, base + "k_proj." + kind, base + "v_proj." + kind));
          } else {
            String q = k.replaceFirst("\\.[kv]_proj\\.", ".q_proj.");
            if (!in.containsKey(q)) throw new CheckpointException(file, q, "missing (its k/v partners are present; q, k and v make in_proj together)");
          }
          continue;
        }
      }
      throw new CheckpointException(file, k, "not a HuggingFace CLIPModel tensor name that jclip knows how to map to the OpenAI layout");
    }
    return new Result(Naming.HUGGINGFACE, out, extras);
  }

  private static Tensor transpose(Path file, String key, Tensor t, String name) throws CheckpointException {
    if (t.rank() != 2) throw new CheckpointException(file, key, "expected a 2-D projection, found shape " + Arrays.toString(t.shape()));
    int r = Math.toIntExact(t.dim(0));
    int c = Math.toIntExact(t.dim(1));
    int el = t.dtype().byteSize();
    ByteBuffer src = t.data();
    ByteBuffer dst = ByteBuffer.allocate(r * c * el).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < r; i++) {
      for (int j = 0; j < c; j++) {
        dst.put((j * r + i) * el, src, (i * c + j) * el, el);
      }
    }
    return new Tensor(name, t.dtype(), new long[] {c, r}, dst);
  }

  private static Tensor concat(Path file, String name, Map<String, Tensor> in, String... keys) throws CheckpointException {
    Tensor first = null;
    long rows = 0;
    for (String k : keys) {
      Tensor t = in.get(k);
      if (t == null) throw new CheckpointException(file, k, "missing (q, k and v projections are needed together to build " + name + ")");
      if (first == null) first = t;
      if (t.dtype() != first.dtype() || t.rank() != first.rank() || t.rank() == 0
          || !Arrays.equals(Arrays.copyOfRange(t.shape(), 1, t.rank()), Arrays.copyOfRange(first.shape(), 1, first.rank()))) {
        StringBuilder all = new StringBuilder();
        for (String each : keys) {
          Tensor x = in.get(each);
          all.append(all.isEmpty() ? "" : ", ").append(each.substring(each.lastIndexOf('.', each.lastIndexOf('.') - 1) + 1)).append(' ')
              .append(x == null ? "missing" : x.dtype() + Arrays.toString(x.shape()));
        }
        throw new CheckpointException(file, keys[0], "the q, k and v projections must share a type and all but their first dimension to build " + name + ": " + all);
      }
      rows += t.dim(0);
    }
    long[] shape = first.shape();
    shape[0] = rows;
    long bytes = Tensor.numel(shape) * first.dtype().byteSize();
    ByteBuffer dst = ByteBuffer.allocate(Math.toIntExact(bytes)).order(ByteOrder.LITTLE_ENDIAN);
    for (String k : keys) dst.put(in.get(k).data());
    return new Tensor(name, first.dtype(), shape, dst.flip());
  }
}
