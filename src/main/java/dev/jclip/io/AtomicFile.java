package dev.jclip.io;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/**
 * A file written under a temporary name beside its target and moved into place only when
 * complete: readers (and a job resumed after a crash) never see a partial file. {@link #commit()}
 * syncs and renames; {@link #close()} without a commit deletes the partial file.
 *
 * <pre>{@code
 * try (AtomicFile f = AtomicFile.create(path)) {
 *   f.channel().write(buffer);
 *   f.commit();
 * }
 * }</pre>
 */
public final class AtomicFile implements AutoCloseable {
  private final Path target;
  private final Path tmp;
  private final FileChannel channel;
  private boolean committed;
  private boolean closed;

  private AtomicFile(Path target, Path tmp, FileChannel channel) {
    this.target = target;
    this.tmp = tmp;
    this.channel = channel;
  }

  /** Opens a temporary file in {@code file}'s folder, which must exist. */
  public static AtomicFile create(Path file) throws IOException {
    Path abs = file.toAbsolutePath();
    Path dir = abs.getParent();
    if (dir != null && !Files.isDirectory(dir)) throw new NoSuchFileException(file.toString(), null, "folder does not exist");
    Path tmp = Files.createTempFile(dir, "." + abs.getFileName(), ".tmp");
    try {
      return new AtomicFile(abs, tmp, FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING));
    } catch (IOException | RuntimeException e) {
      Files.deleteIfExists(tmp);
      throw e;
    }
  }

  /** The absolute path the file will have once committed. */
  public Path target() {
    return target;
  }

  public FileChannel channel() {
    if (closed || committed) throw new IllegalStateException(target + ": already " + (committed ? "committed" : "closed"));
    return channel;
  }

  public boolean committed() {
    return committed;
  }

  /** Syncs the data to disk and moves the file into place (atomically where the file system can). */
  public void commit() throws IOException {
    if (closed || committed) throw new IllegalStateException(target + ": already " + (committed ? "committed" : "closed"));
    channel.force(true);
    channel.close();
    try {
      Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } catch (AtomicMoveNotSupportedException e) {
      Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
    }
    committed = true;
  }

  /** Releases the file; without a preceding {@link #commit()} the partial output is deleted. */
  @Override
  public void close() throws IOException {
    if (closed) return;
    closed = true;
    if (!committed) {
      try {
        channel.close();
      } finally {
        Files.deleteIfExists(tmp);
      }
    }
  }
}
