package dev.jclip.image;

import java.awt.image.BufferedImage;
import java.awt.image.ColorModel;
import java.awt.image.IndexColorModel;
import java.awt.image.Raster;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.stream.MemoryCacheImageInputStream;

/**
 * TIFF files as Pillow 9.4's {@code Image.open} gives them: the first page, in the mode of
 * Pillow's {@code OPEN_INFO} table, with its pixel bytes.
 *
 * <p>The first IFD is read here, to decide the mode exactly as Pillow's {@code
 * TiffImageFile._setup} does (its defaults: photometric 0, one sample, BitsPerSample 1; the
 * SamplesPerPixel rules; the key of byte order, photometric, sample format, fill order, bits and
 * extra samples) and to refuse, naming what, every kind that is not decoded exactly: the pixels
 * then come from TwelveMonkeys' {@code imageio-tiff} reader (strips and tiles, planar
 * configurations 1 and 2, fill orders, the horizontal predictor, uncompressed, LZW, Deflate,
 * PackBits and CCITT data), whose raster holds the stored samples; the few places where Pillow's
 * unpacking changes them are written here:
 *
 * <ul>
 *   <li>"1" and 2/4-bit gray: the gray of each index in the reader's colour model (0/255, x85, x17,
 *       inverted for MinIsWhite, as Pillow's {@code 1;I}, {@code L;2I}, {@code L;4I} unpackers);
 *   <li>8-bit MinIsWhite: inverted ({@code L;I}); the reader's raster already is;
 *   <li>associated alpha (ExtraSamples 1, Pillow's {@code RGBa}): un-premultiplied as Pillow's
 *       unpacker does, {@code min(255, c * 255 / a)} in integers, 0 where alpha is 0;
 *   <li>palette: Pillow's {@code ColorMap // 256} (the reader rounds instead);
 *   <li>16-bit RGB, RGBA and CMYK: the high byte of each sample (Pillow's {@code RGB;16L}, {@code
 *       RGBA;16B}, ... unpackers), associated alpha then un-premultiplied on those bytes;
 *   <li>unspecified extra samples after RGB, RGBA or CMYK (Pillow's RGBX, RGBAX, CMYKX, ...):
 *       dropped. Pillow's mode for RGB with them is RGBX, which resizes channel by channel and
 *       whose {@code convert("RGB")} drops X, so jclip decodes it as RGB;
 *   <li>signed 16-bit and 32-bit integer gray: Pillow's mode I, the samples as 32-bit integers
 *       (unsigned 32-bit ones reinterpreted as signed, as Pillow's {@code I;32N} does).
 * </ul>
 *
 * Orientation and ICC profiles are ignored, as {@code Image.open} ignores them.
 */
final class TiffDecoder {
  private TiffDecoder() {}

  private static final String SUPPORTED =
      "supported: 8 and 16-bit RGB, RGBX, RGBA, CMYK; 8-bit gray+alpha; 1/2/4/8-bit gray and palette; signed 16-bit and 32-bit integer gray;"
          + " uncompressed, LZW, Deflate, PackBits or CCITT";

  // Baseline and extension tags used here.
  static final int IMAGE_WIDTH = 256, IMAGE_LENGTH = 257, BITS_PER_SAMPLE = 258, COMPRESSION = 259, PHOTOMETRIC = 262,
      FILL_ORDER = 266, STRIP_OFFSETS = 273, SAMPLES_PER_PIXEL = 277, ROWS_PER_STRIP = 278, STRIP_BYTE_COUNTS = 279,
      PLANAR_CONFIGURATION = 284, PREDICTOR = 317, COLOR_MAP = 320, TILE_WIDTH = 322, TILE_LENGTH = 323, TILE_OFFSETS = 324,
      TILE_BYTE_COUNTS = 325, EXTRA_SAMPLES = 338, SAMPLE_FORMAT = 339;

  /** What Pillow makes of the first IFD, and how to get its bytes from the reader's raster. */
  enum Kind {
    BILEVEL,
    /** 2-, 4- or 8-bit gray. */
    GRAY,
    GRAY_ALPHA,
    PALETTE,
    RGB,
    RGBA,
    /** RGB with associated (premultiplied) alpha: Pillow's "RGBa" raw mode. */
    RGBA_ASSOCIATED,
    CMYK,
    /** Signed 16-bit, or 32-bit, gray: Pillow's mode I. */
    INT
  }

