package dev.jclip.cli;

import dev.jclip.pipeline.Progress;
import java.io.PrintWriter;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A {@link Progress} reported every {@code intervalMillis} on a daemon thread, for the commands
 * that run one loop (embed-images, embed-texts). A run shorter than one interval prints nothing
 * (its summary line says it all); a longer one ends with a last report.
 */
final class ProgressTicker implements AutoCloseable {
  final Progress progress;
  private final ScheduledExecutorService ticker;
  private final AtomicBoolean reported = new AtomicBoolean();

  ProgressTicker(Progress.Mode mode, PrintWriter err, long total, String prefix, long intervalMillis) {
    progress = new Progress(mode, err, total, prefix);
    ticker = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, prefix + "-progress");
      t.setDaemon(true);
      return t;
    });
    ticker.scheduleAtFixedRate(() -> {
      reported.set(true);
      progress.report(false);
    }, intervalMillis, intervalMillis, TimeUnit.MILLISECONDS);
  }

  /** A skipped input's line, clearing the bar first. */
  void message(String line) {
    progress.message(line);
  }

  private final AtomicBoolean closed = new AtomicBoolean();

  /** Stops the reports; the last one is printed once, here, where any was printed before. Closing again does nothing. */
  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) return;
    ticker.shutdownNow();
    try {
      ticker.awaitTermination(1, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    if (reported.get()) progress.report(true);
  }
}
