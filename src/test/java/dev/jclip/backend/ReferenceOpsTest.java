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
}
