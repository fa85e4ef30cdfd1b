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

  /** {@link #openDevice}, skipping the tests (device closed) where gemm_sm90 cannot run: off compute capability 9.0. */
  static CudaDevice openSm90Device() {
    CudaDevice device = openDevice();
    if (!Sm90Gemm.available(device)) {
      String why = "gemm_sm90 needs compute capability 9.0; " + device + " has " + device.computeCapability();
      device.close();
      assumeTrue(false, why);
    }
    return device;
  }
}
