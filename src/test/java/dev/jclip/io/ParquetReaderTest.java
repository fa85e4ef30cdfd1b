package dev.jclip.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.math.BigDecimal;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * ParquetReader against DuckDB, an independent writer and reader: files DuckDB writes with every
 * codec, both page versions and several row groups must read back value for value as DuckDB reads
 * them; damaged files must give an IOException naming the file.
 */
class ParquetReaderTest {
  static final int ROWS = 12_000;
  static final List<String> CODECS = List.of("uncompressed", "snappy", "gzip", "zstd", "lz4_raw");

  @TempDir static Path dir;
  static Connection db;

  @BeforeAll
  static void connect() throws SQLException {
    db = DriverManager.getConnection("jdbc:duckdb:");
    try (Statement s = db.createStatement()) {
      s.execute("SET threads = 1");
      // Nulls, unicode, long and empty strings, dictionary-friendly repeats and unique values,
      // every flat type a table of paths may carry, and nested columns that must be skipped.
      s.execute(
          """
          CREATE TABLE t AS SELECT
            i::INTEGER AS id,
            CASE WHEN i % 7 = 3 THEN NULL ELSE 'imgs/' || (i % 40) || '.jpg' END AS image_path,
            CASE WHEN i % 5 = 0 THEN NULL WHEN i % 11 = 0 THEN ''
                 ELSE 'caption ' || i || ' 猫 🐈 ' || repeat('é', (i * 37) % 700) END AS caption,
            (i::BIGINT * 1000000007 - 5000000000) AS big,
            CASE WHEN i % 3 = 0 THEN NULL ELSE i / 7.0 END::DOUBLE AS d,
            (i * 0.25)::FLOAT AS f,
            (i % 2 = 0) AS b,
            CASE WHEN i % 13 = 0 THEN NULL ELSE i % 4 = 1 END AS bn,
            ((i % 1000 - 500) / 7)::DECIMAL(9, 2) AS dec,
            (i * 12345.6789)::DECIMAL(30, 4) AS wide,
            (4000000000 + i)::UINTEGER AS u,
            DATE '2020-01-01' + (i % 3000)::INTEGER AS day,
            CASE WHEN i % 2 = 0 THEN 'same' ELSE 'x' || i END AS mixed,
            CASE WHEN i % 6 = 1 THEN NULL ELSE ('00000000-0000-4000-8000-' || lpad(i::VARCHAR, 12, '0'))::UUID END AS uid,
            [i, i + 1] AS lst,
            {'a': i, 'b': 'v' || i} AS st
          FROM range(ROWS) r(i)
          """
              .replace("ROWS", Integer.toString(ROWS)));
    }
  }

  @AfterAll
  static void disconnect() throws SQLException {
    if (db != null) db.close();
  }

  private static Path write(String name, String options) throws SQLException {
    Path f = dir.resolve(name);
    try (Statement s = db.createStatement()) {
      s.execute("COPY t TO '" + f + "' (FORMAT PARQUET, " + options + ")");
    }
    return f;
  }

  /** What DuckDB reads back: the flat columns in file order. */
  private static List<Object[]> duck(Path f, List<String> cols) throws SQLException {
    List<Object[]> out = new ArrayList<>();
    try (Statement s = db.createStatement();
        ResultSet rs = s.executeQuery("SELECT " + String.join(", ", cols) + " FROM read_parquet('" + f + "', file_row_number = true) ORDER BY file_row_number")) {
      ResultSetMetaData md = rs.getMetaData();
      while (rs.next()) {
        Object[] row = new Object[cols.size()];
        for (int c = 0; c < row.length; c++) {
          row[c] = md.getColumnTypeName(c + 1).equals("DATE") ? rs.getObject(c + 1, LocalDate.class) : rs.getObject(c + 1);
          if (row[c] instanceof java.util.UUID u) row[c] = u.toString(); // ParquetReader gives UUIDs as text
        }
        out.add(row);
      }
    }
    return out;
  }

  private static List<Object[]> ours(Path f) throws IOException {
    List<Object[]> out = new ArrayList<>();
    try (ParquetReader r = ParquetReader.open(f)) {
      for (Object[] row; (row = r.nextRow()) != null; ) {
        assertEquals(out.size(), r.rowIndex());
        out.add(row);
      }
      assertEquals(r.rowCount(), out.size());
    }
    return out;
  }

  private static TreeSet<String> encodings(Path f) throws SQLException {
    TreeSet<String> out = new TreeSet<>();
    try (Statement s = db.createStatement();
        ResultSet rs = s.executeQuery("SELECT DISTINCT encodings FROM parquet_metadata('" + f + "')")) {
      while (rs.next()) out.addAll(Arrays.asList(rs.getString(1).split(",\\s*")));
    }
    return out;
  }

