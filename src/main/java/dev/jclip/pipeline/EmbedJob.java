package dev.jclip.pipeline;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jclip.image.ClipPreprocessor;
import dev.jclip.image.DecodedImage;
import dev.jclip.image.ImageDecodeException;
import dev.jclip.image.ImageDecoder;
import dev.jclip.io.AtomicFile;
import dev.jclip.io.DType;
import dev.jclip.io.NpyWriter;
import dev.jclip.io.ParquetWriter;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.atomic.LongAdder;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * A batch embedding job in clip-retrieval's output layout, resumable after a crash; the engine of
 * {@code jclip embed} (see docs/pipeline.md).
 *
 * <pre>{@code
 * EmbedJob.Options o = new EmbedJob.Options().input("images/").output(Path.of("out"))
 *     .batchSize(256).workers(8).shardSize(100_000).dtype(EmbedJob.Dtype.FLOAT16);
 * EmbedJob.Result r = EmbedJob.run(o, encoder);   // encoder: a BatchEncoder over the model
 * }</pre>
 *
 * <p>Stages: the calling thread reads the source and forms batches (each in one pooled pixel
 * buffer: the pool size bounds memory and is the backpressure), a pool of workers decodes and
 * preprocesses into the buffers, one encoder thread runs the model on completed batches in input
 * order, one writer thread writes shards. A shard is committed by renaming its metadata parquet,
 * the last of its files; a re-run skips committed shards and redoes the others.
 */
public final class EmbedJob {
  public enum Dtype {
    FLOAT16(DType.F16),
    FLOAT32(DType.F32);

    final DType dtype;

    Dtype(DType d) {
      this.dtype = d;
    }

    /** "float16" / "float32" as on the command line. */
    public static Dtype parse(String s) {
      return switch (s.toLowerCase(java.util.Locale.ROOT)) {
        case "float16", "f16", "fp16", "half" -> FLOAT16;
        case "float32", "f32", "fp32", "float" -> FLOAT32;
        default -> throw new IllegalArgumentException("--dtype must be float16 or float32, not '" + s + "'");
      };
    }
  }

  /** The command line's options (see {@code jclip embed --help} once wired). */
  public static final class Options {
    String input;
    Path output;
    int batchSize = 256;
    int workers = Math.max(1, Runtime.getRuntime().availableProcessors());
    int shardSize = 100_000;
    Dtype dtype = Dtype.FLOAT16;
    String imageColumn;
    String captionColumn;
    String modelName;
    String checkpointActivation;
    String modelSha256;
    String precision;
    /** The activation the model was told to use instead of its checkpoint's, or null (a resume parameter when set). */
    String activation;
    Progress.Mode progress = Progress.Mode.AUTO;
    long progressIntervalMillis = 10_000;
    long maxPixels = ImageDecoder.DEFAULT_MAX_PIXELS;
    boolean jpegDraft;
    boolean retrySkipped;
    int bufferedBatches = 3;
    java.io.PrintWriter log = new java.io.PrintWriter(System.err, true);
    String logPrefix = "embed";

    public Options input(String v) {
      input = v;
      return this;
    }

    public Options output(Path v) {
      output = v;
      return this;
    }

    public Options batchSize(int v) {
      batchSize = positive("--batch-size", v);
      return this;
    }

    public Options workers(int v) {
      workers = positive("--workers", v);
      return this;
    }

    public Options shardSize(int v) {
      shardSize = positive("--shard-size", v);
      return this;
    }

    public Options dtype(Dtype v) {
      dtype = Objects.requireNonNull(v);
      return this;
    }

    public Options imageColumn(String v) {
      imageColumn = v;
      return this;
    }

    public Options captionColumn(String v) {
      captionColumn = v;
      return this;
    }

    /** Model name and the checkpoint's SHA-256 (may be null), recorded in job.json. */
    public Options model(String name, String sha256) {
      modelName = name;
      modelSha256 = sha256;
      return this;
    }

    public Options precision(String v) {
      precision = v;
      return this;
    }

    /** The activation override the model was loaded with ({@code --activation}), or null: recorded, and a resume must repeat it. */
    public Options activation(String v) {
      activation = v == null ? null : dev.jclip.model.Activation.parse(v).hfName();
      return this;
    }

    /**
     * The activation the checkpoint itself gives ("quick_gelu" or "gelu"; null: not known): a job
     * recorded with that activation named resumes without it, and the other way round.
     */
    public Options checkpointActivation(String v) {
      checkpointActivation = v == null ? null : dev.jclip.model.Activation.parse(v).hfName();
      return this;
    }

    /** "auto" (bar on a terminal, lines otherwise), "bar", "lines" or "none". */
    public Options progress(String mode, long intervalMillis) {
      progress = Progress.mode(mode);
      progressIntervalMillis = Math.max(50, intervalMillis);
      return this;
    }

    public Options maxPixels(long v) {
      maxPixels = v;
      return this;
    }

    /**
     * Decode JPEGs at reduced scale as Pillow's {@code draft("RGB", (R, R))} does, R the model's
     * input size ({@link ImageDecoder#withJpegDraft}): cheaper decoding of large photos,
     * slightly different features from the reference preprocess.
     */
    public Options jpegDraft(boolean v) {
      jpegDraft = v;
      return this;
    }

    /**
     * Whether a resumed job computes again the committed shards that skipped inputs (and replaces
     * them, rows and errors, once the new shard is complete); otherwise what a run skipped stays
     * skipped. Not a job parameter: any run of a job may set it.
     */
    public Options retrySkipped(boolean v) {
      retrySkipped = v;
      return this;
    }

    /** Pixel buffers in flight (≥ 2): one being encoded, the others being filled. */
    public Options bufferedBatches(int v) {
      bufferedBatches = Math.max(2, v);
      return this;
    }

    /** Where the job says what it does (its progress included), each line starting {@code embed: }. */
    public Options log(PrintStream v) {
      return log(new java.io.PrintWriter(Objects.requireNonNull(v), true), "embed");
    }

    /** Where the job says what it does, each line starting {@code prefix + ": "} (a command's own stream and name). */
    public Options log(java.io.PrintWriter v, String prefix) {
      log = Objects.requireNonNull(v);
      logPrefix = Objects.requireNonNull(prefix);
      return this;
    }

    private static int positive(String name, int v) {
      if (v <= 0) throw new IllegalArgumentException(name + " must be positive, got " + v);
      return v;
    }
  }

  /** What a run did. Timings are in seconds; decode and preprocess sum the workers' CPU time. */
  public record Result(
      long items, long embedded, long errors, int shards, int shardsSkipped, Map<String, Double> timings) {}

  /** Files of one output directory. */
  static final class Layout {
    final Path root;
    final Path img;
    final Path text;
    final Path meta;
    final Path work;

    Layout(Path root) {
      this.root = root;
      img = root.resolve("img_emb");
      text = root.resolve("text_emb");
      meta = root.resolve("metadata");
      work = root.resolve(".jclip");
    }

    Path imgFile(int n) {
      return img.resolve("img_emb_" + n + ".npy");
    }

    Path textFile(int n) {
      return text.resolve("text_emb_" + n + ".npy");
    }

    Path metaFile(int n) {
      return meta.resolve("metadata_" + n + ".parquet");
    }

    Path errorsFile(int n) {
      return work.resolve("errors_" + n + ".jsonl");
    }

    Path countsFile(int n) {
      return work.resolve("shard_" + n + ".json");
    }
  }

  private static final Pattern SHARD_FILE = Pattern.compile("(?:img_emb|text_emb|metadata|errors|shard)_(\\d+)\\.(?:npy|parquet|jsonl|json)");
  private static final Pattern META_FILE = Pattern.compile("metadata_(\\d+)\\.parquet");

