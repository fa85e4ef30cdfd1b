package dev.jclip.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;

/**
 * A minimal Apache Parquet writer for flat tables: the {@code metadata_{N}.parquet} files of an
 * embedding job (clip-retrieval's layout), read by pyarrow, pandas, DuckDB and parquet-java.
 *
 * <p><b>Why hand-written.</b> parquet-java ({@code parquet-hadoop}) cannot write a file without
 * Hadoop on the runtime classpath (its codec factory loads {@code
 * org.apache.hadoop.io.compress.zlib.ZlibCompressor$CompressionLevel} even for an uncompressed
 * {@code LocalOutputFile} and a {@code PlainParquetConfiguration}), and Hadoop with its
 * dependencies adds more than 30 MB to a jar that must also fit the GPU bundle. The subset of the
 * format needed here is small and fully specified by {@code parquet.thrift} and the encodings
 * document, so it is written directly; the tests read every file back with parquet-java (test
 * scope only) and compare value for value.
 *
 * <p><b>What it writes.</b> Format version 1: "PAR1", one row group, per column one chunk of data
 * pages v1 (a page every {@value #PAGE_MAX_ROWS} rows or ~{@value #PAGE_TARGET_BYTES} bytes),
 * PLAIN values, UNCOMPRESSED, definition levels of optional columns in the RLE/bit-packed hybrid
 * encoding (bit width 1, 4-byte length prefix as v1 pages require), then the Thrift compact
 * FileMetaData, its length and "PAR1". Column types: UTF-8 strings (BYTE_ARRAY annotated STRING /
 * UTF8), INT32, INT64, FLOAT, DOUBLE, BOOLEAN; each required or optional. The only statistic is
 * the chunk's null count (the spec asks writers to always write it); no min/max, no dictionary,
 * no page index.
 *
 * <pre>{@code
 * List<ParquetWriter.Column> cols = List.of(
 *     ParquetWriter.Column.required("key", ParquetWriter.Type.STRING),
 *     ParquetWriter.Column.optional("width", ParquetWriter.Type.INT32));
 * try (ParquetWriter w = ParquetWriter.create(Path.of("metadata_0.parquet"), cols)) {
 *   w.writeRow("000001", 640);
 *   w.writeRow("000002", null);
 *   w.finish();   // writes a temporary sibling and renames it into place
 * }
 * }</pre>
 *
 * <p>Rows are buffered (encoded) in memory until {@link #finish()}: a file holds one row group,
 * which is what a reader loads at once anyway. Not thread-safe.
 */
public final class ParquetWriter implements AutoCloseable {
  /** Physical + logical column types supported. */
  public enum Type {
    STRING(ParquetFormat.BYTE_ARRAY),
    INT32(ParquetFormat.INT32),
    INT64(ParquetFormat.INT64),
    FLOAT(ParquetFormat.FLOAT),
    DOUBLE(ParquetFormat.DOUBLE),
    BOOLEAN(ParquetFormat.BOOLEAN);

    /** parquet.thrift's {@code Type} code. */
    final int physical;

    Type(int physical) {
      this.physical = physical;
    }
  }

  /** A column of the flat schema. */
  public record Column(String name, Type type, boolean optional) {
    public Column {
      Objects.requireNonNull(name, "name");
      Objects.requireNonNull(type, "type");
      if (name.isEmpty()) throw new IllegalArgumentException("column name must not be empty");
    }

    public static Column required(String name, Type type) {
      return new Column(name, type, false);
    }

    public static Column optional(String name, Type type) {
      return new Column(name, type, true);
    }
  }

  static final int PAGE_MAX_ROWS = 20_000;
  static final int PAGE_TARGET_BYTES = 1 << 20;

  private static final byte[] MAGIC = ParquetFormat.MAGIC;
  private static final int ENCODING_PLAIN = ParquetFormat.ENCODING_PLAIN;
  private static final int ENCODING_RLE = ParquetFormat.ENCODING_RLE;
  private static final int PAGE_DATA = ParquetFormat.PAGE_DATA;
  private static final int REPETITION_REQUIRED = ParquetFormat.REQUIRED;
  private static final int REPETITION_OPTIONAL = ParquetFormat.OPTIONAL;
  private static final int CONVERTED_UTF8 = ParquetFormat.CONVERTED_UTF8;
  private static final int CODEC_UNCOMPRESSED = ParquetFormat.CODEC_UNCOMPRESSED;

  /** parquet-java parses "NAME version X (build Y)" to decide whether to trust statistics. */
  /** The writer, as Parquet's created_by names it: the jar's own version (as {@code jclip --version} prints it). */
  private static final String CREATED_BY = "jclip version "
      + java.util.Objects.requireNonNullElse(ParquetWriter.class.getPackage().getImplementationVersion(), "dev") + " (build hand-written writer)";

