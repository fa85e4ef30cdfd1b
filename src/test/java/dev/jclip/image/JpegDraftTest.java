package dev.jclip.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.jclip.image.ImageDecoder.JpegCodec;
import dev.jclip.io.Downloader;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Reduced-scale JPEG decoding ({@link ImageDecoder#withJpegDraft}) against Pillow's {@code
 * Image.draft("RGB", (d, d))}: the decoded pixels and the CLIP transform of them, for every row of
 * {@code jpeg-draft-expected.tsv} (made by {@code make-jpeg-draft-fixtures.py} with Pillow 9.4:
 * 4:2:0, 4:2:2, 4:4:4, progressive, grayscale and CMYK files at odd sizes, draft sizes giving
 * scales 8, 4, 2 and 1).
 */
class JpegDraftTest {
  private static byte[] resource(String name) throws IOException {
    try (InputStream in = JpegDraftTest.class.getResourceAsStream(name)) {
      if (in == null) throw new IOException("missing test resource " + name);
      return in.readAllBytes();
    }
  }


  @Test
  void draftDecodingEqualsPillowsDraftAndItsClipTransform() throws Exception {
    assumeTrue(NativeJpeg.get() != null, "libturbojpeg not installed");
    ImageDecoder full = new ImageDecoder(ImageDecoder.DEFAULT_MAX_PIXELS, ImageDecoder.DEFAULT_MAX_FILE_BYTES, JpegCodec.NATIVE);
    int rows = 0;
    int reduced = 0;
    try (BufferedReader r = new BufferedReader(new InputStreamReader(JpegDraftTest.class.getResourceAsStream("jpeg-draft-expected.tsv"), StandardCharsets.UTF_8))) {
      for (String line = r.readLine(); line != null; line = r.readLine()) {
        if (line.startsWith("#") || line.isBlank()) continue;
        String[] c = line.split("\t");
        String name = c[0];
        int draft = Integer.parseInt(c[1]);
        String what = name + " draft " + draft;
        byte[] bytes = resource(name);
        DecodedImage im = full.withJpegDraft(draft).decode(Path.of(name), bytes);
        DecodedImage whole = full.decode(Path.of(name), bytes);
        assertEquals(c[2], im.mode().pillowName(), what);
        assertEquals(Integer.parseInt(c[3]), im.width(), what);
        assertEquals(Integer.parseInt(c[4]), im.height(), what);
        assertEquals(c[5], Downloader.sha256(im.numpyBytes()), what + ": decoded pixels");
        // The size recorded for the metadata stays the file's.
        assertEquals(whole.width(), im.sourceWidth(), what);
        assertEquals(whole.height(), im.sourceHeight(), what);
        int resolution = draft == 0 ? 224 : draft;
        assertEquals(c[6], Downloader.sha256(new ClipPreprocessor(resolution).rgb8(im)), what + ": CLIP transform");
        rows++;
        if (im.width() < whole.width()) reduced++;
      }
    }
    assertEquals(48, rows, "fixture rows");
    assertTrue(reduced >= 20, "most rows decode at a reduced scale: " + reduced);
  }

  @Test
  void scaleIsPillowsRule() {
    Random rnd = new Random(7);
    for (int i = 0; i < 100_000; i++) {
      int w = 1 + rnd.nextInt(20_000);
      int h = 1 + rnd.nextInt(20_000);
      int d = 1 + rnd.nextInt(1_000);
      int s = NativeJpeg.draftScale(w, h, d);
      int ratio = Math.min(w / d, h / d);
      // The largest of 8, 4, 2, 1 not above the ratio, so both decoded sides stay >= d when s > 1.
      assertEquals(ratio >= 8 ? 8 : ratio >= 4 ? 4 : ratio >= 2 ? 2 : 1, s, w + "x" + h + " draft " + d);
      if (s > 1) assertTrue((w + s - 1) / s >= d && (h + s - 1) / s >= d);
    }
    assertEquals(1, NativeJpeg.draftScale(4000, 3000, 0), "0 = no draft");
  }

  @Test
  void otherFormatsAndTheJavaPath() throws Exception {
    ImageDecoder java = new ImageDecoder(ImageDecoder.DEFAULT_MAX_PIXELS, ImageDecoder.DEFAULT_MAX_FILE_BYTES, JpegCodec.JAVA);
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> java.withJpegDraft(224));
    assertTrue(e.getMessage().contains("libjpeg-turbo"), e.getMessage());
    assertSame(java, java.withJpegDraft(0));
    assertThrows(IllegalArgumentException.class, () -> new ImageDecoder().withJpegDraft(-1));
    assumeTrue(NativeJpeg.get() != null, "libturbojpeg not installed");
    // A WebP (no draft in Pillow's WebP plugin) decodes at full size.
    ImageDecoder d = new ImageDecoder().withJpegDraft(8);
    byte[] webp = resource("synthetic-q80.webp");
    DecodedImage a = d.decode(Path.of("x.webp"), webp);
    DecodedImage b = new ImageDecoder().decode(Path.of("x.webp"), webp);
    assertEquals(b.width(), a.width());
    assertEquals(Downloader.sha256(b.numpyBytes()), Downloader.sha256(a.numpyBytes()));
    assertEquals(8, d.jpegDraft());
  }
}
