package dev.jclip.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.Precision;
import dev.jclip.testing.TestRandom;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * The oneDNN LINEAR path beyond the ops test: the bf16 conversion (vector kernel = scalar twin =
 * round to nearest even), and results that do not depend on how many rows a call has (the end of
 * text cut and batching rely on it).
 */
class DnnlLinearTest {
  private final Random rnd = TestRandom.create("DnnlLinearTest");

  /**
   * oneDNN stops at AVX-512 BF16 unless -Djclip.cpu.amx=on (its AMX kernels computed wrong on a KVM
   * guest: Dnnl.capIsa): on a CPU with AMX the effective ISA would otherwise contain AMX's bits.
   * The property takes on or off only.
   */
  @Test
  void oneDnnStopsAtAvx512Bf16UnlessAmxIsAllowed() {
    Dnnl dnnl;
    try {
      dnnl = Dnnl.get();
    } catch (IllegalStateException e) {
      Assumptions.assumeTrue(false, e.getMessage());
      return;
    }
    if (!Dnnl.amxAllowed()) {
      int isa = dnnl.effectiveIsa();
      assertEquals(isa, isa & Dnnl.ISA_AVX512_CORE_BF16, "effective ISA 0x" + Integer.toHexString(isa) + " goes beyond AVX-512 BF16");
    }
    org.junit.jupiter.api.Assertions.assertTrue(Dnnl.amxAllowed("on"));
    org.junit.jupiter.api.Assertions.assertFalse(Dnnl.amxAllowed("off"));
    org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> Dnnl.amxAllowed("yes"));
  }

  @Test
  void bf16ConversionRoundsToNearestEvenInBothKernels() {
    Assumptions.assumeTrue(CpuBackend.vectorAvailable(), "Vector API module absent");
    float[] x = new float[1037];
    for (int i = 0; i < x.length; i++) x[i] = (float) (rnd.nextGaussian() * Math.pow(10, rnd.nextInt(9) - 4));
    // exact ties: the lower half is 0x8000, so the kept lowest bit decides
    x[0] = Float.intBitsToFloat(0x3F808000); // 1.00390625: tie, kept bit 0 -> down
    x[1] = Float.intBitsToFloat(0x3F818000); // tie, kept bit 1 -> up
    x[2] = Float.intBitsToFloat(0x3F80FFFF);
    x[3] = -0f;
    x[4] = Float.MAX_VALUE; // rounds up to infinity, as PyTorch's conversion does
    try (Arena a = Arena.ofConfined()) {
      MemorySegment v = a.allocate(2L * x.length), s = a.allocate(2L * x.length);
      new VectorKernels().toBf16(x, 0, x.length, v, 0);
      new ScalarKernels().toBf16(x, 0, x.length, s, 0);
      for (int i = 0; i < x.length; i++) {
        short want = nearestEven(x[i]);
        assertEquals(want, s.getAtIndex(ValueLayout.JAVA_SHORT, i), "scalar, element " + i + " = " + x[i]);
        assertEquals(want, v.getAtIndex(ValueLayout.JAVA_SHORT, i), "vector, element " + i + " = " + x[i]);
      }
      assertEquals((short) 0x3F80, s.getAtIndex(ValueLayout.JAVA_SHORT, 0));
      assertEquals((short) 0x3F82, s.getAtIndex(ValueLayout.JAVA_SHORT, 1));
    }
  }

  /** Round to nearest even by arithmetic on doubles: the bf16 neighbours of x and the nearer one. */
  private static short nearestEven(float x) {
    int bits = Float.floatToRawIntBits(x);
    int down = bits & 0xFFFF0000, up = down + 0x10000;
    double dd = Math.abs((double) Float.intBitsToFloat(down) - x);
    double du = Math.abs((double) Float.intBitsToFloat(up) - x);
    if (Float.isInfinite(Float.intBitsToFloat(up)) && Float.isFinite(x)) {
      // the distance to "infinity" is measured to 2^128, IEEE's rule for overflow
      du = Math.abs(Math.scalb(1.0, 128) * Math.signum(x) - x);
    }
    int r = dd < du ? down : du < dd ? up : ((down >>> 16) & 1) == 0 ? down : up;
    return (short) (r >>> 16);
  }

  @Test
  void rowsDoNotDependOnTheRowCount() {
    for (Precision p : new Precision[] {Precision.FP32, Precision.BF16}) {
      if (p == Precision.BF16 && !CpuFeatures.bf16()) continue;
      try (CpuBackend cpu = new CpuBackend(2, true, p)) {
        int n = 768, k = 512;
        float[] w = new float[n * k];
        for (int i = 0; i < w.length; i++) w[i] = (float) rnd.nextGaussian();
        int big = 300;
        float[] x = new float[big * k];
        for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
        float[] all = new float[big * n];
        cpu.gemmNT(big, n, k, x, w, all);
        for (int m : new int[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 50, 77}) {
          float[] part = new float[m * n];
          cpu.gemmNT(m, n, k, java.util.Arrays.copyOf(x, m * k), w, part);
          for (int r = 0; r < m; r++) {
            assertArrayEquals(java.util.Arrays.copyOfRange(all, r * n, (r + 1) * n), java.util.Arrays.copyOfRange(part, r * n, (r + 1) * n),
                p + ": row " + r + " differs between M = " + big + " and M = " + m);
          }
        }
        assertTrue(cpu.gemmLibrary().startsWith("oneDNN"), cpu.gemmLibrary());
      }
    }
  }
}
