package dev.jclip.image;

import java.awt.image.BufferedImage;
import java.awt.image.ColorModel;
import java.awt.image.IndexColorModel;
import java.awt.image.Raster;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.stream.ImageInputStream;
import javax.imageio.stream.MemoryCacheImageInputStream;

/**
 * Decodes image files into the mode and pixels that Pillow 9.4's {@code Image.open} gives.
 *
 * <p>Decoders, chosen for identical output (docs/preprocessing.md has the measurements): JPEG by
 * the system's libjpeg-turbo (Pillow's own codec, {@link NativeJpeg}) when {@code
 * libturbojpeg.so.0} is installed, else (and for what it hands back: files with warnings, fatal
 * errors) by {@link JpegDecoder} (libjpeg-turbo's arithmetic in Java: ISLOW IDCT,
 * turbo's fancy upsampling, libjpeg's YCbCr tables), falling back to the JDK's libjpeg 6b reader
 * and then TwelveMonkeys for what it declines (CMYK/YCCK, arithmetic coding, damaged data). The
 * system property {@code jclip.jpeg} ({@code auto}, the default, {@code native} or {@code java})
 * or {@link JpegCodec} in the constructor chooses the JPEG path. PNG by our own reader ({@link
 * PngDecoder}: zlib through {@code java.util.zip.Inflater}, the filters written into Pillow's
 * layout) with the JDK's ImageIO reader for interlaced and unusual files ({@code jclip.png=imageio}
 * or {@link PngCodec} forces ImageIO for all); GIF (first frame) by our reader with the rules
 * of Pillow's LZW decoder ({@link GifDecoder}); BMP by the JDK's ImageIO reader (lossless); WebP
 * by the system's libwebp, Pillow's own decoder, when installed; TIFF (first page) by TwelveMonkeys' reader with Pillow's modes ({@link TiffDecoder}), lossy kinds and those
 * Pillow cannot open or preprocess refused by name.
 * The mode follows Pillow's rules: palette PNG and GIF stay palette indices ("P"), 16-bit
 * RGB/RGBA keep the high byte, 16-bit gray+alpha becomes RGBA, 16-bit gray 32-bit "I", 1-bit gray
 * "1", 2/4-bit gray are scaled to 8 bits, tRNS is ignored, a GIF's first frame sits on its logical
 * screen (grown to hold the frame).
 *
 * <p>Guard rails: the pixel count is read from the header and checked against {@link
 * #maxPixels()} before any pixel buffer is allocated (decompression bombs); a truncated or corrupt
 * file is an error naming the file, never a partially grey image.
 *
 * <pre>{@code
 * DecodedImage im = new ImageDecoder().decode(Path.of("cat.jpg"));   // RGB 640x480
 * }</pre>
 *
 * <p>Instances are thread-safe: each decoding in progress borrows a native JPEG handle with its
 * buffers, kept for the next decoding (at most one per processor; {@link #releaseBuffers()} drops
 * them, and they go with the instance).
 */
public final class ImageDecoder {
  /** Which decoder reads JPEG files; the default comes from the system property {@code jclip.jpeg}. */
  public enum JpegCodec {
    /** libjpeg-turbo when {@code libturbojpeg.so.0} loads, else the Java path. */
    AUTO,
    /** libjpeg-turbo, required: constructing the decoder fails when the library is absent. */
    NATIVE,
    /** The Java path only ({@link JpegDecoder}, then ImageIO), as before libjpeg-turbo was used. */
    JAVA;

    /** The system property that gives the default. */
    public static final String PROPERTY = "jclip.jpeg";

    /** The choice named by {@code -Djclip.jpeg=auto|native|java} (auto when unset). */
    public static JpegCodec fromSystemProperty() {
      return parse(System.getProperty(PROPERTY));
    }

    /** {@code auto}, {@code native} or {@code java}, any case; null means auto. */
    public static JpegCodec parse(String value) {
      if (value == null) return AUTO;
      try {
        return valueOf(value.trim().toUpperCase(Locale.ROOT));
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException("system property " + PROPERTY + "=" + value + ": expected auto, native or java", e);
      }
    }
  }

  /** Which decoder reads PNG files; the default comes from the system property {@code jclip.png}. */
  public enum PngCodec {
    /**
     * Our own reader ({@link PngDecoder}) with the system's libdeflate for complete streams when
     * {@code libdeflate.so.0} loads, ImageIO for what it declines (interlaced, APNG, odd chunks).
     */
    AUTO,
    /** Our own reader with {@code java.util.zip.Inflater} only (no libdeflate), ImageIO as for AUTO. */
    JAVA,
    /** The JDK's ImageIO reader for every PNG, as before {@link PngDecoder} existed. */
    IMAGEIO;

    /** The system property that gives the default. */
    public static final String PROPERTY = "jclip.png";

    /** The choice named by {@code -Djclip.png=auto|java|imageio} (auto when unset). */
    public static PngCodec fromSystemProperty() {
      return parse(System.getProperty(PROPERTY));
    }

    /** {@code auto}, {@code java} or {@code imageio}, any case; null means auto. */
    public static PngCodec parse(String value) {
      if (value == null) return AUTO;
      try {
        return valueOf(value.trim().toUpperCase(Locale.ROOT));
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException("system property " + PROPERTY + "=" + value + ": expected auto, java or imageio", e);
      }
    }
  }

  /** Pillow's DecompressionBombError threshold: 2 × MAX_IMAGE_PIXELS = 2 × 89,478,485. */
  public static final long DEFAULT_MAX_PIXELS = 2L * (1024L * 1024 * 1024 / 4 / 3);

