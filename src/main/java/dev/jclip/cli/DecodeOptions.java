package dev.jclip.cli;

import dev.jclip.image.ImageDecoder;
import picocli.CommandLine.Option;

/** The image-decoding option of the commands that read images (a picocli mixin). */
final class DecodeOptions {
  @Option(names = "--jpeg-draft",
      description = "Decode JPEGs at 1/2, 1/4 or 1/8 scale first, as Pillow's Image.draft(\"RGB\", (R, R)) with R the model's input size: "
          + "cheaper decoding of large photos (how much depends on their bitrate); features differ slightly from the reference preprocess.")
  boolean jpegDraft;

  @Option(names = "--max-pixels", paramLabel = "N",
      description = "Refuse images of more than N pixels (decompression bombs; the default is where Pillow refuses, twice its"
          + " MAX_IMAGE_PIXELS: ${DEFAULT-VALUE}).")
  long maxPixels = ImageDecoder.DEFAULT_MAX_PIXELS;

  /** What is wrong with these options, or null (a usage error). */
  String invalid() {
    return maxPixels <= 0 ? "--max-pixels must be positive, got " + maxPixels : null;
  }

  /** The decoder these options ask for, for a model whose input is {@code resolution} pixels square. */
  ImageDecoder decoder(int resolution) {
    return new ImageDecoder(maxPixels).withJpegDraft(jpegDraft ? resolution : 0);
  }
}
