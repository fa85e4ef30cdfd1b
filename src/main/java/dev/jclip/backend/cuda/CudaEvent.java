package dev.jclip.backend.cuda;

import static dev.jclip.backend.cuda.CudaDriver.check;
import static org.bytedeco.cuda.global.cudart.CU_EVENT_DISABLE_TIMING;
import static org.bytedeco.cuda.global.cudart.cuEventCreate;
import static org.bytedeco.cuda.global.cudart.cuEventDestroy;
import static org.bytedeco.cuda.global.cudart.cuEventRecord;
import static org.bytedeco.cuda.global.cudart.cuEventSynchronize;

import org.bytedeco.cuda.cudart.CUevent_st;

/**
 * A CUDA event without timing: a point in one stream's work that the host or another stream can
 * wait for. Until it is first recorded every wait on it returns at once (nothing to wait for).
 */
final class CudaEvent implements AutoCloseable {
  private final CudaDevice device;
  private final String what;
  private final CUevent_st handle;
  private boolean recorded;
  private boolean closed;

  /** @param what what the event marks, for error messages ("upload of input staging") */
  CudaEvent(CudaDevice device, String what) {
    this.device = device;
    this.what = what;
    device.makeCurrent();
    this.handle = new CUevent_st();
    check(cuEventCreate(handle, CU_EVENT_DISABLE_TIMING), "cuEventCreate(" + what + ")");
  }

  /** Marks the work queued on {@code stream} so far. */
  void record(CudaStream stream) {
    ensureOpen();
    device.makeCurrent();
    check(cuEventRecord(handle, stream.handle()), "cuEventRecord(" + what + ")");
    recorded = true;
  }

  /** Whether the event has been recorded at least once (else waiting on it is a no-op). */
  boolean recorded() {
    return recorded;
  }

  /** Blocks the calling thread until the work before the last {@link #record} has run. */
  void synchronize() {
    ensureOpen();
    if (!recorded) return;
    device.makeCurrent();
    check(cuEventSynchronize(handle), "cuEventSynchronize(" + what + ")");
  }

  CUevent_st handle() {
    ensureOpen();
    return handle;
  }

  private void ensureOpen() {
    if (closed) throw new IllegalStateException("CUDA event (" + what + ") is closed");
  }

  @Override
  public void close() {
    if (closed) return;
    closed = true;
    device.makeCurrent();
    check(cuEventDestroy(handle), "cuEventDestroy(" + what + ")");
  }
}