  static DecodedImage decode(Path file, byte[] b, ImageDecoder limits) throws IOException {
    Ifd ifd = Ifd.parse(file, b);
    long w = ifd.one(IMAGE_WIDTH, -1);
    long h = ifd.one(IMAGE_LENGTH, -1);
    if (w < 0 || h < 0) throw new ImageDecodeException(file, "corrupt TIFF file: no ImageWidth or ImageLength tag in the first IFD");
    limits.checkPixels(file, ImageDecoder.Format.TIFF, w, h);
    Kind kind = kind(file, ifd);
    int[] bits = ifd.bits;
    checkSegments(file, b, ifd, limits, w, h);
    if (ifd.oddSignature) {
      // Pillow reads these uncompressed (kind() refused the others); the reader wants 42 as stored.
      b = b.clone();
      b[2] = (byte) (ifd.little ? 42 : 0);
      b[3] = (byte) (ifd.little ? 0 : 42);
    }

    ImageReader reader = twelveMonkeys(file);
    List<String> warnings = new ArrayList<>();
    Raster r;
    ColorModel cm;
    try {
      reader.setInput(new MemoryCacheImageInputStream(new ByteArrayInputStream(b)), true, true);
      reader.addIIOReadWarningListener((src, msg) -> warnings.add(msg));
      BufferedImage im = reader.read(0);
      r = im.getRaster();
      cm = im.getColorModel();
    } finally {
      reader.dispose();
    }
    for (String msg : warnings) {
      String l = msg.toLowerCase(java.util.Locale.ROOT);
      if (l.contains("truncat") || l.contains("end of") || l.contains("eof")) {
        throw new ImageDecodeException(file, "truncated TIFF file (" + String.join("; ", warnings) + ")");
      }
    }
    int W = (int) w, H = (int) h;
    if (r.getWidth() != W || r.getHeight() != H) {
      throw new ImageDecodeException(file, "TIFF decoder returned " + r.getWidth() + "x" + r.getHeight() + ", the IFD says " + w + "x" + h);
    }
    String fmt = "TIFF";
    int spp = bits.length;
    return switch (kind) {
      case BILEVEL -> DecodedImage.of(fmt, DecodedImage.Mode.BILEVEL, W, H, indexedGray(file, r, cm));
      case GRAY -> bits[0] == 8
          ? DecodedImage.of(fmt, DecodedImage.Mode.L, W, H, bandsOf(file, r, 1, 1, 8))
          : DecodedImage.of(fmt, DecodedImage.Mode.L, W, H, indexedGray(file, r, cm));
      case GRAY_ALPHA -> DecodedImage.of(fmt, DecodedImage.Mode.LA, W, H, bandsOf(file, r, 2, 2, 8));
      case RGB -> DecodedImage.of(fmt, DecodedImage.Mode.RGB, W, H, bandsOf(file, r, spp, 3, ifd.depth));
      case RGBA -> DecodedImage.of(fmt, DecodedImage.Mode.RGBA, W, H, bandsOf(file, r, spp, 4, ifd.depth));
      case RGBA_ASSOCIATED -> DecodedImage.of(fmt, DecodedImage.Mode.RGBA, W, H, unpremultiply(bandsOf(file, r, spp, 4, ifd.depth)));
      case CMYK -> DecodedImage.of(fmt, DecodedImage.Mode.CMYK, W, H, bandsOf(file, r, spp, 4, ifd.depth));
      case INT -> DecodedImage.ofInts(fmt, W, H, ints(file, r, ifd.depth));
      case PALETTE -> {
        if (r.getNumBands() != 1) throw new ImageDecodeException(file, "TIFF palette image decoded with " + r.getNumBands() + " bands");
        byte[] idx = new byte[W * H];
        int[] row = new int[W];
        for (int y = 0; y < H; y++) {
          r.getSamples(0, y, W, 1, 0, row);
          for (int x = 0; x < W; x++) idx[y * W + x] = (byte) row[x];
        }
        yield DecodedImage.palette(fmt, W, H, idx, ifd.palette);
      }
    };
  }

