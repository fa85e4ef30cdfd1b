package dev.jclip.io;

import static dev.jclip.io.ParquetFormat.*;

import dev.jclip.io.ParquetDecoders.ByteStreamSplit;
import dev.jclip.io.ParquetDecoders.DeltaBinaryPacked;
import dev.jclip.io.ParquetDecoders.DeltaByteArray;
import dev.jclip.io.ParquetDecoders.DeltaLengthByteArray;
import dev.jclip.io.ParquetDecoders.Hybrid;
import dev.jclip.io.ParquetDecoders.Values;
import dev.jclip.io.ThriftCompactReader.Struct;
import java.io.IOException;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.UUID;

/**
 * Reads the flat columns of an Apache Parquet file row by row: the input tables of {@code jclip
 * embed} / {@code jclip zeroshot} (a {@code .parquet} of image paths and captions as pandas,
 * pyarrow, DuckDB, Spark or Polars write them).
 *
 * <pre>{@code
 * try (ParquetReader r = ParquetReader.open(Path.of("images.parquet"))) {
 *   int path = r.columns().indexOf("image_path");
 *   for (Object[] row; (row = r.nextRow()) != null; ) System.out.println(ParquetReader.text(row[path]));
 * }
 * }</pre>
 *
 * <p><b>Why hand-written.</b> As for {@link ParquetWriter}: parquet-java needs Hadoop on the
 * classpath, and the subset a table of paths needs is small. Written from {@code parquet.thrift}
 * and {@code Encodings.md}.
 *
 * <p><b>What it reads.</b> Columns: the top-level REQUIRED or OPTIONAL leaves. Groups (structs,
 * lists, maps) and REPEATED fields are listed in {@link #skippedColumns()} and never read.
 * Pages: DATA_PAGE (v1), DATA_PAGE_V2 and DICTIONARY_PAGE (index pages are skipped). Encodings:
 * PLAIN, PLAIN_DICTIONARY / RLE_DICTIONARY, RLE (booleans, definition levels),
 * DELTA_BINARY_PACKED, DELTA_LENGTH_BYTE_ARRAY, DELTA_BYTE_ARRAY and BYTE_STREAM_SPLIT; not the
 * deprecated BIT_PACKED levels. Codecs: UNCOMPRESSED, SNAPPY, GZIP, ZSTD and LZ4_RAW; not LZO,
 * BROTLI or Hadoop-framed LZ4 (each is a clear error naming the column).
 *
 * <p><b>Values</b> ({@link #nextRow()}): BOOLEAN → Boolean; INT32 → Integer (Long when annotated
 * unsigned); INT64 → Long (BigInteger for an unsigned value above Long.MAX_VALUE); FLOAT → Float;
 * DOUBLE → Double; BYTE_ARRAY → String (UTF-8, whatever the annotation: STRING, JSON, ENUM or
 * none; malformed bytes become U+FFFD); DECIMAL (any physical type) → BigDecimal; DATE →
 * LocalDate; UUID → its canonical text; other FIXED_LEN_BYTE_ARRAY → lowercase hex; INT96 (the
 * legacy Impala/Spark timestamp) → LocalDateTime (UTC, nanoseconds). TIMESTAMP and TIME are their
 * plain stored numbers (in the unit the schema names). {@link #text} renders any of these.
 *
 * <p><b>Memory.</b> One row group at a time: the compressed bytes of the read columns' chunks,
 * and one decompressed page per column. A declared page size above {@value #MAX_PAGE_BYTES}
 * bytes, a page or chunk that runs past its container, or data that decompresses to another size
 * than declared is an IOException naming the file, the column and the problem.
 *
 * <p>Not thread-safe.
 */
public final class ParquetReader implements AutoCloseable {
  /** The largest decompressed page accepted (writers cut pages at about 1 MiB). */
  static final int MAX_PAGE_BYTES = 256 << 20;

