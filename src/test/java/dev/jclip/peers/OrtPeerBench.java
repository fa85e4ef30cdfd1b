package dev.jclip.peers;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jclip.io.SafetensorsReader;
import dev.jclip.io.Tensor;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * The ONNX Runtime peer of jclip's CPU benchmark: what a Java user gets from exporting openai/CLIP's
 * ViT-B/32 to ONNX and running it with ONNX Runtime's Java API (fp32, CPU execution provider, all
 * graph optimisations, a fixed number of intra-op threads).
 *
 * <p>Reads what {@code scripts/peers/export_onnx.py} wrote (image.onnx, text.onnx,
 * check.safetensors, prompts.json), first checks that ONNX Runtime reproduces PyTorch's features on
 * the check inputs (a batch size and a text length the export never saw), then measures per batch
 * size: images/s, 77-token texts/s and ImageNet-template prompts/s (consecutive prompts of
 * prompts.json, each batch padded with 0 to its longest; one repetition is a pass over all of them).
 * Warm-up, then the median of repetitions and the spread; one JSON object per line on standard
 * output and the whole report in {@code --json FILE}.
 *
 * <p>Run: {@code scripts/peers/run.sh --only ort} (it exports the model, builds the test classes
 * and puts ONNX Runtime on the class path). Options: {@code --peers DIR --batch 1,8,32 --threads 2
 * --json FILE --min-seconds 3 --min-reps 5 --spin --check-tolerance 1e-4}.
 */
public final class OrtPeerBench {
  static final long SOT = 49406;
  static final long EOT = 49407;

  private OrtPeerBench() {}

  /** Command-line options; {@link #parse} fails with a message naming the bad argument. */
  record Options(
      Path peers, int[] batches, int threads, Path json, double minSeconds, int minReps, boolean spin, double checkTolerance) {
    static Options parse(String... args) {
      Path peers = Path.of("target", "peers");
      int[] batches = {1, 8, 32};
      int threads = 2;
      Path json = null;
      double minSeconds = 3.0;
      int minReps = 5;
      boolean spin = false;
      double tol = 1e-4;
      for (int i = 0; i < args.length; i++) {
        String a = args[i];
        if (a.equals("--spin")) {
          spin = true;
          continue;
        }
        if (i + 1 >= args.length) throw new IllegalArgumentException("option " + a + " needs a value (see the class Javadoc)");
        String v = args[++i];
        try {
          switch (a) {
            case "--peers" -> peers = Path.of(v);
            case "--batch" -> batches = Arrays.stream(v.split(",")).mapToInt(s -> Integer.parseInt(s.strip())).toArray();
            case "--threads" -> threads = Integer.parseInt(v);
            case "--json" -> json = Path.of(v);
            case "--min-seconds" -> minSeconds = Double.parseDouble(v);
            case "--min-reps" -> minReps = Integer.parseInt(v);
            case "--check-tolerance" -> tol = Double.parseDouble(v);
            default -> throw new IllegalArgumentException("unknown option " + a
                + " (known: --peers DIR --batch 1,8,32 --threads N --json FILE --min-seconds S --min-reps N --spin --check-tolerance X)");
          }
        } catch (NumberFormatException e) {
          throw new IllegalArgumentException("option " + a + ": not a number: " + v);
        }
      }
      if (batches.length == 0 || Arrays.stream(batches).anyMatch(b -> b < 1)) {
        throw new IllegalArgumentException("--batch must list positive batch sizes, got " + Arrays.toString(batches));
      }
      if (threads < 1) throw new IllegalArgumentException("--threads must be at least 1, got " + threads);
      if (minReps < 1) throw new IllegalArgumentException("--min-reps must be at least 1, got " + minReps);
      return new Options(peers, batches, threads, json, minSeconds, minReps, spin, tol);
    }
  }

