package dev.jclip.zeroshot;

import dev.jclip.api.Clip;
import dev.jclip.tokenizer.Prompts;
import java.util.ArrayList;
import java.util.List;

/**
 * The paper's zero-shot classifier with prompt ensembling (openai/CLIP's
 * notebooks/Prompt_Engineering_for_ImageNet.ipynb): each class's embedding is the mean of its
 * L2-normalised template embeddings, normalised again; an image's class probabilities are the
 * softmax of {@code exp(logit_scale) · cos(image, class)}.
 *
 * <pre>{@code
 * ZeroShotClassifier zs = ZeroShotClassifier.build(clip, classes, templates);
 * float[][] probs = zs.probs(clip.encodeImage(clip.preprocess(Path.of("cat.jpg"))));
 * }</pre>
 */
public final class ZeroShotClassifier {
  private final Clip clip;
  private final List<String> classes;
  private final float[][] classEmbeddings;

  private ZeroShotClassifier(Clip clip, List<String> classes, float[][] classEmbeddings) {
    this.clip = clip;
    this.classes = List.copyOf(classes);
    this.classEmbeddings = classEmbeddings;
  }

  /**
   * Encodes every class in every template (templates use {@code {}} for the class name) and
   * averages each class's normalised prompt embeddings, as the paper's prompt-ensembling notebook
   * does. A prompt of more than 75 tokens is cut to its first 75 ({@code clip.tokenize(...,
   * truncate=True)}), where the notebook's {@code clip.tokenize} would refuse it.
   */
  public static ZeroShotClassifier build(Clip clip, List<String> classes, List<String> templates) {
    if (classes.isEmpty()) throw new IllegalArgumentException("no classes");
    if (templates.isEmpty()) throw new IllegalArgumentException("no templates");
    float[][] all = clip.encodeText(clip.tokenize(Prompts.expand(classes, templates), true));
    return new ZeroShotClassifier(clip, classes, ensemble(all, classes.size(), templates.size()));
  }

  /** A classifier from class embeddings computed before (one row per class, normalised). */
  public static ZeroShotClassifier of(Clip clip, List<String> classes, float[][] classEmbeddings) {
    if (classEmbeddings.length != classes.size()) {
      throw new IllegalArgumentException(classes.size() + " classes but " + classEmbeddings.length + " class embeddings");
    }
    if (classes.isEmpty()) throw new IllegalArgumentException("no classes");
    int e = clip.config().embedDim();
    for (int c = 0; c < classEmbeddings.length; c++) {
      float[] row = classEmbeddings[c];
      if (row == null || row.length != e) {
        throw new IllegalArgumentException("class embedding " + c + " (" + classes.get(c) + ") has "
            + (row == null ? "no values" : row.length + " values") + "; the model's embedding is " + e);
      }
      double norm = 0;
      for (float v : row) norm += (double) v * v;
      if (!(norm > 0) || Double.isInfinite(norm)) { // zero, NaN or infinite: every class's probability would be NaN
        throw new IllegalArgumentException("class embedding " + c + " (" + classes.get(c) + ") is " + (norm == 0 ? "all zeros" : "not finite")
            + ": it has no direction to score against");
      }
    }
    return new ZeroShotClassifier(clip, classes, classEmbeddings);
  }

  /** Mean of the normalised rows of each class's block of {@code templates} rows, normalised. */
  static float[][] ensemble(float[][] textFeatures, int classes, int templates) {
    float[][] out = new float[classes][];
    for (int c = 0; c < classes; c++) {
      int e = textFeatures[c * templates].length;
      double[] sum = new double[e];
      for (int t = 0; t < templates; t++) {
        float[] row = textFeatures[c * templates + t];
        double norm = 0;
        for (float v : row) norm += (double) v * v;
        norm = Math.sqrt(norm);
        for (int i = 0; i < e; i++) sum[i] += row[i] / norm;
      }
      double norm = 0;
      for (double v : sum) norm += v * v;
      norm = Math.sqrt(norm);
      out[c] = new float[e];
      for (int i = 0; i < e; i++) out[c][i] = (float) (sum[i] / norm);
    }
    return out;
  }

  public List<String> classes() {
    return classes;
  }

  public float[][] classEmbeddings() {
    return classEmbeddings;
  }

  /** Class probabilities [images][classes] for image features from {@code Clip.encodeImage}. */
  public float[][] probs(float[][] imageFeatures) {
    return clip.probs(imageFeatures, classEmbeddings);
  }

  /** The {@code k} most probable classes of one probability row, best first, as indices. */
  public static int[] topK(float[] probs, int k) {
    List<Integer> idx = new ArrayList<>();
    for (int i = 0; i < probs.length; i++) idx.add(i);
    idx.sort((a, b) -> Float.compare(probs[b], probs[a]) != 0 ? Float.compare(probs[b], probs[a]) : Integer.compare(a, b));
    int n = Math.min(k, probs.length);
    int[] out = new int[n];
    for (int i = 0; i < n; i++) out[i] = idx.get(i);
    return out;
  }
}
