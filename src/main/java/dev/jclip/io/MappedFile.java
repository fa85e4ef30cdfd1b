package dev.jclip.io;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * A whole file mapped read-only into memory, or a byte array standing in for one (tests).
 *
 * <p>Tensors read from a checkpoint are views of this mapping. The mapping belongs to an automatic
 * arena: it is released by the garbage collector once neither this object nor any tensor view of
 * it is reachable, so a view can never outlive its memory (no use-after-unmap), and tensors stay
 * valid after the {@link Checkpoint} that produced them is closed, as with {@link
 * SafetensorsReader}. The file handle itself is closed as soon as the mapping exists. One mapping
 * of the whole file (a {@link MemorySegment}) handles files over 2 GiB; each tensor is sliced out
 * of it.
 */
public final class MappedFile {
  private final Path path;
  private final MemorySegment segment;

  private MappedFile(Path path, MemorySegment segment) {
    this.path = path;
    this.segment = segment;
  }

  /** Maps {@code path} read-only. */
  public static MappedFile open(Path path) throws IOException {
    if (!Files.exists(path)) throw new NoSuchFileException(path.toString(), null, "no such file");
    if (!Files.isRegularFile(path)) throw new CheckpointException(path, null, "not a regular file");
    try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
      long size = ch.size();
      MemorySegment seg = size == 0 ? MemorySegment.NULL : ch.map(FileChannel.MapMode.READ_ONLY, 0, size, Arena.ofAuto());
      return new MappedFile(path, seg);
    } catch (java.nio.channels.ClosedByInterruptException e) {
      // the calling thread was interrupted (before or while opening): its interrupt status stays set
      java.io.InterruptedIOException io = new java.io.InterruptedIOException(path + ": opening the file was interrupted (the thread's interrupt)");
      io.initCause(e);
      throw io;
    }
  }

  /** A byte array seen as a file named {@code label} (no copy: later changes to the array show). */
  public static MappedFile ofBytes(String label, byte[] bytes) {
    return new MappedFile(Path.of(label), MemorySegment.ofArray(bytes));
  }

  /** The first {@code length} bytes of this file as another file: for truncation tests. */
  public MappedFile prefix(long length) {
    return new MappedFile(path, segment.asSlice(0, length));
  }

  /** The file (for arrays: the name given), as used in error messages. */
  public Path path() {
    return path;
  }

  public MemorySegment segment() {
    return segment;
  }

  public long size() {
    return segment.byteSize();
  }
}