  /** Files above this size are refused before reading (no image we accept needs more). */
  public static final long DEFAULT_MAX_FILE_BYTES = 1L << 30;

  private final long maxPixels;
  private final long maxFileBytes;
  /** False only in tests, to exercise the TwelveMonkeys fallback on ordinary files. */
  private final boolean jdkJpegFirst;
  /** False only in tests, to compare the ImageIO path with {@link JpegDecoder}. */
  private final boolean javaJpeg;
  /** libjpeg-turbo, or null for the Java path. */
  private final NativeJpeg nativeJpeg;
  /**
   * TurboJPEG handles with their native buffers, one per decoding in progress, kept for the next
   * (at most one per processor): the decoder's own, so that they go with it (a ThreadLocal would
   * keep one per thread and per decoder), and {@link #releaseBuffers()} drops them. Shared with
   * the instances {@link #withJpegDraft} derives.
   */
  private final ReusePool<NativeJpeg.Session> jpegSessions;

  /**
   * Drops the native JPEG handles and buffers kept between decodings (freed once unreachable); the
   * next decoding makes new ones. For a long-running service after a burst of large images.
   */
  public void releaseBuffers() {
    if (jpegSessions != null) jpegSessions.clear();
  }

  private final PngCodec pngCodec;
  /** Pillow's draft size for JPEGs (see {@link #withJpegDraft}), or 0 for full-size decoding. */
  private final int jpegDraft;

  public ImageDecoder() {
    this(DEFAULT_MAX_PIXELS);
  }

  /** @param maxPixels largest width × height accepted (decompression-bomb limit) */
  public ImageDecoder(long maxPixels) {
    this(maxPixels, DEFAULT_MAX_FILE_BYTES);
  }

  public ImageDecoder(long maxPixels, long maxFileBytes) {
    this(maxPixels, maxFileBytes, JpegCodec.fromSystemProperty());
  }

  /**
   * @param jpeg which JPEG decoder to use
   * @throws IllegalStateException {@link JpegCodec#NATIVE} and libturbojpeg cannot be loaded
   */
  public ImageDecoder(long maxPixels, long maxFileBytes, JpegCodec jpeg) {
    this(maxPixels, maxFileBytes, jpeg, PngCodec.fromSystemProperty());
  }

  /**
   * @param jpeg which JPEG decoder to use
   * @param png which PNG decoder to use
   * @throws IllegalStateException {@link JpegCodec#NATIVE} and libturbojpeg cannot be loaded
   */
  public ImageDecoder(long maxPixels, long maxFileBytes, JpegCodec jpeg, PngCodec png) {
    this(maxPixels, maxFileBytes, jpeg, png, true, true);
  }

  /** The Java JPEG path with test switches (the native decoder would bypass what they test). */
  ImageDecoder(long maxPixels, long maxFileBytes, boolean jdkJpegFirst, boolean javaJpeg) {
    this(maxPixels, maxFileBytes, JpegCodec.JAVA, PngCodec.fromSystemProperty(), jdkJpegFirst, javaJpeg);
  }

  /**
   * Which decoder reads baseline and progressive JPEG files: "libjpeg-turbo (libturbojpeg.so.0)"
   * or "Java" with the reason, for logs and job records (the Java path is 2-3x slower per core).
   */
  public String jpegDecoder() {
    if (nativeJpeg != null) return "libjpeg-turbo (libturbojpeg.so.0)";
    return NativeJpeg.get() != null ? "Java (as asked: -D" + JpegCodec.PROPERTY + "=java)"
        : "Java (libturbojpeg.so.0 not found: install libturbojpeg0 for 2-3x faster decoding)";
  }

  private ImageDecoder(long maxPixels, long maxFileBytes, JpegCodec jpeg, PngCodec png, boolean jdkJpegFirst, boolean javaJpeg) {
    if (maxPixels <= 0 || maxFileBytes <= 0) throw new IllegalArgumentException("limits must be positive");
    this.pngCodec = java.util.Objects.requireNonNull(png);
    this.maxPixels = maxPixels;
    this.maxFileBytes = maxFileBytes;
    this.jdkJpegFirst = jdkJpegFirst;
    this.javaJpeg = javaJpeg;
    NativeJpeg lib = jpeg == JpegCodec.JAVA ? null : NativeJpeg.get();
    if (jpeg == JpegCodec.NATIVE && lib == null) {
      throw new IllegalStateException(
          "the native JPEG decoder was requested but libturbojpeg.so.0 (Debian/Ubuntu package libturbojpeg0) could not be loaded");
    }
    this.nativeJpeg = lib;
    // TurboJPEG handles, made as decodings need them and kept for the next.
    this.jpegSessions = lib == null ? null : new ReusePool<>(lib::newSession);
    this.jpegDraft = 0;
  }

  private ImageDecoder(ImageDecoder d, int jpegDraft) {
    this.pngCodec = d.pngCodec;
    this.maxPixels = d.maxPixels;
    this.maxFileBytes = d.maxFileBytes;
    this.jdkJpegFirst = d.jdkJpegFirst;
    this.javaJpeg = d.javaJpeg;
    this.nativeJpeg = d.nativeJpeg;
    this.jpegSessions = d.jpegSessions;
    this.jpegDraft = jpegDraft;
  }