  /**
   * A flat column: a top-level REQUIRED or OPTIONAL leaf of the schema, with the annotations
   * (legacy ConvertedType or LogicalType) that change how its values read.
   */
  private record Leaf(
      String name, int type, int typeLength, boolean optional, int leafIndex, boolean decimal, int scale, boolean date, boolean uuid, boolean unsigned) {
    static Leaf of(String name, int type, int typeLength, boolean optional, int leafIndex, int converted, Struct logical, int scale) throws IOException {
      Struct integer = logical == null ? null : logical.struct(LOGICAL_INTEGER);
      Struct dec = logical == null ? null : logical.struct(LOGICAL_DECIMAL);
      return new Leaf(
          name,
          type,
          typeLength,
          optional,
          leafIndex,
          converted == CONVERTED_DECIMAL || dec != null,
          dec != null ? dec.i32(1, scale) : scale,
          converted == CONVERTED_DATE || (logical != null && logical.has(LOGICAL_DATE)),
          logical != null && logical.has(LOGICAL_UUID),
          (converted >= CONVERTED_UINT_8 && converted <= CONVERTED_UINT_64) || (integer != null && !integer.bool(2, true)));
    }
  }

  private final Path file;
  private final FileChannel channel;
  private final long dataEnd; // where the footer starts: column chunks lie in [4, dataEnd)
  private final List<Leaf> leaves;
  private final int leafCount;
  private final List<String> columns;
  private final List<String> skipped;
  private final long rowCount;
  private final List<Struct> rowGroups;
  private int group = -1;
  private long groupRowsLeft;
  private Column[] cursors;
  private long row = -1;

  private ParquetReader(Path file, FileChannel channel) throws IOException {
    this.file = file;
    this.channel = channel;
    long size = channel.size();
    if (size < 12) throw error("not a Parquet file: " + size + " bytes (a Parquet file has at least 12)");
    ByteBuffer head = read(0, 4);
    ByteBuffer tail = read(size - 8, 8).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    byte[] tailMagic = Arrays.copyOfRange(tail.array(), 4, 8);
    if (Arrays.equals(tailMagic, MAGIC_ENCRYPTED)) throw error("the footer is encrypted (PARE); encrypted Parquet files are not supported");
    if (!Arrays.equals(head.array(), MAGIC) || !Arrays.equals(tailMagic, MAGIC)) {
      throw error("not a Parquet file (no PAR1 magic at " + (Arrays.equals(head.array(), MAGIC) ? "the end; truncated?" : "the start") + ")");
    }
    long footerLen = tail.getInt(0) & 0xFFFFFFFFL;
    if (footerLen == 0 || footerLen > size - 12) throw error("footer length " + footerLen + " does not fit a file of " + size + " bytes (truncated?)");
    dataEnd = size - 8 - footerLen;
    byte[] footer = read(dataEnd, (int) footerLen).array();
    Struct meta;
    try {
      meta = new ThriftCompactReader(footer, 0, footer.length).readStruct();
    } catch (IOException e) {
      throw error("corrupt footer (FileMetaData): " + e.getMessage());
    }
    try {
      rowCount = meta.requireI64(3, "FileMetaData.num_rows");
      if (rowCount < 0) throw new IOException("num_rows " + rowCount);
      rowGroups = meta.structs(4);
      List<Struct> schema = meta.structs(2);
      if (schema.isEmpty()) throw new IOException("empty schema");
      leaves = new ArrayList<>();
      skipped = new ArrayList<>();
      int[] leafCounter = {0};
      int[] next = {1};
      int children = schema.get(0).i32(5, 0);
      for (int c = 0; c < children; c++) walk(schema, next, leafCounter, 1);
      if (next[0] != schema.size()) throw new IOException("schema has " + schema.size() + " elements but the root's tree covers " + next[0]);
      leafCount = leafCounter[0];
      columns = leaves.stream().map(Leaf::name).toList();
    } catch (IOException e) {
      throw error("bad footer: " + e.getMessage());
    }
  }

