package dev.jclip.graph;

import dev.jclip.io.Tensor;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.WeakHashMap;

/**
 * Graph rewrites that merge nodes into the fused ops of {@link Op}. A pass returns a new graph (or
 * the same one when nothing applies) with the same inputs and outputs, the same names for every
 * node that survives, and the same values up to the rounding of the fused arithmetic. A backend
 * applies the passes it wants in {@link Backend#prepare}.
 */
public final class Fusion {
  private Fusion() {}

  /**
   * Folds each residual ADD into the LINEAR it adds: {@code x + out_proj(a)} and {@code x +
   * c_proj(h)} of every ResidualAttentionBlock become one {@link Op#LINEAR_RESIDUAL} node
   * {@code out_proj(a) + x}, which a GPU computes as one GEMM whose epilogue adds the bias and the
   * residual (saving a pass over the activations for the bias and one, reading two and writing
   * one, for the ADD).
   *
   * <p>A LINEAR is folded when it has no activation, its result is read by exactly one node, that
   * node is an ADD without ReLU, its result is not a graph output, and its name is not in {@code
   * keep} (the executor's captures: a captured LINEAR keeps its own node). The fused node takes
   * the ADD's name and value identity in the graph's outputs, so captures of a block's output by
   * its state-dict name ({@code visual.transformer.resblocks.0}) see the same value. It sits where
   * the ADD was, which comes after the LINEAR's input and the residual. The absorbed LINEAR's name is kept as the fused
   * node's attribute {@code "linear"}.
   */
  public static Graph linearResidual(Graph graph, Collection<String> keep) {
    Set<String> kept = Set.copyOf(keep);
    Readers readers = new Readers(graph);
    Map<Node, Node> linearOf = new IdentityHashMap<>(); // ADD -> the LINEAR it absorbs
    for (Node n : graph.nodes()) {
      if (n.op() != Op.LINEAR || n.attrs().get("activation") != null || !readers.alone(n, kept)) continue; // once: no ADD reading it twice
      Node add = readers.reader(n.output());
      if (add.op() != Op.ADD || add.boolAttr("relu") || linearOf.containsKey(add)) continue;
      linearOf.put(add, n);
    }
    return merged(graph, linearOf, (add, linear, copies) -> {
      Value residual = add.input(0) == linear.output() ? add.input(1) : add.input(0);
      return new Node(Op.LINEAR_RESIDUAL, add.name(), List.of(copies.get(linear.input(0)), copies.get(residual)), linear.params(),
          Map.of("linear", linear.name()));
    });
  }

