package dev.jclip.pipeline;

import java.util.List;

/**
 * The model as the embedding pipeline sees it: batches in, embedding rows out. The pipeline
 * L2-normalises the rows itself, so an implementation may return raw projections.
 *
 * <p>Called from one thread (the pipeline's encoder stage) only. The stage keeps one batch in
 * flight: it submits batch n+1 ({@link #submitImages}, {@link #submitTexts}), then finishes batch
 * n and hands it on, so that an encoder on a GPU uploads the next batch while the current one
 * computes.
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

  /** The precision the encoder computes in ("fp32", "fp16", "bf16"), for job.json; null when it cannot say. */
  default String precision() {
    return null;
  }

  /**
   * @param pixels {@code count × 3 × R × R} float32, CHW per image, as {@code ClipPreprocessor} writes them
   * @param out receives {@code count × E} floats
   */
  void encodeImages(float[] pixels, int count, float[] out);

  /**
   * Starts {@link #encodeImages}: {@code out} is filled when the returned batch's {@link
   * Pending#finish()} returns, at the latest. {@code pixels} may be reused as soon as this returns
   * (an implementation copies what it still needs). The default encodes right here; an encoder on
   * a GPU queues the batch and returns while it computes.
   */
  default Pending submitImages(float[] pixels, int count, float[] out) {
    encodeImages(pixels, count, out);
    return Pending.DONE;
  }

  /** Starts {@link #encodeTexts}, as {@link #submitImages} starts encodeImages. */
  default Pending submitTexts(List<String> texts, float[] out) {
    encodeTexts(texts, out);
    return Pending.DONE;
  }

  /** A batch being encoded, started by {@link #submitImages} or {@link #submitTexts}. */
  interface Pending extends AutoCloseable {
    /** A batch encoded when it was submitted. */
    Pending DONE = () -> {};

    /** Waits for the batch: its {@code out} is then filled. */
    void finish();

    /** Abandons a batch that was not finished (waiting for work it still has queued); a no-op after {@link #finish()}. */
    @Override
    default void close() {}
  }

  /** @param out receives {@code texts.size() × E} floats */
  void encodeTexts(List<String> texts, float[] out);
}
