package dev.jclip.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.jclip.io.ParquetWriter.Column;
import dev.jclip.io.ParquetWriter.Type;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Reads a {@link ParquetWriter} file with pyarrow (Arrow's C++ reader), when a Python with pyarrow
 * is named by {@code JCLIP_PYARROW_PYTHON}; skipped otherwise (CI has no pyarrow).
 */
class ParquetPyarrowTest {
  @TempDir Path dir;

  @Test
  void pyarrowReadsWhatWeWrite() throws IOException, InterruptedException {
    String python = System.getenv("JCLIP_PYARROW_PYTHON");
    assumeTrue(python != null && !python.isBlank(), "JCLIP_PYARROW_PYTHON not set");
    Path f = dir.resolve("m.parquet");
    try (ParquetWriter w =
        ParquetWriter.create(
            f,
            java.util.List.of(
                Column.required("key", Type.STRING),
                Column.optional("caption", Type.STRING),
                Column.optional("width", Type.INT32),
                Column.required("n", Type.INT64),
                Column.optional("f", Type.FLOAT),
                Column.optional("d", Type.DOUBLE),
                Column.optional("b", Type.BOOLEAN)))) {
      for (int i = 0; i < 30_000; i++) {
        w.writeRow(
            "k" + i,
            i % 3 == 0 ? null : (i % 5 == 0 ? "" : "猫 🐈 " + i),
            i % 7 == 0 ? null : i,
            (long) i * 1_000_000_007L,
            i % 11 == 0 ? null : i * 0.5f,
            i % 13 == 0 ? null : i / 3.0,
            i % 17 == 0 ? null : i % 2 == 0);
      }
      w.finish();
    }
    // The script recomputes every expected value and prints a summary that must match exactly.
    String script =
        String.join(
            "\n",
            "import sys, pyarrow.parquet as pq",
            "t = pq.read_table(sys.argv[1]).to_pydict()",
            "bad = 0",
            "for i in range(30000):",
            "    want = ['k%d' % i, None if i % 3 == 0 else ('' if i % 5 == 0 else '猫 🐈 %d' % i),",
            "            None if i % 7 == 0 else i, i * 1000000007, None if i % 11 == 0 else i * 0.5,",
            "            None if i % 13 == 0 else i / 3.0, None if i % 17 == 0 else i % 2 == 0]",
            "    got = [t[c][i] for c in ['key', 'caption', 'width', 'n', 'f', 'd', 'b']]",
            "    if want != got: bad += 1",
            "print('rows', len(t['key']), 'mismatches', bad)");
    Path py = dir.resolve("check.py");
    Files.writeString(py, script);
    Process p = new ProcessBuilder(python, py.toString(), f.toString()).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
    assumeTrue(p.waitFor(60, TimeUnit.SECONDS));
    assertEquals(0, p.exitValue(), out);
    assertEquals("rows 30000 mismatches 0", out);
  }
}