  /**
   * This decoder, decoding JPEGs as Pillow does after {@code image.draft("RGB", (size, size))}: at
   * 1/2, 1/4 or 1/8 scale straight from the DCT coefficients, the smallest that keeps both sides at
   * least {@code size} pixels (Pillow's rule, so a 4000x3000 photo with size 224 decodes as
   * 500x375). The bytes equal Pillow's draft decoding; the CLIP transform that follows is
   * unchanged, but its input is not the full-size image, so features differ slightly from the
   * reference {@code preprocess}. It saves the inverse DCT, upsampling and colour conversion of the
   * full image, not the entropy decoding, so the gain depends on the bitrate (docs/preprocessing.md). Files
   * libjpeg-turbo reports damage in (which go to the exact Java path) and other formats are decoded
   * at full size.
   *
   * @param size the draft size (the model's input resolution), or 0 for full-size decoding
   * @throws IllegalStateException {@code size > 0} and libturbojpeg is not available (the Java
   *     decoder has no scaled inverse DCT)
   */
  public ImageDecoder withJpegDraft(int size) {
    if (size < 0) throw new IllegalArgumentException("draft size must be positive, got " + size);
    if (size > 0 && nativeJpeg == null) {
      throw new IllegalStateException(
          "reduced-scale JPEG decoding (draft) needs libjpeg-turbo: libturbojpeg.so.0 (Debian/Ubuntu package libturbojpeg0) could not be loaded"
              + (System.getProperty(JpegCodec.PROPERTY) != null ? " or -D" + JpegCodec.PROPERTY + " chose the Java decoder" : ""));
    }
    return size == jpegDraft ? this : new ImageDecoder(this, size);
  }

  /** The draft size for JPEGs, or 0 when they are decoded at full size. */
  public int jpegDraft() {
    return jpegDraft;
  }

  /** The JPEG path in use: {@link JpegCodec#NATIVE} or {@link JpegCodec#JAVA}. */
  public JpegCodec jpegCodec() {
    return nativeJpeg != null ? JpegCodec.NATIVE : JpegCodec.JAVA;
  }

  /** The PNG path chosen: {@link PngCodec#AUTO}, {@link PngCodec#JAVA} or {@link PngCodec#IMAGEIO}. */
  public PngCodec pngCodec() {
    return pngCodec;
  }

  public long maxPixels() {
    return maxPixels;
  }

  /** Decodes a file; the format is recognised from its content, not its name (as Pillow does). */
  public DecodedImage decode(Path file) throws ImageDecodeException {
    byte[] bytes = readFile(file);
    return decode(file, bytes);
  }

  /**
   * Decodes in-memory file content.
   *
   * @param file the name to use in messages (may be null)
   */
  public DecodedImage decode(Path file, byte[] bytes) throws ImageDecodeException {
    if (bytes.length == 0) throw new ImageDecodeException(file, "empty file (0 bytes), not an image");
    Format format = Format.sniff(bytes);
    if (format == null) {
      throw new ImageDecodeException(
          file, "not a recognised image format (JPEG, PNG, GIF, BMP, WebP or TIFF expected; the content does not start with any of their signatures)");
    }
    try {
      return switch (format) {
        case PNG -> decodePng(file, bytes);
        case JPEG -> decodeJpeg(file, bytes);
        case WEBP -> {
          NativeWebp webp = NativeWebp.get();
          yield webp != null ? webp.decode(file, bytes, this) : decodeOther(file, bytes, format);
        }
        case GIF -> GifDecoder.decode(file, bytes, this);
        case BMP -> decodeOther(file, bytes, format);
        case TIFF -> TiffDecoder.decode(file, bytes, this);
      };
    } catch (ImageDecodeException e) {
      throw e;
    } catch (IOException | RuntimeException e) {
      // ImageIO reports corrupt data with IIOException and, for some malformed headers, with
      // runtime exceptions from deep inside the codec: either way the file is unusable.
      String msg = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
      // a codec's own bug on hostile data says little by its message alone ("-2"): name what it threw
      if (e instanceof RuntimeException && e.getMessage() != null) msg = "the decoder failed (" + e.getClass().getSimpleName() + ": " + msg + ")";
      Throwable c = e.getCause();
      if (c != null && c.getMessage() != null && !msg.contains(c.getMessage())) msg += " (" + c.getMessage() + ")";
      throw new ImageDecodeException(file, "corrupt or truncated " + format + " file: " + msg, e);
    } catch (OutOfMemoryError e) {
      throw new ImageDecodeException(file, "not enough memory to decode this " + format + " image", e);
    }
  }

  private byte[] readFile(Path file) throws ImageDecodeException {
    try {
      if (Files.isDirectory(file)) throw new ImageDecodeException(file, "is a directory, not an image file");
      if (!Files.isRegularFile(file) && Files.exists(file)) {
        // a named pipe would block the reader for good, a device (/dev/zero) never end
        throw new ImageDecodeException(file, "not a regular file (a pipe, socket or device), not read");
      }
      long size = Files.size(file);
      if (size > maxFileBytes) {
        throw new ImageDecodeException(file, "file of " + size + " bytes is larger than the limit of " + maxFileBytes);
      }
      return Files.readAllBytes(file);
    } catch (NoSuchFileException e) {
      throw new ImageDecodeException(file, "no such file");
    } catch (AccessDeniedException e) {
      throw new ImageDecodeException(file, "permission denied");
    } catch (ImageDecodeException e) {
      throw e;
    } catch (IOException e) {
      throw new ImageDecodeException(file, "cannot read: " + e.getMessage(), e);
    }
  }

  enum Format {
    PNG,
    JPEG,
    GIF,
    BMP,
    WEBP,
    TIFF;

