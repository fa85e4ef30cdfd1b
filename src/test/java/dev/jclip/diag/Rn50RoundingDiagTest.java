package dev.jclip.diag;

import dev.jclip.backend.ReferenceOps;
import dev.jclip.diag.Emulation.Fmt;
import dev.jclip.graph.Executor;
import dev.jclip.graph.Node;
import dev.jclip.graph.Op;
import dev.jclip.graph.TensorSpec;
import dev.jclip.io.Checkpoint;
import dev.jclip.io.SafetensorsReader;
import dev.jclip.io.Tensor;
import dev.jclip.model.ClipConfig;
import dev.jclip.model.ClipGraphs;
import dev.jclip.testing.Reference;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;
import org.junit.jupiter.api.Test;

/**
 * A diagnosis, not a check of the product: where do rn50-tiny's 16-bit GPU errors come from? Runs
 * the image graph on a CPU emulation of the CUDA backend's numerics (16-bit storage of every
 * activation, round to nearest even, fp32-or-better accumulation) with rounding switched on at
 * chosen points, and prints the per-row relative error of image_features against the golden fp32
 * outputs (its findings: docs/gpu.md, "ResNets in 16 bits"; its output: docs/diag/). It asserts only
 * that the emulation without rounding reproduces the golden features (within 1e-4), so that its
 * numbers mean something. Tagged "diag" and excluded from the default build and from -Pcuda (about
 * 5 minutes): {@code ./mvnw test -Dtest=Rn50RoundingDiagTest -Djclip.excludedGroups=none}.
 */
@org.junit.jupiter.api.Tag("diag")
public class Rn50RoundingDiagTest {

  /** Where the emulation rounds to 16 bits. */
  record Variant(
      String name,
      Fmt fmt,
      boolean weights, // GEMM operand weights (conv, linear) in 16 bits
      boolean inputs, // the pixels cast to 16 bits on upload
      boolean outputs, // every node's output stored in 16 bits
      boolean convPreBias, // the conv GEMM's output stored in 16 bits before the channel pass (bias_channel_act, before session 12)
      boolean attnP, // flash attention's unnormalised probabilities packed to 16 bits for P·V
      Predicate<Node> roundNode, // which nodes' outputs (and conv pre-bias values) are rounded
      boolean fold) { // BatchNorm's scale folded into the conv weights before they are rounded (before session 12)

    /** The rows A..N: the GPU before session 12, which folded BatchNorm into the 16-bit conv weights. */
    Variant(String name, Fmt fmt, boolean weights, boolean inputs, boolean outputs, boolean convPreBias, boolean attnP, Predicate<Node> roundNode) {
      this(name, fmt, weights, inputs, outputs, convPreBias, attnP, roundNode, true);
    }

    static Variant gpu(String name, Fmt f, Predicate<Node> which) {
      return new Variant(name, f, true, true, true, true, true, which);
    }

    /**
     * The GPU since session 12: the checkpoint's conv weights in 16 bits, the GEMM's output in fp32,
     * BatchNorm's scale, the bias and ReLU on it before the one rounding.
     */
    static Variant unfolded(String name, Fmt f, Predicate<Node> which) {
      return new Variant(name, f, true, true, true, false, true, which, false);
    }
  }

  static final Predicate<Node> ALL = n -> true;

  static boolean attnPool(Node n) {
    return n.name().startsWith("visual.attnpool");
  }

  static boolean stem(Node n) {
    return n.name().startsWith("visual.conv") || n.name().equals("visual.stem");
  }

