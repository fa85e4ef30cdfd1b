package dev.jclip.image;

/**
 * A second, deliberately plain implementation of Pillow's resize for the tests: the whole image,
 * one pixel and one channel at a time, written straight from the description of the algorithm
 * (Pillow 9.4 {@code Resample.c} / {@code Geometry.c}) and sharing no code with {@link Resampler}.
 * It is slow and obviously structured like the C original; the fast path must agree with it
 * exactly.
 */
final class PlainResize {
  private PlainResize() {}

  private static double cubic(double x) {
    double a = -0.5;
    x = Math.abs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
  }

  /** Normalised double weights per output index: [out][0] = first input index, then weights. */
  static double[][] weights(int in, int out) {
    double scale = (double) in / out;
    double fs = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * fs;
    double[][] res = new double[out][];
    for (int o = 0; o < out; o++) {
      double center = (o + 0.5) * scale;
      int lo = (int) (center - support + 0.5);
      if (lo < 0) lo = 0;
      int hi = (int) (center + support + 0.5);
      if (hi > in) hi = in;
      double[] wts = new double[hi - lo + 1];
      wts[0] = lo;
      double sum = 0;
      for (int i = lo; i < hi; i++) {
        wts[1 + i - lo] = cubic((i - center + 0.5) * (1.0 / fs));
        sum += wts[1 + i - lo];
      }
      for (int i = 1; i < wts.length; i++) if (sum != 0.0) wts[i] /= sum;
      res[o] = wts;
    }
    return res;
  }

  private static int fixed(double v) {
    return v < 0 ? (int) (-0.5 + v * (1 << 22)) : (int) (0.5 + v * (1 << 22));
  }

  private static int clipFixed(int acc) {
    return Math.max(0, Math.min(255, acc >> 22));
  }

  /** Pillow's 8-bit bicubic resize of the whole image (horizontal pass, then vertical). */
  static byte[] bicubic(byte[] src, int w, int h, int c, int ow, int oh) {
    byte[] cur = src;
    int cw = w;
    if (ow != w) {
      double[][] k = weights(w, ow);
      byte[] next = new byte[ow * h * c];
      for (int y = 0; y < h; y++) {
        for (int x = 0; x < ow; x++) {
          for (int ch = 0; ch < c; ch++) {
            int acc = 1 << 21;
            int lo = (int) k[x][0];
            for (int i = 1; i < k[x].length; i++) acc += (cur[(y * cw + lo + i - 1) * c + ch] & 0xff) * fixed(k[x][i]);
            next[(y * ow + x) * c + ch] = (byte) clipFixed(acc);
          }
        }
      }
      cur = next;
      cw = ow;
    }
    if (oh != h) {
      double[][] k = weights(h, oh);
      byte[] next = new byte[cw * oh * c];
      for (int y = 0; y < oh; y++) {
        for (int x = 0; x < cw; x++) {
          for (int ch = 0; ch < c; ch++) {
            int acc = 1 << 21;
            int lo = (int) k[y][0];
            for (int i = 1; i < k[y].length; i++) acc += (cur[((lo + i - 1) * cw + x) * c + ch] & 0xff) * fixed(k[y][i]);
            next[(y * cw + x) * c + ch] = (byte) clipFixed(acc);
          }
        }
      }
      cur = next;
    }
    return cur == src ? src.clone() : cur;
  }

  /**
   * The ideal the fixed-point code approximates: the same separable kernel in double precision,
   * clipped to 0..255 between the passes but not rounded, rounded once at the end.
   */
  static byte[] bicubicDouble(byte[] src, int w, int h, int c, int ow, int oh) {
    double[] cur = new double[w * h * c];
    for (int i = 0; i < cur.length; i++) cur[i] = src[i] & 0xff;
    int cw = w;
    if (ow != w) {
      double[][] k = weights(w, ow);
      double[] next = new double[ow * h * c];
      for (int y = 0; y < h; y++)
        for (int x = 0; x < ow; x++)
          for (int ch = 0; ch < c; ch++) {
            double acc = 0;
            int lo = (int) k[x][0];
            for (int i = 1; i < k[x].length; i++) acc += cur[(y * cw + lo + i - 1) * c + ch] * k[x][i];
            next[(y * ow + x) * c + ch] = Math.max(0, Math.min(255, acc));
          }
      cur = next;
      cw = ow;
    }
    if (oh != h) {
      double[][] k = weights(h, oh);
      double[] next = new double[cw * oh * c];
      for (int y = 0; y < oh; y++)
        for (int x = 0; x < cw; x++)
          for (int ch = 0; ch < c; ch++) {
            double acc = 0;
            int lo = (int) k[y][0];
            for (int i = 1; i < k[y].length; i++) acc += cur[((lo + i - 1) * cw + x) * c + ch] * k[y][i];
            next[(y * cw + x) * c + ch] = acc;
          }
      cur = next;
    }
    byte[] out = new byte[cur.length];
    for (int i = 0; i < out.length; i++) out[i] = (byte) Math.max(0, Math.min(255, Math.round(cur[i])));
    return out;
  }

  /** Pillow's nearest-neighbour scaling: positions accumulated by repeated addition. */
  static byte[] nearest(byte[] src, int w, int h, int c, int ow, int oh) {
    if (ow == w && oh == h) return src.clone();
    int[] xs = new int[ow];
    double step = (double) w / ow;
    double pos = step * 0.5;
    for (int x = 0; x < ow; x++) {
      xs[x] = pos < 0 ? -1 : (int) pos;
      pos += step;
    }
    byte[] out = new byte[ow * oh * c];
    double ystep = (double) h / oh;
    double ypos = ystep * 0.5;
    for (int y = 0; y < oh; y++) {
      int sy = ypos < 0 ? -1 : (int) ypos;
      for (int x = 0; x < ow; x++)
        for (int ch = 0; ch < c; ch++) out[(y * ow + x) * c + ch] = src[(sy * w + xs[x]) * c + ch];
      ypos += ystep;
    }
    return out;
  }

  /** Rows y0..y0+ch-1, columns x0..x0+cw-1 of an interleaved image. */
  static byte[] crop(byte[] img, int w, int c, int x0, int y0, int cw, int ch) {
    byte[] out = new byte[cw * ch * c];
    for (int y = 0; y < ch; y++) System.arraycopy(img, ((y0 + y) * w + x0) * c, out, y * cw * c, cw * c);
    return out;
  }
}
