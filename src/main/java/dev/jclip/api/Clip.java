package dev.jclip.api;

import dev.jclip.backend.Backends;
import dev.jclip.backend.DeviceSpec;
import dev.jclip.backend.Precision;
import dev.jclip.graph.Backend;
import dev.jclip.graph.Executor;
import dev.jclip.graph.Graph;
import dev.jclip.graph.Node;
import dev.jclip.graph.Op;
import dev.jclip.image.ClipPreprocessor;
import dev.jclip.image.DecodedImage;
import dev.jclip.image.ImageDecoder;
import dev.jclip.io.Checkpoint;
import dev.jclip.io.Downloader;
import dev.jclip.io.ModelRegistry;
import dev.jclip.io.Tensor;
import dev.jclip.model.ClipConfig;
import dev.jclip.model.ClipGraphs;
import dev.jclip.tokenizer.ClipTokenizer;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.IntFunction;
import java.util.function.Supplier;

/**
 * OpenAI CLIP, as close to the reference's {@code clip.load} / {@code model.encode_image} /
 * {@code model.encode_text} / {@code model(image, text)} as Java allows.
 *
 * <pre>{@code
 * try (Clip clip = Clip.load("ViT-B/32")) {                // or a .pt / .safetensors file, or a HuggingFace folder
 *   Clip.Pixels image = clip.preprocess(Path.of("CLIP.png"));
 *   Clip.Tokens text = clip.tokenize("a diagram", "a dog", "a cat");
 *   float[][] probs = clip.probs(image, text);             // [[0.9927937, 0.00421068, 0.00299572]]
 *   float[][] imageFeatures = clip.encodeImage(image);     // [1][E], not normalised (encode_image)
 * }
 * }</pre>
 *
 * <p><b>Batching.</b> Encoders take any number of items and run them in batches of at most
 * {@link #batchSize()}: {@link Options#batchSize()} when the caller sets one, else the device's
 * (32 on the CPU, 256 on a GPU, where batches of 32 ran a third slower). When a batch does not fit
 * in the GPU's memory, a call first closes the idle executors, then halves the device's batch,
 * then runs its batches one at a time instead of two in flight (each step said on stderr, and kept
 * for later calls when the call then succeeds). Text batches are cut after the longest end-of-text position among their texts:
 * the causal mask makes the features those of the full 77 tokens (up to the GEMM library's
 * rounding, relative 1e-6), at a fraction of the work for short prompts (ImageNet prompts average
 * 10 tokens).
 *
 * <p><b>Threads.</b> A {@code Clip} may be used from many threads at once. Each graph shape (batch
 * size, text length) has a pool of {@link Executor}s; a call borrows one for its batch (building a
 * new one when all are busy) and returns it afterwards, so concurrent calls never share activation
 * buffers. The backend's weights are shared (converted once); the CPU backend's kernels split each
 * op over its own thread pool, so concurrent calls share the cores. On a GPU the calls take turns
 * on the device's stream (the host work around them, preprocessing and tokenizing, stays
 * concurrent), and each shape's executor replays a CUDA graph after its first run. {@link
 * #submitImage} takes the lock twice, to queue a batch and to collect it, so that one caller can
 * upload its next batch while the previous one computes. Closing a {@code Clip} while calls are
 * running (or batches are in flight) is an error of the caller.
 *
 * <p><b>Devices.</b> {@code Options.device} is {@code auto} (the default: the first GPU when one
 * works, else the CPU; which one is said on stderr), {@code cpu}, {@code cuda} or {@code cuda:N}
 * ({@code gpu} is read as {@code cuda}; {@code cuda:all}, one model per GPU, is for batch jobs and
 * refused here); {@code Options.precision} is {@code fp32} (the parity mode, everywhere), {@code
 * bf16} (a GPU, or a CPU with AVX-512 BF16 or AMX: bf16 weight GEMMs) or {@code fp16} (a GPU).
 * Error messages shared with the command line name its options ({@code --device cpu} is {@code
 * Options.withDevice("cpu")}, {@code --precision}, {@code --vocab} likewise).
 *
 * <p><b>Interrupts.</b> Encoding calls run to the end whatever the calling thread's interrupt
 * status (which they leave set); loading a checkpoint on an interrupted thread fails with an
 * {@link java.io.InterruptedIOException} naming the file.
 */
public final class Clip implements AutoCloseable {
  /**
   * How to load: device ("auto", "cpu", "cuda", "cuda:N"), precision ("fp32", "fp16", "bf16"),
   * vocabulary file, CPU threads, batch size ({@link #DEVICE_BATCH}: the device's, see {@link
   * Clip#batchSize()}), and the MLPs' activation ("quick_gelu", "gelu"; null: the checkpoint's, see
   * {@link ClipConfig#infer}: its config.json or open_clip_config.json says, a bare state dict is read
   * as OpenAI's QuickGELU, where open_clip's models trained without {@code -quickgelu}, LAION's among
   * them, need "gelu").
   */
  public record Options(
      String device, String precision, Path vocabulary, int threads, int batchSize, String activation, java.util.function.Consumer<String> messages) {
    /** {@link #batchSize()} that leaves the batch to the device: 32 on the CPU, 256 on a GPU. */
    public static final int DEVICE_BATCH = 0;

    /** The most CPU threads taken (far above any machine's cores; a thread pool has a limit of its own). */
    public static final int MAX_THREADS = 4096;

    public Options {
      java.util.Objects.requireNonNull(device, "device (\"auto\", \"cpu\" or \"cuda[:N]\")");
      java.util.Objects.requireNonNull(precision, "precision (\"fp32\", \"fp16\" or \"bf16\")");
      if (threads < 1 || threads > MAX_THREADS) throw new IllegalArgumentException("threads must be from 1 to " + MAX_THREADS + ", got " + threads);
      if (batchSize < 0) throw new IllegalArgumentException("batch size must be at least 1 (or 0: the device's), got " + batchSize);
      if (activation != null) dev.jclip.model.Activation.parse(activation); // a name it does not know is refused here
    }

    /** The GPU when one works (else the CPU), fp32, the default vocabulary, all processors, the device's batch size, the checkpoint's activation. */
    public static Options defaults() {
      return new Options("auto", "fp32", null, Runtime.getRuntime().availableProcessors(), DEVICE_BATCH, null, null);
    }

    /** As jclip before {@code messages}: the notes go to stderr. */
    public Options(String device, String precision, Path vocabulary, int threads, int batchSize, String activation) {
      this(device, precision, vocabulary, threads, batchSize, activation, null);
    }

    public Options withDevice(String d) {
      return new Options(d, precision, vocabulary, threads, batchSize, activation, messages);
    }

    public Options withPrecision(String p) {
      return new Options(device, p, vocabulary, threads, batchSize, activation, messages);
    }

    public Options withVocabulary(Path v) {
      return new Options(device, precision, v, threads, batchSize, activation, messages);
    }

    public Options withThreads(int t) {
      return new Options(device, precision, vocabulary, t, batchSize, activation, messages);
    }

    public Options withBatchSize(int b) {
      return new Options(device, precision, vocabulary, threads, b, activation, messages);
    }

    /** The MLPs' activation instead of the checkpoint's: "quick_gelu" or "gelu" (null: the checkpoint's). */
    public Options withActivation(String a) {
      return new Options(device, precision, vocabulary, threads, batchSize, a, messages);
    }

    /**
     * Where this Clip's notes go, one line each, instead of stderr: which device {@code auto} took,
     * a download's progress (whole lines, no carriage returns), the steps taken when the GPU's
     * memory runs out, and those of the {@link ClipBatcher}s in front of it. For a service's own
     * logging ({@code log::info}), or {@code m -> {}} for none. Null: stderr. The note said once
     * per process (the CPU's scalar kernels) goes to the first Clip's; a few notes of the native
     * libraries' loading (a GPU kernel compiled at load, oneDNN's CPU dispatch) still go to stderr.
     * The consumer is part of the record's equality (as the lambda's identity).
     */
    public Options withMessages(java.util.function.Consumer<String> m) {
      return new Options(device, precision, vocabulary, threads, batchSize, activation, m);
    }

    /** {@link #messages()}, or stderr's when none is set. */
    java.util.function.Consumer<String> say() {
      return messages != null ? messages : System.err::println;
    }

    /** {@code config} with this activation, when one is set. */
    ClipConfig applyTo(ClipConfig config) {
      return activation == null ? config : config.withActivation(dev.jclip.model.Activation.parse(activation));
    }
  }

