package dev.jclip.pipeline;

/**
 * Whether the batch jobs' pixel buffers ({@code buffers} batches of {@code batch} images of
 * {@code resolution} px, float32, allocated when the job starts) fit: each in one Java array, and
 * all of them in half of the heap's maximum (the model and the decoders need the rest). Checked
 * with the smallest CLIP resolution (224) before a model loads, and again with the model's own.
 */
public final class BatchBuffers {
  private BatchBuffers() {}

  /** The smallest input resolution of the CLIP models, for a check before the model is known. */
  public static final int SMALLEST_RESOLUTION = 224;

  /**
   * @return null when they fit, else why not and the largest batch size that would (the option's
   *     message)
   */
  public static String tooLarge(int batch, int resolution, int buffers) {
    long perImage = 3L * resolution * resolution;
    long heap = Runtime.getRuntime().maxMemory();
    long fitArray = (Integer.MAX_VALUE - 8) / perImage;
    long fitHeap = heap / 2 / (4 * perImage * buffers);
    long most = Math.max(1, Math.min(fitArray, fitHeap));
    if (batch <= most) return null;
    long mib = 4 * perImage * batch * buffers >> 20;
    return "--batch-size " + batch + ": " + buffers + " batches of " + batch + " images of " + resolution + " px in flight take " + mib
        + " MiB, more than " + (batch > fitArray ? "a Java array holds (2 GiB each)" : "half of the Java heap's " + (heap >> 20) + " MiB")
        + "; give at most " + most + (batch > fitArray ? "" : ", or a larger heap (-Xmx, in JCLIP_JAVA_OPTS for scripts/jclip)");
  }
}
