package dev.jclip.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.ReferenceBackend;
import dev.jclip.backend.ReferenceOps;
import dev.jclip.graph.Backend;
import dev.jclip.graph.Executor;
import dev.jclip.graph.GraphBuilder;
import dev.jclip.graph.Op;
import dev.jclip.graph.Value;
import dev.jclip.io.DType;
import dev.jclip.io.Tensor;
import dev.jclip.model.Activation;
import dev.jclip.testing.TestRandom;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.function.Function;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every op on the CPU backend (vector kernels and their scalar twins) against the reference
 * backend, in the style of ggml's test-backend-ops: one small graph per case, fresh random inputs
 * and parameters at CLIP shapes (widths 64..1280, sequences 50, 77, 197, 257, 577, head size 64,
 * causal or not; NCHW convolutions with stride 1/2, padding 0/1, kernels 1/3), relative error ≤
 * 1e-5.
 */
public class CpuBackendOpsTest {
  static final double TOL = 1e-5;
  static final Random RNG = TestRandom.create("CpuBackendOpsTest");
  /** bf16 LINEAR operands: each product carries two roundings of 2⁻⁹, sums of K terms stay near 4e-3. */
  static final double BF16_TOL = 1e-2;
  static CpuBackend vector, scalar, openblas, bf16, matmul, bf16Matmul;
  static ReferenceBackend reference;

  @BeforeAll
  static void open() {
    vector = new CpuBackend(Runtime.getRuntime().availableProcessors(), true);
    scalar = new CpuBackend(Runtime.getRuntime().availableProcessors(), false);
    openblas = new CpuBackend(Runtime.getRuntime().availableProcessors(), true, dev.jclip.backend.Precision.FP32, "openblas");
    bf16 = CpuFeatures.bf16() ? new CpuBackend(Runtime.getRuntime().availableProcessors(), true, dev.jclip.backend.Precision.BF16) : null;
    if (bf16 == null) System.out.println("[ops] this CPU has no bf16 instructions (" + CpuFeatures.describe() + "): bf16 cases skipped");
    // the convolutions' other oneDNN path (im2row and LINEAR's matmul), fp32 and bf16
    matmul = new CpuBackend(Runtime.getRuntime().availableProcessors(), true);
    matmul.convMode("matmul");
    bf16Matmul = CpuFeatures.bf16() ? new CpuBackend(Runtime.getRuntime().availableProcessors(), true, dev.jclip.backend.Precision.BF16) : null;
    if (bf16Matmul != null) bf16Matmul.convMode("matmul");
    reference = new ReferenceBackend();
  }

  @AfterAll
  static void close() {
    vector.close();
    scalar.close();
    openblas.close();
    if (bf16 != null) bf16.close();
    matmul.close();
    if (bf16Matmul != null) bf16Matmul.close();
    reference.close();
  }

  /** One case: a name, the op it tests, and a graph with its random inputs. */
  public record Case(Op op, String name, Function<GraphBuilder, Map<String, Object>> build) {
    @Override
    public String toString() {
      return op + " " + name;
    }
  }

  static Tensor param(String name, long... shape) {
    float[] v = new float[(int) Tensor.numel(shape)];
    for (int i = 0; i < v.length; i++) v[i] = (float) (RNG.nextGaussian() * 0.5);
    return Tensor.ofFloats(name, shape, v);
  }