  /** Preprocessed images: float32 [count, 3, R, R], row-major. */
  public record Pixels(int count, int resolution, float[] data) {
    public Pixels {
      java.util.Objects.requireNonNull(data, "data");
      if (count < 0 || resolution < 1) throw new IllegalArgumentException("a count of at least 0 and a resolution of at least 1 px, got " + count + " and " + resolution);
      if ((long) count * 3 * resolution * resolution != data.length) {
        throw new IllegalArgumentException(count + " images of " + resolution + " px need " + (long) count * 3 * resolution * resolution
            + " floats, got " + data.length);
      }
    }

    /** Equal when the counts, resolutions and every value are (as {@link java.util.Arrays#equals(float[], float[])}). */
    @Override
    public boolean equals(Object o) {
      return o instanceof Pixels p && count == p.count && resolution == p.resolution && java.util.Arrays.equals(data, p.data);
    }

    @Override
    public int hashCode() {
      return 31 * (31 * count + resolution) + java.util.Arrays.hashCode(data);
    }

    @Override
    public String toString() {
      return "Pixels[" + count + " x 3 x " + resolution + " x " + resolution + "]";
    }

    /** Images {@code from..to-1}. */
    public Pixels slice(int from, int to) {
      if (from < 0 || to < from || to > count) throw new IndexOutOfBoundsException("images " + from + ".." + to + " of " + count);
      int per = 3 * resolution * resolution;
      float[] d = new float[(to - from) * per];
      System.arraycopy(data, from * per, d, 0, d.length);
      return new Pixels(to - from, resolution, d);
    }

    /** Several batches as one, in order. */
    public static Pixels concat(List<Pixels> parts) {
      if (parts.isEmpty()) throw new IllegalArgumentException("no images");
      int r = parts.get(0).resolution, n = 0;
      for (Pixels p : parts) {
        if (p.resolution != r) throw new IllegalArgumentException("cannot join images of " + r + " and " + p.resolution + " px");
        n += p.count;
      }
      float[] d = new float[n * 3 * r * r];
      int o = 0;
      for (Pixels p : parts) {
        System.arraycopy(p.data, 0, d, o, p.data.length);
        o += p.data.length;
      }
      return new Pixels(n, r, d);
    }
  }

  /** Token ids: int32 [count, length] (clip.tokenize's layout, zero-padded after end-of-text). */
  public record Tokens(int count, int length, int[] ids) {
    public Tokens {
      java.util.Objects.requireNonNull(ids, "ids");
      if (count < 0 || length < 1) throw new IllegalArgumentException("a count of at least 0 and a length of at least 1, got " + count + " and " + length);
      if ((long) count * length != ids.length) throw new IllegalArgumentException(count + " x " + length + " token ids, got " + ids.length);
    }

    /** Equal when the counts, lengths and every id are. */
    @Override
    public boolean equals(Object o) {
      return o instanceof Tokens t && count == t.count && length == t.length && java.util.Arrays.equals(ids, t.ids);
    }

    @Override
    public int hashCode() {
      return 31 * (31 * count + length) + java.util.Arrays.hashCode(ids);
    }

    /** The shape and, for up to 4 texts, each text's ids up to its end-of-text token. */
    @Override
    public String toString() {
      StringBuilder b = new StringBuilder("Tokens[" + count + " x " + length);
      for (int i = 0; i < Math.min(count, 4); i++) {
        int end = length;
        while (end > 1 && ids[i * length + end - 1] == 0) end--;
        b.append(i == 0 ? ": " : ", ").append(java.util.Arrays.toString(java.util.Arrays.copyOfRange(ids, i * length, i * length + end)));
      }
      return b.append(count > 4 ? ", ...]" : "]").toString();
    }
  }

  /** Idle executors kept across all shapes; more are closed when returned. */
  private static final int MAX_IDLE = 64;
  /**
   * On the CPU, whose executors' activations live on the Java heap, idle executors are also kept
   * only while their activations take at most this share of the heap's maximum (tens of MB each
   * on a large model: 64 of them could fill a small heap).
   */
  private static final int IDLE_HEAP_SHARE = 4;
  private final java.util.concurrent.atomic.AtomicLong idleBytes = new java.util.concurrent.atomic.AtomicLong();
  /** The bytes idle executors may keep on the CPU (a quarter of the heap's maximum; tests set less). */
  volatile long idleBytesCap = Runtime.getRuntime().maxMemory() / IDLE_HEAP_SHARE;
  /** The CPU's idle executors with their pools, least recently returned first: evicted in this order past {@link #idleBytesCap}. */
  private final ConcurrentLinkedDeque<Map.Entry<ConcurrentLinkedDeque<Executor>, Executor>> idleOrder = new ConcurrentLinkedDeque<>();

  private final Checkpoint checkpoint;
  private final ClipConfig config;
  private final ClipGraphs graphs;
  private final Backend backend;
  /** A GPU backend runs one executor at a time (one stream); the CPU backend runs many at once. */
  private final boolean serialized;
  private final ReentrantLock deviceLock = new ReentrantLock();
  /** The tokenizer, once loaded ({@link #tokenizer()}). */
  private volatile ClipTokenizer tokenizer;
  /** Where the tokenizer comes from when it was not given: the default vocabulary, looked up (or downloaded) on first use. */
  private final TokenizerSource tokenizerSource;

  /** Loads a tokenizer (the default vocabulary may need a download). */
  @FunctionalInterface
  private interface TokenizerSource {
    ClipTokenizer load() throws IOException;
  }
  /**
   * ClipPreprocessor reuses scratch buffers and is not thread-safe: a call borrows one from this
   * pool and gives it back (at most one per processor are kept). The pool is the Clip's, not the
   * threads' (a ThreadLocal would keep one per thread and per Clip alive after close()); {@link
   * #close()} and {@link #releaseIdle()} empty it.
   */
  private final dev.jclip.image.ReusePool<ClipPreprocessor> preprocessors;
  private final int resolution, floatsPerImage;
  private final ImageDecoder decoder = new ImageDecoder();
  private final Options options;
  private final Map<String, ConcurrentLinkedDeque<Executor>> pools = new ConcurrentHashMap<>();
  private final AtomicInteger idle = new AtomicInteger();
  /**
   * Runs at once on a CPU backend: each run computes on its caller's thread and the backend's
   * {@code threads - 1} workers, so past {@code processors - threads + 1} runs (at least 2) more
   * add memory (their activations) and no speed; further callers wait.
   */
  private final java.util.concurrent.Semaphore running;
  private volatile boolean closed;
  /** Set when pipelined encoding ran out of device memory: encode calls run their batches one at a time from then on. */
  private volatile boolean oneBatchAtATime;
  /** The most items a graph runs: the caller's batch size, else the device's, halved when it did not fit (see {@link #batchSize()}). */
  private volatile int batch;

