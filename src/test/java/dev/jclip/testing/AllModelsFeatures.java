package dev.jclip.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jclip.backend.cpu.CpuBackend;
import dev.jclip.graph.Executor;
import dev.jclip.graph.Graph;
import dev.jclip.model.ClipConfig;
import dev.jclip.model.ClipGraphs;
import dev.jclip.model.RandomWeights;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * The nine OpenAI models at full geometry, each with random weights and inputs made from one seed
 * ({@link RandomWeights}: the same values on every machine), and their features on the CPU
 * backend in fp32: what {@code CudaAllModelsTest} holds the GPU to. The GPU bundle carries no CPU
 * GEMM library, so {@code scripts/gpu-bundle.sh} runs {@link #main} here, with a fresh seed, and
 * ships the file; the GPU machine makes the weights and inputs again from its seed.
 *
 * <pre>{@code
 * java -cp target/test-classes:target/classes:<test classpath> dev.jclip.testing.AllModelsFeatures out.json [seed]
 * }</pre>
 */
public final class AllModelsFeatures {
  private AllModelsFeatures() {}

  /** The texts a model runs: two, each {@code contextLength} ids. */
  public static final int TEXTS = 2;

  /** One model's graphs and inputs for {@code seed}. */
  public record Model(String name, ClipConfig config, ClipGraphs graphs, float[] pixels, int[] tokens) {
    public Graph image() {
      return graphs.image(1);
    }

    public Graph text() {
      return graphs.text(TEXTS, config.contextLength());
    }

    /** {image features, text features} on {@code backend}. */
    public float[][] features(dev.jclip.graph.Backend backend) {
      return new float[][] {run("image_features", image(), Map.of("pixels", pixels), backend),
          run("text_features", text(), Map.of("tokens", tokens), backend)};
    }
  }

  /** Output {@code output} of one run of {@code graph} on {@code backend} (an executor made and closed for it). */
  public static float[] run(String output, Graph graph, Map<String, ?> in, dev.jclip.graph.Backend backend) {
    try (Executor e = new Executor(graph, backend, List.of())) {
      return e.run(in).get(output);
    }
  }

  /**
   * Model {@code name}'s random weights and inputs for {@code seed}: one image of N(0, 1) pixels at
   * its resolution; two texts, one of all {@code contextLength} tokens (end of text last) and one of
   * 4 to 15.
   */
  public static Model model(String name, long seed) {
    ClipConfig cfg = RandomWeights.config(name);
    SplittableRandom r = new SplittableRandom(seed);
    ClipGraphs graphs = new ClipGraphs(cfg, RandomWeights.generate(cfg, r.nextLong()));
    int res = cfg.imageResolution(), len = cfg.contextLength();
    float[] pixels = RandomWeights.normal(r.nextLong(), 3 * res * res, 1);
    int[] ids = new int[TEXTS * len];
    for (int t = 0; t < TEXTS; t++) {
      int eot = t == 0 ? len - 1 : 3 + r.nextInt(12);
      ids[t * len] = 49406;
      for (int i = 1; i < eot; i++) ids[t * len + i] = r.nextInt(49406);
      ids[t * len + eot] = 49407;
    }
    return new Model(name, cfg, graphs, pixels, ids);
  }

  /** The CPU features of {@code names} for {@code seed}: name to {image, text}. A backend a model (it keeps its packed weights). */
  public static Map<String, float[][]> compute(List<String> names, long seed) {
    Map<String, float[][]> out = new LinkedHashMap<>();
    for (String name : names) {
      long t0 = System.nanoTime();
      try (CpuBackend cpu = new CpuBackend()) {
        out.put(name, model(name, seed).features(cpu));
        System.err.printf("all-models: %s on the CPU (%s) in %.1f s%n", name, cpu.gemmLibrary(), (System.nanoTime() - t0) / 1e9);
      }
    }
    return out;
  }

  public static void write(Path file, long seed, Map<String, float[][]> features) throws IOException {
    ObjectMapper json = new ObjectMapper();
    ObjectNode root = json.createObjectNode().put("seed", seed).put("backend", "cpu fp32");
    ObjectNode models = root.putObject("models");
    for (var e : features.entrySet()) {
      ObjectNode m = models.putObject(e.getKey());
      String[] names = {"image_features", "text_features"};
      for (int i = 0; i < 2; i++) {
        ArrayNode a = m.putArray(names[i]);
        for (float v : e.getValue()[i]) a.add(v);
      }
    }
    Files.writeString(file, json.writerWithDefaultPrettyPrinter().writeValueAsString(root));
  }

  /** The seed and features {@link #write} wrote. */
  public record Stored(long seed, Map<String, float[][]> features) {}

  public static Stored read(Path file) throws IOException {
    JsonNode root = new ObjectMapper().readTree(file.toFile());
    if (!root.has("seed") || !root.has("models")) throw new IOException(file + ": no seed or models (not written by AllModelsFeatures)");
    Map<String, float[][]> out = new LinkedHashMap<>();
    for (var it = root.get("models").fields(); it.hasNext();) {
      var e = it.next();
      float[][] f = new float[2][];
      String[] names = {"image_features", "text_features"};
      for (int i = 0; i < 2; i++) {
        JsonNode a = e.getValue().get(names[i]);
        if (a == null || !a.isArray()) throw new IOException(file + ": " + e.getKey() + " has no " + names[i]);
        f[i] = new float[a.size()];
        for (int j = 0; j < f[i].length; j++) f[i][j] = (float) a.get(j).asDouble();
      }
      out.put(e.getKey(), f);
    }
    return new Stored(root.get("seed").asLong(), out);
  }

  public static void main(String[] args) throws IOException {
    if (args.length < 1 || args.length > 2) {
      System.err.println("usage: AllModelsFeatures OUT.json [SEED]");
      System.exit(2);
    }
    long seed = args.length > 1 ? Long.parseLong(args[1]) : new SecureRandom().nextLong();
    long t0 = System.nanoTime();
    Map<String, float[][]> f = compute(RandomWeights.NAMES, seed);
    write(Path.of(args[0]), seed, f);
    System.err.printf("all-models: seed %d, %d models' features in %s (%.0f s)%n", seed, f.size(), args[0], (System.nanoTime() - t0) / 1e9);
  }
}
