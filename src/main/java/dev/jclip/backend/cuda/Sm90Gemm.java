package dev.jclip.backend.cuda;

import static dev.jclip.backend.cuda.CudaDriver.check;
import static org.bytedeco.cuda.global.cudart.CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
import static org.bytedeco.cuda.global.cudart.CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
import static org.bytedeco.cuda.global.cudart.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE;
import static org.bytedeco.cuda.global.cudart.CU_TENSOR_MAP_INTERLEAVE_NONE;
import static org.bytedeco.cuda.global.cudart.CU_TENSOR_MAP_L2_PROMOTION_L2_256B;
import static org.bytedeco.cuda.global.cudart.CU_TENSOR_MAP_SWIZZLE_128B;
import static org.bytedeco.cuda.global.cudart.CU_TENSOR_MAP_SWIZZLE_64B;
import static org.bytedeco.cuda.global.cudart.cuOccupancyMaxActiveClusters;
import static org.bytedeco.cuda.global.cudart.cuTensorMapEncodeTiled;

import dev.jclip.backend.Precision;
import org.bytedeco.cuda.cudart.CUlaunchConfig;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.cudart.CUtensorMap;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.LongPointer;

/**
 * {@code C = act(A · Wᵀ + bias) (+ residual)} as one Hopper GEMM: cuda-kernels/gemm_sm90.cu
 * (wgmma and TMA, PTX for sm_90a), with the bias, the activation (0 none, 1 QuickGELU, 2 GELU erf)
 * and the residual in its epilogue and one rounding to fp16/bf16. A LINEAR with an activation is
 * otherwise a cuBLAS GEMM and a bias_act pass over its output (cuBLASLt has no QuickGELU
 * epilogue). sm_90a code runs on compute capability 9.0 only (H100, H200): {@link #available}.
 * Four schedules ({@link Schedule}): both consumer warpgroups on one 128x256 tile, or each on its
 * own 128x128 tiles in turn (ping-pong, so that one's epilogue overlaps the other's mainloop); each
 * also in clusters of two blocks sharing (multicasting) the W tile of two neighbouring M tiles,
 * which halves W's traffic out of L2. The one-block schedules also have TMA-store kernels ({@code
 * *_tma_*}, {@link #run(Precision, int, int, int, DeviceBuffer, DeviceBuffer, DeviceBuffer,
 * DeviceBuffer, int, DeviceBuffer, Schedule, boolean) run} with {@code tmaStore}): the same
 * outputs, staged in shared memory in 64 x 64 chunks and written by the TMA unit while the warps
 * go on, instead of stored from the accumulators' registers. Three more schedules, {@link
 * Schedule#EPILOGUE_WARPS}, {@link Schedule#EPILOGUE_WARPS_16} and {@link
 * Schedule#EPILOGUE_WARPS_16_SPLIT}, hand each 128x256 tile over through shared memory (in fp32, or
 * in 16 bits after the bias; the last with the two consumer warpgroups out of step) to warps that
 * apply the epilogue while the consumers run the next tile's mainloop.
 */
public final class Sm90Gemm implements AutoCloseable {
  /** The kernels' tile rows of A (and C) and K a stage. */
  static final int BM = 128, BK = 64;

