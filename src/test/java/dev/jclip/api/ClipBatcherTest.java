package dev.jclip.api;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.cpu.CpuBackend;
import dev.jclip.io.Checkpoint;
import dev.jclip.model.ClipConfig;
import dev.jclip.testing.Reference;
import dev.jclip.testing.TestRandom;
import dev.jclip.tokenizer.ClipTokenizer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;

/**
 * {@link ClipBatcher}: requests from many threads merged into batches, each request given its own
 * rows back. Most tests run a stand-in model whose features say which item they came from and
 * which can hold a batch until the test lets it go, so that what queues up meanwhile is known; the
 * last ones run the tiny reference ViT-B/32 on the CPU, and on the CPU backend taking turns as a
 * GPU does, against {@link Clip}'s own calls.
 */
class ClipBatcherTest {
  static final int RES = 2, PER = 3 * RES * RES, CONTEXT = 8, VOCAB = 100;

  @Test
  void paddedSizesComeFromAShortList() {
    int[][] cases = {{1, 256, 1}, {2, 256, 2}, {3, 256, 4}, {5, 256, 8}, {9, 256, 16}, {16, 256, 16}, {17, 256, 32}, {33, 256, 64},
        {200, 256, 224}, {255, 256, 256}, {256, 256, 256}, {97, 100, 100}, {20, 24, 24}, {3, 3, 3}, {7, 6, 7}};
    for (int[] c : cases) assertEquals(c[2], ClipBatcher.paddedSize(c[0], c[1]), c[0] + " items, batch " + c[1]);
    java.util.Set<Integer> sizes = new java.util.TreeSet<>();
    for (int n = 1; n <= 256; n++) {
      int s = ClipBatcher.paddedSize(n, 256);
      assertTrue(s >= n && s <= 256, n + " -> " + s);
      sizes.add(s);
    }
    assertEquals(List.of(1, 2, 4, 8, 16, 32, 64, 96, 128, 160, 192, 224, 256), List.copyOf(sizes), "13 shapes for batches of 256");
  }

  @Test
  void requestsQueuedBehindABatchRunAsOneAndEachGetsItsOwnRows() throws Exception {
    for (boolean padding : new boolean[] {true, false}) {
      Fake m = new Fake(32, padding);
      try (ClipBatcher b = new ClipBatcher(m, ClipBatcher.Options.defaults())) {
        m.hold();
        CompletableFuture<float[][]> first = b.submitImages(images(1, 1000));
        m.awaitHeld();
        List<CompletableFuture<float[][]>> rest = new ArrayList<>();
        ExecutorService callers = Executors.newFixedThreadPool(10);
        try {
          List<Future<CompletableFuture<float[][]>>> submitted = new ArrayList<>();
          for (int i = 0; i < 10; i++) {
            int id = i;
            submitted.add(callers.submit(() -> b.submitImages(images(1, id))));
          }
          for (Future<CompletableFuture<float[][]>> f : submitted) rest.add(f.get(10, TimeUnit.SECONDS));
        } finally {
          callers.shutdown();
        }
        await(() -> b.stats().queued() == 10);
        m.release();
        assertEquals(1000, id(first.get(10, TimeUnit.SECONDS)[0]));
        for (int i = 0; i < 10; i++) assertEquals(i, id(rest.get(i).get(10, TimeUnit.SECONDS)[0]), "request " + i + "'s own row");
        assertEquals(List.of(1, padding ? 16 : 10), m.sizes(), "the ten queued requests ran as one batch");
        ClipBatcher.Stats s = b.stats();
        assertEquals(11, s.requests());
        assertEquals(11, s.items());
        assertEquals(2, s.batches());
        assertEquals(padding ? 6 : 0, s.paddedRows());
        assertEquals(5.5, s.meanBatch(), 1e-12);
      }
    }
  }

  @Test
  void aRequestLargerThanTheBatchIsCutAndComesBackInOrder() throws Exception {
    Fake m = new Fake(4, true);
    try (ClipBatcher b = new ClipBatcher(m, ClipBatcher.Options.defaults().withMaxQueued(100))) {
      m.hold();
      CompletableFuture<float[][]> first = b.submitImages(images(1, 500));
      m.awaitHeld();
      CompletableFuture<float[][]> big = b.submitImages(images(10, 0));
      CompletableFuture<float[][]> small = b.submitImages(images(1, 100));
      m.release();
      first.get(10, TimeUnit.SECONDS);
      float[][] rows = big.get(10, TimeUnit.SECONDS);
      assertEquals(10, rows.length);
      for (int i = 0; i < 10; i++) assertEquals(i, id(rows[i]));
      assertEquals(100, id(small.get(10, TimeUnit.SECONDS)[0]));
      assertEquals(List.of(1, 4, 4, 4), m.sizes(), "10 + 1 items in batches of 4 (the last padded from 3)");
      assertEquals(1, b.stats().paddedRows());
    }
  }

  @Test
  void theOldestRequestsKindGoesFirstAndTextsKeepTheirLengths() throws Exception {
    Fake m = new Fake(32, false);
    try (ClipBatcher b = new ClipBatcher(m, ClipBatcher.Options.defaults())) {
      m.hold();
      CompletableFuture<float[][]> first = b.submitImages(images(1, 0));
      m.awaitHeld();
      CompletableFuture<float[][]> t1 = b.submitTexts(text(3, 7, 11));
      CompletableFuture<float[][]> i1 = b.submitImages(images(2, 20));
      CompletableFuture<float[][]> t2 = b.submitTexts(text(5, 9, 13, 17, 19, 23)); // longer than t1's texts
      m.release();
      first.get(10, TimeUnit.SECONDS);
      float[][] a = t1.get(10, TimeUnit.SECONDS), c = t2.get(10, TimeUnit.SECONDS), i = i1.get(10, TimeUnit.SECONDS);
      assertEquals(List.of("image", "text", "image"), m.kinds());
      assertEquals(List.of(1, 2, 2), m.sizes());
      assertEquals(3 + 7 + 11, a[0][0], "t1's ids, whatever the batch's length");
      assertEquals(6, a[0][1], "t1 ran at t2's length, in one batch");
      assertEquals(5 + 9 + 13 + 17 + 19 + 23, c[0][0]);
      assertEquals(20, id(i[0]));
      assertEquals(21, id(i[1]));
    }
  }