  static Variant[] variants(Fmt f) {
    return new Variant[] {
      Variant.gpu("A  gpu-like (conv rounded pre-bias and post-bias+relu)", f, ALL),
      new Variant("B  as A, conv bias+relu on the fp32 GEMM output", f, true, true, true, false, true, ALL),
      new Variant("C  weights 16-bit only", f, true, false, false, false, false, ALL),
      new Variant("D  as A, weights fp32", f, false, true, true, true, true, ALL),
      new Variant("E  only the conv pre-bias rounding", f, false, false, false, true, false, ALL),
      new Variant("F  as B minus pre-bias: acts only (no weights), no pre-bias", f, false, true, true, false, true, ALL),
      new Variant("G  as A, attnpool in fp32 (trunk 16-bit)", f, true, true, true, true, true, n -> !attnPool(n)),
      new Variant("H  as A, only attnpool 16-bit (trunk fp32, weights 16 only there)", f, true, false, true, true, true, Rn50RoundingDiagTest::attnPool),
      new Variant("I  as A, stem in fp32", f, true, true, true, true, true, n -> !stem(n)),
      new Variant("J  as B, attnpool in fp32", f, true, true, true, false, true, n -> !attnPool(n)),
      new Variant("K  one rounding only: attnpool.tokens (attnpool input)", f, false, false, true, false, false,
          n -> n.name().equals("visual.attnpool.tokens")),
      new Variant("L  one rounding only: visual.stem output", f, false, false, true, false, false, n -> n.name().equals("visual.stem")),
      new Variant("M  as A, the bottlenecks' residual sums (ADD) in fp32", f, true, true, true, true, true, n -> n.op() != Op.ADD),
      new Variant("N  as B, the bottlenecks' residual sums (ADD) in fp32", f, true, true, true, false, true, n -> n.op() != Op.ADD),
      Variant.unfolded("P  gpu-like since session 12: BN unfolded, on the fp32 GEMM out", f, ALL),
      Variant.unfolded("Q  as P, the bottlenecks' residual sums (ADD) in fp32", f, n -> n.op() != Op.ADD),
      new Variant("R  weights 16-bit only, BN unfolded", f, true, false, false, false, false, ALL, false),
    };
  }

  @Test
  void rn50TinyRounding() throws Exception {
    Path dir = Reference.dir().resolve("models/rn50-tiny");
    try (Checkpoint ck = Checkpoint.open(dir.resolve("state_dict.pt"));
        SafetensorsReader golden = SafetensorsReader.open(dir.resolve("golden.safetensors"))) {
      ClipConfig cfg = ClipConfig.infer(ck);
      ClipGraphs graphs = new ClipGraphs(cfg, ck.tensors());
      float[] pixels = golden.tensor("pixels").toFloatArray();
      int images = (int) golden.tensor("pixels").dim(0);
      float[] want = golden.tensor("image_features").toFloatArray();
      int e = cfg.embedDim();

      // fp32 emulation (no rounding): baseline, conv statistics and per-node references
      EmuBackend ref = new EmuBackend(null);
      ref.collectStats = true;
      ref.record = new LinkedHashMap<>();
      float[] base = run(graphs, images, ref, pixels);
      report("fp32 (no rounding)", base, want, images, e);
      org.junit.jupiter.api.Assertions.assertTrue(ReferenceOps.relativeError(base, want) <= 1e-4,
          "the emulation without rounding is not the reference: " + ReferenceOps.relativeError(base, want));
      System.out.println("\n[diag] conv layers, fp32 run: mean|bias|, rms(GEMM out before bias), rms(after bias, before relu),"
          + " ratio mean|bias|/rms(GEMM), ratio rms(GEMM)/rms(after bias)");
      for (String s : ref.stats) System.out.println("[diag]   " + s);
      System.out.println("\n[diag] attnpool attention, fp32 run, query = mean token, per image: over the heads,"
          + " max score range (max-min of q.k/8), mean of max p, min effective keys (1/sum p^2), of " + "keys");
      for (String s : ref.attnStats) System.out.println("[diag]   " + s);
      Map<String, float[]> fp32Nodes = ref.record;

      for (Fmt f : Fmt.values()) {
        System.out.println("\n[diag] ===== " + f + " =====");
        for (Variant v : variants(f)) {
          EmuBackend b = new EmuBackend(v);
          boolean trace = v.name().startsWith("A") || v.name().startsWith("B") || v.name().startsWith("P");
          if (trace) b.record = new LinkedHashMap<>();
          float[] got = run(graphs, images, b, pixels);
          report(f + " " + v.name(), got, want, images, e);
          if (trace) {
            System.out.println("[diag]   per-node relative error vs the fp32 emulation (all images), variant " + v.name().substring(0, 1) + ":");
            for (var en : b.record.entrySet()) {
              float[] r = fp32Nodes.get(en.getKey());
              float[] g = en.getValue();
              StringBuilder per = new StringBuilder();
              int chunk = g.length / images;
              for (int im = 0; im < images; im++) {
                float[] a = java.util.Arrays.copyOfRange(g, im * chunk, (im + 1) * chunk), bb = java.util.Arrays.copyOfRange(r, im * chunk, (im + 1) * chunk);
                per.append(String.format(" %.1e", ReferenceOps.relativeError(a, bb)));
              }
              System.out.printf("[diag]     %-40s %.2e | per image%s%n", en.getKey(), ReferenceOps.relativeError(g, r), per);
            }
          }
        }
      }
    }
  }

