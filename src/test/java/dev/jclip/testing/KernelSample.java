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
 * kernel beside the opt-in kernels that may replace it; gemm_sm90, the fused c_fc, on its
 * cooperative schedule and its epilogue-warps ones, last and on Hopper only) and
 * exits: a short process for a kernel profiler to attach to (scripts/gpu-run.sh runs it under
 * Nsight Compute, {@code ncu}, where the GPU machine allows it), so that the per-kernel metrics
 * (memory throughput, bank conflicts, occupancy) say why a kernel takes the time the model
 * benchmark's profile shows. The values computed are not looked at (the tests check them).
 *
 * <p>Usage: {@code KernelSample} (device 0) launches them; {@code KernelSample --count} prints how
 * many kernels one of its two iterations launches on device 0 (the profiler's launch skip and
 * count: scripts/gpu-run.sh asks first, so the list below can change without it).
 */
public final class KernelSample {
  private KernelSample() {}

  public static void main(String[] args) {
    boolean count = args.length > 0 && args[0].equals("--count");
    Precision p = Precision.FP16;
    int batch = 1024, width = 768, imageTokens = 50, textTokens = 77, textWidth = 512;
    long imageRows = (long) batch * imageTokens, textRows = (long) batch * textTokens;
    try (CudaDevice device = CudaDevice.open(0);
        CudaOps ops = new CudaOps(device, null);
        Sm90Gemm sm90 = Sm90Gemm.available(device) ? new Sm90Gemm(device, null) : null) {
      List<DeviceBuffer> buffers = new ArrayList<>();
      try {
        DeviceBuffer[] b = count ? new DeviceBuffer[10] : keepAll(device, buffers, batch, width, imageTokens, textRows, textWidth, imageRows);
        List<Runnable> launches = launches(b, ops, sm90, p, batch, width, imageTokens, textTokens, textWidth, imageRows, textRows);
        if (count) {
          System.out.println(launches.size());
          return;
        }
        System.out.println("[sample] " + device + ": " + launches.size() + " kernels, each launched twice");
        for (int i = 0; i < 2; i++) for (Runnable launch : launches) launch.run();
        device.synchronize();
        System.out.println("[sample] done");
      } finally {
        for (DeviceBuffer b : buffers) b.close();
      }
    }
  }

  /** The sample's buffers: qkv, out, act, gamma, beta, bias, pixels, patches, weight, pos. */
  private static DeviceBuffer[] keepAll(CudaDevice device, List<DeviceBuffer> buffers, int batch, int width, int imageTokens, long textRows,
      int textWidth, long imageRows) {
    DeviceBuffer[] b = {
      keep(buffers, device.allocate(2L * textRows * 3 * textWidth)), keep(buffers, device.allocate(2L * textRows * 4 * width)),
      keep(buffers, device.allocate(2L * imageRows * 4 * width)), keep(buffers, device.allocate(4L * width).upload(new float[width])),
      keep(buffers, device.allocate(4L * width).upload(new float[width])), keep(buffers, device.allocate(4L * 4 * width).upload(new float[4 * width])),
      keep(buffers, device.allocate(2L * batch * 3 * 224 * 224)), keep(buffers, device.allocate(2L * batch * 49 * 3 * 32 * 32)),
      keep(buffers, device.allocate(2L * 4 * width * width).zero()), keep(buffers, device.allocate(4L * imageTokens * width).zero())};
    b[1].zero();
    return b;
  }