  @Test
  void aFailedBatchFailsItsRequestsAndTheNextOnesRun() throws Exception {
    Fake m = new Fake(32, false);
    m.failRun = 2;
    m.failure = new IllegalStateException("the device fell over");
    try (ClipBatcher b = new ClipBatcher(m, ClipBatcher.Options.defaults())) {
      m.hold();
      CompletableFuture<float[][]> first = b.submitImages(images(1, 0));
      m.awaitHeld();
      CompletableFuture<float[][]> x = b.submitImages(images(1, 1)), y = b.submitImages(images(2, 2));
      m.release();
      first.get(10, TimeUnit.SECONDS);
      for (CompletableFuture<float[][]> f : List.of(x, y)) {
        java.util.concurrent.ExecutionException e = assertThrows(java.util.concurrent.ExecutionException.class, () -> f.get(10, TimeUnit.SECONDS));
        assertEquals("the device fell over", e.getCause().getMessage());
      }
      assertEquals(7, id(b.encodeImage(images(1, 7))[0]), "the batcher goes on");
      assertEquals(1, b.stats().failedBatches());
    }
  }

  @Test
  void aBlockingCallThrowsTheDevicesFailureAsItIs() {
    Fake m = new Fake(32, false);
    try (ClipBatcher b = new ClipBatcher(m, ClipBatcher.Options.defaults())) {
      m.failRun = 1;
      m.failure = new IllegalStateException("out of memory, say");
      IllegalStateException e = assertThrows(IllegalStateException.class, () -> b.encodeImage(images(1, 0)));
      assertEquals("out of memory, say", e.getMessage());
    }
  }

  @Test
  void badRequestsAreRefusedAloneWhenSubmitted() {
    Fake m = new Fake(32, false);
    try (ClipBatcher b = new ClipBatcher(m, ClipBatcher.Options.defaults())) {
      IllegalArgumentException res = assertThrows(IllegalArgumentException.class, () -> b.submitImages(new Clip.Pixels(1, 3, new float[27])));
      assertTrue(res.getMessage().contains("3 px") && res.getMessage().contains("needs 2"), res.getMessage());
      IllegalArgumentException id = assertThrows(IllegalArgumentException.class, () -> b.submitTexts(new Clip.Tokens(2, 3, new int[] {1, 2, 3, 4, VOCAB, 6})));
      assertTrue(id.getMessage().contains("token id 100 of text 1, position 1") && id.getMessage().contains("[0, 100)"), id.getMessage());
      assertThrows(IllegalArgumentException.class, () -> b.submitTexts(new Clip.Tokens(1, 1, new int[] {-1})));
      IllegalArgumentException len = assertThrows(IllegalArgumentException.class, () -> b.submitTexts(new Clip.Tokens(1, CONTEXT + 1, new int[CONTEXT + 1])));
      assertTrue(len.getMessage().contains("exceed the context length 8"), len.getMessage());
      assertEquals(0, b.stats().requests());
      assertEquals(0, m.sizes().size(), "nothing ran");
      assertEquals(0, b.submitImages(new Clip.Pixels(0, RES, new float[0])).join().length, "an empty request is done at once");
    }
  }

  @Test
  void aFullQueueRefusesRequestsUntilItDrains() throws Exception {
    Fake m = new Fake(4, false);
    try (ClipBatcher b = new ClipBatcher(m, ClipBatcher.Options.defaults().withMaxQueued(5))) {
      m.hold();
      CompletableFuture<float[][]> first = b.submitImages(images(1, 0));
      m.awaitHeld();
      CompletableFuture<float[][]> a = b.submitImages(images(3, 10));
      CompletableFuture<float[][]> c = b.submitImages(images(2, 20));
      RejectedExecutionException e = assertThrows(RejectedExecutionException.class, () -> b.submitImages(images(1, 30)));
      assertTrue(e.getMessage().contains("holds 5 items (at most 5)"), e.getMessage());
      assertEquals(1, b.stats().rejected());
      m.release();
      for (CompletableFuture<float[][]> f : List.of(first, a, c)) f.get(10, TimeUnit.SECONDS);
      await(() -> b.stats().queued() == 0);
      assertEquals(40, id(b.submitImages(images(9, 40)).get(10, TimeUnit.SECONDS)[0]), "a request above the bound, taken when nothing waits");
    }
  }

  @Test
  void closingRunsWhatIsQueuedAndRefusesTheRest() throws Exception {
    Fake m = new Fake(32, false);
    ClipBatcher b = new ClipBatcher(m, ClipBatcher.Options.defaults());
    m.hold();
    CompletableFuture<float[][]> first = b.submitImages(images(1, 0));
    m.awaitHeld();
    CompletableFuture<float[][]> queued = b.submitTexts(text(4));
    Thread closer = Thread.ofPlatform().start(b::close);
    await(() -> closer.getState() == Thread.State.WAITING); // in close, waiting for the dispatcher
    RejectedExecutionException refused = assertThrows(RejectedExecutionException.class, () -> b.submitImages(images(1, 9)));
    assertTrue(refused.getMessage().contains("closed"), refused.getMessage());
    assertTrue(closer.isAlive(), "close waits for the queued requests");
    m.release();
    closer.join(10_000);
    assertFalse(closer.isAlive());
    assertEquals(0, id(first.get()[0]));
    assertEquals(4, queued.get()[0][0], "run before the batcher ended");
  }

  @Test
  void aCancelledRequestsRowsAreNotRun() throws Exception {
    Fake m = new Fake(32, false);
    try (ClipBatcher b = new ClipBatcher(m, ClipBatcher.Options.defaults())) {
      m.hold();
      CompletableFuture<float[][]> first = b.submitImages(images(1, 0));
      m.awaitHeld();
      CompletableFuture<float[][]> gone = b.submitImages(images(5, 10));
      CompletableFuture<float[][]> kept = b.submitImages(images(2, 20));
      assertTrue(gone.cancel(false));
      m.release();
      first.get(10, TimeUnit.SECONDS);
      assertEquals(20, id(kept.get(10, TimeUnit.SECONDS)[0]));
      assertEquals(List.of(1, 2), m.sizes());
      assertThrows(CancellationException.class, gone::join);
    }
  }