  /**
   * The same variants over an ensemble: the pixels plus small seeded noise (sigma 1e-3, which moves
   * the rounding patterns but not the images), each against the fp32 emulation of the same input,
   * so that A vs B is not decided by the rounding luck of 8 rows. {@code -Ddiag.seeds} (6) inputs,
   * {@code -Ddiag.variants} (ABCDGHKPQ) the rows.
   */
  @Test
  void rn50TinyRoundingEnsemble() throws Exception {
    Path dir = Reference.dir().resolve("models/rn50-tiny");
    int seeds = Integer.getInteger("diag.seeds", 6);
    try (Checkpoint ck = Checkpoint.open(dir.resolve("state_dict.pt"));
        SafetensorsReader golden = SafetensorsReader.open(dir.resolve("golden.safetensors"))) {
      ClipConfig cfg = ClipConfig.infer(ck);
      ClipGraphs graphs = new ClipGraphs(cfg, ck.tensors());
      float[] pixels0 = golden.tensor("pixels").toFloatArray();
      int images = (int) golden.tensor("pixels").dim(0);
      int e = cfg.embedDim();
      List<float[]> inputs = new ArrayList<>(), refs = new ArrayList<>();
      for (int sd = 0; sd < seeds; sd++) {
        java.util.Random rnd = new java.util.Random(1234 + sd);
        float[] px = pixels0.clone();
        if (sd > 0) for (int i = 0; i < px.length; i++) px[i] += (float) (1e-3 * rnd.nextGaussian());
        inputs.add(px);
        refs.add(run(graphs, images, new EmuBackend(null), px));
      }
      System.out.println("\n[diag] ensemble: " + seeds + " inputs x " + images + " images, error vs the fp32 emulation of the same input");
      for (Fmt f : Fmt.values()) {
        for (Variant v : variants(f)) {
          if (System.getProperty("diag.variants", "ABCDGHKPQ").indexOf(v.name().charAt(0)) < 0) continue;
          double sq = 0, worst = 0;
          List<Double> all = new ArrayList<>();
          for (int sd = 0; sd < seeds; sd++) {
            float[] got = run(graphs, images, new EmuBackend(v), inputs.get(sd));
            for (int r = 0; r < images; r++) {
              double err = ReferenceOps.relativeError(java.util.Arrays.copyOfRange(got, r * e, (r + 1) * e),
                  java.util.Arrays.copyOfRange(refs.get(sd), r * e, (r + 1) * e));
              sq += err * err;
              worst = Math.max(worst, err);
              all.add(err);
            }
          }
          java.util.Collections.sort(all);
          System.out.printf("[diag] ens %s %-62s rms %.2e median %.2e p90 %.2e max %.2e%n", f, v.name(), Math.sqrt(sq / all.size()),
              all.get(all.size() / 2), all.get((int) (all.size() * 0.9)), worst);
        }
      }
    }
  }

