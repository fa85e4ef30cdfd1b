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
    PENDING.add(tmp);
  }

  /**
   * Temporary files not yet committed or closed: deleted when the JVM is stopped (SIGTERM, Ctrl-C)
   * while they are written, so that a killed command leaves no {@code .NAME.*.tmp} beside its
   * outputs. A SIGKILL runs no hook; a job resumed later removes what it finds (EmbedJob).
   */
  private static final java.util.Set<Path> PENDING = java.util.concurrent.ConcurrentHashMap.newKeySet();

  static {
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      for (Path p : PENDING) {
        try {
          Files.deleteIfExists(p);
        } catch (IOException | RuntimeException e) {
          // the JVM is stopping: nothing more to do
        }
      }
    }, "jclip-temporary-files"));
  }

  /** Writes all of {@code b} at the channel's position; a failure (a full disk) names the target. */
  public void write(java.nio.ByteBuffer b) throws IOException {
    SafetensorsWriter.writeFully(channel(), b, target);
  }

  /** The file as a stream (not buffered) whose failures name the target. */
  public java.io.OutputStream stream() {
    java.io.OutputStream raw = java.nio.channels.Channels.newOutputStream(channel());
    return new java.io.FilterOutputStream(raw) {
      @Override
      public void write(byte[] b, int off, int len) throws IOException {
        try {
          raw.write(b, off, len);
        } catch (IOException e) {
          throw SafetensorsWriter.named(target, e);
        }
      }

      @Override
      public void write(int b) throws IOException {
        write(new byte[] {(byte) b}, 0, 1);
      }

      @Override
      public void close() {} // the AtomicFile commits or closes the channel
    };
  }

  /**
   * What writing {@code file} would replace: for a regular file or a path that does not exist yet,
   * the path with its symbolic links followed (a dangling link gives the path it points to) in the
   * real path of its folder, which must exist; for an existing file that is not a regular one (a
   * device, a FIFO) or a process's open file ({@code /dev/stdout}, {@code /dev/fd/N},
   * {@code /proc/PID/fd/N}, whatever they lead to), the path as given, to be written in place. A
   * folder is refused. The commands call it before their work, so that a bad output path fails at
   * once.
   */
  public static Path resolveTarget(Path file) throws IOException {
    Path p = file.toAbsolutePath();
    if (Files.isDirectory(p)) throw new IOException(file + " is a folder; give a file name");
    if (inPlace(p)) return p;
    for (int hops = 0; Files.isSymbolicLink(p); hops++) {
      if (hops == 40) throw new IOException(file + ": too many levels of symbolic links");
      // not normalised: ".." after a linked folder is the OS's to resolve, as it would when opening the path
      p = p.getParent().resolve(Files.readSymbolicLink(p));
      if (inPlace(p)) return file.toAbsolutePath();
    }
    Path dir = p.getParent(), name = p.getFileName();
    if (dir == null || name == null || !Files.isDirectory(dir)) {
      throw new NoSuchFileException(file.toString(), null, "folder " + dir + " does not exist");
    }
    Path target = dir.toRealPath().resolve(name);
    if (Files.isDirectory(target)) throw new IOException(file + " is a folder; give a file name");
    return target;
  }

  private static final java.util.regex.Pattern OPEN_FILE = java.util.regex.Pattern.compile("/dev/(stdout|stderr|stdin|fd/.*)|/proc/[^/]+/fd/.*");

  /** Whether {@code p} is written in place: an existing file that is not a regular one, or a process's open file. */
  private static boolean inPlace(Path p) {
    return OPEN_FILE.matcher(p.toString()).matches() || (Files.exists(p) && !Files.isRegularFile(p));
  }

  /** Opens a temporary file beside {@code file}'s target (see {@link #resolveTarget}), whose folder must exist. */
  public static AtomicFile create(Path file) throws IOException {
    Path abs = resolveTarget(file);
    boolean inPlace = inPlace(abs);
    Path dir = inPlace ? Path.of(System.getProperty("java.io.tmpdir")) : abs.getParent();
    Path tmp;
    FileChannel ch;
    for (int attempt = 0; ; attempt++) {
      // Private (0600) while it is written; commit gives it its final permissions.
      tmp = dir.resolve("." + abs.getFileName() + "." + Long.toUnsignedString(RANDOM.nextLong(), 36) + ".tmp");
      try {
        ch = FileChannel.open(tmp, java.util.Set.of(StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE, StandardOpenOption.READ), PRIVATE);
        break;
      } catch (java.nio.file.FileAlreadyExistsException e) {
        if (attempt == 100) throw e;
      } catch (java.nio.file.AccessDeniedException e) {
        throw new java.nio.file.AccessDeniedException(file.toString(), null, "cannot write in folder " + dir + " (permission denied)");
      } catch (java.nio.file.FileSystemException e) { // a read-only file system: name the file asked for, not the temporary one
        throw new java.nio.file.FileSystemException(file.toString(), null, "cannot write in folder " + dir + " (" + e.getReason() + ")");
      } catch (UnsupportedOperationException e) { // a file system without POSIX permissions
        ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE, StandardOpenOption.READ);
        break;
      }
    }
    return new AtomicFile(abs, tmp, ch, inPlace);
  }

  private static final java.nio.file.attribute.FileAttribute<?>[] PRIVATE =
      {java.nio.file.attribute.PosixFilePermissions.asFileAttribute(java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"))};

  private static final java.security.SecureRandom RANDOM = new java.security.SecureRandom();

  /** A new file's permissions in this process (0666 less the umask), found once by making a file. */
  private static volatile java.util.Set<java.nio.file.attribute.PosixFilePermission> newFilePermissions;

  private static java.util.Set<java.nio.file.attribute.PosixFilePermission> newFilePermissions(Path dir) throws IOException {
    if (newFilePermissions == null) {
      Path probe = dir.resolve(".jclip-umask-" + Long.toUnsignedString(RANDOM.nextLong(), 36) + ".tmp");
      Files.createFile(probe);
      try {
        newFilePermissions = Files.getPosixFilePermissions(probe);
      } finally {
        Files.deleteIfExists(probe);
      }
    }
    return newFilePermissions;
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

  /**
   * Syncs the data to disk and moves the file into place (atomically where the file system can),
   * with the replaced file's permissions; a target that is not a regular file gets the bytes
   * written into it instead.
   */
  public void commit() throws IOException {
    if (closed || committed) throw new IllegalStateException(target + ": already " + (committed ? "committed" : "closed"));
    try {
      commitNow();
    } catch (IOException e) {
      throw SafetensorsWriter.named(target, e); // a full disk at the sync, a failed rename: the file named
    }
  }

  private void commitNow() throws IOException {
    PENDING.remove(tmp); // moved into place below, or deleted
    if (inPlace) {
      try {
        writeInPlace();
      } finally {
        channel.close();
        Files.deleteIfExists(tmp);
      }
      committed = true;
      return;
    }
    channel.force(true);
    channel.close();
    try {
      Files.setPosixFilePermissions(tmp, Files.exists(target) ? Files.getPosixFilePermissions(target) : newFilePermissions(tmp.getParent()));
    } catch (IOException | UnsupportedOperationException e) {
      // a file system without POSIX permissions, or one that refuses them: the file keeps what it has
    }
    try {
      Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } catch (AtomicMoveNotSupportedException e) {
      Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
    }
    committed = true;
  }

  /**
   * The temporary file's bytes into the target: standard output and error through the process's
   * own descriptors (whatever they are: a terminal, a pipe, a file opened for appending), anything
   * else opened for writing.
   */
  private void writeInPlace() throws IOException {
    String t = target.toString();
    java.io.FileDescriptor fd = t.matches("/dev/stdout|/dev/fd/1|/proc/self/fd/1") ? java.io.FileDescriptor.out
        : t.matches("/dev/stderr|/dev/fd/2|/proc/self/fd/2") ? java.io.FileDescriptor.err : null;
    long size = channel.size();
    if (fd != null) {
      System.out.flush();
      System.err.flush();
      try (java.io.FileOutputStream stream = new java.io.FileOutputStream(fd) {
        @Override
        public void close() {} // the process's descriptor stays open
      }) {
        java.io.OutputStream buffered = new java.io.BufferedOutputStream(stream, 1 << 16);
        java.nio.channels.WritableByteChannel into = java.nio.channels.Channels.newChannel(buffered);
        for (long at = 0; at < size; ) at += channel.transferTo(at, size - at, into);
        buffered.flush();
      }
      return;
    }
    try (FileChannel out = FileChannel.open(target, StandardOpenOption.WRITE)) {
      for (long at = 0; at < size; ) at += channel.transferTo(at, size - at, out);
    }
  }

  /** Whether the target is written in place at commit (a device, a FIFO, a process's open file) rather than renamed over. */
  public boolean inPlace() {
    return inPlace;
  }

  /** Whether {@code file} would be written in place (see {@link #resolveTarget}): its commands then say what they wrote on stderr, not beside it. */
  public static boolean writesInPlace(Path file) {
    try {
      return inPlace(resolveTarget(file));
    } catch (IOException e) {
      return false;
    }
  }

  /** Releases the file; without a preceding {@link #commit()} the partial output is deleted. */
  @Override
  public void close() throws IOException {
    if (closed) return;
    closed = true;
    PENDING.remove(tmp);
    if (!committed) {
      try {
        channel.close();
      } finally {
        Files.deleteIfExists(tmp);
      }
    }
  }
}