  @Test
  void onADeviceThatTakesTurnsAFullBatchIsSubmittedBeforeThePreviousIsReadBack() throws Exception {
    Fake m = new Fake(4, true);
    m.async = true;
    try (ClipBatcher b = new ClipBatcher(m, ClipBatcher.Options.defaults())) {
      m.hold();
      CompletableFuture<float[][]> first = b.submitImages(images(4, 0));
      m.awaitHeld(); // the first batch is being submitted: the next two queue meanwhile
      CompletableFuture<float[][]> full = b.submitImages(images(4, 10));
      CompletableFuture<float[][]> partial = b.submitImages(images(1, 20));
      m.release();
      for (CompletableFuture<float[][]> f : List.of(first, full, partial)) f.get(10, TimeUnit.SECONDS);
      assertEquals(List.of("submit 4", "submit 4", "finish 1", "finish 2", "submit 1", "finish 3"), m.events(),
          "the full batch queued behind the first; the partial one waited for the device");
    }
  }

  @Test
  void aDelayWaitsForMoreRequestsButNotPastAFullBatch() throws Exception {
    Fake m = new Fake(4, false);
    try (ClipBatcher b = new ClipBatcher(m, ClipBatcher.Options.defaults().withMaxDelay(Duration.ofSeconds(30)))) {
      CompletableFuture<float[][]> x = b.submitImages(images(1, 0)), y = b.submitImages(images(2, 1));
      Thread.sleep(200);
      assertEquals(0, m.sizes().size(), "the partial batch waits for more");
      CompletableFuture<float[][]> z = b.submitImages(images(1, 3)); // fills the batch of 4
      for (CompletableFuture<float[][]> f : List.of(x, y, z)) f.get(10, TimeUnit.SECONDS);
      assertEquals(List.of(4), m.sizes());
      CompletableFuture<float[][]> w = b.submitImages(images(1, 4));
      Thread.sleep(100);
      assertFalse(w.isDone());
      b.close(); // closing cuts the wait short
      assertEquals(4, id(w.get(10, TimeUnit.SECONDS)[0]));
    }
    assertThrows(IllegalArgumentException.class, () -> ClipBatcher.Options.defaults().withMaxDelay(Duration.ofMillis(-1)));
    assertThrows(IllegalArgumentException.class, () -> ClipBatcher.Options.defaults().withMaxBatch(-1));
  }

  /**
   * A request's last rows run alone, padded up to exactly its size, are still its last rows (the
   * batch is not the request as it came: a desk review found its first rows sent again).
   */
  @Test
  void theRestOfASplitRequestPaddedToItsSizeIsStillItsRest() throws Exception {
    Fake m = new Fake(8, true);
    try (ClipBatcher b = new ClipBatcher(m, ClipBatcher.Options.defaults())) {
      m.hold();
      CompletableFuture<float[][]> first = b.submitImages(images(1, 500));
      m.awaitHeld();
      CompletableFuture<float[][]> seven = b.submitImages(images(7, 100)), four = b.submitImages(images(4, 0));
      m.release();
      first.get(10, TimeUnit.SECONDS);
      float[][] r7 = seven.get(10, TimeUnit.SECONDS), r4 = four.get(10, TimeUnit.SECONDS);
      for (int i = 0; i < 7; i++) assertEquals(100 + i, id(r7[i]));
      for (int i = 0; i < 4; i++) assertEquals(i, id(r4[i]), "row " + i + " of the request cut 1 + 3");
      assertEquals(List.of(1, 8, 4), m.sizes(), "7 + 1 in one batch; the other 3 padded to 4");
    }
  }

  /** Two batches in flight that do not fit: the first is read back, the second tried again, and the batcher runs one at a time from then on. */
  @Test
  void twoBatchesInFlightThatDoNotFitRunOneAtATime() throws Exception {
    Fake m = new Fake(4, true);
    m.async = true;
    m.oneInFlightOnly = true;
    try (ClipBatcher b = new ClipBatcher(m, ClipBatcher.Options.defaults())) {
      m.hold();
      CompletableFuture<float[][]> first = b.submitImages(images(4, 0));
      m.awaitHeld();
      CompletableFuture<float[][]> second = b.submitImages(images(4, 10)), third = b.submitImages(images(4, 20));
      CompletableFuture<float[][]> fourth = b.submitImages(images(4, 30));
      m.release();
      int k = 0;
      for (CompletableFuture<float[][]> f : List.of(first, second, third, fourth)) assertEquals(10 * k++, id(f.get(10, TimeUnit.SECONDS)[0]));
      assertEquals(1, m.outOfMemory, "one failure, then no two in flight");
      assertEquals(List.of(true, false, true, true, true), m.retries(), "the model's own retry only with nothing else in flight");
      assertEquals(List.of("submit 4", "submit 4", "finish 1", "submit 4", "finish 3", "submit 4", "finish 4", "submit 4", "finish 5"), m.events());
      assertEquals(0, b.stats().failedBatches());
    }
  }

  /** What a caller chains to a future runs off the dispatcher: it may wait for the batcher, or close it. */
  @Test
  void whatIsChainedToAFutureMayWaitForTheBatcher() throws Exception {
    Fake m = new Fake(8, false);
    ClipBatcher b = new ClipBatcher(m, ClipBatcher.Options.defaults());
    m.hold(); // chained before the future completes
    CompletableFuture<Integer> chained = b.submitImages(images(1, 1)).thenApply(r -> id(b.encodeImage(images(1, 2))[0]));
    m.awaitHeld();
    m.release();
    assertEquals(2, chained.get(10, TimeUnit.SECONDS));
    m.hold();
    CompletableFuture<Void> closing = b.submitImages(images(1, 3)).thenRun(b::close);
    m.awaitHeld();
    m.release();
    closing.get(10, TimeUnit.SECONDS);
    assertThrows(RejectedExecutionException.class, () -> b.submitImages(images(1, 4)));
  }

  /** A fault of the dispatcher itself fails the waiting requests and refuses new ones, rather than leaving them waiting forever. */
  @Test
  void aFaultOfTheDispatcherFailsTheWaitingRequests() throws Exception {
    Fake m = new Fake(8, false);
    try (ClipBatcher b = new ClipBatcher(m, ClipBatcher.Options.defaults())) {
      m.hold();
      CompletableFuture<float[][]> first = b.submitImages(images(1, 0));
      m.awaitHeld();
      CompletableFuture<float[][]> waiting = b.submitImages(images(1, 1));
      m.brokenOnTheDispatcher = true; // the dispatcher's next look at the batch size throws
      m.release();
      assertEquals(0, id(first.get(10, TimeUnit.SECONDS)[0]));
      java.util.concurrent.ExecutionException e = assertThrows(java.util.concurrent.ExecutionException.class, () -> waiting.get(10, TimeUnit.SECONDS));
      assertEquals("the batch size broke", e.getCause().getMessage());
      m.brokenOnTheDispatcher = false;
      assertThrows(RejectedExecutionException.class, () -> b.submitImages(images(1, 2)));
    }
    assertThrows(IllegalArgumentException.class, () -> ClipBatcher.Options.defaults().withMaxDelay(Duration.ofDays(400 * 365)));
  }