  private final Options o;
  /** The first model: its sizes and name describe the job. */
  private final BatchEncoder encoder;
  /** One model per device (e.g. per GPU with --device cuda:all); each runs on its own thread. */
  private final List<BatchEncoder> encoders;
  private final Layout out;
  private final ObjectMapper json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
  private final ObjectMapper jsonLine = new ObjectMapper();
  private final AtomicReference<Throwable> failure = new AtomicReference<>();
  private final WorkerTimes workerTimes = new WorkerTimes();
  /** {@link ImageDecoder#jpegDecoder()} of this run, for job.json. */
  private String jpegDecoder;
  private final LongAdder encodeNanos = new LongAdder();
  private final LongAdder encoderWaitNanos = new LongAdder();
  private long writeNanos;

  private EmbedJob(Options o, List<BatchEncoder> encoders) {
    this.o = o;
    this.encoders = List.copyOf(encoders);
    this.encoder = encoders.get(0);
    for (BatchEncoder b : encoders) {
      if (b.embedDim() != encoder.embedDim() || b.imageSize() != encoder.imageSize()) {
        throw new IllegalArgumentException("all encoders must have the same embedding size and resolution");
      }
    }
    String computes = encoder.precision();
    if (o.precision != null && computes != null && !o.precision.equalsIgnoreCase(computes)) {
      throw new IllegalArgumentException("the job's options say precision " + o.precision + ", but the model was loaded to compute in " + computes
          + ": load it with that precision (Clip.Options.withPrecision), or leave Options.precision unset");
    }
    this.out = new Layout(o.output);
  }

  /** Runs (or resumes) the job described by {@code options} with {@code encoder} as the model. */
  public static Result run(Options options, BatchEncoder encoder) throws IOException, InterruptedException {
    return run(options, List.of(encoder));
  }

  /**
   * Runs the job with several copies of the model (one per GPU): each takes the next completed
   * batch, and the writer puts the results back in input order, so the output is the same as with
   * one encoder.
   */
  public static Result run(Options options, List<BatchEncoder> encoders) throws IOException, InterruptedException {
    Objects.requireNonNull(options.input, "input");
    Objects.requireNonNull(options.output, "output");
    if (encoders.isEmpty()) throw new IllegalArgumentException("no encoder");
    return new EmbedJob(options, encoders).run();
  }

  /** One batch: a run of consecutive inputs of one shard in one pooled pixel buffer. */
  private static final class Batch {
    final int shard;
    final float[] pixels;
    /** Position in the job's sequence of batches: the writer's order. */
    long seq;
    final List<InputItem> items = new ArrayList<>();
    String[] errors;
    int[] width;
    int[] height;
    boolean lastOfShard;
    /** Items still being decoded, plus one while the batch is open for more. */
    final AtomicInteger pending = new AtomicInteger(1);
    final CountDownLatch done = new CountDownLatch(1);

    Batch(int shard, float[] pixels, int capacity) {
      this.shard = shard;
      this.pixels = pixels;
      errors = new String[capacity];
      width = new int[capacity];
      height = new int[capacity];
    }

    void release() {
      if (pending.decrementAndGet() == 0) done.countDown();
    }
  }

  /** What the encoder hands the writer. */
  private record Encoded(Batch batch, float[] img, float[] text, int good) {}

  private static final Batch END = new Batch(-1, null, 0);
  private static final Encoded END_ENCODED = new Encoded(END, null, null, 0);

  private Result run() throws IOException, InterruptedException {
    checkInput(o.input);
    long t0 = System.nanoTime();
    int e = encoder.embedDim();
    int r = encoder.imageSize();
    int floatsPerImage = 3 * r * r;
    // Before anything is opened: --jpeg-draft without libjpeg-turbo is refused here.
    ImageDecoder decoder = new ImageDecoder(o.maxPixels).withJpegDraft(o.jpegDraft ? r : 0);
    jpegDecoder = decoder.jpegDecoder();
    // opened by its real path, so that the errors it records are the same however the input is named
    try (InputSource source = InputSources.open(canonicalInput(o.input), o.imageColumn, o.captionColumn)) {
      String tooLarge = BatchBuffers.tooLarge(batchSize(source), r, buffers(encoders.size())); // before anything is created
      if (tooLarge != null) throw new IllegalArgumentException(tooLarge);
      boolean captions = source.hasCaptions();
      boolean table = source instanceof InputSources.TableSource || source instanceof InputSources.ParquetSource;
      if (!table && (o.imageColumn != null || o.captionColumn != null)) {
        o.log.println(o.logPrefix + ": note: --image-column and --caption-column name a table's columns; " + o.input + " is not a table (.csv, .jsonl,"
            + " .parquet), so they are not used");
      }
      checkOutputFolder(o.output);
      Files.createDirectories(out.img);
      Files.createDirectories(out.meta);
      Files.createDirectories(out.work);
      try (FileLockHolder lock = FileLockHolder.take(out.work.resolve("lock"), o.output)) {
        return runLocked(source, captions, decoder, t0, e, r, floatsPerImage);
      }
    }
  }

  /**
   * The output folder's lock ({@code .jclip/lock}, held for the whole run): a second embed into the
   * same folder, from this process or another, is refused instead of racing the first's shards.
   */
  private record FileLockHolder(java.nio.channels.FileChannel channel, java.nio.channels.FileLock lock) implements AutoCloseable {
    static FileLockHolder take(Path file, Path output) throws IOException {
      java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(file, java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.WRITE);
      java.nio.channels.FileLock lock;
      try {
        lock = ch.tryLock();
      } catch (java.nio.channels.OverlappingFileLockException held) {
        lock = null;
      } catch (IOException | RuntimeException ex) {
        ch.close();
        throw ex;
      }
      if (lock == null) {
        ch.close();
        throw new IllegalStateException("another jclip embed is writing to " + output + " (it holds " + file
            + "): wait for it to finish, or choose another output folder");
      }
      return new FileLockHolder(ch, lock);
    }

    @Override
    public void close() throws IOException {
      try {
        lock.release();
      } finally {
        channel.close();
      }
    }
  }

