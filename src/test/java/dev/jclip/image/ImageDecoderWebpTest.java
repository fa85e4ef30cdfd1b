package dev.jclip.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.jclip.io.Downloader;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

/**
 * WebP through libwebp: the fixtures (made by make-webp-fixtures.py beside them from synthetic
 * content) must decode to exactly what Pillow 9.4 gave, whose hashes the script printed.
 */
class ImageDecoderWebpTest {
  private static byte[] fixture(String name) throws IOException {
    try (InputStream in = ImageDecoderWebpTest.class.getResourceAsStream(name)) {
      return in.readAllBytes();
    }
  }

  @ParameterizedTest
  @CsvSource({
    "synthetic-q80.webp, RGB, c192921d85837aa634fe3f8f62c72ac803ff8d962b4fd735189a99a4f47f7091",
    "synthetic-alpha-q80.webp, RGBA, 48d1e7810afa9e68d23c1270a1116d7170457c676cfcc4468d53a48ed8ed939e",
    "synthetic-lossless.webp, RGB, 9665b4ad0112fb317c2a341fb8c92040c030b9ea3e48f709408df81d0e5633fa",
  })
  void decodesAsPillowDoes(String name, String mode, String sha) throws Exception {
    assumeTrue(NativeWebp.get() != null, "libwebp is not installed (Debian package libwebp7)");
    DecodedImage im = new ImageDecoder().decode(Path.of(name), fixture(name));
    assertEquals(mode, im.mode().pillowName());
    assertEquals(64, im.width());
    assertEquals(48, im.height());
    assertEquals(sha, Downloader.sha256(im.numpyBytes()));
  }

  @Test
  void truncatedWebpIsAnError() throws Exception {
    byte[] b = fixture("synthetic-q80.webp");
    ImageDecoder d = new ImageDecoder();
    for (int keep : new int[] {b.length / 2, 30, 16}) {
      var e = assertThrows(ImageDecodeException.class, () -> d.decode(Path.of("cut.webp"), Arrays.copyOf(b, keep)));
      assertEquals(true, e.getMessage().startsWith("cut.webp: "), e.getMessage());
    }
  }
}
