package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.cpu.CpuBackend;
import dev.jclip.graph.Executor;
import dev.jclip.io.Checkpoint;
import dev.jclip.model.ClipConfig;
import dev.jclip.model.ClipGraphs;
import dev.jclip.testing.Reference;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The model benchmark's "in parts" figures (what the GPU run times at batch 1024: the batch as 2 or
 * 4 part-batch graphs, one after the other on one backend, and alternately on two backends at once)
 * on the CPU, on the reference's tiny ViT-B/32: both ways compute the whole batch's features, and
 * the comparison with them catches parts that do not.
 */
class SplitBenchTest {
  /** The reference's tiny ViT-B/32 and two CPU backends, for every test (the backends' weights converted once). */
  private static Checkpoint ck;
  private static ClipConfig cfg;
  private static ClipGraphs graphs;
  private static CpuBackend a, b;

  @BeforeAll
  static void open() throws Exception {
    ck = Checkpoint.open(Reference.dir().resolve("models/vit-b32-tiny/state_dict.pt"));
    cfg = ClipConfig.infer(ck);
    graphs = new ClipGraphs(cfg, ck.tensors());
    a = new CpuBackend();
    b = new CpuBackend();
  }

  @AfterAll
  static void close() {
    if (a != null) a.close();
    if (b != null) b.close();
    if (ck != null) ck.close();
  }

  @Test
  void bothWaysComputeTheWholeBatchAndPartsOutOfOrderAreCaught() throws Exception {
    int batch = 8;
    float[] pixels = CudaModelBench.pixels(batch, cfg.imageResolution(), CudaModelBench.PIXEL_SEED);
    int[] ids = CudaModelBench.texts77(batch);
    float[] wholeImages, wholeTexts;
    try (Executor ex = new Executor(graphs.image(batch), a, List.of())) {
      wholeImages = CudaModelBench.only(ex.run(Map.of("pixels", pixels)));
    }
    try (Executor ex = new Executor(graphs.text(batch, 77), a, List.of())) {
      wholeTexts = CudaModelBench.only(ex.run(Map.of("tokens", ids)));
    }
    for (int parts : new int[] {2, 4}) {
      List<float[]> px = new ArrayList<>();
      List<int[]> tx = new ArrayList<>();
      for (int i = 0; i < parts; i++) {
        px.add(CudaModelBench.part(pixels, i, parts));
        tx.add(CudaModelBench.part(ids, i, parts));
      }
      CudaModelBench.Split img = CudaModelBench.split(a, b, graphs.image(batch / parts), "pixels", px, wholeImages, batch);
      CudaModelBench.Split txt = CudaModelBench.split(a, b, graphs.text(batch / parts, 77), "tokens", tx, wholeTexts, batch);
      for (CudaModelBench.Split s : new CudaModelBench.Split[] {img, txt}) {
        assertEquals(parts, s.parts());
        assertTrue(s.oneStream() > 0 && s.twoStreams() > 0, s.toString());
        // fp32 on the CPU: a row's values do not depend on how many rows share the call
        assertTrue(s.error() < 1e-6, s.toString());
      }
      // the parts given in another order compute other rows than the whole batch's, and the figures say so
      List<float[]> swapped = new ArrayList<>(px);
      java.util.Collections.swap(swapped, 0, 1);
      CudaModelBench.Split wrong = CudaModelBench.split(a, b, graphs.image(batch / parts), "pixels", swapped, wholeImages, batch);
      assertTrue(wrong.oneStreamError() > 1e-3 && wrong.twoStreamsError() > 1e-3, wrong.toString());
    }
  }

  /**
   * Two batches of their own at once (the "2 batches" figures at batch 32 and 256): with no whole
   * batch to compare with, the two streams' features are compared with the one stream's, so a
   * backend computing something else is caught.
   */
  @Test
  void twoBatchesCompareTheTwoStreamsWithTheOne() throws Exception {
    int batch = 4;
    List<float[]> px = List.of(CudaModelBench.pixels(batch, cfg.imageResolution(), CudaModelBench.PIXEL_SEED),
        CudaModelBench.pixels(batch, cfg.imageResolution(), CudaModelBench.PIXEL_SEED + 1));
    CudaModelBench.Split same = CudaModelBench.split(a, b, graphs.image(batch), "pixels", px, null, 2 * batch);
    assertEquals(0, same.oneStreamError(), "the one stream is the reference");
    assertTrue(same.twoStreamsError() < 1e-6, same.toString());
    assertTrue(same.oneStream() > 0 && same.twoStreams() > 0, same.toString());
    // a second backend that rounds otherwise (bf16 weights, where this CPU has them) shows in the error
    if (dev.jclip.backend.cpu.CpuFeatures.bf16()) {
      try (CpuBackend bf16 = new CpuBackend(1, true, dev.jclip.backend.Precision.BF16)) {
        CudaModelBench.Split other = CudaModelBench.split(a, bf16, graphs.image(batch), "pixels", px, null, 2 * batch);
        assertTrue(other.twoStreamsError() > 1e-4, other.toString());
      }
    }
  }

  @Test
  void partsCutABatchInOrder() {
    float[] v = {1, 2, 3, 4, 5, 6, 7, 8};
    assertArrayEquals(new float[] {1, 2, 3, 4}, CudaModelBench.part(v, 0, 2));
    assertArrayEquals(new float[] {5, 6, 7, 8}, CudaModelBench.part(v, 1, 2));
    assertArrayEquals(new float[] {7, 8}, CudaModelBench.part(v, 3, 4));
    int[] ids = {7, 8, 9, 10};
    assertArrayEquals(new int[] {8}, CudaModelBench.part(ids, 1, 4));
  }
}
