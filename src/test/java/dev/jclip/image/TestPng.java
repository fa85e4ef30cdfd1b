package dev.jclip.image;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.zip.CRC32;
import java.util.zip.Deflater;

/** Builds PNG files byte by byte for the tests (any bit depth and colour type, optional PLTE). */
final class TestPng {
  private TestPng() {}

  static byte[] chunk(String type, byte[] data) {
    ByteBuffer b = ByteBuffer.allocate(12 + data.length);
    byte[] t = type.getBytes(StandardCharsets.US_ASCII);
    b.putInt(data.length).put(t).put(data);
    CRC32 crc = new CRC32();
    crc.update(t);
    crc.update(data);
    b.putInt((int) crc.getValue());
    return b.array();
  }

  static byte[] ihdr(long w, long h, int depth, int colorType) {
    return chunk(
        "IHDR",
        ByteBuffer.allocate(13).putInt((int) w).putInt((int) h).put((byte) depth).put((byte) colorType).put(new byte[3]).array());
  }

  static final byte[] SIGNATURE = {(byte) 0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};

  /** A PNG of already-packed scanlines (filter byte 0 is added here). */
  static byte[] png(int w, int h, int depth, int colorType, byte[][] rows, byte[] plte) {
    ByteArrayOutputStream raw = new ByteArrayOutputStream();
    for (byte[] row : rows) {
      raw.write(0);
      raw.writeBytes(row);
    }
    Deflater d = new Deflater();
    d.setInput(raw.toByteArray());
    d.finish();
    ByteArrayOutputStream z = new ByteArrayOutputStream();
    byte[] buf = new byte[8192];
    while (!d.finished()) z.write(buf, 0, d.deflate(buf));
    d.end();
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.writeBytes(SIGNATURE);
    out.writeBytes(ihdr(w, h, depth, colorType));
    if (plte != null) out.writeBytes(chunk("PLTE", plte));
    out.writeBytes(chunk("IDAT", z.toByteArray()));
    out.writeBytes(chunk("IEND", new byte[0]));
    return out.toByteArray();
  }

  /** Bytes per complete pixel for the filters (1 below 8 bits per pixel). */
  static int filterBpp(int depth, int colorType) {
    int channels = switch (colorType) {
      case 2 -> 3;
      case 4 -> 2;
      case 6 -> 4;
      default -> 1;
    };
    return Math.max(1, depth * channels / 8);
  }

  /** The Paeth predictor written as the PNG specification does (section 9.4), independent of PngDecoder's. */
  static int paeth(int a, int b, int c) {
    int p = a + b - c;
    int pa = Math.abs(p - a);
    int pb = Math.abs(p - b);
    int pc = Math.abs(p - c);
    if (pa <= pb && pa <= pc) return a;
    if (pb <= pc) return b;
    return c;
  }

  /** One row filtered with filter type {@code f} (0..4) against the unfiltered row above. */
  static byte[] filterRow(int f, byte[] row, byte[] prev, int bpp) {
    byte[] out = new byte[row.length];
    for (int i = 0; i < row.length; i++) {
      int x = row[i] & 0xff;
      int a = i >= bpp ? row[i - bpp] & 0xff : 0;
      int b = prev[i] & 0xff;
      int c = i >= bpp ? prev[i - bpp] & 0xff : 0;
      int pred = switch (f) {
        case 0 -> 0;
        case 1 -> a;
        case 2 -> b;
        case 3 -> (a + b) / 2;
        case 4 -> paeth(a, b, c);
        default -> throw new IllegalArgumentException("filter " + f);
      };
      out[i] = (byte) (x - pred);
    }
    return out;
  }

  static byte[] deflate(byte[] raw, int level) {
    Deflater d = new Deflater(level);
    d.setInput(raw);
    d.finish();
    ByteArrayOutputStream z = new ByteArrayOutputStream();
    byte[] buf = new byte[8192];
    while (!d.finished()) z.write(buf, 0, d.deflate(buf));
    d.end();
    return z.toByteArray();
  }

  /** The filtered scanlines of a PNG (filter byte, then the row), before compression. */
  static byte[] filteredData(byte[][] rows, int[] filters, int bpp) {
    ByteArrayOutputStream raw = new ByteArrayOutputStream();
    byte[] prev = new byte[rows.length == 0 ? 0 : rows[0].length];
    for (int y = 0; y < rows.length; y++) {
      raw.write(filters[y]);
      raw.writeBytes(filterRow(filters[y], rows[y], prev, bpp));
      prev = rows[y];
    }
    return raw.toByteArray();
  }

  /**
   * A PNG whose rows are filtered with the given filter types (ImageIO's writer chooses its own),
   * the zlib stream split into {@code idatChunks} IDAT chunks at random points (empty ones
   * included), with {@code before} chunks between IHDR (and PLTE) and the first IDAT and {@code
   * after} chunks between the last IDAT and IEND.
   */
  static byte[] filteredPng(
      int w, int h, int depth, int colorType, byte[][] rows, int[] filters, byte[] plte, List<byte[]> before, List<byte[]> after, int idatChunks, Random r) {
    byte[] z = deflate(filteredData(rows, filters, filterBpp(depth, colorType)), r.nextInt(10));
    int[] cuts = new int[idatChunks + 1];
    for (int i = 1; i < idatChunks; i++) cuts[i] = r.nextInt(z.length + 1);
    cuts[idatChunks] = z.length;
    Arrays.sort(cuts);
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.writeBytes(SIGNATURE);
    out.writeBytes(ihdr(w, h, depth, colorType));
    if (plte != null) out.writeBytes(chunk("PLTE", plte));
    for (byte[] c : before) out.writeBytes(c);
    for (int i = 0; i < idatChunks; i++) out.writeBytes(chunk("IDAT", Arrays.copyOfRange(z, cuts[i], cuts[i + 1])));
    for (byte[] c : after) out.writeBytes(c);
    out.writeBytes(chunk("IEND", new byte[0]));
    return out.toByteArray();
  }
}
