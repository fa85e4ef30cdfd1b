package dev.jclip.image;

/**
 * A JPEG decoder that gives libjpeg-turbo's bytes (Pillow's decoder) for the common files:
 * 8-bit Huffman-coded baseline, extended and progressive JPEGs with 1 (gray) or 3 (YCbCr or RGB)
 * components.
 *
 * <p>Why it exists: the JDK's libjpeg 6b gives the same pixels but is several times slower than
 * libjpeg-turbo, and for progressive files its ImageIO reader renders the whole image after every
 * scan. This decoder reads all coefficients first and renders once.
 *
 * <p>What makes it exact, step by step as libjpeg does it: the ISLOW integer IDCT (13-bit
 * constants, 2 extra bits in the first pass, the DC-only shortcut, and the masked range-limit
 * table, which wraps far out-of-range values); libjpeg-turbo's upsampling choice per component
 * (fancy h2v1 and h2v2 when the downsampled width exceeds 2, fancy h1v2, otherwise replication)
 * with its edge rules (the first and last rows repeat as context, the first and last columns have
 * their own formulas); and the fixed-point YCbCr conversion tables.
 *
 * <p>Anything else (arithmetic coding, 12-bit, CMYK, lossless, odd sampling ratios, data errors,
 * missing restart markers, truncation) raises {@link Unsupported}, and the caller decodes the file
 * with ImageIO, which keeps libjpeg's handling of those cases, errors included.
 */
final class JpegDecoder {
  /** This decoder does not handle the file; the caller falls back to ImageIO. */
  static final class Unsupported extends Exception {
    private static final long serialVersionUID = 1L;

    Unsupported(String why) {
      super(why, null, false, false);
    }
  }

  /** Zig-zag position -> natural (row-major) index. */
  private static final int[] NATURAL = {
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
    28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61,
    54, 47, 55, 62, 63,
    // libjpeg pads with extra entries so a corrupt run past 63 stays in the block
    63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63
  };

  private final byte[] d;
  private int pos;
  private long maxPixels = Long.MAX_VALUE;
  private int scans;

  private final int[][] qt = new int[4][];
  private final Huffman[] dcTables = new Huffman[4];
  private final Huffman[] acTables = new Huffman[4];
  private int restartInterval;
  private boolean progressive;
  private int width;
  private int height;
  private Component[] comps;
  private int maxH;
  private int maxV;
  private int mcusX;
  private int mcusY;
  private int eobrun;

  private static final class Component {
    int id;
    int h;
    int v;
    int tq;
    int blocksW; // blocks per line covering the component's samples, ceil(ceil(W*h/maxH)/8)
    int blocksH;
    int bufBlocksW; // blocks per line in the MCU-padded buffer
    int bufBlocksH;
    int dsWidth; // downsampled_width: ceil(W * h / maxH)
    int dsHeight;
    short[] coefs;
    int dcPred;
    Huffman dc;
    Huffman ac;
  }

  private JpegDecoder(byte[] d) {
    this.d = d;
  }

  /**
   * Decodes {@code data} to Pillow's mode (L or RGB) and pixels; images over {@code maxPixels}
   * are left to the caller (which reports them) before anything is allocated.
   */
  static DecodedImage decode(byte[] data, long maxPixels) throws Unsupported {
    try {
      JpegDecoder dec = new JpegDecoder(data);
      dec.maxPixels = maxPixels;
      return dec.run();
    } catch (RuntimeException e) {
      // Malformed segment lengths, tables or codes (index out of bounds, missing table, ...): let
      // libjpeg, through ImageIO, decide what the file is.
      throw new Unsupported("malformed data: " + e);
    }
  }

  private int u8() throws Unsupported {
    if (pos >= d.length) throw new Unsupported("truncated");
    return d[pos++] & 0xff;
  }

  private int u16() throws Unsupported {
    return (u8() << 8) | u8();
  }