  private Clip(Checkpoint checkpoint, ClipConfig config, ClipGraphs graphs, ClipTokenizer tokenizer, Backend backend, Options options) {
    this(checkpoint, config, graphs, tokenizer, null, backend, options);
  }

  private Clip(Checkpoint checkpoint, ClipConfig config, ClipGraphs graphs, ClipTokenizer tokenizer, TokenizerSource tokenizerSource, Backend backend,
      Options options) {
    this.checkpoint = checkpoint;
    this.config = config;
    this.graphs = graphs;
    this.tokenizer = tokenizer;
    this.tokenizerSource = tokenizerSource;
    this.backend = backend;
    this.serialized = Backends.serialized(backend);
    this.options = options;
    this.batch = options.batchSize() != Options.DEVICE_BATCH ? options.batchSize() : backend.defaultBatch();
    this.resolution = config.imageResolution();
    this.preprocessors = new dev.jclip.image.ReusePool<>(() -> new ClipPreprocessor(resolution));
    this.floatsPerImage = new ClipPreprocessor(resolution).floatsPerImage();
    this.running = new java.util.concurrent.Semaphore(Math.max(2, Runtime.getRuntime().availableProcessors() - options.threads() + 1), true);
  }

  private void giveBack(ClipPreprocessor p) {
    if (!closed) preprocessors.giveBack(p);
  }

  /** Drops the kept preprocessors and the decoder's kept native buffers. */
  private void releasePreprocessing() {
    preprocessors.clear();
    decoder.releaseBuffers();
  }

  /**
   * A model from canonical (OpenAI state-dict) weights already in memory, e.g. {@link
   * dev.jclip.model.RandomWeights} for benchmarks; on {@code options}' device, as {@link #load}.
   */
  public static Clip create(ClipConfig config, Map<String, Tensor> weights, ClipTokenizer tokenizer, Options options) {
    ClipConfig cfg = options.applyTo(config);
    ClipGraphs graphs = new ClipGraphs(cfg, weights);
    return new Clip(null, cfg, graphs, tokenizer, openBackend(options, graphs), options);
  }

  /** {@link #create} on a backend of the caller's, which the Clip closes (the tests' backends). */
  static Clip create(ClipConfig config, Map<String, Tensor> weights, ClipTokenizer tokenizer, Options options, Backend backend) {
    ClipConfig cfg = options.applyTo(config);
    return new Clip(null, cfg, new ClipGraphs(cfg, weights), tokenizer, backend, options);
  }

  /** {@link #load(String, Options)} with {@link Options#defaults()}. */
  public static Clip load(String modelNameOrPath) throws IOException {
    return load(modelNameOrPath, Options.defaults());
  }

  /**
   * Loads a model: an OpenAI name ("ViT-B/32", from the cache or downloaded, see {@code jclip
   * download}), a .pt or .safetensors file, or a HuggingFace folder. The vocabulary is
   * {@code options.vocabulary()}, else the folder's vocab.json and merges.txt, else the default
   * ({@code $JCLIP_VOCAB} or the cache, downloaded when missing).
   *
   * @throws IOException when the model or vocabulary cannot be read, or its configuration cannot
   *     be inferred (the message names the file and the tensor)
   * @throws IllegalArgumentException for a device or precision this build does not offer
   */
  public static Clip load(String modelNameOrPath, Options options) throws IOException {
    java.util.Objects.requireNonNull(modelNameOrPath, "modelNameOrPath");
    java.util.Objects.requireNonNull(options, "options");
    if (modelNameOrPath.isBlank()) throw new IllegalArgumentException("no model named: give an OpenAI name such as ViT-B/32, a checkpoint file or a model folder");
    String cpuOnly = fp16Refusal(DeviceSpec.parse(options.device()), Precision.parse(options.precision()));
    if (cpuOnly != null) throw new IllegalArgumentException(cpuOnly);
    PrintStream said = MessageStream.of(options.messages());
    Path path = Downloader.defaults(said).resolve(modelNameOrPath);
    // A vocabulary the caller names (or the model folder's) is read now, so that a bad one fails
    // here; the default one is looked up, or downloaded, when the first text is tokenized, so that
    // image-only use needs none.
    boolean named = options.vocabulary() != null || hasOwnVocabulary(path);
    ClipTokenizer tok = named ? ClipTokenizer.load(vocabulary(path, options.vocabulary(), said)) : null;
    TokenizerSource later = named ? null : () -> ClipTokenizer.load(vocabulary(path, null, said));
    Checkpoint ck = Checkpoint.open(path);
    Backend backend = null;
    try {
      ClipConfig cfg = options.applyTo(ClipConfig.infer(ck));
      ClipGraphs graphs = new ClipGraphs(cfg, ck.tensors()); // one, so that weights derived for its graphs are made once
      backend = openBackend(options, graphs);
      return new Clip(ck, cfg, graphs, tok, later, backend, options);
    } catch (IOException | RuntimeException e) {
      if (backend != null) backend.close();
      ck.close();
      throw e;
    }
  }

  /**
   * Why {@code precision} cannot run on {@code device}, or null: fp16 on the CPU, named or the one
   * {@code auto} would take (checked before a model is downloaded or read).
   */
  static String fp16Refusal(DeviceSpec device, Precision precision) {
    if (precision != Precision.FP16) return null;
    String cpu = "precision fp16 runs on a GPU only; the CPU computes in fp32 or bf16";
    if (device.kind() == DeviceSpec.Kind.CPU) return cpu;
    if (device.kind() != DeviceSpec.Kind.AUTO) return null;
    List<String> said = new java.util.ArrayList<>();
    if (device.resolve(said::add).get(0).isCuda()) return null;
    String why = said.isEmpty() ? "no usable GPU" : said.get(said.size() - 1).replaceFirst("^jclip: ", "").replaceFirst("; using the CPU$", "");
    return cpu + " (device auto: " + why + ")";
  }

  /**
   * The backend {@code options} ask for; {@code auto} says on stderr which device it picked, and
   * takes the CPU when the GPU's kernels cannot run this model (a head size other than 64).
   */
  private static Backend openBackend(Options options, ClipGraphs graphs) {
    DeviceSpec device = DeviceSpec.parse(options.device());
    Precision precision = Precision.parse(options.precision());
    Backend b = Backends.open(device, precision, options.threads(), options.say());
    return checked(b, graphs, device.kind() == DeviceSpec.Kind.AUTO,
        () -> Backends.open(DeviceSpec.parse("cpu"), precision, options.threads(), options.say()), options.say());
  }

