package dev.jclip.io;

import java.io.IOException;
import java.nio.file.Path;

/**
 * A checkpoint could not be read: the message names the file, the key (tensor name, zip entry or
 * configuration field) and what is wrong, e.g. {@code state_dict.pt [data/7]: entry missing}.
 *
 * <p>Every reader in {@code dev.jclip.io} reports bad input with this exception (never with an
 * index or arithmetic exception), so a caller can catch one type for "this file is broken".
 */
public class CheckpointException extends IOException {
  private final String file;
  private final String key;

  /**
   * @param file the file (or folder) being read, as the user named it
   * @param key the tensor, entry or field concerned; null when the problem is with the whole file
   * @param problem what is wrong, ideally with what was expected and what to do
   */
  public CheckpointException(String file, String key, String problem) {
    this(file, key, problem, null);
  }

  public CheckpointException(String file, String key, String problem, Throwable cause) {
    super(format(file, key, problem), cause);
    this.file = file;
    this.key = key;
  }

  public CheckpointException(Path file, String key, String problem) {
    this(String.valueOf(file), key, problem, null);
  }

  public CheckpointException(Path file, String key, String problem, Throwable cause) {
    this(String.valueOf(file), key, problem, cause);
  }

  /** The file (or folder) that was being read. */
  public String file() {
    return file;
  }

  /** The tensor, entry or field concerned, or null. */
  public String key() {
    return key;
  }

  private static String format(String file, String key, String problem) {
    return (file == null ? "<unknown file>" : file) + (key == null ? "" : " [" + key + "]") + ": " + problem;
  }
}