  private DecodedImage run() throws Unsupported {
    if (u8() != 0xFF || u8() != 0xD8) throw new Unsupported("no SOI");
    boolean frame = false;
    boolean jfif = false;
    int adobe = -1;
    while (true) {
      int m = nextMarker();
      if (m == 0xD9) break; // EOI
      switch (m) {
        case 0xC0, 0xC1, 0xC2 -> {
          if (frame) throw new Unsupported("two frames");
          readFrame(m == 0xC2);
          frame = true;
        }
        case 0xC4 -> readHuffman();
        case 0xDB -> readQuant();
        case 0xDD -> {
          if (u16() != 4) throw new Unsupported("DRI length");
          restartInterval = u16();
        }
        case 0xDA -> {
          if (!frame) throw new Unsupported("scan before frame");
          // Each scan walks every block: a file of thousands of tiny scans is left to libjpeg.
          if (++scans > 1000) throw new Unsupported("too many scans");
          readScan();
        }
        case 0xE0 -> {
          int len = u16();
          if (len >= 7 && pos + 4 < d.length && d[pos] == 'J' && d[pos + 1] == 'F' && d[pos + 2] == 'I' && d[pos + 3] == 'F') jfif = true;
          skip(len - 2);
        }
        case 0xEE -> {
          int len = u16();
          if (len >= 12 && pos + 11 < d.length && d[pos] == 'A' && d[pos + 1] == 'd') adobe = d[pos + 11] & 0xff;
          skip(len - 2);
        }
        default -> {
          if ((m >= 0xE1 && m <= 0xEF) || m == 0xFE) {
            skip(u16() - 2);
          } else {
            // SOF3/5..15 (lossless, hierarchical, arithmetic), DNL, DAC, ...
            throw new Unsupported(String.format("marker %02X", m));
          }
        }
      }
    }
    if (!frame) throw new Unsupported("no frame");
    for (Component c : comps) if (c.coefs == null) throw new Unsupported("component without data");
    if (comps.length == 1) return DecodedImage.of("JPEG", DecodedImage.Mode.L, width, height, render(false));
    boolean ycc;
    if (jfif) {
      ycc = true;
    } else if (adobe >= 0) {
      ycc = adobe != 0;
    } else {
      ycc = !(comps[0].id == 'R' && comps[1].id == 'G' && comps[2].id == 'B');
    }
    return DecodedImage.of("JPEG", DecodedImage.Mode.RGB, width, height, render(ycc));
  }

  private void skip(int n) throws Unsupported {
    if (n < 0 || pos + n > d.length) throw new Unsupported("truncated");
    pos += n;
  }

  /** The next marker code, skipping fill bytes; anything else between segments is an error here. */
  private int nextMarker() throws Unsupported {
    if (u8() != 0xFF) throw new Unsupported("garbage between segments");
    int m;
    do {
      m = u8();
    } while (m == 0xFF);
    return m;
  }

  private void readQuant() throws Unsupported {
    int segLen = u16();
    int end = pos + segLen - 2;
    while (pos < end) {
      int pq = u8();
      int id = pq & 15;
      if (id > 3) throw new Unsupported("DQT id");
      int[] t = new int[64];
      for (int i = 0; i < 64; i++) t[NATURAL[i]] = (pq >> 4) != 0 ? u16() : u8();
      qt[id] = t;
    }
    if (pos != end) throw new Unsupported("DQT length");
  }

  private void readHuffman() throws Unsupported {
    int segLen = u16();
    int end = pos + segLen - 2;
    while (pos < end) {
      int tc = u8();
      int id = tc & 15;
      if (id > 3 || (tc >> 4) > 1) throw new Unsupported("DHT id");
      int[] counts = new int[17];
      int total = 0;
      for (int i = 1; i <= 16; i++) total += counts[i] = u8();
      if (total > 256) throw new Unsupported("DHT size");
      int[] values = new int[total];
      for (int i = 0; i < total; i++) values[i] = u8();
      Huffman h = new Huffman(counts, values);
      if ((tc >> 4) == 0) dcTables[id] = h;
      else acTables[id] = h;
    }
    if (pos != end) throw new Unsupported("DHT length");
  }