    static Format sniff(byte[] b) {
      if (startsWith(b, 0, 0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A)) return PNG;
      if (startsWith(b, 0, 0xFF, 0xD8, 0xFF)) return JPEG;
      if (startsWith(b, 0, 'G', 'I', 'F', '8')) return GIF;
      if (startsWith(b, 0, 'B', 'M')) return BMP;
      if (startsWith(b, 0, 'R', 'I', 'F', 'F') && startsWith(b, 8, 'W', 'E', 'B', 'P')) return WEBP;
      // Pillow 9.4's TIFF PREFIXES: classic TIFF, the same with the version bytes swapped (which
      // Pillow reads in the byte order of "II" / "MM"), then BigTIFF (big-endian recognised so
      // that it is refused by name).
      if (startsWith(b, 0, 'I', 'I', 42, 0) || startsWith(b, 0, 'M', 'M', 0, 42)) return TIFF;
      if (startsWith(b, 0, 'I', 'I', 0, 42) || startsWith(b, 0, 'M', 'M', 42, 0)) return TIFF;
      if (startsWith(b, 0, 'I', 'I', 43, 0) || startsWith(b, 0, 'M', 'M', 0, 43)) return TIFF;
      return null;
    }

    private static boolean startsWith(byte[] b, int off, int... sig) {
      if (b.length < off + sig.length) return false;
      for (int i = 0; i < sig.length; i++) if ((b[off + i] & 0xff) != sig[i]) return false;
      return true;
    }
  }

  void checkPixels(Path file, Format f, long w, long h) throws ImageDecodeException {
    if (w <= 0 || h <= 0) throw new ImageDecodeException(file, f + " header gives an empty size " + w + "x" + h);
    long n; // a BigTIFF's sizes may be up to 2^61: their product must not wrap round below the limit
    try {
      n = Math.multiplyExact(w, h);
    } catch (ArithmeticException overflow) {
      n = Long.MAX_VALUE;
    }
    if (n > maxPixels) {
      throw new ImageDecodeException(
          file,
          "image is "
              + w
              + "x"
              + h
              + " = "
              + (n == Long.MAX_VALUE ? "more than " + Long.MAX_VALUE : n)
              + " pixels, above the limit of "
              + maxPixels
              + " (possible decompression bomb; raise the limit if the image is genuine: --max-pixels, or in Java clip.preprocess(new ImageDecoder(maxPixels).decode(path)))");
    }
    if (n > Integer.MAX_VALUE / 4 - 8) {
      // Java arrays stop at 2^31 elements: 4 bytes per pixel must fit in one.
      throw new ImageDecodeException(file, "image is " + w + "x" + h + " = " + n + " pixels, too large for one Java array");
    }
  }

  // ---------------------------------------------------------------- PNG

  private DecodedImage decodePng(Path file, byte[] b) throws IOException {
    // IHDR must be the first chunk: length 13 at byte 8, type at 12, data at 16.
    if (b.length < 33 || !(b[12] == 'I' && b[13] == 'H' && b[14] == 'D' && b[15] == 'R')) {
      throw new ImageDecodeException(file, "corrupt PNG file: no IHDR chunk after the signature");
    }
    long w = be32(b, 16);
    long h = be32(b, 20);
    int depth = b[24] & 0xff;
    int colorType = b[25] & 0xff;
    checkPixels(file, Format.PNG, w, h);
    if (pngCodec != PngCodec.IMAGEIO) {
      try {
        return PngDecoder.decode(file, b, pngCodec == PngCodec.AUTO ? NativeDeflate.get() : null);
      } catch (PngDecoder.Unsupported e) {
        // Interlaced, animated or unusual: ImageIO below, exactly as before our reader existed.
      }
    }
    Raster r;
    ColorModel cm;
    {
      BufferedImage im = read(file, b, Format.PNG, new ArrayList<>());
      r = im.getRaster();
      cm = im.getColorModel();
    }
    int W = (int) w;
    int H = (int) h;
    if (r.getWidth() != W || r.getHeight() != H) {
      throw new ImageDecodeException(file, "PNG decoder returned " + r.getWidth() + "x" + r.getHeight() + ", header says " + w + "x" + h);
    }
    String fmt = "PNG";
    switch (colorType) {
      case 0 -> {
        if (depth == 16) {
          int[] v = new int[W * H];
          int[] row = new int[W * r.getNumBands()];
          for (int y = 0; y < H; y++) {
            r.getPixels(0, y, W, 1, row);
            for (int x = 0; x < W; x++) v[y * W + x] = row[x * r.getNumBands()];
          }
          return DecodedImage.ofInts(fmt, W, H, v);
        }
        // 1-bit gray is Pillow's mode "1"; 2- and 4-bit are unpacked to L by multiplying. With a
        // tRNS chunk ImageIO adds an alpha band and has already scaled the samples to 8 bits
        // (round(s * 255 / max): the same values).
        int scale = r.getSampleModel().getSampleSize(0) == 8 ? 1 : switch (depth) {
          case 1 -> 255;
          case 2 -> 0x55;
          case 4 -> 0x11;
          default -> 1;
        };
        byte[] px = bands(r, new int[] {0}, 0, scale);
        return DecodedImage.of(fmt, depth == 1 ? DecodedImage.Mode.BILEVEL : DecodedImage.Mode.L, W, H, px);
      }
      case 2 -> {
        return DecodedImage.of(fmt, DecodedImage.Mode.RGB, W, H, bands(r, new int[] {0, 1, 2}, depth == 16 ? 8 : 0, 1));
      }
      case 3 -> {
        if (!(cm instanceof IndexColorModel icm)) {
          throw new ImageDecodeException(file, "palette PNG decoded without a palette");
        }
        // Only the PLTE's own entries: ImageIO pads the colour model to 2^depth entries with
        // black, Pillow pads its palette with a gray ramp (index i -> (i, i, i)).
        byte[] pal = paletteOf(icm);
        int entries = pngPaletteEntries(b);
        if (entries >= 0 && entries * 3 < pal.length) pal = java.util.Arrays.copyOf(pal, entries * 3);
        return DecodedImage.palette(fmt, W, H, bands(r, new int[] {0}, 0, 1), pal);
      }
      case 4 -> {
        if (depth == 16) {
          // Pillow opens 16-bit gray+alpha as RGBA (rawmode "LA;16B"): high bytes, gray replicated.
          return DecodedImage.of(fmt, DecodedImage.Mode.RGBA, W, H, bands(r, new int[] {0, 0, 0, 1}, 8, 1));
        }
        return DecodedImage.of(fmt, DecodedImage.Mode.LA, W, H, bands(r, new int[] {0, 1}, 0, 1));
      }
      case 6 -> {
        return DecodedImage.of(fmt, DecodedImage.Mode.RGBA, W, H, bands(r, new int[] {0, 1, 2, 3}, depth == 16 ? 8 : 0, 1));
      }
      default -> throw new ImageDecodeException(file, "corrupt PNG file: unknown colour type " + colorType);
    }
  }

