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
 * <p>Tensors read from a checkpoint are views of this mapping: closing it unmaps the file, after
 * which touching such a tensor's data throws {@link IllegalStateException} (never a crash). Keep
 * it open as long as the weights are used, or copy them first. A mapping of the whole file (one
 * {@link MemorySegment}) handles files over 2 GiB; each tensor is sliced out of it.
 */
public final class MappedFile implements AutoCloseable {
  private final Path path;
  private final MemorySegment segment;
  private final Arena arena; // null for arrays: nothing to release

  private MappedFile(Path path, MemorySegment segment, Arena arena) {
    this.path = path;
    this.segment = segment;
    this.arena = arena;
  }

  /** Maps {@code path} read-only. */
  public static MappedFile open(Path path) throws IOException {
    if (!Files.exists(path)) throw new NoSuchFileException(path.toString(), null, "no such file");
    if (!Files.isRegularFile(path)) throw new CheckpointException(path, null, "not a regular file");
    Arena arena = Arena.ofShared();
    try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
      long size = ch.size();
      MemorySegment seg = size == 0 ? MemorySegment.NULL : ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
      return new MappedFile(path, seg, arena);
    } catch (IOException | RuntimeException e) {
      arena.close();
      throw e;
    }
  }

  /** A byte array seen as a file named {@code label} (no copy: later changes to the array show). */
  public static MappedFile ofBytes(String label, byte[] bytes) {
    return new MappedFile(Path.of(label), MemorySegment.ofArray(bytes), null);
  }

  /** The first {@code length} bytes of this file as another (unowned) file: for truncation tests. */
  public MappedFile prefix(long length) {
    return new MappedFile(path, segment.asSlice(0, length), null);
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

  @Override
  public void close() {
    if (arena != null && arena.scope().isAlive()) arena.close();
  }
}
