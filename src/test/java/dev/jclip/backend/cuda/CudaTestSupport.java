package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Opens the GPU for tests tagged "cuda". Under {@code -Pcuda} (system property {@code
 * jclip.cuda.required=true}) a missing GPU fails the test; otherwise it is skipped with the reason.
 */
final class CudaTestSupport {
  private CudaTestSupport() {}

  static CudaDevice openDevice() {
    try {
      int ordinal = Integer.getInteger("jclip.cuda.device", 0);
      return CudaDevice.open(ordinal);
    } catch (CudaUnavailableException e) {
      if (Boolean.getBoolean("jclip.cuda.required")) throw e;
      assumeTrue(false, "no CUDA device: " + e.getMessage());
      throw e; // unreachable
    }
  }
}
