package dev.jclip.image;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
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
}
