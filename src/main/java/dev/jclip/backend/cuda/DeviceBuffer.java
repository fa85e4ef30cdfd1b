package dev.jclip.backend.cuda;

import static dev.jclip.backend.cuda.CudaDriver.check;
import static org.bytedeco.cuda.global.cudart.cuMemAlloc;
import static org.bytedeco.cuda.global.cudart.cuMemFree;
import static org.bytedeco.cuda.global.cudart.cuMemcpyDtoH;
import static org.bytedeco.cuda.global.cudart.cuMemcpyDtoDAsync;
import static org.bytedeco.cuda.global.cudart.cuMemcpyDtoHAsync;
import static org.bytedeco.cuda.global.cudart.cuMemcpyHtoD;
import static org.bytedeco.cuda.global.cudart.cuMemcpyHtoDAsync;
import static org.bytedeco.cuda.global.cudart.cuMemsetD8;

import dev.jclip.graph.Backend;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.ShortPointer;

/** Device memory owned by Java code and freed by {@link #close()}, never by the garbage collector. */
public final class DeviceBuffer implements Backend.Buffer {
  private final CudaDevice device;
  private final long address;
  private final long bytes;
  private final boolean owner;
  /** For the views of {@link #split}: the buffer they share, freed when the last view closes. */
  private final DeviceBuffer shared;
  private final int[] openViews;
  /** Run by {@link #close()} before the memory is released (see {@link #onClose}). */
  private java.util.List<Runnable> closeHooks;
  private boolean closed;

  private DeviceBuffer(CudaDevice device, long address, long bytes, DeviceBuffer shared, int[] openViews) {
    this.device = device;
    this.address = address;
    this.bytes = bytes;
    this.owner = false;
    this.shared = shared;
    this.openViews = openViews;
  }

  /**
   * Splits this buffer into views at {@code offsets} with {@code sizes}; this buffer is then owned
   * by the views and freed when the last of them is closed.
   */
  public java.util.List<DeviceBuffer> split(long[] offsets, long[] sizes) {
    ensureOpen();
    int[] open = {offsets.length};
    java.util.List<DeviceBuffer> views = new java.util.ArrayList<>(offsets.length);
    for (int i = 0; i < offsets.length; i++) {
      if (offsets[i] < 0 || sizes[i] <= 0 || offsets[i] + sizes[i] > bytes) {
        throw new IllegalArgumentException("view [" + offsets[i] + ", " + (offsets[i] + sizes[i]) + ") outside a buffer of " + bytes);
      }
      views.add(new DeviceBuffer(device, address + offsets[i], sizes[i], this, open));
    }
    return views;
  }

  /** A non-owning view of {@code bytes} bytes at {@code offset} (closing it frees nothing). */
  public DeviceBuffer view(long offset, long bytes) {
    ensureOpen();
    if (offset < 0 || bytes <= 0 || offset + bytes > this.bytes) {
      throw new IllegalArgumentException("view [" + offset + ", " + (offset + bytes) + ") outside a buffer of " + this.bytes);
    }
    return new DeviceBuffer(device, address + offset, bytes, null, null);
  }

