package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.parallel.ResourceLock;
import org.junit.jupiter.api.parallel.Resources;

/**
 * What {@link CudaBackend#kernelChoices} reports (gpu-info, the model benchmark's JSON): the
 * defaults, a property that is set, and a bad value refused with the backend's own error. No GPU:
 * it reads the system properties only.
 */
@ResourceLock(Resources.SYSTEM_PROPERTIES)
class KernelChoicesTest {
  @Test
  void reportsTheDefaultsAndWhatIsSet() {
    org.junit.jupiter.api.Assumptions.assumeTrue(System.getProperties().stringPropertyNames().stream().noneMatch(k -> k.startsWith("jclip.cuda.")),
        "a -Djclip.cuda.* property is set for this JVM: the defaults cannot be seen");
    String defaults = CudaBackend.kernelChoices();
    assertEquals("attention=flash, flashBlocks=4, flashV=row, flashRows=64, flashPipe=on, flashStage=on, flashOrder=forward, flashLean=off, anyHead=off, layernorm=stream, glue=vec, actOrder=forward, gemm=cublaslt, "
        + "gemmTune=auto, fusedLinear=off, pooledAttention=on, actChunk=off, lnFold=off, lnStats=pass, ewLag=3, gemmStore=registers, inputCast=device", defaults);
    // auto: tuned in 16 bits, not in fp32 (the parity mode keeps one algorithm, and its bits, every run)
    assertTrue(CudaBackend.gemmTuneByDefault(dev.jclip.backend.Precision.FP16) && CudaBackend.gemmTuneByDefault(dev.jclip.backend.Precision.BF16));
    org.junit.jupiter.api.Assertions.assertFalse(CudaBackend.gemmTuneByDefault(dev.jclip.backend.Precision.FP32));
    for (String ln : new String[] {"warps", "deep", "deep-rev"}) {
      withProperty("jclip.cuda.layernorm", ln, () -> assertTrue(CudaBackend.kernelChoices().contains("layernorm=" + ln), CudaBackend.kernelChoices()));
    }
    assertRefused("jclip.cuda.layernorm", "fast", "'fast'");
    withProperty("jclip.cuda.flashOrder", "reversed", () -> assertTrue(CudaBackend.kernelChoices().contains("flashOrder=reversed"), CudaBackend.kernelChoices()));
    assertRefused("jclip.cuda.flashOrder", "backwards", "reversed");
    for (String lean : new String[] {"on", "exp2"}) {
      withProperty("jclip.cuda.flashLean", lean, () -> assertTrue(CudaBackend.kernelChoices().contains("flashLean=" + lean), CudaBackend.kernelChoices()));
    }
    assertRefused("jclip.cuda.flashLean", "fast", "exp2");
    withProperty("jclip.cuda.actOrder", "reversed", () -> assertTrue(CudaBackend.kernelChoices().contains("actOrder=reversed"), CudaBackend.kernelChoices()));
    withProperty("jclip.cuda.gemmTune", "search", () -> {
      assertTrue(CudaBackend.kernelChoices().contains("gemmTune=search"), CudaBackend.kernelChoices());
      assertTrue(CudaBackend.gemmTuneByDefault(dev.jclip.backend.Precision.FP32), "search tunes every precision");
    });
    withProperty("jclip.cuda.gemmTune", "on", () -> assertTrue(CudaBackend.gemmTuneByDefault(dev.jclip.backend.Precision.FP32), "on tunes fp32 too"));
    withProperty("jclip.cuda.gemmTune", "off", () -> org.junit.jupiter.api.Assertions.assertFalse(CudaBackend.gemmTuneByDefault(dev.jclip.backend.Precision.FP16)));
    assertRefused("jclip.cuda.gemmTune", "all", "auto, on, off or search");
    for (String f : new String[] {"sm90ew16s", "sm90ew16s-all"}) {
      withProperty("jclip.cuda.fusedLinear", f, () -> assertTrue(CudaBackend.kernelChoices().contains("fusedLinear=" + f), CudaBackend.kernelChoices()));
    }
    withProperty("jclip.cuda.lnFold", "sm90ew16s", () -> assertTrue(CudaBackend.kernelChoices().contains("lnFold=sm90ew16s"), CudaBackend.kernelChoices()));
    withProperty("jclip.cuda.ewLag", "4", () -> assertTrue(CudaBackend.kernelChoices().contains("ewLag=4"), CudaBackend.kernelChoices()));
    assertRefused("jclip.cuda.ewLag", "5", "0, 1, 2, 3 or 4");
    assertRefused("jclip.cuda.fusedLinear", "sm90ew16t", "sm90ew16s");
    withProperty("jclip.cuda.gemmStore", "tma", () -> assertTrue(CudaBackend.kernelChoices().contains("gemmStore=tma"), CudaBackend.kernelChoices()));
    withProperty("jclip.cuda.inputCast", "host", () -> assertTrue(CudaBackend.kernelChoices().endsWith("inputCast=host"), CudaBackend.kernelChoices()));
    assertRefused("jclip.cuda.inputCast", "gpu", "host or device");
    assertRefused("jclip.cuda.gemmStore", "smem", "tma or registers");
  }

