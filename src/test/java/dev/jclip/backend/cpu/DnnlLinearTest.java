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
   * oneDNN may use AMX unless -Djclip.cpu.amx=off (Dnnl.capIsa): then on a CPU with AMX the
   * effective ISA stops at AVX-512 BF16; otherwise it holds AMX's bits where the CPU has them. The
   * property takes on or off only.
   */
  @Test
  void oneDnnUsesAmxUnlessTurnedOff() {
    Dnnl dnnl;
    try {
      dnnl = Dnnl.get();
    } catch (IllegalStateException e) {
      Assumptions.assumeTrue(false, e.getMessage());
      return;
    }
    int isa = dnnl.effectiveIsa();
    if (!Dnnl.amxAllowed()) {
      assertEquals(isa, isa & Dnnl.ISA_AVX512_CORE_BF16, "effective ISA 0x" + Integer.toHexString(isa) + " goes beyond AVX-512 BF16");
    } else if (CpuFeatures.amx()) {
      assertEquals(Dnnl.ISA_AMX, isa & Dnnl.ISA_AMX, "effective ISA 0x" + Integer.toHexString(isa) + " lacks AMX on a CPU with AMX");
    }
    org.junit.jupiter.api.Assertions.assertTrue(Dnnl.amxAllowed("on"));
    org.junit.jupiter.api.Assertions.assertFalse(Dnnl.amxAllowed("off"));
    org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> Dnnl.amxAllowed("yes"));
  }

  /**
   * bf16 LINEAR rows against a double-precision product of the same bf16-rounded operands, row by
   * row, at the shapes where oneDNN 3.11's AMX kernel with run-time rows computed whole rows wrong
   * (K = 3072 and 588; 15, 49, 77, 98, 112 and 333 rows: rows 17-31 of 49 were 0.65-0.87 off).
   * fp32 accumulation of ≤ 3072 products keeps an honest row within ~1e-6; a wrong one is off by ~1.
   */
  @Test
  void bf16RowsMatchADoubleProductAtEveryRowCount() {
    Assumptions.assumeTrue(CpuFeatures.bf16(), "no bf16 instructions on this CPU");
    try (CpuBackend cpu = new CpuBackend(2, true, Precision.BF16)) {
      for (int k : new int[] {3072, 588}) {
        int n = 384;
        float[] w = bf16Values(n * k, 0.05);
        for (int m : new int[] {15, 49, 77, 98, 112, 333}) {
          float[] x = bf16Values(m * k, 1), y = new float[m * n];
          cpu.gemmNT(m, n, k, x, w, y);
          for (int r = 0; r < m; r++) {
            double num = 0, den = 0;
            for (int c = 0; c < n; c++) {
              double want = 0;
              for (int i = 0; i < k; i++) want += (double) x[r * k + i] * w[c * k + i];
              num += (y[r * n + c] - want) * (y[r * n + c] - want);
              den += want * want;
            }
            double err = Math.sqrt(num / den);
            assertTrue(err < 1e-5, "K " + k + ", " + m + " rows: row " + r + " is " + err + " off (relative) in " + cpu.gemmLibrary());
          }
        }
      }
    }
  }

  /**
   * Two threads running one primitive at once (the backend's row chunks of one column block) give
   * the bits of every other run: with oneDNN's own scratchpad they shared it (AMX's bf16 matmul:
   * 82-162 of 200 two-thread runs differed in a C program; here 1-4 of 20 reruns did).
   */
  @Test
  void rerunsOnTwoThreadsGiveTheSameBits() {
    for (Precision p : new Precision[] {Precision.FP32, Precision.BF16}) {
      if (p == Precision.BF16 && !CpuFeatures.bf16()) continue;
      try (CpuBackend cpu = new CpuBackend(2, true, p)) {
        int m = 576, n = 512, k = 588;
        float[] w = bf16Values(n * k, 1), x = bf16Values(m * k, 1), first = new float[m * n], again = new float[m * n];
        cpu.gemmNT(m, n, k, x, w, first);
        for (int rep = 0; rep < 30; rep++) {
          cpu.gemmNT(m, n, k, x, w, again);
          assertArrayEquals(first, again, p + ": rerun " + rep + " differs from the first run");
        }
      }
    }
  }

  /** Gaussian values times {@code scale}, each a bf16 value (so that rounding them to bf16 changes nothing). */
  private float[] bf16Values(int count, double scale) {
    float[] v = new float[count];
    for (int i = 0; i < count; i++) v[i] = Float.intBitsToFloat(nearestEven((float) (rnd.nextGaussian() * scale)) << 16);
    return v;
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

  /**
   * Many row counts, two outputs per input shape (as in_proj and c_fc share their input's rows):
   * the memory objects by shape fill up and are destroyed to make room between runs, never while a
   * run holds them (session 23: a service's text batches of many lengths crashed the JVM in
   * {@code dnnl_memory::set_data_handle} when the destination's lookup destroyed the source's
   * object). Every result is checked against a double product.
   */
  @Test
  void rowCountsPastTheMemoryObjectBoundStayCorrect() {
    try (CpuBackend cpu = new CpuBackend(1, true)) {
      Assumptions.assumeTrue(cpu.dnnlMemoryEvictions() >= 0, "no oneDNN on this machine");
      int k = 32, n1 = 96, n2 = 64;
      float[] w1 = new float[n1 * k], w2 = new float[n2 * k];
      for (int i = 0; i < w1.length; i++) w1[i] = (float) rnd.nextGaussian();
      for (int i = 0; i < w2.length; i++) w2[i] = (float) rnd.nextGaussian();
      for (int m = 1; m <= 300; m++) {
        float[] x = new float[m * k];
        for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
        for (float[] w : new float[][] {w1, w2}) {
          int n = w.length / k;
          float[] y = new float[m * n];
          cpu.gemmNT(m, n, k, x, w, y);
          for (int r = 0; r < m; r++) {
            for (int c = 0; c < n; c++) {
              double d = 0;
              for (int i = 0; i < k; i++) d += (double) x[r * k + i] * w[c * k + i];
              assertEquals(d, y[r * n + c], 1e-4 * (1 + Math.abs(d)), "m " + m + ", n " + n + ", row " + r + ", column " + c);
            }
          }
        }
      }
      assertTrue(cpu.dnnlMemoryEvictions() >= 2, "the bound was never reached: the test proves nothing (" + cpu.dnnlMemoryEvictions() + ")");
    }
  }

  /**
   * A thread per call (a server's request threads, virtual threads among them): the oneDNN
   * workspaces are as many as the tasks that ran at once, not one per thread that ever called
   * (until session 23 each thread kept one, native stream and scratch included, until the backend
   * closed).
   */
  @Test
  void aThreadPerCallLeavesNoWorkspaceBehind() throws Exception {
    try (CpuBackend cpu = new CpuBackend(2, true)) {
      Assumptions.assumeTrue(cpu.dnnlWorkspaces() >= 0, "no oneDNN on this machine");
      int m = 64, n = 256, k = 64;
      float[] w = new float[n * k], x = new float[m * k];
      for (int i = 0; i < w.length; i++) w[i] = (float) rnd.nextGaussian();
      for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
      float[] want = new float[m * n];
      cpu.gemmNT(m, n, k, x, w, want);
      for (int i = 0; i < 40; i++) {
        float[] y = new float[m * n];
        Thread t = (i % 2 == 0 ? Thread.ofPlatform() : Thread.ofVirtual()).start(() -> cpu.gemmNT(m, n, k, x, w, y));
        t.join();
        assertArrayEquals(want, y, "call " + i);
      }
      // the pool's 2 threads and a caller at a time: a few, whatever the number of calling threads
      assertTrue(cpu.dnnlWorkspaces() <= 4, cpu.dnnlWorkspaces() + " workspaces after 41 calls from 41 threads");
    }
  }

  /**
   * Closing waits for the calls running instead of freeing what they use (a native crash), and a
   * call after closing is refused; after a burst of concurrent calls, the idle workspaces kept are
   * bounded.
   */
  @Test
  void closingWaitsForRunningCallsAndIdleWorkspacesAreBounded() throws Exception {
    CpuBackend cpu = new CpuBackend(2, true);
    Assumptions.assumeTrue(cpu.dnnlWorkspaces() >= 0, "no oneDNN on this machine");
    int m = 256, n = 512, k = 256;
    float[] w = new float[n * k], x = new float[m * k];
    for (int i = 0; i < w.length; i++) w[i] = (float) rnd.nextGaussian();
    for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
    float[] want = new float[m * n];
    cpu.gemmNT(m, n, k, x, w, want);
    // 24 threads at once: each caller runs tasks too, so up to ~26 workspaces are busy together
    java.util.concurrent.CountDownLatch start = new java.util.concurrent.CountDownLatch(1);
    java.util.List<Thread> callers = new java.util.ArrayList<>();
    java.util.concurrent.atomic.AtomicInteger wrong = new java.util.concurrent.atomic.AtomicInteger();
    for (int i = 0; i < 24; i++) {
      callers.add(Thread.ofPlatform().start(() -> {
        float[] y = new float[m * n];
        try {
          start.await();
          for (int r = 0; r < 3; r++) {
            cpu.gemmNT(m, n, k, x, w, y);
            if (!java.util.Arrays.equals(want, y)) wrong.incrementAndGet();
          }
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }));
    }
    start.countDown();
    for (Thread t : callers) t.join();
    assertEquals(0, wrong.get());
    assertTrue(cpu.dnnlWorkspaces() <= 8, cpu.dnnlWorkspaces() + " workspaces kept after the burst (at most 8 idle for 2 threads)");
    // close while calls run: it waits for them; the calls after it are refused
    java.util.concurrent.atomic.AtomicInteger done = new java.util.concurrent.atomic.AtomicInteger(), refused = new java.util.concurrent.atomic.AtomicInteger();
    java.util.List<Thread> late = new java.util.ArrayList<>();
    for (int i = 0; i < 4; i++) {
      late.add(Thread.ofPlatform().start(() -> {
        float[] y = new float[m * n];
        for (int r = 0; r < 20; r++) {
          try {
            cpu.gemmNT(m, n, k, x, w, y);
            done.incrementAndGet();
          } catch (IllegalStateException closed) {
            refused.incrementAndGet();
          }
        }
      }));
    }
    while (done.get() == 0) Thread.onSpinWait();
    cpu.close();
    for (Thread t : late) t.join();
    assertTrue(refused.get() > 0, "no call came after close: " + done.get() + " done");
  }
}
