package dev.jclip.backend.cuda;

import static dev.jclip.backend.cuda.CudaDriver.check;
import static org.bytedeco.cuda.global.cudart.CU_EVENT_DEFAULT;
import static org.bytedeco.cuda.global.cudart.cuEventCreate;
import static org.bytedeco.cuda.global.cudart.cuEventDestroy;
import static org.bytedeco.cuda.global.cudart.cuEventElapsedTime;
import static org.bytedeco.cuda.global.cudart.cuEventRecord;
import static org.bytedeco.cuda.global.cudart.cuEventSynchronize;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.cuda.cudart.CUevent_st;

/**
 * Where a forward pass spends its GPU time: a {@link CudaBackend} given a profile ({@link
 * CudaBackend#profile}) records a pair of timing events around every node it runs, and {@link
 * #totals()} sums the elapsed times by op and role, the layer index left out ({@code LINEAR
 * visual.transformer.resblocks.*.mlp.c_fc}). For an executor that runs node by node (not
 * replaying a CUDA graph, where no event can be recorded from the host between nodes); the events
 * themselves add a few microseconds per node, so the figures are for large batches.
 */
public final class KernelProfile implements AutoCloseable {
  private record Span(String label, CUevent_st start, CUevent_st end) {}

  private final CudaDevice device;
  private final List<Span> spans = new ArrayList<>();
  private CUevent_st open;
  private String openLabel;
  private boolean closed;

  public KernelProfile(CudaDevice device) {
    this.device = device;
  }

  /** Marks the start of node {@code label}'s work on {@code stream}. */
  void begin(String label, CudaStream stream) {
    if (closed) throw new IllegalStateException("kernel profile is closed");
    if (open != null) throw new IllegalStateException("kernel profile: " + openLabel + " was begun and not ended");
    open = record(stream);
    openLabel = label;
  }

  /** Marks the end of the node begun last. */
  void end(CudaStream stream) {
    if (open == null) throw new IllegalStateException("kernel profile: end without begin");
    spans.add(new Span(openLabel, open, record(stream)));
    open = null;
  }

  private CUevent_st record(CudaStream stream) {
    device.makeCurrent();
    CUevent_st e = new CUevent_st();
    check(cuEventCreate(e, CU_EVENT_DEFAULT), "cuEventCreate(profile)");
    check(cuEventRecord(e, stream.handle()), "cuEventRecord(profile)");
    return e;
  }

  /** Nodes timed so far. */
  public int spans() {
    return spans.size();
  }

  /**
   * Milliseconds and node count per label, largest first; waits for the last timed node. A label
   * is the op and the node's name with its layer index replaced by {@code *}.
   */
  public Map<String, double[]> totals() {
    Map<String, double[]> by = new LinkedHashMap<>();
    if (spans.isEmpty()) return by;
    device.makeCurrent();
    check(cuEventSynchronize(spans.get(spans.size() - 1).end()), "cuEventSynchronize(profile)");
    float[] ms = new float[1];
    for (Span s : spans) {
      check(cuEventElapsedTime(ms, s.start(), s.end()), "cuEventElapsedTime(profile, " + s.label() + ")");
      double[] t = by.computeIfAbsent(s.label(), k -> new double[2]);
      t[0] += ms[0];
      t[1]++;
    }
    List<Map.Entry<String, double[]>> sorted = new ArrayList<>(by.entrySet());
    sorted.sort((a, b) -> Double.compare(b.getValue()[0], a.getValue()[0]));
    Map<String, double[]> out = new LinkedHashMap<>();
    for (Map.Entry<String, double[]> e : sorted) out.put(e.getKey(), e.getValue());
    return out;
  }

  /** The {@code top} largest labels as lines: milliseconds, share of the total, node count, label. */
  public List<String> report(int top) {
    Map<String, double[]> t = totals();
    double total = 0;
    for (double[] v : t.values()) total += v[0];
    List<String> lines = new ArrayList<>();
    lines.add(String.format("%9.3f ms total over %d nodes", total, spans.size()));
    int i = 0;
    for (Map.Entry<String, double[]> e : t.entrySet()) {
      if (i++ == top) break;
      lines.add(String.format("%9.3f ms %5.1f%% %4d x %s", e.getValue()[0], 100 * e.getValue()[0] / total, (int) e.getValue()[1], e.getKey()));
    }
    return lines;
  }

  /** The label of a node: its op and its name with the layer index replaced by {@code *}. */
  static String label(String op, String name) {
    return op + " " + name.replaceAll("\\.(resblocks|layer\\d)\\.\\d+", ".$1.*");
  }

  @Override
  public void close() {
    if (closed) return;
    closed = true;
    device.makeCurrent();
    RuntimeException first = null;
    List<CUevent_st> all = new ArrayList<>();
    for (Span s : spans) {
      all.add(s.start());
      all.add(s.end());
    }
    if (open != null) all.add(open);
    for (CUevent_st e : all) {
      try {
        check(cuEventDestroy(e), "cuEventDestroy(profile)");
      } catch (RuntimeException ex) {
        if (first == null) first = ex;
      }
    }
    spans.clear();
    open = null;
    if (first != null) throw first;
  }
}
