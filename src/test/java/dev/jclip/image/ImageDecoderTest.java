package dev.jclip.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.io.Downloader;
import dev.jclip.testing.Reference;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bad inputs give clear errors quickly; Pillow's mode rules for the less common PNG kinds. JPEG
 * cases run on the Java path here and on libjpeg-turbo in {@link ImageDecoderNativeJpegTest}; PNG
 * cases on our reader here and on ImageIO in {@link ImageDecoderImageioPngTest}.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ImageDecoderTest {
  @TempDir Path tmp;

  final ImageDecoder decoder = new ImageDecoder(ImageDecoder.DEFAULT_MAX_PIXELS, ImageDecoder.DEFAULT_MAX_FILE_BYTES, codec(), png());

  /** The JPEG path under test. */
  ImageDecoder.JpegCodec codec() {
    return ImageDecoder.JpegCodec.JAVA;
  }

  /** The PNG path under test. */
  ImageDecoder.PngCodec png() {
    return ImageDecoder.PngCodec.AUTO;
  }

  /** A decoder of this test's JPEG and PNG paths with another pixel limit. */
  ImageDecoder withLimit(long maxPixels) {
    return new ImageDecoder(maxPixels, ImageDecoder.DEFAULT_MAX_FILE_BYTES, codec(), png());
  }

  private Path write(String name, byte[] data) throws IOException {
    Path f = tmp.resolve(name);
    Files.write(f, data);
    return f;
  }

  private ImageDecodeException bad(Path f, String... fragments) {
    ImageDecodeException e = assertThrows(ImageDecodeException.class, () -> decoder.decode(f));
    assertTrue(e.getMessage().contains(f.toString()), "names the file: " + e.getMessage());
    for (String s : fragments) assertTrue(e.getMessage().contains(s), "'" + s + "' in: " + e.getMessage());
    return e;
  }

  /**
   * A codec failing on hostile data with a runtime exception of its own (a fuzzed 93-byte BMP makes
   * the JDK's reader throw IllegalArgumentException) gives an ImageDecodeException naming the
   * file, the format and what the codec threw.
   */
  @Test
  void aCodecsOwnFailureIsNamed() {
    byte[] bmp = java.util.HexFormat.of().parseHex("424d820000000000000046000000280000001700000011000000010001000000000044000000c40e0000c40e0000020000000200"
        + "000000000000ffffffff00eaf600015faa0004757e0000efec0014949200f0a9020082534000c89402");
    ImageDecodeException e = assertThrows(ImageDecodeException.class, () -> new ImageDecoder().decode(Path.of("fuzzed.bmp"), bmp));
    assertTrue(e.getMessage().startsWith("fuzzed.bmp: corrupt or truncated BMP file: the decoder failed (IllegalArgumentException: "), e.getMessage());
  }

  @Test
  void emptyFile() throws IOException {
    bad(write("empty.jpg", new byte[0]), "empty file");
  }

  @Test
  void textFileNamedJpg() throws IOException {
    bad(write("notes.jpg", "this is not an image\n".getBytes()), "not a recognised image format");
  }

  @Test
  void unreadablePaths() {
    bad(tmp.resolve("missing.png"), "no such file");
    bad(tmp, "directory");
  }

  /** A named pipe would block the reader for good and /dev/zero never end: both refused before reading. */
  @Test
  @org.junit.jupiter.api.Timeout(30)
  void pipesAndDevicesAreNotRead() throws Exception {
    Path fifo = tmp.resolve("fifo.jpg");
    Process p = new ProcessBuilder("mkfifo", fifo.toString()).redirectErrorStream(true).start();
    if (p.waitFor() == 0) bad(fifo, "not a regular file (a pipe, socket or device)");
    if (Files.exists(Path.of("/dev/zero"))) bad(Path.of("/dev/zero"), "not a regular file");
  }

  @Test
  void truncatedJpeg() throws IOException {
    for (String name : new String[] {"grace_hopper.jpg", "FreshFlower.jpg"}) { // baseline, progressive
      byte[] full = Files.readAllBytes(Reference.file("images/" + name));
      for (int keep : new int[] {full.length / 2, full.length - 100, full.length - 2, 700}) {
        bad(write("cut-" + keep + "-" + name, Arrays.copyOf(full, keep)), "JPEG");
      }
    }
    byte[] header = Arrays.copyOf(Files.readAllBytes(Reference.file("images/rose.jpg")), 20);
    bad(write("header-only.jpg", header), "JPEG");
  }

  @Test
  void truncatedPng() throws IOException {
    byte[] full = Files.readAllBytes(Reference.file("images/chelsea.png"));
    for (int keep : new int[] {full.length / 2, full.length / 3 * 2, 100, 40, 20}) {
      bad(write("cut-" + keep + ".png", Arrays.copyOf(full, keep)), "PNG");
    }
    // Like Pillow, a file whose pixel data is complete and only the tail (checksum, IEND) is
    // missing still decodes, to the same pixels.
    DecodedImage tail = decoder.decode(write("tail.png", Arrays.copyOf(full, full.length - 20)));
    assertArrayEquals(decoder.decode(Reference.file("images/chelsea.png")).numpyBytes(), tail.numpyBytes());
  }

  @Test
  void corruptBodies() throws IOException {
    Random r = new Random(3);
    byte[] jpeg = Files.readAllBytes(Reference.file("images/grace_hopper.jpg"));
    byte[] png = Files.readAllBytes(Reference.file("images/coins.png"));
    for (int i = 0; i < 5; i++) {
      byte[] j = jpeg.clone();
      byte[] p = png.clone();
      for (int k = 0; k < 200; k++) {
        j[600 + r.nextInt(j.length - 600)] = (byte) r.nextInt();
        p[100 + r.nextInt(p.length - 100)] = (byte) r.nextInt();
      }
      // Corrupt JPEG entropy data may still decode (libjpeg, and Pillow, accept it with warnings);
      // what matters is an ImageDecodeException or an image, never another exception or a hang.
      try {
        decoder.decode(write("noise" + i + ".jpg", j));
      } catch (ImageDecodeException expected) {
        assertTrue(expected.getMessage().contains("noise" + i + ".jpg"));
      }
      bad(write("noise" + i + ".png", p), "PNG");
    }
  }

  @Test
  void wrongExtensionIsDecodedByContentAsPillowDoes() throws IOException {
    Path png = Reference.file("images/coins.png");
    DecodedImage want = decoder.decode(png);
    DecodedImage got = decoder.decode(write("coins.jpg", Files.readAllBytes(png)));
    assertEquals("PNG", got.format());
    assertArrayEquals(want.numpyBytes(), got.numpyBytes());
  }

  @Test
  void decompressionBombIsRefusedFromTheHeader() throws IOException {
    // A valid IHDR for 30000x30000 RGB followed by a tiny IDAT: refused before any pixel buffer.
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    b.writeBytes(TestPng.SIGNATURE);
    b.writeBytes(TestPng.ihdr(30000, 30000, 8, 2));
    b.writeBytes(TestPng.chunk("IDAT", new byte[] {0x78, (byte) 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01}));
    b.writeBytes(TestPng.chunk("IEND", new byte[0]));
    Path f = write("bomb.png", b.toByteArray());
    bad(f, "30000x30000", "900000000 pixels", "limit");
    // Even with no limit, what cannot fit a Java array is refused up front, not by an OOM.
    ImageDecodeException big = assertThrows(ImageDecodeException.class, () -> withLimit(Long.MAX_VALUE).decode(f));
    assertTrue(big.getMessage().contains("too large"), big.getMessage());
    // The limit is configurable: a small one refuses a normal image too.
    ImageDecodeException e =
        assertThrows(ImageDecodeException.class, () -> withLimit(1000).decode(Reference.file("images/rose.jpg")));
    assertTrue(e.getMessage().contains("limit of 1000"), e.getMessage());
  }

  // ---- Pillow's modes for PNG kinds absent from the reference set ----

  private static byte[][] rows(int h, int bytesPerRow, Random r) {
    byte[][] rows = new byte[h][bytesPerRow];
    for (byte[] row : rows) r.nextBytes(row);
    return rows;
  }

  @Test
  void sixteenBitPngsFollowPillow() throws IOException {
    Random r = new Random(16);
    int w = 5;
    int h = 3;
    // RGB 16: high bytes; RGBA 16: high bytes; LA 16: Pillow gives RGBA (gray replicated).
    byte[][] rgb = rows(h, w * 6, r);
    DecodedImage im = decoder.decode(write("rgb16.png", TestPng.png(w, h, 16, 2, rgb, null)));
    assertEquals(DecodedImage.Mode.RGB, im.mode());
    for (int y = 0; y < h; y++)
      for (int i = 0; i < w * 3; i++) assertEquals(rgb[y][2 * i], im.numpyBytes()[y * w * 3 + i]);
    byte[][] la = rows(h, w * 4, r);
    im = decoder.decode(write("la16.png", TestPng.png(w, h, 16, 4, la, null)));
    assertEquals(DecodedImage.Mode.RGBA, im.mode());
    byte[] px = im.numpyBytes();
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) {
        int o = (y * w + x) * 4;
        assertArrayEquals(new byte[] {la[y][4 * x], la[y][4 * x], la[y][4 * x], la[y][4 * x + 2]}, Arrays.copyOfRange(px, o, o + 4));
      }
    // Gray 16: mode I with the full value; convert("RGB") then clips to 0..255.
    byte[][] g = rows(h, w * 2, r);
    g[0][0] = 0;
    g[0][1] = 7; // a small value survives the clip
    im = decoder.decode(write("g16.png", TestPng.png(w, h, 16, 0, g, null)));
    assertEquals(DecodedImage.Mode.I, im.mode());
    assertEquals(7, im.ints()[0]);
    assertEquals(((g[1][2] & 0xff) << 8) | (g[1][3] & 0xff), im.ints()[w + 1]);
  }

  @Test
  void lowBitDepthsAndShortPalettesFollowPillow() throws IOException {
    // 2-bit gray: values 0..3 scaled by 85 to mode L.
    byte[][] rows = {{(byte) 0b00011011}};
    DecodedImage im = decoder.decode(write("g2.png", TestPng.png(4, 1, 2, 0, rows, null)));
    assertEquals(DecodedImage.Mode.L, im.mode());
    assertArrayEquals(new byte[] {0, 85, (byte) 170, (byte) 255}, im.numpyBytes());
    // 1-bit gray: mode "1".
    im = decoder.decode(write("g1.png", TestPng.png(3, 1, 1, 0, new byte[][] {{(byte) 0b10100000}}, null)));
    assertEquals(DecodedImage.Mode.BILEVEL, im.mode());
    // A palette of 2 entries with indices beyond it: Pillow's palette continues as a gray ramp.
    byte[] plte = {10, 20, 30, 40, 50, 60};
    im = decoder.decode(write("pshort.png", TestPng.png(3, 3, 8, 3, new byte[][] {{0, 1, 9}, {0, 0, 0}, {0, 0, 0}}, plte)));
    assertEquals(DecodedImage.Mode.P, im.mode());
    byte[] rgb = new ClipPreprocessor(3).rgb8(im);
    assertArrayEquals(new byte[] {10, 20, 30, 40, 50, 60, 9, 9, 9}, Arrays.copyOfRange(rgb, 0, 9));
  }

  /** A GIF89a with a global palette and one frame at an offset, LZW-coded with 9-bit codes only. */
  private static byte[] gif(int sw, int sh, int left, int top, int w, int h, int[] idx, byte[] palette, int transparent) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.writeBytes("GIF89a".getBytes());
    out.writeBytes(new byte[] {(byte) sw, (byte) (sw >> 8), (byte) sh, (byte) (sh >> 8), (byte) 0xF7, 0, 0});
    out.writeBytes(Arrays.copyOf(palette, 768));
    if (transparent >= 0) out.writeBytes(new byte[] {0x21, (byte) 0xF9, 4, 1, 0, 0, (byte) transparent, 0});
    out.writeBytes(new byte[] {0x2C, (byte) left, (byte) (left >> 8), (byte) top, (byte) (top >> 8), (byte) w, (byte) (w >> 8), (byte) h, (byte) (h >> 8), 0});
    // A clear code every 200 literals keeps the decoder's table below 512 entries: 9-bit codes.
    ByteArrayOutputStream data = new ByteArrayOutputStream();
    long bits = 0;
    int n = 0;
    for (int i = 0; i <= idx.length; i++) {
      int[] codes = i == idx.length ? new int[] {257} : i % 200 == 0 ? new int[] {256, idx[i]} : new int[] {idx[i]};
      for (int c : codes) {
        bits |= (long) c << n;
        n += 9;
        while (n >= 8) {
          data.write((int) (bits & 0xff));
          bits >>>= 8;
          n -= 8;
        }
      }
    }
    if (n > 0) data.write((int) bits);
    byte[] d = data.toByteArray();
    out.write(8);
    for (int i = 0; i < d.length; i += 255) {
      int len = Math.min(255, d.length - i);
      out.write(len);
      out.write(d, i, len);
    }
    out.writeBytes(new byte[] {0, 0x3B});
    return out.toByteArray();
  }

  @Test
  void gifFirstFrameIsPlacedOnTheLogicalScreen() throws IOException {
    Random r = new Random(8);
    byte[] pal = new byte[768];
    r.nextBytes(pal);
    int[] idx = new int[20 * 12];
    for (int i = 0; i < idx.length; i++) idx[i] = r.nextInt(256);
    DecodedImage im = decoder.decode(write("offset.gif", gif(40, 30, 7, 5, 20, 12, idx, pal, 33)));
    assertEquals(DecodedImage.Mode.P, im.mode());
    assertEquals(40, im.width());
    assertEquals(30, im.height());
    byte[] px = im.numpyBytes();
    for (int y = 0; y < 30; y++) {
      for (int x = 0; x < 40; x++) {
        boolean inside = x >= 7 && x < 27 && y >= 5 && y < 17;
        int want = inside ? idx[(y - 5) * 20 + (x - 7)] : 33; // Pillow fills with the transparent index
        assertEquals(want, px[y * 40 + x] & 0xff, "pixel " + x + "," + y);
      }
    }
    // A palette that is exactly the gray ramp makes Pillow open the GIF as L.
    byte[] ramp = new byte[768];
    for (int i = 0; i < 768; i++) ramp[i] = (byte) (i / 3);
    assertEquals(DecodedImage.Mode.L, decoder.decode(write("gray.gif", gif(20, 12, 0, 0, 20, 12, idx, ramp, -1))).mode());
  }

  @Test
  void fourComponentJpegsAreReadAsPillowsInvertedCmyk() throws Exception {
    // Fixtures and hashes from make-jpeg-cmyk-fixtures.py: Adobe CMYK, and YCCK (which libjpeg
    // converts to CMYK before Pillow inverts it).
    String[][] cases = {
      {"synthetic-cmyk.jpg", "a10dd6d5fc5e8da1e3adefab4ffc1aada52063f5f8d0417b4e114bd91748d065"},
      {"synthetic-ycck.jpg", "1ae3d2051ca80a03789ee32551e2e68b81854d95e50b900ee2bc5874ffde1845"},
    };
    for (String[] c : cases) {
      byte[] b;
      try (var in = ImageDecoderTest.class.getResourceAsStream(c[0])) {
        b = in.readAllBytes();
      }
      DecodedImage im = decoder.decode(Path.of(c[0]), b);
      assertEquals(DecodedImage.Mode.CMYK, im.mode(), c[0]);
      String sha = Downloader.sha256(im.numpyBytes());
      assertEquals(c[1], sha, c[0]);
    }
  }

  @Test
  void theTwelveMonkeysFallbackGivesTheSamePixels() throws IOException {
    ImageDecoder fallback = new ImageDecoder(ImageDecoder.DEFAULT_MAX_PIXELS, ImageDecoder.DEFAULT_MAX_FILE_BYTES, false, false);
    for (String name : new String[] {"images/grace_hopper.jpg", "images/FreshFlower.jpg", "images/rose.jpg"}) {
      assertArrayEquals(decoder.decode(Reference.file(name)).numpyBytes(), fallback.decode(Reference.file(name)).numpyBytes(), name);
    }
    for (String name : new String[] {"synthetic-440.jpg", "synthetic-440-progressive.jpg"}) {
      byte[] b;
      try (var in = ImageDecoderTest.class.getResourceAsStream(name)) {
        b = in.readAllBytes();
      }
      assertArrayEquals(decoder.decode(Path.of(name), b).numpyBytes(), fallback.decode(Path.of(name), b).numpyBytes(), name);
    }
    Path cut = write("cut.jpg", Arrays.copyOf(Files.readAllBytes(Reference.file("images/rose.jpg")), 2000));
    ImageDecodeException e = assertThrows(ImageDecodeException.class, () -> fallback.decode(cut));
    assertTrue(e.getMessage().contains("cut.jpg") && e.getMessage().contains("truncated"), e.getMessage());
  }
}
