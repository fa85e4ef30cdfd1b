package dev.jclip.io;

import java.nio.file.Path;
import java.util.Map;

/**
 * What a checkpoint's side file (HuggingFace {@code config.json}, open_clip {@code
 * open_clip_config.json}) says about the model: the activation and head counts, which weight
 * shapes cannot tell, and the sizes it declares, which must agree with the shapes. All fields are
 * null/empty when the checkpoint has no such file (plain {@code .pt}/{@code .safetensors}), in
 * which case {@code dev.jclip.model.ClipConfig} uses the reference {@code build_model} rules alone.
 *
 * @param hiddenAct the activation name ({@code quick_gelu}, {@code gelu}), or null
 * @param visionHeads attention heads of the vision tower, or null
 * @param textHeads attention heads of the text tower, or null
 * @param declared sizes the file declares, under the reference constructor's argument names
 *     ({@code embed_dim}, {@code image_resolution}, {@code vision_width}, ...)
 * @param source the file these came from, or null
 */
public record ConfigHints(String hiddenAct, Integer visionHeads, Integer textHeads, Map<String, Integer> declared, Path source) {
  public static final ConfigHints NONE = new ConfigHints(null, null, null, Map.of(), null);

  public ConfigHints {
    declared = Map.copyOf(declared);
  }
}