  /**
   * Computes the attention of a pooled tower's last block for the pooled rows alone: where the
   * class token (TAKE_TOKEN) or the end-of-text token (EOT_GATHER) is taken from an ATTENTION's
   * output, only that row's query is needed, and nothing else reads the ATTENTION or its qkv
   * LINEAR ({@code in_proj}, no activation). The LINEAR becomes the gather of its input's pooled
   * rows through the query third of its weight ({@code <in_proj>.query_rows}, {@code <in_proj>.q}:
   * [B, D]), and the keys and values of every position through the other two thirds ({@code
   * <in_proj>.kv}: [B, N, 2D]); the ATTENTION and the gather become one {@link
   * Op#ATTENTION_POOLED} node under the gather's name. The pooled rows get the same arithmetic,
   * each row's query, scores and softmax being independent of the other rows': ViT-B/32's last
   * block then skips 49 of its 50 query rows' attention and a third of in_proj for them (about 1.5%
   * of the image tower), the text tower's 76 of 77.
   *
   * <p>Nodes named in {@code keep} (the executor's captures) are left as they are; so is the graph
   * when nothing applies. The split weights are views of the LINEAR's (nothing copied), made once
   * per weight tensor.
   */
  public static Graph pooledAttention(Graph graph, Collection<String> keep) {
    Set<String> kept = Set.copyOf(keep);
    List<Node> nodes = graph.nodes();
    Readers readers = new Readers(graph);

    Set<Node> pools = Collections.newSetFromMap(new IdentityHashMap<>());
    Set<Node> absorbed = Collections.newSetFromMap(new IdentityHashMap<>()); // the ATTENTIONs and their qkv LINEARs
    for (Node pool : nodes) {
      if (pool.op() != Op.TAKE_TOKEN && pool.op() != Op.EOT_GATHER) continue;
      Node attention = pool.input(0).producer();
      if (attention.op() != Op.ATTENTION || !readers.alone(attention, kept)) continue;
      Node linear = attention.input(0).producer();
      if (linear.op() != Op.LINEAR || linear.attrs().get("activation") != null || !readers.alone(linear, kept)) continue;
      pools.add(pool);
      absorbed.add(attention);
      absorbed.add(linear);
    }
    if (pools.isEmpty()) return graph;

    int nextId = 0;
    for (Node n : nodes) nextId = Math.max(nextId, n.output().id() + 1);
    Map<Value, Value> copies = new IdentityHashMap<>();
    List<Node> rebuilt = new ArrayList<>(nodes.size() + pools.size());
    for (Node n : nodes) {
      if (absorbed.contains(n)) continue;
      Node copy;
      if (!pools.contains(n)) {
        copy = copied(n, copies);
      } else {
        List<Value> in = new ArrayList<>(n.inputs().size()); // the first, the absorbed ATTENTION's value, has no copy
        for (Value v : n.inputs()) in.add(copies.get(v));
        // where the gather was (its inputs, the LINEAR's input and any ids, all come before it):
        // the pooled rows' gather, their query, every position's keys and values, their attention
        Node attention = n.input(0).producer(), linear = attention.input(0).producer();
        Value x = copies.get(linear.input(0));
        Tensor[] w = split(linear.param("weight")), b = linear.param("bias") == null ? new Tensor[2] : split(linear.param("bias"));
        int d = (int) w[0].dim(0), batch = x.dim(0);
        String p = linear.name();
        List<Value> gatherIn = new ArrayList<>(in);
        gatherIn.set(0, x);
        Value rows = emit(rebuilt, new Node(n.op(), p + ".query_rows", gatherIn, Map.of(), n.attrs()), nextId++,
            TensorSpec.f32(p + ".query_rows", batch, x.dim(-1)));
        Value q = emit(rebuilt, new Node(Op.LINEAR, p + ".q", List.of(rows), params(w[0], b[0]), Map.of()), nextId++, TensorSpec.f32(p + ".q", batch, d));
        Value kv = emit(rebuilt, new Node(Op.LINEAR, p + ".kv", List.of(x), params(w[1], b[1]), Map.of()), nextId++,
            TensorSpec.f32(p + ".kv", batch, x.dim(1), 2 * d));
        Map<String, Object> attrs = new LinkedHashMap<>();
        attrs.put("heads", attention.intAttr("heads"));
        attrs.put("causal", attention.boolAttr("causal"));
        List<Value> pooledIn = new ArrayList<>(List.of(q, kv));
        if (n.op() == Op.EOT_GATHER) pooledIn.add(in.get(1));
        else attrs.put("index", n.intAttr("index"));
        copy = new Node(Op.ATTENTION_POOLED, n.name(), pooledIn, Map.of(), attrs);
      }
      copies.put(n.output(), emit(rebuilt, copy, n.output().id(), n.output().spec()));
    }
    return rebuilt(graph, rebuilt, copies);
  }

