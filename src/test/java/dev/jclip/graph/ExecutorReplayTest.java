package dev.jclip.graph;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.ReferenceBackend;
import dev.jclip.io.DType;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The executor's replay mode on the CPU, with a backend that records by keeping the node loop (as
 * a CUDA graph keeps its launches) and one whose recording fails (a refused capture).
 */
class ExecutorReplayTest {
  /** The reference backend, with {@link #record} recording, or failing to. */
  static final class RecordingBackend implements Backend {
    final ReferenceBackend ref = new ReferenceBackend();
    final boolean fail;
    int records, replays, executes;

    RecordingBackend(boolean fail) {
      this.fail = fail;
    }

    @Override
    public String name() {
      return "recording";
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
      ref.write(dst, spec, host);
    }

    @Override
    public float[] read(Buffer src, TensorSpec spec) {
      return ref.read(src, spec);
    }

    @Override
    public void execute(Node node, List<Buffer> inputs, Buffer output) {
      executes++;
      ref.execute(node, inputs, output);
    }

    @Override
    public Recording record(Runnable body) {
      records++;
      if (fail) throw new IllegalStateException("capture refused");
      return new Recording() {
        @Override
        public void replay() {
          replays++;
          body.run();
        }

        @Override
        public void close() {}
      };
    }

    @Override
    public void close() {
      ref.close();
    }
  }

  static Graph graph() {
    GraphBuilder g = new GraphBuilder();
    Value x = g.input("x", DType.F32, 2, 3);
    g.output("y", g.add("add", x, x, true));
    return g.build();
  }

  static float[] expected(float[] x) {
    float[] y = new float[x.length];
    for (int i = 0; i < x.length; i++) y[i] = Math.max(2 * x[i], 0f);
    return y;
  }

  @Test
  void replaysTheRecordingFromTheSecondRunWithNewInputs() {
    try (RecordingBackend b = new RecordingBackend(false);
        Executor ex = new Executor(graph(), b, List.of(), true)) {
      for (int run = 0; run < 4; run++) {
        float[] x = {run, -1, 2, -3, 4, 0.5f * run};
        assertArrayEquals(expected(x), ex.run(Map.of("x", x)).get("y"), "run " + run);
        assertEquals(run >= 1, ex.replaying(), "run " + run);
      }
      assertEquals(1, b.records);
      assertEquals(3, b.replays);
      assertEquals(4, b.executes, "one node, run eagerly once and once per replay");
      assertNull(ex.recordingFailure());
    }
  }

  @Test
  void aFailedRecordingFallsBackToRunningNodeByNode() {
    try (RecordingBackend b = new RecordingBackend(true);
        Executor ex = new Executor(graph(), b, List.of(), true)) {
      for (int run = 0; run < 4; run++) {
        float[] x = {-run, 1, -2, 3, -4, run};
        assertArrayEquals(expected(x), ex.run(Map.of("x", x)).get("y"), "run " + run);
        assertFalse(ex.replaying());
      }
      assertEquals(1, b.records, "recording is not retried after it failed");
      assertEquals(4, b.executes);
      assertTrue(ex.recordingFailure() != null && ex.recordingFailure().getMessage().equals("capture refused"));
    }
  }
}
