package dev.jclip.testing;

import dev.jclip.backend.Precision;
import dev.jclip.backend.cuda.CudaDevice;
import dev.jclip.backend.cuda.CudaOps;
import dev.jclip.backend.cuda.DeviceBuffer;
import dev.jclip.backend.cuda.Sm90Gemm;
import java.util.ArrayList;
import java.util.List;

/**
 * Launches each of jclip's hot kernels twice at ViT-B/32's batch-1024 fp16 shapes (gemm_sm90, the
 * fused c_fc, in each of its four schedules, last and on Hopper only) and
 * exits: a short process for a kernel profiler to attach to (scripts/gpu-run.sh runs it under
 * Nsight Compute, {@code ncu}, where the GPU machine allows it), so that the per-kernel metrics
 * (memory throughput, bank conflicts, occupancy) say why a kernel takes the time the model
 * benchmark's profile shows. The values computed are not looked at (the tests check them).
 *
 * <p>Usage: {@code KernelSample} (device 0).
 */
public final class KernelSample {
  private KernelSample() {}

  public static void main(String[] args) {
    Precision p = Precision.FP16;
    int batch = 1024, width = 768, imageTokens = 50, textTokens = 77, textWidth = 512;
    long imageRows = (long) batch * imageTokens, textRows = (long) batch * textTokens;
    try (CudaDevice device = CudaDevice.open(0);
        CudaOps ops = new CudaOps(device, null);
        Sm90Gemm sm90 = Sm90Gemm.available(device) ? new Sm90Gemm(device, null) : null) {
      run(device, ops, sm90, p, batch, width, imageTokens, textTokens, textWidth, imageRows, textRows);
    }
  }

  private static void run(CudaDevice device, CudaOps ops, Sm90Gemm sm90, Precision p, int batch, int width, int imageTokens, int textTokens,
      int textWidth, long imageRows, long textRows) {
    List<DeviceBuffer> buffers = new ArrayList<>();
    try {
      System.out.println("[sample] " + device);
      DeviceBuffer qkv = keep(buffers, device.allocate(2L * textRows * 3 * textWidth));
      DeviceBuffer out = keep(buffers, device.allocate(2L * textRows * 4 * width));
      DeviceBuffer act = keep(buffers, device.allocate(2L * imageRows * 4 * width));
      DeviceBuffer gamma = keep(buffers, device.allocate(4L * width).upload(new float[width]));
      DeviceBuffer beta = keep(buffers, device.allocate(4L * width).upload(new float[width]));
      DeviceBuffer bias = keep(buffers, device.allocate(4L * 4 * width).upload(new float[4 * width]));
      DeviceBuffer pixels = keep(buffers, device.allocate(2L * batch * 3 * 224 * 224));
      DeviceBuffer patches = keep(buffers, device.allocate(2L * batch * 49 * 3 * 32 * 32));
      DeviceBuffer weight = keep(buffers, device.allocate(2L * 4 * width * width).zero());
      out.zero();
      for (int i = 0; i < 2; i++) {
        ops.flashAttention(out, qkv, batch, imageTokens, width / 64, false, p); // image: N = 50, 12 heads
        ops.flashAttention(out, qkv, batch, textTokens, textWidth / 64, true, p); // text: N = 77, 8 heads, causal
        ops.flashAttention(out, qkv, batch, imageTokens, width / 64, false, p, true); // the same, V key by key
        ops.flashAttention(out, qkv, batch, textTokens, textWidth / 64, true, p, true);
        ops.flashAttention(out, qkv, batch, imageTokens, width / 64, false, p, true, true); // V key by key, 4 blocks an SM
        ops.flashAttention(out, qkv, batch, textTokens, textWidth / 64, true, p, true, true);
        ops.flashAttention(out, qkv, batch, textTokens, textWidth / 64, true, p, true, false, true); // text in a fitted block
        ops.layerNorm(out, null, act, null, gamma, beta, imageRows, width, 1e-5f, p, false);
        ops.layerNorm(out, null, act, null, gamma, beta, imageRows, width, 1e-5f, p, true);
        ops.biasAct(act, bias, imageRows, 4 * width, 1, p); // c_fc's bias + QuickGELU
        ops.patchify(patches, pixels, batch, 3, 224, 224, 32, p);
        if (sm90 != null) { // c_fc fused, in each schedule
          for (Sm90Gemm.Schedule sc : Sm90Gemm.Schedule.values()) sm90.run(p, (int) imageRows, 4 * width, width, out, weight, bias, null, 1, act, sc);
        }
      }
      device.synchronize();
      System.out.println("[sample] done");
    } finally {
      for (DeviceBuffer b : buffers) b.close();
    }
  }

  private static DeviceBuffer keep(List<DeviceBuffer> buffers, DeviceBuffer b) {
    buffers.add(b);
    return b;
  }
}