  /** The mode Pillow opens the first IFD in, or a refusal naming what is not supported. */
  static Kind kind(Path file, Ifd ifd) throws ImageDecodeException {
    int compression = (int) ifd.one(COMPRESSION, 1);
    int photometric = (int) ifd.one(PHOTOMETRIC, 0);
    int planar = (int) ifd.one(PLANAR_CONFIGURATION, 1);
    int fillOrder = (int) ifd.one(FILL_ORDER, 1);
    int predictor = (int) ifd.one(PREDICTOR, 1);
    if (compression == 6 || compression == 7) {
      throw unsupported(file, "JPEG compression (lossy: its decoding is not exact with Pillow's libjpeg-through-libtiff)");
    }
    String comp = switch (compression) {
      case 1, 2, 3, 4, 5, 8, 32946, 32773 -> null;
      case 34712 -> "JPEG 2000 compression";
      case 34925 -> "LZMA compression";
      case 50000 -> "Zstandard compression";
      case 50001 -> "WebP compression";
      default -> "compression scheme " + compression;
    };
    if (comp != null) throw unsupported(file, comp);
    if (ifd.oddSignature && compression != 1) {
      // Pillow hands compressed data to libtiff, which stops at the header: "Not a TIFF file, bad
      // version number 10752 (0x2a00)". Uncompressed data Pillow reads itself, whatever the header.
      throw unsupported(file, "the non-standard signature \"" + (ifd.little ? "II\\0*" : "MM*\\0") + "\" and compressed data (compression "
          + compression + "), which Pillow 9.4 cannot open either (its libtiff refuses the header; it reads such files only uncompressed)");
    }
    String photo = switch (photometric) {
      case 0, 1, 2, 3, 5 -> null;
      case 4 -> "transparency mask images (photometric 4)";
      case 6 -> "YCbCr colour (photometric 6)";
      case 8, 9, 10 -> "CIE L*a*b* colour (photometric " + photometric + ")";
      case 32844, 32845 -> "LogLuv colour (photometric " + photometric + ")";
      default -> "photometric interpretation " + photometric;
    };
    if (photo != null) throw unsupported(file, photo);

    // Pillow's _setup: the per-sample SampleFormat collapses to one value when all are unsigned.
    long[] fmt = ifd.values(SAMPLE_FORMAT, new long[] {1});
    boolean unsigned = Arrays.stream(fmt).allMatch(v -> v == 1);
    long sampleFormat = unsigned ? 1 : fmt.length == 1 ? fmt[0] : -1;
    long[] bps = ifd.values(BITS_PER_SAMPLE, new long[] {1});
    long[] extra = ifd.values(EXTRA_SAMPLES, new long[0]);
    long spp = ifd.one(SAMPLES_PER_PIXEL, 1);
    if (spp > 6 || spp < 1) throw new ImageDecodeException(file, "corrupt TIFF file: " + spp + " samples per pixel");
    if (bps.length == 0) throw new ImageDecodeException(file, "corrupt TIFF file: an empty BitsPerSample tag");
    if (spp < bps.length) bps = Arrays.copyOf(bps, (int) spp);
    else if (spp > bps.length && bps.length == 1) {
      long[] all = new long[(int) spp];
      Arrays.fill(all, bps[0]);
      bps = all;
    }
    if (bps.length != spp) {
      throw new ImageDecodeException(file, "corrupt TIFF file: " + bps.length + " BitsPerSample values for " + spp + " samples per pixel");
    }
    for (long v : bps) {
      if (v != bps[0]) throw unsupported(file, "samples of different sizes " + Arrays.toString(bps));
    }
    int depth = (int) bps[0];
    String layout = "photometric " + photometric + ", " + spp + " sample(s) of " + depth + " bits, extra samples " + Arrays.toString(extra)
        + (fillOrder != 1 ? ", fill order " + fillOrder : "") + (sampleFormat != 1 ? ", sample format " + Arrays.toString(fmt) : "")
        + (ifd.little ? "" : ", big-endian");
    boolean gray = photometric == 0 || photometric == 1;
    boolean fill1 = fillOrder == 1;
    // Bands of the reader's raster that make Pillow's image (RGBX: RGB; RGBAX, RGBaX, CMYKX: 4).
    int keep = (int) spp;
    Kind kind = null;

    if (!unsigned) {
      // Pillow's keys with signed or float samples are all one-sample gray of 16 or 32 bits.
      boolean oneGray = gray && spp == 1 && extra.length == 0 && fill1;
      if (sampleFormat == 2 && oneGray && photometric == 1 && (depth == 16 || depth == 32)) {
        kind = Kind.INT; // Pillow's I;16S, I;16BS, I;32S, I;32BS: mode I
      } else if (sampleFormat == 3 && oneGray && depth == 32) {
        throw unsupported(file, "32-bit floating-point gray (Pillow's mode F, which jclip has no mode for)");
      } else {
        throw unsupported(file, (sampleFormat == 2 ? "signed integer samples" : sampleFormat == 3 ? "floating-point samples" : "sample format " + Arrays.toString(fmt))
            + " in this layout, which Pillow 9.4 cannot open either (" + layout + ")");
      }
    } else if (depth == 16 || depth == 12 || depth == 32) {
      // Pillow's OPEN_INFO entries for wide unsigned samples (fill order 1 only, some little-endian only).
      boolean i16 = gray && spp == 1 && extra.length == 0
          && ((ifd.little && depth == 12 && photometric == 1 && fill1)
              || (ifd.little && depth == 16 && (fill1 || (photometric == 1 && fillOrder == 2)))
              || (!ifd.little && depth == 16 && photometric == 1 && fill1));
      if (i16) {
        throw unsupported(file, depth + "-bit gray (Pillow's mode I;16" + (ifd.little ? "" : "B") + ": its convert(\"RGB\") clips to 0..255, but CLIP's bicubic"
            + " Resize fails on that mode with 'image has wrong mode', so Pillow cannot preprocess it)");
      }
      if (depth == 32 && photometric == 1 && spp == 1 && extra.length == 0 && fill1 && ifd.little) kind = Kind.INT; // I;32N
      else if (depth == 16 && fill1 && photometric == 2 && spp == 3 && extra.length == 0) kind = Kind.RGB;
      else if (depth == 16 && fill1 && photometric == 2 && spp == 4) {
        long e = extra.length == 0 ? 2 : extra.length == 1 ? extra[0] : -1;
        if (e == 2) kind = Kind.RGBA;
        else if (e == 1) kind = Kind.RGBA_ASSOCIATED;
        else if (e == 0) {
          kind = Kind.RGB;
          keep = 3;
        }
      } else if (depth == 16 && fill1 && photometric == 5 && spp == 4 && extra.length == 0 && ifd.little) kind = Kind.CMYK;
      if (kind == null) throw unsupported(file, "this layout, which Pillow 9.4 cannot open either (" + layout + ")");
    } else if (depth != 1 && depth != 2 && depth != 4 && depth != 8) {
      throw unsupported(file, depth + "-bit samples");
    } else {
      // Pillow's OPEN_INFO entries for unsigned samples of 1 to 8 bits, fill order 2 only where it has one.
      boolean anyFill = fillOrder == 1 || fillOrder == 2;
      if (gray && spp == 1 && extra.length == 0 && anyFill) kind = depth == 1 ? Kind.BILEVEL : Kind.GRAY;
      else if (photometric == 3 && spp == 1 && extra.length == 0 && anyFill) kind = Kind.PALETTE;
      else if (depth == 8 && photometric == 2 && spp == 3 && extra.length == 0 && anyFill) kind = Kind.RGB;
      else if (depth == 8 && fill1) {
        if (photometric == 1 && spp == 2 && Arrays.equals(extra, new long[] {2})) kind = Kind.GRAY_ALPHA;
        else if (photometric == 5 && spp >= 4 && extra.length == spp - 4 && Arrays.stream(extra).allMatch(v -> v == 0)) {
          kind = Kind.CMYK; // CMYK, CMYKX, CMYKXX
          keep = 4;
        } else if (photometric == 2 && spp >= 4) {
          // RGB(A/a/X) then unspecified extra samples: RGBX(XX), RGBA(XX), RGBa(XX). No
          // ExtraSamples, and Corel Draw 10's 999, are straight RGBA to Pillow.
          long e = extra.length == 0 && spp == 4 ? 2 : extra.length == spp - 3 ? extra[0] : -1;
          boolean restUnspecified = extra.length == 0 || Arrays.stream(extra, 1, extra.length).allMatch(v -> v == 0);
          if (e == 999 && spp == 4) kind = Kind.RGBA;
          else if (restUnspecified && e == 2) kind = Kind.RGBA;
          else if (restUnspecified && e == 1) kind = Kind.RGBA_ASSOCIATED;
          else if (restUnspecified && e == 0) kind = Kind.RGB;
          keep = kind == Kind.RGB ? 3 : 4;
        }
      }
      if (kind == null && photometric == 3 && depth == 8 && spp == 2 && Arrays.equals(extra, new long[] {2}) && fill1) {
        throw unsupported(file, "a palette with an alpha sample (Pillow's mode PA: CLIP's bicubic Resize of it loses the palette, so"
            + " Pillow's preprocessed image is the gray of the resized indices unless no resize is needed)");
      }
      if (kind == null && depth != 8 && !gray && photometric != 3) throw unsupported(file, depth + "-bit samples");
      if (kind == null) throw unsupported(file, "this layout, which Pillow 9.4 cannot open either (" + layout + ")");
    }
    ifd.keep = keep;
    ifd.depth = depth;

    if (compression >= 2 && compression <= 4 && kind != Kind.BILEVEL) {
      throw new ImageDecodeException(file, "corrupt TIFF file: CCITT compression for a " + depth + "-bit " + kind + " image");
    }
    if (compression == 1 && fillOrder == 2 && ((photometric == 0 && depth == 8) || (kind == Kind.PALETTE && depth < 8))) {
      // OPEN_INFO names raw modes (L;IR, P;1R, P;2R, P;4R) that Pillow's unpackers lack.
      throw unsupported(file, "this layout, which Pillow 9.4 cannot open either (" + layout + ", uncompressed)");
    }
    if (kind == Kind.INT && depth == 32 && !ifd.little && compression != 1) {
      // libtiff hands Pillow native-order (little-endian) samples, which it unpacks as I;32BS.
      throw unsupported(file, "big-endian 32-bit integer gray, compressed (Pillow 9.4 reads it byte-swapped)");
    }
    if (predictor == 3) throw unsupported(file, "the floating-point predictor (Predictor 3)");
    if (predictor != 1 && predictor != 2) throw unsupported(file, "Predictor " + predictor);
    if (predictor == 2 && compression != 1 && compression != 5 && compression != 8 && compression != 32946) {
      // libtiff undoes the predictor for LZW and Deflate only (and Pillow leaves uncompressed data
      // alone, as the reader does); the reader also applies it to PackBits data.
      throw unsupported(file, "the horizontal predictor on " + (compression == 32773 ? "PackBits" : "CCITT") + " data (libtiff ignores it there)");
    }
    if (predictor == 2 && depth < 8 && compression != 1) {
      // libtiff refuses horizontal differencing below 8 bits, so Pillow cannot read such files.
      throw unsupported(file, "the horizontal predictor on " + depth + "-bit samples");
    }
    if (planar != 1 && planar != 2) throw new ImageDecodeException(file, "corrupt TIFF file: PlanarConfiguration " + planar);
    if (planar == 2 && spp == 1 && compression == 1) {
      // Pillow's uncompressed path unpacks each plane with the first letter of the raw mode:
      // "L;I" loses its inversion, "L;4" reads 4-bit samples as bytes.
      throw unsupported(file, "one sample per pixel in separate planes, uncompressed (PlanarConfiguration 2: Pillow 9.4 unpacks it in another raw mode)");
    }
    if (planar == 2 && spp > 1 && depth > 8 && compression == 1) {
      // Pillow's uncompressed path unpacks each plane with one letter of the raw mode ("R" of
      // "RGB;16L"): 8-bit samples, not the high bytes of 16-bit ones.
      throw unsupported(file, depth + "-bit samples in separate planes, uncompressed (PlanarConfiguration 2: Pillow 9.4 unpacks each plane as 8-bit samples)");
    }
    if (planar == 2 && spp > 4) {
      // Measured: Pillow 9.4 cannot open CMYKX planes, nor RGBXX / RGBXXX compressed ones.
      throw unsupported(file, "more than one extra sample, or CMYK with one, in separate planes (PlanarConfiguration 2: Pillow 9.4 cannot open most of them)");
    }
    if (planar == 2 && spp > 1 && !(kind == Kind.RGB || kind == Kind.CMYK || (kind == Kind.RGBA && extra.length == 1 && extra[0] == 2))) {
      // Measured against Pillow 9.4: gray+alpha planes lose their alpha, RGBA without ExtraSamples
      // is split as if it had 3 planes, associated alpha is not read at all; and the reader drops
      // a 999 (Corel) plane.
      throw unsupported(file, (kind == Kind.GRAY_ALPHA ? "gray+alpha" : kind == Kind.RGBA_ASSOCIATED ? "associated alpha"
              : extra.length == 0 ? "RGBA without ExtraSamples" : "RGBA with ExtraSamples " + extra[0])
          + " in separate planes (PlanarConfiguration 2: Pillow 9.4 does not read them as stored)");
    }
    if (kind == Kind.PALETTE) {
      long[] map = ifd.values(COLOR_MAP, null);
      if (map == null) throw new ImageDecodeException(file, "corrupt TIFF file: a palette image without a ColorMap");
      int n = 1 << depth;
      if (map.length != 3 * n) throw new ImageDecodeException(file, "corrupt TIFF file: ColorMap of " + map.length + " values for " + depth + "-bit indices (" + 3 * n + " expected)");
      // Pillow: o8(v // 256) for each value, laid out "RGB;L" (all reds, then greens, then blues).
      byte[] pal = new byte[3 * n];
      for (int i = 0; i < n; i++) {
        for (int c = 0; c < 3; c++) pal[3 * i + c] = (byte) (map[c * n + i] >> 8);
      }
      ifd.palette = pal;
    }
    ifd.bits = Arrays.stream(bps).mapToInt(v -> (int) v).toArray();
    return kind;
  }

