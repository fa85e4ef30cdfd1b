package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.SplittableRandom;
import org.bytedeco.javacpp.BytePointer;
import org.junit.jupiter.api.Test;

/**
 * The copies between Java arrays and the pinned staging, on native memory that JavaCPP allocates
 * (the same kind of address as cuMemHostAlloc's, without a GPU): values land where the device copy
 * will read them, in the machine's byte order, at sizes below, at and across chunk boundaries, and
 * on the parallel path.
 */
class HostCopyTest {
  @Test
  void floatsAndIntsRoundTripAtChunkBoundaries() {
    int per = HostCopy.CHUNK_BYTES / 4;
    for (int n : new int[] {0, 1, 7, per - 1, per, per + 1, 3 * per + 5}) {
      float[] f = new float[n];
      int[] ids = new int[n];
      SplittableRandom r = new SplittableRandom(n);
      for (int i = 0; i < n; i++) {
        f[i] = (float) r.nextGaussian();
        ids[i] = r.nextInt();
      }
      try (BytePointer mem = new BytePointer(Math.max(4L * n, 1))) {
        HostCopy.put(f, mem.address(), mem.capacity());
        for (int i = 0; i < Math.min(n, 1000); i += 37) assertEquals(f[i], mem.getFloat(4L * i), "float " + i + " of " + n);
        if (n > 0) assertEquals(f[n - 1], mem.getFloat(4L * (n - 1)), "last float of " + n);
        float[] back = new float[n];
        HostCopy.get(mem.address(), mem.capacity(), back);
        assertArrayEquals(f, back, n + " floats");

        HostCopy.put(ids, mem.address(), mem.capacity());
        if (n > 0) assertEquals(ids[n - 1], mem.getInt(4L * (n - 1)), "last int of " + n);
        float[] asFloats = new float[n];
        HostCopy.get(mem.address(), mem.capacity(), asFloats);
        for (int i = 0; i < n; i++) assertEquals(ids[i], Float.floatToRawIntBits(asFloats[i]), "int " + i + " of " + n);
      }
    }
  }

  @Test
  void theParallelPathCopiesEveryChunk() {
    int n = (int) (HostCopy.PARALLEL_FROM / 4) + HostCopy.CHUNK_BYTES / 8 + 3; // above the threshold, a partial last chunk
    float[] f = new float[n];
    for (int i = 0; i < n; i++) f[i] = i * 0.5f - 7;
    try (BytePointer mem = new BytePointer(4L * n)) {
      HostCopy.put(f, mem.address(), mem.capacity());
      float[] back = new float[n];
      HostCopy.get(mem.address(), mem.capacity(), back);
      assertArrayEquals(f, back);
    }
  }

  /**
   * fp16 and bf16: each value at its own place, in machine order, at chunk boundaries and on the
   * parallel path, rounded as {@link HalfFloats} rounds it (whose bits {@code
   * CudaAttentionTest.castsRoundToNearestEven} checks against the device's cast kernels), ties,
   * subnormals, overflow, infinities and NaN among the values; a float format is refused.
   */
  @Test
  void halvesAreRoundedAsTheDeviceRoundsThem() {
    int per = HostCopy.ROUNDING_CHUNK;
    float[] special = {0f, -0f, 1f, 65504f, 65520f, 1e6f, -1e6f, 5.96e-8f, 2.98e-8f, 1e-40f, Float.MIN_VALUE, Float.POSITIVE_INFINITY,
        Float.NEGATIVE_INFINITY, Float.NaN, Float.intBitsToFloat(0x7f800001), Float.intBitsToFloat(0x3f808000),
        Float.intBitsToFloat(0x3f818000), Float.intBitsToFloat(0x3f801000), Float.intBitsToFloat(0x3f803000)};
    int parallel = (int) (HostCopy.ROUNDING_PARALLEL_FROM / 4) + per / 3;
    for (dev.jclip.backend.Precision p : new dev.jclip.backend.Precision[] {dev.jclip.backend.Precision.FP16, dev.jclip.backend.Precision.BF16}) {
      for (int n : new int[] {0, 1, special.length, per - 1, per + 1, parallel}) {
        float[] f = new float[n];
        SplittableRandom r = new SplittableRandom(31L * n + p.ordinal());
        for (int i = 0; i < n; i++) f[i] = i < special.length ? special[i] : (float) (r.nextGaussian() * Math.pow(2, r.nextInt(-30, 20)));
        try (BytePointer mem = new BytePointer(Math.max(2L * n, 1))) {
          HostCopy.putHalf(f, mem.address(), mem.capacity(), p);
          short[] got = new short[n];
          HostCopy.get(mem.address(), mem.capacity(), got);
          for (int i = 0; i < n; i++) {
            short want = p == dev.jclip.backend.Precision.FP16 ? HalfFloats.fp16(f[i]) : HalfFloats.bf16(f[i]);
            if (want != got[i]) assertEquals(want, got[i], p + " value " + i + " of " + n + ": " + f[i]);
          }
        }
      }
    }
    try (BytePointer mem = new BytePointer(8)) {
      assertThrows(IllegalArgumentException.class, () -> HostCopy.putHalf(new float[5], mem.address(), 8, dev.jclip.backend.Precision.FP16));
      assertThrows(IllegalArgumentException.class, () -> HostCopy.putHalf(new float[1], mem.address(), 8, dev.jclip.backend.Precision.FP32));
    }
  }

  @Test
  void shortsAreReadInMachineOrder() {
    short[] want = {0, 1, -1, 0x3c00, (short) 0xc000, 0x7bff, (short) 0x8001};
    try (BytePointer mem = new BytePointer(2L * want.length)) {
      for (int i = 0; i < want.length; i++) mem.putShort(2L * i, want[i]);
      short[] got = new short[want.length];
      HostCopy.get(mem.address(), mem.capacity(), got);
      assertArrayEquals(want, got);
    }
  }

  @Test
  void tooMuchForTheBufferIsRefusedWithTheSizes() {
    try (BytePointer mem = new BytePointer(16)) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> HostCopy.put(new float[5], mem.address(), 16));
      assertEquals("20 bytes do not fit a host buffer of 16", e.getMessage());
      assertThrows(IllegalArgumentException.class, () -> HostCopy.get(mem.address(), 16, new short[9]));
    }
  }
}
