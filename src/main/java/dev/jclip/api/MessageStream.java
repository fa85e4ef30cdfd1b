package dev.jclip.api;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.function.Consumer;

/**
 * A {@link PrintStream} for code that reports on a stream (a download's progress) whose lines go
 * to a {@link Clip.Options#withMessages messages} consumer instead: one call per line, without its
 * line end (LF or CRLF); text a carriage return went back over (a progress bar redrawn) is
 * dropped, so a consumer gets the bar's last state only, when its line ends. A line not ended is
 * not said.
 */
final class MessageStream extends OutputStream {
  private final Consumer<String> sink;
  private final ByteArrayOutputStream line = new ByteArrayOutputStream();
  /** A carriage return just seen: a line end if a line feed follows (CRLF), else the line is redrawn. */
  private boolean cr;

  private MessageStream(Consumer<String> sink) {
    this.sink = sink;
  }

  /** stderr itself when {@code sink} is null, else a stream saying each line to {@code sink}. */
  static PrintStream of(Consumer<String> sink) {
    return sink == null ? System.err : new PrintStream(new MessageStream(sink), true, StandardCharsets.UTF_8);
  }

  @Override
  public synchronized void write(int b) {
    if (b == '\n') {
      cr = false;
      String s = line.toString(StandardCharsets.UTF_8);
      line.reset();
      if (!s.isBlank()) say(s.stripTrailing());
      return;
    }
    if (cr) line.reset(); // what the carriage return went back over
    cr = b == '\r';
    if (!cr) line.write(b);
  }

  /** A consumer's failure is not the download's: the line is dropped. */
  private void say(String s) {
    try {
      sink.accept(s);
    } catch (RuntimeException ignored) {
      // the caller's logging failed; jclip's work goes on
    }
  }

  @Override
  public synchronized void write(byte[] b, int off, int len) {
    for (int i = off; i < off + len; i++) write(b[i]);
  }
}
