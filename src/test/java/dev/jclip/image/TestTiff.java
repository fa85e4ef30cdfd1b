package dev.jclip.image;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.zip.Deflater;

/**
 * Builds baseline TIFF files byte by byte for the tests: any photometric interpretation, bit
 * depth, extra samples, planar configuration, fill order, byte order, strips or tiles, and the
 * compressions that are a few lines to write (none, PackBits, Deflate), with or without the
 * horizontal predictor. The samples are given as the file stores them (before any compression,
 * prediction or bit reversal), so a test knows what a reader must give back.
 */
final class TestTiff {
  static final int NONE = 1, PACKBITS = 32773, DEFLATE = 8, ADOBE_DEFLATE = 32946;

  final int width, height;
  final int photometric;
  final int[] bits;
  int[] extraSamples = {};
  int sampleFormat = 1;
  int planar = 1;
  int fillOrder = 1;
  int compression = NONE;
  int predictor = 1;
  ByteOrder order = ByteOrder.LITTLE_ENDIAN;
  /** Strips of this many rows (0: one strip), unless tiles are set. */
  int rowsPerStrip = 0;
  int tileWidth = 0, tileHeight = 0;
  /** 16-bit ColorMap values, 3 × 2^bits (palette images). */
  int[] colorMap;
  /** Further pages after the first (each a complete TestTiff), chained by next-IFD offsets. */
  final List<TestTiff> pages = new ArrayList<>();
  /** Further tags written into the IFD (tag → SHORT or LONG values). */
  final Map<Integer, long[]> extraTags = new TreeMap<>();

  /** Per plane (one for chunky data), the packed rows: plane[y] holds width × samples bits, padded to a byte. */
  byte[][][] planes;

  TestTiff(int width, int height, int photometric, int... bits) {
    this.width = width;
    this.height = height;
    this.photometric = photometric;
    this.bits = bits;
  }

  int samples() {
    return bits.length;
  }

  /** Bytes of one packed row of one plane covering {@code w} pixels. */
  int rowBytes(int w) {
    int perPixel = planar == 2 ? bits[0] : Arrays.stream(bits).sum();
    return (w * perPixel + 7) / 8;
  }

  /** The samples from a chunky 8-bit (or packed low-depth, one sample) buffer, rows of {@link #rowBytes}. */
  TestTiff pixels(byte[] packed) {
    int rb = rowBytes(width);
    if (planar == 2 && samples() > 1) {
      int s = samples();
      planes = new byte[s][height][width];
      for (int y = 0; y < height; y++) {
        for (int x = 0; x < width; x++) {
          for (int k = 0; k < s; k++) planes[k][y][x] = packed[(y * width + x) * s + k];
        }
      }
    } else {
      planes = new byte[1][height][];
      for (int y = 0; y < height; y++) planes[0][y] = Arrays.copyOfRange(packed, y * rb, (y + 1) * rb);
    }
    return this;
  }

  byte[] build() {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.write(order == ByteOrder.LITTLE_ENDIAN ? 'I' : 'M');
    out.write(order == ByteOrder.LITTLE_ENDIAN ? 'I' : 'M');
    out.writeBytes(u16(42));
    List<long[]> patches = new ArrayList<>(); // [position of a next-IFD pointer]
    out.writeBytes(u32(0));
    patches.add(new long[] {4});
    byte[] file = out.toByteArray();
    for (TestTiff page : concat()) {
      file = page.append(file, patches);
    }
    return file;
  }

  private List<TestTiff> concat() {
    List<TestTiff> all = new ArrayList<>();
    all.add(this);
    all.addAll(pages);
    return all;
  }