  private static ImageDecodeException unsupported(Path file, String what) {
    return new ImageDecodeException(file, "TIFF with " + what + " is not supported (" + SUPPORTED + ")");
  }

  /**
   * Strips or tiles must lie inside the file (a truncated file is refused here, as Pillow's
   * libtiff fails on it, rather than decoded with missing rows), a tile must pass the pixel
   * limit (the reader allocates one), and together they must be able to hold the {@code w}x{@code
   * h} image ({@link #checkDataCanHoldPixels}).
   */
  private static void checkSegments(Path file, byte[] b, Ifd ifd, ImageDecoder limits, long w, long h) throws ImageDecodeException {
    boolean tiled = ifd.has(TILE_OFFSETS);
    long[] offsets = ifd.values(tiled ? TILE_OFFSETS : STRIP_OFFSETS, null);
    long[] counts = ifd.values(tiled ? TILE_BYTE_COUNTS : STRIP_BYTE_COUNTS, null);
    String what = tiled ? "tile" : "strip";
    if (offsets == null) throw new ImageDecodeException(file, "corrupt TIFF file: no " + (tiled ? "TileOffsets" : "StripOffsets") + " tag");
    if (tiled) {
      long tw = ifd.one(TILE_WIDTH, -1), th = ifd.one(TILE_LENGTH, -1);
      if (tw <= 0 || th <= 0) throw new ImageDecodeException(file, "corrupt TIFF file: tiles without a TileWidth and TileLength");
      if (tw > limits.maxPixels() || th > limits.maxPixels() || tw * th > limits.maxPixels()) { // no product of two huge sizes
        throw new ImageDecodeException(file, "corrupt TIFF file: tiles of " + tw + "x" + th + " pixels, above the pixel limit of " + limits.maxPixels());
      }
    }
    if (counts == null) {
      if (ifd.one(COMPRESSION, 1) != 1) {
        throw new ImageDecodeException(file, "corrupt TIFF file: compressed data without " + (tiled ? "TileByteCounts" : "StripByteCounts"));
      }
      checkDataCanHoldPixels(file, b, ifd, w, h, offsets, null);
      return; // uncompressed: the reader computes them, as Pillow's raw decoder does not need them
    }
    if (counts.length < offsets.length) {
      throw new ImageDecodeException(file, "corrupt TIFF file: " + offsets.length + " " + what + " offsets but " + counts.length + " byte counts");
    }
    for (int i = 0; i < offsets.length; i++) {
      if (offsets[i] + counts[i] > b.length) {
        throw new ImageDecodeException(
            file, "truncated TIFF file: " + what + " " + i + " ends at byte " + (offsets[i] + counts[i]) + ", after the end of the file (" + b.length + " bytes)");
      }
    }
    checkDataCanHoldPixels(file, b, ifd, w, h, offsets, counts);
  }

