package dev.jclip.backend.cuda;

import dev.jclip.backend.Precision;
import static org.bytedeco.cuda.global.cudart.CUDA_R_16BF;
import static org.bytedeco.cuda.global.cudart.CUDA_R_16F;

import java.io.PrintStream;
import java.util.Arrays;

/**
 * Measures cuBLAS GEMM throughput on this GPU (fp32 without TF32, fp16 and bf16 with fp32
 * accumulation) at a square size and at CLIP's largest LINEAR shapes: the peak the model benchmark
 * reports its share of. Warm-up, then the median of timed repetitions (device synchronised).
 */
public final class CudaGemmBench {
  private CudaGemmBench() {}

  /** One measured GEMM: TFLOP/s median and spread. */
  public record Result(String type, int m, int n, int k, double medianTflops, double minTflops, double maxTflops) {
    @Override
    public String toString() {
      return String.format("%-5s %6d x %5d x %5d: %8.1f TFLOP/s (min %.1f, max %.1f)", type, m, n, k, medianTflops, minTflops, maxTflops);
    }
  }

  public static Result[] run(CudaDevice device, PrintStream log) {
    int[][] shapes = {{8192, 8192, 8192}, {1024 * 50, 3072, 768}, {1024 * 50, 768, 3072}, {1024 * 257, 4096, 1024}};
    java.util.List<Result> out = new java.util.ArrayList<>();
    try (Cublas blas = new Cublas(device)) {
      for (int[] s : shapes) {
        out.add(measure(device, blas, "fp32", 0, s[0], s[1], s[2]));
        out.add(measure(device, blas, "fp16", CUDA_R_16F, s[0], s[1], s[2]));
        out.add(measure(device, blas, "bf16", CUDA_R_16BF, s[0], s[1], s[2]));
        for (int i = out.size() - 3; i < out.size(); i++) log.println("[gemm] " + out.get(i));
      }
    }
    return out.toArray(Result[]::new);
  }

