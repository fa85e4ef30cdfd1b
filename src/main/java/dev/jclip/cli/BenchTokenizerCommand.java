package dev.jclip.cli;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jclip.tokenizer.ClipTokenizer;
import dev.jclip.tokenizer.Vocabulary;
import java.io.IOException;
import java.io.PrintWriter;
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
    if (repeats < 1 || (threads != null && threads < 1)) {
      err.println("jclip bench tokenizer: --repeats and --threads must be at least 1");
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
    out.printf("%-10s %14s %16s %18s %12s%n", "threads", "texts/s", "tokens/s", "tokens/s/thread", "spread");
    for (int t : n == 1 ? new int[] {1} : new int[] {1, n}) {
      double[] seconds = measure(tokenizer, texts, t); // per pass over all texts
      double[] sorted = seconds.clone();
      Arrays.sort(sorted);
      double median = sorted[sorted.length / 2];
      double textsPerSecond = texts.size() / median;
      double tokensPerSecond = tokensPerPass / median;
      out.printf("%-10d %14.0f %16.0f %18.0f %11.1f%%%n", t, textsPerSecond, tokensPerSecond, tokensPerSecond / t,
          100 * (sorted[sorted.length - 1] - sorted[0]) / median);
      out.flush();
    }
    out.println("tokens = BPE ids per text (without start/end/padding); each pass runs tokenize(text, 77, truncate=true) on every text;");
    out.println("median of " + repeats + " passes after >= " + warmupSeconds + " s of warm-up; spread = (slowest - fastest) / median.");
    return 0;
  }

  /**
   * Seconds per pass over all texts, split into contiguous slices over {@code threads} threads.
   * A timed sample repeats the pass until it lasts at least 0.2 s, so small text sets are not
   * dominated by timer and thread start-up noise.
   */
  private double[] measure(ClipTokenizer tokenizer, List<String> texts, int threads) throws Exception {
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
      double[] seconds = new double[repeats];
      for (int r = 0; r < repeats; r++) {
        long t0 = System.nanoTime();
        for (int k = 0; k < loops; k++) pass(pool, tokenizer, texts, threads);
        seconds[r] = (System.nanoTime() - t0) / 1e9 / loops;
      }
      return seconds;
    }
  }

  private static void pass(ExecutorService pool, ClipTokenizer tokenizer, List<String> texts, int threads) throws Exception {
    List<Future<Long>> parts = new ArrayList<>(threads);
    int size = texts.size();
    for (int k = 0; k < threads; k++) {
      int from = (int) ((long) size * k / threads);
      int to = (int) ((long) size * (k + 1) / threads);
      parts.add(pool.submit(() -> {
        long sink = 0;
        for (int i = from; i < to; i++) sink += tokenizer.tokenize(texts.get(i), 77, true)[1];
        return sink;
      }));
    }
    long sink = 0;
    for (Future<Long> f : parts) sink += f.get();
    if (sink == 42) System.out.print(""); // keeps the results alive
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