  @Test
  void readsWhatDuckDbWritesWithEveryCodecAndPageVersion() throws Exception {
    TreeSet<String> seen = new TreeSet<>();
    int files = 0;
    for (String version : List.of("V1", "V2")) {
      for (String codec : CODECS) {
        Path f = write(codec + "-" + version + ".parquet", "COMPRESSION '" + codec + "', ROW_GROUP_SIZE 2500, PARQUET_VERSION " + version);
        List<String> cols;
        int groups;
        try (ParquetReader r = ParquetReader.open(f)) {
          cols = r.columns();
          groups = r.rowGroupCount();
          assertEquals(List.of("lst", "st"), r.skippedColumns());
          assertEquals(ROWS, r.rowCount());
        }
        assertEquals(List.of("id", "image_path", "caption", "big", "d", "f", "b", "bn", "dec", "wide", "u", "day", "mixed", "uid"), cols);
        assertTrue(groups >= 3, f + ": " + groups + " row groups");
        List<Object[]> want = duck(f, cols);
        List<Object[]> got = ours(f);
        assertEquals(want.size(), got.size());
        int mismatches = 0;
        for (int i = 0; i < want.size(); i++) {
          if (!Arrays.equals(want.get(i), got.get(i))) {
            if (mismatches++ < 3) System.err.println(f.getFileName() + " row " + i + ": duckdb " + Arrays.toString(want.get(i)) + " ours " + Arrays.toString(got.get(i)));
          }
        }
        assertEquals(0, mismatches, f + ": mismatching rows");
        seen.addAll(encodings(f));
        files++;
      }
    }
    assertEquals(10, files);
    // The files must have exercised the encodings the reader claims (else this test proves less than it says).
    for (String e : List.of("PLAIN", "RLE_DICTIONARY", "DELTA_BINARY_PACKED")) assertTrue(seen.contains(e), "no " + e + " among " + seen);
    System.err.println("ParquetReaderTest: DuckDB encodings seen " + seen);
  }

  @Test
  void valuesAsText() {
    assertEquals("100000000000000000000", ParquetReader.text(1e20));
    assertEquals("0.0000001", ParquetReader.text(1e-7));
    assertEquals("0.1", ParquetReader.text(0.1f));
    assertEquals("2.5", ParquetReader.text(2.5));
    assertEquals("-3", ParquetReader.text(-3L));
    assertEquals("NaN", ParquetReader.text(Double.NaN));
    assertEquals("true", ParquetReader.text(true));
    assertEquals("1.50", ParquetReader.text(new BigDecimal("1.50")));
    assertEquals("2024-02-29", ParquetReader.text(LocalDate.of(2024, 2, 29)));
    assertNull(ParquetReader.text(null));
  }

  @Test
  void readsOurOwnWriterAndDuckDbReadsItToo() throws Exception {
    Path f = dir.resolve("ours.parquet");
    List<ParquetWriter.Column> schema =
        List.of(
            ParquetWriter.Column.required("key", ParquetWriter.Type.STRING),
            ParquetWriter.Column.optional("caption", ParquetWriter.Type.STRING),
            ParquetWriter.Column.optional("width", ParquetWriter.Type.INT32),
            ParquetWriter.Column.required("n", ParquetWriter.Type.INT64),
            ParquetWriter.Column.optional("f", ParquetWriter.Type.FLOAT),
            ParquetWriter.Column.optional("d", ParquetWriter.Type.DOUBLE),
            ParquetWriter.Column.optional("b", ParquetWriter.Type.BOOLEAN));
    int n = 45_000; // more than one page per column (ParquetWriter cuts at 20,000 rows)
    List<Object[]> rows = new ArrayList<>();
    try (ParquetWriter w = ParquetWriter.create(f, schema)) {
      for (int i = 0; i < n; i++) {
        Object[] row = {
          "k" + i,
          i % 3 == 0 ? null : (i % 5 == 0 ? "" : "猫 🐈 " + i),
          i % 7 == 0 ? null : i,
          (long) i * 1_000_000_007L,
          i % 11 == 0 ? null : i * 0.5f,
          i % 13 == 0 ? null : i / 3.0,
          i % 17 == 0 ? null : i % 2 == 0
        };
        rows.add(row);
        w.writeRow(row);
      }
      w.finish();
    }
    List<String> cols = schema.stream().map(ParquetWriter.Column::name).toList();
    List<Object[]> duck = duck(f, cols);
    List<Object[]> ours = ours(f);
    assertEquals(n, duck.size());
    assertEquals(n, ours.size());
    for (int i = 0; i < n; i++) {
      assertTrue(Arrays.equals(rows.get(i), duck.get(i)), "DuckDB row " + i + ": " + Arrays.toString(duck.get(i)));
      assertTrue(Arrays.equals(rows.get(i), ours.get(i)), "our row " + i + ": " + Arrays.toString(ours.get(i)));
    }
  }