  private void readFrame(boolean prog) throws Unsupported {
    progressive = prog;
    int len = u16();
    if (u8() != 8) throw new Unsupported("precision other than 8 bits");
    height = u16();
    width = u16();
    int n = u8();
    if (height == 0 || width == 0) throw new Unsupported("zero size (DNL)");
    if ((long) width * height > maxPixels || (long) width * height * 3 > Integer.MAX_VALUE - 8) {
      throw new Unsupported("over the pixel limit");
    }
    if (n != 1 && n != 3) throw new Unsupported(n + " components");
    if (len != 8 + 3 * n) throw new Unsupported("SOF length");
    comps = new Component[n];
    for (int i = 0; i < n; i++) {
      Component c = new Component();
      c.id = u8();
      int f = u8();
      c.h = f >> 4;
      c.v = f & 15;
      c.tq = u8();
      if (c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4 || c.tq > 3) throw new Unsupported("sampling factors");
      comps[i] = c;
      maxH = Math.max(maxH, c.h);
      maxV = Math.max(maxV, c.v);
    }
    mcusX = ceilDiv(width, 8 * maxH);
    mcusY = ceilDiv(height, 8 * maxV);
    for (Component c : comps) {
      c.dsWidth = ceilDiv(width * c.h, maxH);
      c.dsHeight = ceilDiv(height * c.v, maxV);
      c.blocksW = ceilDiv(c.dsWidth, 8);
      c.blocksH = ceilDiv(c.dsHeight, 8);
      c.bufBlocksW = mcusX * c.h;
      c.bufBlocksH = mcusY * c.v;
      if (n == 1) {
        c.bufBlocksW = c.blocksW; // a single-component image is not interleaved
        c.bufBlocksH = c.blocksH;
      }
      long size = (long) c.bufBlocksW * c.bufBlocksH * 64;
      if (size > Integer.MAX_VALUE - 8) throw new Unsupported("too large");
      c.coefs = null;
    }
  }

  private static int ceilDiv(int a, int b) {
    return (a + b - 1) / b;
  }

  // ------------------------------------------------------------------ entropy decoding

  private static final class Huffman {
    /** For each 9-bit prefix: (length << 8) | symbol, or 0 when the code is longer. */
    final int[] fast = new int[1 << 9];
    final int[] maxcode = new int[18];
    final int[] valptr = new int[17];
    final int[] mincode = new int[17];
    final int[] values;

    Huffman(int[] counts, int[] values) throws Unsupported {
      this.values = values;
      int code = 0;
      int k = 0;
      for (int len = 1; len <= 16; len++) {
        valptr[len] = k;
        mincode[len] = code;
        for (int i = 0; i < counts[len]; i++) {
          if (len <= 9) {
            int shift = 9 - len;
            for (int j = 0; j < (1 << shift); j++) fast[(code << shift) | j] = (len << 8) | values[k];
          }
          code++;
          k++;
        }
        maxcode[len] = counts[len] == 0 ? -1 : code - 1;
        if (code > (1 << len)) throw new Unsupported("bad Huffman table");
        code <<= 1;
      }
      maxcode[17] = Integer.MAX_VALUE;
    }
  }

  // Bit reader over the entropy-coded segment. A marker (or the end of the file) ends the data:
  // zero bits follow, as libjpeg inserts, but consuming any of them means the data was short,
  // which this decoder leaves to libjpeg to report.
  private long bitBuf;
  private int bitCount;
  private int fillerBits;
  private boolean hitMarker;

  private void fill() {
    while (bitCount <= 56) {
      int b = 0;
      boolean real = false;
      if (!hitMarker && pos < d.length) {
        b = d[pos] & 0xff;
        if (b == 0xFF) {
          int next = pos + 1 < d.length ? d[pos + 1] & 0xff : -1;
          if (next == 0x00) {
            pos += 2;
            real = true;
          } else {
            hitMarker = true;
            b = 0;
          }
        } else {
          pos++;
          real = true;
        }
      }
      if (!real) fillerBits += 8;
      bitBuf |= (long) b << (56 - bitCount);
      bitCount += 8;
    }
  }

  private void consume(int n) throws Unsupported {
    bitBuf <<= n;
    bitCount -= n;
    if (bitCount < fillerBits) throw new Unsupported("premature end of data segment");
  }

  private int bits(int n) throws Unsupported {
    if (n == 0) return 0;
    if (bitCount < n) fill();
    int v = (int) (bitBuf >>> (64 - n));
    consume(n);
    return v;
  }

  private int bit() throws Unsupported {
    return bits(1);
  }

  private int decode(Huffman h) throws Unsupported {
    if (bitCount < 16) fill();
    int peek = (int) (bitBuf >>> (64 - 9));
    int f = h.fast[peek];
    int len;
    int sym;
    if (f != 0) {
      len = f >> 8;
      sym = f & 0xff;
    } else {
      int code = (int) (bitBuf >>> (64 - 10));
      len = 10;
      while (code > h.maxcode[len]) {
        len++;
        if (len > 16) throw new Unsupported("bad Huffman code");
        code = (int) (bitBuf >>> (64 - len));
      }
      sym = h.values[h.valptr[len] + code - h.mincode[len]];
    }
    consume(len);
    return sym;
  }

  /** JPEG's EXTEND: an s-bit magnitude category value to a signed integer. */
  private static int extend(int v, int s) {
    return v < (1 << (s - 1)) ? v - (1 << s) + 1 : v;
  }