  /** Depth-first over the schema list: records top-level flat leaves, counts every leaf. */
  private void walk(List<Struct> schema, int[] next, int[] leafCounter, int depth) throws IOException {
    if (depth > ThriftCompactReader.MAX_DEPTH) throw new IOException("schema nested deeper than " + ThriftCompactReader.MAX_DEPTH + " levels");
    if (next[0] >= schema.size()) throw new IOException("schema ends inside a group");
    Struct e = schema.get(next[0]++);
    String name = e.string(4);
    if (name == null) throw new IOException("schema element without a name");
    int children = e.i32(5, 0);
    int repetition = e.i32(3, REQUIRED);
    if (children > 0 || !e.has(1)) {
      if (children < 0 || children > schema.size()) throw new IOException("group '" + name + "' declares " + children + " children");
      for (int c = 0; c < children; c++) walk(schema, next, leafCounter, depth + 1);
      if (depth == 1) skipped.add(name);
      return;
    }
    int leaf = leafCounter[0]++;
    if (depth != 1) return;
    if (repetition == REPEATED) {
      skipped.add(name);
      return;
    }
    int type = e.i32(1, -1);
    if (type < BOOLEAN || type > FIXED_LEN_BYTE_ARRAY) throw new IOException("column '" + name + "' has unknown physical type " + type);
    int typeLength = e.i32(2, 0);
    if (type == FIXED_LEN_BYTE_ARRAY && (typeLength <= 0 || typeLength > MAX_PAGE_BYTES)) {
      throw new IOException("column '" + name + "' is FIXED_LEN_BYTE_ARRAY of length " + typeLength);
    }
    leaves.add(Leaf.of(name, type, typeLength, repetition == OPTIONAL, leaf, e.i32(6, -1), e.struct(10), e.i32(7, 0)));
  }

  /** Opens a file and reads its footer. */
  public static ParquetReader open(Path file) throws IOException {
    FileChannel ch = FileChannel.open(file, StandardOpenOption.READ);
    try {
      return new ParquetReader(file, ch);
    } catch (IOException | RuntimeException e) {
      ch.close();
      throw e;
    }
  }

  /** The flat columns, in schema order: the values of {@link #nextRow()}. */
  public List<String> columns() {
    return columns;
  }

  /** Top-level nested or repeated fields (lists, structs, maps), which are not read. */
  public List<String> skippedColumns() {
    return List.copyOf(skipped);
  }

  /** Rows the footer declares. */
  public long rowCount() {
    return rowCount;
  }

  public int rowGroupCount() {
    return rowGroups.size();
  }

  /** The 0-based index of the row last returned by {@link #nextRow()}. */
  public long rowIndex() {
    return row;
  }

  /**
   * The next row's values, one per {@link #columns()} entry (null for a null), or null after the
   * last row. A damaged row group is an IOException naming the file, the row group and the column.
   */
  public Object[] nextRow() throws IOException {
    while (groupRowsLeft == 0) {
      if (group + 1 >= rowGroups.size()) {
        if (row + 1 != rowCount) throw error("the footer declares " + rowCount + " rows but its row groups hold " + (row + 1));
        cursors = null;
        return null;
      }
      loadRowGroup(++group);
    }
    Object[] out = new Object[cursors.length];
    for (int c = 0; c < cursors.length; c++) {
      try {
        out[c] = cursors[c].next();
      } catch (IOException | RuntimeException e) {
        throw where(cursors[c].leaf, e);
      }
    }
    groupRowsLeft--;
    row++;
    return out;
  }

  private IOException where(Leaf leaf, Exception e) {
    String m = e.getMessage() == null ? e.toString() : e.getMessage();
    return error("row group " + group + ", column '" + leaf.name + "': " + m, e);
  }