  /**
   * Refuses as truncated a file whose strips or tiles, at their compression's greatest expansion,
   * cannot hold the image's samples, before the reader allocates an image of the declared size (a
   * 1 KB file declaring 8,000,000x17 pixels). Uncompressed data must hold them all; PackBits
   * expands at most 64:1, Deflate ~1032:1, LZW's 12-bit codes at most 4096 bytes each. Other
   * compressions (CCITT: a blank row is a bit) are left to the reader.
   */
  private static void checkDataCanHoldPixels(Path file, byte[] b, Ifd ifd, long w, long h, long[] offsets, long[] counts)
      throws ImageDecodeException {
    long compression = ifd.one(COMPRESSION, 1);
    long ratio = switch ((int) compression) {
      case 1 -> 1;
      case 32773 -> 64;
      case 8, 32946 -> 1100;
      case 5 -> 3700;
      default -> 0;
    };
    if (ratio == 0) return;
    long bitsPerPixel = 0;
    for (int v : ifd.bits) bitsPerPixel += v;
    long needed = w * bitsPerPixel / 8 * h; // whole rows, without padding: a lower bound (w, h passed the pixel limit)
    long have = 0;
    if (counts == null || ratio == 1) {
      // uncompressed: Pillow reads each strip from its offset on, whatever its byte count says
      for (long o : offsets) have += b.length - Math.min(o, b.length);
    } else {
      for (int i = 0; i < Math.min(offsets.length, counts.length); i++) have += Math.min(counts[i], b.length);
    }
    if (have > Long.MAX_VALUE / ratio || have * ratio + 4096 >= needed) return;
    throw new ImageDecodeException(file, "truncated TIFF file: its " + have + " bytes of image data" + (ratio > 1 ? ", compressed," : "")
        + " cannot hold the " + w + "x" + h + " image's " + needed + " bytes");
  }

