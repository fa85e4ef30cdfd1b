package dev.jclip.image;

import java.util.Arrays;

/**
 * Pillow's resize, reproduced bit for bit (Pillow 9.4 {@code libImaging/Resample.c} and the
 * nearest-neighbour scaling of {@code Geometry.c}), for interleaved images of 1 to 4 channels.
 *
 * <p>Bicubic ({@code a = -0.5}): for each output index the kernel is centred at {@code (i + 0.5) *
 * scale}, its support widened by the reduction factor when downscaling (antialiasing), the weights
 * normalised to sum 1 in double precision and then rounded to 22-bit fixed point. Two separable
 * passes, horizontal first, each rounding and clipping to 0..255; a pass whose dimension does not
 * change is skipped, as Pillow skips it.
 *
 * <p>The work is restricted to a window of the resized image (the centre crop): every output pixel
 * depends only on its own coefficients, so computing fewer of them gives the same bytes as
 * Pillow's full resize followed by a crop, at a fraction of the cost for long images.
 *
 * <p>An instance keeps scratch buffers between calls (no garbage per image in a batch loop); it is
 * not thread-safe: use one per thread.
 */
public final class Resampler {
  /** Pillow's PRECISION_BITS = 32 - 8 - 2: 8 bits of result, 2 of headroom for negative lobes. */
  static final int PRECISION_BITS = 22;

  private static final double BICUBIC_SUPPORT = 2.0;

  /**
   * The passes on the Vector API when the {@code jdk.incubator.vector} module is present (and
   * {@code -Djclip.resample.vector=false} does not turn it off), else null: the scalar loops.
   * {@link ResampleVector} (both passes) where the JVM has 16-int vectors, else {@link
   * HorizontalVector} (the horizontal pass only) where it has 8.
   */
  private final VectorPass vector;

  /** The Vector API passes when available (the default). */
  public Resampler() {
    this(true);
  }

  /** @param useVector false forces the scalar loops (the twin the tests compare with) */
  Resampler(boolean useVector) {
    this(useVector ? vectorPass() : null);
  }

  /** A given implementation of the passes (null: the scalar loops); for the tests. */
  Resampler(VectorPass pass) {
    this.vector = pass;
  }

  /** The passes of another implementation (the interface keeps the Vector API classes unloaded without the module). */
  interface VectorPass {
    boolean supports(int channels);

    void horizontal(byte[] src, int w, int c, int rowFirst, int rows, int cw, int hk, int[] bounds, int[] kk, byte[] out, int outOff);

    /** @return false when this implementation has no vertical pass (the scalar loop runs) */
    boolean vertical(
        byte[] t, int tOff, int tStride, int tRow0, int c, int cw, int ch, int vk, int[] bounds, int[] kk, byte[] out, int outOff);
  }

  static VectorPass vectorPass() {
    if ("false".equals(System.getProperty("jclip.resample.vector"))) return null;
    if (ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty()) return null;
    return VectorFactory.create(System.getProperty("jclip.resample.vector", "auto"));
  }

  /** Separate so that the Vector API classes are only resolved when the module is there. */
  static final class VectorFactory {
    /**
     * @param kind "auto", "512" (ResampleVector), "512-taps" (ResampleVector without its narrow
     *     horizontal layout) or "horizontal" (HorizontalVector); null if the JVM cannot
     */
    static VectorPass create(String kind) {
      boolean wide = ResampleVector.available();
      return switch (kind) {
        case "512" -> wide ? new ResampleVector() : null;
        case "512-taps" -> wide ? new ResampleVector(false) : null;
        case "horizontal" -> HorizontalVector.available() ? new HorizontalVector() : null;
        default -> wide ? new ResampleVector() : HorizontalVector.available() ? new HorizontalVector() : null;
      };
    }
  }

  /** Whether a pass runs on the Vector API (for tests and benchmarks). */
  public boolean vectorized() {
    return vector != null;
  }

  private int[] hBounds = new int[0];
  private int[] hKernel = new int[0];
  private int[] vBounds = new int[0];
  private int[] vKernel = new int[0];
  private byte[] temp = new byte[0];