  /**
   * How the kernel schedules its tiles (gemm_sm90.cu): each a kernel, its tile's columns, its
   * shared memory (stages of A and W tiles, their mbarriers, 1 KB to align the tiles), and whether
   * it runs in clusters of two blocks that multicast W's tile.
   */
  public enum Schedule {
    /** Both consumer warpgroups on one 128x256 tile, one block a tile; the epilogue does not overlap the tensor cores. */
    COOPERATIVE("gemm_bias_act_sm90_", 256, 4, false),
    /** COOPERATIVE in clusters of two blocks on neighbouring M tiles, W's tile multicast (half from each). */
    COOPERATIVE_CLUSTER("gemm_bias_act_sm90_c2_", 256, 4, true),
    /** Each consumer warpgroup on its own 128x128 tiles, alternately: one's epilogue runs during the other's mainloop. */
    PINGPONG("gemm_bias_act_sm90_pp_", 128, 6, false),
    /** PINGPONG in clusters of two blocks, W's tile multicast. */
    PINGPONG_CLUSTER("gemm_bias_act_sm90_pp_c2_", 128, 6, true),
    /**
     * COOPERATIVE's tiles and wgmma sequence (K in steps of 32, 4 stages), but at a tile's end the
     * consumers stage their fp32 accumulators in shared memory and go on to the next tile's
     * mainloop, while the producer warpgroup's other three warps apply the epilogue and store:
     * the epilogue beside the tensor cores instead of between their tiles. The same bits as
     * COOPERATIVE. With a residual its {@code _res} kernel (the residual read 16 bytes a thread, a
     * step of rows ahead). Launches with C or the residual not 16-byte aligned run COOPERATIVE.
     */
    EPILOGUE_WARPS("gemm_bias_act_sm90_ew_", 256, EW_SHARED_BYTES, false, EW_BK),
    /**
     * EPILOGUE_WARPS with the tile staged in 16 bits ({@code gemm_*_sm90_ew16_*}): the consumers
     * add the bias (and fold a LayerNorm) and round once before staging, which halves the staged
     * tile to 64 KB and leaves room for 6 stages of K 32 instead of 4 (five in flight instead of
     * three); the epilogue warps apply the activation and the residual to the rounded values and
     * round again. Without an activation or a residual (in_proj) the cooperative kernel's bits;
     * with either, within a few units in the last place of them (the second rounding).
     */
    EPILOGUE_WARPS_16("gemm_bias_act_sm90_ew16_", 256, EW16_SHARED_BYTES, false, EW_BK),
    /**
     * EPILOGUE_WARPS_16 with the consumer warpgroups out of step ({@code gemm_*_sm90_ew16s_*}):
     * each hands its half of the tile's rows over on barriers of its own, and the second starts
     * {@link #splitLag} k steps after the first, so that while one stages its half the other's
     * wgmma keep the tensor cores busy (in EPILOGUE_WARPS_16 both hand over at once and the tensor
     * cores wait). The same bits as EPILOGUE_WARPS_16.
     */
    EPILOGUE_WARPS_16_SPLIT("gemm_bias_act_sm90_ew16s_", 256, EW16_SHARED_BYTES, false, EW_BK);

    final String kernel;
    final int bn;
    final int sharedBytes;
    final boolean cluster;
    /** K a stage (the tensor maps' box): 64 with 128-byte swizzle, 32 with 64-byte swizzle. */
    final int bk;

    Schedule(String kernel, int bn, int stages, boolean cluster) {
      this(kernel, bn, stages * (BM * BK * 2 + bn * BK * 2) + 2 * stages * 8 + 1024, cluster, BK); // GEMM_SMEM_BYTES, PP_SMEM_BYTES
    }

    Schedule(String kernel, int bn, int sharedBytes, boolean cluster, int bk) {
      this.kernel = kernel;
      this.bn = bn;
      this.sharedBytes = sharedBytes;
      this.cluster = cluster;
      this.bk = bk;
    }

    /** Whether the schedule has the LayerNorm-folded and TMA-store kernels (the cooperative and ping-pong one-block schedules). */
    boolean hasVariants() {
      return this == COOPERATIVE || this == PINGPONG;
    }

    /** Whether the schedule hands its tiles to epilogue warps (with a residual kernel, a LayerNorm-folded one and a statistics one of its own). */
    public boolean epilogueWarps() {
      return this == EPILOGUE_WARPS || this == EPILOGUE_WARPS_16 || this == EPILOGUE_WARPS_16_SPLIT;
    }

    /** Whether the schedule stages its tiles in 16 bits (the ew16 and ew16s kernels). */
    public boolean staged16() {
      return this == EPILOGUE_WARPS_16 || this == EPILOGUE_WARPS_16_SPLIT;
    }

    /** An epilogue-warps schedule's kernel with a residual (its name prefix). */
    String residualKernel() {
      return kernel + "res_";
    }

    /** An epilogue-warps schedule's kernel with a residual that also writes the LayerNorm statistics' parts (its name prefix). */
    String statsKernel() {
      return kernel + "res_st_";
    }

    /** An epilogue-warps schedule's kernel with a LayerNorm folded in (its name prefix). */
    String layerNormKernel() {
      return kernel.replace("gemm_bias_act_", "gemm_ln_");
    }
  }

