package dev.jclip.backend.cuda;

/** No usable CUDA device: no driver, no GPU, or the CUDA libraries could not be loaded. */
public final class CudaUnavailableException extends CudaException {
  private static final long serialVersionUID = 1L;

  public CudaUnavailableException(String message, Throwable cause) {
    super(message, cause);
  }
}
