package dev.jclip.backend.cuda;

import static dev.jclip.backend.cuda.CudaDriver.check;
import static org.bytedeco.cuda.global.cudart.cuMemFreeHost;
import static org.bytedeco.cuda.global.cudart.cuMemHostAlloc;

import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;

/**
 * Page-locked host memory ({@code cuMemHostAlloc}), the staging for asynchronous copies: the GPU's
 * copy engine reads and writes it directly, so a {@code cuMemcpyHtoDAsync} from it returns at once
 * and runs beside the kernels, where a copy from pageable memory is staged by the driver through a
 * bounce buffer. Freed by {@link #close()} (never by the garbage collector); the owner must first
 * make sure no queued copy still uses it.
 */
final class PinnedBuffer implements AutoCloseable {
  private final CudaDevice device;
  private final long address;
  private final long bytes;
  private boolean closed;

  private PinnedBuffer(CudaDevice device, long address, long bytes) {
    this.device = device;
    this.address = address;
    this.bytes = bytes;
  }

  static PinnedBuffer allocate(CudaDevice device, long bytes) {
    if (bytes <= 0) throw new IllegalArgumentException("pinned allocation of " + bytes + " bytes");
    device.makeCurrent();
    long address;
    try (PointerPointer<Pointer> out = new PointerPointer<>(1)) {
      check(cuMemHostAlloc(out, bytes, 0), "cuMemHostAlloc(" + bytes + " bytes)");
      address = out.get(0).address();
    }
    if (address == 0) throw new CudaException("cuMemHostAlloc(" + bytes + " bytes) returned a null pointer");
    device.pinned(bytes);
    return new PinnedBuffer(device, address, bytes);
  }

  long bytes() {
    return bytes;
  }

  /** The memory as a JavaCPP pointer argument (owning nothing). */
  Pointer pointer() {
    ensureOpen();
    return new HostCopy.Raw(address, bytes);
  }

  void put(float[] src) {
    ensureOpen();
    HostCopy.put(src, address, bytes);
  }

  /** {@code src} rounded to fp16 or bf16 ({@link HostCopy#putHalf}). */
  void putHalf(float[] src, dev.jclip.backend.Precision half) {
    ensureOpen();
    HostCopy.putHalf(src, address, bytes, half);
  }

  void put(int[] src) {
    ensureOpen();
    HostCopy.put(src, address, bytes);
  }

  void get(float[] dst) {
    ensureOpen();
    HostCopy.get(address, bytes, dst);
  }

  void get(short[] dst) {
    ensureOpen();
    HostCopy.get(address, bytes, dst);
  }

  private void ensureOpen() {
    if (closed) throw new IllegalStateException("pinned host buffer is closed");
  }

  @Override
  public void close() {
    if (closed) return;
    closed = true;
    device.makeCurrent();
    check(cuMemFreeHost(new HostCopy.Raw(address, bytes)), "cuMemFreeHost(" + bytes + " bytes)");
    device.pinned(-bytes);
  }
}