  /** The epilogue-warps kernel's K a stage. */
  static final int EW_BK = 32;

  /**
   * The epilogue-warps kernel's shared memory (EW_SMEM_BYTES): 4 stages of A 128x32 and W 256x32
   * (98,304 bytes), the staged 128x256 fp32 tile (131,072), its barriers (1 KB), 1 KB to align.
   */
  static final int EW_SHARED_BYTES = 4 * (BM * EW_BK * 2 + 256 * EW_BK * 2) + BM * 256 * 4 + 1024 + 1024;

  /** The ew16 kernels' shared memory (EW16_SMEM_BYTES): 6 stages (147,456 bytes), the staged 128x256 16-bit tile (65,536), barriers, alignment. */
  static final int EW16_SHARED_BYTES = 6 * (BM * EW_BK * 2 + 256 * EW_BK * 2) + BM * 256 * 2 + 1024 + 1024;

  /**
   * The most k steps the ew16s kernels' second consumer warpgroup may start behind the first: their
   * 6 stages less 2, so that the first still finds stages loaded ahead while the second holds the
   * older ones (the kernel traps above it).
   */
  public static final int MAX_SPLIT_LAG = 4;

  /**
   * The ew16s kernels' lag unless {@link #splitLag(int)} says otherwise: a consumer warpgroup's
   * hand-over is ~320 instructions a thread (ptxas 13.0's SASS of ew16_stage on a tile inside N),
   * plus the last wgmma's wait, about 2 k steps of the other warpgroup's wgmma alone; one more,
   * because a lead longer than the ring allows shortens itself (the leader waits for stages) where
   * a shorter one does not grow.
   */
  public static final int DEFAULT_SPLIT_LAG = 3;

  /**
   * The shared memory of the TMA-store kernels ({@code *_tma_*}, GEMM_TMA_SMEM_BYTES): either
   * schedule's ring of 196,608 bytes, its barriers padded to 1 KB, four 8 KB staging buffers, 1 KB
   * to align; within the 227 KB a block may have on compute capability 9.0.
   */
  static final int TMA_SHARED_BYTES = 196_608 + 1024 + 4 * 8192 + 1024;

  /** Outputs of a TMA-store chunk: 64 rows by 64 columns (the C map's box). */
  static final int TMA_BOX = 64;

  private final CudaModule module;
  private final CUstream_st stream;
  private final int multiprocessors;
  /** How many 2-block clusters of the cluster versions can be resident at once (cuOccupancyMaxActiveClusters, the lower of the two). */
  private final int clusterSlots;
  /** Why the cluster version cannot run here, or null. */
  private final String clusterUnavailable;

  /** Whether {@code device} runs sm_90a code (compute capability 9.0). */
  public static boolean available(CudaDevice device) {
    return "9.0".equals(device.computeCapability());
  }

  /** Loads the kernels on {@code device} (compute capability 9.0); launches go to {@code stream}. */
  public Sm90Gemm(CudaDevice device, CUstream_st stream) {
    if (!available(device)) {
      throw new CudaUnavailableException("gemm_sm90 is Hopper code (sm_90a): " + device + " has compute capability "
          + device.computeCapability() + ", not 9.0", null);
    }
    this.stream = stream;
    this.multiprocessors = device.multiprocessors();
    CudaModule m = device.loadModule("gemm_sm90");
    try {
      for (Schedule sc : Schedule.values()) {
        for (String s : new String[] {"f16", "bf16"}) {
          m.allowSharedMemory(sc.kernel + s, sc.sharedBytes);
          if (sc.epilogueWarps()) {
            m.allowSharedMemory(sc.residualKernel() + s, sc.sharedBytes);
            m.allowSharedMemory(sc.layerNormKernel() + s, sc.sharedBytes);
            m.allowSharedMemory(sc.statsKernel() + s, sc.sharedBytes);
          }
          if (sc.hasVariants()) {
            m.allowSharedMemory(layerNormKernel(sc) + s, sc.sharedBytes);
            m.allowSharedMemory(tmaKernel(sc.kernel) + s, TMA_SHARED_BYTES);
            m.allowSharedMemory(tmaKernel(layerNormKernel(sc)) + s, TMA_SHARED_BYTES);
          }
        }
      }
      int slots;
      String why = null;
      try {
        slots = clusterSlots(m);
      } catch (CudaException e) { // the one-block version does not need it
        slots = 0;
        why = e.getMessage();
      }
      this.clusterSlots = slots;
      this.clusterUnavailable = why;
    } catch (RuntimeException e) {
      m.close();
      throw e;
    }
    this.module = m;
  }

