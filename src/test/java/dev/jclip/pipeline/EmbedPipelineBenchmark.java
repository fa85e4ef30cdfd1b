package dev.jclip.pipeline;

import java.awt.image.BufferedImage;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import javax.imageio.ImageIO;

/**
 * How many real-size JPEGs per second the pipeline can feed a model (decode + preprocess +
 * write, with an encoder that does nothing): the ceiling that the model's throughput is compared
 * against. Not a unit test; run with
 * {@code java -cp target/classes:target/test-classes:$(cat cp.txt) dev.jclip.pipeline.EmbedPipelineBenchmark [images] [workers]}.
 */
public final class EmbedPipelineBenchmark {
  private EmbedPipelineBenchmark() {}

  public static void main(String[] args) throws Exception {
    int n = args.length > 0 ? Integer.parseInt(args[0]) : 40;
    int workers = args.length > 1 ? Integer.parseInt(args[1]) : Runtime.getRuntime().availableProcessors();
    Path dir = Files.createTempDirectory("jclip-embed-bench");
    SplittableRandom rnd = new SplittableRandom(1);
    long pixels = 0;
    for (int i = 0; i < n; i++) {
      double mp = 1 + 11 * rnd.nextDouble(); // 1 to 12 megapixels, 4:3 or 3:4
      int w = (int) Math.sqrt(mp * 1e6 * 4 / 3);
      int h = (int) (mp * 1e6 / w);
      if (rnd.nextBoolean()) {
        int t = w;
        w = h;
        h = t;
      }
      BufferedImage im = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
      int[] row = new int[w];
      for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) row[x] = ((x * 255 / w) << 16) | ((y * 255 / h) << 8) | ((x ^ y) & 0xff) ^ rnd.nextInt(16);
        im.setRGB(0, y, w, 1, row, 0, w);
      }
      ImageIO.write(im, "jpg", dir.resolve(String.format("img_%04d.jpg", i)).toFile());
      pixels += (long) w * h;
    }
    BatchEncoder nothing =
        new BatchEncoder() {
          @Override
          public int embedDim() {
            return 512;
          }

          @Override
          public int imageSize() {
            return 224;
          }

          @Override
          public void encodeImages(float[] pixels, int count, float[] out) {
            for (int i = 0; i < count; i++) out[i * 512] = pixels[i * 3 * 224 * 224];
          }

          @Override
          public void encodeTexts(List<String> texts, float[] out) {}
        };
    for (int run = 0; run < 2; run++) { // the first run warms up the JIT
      Path out = dir.resolve("out" + run);
      EmbedJob.Result r =
          EmbedJob.run(
              new EmbedJob.Options().input(dir.toString()).output(out).batchSize(16).workers(workers).progress("none", 1000)
                  .log(new PrintStream(java.io.OutputStream.nullOutputStream())),
              nothing);
      double wall = r.timings().get("wall_s");
      System.out.printf(
          Locale.ROOT,
          "run %d: %d JPEGs (%.1f MP mean), %d workers: %.2f images/s, %.1f MP/s; decode %.2f s CPU, preprocess %.2f s CPU, write %.2f s, wall %.2f s%n",
          run, r.embedded(), pixels / 1e6 / n, workers, r.embedded() / wall, pixels / 1e6 / wall,
          r.timings().get("decode_cpu_s"), r.timings().get("preprocess_cpu_s"), r.timings().get("write_s"), wall);
    }
  }
}
