package dev.jclip.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Hand-built files for what no writer produces on purpose: page headers and footers that lie
 * about sizes, chunks outside the file, decompression bombs, absurd Thrift lengths and nesting,
 * codecs and encodings the reader lacks; and DELTA_BYTE_ARRAY, which DuckDB does not write.
 */
class ParquetReaderCraftedTest {
  @TempDir Path dir;

  /** One BYTE_ARRAY column "image_path" with one data page (v1) holding {@code body}. */
  static final class Craft {
    boolean optional;
    int type = ParquetFormat.BYTE_ARRAY;
    int encoding = ParquetFormat.ENCODING_PLAIN;
    int codec = ParquetFormat.CODEC_UNCOMPRESSED;
    byte[] body = new byte[0];
    int values;
    Integer usize;
    Integer csize;
    Long chunkOffset;
    Long chunkSize;
    long rows = -1;

    byte[] build() {
      ThriftCompactWriter h = new ThriftCompactWriter();
      h.beginStruct();
      h.fieldI32(1, ParquetFormat.PAGE_DATA);
      h.fieldI32(2, usize != null ? usize : body.length);
      h.fieldI32(3, csize != null ? csize : body.length);
      h.fieldStruct(5);
      h.fieldI32(1, values);
      h.fieldI32(2, encoding);
      h.fieldI32(3, ParquetFormat.ENCODING_RLE);
      h.fieldI32(4, ParquetFormat.ENCODING_RLE);
      h.endStruct();
      h.endStruct();
      byte[] header = h.toByteArray();
      long n = rows >= 0 ? rows : values;
      ThriftCompactWriter t = new ThriftCompactWriter();
      t.beginStruct();
      t.fieldI32(1, 1);
      t.fieldList(2, ThriftCompactWriter.STRUCT, 2);
      t.beginStruct();
      t.fieldString(4, "schema");
      t.fieldI32(5, 1);
      t.endStruct();
      t.beginStruct();
      t.fieldI32(1, type);
      t.fieldI32(3, optional ? ParquetFormat.OPTIONAL : ParquetFormat.REQUIRED);
      t.fieldString(4, "image_path");
      t.endStruct();
      t.fieldI64(3, n);
      t.fieldList(4, ThriftCompactWriter.STRUCT, 1);
      t.beginStruct();
      t.fieldList(1, ThriftCompactWriter.STRUCT, 1);
      t.beginStruct();
      t.fieldI64(2, 0);
      t.fieldStruct(3);
      t.fieldI32(1, type);
      t.fieldList(2, ThriftCompactWriter.I32, 1);
      t.i32(encoding);
      t.fieldList(3, ThriftCompactWriter.BINARY, 1);
      t.string("image_path");
      t.fieldI32(4, codec);
      t.fieldI64(5, n);
      t.fieldI64(6, header.length + body.length);
      t.fieldI64(7, chunkSize != null ? chunkSize : header.length + body.length);
      t.fieldI64(9, chunkOffset != null ? chunkOffset : 4);
      t.endStruct();
      t.endStruct();
      t.fieldI64(2, header.length + body.length);
      t.fieldI64(3, n);
      t.endStruct();
      t.endStruct();
      return file(concat(header, body), t.toByteArray());
    }
  }

  static byte[] file(byte[] data, byte[] footer) {
    ByteBuffer b = ByteBuffer.allocate(4 + data.length + footer.length + 8).order(ByteOrder.LITTLE_ENDIAN);
    b.put(ParquetFormat.MAGIC).put(data).put(footer).putInt(footer.length).put(ParquetFormat.MAGIC);
    return b.array();
  }

  static byte[] concat(byte[]... parts) {
    ByteArrayOutputStream o = new ByteArrayOutputStream();
    for (byte[] p : parts) o.writeBytes(p);
    return o.toByteArray();
  }