  private static ImageReader twelveMonkeys(Path file) throws ImageDecodeException {
    Iterator<ImageReader> it = ImageIO.getImageReadersByFormatName("tiff");
    while (it.hasNext()) {
      ImageReader r = it.next();
      if (r.getClass().getName().startsWith("com.twelvemonkeys.")) return r;
      r.dispose();
    }
    throw new ImageDecodeException(file, "no TIFF decoder available (TwelveMonkeys imageio-tiff missing from the class path?)");
  }

  /**
   * The first {@code keep} of the raster's {@code n} bands as bytes: 8-bit samples as they are,
   * 16-bit ones by their high byte (Pillow's {@code RGB;16L}, {@code RGBA;16B}, ... unpackers).
   */
  private static byte[] bandsOf(Path file, Raster r, int n, int keep, int depth) throws ImageDecodeException {
    // In separate planes the reader leaves out unspecified extra samples (RGBX: 3 bands).
    if (r.getNumBands() != n && r.getNumBands() != keep) {
      throw new ImageDecodeException(file, "TIFF decoded with " + r.getNumBands() + " bands, " + n + " expected");
    }
    for (int k = 0; k < keep; k++) {
      int size = r.getSampleModel().getSampleSize(k);
      if (size != depth) throw new ImageDecodeException(file, "TIFF decoded with " + size + "-bit samples, " + depth + " expected");
    }
    int[] which = new int[keep];
    for (int k = 0; k < keep; k++) which[k] = k;
    return ImageDecoder.bands(r, which, depth - 8, 1);
  }