  /**
   * Times the fused attention kernels at CLIP shapes (ViT-B/32 image and text towers at batch
   * 1024, ViT-L/14@336 image at batch 64, ViT-B/16 at 256, 1024 ImageNet prompts cut at 15 tokens): milliseconds per call and effective TFLOP/s of the
   * 4·B·H·N²·64 multiply-adds (causal counted in full).
   */
  public static void attention(CudaDevice device, PrintStream log) {
    int[][] shapes = {{1024, 50, 12, 0}, {1024, 77, 8, 1}, {64, 577, 16, 0}, {256, 197, 12, 0}, {1024, 15, 8, 1}};
    try (CudaOps ops = new CudaOps(device, null)) {
      for (int[] s : shapes) {
        int b = s[0], n = s[1], h = s[2];
        boolean causal = s[3] == 1;
        for (Precision p : Precision.values()) {
          int elem = p == Precision.FP32 ? 4 : 2;
          long qkvBytes = (long) b * n * 3 * h * 64 * elem;
          try (DeviceBuffer qkv = device.allocate(qkvBytes);
              DeviceBuffer out = device.allocate(qkvBytes / 3)) {
            qkv.zero();
            time(device, p.toString(), () -> ops.attention(out, qkv, b, n, h, causal, p), b, n, h, causal, log);
            // one query row a sequence (a pooled tower's last attention): the last row when causal (every key)
            DeviceBuffer q = out.view(0, (long) b * h * 64 * elem), pooled = out.view((long) b * h * 64 * elem, (long) b * h * 64 * elem);
            report("pooled " + p, timings(device::synchronize, () -> ops.attentionPooled(pooled, q, qkv, null, b, n, h, causal ? n - 1 : 0, causal, p), 10),
                b, n, h, causal, 1, log);
            if (p != Precision.FP32) {
              time(device, "flash " + p, () -> ops.flashAttention(out, qkv, b, n, h, causal, p), b, n, h, causal, log);
              time(device, "flash-vkey " + p, () -> ops.flashAttention(out, qkv, b, n, h, causal, p, true), b, n, h, causal, log);
              time(device, "flash-occ4 " + p, () -> ops.flashAttention(out, qkv, b, n, h, causal, p, false, true), b, n, h, causal, log);
              time(device, "flash-vkey-occ4 " + p, () -> ops.flashAttention(out, qkv, b, n, h, causal, p, true, true), b, n, h, causal, log);
              time(device, "flash-ldm " + p, () -> ops.flashAttention(out, qkv, b, n, h, causal, p, CudaOps.FlashV.LDMATRIX, false, false), b, n, h,
                  causal, log);
              time(device, "flash-ldm-occ4 " + p, () -> ops.flashAttention(out, qkv, b, n, h, causal, p, CudaOps.FlashV.LDMATRIX, true, false), b, n,
                  h, causal, log);
              time(device, "flash-pipe " + p, () -> ops.flashAttentionPipelined(out, qkv, b, n, h, causal, p), b, n, h, causal, log);
              // Q and the output staged in shared memory (16-byte accesses)
              time(device, "flash-st-occ4 " + p, () -> ops.flashAttention(out, qkv, b, n, h, causal, p, CudaOps.FlashV.ROWS, true, false, true), b, n,
                  h, causal, log);
              time(device, "flash-ldm-st-occ4 " + p, () -> ops.flashAttention(out, qkv, b, n, h, causal, p, CudaOps.FlashV.LDMATRIX, true, false, true),
                  b, n, h, causal, log);
              time(device, "flash-pipe-st " + p, () -> ops.flashAttentionPipelined(out, qkv, b, n, h, causal, p, true), b, n, h, causal, log);
              // the items walked last to first (flashOrder=reversed: its L2 gain needs in_proj just before it, which this loop lacks)
              time(device, "flash-pipe-st-rev " + p, () -> ops.flashAttentionPipelined(out, qkv, b, n, h, causal, p, true, false, true), b, n, h,
                  causal, log);
              // the lean tile (flashLean=on: the same bits) and its base-2 softmax (exp2)
              for (CudaOps.FlashLean lean : new CudaOps.FlashLean[] {CudaOps.FlashLean.ON, CudaOps.FlashLean.EXP2}) {
                String tag = lean == CudaOps.FlashLean.ON ? "-lean " : "-lean2 ";
                time(device, "flash-pipe-st" + tag + p, () -> ops.flashAttentionPipelined(out, qkv, b, n, h, causal, p, true, false, false, lean), b, n, h,
                    causal, log);
                if (CudaOps.flashPipeFits(n)) {
                  time(device, "flash-pipe-st-fit" + tag + p, () -> ops.flashAttentionPipelined(out, qkv, b, n, h, causal, p, true, true, false, lean), b, n,
                      h, causal, log);
                }
              }
              if (CudaOps.flashPipeFits(n)) { // one 80-row item a sequence (flashRows=fit with the pipelined kernel)
                time(device, "flash-pipe-fit " + p, () -> ops.flashAttentionPipelined(out, qkv, b, n, h, causal, p, false, true), b, n, h, causal, log);
                time(device, "flash-pipe-st-fit " + p, () -> ops.flashAttentionPipelined(out, qkv, b, n, h, causal, p, true, true), b, n, h, causal,
                    log);
              }
              if (n <= 80 && n != 64) {
                time(device, "flash-fit " + p, () -> ops.flashAttention(out, qkv, b, n, h, causal, p, false, false, true), b, n, h, causal, log);
                time(device, "flash-vkey-fit " + p, () -> ops.flashAttention(out, qkv, b, n, h, causal, p, true, false, true), b, n, h, causal, log);
                time(device, "flash-ldm-st-fit " + p, () -> ops.flashAttention(out, qkv, b, n, h, causal, p, CudaOps.FlashV.LDMATRIX, false, true, true),
                    b, n, h, causal, log);
              }
            }
          }
        }
      }
    }
  }

