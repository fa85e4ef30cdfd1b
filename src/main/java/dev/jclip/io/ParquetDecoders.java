package dev.jclip.io;

import java.io.IOException;
import java.util.Arrays;

/**
 * Value and level decoders of Parquet data pages ({@code Encodings.md}), each reading lazily from
 * a page buffer {@code b[pos, end)}: one value per {@code next()}, so no allocation grows with a
 * count that a page header declares. Every read is bounds-checked; running off the end is an
 * IOException ("... ends early"), which the reader prefixes with file, column and page.
 */
final class ParquetDecoders {
  private ParquetDecoders() {}

  /** Produces a page's values in order. */
  interface Values {
    Object next() throws IOException;
  }

  static int intLE(byte[] b, int pos, int end) throws IOException {
    if (end - pos < 4) throw new IOException("page ends inside a 4-byte length");
    return (b[pos] & 0xFF) | (b[pos + 1] & 0xFF) << 8 | (b[pos + 2] & 0xFF) << 16 | (b[pos + 3] & 0xFF) << 24;
  }

  /** The first 4 bytes of {@code b}, little-endian. */
  static int longLEInt(byte[] b) {
    return (b[0] & 0xFF) | (b[1] & 0xFF) << 8 | (b[2] & 0xFF) << 16 | (b[3] & 0xFF) << 24;
  }

  static long longLE(byte[] b, int pos) {
    long v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | (b[pos + i] & 0xFF);
    return v;
  }

  /** {@code width} bits at bit offset {@code bit} of {@code b}, least significant first (Parquet's bit packing). */
  static long bits(byte[] b, long bit, int width, int end) throws IOException {
    if (width == 0) return 0;
    if (((bit + width + 7) >>> 3) > end) throw new IOException("bit-packed data ends early");
    long v = 0;
    int got = 0;
    while (got < width) {
      int i = (int) (bit >>> 3);
      int off = (int) (bit & 7);
      int take = Math.min(8 - off, width - got);
      v |= (long) (((b[i] & 0xFF) >>> off) & ((1 << take) - 1)) << got;
      got += take;
      bit += take;
    }
    return v;
  }