  /** Entries in the PNG's PLTE chunk, or -1 when there is none (chunks walked from IHDR on). */
  static int pngPaletteEntries(byte[] b) {
    int i = 8;
    while (i + 8 <= b.length) {
      long len = be32(b, i);
      if (b[i + 4] == 'P' && b[i + 5] == 'L' && b[i + 6] == 'T' && b[i + 7] == 'E') return (int) Math.min(len / 3, 256);
      if (b[i + 4] == 'I' && b[i + 5] == 'D' && b[i + 6] == 'A' && b[i + 7] == 'T') return -1;
      if (len > b.length) return -1;
      i += 12 + (int) len;
    }
    return -1;
  }

  /** A big-endian unsigned 32-bit field (PNG's lengths and sizes). */
  private static long be32(byte[] b, int off) {
    return PngDecoder.be32(b, off) & 0xffffffffL;
  }

  // ---------------------------------------------------------------- JPEG

  private DecodedImage decodeJpeg(Path file, byte[] b) throws IOException {
    checkJpegScans(file, b);
    int components = jpegComponents(b);
    if ((components == 1 || components == 3 || components == 4) && nativeJpeg != null) {
      // Pillow's own codec; null hands the file to the Java path (warnings, errors).
      NativeJpeg.Session session = jpegSessions.borrow();
      DecodedImage im;
      try {
        im = nativeJpeg.decode(session, file, b, this, jpegDraft);
      } finally {
        jpegSessions.giveBack(session);
      }
      if (im != null) return im;
    }
    if ((components == 1 || components == 3) && javaJpeg) {
      // The common case, several times faster than ImageIO and with libjpeg-turbo's output; any
      // file it does not handle (or any doubt about the data) goes to ImageIO below.
      try {
        return JpegDecoder.decode(b, maxPixels);
      } catch (JpegDecoder.Unsupported e) {
        // fall through
      }
    }
    if (components != 4 && jdkJpegFirst) {
      // The JDK's own reader first: it is libjpeg with Pillow's defaults and skips the extra
      // stream layer of TwelveMonkeys; TwelveMonkeys then handles what it refuses (odd ICC
      // profiles, broken metadata), and CMYK/YCCK.
      try {
        return decodeJpeg(file, b, components, true);
      } catch (ImageDecodeException e) {
        throw e;
      } catch (IOException | RuntimeException e) {
        // fall through to TwelveMonkeys
      }
    }
    return decodeJpeg(file, b, components, false);
  }

