package dev.jclip.backend.cuda;

import static dev.jclip.backend.cuda.CudaDriver.check;
import static org.bytedeco.cuda.global.cudart.CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
import static org.bytedeco.cuda.global.cudart.CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
import static org.bytedeco.cuda.global.cudart.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE;
import static org.bytedeco.cuda.global.cudart.CU_TENSOR_MAP_INTERLEAVE_NONE;
import static org.bytedeco.cuda.global.cudart.CU_TENSOR_MAP_L2_PROMOTION_L2_256B;
import static org.bytedeco.cuda.global.cudart.CU_TENSOR_MAP_SWIZZLE_128B;
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
 * Two versions: one block a 128x256 tile, and clusters of two blocks sharing (multicasting) the
 * W tile of two neighbouring M tiles, which halves W's traffic out of L2.
 */
public final class Sm90Gemm implements AutoCloseable {
  /** The kernel's tile: rows of A (and C) and rows of W (columns of C) a tile, K a stage. */
  static final int BM = 128, BN = 256, BK = 64;

  /** gemm_sm90.cu's GEMM_SMEM_BYTES: 4 stages of A and W tiles, 8 mbarriers, 1 KB to align the tiles. */
  static final int SHARED_BYTES = 4 * (BM * BK * 2 + BN * BK * 2) + 2 * 4 * 8 + 1024;

  private final CudaModule module;
  private final CUstream_st stream;
  private final int multiprocessors;
  /** How many 2-block clusters of the cluster version can be resident at once (cuOccupancyMaxActiveClusters). */
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
      for (String s : new String[] {"f16", "bf16", "c2_f16", "c2_bf16"}) m.allowSharedMemory("gemm_bias_act_sm90_" + s, SHARED_BYTES);
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
    try (CUlaunchConfig config = new CUlaunchConfig()) {
      config.gridDimX(2).gridDimY(1).gridDimZ(1).blockDimX(384).blockDimY(1).blockDimZ(1).sharedMemBytes(SHARED_BYTES).hStream(stream)
          .attrs(null).numAttrs(0);
      int[] clusters = new int[1];
      check(cuOccupancyMaxActiveClusters(clusters, m.function("gemm_bias_act_sm90_c2_f16"), config),
          "cuOccupancyMaxActiveClusters(gemm_bias_act_sm90_c2_f16)");
      if (clusters[0] < 1) throw new CudaException("gemm_sm90's 2-block clusters do not fit on this GPU (cuOccupancyMaxActiveClusters: 0)");
      return clusters[0];
    }
  }

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
   * null, c [m, n]. The problem must pass {@link #unsupported}. With {@code cluster}, the kernel
   * runs in clusters of two blocks on neighbouring M tiles that load the W tile they share once,
   * half each, multicast to both ({@code gemm_bias_act_sm90_c2_*}); without, one block a tile.
   */
  public void run(Precision precision, int m, int n, int k, DeviceBuffer a, DeviceBuffer w, DeviceBuffer bias, DeviceBuffer residual,
      int act, DeviceBuffer c, boolean cluster) {
    String why = unsupported(precision, n, k, a, w, bias, residual, c);
    if (why != null) throw new IllegalArgumentException("gemm_sm90 cannot take " + m + "x" + n + "x" + k + ": " + why);
    if (cluster && clusterUnavailable != null) throw new CudaException("gemm_sm90's cluster version cannot run here: " + clusterUnavailable);
    if (m <= 0) return;
    int type = precision == Precision.FP16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
    int tilesM = (m + BM - 1) / BM, tilesN = (n + BN - 1) / BN;
    // persistent: one block per SM at most (clusters: pairs of M tiles, as many clusters as fit at once)
    int grid = cluster ? 2 * (int) Math.min((long) tilesN * ((tilesM + 1) / 2), clusterSlots)
        : (int) Math.min((long) tilesN * tilesM, multiprocessors);
    // cuLaunchKernel copies the parameters (into the graph's node as well when capturing): the maps
    // can go when it returns.
    try (CUtensorMap mapA = tensorMap(type, a, m, k, BM); CUtensorMap mapW = tensorMap(type, w, n, k, cluster ? BN / 2 : BN)) {
      module.launch("gemm_bias_act_sm90_" + (cluster ? "c2_" : "") + CudaOps.suffix(precision), new int[] {grid, 1, 1}, new int[] {384, 1, 1},
          SHARED_BYTES, stream, mapA, mapW, c, bias, residual, m, n, k, act);
    }
  }

  /**
   * The TMA map of a row-major [rows, k] 16-bit matrix, read in boxes of {@code boxRows} rows by
   * {@link #BK} columns (128 bytes, the 128-byte swizzle the kernel's wgmma descriptors expect),
   * zero-filled past the matrix.
   */
  private static CUtensorMap tensorMap(int type, DeviceBuffer matrix, int rows, int k, int boxRows) {
    CUtensorMap map = new CUtensorMap(); // C++ new: aligned to 64 bytes as CUtensorMap declares
    try (LongPointer dims = new LongPointer(k, rows);
        LongPointer strides = new LongPointer(1).put(2L * k); // bytes between rows (rank - 1 strides)
        IntPointer box = new IntPointer(BK, boxRows);
        IntPointer elementStrides = new IntPointer(1, 1)) {
      check(cuTensorMapEncodeTiled(map, type, 2, matrix.asPointer(), dims, strides, box, elementStrides, CU_TENSOR_MAP_INTERLEAVE_NONE,
          CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE),
          "cuTensorMapEncodeTiled(" + rows + "x" + k + ", box " + boxRows + "x" + BK + ")");
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
