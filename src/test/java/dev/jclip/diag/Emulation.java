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