  /**
   * Pillow's mode I from one band of 16 or 32-bit integers: signed 16-bit samples sign-extended,
   * 32-bit ones (signed, or unsigned as Pillow's {@code I;32N} reads them) as their 32 bits.
   */
  private static int[] ints(Path file, Raster r, int depth) throws ImageDecodeException {
    int tt = r.getTransferType();
    boolean ok = r.getNumBands() == 1 && (depth == 16 ? tt == java.awt.image.DataBuffer.TYPE_SHORT : tt == java.awt.image.DataBuffer.TYPE_INT);
    if (!ok) throw new ImageDecodeException(file, "TIFF of " + depth + "-bit integers decoded with " + r.getNumBands() + " band(s) of transfer type " + tt);
    int w = r.getWidth(), h = r.getHeight();
    int[] out = new int[w * h];
    r.getSamples(0, 0, w, h, 0, out);
    return out;
  }

  /** Gray levels of an indexed low-depth raster: the colour model's gray of each index. */
  private static byte[] indexedGray(Path file, Raster r, ColorModel cm) throws ImageDecodeException {
    if (!(cm instanceof IndexColorModel icm) || r.getNumBands() != 1) {
      throw new ImageDecodeException(file, "low bit-depth TIFF decoded without a gray palette (" + cm.getClass().getSimpleName() + ")");
    }
    int w = r.getWidth(), h = r.getHeight();
    byte[] gray = new byte[icm.getMapSize()];
    for (int i = 0; i < gray.length; i++) gray[i] = (byte) icm.getRed(i);
    byte[] out = new byte[w * h];
    int[] row = new int[w];
    for (int y = 0; y < h; y++) {
      r.getSamples(0, y, w, 1, 0, row);
      for (int x = 0; x < w; x++) out[y * w + x] = gray[row[x]];
    }
    return out;
  }

  /** Pillow's unpackRGBa: each colour min(255, c * 255 / a) in integers; all 0 where a is 0. */
  static byte[] unpremultiply(byte[] px) {
    for (int i = 0; i < px.length; i += 4) {
      int a = px[i + 3] & 0xff;
      if (a == 255) continue;
      for (int c = 0; c < 3; c++) px[i + c] = (byte) (a == 0 ? 0 : Math.min(255, (px[i + c] & 0xff) * 255 / a));
    }
    return px;
  }

  /** The first IFD's entries, values read on demand (numbers only). */
  static final class Ifd {
    private final byte[] b;
    private final boolean little;
    /** tag → {type, count, value offset} */
    private final java.util.Map<Integer, long[]> entries = new java.util.HashMap<>();
    private final Path file;
    /** BigTIFF; a classic header with the version bytes swapped ("II\0*", "MM*\0"). */
    boolean big, oddSignature;
    byte[] palette;
    int[] bits;
    /** Bits per sample, and how many of the reader's bands make Pillow's image. */
    int depth, keep;

    private Ifd(Path file, byte[] b, boolean little) {
      this.file = file;
      this.b = b;
      this.little = little;
    }

