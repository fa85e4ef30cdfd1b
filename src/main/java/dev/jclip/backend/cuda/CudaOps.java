package dev.jclip.backend.cuda;

import org.bytedeco.cuda.cudart.CUstream_st;

/**
 * Launchers for jclip's own kernels (cuda-kernels/*.cu), one method per fused op, with the launch
 * shapes documented in each kernel's header. Buffers hold row-major fp32 tensors.
 */
public final class CudaOps implements AutoCloseable {
  private static final int THREADS = 256;
  private final CudaModule gelu;
  private final CudaModule layerNorm;
  private final CUstream_st stream;

  /** Loads the kernels on {@code device}; launches go to {@code stream} (null: the legacy default stream). */
  public CudaOps(CudaDevice device, CUstream_st stream) {
    this.stream = stream;
    this.gelu = device.loadModule("gelu");
    this.layerNorm = device.loadModule("layernorm");
  }

  /** {@code x = QuickGELU(x + bias)} over a [rows, cols] tensor; bias [cols] may be null. */
  public void biasQuickGelu(DeviceBuffer x, DeviceBuffer bias, long rows, int cols) {
    gelu.launch("bias_quick_gelu_f32", elementwiseGrid(rows * cols), new int[] {THREADS, 1, 1}, 0, stream, x, bias, rows, cols);
  }

  /** {@code x = GELU(x + bias)} (erf form) over a [rows, cols] tensor; bias [cols] may be null. */
  public void biasGelu(DeviceBuffer x, DeviceBuffer bias, long rows, int cols) {
    gelu.launch("bias_gelu_f32", elementwiseGrid(rows * cols), new int[] {THREADS, 1, 1}, 0, stream, x, bias, rows, cols);
  }

  /**
   * {@code s = x + residual; sumOut = s; out = LayerNorm(s)} over [rows, d]; residual and sumOut
   * may be null.
   */
  public void addLayerNorm(
      DeviceBuffer out, DeviceBuffer sumOut, DeviceBuffer x, DeviceBuffer residual, DeviceBuffer gamma, DeviceBuffer beta,
      long rows, int d, float eps) {
    int rowsPerBlock = THREADS / 32;
    long blocks = (rows + rowsPerBlock - 1) / rowsPerBlock;
    if (blocks > Integer.MAX_VALUE) throw new IllegalArgumentException("too many rows for one launch: " + rows);
    layerNorm.launch("add_layernorm_f32", new int[] {(int) blocks, 1, 1}, new int[] {THREADS, 1, 1}, 0, stream,
        out, sumOut, x, residual, gamma, beta, rows, d, eps);
  }

  private static int[] elementwiseGrid(long n) {
    long blocks = Math.min((n + THREADS - 1) / THREADS, 65535L * 4);
    return new int[] {(int) Math.max(blocks, 1), 1, 1};
  }

  @Override
  public void close() {
    try (gelu;
        layerNorm) {
      // closes both modules, even if one close fails
    }
  }
}