  /**
   * The clusters of two blocks the GPU can hold at once: the persistent grid of the cluster
   * version, so that every cluster is resident (a second wave of a few clusters would double the
   * kernel's time). Each GPC holds an even number of SMs on H100/H200, which makes this half the SMs.
   */
  private int clusterSlots(CudaModule m) {
    int slots = Integer.MAX_VALUE;
    for (Schedule sc : Schedule.values()) {
      if (!sc.cluster) continue;
      try (CUlaunchConfig config = new CUlaunchConfig()) {
        config.gridDimX(2).gridDimY(1).gridDimZ(1).blockDimX(384).blockDimY(1).blockDimZ(1).sharedMemBytes(sc.sharedBytes).hStream(stream)
            .attrs(null).numAttrs(0);
        int[] clusters = new int[1];
        check(cuOccupancyMaxActiveClusters(clusters, m.function(sc.kernel + "f16"), config), "cuOccupancyMaxActiveClusters(" + sc.kernel + "f16)");
        if (clusters[0] < 1) throw new CudaException("gemm_sm90's 2-block clusters do not fit on this GPU (cuOccupancyMaxActiveClusters: 0)");
        slots = Math.min(slots, clusters[0]);
      }
    }
    return slots;
  }

  /**
   * Sets the k steps (0 to {@link #MAX_SPLIT_LAG}) by which {@link Schedule#EPILOGUE_WARPS_16_SPLIT}'s
   * second consumer warpgroup starts behind the first, for launches queued from now on (the
   * outputs do not depend on it; a CUDA graph replays the lag it recorded). A k step is 32 of K;
   * while one warpgroup hands its half of a tile over, the other runs on, so the lag wants to be
   * about as long as the hand-over.
   */
  public void splitLag(int steps) {
    splitLag = checkedSplitLag(steps);
  }

  /** {@code steps} if it is a lag the ew16s kernels take (0 to {@link #MAX_SPLIT_LAG}); else the error that says so. */
  static int checkedSplitLag(int steps) {
    if (steps < 0 || steps > MAX_SPLIT_LAG) throw new IllegalArgumentException("the ew16s lag must be 0 to " + MAX_SPLIT_LAG + " k steps, not " + steps);
    return steps;
  }

  /** The lag {@link #splitLag(int)} set. */
  public int splitLag() {
    return splitLag;
  }

  private int splitLag = DEFAULT_SPLIT_LAG;

  /** The 2-block clusters resident at once (the cluster version's grid at most); 0 when that version cannot run. */
  public int clusterSlots() {
    return clusterSlots;
  }

  /**
   * Why the kernel cannot take this problem, or null when it can: K and N multiples of 8 (TMA's
   * 16-byte row strides), A and W 16-byte aligned, bias 8-byte aligned, C and residual 4-byte
   * aligned, a 16-bit precision.
   */
  public static String unsupported(Precision precision, int n, int k, DeviceBuffer a, DeviceBuffer w, DeviceBuffer bias,
      DeviceBuffer residual, DeviceBuffer c) {
    if (precision == Precision.FP32) return "fp32 (the parity mode stays on cuBLAS without TF32)";
    if (k % 8 != 0) return "K = " + k + " is not a multiple of 8";
    if (n % 8 != 0) return "N = " + n + " is not a multiple of 8";
    if (a.address() % 16 != 0 || w.address() % 16 != 0) return "A or W is not 16-byte aligned";
    if (bias != null && bias.address() % 8 != 0) return "the bias is not 8-byte aligned";
    if (c.address() % 4 != 0 || (residual != null && residual.address() % 4 != 0)) return "C or the residual is not 4-byte aligned";
    return null;
  }

