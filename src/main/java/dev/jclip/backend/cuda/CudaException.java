package dev.jclip.backend.cuda;

/** A failed CUDA driver, runtime or cuBLAS call; the message names the call and the error. */
public class CudaException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public CudaException(String message) {
    super(message);
  }

  public CudaException(String message, Throwable cause) {
    super(message, cause);
  }
}
