package dev.jclip.image;

import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * GIF files built byte by byte for tests: a header, optional colour tables, extensions, one image
 * descriptor and LZW data given as codes (packed with the code widths a GIF decoder uses), as
 * pixels (our own LZW encoder) or as raw bytes, split into sub-blocks as asked.
 */
final class TestGif {
  String version = "GIF89a";
  int screenWidth, screenHeight;
  /** RGB triplets (2, 4, ..., 256 entries), or null */
  byte[] global;
  /** Raw bytes between the global colour table and the image descriptor (extensions, junk). */
  final ByteArrayOutputStream before = new ByteArrayOutputStream();
  int left, top, width, height;
  boolean interlaced;
  byte[] local;
  int codeSize = 8;
  /** Everything after the code size byte: sub-blocks and whatever follows them. */
  byte[] data = new byte[] {0};
  byte[] tail = {';'};

  TestGif(int screenWidth, int screenHeight) {
    this.screenWidth = screenWidth;
    this.screenHeight = screenHeight;
    this.width = screenWidth;
    this.height = screenHeight;
  }

  TestGif frame(int left, int top, int width, int height) {
    this.left = left;
    this.top = top;
    this.width = width;
    this.height = height;
    return this;
  }

  /** A graphic control extension with a transparent index, or with the flag unset when {@code index} < 0. */
  TestGif transparent(int index) {
    before.writeBytes(new byte[] {0x21, (byte) 0xF9, 4, (byte) (index >= 0 ? 1 : 0), 0, 0, (byte) Math.max(index, 0), 0});
    return this;
  }

  /** The pixels LZW-coded (clear first, end code last) in 255-byte sub-blocks and a terminator. */
  TestGif pixels(int[] px) {
    data = blocks(pack(codeSize, lzw(codeSize, px)), 255, true);
    return this;
  }

  TestGif codes(int... codes) {
    data = blocks(pack(codeSize, codes), 255, true);
    return this;
  }

  byte[] build() {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.writeBytes(version.getBytes());
    out.writeBytes(le16(screenWidth));
    out.writeBytes(le16(screenHeight));
    out.write(global == null ? 0 : 0x80 | tableBits(global));
    out.write(0);
    out.write(0);
    if (global != null) out.writeBytes(global);
    out.writeBytes(before.toByteArray());
    out.write(0x2C);
    out.writeBytes(le16(left));
    out.writeBytes(le16(top));
    out.writeBytes(le16(width));
    out.writeBytes(le16(height));
    out.write((interlaced ? 0x40 : 0) | (local == null ? 0 : 0x80 | tableBits(local)));
    if (local != null) out.writeBytes(local);
    out.write(codeSize);
    out.writeBytes(data);
    out.writeBytes(tail);
    return out.toByteArray();
  }

  private static int tableBits(byte[] table) {
    for (int f = 0; f < 8; f++) if (3 * (2 << f) == table.length) return f;
    throw new IllegalArgumentException("a colour table of " + table.length + " bytes (3 x a power of 2 expected)");
  }

  private static byte[] le16(int v) {
    return new byte[] {(byte) v, (byte) (v >> 8)};
  }

  /**
   * Codes as bits, least significant first, each as wide as a GIF decoder reads it: {@code bits + 1}
   * after a clear code, one more once the table's next entry reaches the current mask (up to 12);
   * the first code after a clear adds no entry, an end code changes nothing.
   */
  static byte[] pack(int bits, int... codes) {
    int clear = 1 << bits;
    int width = bits + 1, next = clear + 2;
    boolean afterClear = true;
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    long acc = 0;
    int n = 0;
    for (int c : codes) {
      acc |= (long) c << n;
      n += width;
      while (n >= 8) {
        out.write((int) (acc & 0xff));
        acc >>>= 8;
        n -= 8;
      }
      if (c == clear) {
        width = bits + 1;
        next = clear + 2;
        afterClear = true;
      } else if (c == clear + 1) {
        // end code: no change
      } else if (afterClear) {
        afterClear = false;
      } else if (next < 4096) {
        if (next == (1 << width) - 1 && width < 12) width++;
        next++;
      }
    }
    if (n > 0) out.write((int) acc);
    return out.toByteArray();
  }

  /** LZW codes for the pixels (values below {@code 1 << bits}): a clear code first and when the table is full, an end code last. */
  static int[] lzw(int bits, int[] px) {
    return lzw(bits, px, true);
  }

  /** As {@link #lzw(int, int[])}; without {@code clearWhenFull} a full table is kept (a "deferred clear"). */
  static int[] lzw(int bits, int[] px, boolean clearWhenFull) {
    int clear = 1 << bits;
    List<Integer> codes = new ArrayList<>();
    codes.add(clear);
    Map<Long, Integer> table = new HashMap<>();
    int next = clear + 2;
    int w = -1;
    for (int p : px) {
      if (w < 0) {
        w = p;
        continue;
      }
      Integer wk = table.get(((long) w << 16) | p);
      if (wk != null) {
        w = wk;
        continue;
      }
      codes.add(w);
      if (next < 4096) {
        table.put(((long) w << 16) | p, next++);
      } else if (clearWhenFull) {
        codes.add(clear);
        table.clear();
        next = clear + 2;
      }
      w = p;
    }
    if (w >= 0) codes.add(w);
    codes.add(clear + 1);
    return codes.stream().mapToInt(Integer::intValue).toArray();
  }

  /** Data in sub-blocks of at most {@code size} bytes, with a terminator if asked. */
  static byte[] blocks(byte[] data, int size, boolean terminator) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    for (int i = 0; i < data.length; i += size) {
      int len = Math.min(size, data.length - i);
      out.write(len);
      out.write(data, i, len);
    }
    if (terminator) out.write(0);
    return out.toByteArray();
  }

  static byte[] concat(byte[]... parts) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    for (byte[] p : parts) out.writeBytes(p);
    return out.toByteArray();
  }

  /** The identity gray ramp of n entries. */
  static byte[] ramp(int n) {
    byte[] t = new byte[3 * n];
    for (int i = 0; i < t.length; i++) t[i] = (byte) (i / 3);
    return t;
  }
}