  private DecodedImage decodeJpeg(Path file, byte[] b, int components, boolean jdk) throws IOException {
    List<String> warnings = new ArrayList<>();
    ImageReader reader = jdk ? jdkJpegReader(file, b) : reader(file, b, Format.JPEG);
    try {
      reader.addIIOReadWarningListener((src, w) -> warnings.add(w));
      checkPixels(file, Format.JPEG, reader.getWidth(0), reader.getHeight(0));
      Raster r;
      boolean[] h1v2 = jdk ? JpegH1v2.components(b) : null;
      if (h1v2 != null) {
        // 4:4:0 chroma: libjpeg 6b duplicates rows where libjpeg-turbo interpolates them.
        r = reader.readRaster(0, null);
        checkWarnings(file, Format.JPEG, warnings);
        if (r.getNumBands() == 3) {
          byte[] ycc = bands(r, new int[] {0, 1, 2}, 0, 1);
          JpegH1v2.toRgb(ycc, r.getWidth(), r.getHeight(), h1v2);
          return DecodedImage.of("JPEG", DecodedImage.Mode.RGB, r.getWidth(), r.getHeight(), ycc);
        }
        throw new IOException("raw JPEG raster has " + r.getNumBands() + " bands"); // caller falls back
      } else if (components == 4) {
        // CMYK/YCCK: the raw raster, without the colour management ImageIO would apply.
        r = reader.readRaster(0, null);
      } else if (!jdk && components == 3) {
        // Fallback for files the JDK's reader refused: TwelveMonkeys' read() may apply an embedded
        // ICC profile; the raw raster plus libjpeg's own YCbCr conversion does not.
        r = reader.readRaster(0, null);
        checkWarnings(file, Format.JPEG, warnings);
        if (r.getNumBands() != 3) throw new ImageDecodeException(file, "JPEG raster has " + r.getNumBands() + " bands");
        byte[] px = bands(r, new int[] {0, 1, 2}, 0, 1);
        if (JpegH1v2.isYcc(b)) {
          boolean[] flags = JpegH1v2.components(b);
          JpegH1v2.toRgb(px, r.getWidth(), r.getHeight(), flags == null ? new boolean[3] : flags);
        }
        return DecodedImage.of("JPEG", DecodedImage.Mode.RGB, r.getWidth(), r.getHeight(), px);
      } else {
        r = reader.read(0).getRaster();
      }
      checkWarnings(file, Format.JPEG, warnings);
      int W = r.getWidth();
      int H = r.getHeight();
      return switch (r.getNumBands()) {
        case 1 -> DecodedImage.of("JPEG", DecodedImage.Mode.L, W, H, bands(r, new int[] {0}, 0, 1));
        case 3 -> DecodedImage.of("JPEG", DecodedImage.Mode.RGB, W, H, bands(r, new int[] {0, 1, 2}, 0, 1));
        case 4 -> {
          // Pillow reads 4-component JPEGs as "CMYK;I" (Adobe's inverted convention), after
          // libjpeg's YCCK -> CMYK conversion where the Adobe marker says YCCK (the raw raster
          // is still YCCK).
          byte[] px = bands(r, new int[] {0, 1, 2, 3}, 0, 1);
          if (JpegH1v2.isYcck(b)) JpegH1v2.ycckToCmyk(px);
          for (int i = 0; i < px.length; i++) px[i] = (byte) (255 - (px[i] & 0xff));
          yield DecodedImage.of("JPEG", DecodedImage.Mode.CMYK, W, H, px);
        }
        default -> throw new ImageDecodeException(file, "JPEG with " + r.getNumBands() + " components is not supported");
      };
    } finally {
      reader.dispose();
    }
  }

  /** Number of components from the first SOF marker, or -1. */
  static int jpegComponents(byte[] b) {
    int i = jpegSof(b);
    return i < 0 ? -1 : b[i + 9] & 0xff;
  }

  /** Whether the first SOF marker is one of arithmetic coding's (SOF9..SOF15 but DHP/JPG). */
  static boolean jpegArithmetic(byte[] b) {
    int i = jpegSof(b);
    return i >= 0 && (b[i + 1] & 0xff) >= 0xC9;
  }

  /** The most scans a JPEG may have (a progressive one has about 10; each scan walks every block). */
  static final int MAX_JPEG_SCANS = 1000;

  /** The most scans times pixels: about 64 passes over an image at the default pixel limit. */
  static final long MAX_JPEG_SCAN_PIXELS = 64 * DEFAULT_MAX_PIXELS;

  /**
   * Refuses a JPEG whose scans would take minutes to decode however small the file (thousands of
   * tiny progressive scans, each a pass over every block): more than {@link #MAX_JPEG_SCANS}, or
   * more scans times pixels than {@link #MAX_JPEG_SCAN_PIXELS}. Pillow has no such limit (it
   * would decode them, slowly); libjpeg-turbo's own tools and TurboJPEG 3 offer one for this reason.
   */
  static void checkJpegScans(Path file, byte[] b) throws ImageDecodeException {
    int sof = jpegSof(b);
    long pixels = sof < 0 ? 0 : (long) (((b[sof + 5] & 0xff) << 8) | (b[sof + 6] & 0xff)) * (((b[sof + 7] & 0xff) << 8) | (b[sof + 8] & 0xff));
    int scans = 0;
    int i = 2;
    while (i + 3 < b.length) {
      if ((b[i] & 0xff) != 0xFF) {
        i++; // entropy-coded data, or bytes between segments: on to the next marker
        continue;
      }
      int m = b[i + 1] & 0xff;
      if (m == 0xFF || m == 0x00 || (m >= 0xD0 && m <= 0xD7) || m == 0x01) {
        i++; // fill byte, stuffed zero, restart marker or TEM: no segment
        continue;
      }
      if (m == 0xD9) break;
      int len = ((b[i + 2] & 0xff) << 8) | (b[i + 3] & 0xff);
      if (m == 0xDA && (++scans > MAX_JPEG_SCANS || scans * pixels > MAX_JPEG_SCAN_PIXELS)) {
        throw new ImageDecodeException(file, "JPEG with " + (scans > MAX_JPEG_SCANS ? "more than " + MAX_JPEG_SCANS : "at least " + scans)
            + " scans of " + pixels + " pixels: refused, as decoding it would take minutes (a progressive JPEG has about 10 scans)");
      }
      i += 2 + Math.max(len, 2);
    }
  }

  /** Offset of the first SOF marker (its 0xFF byte), or -1. */
  private static int jpegSof(byte[] b) {
    int i = 2;
    while (i + 9 < b.length) {
      if ((b[i] & 0xff) != 0xFF) return -1;
      int m = b[i + 1] & 0xff;
      if (m == 0xFF) {
        i++;
        continue;
      }
      int len = ((b[i + 2] & 0xff) << 8) | (b[i + 3] & 0xff);
      boolean sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
      if (sof) return i;
      if (m == 0xDA || m == 0xD9) return -1;
      i += 2 + len;
    }
    return -1;
  }

  // ---------------------------------------------------------------- BMP, WebP

