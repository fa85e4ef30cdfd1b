package dev.jclip.graph;

import dev.jclip.io.DType;
import java.util.Arrays;

/** Name, element type and shape of a value in a graph. Graph values are F32, token ids I32. */
public record TensorSpec(String name, DType dtype, int[] shape) {
  public TensorSpec {
    if (dtype != DType.F32 && dtype != DType.I32) throw new IllegalArgumentException(name + ": graph values are F32 or I32, not " + dtype);
    shape = shape.clone();
    for (int d : shape) if (d <= 0) throw new IllegalArgumentException(name + ": bad shape " + Arrays.toString(shape));
  }

  public static TensorSpec f32(String name, int... shape) {
    return new TensorSpec(name, DType.F32, shape);
  }

  @Override
  public int[] shape() {
    return shape.clone();
  }

  public int rank() {
    return shape.length;
  }

  public int dim(int i) {
    return shape[i < 0 ? shape.length + i : i];
  }

  /** Number of elements. */
  public long elements() {
    long n = 1;
    for (int d : shape) n *= d;
    return n;
  }

  /** Product of all dimensions but the last (the rows of a row-major matrix view). */
  public long rows() {
    return elements() / shape[shape.length - 1];
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof TensorSpec t && t.name.equals(name) && t.dtype == dtype && Arrays.equals(t.shape, shape);
  }

  @Override
  public int hashCode() {
    return name.hashCode() * 31 + Arrays.hashCode(shape);
  }

  @Override
  public String toString() {
    return name + ":" + dtype + Arrays.toString(shape);
  }
}
