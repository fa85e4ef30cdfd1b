package dev.jclip.image;

/**
 * Makes the JDK's libjpeg 6b output equal libjpeg-turbo's for chroma subsampled vertically only
 * (4:4:0, "h1v2": a component at full width and half height, e.g. 4:2:2 photos rotated losslessly).
 *
 * <p>libjpeg-turbo (since 1.5) upsamples such a component with a vertical triangle filter (3/4 of
 * the nearer row, 1/4 of the farther, rounding biases 1 and 2); libjpeg 6b only duplicates rows.
 * From 6b's raw YCbCr (which {@code readRaster} returns before colour conversion) the original
 * chroma rows are the even rows; this class redoes turbo's upsampling on them and then libjpeg's
 * YCbCr to RGB conversion (the same fixed-point tables in both libraries).
 */
final class JpegH1v2 {
  static final int SCALEBITS = 16;
  private static final int ONE_HALF = 1 << (SCALEBITS - 1);
  // libjpeg's YCbCr -> RGB tables (filled once, never written after): R = Y + CR_R[Cr],
  // G = Y + ((CB_G[Cb] + CR_G[Cr]) >> 16), B = Y + CB_B[Cb], each clamped to 0..255.
  static final int[] CR_R = new int[256];
  static final int[] CB_B = new int[256];
  static final int[] CR_G = new int[256];
  static final int[] CB_G = new int[256];

  static {
    // jdcolor.c build_ycc_rgb_table
    for (int i = 0; i < 256; i++) {
      int x = i - 128;
      CR_R[i] = (fix(1.40200) * x + ONE_HALF) >> SCALEBITS;
      CB_B[i] = (fix(1.77200) * x + ONE_HALF) >> SCALEBITS;
      CR_G[i] = -fix(0.71414) * x;
      CB_G[i] = -fix(0.34414) * x + ONE_HALF;
    }
  }

  private JpegH1v2() {}

  private static int fix(double v) {
    return (int) (v * (1L << SCALEBITS) + 0.5);
  }

  static int clamp(int v) {
    return v < 0 ? 0 : v > 255 ? 255 : v;
  }

  /**
   * Converts raw Y, Cb, Cr (interleaved, as libjpeg 6b upsampled them) to RGB in place, first
   * redoing the vertical upsampling of the components flagged in {@code h1v2}.
   */
  static void toRgb(byte[] ycc, int w, int h, boolean[] h1v2) {
    for (int c = 1; c < 3; c++) {
      if (!h1v2[c]) continue;
      int rows = (h + 1) / 2; // downsampled height: ceil(h / 2)
      byte[] plane = new byte[rows * w];
      for (int k = 0; k < rows; k++) {
        int src = (2 * k) * w * 3 + c;
        for (int x = 0; x < w; x++) plane[k * w + x] = ycc[src + 3 * x];
      }
      for (int y = 0; y < h; y++) {
        int k = y / 2;
        // Output row 2k takes the row above as its farther neighbour (bias 1), row 2k+1 the row
        // below (bias 2); at the image's edges the neighbour is the row itself.
        int far = (y % 2 == 0) ? Math.max(k - 1, 0) : Math.min(k + 1, rows - 1);
        int bias = (y % 2 == 0) ? 1 : 2;
        int o = y * w * 3 + c;
        for (int x = 0; x < w; x++) {
          int v = (plane[k * w + x] & 0xff) * 3 + (plane[far * w + x] & 0xff);
          ycc[o + 3 * x] = (byte) ((v + bias) >> 2);
        }
      }
    }
    for (int i = 0; i < ycc.length; i += 3) {
      int y = ycc[i] & 0xff;
      int cb = ycc[i + 1] & 0xff;
      int cr = ycc[i + 2] & 0xff;
      ycc[i] = (byte) clamp(y + CR_R[cr]);
      ycc[i + 1] = (byte) clamp(y + ((CB_G[cb] + CR_G[cr]) >> SCALEBITS));
      ycc[i + 2] = (byte) clamp(y + CB_B[cb]);
    }
  }

  /**
   * Converts raw Y, Cb, Cr, K (interleaved) to the CMYK libjpeg outputs for a YCCK JPEG, in place:
   * C, M, Y = 255 - the RGB of libjpeg's YCbCr conversion, K unchanged ({@code jdcolor.c}
   * {@code ycck_cmyk_convert}).
   */
  static void ycckToCmyk(byte[] ycck) {
    for (int i = 0; i < ycck.length; i += 4) {
      int y = ycck[i] & 0xff;
      int cb = ycck[i + 1] & 0xff;
      int cr = ycck[i + 2] & 0xff;
      ycck[i] = (byte) (255 - clamp(y + CR_R[cr]));
      ycck[i + 1] = (byte) (255 - clamp(y + ((CB_G[cb] + CR_G[cr]) >> SCALEBITS)));
      ycck[i + 2] = (byte) (255 - clamp(y + CB_B[cb]));
    }
  }