  private Result runLocked(InputSource source, boolean captions, ImageDecoder decoder, long t0, int e, int r, int floatsPerImage)
      throws IOException, InterruptedException {
    if (captions) Files.createDirectories(out.text);
    checkParams(source, captions);
    Set<Integer> complete = recover();
    redo.putAll(redoShards(complete));
    if (!redo.isEmpty()) checkCommittedInputs(complete); // before any shard is computed again: a changed input then stops the run with nothing written
    complete.removeAll(redo.keySet());
    Redo growable = growable(complete);
    int growableShard = growable == null ? -1 : java.util.Collections.max(complete);

    int batchSize = batchSize(source);
    o.log.println(o.logPrefix + ": JPEG decoder: " + decoder.jpegDecoder() + ", " + o.workers + (o.workers == 1 ? " worker" : " workers"));
    Progress progress = new Progress(o.progress, o.log, source.size(), o.logPrefix);
    ScheduledExecutorService ticker =
        Executors.newSingleThreadScheduledExecutor(
            rr -> {
              Thread t = new Thread(rr, "embed-progress");
              t.setDaemon(true);
              return t;
            });
    ticker.scheduleAtFixedRate(() -> progress.report(false), o.progressIntervalMillis, o.progressIntervalMillis, TimeUnit.MILLISECONDS);

    int k = encoders.size();
    // Each model holds one buffer while it runs; the rest are being filled by the workers.
    int buffers = buffers(k);
    BlockingQueue<float[]> pool = new ArrayBlockingQueue<>(buffers);
    for (int i = 0; i < buffers; i++) pool.add(new float[batchSize * floatsPerImage]);
    BlockingQueue<Batch> toEncode = new ArrayBlockingQueue<>(buffers + k);
    BlockingQueue<Encoded> toWrite = new ArrayBlockingQueue<>(k + 1);
    ExecutorService workers = Executors.newFixedThreadPool(o.workers, daemon("embed-decode"));
    ThreadLocal<ClipPreprocessor> pre = ThreadLocal.withInitial(() -> new ClipPreprocessor(r));
    Thread feeder = Thread.currentThread();

    List<Thread> enc = new ArrayList<>();
    for (BatchEncoder model : encoders) {
      enc.add(daemon("embed-encode").newThread(() -> guard(feeder, () -> encodeLoop(model, toEncode, toWrite, pool, captions, e, floatsPerImage))));
    }
    Thread wr = daemon("embed-write").newThread(() -> guard(feeder, () -> writeLoop(toWrite, source, captions, e, progress, k)));
    enc.forEach(Thread::start);
    wr.start();
    try {
      Batch batch = null;
      InputItem item;
      int resumed = -1; // the committed shard whose inputs are being enumerated
      InputsDigest seen = null;
      // The growable shard's inputs, held while it is skipped (none carrying its bytes), to be fed again if the input grew into it.
      List<InputItem> held = growable != null && growable.rec().digest() != null ? new ArrayList<>() : null;
      java.util.ArrayDeque<InputItem> replay = new java.util.ArrayDeque<>();
      while ((item = !replay.isEmpty() ? replay.poll() : source.next()) != null) {
        int shard = Math.toIntExact(item.index() / o.shardSize);
        if (resumed >= 0 && shard != resumed) {
          checkResumedShard(resumed, seen);
          resumed = -1;
        }
        if (shard == growableShard && complete.contains(shard) && resumedItems.getOrDefault(shard, 0L) == growable.items()) {
          // One input more than the input's last shard was committed with: if after the same ones, the input grew into it.
          String digest = growable.rec().digest();
          boolean same = digest != null && digest.equals(growable.rec().of(seen));
          if (same && held != null) {
            redo.put(shard, growable);
            complete.remove(shard);
            resumedItems.remove(shard);
            progress.skipped.addAndGet(-held.size());
            resumed = -1;
            replay.addAll(held);
            replay.add(item);
            held = null;
            continue;
          }
          if (same || digest == null) growthRefused = growthRefusal(digest != null); // said where the shard's check stops the job
        }
        if (complete.contains(shard)) {
          progress.skipped.incrementAndGet();
          resumedItems.merge(shard, 1L, Long::sum);
          if (resumed != shard) {
            resumed = shard;
            seen = new InputsDigest();
          }
          seen.add(item);
          if (shard == growableShard && held != null) {
            if (item.bytes() == null) held.add(item);
            else held = null; // an archive's bytes are not held: a grown archive stops the job as any changed input does
          }
          continue;
        }
        if (batch != null && (batch.shard != shard || batch.items.size() == batchSize)) {
          batch.lastOfShard = batch.shard != shard;
          closeBatch(batch, toEncode);
          batch = null;
        }
        if (batch == null) batch = new Batch(shard, take(pool), batchSize);
        int slot = batch.items.size();
        batch.items.add(item);
        batch.pending.incrementAndGet();
        Batch b = batch;
        InputItem it = item;
        workers.execute(() -> prepare(b, slot, it, decoder, pre.get(), floatsPerImage));
      }
      if (resumed >= 0) checkResumedShard(resumed, seen);
      if (batch != null) {
        batch.lastOfShard = true;
        closeBatch(batch, toEncode);
      }
      for (int i = 0; i < k; i++) toEncode.put(END);
      wr.join();
      checkResumedShards(complete);
      for (int n : redo.keySet()) {
        if (!redone.contains(n)) throw inputChanged("shard " + n + " was committed with " + inputs(redo.get(n).items()) + ", and the input now ends before it");
      }
    } catch (InterruptedException | IOException ex) {
      // A failing stage interrupts the feeder, which may surface here as ClosedByInterruptException.
      if (failure.get() == null) throw ex;
    } finally {
      stopping = true; // a stage failing now, as it is stopped, must not interrupt the caller's thread after run() returns
      workers.shutdownNow();
      enc.forEach(Thread::interrupt);
      wr.interrupt();
      ticker.shutdownNow();
      joinQuietly(wr, 30_000); // no file of the job's is written after run() returns and the folder's lock is released
    }
    Throwable f = failure.get();
    if (f != null) {
      if (f instanceof IOException io) throw io;
      if (f instanceof RuntimeException re) throw re;
      if (f instanceof Error er) throw er;
      throw new IOException(f);
    }
    progress.report(true);
    return finish(source, complete.size(), t0); // the committed shards skipped (not those computed again)
  }

  private float[] take(BlockingQueue<float[]> pool) throws InterruptedException {
    return pool.take();
  }

  private long batches;

  private void closeBatch(Batch b, BlockingQueue<Batch> toEncode) throws InterruptedException {
    b.seq = batches++;
    toEncode.put(b);
    b.release();
  }

  private interface Body {
    void run() throws Exception;
  }

  /** Runs a stage; its first failure stops the job (the feeder is interrupted and rethrows it). */
  private void guard(Thread feeder, Body body) {
    try {
      body.run();
    } catch (InterruptedException e) {
      // Stopped because another stage failed.
    } catch (Throwable t) {
      if (failure.compareAndSet(null, t) && !stopping) feeder.interrupt();
    }
  }

  /** Set when the feeder stops the other stages (its own end, or its failure). */
  private volatile boolean stopping;

