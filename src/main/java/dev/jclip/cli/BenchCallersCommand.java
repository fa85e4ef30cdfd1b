package dev.jclip.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jclip.api.Clip;
import dev.jclip.api.ClipBatcher;
import dev.jclip.io.Checkpoint;
import dev.jclip.io.Tensor;
import dev.jclip.model.ClipConfig;
import dev.jclip.tokenizer.ClipTokenizer;
import java.io.IOException;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code jclip bench callers}: a service's load. N threads each send requests of a few items in a
 * loop (the next once the last is answered), first each calling the {@link Clip} directly, then
 * through a {@link ClipBatcher}; requests per second, latency percentiles and the batches the
 * batcher ran, both ways in the same run and on the same model.
 *
 * <pre>
 * scripts/jclip bench callers --random ViT-B/32 --device cuda --precision fp16 --callers 1,16,64
 * </pre>
 */
@Command(
    name = "callers",
    mixinStandardHelpOptions = true,
    description = {"Concurrent callers, each sending small requests: the Clip called directly against ClipBatcher, in the same run."})
public final class BenchCallersCommand implements Callable<Integer> {
  @Option(names = "--model", paramLabel = "MODEL", description = "A model name, .pt, .safetensors or HuggingFace folder.")
  String model;

  @Option(names = "--random", paramLabel = "NAME", description = "Random weights at the full geometry of an OpenAI model (ViT-B/32, RN50, ...).")
  String random;

  @Option(names = "--device", paramLabel = "DEVICE", defaultValue = "auto", description = "auto, cpu, cuda or cuda:N (default: ${DEFAULT-VALUE}).")
  String device;

  @Option(names = "--precision", paramLabel = "P", defaultValue = "fp32", description = "fp32, bf16 or fp16 (default: ${DEFAULT-VALUE}).")
  String precision;

  @Option(names = "--threads", paramLabel = "N", description = "CPU threads of the backend (default: all processors).")
  Integer threads;

  @Option(names = "--callers", paramLabel = "N,N,...", split = ",", defaultValue = "1,8,32", description = "Concurrent callers (default: ${DEFAULT-VALUE}).")
  int[] callers;

  @Option(names = "--kind", paramLabel = "KIND", defaultValue = "image", description = "image or text: what each request carries (default: ${DEFAULT-VALUE}).")
  String kind;

  @Option(names = "--items", paramLabel = "N", defaultValue = "1", description = "Images or texts per request (default: ${DEFAULT-VALUE}).")
  int items;

  @Option(names = "--seconds", paramLabel = "S", defaultValue = "5", description = "Timed seconds per configuration (default: ${DEFAULT-VALUE}).")
  double seconds;

  @Option(names = "--warmup-seconds", paramLabel = "S", defaultValue = "3", description = "Untimed seconds first, per configuration (default: ${DEFAULT-VALUE}).")
  double warmupSeconds;

  @Option(names = "--clips", paramLabel = "N", defaultValue = "1",
      description = "Clips of the model on the device (each its own backend: on one GPU, its own stream); direct callers take them in turn, the batcher"
          + " runs one queue over all (default: ${DEFAULT-VALUE}).")
  int clipCount;

  @Option(names = "--max-delay-ms", paramLabel = "MS", defaultValue = "0",
      description = "ClipBatcher's maxDelay: how long a partial batch may wait for more requests (default: ${DEFAULT-VALUE}).")
  double maxDelayMs;

  @Option(names = "--vocab", paramLabel = "FILE", description = "Vocabulary (default: $JCLIP_VOCAB, the cache, the reference folder's copy).")
  java.nio.file.Path vocab;

  @Option(names = "--json", description = "Also print one JSON object per number of callers.")
  boolean json;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  /** The prompts texts are drawn from (ImageNet-template-like, 7-15 tokens). */
  static final String[] NOUNS = {"dog", "cat", "golden retriever", "tabby cat", "school bus", "espresso machine", "red fox", "sports car",
      "grand piano", "lighthouse", "mountain bike", "hummingbird"};

