package dev.jclip.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The encoder stage with a model that keeps a batch in flight (as a GPU does: submitImages queues
 * the batch, finish waits for it): the same files, byte for byte, as with a model that encodes in
 * submitImages; and a batch that fails does not take the batch in flight before it with it.
 */
class EmbedJobPipelineTest {
  static final int R = EmbedJobTest.R;

  @TempDir static Path corpusDir;
  @TempDir Path tmp;
  static Path list;
  static Path csv;

  @BeforeAll
  static void makeCorpus() throws Exception {
    SplittableRandom rnd = new SplittableRandom(11);
    List<String> lines = new ArrayList<>();
    for (int i = 0; i < 150; i++) {
      Path f = corpusDir.resolve(String.format("img_%03d.png", i));
      if (i % 23 == 5) {
        Files.write(f, new byte[] {1, 2, 3}); // a bad file: the batch holding it has a hole
      } else {
        int w = 4 + rnd.nextInt(30), h = 4 + rnd.nextInt(30);
        BufferedImage im = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        int base = rnd.nextInt(0xffffff);
        for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) im.setRGB(x, y, base ^ (x * 29 + y * 13));
        ImageIO.write(im, "png", f.toFile());
      }
      lines.add(f.toString());
    }
    list = corpusDir.resolve("list.txt");
    Files.write(list, lines);
    StringBuilder t = new StringBuilder("filepath,caption\n");
    for (int i = 0; i < lines.size(); i++) t.append(lines.get(i)).append(",caption number ").append(i).append('\n');
    csv = corpusDir.resolve("captions.csv");
    Files.writeString(csv, t);
  }

  /**
   * TestEncoder's rows, computed only when a batch is finished. Submit copies the pixels it needs
   * and then overwrites the caller's buffer with NaN: the job may refill the buffer as soon as
   * submit returns, and must not read it again.
   */
  static final class DeferredEncoder extends TestEncoder.Wrapping {
    int submits;
    int inFlight;
    int maxInFlight;
    int failSubmitAt = -1;
    int failFinishAt = -1;
    final List<Integer> finished = new ArrayList<>();
    final List<Integer> abandoned = new ArrayList<>();

    DeferredEncoder() {
      super(R);
    }

    @Override
    public void encodeImages(float[] pixels, int count, float[] out) {
      throw new AssertionError("the job submits image batches");
    }

    @Override
    public Pending submitImages(float[] pixels, int count, float[] out) {
      int k = submits++;
      if (k == failSubmitAt) throw new IllegalStateException("submit " + k + " failed");
      int n = count * 3 * R * R;
      float[] copy = Arrays.copyOf(pixels, n);
      Arrays.fill(pixels, 0, n, Float.NaN);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      return new Pending() {
        boolean over;

        @Override
        public void finish() {
          if (k == failFinishAt) throw new IllegalStateException("batch " + k + " failed on the device");
          inner.encodeImages(copy, count, out);
          over = true;
          inFlight--;
          finished.add(k);
        }

        @Override
        public void close() {
          if (over) return;
          over = true;
          inFlight--;
          abandoned.add(k);
        }
      };
    }

    @Override
    public void encodeTexts(List<String> texts, float[] out) {
      throw new AssertionError("the job submits text batches");
    }

    @Override
    public Pending submitTexts(List<String> texts, float[] out) {
      List<String> copy = List.copyOf(texts);
      return () -> inner.encodeTexts(copy, out);
    }
  }

  @Test
  void aBatchInFlightGivesTheSameFilesAsEncodingInSubmit() throws Exception {
    Path sync = tmp.resolve("sync");
    EmbedJob.Result a = EmbedJob.run(EmbedJobTest.options(list.toString(), sync, 8, 40), new TestEncoder(R, 0));
    Path piped = tmp.resolve("piped");
    DeferredEncoder d = new DeferredEncoder();
    EmbedJob.Result b = EmbedJob.run(EmbedJobTest.options(list.toString(), piped, 8, 40), d);
    assertEquals(a.embedded(), b.embedded());
    assertEquals(a.errors(), b.errors());
    assertTrue(a.errors() > 0, "the corpus has bad files");
    EmbedJobTest.assertSameTree(sync, piped);
    assertEquals(2, d.maxInFlight, "one batch in flight while the next is submitted");
    assertEquals(0, d.inFlight);
    assertEquals(d.submits, d.finished.size());
    for (int i = 0; i < d.finished.size(); i++) assertEquals(i, d.finished.get(i), "batches finish in order");
  }

  @Test
  void captionsInFlightGiveTheSameFiles() throws Exception {
    Path sync = tmp.resolve("csync");
    EmbedJob.run(EmbedJobTest.options(csv.toString(), sync, 8, 64), new TestEncoder(R, 0));
    Path piped = tmp.resolve("cpiped");
    EmbedJob.run(EmbedJobTest.options(csv.toString(), piped, 8, 64), new DeferredEncoder());
    assertTrue(Files.exists(piped.resolve("text_emb/text_emb_0.npy")));
    EmbedJobTest.assertSameTree(sync, piped);
  }

  @Test
  void aFailedJobWithABatchInFlightResumesToTheSameFiles() throws Exception {
    Path reference = tmp.resolve("ref");
    EmbedJob.run(EmbedJobTest.options(list.toString(), reference, 8, 16), new TestEncoder(R, 0));
    Path out = tmp.resolve("out");
    DeferredEncoder failing = new DeferredEncoder();
    failing.failSubmitAt = 9;
    IllegalStateException e =
        assertThrows(IllegalStateException.class, () -> EmbedJob.run(EmbedJobTest.options(list.toString(), out, 8, 16), failing));
    assertEquals("submit 9 failed", e.getMessage());
    assertEquals(0, failing.inFlight, "no batch left in flight");
    assertTrue(failing.finished.contains(8), "the batch in flight when batch 9 failed was finished: " + failing.finished);
    EmbedJob.run(EmbedJobTest.options(list.toString(), out, 8, 16), new DeferredEncoder());
    EmbedJobTest.assertSameTree(reference, out);
  }

  /** Five batches of at most three images, in pooled buffers of three. */
  static final int[] COUNTS = {3, 3, 2, 3, 1};

  static List<float[]> batches() {
    List<float[]> b = new ArrayList<>();
    SplittableRandom r = new SplittableRandom(5);
    for (int count : COUNTS) {
      float[] p = new float[3 * 3 * R * R]; // a pooled buffer may hold more than its batch
      for (int i = 0; i < count * 3 * R * R; i++) p[i] = (float) r.nextGaussian();
      b.add(p);
    }
    return b;
  }

  /** The rows a synchronous encoder hands on, normalised. */
  static List<float[]> expectedRows() {
    List<float[]> want = new ArrayList<>();
    List<float[]> in = batches();
    for (int i = 0; i < in.size(); i++) {
      float[] rows = new float[COUNTS[i] * TestEncoder.E];
      new TestEncoder(R, 0).encodeImages(in.get(i), COUNTS[i], rows);
      EmbedJob.normalize(rows, TestEncoder.E);
      want.add(rows);
    }
    return want;
  }

  @Test
  void theStageHandsOnEveryBatchInOrder() throws Exception {
    List<float[]> want = expectedRows();
    for (BatchEncoder model : List.of(new TestEncoder(R, 0), new DeferredEncoder())) {
      List<float[]> got = new ArrayList<>();
      EmbedJob.runEncoderStage(model, batches(), COUNTS, got);
      assertEquals(want.size(), got.size());
      for (int i = 0; i < want.size(); i++) assertArrayEquals(want.get(i), got.get(i), model + " batch " + i);
    }
  }

  @Test
  void aBatchThatFailsToSubmitDoesNotLoseTheBatchInFlight() throws Exception {
    List<float[]> want = expectedRows();
    DeferredEncoder d = new DeferredEncoder();
    d.failSubmitAt = 3;
    List<float[]> got = new ArrayList<>();
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> EmbedJob.runEncoderStage(d, batches(), COUNTS, got));
    assertEquals("submit 3 failed", e.getMessage());
    assertEquals(3, got.size(), "batches 0-2 handed on, 2 was in flight when 3 failed");
    for (int i = 0; i < 3; i++) assertArrayEquals(want.get(i), got.get(i), "batch " + i);
    assertEquals(0, d.inFlight);

    // The same with a model that encodes in submit (the synchronous stage's behaviour).
    TestEncoder inner = new TestEncoder(R, 0);
    BatchEncoder sync = new BatchEncoder() {
      int calls;

      @Override
      public int embedDim() {
        return inner.embedDim();
      }

      @Override
      public int imageSize() {
        return R;
      }

      @Override
      public void encodeImages(float[] pixels, int count, float[] out) {
        if (calls++ == 3) throw new IllegalStateException("encode 3 failed");
        inner.encodeImages(pixels, count, out);
      }

      @Override
      public void encodeTexts(List<String> texts, float[] out) {}
    };
    List<float[]> got2 = new ArrayList<>();
    assertThrows(IllegalStateException.class, () -> EmbedJob.runEncoderStage(sync, batches(), COUNTS, got2));
    assertEquals(3, got2.size());
    for (int i = 0; i < 3; i++) assertArrayEquals(want.get(i), got2.get(i), "synchronous batch " + i);
  }

  @Test
  void aBatchThatFailsOnTheDeviceIsAbandonedWithTheOneAfterIt() throws Exception {
    List<float[]> want = expectedRows();
    DeferredEncoder d = new DeferredEncoder();
    d.failFinishAt = 2;
    List<float[]> got = new ArrayList<>();
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> EmbedJob.runEncoderStage(d, batches(), COUNTS, got));
    assertEquals("batch 2 failed on the device", e.getMessage());
    assertEquals(2, got.size(), "batches 0 and 1 handed on");
    for (int i = 0; i < 2; i++) assertArrayEquals(want.get(i), got.get(i), "batch " + i);
    assertEquals(0, d.inFlight, "batch 3, submitted before 2 was finished, is abandoned");
    assertEquals(List.of(2, 3), d.abandoned);
  }
}
