package dev.jclip.io;

import dev.jclip.model.Activation;
import dev.jclip.model.ClipConfig;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * How long opening a ViT-B/32-sized checkpoint takes once the file is in the page cache: {@code
 * Checkpoint.open} + {@code ClipConfig.infer} (zip directory, unpickling, renaming, shape
 * validation; tensors stay mapped), and separately a full pass over the weight bytes.
 *
 * <p>Run: {@code scripts/bench-checkpoint [FILE]}. Without FILE it writes a synthetic
 * {@code torch.save} checkpoint with ViT-B/32's shapes in float16 (OpenAI's layout, ~300 MB) to
 * the temp folder. Reports the median and the min–max over 15 runs after 3 warm-ups.
 */
public final class CheckpointLoadBenchmark {
  private CheckpointLoadBenchmark() {}

  public static void main(String[] args) throws IOException {
    Path file = args.length > 0 ? Path.of(args[0]) : synthetic();
    long bytes = Files.size(file);
    System.out.printf("checkpoint: %s (%.1f MB)%n", file, bytes / 1e6);
    List<Double> open = new ArrayList<>();
    List<Double> scan = new ArrayList<>();
    for (int run = 0; run < 18; run++) {
      long t0 = System.nanoTime();
      try (Checkpoint ck = Checkpoint.open(file)) {
        ClipConfig.infer(ck);
        long t1 = System.nanoTime();
        long sum = 0;
        for (Tensor t : ck.tensors().values()) {
          ByteBuffer b = t.data();
          for (int i = 0; i + 8 <= b.limit(); i += 8) sum += b.getLong(i);
        }
        long t2 = System.nanoTime();
        if (sum == 42) System.out.print("");
        if (run >= 3) {
          open.add((t1 - t0) / 1e6);
          scan.add((t2 - t1) / 1e6);
        }
      }
    }
    report("open + infer config", open, 0);
    report("read every weight byte", scan, bytes);
  }

  private static void report(String what, List<Double> ms, long bytes) {
    double[] v = ms.stream().mapToDouble(Double::doubleValue).sorted().toArray();
    double median = v[v.length / 2];
    System.out.printf("%-24s median %8.2f ms  (min %.2f, max %.2f, n=%d)%s%n", what, median, v[0], v[v.length - 1], v.length,
        bytes > 0 ? String.format("  %.2f GB/s", bytes / (median / 1e3) / 1e9) : "");
  }

  private static Path synthetic() throws IOException {
    ClipConfig vitB32 = new ClipConfig(ClipConfig.Architecture.VIT, 512, 224, List.of(12), 768, 32, 12, 77, 49408, 512, 8, 12, Activation.QUICK_GELU, "benchmark");
    Map<String, Tensor> sd = new LinkedHashMap<>();
    Random r = new Random(1);
    for (var e : vitB32.expectedShapes().entrySet()) {
      long n = Tensor.numel(e.getValue());
      boolean half = e.getValue().length >= 2 && !e.getKey().contains("positional_embedding");
      ByteBuffer b = ByteBuffer.allocate((int) n * (half ? 2 : 4)).order(ByteOrder.LITTLE_ENDIAN);
      byte[] noise = new byte[b.capacity()];
      r.nextBytes(noise);
      b.put(noise).flip();
      sd.put(e.getKey(), new Tensor(e.getKey(), half ? DType.F16 : DType.F32, e.getValue(), b));
    }
    Path f = Files.createTempFile("jclip-vit-b32-synthetic", ".pt");
    f.toFile().deleteOnExit();
    Files.write(f, TorchSaveWriter.write(sd, "", false));
    System.out.println("wrote a synthetic ViT-B/32 checkpoint: " + sd.size() + " tensors");
    return f;
  }
}
