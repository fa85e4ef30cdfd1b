package dev.jclip.image;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Both bicubic passes of {@link Resampler} on the Vector API (loaded only when the {@code
 * jdk.incubator.vector} module is present; {@link Resampler}'s scalar loops are the twins and the
 * property tests hold both to the plain implementation). Everything is Pillow's 32-bit integer
 * arithmetic (products and sums of ints, which wrap the same whatever the order of the additions),
 * so the bytes cannot change.
 *
 * <p><b>Horizontal pass.</b> Each source row is first copied into an int per pixel (the pixel's
 * {@code c} bytes and whatever follows: only the low {@code c} bytes are used), so that every pixel
 * is 4 bytes whatever the channel count. Output pixels go 4 at a time, and their 4 × 4 channels
 * end in one vector, rounded, clipped, packed to the {@code c} channels and stored with one vector
 * store. Two layouts, the kernel expanded once per call to the one used:
 *
 * <ul>
 *   <li>narrow ({@link #narrow}; when each group of 4 output pixels starts within 16 source
 *       pixels, i.e. downscaling by less than about 5, CLIP's usual case for small images): lanes
 *       are 4 pixels × 4 channels throughout; per tap one load of 16 source pixels and one shuffle
 *       picking each output pixel's own source pixel;
 *   <li>otherwise: a vector holds 4 consecutive taps × 4 channels of one output pixel (one 16-byte
 *       load, zero-extended); the four pixels' accumulators are folded into one vector of 4 pixels
 *       × 4 channels by two rounds of two-vector shuffles and adds (a 4×4 transpose-and-add).
 * </ul>
 *
 * Neither needs a lane reduction per channel and pixel (what {@link HorizontalVector} does).
 *
 * <p><b>Vertical pass.</b> Every byte of an output row has the same weights (those of its row), so
 * 16 consecutive bytes are computed at once: per tap one 16-byte load zero-extended to ints and
 * multiplied by the broadcast weight; no shuffles at all.
 *
 * <p>Needs 16-int vectors (AVX-512); {@link #available()} says whether the JVM offers them.
 */
final class ResampleVector implements Resampler.VectorPass {
  private static final VectorSpecies<Integer> I = IntVector.SPECIES_512;
  private static final VectorSpecies<Integer> I4 = IntVector.SPECIES_128;
  private static final VectorSpecies<Byte> B = ByteVector.SPECIES_128;
  private static final VectorSpecies<Byte> B64 = ByteVector.SPECIES_512;
  private static final VectorShuffle<Byte> RGB_TO_4 = rgbTo4();
  private static final VarHandle INT_LE = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);

  /** Lane selections of the 4×4 transpose-and-add, over the 32 lanes of two vectors. */
  private static final IntVector SEL_A = lanes(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);

  private static final IntVector SEL_B = lanes(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  private static final IntVector SEL_C = lanes(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
  private static final IntVector SEL_D = lanes(4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);

  /** Per channel count, the shuffle moving pixel j's channel k from lane 4j+k to lane cj+k. */
  @SuppressWarnings("unchecked")
  private static final VectorShuffle<Integer>[] PACK = new VectorShuffle[5];

  static {
    for (int c = 1; c <= 4; c++) {
      int[] idx = new int[16];
      for (int t = 0; t < 4 * c; t++) idx[t] = (t / c) * 4 + t % c;
      PACK[c] = VectorShuffle.fromArray(I, idx, 0);
    }
  }

  private static VectorShuffle<Byte> rgbTo4() {
    int[] idx = new int[64];
    for (int i = 0; i < 64; i++) idx[i] = 3 * (i / 4) + i % 4;
    return VectorShuffle.fromArray(ByteVector.SPECIES_512, idx, 0);
  }

  private static IntVector lanes(int... v) {
    return IntVector.fromArray(I, v, 0);
  }

  /** Whether this JVM has the 16-int vectors the passes are written for. */
  static boolean available() {
    return IntVector.SPECIES_PREFERRED.length() >= 16;
  }

  /** Whether the horizontal pass may take {@link #narrow} (false: always the 4-taps layout; for the tests). */
  private final boolean narrowAllowed;

  ResampleVector() {
    this(true);
  }

  ResampleVector(boolean narrowAllowed) {
    this.narrowAllowed = narrowAllowed;
  }

  private int[] expanded = new int[0];
  private int[] row = new int[0];

  @Override
  public boolean supports(int c) {
    return c >= 1 && c <= 4;
  }

  /**
   * Rows {@code rowFirst .. rowFirst+rows-1} of {@code src} (width {@code w}, {@code c} channels)
   * through the coefficients of {@code cw} output pixels ({@code bounds}: start and count per
   * pixel; {@code kk}: {@code hk} fixed-point weights per pixel), clipped to bytes into {@code out}.
   */
  @Override
  public void horizontal(
      byte[] src, int w, int c, int rowFirst, int rows, int cw, int hk, int[] bounds, int[] kk, byte[] out, int outOff) {
    if (narrowAllowed && narrow(src, w, c, rowFirst, rows, cw, hk, bounds, kk, out, outOff)) return;
    // Expanded kernel: per output pixel, `steps` vectors of 4 taps × 4 channels (0 past its taps).
    int steps = (hk + 3) / 4;
    int per = steps * 16;
    int need = cw * per;
    if (expanded.length < need) expanded = new int[need];
    int[] ek = expanded;
    for (int xx = 0; xx < cw; xx++) {
      int n = bounds[2 * xx + 1];
      int base = xx * per;
      for (int t = 0; t < steps * 4; t++) {
        int k = t < n ? kk[xx * hk + t] : 0;
        int e = base + t * 4;
        ek[e] = k;
        ek[e + 1] = k;
        ek[e + 2] = k;
        ek[e + 3] = k;
      }
    }
    // One int per source pixel, plus 4 of padding (a pixel's last load may reach 3 pixels past its taps).
    if (row.length < w + 4) row = new int[w + 4];
    int[] px = row;
    IntVector half = IntVector.broadcast(I, 1 << (Resampler.PRECISION_BITS - 1));
    VectorShuffle<Integer> pack = PACK[c];
    int outStride = cw * c;
    int outEnd = outOff + rows * outStride;
    int full = cw & ~3;
    for (int y = 0; y < rows; y++) {
      packRow(src, (rowFirst + y) * w * c, w, c, px);
      int o = outOff + y * outStride;
      for (int xx = 0; xx < cw; xx += 4) {
        IntVector a = pixel(px, bounds, ek, xx, per);
        IntVector b = xx + 1 < cw ? pixel(px, bounds, ek, xx + 1, per) : IntVector.zero(I);
        IntVector d2 = xx + 2 < cw ? pixel(px, bounds, ek, xx + 2, per) : IntVector.zero(I);
        IntVector d3 = xx + 3 < cw ? pixel(px, bounds, ek, xx + 3, per) : IntVector.zero(I);
        // 4×4 transpose-and-add of 128-bit blocks: block j of the result is the sum of vector j's
        // blocks (block t of vector j holds pixel j's taps ≡ t mod 4).
        IntVector ab = SEL_A.selectFrom(a, b).add(SEL_B.selectFrom(a, b));
        IntVector cd = SEL_A.selectFrom(d2, d3).add(SEL_B.selectFrom(d2, d3));
        IntVector sum = SEL_C.selectFrom(ab, cd).add(SEL_D.selectFrom(ab, cd));
        IntVector v = sum.add(half).lanewise(VectorOperators.ASHR, Resampler.PRECISION_BITS).max(0).min(255);
        if (c != 4) v = v.rearrange(pack);
        ByteVector bytes = (ByteVector) v.convertShape(VectorOperators.I2B, B, 0);
        if (o + 16 <= outEnd) {
          // Bytes past this group's 4c land where the next group (or row) writes later.
          bytes.intoArray(out, o);
        } else {
          int valid = (Math.min(4, cw - xx)) * c;
          bytes.intoArray(out, o, VectorMask.fromLong(B, (1L << valid) - 1));
        }
        o += xx < full ? 4 * c : (cw - xx) * c;
      }
    }
  }

  /**
   * The horizontal pass when every group of 4 consecutive output pixels starts within 16 source
   * pixels (downscaling by less than about 5): lanes are 4 pixels × 4 channels, so there is
   * nothing to fold. Per tap {@code k} one vector of 16 packed source pixels from the group's first
   * start {@code + k}, one shuffle picking each pixel's own source pixel ({@code start_j + k}), its
   * bytes zero-extended, times the 4 pixels' weights for that tap.
   *
   * @return false when some group's starts are too far apart (nothing written)
   */
  private boolean narrow(
      byte[] src, int w, int c, int rowFirst, int rows, int cw, int hk, int[] bounds, int[] kk, byte[] out, int outOff) {
    int groups = (cw + 3) / 4;
    if (gBase.length < groups) {
      gBase = new int[groups];
      gTaps = new int[groups];
      gIdx = new int[groups * 16];
    }
    int total = 0;
    for (int g = 0; g < groups; g++) {
      int base = bounds[8 * g];
      int taps = 0;
      for (int j = 0; j < 4; j++) {
        int xx = 4 * g + j;
        int d = xx < cw ? bounds[2 * xx] - base : 0;
        if (d > 15) return false;
        gIdx[g * 16 + j] = d; // lane j: pixel j's source; lanes 4..15 unused
        if (xx < cw) taps = Math.max(taps, bounds[2 * xx + 1]);
      }
      gBase[g] = base;
      gTaps[g] = taps;
      total += taps;
    }
    if (expanded.length < total * 16) expanded = new int[total * 16];
    int[] ek = expanded;
    for (int g = 0, e = 0; g < groups; g++) {
      for (int k = 0; k < gTaps[g]; k++, e += 16) {
        for (int j = 0; j < 4; j++) {
          int xx = 4 * g + j;
          int v = xx < cw && k < bounds[2 * xx + 1] ? kk[xx * hk + k] : 0;
          ek[e + 4 * j] = v;
          ek[e + 4 * j + 1] = v;
          ek[e + 4 * j + 2] = v;
          ek[e + 4 * j + 3] = v;
        }
      }
    }
    // Loads reach 15 pixels past the last tap's start (the weights there are 0).
    if (row.length < w + 16 + hk) row = new int[w + 16 + hk];
    int[] px = row;
    int outStride = cw * c;
    int outEnd = outOff + rows * outStride;
    for (int y = 0; y < rows; y++) {
      packRow(src, (rowFirst + y) * w * c, w, c, px);
      narrowRow(px, groups, cw, c, ek, out, outOff + y * outStride, outEnd);
    }
    return true;
  }

  private int[] gBase = new int[0];
  private int[] gTaps = new int[0];
  private int[] gIdx = new int[0];

  private void narrowRow(int[] px, int groups, int cw, int c, int[] ek, byte[] out, int o, int outEnd) {
    int[] bases = gBase;
    int[] tapsOf = gTaps;
    int[] idxs = gIdx;
    for (int g = 0, e = 0; g < groups; g++) {
      IntVector idx = IntVector.fromArray(I, idxs, 16 * g);
      int base = bases[g];
      int taps = tapsOf[g];
      IntVector acc = IntVector.broadcast(I, 1 << (Resampler.PRECISION_BITS - 1));
      for (int k = 0; k < taps; k++, e += 16) {
        IntVector p = idx.selectFrom(IntVector.fromArray(I, px, base + k));
        IntVector b = (IntVector) p.reinterpretAsBytes().convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0);
        acc = b.mul(IntVector.fromArray(I, ek, e)).add(acc);
      }
      IntVector v = acc.lanewise(VectorOperators.ASHR, Resampler.PRECISION_BITS).max(0).min(255);
      if (c != 4) v = v.rearrange(PACK[c]);
      ByteVector bytes = (ByteVector) v.convertShape(VectorOperators.I2B, B, 0);
      int valid = Math.min(4, cw - 4 * g) * c;
      if (o + 16 <= outEnd) {
        bytes.intoArray(out, o);
      } else {
        bytes.intoArray(out, o, VectorMask.fromLong(B, (1L << valid) - 1));
      }
      o += valid;
    }
  }

  /** Output pixel xx of the packed row: per lane (tap 4s+t, channel k) the products, summed over s. */
  private static IntVector pixel(int[] px, int[] bounds, int[] ek, int xx, int per) {
    int xmin = bounds[2 * xx];
    int used = (bounds[2 * xx + 1] + 3) >> 2;
    int e = xx * per;
    IntVector acc = IntVector.zero(I);
    for (int s = 0; s < used; s++) {
      IntVector p =
          (IntVector) IntVector.fromArray(I4, px, xmin + 4 * s).reinterpretAsBytes().convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0);
      acc = p.mul(IntVector.fromArray(I, ek, e + 16 * s)).add(acc);
    }
    return acc;
  }

  /** One int per pixel: the pixel's bytes in the low bytes (the rest is not used). */
  private static void packRow(byte[] src, int p, int w, int c, int[] px) {
    int x = 0;
    if (c == 3) {
      // 16 RGB pixels (48 bytes) per step, spread to 4 bytes each by one byte shuffle.
      for (; x + 16 <= w && p + 3 * x + 64 <= src.length; x += 16) {
        ByteVector.fromArray(B64, src, p + 3 * x).rearrange(RGB_TO_4).reinterpretAsInts().intoArray(px, x);
      }
    } else if (c == 4) {
      for (; x + 16 <= w; x += 16) ByteVector.fromArray(B64, src, p + 4 * x).reinterpretAsInts().intoArray(px, x);
    }
    // Four-byte reads while they stay inside the array (only the image's last pixel may not).
    int room = src.length - 4 - p;
    int safe = room < 0 ? 0 : Math.min(w, room / c + 1);
    for (; x < safe; x++) px[x] = (int) INT_LE.get(src, p + x * c);
    for (; x < w; x++) {
      int v = 0;
      for (int k = 0; k < c; k++) v |= (src[p + x * c + k] & 0xff) << (8 * k);
      px[x] = v;
    }
  }

  /**
   * The vertical pass: {@code ch} output rows of {@code n = cw * c} bytes, output row {@code yy}
   * from source rows {@code bounds[2yy] ..} ({@code bounds[2yy+1]} of them, weights {@code kk[yy *
   * vk ..]}), source row {@code y} at {@code tOff + (y - tRow0) * tStride} of {@code t}.
   */
  @Override
  public boolean vertical(
      byte[] t, int tOff, int tStride, int tRow0, int c, int cw, int ch, int vk, int[] bounds, int[] kk, byte[] out, int outOff) {
    int n = cw * c;
    int half = 1 << (Resampler.PRECISION_BITS - 1);
    IntVector halfV = IntVector.broadcast(I, half);
    int vecEnd = n & ~15;
    int o = outOff;
    for (int yy = 0; yy < ch; yy++) {
      int cnt = bounds[2 * yy + 1];
      int kb = yy * vk;
      int base0 = tOff + (bounds[2 * yy] - tRow0) * tStride;
      int i = 0;
      for (; i + 32 <= n; i += 32) {
        IntVector acc0 = halfV;
        IntVector acc1 = halfV;
        int p = base0 + i;
        for (int y = 0; y < cnt; y++, p += tStride) {
          IntVector k = IntVector.broadcast(I, kk[kb + y]);
          acc0 = widen(t, p).mul(k).add(acc0);
          acc1 = widen(t, p + 16).mul(k).add(acc1);
        }
        narrow(acc0).intoArray(out, o + i);
        narrow(acc1).intoArray(out, o + i + 16);
      }
      for (; i < vecEnd; i += 16) {
        IntVector acc0 = halfV;
        int p = base0 + i;
        for (int y = 0; y < cnt; y++, p += tStride) acc0 = widen(t, p).mul(kk[kb + y]).add(acc0);
        narrow(acc0).intoArray(out, o + i);
      }
      for (; i < n; i++) {
        int ss = half;
        int p = base0 + i;
        for (int y = 0; y < cnt; y++, p += tStride) ss += (t[p] & 0xff) * kk[kb + y];
        out[o + i] = (byte) Resampler.clip8(ss);
      }
      o += n;
    }
    return true;
  }

  private static IntVector widen(byte[] t, int p) {
    return (IntVector) ByteVector.fromArray(B, t, p).convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0);
  }

  private static ByteVector narrow(IntVector acc) {
    return (ByteVector)
        acc.lanewise(VectorOperators.ASHR, Resampler.PRECISION_BITS).max(0).min(255).convertShape(VectorOperators.I2B, B, 0);
  }
}