  /** Appends this page's data and IFD to {@code file}, pointing the last pending next-IFD pointer at it. */
  private byte[] append(byte[] file, List<long[]> patches) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.writeBytes(file);
    boolean tiled = tileWidth > 0;
    int segW = tiled ? tileWidth : width;
    int segH = tiled ? tileHeight : (rowsPerStrip > 0 ? rowsPerStrip : height);
    int across = tiled ? (width + tileWidth - 1) / tileWidth : 1;
    int down = (height + segH - 1) / segH;
    List<Long> offsets = new ArrayList<>();
    List<Long> counts = new ArrayList<>();
    for (byte[][] plane : planes) {
      for (int ty = 0; ty < down; ty++) {
        for (int tx = 0; tx < across; tx++) {
          // A strip's last segment may be short; a tile is always whole (padded with zeros).
          int rows = tiled ? segH : Math.min(segH, height - ty * segH);
          int rb = rowBytes(segW);
          byte[] seg = new byte[rows * rb];
          for (int r = 0; r < rows; r++) {
            int y = ty * segH + r;
            if (y >= height) break;
            copyBits(plane[y], tx * segW, seg, r * rb, Math.min(segW, width - tx * segW));
          }
          if (predictor == 2) predict(seg, rows, rb);
          byte[] data = compress(seg);
          // FillOrder 2 reverses the bits of every byte as stored, compressed or not (libtiff
          // reverses a segment before decompressing it).
          if (fillOrder == 2) for (int i = 0; i < data.length; i++) data[i] = (byte) (Integer.reverse(data[i] & 0xff) >>> 24);
          if (out.size() % 2 == 1) out.write(0);
          offsets.add((long) out.size());
          counts.add((long) data.length);
          out.writeBytes(data);
        }
      }
    }
    Map<Integer, long[]> tags = new TreeMap<>(extraTags);
    tags.put(256, new long[] {width});
    tags.put(257, new long[] {height});
    tags.put(258, Arrays.stream(bits).asLongStream().toArray());
    tags.put(259, new long[] {compression});
    tags.put(262, new long[] {photometric});
    if (fillOrder != 1) tags.put(266, new long[] {fillOrder});
    tags.put(277, new long[] {samples()});
    if (planar != 1) tags.put(284, new long[] {planar});
    if (predictor != 1) tags.put(317, new long[] {predictor});
    if (colorMap != null) tags.put(320, Arrays.stream(colorMap).asLongStream().toArray());
    if (extraSamples.length > 0) tags.put(338, Arrays.stream(extraSamples).asLongStream().toArray());
    if (sampleFormat != 1) {
      long[] f = new long[samples()];
      Arrays.fill(f, sampleFormat);
      tags.put(339, f);
    }
    long[] off = offsets.stream().mapToLong(Long::longValue).toArray();
    long[] cnt = counts.stream().mapToLong(Long::longValue).toArray();
    if (tiled) {
      tags.put(322, new long[] {tileWidth});
      tags.put(323, new long[] {tileHeight});
      tags.put(324, off);
      tags.put(325, cnt);
    } else {
      tags.put(273, off);
      tags.put(278, new long[] {segH});
      tags.put(279, cnt);
    }
    // Values longer than 4 bytes go before the IFD.
    Map<Integer, Long> valueAt = new TreeMap<>();
    for (var e : tags.entrySet()) {
      byte[] v = values(e.getKey(), e.getValue());
      if (v.length > 4) {
        if (out.size() % 2 == 1) out.write(0);
        valueAt.put(e.getKey(), (long) out.size());
        out.writeBytes(v);
      }
    }
    if (out.size() % 2 == 1) out.write(0);
    long ifd = out.size();
    out.writeBytes(u16(tags.size()));
    for (var e : tags.entrySet()) {
      int tag = e.getKey();
      out.writeBytes(u16(tag));
      out.writeBytes(u16(isLong(tag) ? 4 : 3));
      out.writeBytes(u32(e.getValue().length));
      byte[] v = values(tag, e.getValue());
      if (v.length > 4) out.writeBytes(u32(valueAt.get(tag)));
      else out.writeBytes(Arrays.copyOf(v, 4));
    }
    long next = out.size();
    out.writeBytes(u32(0));
    byte[] b = out.toByteArray();
    long at = patches.removeLast()[0];
    ByteBuffer.wrap(b).order(order).putInt((int) at, (int) ifd);
    patches.add(new long[] {next});
    return b;
  }

  private static boolean isLong(int tag) {
    return tag == 256 || tag == 257 || tag == 273 || tag == 278 || tag == 279 || tag == 322 || tag == 323 || tag == 324 || tag == 325;
  }

  private byte[] values(int tag, long[] v) {
    ByteBuffer b = ByteBuffer.allocate(v.length * (isLong(tag) ? 4 : 2)).order(order);
    for (long x : v) {
      if (isLong(tag)) b.putInt((int) x);
      else b.putShort((short) x);
    }
    return b.array();
  }

  private void copyBits(byte[] row, int x0, byte[] dst, int dstOff, int w) {
    int bpp = planar == 2 ? bits[0] : Arrays.stream(bits).sum();
    if (bpp % 8 == 0) {
      System.arraycopy(row, x0 * bpp / 8, dst, dstOff, w * bpp / 8);
      return;
    }
    for (long i = 0; i < (long) w * bpp; i++) {
      long src = (long) x0 * bpp + i;
      int bit = (row[(int) (src >> 3)] >> (7 - (src & 7))) & 1;
      if (bit != 0) dst[dstOff + (int) (i >> 3)] |= (byte) (0x80 >> (i & 7));
    }
  }

  /** Horizontal differencing of 8-bit samples, per row, per sample of a pixel. */
  private void predict(byte[] seg, int rows, int rb) {
    int stride = planar == 2 ? 1 : samples();
    for (int r = 0; r < rows; r++) {
      for (int i = rb - 1; i >= stride; i--) seg[r * rb + i] -= seg[r * rb + i - stride];
    }
  }

  private byte[] compress(byte[] seg) {
    return switch (compression) {
      case NONE -> seg;
      case PACKBITS -> packBits(seg);
      case DEFLATE, ADOBE_DEFLATE -> {
        Deflater d = new Deflater();
        d.setInput(seg);
        d.finish();
        ByteArrayOutputStream z = new ByteArrayOutputStream();
        byte[] buf = new byte[8192];
        while (!d.finished()) z.write(buf, 0, d.deflate(buf));
        d.end();
        yield z.toByteArray();
      }
      default -> throw new IllegalArgumentException("compression " + compression);
    };
  }

  /** PackBits (TIFF 6.0 section 9): runs of 2..128 equal bytes, literals of 1..128 bytes. */
  static byte[] packBits(byte[] in) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    int i = 0;
    while (i < in.length) {
      int run = 1;
      while (i + run < in.length && run < 128 && in[i + run] == in[i]) run++;
      if (run >= 2) {
        out.write(1 - run);
        out.write(in[i]);
        i += run;
        continue;
      }
      int start = i;
      while (i < in.length && i - start < 128 && !(i + 1 < in.length && in[i + 1] == in[i])) i++;
      if (i == start) i++;
      out.write(i - start - 1);
      out.write(in, start, i - start);
    }
    return out.toByteArray();
  }

  private byte[] u16(int v) {
    return ByteBuffer.allocate(2).order(order).putShort((short) v).array();
  }

  private byte[] u32(long v) {
    return ByteBuffer.allocate(4).order(order).putInt((int) v).array();
  }
}
