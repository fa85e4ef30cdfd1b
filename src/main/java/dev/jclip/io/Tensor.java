package dev.jclip.io;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Objects;

/**
 * A named, contiguous (C order), little-endian host tensor as read from a checkpoint.
 *
 * <p>The data buffer may be a memory-mapped view of the file: nothing is copied until a
 * conversion such as {@link #toFloatArray()} is asked for. Shapes use {@code long} because stored
 * tensors may exceed 2^31 bytes, but a conversion to a Java array checks it fits.
 */
public final class Tensor {
  private final String name;
  private final DType dtype;
  private final long[] shape;
  private final ByteBuffer data;

  /**
   * @param data exactly {@code numel(shape) * dtype.byteSize()} bytes from position 0; it is
   *     duplicated, so the caller's position and limit are untouched
   */
  public Tensor(String name, DType dtype, long[] shape, ByteBuffer data) {
    this.name = Objects.requireNonNull(name, "name");
    this.dtype = Objects.requireNonNull(dtype, "dtype");
    this.shape = shape.clone();
    long n = numel(this.shape);
    long bytes = Math.multiplyExact(n, (long) dtype.byteSize());
    if (data.remaining() != bytes) {
      throw new IllegalArgumentException(
          "tensor '"
              + name
              + "': "
              + dtype
              + Arrays.toString(shape)
              + " needs "
              + bytes
              + " bytes, data has "
              + data.remaining());
    }
    this.data = data.slice().order(ByteOrder.LITTLE_ENDIAN);
  }

  /** A float32 tensor holding a copy of {@code values}. */
  public static Tensor ofFloats(String name, long[] shape, float[] values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    b.asFloatBuffer().put(values);
    return new Tensor(name, DType.F32, shape, b);
  }

  /** Number of elements of a shape (1 for a scalar); throws on negative dims or overflow. */
  public static long numel(long[] shape) {
    long n = 1;
    for (long d : shape) {
      if (d < 0) throw new IllegalArgumentException("negative dimension in " + Arrays.toString(shape));
      n = Math.multiplyExact(n, d);
    }
    return n;
  }

  public String name() {
    return name;
  }

  public DType dtype() {
    return dtype;
  }

  public long[] shape() {
    return shape.clone();
  }

  public int rank() {
    return shape.length;
  }

  public long dim(int i) {
    return shape[i < 0 ? shape.length + i : i];
  }

  public long numel() {
    return numel(shape);
  }

  public long byteSize() {
    return (long) data.remaining();
  }

  /** A read-only little-endian view of the raw bytes (position 0). */
  public ByteBuffer data() {
    return data.asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
  }

  /** The same data under another name. */
  public Tensor renamed(String newName) {
    return new Tensor(newName, dtype, shape, data);
  }

  /** The same data with another shape of equal element count. */
  public Tensor reshaped(long... newShape) {
    if (numel(newShape) != numel()) {
      throw new IllegalArgumentException(
          "tensor '" + name + "': cannot reshape " + Arrays.toString(shape) + " to " + Arrays.toString(newShape));
    }
    return new Tensor(name, dtype, newShape, data);
  }

  /**
   * Rows {@code from} (inclusive) to {@code to} (exclusive) along the first dimension, as a view of
   * the same data (nothing copied) named {@code name[from:to]}.
   */
  public Tensor rows(long from, long to) {
    if (shape.length == 0 || from < 0 || to > shape[0] || from > to) {
      throw new IllegalArgumentException("tensor '" + name + "' " + Arrays.toString(shape) + ": no rows " + from + " to " + to);
    }
    long[] s = shape.clone();
    s[0] = to - from;
    long rowBytes = shape[0] == 0 ? 0 : byteSize() / shape[0];
    return new Tensor(name + "[" + from + ":" + to + "]", dtype, s, data.slice(Math.toIntExact(from * rowBytes), Math.toIntExact((to - from) * rowBytes)));
  }

  /** All elements converted to float32 (exact for F16, BF16 and F32; rounded for F64 and I64). */
  public float[] toFloatArray() {
    long n = numel();
    if (n > Integer.MAX_VALUE - 8) {
      throw new IllegalStateException("tensor '" + name + "' has " + n + " elements: too many for a Java array");
    }
    float[] out = new float[(int) n];
    ByteBuffer b = data;
    switch (dtype) {
      case F32 -> b.asFloatBuffer().get(out);
      case F16 -> {
        for (int i = 0; i < out.length; i++) out[i] = Float.float16ToFloat(b.getShort(2 * i));
      }
      case BF16 -> {
        for (int i = 0; i < out.length; i++) out[i] = Float.intBitsToFloat((b.getShort(2 * i) & 0xffff) << 16);
      }
      case F64 -> {
        for (int i = 0; i < out.length; i++) out[i] = (float) b.getDouble(8 * i);
      }
      case I64 -> {
        for (int i = 0; i < out.length; i++) out[i] = (float) b.getLong(8 * i);
      }
      case I32 -> {
        for (int i = 0; i < out.length; i++) out[i] = (float) b.getInt(4 * i);
      }
      case I16 -> {
        for (int i = 0; i < out.length; i++) out[i] = (float) b.getShort(2 * i);
      }
      case I8 -> {
        for (int i = 0; i < out.length; i++) out[i] = (float) b.get(i);
      }
      case U8, BOOL -> {
        for (int i = 0; i < out.length; i++) out[i] = (float) (b.get(i) & 0xff);
      }
    }
    return out;
  }

  /** All elements as int64 (integer types only). */
  public long[] toLongArray() {
    long n = numel();
    if (n > Integer.MAX_VALUE - 8) {
      throw new IllegalStateException("tensor '" + name + "' has " + n + " elements: too many for a Java array");
    }
    long[] out = new long[(int) n];
    ByteBuffer b = data;
    for (int i = 0; i < out.length; i++) {
      out[i] =
          switch (dtype) {
            case I64 -> b.getLong(8 * i);
            case I32 -> b.getInt(4 * i);
            case I16 -> b.getShort(2 * i);
            case I8 -> b.get(i);
            case U8, BOOL -> b.get(i) & 0xff;
            default -> throw new IllegalStateException("tensor '" + name + "' is " + dtype + ", not an integer type");
          };
    }
    return out;
  }

  /** The raw bytes copied into a new array (for U8 images, hashing, comparisons). */
  public byte[] toByteArray() {
    long n = byteSize();
    if (n > Integer.MAX_VALUE - 8) throw new IllegalStateException("tensor '" + name + "' is too large for a byte[]");
    byte[] out = new byte[(int) n];
    data.duplicate().get(out);
    return out;
  }

  @Override
  public String toString() {
    return name + ":" + dtype + Arrays.toString(shape);
  }
}