  private final Path target;
  private final List<Column> columns;
  private final ColumnBuffer[] buffers;
  private long rows;
  private boolean finished;
  private boolean closed;

  private ParquetWriter(Path target, List<Column> columns) {
    this.target = target;
    this.columns = List.copyOf(columns);
    this.buffers = new ColumnBuffer[columns.size()];
    for (int i = 0; i < buffers.length; i++) buffers[i] = new ColumnBuffer(columns.get(i));
  }

  /**
   * Starts a file; nothing appears on disk until {@link #finish()}.
   *
   * @throws IllegalArgumentException for an empty schema or duplicate column names
   */
  public static ParquetWriter create(Path file, List<Column> columns) throws IOException {
    if (columns.isEmpty()) throw new IllegalArgumentException(file + ": a Parquet schema needs at least one column");
    Set<String> names = new HashSet<>();
    for (Column c : columns) {
      if (!names.add(c.name())) throw new IllegalArgumentException(file + ": duplicate column name '" + c.name() + "'");
    }
    Path abs = file.toAbsolutePath();
    Path dir = abs.getParent();
    if (dir != null && !Files.isDirectory(dir)) throw new NoSuchFileException(file.toString(), null, "folder does not exist");
    return new ParquetWriter(abs, columns);
  }

  public List<Column> columns() {
    return columns;
  }

  public long rows() {
    return rows;
  }

  /**
   * Appends a row: one value per column in schema order; {@code null} only in optional columns.
   * STRING takes any CharSequence, INT32/INT64 an integral Number in range, FLOAT/DOUBLE a Number,
   * BOOLEAN a Boolean.
   */
  public void writeRow(Object... values) {
    if (finished || closed) throw new IllegalStateException("writer for " + target + " is already finished");
    if (values.length != buffers.length) {
      throw new IllegalArgumentException(
          target + ": row " + rows + " has " + values.length + " values, the schema has " + buffers.length + " columns");
    }
    // Validate the whole row before touching any buffer, so a rejected row leaves no partial state.
    for (int i = 0; i < values.length; i++) buffers[i].check(values[i], rows);
    for (int i = 0; i < values.length; i++) buffers[i].add(values[i]);
    rows++;
  }

  /** Writes the file under a temporary sibling name, syncs it and renames it into place. */
  public void finish() throws IOException {
    if (finished || closed) throw new IllegalStateException("writer for " + target + " is already finished");
    for (ColumnBuffer b : buffers) b.flushPage();
    try (AtomicFile file = AtomicFile.create(target)) {
      FileChannel ch = file.channel();
      writeAll(ch, ByteBuffer.wrap(MAGIC));
      long pos = MAGIC.length;
      long[] offsets = new long[buffers.length];
      long total = 0;
      for (int i = 0; i < buffers.length; i++) {
        offsets[i] = pos;
        for (byte[] page : buffers[i].pages) {
          writeAll(ch, ByteBuffer.wrap(page));
          pos += page.length;
        }
        total += buffers[i].chunkBytes;
      }
      byte[] footer = footer(offsets, total);
      ByteBuffer tail = ByteBuffer.allocate(footer.length + 8).order(java.nio.ByteOrder.LITTLE_ENDIAN);
      tail.put(footer).putInt(footer.length).put(MAGIC).flip();
      writeAll(ch, tail);
      file.commit();
    }
    finished = true;
  }

  /** Drops the buffered rows; without {@link #finish()} nothing is written. */
  @Override
  public void close() {
    closed = true;
    for (ColumnBuffer b : buffers) b.pages.clear();
  }