  /**
   * Times a LINEAR with bias + QuickGELU (c_fc) and the other transformer LINEARs at batch-1024
   * shapes, on random 16-bit inputs: the path the backend takes by default (cuBLAS GEMM, then
   * bias_act_vec over its output; cuBLASLt with the bias, and the residual, in its epilogue for
   * the LINEARs without activation), the same on tuned cuBLASLt ({@link CublasLt#tune}, with what
   * its tuning measured), against gemm_sm90 with everything in its epilogue, plus the
   * bare cuBLAS GEMM for reference; gemm_sm90 in each of its schedules. Milliseconds per call and TFLOP/s of the 2·M·N·K of the
   * product. Only on compute capability 9.0 (gemm_sm90 is sm_90a code).
   */
  public static void fusedLinear(CudaDevice device, PrintStream log) {
    if (!Sm90Gemm.available(device)) {
      log.println("[linear] gemm_sm90 needs compute capability 9.0; " + device + " has " + device.computeCapability() + ": skipped");
      return;
    }
    // name, M, N, K, activation (1 QuickGELU, 0 none), residual; the towers' own first (the run's
    // time limit may cut the rest), the residual shape early for its statistics rows, ViT-L last
    Object[][] shapes = {
      {"text c_fc", 1024 * 77, 2048, 512, 1, false}, {"image c_fc", 1024 * 50, 3072, 768, 1, false},
      {"image c_proj", 1024 * 50, 768, 3072, 0, true}, {"text in_proj", 1024 * 77, 1536, 512, 0, false},
      {"image in_proj", 1024 * 50, 2304, 768, 0, false}, {"ViT-L c_fc", 256 * 257, 4096, 1024, 1, false}};
    try (CudaStream stream = new CudaStream(device);
        CudaOps ops = new CudaOps(device, stream.handle());
        Cublas blas = new Cublas(device);
        CublasLt lt = new CublasLt(device);
        CublasLt tunedLt = new CublasLt(device);
        DeviceBuffer workspace = device.allocate(32L << 20);
        Sm90Gemm sm90 = new Sm90Gemm(device, stream.handle())) {
      blas.bind(stream, workspace);
      lt.bind(stream, workspace);
      tunedLt.bind(stream, workspace);
      tunedLt.tune(CudaBackend.TUNE_CANDIDATES);
      log.printf("[linear] gemm_sm90: %d SMs, %d 2-block clusters resident at once%n", device.multiprocessors(), sm90.clusterSlots());
      boolean skipTma = CudaModelBench.tmaStoreSkipped();
      if (CudaModelBench.epilogueWarpsSchedules().size() < Arrays.stream(Sm90Gemm.Schedule.values()).filter(Sm90Gemm.Schedule::epilogueWarps).count()) {
        log.println("[linear] epilogue-warps schedules left out of the rows (their tests failed in this run, -Djclip.bench.skip="
            + String.join(",", CudaModelBench.skipGroups()) + "); those run: " + CudaModelBench.epilogueWarpsSchedules());
      }
      if (skipTma) log.println("[linear] the TMA-store rows are left out: their tests failed in this run (-Djclip.bench.skip="
          + String.join(",", CudaModelBench.skipGroups()) + ")");
      for (Precision p : new Precision[] {Precision.FP16, Precision.BF16}) {
        int type = p == Precision.FP16 ? CUDA_R_16F : CUDA_R_16BF;
        for (Object[] s : shapes) {
          String name = (String) s[0];
          int m = (int) s[1], n = (int) s[2], k = (int) s[3], act = (int) s[4];
          boolean residual = (boolean) s[5];
          try (DeviceBuffer a = random(device, (long) m * k, p);
              DeviceBuffer w = random(device, (long) n * k, p);
              DeviceBuffer r = residual ? random(device, (long) m * n, p) : null;
              DeviceBuffer bias = random(device, n, Precision.FP32);
              DeviceBuffer bias16 = random(device, n, p);
              DeviceBuffer c = device.allocate((long) m * n * 2)) {
            double flop = 2.0 * m * n * k;
            String at = String.format("%-13s %s %6d x %4d x %4d", name, p, m, n, k);
            double base = timeMs(stream, () -> blas.gemmExNT(m, n, k, type, a, w, c));
            log.printf("[linear] %s cuBLAS GEMM alone        %7.3f ms %6.1f TFLOP/s%n", at, base, flop / base / 1e9);
            double unfused = act != 0
                ? timeMs(stream, () -> {
                  blas.gemmExNT(m, n, k, type, a, w, c);
                  ops.biasAct(c, bias, m, n, act, p);
                })
                : timeMs(stream, () -> {
                  if (!lt.linear(m, n, k, CublasLt.dataType(p), a, w, bias16, r, c)) throw new CudaException("cuBLASLt has no algorithm for " + at);
                });
            log.printf("[linear] %s %-24s %7.3f ms %6.1f TFLOP/s%n", at, act != 0 ? "cuBLAS + bias_act_vec" : "cuBLASLt epilogue", unfused,
                flop / unfused / 1e9);
            // the same path on tuned cuBLASLt (the backend's -Djclip.cuda.gemmTune=on): the first call tunes
            int tunedBefore = tunedLt.tuning().size();
            double tuned = timeMs(stream, () -> {
              if (!tunedLt.linear(m, n, k, CublasLt.dataType(p), a, w, act != 0 ? null : bias16, r, c)) throw new CudaException("cuBLASLt has no algorithm for " + at);
              if (act != 0) ops.biasAct(c, bias, m, n, act, p);
            });
            log.printf("[linear] %s %-24s %7.3f ms %6.1f TFLOP/s (%.2fx the untuned path)%n", at, act != 0 ? "tuned cuBLASLt + bias_act" : "tuned cuBLASLt epilogue",
                tuned, flop / tuned / 1e9, unfused / tuned);
            for (String line : tunedLt.tuning().subList(tunedBefore, tunedLt.tuning().size())) log.println("[tune] " + line);
            for (Sm90Gemm.Schedule schedule : Sm90Gemm.Schedule.values()) {
              if (schedule.epilogueWarps()) continue; // the newest: last (below)
              double fused = timeMs(stream, () -> sm90.run(p, m, n, k, a, w, bias, r, act, c, schedule));
              log.printf("[linear] %s %-24s %7.3f ms %6.1f TFLOP/s (%.2fx the unfused path)%n", at, "sm90 " + schedule.name().toLowerCase(),
                  fused, flop / fused / 1e9, unfused / fused);
            }
            if (!residual) {
              // the LINEARs a LayerNorm feeds (in_proj, c_fc): the LayerNorm pass (the backend's
              // default kernel) and the unfused path on its rows, against the rows' statistics and
              // gemm_ln_sm90 on x (-Djclip.cuda.lnFold; the random bias stands in for the column sums)
              try (DeviceBuffer gamma = random(device, k, Precision.FP32);
                  DeviceBuffer beta = random(device, k, Precision.FP32);
                  DeviceBuffer normed = device.allocate((long) m * k * 2);
                  DeviceBuffer stats = device.allocate(8L * m)) {
                double ln = timeMs(stream, () -> {
                  ops.layerNorm(normed, null, a, null, gamma, beta, m, k, 1e-5f, p, CudaOps.LayerNormKernel.WARPS);
                  if (act != 0) {
                    blas.gemmExNT(m, n, k, type, normed, w, c);
                    ops.biasAct(c, bias, m, n, act, p);
                  } else if (!lt.linear(m, n, k, CublasLt.dataType(p), normed, w, bias16, null, c)) {
                    throw new CudaException("cuBLASLt has no algorithm for " + at);
                  }
                });
                log.printf("[linear] %s %-24s %7.3f ms %6.1f TFLOP/s%n", at, "LayerNorm + " + (act != 0 ? "cuBLAS + bias_act" : "cuBLASLt"), ln,
                    flop / ln / 1e9);
                for (Sm90Gemm.Schedule schedule : new Sm90Gemm.Schedule[] {Sm90Gemm.Schedule.COOPERATIVE, Sm90Gemm.Schedule.PINGPONG}) {
                  double folded = timeMs(stream, () -> {
                    if (!ops.layerNormStats(stats, a, m, k, 1e-5f, p)) throw new CudaException("layernorm_stats does not take " + at);
                    sm90.runLayerNormFolded(p, m, n, k, a, w, bias, act, c, schedule, stats, bias);
                  });
                  log.printf("[linear] %s %-24s %7.3f ms %6.1f TFLOP/s (%.2fx LayerNorm + the unfused path)%n", at,
                      "sm90 ln-fold " + schedule.name().toLowerCase(), folded, flop / folded / 1e9, ln / folded);
                }
              }
            }
            // act -1: the mainloop alone (no epilogue, nothing written): what the epilogue costs
            for (Sm90Gemm.Schedule schedule : new Sm90Gemm.Schedule[] {Sm90Gemm.Schedule.PINGPONG, Sm90Gemm.Schedule.COOPERATIVE}) {
              double loop = timeMs(stream, () -> sm90.run(p, m, n, k, a, w, bias, r, -1, c, schedule));
              log.printf("[linear] %s %-24s %7.3f ms %6.1f TFLOP/s (mainloop only: no epilogue)%n", at, "sm90 " + schedule.name().toLowerCase() + " loop",
                  loop, flop / loop / 1e9);
            }
            // the TMA-store kernels (-Djclip.cuda.gemmStore=tma), last: they are the newest (left
            // out where their tests failed in this run: -Djclip.bench.skip names "tma" or "sm90")
            if (!residual && !skipTma) {
              for (Sm90Gemm.Schedule schedule : new Sm90Gemm.Schedule[] {Sm90Gemm.Schedule.COOPERATIVE, Sm90Gemm.Schedule.PINGPONG}) {
                double stored = timeMs(stream, () -> sm90.run(p, m, n, k, a, w, bias, null, act, c, schedule, true));
                log.printf("[linear] %s %-24s %7.3f ms %6.1f TFLOP/s (%.2fx the unfused path)%n", at, "sm90 " + schedule.name().toLowerCase() + " tma",
                    stored, flop / stored / 1e9, unfused / stored);
              }
              try (DeviceBuffer stats = device.allocate(8L * m)) {
                for (Sm90Gemm.Schedule schedule : new Sm90Gemm.Schedule[] {Sm90Gemm.Schedule.COOPERATIVE, Sm90Gemm.Schedule.PINGPONG}) {
                  double folded = timeMs(stream, () -> {
                    if (!ops.layerNormStats(stats, a, m, k, 1e-5f, p)) throw new CudaException("layernorm_stats does not take " + at);
                    sm90.runLayerNormFolded(p, m, n, k, a, w, bias, act, c, schedule, stats, bias, true);
                  });
                  log.printf("[linear] %s %-24s %7.3f ms %6.1f TFLOP/s%n", at, "sm90 ln-fold " + schedule.name().toLowerCase() + " tma", folded,
                      flop / folded / 1e9);
                }
              }
            }
            // the epilogue-warps kernels (-Djclip.cuda.fusedLinear=sm90ew, sm90ew16, sm90ew16s), last:
            // the newest (left out where their tests failed in this run: -Djclip.bench.skip names
            // "ew", "ew16", "ew16s" or "sm90"; ew's residual kernel's rows also by "ewres"), and each
            // mainloop alone (K 32 a stage, 4 stages (ew) or 6 (ew16, ew16s): against the cooperative
            // loop's 4 of K 64, what the smaller ring costs)
            double statsPass = Double.NaN; // tuned cuBLASLt + the statistics pass, timed once for the schedules' statistics rows
            for (Sm90Gemm.Schedule ews : CudaModelBench.epilogueWarpsSchedules()) { // ew, ew16, ew16s (each left out where its tests failed)
              if (residual && CudaModelBench.epilogueWarpsResidualSkipped(ews)) continue;
              String label = ews.name().toLowerCase();
              double ew = timeMs(stream, () -> sm90.run(p, m, n, k, a, w, bias, r, act, c, ews));
              log.printf("[linear] %s %-24s %7.3f ms %6.1f TFLOP/s (%.2fx the unfused path)%n", at, "sm90 " + label, ew, flop / ew / 1e9,
                  unfused / ew);
              double loop = timeMs(stream, () -> sm90.run(p, m, n, k, a, w, bias, null, -1, c, ews));
              log.printf("[linear] %s %-24s %7.3f ms %6.1f TFLOP/s (mainloop only: no epilogue)%n", at, "sm90 " + label + " loop", loop,
                  flop / loop / 1e9);
              if (ews == Sm90Gemm.Schedule.EPILOGUE_WARPS_16_SPLIT) {
                // the rows above at the default lag; the others, whole and mainloop alone (what the
                // lead costs the first warpgroup's ring against what it hides of the hand-over)
                for (int lag = 0; lag <= Sm90Gemm.MAX_SPLIT_LAG; lag++) {
                  if (lag == Sm90Gemm.DEFAULT_SPLIT_LAG) continue;
                  sm90.splitLag(lag);
                  double lagged = timeMs(stream, () -> sm90.run(p, m, n, k, a, w, bias, r, act, c, ews));
                  double lagLoop = timeMs(stream, () -> sm90.run(p, m, n, k, a, w, bias, null, -1, c, ews));
                  log.printf("[linear] %s %-24s %7.3f ms %6.1f TFLOP/s (%.2fx the unfused path); mainloop only %7.3f ms%n", at,
                      "sm90 " + label + " lag " + lag, lagged, flop / lagged / 1e9, unfused / lagged, lagLoop);
                }
                sm90.splitLag(Sm90Gemm.DEFAULT_SPLIT_LAG);
              }
              if (!residual && !CudaModelBench.epilogueWarpsFoldSkipped(ews)) { // the LayerNorm fold on it, as the ln-fold rows above
                try (DeviceBuffer stats = device.allocate(8L * m)) {
                  double folded = timeMs(stream, () -> {
                    if (!ops.layerNormStats(stats, a, m, k, 1e-5f, p)) throw new CudaException("layernorm_stats does not take " + at);
                    sm90.runLayerNormFolded(p, m, n, k, a, w, bias, act, c, ews, stats, bias);
                  });
                  log.printf("[linear] %s %-24s %7.3f ms %6.1f TFLOP/s%n", at, "sm90 ln-fold " + label, folded, flop / folded / 1e9);
                }
              }
              if (residual && !CudaModelBench.epilogueWarpsStatsSkipped(ews)) {
                // the next LayerNorm's statistics (-Djclip.cuda.lnStats=epilogue): the residual
                // kernel writing them in parts and their combination, against the tuned cuBLASLt
                // epilogue followed by the statistics pass over its output (what they replace)
                try (DeviceBuffer stats = device.allocate(8L * m);
                    DeviceBuffer parts = device.allocate(8L * m * CudaOps.statsParts(n))) {
                  if (Double.isNaN(statsPass)) {
                    statsPass = timeMs(stream, () -> {
                      if (!tunedLt.linear(m, n, k, CublasLt.dataType(p), a, w, bias16, r, c)) throw new CudaException("cuBLASLt has no algorithm for " + at);
                      if (!ops.layerNormStats(stats, c, m, n, 1e-5f, p)) throw new CudaException("layernorm_stats does not take " + at);
                    });
                    log.printf("[linear] %s %-24s %7.3f ms %6.1f TFLOP/s%n", at, "tuned cuBLASLt + ln stats", statsPass, flop / statsPass / 1e9);
                  }
                  double inEpilogue = timeMs(stream, () -> {
                    if (!sm90.runWithLayerNormParts(p, m, n, k, a, w, bias, r, act, c, parts, ews)) throw new CudaException("the statistics kernel does not take " + at);
                    ops.layerNormStatsCombine(stats, parts, m, n, 1e-5f);
                  });
                  log.printf("[linear] %s %-24s %7.3f ms %6.1f TFLOP/s (%.2fx the statistics pass)%n", at, "sm90 " + label + " + ln stats", inEpilogue,
                      flop / inEpilogue / 1e9, statsPass / inEpilogue);
                }
              }
            }
          }
        }
      }
    }
  }

