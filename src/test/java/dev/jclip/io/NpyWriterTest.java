package dev.jclip.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NpyWriterTest {
  @TempDir Path tmp;

  /** What a .npy reader does: check magic and version, parse the dict, return the data offset. */
  private record Parsed(String descr, boolean fortran, long[] shape, int dataOffset, String headerText) {}

  private static Parsed parse(byte[] f) {
    assertEquals((byte) 0x93, f[0]);
    assertEquals("NUMPY", new String(f, 1, 5, StandardCharsets.US_ASCII));
    assertEquals(1, f[6], "major version");
    assertEquals(0, f[7], "minor version");
    int hlen = ByteBuffer.wrap(f, 8, 2).order(ByteOrder.LITTLE_ENDIAN).getShort() & 0xffff;
    int dataOffset = 10 + hlen;
    assertEquals(0, dataOffset % 64, "numpy aligns the data to 64 bytes");
    String h = new String(f, 10, hlen, StandardCharsets.US_ASCII);
    assertTrue(h.endsWith("\n"));
    Matcher m =
        Pattern.compile("\\{'descr': '(<f[248])', 'fortran_order': (False|True), 'shape': \\(([0-9, ]*)\\), \\} *\n")
            .matcher(h);
    assertTrue(m.matches(), "header dict: " + h);
    String[] dims = m.group(3).split(",");
    long[] shape = Stream.of(dims).map(String::strip).filter(s -> !s.isEmpty()).mapToLong(Long::parseLong).toArray();
    return new Parsed(m.group(1), m.group(2).equals("True"), shape, dataOffset, h);
  }

  @Test
  void float32HeaderIsWhatNumpyWrites() throws IOException {
    Path f = tmp.resolve("e.npy");
    float[] v = new float[5 * 3];
    for (int i = 0; i < v.length; i++) v[i] = i * 0.25f - 1;
    NpyWriter.write(f, DType.F32, new long[] {5, 3}, v);
    byte[] b = Files.readAllBytes(f);
    Parsed p = parse(b);
    // numpy.save(np.zeros((5, 3), np.float32)): the dict, 20 spare spaces for axis-0 growth, pad.
    String expected = "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 3), }";
    assertEquals(expected + " ".repeat(118 - expected.length() - 1) + "\n", p.headerText());
    assertEquals(128, p.dataOffset());
    assertEquals("<f4", p.descr());
    assertFalse(p.fortran());
    assertArrayEquals(new long[] {5, 3}, p.shape());
    assertEquals(128 + 4 * v.length, b.length);
    ByteBuffer data = ByteBuffer.wrap(b, 128, 4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
    for (float x : v) assertEquals(x, data.getFloat());
  }

  @Test
  void float16StreamsRowsAndFixesTheCount() throws IOException {
    Path f = tmp.resolve("h.npy");
    Random r = new Random(3);
    float[] all = new float[1000 * 7];
    try (NpyWriter w = NpyWriter.create(f, DType.F16, 7)) {
      float[] row = new float[7];
      for (int i = 0; i < 1000; i++) {
        for (int j = 0; j < 7; j++) all[i * 7 + j] = row[j] = (float) r.nextGaussian() * 100;
        w.writeRow(row);
      }
      assertEquals(1000, w.rows());
      assertFalse(Files.exists(f), "the target appears only on finish()");
      w.finish();
    }
    byte[] b = Files.readAllBytes(f);
    Parsed p = parse(b);
    assertEquals("<f2", p.descr());
    assertArrayEquals(new long[] {1000, 7}, p.shape());
    assertEquals(p.dataOffset() + 2 * all.length, b.length);
    ByteBuffer data = ByteBuffer.wrap(b, p.dataOffset(), 2 * all.length).order(ByteOrder.LITTLE_ENDIAN);
    for (float x : all) {
      float got = Float.float16ToFloat(data.getShort());
      assertEquals(Float.float16ToFloat(Float.floatToFloat16(x)), got);
      assertTrue(Math.abs(got - x) <= Math.abs(x) / 1024 + 1e-4f);
    }
  }

  @Test
  void headerLengthDoesNotDependOnTheRowCount() {
    int len = NpyWriter.header(DType.F32, new long[] {0, 512}).length;
    for (long n : new long[] {1, 999, 123456789, Long.MAX_VALUE}) {
      assertEquals(len, NpyWriter.header(DType.F32, new long[] {n, 512}).length);
    }
    byte[] oneD = NpyWriter.header(DType.F64, new long[] {7});
    assertTrue(new String(oneD, StandardCharsets.US_ASCII).contains("'shape': (7,), }"));
    assertEquals(0, oneD.length % 64);
  }

  /** A full disk names the file (here /dev/full, written in place at the commit). */
  @Test
  void aFullDiskNamesTheFile() throws IOException {
    org.junit.jupiter.api.Assumptions.assumeTrue(Files.exists(Path.of("/dev/full")), "no /dev/full here");
    try (NpyWriter w = NpyWriter.create(Path.of("/dev/full"), DType.F32, 4)) {
      w.writeRow(new float[4]);
      IOException e = assertThrows(IOException.class, w::finish);
      assertTrue(e.getMessage().contains("/dev/full") && e.getMessage().contains("disk is full"), e.getMessage());
    }
  }

  @Test
  void closeWithoutFinishLeavesNothing() throws IOException {
    Path f = tmp.resolve("partial.npy");
    try (NpyWriter w = NpyWriter.create(f, DType.F32, 2)) {
      w.writeRow(new float[] {1, 2});
    }
    try (Stream<Path> s = Files.list(tmp)) {
      assertEquals(0, s.count());
    }
  }

  @Test
  void rejectsWrongInput() throws IOException {
    assertThrows(IllegalArgumentException.class, () -> NpyWriter.create(tmp.resolve("i.npy"), DType.I32, 2));
    assertThrows(
        IllegalArgumentException.class, () -> NpyWriter.write(tmp.resolve("s.npy"), DType.F32, new long[] {2, 2}, new float[3]));
    try (NpyWriter w = NpyWriter.create(tmp.resolve("r.npy"), DType.F32, 3)) {
      assertThrows(IllegalArgumentException.class, () -> w.writeRow(new float[2]));
    }
    assertThrows(IOException.class, () -> NpyWriter.create(tmp.resolve("no/such/dir/x.npy"), DType.F32, 3));
  }
}