  /**
   * {@code b} when it can run the model's towers; else, closed, the CPU's backend from {@code cpu}
   * when {@code fallBack} (said on {@code log}), or the refusal as an {@link IllegalArgumentException}
   * (also when the CPU cannot take the model's precision either: both reasons in its message).
   */
  static Backend checked(Backend b, ClipGraphs graphs, boolean fallBack, Supplier<Backend> cpu, java.util.function.Consumer<String> log) {
    String why;
    try {
      why = refusal(graphs, b);
    } catch (RuntimeException e) {
      b.close();
      throw e;
    }
    if (why == null) return b;
    b.close();
    if (!fallBack) throw new IllegalArgumentException(why);
    Backend c;
    try {
      c = cpu.get();
    } catch (RuntimeException e) {
      throw new IllegalArgumentException(why + "; the CPU cannot run it either: " + e.getMessage(), e);
    }
    log.accept("jclip: " + why + "; using the CPU");
    return c;
  }

  /** Why {@code backend} cannot run the model's towers (the first node it refuses), or null. */
  static String refusal(ClipGraphs graphs, Backend backend) {
    for (Graph g : List.of(graphs.image(1), graphs.text(1, graphs.config().contextLength()))) {
      for (Node n : g.nodes()) {
        String why = n.op() == Op.INPUT ? null : backend.refuses(n);
        if (why != null) return backend.name() + " cannot run node " + n.name() + " of this model: " + why;
      }
    }
    return null;
  }

  /** Whether {@code model} is a folder with its own vocabulary (HuggingFace's vocab.json and merges.txt). */
  private static boolean hasOwnVocabulary(Path model) {
    return Files.isDirectory(model) && Files.exists(model.resolve("vocab.json")) && Files.exists(model.resolve("merges.txt"));
  }

  private static Path vocabulary(Path model, Path given, PrintStream said) throws IOException {
    if (given != null) return given;
    if (hasOwnVocabulary(model)) return model;
    return defaultVocabulary(said);
  }

  /**
   * The default BPE vocabulary: {@code $JCLIP_VOCAB}, else the cache's, else downloaded into the
   * cache (as {@code jclip download tokenizer} does). Where none is found and the download fails,
   * the message says both and how to give one.
   */
  public static Path defaultVocabulary() throws IOException {
    return defaultVocabulary(System.err);
  }

  /** {@link #defaultVocabulary()}, a download's progress going to {@code progress}. */
  private static Path defaultVocabulary(PrintStream progress) throws IOException {
    try {
      return ClipTokenizer.defaultVocabulary();
    } catch (IOException missing) {
      String env = System.getenv(ClipTokenizer.VOCAB_ENV);
      if (env != null && !env.isBlank()) throw missing; // a vocabulary named that is not there: nothing to download in its place
      Downloader d = Downloader.defaults(progress);
      try {
        return d.fetch(ModelRegistry.defaults().tokenizer(), d.cache());
      } catch (IOException e) {
        IOException both = new IOException("no BPE vocabulary in " + d.cache() + ", and downloading it failed (" + e.getMessage() + ")"
            + ClipTokenizer.HOW_TO_GET, e);
        both.addSuppressed(missing);
        throw both;
      }
    }
  }

  public ClipConfig config() {
    return config;
  }

  /** {@link ClipGraphs#fingerprint()} of this model's weights (the batcher checks that its Clips hold the same). */
  String weightsFingerprint() {
    return graphs.fingerprint();
  }

  /** The checkpoint file or folder this model was loaded from, or null for in-memory weights. */
  public Path modelPath() {
    return checkpoint == null ? null : checkpoint.path();
  }

  /** The backend's name: "cpu", "cpu/bf16", "cuda:0", "cuda:0/fp16", ... (the precision where it is not fp32). */
  public String device() {
    return backend.name();
  }

  /**
   * The tokenizer; the default vocabulary is found (or downloaded) on the first call.
   *
   * @throws IllegalStateException when that vocabulary cannot be had (the message says how to give one)
   */
  public ClipTokenizer tokenizer() {
    ClipTokenizer t = tokenizer;
    if (t != null) return t;
    if (tokenizerSource == null) throw new IllegalStateException("this Clip was made without a tokenizer: it encodes token ids, not texts");
    synchronized (tokenizerSource) {
      if (tokenizer == null) {
        try {
          tokenizer = tokenizerSource.load();
        } catch (IOException e) {
          throw new IllegalStateException(e.getMessage(), e);
        }
      }
      return tokenizer;
    }
  }

  /**
   * The most items one graph runs (encode calls cut larger inputs into batches of this size):
   * {@link Options#batchSize()} when the caller set one; else the device's ({@link
   * Backend#defaultBatch()}: 32 on the CPU, 256 on a GPU), halved for good when a batch did not
   * fit in the GPU's memory and the smaller one did.
   */
  public int batchSize() {
    return batch;
  }

  public Options options() {
    return options;
  }

  /** Idle executors and kept preprocessors, for the tests. */
  int[] kept() {
    return new int[] {idle.get(), preprocessors.size()};
  }

  /** The shapes with an idle executor, for the tests. */
  java.util.SortedSet<String> idleShapes() {
    java.util.SortedSet<String> s = new java.util.TreeSet<>();
    pools.forEach((shape, pool) -> {
      if (!pool.isEmpty()) s.add(shape);
    });
    return s;
  }

  /** The idle executors' bytes, for the tests. */
  long idleBytes() {
    return idleBytes.get();
  }

  /** The graph shapes this Clip has built executors for ("image:8", "text:2x16", ...), for the tests. */
  java.util.Set<String> shapes() {
    return java.util.Set.copyOf(pools.keySet());
  }

  /** Whether encode calls run their batches one at a time (two in flight did not fit in the GPU's memory). */
  boolean oneBatchAtATime() {
    return oneBatchAtATime;
  }

  /** Whether runs take turns on one device (a GPU's stream), so that batches are best merged and pipelined ({@link ClipBatcher}). */
  boolean takesTurns() {
    return serialized;
  }

  /** The reference's {@code preprocess} (resize, center crop, normalise) of image files, in order. */
  public Pixels preprocess(Path... images) throws IOException {
    java.util.Objects.requireNonNull(images, "images");
    for (int i = 0; i < images.length; i++) java.util.Objects.requireNonNull(images[i], "image " + i);
    checkOpen();
    float[] d = new float[images.length * floatsPerImage];
    ClipPreprocessor pre = preprocessors.borrow();
    try {
      for (int i = 0; i < images.length; i++) {
        // ImageDecodeException names the file and the problem
        pre.toTensor(decoder.decode(images[i]), d, i * floatsPerImage);
      }
    } finally {
      giveBack(pre);
    }
    return new Pixels(images.length, resolution, d);
  }

  /**
   * {@link #preprocess(Path...)} of an image file's bytes (from a stream, a database, an HTTP
   * body); {@code name} is only used in error messages.
   *
   * @throws dev.jclip.image.ImageDecodeException naming {@code name} and the problem
   */
  public Pixels preprocess(Path name, byte[] bytes) throws IOException {
    java.util.Objects.requireNonNull(name, "name");
    java.util.Objects.requireNonNull(bytes, "bytes");
    checkOpen();
    return preprocess(decoder.decode(name, bytes));
  }

  /** {@link #preprocess(Path...)} of a decoded image. */
  public Pixels preprocess(DecodedImage image) {
    java.util.Objects.requireNonNull(image, "image");
    checkOpen();
    float[] d = new float[floatsPerImage];
    ClipPreprocessor pre = preprocessors.borrow();
    try {
      pre.toTensor(image, d, 0);
    } finally {
      giveBack(pre);
    }
    return new Pixels(1, resolution, d);
  }