  private void readScan() throws Unsupported {
    int len = u16();
    int ns = u8();
    if (ns < 1 || ns > 4 || len != 6 + 2 * ns) throw new Unsupported("SOS length");
    Component[] sc = new Component[ns];
    for (int i = 0; i < ns; i++) {
      int id = u8();
      int t = u8();
      Component c = null;
      for (Component x : comps) if (x.id == id) c = x;
      if (c == null) throw new Unsupported("scan component");
      c.dc = dcTables[t >> 4];
      c.ac = acTables[t & 15];
      sc[i] = c;
    }
    int ss = u8();
    int se = u8();
    int a = u8();
    int ah = a >> 4;
    int al = a & 15;
    if (!progressive && (ss != 0 || se != 63 || a != 0)) throw new Unsupported("sequential scan parameters");
    if (progressive && (se > 63 || ss > se || (ss == 0 && se != 0) || (ss > 0 && ns != 1) || al > 13)) {
      throw new Unsupported("progressive scan parameters");
    }
    for (Component c : sc) {
      if (c.coefs == null) c.coefs = new short[c.bufBlocksW * c.bufBlocksH * 64];
      c.dcPred = 0;
      if ((ss == 0 && ah == 0 && c.dc == null) || (se > 0 && c.ac == null && (ss > 0 || !progressive))) {
        throw new Unsupported("missing Huffman table");
      }
    }
    bitBuf = 0;
    bitCount = 0;
    fillerBits = 0;
    hitMarker = false;
    eobrun = 0;
    int restartsLeft = restartInterval;
    int expectedRst = 0;
    boolean single = ns == 1;
    int unitsX;
    int unitsY;
    if (single) {
      unitsX = sc[0].blocksW;
      unitsY = sc[0].blocksH;
    } else {
      unitsX = mcusX;
      unitsY = mcusY;
    }
    for (int uy = 0; uy < unitsY; uy++) {
      for (int ux = 0; ux < unitsX; ux++) {
        if (restartInterval > 0) {
          if (restartsLeft == 0) {
            restart(expectedRst);
            expectedRst = (expectedRst + 1) & 7;
            restartsLeft = restartInterval;
            for (Component c : sc) c.dcPred = 0;
            eobrun = 0;
          }
          restartsLeft--;
        }
        if (single) {
          Component c = sc[0];
          block(c, (uy * c.bufBlocksW + ux) * 64, ss, se, ah, al);
        } else {
          for (Component c : sc) {
            for (int by = 0; by < c.v; by++) {
              for (int bx = 0; bx < c.h; bx++) {
                int row = uy * c.v + by;
                int col = ux * c.h + bx;
                block(c, (row * c.bufBlocksW + col) * 64, ss, se, ah, al);
              }
            }
          }
        }
      }
    }
    // Rewind the bytes the bit reader fetched ahead, then find the next marker.
    finishScan();
  }

  private void restart(int expected) throws Unsupported {
    // Discard the remaining bits of the byte, then the marker must be RSTn.
    finishScan();
    if (pos + 1 >= d.length || (d[pos] & 0xff) != 0xFF || (d[pos + 1] & 0xff) != 0xD0 + expected) {
      throw new Unsupported("restart marker missing");
    }
    pos += 2;
    bitBuf = 0;
    bitCount = 0;
    fillerBits = 0;
    hitMarker = false;
  }

  /**
   * Positions {@code pos} at the first marker after the entropy-coded data just read. The bit
   * reader never reads past a marker, so searching forward from where it stopped finds it; bytes
   * skipped on the way are padding or extraneous data (which libjpeg skips with a warning).
   */
  private void finishScan() {
    int p = pos;
    while (p + 1 < d.length) {
      if ((d[p] & 0xff) == 0xFF && (d[p + 1] & 0xff) != 0x00 && (d[p + 1] & 0xff) != 0xFF) break;
      p++;
    }
    pos = p;
    bitBuf = 0;
    bitCount = 0;
    fillerBits = 0;
    hitMarker = false;
  }

