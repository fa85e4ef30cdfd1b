package dev.jclip.backend;

/**
 * The oracle for every op: plain loops, double accumulation, formulas as in PyTorch. Used only by
 * tests; slow on purpose.
 */
public final class ReferenceOps {
  private ReferenceOps() {}

  /** {@code C[M,N] = A[M,K] · B[N,K]ᵀ (+ bias[N])}, PyTorch's F.linear. */
  public static float[] linear(float[] a, float[] b, float[] bias, int m, int n, int k) {
    float[] c = new float[m * n];
    for (int i = 0; i < m; i++) {
      for (int j = 0; j < n; j++) {
        double s = bias == null ? 0 : bias[j];
        for (int t = 0; t < k; t++) s += (double) a[i * k + t] * b[j * k + t];
        c[i * n + j] = (float) s;
      }
    }
    return c;
  }

  /** QuickGELU of CLIP: {@code v * sigmoid(1.702 v)}, with an optional bias over the last dim. */
  public static float[] biasQuickGelu(float[] x, float[] bias, int cols) {
    float[] y = new float[x.length];
    for (int i = 0; i < x.length; i++) {
      double v = (double) x[i] + (bias == null ? 0 : bias[i % cols]);
      y[i] = (float) (v / (1 + Math.exp(-1.702 * v)));
    }
    return y;
  }

  /** Exact GELU: {@code 0.5 v (1 + erf(v / √2))}, with an optional bias over the last dim. */
  public static float[] biasGelu(float[] x, float[] bias, int cols) {
    float[] y = new float[x.length];
    for (int i = 0; i < x.length; i++) {
      double v = (double) x[i] + (bias == null ? 0 : bias[i % cols]);
      y[i] = (float) (0.5 * v * (1 + erf(v / Math.sqrt(2))));
    }
    return y;
  }

  /** LayerNorm over the last dim of {@code x + residual} (residual may be null), biased variance. */
  public static float[] addLayerNorm(float[] x, float[] residual, float[] gamma, float[] beta, int rows, int d, double eps) {
    float[] y = new float[x.length];
    for (int r = 0; r < rows; r++) {
      double mean = 0;
      for (int i = 0; i < d; i++) mean += s(x, residual, r * d + i);
      mean /= d;
      double var = 0;
      for (int i = 0; i < d; i++) {
        double t = s(x, residual, r * d + i) - mean;
        var += t * t;
      }
      var /= d;
      double rstd = 1 / Math.sqrt(var + eps);
      for (int i = 0; i < d; i++) y[r * d + i] = (float) ((s(x, residual, r * d + i) - mean) * rstd * gamma[i] + beta[i]);
    }
    return y;
  }

  private static double s(float[] x, float[] residual, int i) {
    return (double) x[i] + (residual == null ? 0 : residual[i]);
  }

  /**
   * Multi-head self-attention over packed {@code qkv} [B, N, 3, H, Dh] (Dh from the array's length:
   * 64 in every OpenAI model); returns [B, N, H, Dh]. PyTorch's scaled_dot_product_attention with
   * scale 1/√Dh (and is_causal).
   */
  public static float[] attention(float[] qkv, int batch, int n, int heads, boolean causal) {
    int d = qkv.length / (3 * batch * n), hd = d / heads;
    if (3L * batch * n * d != qkv.length || hd * heads != d) throw new IllegalArgumentException(qkv.length + " values are not [" + batch + ", " + n + ", 3, " + heads + ", Dh]");
    float[] out = new float[batch * n * d];
    double[] p = new double[n];
    for (int b = 0; b < batch; b++) {
      int seq = b * n * 3 * d;
      for (int h = 0; h < heads; h++) {
        for (int i = 0; i < n; i++) {
          attendRow(qkv, (b * n + i) * 3 * d + h * hd, qkv, seq + d + h * hd, seq + 2 * d + h * hd, 3 * d, causal ? i + 1 : n, hd, p, out,
              (b * n + i) * d + h * hd);
        }
      }
    }
    return out;
  }