  /**
   * Throughput from the per-call times: items/s at the median call, and at the slowest and fastest;
   * cpuShare is the process's CPU time over wall time x threads while timing (well under 1 on a
   * machine shared with other jobs says the figure is depressed by contention; NaN when unknown).
   */
  record Stats(double perS, double perSMin, double perSMax, double msMedian, int reps, double cpuShare) {
    Stats withCpuShare(double share) {
      return new Stats(perS, perSMin, perSMax, msMedian, reps, share);
    }

    static Stats of(double[] secondsPerCall, int items) {
      if (secondsPerCall.length == 0) throw new IllegalArgumentException("no timed calls");
      double[] s = secondsPerCall.clone();
      Arrays.sort(s);
      int n = s.length;
      double median = n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
      return new Stats(items / median, items / s[n - 1], items / s[0], median * 1e3, n, Double.NaN);
    }
  }

  /** One timed piece of work; throws what ONNX Runtime throws. */
  interface Call {
    void run() throws OrtException;
  }

  /** Two warm-up calls, then at least minReps calls and at least minSeconds (at most 50 calls). */
  static Stats measure(Call call, int items, int threads, int minReps, double minSeconds) throws OrtException {
    call.run();
    call.run();
    List<Double> times = new ArrayList<>();
    long cpu0 = processCpuNanos();
    long wall0 = System.nanoTime();
    long end = System.nanoTime() + (long) (minSeconds * 1e9);
    while (times.size() < minReps || (System.nanoTime() < end && times.size() < 50)) {
      long t0 = System.nanoTime();
      call.run();
      times.add((System.nanoTime() - t0) / 1e9);
    }
    long cpu1 = processCpuNanos();
    double share = cpu0 < 0 || cpu1 < 0 ? Double.NaN : (cpu1 - cpu0) / ((double) (System.nanoTime() - wall0) * threads);
    return Stats.of(times.stream().mapToDouble(Double::doubleValue).toArray(), items).withCpuShare(share);
  }

  /** CPU time of the whole process (ONNX Runtime's native threads included), or -1 when unknown. */
  private static long processCpuNanos() {
    if (ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os) {
      return os.getProcessCpuTime();
    }
    return -1;
  }

  /** The 77-token text of scripts/peers/common.py: start, 75 ids spread over the vocabulary, end. */
  static long[] text77Row() {
    long[] row = new long[77];
    row[0] = SOT;
    for (int i = 0; i < 75; i++) row[i + 1] = (1 + 613L * i) % SOT;
    row[76] = EOT;
    return row;
  }

  /** Rows [from, to) of {@code rows}, padded with 0 to the longest, row-major; length in {@code [0]} of the result's shape. */
  static long[][] padBatch(List<long[]> rows, int from, int to) {
    if (from < 0 || to > rows.size() || from >= to) throw new IllegalArgumentException("bad row range " + from + ".." + to + " of " + rows.size());
    int len = 0;
    for (int i = from; i < to; i++) len = Math.max(len, rows.get(i).length);
    long[][] out = new long[to - from][len];
    for (int i = from; i < to; i++) System.arraycopy(rows.get(i), 0, out[i - from], 0, rows.get(i).length);
    return out;
  }

  static List<long[]> readPrompts(Path file, ObjectMapper json) throws IOException {
    if (!Files.isRegularFile(file)) {
      throw new IOException(file + " is missing: run scripts/peers/export_onnx.py first (scripts/peers/run.sh does)");
    }
    JsonNode tokens = json.readTree(file.toFile()).path("tokens");
    if (!tokens.isArray() || tokens.isEmpty()) throw new IOException(file + ": 'tokens' must be a non-empty array of token rows");
    List<long[]> rows = new ArrayList<>();
    for (JsonNode row : tokens) {
      long[] r = new long[row.size()];
      for (int i = 0; i < r.length; i++) r[i] = row.get(i).asLong();
      if (r.length == 0 || r.length > 77 || r[r.length - 1] != EOT) {
        throw new IOException(file + ": token row " + rows.size() + " must have 1..77 ids and end with " + EOT + ": " + Arrays.toString(r));
      }
      rows.add(r);
    }
    return rows;
  }