  private static void joinQuietly(Thread t, long millis) {
    try {
      t.join(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static java.util.concurrent.ThreadFactory daemon(String name) {
    AtomicInteger n = new AtomicInteger();
    return rr -> {
      Thread t = new Thread(rr, name + "-" + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    };
  }

  /** Worker: decode and preprocess one input into its slot, or record why it cannot be used. */
  private void prepare(Batch b, int slot, InputItem item, ImageDecoder decoder, ClipPreprocessor pre, int fpi) {
    try {
      if (item.error() != null) {
        b.errors[slot] = item.error();
        return;
      }
      DecodedImage im = workerTimes.decode(() -> item.bytes() != null ? decoder.decode(item.file(), item.bytes()) : decoder.decode(item.file()));
      workerTimes.preprocess(() -> {
        pre.toTensor(im, b.pixels, slot * fpi);
        return null;
      });
      // The file's size, also when it was decoded at a reduced scale.
      b.width[slot] = im.sourceWidth();
      b.height[slot] = im.sourceHeight();
    } catch (ImageDecodeException e) {
      b.errors[slot] = e.getMessage();
    } catch (RuntimeException e) {
      b.errors[slot] = item.id() + ": cannot preprocess: " + e;
    } catch (OutOfMemoryError e) {
      b.errors[slot] = item.id() + ": not enough memory to decode";
    } finally {
      b.release();
    }
  }

  /** A batch being encoded: submitted, not yet finished and handed on. */
  private record InFlight(Batch batch, BatchEncoder.Pending images, BatchEncoder.Pending texts, float[] img, float[] text, int good) {
    boolean done() {
      return (images == null || images == BatchEncoder.Pending.DONE) && (texts == null || texts == BatchEncoder.Pending.DONE);
    }
  }

  /**
   * The encoder stage. One batch stays in flight: batch n+1 is submitted (on a GPU its pixels
   * upload while batch n computes), then batch n is finished and handed to the writer, so batches
   * reach the writer in the order they arrive. A batch that an encoder computed when it was
   * submitted (the default) is handed on at once: the same work in the same order as before. A
   * batch that fails to submit does not take the one in flight with it: that one is handed on
   * first, as the synchronous stage had already done before it started the failing batch.
   */
  private void encodeLoop(
      BatchEncoder model,
      BlockingQueue<Batch> in, BlockingQueue<Encoded> outQ, BlockingQueue<float[]> pool, boolean captions, int e, int fpi)
      throws InterruptedException {
    InFlight pending = null;
    try {
      while (true) {
        long w = System.nanoTime();
        Batch b = in.take();
        if (b == END) {
          InFlight last = pending;
          pending = null;
          if (last != null) handOn(last, outQ, e);
          outQ.put(END_ENCODED);
          return;
        }
        b.done.await();
        encoderWaitNanos.add(System.nanoTime() - w);
        // Compact the good images to the front so that the model sees a dense batch.
        int good = 0;
        List<String> texts = new ArrayList<>();
        for (int i = 0; i < b.items.size(); i++) {
          if (b.errors[i] != null) continue;
          if (good != i) System.arraycopy(b.pixels, i * fpi, b.pixels, good * fpi, fpi);
          if (captions) texts.add(b.items.get(i).caption() == null ? "" : b.items.get(i).caption());
          good++;
        }
        float[] img = new float[good * e];
        float[] txt = captions ? new float[good * e] : null;
        long t = System.nanoTime();
        BatchEncoder.Pending images = null, textRows = null;
        try {
          if (good > 0) {
            images = model.submitImages(b.pixels, good, img);
            if (captions) textRows = model.submitTexts(texts, txt);
          }
        } catch (RuntimeException | Error x) {
          if (images != null) abandon(images, x);
          InFlight before = pending;
          pending = null;
          if (before != null) {
            try {
              handOn(before, outQ, e);
            } catch (InterruptedException y) {
              x.addSuppressed(y);
              Thread.currentThread().interrupt();
            } catch (RuntimeException | Error y) {
              x.addSuppressed(y);
            }
          }
          throw x;
        }
        encodeNanos.add(System.nanoTime() - t);
        // The model has copied the pixels (submitImages' contract): the buffer can be refilled.
        pool.put(b.pixels);
        InFlight before = pending;
        pending = new InFlight(b, images, textRows, img, txt, good);
        if (before != null) handOn(before, outQ, e);
        if (pending.done()) {
          // Encoded already (a synchronous encoder, or no good image): on to the writer at once.
          InFlight now = pending;
          pending = null;
          handOn(now, outQ, e);
        }
      }
    } finally {
      // Interrupted (another stage failed) or failed: the batch still in flight is not wanted.
      if (pending != null) abandon(pending, null);
    }
  }

  /** Finishes a batch's images and texts, normalises its rows and hands it to the writer. */
  private void handOn(InFlight f, BlockingQueue<Encoded> outQ, int e) throws InterruptedException {
    long t = System.nanoTime();
    try {
      if (f.images() != null) f.images().finish();
      if (f.texts() != null) f.texts().finish();
    } catch (RuntimeException | Error x) {
      abandon(f, x);
      throw x;
    }
    encodeNanos.add(System.nanoTime() - t);
    normalize(f.img(), e);
    if (f.text() != null) normalize(f.text(), e);
    outQ.put(new Encoded(f.batch(), f.img(), f.text(), f.good()));
  }

  private static void abandon(InFlight f, Throwable cause) {
    if (f.images() != null) abandon(f.images(), cause);
    if (f.texts() != null) abandon(f.texts(), cause);
  }

  /** Closes an unfinished batch; its failure is added to {@code cause} (or, without one, dropped: the job is stopping). */
  private static void abandon(BatchEncoder.Pending p, Throwable cause) {
    try {
      p.close();
    } catch (RuntimeException | Error x) {
      if (cause != null) cause.addSuppressed(x);
    }
  }

  /**
   * For tests of the encoder stage alone: runs it over {@code batches} (batch i: {@code counts[i]}
   * images, no captions, no errors) with {@code model}, and adds the image rows it hands to the
   * writer to {@code handedOn}, in order, before rethrowing the model's failure, if any.
   */
  static void runEncoderStage(BatchEncoder model, List<float[]> batches, int[] counts, List<float[]> handedOn) throws Exception {
    EmbedJob job = new EmbedJob(new Options().output(Path.of("unused")), List.of(model));
    BlockingQueue<Batch> in = new ArrayBlockingQueue<>(batches.size() + 1);
    BlockingQueue<Encoded> outQ = new ArrayBlockingQueue<>(batches.size() + 1);
    BlockingQueue<float[]> pool = new ArrayBlockingQueue<>(batches.size() + 1);
    for (int i = 0; i < batches.size(); i++) {
      Batch b = new Batch(0, batches.get(i), counts[i]);
      for (int k = 0; k < counts[i]; k++) b.items.add(new InputItem(k, "item " + k, null, null, null, Map.of(), null));
      b.seq = i;
      b.release();
      in.add(b);
    }
    in.add(END);
    int r = model.imageSize();
    try {
      job.encodeLoop(model, in, outQ, pool, false, model.embedDim(), 3 * r * r);
    } finally {
      for (Encoded x; (x = outQ.poll()) != null;) if (x != END_ENCODED) handedOn.add(x.img());
    }
  }

  /** L2-normalises each row of E floats in place (a zero row stays zero). */
  static void normalize(float[] rows, int e) {
    for (int off = 0; off < rows.length; off += e) {
      double s = 0;
      for (int k = 0; k < e; k++) s += (double) rows[off + k] * rows[off + k];
      if (s == 0) continue;
      float inv = (float) (1 / Math.sqrt(s));
      for (int k = 0; k < e; k++) rows[off + k] *= inv;
    }
  }

  /** Rows of one shard being written. */
  private final class ShardState {
    final int n;
    final NpyWriter img;
    final NpyWriter text;
    final List<Object[]> rows = new ArrayList<>();
    final List<Map<String, String>> extras = new ArrayList<>();
    final Set<String> extraColumns = new LinkedHashSet<>();
    final StringBuilder errors = new StringBuilder();
    final InputsDigest inputs = new InputsDigest();
    /** Where this shard is committed already and computed again: what its first inputs must be. */
    final Redo redo;
    /** The digest of the first {@code redo.items} inputs, once that many were written. */
    String redoPrefix;
    long items;
    long errorCount;

    ShardState(int n, boolean captions, int e) throws IOException {
      this.n = n;
      this.redo = EmbedJob.this.redo.get(n);
      img = NpyWriter.create(out.imgFile(n), o.dtype.dtype, e);
      text = captions ? NpyWriter.create(out.textFile(n), o.dtype.dtype, e) : null;
    }
  }

  private void writeLoop(BlockingQueue<Encoded> in, InputSource source, boolean captions, int e, Progress progress, int models)
      throws Exception {
    ShardState s = null;
    // With several models, batches finish out of order: hold them until their turn.
    TreeMap<Long, Encoded> early = new TreeMap<>();
    long next = 0;
    int ended = 0;
    try {
      while (true) {
        Encoded got = in.take();
        if (got == END_ENCODED) {
          if (++ended == models) {
            if (!early.isEmpty()) throw new IllegalStateException("batches " + early.keySet() + " never written");
            return;
          }
          continue;
        }
        early.put(got.batch().seq, got);
        Encoded enc;
        while ((enc = early.remove(next)) != null) {
          next++;
          long t = System.nanoTime();
          Batch b = enc.batch();
          if (s == null) {
            s = new ShardState(b.shard, captions, e);
            if (s.redo != null) progress.message(o.logPrefix + ": shard " + s.n + ": computed again: " + s.redo.why());
          }
          s.img.writeRows(enc.img(), 0, enc.good());
          if (s.text != null) s.text.writeRows(enc.text(), 0, enc.good());
          for (int i = 0; i < b.items.size(); i++) {
            InputItem it = b.items.get(i);
            s.items++;
            s.inputs.add(it);
            if (s.redo != null && s.items == s.redo.items()) s.redoPrefix = s.redo.rec().of(s.inputs);
            if (b.errors[i] != null) {
              ObjectNode line = jsonLine.createObjectNode();
              line.put("index", it.index());
              line.put(source.idColumn(), it.id());
              line.put("shard", b.shard);
              line.put("error", b.errors[i]);
              s.errors.append(jsonLine.writeValueAsString(line)).append('\n');
              s.errorCount++;
              progress.errors.incrementAndGet();
            } else {
              s.rows.add(new Object[] {it.id(), it.caption(), b.width[i], b.height[i]});
              s.extras.add(it.extra());
              for (String k : it.extra().keySet()) if (!InputSources.reservedColumns().contains(k)) s.extraColumns.add(k);
            }
            progress.done.incrementAndGet();
          }
          if (b.lastOfShard) {
            commit(s, source, captions);
            s = null;
          }
          writeNanos += System.nanoTime() - t;
        }
      }
    } finally {
      if (s != null) {
        s.img.close();
        if (s.text != null) s.text.close();
      }
    }
  }

  /**
   * Commit order: img_emb, text_emb, the shard's errors and counts (under .jclip/), then the
   * metadata parquet, whose appearance marks the shard complete.
   */
  private void commit(ShardState s, InputSource source, boolean captions) throws IOException {
    if (s.redo != null) checkRedone(s);
    if (!summaryRemoved) {
      // A shard is to be committed: the finished job's summary no longer holds until the end rewrites it
      // (kept where the run stops before, e.g. at a changed input, or where every shard was done).
      for (String name : List.of("errors.jsonl", "job.json")) Files.deleteIfExists(out.root.resolve(name));
      summaryRemoved = true;
    }
    if (s.redo != null) {
      Files.deleteIfExists(out.metaFile(s.n)); // the old shard's commit goes first: a crash from here on leaves it to be redone, never mixed
      redone.add(s.n);
    }
    s.img.finish();
    s.img.close();
    if (s.text != null) {
      s.text.finish();
      s.text.close();
    }
    writeAtomically(out.errorsFile(s.n), s.errors.toString().getBytes(StandardCharsets.UTF_8));
    Map<String, Object> counts = new LinkedHashMap<>();
    counts.put("items", s.items);
    counts.put("embedded", s.rows.size());
    counts.put("errors", s.errorCount);
    counts.put("inputs_sha256", s.inputs.idsHex());
    counts.put("rows_sha256", s.inputs.rowsHex());
    writeAtomically(out.countsFile(s.n), json.writeValueAsBytes(counts));
    List<ParquetWriter.Column> cols = new ArrayList<>();
    cols.add(ParquetWriter.Column.required(source.idColumn(), ParquetWriter.Type.STRING));
    if (captions) cols.add(ParquetWriter.Column.optional("caption", ParquetWriter.Type.STRING));
    cols.add(ParquetWriter.Column.required("width", ParquetWriter.Type.INT32));
    cols.add(ParquetWriter.Column.required("height", ParquetWriter.Type.INT32));
    for (String c : s.extraColumns) cols.add(ParquetWriter.Column.optional(c, ParquetWriter.Type.STRING));
    try (ParquetWriter pw = ParquetWriter.create(out.metaFile(s.n), cols)) {
      Object[] row = new Object[cols.size()];
      for (int i = 0; i < s.rows.size(); i++) {
        Object[] base = s.rows.get(i);
        int c = 0;
        row[c++] = base[0];
        if (captions) row[c++] = base[1];
        row[c++] = base[2];
        row[c++] = base[3];
        Map<String, String> ex = s.extras.get(i);
        for (String k : s.extraColumns) row[c++] = ex.get(k);
        pw.writeRow(row);
      }
      pw.finish();
    }
  }

  /** Only the writer thread commits, and the summary goes before its first commit. */
  private boolean summaryRemoved;

  /**
   * A committed shard computed again keeps its old files until these inputs are known to be its
   * own: its first inputs must be those it was committed with (all of them, unless the input grew).
   */
  private void checkRedone(ShardState s) throws IOException {
    Redo r = s.redo;
    boolean same = r.rec().digest() != null ? s.items >= r.items() && r.rec().digest().equals(s.redoPrefix) : s.items == r.items();
    if (!same) throw inputChanged("shard " + s.n + " was committed with " + inputs(r.items()) + (s.items >= r.items() ? ", not these" : ", and "
        + s.items + " are at its places now"));
  }

  /** Writes a file under a temporary sibling name and renames it into place. */
  static void writeAtomically(Path target, byte[] content) throws IOException {
    try (AtomicFile file = AtomicFile.create(target)) {
      file.write(java.nio.ByteBuffer.wrap(content)); // a full disk names the file
      file.commit();
    }
  }

  /** Inputs enumerated for each shard already committed (skipped): compared with the shard's count at the end. */
  private final Map<Integer, Long> resumedItems = new java.util.concurrent.ConcurrentHashMap<>();

  /**
   * SHA-256 digests of a shard's inputs in order, recorded when it is committed: of their ids
   * ({@code inputs_sha256}: each UTF-8, then a 0 byte), and of their whole rows ({@code
   * rows_sha256}, since session 29: id, caption and carried columns), which is what a resumed job
   * compares, so that a caption edited or a column renamed in a committed shard stops it.
   */
  static final class InputsDigest {
    private final java.security.MessageDigest ids = dev.jclip.io.Downloader.sha256Digest();
    private final java.security.MessageDigest rows = dev.jclip.io.Downloader.sha256Digest();

    void add(InputItem it) {
      byte[] id = String.valueOf(it.id()).getBytes(StandardCharsets.UTF_8);
      ids.update(id);
      ids.update((byte) 0);
      rows.update(id);
      field(it.caption());
      for (Map.Entry<String, String> e : it.extra().entrySet()) {
        field(e.getKey());
        field(e.getValue());
      }
      rows.update((byte) 1);
    }

    private void field(String v) {
      rows.update((byte) 0);
      if (v == null) rows.update((byte) 2);
      else rows.update(v.getBytes(StandardCharsets.UTF_8));
    }

    String idsHex() {
      return hex(ids);
    }

    String rowsHex() {
      return hex(rows);
    }

    /** The digest of what was added so far, leaving the digest open for more. */
    private static String hex(java.security.MessageDigest md) {
      try {
        return java.util.HexFormat.of().formatHex(((java.security.MessageDigest) md.clone()).digest());
      } catch (CloneNotSupportedException e) {
        throw new IllegalStateException("SHA-256 digest cannot be cloned", e);
      }
    }
  }

  /**
   * What a committed shard recorded of its inputs: their count, and the digest to compare (of
   * whole rows since session 29, of ids in session 28; none before, when the count alone is compared).
   */
  record Recorded(long items, long errors, String digest, boolean rows) {
    String of(InputsDigest d) {
      return rows ? d.rowsHex() : d.idsHex();
    }

    /** Whether {@code n} inputs with digest {@code d} are those recorded. */
    boolean same(long n, InputsDigest d) {
      return n == items && (digest == null || d == null || digest.equals(of(d)));
    }
  }

  /** A committed shard's record, read once a run (a shard computed again is not asked for after). */
  private Recorded recorded(int n) throws IOException {
    Recorded r = recordedShards.get(n);
    if (r != null) return r;
    com.fasterxml.jackson.databind.JsonNode c = json.readTree(out.countsFile(n).toFile());
    String rows = c.path("rows_sha256").asText(null);
    r = new Recorded(c.path("items").asLong(-1), c.path("errors").asLong(0), rows != null ? rows : c.path("inputs_sha256").asText(null), rows != null);
    recordedShards.put(n, r);
    return r;
  }

  private final Map<Integer, Recorded> recordedShards = new java.util.concurrent.ConcurrentHashMap<>();

  /** A committed shard computed again: its first {@code rec.items} inputs must be those recorded; {@code why} is said when it starts. */
  private record Redo(Recorded rec, String why) {
    long items() {
      return rec.items();
    }
  }

  /** The committed shards this run computes again, set before any is written. */
  private final Map<Integer, Redo> redo = new java.util.concurrent.ConcurrentHashMap<>();
  private final Set<Integer> redone = java.util.concurrent.ConcurrentHashMap.newKeySet();
  /** Why an input that grew past its short last shard cannot join it (said when the job stops there), or null. */
  private String growthRefused;

  /** Why a grown input cannot join its short last shard: its shards recorded no inputs ({@code recorded} false), or it is an archive. */
  private static String growthRefusal(boolean recorded) {
    return recorded
        ? "the input grew past its end, and a webdataset archive's inputs are not held to join a short last shard: embed the grown archives into a new output folder"
        : "the input grew past its end, and this job's shards were written before jclip recorded their inputs (session 28), so its last shard cannot be joined";
  }

  /** The job stopped at a committed shard ({@code what}) that the input grew past and cannot join, for the reason given. */
  private IOException grownPastShard(String what, String refusal) {
    return new IOException(out.root + ": the input is not what it was when the committed shards were written (" + what + "): " + refusal);
  }

  /**
   * The committed shards to compute again from the start (with {@link Options#retrySkipped}, those
   * that skipped inputs). Each is replaced only once its new version is complete and its first
   * inputs are found to be those it was committed with.
   */
  private Map<Integer, Redo> redoShards(Set<Integer> complete) throws IOException {
    Map<Integer, Redo> r = new TreeMap<>();
    if (!o.retrySkipped) return r;
    for (int n : complete) {
      long errors = recorded(n).errors();
      if (errors > 0) r.put(n, new Redo(recorded(n), inputs(errors) + (errors == 1 ? " was" : " were") + " skipped (--retry-skipped)"));
    }
    return r;
  }

  /**
   * The input's last committed shard when the input ended in it (fewer inputs than a shard holds)
   * and it recorded its inputs, else null: if the input has grown since, its new inputs join it
   * (the shard is computed again) instead of stopping the job.
   */
  private Redo growable(Set<Integer> complete) throws IOException {
    if (complete.isEmpty()) return null;
    Recorded rec = recorded(java.util.Collections.max(complete));
    return rec.items() > 0 && rec.items() < o.shardSize
        ? new Redo(rec, "the input ended in it (" + inputs(rec.items()) + ") and has grown since") : null;
  }

  /**
   * Stops the job where a committed shard's inputs, enumerated again, are not those it was
   * committed with (their ids in order; the count alone for shards of jclip before it recorded
   * them): the input changed since (files added, removed or renamed at or before it), so the
   * committed shards no longer hold the inputs at their places, and resuming would leave inputs
   * out and embed others twice.
   */
  private void checkResumedShard(int n, InputsDigest seen) throws IOException {
    Recorded rec = recorded(n);
    long then = rec.items(), now = resumedItems.getOrDefault(n, 0L);
    if (rec.same(now, seen)) return;
    String what = "shard " + n + " was committed with " + inputs(then) + (then == now ? ", not these" : ", and " + now + " are at its places now");
    if (now > then && growthRefused != null) throw grownPastShard(what, growthRefused);
    throw inputChanged(what);
  }

  /**
   * Enumerates the input once, before anything is written, and stops the job where a committed
   * shard's inputs are not those it recorded (as the run itself would, but only after computing
   * the shards before it again). The input's last shard may have grown where it was short. For
   * webdataset archives this reads them a first time.
   */
  private void checkCommittedInputs(Set<Integer> committed) throws IOException {
    int last = java.util.Collections.max(committed);
    Map<Integer, InputsDigest> seen = new TreeMap<>();
    Map<Integer, Long> counts = new TreeMap<>();
    String prefixOfLast = null;
    boolean archive = false;
    try (InputSource again = InputSources.open(canonicalInput(o.input), o.imageColumn, o.captionColumn)) {
      InputItem it;
      while ((it = again.next()) != null) {
        int shard = Math.toIntExact(it.index() / o.shardSize);
        if (shard > last) break;
        if (!committed.contains(shard)) continue;
        Recorded rec = recorded(shard);
        long k = counts.merge(shard, 1L, Long::sum);
        if (k > rec.items()) {
          if (shard == last && rec.items() < o.shardSize) continue; // grown past the input's end: the new inputs join it
          break; // more inputs than recorded: the check below names the shard
        }
        seen.computeIfAbsent(shard, x -> new InputsDigest()).add(it);
        archive |= it.bytes() != null;
        if (shard == last && k == rec.items()) prefixOfLast = rec.of(seen.get(shard));
      }
    }
    for (int n : committed) {
      Recorded rec = recorded(n);
      long now = counts.getOrDefault(n, 0L);
      if (now == 0) throw inputChanged("shard " + n + " was committed with " + inputs(rec.items()) + ", and the input now ends before it");
      boolean grown = n == last && now > rec.items() && rec.items() < o.shardSize;
      boolean same = grown ? rec.digest() != null && rec.digest().equals(prefixOfLast) && !archive : rec.same(now, seen.get(n));
      if (!same && grown && (rec.digest() == null || rec.digest().equals(prefixOfLast))) {
        throw grownPastShard("shard " + n + " was committed with " + inputs(rec.items()) + ", and more are at its places now", growthRefusal(rec.digest() != null));
      }
      if (!same) {
        throw inputChanged("shard " + n + " was committed with " + inputs(rec.items()) + (now == rec.items() ? ", not these" : ", and " + now
            + (now > rec.items() ? " or more" : "") + " are at its places now"));
      }
    }
  }

  /** Committed shards that no input reached this time (the input shrank): see {@link #checkResumedShard}. */
  private void checkResumedShards(Set<Integer> complete) throws IOException {
    for (int n : complete) {
      if (!resumedItems.containsKey(n)) {
        throw inputChanged("shard " + n + " was committed with " + inputs(recorded(n).items()) + ", and the input now ends before it");
      }
    }
  }

  private static String inputs(long n) {
    return n + (n == 1 ? " input" : " inputs");
  }

  private IOException inputChanged(String what) {
    return new IOException(out.root + ": the input is not what it was when the committed shards were written (" + what
        + ": inputs were added, removed, renamed or edited at or before it); resuming would leave inputs out and embed others twice, so the job"
        + " stopped there: embed into a new output folder, or restore the input as it was");
  }

  private static final Set<String> JOB_FOLDERS = Set.of("img_emb", "text_emb", "metadata", ".jclip");

  /**
   * Refuses an output folder that is a file, or that is not empty and holds no embed job
   * ({@code .jclip/params.json}): resuming there would take another program's files for shards
   * (and delete or replace the others). Empty job folders of a run that stopped before writing its
   * parameters are accepted, and a volume's {@code lost+found} and hidden files (a desktop's
   * {@code .DS_Store}) do not count, since a job neither reads nor removes them. The embed command
   * also calls it before it loads the model.
   */
  public static void checkOutputFolder(Path output) throws IOException {
    Layout out = new Layout(output);
    if (Files.exists(out.root) && !Files.isDirectory(out.root)) {
      throw new IllegalArgumentException(output + " is a file; --output takes a folder (new, empty, or an embed job's to resume)");
    }
    if (Files.isRegularFile(out.work.resolve("params.json"))) return;
    for (Path e : list(out.root)) {
      String name = e.getFileName().toString();
      boolean emptyJobFolder = JOB_FOLDERS.contains(name) && Files.isDirectory(e, java.nio.file.LinkOption.NOFOLLOW_LINKS)
          && list(e).stream().map(f -> f.getFileName().toString()).allMatch(f -> (f.startsWith(".") && f.endsWith(".tmp")) || f.equals("lock"));
      boolean ignored = !JOB_FOLDERS.contains(name) && (name.equals("lost+found") || (name.startsWith(".") && !name.endsWith(".tmp")));
      if (!emptyJobFolder && !ignored) {
        throw new IllegalArgumentException(output + " is not empty and holds no jclip embed job (no .jclip/params.json; it has '" + name
            + "'): choose a new or empty output folder, so that nothing in it is taken for a shard or replaced");
      }
    }
  }

  /**
   * The input's existence and kind only (opening it may walk a large folder, which the job does
   * once): it is read again when the job is resumed, so standard input and pipes are refused.
   */
  static void checkInput(String input) throws IOException {
    if (input.equals("-")) {
      throw new IllegalArgumentException("--input -: the input is read again when the job is resumed, so not from standard input; write the list to a file");
    }
    if (!input.toLowerCase(java.util.Locale.ROOT).endsWith(".tar") && !Files.exists(Path.of(input))) {
      throw new java.nio.file.NoSuchFileException(input, null, "input not found (expected a folder, a list, a .csv/.jsonl/.parquet table or .tar shards)");
    }
    Path in = Path.of(input);
    if (Files.exists(in) && !Files.isRegularFile(in) && !Files.isDirectory(in)) {
      throw new IllegalArgumentException(input + ": not a regular file or folder (a pipe or device); the input is read again when the job is resumed: give a file");
    }
  }

  /** The output folder, or the nearest folder above it that exists, can be written in (nothing is created here). */
  static void checkWritable(Path output) throws IOException {
    Path p = output.toAbsolutePath();
    while (p != null && !Files.exists(p)) p = p.getParent();
    if (p == null) return;
    if (!Files.isDirectory(p)) {
      throw new java.nio.file.FileSystemException(output.toString(), null, "cannot create the output folder: " + p + " is a file");
    }
    if (!Files.isWritable(p)) {
      throw new java.nio.file.AccessDeniedException(output.toString(), null, (p.equals(output.toAbsolutePath()) ? "cannot write in the output folder" : "cannot create the output folder in " + p)
          + " (a read-only file system, or permission denied)");
    }
    // The kernel's own file systems say writable to root (isWritable) but hold no files of ours.
    String type;
    try {
      type = Files.getFileStore(p).type();
    } catch (IOException unknown) {
      return; // no mount table to tell (a sandbox without /proc): the job finds out when it writes
    }
    if (KERNEL_FILE_SYSTEMS.contains(type)) {
      throw new java.nio.file.FileSystemException(output.toString(), null, "cannot hold an output folder: " + p + " is on the kernel's " + type
          + " file system");
    }
  }

  private static final Set<String> KERNEL_FILE_SYSTEMS = Set.of("proc", "sysfs", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs", "configfs", "pstore", "bpf");

  /** A batch never holds more than a shard, nor more than the input (where its size is known). */
  private int batchSize(InputSource source) {
    long known = source.size();
    return (int) Math.min(o.batchSize, Math.min(o.shardSize, known > 0 ? known : Long.MAX_VALUE));
  }

  /** Pixel buffers in flight with {@code models} models: each holds one while it runs, the rest are being filled by the workers. */
  private int buffers(int models) {
    return buffers(o, models);
  }

  private static int buffers(Options o, int models) {
    return Math.max(o.bufferedBatches, models + 2);
  }

  /**
   * Why the pixel buffers of one model's job cannot fit, at the smallest CLIP resolution (before a
   * model is loaded; the job checks again at its model's), or null. The embed command asks it with
   * its other option checks, {@link #precheck} again.
   */
  public static String batchTooLargeBeforeLoad(Options o) {
    return BatchBuffers.tooLarge(Math.min(o.batchSize, o.shardSize), BatchBuffers.SMALLEST_RESOLUTION, buffers(o, 1));
  }

  /** Whether {@code name} is a model of the registry in effect (a download's name, not a path). */
  private static boolean registered(String name) {
    try {
      return dev.jclip.io.ModelRegistry.defaults().models().stream().anyMatch(m -> m.matches(name));
    } catch (IOException | RuntimeException e) {
      return false;
    }
  }

  /** A model named by a local file or folder: its real path, as {@link #canonicalInput}; a registered name as given. */
  static String canonicalModel(String name) {
    try {
      if (name.contains("://")) return name;
      Path p = Path.of(name);
      if (Files.exists(p)) return canonicalInput(name);
      Path n = p.toAbsolutePath().normalize(); // "x/../m.pt" with no folder x
      return Files.exists(n) ? canonicalInput(n.toString()) : name;
    } catch (java.nio.file.InvalidPathException e) {
      return name;
    }
  }

  /**
   * The input as params.json records it: a local path made absolute, normalised and with its links
   * resolved where it exists (so that the same input named from another folder, or by a relative
   * path, is the same job, and another input with the same name is not); a URL as given.
   */
  static String canonicalInput(String input) {
    if (input.contains("://")) return input;
    try {
      Path p = Path.of(input).toAbsolutePath();
      try {
        return p.toRealPath().toString();
      } catch (IOException e) {
        // a pattern (shards/{000..009}.tar): its folder's real path, so that a linked folder names the same shards
        try {
          return p.getParent().toRealPath().resolve(p.getFileName()).toString();
        } catch (IOException | RuntimeException again) {
          return p.normalize().toString();
        }
      }
    } catch (java.nio.file.InvalidPathException e) {
      return input;
    }
  }

  /**
   * What can be checked before the model is loaded, so that a job that cannot run says so before a
   * long load: the input exists, the output folder is a job folder or new, no other embed holds
   * its lock, and a job started there had the same options where they depend neither on the model
   * nor on the input's contents.
   *
   * @throws IOException or IllegalArgumentException / IllegalStateException with the reason, as
   *     {@link #run} would throw it
   */
  public static void precheck(Options o) throws IOException {
    Objects.requireNonNull(o.input, "input");
    Objects.requireNonNull(o.output, "output");
    checkInput(o.input);
    String tooLarge = batchTooLargeBeforeLoad(o);
    if (tooLarge != null) throw new IllegalArgumentException(tooLarge);
    checkOutputFolder(o.output);
    checkWritable(o.output);
    Layout out = new Layout(o.output);
    Path lockFile = out.work.resolve("lock");
    if (Files.isRegularFile(lockFile)) FileLockHolder.take(lockFile, o.output).close();
    Path f = out.work.resolve("params.json");
    if (Files.isRegularFile(f)) {
      com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
      com.fasterxml.jackson.databind.node.ObjectNode then = (com.fasterxml.jackson.databind.node.ObjectNode) json.readTree(f.toFile());
      com.fasterxml.jackson.databind.node.ObjectNode now = json.valueToTree(params(o, false, null, null));
      // what the model or the opened input decides is checked by the job itself
      // another name for the model is the same model where the file it names has the recorded SHA-256
      // (a registered name is left to the job, which knows the file's hash)
      boolean sameWeights = false;
      if (o.modelName != null && then.hasNonNull("model") && then.hasNonNull("model_sha256")
          && !canonicalModel(then.get("model").asText()).equals(canonicalModel(o.modelName))) {
        Path m = Path.of(canonicalModel(o.modelName));
        sameWeights = Files.isRegularFile(m) ? then.get("model_sha256").asText().equals(dev.jclip.io.Downloader.sha256(m)) : registered(o.modelName);
      }
      for (String later : o.modelName == null || sameWeights ? List.of("embed_dim", "image_size", "model", "model_sha256", "captions", "id_column")
          : List.of("embed_dim", "image_size", "model_sha256", "captions", "id_column")) {
        then.remove(later);
        now.remove(later);
      }
      // an activation named on one side only may be the checkpoint's own: the job, which knows it, decides
      if (then.has("activation") != now.has("activation")) {
        then.remove("activation");
        now.remove("activation");
      }
      List<String> differ = differences(then, now);
      if (!differ.isEmpty()) {
        throw new IllegalArgumentException(o.output + " holds a job started with other options (" + String.join("; ", differ)
            + "): re-run with the same options to resume, or choose a new output folder");
      }
    }
  }

  /** A job's parameters as params.json records them ({@code encoder} null: the model's left out). */
  private static Map<String, Object> params(Options o, boolean captions, String idColumn, BatchEncoder encoder) {
    Map<String, Object> p = new LinkedHashMap<>();
    p.put("input", canonicalInput(o.input));
    p.put("shard_size", o.shardSize);
    p.put("dtype", o.dtype.name().toLowerCase(java.util.Locale.ROOT));
    if (encoder != null) {
      p.put("embed_dim", encoder.embedDim());
      p.put("image_size", encoder.imageSize());
    }
    if (encoder != null || o.modelName != null) p.put("model", canonicalModel(o.modelName == null ? encoder.name() : o.modelName));
    if (encoder != null) p.put("model_sha256", o.modelSha256);
    p.put("precision", o.precision);
    p.put("captions", captions);
    p.put("id_column", idColumn);
    // Only when set, so that folders of jobs from before the option existed still resume.
    if (o.jpegDraft) p.put("jpeg_draft", true);
    if (o.activation != null) p.put("activation", o.activation);
    // a resumed job keeps one skip rule for its large images
    if (o.maxPixels != ImageDecoder.DEFAULT_MAX_PIXELS) p.put("max_pixels", o.maxPixels);
    return p;
  }

  /** Refuses to resume into a folder started with different options (the shards would not match). */
  private void checkParams(InputSource source, boolean captions) throws IOException {
    Map<String, Object> p = params(o, captions, source.idColumn(), encoder);
    byte[] want = json.writeValueAsBytes(p);
    Path f = out.work.resolve("params.json");
    if (Files.exists(f)) {
      byte[] have = Files.readAllBytes(f);
      if (!java.util.Arrays.equals(have, want)) {
        com.fasterxml.jackson.databind.JsonNode then = json.readTree(have);
        com.fasterxml.jackson.databind.JsonNode now = json.valueToTree(p);
        // an activation named then that is the checkpoint's own is what runs without the option now
        if (o.checkpointActivation != null && then instanceof com.fasterxml.jackson.databind.node.ObjectNode t && !now.has("activation")
            && o.checkpointActivation.equals(t.path("activation").asText(null))) {
          t.remove("activation");
        }
        List<String> differ = differences(then, now);
        if (!differ.isEmpty()) {
          throw new IllegalArgumentException(o.output + " holds a job started with other options (" + String.join("; ", differ)
              + "): re-run with the same options to resume, or choose a new output folder");
        }
      }
    } else {
      writeAtomically(f, want);
    }
  }

  /**
   * The parameters that differ between a job's params.json and this run's, each as "name: then
   * X, now Y". An input recorded as a relative path (jobs before session 25 recorded it as given)
   * is taken relative to the current folder, as those jobs resumed.
   */
  private static List<String> differences(com.fasterxml.jackson.databind.JsonNode then, com.fasterxml.jackson.databind.JsonNode now) {
    List<String> out = new ArrayList<>();
    Set<String> names = new java.util.LinkedHashSet<>();
    then.fieldNames().forEachRemaining(names::add);
    now.fieldNames().forEachRemaining(names::add);
    for (String name : names) {
      com.fasterxml.jackson.databind.JsonNode a = then.get(name), b = now.get(name);
      if (java.util.Objects.equals(a, b)) continue;
      if (name.equals("input") && a != null && a.isTextual() && b != null && canonicalInput(a.asText()).equals(b.asText())) continue;
      // a model file named another way (relative, through a link), or the same weights (one SHA-256) under another name
      if (name.equals("model") && a != null && a.isTextual() && b != null && b.isTextual()
          && (canonicalModel(a.asText()).equals(canonicalModel(b.asText()))
              || (then.hasNonNull("model_sha256") && then.get("model_sha256").equals(now.get("model_sha256"))))) continue;
      out.add(name + ": " + (a == null ? "not set" : a.toString()) + " then, " + (b == null ? "not set" : b.toString()) + " now");
    }
    return out;
  }

  /**
   * Makes the folder consistent after a crash: removes temporary files and every file of a shard
   * whose metadata was not committed. Returns the committed shards.
   */
  private Set<Integer> recover() throws IOException {
    Set<Integer> complete = new java.util.TreeSet<>();
    for (Path f : list(out.meta)) {
      Matcher m = META_FILE.matcher(f.getFileName().toString());
      // The counts under .jclip/ are committed before the metadata; without them it is no shard of this job's.
      if (m.matches() && Files.isRegularFile(out.countsFile(Integer.parseInt(m.group(1))))) complete.add(Integer.parseInt(m.group(1)));
    }
    for (Path d : List.of(out.img, out.text, out.meta, out.work)) {
      for (Path f : list(d)) {
        String name = f.getFileName().toString();
        if (name.startsWith(".") && name.endsWith(".tmp")) {
          Files.deleteIfExists(f);
          continue;
        }
        Matcher m = SHARD_FILE.matcher(name);
        if (m.matches() && !complete.contains(Integer.parseInt(m.group(1)))) Files.deleteIfExists(f);
      }
    }
    return complete;
  }

  private static List<Path> list(Path dir) throws IOException {
    if (!Files.isDirectory(dir)) return List.of();
    try (Stream<Path> s = Files.list(dir)) {
      return s.sorted().toList();
    }
  }

  /** Merges the shards' errors in shard order and writes job.json. */
  private Result finish(InputSource source, int skipped, long t0) throws IOException {
    long wStart = System.nanoTime();
    TreeMap<Integer, Path> shards = new TreeMap<>();
    for (Path f : list(out.work)) {
      Matcher m = Pattern.compile("shard_(\\d+)\\.json").matcher(f.getFileName().toString());
      if (m.matches()) shards.put(Integer.parseInt(m.group(1)), f);
    }
    long items = 0;
    long embedded = 0;
    long errors = 0;
    java.io.ByteArrayOutputStream merged = new java.io.ByteArrayOutputStream();
    for (Map.Entry<Integer, Path> en : shards.entrySet()) {
      var c = json.readTree(en.getValue().toFile());
      items += c.get("items").asLong();
      embedded += c.get("embedded").asLong();
      errors += c.get("errors").asLong();
      merged.write(Files.readAllBytes(out.errorsFile(en.getKey())));
    }
    // A run that committed nothing (a finished job run again) keeps the summary of the run that made it, its timings included.
    boolean keep = !summaryRemoved && Files.isRegularFile(out.root.resolve("errors.jsonl")) && Files.isRegularFile(out.root.resolve("job.json"));
    if (!keep) writeAtomically(out.root.resolve("errors.jsonl"), merged.toByteArray());
    writeNanos += System.nanoTime() - wStart;

    Map<String, Double> timings = new LinkedHashMap<>();
    workerTimes.putInto(timings);
    timings.put("encode_s", encodeNanos.sum() / 1e9);
    timings.put("encoder_waiting_for_input_s", encoderWaitNanos.sum() / 1e9);
    timings.put("write_s", writeNanos / 1e9);
    timings.put("wall_s", (System.nanoTime() - t0) / 1e9);

    ObjectNode job = json.createObjectNode();
    ObjectNode model = job.putObject("model");
    model.put("name", canonicalModel(o.modelName == null ? encoder.name() : o.modelName));
    model.put("sha256", o.modelSha256);
    job.put("precision", encoder.precision() != null ? encoder.precision() : o.precision); // what the model computed in
    job.put("input", canonicalInput(o.input));
    job.put("id_column", source.idColumn());
    job.put("dtype", o.dtype.name().toLowerCase(java.util.Locale.ROOT));
    job.put("embed_dim", encoder.embedDim());
    job.put("image_size", encoder.imageSize());
    job.put("batch_size", o.batchSize);
    job.put("shard_size", o.shardSize);
    job.put("text_embeddings", source.hasCaptions());
    job.put("jpeg_draft", o.jpegDraft);
    if (o.activation != null) job.put("activation", o.activation);
    job.put("jpeg_decoder", jpegDecoder);
    ObjectNode counts = job.putObject("counts");
    counts.put("items", items);
    counts.put("embedded", embedded);
    counts.put("errors", errors);
    counts.put("shards", shards.size());
    // Everything that differs between an uninterrupted run and a resumed one lives under "run".
    ObjectNode run = job.putObject("run");
    run.put("workers", o.workers);
    run.put("models", encoders.size());
    run.put("shards_written", shards.size() - skipped);
    run.put("shards_resumed", skipped);
    ObjectNode t = run.putObject("timings");
    timings.forEach(t::put);
    if (!keep) writeAtomically(out.root.resolve("job.json"), json.writeValueAsBytes(job));

    o.log.println(summary(o.logPrefix, timings, items, embedded, errors));
    return new Result(items, embedded, errors, shards.size(), skipped, timings);
  }

  private static String summary(String prefix, Map<String, Double> t, long items, long embedded, long errors) {
    StringBuilder s = new StringBuilder();
    s.append(String.format(java.util.Locale.ROOT, "%s: %d item%s, %d embedded, %d skipped%s in %.1f s%n", prefix, items, items == 1 ? "" : "s", embedded, errors, errors > 0 ? " (see errors.jsonl)" : "",
        t.get("wall_s")));
    s.append(prefix).append(": where the time went (decode/preprocess: *_cpu_s the workers' CPU time, *_wall_s their elapsed time, both summed over the"
        + " workers; encode_s the model; write_s the writer):\n");
    Iterator<Map.Entry<String, Double>> it = t.entrySet().iterator();
    while (it.hasNext()) {
      Map.Entry<String, Double> en = it.next();
      s.append(String.format(java.util.Locale.ROOT, "  %-30s %9.2f s%n", en.getKey(), en.getValue()));
    }
    return s.toString().stripTrailing();
  }
}