  /**
   * {@link #preprocess(Path...)} of an AWT image: the same pixels as the file they were read from
   * ({@link ImageDecoder#fromImage}: gray stays gray, alpha is resized premultiplied as Pillow
   * does, no colour conversion), so {@code preprocess(ImageIO.read(f))} equals {@code
   * preprocess(f)} wherever the JDK's reader gives the file's samples.
   */
  public Pixels preprocess(BufferedImage image) {
    return preprocess(ImageDecoder.fromImage(image));
  }

  /**
   * {@code clip.tokenize(texts)}: context length 77 (the model's), too-long texts rejected with their text named.
   *
   * @throws IllegalArgumentException for a text of more than 75 tokens (its text named)
   * @throws IllegalStateException when the vocabulary cannot be had ({@link #tokenizer()}; the message says how to give one)
   */
  public Tokens tokenize(String... texts) {
    java.util.Objects.requireNonNull(texts, "texts");
    return tokenize(java.util.Arrays.asList(texts), false);
  }

  /**
   * {@code clip.tokenize(texts)}, from a list.
   *
   * @throws IllegalArgumentException for a text of more than 75 tokens (its text named)
   * @throws IllegalStateException when the vocabulary cannot be had ({@link #tokenizer()})
   */
  public Tokens tokenize(List<String> texts) {
    return tokenize(texts, false);
  }

  /**
   * {@code clip.tokenize(texts, truncate=truncate)}: with {@code truncate}, a text of more than 75
   * tokens keeps its first 75 and still ends with the end-of-text token.
   *
   * @throws IllegalArgumentException without {@code truncate}, for a text of more than 75 tokens (its text named)
   * @throws IllegalStateException when the vocabulary cannot be had ({@link #tokenizer()})
   */
  public Tokens tokenize(List<String> texts, boolean truncate) {
    java.util.Objects.requireNonNull(texts, "texts");
    for (int i = 0; i < texts.size(); i++) java.util.Objects.requireNonNull(texts.get(i), "text " + i);
    int len = config.contextLength();
    int[] ids = new int[texts.size() * len];
    for (int i = 0; i < texts.size(); i++) System.arraycopy(tokenizer().tokenize(texts.get(i), len, truncate), 0, ids, i * len, len);
    return new Tokens(texts.size(), len, ids);
  }

  /** {@code model.encode_image(pixels)}: [count][E], not normalised. */
  public float[][] encodeImage(Pixels pixels) {
    java.util.Objects.requireNonNull(pixels, "pixels");
    return encode(pixels.count(), b -> imageParts(pixels, b), "image_features");
  }

  /**
   * {@code model.encode_text(tokens)}: [count][E], not normalised, in the order given. When there
   * is more than one batch, the texts are batched by length (shortest first, ties in the order
   * given) and each batch is cut after its last end-of-text token, so a batch of short prompts does
   * not pay for the longest prompt of the whole call. A text's features do not depend on its
   * batch: its end-of-text row attends (causally) to its own tokens only. On a GPU each batch is
   * queued before the previous one is read back, as {@link #submitText} does.
   */
  public float[][] encodeText(Tokens tokens) {
    java.util.Objects.requireNonNull(tokens, "tokens");
    return encode(tokens.count(), b -> textParts(tokens, b, 1), "text_features");
  }

  /**
   * One batch of an encode call: the call's row of each of its rows, its graph's shape, the graph,
   * its inputs (made when it runs).
   */
  private record Part(int[] dest, String shape, Supplier<Graph> graph, Supplier<Map<String, ?>> inputs) {}

  /** Refuses images preprocessed at another resolution than the model's {@code resolution} (this class and the batcher). */
  static void checkPixels(Pixels pixels, int resolution) {
    if (pixels.resolution() != resolution) {
      throw new IllegalArgumentException("images are preprocessed at " + pixels.resolution() + " px; this model needs " + resolution);
    }
  }

  /** Refuses texts longer than the model's context or with ids outside its vocabulary, naming the text and position (this class and the batcher). */
  static void checkTokens(Tokens tokens, int contextLength, int vocab) {
    int len = tokens.length();
    if (len > contextLength) throw new IllegalArgumentException(len + " tokens exceed the context length " + contextLength);
    int[] ids = tokens.ids();
    for (int i = 0; i < ids.length; i++) {
      if (ids[i] < 0 || ids[i] >= vocab) {
        throw new IllegalArgumentException("token id " + ids[i] + " of text " + i / len + ", position " + i % len + " is outside the vocabulary [0, " + vocab + ")");
      }
    }
  }

  /** Batches of at most {@code batch} images. */
  private List<Part> imageParts(Pixels pixels, int batch) {
    checkPixels(pixels, config.imageResolution());
    List<Part> parts = new java.util.ArrayList<>();
    for (int b0 = 0; b0 < pixels.count(); b0 += batch) {
      int b1 = Math.min(pixels.count(), b0 + batch), n = b1 - b0, from = b0;
      parts.add(new Part(java.util.stream.IntStream.range(b0, b1).toArray(), "image:" + n, () -> graphs.image(n),
          () -> Map.of("pixels", (from == 0 && b1 == pixels.count() ? pixels : pixels.slice(from, b1)).data())));
    }
    return parts;
  }

  /**
   * Batches of at most {@code batch} texts, by length when there is more than one batch, each cut
   * after its last end-of-text token, rounded up to a multiple of {@code lengthStep} (at most the
   * tokens' length): fewer graph shapes, the same features (the causal mask).
   */
  private List<Part> textParts(Tokens tokens, int batch, int lengthStep) {
    checkTokens(tokens, config.contextLength(), config.vocabSize());
    int len = tokens.length(), count = tokens.count();
    int[] ids = tokens.ids();
    int[] eot = new int[count];
    for (int b = 0; b < count; b++) eot[b] = ClipTokenizer.endOfTextPosition(ids, b * len, len);
    int[] order = count > batch ? byLength(eot) : java.util.stream.IntStream.range(0, count).toArray();
    List<Part> parts = new java.util.ArrayList<>();
    for (int b0 = 0; b0 < count; b0 += batch) {
      int b1 = Math.min(count, b0 + batch), n = b1 - b0;
      int[] dest = java.util.Arrays.copyOfRange(order, b0, b1);
      int cut = 1;
      for (int d : dest) cut = Math.max(cut, eot[d] + 1);
      int l = Math.min(len, (cut + lengthStep - 1) / lengthStep * lengthStep);
      parts.add(new Part(dest, "text:" + n + "x" + l, () -> graphs.text(n, l), () -> {
        int[] part = new int[n * l];
        for (int b = 0; b < n; b++) System.arraycopy(ids, dest[b] * len, part, b * l, l);
        return Map.of("tokens", part);
      }));
    }
    return parts;
  }

  /** Indices sorted by end-of-text position, stable. */
  private static int[] byLength(int[] eot) {
    return java.util.stream.IntStream.range(0, eot.length).boxed()
        .sorted(java.util.Comparator.comparingInt(i -> eot[i])).mapToInt(Integer::intValue).toArray();
  }

