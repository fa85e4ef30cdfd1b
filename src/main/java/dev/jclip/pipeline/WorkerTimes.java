package dev.jclip.pipeline;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Map;
import java.util.concurrent.atomic.LongAdder;

/**
 * What decoding and preprocessing cost on a pool of worker threads, summed over the workers: each
 * step's thread CPU time (what it costs) and its elapsed time (which also counts waiting for a
 * core: on a machine whose cores the model shares, it is the larger). Shared by {@link EmbedJob}
 * and {@link OrderedDecoder}, which report the same four figures.
 */
final class WorkerTimes {
  private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();

  /** A step of a worker, timed on the calling thread; {@code E} is what it may throw. */
  interface Step<T, E extends Exception> {
    T run() throws E;
  }

  private final LongAdder decodeCpu = new LongAdder();
  private final LongAdder decodeWall = new LongAdder();
  private final LongAdder preprocessCpu = new LongAdder();
  private final LongAdder preprocessWall = new LongAdder();

  /** Runs a decode step and adds its times. */
  <T, E extends Exception> T decode(Step<T, E> step) throws E {
    return timed(step, decodeCpu, decodeWall);
  }

  /** Runs a preprocessing step and adds its times. */
  <T, E extends Exception> T preprocess(Step<T, E> step) throws E {
    return timed(step, preprocessCpu, preprocessWall);
  }

  private static <T, E extends Exception> T timed(Step<T, E> step, LongAdder cpu, LongAdder wall) throws E {
    long t = System.nanoTime(), c = cpuNanos(t);
    T result = step.run();
    long t1 = System.nanoTime();
    wall.add(t1 - t);
    cpu.add(cpuNanos(t1) - c);
    return result;
  }

  /** This thread's CPU time, or {@code wall} where the JVM cannot measure it. */
  private static long cpuNanos(long wall) {
    long cpu = THREADS.isCurrentThreadCpuTimeSupported() ? THREADS.getCurrentThreadCpuTime() : -1;
    return cpu < 0 ? wall : cpu;
  }

  /** Puts decode_cpu_s, preprocess_cpu_s, decode_wall_s and preprocess_wall_s (seconds) into {@code t}, in that order. */
  void putInto(Map<String, Double> t) {
    t.put("decode_cpu_s", decodeCpu.sum() / 1e9);
    t.put("preprocess_cpu_s", preprocessCpu.sum() / 1e9);
    t.put("decode_wall_s", decodeWall.sum() / 1e9);
    t.put("preprocess_wall_s", preprocessWall.sum() / 1e9);
  }
}
