package dev.jclip.backend.cuda;

import static org.bytedeco.cuda.global.cudart.CUDA_SUCCESS;
import static org.bytedeco.cuda.global.cudart.cuDeviceGetCount;
import static org.bytedeco.cuda.global.cudart.cuDriverGetVersion;
import static org.bytedeco.cuda.global.cudart.cuGetErrorName;
import static org.bytedeco.cuda.global.cudart.cuGetErrorString;
import static org.bytedeco.cuda.global.cudart.cuInit;

import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Loader;

/**
 * Entry to the CUDA driver API through JavaCPP (org.bytedeco:cuda). The JNI wrappers come from the
 * jar; the CUDA libraries themselves (libcuda.so.1 from the driver, libcudart.so.13 and
 * libcublas.so.13 from the toolkit) are found by the dynamic linker, so {@code LD_LIBRARY_PATH}
 * must name the toolkit's lib64 directory when it is not in the system's search path.
 */
public final class CudaDriver {
  private CudaDriver() {}

  /** Why the CUDA libraries could not be loaded, the first time it was tried (null: not tried, or loaded). */
  private static volatile CudaUnavailableException loadFailure;

  /**
   * Loads the CUDA libraries and initialises the driver (idempotent).
   *
   * @throws CudaUnavailableException with the reason when CUDA cannot be used on this machine
   */
  public static void init() {
    // The first failure is kept: a second Loader.load fails with another, misleading reason ("no
    // jnicudart in java.library.path") where the first named the missing library.
    CudaUnavailableException failed = loadFailure;
    if (failed != null) throw new CudaUnavailableException(failed.getMessage(), failed);
    try {
      Loader.load(cudart.class);
    } catch (UnsatisfiedLinkError | NoClassDefFoundError e) {
      failed = new CudaUnavailableException(
          "CUDA libraries could not be loaded ("
              + rootMessage(e)
              + "): install the NVIDIA driver and the CUDA 13 toolkit, and put its lib64 directory on LD_LIBRARY_PATH",
          e);
      loadFailure = failed;
      throw failed;
    }
    int rc = cuInit(0);
    if (rc != CUDA_SUCCESS) {
      throw new CudaUnavailableException("cuInit failed: " + describe(rc) + " (is an NVIDIA GPU and driver present?)", null);
    }
  }

  private static String rootMessage(Throwable e) {
    Throwable t = e;
    while (t.getCause() != null && t.getCause() != t) t = t.getCause();
    return t.getMessage();
  }

  /** Number of CUDA devices, after {@link #init()}. */
  public static int deviceCount() {
    init();
    int[] n = new int[1];
    check(cuDeviceGetCount(n), "cuDeviceGetCount");
    return n[0];
  }

  /** The driver's CUDA version as "13.0". */
  public static String driverVersion() {
    init();
    int[] v = new int[1];
    check(cuDriverGetVersion(v), "cuDriverGetVersion");
    return (v[0] / 1000) + "." + (v[0] % 1000) / 10;
  }

  /** Throws a {@link CudaException} naming {@code call} unless {@code rc} is CUDA_SUCCESS. */
  public static void check(int rc, String call) {
    if (rc != CUDA_SUCCESS) throw new CudaException(call + " failed: " + describe(rc));
  }

  /** "CUDA_ERROR_OUT_OF_MEMORY (700): out of memory"-style text for a driver result code. */
  public static String describe(int rc) {
    String name = "?";
    String text = "";
    try (BytePointer p = new BytePointer((org.bytedeco.javacpp.Pointer) null)) {
      if (cuGetErrorName(rc, p) == CUDA_SUCCESS && !p.isNull()) name = p.getString();
    } catch (RuntimeException | UnsatisfiedLinkError ignored) {
      // the description is best effort; the code itself is always reported
    }
    try (BytePointer p = new BytePointer((org.bytedeco.javacpp.Pointer) null)) {
      if (cuGetErrorString(rc, p) == CUDA_SUCCESS && !p.isNull()) text = p.getString();
    } catch (RuntimeException | UnsatisfiedLinkError ignored) {
      // as above
    }
    return name + " (" + rc + ")" + (text.isEmpty() ? "" : ": " + text);
  }
}