  /** Runs {@code check} with system property {@code key} set to {@code value}, then puts back what was there. */
  private static void withProperty(String key, String value, Runnable check) {
    String old = System.getProperty(key);
    try {
      System.setProperty(key, value);
      check.run();
    } finally {
      if (old == null) System.clearProperty(key);
      else System.setProperty(key, old);
    }
  }

  /** {@code -Dkey=bad} is refused by the backend's own error, which names the property and says {@code allowed}. */
  private static void assertRefused(String key, String bad, String allowed) {
    withProperty(key, bad, () -> {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, CudaBackend::kernelChoices);
      assertTrue(e.getMessage().contains("-D" + key) && e.getMessage().contains(allowed), e.getMessage());
    });
  }

  /**
   * Which LayerNorm widths the CUDA backend folds ({@link CudaOps#layerNormStatsFit}: what
   * layernorm_stats takes, 16-bit rows of up to 1024, 4 packs a lane), so that a wider one is not
   * folded only to fall back through a scratch buffer the size of its output.
   */
  @Test
  void theLayerNormFoldTakesTheWidthsItsStatisticsKernelTakes() {
    for (int d : new int[] {512, 768, 1024}) {
      assertTrue(CudaOps.layerNormStatsFit(d, dev.jclip.backend.Precision.FP16), "fp16 " + d);
      assertTrue(CudaOps.layerNormStatsFit(d, dev.jclip.backend.Precision.BF16), "bf16 " + d);
    }
    for (int d : new int[] {1280, 1664, 100}) {
      org.junit.jupiter.api.Assertions.assertFalse(CudaOps.layerNormStatsFit(d, dev.jclip.backend.Precision.FP16), "fp16 " + d);
    }
  }

  /**
   * c_fc's row chunks ({@link CudaBackend#chunkRows}): off or a product within one chunk is one
   * whole LINEAR; otherwise balanced chunks of whole 128-row tiles, at most the size asked for
   * (but for the tile rounding), covering every row, at the batch-1024 shapes and odd ones.
   */
  @Test
  void chunkRowsAreBalancedWholeTiles() {
    assertEquals(51200, CudaBackend.chunkRows(51200, 6144, 0));
    assertEquals(100, CudaBackend.chunkRows(100, 6144, 16 << 20), "one chunk's worth: whole");
    long mb = 1 << 20;
    for (long[] c : new long[][] {{51200, 6144}, {78848, 4096}, {50 * 256, 6144}, {1000, 6144}, {129, 4096}, {577 * 3, 8192}}) {
      long m = c[0], rowBytes = c[1];
      for (long chunk : new long[] {64 * 1024, 8 * mb, 16 * mb, 32 * mb}) {
        long rows = CudaBackend.chunkRows(m, rowBytes, chunk);
        String what = m + " rows of " + rowBytes + " B in " + chunk + " B chunks: " + rows;
        assertTrue(rows >= 1 && rows <= m, what);
        if (rows < m) {
          assertEquals(0, rows % 128, what);
          long chunks = (m + rows - 1) / rows, asked = (m * rowBytes + chunk - 1) / chunk;
          assertTrue(chunks <= asked, what + ": " + chunks + " chunks, " + asked + " asked for");
          assertTrue(rows * rowBytes <= chunk + 128 * rowBytes, what + ": above the chunk by more than a tile");
        }
      }
    }
    assertEquals(2816, CudaBackend.chunkRows(51200, 3072 * 2, 16 * mb)); // ViT-B/32 c_fc, batch 1024: 19 chunks (18.75 asked for)
    assertEquals(3968, CudaBackend.chunkRows(78848, 2048 * 2, 16 * mb)); // 77-token texts: 20 chunks (19.25 asked for)
  }
}