  static float[] run(ClipGraphs graphs, int images, EmuBackend b, float[] pixels) {
    try (Executor ex = new Executor(graphs.image(images), b, List.of())) {
      return ex.run(Map.of("pixels", pixels)).get("image_features");
    }
  }

  static void report(String what, float[] got, float[] want, int rows, int cols) {
    StringBuilder sb = new StringBuilder();
    double worst = 0;
    int worstRow = -1;
    double sq = 0;
    for (int r = 0; r < rows; r++) {
      float[] g = new float[cols], w = new float[cols];
      System.arraycopy(got, r * cols, g, 0, cols);
      System.arraycopy(want, r * cols, w, 0, cols);
      double err = ReferenceOps.relativeError(g, w);
      sq += err * err;
      if (err > worst) {
        worst = err;
        worstRow = r;
      }
      sb.append(String.format(" %.2e", err));
    }
    System.out.printf("[diag] %-62s worst %.2e (row %d) rms %.2e | rows%s%n", what, worst, worstRow, Math.sqrt(sq / rows), sb);
  }

  /** A CPU backend for the ops of a ModifiedResNet image graph, emulating the CUDA backend's 16-bit storage. */
  static final class EmuBackend extends Emulation.Backend {
    final Variant v; // null: fp32, no rounding
    final Map<Tensor, float[]> params = new IdentityHashMap<>();
    boolean collectStats;
    final List<String> stats = new ArrayList<>();
    final List<String> attnStats = new ArrayList<>();
    Map<String, float[]> record;

    EmuBackend(Variant v) {
      this.v = v;
    }

    float r16(float x) {
      return v.fmt.round(x);
    }

    @Override
    public void write(Buffer dst, TensorSpec spec, Object host) {
      float[] d = data(dst), f = (float[]) host;
      for (int i = 0; i < f.length; i++) d[i] = v != null && v.inputs ? r16(f[i]) : f[i];
    }

    /**
     * Biases and positional embeddings stay fp32 (the GPU keeps them fp32); GEMM weights may be
     * rounded, a conv's after its BatchNorm scale is folded in where the variant folds.
     */
    float[] p(Node n, String role, boolean gemmWeight) {
      Tensor t = n.param(role);
      if (t == null) return null;
      return params.computeIfAbsent(t, k -> {
        float[] f = k.toFloatArray();
        if (gemmWeight && folds(n)) {
          float[] scale = n.param("scale").toFloatArray();
          int per = f.length / scale.length;
          for (int i = 0; i < f.length; i++) f[i] = (float) ((double) f[i] * scale[i / per]);
        }
        if (gemmWeight && v != null && v.weights && v.roundNode.test(n)) for (int i = 0; i < f.length; i++) f[i] = r16(f[i]);
        return f;
      });
    }

    /** Whether this conv's BatchNorm scale is folded into its weights (the GPU before session 12). */
    boolean folds(Node n) {
      return v != null && v.fold && n.op() == Op.CONV2D && n.param("scale") != null;
    }