  static final String[] FORMS = {"a photo of a {}.", "a blurry photo of the {}.", "a close-up photo of a small {}.", "a drawing of a {}.",
      "a bright photo of the large {} in the garden.", "itap of my {}."};

  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut(), err = spec.commandLine().getErr();
    if ((model == null) == (random == null)) {
      err.println("jclip bench callers: give --model or --random (one of them)");
      return 2;
    }
    if (callers.length == 0 || Arrays.stream(callers).anyMatch(c -> c < 1) || items < 1 || clipCount < 1 || seconds <= 0 || warmupSeconds < 0
        || maxDelayMs < 0) {
      err.println("jclip bench callers: --callers, --items and --clips must be at least 1, --seconds above 0, --warmup-seconds and --max-delay-ms at least 0");
      return 2;
    }
    if (!kind.equals("image") && !kind.equals("text")) {
      err.println("jclip bench callers: --kind is image or text, not " + kind);
      return 2;
    }
    if (random != null) {
      try {
        dev.jclip.model.RandomWeights.config(random); // an unknown name is a usage error, before anything is made
      } catch (IllegalArgumentException e) {
        err.println("jclip bench callers: " + e.getMessage());
        return 2;
      }
    }
    if (threads != null && (threads < 1 || threads > dev.jclip.api.Clip.Options.MAX_THREADS)) {
      err.println("jclip bench callers: --threads must be from 1 to " + dev.jclip.api.Clip.Options.MAX_THREADS + ", got " + threads);
      return 2;
    }
    int t = threads != null ? threads : Runtime.getRuntime().availableProcessors();
    Checkpoint ck = null;
    try {
      BenchCommand.Weights w = BenchCommand.Weights.of(model, random);
      ck = w.checkpoint();
      ClipConfig cfg = w.config();
      Map<String, Tensor> weights = w.tensors();
      ClipTokenizer tok = ClipTokenizer.load(vocab != null ? vocab : BenchCommand.defaultVocabulary());
      Clip.Options options = Clip.Options.defaults().withDevice(device).withPrecision(precision).withThreads(t);
      List<Clip> clips = new ArrayList<>();
      try {
        for (int i = 0; i < clipCount; i++) clips.add(Clip.create(cfg, weights, tok, options));
        Clip clip = clips.get(0);
        int batchAll = clips.stream().mapToInt(Clip::batchSize).sum();
        out.printf("model: %s; %s%s; %s requests of %d %s%s%n", random != null ? "random " + random : model, clip.describe(),
            clipCount == 1 ? "" : " (" + clipCount + " Clips)", kind, items, kind.equals("image") ? "image" : "text", items == 1 ? "" : "s");
        out.printf("%8s %12s %12s %9s %9s %12s %9s %9s %7s %10s %8s%n", "callers", "direct/s", "batched/s", "ratio", "p50 ms", "p99 ms", "p50 ms",
            "p99 ms", "batch", "padding", "batches");
        out.printf("%8s %12s %12s %9s %19s %21s%n", "", "requests", "requests", "", "direct", "batched");
        out.flush();
        ClipBatcher.Options bo = ClipBatcher.Options.defaults().withMaxDelay(Duration.ofNanos((long) (maxDelayMs * 1e6)));
        for (int c : callers) {
          List<Object> inputs = inputs(clip, cfg, c);
          Load direct = load(c, inputs, (caller, in) -> encode(clips.get(caller % clipCount), in));
          Load batched;
          ClipBatcher.Stats stats;
          // a large enough queue that no caller is refused: each caller has at most one request waiting
          try (ClipBatcher b = ClipBatcher.of(clips, bo.withMaxQueued(Math.max(4 * batchAll, c * items)))) {
            batched = load(c, inputs, (caller, in) -> in instanceof Clip.Pixels p ? b.encodeImage(p) : b.encodeText((Clip.Tokens) in));
            stats = b.stats();
          }
          // no request answered in a window (a first request longer than it): no ratio
          double ratio = direct.requests() == 0 || batched.requests() == 0 ? Double.NaN : batched.perSecond() / direct.perSecond();
          out.printf("%8d %12.1f %12.1f %8.2fx %9.2f %12.2f %9.2f %9.2f %7.1f %9.1f%% %8d%n", c, direct.perSecond(), batched.perSecond(), ratio,
              direct.percentile(0.5), direct.percentile(0.99), batched.percentile(0.5), batched.percentile(0.99), stats.meanBatch(),
              100.0 * stats.paddedRows() / Math.max(1, stats.paddedRows() + stats.items()), stats.batches());
          if (json) {
            ObjectNode o = new ObjectMapper().createObjectNode();
            o.put("model", random != null ? "random " + random : model).put("device", clip.device()).put("precision", precision).put("kind", kind)
                .put("items", items).put("callers", c).put("clips", clipCount).put("seconds", seconds).put("max_delay_ms", maxDelayMs);
            o.put("direct_per_s", direct.perSecond()).put("batched_per_s", batched.perSecond()).put("ratio", ratio);
            o.put("direct_p50_ms", direct.percentile(0.5)).put("direct_p99_ms", direct.percentile(0.99));
            o.put("batched_p50_ms", batched.percentile(0.5)).put("batched_p99_ms", batched.percentile(0.99));
            o.put("mean_batch", stats.meanBatch()).put("batches", stats.batches()).put("padded_rows", stats.paddedRows())
                .put("failed_batches", stats.failedBatches());
            ObjectNode sizes = o.putObject("batches_by_size");
            stats.batchesBySize().forEach((k, v) -> sizes.put(Integer.toString(k), v));
            com.fasterxml.jackson.databind.node.ArrayNode byClip = o.putArray("batches_by_clip");
            stats.batchesByModel().forEach(byClip::add);
            out.println(new ObjectMapper().writeValueAsString(o));
          }
          out.flush();
        }
        out.printf("each caller sends its next request when the last is answered; %.1f s warm-up, then %.1f s timed, per configuration;%n", warmupSeconds,
            seconds);
        out.println("batch = the batcher's items a batch (padding not counted); padding = padded rows among the rows it ran.");
      } finally {
        for (Clip c : clips) c.close();
      }
      return 0;
    } catch (IOException | IllegalArgumentException | IllegalStateException e) {
      err.println("jclip bench callers: " + e.getMessage());
      return 1;
    } finally {
      if (ck != null) ck.close();
    }
  }

  /** Requests a caller cycles through: 4 per caller, random pixels (N(0, 1)) or prompts. */
  private List<Object> inputs(Clip clip, ClipConfig cfg, int callers) {
    SplittableRandom r = new SplittableRandom(11);
    List<Object> in = new ArrayList<>();
    int per = 3 * cfg.imageResolution() * cfg.imageResolution();
    for (int i = 0; i < 4 * callers; i++) {
      if (kind.equals("image")) {
        float[] d = new float[items * per];
        for (int k = 0; k < d.length; k++) d[k] = (float) r.nextGaussian();
        in.add(new Clip.Pixels(items, cfg.imageResolution(), d));
      } else {
        List<String> texts = new ArrayList<>();
        for (int k = 0; k < items; k++) texts.add(FORMS[r.nextInt(FORMS.length)].replace("{}", NOUNS[r.nextInt(NOUNS.length)]));
        in.add(clip.tokenize(texts, true));
      }
    }
    return in;
  }

  private static float[][] encode(Clip clip, Object in) {
    return in instanceof Clip.Pixels p ? clip.encodeImage(p) : clip.encodeText((Clip.Tokens) in);
  }

  /** Requests answered in the timed window (whenever sent), and their latencies in ms. */
  record Load(long requests, double seconds, double[] latenciesMs) {
    double perSecond() {
      return requests / seconds;
    }

    double percentile(double q) {
      if (latenciesMs.length == 0) return Double.NaN;
      return latenciesMs[Math.min(latenciesMs.length - 1, (int) Math.floor(q * latenciesMs.length))];
    }
  }

  /** {@code callers} threads, each sending its requests in turn until the time is up; the warm-up's requests are not counted. */
  private Load load(int callers, List<Object> inputs, java.util.function.BiFunction<Integer, Object, float[][]> send) throws InterruptedException {
    AtomicBoolean stop = new AtomicBoolean();
    long start = System.nanoTime(), timedFrom = start + (long) (warmupSeconds * 1e9), end = timedFrom + (long) (seconds * 1e9);
    List<List<Double>> lat = new ArrayList<>();
    List<Throwable> failures = java.util.Collections.synchronizedList(new ArrayList<>());
    CountDownLatch done = new CountDownLatch(callers);
    for (int c = 0; c < callers; c++) {
      List<Double> mine = new ArrayList<>();
      lat.add(mine);
      int id = c;
      Thread.ofPlatform().daemon().name("caller " + c).start(() -> {
        try {
          for (int i = 0; !stop.get(); i++) {
            long t0 = System.nanoTime();
            if (t0 >= end) break;
            send.apply(id, inputs.get((id * 4 + i % 4) % inputs.size()));
            long t1 = System.nanoTime();
            if (t1 >= timedFrom && t1 <= end) mine.add((t1 - t0) / 1e6); // answered in the window
          }
        } catch (Throwable e) {
          failures.add(e);
          stop.set(true);
        } finally {
          done.countDown();
        }
      });
    }
    done.await();
    if (!failures.isEmpty()) throw new IllegalStateException("a caller failed: " + failures.get(0), failures.get(0));
    int n = lat.stream().mapToInt(List::size).sum();
    double[] all = new double[n];
    int k = 0;
    for (List<Double> l : lat) for (double d : l) all[k++] = d;
    Arrays.sort(all);
    return new Load(n, seconds, all);
  }
}
