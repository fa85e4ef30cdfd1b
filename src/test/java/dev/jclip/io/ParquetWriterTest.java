package dev.jclip.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.io.ParquetWriter.Column;
import dev.jclip.io.ParquetWriter.Type;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Files from {@link ParquetWriter} read back value for value by parquet-java. */
class ParquetWriterTest {
  @TempDir Path dir;

  private static final List<Column> ALL_TYPES =
      List.of(
          Column.required("key", Type.STRING),
          Column.optional("caption", Type.STRING),
          Column.optional("width", Type.INT32),
          Column.required("index", Type.INT64),
          Column.optional("score", Type.FLOAT),
          Column.optional("ratio", Type.DOUBLE),
          Column.optional("ok", Type.BOOLEAN),
          Column.required("flag", Type.BOOLEAN));

  private Path write(String name, List<Column> cols, List<List<Object>> rows) throws IOException {
    Path f = dir.resolve(name);
    try (ParquetWriter w = ParquetWriter.create(f, cols)) {
      for (List<Object> r : rows) w.writeRow(r.toArray());
      w.finish();
    }
    return f;
  }

  private static void assertTable(List<Column> cols, List<List<Object>> rows, ParquetReference.Table t) {
    assertEquals(cols.stream().map(Column::name).toList(), t.columnNames());
    assertEquals(rows.size(), t.declaredRows());
    assertEquals(rows.size(), t.rows().size());
    for (int r = 0; r < rows.size(); r++) {
      List<Object> want = rows.get(r);
      List<Object> got = t.rows().get(r);
      for (int c = 0; c < cols.size(); c++) {
        Object w = want.get(c);
        if (w instanceof Integer i && cols.get(c).type() == Type.INT64) w = i.longValue();
        assertEquals(w, got.get(c), "row " + r + " column " + cols.get(c).name());
      }
    }
  }