  private void loadRowGroup(int g) throws IOException {
    cursors = null; // the previous group's buffers can go before the next ones are read
    Struct rg = rowGroups.get(g);
    long rows;
    List<Struct> chunks;
    try {
      rows = rg.requireI64(3, "RowGroup.num_rows");
      chunks = rg.structs(1);
    } catch (IOException e) {
      throw error("row group " + g + ": " + e.getMessage());
    }
    if (rows < 0) throw error("row group " + g + " declares " + rows + " rows");
    if (chunks.size() != leafCount) throw error("row group " + g + " has " + chunks.size() + " column chunks, the schema " + leafCount + " columns");
    Column[] cs = new Column[leaves.size()];
    for (int c = 0; c < cs.length; c++) {
      Leaf leaf = leaves.get(c);
      try {
        cs[c] = openChunk(leaf, chunks.get(leaf.leafIndex), rows);
      } catch (IOException | RuntimeException e) {
        throw where(leaf, e);
      }
    }
    cursors = cs;
    groupRowsLeft = rows;
  }

  private Column openChunk(Leaf leaf, Struct chunk, long rows) throws IOException {
    if (chunk.has(1)) throw new IOException("the column chunk is in another file (" + chunk.string(1) + "), which is not supported");
    Struct md = chunk.struct(3);
    if (md == null) throw new IOException("column chunk without metadata");
    int type = md.requireI32(1, "ColumnMetaData.type");
    if (type != leaf.type) throw new IOException("chunk of type " + typeName(type) + " in a " + typeName(leaf.type) + " column");
    List<Object> path = md.list(3);
    if (path.size() != 1 || !(path.get(0) instanceof byte[] p) || !leaf.name.equals(new String(p, StandardCharsets.UTF_8))) {
      throw new IOException("column chunk's path_in_schema does not name this column");
    }
    int codec = md.requireI32(4, "ColumnMetaData.codec");
    long values = md.requireI64(5, "ColumnMetaData.num_values");
    if (values != rows) throw new IOException("column chunk holds " + values + " values for " + rows + " rows");
    long size = md.requireI64(7, "ColumnMetaData.total_compressed_size");
    long start = md.requireI64(9, "ColumnMetaData.data_page_offset");
    long dict = md.i64(11, 0);
    if (dict > 0 && dict < start) start = dict; // the dictionary page comes first; 0 is how some writers say "none"
    if (start < MAGIC.length || size < 0 || start > dataEnd || size > dataEnd - start) {
      throw new IOException("column chunk at bytes [" + start + ", " + (start + size) + ") lies outside the data of the file (bytes [4, " + dataEnd + "); truncated?)");
    }
    if (size > Integer.MAX_VALUE - 16) throw new IOException("column chunk of " + size + " bytes (at most 2 GiB per chunk)");
    if (codec != CODEC_UNCOMPRESSED && codec != CODEC_SNAPPY && codec != CODEC_GZIP && codec != CODEC_ZSTD && codec != CODEC_LZ4_RAW) {
      throw new IOException("compression " + codecName(codec) + " is not supported (UNCOMPRESSED, SNAPPY, GZIP, ZSTD and LZ4_RAW are)");
    }
    byte[] bytes = read(start, (int) size).array();
    return new Column(leaf, codec, bytes, start, rows);
  }

  private ByteBuffer read(long pos, int n) throws IOException {
    ByteBuffer b = ByteBuffer.allocate(n);
    while (b.hasRemaining()) {
      int r = channel.read(b, pos + b.position());
      if (r < 0) throw error("ends at byte " + (pos + b.position()) + " while reading [" + pos + ", " + (pos + n) + ") (truncated while reading?)");
    }
    return b.flip();
  }

  private IOException error(String m) {
    return new IOException(file + ": " + m);
  }

  private IOException error(String m, Throwable cause) {
    return new IOException(file + ": " + m, cause);
  }

