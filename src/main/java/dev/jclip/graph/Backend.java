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
   * Why this backend cannot run node {@code n} of an op it {@link #supports} (a shape its kernels
   * do not take), or null when it can. Null by default.
   */
  default String refuses(Node n) {
    return null;
  }

  /**
   * Whether runs must take turns on this backend (a GPU's compute stream: one executor's work at a
   * time, queued asynchronously) rather than run from many threads at once, each computing in
   * {@link #execute} itself (a CPU backend's thread pool). False by default.
   */
  default boolean oneRunAtATime() {
    return false;
  }

  /**
   * The most items a caller who sets no batch size should run as one graph on this backend:
   * enough rows for its GEMMs to run near their speed, few enough for the activations to fit.
   * 32 by default (a CPU's).
   */
  default int defaultBatch() {
    return 32;
  }

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

  /**
   * Copies host values into {@code dst}, laid out as {@code spec}: {@code float[]} for F32, {@code
   * int[]} for I32. The host array may be reused as soon as this returns. An asynchronous backend
   * may return before the copy has reached {@code dst} (work queued afterwards sees it); the caller
   * must not write a buffer that queued work may still read: an {@link Executor} writes its inputs
   * again only after its previous run has been waited for.
   */
  void write(Buffer dst, TensorSpec spec, Object host);

  /** Copies the F32 value {@code spec} out of {@code src}, after all work queued so far. */
  float[] read(Buffer src, TensorSpec spec);

  /**
   * Copies the F32 value {@code spec} out of {@code src}, which the work before {@code written}'s
   * mark wrote: an asynchronous backend waits for that work only, not for work queued after the
   * mark (another executor's batch).
   */
  default float[] read(Buffer src, TensorSpec spec, Fence written) {
    written.await();
    return read(src, spec);
  }

  /**
   * A new fence on this backend's work, owned by the caller. The default, for backends that compute
   * in {@link #execute} itself, marks nothing and awaits by {@link #synchronize()}.
   */
  default Fence newFence() {
    return new Fence() {
      @Override
      public void mark() {}

      @Override
      public void await() {
        synchronize();
      }

      @Override
      public void close() {}
    };
  }

  /**
   * A point in a backend's queue of work (a CUDA event): what one executor's run queued, so that
   * its outputs can be waited for while the next run's work is already queued behind it.
   */
  interface Fence extends AutoCloseable {
    /** Marks the work queued so far (replacing the previous mark). */
    void mark();

    /** Blocks until the work queued before the last {@link #mark()} has been done. */
    void await();

    @Override
    void close();
  }

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
