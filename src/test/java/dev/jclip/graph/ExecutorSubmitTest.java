package dev.jclip.graph;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.ReferenceBackend;
import dev.jclip.io.DType;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * {@link Executor#submit} / {@link Executor#collect}: the protocol (one submitted run per
 * executor), the order of a backend's calls that an asynchronous backend relies on (inputs
 * written, work queued, fence marked; then that fence awaited and the outputs read after it), and
 * two executors interleaved giving what serial runs give.
 */
class ExecutorSubmitTest {
  /** The reference backend, logging its calls and handing out fences that log theirs. */
  static final class LoggingBackend implements Backend {
    final ReferenceBackend ref = new ReferenceBackend();
    final List<String> log = new ArrayList<>();
    int fences;
    boolean failWrites;

    @Override
    public String name() {
      return "logging";
    }

    @Override
    public boolean supports(Op op) {
      return true;
    }

    @Override
    public Buffer allocate(long bytes) {
      return ref.allocate(bytes);
    }

    @Override
    public void write(Buffer dst, TensorSpec spec, Object host) {
      log.add("write");
      if (failWrites) throw new IllegalStateException("upload failed");
      ref.write(dst, spec, host);
    }

    @Override
    public float[] read(Buffer src, TensorSpec spec) {
      log.add("read");
      return ref.read(src, spec);
    }

    @Override
    public float[] read(Buffer src, TensorSpec spec, Fence written) {
      log.add("read after " + written);
      return ref.read(src, spec);
    }

    @Override
    public void execute(Node node, List<Buffer> inputs, Buffer output) {
      log.add("execute " + node.name());
      ref.execute(node, inputs, output);
    }

    @Override
    public Fence newFence() {
      String name = "fence" + fences++;
      return new Fence() {
        @Override
        public void mark() {
          log.add("mark " + name);
        }

        @Override
        public void await() {
          log.add("await " + name);
        }

        @Override
        public void close() {
          log.add("close " + name);
        }

        @Override
        public String toString() {
          return name;
        }
      };
    }

    @Override
    public void close() {
      ref.close();
    }
  }

  /** y = relu(x + x), z = relu(y + x). */
  static Graph graph() {
    GraphBuilder g = new GraphBuilder();
    Value x = g.input("x", DType.F32, 2, 3);
    Value y = g.add("y", x, x, true);
    g.output("z", g.add("z", y, x, true));
    return g.build();
  }

  static float[] expected(float[] x) {
    float[] z = new float[x.length];
    for (int i = 0; i < x.length; i++) z[i] = Math.max(Math.max(2 * x[i], 0f) + x[i], 0f);
    return z;
  }

  static float[] input(int seed) {
    return new float[] {seed, -1, 2 - seed, -3, 0.25f * seed, 1};
  }

  @Test
  void submitQueuesAndMarksThenCollectAwaitsThatFenceAndReads() {
    try (LoggingBackend b = new LoggingBackend();
        Executor ex = new Executor(graph(), b, List.of())) {
      ex.submit(Map.of("x", input(1)));
      assertTrue(ex.submitted());
      assertEquals(List.of("write", "execute y", "execute z", "mark fence0"), b.log);
      b.log.clear();
      assertArrayEquals(expected(input(1)), ex.collect().get("z"));
      assertFalse(ex.submitted());
      assertEquals(List.of("await fence0", "read after fence0"), b.log);
    }
  }

  @Test
  void runIsSubmitThenCollect() {
    try (LoggingBackend b = new LoggingBackend();
        Executor ex = new Executor(graph(), b, List.of())) {
      assertArrayEquals(expected(input(2)), ex.run(Map.of("x", input(2))).get("z"));
      assertEquals(List.of("write", "execute y", "execute z", "mark fence0", "await fence0", "read after fence0"), b.log);
    }
  }

