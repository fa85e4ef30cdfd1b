package dev.jclip.backend;

import dev.jclip.graph.Node;
import dev.jclip.graph.Op;
import dev.jclip.graph.TensorSpec;
import dev.jclip.io.Tensor;
import dev.jclip.model.Activation;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The oracle backend: every op in plain loops with double accumulation, straight from the
 * formulas. Slow on purpose, used only by tests. Token ids are held as floats (exact below 2²⁴).
 */
public final class ReferenceBackend extends HostFloatBackend {
  private final Map<Tensor, float[]> params = new IdentityHashMap<>();

  @Override
  public String name() {
    return "reference";
  }

  @Override
  public boolean supports(Op op) {
    return true;
  }

  private float[] p(Node n, String role) {
    Tensor t = n.param(role);
    return t == null ? null : params.computeIfAbsent(t, Tensor::toFloatArray);
  }

  @Override
  public void execute(Node n, List<Buffer> inputs, Buffer output) {
    float[] y = data(output);
    float[] x = data(inputs.get(0));
    TensorSpec in = n.input(0).spec(), out = n.output().spec();
    switch (n.op()) {
      case LINEAR -> {
        float[] w = p(n, "weight"), b = p(n, "bias");
        int k = in.dim(-1), m = (int) in.rows(), cols = out.dim(-1);
        float[] r = ReferenceOps.linear(slice(x, m * k), w, b, m, cols, k);
        Activation act = n.enumAttr("activation", (Activation) null);
        if (act == Activation.QUICK_GELU) r = ReferenceOps.biasQuickGelu(r, null, cols);
        if (act == Activation.GELU) r = ReferenceOps.biasGelu(r, null, cols);
        System.arraycopy(r, 0, y, 0, r.length);
      }
      case LINEAR_RESIDUAL -> {
        // LINEAR, rounded to float, then the ADD: the unfused graph's value, bit for bit.
        float[] w = p(n, "weight"), b = p(n, "bias"), res = data(inputs.get(1));
        int k = in.dim(-1), m = (int) in.rows(), cols = out.dim(-1);
        float[] r = ReferenceOps.linear(slice(x, m * k), w, b, m, cols, k);
        for (int i = 0; i < r.length; i++) y[i] = res[i] + r[i];
      }
      case MATMUL -> {
        float[] w = p(n, "weight");
        int k = in.dim(-1), m = (int) in.rows(), cols = out.dim(-1);
        for (int i = 0; i < m; i++) {
          for (int j = 0; j < cols; j++) {
            double s = 0;
            for (int t = 0; t < k; t++) s += (double) x[i * k + t] * w[t * cols + j];
            y[i * cols + j] = (float) s;
          }
        }
      }
      case LAYER_NORM -> {
        int d = in.dim(-1), rows = (int) in.rows();
        float[] r = ReferenceOps.addLayerNorm(slice(x, rows * d), null, p(n, "weight"), p(n, "bias"), rows, d, n.floatAttr("eps"));
        System.arraycopy(r, 0, y, 0, r.length);
      }
      case LAYER_NORM_LINEAR -> {
        // LAYER_NORM, rounded to float, then the LINEAR: the unfused graph's value, bit for bit
        int d = in.dim(-1), rows = (int) in.rows(), cols = out.dim(-1);
        float[] normed = ReferenceOps.addLayerNorm(slice(x, rows * d), null, p(n, "ln_weight"), p(n, "ln_bias"), rows, d, n.floatAttr("eps"));
        float[] r = ReferenceOps.linear(normed, p(n, "weight"), p(n, "bias"), rows, cols, d);
        Activation act = n.enumAttr("activation", (Activation) null);
        if (act == Activation.QUICK_GELU) r = ReferenceOps.biasQuickGelu(r, null, cols);
        if (act == Activation.GELU) r = ReferenceOps.biasGelu(r, null, cols);
        System.arraycopy(r, 0, y, 0, r.length);
      }
      case ADD -> {
        float[] b = data(inputs.get(1));
        boolean relu = n.boolAttr("relu");
        for (int i = 0; i < out.elements(); i++) {
          float s = x[i] + b[i];
          y[i] = relu ? Math.max(s, 0f) : s;
        }
      }
      case ATTENTION -> {
        int batch = in.dim(0), len = in.dim(1);
        float[] r = ReferenceOps.attention(slice(x, (int) in.elements()), batch, len, n.intAttr("heads"), n.boolAttr("causal"));
        System.arraycopy(r, 0, y, 0, r.length);
      }
      case ATTENTION_POOLED -> {
        TensorSpec kv = n.input(1).spec();
        int batch = kv.dim(0), len = kv.dim(1);
        int[] pos = inputs.size() > 2 ? ReferenceOps.eotPositions(data(inputs.get(2)), batch, len) : new int[batch];
        if (inputs.size() <= 2) java.util.Arrays.fill(pos, n.intAttr("index"));
        float[] r = ReferenceOps.attentionPooled(slice(x, (int) in.elements()), slice(data(inputs.get(1)), (int) kv.elements()), pos, batch, len,
            n.intAttr("heads"), n.boolAttr("causal"));
        System.arraycopy(r, 0, y, 0, r.length);
      }
      case QUICK_GELU, GELU -> {
        int e = (int) in.elements();
        float[] r = n.op() == Op.GELU ? ReferenceOps.biasGelu(slice(x, e), null, 1) : ReferenceOps.biasQuickGelu(slice(x, e), null, 1);
        System.arraycopy(r, 0, y, 0, e);
      }
      case PATCH_EMBED -> {
        float[] w = p(n, "weight");
        int batch = in.dim(0), c = in.dim(1), h = in.dim(2), wd = in.dim(3), ps = n.intAttr("patch"), d = out.dim(2);
        int gw = wd / ps, cells = out.dim(1);
        for (int b = 0; b < batch; b++) {
          for (int cell = 0; cell < cells; cell++) {
            int gy = cell / gw, gx = cell % gw;
            for (int o = 0; o < d; o++) {
              double s = 0;
              for (int ch = 0; ch < c; ch++) {
                for (int ky = 0; ky < ps; ky++) {
                  for (int kx = 0; kx < ps; kx++) {
                    s += (double) x[((b * c + ch) * h + gy * ps + ky) * wd + gx * ps + kx] * w[((o * c + ch) * ps + ky) * ps + kx];
                  }
                }
              }
              y[(b * cells + cell) * d + o] = (float) s;
            }
          }
        }
      }
      case CLASS_POS_EMBED -> {
        float[] cls = p(n, "class"), pos = p(n, "positional");
        int batch = out.dim(0), len = out.dim(1), d = out.dim(2);
        for (int b = 0; b < batch; b++) {
          for (int t = 0; t < len; t++) {
            for (int i = 0; i < d; i++) {
              float v = t == 0 ? cls[i] : x[(b * (len - 1) + t - 1) * d + i];
              y[(b * len + t) * d + i] = v + pos[t * d + i];
            }
          }
        }
      }
      case TOKEN_EMBED -> {
        float[] tok = p(n, "token"), pos = p(n, "positional");
        int batch = out.dim(0), len = out.dim(1), d = out.dim(2);
        for (int b = 0; b < batch; b++) {
          for (int t = 0; t < len; t++) {
            int id = (int) x[b * len + t];
            for (int i = 0; i < d; i++) y[(b * len + t) * d + i] = tok[id * d + i] + pos[t * d + i];
          }
        }
      }
      case TAKE_TOKEN -> {
        int batch = in.dim(0), len = in.dim(1), d = in.dim(2), idx = n.intAttr("index");
        for (int b = 0; b < batch; b++) System.arraycopy(x, (b * len + idx) * d, y, b * d, d);
      }
      case EOT_GATHER -> {
        float[] ids = data(inputs.get(1));
        int batch = in.dim(0), len = in.dim(1), d = in.dim(2);
        for (int b = 0; b < batch; b++) {
          int best = 0;
          for (int t = 1; t < len; t++) if (ids[b * len + t] > ids[b * len + best]) best = t;
          System.arraycopy(x, (b * len + best) * d, y, b * d, d);
        }
      }
      case CONV2D -> {
        float[] w = p(n, "weight"), scale = p(n, "scale"), bias = p(n, "bias");
        int batch = in.dim(0), c = in.dim(1), h = in.dim(2), wd = in.dim(3);
        int o = out.dim(1), oh = out.dim(2), ow = out.dim(3);
        int k = n.intAttr("kernel"), s = n.intAttr("stride"), pad = n.intAttr("padding");
        boolean relu = n.boolAttr("relu");
        for (int b = 0; b < batch; b++) {
          for (int oc = 0; oc < o; oc++) {
            for (int oy = 0; oy < oh; oy++) {
              for (int ox = 0; ox < ow; ox++) {
                double acc = 0;
                for (int ic = 0; ic < c; ic++) {
                  for (int ky = 0; ky < k; ky++) {
                    int iy = oy * s - pad + ky;
                    if (iy < 0 || iy >= h) continue;
                    for (int kx = 0; kx < k; kx++) {
                      int ix = ox * s - pad + kx;
                      if (ix < 0 || ix >= wd) continue;
                      acc += (double) x[((b * c + ic) * h + iy) * wd + ix] * w[((oc * c + ic) * k + ky) * k + kx];
                    }
                  }
                }
                float v = (float) ((scale == null ? acc : acc * scale[oc]) + bias[oc]);
                y[((b * o + oc) * oh + oy) * ow + ox] = relu ? Math.max(v, 0f) : v;
              }
            }
          }
        }
      }
      case AVG_POOL -> {
        int batch = in.dim(0), c = in.dim(1), h = in.dim(2), wd = in.dim(3), k = n.intAttr("kernel");
        int oh = out.dim(2), ow = out.dim(3);
        for (int bc = 0; bc < batch * c; bc++) {
          for (int oy = 0; oy < oh; oy++) {
            for (int ox = 0; ox < ow; ox++) {
              double s = 0;
              for (int ky = 0; ky < k; ky++) for (int kx = 0; kx < k; kx++) s += x[(bc * h + oy * k + ky) * wd + ox * k + kx];
              y[(bc * oh + oy) * ow + ox] = (float) (s / (k * k));
            }
          }
        }
      }
      case ATTNPOOL_TOKENS -> {
        float[] pos = p(n, "positional");
        int batch = in.dim(0), c = in.dim(1), hw = in.dim(2) * in.dim(3), len = hw + 1;
        for (int b = 0; b < batch; b++) {
          for (int ch = 0; ch < c; ch++) {
            double mean = 0;
            for (int i = 0; i < hw; i++) mean += x[(b * c + ch) * hw + i];
            y[(b * len) * c + ch] = (float) (mean / hw) + pos[ch];
            for (int i = 0; i < hw; i++) y[(b * len + 1 + i) * c + ch] = x[(b * c + ch) * hw + i] + pos[(1 + i) * c + ch];
          }
        }
      }
      case L2_NORMALIZE -> {
        int d = in.dim(-1), rows = (int) in.rows();
        for (int r = 0; r < rows; r++) {
          double s = 0;
          for (int i = 0; i < d; i++) s += (double) x[r * d + i] * x[r * d + i];
          double inv = 1 / Math.sqrt(s);
          for (int i = 0; i < d; i++) y[r * d + i] = (float) (x[r * d + i] * inv);
        }
      }
      case COSINE_LOGITS -> {
        float[] t = data(inputs.get(1));
        int m = in.dim(0), e = in.dim(1), cols = out.dim(1);
        float[] r = ReferenceOps.cosineLogits(slice(x, m * e), slice(t, cols * e), m, cols, e, n.floatAttr("scale"));
        System.arraycopy(r, 0, y, 0, r.length);
      }
      case SOFTMAX -> {
        int d = in.dim(-1), rows = (int) in.rows();
        for (int r = 0; r < rows; r++) {
          double max = Double.NEGATIVE_INFINITY, s = 0;
          for (int i = 0; i < d; i++) max = Math.max(max, x[r * d + i]);
          for (int i = 0; i < d; i++) s += Math.exp(x[r * d + i] - max);
          for (int i = 0; i < d; i++) y[r * d + i] = (float) (Math.exp(x[r * d + i] - max) / s);
        }
      }
      case INPUT -> throw new IllegalStateException("INPUT nodes are not executed");
    }
  }

  private static float[] slice(float[] a, int n) {
    if (a.length == n) return a;
    float[] s = new float[n];
    System.arraycopy(a, 0, s, 0, n);
    return s;
  }

  @Override
  public void close() {
    params.clear();
  }
}
