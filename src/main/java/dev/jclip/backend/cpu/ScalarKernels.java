package dev.jclip.backend.cpu;

/**
 * The CPU backend's row kernels in plain Java: the scalar twin of {@link VectorKernels}, used when
 * the Vector API module is absent or switched off, and tested against it. Each method works on a
 * range of rows so that the backend can split it over its threads.
 */
class ScalarKernels {
  /**
   * {@code count} floats of x from {@code off} as bf16 (the upper 16 bits, rounded to nearest even,
   * as PyTorch's {@code .to(torch.bfloat16)}) into native memory at {@code byteOff}. NaN stays NaN.
   */
  void toBf16(float[] x, int off, int count, java.lang.foreign.MemorySegment dst, long byteOff) {
    for (int i = 0; i < count; i++) dst.set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, byteOff + 2L * i, bf16(x[off + i]));
  }

  static short bf16(float v) {
    int bits = Float.floatToRawIntBits(v);
    if (Float.isNaN(v)) return (short) ((bits >>> 16) | 0x40);
    return (short) ((bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16);
  }

  /** {@code y = a + b}, optionally ReLU, over elements [from, to). */
  void add(float[] a, float[] b, float[] y, int from, int to, boolean relu) {
    for (int i = from; i < to; i++) {
      float s = a[i] + b[i];
      y[i] = relu ? Math.max(s, 0f) : s;
    }
  }

  /** Rows [r0, r1) of {@code y[.., n]}: {@code y = act(y + bias)}; bias may be null, act 0 none, 1 QuickGELU, 2 GELU. */
  void biasActivation(float[] y, float[] bias, int n, int r0, int r1, int act) {
    for (int r = r0; r < r1; r++) {
      int o = r * n;
      for (int j = 0; j < n; j++) {
        float v = bias == null ? y[o + j] : y[o + j] + bias[j];
        y[o + j] = act == 1 ? quickGelu(v) : act == 2 ? gelu(v) : v;
      }
    }
  }

  /**
   * Rows i0..i1 of the matrix [r, cols] at {@code sOff} into its transpose [cols, r] at
   * {@code dOff}: {@code dst[dOff + j·r + i] = src[sOff + i·cols + j]} for every column j; where
   * {@code bias} is given, each value becomes {@code v·scale[j] + bias[j]} (scale 1 where null),
   * then max(0, ·) if {@code relu}. The convolutions' NCHW/NHWC changes.
   */
  void transpose(float[] src, int sOff, int r, int cols, float[] dst, int dOff, int i0, int i1, float[] scale, float[] bias, boolean relu) {
    for (int j = 0; j < cols; j++) {
      int d = dOff + j * r, sj = sOff + j;
      if (bias == null) {
        for (int i = i0; i < i1; i++) dst[d + i] = src[sj + i * cols];
      } else {
        float sv = scale == null ? 1f : scale[j], bv = bias[j];
        for (int i = i0; i < i1; i++) {
          float v = src[sj + i * cols] * sv + bv;
          dst[d + i] = relu ? Math.max(v, 0f) : v;
        }
      }
    }
  }

  static float quickGelu(float v) {
    return (float) (v / (1 + Math.exp(-1.702 * v)));
  }

  static float gelu(float v) {
    return (float) (0.5 * v * (1 + erf(v * 0.7071067811865476)));
  }

  /**
   * erf to about 1e-9 absolute: a Taylor series below 2 and an asymptotic-free continued-fraction
   * erfc beyond (Java has no Math.erf).
   */
  static double erf(double x) {
    double ax = Math.abs(x);
    if (ax >= 6) return Math.signum(x);
    if (ax < 2) {
      double x2 = ax * ax, term = ax, sum = ax;
      for (int n = 1; n < 60; n++) {
        term *= -x2 / n;
        double add = term / (2 * n + 1);
        sum += add;
        if (Math.abs(add) < 1e-12 * sum) break;
      }
      return Math.copySign(1.1283791670955126 * sum, x);
    }
    // erfc(x) = exp(-x²)/√π / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), evaluated bottom-up
    double f = ax;
    for (int n = 40; n >= 1; n--) f = ax + (n / 2.0) / f;
    return Math.copySign(1 - Math.exp(-ax * ax) / 1.7724538509055159 / f, x);
  }

  /** LayerNorm of rows [r0, r1) of x[.., d] into y, fp32 statistics (two passes), biased variance. */
  void layerNorm(float[] x, float[] y, float[] gamma, float[] beta, int d, int r0, int r1, float eps) {
    for (int r = r0; r < r1; r++) {
      int o = r * d;
      float sum = 0;
      for (int i = 0; i < d; i++) sum += x[o + i];
      float mean = sum / d, var = 0;
      for (int i = 0; i < d; i++) {
        float t = x[o + i] - mean;
        var += t * t;
      }
      float rstd = (float) (1 / Math.sqrt(var / d + eps));
      for (int i = 0; i < d; i++) y[o + i] = (x[o + i] - mean) * rstd * gamma[i] + beta[i];
    }
  }

  /** The multiple of keys the attention kernels pad K and the scores to (their scratch sizes: {@code kt}, {@code s}). */
  int attentionLanes() {
    return 16;
  }

  /** The scores' scale, 1/√hd in float (1/8 exactly at 64). */
  static float attentionScale(int hd) {
    return (float) (1 / Math.sqrt(hd));
  }

  /**
   * Attention of head {@code h} of sequence {@code b}, query rows [i0, i1): qkv [B, N, 3, H, Dh] to
   * y [B, N, H, Dh] (Dh = {@code hd}), scale 1/√Dh, keys j ≤ i when causal. {@code kt} is scratch
   * of Dh·(N + 16) floats (unused here), {@code s} scratch of N + 16.
   */
  void attention(float[] qkv, float[] y, int b, int h, int i0, int i1, int n, int heads, int hd, boolean causal, float[] kt, float[] s) {
    int d = heads * hd, row = 3 * d;
    float scale = attentionScale(hd);
    for (int i = i0; i < i1; i++) {
      int q = (b * n + i) * row + h * hd;
      int keys = causal ? i + 1 : n;
      float max = Float.NEGATIVE_INFINITY;
      for (int j = 0; j < keys; j++) {
        int k = (b * n + j) * row + d + h * hd;
        float dot = 0;
        for (int t = 0; t < hd; t++) dot = Math.fma(qkv[q + t], qkv[k + t], dot);
        s[j] = dot * scale;
        max = Math.max(max, s[j]);
      }
      float sum = 0;
      for (int j = 0; j < keys; j++) sum += s[j] = (float) Math.exp(s[j] - max);
      float inv = 1 / sum;
      int out = (b * n + i) * d + h * hd;
      for (int t = 0; t < hd; t++) {
        float acc = 0;
        for (int j = 0; j < keys; j++) acc = Math.fma(s[j], qkv[(b * n + j) * row + 2 * d + h * hd + t], acc);
        y[out + t] = acc * inv;
      }
    }
  }
}
