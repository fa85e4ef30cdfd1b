package dev.jclip.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.Backends;
import dev.jclip.backend.cpu.CpuBackend;
import dev.jclip.backend.cuda.CudaException;
import dev.jclip.graph.Backend;
import dev.jclip.graph.Graph;
import dev.jclip.graph.Node;
import dev.jclip.graph.Op;
import dev.jclip.graph.TensorSpec;
import dev.jclip.io.Checkpoint;
import dev.jclip.model.ClipConfig;
import dev.jclip.testing.Reference;
import dev.jclip.testing.TestRandom;
import dev.jclip.tokenizer.ClipTokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The batch size a {@link Clip} runs: the caller's, else the device's ({@link
 * Backend#defaultBatch()}), and what an encode call does when a GPU runs out of memory ({@code
 * Clip.Retry}): close the idle executors, halve the device's batch, run the caller's batches one at
 * a time, and only then fail. The GPU is stood in for by the CPU backend behind a limit on its
 * live activation memory that throws CUDA's out-of-memory failure, taking turns as a GPU does
 * ({@link Backend#oneRunAtATime()}); the features are always those of the unlimited run.
 */
class ClipBatchSizeTest {
  static Checkpoint ck;
  static ClipConfig cfg;
  static ClipTokenizer tok;
  static Clip.Pixels pixels;
  static float[][] want;

  @BeforeAll
  static void load() throws Exception {
    ck = Checkpoint.open(Reference.dir().resolve("models/vit-b32-tiny/state_dict.pt"));
    cfg = ClipConfig.infer(ck);
    tok = ClipTokenizer.load(Reference.file("bpe_simple_vocab_16e6.txt.gz"));
    Random r = TestRandom.create("ClipBatchSizeTest");
    int per = 3 * cfg.imageResolution() * cfg.imageResolution();
    pixels = new Clip.Pixels(16, cfg.imageResolution(), TestRandom.gaussian(r, 16 * per, 1.0));
    try (Clip one = clip(Clip.Options.DEVICE_BATCH, new Limited(1, Long.MAX_VALUE))) { // one image a graph: the features to match
      want = one.encodeImage(pixels);
    }
  }

  @AfterAll
  static void close() {
    ck.close();
  }

  static Clip clip(int batchSize, Backend backend) {
    Clip.Options o = Clip.Options.defaults().withDevice("cpu").withThreads(2).withBatchSize(batchSize);
    return Clip.create(cfg, ck.tensors(), tok, o, backend);
  }

  /** The peak live activation bytes of encoding the 16 images in batches of {@code batch} (two in flight). */
  static long peak(int batch, int images) {
    Limited b = new Limited(batch, Long.MAX_VALUE);
    try (Clip c = clip(Clip.Options.DEVICE_BATCH, b)) {
      c.encodeImage(pixels.slice(0, images));
      return b.peak;
    }
  }

  @Test
  void theDeviceChoosesTheBatchUnlessTheCallerDoes() {
    assertEquals(Clip.Options.DEVICE_BATCH, Clip.Options.defaults().batchSize());
    try (Clip cpu = clip(Clip.Options.DEVICE_BATCH, new CpuBackend(2, true))) {
      assertEquals(32, cpu.batchSize(), "the CPU's batch");
    }
    try (Clip gpuLike = clip(Clip.Options.DEVICE_BATCH, new Limited(256, Long.MAX_VALUE))) {
      assertEquals(256, gpuLike.batchSize());
    }
    try (Clip set = clip(5, new Limited(256, Long.MAX_VALUE))) {
      assertEquals(5, set.batchSize(), "the caller's batch");
    }
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Clip.Options.defaults().withBatchSize(-1));
    assertTrue(e.getMessage().contains("batch size"), e.getMessage());
  }

  @Test
  void theDevicesBatchIsHalvedUntilItFits() {
    long fitsAtFour = peak(4, 16);
    for (boolean submit : new boolean[] {false, true}) {
      Limited b = new Limited(8, fitsAtFour);
      try (Clip c = clip(Clip.Options.DEVICE_BATCH, b)) {
        float[][] got;
        if (submit) {
          try (Clip.Pending p = c.submitImage(pixels)) {
            got = p.finish();
          }
        } else {
          got = c.encodeImage(pixels);
        }
        assertTrue(b.failures > 0, "the limit was never reached: the test proves nothing");
        assertEquals(4, c.batchSize(), "8 did not fit two in flight; 4 does (submit " + submit + ")");
        assertFeatures(got);
        assertFeatures(c.encodeImage(pixels)); // later calls start at 4
      }
    }
  }

  @Test
  void idleExecutorsAreClosedBeforeTheBatchShrinks() {
    long eight = peak(8, 16);
    Limited b = new Limited(8, Long.MAX_VALUE);
    try (Clip c = clip(Clip.Options.DEVICE_BATCH, b)) {
      // idle executors of other shapes: texts cut at 2 to 9 tokens
      List<String> words = new ArrayList<>();
      for (int n = 1; n <= 8; n++) {
        words.add("dog ".repeat(n).trim());
        c.encodeText(c.tokenize(words.toArray(String[]::new)));
        words.clear();
      }
      long idle = b.live;
      assertTrue(idle > 0, "the texts' executors hold no memory");
      b.limit = eight + idle / 2; // the images fit, but not beside the idle executors
      assertFeatures(c.encodeImage(pixels));
      assertTrue(b.failures > 0, "the limit was never reached: the test proves nothing");
      assertEquals(8, c.batchSize(), "closing the idle executors was enough");
    }
  }

  @Test
  void aBatchSetByTheCallerRunsOneAtATime() {
    long one = peak(8, 8), two = peak(8, 16);
    assertTrue(one < two, "two batches in flight take no more than one: " + one + ", " + two);
    for (boolean submit : new boolean[] {false, true}) {
      Limited b = new Limited(256, one);
      try (Clip c = clip(8, b)) {
        if (submit) {
          try (Clip.Pending p = c.submitImage(pixels)) {
            assertFeatures(p.finish());
          }
        } else {
          assertFeatures(c.encodeImage(pixels));
        }
        assertTrue(b.failures > 0, "the limit was never reached: the test proves nothing");
      }
    }
    Limited tooSmall = new Limited(256, one - 1);
    try (Clip c = clip(8, tooSmall)) {
      RuntimeException e = assertThrows(RuntimeException.class, () -> c.encodeImage(pixels));
      assertTrue(Backends.outOfMemory(e), "the device's failure, as it was: " + e);
    }
  }

  /** A call of fewer items than the batch halves what it ran (3 images: batches of 1), not the batch it did not run (256). */
  @Test
  void aSmallCallHalvesWhatItRan() {
    long ones = peak(1, 3);
    Limited b = new Limited(256, ones);
    try (Clip c = clip(Clip.Options.DEVICE_BATCH, b)) {
      float[][] got = c.encodeImage(pixels.slice(0, 3));
      assertEquals(1, b.failures, "one failure, at 3 images; then batches of 1");
      assertEquals(1, c.batchSize());
      for (int i = 0; i < 3; i++) ClipTest.assertClose(want[i], got[i], 1e-5, "image " + i);
    }
  }

  /** A call that fails all the same leaves the batch and the pipeline as they were. */
  @Test
  void aCallThatFailsAllTheSameChangesNothing() {
    Limited b = new Limited(8, 1);
    try (Clip c = clip(Clip.Options.DEVICE_BATCH, b)) {
      RuntimeException e = assertThrows(RuntimeException.class, () -> c.encodeImage(pixels));
      assertTrue(Backends.outOfMemory(e), String.valueOf(e));
      assertTrue(b.failures > 4, "every step was tried: " + b.failures);
      assertEquals(8, c.batchSize());
      b.limit = Long.MAX_VALUE;
      assertFeatures(c.encodeImage(pixels));
      assertEquals(8, c.batchSize());
    }
  }

  /** The texts' batches (each cut at its own length) halve as the images' do. */
  @Test
  void textsHalveToo() {
    List<String> prompts = new ArrayList<>();
    for (int i = 0; i < 16; i++) prompts.add("a photo of " + "a very ".repeat(i % 5) + "good dog number " + i);
    Clip.Tokens tokens;
    float[][] wantText;
    long fitsAtFour;
    Limited free = new Limited(4, Long.MAX_VALUE);
    try (Clip c = clip(Clip.Options.DEVICE_BATCH, free)) {
      tokens = c.tokenize(prompts, false);
      wantText = c.encodeText(tokens);
      fitsAtFour = free.peak;
    }
    Limited b = new Limited(8, fitsAtFour);
    try (Clip c = clip(Clip.Options.DEVICE_BATCH, b)) {
      float[][] got = c.encodeText(tokens);
      assertTrue(b.failures > 0, "the limit was never reached: the test proves nothing");
      assertEquals(4, c.batchSize());
      for (int i = 0; i < got.length; i++) ClipTest.assertClose(wantText[i], got[i], 1e-5, "text " + i);
    }
  }

  @Test
  void onTheCpuAFailureIsThrownAsItIs() {
    Limited b = new Limited(8, peak(4, 4)); // one batch of 4: less than one of 8
    b.oneRun = false;
    try (Clip c = clip(Clip.Options.DEVICE_BATCH, b)) {
      RuntimeException e = assertThrows(RuntimeException.class, () -> c.encodeImage(pixels));
      assertTrue(Backends.outOfMemory(e), String.valueOf(e));
      assertEquals(8, c.batchSize(), "nothing halved where runs do not take turns");
    }
  }

  static void assertFeatures(float[][] got) {
    assertEquals(want.length, got.length);
    for (int i = 0; i < want.length; i++) ClipTest.assertClose(want[i], got[i], 1e-5, "image " + i);
  }

  /**
   * The CPU backend with a GPU's habits: runs take turns, a default batch of its own, and device
   * memory that runs out: an allocation that would take the live activation bytes over {@code
   * limit} throws the CUDA driver's out-of-memory failure.
   */
  static final class Limited implements Backend {
    final CpuBackend cpu = new CpuBackend(2, true);
    final int batch;
    long limit, live, peak;
    int failures;
    boolean oneRun = true;

    Limited(int batch, long limit) {
      this.batch = batch;
      this.limit = limit;
    }

    /** A buffer counted against the limit (its {@code counted} bytes) until closed. */
    final class Counted implements Buffer {
      final Buffer inner;
      final long counted;
      boolean closed;

      Counted(Buffer inner, long counted) {
        this.inner = inner;
        this.counted = counted;
      }

      @Override
      public long bytes() {
        return inner.bytes();
      }

      @Override
      public void close() {
        if (closed) return;
        closed = true;
        synchronized (Limited.this) {
          live -= counted;
        }
        inner.close();
      }
    }

    static Buffer in(Buffer b) {
      return b instanceof Limited.Counted c ? c.inner : b;
    }

    private synchronized void reserve(long bytes) {
      if (live + bytes > limit) {
        failures++;
        throw new CudaException("cuMemAlloc(" + bytes + " bytes) failed: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory");
      }
      live += bytes;
      peak = Math.max(peak, live);
    }

    @Override
    public String name() {
      return "limited cpu";
    }

    @Override
    public boolean supports(Op op) {
      return cpu.supports(op);
    }

    @Override
    public boolean oneRunAtATime() {
      return oneRun;
    }

    @Override
    public int defaultBatch() {
      return batch;
    }

    @Override
    public int elementBytes(TensorSpec spec) {
      return cpu.elementBytes(spec);
    }

    @Override
    public Graph prepare(Graph graph, Set<String> keep) {
      return cpu.prepare(graph, keep);
    }

    @Override
    public Buffer allocate(long bytes) {
      reserve(bytes);
      return new Counted(cpu.allocate(bytes), bytes);
    }

    /** One executor's buffers, reserved together, as the CUDA backend's single arena is: all or nothing. */
    @Override
    public List<Buffer> allocateAll(long[] bytes) {
      long total = 0;
      for (long b : bytes) total += b;
      reserve(total);
      List<Buffer> out = new ArrayList<>(bytes.length);
      for (long b : bytes) out.add(new Counted(cpu.allocate(b), b));
      return out;
    }

    @Override
    public void write(Buffer dst, TensorSpec spec, Object host) {
      cpu.write(in(dst), spec, host);
    }

    @Override
    public float[] read(Buffer src, TensorSpec spec) {
      return cpu.read(in(src), spec);
    }

    @Override
    public void execute(Node node, List<Buffer> inputs, Buffer output) {
      List<Buffer> ins = new ArrayList<>(inputs.size());
      for (Buffer b : inputs) ins.add(in(b));
      cpu.execute(node, ins, in(output));
    }

    @Override
    public void close() {
      cpu.close();
    }
  }
}