  private void block(Component c, int off, int ss, int se, int ah, int al) throws Unsupported {
    short[] z = c.coefs;
    if (!progressive) {
      int s = decode(c.dc);
      int diff = s == 0 ? 0 : extend(bits(s), s);
      c.dcPred += diff;
      z[off] = (short) c.dcPred;
      for (int k = 1; k < 64; k++) {
        int rs = decode(c.ac);
        int r = rs >> 4;
        s = rs & 15;
        if (s != 0) {
          k += r;
          z[off + NATURAL[k]] = (short) extend(bits(s), s);
        } else {
          if (r != 15) break;
          k += 15;
        }
      }
      return;
    }
    if (ss == 0) {
      if (ah == 0) {
        int s = decode(c.dc);
        int diff = s == 0 ? 0 : extend(bits(s), s);
        c.dcPred += diff;
        z[off] = (short) (c.dcPred << al);
      } else if (bit() != 0) {
        z[off] |= (short) (1 << al);
      }
      return;
    }
    if (ah == 0) {
      if (eobrun > 0) {
        eobrun--;
        return;
      }
      for (int k = ss; k <= se; k++) {
        int rs = decode(c.ac);
        int r = rs >> 4;
        int s = rs & 15;
        if (s != 0) {
          k += r;
          z[off + NATURAL[k]] = (short) (extend(bits(s), s) * (1 << al));
        } else if (r == 15) {
          k += 15;
        } else {
          eobrun = (1 << r) - 1;
          if (r > 0) eobrun += bits(r);
          break;
        }
      }
      return;
    }
    // AC refinement
    int p1 = 1 << al;
    int m1 = -1 << al;
    int k = ss;
    if (eobrun == 0) {
      for (; k <= se; k++) {
        int rs = decode(c.ac);
        int r = rs >> 4;
        int s = rs & 15;
        if (s != 0) {
          if (s != 1) throw new Unsupported("bad refinement value");
          s = bit() != 0 ? p1 : m1;
        } else if (r != 15) {
          eobrun = 1 << r;
          if (r > 0) eobrun += bits(r);
          break;
        }
        do {
          int idx = off + NATURAL[k];
          if (z[idx] != 0) {
            if (bit() != 0 && (z[idx] & p1) == 0) z[idx] += (short) (z[idx] >= 0 ? p1 : m1);
          } else {
            if (--r < 0) break;
          }
          k++;
        } while (k <= se);
        if (s != 0) {
          if (k > 63) throw new Unsupported("refinement past the block");
          z[off + NATURAL[k]] = (short) s;
        }
      }
    }
    if (eobrun > 0) {
      for (; k <= se; k++) {
        int idx = off + NATURAL[k];
        if (z[idx] != 0 && bit() != 0 && (z[idx] & p1) == 0) z[idx] += (short) (z[idx] >= 0 ? p1 : m1);
      }
      eobrun--;
    }
  }

  // ------------------------------------------------------------------ IDCT (libjpeg ISLOW)

  private static final int CONST_BITS = 13;
  private static final int PASS1_BITS = 2;
  private static final int FIX_0_298631336 = 2446;
  private static final int FIX_0_390180644 = 3196;
  private static final int FIX_0_541196100 = 4433;
  private static final int FIX_0_765366865 = 6270;
  private static final int FIX_0_899976223 = 7373;
  private static final int FIX_1_175875602 = 9633;
  private static final int FIX_1_501321110 = 12299;
  private static final int FIX_1_847759065 = 15137;
  private static final int FIX_1_961570560 = 16069;
  private static final int FIX_2_053119869 = 16819;
  private static final int FIX_2_562915447 = 20995;
  private static final int FIX_3_072711026 = 25172;

  /** libjpeg's range limit for IDCT output: the value masked to 10 bits, then clamped around 128. */
  private static int limit(int x) {
    return RANGE_LIMIT[x & 1023];
  }

  /** {@link #limit} as a table (libjpeg's idct_range_limit), read-only after class init. */
  private static final int[] RANGE_LIMIT = new int[1024];

  /** Clamp to 0..255 for colour conversion, indexed by value + 384 (values -384..639). */
  private static final byte[] CLAMP = new byte[1024];

  static {
    for (int m = 0; m < 1024; m++) {
      RANGE_LIMIT[m] = m < 128 ? m + 128 : m < 512 ? 255 : m < 896 ? 0 : m - 896;
      int v = m - 384;
      CLAMP[m] = (byte) (v < 0 ? 0 : v > 255 ? 255 : v);
    }
  }