  /**
   * Folds each LayerNorm into the LINEAR that alone reads it: {@code in_proj(ln_1(x))} and {@code
   * c_fc(ln_2(x))} of every ResidualAttentionBlock become one {@link Op#LAYER_NORM_LINEAR} node
   * under the LINEAR's name, where it stood (after the LayerNorm's input), with the LINEAR's
   * activation. A backend can then compute {@code rstd · (x · (W γ)ᵀ − mean · colsum(W γ)) + b + W
   * β}: the rows' statistics from one read of x, no normalised rows written and read back.
   *
   * <p>A LAYER_NORM is folded when it is not in {@code keep} (the executor's captures) and not a
   * graph output, its result is read by exactly one node, that node is a LINEAR reading it as its
   * input, and the LINEAR's input width is the LayerNorm's. The graph is returned as it is when
   * nothing applies.
   */
  public static Graph layerNormLinear(Graph graph, Collection<String> keep) {
    return layerNormLinear(graph, keep, width -> true);
  }

  /**
   * As {@link #layerNormLinear(Graph, Collection)}, for the LayerNorms whose row width {@code
   * folds} accepts only (a backend whose kernels take some widths: the others stay as they are).
   */
  public static Graph layerNormLinear(Graph graph, Collection<String> keep, java.util.function.IntPredicate folds) {
    Set<String> kept = Set.copyOf(keep);
    Readers readers = new Readers(graph);
    Map<Node, Node> layerNormOf = new IdentityHashMap<>(); // LINEAR -> the LAYER_NORM it absorbs
    for (Node n : graph.nodes()) {
      if (n.op() != Op.LAYER_NORM || !readers.alone(n, kept)) continue;
      Node linear = readers.reader(n.output());
      if (linear.op() != Op.LINEAR || linear.input(0) != n.output()) continue;
      if (linear.param("weight").dim(1) != n.output().dim(-1) || !folds.test((int) n.output().dim(-1))) continue;
      layerNormOf.put(linear, n);
    }
    return merged(graph, layerNormOf, (linear, ln, copies) -> {
      Map<String, Tensor> params = new LinkedHashMap<>(linear.params());
      params.put("ln_weight", ln.param("weight"));
      params.put("ln_bias", ln.param("bias"));
      Map<String, Object> attrs = new LinkedHashMap<>(linear.attrs());
      attrs.put("eps", ln.floatAttr("eps"));
      attrs.put("layer_norm", ln.name());
      return new Node(Op.LAYER_NORM_LINEAR, linear.name(), List.of(copies.get(ln.input(0))), params, attrs);
    });
  }

  /** The ops that may read and write a 4-D activation in channels-last order ({@link #channelsLast}). */
  private static final Set<Op> CHANNELS_LAST_OPS = Set.of(Op.CONV2D, Op.AVG_POOL, Op.ADD, Op.ATTNPOOL_TOKENS);