  static double relativeError(float[] got, float[] want) {
    if (got.length != want.length) throw new IllegalArgumentException("length " + got.length + " != " + want.length);
    double d = 0, n = 0;
    for (int i = 0; i < got.length; i++) {
      d += (got[i] - (double) want[i]) * (got[i] - (double) want[i]);
      n += (double) want[i] * want[i];
    }
    return Math.sqrt(d / n);
  }

  private static OnnxTensor floats(OrtEnvironment env, float[] data, long... shape) throws OrtException {
    return OnnxTensor.createTensor(env, FloatBuffer.wrap(data), shape);
  }

  private static OnnxTensor longs(OrtEnvironment env, long[][] rows) throws OrtException {
    int len = rows[0].length;
    long[] flat = new long[rows.length * len];
    for (int i = 0; i < rows.length; i++) System.arraycopy(rows[i], 0, flat, i * len, len);
    return OnnxTensor.createTensor(env, LongBuffer.wrap(flat), new long[] {rows.length, len});
  }

  /** Runs one input through a session and returns the first output flattened. */
  private static float[] run(OrtSession session, String input, OnnxTensor value) throws OrtException {
    try (OrtSession.Result r = session.run(Map.of(input, value))) {
      OnnxTensor out = (OnnxTensor) r.get(0);
      FloatBuffer fb = out.getFloatBuffer();
      float[] f = new float[fb.remaining()];
      fb.get(f);
      return f;
    }
  }

  public static void main(String[] args) throws Exception {
    Options opt;
    try {
      opt = Options.parse(args);
    } catch (IllegalArgumentException e) {
      System.err.println("OrtPeerBench: " + e.getMessage());
      System.exit(2);
      return;
    }
    ObjectMapper json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    ObjectMapper line = new ObjectMapper();
    Path imageModel = opt.peers().resolve("image.onnx");
    Path textModel = opt.peers().resolve("text.onnx");
    Path checkFile = opt.peers().resolve("check.safetensors");
    for (Path p : List.of(imageModel, textModel, checkFile)) {
      if (!Files.isRegularFile(p)) {
        System.err.println("OrtPeerBench: " + p + " is missing: run scripts/peers/export_onnx.py first (scripts/peers/run.sh does)");
        System.exit(1);
      }
    }
    List<long[]> prompts = readPrompts(opt.peers().resolve("prompts.json"), json);

    OrtEnvironment env = OrtEnvironment.getEnvironment();
    try (OrtSession.SessionOptions so = new OrtSession.SessionOptions()) {
      so.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
      so.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
      so.setIntraOpNumThreads(opt.threads());
      so.setInterOpNumThreads(1);
      // Spinning worker threads are ONNX Runtime's default and help on an idle machine, but on a
      // machine shared with other jobs a spinning thread steals the core its partner needs.
      so.addConfigEntry("session.intra_op.allow_spinning", opt.spin() ? "1" : "0");
      try (OrtSession image = env.createSession(imageModel.toString(), so);
          OrtSession text = env.createSession(textModel.toString(), so)) {
        ObjectNode report = json.createObjectNode();
        report.put("peer", "onnxruntime-java");
        report.put("onnxruntime", env.getVersion());
        report.put("java", System.getProperty("java.version"));
        report.put("threads", opt.threads());
        report.put("precision", "fp32");
        report.put("optimization", "ALL_OPT");
        report.put("spinning", opt.spin());
        report.put("model", "openai/CLIP ViT-B/32 structure exported by scripts/peers/export_onnx.py, random weights");
        report.put("prompt_count", prompts.size());
        report.set("check_vs_torch", check(env, image, text, checkFile, opt.checkTolerance()));
        System.out.println(line.writeValueAsString(report));
        ArrayNode results = report.putArray("results");
        Random random = new Random(0);
        for (int b : opt.batches()) {
          float[] pixels = new float[b * 3 * 224 * 224];
          for (int i = 0; i < pixels.length; i++) pixels[i] = (float) random.nextGaussian();
          long[][] t77 = new long[b][];
          for (int i = 0; i < b; i++) t77[i] = text77Row();
          ObjectNode row = results.addObject();
          row.put("precision", "fp32");
          row.put("batch", b);
          try (OnnxTensor px = floats(env, pixels, b, 3, 224, 224); OnnxTensor tk = longs(env, t77)) {
            put(row, "image", measure(() -> run(image, "pixels", px), b, opt.threads(), opt.minReps(), opt.minSeconds()));
            put(row, "text77", measure(() -> run(text, "tokens", tk), b, opt.threads(), opt.minReps(), opt.minSeconds()));
          }
          List<OnnxTensor> promptBatches = new ArrayList<>();
          double paddedLen = 0;
          try {
            for (int i = 0; i < prompts.size(); i += b) {
              long[][] rows = padBatch(prompts, i, Math.min(prompts.size(), i + b));
              paddedLen += rows[0].length;
              promptBatches.add(longs(env, rows));
            }
            Stats s = measure(() -> {
              for (OnnxTensor t : promptBatches) run(text, "tokens", t);
            }, prompts.size(), opt.threads(), opt.minReps(), opt.minSeconds());
            put(row, "text_prompt", s);
          } finally {
            for (OnnxTensor t : promptBatches) t.close();
          }
          row.put("load_avg_1min", round2(ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage()));
          row.put("prompt_padded_len_mean", Math.round(paddedLen / promptBatches.size() * 100) / 100.0);
          System.out.println(line.writeValueAsString(row));
          if (opt.json() != null) json.writeValue(opt.json().toFile(), report);
        }
        if (opt.json() != null) json.writeValue(opt.json().toFile(), report);
      }
    }
  }

