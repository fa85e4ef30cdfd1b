package dev.jclip.backend.cuda;

/** Host-side conversions to the GPU's 16-bit formats, round to nearest even like the device. */
public final class HalfFloats {
  private HalfFloats() {}

  /** IEEE fp16 bits of {@code f} (NaN and infinities preserved). */
  public static short fp16(float f) {
    return Float.floatToFloat16(f);
  }

  /** bfloat16 bits of {@code f}, rounded to nearest even as {@code __float2bfloat16_rn}. */
  public static short bf16(float f) {
    int bits = Float.floatToRawIntBits(f);
    if ((bits & 0x7f800000) == 0x7f800000 && (bits & 0x007fffff) != 0) return (short) ((bits >>> 16) | 0x40); // quiet NaN
    int rounding = 0x7fff + ((bits >>> 16) & 1);
    return (short) ((bits + rounding) >>> 16);
  }

  public static float fromFp16(short h) {
    return Float.float16ToFloat(h);
  }

  public static float fromBf16(short h) {
    return Float.intBitsToFloat((h & 0xffff) << 16);
  }
}
