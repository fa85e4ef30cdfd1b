package dev.jclip.io;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Writes tensors to a safetensors file, in the order given, with an optional {@code __metadata__}
 * string map.
 *
 * <p>The layout matches the reference implementation: the JSON header is padded with spaces so
 * that the data starts at a multiple of 8 bytes, and tensors are stored back to back. The file
 * appears atomically: it is written to a temporary file in the same folder and renamed over the
 * target, so a reader never sees a half-written file.
 *
 * <pre>{@code
 * SafetensorsWriter.write(Path.of("out.safetensors"),
 *     List.of(Tensor.ofFloats("x", new long[] {2, 2}, new float[] {1, 2, 3, 4})),
 *     Map.of("format", "pt"));
 * }</pre>
 *
 * <p>When the names and shapes are known up front but the data is produced one tensor at a time
 * (e.g. preprocessing thousands of images), {@link #open} streams it without holding it all.
 */
public final class SafetensorsWriter {
  private static final ObjectMapper JSON = new ObjectMapper();

  private SafetensorsWriter() {}

  /** Name, dtype and shape of a tensor to be written. */
  public record Spec(String name, DType dtype, long[] shape) {
    public Spec {
      shape = shape.clone();
    }

    public long byteSize() {
      return Math.multiplyExact(Tensor.numel(shape), (long) dtype.byteSize());
    }
  }

  /**
   * Writes {@code tensors} (names must be unique and not {@code __metadata__}) and {@code
   * metadata} (may be empty or null) to {@code file}, replacing it atomically.
   */
  public static void write(Path file, List<Tensor> tensors, Map<String, String> metadata) throws IOException {
    List<Spec> specs = tensors.stream().map(t -> new Spec(t.name(), t.dtype(), t.shape())).toList();
    try (Stream s = open(file, specs, metadata)) {
      for (Tensor t : tensors) s.write(t.data());
      s.finish();
    }
  }

  /**
   * Starts a file whose tensors are given by {@code specs}; their data must then be passed to
   * {@link Stream#write} in the same order, and {@link Stream#finish()} makes the file appear.
   */
  public static Stream open(Path file, List<Spec> specs, Map<String, String> metadata) throws IOException {
    byte[] header = header(specs, metadata);
    AtomicFile out = AtomicFile.create(file);
    try {
      writeFully(out.channel(), ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, header.length), out.target());
      writeFully(out.channel(), ByteBuffer.wrap(header), out.target());
      return new Stream(out, List.copyOf(specs));
    } catch (IOException | RuntimeException e) {
      out.close();
      throw e;
    }
  }

  /** A safetensors file being written; close without {@link #finish()} discards it. */
  public static final class Stream implements AutoCloseable {
    private final AtomicFile file;
    private final Path target;
    private final FileChannel ch;
    private final List<Spec> specs;
    private int next;
    private boolean finished;
    private boolean closed;

    private Stream(AtomicFile file, List<Spec> specs) {
      this.file = file;
      this.target = file.target();
      this.ch = file.channel();
      this.specs = specs;
    }

    /** The data of the next tensor, exactly its byte size, little-endian (position to limit). */
    public void write(ByteBuffer data) throws IOException {
      if (finished || closed) throw new IllegalStateException(target + ": already finished");
      if (next >= specs.size()) throw new IllegalStateException(target + ": all " + specs.size() + " tensors already written");
      Spec s = specs.get(next);
      if (data.remaining() != s.byteSize()) {
        throw new IllegalArgumentException(
            "tensor '" + s.name() + "' needs " + s.byteSize() + " bytes, got " + data.remaining());
      }
      writeFully(ch, data.duplicate(), target);
      next++;
    }

    /** Checks that every tensor was written, syncs, and renames the file into place. */
    public void finish() throws IOException {
      if (finished || closed) throw new IllegalStateException(target + ": already finished");
      if (next != specs.size()) {
        throw new IllegalStateException(target + ": only " + next + " of " + specs.size() + " tensors written");
      }
      file.commit();
      finished = true;
    }

    @Override
    public void close() throws IOException {
      if (closed) return;
      closed = true;
      file.close();
    }
  }

  /** The padded JSON header (without the 8-byte length). */
  static byte[] header(List<Spec> specs, Map<String, String> metadata) throws JsonProcessingException {
    ObjectNode root = JSON.createObjectNode();
    if (metadata != null && !metadata.isEmpty()) {
      ObjectNode md = root.putObject("__metadata__");
      metadata.forEach(
          (k, v) -> {
            if (k == null || v == null) throw new IllegalArgumentException("metadata keys and values must not be null");
            md.put(k, v);
          });
    }
    Set<String> seen = new HashSet<>();
    long offset = 0;
    for (Spec t : specs) {
      String name = t.name();
      if (name.isEmpty() || name.equals("__metadata__")) {
        throw new IllegalArgumentException("invalid tensor name '" + name + "'");
      }
      if (!seen.add(name)) throw new IllegalArgumentException("duplicate tensor name '" + name + "'");
      ObjectNode e = root.putObject(name);
      e.put("dtype", t.dtype().safetensorsName());
      ArrayNode shape = e.putArray("shape");
      for (long d : t.shape()) shape.add(d);
      ArrayNode off = e.putArray("data_offsets");
      off.add(offset);
      offset = Math.addExact(offset, t.byteSize());
      off.add(offset);
    }
    byte[] json = JSON.writeValueAsBytes(root);
    // Pad so that 8 + header length is a multiple of 8: mapped F64/I64 data is then aligned.
    int padded = (json.length + 7) & ~7;
    byte[] out = Arrays.copyOf(json, padded);
    Arrays.fill(out, json.length, padded, (byte) ' ');
    return out;
  }

  /** Writes all of {@code b}; a failure (a full disk, say) names {@code target}, the file being written. */
  static void writeFully(FileChannel ch, ByteBuffer b, Path target) throws IOException {
    try {
      while (b.hasRemaining()) ch.write(b);
    } catch (IOException e) {
      throw named(target, e);
    }
  }

  /** {@code e} with the file it happened to, unless its message names it already. */
  static IOException named(Path target, IOException e) {
    String m = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
    if (m.contains(target.toString())) return e;
    return new IOException("cannot write " + target + ": " + diskFullSaid(m), e);
  }

  /** A failed write's message, said plainly when it is a full disk ("the disk is full (...)"): here and in {@link Downloader}. */
  static String diskFullSaid(String message) {
    return message.contains("No space left") ? "the disk is full (" + message + ")" : message;
  }
}