  /**
   * The transformer GEMMs of the ViT-B/32 image tower and the 77-token text tower at batch 1024,
   * fp16, as the backend runs them on cuBLASLt (in_proj with its bias, out_proj and c_proj with bias
   * and residual, c_fc's GEMM alone before its bias_act pass): the heuristic's first algorithm,
   * the fastest of its 16 (gemmTune=on, the default), and that fastest's neighbourhood searched
   * (gemmTune=search, {@link CublasLt#search}), each with what tuning and the search measured.
   */
  public static void search(CudaDevice device, PrintStream log) {
    // name, M, N, K, bias, residual
    Object[][] shapes = {
      {"image in_proj", 1024 * 50, 2304, 768, true, false}, {"image out_proj", 1024 * 50, 768, 768, true, true},
      {"image c_fc", 1024 * 50, 3072, 768, false, false}, {"image c_proj", 1024 * 50, 768, 3072, true, true},
      {"text in_proj", 1024 * 77, 1536, 512, true, false}, {"text out_proj", 1024 * 77, 512, 512, true, true},
      {"text c_fc", 1024 * 77, 2048, 512, false, false}, {"text c_proj", 1024 * 77, 512, 2048, true, true}};
    Precision p = Precision.FP16;
    try (CudaStream stream = new CudaStream(device);
        DeviceBuffer workspace = device.allocate(32L << 20);
        CublasLt first = new CublasLt(device);
        CublasLt tuned = new CublasLt(device);
        CublasLt searched = new CublasLt(device)) {
      for (CublasLt lt : new CublasLt[] {first, tuned, searched}) lt.bind(stream, workspace);
      tuned.tune(CudaBackend.TUNE_CANDIDATES);
      searched.tune(CudaBackend.TUNE_CANDIDATES);
      searched.search(true);
      for (Object[] sh : shapes) {
        String name = (String) sh[0];
        int m = (int) sh[1], n = (int) sh[2], k = (int) sh[3];
        boolean hasBias = (boolean) sh[4], hasResidual = (boolean) sh[5];
        try (DeviceBuffer a = random(device, (long) m * k, p);
            DeviceBuffer w = random(device, (long) n * k, p);
            DeviceBuffer r = hasResidual ? random(device, (long) m * n, p) : null;
            DeviceBuffer bias = hasBias ? random(device, n, p) : null;
            DeviceBuffer c = device.allocate((long) m * n * 2)) {
          double flop = 2.0 * m * n * k;
          String at = String.format("%-14s %6d x %4d x %4d", name, m, n, k);
          double[] ms = new double[3];
          CublasLt[] libs = {first, tuned, searched};
          for (int i = 0; i < libs.length; i++) {
            CublasLt lt = libs[i];
            int before = lt.tuning().size();
            try {
              ms[i] = timeMs(stream, () -> {
                if (!lt.linear(m, n, k, CublasLt.dataType(p), a, w, bias, r, c)) throw new CudaException("cuBLASLt has no algorithm for " + at);
              });
            } catch (RuntimeException e) {
              ms[i] = Double.NaN;
              log.println("[search] " + at + " failed: " + e);
            }
            if (i == 2) for (String line : lt.tuning().subList(before, lt.tuning().size())) log.println("[search] " + line);
          }
          log.printf("[search] %s: heuristic's first %.4f ms (%.1f TFLOP/s), tuned %.4f (%.1f), searched %.4f (%.1f, %.2fx tuned)%n", at, ms[0],
              flop / ms[0] / 1e9, ms[1], flop / ms[1] / 1e9, ms[2], flop / ms[2] / 1e9, ms[1] / ms[2]);
        }
      }
    }
  }

