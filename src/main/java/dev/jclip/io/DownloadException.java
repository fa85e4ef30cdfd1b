package dev.jclip.io;

import java.io.IOException;

/** A file could not be downloaded or did not verify; the message says what to do instead. */
public class DownloadException extends IOException {
  private static final long serialVersionUID = 1L;

  public DownloadException(String message) {
    super(message);
  }

  public DownloadException(String message, Throwable cause) {
    super(message, cause);
  }
}