  /**
   * Queues {@code c[m, n] = act(a[m, :] · w[n, :] + bias[n]) (+ residual[m, n])}: a [m, k] and w
   * [n, k] row-major in {@code precision} (fp16 or bf16), bias fp32 [n] or null, residual [m, n] or
   * null, c [m, n], with the kernel of {@code schedule}. The problem must pass {@link #unsupported}.
   */
  public void run(Precision precision, int m, int n, int k, DeviceBuffer a, DeviceBuffer w, DeviceBuffer bias, DeviceBuffer residual,
      int act, DeviceBuffer c, Schedule schedule) {
    run(precision, m, n, k, a, w, bias, residual, act, c, schedule, false);
  }

  /**
   * As {@link #run(Precision, int, int, int, DeviceBuffer, DeviceBuffer, DeviceBuffer, DeviceBuffer,
   * int, DeviceBuffer, Schedule)}; with {@code tmaStore}, the schedule's TMA-store kernel ({@code
   * gemm_bias_act_sm90_tma_*}, {@code gemm_bias_act_sm90_pp_tma_*}: the outputs staged in shared
   * memory and written by the TMA unit; the same values) where it applies ({@link #tmaStore}), else
   * its register-epilogue kernel.
   */
  public void run(Precision precision, int m, int n, int k, DeviceBuffer a, DeviceBuffer w, DeviceBuffer bias, DeviceBuffer residual,
      int act, DeviceBuffer c, Schedule schedule, boolean tmaStore) {
    String why = unsupported(precision, n, k, a, w, bias, residual, c);
    if (why != null) throw new IllegalArgumentException("gemm_sm90 cannot take " + m + "x" + n + "x" + k + ": " + why);
    if (schedule.epilogueWarps() && !epilogueWarps(residual, c)) schedule = Schedule.COOPERATIVE; // the same bits (ew16: within its rounding)
    if (schedule.cluster && clusterUnavailable != null) {
      throw new CudaException("gemm_sm90's cluster versions cannot run here: " + clusterUnavailable);
    }
    if (m <= 0 || n <= 0) return;
    if (schedule.epilogueWarps()) {
      launchEpilogueWarps(schedule, residual == null ? schedule.kernel : schedule.residualKernel(), precision, m, n, k, a, w, c, bias, residual, m, n,
          k, act);
      return;
    }
    int type = mapType(precision);
    int tilesM = (m + BM - 1) / BM, tilesN = (n + schedule.bn - 1) / schedule.bn;
    // persistent: one block per SM at most (clusters: pairs of M tiles, as many clusters as fit at once)
    int grid = schedule.cluster ? 2 * (int) Math.min((long) tilesN * ((tilesM + 1) / 2), clusterSlots)
        : (int) Math.min((long) tilesN * tilesM, multiprocessors);
    // cuLaunchKernel copies the parameters (into the graph's node as well when capturing): the maps
    // can go when it returns.
    try (CUtensorMap mapA = tensorMap(type, a, m, k, BM);
        CUtensorMap mapW = tensorMap(type, w, n, k, schedule.cluster ? schedule.bn / 2 : schedule.bn)) {
      if (tmaStore && tmaStore(schedule, residual, c)) {
        try (CUtensorMap mapC = tensorMap(type, c, m, n, TMA_BOX)) {
          module.launch(tmaKernel(schedule.kernel) + CudaOps.suffix(precision), new int[] {grid, 1, 1}, new int[] {384, 1, 1}, TMA_SHARED_BYTES,
              stream, mapA, mapW, mapC, c, bias, residual, m, n, k, act);
        }
        tmaLaunches++;
        return;
      }
      module.launch(schedule.kernel + CudaOps.suffix(precision), new int[] {grid, 1, 1}, new int[] {384, 1, 1}, schedule.sharedBytes, stream,
          mapA, mapW, c, bias, residual, m, n, k, act);
    }
  }

  /**
   * Whether a launch of {@code schedule} writing {@code c} with {@code residual} can take the
   * TMA-store kernel: a one-block schedule (the cluster schedules have none), no residual (its
   * epilogue reads the residual in the register layout: the TMA kernels would run that path
   * anyway), and C 16-byte aligned (the TMA unit's global addresses). Otherwise the register
   * epilogue runs: the same values.
   */
  public static boolean tmaStore(Schedule schedule, DeviceBuffer residual, DeviceBuffer c) {
    return !schedule.cluster && residual == null && c.address() % 16 == 0;
  }

