package dev.jclip.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The row kernels on the Vector API (jdk.incubator.vector), loaded only when that module is
 * present; {@link ScalarKernels} is the twin each method is tested against. Attention transposes K
 * once per (sequence, head) so that scores are computed 16 keys at a time without horizontal sums.
 *
 * <p>Results must not depend on whether HotSpot has compiled a loop yet: the Vector API's EXP and
 * {@code reduceLanes(ADD)} give different bits interpreted and compiled, which broke run-to-run
 * identity (and the bit-exact end-of-text cut). So exp is our own polynomial of adds, multiplies
 * and FMAs, and sums over lanes are taken lane by lane in a fixed order.
 */
final class VectorKernels extends ScalarKernels {
  private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
  private static final int L = S.length();

  /** Lanes per vector (the padding attention's scratch needs). */
  static int lanes() {
    return L;
  }

  @Override
  int attentionLanes() {
    return Math.max(16, L);
  }

  private static final FloatVector MAGIC = FloatVector.broadcast(S, 12582912f); // 1.5·2²³: adding it rounds to an integer

  /**
   * e^x for x in [-87.3, 88.7] (clamped outside), Cephes' expf: x = n·ln2 + r, |r| ≤ ln2/2, a
   * degree-6 polynomial for e^r, 2^n built in the exponent bits. About 1 ulp.
   */
  static FloatVector exp(FloatVector x) {
    x = x.max(-87.3f).min(88.7f);
    FloatVector t = x.mul(1.44269504088896341f).add(MAGIC);
    IntVector n = t.reinterpretAsInts().sub(0x4B400000); // integer value of round(x·log2 e)
    FloatVector nf = t.sub(MAGIC);
    FloatVector r = nf.fma(FloatVector.broadcast(S, -0.693359375f), x);
    r = nf.fma(FloatVector.broadcast(S, 2.12194440e-4f), r);
    FloatVector p = r.fma(FloatVector.broadcast(S, 1.9875691500e-4f), FloatVector.broadcast(S, 1.3981999507e-3f));
    p = p.fma(r, FloatVector.broadcast(S, 8.3334519073e-3f));
    p = p.fma(r, FloatVector.broadcast(S, 4.1665795894e-2f));
    p = p.fma(r, FloatVector.broadcast(S, 1.6666665459e-1f));
    p = p.fma(r, FloatVector.broadcast(S, 5.0000001201e-1f));
    FloatVector e = p.mul(r).fma(r, r).add(1f);
    FloatVector scale = n.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
    return e.mul(scale);
  }

  /** The lanes' sum in lane order (deterministic, unlike reduceLanes). */
  static float sum(FloatVector v) {
    float s = 0;
    for (int i = 0; i < L; i++) s += v.lane(i);
    return s;
  }

  @Override
  void add(float[] a, float[] b, float[] y, int from, int to, boolean relu) {
    int i = from;
    for (int end = from + S.loopBound(to - from); i < end; i += L) {
      FloatVector v = FloatVector.fromArray(S, a, i).add(FloatVector.fromArray(S, b, i));
      if (relu) v = v.max(0f);
      v.intoArray(y, i);
    }
    super.add(a, b, y, i, to, relu);
  }

  /** A vector of rows at a time: each column's values gathered from L rows (a stride of {@code cols}), stored contiguously. */
  @Override
  void transpose(float[] src, int sOff, int r, int cols, float[] dst, int dOff, int i0, int i1, float[] scale, float[] bias, boolean relu) {
    int end = i0 + (i1 - i0) / L * L;
    if (end > i0) {
      int[] index = new int[L];
      for (int l = 0; l < L; l++) index[l] = l * cols;
      for (int j = 0; j < cols; j++) {
        int d = dOff + j * r, sj = sOff + j;
        float sv = scale == null ? 1f : scale[j], bv = bias == null ? 0f : bias[j];
        for (int i = i0; i < end; i += L) {
          FloatVector v = FloatVector.fromArray(S, src, sj + i * cols, index, 0);
          if (bias != null) {
            v = v.mul(sv).add(bv);
            if (relu) v = v.max(0f);
          }
          v.intoArray(dst, d + i);
        }
      }
    }
    if (end < i1) super.transpose(src, sOff, r, cols, dst, dOff, end, i1, scale, bias, relu);
  }

  private static final VectorSpecies<Short> HALF = jdk.incubator.vector.ShortVector.SPECIES_PREFERRED.length() == 2 * L
      ? jdk.incubator.vector.VectorSpecies.of(short.class, jdk.incubator.vector.VectorShape.forBitSize(S.vectorBitSize() / 2))
      : null;

