package dev.jclip.graph;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

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
    List<Node> nodes = graph.nodes();
    Map<Value, Integer> readers = new IdentityHashMap<>();
    Map<Value, Node> reader = new IdentityHashMap<>();
    for (Node n : nodes) {
      for (Value v : n.inputs()) {
        readers.merge(v, 1, Integer::sum);
        reader.put(v, n);
      }
    }
    Set<Value> outputs = Collections.newSetFromMap(new IdentityHashMap<>());
    outputs.addAll(graph.outputs().values());

    Map<Node, Node> linearOf = new IdentityHashMap<>(); // ADD -> the LINEAR it absorbs
    for (Node n : nodes) {
      if (n.op() != Op.LINEAR || n.attrs().get("activation") != null || kept.contains(n.name()) || outputs.contains(n.output())) continue;
      if (readers.getOrDefault(n.output(), 0) != 1) continue; // also excludes an ADD reading it twice
      Node add = reader.get(n.output());
      if (add.op() != Op.ADD || add.boolAttr("relu") || linearOf.containsKey(add)) continue;
      linearOf.put(add, n);
    }
    if (linearOf.isEmpty()) return graph;

    Set<Node> absorbed = Collections.newSetFromMap(new IdentityHashMap<>());
    absorbed.addAll(linearOf.values());
    Map<Value, Value> copies = new IdentityHashMap<>();
    List<Node> rebuilt = new ArrayList<>(nodes.size() - absorbed.size());
    for (Node n : nodes) {
      if (absorbed.contains(n)) continue;
      Node linear = linearOf.get(n);
      Node copy;
      if (linear != null) {
        Value residual = n.input(0) == linear.output() ? n.input(1) : n.input(0);
        copy = new Node(Op.LINEAR_RESIDUAL, n.name(), List.of(copies.get(linear.input(0)), copies.get(residual)), linear.params(),
            Map.of("linear", linear.name()));
      } else {
        List<Value> in = new ArrayList<>(n.inputs().size());
        for (Value v : n.inputs()) in.add(copies.get(v));
        copy = new Node(n.op(), n.name(), in, n.params(), n.attrs());
      }
      Value v = new Value(n.output().id(), n.output().spec(), copy);
      copy.setOutput(v);
      copies.put(n.output(), v);
      rebuilt.add(copy);
    }
    Map<String, Value> inputs = new LinkedHashMap<>(), outs = new LinkedHashMap<>();
    graph.inputs().forEach((name, v) -> inputs.put(name, copies.get(v)));
    graph.outputs().forEach((name, v) -> outs.put(name, copies.get(v)));
    return new Graph(rebuilt, inputs, outs);
  }
}