  /** Pillow's bicubic kernel with a = -0.5, written in the same operation order. */
  static double bicubic(double x) {
    final double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
  }

  /**
   * Coefficients for output indices {@code first .. first+n-1} of a resize from {@code inSize} to
   * {@code outSize} (Pillow's {@code precompute_coeffs}): per index a start and a count in {@code
   * bounds}, and {@code ksize} weights in {@code kernel}. Weights are fixed point when {@code
   * fixed}; otherwise {@code kd} receives the doubles.
   *
   * @return ksize
   */
  static int coefficients(int inSize, long outSize, int first, int n, int[] bounds, int[] kernel, double[] kd) {
    // Pillow passes the box as floats: (float) inSize, exact below 2^24.
    double scale = (double) (float) inSize / outSize;
    double filterscale = Math.max(scale, 1.0);
    double support = BICUBIC_SUPPORT * filterscale;
    int ksize = kernelSize(inSize, outSize);
    double[] w = new double[ksize];
    for (int i = 0; i < n; i++) {
      long xx = first + i;
      double center = (xx + 0.5) * scale;
      double ss = 1.0 / filterscale;
      int xmin = (int) (center - support + 0.5);
      if (xmin < 0) xmin = 0;
      int xmax = (int) (center + support + 0.5);
      if (xmax > inSize) xmax = inSize;
      xmax -= xmin;
      double ww = 0.0;
      for (int x = 0; x < xmax; x++) {
        double v = bicubic((x + xmin - center + 0.5) * ss);
        w[x] = v;
        ww += v;
      }
      for (int x = 0; x < xmax; x++) {
        if (ww != 0.0) w[x] /= ww;
      }
      bounds[2 * i] = xmin;
      bounds[2 * i + 1] = xmax;
      int base = i * ksize;
      for (int x = 0; x < ksize; x++) {
        double v = x < xmax ? w[x] : 0.0;
        if (kd != null) {
          kd[base + x] = v;
        } else {
          kernel[base + x] = v < 0 ? (int) (-0.5 + v * (1 << PRECISION_BITS)) : (int) (0.5 + v * (1 << PRECISION_BITS));
        }
      }
    }
    return ksize;
  }

  static int kernelSize(int inSize, long outSize) {
    double scale = (double) (float) inSize / outSize;
    double support = BICUBIC_SUPPORT * Math.max(scale, 1.0);
    return (int) Math.ceil(support) * 2 + 1;
  }

  static int clip8(int ss) {
    int v = ss >> PRECISION_BITS;
    return v < 0 ? 0 : v > 255 ? 255 : v;
  }