  /**
   * Queues kernel {@code prefix} (its f16 or bf16 entry) of epilogue-warps schedule {@code ew} on A
   * [m, k] and W [n, k]: grid min(tiles, SMs), the tensor maps in boxes of {@link #EW_BK} with
   * 64-byte swizzle, the schedule's shared memory, then {@code args} (C, bias, residual, M, N, K,
   * act, and the folded LayerNorm's two buffers or the statistics' parts); counts the launch (and
   * by the kernel, the residual and statistics launches).
   */
  private void launchEpilogueWarps(Schedule ew, String prefix, Precision precision, int m, int n, int k, DeviceBuffer a, DeviceBuffer w,
      Object... args) {
    int grid = (int) Math.min((long) ((n + ew.bn - 1) / ew.bn) * ((m + BM - 1) / BM), multiprocessors);
    boolean split = ew == Schedule.EPILOGUE_WARPS_16_SPLIT;
    try (CUtensorMap mapA = tensorMap(mapType(precision), a, m, k, BM, ew.bk);
        CUtensorMap mapW = tensorMap(mapType(precision), w, n, k, ew.bn, ew.bk)) {
      Object[] all = new Object[args.length + (split ? 3 : 2)];
      all[0] = mapA;
      all[1] = mapW;
      System.arraycopy(args, 0, all, 2, args.length);
      if (split) all[all.length - 1] = splitLag; // the ew16s kernels' last parameter
      module.launch(prefix + CudaOps.suffix(precision), new int[] {grid, 1, 1}, new int[] {384, 1, 1}, ew.sharedBytes, stream, all);
    }
    epilogueWarpsLaunches++;
    if (ew.staged16()) epilogueWarps16Launches++;
    if (split) splitLaunches++;
    boolean stats = prefix.equals(ew.statsKernel());
    if (stats || prefix.equals(ew.residualKernel())) epilogueWarpsResidualLaunches++;
    if (stats) epilogueWarpsStatsLaunches++;
  }

  /**
   * Queues the epilogue-warps residual kernel of {@code schedule} ({@link Schedule#epilogueWarps})
   * that also writes each output row's LayerNorm statistics in parts ({@code
   * gemm_bias_act_sm90_ew[16]_res_st_*}): {@code c = act(a · wᵀ + bias) + residual} as {@link #run}
   * computes it with that schedule (the same bits), and
   * {@code part} [m, {@link CudaOps#statsParts}(n)] float pairs, part j of row r the mean of c's
   * stored row r over columns 256 j .. 256 j + 255 and the sum of the squared deviations from it,
   * for {@link CudaOps#layerNormStatsCombine}. False (nothing queued) where the kernel cannot take
   * the launch: C or the residual not 16-byte aligned, or {@code part} not 8-byte aligned or too
   * small; the problem must pass {@link #unsupported} with a residual.
   */
  public boolean runWithLayerNormParts(Precision precision, int m, int n, int k, DeviceBuffer a, DeviceBuffer w, DeviceBuffer bias,
      DeviceBuffer residual, int act, DeviceBuffer c, DeviceBuffer part, Schedule schedule) {
    if (!schedule.epilogueWarps()) throw new IllegalArgumentException("the statistics kernels are the epilogue warps': not " + schedule);
    if (residual == null) throw new IllegalArgumentException("the statistics kernel is the residual one: no residual given");
    String why = unsupported(precision, n, k, a, w, bias, residual, c);
    if (why != null) throw new IllegalArgumentException("gemm_sm90 cannot take " + m + "x" + n + "x" + k + ": " + why);
    if (!epilogueWarps(residual, c) || part.address() % 8 != 0 || part.bytes() < 8L * m * CudaOps.statsParts(n)) return false;
    if (m <= 0 || n <= 0) return true;
    launchEpilogueWarps(schedule, schedule.statsKernel(), precision, m, n, k, a, w, c, bias, residual, m, n, k, act, part);
    return true;
  }

  /** How many launches took the statistics-writing residual kernel ({@link #runWithLayerNormParts}). */
  public long epilogueWarpsStatsLaunches() {
    return epilogueWarpsStatsLaunches;
  }

  private long epilogueWarpsStatsLaunches;

  /** The tensor maps' element type of a 16-bit {@code precision}. */
  private static int mapType(Precision precision) {
    return precision == Precision.FP16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  }

