package dev.jclip.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Writes NumPy {@code .npy} files (format version 1.0, C order, little-endian float32, float16 or
 * float64), e.g. embeddings {@code [N, E]} for {@code numpy.load}.
 *
 * <p>The header is byte-for-byte what {@code numpy.save} writes: the dict, the spare spaces numpy
 * leaves after it so that the first dimension can grow to 21 digits in place, padding to a
 * multiple of 64 bytes and a newline. Because that header length does not depend on the row count,
 * rows can be streamed and the count filled in at the end:
 *
 * <pre>{@code
 * try (NpyWriter w = NpyWriter.create(Path.of("emb.npy"), DType.F16, 512)) {
 *   for (float[] row : embeddings) w.writeRow(row);
 *   w.finish();   // without finish(), close() discards the temporary file
 * }
 * }</pre>
 *
 * The file appears atomically on {@link #finish()} (temporary sibling, then rename).
 */
public final class NpyWriter implements AutoCloseable {
  private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  private static final int ALIGN = 64;
  private static final int GROWTH_AXIS_MAX_DIGITS = 21; // numpy.lib.format's spare room for axis 0

  private final AtomicFile file;
  private final Path target;
  private final FileChannel ch;
  private final DType dtype;
  private final long[] rowShape;
  private final long rowElements;
  private final int headerLength;
  private final ByteBuffer staging;
  private long rows;
  private boolean finished;
  private boolean closed;

  private NpyWriter(AtomicFile file, DType dtype, long[] rowShape) throws IOException {
    this.file = file;
    this.target = file.target();
    this.ch = file.channel();
    this.dtype = dtype;
    this.rowShape = rowShape;
    this.rowElements = Tensor.numel(rowShape);
    byte[] h = header(dtype, prepend(0, rowShape));
    this.headerLength = h.length;
    this.staging = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);
    SafetensorsWriter.writeFully(ch, ByteBuffer.wrap(h), target); // placeholder, rewritten by finish()
  }

  /**
   * Starts a file of rows of shape {@code rowShape} (e.g. {@code 512} for [N, 512] embeddings;
   * nothing for a 1-D array of N values).
   *
   * @param dtype F32, F16 or F64
   */
  public static NpyWriter create(Path file, DType dtype, long... rowShape) throws IOException {
    descr(dtype);
    Tensor.numel(rowShape); // rejects negative dimensions
    AtomicFile out = AtomicFile.create(file);
    try {
      return new NpyWriter(out, dtype, rowShape.clone());
    } catch (IOException | RuntimeException e) {
      out.close();
      throw e;
    }
  }

  /** Writes a whole array of the given shape (C order) in one call. */
  public static void write(Path file, DType dtype, long[] shape, float[] data) throws IOException {
    if (shape.length == 0) throw new IllegalArgumentException("0-d arrays are not supported; use shape {1}");
    if (Tensor.numel(shape) != data.length) {
      throw new IllegalArgumentException(
          "shape " + Arrays.toString(shape) + " needs " + Tensor.numel(shape) + " values, got " + data.length);
    }
    try (NpyWriter w = create(file, dtype, Arrays.copyOfRange(shape, 1, shape.length))) {
      w.writeRows(data, 0, Math.toIntExact(shape[0]));
      w.finish();
    }
  }

  /** Appends one row of {@code rowShape} elements. */
  public void writeRow(float[] row) throws IOException {
    if (row.length != rowElements) {
      throw new IllegalArgumentException("row has " + row.length + " values, expected " + rowElements);
    }
    writeRows(row, 0, 1);
  }

  /** Appends {@code count} rows stored back to back in {@code data} from {@code offset}. */
  public void writeRows(float[] data, int offset, int count) throws IOException {
    if (finished || closed) throw new IllegalStateException("writer for " + target + " is already finished");
    long n = Math.multiplyExact((long) count, rowElements);
    if (offset < 0 || count < 0 || offset + n > data.length) {
      throw new IllegalArgumentException(
          "rows " + count + " x " + rowElements + " from offset " + offset + " exceed the array of " + data.length);
    }
    int end = (int) (offset + n);
    for (int i = offset; i < end; i++) {
      if (staging.remaining() < 8) flush();
      switch (dtype) {
        case F32 -> staging.putFloat(data[i]);
        case F16 -> staging.putShort(Float.floatToFloat16(data[i]));
        case F64 -> staging.putDouble(data[i]);
        default -> throw new IllegalStateException();
      }
    }
    rows += count;
  }

  /** Rows written so far. */
  public long rows() {
    return rows;
  }

  /** Writes the final header, syncs, and moves the file into place. */
  public void finish() throws IOException {
    if (finished || closed) throw new IllegalStateException("writer for " + target + " is already finished");
    flush();
    byte[] h = header(dtype, prepend(rows, rowShape));
    if (h.length != headerLength) {
      throw new IllegalStateException("npy header length changed: " + headerLength + " -> " + h.length);
    }
    SafetensorsWriter.writeFully(ch.position(0), ByteBuffer.wrap(h), target);
    file.commit();
    finished = true;
  }

  /** Releases the file; without a preceding {@link #finish()} the partial output is deleted. */
  @Override
  public void close() throws IOException {
    if (closed) return;
    closed = true;
    file.close();
  }

  private void flush() throws IOException {
    staging.flip();
    SafetensorsWriter.writeFully(ch, staging, target);
    staging.clear();
  }

  private static long[] prepend(long first, long[] rest) {
    long[] s = new long[rest.length + 1];
    s[0] = first;
    System.arraycopy(rest, 0, s, 1, rest.length);
    return s;
  }

  private static String descr(DType dtype) {
    return switch (dtype) {
      case F32 -> "<f4";
      case F16 -> "<f2";
      case F64 -> "<f8";
      default -> throw new IllegalArgumentException("npy writer supports F32, F16 and F64, not " + dtype);
    };
  }

  /** The complete header (magic, version, length, dict, padding) exactly as numpy writes it. */
  static byte[] header(DType dtype, long[] shape) {
    StringBuilder dict = new StringBuilder();
    dict.append("{'descr': '").append(descr(dtype)).append("', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < shape.length; i++) {
      if (i > 0) dict.append(", ");
      dict.append(shape[i]);
    }
    if (shape.length == 1) dict.append(',');
    dict.append("), }");
    if (shape.length > 0) {
      dict.append(" ".repeat(Math.max(0, GROWTH_AXIS_MAX_DIGITS - Long.toString(shape[0]).length())));
    }
    int hlen = dict.length() + 1; // + the final newline
    int pad = ALIGN - ((MAGIC.length + 2 + hlen) % ALIGN);
    dict.append(" ".repeat(pad)).append('\n');
    byte[] text = dict.toString().getBytes(StandardCharsets.US_ASCII);
    if (text.length > 0xffff) throw new IllegalArgumentException("npy header too long for format 1.0");
    ByteBuffer b = ByteBuffer.allocate(MAGIC.length + 2 + text.length).order(ByteOrder.LITTLE_ENDIAN);
    b.put(MAGIC).putShort((short) text.length).put(text);
    return b.array();
  }
}
