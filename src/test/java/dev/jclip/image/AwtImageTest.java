package dev.jclip.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.testing.Reference;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link ImageDecoder#fromImage}: an AWT image gives the decoder's pixels of the file it was
 * written to or read from, in the same Pillow mode, for every layout the JDK's PNG writer and
 * reader use (gray 8 and 16 bits, indexed, RGB, RGBA, packed ints) and for the reference's PNGs.
 */
class AwtImageTest {
  @TempDir Path tmp;

  final ImageDecoder decoder = new ImageDecoder(ImageDecoder.DEFAULT_MAX_PIXELS, ImageDecoder.DEFAULT_MAX_FILE_BYTES,
      ImageDecoder.JpegCodec.JAVA, ImageDecoder.PngCodec.AUTO);

  private static void assertSame(DecodedImage want, DecodedImage got, String what) {
    assertEquals(want.mode(), got.mode(), what + ": mode");
    assertEquals(want.width(), got.width(), what + ": width");
    assertEquals(want.height(), got.height(), what + ": height");
    assertArrayEquals(want.numpyBytes(), got.numpyBytes(), what + ": samples");
    if (want.mode() == DecodedImage.Mode.P) {
      // the colours the image uses (readers may keep fewer unused entries)
      byte[] idx = want.numpyBytes(), a = want.palette(), b = got.palette();
      for (byte i : idx) {
        int e = 3 * (i & 0xff);
        assertArrayEquals(java.util.Arrays.copyOfRange(a, e, e + 3), java.util.Arrays.copyOfRange(b, e, e + 3), what + ": palette entry " + (i & 0xff));
      }
    }
  }

  @Test
  void everyLayoutGivesTheFilesPixels() throws IOException {
    Random rnd = new Random(7);
    int w = 37, h = 23;
    List<BufferedImage> images = new ArrayList<>();
    for (int type : new int[] {BufferedImage.TYPE_BYTE_GRAY, BufferedImage.TYPE_USHORT_GRAY, BufferedImage.TYPE_3BYTE_BGR,
        BufferedImage.TYPE_4BYTE_ABGR, BufferedImage.TYPE_INT_RGB, BufferedImage.TYPE_INT_ARGB, BufferedImage.TYPE_INT_BGR,
        BufferedImage.TYPE_BYTE_INDEXED}) {
      BufferedImage im = new BufferedImage(w, h, type);
      var r = im.getRaster();
      for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
          for (int b = 0; b < r.getNumBands(); b++) {
            int bits = r.getSampleModel().getSampleSize(b);
            // alpha from fully transparent to opaque, so that the premultiplied resize shows
            r.setSample(x, y, b, rnd.nextInt(1 << bits));
          }
        }
      }
      images.add(im);
    }
    for (BufferedImage im : images) {
      Path f = tmp.resolve("t" + im.getType() + ".png");
      assertTrue(ImageIO.write(im, "png", f.toFile()), "the JDK writes type " + im.getType());
      assertSame(decoder.decode(f), ImageDecoder.fromImage(im), "type " + im.getType() + " as made");
      assertSame(decoder.decode(f), ImageDecoder.fromImage(ImageIO.read(f.toFile())), "type " + im.getType() + " as read back");
    }
    // the mode each layout takes, as Pillow opens such a PNG
    assertEquals(DecodedImage.Mode.L, ImageDecoder.fromImage(images.get(0)).mode());
    assertEquals(DecodedImage.Mode.I, ImageDecoder.fromImage(images.get(1)).mode());
    assertEquals(DecodedImage.Mode.RGBA, ImageDecoder.fromImage(images.get(3)).mode());
    assertEquals(DecodedImage.Mode.P, ImageDecoder.fromImage(images.get(7)).mode());
  }

  @Test
  void referencePngsReadByTheJdkGiveTheDecodersPixels() throws IOException {
    int n = 0;
    try (var files = Files.list(Reference.dir().resolve("images"))) {
      for (Path f : files.sorted().toList()) {
        if (!f.toString().endsWith(".png")) continue;
        BufferedImage im = ImageIO.read(f.toFile());
        assertSame(decoder.decode(f), ImageDecoder.fromImage(im), f.getFileName().toString());
        n++;
      }
    }
    assertTrue(n >= 3, "too few reference PNGs: " + n);
  }

  /** A premultiplied image goes through AWT's conversion to straight alpha; an empty image is refused. */
  @Test
  void premultipliedAndEmpty() {
    BufferedImage pre = new BufferedImage(2, 1, BufferedImage.TYPE_INT_ARGB_PRE);
    pre.setRGB(0, 0, 0x80ff0000);
    pre.setRGB(1, 0, 0xff00ff00);
    DecodedImage d = ImageDecoder.fromImage(pre);
    assertEquals(DecodedImage.Mode.RGBA, d.mode());
    byte[] px = d.numpyBytes();
    assertEquals(0x80, px[3] & 0xff);
    assertTrue((px[0] & 0xff) >= 0xfd, "straight red, not premultiplied: " + (px[0] & 0xff));
    assertEquals(0xff, px[5] & 0xff);
    assertThrows(NullPointerException.class, () -> ImageDecoder.fromImage(null));
  }
}
