package dev.jclip.backend.cuda;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.stream.IntStream;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;

/**
 * Copies between Java arrays and native host memory (the pinned staging buffers) through direct
 * byte buffers in the machine's byte order: a single bulk copy per chunk, where JavaCPP's array
 * methods would first copy the array into a temporary of their own. Arrays of 64 MiB and more are
 * copied in 16 MiB chunks in parallel (a batch of 1024 fp32 images is 616 MB: one thread would
 * take longer than the GPU needs to compute it); each chunk is a separate window, so no two
 * threads write the same bytes. Rounding to 16 bits on the way ({@link #putHalf}) is cut finer
 * and goes parallel sooner.
 */
final class HostCopy {
  private HostCopy() {}

  static final int CHUNK_BYTES = 16 << 20;
  static final long PARALLEL_FROM = 64L << 20;

  /** Writes {@code src} to the native memory at {@code address}, which holds {@code capacity} bytes. */
  static void put(float[] src, long address, long capacity) {
    copy(address, capacity, src.length, 4, (w, from, n) -> w.asFloatBuffer().put(src, from, n));
  }

  /** Writes {@code src} to the native memory at {@code address}, which holds {@code capacity} bytes. */
  static void put(int[] src, long address, long capacity) {
    copy(address, capacity, src.length, 4, (w, from, n) -> w.asIntBuffer().put(src, from, n));
  }

  /**
   * Writes {@code src} rounded to {@code half} (FP16 or BF16, to nearest even as the device's cast
   * kernels do: {@link HalfFloats}) to the native memory at {@code address}, which holds {@code
   * capacity} bytes: half the bytes of {@link #put(float[], long, long)}, for a 16-bit upload.
   */
  static void putHalf(float[] src, long address, long capacity, dev.jclip.backend.Precision half) {
    boolean bf16 = switch (half) {
      case FP16 -> false;
      case BF16 -> true;
      default -> throw new IllegalArgumentException("not a 16-bit format: " + half);
    };
    copy(address, capacity, src.length, 2, ROUNDING_CHUNK, 4L * src.length >= ROUNDING_PARALLEL_FROM, (w, from, n) -> {
      short[] tmp = HALVES.get();
      java.nio.ShortBuffer out = w.asShortBuffer();
      for (int c = 0; c < n; c += tmp.length) {
        int m = Math.min(tmp.length, n - c), o = from + c;
        if (bf16) {
          for (int i = 0; i < m; i++) tmp[i] = HalfFloats.bf16(src[o + i]);
        } else {
          for (int i = 0; i < m; i++) tmp[i] = HalfFloats.fp16(src[o + i]);
        }
        out.put(c, tmp, 0, m);
      }
    });
  }

  /**
   * Rounding costs a thread more than copying (about 2.4x on the development machine), so it is
   * cut finer and goes parallel sooner, counted in the floats read: 1M floats a chunk, parallel
   * from 4M (a batch of 32 images is 4.8M; 256 is 37 chunks).
   */
  static final int ROUNDING_CHUNK = 1 << 20;
  static final long ROUNDING_PARALLEL_FROM = 16L << 20;

  /** Each thread's conversion buffer (256 KiB: in cache while it is written out). */
  private static final ThreadLocal<short[]> HALVES = ThreadLocal.withInitial(() -> new short[1 << 17]);

  /** Reads {@code dst.length} floats from the native memory at {@code address} ({@code capacity} bytes). */
  static void get(long address, long capacity, float[] dst) {
    copy(address, capacity, dst.length, 4, (w, from, n) -> w.asFloatBuffer().get(dst, from, n));
  }

  /** Reads {@code dst.length} 16-bit values from the native memory at {@code address} ({@code capacity} bytes). */
  static void get(long address, long capacity, short[] dst) {
    copy(address, capacity, dst.length, 2, (w, from, n) -> w.asShortBuffer().get(dst, from, n));
  }

  /** Moves elements {@code [from, from + n)} of an array through {@code window}, the native bytes of exactly those elements. */
  private interface Chunk {
    void copy(ByteBuffer window, int from, int n);
  }

  /** Copies {@code length} elements of {@code elementBytes} each, chunk by chunk (in parallel from {@link #PARALLEL_FROM} bytes). */
  private static void copy(long address, long capacity, int length, int elementBytes, Chunk chunk) {
    copy(address, capacity, length, elementBytes, CHUNK_BYTES / elementBytes, (long) elementBytes * length >= PARALLEL_FROM, chunk);
  }

  /** Copies {@code length} elements of {@code elementBytes} each, {@code per} elements a chunk, the chunks in parallel if {@code parallel}. */
  private static void copy(long address, long capacity, int length, int elementBytes, int per, boolean parallel, Chunk chunk) {
    fits((long) elementBytes * length, capacity);
    int chunks = (int) ((length + (long) per - 1) / per);
    IntStream range = IntStream.range(0, chunks);
    (parallel ? range.parallel() : range).forEach(c -> {
      int from = c * per, n = Math.min(per, length - from);
      chunk.copy(window(address, (long) elementBytes * from, elementBytes * n), from, n);
    });
  }

  private static void fits(long bytes, long capacity) {
    if (bytes > capacity) throw new IllegalArgumentException(bytes + " bytes do not fit a host buffer of " + capacity);
  }

  /** A direct buffer over {@code bytes} bytes at {@code address + offset}, in native byte order. */
  private static ByteBuffer window(long address, long offset, int bytes) {
    if (bytes == 0) return ByteBuffer.allocate(0).order(ByteOrder.nativeOrder());
    return new BytePointer(new Raw(address + offset, bytes)).asByteBuffer().order(ByteOrder.nativeOrder());
  }

  /** An address and a length, owning nothing. */
  static final class Raw extends Pointer {
    Raw(long address, long bytes) {
      this.address = address;
      this.capacity = bytes;
      this.limit = bytes;
    }
  }
}
