package dev.jclip.model;

import java.util.Locale;

/** The MLP activation of the transformer blocks: the one thing about CLIP that shapes cannot tell. */
public enum Activation {
  /** {@code x * sigmoid(1.702 * x)}: OpenAI's CLIP (all released weights) and open_clip {@code -quickgelu} models. */
  QUICK_GELU,
  /** Exact (erf) GELU, {@code torch.nn.GELU()}: open_clip models trained without {@code -quickgelu}. */
  GELU;

  /**
   * Parses {@code quick_gelu}/{@code quickgelu} or {@code gelu} (HuggingFace {@code hidden_act}
   * names, case-insensitive, {@code -} or {@code _}).
   *
   * @throws IllegalArgumentException naming the value and the accepted ones
   */
  public static Activation parse(String s) {
    String n = s.trim().toLowerCase(Locale.ROOT).replace('-', '_');
    return switch (n) {
      case "quick_gelu", "quickgelu" -> QUICK_GELU;
      case "gelu" -> GELU;
      default -> throw new IllegalArgumentException("unsupported activation '" + s + "' (jclip supports quick_gelu and gelu)");
    };
  }

  /** The HuggingFace name. */
  public String hfName() {
    return this == QUICK_GELU ? "quick_gelu" : "gelu";
  }
}
