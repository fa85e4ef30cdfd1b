package dev.jclip.backend.cpu;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.io.Tensor;
import dev.jclip.testing.TestRandom;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * oneDNN's f32 JIT GEMM points rsp into the C heap while it runs (oneDNN issue 4845): a signal
 * delivered then writes its frame over the heap. JFR's method sampling crashed OpProfile that way
 * about every other run. {@link Dnnl#execute} holds asynchronous signals off while a primitive
 * runs; these tests check the mask and that LINEAR survives a storm of handled signals.
 */
class DnnlSignalTest {
  private static final int SIGWINCH = 28, SIGPROF = 27, SIGUSR2 = 12, SIGSEGV = 11, SIGBUS = 7;
  private final Random rnd = TestRandom.create("DnnlSignalTest");

  private static Dnnl dnnlOrSkip() {
    try {
      return Dnnl.get();
    } catch (IllegalStateException e) {
      Assumptions.abort("oneDNN not available: " + e.getMessage());
      return null;
    }
  }

  @Test
  void asynchronousSignalsAreBlockedOnlyWhileHeld() throws Throwable {
    Dnnl d = dnnlOrSkip();
    assertFalse(d.blockedHere(SIGWINCH), "precondition: SIGWINCH not blocked on the test thread");
    boolean[] seen = new boolean[5];
    try (Arena a = Arena.ofConfined()) {
      d.withSignalsHeld(a.allocate(Dnnl.SIGSET_BYTES, 8), () -> {
        seen[0] = d.blockedHere(SIGWINCH);
        seen[1] = d.blockedHere(SIGPROF); // async-profiler, JFR's CPU-time sampler
        seen[2] = d.blockedHere(SIGUSR2); // HotSpot's suspend/resume signal (JFR's method sampler)
        seen[3] = d.blockedHere(SIGSEGV);
        seen[4] = d.blockedHere(SIGBUS);
      });
    }
    assertTrue(seen[0] && seen[1] && seen[2], "asynchronous signals are blocked while a primitive runs");
    assertFalse(seen[3] || seen[4], "faults stay deliverable, so that a crash reaches the JVM");
    assertFalse(d.blockedHere(SIGWINCH), "the thread's mask is restored afterwards");
    assertFalse(d.blockedHere(SIGPROF), "the thread's mask is restored afterwards");
  }

  @Test
  void maskIsRestoredWhenTheCallsFail() throws Throwable {
    Dnnl d = dnnlOrSkip();
    try (Arena a = Arena.ofConfined()) {
      IllegalStateException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class,
          () -> d.withSignalsHeld(a.allocate(Dnnl.SIGSET_BYTES, 8), () -> {
            throw new IllegalStateException("boom");
          }));
      assertEquals("boom", e.getMessage());
    }
    assertFalse(d.blockedHere(SIGWINCH));
  }

  /**
   * Without the mask this aborts the (forked) test JVM within a second ("corrupted size vs.
   * prev_size", "malloc(): invalid size"): LINEAR at the text tower's batch-1 shapes in fp32 while
   * another thread sends this one SIGWINCH, which has a handler here, every few tens of µs.
   */
  @Test
  void fp32LinearSurvivesASignalStorm() throws Throwable {
    Dnnl d = dnnlOrSkip();
    Linker l = Linker.nativeLinker();
    MethodHandle self = l.downcallHandle(l.defaultLookup().find("pthread_self").orElseThrow(), FunctionDescriptor.of(JAVA_LONG));
    MethodHandle kill = l.downcallHandle(l.defaultLookup().find("pthread_kill").orElseThrow(),
        FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_INT));
    sun.misc.Signal winch = new sun.misc.Signal("WINCH");
    AtomicLong handled = new AtomicLong();
    sun.misc.SignalHandler previous = sun.misc.Signal.handle(winch, s -> handled.incrementAndGet());
    AtomicBoolean stop = new AtomicBoolean();
    long target = (long) self.invokeExact();
    AtomicLong sent = new AtomicLong();
    // The sender only signals this thread while this method runs (it is joined before returning),
    // so the pthread_t stays valid.
    Thread sender = new Thread(() -> {
      try {
        while (!stop.get()) {
          int rc = (int) kill.invokeExact(target, SIGWINCH);
          if (rc != 0) throw new IllegalStateException("pthread_kill: error " + rc);
          sent.incrementAndGet();
          Thread.sleep(0, 20_000);
        }
      } catch (Throwable t) {
        throw new RuntimeException(t);
      }
    }, "signal-storm");
    int[][] shapes = {{77, 1536, 512}, {77, 512, 512}, {77, 2048, 512}, {77, 512, 2048}, {1, 512, 512}};
    try (DnnlLinear lin = new DnnlLinear(d, Dnnl.F32, 1)) {
      Tensor[] w = new Tensor[shapes.length];
      float[][] b = new float[shapes.length][];
      for (int i = 0; i < shapes.length; i++) {
        int n = shapes[i][1], k = shapes[i][2];
        float[] v = new float[n * k];
        for (int j = 0; j < v.length; j++) v[j] = (float) rnd.nextGaussian();
        w[i] = Tensor.ofFloats("w" + i, new long[] {n, k}, v);
        b[i] = new float[n];
      }
      Tensor bias = Tensor.ofFloats("b", new long[] {1}, new float[1]);
      ScalarKernels kernels = new ScalarKernels();
      sender.start();
      long end = System.nanoTime() + 1_500_000_000L;
      int calls = 0;
      try {
        while (System.nanoTime() < end) {
          for (int i = 0; i < shapes.length; i++) {
            int m = shapes[i][0], n = shapes[i][1], k = shapes[i][2];
            float[] x = new float[m * k];
            for (int j = 0; j < x.length; j++) x[j] = (float) rnd.nextGaussian();
            lin.run(m, n, k, x, w[i], bias, b[i], 1, new float[m * n], kernels, (cnt, work, body) -> body.run(0, cnt));
            calls++;
          }
        }
      } finally {
        stop.set(true);
        sender.join();
        sun.misc.Signal.handle(winch, previous);
      }
      assertTrue(sent.get() > 1000, "the storm sent " + sent.get() + " signals");
      assertTrue(calls > 10, "only " + calls + " GEMMs ran");
    }
  }
}