  private static void put(ObjectNode row, String key, Stats s) {
    row.put(key + "_per_s", round2(s.perS()));
    row.putArray(key + "_per_s_range").add(round2(s.perSMin())).add(round2(s.perSMax()));
    row.put(key + "_reps", s.reps());
    if (Double.isNaN(s.cpuShare())) row.putNull(key + "_cpu_share");
    else row.put(key + "_cpu_share", round2(s.cpuShare()));
  }

  private static double round2(double v) {
    return Math.round(v * 100) / 100.0;
  }

  /**
   * ONNX Runtime's features against PyTorch's on the check inputs (batch 3, prompts padded to their
   * longest, one 77-token text): a benchmark of a model that computes something else is worthless,
   * so a relative error above the tolerance stops the run.
   */
  private static ObjectNode check(OrtEnvironment env, OrtSession image, OrtSession text, Path file, double tol)
      throws IOException, OrtException {
    ObjectNode out = new ObjectMapper().createObjectNode();
    try (SafetensorsReader r = SafetensorsReader.open(file)) {
      String[][] cases = {{"pixels", "image_features"}, {"tokens", "text_features"}, {"tokens77", "text77_features"}};
      for (String[] c : cases) {
        Tensor in = r.tensor(c[0]);
        float[] want = r.tensor(c[1]).toFloatArray();
        float[] got;
        if (c[0].equals("pixels")) {
          try (OnnxTensor t = floats(env, in.toFloatArray(), in.shape())) {
            got = run(image, "pixels", t);
          }
        } else {
          long[] flat = in.toLongArray();
          try (OnnxTensor t = OnnxTensor.createTensor(env, LongBuffer.wrap(flat), in.shape())) {
            got = run(text, "tokens", t);
          }
        }
        double err = relativeError(got, want);
        out.put(c[1] + "_rel_err", err);
        if (!(err <= tol)) {
          throw new IllegalStateException(file + ": ONNX Runtime's " + c[1] + " differ from PyTorch's by relative error " + err
              + " (tolerance " + tol + "): the exported model is not the benchmarked one; export again with --force");
        }
      }
    }
    return out;
  }
}
