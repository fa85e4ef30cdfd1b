package dev.jclip.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.fail;

import dev.jclip.testing.Reference;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import javax.imageio.IIOImage;
import javax.imageio.ImageIO;
import javax.imageio.ImageWriteParam;
import javax.imageio.ImageWriter;
import javax.imageio.stream.MemoryCacheImageOutputStream;
import org.junit.jupiter.api.Test;

/**
 * The Java JPEG decoder against libjpeg as ImageIO runs it (the same IDCT, upsampling and colour
 * conversion as libjpeg-turbo for these files), on the reference JPEGs and on JPEGs written here:
 * baseline and progressive, colour and gray, sizes with partial MCUs on every side; and the
 * native decoder ({@link NativeJpeg}) too, where libturbojpeg is installed.
 */
class JpegDecoderTest {
  private final ImageDecoder imageIo =
      new ImageDecoder(ImageDecoder.DEFAULT_MAX_PIXELS, ImageDecoder.DEFAULT_MAX_FILE_BYTES, true, false);

  private static byte[] encode(BufferedImage im, boolean progressive, float quality) throws IOException {
    ImageWriter w = ImageIO.getImageWritersByFormatName("jpeg").next();
    ImageWriteParam p = w.getDefaultWriteParam();
    p.setCompressionMode(ImageWriteParam.MODE_EXPLICIT);
    p.setCompressionQuality(quality);
    if (progressive) p.setProgressiveMode(ImageWriteParam.MODE_DEFAULT);
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    try (MemoryCacheImageOutputStream s = new MemoryCacheImageOutputStream(out)) {
      w.setOutput(s);
      w.write(null, new IIOImage(im, null, null), p);
    } finally {
      w.dispose();
    }
    return out.toByteArray();
  }