    /**
     * The header (any of the signatures Pillow's {@code PREFIXES} accept: "II*\0", "MM\0*", the
     * swapped "II\0*" and "MM*\0" read in the byte order of their first two bytes, and
     * little-endian BigTIFF "II+\0") and the first IFD.
     */
    static Ifd parse(Path file, byte[] b) throws ImageDecodeException {
      if (b.length < 8) throw new ImageDecodeException(file, "truncated TIFF file: " + b.length + " bytes, shorter than the header");
      boolean little = b[0] == 'I';
      Ifd ifd = new Ifd(file, b, little);
      int magic = ifd.u16(2);
      if (magic == 43) {
        if (!little) {
          // Pillow 9.4 tests byte 2 for 43 ('+'), which in "MM\0+" is 0: it reads the header as
          // classic TIFF, its first IFD offset from the BigTIFF's offset size and padding.
          throw new ImageDecodeException(file, "big-endian BigTIFF files are not supported (Pillow 9.4 cannot open them either; little-endian BigTIFF is)");
        }
        ifd.big = true;
      } else if (magic != 42) {
        ifd.oddSignature = true; // "II\0*" or "MM*\0": Pillow reads them in the byte order of "II" / "MM"
      }
      int head = ifd.big ? 16 : 8;
      if (b.length < head) throw new ImageDecodeException(file, "truncated TIFF file: " + b.length + " bytes, shorter than the BigTIFF header");
      long at = ifd.big ? ifd.u64(8) : ifd.u32(4);
      int countSize = ifd.big ? 8 : 2, entrySize = ifd.big ? 20 : 12, inline = ifd.big ? 8 : 4;
      if (at < head || at > b.length - countSize) {
        throw new ImageDecodeException(file, "truncated TIFF file: the first IFD is at byte " + Long.toUnsignedString(at) + ", the file has " + b.length);
      }
      long n = ifd.big ? ifd.u64((int) at) : ifd.u16((int) at);
      if (n == 0) throw new ImageDecodeException(file, "corrupt TIFF file: the first IFD has no entries");
      if (n < 0 || n > b.length || at + countSize + entrySize * n > b.length) {
        throw new ImageDecodeException(file, "truncated TIFF file: the first IFD's " + Long.toUnsignedString(n) + " entries end after the end of the file");
      }
      for (int i = 0; i < n; i++) {
        int e = (int) at + countSize + entrySize * i;
        int tag = ifd.u16(e);
        int type = ifd.u16(e + 2);
        long count = ifd.big ? ifd.u64(e + 4) : ifd.u32(e + 4);
        if (count < 0 || count > b.length) count = b.length + 1L; // ends after the end of the file: refused when read
        int size = switch (type) {
          case 1, 2, 6, 7 -> 1;
          case 3, 8 -> 2;
          case 4, 9, 11, 13 -> 4;
          case 5, 10, 12, 16, 17, 18 -> 8;
          default -> 0; // unknown type: the entry is skipped, as the specification says
        };
        if (size == 0) continue;
        long bytes = count * size;
        int value = e + (ifd.big ? 12 : 8);
        long off = bytes <= inline ? value : ifd.big ? ifd.u64(value) : ifd.u32(value);
        if (off < 0) off = b.length + 1L;
        ifd.entries.putIfAbsent(tag, new long[] {type, count, off, bytes});
      }
      return ifd;
    }

    boolean has(int tag) {
      return entries.containsKey(tag);
    }

    /** The first value of a numeric tag, or {@code otherwise} when absent. */
    /** A single-valued tag (a size, a code); a BigTIFF LONG8 beyond 32 bits is refused, never cut to its low bits. */
    long one(int tag, long otherwise) throws ImageDecodeException {
      long[] v = values(tag, null);
      if (v == null || v.length == 0) return otherwise;
      if (v[0] > 0xFFFFFFFFL) throw new ImageDecodeException(file, "corrupt TIFF file: tag " + tag + " has the value " + v[0] + ", beyond 32 bits");
      return v[0];
    }

    /** The values of a BYTE, SHORT, LONG or (BigTIFF) LONG8 tag, or {@code otherwise} when absent. */
    long[] values(int tag, long[] otherwise) throws ImageDecodeException {
      long[] e = entries.get(tag);
      if (e == null) return otherwise;
      int type = (int) e[0];
      long count = e[1], off = e[2], bytes = e[3];
      if (type != 1 && type != 3 && type != 4 && type != 16) {
        throw new ImageDecodeException(file, "corrupt TIFF file: tag " + tag + " has type " + type + ", not an unsigned integer");
      }
      if (off + bytes > b.length || count > Integer.MAX_VALUE / 8) {
        throw new ImageDecodeException(file, "truncated TIFF file: tag " + tag + "'s " + count + " values end after the end of the file");
      }
      long[] v = new long[(int) count];
      int size = type == 1 ? 1 : type == 3 ? 2 : type == 4 ? 4 : 8;
      for (int i = 0; i < count; i++) {
        int p = (int) off + i * size;
        v[i] = switch (size) {
          case 1 -> b[p] & 0xff;
          case 2 -> u16(p);
          case 4 -> u32(p);
          default -> {
            long x = u64(p);
            // Beyond any file: an offset or count past its end, refused where it is used.
            yield x < 0 || x > Long.MAX_VALUE / 4 ? Long.MAX_VALUE / 4 : x;
          }
        };
      }
      return v;
    }

    private int u16(int p) {
      int x = b[p] & 0xff, y = b[p + 1] & 0xff;
      return little ? x | y << 8 : x << 8 | y;
    }

    private long u32(int p) {
      long lo = u16(little ? p : p + 2), hi = u16(little ? p + 2 : p);
      return hi << 16 | lo;
    }

    /** An unsigned 64-bit value; negative when above {@code Long.MAX_VALUE}. */
    private long u64(int p) {
      long lo = u32(little ? p : p + 4), hi = u32(little ? p + 4 : p);
      return hi << 32 | lo;
    }
  }
}