  private byte[] footer(long[] offsets, long totalBytes) {
    ThriftCompactWriter t = new ThriftCompactWriter();
    t.beginStruct(); // FileMetaData
    t.fieldI32(1, 1); // version
    t.fieldList(2, ThriftCompactWriter.STRUCT, columns.size() + 1); // schema: root, then leaves
    t.beginStruct();
    t.fieldString(4, "schema");
    t.fieldI32(5, columns.size());
    t.endStruct();
    for (Column c : columns) {
      t.beginStruct();
      t.fieldI32(1, c.type().physical);
      t.fieldI32(3, c.optional() ? REPETITION_OPTIONAL : REPETITION_REQUIRED);
      t.fieldString(4, c.name());
      if (c.type() == Type.STRING) {
        t.fieldI32(6, CONVERTED_UTF8);
        t.fieldStruct(10); // LogicalType union
        t.fieldStruct(1); // STRING: StringType {}
        t.endStruct();
        t.endStruct();
      }
      t.endStruct();
    }
    t.fieldI64(3, rows); // num_rows
    if (rows == 0) {
      // No row group at all: what parquet-java and Arrow write for an empty table.
      t.fieldList(4, ThriftCompactWriter.STRUCT, 0);
      t.fieldString(6, CREATED_BY);
      t.endStruct();
      return t.toByteArray();
    }
    t.fieldList(4, ThriftCompactWriter.STRUCT, 1); // row_groups
    t.beginStruct();
    t.fieldList(1, ThriftCompactWriter.STRUCT, columns.size());
    for (int i = 0; i < buffers.length; i++) {
      ColumnBuffer b = buffers[i];
      t.beginStruct(); // ColumnChunk
      t.fieldI64(2, 0); // file_offset: deprecated, 0 when no metadata is written outside the footer
      t.fieldStruct(3); // ColumnMetaData
      t.fieldI32(1, b.column.type().physical);
      t.fieldList(2, ThriftCompactWriter.I32, 2);
      t.i32(ENCODING_PLAIN);
      t.i32(ENCODING_RLE);
      t.fieldList(3, ThriftCompactWriter.BINARY, 1);
      t.string(b.column.name());
      t.fieldI32(4, CODEC_UNCOMPRESSED);
      t.fieldI64(5, rows); // num_values (flat: one per row, nulls included)
      t.fieldI64(6, b.chunkBytes); // total_uncompressed_size, page headers included
      t.fieldI64(7, b.chunkBytes); // total_compressed_size
      t.fieldI64(9, offsets[i]); // data_page_offset
      t.fieldStruct(12); // Statistics
      t.fieldI64(3, b.nullCount);
      t.endStruct();
      t.endStruct(); // ColumnMetaData
      t.endStruct(); // ColumnChunk
    }
    t.fieldI64(2, totalBytes);
    t.fieldI64(3, rows);
    t.fieldI64(5, offsets.length == 0 ? MAGIC.length : offsets[0]);
    t.fieldI64(6, totalBytes);
    t.fieldI16(7, 0);
    t.endStruct(); // RowGroup
    t.fieldString(6, CREATED_BY);
    t.endStruct();
    return t.toByteArray();
  }

  private static void writeAll(FileChannel ch, ByteBuffer b) throws IOException {
    while (b.hasRemaining()) ch.write(b);
  }

  /** One column's pages: the current page's levels and values, and the finished pages. */
  private static final class ColumnBuffer {
    final Column column;
    final List<byte[]> pages = new ArrayList<>();
    final ByteSink values = new ByteSink();
    /** Definition levels of the current page, one byte (0 = null, 1 = present) per row. */
    byte[] levels = new byte[256];
    /** BOOLEAN values of the current page, one byte each, bit-packed when the page is cut. */
    byte[] bools = new byte[0];
    int pageRows;
    int pageValues;
    long nullCount;
    long chunkBytes;

    ColumnBuffer(Column column) {
      this.column = column;
      if (column.type() == Type.BOOLEAN) bools = new byte[256];
    }

    void check(Object v, long row) {
      if (v == null) {
        if (!column.optional()) throw bad(row, "is required but the value is null");
        return;
      }
      boolean ok =
          switch (column.type()) {
            case STRING -> v instanceof CharSequence;
            case INT32 -> isIntegral(v) && ((Number) v).longValue() == ((Number) v).intValue();
            case INT64 -> isIntegral(v);
            case FLOAT, DOUBLE -> v instanceof Number;
            case BOOLEAN -> v instanceof Boolean;
          };
      if (!ok) throw bad(row, "cannot hold " + v.getClass().getSimpleName() + " value " + abbreviate(v));
    }

    private IllegalArgumentException bad(long row, String problem) {
      return new IllegalArgumentException("row " + row + ": column '" + column.name() + "' (" + column.type() + ") " + problem);
    }

    private static boolean isIntegral(Object v) {
      return v instanceof Integer || v instanceof Long || v instanceof Short || v instanceof Byte;
    }

    private static String abbreviate(Object v) {
      String s = String.valueOf(v);
      return s.length() > 40 ? s.substring(0, 40) + "..." : s;
    }

    void add(Object v) {
      if (pageRows == levels.length) levels = Arrays.copyOf(levels, levels.length * 2);
      levels[pageRows++] = (byte) (v == null ? 0 : 1);
      if (v == null) {
        nullCount++;
      } else {
        switch (column.type()) {
          case STRING -> {
            byte[] b = v.toString().getBytes(StandardCharsets.UTF_8);
            values.putIntLE(b.length);
            values.put(b);
          }
          case INT32 -> values.putIntLE(((Number) v).intValue());
          case INT64 -> values.putLongLE(((Number) v).longValue());
          case FLOAT -> values.putIntLE(Float.floatToRawIntBits(((Number) v).floatValue()));
          case DOUBLE -> values.putLongLE(Double.doubleToRawLongBits(((Number) v).doubleValue()));
          case BOOLEAN -> {
            if (pageValues == bools.length) bools = Arrays.copyOf(bools, bools.length * 2);
            bools[pageValues] = (byte) ((Boolean) v ? 1 : 0);
          }
        }
        pageValues++;
      }
      if (pageRows >= PAGE_MAX_ROWS || values.size() >= PAGE_TARGET_BYTES) flushPage();
    }

