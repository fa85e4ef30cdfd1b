package dev.jclip.io;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The forward mapping OpenAI → HuggingFace CLIPModel names, written independently of {@link
 * CanonicalNames} from the reference README's description, to test the reverse mapping.
 */
final class HfNames {
  private HfNames() {}

  static Map<String, Tensor> toHuggingFace(Map<String, Tensor> sd) {
    Map<String, Tensor> out = new LinkedHashMap<>();
    for (var e : sd.entrySet()) {
      String k = e.getKey();
      Tensor t = e.getValue();
      String tower = k.startsWith("visual.") ? "vision_model" : "text_model";
      String rest = k.startsWith("visual.") ? k.substring(7) : k;
      if (rest.startsWith("transformer.resblocks.")) {
        String[] p = rest.split("\\.", 4);
        String base = tower + ".encoder.layers." + p[2] + ".";
        String part = p[3];
        if (part.startsWith("attn.in_proj_")) {
          String kind = part.endsWith("weight") ? "weight" : "bias";
          long third = t.dim(0) / 3;
          long rowBytes = t.byteSize() / t.dim(0);
          String[] qkv = {"q_proj", "k_proj", "v_proj"};
          for (int i = 0; i < 3; i++) {
            long[] shape = t.shape();
            shape[0] = third;
            ByteBuffer b = t.data().slice((int) (i * third * rowBytes), (int) (third * rowBytes));
            out.put(base + "self_attn." + qkv[i] + "." + kind, new Tensor(base + qkv[i], t.dtype(), shape, b));
          }
          continue;
        }
        part = part.replace("attn.out_proj", "self_attn.out_proj").replace("ln_1", "layer_norm1").replace("ln_2", "layer_norm2")
            .replace("mlp.c_fc", "mlp.fc1").replace("mlp.c_proj", "mlp.fc2");
        out.put(base + part, t);
        continue;
      }
      String name =
          switch (k) {
            case "token_embedding.weight" -> "text_model.embeddings.token_embedding.weight";
            case "positional_embedding" -> "text_model.embeddings.position_embedding.weight";
            case "ln_final.weight" -> "text_model.final_layer_norm.weight";
            case "ln_final.bias" -> "text_model.final_layer_norm.bias";
            case "visual.class_embedding" -> "vision_model.embeddings.class_embedding";
            case "visual.conv1.weight" -> "vision_model.embeddings.patch_embedding.weight";
            case "visual.positional_embedding" -> "vision_model.embeddings.position_embedding.weight";
            case "visual.ln_pre.weight" -> "vision_model.pre_layrnorm.weight";
            case "visual.ln_pre.bias" -> "vision_model.pre_layrnorm.bias";
            case "visual.ln_post.weight" -> "vision_model.post_layernorm.weight";
            case "visual.ln_post.bias" -> "vision_model.post_layernorm.bias";
            case "logit_scale" -> "logit_scale";
            case "text_projection" -> "text_projection.weight";
            case "visual.proj" -> "visual_projection.weight";
            default -> throw new IllegalArgumentException("no HF name for " + k);
          };
      if (k.equals("text_projection") || k.equals("visual.proj")) t = transpose(t);
      out.put(name, t);
    }
    return out;
  }

  private static Tensor transpose(Tensor t) {
    int r = (int) t.dim(0);
    int c = (int) t.dim(1);
    int el = t.dtype().byteSize();
    ByteBuffer src = t.data();
    ByteBuffer dst = ByteBuffer.allocate(r * c * el).order(ByteOrder.LITTLE_ENDIAN);
    for (int j = 0; j < c; j++) {
      for (int i = 0; i < r; i++) {
        for (int b = 0; b < el; b++) dst.put(src.get((i * c + j) * el + b));
      }
    }
    return new Tensor(t.name(), t.dtype(), new long[] {c, r}, dst.flip());
  }
}
