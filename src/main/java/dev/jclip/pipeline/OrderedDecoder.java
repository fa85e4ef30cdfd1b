package dev.jclip.pipeline;

import dev.jclip.image.ClipPreprocessor;
import dev.jclip.image.DecodedImage;
import dev.jclip.image.ImageDecoder;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Decodes and preprocesses the items of an {@link InputSource} on a pool of worker threads and
 * hands them back in input order, one at a time: the front end of a job whose batches depend on
 * which inputs decode (zero-shot classification batches the good images only, so a batch cannot be
 * laid out before its inputs are decoded, as {@link EmbedJob}'s are).
 *
 * <pre>{@code
 * try (OrderedDecoder d = new OrderedDecoder(source, new ImageDecoder(), 224, 8, 32)) {
 *   for (OrderedDecoder.Decoded x; (x = d.next()) != null; ) {
 *     if (x.error() != null) log(x.item().id() + ": " + x.error()); else use(x.pixels());
 *   }
 * }
 * }</pre>
 *
 * <p>At most {@code window} items are read ahead of the one last returned (being decoded, or
 * decoded and waiting for their turn), so memory stays bounded whatever the input's size: the
 * window times one preprocessed image ({@code 3·R·R} floats), plus one decoded image per worker.
 * The source is read on the thread that calls {@link #next()}, which is the only thread that may
 * call it. A failure to decode one input never stops the others: it comes back as that input's
 * {@code error}.
 */
public final class OrderedDecoder implements AutoCloseable {
  /**
   * One input, decoded or not.
   *
   * @param pixels the preprocessed image ({@code 3·R·R} floats, CHW), null when it failed
   * @param width the file's width (also when it was decoded at a reduced scale)
   * @param error why the input cannot be used (the exception's message, which names the file), or null
   */
  public record Decoded(InputItem item, float[] pixels, int width, int height, String error) {}

  private final InputSource source;
  private final ImageDecoder decoder;
  private final ExecutorService workers;
  private final ThreadLocal<ClipPreprocessor> preprocessors;
  private final int window;
  private final ArrayDeque<Future<Decoded>> ahead = new ArrayDeque<>();
  private boolean ended;
  private final WorkerTimes workerTimes = new WorkerTimes();
  /** Time {@link #next()} waited for the item at the front to be decoded. */
  private long waitNanos;
  private final AtomicInteger maxAhead = new AtomicInteger();

  /**
   * @param resolution the model's input size R ({@code ClipPreprocessor(R)})
   * @param workers decoding threads (≥ 1)
   * @param window items read ahead at most (≥ 1); a few per worker keep them busy while the front item is slow
   */
  public OrderedDecoder(InputSource source, ImageDecoder decoder, int resolution, int workers, int window) {
    if (workers < 1) throw new IllegalArgumentException("--workers must be positive, got " + workers);
    if (window < 1) throw new IllegalArgumentException("window must be positive, got " + window);
    this.source = source;
    this.decoder = decoder;
    this.window = window;
    this.preprocessors = ThreadLocal.withInitial(() -> new ClipPreprocessor(resolution));
    AtomicInteger n = new AtomicInteger();
    this.workers = Executors.newFixedThreadPool(workers, r -> {
      Thread t = new Thread(r, "decode-" + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    });
  }

  /**
   * The next input in input order, decoded, or null after the last. Throws the source's
   * IOException (a failure of the whole source), and InterruptedException when the calling thread
   * is interrupted while it waits.
   */
  public Decoded next() throws IOException, InterruptedException {
    fill();
    Future<Decoded> front = ahead.poll();
    if (front == null) return null;
    // Start one more before waiting, so that the workers stay busy while this one finishes.
    fill();
    long t = System.nanoTime();
    try {
      return front.get();
    } catch (ExecutionException e) {
      // decode() catches what a bad input throws; anything else is a bug or an Error: stop.
      Throwable c = e.getCause();
      if (c instanceof RuntimeException r) throw r;
      if (c instanceof Error er) throw er;
      throw new IllegalStateException(c);
    } finally {
      waitNanos += System.nanoTime() - t;
    }
  }

  private void fill() throws IOException {
    while (!ended && ahead.size() < window) {
      InputItem item = source.next();
      if (item == null) {
        ended = true;
        return;
      }
      ahead.add(workers.submit(() -> decode(item)));
      maxAhead.accumulateAndGet(ahead.size(), Math::max);
    }
  }

  /** Worker: decode and preprocess one input, or say why it cannot be used. */
  private Decoded decode(InputItem item) {
    if (item.error() != null) return new Decoded(item, null, 0, 0, item.error());
    try {
      // An archive member has no file of its own: its id names it in messages.
      DecodedImage im = workerTimes.decode(() -> item.bytes() != null
          ? decoder.decode(item.file() != null ? item.file() : Path.of(item.id()), item.bytes())
          : decoder.decode(item.file()));
      float[] px = workerTimes.preprocess(() -> {
        ClipPreprocessor pre = preprocessors.get();
        float[] p = new float[pre.floatsPerImage()];
        pre.toTensor(im, p, 0);
        return p;
      });
      return new Decoded(item, px, im.sourceWidth(), im.sourceHeight(), null);
    } catch (IOException | RuntimeException e) {
      // String.valueOf: an exception without a message still marks the input bad.
      return new Decoded(item, null, 0, 0, String.valueOf(e.getMessage()));
    } catch (OutOfMemoryError e) {
      return new Decoded(item, null, 0, 0, item.id() + ": not enough memory to decode");
    }
  }

  /** The most items that were ever read ahead at once (≤ window): for tests of the bound. */
  public int maxAhead() {
    return maxAhead.get();
  }

  /**
   * Seconds so far: decode_cpu_s, preprocess_cpu_s (the workers' CPU time), decode_wall_s,
   * preprocess_wall_s (their elapsed time), each summed over the workers;
   * waiting_for_decode_s (how long {@link #next()} waited for the front item).
   */
  public Map<String, Double> timings() {
    Map<String, Double> t = new LinkedHashMap<>();
    workerTimes.putInto(t);
    t.put("waiting_for_decode_s", waitNanos / 1e9);
    return t;
  }

  /** Stops the workers (items still being decoded are dropped); does not close the source. */
  @Override
  public void close() {
    workers.shutdownNow();
    ahead.clear();
  }
}
