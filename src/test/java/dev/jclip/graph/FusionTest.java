package dev.jclip.graph;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.ReferenceBackend;
import dev.jclip.backend.cpu.CpuBackend;
import dev.jclip.io.DType;
import dev.jclip.io.Tensor;
import dev.jclip.model.Activation;
import dev.jclip.model.ClipConfig;
import dev.jclip.model.ClipGraphs;
import dev.jclip.model.RandomWeights;
import dev.jclip.testing.TestRandom;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * {@link Fusion#linearResidual}: which LINEARs it folds into their residual ADD, what the fused
 * graph looks like (names, parameters, order, outputs), and that the CPU and reference backends
 * give the fused graph exactly the unfused graph's bits. The reference models are checked the
 * same way in {@code dev.jclip.model.FusedGraphParityTest}. And {@link Fusion#pooledAttention}:
 * which attentions it pools, the graph it makes, and that it computes what the graph did.
 */
class FusionTest {
  static final Random RNG = TestRandom.create("FusionTest");

  /** A random ViT-B/32 (full geometry): both residuals of all 12 blocks of each tower fold, and nothing else changes. */
  @Test
  void foldsBothResidualAddsOfEveryBlock() {
    ClipConfig cfg = RandomWeights.config("ViT-B/32");
    ClipGraphs graphs = new ClipGraphs(cfg, RandomWeights.generate(cfg, RNG.nextLong()));
    for (Graph g : List.of(graphs.image(2), graphs.image(2, true), graphs.text(3, 77), graphs.text(1, 9, true))) {
      Graph f = Fusion.linearResidual(g, Set.of());
      assertEquals(24, count(f, Op.LINEAR_RESIDUAL), "two per block, 12 blocks");
      assertEquals(0, count(f, Op.ADD), "every ADD of a ViT tower is a residual");
      assertEquals(count(g, Op.LINEAR) - 24, count(f, Op.LINEAR), "in_proj and c_fc stay");
      assertEquals(g.nodes().size() - 24, f.nodes().size());
      checkFused(g, f);
    }
  }

  /** A captured LINEAR keeps its node (and so its ADD stays an ADD); a captured ADD is fused under its own name. */
  @Test
  void capturedLinearsAreKept() {
    ClipConfig cfg = RandomWeights.config("ViT-B/32");
    ClipGraphs graphs = new ClipGraphs(cfg, RandomWeights.generate(cfg, RNG.nextLong()));
    Graph g = graphs.image(1, true);
    String p = "visual.transformer.resblocks.";
    Graph f = Fusion.linearResidual(g, Set.of(p + "3.attn.out_proj", p + "5", p + "7.mlp.c_fc"));
    assertEquals(23, count(f, Op.LINEAR_RESIDUAL));
    assertEquals(Op.LINEAR, f.node(p + "3.attn.out_proj").op());
    assertEquals(Op.ADD, f.node(p + "3.attn.residual").op());
    assertEquals(Op.LINEAR_RESIDUAL, f.node(p + "5").op());
    assertEquals(p + "5.mlp.c_proj", f.node(p + "5").attrs().get("linear"));
    checkFused(g, f);
  }

  @Test
  void onlyALinearWithoutActivationReadByOneAddWithoutReluIsFolded() {
    Map<String, Object> inputs = new HashMap<>();
    GraphBuilder b = new GraphBuilder();
    Value x = input(b, inputs, "x", 2, 5, 16);
    b.output("gelu+x", b.add("gelu+x", b.linear("gelu", x, w(16, 16), w(16), Activation.QUICK_GELU), x, false));
    Value twice = b.linear("twice", x, w(16, 16), w(16), null);
    b.output("twice+x", b.add("twice+x", x, twice, false));
    b.output("ln", b.layerNorm("ln", twice, w(16), w(16), 1e-5f));
    b.output("relu+x", b.add("relu+x", x, b.linear("relu", x, w(16, 16), w(16), null), true));
    Value out = b.linear("out", x, w(16, 16), w(16), null);
    b.output("out", out).output("out+x", b.add("out+x", x, out, false));
    Value self = b.linear("self", x, w(16, 16), null, null);
    b.output("self+self", b.add("self+self", self, self, false));
    // folded: the residual second, no bias
    b.output("nobias+x", b.add("nobias+x", b.linear("nobias", x, w(16, 16), null, null), x, false));
    // two foldable LINEARs into one ADD: the first is folded, the second becomes its residual
    Value p = b.linear("p", x, w(8, 16), w(8), null), q = b.linear("q", x, w(8, 16), w(8), null);
    b.output("p+q", b.add("p+q", p, q, false));
    Graph g = b.build();

    Graph f = Fusion.linearResidual(g, Set.of());
    assertEquals(2, count(f, Op.LINEAR_RESIDUAL), f.describe());
    assertEquals(Op.LINEAR_RESIDUAL, f.node("nobias+x").op());
    assertEquals(Op.LINEAR_RESIDUAL, f.node("p+q").op());
    assertEquals("p", f.node("p+q").attrs().get("linear"));
    assertEquals(Op.LINEAR, f.node("q").op());
    for (String kept : List.of("gelu+x", "twice+x", "relu+x", "out+x", "self+self")) assertEquals(Op.ADD, f.node(kept).op(), kept);
    checkFused(g, f);
    assertSameResults(g, f, inputs, List.of());
  }

  /**
   * ln_1 → in_proj and ln_2 → c_fc of every block fold into LAYER_NORM_LINEAR (24 in a
   * full-geometry ViT-B/32 tower, whole or pooled, before or after the residuals fold), nothing
   * else (ln_pre, ln_post, ln_final feed no LINEAR alone); a captured LayerNorm stays.
   */
  @Test
  void foldsEachBlocksLayerNormsIntoTheLinearsTheyFeed() {
    ClipConfig cfg = RandomWeights.config("ViT-B/32");
    ClipGraphs graphs = new ClipGraphs(cfg, RandomWeights.generate(cfg, RNG.nextLong()));
    for (Graph g : List.of(graphs.image(2), graphs.image(2, true), graphs.text(3, 77), graphs.text(1, 9, true))) {
      for (Graph start : List.of(g, Fusion.linearResidual(g, Set.of()))) {
        Graph f = Fusion.layerNormLinear(start, Set.of());
        assertEquals(24, count(f, Op.LAYER_NORM_LINEAR), "two per block, 12 blocks");
        assertEquals(count(start, Op.LAYER_NORM) - 24, count(f, Op.LAYER_NORM));
        assertEquals(count(start, Op.LINEAR) - 24, count(f, Op.LINEAR));
        assertEquals(start.nodes().size() - 24, f.nodes().size());
        checkFused(start, f);
      }
    }
    String p = "visual.transformer.resblocks.";
    Graph g = graphs.image(1, true);
    Graph f = Fusion.layerNormLinear(g, Set.of(p + "4.ln_2"));
    assertEquals(23, count(f, Op.LAYER_NORM_LINEAR));
    assertEquals(Op.LAYER_NORM, f.node(p + "4.ln_2").op());
    assertEquals(Op.LINEAR, f.node(p + "4.mlp.c_fc").op());
    assertEquals(Op.LAYER_NORM_LINEAR, f.node(p + "4.attn.in_proj").op());
    checkFused(g, f);
    // a backend folds only the widths its kernels take: here the text tower's 512, not the image tower's 768
    Graph both = graphs.text(2, 77);
    assertEquals(24, count(Fusion.layerNormLinear(both, Set.of(), d -> d == 512), Op.LAYER_NORM_LINEAR));
    assertSame(g, Fusion.layerNormLinear(g, Set.of(), d -> d == 512), "the image tower's 768-wide LayerNorms stay");
  }

  /**
   * {@link Fusion#layerNormStatsProducers} after the CUDA backend's passes on a full-geometry
   * ViT-B/32: every folded LayerNorm's input that a residual LINEAR writes, each block's ln_2 (after
   * out_proj) and every ln_1 but the first block's (after the embeddings, ln_pre in the image
   * tower): 23 with every token kept, 22 pooled (the last block's ln_1 then feeds the pooled
   * gather and the keys and values, not folded); nothing without the folds or without the residuals fused.
   */
  @Test
  void theResidualLinearsBeforeAFoldedLayerNormAreFound() {
    ClipConfig cfg = RandomWeights.config("ViT-B/32");
    ClipGraphs graphs = new ClipGraphs(cfg, RandomWeights.generate(cfg, RNG.nextLong()));
    for (boolean pooled : new boolean[] {true, false}) {
      for (Graph g : List.of(graphs.image(2, !pooled), graphs.text(3, 77, !pooled))) {
        Graph withResiduals = Fusion.linearResidual(pooled ? Fusion.pooledAttention(g, Set.of()) : g, Set.of());
        Graph f = Fusion.layerNormLinear(withResiduals, Set.of());
        Set<Value> producers = Fusion.layerNormStatsProducers(f);
        assertEquals(pooled ? 22 : 23, producers.size());
        Map<Value, Node> writer = new IdentityHashMap<>();
        for (Node n : f.nodes()) writer.put(n.output(), n);
        int ln2 = 0;
        for (Value v : producers) {
          assertEquals(Op.LINEAR_RESIDUAL, writer.get(v).op(), v.name());
          boolean foldedReader = false;
          for (Node n : f.nodes()) foldedReader |= n.op() == Op.LAYER_NORM_LINEAR && n.input(0) == v;
          assertTrue(foldedReader, v.name() + " is read as a folded LayerNorm's x");
          if (writer.get(v).name().endsWith("attn.residual") || writer.get(v).name().endsWith(".pooled")) ln2++;
        }
        assertEquals(12, ln2, "every block's out_proj (the last block's on its pooled rows)");
        assertTrue(Fusion.layerNormStatsProducers(withResiduals).isEmpty(), "no fold, no statistics wanted");
        assertTrue(Fusion.layerNormStatsProducers(Fusion.layerNormLinear(g, Set.of())).isEmpty(), "no residual LINEAR, none");
      }
    }
  }

  /**
   * The passes as the CUDA backend applies them, all three (pooled attention, residuals, then the
   * LayerNorms): on the reference models' pooled graphs the last block's ln_1 feeds the pooled
   * gather and the keys and values, so 23 LayerNorms fold; and the composed graph computes the
   * plain graph's features on the reference backend within float rounding (1e-6).
   */
  @Test
  void thePassesComposeAsTheCudaBackendAppliesThem() throws Exception {
    for (String model : List.of("vit-b32-tiny", "vit-b16-336-tiny")) {
      try (dev.jclip.io.Checkpoint ck = dev.jclip.io.Checkpoint.open(dev.jclip.testing.Reference.dir().resolve("models/" + model + "/state_dict.pt"))) {
        ClipConfig cfg = ClipConfig.infer(ck);
        ClipGraphs graphs = new ClipGraphs(cfg, ck.tensors());
        int layers = cfg.visionLayers().get(0);
        int[] ids = new int[2 * 77];
        for (int i = 0; i < ids.length; i++) ids[i] = RNG.nextInt(1000);
        ids[20] = 49407;
        ids[77 + 76] = 49407;
        float[] pixels = TestRandom.gaussian(RNG, 2 * 3 * cfg.imageResolution() * cfg.imageResolution(), 1);
        for (boolean image : new boolean[] {true, false}) {
          Graph g = image ? graphs.image(2) : graphs.text(2, 77);
          Graph f = Fusion.layerNormLinear(Fusion.linearResidual(Fusion.pooledAttention(g, Set.of()), Set.of()), Set.of());
          int blocks = image ? layers : cfg.transformerLayers();
          assertEquals(2 * blocks - 1, count(f, Op.LAYER_NORM_LINEAR), model + (image ? " image" : " text"));
          assertEquals(1, count(f, Op.ATTENTION_POOLED));
          Map<String, Object> in = image ? Map.of("pixels", pixels) : Map.of("tokens", ids);
          try (ReferenceBackend ref = new ReferenceBackend()) {
            float[] want, got;
            try (Executor ex = new Executor(g, ref, List.of())) {
              want = ex.run(in).values().iterator().next();
            }
            try (Executor ex = new Executor(f, ref, List.of())) {
              got = ex.run(in).values().iterator().next();
            }
            double err = dev.jclip.backend.ReferenceOps.relativeError(got, want);
            assertTrue(err <= 1e-6, model + (image ? " image" : " text") + ": " + err);
          }
        }
      }
    }
  }

  /**
   * Only a LayerNorm read by nothing but a LINEAR's input is folded (not one read twice, a graph
   * output, or one feeding a LINEAR's residual or an ADD); the folded graph computes the same bits
   * on the reference backend (LayerNorm, rounded to float, then the LINEAR), with and without the
   * LINEAR's bias and activation.
   */
  @Test
  void onlyALayerNormReadByALinearAloneIsFoldedAndItsValueIsKept() {
    Map<String, Object> inputs = new HashMap<>();
    GraphBuilder b = new GraphBuilder();
    Value x = input(b, inputs, "x", 2, 5, 16);
    b.output("a", b.linear("a", b.layerNorm("ln_a", x, w(16), w(16), 1e-5f), w(24, 16), w(24), Activation.QUICK_GELU));
    b.output("b", b.linear("b", b.layerNorm("ln_b", x, w(16), w(16), 1e-5f), w(16, 16), null, null));
    b.output("c", b.linear("c", b.layerNorm("ln_c", x, w(16), w(16), 1e-5f), w(8, 16), w(8), Activation.GELU));
    Value twice = b.layerNorm("ln_twice", x, w(16), w(16), 1e-5f);
    b.output("t1", b.linear("t1", twice, w(8, 16), w(8), null)).output("t2", b.linear("t2", twice, w(8, 16), w(8), null));
    Value out = b.layerNorm("ln_out", x, w(16), w(16), 1e-5f);
    b.output("ln_out", out).output("o", b.linear("o", out, w(8, 16), w(8), null));
    b.output("add", b.add("add", b.layerNorm("ln_add", x, w(16), w(16), 1e-5f), x, false));
    Graph g = b.build();
    Graph f = Fusion.layerNormLinear(g, Set.of());
    assertEquals(3, count(f, Op.LAYER_NORM_LINEAR), f.describe());
    for (String folded : List.of("a", "b", "c")) assertEquals(Op.LAYER_NORM_LINEAR, f.node(folded).op(), folded);
    for (String kept : List.of("ln_twice", "ln_out", "ln_add")) assertEquals(Op.LAYER_NORM, f.node(kept).op(), kept);
    checkFused(g, f);
    try (ReferenceBackend ref = new ReferenceBackend()) {
      Map<String, float[]> want, got;
      try (Executor ex = new Executor(g, ref, List.of())) {
        want = ex.run(inputs);
      }
      try (Executor ex = new Executor(f, ref, List.of())) {
        got = ex.run(inputs);
      }
      for (String k : want.keySet()) assertArrayEquals(want.get(k), got.get(k), k);
    }
    assertSame(g, Fusion.layerNormLinear(g, Set.of("ln_a", "ln_b", "ln_c")), "every foldable LayerNorm captured: nothing to fold");
  }

  @Test
  void aGraphWithNothingToFoldIsReturnedAsIs() {
    GraphBuilder b = new GraphBuilder();
    Value x = b.input("x", DType.F32, 3, 8);
    b.output("y", b.add("y", x, b.linear("lin", x, w(8, 8), w(8), Activation.GELU), false));
    Graph g = b.build();
    assertSame(g, Fusion.linearResidual(g, Set.of()));
  }

  @Test
  void linearResidualChecksItsShapes() {
    GraphBuilder b = new GraphBuilder();
    Value x = b.input("x", DType.F32, 3, 8), r = b.input("r", DType.F32, 3, 5);
    var e = assertThrows(IllegalArgumentException.class, () -> b.linearResidual("lin", x, w(4, 8), w(4), r));
    assertTrue(e.getMessage().contains("lin: residual"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> b.linearResidual("lin", x, w(5, 7), w(5), r));
    assertTrue(e.getMessage().contains("parameter weight"), e.getMessage());
  }

  /**
   * An executor on a backend that fuses ({@link Backend#prepare}) runs the fused graph, captures
   * block outputs and kept LINEARs by name, and gives the CPU's unfused bits.
   */
  @Test
  void anExecutorRunsTheGraphItsBackendPrepares() {
    ClipConfig cfg = RandomWeights.config("ViT-B/32");
    ClipGraphs graphs = new ClipGraphs(cfg, RandomWeights.generate(cfg, RNG.nextLong()));
    Graph g = graphs.text(2, 12, true);
    List<String> capture = List.of("transformer.resblocks.0", "transformer.resblocks.4.attn.out_proj", "transformer.resblocks.11");
    int[] ids = new int[2 * 12];
    for (int i = 0; i < ids.length; i++) ids[i] = i % 12 == 11 ? 49407 : RNG.nextInt(49406);
    try (CpuBackend cpu = new CpuBackend(Runtime.getRuntime().availableProcessors(), true);
        Backend fusing = new FusingBackend(cpu);
        Executor plain = new Executor(g, cpu, capture);
        Executor fused = new Executor(g, fusing, capture)) {
      assertSame(g, plain.graph());
      assertEquals(23, count(fused.graph(), Op.LINEAR_RESIDUAL), "all but the captured out_proj");
      Map<String, float[]> want = plain.run(Map.of("tokens", ids)), got = fused.run(Map.of("tokens", ids));
      assertEquals(want.keySet(), got.keySet());
      for (String k : want.keySet()) assertArrayEquals(want.get(k), got.get(k), k);
    }
  }

  // ---- pooled attention ----------------------------------------------------------------------

  /**
   * {@link Fusion#pooledAttention} on the towers Clip runs: the last block's ATTENTION and in_proj
   * of each pooled tower (ViT image: the class token; text: the end-of-text token; ModifiedResNet:
   * the attention pool's mean token) become the pooled rows' gather, their query LINEAR, the keys'
   * and values' LINEAR and one ATTENTION_POOLED under the gather's name, with the split weights as
   * views of in_proj's; graphs keeping every token, and captured nodes, are left alone.
   */
  @Test
  void poolsTheLastAttentionOfEachPooledTower() {
    ClipConfig cfg = RandomWeights.config("ViT-B/32");
    ClipGraphs graphs = new ClipGraphs(cfg, RandomWeights.generate(cfg, RNG.nextLong()));
    String[][] towers = {{"visual.transformer.resblocks.11", "TAKE_TOKEN"}, {"transformer.resblocks.11", "EOT_GATHER"}};
    Graph[] pooled = {graphs.image(2), graphs.text(3, 77)};
    for (int t = 0; t < 2; t++) {
      Graph g = pooled[t], f = Fusion.pooledAttention(g, Set.of());
      String p = towers[t][0];
      assertEquals(count(g, Op.ATTENTION) - 1, count(f, Op.ATTENTION));
      assertEquals(1, count(f, Op.ATTENTION_POOLED));
      assertEquals(count(g, Op.LINEAR) + 1, count(f, Op.LINEAR), "in_proj becomes q and kv");
      assertEquals(g.nodes().size() + 1, f.nodes().size(), "in_proj and the attention out; the gather, q and kv in");
      Node att = f.node(p + ".attn.pooled"), q = f.node(p + ".attn.in_proj.q"), kv = f.node(p + ".attn.in_proj.kv");
      Node rows = f.node(p + ".attn.in_proj.query_rows"), inProj = g.node(p + ".attn.in_proj");
      assertEquals(Op.ATTENTION_POOLED, att.op());
      assertEquals(Op.valueOf(towers[t][1]), rows.op());
      assertEquals(t == 1, att.boolAttr("causal"));
      assertEquals(t == 0 ? 12 : 8, att.intAttr("heads"));
      assertSame(q.output(), att.input(0));
      assertSame(kv.output(), att.input(1));
      assertEquals(t == 1 ? 3 : 2, att.inputs().size(), "the text's ids, for the end-of-text positions");
      assertEquals(inProj.input(0).name(), kv.input(0).name());
      assertSame(rows.output(), q.input(0));
      assertEquals(g.node(p + ".attn.pooled").output().spec(), att.output().spec());
      float[] w = inProj.param("weight").toFloatArray(), b = inProj.param("bias").toFloatArray();
      int d = (int) inProj.param("weight").dim(1);
      assertArrayEquals(java.util.Arrays.copyOfRange(w, 0, d * d), q.param("weight").toFloatArray());
      assertArrayEquals(java.util.Arrays.copyOfRange(w, d * d, 3 * d * d), kv.param("weight").toFloatArray());
      assertArrayEquals(java.util.Arrays.copyOfRange(b, 0, d), q.param("bias").toFloatArray());
      assertArrayEquals(java.util.Arrays.copyOfRange(b, d, 3 * d), kv.param("bias").toFloatArray());
      assertSame(q.param("weight"), Fusion.pooledAttention(g, Set.of()).node(p + ".attn.in_proj.q").param("weight"), "split once per weight");
      assertTrue(f.node(p + ".attn") == null && f.node(p + ".attn.in_proj") == null);
      checkOrder(f);
      assertEquals(g.outputs().keySet(), f.outputs().keySet());
      // captured: nothing changes
      assertSame(g, Fusion.pooledAttention(g, Set.of(p + ".attn")));
      assertSame(g, Fusion.pooledAttention(g, Set.of(p + ".attn.in_proj")));
    }
    for (Graph all : List.of(graphs.image(2, true), graphs.text(2, 9, true))) {
      assertSame(all, Fusion.pooledAttention(all, Set.of()), "every token kept: nothing pooled right after an attention");
    }

    ClipConfig rn = RandomWeights.config("RN50");
    Graph r = new ClipGraphs(rn, RandomWeights.generate(rn, RNG.nextLong())).image(1);
    Graph rf = Fusion.pooledAttention(r, Set.of());
    assertEquals(Op.ATTENTION_POOLED, rf.node("visual.attnpool.mean_token").op());
    assertEquals(0, rf.node("visual.attnpool.mean_token").intAttr("index"));
    assertEquals(0, count(rf, Op.ATTENTION));
    checkOrder(rf);
  }

  /**
   * The pooled graph computes what the graph did, on the reference backend (in double: within
   * float rounding, 1e-6) and the CPU backend (float sums in another order: 1e-5): a qkv LINEAR,
   * attention (causal or not) and the class token or each sequence's end-of-text row, at CLIP's
   * head size, for end-of-text tokens at the first, a middle and the last position.
   */
  @Test
  void pooledAttentionComputesWhatTheGraphDid() {
    int batch = 5, n = 13, heads = 3, d = 64 * heads;
    for (boolean eot : new boolean[] {false, true}) {
      for (boolean causal : new boolean[] {false, true}) {
        Map<String, Object> inputs = new HashMap<>();
        GraphBuilder b = new GraphBuilder();
        Value x = input(b, inputs, "x", batch, n, d);
        Value qkv = b.linear("in_proj", x, w(3 * d, d), w(3 * d), null);
        Value a = b.attention("attn", qkv, heads, causal);
        Value pooled;
        if (eot) {
          int[] ids = new int[batch * n];
          int[] at = {0, n - 1, n / 2, 1, n - 2};
          for (int i = 0; i < ids.length; i++) ids[i] = RNG.nextInt(1000);
          for (int s = 0; s < batch; s++) ids[s * n + at[s]] = 49407;
          inputs.put("ids", ids);
          pooled = b.eotGather("pooled", a, b.input("ids", DType.I32, batch, n));
        } else {
          pooled = b.takeToken("pooled", a, causal ? 4 : 0);
        }
        b.output("y", b.linear("out", pooled, w(d, d), w(d), null));
        Graph g = b.build(), f = Fusion.pooledAttention(g, Set.of());
        assertEquals(Op.ATTENTION_POOLED, f.node("pooled").op());
        try (CpuBackend cpu = new CpuBackend(Runtime.getRuntime().availableProcessors(), true);
            ReferenceBackend ref = new ReferenceBackend()) {
          cpu.pooledAttention(false);
          for (Backend backend : List.<Backend>of(ref, cpu)) {
            float[] want, got;
            try (Executor ex = new Executor(g, backend, List.of())) {
              want = ex.run(inputs).get("y");
            }
            try (Executor ex = new Executor(f, backend, List.of())) {
              got = ex.run(inputs).get("y");
            }
            double err = dev.jclip.backend.ReferenceOps.relativeError(got, want);
            // the reference backend sums in double; the CPU backend in float, in another order
            double tol = backend == ref ? 1e-6 : 1e-5;
            assertTrue(err <= tol, backend.name() + (eot ? " end-of-text" : " class token") + (causal ? " causal" : "") + ": " + err);
          }
        }
      }
    }
  }

  /** Nodes come after their inputs. */
  static void checkOrder(Graph f) {
    Map<Node, Integer> position = new IdentityHashMap<>();
    for (int i = 0; i < f.nodes().size(); i++) position.put(f.nodes().get(i), i);
    for (int i = 0; i < f.nodes().size(); i++) {
      for (Value v : f.nodes().get(i).inputs()) {
        Integer at = position.get(v.producer());
        assertNotNull(at, f.nodes().get(i) + ": input " + v + " is not produced in the graph");
        assertTrue(at < i, f.nodes().get(i) + ": input " + v + " is produced later");
      }
    }
    for (Value v : f.outputs().values()) assertTrue(position.containsKey(v.producer()));
  }

  // ---- helpers -------------------------------------------------------------------------------

  /** Runs both graphs on the CPU and reference backends and compares every output bit for bit. */
  static void assertSameResults(Graph g, Graph f, Map<String, Object> inputs, List<String> capture) {
    try (CpuBackend cpu = new CpuBackend(Runtime.getRuntime().availableProcessors(), true);
        ReferenceBackend ref = new ReferenceBackend()) {
      for (Backend backend : List.<Backend>of(cpu, ref)) {
        Map<String, float[]> want, got;
        try (Executor ex = new Executor(g, backend, capture)) {
          want = ex.run(inputs);
        }
        try (Executor ex = new Executor(f, backend, capture)) {
          got = ex.run(inputs);
        }
        assertEquals(want.keySet(), got.keySet());
        for (String k : want.keySet()) assertArrayEquals(want.get(k), got.get(k), backend.name() + ": " + k);
      }
    }
  }

  /**
   * Every fused node is the ADD of {@code g} by name, with the absorbed LINEAR's parameters (the
   * same tensors) and inputs; every other node is unchanged; nodes come after their inputs; the
   * inputs and outputs are the same by name and spec.
   */
  static void checkFused(Graph g, Graph f) {
    Map<Node, Integer> position = new IdentityHashMap<>();
    for (int i = 0; i < f.nodes().size(); i++) position.put(f.nodes().get(i), i);
    for (int i = 0; i < f.nodes().size(); i++) {
      Node n = f.nodes().get(i);
      for (Value v : n.inputs()) {
        Integer at = position.get(v.producer());
        assertNotNull(at, n + ": input " + v + " is not produced in the fused graph");
        assertTrue(at < i, n + ": input " + v + " is produced later");
      }
      Node old = g.node(n.name());
      assertNotNull(old, n.name());
      assertEquals(old.output().spec(), n.output().spec(), n.name());
      if (n.op() == Op.LINEAR_RESIDUAL && old.op() != Op.LINEAR_RESIDUAL) { // folded by this pass
        assertEquals(Op.ADD, old.op(), n.name());
        Node linear = g.node((String) n.attrs().get("linear"));
        assertEquals(Op.LINEAR, linear.op());
        assertEquals(linear.params().keySet(), n.params().keySet());
        for (String role : linear.params().keySet()) assertSame(linear.param(role), n.param(role), n.name() + " " + role);
        Value residual = old.input(0) == linear.output() ? old.input(1) : old.input(0);
        assertEquals(linear.input(0).name(), n.input(0).name(), n.name() + ": x");
        assertEquals(residual.name(), n.input(1).name(), n.name() + ": residual");
        assertTrue(f.node(linear.name()) == null, linear.name() + " should be gone");
      } else if (n.op() == Op.LAYER_NORM_LINEAR && old.op() != Op.LAYER_NORM_LINEAR) {
        assertEquals(Op.LINEAR, old.op(), n.name());
        Node ln = g.node((String) n.attrs().get("layer_norm"));
        assertEquals(Op.LAYER_NORM, ln.op());
        assertSame(ln.output(), old.input(0), n.name() + ": the LINEAR reads the LayerNorm");
        assertSame(old.param("weight"), n.param("weight"));
        assertSame(old.param("bias"), n.param("bias"));
        assertSame(ln.param("weight"), n.param("ln_weight"));
        assertSame(ln.param("bias"), n.param("ln_bias"));
        assertEquals(ln.floatAttr("eps"), n.floatAttr("eps"));
        assertEquals(old.attrs().get("activation"), n.attrs().get("activation"));
        assertEquals(ln.input(0).name(), n.input(0).name(), n.name() + ": x");
        assertTrue(f.node(ln.name()) == null, ln.name() + " should be gone");
      } else {
        assertEquals(old.op(), n.op(), n.name());
        assertEquals(old.attrs(), n.attrs(), n.name());
        assertEquals(old.params(), n.params(), n.name());
        List<String> in = new ArrayList<>(), was = new ArrayList<>();
        for (Value v : n.inputs()) in.add(v.name());
        for (Value v : old.inputs()) was.add(v.name());
        assertEquals(was, in, n.name());
      }
    }
    assertEquals(g.inputs().keySet(), f.inputs().keySet());
    assertEquals(g.outputs().keySet(), f.outputs().keySet());
    for (String k : g.outputs().keySet()) assertEquals(g.outputs().get(k).spec(), f.outputs().get(k).spec(), k);
    for (Value v : f.inputs().values()) assertTrue(position.containsKey(v.producer()));
    for (Value v : f.outputs().values()) assertTrue(position.containsKey(v.producer()));
  }

  static int count(Graph g, Op op) {
    int c = 0;
    for (Node n : g.nodes()) if (n.op() == op) c++;
    return c;
  }

  static Tensor w(long... shape) {
    return Tensor.ofFloats("w", shape, TestRandom.gaussian(RNG, (int) Tensor.numel(shape), 0.3));
  }

  static Value input(GraphBuilder b, Map<String, Object> inputs, String name, int... shape) {
    int n = 1;
    for (int d : shape) n *= d;
    inputs.put(name, TestRandom.gaussian(RNG, n, 1));
    return b.input(name, DType.F32, shape);
  }

  /** The CPU backend with the CUDA backend's fusion: what a fusing backend's executor does, testable without a GPU. */
  static final class FusingBackend implements Backend {
    private final Backend inner;

    FusingBackend(Backend inner) {
      this.inner = inner;
    }

    @Override
    public Graph prepare(Graph graph, Set<String> keep) {
      return Fusion.linearResidual(graph, keep);
    }

    @Override
    public String name() {
      return inner.name() + "+fused";
    }

    @Override
    public boolean supports(Op op) {
      return inner.supports(op);
    }

    @Override
    public Buffer allocate(long bytes) {
      return inner.allocate(bytes);
    }

    @Override
    public void write(Buffer dst, TensorSpec spec, Object host) {
      inner.write(dst, spec, host);
    }

    @Override
    public float[] read(Buffer src, TensorSpec spec) {
      return inner.read(src, spec);
    }

    @Override
    public void execute(Node node, List<Buffer> inputs, Buffer output) {
      inner.execute(node, inputs, output);
    }

    @Override
    public void close() {}
  }
}
