package dev.jclip.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.awt.image.BufferedImage;
import java.awt.image.IndexColorModel;
import java.awt.image.WritableRaster;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import javax.imageio.IIOImage;
import javax.imageio.ImageIO;
import javax.imageio.ImageWriteParam;
import javax.imageio.ImageWriter;
import javax.imageio.stream.MemoryCacheImageOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * TIFF decoding against an independent expectation: files built byte by byte by {@link TestTiff}
 * (every supported photometric, bit depth, compression the test can write, predictor, byte order,
 * strips and tiles, planar configuration, fill order) and by the JDK's own TIFF writer (LZW,
 * Deflate, PackBits, CCITT, tiles, both byte orders), decoded and compared sample by sample with the
 * source samples put through Pillow 9.4's unpacking rules (written here from its OPEN_INFO table and
 * Unpack.c, and checked against Pillow itself by {@link ImageDecoderTiffPillowTest}). Then refusals,
 * the pixel limit, truncation and corruption.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ImageDecoderTiffTest {
  private final ImageDecoder decoder = new ImageDecoder();

  /** A file and the Pillow image it must decode to. */
  record Case(String name, byte[] file, String mode, int width, int height, byte[] pixels, byte[] palette) {}

  // ---- the expectation: stored samples through Pillow's unpackers ----

  /** Sample {@code i} of a packed MSB-first row of {@code depth}-bit samples. */
  static int sample(byte[] row, int i, int depth) {
    long bit = (long) i * depth;
    int v = row[(int) (bit >> 3)] & 0xff;
    return (v >> (8 - depth - (int) (bit & 7))) & ((1 << depth) - 1);
  }

  /**
   * The Pillow pixels of a TestTiff's stored samples: "1" 0/255, L;2 x85, L;4 x17, MinIsWhite
   * inverted, P indices, 8-bit samples as stored, 16-bit ones by their high byte, associated alpha
   * un-premultiplied, unspecified extra samples after RGB, RGBA or CMYK dropped (Pillow's RGBX is
   * jclip's RGB), signed 16-bit and 32-bit gray as 32-bit integers (mode I, little-endian bytes).
   */
  static Case expect(String name, TestTiff t, byte[] src) {
    int w = t.width, h = t.height, depth = t.bits[0], spp = t.samples();
    int rb = (w * depth * spp + 7) / 8;
    boolean inverted = t.photometric == 0;
    int first = t.extraSamples.length > 0 ? t.extraSamples[0] : spp == 4 ? 2 : -1;
    String mode = switch (t.photometric) {
      case 0, 1 -> depth >= 16 ? "I" : spp == 2 ? "LA" : depth == 1 ? "1" : "L";
      case 2 -> spp == 3 || first == 0 ? "RGB" : "RGBA";
      case 3 -> "P";
      case 5 -> "CMYK";
      default -> throw new IllegalArgumentException();
    };
    int keep = switch (mode) {
      case "RGB" -> 3;
      case "RGBA", "CMYK" -> 4;
      case "I" -> 4; // bytes of one int
      default -> spp;
    };
    byte[] px = new byte[w * h * keep];
    java.nio.ByteBuffer in = java.nio.ByteBuffer.wrap(src).order(t.order);
    java.nio.ByteBuffer out = java.nio.ByteBuffer.wrap(px).order(ByteOrder.LITTLE_ENDIAN);
    for (int y = 0; y < h; y++) {
      byte[] row = Arrays.copyOfRange(src, y * rb, (y + 1) * rb);
      for (int x = 0; x < w; x++) {
        for (int k = 0; k < spp; k++) {
          int i = x * spp + k, o = (y * w + x) * keep + k;
          if (mode.equals("I")) {
            int v = depth == 16 ? in.getShort(y * rb + 2 * i) : in.getInt(y * rb + 4 * i);
            out.putInt((y * w + x) * 4, v);
            continue;
          }
          if (k >= keep) continue;
          int v = depth == 16 ? (in.getShort(y * rb + 2 * i) & 0xffff) >> 8 : sample(row, i, depth);
          if (t.photometric <= 1 && depth <= 8) {
            v = v * 255 / ((1 << depth) - 1);
            if (inverted) v = 255 - v;
          }
          px[o] = (byte) v;
        }
      }
    }
    if (t.photometric == 2 && first == 1) {
      for (int p = 0; p < px.length; p += 4) {
        int a = px[p + 3] & 0xff;
        for (int c = 0; c < 3; c++) {
          int v = px[p + c] & 0xff;
          px[p + c] = (byte) (a == 0 ? 0 : Math.min(255, v * 255 / a));
        }
      }
    }
    byte[] pal = null;
    if (t.photometric == 3) {
      int n = 1 << depth;
      pal = new byte[3 * n];
      for (int i = 0; i < n; i++) for (int c = 0; c < 3; c++) pal[3 * i + c] = (byte) (t.colorMap[c * n + i] / 256);
    }
    return new Case(name, t.build(), mode, w, h, px, pal);
  }

  static void check(ImageDecoder decoder, Case c) {
    DecodedImage im;
    try {
      im = decoder.decode(Path.of(c.name), c.file);
    } catch (ImageDecodeException e) {
      throw new AssertionError(c.name + ": " + e.getMessage(), e);
    }
    assertEquals(c.mode, im.mode().pillowName(), c.name);
    assertEquals("TIFF", im.format(), c.name);
    assertEquals(c.width, im.width(), c.name);
    assertEquals(c.height, im.height(), c.name);
    byte[] got = im.numpyBytes();
    if (!Arrays.equals(c.pixels, got)) {
      int i = Arrays.mismatch(c.pixels, got);
      fail(c.name + ": pixel bytes differ, first at byte " + i + " (" + (c.pixels[i] & 0xff) + " expected, " + (got[i] & 0xff) + " decoded)");
    }
    if (c.palette != null) assertArrayEquals(c.palette, Arrays.copyOf(im.palette(), c.palette.length), c.name + " palette");
  }

  /** The kinds the decoder supports, as TestTiff files with random samples (and random colour maps). */
  static List<Case> builtCases(Random r) {
    List<Case> cases = new ArrayList<>();
    int[][] sizes = {{1, 1}, {37, 23}, {64, 32}, {70, 33}, {5, 97}};
    // photometric, bits..., extra sample (or -1)
    int[][] kinds = {
      {1, 8, -1}, {0, 8, -1}, {1, 1, -1}, {0, 1, -1}, {1, 4, -1}, {0, 2, -1}, {1, 2, -1}, {0, 4, -1},
      {3, 8, -1}, {3, 4, -1}, {3, 2, -1}, {3, 1, -1},
      {2, 8, 8, 8, -1}, {2, 8, 8, 8, 8, 2}, {2, 8, 8, 8, 8, -1}, {2, 8, 8, 8, 8, 1}, {2, 8, 8, 8, 8, 999},
      {1, 8, 8, 2}, {5, 8, 8, 8, 8, -1},
    };
    int[] compressions = {TestTiff.NONE, TestTiff.PACKBITS, TestTiff.DEFLATE, TestTiff.ADOBE_DEFLATE};
    int n = 0;
    for (int[] k : kinds) {
      for (int comp : compressions) {
        int[] size = sizes[n++ % sizes.length];
        int w = size[0], h = size[1];
        int[] bits = Arrays.copyOfRange(k, 1, k.length - 1);
        TestTiff t = new TestTiff(w, h, k[0], bits);
        if (k[k.length - 1] >= 0) t.extraSamples = new int[] {k[k.length - 1]};
        t.compression = comp;
        t.order = r.nextBoolean() ? ByteOrder.LITTLE_ENDIAN : ByteOrder.BIG_ENDIAN;
        int depth = bits[0];
        // Deflate with the horizontal predictor (8-bit only), strips of a few rows or tiles.
        if (depth == 8 && (comp == TestTiff.DEFLATE || comp == TestTiff.ADOBE_DEFLATE) && r.nextBoolean()) t.predictor = 2;
        stripsOrTiles(t, r);
        // Separate planes where Pillow reads them as stored: RGB, RGBA with ExtraSamples 2, CMYK.
        boolean planar = (k[0] == 2 && (bits.length == 3 || k[k.length - 1] == 2)) || k[0] == 5;
        if (planar && r.nextInt(3) == 0) t.planar = 2;
        // Fill order 2 where Pillow's table has it (1/2/4/8-bit gray and palette, 8-bit RGB) and,
        // uncompressed, its unpackers too (not L;IR, P;1R, P;2R, P;4R).
        boolean fill2 = bits.length == 1 || (bits.length == 3 && k[0] == 2);
        if (comp == TestTiff.NONE && ((k[0] == 0 && bits[0] == 8) || (k[0] == 3 && bits[0] < 8))) fill2 = false;
        if (fill2 && r.nextInt(4) == 0) t.fillOrder = 2;
        if (k[0] == 3) {
          t.colorMap = new int[3 << depth];
          for (int i = 0; i < t.colorMap.length; i++) t.colorMap[i] = r.nextInt(65536);
        }
        byte[] src = new byte[h * ((w * depth * bits.length + 7) / 8)];
        r.nextBytes(src);
        if (k[0] == 3 && depth == 8) {
          // Palette indices beyond a short palette are not the point here.
          for (int i = 0; i < src.length; i++) src[i] &= (byte) 0x7f;
        }
        t.pixels(src);
        String name = "built-" + kindName(k) + "-c" + comp + (t.predictor == 2 ? "-pred" : "") + (t.tileWidth > 0 ? "-tiles" : t.rowsPerStrip > 0 ? "-strips" : "")
            + (t.planar == 2 ? "-planar" : "") + (t.fillOrder == 2 ? "-fill2" : "") + (t.order == ByteOrder.BIG_ENDIAN ? "-mm" : "-ii") + "-" + w + "x" + h + ".tif";
        cases.add(expect(name, t, src));
      }
    }
    return cases;
  }

  /** A kind of wide or extra-sample TIFF: photometric, SampleFormat, bits, extra samples. */
  record Wide(String name, int photometric, int format, int bits, int samples, int[] extra, boolean littleOnly) {
    TestTiff tiff(int w, int h) {
      int[] b = new int[samples];
      Arrays.fill(b, bits);
      TestTiff t = new TestTiff(w, h, photometric, b);
      t.extraSamples = extra;
      t.sampleFormat = format;
      return t;
    }
  }

  /** The 16-bit, 32-bit integer and extra-sample kinds Pillow 9.4 opens, as the oracle showed. */
  static final List<Wide> WIDE = List.of(
      new Wide("rgb16", 2, 1, 16, 3, new int[] {}, false),
      new Wide("rgba16-noextra", 2, 1, 16, 4, new int[] {}, false),
      new Wide("rgba16", 2, 1, 16, 4, new int[] {2}, false),
      new Wide("rgba16-assoc", 2, 1, 16, 4, new int[] {1}, false),
      new Wide("rgbx16", 2, 1, 16, 4, new int[] {0}, false),
      new Wide("cmyk16", 5, 1, 16, 4, new int[] {}, true),
      new Wide("rgbx", 2, 1, 8, 4, new int[] {0}, false),
      new Wide("rgbxx", 2, 1, 8, 5, new int[] {0, 0}, false),
      new Wide("rgbxxx", 2, 1, 8, 6, new int[] {0, 0, 0}, false),
      new Wide("rgbax", 2, 1, 8, 5, new int[] {2, 0}, false),
      new Wide("rgbaxx", 2, 1, 8, 6, new int[] {2, 0, 0}, false),
      new Wide("rgbax-assoc", 2, 1, 8, 5, new int[] {1, 0}, false),
      new Wide("rgbaxx-assoc", 2, 1, 8, 6, new int[] {1, 0, 0}, false),
      new Wide("cmykx", 5, 1, 8, 5, new int[] {0}, false),
      new Wide("cmykxx", 5, 1, 8, 6, new int[] {0, 0}, false),
      new Wide("int16s", 1, 2, 16, 1, new int[] {}, false),
      new Wide("int32s", 1, 2, 32, 1, new int[] {}, false),
      new Wide("int32u", 1, 1, 32, 1, new int[] {}, true));

  /**
   * Every {@link #WIDE} kind in every compression TestTiff writes (uncompressed, LZW, PackBits,
   * Deflate, Adobe Deflate), each kind in both byte orders where Pillow reads both, with and without
   * the predictor on LZW and Deflate (alternating by compression and kind), strips or tiles; random
   * samples (alpha 0 and 255 among them, 32-bit integers over their whole range).
   */
  static List<Case> wideCases(Random r) {
    List<Case> cases = new ArrayList<>();
    int[][] sizes = {{1, 1}, {37, 23}, {64, 32}, {70, 33}, {5, 97}, {300, 20}};
    int[] compressions = {TestTiff.NONE, TestTiff.LZW, TestTiff.PACKBITS, TestTiff.DEFLATE, TestTiff.ADOBE_DEFLATE};
    int n = 0;
    for (int ki = 0; ki < WIDE.size(); ki++) {
      Wide k = WIDE.get(ki);
      for (int ci = 0; ci < compressions.length; ci++) {
        int comp = compressions[ci];
        int[] size = sizes[n++ % sizes.length];
        int w = size[0], h = size[1];
        TestTiff t = k.tiff(w, h);
        t.compression = comp;
        // Pillow reads compressed big-endian 32-bit gray byte-swapped (refused, see the oracle's
        // wideEdgeCases), so those are uncompressed.
        boolean mm = !k.littleOnly && (k.bits == 32 ? comp == TestTiff.NONE : (ki + ci) % 2 == 1);
        t.order = mm ? ByteOrder.BIG_ENDIAN : ByteOrder.LITTLE_ENDIAN;
        if (comp != TestTiff.NONE && comp != TestTiff.PACKBITS && (ki + ci) % 2 == 0) t.predictor = 2;
        stripsOrTiles(t, r);
        byte[] src = new byte[h * w * k.samples * k.bits / 8];
        r.nextBytes(src);
        if (k.extra.length > 0 && k.extra[0] != 0 && k.bits == 8) {
          // Some alpha 0 and 255, the un-premultiply's special cases.
          for (int i = 3; i < src.length; i += k.samples) if (r.nextInt(4) == 0) src[i] = (byte) (r.nextBoolean() ? 0 : 255);
        }
        t.pixels(src);
        String name = "wide-" + k.name + "-c" + comp + (t.predictor == 2 ? "-pred" : "") + (t.tileWidth > 0 ? "-tiles" : t.rowsPerStrip > 0 ? "-strips" : "")
            + (t.order == ByteOrder.BIG_ENDIAN ? "-mm" : "-ii") + "-" + w + "x" + h + ".tif";
        cases.add(expect(name, t, src));
      }
    }
    return cases;
  }

  @Test
  void wideAndExtraSampleFilesDecodeToPillowsUnpackingOfTheirSamples() {
    List<Case> cases = wideCases(new Random(31));
    for (Case c : cases) check(decoder, c);
    assertEquals(WIDE.size() * 5, cases.size());
  }

  static String kindName(int[] k) {
    StringBuilder b = new StringBuilder("p" + k[0] + "-");
    for (int i = 1; i < k.length - 1; i++) b.append(i > 1 ? "." : "").append(k[i]);
    if (k[k.length - 1] >= 0) b.append("-x").append(k[k.length - 1]);
    return b.toString();
  }

  @Test
  void builtFilesDecodeToPillowsUnpackingOfTheirSamples() {
    List<Case> cases = builtCases(new Random(11));
    for (Case c : cases) check(decoder, c);
    assertEquals(19 * 4, cases.size());
  }

  // ---- files from the JDK's TIFF writer ----

  static ImageWriter jdkWriter() {
    Iterator<ImageWriter> it = ImageIO.getImageWritersByFormatName("tiff");
    while (it.hasNext()) {
      ImageWriter w = it.next();
      if (w.getClass().getName().startsWith("com.sun.imageio.plugins.tiff.")) return w;
    }
    throw new IllegalStateException("the JDK's TIFF writer is missing");
  }

  static byte[] jdkTiff(BufferedImage im, String compression, boolean tiles, ByteOrder order) throws IOException {
    ImageWriter w = jdkWriter();
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (MemoryCacheImageOutputStream out = new MemoryCacheImageOutputStream(bytes)) {
      out.setByteOrder(order);
      w.setOutput(out);
      ImageWriteParam p = w.getDefaultWriteParam();
      if (compression != null) {
        p.setCompressionMode(ImageWriteParam.MODE_EXPLICIT);
        p.setCompressionType(compression);
      }
      if (tiles) {
        p.setTilingMode(ImageWriteParam.MODE_EXPLICIT);
        p.setTiling(32, 16, 0, 0);
      }
      w.write(null, new IIOImage(im, null, null), p);
    } finally {
      w.dispose();
    }
    return bytes.toByteArray();
  }

  /** The source images the JDK writer gets, each with the Pillow mode and pixels expected back. */
  static List<Object[]> jdkSources(Random r, int w, int h) {
    List<Object[]> out = new ArrayList<>();
    BufferedImage rgb = new BufferedImage(w, h, BufferedImage.TYPE_3BYTE_BGR);
    BufferedImage rgba = new BufferedImage(w, h, BufferedImage.TYPE_4BYTE_ABGR);
    BufferedImage gray = new BufferedImage(w, h, BufferedImage.TYPE_BYTE_GRAY);
    BufferedImage bw = new BufferedImage(w, h, BufferedImage.TYPE_BYTE_BINARY);
    byte[] pr = new byte[256], pg = new byte[256], pb = new byte[256];
    r.nextBytes(pr);
    r.nextBytes(pg);
    r.nextBytes(pb);
    BufferedImage indexed = new BufferedImage(w, h, BufferedImage.TYPE_BYTE_INDEXED, new IndexColorModel(8, 256, pr, pg, pb));
    for (BufferedImage im : new BufferedImage[] {rgb, rgba, gray, bw, indexed}) {
      WritableRaster ras = im.getRaster();
      int max = (1 << ras.getSampleModel().getSampleSize(0)) - 1;
      for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) for (int b = 0; b < ras.getNumBands(); b++) ras.setSample(x, y, b, r.nextInt(max + 1));
    }
    out.add(new Object[] {"rgb", rgb, "RGB", rasterBytes(rgb, 1)});
    out.add(new Object[] {"rgba", rgba, "RGBA", rasterBytes(rgba, 1)});
    out.add(new Object[] {"gray", gray, "L", rasterBytes(gray, 1)});
    out.add(new Object[] {"bilevel", bw, "1", rasterBytes(bw, 255)});
    out.add(new Object[] {"palette", indexed, "P", rasterBytes(indexed, 1)});
    return out;
  }

  static byte[] rasterBytes(BufferedImage im, int scale) {
    WritableRaster ras = im.getRaster();
    int n = ras.getNumBands();
    byte[] px = new byte[im.getWidth() * im.getHeight() * n];
    int i = 0;
    for (int y = 0; y < im.getHeight(); y++) for (int x = 0; x < im.getWidth(); x++) for (int b = 0; b < n; b++) px[i++] = (byte) (ras.getSample(x, y, b) * scale);
    return px;
  }

  static List<Case> jdkCases(Random r) throws IOException {
    List<Case> cases = new ArrayList<>();
    String[] compressions = {null, "LZW", "Deflate", "ZLib", "PackBits"};
    int n = 0;
    for (Object[] s : jdkSources(r, 45, 29)) {
      BufferedImage im = (BufferedImage) s[1];
      List<String> comps = new ArrayList<>(Arrays.asList(compressions));
      if (s[2].equals("1")) comps.addAll(List.of("CCITT RLE", "CCITT T.4", "CCITT T.6"));
      for (String comp : comps) {
        boolean tiles = n % 3 == 1;
        ByteOrder order = n % 2 == 0 ? ByteOrder.BIG_ENDIAN : ByteOrder.LITTLE_ENDIAN;
        n++;
        byte[] file = jdkTiff(im, comp, tiles, order);
        byte[] pal = null;
        if (im.getColorModel() instanceof IndexColorModel icm && s[2].equals("P")) {
          // The JDK writes ColorMap entries as v * 257; Pillow reads them back as v.
          pal = new byte[768];
          for (int i = 0; i < 256; i++) {
            pal[3 * i] = (byte) icm.getRed(i);
            pal[3 * i + 1] = (byte) icm.getGreen(i);
            pal[3 * i + 2] = (byte) icm.getBlue(i);
          }
        }
        String name = "jdk-" + s[0] + "-" + (comp == null ? "none" : comp.replace(' ', '_').replace('.', '_')) + (tiles ? "-tiles" : "")
            + (order == ByteOrder.BIG_ENDIAN ? "-mm" : "-ii") + ".tif";
        cases.add(new Case(name, file, (String) s[2], im.getWidth(), im.getHeight(), (byte[]) s[3], pal));
      }
    }
    return cases;
  }

  @Test
  void jdkWrittenFilesDecodeToTheirSourceRaster() throws IOException {
    List<Case> cases = jdkCases(new Random(12));
    for (Case c : cases) check(decoder, c);
    assertEquals(5 * 5 + 3, cases.size());
  }

  /**
   * Headers Pillow accepts besides "II*\0" and "MM\0*": the swapped "II\0*" and "MM*\0" on
   * uncompressed files, little-endian BigTIFF (uncompressed, LZW, Deflate, PackBits; strips and
   * tiles).
   */
  static List<Case> headerCases(Random r) {
    List<Case> cases = new ArrayList<>();
    int w = 41, h = 27;
    int n = 0;
    for (int[] k : new int[][] {{2, 8, 8, 8}, {1, 8}, {2, 16, 16, 16, 16}, {1, 1}}) {
      for (ByteOrder order : new ByteOrder[] {ByteOrder.LITTLE_ENDIAN, ByteOrder.BIG_ENDIAN}) {
        TestTiff t = new TestTiff(w, h, k[0], Arrays.copyOfRange(k, 1, k.length));
        t.order = order;
        t.rowsPerStrip = 5;
        t.signature = order == ByteOrder.LITTLE_ENDIAN ? new byte[] {'I', 'I', 0, 42} : new byte[] {'M', 'M', 42, 0};
        byte[] src = new byte[h * t.rowBytes(w)];
        r.nextBytes(src);
        cases.add(expect("header-swapped-" + n++ + (order == ByteOrder.BIG_ENDIAN ? "-mm" : "-ii") + ".tif", t.pixels(src), src));
      }
      for (int comp : new int[] {TestTiff.NONE, TestTiff.LZW, TestTiff.DEFLATE, TestTiff.PACKBITS}) {
        TestTiff t = new TestTiff(w, h, k[0], Arrays.copyOfRange(k, 1, k.length));
        t.bigTiff = true;
        t.compression = comp;
        if (n % 2 == 0) {
          t.tileWidth = 16;
          t.tileHeight = 32;
        } else {
          t.rowsPerStrip = 4;
        }
        if (comp == TestTiff.LZW && k[1] >= 8) t.predictor = 2;
        byte[] src = new byte[h * t.rowBytes(w)];
        r.nextBytes(src);
        cases.add(expect("header-bigtiff-" + n++ + "-c" + comp + ".tif", t.pixels(src), src));
      }
    }
    return cases;
  }

  @Test
  void swappedSignaturesAndLittleEndianBigTiffDecode() {
    List<Case> cases = headerCases(new Random(32));
    for (Case c : cases) check(decoder, c);
    assertEquals(4 * 6, cases.size());
    // The signatures are what the format sniffing goes by, and what it tells other formats by.
    for (String sig : new String[] {"II*\0", "MM\0*", "II\0*", "MM*\0", "II+\0", "MM\0+"}) {
      byte[] b = Arrays.copyOf(sig.getBytes(java.nio.charset.StandardCharsets.ISO_8859_1), 16);
      assertEquals(ImageDecoder.Format.TIFF, ImageDecoder.Format.sniff(b), sig);
    }
    assertEquals(null, ImageDecoder.Format.sniff(new byte[] {'I', 'I', 43, 43, 0, 0, 0, 0}));
    assertEquals(null, ImageDecoder.Format.sniff(new byte[] {'M', 'I', 0, 42, 0, 0, 0, 0}));
  }

  // ---- pages, tags Pillow ignores ----

  @Test
  void firstPageOnlyAndOrientationIgnored() throws IOException {
    Random r = new Random(13);
    byte[] first = new byte[20 * 10 * 3];
    byte[] second = new byte[8 * 8];
    r.nextBytes(first);
    r.nextBytes(second);
    TestTiff t = new TestTiff(20, 10, 2, 8, 8, 8).pixels(first);
    t.pages.add(new TestTiff(8, 8, 1, 8).pixels(second));
    Case c = expect("two-pages.tif", t, first);
    check(decoder, c);
    // Orientation 6 (rotate 90) and a bogus ICC profile pointer: Image.open ignores both.
    t.extraTags.put(274, new long[] {6});
    check(decoder, new Case("orientation-6.tif", t.build(), "RGB", 20, 10, first, null));
  }

  /** One strip, strips of 1-7 rows, or tiles of 16 or 32 pixels a side, at random. */
  private static void stripsOrTiles(TestTiff t, Random r) {
    switch (r.nextInt(3)) {
      case 0 -> {}
      case 1 -> t.rowsPerStrip = 1 + r.nextInt(7);
      default -> {
        t.tileWidth = 16 * (1 + r.nextInt(2));
        t.tileHeight = 16 * (1 + r.nextInt(2));
      }
    }
  }

  // ---- refusals ----

  private void refused(String name, byte[] file, String... phrases) {
    ImageDecodeException e = assertThrows(ImageDecodeException.class, () -> decoder.decode(Path.of(name), file), name);
    assertTrue(e.getMessage().startsWith(name + ": "), e.getMessage());
    for (String p : phrases) assertTrue(e.getMessage().contains(p), name + ": '" + p + "' not in: " + e.getMessage());
  }

  @Test
  void unsupportedKindsAreRefusedByName() {
    byte[] px = new byte[16 * 8 * 8];
    TestTiff t16 = new TestTiff(16, 8, 1, 16).pixels(px);
    refused("gray16.tif", t16.build(), "TIFF with 16-bit gray (Pillow's mode I;16:", "Resize fails on that mode", "is not supported", "8 and 16-bit RGB");
    TestTiff g16mm = new TestTiff(16, 8, 1, 16).pixels(px);
    g16mm.order = ByteOrder.BIG_ENDIAN;
    refused("gray16-mm.tif", g16mm.build(), "16-bit gray (Pillow's mode I;16B:");
    TestTiff rgb16fill2 = new TestTiff(16, 8, 2, 16, 16, 16).pixels(new byte[16 * 8 * 6]);
    rgb16fill2.fillOrder = 2;
    refused("rgb16-fill2.tif", rgb16fill2.build(), "Pillow 9.4 cannot open either", "fill order 2");
    TestTiff cmyk16mm = new TestTiff(4, 4, 5, 16, 16, 16, 16).pixels(new byte[4 * 4 * 8]);
    cmyk16mm.order = ByteOrder.BIG_ENDIAN;
    refused("cmyk16-mm.tif", cmyk16mm.build(), "Pillow 9.4 cannot open either", "big-endian");
    TestTiff rgb16planar = new TestTiff(4, 4, 2, 16, 16, 16);
    rgb16planar.planar = 2;
    refused("rgb16-planar.tif", rgb16planar.pixels(new byte[4 * 4 * 6]).build(), "16-bit samples in separate planes, uncompressed");
    TestTiff cmykxPlanar = new TestTiff(4, 4, 5, 8, 8, 8, 8, 8);
    cmykxPlanar.extraSamples = new int[] {0};
    cmykxPlanar.planar = 2;
    cmykxPlanar.compression = TestTiff.DEFLATE;
    refused("cmykx-planar.tif", cmykxPlanar.pixels(new byte[4 * 4 * 5]).build(), "in separate planes");
    TestTiff i32mm = new TestTiff(4, 4, 1, 32).pixels(new byte[4 * 4 * 4]);
    i32mm.sampleFormat = 2;
    i32mm.order = ByteOrder.BIG_ENDIAN;
    i32mm.compression = TestTiff.LZW;
    refused("int32-mm-lzw.tif", i32mm.build(), "big-endian 32-bit integer gray, compressed", "byte-swapped");
    TestTiff u32mm = new TestTiff(4, 4, 1, 32).pixels(new byte[4 * 4 * 4]);
    u32mm.order = ByteOrder.BIG_ENDIAN;
    refused("uint32-mm.tif", u32mm.build(), "Pillow 9.4 cannot open either");
    TestTiff f32 = new TestTiff(4, 4, 1, 32).pixels(new byte[4 * 4 * 4]);
    f32.sampleFormat = 3;
    refused("float.tif", f32.build(), "32-bit floating-point gray (Pillow's mode F");
    TestTiff f16 = new TestTiff(4, 4, 1, 16).pixels(new byte[4 * 4 * 2]);
    f16.sampleFormat = 3;
    refused("float16.tif", f16.build(), "floating-point samples");
    TestTiff pa = new TestTiff(4, 4, 3, 8, 8).pixels(new byte[32]);
    pa.extraSamples = new int[] {2};
    pa.colorMap = new int[768];
    refused("pa.tif", pa.build(), "palette with an alpha sample (Pillow's mode PA", "loses the palette");
    TestTiff swapped = new TestTiff(4, 4, 1, 8).pixels(new byte[16]);
    swapped.compression = TestTiff.DEFLATE;
    swapped.signature = new byte[] {'I', 'I', 0, 42};
    refused("swapped-deflate.tif", swapped.build(), "non-standard signature", "II\\0*", "compression 8");
    TestTiff s8 = new TestTiff(4, 4, 1, 8).pixels(new byte[16]);
    s8.sampleFormat = 2;
    refused("signed.tif", s8.build(), "signed integer samples");
    TestTiff ycc = new TestTiff(4, 4, 6, 8, 8, 8).pixels(new byte[48]);
    refused("ycbcr.tif", ycc.build(), "YCbCr");
    TestTiff jpeg = new TestTiff(4, 4, 2, 8, 8, 8).pixels(new byte[48]);
    refused("jpeg.tif", withCompression(jpeg, 7), "JPEG compression");
    refused("lzma.tif", withCompression(new TestTiff(4, 4, 1, 8).pixels(new byte[16]), 34925), "LZMA compression");
    TestTiff rgbax = new TestTiff(4, 4, 2, 8, 8, 8, 8, 8).pixels(new byte[80]);
    rgbax.extraSamples = new int[] {0, 2};
    refused("rgbx-then-alpha.tif", rgbax.build(), "Pillow 9.4 cannot open either");
    TestTiff corel = new TestTiff(4, 4, 2, 8, 8, 8, 8).pixels(new byte[64]);
    corel.extraSamples = new int[] {999};
    corel.planar = 2;
    refused("corel-planar.tif", corel.pixels(new byte[64]).build(), "RGBA with ExtraSamples 999 in separate planes");
    TestTiff laAssoc = new TestTiff(4, 4, 1, 8, 8).pixels(new byte[32]);
    laAssoc.extraSamples = new int[] {1};
    refused("la-associated.tif", laAssoc.build(), "Pillow 9.4 cannot open either");
    TestTiff lab = new TestTiff(4, 4, 8, 8, 8, 8).pixels(new byte[48]);
    refused("lab.tif", lab.build(), "L*a*b*");
    TestTiff noMap = new TestTiff(4, 4, 3, 8).pixels(new byte[16]);
    refused("no-colormap.tif", noMap.build(), "without a ColorMap");
    TestTiff laPlanar = new TestTiff(4, 4, 1, 8, 8);
    laPlanar.extraSamples = new int[] {2};
    laPlanar.planar = 2;
    laPlanar.compression = TestTiff.DEFLATE;
    refused("la-planar.tif", laPlanar.pixels(new byte[32]).build(), "gray+alpha in separate planes");
    TestTiff packPred = new TestTiff(4, 4, 2, 8, 8, 8).pixels(new byte[48]);
    packPred.compression = TestTiff.PACKBITS;
    packPred.predictor = 2;
    refused("packbits-predictor.tif", packPred.build(), "predictor on PackBits");
    TestTiff fill2 = new TestTiff(4, 4, 0, 8).pixels(new byte[16]);
    fill2.fillOrder = 2;
    refused("miniswhite-fill2.tif", fill2.build(), "Pillow 9.4 cannot open either");
    byte[] big = {'M', 'M', 0, 43, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16};
    refused("big.tif", big, "big-endian BigTIFF", "Pillow 9.4 cannot open them either");
  }

  /** The file with its Compression value replaced (the data stays uncompressed). */
  private static byte[] withCompression(TestTiff t, int compression) {
    t.extraTags.remove(259);
    byte[] b = t.build();
    // Find the Compression entry (tag 259, SHORT, count 1) and patch its value.
    boolean le = b[0] == 'I';
    int ifd = le ? (b[4] & 0xff) | (b[5] & 0xff) << 8 | (b[6] & 0xff) << 16 | (b[7] & 0xff) << 24 : (b[4] & 0xff) << 24 | (b[5] & 0xff) << 16 | (b[6] & 0xff) << 8 | (b[7] & 0xff);
    int n = le ? (b[ifd] & 0xff) | (b[ifd + 1] & 0xff) << 8 : (b[ifd] & 0xff) << 8 | (b[ifd + 1] & 0xff);
    for (int i = 0; i < n; i++) {
      int e = ifd + 2 + 12 * i;
      int tag = le ? (b[e] & 0xff) | (b[e + 1] & 0xff) << 8 : (b[e] & 0xff) << 8 | (b[e + 1] & 0xff);
      if (tag == 259) {
        b[e + 8] = (byte) (le ? compression : compression >> 8);
        b[e + 9] = (byte) (le ? compression >> 8 : compression);
      }
    }
    return b;
  }

  /**
   * Declared sizes whose product is beyond a long (classic TIFF's 2^32-1 squared) cannot wrap round
   * below the pixel limit, and a BigTIFF size beyond 32 bits is refused, not cut to its low bits
   * (such a file once decoded 20000x20000 pixels past the limit).
   */
  @Test
  void sizesWhoseProductOverflowsAreRefused() {
    TestTiff wrap = new TestTiff(2, 2, 1, 8).pixels(new byte[4]);
    wrap.declaredWidth = 0xFFFFFFFFL;
    wrap.declaredHeight = 0xFFFFFFFFL;
    refused("wrap.tif", wrap.build(), "4294967295x4294967295 = more than " + Long.MAX_VALUE + " pixels, above the limit");
    TestTiff big = new TestTiff(2, 2, 1, 8).pixels(new byte[4]);
    big.bigTiff = true;
    big.declaredWidth = (1L << 40) + 20000;
    big.declaredHeight = 107119L * (1L << 32) + 20000;
    refused("big-wrap.tif", big.build(), "tag 256 has the value " + ((1L << 40) + 20000) + ", beyond 32 bits");
    ImageDecodeException e = assertThrows(ImageDecodeException.class,
        () -> decoder.checkPixels(Path.of("x.tif"), ImageDecoder.Format.TIFF, 1L << 40, 107119L * (1L << 32) + 20000));
    assertTrue(e.getMessage().contains("above the limit"), e.getMessage());
  }

  /**
   * A 1 KB file declaring a large image under the pixel limit is refused as truncated before the
   * reader allocates it: its strips, at their compression's greatest expansion, cannot hold the
   * samples. (The 366 files of the Pillow oracle, truncated ones included, decide as before.)
   */
  @Test
  void dataThatCannotHoldTheImageIsRefusedBeforeAllocating() throws Exception {
    for (int compression : new int[] {TestTiff.NONE, TestTiff.DEFLATE, TestTiff.LZW, TestTiff.PACKBITS}) {
      TestTiff t = new TestTiff(4, 4, 2, 8, 8, 8).pixels(new byte[4 * 4 * 3]);
      t.compression = compression;
      t.declaredWidth = 8_323_095;
      t.declaredHeight = 17;
      byte[] file = t.build();
      long before = ((com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean()).getCurrentThreadAllocatedBytes();
      refused("big-" + compression + ".tif", file, "truncated TIFF file: its ", "cannot hold the 8323095x17 image's 424477845 bytes");
      long allocated = ((com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean()).getCurrentThreadAllocatedBytes() - before;
      assertTrue(allocated < 64 << 20, compression + ": " + allocated + " bytes allocated");
    }
    refused("nosamples.tif", new TestTiff(2, 2, 1).pixels(new byte[0]).build(), "0 samples per pixel");
  }

  @Test
  void pixelLimitIsCheckedFromTheIfd() {
    // A 30000x30000 header over one byte of data: refused before any pixel buffer exists.
    byte[] file = forgedHeader(30000, 30000);
    ImageDecodeException e = assertThrows(ImageDecodeException.class, () -> decoder.decode(Path.of("bomb.tif"), file));
    assertTrue(e.getMessage().contains("30000x30000") && e.getMessage().contains("limit") && e.getMessage().startsWith("bomb.tif: "), e.getMessage());
    // A small limit refuses an ordinary TIFF too, with the same message as other formats.
    Case c = expect("ok.tif", new TestTiff(40, 30, 1, 8).pixels(new byte[1200]), new byte[1200]);
    ImageDecodeException small = assertThrows(ImageDecodeException.class, () -> new ImageDecoder(1000).decode(Path.of("ok.tif"), c.file));
    assertTrue(small.getMessage().contains("1200 pixels, above the limit of 1000 (possible decompression bomb"), small.getMessage());
  }

  /** A little-endian TIFF whose IFD declares w x h 8-bit gray with one 1-byte strip. */
  static byte[] forgedHeader(long w, long h) {
    java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(8 + 2 + 8 * 12 + 4 + 2).order(ByteOrder.LITTLE_ENDIAN);
    b.put((byte) 'I').put((byte) 'I').putShort((short) 42).putInt(8);
    int[][] entries = {{256, 4, (int) w}, {257, 4, (int) h}, {258, 3, 8}, {259, 3, 1}, {262, 3, 1}, {273, 4, 8 + 2 + 8 * 12 + 4}, {278, 4, (int) h}, {279, 4, 1}};
    b.putShort((short) entries.length);
    for (int[] e : entries) {
      b.putShort((short) e[0]).putShort((short) e[1]).putInt(1);
      if (e[1] == 3) b.putShort((short) e[2]).putShort((short) 0);
      else b.putInt(e[2]);
    }
    b.putInt(0);
    return b.array();
  }

  // ---- damaged files ----

  /** An image or an ImageDecodeException naming the file: nothing else. */
  private void imageOrError(String name, byte[] file) {
    try {
      decoder.decode(Path.of(name), file);
    } catch (ImageDecodeException e) {
      assertTrue(e.getMessage().startsWith(name + ": "), e.getMessage());
    } catch (RuntimeException e) {
      throw new AssertionError(name + ": " + e, e);
    }
  }

  @Test
  @Timeout(value = 240, unit = TimeUnit.SECONDS)
  void truncatedFilesAreErrorsNeverOtherExceptions() throws IOException {
    Random r = new Random(14);
    List<Case> sources = new ArrayList<>();
    for (Case c : builtCases(new Random(15))) if (c.file.length > 300) sources.add(c);
    for (Case c : jdkCases(new Random(16))) if (c.file.length > 300) sources.add(c);
    for (Case c : wideCases(new Random(33))) if (c.file.length > 300) sources.add(c);
    for (Case c : headerCases(new Random(34))) if (c.file.length > 300) sources.add(c);
    int cuts = 0;
    for (int s = 0; s < sources.size(); s += 3) {
      Case c = sources.get(s);
      for (int k = 0; k < 8; k++) {
        int keep = k == 0 ? 8 : k == 1 ? 20 : r.nextInt(c.file.length - 1);
        imageOrError("cut" + keep + "-" + c.name, Arrays.copyOf(c.file, keep));
        cuts++;
      }
    }
    // Where the IFD comes last (as TestTiff writes it), any cut before its last entry's end loses
    // it or the data: always an error (only the next-IFD pointer after it may be missing).
    Case rgb = expect("rgb.tif", new TestTiff(30, 20, 2, 8, 8, 8).pixels(new byte[1800]), new byte[1800]);
    for (int keep = 0; keep < rgb.file.length - 4; keep += 37) {
      int cut = keep;
      refused("cut" + cut + ".tif", Arrays.copyOf(rgb.file, cut), "");
    }
    assertTrue(cuts >= 200, "cut points " + cuts);
  }

  @Test
  @Timeout(value = 240, unit = TimeUnit.SECONDS)
  void corruptedFilesGiveAnImageOrAnError() throws IOException {
    Random r = new Random(17);
    List<Case> sources = new ArrayList<>(builtCases(new Random(18)));
    sources.addAll(jdkCases(new Random(19)));
    sources.addAll(wideCases(new Random(35)));
    sources.addAll(headerCases(new Random(36)));
    int n = 0;
    for (int s = 0; s < sources.size(); s += 2) {
      byte[] file = sources.get(s).file;
      for (int k = 0; k < 4; k++) {
        byte[] b = file.clone();
        int flips = 1 + r.nextInt(20);
        for (int i = 0; i < flips; i++) b[8 + r.nextInt(b.length - 8)] = (byte) r.nextInt();
        imageOrError("noise" + n++ + "-" + sources.get(s).name, b);
      }
    }
    assertTrue(n >= 200, "corrupted files " + n);
  }
}
