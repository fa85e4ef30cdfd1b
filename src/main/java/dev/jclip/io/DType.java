package dev.jclip.io;

import java.util.Locale;

/** Element types of stored tensors, named as in safetensors. All data is little-endian. */
public enum DType {
  F64(8),
  F32(4),
  F16(2),
  BF16(2),
  I64(8),
  I32(4),
  I16(2),
  I8(1),
  U8(1),
  BOOL(1);

  private final int byteSize;

  DType(int byteSize) {
    this.byteSize = byteSize;
  }

  /** Bytes per element. */
  public int byteSize() {
    return byteSize;
  }

  /** True for the floating-point types. */
  public boolean isFloating() {
    return this == F64 || this == F32 || this == F16 || this == BF16;
  }

  /** The safetensors name ({@code "F32"}, {@code "BF16"}, ...). */
  public String safetensorsName() {
    return name();
  }

  /**
   * Parses a safetensors dtype name.
   *
   * @throws IllegalArgumentException naming the unknown type
   */
  public static DType fromSafetensors(String name) {
    try {
      return valueOf(name.toUpperCase(Locale.ROOT));
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("unknown dtype '" + name + "'", e);
    }
  }
}