  /** Dequantises and inverse-transforms one block into {@code out} (stride {@code stride}). */
  private static void idct(short[] z, int off, int[] q, int[] ws, byte[] out, int outOff, int stride) {
    for (int col = 0; col < 8; col++) {
      int i = off + col;
      if (z[i + 8] == 0 && z[i + 16] == 0 && z[i + 24] == 0 && z[i + 32] == 0 && z[i + 40] == 0 && z[i + 48] == 0 && z[i + 56] == 0) {
        int dc = (z[i] * q[col]) << PASS1_BITS;
        for (int r = 0; r < 8; r++) ws[r * 8 + col] = dc;
        continue;
      }
      long z2 = z[i + 16] * q[col + 16];
      long z3 = z[i + 48] * q[col + 48];
      long z1 = (z2 + z3) * FIX_0_541196100;
      long tmp2 = z1 + z3 * -FIX_1_847759065;
      long tmp3 = z1 + z2 * FIX_0_765366865;
      z2 = z[i] * q[col];
      z3 = z[i + 32] * q[col + 32];
      long tmp0 = (z2 + z3) << CONST_BITS;
      long tmp1 = (z2 - z3) << CONST_BITS;
      long tmp10 = tmp0 + tmp3;
      long tmp13 = tmp0 - tmp3;
      long tmp11 = tmp1 + tmp2;
      long tmp12 = tmp1 - tmp2;
      tmp0 = z[i + 56] * q[col + 56];
      tmp1 = z[i + 40] * q[col + 40];
      tmp2 = z[i + 24] * q[col + 24];
      tmp3 = z[i + 8] * q[col + 8];
      z1 = tmp0 + tmp3;
      z2 = tmp1 + tmp2;
      z3 = tmp0 + tmp2;
      long z4 = tmp1 + tmp3;
      long z5 = (z3 + z4) * FIX_1_175875602;
      tmp0 = tmp0 * FIX_0_298631336;
      tmp1 = tmp1 * FIX_2_053119869;
      tmp2 = tmp2 * FIX_3_072711026;
      tmp3 = tmp3 * FIX_1_501321110;
      z1 = z1 * -FIX_0_899976223;
      z2 = z2 * -FIX_2_562915447;
      z3 = z3 * -FIX_1_961570560;
      z4 = z4 * -FIX_0_390180644;
      z3 += z5;
      z4 += z5;
      tmp0 += z1 + z3;
      tmp1 += z2 + z4;
      tmp2 += z2 + z3;
      tmp3 += z1 + z4;
      int sh = CONST_BITS - PASS1_BITS;
      long rnd = 1L << (sh - 1);
      ws[col] = (int) ((tmp10 + tmp3 + rnd) >> sh);
      ws[56 + col] = (int) ((tmp10 - tmp3 + rnd) >> sh);
      ws[8 + col] = (int) ((tmp11 + tmp2 + rnd) >> sh);
      ws[48 + col] = (int) ((tmp11 - tmp2 + rnd) >> sh);
      ws[16 + col] = (int) ((tmp12 + tmp1 + rnd) >> sh);
      ws[40 + col] = (int) ((tmp12 - tmp1 + rnd) >> sh);
      ws[24 + col] = (int) ((tmp13 + tmp0 + rnd) >> sh);
      ws[32 + col] = (int) ((tmp13 - tmp0 + rnd) >> sh);
    }
    int sh = CONST_BITS + PASS1_BITS + 3;
    long rnd = 1L << (sh - 1);
    for (int row = 0; row < 8; row++) {
      int w = row * 8;
      int o = outOff + row * stride;
      if (ws[w + 1] == 0 && ws[w + 2] == 0 && ws[w + 3] == 0 && ws[w + 4] == 0 && ws[w + 5] == 0 && ws[w + 6] == 0 && ws[w + 7] == 0) {
        byte v = (byte) limit((ws[w] + (1 << (PASS1_BITS + 2))) >> (PASS1_BITS + 3));
        for (int c = 0; c < 8; c++) out[o + c] = v;
        continue;
      }
      long z2 = ws[w + 2];
      long z3 = ws[w + 6];
      long z1 = (z2 + z3) * FIX_0_541196100;
      long tmp2 = z1 + z3 * -FIX_1_847759065;
      long tmp3 = z1 + z2 * FIX_0_765366865;
      long tmp0 = ((long) ws[w] + ws[w + 4]) << CONST_BITS;
      long tmp1 = ((long) ws[w] - ws[w + 4]) << CONST_BITS;
      long tmp10 = tmp0 + tmp3;
      long tmp13 = tmp0 - tmp3;
      long tmp11 = tmp1 + tmp2;
      long tmp12 = tmp1 - tmp2;
      tmp0 = ws[w + 7];
      tmp1 = ws[w + 5];
      tmp2 = ws[w + 3];
      tmp3 = ws[w + 1];
      z1 = tmp0 + tmp3;
      z2 = tmp1 + tmp2;
      z3 = tmp0 + tmp2;
      long z4 = tmp1 + tmp3;
      long z5 = (z3 + z4) * FIX_1_175875602;
      tmp0 = tmp0 * FIX_0_298631336;
      tmp1 = tmp1 * FIX_2_053119869;
      tmp2 = tmp2 * FIX_3_072711026;
      tmp3 = tmp3 * FIX_1_501321110;
      z1 = z1 * -FIX_0_899976223;
      z2 = z2 * -FIX_2_562915447;
      z3 = z3 * -FIX_1_961570560;
      z4 = z4 * -FIX_0_390180644;
      z3 += z5;
      z4 += z5;
      tmp0 += z1 + z3;
      tmp1 += z2 + z4;
      tmp2 += z2 + z3;
      tmp3 += z1 + z4;
      out[o] = (byte) limit((int) ((tmp10 + tmp3 + rnd) >> sh));
      out[o + 7] = (byte) limit((int) ((tmp10 - tmp3 + rnd) >> sh));
      out[o + 1] = (byte) limit((int) ((tmp11 + tmp2 + rnd) >> sh));
      out[o + 6] = (byte) limit((int) ((tmp11 - tmp2 + rnd) >> sh));
      out[o + 2] = (byte) limit((int) ((tmp12 + tmp1 + rnd) >> sh));
      out[o + 5] = (byte) limit((int) ((tmp12 - tmp1 + rnd) >> sh));
      out[o + 3] = (byte) limit((int) ((tmp13 + tmp0 + rnd) >> sh));
      out[o + 4] = (byte) limit((int) ((tmp13 - tmp0 + rnd) >> sh));
    }
  }