  /**
   * Runs the parts {@code partsOf} cuts the call into at the current batch size: [count][E] of
   * {@code output}. On a GPU, more than one part runs as {@link #submit(int, List, String)} does,
   * each submitted before the previous one is collected, so that its upload and the previous one's
   * read-back overlap the device's work; elsewhere one after the other. When the GPU runs out of
   * memory, {@link Retry} frees what it can and the call starts again.
   */
  private float[][] encode(int count, IntFunction<List<Part>> partsOf, String output) {
    checkOpen(); // a call of no items too
    Retry retry = new Retry();
    while (true) {
      int b = batch;
      List<Part> parts = partsOf.apply(b);
      boolean pipelined = serialized && parts.size() > 1 && !oneBatchAtATime;
      try {
        if (pipelined) {
          try (Pending p = submit(count, parts, output)) {
            return p.finish();
          }
        }
        float[][] out = new float[count][];
        for (Part p : parts) scatter(run(p.shape(), p.graph(), p.inputs().get()).get(output), config.embedDim(), out, p.dest());
        return out;
      } catch (RuntimeException e) {
        retry.after(e, Math.min(b, count), pipelined);
      }
    }
  }

  /**
   * What an encode call does when the GPU ran out of memory (a device allocation did not fit;
   * anything else is thrown as it is), each step once before the next, then the call starts again:
   * <ol>
   *   <li>close the idle executors (of every shape: text lengths, other batch sizes), whose
   *       activation memory the failed batch may need;
   *   <li>with the device's batch size (none set by the caller), halve the largest batch the call
   *       ran (so that a call of fewer items than the batch halves what it ran), and go back to
   *       step 1;
   *   <li>with more than one batch in flight, run one at a time;
   *   <li>throw the failure.
   * </ol>
   * The smaller batch and the one-at-a-time mode are kept for later calls when the call then
   * succeeds (the memory it lacked is likely still taken), and undone when it fails in the end
   * (nothing learned). Each step is said on stderr. On the CPU every failure is thrown as it is.
   */
  private final class Retry {
    private boolean idleClosed;
    /** What this call changed, to undo if it fails in the end: the batch it started with and the one it set (0: none), one at a time. */
    private int batchBefore, batchSet;
    private boolean setOneAtATime;

    /** @param largest the most items one of the failed attempt's batches held */
    void after(RuntimeException e, int largest, boolean pipelined) {
      if (!serialized || closed || !Backends.outOfMemory(e)) throw e;
      if (!idleClosed) {
        idleClosed = true;
        int n;
        try {
          n = closeIdle();
        } catch (RuntimeException x) {
          e.addSuppressed(x);
          throw failed(e);
        }
        if (n > 0) {
          options.say().accept("jclip: the GPU ran out of memory (" + e.getMessage() + "): closed " + n + " idle executor" + (n == 1 ? "" : "s")
              + " and trying again");
          return;
        }
      }
      if (options.batchSize() == Options.DEVICE_BATCH && largest > 1) {
        int before = batch, now = halve(largest, e);
        if (batchSet == 0) batchBefore = before;
        batchSet = now;
        idleClosed = false;
        return;
      }
      if (pipelined && !oneBatchAtATime) {
        oneBatchAtATime = setOneAtATime = true;
        options.say().accept("jclip: two batches in flight do not fit in the GPU's memory (" + e.getMessage() + "): encoding one batch at a time");
        return;
      }
      throw failed(e);
    }

    /** Undoes what this call changed (unless another call has changed it since), and returns {@code e} to throw. */
    private RuntimeException failed(RuntimeException e) {
      synchronized (Clip.this) {
        if (batchSet != 0 && batch == batchSet) batch = batchBefore;
      }
      if (setOneAtATime) oneBatchAtATime = false;
      if (batchSet != 0 || setOneAtATime) {
        options.say().accept("jclip: the call failed all the same; later calls run batches of " + batch
            + (oneBatchAtATime ? ", one at a time" : ", two in flight"));
      }
      return e;
    }
  }

  /**
   * Sets the batch size to half of {@code largest} (the largest batch that did not fit), unless
   * another call has already set it lower; returns the batch size now.
   */
  private synchronized int halve(int largest, RuntimeException e) {
    int half = Math.max(1, largest / 2);
    if (half < batch) {
      options.say().accept("jclip: a batch of " + largest + " does not fit in the GPU's memory (" + e.getMessage() + "): trying batches of "
          + half);
      batch = half;
    }
    return batch;
  }

  /**
   * Frees the buffers kept for the batch shapes run so far (up to 64 executors, each with its
   * activations: tens of MB a shape on a large model), as a service with varied request sizes may
   * want after a burst; the next call of each shape builds its executor again. Calls running keep
   * theirs. Also drops the preprocessing scratch kept between calls and the JPEG decoder's native
   * buffers. Returns how many executors were freed.
   */
  public int releaseIdle() {
    releasePreprocessing();
    return closeIdle();
  }

  /** Closes every idle executor, under the device lock; returns how many. */
  private int closeIdle() {
    int n = 0;
    deviceLock.lock();
    try {
      for (ConcurrentLinkedDeque<Executor> pool : pools.values()) {
        for (Executor ex; (ex = taken(pool.pollFirst())) != null; n++) ex.close();
      }
    } finally {
      deviceLock.unlock();
    }
    return n;
  }

  /**
   * Starts {@link #encodeImage}: on a GPU the images' batches are queued and this returns while
   * the last of them still computes, so that the caller can prepare (and submit) the next images
   * meanwhile; {@link Pending#finish()} waits and returns the features. On the CPU the images are
   * encoded right here. {@code pixels} may be reused as soon as this returns.
   *
   * <pre>{@code
   * Clip.Pending a = clip.submitImage(batch0);
   * Clip.Pending b = clip.submitImage(batch1);   // uploads while batch0 computes
   * float[][] f0 = a.finish();
   * float[][] f1 = b.finish();
   * }</pre>
   *
   * <p>Each submitted batch holds an executor of its shape until it is finished (or closed), so a
   * caller keeps a few in flight (two are enough to hide the uploads). Batches above {@link
   * #batchSize()} are split, the earlier parts finished here while the later ones compute.
   */
  public Pending submitImage(Pixels pixels) {
    java.util.Objects.requireNonNull(pixels, "pixels");
    return submitImage(pixels, true);
  }

  /** {@link #submitImage}; without {@code retry}, running out of device memory is thrown as it is ({@link ClipBatcher}: it reads its other batch back first). */
  Pending submitImage(Pixels pixels, boolean retry) {
    return submit(pixels.count(), b -> imageParts(pixels, b), "image_features", retry);
  }

  /** Starts {@link #encodeText}, as {@link #submitImage} starts encodeImage. */
  public Pending submitText(Tokens tokens) {
    java.util.Objects.requireNonNull(tokens, "tokens");
    return submitText(tokens, 1, true);
  }

  /**
   * {@link #submitText} with each batch's length rounded up to a multiple of {@code lengthStep}
   * ({@link ClipBatcher}: fewer shapes); without {@code retry} as {@link #submitImage(Pixels, boolean)}.
   */
  Pending submitText(Tokens tokens, int lengthStep, boolean retry) {
    if (lengthStep < 1) throw new IllegalArgumentException("length step must be at least 1, got " + lengthStep);
    return submit(tokens.count(), b -> textParts(tokens, b, lengthStep), "text_features", retry);
  }

  /**
   * {@link #submit(int, List, String)} at the current batch size, started again as {@link Retry}
   * says when the GPU runs out of memory ({@code mayRetry}; else thrown as it is).
   */
  private Pending submit(int count, IntFunction<List<Part>> partsOf, String output, boolean mayRetry) {
    checkOpen();
    if (!serialized) return new Pending(encode(count, partsOf, output), null, null, output);
    if (!mayRetry) return submit(count, partsOf.apply(batch), output);
    Retry retry = new Retry();
    while (true) {
      int b = batch;
      List<Part> parts = partsOf.apply(b);
      boolean pipelined = parts.size() > 1 && !oneBatchAtATime;
      try {
        return submit(count, parts, output);
      } catch (RuntimeException e) {
        retry.after(e, Math.min(b, count), pipelined);
      }
    }
  }

