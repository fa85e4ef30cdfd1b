package dev.jclip.image;

import java.nio.file.Path;
import java.util.Arrays;

/**
 * The first frame of a GIF, as Pillow 9.4's {@code Image.open} gives it (docs/preprocessing.md,
 * "GIF", has the measurements behind each rule).
 *
 * <ul>
 *   <li>The blocks before the first image descriptor are read as Pillow reads them: bytes that
 *       start no block are skipped; a graphic control extension needs 3 bytes (4 when its
 *       transparency flag is set), and the last one with the flag gives the transparent index; an
 *       application extension needs a first sub-block (and NETSCAPE2.0 a second); an extension
 *       other than a comment whose first sub-block is empty goes on reading the bytes that follow
 *       as sub-blocks (Pillow's reader does), which usually swallows the image descriptor.
 *   <li>The image is the logical screen grown to hold the frame: {@code max(left + width, screen
 *       width)} x {@code max(top + height, screen height)}, filled with the transparent index (or 0),
 *       the frame at its offset. That size goes through the pixel limit. A frame of width 0 at
 *       left 0 is decoded as a frame covering the whole image (Pillow's tile (0, y0, 0, y1) means
 *       "the whole image"); any other frame with a width or height of 0 is refused.
 *   <li>Mode {@code P} with the frame's palette (local, else global), or {@code L} when there is
 *       none or the palette is exactly the identity gray ramp {@code (i, i, i)}. A local table that
 *       is the gray ramp under a global one that is not is refused: Pillow reports "L" but keeps
 *       the global palette underneath, so that its resize fails.
 *   <li>The LZW data are decoded as Pillow's GifDecode.c does: everything after the minimum code
 *       size byte is taken as length-prefixed sub-blocks up to the end of the file (a 0-length
 *       block does not stop it), a sub-block is only used once all of it is in the file, and the
 *       decoding ends when the frame's last pixel is written (whatever follows is ignored). An
 *       end-of-information code stops it only when Pillow has read the whole file by then (it
 *       reads in 64 KiB chunks from the data's start; before the last chunk the decoding resumes
 *       after the code). A frame whose pixels are not all produced is "truncated"; invalid codes are
 *       "broken", as in Pillow.
 * </ul>
 *
 * <p>Memory: the LZW data are first walked without output (tables of 4096 entries, string lengths
 * only), so that no buffer of the image's size is allocated before its pixels are shown to be in
 * the file; only then is the image allocated and the data decoded into it.
 */
final class GifDecoder {
  /** Pillow's read size ({@code ImageFile.MAXBLOCK}): an end code stops the data only in the last read. */
  static final int CHUNK = 65536;

  private static final int TABLE = 4096;

  private GifDecoder() {}

  static DecodedImage decode(Path file, byte[] b, ImageDecoder limits) throws ImageDecodeException {
    Header h = Header.parse(file, b);
    int x0 = h.left, y0 = h.top;
    long x1 = (long) x0 + h.width, y1 = (long) y0 + h.height;
    long cw = Math.max(x1, h.screenWidth), ch = Math.max(y1, h.screenHeight);
    limits.checkPixels(file, ImageDecoder.Format.GIF, cw, ch);
    int W = (int) cw, H = (int) ch;
    int xoff = x0, yoff = y0, xsize = h.width, ysize = h.height;
    if (x0 == 0 && h.width == 0) {
      xoff = yoff = 0;
      xsize = W;
      ysize = H;
    } else if (h.width == 0 || h.height == 0) {
      throw new ImageDecodeException(file, "corrupt GIF file: the first frame is " + h.width + "x" + h.height + " pixels (empty)");
    }
    if (h.codeSize > 12) {
      throw new ImageDecodeException(file, "corrupt GIF file: LZW minimum code size " + h.codeSize + " (at most 12)");
    }
    // Pass 1: are the frame's pixels all in the file? Nothing of the image's size is allocated.
    Lzw check = new Lzw(b, h.dataStart, h.codeSize);
    String problem = check.run(null, 0, 0, 0, xsize, ysize, h.interlaced);
    if (problem != null) throw problem(file, problem, xsize, ysize, check.produced);
    // Pass 2: the same decoding into the image.
    byte[] px = new byte[W * H];
    if (h.transparent > 0) Arrays.fill(px, (byte) h.transparent);
    Lzw lzw = new Lzw(b, h.dataStart, h.codeSize);
    problem = lzw.run(px, W, xoff, yoff, xsize, ysize, h.interlaced);
    if (problem != null) throw problem(file, problem, xsize, ysize, lzw.produced); // cannot happen after pass 1
    if (h.palette == null) return DecodedImage.of("GIF", DecodedImage.Mode.L, W, H, px);
    return DecodedImage.palette("GIF", W, H, px, h.palette);
  }