  /**
   * A value of {@link #nextRow()} as text: integers and decimals in plain decimal digits, FLOAT
   * and DOUBLE as the shortest decimal that reads back to the same value, without an exponent
   * ({@code 1.0E20} → {@code 100000000000000000000}; NaN and Infinity as Java spells them), booleans
   * {@code true}/{@code false}, dates ISO-8601; null stays null.
   */
  public static String text(Object v) {
    return switch (v) {
      case null -> null;
      case Double d -> plain(Double.toString(d), Double.isFinite(d));
      case Float f -> plain(Float.toString(f), Float.isFinite(f));
      case BigDecimal d -> d.toPlainString();
      default -> v.toString();
    };
  }

  private static String plain(String s, boolean finite) {
    if (!finite || s.indexOf('E') < 0) return s;
    return new BigDecimal(s).stripTrailingZeros().toPlainString();
  }

  @Override
  public void close() throws IOException {
    cursors = null;
    channel.close();
  }

  /** One column chunk being read: its compressed bytes, its dictionary, the current page's decoders. */
  private final class Column {
    final Leaf leaf;
    final int codec;
    final byte[] chunk;
    final long fileOffset;
    long rowsLeft; // values of the chunk not yet in a page
    int pos;
    Object[] dictionary;
    boolean sawData;
    // the current page
    int pageLeft;
    Hybrid definitions;
    Values values;
    boolean fromDictionary;

    Column(Leaf leaf, int codec, byte[] chunk, long fileOffset, long rows) {
      this.leaf = leaf;
      this.codec = codec;
      this.chunk = chunk;
      this.fileOffset = fileOffset;
      this.rowsLeft = rows;
    }

    Object next() throws IOException {
      while (pageLeft == 0) nextPage();
      pageLeft--;
      if (definitions != null) {
        int d = definitions.next();
        if (d == 0) return null;
        if (d != 1) throw new IOException("definition level " + d + " in a flat column (at most 1)");
      }
      Object v = values.next();
      return fromDictionary ? v : convert(v);
    }

    private void nextPage() throws IOException {
      while (true) {
        if (pos >= chunk.length) throw new IOException("the column chunk ends with " + rowsLeft + " of its values missing");
        long at = fileOffset + pos;
        Struct h;
        ThriftCompactReader t = new ThriftCompactReader(chunk, pos, chunk.length - pos);
        try {
          h = t.readStruct();
        } catch (IOException e) {
          throw new IOException("bad page header at byte " + at + ": " + e.getMessage());
        }
        pos += t.consumed();
        int type = h.requireI32(1, "PageHeader.type");
        int usize = h.requireI32(2, "PageHeader.uncompressed_page_size");
        int csize = h.requireI32(3, "PageHeader.compressed_page_size");
        if (csize < 0 || csize > chunk.length - pos) {
          throw new IOException("page at byte " + at + " declares " + csize + " bytes but its column chunk has " + (chunk.length - pos) + " left");
        }
        if (usize < 0 || usize > MAX_PAGE_BYTES) throw new IOException("page at byte " + at + " declares " + usize + " bytes uncompressed (at most " + MAX_PAGE_BYTES + ")");
        int body = pos;
        pos += csize;
        try {
          switch (type) {
            case PAGE_DICTIONARY -> dictionaryPage(h, body, csize, usize);
            case PAGE_DATA -> {
              dataPage(h, body, csize, usize);
              return;
            }
            case PAGE_DATA_V2 -> {
              dataPageV2(h, body, csize, usize);
              return;
            }
            default -> {} // index pages, and page types newer than this reader, carry no values
          }
        } catch (IOException e) {
          throw new IOException("page at byte " + at + ": " + e.getMessage(), e);
        }
      }
    }

    private void dictionaryPage(Struct h, int body, int csize, int usize) throws IOException {
      if (dictionary != null || sawData) throw new IOException("a dictionary page " + (sawData ? "after data pages" : "after another one"));
      Struct d = h.struct(7);
      if (d == null) throw new IOException("dictionary page without its header");
      int n = d.requireI32(1, "DictionaryPageHeader.num_values");
      int enc = d.i32(2, ENCODING_PLAIN);
      if (enc != ENCODING_PLAIN && enc != ENCODING_PLAIN_DICTIONARY) throw unsupported(encodingName(enc) + " dictionary page");
      byte[] b = decompress(body, csize, usize);
      if (n < 0 || n > (long) b.length * 8) throw new IOException("dictionary of " + n + " values in " + b.length + " bytes");
      Values plain = plain(b, 0, b.length);
      Object[] dict = new Object[n];
      for (int i = 0; i < n; i++) dict[i] = convert(plain.next());
      dictionary = dict;
    }