  /**
   * Submits the parts, each before the previous one is collected (one after the other when
   * {@code oneBatchAtATime}), and returns with the last one in flight.
   */
  private Pending submit(int count, List<Part> parts, String output) {
    float[][] out = new float[count][];
    InFlight last = null;
    int[] lastDest = null;
    try {
      for (Part p : parts) {
        if (oneBatchAtATime && last != null) {
          InFlight done = last;
          last = null;
          scatter(done.collect().get(output), config.embedDim(), out, lastDest);
        }
        InFlight next = submit(p.shape(), p.graph(), p.inputs().get());
        InFlight done = last;
        last = next;
        if (done != null) scatter(done.collect().get(output), config.embedDim(), out, lastDest);
        lastDest = p.dest();
      }
    } catch (RuntimeException e) {
      if (last != null) last.abandon(e);
      throw e;
    }
    return new Pending(out, last, lastDest, output);
  }

  /**
   * Features being encoded ({@link #submitImage}, {@link #submitText}): {@link #finish()} waits for
   * them; {@link #close()} abandons them if they were not finished (waiting for the device, and
   * returning the executor). Used from one thread.
   */
  public final class Pending implements AutoCloseable {
    private final float[][] features;
    private final int[] lastDest;
    private final String output;
    private InFlight last;
    private boolean finished;

    private Pending(float[][] features, InFlight last, int[] lastDest, String output) {
      this.features = features;
      this.last = last;
      this.lastDest = lastDest;
      this.output = output;
    }

    /** Whether {@link #finish()} returns without waiting (on the CPU the features were computed when submitted). */
    public boolean isDone() {
      return finished || last == null;
    }

    /** The features, [count][E], not normalised: what encodeImage (encodeText) returns. */
    public float[][] finish() {
      if (finished) return features;
      InFlight f = last;
      last = null;
      if (f != null) scatter(f.collect().get(output), config.embedDim(), features, lastDest);
      finished = true;
      return features;
    }

    @Override
    public void close() {
      InFlight f = last;
      last = null;
      if (f != null) f.abandon(null);
    }
  }

  /** {@code logits_per_image} of {@code model(image, text)}: [images][texts], {@code exp(logit_scale) · cos}. */
  public float[][] logits(Pixels images, Tokens texts) {
    return logits(encodeImage(images), encodeText(texts));
  }

  /**
   * Logits from features (e.g. cached text features of class prompts), as {@code model(image,
   * text)} makes them: each row is L2-normalised here (the features need not be), then {@code
   * exp(logit_scale) · image · textᵀ}; [images][texts] ({@code logits_per_text} is its transpose).
   */
  public float[][] logits(float[][] imageFeatures, float[][] textFeatures) {
    return similarity(imageFeatures, textFeatures, "logits_per_image");
  }