  @Test
  void oneSubmittedRunPerExecutor() {
    try (LoggingBackend b = new LoggingBackend();
        Executor ex = new Executor(graph(), b, List.of())) {
      IllegalStateException e = assertThrows(IllegalStateException.class, ex::collect);
      assertTrue(e.getMessage().contains("nothing submitted"), e.getMessage());
      ex.submit(Map.of("x", input(3)));
      int calls = b.log.size();
      e = assertThrows(IllegalStateException.class, () -> ex.submit(Map.of("x", input(4))));
      assertTrue(e.getMessage().contains("collect()"), e.getMessage());
      assertEquals(calls, b.log.size(), "a refused submit touches nothing");
      e = assertThrows(IllegalStateException.class, ex::resubmit);
      assertTrue(e.getMessage().contains("collect()"), e.getMessage());
      assertArrayEquals(expected(input(3)), ex.collect().get("z"), "the first run's result survives the refused submit");
    }
  }

  @Test
  void twoExecutorsInterleavedGiveWhatSerialRunsGive() {
    try (ReferenceBackend b = new ReferenceBackend();
        Executor a = new Executor(graph(), b, List.of());
        Executor c = new Executor(graph(), b, List.of())) {
      Executor[] ex = {a, c};
      List<float[]> got = new ArrayList<>();
      ex[0].submit(Map.of("x", input(0)));
      for (int i = 1; i < 7; i++) {
        ex[i % 2].submit(Map.of("x", input(i)));
        got.add(ex[(i - 1) % 2].collect().get("z"));
      }
      got.add(ex[0].collect().get("z"));
      for (int i = 0; i < 7; i++) assertArrayEquals(expected(input(i)), got.get(i), "batch " + i);
    }
  }

  @Test
  void resubmitRerunsOnTheInputsLastWritten() {
    try (LoggingBackend b = new LoggingBackend();
        Executor ex = new Executor(graph(), b, List.of())) {
      assertThrows(IllegalStateException.class, ex::resubmit, "no inputs written yet");
      ex.run(Map.of("x", input(5)));
      b.log.clear();
      ex.resubmit();
      ex.await();
      assertArrayEquals(expected(input(5)), ex.collect().get("z"));
      assertEquals(List.of("execute y", "execute z", "mark fence0", "await fence0", "await fence0", "read after fence0"), b.log,
          "no write; await is idempotent");
    }
  }

  @Test
  void aFailedSubmitWaitsForWhatItQueuedAndLeavesTheExecutorUsable() {
    try (LoggingBackend b = new LoggingBackend();
        Executor ex = new Executor(graph(), b, List.of())) {
      IllegalArgumentException missing = assertThrows(IllegalArgumentException.class, () -> ex.submit(Map.of()));
      assertTrue(missing.getMessage().contains("missing graph input x"), missing.getMessage());
      assertThrows(IllegalArgumentException.class, () -> ex.submit(Map.of("x", new float[5])));
      assertTrue(b.log.isEmpty(), "inputs are checked before anything is written: " + b.log);
      b.failWrites = true;
      IllegalStateException e = assertThrows(IllegalStateException.class, () -> ex.submit(Map.of("x", input(6))));
      assertEquals("upload failed", e.getMessage());
      assertEquals(List.of("write", "mark fence0", "await fence0"), b.log);
      assertFalse(ex.submitted());
      b.failWrites = false;
      assertArrayEquals(expected(input(7)), ex.run(Map.of("x", input(7))).get("z"));
    }
  }

  @Test
  void closeWaitsForAnUncollectedRunThenFreesEverything() {
    LoggingBackend b = new LoggingBackend();
    Executor ex = new Executor(graph(), b, List.of());
    ex.submit(Map.of("x", input(8)));
    b.log.clear();
    ex.close();
    assertEquals(List.of("await fence0", "close fence0"), b.log);
    ex.close(); // idempotent
    assertEquals(2, b.log.size());
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> ex.submit(Map.of("x", input(9))));
    assertTrue(e.getMessage().contains("closed"), e.getMessage());
  }
}