  DeviceBuffer(CudaDevice device, long bytes) {
    this.owner = true;
    this.shared = null;
    this.openViews = null;
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

  @Override
  public long bytes() {
    return bytes;
  }

  /** Sets every byte of this buffer to zero (synchronous with respect to the host). */
  public DeviceBuffer zero() {
    ensureOpen();
    device.makeCurrent();
    check(cuMemsetD8(address, (byte) 0, bytes), "cuMemsetD8(" + bytes + " bytes)");
    return this;
  }

  /** Copies {@code data} to the start of this buffer (synchronous). */
  public DeviceBuffer upload(float[] data) {
    try (FloatPointer host = new FloatPointer(data)) {
      return copyIn(host, 4L * data.length);
    }
  }

  /** Copies int32 values to the start of this buffer (synchronous). */
  public DeviceBuffer upload(int[] data) {
    try (IntPointer host = new IntPointer(data)) {
      return copyIn(host, 4L * data.length);
    }
  }

  /** Copies 16-bit values (fp16 or bf16 bit patterns) to the start of this buffer (synchronous). */
  public DeviceBuffer upload(short[] data) {
    try (ShortPointer host = new ShortPointer(data)) {
      return copyIn(host, 2L * data.length);
    }
  }

  /** Copies the first {@code n} 16-bit values of this buffer to a new array (synchronous). */
  public short[] downloadShorts(int n) {
    short[] out = new short[n];
    try (ShortPointer host = new ShortPointer(n)) {
      copyOut(host, 2L * n).get(out);
    }
    return out;
  }

  /** Copies the first {@code n} floats of this buffer to a new array (synchronous). */
  public float[] downloadFloats(int n) {
    float[] out = new float[n];
    try (FloatPointer host = new FloatPointer(n)) {
      copyOut(host, 4L * n).get(out);
    }
    return out;
  }

  /**
   * Copies {@code data} to the start of this buffer in {@code stream}'s order, through pageable
   * memory, and returns when the copy is done (the host array may then be reused): for the
   * parameters, uploaded once. Inputs go through {@link #copyFromHostAsync} from pinned staging.
   */
  public DeviceBuffer upload(float[] data, CudaStream stream) {
    try (FloatPointer host = new FloatPointer(data)) {
      return copyIn(host, 4L * data.length, stream);
    }
  }

  /** Copies 16-bit values to the start of this buffer in {@code stream}'s order. */
  public DeviceBuffer upload(short[] data, CudaStream stream) {
    try (ShortPointer host = new ShortPointer(data)) {
      return copyIn(host, 2L * data.length, stream);
    }
  }

  private DeviceBuffer copyIn(Pointer host, long n, CudaStream stream) {
    checkFits(n);
    device.makeCurrent();
    check(cuMemcpyHtoDAsync(address, host, n, stream.handle()), "cuMemcpyHtoDAsync(" + n + " bytes)");
    // The callers free the native copy of the array as soon as this returns. From pageable memory
    // the driver documents the async copy only as "might be synchronous" (it may stage it later),
    // so wait for it: such a copy is host-bound anyway, and parameters are uploaded once, in an
    // executor's first run.
    stream.synchronize();
    return this;
  }

  /**
   * Queues a copy of the first {@code bytes} of pinned {@code src} into this buffer on {@code
   * stream} and returns at once; {@code src} must stay untouched until the copy has run.
   */
  void copyFromHostAsync(PinnedBuffer src, long bytes, CudaStream stream) {
    checkFits(bytes);
    if (bytes > src.bytes()) throw new IllegalArgumentException(bytes + " bytes do not fit a pinned buffer of " + src.bytes());
    device.makeCurrent();
    check(cuMemcpyHtoDAsync(address, src.pointer(), bytes, stream.handle()), "cuMemcpyHtoDAsync(" + bytes + " bytes, pinned)");
  }

  /** Queues a copy of the first {@code bytes} of this buffer into pinned {@code dst} on {@code stream}; returns at once. */
  void copyToHostAsync(PinnedBuffer dst, long bytes, CudaStream stream) {
    checkFits(bytes);
    if (bytes > dst.bytes()) throw new IllegalArgumentException(bytes + " bytes do not fit a pinned buffer of " + dst.bytes());
    device.makeCurrent();
    check(cuMemcpyDtoHAsync(dst.pointer(), address, bytes, stream.handle()), "cuMemcpyDtoHAsync(" + bytes + " bytes, pinned)");
  }

  /**
   * Runs {@code hook} when this buffer is closed, before its memory is released: how a backend
   * frees what it keeps per buffer (an input's staging) together with the buffer.
   */
  void onClose(Runnable hook) {
    ensureOpen();
    if (closeHooks == null) closeHooks = new java.util.ArrayList<>();
    closeHooks.add(hook);
  }

  /** Copies {@code bytes} from {@code src} into this buffer in {@code stream}'s order. */
  public void copyFrom(DeviceBuffer src, long bytes, CudaStream stream) {
    checkFits(bytes);
    if (bytes > src.bytes) throw new IllegalArgumentException(bytes + " bytes do not fit a device buffer of " + src.bytes);
    device.makeCurrent();
    check(cuMemcpyDtoDAsync(address, src.address(), bytes, stream.handle()), "cuMemcpyDtoDAsync(" + bytes + " bytes)");
  }

  private DeviceBuffer copyIn(Pointer host, long n) {
    checkFits(n);
    device.makeCurrent();
    check(cuMemcpyHtoD(address, host, n), "cuMemcpyHtoD(" + n + " bytes)");
    return this;
  }

  private <P extends Pointer> P copyOut(P host, long n) {
    checkFits(n);
    device.makeCurrent();
    check(cuMemcpyDtoH(host, address, n), "cuMemcpyDtoH(" + n + " bytes)");
    return host;
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
    if (closeHooks != null) {
      RuntimeException failure = null;
      for (Runnable hook : closeHooks) {
        try {
          hook.run();
        } catch (RuntimeException e) { // the memory is released all the same
          if (failure == null) failure = e;
          else failure.addSuppressed(e);
        }
      }
      closeHooks = null;
      if (failure != null) {
        try {
          release();
        } catch (RuntimeException e) {
          failure.addSuppressed(e);
        }
        throw failure;
      }
    }
    release();
  }

  private void release() {
    if (!owner) {
      if (shared != null && --openViews[0] == 0) shared.close();
      return;
    }
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
