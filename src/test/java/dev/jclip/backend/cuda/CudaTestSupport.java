package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.function.Consumer;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

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

  /**
   * A test class's GPU: opened before its tests ({@link #openDevice}, or {@link #openSm90Device}:
   * skipped, with the reason, where there is none or gemm_sm90 cannot run), handed to the class's
   * field, and closed after them. {@code @RegisterExtension static final CudaTestSupport.Gpu GPU =
   * CudaTestSupport.gpu(d -> device = d);}
   */
  static final class Gpu implements BeforeAllCallback, AfterAllCallback {
    private final boolean sm90;
    private final Consumer<CudaDevice> field;
    private CudaDevice device;

    private Gpu(boolean sm90, Consumer<CudaDevice> field) {
      this.sm90 = sm90;
      this.field = field;
    }

    @Override
    public void beforeAll(ExtensionContext context) {
      device = sm90 ? openSm90Device() : openDevice();
      field.accept(device);
    }

    @Override
    public void afterAll(ExtensionContext context) {
      if (device != null) device.close();
      device = null;
    }
  }

  /** Any GPU ({@link #openDevice}) for the class's field {@code field}. */
  static Gpu gpu(Consumer<CudaDevice> field) {
    return new Gpu(false, field);
  }

  /** A GPU that runs gemm_sm90 ({@link #openSm90Device}) for the class's field {@code field}. */
  static Gpu sm90(Consumer<CudaDevice> field) {
    return new Gpu(true, field);
  }
}