  /**
   * Whether a launch writing {@code c} with {@code residual} (or null) can take the epilogue-warps
   * kernel: C and the residual 16-byte aligned (its 16-byte loads and stores). Otherwise
   * COOPERATIVE runs it: the same bits.
   */
  public static boolean epilogueWarps(DeviceBuffer residual, DeviceBuffer c) {
    return c.address() % 16 == 0 && (residual == null || residual.address() % 16 == 0);
  }

  /** How many of the epilogue-warps launches had a residual (its {@code _res} kernel). */
  public long epilogueWarpsResidualLaunches() {
    return epilogueWarpsResidualLaunches;
  }

  private long epilogueWarpsResidualLaunches;

  /** How many of the epilogue-warps launches took an ew16 or ew16s kernel ({@link Schedule#staged16}). */
  public long epilogueWarps16Launches() {
    return epilogueWarps16Launches;
  }

  private long epilogueWarps16Launches;

  /** How many of the epilogue-warps launches took an ew16s kernel ({@link Schedule#EPILOGUE_WARPS_16_SPLIT}). */
  public long splitLaunches() {
    return splitLaunches;
  }

  private long splitLaunches;

  /** How many launches took the epilogue-warps kernel. */
  public long epilogueWarpsLaunches() {
    return epilogueWarpsLaunches;
  }

  private long epilogueWarpsLaunches;

  /** How many launches took a TMA-store kernel. */
  public long tmaLaunches() {
    return tmaLaunches;
  }

  private long tmaLaunches;

  /**
   * Queues {@code c[m, n] = act(rstd · (a · wᵀ − mean · colsum) + bias)}: a LayerNorm folded into
   * the GEMM ({@code gemm_ln_sm90_*}): {@code a} is the LayerNorm's input x [m, k], {@code w} the
   * LINEAR's weight with each column scaled by the LayerNorm's gamma, {@code colsum} fp32 [n] the
   * sums of w's rows as uploaded, {@code bias} fp32 [n] the LINEAR's bias plus its weight times the
   * LayerNorm's beta, and {@code stats} [m] each row's (mean, rstd) as float pairs ({@link
   * CudaOps#layerNormStats}). The cooperative or ping-pong kernel (a cluster schedule takes its
   * one-block form), or an epilogue-warps one ({@code gemm_ln_sm90_ew[16]_*}, C 16-byte aligned,
   * else the cooperative kernel); act 0 (none), 1 (QuickGELU) or 2 (GELU). The problem must pass {@link
   * #unsupported} with colsum and stats 8-byte aligned.
   */
  public void runLayerNormFolded(Precision precision, int m, int n, int k, DeviceBuffer a, DeviceBuffer w, DeviceBuffer bias, int act,
      DeviceBuffer c, Schedule schedule, DeviceBuffer stats, DeviceBuffer colsum) {
    runLayerNormFolded(precision, m, n, k, a, w, bias, act, c, schedule, stats, colsum, false);
  }

