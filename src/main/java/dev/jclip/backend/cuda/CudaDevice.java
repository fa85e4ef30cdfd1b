package dev.jclip.backend.cuda;

import static dev.jclip.backend.cuda.CudaDriver.check;
import static org.bytedeco.cuda.global.cudart.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR;
import static org.bytedeco.cuda.global.cudart.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR;
import static org.bytedeco.cuda.global.cudart.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT;
import static org.bytedeco.cuda.global.cudart.cuCtxSetCurrent;
import static org.bytedeco.cuda.global.cudart.cuCtxSynchronize;
import static org.bytedeco.cuda.global.cudart.cuDeviceGet;
import static org.bytedeco.cuda.global.cudart.cuDeviceGetAttribute;
import static org.bytedeco.cuda.global.cudart.cuDeviceGetName;
import static org.bytedeco.cuda.global.cudart.cuDeviceTotalMem;
import static org.bytedeco.cuda.global.cudart.cuDevicePrimaryCtxRelease;
import static org.bytedeco.cuda.global.cudart.cuDevicePrimaryCtxRetain;
import static org.bytedeco.cuda.global.cudart.cuMemGetInfo;

import java.nio.charset.StandardCharsets;
import org.bytedeco.cuda.cudart.CUctx_st;
import org.bytedeco.javacpp.SizeTPointer;

/**
 * One CUDA device and its primary context. Everything allocated through it must be closed before
 * it; {@link #close()} releases the context deterministically.
 *
 * <p>The driver API binds a context to a thread: every method that touches the device first makes
 * this context current on the calling thread, so a device may be used from several threads (one
 * at a time per stream).
 */
public final class CudaDevice implements AutoCloseable {
  private final int ordinal;
  private final int handle;
  private final CUctx_st context;
  private final String name;
  private final int ccMajor;
  private final int ccMinor;
  private final int multiprocessors;
  private final long totalMemory;
  /** Page-locked host memory allocated through this device and not yet freed (see {@link PinnedBuffer}). */
  private final java.util.concurrent.atomic.AtomicLong pinnedBytes = new java.util.concurrent.atomic.AtomicLong();
  private boolean closed;

  private CudaDevice(int ordinal) {
    CudaDriver.init();
    int count = CudaDriver.deviceCount();
    if (ordinal < 0 || ordinal >= count) {
      throw new CudaUnavailableException(
          "no CUDA device " + ordinal + ": this machine has " + count + " (use --device cuda:0.." + (count - 1) + ")",
          null);
    }
    this.ordinal = ordinal;
    int[] h = new int[1];
    check(cuDeviceGet(h, ordinal), "cuDeviceGet(" + ordinal + ")");
    this.handle = h[0];
    byte[] buf = new byte[256];
    check(cuDeviceGetName(buf, buf.length, handle), "cuDeviceGetName");
    int len = 0;
    while (len < buf.length && buf[len] != 0) len++;
    this.name = new String(buf, 0, len, StandardCharsets.UTF_8);
    this.ccMajor = attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
    this.ccMinor = attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
    this.multiprocessors = attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
    try (SizeTPointer mem = new SizeTPointer(1)) {
      check(cuDeviceTotalMem(mem, handle), "cuDeviceTotalMem");
      this.totalMemory = mem.get();
    }
    this.context = new CUctx_st();
    check(cuDevicePrimaryCtxRetain(context, handle), "cuDevicePrimaryCtxRetain(" + ordinal + ")");
    makeCurrent();
  }

  /** Opens device {@code ordinal} (0-based). */
  public static CudaDevice open(int ordinal) {
    return new CudaDevice(ordinal);
  }

  private int attribute(int attr) {
    int[] v = new int[1];
    check(cuDeviceGetAttribute(v, attr, handle), "cuDeviceGetAttribute(" + attr + ")");
    return v[0];
  }

  /** Binds this device's context to the calling thread. */
  public void makeCurrent() {
    ensureOpen();
    check(cuCtxSetCurrent(context), "cuCtxSetCurrent");
  }

  /** Waits for all work on the device. */
  public void synchronize() {
    makeCurrent();
    check(cuCtxSynchronize(), "cuCtxSynchronize");
  }

  /**
   * Null while the context works; else the error every call now returns (cuCtxSynchronize's: a
   * kernel that faulted, an illegal address or a trap, leaves the context unusable for good).
   */
  public String contextError() {
    try {
      makeCurrent();
    } catch (CudaException e) {
      return e.getMessage();
    }
    int rc = cuCtxSynchronize();
    return rc == 0 ? null : CudaDriver.describe(rc);
  }

  /** Allocates {@code bytes} of device memory (uninitialised). */
  public DeviceBuffer allocate(long bytes) {
    makeCurrent();
    return new DeviceBuffer(this, bytes);
  }

  /** Loads a PTX module from the classpath resource {@code /ptx/<name>.ptx}. */
  public CudaModule loadModule(String name) {
    makeCurrent();
    return CudaModule.load(this, name);
  }

  /** Free and total device memory in bytes, as {free, total}. */
  public long[] memoryInfo() {
    makeCurrent();
    try (SizeTPointer free = new SizeTPointer(1);
        SizeTPointer total = new SizeTPointer(1)) {
      check(cuMemGetInfo(free, total), "cuMemGetInfo");
      return new long[] {free.get(), total.get()};
    }
  }

  /**
   * Bytes of page-locked host memory (the backends' upload and download staging) allocated for
   * this device and not yet freed: the driver reports device memory only, so this is how a leak
   * of pinned memory shows.
   */
  public long pinnedBytes() {
    return pinnedBytes.get();
  }

  void pinned(long delta) {
    pinnedBytes.addAndGet(delta);
  }

  public int ordinal() {
    return ordinal;
  }

  public String name() {
    return name;
  }

  /** Compute capability as "9.0". */
  public String computeCapability() {
    return ccMajor + "." + ccMinor;
  }

  public int computeCapabilityMajor() {
    return ccMajor;
  }

  public int multiprocessors() {
    return multiprocessors;
  }

  public long totalMemory() {
    return totalMemory;
  }

  void ensureOpen() {
    if (closed) throw new IllegalStateException("CUDA device " + ordinal + " is closed");
  }

  @Override
  public String toString() {
    return "cuda:" + ordinal + " (" + name + ", compute " + computeCapability() + ", " + multiprocessors + " SMs, "
        + (totalMemory >> 20) + " MiB)";
  }

  @Override
  public void close() {
    if (closed) return;
    closed = true;
    check(cuDevicePrimaryCtxRelease(handle), "cuDevicePrimaryCtxRelease(" + ordinal + ")");
  }
}