  private static List<List<Object>> randomRows(int n, long seed) {
    SplittableRandom rnd = new SplittableRandom(seed);
    String[] words = {"", "a", "chat noir", "猫", "Ünïcödé ☃", "emoji 🐈‍⬛", "tab\tnew\nline", "\"quoted\", comma"};
    List<List<Object>> rows = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      rows.add(
          Arrays.asList(
              String.format("%09d", i),
              rnd.nextInt(5) == 0 ? null : words[rnd.nextInt(words.length)] + i,
              rnd.nextInt(3) == 0 ? null : rnd.nextInt(),
              rnd.nextLong(),
              rnd.nextInt(4) == 0 ? null : (float) rnd.nextDouble(-1e6, 1e6),
              rnd.nextInt(4) == 0 ? null : rnd.nextDouble(),
              rnd.nextInt(2) == 0 ? null : rnd.nextBoolean(),
              rnd.nextBoolean()));
    }
    return rows;
  }

  @Test
  void allTypesWithNullsAndUnicodeReadBack() throws IOException {
    List<List<Object>> rows = randomRows(1000, 1);
    assertTable(ALL_TYPES, rows, ParquetReference.read(write("t.parquet", ALL_TYPES, rows)));
  }

  @Test
  void hundredThousandRowsOverManyPages() throws IOException {
    List<List<Object>> rows = randomRows(100_000, 2);
    Path f = write("big.parquet", ALL_TYPES, rows);
    assertTable(ALL_TYPES, rows, ParquetReference.read(f));
  }

  @Test
  void zeroRows() throws IOException {
    Path f = write("empty.parquet", ALL_TYPES, List.of());
    ParquetReference.Table t = ParquetReference.read(f);
    assertEquals(0, t.declaredRows());
    assertTrue(t.rows().isEmpty());
    assertEquals(ALL_TYPES.stream().map(Column::name).toList(), t.columnNames());
  }

  @Test
  void levelRunPatternsAroundTheHybridBoundaries() throws IOException {
    // Null patterns that exercise RLE runs, bit-packed groups, and the switches between them.
    List<Column> cols = List.of(Column.optional("v", Type.INT32));
    int[][] patterns = {{1}, {2}, {1, 3}, {7, 1}, {8, 8}, {9, 1, 1, 16}, {3, 5, 8, 1}, {15, 1, 7, 9, 2}};
    for (int[] p : patterns) {
      for (int total : new int[] {1, 7, 8, 9, 63, 64, 65, 300}) {
        List<List<Object>> rows = new ArrayList<>();
        boolean present = true;
        outer:
        while (rows.size() < total) {
          for (int len : p) {
            for (int k = 0; k < len; k++) {
              if (rows.size() == total) break outer;
              rows.add(Arrays.asList(present ? (Object) rows.size() : null));
            }
            present = !present;
          }
        }
        assertTable(cols, rows, ParquetReference.read(write("p.parquet", cols, rows)));
      }
    }
  }

  @Test
  void allNullsAndAllEmptyStrings() throws IOException {
    List<Column> cols = List.of(Column.optional("s", Type.STRING), Column.required("e", Type.STRING));
    List<List<Object>> rows = new ArrayList<>();
    for (int i = 0; i < 50; i++) rows.add(Arrays.asList(null, ""));
    assertTable(cols, rows, ParquetReference.read(write("n.parquet", cols, rows)));
  }

  @Test
  void hybridEncoderMatchesHandDecodedBytes() {
    ParquetWriter.ByteSink out = new ParquetWriter.ByteSink();
    byte[] v = new byte[20];
    Arrays.fill(v, 0, 10, (byte) 1); // RLE run of 10 ones, then 10 values bit-packed in 2 groups
    v[11] = 1;
    ParquetWriter.encodeHybridBitWidth1(v, 20, out);
    byte[] got = Arrays.copyOf(out.array(), out.size());
    assertArrayEquals(new byte[] {20, 1, 5, 0b10, 0}, got);
  }

  @Test
  void rejectsBadRowsWithoutCorruptingTheFile() throws IOException {
    Path f = dir.resolve("r.parquet");
    List<Column> cols = List.of(Column.required("a", Type.STRING), Column.optional("b", Type.INT32));
    try (ParquetWriter w = ParquetWriter.create(f, cols)) {
      w.writeRow("x", 1);
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> w.writeRow((Object) null, 2));
      assertTrue(e.getMessage().contains("'a'"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class, () -> w.writeRow("y", 1L << 40));
      assertTrue(e.getMessage().contains("'b'"), e.getMessage());
      assertThrows(IllegalArgumentException.class, () -> w.writeRow("y"));
      w.writeRow("z", null);
      w.finish();
    }
    assertTable(cols, List.of(Arrays.asList("x", 1), Arrays.asList("z", null)), ParquetReference.read(f));
    assertThrows(
        IllegalArgumentException.class,
        () -> ParquetWriter.create(dir.resolve("d.parquet"), List.of(Column.required("a", Type.INT32), Column.required("a", Type.INT64))));
  }

  @Test
  void nothingOnDiskUntilFinishAndNoTemporaryLeftover() throws IOException {
    Path f = dir.resolve("atomic.parquet");
    try (ParquetWriter w = ParquetWriter.create(f, List.of(Column.required("a", Type.INT64)))) {
      w.writeRow(1L);
      assertFalse(Files.exists(f));
    }
    assertFalse(Files.exists(f));
    try (ParquetWriter w = ParquetWriter.create(f, List.of(Column.required("a", Type.INT64)))) {
      w.writeRow(1L);
      w.finish();
    }
    try (Stream<Path> s = Files.list(dir)) {
      assertEquals(List.of(f), s.toList());
    }
  }

  @Test
  void deterministicBytes() throws IOException {
    List<List<Object>> rows = randomRows(500, 3);
    byte[] a = Files.readAllBytes(write("a.parquet", ALL_TYPES, rows));
    byte[] b = Files.readAllBytes(write("b.parquet", ALL_TYPES, rows));
    assertArrayEquals(a, b);
  }
}
