package dev.jclip.io;

import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.Statement;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * How fast ParquetReader turns a table of image paths into text rows, per codec and page version:
 * DuckDB writes a file of {@code rows} rows (path, caption, an id, a score), each is read
 * {@code rounds} times after a warm-up, and the median and spread of rows/s and of compressed MB/s
 * are printed. Not a unit test; run with
 * {@code java --enable-native-access=ALL-UNNAMED -cp target/classes:target/test-classes:$(cat cp.txt) dev.jclip.io.ParquetReadBenchmark [rows] [rounds]}
 * ({@code ./mvnw dependency:build-classpath -Dmdep.outputFile=cp.txt} writes cp.txt).
 */
public final class ParquetReadBenchmark {
  private ParquetReadBenchmark() {}

  public static void main(String[] args) throws Exception {
    int rows = args.length > 0 ? Integer.parseInt(args[0]) : 1_000_000;
    int rounds = args.length > 1 ? Integer.parseInt(args[1]) : 5;
    Path dir = Files.createTempDirectory("jclip-parquet-bench");
    try (Connection db = DriverManager.getConnection("jdbc:duckdb:");
        Statement s = db.createStatement()) {
      s.execute(
          "CREATE TABLE t AS SELECT 'shard-' || (i // 10000) || '/img_' || lpad(i::VARCHAR, 9, '0') || '.jpg' AS image_path,"
              + " 'a photo of item ' || i || ' on a ' || (['table', 'chair', 'beach', 'street'])[i % 4 + 1] AS caption,"
              + " i AS id, (i % 1000) / 1000.0 AS score FROM range(" + rows + ") r(i)");
      System.out.printf(Locale.ROOT, "%-22s %10s %14s %14s%n", "file", "MB", "rows/s", "MB/s");
      for (String version : List.of("V1", "V2")) {
        for (String codec : List.of("uncompressed", "snappy", "zstd", "gzip", "lz4_raw")) {
          Path f = dir.resolve(codec + "-" + version + ".parquet");
          s.execute("COPY t TO '" + f + "' (FORMAT PARQUET, COMPRESSION '" + codec + "', PARQUET_VERSION " + version + ")");
          double mb = Files.size(f) / 1e6;
          read(f); // warm-up
          double[] sec = new double[rounds];
          for (int r = 0; r < rounds; r++) {
            long t0 = System.nanoTime();
            long n = read(f);
            sec[r] = (System.nanoTime() - t0) / 1e9;
            if (n != rows) throw new AssertionError(f + ": " + n + " rows");
          }
          Arrays.sort(sec);
          double med = sec[rounds / 2];
          System.out.printf(
              Locale.ROOT, "%-22s %10.1f %9.2fM ±%2.0f%% %12.0f%n", f.getFileName(), mb, rows / med / 1e6, 100 * (sec[rounds - 1] - sec[0]) / med, mb / med);
          Files.delete(f);
        }
      }
    }
    Files.delete(dir);
  }

  /** Reads every row and renders each value as the embed job does; returns the row count. */
  private static long read(Path f) throws Exception {
    long n = 0;
    long chars = 0;
    try (ParquetReader r = ParquetReader.open(f)) {
      for (Object[] row; (row = r.nextRow()) != null; n++) {
        for (Object v : row) {
          String t = ParquetReader.text(v);
          chars += t == null ? 0 : t.length();
        }
      }
    }
    if (chars == 0) throw new AssertionError("no text read");
    return n;
  }
}