  private DecodedImage decodeOther(Path file, byte[] b, Format f) throws IOException {
    List<String> warnings = new ArrayList<>();
    BufferedImage im = read(file, b, f, warnings);
    checkWarnings(file, f, warnings);
    Raster r = im.getRaster();
    int W = r.getWidth();
    int H = r.getHeight();
    String fmt = f.name();
    ColorModel cm = im.getColorModel();
    if (cm instanceof IndexColorModel icm) {
      byte[] idx = bands(r, new int[] {0}, 0, 1);
      byte[] pal = paletteOf(icm);
      int n = icm.getMapSize();
      // Pillow drops a palette that is the identity gray ramp: BMP gives "L" (or "1" for a
      // two-entry black/white palette); otherwise the image stays "P".
      if (f == Format.BMP && n == 2 && isGray(pal, new int[] {0, 255})) {
        for (int i = 0; i < idx.length; i++) idx[i] = (byte) (idx[i] != 0 ? 255 : 0);
        return DecodedImage.of(fmt, DecodedImage.Mode.BILEVEL, W, H, idx);
      }
      int[] ramp = new int[n];
      for (int i = 0; i < n; i++) ramp[i] = i;
      if (f == Format.BMP && isGray(pal, ramp)) {
        return DecodedImage.of(fmt, DecodedImage.Mode.L, W, H, idx);
      }
      return DecodedImage.palette(fmt, W, H, idx, pal);
    }
    int bands = r.getNumBands();
    if (bands == 1) return DecodedImage.of(fmt, DecodedImage.Mode.L, W, H, bands(r, new int[] {0}, 0, 1));
    if (cm.hasAlpha() && bands == 4) {
      return DecodedImage.of(fmt, DecodedImage.Mode.RGBA, W, H, bands(r, new int[] {0, 1, 2, 3}, 0, 1));
    }
    if (bands >= 3) return DecodedImage.of(fmt, DecodedImage.Mode.RGB, W, H, bands(r, new int[] {0, 1, 2}, 0, 1));
    throw new ImageDecodeException(file, fmt + " image with " + bands + " bands is not supported");
  }

  private static boolean isGray(byte[] pal, int[] expected) {
    for (int i = 0; i < expected.length; i++) {
      int v = expected[i];
      if ((pal[3 * i] & 0xff) != v || (pal[3 * i + 1] & 0xff) != v || (pal[3 * i + 2] & 0xff) != v) return false;
    }
    return true;
  }

  // ---------------------------------------------------------------- AWT images

  /**
   * An AWT image as the decoders give the same pixels read from a file, in the Pillow mode of its
   * layout: 8-bit gray "L", 16-bit gray "I" (its values, which the preprocessing clips to 255 as
   * the reference does), gray with alpha "LA", indexed "P" (alpha in the palette ignored, as
   * Pillow's convert("RGB") does), RGB, and RGBA with straight alpha (resized premultiplied, as
   * Pillow does); 16-bit colour samples keep their high byte, as Pillow reads 16-bit RGB PNGs.
   * Samples are taken as the raster holds them, with no colour conversion (Pillow does none).
   * Premultiplied images and other colour spaces (CMYK, YCbCr) go through AWT's sRGB conversion
   * ({@code getRGB}), with their alpha where they have one.
   */
  public static DecodedImage fromImage(BufferedImage im) {
    java.util.Objects.requireNonNull(im, "image");
    Raster r = im.getRaster();
    int w = r.getWidth(), h = r.getHeight(), nb = r.getNumBands();
    if (w <= 0 || h <= 0) throw new IllegalArgumentException("the image is empty (" + w + " x " + h + ")");
    ColorModel cm = im.getColorModel();
    String fmt = "AWT";
    if (cm instanceof IndexColorModel icm && nb == 1) {
      int n = icm.getMapSize();
      if (n > 256) throw new IllegalArgumentException("an indexed image with " + n + " colours (at most 256) is not supported");
      byte[] pal = new byte[768];
      System.arraycopy(paletteOf(icm), 0, pal, 0, 3 * n);
      return DecodedImage.palette(fmt, w, h, bands(r, new int[] {0}, 0, 1), pal);
    }
    int bits = r.getSampleModel().getSampleSize(0);
    for (int b = 1; b < nb; b++) if (r.getSampleModel().getSampleSize(b) != bits) bits = -1;
    boolean straight = !cm.isAlphaPremultiplied() && (bits == 8 || bits == 16) && !(cm instanceof IndexColorModel);
    int shift = bits == 16 ? 8 : 0;
    int space = cm.getColorSpace().getType();
    if (straight && space == java.awt.color.ColorSpace.TYPE_GRAY) {
      if (nb == 1 && bits == 16) {
        int[] v = new int[w * h];
        r.getSamples(0, 0, w, h, 0, v);
        return DecodedImage.ofInts(fmt, w, h, v);
      }
      if (nb == 1) return DecodedImage.of(fmt, DecodedImage.Mode.L, w, h, bands(r, new int[] {0}, 0, 1));
      if (nb == 2 && cm.hasAlpha()) return DecodedImage.of(fmt, DecodedImage.Mode.LA, w, h, bands(r, new int[] {0, 1}, shift, 1));
    }
    if (straight && space == java.awt.color.ColorSpace.TYPE_RGB) {
      if (nb == 3 && !cm.hasAlpha()) return DecodedImage.of(fmt, DecodedImage.Mode.RGB, w, h, bands(r, new int[] {0, 1, 2}, shift, 1));
      if (nb == 4 && cm.hasAlpha()) return DecodedImage.of(fmt, DecodedImage.Mode.RGBA, w, h, bands(r, new int[] {0, 1, 2, 3}, shift, 1));
    }
    int[] argb = im.getRGB(0, 0, w, h, null, 0, w);
    boolean alpha = cm.hasAlpha();
    byte[] px = new byte[(alpha ? 4 : 3) * argb.length];
    for (int i = 0, o = 0; i < argb.length; i++) {
      px[o++] = (byte) (argb[i] >> 16);
      px[o++] = (byte) (argb[i] >> 8);
      px[o++] = (byte) argb[i];
      if (alpha) px[o++] = (byte) (argb[i] >>> 24);
    }
    return DecodedImage.of(fmt, alpha ? DecodedImage.Mode.RGBA : DecodedImage.Mode.RGB, w, h, px);
  }

