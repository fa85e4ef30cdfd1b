package dev.jclip.backend;

import java.util.Locale;

/**
 * The compute precision a backend runs a graph in. {@link #FP32} is the parity mode (matches the
 * reference within 1e-4); {@link #FP16} and {@link #BF16} keep activations and GEMM operands in 16
 * bits with fp32 accumulation, LayerNorm, softmax and reductions (same argmax, features within a
 * few 1e-3).
 */
public enum Precision {
  FP32,
  FP16,
  BF16;

  /** Parses {@code fp32}, {@code fp16} or {@code bf16} (case-insensitive). */
  public static Precision parse(String s) {
    try {
      return valueOf(s.trim().toUpperCase(Locale.ROOT));
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("unknown precision '" + s + "' (fp32, fp16 or bf16)", e);
    }
  }

  /** Bytes per activation element. */
  public int bytes() {
    return this == FP32 ? 4 : 2;
  }

  @Override
  public String toString() {
    return name().toLowerCase(Locale.ROOT);
  }
}
