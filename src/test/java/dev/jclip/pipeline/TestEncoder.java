package dev.jclip.pipeline;

import java.util.List;
import java.util.SplittableRandom;

/**
 * A deterministic stand-in for the model (honestly not CLIP): per image the mean of each channel
 * and a fixed random projection of all pixels; per text a projection of its UTF-16 code units.
 * Optional sleep per batch makes a job slow enough to be killed mid-way.
 */
final class TestEncoder implements BatchEncoder {
  static final int E = 8;
  private final int r;
  private final float[][] proj;
  private final long sleepMillis;

  TestEncoder(int r, long sleepMillis) {
    this.r = r;
    this.sleepMillis = sleepMillis;
    SplittableRandom rnd = new SplittableRandom(42);
    proj = new float[E - 3][3 * r * r];
    for (float[] p : proj) for (int i = 0; i < p.length; i++) p[i] = (float) rnd.nextGaussian();
  }

  @Override
  public int embedDim() {
    return E;
  }

  @Override
  public int imageSize() {
    return r;
  }

  @Override
  public String name() {
    return "test-projection";
  }

  @Override
  public void encodeImages(float[] pixels, int count, float[] out) {
    int f = 3 * r * r;
    int n = r * r;
    for (int b = 0; b < count; b++) {
      for (int c = 0; c < 3; c++) {
        double s = 0;
        for (int i = 0; i < n; i++) s += pixels[b * f + c * n + i];
        out[b * E + c] = (float) (s / n);
      }
      for (int k = 0; k < E - 3; k++) {
        double s = 0;
        for (int i = 0; i < f; i++) s += proj[k][i] * pixels[b * f + i];
        out[b * E + 3 + k] = (float) s;
      }
    }
    if (sleepMillis > 0) {
      try {
        Thread.sleep(sleepMillis);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  @Override
  public void encodeTexts(List<String> texts, float[] out) {
    for (int t = 0; t < texts.size(); t++) {
      String s = texts.get(t);
      for (int k = 0; k < E; k++) out[t * E + k] = 1 + k;
      for (int i = 0; i < s.length(); i++) out[t * E + (i % E)] += s.charAt(i) * (1 + i % 3);
    }
  }

  /** An encoder that answers as the test model does (its width, size and name), for tests that change how its batches run. */
  abstract static class Wrapping implements BatchEncoder {
    final TestEncoder inner;

    Wrapping(int r) {
      inner = new TestEncoder(r, 0);
    }

    @Override
    public int embedDim() {
      return inner.embedDim();
    }

    @Override
    public int imageSize() {
      return inner.imageSize();
    }

    @Override
    public String name() {
      return inner.name();
    }
  }
}