    /** Encodes the current page (header + levels + values) and starts a new one. */
    void flushPage() {
      if (pageRows == 0) return; // a 0-row file has no row group, hence no pages
      ByteSink body = new ByteSink();
      if (column.optional()) {
        ByteSink rle = new ByteSink();
        encodeHybridBitWidth1(levels, pageRows, rle);
        body.putIntLE(rle.size()); // v1 pages prefix RLE levels with their byte length
        body.put(rle.array(), 0, rle.size());
      }
      if (column.type() == Type.BOOLEAN) {
        byte[] packed = new byte[(pageValues + 7) / 8];
        for (int i = 0; i < pageValues; i++) packed[i >> 3] |= (byte) (bools[i] << (i & 7));
        body.put(packed);
      } else {
        body.put(values.array(), 0, values.size());
      }
      ThriftCompactWriter h = new ThriftCompactWriter();
      h.beginStruct(); // PageHeader
      h.fieldI32(1, PAGE_DATA);
      h.fieldI32(2, body.size());
      h.fieldI32(3, body.size());
      h.fieldStruct(5); // DataPageHeader
      h.fieldI32(1, pageRows); // num_values, nulls included
      h.fieldI32(2, ENCODING_PLAIN);
      h.fieldI32(3, ENCODING_RLE);
      h.fieldI32(4, ENCODING_RLE);
      h.endStruct();
      h.endStruct();
      byte[] header = h.toByteArray();
      byte[] page = new byte[header.length + body.size()];
      System.arraycopy(header, 0, page, 0, header.length);
      System.arraycopy(body.array(), 0, page, header.length, body.size());
      pages.add(page);
      chunkBytes += page.length;
      values.reset();
      pageRows = 0;
      pageValues = 0;
    }
  }

  /**
   * The RLE/bit-packed hybrid encoding at bit width 1 (values 0/1): runs of 8 or more equal values
   * as RLE runs, everything between them as bit-packed groups of 8 (only the very last group may
   * be padded, since a reader knows the value count).
   */
  static void encodeHybridBitWidth1(byte[] v, int n, ByteSink out) {
    int i = 0;
    while (i < n) {
      int run = 1;
      while (i + run < n && v[i + run] == v[i]) run++;
      if (run >= 8) {
        out.putVarint((long) run << 1);
        out.put(v[i]);
        i += run;
        continue;
      }
      int start = i;
      int groups = 0;
      do {
        groups++;
        i += 8;
      } while (i < n && !runOfEight(v, i, n));
      out.putVarint(((long) groups << 1) | 1);
      int end = Math.min(i, n);
      for (int g = 0; g < groups; g++) {
        int b = 0;
        for (int k = 0; k < 8; k++) {
          int idx = start + 8 * g + k;
          if (idx < end && v[idx] != 0) b |= 1 << k;
        }
        out.put((byte) b);
      }
      i = end;
    }
  }

  private static boolean runOfEight(byte[] v, int i, int n) {
    if (i + 8 > n) return false;
    for (int k = 1; k < 8; k++) if (v[i + k] != v[i]) return false;
    return true;
  }

  /** A growable little-endian byte buffer. */
  static final class ByteSink {
    private byte[] buf = new byte[1024];
    private int size;

    int size() {
      return size;
    }

    byte[] array() {
      return buf;
    }

    void reset() {
      size = 0;
    }

    private void ensure(int more) {
      if (size + more > buf.length) {
        long want = Math.max((long) buf.length * 2, (long) size + more);
        if (want > Integer.MAX_VALUE - 16) throw new IllegalStateException("Parquet page buffer over 2 GiB");
        buf = Arrays.copyOf(buf, (int) want);
      }
    }

    void put(byte b) {
      ensure(1);
      buf[size++] = b;
    }

    void put(byte[] b) {
      put(b, 0, b.length);
    }

    void put(byte[] b, int off, int len) {
      ensure(len);
      System.arraycopy(b, off, buf, size, len);
      size += len;
    }

    void putIntLE(int v) {
      ensure(4);
      buf[size++] = (byte) v;
      buf[size++] = (byte) (v >>> 8);
      buf[size++] = (byte) (v >>> 16);
      buf[size++] = (byte) (v >>> 24);
    }

    void putLongLE(long v) {
      putIntLE((int) v);
      putIntLE((int) (v >>> 32));
    }

    void putVarint(long v) {
      while ((v & ~0x7FL) != 0) {
        put((byte) ((v & 0x7F) | 0x80));
        v >>>= 7;
      }
      put((byte) v);
    }
  }
}