  /** A device buffer of n random values of size ~1 in precision p (a 1 Mi-value random block, repeated). */
  private static DeviceBuffer random(CudaDevice device, long n, Precision p) {
    java.util.Random rng = new java.util.Random(n);
    int block = (int) Math.min(n, 1 << 20);
    DeviceBuffer buf = device.allocate(n * (p == Precision.FP32 ? 4 : 2));
    if (p == Precision.FP32) {
      float[] f = new float[block];
      for (int i = 0; i < block; i++) f[i] = (float) rng.nextGaussian() * 0.05f;
      for (long at = 0; at < n; at += block) buf.view(4 * at, 4L * Math.min(block, n - at)).upload(Arrays.copyOf(f, (int) Math.min(block, n - at)));
    } else {
      short[] h = new short[block];
      for (int i = 0; i < block; i++) {
        float v = (float) rng.nextGaussian() * 0.05f;
        h[i] = p == Precision.FP16 ? HalfFloats.fp16(v) : HalfFloats.bf16(v);
      }
      for (long at = 0; at < n; at += block) buf.view(2 * at, 2L * Math.min(block, n - at)).upload(Arrays.copyOf(h, (int) Math.min(block, n - at)));
    }
    return buf;
  }

  /** Median milliseconds of one call of {@code call} on {@code stream} ({@link #timings}, 5 calls a timing). */
  private static double timeMs(CudaStream stream, Runnable call) {
    return timings(stream::synchronize, call, 5)[3];
  }