    @Override
    public void execute(Node n, List<Buffer> inputs, Buffer output) {
      float[] y = data(output);
      float[] x = data(inputs.get(0));
      TensorSpec in = n.input(0).spec(), out = n.output().spec();
      boolean rn = v != null && v.outputs && v.roundNode.test(n);
      int total = (int) out.elements();
      switch (n.op()) {
        case CONV2D -> conv(n, x, y, in, out);
        case AVG_POOL -> {
          int batch = in.dim(0), c = in.dim(1), h = in.dim(2), wd = in.dim(3), k = n.intAttr("kernel");
          int oh = out.dim(2), ow = out.dim(3);
          float inv = 1.0f / (k * k);
          for (int bc = 0; bc < batch * c; bc++) {
            for (int oy = 0; oy < oh; oy++) {
              for (int ox = 0; ox < ow; ox++) {
                float s = 0;
                for (int ky = 0; ky < k; ky++) for (int kx = 0; kx < k; kx++) s += x[(bc * h + oy * k + ky) * wd + ox * k + kx];
                y[(bc * oh + oy) * ow + ox] = s * inv;
              }
            }
          }
        }
        case ADD -> {
          float[] b = data(inputs.get(1));
          boolean relu = n.boolAttr("relu");
          for (int i = 0; i < total; i++) {
            float s = x[i] + b[i];
            y[i] = relu ? Math.max(s, 0f) : s;
          }
        }
        case ATTNPOOL_TOKENS -> {
          float[] pos = p(n, "positional", false);
          int batch = in.dim(0), c = in.dim(1), hw = in.dim(2) * in.dim(3), len = hw + 1;
          for (int b = 0; b < batch; b++) {
            for (int ch = 0; ch < c; ch++) {
              float s = 0;
              for (int i = 0; i < hw; i++) s += x[(b * c + ch) * hw + i];
              y[(b * len) * c + ch] = s / hw + pos[ch];
              for (int i = 0; i < hw; i++) y[(b * len + 1 + i) * c + ch] = x[(b * c + ch) * hw + i] + pos[(1 + i) * c + ch];
            }
          }
        }
        case LINEAR -> {
          if (n.attrs().get("activation") != null) throw new IllegalStateException("activation in " + n);
          float[] w = p(n, "weight", true), b = p(n, "bias", false);
          int k = in.dim(-1), m = (int) in.rows(), cols = out.dim(-1);
          float[] xs = new float[m * k];
          System.arraycopy(x, 0, xs, 0, xs.length);
          float[] r = ReferenceOps.linear(xs, w, b, m, cols, k); // bias in the (fp32) epilogue, rounded once below
          System.arraycopy(r, 0, y, 0, r.length);
        }
        case ATTENTION -> attention(n, x, y, in);
        case TAKE_TOKEN -> {
          int batch = in.dim(0), len = in.dim(1), d = in.dim(2), idx = n.intAttr("index");
          for (int b = 0; b < batch; b++) System.arraycopy(x, (b * len + idx) * d, y, b * d, d);
        }
        default -> throw new IllegalStateException("not emulated: " + n);
      }
      if (rn) for (int i = 0; i < total; i++) y[i] = r16(y[i]);
      if (record != null) {
        float[] c = new float[total];
        System.arraycopy(y, 0, c, 0, total);
        record.put(n.name(), c);
      }
    }