  /**
   * Marks the 4-D activations of a ModifiedResNet that may stay channels last (NHWC) between the
   * ops that read and write them, for a backend whose convolutions run in that order: the values
   * written by a CONV2D, AVG_POOL or ADD, read only by such ops or ATTNPOOL_TOKENS, and neither kept
   * ({@code keep}: the executor's captures) nor graph outputs, which callers read as NCHW. The
   * shapes in the graph stay [N, C, H, W]; only the memory order changes, said by attributes the
   * backend reads: CONV2D's {@code nhwcIn} and {@code nhwcOut}, AVG_POOL's and ATTNPOOL_TOKENS'
   * {@code nhwc} (an AVG_POOL or ADD reads and writes one order: where its values cannot all be
   * NHWC, none is). The graph is returned as it is when no value qualifies.
   */
  public static Graph channelsLast(Graph graph, Collection<String> keep) {
    Set<String> kept = Set.copyOf(keep);
    Set<Value> outputs = Collections.newSetFromMap(new IdentityHashMap<>());
    outputs.addAll(graph.outputs().values());
    Map<Value, List<Node>> readers = new IdentityHashMap<>();
    for (Node n : graph.nodes()) for (Value v : n.inputs()) readers.computeIfAbsent(v, k -> new ArrayList<>()).add(n);
    Set<Value> nhwc = Collections.newSetFromMap(new IdentityHashMap<>());
    for (Node n : graph.nodes()) {
      Value v = n.output();
      if (n.op() == Op.ATTNPOOL_TOKENS || !CHANNELS_LAST_OPS.contains(n.op()) || v.spec().rank() != 4) continue;
      if (kept.contains(n.name()) || outputs.contains(v)) continue;
      List<Node> r = readers.getOrDefault(v, List.of());
      if (!r.isEmpty() && r.stream().allMatch(x -> CHANNELS_LAST_OPS.contains(x.op()))) nhwc.add(v);
    }
    // An AVG_POOL or ADD works in one order: its inputs and output all NHWC, or none.
    for (boolean changed = true; changed; ) {
      changed = false;
      for (Node n : graph.nodes()) {
        if (n.op() != Op.AVG_POOL && n.op() != Op.ADD) continue;
        if (n.output().spec().rank() != 4) continue;
        boolean all = nhwc.contains(n.output());
        for (Value v : n.inputs()) all &= nhwc.contains(v);
        if (all) continue;
        for (Value v : n.inputs()) changed |= nhwc.remove(v);
        changed |= nhwc.remove(n.output());
      }
    }
    if (nhwc.isEmpty()) return graph;
    Map<Value, Value> copies = new IdentityHashMap<>();
    List<Node> rebuilt = new ArrayList<>(graph.nodes().size());
    for (Node n : graph.nodes()) {
      Node copy = copied(n, copies);
      Map<String, Object> attrs = null;
      if (n.op() == Op.CONV2D && (nhwc.contains(n.input(0)) || nhwc.contains(n.output()))) {
        attrs = new LinkedHashMap<>(n.attrs());
        if (nhwc.contains(n.input(0))) attrs.put("nhwcIn", true);
        if (nhwc.contains(n.output())) attrs.put("nhwcOut", true);
      } else if ((n.op() == Op.AVG_POOL || n.op() == Op.ATTNPOOL_TOKENS) && nhwc.contains(n.input(0))) {
        attrs = new LinkedHashMap<>(n.attrs());
        attrs.put("nhwc", true);
      }
      if (attrs != null) copy = new Node(n.op(), n.name(), copy.inputs(), n.params(), attrs);
      copies.put(n.output(), emit(rebuilt, copy, n.output().id(), n.output().spec()));
    }
    return rebuilt(graph, rebuilt, copies);
  }

  /**
   * The values of {@code graph} that a LINEAR_RESIDUAL writes and a LAYER_NORM_LINEAR reads as its
   * x (after {@link #linearResidual} and {@link #layerNormLinear}: in a transformer, each block's
   * out_proj output, which ln_2 normalises for c_fc, and its c_proj output, which the next block's
   * ln_1 normalises for in_proj): a backend whose residual LINEAR can also write the row
   * statistics of its output lets such a fold read them instead of x once more. By identity.
   */
  public static Set<Value> layerNormStatsProducers(Graph graph) {
    Set<Value> written = Collections.newSetFromMap(new IdentityHashMap<>());
    for (Node n : graph.nodes()) if (n.op() == Op.LINEAR_RESIDUAL) written.add(n.output());
    Set<Value> read = Collections.newSetFromMap(new IdentityHashMap<>());
    for (Node n : graph.nodes()) if (n.op() == Op.LAYER_NORM_LINEAR && written.contains(n.input(0))) read.add(n.input(0));
    return read;
  }

  /** How often each value of a graph is read, and by which node when read once; and the graph's outputs. */
  private static final class Readers {
    private final Map<Value, Integer> count = new IdentityHashMap<>();
    private final Map<Value, Node> reader = new IdentityHashMap<>();
    private final Set<Value> outputs = Collections.newSetFromMap(new IdentityHashMap<>());

