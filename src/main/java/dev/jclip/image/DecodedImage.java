package dev.jclip.image;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Objects;

/**
 * An image as Pillow holds it after {@code Image.open(...).load()}: a mode and the pixels in that
 * mode, before any conversion. Keeping the mode matters because Pillow resizes in the image's own
 * mode (palette images by index with NEAREST, RGBA premultiplied, grayscale as one channel) and
 * only then converts to RGB.
 */
public final class DecodedImage {
  /** Pillow's image modes that the decoders produce. */
  public enum Mode {
    /** Bilevel ("1"): one byte per pixel, 0 or 255. */
    BILEVEL("1", 1),
    L("L", 1),
    LA("LA", 2),
    /** Palette indices, one byte per pixel, with a 256-entry RGB palette. */
    P("P", 1),
    RGB("RGB", 3),
    RGBA("RGBA", 4),
    /** 32-bit signed integers (16-bit grayscale PNGs open in this mode). */
    I("I", 1),
    CMYK("CMYK", 4);

    private final String pillowName;
    private final int channels;

    Mode(String pillowName, int channels) {
      this.pillowName = pillowName;
      this.channels = channels;
    }

    /** The mode's name in Pillow ("1", "L", "RGBA", ...). */
    public String pillowName() {
      return pillowName;
    }

    /** Samples per pixel. */
    public int channels() {
      return channels;
    }
  }

  private final String format;
  private final Mode mode;
  private final int width;
  private final int height;
  private final byte[] pixels;
  private final int[] ints;
  private final byte[] palette;
  private final int sourceWidth;
  private final int sourceHeight;

  private DecodedImage(String format, Mode mode, int width, int height, byte[] pixels, int[] ints, byte[] palette) {
    this(format, mode, width, height, pixels, ints, palette, width, height);
  }

  private DecodedImage(
      String format, Mode mode, int width, int height, byte[] pixels, int[] ints, byte[] palette, int sourceWidth, int sourceHeight) {
    this.sourceWidth = sourceWidth;
    this.sourceHeight = sourceHeight;
    this.format = Objects.requireNonNull(format);
    this.mode = Objects.requireNonNull(mode);
    this.width = width;
    this.height = height;
    this.pixels = pixels;
    this.ints = ints;
    this.palette = palette;
    long n = (long) width * height;
    if (width <= 0 || height <= 0) throw new IllegalArgumentException("empty image " + width + "x" + height);
    if (mode == Mode.I ? ints.length != n : pixels.length != n * mode.channels()) {
      throw new IllegalArgumentException("pixel buffer does not match " + width + "x" + height + " " + mode);
    }
    if (mode == Mode.P && palette.length != 768) throw new IllegalArgumentException("palette must have 256 RGB entries");
  }

  /** An 8-bit image (every mode but P and I): interleaved samples, row-major. */
  public static DecodedImage of(String format, Mode mode, int width, int height, byte[] pixels) {
    if (mode == Mode.P || mode == Mode.I) throw new IllegalArgumentException("use palette() or ofInts() for " + mode);
    return new DecodedImage(format, mode, width, height, pixels, null, null);
  }

  /**
   * An 8-bit image decoded at a reduced scale (Pillow's {@code draft}): {@link #width()} and {@link
   * #height()} are the decoded size, {@link #sourceWidth()} and {@link #sourceHeight()} the file's.
   */
  static DecodedImage drafted(String format, Mode mode, int width, int height, byte[] pixels, int sourceWidth, int sourceHeight) {
    if (mode == Mode.P || mode == Mode.I) throw new IllegalArgumentException("no draft decoding for " + mode);
    return new DecodedImage(format, mode, width, height, pixels, null, null, sourceWidth, sourceHeight);
  }

  /** A palette image: indices and a palette of up to 256 RGB triplets (padded as Pillow pads it). */
  public static DecodedImage palette(String format, int width, int height, byte[] indices, byte[] rgbPalette) {
    byte[] pal = new byte[768];
    // Pillow's palette starts as a grayscale ramp; the file's entries overwrite its beginning.
    for (int i = 0; i < 256; i++) pal[3 * i] = pal[3 * i + 1] = pal[3 * i + 2] = (byte) i;
    System.arraycopy(rgbPalette, 0, pal, 0, Math.min(768, rgbPalette.length));
    return new DecodedImage(format, Mode.P, width, height, indices, null, pal);
  }

  /** A mode "I" image. */
  public static DecodedImage ofInts(String format, int width, int height, int[] values) {
    return new DecodedImage(format, Mode.I, width, height, null, values, null);
  }

  /** "JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF" (or "AWT" for {@link ImageDecoder#fromImage}). */
  public String format() {
    return format;
  }

  public Mode mode() {
    return mode;
  }

  public int width() {
    return width;
  }

  public int height() {
    return height;
  }

  /** The width the file declares: {@link #width()}, unless the image was decoded at a reduced scale. */
  public int sourceWidth() {
    return sourceWidth;
  }

  /** The height the file declares: {@link #height()}, unless the image was decoded at a reduced scale. */
  public int sourceHeight() {
    return sourceHeight;
  }

  /** The samples (not a copy: the preprocessing hot path reads them in place). Null for mode I. */
  byte[] pixels() {
    return pixels;
  }

  /** Mode I values (not a copy). */
  int[] ints() {
    return ints;
  }

  /** The 256-entry RGB palette of a P image (not a copy). */
  byte[] paletteBytes() {
    return palette;
  }

  /** The palette of a P image as 768 bytes (a copy), or null. */
  public byte[] palette() {
    return palette == null ? null : palette.clone();
  }

  /**
   * The bytes of {@code numpy.asarray(image)} for the Pillow image: uint8 samples (0/255 for mode
   * "1", indices for "P"), little-endian int32 for "I". Used to compare decoders with the
   * reference's {@code decoded_sha256}.
   */
  public byte[] numpyBytes() {
    if (mode == Mode.I) {
      ByteBuffer b = ByteBuffer.allocate(ints.length * 4).order(ByteOrder.LITTLE_ENDIAN);
      b.asIntBuffer().put(ints);
      return b.array();
    }
    // Mode "1" too: Pillow hands numpy the bytes 0/255 under a bool dtype.
    return pixels.clone();
  }

  /** numpy's shape of {@link #numpyBytes()}: [H, W] for one channel, else [H, W, C]. */
  public long[] numpyShape() {
    return mode.channels() == 1 ? new long[] {height, width} : new long[] {height, width, mode.channels()};
  }

  @Override
  public String toString() {
    return format + " " + mode.pillowName() + " " + width + "x" + height;
  }
}