  /**
   * A dispatcher waiting out the delay has nothing in flight: it counts as idle, so that a busy one
   * leaves it a full batch (a review found it counted as busy).
   */
  @Test
  void aDispatcherWaitingOutTheDelayCountsAsIdle() throws Exception {
    Fake m = new Fake(4, true);
    try (ClipBatcher b = new ClipBatcher(m, ClipBatcher.Options.defaults().withMaxDelay(Duration.ofSeconds(30)))) {
      Thread dispatcher = dispatcherThread();
      await(() -> dispatcher.getState() == Thread.State.WAITING);
      assertEquals(1, b.idleDispatchers(), "waiting for requests");
      CompletableFuture<float[][]> one = b.submitImages(images(1, 7));
      await(() -> dispatcher.getState() == Thread.State.TIMED_WAITING);
      assertEquals(1, b.idleDispatchers(), "waiting out the delay for a fuller batch");
      b.close();
      assertEquals(7, id(one.get(10, TimeUnit.SECONDS)[0]));
    }
  }

  /**
   * A dispatcher whose thread is interrupted ends before its next batch, even with full batches
   * queued (a review found it went on submitting full batches until the queue ran short): what it
   * had in flight is read back, and the queue fails when no other dispatcher is left.
   */
  @Test
  void anInterruptedDispatcherEndsBeforeItsNextBatch() throws Exception {
    Fake m = new Fake(4, true);
    m.async = true;
    m.interruptOnRun = 2;
    try (ClipBatcher b = new ClipBatcher(m, ClipBatcher.Options.defaults())) {
      m.hold();
      List<CompletableFuture<float[][]>> all = new ArrayList<>();
      all.add(b.submitImages(images(4, 0)));
      m.awaitHeld(); // the first batch is being submitted: three full ones queue behind it
      for (int i = 1; i < 4; i++) all.add(b.submitImages(images(4, 10 * i)));
      m.release();
      assertEquals(0, id(all.get(0).get(10, TimeUnit.SECONDS)[0]));
      assertEquals(10, id(all.get(1).get(10, TimeUnit.SECONDS)[0]), "the batch in flight when the interrupt came is read back");
      for (int i = 2; i < 4; i++) {
        CompletableFuture<float[][]> f = all.get(i);
        java.util.concurrent.ExecutionException e = assertThrows(java.util.concurrent.ExecutionException.class, () -> f.get(10, TimeUnit.SECONDS));
        assertTrue(e.getCause().getMessage().contains("interrupted"), e.getCause().getMessage());
      }
      assertEquals(List.of(4, 4), m.sizes(), "no batch submitted after the interrupt");
      assertThrows(RejectedExecutionException.class, () -> b.submitImages(images(1, 0)));
    }
  }

  private static Thread dispatcherThread() {
    for (Thread t : Thread.getAllStackTraces().keySet()) {
      if (t.getName().equals("jclip-batcher fake") && t.isAlive()) return t;
    }
    throw new AssertionError("no dispatcher thread");
  }

  /**
   * A model that gives too few rows fails that batch's requests, and those after it run: the
   * dispatcher's own faults never leave a request waiting (a review found the batch just taken
   * waiting forever when reading the previous one back failed this way).
   */
  @Test
  void aBatchOfTooFewRowsFailsItsRequestsAndNoneIsLeftWaiting() throws Exception {
    Fake m = new Fake(4, true);
    m.async = true;
    try (ClipBatcher b = new ClipBatcher(m, ClipBatcher.Options.defaults().withMaxQueued(100))) {
      m.hold();
      m.shortBy = 1;
      CompletableFuture<float[][]> first = b.submitImages(images(4, 0));
      m.awaitHeld();
      m.shortBy = 0;
      CompletableFuture<float[][]> second = b.submitImages(images(4, 10)), third = b.submitImages(images(2, 20));
      m.release();
      java.util.concurrent.ExecutionException e = assertThrows(java.util.concurrent.ExecutionException.class, () -> first.get(10, TimeUnit.SECONDS));
      assertTrue(e.getCause().getMessage().contains("3 rows for a batch of 4"), e.getCause().getMessage());
      assertEquals(10, id(second.get(10, TimeUnit.SECONDS)[0]));
      assertEquals(21, id(third.get(10, TimeUnit.SECONDS)[1]));
      assertEquals(1, b.stats().failedBatches());
    }
  }

  /** With a delay, a request of one kind past its delay goes before full batches of the other kind. */
  @Test
  void aDelayedRequestIsNotStarvedByFullBatchesOfTheOtherKind() throws Exception {
    Fake m = new Fake(4, false);
    try (ClipBatcher b = new ClipBatcher(m, ClipBatcher.Options.defaults().withMaxDelay(Duration.ofMillis(20)).withMaxQueued(1000))) {
      m.hold();
      CompletableFuture<float[][]> first = b.submitTexts(text(1, 2, 3, 4)); // a text batch: the dispatcher waits in it
      m.awaitHeld();
      CompletableFuture<float[][]> image = b.submitImages(images(1, 7));
      for (int i = 0; i < 40; i++) b.submitTexts(new Clip.Tokens(4, 2, new int[8]));
      Thread.sleep(50); // the image is past its delay before the dispatcher looks again
      m.release();
      first.get(10, TimeUnit.SECONDS);
      assertEquals(7, id(image.get(10, TimeUnit.SECONDS)[0]));
      assertEquals("image", m.kinds().get(1), "the image, past its delay, before the queued full text batches: " + m.kinds());
    }
  }

