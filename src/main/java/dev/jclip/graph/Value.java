package dev.jclip.graph;

/** A tensor flowing through a graph: an input or the output of one node. Identity matters. */
public final class Value {
  private final int id;
  private final TensorSpec spec;
  private final Node producer;

  Value(int id, TensorSpec spec, Node producer) {
    this.id = id;
    this.spec = spec;
    this.producer = producer;
  }

  public int id() {
    return id;
  }

  public TensorSpec spec() {
    return spec;
  }

  public String name() {
    return spec.name();
  }

  /** The node computing this value (an INPUT node for graph inputs). */
  public Node producer() {
    return producer;
  }

  public int[] shape() {
    return spec.shape();
  }

  public int dim(int i) {
    return spec.dim(i);
  }

  @Override
  public String toString() {
    return spec.toString();
  }
}
