package dev.jclip.pipeline;

import java.nio.file.Path;
import java.util.Map;

/**
 * One input of an embedding job, numbered in input order.
 *
 * @param index stable global index (0-based): shard {@code index / shardSize} holds it
 * @param id what the metadata calls it: the path as the input names it, or a webdataset key
 * @param file the image file to read, or null when {@code bytes} holds the content
 * @param bytes the image file's content when it came from an archive, else null
 * @param caption the caption, or null
 * @param extra other columns carried from the input into the metadata, in input order (values as text)
 * @param error why this input cannot be used at all (bad row), or null
 */
public record InputItem(
    long index, String id, Path file, byte[] bytes, String caption, Map<String, String> extra, String error) {
  public static InputItem bad(long index, String id, String error) {
    return new InputItem(index, id, null, null, null, Map.of(), error);
  }
}