  @Override
  void toBf16(float[] x, int off, int count, java.lang.foreign.MemorySegment dst, long byteOff) {
    if (HALF == null) {
      super.toBf16(x, off, count, dst, byteOff);
      return;
    }
    int i = 0;
    for (int end = S.loopBound(count); i < end; i += L) {
      IntVector b = FloatVector.fromArray(S, x, off + i).reinterpretAsInts();
      // Round to nearest even: add 0x7FFF plus the lowest kept bit, keep the upper half (NaN is
      // not special-cased here: activations are finite; the scalar tail and twin handle it).
      IntVector r = b.add(b.lanewise(VectorOperators.LSHR, 16).and(1)).add(0x7FFF).lanewise(VectorOperators.LSHR, 16);
      r.convertShape(VectorOperators.I2S, HALF, 0).reinterpretAsShorts()
          .intoMemorySegment(dst, byteOff + 2L * i, java.nio.ByteOrder.nativeOrder());
    }
    super.toBf16(x, off + i, count - i, dst, byteOff + 2L * i);
  }

  @Override
  void biasActivation(float[] y, float[] bias, int n, int r0, int r1, int act) {
    if (act == 2) {
      super.biasActivation(y, bias, n, r0, r1, act); // no vector erf: GELU stays scalar
      return;
    }
    int bound = S.loopBound(n);
    for (int r = r0; r < r1; r++) {
      int o = r * n, j = 0;
      for (; j < bound; j += L) {
        FloatVector v = FloatVector.fromArray(S, y, o + j);
        if (bias != null) v = v.add(FloatVector.fromArray(S, bias, j));
        if (act == 1) v = v.div(exp(v.mul(-1.702f)).add(1f));
        v.intoArray(y, o + j);
      }
      for (; j < n; j++) {
        float v = bias == null ? y[o + j] : y[o + j] + bias[j];
        y[o + j] = act == 1 ? quickGelu(v) : v;
      }
    }
  }

  @Override
  void layerNorm(float[] x, float[] y, float[] gamma, float[] beta, int d, int r0, int r1, float eps) {
    int bound = S.loopBound(d);
    for (int r = r0; r < r1; r++) {
      int o = r * d, i = 0;
      FloatVector acc = FloatVector.zero(S);
      for (; i < bound; i += L) acc = acc.add(FloatVector.fromArray(S, x, o + i));
      float sum = sum(acc);
      for (; i < d; i++) sum += x[o + i];
      float mean = sum / d;
      FloatVector m = FloatVector.broadcast(S, mean);
      acc = FloatVector.zero(S);
      for (i = 0; i < bound; i += L) {
        FloatVector t = FloatVector.fromArray(S, x, o + i).sub(m);
        acc = t.fma(t, acc);
      }
      float var = sum(acc);
      for (; i < d; i++) var += (x[o + i] - mean) * (x[o + i] - mean);
      float rstd = (float) (1 / Math.sqrt(var / d + eps));
      for (i = 0; i < bound; i += L) {
        FloatVector t = FloatVector.fromArray(S, x, o + i).sub(m).mul(rstd);
        t.fma(FloatVector.fromArray(S, gamma, i), FloatVector.fromArray(S, beta, i)).intoArray(y, o + i);
      }
      for (; i < d; i++) y[o + i] = (x[o + i] - mean) * rstd * gamma[i] + beta[i];
    }
  }