  static byte[] plainStrings(String... v) {
    ByteArrayOutputStream o = new ByteArrayOutputStream();
    for (String s : v) {
      byte[] b = s.getBytes(StandardCharsets.UTF_8);
      o.writeBytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(b.length).array());
      o.writeBytes(b);
    }
    return o.toByteArray();
  }

  private List<Object> read(byte[] content) throws IOException {
    Path f = dir.resolve("c.parquet");
    Files.write(f, content);
    List<Object> out = new ArrayList<>();
    try (ParquetReader r = ParquetReader.open(f)) {
      for (Object[] row; (row = r.nextRow()) != null; ) out.add(row[0]);
    }
    return out;
  }

  private String error(byte[] content) {
    IOException e = assertThrows(IOException.class, () -> read(content));
    assertTrue(e.getMessage().startsWith(dir.resolve("c.parquet").toString()), e.getMessage());
    return e.getMessage();
  }

  private static void contains(String message, String... parts) {
    for (String p : parts) assertTrue(message.contains(p), "'" + p + "' not in: " + message);
  }

  @Test
  void aWellFormedCraftReads() throws IOException {
    Craft c = new Craft();
    c.body = plainStrings("a.jpg", "b 猫.jpg");
    c.values = 2;
    assertEquals(List.of("a.jpg", "b 猫.jpg"), read(c.build()));
  }

  @Test
  void pageAndChunkSizesThatLie() {
    Craft c = new Craft();
    c.body = plainStrings("a.jpg", "b.jpg");
    c.values = 2;
    c.csize = 1_000_000;
    contains(error(c.build()), "column 'image_path'", "declares 1000000 bytes");
    c.csize = null;
    c.usize = Integer.MAX_VALUE;
    contains(error(c.build()), "uncompressed");
    c.usize = null;
    c.chunkOffset = 1L << 40;
    contains(error(c.build()), "outside");
    c.chunkOffset = null;
    c.chunkSize = 1L << 20;
    contains(error(c.build()), "outside");
    c.chunkSize = null;
    c.values = 3; // one more value than the page holds
    contains(error(c.build()), "page ends inside");
    c.values = 2;
    c.rows = 5; // the chunk ends before the rows the footer declares
    contains(error(c.build()), "values missing");
  }

  @Test
  void decompressionBombsStopAtTheDeclaredSize() throws IOException {
    ByteArrayOutputStream z = new ByteArrayOutputStream();
    try (GZIPOutputStream g = new GZIPOutputStream(z)) {
      g.write(new byte[50 << 20]); // 50 MiB of zeros in about 50 KiB
    }
    Craft c = new Craft();
    c.codec = ParquetFormat.CODEC_GZIP;
    c.body = z.toByteArray();
    c.usize = 1000;
    c.values = 1;
    contains(error(c.build()), "GZIP", "more than the 1000 bytes");
    byte[] zs = com.github.luben.zstd.Zstd.compress(new byte[50 << 20]);
    c.codec = ParquetFormat.CODEC_ZSTD;
    c.body = zs;
    contains(error(c.build()), "ZSTD", "1000");
  }

  @Test
  void unsupportedCodecsAndEncodingsNameTheColumn() {
    Craft c = new Craft();
    c.body = plainStrings("a.jpg");
    c.values = 1;
    c.codec = ParquetFormat.CODEC_BROTLI;
    contains(error(c.build()), "column 'image_path'", "BROTLI", "not supported");
    c.codec = ParquetFormat.CODEC_UNCOMPRESSED;
    c.encoding = 99;
    contains(error(c.build()), "column 'image_path'", "encoding 99", "not supported");
    c.encoding = ParquetFormat.ENCODING_BYTE_STREAM_SPLIT;
    contains(error(c.build()), "BYTE_STREAM_SPLIT in a BYTE_ARRAY column");
  }

  @Test
  void absurdThriftLengthsAndNestingInTheFooter() {
    // FileMetaData whose field 2 claims a list of 2^31 structs.
    byte[] list = {0x19, (byte) 0xFC, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, 0x07, 0};
    contains(error(file(new byte[0], list)), "corrupt footer", "list of");
    // 200 nested structs: field 1 of type STRUCT, again and again.
    byte[] deep = new byte[401];
    for (int i = 0; i < 200; i++) deep[i] = 0x1C;
    contains(error(file(new byte[0], deep)), "corrupt footer", "nested deeper");
    // A binary field longer than the footer.
    byte[] bin = {0x48, (byte) 0xFF, (byte) 0xFF, 0x03, 0};
    contains(error(file(new byte[0], bin)), "corrupt footer", "binary of");
    contains(error(file(new byte[0], new byte[] {0})), "num_rows");
  }

  @Test
  void int96TimestampsAsSparkWritesThem() throws IOException {
    // INT96: nanoseconds of the day (8 bytes LE), then the Julian day (4 bytes LE).
    java.time.LocalDateTime t = java.time.LocalDateTime.of(2020, 1, 2, 3, 4, 5, 6);
    ByteBuffer b = ByteBuffer.allocate(24).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(t.toLocalTime().toNanoOfDay()).putInt((int) (t.toLocalDate().toEpochDay() + 2_440_588));
    b.putLong(0).putInt(2_440_588);
    Craft c = new Craft();
    c.type = ParquetFormat.INT96;
    c.body = b.array();
    c.values = 2;
    assertEquals(List.of(t, java.time.LocalDateTime.of(1970, 1, 1, 0, 0)), read(c.build()));
    assertEquals("2020-01-02T03:04:05.000000006", ParquetReader.text(t));
  }

  /** DELTA_BINARY_PACKED as the spec lays it out: one block of 128 values in 4 miniblocks per 128 values. */
  static byte[] deltaBinaryPacked(long[] v) {
    ByteArrayOutputStream o = new ByteArrayOutputStream();
    uleb(o, 128);
    uleb(o, 4);
    uleb(o, v.length);
    uleb(o, zigzag(v.length == 0 ? 0 : v[0]));
    for (int start = 1; start < v.length; start += 128) {
      int n = Math.min(128, v.length - start);
      long[] d = new long[n];
      long min = Long.MAX_VALUE;
      for (int i = 0; i < n; i++) {
        d[i] = v[start + i] - v[start + i - 1];
        min = Math.min(min, d[i]);
      }
      uleb(o, zigzag(min));
      int[] widths = new int[4];
      for (int m = 0; m < 4; m++) {
        for (int i = m * 32; i < Math.min(n, m * 32 + 32); i++) widths[m] = Math.max(widths[m], 64 - Long.numberOfLeadingZeros(d[i] - min));
      }
      for (int w : widths) o.write(w);
      for (int m = 0; m * 32 < n; m++) {
        byte[] packed = new byte[32 * widths[m] / 8];
        for (int i = 0; i < 32 && m * 32 + i < n; i++) {
          long x = d[m * 32 + i] - min;
          for (int bit = 0; bit < widths[m]; bit++) {
            if ((x >>> bit & 1) != 0) {
              int at = i * widths[m] + bit;
              packed[at >> 3] |= (byte) (1 << (at & 7));
            }
          }
        }
        o.writeBytes(packed);
      }
    }
    return o.toByteArray();
  }

  private static long zigzag(long v) {
    return (v << 1) ^ (v >> 63);
  }

  private static void uleb(ByteArrayOutputStream o, long v) {
    while ((v & ~0x7FL) != 0) {
      o.write((int) (v & 0x7F) | 0x80);
      v >>>= 7;
    }
    o.write((int) v);
  }

  @Test
  void deltaByteArrayStrings() throws IOException {
    // Sorted paths share prefixes: the case DELTA_BYTE_ARRAY is for. 300 values span 3 blocks.
    List<String> want = new ArrayList<>();
    for (int i = 0; i < 300; i++) want.add("shard-" + (i / 50) + "/img_" + String.format("%05d", i * 7) + (i % 9 == 0 ? "_猫" : "") + ".jpg");
    long[] prefix = new long[want.size()];
    long[] suffixLen = new long[want.size()];
    ByteArrayOutputStream suffixes = new ByteArrayOutputStream();
    byte[] prev = new byte[0];
    for (int i = 0; i < want.size(); i++) {
      byte[] b = want.get(i).getBytes(StandardCharsets.UTF_8);
      int p = 0;
      while (p < prev.length && p < b.length && prev[p] == b[p]) p++;
      prefix[i] = p;
      suffixLen[i] = b.length - p;
      suffixes.write(b, p, b.length - p);
      prev = b;
    }
    Craft c = new Craft();
    c.encoding = ParquetFormat.ENCODING_DELTA_BYTE_ARRAY;
    c.body = concat(deltaBinaryPacked(prefix), deltaBinaryPacked(suffixLen), suffixes.toByteArray());
    c.values = want.size();
    assertEquals(want, read(c.build()));
    // A prefix longer than the previous value is corrupt, not an exception of another kind.
    prefix[1] = 1000;
    c.body = concat(deltaBinaryPacked(prefix), deltaBinaryPacked(suffixLen), suffixes.toByteArray());
    contains(error(c.build()), "DELTA_BYTE_ARRAY prefix of 1000 bytes");
    // A header that declares 2^40 values with zero-width miniblocks would take hours to skip.
    ByteArrayOutputStream lie = new ByteArrayOutputStream();
    for (long v : new long[] {128, 4, 1L << 40, 0, 0}) uleb(lie, v);
    lie.writeBytes(new byte[4]);
    c.body = lie.toByteArray();
    contains(error(c.build()), "declares 1099511627776 values");
  }
}