  /**
   * Bicubic resize of an 8-bit image to {@code outW × outH}, computing only the window {@code
   * [x0, x0+cw) × [y0, y0+ch)} of the result into {@code dst} (tightly packed, {@code cw * ch *
   * channels} bytes from {@code dstOff}).
   *
   * @param src interleaved pixels, {@code w * h * channels} bytes, row-major
   */
  public void bicubic(
      byte[] src, int w, int h, int channels, long outW, long outH, int x0, int y0, int cw, int ch, byte[] dst, int dstOff) {
    checkWindow(w, h, channels, outW, outH, x0, y0, cw, ch);
    if (src.length < (long) w * h * channels || dst.length - dstOff < (long) cw * ch * channels) {
      throw new IllegalArgumentException("buffer too small");
    }
    if (cw == 0 || ch == 0) return;
    boolean needH = outW != w;
    boolean needV = outH != h;

    // Vertical coefficients first: they say which source rows the horizontal pass must produce.
    int vk = kernelSize(h, outH);
    vBounds = grow(vBounds, 2 * ch);
    vKernel = grow(vKernel, vk * ch);
    coefficients(h, outH, y0, ch, vBounds, vKernel, null);
    int rowFirst;
    int rowLast;
    if (needV) {
      rowFirst = Integer.MAX_VALUE;
      rowLast = 0;
      for (int i = 0; i < ch; i++) {
        rowFirst = Math.min(rowFirst, vBounds[2 * i]);
        rowLast = Math.max(rowLast, vBounds[2 * i] + vBounds[2 * i + 1]);
      }
    } else {
      rowFirst = y0;
      rowLast = y0 + ch;
    }
    int rows = rowLast - rowFirst;
    int tStride = cw * channels;

    // Horizontal pass into temp (rows rowFirst..rowLast-1, window columns), or a plain copy.
    byte[] t;
    int tOff;
    int tRow0;
    if (needH) {
      int hk = kernelSize(w, outW);
      hBounds = grow(hBounds, 2 * cw);
      hKernel = grow(hKernel, hk * cw);
      coefficients(w, outW, x0, cw, hBounds, hKernel, null);
      if (!needV) {
        horizontal(src, w, channels, rowFirst, rows, cw, hk, dst, dstOff);
        return;
      }
      temp = grow(temp, rows * tStride);
      horizontal(src, w, channels, rowFirst, rows, cw, hk, temp, 0);
      t = temp;
      tOff = 0;
      tRow0 = rowFirst;
    } else if (!needV) {
      for (int y = 0; y < ch; y++) {
        System.arraycopy(src, ((y0 + y) * w + x0) * channels, dst, dstOff + y * tStride, tStride);
      }
      return;
    } else {
      // No horizontal pass: the vertical pass reads the source directly (window columns only).
      t = src;
      tOff = x0 * channels;
      tRow0 = 0;
      tStride = w * channels;
    }
    vertical(t, tOff, tStride, tRow0, channels, cw, ch, vk, dst, dstOff);
  }

  private void horizontal(byte[] src, int w, int c, int rowFirst, int rows, int cw, int hk, byte[] out, int outOff) {
    if (vector != null && vector.supports(c)) {
      vector.horizontal(src, w, c, rowFirst, rows, cw, hk, hBounds, hKernel, out, outOff);
      return;
    }
    int[] bounds = hBounds;
    int[] kk = hKernel;
    int half = 1 << (PRECISION_BITS - 1);
    int o = outOff;
    for (int y = 0; y < rows; y++) {
      int rowBase = (rowFirst + y) * w * c;
      switch (c) {
        case 1 -> {
          for (int xx = 0; xx < cw; xx++) {
            int xmin = bounds[2 * xx];
            int n = bounds[2 * xx + 1];
            int kb = xx * hk;
            int s0 = half;
            int p = rowBase + xmin;
            for (int x = 0; x < n; x++) s0 += (src[p + x] & 0xff) * kk[kb + x];
            out[o++] = (byte) clip8(s0);
          }
        }
        case 3 -> {
          for (int xx = 0; xx < cw; xx++) {
            int xmin = bounds[2 * xx];
            int n = bounds[2 * xx + 1];
            int kb = xx * hk;
            int s0 = half, s1 = half, s2 = half;
            int p = rowBase + xmin * 3;
            for (int x = 0; x < n; x++, p += 3) {
              int k = kk[kb + x];
              s0 += (src[p] & 0xff) * k;
              s1 += (src[p + 1] & 0xff) * k;
              s2 += (src[p + 2] & 0xff) * k;
            }
            out[o++] = (byte) clip8(s0);
            out[o++] = (byte) clip8(s1);
            out[o++] = (byte) clip8(s2);
          }
        }
        case 4 -> {
          for (int xx = 0; xx < cw; xx++) {
            int xmin = bounds[2 * xx];
            int n = bounds[2 * xx + 1];
            int kb = xx * hk;
            int s0 = half, s1 = half, s2 = half, s3 = half;
            int p = rowBase + xmin * 4;
            for (int x = 0; x < n; x++, p += 4) {
              int k = kk[kb + x];
              s0 += (src[p] & 0xff) * k;
              s1 += (src[p + 1] & 0xff) * k;
              s2 += (src[p + 2] & 0xff) * k;
              s3 += (src[p + 3] & 0xff) * k;
            }
            out[o++] = (byte) clip8(s0);
            out[o++] = (byte) clip8(s1);
            out[o++] = (byte) clip8(s2);
            out[o++] = (byte) clip8(s3);
          }
        }
        default -> {
          for (int xx = 0; xx < cw; xx++) {
            int xmin = bounds[2 * xx];
            int n = bounds[2 * xx + 1];
            int kb = xx * hk;
            int s0 = half, s1 = half, s2 = half, s3 = half;
            int p = rowBase + xmin * c;
            for (int x = 0; x < n; x++, p += c) {
              int k = kk[kb + x];
              s0 += (src[p] & 0xff) * k;
              s1 += (src[p + 1] & 0xff) * k;
              if (c > 2) s2 += (src[p + 2] & 0xff) * k;
              if (c > 3) s3 += (src[p + 3] & 0xff) * k;
            }
            out[o++] = (byte) clip8(s0);
            out[o++] = (byte) clip8(s1);
            if (c > 2) out[o++] = (byte) clip8(s2);
            if (c > 3) out[o++] = (byte) clip8(s3);
          }
        }
      }
    }
  }

