package dev.jclip.backend.cuda;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jclip.backend.Precision;
import dev.jclip.graph.Executor;
import dev.jclip.graph.Graph;
import dev.jclip.model.ClipConfig;
import dev.jclip.model.ClipGraphs;
import dev.jclip.model.RandomWeights;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * The whole model on the GPU, measured the way the PyTorch peer (scripts/gpu-peer.py) is: a random
 * ViT-B/32 at batch 1, 32, 256 and 1024; images/s, 77-token texts/s, and ImageNet-template
 * prompts/s (the first {@code batch} of classes x templates, in that order, as the peer takes
 * them; jclip cuts each batch after its last end-of-text token, the peer pads to the longest
 * prompt). Each precision, with the host launching every node and replaying a CUDA graph; each
 * call includes copying the inputs in and the features out. Median of 5 after 2 warm-ups. fp16 and
 * bf16 run first; a failing configuration is recorded as an error row and the others still run.
 * Each precision runs with cuBLASLt (bias and residual in the GEMM epilogue, the fused graph) and
 * with the cuBLAS path (separate bias and ADD passes): the rows' {@code "gemm"} field says which.
 */
public final class CudaModelBench {
  private CudaModelBench() {}

  /**
   * @param prompts token ids of the prompts ([P][77], zero padded), or null to skip that column
   * @param json where to write all rows as JSON, or null
   */
  public static void run(CudaDevice device, int[][] prompts, Path json, PrintStream log) throws IOException {
    ClipConfig cfg = RandomWeights.config("ViT-B/32");
    ClipGraphs graphs = new ClipGraphs(cfg, RandomWeights.generate(cfg, 1));
    ObjectMapper mapper = new ObjectMapper();
    ObjectNode root = mapper.createObjectNode().put("device", device.toString()).put("model", "random ViT-B/32");
    ArrayNode rows = root.putArray("results");
    // What copying the pixels in costs by itself (pageable host memory, fp32), per batch size: the
    // per-call times below include it, while the PyTorch peer draws its pixels on the device.
    Map<Integer, Double> uploadMs = new java.util.HashMap<>();
    // The 16-bit modes first: they are the fast path, and a run cut short by its time limit
    // should have measured them. The JSON is rewritten after every row for the same reason, and
    // a failing configuration is recorded and skipped rather than ending the benchmark.
    for (Precision precision : new Precision[] {Precision.FP16, Precision.BF16, Precision.FP32}) {
      // cuBLASLt and cuBLAS back to back (without flash attention), then flash with cuBLASLt
      List<boolean[]> variants = precision == Precision.FP32 ? List.of(new boolean[] {false, true}, new boolean[] {false, false})
          : List.of(new boolean[] {false, true}, new boolean[] {false, false}, new boolean[] {true, true});
      for (boolean[] variant : variants) {
        boolean flash = variant[0], useLt = variant[1];
        String gemm = useLt ? "cublaslt" : "cublas";
        try (CudaBackend backend = new CudaBackend(device, precision, flash, useLt)) {
          for (int batch : new int[] {1, 32, 256, 1024}) {
            float[] pixels = new float[batch * 3 * 224 * 224];
            if (!uploadMs.containsKey(batch)) {
              uploadMs.put(batch, uploadMillis(device, pixels));
              log.printf("[model] host-to-device copy of the pixels at batch %4d: %.3f ms (%.1f GB/s)%n", batch, uploadMs.get(batch),
                  4e-6 * pixels.length / uploadMs.get(batch));
            }
            int[] ids77 = new int[batch * 77];
            for (int b = 0; b < batch; b++) {
              ids77[b * 77] = 49406;
              for (int i = 1; i < 76; i++) ids77[b * 77 + i] = 1000 + i;
              ids77[b * 77 + 76] = 49407;
            }
            for (boolean replay : new boolean[] {false, true}) {
              ObjectNode row = rows.addObject().put("precision", precision.toString()).put("flash_attention", flash).put("gemm", gemm)
                  .put("cuda_graph", replay).put("batch", batch).put("pixels_upload_ms", uploadMs.get(batch));
              double img = perSecond(backend, graphs.image(batch), Map.of("pixels", pixels), batch, replay, log);
              double txt = perSecond(backend, graphs.text(batch, 77), Map.of("tokens", ids77), batch, replay, log);
              row.put("image_per_s", img).put("text77_per_s", txt);
              String line = String.format("[model] ViT-B/32 %s%s %-8s %-10s batch %4d: %9.1f images/s (%.3f ms), %9.1f texts/s (77 tokens)",
                  precision, flash ? "+flash" : "", gemm, replay ? "cuda-graph" : "launches", batch, img, 1e3 * batch / img, txt);
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
                double pr = perSecond(backend, graphs.text(batch, len), Map.of("tokens", cut), batch, replay, log);
                row.put("text_prompt_per_s", pr).put("prompt_len", len);
                line += String.format(", %9.1f prompts/s (cut at %d tokens)", pr, len);
              }
              List<String> unsupported = backend.cublasLtUnsupported();
              if (!unsupported.isEmpty()) {
                // those LINEARs ran on the cuBLAS path: the row does not measure cuBLASLt alone
                row.put("cublaslt_unsupported", String.join("; ", unsupported));
                line += " [cuBLASLt had no algorithm for " + unsupported.size() + " problem(s): " + unsupported + "]";
              }
              log.println(line);
              if (json != null) mapper.writerWithDefaultPrettyPrinter().writeValue(json.toFile(), root);
            }
          }
        } catch (RuntimeException e) {
          rows.addObject().put("precision", precision.toString()).put("flash_attention", flash).put("gemm", gemm).put("error", String.valueOf(e));
          log.println("[model] ViT-B/32 " + precision + (flash ? "+flash" : "") + " " + gemm + " failed: " + e);
          e.printStackTrace(log);
        }
      }
    }
    if (json != null) mapper.writerWithDefaultPrettyPrinter().writeValue(json.toFile(), root);
  }

  /** Median of 5 timed copies of {@code data} into device memory, in milliseconds. */
  private static double uploadMillis(CudaDevice device, float[] data) {
    try (DeviceBuffer d = device.allocate(4L * data.length)) {
      double[] ms = new double[5];
      for (int r = 0; r < ms.length; r++) {
        long t0 = System.nanoTime();
        d.upload(data);
        device.synchronize();
        ms[r] = (System.nanoTime() - t0) / 1e6;
      }
      Arrays.sort(ms);
      return ms[2];
    }
  }

  private static int eot(int[] ids) {
    int best = 0;
    for (int t = 1; t < ids.length; t++) if (ids[t] > ids[best]) best = t;
    return best;
  }

  private static double perSecond(CudaBackend backend, Graph graph, Map<String, ?> inputs, int batch, boolean replay, PrintStream log) {
    try (Executor ex = new Executor(graph, backend, List.of(), replay)) {
      for (int i = 0; i < 2; i++) ex.run(inputs);
      if (replay && !ex.replaying()) {
        log.println("[model] warning: " + graph.nodes().size() + "-node graph at batch " + batch + " runs node by node, its CUDA graph "
            + "capture failed: " + ex.recordingFailure());
      }
      double[] s = new double[5];
      for (int r = 0; r < s.length; r++) {
        long t0 = System.nanoTime();
        ex.run(inputs);
        s[r] = (System.nanoTime() - t0) / 1e9;
      }
      Arrays.sort(s);
      return batch / s[2];
    }
  }
}
