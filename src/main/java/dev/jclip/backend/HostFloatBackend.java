package dev.jclip.backend;

import dev.jclip.graph.Backend;
import dev.jclip.graph.TensorSpec;
import dev.jclip.io.DType;

/**
 * What the backends that keep every value as a float array on the heap share (the CPU backend,
 * and the tests' reference and rounding-emulation backends): their buffers, and the copies of
 * inputs in and outputs out. Token ids are held as floats (exact below 2²⁴).
 */
public abstract class HostFloatBackend implements Backend {
  /** A host buffer of floats. */
  public static final class HostBuffer implements Buffer {
    private final float[] data;

    HostBuffer(long bytes) {
      long n = (bytes + 3) / 4;
      if (n > Integer.MAX_VALUE - 16) throw new IllegalArgumentException("a host buffer holds at most 2³¹ floats; asked for " + bytes + " bytes");
      data = new float[(int) n];
    }

    @Override
    public long bytes() {
      return 4L * data.length;
    }

    @Override
    public void close() {}
  }

  /** The floats of a buffer this backend allocated. */
  protected static float[] data(Buffer b) {
    return ((HostBuffer) b).data;
  }

  @Override
  public Buffer allocate(long bytes) {
    return new HostBuffer(bytes);
  }

  @Override
  public void write(Buffer dst, TensorSpec spec, Object host) {
    float[] d = data(dst);
    if (spec.dtype() == DType.I32) {
      int[] ids = (int[]) host;
      for (int i = 0; i < ids.length; i++) d[i] = ids[i];
    } else {
      float[] f = (float[]) host;
      System.arraycopy(f, 0, d, 0, f.length);
    }
  }

  @Override
  public float[] read(Buffer src, TensorSpec spec) {
    float[] out = new float[(int) spec.elements()];
    System.arraycopy(data(src), 0, out, 0, out.length);
    return out;
  }
}