  /**
   * One query row a sequence: q [B, D] at position {@code pos[b]}, kv [B, N, 2D] (keys, then
   * values), D = heads·Dh; with {@code causal} the keys up to {@code pos[b]} only. In double, as {@link #attention}.
   */
  public static float[] attentionPooled(float[] q, float[] kv, int[] pos, int batch, int n, int heads, boolean causal) {
    int d = q.length / batch, hd = d / heads;
    if ((long) batch * d != q.length || hd * heads != d || 2L * batch * n * d != kv.length) {
      throw new IllegalArgumentException(q.length + " and " + kv.length + " values are not [" + batch + ", " + heads + "·Dh] and [" + batch + ", " + n + ", 2, " + heads + "·Dh]");
    }
    float[] out = new float[batch * d];
    double[] p = new double[n];
    for (int b = 0; b < batch; b++) {
      int seq = b * n * 2 * d;
      for (int h = 0; h < heads; h++) {
        attendRow(q, b * d + h * hd, kv, seq + h * hd, seq + d + h * hd, 2 * d, causal ? pos[b] + 1 : n, hd, p, out, b * d + h * hd);
      }
    }
    return out;
  }

  /**
   * One head's attention of one query row, in double: the query's {@code hd} values at {@code
   * q[qo..]}, key j's at {@code kv[k0 + j·stride..]} and value j's at {@code kv[v0 + j·stride..]}
   * for j below {@code keys}; scores scaled by 1/√hd, softmax, the weighted values into {@code out[oo..]}.
   */
  private static void attendRow(float[] q, int qo, float[] kv, int k0, int v0, int stride, int keys, int hd, double[] p, float[] out, int oo) {
    double max = Double.NEGATIVE_INFINITY, scale = Math.sqrt(hd);
    for (int j = 0; j < keys; j++) {
      double s = 0;
      for (int t = 0; t < hd; t++) s += (double) q[qo + t] * kv[k0 + j * stride + t];
      p[j] = s / scale;
      max = Math.max(max, p[j]);
    }
    double sum = 0;
    for (int j = 0; j < keys; j++) sum += p[j] = Math.exp(p[j] - max);
    for (int t = 0; t < hd; t++) {
      double o = 0;
      for (int j = 0; j < keys; j++) o += p[j] * kv[v0 + j * stride + t];
      out[oo + t] = (float) (o / sum);
    }
  }

  /** Each sequence's end-of-text position: the first argmax of its ids [B, N] (as torch.argmax). */
  public static int[] eotPositions(float[] ids, int batch, int n) {
    int[] pos = new int[batch];
    for (int b = 0; b < batch; b++) {
      for (int t = 1; t < n; t++) if (ids[b * n + t] > ids[b * n + pos[b]]) pos[b] = t;
    }
    return pos;
  }

  /** CLIP's logits: {@code scale · x̂ · ŷᵀ} with rows L2-normalised. */
  public static float[] cosineLogits(float[] x, float[] y, int m, int t, int e, double scale) {
    float[] out = new float[m * t];
    for (int i = 0; i < m; i++) {
      for (int j = 0; j < t; j++) {
        double dot = 0, nx = 0, ny = 0;
        for (int k = 0; k < e; k++) {
          dot += (double) x[i * e + k] * y[j * e + k];
          nx += (double) x[i * e + k] * x[i * e + k];
          ny += (double) y[j * e + k] * y[j * e + k];
        }
        out[i * t + j] = (float) (scale * dot / Math.sqrt(nx) / Math.sqrt(ny));
      }
    }
    return out;
  }

  /** The error function to double precision: Taylor series near 0, continued fraction for erfc beyond. */
  public static double erf(double x) {
    double ax = Math.abs(x);
    if (ax > 6) return Math.signum(x);
    if (ax < 2.5) {
      double term = ax, sum = ax, x2 = ax * ax;
      for (int n = 1; n < 200; n++) {
        term *= -x2 / n;
        double add = term / (2 * n + 1);
        sum += add;
        if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
      }
      return Math.copySign(2 / Math.sqrt(Math.PI) * sum, x);
    }
    // erfc(x) = exp(-x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...)))) evaluated by Lentz's method
    double tiny = 1e-300, f = ax, c = ax, dd = 0;
    for (int n = 1; n < 500; n++) {
      double an = n / 2.0;
      dd = ax + an * dd;
      dd = Math.abs(dd) < tiny ? tiny : dd;
      c = ax + an / c;
      c = Math.abs(c) < tiny ? tiny : c;
      dd = 1 / dd;
      double delta = c * dd;
      f *= delta;
      if (Math.abs(delta - 1) < 1e-16) break;
    }
    double erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
    return Math.copySign(1 - erfc, x);
  }

  /** ‖a − b‖ / ‖b‖ in double. */
  public static double relativeError(float[] a, float[] b) {
    if (a.length != b.length) throw new IllegalArgumentException("lengths " + a.length + " vs " + b.length);
    double num = 0, den = 0;
    for (int i = 0; i < a.length; i++) {
      double d = (double) a[i] - b[i];
      num += d * d;
      den += (double) b[i] * b[i];
    }
    return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
  }
}