  /**
   * As {@link #runLayerNormFolded(Precision, int, int, int, DeviceBuffer, DeviceBuffer,
   * DeviceBuffer, int, DeviceBuffer, Schedule, DeviceBuffer, DeviceBuffer)}, with the TMA-store
   * kernel ({@code gemm_ln_sm90_tma_*}, {@code gemm_ln_sm90_pp_tma_*}) where {@code tmaStore} asks
   * for it and C is 16-byte aligned.
   */
  public void runLayerNormFolded(Precision precision, int m, int n, int k, DeviceBuffer a, DeviceBuffer w, DeviceBuffer bias, int act,
      DeviceBuffer c, Schedule schedule, DeviceBuffer stats, DeviceBuffer colsum, boolean tmaStore) {
    String why = unsupported(precision, n, k, a, w, bias, null, c);
    if (why == null && (stats.address() % 8 != 0 || colsum.address() % 8 != 0)) why = "the statistics or the column sums are not 8-byte aligned";
    if (why != null) throw new IllegalArgumentException("gemm_ln_sm90 cannot take " + m + "x" + n + "x" + k + ": " + why);
    if (m <= 0 || n <= 0) return;
    if (schedule.epilogueWarps() && epilogueWarps(null, c)) { // else the cooperative kernel: the same bits (ew16: within its rounding)
      launchEpilogueWarps(schedule, schedule.layerNormKernel(), precision, m, n, k, a, w, c, bias, null, m, n, k, act, stats, colsum);
      return;
    }
    Schedule one = switch (schedule) {
      case COOPERATIVE, COOPERATIVE_CLUSTER, EPILOGUE_WARPS, EPILOGUE_WARPS_16, EPILOGUE_WARPS_16_SPLIT -> Schedule.COOPERATIVE;
      case PINGPONG, PINGPONG_CLUSTER -> Schedule.PINGPONG;
    };
    int type = mapType(precision);
    int grid = (int) Math.min((long) ((n + one.bn - 1) / one.bn) * ((m + BM - 1) / BM), multiprocessors);
    try (CUtensorMap mapA = tensorMap(type, a, m, k, BM);
        CUtensorMap mapW = tensorMap(type, w, n, k, one.bn)) {
      if (tmaStore && tmaStore(one, null, c)) {
        try (CUtensorMap mapC = tensorMap(type, c, m, n, TMA_BOX)) {
          module.launch(tmaKernel(layerNormKernel(one)) + CudaOps.suffix(precision), new int[] {grid, 1, 1}, new int[] {384, 1, 1},
              TMA_SHARED_BYTES, stream, mapA, mapW, mapC, c, bias, null, m, n, k, act, stats, colsum);
        }
        tmaLaunches++;
        return;
      }
      module.launch(layerNormKernel(one) + CudaOps.suffix(precision), new int[] {grid, 1, 1}, new int[] {384, 1, 1}, one.sharedBytes, stream,
          mapA, mapW, c, bias, null, m, n, k, act, stats, colsum);
    }
  }

  /** The TMA-store kernel's name prefix of a one-block kernel's: "..._sm90_" → "..._sm90_tma_", "..._sm90_pp_" → "..._sm90_pp_tma_". */
  static String tmaKernel(String prefix) {
    return prefix + "tma_";
  }

  /** The LayerNorm-folded kernel's name prefix of a one-block schedule. */
  private static String layerNormKernel(Schedule schedule) {
    return schedule == Schedule.COOPERATIVE ? "gemm_ln_sm90_" : "gemm_ln_sm90_pp_";
  }

  /**
   * The TMA map of a row-major [rows, k] 16-bit matrix, read in boxes of {@code boxRows} rows by
   * {@link #BK} columns (128 bytes, the 128-byte swizzle the kernel's wgmma descriptors expect),
   * zero-filled past the matrix; for C ({@link #TMA_BOX} rows), the boxes its TMA stores write,
   * clipped at the matrix's edges.
   */
  private static CUtensorMap tensorMap(int type, DeviceBuffer matrix, int rows, int k, int boxRows) {
    return tensorMap(type, matrix, rows, k, boxRows, BK);
  }

  /**
   * As {@link #tensorMap(int, DeviceBuffer, int, int, int)} with boxes {@code bk} columns wide:
   * 64 (128 bytes, 128-byte swizzle) or 32 (64 bytes, 64-byte swizzle: the epilogue-warps kernel's).
   */
  private static CUtensorMap tensorMap(int type, DeviceBuffer matrix, int rows, int k, int boxRows, int bk) {
    CUtensorMap map = new CUtensorMap(); // C++ new: aligned to 64 bytes as CUtensorMap declares
    try (LongPointer dims = new LongPointer(k, rows);
        LongPointer strides = new LongPointer(1).put(2L * k); // bytes between rows (rank - 1 strides)
        IntPointer box = new IntPointer(bk, boxRows);
        IntPointer elementStrides = new IntPointer(1, 1)) {
      check(cuTensorMapEncodeTiled(map, type, 2, matrix.asPointer(), dims, strides, box, elementStrides, CU_TENSOR_MAP_INTERLEAVE_NONE,
          bk == BK ? CU_TENSOR_MAP_SWIZZLE_128B : CU_TENSOR_MAP_SWIZZLE_64B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE),
          "cuTensorMapEncodeTiled(" + rows + "x" + k + ", box " + boxRows + "x" + bk + ")");
      return map;
    } catch (RuntimeException e) {
      map.close();
      throw e;
    }
  }

  @Override
  public void close() {
    module.close();
  }
}
