package dev.jclip.io;

import java.io.IOException;
import java.nio.file.Path;

/**
 * A checkpoint file (safetensors, PyTorch zip, TorchScript archive, ...) is malformed or cannot be
 * used. The message names the file, the tensor or record when there is one, and the problem, so
 * that a user can tell which download is broken without a stack trace.
 */
public class CheckpointException extends IOException {
  private static final long serialVersionUID = 1L;

  private final transient Path file;
  private final String key;

  /**
   * @param file the file being read (may be null when reading from a stream)
   * @param key the tensor or record concerned, or null when the problem is with the whole file
   * @param problem what is wrong, e.g. "header length 10 exceeds the file size 8"
   */
  public CheckpointException(Path file, String key, String problem) {
    this(file, key, problem, null);
  }

  public CheckpointException(Path file, String key, String problem, Throwable cause) {
    super(format(file, key, problem), cause);
    this.file = file;
    this.key = key;
  }

  /** The file concerned, or null. */
  public Path file() {
    return file;
  }

  /** The tensor or record concerned, or null. */
  public String key() {
    return key;
  }

  private static String format(Path file, String key, String problem) {
    StringBuilder sb = new StringBuilder();
    if (file != null) sb.append(file).append(": ");
    if (key != null) sb.append("'").append(key).append("': ");
    sb.append(problem);
    return sb.toString();
  }
}
