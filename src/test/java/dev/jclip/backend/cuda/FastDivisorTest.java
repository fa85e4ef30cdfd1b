package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * {@link CudaOps#fastDivisor}: the (m, shift) the lean flash kernels divide by (flash_attention.cu's
 * FaDiv: {@code m == 0 ? n : umulhi(n, m) >> shift}), checked against Java's division the way the
 * kernel computes it, for every divisor up to 4096 at the quotients' edges, for random divisors up
 * to 2^31 - 1, and for every n below 2^21 at a few divisors. No GPU.
 */
class FastDivisorTest {
  /** The kernel's FaDiv::div, in Java. */
  private static int divide(int n, int[] md) {
    if (md[0] == 0) return n;
    long hi = (Integer.toUnsignedLong(n) * Integer.toUnsignedLong(md[0])) >>> 32;
    return (int) (hi >>> md[1]);
  }

  private static void check(int n, int d, int[] md) {
    assertEquals(n / d, divide(n, md), () -> n + " / " + d + " with m " + Integer.toUnsignedString(md[0]) + ", shift " + md[1]);
  }

  @Test
  void everyDivisorUpTo4096AtTheEdges() {
    SplittableRandom random = new SplittableRandom(20261128);
    for (int d = 1; d <= 4096; d++) {
      int[] md = CudaOps.fastDivisor(d);
      assertTrue(md[1] >= 0 && md[1] < 31, "shift " + md[1] + " for " + d);
      for (int n = 0; n < 3 * d; n++) check(n, d, md);
      for (long k : new long[] {7, 1000, 65_537, (Integer.MAX_VALUE / d) - 1, Integer.MAX_VALUE / d}) {
        for (long n = k * d - 1; n <= k * d + 1; n++) if (n >= 0 && n <= Integer.MAX_VALUE) check((int) n, d, md);
      }
      check(Integer.MAX_VALUE, d, md);
      for (int i = 0; i < 64; i++) check(random.nextInt(Integer.MAX_VALUE), d, md);
    }
  }

  @Test
  void randomLargeDivisors() {
    SplittableRandom random = new SplittableRandom(7);
    for (int i = 0; i < 20_000; i++) {
      int d = 1 + random.nextInt(Integer.MAX_VALUE - 1);
      int[] md = CudaOps.fastDivisor(d);
      check(Integer.MAX_VALUE, d, md);
      check(d, d, md);
      check(d - 1, d, md);
      for (int j = 0; j < 16; j++) check(random.nextInt(Integer.MAX_VALUE), d, md);
    }
    for (int l = 1; l <= 30; l++) { // the powers of two and their neighbours
      for (int d : new int[] {(1 << l) - 1, 1 << l, (1 << l) + 1}) {
        int[] md = CudaOps.fastDivisor(d);
        for (int n : new int[] {0, 1, d - 1, d, d + 1, Integer.MAX_VALUE - 1, Integer.MAX_VALUE}) if (n >= 0) check(n, d, md);
      }
    }
  }

  @Test
  void everyNumeratorBelow2Pow21ForTheAttentionsDivisors() {
    // qblocks (1, 2: 77 tokens in 64-row items; 9, 10: 577 tokens) and heads (8, 12, 16, 40, 48, 64)
    for (int d : new int[] {1, 2, 3, 5, 8, 9, 10, 12, 16, 40, 48, 64, 1000}) {
      int[] md = CudaOps.fastDivisor(d);
      for (int n = 0; n < 1 << 21; n++) check(n, d, md);
    }
  }

  @Test
  void refusesDivisorsBelowOne() {
    assertThrows(IllegalArgumentException.class, () -> CudaOps.fastDivisor(0));
    assertThrows(IllegalArgumentException.class, () -> CudaOps.fastDivisor(-3));
  }
}
