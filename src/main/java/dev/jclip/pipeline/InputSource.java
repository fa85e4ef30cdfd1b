package dev.jclip.pipeline;

import java.io.IOException;

/**
 * Inputs of a job in a stable order. {@link #next()} returns items with indices 0, 1, 2, ... and
 * null at the end; an input that cannot be used (a bad row) is returned as an item whose {@code
 * error} says why, so that it keeps its index and goes to errors.jsonl.
 */
public interface InputSource extends AutoCloseable {
  /** The next item, or null at the end. IOException only for failures of the whole source. */
  InputItem next() throws IOException;

  /** Number of items when known in advance (for the ETA), else -1. */
  long size();

  /** Whether items carry captions (then the job also writes text embeddings). */
  boolean hasCaptions();

  /** The metadata column naming the item: "image_path" for files, "key" for webdataset samples. */
  String idColumn();

  @Override
  void close() throws IOException;
}
