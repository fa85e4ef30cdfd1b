package dev.jclip.image;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.BeforeAll;

/** {@link ImageDecoderTest} with JPEGs decoded by the system's libjpeg-turbo ({@link NativeJpeg}). */
class ImageDecoderNativeJpegTest extends ImageDecoderTest {
  @BeforeAll
  static void library() {
    assumeTrue(NativeJpeg.get() != null, "libturbojpeg.so.0 is not installed (package libturbojpeg0): native JPEG path skipped");
  }

  @Override
  ImageDecoder.JpegCodec codec() {
    return ImageDecoder.JpegCodec.NATIVE;
  }
}
