package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.testing.TestRandom;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The arithmetic of the LayerNorm statistics taken in parts (gemm_sm90.cu's ew_row_stats, written
 * by the epilogue warps of the {@code _res_st} kernels, and layernorm.cu's
 * layernorm_stats_combine), mirrored in fp32 on the CPU: each lane's 8 values summed in order,
 * the warp's sums by the butterfly of warp_sum, a part's mean and squared deviations, then the
 * parts combined with the counts of their columns. Checked against the rows' two-pass statistics in
 * double at every CLIP width and at widths whose last part is short (520: 8 columns; 640: 128),
 * on rows whose mean is up to 100 times their spread, where E[x²] − mean² in fp32 would lose four
 * of its seven digits. (At 1000 times, rstd drifts to ~1.2e-5: the parts' fp32 means are off by a
 * unit in their last place, and their differences, a sixteenth of the spread, carry that into the
 * variance. The fold itself, x · W' − mean · colsum in fp32, loses far more on such rows.) What it
 * cannot show (the kernels' indexing and their bits on the GPU) is CudaSm90EpilogueWarpsTest's business.
 */
class LayerNormStatsPartsModelTest {
  static final Random RNG = TestRandom.create("LayerNormStatsPartsModelTest");

  /** warp_sum: v += shfl_xor(v, o) for o = 16, 8, 4, 2, 1; lane 0's result. */
  static float warpSum(float[] lanes) {
    float[] v = lanes.clone();
    for (int o = 16; o > 0; o >>= 1) {
      float[] next = new float[32];
      for (int l = 0; l < 32; l++) next[l] = v[l] + v[l ^ o];
      v = next;
    }
    return v[0];
  }

  /** ew_row_stats on columns c0 .. c0 + 255 of a row of n (those past n give nothing): {mean, squared deviations}. */
  static float[] part(float[] row, int c0, int n) {
    int valid = Math.min(256, n - c0);
    float[] sums = new float[32], squares = new float[32];
    for (int lane = 0; lane < 32; lane++) {
      boolean in = c0 + 8 * lane < n;
      float s = 0;
      for (int i = 0; i < 8; i++) s += in ? row[c0 + 8 * lane + i] : 0f;
      sums[lane] = s;
    }
    float mean = warpSum(sums) / (float) valid;
    for (int lane = 0; lane < 32; lane++) {
      boolean in = c0 + 8 * lane < n;
      float q = 0;
      for (int i = 0; i < 8; i++) {
        float d = (in ? row[c0 + 8 * lane + i] : 0f) - mean;
        q += in ? d * d : 0f;
      }
      squares[lane] = q;
    }
    return new float[] {mean, warpSum(squares)};
  }

  /** layernorm_stats_combine of a row's parts: {mean, rstd}. */
  static float[] combine(float[][] parts, int d, float eps) {
    float mean = 0;
    for (int j = 0; j < parts.length; j++) mean += (float) Math.min(256, d - 256 * j) * parts[j][0];
    mean /= d;
    float q = 0;
    for (int j = 0; j < parts.length; j++) {
      float dm = parts[j][0] - mean;
      q += parts[j][1] + (float) Math.min(256, d - 256 * j) * dm * dm;
    }
    return new float[] {mean, (float) (1.0 / Math.sqrt(q / d + eps))};
  }

  @Test
  void partsCombineToTheRowsStatistics() {
    float eps = 1e-5f;
    for (int d : new int[] {512, 520, 640, 768, 1024, 1280}) {
      assertEquals((d + 255) / 256, CudaOps.statsParts(d));
      double worstMean = 0, worstRstd = 0;
      for (int r = 0; r < 400; r++) {
        double spread = Math.exp(RNG.nextGaussian()), mean = spread * (r % 4 == 0 ? 100 : 5) * RNG.nextGaussian();
        float[] row = new float[d];
        for (int c = 0; c < d; c++) row[c] = (float) (mean + spread * RNG.nextGaussian());
        float[][] parts = new float[CudaOps.statsParts(d)][];
        for (int j = 0; j < parts.length; j++) parts[j] = part(row, 256 * j, d);
        float[] got = combine(parts, d, eps);
        double sum = 0, sq = 0;
        for (float v : row) sum += v;
        double m = sum / d;
        for (float v : row) sq += (v - m) * (v - m);
        double rstd = 1 / Math.sqrt(sq / d + eps), std = Math.sqrt(sq / d);
        worstMean = Math.max(worstMean, Math.abs(got[0] - m) / (Math.abs(m) + std));
        worstRstd = Math.max(worstRstd, Math.abs(got[1] - rstd) / rstd);
      }
      System.out.printf("[layernorm parts model] D=%-4d mean %.1e (of |mean| + std), rstd %.1e%n", d, worstMean, worstRstd);
      assertTrue(worstMean <= 1e-5 && worstRstd <= 1e-5, "D=" + d + ": mean " + worstMean + ", rstd " + worstRstd);
    }
  }

  /** The short last part's columns count as themselves: a row whose last 8 columns sit far off the rest. */
  @Test
  void aShortLastPartWeighsItsOwnColumns() {
    int d = 520;
    float[] row = new float[d];
    for (int c = 0; c < d; c++) row[c] = c < 512 ? 0f : 64f;
    float[][] parts = {part(row, 0, d), part(row, 256, d), part(row, 512, d)};
    assertEquals(64f, parts[2][0]);
    assertEquals(0f, parts[2][1]);
    float[] got = combine(parts, d, 0f);
    double mean = 64.0 * 8 / d, var = (512 * mean * mean + 8 * (64 - mean) * (64 - mean)) / d;
    assertEquals(mean, got[0], 1e-5 * mean);
    assertEquals(1 / Math.sqrt(var), got[1], 1e-5 / Math.sqrt(var));
  }
}
