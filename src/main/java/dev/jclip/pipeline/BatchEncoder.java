package dev.jclip.pipeline;

import java.util.List;

/**
 * The model as the embedding pipeline sees it: batches in, embedding rows out. The pipeline
 * L2-normalises the rows itself, so an implementation may return raw projections.
 *
 * <p>Called from one thread (the pipeline's encoder stage) only.
 */
public interface BatchEncoder {
  /** Embedding width E. */
  int embedDim();

  /** Input resolution R: images arrive as {@code ClipPreprocessor(R)} tensors. */
  int imageSize();

  /** A short name for job.json, e.g. "ViT-B/32". */
  default String name() {
    return getClass().getSimpleName();
  }

  /**
   * @param pixels {@code count × 3 × R × R} float32, CHW per image, as {@code ClipPreprocessor} writes them
   * @param out receives {@code count × E} floats
   */
  void encodeImages(float[] pixels, int count, float[] out);

  /** @param out receives {@code texts.size() × E} floats */
  void encodeTexts(List<String> texts, float[] out);
}