    Readers(Graph graph) {
      for (Node n : graph.nodes()) {
        for (Value v : n.inputs()) {
          count.merge(v, 1, Integer::sum);
          reader.put(v, n);
        }
      }
      outputs.addAll(graph.outputs().values());
    }

    /** Whether {@code n} may be rewritten: not kept, not a graph output, read by exactly one node (once). */
    boolean alone(Node n, Set<String> kept) {
      return !kept.contains(n.name()) && !outputs.contains(n.output()) && count.getOrDefault(n.output(), 0) == 1;
    }

    /** The node that reads {@code v} (the last one, where several do). */
    Node reader(Value v) {
      return reader.get(v);
    }
  }

  /** Builds the node that replaces {@code at}, absorbing {@code absorbed}, its inputs mapped through {@code copies}. */
  private interface Merge {
    Node node(Node at, Node absorbed, Map<Value, Value> copies);
  }

  /**
   * {@code graph} with each key of {@code absorbs} replaced by {@code merge}'s node, which takes the
   * key's place, name and value identity, and each value of it dropped (the graph itself when
   * there is none); every other node copied as it is.
   */
  private static Graph merged(Graph graph, Map<Node, Node> absorbs, Merge merge) {
    if (absorbs.isEmpty()) return graph;
    Set<Node> absorbed = Collections.newSetFromMap(new IdentityHashMap<>());
    absorbed.addAll(absorbs.values());
    Map<Value, Value> copies = new IdentityHashMap<>();
    List<Node> rebuilt = new ArrayList<>(graph.nodes().size() - absorbed.size());
    for (Node n : graph.nodes()) {
      if (absorbed.contains(n)) continue;
      Node other = absorbs.get(n);
      Node copy = other != null ? merge.node(n, other, copies) : copied(n, copies);
      copies.put(n.output(), emit(rebuilt, copy, n.output().id(), n.output().spec()));
    }
    return rebuilt(graph, rebuilt, copies);
  }

  /** {@code n} reading the copies of its inputs. */
  private static Node copied(Node n, Map<Value, Value> copies) {
    List<Value> in = new ArrayList<>(n.inputs().size());
    for (Value v : n.inputs()) in.add(copies.get(v));
    return new Node(n.op(), n.name(), in, n.params(), n.attrs());
  }

  /** The graph of {@code nodes}, with {@code graph}'s inputs and outputs by name mapped through {@code copies}. */
  private static Graph rebuilt(Graph graph, List<Node> nodes, Map<Value, Value> copies) {
    Map<String, Value> inputs = new LinkedHashMap<>(), outs = new LinkedHashMap<>();
    graph.inputs().forEach((name, v) -> inputs.put(name, copies.get(v)));
    graph.outputs().forEach((name, v) -> outs.put(name, copies.get(v)));
    return new Graph(nodes, inputs, outs);
  }

  /** Appends {@code n} with a new output value (id, spec) and returns the value. */
  private static Value emit(List<Node> nodes, Node n, int id, TensorSpec spec) {
    Value v = new Value(id, spec, n);
    n.setOutput(v);
    nodes.add(n);
    return v;
  }

  private static Map<String, Tensor> params(Tensor weight, Tensor bias) {
    Map<String, Tensor> p = new LinkedHashMap<>();
    p.put("weight", weight);
    if (bias != null) p.put("bias", bias);
    return p;
  }

  /** The first third of a [3D, ..] tensor's rows and the other two thirds, as views; made once per tensor (weakly held). */
  private static Tensor[] split(Tensor t) {
    synchronized (SPLITS) {
      return SPLITS.computeIfAbsent(t, u -> {
        long d = u.dim(0) / 3;
        if (d * 3 != u.dim(0)) throw new IllegalArgumentException(u + ": not q, k and v stacked (rows not a multiple of 3)");
        return new Tensor[] {u.rows(0, d), u.rows(d, 3 * d)};
      });
    }
  }

  private static final Map<Tensor, Tensor[]> SPLITS = new WeakHashMap<>();
}
