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
 * prompt). Each precision, with the host launching every node and replaying a CUDA graph. Three
 * ways per row (per call and resident: median of 5 after 2 warm-ups; pipelined: median of 3
 * streams of 5 batches, steady state):
 *
 * <ul>
 *   <li>per call ({@code image_per_s}, ...): {@code Executor.run}, copying the inputs in and the
 *       features out, one call after the other;
 *   <li>resident ({@code image_resident_per_s}, ...): inputs written once, then the node loop or
 *       graph replay alone until its work is done: what the peer measures (it draws its pixels on
 *       the device);
 *   <li>pipelined ({@code image_pipelined_per_s}, CUDA-graph rows only): a stream of image
 *       batches through two executors, each batch submitted before the previous one is collected,
 *       so its upload runs while the previous one computes; uploads and reads included.
 * </ul>
 *
 * fp16 and bf16 run first; a failing configuration is recorded as an error row and the others
 * still run.
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
    // What copying the pixels in costs by itself through pageable memory (DeviceBuffer.upload, the
    // path before the pinned staging), per batch size: a yardstick for the per-call rows, whose
    // uploads go through the backend's pinned staging.
    Map<Integer, Double> uploadMs = new java.util.HashMap<>();
    // The 16-bit modes first: they are the fast path, and a run cut short by its time limit
    // should have measured them. The JSON is rewritten after every row for the same reason, and
    // a failing configuration is recorded and skipped rather than ending the benchmark.
    for (Precision precision : new Precision[] {Precision.FP16, Precision.BF16, Precision.FP32}) {
      for (boolean flash : precision == Precision.FP32 ? new boolean[] {false} : new boolean[] {false, true}) {
        try (CudaBackend backend = new CudaBackend(device, precision, flash)) {
          for (int batch : new int[] {1, 32, 256, 1024}) {
            float[] pixels = new float[batch * 3 * 224 * 224];
            if (!uploadMs.containsKey(batch)) {
              uploadMs.put(batch, uploadMillis(device, pixels));
              log.printf("[model] host-to-device copy of the pixels through pageable memory at batch %4d: %.3f ms (%.1f GB/s)%n", batch, uploadMs.get(batch),
                  4e-6 * pixels.length / uploadMs.get(batch));
            }
            int[] ids77 = new int[batch * 77];
            for (int b = 0; b < batch; b++) {
              ids77[b * 77] = 49406;
              for (int i = 1; i < 76; i++) ids77[b * 77 + i] = 1000 + i;
              ids77[b * 77 + 76] = 49407;
            }
            float[] pixels2 = new float[pixels.length]; // the pipelined stream's other batch
            Arrays.fill(pixels2, 0.5f);
            for (boolean replay : new boolean[] {false, true}) {
              ObjectNode row = rows.addObject().put("precision", precision.toString()).put("flash_attention", flash)
                  .put("cuda_graph", replay).put("batch", batch).put("pixels_upload_ms", uploadMs.get(batch));
              Rate img = measure(backend, graphs.image(batch), Map.of("pixels", pixels), batch, replay, log);
              Rate txt = measure(backend, graphs.text(batch, 77), Map.of("tokens", ids77), batch, replay, log);
              row.put("image_per_s", img.perCall()).put("text77_per_s", txt.perCall())
                  .put("image_resident_per_s", img.resident()).put("text77_resident_per_s", txt.resident());
              String line = String.format("[model] ViT-B/32 %s%s %-10s batch %4d: %9.1f images/s (%.3f ms; resident %9.1f), "
                      + "%9.1f texts/s (77 tokens; resident %9.1f)",
                  precision, flash ? "+flash" : "", replay ? "cuda-graph" : "launches", batch, img.perCall(), 1e3 * batch / img.perCall(),
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
              }
              log.println(line);
              if (json != null) mapper.writerWithDefaultPrettyPrinter().writeValue(json.toFile(), root);
            }
          }
        } catch (RuntimeException e) {
          rows.addObject().put("precision", precision.toString()).put("flash_attention", flash).put("error", String.valueOf(e));
          log.println("[model] ViT-B/32 " + precision + (flash ? "+flash" : "") + " failed: " + e);
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

  /** Items per second: one call after the other with uploads, and on resident inputs. */
  private record Rate(double perCall, double resident) {}

  private static Rate measure(CudaBackend backend, Graph graph, Map<String, ?> inputs, int batch, boolean replay, PrintStream log) {
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
      double[] resident = new double[5];
      for (int r = 0; r < resident.length; r++) {
        long t0 = System.nanoTime();
        ex.resubmit();
        ex.await();
        resident[r] = (System.nanoTime() - t0) / 1e9;
        ex.collect(); // the features, outside the timing
      }
      Arrays.sort(s);
      Arrays.sort(resident);
      return new Rate(batch / s[2], batch / resident[2]);
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