    private void dataPage(Struct h, int body, int csize, int usize) throws IOException {
      Struct d = h.struct(5);
      if (d == null) throw new IOException("data page without its header");
      int n = d.requireI32(1, "DataPageHeader.num_values");
      int enc = d.requireI32(2, "DataPageHeader.encoding");
      int defEnc = d.requireI32(3, "DataPageHeader.definition_level_encoding");
      checkCount(n);
      byte[] b = decompress(body, csize, usize);
      int p = 0;
      definitions = null;
      if (leaf.optional) {
        if (defEnc != ENCODING_RLE) throw unsupported(encodingName(defEnc) + " definition levels");
        int len = ParquetDecoders.intLE(b, 0, b.length);
        if (len < 0 || len > b.length - 4) throw new IOException("definition levels of " + len + " bytes in a page of " + b.length);
        definitions = new Hybrid(b, 4, 4 + len, 1);
        p = 4 + len;
      }
      startPage(n, enc, b, p, b.length);
    }

    private void dataPageV2(Struct h, int body, int csize, int usize) throws IOException {
      Struct d = h.struct(8);
      if (d == null) throw new IOException("data page v2 without its header");
      int n = d.requireI32(1, "DataPageHeaderV2.num_values");
      int enc = d.requireI32(4, "DataPageHeaderV2.encoding");
      int defLen = d.requireI32(5, "DataPageHeaderV2.definition_levels_byte_length");
      int repLen = d.requireI32(6, "DataPageHeaderV2.repetition_levels_byte_length");
      boolean compressed = d.bool(7, true);
      checkCount(n);
      if (defLen < 0 || repLen < 0 || (long) defLen + repLen > csize || (long) defLen + repLen > usize) {
        throw new IOException("levels of " + repLen + " + " + defLen + " bytes in a page of " + csize);
      }
      // v2 keeps the levels uncompressed in front of the (maybe compressed) values.
      int levels = body + repLen;
      definitions = leaf.optional ? new Hybrid(chunk, levels, levels + defLen, 1) : null;
      int vstart = levels + defLen;
      int vlen = csize - repLen - defLen;
      byte[] b = compressed && codec != CODEC_UNCOMPRESSED ? decompress(vstart, vlen, usize - repLen - defLen) : null;
      if (b == null) {
        if (vlen != usize - repLen - defLen) throw new IOException("uncompressed page of " + vlen + " bytes declares " + (usize - repLen - defLen));
        startPage(n, enc, chunk, vstart, vstart + vlen);
      } else {
        startPage(n, enc, b, 0, b.length);
      }
    }

    private void checkCount(int n) throws IOException {
      if (n < 0 || n > rowsLeft) throw new IOException("page of " + n + " values where the column chunk has " + rowsLeft + " left");
      sawData = true;
    }

