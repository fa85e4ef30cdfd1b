package dev.jclip.api;

import dev.jclip.backend.Backends;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Requests from many threads merged into the device's batches: what a GPU service needs when each
 * of its requests carries one image or a few texts. A {@link Clip} called directly runs each call as
 * its own batch, and on a GPU the calls take turns: a batch of one ViT-B/32 image took 0.57 ms in
 * GPU run 8 (about 1,750 images/s however many threads call), where batches of 256 ran 58,138
 * images/s. Here one dispatcher thread takes what has queued up while the previous batch ran
 * (images and texts apart, oldest first), runs it as one batch, and hands each request its rows.
 * Under light load a request runs alone at once; under heavy load the batches fill up by
 * themselves. No request waits for others to arrive unless {@link Options#maxDelay()} says so.
 *
 * <pre>{@code
 * try (Clip clip = Clip.load("ViT-B/32", Clip.Options.defaults().withPrecision("fp16"));
 *      ClipBatcher batcher = ClipBatcher.of(clip)) {
 *   // from any number of request threads:
 *   float[] features = batcher.encodeImage(clip.preprocess(Path.of("cat.jpg")))[0];
 *   CompletableFuture<float[][]> texts = batcher.submitTexts(clip.tokenize("a dog", "a cat"));
 * }
 * }</pre>
 *
 * <p><b>Batches.</b> At most {@link Options#maxBatch()} items (the Clip's {@link Clip#batchSize()}
 * by default, read anew for each batch, so a batch halved after the GPU ran out of memory stays
 * halved). A request of several items may be cut between batches; its future completes when its
 * last row is back. On a GPU a batch is padded up to a size from a short list (1, 2, 4, 8, 16, then
 * multiples of 32; {@link Options#padding()}): each shape has its own executor, activation memory and
 * CUDA graph, and a replay of a few more rows costs next to nothing below ~32 items (run 8: 0.46 ms
 * resident at batch 1, 0.84 at 32), where an extra batch for the remainder costs a whole replay.
 * Padded rows are zeros (images) or empty texts, and their features are dropped; a text batch's
 * length (cut after its longest text, as {@link Clip#encodeText} cuts) is rounded up to a multiple
 * of 8 tokens, which the causal mask leaves without effect on the features. On the CPU, where
 * each row costs its share, batches are not padded. A batch that fills up while another is in
 * flight on a GPU is submitted before the first is read back (its upload overlaps that batch's
 * work), as {@link Clip#submitImage} does, if its kind's oldest request is the oldest waiting (so
 * that a stream of one kind cannot starve the other); a partial one waits for the device and grows
 * meanwhile. When two batches in flight do not fit in the GPU's memory, the first is read back, the
 * second tried again, and the batcher runs one batch at a time from then on (said on stderr).
 *
 * <p><b>Features</b> are those of {@link Clip#encodeImage} / {@link Clip#encodeText} on the
 * request alone, up to the GEMM library's rounding for another batch size (fp32: relative 1e-6; in
 * 16 bits each batch size has its own tuned GEMMs).
 *
 * <p><b>Failures.</b> Inputs are checked when submitted (resolution, text length, token ids), so
 * that a bad request is refused on its own (an {@link IllegalArgumentException} from the submit
 * call) rather than failing the batch it would share. A batch that fails on the device fails the
 * requests it held (their futures complete exceptionally with the device's failure) and the
 * dispatcher goes on with the next one; {@link Stats#failedBatches()} counts them. A request
 * submitted when {@link Options#maxQueued()} items already wait is refused with a {@link
 * RejectedExecutionException} (the device is behind the requests: the service can answer "busy"
 * rather than queue without bound); a request larger than that bound is taken when nothing waits.
 * A cancelled future's rows not yet taken are dropped. The futures handed out complete on the
 * common {@link java.util.concurrent.ForkJoinPool}, so that what a caller chains to them (even a
 * call that waits for the batcher) never runs on the dispatcher; a fault of a dispatcher itself
 * fails the requests of its batches and leaves the queue to the others, and the last one to end
 * fails what is still queued and closes the batcher, rather than leaving requests waiting. A
 * dispatcher whose thread is interrupted does the same before its next batch, once it has read
 * back the one in flight. The queue's default bound counts the dispatchers still running.
 *
 * <p><b>Several devices.</b> {@link #of(List, Options)} puts one queue in front of several Clips of
 * the same model, one dispatcher each: each takes the next batch when its device is free. One Clip
 * a GPU spreads the requests over the GPUs; two Clips on one GPU run two batches at once, each on
 * its own stream (each Clip holds its own copy of the weights). A dispatcher with a batch in
 * flight leaves the next full batch to an idle one (one waiting for requests, or waiting out
 * {@link Options#maxDelay()} with nothing in flight). Each Clip recovers from running out of device
 * memory on its own: with two Clips on one GPU, one may halve its batch for memory the other holds.
 *
 * <p><b>Closing</b> refuses new requests, lets the dispatchers finish every request already
 * queued, and waits for them. Close the batcher before its Clips.
 */
public final class ClipBatcher implements AutoCloseable {
  /**
   * @param maxBatch the most items a batch holds; 0: the Clip's {@link Clip#batchSize()}
   * @param maxQueued the most items waiting before requests are refused; 0: four batches of each dispatcher still running
   * @param maxDelay how long a batch that is not full may wait for more requests while the device
   *     is idle (a latency paid for fuller batches); zero: never
   * @param padding whether batches are padded to a short list of sizes; null: on a GPU (a device whose runs take turns)
   */
  public record Options(int maxBatch, int maxQueued, Duration maxDelay, Boolean padding) {
    public Options {
      if (maxBatch < 0) throw new IllegalArgumentException("maxBatch must be at least 1 (or 0: the Clip's batch size), got " + maxBatch);
      if (maxQueued < 0) throw new IllegalArgumentException("maxQueued must be at least 1 (or 0: four batches), got " + maxQueued);
      if (maxDelay == null || maxDelay.isNegative() || maxDelay.compareTo(Duration.ofHours(1)) > 0) {
        throw new IllegalArgumentException("maxDelay must be from zero to an hour, got " + maxDelay);
      }
    }

    /** The Clip's batch size, four batches queued at most, no waiting for more requests, padding on a GPU. */
    public static Options defaults() {
      return new Options(0, 0, Duration.ZERO, null);
    }

    public Options withMaxBatch(int n) {
      return new Options(n, maxQueued, maxDelay, padding);
    }

    public Options withMaxQueued(int n) {
      return new Options(maxBatch, n, maxDelay, padding);
    }

    public Options withMaxDelay(Duration d) {
      return new Options(maxBatch, maxQueued, d, padding);
    }

    public Options withPadding(Boolean p) {
      return new Options(maxBatch, maxQueued, maxDelay, p);
    }
  }

  /**
   * What the batcher has done: requests accepted, items cut into batches (padding not counted;
   * those of failed batches and cancelled requests included), batches cut (by their size, padding
   * included), rows of padding computed, batches that failed, requests refused, items waiting now,
   * batches cut by each model (in the order given to {@link #of(List, Options)}).
   */
  public record Stats(long requests, long items, long batches, SortedMap<Integer, Long> batchesBySize, long paddedRows, long failedBatches,
      long rejected, int queued, List<Long> batchesByModel) {
    /** Items a batch, padding not counted. */
    public double meanBatch() {
      return batches == 0 ? 0 : (double) items / batches;
    }
  }

  /** What the batcher runs batches on: a {@link Clip}, or a stand-in in the tests. */
  interface Model {
    int batchSize();

    int resolution();

    int contextLength();

    int vocabSize();

    /** Whether runs take turns on one device (a GPU): pipelining and padding pay there. */
    boolean takesTurns();

    /** Whether the model runs one batch at a time (a Clip whose two batches in flight did not fit). */
    default boolean oneBatchAtATime() {
      return false;
    }

    /** Says a note (a fallback taken): the Clip's {@link Clip.Options#withMessages messages}. */
    default void say(String message) {
      System.err.println(message);
    }

    /** Whether the model was closed (its dispatcher then ends rather than fail every batch one by one). */
    default boolean isClosed() {
      return false;
    }

    /**
     * @param retry whether the model may recover from running out of device memory on its own
     *     ({@link Clip}'s retry: close idle executors, halve its batch); not while another batch is
     *     in flight, which the model cannot see (the batcher reads it back first)
     */
    Run submitImages(Clip.Pixels pixels, boolean retry);

    /** @param lengthStep each batch's length (its longest text) rounded up to a multiple of this */
    Run submitTexts(Clip.Tokens tokens, int lengthStep, boolean retry);

    String name();
  }

  /** A batch submitted to the model. */
  interface Run {
    boolean isDone();

    float[][] finish();

    void close();
  }

  private enum Kind {
    IMAGE,
    TEXT
  }

  /** A request: its items, how many are taken, its rows as they come back. */
  private static final class Request {
    final Kind kind;
    final Clip.Pixels pixels;
    final Clip.Tokens tokens;
    final int count;
    final long arrived;
    long seq;
    final float[][] rows;
    final CompletableFuture<float[][]> future = new CompletableFuture<>();
    /** A blocking call's request: its future is never handed out, so it is completed on the dispatcher. */
    final boolean direct;
    /** Completed or failed (under the lock): a request is settled once, whatever its batches do after. */
    boolean settled;
    int taken, done;

    Request(Kind kind, Clip.Pixels pixels, Clip.Tokens tokens, int count, boolean direct) {
      this.kind = kind;
      this.direct = direct;
      this.pixels = pixels;
      this.tokens = tokens;
      this.count = count;
      this.arrived = System.nanoTime();
      this.rows = new float[count][];
    }
  }

  /** Items {@code from..to-1} of a request, at rows {@code at..} of a batch. */
  private record Slice(Request request, int from, int to, int at) {}

  /** A batch: its kind, its slices, its size with padding. */
  private record Batch(Kind kind, List<Slice> slices, int size) {}

  /** Where the futures handed out complete (see {@link #submitImages}). */
  private static final java.util.concurrent.Executor COMPLETIONS = java.util.concurrent.ForkJoinPool.commonPool();

  /** With padding, a text batch's length (its longest text's) is rounded up to a multiple of this. */
  static final int TEXT_LENGTH_STEP = 8;

  /** One a model (a Clip, a device): each takes the next batch when its model is free. */
  private final List<Dispatcher> dispatchers;
  /** The first model: the inputs' shape (every model has the same). */
  private final Model model;
  private final Options options;
  private final ReentrantLock lock = new ReentrantLock();
  private final Condition arrived = lock.newCondition();
  private final ArrayDeque<Request> images = new ArrayDeque<>(), texts = new ArrayDeque<>();
  private int queuedImages, queuedTexts;
  private long seq;
  private boolean closed;
  /**
   * Requests cut into batches and not yet settled (under the lock): a fault of the dispatcher fails
   * them, wherever their batches were.
   */
  private final java.util.Set<Request> active = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
  /** Dispatchers not ended (under the lock): the last to end closes the batcher. */
  private int liveDispatchers;
  /** Dispatchers waiting for requests with nothing in flight (under the lock): a busy one leaves a full batch to them. */
  private int idleDispatchers;

  /** A model and the thread that runs its batches. */
  private final class Dispatcher {
    final Model model;
    final int index;
    /** Whether batches are padded to the short list of sizes (a device whose runs take turns). */
    final boolean pad;
    /** False once two batches in flight ran out of device memory (this dispatcher's own). */
    boolean pipelining = true;
    /** Set (under the lock) when its thread ends: its batches no longer count in the queue's bound. */
    boolean ended;
    final Thread thread;
    /** The model's name, with its place in the list when there are several. */
    final String name;

    Dispatcher(Model model, int index, int of) {
      this.model = model;
      this.index = index;
      this.pad = options.padding() != null ? options.padding() : model.takesTurns();
      this.name = of == 1 ? model.name() : model.name() + " #" + index;
      this.thread = Thread.ofPlatform().name("jclip-batcher " + name).daemon().unstarted(() -> dispatch(this));
    }
  }
  // statistics, under the lock
  private long requests, batches, paddedRows, failedBatches, rejected, ranItems;
  private final TreeMap<Integer, Long> bySize = new TreeMap<>();
  private final long[] byModel;

  /** A batcher over {@code clip} with {@link Options#defaults()}. */
  public static ClipBatcher of(Clip clip) {
    return of(clip, Options.defaults());
  }

  public static ClipBatcher of(Clip clip, Options options) {
    java.util.Objects.requireNonNull(clip, "clip");
    java.util.Objects.requireNonNull(options, "options");
    return new ClipBatcher(new ClipModel(clip), options);
  }

  /**
   * A batcher over several Clips of the same model (one a GPU, say: {@code cuda:0}, {@code
   * cuda:1}, ...; or two on one GPU, each its own stream), sharing one queue: each takes the next
   * batch when its device is free.
   *
   * @throws IllegalArgumentException when the Clips are not of one model: another configuration, or
   *     other weights (a request would get one model's features or the other's, whichever was free)
   */
  public static ClipBatcher of(List<Clip> clips, Options options) {
    java.util.Objects.requireNonNull(clips, "clips");
    java.util.Objects.requireNonNull(options, "options");
    if (clips.isEmpty()) throw new IllegalArgumentException("no Clip to run batches on");
    Clip first = clips.get(0);
    for (Clip c : clips) {
      java.util.Objects.requireNonNull(c, "a Clip in the list");
      if (c == first) continue;
      if (!c.config().sameModel(first.config())) {
        throw new IllegalArgumentException("different models: " + c.config().summary() + " and " + first.config().summary() + "; one batcher runs one model");
      }
      dev.jclip.backend.Precision pc = dev.jclip.backend.Precision.parse(c.options().precision()), pf = dev.jclip.backend.Precision.parse(first.options().precision());
      if (pc != pf) {
        throw new IllegalArgumentException("Clips of one model in " + pc + " and " + pf + ": a request would get either precision's numbers; one batcher runs one precision");
      }
      if (!c.weightsFingerprint().equals(first.weightsFingerprint())) {
        throw new IllegalArgumentException("two Clips of " + c.config().summary() + " with different weights"
            + (c.modelPath() != null || first.modelPath() != null ? " (" + c.modelPath() + ", " + first.modelPath() + ")" : "") + "; one batcher runs one model");
      }
    }
    return new ClipBatcher(clips.stream().<Model>map(ClipModel::new).toList(), options);
  }

  ClipBatcher(Model model, Options options) {
    this(List.of(model), options);
  }

  ClipBatcher(List<Model> models, Options options) {
    this.options = options;
    this.model = models.get(0);
    for (Model m : models) {
      if (m.resolution() != model.resolution() || m.contextLength() != model.contextLength() || m.vocabSize() != model.vocabSize()) {
        throw new IllegalArgumentException(m.name() + " takes " + m.resolution() + " px images and " + m.contextLength() + " tokens of a vocabulary of "
            + m.vocabSize() + "; " + model.name() + " takes " + model.resolution() + ", " + model.contextLength() + " and " + model.vocabSize()
            + ": one batcher runs one model");
      }
    }
    List<Dispatcher> ds = new ArrayList<>();
    for (int i = 0; i < models.size(); i++) {
      for (int j = 0; j < i; j++) {
        // a ClipModel is equal to another of the same Clip
        if (models.get(j).equals(models.get(i))) {
          throw new IllegalArgumentException("the same Clip twice (" + models.get(i).name() + "): each dispatcher needs its own (its own device, or stream)");
        }
      }
      ds.add(new Dispatcher(models.get(i), i, models.size()));
    }
    this.dispatchers = List.copyOf(ds);
    this.byModel = new long[models.size()];
    this.liveDispatchers = dispatchers.size();
    try {
      for (Dispatcher d : dispatchers) d.thread.start();
    } catch (Throwable t) { // the ones started end at once, nothing being queued
      close();
      throw t;
    }
  }

  /**
   * The features of these images, [count][E] as {@link Clip#encodeImage}, once their batches have
   * run. The pixels are read when their batch is built: leave them as they are until the future
   * completes. The future completes on the common {@link java.util.concurrent.ForkJoinPool}, never
   * on the dispatcher, so that what is chained to it cannot hold up the batches.
   *
   * @throws IllegalArgumentException for images of another resolution than the model's
   * @throws RejectedExecutionException when the queue is full or the batcher is closed
   */
  public CompletableFuture<float[][]> submitImages(Clip.Pixels pixels) {
    return images(pixels, false);
  }

  /**
   * The features of these texts, [count][E] as {@link Clip#encodeText}, once their batches have
   * run; as {@link #submitImages}.
   *
   * @throws IllegalArgumentException for texts longer than the context, of no tokens, or with ids outside the vocabulary
   */
  public CompletableFuture<float[][]> submitTexts(Clip.Tokens tokens) {
    return texts(tokens, false);
  }

  /** {@link #submitImages}, waiting for the features; the device's failure is thrown as it is. */
  public float[][] encodeImage(Clip.Pixels pixels) {
    return join(images(pixels, true));
  }

  /** {@link #submitTexts}, waiting for the features. */
  public float[][] encodeText(Clip.Tokens tokens) {
    return join(texts(tokens, true));
  }

  private CompletableFuture<float[][]> images(Clip.Pixels pixels, boolean direct) {
    java.util.Objects.requireNonNull(pixels, "pixels");
    Clip.checkPixels(pixels, model.resolution());
    return enqueue(new Request(Kind.IMAGE, pixels, null, pixels.count(), direct));
  }

  private CompletableFuture<float[][]> texts(Clip.Tokens tokens, boolean direct) {
    java.util.Objects.requireNonNull(tokens, "tokens");
    Clip.checkTokens(tokens, model.contextLength(), model.vocabSize());
    return enqueue(new Request(Kind.TEXT, null, tokens, tokens.count(), direct));
  }

  private static float[][] join(CompletableFuture<float[][]> f) {
    try {
      return f.join();
    } catch (CompletionException e) {
      if (e.getCause() instanceof RuntimeException r) throw r;
      if (e.getCause() instanceof Error r) throw r;
      throw e;
    }
  }

  private CompletableFuture<float[][]> enqueue(Request r) {
    lock.lock();
    try {
      if (closed || liveDispatchers == 0) throw new RejectedExecutionException("this batcher is closed"); // a request of no items too
      if (r.count == 0) return CompletableFuture.completedFuture(new float[0][]);
      dropSettled(); // a cancelled request's rows no longer count against the bound
      int queued = queuedImages + queuedTexts, bound = maxQueued();
      if (queued > 0 && queued + r.count > bound) {
        rejected++;
        throw new RejectedExecutionException("the batcher's queue holds " + queued + " items (at most " + bound + "): the device is behind the requests; try"
            + " again later, or raise ClipBatcher.Options.maxQueued");
      }
      r.seq = seq++;
      queue(r.kind).addLast(r);
      addQueued(r.kind, r.count);
      requests++;
      arrived.signalAll();
      return r.future;
    } finally {
      lock.unlock();
    }
  }

  private int maxBatch(Dispatcher d) {
    return options.maxBatch() > 0 ? options.maxBatch() : Math.max(1, d.model.batchSize());
  }

  /** The bound on waiting items (under the lock): the option, else four batches of every model still running. */
  private int maxQueued() {
    if (options.maxQueued() > 0) return options.maxQueued();
    int all = 0;
    for (Dispatcher d : dispatchers) {
      if (!d.ended) all += maxBatch(d);
    }
    return 4 * all;
  }

  /** The bound on waiting items now (tests). */
  int queueBound() {
    lock.lock();
    try {
      return maxQueued();
    } finally {
      lock.unlock();
    }
  }

  /** Dispatchers waiting for requests with nothing in flight (tests). */
  int idleDispatchers() {
    lock.lock();
    try {
      return idleDispatchers;
    } finally {
      lock.unlock();
    }
  }

  /**
   * The size a batch of {@code n} items runs at: {@code n} without padding; else the next of 1, 2,
   * 4, 8, 16, then the next multiple of 32, at most {@code max} (a caller's batch size that is not on
   * the list is a size of its own).
   */
  public static int paddedSize(int n, int max) {
    int s = n <= 1 ? 1 : n <= 16 ? Integer.highestOneBit(n - 1) << 1 : (n + 31) / 32 * 32;
    return Math.max(n, Math.min(s, max));
  }

  /**
   * A dispatcher: take a batch, submit it, read the previous one back; until closed and drained.
   * When it ends otherwise (interrupted, or a fault of the batcher's own), it fails the requests
   * of its own batches and leaves the queue to the other dispatchers; the last one to end fails
   * what is still queued and closes the batcher.
   */
  private void dispatch(Dispatcher d) {
    Batch inFlightBatch = null, next = null;
    Run inFlight = null, run = null;
    Throwable ended = null;
    try {
      while (true) {
        if (Thread.currentThread().isInterrupted()) { // told to stop: what is in flight is read back, the queue left to the others
          if (inFlight != null) {
            deliver(inFlightBatch, inFlight); // cleared after: a fault inside leaves the batch to the catch below
            inFlight = null;
          }
          ended = new IllegalStateException("the batcher's dispatcher on " + d.name + " was interrupted");
          return;
        }
        if (inFlight != null && !pipelines(d)) { // one batch at a time: read it back before the next
          deliver(inFlightBatch, inFlight); // cleared after: a fault inside leaves the batch to the catch below
          inFlight = null;
        }
        next = null;
        try {
          // With a batch in flight, take the next now only if it is full (its upload overlaps that
          // batch's work); a partial one grows while the device finishes.
          next = take(d, inFlight == null);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          next = null;
        }
        if (next == null) {
          if (inFlight != null) {
            deliver(inFlightBatch, inFlight);
            inFlight = null;
            continue;
          }
          if (isClosedAndDrained()) return;
          continue;
        }
        try {
          // the model's own out-of-memory retry only with nothing of this dispatcher's in flight (it cannot see that batch)
          run = submit(d, next, inFlight == null);
        } catch (Throwable t) {
          if (inFlight == null || !Backends.outOfMemory(t)) {
            fail(next, t);
            next = null;
            if (d.model.isClosed()) { // closed under the batcher: the queue is left to the others, or failed with this reason
              ended = new IllegalStateException("its Clip was closed before the batcher (close the batcher first)");
              if (inFlight != null) { // read back (or failed) before this dispatcher ends
                Run r = inFlight;
                inFlight = null;
                deliver(inFlightBatch, r);
              }
              return;
            }
            continue;
          }
          // Two batches in flight did not fit: read the first back, run one at a time from now on,
          // and try again (with the model's retry: idle executors closed, its batch halved).
          deliver(inFlightBatch, inFlight); // cleared after: a fault inside leaves the batch to the catch below
          inFlight = null;
          d.pipelining = false;
          d.model.say("jclip: ClipBatcher on " + d.name + ": two batches in flight do not fit in the GPU's memory (" + t.getMessage()
              + "): running one batch at a time");
          try {
            run = submit(d, next, true);
          } catch (Throwable again) {
            fail(next, again);
            continue;
          }
        }
        if (inFlight != null) {
          deliver(inFlightBatch, inFlight); // cleared after: a fault inside leaves the batch to the catch below
          inFlight = null;
        }
        if (run.isDone()) {
          deliver(next, run);
        } else {
          inFlight = run;
          inFlightBatch = next;
        }
        run = null;
        next = null;
      }
    } catch (Throwable unexpected) { // a fault of the batcher's own: this dispatcher's requests fail
      ended = unexpected;
      for (Run r : new Run[] {inFlight, run}) {
        try {
          if (r != null) r.close();
        } catch (Throwable x) {
          unexpected.addSuppressed(x);
        }
      }
      if (inFlight != null) fail(inFlightBatch, unexpected);
      if (next != null) fail(next, unexpected);
      if (unexpected instanceof Error e) throw e;
    } finally {
      boolean last;
      lock.lock();
      try {
        d.ended = true;
        last = --liveDispatchers == 0;
        if (last) closed = true; // nothing runs requests any more
        arrived.signalAll();
      } finally {
        lock.unlock();
      }
      if (ended != null) {
        d.model.say("jclip: ClipBatcher: the dispatcher on " + d.name + " ended (" + ended + ")"
            + (last ? "; no other is left: the batcher is closed" : "; the others go on"));
      }
      if (last && ended != null) {
        // what this dispatcher held, and what the queue holds, with no one left to run it
        List<Request> held;
        lock.lock();
        try {
          held = new ArrayList<>(active);
        } finally {
          lock.unlock();
        }
        for (Request r : held) fail(r, ended);
        failQueued(ended);
      }
    }
  }

  private Run submit(Dispatcher d, Batch b, boolean retry) {
    return b.kind == Kind.IMAGE ? d.model.submitImages(pixelsOf(b), retry) : d.model.submitTexts(tokensOf(b), d.pad ? TEXT_LENGTH_STEP : 1, retry);
  }

  /** Whether the next full batch may be submitted while one is in flight: on a device that takes turns, until two did not fit. */
  private boolean pipelines(Dispatcher d) {
    return d.pipelining && !d.model.oneBatchAtATime();
  }

  private boolean isClosedAndDrained() {
    lock.lock();
    try {
      return closed && images.isEmpty() && texts.isEmpty();
    } finally {
      lock.unlock();
    }
  }

  /**
   * The next batch: the kind whose oldest request is older, up to the batch size. With {@code wait},
   * waits for a request (and, with a delay, for a full batch until the oldest request has waited
   * that long); without, returns null unless a full batch is queued. Null when closed and drained.
   */
  private Batch take(Dispatcher d, boolean wait) throws InterruptedException {
    lock.lock();
    try {
      while (true) {
        dropSettled();
        int max = maxBatch(d);
        if (!wait) {
          // only the oldest kind, so that a stream of full batches of one kind cannot starve the
          // other; and not while another dispatcher is idle (its device would take it at once)
          Kind k = oldestFull(max);
          return k == null || k != oldest() || idleDispatchers > 0 ? null : cut(d, k, max);
        }
        if (images.isEmpty() && texts.isEmpty()) {
          if (closed) return null;
          idleDispatchers++;
          try {
            arrived.await();
          } finally {
            idleDispatchers--;
          }
          continue;
        }
        Kind k = oldest();
        long delay = options.maxDelay().toNanos();
        if (delay > 0 && !closed && queued(k) < max) {
          long left = head(k).arrived + delay - System.nanoTime();
          if (left > 0) { // the oldest may still wait: a full batch of either kind goes meanwhile
            Kind full = oldestFull(max);
            if (full != null) return cut(d, full, max);
            idleDispatchers++; // nothing in flight: a busy dispatcher leaves a full batch to this one
            try {
              arrived.awaitNanos(left);
            } finally {
              idleDispatchers--;
            }
            continue;
          }
        }
        return cut(d, k, max);
      }
    } finally {
      lock.unlock();
    }
  }

  private ArrayDeque<Request> queue(Kind k) {
    return k == Kind.IMAGE ? images : texts;
  }

  private int queued(Kind k) {
    return k == Kind.IMAGE ? queuedImages : queuedTexts;
  }

  /** Adds {@code delta} to the count of kind {@code k}'s items waiting (under the lock). */
  private void addQueued(Kind k, int delta) {
    if (k == Kind.IMAGE) queuedImages += delta;
    else queuedTexts += delta;
  }

  private Request head(Kind k) {
    return queue(k).peekFirst();
  }

  private Kind oldest() {
    if (images.isEmpty()) return Kind.TEXT;
    if (texts.isEmpty()) return Kind.IMAGE;
    return images.peekFirst().seq <= texts.peekFirst().seq ? Kind.IMAGE : Kind.TEXT;
  }

  private Kind oldestFull(int max) {
    boolean i = queuedImages >= max, t = queuedTexts >= max;
    if (i && t) return oldest();
    return i ? Kind.IMAGE : t ? Kind.TEXT : null;
  }

  /** Drops from both queues the untaken rows of requests that completed already (cancelled, or failed in an earlier batch). */
  private void dropSettled() {
    for (ArrayDeque<Request> q : List.of(images, texts)) {
      q.removeIf(r -> {
        if (!r.settled && !r.future.isDone()) return false; // settled: failed in another batch (its future completes later, elsewhere)
        addQueued(r.kind, -(r.count - r.taken));
        r.settled = true; // cancelled (or failed): its rows in flight, if any, are dropped when they come back
        active.remove(r);
        return true;
      });
    }
  }

  /** Up to {@code max} items of kind {@code k} from the front of its queue, oldest first. */
  private Batch cut(Dispatcher d, Kind k, int max) {
    ArrayDeque<Request> q = queue(k);
    List<Slice> slices = new ArrayList<>();
    int n = 0;
    while (n < max && !q.isEmpty()) {
      Request r = q.peekFirst();
      active.add(r);
      int take = Math.min(max - n, r.count - r.taken);
      slices.add(new Slice(r, r.taken, r.taken + take, n));
      r.taken += take;
      n += take;
      if (r.taken == r.count) q.pollFirst();
    }
    addQueued(k, -n);
    int size = d.pad ? paddedSize(n, max) : n;
    batches++;
    byModel[d.index]++;
    ranItems += n;
    paddedRows += size - n;
    bySize.merge(size, 1L, Long::sum);
    return new Batch(k, slices, size);
  }

  /** Whether the batch is exactly one request, all of its items and no padding. */
  private static boolean whole(Batch b) {
    if (b.slices.size() != 1) return false;
    Slice s = b.slices.get(0);
    return s.from == 0 && s.to == s.request.count && b.size == s.request.count;
  }

  private Clip.Pixels pixelsOf(Batch b) {
    int res = model.resolution(), per = 3 * res * res;
    if (whole(b)) return b.slices.get(0).request.pixels; // one whole request, as it came
    float[] d = new float[b.size * per];
    for (Slice s : b.slices) System.arraycopy(s.request.pixels.data(), s.from * per, d, s.at * per, (s.to - s.from) * per);
    return new Clip.Pixels(b.size, res, d);
  }

  /** The batch's texts at the longest request's length; padding rows are all zeros (an empty text's features, dropped). */
  private Clip.Tokens tokensOf(Batch b) {
    if (whole(b)) return b.slices.get(0).request.tokens;
    int len = 1;
    for (Slice s : b.slices) len = Math.max(len, s.request.tokens.length());
    int[] ids = new int[b.size * len];
    for (Slice s : b.slices) {
      int l = s.request.tokens.length();
      for (int i = s.from; i < s.to; i++) System.arraycopy(s.request.tokens.ids(), i * l, ids, (s.at + i - s.from) * len, l);
    }
    return new Clip.Tokens(b.size, len, ids);
  }

  /** Reads the batch back and completes the requests whose last rows it held; a failure fails the batch's requests. */
  private void deliver(Batch b, Run run) {
    float[][] out;
    try {
      out = run.finish();
      if (out == null || out.length < b.size) {
        throw new IllegalStateException("the model gave " + (out == null ? "no" : out.length) + " rows for a batch of " + b.size);
      }
    } catch (Throwable t) {
      try {
        run.close();
      } catch (Throwable x) {
        t.addSuppressed(x);
      }
      fail(b, t);
      return;
    }
    for (Slice s : b.slices) {
      Request r = s.request;
      for (int i = s.from; i < s.to; i++) r.rows[i] = out[s.at + i - s.from];
      boolean last;
      synchronized (r) { // two dispatchers may deliver parts of one request; the last to count sees every row
        r.done += s.to - s.from;
        last = r.done == r.count;
      }
      if (last) complete(r);
    }
  }

  /** Settles a request (once: false if it was already), under the lock. */
  private boolean settle(Request r) {
    lock.lock();
    try {
      if (r.settled) return false;
      r.settled = true;
      active.remove(r);
      return true;
    } finally {
      lock.unlock();
    }
  }

  /** Completes a request's future: on the dispatcher for a blocking call, else on the common pool (see {@link #submitImages}). */
  private void complete(Request r) {
    if (!settle(r)) return;
    if (r.direct) r.future.complete(r.rows);
    else r.future.completeAsync(() -> r.rows, COMPLETIONS);
  }

  private void fail(Request r, Throwable t) {
    if (!settle(r)) return;
    if (r.direct) r.future.completeExceptionally(t);
    else COMPLETIONS.execute(() -> r.future.completeExceptionally(t));
  }

  private void fail(Batch b, Throwable t) {
    lock.lock();
    try {
      failedBatches++;
    } finally {
      lock.unlock();
    }
    for (Slice s : b.slices) fail(s.request, t);
  }

  /** Fails every queued request (the dispatcher is ending without running them) and refuses new ones. */
  private void failQueued(Throwable t) {
    List<Request> left = new ArrayList<>();
    lock.lock();
    try {
      closed = true;
      left.addAll(images);
      left.addAll(texts);
      images.clear();
      texts.clear();
      queuedImages = queuedTexts = 0;
      arrived.signalAll();
    } finally {
      lock.unlock();
    }
    for (Request r : left) fail(r, t);
  }

  /** What the batcher has done so far. */
  public Stats stats() {
    lock.lock();
    try {
      return new Stats(requests, ranItems, batches, Collections.unmodifiableSortedMap(new TreeMap<>(bySize)), paddedRows, failedBatches, rejected,
          queuedImages + queuedTexts, java.util.Arrays.stream(byModel).boxed().toList());
    } finally {
      lock.unlock();
    }
  }

  /** Refuses new requests, runs every queued one, and waits for the dispatcher to end. */
  @Override
  public void close() {
    lock.lock();
    try {
      closed = true;
      arrived.signalAll();
    } finally {
      lock.unlock();
    }
    boolean interrupted = false;
    while (true) {
      try {
        for (Dispatcher d : dispatchers) d.thread.join();
        break;
      } catch (InterruptedException e) {
        interrupted = true;
      }
    }
    if (interrupted) Thread.currentThread().interrupt();
  }

  /** A {@link Clip} as the batcher's model. */
  private record ClipModel(Clip clip) implements Model {
    @Override
    public int batchSize() {
      return clip.batchSize();
    }

    @Override
    public int resolution() {
      return clip.config().imageResolution();
    }

    @Override
    public int contextLength() {
      return clip.config().contextLength();
    }

    @Override
    public int vocabSize() {
      return clip.config().vocabSize();
    }

    @Override
    public boolean takesTurns() {
      return clip.takesTurns();
    }

    @Override
    public void say(String message) {
      clip.options().say().accept(message);
    }

    @Override
    public boolean oneBatchAtATime() {
      return clip.oneBatchAtATime();
    }

    @Override
    public boolean isClosed() {
      return clip.isClosed();
    }

    @Override
    public Run submitImages(Clip.Pixels pixels, boolean retry) {
      return run(clip.submitImage(pixels, retry));
    }

    @Override
    public Run submitTexts(Clip.Tokens tokens, int lengthStep, boolean retry) {
      return run(clip.submitText(tokens, lengthStep, retry));
    }

    @Override
    public String name() {
      return clip.device();
    }

    private static Run run(Clip.Pending p) {
      return new Run() {
        @Override
        public boolean isDone() {
          return p.isDone();
        }

        @Override
        public float[][] finish() {
          return p.finish();
        }

        @Override
        public void close() {
          p.close();
        }
      };
    }
  }
}