  private static void time(CudaDevice device, String what, Runnable call, int b, int n, int h, boolean causal, PrintStream log) {
    report(what, timings(device::synchronize, call, 10), b, n, h, causal, n, log);
  }

  /**
   * Milliseconds of one call of {@code call}, sorted: 3 warm-up calls, then 7 timings of {@code
   * calls} calls each, {@code sync} waiting for the work before each clock reading.
   */
  private static double[] timings(Runnable sync, Runnable call, int calls) {
    for (int i = 0; i < 3; i++) call.run();
    sync.run();
    double[] ms = new double[7];
    for (int r = 0; r < ms.length; r++) {
      long t0 = System.nanoTime();
      for (int i = 0; i < calls; i++) call.run();
      sync.run();
      ms[r] = (System.nanoTime() - t0) / 1e6 / calls;
    }
    Arrays.sort(ms);
    return ms;
  }

  /** One [attention] line; {@code rows}: the query rows a sequence computes (n, or 1 for the pooled kernel), for the FLOP count. */
  private static void report(String what, double[] ms, int b, int n, int h, boolean causal, int rows, PrintStream log) {
    double flop = 4.0 * b * h * (double) rows * n * 64;
    log.printf("[attention] %-10s B=%4d N=%3d H=%2d%s: %8.3f ms (min %.3f, max %.3f), %6.1f TFLOP/s%n", what, b, n, h,
        causal ? " causal" : "       ", ms[3], ms[0], ms[ms.length - 1], flop / (ms[3] / 1e3) / 1e12);
  }

