package dev.jclip.io;

import java.nio.file.Path;

/**
 * What a checkpoint's side files say about the model that its weight shapes cannot: the
 * activation and the head counts. All fields are null when the checkpoint has no such file (plain
 * {@code .pt}/{@code .safetensors}), in which case {@code dev.jclip.model.ClipConfig} uses the
 * reference {@code build_model} rules.
 *
 * @param hiddenAct the activation name as written ({@code quick_gelu}, {@code gelu}), or null
 * @param visionHeads attention heads of the vision tower, or null
 * @param textHeads attention heads of the text tower, or null
 * @param source the file these came from (config.json, open_clip_config.json), or null
 */
public record ConfigHints(String hiddenAct, Integer visionHeads, Integer textHeads, Path source) {
  public static final ConfigHints NONE = new ConfigHints(null, null, null, null);
}