  // ---------------------------------------------------------------- helpers

  private static byte[] paletteOf(IndexColorModel icm) {
    int n = Math.min(256, icm.getMapSize());
    byte[] pal = new byte[3 * n];
    for (int i = 0; i < n; i++) {
      int rgb = icm.getRGB(i);
      pal[3 * i] = (byte) (rgb >> 16);
      pal[3 * i + 1] = (byte) (rgb >> 8);
      pal[3 * i + 2] = (byte) rgb;
    }
    return pal;
  }

  /**
   * Selected bands of a raster as interleaved bytes: each sample shifted right by {@code shift}
   * (16-bit to its high byte) and multiplied by {@code scale} (low bit depths to 8 bits).
   */
  static byte[] bands(Raster r, int[] which, int shift, int scale) {
    int w = r.getWidth();
    int h = r.getHeight();
    int nb = r.getNumBands();
    int c = which.length;
    byte[] out = new byte[Math.multiplyExact(Math.multiplyExact(w, h), c)];
    // Fast path: 8-bit pixel-interleaved rasters (what the JPEG and PNG readers produce), read
    // straight from the data buffer; the generic path below costs several times more.
    if (shift == 0
        && scale == 1
        && r.getDataBuffer() instanceof java.awt.image.DataBufferByte db
        && db.getNumBanks() == 1
        && r.getSampleModel() instanceof java.awt.image.ComponentSampleModel sm
        && !(sm instanceof java.awt.image.BandedSampleModel)
        && sm.getPixelStride() == nb) {
      byte[] data = db.getData();
      int[] bandOff = sm.getBandOffsets();
      int[] off = new int[c];
      for (int k = 0; k < c; k++) off[k] = bandOff[which[k]];
      int stride = sm.getScanlineStride();
      int base0 = db.getOffset() - r.getSampleModelTranslateY() * stride - r.getSampleModelTranslateX() * nb;
      int o = 0;
      for (int y = 0; y < h; y++) {
        int p = base0 + y * stride;
        if (c == 3) {
          int o0 = off[0], o1 = off[1], o2 = off[2];
          for (int x = 0; x < w; x++, p += nb) {
            out[o++] = data[p + o0];
            out[o++] = data[p + o1];
            out[o++] = data[p + o2];
          }
        } else {
          for (int x = 0; x < w; x++, p += nb) {
            for (int k = 0; k < c; k++) out[o++] = data[p + off[k]];
          }
        }
      }
      return out;
    }
    int[] row = new int[w * nb];
    int o = 0;
    for (int y = 0; y < h; y++) {
      r.getPixels(0, y, w, 1, row);
      for (int x = 0; x < w; x++) {
        int base = x * nb;
        for (int k = 0; k < c; k++) out[o++] = (byte) ((row[base + which[k]] >> shift) * scale);
      }
    }
    return out;
  }

  private static ImageReader jdkJpegReader(Path file, byte[] b) throws IOException {
    Iterator<ImageReader> it = ImageIO.getImageReadersByFormatName("jpeg");
    while (it.hasNext()) {
      ImageReader r = it.next();
      if (r.getClass().getName().startsWith("com.sun.imageio.plugins.jpeg.")) {
        r.setInput(new MemoryCacheImageInputStream(new ByteArrayInputStream(b)), true, true);
        return r;
      }
    }
    throw new IOException("the JDK's JPEG reader is not available");
  }

  private ImageReader reader(Path file, byte[] b, Format f) throws IOException {
    ImageInputStream in = new MemoryCacheImageInputStream(new ByteArrayInputStream(b));
    Iterator<ImageReader> it = ImageIO.getImageReaders(in);
    if (!it.hasNext()) {
      throw new ImageDecodeException(file, "no " + f + " decoder available (ImageIO plugins missing from the class path?)");
    }
    ImageReader reader = it.next();
    reader.setInput(in, true, true);
    return reader;
  }

  private BufferedImage read(Path file, byte[] b, Format f, List<String> warnings) throws IOException {
    ImageReader reader = reader(file, b, f);
    try {
      reader.addIIOReadWarningListener((src, w) -> warnings.add(w));
      checkPixels(file, f, reader.getWidth(0), reader.getHeight(0));
      return reader.read(0);
    } finally {
      reader.dispose();
    }
  }

  /** Warnings that mean the data ended early or is damaged are errors; others are ignored as libjpeg does. */
  private static void checkWarnings(Path file, Format f, List<String> warnings) throws ImageDecodeException {
    for (String w : warnings) {
      String l = w.toLowerCase(Locale.ROOT);
      if (l.contains("premature end") || l.contains("truncated") || l.contains("missing eoi")) {
        throw new ImageDecodeException(file, "truncated " + f + " file (" + String.join("; ", warnings) + ")");
      }
    }
  }
}
