package dev.jclip.pipeline;

import java.io.PrintStream;
import java.io.PrintWriter;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Progress of a job: a bar redrawn in place on a terminal, periodic plain lines otherwise (logs,
 * CI). Counters are updated by the writer stage; {@link #report(boolean)} is called by a timer.
 * Used by {@code jclip embed} ({@link EmbedJob}) and {@code jclip zeroshot}.
 */
public final class Progress {
  /** {@code --progress}: a bar on a terminal and lines otherwise, a bar, lines, or nothing. */
  public enum Mode {
    AUTO,
    BAR,
    LINES,
    NONE
  }

  private final PrintWriter out;
  private final String prefix;
  private final boolean bar;
  private final boolean silent;
  private final long total;
  private final long startNanos = System.nanoTime();
  final AtomicLong done = new AtomicLong();
  final AtomicLong errors = new AtomicLong();
  final AtomicLong skipped = new AtomicLong();

  Progress(Mode mode, PrintStream out, long total) {
    this(mode, new PrintWriter(out, true), total, "embed");
  }

  /**
   * @param total items expected, or -1 when unknown
   * @param prefix starts each plain line (e.g. "embed", "jclip zeroshot")
   */
  public Progress(Mode mode, PrintWriter out, long total, String prefix) {
    this.out = out;
    this.prefix = prefix;
    this.total = total;
    // Since JDK 22 System.console() is non-null even when redirected; isTerminal() tells.
    java.io.Console console = System.console();
    Mode m = mode == Mode.AUTO ? (console != null && console.isTerminal() ? Mode.BAR : Mode.LINES) : mode;
    this.bar = m == Mode.BAR;
    this.silent = m == Mode.NONE;
  }

  /** The status text: counts, rate, ETA when the total is known, errors. */
  String line() {
    double secs = Math.max(1e-9, (System.nanoTime() - startNanos) / 1e9);
    long d = done.get();
    double rate = d / secs;
    StringBuilder s = new StringBuilder();
    long all = total < 0 ? -1 : total - skipped.get();
    if (all > 0) {
      double frac = Math.min(1.0, (double) d / all);
      if (bar) {
        int w = 30;
        int fill = (int) Math.round(frac * w);
        s.append('[').append("#".repeat(fill)).append("-".repeat(w - fill)).append("] ");
      }
      s.append(d).append('/').append(all).append(String.format(Locale.ROOT, " (%.0f%%)", 100 * frac));
    } else {
      s.append(d).append(d == 1 ? " item" : " items");
    }
    s.append(String.format(Locale.ROOT, ", %.1f items/s", rate));
    if (all > 0 && rate > 0 && d < all) s.append(", ETA ").append(duration((all - d) / rate));
    s.append(", ").append(errors.get()).append(errors.get() == 1 ? " error" : " errors");
    return s.toString();
  }

  /** {@code --progress}'s value: auto, bar, lines or none. */
  public static Mode mode(String s) {
    try {
      return Mode.valueOf(s.toUpperCase(Locale.ROOT));
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("--progress must be auto, bar, lines or none, not '" + s + "'");
    }
  }

  /** One more item handled; {@code failed}: it could not be used. */
  public void advance(boolean failed) {
    if (failed) errors.incrementAndGet();
    done.incrementAndGet();
  }

  /**
   * Prints a message line (e.g. a skipped input) to the same stream: on a terminal the bar's line
   * is cleared first, so the message does not run on after the bar, which the next report redraws.
   */
  public void message(String line) {
    synchronized (out) {
      if (bar) out.print("\r\u001b[K");
      out.println(line);
      out.flush();
    }
  }

  /** Prints the status now ({@code last}: the final report, which ends the bar's line). */
  public void report(boolean last) {
    if (silent) return;
    synchronized (out) {
      print(last);
    }
  }

  private void print(boolean last) {
    if (bar) {
      out.print("\r" + line() + "\u001b[K" + (last ? "\n" : ""));
    } else {
      out.println(prefix + ": " + line());
    }
    out.flush();
  }

  static String duration(double seconds) {
    long s = Math.round(seconds);
    if (s < 60) return s + "s";
    if (s < 3600) return String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60);
    return String.format(Locale.ROOT, "%dh%02dm", s / 3600, (s % 3600) / 60);
  }
}
