package dev.jclip.image;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The horizontal bicubic pass of {@link Resampler} on the Vector API (loaded only when the {@code
 * jdk.incubator.vector} module is present; {@link Resampler}'s scalar loop is its twin and the
 * property tests hold both to the plain implementation).
 *
 * <p>Per output pixel the source span is {@code n} taps of {@code c} interleaved bytes. A vector
 * of L int lanes covers {@code L / c} whole pixels (5 RGB pixels in 16 lanes, the last lane
 * unused); the kernel is expanded once per call so that lane {@code j} of step {@code s} carries
 * the weight of tap {@code s·(L/c) + j/c} (0 in unused lanes and past the last tap). Products are
 * summed lane-wise and each channel's lanes are added at the end. All of it is 32-bit integer
 * arithmetic, like Pillow's, so the order of the additions cannot change a bit.
 */
final class HorizontalVector implements Resampler.VectorPass {
  private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
  private static final int L = I.length();
  private static final VectorSpecies<Byte> B = VectorSpecies.of(byte.class, VectorShape.forBitSize(L * 8));

  private int[] expanded = new int[0];
  private final VectorMask<Integer>[] channelMasks = newMasks();

  @SuppressWarnings("unchecked")
  private static VectorMask<Integer>[] newMasks() {
    return new VectorMask[5 * 4];
  }

  /** Whether this JVM's vectors hold at least 8 ints (two whole RGBA pixels). */
  static boolean available() {
    return L >= 8;
  }

  @Override
  public boolean supports(int c) {
    return L >= 8 && c >= 1 && c <= 4;
  }

  /** No vertical pass here: {@link Resampler}'s scalar loop runs. */
  @Override
  public boolean vertical(
      byte[] t, int tOff, int tStride, int tRow0, int c, int cw, int ch, int vk, int[] bounds, int[] kk, byte[] out, int outOff) {
    return false;
  }

  private VectorMask<Integer> mask(int c, int ch) {
    VectorMask<Integer> m = channelMasks[c * 4 + ch];
    if (m == null) {
      int ppv = L / c;
      boolean[] bits = new boolean[L];
      for (int j = 0; j < ppv * c; j++) bits[j] = j % c == ch;
      channelMasks[c * 4 + ch] = m = VectorMask.fromArray(I, bits, 0);
    }
    return m;
  }

  /**
   * Rows {@code rowFirst .. rowFirst+rows-1} of {@code src} (width {@code w}, {@code c} channels)
   * through the coefficients of {@code cw} output pixels ({@code bounds}: start and count per
   * pixel; {@code kk}: {@code hk} fixed-point weights per pixel), clipped to bytes into {@code out}.
   */
  @Override
  public void horizontal(byte[] src, int w, int c, int rowFirst, int rows, int cw, int hk, int[] bounds, int[] kk, byte[] out, int outOff) {
    int ppv = L / c;
    int steps = (hk + ppv - 1) / ppv;
    int need = cw * steps * L;
    if (expanded.length < need) expanded = new int[need];
    int[] ek = expanded;
    for (int xx = 0; xx < cw; xx++) {
      int n = bounds[2 * xx + 1], base = xx * steps * L;
      for (int s = 0; s < steps; s++) {
        for (int j = 0; j < L; j++) {
          int tap = s * ppv + j / c;
          ek[base + s * L + j] = j < ppv * c && tap < n ? kk[xx * hk + tap] : 0;
        }
      }
    }
    @SuppressWarnings("unchecked")
    VectorMask<Integer>[] masks = new VectorMask[c];
    for (int ch = 0; ch < c; ch++) masks[ch] = mask(c, ch);
    int half = 1 << (Resampler.PRECISION_BITS - 1);
    int o = outOff;
    long limit = src.length;
    for (int y = 0; y < rows; y++) {
      int rowBase = (rowFirst + y) * w * c;
      for (int xx = 0; xx < cw; xx++) {
        int xmin = bounds[2 * xx], n = bounds[2 * xx + 1];
        int p = rowBase + xmin * c, base = xx * steps * L, used = (n + ppv - 1) / ppv;
        if (p + (long) used * ppv * c + (L - ppv * c) > limit) {
          // The last vector would read past the array: this pixel the scalar way.
          for (int ch = 0; ch < c; ch++) {
            int ss = half;
            for (int x = 0; x < n; x++) ss += (src[p + x * c + ch] & 0xff) * kk[xx * hk + x];
            out[o++] = (byte) Resampler.clip8(ss);
          }
          continue;
        }
        IntVector acc = IntVector.zero(I);
        for (int s = 0; s < used; s++) {
          IntVector px = (IntVector) ByteVector.fromArray(B, src, p + s * ppv * c).convertShape(VectorOperators.B2I, I, 0);
          acc = px.and(0xff).mul(IntVector.fromArray(I, ek, base + s * L)).add(acc);
        }
        for (int ch = 0; ch < c; ch++) out[o++] = (byte) Resampler.clip8(half + acc.reduceLanes(VectorOperators.ADD, masks[ch]));
      }
    }
  }
}
