package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.tokenizer.ClipTokenizer;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The model benchmark measures jclip as the PyTorch peer (scripts/gpu-peer.py) measures itself. Its
 * inputs are drawn as the peer draws its own: N(0, 1) pixels, 77-token texts of ids uniform in
 * [1, 49000) ending in the end-of-text token, every image and text of a batch its own; and the same
 * values on every call, so that the profile's configurations, the precisions and a resumed process
 * see the same inputs. Its throughput rows time as the peer's {@code median_ms} does.
 */
class ModelBenchPeerMethodTest {
  @Test
  void pixelsAreStandardNormalAndEveryImageDiffers() {
    int batch = 8, res = 224, n = 3 * res * res;
    float[] px = CudaModelBench.pixels(batch, res, CudaModelBench.PIXEL_SEED);
    assertEquals(batch * n, px.length);
    double sum = 0, sq = 0;
    for (float v : px) {
      sum += v;
      sq += (double) v * v;
    }
    double mean = sum / px.length, std = Math.sqrt(sq / px.length - mean * mean);
    assertEquals(0, mean, 5e-3, "mean");
    assertEquals(1, std, 5e-3, "standard deviation");
    for (int b = 1; b < batch; b++) {
      assertTrue(!Arrays.equals(px, 0, n, px, b * n, (b + 1) * n), "image " + b + " is image 0 again");
    }
    assertArrayEquals(px, CudaModelBench.pixels(batch, res, CudaModelBench.PIXEL_SEED), "the same seed, the same pixels");
    assertTrue(!Arrays.equals(px, CudaModelBench.pixels(batch, res, CudaModelBench.PIXEL_SEED + 1)), "the pipelined stream's other batch differs");
  }

  @Test
  void timesAsThePeerDoes() {
    int[] runs = {0}, after = {0};
    // quick runs: as many as fit in half a second, at most 200
    CudaModelBench.medianLikeThePeer(() -> runs[0]++, () -> after[0]++);
    assertEquals(200, runs[0]);
    assertEquals(200, after[0], "the untimed step after every run");
    // slow runs: at least 5, though they take more than half a second
    runs[0] = 0;
    double median = CudaModelBench.medianLikeThePeer(() -> {
      runs[0]++;
      sleep(runs[0] == 3 ? 1000 : 100);
    }, null);
    assertEquals(5, runs[0]);
    // the median of five is one of the four 100 ms runs (however late a loaded machine wakes them);
    // their mean with the slow one would be 0.28 s or more
    assertTrue(median >= 0.1 && median < 0.25, "the median, not the mean: one slow run of five, " + median + " s");
    // Python's statistics.median
    assertEquals(2.0, CudaModelBench.median(java.util.List.of(3.0, 1.0, 2.0)));
    assertEquals(2.5, CudaModelBench.median(java.util.List.of(4.0, 1.0, 3.0, 2.0)));
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      throw new AssertionError(e);
    }
  }

  @Test
  void textsAreRandomIdsEndingInTheEndOfTextToken() {
    int batch = 64;
    int[] ids = CudaModelBench.texts77(batch);
    assertEquals(batch * 77, ids.length);
    Set<String> rows = new HashSet<>();
    Set<Integer> distinct = new HashSet<>();
    for (int b = 0; b < batch; b++) {
      int[] row = Arrays.copyOfRange(ids, b * 77, (b + 1) * 77);
      assertEquals(49407, row[76], "row " + b + " ends in the end-of-text token");
      for (int i = 0; i < 76; i++) {
        assertTrue(row[i] >= 1 && row[i] < 49000, "row " + b + " id " + i + " = " + row[i] + ", outside the peer's [1, 49000)");
        distinct.add(row[i]);
      }
      assertEquals(76, ClipTokenizer.endOfTextPosition(row, 0, 77), "row " + b + ": the features are read at position 76");
      rows.add(Arrays.toString(row));
    }
    assertEquals(batch, rows.size(), "every text of the batch its own");
    assertTrue(distinct.size() > 4000, distinct.size() + " distinct ids in " + batch * 76 + " draws");
    assertArrayEquals(ids, CudaModelBench.texts77(batch), "the same texts on every call");
  }
}
