package dev.jclip.io;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
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
 */
public final class SafetensorsWriter {
  private static final ObjectMapper JSON = new ObjectMapper();

  private SafetensorsWriter() {}

  /**
   * Writes {@code tensors} (names must be unique and not {@code __metadata__}) and {@code
   * metadata} (may be empty or null) to {@code file}, replacing it atomically.
   */
  public static void write(Path file, List<Tensor> tensors, Map<String, String> metadata) throws IOException {
    byte[] header = header(tensors, metadata);
    AtomicFile.write(
        file,
        ch -> {
          ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, header.length);
          writeFully(ch, len);
          writeFully(ch, ByteBuffer.wrap(header));
          for (Tensor t : tensors) writeFully(ch, t.data());
        });
  }

  /** The padded JSON header (without the 8-byte length). */
  static byte[] header(List<Tensor> tensors, Map<String, String> metadata) throws JsonProcessingException {
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
    for (Tensor t : tensors) {
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
    byte[] out = new byte[padded];
    System.arraycopy(json, 0, out, 0, json.length);
    for (int i = json.length; i < padded; i++) out[i] = ' ';
    return out;
  }

  static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
    while (b.hasRemaining()) ch.write(b);
  }

  /** For tests: the header bytes as text. */
  static String headerText(List<Tensor> tensors, Map<String, String> metadata) throws JsonProcessingException {
    return new String(header(tensors, metadata), StandardCharsets.UTF_8);
  }
}