    private void startPage(int n, int enc, byte[] b, int p, int end) throws IOException {
      fromDictionary = false;
      values =
          switch (enc) {
            case ENCODING_PLAIN -> plain(b, p, end);
            case ENCODING_PLAIN_DICTIONARY, ENCODING_RLE_DICTIONARY -> {
              Object[] dict = dictionary;
              if (dict == null) throw new IOException("dictionary-encoded page without a dictionary page");
              if (p >= end) {
                if (n == 0 || definitions != null) {
                  // An all-null page may omit even the bit width; any read is then an error below.
                  yield () -> {
                    throw new IOException("dictionary indices missing");
                  };
                }
                throw new IOException("dictionary-encoded page without indices");
              }
              Hybrid idx = new Hybrid(b, p + 1, end, b[p] & 0xFF);
              fromDictionary = true;
              yield () -> {
                int i = idx.next();
                if (i < 0 || i >= dict.length) throw new IOException("dictionary index " + i + " of a dictionary of " + dict.length);
                return dict[i];
              };
            }
            case ENCODING_RLE -> {
              if (leaf.type != BOOLEAN) throw unsupported("RLE values in a " + typeName(leaf.type) + " column");
              int len = ParquetDecoders.intLE(b, p, end);
              if (len < 0 || len > end - p - 4) throw new IOException("RLE booleans of " + len + " bytes in " + (end - p - 4));
              Hybrid bits = new Hybrid(b, p + 4, p + 4 + len, 1);
              yield () -> bits.next() != 0;
            }
            case ENCODING_DELTA_BINARY_PACKED -> {
              if (leaf.type != INT32 && leaf.type != INT64) throw unsupported("DELTA_BINARY_PACKED in a " + typeName(leaf.type) + " column");
              DeltaBinaryPacked dbp = new DeltaBinaryPacked(b, p, end, n);
              boolean int32 = leaf.type == INT32;
              yield () -> int32 ? (Object) (int) dbp.next() : (Object) dbp.next();
            }
            case ENCODING_DELTA_LENGTH_BYTE_ARRAY -> {
              if (leaf.type != BYTE_ARRAY) throw unsupported("DELTA_LENGTH_BYTE_ARRAY in a " + typeName(leaf.type) + " column");
              DeltaLengthByteArray d = new DeltaLengthByteArray(b, p, end, n);
              yield d::next;
            }
            case ENCODING_DELTA_BYTE_ARRAY -> {
              if (leaf.type != BYTE_ARRAY && leaf.type != FIXED_LEN_BYTE_ARRAY) throw unsupported("DELTA_BYTE_ARRAY in a " + typeName(leaf.type) + " column");
              DeltaByteArray d = new DeltaByteArray(b, p, end, n);
              yield d::next;
            }
            case ENCODING_BYTE_STREAM_SPLIT -> {
              int w =
                  switch (leaf.type) {
                    case INT32, FLOAT -> 4;
                    case INT64, DOUBLE -> 8;
                    case FIXED_LEN_BYTE_ARRAY -> leaf.typeLength;
                    default -> throw unsupported("BYTE_STREAM_SPLIT in a " + typeName(leaf.type) + " column");
                  };
              ByteStreamSplit s = new ByteStreamSplit(b, p, end, w);
              yield () -> fromBytes(s.next());
            }
            default -> throw unsupported(encodingName(enc));
          };
      pageLeft = n;
      rowsLeft -= n;
    }

    /** A BYTE_STREAM_SPLIT value's bytes as the PLAIN decoder would have returned them. */
    private Object fromBytes(byte[] v) {
      return switch (leaf.type) {
        case INT32 -> ParquetDecoders.longLEInt(v);
        case FLOAT -> Float.intBitsToFloat(ParquetDecoders.longLEInt(v));
        case INT64 -> ParquetDecoders.longLE(v, 0);
        case DOUBLE -> Double.longBitsToDouble(ParquetDecoders.longLE(v, 0));
        default -> v;
      };
    }

    private IOException unsupported(String what) {
      return new IOException(what + " is not supported");
    }