  @Test
  void emptyTableAndAllNullColumn() throws Exception {
    Path empty = write("empty.parquet", "COMPRESSION 'snappy'");
    try (Statement s = db.createStatement()) {
      s.execute("COPY (SELECT * FROM t WHERE false) TO '" + empty + "' (FORMAT PARQUET)");
    }
    try (ParquetReader r = ParquetReader.open(empty)) {
      assertEquals(0, r.rowCount());
      assertNull(r.nextRow());
    }
    for (String codec : CODECS) {
      for (String version : List.of("V1", "V2")) {
        Path nulls = dir.resolve("nulls-" + codec + version + ".parquet");
        try (Statement s = db.createStatement()) {
          s.execute(
              "COPY (SELECT NULL::VARCHAR AS image_path, i AS n, CASE WHEN i < 3000 THEN NULL ELSE i END AS late FROM range(5000) r(i)) TO '" + nulls
                  + "' (FORMAT PARQUET, COMPRESSION '" + codec + "', PARQUET_VERSION " + version + ", ROW_GROUP_SIZE 2048)");
        }
        List<Object[]> rows = ours(nulls);
        assertEquals(5000, rows.size());
        for (int i = 0; i < rows.size(); i++) {
          assertNull(rows.get(i)[0]);
          assertEquals((long) i, rows.get(i)[1]);
          assertEquals(i < 3000 ? null : (Object) (long) i, rows.get(i)[2]);
        }
      }
    }
  }

  @Test
  void notParquetAndTruncatedFilesAreClearErrors() throws Exception {
    Path small = dir.resolve("small.bin");
    Files.write(small, new byte[] {'P', 'A', 'R', '1'});
    IOException e = assertThrows(IOException.class, () -> ParquetReader.open(small));
    assertTrue(e.getMessage().startsWith(small.toString()) && e.getMessage().contains("12"), e.getMessage());
    Path csv = dir.resolve("t.parquet");
    Files.writeString(csv, "a,b\n1,2\n3,4\n5,6\n");
    e = assertThrows(IOException.class, () -> ParquetReader.open(csv));
    assertTrue(e.getMessage().contains("not a Parquet file"), e.getMessage());
    byte[] good = Files.readAllBytes(write("trunc-src.parquet", "COMPRESSION 'zstd', ROW_GROUP_SIZE 2500"));
    Path cut = dir.resolve("cut.parquet");
    Files.write(cut, Arrays.copyOf(good, good.length / 2));
    e = assertThrows(IOException.class, () -> ParquetReader.open(cut));
    assertTrue(e.getMessage().contains("truncated"), e.getMessage());
  }

  /**
   * Damaged copies of small valid files (truncated at many points, bytes overwritten) must read
   * or fail with an IOException naming the file: never another exception, an Error or a hang.
   */
  @Test
  @Timeout(value = 120, unit = TimeUnit.SECONDS)
  void damagedFilesGiveIOExceptionsOnly() throws Exception {
    int tried = 0;
    int failed = 0;
    SplittableRandom rnd = new SplittableRandom(42);
    for (String opts : List.of("COMPRESSION 'snappy', PARQUET_VERSION V1", "COMPRESSION 'zstd', PARQUET_VERSION V2", "COMPRESSION 'gzip'", "COMPRESSION 'uncompressed', PARQUET_VERSION V2", "COMPRESSION 'lz4_raw'")) {
      Path src = dir.resolve("fuzz-src.parquet");
      Files.deleteIfExists(src);
      try (Statement s = db.createStatement()) {
        s.execute("COPY (SELECT * EXCLUDE (lst, st) FROM t WHERE id < 600) TO '" + src + "' (FORMAT PARQUET, " + opts + ", ROW_GROUP_SIZE 200)");
      }
      byte[] good = Files.readAllBytes(src);
      Path f = dir.resolve("fuzz.parquet");
      for (int k = 0; k < 120; k++) {
        int cut = rnd.nextInt(good.length);
        failed += tryRead(f, Arrays.copyOf(good, cut));
        byte[] bad = good.clone();
        int hits = 1 + rnd.nextInt(4);
        for (int h = 0; h < hits; h++) {
          // Mostly the footer and page headers, where lengths live; sometimes anywhere.
          int at = rnd.nextInt(4) == 0 ? rnd.nextInt(bad.length) : bad.length - 1 - rnd.nextInt(Math.min(bad.length, 600));
          bad[at] = (byte) (rnd.nextInt(3) == 0 ? 0xFF : rnd.nextInt(256));
        }
        failed += tryRead(f, bad);
        tried += 2;
      }
    }
    System.err.println("ParquetReaderTest fuzz: " + tried + " damaged files, " + failed + " rejected with an IOException, none with anything else");
    assertTrue(failed > tried / 2, failed + " of " + tried);
  }

  /** 1 when the read failed with a proper IOException, 0 when it read; anything else fails the test. */
  private static int tryRead(Path f, byte[] content) throws IOException {
    Files.write(f, content);
    try (ParquetReader r = ParquetReader.open(f)) {
      while (r.nextRow() != null) {}
      return 0;
    } catch (IOException e) {
      assertNotNull(e.getMessage());
      assertTrue(e.getMessage().startsWith(f.toString()), e.getMessage());
      return 1;
    } catch (Throwable t) {
      fail("a damaged file gave " + t, t);
      return 0;
    }
  }
}
