package dev.jclip.backend.cuda;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jclip.backend.Precision;
import dev.jclip.graph.Backend;
import dev.jclip.graph.Executor;
import dev.jclip.graph.Graph;
import dev.jclip.model.ClipConfig;
import dev.jclip.model.ClipGraphs;
import dev.jclip.model.RandomWeights;
import dev.jclip.tokenizer.ClipTokenizer;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The whole model on the GPU, measured the way the PyTorch peer (scripts/gpu-peer.py) is: a random
 * ViT-B/32 at batch 1, 32, 256 and 1024; images/s, 77-token texts/s, and ImageNet-template
 * prompts/s (the first {@code batch} of classes x templates, in that order, as the peer takes
 * them; jclip cuts each batch after its last end-of-text token, the peer pads to the longest
 * prompt). Each precision replaying a CUDA graph, and at batch 1 and 32 also with the host launching every node. Three
 * ways per row, after 3 warm-ups (per call: the median of 5; resident, the figure set beside the
 * peer: the median of at least 5 runs and half a second, as the peer times its own, {@link
 * #medianLikeThePeer}; pipelined: median of 3 streams of 5 batches, steady state):
 *
 * <ul>
 *   <li>per call ({@code image_per_s}, ...): {@code Executor.run}, copying the inputs in and the
 *       features out, one call after the other;
 *   <li>resident ({@code image_resident_per_s}, ...): inputs written once, then the node loop or
 *       graph replay alone until its work is done: what the peer measures (it draws its pixels on
 *       the device);
 *   <li>pipelined ({@code image_pipelined_per_s}, CUDA-graph rows only): a stream of image
 *       batches through two executors, each batch submitted before the previous one is collected,
 *       so its upload runs while the previous one computes; uploads and reads included;
 *   <li>in parts ({@code image_split2_one_stream_per_s}, {@code ..._two_streams_per_s}, ...; batch
 *       1024, 16 bits): the batch as 2 and as 4 part-batch graphs, resident, on one compute stream
 *       and alternately on two ({@link #split}).
 * </ul>
 *
 * The inputs are drawn as the peer draws its own ({@link #pixels}, {@link #texts77}): N(0, 1)
 * pixels and random 77-token texts, every item of a batch its own (until session 20 they were zero
 * pixels and one text repeated).
 *
 * <p>fp16 and bf16 run first; a failing configuration is recorded as an error row and the others
 * still run. Each precision runs with cuBLASLt (bias and residual in the GEMM epilogue, the fused
 * graph) and with the cuBLAS path (separate bias and ADD passes): the rows' {@code "gemm"} field
 * says which (16 bits: flash attention with cuBLASLt, the default, only: the WMMA attention and
 * the cuBLAS path were timed in docs/gpu.md's runs 1-6); in 16 bits also {@code "cublaslt tuned"}:
 * the kernel choices this run's profile measured faster than the defaults ({@link #merge}, {@link
 * #fastest}), to time them in the configuration they would become the default of.
 */
public final class CudaModelBench {
  private CudaModelBench() {}

  /**
   * @param prompts token ids of the prompts ([P][77], zero padded), or null to skip that column
   * @param json where to write all rows as JSON, or null
   */
  public static boolean run(CudaDevice device, int[][] prompts, Path json, PrintStream log) throws IOException {
    return run(device, prompts, json, log, List.of(Precision.FP16, Precision.BF16, Precision.FP32));
  }

  /** As {@link #run(CudaDevice, int[][], Path, PrintStream)}, with the throughput rows of {@code precisions} only (in that order). */
  public static boolean run(CudaDevice device, int[][] prompts, Path json, PrintStream log, List<Precision> precisions) throws IOException {
    return run(device, prompts, json, log, precisions, List.of());
  }

  /**
   * As above, then the image tower of each of {@code architectures} (release names, {@link
   * RandomWeights#NAMES}) with random weights: fp16, flash attention, cuBLASLt, CUDA graph, at
   * batch 256 (64 from 336 px up), per call and resident (JSON {@code "architectures"}).
   */
  public static boolean run(CudaDevice device, int[][] prompts, Path json, PrintStream log, List<Precision> precisions,
      List<String> architectures) throws IOException {
    ClipGraphs graphs = randomVitB32();
    ObjectNode root = new ObjectMapper().createObjectNode().put("device", device.toString()).put("model", "random ViT-B/32")
        .put("kernel_choices", CudaBackend.kernelChoices()); // what the default rows run (the profile and tuned rows say their own)
    root.putArray("results");
    // The pixels, drawn once a batch size for the profile and every throughput row, and what copying
    // them in costs by itself through pageable memory (DeviceBuffer.upload, the path before the
    // pinned staging): a yardstick for the per-call rows, whose uploads go through the backend's
    // pinned staging.
    Memo memo = new Memo();
    if (prompts != null) promptSet(device, graphs, prompts, 1024, root.putObject("prompt_set"), log);
    save(json, root);
    ArrayNode profileRows = root.putArray("profile");
    Map<String, float[]> defaultsOutput = new java.util.HashMap<>(); // what the defaults compute, per tower: each other configuration must agree
    Map<ProfileConfig, double[]> measured = new java.util.LinkedHashMap<>();
    try {
      measured.putAll(profile(device, graphs, PROFILE_PROVEN, profileRows, defaultsOutput, memo, log));
    } catch (ContextLost e) {
      return lost(root, json, e, log);
    }
    save(json, root);
    // The 16-bit modes first: they are the fast path, and a run cut short by its time limit
    // should have measured them. The JSON is rewritten after every row for the same reason, and
    // a failing configuration is recorded and skipped rather than ending the benchmark.
    throughput(device, graphs, prompts, precisions, null, "cublaslt", BATCHES, root, json, memo, log);
    if (!architectures.isEmpty()) {
      ArrayNode arch = root.putArray("architectures");
      for (String name : architectures) {
        architecture(device, name, arch.addObject(), log);
        save(json, root);
      }
    }
    // Kernels that have not yet run on a GPU (the opt-in ones) come last, after everything else
    // has been measured: one that faults leaves the CUDA context unusable for what follows.
    Set<String> skip = skipGroups();
    List<ProfileConfig> optIn = PROFILE_OPT_IN.stream().filter(c -> !skipped(c, skip)).toList();
    if (optIn.size() < PROFILE_OPT_IN.size()) {
      log.printf("[profile] %d opt-in configurations left out: their kernels' tests failed in this run (%s)%n", PROFILE_OPT_IN.size() - optIn.size(),
          String.join(", ", skip));
    }
    Hang onHang = (hung, seconds) -> giveUp(root, json, "context_lost", hung, seconds, log);
    try {
      // saved after each configuration: a process killed at its time limit keeps what it measured
      measured.putAll(profile(device, graphs, optIn, profileRows, defaultsOutput, memo, log, onHang, () -> save(json, root)));
      tunedRows(device, graphs, prompts, precisions, measured, profileRows, defaultsOutput, root, json, memo, log, onHang);
    } catch (ContextLost e) {
      return lost(root, json, e, log);
    }
    return true;
  }

  /** Records a lost context ({@code context_lost}, and the configuration that lost it) and saves; false. */
  private static boolean lost(ObjectNode root, Path json, ContextLost e, PrintStream log) throws IOException {
    mark(root, "context_lost", e.getMessage(), e.config);
    save(json, root);
    log.println("[model] " + e.getMessage() + ": the tuned rows need a fresh process: gpu-info --model-bench-resume " + (json == null ? "FILE" : json)
        + " (run.sh does it)");
    return false;
  }

  /**
   * The tuned rows of a run that ended before them, in this fresh process: its CUDA context was lost
   * in the profile ({@link ContextLost}, or a configuration that never finished), or it was killed
   * at its time limit. {@code json} is that run's file. Its profile rows give what was measured
   * (each row's {@code config} and {@code total_ms}; the configuration that lost the context, and any
   * other left unfinished, count as failed); the defaults run once more here for the features the
   * merged configurations must agree with; the results go into the same file. False where the
   * tuned rows could not run.
   */
  public static boolean resume(CudaDevice device, int[][] prompts, Path json, PrintStream log, List<Precision> precisions) throws IOException {
    ObjectNode root = (ObjectNode) new ObjectMapper().readTree(json.toFile());
    if (root.has("tuned_config") && !root.has("context_lost")) throw new IllegalArgumentException(json + " has its tuned rows: nothing to resume");
    if (!(root.get("profile") instanceof ArrayNode profileRows)) throw new IllegalArgumentException(json + " has no profile rows to resume from");
    Map<ProfileConfig, double[]> measured = measuredFromRows(profileRows);
    if (root.get("context_lost_config") instanceof ObjectNode culprit) measured.put(ProfileConfig.fromJson(culprit), new double[] {Double.NaN, Double.NaN});
    if (!root.has("context_lost")) root.put("context_lost", "the first process ended before its tuned rows (killed at its time limit?)");
    log.println("[model] resuming " + json + " after \"" + root.get("context_lost").asText() + "\": " + measured.size() + " profile configurations read");
    ClipGraphs graphs = randomVitB32(); // the first process's weights (the same seed)
    Map<String, float[]> defaultsOutput = new java.util.HashMap<>();
    root.put("resumed", true);
    Hang onHang = (hung, seconds) -> giveUp(root, json, "context_lost_again", hung, seconds, log);
    Memo memo = new Memo();
    try {
      profile(device, graphs, List.of(ProfileConfig.DEFAULTS), new ObjectMapper().createArrayNode(), defaultsOutput, memo, log, onHang, null);
      if (defaultsOutput.size() < 2) throw new IllegalStateException("the defaults failed in the resumed process: " + defaultsOutput.keySet() + " only");
      tunedRows(device, graphs, prompts, precisions, measured, profileRows, defaultsOutput, root, json, memo, log, onHang);
    } catch (ContextLost e) {
      mark(root, "context_lost_again", e.getMessage(), null);
      save(json, root);
      log.println("[model] " + e.getMessage() + " again, in the resumed process: no tuned rows");
      return false;
    }
    save(json, root);
    return true;
  }

  /**
   * A watchdog's way out of a hung kernel (see {@link #profile(CudaDevice, ClipGraphs, List, ArrayNode, Map, PrintStream, Hang, AfterEach)}):
   * records why under {@code key} and the configuration ({@link #mark}), saves the JSON, and ends the
   * process (halt: no shutdown hook may wait on the device), so that run.sh resumes in a fresh
   * process. The main thread is held in the device's wait meanwhile; {@link #SAVING} keeps a save
   * of its own from interleaving.
   */
  private static void giveUp(ObjectNode root, Path json, String key, ProfileConfig hung, int seconds, PrintStream log) {
    String why = "profile configuration " + hung.label().trim() + " still running after " + seconds + " s (a kernel that never finishes?)";
    log.println("[profile] " + why + ": ending this process; run.sh resumes the tuned rows in a fresh one");
    log.flush();
    try {
      synchronized (SAVING) {
        mark(root, key, why, hung);
        for (int attempt = 0; ; attempt++) {
          try {
            save(json, root);
            break;
          } catch (java.util.ConcurrentModificationException e) { // the main thread added a row meanwhile: it was not stuck after all
            if (attempt == 2) throw e;
          }
        }
      }
    } catch (IOException | RuntimeException e) {
      log.println("[profile] could not save " + json + ": " + e);
    } finally {
      log.flush();
      Runtime.getRuntime().halt(4);
    }
  }

  /** Records {@code why} under {@code key} and, where given, the configuration under {@code key + "_config"}, held against saves. */
  private static void mark(ObjectNode root, String key, String why, ProfileConfig cfg) {
    synchronized (SAVING) {
      root.put(key, why);
      if (cfg != null) root.set(key + "_config", cfg.toJson());
    }
  }

  /** The random ViT-B/32 every model benchmark measures (seed 1: a resumed process builds the same weights). */
  private static ClipGraphs randomVitB32() {
    ClipConfig cfg = RandomWeights.config("ViT-B/32");
    return new ClipGraphs(cfg, RandomWeights.generate(cfg, 1));
  }

  /** Each configuration of the profile rows with its milliseconds {image, text77} ({@code total_ms}; NaN where a tower failed or is missing). */
  static Map<ProfileConfig, double[]> measuredFromRows(com.fasterxml.jackson.databind.JsonNode rows) {
    Map<ProfileConfig, double[]> measured = new java.util.LinkedHashMap<>();
    for (com.fasterxml.jackson.databind.JsonNode row : rows) {
      if (!row.has("config")) continue; // a row of an older build
      double[] ms = measured.computeIfAbsent(ProfileConfig.fromJson(row.get("config")), c -> new double[] {Double.NaN, Double.NaN});
      int tower = switch (row.path("tower").asText()) {
        case "image" -> IMAGE;
        case "text77" -> TEXT77;
        default -> throw new IllegalArgumentException("profile row with tower " + row.get("tower"));
      };
      if (row.has("total_ms") && !row.has("error")) ms[tower] = row.get("total_ms").doubleValue();
    }
    for (com.fasterxml.jackson.databind.JsonNode row : rows) {
      // the configuration that lost the context: its other tower may have been timed, but it runs no more
      if (row.has("config") && row.has("context_lost")) measured.put(ProfileConfig.fromJson(row.get("config")), new double[] {Double.NaN, Double.NaN});
    }
    return measured;
  }

  /**
   * The merged configurations profiled, then the tuned rows (see below) of {@code measured}, into
   * {@code root} (saved to {@code json} after each row).
   */
  private static void tunedRows(CudaDevice device, ClipGraphs graphs, int[][] prompts, List<Precision> precisions, Map<ProfileConfig, double[]> measured,
      ArrayNode profileRows, Map<String, float[]> defaultsOutput, ObjectNode root, Path json, Memo memo, PrintStream log,
      Hang onHang) throws IOException {
    // The tuned rows run what this run's profile measured fastest on the image tower: the opt-in
    // choices that beat the defaults, merged (profiled too, to see that they work together), or
    // the best single one. The text tower's attention and GEMMs have other shapes (77 causal
    // tokens, width 512), so its fastest configuration is chosen the same way on its own profile
    // column; where it differs, the "tuned-text" rows run it at batch 1024.
    for (int tower : new int[] {IMAGE, TEXT77}) {
      ProfileConfig merged = merge(measured, tower);
      if (merged != null && !measured.containsKey(merged)) {
        measured.putAll(profile(device, graphs, List.of(merged), profileRows, defaultsOutput, memo, log, onHang, null));
      }
    }
    ProfileConfig chosen = fastest(measured, IMAGE), chosenText = fastest(measured, TEXT77);
    root.put("tuned_config", chosen == null ? "none faster than the defaults" : chosen.label().trim());
    root.put("tuned_text_config", chosenText == null ? "none faster than the defaults" : chosenText.label().trim());
    log.println(tunedLine("tuned rows", "image", chosen, measured, IMAGE));
    log.println(tunedLine("tuned-text rows", "77-token text", chosenText, measured, TEXT77));
    save(json, root);
    if (chosen != null) throughput(device, graphs, prompts, precisions, chosen, "cublaslt tuned", BATCHES, root, json, memo, log);
    if (chosenText != null && !chosenText.equals(chosen)) {
      throughput(device, graphs, prompts, precisions, chosenText, "cublaslt tuned-text", new int[] {1024}, root, json, memo, log);
    }
    save(json, root);
  }

  /**
   * The kernels each test group covers ({@link #features}' names); "layernorm" is all that
   * CudaOpsTest checks but the fold's statistics (run.sh names it when that class fails): the
   * LayerNorms and the reversed bias + activation pass.
   */
  private static final Map<String, Set<String>> GROUP_FEATURES = Map.ofEntries(Map.entry("sm90", Set.of("sm90")),
      Map.entry("lnfold", Set.of("lnfold")), Map.entry("tma", Set.of("tma")), Map.entry("ew", Set.of("ew", "ew-res", "ew-ln", "ew-st", "ln-combine")),
      Map.entry("ewres", Set.of("ew-res", "ew-st")), Map.entry("ewln", Set.of("ew-ln")), Map.entry("ewst", Set.of("ew-st", "ln-combine")),
      Map.entry("ew16", Set.of("ew16", "ew16s")), Map.entry("ew16s", Set.of("ew16s")),
      Map.entry("attention", Set.of("ldm", "fit", "staged", "pipe", "pooled", "rev", "lean", "lean2")), Map.entry("ldm", Set.of("ldm")),
      Map.entry("rev", Set.of("rev")), Map.entry("lean", Set.of("lean")), Map.entry("lean2", Set.of("lean2")),
      Map.entry("staged", Set.of("staged")), Map.entry("pipe", Set.of("pipe")), Map.entry("pooled", Set.of("pooled")),
      Map.entry("fit", Set.of("fit")), Map.entry("layernorm", Set.of("ln-shared", "ln-stream", "ln-deep", "lnfold", "act-rev")),
      Map.entry("linear", Set.of("tune", "chunk", "search")));

  /** The groups of opt-in kernels a run may leave out of the profile ({@code -Djclip.bench.skip}: their tests failed in that run). */
  static final Set<String> SKIP_GROUPS = GROUP_FEATURES.keySet();

  /** The groups {@code -Djclip.bench.skip} names ({@link #skipGroups(String)}). */
  public static Set<String> skipGroups() {
    return skipGroups(System.getProperty("jclip.bench.skip", ""));
  }

  /**
   * Whether the groups {@code -Djclip.bench.skip} names leave out gemm_sm90's epilogue-warps kernel
   * ("ew", or all of gemm_sm90: "sm90").
   */
  public static boolean epilogueWarpsSkipped() {
    return !epilogueWarpsSchedules().contains(Sm90Gemm.Schedule.EPILOGUE_WARPS);
  }

  /** Whether they leave out its residual kernel ("ewres", or the whole kernel: {@link #epilogueWarpsSkipped}). */
  public static boolean epilogueWarpsResidualSkipped() {
    return epilogueWarpsSkipped() || skipGroups().contains("ewres");
  }

  /**
   * The epilogue-warps schedules the groups {@code -Djclip.bench.skip} names leave in: {@link
   * Sm90Gemm.Schedule#EPILOGUE_WARPS} unless "ew" or "sm90" (CudaSm90EpilogueWarpsTest), {@link
   * Sm90Gemm.Schedule#EPILOGUE_WARPS_16} unless "ew16" or "sm90" (its own test class,
   * CudaSm90EpilogueWarps16Test), {@link Sm90Gemm.Schedule#EPILOGUE_WARPS_16_SPLIT} unless "ew16s"
   * (CudaSm90EpilogueWarpsSplitTest), "ew16" or "sm90".
   */
  public static List<Sm90Gemm.Schedule> epilogueWarpsSchedules() {
    return epilogueWarpsSchedules(skipGroups());
  }

  /** As {@link #epilogueWarpsSchedules()}, for the groups {@code skip}. */
  static List<Sm90Gemm.Schedule> epilogueWarpsSchedules(Set<String> skip) {
    List<Sm90Gemm.Schedule> out = new java.util.ArrayList<>();
    if (!skip.contains("ew") && !skip.contains("sm90")) out.add(Sm90Gemm.Schedule.EPILOGUE_WARPS);
    if (!skip.contains("ew16") && !skip.contains("sm90")) out.add(Sm90Gemm.Schedule.EPILOGUE_WARPS_16);
    if (!skip.contains("ew16s") && !skip.contains("ew16") && !skip.contains("sm90")) out.add(Sm90Gemm.Schedule.EPILOGUE_WARPS_16_SPLIT);
    return out;
  }

  /** Of a schedule {@link #epilogueWarpsSchedules} leaves in, whether its residual kernel is left out ("ewres" for ew; ew16 goes whole). */
  public static boolean epilogueWarpsResidualSkipped(Sm90Gemm.Schedule schedule) {
    return schedule == Sm90Gemm.Schedule.EPILOGUE_WARPS && epilogueWarpsResidualSkipped();
  }

  /** Of a schedule {@link #epilogueWarpsSchedules} leaves in, whether its LayerNorm fold is left out ("ewln" for ew; ew16 goes whole). */
  public static boolean epilogueWarpsFoldSkipped(Sm90Gemm.Schedule schedule) {
    return schedule == Sm90Gemm.Schedule.EPILOGUE_WARPS && skipGroups().contains("ewln");
  }

  /**
   * Of a schedule {@link #epilogueWarpsSchedules} leaves in, whether its statistics kernel is left
   * out: "ewst" (CudaSm90EpilogueWarpsTest's statistics tests, which also check the combination
   * both schedules use), or for ew its residual kernel.
   */
  public static boolean epilogueWarpsStatsSkipped(Sm90Gemm.Schedule schedule) {
    return skipGroups().contains("ewst") || epilogueWarpsResidualSkipped(schedule);
  }

  /** Whether the groups {@code -Djclip.bench.skip} names leave out gemm_sm90's TMA-store kernels ("tma", or all of gemm_sm90: "sm90"). */
  public static boolean tmaStoreSkipped() {
    Set<String> skip = skipGroups();
    return skip.contains("tma") || skip.contains("sm90");
  }

  /**
   * The groups named in {@code list} (comma-separated; blank: none). A name this build does not
   * know (a test's failure that run.sh names in words this class has not learnt) leaves out every
   * group, with a warning: the defaults and the defaults turned off still run, where refusing the
   * name would end the model benchmark, the GEMM benchmark and the kernel sample alike.
   */
  static Set<String> skipGroups(String list) {
    Set<String> out = new java.util.TreeSet<>();
    for (String g : list.split(",")) {
      String t = g.trim();
      if (t.isEmpty()) continue;
      if (!SKIP_GROUPS.contains(t)) {
        System.err.println("jclip: -Djclip.bench.skip names '" + t + "', none of " + new java.util.TreeSet<>(SKIP_GROUPS)
            + ": every opt-in kernel is left out");
        return new java.util.TreeSet<>(SKIP_GROUPS);
      }
      out.add(t);
    }
    return out;
  }

  /**
   * Whether configuration {@code c} runs a kernel of a group in {@code groups} that the defaults do
   * not run: "sm90" gemm_sm90 and gemm_ln_sm90 (CudaSm90GemmTest), "lnfold" the LayerNorm fold
   * alone (its own tests in CudaSm90GemmTest and CudaOpsTest), "tma" gemm_sm90's TMA-store kernels
   * (CudaSm90StoreTest), "ew" its epilogue-warps kernels (CudaSm90EpilogueWarpsTest), "ewres" that
   * kernel's residual version alone (the class's residual tests), "ewln" its LayerNorm fold alone
   * (the class's layerNorm tests), "ewst" its statistics kernel and their combination (the class's
   * statistics tests), "ew16" the ew16 kernels (CudaSm90EpilogueWarps16Test), "attention" the flash variants and the pooled attention
   * (CudaAttentionTest), of those "ldm" V read with ldmatrix.trans, "staged" Q and the output
   * through shared memory, "pipe" the pipelined kernel, "fit" fitted rows (the one-block kernels'
   * and the pipelined kernel's 80-row items), "pooled" the pooled attention (the
   * families CudaAttentionTest names as failed), "layernorm" the shared-memory and streaming
   * LayerNorms and the statistics pass (CudaOpsTest), "linear" tuned cuBLASLt and c_fc in row
   * chunks (CudaLinearEpilogueTest). A kernel the defaults run too leaves nothing out: the
   * defaults are always profiled (the run's report names the failed class), and so are the
   * configurations that only turn a default off.
   */
  static boolean skipped(ProfileConfig c, Set<String> groups) {
    Set<String> added = new java.util.TreeSet<>(features(c));
    added.removeAll(features(ProfileConfig.DEFAULTS));
    for (String g : groups) {
      for (String f : added) if (GROUP_FEATURES.get(g).contains(f)) return true;
    }
    return false;
  }

  /** The opt-in kernels {@code c} runs, by the names {@link #GROUP_FEATURES} covers. */
  static Set<String> features(ProfileConfig c) {
    Set<String> f = new java.util.TreeSet<>();
    if (c.fused() != null || c.lnFold() != null) f.add("sm90");
    if (c.lnFold() != null) f.add("lnfold");
    if (c.tmaStore()) f.add("tma");
    if (c.fused() == Sm90Gemm.Schedule.EPILOGUE_WARPS) f.add("ew");
    if (c.fused() == Sm90Gemm.Schedule.EPILOGUE_WARPS && c.scope() == CudaBackend.FusedScope.ALL) f.add("ew-res");
    if (c.lnFold() == Sm90Gemm.Schedule.EPILOGUE_WARPS) f.addAll(List.of("ew", "ew-ln"));
    if (c.fused() == Sm90Gemm.Schedule.EPILOGUE_WARPS_16 || c.lnFold() == Sm90Gemm.Schedule.EPILOGUE_WARPS_16) f.add("ew16");
    if (c.fused() == Sm90Gemm.Schedule.EPILOGUE_WARPS_16_SPLIT || c.lnFold() == Sm90Gemm.Schedule.EPILOGUE_WARPS_16_SPLIT) f.add("ew16s");
    if (c.lnFold() != null && c.lnStats()) { // the statistics kernel of the fold's epilogue-warps schedule (ew where it has none), and their combination
      f.add("ln-combine");
      if (!c.lnFold().staged16()) f.addAll(List.of("ew", "ew-st")); // a 16-bit fold's own statistics kernel: its feature above
    }
    if (c.v() == CudaOps.FlashV.LDMATRIX) f.add("ldm");
    if (c.fitRows()) f.add("fit");
    if (c.stage()) f.add("staged");
    if (c.pipe()) f.add("pipe");
    if (c.pooled()) f.add("pooled");
    if (c.ln() == CudaOps.LayerNormKernel.SHARED) f.add("ln-shared");
    if (c.ln() == CudaOps.LayerNormKernel.STREAM) f.add("ln-stream");
    if (c.ln() == CudaOps.LayerNormKernel.DEEP || c.ln() == CudaOps.LayerNormKernel.DEEP_REVERSED) f.add("ln-deep");
    if (c.tune()) f.add("tune");
    if (c.actChunk() > 0) f.add("chunk");
    if (c.search()) f.add("search");
    if (c.rev() && c.pipe()) f.add("rev");
    if (c.actRev() && c.vecGlue()) f.add("act-rev");
    if (c.lean() != CudaOps.FlashLean.OFF && c.pipe() && c.stage()) f.add(c.lean() == CudaOps.FlashLean.EXP2 ? "lean2" : "lean");
    return f;
  }

  /** The profile's columns: milliseconds a pass of the image tower and of the 77-token text tower. */
  static final int IMAGE = 0, TEXT77 = 1;

  /** The throughput rows' batch sizes. */
  static final int[] BATCHES = {1, 32, 256, 1024};

  /** The log line saying which configuration the {@code rows} run, and why. */
  private static String tunedLine(String rows, String tower, ProfileConfig chosen, Map<ProfileConfig, double[]> measured, int column) {
    return "[model] " + rows + ": " + (chosen == null ? "none (no opt-in configuration beat the defaults on the " + tower + " tower in the profile)"
        : chosen.label().trim() + String.format(" (%s tower %.3f ms a pass in the profile, defaults %.3f)", tower, measured.get(chosen)[column],
            measured.get(ProfileConfig.DEFAULTS)[column]));
  }

  /**
   * The throughput rows ({@code "results"}) of {@code precisions} at {@code batches}: with {@code
   * tuned} null, in 16 bits flash attention with cuBLASLt (the backend's defaults; fp32: cuBLASLt
   * and cuBLAS); else, in 16 bits only, the kernel choices of {@code tuned}, each row's gemm
   * {@code tunedTag} and its config the configuration's label.
   */
  static void throughput(CudaDevice device, ClipGraphs graphs, int[][] prompts, List<Precision> precisions, ProfileConfig tunedConfig,
      String tunedTag, int[] batches, ObjectNode root, Path json, Memo memo, PrintStream log) throws IOException {
    boolean tuned = tunedConfig != null, textOnly = tuned && tunedTag.endsWith("-text");
    ArrayNode rows = (ArrayNode) root.get("results");
    for (Precision precision : precisions) {
      // {flash, cuBLASLt}
      List<boolean[]> variants = tuned ? (precision == Precision.FP32 ? List.of() : List.of(new boolean[] {true, true}))
          : precision == Precision.FP32 ? List.of(new boolean[] {false, true}, new boolean[] {false, false})
          : List.of(new boolean[] {true, true});
      for (boolean[] variant : variants) {
        boolean flash = variant[0], useLt = variant[1];
        String gemm = tuned ? tunedTag : useLt ? "cublaslt" : "cublas";
        java.util.function.Supplier<CudaBackend> make = () -> {
          CudaBackend b = new CudaBackend(device, precision, flash, useLt);
          try {
            if (tuned) tunedConfig.apply(b);
          } catch (RuntimeException e) {
            b.close();
            throw e;
          }
          return b;
        };
        try (CudaBackend backend = make.get(); Second second = new Second(make)) {
          for (int batch : batches) {
            float[] pixels = memo.pixels(batch);
            double uploadMs = memo.uploadMs(device, batch, log);
            Staging staging = memo.staging(device, batch, log); // null if it failed (logged)
            int[] ids77 = texts77(batch);
            float[] pixels2 = memo.otherPixels(batch); // the pipelined stream's other batch
            // launches only where launch overhead matters (small batches); CUDA graphs at every size
            for (boolean replay : batch <= 32 ? new boolean[] {false, true} : new boolean[] {true}) {
              ObjectNode row = rows.addObject().put("precision", precision.toString()).put("flash_attention", flash).put("gemm", gemm)
                  .put("cuda_graph", replay).put("batch", batch).put("pixels_upload_ms", uploadMs)
                  .put("unix_time", System.currentTimeMillis() / 1e3); // to set beside gpu-clocks.csv and the peer's rows
              if (tuned) row.put("config", tunedConfig.label().trim());
              if (staging != null) {
                row.put("pixels_host_copy_ms", staging.hostCopyMs()).put("pixels_pinned_dma_ms", staging.dmaMs())
                    .put("pixels_host_fp16_ms", staging.hostHalfMs()).put("pixels_pinned_dma_fp16_ms", staging.dmaHalfMs());
              }
              Rate img = measure(backend, graphs.image(batch), Map.of("pixels", pixels), batch, replay, log);
              Rate txt = measure(backend, graphs.text(batch, 77), Map.of("tokens", ids77), batch, replay, log);
              row.put("image_per_s", img.perCall()).put("text77_per_s", txt.perCall())
                  .put("image_resident_per_s", img.resident()).put("text77_resident_per_s", txt.resident());
              String line = String.format("[model] ViT-B/32 %s%s %-8s %-10s batch %4d: %9.1f images/s (%.3f ms; resident %9.1f), "
                      + "%9.1f texts/s (77 tokens; resident %9.1f)",
                  precision, flash ? "+flash" : "", gemm, replay ? "cuda-graph" : "launches", batch, img.perCall(), 1e3 * batch / img.perCall(),
                  img.resident(), txt.perCall(), txt.resident());
              if (prompts != null) {
                int len = 0;
                int[] ids = new int[batch * 77];
                for (int b = 0; b < batch; b++) {
                  int[] p = prompts[b % prompts.length];
                  System.arraycopy(p, 0, ids, b * 77, 77);
                  len = Math.max(len, eot(p) + 1);
                }
                int[] cut = new int[batch * len];
                for (int b = 0; b < batch; b++) System.arraycopy(ids, b * 77, cut, b * len, len);
                Rate pr = measure(backend, graphs.text(batch, len), Map.of("tokens", cut), batch, replay, log);
                row.put("text_prompt_per_s", pr.perCall()).put("text_prompt_resident_per_s", pr.resident()).put("prompt_len", len);
                line += String.format(", %9.1f prompts/s (cut at %d tokens; resident %9.1f)", pr.perCall(), len, pr.resident());
              }
              if (replay) { // the configuration a pipeline runs in; skipped for launches to keep the benchmark's time
                double piped = pipelined(backend, graphs.image(batch), pixels, pixels2, batch, true);
                row.put("image_pipelined_per_s", piped);
                line += String.format(", pipelined %9.1f images/s", piped);
                if (!tuned && precision != Precision.FP32 && batch > 1) { // the inputs rounded on the host instead (session 22)
                  try {
                    double[] host = pipelinedHostCast(backend, graphs.image(batch), pixels, pixels2, batch);
                    row.put("image_pipelined_host_cast_per_s", host[0]).put("image_host_cast_error", host[1]);
                    line += String.format(" (pixels rounded on the host: %9.1f, features off by %.1e)", host[0], host[1]);
                  } catch (RuntimeException | OutOfMemoryError e) { // the row's other figures stand
                    row.put("host_cast_failed", String.valueOf(e));
                    line += " (pixels rounded on the host: failed: " + e + ")";
                  }
                }
              }
              List<String> unsupported = backend.cublasLtUnsupported(); // before the parts' shapes join them
              boolean timeParts = replay && precision != Precision.FP32 && splitOn();
              if (timeParts && Arrays.stream(SPLIT_BATCHES).anyMatch(h -> h == batch)) {
                save(json, root); // the row's own figures, should the time limit fall during the parts'
                // the batch in parts, on one compute stream (do the parts' smaller activations stay in
                // L2?) and alternately on two (two backends: does the second stream fill what one
                // leaves idle, launch gaps, GEMM tails, memory-bound kernels?)
                for (int parts : SPLIT_PARTS) {
                  String key = "split" + parts;
                  line += "; in " + parts + " parts";
                  try {
                    if (!textOnly) { // the tuned-text rows' configuration was chosen for the texts alone
                      List<float[]> px = new java.util.ArrayList<>();
                      for (int i = 0; i < parts; i++) px.add(part(pixels, i, parts));
                      line += putSplit(row, "image", key, split(backend, second.get(), graphs.image(batch / parts), "pixels", px, img.features(), batch));
                    }
                    List<int[]> tx = new java.util.ArrayList<>();
                    for (int i = 0; i < parts; i++) tx.add(part(ids77, i, parts));
                    line += putSplit(row, "text77", key, split(backend, second.get(), graphs.text(batch / parts, 77), "tokens", tx, txt.features(), batch));
                  } catch (RuntimeException | OutOfMemoryError e) { // the row's other figures stand
                    row.put(key + "_failed", String.valueOf(e));
                    line += " failed: " + e;
                  }
                }
              }
              if (timeParts && !tuned && Arrays.stream(LANES_BATCHES).anyMatch(h -> h == batch)) {
                save(json, root);
                line += "; two batches at once";
                try { // two batches of this size, the second its own inputs (the pipelined stream's other pixels; the next texts)
                  line += putSplit(row, "image", "lanes2", split(backend, second.get(), graphs.image(batch), "pixels", List.of(pixels, pixels2), null,
                      2 * batch));
                  line += putSplit(row, "text77", "lanes2", split(backend, second.get(), graphs.text(batch, 77), "tokens",
                      List.of(ids77, part(texts77(2 * batch), 1, 2)), null, 2 * batch));
                } catch (RuntimeException | OutOfMemoryError e) { // the row's other figures stand
                  row.put("lanes2_failed", String.valueOf(e));
                  line += " failed: " + e;
                }
              }
              if (!unsupported.isEmpty()) {
                // those LINEARs ran on the cuBLAS path: the row does not measure cuBLASLt alone
                row.put("cublaslt_unsupported", String.join("; ", unsupported));
                line += " [cuBLASLt had no algorithm for " + unsupported.size() + " problem(s): " + unsupported + "]";
              }
              log.println(line);
              save(json, root);
            }
          }
        } catch (RuntimeException e) {
          rows.addObject().put("precision", precision.toString()).put("flash_attention", flash).put("gemm", gemm).put("error", String.valueOf(e));
          log.println("[model] ViT-B/32 " + precision + (flash ? "+flash" : "") + " " + gemm + " failed: " + e);
          e.printStackTrace(log);
        }
      }
    }
  }

  /** A second backend for {@link #split}, made on first use (another compute stream, its own weights), closed with the first. */
  private static final class Second implements AutoCloseable {
    private final java.util.function.Supplier<CudaBackend> make;
    private CudaBackend made;

    Second(java.util.function.Supplier<CudaBackend> make) {
      this.make = make;
    }

    CudaBackend get() {
      if (made == null) made = make.get();
      return made;
    }

    @Override
    public void close() {
      if (made != null) made.close();
    }
  }

  /** One architecture's image tower (see {@link #run(CudaDevice, int[][], Path, PrintStream, List, List)}); a failure is recorded, not thrown. */
  static void architecture(CudaDevice device, String name, ObjectNode row, PrintStream log) {
    row.put("model", name);
    try {
      ClipConfig cfg = RandomWeights.config(name);
      int res = cfg.imageResolution(), batch = res >= 336 ? 64 : 256;
      long t0 = System.nanoTime();
      ClipGraphs graphs = new ClipGraphs(cfg, RandomWeights.generate(cfg, 1));
      double genS = (System.nanoTime() - t0) / 1e9;
      float[] pixels = pixels(batch, res, PIXEL_SEED);
      try (CudaBackend backend = new CudaBackend(device, Precision.FP16, true, true)) {
        Rate img = measure(backend, graphs.image(batch), Map.of("pixels", pixels), batch, true, log);
        row.put("precision", "FP16").put("flash_attention", true).put("gemm", "cublaslt").put("cuda_graph", true).put("batch", batch)
            .put("resolution", res).put("image_per_s", img.perCall()).put("image_resident_per_s", img.resident());
        log.printf("[arch] %-15s %3d px fp16+flash cublaslt cuda-graph batch %3d: %9.1f images/s resident (%.3f ms), %9.1f per call "
            + "(weights generated in %.1f s)%n", name, res, batch, img.resident(), 1e3 * batch / img.resident(), img.perCall(), genS);
      }
    } catch (RuntimeException | OutOfMemoryError e) {
      row.put("error", String.valueOf(e));
      log.println("[arch] " + name + " failed: " + e);
    }
  }

  /**
   * What one run of the benchmark draws or measures once and reuses across its profile passes and
   * throughput rows (defaults, tuned, tuned for the texts), per batch size: ViT-B/32's pixels (224
   * px; ~0.6 s to draw at batch 1024 on 16 cores), the pipelined stream's other batch, and the
   * pageable upload time.
   */
  static final class Memo {
    private final Map<Integer, float[]> pixels = new java.util.HashMap<>(), otherPixels = new java.util.HashMap<>();
    private final Map<Integer, Double> uploadMs = new java.util.HashMap<>();
    private final Map<Integer, Staging> staging = new java.util.HashMap<>();

    /**
     * The pinned upload path's two halves for the batch's pixels ({@link Staging}), measured (and
     * logged) once; null when the measurement failed (logged: the rows' other figures stand).
     */
    Staging staging(CudaDevice device, int batch, PrintStream log) {
      if (staging.containsKey(batch)) return staging.get(batch);
      Staging st = null;
      try {
        st = Staging.measure(device, pixels(batch));
        log.printf("[model] pixels at batch %4d through pinned memory: host copy %.3f ms, DMA %.3f ms (%.1f GB/s); as fp16: host rounding "
            + "%.3f ms, DMA %.3f ms%n", batch, st.hostCopyMs(), st.dmaMs(), 4e-6 * pixels(batch).length / st.dmaMs(), st.hostHalfMs(),
            st.dmaHalfMs());
      } catch (RuntimeException | OutOfMemoryError e) {
        log.println("[model] pixels at batch " + batch + " through pinned memory: failed: " + e);
      }
      staging.put(batch, st);
      return st;
    }

    float[] pixels(int batch) {
      return pixels.computeIfAbsent(batch, b -> CudaModelBench.pixels(b, 224, PIXEL_SEED));
    }

    /** The pipelined stream's other batch. */
    float[] otherPixels(int batch) {
      return otherPixels.computeIfAbsent(batch, b -> CudaModelBench.pixels(b, 224, PIXEL_SEED + 1));
    }

    /** Milliseconds to copy the batch's pixels in through pageable memory ({@link #uploadMillis}), measured (and logged) once. */
    double uploadMs(CudaDevice device, int batch, PrintStream log) {
      return uploadMs.computeIfAbsent(batch, b -> {
        double ms = uploadMillis(device, pixels(b));
        log.printf("[model] host-to-device copy of the pixels through pageable memory at batch %4d: %.3f ms (%.1f GB/s)%n", b, ms,
            4e-6 * pixels(b).length / ms);
        return ms;
      });
    }
  }

  /** Writes the results so far to {@code json} (null: nowhere): after every row, so that a run cut short keeps what it measured. */
  private static void save(Path json, ObjectNode root) throws IOException {
    if (json == null) return;
    synchronized (SAVING) {
      // a new file moved over the old: a process killed while saving leaves the last whole file
      Path tmp = json.resolveSibling(json.getFileName() + ".tmp");
      new ObjectMapper().writerWithDefaultPrettyPrinter().writeValue(tmp.toFile(), root);
      java.nio.file.Files.move(tmp, json, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    }
  }

  /** Held while the JSON is written (the main thread's saves, the watchdog's). */
  private static final Object SAVING = new Object();

  /**
   * Where a batch's pixels spend their time on the way in, each half of {@link CudaBackend#write}'s
   * path timed alone (medians of 5, milliseconds): the host copy of the float array into pinned
   * staging (in parallel chunks, {@link HostCopy#put}); the DMA of those bytes to the device (a
   * pinned host-to-device copy, waited for); and the same two with the pixels rounded to fp16 on the
   * host instead ({@link HostCopy#putHalf}: half the bytes over the bus, no fp32 device staging or
   * cast kernel). Set beside the resident and pipelined figures, they say whether the pipelined
   * stream is bound by the upload, and whether rounding on the host would lift it.
   */
  record Staging(double hostCopyMs, double dmaMs, double hostHalfMs, double dmaHalfMs) {
    static Staging measure(CudaDevice device, float[] pixels) {
      long bytes = 4L * pixels.length;
      try (PinnedBuffer pinned = PinnedBuffer.allocate(device, bytes);
          DeviceBuffer target = device.allocate(bytes);
          CudaStream stream = new CudaStream(device)) {
        double copy = median(() -> pinned.put(pixels));
        double dma = median(() -> {
          target.copyFromHostAsync(pinned, bytes, stream);
          stream.synchronize();
        });
        double half = median(() -> pinned.putHalf(pixels, Precision.FP16));
        double dmaHalf = median(() -> {
          target.copyFromHostAsync(pinned, bytes / 2, stream);
          stream.synchronize();
        });
        return new Staging(copy, dma, half, dmaHalf);
      }
    }

    /** Milliseconds: one warm-up run (the JIT, the pages' first touch), then the median of 5. */
    private static double median(Runnable r) {
      r.run();
      return 1e3 * medianOf(5, r);
    }
  }

  /** Median of 5 timed copies of {@code data} into device memory, in milliseconds. */
  private static double uploadMillis(CudaDevice device, float[] data) {
    try (DeviceBuffer d = device.allocate(4L * data.length)) {
      return 1e3 * medianOf(5, () -> {
        d.upload(data);
        device.synchronize();
      });
    }
  }

  /**
   * One profile configuration: flash attention or WMMA, the LayerNorm kernel, the flash kernel's V
   * tile layout, the flash kernel for 4 blocks an SM and in blocks fitted to the sequence, the vector glue
   * kernels, gemm_sm90's schedule for c_fc (null: cuBLAS + bias_act), whether every LINEAR runs
   * on it, the pipelined flash kernel, whether the cuBLASLt GEMMs are tuned ({@link
   * CudaBackend#gemmTune}), the flash kernels with Q and the output staged in shared memory, and
   * the pooled last attention ({@link CudaBackend#pooledAttention}), gemm_sm90's TMA stores, the
   * search around the tuned cuBLASLt algorithms, the pipelined flash kernel's items walked last to
   * first ({@link CudaBackend#flashReversed}), the bias + activation pass walked last to first
   * ({@link CudaBackend#actReversed}) and the staged pipelined flash kernel's tile ({@link
   * CudaBackend#flashLean}).
   */
  record ProfileConfig(boolean flash, CudaOps.LayerNormKernel ln, CudaOps.FlashV v, boolean fourBlocks, boolean fitRows, boolean vecGlue,
      Sm90Gemm.Schedule fused, CudaBackend.FusedScope scope, boolean pipe, boolean tune, boolean stage, boolean pooled, int actChunk,
      Sm90Gemm.Schedule lnFold, boolean tmaStore, boolean search, boolean rev, boolean actRev, CudaOps.FlashLean lean, boolean lnStats) {
    /**
     * The backend's defaults (since run 8): flash, the pipelined flash kernel with Q and the output
     * staged, the pooled last attention, layernorm_stream, vector glue, tuned cuBLASLt for every
     * LINEAR, c_fc whole (V by rows, 4 blocks, 64-row blocks: the one-block kernels' choices,
     * which the pipelined kernel replaces).
     */
    static final ProfileConfig DEFAULTS = new ProfileConfig(true, CudaOps.LayerNormKernel.STREAM, CudaOps.FlashV.ROWS, true, false, true, null,
        CudaBackend.FusedScope.ACTIVATION, true, true, true, true, 0, null, false, false, false, false, CudaOps.FlashLean.OFF, false);

    /** Runs 7 and 8's defaults: the one-block flash kernel (4 blocks an SM, V by rows), layernorm_warps, untuned cuBLASLt, every attention whole. */
    static final ProfileConfig RUN7_DEFAULTS = new ProfileConfig(true, CudaOps.LayerNormKernel.WARPS, CudaOps.FlashV.ROWS, true, false, true, null,
        CudaBackend.FusedScope.ACTIVATION, false, false, false, false, 0, null, false, false, false, false, CudaOps.FlashLean.OFF, false);

    ProfileConfig withLn(CudaOps.LayerNormKernel k) {
      return with(c -> c.ln = k);
    }

    ProfileConfig withFitRows(boolean on) {
      return with(c -> c.fitRows = on);
    }

    ProfileConfig withFused(Sm90Gemm.Schedule schedule, CudaBackend.FusedScope which) {
      return with(c -> {
        c.fused = schedule;
        c.scope = which;
      });
    }

    ProfileConfig withV(CudaOps.FlashV layout) {
      return with(c -> c.v = layout);
    }

    ProfileConfig withPipe(boolean on) {
      return with(c -> c.pipe = on);
    }

    ProfileConfig withTune(boolean on) {
      return with(c -> c.tune = on);
    }

    ProfileConfig withStage(boolean on) {
      return with(c -> c.stage = on);
    }

    ProfileConfig withPooled(boolean on) {
      return with(c -> c.pooled = on);
    }

    ProfileConfig withLnFold(Sm90Gemm.Schedule schedule) {
      return with(c -> c.lnFold = schedule);
    }

    ProfileConfig withActChunk(int megabytes) {
      return with(c -> c.actChunk = megabytes);
    }

    ProfileConfig withTmaStore(boolean on) {
      return with(c -> c.tmaStore = on);
    }

    ProfileConfig withSearch(boolean on) {
      return with(c -> c.search = on);
    }

    ProfileConfig withRev(boolean on) {
      return with(c -> c.rev = on);
    }

    ProfileConfig withActRev(boolean on) {
      return with(c -> c.actRev = on);
    }

    ProfileConfig withLean(CudaOps.FlashLean tile) {
      return with(c -> c.lean = tile);
    }

    ProfileConfig withLnStats(boolean on) {
      return with(c -> c.lnStats = on);
    }

    /** Every component by its name: booleans and ints as such, enums by name, null as null (see {@link #fromJson}). */
    ObjectNode toJson() {
      ObjectNode o = com.fasterxml.jackson.databind.node.JsonNodeFactory.instance.objectNode();
      for (java.lang.reflect.RecordComponent rc : ProfileConfig.class.getRecordComponents()) {
        Object v;
        try {
          v = rc.getAccessor().invoke(this);
        } catch (ReflectiveOperationException e) {
          throw new IllegalStateException("reading " + rc.getName(), e);
        }
        switch (v) {
          case null -> o.putNull(rc.getName());
          case Boolean b -> o.put(rc.getName(), b);
          case Integer i -> o.put(rc.getName(), i);
          case Enum<?> e -> o.put(rc.getName(), e.name());
          default -> throw new IllegalStateException(rc.getName() + ": no JSON form for " + v.getClass());
        }
      }
      return o;
    }

    /**
     * The configuration {@link #toJson} wrote. A component the JSON lacks is refused, as is a name or
     * value this build does not know: a resumed benchmark must run what the first process measured.
     */
    static ProfileConfig fromJson(com.fasterxml.jackson.databind.JsonNode o) {
      java.lang.reflect.RecordComponent[] rcs = ProfileConfig.class.getRecordComponents();
      if (!o.isObject()) throw new IllegalArgumentException("profile configuration is not an object: " + o);
      Set<String> names = Arrays.stream(rcs).map(java.lang.reflect.RecordComponent::getName).collect(java.util.stream.Collectors.toSet());
      for (java.util.Iterator<String> it = o.fieldNames(); it.hasNext(); ) {
        String f = it.next();
        if (!names.contains(f)) throw new IllegalArgumentException("profile configuration: no component '" + f + "' in this build: " + o);
      }
      Object[] args = new Object[rcs.length];
      Class<?>[] types = new Class<?>[rcs.length];
      for (int i = 0; i < rcs.length; i++) {
        String name = rcs[i].getName();
        Class<?> t = types[i] = rcs[i].getType();
        com.fasterxml.jackson.databind.JsonNode v = o.get(name);
        if (v == null) throw new IllegalArgumentException("profile configuration without '" + name + "': " + o);
        if (v.isNull()) {
          if (t.isPrimitive()) throw new IllegalArgumentException("profile configuration: '" + name + "' is null: " + o);
          args[i] = null;
        } else if (t == boolean.class && v.isBoolean()) {
          args[i] = v.booleanValue();
        } else if (t == int.class && v.isInt()) {
          args[i] = v.intValue();
        } else if (t.isEnum() && v.isTextual()) {
          args[i] = enumValue(t, v.textValue(), name);
        } else {
          throw new IllegalArgumentException("profile configuration: '" + name + "' is " + v + ", not a " + t.getSimpleName());
        }
      }
      try {
        return ProfileConfig.class.getDeclaredConstructor(types).newInstance(args);
      } catch (ReflectiveOperationException e) {
        throw new IllegalStateException("making a profile configuration", e);
      }
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private static Object enumValue(Class<?> type, String value, String component) {
      try {
        return Enum.valueOf((Class) type, value);
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException("profile configuration: '" + component + "' has no value " + value, e);
      }
    }

    /** This configuration with {@code change} made to a copy of its components. */
    ProfileConfig with(java.util.function.Consumer<Components> change) {
      Components c = new Components(this);
      change.accept(c);
      return c.build();
    }

    /** A configuration's components, to change: the one place besides the record that lists them all. */
    static final class Components {
      boolean flash, fourBlocks, fitRows, vecGlue, pipe, tune, stage, pooled, tmaStore, search, rev, actRev, lnStats;
      CudaOps.LayerNormKernel ln;
      CudaOps.FlashV v;
      Sm90Gemm.Schedule fused, lnFold;
      CudaBackend.FusedScope scope;
      int actChunk;
      CudaOps.FlashLean lean;

      Components(ProfileConfig p) {
        flash = p.flash;
        ln = p.ln;
        v = p.v;
        fourBlocks = p.fourBlocks;
        fitRows = p.fitRows;
        vecGlue = p.vecGlue;
        fused = p.fused;
        scope = p.scope;
        pipe = p.pipe;
        tune = p.tune;
        stage = p.stage;
        pooled = p.pooled;
        actChunk = p.actChunk;
        lnFold = p.lnFold;
        tmaStore = p.tmaStore;
        search = p.search;
        rev = p.rev;
        actRev = p.actRev;
        lean = p.lean;
        lnStats = p.lnStats;
      }

      ProfileConfig build() {
        return new ProfileConfig(flash, ln, v, fourBlocks, fitRows, vecGlue, fused, scope, pipe, tune, stage, pooled, actChunk, lnFold, tmaStore,
            search, rev, actRev, lean, lnStats);
      }
    }

    /** Sets {@code backend}'s kernel choices to this configuration's (flash and cuBLASLt are the backend's own). */
    void apply(CudaBackend backend) {
      backend.layerNormKernel(ln);
      backend.vectorGlue(vecGlue);
      backend.flashV(v);
      backend.flashFourBlocks(fourBlocks);
      backend.flashFitRows(fitRows);
      backend.flashPipelined(pipe);
      backend.flashStaged(stage);
      backend.pooledAttention(pooled);
      backend.fusedLinear(fused != null, fused != null ? fused : Sm90Gemm.Schedule.PINGPONG, scope);
      backend.gemmTune(tune);
      backend.activationChunk(actChunk);
      backend.layerNormFold(lnFold);
      backend.gemmTmaStore(tmaStore);
      backend.gemmSearch(tune && search);
      backend.flashReversed(rev);
      backend.actReversed(actRev);
      backend.flashLean(lean);
      backend.layerNormStatsInEpilogue(lnStats);
    }

    String label() {
      return (flash ? "+flash" : "") + " cuBLASLt LayerNorm-" + ln.name().toLowerCase() + (v == CudaOps.FlashV.ROWS ? "" : " V-" + v.name().toLowerCase())
          + (fourBlocks ? " flash-4-blocks" : " flash-3-blocks") + (fitRows ? " flash-fitted-rows" : "") + (pipe ? " flash-pipelined" : "") + (stage ? " flash-staged" : "") + (pooled ? " pooled-attention" : "") + (vecGlue ? " vector-glue" : " plain-glue")
          + (fused == null ? "" : " gemm_sm90-" + fused.name().toLowerCase() + "-" + scope.name().toLowerCase()) + (tune ? " cuBLASLt-tuned" : "") + (actChunk > 0 ? " c_fc-in-" + actChunk + "MB-chunks" : "")
          + (lnFold == null ? "" : " LayerNorm-folded-" + lnFold.name().toLowerCase()) + (lnFold != null && lnStats ? " LayerNorm-stats-in-epilogue" : "") + (tmaStore ? " gemm_sm90-TMA-store" : "") + (search ? " cuBLASLt-searched" : "")
          + (rev ? " flash-reversed" : "") + (actRev ? " activation-reversed" : "") + switch (lean) {
            case OFF -> "";
            case ON -> " flash-lean";
            case EXP2 -> " flash-lean-exp2";
          };
    }
  }

  /**
   * How far (relative, whole output) a profile configuration's features may be from the defaults'
   * to be timed: 16-bit rounding differences (another summation order, the activation before one
   * rounding) are ~1e-3; a kernel computing something else is off by ~1.
   */
  static final double AGREE = 1e-2;

  /** {@code ‖a − b‖ / ‖b‖}, NaN when either holds a NaN or the lengths differ. */
  static double relativeError(float[] a, float[] b) {
    if (a.length != b.length) return Double.NaN;
    double num = 0, den = 0;
    for (int i = 0; i < a.length; i++) {
      double d = (double) a[i] - b[i];
      num += d * d;
      den += (double) b[i] * b[i];
    }
    return Math.sqrt(num / den);
  }

  /** A configuration must be this much faster than the defaults (image tower, one pass) to count as faster: the profile's noise. */
  static final double FASTER = 0.995;

  /**
   * The defaults with every opt-in choice that the profile measured faster than them on {@code
   * tower} ({@link #IMAGE} or {@link #TEXT77}), each alone (a configuration that differs from the
   * defaults in that one choice): the fastest value of each choice; null when none is faster, or
   * the defaults were not measured. The gemm_sm90 schedule and scope are one choice; so are the
   * attention kernel's (V layout, blocks an SM, fitted rows, pipelining, staging: {@link
   * Choice#group}), whose fastest measured combination is taken whole.
   */
  static ProfileConfig merge(Map<ProfileConfig, double[]> measured, int tower) {
    double[] base = measured.get(ProfileConfig.DEFAULTS);
    if (base == null || Double.isNaN(base[tower])) return null;
    ProfileConfig d = ProfileConfig.DEFAULTS, merged = d;
    double[] best = new double[Choice.values().length];
    Arrays.fill(best, base[tower] * FASTER);
    boolean any = false;
    for (Map.Entry<ProfileConfig, double[]> e : measured.entrySet()) {
      ProfileConfig c = e.getKey();
      double ms = e.getValue()[tower];
      List<Choice> groups = Choice.differing(d, c).stream().map(Choice::group).distinct().toList();
      if (groups.size() != 1 || Double.isNaN(ms)) continue;
      Choice group = groups.get(0);
      if (ms < best[group.ordinal()]) {
        best[group.ordinal()] = ms;
        for (Choice which : Choice.values()) if (which.group() == group) merged = which.take(merged, c);
        any = true;
      }
    }
    return any ? merged : null;
  }

  /**
   * One forward pass of {@code ex} (already run once) with its kernels queued back to back, no
   * events between them: {milliseconds to the end of its work, milliseconds the host took to queue
   * it}, medians of 5. Against the profile's node totals (each node between two events), the first
   * shows what those hide: gaps between kernels, clocks under sustained load. At batch 1024 the
   * device sets the pace, so the second is each configuration's launch cost without a CUDA graph.
   */
  static double[] wholePass(Executor ex) {
    return passes(ex, 5);
  }

  /** {@code count} reruns of {@code ex}: {median milliseconds to the end of the work, median milliseconds the host took to queue it}. */
  private static double[] passes(Executor ex, int count) {
    double[] pass = new double[count], host = new double[count];
    for (int r = 0; r < pass.length; r++) {
      long t0 = System.nanoTime();
      ex.resubmit();
      host[r] = (System.nanoTime() - t0) / 1e6;
      ex.await();
      pass[r] = (System.nanoTime() - t0) / 1e6;
      ex.collect();
    }
    Arrays.sort(pass);
    Arrays.sort(host);
    return new double[] {pass[count / 2], host[count / 2]};
  }

  /**
   * One forward pass of {@code ex} (a batch-1 executor, not replaying a CUDA graph) on {@code in}:
   * {milliseconds to the end of its work, milliseconds the host took to queue it}, medians of 20
   * after 3 warm-up runs (the first plans and tunes its GEMMs). At batch 1 the launches set the
   * pace: what each configuration costs a caller that does not replay CUDA graphs.
   */
  static double[] batchOne(Executor ex, Map<String, ?> in) {
    for (int i = 0; i < 3; i++) ex.run(in);
    return passes(ex, 20);
  }

  /** The configuration with the fastest {@code tower} in {@code measured}, if it beats the defaults (by {@link #FASTER}); else null. */
  static ProfileConfig fastest(Map<ProfileConfig, double[]> measured, int tower) {
    double[] base = measured.get(ProfileConfig.DEFAULTS);
    if (base == null || Double.isNaN(base[tower])) return null;
    ProfileConfig best = null;
    double bestMs = base[tower] * FASTER;
    for (Map.Entry<ProfileConfig, double[]> e : measured.entrySet()) {
      double ms = e.getValue()[tower];
      if (!Double.isNaN(ms) && ms < bestMs) {
        best = e.getKey();
        bestMs = ms;
      }
    }
    return best;
  }

  /** The independent kernel choices of a {@link ProfileConfig}: each reads its value of a configuration and copies it into another. */
  enum Choice {
    FLASH(ProfileConfig::flash, (c, f) -> c.flash = f.flash()),
    LAYERNORM(ProfileConfig::ln, (c, f) -> c.ln = f.ln()),
    FLASH_V(ProfileConfig::v, (c, f) -> c.v = f.v()),
    FOUR_BLOCKS(ProfileConfig::fourBlocks, (c, f) -> c.fourBlocks = f.fourBlocks()),
    FIT_ROWS(ProfileConfig::fitRows, (c, f) -> c.fitRows = f.fitRows()),
    GLUE(ProfileConfig::vecGlue, (c, f) -> c.vecGlue = f.vecGlue()),
    FUSED_LINEAR(c -> c.fused() == null ? null : List.of(c.fused(), c.scope()), (c, f) -> {
      c.fused = f.fused();
      c.scope = f.scope();
    }),
    PIPELINED(ProfileConfig::pipe, (c, f) -> c.pipe = f.pipe()),
    TUNE(ProfileConfig::tune, (c, f) -> c.tune = f.tune()),
    STAGE(ProfileConfig::stage, (c, f) -> c.stage = f.stage()),
    POOLED(ProfileConfig::pooled, (c, f) -> c.pooled = f.pooled()),
    ACT_CHUNK(ProfileConfig::actChunk, (c, f) -> c.actChunk = f.actChunk()),
    LN_FOLD(ProfileConfig::lnFold, (c, f) -> c.lnFold = f.lnFold()),
    GEMM_STORE(ProfileConfig::tmaStore, (c, f) -> c.tmaStore = f.tmaStore()),
    SEARCH(ProfileConfig::search, (c, f) -> c.search = f.search()),
    FLASH_ORDER(ProfileConfig::rev, (c, f) -> c.rev = f.rev()),
    ACT_ORDER(ProfileConfig::actRev, (c, f) -> c.actRev = f.actRev()),
    FLASH_LEAN(ProfileConfig::lean, (c, f) -> c.lean = f.lean()),
    LN_STATS(ProfileConfig::lnStats, (c, f) -> c.lnStats = f.lnStats());

    private final java.util.function.Function<ProfileConfig, Object> value;
    private final java.util.function.BiConsumer<ProfileConfig.Components, ProfileConfig> copy;

    Choice(java.util.function.Function<ProfileConfig, Object> value, java.util.function.BiConsumer<ProfileConfig.Components, ProfileConfig> copy) {
      this.value = value;
      this.copy = copy;
    }

    /**
     * The choice that stands for this one when merging: {@link #FLASH} for the attention kernel's
     * (its V layout, blocks, rows, pipelining, staging, item order and tile pick one kernel between them, and
     * combinations such as staged fitted blocks are kernels of their own), {@link #FUSED_LINEAR}
     * for gemm_sm90's (which LINEARs it runs, the LayerNorms folded into it and where their
     * statistics come from, its output stores: the stores and the statistics mean nothing without
     * one of the others), {@link #TUNE} for cuBLASLt's (the search
     * around the tuned algorithm means nothing untuned), else this one.
     */
    Choice group() {
      return switch (this) {
        case FLASH, FLASH_V, FOUR_BLOCKS, FIT_ROWS, PIPELINED, STAGE, FLASH_ORDER, FLASH_LEAN -> FLASH;
        case FUSED_LINEAR, LN_FOLD, GEMM_STORE, LN_STATS -> FUSED_LINEAR;
        case TUNE, SEARCH -> TUNE;
        default -> this;
      };
    }

    static List<Choice> differing(ProfileConfig a, ProfileConfig b) {
      List<Choice> out = new java.util.ArrayList<>();
      for (Choice c : values()) if (!java.util.Objects.equals(c.value(a), c.value(b))) out.add(c);
      return out;
    }

    Object value(ProfileConfig c) {
      return value.apply(c);
    }

    /** {@code into} with this choice taken from {@code from}. */
    ProfileConfig take(ProfileConfig into, ProfileConfig from) {
      return into.with(c -> copy.accept(c, from));
    }
  }

  /** Today's defaults, and run 7's beside them (docs/gpu.md, run 8: every choice that changed, at once). */
  static final List<ProfileConfig> PROFILE_PROVEN = List.of(ProfileConfig.DEFAULTS, ProfileConfig.RUN7_DEFAULTS);

  /**
   * Then, from today's defaults, one choice at a time. First each default turned back, to show what
   * it is worth (untuned cuBLASLt, the shared-memory LayerNorm, the pooled last attention off, the
   * pipelined kernel unstaged, every attention on the one-block kernels); the kernels written after
   * run 8 that do not touch the GEMMs (session 13's 80-row items for the 77-token texts, session 14's
   * two-row LayerNorms and reversed walks, session 15's lean flash tiles); session 13's search around
   * the tuned cuBLASLt algorithms; gemm_sm90's cooperative c_fc, alone and with the TMA-store
   * epilogue (session 13; tested, not yet timed), the baseline of the epilogue-warps kernels; and
   * last those (sessions 16-18: ew, ew16, ew16s; c_fc alone, every LINEAR, the LayerNorm folds and
   * their statistics from the epilogues).
   *
   * <p>Left out since session 20, to give the first call's peer and diagnosis stages the time (each
   * configuration costs ~2 s): what run 8 timed slower than the defaults of its day with kernels
   * unchanged since, which a tuned row could never pick. That is layernorm_warps (run 7's default),
   * the one-block attention's other variants (V by ldmatrix, fitted blocks, unstaged), c_fc in row
   * chunks, gemm_sm90's ping-pong schedule, every LINEAR on gemm_sm90's one-block kernels, the
   * LayerNorm folds on them, and the TMA store on any of those but the cooperative c_fc.
   */
  static final List<ProfileConfig> PROFILE_OPT_IN = List.of(ProfileConfig.DEFAULTS.withTune(false),
      ProfileConfig.DEFAULTS.withLn(CudaOps.LayerNormKernel.SHARED),
      ProfileConfig.DEFAULTS.withLn(CudaOps.LayerNormKernel.DEEP), ProfileConfig.DEFAULTS.withLn(CudaOps.LayerNormKernel.DEEP_REVERSED),
      ProfileConfig.DEFAULTS.withRev(true), ProfileConfig.DEFAULTS.withActRev(true),
      ProfileConfig.DEFAULTS.withLean(CudaOps.FlashLean.ON), ProfileConfig.DEFAULTS.withLean(CudaOps.FlashLean.EXP2),
      ProfileConfig.DEFAULTS.withLean(CudaOps.FlashLean.ON).withFitRows(true), ProfileConfig.DEFAULTS.withLean(CudaOps.FlashLean.EXP2).withFitRows(true),
      ProfileConfig.DEFAULTS.withPooled(false), ProfileConfig.DEFAULTS.withStage(false), ProfileConfig.DEFAULTS.withFitRows(true),
      ProfileConfig.DEFAULTS.withPipe(false),
      ProfileConfig.DEFAULTS.withSearch(true),
      ProfileConfig.DEFAULTS.withFused(Sm90Gemm.Schedule.COOPERATIVE, CudaBackend.FusedScope.ACTIVATION),
      ProfileConfig.DEFAULTS.withFused(Sm90Gemm.Schedule.COOPERATIVE, CudaBackend.FusedScope.ACTIVATION).withTmaStore(true),
      ProfileConfig.DEFAULTS.withFused(Sm90Gemm.Schedule.EPILOGUE_WARPS, CudaBackend.FusedScope.ACTIVATION),
      ProfileConfig.DEFAULTS.withFused(Sm90Gemm.Schedule.EPILOGUE_WARPS, CudaBackend.FusedScope.LINEAR),
      ProfileConfig.DEFAULTS.withFused(Sm90Gemm.Schedule.EPILOGUE_WARPS, CudaBackend.FusedScope.ALL),
      ProfileConfig.DEFAULTS.withLnFold(Sm90Gemm.Schedule.EPILOGUE_WARPS),
      ProfileConfig.DEFAULTS.withLnFold(Sm90Gemm.Schedule.EPILOGUE_WARPS).withFused(Sm90Gemm.Schedule.EPILOGUE_WARPS, CudaBackend.FusedScope.ALL),
      ProfileConfig.DEFAULTS.withLnFold(Sm90Gemm.Schedule.EPILOGUE_WARPS).withLnStats(true),
      ProfileConfig.DEFAULTS.withLnFold(Sm90Gemm.Schedule.EPILOGUE_WARPS).withLnStats(true).withFused(Sm90Gemm.Schedule.EPILOGUE_WARPS,
          CudaBackend.FusedScope.ALL),
      ProfileConfig.DEFAULTS.withFused(Sm90Gemm.Schedule.EPILOGUE_WARPS_16, CudaBackend.FusedScope.ACTIVATION),
      ProfileConfig.DEFAULTS.withFused(Sm90Gemm.Schedule.EPILOGUE_WARPS_16, CudaBackend.FusedScope.ALL),
      ProfileConfig.DEFAULTS.withLnFold(Sm90Gemm.Schedule.EPILOGUE_WARPS_16).withLnStats(true).withFused(Sm90Gemm.Schedule.EPILOGUE_WARPS_16,
          CudaBackend.FusedScope.ALL),
      // the ew16s kernels (the consumer warpgroups out of step, at the backend's default lag)
      ProfileConfig.DEFAULTS.withFused(Sm90Gemm.Schedule.EPILOGUE_WARPS_16_SPLIT, CudaBackend.FusedScope.ACTIVATION),
      ProfileConfig.DEFAULTS.withFused(Sm90Gemm.Schedule.EPILOGUE_WARPS_16_SPLIT, CudaBackend.FusedScope.ALL),
      ProfileConfig.DEFAULTS.withLnFold(Sm90Gemm.Schedule.EPILOGUE_WARPS_16_SPLIT).withLnStats(true)
          .withFused(Sm90Gemm.Schedule.EPILOGUE_WARPS_16_SPLIT, CudaBackend.FusedScope.ALL));

  /**
   * Where the GPU time of one forward pass goes: the image tower at batch 1024 and the text tower
   * on 77-token texts at batch 1024, fp16 with cuBLASLt, in each of {@code configs}, node by node
   * with a timing event pair around each node ({@link KernelProfile}), after a warm-up run. The
   * totals come out a little above a CUDA-graph replay's (the events and the launches). Returns
   * each configuration's milliseconds a pass (image, text77; NaN where it failed). The defaults'
   * features are kept in {@code defaultsOutput}; any other configuration whose features are more
   * than {@link #AGREE} off them is not timed (an error row, NaN).
   */
  static Map<ProfileConfig, double[]> profile(CudaDevice device, ClipGraphs graphs, List<ProfileConfig> configs, ArrayNode rows,
      Map<String, float[]> defaultsOutput, Memo memo, PrintStream log) {
    return profile(device, graphs, configs, rows, defaultsOutput, memo, log, null, null);
  }

  /** What the profile does after each configuration (saving the JSON). */
  @FunctionalInterface
  interface AfterEach {
    void done() throws IOException;
  }

  /** What to do when a profile configuration is still running after {@link #configSeconds} (null: wait). */
  @FunctionalInterface
  interface Hang {
    void hung(ProfileConfig cfg, int seconds);
  }

  /**
   * {@code -Djclip.bench.configSeconds} (default 60; 0 or less: no watchdog): how long one profile
   * configuration (both towers, its GEMMs tuned on first use) may take before its kernels count as
   * hung. Run 8's 31 configurations took ~70 s together.
   */
  static int configSeconds() {
    return Integer.getInteger("jclip.bench.configSeconds", 60);
  }

  private static final java.util.concurrent.ScheduledExecutorService WATCHDOG = java.util.concurrent.Executors.newSingleThreadScheduledExecutor(r -> {
    Thread t = new Thread(r, "jclip-profile-watchdog");
    t.setDaemon(true);
    return t;
  });

  /**
   * {@link #profile(CudaDevice, ClipGraphs, List, ArrayNode, Map, Memo, PrintStream)}, with {@code onHang}
   * called (on a watchdog thread) for a configuration still running after {@link #configSeconds}
   * (a kernel that never finishes holds the process until it exits, and no call can stop it), and
   * {@code afterEach} after each configuration; either may be null.
   */
  static Map<ProfileConfig, double[]> profile(CudaDevice device, ClipGraphs graphs, List<ProfileConfig> configs, ArrayNode rows,
      Map<String, float[]> defaultsOutput, Memo memo, PrintStream log, Hang onHang, AfterEach afterEach) {
    Map<ProfileConfig, double[]> totals = new java.util.LinkedHashMap<>();
    int batch = 1024;
    float[] pixels = memo.pixels(batch);
    int[] ids = texts77(batch);
    for (ProfileConfig cfg : configs) {
      int seconds = configSeconds();
      java.util.concurrent.ScheduledFuture<?> dog = onHang == null || seconds <= 0 ? null
          : WATCHDOG.schedule(() -> onHang.hung(cfg, seconds), seconds, java.util.concurrent.TimeUnit.SECONDS);
      try {
        profileConfig(device, graphs, cfg, rows, defaultsOutput, log, totals, batch, pixels, ids);
      } finally {
        if (dog != null) dog.cancel(false);
      }
      if (afterEach != null) {
        try {
          afterEach.done();
        } catch (IOException e) {
          log.println("[profile] saving after" + cfg.label() + " failed: " + e);
        }
      }
    }
    return totals;
  }

  /** One configuration of {@link #profile}: both towers, into {@code totals}. */
  private static void profileConfig(CudaDevice device, ClipGraphs graphs, ProfileConfig cfg, ArrayNode rows, Map<String, float[]> defaultsOutput,
      PrintStream log, Map<ProfileConfig, double[]> totals, int batch, float[] pixels, int[] ids) {
    boolean flash = cfg.flash(), fused = cfg.fused() != null;
    double[] total = {Double.NaN, Double.NaN}; // image, text77: ms of one forward pass (NaN: failed)
    totals.put(cfg, total);
    for (String tower : new String[] {"image", "text77"}) {
      ObjectNode row = rows.addObject();
      row.set("config", cfg.toJson()); // what gpu-info --model-bench-resume reads back
      row.put("precision", "FP16").put("flash_attention", flash).put("gemm", "cublaslt")
          .put("layernorm", cfg.ln().name().toLowerCase()).put("vector_glue", cfg.vecGlue()).put("flash_v", cfg.v().name().toLowerCase()).put("flash_four_blocks", cfg.fourBlocks()).put("flash_fit_rows", cfg.fitRows()).put("flash_pipelined", cfg.pipe()).put("gemm_tuned", cfg.tune()).put("flash_staged", cfg.stage()).put("pooled_attention", cfg.pooled()).put("tower", tower)
          .put("batch", batch);
      if (fused) row.put("fused_linear", cfg.fused().name().toLowerCase()).put("fused_linear_scope", cfg.scope().name().toLowerCase());
      if (cfg.actChunk() > 0) row.put("act_chunk_mb", cfg.actChunk());
      if (cfg.lnFold() != null) row.put("ln_fold", cfg.lnFold().name().toLowerCase());
      if (cfg.lnFold() != null && cfg.lnStats()) row.put("ln_stats", "epilogue");
      if (cfg.tmaStore()) row.put("gemm_store", "tma");
      if (cfg.search()) row.put("gemm_searched", true);
      if (cfg.rev()) row.put("flash_reversed", true);
      if (cfg.actRev()) row.put("activation_reversed", true);
      if (cfg.lean() != CudaOps.FlashLean.OFF) row.put("flash_lean", cfg.lean().name().toLowerCase());
      try (CudaBackend backend = new CudaBackend(device, Precision.FP16, flash, true);
          KernelProfile prof = new KernelProfile(device)) {
        if ((fused || cfg.lnFold() != null) && !backend.fusedLinearAvailable()) {
          row.put("error", "gemm_sm90 needs compute capability 9.0");
          continue;
        }
        cfg.apply(backend); // before the executor: it prepares (pools, fuses) its graph once
        try (Executor ex = new Executor(tower.equals("image") ? graphs.image(batch) : graphs.text(batch, 77), backend, List.of(), false)) {
          Map<String, ?> in = tower.equals("image") ? Map.of("pixels", pixels) : Map.of("tokens", ids);
          total[tower.equals("image") ? 0 : 1] = profileTower(cfg, tower, batch, backend, prof, ex, in, row, defaultsOutput, log);
        }
        if (!Double.isNaN(total[tower.equals("image") ? 0 : 1])) {
          // batch 1 launched node by node (no CUDA graph): where the launches, not the device, set the pace
          try (Executor one = new Executor(tower.equals("image") ? graphs.image(1) : graphs.text(1, 77), backend, List.of(), false)) {
            Map<String, ?> in1 = tower.equals("image") ? Map.of("pixels", Arrays.copyOf(pixels, 3 * 224 * 224)) : Map.of("tokens", Arrays.copyOf(ids, 77));
            double[] b1 = batchOne(one, in1);
            row.put("batch1_launched_ms", b1[0]).put("batch1_host_ms", b1[1]);
            log.printf("[profile]   batch 1 launched node by node: %.3f ms a pass, %.3f ms of it queueing the launches%n", b1[0], b1[1]);
          }
        }
      } catch (RuntimeException e) {
        row.put("error", String.valueOf(e));
        log.println("[profile] " + tower + cfg.label() + " failed: " + e);
        String lost = device.contextError();
        if (lost != null) {
          // a fault (an illegal address, a trap) poisons the context: every later call fails
          row.put("context_lost", lost);
          log.println("[profile] the CUDA context is lost (" + lost + "): the configurations after this one are not run here");
          throw new ContextLost(lost, cfg);
        }
      }
    }
  }

  /**
   * The CUDA context stopped working during a profile (a kernel of {@code config} faulted). The
   * rest, the tuned rows among it, can run only in a fresh process: {@link #resume}.
   */
  static final class ContextLost extends RuntimeException {
    private static final long serialVersionUID = 1L;
    /** The configuration whose run lost it. */
    final transient ProfileConfig config;

    ContextLost(String error, ProfileConfig config) {
      super("CUDA context lost: " + error);
      this.config = config;
    }
  }

  /**
   * One tower of one profile configuration: a first run (parameters uploaded, GEMM plans made and
   * tuned), its features kept (the defaults) or checked against the defaults' ({@link #AGREE}),
   * then a run node by node. Returns the milliseconds of that pass, or NaN when the features
   * disagree (recorded in {@code row}, not timed).
   */
  private static double profileTower(ProfileConfig cfg, String tower, int batch, CudaBackend backend, KernelProfile prof, Executor ex,
      Map<String, ?> in, ObjectNode row, Map<String, float[]> defaultsOutput, PrintStream log) {
    float[] features = ex.run(in).values().iterator().next();
    if (cfg.tmaStore()) { // a TMA-store column whose launches all fell back to the register epilogue would time nothing new
      row.put("gemm_tma_store_launches", backend.gemmTmaStoreLaunches());
      if (backend.gemmTmaStoreLaunches() == 0) {
        row.put("error", "no gemm_sm90 launch took a TMA-store kernel");
        log.printf("[profile] %s%s: no gemm_sm90 launch took a TMA-store kernel: not timed%n", tower, cfg.label());
        return Double.NaN;
      }
    }
    if (cfg.equals(ProfileConfig.DEFAULTS)) {
      defaultsOutput.put(tower, features);
    } else if (defaultsOutput.containsKey(tower)) {
      // a kernel that computes something else must not be timed into the tuned rows
      double err = relativeError(features, defaultsOutput.get(tower));
      row.put("relative_error_vs_defaults", err);
      if (!(err <= AGREE)) {
        row.put("error", String.format("features %.3g off the defaults' (more than %.0e)", err, AGREE));
        log.printf("[profile] %s%s: features %.3g off the defaults' (more than %.0e): not timed%n", tower, cfg.label(), err, AGREE);
        return Double.NaN;
      }
    }
    if (cfg.tune()) for (String line : backend.gemmTuning()) log.println("[tune] " + tower + ": " + line);
    backend.profile(prof);
    ex.run(in);
    backend.profile(null);
    ObjectNode ops = row.putObject("ms_by_node");
    double sum = 0;
    for (Map.Entry<String, double[]> e : prof.totals().entrySet()) {
      ops.put(e.getKey(), e.getValue()[0]);
      sum += e.getValue()[0];
    }
    log.printf("[profile] ViT-B/32 FP16%s %s tower, batch %d, one forward pass node by node:%n", cfg.label(), tower, batch);
    for (String line : prof.report(14)) log.println("[profile]   " + line);
    row.put("total_ms", sum);
    double[] pass = wholePass(ex);
    row.put("pass_ms", pass[0]).put("pass_host_ms", pass[1]);
    log.printf("[profile]   whole pass, kernels back to back: %.3f ms (%+.1f%% on the node totals); its launches took the host %.3f ms%n",
        pass[0], 100 * (pass[0] / sum - 1), pass[1]);
    return sum;
  }

  /**
   * The whole prompt set (ImageNet: 1000 classes x 80 templates) through the text tower in fp16
   * (the backend's defaults), in batches of {@code batch}: in the given order, each batch cut after
   * its longest prompt (what the PyTorch peer's padding to the longest does), and batched by length
   * first ({@code Clip.encodeText}'s order). Each order two ways:
   *
   * <ul>
   *   <li>pipelined ({@code <order>_pipelined_per_s}), as {@code Clip.encodeText} runs more than
   *       one batch on a GPU: tokens copied in and features out for every batch, each batch
   *       submitted before the previous one is collected, so that the next batch's upload and
   *       launch and this one's read-back run while the device computes; two executors per shape,
   *       alternating; the median of 3 passes after 2 warm-up passes;
   *   <li>resident ({@code <order>_resident_per_s}), as the peer measures its own prompt set
   *       (gpu-peer.py's {@code prompt_set}): every batch's tokens on the device beforehand (an
   *       executor a batch, each replaying its CUDA graph), the batches queued back to back, the
   *       features read after the timing; timed as the peer times it, 3 warm-up passes, then at
   *       least 3 passes and half a second ({@link #medianLikeThePeer}).
   * </ul>
   *
   * Whether the two ways gave every batch the same features, bit for bit, is recorded ({@code
   * <order>_pipelined_same_features}) and logged: the same kernels on the same shapes should. (Until
   * session 20 the first way was a serial one, {@code <order>_per_s}: {@code Executor.run} a batch,
   * the device waiting while the host read and wrote.)
   */
  static void promptSet(CudaDevice device, ClipGraphs graphs, int[][] prompts, int batch, ObjectNode row, PrintStream log) {
    row.put("prompts", prompts.length).put("batch", batch).put("precision", "FP16");
    try (CudaBackend backend = new CudaBackend(device, Precision.FP16)) {
      promptSet(backend, graphs, prompts, batch, row, log);
    } catch (RuntimeException e) {
      row.put("error", String.valueOf(e));
      log.println("[model] prompt set failed: " + e);
      e.printStackTrace(log);
    }
  }

  /** {@link #promptSet(CudaDevice, ClipGraphs, int[][], int, ObjectNode, PrintStream)} on any backend. */
  static void promptSet(dev.jclip.graph.Backend backend, ClipGraphs graphs, int[][] prompts, int batch, ObjectNode row, PrintStream log) {
    int count = prompts.length;
    int[] eot = new int[count];
    for (int i = 0; i < count; i++) eot[i] = eot(prompts[i]);
    int[] given = java.util.stream.IntStream.range(0, count).toArray();
    int[] byLength = java.util.stream.IntStream.range(0, count).boxed()
        .sorted(java.util.Comparator.comparingInt(i -> eot[i])).mapToInt(Integer::intValue).toArray(); // stable
    for (String order : new String[] {"given_order", "by_length"}) {
      int[] index = order.equals("by_length") ? byLength : given;
      List<int[]> inputs = new java.util.ArrayList<>();
      List<int[]> shapes = new java.util.ArrayList<>();
      long tokens = 0;
      for (int b0 = 0; b0 < count; b0 += batch) {
        int n = Math.min(batch, count - b0), l = 1;
        for (int b = b0; b < b0 + n; b++) l = Math.max(l, eot[index[b]] + 1);
        int[] ids = new int[n * l];
        for (int b = 0; b < n; b++) System.arraycopy(prompts[index[b0 + b]], 0, ids, b * l, l);
        inputs.add(ids);
        shapes.add(new int[] {n, l});
        tokens += (long) n * l;
      }
      Map<String, Executor> executors = new java.util.HashMap<>();
      java.util.function.BiFunction<Integer, Integer, Executor> executor = (i, copy) -> {
        int n = shapes.get(i)[0], l = shapes.get(i)[1];
        return executors.computeIfAbsent(n + "x" + l + "#" + copy, k -> new Executor(graphs.text(n, l), backend, List.of(), true));
      };
      // each batch's features, compared after the timing
      float[][] residentOut = new float[inputs.size()][], pipedOut = new float[inputs.size()][];
      try {
        List<Executor> resident = new java.util.ArrayList<>();
        for (int i = 0; i < inputs.size(); i++) resident.add(executor.apply(i, -1 - i)); // its own: its tokens stay written
        Runnable queueAll = () -> {
          for (Executor ex : resident) ex.resubmit();
          for (Executor ex : resident) ex.await();
        };
        Runnable collectAll = () -> {
          for (int i = 0; i < resident.size(); i++) residentOut[i] = resident.get(i).collect().get("text_features");
        };
        Runnable pipelined = () -> {
          Executor last = null;
          for (int i = 0; i < inputs.size(); i++) {
            Executor ex = executor.apply(i, i % 2); // never the one in flight: that one is (i - 1) % 2 (or another shape)
            ex.submit(Map.of("tokens", inputs.get(i)));
            if (last != null) pipedOut[i - 1] = last.collect().get("text_features");
            last = ex;
          }
          if (last != null) pipedOut[inputs.size() - 1] = last.collect().get("text_features");
        };
        double piped = count / medianSeconds(pipelined);
        for (int i = 0; i < resident.size(); i++) resident.get(i).submit(Map.of("tokens", inputs.get(i))); // the tokens, once
        collectAll.run();
        for (int w = 0; w < 2; w++) { // 3 warm-ups in all, as the peer: the second records each CUDA graph
          queueAll.run();
          collectAll.run();
        }
        double rate = count / medianLikeThePeer(3, queueAll, collectAll);
        boolean same = Arrays.deepEquals(residentOut, pipedOut);
        row.put(order + "_resident_per_s", rate).put(order + "_tokens_per_prompt", (double) tokens / count).put(order + "_shapes", shapes.stream()
            .map(s -> s[0] + "x" + s[1]).distinct().count());
        row.put(order + "_pipelined_per_s", piped).put(order + "_pipelined_same_features", same);
        // an executor whose CUDA graph could not be recorded runs node by node: slower, and this says why
        long unrecorded = executors.values().stream().filter(e -> e.recordingFailure() != null).count();
        if (unrecorded > 0) row.put(order + "_executors_without_cuda_graph", unrecorded);
        log.printf("[model] text tower on %s, all %d prompts, batch %d, %s: %.1f prompts/s resident, pipelined %.1f%s (%.2f tokens per prompt, %d shapes)%n",
            backend.name(), count, batch, order.replace('_', ' '), rate, piped, same ? "" : " BUT OTHER FEATURES THAN RESIDENT",
            (double) tokens / count, row.get(order + "_shapes").asInt());
      } finally {
        for (Executor e : executors.values()) e.close();
      }
    }
  }

  /** Median seconds of 3 runs of {@code pass}, after 2 warm-up runs. */
  private static double medianSeconds(Runnable pass) {
    pass.run();
    pass.run();
    return medianOf(3, pass);
  }

  /** The median of the seconds {@code runs} runs of {@code timed} take. */
  private static double medianOf(int runs, Runnable timed) {
    List<Double> s = new java.util.ArrayList<>(runs);
    for (int r = 0; r < runs; r++) {
      long t0 = System.nanoTime();
      timed.run();
      s.add((System.nanoTime() - t0) / 1e9);
    }
    return median(s);
  }

  private static int eot(int[] ids) {
    return ClipTokenizer.endOfTextPosition(ids, 0, ids.length);
  }

  /**
   * The seeds of the benchmark's inputs: fixed, so that every configuration, precision and the
   * resumed process see the same values.
   */
  static final long PIXEL_SEED = 20261128L, TEXT_SEED = 77L;

  /**
   * {@code batch} images of N(0, 1) pixels, as the peer draws its own ({@code torch.randn}). The
   * inputs are random, as the peer's are, because the time depends on them: run 8's GEMM benchmark
   * ran 10% slower on random operands than on zeros (the card's power draw). Until session 20 the
   * throughput rows ran on zero pixels (every image of a batch alike) and the profile on a sine of
   * the pixel index.
   */
  static float[] pixels(int batch, int resolution, long seed) {
    return RandomWeights.normal(seed, Math.multiplyExact(batch, 3 * resolution * resolution), 1.0);
  }

  /**
   * {@code batch} 77-token texts as the peer draws its own: ids uniform in [1, 49000) ({@code
   * torch.randint(1, 49000)}), the last the end-of-text token (49407), so every row differs (until
   * session 20 all 1024 rows were one text).
   */
  static int[] texts77(int batch) {
    java.util.SplittableRandom r = new java.util.SplittableRandom(TEXT_SEED);
    int[] ids = new int[batch * 77];
    for (int b = 0; b < batch; b++) {
      for (int i = 0; i < 76; i++) ids[b * 77 + i] = 1 + r.nextInt(48999);
      ids[b * 77 + 76] = 49407;
    }
    return ids;
  }

  /** Items per second: one call after the other with uploads, and on resident inputs; the features of the last resident run. */
  private record Rate(double perCall, double resident, float[] features) {}

  private static Rate measure(CudaBackend backend, Graph graph, Map<String, ?> inputs, int batch, boolean replay, PrintStream log) {
    try (Executor ex = new Executor(graph, backend, List.of(), replay)) {
      // 3 warm-ups as the peer's median_ms makes (the second run records the CUDA graph, the third replays it)
      for (int i = 0; i < 3; i++) ex.run(inputs);
      if (replay && !ex.replaying()) {
        log.println("[model] warning: " + graph.nodes().size() + "-node graph at batch " + batch + " runs node by node, its CUDA graph "
            + "capture failed: " + ex.recordingFailure());
      }
      // per call (uploads and reads included: no peer figure to match) the median of 5; resident as the peer
      double perCall = medianOf(5, () -> ex.run(inputs));
      float[][] features = new float[1][];
      double resident = medianLikeThePeer(() -> {
        ex.resubmit();
        ex.await();
      }, () -> features[0] = only(ex.collect())); // the features, outside the timing
      return new Rate(batch / perCall, batch / resident, features[0]);
    }
  }

  /** A graph's one output (the towers' features). */
  static float[] only(Map<String, float[]> outputs) {
    return outputs.values().iterator().next();
  }

  /** The batch sizes whose throughput rows also time the batch in parts ({@link #split}). */
  static final int[] SPLIT_BATCHES = {1024};

  /** Into how many parts {@link #split} cuts those batches. */
  static final int[] SPLIT_PARTS = {2, 4};

  /**
   * The batch sizes whose throughput rows (the defaults') also time two batches of that size at
   * once, on one compute stream and on two ({@link #split} with batches of their own): what a second
   * stream would give {@code Clip}'s pipeline (batches of 32 by default) and {@code jclip embed}
   * (256 on a GPU).
   */
  static final int[] LANES_BATCHES = {32, 256};

  /** Whether the throughput rows time the batch in parts: {@code -Djclip.bench.split=off} leaves them out (~6-8 s a row set on an H200). */
  static boolean splitOn() {
    return !"off".equals(System.getProperty("jclip.bench.split", "on"));
  }

  /**
   * One batch in {@code parts} parts ({@code part}, the graph at the part's batch; {@code pieces}
   * the parts' inputs under {@code input}, in order), resident as {@link #measure}'s figure: items
   * per second with every part queued on {@code a} (one stream: each part's activations a
   * quarter or half of the whole batch's, so more of them stay in L2 from one node to the next),
   * and with the parts queued alternately on {@code a} and {@code b} (on a GPU two backends, so two
   * compute streams: one part's memory-bound kernels, launch gaps and GEMM tails may run beside the
   * other's GEMMs). Each way's features, the parts' joined in order, are compared with {@code
   * whole}, the whole batch's, as {@code ‖a − b‖ / ‖b‖}: the parts compute the same rows, but each
   * backend tunes its GEMMs for the part's shape on its own, so in 16 bits the last bits may
   * differ. With {@code whole} null (the pieces are batches of their own, {@link #LANES_BATCHES}),
   * the two streams' features are compared with the one stream's. Every executor warms up 3 times
   * (the second run records its CUDA graph).
   */
  static Split split(Backend a, Backend b, Graph part, String input, List<?> pieces, float[] whole, int batch) {
    int parts = pieces.size();
    List<Executor> made = new java.util.ArrayList<>();
    Split result;
    try {
      Executor[] one = new Executor[parts], two = new Executor[parts];
      for (int i = 0; i < parts; i++) {
        one[i] = new Executor(part, a, List.of(), true);
        made.add(one[i]);
        if (i % 2 == 0) {
          two[i] = one[i];
        } else {
          two[i] = new Executor(part, b, List.of(), true);
          made.add(two[i]);
        }
      }
      for (int w = 0; w < 3; w++) {
        for (int i = 0; i < parts; i++) {
          one[i].run(Map.of(input, pieces.get(i)));
          if (two[i] != one[i]) two[i].run(Map.of(input, pieces.get(i)));
        }
      }
      for (Executor e : made) { // node by node, the parts would time the host's launches, not the device's work
        if (e.recordingFailure() != null) throw new IllegalStateException("a part's CUDA graph capture failed", e.recordingFailure());
      }
      double[] seconds = new double[2], errors = new double[2];
      Executor[][] ways = {one, two};
      for (int k = 0; k < 2; k++) {
        Executor[] ex = ways[k];
        float[][] out = new float[parts][];
        seconds[k] = medianLikeThePeer(() -> {
          for (Executor e : ex) e.resubmit();
          for (Executor e : ex) e.await();
        }, () -> {
          for (int i = 0; i < parts; i++) out[i] = only(ex[i].collect());
        });
        float[] joined = concat(out);
        if (whole == null && k == 0) whole = joined; // two batches of their own: the reference is one stream's
        errors[k] = relativeError(joined, whole);
      }
      result = new Split(parts, batch / seconds[0], batch / seconds[1], errors[0], errors[1]);
    } catch (RuntimeException e) {
      closeAll(made, e);
      throw e;
    }
    closeAll(made, null);
    return result;
  }

  /**
   * Puts a {@link #split} figure into {@code row} as {@code <tower>_<key>_one_stream_per_s}, {@code
   * ..._two_streams_per_s} and {@code ..._error} (what gpu-compare.py reads); returns its words for the log line.
   */
  private static String putSplit(ObjectNode row, String tower, String key, Split s) {
    String k = tower + "_" + key;
    row.put(k + "_one_stream_per_s", s.oneStream()).put(k + "_two_streams_per_s", s.twoStreams()).put(k + "_error", s.error());
    return String.format(" %s %9.1f/s (two streams %9.1f, features within %.2g)", tower, s.oneStream(), s.twoStreams(), s.error());
  }

  /** Closes every executor, each in its own try (after a CUDA error one may throw): the first error thrown, or added to {@code failure}. */
  private static void closeAll(List<Executor> made, RuntimeException failure) {
    RuntimeException first = failure;
    for (Executor e : made) {
      try {
        e.close();
      } catch (RuntimeException c) {
        if (first == null) first = c;
        else first.addSuppressed(c);
      }
    }
    if (failure == null && first != null) throw first;
  }

  /**
   * Items per second of {@link #split}: the parts one after the other on one stream, and
   * alternately on two; and each way's features' relative error against the whole batch's.
   */
  record Split(int parts, double oneStream, double twoStreams, double oneStreamError, double twoStreamsError) {
    double error() {
      return Math.max(oneStreamError, twoStreamsError);
    }
  }

  private static float[] concat(float[]... v) {
    int n = 0;
    for (float[] x : v) n += x.length;
    float[] r = new float[n];
    int at = 0;
    for (float[] x : v) {
      System.arraycopy(x, 0, r, at, x.length);
      at += x.length;
    }
    return r;
  }

  /** Part {@code i} of {@code parts} equal parts of a batch's inputs. */
  static float[] part(float[] v, int i, int parts) {
    return Arrays.copyOfRange(v, i * (v.length / parts), (i + 1) * (v.length / parts));
  }

  static int[] part(int[] v, int i, int parts) {
    return Arrays.copyOfRange(v, i * (v.length / parts), (i + 1) * (v.length / parts));
  }

  /**
   * The median of the seconds {@code timed} takes, each run followed by {@code after} (untimed; may
   * be null), the way the peer times its own (gpu-peer.py's {@code median_ms}): at least 5 runs and
   * until 0.5 s have passed, at most 200; the median of an even count the mean of the middle two.
   * So both keep the card busy as long: its clocks fall under sustained power draw (until session 20
   * jclip took 5 runs, ~0.1 s at batch 1024, where the peer kept at it for half a second).
   */
  static double medianLikeThePeer(Runnable timed, Runnable after) {
    return medianLikeThePeer(5, timed, after);
  }

  /** {@link #medianLikeThePeer(Runnable, Runnable)} with at least {@code minRuns} runs (the peer's {@code min_reps}). */
  static double medianLikeThePeer(int minRuns, Runnable timed, Runnable after) {
    List<Double> s = new java.util.ArrayList<>();
    long end = System.nanoTime() + 500_000_000L;
    while ((s.size() < minRuns || System.nanoTime() < end) && s.size() < 200) {
      long t0 = System.nanoTime();
      timed.run();
      s.add((System.nanoTime() - t0) / 1e9);
      if (after != null) after.run();
    }
    return median(s);
  }

  /** Python's {@code statistics.median}: the middle value, or the mean of the middle two of an even count. */
  static double median(List<Double> values) {
    List<Double> s = new java.util.ArrayList<>(values);
    java.util.Collections.sort(s);
    int n = s.size();
    return n % 2 == 1 ? s.get(n / 2) : (s.get(n / 2 - 1) + s.get(n / 2)) / 2;
  }

  /**
   * {@link #pipelined} with the backend rounding the pixels to its 16-bit format on the host
   * ({@link CudaBackend#hostInputCast}), and the relative error of one batch's features so
   * computed against the device cast's (0 expected: the same bits); the backend's own choice is
   * put back afterwards.
   */
  private static double[] pipelinedHostCast(CudaBackend backend, Graph graph, float[] a, float[] b, int batch) {
    boolean own = backend.hostInputCast();
    try {
      backend.hostInputCast(false);
      float[] device = features(backend, graph, a);
      backend.hostInputCast(true);
      float[] host = features(backend, graph, a);
      return new double[] {pipelined(backend, graph, a, b, batch, true), relativeError(host, device)};
    } finally {
      backend.hostInputCast(own);
    }
  }

  /** The image features of one run of {@code graph} on {@code pixels}, on an executor of its own. */
  private static float[] features(CudaBackend backend, Graph graph, float[] pixels) {
    try (Executor e = new Executor(graph, backend, List.of(), false)) {
      return e.run(Map.of("pixels", pixels)).get("image_features");
    }
  }

  /**
   * Images per second in a stream of batches through two executors, batch i+1 submitted before
   * batch i is collected (uploads and reads included): the steady state, timed from the first
   * batch's collect to the last one's, so that neither the first upload (nothing to hide it
   * behind) nor the last compute counts twice; median of 3 streams of 5 batches, after each
   * executor has warmed up (and recorded its CUDA graph).
   */
  private static double pipelined(CudaBackend backend, Graph graph, float[] a, float[] b, int batch, boolean replay) {
    try (Executor x = new Executor(graph, backend, List.of(), replay);
        Executor y = new Executor(graph, backend, List.of(), replay)) {
      Executor[] ex = {x, y};
      List<Map<String, float[]>> inputs = List.of(Map.of("pixels", a), Map.of("pixels", b));
      for (int i = 0; i < 2; i++) {
        x.run(inputs.get(0));
        y.run(inputs.get(1));
      }
      int batches = 5;
      double[] s = new double[3];
      for (int r = 0; r < s.length; r++) {
        ex[0].submit(inputs.get(0));
        long first = 0;
        for (int i = 1; i < batches; i++) {
          ex[i % 2].submit(inputs.get(i % 2));
          ex[(i - 1) % 2].collect();
          if (i == 1) first = System.nanoTime();
        }
        ex[(batches - 1) % 2].collect();
        s[r] = (System.nanoTime() - first) / 1e9;
      }
      Arrays.sort(s);
      return (double) (batches - 1) * batch / s[1];
    }
  }
}
