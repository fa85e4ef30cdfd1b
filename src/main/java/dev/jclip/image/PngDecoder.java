package dev.jclip.image;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.zip.CRC32;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * Our own reader for the common PNGs: non-interlaced, every bit depth and colour type of the PNG
 * specification, decoded straight into the layout of Pillow 9.4's mode (docs/preprocessing.md,
 * "PNG modes"). It replaces the JDK's ImageIO reader, whose {@code BufferedImage} and raster
 * conversions cost about as much again as inflating and unfiltering; the pixels are the same by
 * construction (PNG is lossless: zlib's inflate, the five filters of the specification, the
 * mode's unpacking), which the tests check against ImageIO on every colour type, depth and filter.
 *
 * <p>What Pillow's {@code PngImagePlugin} decides, this decides the same way: the CRC of every
 * chunk before the first IDAT is checked ("broken PNG file (bad header checksum)"), chunk types
 * must be four word characters, IDAT CRCs are not checked, tRNS, gAMA, iCCP and the other
 * ancillary chunks do not change the pixels, decoding stops as soon as every row is complete (so a
 * file whose tail after the pixel data, zlib checksum, CRC or IEND, is cut decodes), data that ends
 * before the last row is an error, and so is a chunk after the image data cut inside its data
 * (Pillow reads those chunks, text included, and fails). Anything unusual (Adam7 interlacing, APNG chunks, a missing,
 * repeated or odd-sized palette, an IHDR of another length or with unknown methods) raises {@link
 * Unsupported}, and the caller decodes the file with ImageIO exactly as before this class existed.
 *
 * <p>Inflating: when the system's libdeflate is installed ({@link NativeDeflate}) and every IDAT
 * chunk is complete, the whole stream is decompressed at once, 3 to 6 times faster than zlib, and
 * used only if it decoded exactly (size and checksum). Otherwise, and for every damaged file, zlib
 * through {@code java.util.zip.Inflater} (as Pillow's), fed the IDAT chunks where they lie in the
 * file (no copy) and never asked for more output than the image holds, so a decompression bomb
 * inside the data cannot grow memory and corrupt data cannot loop; rows are inflated a batch at a
 * time into a small buffer that stays in cache and unfiltered from there into the decoded image.
 */
final class PngDecoder {
  /** The file is valid as far as we know but outside what this reader handles: use ImageIO. */
  static final class Unsupported extends Exception {
    Unsupported(String why) {
      super(why, null, false, false);
    }
  }

  private static final int IDAT = 0x49444154;
  private static final int IEND = 0x49454E44;
  private static final int PLTE = 0x504C5445;
  private static final int ACTL = 0x6163544C;
  private static final int FCTL = 0x6663544C;

  /** Inflated bytes per batch of rows: big enough to amortise the Inflater call, small enough for L2. */
  private static final int BATCH_BYTES = 1 << 16;

  private final Path file;
  private final byte[] b;
  /** libdeflate for complete streams, or null for the streaming Inflater only. */
  private final NativeDeflate deflate;

  private PngDecoder(Path file, byte[] b, NativeDeflate deflate) {
    this.file = file;
    this.b = b;
    this.deflate = deflate;
  }

  /**
   * Decodes a PNG whose signature, IHDR chunk type and pixel count the caller has already checked
   * ({@link ImageDecoder#checkPixels}).
   *
   * @param deflate libdeflate, tried first on complete streams, or null for {@code Inflater} only
   *
   * @throws ImageDecodeException the file is corrupt or truncated (as Pillow would refuse it)
   * @throws Unsupported the file should be decoded by ImageIO
   */
  static DecodedImage decode(Path file, byte[] b, NativeDeflate deflate) throws ImageDecodeException, Unsupported {
    return new PngDecoder(file, b, deflate).run();
  }

  private DecodedImage run() throws ImageDecodeException, Unsupported {
    if (b.length < 33 || be32(b, 8) != 13) throw new Unsupported("IHDR is not 13 bytes long");
    int w = be32(b, 16);
    int h = be32(b, 20);
    int depth = b[24] & 0xff;
    int colorType = b[25] & 0xff;
    // The chunks up to the first IDAT are checked as Pillow's PngImageFile._open reads them (CRC,
    // chunk type, complete data) before anything else, so a file Pillow refuses is refused here
    // even when ImageIO would decode it; only then are unusual files handed to ImageIO.
    checkCrc(8, 13, "IHDR");
    String unsupported = null;
    int pos = 33;
    int plteOff = -1;
    int plteLen = 0;
    int plteCount = 0;
    while (true) {
      if (pos > b.length - 8) throw truncated("the file ends before the image data (no IDAT chunk)");
      if (!isChunkType(pos + 4)) {
        throw corrupt("invalid chunk type " + typeName(pos + 4) + " at byte " + pos + " (Pillow: broken PNG file)");
      }
      int type = be32(b, pos + 4);
      if (type == IDAT) break;
      if (type == IEND) throw corrupt("IEND chunk before any image data");
      long len = be32(b, pos) & 0xffffffffL;
      if (len > b.length - pos - 12L) {
        throw truncated("the " + typeName(pos + 4) + " chunk at byte " + pos + " is cut off (" + len + " bytes of data announced)");
      }
      checkCrc(pos, (int) len, typeName(pos + 4));
      if (type == PLTE && colorType == 3) {
        plteOff = pos + 8;
        plteLen = (int) len;
        plteCount++;
      } else if (type == ACTL || type == FCTL) {
        unsupported = "animated PNG";
      }
      pos += 12 + (int) len;
    }

    if (w <= 0 || h <= 0) unsupported = "empty size";
    if (b[26] != 0 || b[27] != 0) unsupported = "unknown compression or filter method";
    if (b[28] != 0) unsupported = "interlaced";
    int channels =
        switch (colorType) {
          case 0, 3 -> 1;
          case 2 -> 3;
          case 4 -> 2;
          case 6 -> 4;
          default -> 0;
        };
    boolean depthOk =
        switch (colorType) {
          case 0 -> depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16;
          case 3 -> depth == 1 || depth == 2 || depth == 4 || depth == 8;
          case 2, 4, 6 -> depth == 8 || depth == 16;
          default -> false;
        };
    if (!depthOk) unsupported = "bit depth " + depth + " with colour type " + colorType;
    if (colorType == 3) {
      if (plteCount != 1) unsupported = plteCount + " PLTE chunks";
      else if (plteLen == 0 || plteLen % 3 != 0 || plteLen > 768) unsupported = "PLTE of " + plteLen + " bytes";
    }
    if (unsupported != null) throw new Unsupported(unsupported);

    int bitsPerPixel = depth * channels;
    long rowBytesL = ((long) w * bitsPerPixel + 7) >>> 3;
    if (rowBytesL > Integer.MAX_VALUE - 64) throw new Unsupported("rows of " + rowBytesL + " bytes");
    int rowBytes = (int) rowBytesL;
    // Filters work on whole pixels, or on bytes below 8 bits per pixel.
    int bpp = Math.max(1, bitsPerPixel >>> 3);

    // Deflate expands at most ~1032:1: image data that cannot hold the rows is refused as truncated
    // before an image-sized buffer exists (a 100-byte file declaring 13000x13000 pixels).
    long compressed = 0;
    for (long p = pos; p <= b.length - 8 && be32(b, (int) p + 4) == IDAT; ) {
      long len = be32(b, (int) p) & 0xffffffffL;
      compressed += Math.min(len, b.length - p - 8);
      p += 12 + len;
    }
    if (compressed * 1100 + 64 < (rowBytesL + 1) * h) {
      throw truncated("its " + compressed + " bytes of image data cannot hold " + h + " rows of " + rowBytesL + " bytes");
    }

    Inflater inflater = new Inflater();
    try {
      Idat idat = new Idat(inflater, pos);
      if (depth == 8) {
        // The decoded layout is the unfiltered row itself: unfilter in place into the image.
        byte[] out = new byte[Math.multiplyExact(rowBytes, h)];
        byte[] zeros = new byte[rowBytes];
        rows(idat, h, rowBytes, (y, stage, s, filter) -> {
          int d = y * rowBytes;
          if (y == 0) unfilter(filter, stage, s, out, d, zeros, 0, rowBytes, bpp);
          else unfilter(filter, stage, s, out, d, out, d - rowBytes, rowBytes, bpp);
        });
        return switch (colorType) {
          case 0 -> DecodedImage.of("PNG", DecodedImage.Mode.L, w, h, out);
          case 2 -> DecodedImage.of("PNG", DecodedImage.Mode.RGB, w, h, out);
          case 3 -> DecodedImage.palette("PNG", w, h, out, Arrays.copyOfRange(b, plteOff, plteOff + plteLen));
          case 4 -> DecodedImage.of("PNG", DecodedImage.Mode.LA, w, h, out);
          default -> DecodedImage.of("PNG", DecodedImage.Mode.RGBA, w, h, out);
        };
      }
      // Other depths: unfilter into a row buffer (the previous row is needed as stored), then
      // convert the row to Pillow's mode.
      byte[][] rowsBuf = {new byte[rowBytes], new byte[rowBytes]};
      if (depth == 16 && colorType == 0) {
        // Pillow's "I;16B": mode I, the full 16-bit value.
        int[] v = new int[Math.multiplyExact(w, h)];
        rows(idat, h, rowBytes, (y, stage, s, filter) -> {
          byte[] cur = rowsBuf[y & 1];
          unfilter(filter, stage, s, cur, 0, rowsBuf[(y + 1) & 1], 0, rowBytes, bpp);
          for (int x = 0, o = y * w; x < w; x++) v[o + x] = ((cur[2 * x] & 0xff) << 8) | (cur[2 * x + 1] & 0xff);
        });
        return DecodedImage.ofInts("PNG", w, h, v);
      }
      // 16-bit RGB / RGBA: high bytes ("RGB;16B", "RGBA;16B"); 16-bit gray+alpha: RGBA with the
      // gray replicated ("LA;16B"); 1-bit gray: mode "1" (0/255); 2/4-bit gray: L scaled by
      // 85/17; 1/2/4-bit palette: the indices.
      DecodedImage.Mode mode =
          depth == 16
              ? (colorType == 2 ? DecodedImage.Mode.RGB : DecodedImage.Mode.RGBA)
              : colorType == 3 ? DecodedImage.Mode.P : depth == 1 ? DecodedImage.Mode.BILEVEL : DecodedImage.Mode.L;
      int outChannels = mode.channels();
      byte[] out = new byte[Math.multiplyExact(Math.multiplyExact(w, h), outChannels)];
      rows(idat, h, rowBytes, (y, stage, s, filter) -> {
        byte[] cur = rowsBuf[y & 1];
        unfilter(filter, stage, s, cur, 0, rowsBuf[(y + 1) & 1], 0, rowBytes, bpp);
        int o = y * w * outChannels;
        if (depth == 16) {
          if (colorType == 4) {
            for (int x = 0; x < w; x++, o += 4) {
              byte g = cur[4 * x];
              out[o] = g;
              out[o + 1] = g;
              out[o + 2] = g;
              out[o + 3] = cur[4 * x + 2];
            }
          } else {
            for (int i = 0, n = w * outChannels; i < n; i++) out[o + i] = cur[2 * i];
          }
        } else {
          int scale = colorType == 3 ? 1 : depth == 1 ? 255 : depth == 2 ? 0x55 : 0x11;
          int log2PerByte = depth == 1 ? 3 : depth == 2 ? 2 : 1;
          int last = (1 << log2PerByte) - 1;
          int mask = (1 << depth) - 1;
          for (int x = 0; x < w; x++) {
            // Samples are packed from the most significant bit.
            int shift = depth * (last - (x & last));
            out[o + x] = (byte) (((cur[x >> log2PerByte] >> shift) & mask) * scale);
          }
        }
      });
      if (mode == DecodedImage.Mode.P) return DecodedImage.palette("PNG", w, h, out, Arrays.copyOfRange(b, plteOff, plteOff + plteLen));
      return DecodedImage.of("PNG", mode, w, h, out);
    } finally {
      inflater.end();
    }
  }

  /** Receives each row, still filtered: its filter type and its bytes at {@code stage[s..]}. */
  @FunctionalInterface
  private interface RowSink {
    void row(int y, byte[] stage, int s, int filter) throws ImageDecodeException;
  }

  /** Inflates the rows a batch at a time and hands each to {@code sink}. */
  private void rows(Idat idat, int h, int rowBytes, RowSink sink) throws ImageDecodeException {
    int raw = rowBytes + 1;
    byte[] all = idat.wholeStream((long) h * raw);
    if (all != null) {
      for (int y = 0; y < h; y++) {
        int filter = all[y * raw] & 0xff;
        if (filter > 4) throw corrupt("unknown filter type " + filter + " in row " + y);
        sink.row(y, all, y * raw + 1, filter);
      }
      idat.checkTail();
      return;
    }
    int batchRows = Math.max(1, Math.min(h, BATCH_BYTES / raw));
    byte[] stage = new byte[batchRows * raw];
    for (int y = 0; y < h; ) {
      int n = Math.min(batchRows, h - y);
      idat.inflate(stage, n * raw, y, raw, h);
      for (int r = 0; r < n; r++, y++) {
        int s = r * raw;
        int filter = stage[s] & 0xff;
        if (filter > 4) throw corrupt("unknown filter type " + filter + " in row " + y);
        sink.row(y, stage, s + 1, filter);
      }
    }
    idat.checkTail();
  }

  /** The IDAT chunks, fed to the inflater one after another where they lie in the file. */
  private final class Idat {
    private final Inflater inflater;
    /** Offset of the next chunk to look at (after the one being inflated). */
    private long next;

    /** The first IDAT chunk. */
    private final int first;

    Idat(Inflater inflater, int first) {
      this.inflater = inflater;
      this.first = first;
      feed(first);
    }

    /**
     * The whole filtered image through libdeflate, when it is installed, every IDAT chunk of the
     * run is complete and the stream decodes exactly (see {@link NativeDeflate}); null otherwise,
     * and the streaming path decides. On success the chunk walk resumes after the last IDAT, as
     * Pillow's {@code load_end} would after reading the same complete chunks.
     */
    byte[] wholeStream(long size) {
      if (deflate == null || size > Integer.MAX_VALUE - 16) return null;
      long pos = first;
      long total = 0;
      int chunks = 0;
      while (pos <= b.length - 8 && be32(b, (int) pos + 4) == IDAT) {
        long len = be32(b, (int) pos) & 0xffffffffL;
        if (len > b.length - pos - 8) return null; // cut by the end of the file
        total += len;
        chunks++;
        pos += 12 + len;
      }
      byte[] z;
      int off;
      if (chunks == 1) {
        z = b;
        off = first + 8;
      } else {
        z = new byte[(int) total];
        off = 0;
        int o = 0;
        for (int p = first; o < total; ) {
          int len = be32(b, p);
          System.arraycopy(b, p + 8, z, o, len);
          o += len;
          p += 12 + len;
        }
      }
      byte[] out = new byte[(int) size];
      if (!deflate.zlibDecompress(z, off, (int) total, out)) return null;
      next = pos;
      return out;
    }

    private void feed(int pos) {
      long len = be32(b, pos) & 0xffffffffL;
      int start = pos + 8;
      // A chunk cut by the end of the file gives what it has; if that completes the rows the
      // image decodes (as in Pillow), else the next feed finds nothing and reports truncation.
      inflater.setInput(b, start, (int) Math.min(len, b.length - start));
      next = pos + 12 + len;
    }

    /** Feeds the next IDAT chunk; false when the image data ends (end of file or another chunk). */
    private boolean feedNext() {
      if (next > b.length - 8 || be32(b, (int) next + 4) != IDAT) return false;
      feed((int) next);
      return true;
    }

    /**
     * What Pillow's {@code load_end} does once the rows are complete: it reads the chunks that
     * follow up to IEND and fails ("Truncated File Read") when one of them is cut inside its data;
     * a cut inside a chunk header or a CRC, or a header that is not a chunk type, ends the walk
     * quietly (so a file missing only its zlib checksum, CRC or IEND decodes).
     */
    void checkTail() throws ImageDecodeException {
      long pos = next;
      while (pos <= b.length - 8) {
        int p = (int) pos;
        if (!isChunkType(p + 4) || be32(b, p + 4) == IEND) return;
        long len = be32(b, p) & 0xffffffffL;
        if (len > b.length - p - 8L) {
          throw truncated("the " + typeName(p + 4) + " chunk at byte " + p + " after the image data is cut off (Pillow refuses the file too)");
        }
        pos = p + 12 + len;
      }
    }

    /** Fills {@code out[0..want)} with inflated bytes. */
    void inflate(byte[] out, int want, int y, int raw, int h) throws ImageDecodeException {
      int got = 0;
      while (got < want) {
        int n;
        try {
          n = inflater.inflate(out, got, want - got);
        } catch (DataFormatException e) {
          throw corrupt("broken zlib data in the image data near row " + (y + got / raw) + " (" + e.getMessage() + ")");
        }
        got += n;
        if (n > 0) continue;
        int done = y + got / raw;
        if (inflater.finished()) throw corrupt("the compressed image data ends after " + done + " of " + h + " rows");
        if (inflater.needsDictionary()) throw corrupt("the compressed image data asks for a preset dictionary");
        if (!inflater.needsInput()) throw corrupt("zlib makes no progress in the image data");
        if (!feedNext()) throw truncated("the image data ends after " + done + " of " + h + " rows");
      }
    }
  }

  // ---------------------------------------------------------------- filters (PNG spec, section 9)

  /**
   * Reverses one row's filter: {@code dst[d..d+n) = src[s..s+n) + predictor}, where the predictor
   * reads the already-decoded left neighbour in {@code dst} ({@code bpp} bytes back) and the row
   * above in {@code prev} (zeros for the first row). {@code dst} and {@code prev} may be the same
   * array (consecutive rows of the image).
   */
  static void unfilter(int filter, byte[] src, int s, byte[] dst, int d, byte[] prev, int p, int n, int bpp) {
    switch (filter) {
      case 0 -> System.arraycopy(src, s, dst, d, n);
      case 1 -> {
        if (bpp == 4) sub4(src, s, dst, d, n);
        else if (bpp == 3) sub3(src, s, dst, d, n);
        else if (bpp == 1) sub1(src, s, dst, d, n);
        else {
          int m = Math.min(bpp, n);
          System.arraycopy(src, s, dst, d, m);
          for (int i = m; i < n; i++) dst[d + i] = (byte) (src[s + i] + dst[d + i - bpp]);
        }
      }
      case 2 -> {
        // Eight bytes at a time: no left neighbour, so no dependency between them.
        int i = 0;
        for (; i + 8 <= n; i += 8) LONG.set(dst, d + i, addBytes((long) LONG.get(src, s + i), (long) LONG.get(prev, p + i)));
        for (; i < n; i++) dst[d + i] = (byte) (src[s + i] + prev[p + i]);
      }
      case 3 -> {
        if (bpp == 4) average4(src, s, dst, d, prev, p, n);
        else if (bpp == 3) average3(src, s, dst, d, prev, p, n);
        else {
          int m = Math.min(bpp, n);
          for (int i = 0; i < m; i++) dst[d + i] = (byte) (src[s + i] + ((prev[p + i] & 0xff) >>> 1));
          for (int i = m; i < n; i++) {
            dst[d + i] = (byte) (src[s + i] + (((dst[d + i - bpp] & 0xff) + (prev[p + i] & 0xff)) >>> 1));
          }
        }
      }
      case 4 -> {
        if (bpp == 4) paeth4(src, s, dst, d, prev, p, n);
        else if (bpp == 3) paeth3(src, s, dst, d, prev, p, n);
        else paeth(src, s, dst, d, prev, p, n, bpp);
      }
      default -> throw new IllegalArgumentException("filter type " + filter);
    }
  }

  /** Little-endian views of byte arrays (the JIT turns them into plain 4- and 8-byte loads). */
  private static final VarHandle INT = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);

  private static final VarHandle LONG = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);

  /** Bytewise sum modulo 256 of the four bytes of x and y: no carry crosses a byte. */
  static int addBytes(int x, int y) {
    return ((x & 0x7f7f7f7f) + (y & 0x7f7f7f7f)) ^ ((x ^ y) & 0x80808080);
  }

  /** Bytewise sum modulo 256 of the eight bytes of x and y. */
  static long addBytes(long x, long y) {
    return ((x & 0x7f7f7f7f7f7f7f7fL) + (y & 0x7f7f7f7f7f7f7f7fL)) ^ ((x ^ y) & 0x8080808080808080L);
  }

  /** Bytewise floor((x + y) / 2) of the four bytes of x and y: (x & y) + (x ^ y) / 2, per byte. */
  static int averageBytes(int x, int y) {
    return (x & y) + (((x ^ y) & 0xfefefefe) >>> 1);
  }

  /**
   * Sub for 4 bytes per pixel: the left pixel stays in a register as one int, added bytewise, so
   * each pixel waits for a register, not for the store of the previous one. Starting from 0 gives
   * the first pixel as it is.
   */
  private static void sub4(byte[] src, int s, byte[] dst, int d, int n) {
    int left = 0;
    for (int i = 0; i + 3 < n; i += 4) {
      left = addBytes((int) INT.get(src, s + i), left);
      INT.set(dst, d + i, left);
    }
  }

  private static void sub3(byte[] src, int s, byte[] dst, int d, int n) {
    int a0 = 0, a1 = 0, a2 = 0;
    for (int i = 0; i + 2 < n; i += 3) {
      a0 = (src[s + i] + a0) & 0xff;
      a1 = (src[s + i + 1] + a1) & 0xff;
      a2 = (src[s + i + 2] + a2) & 0xff;
      dst[d + i] = (byte) a0;
      dst[d + i + 1] = (byte) a1;
      dst[d + i + 2] = (byte) a2;
    }
  }

  private static void sub1(byte[] src, int s, byte[] dst, int d, int n) {
    int a = 0;
    for (int i = 0; i < n; i++) {
      a = (src[s + i] + a) & 0xff;
      dst[d + i] = (byte) a;
    }
  }

  /** Average for 4 bytes per pixel, bytewise in one int as {@link #sub4}. */
  private static void average4(byte[] src, int s, byte[] dst, int d, byte[] prev, int p, int n) {
    int left = 0;
    for (int i = 0; i + 3 < n; i += 4) {
      left = addBytes((int) INT.get(src, s + i), averageBytes(left, (int) INT.get(prev, p + i)));
      INT.set(dst, d + i, left);
    }
  }

  private static void average3(byte[] src, int s, byte[] dst, int d, byte[] prev, int p, int n) {
    int a0 = 0, a1 = 0, a2 = 0;
    for (int i = 0; i + 2 < n; i += 3) {
      a0 = (src[s + i] + ((a0 + (prev[p + i] & 0xff)) >>> 1)) & 0xff;
      a1 = (src[s + i + 1] + ((a1 + (prev[p + i + 1] & 0xff)) >>> 1)) & 0xff;
      a2 = (src[s + i + 2] + ((a2 + (prev[p + i + 2] & 0xff)) >>> 1)) & 0xff;
      dst[d + i] = (byte) a0;
      dst[d + i + 1] = (byte) a1;
      dst[d + i + 2] = (byte) a2;
    }
  }

  /**
   * The Paeth predictor of the specification: of a (left), b (above), c (upper left), the one
   * closest to {@code p = a + b - c}, ties broken in the order a, b, c. Computed without the three
   * distances: with {@code lo = min(a, b)}, {@code hi = max(a, b)} and {@code t = 3c - a - b}, the
   * answer is hi when {@code t <= lo}, else lo when {@code t >= hi}, else c. (If c <= lo, p >= hi
   * is nearest hi; if c >= hi, lo; in between, with x = hi - c and y = c - lo, the distances are
   * x, y and |x - y|, so c wins unless one of x, y is at least twice the other, and then the
   * farther of a, b from c wins: x >= 2y is t <= lo, y >= 2x is t >= hi. Ties land where the
   * specification puts them; the test compares both on all 2^24 inputs.)
   */
  static int paethPredictor(int a, int b, int c) {
    int lo = Math.min(a, b);
    int hi = Math.max(a, b);
    int t = 3 * c - a - b;
    // Two plain selections (conditional moves when the choice is unpredictable, as on
    // photographs; a nested ternary compiled to branches and ran twice as slow).
    int r = t >= hi ? lo : c;
    return t <= lo ? hi : r;
  }

  private static void paeth(byte[] src, int s, byte[] dst, int d, byte[] prev, int p, int n, int bpp) {
    int m = Math.min(bpp, n);
    // No left pixel: a = c = 0, and the predictor is b.
    for (int i = 0; i < m; i++) dst[d + i] = (byte) (src[s + i] + prev[p + i]);
    for (int i = m; i < n; i++) {
      int pred = paethPredictor(dst[d + i - bpp] & 0xff, prev[p + i] & 0xff, prev[p + i - bpp] & 0xff);
      dst[d + i] = (byte) (src[s + i] + pred);
    }
  }

  /**
   * Paeth for 4 bytes per pixel (RGBA, 16-bit gray+alpha is bpp 4 too) with the left and
   * upper-left pixels kept in registers: four independent dependency chains instead of a reload
   * of what was just stored. Starting from a = c = 0 gives the first pixel's predictor b.
   */
  private static void paeth4(byte[] src, int s, byte[] dst, int d, byte[] prev, int p, int n) {
    int a0 = 0, a1 = 0, a2 = 0, a3 = 0, c0 = 0, c1 = 0, c2 = 0, c3 = 0;
    for (int i = 0; i + 3 < n; i += 4) {
      int b0 = prev[p + i] & 0xff;
      int b1 = prev[p + i + 1] & 0xff;
      int b2 = prev[p + i + 2] & 0xff;
      int b3 = prev[p + i + 3] & 0xff;
      a0 = (src[s + i] + paethPredictor(a0, b0, c0)) & 0xff;
      a1 = (src[s + i + 1] + paethPredictor(a1, b1, c1)) & 0xff;
      a2 = (src[s + i + 2] + paethPredictor(a2, b2, c2)) & 0xff;
      a3 = (src[s + i + 3] + paethPredictor(a3, b3, c3)) & 0xff;
      dst[d + i] = (byte) a0;
      dst[d + i + 1] = (byte) a1;
      dst[d + i + 2] = (byte) a2;
      dst[d + i + 3] = (byte) a3;
      c0 = b0;
      c1 = b1;
      c2 = b2;
      c3 = b3;
    }
  }

  /** Paeth for 3 bytes per pixel (RGB), as {@link #paeth4}. */
  private static void paeth3(byte[] src, int s, byte[] dst, int d, byte[] prev, int p, int n) {
    int a0 = 0, a1 = 0, a2 = 0, c0 = 0, c1 = 0, c2 = 0;
    for (int i = 0; i + 2 < n; i += 3) {
      int b0 = prev[p + i] & 0xff;
      int b1 = prev[p + i + 1] & 0xff;
      int b2 = prev[p + i + 2] & 0xff;
      a0 = (src[s + i] + paethPredictor(a0, b0, c0)) & 0xff;
      a1 = (src[s + i + 1] + paethPredictor(a1, b1, c1)) & 0xff;
      a2 = (src[s + i + 2] + paethPredictor(a2, b2, c2)) & 0xff;
      dst[d + i] = (byte) a0;
      dst[d + i + 1] = (byte) a1;
      dst[d + i + 2] = (byte) a2;
      c0 = b0;
      c1 = b1;
      c2 = b2;
    }
  }

  // ---------------------------------------------------------------- chunks

  /** Pillow refuses a file whose chunks before the image data fail their CRC. */
  private void checkCrc(int pos, int len, String type) throws ImageDecodeException {
    CRC32 crc = new CRC32();
    crc.update(b, pos + 4, 4 + len);
    if ((int) crc.getValue() != be32(b, pos + 8 + len)) {
      throw corrupt("bad CRC in the " + type + " chunk at byte " + pos + " (Pillow refuses the file too)");
    }
  }

  /** Pillow's {@code is_cid}: four characters of {@code [A-Za-z0-9_]}. */
  private boolean isChunkType(int off) {
    for (int i = off; i < off + 4; i++) {
      int c = b[i] & 0xff;
      boolean word = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
      if (!word) return false;
    }
    return true;
  }

  private String typeName(int off) {
    StringBuilder s = new StringBuilder(4);
    for (int i = off; i < off + 4; i++) {
      int c = b[i] & 0xff;
      s.append(c >= 0x20 && c < 0x7f ? (char) c : '?');
    }
    return s.toString();
  }

  private ImageDecodeException corrupt(String what) {
    return new ImageDecodeException(file, "corrupt PNG file: " + what);
  }

  private ImageDecodeException truncated(String what) {
    return new ImageDecodeException(file, "truncated PNG file: " + what);
  }

  static int be32(byte[] b, int off) {
    return ((b[off] & 0xff) << 24) | ((b[off + 1] & 0xff) << 16) | ((b[off + 2] & 0xff) << 8) | (b[off + 3] & 0xff);
  }
}
