package dev.jclip.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jclip.api.Clip;
import dev.jclip.backend.cpu.CpuGemmBench;
import dev.jclip.graph.Graph;
import dev.jclip.graph.Node;
import dev.jclip.graph.TensorSpec;
import dev.jclip.io.Checkpoint;
import dev.jclip.io.Downloader;
import dev.jclip.io.ModelRegistry;
import dev.jclip.io.Tensor;
import dev.jclip.model.ClipConfig;
import dev.jclip.model.ClipGraphs;
import dev.jclip.model.RandomWeights;
import dev.jclip.tokenizer.ClipTokenizer;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code jclip bench}: the model benchmark (images/s, 77-token texts/s, ImageNet-template
 * prompts/s, achieved GFLOP/s and its share of the measured GEMM peak), and one subcommand per
 * component benchmark ({@code bench tokenizer}). Each configuration is warmed up, then timed
 * several times; the median is reported with the fastest and slowest.
 *
 * <pre>
 * scripts/jclip bench --random ViT-B/32 --device cpu --batch 1,8,32
 * </pre>
 */
@Command(
    name = "bench",
    mixinStandardHelpOptions = true,
    description = {"Benchmarks: warm-up, then the median and spread of repeated runs.",
        "Without a subcommand: the model benchmark (--model or --random)."},
    subcommands = {BenchTokenizerCommand.class, BenchCallersCommand.class})
public final class BenchCommand implements Callable<Integer> {
  @Option(names = "--model", paramLabel = "MODEL", description = "A model name, .pt, .safetensors or HuggingFace folder.")
  String model;

  @Option(names = "--random", paramLabel = "NAME", description = "Random weights at the full geometry of an OpenAI model: RN50, RN101, RN50x4, RN50x16, RN50x64, ViT-B/32, ViT-B/16, ViT-L/14 or ViT-L/14@336px;"
      + " or of open_clip's ViT-H-14, ViT-g-14 or ViT-bigG-14 (heads other than 64: the CPU, or -Djclip.cuda.anyHead=on).")
  String random;

  @Option(names = "--device", paramLabel = "DEVICE", defaultValue = "auto",
      description = "auto (the GPU when one works, else the CPU), cpu, cuda or cuda:N (default: ${DEFAULT-VALUE}).")
  String device;

  @Option(names = "--precision", paramLabel = "P", defaultValue = "fp32", description = "fp32; bf16 (GPU, or a CPU with AVX-512 BF16 / AMX); fp16 (GPU) (default: ${DEFAULT-VALUE}).")
  String precision;

  @Option(names = "--batch", paramLabel = "B,B,...", split = ",", defaultValue = "1,8,32", description = "Batch sizes (default: ${DEFAULT-VALUE}).")
  int[] batches;

  @Option(names = "--threads", paramLabel = "N", description = "CPU threads (default: all processors).")
  Integer threads;

  @Option(names = "--repeats", paramLabel = "N", defaultValue = "5", description = "Timed runs per measurement, at least (default: ${DEFAULT-VALUE}).")
  int repeats;

  @Option(names = "--min-seconds", paramLabel = "S", defaultValue = "3",
      description = "Keep timing until this many seconds have passed too, up to 50 runs (default: ${DEFAULT-VALUE}, as the peer harness).")
  double minSeconds;

  @Option(names = "--warmup", paramLabel = "N", defaultValue = "2", description = "Untimed runs first, at least (default: ${DEFAULT-VALUE}).")
  int warmup;

  @Option(names = "--warmup-seconds", paramLabel = "S", defaultValue = "2",
      description = "Keep warming up until this many seconds have passed too: the JIT compiles the kernels meanwhile (default: ${DEFAULT-VALUE}).")
  double warmupSeconds;

  @Option(names = "--vocab", paramLabel = "FILE", description = "Vocabulary for the prompts (default: $JCLIP_VOCAB, the cache, the reference folder's copy).")
  Path vocab;

