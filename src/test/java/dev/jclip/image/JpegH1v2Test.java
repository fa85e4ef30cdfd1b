package dev.jclip.image;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.jclip.io.Downloader;
import java.io.InputStream;
import java.nio.file.Path;
import dev.jclip.image.ImageDecoder.JpegCodec;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * 4:4:0 JPEGs (what lossless rotation makes of 4:2:2 photos), where libjpeg 6b and
 * libjpeg-turbo upsample chroma differently: the fixtures (make-jpeg440-fixtures.py beside them)
 * must decode to the hash Pillow 9.4 printed for them, on the Java path and on the native one.
 */
class JpegH1v2Test {
  private static final String PILLOW_SHA256 = "03ad794f2eeec3aa708399aabd2a978a2470f466a596161d170cdb4de41d8ec2";

  @ParameterizedTest
  @CsvSource({"synthetic-440.jpg, JAVA", "synthetic-440-progressive.jpg, JAVA", "synthetic-440.jpg, NATIVE", "synthetic-440-progressive.jpg, NATIVE"})
  void decodesAsLibjpegTurboDoes(String name, JpegCodec codec) throws Exception {
    Assumptions.assumeTrue(codec != JpegCodec.NATIVE || NativeJpeg.get() != null, "libturbojpeg.so.0 not installed (package libturbojpeg0): native JPEG path skipped");
    byte[] b;
    try (InputStream in = JpegH1v2Test.class.getResourceAsStream(name)) {
      b = in.readAllBytes();
    }
    DecodedImage im = new ImageDecoder(ImageDecoder.DEFAULT_MAX_PIXELS, ImageDecoder.DEFAULT_MAX_FILE_BYTES, codec).decode(Path.of(name), b);
    assertEquals(DecodedImage.Mode.RGB, im.mode());
    assertEquals(37, im.width());
    assertEquals(50, im.height());
    assertEquals(PILLOW_SHA256, Downloader.sha256(im.numpyBytes()));
  }
}