  /**
   * Whether libjpeg would decode this 4-component JPEG as YCCK: an Adobe marker with a transform
   * other than 0 before the frame ({@code default_decompress_parms}); otherwise it is CMYK.
   */
  static boolean isYcck(byte[] b) {
    int i = 2;
    while (i + 4 < b.length) {
      if ((b[i] & 0xff) != 0xFF) return false;
      int m = b[i + 1] & 0xff;
      if (m == 0xFF) {
        i++;
        continue;
      }
      int len = ((b[i + 2] & 0xff) << 8) | (b[i + 3] & 0xff);
      if (m == 0xEE && len >= 12 && i + 15 < b.length && b[i + 4] == 'A' && b[i + 5] == 'd') return b[i + 15] != 0;
      if (m == 0xDA || m == 0xD9) return false;
      i += 2 + len;
    }
    return false;
  }

  /**
   * Whether libjpeg would decode this 3-component JPEG as YCbCr (its default): not when an Adobe
   * marker says transform 0, nor (without JFIF/Adobe markers) when the component ids are 'R','G','B'.
   */
  static boolean isYcc(byte[] b) {
    int i = 2;
    boolean jfif = false;
    int adobe = -1;
    while (i + 4 < b.length) {
      if ((b[i] & 0xff) != 0xFF) return true;
      int m = b[i + 1] & 0xff;
      if (m == 0xFF) {
        i++;
        continue;
      }
      int len = ((b[i + 2] & 0xff) << 8) | (b[i + 3] & 0xff);
      if (m == 0xE0 && i + 8 < b.length && b[i + 4] == 'J' && b[i + 5] == 'F' && b[i + 6] == 'I' && b[i + 7] == 'F') jfif = true;
      if (m == 0xEE && len >= 12 && i + 15 < b.length && b[i + 4] == 'A' && b[i + 5] == 'd') adobe = b[i + 15] & 0xff;
      boolean sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
      if (sof) {
        if (jfif) return true;
        if (adobe >= 0) return adobe != 0;
        if (i + 16 >= b.length) return true;
        return !(b[i + 10] == 'R' && b[i + 13] == 'G' && b[i + 16] == 'B');
      }
      if (m == 0xDA || m == 0xD9) return true;
      i += 2 + len;
    }
    return true;
  }

  /**
   * Which components of a 3-component YCbCr JPEG libjpeg-turbo upsamples with its h1v2 filter
   * (full width, half the maximum height), from the SOF marker; null when none, or when the file
   * is not the plain YCbCr case this class handles.
   */
  static boolean[] components(byte[] b) {
    int i = 2;
    boolean adobeRgb = false;
    while (i + 4 < b.length) {
      if ((b[i] & 0xff) != 0xFF) return null;
      int m = b[i + 1] & 0xff;
      if (m == 0xFF) {
        i++;
        continue;
      }
      int len = ((b[i + 2] & 0xff) << 8) | (b[i + 3] & 0xff);
      if (m == 0xEE && len >= 12 && i + 15 < b.length && b[i + 4] == 'A' && b[i + 5] == 'd') {
        adobeRgb = b[i + 15] == 0; // Adobe transform 0: the data is RGB, not YCbCr
      }
      boolean sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
      if (sof) {
        if (i + 10 + 9 > b.length || (b[i + 9] & 0xff) != 3 || adobeRgb) return null;
        int[] hs = new int[3];
        int[] vs = new int[3];
        int maxH = 0;
        int maxV = 0;
        for (int c = 0; c < 3; c++) {
          int f = b[i + 11 + 3 * c] & 0xff;
          hs[c] = f >> 4;
          vs[c] = f & 15;
          maxH = Math.max(maxH, hs[c]);
          maxV = Math.max(maxV, vs[c]);
        }
        // Only the layout where luma is full size is handled (it always is in practice).
        if (hs[0] != maxH || vs[0] != maxV) return null;
        boolean[] out = new boolean[3];
        boolean any = false;
        for (int c = 1; c < 3; c++) {
          out[c] = hs[c] == maxH && vs[c] * 2 == maxV;
          any |= out[c];
        }
        return any ? out : null;
      }
      if (m == 0xDA || m == 0xD9) return null;
      i += 2 + len;
    }
    return null;
  }
}
