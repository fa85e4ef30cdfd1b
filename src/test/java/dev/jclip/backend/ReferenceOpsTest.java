package dev.jclip.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class ReferenceOpsTest {
  @Test
  void erfMatchesKnownValues() {
    // erf values from Abramowitz & Stegun, Table 7.1, and their symmetry
    assertEquals(0.0, ReferenceOps.erf(0.0), 0);
    assertEquals(0.5204998778130465, ReferenceOps.erf(0.5), 1e-15);
    assertEquals(0.8427007929497149, ReferenceOps.erf(1.0), 1e-15);
    assertEquals(0.9953222650189527, ReferenceOps.erf(2.0), 1e-15);
    assertEquals(0.9999779095030014, ReferenceOps.erf(3.0), 1e-15);
    assertEquals(-0.9999999845827421, ReferenceOps.erf(-4.0), 1e-15);
    // both branches agree where they meet
    assertEquals(ReferenceOps.erf(2.4999999), ReferenceOps.erf(2.5000001), 1e-7);
  }

  @Test
  void layerNormHasZeroMeanUnitVariance() {
    float[] x = {1, 2, 3, 4, 10, 10, 10, 11};
    float[] g = {1, 1, 1, 1};
    float[] b = {0, 0, 0, 0};
    float[] y = ReferenceOps.addLayerNorm(x, null, g, b, 2, 4, 0);
    for (int r = 0; r < 2; r++) {
      double m = 0, v = 0;
      for (int i = 0; i < 4; i++) m += y[r * 4 + i];
      for (int i = 0; i < 4; i++) v += y[r * 4 + i] * y[r * 4 + i];
      assertEquals(0, m / 4, 1e-6);
      assertEquals(1, v / 4, 1e-5);
    }
  }

  /**
   * Attention with heads of 80 (open_clip's ViT-H-14) read from the packed [B, N, 3, H, Dh] layout
   * against softmax(Q·Kᵀ/√Dh)·V written out per head from separately gathered Q, K and V, causal
   * and not; and the pooled form's row against the whole one's.
   */
  @Test
  void attentionOfOtherHeadSizesIsTheDefinition() {
    java.util.Random random = new java.util.Random(11);
    int batch = 2, n = 5, heads = 3, hd = 80, d = heads * hd;
    float[] qkv = new float[batch * n * 3 * d];
    for (int i = 0; i < qkv.length; i++) qkv[i] = (float) random.nextGaussian();
    for (boolean causal : new boolean[] {false, true}) {
      float[] got = ReferenceOps.attention(qkv, batch, n, heads, causal);
      for (int b = 0; b < batch; b++) {
        for (int h = 0; h < heads; h++) {
          double[][][] qkvOfHead = new double[3][n][hd]; // [q/k/v][position][column]
          for (int part = 0; part < 3; part++) {
            for (int i = 0; i < n; i++) {
              for (int t = 0; t < hd; t++) qkvOfHead[part][i][t] = qkv[((b * n + i) * 3 + part) * d + h * hd + t];
            }
          }
          for (int i = 0; i < n; i++) {
            int keys = causal ? i + 1 : n;
            double[] w = new double[keys];
            double total = 0;
            for (int j = 0; j < keys; j++) {
              double dot = 0;
              for (int t = 0; t < hd; t++) dot += qkvOfHead[0][i][t] * qkvOfHead[1][j][t];
              total += w[j] = Math.exp(dot / Math.sqrt(hd));
            }
            for (int t = 0; t < hd; t++) {
              double o = 0;
              for (int j = 0; j < keys; j++) o += w[j] / total * qkvOfHead[2][j][t];
              assertEquals(o, got[(b * n + i) * d + h * hd + t], 1e-5, "seq " + b + " head " + h + " row " + i + " col " + t);
            }
          }
        }
      }
      // the pooled form: each sequence's row 3 from its query and every position's keys and values
      float[] q = new float[batch * d], kv = new float[batch * n * 2 * d];
      for (int b = 0; b < batch; b++) {
        System.arraycopy(qkv, (b * n + 3) * 3 * d, q, b * d, d);
        for (int i = 0; i < n; i++) System.arraycopy(qkv, (b * n + i) * 3 * d + d, kv, (b * n + i) * 2 * d, 2 * d);
      }
      float[] pooled = ReferenceOps.attentionPooled(q, kv, new int[] {3, 3}, batch, n, heads, causal);
      for (int b = 0; b < batch; b++) {
        for (int c = 0; c < d; c++) assertEquals(got[(b * n + 3) * d + c], pooled[b * d + c], 0, "seq " + b + " col " + c);
      }
    }
  }
}
