package dev.jclip.diag;

import dev.jclip.backend.HostFloatBackend;
import dev.jclip.backend.cuda.HalfFloats;
import dev.jclip.graph.Op;

/**
 * What the diagnoses' CPU emulations of the CUDA backend's 16-bit storage share: the 16-bit
 * formats with their rounding (to nearest even), and a host backend that runs every op.
 */
final class Emulation {
  private Emulation() {}

  /** A 16-bit storage format. */
  enum Fmt {
    FP16,
    BF16;

    /** {@code x} rounded to this format (nearest even) and back. */
    float round(float x) {
      return this == FP16 ? HalfFloats.fromFp16(HalfFloats.fp16(x)) : HalfFloats.fromBf16(HalfFloats.bf16(x));
    }
  }

  /**
   * flash_attention.cu's scores for query row {@code i} of head {@code h} of sequence {@code b}
   * (qkv [B, len, 3, heads, 64]): q · k / 8 in fp32 for its keys (those up to i when causal) into
   * {@code p}; returns their maximum.
   */
  static float scores(float[] qkv, int b, int h, int i, int len, int heads, boolean causal, float[] p) {
    int d = heads * 64, qo = (b * len + i) * 3 * d + h * 64, keys = causal ? i + 1 : len;
    float max = Float.NEGATIVE_INFINITY;
    for (int j = 0; j < keys; j++) {
      int ko = (b * len + j) * 3 * d + d + h * 64;
      float s = 0;
      for (int c = 0; c < 64; c++) s += qkv[qo + c] * qkv[ko + c];
      p[j] = s * 0.125f;
      max = Math.max(max, p[j]);
    }
    return max;
  }

  /**
   * The rest of that row (out [B, len, heads, 64]): p = exp(s - max), packed to {@code fmt} for P·V
   * (null: not rounded), the sum l of the unrounded p, the output P·V / l.
   */
  static void softmaxTimesV(float[] qkv, float[] out, int b, int h, int i, int len, int heads, boolean causal, float[] p, float max, Fmt fmt) {
    int d = heads * 64, keys = causal ? i + 1 : len;
    float l = 0;
    for (int j = 0; j < keys; j++) {
      p[j] = (float) Math.exp(p[j] - max);
      l += p[j];
      if (fmt != null) p[j] = fmt.round(p[j]);
    }
    for (int c = 0; c < 64; c++) {
      float acc = 0;
      for (int j = 0; j < keys; j++) acc += p[j] * qkv[(b * len + j) * 3 * d + 2 * d + h * 64 + c];
      out[(b * len + i) * d + h * 64 + c] = acc * (1 / l);
    }
  }

  /** A host backend named "emu" that takes every op (each emulation executes them its own way). */
  abstract static class Backend extends HostFloatBackend {
    @Override
    public String name() {
      return "emu";
    }

    @Override
    public boolean supports(Op op) {
      return true;
    }
  }
}
