package dev.jclip.graph;

import dev.jclip.io.Tensor;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One operation: its inputs (values computed by earlier nodes), its parameters (checkpoint
 * tensors, by role: "weight", "bias", ...), scalar attributes, and the value it produces. The name
 * is the state-dict prefix of the layer, so a parity failure names its layer.
 */
public final class Node {
  private final Op op;
  private final String name;
  private final List<Value> inputs;
  private final Map<String, Tensor> params;
  private final Map<String, Object> attrs;
  private Value output;

  Node(Op op, String name, List<Value> inputs, Map<String, Tensor> params, Map<String, Object> attrs) {
    this.op = op;
    this.name = name;
    this.inputs = List.copyOf(inputs);
    this.params = Collections.unmodifiableMap(new LinkedHashMap<>(params));
    this.attrs = Collections.unmodifiableMap(new LinkedHashMap<>(attrs));
  }

  void setOutput(Value v) {
    this.output = v;
  }

  public Op op() {
    return op;
  }

  public String name() {
    return name;
  }

  public List<Value> inputs() {
    return inputs;
  }

  public Value input(int i) {
    return inputs.get(i);
  }

  public Value output() {
    return output;
  }

  public Map<String, Tensor> params() {
    return params;
  }

  /** The parameter {@code role}, or null when the node has none (e.g. a LINEAR without bias). */
  public Tensor param(String role) {
    return params.get(role);
  }

  public Map<String, Object> attrs() {
    return attrs;
  }

  public int intAttr(String key) {
    Object v = attrs.get(key);
    if (!(v instanceof Number n)) throw new IllegalStateException(name + ": attribute " + key + " missing");
    return n.intValue();
  }

  public float floatAttr(String key) {
    Object v = attrs.get(key);
    if (!(v instanceof Number n)) throw new IllegalStateException(name + ": attribute " + key + " missing");
    return n.floatValue();
  }

  public boolean boolAttr(String key) {
    return Boolean.TRUE.equals(attrs.get(key));
  }

  /** An enum attribute, or {@code fallback} when absent. */
  public <E extends Enum<E>> E enumAttr(String key, E fallback) {
    Object v = attrs.get(key);
    @SuppressWarnings("unchecked")
    E e = v == null ? fallback : (E) v;
    return e;
  }

  @Override
  public String toString() {
    return op + " " + name + " " + inputs.stream().map(Value::name).toList() + " -> " + (output == null ? "?" : output.spec());
  }
}
