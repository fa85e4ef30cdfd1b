package dev.jclip.api;

import dev.jclip.pipeline.BatchEncoder;
import java.util.List;

/**
 * A {@link Clip} as the model of a batch job ({@link dev.jclip.pipeline.EmbedJob}): images arrive
 * preprocessed, texts are tokenized with truncation (a caption longer than 77 tokens is cut, as
 * clip-retrieval does), features come back unnormalised (the job normalises them).
 */
public final class ClipBatchEncoder implements BatchEncoder {
  private final Clip clip;
  private final String name;

  public ClipBatchEncoder(Clip clip, String name) {
    this.clip = clip;
    this.name = name;
  }

  @Override
  public int embedDim() {
    return clip.config().embedDim();
  }

  @Override
  public int imageSize() {
    return clip.config().imageResolution();
  }

  @Override
  public String precision() {
    return clip.options().precision().toLowerCase(java.util.Locale.ROOT);
  }

  @Override
  public String name() {
    return name;
  }

  @Override
  public void encodeImages(float[] pixels, int count, float[] out) {
    checkOut(count, out);
    copy(clip.encodeImage(pixels(pixels, count)), out);
  }

  /**
   * {@link Clip#submitImage}: on a GPU the batch computes after this returns (its pixels already
   * copied to the upload staging), on the CPU it is encoded here.
   */
  @Override
  public Pending submitImages(float[] pixels, int count, float[] out) {
    checkOut(count, out);
    return pending(clip.submitImage(pixels(pixels, count)), out);
  }

  /** {@link Clip#submitText} of the texts tokenized with truncation, as {@link #encodeTexts}. */
  @Override
  public Pending submitTexts(List<String> texts, float[] out) {
    checkOut(texts.size(), out);
    return pending(clip.submitText(clip.tokenize(texts, true)), out);
  }

  private Pending pending(Clip.Pending p, float[] out) {
    if (p.isDone()) { // the CPU: encoded when submitted
      copy(p.finish(), out);
      return Pending.DONE;
    }
    return new Pending() {
      @Override
      public void finish() {
        copy(p.finish(), out);
      }

      @Override
      public void close() {
        p.close();
      }
    };
  }

  /** {@code out} must hold {@code rows} features: refused before any work, naming the sizes. */
  private void checkOut(int rows, float[] out) {
    long need = (long) rows * embedDim();
    if (out.length < need) throw new IllegalArgumentException("out holds " + out.length + " floats; " + rows + " features of " + embedDim() + " need " + need);
  }

  private Clip.Pixels pixels(float[] pixels, int count) {
    int per = 3 * imageSize() * imageSize();
    if (count < 0 || (long) count * per > pixels.length) {
      throw new IllegalArgumentException(count + " images of " + imageSize() + " px need " + (long) count * per + " floats; pixels holds " + pixels.length);
    }
    float[] data = pixels;
    if (pixels.length != count * per) { // a pooled buffer holds more than this batch
      data = new float[count * per];
      System.arraycopy(pixels, 0, data, 0, data.length);
    }
    return new Clip.Pixels(count, imageSize(), data);
  }

  @Override
  public void encodeTexts(List<String> texts, float[] out) {
    checkOut(texts.size(), out);
    copy(clip.encodeText(clip.tokenize(texts, true)), out);
  }

  private void copy(float[][] rows, float[] out) {
    int e = embedDim();
    for (int i = 0; i < rows.length; i++) System.arraycopy(rows[i], 0, out, i * e, e);
  }
}
