package dev.jclip.graph;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A built graph: nodes in execution order (every node after the nodes it reads), named inputs and
 * named outputs. Graphs are built for concrete shapes (one per batch size and text length), which
 * keeps buffer planning static and maps one-to-one onto captured CUDA graphs.
 */
public final class Graph {
  private final List<Node> nodes;
  private final Map<String, Value> inputs;
  private final Map<String, Value> outputs;

  Graph(List<Node> nodes, Map<String, Value> inputs, Map<String, Value> outputs) {
    this.nodes = List.copyOf(nodes);
    this.inputs = Collections.unmodifiableMap(new LinkedHashMap<>(inputs));
    this.outputs = Collections.unmodifiableMap(new LinkedHashMap<>(outputs));
  }

  public List<Node> nodes() {
    return nodes;
  }

  public Map<String, Value> inputs() {
    return inputs;
  }

  public Map<String, Value> outputs() {
    return outputs;
  }

  /** The node named {@code name} (a state-dict prefix), or null. */
  public Node node(String name) {
    for (Node n : nodes) if (n.name().equals(name)) return n;
    return null;
  }

  /** One line per node, for debugging. */
  public String describe() {
    StringBuilder sb = new StringBuilder();
    for (Node n : nodes) sb.append(n).append('\n');
    return sb.toString();
  }
}