  /**
   * As the scalar twin, at any head size Dh (64 in every OpenAI model; open_clip's ViT-H-14 80,
   * ViT-g-14 88, ViT-bigG-14 104); {@code kt} needs Dh · ceil(N / L) · L floats, {@code s} twice
   * ceil(N / L) · L plus 2·L (the two-row path). Every score, exponential and sum of query i depends
   * only on keys 0..i when causal (padding lanes are masked, never read), so cutting a text batch
   * after its last token changes no bit here.
   *
   * <p>Two query rows at a time: twice the independent FMA chains (one row's chains are
   * latency-bound) and every K and V load shared; each row's arithmetic, and so its bits, is that
   * of the one-row path (the same bits whatever the rows' split between threads). The head's columns
   * go four vectors at a time, the rest a vector at a time, the last masked where L does not divide
   * Dh.
   *
   * <p>The three phases (scores, softmax, {@code P · V}) are separate methods that exchange data
   * only through {@code s}: each is larger than C2 inlines, so each is compiled on its own. As one
   * method the whole kernel exceeded C2's node budget, some Vector API calls were then left
   * un-inlined and ran the library's Java fallback (allocating a float[] per operation), several
   * times slower.
   */
  @Override
  void attention(float[] qkv, float[] y, int b, int h, int i0, int i1, int n, int heads, int hd, boolean causal, float[] kt, float[] s) {
    int d = heads * hd, row = 3 * d, np = (n + L - 1) / L * L;
    int lastKey = causal ? i1 : n;
    for (int j = 0; j < lastKey; j++) {
      int k = (b * n + j) * row + d + h * hd;
      for (int t = 0; t < hd; t++) kt[t * np + j] = qkv[k + t];
    }
    for (int j = lastKey; j < (lastKey + L - 1) / L * L; j++) for (int t = 0; t < hd; t++) kt[t * np + j] = 0f;
    int vBase = b * n * row + 2 * d + h * hd;
    float scale = attentionScale(hd);
    int first = i0;
    if (s.length >= 2 * (np + L)) {
      int sb = np + L; // row B's scores
      for (; first + 2 <= i1; first += 2) {
        int keysA = causal ? first + 1 : n, keysB = causal ? first + 2 : n;
        int q = (b * n + first) * row + h * hd, out = (b * n + first) * d + h * hd;
        scoresPair(qkv, q, q + row, hd, scale, kt, np, keysB, s, sb);
        float invA = 1 / softmaxRow(s, 0, keysA), invB = 1 / softmaxRow(s, sb, keysB);
        int c = valuesPair(qkv, vBase, row, hd, s, sb, keysA, keysB, invA, invB, y, out, d);
        valuesRest(qkv, vBase, row, hd, c, s, 0, keysA, invA, y, out);
        valuesRest(qkv, vBase, row, hd, c, s, sb, keysB, invB, y, out + d);
      }
    }
    for (int i = first; i < i1; i++) {
      int keys = causal ? i + 1 : n;
      scoresRow(qkv, (b * n + i) * row + h * hd, hd, scale, kt, np, keys, s);
      float inv = 1 / softmaxRow(s, 0, keys);
      valuesRow(qkv, vBase, row, hd, s, keys, inv, y, (b * n + i) * d + h * hd);
    }
  }

  /**
   * One query row's scores (q at {@code qkv[q]}) against keys 0..keys-1, L at a time, scaled by
   * {@code scale}, into {@code s[0, blocks·L)}. Four key blocks at a time: four independent FMA chains
   * instead of one (a chain of Dh dependent FMAs per block is latency-bound). Each block's sum keeps
   * its own order over t, whatever the grouping. Lanes past the row's keys hold whatever the zero
   * padding of K gives; {@link #softmaxRow} masks them.
   */
  private static void scoresRow(float[] qkv, int q, int hd, float scale, float[] kt, int np, int keys, float[] s) {
    int blocks = (keys + L - 1) / L, jb = 0;
    for (; jb + 4 <= blocks; jb += 4) {
      int j0 = jb * L;
      FloatVector c0 = FloatVector.zero(S), c1 = c0, c2 = c0, c3 = c0;
      for (int t = 0; t < hd; t++) {
        FloatVector qt = FloatVector.broadcast(S, qkv[q + t]);
        int o = t * np + j0;
        c0 = FloatVector.fromArray(S, kt, o).fma(qt, c0);
        c1 = FloatVector.fromArray(S, kt, o + L).fma(qt, c1);
        c2 = FloatVector.fromArray(S, kt, o + 2 * L).fma(qt, c2);
        c3 = FloatVector.fromArray(S, kt, o + 3 * L).fma(qt, c3);
      }
      c0.mul(scale).intoArray(s, j0);
      c1.mul(scale).intoArray(s, j0 + L);
      c2.mul(scale).intoArray(s, j0 + 2 * L);
      c3.mul(scale).intoArray(s, j0 + 3 * L);
    }
    for (; jb < blocks; jb++) {
      int j0 = jb * L;
      FloatVector acc = FloatVector.zero(S);
      for (int t = 0; t < hd; t++) acc = FloatVector.fromArray(S, kt, t * np + j0).fma(FloatVector.broadcast(S, qkv[q + t]), acc);
      acc.mul(scale).intoArray(s, j0);
    }
  }

