package dev.jclip.image;

/**
 * CLIP's image transform, {@code clip._transform(R)}: torchvision {@code Resize(R, BICUBIC)},
 * {@code CenterCrop(R)}, {@code convert("RGB")}, {@code ToTensor()}, {@code Normalize(mean, std)},
 * reproducing torchvision 0.14 on Pillow 9.4 byte for byte.
 *
 * <p>Order of operations as Pillow performs it: the resize runs in the image's own mode (palette
 * and bilevel images by NEAREST whatever filter is asked, RGBA and LA on premultiplied alpha, L
 * and I as one channel), then the crop, then the RGB conversion (alpha dropped without
 * compositing, palette expanded ignoring transparency, gray replicated, I clipped to 0..255, CMYK
 * by Pillow's formula). Only the cropped window of the resized image is computed.
 *
 * <pre>{@code
 * ClipPreprocessor pre = new ClipPreprocessor(224);
 * float[] batch = new float[n * pre.floatsPerImage()];
 * for (int i = 0; i < n; i++) pre.toTensor(decoder.decode(paths[i]), batch, i * pre.floatsPerImage());
 * }</pre>
 *
 * <p>An instance reuses its scratch buffers across images and is not thread-safe: use one per
 * thread.
 */
public final class ClipPreprocessor {
  /** CLIP's normalisation constants, as torchvision turns them into float32 tensors. */
  private static final float[] MEAN = {(float) 0.48145466, (float) 0.4578275, (float) 0.40821073};

  private static final float[] STD = {(float) 0.26862954, (float) 0.26130258, (float) 0.27577711};

  private final int size;
  private final Resampler resampler = new Resampler();
  /** Normalised value of each byte per channel: ((v / 255f) - mean) / std in float32, as torch computes it. */
  private final float[][] lut = new float[3][256];

  /**
   * Scratch arrays up to this size are kept for the next image; a larger one (an RGBA image of
   * over 4 megapixels) is made for the call and dropped, so that a preprocessor kept for a thread
   * does not hold the largest image it ever saw.
   */
  static final int RETAINED_BYTES = 16 << 20;

  private byte[] premultiplied = new byte[0];
  private byte[] window = new byte[0];
  private byte[] rgb;

  /** @param size the output resolution R (224 for ViT-B/32, 336 for ViT-L/14@336px, ...) */
  public ClipPreprocessor(int size) {
    if (size <= 0) throw new IllegalArgumentException("size must be positive, got " + size);
    this.size = size;
    this.rgb = new byte[size * size * 3];
    for (int c = 0; c < 3; c++) {
      for (int v = 0; v < 256; v++) lut[c][v] = ((float) v / 255f - MEAN[c]) / STD[c];
    }
  }

  public int size() {
    return size;
  }

  /** Floats written per image by {@link #toTensor}: 3 × R × R. */
  public int floatsPerImage() {
    return 3 * size * size;
  }

  /**
   * Where the resize and the crop land for a {@code width × height} image.
   *
   * @param resizedWidth the resized size; equal to the input when torchvision skips the resize
   */
  public record Geometry(long resizedWidth, long resizedHeight, int cropLeft, int cropTop, boolean resizeSkipped) {}

  /** torchvision 0.14's Resize(R) size and CenterCrop(R) offsets. */
  public static Geometry geometry(int width, int height, int r) {
    long w = width;
    long h = height;
    long shortSide = Math.min(w, h);
    long longSide = Math.max(w, h);
    // int(R * long / short): Python true division in double, then truncation.
    long newLong = (long) ((double) ((long) r * longSide) / (double) shortSide);
    long rw = w <= h ? r : newLong;
    long rh = w <= h ? newLong : r;
    boolean skipped = rw == w && rh == h;
    // int(round((size - R) / 2.0)): Python rounds half to even, as Math.rint does.
    int left = (int) Math.rint((rw - r) / 2.0);
    int top = (int) Math.rint((rh - r) / 2.0);
    return new Geometry(rw, rh, left, top, skipped);
  }

