package dev.jclip.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.graph.Executor;
import dev.jclip.io.Checkpoint;
import dev.jclip.model.ClipConfig;
import dev.jclip.model.ClipGraphs;
import dev.jclip.testing.Reference;
import dev.jclip.testing.TestRandom;
import dev.jclip.tokenizer.ClipTokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The end-of-text cut on the CPU backend: a batch of short texts run at 77 tokens and cut after
 * its longest end-of-text gives the same features bit for bit with the default oneDNN GEMMs, fp32
 * and bf16 (a row's result does not depend on the row count: DnnlLinearTest), and up to float
 * rounding (relative difference ≤ 1e-5) with OpenBLAS, which picks its sgemm kernels by the number
 * of rows (B·L) and sums in different orders. Every other op is row-independent. (The golden
 * files' batches include a 77-token text, so their own bit-exact cut check does not cut anything.)
 */
class CpuTextCutTest {
  @Test
  void cuttingAfterTheLastEndOfTextChangesNoBit() throws Exception {
    try (CpuBackend cpu = new CpuBackend()) {
      check(cpu, 0);
    }
    if (CpuFeatures.bf16()) {
      try (CpuBackend cpu = new CpuBackend(Runtime.getRuntime().availableProcessors(), true, dev.jclip.backend.Precision.BF16)) {
        check(cpu, 0);
      }
    }
  }

  @Test
  void withOpenBlasTheCutChangesOnlyRounding() throws Exception {
    try (CpuBackend cpu = new CpuBackend(Runtime.getRuntime().availableProcessors(), true, dev.jclip.backend.Precision.FP32, "openblas")) {
      check(cpu, 1e-5);
    }
  }

  private static void check(CpuBackend cpu, double tol) throws Exception {
    Random rnd = TestRandom.create("CpuTextCutTest");
    String[] words = {"a", "photo", "of", "the", "dog", "cat", "small", "red", "diagram", "flower", "in", "uniform"};
    try (Checkpoint ck = Checkpoint.open(Reference.dir().resolve("models/vit-b32-tiny/state_dict.pt"))) {
      ClipConfig cfg = ClipConfig.infer(ck);
      ClipGraphs graphs = new ClipGraphs(cfg, ck.tensors());
      ClipTokenizer tok = ClipTokenizer.load(Reference.file("bpe_simple_vocab_16e6.txt.gz"));
      for (int batch : new int[] {1, 3, 8}) {
        List<String> texts = new ArrayList<>();
        for (int i = 0; i < batch; i++) {
          StringBuilder t = new StringBuilder();
          for (int w = 0, n = 1 + rnd.nextInt(12); w < n; w++) t.append(words[rnd.nextInt(words.length)]).append(' ');
          texts.add(t.toString().trim());
        }
        int[][] rows = tok.tokenize(texts, 77, false);
        int cut = 0;
        int[] full = new int[batch * 77];
        for (int b = 0; b < batch; b++) {
          System.arraycopy(rows[b], 0, full, b * 77, 77);
          for (int t = 0; t < 77; t++) if (rows[b][t] == tok.endOfText()) cut = Math.max(cut, t + 1);
        }
        assertTrue(cut < 77);
        int[] shortIds = new int[batch * cut];
        for (int b = 0; b < batch; b++) System.arraycopy(rows[b], 0, shortIds, b * cut, cut);
        float[] a, c;
        try (Executor ex = new Executor(graphs.text(batch, 77), cpu, List.of())) {
          a = ex.run(Map.of("tokens", full)).get("text_features");
        }
        try (Executor ex = new Executor(graphs.text(batch, cut), cpu, List.of())) {
          c = ex.run(Map.of("tokens", shortIds)).get("text_features");
        }
        double err = dev.jclip.backend.ReferenceOps.relativeError(c, a);
        System.out.printf("[cut] %s, batch %d, 77 -> %d tokens: relative difference %.2e%n", cpu.gemmLibrary(), batch, cut, err);
        if (tol == 0) {
          assertTrue(java.util.Arrays.equals(a, c), cpu.gemmLibrary() + ", batch " + batch + " cut at " + cut + ": features differ (relative " + err + ") for " + texts);
        } else {
          assertTrue(err <= tol, "batch " + batch + " cut at " + cut + ": relative difference " + err + " for " + texts);
        }
      }
    }
  }

  /**
   * The graphs Clip runs compute the last block after its attention only for the pooled rows (the
   * class token, the end-of-text tokens): on the CPU backend the features equal those of the
   * all-tokens graph bit for bit, fp32 and bf16, images and texts, for every ViT reference model.
   * And with the backend's pooled attention on (its default: the last attention and query GEMM for
   * the pooled rows alone, {@link dev.jclip.graph.Fusion#pooledAttention}), within float rounding
   * of them (fp32 1e-5, bf16 1e-2 relative: the pooled query's GEMM rounds its bf16 operands as
   * in_proj does, in another summation order).
   */
  @Test
  void poolingTheLastBlockChangesNoBit() throws Exception {
    List<dev.jclip.backend.Precision> precisions = new ArrayList<>(List.of(dev.jclip.backend.Precision.FP32));
    if (CpuFeatures.bf16()) precisions.add(dev.jclip.backend.Precision.BF16);
    Random rnd = TestRandom.create("CpuTextCutTest.pooling");
    ClipTokenizer tok = ClipTokenizer.load(Reference.file("bpe_simple_vocab_16e6.txt.gz"));
    for (String model : List.of("vit-b32-tiny", "vit-b16-336-tiny")) {
      try (Checkpoint ck = Checkpoint.open(Reference.dir().resolve("models/" + model + "/state_dict.pt"))) {
        ClipConfig cfg = ClipConfig.infer(ck);
        ClipGraphs graphs = new ClipGraphs(cfg, ck.tensors());
        for (dev.jclip.backend.Precision precision : precisions) {
          try (CpuBackend cpu = new CpuBackend(Runtime.getRuntime().availableProcessors(), true, precision);
              CpuBackend pooled = new CpuBackend(Runtime.getRuntime().availableProcessors(), true, precision)) {
            cpu.pooledAttention(false);
            double tol = precision == dev.jclip.backend.Precision.FP32 ? 1e-5 : 1e-2;
            for (int batch : new int[] {1, 3, 8}) {
              float[] pixels = new float[batch * 3 * cfg.imageResolution() * cfg.imageResolution()];
              for (int i = 0; i < pixels.length; i++) pixels[i] = (float) rnd.nextGaussian();
              float[][] f = new float[2][];
              for (int k = 0; k < 2; k++) {
                try (Executor ex = new Executor(graphs.image(batch, k == 1), cpu, List.of())) {
                  f[k] = ex.run(Map.of("pixels", pixels)).get("image_features");
                }
              }
              assertTrue(java.util.Arrays.equals(f[0], f[1]), model + " " + precision + " images, batch " + batch + ": pooled graph differs");
              try (Executor ex = new Executor(graphs.image(batch), pooled, List.of())) {
                closeTo(ex.run(Map.of("pixels", pixels)).get("image_features"), f[0], tol, model + " " + precision + " images, batch " + batch);
              }
              List<String> texts = new ArrayList<>();
              for (int i = 0; i < batch; i++) texts.add("a photo of " + "a small red dog ".repeat(rnd.nextInt(6)).trim() + " number " + rnd.nextInt(1000));
              int[][] rows = tok.tokenize(texts, 77, false);
              int[] ids = new int[batch * 77];
              for (int b = 0; b < batch; b++) System.arraycopy(rows[b], 0, ids, b * 77, 77);
              for (int k = 0; k < 2; k++) {
                try (Executor ex = new Executor(graphs.text(batch, 77, k == 1), cpu, List.of())) {
                  f[k] = ex.run(Map.of("tokens", ids)).get("text_features");
                }
              }
              assertTrue(java.util.Arrays.equals(f[0], f[1]), model + " " + precision + " texts, batch " + batch + ": pooled graph differs");
              try (Executor ex = new Executor(graphs.text(batch, 77), pooled, List.of())) {
                closeTo(ex.run(Map.of("tokens", ids)).get("text_features"), f[0], tol, model + " " + precision + " texts, batch " + batch);
              }
            }
          }
        }
      }
    }
  }

  /** The pooled-attention features against the all-rows ones: within {@code tol}, and never identical to a wrong answer's. */
  private static void closeTo(float[] got, float[] want, double tol, String what) {
    double err = dev.jclip.backend.ReferenceOps.relativeError(got, want);
    System.out.printf("[pooled attention] %s: relative difference %.2e (tolerance %.0e)%n", what, err, tol);
    assertTrue(err <= tol, what + ": pooled attention off by " + err);
  }
}