    private void conv(Node n, float[] x, float[] y, TensorSpec in, TensorSpec out) {
      float[] w = p(n, "weight", true), bias = p(n, "bias", false), scale = folds(n) ? null : p(n, "scale", false);
      int batch = in.dim(0), c = in.dim(1), h = in.dim(2), wd = in.dim(3);
      int o = out.dim(1), oh = out.dim(2), ow = out.dim(3), plane = oh * ow;
      int k = n.intAttr("kernel"), s = n.intAttr("stride"), pad = n.intAttr("padding");
      boolean relu = n.boolAttr("relu");
      boolean pre = v != null && v.convPreBias && v.roundNode.test(n);
      double[] acc = new double[plane];
      double sumB = 0, sumPre = 0, sumPost = 0, sumDelta = 0;
      for (int b = 0; b < batch; b++) {
        for (int oc = 0; oc < o; oc++) {
          java.util.Arrays.fill(acc, 0);
          for (int ic = 0; ic < c; ic++) {
            int xb = (b * c + ic) * h;
            for (int ky = 0; ky < k; ky++) {
              for (int kx = 0; kx < k; kx++) {
                double wv = w[((oc * c + ic) * k + ky) * k + kx];
                for (int oy = 0; oy < oh; oy++) {
                  int iy = oy * s - pad + ky;
                  if (iy < 0 || iy >= h) continue;
                  int row = (xb + iy) * wd, ar = oy * ow;
                  for (int ox = 0; ox < ow; ox++) {
                    int ix = ox * s - pad + kx;
                    if (ix < 0 || ix >= wd) continue;
                    acc[ar + ox] += x[row + ix] * wv;
                  }
                }
              }
            }
          }
          int base = (b * o + oc) * plane;
          for (int i = 0; i < plane; i++) {
            float g = (float) acc[i]; // the GEMM's fp32 result
            float gs = pre ? r16(g) : g; // what the GEMM stores
            float val = (scale == null ? gs : gs * scale[oc]) + bias[oc]; // the channel pass (fp32 math), stored (rounded) by execute()
            y[base + i] = relu ? Math.max(val, 0f) : val;
            if (collectStats) {
              float scaled = scale == null ? g : g * scale[oc]; // the folded convolution's GEMM output
              sumPre += (double) scaled * scaled;
              float post = scaled + bias[oc];
              sumPost += (double) post * post;
              sumB += Math.abs(bias[oc]);
            }
          }
        }
      }
      if (collectStats) {
        long cnt = (long) batch * o * plane;
        double mb = sumB / cnt, rp = Math.sqrt(sumPre / cnt), rq = Math.sqrt(sumPost / cnt);
        stats.add(String.format("%-32s C%4d->%4d k%d %3dx%-3d  mean|b| %.3e  rms(gemm) %.3e  rms(+b) %.3e  |b|/rms(gemm) %6.2f  rms(gemm)/rms(+b) %6.2f",
            n.name(), c, o, k, oh, ow, mb, rp, rq, mb / rp, rp / rq));
      }
    }

    /** flash_attention.cu: scores in fp32, p = exp(s - max) packed to 16 bits for P·V, l summed from the fp32 p. */
    private void attention(Node n, float[] qkv, float[] out, TensorSpec in) {
      int batch = in.dim(0), len = in.dim(1), heads = n.intAttr("heads");
      boolean causal = n.boolAttr("causal");
      boolean rp = v != null && v.attnP && v.roundNode.test(n);
      float[] p = new float[len];
      for (int b = 0; b < batch; b++) {
        double maxRange = 0, sumMaxP = 0, minEff = Double.MAX_VALUE, maxAbsS = 0;
        for (int hh = 0; hh < heads; hh++) {
          for (int i = 0; i < len; i++) {
            int keys = causal ? i + 1 : len;
            float max = Emulation.scores(qkv, b, hh, i, len, heads, causal, p);
            if (collectStats && i == 0) {
              float min = Float.POSITIVE_INFINITY;
              for (int j = 0; j < keys; j++) {
                min = Math.min(min, p[j]);
                maxAbsS = Math.max(maxAbsS, Math.abs(p[j]));
              }
              maxRange = Math.max(maxRange, max - min);
              double z = 0, z2 = 0;
              for (int j = 0; j < keys; j++) z += Math.exp(p[j] - max);
              for (int j = 0; j < keys; j++) z2 += Math.pow(Math.exp(p[j] - max) / z, 2);
              sumMaxP += 1 / z;
              minEff = Math.min(minEff, 1 / z2);
            }
            Emulation.softmaxTimesV(qkv, out, b, hh, i, len, heads, causal, p, max, rp ? v.fmt : null);
          }
        }
        if (collectStats) {
          attnStats.add(String.format("image %d: max |score| %.1f, max score range %.1f, mean max p %.3f, min effective keys %.2f of %d",
              b, maxAbsS, maxRange, sumMaxP / heads, minEff, len));
        }
      }
    }

    @Override
    public void close() {
      params.clear();
    }
  }
}
