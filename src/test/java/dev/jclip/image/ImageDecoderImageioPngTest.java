package dev.jclip.image;

/** {@link ImageDecoderTest} with every PNG decoded by the JDK's ImageIO reader ({@code jclip.png=imageio}). */
class ImageDecoderImageioPngTest extends ImageDecoderTest {
  @Override
  ImageDecoder.PngCodec png() {
    return ImageDecoder.PngCodec.IMAGEIO;
  }
}