  @Option(names = "--json", description = "Also print one JSON object per batch size (the last line when one batch size is given).")
  boolean json;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut(), err = spec.commandLine().getErr();
    if (model == null && random == null) {
      err.println("jclip bench: give --model MODEL or --random NAME, or a subcommand (tokenizer, callers)");
      spec.commandLine().usage(err);
      err.flush();
      return 2;
    }
    if (model != null && random != null) {
      err.println("jclip bench: give --model or --random, not both");
      return 2;
    }
    if (random != null) {
      try {
        RandomWeights.config(random); // an unknown name is a usage error, before anything is made
      } catch (IllegalArgumentException e) {
        err.println("jclip bench: " + e.getMessage());
        return 2;
      }
    }
    // !(x >= 0 && x < 1e6) refuses NaN and infinity too
    if (repeats < 1 || warmup < 0 || !(minSeconds >= 0 && minSeconds < 1e6) || !(warmupSeconds >= 0 && warmupSeconds < 1e6) || batches.length == 0
        || Arrays.stream(batches).anyMatch(b -> b < 1)) {
      err.println("jclip bench: --repeats and batch sizes must be at least 1, --warmup at least 0, --min-seconds and --warmup-seconds from 0 to 1e6");
      return 2;
    }
    if (threads != null && (threads < 1 || threads > dev.jclip.api.Clip.Options.MAX_THREADS)) {
      err.println("jclip bench: --threads must be from 1 to " + dev.jclip.api.Clip.Options.MAX_THREADS + ", got " + threads);
      return 2;
    }
    int t = threads != null ? threads : Runtime.getRuntime().availableProcessors();
    Checkpoint ck = null;
    try {
      Weights w = Weights.of(model, random);
      ck = w.checkpoint();
      ClipConfig cfg = w.config();
      Map<String, Tensor> weights = w.tensors();
      ClipTokenizer tok = ClipTokenizer.load(vocabulary());
      List<String> prompts = prompts();
      Clip.Options options = Clip.Options.defaults().withDevice(device).withPrecision(precision).withThreads(t).withBatchSize(Integer.MAX_VALUE);
      try (Clip clip = Clip.create(cfg, weights, tok, options)) {
        ClipGraphs graphs = new ClipGraphs(cfg, weights);
        out.printf("model: %s%n", random != null ? "random " + random + " (" + cfg.summary() + ")" : model + " (" + cfg.summary() + ")");
        out.printf("machine: %d processors, %s %s, Java %s; %s; %d threads, %s%n", Runtime.getRuntime().availableProcessors(),
            System.getProperty("os.name"), System.getProperty("os.arch"), Runtime.version(), cpuName(), t, precision);
        out.flush();
        double peak = Double.NaN;
        String library = "no CPU GEMM in " + precision;
        if (clip.device().startsWith("cpu")) {
          try (dev.jclip.backend.cpu.CpuBackend cpu = new dev.jclip.backend.cpu.CpuBackend(t, true, dev.jclip.backend.Precision.parse(precision))) {
            peak = CpuGemmBench.peakGflops(cpu, null);
            library = cpu.gemmLibrary();
          } catch (IllegalArgumentException e) {
            // a precision this CPU does not offer: no peak to share
          }
          out.printf("GEMM peak (%s as LINEAR runs it, median of the batch-32 LINEAR shapes): %.1f GFLOP/s%n", library, peak);
        } else {
          // On a GPU the CPU's GEMM peak says nothing (gpu-info --gemm-bench measures cuBLAS's),
          // and the GPU bundle does not carry the CPU GEMM libraries.
          out.printf("device: %s (GEMM peak: jclip gpu-info --gemm-bench)%n", clip.device());
        }
        out.printf("%6s %12s %9s %7s %12s %9s %7s %12s %10s %8s%n", "batch", "images/s", "GFLOP/s", "peak", "text77/s", "GFLOP/s", "peak",
            "prompts/s", "tokens", "spread");
        out.flush();
        SplittableRandom rnd = new SplittableRandom(7);
        for (int b : batches) {
          float[] pixels = new float[b * 3 * cfg.imageResolution() * cfg.imageResolution()];
          for (int i = 0; i < pixels.length; i++) pixels[i] = (float) rnd.nextGaussian();
          Clip.Pixels px = new Clip.Pixels(b, cfg.imageResolution(), pixels);
          double[] img = time(() -> clip.encodeImage(px));
          double imgFlop = flops(graphs.image(b));

          int ctx = cfg.contextLength();
          int[] ids = new int[b * ctx];
          for (int i = 0; i < b; i++) {
            for (int k = 0; k < ctx; k++) ids[i * ctx + k] = k == 0 ? tok.startOfText() : k == ctx - 1 ? tok.endOfText() : 1 + rnd.nextInt(40000);
          }
          Clip.Tokens full = new Clip.Tokens(b, ctx, ids);
          double[] txt = time(() -> clip.encodeText(full));
          double txtFlop = flops(graphs.text(b, ctx));

          // prompts: consecutive batches of the ImageNet template x class set, each cut at its longest prompt
          List<Clip.Tokens> batchesOfPrompts = new ArrayList<>();
          long promptTokens = 0;
          for (int start = 0; start + b <= prompts.size() && batchesOfPrompts.size() < 8; start += prompts.size() / 8) {
            Clip.Tokens tk = clip.tokenize(prompts.subList(start, start + b), true);
            batchesOfPrompts.add(tk);
            for (int i = 0; i < b; i++) {
              promptTokens += ClipTokenizer.endOfTextPosition(tk.ids(), i * ctx, ctx) + 1;
            }
          }
          int[] next = {0};
          double[] pr = time(() -> clip.encodeText(batchesOfPrompts.get(next[0]++ % batchesOfPrompts.size())));
          double imgS = b / median(img), txtS = b / median(txt), prS = b / median(pr);
          double imgG = imgFlop / median(img) / 1e9, txtG = txtFlop / median(txt) / 1e9;
          double spread = Math.max(spread(img), Math.max(spread(txt), spread(pr)));
          out.printf("%6d %12.2f %9.1f %6.0f%% %12.2f %9.1f %6.0f%% %12.1f %10.1f %7.0f%%%n", b, imgS, imgG, 100 * imgG / peak, txtS, txtG,
              100 * txtG / peak, prS, (double) promptTokens / (batchesOfPrompts.size() * b), 100 * spread);
          if (json) {
            ObjectNode o = new ObjectMapper().createObjectNode();
            o.put("model", random != null ? "random " + random : model).put("device", device).put("precision", precision).put("threads", t).put("batch", b);
            o.put("image_per_s", imgS).put("image_gflops", imgG).put("image_gflop_per_item", imgFlop / b / 1e9);
            o.put("text77_per_s", txtS).put("text77_gflops", txtG).put("text77_gflop_per_item", txtFlop / b / 1e9);
            o.put("text_prompt_per_s", prS).put("prompt_tokens_mean", (double) promptTokens / (batchesOfPrompts.size() * b));
            o.put("gemm_peak_gflops", peak).put("image_peak_share", imgG / peak).put("text77_peak_share", txtG / peak);
            o.put("repeats", repeats).put("min_seconds", minSeconds).put("warmup", warmup).put("warmup_seconds", warmupSeconds)
                .put("min_runs", Math.min(img.length, Math.min(txt.length, pr.length)))
                .put("spread", spread);
            out.println(new ObjectMapper().writeValueAsString(o));
          }
          out.flush();
        }
        if (!json) {
          out.printf("median of at least %d runs and %.0f s (at most %d) after at least %d warm-up runs and %.0f s; spread = (slowest - fastest) / median;%n",
              repeats, minSeconds, MAX_REPEATS, warmup, warmupSeconds);
          out.print("GFLOP/s counts 2·M·N·K per GEMM and ");
          out.println("4·N²·D per attention (causal in full), as the graphs run them (the last block after attention for the pooled rows only);");
          out.println("prompts = ImageNet templates x classes, each batch cut after its longest prompt.");
        }
      }
      return 0;
    } catch (IOException | IllegalArgumentException | IllegalStateException e) {
      err.println("jclip bench: " + e.getMessage());
      return 1;
    } finally {
      if (ck != null) ck.close();
    }
  }

  /** A benchmark's model: random weights at an OpenAI model's geometry, or a checkpoint (open: the caller closes it). */
  record Weights(ClipConfig config, Map<String, Tensor> tensors, Checkpoint checkpoint) {
    /** {@code --random NAME} when given, else {@code --model MODEL}. */
    static Weights of(String model, String random) throws IOException {
      if (random != null) {
        ClipConfig cfg = RandomWeights.config(random);
        return new Weights(cfg, RandomWeights.generate(cfg, 1), null);
      }
      Checkpoint ck = Checkpoint.open(Downloader.defaults(System.err).resolve(model));
      try {
        return new Weights(ClipConfig.infer(ck), ck.tensors(), ck);
      } catch (IOException | RuntimeException e) {
        ck.close();
        throw e;
      }
    }
  }

  private Path vocabulary() throws IOException {
    return vocab != null ? vocab : defaultVocabulary();
  }

  /** $JCLIP_VOCAB or the cache, else the reference folder's copy. */
  static Path defaultVocabulary() throws IOException {
    try {
      return ClipTokenizer.defaultVocabulary();
    } catch (IOException e) {
      Path v = referenceDir().resolve(ClipTokenizer.VOCAB_FILE_NAME);
      if (!Files.exists(v)) throw e;
      return v;
    }
  }

  private static List<String> prompts() throws IOException {
    Path z = referenceDir().resolve("zeroshot");
    ObjectMapper m = new ObjectMapper();
    List<String> names, forms;
    try {
      names = List.of(m.readValue(z.resolve("imagenet_classes.json").toFile(), String[].class));
      forms = List.of(m.readValue(z.resolve("imagenet_templates.json").toFile(), String[].class));
    } catch (IOException e) {
      throw new IOException("the prompt set needs " + z + "/imagenet_{classes,templates}.json (set JCLIP_REFERENCE): " + e.getMessage(), e);
    }
    List<String> p = new ArrayList<>(names.size() * forms.size());
    for (String c : names) for (String t : forms) p.add(t.replace("{}", c));
    return p;
  }

  private static Path referenceDir() {
    String p = System.getenv("JCLIP_REFERENCE");
    return Path.of(p != null && !p.isBlank() ? p : "../shared/clip-reference").toAbsolutePath().normalize();
  }

  /** Most timed runs per measurement (as the peer harness's max_reps). */
  private static final int MAX_REPEATS = 50;

  /**
   * Warm-up (at least {@code warmup} runs and {@code warmupSeconds}), then at least {@code repeats}
   * timed runs and {@code minSeconds}, at most {@link #MAX_REPEATS}: the peers' protocol
   * (scripts/peers/common.py), with a timed warm-up because HotSpot compiles the Java kernels
   * during the first seconds (a batch-1 forward of 50 ms would otherwise be timed half-compiled).
   * Returns the sorted times in seconds.
   */
  private double[] time(Runnable r) {
    long warmEnd = System.nanoTime() + (long) (warmupSeconds * 1e9);
    for (int i = 0; i < warmup || System.nanoTime() < warmEnd; i++) r.run();
    double[] s = new double[MAX_REPEATS];
    int n = 0;
    long end = System.nanoTime() + (long) (minSeconds * 1e9);
    while (n < Math.max(repeats, 1) || (n < MAX_REPEATS && System.nanoTime() < end)) {
      long t0 = System.nanoTime();
      r.run();
      s[n++] = (System.nanoTime() - t0) / 1e9;
      if (n == s.length) s = Arrays.copyOf(s, 2 * n);
    }
    s = Arrays.copyOf(s, n);
    Arrays.sort(s);
    return s;
  }

  private static double median(double[] sorted) {
    return sorted[sorted.length / 2];
  }

  private static double spread(double[] sorted) {
    return (sorted[sorted.length - 1] - sorted[0]) / median(sorted);
  }

  /** Floating-point operations of a graph: 2·M·N·K per GEMM-shaped node, 4·B·N²·D per attention. */
  static double flops(Graph g) {
    double f = 0;
    for (Node n : g.nodes()) {
      TensorSpec in = n.inputs().isEmpty() ? null : n.input(0).spec(), out = n.output().spec();
      switch (n.op()) {
        case LINEAR, LINEAR_RESIDUAL, MATMUL -> f += 2.0 * in.rows() * in.dim(-1) * out.dim(-1);
        case PATCH_EMBED -> f += 2.0 * out.elements() * in.dim(1) * n.intAttr("patch") * n.intAttr("patch");
        case CONV2D -> f += 2.0 * out.elements() * in.dim(1) * n.intAttr("kernel") * n.intAttr("kernel");
        case ATTENTION -> f += 4.0 * in.dim(0) * in.dim(1) * (double) in.dim(1) * out.dim(2);
        default -> {}
      }
    }
    return f;
  }

  private static String cpuName() {
    try {
      for (String l : Files.readAllLines(Path.of("/proc/cpuinfo"))) if (l.startsWith("model name")) return l.substring(l.indexOf(':') + 1).trim();
    } catch (IOException | RuntimeException e) {
      // not Linux: the name is only informative
    }
    return "unknown CPU";
  }
}
