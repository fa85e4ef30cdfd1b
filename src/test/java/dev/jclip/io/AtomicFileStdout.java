package dev.jclip.io;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/** {@link AtomicFileTest}'s child process: writes args[1] to args[0] with an AtomicFile, then "after" on stdout; exit 3 when the commit fails. */
public final class AtomicFileStdout {
  public static void main(String[] args) throws Exception {
    try (AtomicFile f = AtomicFile.create(Path.of(args[0]))) {
      f.channel().write(ByteBuffer.wrap(args[1].getBytes(StandardCharsets.UTF_8)));
      f.commit();
    } catch (java.io.IOException e) {
      System.err.println("commit failed: " + e.getMessage());
      System.exit(3);
    }
    System.out.println("after");
  }
}
