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
 * <p>The target is what the path names once its symbolic links are followed: a link is written
 * through, never replaced. A target that exists and is not a regular file (a device such as
 * {@code /dev/stdout}, a FIFO) is written in place at {@link #commit()} from a temporary file in
 * the system's temporary folder, and never renamed over; a folder is refused when the file is
 * created. The new file gets the permissions of the file it replaces, or the default ones of a new
 * file (the process's umask), not those of a private temporary file.
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
  /** Whether the target is not a regular file: the temporary file's bytes are copied into it at commit. */
  private final boolean inPlace;
  private boolean committed;
  private boolean closed;

  private AtomicFile(Path target, Path tmp, FileChannel channel, boolean inPlace) {
    this.target = target;
    this.tmp = tmp;
    this.channel = channel;
    this.inPlace = inPlace;
  }

  /**
   * What writing {@code file} would replace: for a regular file or a path that does not exist yet,
   * the path with its symbolic links followed (a dangling link gives the path it points to), in a
   * folder that must exist; for an existing file that is not a regular one (a device, a FIFO,
   * {@code /dev/stdout}), the path as given, to be written in place. A folder is refused. The
   * commands call it before their work, so that a bad output path fails at once.
   */
  public static Path resolveTarget(Path file) throws IOException {
    Path p = file.toAbsolutePath().normalize();
    if (Files.isDirectory(p)) throw new IOException(file + " is a folder; give a file name");
    if (Files.exists(p) && !Files.isRegularFile(p)) return p;
    for (int hops = 0; Files.isSymbolicLink(p); hops++) {
      if (hops == 40) throw new IOException(file + ": too many levels of symbolic links");
      Path parent = p.getParent();
      Path link = Files.readSymbolicLink(p);
      p = (parent == null ? link : parent.resolve(link)).toAbsolutePath().normalize();
    }
    Path dir = p.getParent();
    if (dir != null && !Files.isDirectory(dir)) throw new NoSuchFileException(file.toString(), null, "folder " + dir + " does not exist");
    return p;
  }

  /** Opens a temporary file beside {@code file}'s target (see {@link #resolveTarget}), whose folder must exist. */
  public static AtomicFile create(Path file) throws IOException {
    Path abs = resolveTarget(file);
    boolean inPlace = Files.exists(abs) && !Files.isRegularFile(abs);
    Path dir = inPlace ? Path.of(System.getProperty("java.io.tmpdir")) : abs.getParent();
    Path tmp;
    FileChannel ch;
    for (int attempt = 0; ; attempt++) {
      // Made with CREATE_NEW and no attributes, so that it gets a new file's default permissions
      // (Files.createTempFile would make it 0600).
      tmp = dir.resolve("." + abs.getFileName() + "." + Long.toUnsignedString(RANDOM.nextLong(), 36) + ".tmp");
      try {
        ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE, StandardOpenOption.READ);
        break;
      } catch (java.nio.file.FileAlreadyExistsException e) {
        if (attempt == 100) throw e;
      } catch (java.nio.file.AccessDeniedException e) {
        throw new java.nio.file.AccessDeniedException(file.toString(), null, "cannot write in folder " + dir + " (permission denied)");
      }
    }
    return new AtomicFile(abs, tmp, ch, inPlace);
  }

  private static final java.security.SecureRandom RANDOM = new java.security.SecureRandom();

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

  /**
   * Syncs the data to disk and moves the file into place (atomically where the file system can),
   * with the replaced file's permissions; a target that is not a regular file gets the bytes
   * written into it instead.
   */
  public void commit() throws IOException {
    if (closed || committed) throw new IllegalStateException(target + ": already " + (committed ? "committed" : "closed"));
    if (inPlace) {
      try (FileChannel out = FileChannel.open(target, StandardOpenOption.WRITE)) {
        long size = channel.size();
        for (long at = 0; at < size; ) at += channel.transferTo(at, size - at, out);
      }
      channel.close();
      Files.deleteIfExists(tmp);
      committed = true;
      return;
    }
    channel.force(true);
    channel.close();
    try {
      Files.setPosixFilePermissions(tmp, Files.getPosixFilePermissions(target));
    } catch (NoSuchFileException | UnsupportedOperationException e) {
      // a new file keeps its default permissions; a file system without POSIX permissions has none to copy
    }
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
