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
  public String name() {
    return name;
  }

  @Override
  public void encodeImages(float[] pixels, int count, float[] out) {
    int per = 3 * imageSize() * imageSize();
    float[] data = pixels;
    if (pixels.length != count * per) { // a pooled buffer holds more than this batch
      data = new float[count * per];
      System.arraycopy(pixels, 0, data, 0, data.length);
    }
    copy(clip.encodeImage(new Clip.Pixels(count, imageSize(), data)), out);
  }

  @Override
  public void encodeTexts(List<String> texts, float[] out) {
    copy(clip.encodeText(clip.tokenize(texts, true)), out);
  }

  private void copy(float[][] rows, float[] out) {
    int e = embedDim();
    for (int i = 0; i < rows.length; i++) System.arraycopy(rows[i], 0, out, i * e, e);
  }
}
