package dev.jclip.api;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.function.Consumer;

/**
 * A {@link PrintStream} for code that reports on a stream (a download's progress) whose lines go
 * to a {@link Clip.Options#withMessages messages} consumer instead: one call per line, without its
 * line end; text a carriage return overwrote (a progress bar redrawn) is dropped, so a consumer
 * gets the bar's last state only, when its line ends.
 */
final class MessageStream extends OutputStream {
  private final Consumer<String> sink;
  private final ByteArrayOutputStream line = new ByteArrayOutputStream();

  private MessageStream(Consumer<String> sink) {
    this.sink = sink;
  }

  /** stderr itself when {@code sink} is null, else a stream saying each line to {@code sink}. */
  static PrintStream of(Consumer<String> sink) {
    return sink == null ? System.err : new PrintStream(new MessageStream(sink), true, StandardCharsets.UTF_8);
  }

  @Override
  public synchronized void write(int b) {
    if (b == '\r') {
      line.reset();
    } else if (b == '\n') {
      String s = line.toString(StandardCharsets.UTF_8);
      line.reset();
      if (!s.isBlank()) sink.accept(s.stripTrailing());
    } else {
      line.write(b);
    }
  }

  @Override
  public synchronized void write(byte[] b, int off, int len) {
    for (int i = off; i < off + len; i++) write(b[i]);
  }
}