  /** Full batches of one kind queued without end do not keep an older request of the other kind waiting. */
  @Test
  void fullBatchesOfOneKindDoNotStarveTheOther() throws Exception {
    Fake m = new Fake(4, true);
    m.async = true;
    try (ClipBatcher b = new ClipBatcher(m, ClipBatcher.Options.defaults().withMaxQueued(100))) {
      m.hold();
      CompletableFuture<float[][]> first = b.submitImages(images(4, 0));
      m.awaitHeld();
      CompletableFuture<float[][]> text = b.submitTexts(text(5));
      List<CompletableFuture<float[][]>> more = new ArrayList<>();
      for (int i = 0; i < 3; i++) more.add(b.submitImages(images(4, 10 * (i + 1))));
      m.release();
      first.get(10, TimeUnit.SECONDS);
      text.get(10, TimeUnit.SECONDS);
      for (CompletableFuture<float[][]> f : more) f.get(10, TimeUnit.SECONDS);
      assertEquals("text", m.kinds().get(1), "the text, older than the images queued after it, runs next: " + m.kinds());
    }
  }

  /** The tiny reference ViT-B/32: 12 threads' requests through the batcher give each its own features. */
  @Test
  void aRealModelGivesEachRequestTheFeaturesOfItsOwnCall() throws Exception {
    try (Checkpoint ck = Checkpoint.open(Reference.dir().resolve("models/vit-b32-tiny/state_dict.pt"))) {
      ClipConfig cfg = ClipConfig.infer(ck);
      ClipTokenizer tok = ClipTokenizer.load(Reference.file("bpe_simple_vocab_16e6.txt.gz"));
      Clip.Options o = Clip.Options.defaults().withDevice("cpu").withThreads(2);
      // the CPU as it is, and the CPU taking turns as a GPU does (padding, pipelined submits)
      for (boolean turns : new boolean[] {false, true}) {
        try (Clip clip = Clip.create(cfg, ck.tensors(), tok, o, turns ? new ClipBatchSizeTest.Limited(8, Long.MAX_VALUE) : new CpuBackend(2, true));
            ClipBatcher b = ClipBatcher.of(clip)) {
          assertEquals(turns, clip.takesTurns());
          Random r = TestRandom.create("ClipBatcherTest" + turns);
          int per = 3 * cfg.imageResolution() * cfg.imageResolution();
          List<Object> inputs = new ArrayList<>();
          for (int i = 0; i < 36; i++) {
            int n = 1 + r.nextInt(3);
            if (i % 3 == 2) {
              List<String> words = new ArrayList<>();
              for (int k = 0; k < n; k++) words.add("a photo of " + "a very ".repeat(r.nextInt(4)) + "good dog " + r.nextInt(1000));
              inputs.add(clip.tokenize(words, false));
            } else {
              inputs.add(new Clip.Pixels(n, cfg.imageResolution(), TestRandom.gaussian(r, n * per, 1.0)));
            }
          }
          List<float[][]> want = new ArrayList<>();
          for (Object in : inputs) want.add(in instanceof Clip.Pixels p ? clip.encodeImage(p) : clip.encodeText((Clip.Tokens) in));
          ExecutorService callers = Executors.newFixedThreadPool(12);
          List<Future<float[][]>> got = new ArrayList<>();
          try {
            for (Object in : inputs) {
              got.add(callers.submit(() -> in instanceof Clip.Pixels p ? b.encodeImage(p) : b.encodeText((Clip.Tokens) in)));
            }
            for (int i = 0; i < inputs.size(); i++) {
              float[][] g = got.get(i).get(60, TimeUnit.SECONDS), w = want.get(i);
              assertEquals(w.length, g.length);
              for (int k = 0; k < w.length; k++) ClipTest.assertClose(w[k], g[k], 1e-5, "request " + i + " row " + k + " (turns " + turns + ")");
            }
          } finally {
            callers.shutdown();
          }
          ClipBatcher.Stats s = b.stats();
          assertEquals(inputs.size(), s.requests());
          assertTrue(s.batches() <= inputs.size(), s.toString());
          if (!turns) assertEquals(0, s.paddedRows(), "no padding on the CPU");
        }
      }
    }
  }

