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
    assertEquals("attention=flash, flashBlocks=4, flashV=row, flashRows=64, flashPipe=off, flashStage=off, layernorm=warps, glue=vec, gemm=cublaslt, "
        + "gemmTune=off, fusedLinear=off, pooledAttention=off", defaults);
    String old = System.getProperty("jclip.cuda.layernorm");
    try {
      System.setProperty("jclip.cuda.layernorm", "stream");
      assertTrue(CudaBackend.kernelChoices().contains("layernorm=stream"), CudaBackend.kernelChoices());
      System.setProperty("jclip.cuda.layernorm", "fast");
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, CudaBackend::kernelChoices);
      assertTrue(e.getMessage().contains("-Djclip.cuda.layernorm") && e.getMessage().contains("'fast'"), e.getMessage());
    } finally {
      if (old == null) System.clearProperty("jclip.cuda.layernorm");
      else System.setProperty("jclip.cuda.layernorm", old);
    }
  }
}
