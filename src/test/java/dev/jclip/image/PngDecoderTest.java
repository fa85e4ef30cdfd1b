package dev.jclip.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.jclip.image.ImageDecoder.JpegCodec;
import dev.jclip.image.ImageDecoder.PngCodec;
import dev.jclip.testing.Reference;
import java.awt.Transparency;
import java.awt.color.ColorSpace;
import java.awt.image.BufferedImage;
import java.awt.image.ComponentColorModel;
import java.awt.image.DataBuffer;
import java.awt.image.IndexColorModel;
import java.awt.image.WritableRaster;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
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
 * {@link PngDecoder} against the ImageIO path (pixels, mode and palette identical) and against the
 * samples the test itself packed, on PNGs filtered row by row with every filter type, every bit
 * depth and colour type, odd sizes, IDAT split anywhere; the fallback to ImageIO for interlaced and
 * animated files; truncation and corruption giving only an image or an {@link
 * ImageDecodeException}.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class PngDecoderTest {
  private final ImageDecoder fast = new ImageDecoder(ImageDecoder.DEFAULT_MAX_PIXELS, ImageDecoder.DEFAULT_MAX_FILE_BYTES, JpegCodec.JAVA, PngCodec.AUTO);
  private final ImageDecoder imageio = new ImageDecoder(ImageDecoder.DEFAULT_MAX_PIXELS, ImageDecoder.DEFAULT_MAX_FILE_BYTES, JpegCodec.JAVA, PngCodec.IMAGEIO);

  /** Every (bit depth, colour type) pair of the PNG specification. */
  private static final int[][] KINDS = {
    {1, 0}, {2, 0}, {4, 0}, {8, 0}, {16, 0}, {8, 2}, {16, 2}, {1, 3}, {2, 3}, {4, 3}, {8, 3}, {8, 4}, {16, 4}, {8, 6}, {16, 6}
  };

  private static int channels(int colorType) {
    return switch (colorType) {
      case 2 -> 3;
      case 4 -> 2;
      case 6 -> 4;
      default -> 1;
    };
  }

  /**
   * Decodes with our reader, failing if it hands the file to ImageIO: with the streaming Inflater,
   * and with libdeflate where installed (the two must agree, image or error alike).
   */
  private static DecodedImage direct(String name, byte[] png) throws ImageDecodeException {
    try {
      DecodedImage streamed = PngDecoder.decode(Path.of(name), png, null);
      if (NativeDeflate.get() != null) assertSame(name + " (libdeflate)", streamed, PngDecoder.decode(Path.of(name), png, NativeDeflate.get()));
      return streamed;
    } catch (PngDecoder.Unsupported e) {
      throw new AssertionError(name + ": handed to ImageIO (" + e.getMessage() + ")", e);
    }
  }

  private static void assertSame(String name, DecodedImage want, DecodedImage got) {
    assertEquals(want.mode(), got.mode(), name + " mode");
    assertEquals(want.width(), got.width(), name + " width");
    assertEquals(want.height(), got.height(), name + " height");
    assertEquals(want.format(), got.format(), name + " format");
    byte[] w = want.numpyBytes();
    byte[] g = got.numpyBytes();
    if (!Arrays.equals(w, g)) {
      int i = Arrays.mismatch(w, g);
      fail(name + ": pixels differ first at byte " + i + " of " + w.length + " (want " + (i < w.length ? w[i] & 0xff : -1) + ", got " + (i < g.length ? g[i] & 0xff : -1) + ")");
    }
    assertArrayEquals(want.palette(), got.palette(), name + " palette");
  }

  /**
   * What Pillow's PngImagePlugin gives for packed rows, written out plainly (the oracle that does
   * not depend on ImageIO): "1" 0/255, L scaled by 85 or 17, I, high bytes of 16-bit, LA 16 as RGBA.
   */
  private static DecodedImage expected(int w, int h, int depth, int colorType, byte[][] rows, byte[] plte) {
    if (depth == 16 && colorType == 0) {
      int[] v = new int[w * h];
      for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) v[y * w + x] = ((rows[y][2 * x] & 0xff) << 8) | (rows[y][2 * x + 1] & 0xff);
      return DecodedImage.ofInts("PNG", w, h, v);
    }
    if (depth < 8) {
      byte[] px = new byte[w * h];
      for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
          int bit = x * depth;
          int v = ((rows[y][bit / 8] & 0xff) >> (8 - depth - bit % 8)) & ((1 << depth) - 1);
          px[y * w + x] = (byte) (colorType == 3 ? v : v * 255 / ((1 << depth) - 1));
        }
      }
      if (colorType == 3) return DecodedImage.palette("PNG", w, h, px, plte);
      return DecodedImage.of("PNG", depth == 1 ? DecodedImage.Mode.BILEVEL : DecodedImage.Mode.L, w, h, px);
    }
    int c = channels(colorType);
    int bytes = depth / 8;
    if (depth == 16 && colorType == 4) {
      byte[] px = new byte[w * h * 4];
      for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
          int o = (y * w + x) * 4;
          px[o] = px[o + 1] = px[o + 2] = rows[y][4 * x];
          px[o + 3] = rows[y][4 * x + 2];
        }
      return DecodedImage.of("PNG", DecodedImage.Mode.RGBA, w, h, px);
    }
    byte[] px = new byte[w * h * c];
    for (int y = 0; y < h; y++)
      for (int i = 0; i < w * c; i++) px[y * w * c + i] = rows[y][i * bytes];
    if (colorType == 3) return DecodedImage.palette("PNG", w, h, px, plte);
    DecodedImage.Mode mode = switch (colorType) {
      case 0 -> DecodedImage.Mode.L;
      case 2 -> DecodedImage.Mode.RGB;
      case 4 -> DecodedImage.Mode.LA;
      default -> DecodedImage.Mode.RGBA;
    };
    return DecodedImage.of("PNG", mode, w, h, px);
  }

  /** Rows mixing noise (every Paeth branch) and smooth gradients (what photos look like to the filters). */
  private static byte[][] content(int h, int rowBytes, Random r) {
    byte[][] rows = new byte[h][rowBytes];
    for (int y = 0; y < h; y++) {
      if (r.nextInt(3) == 0) {
        r.nextBytes(rows[y]);
      } else {
        int base = r.nextInt(256);
        for (int i = 0; i < rowBytes; i++) rows[y][i] = (byte) (base + i / 3 + y + r.nextInt(3));
      }
    }
    return rows;
  }

  /** A random PNG of the given kind and size with per-row filters; returns {file, rows, plte}. */
  private static Object[] randomPng(int w, int h, int depth, int colorType, Random r, boolean trnsAllowed) {
    int rowBytes = (w * depth * channels(colorType) + 7) / 8;
    byte[][] rows = content(h, rowBytes, r);
    byte[] plte = null;
    if (colorType == 3) {
      // At most 2^depth entries: ImageIO drops the others, which no pixel can use anyway.
      int entries = 1 + r.nextInt(Math.min(256, 1 << depth));
      plte = new byte[3 * entries];
      r.nextBytes(plte);
    }
    int[] filters = new int[h];
    for (int y = 0; y < h; y++) filters[y] = r.nextInt(5);
    List<byte[]> before = new ArrayList<>();
    if (r.nextBoolean()) before.add(TestPng.chunk("tEXt", "Comment\0random test image".getBytes(StandardCharsets.ISO_8859_1)));
    if (r.nextBoolean()) before.add(TestPng.chunk("gAMA", new byte[] {0, 0, (byte) 0xB1, (byte) 0x8F}));
    if (r.nextBoolean()) before.add(TestPng.chunk("prVt", new byte[] {1, 2, 3}));
    if (trnsAllowed && r.nextBoolean()) {
      switch (colorType) {
        case 0 -> before.add(TestPng.chunk("tRNS", new byte[] {0, (byte) (r.nextInt(1 << Math.min(depth, 8)))}));
        case 2 -> before.add(TestPng.chunk("tRNS", new byte[] {0, 7, 0, 8, 0, 9}));
        case 3 -> before.add(TestPng.chunk("tRNS", new byte[] {0, (byte) 128}));
        default -> {}
      }
    }
    List<byte[]> after = r.nextBoolean() ? List.of(TestPng.chunk("tEXt", "Author\0after the data".getBytes(StandardCharsets.ISO_8859_1))) : List.of();
    byte[] png = TestPng.filteredPng(w, h, depth, colorType, rows, filters, plte, before, after, 1 + r.nextInt(4), r);
    return new Object[] {png, rows, plte};
  }

  private static final int[][] SIZES = {{1, 1}, {1, 7}, {7, 1}, {2, 3}, {5, 5}, {13, 9}, {31, 17}, {64, 33}, {101, 57}, {257, 3}, {3, 211}, {299, 113}};

  @Test
  void everyKindFilterAndSizeMatchesThePackedSamplesAndImageIO() throws IOException {
    Random r = new Random(2026);
    int checked = 0;
    for (int[] kind : KINDS) {
      int depth = kind[0];
      int colorType = kind[1];
      for (int[] size : SIZES) {
        int w = size[0];
        int h = size[1];
        // tRNS on gray: ImageIO adds an alpha band (and rescales low depths to 8 bits, which its
        // path in ImageDecoder allows for); Pillow ignores it.
        boolean trns = r.nextBoolean();
        Object[] made = randomPng(w, h, depth, colorType, r, trns);
        byte[] png = (byte[]) made[0];
        String name = "random-" + depth + "bit-type" + colorType + "-" + w + "x" + h + (trns ? "-trns" : "") + ".png";
        DecodedImage got = direct(name, png);
        assertSame(name + " (packed samples)", expected(w, h, depth, colorType, (byte[][]) made[1], (byte[]) made[2]), got);
        assertSame(name + " (ImageIO)", imageio.decode(Path.of(name), png), got);
        assertSame(name + " (ImageDecoder)", got, fast.decode(Path.of(name), png));
        checked++;
      }
    }
    assertEquals(KINDS.length * SIZES.length, checked);
  }

  @Test
  void eachFilterAloneOnEveryByteWidth() throws IOException {
    // All rows with one filter type, for 1, 2, 3, 4, 6 and 8 bytes per pixel (the specialised
    // Paeth loops for 3 and 4 included), so a mistake in one filter cannot hide behind the others.
    Random r = new Random(5);
    int[][] kinds = {{8, 0}, {8, 4}, {8, 2}, {8, 6}, {16, 2}, {16, 6}, {16, 0}, {16, 4}, {4, 0}};
    for (int[] kind : kinds) {
      for (int f = 0; f < 5; f++) {
        int w = 37;
        int h = 11;
        int rowBytes = (w * kind[0] * channels(kind[1]) + 7) / 8;
        byte[][] rows = content(h, rowBytes, r);
        int[] filters = new int[h];
        Arrays.fill(filters, f);
        byte[] png = TestPng.filteredPng(w, h, kind[0], kind[1], rows, filters, null, List.of(), List.of(), 1, r);
        String name = "filter" + f + "-" + kind[0] + "bit-type" + kind[1] + ".png";
        DecodedImage got = direct(name, png);
        assertSame(name, expected(w, h, kind[0], kind[1], rows, null), got);
        assertSame(name + " (ImageIO)", imageio.decode(Path.of(name), png), got);
      }
    }
  }

  @Test
  void paethPredictorIsTheSpecificationsOnAllInputs() {
    for (int a = 0; a < 256; a++)
      for (int b = 0; b < 256; b++)
        for (int c = 0; c < 256; c++) {
          if (TestPng.paeth(a, b, c) != PngDecoder.paethPredictor(a, b, c)) fail("Paeth(" + a + ", " + b + ", " + c + ")");
        }
  }

  private static byte[] write(BufferedImage im, boolean interlaced) throws IOException {
    ImageWriter w = ImageIO.getImageWritersByFormatName("png").next();
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (MemoryCacheImageOutputStream out = new MemoryCacheImageOutputStream(bytes)) {
      w.setOutput(out);
      ImageWriteParam p = w.getDefaultWriteParam();
      p.setProgressiveMode(interlaced ? ImageWriteParam.MODE_DEFAULT : ImageWriteParam.MODE_DISABLED);
      w.write(null, new IIOImage(im, null, null), p);
    } finally {
      w.dispose();
    }
    return bytes.toByteArray();
  }

  private static BufferedImage randomImage(int type, int w, int h, Random r) {
    BufferedImage im;
    if (type == -1) {
      // Gray + alpha: no BufferedImage constant, a component colour model over CS_GRAY.
      ComponentColorModel cm =
          new ComponentColorModel(ColorSpace.getInstance(ColorSpace.CS_GRAY), true, false, Transparency.TRANSLUCENT, DataBuffer.TYPE_BYTE);
      WritableRaster raster = cm.createCompatibleWritableRaster(w, h);
      im = new BufferedImage(cm, raster, false, null);
    } else if (type == BufferedImage.TYPE_BYTE_INDEXED) {
      byte[] pal = new byte[3 * 200];
      r.nextBytes(pal);
      byte[] red = new byte[200];
      byte[] green = new byte[200];
      byte[] blue = new byte[200];
      for (int i = 0; i < 200; i++) {
        red[i] = pal[3 * i];
        green[i] = pal[3 * i + 1];
        blue[i] = pal[3 * i + 2];
      }
      im = new BufferedImage(w, h, type, new IndexColorModel(8, 200, red, green, blue));
    } else {
      im = new BufferedImage(w, h, type);
    }
    WritableRaster raster = im.getRaster();
    int bands = raster.getNumBands();
    int max = type == BufferedImage.TYPE_USHORT_GRAY ? 65535 : type == BufferedImage.TYPE_BYTE_INDEXED ? 199 : type == BufferedImage.TYPE_BYTE_BINARY ? 1 : 255;
    int[] px = new int[bands];
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) {
        for (int k = 0; k < bands; k++) px[k] = (x * 7 + y * 3 + k * 50 + r.nextInt(20)) % (max + 1);
        raster.setPixel(x, y, px);
      }
    return im;
  }

  @Test
  void imageioWrittenPngsMatchImageIO() throws IOException {
    Random r = new Random(9);
    int[] types = {
      BufferedImage.TYPE_BYTE_GRAY, BufferedImage.TYPE_3BYTE_BGR, BufferedImage.TYPE_4BYTE_ABGR, BufferedImage.TYPE_BYTE_INDEXED,
      BufferedImage.TYPE_USHORT_GRAY, BufferedImage.TYPE_BYTE_BINARY, BufferedImage.TYPE_INT_RGB, -1
    };
    for (int type : types) {
      for (int[] size : new int[][] {{1, 1}, {17, 3}, {120, 77}, {333, 41}}) {
        byte[] png = write(randomImage(type, size[0], size[1], r), false);
        String name = "imageio-type" + type + "-" + size[0] + "x" + size[1] + ".png";
        assertSame(name, imageio.decode(Path.of(name), png), direct(name, png));
      }
    }
  }

  @Test
  void referencePngsMatchImageIO() throws IOException {
    int n = 0;
    try (var files = Files.list(Reference.dir().resolve("images"))) {
      for (Path f : files.filter(p -> p.toString().endsWith(".png")).sorted().toList()) {
        byte[] png = Files.readAllBytes(f);
        assertSame(f.getFileName().toString(), imageio.decode(f, png), direct(f.toString(), png));
        n++;
      }
    }
    assertTrue(n >= 5, "reference PNGs found: " + n);
  }

  @Test
  void interlacedAndAnimatedPngsGoToImageIO() throws IOException {
    Random r = new Random(11);
    for (int type : new int[] {BufferedImage.TYPE_3BYTE_BGR, BufferedImage.TYPE_BYTE_GRAY, BufferedImage.TYPE_4BYTE_ABGR}) {
      byte[] png = write(randomImage(type, 45, 31, r), true);
      assertEquals(1, png[28], "the writer made an interlaced file");
      assertThrows(PngDecoder.Unsupported.class, () -> PngDecoder.decode(Path.of("adam7.png"), png, null));
      assertSame("adam7 type " + type, imageio.decode(Path.of("adam7.png"), png), fast.decode(Path.of("adam7.png"), png));
    }
    // An acTL chunk (APNG): the IDAT image through ImageIO, as before.
    byte[] plain = write(randomImage(BufferedImage.TYPE_3BYTE_BGR, 20, 10, r), false);
    ByteArrayOutputStream apng = new ByteArrayOutputStream();
    apng.write(plain, 0, 33);
    apng.writeBytes(TestPng.chunk("acTL", new byte[] {0, 0, 0, 1, 0, 0, 0, 0}));
    apng.write(plain, 33, plain.length - 33);
    byte[] a = apng.toByteArray();
    assertThrows(PngDecoder.Unsupported.class, () -> PngDecoder.decode(Path.of("anim.png"), a, null));
    assertSame("apng", imageio.decode(Path.of("anim.png"), a), fast.decode(Path.of("anim.png"), a));
    // A palette image without PLTE, and a 16-bit palette depth: ImageIO decides (and refuses).
    byte[] noPlte = TestPng.png(2, 2, 8, 3, new byte[][] {{0, 1}, {1, 0}}, null);
    assertThrows(PngDecoder.Unsupported.class, () -> PngDecoder.decode(Path.of("noplte.png"), noPlte, null));
    byte[] p16 = TestPng.png(2, 1, 16, 3, new byte[][] {{0, 1, 1, 0}}, new byte[] {1, 2, 3});
    assertThrows(PngDecoder.Unsupported.class, () -> PngDecoder.decode(Path.of("p16.png"), p16, null));
    assertThrows(ImageDecodeException.class, () -> fast.decode(Path.of("p16.png"), p16));
  }

  /** The offset of each chunk of a PNG and its type. */
  private static List<int[]> chunks(byte[] png) {
    List<int[]> out = new ArrayList<>();
    int pos = 8;
    while (pos + 8 <= png.length) {
      int len = ((png[pos] & 0xff) << 24) | ((png[pos + 1] & 0xff) << 16) | ((png[pos + 2] & 0xff) << 8) | (png[pos + 3] & 0xff);
      int type = ((png[pos + 4] & 0xff) << 24) | ((png[pos + 5] & 0xff) << 16) | ((png[pos + 6] & 0xff) << 8) | (png[pos + 7] & 0xff);
      out.add(new int[] {pos, type, len});
      pos += 12 + len;
    }
    return out;
  }

  private static final int IDAT = 0x49444154;
  private static final int IEND = 0x49454E44;

  @Test
  void truncationIsAnErrorUnlessOnlyTheTailAfterThePixelDataIsMissing() throws IOException {
    Random r = new Random(77);
    List<byte[]> files = new ArrayList<>();
    List<String> names = new ArrayList<>();
    for (String n : new String[] {"chelsea.png", "debian-logo-256.png", "coins.png"}) {
      files.add(Files.readAllBytes(Reference.file("images/" + n)));
      names.add(n);
    }
    for (int[] kind : new int[][] {{16, 2}, {2, 0}, {4, 3}}) {
      files.add((byte[]) randomPng(150, 40, kind[0], kind[1], r, false)[0]);
      names.add("random-" + kind[0] + "-" + kind[1] + ".png");
    }
    int cuts = 0;
    int decoded = 0;
    for (int k = 0; k < files.size(); k++) {
      byte[] full = files.get(k);
      DecodedImage whole = direct(names.get(k), full);
      List<int[]> ch = chunks(full);
      int firstData = -1;
      int lastDataEnd = -1;
      for (int[] c : ch) {
        if (c[1] == IDAT) {
          if (firstData < 0) firstData = c[0] + 8;
          lastDataEnd = c[0] + 8 + c[2];
        }
      }
      for (int i = 0; i < 14; i++) {
        int keep = i < 10 ? 8 + r.nextInt(full.length - 8) : lastDataEnd + i - 10 - 4; // the last ones around the zlib checksum
        Path name = Path.of("cut-" + keep + "-" + names.get(k));
        byte[] cut = Arrays.copyOf(full, keep);
        cuts++;
        // Pillow reads the chunks after the image data and fails on one cut inside its data.
        boolean tailChunkCut = false;
        for (int[] c : ch) {
          if (c[0] >= lastDataEnd && c[1] != IEND && c[0] + 8 <= keep && keep < c[0] + 8 + c[2]) tailChunkCut = true;
        }
        try {
          DecodedImage im = fast.decode(name, cut);
          assertTrue(keep > firstData, name + ": decoded without its image data");
          assertTrue(!tailChunkCut, name + ": decoded although a chunk after the image data is cut");
          assertSame(name.toString(), whole, im);
          decoded++;
        } catch (ImageDecodeException e) {
          assertTrue(e.getMessage().contains(name.toString()), e.getMessage());
          assertTrue(e.getMessage().contains("PNG"), e.getMessage());
          assertTrue(keep < lastDataEnd || tailChunkCut, name + ": refused although the pixel data is complete: " + e.getMessage());
        }
      }
    }
    assertEquals(84, cuts);
    assertTrue(decoded >= 6, "cuts after the pixel data decode: " + decoded);
  }

  @Test
  void randomCorruptionGivesAnImageOrAnImageDecodeException() throws IOException {
    Random r = new Random(31);
    List<byte[]> sources = new ArrayList<>();
    sources.add(Files.readAllBytes(Reference.file("images/chelsea.png")));
    sources.add(Files.readAllBytes(Reference.file("images/debian-logo-256.png")));
    sources.add((byte[]) randomPng(90, 70, 8, 6, r, false)[0]);
    sources.add((byte[]) randomPng(61, 20, 1, 0, r, false)[0]);
    sources.add((byte[]) randomPng(40, 40, 16, 4, r, false)[0]);
    int images = 0;
    int errors = 0;
    for (int i = 0; i < 60; i++) {
      byte[] p = sources.get(i % sources.size()).clone();
      int flips = 1 + r.nextInt(i < 30 ? 3 : 40);
      for (int k = 0; k < flips; k++) {
        // Half the cases hit the first 64 bytes (IHDR, chunk lengths and types, zlib header).
        int at = i % 2 == 0 ? 8 + r.nextInt(Math.min(64, p.length - 8)) : 8 + r.nextInt(p.length - 8);
        p[at] = (byte) r.nextInt();
      }
      Path name = Path.of("noise-" + i + ".png");
      try {
        DecodedImage im = fast.decode(name, p);
        assertNotNull(im);
        images++;
      } catch (ImageDecodeException e) {
        assertTrue(e.getMessage().contains(name.toString()), e.getMessage());
        errors++;
      }
    }
    assertEquals(60, images + errors);
    assertTrue(errors > 20, "most corruptions are detected (CRC before IDAT, zlib): " + errors);
  }

  /**
   * A small file whose header declares a large image (13000x13000 RGBA under the pixel limit) is
   * refused as truncated before a 676 MB buffer exists: deflate cannot expand its few bytes to the
   * rows. The same image data for a small image still decodes.
   */
  @Test
  void imageDataTooShortForTheRowsIsRefusedBeforeAllocating() throws IOException {
    byte[] z = TestPng.deflate(new byte[4096], 9);
    java.io.ByteArrayOutputStream o = new java.io.ByteArrayOutputStream();
    o.writeBytes(TestPng.SIGNATURE);
    o.writeBytes(TestPng.ihdr(13000, 13000, 8, 6));
    o.writeBytes(TestPng.chunk("IDAT", z));
    o.writeBytes(TestPng.chunk("IEND", new byte[0]));
    long before = ((com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean()).getCurrentThreadAllocatedBytes();
    ImageDecodeException e = assertThrows(ImageDecodeException.class, () -> fast.decode(Path.of("huge.png"), o.toByteArray()));
    long allocated = ((com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean()).getCurrentThreadAllocatedBytes() - before;
    assertTrue(e.getMessage().startsWith("huge.png: truncated PNG file: its " + z.length + " bytes of image data cannot hold 13000 rows of 52000 bytes"),
        e.getMessage());
    assertTrue(allocated < 64 << 20, allocated + " bytes allocated");
    byte[] small = TestPng.png(31, 33, 8, 6, new byte[33][31 * 4], null); // 4 KB of rows: decodes
    assertEquals(31, fast.decode(Path.of("small.png"), small).width());
  }

  @Test
  void chunkChecksAsPillow() throws IOException {
    byte[] good = TestPng.png(3, 2, 8, 3, new byte[][] {{0, 1, 2}, {2, 1, 0}}, new byte[] {1, 2, 3, 4, 5, 6, 7, 8, 9});
    assertEquals(DecodedImage.Mode.P, direct("good.png", good).mode());
    // A damaged PLTE (its CRC no longer matches): Pillow refuses the file ("bad header checksum").
    byte[] badPlte = good.clone();
    badPlte[33 + 8] ^= 1;
    ImageDecodeException e = assertThrows(ImageDecodeException.class, () -> fast.decode(Path.of("badplte.png"), badPlte));
    assertTrue(e.getMessage().contains("bad CRC in the PLTE chunk"), e.getMessage());
    // The IHDR's too.
    byte[] badIhdr = good.clone();
    badIhdr[29] ^= 1;
    e = assertThrows(ImageDecodeException.class, () -> fast.decode(Path.of("badihdr.png"), badIhdr));
    assertTrue(e.getMessage().contains("bad CRC in the IHDR chunk"), e.getMessage());
    // IDAT CRCs are not checked by Pillow: the image decodes.
    byte[] badIdatCrc = good.clone();
    int[] idat = chunks(good).stream().filter(c -> c[1] == IDAT).findFirst().orElseThrow();
    badIdatCrc[idat[0] + 8 + idat[2]] ^= 1;
    assertSame("bad IDAT crc", direct("good.png", good), fast.decode(Path.of("badidatcrc.png"), badIdatCrc));
    // A chunk type that is not four word characters.
    ByteArrayOutputStream odd = new ByteArrayOutputStream();
    odd.write(good, 0, 33);
    odd.writeBytes(TestPng.chunk("a b!", new byte[0]));
    odd.write(good, 33, good.length - 33);
    byte[] oddType = odd.toByteArray();
    e = assertThrows(ImageDecodeException.class, () -> fast.decode(Path.of("oddtype.png"), oddType));
    assertTrue(e.getMessage().contains("invalid chunk type"), e.getMessage());
    // After the image data, a text chunk cut inside its text is refused (Pillow reads it in
    // load_end); cut inside its CRC, or with IEND missing, the file decodes.
    byte[] text = TestPng.chunk("tEXt", "Comment\0some text after the image data".getBytes(StandardCharsets.ISO_8859_1));
    int iend = good.length - 12;
    ByteArrayOutputStream withText = new ByteArrayOutputStream();
    withText.write(good, 0, iend);
    withText.writeBytes(text);
    byte[] full = withText.toByteArray();
    byte[] cutText = Arrays.copyOf(full, iend + 20);
    e = assertThrows(ImageDecodeException.class, () -> fast.decode(Path.of("cuttext.png"), cutText));
    assertTrue(e.getMessage().contains("tEXt chunk") && e.getMessage().contains("cut off"), e.getMessage());
    assertSame("text crc cut", direct("good.png", good), fast.decode(Path.of("cutcrc.png"), Arrays.copyOf(full, full.length - 2)));
    assertSame("text header cut", direct("good.png", good), fast.decode(Path.of("cuthdr.png"), Arrays.copyOf(full, iend + 5)));
  }

  @Test
  void brokenImageDataIsAnError() throws IOException {
    Random r = new Random(4);
    int w = 9;
    int h = 6;
    byte[][] rows = content(h, w * 3, r);
    // A filter type beyond 4.
    byte[] raw = TestPng.filteredData(rows, new int[h], 3);
    raw[2 * (w * 3 + 1)] = 5;
    ImageDecodeException e = assertThrows(ImageDecodeException.class, () -> fast.decode(Path.of("filter5.png"), idatPng(w, h, 2, TestPng.deflate(raw, 6))));
    assertTrue(e.getMessage().contains("unknown filter type 5 in row 2"), e.getMessage());
    // A complete zlib stream with fewer rows than the header promises.
    byte[] shortRaw = Arrays.copyOf(TestPng.filteredData(rows, new int[h], 3), 4 * (w * 3 + 1));
    e = assertThrows(ImageDecodeException.class, () -> fast.decode(Path.of("short.png"), idatPng(w, h, 2, TestPng.deflate(shortRaw, 6))));
    assertTrue(e.getMessage().contains("after 4 of 6 rows"), e.getMessage());
    // Not zlib at all.
    e = assertThrows(ImageDecodeException.class, () -> fast.decode(Path.of("notzlib.png"), idatPng(w, h, 2, new byte[] {1, 2, 3, 4, 5, 6})));
    assertTrue(e.getMessage().contains("zlib"), e.getMessage());
    // More data than the image needs: decoding stops at the last row, as in Pillow and ImageIO.
    byte[] longRaw = Arrays.copyOf(TestPng.filteredData(rows, new int[h], 3), 50 * (w * 3 + 1));
    byte[] longPng = idatPng(w, h, 2, TestPng.deflate(longRaw, 6));
    assertSame("long", imageio.decode(Path.of("long.png"), longPng), fast.decode(Path.of("long.png"), longPng));
    // A bomb inside the data (16 MB of zeros behind a 64x64 header) costs only the image's bytes.
    byte[] bomb = idatPng(64, 64, 0, TestPng.deflate(new byte[16 << 20], 9));
    DecodedImage im = fast.decode(Path.of("zbomb.png"), bomb);
    assertEquals(64 * 64, im.numpyBytes().length);
  }

  private static byte[] idatPng(int w, int h, int colorType, byte[] zlib) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.writeBytes(TestPng.SIGNATURE);
    out.writeBytes(TestPng.ihdr(w, h, 8, colorType));
    out.writeBytes(TestPng.chunk("IDAT", zlib));
    out.writeBytes(TestPng.chunk("IEND", new byte[0]));
    return out.toByteArray();
  }

  @Test
  void libdeflateAnswersOnlyForExactStreams() {
    NativeDeflate lib = NativeDeflate.get();
    org.junit.jupiter.api.Assumptions.assumeTrue(lib != null, "libdeflate.so.0 not installed (package libdeflate0): whole-stream path skipped");
    byte[] data = new byte[100_000];
    new Random(8).nextBytes(data);
    Arrays.fill(data, 50_000, 90_000, (byte) 7);
    byte[] z = TestPng.deflate(data, 6);
    byte[] out = new byte[data.length];
    assertTrue(lib.zlibDecompress(z, 0, z.length, out));
    assertArrayEquals(data, out);
    // Within a larger array, at an offset.
    byte[] padded = new byte[z.length + 10];
    System.arraycopy(z, 0, padded, 3, z.length);
    assertTrue(lib.zlibDecompress(padded, 3, z.length, new byte[data.length]));
    // Short, over-long, truncated, bad checksum: all refused (the streaming path then decides).
    assertTrue(!lib.zlibDecompress(z, 0, z.length, new byte[data.length + 1]), "more room than data");
    assertTrue(!lib.zlibDecompress(z, 0, z.length, new byte[data.length - 1]), "less room than data");
    assertTrue(!lib.zlibDecompress(z, 0, z.length - 5, new byte[data.length]), "truncated");
    byte[] badSum = z.clone();
    badSum[badSum.length - 1] ^= 1;
    assertTrue(!lib.zlibDecompress(badSum, 0, badSum.length, new byte[data.length]), "bad Adler-32");
  }

  @Test
  void codecSelection() {
    assertEquals(PngCodec.AUTO, fast.pngCodec());
    assertEquals(PngCodec.IMAGEIO, imageio.pngCodec());
    assertEquals(PngCodec.AUTO, PngCodec.parse(null));
    assertEquals(PngCodec.IMAGEIO, PngCodec.parse(" ImageIO "));
    assertEquals(PngCodec.JAVA, PngCodec.parse("java"));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PngCodec.parse("libpng"));
    assertTrue(e.getMessage().contains("jclip.png=libpng") && e.getMessage().contains("auto, java or imageio"), e.getMessage());
  }
}