  private static ImageDecodeException problem(Path file, String problem, int xsize, int ysize, long produced) {
    String what = "the LZW data give " + produced + " of the first frame's " + (long) xsize * ysize + " pixels (" + xsize + "x" + ysize + ")";
    if (problem.equals(Lzw.TRUNCATED)) return new ImageDecodeException(file, "truncated GIF file (image file is truncated): " + what);
    return new ImageDecodeException(file, "corrupt GIF file (broken data stream): " + problem + "; " + what);
  }

  /** What Pillow's {@code _open} reads before the first frame's image data. */
  record Header(
      int screenWidth,
      int screenHeight,
      int left,
      int top,
      int width,
      int height,
      boolean interlaced,
      /** RGB triplets, or null for mode L */
      byte[] palette,
      int transparent,
      int codeSize,
      int dataStart) {

    /** The colour table of {@code 3 << (size + 1)} bytes that {@code flags} announce, read at {@code in} ({@link #palette}'s result). */
    private static byte[] colourTable(Path file, byte[] b, Reader in, int flags, String which) throws ImageDecodeException {
      int n = 3 << ((flags & 7) + 1);
      if (b.length - in.pos < n) throw corrupt(file, "the file ends inside the " + which + " colour table (" + n + " bytes)");
      byte[] table = palette(b, in.pos, n);
      in.pos += n;
      return table;
    }

    static Header parse(Path file, byte[] b) throws ImageDecodeException {
      if (b.length < 13) throw corrupt(file, "the file (" + b.length + " bytes) ends inside the 13-byte header");
      if (!(b[0] == 'G' && b[1] == 'I' && b[2] == 'F' && b[3] == '8' && (b[4] == '7' || b[4] == '9') && b[5] == 'a')) {
        throw corrupt(file, "the signature is not GIF87a or GIF89a");
      }
      Reader in = new Reader(b, 13);
      int flags = b[10] & 0xff;
      byte[] global = null;
      if ((flags & 0x80) != 0) global = colourTable(file, b, in, flags, "global");
      int transparent = -1;
      while (true) {
        int s = in.read();
        if (s < 0 || s == ';') throw corrupt(file, "no image in the file (" + (s < 0 ? "it ends" : "the trailer comes") + " before the first image descriptor)");
        if (s == '!') {
          int label = in.read();
          if (label < 0) throw corrupt(file, "the file ends inside an extension");
          int[] block = in.data();
          if (label == 0xF9) {
            int len = block == null ? -1 : block[1] - block[0];
            int gceFlags = len > 0 ? b[block[0]] & 1 : 0;
            if (len < 3 || (gceFlags != 0 && len < 4)) throw corrupt(file, "a graphic control extension of " + Math.max(len, 0) + " bytes");
            if (gceFlags != 0) transparent = b[block[0] + 3] & 0xff;
            in.skipData();
          } else if (label == 0xFE) {
            while (block != null && block[1] > block[0]) block = in.data();
          } else if (label == 0xFF) {
            if (block == null) throw corrupt(file, "an application extension without data");
            if (block[1] - block[0] >= 11 && Arrays.equals(b, block[0], block[0] + 11, "NETSCAPE2.0".getBytes(), 0, 11) && in.data() == null) {
              throw corrupt(file, "a NETSCAPE2.0 extension without its data block");
            }
            in.skipData();
          } else {
            in.skipData();
          }
        } else if (s == ',') {
          if (b.length - in.pos < 9) throw corrupt(file, "the file ends inside the image descriptor");
          int p = in.pos;
          int iflags = b[p + 8] & 0xff;
          in.pos += 9;
          byte[] pal = global;
          if ((iflags & 0x80) != 0) {
            pal = colourTable(file, b, in, iflags, "local");
            if (pal == null && global != null) {
              // Pillow 9.4 then says "L" but realises the global palette on the image ("P"
              // underneath): its convert("RGB") maps the indices through the global palette, and
              // its resize fails ("image has wrong mode").
              throw new ImageDecodeException(
                  file, "GIF whose first frame has a gray-ramp local colour table under a global one is not supported (Pillow 9.4 opens it as L over a palette image and cannot resize it)");
            }
          }
          int codeSize = in.read();
          if (codeSize < 0) throw corrupt(file, "the file ends before the image data");
          return new Header(le16(b, 6), le16(b, 8), le16(b, p), le16(b, p + 2), le16(b, p + 4), le16(b, p + 6), (iflags & 0x40) != 0, pal, transparent, codeSize, in.pos);
        }
        // any other byte: skipped, as Pillow does
      }
    }

    /** The colour table, or null when it is exactly the gray ramp (Pillow then opens the image as L). */
    private static byte[] palette(byte[] b, int off, int n) {
      for (int i = 0; i < n; i += 3) {
        int v = i / 3;
        if ((b[off + i] & 0xff) != v || (b[off + i + 1] & 0xff) != v || (b[off + i + 2] & 0xff) != v) return Arrays.copyOfRange(b, off, off + n);
      }
      return null;
    }

    private static ImageDecodeException corrupt(Path file, String what) {
      return new ImageDecodeException(file, "corrupt GIF file: " + what);
    }

    private static int le16(byte[] b, int off) {
      return (b[off] & 0xff) | ((b[off + 1] & 0xff) << 8);
    }
  }

