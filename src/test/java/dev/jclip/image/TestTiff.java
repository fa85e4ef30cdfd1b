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
 * depth (1 to 8 packed, 16 or 32 as whole bytes), extra samples, planar configuration, fill order,
 * byte order, strips or tiles, and the compressions that are a few lines to write (none, PackBits,
 * Deflate, LZW), with or without the horizontal predictor (on 8, 16 or 32-bit samples); classic
 * TIFF with any 4-byte signature, or little-endian BigTIFF. The samples are given as the file
 * stores them (before any compression, prediction or bit reversal; 16 and 32-bit ones in the
 * file's byte order), so a test knows what a reader must give back.
 */
final class TestTiff {
  static final int NONE = 1, LZW = 5, PACKBITS = 32773, DEFLATE = 8, ADOBE_DEFLATE = 32946;

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
  /** The first 4 bytes instead of the standard "II*\0" / "MM\0*" (classic TIFF only). */
  byte[] signature;
  /** BigTIFF ("II+\0", 8-byte offsets and counts, 20-byte IFD entries); little-endian only. */
  boolean bigTiff;
  /**
   * The ImageWidth and ImageLength the file declares, when not {@link #width} and {@link #height}
   * (a hostile header; -1: the real ones); in BigTIFF one beyond 32 bits is written as a LONG8.
   */
  long declaredWidth = -1, declaredHeight = -1;
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

  /**
   * The samples from a chunky buffer (8, 16 or 32-bit samples as whole bytes, or packed low-depth
   * ones for one sample), rows of {@link #rowBytes}.
   */
  TestTiff pixels(byte[] packed) {
    int rb = rowBytes(width);
    if (planar == 2 && samples() > 1) {
      int s = samples();
      int bytes = bits[0] / 8;
      planes = new byte[s][height][width * bytes];
      for (int y = 0; y < height; y++) {
        for (int x = 0; x < width; x++) {
          for (int k = 0; k < s; k++) {
            System.arraycopy(packed, ((y * width + x) * s + k) * bytes, planes[k][y], x * bytes, bytes);
          }
        }
      }
    } else {
      planes = new byte[1][height][];
      for (int y = 0; y < height; y++) planes[0][y] = Arrays.copyOfRange(packed, y * rb, (y + 1) * rb);
    }
    return this;
  }

  byte[] build() {
    if (bigTiff && order != ByteOrder.LITTLE_ENDIAN) throw new IllegalStateException("BigTIFF is written little-endian only");
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.write(order == ByteOrder.LITTLE_ENDIAN ? 'I' : 'M');
    out.write(order == ByteOrder.LITTLE_ENDIAN ? 'I' : 'M');
    out.writeBytes(u16(bigTiff ? 43 : 42));
    List<long[]> patches = new ArrayList<>(); // [position of a next-IFD pointer]
    if (bigTiff) {
      out.writeBytes(u16(8));
      out.writeBytes(u16(0));
      out.writeBytes(u64(0));
      patches.add(new long[] {8});
    } else {
      out.writeBytes(u32(0));
      patches.add(new long[] {4});
    }
    byte[] file = out.toByteArray();
    for (TestTiff page : concat()) {
      page.bigTiff = bigTiff;
      file = page.append(file, patches);
    }
    if (signature != null) System.arraycopy(signature, 0, file, 0, 4);
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
          if (predictor == 2) predict(seg, rows, rb, segW);
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
    tags.put(256, new long[] {declaredWidth >= 0 ? declaredWidth : width});
    tags.put(257, new long[] {declaredHeight >= 0 ? declaredHeight : height});
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
      if (v.length > (bigTiff ? 8 : 4)) {
        if (out.size() % 2 == 1) out.write(0);
        valueAt.put(e.getKey(), (long) out.size());
        out.writeBytes(v);
      }
    }
    if (out.size() % 2 == 1) out.write(0);
    long ifd = out.size();
    int inline = bigTiff ? 8 : 4;
    out.writeBytes(bigTiff ? u64(tags.size()) : u16(tags.size()));
    for (var e : tags.entrySet()) {
      int tag = e.getKey();
      out.writeBytes(u16(tag));
      out.writeBytes(u16(type(tag)));
      out.writeBytes(bigTiff ? u64(e.getValue().length) : u32(e.getValue().length));
      byte[] v = values(tag, e.getValue());
      if (v.length > inline) out.writeBytes(bigTiff ? u64(valueAt.get(tag)) : u32(valueAt.get(tag)));
      else out.writeBytes(Arrays.copyOf(v, inline));
    }
    long next = out.size();
    out.writeBytes(bigTiff ? u64(0) : u32(0));
    byte[] b = out.toByteArray();
    long at = patches.removeLast()[0];
    if (bigTiff) ByteBuffer.wrap(b).order(order).putLong((int) at, ifd);
    else ByteBuffer.wrap(b).order(order).putInt((int) at, (int) ifd);
    patches.add(new long[] {next});
    return b;
  }

  private static boolean isLong(int tag) {
    return tag == 256 || tag == 257 || tag == 273 || tag == 278 || tag == 279 || tag == 322 || tag == 323 || tag == 324 || tag == 325;
  }

  /** SHORT, LONG, or in BigTIFF LONG8 for the strip and tile offsets and byte counts. */
  private int type(int tag) {
    if (bigTiff && (tag == 273 || tag == 279 || tag == 324 || tag == 325)) return 16;
    if (bigTiff && (tag == 256 && declaredWidth > 0xFFFFFFFFL || tag == 257 && declaredHeight > 0xFFFFFFFFL)) return 16;
    return isLong(tag) ? 4 : 3;
  }

  private byte[] values(int tag, long[] v) {
    int t = type(tag);
    ByteBuffer b = ByteBuffer.allocate(v.length * (t == 16 ? 8 : t == 4 ? 4 : 2)).order(order);
    for (long x : v) {
      if (t == 16) b.putLong(x);
      else if (t == 4) b.putInt((int) x);
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

  /**
   * Horizontal differencing, per row, per sample of a pixel: of bytes for 8-bit samples, of 16 or
   * 32-bit words in the file's byte order for wider ones (libtiff's horDiff8/16/32); below 8 bits
   * (which libtiff refuses) of bytes too.
   */
  private void predict(byte[] seg, int rows, int rb, int segW) {
    int stride = planar == 2 ? 1 : samples();
    int bytes = bits[0] / 8;
    ByteBuffer b = ByteBuffer.wrap(seg).order(order);
    // Below 8 bits (which libtiff refuses), bytes differenced as if they were samples.
    int n = bytes == 0 ? rb : segW * stride; // samples in a row
    if (bytes == 0) bytes = 1;
    for (int r = 0; r < rows; r++) {
      int row = r * rb;
      for (int i = n - 1; i >= stride; i--) {
        int p = row + i * bytes, q = row + (i - stride) * bytes;
        switch (bytes) {
          case 1 -> seg[p] -= seg[q];
          case 2 -> b.putShort(p, (short) (b.getShort(p) - b.getShort(q)));
          case 4 -> b.putInt(p, b.getInt(p) - b.getInt(q));
          default -> throw new IllegalArgumentException("predictor on " + bits[0] + "-bit samples");
        }
      }
    }
  }

  private byte[] compress(byte[] seg) {
    return switch (compression) {
      case NONE -> seg;
      case PACKBITS -> packBits(seg);
      case LZW -> lzw(seg);
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

  /**
   * TIFF's LZW (TIFF 6.0 section 13) as libtiff writes it: MSB-first codes of 9 to 12 bits, Clear
   * (256) first and when the next free code reaches 4094, EndOfInformation (257) last, the code
   * width growing when the next free code reaches 512, 1024, 2048.
   */
  static byte[] lzw(byte[] in) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    long[] acc = {0, 0}; // bit buffer, bits in it
    java.util.function.IntBinaryOperator emit = (code, width) -> {
      acc[0] = acc[0] << width | code;
      acc[1] += width;
      while (acc[1] >= 8) {
        out.write((int) (acc[0] >>> (acc[1] - 8)) & 0xff);
        acc[1] -= 8;
      }
      acc[0] &= (1L << acc[1]) - 1;
      return 0;
    };
    Map<Long, Integer> table = new java.util.HashMap<>(); // (prefix code << 8 | byte) -> code
    int width = 9, next = 258;
    emit.applyAsInt(256, width);
    int prefix = -1;
    for (byte x : in) {
      int c = x & 0xff;
      if (prefix < 0) {
        prefix = c;
        continue;
      }
      Integer code = table.get((long) prefix << 8 | c);
      if (code != null) {
        prefix = code;
        continue;
      }
      emit.applyAsInt(prefix, width);
      table.put((long) prefix << 8 | c, next++);
      if (next == 4094) {
        emit.applyAsInt(256, width);
        table.clear();
        width = 9;
        next = 258;
      } else if (next == 1 << width) {
        width++;
      }
      prefix = c;
    }
    if (prefix >= 0) {
      emit.applyAsInt(prefix, width);
      if (++next == 4094) {
        emit.applyAsInt(256, width);
        width = 9;
      } else if (next == 1 << width) {
        width++;
      }
    }
    emit.applyAsInt(257, width);
    if (acc[1] > 0) out.write((int) (acc[0] << (8 - acc[1])) & 0xff);
    return out.toByteArray();
  }

  private byte[] u64(long v) {
    return ByteBuffer.allocate(8).order(order).putLong(v).array();
  }

  private byte[] u16(int v) {
    return ByteBuffer.allocate(2).order(order).putShort((short) v).array();
  }

  private byte[] u32(long v) {
    return ByteBuffer.allocate(4).order(order).putInt((int) v).array();
  }
}