  private void vertical(byte[] t, int tOff, int tStride, int tRow0, int c, int cw, int ch, int vk, byte[] out, int outOff) {
    if (vector != null && vector.supports(c) && vector.vertical(t, tOff, tStride, tRow0, c, cw, ch, vk, vBounds, vKernel, out, outOff)) {
      return;
    }
    int[] bounds = vBounds;
    int[] kk = vKernel;
    int half = 1 << (PRECISION_BITS - 1);
    int n = cw * c;
    int[] a = accumulator(n);
    int o = outOff;
    for (int yy = 0; yy < ch; yy++) {
      int ymin = bounds[2 * yy];
      int cnt = bounds[2 * yy + 1];
      int kb = yy * vk;
      // Row-at-a-time accumulation: the same integer sums as Pillow's per-pixel loop (the taps are
      // added in the same order), with sequential memory access.
      int base0 = tOff + (ymin - tRow0) * tStride;
      Arrays.fill(a, 0, n, half);
      for (int y = 0; y < cnt; y++) {
        int k = kk[kb + y];
        int base = base0 + y * tStride;
        for (int i = 0; i < n; i++) a[i] += (t[base + i] & 0xff) * k;
      }
      for (int i = 0; i < n; i++) out[o + i] = (byte) clip8(a[i]);
      o += n;
    }
  }

  private int[] acc = new int[0];

  private int[] accumulator(int n) {
    if (acc.length < n) acc = new int[n];
    return acc;
  }

  /**
   * Pillow's nearest-neighbour resize (used for palette and bilevel images whatever filter is
   * asked), window only. Source positions are accumulated by repeated addition in double
   * precision, exactly as {@code ImagingScaleAffine} does, since that is what decides ties.
   */
  public static void nearest(
      byte[] src, int w, int h, int channels, long outW, long outH, int x0, int y0, int cw, int ch, byte[] dst, int dstOff) {
    checkWindow(w, h, channels, outW, outH, x0, y0, cw, ch);
    if (outW == w && outH == h) {
      for (int y = 0; y < ch; y++) {
        System.arraycopy(src, ((y0 + y) * w + x0) * channels, dst, dstOff + y * cw * channels, cw * channels);
      }
      return;
    }
    double a0 = (double) (float) w / outW;
    double a4 = (double) (float) h / outH;
    int[] xin = new int[cw];
    double xo = a0 * 0.5;
    for (long x = 0; x < x0 + cw; x++) {
      if (x >= x0) xin[(int) (x - x0)] = coord(xo);
      xo += a0;
    }
    double yo = a4 * 0.5;
    for (long y = 0; y < y0; y++) yo += a4;
    int o = dstOff;
    for (int y = 0; y < ch; y++) {
      int yi = coord(yo);
      for (int x = 0; x < cw; x++) {
        int xi = xin[x];
        if (yi >= 0 && yi < h && xi >= 0 && xi < w) {
          System.arraycopy(src, (yi * w + xi) * channels, dst, o, channels);
        } else {
          Arrays.fill(dst, o, o + channels, (byte) 0); // Pillow fills outside the source with 0
        }
        o += channels;
      }
      yo += a4;
    }
  }