  private static Result measure(CudaDevice device, Cublas blas, String type, int cudaType, int m, int n, int k) {
    int elem = cudaType == 0 ? 4 : 2;
    try (DeviceBuffer a = device.allocate((long) m * k * elem);
        DeviceBuffer b = device.allocate((long) n * k * elem);
        DeviceBuffer c = device.allocate((long) m * n * elem)) {
      // contents do not matter for timing, but zeroed memory keeps NaNs out of the way
      a.zero();
      b.zero();
      Runnable gemm = cudaType == 0 ? () -> blas.sgemmNT(m, n, k, 1f, a, b, 0f, c) : () -> blas.gemmExNT(m, n, k, cudaType, a, b, c);
      for (int i = 0; i < 3; i++) gemm.run();
      device.synchronize();
      int reps = 7;
      double[] tflops = new double[reps];
      double flop = 2.0 * m * n * k;
      for (int r = 0; r < reps; r++) {
        int inner = 5;
        long t0 = System.nanoTime();
        for (int i = 0; i < inner; i++) gemm.run();
        device.synchronize();
        double s = (System.nanoTime() - t0) / 1e9 / inner;
        tflops[r] = flop / s / 1e12;
      }
      Arrays.sort(tflops);
      return new Result(type, m, n, k, tflops[reps / 2], tflops[0], tflops[reps - 1]);
    }
  }
}