  /** Pillow's {@code fp.read} over the file: short at the end, never past it. */
  private static final class Reader {
    final byte[] b;
    int pos;

    Reader(byte[] b, int pos) {
      this.b = b;
      this.pos = pos;
    }

    int read() {
      return pos < b.length ? b[pos++] & 0xff : -1;
    }

    /**
     * Pillow's {@code data()}: a sub-block as {start, end} (shorter than announced, even empty,
     * at the end of the file), or null for a 0-length block or the end of the file.
     */
    int[] data() {
      int n = read();
      if (n <= 0) return null;
      int start = pos;
      pos = Math.min(b.length, pos + n);
      return new int[] {start, pos};
    }

    /** {@code while self.data(): pass} */
    void skipData() {
      for (int[] d = data(); d != null && d[1] > d[0]; d = data()) {
        // skip
      }
    }
  }

  /**
   * The LZW decoder with the rules of Pillow 9.4's GifDecode.c (our own code): the same code
   * sizes, table growth, clear and end codes, error conditions and pixel order, and the same
   * points where it waits for more of the file.
   */
  static final class Lzw {
    static final String TRUNCATED = "truncated";

    private final byte[] b;
    private final int start;
    private final int bits;
    private final long total;
    private long avail;
    private long pos;

    private final short[] link = new short[TABLE];
    private final byte[] suffix = new byte[TABLE];
    /** String length of each table entry (only the lengths are needed to count pixels). */
    private final short[] length = new short[TABLE];
    /** First pixel (the root code) of each table entry's string. */
    private final short[] roots = new short[TABLE];
    private final byte[] stack = new byte[TABLE + 1];

    /** Pixels produced so far. */
    long produced;

    Lzw(byte[] b, int start, int bits) {
      this.b = b;
      this.start = start;
      this.bits = bits;
      this.total = b.length - (long) start;
      this.avail = Math.min(CHUNK, total);
    }

    /** Pillow's next read: false when the file is all read already. */
    private boolean more() {
      if (avail == total) return false;
      avail = Math.min(avail + CHUNK, total);
      return true;
    }

