package dev.jclip.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jclip.api.Clip;
import dev.jclip.image.ImageDecoder;
import dev.jclip.io.AtomicFile;
import dev.jclip.io.Downloader;
import dev.jclip.io.SafetensorsReader;
import dev.jclip.io.SafetensorsWriter;
import dev.jclip.io.Tensor;
import dev.jclip.pipeline.InputItem;
import dev.jclip.pipeline.InputSource;
import dev.jclip.pipeline.InputSources;
import dev.jclip.pipeline.OrderedDecoder;
import dev.jclip.pipeline.Progress;
import dev.jclip.tokenizer.Prompts;
import dev.jclip.zeroshot.ZeroShotClassifier;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.Callable;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code jclip zeroshot}: the paper's zero-shot classifier with prompt ensembling over a folder,
 * list, CSV/JSONL/Parquet table or webdataset shards; predictions with probabilities as CSV or JSONL (by
 * the output's extension); top-1/top-5 accuracy when the input has a label column. Class
 * embeddings are computed once per (model, classes, templates) and cached in the user cache.
 *
 * <p>Images are decoded and preprocessed on {@code --workers} threads ({@link OrderedDecoder}) and
 * encoded in input order with one batch in flight at the model; the output is the same, byte for
 * byte, whatever the number of workers (docs/pipeline.md, "Zero-shot classification").
 */
@Command(name = "zeroshot", mixinStandardHelpOptions = true,
    description = "Zero-shot classification with prompt ensembling; predictions as CSV or JSONL, accuracy when labels are given.")
public final class ZeroShotCommand implements Callable<Integer> {
  @Mixin ModelOptions model;

  @Option(names = "--classes", required = true, paramLabel = "FILE", description = "Class names: a JSON list, or plain text with one a line.")
  Path classesFile;

  @Option(names = "--templates", required = true, paramLabel = "FILE", description = "Prompt templates with {} for the class name: a JSON list or one a line.")
  Path templatesFile;

  @Option(names = "--input", required = true, paramLabel = "SOURCE", description = "A folder of images, a .txt of paths, a .csv/.jsonl/.parquet table, or .tar shards.")
  String input;

  @Option(names = "--output", required = true, paramLabel = "FILE", description = "Predictions: FILE.csv or FILE.jsonl.")
  Path output;

  @Option(names = "--errors", paramLabel = "FILE.jsonl",
      description = "Also write the inputs that were skipped, one JSON object a line: index, the input's id (image_path or key, as in the output), error; input order.")
  Path errors;

  @Option(names = "--top-k", paramLabel = "K", defaultValue = "5", description = "Classes per prediction (default: ${DEFAULT-VALUE}).")
  int topK;

  @Option(names = "--image-column", paramLabel = "NAME", description = "Table column with the image path.")
  String imageColumn;

  @Option(names = "--label-column", paramLabel = "NAME", defaultValue = "label",
      description = "Table column with the true class name, for accuracy (default: ${DEFAULT-VALUE}).")
  String labelColumn;

  @Option(names = "--batch-size", paramLabel = "N", defaultValue = "64", description = "Images per forward pass (default: ${DEFAULT-VALUE}).")
  int batchSize;

  @Mixin DecodeOptions decode;

  @Option(names = "--no-cache", description = "Recompute the class embeddings instead of reading them from the cache.")
  boolean noCache;

  @Option(names = "--workers", paramLabel = "N", description = "Decoding threads (default: all processors).")
  Integer workers;

  @Option(names = "--progress", paramLabel = "MODE", defaultValue = "auto",
      description = "auto (a bar on a terminal, lines every 10 s otherwise), bar, lines or none (default: ${DEFAULT-VALUE}).")
  String progress;

  /** Milliseconds between progress reports (a test shortens it, to run the reporter alongside the stages). */
  long progressIntervalMillis = 10_000;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() {
    PrintWriter err = spec.commandLine().getErr();
    String invalid = model.invalid() != null ? model.invalid() : decode.invalid();
    if (invalid != null) return fail(err, 2, invalid);
    String name = output.getFileName().toString().toLowerCase(Locale.ROOT);
    boolean jsonl = name.endsWith(".jsonl") || name.endsWith(".json");
    if (!jsonl && !name.endsWith(".csv")) return fail(err, 2, "--output must end in .csv or .jsonl: " + output);
    if (topK < 1 || batchSize < 1) return fail(err, 2, "--top-k and --batch-size must be at least 1");
    // three pixel buffers in flight, checked at the smallest CLIP resolution now and at the model's once loaded
    String tooLarge = dev.jclip.pipeline.BatchBuffers.tooLarge(batchSize, dev.jclip.pipeline.BatchBuffers.SMALLEST_RESOLUTION, 3);
    if (tooLarge != null) return fail(err, 2, tooLarge);
    String badOut = ModelOptions.outputsInvalid(output, "--output", errors, "--errors"); // now rather than after the images
    if (badOut != null) return fail(err, 2, badOut);
    int threads = workers == null ? Math.max(1, Runtime.getRuntime().availableProcessors()) : workers;
    if (threads < 1) return fail(err, 2, "--workers must be at least 1");
    Progress.Mode mode;
    try {
      mode = Progress.mode(progress);
    } catch (IllegalArgumentException e) {
      return fail(err, 2, e.getMessage());
    }
    List<String> classes, templates;
    try {
      classes = Prompts.readList(classesFile);
      templates = Prompts.readList(templatesFile);
      checkClassesAndTemplates(classes, templates, err);
    } catch (IOException e) {
      return fail(err, 1, e.getMessage());
    } catch (IllegalArgumentException e) {
      return fail(err, 2, e.getMessage());
    }
    long t0 = System.nanoTime();
    try (Clip clip = model.load(batchSize)) {
      double loadSeconds = (System.nanoTime() - t0) / 1e9;
      long c0 = System.nanoTime();
      ZeroShotClassifier zs = classifier(clip, classes, templates, err);
      double classSeconds = (System.nanoTime() - c0) / 1e9;
      ImageDecoder decoder = decode.decoder(clip.config().imageResolution());
      Run run;
      // Both files are written whole or not at all: a run that fails leaves what was there before.
      try (AtomicFile file = AtomicFile.create(output);
          AtomicFile errorFile = errors == null ? null : AtomicFile.create(errors);
          InputSource source = InputSources.open(input, imageColumn, null)) {
        BufferedWriter out = new BufferedWriter(new java.io.OutputStreamWriter(file.stream(), StandardCharsets.UTF_8), 1 << 16);
        BufferedWriter errOut = errorFile == null ? null : new BufferedWriter(new java.io.OutputStreamWriter(errorFile.stream(), StandardCharsets.UTF_8));
        run = new Run(clip, zs, classes, source, out, errOut, jsonl, err);
        run.go(decoder, threads, mode);
        out.flush(); // both written before either is moved into place
        if (errOut != null) errOut.flush();
        file.commit();
        if (errorFile != null) errorFile.commit();
      }
      Map<String, Double> timings = new LinkedHashMap<>();
      timings.put("model_load_s", loadSeconds);
      timings.put("class_embeddings_s", classSeconds);
      timings.putAll(run.timings);
      timings.put("wall_s", (System.nanoTime() - t0) / 1e9);
      err.println(summary(timings));
      err.printf("jclip zeroshot: %s classified into %s (%s), %d skipped%s%n", Words.count(run.seen, "image"), Words.count(classes.size(), "class"),
          Words.count(templates.size(), "template"), run.bad, run.bad == 0 ? "" : errors != null ? " (listed in " + errors + ")" : " (listed above; --errors FILE.jsonl writes them to a file)");
      if (run.labelled > 0) {
        err.printf("jclip zeroshot: top-1 accuracy %.4f, top-5 accuracy %.4f (%d labelled images)%n", (double) run.top1 / run.labelled,
            (double) run.top5 / run.labelled, run.labelled);
        if (run.unknownLabels > 0) {
          err.printf("jclip zeroshot: warning: %d labelled images have a label that is none of the classes (such as '%s'); they count as wrong%n",
              run.unknownLabels, run.unknownLabel);
        }
      } else if (spec.commandLine().getParseResult().hasMatchedOption("--label-column") && run.seen > 0) {
        err.println("jclip zeroshot: warning: no input has a '" + labelColumn + "' value, so there is no accuracy");
      }
      err.flush();
      if (run.seen == 0 && run.bad > 0) return fail(err, 1, "nothing was classified: every input was skipped");
      return 0;
    } catch (IOException | IllegalArgumentException | IllegalStateException e) {
      return fail(err, 1, e.getMessage());
    }
  }

  /** Good images of consecutive inputs, in one pooled pixel buffer: one forward pass. */
  private record Batch(float[] pixels, List<InputItem> items) {}

  private static final Batch END = new Batch(null, List.of());

  /**
   * One classification pass over the input. Stages: an {@link OrderedDecoder} decodes and
   * preprocesses on {@code --workers} threads; an assembler thread takes its results in input
   * order, reports the inputs that cannot be used, and packs the good images into batches of
   * {@code --batch-size} (the same batches, hence the same numbers, as one thread decoding in
   * turn); the calling thread encodes them in order with one batch in flight ({@link
   * Clip#submitImage}: on a GPU the next batch uploads while this one computes, and the rows of
   * the one before are written meanwhile). Three pixel buffers circulate (one being filled, one
   * waiting, one being submitted): with the decoder's window they bound the memory in use.
   */
  private final class Run {
    final Clip clip;
    final ZeroShotClassifier zs;
    final List<String> classes;
    final InputSource source;
    final BufferedWriter out;
    final BufferedWriter errOut; // or null
    final boolean jsonl;
    final PrintWriter err;
    final int k;
    final int fpi;
    final ObjectMapper json = new ObjectMapper();
    long seen, labelled, top1, top5, bad, unknownLabels;
    String unknownLabel;
    private java.util.Set<String> classSet;
    long encodeNanos, waitNanos, classifyNanos, writeNanos;
    final Map<String, Double> timings = new LinkedHashMap<>();

    Run(Clip clip, ZeroShotClassifier zs, List<String> classes, InputSource source, BufferedWriter out, BufferedWriter errOut, boolean jsonl,
        PrintWriter err) {
      this.clip = clip;
      this.zs = zs;
      this.classes = classes;
      this.source = source;
      this.out = out;
      this.errOut = errOut;
      this.jsonl = jsonl;
      this.err = err;
      this.k = Math.min(topK, classes.size());
      int r = clip.config().imageResolution();
      this.fpi = 3 * r * r;
    }

    void go(ImageDecoder decoder, int threads, Progress.Mode mode) throws IOException {
      if (!jsonl) out.write(csvHeader(source.idColumn(), k));
      Progress progress = new Progress(mode, err, source.size(), "jclip zeroshot");
      ScheduledExecutorService ticker = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "zeroshot-progress");
        t.setDaemon(true);
        return t;
      });
      ticker.scheduleAtFixedRate(() -> progress.report(false), progressIntervalMillis, progressIntervalMillis, TimeUnit.MILLISECONDS);
      BlockingQueue<float[]> pool = new ArrayBlockingQueue<>(3);
      BlockingQueue<Batch> batches = new ArrayBlockingQueue<>(4);
      AtomicReference<Throwable> failure = new AtomicReference<>();
      // A few inputs per worker read ahead, so that one slow image does not idle the others.
      int window = Math.max(8, 4 * threads);
      Clip.Pending inFlight = null;
      try (OrderedDecoder dec = new OrderedDecoder(source, decoder, clip.config().imageResolution(), threads, window)) {
        String tooLarge = dev.jclip.pipeline.BatchBuffers.tooLarge(batchSize, clip.config().imageResolution(), 3);
        if (tooLarge != null) throw new IllegalArgumentException(tooLarge);
        for (int i = 0; i < 3; i++) pool.add(new float[batchSize * fpi]);
        Thread assembler = new Thread(() -> {
          try {
            assemble(dec, pool, batches, progress);
            batches.put(END);
          } catch (InterruptedException e) {
            // stopped: the encoder stage failed and reads no more batches
          } catch (Throwable t) {
            // The batches before the failure are still written (as when one thread did it all); then it is rethrown.
            failure.set(t);
            try {
              batches.put(END);
            } catch (InterruptedException e) {
              // stopped meanwhile
            }
          }
        }, "zeroshot-assemble");
        assembler.setDaemon(true);
        assembler.start();
        try {
          List<InputItem> inFlightItems = null;
          while (true) {
            long w = System.nanoTime();
            Batch b = batches.take();
            waitNanos += System.nanoTime() - w;
            if (b == END) break;
            int n = b.items().size();
            long t = System.nanoTime();
            // The pooled buffer holds batchSize images; a last, partial batch is copied to its size.
            float[] data = n == batchSize ? b.pixels() : Arrays.copyOf(b.pixels(), n * fpi);
            Clip.Pending p = clip.submitImage(new Clip.Pixels(n, clip.config().imageResolution(), data));
            encodeNanos += System.nanoTime() - t;
            // submitImage has copied the pixels (its contract): the buffer can be refilled.
            pool.put(b.pixels());
            Clip.Pending before = inFlight;
            List<InputItem> beforeItems = inFlightItems;
            inFlight = p;
            inFlightItems = b.items();
            if (before != null) write(finish(before), beforeItems, progress);
          }
          if (inFlight != null) {
            Clip.Pending last = inFlight;
            inFlight = null;
            write(finish(last), inFlightItems, progress);
          }
          Throwable f = failure.get();
          if (f instanceof IOException io) throw io;
          if (f instanceof RuntimeException re) throw re;
          if (f instanceof Error er) throw er;
          if (f != null) throw new IOException(f);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new IOException("interrupted", e);
        } finally {
          // The decoder is the assembler's: it is closed (below) once that thread has stopped.
          assembler.interrupt();
          try {
            assembler.join();
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
          if (inFlight != null) inFlight.close();
        }
        timings.putAll(dec.timings());
      } finally {
        ticker.shutdownNow();
      }
      progress.report(true);
      timings.put("encode_s", encodeNanos / 1e9);
      timings.put("encoder_waiting_for_input_s", waitNanos / 1e9);
      timings.put("classify_s", classifyNanos / 1e9);
      timings.put("write_s", writeNanos / 1e9);
    }

    private float[][] finish(Clip.Pending p) {
      long t = System.nanoTime();
      float[][] f = p.finish();
      encodeNanos += System.nanoTime() - t;
      return f;
    }

    /** The assembler: decoded inputs in input order into batches of good images. */
    private void assemble(OrderedDecoder dec, BlockingQueue<float[]> pool, BlockingQueue<Batch> batches, Progress progress)
        throws IOException, InterruptedException {
      float[] pixels = null;
      List<InputItem> items = new ArrayList<>();
      for (OrderedDecoder.Decoded d; (d = dec.next()) != null; ) {
        if (d.error() != null) {
          bad++;
          progress.message("jclip zeroshot: skipped " + d.item().id() + ": " + d.error());
          if (errOut != null) {
            errOut.write(json.writeValueAsString(json.createObjectNode().put("index", d.item().index()).put(source.idColumn(), d.item().id()).put("error", d.error())));
            errOut.write('\n');
          }
          progress.advance(true);
          continue;
        }
        if (pixels == null) pixels = pool.take();
        System.arraycopy(d.pixels(), 0, pixels, items.size() * fpi, fpi);
        items.add(d.item());
        if (items.size() == batchSize) {
          batches.put(new Batch(pixels, items));
          pixels = null;
          items = new ArrayList<>();
        }
      }
      if (!items.isEmpty()) batches.put(new Batch(pixels, items));
    }

    /** Classifies a batch's features and writes its rows, in input order. */
    private void write(float[][] features, List<InputItem> items, Progress progress) throws IOException {
      long t = System.nanoTime();
      float[][] probs = zs.probs(features);
      int[][] tops = new int[items.size()][];
      for (int i = 0; i < items.size(); i++) tops[i] = ZeroShotClassifier.topK(probs[i], Math.max(k, Math.min(5, classes.size())));
      long t1 = System.nanoTime();
      classifyNanos += t1 - t;
      for (int i = 0; i < items.size(); i++) {
        InputItem it = items.get(i);
        int[] top = tops[i];
        String label = it.extra().get(labelColumn);
        if (label != null) {
          labelled++;
          if (classSet == null) classSet = new java.util.HashSet<>(classes);
          if (!classSet.contains(label)) {
            unknownLabels++;
            if (unknownLabel == null) unknownLabel = label;
          }
          if (classes.get(top[0]).equals(label)) top1++;
          for (int j = 0; j < Math.min(5, top.length); j++) if (classes.get(top[j]).equals(label)) top5++;
        }
        out.write(jsonl ? jsonLine(json, source.idColumn(), it.id(), label, classes, probs[i], top, k) : csvLine(it.id(), label, classes, probs[i], top, k));
        seen++;
        progress.advance(false);
      }
      writeNanos += System.nanoTime() - t1;
    }
  }

  private static String summary(Map<String, Double> t) {
    StringBuilder s = new StringBuilder("jclip zeroshot: where the time went (decode/preprocess: *_cpu_s the workers' CPU time, *_wall_s their"
        + " elapsed time, both summed over the workers; encode_s the model; classify_s probabilities and top-k; write_s the output):\n");
    t.forEach((key, v) -> s.append(String.format(Locale.ROOT, "  %-30s %9.2f s%n", key, v)));
    return s.toString().stripTrailing();
  }

  /**
   * Refuses a class named twice (the two would share its probability); warns of a template with no
   * {@code {}} for the class name (it gives every class the same embedding).
   */
  static void checkClassesAndTemplates(List<String> classes, List<String> templates, PrintWriter err) {
    Map<String, Integer> first = new java.util.HashMap<>();
    for (int i = 0; i < classes.size(); i++) {
      Integer j = first.putIfAbsent(classes.get(i), i);
      if (j != null) {
        throw new IllegalArgumentException("--classes names '" + classes.get(i) + "' twice (classes " + (j + 1) + " and " + (i + 1)
            + "): the two would split its probability");
      }
    }
    for (String t : templates) {
      if (!t.contains("{}")) {
        err.println("jclip zeroshot: warning: the template '" + t + "' has no {} for the class name: it gives every class the same embedding");
      }
    }
  }

  /** Class embeddings from the cache when the same model, classes and templates were seen before. */
  private ZeroShotClassifier classifier(Clip clip, List<String> classes, List<String> templates, PrintWriter err) throws IOException {
    Path cacheFile = null;
    Path modelFile = clip.modelPath();
    if (!noCache && modelFile != null && Files.isRegularFile(modelFile)) {
      // an --activation override, or 16 bits, computes other embeddings from the same file (keyed only then: fp32 caches made
      // before stay valid)
      String override = "override".equals(clip.config().activationSource()) ? "\nactivation " + clip.config().activation().hfName() : "";
      dev.jclip.backend.Precision precision = dev.jclip.backend.Precision.parse(model.precision);
      if (precision != dev.jclip.backend.Precision.FP32) override += "\nprecision " + precision;
      String key = sha256(Downloader.sha256(modelFile) + override + "\n" + String.join("\n", classes) + "\n\n" + String.join("\n", templates));
      cacheFile = Downloader.defaults(System.err).cache().resolve("zeroshot").resolve(key + ".safetensors");
      if (Files.exists(cacheFile)) {
        try (SafetensorsReader r = SafetensorsReader.open(cacheFile)) {
          Tensor t = r.tensor("class_embeddings");
          float[] flat = t.toFloatArray();
          int e = (int) t.dim(1);
          float[][] rows = new float[(int) t.dim(0)][e];
          for (int c = 0; c < rows.length; c++) System.arraycopy(flat, c * e, rows[c], 0, e);
          err.println("jclip zeroshot: class embeddings from the cache " + cacheFile);
          return ZeroShotClassifier.of(clip, classes, rows);
        } catch (IOException | IllegalArgumentException e) {
          err.println("jclip zeroshot: ignoring a damaged cache file " + cacheFile + " (" + e.getMessage() + ")");
        }
      }
    }
    ZeroShotClassifier zs = ZeroShotClassifier.build(clip, classes, templates);
    if (cacheFile != null) {
      float[][] rows = zs.classEmbeddings();
      int e = rows[0].length;
      float[] flat = new float[rows.length * e];
      for (int c = 0; c < rows.length; c++) System.arraycopy(rows[c], 0, flat, c * e, e);
      Files.createDirectories(cacheFile.getParent());
      SafetensorsWriter.write(cacheFile, List.of(Tensor.ofFloats("class_embeddings", new long[] {rows.length, e}, flat)),
          Map.of("classes", String.valueOf(classes.size()), "templates", String.valueOf(templates.size())));
    }
    return zs;
  }

  private static String csvHeader(String idColumn, int k) {
    StringBuilder sb = new StringBuilder(idColumn).append(",label");
    for (int j = 1; j <= k; j++) sb.append(",top").append(j).append(",top").append(j).append("_prob");
    return sb.append('\n').toString();
  }

  private static String csvLine(String id, String label, List<String> classes, float[] probs, int[] top, int k) {
    StringBuilder sb = new StringBuilder(csv(id)).append(',').append(label == null ? "" : csv(label));
    for (int j = 0; j < k; j++) sb.append(',').append(csv(classes.get(top[j]))).append(',').append(probs[top[j]]);
    return sb.append('\n').toString();
  }

  private static String csv(String s) {
    return s.contains(",") || s.contains("\"") || s.contains("\n") ? "\"" + s.replace("\"", "\"\"") + "\"" : s;
  }

  private static String jsonLine(ObjectMapper json, String idColumn, String id, String label, List<String> classes, float[] probs, int[] top, int k)
      throws IOException {
    ObjectNode o = json.createObjectNode().put(idColumn, id);
    if (label != null) o.put("label", label);
    ArrayNode a = o.putArray("top");
    for (int j = 0; j < k; j++) a.addObject().put("class", classes.get(top[j])).put("prob", probs[top[j]]);
    return json.writeValueAsString(o) + "\n";
  }

  private static String sha256(String s) {
    return Downloader.sha256(s.getBytes(StandardCharsets.UTF_8));
  }

  private static int fail(PrintWriter err, int code, String message) {
    err.println("jclip zeroshot: " + message);
    err.flush();
    return code;
  }
}
