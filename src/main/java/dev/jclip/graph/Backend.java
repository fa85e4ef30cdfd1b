package dev.jclip.graph;

import java.util.List;
import java.util.Set;

/**
 * Where a graph runs: a handful of hooks (allocate, copy in and out, execute one node). Backends
 * know nothing of CLIP: they see ops, shapes and parameter tensors. A backend converts and caches
 * each parameter tensor the first time a node uses it (per backend instance).
 */
public interface Backend extends AutoCloseable {
  /** A short name for messages ("reference", "cpu", "cuda:0"). */
  String name();

  /** Whether this backend implements {@code op}. */
  boolean supports(Op op);

  /**
   * Bytes one element of {@code spec} takes in this backend's buffers (4 unless the backend keeps
   * activations in a 16-bit format).
   */
  default int elementBytes(TensorSpec spec) {
    return 4;
  }

  /**
   * The graph to run in place of {@code graph}: a backend may rewrite it with the passes of {@link
   * Fusion} it implements fast, as long as the outputs and every node named in {@code keep} (the
   * executor's captures) keep their names and values. By default, the graph itself.
   */
  default Graph prepare(Graph graph, Set<String> keep) {
    return graph;
  }

  /** A buffer of at least {@code bytes}; its contents are undefined. */
  Buffer allocate(long bytes);

  /**
   * Buffers of the given sizes, for one executor's activation memory; closing each releases it. By
   * default one allocation each; a device backend may carve them from one arena.
   */
  default List<Buffer> allocateAll(long[] bytes) {
    List<Buffer> out = new java.util.ArrayList<>(bytes.length);
    for (long b : bytes) out.add(allocate(b));
    return out;
  }

  /** Copies host values into {@code dst}, laid out as {@code spec}: {@code float[]} for F32, {@code int[]} for I32. */
  void write(Buffer dst, TensorSpec spec, Object host);

  /** Copies the F32 value {@code spec} out of {@code src}. */
  float[] read(Buffer src, TensorSpec spec);

  /** Runs {@code node}: its inputs are in {@code inputs} (in order), its result goes to {@code output}. */
  void execute(Node node, List<Buffer> inputs, Buffer output);

  /**
   * Records the device work {@code body} queues (one executor's node loop) so that it can be
   * replayed without the host issuing each launch again, as a CUDA graph does; {@code body} is not
   * executed by the recording itself. Returns null when this backend cannot record, and the
   * executor then runs nodes one by one.
   */
  default Recording record(Runnable body) {
    return null;
  }

  /** A recorded sequence of launches, bound to the buffers it was recorded with. */
  interface Recording extends AutoCloseable {
    void replay();

    @Override
    void close();
  }

  /** Waits for all queued work (asynchronous backends). */
  default void synchronize() {}

  @Override
  void close();

  /** Memory owned by a backend. */
  interface Buffer extends AutoCloseable {
    long bytes();

    @Override
    void close();
  }
}
