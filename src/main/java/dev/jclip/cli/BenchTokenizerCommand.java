package dev.jclip.cli;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jclip.tokenizer.ClipTokenizer;
import dev.jclip.tokenizer.Vocabulary;
import java.io.IOException;
import java.io.PrintWriter;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code jclip bench tokenizer}: texts and tokens per second of {@code tokenize(text, 77,
 * truncate)} on the ImageNet prompt set (every template with every class name), on one thread and
 * on N threads sharing one tokenizer. Each configuration is warmed up, then timed over several
 * passes; the median pass is reported with the fastest and slowest.
 */
@Command(
    name = "tokenizer",
    mixinStandardHelpOptions = true,
    description = "Tokenizer throughput on the ImageNet templates x class names.")
public final class BenchTokenizerCommand implements Callable<Integer> {
  @Option(names = "--vocab", paramLabel = "FILE", description = "Vocabulary (default: $JCLIP_VOCAB, the user cache, then the reference folder's copy).")
  Path vocab;

  @Option(names = "--classes", paramLabel = "FILE", description = "JSON array of class names (default: <reference>/zeroshot/imagenet_classes.json).")
  Path classes;

  @Option(names = "--templates", paramLabel = "FILE", description = "JSON array of templates with {} (default: <reference>/zeroshot/imagenet_templates.json).")
  Path templates;

  @Option(names = "--texts", paramLabel = "FILE", description = "Time these texts instead: JSON Lines of strings (or of objects with a \"text\" field).")
  Path textsFile;

  @Option(names = "--threads", paramLabel = "N", description = "Threads of the parallel run (default: all cores).")
  Integer threads;

  @Option(names = "--repeats", paramLabel = "N", defaultValue = "7", description = "Timed passes per configuration (default: ${DEFAULT-VALUE}).")
  int repeats;

  @Option(names = "--warmup", paramLabel = "SECONDS", defaultValue = "3", description = "Minimum warm-up per configuration (default: ${DEFAULT-VALUE}).")
  double warmupSeconds;

