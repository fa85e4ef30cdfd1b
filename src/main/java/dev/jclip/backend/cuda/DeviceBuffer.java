package dev.jclip.backend.cuda;

import static dev.jclip.backend.cuda.CudaDriver.check;
import static org.bytedeco.cuda.global.cudart.cuMemAlloc;
import static org.bytedeco.cuda.global.cudart.cuMemFree;
import static org.bytedeco.cuda.global.cudart.cuMemcpyDtoH;
import static org.bytedeco.cuda.global.cudart.cuMemcpyHtoD;

import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.ShortPointer;

/** Device memory owned by Java code and freed by {@link #close()}, never by the garbage collector. */
public final class DeviceBuffer implements AutoCloseable {
  private final CudaDevice device;
  private final long address;
  private final long bytes;
  private boolean closed;

  DeviceBuffer(CudaDevice device, long bytes) {
    if (bytes <= 0) throw new IllegalArgumentException("device allocation of " + bytes + " bytes");
    this.device = device;
    this.bytes = bytes;
    long[] p = new long[1];
    check(cuMemAlloc(p, bytes), "cuMemAlloc(" + bytes + " bytes)");
    this.address = p[0];
  }

  /** The raw device address (a CUdeviceptr). */
  public long address() {
    ensureOpen();
    return address;
  }

  public long bytes() {
    return bytes;
  }

  /** Copies {@code data} to the start of this buffer (synchronous). */
  public DeviceBuffer upload(float[] data) {
    long n = 4L * data.length;
    checkFits(n);
    device.makeCurrent();
    try (FloatPointer host = new FloatPointer(data)) {
      check(cuMemcpyHtoD(address, host, n), "cuMemcpyHtoD(" + n + " bytes)");
    }
    return this;
  }

  /** Copies 16-bit values (fp16 or bf16 bit patterns) to the start of this buffer (synchronous). */
  public DeviceBuffer upload(short[] data) {
    long n = 2L * data.length;
    checkFits(n);
    device.makeCurrent();
    try (ShortPointer host = new ShortPointer(data)) {
      check(cuMemcpyHtoD(address, host, n), "cuMemcpyHtoD(" + n + " bytes)");
    }
    return this;
  }

  /** Copies the first {@code n} 16-bit values of this buffer to a new array (synchronous). */
  public short[] downloadShorts(int n) {
    checkFits(2L * n);
    device.makeCurrent();
    short[] out = new short[n];
    try (ShortPointer host = new ShortPointer(n)) {
      check(cuMemcpyDtoH(host, address, 2L * n), "cuMemcpyDtoH(" + 2L * n + " bytes)");
      host.get(out);
    }
    return out;
  }

  /** Copies the first {@code n} floats of this buffer to a new array (synchronous). */
  public float[] downloadFloats(int n) {
    checkFits(4L * n);
    device.makeCurrent();
    float[] out = new float[n];
    try (FloatPointer host = new FloatPointer(n)) {
      check(cuMemcpyDtoH(host, address, 4L * n), "cuMemcpyDtoH(" + 4L * n + " bytes)");
      host.get(out);
    }
    return out;
  }

  /** A JavaCPP pointer to this device memory, for libraries such as cuBLAS that take one. */
  public Pointer asPointer() {
    ensureOpen();
    return new DevicePointer(address, bytes);
  }

  private void checkFits(long n) {
    ensureOpen();
    if (n > bytes) throw new IllegalArgumentException(n + " bytes do not fit a device buffer of " + bytes);
  }

  private void ensureOpen() {
    if (closed) throw new IllegalStateException("device buffer is closed");
  }

  @Override
  public void close() {
    if (closed) return;
    closed = true;
    device.makeCurrent();
    check(cuMemFree(address), "cuMemFree");
  }

  /** Wraps a device address without owning it (no deallocator). */
  static final class DevicePointer extends Pointer {
    DevicePointer(long address, long bytes) {
      this.address = address;
      this.capacity = bytes;
      this.limit = bytes;
    }
  }
}
