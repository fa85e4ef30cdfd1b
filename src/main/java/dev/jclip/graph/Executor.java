package dev.jclip.graph;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Runs a {@link Graph} on a {@link Backend}. At construction it plans memory: each value lives
 * from the node that writes it to the last node that reads it, and a value whose life is over
 * hands its buffer to a later one (best fit by size). Graph outputs and captured intermediates
 * (named in {@code capture}: node names, which are state-dict prefixes) live to the end.
 *
 * <p>An executor owns its buffers; it is not thread-safe (one run at a time), and {@link #close()}
 * frees everything it allocated. {@link #run} is {@link #submit} then {@link #collect}: with two
 * executors of one shape, a caller keeps one batch computing while the next one's inputs upload
 * (submit B, then collect A).
 */
public final class Executor implements AutoCloseable {
  private final Graph graph;
  private final Backend backend;
  private final Map<Value, Backend.Buffer> buffers = new IdentityHashMap<>();
  private final List<Backend.Buffer> owned = new ArrayList<>();
  private final Map<String, Value> captured = new LinkedHashMap<>();
  private final long plannedBytes;
  private final long unplannedBytes;
  private final boolean replay;
  private final Backend.Fence fence;
  private Backend.Recording recording;
  /** Why recording failed, if it did: the executor then runs node by node (see {@link #recordingFailure()}). */
  private RuntimeException recordingFailure;
  private int runs;
  /** A submitted run waits to be collected. */
  private boolean submitted;
  /** Inputs have been written at least once (what {@link #resubmit()} reruns on). */
  private boolean written;
  private boolean closed;

  public Executor(Graph graph, Backend backend, Collection<String> capture) {
    this(graph, backend, capture, false);
  }

  /**
   * @param replay record the node loop on the second run (the first warms up: parameters uploaded,
   *     scratch sized) and replay the recording from then on, where the backend can record (a CUDA
   *     graph per executor, i.e. per batch shape); the inputs are written before each replay and
   *     the outputs read after it
   */
  public Executor(Graph graph, Backend backend, Collection<String> capture, boolean replay) {
    this.replay = replay;
    graph = backend.prepare(graph, Set.copyOf(capture)); // e.g. fusions; captured nodes keep their names
    this.graph = graph;
    this.backend = backend;
    for (Node n : graph.nodes()) {
      if (n.op() != Op.INPUT && !backend.supports(n.op())) {
        throw new UnsupportedOperationException("backend " + backend.name() + " does not implement " + n.op() + " (node " + n.name() + ")");
      }
      String why = n.op() == Op.INPUT ? null : backend.refuses(n);
      if (why != null) throw new UnsupportedOperationException("backend " + backend.name() + " cannot run node " + n.name() + " (" + n.op() + "): " + why);
    }
    Set<String> wanted = Set.copyOf(capture);
    for (Node n : graph.nodes()) if (wanted.contains(n.name())) captured.put(n.name(), n.output());
    for (String name : wanted) {
      if (!captured.containsKey(name)) throw new IllegalArgumentException("no node named " + name + " to capture");
    }

    List<Node> nodes = graph.nodes();
    Map<Value, Integer> lastUse = new IdentityHashMap<>();
    for (int i = 0; i < nodes.size(); i++) for (Value in : nodes.get(i).inputs()) lastUse.put(in, i);
    Set<Value> pinned = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
    pinned.addAll(graph.outputs().values());
    pinned.addAll(captured.values());
    pinned.addAll(graph.inputs().values());

    // Plan: free slots by size; a slot returns to the pool after the last reader of its value has
    // run. Then allocate every slot at once, so a backend can carve them from one arena.
    List<Slot> slots = new ArrayList<>();
    Map<Value, Slot> slotOf = new IdentityHashMap<>();
    List<Slot> free = new ArrayList<>();
    Map<Integer, List<Slot>> releaseAfter = new HashMap<>();
    long planned = 0, unplanned = 0;
    for (int i = 0; i < nodes.size(); i++) {
      Value v = nodes.get(i).output();
      long bytes = v.spec().elements() * backend.elementBytes(v.spec());
      unplanned += bytes;
      Slot slot = null;
      if (!pinned.contains(v)) {
        for (Slot s : free) if (s.bytes >= bytes && (slot == null || s.bytes < slot.bytes)) slot = s;
        if (slot != null) free.remove(slot);
      }
      if (slot == null) {
        slot = new Slot(slots.size(), bytes);
        slots.add(slot);
        planned += bytes;
      }
      slotOf.put(v, slot);
      if (!pinned.contains(v)) {
        int last = lastUse.getOrDefault(v, i);
        releaseAfter.computeIfAbsent(last, k -> new ArrayList<>()).add(slot);
      }
      List<Slot> released = releaseAfter.remove(i);
      if (released != null) free.addAll(released);
    }
    long[] sizes = new long[slots.size()];
    for (Slot sl : slots) sizes[sl.index] = sl.bytes;
    List<Backend.Buffer> allocated = backend.allocateAll(sizes);
    owned.addAll(allocated);
    for (Map.Entry<Value, Slot> e : slotOf.entrySet()) buffers.put(e.getKey(), allocated.get(e.getValue().index));
    this.plannedBytes = planned;
    this.unplannedBytes = unplanned;
    Backend.Fence f = null;
    try {
      f = backend.newFence();
    } finally {
      if (f == null) for (Backend.Buffer b : owned) b.close();
    }
    this.fence = f;
  }

  private record Slot(int index, long bytes) {}

  /**
   * Runs the graph. {@code inputs} maps each graph input's name to a {@code float[]} (F32) or
   * {@code int[]} (I32) in row-major order. Returns the graph outputs, then the captured values,
   * by name. The same as {@link #submit} then {@link #collect}.
   */
  public Map<String, float[]> run(Map<String, ?> inputs) {
    submit(inputs);
    return collect();
  }

  /**
   * Writes the inputs (see {@link #run}) and queues the graph's work; the outputs are read by
   * {@link #collect()}. On an asynchronous backend (a GPU) this returns once the work is queued,
   * so the caller can submit another executor's batch, whose inputs then upload while this one
   * computes; synchronous backends compute here. The input arrays may be reused as soon as this
   * returns. One submitted run per executor at a time.
   *
   * @throws IllegalStateException when a submitted run has not been collected yet
   */
  public void submit(Map<String, ?> inputs) {
    ensureIdle();
    for (Map.Entry<String, Value> e : graph.inputs().entrySet()) {
      Object host = inputs.get(e.getKey());
      if (host == null) throw new IllegalArgumentException("missing graph input " + e.getKey());
      long n = host instanceof float[] f ? f.length : host instanceof int[] a ? a.length : -1;
      if (n != e.getValue().spec().elements()) {
        throw new IllegalArgumentException("graph input " + e.getKey() + " needs " + e.getValue().spec().elements() + " values of "
            + e.getValue().spec() + ", got " + (n < 0 ? host.getClass().getSimpleName() : n));
      }
    }
    try {
      for (Map.Entry<String, Value> e : graph.inputs().entrySet()) {
        backend.write(buffers.get(e.getValue()), e.getValue().spec(), inputs.get(e.getKey()));
      }
      launch();
    } catch (RuntimeException e) {
      settle(e);
      throw e;
    }
    written = true;
  }

  /**
   * Queues the graph's work again on the inputs the last {@link #submit} wrote, which stay in the
   * backend's buffers: for benchmarks of the device work alone. Collect it as a submitted run.
   */
  public void resubmit() {
    ensureIdle();
    if (!written) throw new IllegalStateException("resubmit() needs the inputs of an earlier submit(inputs)");
    try {
      launch();
    } catch (RuntimeException e) {
      settle(e);
      throw e;
    }
  }

  /** Blocks until the submitted run's work is done, without reading its outputs (idempotent). */
  public void await() {
    if (!submitted) throw new IllegalStateException("nothing submitted: call submit(inputs) first");
    fence.await();
  }

  /**
   * Waits for the submitted run (not for work queued after it, such as another executor's next
   * batch) and returns its outputs, then the captured values, by name.
   *
   * @throws IllegalStateException when nothing was submitted
   */
  public Map<String, float[]> collect() {
    if (!submitted) throw new IllegalStateException("nothing submitted: call submit(inputs) first");
    // Whatever happens now, the run is over: a failed read leaves the executor usable (or closable).
    submitted = false;
    fence.await();
    Map<String, float[]> out = new LinkedHashMap<>();
    for (Map.Entry<String, Value> e : graph.outputs().entrySet()) {
      out.put(e.getKey(), backend.read(buffers.get(e.getValue()), e.getValue().spec(), fence));
    }
    for (Map.Entry<String, Value> e : captured.entrySet()) {
      if (!out.containsKey(e.getKey())) out.put(e.getKey(), backend.read(buffers.get(e.getValue()), e.getValue().spec(), fence));
    }
    return out;
  }

  /** Whether a submitted run waits to be collected. */
  public boolean submitted() {
    return submitted;
  }

  private void ensureIdle() {
    if (closed) throw new IllegalStateException("executor is closed");
    if (submitted) {
      throw new IllegalStateException("this executor's submitted run has not been collected: call collect() before submitting again "
          + "(use a second executor to keep two batches in flight)");
    }
  }

  /** Queues the node loop, or replays its recording (recorded on the second run), and marks its end. */
  private void launch() {
    if (recording == null && replay && runs >= 1 && recordingFailure == null) {
      try {
        recording = backend.record(this::runNodes);
      } catch (RuntimeException e) {
        // Recording (a CUDA graph capture) only speeds runs up: when the backend cannot record this
        // loop, run it node by node from now on rather than fail this and every later run.
        recordingFailure = e;
      }
    }
    if (recording != null) recording.replay();
    else runNodes();
    runs++;
    fence.mark();
    submitted = true;
  }

  /**
   * After a failed submit: waits for whatever it had queued (an input upload, the first nodes),
   * so that the next submit does not write buffers that queued work still reads.
   */
  private void settle(RuntimeException failure) {
    try {
      fence.mark();
      fence.await();
    } catch (RuntimeException e) {
      failure.addSuppressed(e);
    }
  }

  private void runNodes() {
    for (Node n : graph.nodes()) {
      if (n.op() == Op.INPUT) continue;
      List<Backend.Buffer> in = new ArrayList<>(n.inputs().size());
      for (Value v : n.inputs()) in.add(buffers.get(v));
      backend.execute(n, in, buffers.get(n.output()));
    }
  }

  /** Whether runs replay a recording (after the first run, on a backend that records). */
  public boolean replaying() {
    return recording != null;
  }

  /** The exception that made recording fail (runs are then node by node), or null. */
  public RuntimeException recordingFailure() {
    return recordingFailure;
  }

  /** The graph this executor runs: the one it was given, as its backend prepared it ({@link Backend#prepare}). */
  public Graph graph() {
    return graph;
  }

  /** Bytes of activation memory allocated after planning. */
  public long plannedBytes() {
    return plannedBytes;
  }

  /** Bytes that one buffer per value would take. */
  public long unplannedBytes() {
    return unplannedBytes;
  }

  /**
   * Frees the executor's buffers and recording; a submitted run that was not collected is waited
   * for first (its work still uses the buffers).
   */
  @Override
  public void close() {
    if (closed) return;
    closed = true;
    try {
      if (submitted) {
        submitted = false;
        fence.await();
      }
    } finally {
      try {
        if (recording != null) recording.close();
        recording = null;
      } finally {
        try {
          for (Backend.Buffer b : owned) b.close();
          owned.clear();
        } finally {
          fence.close();
        }
      }
    }
  }
}