  @Option(names = "--no-cache", description = "Disable the BPE cache, to time the merges themselves.")
  boolean noCache;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    if (repeats < 1 || (threads != null && (threads < 1 || threads > dev.jclip.api.Clip.Options.MAX_THREADS))) {
      err.println("jclip bench tokenizer: --repeats must be at least 1 and --threads from 1 to " + dev.jclip.api.Clip.Options.MAX_THREADS);
      return 2;
    }
    if (!(warmupSeconds >= 0 && warmupSeconds < 1e6)) {
      err.println("jclip bench tokenizer: --warmup (seconds) must be from 0 to 1e6, got " + warmupSeconds);
      return 2;
    }
    List<String> texts;
    ClipTokenizer tokenizer;
    try {
      Path ref = referenceDir();
      if (textsFile != null) {
        texts = readLines(textsFile);
      } else {
        List<String> names = readStrings(classes != null ? classes : ref.resolve("zeroshot/imagenet_classes.json"));
        List<String> forms = readStrings(templates != null ? templates : ref.resolve("zeroshot/imagenet_templates.json"));
        texts = new ArrayList<>(names.size() * forms.size());
        for (String c : names) for (String t : forms) texts.add(t.replace("{}", c));
      }
      if (texts.isEmpty()) throw new IOException("no texts to time");
      Path v = vocab;
      if (v == null) {
        try {
          v = ClipTokenizer.defaultVocabulary();
        } catch (IOException e) {
          v = ref.resolve(ClipTokenizer.VOCAB_FILE_NAME);
          if (!Files.exists(v)) throw e;
        }
      }
      tokenizer = new ClipTokenizer(Vocabulary.load(v), noCache ? 0 : ClipTokenizer.DEFAULT_CACHE_SIZE);
    } catch (IOException e) {
      err.println("jclip bench tokenizer: " + e.getMessage());
      return 1;
    }
    long tokensPerPass = 0;
    for (String t : texts) tokensPerPass += tokenizer.encode(t).length;
    int cores = Runtime.getRuntime().availableProcessors();
    int n = threads != null ? threads : cores;
    out.printf("tokenizer benchmark: %s, %d texts (%d BPE tokens, %.1f per text), cache %s, %d cores available%n",
        textsFile != null ? textsFile : "ImageNet templates x classes", texts.size(), tokensPerPass, (double) tokensPerPass / texts.size(), noCache ? "off" : "on", cores);
    out.printf("%-8s %12s %14s %16s %8s %18s%n", "threads", "texts/s", "tokens/s", "tokens/s/thread", "spread", "tokens/CPU-second");
    for (int t : n == 1 ? new int[] {1} : new int[] {1, n}) {
      Samples s = measure(tokenizer, texts, t);
      double[] wall = s.wall().clone();
      Arrays.sort(wall);
      double median = wall[wall.length / 2];
      double[] cpu = s.cpu().clone();
      Arrays.sort(cpu);
      double tokensPerSecond = tokensPerPass / median;
      out.printf("%-8d %12.0f %14.0f %16.0f %7.1f%% %18.0f%n", t, texts.size() / median, tokensPerSecond, tokensPerSecond / t,
          100 * (wall[wall.length - 1] - wall[0]) / median, tokensPerPass / cpu[cpu.length / 2]);
      out.flush();
    }
    out.println("tokens = BPE ids per text (without start/end/padding); each pass runs tokenize(text, 77, truncate=true) on every text;");
    out.println("median of " + repeats + " samples after >= " + warmupSeconds + " s of warm-up; spread = (slowest - fastest) / median;");
    out.println("tokens/CPU-second = tokens per second of CPU time used by the worker threads (per core, whatever the machine's load).");
    return 0;
  }

  /** Per timed sample: wall-clock seconds per pass, and CPU seconds the workers used per pass. */
  private record Samples(double[] wall, double[] cpu) {}

  /**
   * Passes over all texts, split into contiguous slices over {@code threads} threads. A timed
   * sample repeats the pass until it lasts at least 0.2 s, so small text sets are not dominated by
   * timer and thread start-up noise. CPU time is measured too: on a shared machine it still tells
   * the cost per core when wall time does not.
   */
  private Samples measure(ClipTokenizer tokenizer, List<String> texts, int threads) throws Exception {
    try (ExecutorService pool = Executors.newFixedThreadPool(threads)) {
      long warmEnd = System.nanoTime() + (long) (warmupSeconds * 1e9);
      long passes = 0;
      long warmStart = System.nanoTime();
      do {
        pass(pool, tokenizer, texts, threads);
        passes++;
      } while (System.nanoTime() < warmEnd);
      double perPass = (System.nanoTime() - warmStart) / 1e9 / passes;
      int loops = (int) Math.max(1, Math.ceil(0.2 / perPass));
      double[] wall = new double[repeats];
      double[] cpu = new double[repeats];
      for (int r = 0; r < repeats; r++) {
        long t0 = System.nanoTime();
        long cpuNanos = 0;
        for (int k = 0; k < loops; k++) cpuNanos += pass(pool, tokenizer, texts, threads);
        wall[r] = (System.nanoTime() - t0) / 1e9 / loops;
        cpu[r] = cpuNanos / 1e9 / loops;
      }
      return new Samples(wall, cpu);
    }
  }

  /** One pass; returns the CPU nanoseconds its workers used. */
  private static long pass(ExecutorService pool, ClipTokenizer tokenizer, List<String> texts, int threads) throws Exception {
    ThreadMXBean mx = ManagementFactory.getThreadMXBean();
    List<Future<long[]>> parts = new ArrayList<>(threads);
    int size = texts.size();
    for (int k = 0; k < threads; k++) {
      int from = (int) ((long) size * k / threads);
      int to = (int) ((long) size * (k + 1) / threads);
      parts.add(pool.submit(() -> {
        long c0 = mx.getCurrentThreadCpuTime();
        long sink = 0;
        for (int i = from; i < to; i++) sink += tokenizer.tokenize(texts.get(i), 77, true)[1];
        return new long[] {sink, mx.getCurrentThreadCpuTime() - c0};
      }));
    }
    long sink = 0;
    long cpu = 0;
    for (Future<long[]> f : parts) {
      long[] r = f.get();
      sink += r[0];
      cpu += r[1];
    }
    if (sink == 42) System.out.print(""); // keeps the results alive
    return cpu;
  }

  private static List<String> readStrings(Path file) throws IOException {
    if (!Files.isRegularFile(file)) throw new IOException(file + ": not found");
    try {
      return new ObjectMapper().readValue(file.toFile(), new TypeReference<List<String>>() {});
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new IOException(file + ": expected a JSON array of strings (" + e.getOriginalMessage() + ")", e);
    }
  }

  private static List<String> readLines(Path file) throws IOException {
    if (!Files.isRegularFile(file)) throw new IOException(file + ": not found");
    ObjectMapper json = new ObjectMapper();
    List<String> out = new ArrayList<>();
    int lineNo = 0;
    for (String line : Files.readAllLines(file)) {
      lineNo++;
      if (line.isBlank()) continue;
      com.fasterxml.jackson.databind.JsonNode node;
      try {
        node = json.readTree(line);
      } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
        throw new IOException(file + " line " + lineNo + ": not valid JSON (" + e.getOriginalMessage() + ")", e);
      }
      if (node.isObject() && node.has("text")) node = node.get("text");
      if (!node.isTextual()) throw new IOException(file + " line " + lineNo + ": expected a JSON string or an object with \"text\"");
      out.add(node.textValue());
    }
    return out;
  }

  /** The clip-reference folder: $JCLIP_REFERENCE, else ../shared/clip-reference. */
  private static Path referenceDir() {
    String p = System.getenv("JCLIP_REFERENCE");
    return Path.of(p != null && !p.isBlank() ? p : "../shared/clip-reference").toAbsolutePath().normalize();
  }
}