  /** ULEB128 over a page buffer; {@code pos[0]} advances. */
  static long uleb(byte[] b, int[] pos, int end) throws IOException {
    long v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      if (pos[0] >= end) throw new IOException("page ends inside a varint");
      int x = b[pos[0]++] & 0xFF;
      v |= (long) (x & 0x7F) << shift;
      if ((x & 0x80) == 0) return v;
    }
    throw new IOException("varint longer than 10 bytes");
  }

  /** The RLE / bit-packed hybrid encoding (levels, dictionary indices, RLE booleans), without a length prefix. */
  static final class Hybrid {
    private final byte[] b;
    private final int end;
    private final int width;
    private final int[] pos;
    private long rleLeft;
    private int rleValue;
    private long packedLeft;
    private long packedBit;
    private int packedEnd;

    Hybrid(byte[] b, int pos, int end, int width) throws IOException {
      if (width < 0 || width > 32) throw new IOException("RLE/bit-packed bit width " + width + " (at most 32)");
      if (pos > end || end > b.length) throw new IOException("RLE/bit-packed data of " + (end - pos) + " bytes past the page's end");
      this.b = b;
      this.pos = new int[] {pos};
      this.end = end;
      this.width = width;
    }

    int next() throws IOException {
      while (rleLeft == 0 && packedLeft == 0) header();
      if (rleLeft > 0) {
        rleLeft--;
        return rleValue;
      }
      packedLeft--;
      int v = (int) bits(b, packedBit, width, packedEnd);
      packedBit += width;
      return v;
    }

    private void header() throws IOException {
      if (pos[0] >= end) throw new IOException("RLE/bit-packed data ends early");
      long h = uleb(b, pos, end);
      if ((h & 1) == 0) {
        rleLeft = h >>> 1;
        int n = (width + 7) / 8;
        if (end - pos[0] < n) throw new IOException("RLE run ends early");
        int v = 0;
        for (int i = 0; i < n; i++) v |= (b[pos[0] + i] & 0xFF) << (8 * i);
        pos[0] += n;
        rleValue = v;
      } else {
        long groups = h >>> 1;
        packedLeft = groups * 8;
        packedBit = (long) pos[0] * 8;
        long bytes = groups * width;
        packedEnd = (int) Math.min(end, pos[0] + bytes);
        // The last group may be cut short by a writer that knows the value count; reads past it fail in bits().
        pos[0] = packedEnd;
      }
    }
  }

  /** DELTA_BINARY_PACKED: INT32 / INT64 values, or the lengths of the DELTA_*_BYTE_ARRAY encodings. */
  static final class DeltaBinaryPacked {
    /** Block sizes this reader accepts (writers use 128 or 256). */
    private static final long MAX_BLOCK = 1 << 16;

    private final byte[] b;
    private final int end;
    private final int[] pos;
    private final int miniblocks;
    private final int perMiniblock;
    private final long total;
    private final long[] buf;
    private final int[] widths;
    private long returned;
    private long last;
    private long minDelta;
    private int miniblock; // index of the next miniblock in the current block
    private int bufLen;
    private int bufPos;

    /** @param max the most values the page can hold: a larger count in the header is corrupt (and would take long to skip) */
    DeltaBinaryPacked(byte[] b, int pos, int end, long max) throws IOException {
      this.b = b;
      this.end = end;
      this.pos = new int[] {pos};
      long blockSize = uleb(b, this.pos, end);
      long mb = uleb(b, this.pos, end);
      total = uleb(b, this.pos, end);
      long z = uleb(b, this.pos, end);
      last = (z >>> 1) ^ -(z & 1);
      if (blockSize <= 0 || blockSize > MAX_BLOCK || blockSize % 128 != 0 || mb <= 0 || blockSize % mb != 0 || (blockSize / mb) % 32 != 0) {
        throw new IOException("DELTA_BINARY_PACKED header: block of " + blockSize + " values in " + mb + " miniblocks");
      }
      if (total < 0 || total > max) throw new IOException("DELTA_BINARY_PACKED header declares " + total + " values in a page of " + max);
      miniblocks = (int) mb;
      perMiniblock = (int) (blockSize / mb);
      buf = new long[perMiniblock];
      widths = new int[miniblocks];
      miniblock = miniblocks;
    }

    long total() {
      return total;
    }

    long next() throws IOException {
      if (returned >= total) throw new IOException("DELTA_BINARY_PACKED data holds only " + total + " values");
      if (returned++ == 0) return last;
      if (bufPos == bufLen) fill();
      last += minDelta + buf[bufPos++];
      return last;
    }

    /** The offset just past the encoded values: reads (and drops) all that are left. */
    int skipToEnd() throws IOException {
      while (returned < total) next();
      return pos[0];
    }

    private void fill() throws IOException {
      if (miniblock == miniblocks) {
        long z = uleb(b, pos, end);
        minDelta = (z >>> 1) ^ -(z & 1);
        if (end - pos[0] < miniblocks) throw new IOException("DELTA_BINARY_PACKED block header ends early");
        for (int i = 0; i < miniblocks; i++) {
          widths[i] = b[pos[0] + i] & 0xFF;
          if (widths[i] > 64) throw new IOException("DELTA_BINARY_PACKED bit width " + widths[i]);
        }
        pos[0] += miniblocks;
        miniblock = 0;
      }
      int w = widths[miniblock++];
      long bit = (long) pos[0] * 8;
      // Only the values still wanted are read: the last miniblock may be padded, or (spec) cut.
      int n = (int) Math.min(perMiniblock, total - returned + 1);
      for (int i = 0; i < n; i++) buf[i] = bits(b, bit + (long) i * w, w, end);
      pos[0] += (int) Math.min((long) perMiniblock * w / 8, end - pos[0]);
      bufLen = n;
      bufPos = 0;
    }
  }

  /** DELTA_LENGTH_BYTE_ARRAY: all lengths (DELTA_BINARY_PACKED), then all bytes. */
  static final class DeltaLengthByteArray {
    private final byte[] b;
    private final int end;
    private final DeltaBinaryPacked lengths;
    private int data;

    DeltaLengthByteArray(byte[] b, int pos, int end, long max) throws IOException {
      this.b = b;
      this.end = end;
      // The bytes start after the last length: a first pass finds that offset without storing lengths.
      this.data = new DeltaBinaryPacked(b, pos, end, max).skipToEnd();
      this.lengths = new DeltaBinaryPacked(b, pos, end, max);
    }

    byte[] next() throws IOException {
      long len = lengths.next();
      if (len < 0 || len > end - data) throw new IOException("DELTA_LENGTH_BYTE_ARRAY value of " + len + " bytes, " + (end - data) + " left");
      byte[] v = Arrays.copyOfRange(b, data, data + (int) len);
      data += (int) len;
      return v;
    }
  }

  /** DELTA_BYTE_ARRAY: prefix lengths (DELTA_BINARY_PACKED), then suffixes (DELTA_LENGTH_BYTE_ARRAY). */
  static final class DeltaByteArray {
    private final DeltaBinaryPacked prefixes;
    private final DeltaLengthByteArray suffixes;
    private byte[] previous = new byte[0];

    DeltaByteArray(byte[] b, int pos, int end, long max) throws IOException {
      int suffixStart = new DeltaBinaryPacked(b, pos, end, max).skipToEnd();
      prefixes = new DeltaBinaryPacked(b, pos, end, max);
      suffixes = new DeltaLengthByteArray(b, suffixStart, end, max);
    }

    byte[] next() throws IOException {
      long p = prefixes.next();
      byte[] s = suffixes.next();
      if (p < 0 || p > previous.length) throw new IOException("DELTA_BYTE_ARRAY prefix of " + p + " bytes, the previous value has " + previous.length);
      byte[] v = Arrays.copyOf(previous, (int) p + s.length);
      System.arraycopy(s, 0, v, (int) p, s.length);
      previous = v;
      return v;
    }
  }

  /** BYTE_STREAM_SPLIT: byte k of value i at {@code k * count + i}. Returns each value's bytes. */
  static final class ByteStreamSplit {
    private final byte[] b;
    private final int pos;
    private final int width;
    private final int count;
    private int i;

    ByteStreamSplit(byte[] b, int pos, int end, int width) throws IOException {
      if (width <= 0 || (end - pos) % width != 0) throw new IOException("BYTE_STREAM_SPLIT data of " + (end - pos) + " bytes is not a multiple of " + width);
      this.b = b;
      this.pos = pos;
      this.width = width;
      this.count = (end - pos) / width;
    }

    byte[] next() throws IOException {
      if (i >= count) throw new IOException("BYTE_STREAM_SPLIT data holds only " + count + " values");
      byte[] v = new byte[width];
      for (int k = 0; k < width; k++) v[k] = b[pos + k * count + i];
      i++;
      return v;
    }
  }
}
