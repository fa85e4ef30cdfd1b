package dev.jclip.backend.cpu;

import dev.jclip.backend.Precision;
import dev.jclip.graph.Backend;
import dev.jclip.graph.Executor;
import dev.jclip.graph.Node;
import dev.jclip.graph.Op;
import dev.jclip.graph.TensorSpec;
import dev.jclip.model.ClipConfig;
import dev.jclip.model.ClipGraphs;
import dev.jclip.model.RandomWeights;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * Where the CPU backend's time goes, per op, on a random full-geometry model (a development tool,
 * not a test): {@code OpProfile [ViT-B/32] [batch] [fp32|bf16] [image|text] [threads]}.
 */
public final class OpProfile {
  public static void main(String[] args) throws Exception {
    String model = args.length > 0 ? args[0] : "ViT-B/32";
    int batch = args.length > 1 ? Integer.parseInt(args[1]) : 1;
    Precision precision = Precision.parse(args.length > 2 ? args[2] : "fp32");
    boolean text = args.length > 3 && args[3].equals("text");
    int threads = args.length > 4 ? Integer.parseInt(args[4]) : Runtime.getRuntime().availableProcessors();
    ClipConfig cfg = RandomWeights.config(model);
    ClipGraphs graphs = new ClipGraphs(cfg, RandomWeights.generate(cfg, 1));
    Map<Op, long[]> times = new EnumMap<>(Op.class);
    try (CpuBackend cpu = new CpuBackend(threads, true, precision)) {
      Backend timed = new Backend() {
        public String name() { return cpu.name(); }
        public boolean supports(Op op) { return cpu.supports(op); }
        public dev.jclip.graph.Graph prepare(dev.jclip.graph.Graph g, java.util.Set<String> keep) { return cpu.prepare(g, keep); } // as the backend runs it
        public Buffer allocate(long bytes) { return cpu.allocate(bytes); }
        public void write(Buffer dst, TensorSpec spec, Object host) { cpu.write(dst, spec, host); }
        public float[] read(Buffer src, TensorSpec spec) { return cpu.read(src, spec); }
        public void execute(Node n, List<Buffer> in, Buffer out) {
          long t = System.nanoTime();
          cpu.execute(n, in, out);
          long[] a = times.computeIfAbsent(n.op(), o -> new long[2]);
          a[0] += System.nanoTime() - t;
          a[1]++;
        }
        public void close() {}
      };
      Object input;
      String name;
      if (text) {
        int[] ids = new int[batch * 77];
        for (int b = 0; b < batch; b++) {
          for (int t = 0; t < 77; t++) ids[b * 77 + t] = t == 76 ? 49407 : 1 + t;
        }
        input = ids;
        name = "tokens";
      } else {
        float[] px = new float[batch * 3 * cfg.imageResolution() * cfg.imageResolution()];
        java.util.Random r = new java.util.Random(1);
        for (int i = 0; i < px.length; i++) px[i] = (float) r.nextGaussian();
        input = px;
        name = "pixels";
      }
      try (Executor ex = new Executor(text ? graphs.text(batch, 77) : graphs.image(batch), timed, List.of())) {
        // Warm-up runs (-Djclip.profile.warmup, default 3): the attention kernels reach C2 only
        // after some thousands of calls of their per-row methods.
        for (int i = 0, w = Integer.getInteger("jclip.profile.warmup", 3); i < w; i++) ex.run(Map.of(name, input));
        times.clear();
        int runs = Math.max(3, 24 / batch);
        long t0 = System.nanoTime();
        for (int i = 0; i < runs; i++) ex.run(Map.of(name, input));
        double total = (System.nanoTime() - t0) / 1e6 / runs;
        System.out.printf("%s %s batch %d %s: %.1f ms per run (%.2f items/s)%n", model, text ? "text" : "image", batch, precision, total,
            batch * 1000 / total);
        times.entrySet().stream().sorted((a, b) -> Long.compare(b.getValue()[0], a.getValue()[0])).forEach(e ->
            System.out.printf("  %-16s %8.2f ms %5.1f%%  (%d calls)%n", e.getKey(), e.getValue()[0] / 1e6 / runs,
                100 * e.getValue()[0] / 1e6 / runs / total, e.getValue()[1] / runs));
      }
    }
  }
}