    /** PLAIN values of this column's physical type. */
    private Values plain(byte[] b, int start, int end) {
      int[] p = {start};
      long[] bit = {(long) start * 8};
      return switch (leaf.type) {
        case BOOLEAN -> () -> ParquetDecoders.bits(b, bit[0]++, 1, end) != 0;
        case INT32 -> () -> {
          int v = ParquetDecoders.intLE(b, p[0], end);
          p[0] += 4;
          return v;
        };
        case FLOAT -> () -> {
          int v = ParquetDecoders.intLE(b, p[0], end);
          p[0] += 4;
          return Float.intBitsToFloat(v);
        };
        case INT64, DOUBLE -> () -> {
          if (end - p[0] < 8) throw new IOException("page ends inside an 8-byte value");
          long v = ParquetDecoders.longLE(b, p[0]);
          p[0] += 8;
          return leaf.type == DOUBLE ? (Object) Double.longBitsToDouble(v) : (Object) v;
        };
        case BYTE_ARRAY -> () -> {
          int len = ParquetDecoders.intLE(b, p[0], end);
          if (len < 0 || len > end - p[0] - 4) throw new IOException("BYTE_ARRAY value of " + len + " bytes, " + (end - p[0] - 4) + " left in the page");
          byte[] v = Arrays.copyOfRange(b, p[0] + 4, p[0] + 4 + len);
          p[0] += 4 + len;
          return v;
        };
        default -> { // INT96 and FIXED_LEN_BYTE_ARRAY
          int w = leaf.type == INT96 ? 12 : leaf.typeLength;
          yield () -> {
            if (end - p[0] < w) throw new IOException("page ends inside a " + w + "-byte value");
            byte[] v = Arrays.copyOfRange(b, p[0], p[0] + w);
            p[0] += w;
            return v;
          };
        }
      };
    }

    /** A physical value (Boolean, Integer, Long, Float, Double, byte[]) as the schema's logical type says. */
    private Object convert(Object v) {
      switch (leaf.type) {
        case INT32 -> {
          int i = (Integer) v;
          if (leaf.decimal) return BigDecimal.valueOf(i, leaf.scale);
          if (leaf.date) return LocalDate.ofEpochDay(i);
          if (leaf.unsigned) return i & 0xFFFFFFFFL;
          return v;
        }
        case INT64 -> {
          long l = (Long) v;
          if (leaf.decimal) return BigDecimal.valueOf(l, leaf.scale);
          if (leaf.unsigned && l < 0) return new BigInteger(Long.toUnsignedString(l));
          return v;
        }
        case INT96 -> {
          byte[] b = (byte[]) v;
          long nanos = ParquetDecoders.longLE(b, 0);
          long julianDay = ParquetDecoders.longLEInt(Arrays.copyOfRange(b, 8, 12)) & 0xFFFFFFFFL;
          try {
            return LocalDate.ofEpochDay(julianDay - 2_440_588).atStartOfDay().plusNanos(nanos);
          } catch (java.time.DateTimeException e) {
            return HexFormat.of().formatHex(b);
          }
        }
        case BYTE_ARRAY, FIXED_LEN_BYTE_ARRAY -> {
          byte[] b = (byte[]) v;
          if (leaf.decimal) return b.length == 0 ? BigDecimal.ZERO.setScale(leaf.scale) : new BigDecimal(new BigInteger(b), leaf.scale);
          if (leaf.type == BYTE_ARRAY) return new String(b, StandardCharsets.UTF_8);
          if (leaf.uuid && b.length == 16) {
            ByteBuffer bb = ByteBuffer.wrap(b);
            return new UUID(bb.getLong(), bb.getLong()).toString();
          }
          return HexFormat.of().formatHex(b);
        }
        default -> {
          return v;
        }
      }
    }

    /** The page's bytes after the codec, exactly {@code usize} of them. */
    private byte[] decompress(int off, int len, int usize) throws IOException {
      if (usize == 0 && len == 0) return new byte[0]; // an empty values section (an all-null v2 page) need not be a codec frame
      if (codec == CODEC_UNCOMPRESSED) {
        if (len != usize) throw new IOException("uncompressed page of " + len + " bytes declares " + usize);
        return Arrays.copyOfRange(chunk, off, off + len);
      }
      byte[] out;
      try {
        out = ParquetCodecs.decompress(codec, chunk, off, len, usize);
      } catch (IOException | RuntimeException e) {
        throw new IOException(codecName(codec) + " data does not decompress: " + e.getMessage(), e);
      }
      return out;
    }
  }
}
