package dev.jclip.testing;

import dev.jclip.backend.Precision;
import dev.jclip.backend.cuda.CudaDevice;
import dev.jclip.backend.cuda.CudaOps;
import dev.jclip.backend.cuda.DeviceBuffer;
import dev.jclip.backend.cuda.Sm90Gemm;
import java.util.ArrayList;
import java.util.List;

/**
 * Launches each of jclip's hot kernels twice at ViT-B/32's batch-1024 fp16 shapes (each default
 * kernel beside the one it replaced; gemm_sm90, the fused c_fc, in its ping-pong and cooperative
 * schedules, last and on Hopper only) and
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
      DeviceBuffer pos = keep(buffers, device.allocate(4L * imageTokens * width).zero());
      out.zero();
      for (int i = 0; i < 2; i++) {
        // 15 launches an iteration on Hopper (13 elsewhere): scripts/gpu-run.sh profiles the second
        ops.flashAttention(out, qkv, batch, imageTokens, width / 64, false, p, false, false); // image: N = 50, 12 heads, 3 blocks an SM
        ops.flashAttention(out, qkv, batch, imageTokens, width / 64, false, p, false, true); // the same, 4 blocks an SM (the default)
        ops.flashAttention(out, qkv, batch, imageTokens, width / 64, false, p, CudaOps.FlashV.LDMATRIX, true, false); // V row-major, ldmatrix
        ops.flashAttentionPipelined(out, qkv, batch, imageTokens, width / 64, false, p); // persistent, the next tile copied meanwhile
        ops.flashAttention(out, qkv, batch, textTokens, textWidth / 64, true, p, false, true); // text: N = 77, 8 heads, causal
        ops.layerNorm(out, null, act, null, gamma, beta, imageRows, width, 1e-5f, p, CudaOps.LayerNormKernel.PLAIN);
        ops.layerNorm(out, null, act, null, gamma, beta, imageRows, width, 1e-5f, p, CudaOps.LayerNormKernel.WARPS);
        ops.layerNorm(out, null, act, null, gamma, beta, imageRows, width, 1e-5f, p, CudaOps.LayerNormKernel.SHARED);
        ops.biasAct(act, bias, imageRows, 4 * width, 1, p, false); // c_fc's bias + QuickGELU, exact
        ops.biasAct(act, bias, imageRows, 4 * width, 1, p, true); // the same with the fast intrinsics
        ops.patchify(patches, pixels, batch, 3, 224, 224, 32, p); // one block a patch row
        ops.patchify(patches, pixels, batch, 3, 224, 224, 32, p, true); // 8 pixels a thread
        ops.classPosEmbed(out, patches, bias, pos, batch, imageTokens, width, p, true); // patch GEMM rows to tokens
        if (sm90 != null) { // c_fc fused, in its two single-block schedules
          for (Sm90Gemm.Schedule sc : new Sm90Gemm.Schedule[] {Sm90Gemm.Schedule.PINGPONG, Sm90Gemm.Schedule.COOPERATIVE}) {
            sm90.run(p, (int) imageRows, 4 * width, width, out, weight, bias, null, 1, act, sc);
          }
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