  /**
   * The image right before ToTensor: R × R × 3 bytes (HWC), the reference's {@code .rgb8}.
   *
   * @param dst receives {@code 3 * R * R} bytes from {@code offset}
   */
  public void rgb8(DecodedImage im, byte[] dst, int offset) {
    Geometry g = geometry(im.width(), im.height(), size);
    if (g.resizedWidth() > Integer.MAX_VALUE || g.resizedHeight() > Integer.MAX_VALUE) {
      throw new IllegalArgumentException(
          im + ": aspect ratio too extreme (resize to " + g.resizedWidth() + "x" + g.resizedHeight() + ")");
    }
    int w = im.width();
    int h = im.height();
    int r = size;
    int n = r * r;
    long ow = g.resizedWidth();
    long oh = g.resizedHeight();
    int x0 = g.cropLeft();
    int y0 = g.cropTop();
    switch (im.mode()) {
      case P, BILEVEL -> {
        byte[] win = window(n);
        Resampler.nearest(im.pixels(), w, h, 1, ow, oh, x0, y0, r, r, win, 0);
        if (im.mode() == DecodedImage.Mode.P) {
          byte[] pal = im.paletteBytes();
          for (int i = 0, o = offset; i < n; i++, o += 3) {
            int p = 3 * (win[i] & 0xff);
            dst[o] = pal[p];
            dst[o + 1] = pal[p + 1];
            dst[o + 2] = pal[p + 2];
          }
        } else {
          gray(win, dst, offset, n);
        }
      }
      case L -> {
        byte[] win = window(n);
        resampler.bicubic(im.pixels(), w, h, 1, ow, oh, x0, y0, r, r, win, 0);
        gray(win, dst, offset, n);
      }
      case RGB -> resampler.bicubic(im.pixels(), w, h, 3, ow, oh, x0, y0, r, r, dst, offset);
      case RGBA, LA -> {
        int c = im.mode().channels();
        byte[] win = window(n * c);
        if (g.resizeSkipped()) {
          // No resize, so no premultiply round trip either: Pillow returns the image untouched.
          Resampler.nearest(im.pixels(), w, h, c, ow, oh, x0, y0, r, r, win, 0);
        } else {
          byte[] pm = premultiply(im.pixels(), c);
          resampler.bicubic(pm, w, h, c, ow, oh, x0, y0, r, r, win, 0);
          unpremultiply(win, c, n);
        }
        if (c == 4) {
          for (int i = 0, o = offset; i < n; i++, o += 3) {
            dst[o] = win[4 * i];
            dst[o + 1] = win[4 * i + 1];
            dst[o + 2] = win[4 * i + 2];
          }
        } else {
          for (int i = 0, o = offset; i < n; i++, o += 3) dst[o] = dst[o + 1] = dst[o + 2] = win[2 * i];
        }
      }
      case I -> {
        int[] out = new int[n];
        Resampler.bicubicInt(im.ints(), w, h, ow, oh, x0, y0, r, r, out);
        for (int i = 0, o = offset; i < n; i++, o += 3) {
          int v = out[i];
          byte b = (byte) (v < 0 ? 0 : v > 255 ? 255 : v);
          dst[o] = dst[o + 1] = dst[o + 2] = b;
        }
      }
      case CMYK -> {
        byte[] win = window(n * 4);
        resampler.bicubic(im.pixels(), w, h, 4, ow, oh, x0, y0, r, r, win, 0);
        for (int i = 0, o = offset; i < n; i++, o += 3) {
          int nk = 255 - (win[4 * i + 3] & 0xff);
          dst[o] = (byte) cmykChannel(win[4 * i] & 0xff, nk);
          dst[o + 1] = (byte) cmykChannel(win[4 * i + 1] & 0xff, nk);
          dst[o + 2] = (byte) cmykChannel(win[4 * i + 2] & 0xff, nk);
        }
      }
    }
  }

  /** The rgb8 bytes in a new array. */
  public byte[] rgb8(DecodedImage im) {
    byte[] out = new byte[3 * size * size];
    rgb8(im, out, 0);
    return out;
  }

  /**
   * ToTensor + Normalize: writes 3 × R × R float32 values (CHW) into {@code batch} from {@code
   * offset}.
   */
  public void toTensor(DecodedImage im, float[] batch, int offset) {
    rgb8(im, rgb, 0);
    toTensor(rgb, 0, batch, offset);
  }

  /** ToTensor + Normalize of rgb8 bytes (HWC) into CHW floats. */
  public void toTensor(byte[] rgb8, int rgbOffset, float[] batch, int offset) {
    int n = size * size;
    float[] l0 = lut[0];
    float[] l1 = lut[1];
    float[] l2 = lut[2];
    for (int i = 0, p = rgbOffset; i < n; i++, p += 3) {
      batch[offset + i] = l0[rgb8[p] & 0xff];
      batch[offset + n + i] = l1[rgb8[p + 1] & 0xff];
      batch[offset + 2 * n + i] = l2[rgb8[p + 2] & 0xff];
    }
  }

  private static void gray(byte[] win, byte[] dst, int offset, int n) {
    for (int i = 0, o = offset; i < n; i++, o += 3) dst[o] = dst[o + 1] = dst[o + 2] = win[i];
  }

  /** Pillow's MULDIV255: a * b / 255 rounded, in integer arithmetic. */
  private static int mulDiv255(int a, int b) {
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
  }

  /** Pillow's cmyk2rgb channel: (255 - k) - c * (255 - k) / 255, clipped. */
  private static int cmykChannel(int c, int nk) {
    int v = nk - mulDiv255(c, nk);
    return v < 0 ? 0 : v > 255 ? 255 : v;
  }

  /** RGBA → RGBa (or LA → La): colour channels multiplied by alpha, Pillow's rounding. */
  private byte[] premultiply(byte[] px, int c) {
    byte[] out = premultiplied.length >= px.length ? premultiplied : new byte[px.length];
    if (px.length <= RETAINED_BYTES) premultiplied = out;
    int a = c - 1;
    for (int i = 0; i < px.length; i += c) {
      int alpha = px[i + a] & 0xff;
      for (int k = 0; k < a; k++) out[i + k] = (byte) mulDiv255(px[i + k] & 0xff, alpha);
      out[i + a] = (byte) alpha;
    }
    return out;
  }

  /** RGBa → RGBA: colour divided by alpha with truncation; alpha 0 and 255 leave colour as is. */
  private static void unpremultiply(byte[] px, int c, int n) {
    int a = c - 1;
    for (int i = 0; i < n * c; i += c) {
      int alpha = px[i + a] & 0xff;
      if (alpha == 0 || alpha == 255) continue;
      for (int k = 0; k < a; k++) {
        int v = (255 * (px[i + k] & 0xff)) / alpha;
        px[i + k] = (byte) (v > 255 ? 255 : v);
      }
    }
  }

  private byte[] window(int n) {
    byte[] w = window.length >= n ? window : new byte[n];
    if (n <= RETAINED_BYTES) window = w;
    return w;
  }

  /** The bytes of scratch this preprocessor keeps between images (for tests). */
  long retainedBytes() {
    return (long) premultiplied.length + window.length;
  }
}