  /**
   * A Clip closed before its batcher: the first batch that fails on it ends its dispatcher, so the
   * batcher closes and refuses what comes next at once (it used to take every request and fail it
   * in a batch of its own, over a million a second).
   */
  @Test
  void aClipClosedUnderItsBatcherClosesTheBatcher() throws Exception {
    try (Checkpoint ck = Checkpoint.open(Reference.dir().resolve("models/vit-b32-tiny/state_dict.pt"))) {
      ClipConfig cfg = ClipConfig.infer(ck);
      ClipTokenizer tok = ClipTokenizer.load(Reference.file("bpe_simple_vocab_16e6.txt.gz"));
      Clip clip = Clip.create(cfg, ck.tensors(), tok, Clip.Options.defaults().withDevice("cpu").withThreads(1));
      try (ClipBatcher b = ClipBatcher.of(clip)) {
        Clip.Tokens t = clip.tokenize("a dog");
        assertEquals(1, b.encodeText(t).length);
        clip.close();
        CompletableFuture<float[][]> f = b.submitTexts(t);
        ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(30, TimeUnit.SECONDS));
        assertTrue(e.getCause().getMessage().contains("closed"), e.getCause().toString());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (true) {
          try {
            b.submitTexts(t).get(30, TimeUnit.SECONDS);
          } catch (RejectedExecutionException refused) {
            assertTrue(refused.getMessage().contains("closed"), refused.getMessage());
            break;
          } catch (ExecutionException failed) {
            // the dispatcher may still be ending: try again
          }
          assertTrue(System.nanoTime() < deadline, "the batcher still takes requests 30 s after its Clip was closed");
        }
        assertTrue(b.stats().failedBatches() <= 3, b.stats().toString());
      }
    }
  }

  /** Two models behind one queue: each takes batches while the other is busy, and each request gets its own rows. */
  @Test
  void severalModelsShareOneQueue() throws Exception {
    Fake a = new Fake(4, false), c = new Fake(4, false);
    try (ClipBatcher b = new ClipBatcher(List.of(a, c), ClipBatcher.Options.defaults())) {
      a.hold();
      c.hold();
      CompletableFuture<float[][]> r1 = b.submitImages(images(1, 1000));
      await(() -> a.sizes().size() + c.sizes().size() == 1);
      CompletableFuture<float[][]> r2 = b.submitImages(images(1, 2000)); // the other model takes it: the first is busy
      a.awaitHeld();
      c.awaitHeld();
      List<CompletableFuture<float[][]>> rest = new ArrayList<>();
      for (int i = 0; i < 10; i++) rest.add(b.submitImages(images(1, i)));
      a.release();
      c.release();
      assertEquals(1000, id(r1.get(10, TimeUnit.SECONDS)[0]));
      assertEquals(2000, id(r2.get(10, TimeUnit.SECONDS)[0]));
      for (int i = 0; i < 10; i++) assertEquals(i, id(rest.get(i).get(10, TimeUnit.SECONDS)[0]));
      ClipBatcher.Stats s = b.stats();
      assertEquals(2, s.batchesByModel().size());
      assertTrue(s.batchesByModel().get(0) > 0 && s.batchesByModel().get(1) > 0, "both models ran batches: " + s);
      assertEquals(s.batches(), s.batchesByModel().get(0) + s.batchesByModel().get(1));
    }
    Fake other = new Fake(4, false) {
      @Override
      public int resolution() {
        return 3;
      }
    };
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new ClipBatcher(List.of(a, other), ClipBatcher.Options.defaults()));
    assertTrue(e.getMessage().contains("one batcher runs one model"), e.getMessage());
  }

  /**
   * Many threads' requests of 1-12 items (cut between batches of three models), a tenth of the
   * batches failing, some requests cancelled: every request ends, with its own rows or with the
   * failure (a review's stress harness found a request cut between batches, its first batch
   * failed, left waiting forever when a submit dropped its queued rest in between).
   */
  @Test
  void underStressEveryRequestEndsWithItsRowsOrAFailure() throws Exception {
    long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(3); // rounds for 3 s: the races sit in narrow windows
    for (int round = 0; round < 2 || System.nanoTime() < until; round++) {
      boolean async = round % 2 == 1;
      List<Fake> models = List.of(new Fake(3, async), new Fake(5, async), new Fake(8, async));
      for (Fake f : models) {
        f.async = async;
        f.failRate = 0.1;
      }
      try (ClipBatcher b = new ClipBatcher(new ArrayList<>(models), ClipBatcher.Options.defaults().withMaxQueued(100_000))) {
        ExecutorService submitters = Executors.newFixedThreadPool(8);
        List<Future<List<Object[]>>> work = new ArrayList<>();
        for (int t = 0; t < 8; t++) {
          int thread = t;
          work.add(submitters.submit(() -> {
            java.util.Random r = new java.util.Random(thread);
            List<Object[]> mine = new ArrayList<>(); // {future, first id, count, image?}
            for (int i = 0; i < 150; i++) {
              int n = 1 + r.nextInt(12), first = 100_000 * thread + 100 * i;
              boolean image = r.nextInt(3) > 0;
              int[] ids = new int[n * 2];
              for (int k = 0; k < n; k++) ids[2 * k] = (first + k) % VOCAB; // one token a text, then 0
              CompletableFuture<float[][]> f = image ? b.submitImages(images(n, first)) : b.submitTexts(new Clip.Tokens(n, 2, ids));
              if (r.nextInt(20) == 0) f.cancel(false);
              mine.add(new Object[] {f, first, n, image});
            }
            return mine;
          }));
        }
        int ok = 0, failed = 0, cancelled = 0;
        for (Future<List<Object[]>> w : work) {
          for (Object[] req : w.get(60, TimeUnit.SECONDS)) {
            @SuppressWarnings("unchecked")
            CompletableFuture<float[][]> f = (CompletableFuture<float[][]>) req[0];
            int first = (int) req[1], n = (int) req[2];
            try {
              float[][] rows = f.get(20, TimeUnit.SECONDS);
              for (int k = 0; k < n; k++) assertEquals((boolean) req[3] ? first + k : (first + k) % VOCAB, id(rows[k]), "request at " + first + ", row " + k);
              ok++;
            } catch (java.util.concurrent.ExecutionException e) {
              assertEquals("a random failure", e.getCause().getMessage());
              failed++;
            } catch (CancellationException e) {
              cancelled++;
            } catch (java.util.concurrent.TimeoutException e) {
              throw new AssertionError("request at " + first + " of " + n + " items never ended (async " + async + ")", e);
            }
          }
        }
        submitters.shutdown();
        assertEquals(1200, ok + failed + cancelled);
        assertTrue(ok > 0 && failed > 0, ok + " answered, " + failed + " failed");
      }
    }
  }

  /** A request cut between two models' batches comes back whole and in order, whichever delivers last. */
  @Test
  void aRequestCutBetweenTwoModelsComesBackWhole() throws Exception {
    for (int round = 0; round < 20; round++) {
      Fake a = new Fake(4, false), c = new Fake(4, false);
      try (ClipBatcher b = new ClipBatcher(List.of(a, c), ClipBatcher.Options.defaults().withMaxQueued(100))) {
        a.hold();
        c.hold();
        CompletableFuture<float[][]> big = b.submitImages(images(8, 0)); // rows 0-3 to one model, 4-7 to the other
        a.awaitHeld();
        c.awaitHeld();
        a.release();
        c.release();
        float[][] rows = big.get(10, TimeUnit.SECONDS);
        for (int i = 0; i < 8; i++) assertEquals(i, id(rows[i]), "round " + round + ", row " + i);
        assertEquals(List.of(1L, 1L), b.stats().batchesByModel());
      }
    }
  }

  /** A fault of one model's dispatcher fails its own batch; the other model runs the rest, and the batcher stays open. */
  @Test
  void aFaultOfOneDispatcherLeavesTheQueueToTheOther() throws Exception {
    Fake a = new Fake(4, false), c = new Fake(4, false);
    try (ClipBatcher b = new ClipBatcher(List.of(a, c), ClipBatcher.Options.defaults())) {
      a.brokenOnTheDispatcher = true; // a's dispatcher fails at its first look at the batch size
      List<CompletableFuture<float[][]>> all = new ArrayList<>();
      for (int i = 0; i < 6; i++) all.add(b.submitImages(images(1, i)));
      int ok = 0;
      for (int i = 0; i < 6; i++) {
        try {
          assertEquals(i, id(all.get(i).get(10, TimeUnit.SECONDS)[0]));
          ok++;
        } catch (java.util.concurrent.ExecutionException e) {
          assertEquals("the batch size broke", e.getCause().getMessage());
        }
      }
      assertTrue(ok >= 5, ok + " of 6 answered: at most the broken dispatcher's one batch fails");
      await(() -> b.queueBound() == 16); // four batches of the model still running, no longer of both
      a.brokenOnTheDispatcher = false;
      assertEquals(9, id(b.encodeImage(images(1, 9))[0]), "the other model goes on");
    }
  }

  /** Two Clips of the tiny reference model behind one batcher: every request its own call's features. */
  @Test
  void twoRealClipsBehindOneBatcher() throws Exception {
    try (Checkpoint ck = Checkpoint.open(Reference.dir().resolve("models/vit-b32-tiny/state_dict.pt"))) {
      ClipConfig cfg = ClipConfig.infer(ck);
      ClipTokenizer tok = ClipTokenizer.load(Reference.file("bpe_simple_vocab_16e6.txt.gz"));
      Clip.Options o = Clip.Options.defaults().withDevice("cpu").withThreads(1);
      try (Clip one = Clip.create(cfg, ck.tensors(), tok, o); Clip two = Clip.create(cfg, ck.tensors(), tok, o);
          ClipBatcher b = ClipBatcher.of(List.of(one, two), ClipBatcher.Options.defaults())) {
        Random r = TestRandom.create("ClipBatcherTest.two");
        int per = 3 * cfg.imageResolution() * cfg.imageResolution();
        List<Clip.Pixels> inputs = new ArrayList<>();
        for (int i = 0; i < 24; i++) inputs.add(new Clip.Pixels(1 + i % 3, cfg.imageResolution(), TestRandom.gaussian(r, (1 + i % 3) * per, 1.0)));
        ExecutorService callers = Executors.newFixedThreadPool(8);
        try {
          List<Future<float[][]>> got = new ArrayList<>();
          for (Clip.Pixels p : inputs) got.add(callers.submit(() -> b.encodeImage(p)));
          for (int i = 0; i < inputs.size(); i++) {
            float[][] w = one.encodeImage(inputs.get(i)), g = got.get(i).get(60, TimeUnit.SECONDS);
            for (int k = 0; k < w.length; k++) ClipTest.assertClose(w[k], g[k], 1e-5, "request " + i + " row " + k);
          }
        } finally {
          callers.shutdown();
        }
        assertEquals(24, b.stats().requests());
        IllegalArgumentException twice = assertThrows(IllegalArgumentException.class, () -> ClipBatcher.of(List.of(one, one), ClipBatcher.Options.defaults()));
        assertTrue(twice.getMessage().contains("the same Clip twice"), twice.getMessage());
      }
    }
  }

  /**
   * Clips of different models, or of one configuration with other weights, are refused: a request
   * would get whichever model's features was free. The same weights from another file format are
   * one model.
   */
  @Test
  void clipsOfDifferentModelsAreRefused() throws Exception {
    Path models = Reference.dir().resolve("models");
    Clip.Options o = Clip.Options.defaults().withDevice("cpu").withThreads(1).withVocabulary(Reference.file("bpe_simple_vocab_16e6.txt.gz"));
    try (Clip vit = Clip.load(models.resolve("vit-b32-tiny/state_dict.pt").toString(), o);
        Clip jit = Clip.load(models.resolve("vit-b32-tiny/openai-jit.pt").toString(), o);
        Clip rn = Clip.load(models.resolve("rn50-tiny/state_dict.pt").toString(), o)) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ClipBatcher.of(List.of(vit, rn), ClipBatcher.Options.defaults()));
      assertTrue(e.getMessage().contains("different models"), e.getMessage());
      try (ClipBatcher b = ClipBatcher.of(List.of(vit, jit), ClipBatcher.Options.defaults())) {
        assertEquals(2, b.stats().batchesByModel().size());
      }
      if (dev.jclip.backend.cpu.CpuFeatures.bf16()) {
        try (Clip bf16 = Clip.load(models.resolve("vit-b32-tiny/state_dict.pt").toString(), o.withPrecision("bf16"))) {
          IllegalArgumentException p = assertThrows(IllegalArgumentException.class, () -> ClipBatcher.of(List.of(vit, bf16), ClipBatcher.Options.defaults()));
          assertTrue(p.getMessage().contains("one precision"), p.getMessage());
        }
      }
      java.util.Map<String, dev.jclip.io.Tensor> other = new java.util.HashMap<>();
      try (Checkpoint ck = Checkpoint.open(models.resolve("vit-b32-tiny/state_dict.pt"))) {
        other.putAll(ck.tensors());
        dev.jclip.io.Tensor t = other.get("text_projection");
        float[] v = t.toFloatArray();
        v[v.length / 2] += 1f; // one weight changed, in the middle of the tensor
        other.put("text_projection", dev.jclip.io.Tensor.ofFloats("text_projection", t.shape(), v));
        try (Clip changed = Clip.create(vit.config(), other, null, o)) {
          IllegalArgumentException w = assertThrows(IllegalArgumentException.class, () -> ClipBatcher.of(List.of(vit, changed), ClipBatcher.Options.defaults()));
          assertTrue(w.getMessage().contains("different weights"), w.getMessage());
        }
      }
    }
  }

  /** A text batch's length rounded up to a multiple of the step: another graph shape, the same features. */
  @Test
  void textLengthsRoundedUpGiveTheSameFeatures() throws Exception {
    try (Checkpoint ck = Checkpoint.open(Reference.dir().resolve("models/vit-b32-tiny/state_dict.pt"))) {
      ClipConfig cfg = ClipConfig.infer(ck);
      ClipTokenizer tok = ClipTokenizer.load(Reference.file("bpe_simple_vocab_16e6.txt.gz"));
      try (Clip clip = Clip.create(cfg, ck.tensors(), tok, Clip.Options.defaults().withDevice("cpu").withThreads(2))) {
        Clip.Tokens t = clip.tokenize("a dog", "a photo of a cat"); // end-of-text at 3 and 6: cut at 7
        float[][] want = clip.encodeText(t);
        assertEquals(java.util.Set.of("text:2x7"), clip.shapes());
        for (int step : new int[] {8, 77, 100}) {
          float[][] got;
          try (Clip.Pending p = clip.submitText(t, step, true)) {
            got = p.finish();
          }
          for (int k = 0; k < 2; k++) ClipTest.assertClose(want[k], got[k], 1e-5, "text " + k + ", step " + step);
        }
        assertEquals(java.util.Set.of("text:2x7", "text:2x8", "text:2x77"), clip.shapes(), "rounded up, never past the tokens' length");
        assertThrows(IllegalArgumentException.class, () -> clip.submitText(t, 0, true));
      }
    }
  }

  // --- the stand-in model ---

  /** Pixels whose item i carries the id {@code first + i} in every value. */
  static Clip.Pixels images(int n, int first) {
    float[] d = new float[n * PER];
    for (int i = 0; i < n; i++) java.util.Arrays.fill(d, i * PER, (i + 1) * PER, first + i);
    return new Clip.Pixels(n, RES, d);
  }

  static Clip.Tokens text(int... ids) {
    return new Clip.Tokens(1, ids.length, ids);
  }

  static int id(float[] row) {
    return (int) row[0];
  }

  static void await(BooleanSupplier condition) throws InterruptedException {
    long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > end) throw new AssertionError("timed out waiting");
      Thread.sleep(2);
    }
  }

  /**
   * A model whose image features are [the item's first value, the batch size] and whose text
   * features are [the sum of the text's ids, the batch's length]; it logs every batch, can hold
   * the next one until released, fail the next one, and return runs still in flight.
   */
  static class Fake implements ClipBatcher.Model {
    final int batch;
    final boolean turns;
    final List<Integer> sizes = new ArrayList<>();
    final List<String> kinds = new ArrayList<>(), events = new ArrayList<>();
    /** The run that fails (1 the first), and with what. */
    volatile int failRun;
    volatile RuntimeException failure;
    volatile boolean async;
    /** A submit while a run is in flight fails as the GPU's memory running out does. */
    volatile boolean oneInFlightOnly;
    /** {@link #batchSize()} throws when the dispatcher asks. */
    volatile boolean brokenOnTheDispatcher;
    /** The share of runs that fail at random ("a random failure"). */
    volatile double failRate;
    /** Rows short in the next run's features (a broken model). */
    volatile int shortBy;
    /** The run (1 the first) whose submit leaves its thread interrupted, as a library told to stop would. */
    volatile int interruptOnRun;
    /** Whether each submit allowed the model's own out-of-memory retry. */
    final List<Boolean> retries = java.util.Collections.synchronizedList(new ArrayList<>());
    int outOfMemory, inFlight;
    private volatile CountDownLatch held = new CountDownLatch(0), gate = new CountDownLatch(0);
    private int runs;

    Fake(int batch, boolean turns) {
      this.batch = batch;
      this.turns = turns;
    }

    /** The next batch waits in its submit until {@link #release}. */
    void hold() {
      held = new CountDownLatch(1);
      gate = new CountDownLatch(1);
    }

    void awaitHeld() throws InterruptedException {
      assertTrue(held.await(10, TimeUnit.SECONDS), "no batch came");
    }

    void release() {
      gate.countDown();
    }

    synchronized List<Integer> sizes() {
      return List.copyOf(sizes);
    }

    synchronized List<String> kinds() {
      return List.copyOf(kinds);
    }

    List<Boolean> retries() {
      synchronized (retries) {
        return List.copyOf(retries);
      }
    }

    synchronized List<String> events() {
      return List.copyOf(events);
    }

    @Override
    public int batchSize() {
      if (brokenOnTheDispatcher && Thread.currentThread().getName().startsWith("jclip-batcher")) throw new IllegalStateException("the batch size broke");
      return batch;
    }

    @Override
    public int resolution() {
      return RES;
    }

    @Override
    public int contextLength() {
      return CONTEXT;
    }

    @Override
    public int vocabSize() {
      return VOCAB;
    }

    @Override
    public boolean takesTurns() {
      return turns;
    }

    @Override
    public String name() {
      return "fake";
    }

    @Override
    public ClipBatcher.Run submitImages(Clip.Pixels p, boolean retry) {
      retries.add(retry);
      float[][] out = new float[p.count()][];
      for (int i = 0; i < out.length; i++) out[i] = new float[] {p.data()[i * PER], p.count()};
      return run("image", p.count(), out);
    }

    @Override
    public ClipBatcher.Run submitTexts(Clip.Tokens t, int lengthStep, boolean retry) {
      retries.add(retry);
      assertEquals(turns ? ClipBatcher.TEXT_LENGTH_STEP : 1, lengthStep, "lengths rounded where batches are padded");
      float[][] out = new float[t.count()][];
      for (int i = 0; i < out.length; i++) {
        float s = 0;
        for (int k = 0; k < t.length(); k++) s += t.ids()[i * t.length() + k];
        out[i] = new float[] {s, t.length()};
      }
      return run("text", t.count(), out);
    }

    private ClipBatcher.Run run(String kind, int n, float[][] full) {
      float[][] out = java.util.Arrays.copyOf(full, full.length - shortBy);
      int number;
      CountDownLatch waitFor = gate;
      synchronized (this) {
        number = ++runs;
        sizes.add(n);
        kinds.add(kind);
        events.add("submit " + n);
      }
      held.countDown();
      if (number == failRun) throw failure;
      if (failRate > 0 && java.util.concurrent.ThreadLocalRandom.current().nextDouble() < failRate) throw new IllegalStateException("a random failure");
      awaitGate(waitFor);
      if (number == interruptOnRun) Thread.currentThread().interrupt();
      if (!async) return done(out);
      synchronized (this) {
        if (oneInFlightOnly && inFlight > 0) {
          outOfMemory++;
          throw new dev.jclip.backend.cuda.CudaException("cuMemAlloc(1 bytes) failed: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory");
        }
        inFlight++;
      }
      return new ClipBatcher.Run() {
        @Override
        public boolean isDone() {
          return false;
        }

        @Override
        public float[][] finish() {
          synchronized (Fake.this) {
            events.add("finish " + number);
            inFlight--;
          }
          return out;
        }

        @Override
        public void close() {}
      };
    }

    private static void awaitGate(CountDownLatch g) {
      try {
        assertTrue(g.await(10, TimeUnit.SECONDS), "never released");
      } catch (InterruptedException e) {
        throw new IllegalStateException(e);
      }
    }

    private static ClipBatcher.Run done(float[][] out) {
      return new ClipBatcher.Run() {
        @Override
        public boolean isDone() {
          return true;
        }

        @Override
        public float[][] finish() {
          return out;
        }

        @Override
        public void close() {}
      };
    }
  }

  @Test
  void theFakeSeesWhatTheBatcherSends() {
    Fake m = new Fake(8, false);
    try (ClipBatcher b = new ClipBatcher(m, ClipBatcher.Options.defaults())) {
      float[][] r = b.encodeImage(images(3, 5));
      assertArrayEquals(new float[] {5, 3}, r[0]);
      assertArrayEquals(new float[] {7, 3}, r[2]);
    }
  }
}
