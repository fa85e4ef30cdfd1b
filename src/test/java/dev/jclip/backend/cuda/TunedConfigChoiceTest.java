package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import static dev.jclip.backend.cuda.CudaModelBench.IMAGE;
import static dev.jclip.backend.cuda.CudaModelBench.TEXT77;

import dev.jclip.backend.cuda.CudaModelBench.ProfileConfig;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * How the model benchmark picks its tuned rows' kernel choices from the same run's profile
 * ({@link CudaModelBench#merge}, {@link CudaModelBench#fastest}), without a GPU: only choices
 * measured faster than the defaults (by more than the profile's noise) are taken, each choice's
 * fastest value, failed configurations never, each tower on its own profile column; and what
 * counts as agreeing with the defaults' features.
 */
class TunedConfigChoiceTest {
  static final ProfileConfig D = ProfileConfig.DEFAULTS;

  static Map<ProfileConfig, double[]> measured(Object... configAndMs) {
    Map<ProfileConfig, double[]> m = new LinkedHashMap<>();
    for (int i = 0; i < configAndMs.length; i += 2) m.put((ProfileConfig) configAndMs[i], new double[] {(double) configAndMs[i + 1], 17.0});
    return m;
  }

  /** Each choice reads and copies its own components and no other's (a configuration differing from the defaults in all of them). */
  @Test
  void eachChoiceTakesExactlyItsOwnComponents() {
    ProfileConfig all = D.with(c -> {
      c.flash = false;
      c.ln = CudaOps.LayerNormKernel.SHARED;
      c.v = CudaOps.FlashV.LDMATRIX;
      c.fourBlocks = false;
      c.fitRows = true;
      c.vecGlue = false;
      c.fused = Sm90Gemm.Schedule.PINGPONG;
      c.scope = CudaBackend.FusedScope.LINEAR;
      c.pipe = !D.pipe();
      c.tune = !D.tune();
      c.stage = !D.stage();
      c.pooled = !D.pooled();
      c.actChunk = 16;
      c.lnFold = Sm90Gemm.Schedule.COOPERATIVE;
      c.tmaStore = true;
      c.search = !D.search();
      c.rev = !D.rev();
      c.actRev = !D.actRev();
      c.lean = CudaOps.FlashLean.EXP2;
      c.lnStats = !D.lnStats();
    });
    assertEquals(java.util.List.of(CudaModelBench.Choice.values()), CudaModelBench.Choice.differing(D, all));
    for (CudaModelBench.Choice ch : CudaModelBench.Choice.values()) {
      ProfileConfig taken = ch.take(D, all);
      assertEquals(java.util.List.of(ch), CudaModelBench.Choice.differing(D, taken), ch.name());
      assertEquals(ch.value(all), ch.value(taken), ch.name());
    }
    assertEquals(CudaBackend.FusedScope.LINEAR, CudaModelBench.Choice.FUSED_LINEAR.take(D, all).scope());
  }

  @Test
  void eachChoiceThatBeatTheDefaultsIsMergedAtItsFastestValue() {
    Map<ProfileConfig, double[]> m = measured(D, 18.5, D.withActChunk(32), 18.0, D.withLn(CudaOps.LayerNormKernel.SHARED), 18.3,
        D.withLn(CudaOps.LayerNormKernel.WARPS), 17.9, D.withPipe(false), 18.6,
        D.withFused(Sm90Gemm.Schedule.PINGPONG, CudaBackend.FusedScope.ACTIVATION), Double.NaN, // failed: never taken
        D.withPipe(false).withLn(CudaOps.LayerNormKernel.SHARED).withActChunk(32), 17.95); // two choices at once: not merged
    ProfileConfig merged = CudaModelBench.merge(m, IMAGE);
    assertEquals(D.withActChunk(32).withLn(CudaOps.LayerNormKernel.WARPS), merged);
    assertEquals(D.withLn(CudaOps.LayerNormKernel.WARPS), CudaModelBench.fastest(m, IMAGE), "before the merged one is measured");
    m.put(merged, new double[] {17.4, 16.0});
    assertEquals(merged, CudaModelBench.fastest(m, IMAGE));
    m.put(merged, new double[] {18.2, 16.0}); // the merged choices do not add up: the best single configuration stays
    assertEquals(D.withLn(CudaOps.LayerNormKernel.WARPS), CudaModelBench.fastest(m, IMAGE));
  }

  /**
   * The attention kernel's choices are one: its fastest measured combination (staged, ldmatrix V,
   * fitted rows) is taken whole, never a mix of the fastest value of each, and merged with the
   * other choices' winners.
   */
  @Test
  void theAttentionKernelsChoicesAreOne() {
    ProfileConfig stFit = D.withPipe(false).withV(CudaOps.FlashV.LDMATRIX).withFitRows(true);
    Map<ProfileConfig, double[]> m = new LinkedHashMap<>();
    m.put(D, new double[] {18.5, 17.0});
    m.put(D.withPipe(false).withFitRows(true), new double[] {18.5, 16.8});
    m.put(D.withStage(false), new double[] {18.1, 16.6});
    m.put(stFit, new double[] {18.3, 15.6});
    m.put(D.withLn(CudaOps.LayerNormKernel.WARPS), new double[] {18.2, 16.7});
    m.put(D.withStage(false).withLn(CudaOps.LayerNormKernel.WARPS), new double[] {17.0, 15.0}); // two groups: not merged
    assertEquals(stFit.withLn(CudaOps.LayerNormKernel.WARPS), CudaModelBench.merge(m, TEXT77));
    assertEquals(D.withStage(false).withLn(CudaOps.LayerNormKernel.WARPS), CudaModelBench.merge(m, IMAGE));
    assertEquals(CudaModelBench.Choice.FLASH, CudaModelBench.Choice.STAGE.group());
    assertEquals(CudaModelBench.Choice.TUNE, CudaModelBench.Choice.TUNE.group());
    assertEquals(CudaModelBench.Choice.TUNE, CudaModelBench.Choice.SEARCH.group());
  }

  /**
   * gemm_sm90's choices (which LINEARs it runs, the folded LayerNorms, its output stores) are one
   * when merging too: the TMA stores mean nothing alone, so the fastest measured gemm_sm90
   * combination is taken whole.
   */
  @Test
  void gemmSm90sChoicesAreOne() {
    ProfileConfig fused = D.withFused(Sm90Gemm.Schedule.PINGPONG, CudaBackend.FusedScope.ACTIVATION);
    ProfileConfig foldTma = D.withLnFold(Sm90Gemm.Schedule.COOPERATIVE).withTmaStore(true);
    Map<ProfileConfig, double[]> m = new LinkedHashMap<>();
    m.put(D, new double[] {18.5, 17.0});
    m.put(fused, new double[] {17.6, 16.0});
    m.put(fused.withTmaStore(true), new double[] {17.2, 16.4});
    m.put(foldTma, new double[] {17.4, 15.5});
    m.put(D.withTune(false), new double[] {18.3, 16.9});
    assertEquals(fused.withTmaStore(true).withTune(false), CudaModelBench.merge(m, IMAGE));
    assertEquals(foldTma.withTune(false), CudaModelBench.merge(m, TEXT77));
    assertEquals(CudaModelBench.Choice.FUSED_LINEAR, CudaModelBench.Choice.GEMM_STORE.group());
    assertEquals(CudaModelBench.Choice.FUSED_LINEAR, CudaModelBench.Choice.LN_FOLD.group());
    assertEquals(CudaModelBench.Choice.FUSED_LINEAR, CudaModelBench.Choice.LN_STATS.group());
  }

  @Test
  void gemmSm90ScheduleAndScopeAreOneChoice() {
    ProfileConfig coop = D.withFused(Sm90Gemm.Schedule.COOPERATIVE, CudaBackend.FusedScope.ACTIVATION);
    ProfileConfig ppAll = D.withFused(Sm90Gemm.Schedule.PINGPONG, CudaBackend.FusedScope.ALL);
    assertEquals(ppAll, CudaModelBench.merge(measured(D, 18.5, coop, 18.0, ppAll, 17.5), IMAGE));
    assertEquals(coop, CudaModelBench.merge(measured(D, 18.5, coop, 17.0, ppAll, 17.5), IMAGE));
  }

  @Test
  void nothingFasterThanTheDefaultsBeyondTheNoiseChoosesNothing() {
    Map<ProfileConfig, double[]> m = measured(D, 18.5, D.withTune(false), 18.45, D.withPipe(false), 19.0);
    assertNull(CudaModelBench.merge(m, IMAGE));
    assertNull(CudaModelBench.fastest(m, IMAGE));
    assertNull(CudaModelBench.merge(measured(D.withTune(false), 17.0), IMAGE), "no defaults measured: nothing to compare with");
    assertNull(CudaModelBench.fastest(measured(D, Double.NaN, D.withTune(false), 17.0), IMAGE), "the defaults failed");
  }

  @Test
  void eachTowerChoosesOnItsOwnColumn() {
    Map<ProfileConfig, double[]> m = new LinkedHashMap<>();
    m.put(D, new double[] {18.5, 17.0});
    m.put(D.withTune(false), new double[] {18.0, 17.2}); // faster images, slower texts
    m.put(D.withStage(false), new double[] {18.6, 16.0}); // the other way round
    m.put(D.withPipe(false), new double[] {18.4, 16.5}); // both
    assertEquals(D.withTune(false).withPipe(false), CudaModelBench.merge(m, IMAGE));
    assertEquals(D.withStage(false), CudaModelBench.merge(m, TEXT77), "one attention kernel: the fastest measured, not a mix");
    assertEquals(D.withTune(false), CudaModelBench.fastest(m, IMAGE));
    assertEquals(D.withStage(false), CudaModelBench.fastest(m, TEXT77));
    m.put(D.withPipe(false).withV(CudaOps.FlashV.LDMATRIX), new double[] {18.55, 15.5});
    assertEquals(D.withPipe(false).withV(CudaOps.FlashV.LDMATRIX), CudaModelBench.fastest(m, TEXT77));
    assertEquals(D.withTune(false), CudaModelBench.fastest(m, IMAGE));
    m.put(D, new double[] {18.5, Double.NaN});
    assertNull(CudaModelBench.merge(m, TEXT77), "the defaults' text tower failed: nothing to compare with");
    assertEquals(D.withTune(false).withPipe(false), CudaModelBench.merge(m, IMAGE));
  }

  /**
   * A run leaves out of the profile the opt-in configurations whose kernels' tests failed
   * (-Djclip.bench.skip, set by scripts/gpu-run.sh): by group, never the defaults; an unknown
   * group leaves out every group.
   */
  @Test
  void configurationsOfFailedTestsAreLeftOut() {
    assertEquals(Set.of(), CudaModelBench.skipGroups(""));
    assertEquals(Set.of("sm90", "attention"), CudaModelBench.skipGroups("sm90, attention,"));
    // an unknown name leaves every opt-in kernel out (refusing it would end the benchmark)
    assertEquals(CudaModelBench.SKIP_GROUPS, CudaModelBench.skipGroups("attention,flash"));
    for (ProfileConfig c : CudaModelBench.PROFILE_OPT_IN) {
      assertFalse(CudaModelBench.skipped(c, Set.of()), c.label());
      // a configuration that runs a kernel the defaults do not is in a group; one that only turns defaults off is in none
      boolean adds = !CudaModelBench.features(D).containsAll(CudaModelBench.features(c));
      assertEquals(adds, CudaModelBench.skipped(c, CudaModelBench.SKIP_GROUPS), c.label() + (adds ? ": in no group" : ": only turns defaults off"));
    }
    assertTrue(CudaModelBench.PROFILE_OPT_IN.contains(D.withTune(false)) && CudaModelBench.PROFILE_OPT_IN.contains(D.withPipe(false)),
        "the defaults turned off are profiled");
    for (ProfileConfig c : CudaModelBench.PROFILE_PROVEN) {
      assertFalse(CudaModelBench.skipped(c, CudaModelBench.SKIP_GROUPS), "always profiled: " + c.label());
    }
    // session 14's reversals: the flash walk with its own group and the attention tests' group, the
    // activation pass's and the two-row LayerNorms with CudaOpsTest's ("layernorm")
    assertTrue(CudaModelBench.skipped(D.withRev(true), Set.of("rev")) && CudaModelBench.skipped(D.withRev(true), Set.of("attention")));
    assertFalse(CudaModelBench.skipped(D.withRev(true), Set.of("fit", "pipe", "staged", "layernorm")));
    assertFalse(CudaModelBench.skipped(D.withRev(true).withPipe(false), CudaModelBench.SKIP_GROUPS), "no pipelined kernel: nothing reversed runs");
    assertTrue(CudaModelBench.skipped(D.withActRev(true), Set.of("layernorm")) && !CudaModelBench.skipped(D.withActRev(true), Set.of("rev")));
    assertTrue(CudaModelBench.skipped(D.withLn(CudaOps.LayerNormKernel.DEEP_REVERSED), Set.of("layernorm")));
    // session 15's lean tiles: each its own family's group and the attention tests' group; none without the staged pipelined kernel
    assertTrue(CudaModelBench.skipped(D.withLean(CudaOps.FlashLean.ON), Set.of("lean")) && CudaModelBench.skipped(D.withLean(CudaOps.FlashLean.ON), Set.of("attention")));
    assertTrue(CudaModelBench.skipped(D.withLean(CudaOps.FlashLean.EXP2), Set.of("lean2")));
    assertFalse(CudaModelBench.skipped(D.withLean(CudaOps.FlashLean.EXP2), Set.of("lean", "rev", "layernorm")), "only the base-2 tile's own tests");
    assertFalse(CudaModelBench.skipped(D.withLean(CudaOps.FlashLean.ON), Set.of("lean2")));
    assertTrue(CudaModelBench.skipped(D.withLean(CudaOps.FlashLean.ON).withFitRows(true), Set.of("fit")));
    assertFalse(CudaModelBench.skipped(D.withLean(CudaOps.FlashLean.ON).withStage(false), CudaModelBench.SKIP_GROUPS), "unstaged: no lean kernel runs");
    ProfileConfig fold = D.withLnFold(Sm90Gemm.Schedule.COOPERATIVE);
    assertTrue(CudaModelBench.skipped(fold, Set.of("sm90")) && CudaModelBench.skipped(fold, Set.of("layernorm")));
    assertFalse(CudaModelBench.skipped(fold, Set.of("attention", "linear")));
    assertTrue(CudaModelBench.skipped(fold, Set.of("lnfold")));
    assertFalse(CudaModelBench.skipped(D.withFused(Sm90Gemm.Schedule.PINGPONG, CudaBackend.FusedScope.ACTIVATION), Set.of("lnfold")),
        "only the fold's own tests failed: gemm_sm90 itself stays");
    ProfileConfig tma = D.withFused(Sm90Gemm.Schedule.PINGPONG, CudaBackend.FusedScope.ACTIVATION).withTmaStore(true);
    assertTrue(CudaModelBench.skipped(tma, Set.of("tma")) && CudaModelBench.skipped(tma, Set.of("sm90")));
    assertTrue(CudaModelBench.skipped(D.withLnFold(Sm90Gemm.Schedule.PINGPONG).withTmaStore(true), Set.of("tma")));
    assertFalse(CudaModelBench.skipped(D.withFused(Sm90Gemm.Schedule.PINGPONG, CudaBackend.FusedScope.ACTIVATION), Set.of("tma")),
        "only the TMA-store tests failed: gemm_sm90's register epilogue stays");
    assertFalse(CudaModelBench.skipped(fold, Set.of("tma")));
    // session 16's epilogue warps: their own group and gemm_sm90's; the residual kernel ("ewres") only for every LINEAR
    ProfileConfig ew = D.withFused(Sm90Gemm.Schedule.EPILOGUE_WARPS, CudaBackend.FusedScope.ACTIVATION);
    ProfileConfig ewAll = D.withFused(Sm90Gemm.Schedule.EPILOGUE_WARPS, CudaBackend.FusedScope.ALL);
    assertTrue(CudaModelBench.skipped(ew, Set.of("ew")) && CudaModelBench.skipped(ew, Set.of("sm90")));
    assertFalse(CudaModelBench.skipped(ew, Set.of("ewres", "tma", "lnfold")), "the residual kernel's tests alone leave c_fc on the epilogue warps");
    assertTrue(CudaModelBench.skipped(ewAll, Set.of("ewres")) && CudaModelBench.skipped(ewAll, Set.of("ew")));
    assertFalse(CudaModelBench.skipped(D.withFused(Sm90Gemm.Schedule.COOPERATIVE, CudaBackend.FusedScope.ALL), Set.of("ew", "ewres", "ewln")));
    ProfileConfig ewFold = D.withLnFold(Sm90Gemm.Schedule.EPILOGUE_WARPS);
    assertTrue(CudaModelBench.skipped(ewFold, Set.of("ewln")) && CudaModelBench.skipped(ewFold, Set.of("ew"))
        && CudaModelBench.skipped(ewFold, Set.of("lnfold")));
    assertFalse(CudaModelBench.skipped(ew, Set.of("ewln")), "the LayerNorm fold's tests alone leave c_fc on the epilogue warps");
    assertFalse(CudaModelBench.skipped(fold, Set.of("ew", "ewln")), "the cooperative fold does not run the epilogue warps");
    // session 17's statistics in the residual epilogue: its own group ("ewst"), the residual kernel's and the fold's
    ProfileConfig ewStats = ewFold.withLnStats(true);
    for (String g : java.util.List.of("ewst", "ewres", "ewln", "ew", "sm90", "lnfold")) assertTrue(CudaModelBench.skipped(ewStats, Set.of(g)), g);
    assertFalse(CudaModelBench.skipped(ewFold, Set.of("ewst")), "the statistics' tests alone leave the fold reading x for them");
    assertFalse(CudaModelBench.skipped(ewAll, Set.of("ewst")));
    assertTrue(CudaModelBench.skipped(fold.withLnStats(true), Set.of("ewst")), "the cooperative fold's statistics from the epilogue warps too");
    assertFalse(CudaModelBench.skipped(D.withLnStats(true), CudaModelBench.SKIP_GROUPS), "no fold: no statistics wanted, nothing new runs");
    // the ew16 kernels: their own class, one group ("ew16"); with the statistics, the combination's group too
    ProfileConfig ew16All = D.withFused(Sm90Gemm.Schedule.EPILOGUE_WARPS_16, CudaBackend.FusedScope.ALL);
    assertTrue(CudaModelBench.skipped(ew16All, Set.of("ew16")) && CudaModelBench.skipped(ew16All, Set.of("sm90")));
    assertFalse(CudaModelBench.skipped(ew16All, Set.of("ew", "ewres", "ewln", "ewst", "lnfold")), "the fp32-staged kernels' tests say nothing of ew16");
    assertFalse(CudaModelBench.skipped(ewAll, Set.of("ew16")));
    ProfileConfig ew16Stack = ew16All.withLnFold(Sm90Gemm.Schedule.EPILOGUE_WARPS_16).withLnStats(true);
    for (String g : java.util.List.of("ew16", "ewst", "ew", "lnfold", "sm90")) assertTrue(CudaModelBench.skipped(ew16Stack, Set.of(g)), g);
    assertFalse(CudaModelBench.skipped(ew16Stack, Set.of("ewres", "ewln", "tma")), "the fp32-staged residual and fold kernels do not run");
    // the ew16s kernels: their own class and group ("ew16s"), and the ew16 tests' (the same kernels, their halves handed over apart)
    ProfileConfig splitAll = D.withFused(Sm90Gemm.Schedule.EPILOGUE_WARPS_16_SPLIT, CudaBackend.FusedScope.ALL);
    for (String g : java.util.List.of("ew16s", "ew16", "sm90")) assertTrue(CudaModelBench.skipped(splitAll, Set.of(g)), g);
    assertFalse(CudaModelBench.skipped(ew16All, Set.of("ew16s")), "the split kernels' tests alone leave the ew16 kernels in");
    assertFalse(CudaModelBench.skipped(splitAll, Set.of("ew", "ewres", "ewln", "ewst", "lnfold", "tma")));
    ProfileConfig splitStack = splitAll.withLnFold(Sm90Gemm.Schedule.EPILOGUE_WARPS_16_SPLIT).withLnStats(true);
    for (String g : java.util.List.of("ew16s", "ew16", "ewst", "ew", "lnfold", "sm90")) assertTrue(CudaModelBench.skipped(splitStack, Set.of(g)), g);
    assertFalse(CudaModelBench.skipped(splitStack, Set.of("ewres", "ewln", "tma")), "the fp32-staged residual and fold kernels do not run");
    assertEquals(List.of(Sm90Gemm.Schedule.EPILOGUE_WARPS, Sm90Gemm.Schedule.EPILOGUE_WARPS_16, Sm90Gemm.Schedule.EPILOGUE_WARPS_16_SPLIT),
        CudaModelBench.epilogueWarpsSchedules(Set.of()));
    assertEquals(List.of(Sm90Gemm.Schedule.EPILOGUE_WARPS, Sm90Gemm.Schedule.EPILOGUE_WARPS_16), CudaModelBench.epilogueWarpsSchedules(Set.of("ew16s")));
    assertEquals(List.of(Sm90Gemm.Schedule.EPILOGUE_WARPS), CudaModelBench.epilogueWarpsSchedules(Set.of("ew16")));
    ProfileConfig stFit = D.withPipe(false).withV(CudaOps.FlashV.LDMATRIX).withFitRows(true);
    assertTrue(CudaModelBench.skipped(stFit, Set.of("attention")));
    assertTrue(CudaModelBench.skipped(stFit, Set.of("ldm")));
    assertFalse(CudaModelBench.skipped(stFit, Set.of("staged", "pipe", "pooled")), "only the failed families the defaults do not run leave");
    assertFalse(CudaModelBench.skipped(D.withPooled(false), CudaModelBench.SKIP_GROUPS), "a default turned off runs nothing new");
    assertFalse(CudaModelBench.skipped(D.withPipe(false).withStage(false), Set.of("pipe", "staged")));
    assertFalse(CudaModelBench.skipped(ProfileConfig.RUN7_DEFAULTS, CudaModelBench.SKIP_GROUPS), "run 7's defaults: nothing beyond today's");
    assertTrue(CudaModelBench.skipped(ProfileConfig.RUN7_DEFAULTS.withV(CudaOps.FlashV.LDMATRIX), Set.of("ldm")));
    assertTrue(CudaModelBench.skipped(D.withActChunk(16), Set.of("linear")));
    assertFalse(CudaModelBench.skipped(D.withActChunk(16), Set.of("sm90", "attention", "layernorm")));
  }

  /**
   * The profile's whole-pass and batch-1 timings ({@link CudaModelBench#wholePass}, {@link
   * CudaModelBench#batchOne}) rerun the executor on the
   * inputs it already holds, leaving it usable, its outputs those of the inputs, and the host's
   * share of the time within the whole.
   */
  @Test
  void theWholePassRerunsTheExecutorOnItsInputs() {
    dev.jclip.graph.GraphBuilder g = new dev.jclip.graph.GraphBuilder();
    dev.jclip.graph.Value x = g.input("x", dev.jclip.io.DType.F32, 2, 3);
    g.output("y", g.add("add", x, x, true));
    float[] in = {1, -2, 3, -4, 5, -6};
    try (dev.jclip.backend.ReferenceBackend b = new dev.jclip.backend.ReferenceBackend();
        dev.jclip.graph.Executor ex = new dev.jclip.graph.Executor(g.build(), b, java.util.List.of())) {
      float[] first = ex.run(Map.of("x", in)).get("y");
      double[] ms = CudaModelBench.wholePass(ex);
      assertTrue(ms[0] >= 0 && ms[1] >= 0 && ms[1] <= ms[0] && Double.isFinite(ms[0]), java.util.Arrays.toString(ms));
      org.junit.jupiter.api.Assertions.assertArrayEquals(new float[] {2, 0, 6, 0, 10, 0}, first);
      org.junit.jupiter.api.Assertions.assertArrayEquals(first, ex.run(Map.of("x", in)).get("y"), "the executor is usable after");
      double[] one = CudaModelBench.batchOne(ex, Map.of("x", in));
      assertTrue(one[0] >= 0 && one[1] >= 0 && one[1] <= one[0] && Double.isFinite(one[0]), java.util.Arrays.toString(one));
      org.junit.jupiter.api.Assertions.assertArrayEquals(first, ex.run(Map.of("x", in)).get("y"), "and after the batch-1 timing");
    }
  }

  @Test
  void aConfigurationAgreesWithTheDefaultsOnlyWithinRounding() {
    float[] want = {3, 4, 0}, near = {3.001f, 4f, 0.002f}, off = {4, 3, 0}, nan = {Float.NaN, 4, 0};
    double e = CudaModelBench.relativeError(near, want);
    assertEquals(Math.sqrt(0.001 * 0.001 + 0.002 * 0.002) / 5, e, 1e-6);
    assertTrue(e <= CudaModelBench.AGREE);
    assertFalse(CudaModelBench.relativeError(off, want) <= CudaModelBench.AGREE);
    assertFalse(CudaModelBench.relativeError(nan, want) <= CudaModelBench.AGREE, "NaN never agrees");
    assertFalse(CudaModelBench.relativeError(new float[2], want) <= CudaModelBench.AGREE, "nor another length");
  }

  /** Every profiled configuration survives its JSON form (what a resumed benchmark reads back), and a malformed one is refused by name. */
  @Test
  void profileConfigurationsRoundTripThroughTheirJson() {
    List<ProfileConfig> all = new java.util.ArrayList<>(CudaModelBench.PROFILE_PROVEN);
    all.addAll(CudaModelBench.PROFILE_OPT_IN);
    for (ProfileConfig c : all) {
      String text = c.toJson().toString();
      try {
        assertEquals(c, ProfileConfig.fromJson(new com.fasterxml.jackson.databind.ObjectMapper().readTree(text)), text);
      } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
        throw new AssertionError(text, e);
      }
    }
    com.fasterxml.jackson.databind.node.ObjectNode missing = D.toJson();
    missing.remove("pipe");
    assertTrue(assertThrows(IllegalArgumentException.class, () -> ProfileConfig.fromJson(missing)).getMessage().contains("'pipe'"));
    com.fasterxml.jackson.databind.node.ObjectNode unknown = D.toJson().put("ln", "SIDEWAYS");
    assertTrue(assertThrows(IllegalArgumentException.class, () -> ProfileConfig.fromJson(unknown)).getMessage().contains("SIDEWAYS"));
    com.fasterxml.jackson.databind.node.ObjectNode wrongType = D.toJson().put("actChunk", "eight");
    assertThrows(IllegalArgumentException.class, () -> ProfileConfig.fromJson(wrongType));
    com.fasterxml.jackson.databind.node.ObjectNode nullPrimitive = D.toJson().putNull("tune");
    assertThrows(IllegalArgumentException.class, () -> ProfileConfig.fromJson(nullPrimitive));
    com.fasterxml.jackson.databind.node.ObjectNode extra = D.toJson().put("newComponent", true);
    assertTrue(assertThrows(IllegalArgumentException.class, () -> ProfileConfig.fromJson(extra)).getMessage().contains("'newComponent'"));
  }

  /**
   * The configuration that lost the context counts as failed on both towers, though one tower was
   * timed before the other faulted: the resumed process must not run it again.
   */
  @Test
  void theConfigurationThatLostTheContextIsNotChosen() {
    ProfileConfig textFaults = D.withLean(CudaOps.FlashLean.ON).withFitRows(true);
    com.fasterxml.jackson.databind.node.ArrayNode json = new com.fasterxml.jackson.databind.ObjectMapper().createArrayNode();
    for (Object[] r : new Object[][] {{D, "image", 16.4}, {D, "text77", 13.9}, {textFaults, "image", 15.0}, {textFaults, "text77", Double.NaN}}) {
      com.fasterxml.jackson.databind.node.ObjectNode row = json.addObject();
      row.set("config", ((ProfileConfig) r[0]).toJson());
      row.put("tower", (String) r[1]);
      if (Double.isNaN((double) r[2])) {
        row.put("error", "CUDA_ERROR_ILLEGAL_ADDRESS (700)").put("context_lost", "CUDA_ERROR_ILLEGAL_ADDRESS (700)");
      } else {
        row.put("total_ms", (double) r[2]);
      }
    }
    Map<ProfileConfig, double[]> back = CudaModelBench.measuredFromRows(json);
    assertTrue(Double.isNaN(back.get(textFaults)[IMAGE]) && Double.isNaN(back.get(textFaults)[TEXT77]));
    assertNull(CudaModelBench.fastest(back, IMAGE));
    assertNull(CudaModelBench.merge(back, IMAGE));
  }

  /**
   * A resumed benchmark's measurements come from the profile rows as the profile writes them (a
   * row a tower, {@code config}, {@code total_ms}; a failed tower has an {@code error}): the same
   * map, so the same merge and the same tuned configuration as in the first process.
   */
  @Test
  void theProfileRowsGiveBackWhatWasMeasured() {
    ProfileConfig pipeOff = D.withPipe(false), ew = D.withFused(Sm90Gemm.Schedule.EPILOGUE_WARPS_16, CudaBackend.FusedScope.ACTIVATION),
        ln = D.withLn(CudaOps.LayerNormKernel.SHARED), faulted = D.withFused(Sm90Gemm.Schedule.EPILOGUE_WARPS_16_SPLIT, CudaBackend.FusedScope.ALL);
    Object[][] rows = {{D, 16.4, 13.9}, {pipeOff, 17.1, 14.6}, {ew, 15.9, 12.8}, {ln, 16.2, Double.NaN}, {faulted, Double.NaN, Double.NaN}};
    com.fasterxml.jackson.databind.node.ArrayNode json = new com.fasterxml.jackson.databind.ObjectMapper().createArrayNode();
    Map<ProfileConfig, double[]> direct = new LinkedHashMap<>();
    for (Object[] r : rows) {
      ProfileConfig c = (ProfileConfig) r[0];
      direct.put(c, new double[] {(double) r[1], (double) r[2]});
      for (String tower : new String[] {"image", "text77"}) {
        double ms = (double) (tower.equals("image") ? r[1] : r[2]);
        com.fasterxml.jackson.databind.node.ObjectNode row = json.addObject();
        row.set("config", c.toJson());
        row.put("tower", tower).put("batch", 1024);
        if (Double.isNaN(ms)) {
          row.put("error", "CUDA_ERROR_ILLEGAL_ADDRESS (700)");
        } else {
          row.put("total_ms", ms);
        }
      }
    }
    json.addObject().put("tower", "image").put("total_ms", 1.0); // an older build's row, without its configuration: skipped
    Map<ProfileConfig, double[]> back = CudaModelBench.measuredFromRows(json);
    assertEquals(direct.keySet(), back.keySet());
    for (ProfileConfig c : direct.keySet()) org.junit.jupiter.api.Assertions.assertArrayEquals(direct.get(c), back.get(c), 0, c.label());
    for (int tower : new int[] {IMAGE, TEXT77}) {
      assertEquals(CudaModelBench.merge(direct, tower), CudaModelBench.merge(back, tower));
      assertEquals(CudaModelBench.fastest(direct, tower), CudaModelBench.fastest(back, tower));
    }
    assertEquals(D.withLn(CudaOps.LayerNormKernel.SHARED).withFused(Sm90Gemm.Schedule.EPILOGUE_WARPS_16, CudaBackend.FusedScope.ACTIVATION),
        CudaModelBench.merge(back, IMAGE), "the faster choices merged, the faulted one left out");
  }
}