  private static int coord(double v) {
    return v < 0.0 ? -1 : (int) v;
  }

  /**
   * Bicubic resize of a 32-bit integer image (Pillow mode "I", e.g. 16-bit grayscale PNG): double
   * weights, no fixed point, each pass rounded half away from zero and not clipped.
   */
  public static void bicubicInt(int[] src, int w, int h, long outW, long outH, int x0, int y0, int cw, int ch, int[] dst) {
    checkWindow(w, h, 1, outW, outH, x0, y0, cw, ch);
    boolean needH = outW != w;
    boolean needV = outH != h;
    int vk = kernelSize(h, outH);
    int[] vb = new int[2 * ch];
    double[] vkd = new double[vk * ch];
    coefficients(h, outH, y0, ch, vb, null, vkd);
    int rowFirst = needV ? vb[0] : y0;
    int rowLast = y0 + ch;
    if (needV) {
      rowLast = 0;
      for (int i = 0; i < ch; i++) rowLast = Math.max(rowLast, vb[2 * i] + vb[2 * i + 1]);
    }
    int rows = rowLast - rowFirst;
    int[] t = new int[rows * cw];
    if (needH) {
      int hk = kernelSize(w, outW);
      int[] hb = new int[2 * cw];
      double[] hkd = new double[hk * cw];
      coefficients(w, outW, x0, cw, hb, null, hkd);
      for (int y = 0; y < rows; y++) {
        for (int xx = 0; xx < cw; xx++) {
          double ss = 0.0;
          for (int x = 0; x < hb[2 * xx + 1]; x++) ss += src[(rowFirst + y) * w + hb[2 * xx] + x] * hkd[xx * hk + x];
          t[y * cw + xx] = roundUp(ss);
        }
      }
    } else {
      for (int y = 0; y < rows; y++) System.arraycopy(src, (rowFirst + y) * w + x0, t, y * cw, cw);
    }
    if (!needV) {
      System.arraycopy(t, (y0 - rowFirst) * cw, dst, 0, cw * ch);
      return;
    }
    for (int yy = 0; yy < ch; yy++) {
      for (int xx = 0; xx < cw; xx++) {
        double ss = 0.0;
        for (int y = 0; y < vb[2 * yy + 1]; y++) ss += t[(vb[2 * yy] + y - rowFirst) * cw + xx] * vkd[yy * vk + y];
        dst[yy * cw + xx] = roundUp(ss);
      }
    }
  }

  /**
   * Pillow's ROUND_UP: half away from zero, then C's truncating int conversion, which on x86-64
   * ({@code cvttsd2si}) gives Integer.MIN_VALUE for a value outside the int range where Java's
   * cast would saturate (a bicubic overshoot of 32-bit samples near the ends of their range).
   */
  static int roundUp(double f) {
    double r = f >= 0.0 ? f + 0.5f : f - 0.5f;
    return r < 2147483648.0 && r > -2147483649.0 ? (int) r : Integer.MIN_VALUE;
  }

  private static void checkWindow(int w, int h, int channels, long outW, long outH, int x0, int y0, int cw, int ch) {
    if (w <= 0 || h <= 0 || outW <= 0 || outH <= 0 || channels < 1 || channels > 4) {
      throw new IllegalArgumentException(
          "cannot resize " + w + "x" + h + "x" + channels + " to " + outW + "x" + outH);
    }
    if (outW > Integer.MAX_VALUE || outH > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("resized size " + outW + "x" + outH + " is too large");
    }
    if (x0 < 0 || y0 < 0 || cw < 0 || ch < 0 || x0 + (long) cw > outW || y0 + (long) ch > outH) {
      throw new IllegalArgumentException(
          "window " + cw + "x" + ch + "+" + x0 + "+" + y0 + " is outside " + outW + "x" + outH);
    }
  }

  private static int[] grow(int[] a, int n) {
    return a.length >= n ? a : new int[Math.max(n, a.length + a.length / 2)];
  }

  private static byte[] grow(byte[] a, int n) {
    return a.length >= n ? a : new byte[Math.max(n, a.length + a.length / 2)];
  }
}