  /**
   * One kernel launch an entry (each default kernel beside the ones it replaced or may replace), on
   * buffers {@code b} ({@link #keepAll}; all null when the launches are only counted, never run).
   */
  private static List<Runnable> launches(DeviceBuffer[] b, CudaOps ops, Sm90Gemm sm90, Precision p, int batch, int width, int imageTokens,
      int textTokens, int textWidth, long imageRows, long textRows) {
    DeviceBuffer qkv = b[0], out = b[1], act = b[2], gamma = b[3], beta = b[4], bias = b[5], pixels = b[6], patches = b[7], weight = b[8],
        pos = b[9];
    List<Runnable> l = new ArrayList<>();
    // Since session 20 the kernels that runs 6-8 measured and that neither are a default nor may
    // become one (the one-block flash kernels, the plain, warp and shared-memory LayerNorms, the
    // exact bias_act, the plain patchify, gemm_sm90's ping-pong schedule and its cooperative
    // LayerNorm fold) are left out: run 8's Nsight Compute stage took 31 s for 23 kernels, and its
    // results come only when the profiled process ends, so a stage cut at its limit gives none.
    // image: N = 50, 12 heads, pipelined and staged (the default since run 8)
    l.add(() -> ops.flashAttentionPipelined(out, qkv, batch, imageTokens, width / 64, false, p, true, false));
    // the text shape (N = 77, 8 heads, causal) pipelined and staged, in 64-row items (the default) and in 80-row ones (flashRows=fit)
    l.add(() -> ops.flashAttentionPipelined(out, qkv, batch, textTokens, textWidth / 64, true, p, true, false));
    l.add(() -> ops.flashAttentionPipelined(out, qkv, batch, textTokens, textWidth / 64, true, p, true, true));
    // the image shape pipelined and staged with the items walked last to first (flashOrder=reversed)
    l.add(() -> ops.flashAttentionPipelined(out, qkv, batch, imageTokens, width / 64, false, p, true, false, true));
    // the lean tile (flashLean=on) and its base-2 softmax (exp2): the image shape, and the text shape
    // in 80-row items (left out where their tests failed in this run: -Djclip.bench.skip)
    java.util.Set<String> skip = dev.jclip.backend.cuda.CudaModelBench.skipGroups();
    for (CudaOps.FlashLean lean : new CudaOps.FlashLean[] {CudaOps.FlashLean.ON, CudaOps.FlashLean.EXP2}) {
      if (skip.contains("attention") || skip.contains(lean == CudaOps.FlashLean.ON ? "lean" : "lean2")) continue;
      l.add(() -> ops.flashAttentionPipelined(out, qkv, batch, imageTokens, width / 64, false, p, true, false, false, lean));
      l.add(() -> ops.flashAttentionPipelined(out, qkv, batch, textTokens, textWidth / 64, true, p, true, true, false, lean));
    }
    // one query row a sequence (a pooled tower's last attention): the class token, the last text token
    l.add(() -> ops.attentionPooled(act, out, qkv, null, batch, imageTokens, width / 64, 0, false, p));
    l.add(() -> ops.attentionPooled(act, out, qkv, null, batch, textTokens, textWidth / 64, textTokens - 1, true, p));
    for (CudaOps.LayerNormKernel k : new CudaOps.LayerNormKernel[] {
      CudaOps.LayerNormKernel.STREAM, CudaOps.LayerNormKernel.DEEP, CudaOps.LayerNormKernel.DEEP_REVERSED}) {
      l.add(() -> ops.layerNorm(out, null, act, null, gamma, beta, imageRows, width, 1e-5f, p, k));
    }
    l.add(() -> ops.biasAct(act, bias, imageRows, 4 * width, 1, p, true)); // c_fc's bias + QuickGELU with the fast intrinsics
    l.add(() -> ops.biasAct(act, bias, imageRows, 4 * width, 1, p, true, true)); // the same walked last to first
    l.add(() -> ops.patchify(patches, pixels, batch, 3, 224, 224, 32, p, true)); // 8 pixels a thread
    l.add(() -> ops.classPosEmbed(out, patches, bias, pos, batch, imageTokens, width, p, true)); // patch GEMM rows to tokens
    if (sm90 != null) { // c_fc fused on the cooperative schedule: the epilogue-warps kernels' baseline
      l.add(() -> sm90.run(p, (int) imageRows, 4 * width, width, out, weight, bias, null, 1, act, Sm90Gemm.Schedule.COOPERATIVE));
      // the same with the TMA-store epilogue (left out where its tests failed in this run: -Djclip.bench.skip names "tma" or "sm90")
      if (!dev.jclip.backend.cuda.CudaModelBench.tmaStoreSkipped()) {
        l.add(() -> sm90.run(p, (int) imageRows, 4 * width, width, out, weight, bias, null, 1, act, Sm90Gemm.Schedule.COOPERATIVE, true));
      }
      // c_fc on each epilogue-warps kernel whose tests passed (ew; ew16; ew16s, the consumer
      // warpgroups out of step: where the tensor cores wait during the hand-over)
      for (Sm90Gemm.Schedule sc : dev.jclip.backend.cuda.CudaModelBench.epilogueWarpsSchedules()) {
        l.add(() -> sm90.run(p, (int) imageRows, 4 * width, width, out, weight, bias, null, 1, act, sc));
      }
    }
    return l;
  }

  private static DeviceBuffer keep(List<DeviceBuffer> buffers, DeviceBuffer b) {
    buffers.add(b);
    return b;
  }
}