  static float[] values(int n, double scale) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) v[i] = (float) (RNG.nextGaussian() * scale);
    return v;
  }

  /** Builds a float input {@code name} of {@code shape} and records its random values. */
  static Value in(GraphBuilder g, Map<String, Object> inputs, String name, double scale, int... shape) {
    int n = 1;
    for (int d : shape) n *= d;
    inputs.put(name, values(n, scale));
    return g.input(name, DType.F32, shape);
  }

  public static List<Case> cases() {
    List<Case> c = new ArrayList<>();
    // LINEAR: rows of one image / text / larger sequences, K and N across CLIP's widths
    int[][] linear = {{50, 768, 2304, 0, 1}, {77, 512, 2048, 1, 1}, {197, 64, 256, 2, 1}, {257, 1280, 128, 0, 0}, {154, 1024, 64, 1, 1},
        {3, 768, 512, 2, 0}};
    for (int[] l : linear) {
      Activation act = l[3] == 1 ? Activation.QUICK_GELU : l[3] == 2 ? Activation.GELU : null;
      c.add(new Case(Op.LINEAR, "M=" + l[0] + " K=" + l[1] + " N=" + l[2] + " " + act + (l[4] == 1 ? " bias" : ""), g -> {
        Map<String, Object> m = new LinkedHashMap<>();
        Value x = in(g, m, "x", 1, l[0], l[1]);
        g.output("y", g.linear("lin", x, param("w", l[2], l[1]), l[4] == 1 ? param("b", l[2]) : null, act));
        return m;
      }));
    }
    // LINEAR_RESIDUAL (x · Wᵀ + b + r): out_proj and c_proj shapes, the pooled last block's rows
    int[][] residual = {{50, 768, 768, 1}, {154, 2048, 512, 1}, {3, 3072, 768, 1}, {77, 512, 512, 0}};
    for (int[] l : residual) {
      c.add(new Case(Op.LINEAR_RESIDUAL, "M=" + l[0] + " K=" + l[1] + " N=" + l[2] + (l[3] == 1 ? " bias" : ""), g -> {
        Map<String, Object> m = new LinkedHashMap<>();
        Value x = in(g, m, "x", 1, l[0], l[1]);
        Value r = in(g, m, "r", 2, l[0], l[2]);
        g.output("y", g.linearResidual("lin", x, param("w", l[2], l[1]), l[3] == 1 ? param("b", l[2]) : null, r));
        return m;
      }));
    }
    // LAYER_NORM_LINEAR (act(LayerNorm(x) · Wᵀ + b)): ln_1 -> in_proj, ln_2 -> c_fc, a pooled row, the erf GELU without bias
    int[][] lnLinear = {{50, 768, 2304, 0, 1}, {154, 512, 2048, 1, 1}, {3, 1024, 4096, 1, 1}, {7, 640, 520, 2, 0}};
    for (int[] l : lnLinear) {
      Activation act = l[3] == 1 ? Activation.QUICK_GELU : l[3] == 2 ? Activation.GELU : null;
      c.add(new Case(Op.LAYER_NORM_LINEAR, "M=" + l[0] + " K=" + l[1] + " N=" + l[2] + " " + act + (l[4] == 1 ? " bias" : ""), g -> {
        Map<String, Object> m = new LinkedHashMap<>();
        Value x = in(g, m, "x", 3, l[0], l[1]);
        g.output("y", g.layerNormLinear("lin", x, param("g", l[1]), param("beta", l[1]), 1e-5f, param("w", l[2], l[1]),
            l[4] == 1 ? param("b", l[2]) : null, act));
        return m;
      }));
    }
    for (int[] s : new int[][] {{2, 768, 512}, {5, 1280, 1024}, {1, 64, 64}}) {
      c.add(new Case(Op.MATMUL, s[0] + "x" + s[1] + "x" + s[2], g -> {
        Map<String, Object> m = new LinkedHashMap<>();
        g.output("y", g.matmul("mm", in(g, m, "x", 1, s[0], s[1]), param("w", s[1], s[2])));
        return m;
      }));
    }
    int[][] ln = {{1, 50, 768}, {2, 77, 512}, {1, 197, 64}, {1, 257, 1024}, {1, 577, 1280}, {3, 5, 100}};
    for (int[] s : ln) {
      c.add(new Case(Op.LAYER_NORM, s[0] + "x" + s[1] + "x" + s[2], g -> {
        Map<String, Object> m = new LinkedHashMap<>();
        Value x = in(g, m, "x", 3, s);
        g.output("y", g.layerNorm("ln", x, param("g", s[2]), param("b", s[2]), 1e-5f));
        return m;
      }));
    }
    for (int[] s : new int[][] {{2, 77, 512}, {1, 577, 1024}, {3, 5, 7}}) {
      for (boolean relu : new boolean[] {false, true}) {
        c.add(new Case(Op.ADD, s[0] + "x" + s[1] + "x" + s[2] + (relu ? " relu" : ""), g -> {
          Map<String, Object> m = new LinkedHashMap<>();
          g.output("y", g.add("add", in(g, m, "a", 1, s), in(g, m, "b", 1, s), relu));
          return m;
        }));
      }
    }
    // ATTENTION: batch, tokens, heads, causal, head size (64 in OpenAI's models; open_clip's ViT-H-14 80, ViT-g-14 88, ViT-bigG-14 104)
    int[][] att = {{2, 50, 12, 0, 64}, {1, 77, 8, 1, 64}, {3, 77, 2, 1, 64}, {1, 197, 12, 0, 64}, {1, 257, 4, 0, 64}, {1, 577, 16, 0, 64},
        {3, 13, 1, 1, 64}, {2, 7, 3, 0, 64}, {1, 257, 2, 0, 80}, {2, 77, 3, 1, 88}, {1, 50, 2, 0, 104}, {3, 13, 1, 1, 40}, {1, 17, 2, 0, 72}};
    for (int[] a : att) {
      c.add(new Case(Op.ATTENTION, "B=" + a[0] + " N=" + a[1] + " H=" + a[2] + (a[4] != 64 ? " Dh=" + a[4] : "") + (a[3] == 1 ? " causal" : ""), g -> {
        Map<String, Object> m = new LinkedHashMap<>();
        g.output("y", g.attention("attn", in(g, m, "qkv", 1, a[0], a[1], 3 * a[4] * a[2]), a[2], a[3] == 1));
        return m;
      }));
    }
    for (Activation act : Activation.values()) {
      for (int[] s : new int[][] {{3, 50, 3072}, {7, 13}, {2, 77, 2048}}) {
        c.add(new Case(act == Activation.GELU ? Op.GELU : Op.QUICK_GELU, java.util.Arrays.toString(s), g -> {
          Map<String, Object> m = new LinkedHashMap<>();
          g.output("y", g.activation("act", in(g, m, "x", 3, s), act));
          return m;
        }));
      }
    }
    // PATCH_EMBED: batch, resolution, patch, width
    for (int[] p : new int[][] {{2, 224, 32, 768}, {1, 336, 14, 1024}, {1, 224, 16, 64}}) {
      c.add(new Case(Op.PATCH_EMBED, "B=" + p[0] + " R=" + p[1] + " P=" + p[2] + " D=" + p[3], g -> {
        Map<String, Object> m = new LinkedHashMap<>();
        g.output("y", g.patchEmbed("conv1", in(g, m, "pixels", 1, p[0], 3, p[1], p[1]), param("w", p[3], 3, p[2], p[2])));
        return m;
      }));
    }
    c.add(new Case(Op.CLASS_POS_EMBED, "2x49x768", g -> {
      Map<String, Object> m = new LinkedHashMap<>();
      g.output("y", g.classPosEmbed("cls", in(g, m, "x", 1, 2, 49, 768), param("c", 768), param("p", 50, 768)));
      return m;
    }));
    c.add(new Case(Op.TOKEN_EMBED, "3x77, V=1000, D=512", g -> {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("ids", ids(3, 77, 1000));
      g.output("y", g.tokenEmbed("tok", g.input("ids", DType.I32, 3, 77), param("t", 1000, 512), param("p", 77, 512)));
      return m;
    }));
    c.add(new Case(Op.TAKE_TOKEN, "2x50x768", g -> {
      Map<String, Object> m = new LinkedHashMap<>();
      g.output("y", g.takeToken("take", in(g, m, "x", 1, 2, 50, 768), 0));
      return m;
    }));
    c.add(new Case(Op.EOT_GATHER, "3x77x512", g -> {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("ids", ids(3, 77, 49408));
      Value ids = g.input("ids", DType.I32, 3, 77);
      g.output("y", g.eotGather("eot", in(g, m, "x", 1, 3, 77, 512), ids));
      return m;
    }));
    // ATTENTION_POOLED: batch, tokens, heads, pooled at (-1: the end-of-text token), causal, head size
    for (int[] a : new int[][] {{2, 50, 12, 0, 0, 64}, {3, 77, 8, -1, 1, 64}, {2, 50, 32, 0, 0, 64}, {4, 15, 8, -1, 1, 64}, {2, 33, 2, 16, 1, 64},
        {2, 257, 2, 0, 0, 80}, {3, 77, 2, -1, 1, 104}}) {
      c.add(new Case(Op.ATTENTION_POOLED, "B=" + a[0] + " N=" + a[1] + " H=" + a[2] + (a[5] != 64 ? " Dh=" + a[5] : "")
          + (a[3] < 0 ? " end-of-text" : " at " + a[3]) + (a[4] == 1 ? " causal" : ""), g -> {
        Map<String, Object> m = new LinkedHashMap<>();
        Value ids = null;
        if (a[3] < 0) {
          m.put("ids", ids(a[0], a[1], 49408));
          ids = g.input("ids", DType.I32, a[0], a[1]);
        }
        Value q = in(g, m, "q", 1, a[0], a[5] * a[2]), kv = in(g, m, "kv", 1, a[0], a[1], 2 * a[5] * a[2]);
        g.output("y", g.attentionPooled("pooled", q, kv, ids, Math.max(a[3], 0), a[2], a[4] == 1));
        return m;
      }));
    }
    // CONV2D: batch, channels, size, out channels, kernel, stride, padding, relu, BatchNorm scale
    int[][] conv = {{2, 3, 32, 32, 3, 2, 1, 1, 1}, {1, 64, 56, 64, 3, 1, 1, 1, 1}, {2, 64, 28, 256, 1, 1, 0, 0, 1},
        {1, 32, 15, 16, 3, 2, 0, 1, 0}, {1, 16, 14, 8, 1, 2, 0, 0, 1}, {1, 8, 9, 4, 3, 1, 0, 0, 0},
        // RN50's stem at 224 px, a layer2 3x3 and a layer4 expansion (C 512 -> 2048 at 7x7)
        {1, 3, 224, 32, 3, 2, 1, 1, 1}, {1, 128, 28, 128, 3, 1, 1, 1, 1}, {2, 512, 7, 2048, 1, 1, 0, 0, 1}};
    for (int[] v : conv) {
      c.add(new Case(Op.CONV2D, String.format("B=%d C=%d %dx%d O=%d k=%d s=%d p=%d%s%s", v[0], v[1], v[2], v[2], v[3], v[4], v[5], v[6],
          v[7] == 1 ? " relu" : "", v[8] == 1 ? " scale" : ""), g -> {
        Map<String, Object> m = new LinkedHashMap<>();
        Value x = in(g, m, "x", 1, v[0], v[1], v[2], v[2]);
        Tensor scale = v[8] == 1 ? param("s", v[3]) : null;
        g.output("y", g.conv2d("conv", x, param("w", v[3], v[1], v[4], v[4]), scale, param("b", v[3]), v[5], v[6], v[7] == 1));
        return m;
      }));
    }
    for (int[] s : new int[][] {{2, 64, 56, 2}, {1, 3, 7, 7}, {1, 5, 9, 3}}) {
      c.add(new Case(Op.AVG_POOL, s[0] + "x" + s[1] + "x" + s[2] + "² k=" + s[3], g -> {
        Map<String, Object> m = new LinkedHashMap<>();
        g.output("y", g.avgPool("pool", in(g, m, "x", 1, s[0], s[1], s[2], s[2]), s[3]));
        return m;
      }));
    }
    c.add(new Case(Op.ATTNPOOL_TOKENS, "2x2048x7x7", g -> {
      Map<String, Object> m = new LinkedHashMap<>();
      g.output("y", g.attnPoolTokens("ap", in(g, m, "x", 1, 2, 2048, 7, 7), param("p", 50, 2048)));
      return m;
    }));
    c.add(new Case(Op.L2_NORMALIZE, "5x512", g -> {
      Map<String, Object> m = new LinkedHashMap<>();
      g.output("y", g.l2Normalize("l2", in(g, m, "x", 1, 5, 512)));
      return m;
    }));
    c.add(new Case(Op.COSINE_LOGITS, "3x512 · 7x512", g -> {
      Map<String, Object> m = new LinkedHashMap<>();
      g.output("y", g.cosineLogits("logits", in(g, m, "a", 1, 3, 512), in(g, m, "b", 1, 7, 512), 100f));
      return m;
    }));
    for (int[] s : new int[][] {{3, 7}, {2, 1000}}) {
      c.add(new Case(Op.SOFTMAX, s[0] + "x" + s[1], g -> {
        Map<String, Object> m = new LinkedHashMap<>();
        g.output("y", g.softmax("sm", in(g, m, "x", 5, s)));
        return m;
      }));
    }
    return c;
  }

  /** Token ids with an end-of-text (the largest id) at a random position per sequence. */
  static int[] ids(int b, int len, int vocab) {
    int[] ids = new int[b * len];
    for (int i = 0; i < b; i++) {
      int eot = 1 + RNG.nextInt(len - 1);
      for (int t = 0; t < len; t++) ids[i * len + t] = t < eot ? RNG.nextInt(vocab - 1) : t == eot ? vocab - 1 : 0;
    }
    return ids;
  }

  /** Each case on: vector kernels + oneDNN fp32 (the default), scalar twins, OpenBLAS, and oneDNN bf16. */
  static Stream<Arguments> runs() {
    List<Arguments> a = new ArrayList<>();
    for (Case c : cases()) {
      for (String v : new String[] {"vector", "scalar", "openblas", "bf16"}) a.add(Arguments.of(c, v));
      if (c.op() == Op.CONV2D) for (String v : new String[] {"matmul", "bf16-matmul"}) a.add(Arguments.of(c, v));
    }
    return a.stream();
  }

  @Test
  void everyOpHasCases() {
    Set<Op> covered = EnumSet.noneOf(Op.class);
    for (Case c : cases()) covered.add(c.op());
    for (Op op : Op.values()) if (op != Op.INPUT) assertTrue(covered.contains(op), "no CPU ops test for " + op);
    for (Op op : Op.values()) assertTrue(new CpuBackend(1, false).supports(op));
  }

  @Test
  void vectorKernelsAreUsedWhenTheModuleIsPresent() {
    assertTrue(CpuBackend.vectorAvailable(), "tests run with --add-modules jdk.incubator.vector (pom.xml argLine)");
    assertTrue(vector.vectorized());
    assertTrue(!scalar.vectorized());
  }

  @Test
  void erfMatchesTheReference() {
    for (double x = -7; x <= 7; x += 0.01) assertEquals(ReferenceOps.erf(x), ScalarKernels.erf(x), 1e-9, "erf(" + x + ")");
  }

  @Test
  void tokenIdsOutsideTheVocabularyAreNamed() {
    GraphBuilder g = new GraphBuilder();
    g.output("y", g.tokenEmbed("token_embedding", g.input("ids", DType.I32, 1, 3), param("t", 10, 64), param("p", 3, 64)));
    try (Executor ex = new Executor(g.build(), vector, List.of())) {
      IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
          () -> ex.run(Map.of("ids", new int[] {1, 10, 2})));
      assertTrue(e.getMessage().contains("token_embedding") && e.getMessage().contains("position 1"), e.getMessage());
    }
  }

  @Test
  void vectorExpIsAccurate() {
    int lanes = VectorKernels.lanes();
    float[] x = new float[lanes], y = new float[lanes];
    double worst = 0;
    for (float v = -87f; v < 88f; v += 0.001f * lanes) {
      for (int i = 0; i < lanes; i++) x[i] = v + 0.001f * i;
      VectorKernels.exp(jdk.incubator.vector.FloatVector.fromArray(jdk.incubator.vector.FloatVector.SPECIES_PREFERRED, x, 0)).intoArray(y, 0);
      for (int i = 0; i < lanes; i++) worst = Math.max(worst, Math.abs(y[i] / Math.exp(x[i]) - 1));
    }
    System.out.printf("[ops] vector exp: worst relative error %.2e%n", worst);
    assertTrue(worst < 5e-7, "vector exp relative error " + worst);
  }

  /**
   * The vector attention's two-rows-at-a-time path gives every row the bits of the one-row path
   * (which a range of one row takes), at every CLIP sequence length, causal or not, whatever row
   * the range starts at: so row splits between threads and the end-of-text cut change nothing (heads of
   * 64, and 40, 72, 80, 88 and 104).
   */
  @Test
  void attentionInPairsEqualsOneRowAtATime() {
    VectorKernels k = new VectorKernels();
    int lanes = VectorKernels.lanes();
    int[] headSizes = {64, 80, 104, 40, 88, 72}; // a head size a sequence length, in turn
    int[] lengths = {1, 2, 7, 16, 17, 33, 50, 64, 65, 77, 197, 257};
    for (int ni = 0; ni < lengths.length; ni++) {
      int n = lengths[ni];
      for (boolean causal : new boolean[] {false, true}) {
        int hd = headSizes[(ni + (causal ? 1 : 0)) % headSizes.length];
        int heads = 2, d = heads * hd, np = (n + lanes - 1) / lanes * lanes;
        float[] qkv = new float[2 * n * 3 * d];
        for (int i = 0; i < qkv.length; i++) qkv[i] = (float) (RNG.nextGaussian() * 2);
        float[] kt = new float[hd * np], s = new float[2 * (np + lanes)];
        for (int b = 0; b < 2; b++) {
          for (int h = 0; h < heads; h++) {
            float[] paired = new float[2 * n * d], single = new float[2 * n * d];
            int start = RNG.nextInt(2); // pairs (0,1), (2,3)... or (1,2), (3,4)...
            if (start > 0) k.attention(qkv, paired, b, h, 0, start, n, heads, hd, causal, kt, s);
            k.attention(qkv, paired, b, h, start, n, n, heads, hd, causal, kt, s);
            for (int i = 0; i < n; i++) k.attention(qkv, single, b, h, i, i + 1, n, heads, hd, causal, kt, s);
            for (int i = 0; i < n; i++) {
              int o = (b * n + i) * d + h * hd;
              for (int t = 0; t < hd; t++) {
                assertEquals(Float.floatToRawIntBits(single[o + t]), Float.floatToRawIntBits(paired[o + t]),
                    "n " + n + " Dh " + hd + (causal ? " causal" : "") + " seq " + b + " head " + h + " row " + i + " col " + t);
              }
            }
          }
        }
      }
    }
  }

  /**
   * The convolutions on oneDNN (the convolution primitive, and im2row with the matmul) run a batch in
   * groups of images (a scratch budget): an image's output is the same bits whatever the group and
   * whatever the batch, in fp32 and bf16, for a
   * padded 3x3, a strided one and a 1x1 (whose rows are the NHWC input itself).
   */
  @Test
  void convolutionGroupsAndBatchesGiveTheSameBits() {
    for (String mode : new String[] {"primitive", "matmul"}) convolutionGroupsAndBatchesGiveTheSameBits(mode);
  }

  private static void convolutionGroupsAndBatchesGiveTheSameBits(String mode) {
    int[][] shapes = {{16, 14, 24, 3, 1, 1}, {8, 15, 12, 3, 2, 0}, {32, 7, 48, 1, 1, 0}}; // C, size, O, k, stride, padding
    for (dev.jclip.backend.Precision precision : new dev.jclip.backend.Precision[] {dev.jclip.backend.Precision.FP32, dev.jclip.backend.Precision.BF16}) {
      if (precision == dev.jclip.backend.Precision.BF16 && bf16 == null) continue;
      for (int[] v : shapes) {
        int batch = 5, c = v[0], size = v[1], o = v[2], k = v[3], stride = v[4], pad = v[5];
        Tensor w = param("w", o, c, k, k), scale = param("s", o), bias = param("b", o);
        float[] x = values(batch * c * size * size, 1);
        float[] whole = conv(mode, precision, Long.MAX_VALUE / 4, x, batch, c, size, w, scale, bias, stride, pad);
        int out = whole.length / batch;
        String what = mode + " " + precision + " C=" + c + " " + size + "x" + size + " O=" + o + " k=" + k + " s=" + stride + " p=" + pad;
        for (long budget : new long[] {1, (long) 2 * out * Math.max(c * k * k, o)}) {
          assertTrue(java.util.Arrays.equals(whole, conv(mode, precision, budget, x, batch, c, size, w, scale, bias, stride, pad)),
              what + ": a batch run in groups (budget " + budget + " floats) differs from it run whole");
        }
        for (int b = 0; b < batch; b++) {
          float[] one = conv(mode, precision, Long.MAX_VALUE / 4, java.util.Arrays.copyOfRange(x, b * c * size * size, (b + 1) * c * size * size), 1, c,
              size, w, scale, bias, stride, pad);
          assertTrue(java.util.Arrays.equals(one, java.util.Arrays.copyOfRange(whole, b * out, (b + 1) * out)),
              what + ": image " + b + " alone differs from it in a batch of " + batch);
        }
      }
    }
  }

  private static float[] conv(String mode, dev.jclip.backend.Precision precision, long budget, float[] x, int batch, int c, int size, Tensor w,
      Tensor scale, Tensor bias, int stride, int pad) {
    try (CpuBackend cpu = new CpuBackend(2, true, precision)) {
      cpu.convMode(mode);
      cpu.convRowsFloats(budget);
      GraphBuilder g = new GraphBuilder();
      Value in = g.input("x", DType.F32, batch, c, size, size);
      g.output("y", g.conv2d("conv", in, w, scale, bias, stride, pad, true));
      try (Executor ex = new Executor(g.build(), cpu, List.of())) {
        return ex.run(Map.of("x", x)).get("y");
      }
    }
  }

  @ParameterizedTest(name = "{0} {1}")
  @MethodSource("runs")
  void matchesTheReferenceBackend(Case c, String variant) {
    CpuBackend cpu = switch (variant) {
      case "vector" -> vector;
      case "scalar" -> scalar;
      case "openblas" -> openblas;
      case "matmul" -> matmul;
      case "bf16-matmul" -> bf16Matmul;
      default -> bf16;
    };
    org.junit.jupiter.api.Assumptions.assumeTrue(cpu != null, "no bf16 instructions on this CPU");
    // bf16 rounds the operands of the weight GEMMs (the convolutions' included) only; every other op stays fp32.
    double tol = variant.startsWith("bf16") && (c.op() == Op.LINEAR || c.op() == Op.LINEAR_RESIDUAL || c.op() == Op.LAYER_NORM_LINEAR || c.op() == Op.PATCH_EMBED || c.op() == Op.CONV2D) ? BF16_TOL : TOL;
    GraphBuilder g = new GraphBuilder();
    Map<String, Object> inputs = c.build().apply(g);
    var graph = g.build();
    float[] want, got;
    try (Executor ex = new Executor(graph, reference, List.of())) {
      want = ex.run(inputs).get("y");
    }
    try (Executor ex = new Executor(graph, cpu, List.of())) {
      got = ex.run(inputs).get("y");
      // a second run on the same buffers gives the same answer (no state left behind)
      float[] again = ex.run(inputs).get("y");
      assertTrue(java.util.Arrays.equals(got, again), c + " (" + variant + "): a second run differs");
    }
    double err = ReferenceOps.relativeError(got, want);
    System.out.printf("[ops] %-55s %-8s relative error %.2e%n", c, variant, err);
    for (int i = 0; i < got.length; i++) {
      if (!Float.isFinite(got[i])) throw new AssertionError(c + ": element " + i + " is " + got[i]);
    }
    assertTrue(err <= tol, c + " (" + variant + "): relative error " + err + " > " + tol + firstMismatch(got, want));
  }

  static String firstMismatch(float[] got, float[] want) {
    for (int i = 0; i < got.length; i++) {
      if (Math.abs(got[i] - want[i]) > 1e-4 * Math.max(1, Math.abs(want[i]))) return "; first mismatch at " + i + ": " + got[i] + " vs " + want[i];
    }
    return "";
  }
}
