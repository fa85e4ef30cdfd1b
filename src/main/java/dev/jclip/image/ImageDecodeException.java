package dev.jclip.image;

import java.io.IOException;
import java.nio.file.Path;

/** An image file cannot be decoded: the message names the file and what is wrong with it. */
public class ImageDecodeException extends IOException {
  private static final long serialVersionUID = 1L;

  private final transient Path file;

  public ImageDecodeException(Path file, String problem) {
    this(file, problem, null);
  }

  public ImageDecodeException(Path file, String problem, Throwable cause) {
    super((file == null ? "" : file + ": ") + problem, cause);
    this.file = file;
  }

  /** The file concerned (may be null for in-memory data). */
  public Path file() {
    return file;
  }
}