  private static BufferedImage picture(Random r, int w, int h, int type) {
    BufferedImage im = new BufferedImage(w, h, type);
    double fx = 0.05 + r.nextDouble() * 0.3;
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w; x++) {
        int red = (int) (128 + 100 * Math.sin(fx * x) + r.nextInt(40) - 20);
        int green = (x * 7 + y * 3) & 0xff;
        int blue = ((x / 5 + y / 7) % 2) * 255; // hard chroma edges
        im.setRGB(x, y, (Math.max(0, Math.min(255, red)) << 16) | (green << 8) | blue);
      }
    }
    return im;
  }

  private void assertSameAsLibjpeg(String what, byte[] jpeg) throws Exception {
    DecodedImage mine;
    try {
      mine = JpegDecoder.decode(jpeg, Long.MAX_VALUE);
    } catch (JpegDecoder.Unsupported e) {
      fail(what + ": the Java decoder declined: " + e.getMessage());
      return;
    }
    DecodedImage lib = imageIo.decode(Path.of(what), jpeg);
    assertEquals(lib.mode(), mine.mode(), what);
    assertEquals(lib.width(), mine.width(), what);
    assertEquals(lib.height(), mine.height(), what);
    byte[] a = lib.numpyBytes();
    byte[] b = mine.numpyBytes();
    for (int i = 0; i < a.length; i++) {
      if (a[i] != b[i]) fail(what + ": first difference at byte " + i + ": libjpeg " + (a[i] & 0xff) + ", Java " + (b[i] & 0xff));
    }
    // And the native path (libjpeg-turbo, where installed) on the same file.
    NativeJpeg turbo = NativeJpeg.get();
    if (turbo != null) {
      DecodedImage t = turbo.decode(turbo.newSession(), Path.of(what), jpeg, imageIo, 0);
      if (t == null) fail(what + ": libjpeg-turbo handed the file back");
      assertArrayEquals(a, t.numpyBytes(), what + ": libjpeg-turbo");
    }
  }

  @Test
  void referenceJpegs() throws Exception {
    for (String name : new String[] {"grace_hopper.jpg", "FreshFlower.jpg", "rose.jpg"}) {
      assertSameAsLibjpeg(name, Files.readAllBytes(Reference.file("images/" + name)));
    }
  }

  @Test
  void writtenJpegsOfManySizes() throws Exception {
    Random r = new Random(11);
    int[][] sizes = {{1, 1}, {1, 9}, {9, 1}, {2, 2}, {3, 17}, {16, 16}, {17, 15}, {33, 47}, {64, 48}, {127, 65}, {300, 211}};
    for (int[] s : sizes) {
      for (boolean progressive : new boolean[] {false, true}) {
        BufferedImage rgb = picture(r, s[0], s[1], BufferedImage.TYPE_INT_RGB);
        assertSameAsLibjpeg("rgb " + Arrays.toString(s) + (progressive ? " progressive" : ""), encode(rgb, progressive, 0.3f + r.nextFloat() * 0.65f));
        BufferedImage gray = new BufferedImage(s[0], s[1], BufferedImage.TYPE_BYTE_GRAY);
        gray.getGraphics().drawImage(rgb, 0, 0, null);
        assertSameAsLibjpeg("gray " + Arrays.toString(s) + (progressive ? " progressive" : ""), encode(gray, progressive, 0.9f));
      }
    }
  }

  @Test
  void truncatedOrUnusualFilesAreLeftToImageIo() throws Exception {
    byte[] full = Files.readAllBytes(Reference.file("images/grace_hopper.jpg"));
    for (int keep : new int[] {full.length - 2, full.length / 2, 300}) {
      assertThrows(JpegDecoder.Unsupported.class, () -> JpegDecoder.decode(Arrays.copyOf(full, keep), Long.MAX_VALUE));
    }
    assertThrows(JpegDecoder.Unsupported.class, () -> JpegDecoder.decode(full, 1000), "pixel limit");
    Random r = new Random(2);
    for (int i = 0; i < 30; i++) {
      byte[] bad = full.clone();
      for (int k = 0; k < 20; k++) bad[r.nextInt(bad.length)] = (byte) r.nextInt();
      try {
        JpegDecoder.decode(bad, Long.MAX_VALUE); // corrupt but decodable data is fine too
      } catch (JpegDecoder.Unsupported expected) {
        // declined: ImageIO decides
      }
    }
  }

  /** SOI, an SOF0 of {@code w}x{@code h} gray, {@code scans} SOS segments each with a byte of data (and a stuffed 0xFF 0x00 and a restart marker), EOI. */
  private static byte[] scanHeavy(int w, int h, int scans) {
    ByteArrayOutputStream o = new ByteArrayOutputStream();
    o.writeBytes(new byte[] {(byte) 0xFF, (byte) 0xD8});
    o.writeBytes(new byte[] {(byte) 0xFF, (byte) 0xC2, 0, 11, 8, (byte) (h >> 8), (byte) h, (byte) (w >> 8), (byte) w, 1, 1, 0x11, 0});
    for (int k = 0; k < scans; k++) {
      o.writeBytes(new byte[] {(byte) 0xFF, (byte) 0xDA, 0, 8, 1, 1, 0, 1, 63, 0});
      o.writeBytes(new byte[] {0x12, (byte) 0xFF, 0x00, 0x34, (byte) 0xFF, (byte) 0xD3, 0x56});
    }
    o.writeBytes(new byte[] {(byte) 0xFF, (byte) 0xD9});
    return o.toByteArray();
  }

  /**
   * A JPEG of thousands of tiny scans (minutes of decoding for a file of kilobytes) is refused
   * before any decoder runs: more than 1000 scans, or scans times pixels beyond 64 passes over an
   * image at the pixel limit; ordinary counts pass the check.
   */
  @Test
  void scanBombsAreRefusedBeforeDecoding() throws Exception {
    Path f = Path.of("scans.jpg");
    ImageDecodeException e = assertThrows(ImageDecodeException.class, () -> ImageDecoder.checkJpegScans(f, scanHeavy(16, 16, 1001)));
    org.junit.jupiter.api.Assertions.assertTrue(e.getMessage().startsWith("scans.jpg: JPEG with more than 1000 scans"), e.getMessage());
    ImageDecoder.checkJpegScans(f, scanHeavy(16, 16, 1000));
    e = assertThrows(ImageDecodeException.class, () -> ImageDecoder.checkJpegScans(f, scanHeavy(8192, 8192, 200)));
    org.junit.jupiter.api.Assertions.assertTrue(e.getMessage().contains("at least 171 scans of 67108864 pixels"), e.getMessage());
    ImageDecoder.checkJpegScans(f, scanHeavy(8192, 8192, 12));
    // and through the decoder itself, whatever JPEG path is installed
    e = assertThrows(ImageDecodeException.class, () -> new ImageDecoder().decode(f, scanHeavy(64, 64, 5000)));
    org.junit.jupiter.api.Assertions.assertTrue(e.getMessage().contains("more than 1000 scans"), e.getMessage());
    for (String name : new String[] {"grace_hopper.jpg", "FreshFlower.jpg", "rose.jpg"}) {
      ImageDecoder.checkJpegScans(Path.of(name), Files.readAllBytes(Reference.file("images/" + name)));
    }
  }
}