  /** {@link #scoresRow} for two rows (A at {@code qkv[qa]} into s[0..], B at {@code qkv[qb]} into s[sb..]) over B's keys, K loads shared. */
  private static void scoresPair(float[] qkv, int qa, int qb, int hd, float scale, float[] kt, int np, int keysB, float[] s, int sb) {
    int blocks = (keysB + L - 1) / L, jb = 0;
    for (; jb + 4 <= blocks; jb += 4) {
      int j0 = jb * L;
      FloatVector a0 = FloatVector.zero(S), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
      for (int t = 0; t < hd; t++) {
        FloatVector xa = FloatVector.broadcast(S, qkv[qa + t]), xb = FloatVector.broadcast(S, qkv[qb + t]);
        int o = t * np + j0;
        FloatVector k0 = FloatVector.fromArray(S, kt, o), k1 = FloatVector.fromArray(S, kt, o + L);
        FloatVector k2 = FloatVector.fromArray(S, kt, o + 2 * L), k3 = FloatVector.fromArray(S, kt, o + 3 * L);
        a0 = k0.fma(xa, a0);
        a1 = k1.fma(xa, a1);
        a2 = k2.fma(xa, a2);
        a3 = k3.fma(xa, a3);
        b0 = k0.fma(xb, b0);
        b1 = k1.fma(xb, b1);
        b2 = k2.fma(xb, b2);
        b3 = k3.fma(xb, b3);
      }
      a0.mul(scale).intoArray(s, j0);
      a1.mul(scale).intoArray(s, j0 + L);
      a2.mul(scale).intoArray(s, j0 + 2 * L);
      a3.mul(scale).intoArray(s, j0 + 3 * L);
      b0.mul(scale).intoArray(s, sb + j0);
      b1.mul(scale).intoArray(s, sb + j0 + L);
      b2.mul(scale).intoArray(s, sb + j0 + 2 * L);
      b3.mul(scale).intoArray(s, sb + j0 + 3 * L);
    }
    for (; jb < blocks; jb++) {
      int j0 = jb * L;
      FloatVector a0 = FloatVector.zero(S), b0 = a0;
      for (int t = 0; t < hd; t++) {
        FloatVector k0 = FloatVector.fromArray(S, kt, t * np + j0);
        a0 = k0.fma(FloatVector.broadcast(S, qkv[qa + t]), a0);
        b0 = k0.fma(FloatVector.broadcast(S, qkv[qb + t]), b0);
      }
      a0.mul(scale).intoArray(s, j0);
      b0.mul(scale).intoArray(s, sb + j0);
    }
  }

  /**
   * {@code P · V} of one row (the weights s[0, keys) times V rows 0..keys-1, times inv, into y[out ..]):
   * four column vectors at a time with the keys inside
   * (each key's V loads contiguous, four FMA chains over the keys in order), then the columns left
   * ({@link #valuesRest}).
   */
  private static void valuesRow(float[] qkv, int vBase, int row, int hd, float[] s, int keys, float inv, float[] y, int out) {
    int c = 0;
    for (; c + 4 * L <= hd; c += 4 * L) {
      FloatVector a0 = FloatVector.zero(S), a1 = a0, a2 = a0, a3 = a0;
      for (int j = 0, v = vBase + c; j < keys; j++, v += row) {
        FloatVector p = FloatVector.broadcast(S, s[j]);
        a0 = FloatVector.fromArray(S, qkv, v).fma(p, a0);
        a1 = FloatVector.fromArray(S, qkv, v + L).fma(p, a1);
        a2 = FloatVector.fromArray(S, qkv, v + 2 * L).fma(p, a2);
        a3 = FloatVector.fromArray(S, qkv, v + 3 * L).fma(p, a3);
      }
      a0.mul(inv).intoArray(y, out + c);
      a1.mul(inv).intoArray(y, out + c + L);
      a2.mul(inv).intoArray(y, out + c + 2 * L);
      a3.mul(inv).intoArray(y, out + c + 3 * L);
    }
    valuesRest(qkv, vBase, row, hd, c, s, 0, keys, inv, y, out);
  }