    /**
     * Decodes until the frame is complete. With {@code out} null only counts the pixels.
     *
     * @return null when all {@code xsize * ysize} pixels were produced, {@link #TRUNCATED}, or what
     *     is broken
     */
    String run(byte[] out, int stride, int xoff, int yoff, int xsize, int ysize, boolean interlaced) {
      final long need = (long) xsize * ysize;
      final int clear = 1 << bits;
      final int end = clear + 1;
      int next = clear + 2;
      int codeSize = bits + 1;
      int codeMask = (1 << codeSize) - 1;
      boolean afterClear = true; // the first code after a clear (Pillow's state 2)
      int lastCode = 0;
      int lastData = 0;
      int bitBuffer = 0;
      int bitCount = 0;
      int blockSize = 0;
      // output position (Pillow's state->x, y and the interlace pass)
      int x = 0, y = 0, pass = interlaced ? 1 : 0, step = interlaced ? 8 : 1;
      int row = (yoff + y) * stride + xoff;
      while (true) {
        while (bitCount < codeSize) {
          if (blockSize > 0) {
            bitBuffer |= (b[(int) (start + pos++)] & 0xff) << bitCount;
            blockSize--;
            bitCount += 8;
          } else {
            // a new sub-block: only once all of it has been read
            if (pos >= avail || pos + 1 + (b[(int) (start + pos)] & 0xff) > avail) {
              if (!more()) return TRUNCATED;
              continue;
            }
            blockSize = b[(int) (start + pos++)] & 0xff;
          }
        }
        int c = bitBuffer & codeMask;
        bitBuffer >>= codeSize;
        bitCount -= codeSize;
        if (c == clear) {
          if (!afterClear) {
            next = clear + 2;
            codeSize = bits + 1;
            codeMask = (1 << codeSize) - 1;
            afterClear = true;
          }
          continue;
        }
        if (c == end) {
          // Pillow's decoder returns; the data go on after the code if there is more to read
          if (!more()) return TRUNCATED;
          continue;
        }
        int n; // pixels of this code's string
        int top = TABLE + 1; // the string is stack[top..TABLE] once written (write pass only)
        if (afterClear) {
          if (c > clear) return "a first code " + c + " after a clear code above the clear code " + clear;
          lastData = lastCode = c;
          n = 1;
          if (out != null) stack[--top] = (byte) c;
          afterClear = false;
        } else {
          int thisCode = c;
          if (c > next) return "code " + c + " beyond the next table entry " + next;
          int pushed = 0;
          if (c == next) {
            pushed = 1;
            if (out != null) stack[--top] = (byte) lastData;
            c = lastCode;
          }
          int root = c;
          if (c >= clear) {
            if (c >= TABLE) return "code " + c + " outside the table of " + TABLE;
            pushed += length[c] - 1;
            if (pushed > TABLE) return "a string of " + (pushed + 1) + " pixels, longer than the buffer of " + TABLE;
            root = roots[c];
            if (out != null) {
              while (c >= clear) {
                stack[--top] = suffix[c];
                c = link[c];
              }
            }
          }
          if (out != null) stack[--top] = (byte) root;
          lastData = root & 0xff;
          n = pushed + 1;
          if (next < TABLE) {
            suffix[next] = (byte) root;
            link[next] = (short) lastCode;
            length[next] = (short) (lastCode >= clear ? length[lastCode] + 1 : 2);
            roots[next] = (short) (lastCode >= clear ? roots[lastCode] : lastCode);
            if (next == codeMask && codeSize < 12) {
              codeSize++;
              codeMask = (1 << codeSize) - 1;
            }
            next++;
          }
          lastCode = thisCode;
        }
        if (out == null) {
          produced += n;
          if (produced >= need) {
            produced = need;
            return null;
          }
          continue;
        }
        // write the string
        while (top <= TABLE) {
          out[row + x] = stack[top++];
          produced++;
          if (++x >= xsize) {
            x = 0;
            y += step;
            while (y >= ysize) {
              switch (pass) {
                case 1 -> {
                  y = 4;
                  pass = 2;
                }
                case 2 -> {
                  step = 4;
                  y = 2;
                  pass = 3;
                }
                case 3 -> {
                  step = 2;
                  y = 1;
                  pass = 0;
                }
                default -> {
                  return null;
                }
              }
            }
            row = (yoff + y) * stride + xoff;
          }
        }
      }
    }
  }
}