  // ------------------------------------------------------------------ rendering

  /** IDCT of every block of a component into a plane of bufBlocksW*8 x bufBlocksH*8 samples. */
  private byte[] plane(Component c) throws Unsupported {
    int[] q = qt[c.tq];
    if (q == null) throw new Unsupported("missing quantisation table");
    int stride = c.bufBlocksW * 8;
    byte[] p = new byte[stride * c.bufBlocksH * 8];
    int[] ws = new int[64];
    // Only the blocks that cover real samples are rendered; libjpeg renders those too.
    for (int by = 0; by < c.blocksH; by++) {
      for (int bx = 0; bx < c.blocksW; bx++) {
        idct(c.coefs, (by * c.bufBlocksW + bx) * 64, q, ws, p, by * 8 * stride + bx * 8, stride);
      }
    }
    return p;
  }

  /** The upsampled component: width x height samples, as libjpeg-turbo's upsampler makes them. */
  private byte[] upsample(Component c, byte[] p) throws Unsupported {
    int stride = c.bufBlocksW * 8;
    int hr = maxH / c.h;
    int vr = maxV / c.v;
    if (maxH % c.h != 0 || maxV % c.v != 0) throw new Unsupported("non-integral sampling ratio");
    byte[] out = new byte[width * height];
    int dw = c.dsWidth;
    int dh = c.dsHeight;
    if (hr == 1 && vr == 1) {
      for (int y = 0; y < height; y++) System.arraycopy(p, y * stride, out, y * width, width);
      return out;
    }
    boolean fancyH = dw > 2;
    if (hr == 2 && vr == 1 && fancyH) {
      byte[] row = new byte[2 * dw];
      for (int y = 0; y < height; y++) {
        int in = y * stride;
        int o = 0;
        int v = p[in] & 0xff;
        row[o++] = (byte) v;
        row[o++] = (byte) ((v * 3 + (p[in + 1] & 0xff) + 2) >> 2);
        for (int x = 1; x < dw - 1; x++) {
          int t = (p[in + x] & 0xff) * 3;
          row[o++] = (byte) ((t + (p[in + x - 1] & 0xff) + 1) >> 2);
          row[o++] = (byte) ((t + (p[in + x + 1] & 0xff) + 2) >> 2);
        }
        v = p[in + dw - 1] & 0xff;
        row[o++] = (byte) ((v * 3 + (p[in + dw - 2] & 0xff) + 1) >> 2);
        row[o] = (byte) v;
        System.arraycopy(row, 0, out, y * width, width);
      }
      return out;
    }
    if (hr == 2 && vr == 2 && fancyH) {
      byte[] row = new byte[2 * dw];
      for (int y = 0; y < height; y++) {
        int r = y >> 1;
        // The row above for even output rows, below for odd ones; the image's first and last
        // real rows stand in for the missing neighbours.
        int far = (y & 1) == 0 ? Math.max(r - 1, 0) : Math.min(r + 1, dh - 1);
        int in0 = r * stride;
        int in1 = far * stride;
        int o = 0;
        int thiscolsum = (p[in0] & 0xff) * 3 + (p[in1] & 0xff);
        int nextcolsum = (p[in0 + 1] & 0xff) * 3 + (p[in1 + 1] & 0xff);
        row[o++] = (byte) ((thiscolsum * 4 + 8) >> 4);
        row[o++] = (byte) ((thiscolsum * 3 + nextcolsum + 7) >> 4);
        int lastcolsum = thiscolsum;
        thiscolsum = nextcolsum;
        for (int x = 2; x < dw; x++) {
          nextcolsum = (p[in0 + x] & 0xff) * 3 + (p[in1 + x] & 0xff);
          row[o++] = (byte) ((thiscolsum * 3 + lastcolsum + 8) >> 4);
          row[o++] = (byte) ((thiscolsum * 3 + nextcolsum + 7) >> 4);
          lastcolsum = thiscolsum;
          thiscolsum = nextcolsum;
        }
        row[o++] = (byte) ((thiscolsum * 3 + lastcolsum + 8) >> 4);
        row[o] = (byte) ((thiscolsum * 4 + 7) >> 4);
        System.arraycopy(row, 0, out, y * width, width);
      }
      return out;
    }
    if (hr == 1 && vr == 2) {
      for (int y = 0; y < height; y++) {
        int r = y >> 1;
        int far = (y & 1) == 0 ? Math.max(r - 1, 0) : Math.min(r + 1, dh - 1);
        int bias = (y & 1) == 0 ? 1 : 2;
        int in0 = r * stride;
        int in1 = far * stride;
        int o = y * width;
        for (int x = 0; x < width; x++) out[o + x] = (byte) (((p[in0 + x] & 0xff) * 3 + (p[in1 + x] & 0xff) + bias) >> 2);
      }
      return out;
    }
    // Replication (libjpeg's int_upsample and the plain h2v1/h2v2 for narrow images).
    for (int y = 0; y < height; y++) {
      int in = (y / vr) * stride;
      int o = y * width;
      for (int x = 0; x < width; x++) out[o + x] = p[in + x / hr];
    }
    return out;
  }