  /**
   * {@link #valuesRow}'s groups of four column vectors for two rows (A: weights s[0..], keys
   * keysA, output y[out..]; B: s[sb..], keysB ≥ keysA, y[out + d..]), V loads shared; returns the
   * column where the rest ({@link #valuesRest}, a row at a time) starts.
   */
  private static int valuesPair(
      float[] qkv, int vBase, int row, int hd, float[] s, int sb, int keysA, int keysB, float invA, float invB, float[] y, int out, int d) {
    int c = 0;
    for (; c + 4 * L <= hd; c += 4 * L) {
      FloatVector a0 = FloatVector.zero(S), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
      int j = 0, v = vBase + c;
      for (; j < keysA; j++, v += row) {
        FloatVector pa = FloatVector.broadcast(S, s[j]), pb = FloatVector.broadcast(S, s[sb + j]);
        FloatVector v0 = FloatVector.fromArray(S, qkv, v), v1 = FloatVector.fromArray(S, qkv, v + L);
        FloatVector v2 = FloatVector.fromArray(S, qkv, v + 2 * L), v3 = FloatVector.fromArray(S, qkv, v + 3 * L);
        a0 = v0.fma(pa, a0);
        a1 = v1.fma(pa, a1);
        a2 = v2.fma(pa, a2);
        a3 = v3.fma(pa, a3);
        b0 = v0.fma(pb, b0);
        b1 = v1.fma(pb, b1);
        b2 = v2.fma(pb, b2);
        b3 = v3.fma(pb, b3);
      }
      for (; j < keysB; j++, v += row) {
        FloatVector pb = FloatVector.broadcast(S, s[sb + j]);
        b0 = FloatVector.fromArray(S, qkv, v).fma(pb, b0);
        b1 = FloatVector.fromArray(S, qkv, v + L).fma(pb, b1);
        b2 = FloatVector.fromArray(S, qkv, v + 2 * L).fma(pb, b2);
        b3 = FloatVector.fromArray(S, qkv, v + 3 * L).fma(pb, b3);
      }
      a0.mul(invA).intoArray(y, out + c);
      a1.mul(invA).intoArray(y, out + c + L);
      a2.mul(invA).intoArray(y, out + c + 2 * L);
      a3.mul(invA).intoArray(y, out + c + 3 * L);
      b0.mul(invB).intoArray(y, out + d + c);
      b1.mul(invB).intoArray(y, out + d + c + L);
      b2.mul(invB).intoArray(y, out + d + c + 2 * L);
      b3.mul(invB).intoArray(y, out + d + c + 3 * L);
    }
    return c;
  }

  /**
   * Columns [c, hd) of one row's {@code P · V} (weights s[base..], {@code keys} keys), a vector at a
   * time, the last masked where L does not divide hd; each vector sums its keys in four chains (keys
   * j ≡ 0, 1, 2, 3 mod 4; the keys past the last multiple of 4 into the first), added in that order.
   */
  private static void valuesRest(float[] qkv, int vBase, int row, int hd, int c, float[] s, int base, int keys, float inv, float[] y, int out) {
    for (; c < hd; c += L) {
      VectorMask<Float> m = S.indexInRange(c, hd);
      FloatVector a0 = FloatVector.zero(S), a1 = a0, a2 = a0, a3 = a0;
      int j = 0, v = vBase + c;
      for (; j + 4 <= keys; j += 4, v += 4 * row) {
        a0 = FloatVector.fromArray(S, qkv, v, m).fma(FloatVector.broadcast(S, s[base + j]), a0);
        a1 = FloatVector.fromArray(S, qkv, v + row, m).fma(FloatVector.broadcast(S, s[base + j + 1]), a1);
        a2 = FloatVector.fromArray(S, qkv, v + 2 * row, m).fma(FloatVector.broadcast(S, s[base + j + 2]), a2);
        a3 = FloatVector.fromArray(S, qkv, v + 3 * row, m).fma(FloatVector.broadcast(S, s[base + j + 3]), a3);
      }
      for (; j < keys; j++, v += row) a0 = FloatVector.fromArray(S, qkv, v, m).fma(FloatVector.broadcast(S, s[base + j]), a0);
      a0.add(a1).add(a2).add(a3).mul(inv).intoArray(y, out + c, m);
    }
  }

  /**
   * Softmax numerators of one row's scores {@code s[base, base + blocks·L)} in place: the maximum
   * over keys 0..keys-1 (exact in any order), then exp(score - max) with lanes past the keys 0; returns their sum, lanes
   * added one by one in a fixed order ({@link #sum}).
   */
  private static float softmaxRow(float[] s, int base, int keys) {
    int blocks = (keys + L - 1) / L;
    FloatVector vmax = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
    for (int jb = 0; jb < blocks - 1; jb++) vmax = vmax.max(FloatVector.fromArray(S, s, base + jb * L));
    int last = (blocks - 1) * L;
    vmax = vmax.max(FloatVector.fromArray(S, s, base + last).blend(Float.NEGATIVE_INFINITY, S.indexInRange(last, keys).not()));
    float max = vmax.reduceLanes(VectorOperators.MAX);
    FloatVector vsum = FloatVector.zero(S);
    for (int jb = 0; jb < blocks; jb++) {
      FloatVector e = exp(FloatVector.fromArray(S, s, base + jb * L).sub(max));
      e = FloatVector.zero(S).blend(e, S.indexInRange(jb * L, keys));
      e.intoArray(s, base + jb * L);
      vsum = vsum.add(e);
    }
    return sum(vsum);
  }
}
