package dev.jclip.io;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads a <a href="https://github.com/huggingface/safetensors">safetensors</a> file: an 8-byte
 * little-endian header length, a JSON header, then the raw tensor data.
 *
 * <p>The data is memory-mapped, so opening a file copies nothing; a tensor's bytes are read only
 * when a conversion such as {@link Tensor#toFloatArray()} asks for them. Every field of the header
 * is validated before it is trusted (length against the file size and a 100 MB cap, JSON shape,
 * known dtypes, non-negative shapes, offsets inside the data, no overlaps, sizes matching dtype ×
 * shape), so a malformed or hostile file gives a {@link CheckpointException} naming the file, the
 * tensor and the problem.
 *
 * <pre>{@code
 * try (var st = SafetensorsReader.open(Path.of("model.safetensors"))) {
 *   Tensor w = st.tensor("visual.proj");        // F16 [768, 512], still mapped
 *   float[] values = w.toFloatArray();           // the copy happens here
 *   String fmt = st.metadata().get("format");    // "pt"
 * }
 * }</pre>
 *
 * <p>Lifecycle: the mapping is owned by the JVM (released when the last {@link Tensor} view is
 * garbage-collected), so tensors stay valid after {@link #close()}; closing releases the file
 * handle. This keeps model loaders free to close the reader as soon as the weights are wrapped.
 */
public final class SafetensorsReader implements AutoCloseable {
  /** The most dimensions a tensor's shape may list (NumPy 2's limit; PyTorch's are lower). */
  static final int MAX_DIMS = 64;

  /** The header cap of the reference implementation (safetensors' MAX_HEADER_SIZE). */
  public static final long MAX_HEADER_BYTES = 100_000_000L;

  private static final String METADATA_KEY = "__metadata__";

  private static final ObjectMapper JSON =
      JsonMapper.builder()
          .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
          .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
          .enable(DeserializationFeature.USE_BIG_INTEGER_FOR_INTS)
          .build();

  private final Path file;
  private final FileChannel channel;
  private final Map<String, Tensor> tensors; // in file (data offset) order
  private final Map<String, String> metadata;
  private final long dataStart;

  private SafetensorsReader(
      Path file, FileChannel channel, Map<String, Tensor> tensors, Map<String, String> metadata, long dataStart) {
    this.file = file;
    this.channel = channel;
    this.tensors = tensors;
    this.metadata = metadata;
    this.dataStart = dataStart;
  }

  /**
   * Opens and validates a safetensors file.
   *
   * @throws CheckpointException when the file is malformed (the message says where and why)
   * @throws IOException when it cannot be read
   */
  public static SafetensorsReader open(Path file) throws IOException {
    FileChannel ch;
    try {
      ch = FileChannel.open(file, StandardOpenOption.READ);
    } catch (NoSuchFileException e) {
      throw new NoSuchFileException(file.toString(), null, "no such file");
    }
    try {
      return read(file, ch);
    } catch (IOException | RuntimeException | Error e) {
      try {
        ch.close();
      } catch (IOException suppressed) {
        e.addSuppressed(suppressed);
      }
      throw e;
    }
  }

  private record Entry(String name, DType dtype, long[] shape, long begin, long end, int headerIndex) {}

  private static SafetensorsReader read(Path file, FileChannel ch) throws IOException {
    long size = ch.size();
    if (size < 8) {
      throw new CheckpointException(
          file, null, "not a safetensors file: " + size + " bytes, less than the 8-byte header length");
    }
    ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
    readFully(ch, lenBuf, 0, file);
    long headerLen = lenBuf.getLong(0); // u64; a value >= 2^63 reads as negative
    if (headerLen < 0 || headerLen > size - 8) {
      throw new CheckpointException(
          file,
          null,
          "header length "
              + Long.toUnsignedString(headerLen)
              + " exceeds the file size "
              + size
              + " (truncated download, or not a safetensors file)");
    }
    if (headerLen > MAX_HEADER_BYTES) {
      throw new CheckpointException(
          file, null, "header length " + headerLen + " exceeds the limit of " + MAX_HEADER_BYTES + " bytes");
    }
    if (headerLen < 2) {
      throw new CheckpointException(file, null, "header of " + headerLen + " bytes cannot hold a JSON object");
    }
    ByteBuffer hb = ByteBuffer.allocate((int) headerLen);
    readFully(ch, hb, 8, file);
    String headerText;
    try {
      headerText =
          StandardCharsets.UTF_8
              .newDecoder()
              .onMalformedInput(CodingErrorAction.REPORT)
              .onUnmappableCharacter(CodingErrorAction.REPORT)
              .decode(hb.flip())
              .toString();
    } catch (CharacterCodingException e) {
      throw new CheckpointException(file, null, "header is not valid UTF-8", e);
    }
    JsonNode root;
    try {
      root = JSON.readTree(headerText);
    } catch (JsonProcessingException e) {
      throw new CheckpointException(file, null, "header is not valid JSON: " + e.getOriginalMessage(), e);
    } catch (OutOfMemoryError oom) {
      throw new CheckpointException(file, null, "header of " + headerLen + " bytes does not fit in the Java heap of "
          + Runtime.getRuntime().maxMemory() / (1 << 20) + " MB as a JSON tree (a real model's header is well under a megabyte)", oom);
    }
    if (root == null || !root.isObject()) {
      throw new CheckpointException(file, null, "header is not a JSON object");
    }

    long dataStart = 8 + headerLen;
    long dataSize = size - dataStart;
    Map<String, String> metadata = new LinkedHashMap<>();
    List<Entry> entries = new ArrayList<>();
    int index = 0;
    for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> f = it.next();
      String name = f.getKey();
      JsonNode v = f.getValue();
      if (name.equals(METADATA_KEY)) {
        if (!v.isObject()) throw new CheckpointException(file, METADATA_KEY, "must be an object of strings");
        for (Iterator<Map.Entry<String, JsonNode>> m = v.fields(); m.hasNext(); ) {
          Map.Entry<String, JsonNode> kv = m.next();
          if (!kv.getValue().isTextual()) {
            throw new CheckpointException(
                file, METADATA_KEY, "value of '" + kv.getKey() + "' is " + kv.getValue().getNodeType() + ", not a string");
          }
          metadata.put(kv.getKey(), kv.getValue().asText());
        }
        continue;
      }
      entries.add(parseEntry(file, name, v, dataSize, index++));
    }

    // Overlap check in offset order; zero-byte tensors may share an offset with anything.
    List<Entry> sorted = new ArrayList<>(entries);
    sorted.sort(Comparator.comparingLong(Entry::begin).thenComparingInt(Entry::headerIndex));
    Entry prev = null;
    for (Entry e : sorted) {
      if (e.end == e.begin) continue;
      if (prev != null && e.begin < prev.end) {
        throw new CheckpointException(
            file,
            e.name,
            "data_offsets ["
                + e.begin
                + ", "
                + e.end
                + ") overlap those of '"
                + prev.name
                + "' ["
                + prev.begin
                + ", "
                + prev.end
                + ")");
      }
      prev = e;
    }

    Map<String, Tensor> tensors = new LinkedHashMap<>();
    MappedByteBuffer whole = null;
    if (dataSize <= Integer.MAX_VALUE) {
      whole = ch.map(FileChannel.MapMode.READ_ONLY, dataStart, dataSize);
    }
    for (Entry e : sorted) {
      long len = e.end - e.begin;
      if (len > Integer.MAX_VALUE) {
        throw new CheckpointException(
            file, e.name, len + " bytes: a single tensor over 2 GiB is not supported by this reader");
      }
      ByteBuffer data;
      if (whole != null) {
        data = whole.slice((int) e.begin, (int) len);
      } else {
        // Files over 2 GiB: one mapping per tensor, since a ByteBuffer cannot address more.
        data = ch.map(FileChannel.MapMode.READ_ONLY, dataStart + e.begin, len);
      }
      tensors.put(e.name, new Tensor(e.name, e.dtype, e.shape, data.order(ByteOrder.LITTLE_ENDIAN)));
    }
    return new SafetensorsReader(
        file, ch, Collections.unmodifiableMap(tensors), Collections.unmodifiableMap(metadata), dataStart);
  }

  private static Entry parseEntry(Path file, String name, JsonNode v, long dataSize, int index)
      throws CheckpointException {
    if (name.isEmpty()) throw new CheckpointException(file, name, "empty tensor name");
    if (!v.isObject()) {
      throw new CheckpointException(file, name, "entry is " + v.getNodeType() + ", expected an object with dtype, shape, data_offsets");
    }
    JsonNode dt = v.get("dtype");
    if (dt == null || !dt.isTextual()) throw new CheckpointException(file, name, "missing or non-string 'dtype'");
    DType dtype;
    try {
      dtype = DType.fromSafetensors(dt.asText());
    } catch (IllegalArgumentException e) {
      throw new CheckpointException(
          file, name, "unknown dtype '" + dt.asText() + "' (known: " + Arrays.toString(DType.values()) + ")");
    }
    JsonNode sh = v.get("shape");
    if (sh == null || !sh.isArray()) throw new CheckpointException(file, name, "missing or non-array 'shape'");
    if (sh.size() > MAX_DIMS) {
      throw new CheckpointException(file, name, "'shape' has " + sh.size() + " dimensions, more than the " + MAX_DIMS + " a tensor may have");
    }
    long[] shape = new long[sh.size()];
    for (int i = 0; i < shape.length; i++) {
      shape[i] = nonNegativeLong(file, name, "shape", sh.get(i));
    }
    JsonNode off = v.get("data_offsets");
    if (off == null || !off.isArray() || off.size() != 2) {
      throw new CheckpointException(file, name, "'data_offsets' must be an array [begin, end]");
    }
    long begin = nonNegativeLong(file, name, "data_offsets", off.get(0));
    long end = nonNegativeLong(file, name, "data_offsets", off.get(1));
    if (begin > end) {
      throw new CheckpointException(file, name, "data_offsets [" + begin + ", " + end + "]: begin is after end");
    }
    if (end > dataSize) {
      throw new CheckpointException(
          file,
          name,
          "data_offsets [" + begin + ", " + end + "] run past the end of the data (" + dataSize + " bytes; truncated file?)");
    }
    long want;
    try {
      want = Math.multiplyExact(Tensor.numel(shape), (long) dtype.byteSize());
    } catch (ArithmeticException e) {
      throw new CheckpointException(file, name, "shape " + Arrays.toString(shape) + " overflows a 64-bit size");
    }
    if (end - begin != want) {
      throw new CheckpointException(
          file,
          name,
          dtype
              + Arrays.toString(shape)
              + " needs "
              + want
              + " bytes but data_offsets ["
              + begin
              + ", "
              + end
              + "] hold "
              + (end - begin));
    }
    return new Entry(name, dtype, shape, begin, end, index);
  }

  private static long nonNegativeLong(Path file, String name, String field, JsonNode n) throws CheckpointException {
    if (n == null || !n.isIntegralNumber() || !n.canConvertToLong() || n.longValue() < 0) {
      throw new CheckpointException(
          file, name, "'" + field + "' holds " + n + ", expected a non-negative integer below 2^63");
    }
    return n.longValue();
  }

  private static void readFully(FileChannel ch, ByteBuffer dst, long pos, Path file) throws IOException {
    while (dst.hasRemaining()) {
      int n = ch.read(dst, pos);
      if (n < 0) throw new CheckpointException(file, null, "unexpected end of file at byte " + pos);
      pos += n;
    }
  }

  /** The file this reader was opened on. */
  public Path file() {
    return file;
  }

  /** Tensor names in file (data offset) order. */
  public List<String> names() {
    return List.copyOf(tensors.keySet());
  }

  /** All tensors in file order; their data is a mapped view of the file. */
  public List<Tensor> tensors() {
    return List.copyOf(tensors.values());
  }

  /** Whether the file holds a tensor of that name. */
  public boolean contains(String name) {
    return tensors.containsKey(name);
  }

  /**
   * The tensor of that name.
   *
   * @throws CheckpointException naming the file and the missing key
   */
  public Tensor tensor(String name) throws CheckpointException {
    Tensor t = tensors.get(name);
    if (t == null) {
      throw new CheckpointException(file, name, "no such tensor (the file has " + tensors.size() + " tensors)");
    }
    return t;
  }

  /** The {@code __metadata__} string map (empty when the file has none), in file order. */
  public Map<String, String> metadata() {
    return metadata;
  }

  /** Byte offset in the file where tensor data starts (8 + header length). */
  public long dataStart() {
    return dataStart;
  }

  /** Releases the file handle; tensors already obtained stay readable (the JVM owns the mapping). */
  @Override
  public void close() throws IOException {
    channel.close();
  }
}