  private byte[] render(boolean ycc) throws Unsupported {
    if (comps.length == 1) {
      Component c = comps[0];
      byte[] p = plane(c);
      int stride = c.bufBlocksW * 8;
      byte[] out = new byte[width * height];
      for (int y = 0; y < height; y++) System.arraycopy(p, y * stride, out, y * width, width);
      return out;
    }
    // Full-resolution components are read straight from their IDCT planes; the others from their
    // upsampled copies. Colour conversion and interleaving happen in one pass.
    byte[][] src = new byte[3][];
    int[] stride = new int[3];
    for (int i = 0; i < 3; i++) {
      Component c = comps[i];
      byte[] p = plane(c);
      if (c.h == maxH && c.v == maxV) {
        src[i] = p;
        stride[i] = c.bufBlocksW * 8;
      } else {
        src[i] = upsample(c, p);
        stride[i] = width;
      }
    }
    byte[] rgb = new byte[width * height * 3];
    byte[] s0 = src[0];
    byte[] s1 = src[1];
    byte[] s2 = src[2];
    int[] crR = JpegH1v2.CR_R;
    int[] cbB = JpegH1v2.CB_B;
    int[] crG = JpegH1v2.CR_G;
    int[] cbG = JpegH1v2.CB_G;
    int o = 0;
    for (int y = 0; y < height; y++) {
      int p0 = y * stride[0];
      int p1 = y * stride[1];
      int p2 = y * stride[2];
      if (!ycc) {
        for (int x = 0; x < width; x++, o += 3) {
          rgb[o] = s0[p0 + x];
          rgb[o + 1] = s1[p1 + x];
          rgb[o + 2] = s2[p2 + x];
        }
        continue;
      }
      for (int x = 0; x < width; x++, o += 3) {
        int yy = (s0[p0 + x] & 0xff) + 384;
        int cb = s1[p1 + x] & 0xff;
        int cr = s2[p2 + x] & 0xff;
        rgb[o] = CLAMP[yy + crR[cr]];
        rgb[o + 1] = CLAMP[yy + ((cbG[cb] + crG[cr]) >> JpegH1v2.SCALEBITS)];
        rgb[o + 2] = CLAMP[yy + cbB[cb]];
      }
    }
    return rgb;
  }
}