  /**
   * The MLPs' activation the checkpoint itself gives (its config, or OpenAI's QuickGELU for a bare
   * state dict), whatever {@link Options#withActivation} chose: {@link #config()} has the one that
   * runs.
   */
  public dev.jclip.model.Activation checkpointActivation() {
    if (checkpoint == null) return config.activation();
    try {
      return ClipConfig.infer(checkpoint).activation();
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  /**
   * The model's {@code logit_scale} parameter, the natural log of the temperature: the logits are
   * {@code Math.exp(logitScale())} times the cosine similarities (4.6052 = ln 100 in OpenAI's
   * released models).
   */
  public float logitScale() {
    return graphs.logitScaleParameter();
  }

  /**
   * {@code features / features.norm(dim=-1, keepdim=True)}: each row divided by its L2 norm (in
   * double precision), as new arrays; a row of zeros stays zeros (PyTorch's division gives NaN), a
   * row with a NaN is all NaN. For averaging prompt embeddings
   * and for cosine similarities of one's own.
   */
  public static float[][] normalize(float[][] features) {
    java.util.Objects.requireNonNull(features, "features");
    float[][] out = new float[features.length][];
    for (int r = 0; r < features.length; r++) {
      float[] row = features[r];
      if (row == null) throw new NullPointerException("feature row " + r + " is null");
      double sum = 0;
      for (float v : row) sum += (double) v * v;
      double inv = sum > 0 || Double.isNaN(sum) ? 1 / Math.sqrt(sum) : 0; // a NaN anywhere makes the row NaN, as in PyTorch
      out[r] = new float[row.length];
      for (int i = 0; i < row.length; i++) out[r][i] = (float) (row[i] * inv);
    }
    return out;
  }

  /** {@code logits_per_image.softmax(dim=-1)}: [images][texts]. */
  public float[][] probs(Pixels images, Tokens texts) {
    return probs(encodeImage(images), encodeText(texts));
  }

  /** Probabilities from features: {@link #logits(float[][], float[][])}, softmax over each image's texts. */
  public float[][] probs(float[][] imageFeatures, float[][] textFeatures) {
    return similarity(imageFeatures, textFeatures, "probs");
  }

  private float[][] similarity(float[][] img, float[][] txt, String output) {
    java.util.Objects.requireNonNull(img, "imageFeatures");
    java.util.Objects.requireNonNull(txt, "textFeatures");
    checkOpen();
    int i = img.length, t = txt.length, e = config.embedDim();
    if (i == 0 || t == 0) return new float[i][0];
    float[] a = flatten(img, e, "image"), b = flatten(txt, e, "text");
    float[] r = run("logits:" + i + "x" + t, () -> graphs.logits(i, t), Map.of("image_features", a, "text_features", b)).get(output);
    float[][] out = new float[i][];
    rows(r, t, out, 0);
    return out;
  }

  private static float[] flatten(float[][] rows, int e, String what) {
    float[] f = new float[rows.length * e];
    for (int r = 0; r < rows.length; r++) {
      if (rows[r] == null) throw new IllegalArgumentException(what + " feature row " + r + " is null");
      if (rows[r].length != e) throw new IllegalArgumentException(what + " feature row " + r + " has " + rows[r].length + " values; the model's embedding is " + e);
      System.arraycopy(rows[r], 0, f, r * e, e);
    }
    return f;
  }

  /** Row {@code r} of {@code flat} becomes {@code out[dest[r]]}. */
  private static void scatter(float[] flat, int cols, float[][] out, int[] dest) {
    for (int r = 0; r < dest.length; r++) out[dest[r]] = java.util.Arrays.copyOfRange(flat, r * cols, (r + 1) * cols);
  }

  private static void rows(float[] flat, int cols, float[][] out, int first) {
    for (int r = 0; r < flat.length / cols; r++) {
      out[first + r] = new float[cols];
      System.arraycopy(flat, r * cols, out[first + r], 0, cols);
    }
  }

  /** Whether {@link #close()} was called. */
  public boolean isClosed() {
    return closed;
  }

  private void checkOpen() {
    if (closed) throw new IllegalStateException("this Clip is closed");
  }

  /** Borrows an executor of this shape (or builds one), runs, and gives it back. */
  private Map<String, float[]> run(String shape, Supplier<Graph> graph, Map<String, ?> inputs) {
    checkOpen();
    try {
      if (serialized) return runBorrowed(shape, graph, inputs);
      // On the CPU each run holds an executor (its activations) while it computes with every
      // thread: more runs at once than a few only add memory, so callers past that wait their turn
      // (an interrupt does not stop the wait, as it does not stop the run).
      running.acquireUninterruptibly();
      try {
        if (closed) throw new IllegalStateException("this Clip was closed while this call waited its turn");
        return runBorrowed(shape, graph, inputs);
      } finally {
        running.release();
      }
    } catch (RuntimeException e) {
      // closed while this call ran: say so, not what the closed backend said
      if (closed && !String.valueOf(e.getMessage()).startsWith("this Clip was closed while")) throw new IllegalStateException("this Clip was closed while this call ran", e);
      throw e;
    }
  }

  private Map<String, float[]> runBorrowed(String shape, Supplier<Graph> graph, Map<String, ?> inputs) {
    ConcurrentLinkedDeque<Executor> pool = pools.computeIfAbsent(shape, k -> new ConcurrentLinkedDeque<>());
    Executor ex = borrow(pool);
    boolean ok = false;
    // On a GPU the executor is also built and closed under the lock: closing one synchronises the
    // shared stream and destroys its CUDA graph, which would break another thread's graph capture
    // on that stream (a capturing stream must not be synchronised).
    if (serialized) deviceLock.lock();
    try {
      if (ex == null) ex = newExecutor(graph); // a GPU replays a CUDA graph per shape
      Map<String, float[]> out = ex.run(inputs);
      ok = true;
      return out;
    } finally {
      try {
        giveBack(pool, ex, ok);
      } finally {
        if (serialized) deviceLock.unlock();
      }
    }
  }

  /**
   * A new executor for {@code graph}: building it reads the weights it needs from the checkpoint's
   * mapped files, so first the checkpoint must still hold what was loaded ({@link
   * Checkpoint#checkUnchanged}).
   */
  private Executor newExecutor(Supplier<Graph> graph) {
    try {
      if (checkpoint != null) checkpoint.checkUnchanged(); // null: weights given in memory
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e.getMessage(), e);
    }
    return new Executor(graph.get(), backend, List.of(), serialized);
  }

  private Executor borrow(ConcurrentLinkedDeque<Executor> pool) {
    return taken(pool.pollFirst());
  }

  /**
   * Returns a borrowed executor to its pool after a successful run, else (or when 64 are idle)
   * closes it. On the CPU, past {@link #idleBytesCap} the least recently returned idle executors
   * (of any shape) are closed first, so that the shapes in use stay.
   */
  private void giveBack(ConcurrentLinkedDeque<Executor> pool, Executor ex, boolean ok) {
    long bytes = ex == null || serialized ? 0 : ex.plannedBytes();
    if (ok && !closed && idle.incrementAndGet() <= MAX_IDLE) {
      if (bytes == 0) {
        pool.addFirst(ex);
        return;
      }
      if (bytes > idleBytesCap) { // over the cap by itself: the others stay
        idle.decrementAndGet();
        ex.close();
        return;
      }
      long now = idleBytes.addAndGet(bytes);
      while (now > idleBytesCap) {
        Map.Entry<ConcurrentLinkedDeque<Executor>, Executor> oldest = idleOrder.pollFirst();
        if (oldest == null) break;
        if (oldest.getKey().remove(oldest.getValue())) { // not borrowed meanwhile
          idle.decrementAndGet();
          now = idleBytes.addAndGet(-oldest.getValue().plannedBytes());
          oldest.getValue().close();
        }
      }
      if (now <= idleBytesCap) {
        pool.addFirst(ex);
        idleOrder.addLast(Map.entry(pool, ex));
        return;
      }
      idleBytes.addAndGet(-bytes); // larger than the cap by itself
    }
    if (ok && !closed) idle.decrementAndGet();
    if (ex != null) ex.close();
  }

  /** An idle executor taken from a pool: no longer counted as idle. */
  private Executor taken(Executor ex) {
    if (ex != null) {
      idle.decrementAndGet();
      if (!serialized) {
        idleBytes.addAndGet(-ex.plannedBytes());
        idleOrder.removeIf(e -> e.getValue() == ex);
      }
    }
    return ex;
  }

  /**
   * {@link #run} split at the device: borrows an executor and submits the inputs under the device
   * lock, and releases the lock while the batch computes. Another thread's run may then queue its
   * own work on the stream behind this batch: it has its own executor (buffers, CUDA graph, input
   * staging, fence), and the backend's shared scratch buffers are only touched by work in stream
   * order, so the two runs do not mix; each waits for its own fence.
   */
  private InFlight submit(String shape, Supplier<Graph> graph, Map<String, ?> inputs) {
    checkOpen();
    ConcurrentLinkedDeque<Executor> pool = pools.computeIfAbsent(shape, k -> new ConcurrentLinkedDeque<>());
    Executor ex = borrow(pool);
    boolean ok = false;
    if (serialized) deviceLock.lock();
    try {
      if (ex == null) ex = newExecutor(graph);
      ex.submit(inputs);
      ok = true;
      return new InFlight(pool, ex);
    } finally {
      try {
        if (!ok && ex != null) ex.close(); // as run() does with an executor whose run failed
      } finally {
        if (serialized) deviceLock.unlock();
      }
    }
  }

  /** A submitted run, holding its borrowed executor until collected or abandoned. */
  private final class InFlight {
    private final ConcurrentLinkedDeque<Executor> pool;
    private Executor ex;

    InFlight(ConcurrentLinkedDeque<Executor> pool, Executor ex) {
      this.pool = pool;
      this.ex = ex;
    }

    /** Waits for the run (under the device lock) and gives the executor back. */
    Map<String, float[]> collect() {
      if (ex == null) throw new IllegalStateException("this batch was already collected or abandoned");
      if (closed) throw new IllegalStateException("this Clip was closed while a batch was in flight");
      Executor e = ex;
      ex = null;
      boolean ok = false;
      if (serialized) deviceLock.lock();
      try {
        Map<String, float[]> out = e.collect();
        ok = true;
        return out;
      } finally {
        try {
          giveBack(pool, e, ok);
        } finally {
          if (serialized) deviceLock.unlock();
        }
      }
    }

    /** Gives up the run: waits for its work and closes the executor; a failure is added to {@code cause} if given. */
    void abandon(RuntimeException cause) {
      Executor e = ex;
      ex = null;
      if (e == null || closed) return;
      if (serialized) deviceLock.lock();
      try {
        e.close();
      } catch (RuntimeException x) {
        if (cause == null) throw x;
        cause.addSuppressed(x);
      } finally {
        if (serialized) deviceLock.unlock();
      }
    }
  }

  @Override
  public void close() {
    closed = true;
    releasePreprocessing();
    if (serialized) deviceLock.lock(); // a GPU run in flight ends (and returns its executor) first
    try {
      for (ConcurrentLinkedDeque<Executor> pool : pools.values()) {
        for (Executor ex; (ex = taken(pool.pollFirst())) != null;) ex.close();
      }
      pools.clear();
      backend.close();
    } finally {
      if (serialized) deviceLock.unlock();
    }
    if (checkpoint != null) checkpoint.close();
  }

  /** A one-line description for logs. */
  public String describe() {
    return config.summary() + " on " + backend.name() + (serialized ? "" : " (" + options.threads() + " threads)") + ", batches of up to " + batch;
  }
}
