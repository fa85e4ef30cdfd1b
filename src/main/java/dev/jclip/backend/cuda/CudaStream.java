package dev.jclip.backend.cuda;

import static dev.jclip.backend.cuda.CudaDriver.check;
import static org.bytedeco.cuda.global.cudart.CU_STREAM_NON_BLOCKING;
import static org.bytedeco.cuda.global.cudart.cuStreamCreate;
import static org.bytedeco.cuda.global.cudart.cuStreamDestroy;
import static org.bytedeco.cuda.global.cudart.cuStreamSynchronize;
import static org.bytedeco.cuda.global.cudart.cuStreamWaitEvent;

import org.bytedeco.cuda.cudart.CUstream_st;

/**
 * A non-blocking CUDA stream: work on it is ordered, overlaps with other streams, and can be
 * captured into a CUDA graph (the legacy default stream cannot).
 */
public final class CudaStream implements AutoCloseable {
  private final CudaDevice device;
  private final CUstream_st handle;
  private boolean closed;

  public CudaStream(CudaDevice device) {
    this.device = device;
    device.makeCurrent();
    this.handle = new CUstream_st();
    check(cuStreamCreate(handle, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  }

  /** The device this stream belongs to. */
  public CudaDevice device() {
    return device;
  }

  public CUstream_st handle() {
    if (closed) throw new IllegalStateException("CUDA stream is closed");
    return handle;
  }

  /** Waits until everything queued on this stream has run. */
  public void synchronize() {
    device.makeCurrent();
    check(cuStreamSynchronize(handle()), "cuStreamSynchronize");
  }

  /**
   * Makes the work queued on this stream from now on wait until {@code event}'s recorded point has
   * been reached on its stream; the host does not wait. A no-op for an event never recorded.
   */
  void waitFor(CudaEvent event) {
    if (!event.recorded()) return;
    device.makeCurrent();
    check(cuStreamWaitEvent(handle(), event.handle(), 0), "cuStreamWaitEvent");
  }

  @Override
  public void close() {
    if (closed) return;
    closed = true;
    device.makeCurrent();
    check(cuStreamDestroy(handle), "cuStreamDestroy");
  }
}
