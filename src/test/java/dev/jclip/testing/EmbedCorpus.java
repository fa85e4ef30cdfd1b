package dev.jclip.testing;

import dev.jclip.io.SafetensorsWriter;
import dev.jclip.model.ClipConfig;
import dev.jclip.model.RandomWeights;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import javax.imageio.IIOImage;
import javax.imageio.ImageIO;
import javax.imageio.ImageWriteParam;
import javax.imageio.ImageWriter;
import javax.imageio.stream.ImageOutputStream;

/**
 * Makes what an {@code embed} benchmark needs on a machine that has no corpus and no model (the
 * GPU machine; scripts/gpu-run.sh): a random full-geometry model as safetensors, and a folder of
 * synthetic JPEGs at given sizes. The pictures are smooth colour fields with shapes and sensor-like
 * noise, written at quality 90, so that they cost a JPEG decoder about what photographs of the
 * same size do (a few bits per pixel), not what flat or white-noise images would.
 *
 * <p>Usage: {@code EmbedCorpus OUT_DIR MODEL COUNT:WIDTHxHEIGHT[,COUNT:WIDTHxHEIGHT...]}, e.g.
 * {@code EmbedCorpus /tmp/corpus ViT-B/32 300:4000x3000,300:1280x960}: writes
 * {@code OUT_DIR/model.safetensors} (skipped when MODEL is "-") and {@code OUT_DIR/photos/*.jpg}.
 */
public final class EmbedCorpus {
  private EmbedCorpus() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 3) {
      System.err.println("usage: EmbedCorpus OUT_DIR MODEL|- COUNT:WIDTHxHEIGHT[,...]");
      System.exit(2);
    }
    Path out = Path.of(args[0]);
    Path photos = out.resolve("photos");
    Files.createDirectories(photos);
    long t0 = System.nanoTime();
    if (!args[1].equals("-")) {
      ClipConfig cfg = RandomWeights.config(args[1]);
      SafetensorsWriter.write(out.resolve("model.safetensors"), new ArrayList<>(RandomWeights.generate(cfg, 1).values()), Map.of());
      System.out.printf("[corpus] random %s written to %s in %.1f s%n", args[1], out.resolve("model.safetensors"), (System.nanoTime() - t0) / 1e9);
    }
    List<int[]> sizes = new ArrayList<>();
    for (String part : args[2].split(",")) {
      String[] cw = part.split(":");
      String[] wh = cw[1].split("x");
      for (int i = Integer.parseInt(cw[0]); i > 0; i--) sizes.add(new int[] {Integer.parseInt(wh[0]), Integer.parseInt(wh[1])});
    }
    long t1 = System.nanoTime();
    ExecutorService pool = Executors.newFixedThreadPool(Runtime.getRuntime().availableProcessors());
    List<Future<Long>> done = new ArrayList<>();
    for (int i = 0; i < sizes.size(); i++) {
      int index = i;
      int[] wh = sizes.get(i);
      done.add(pool.submit(() -> write(photos.resolve(String.format("img_%06d.jpg", index)), wh[0], wh[1], new Random(index))));
    }
    long bytes = 0, pixels = 0;
    for (int i = 0; i < done.size(); i++) {
      bytes += done.get(i).get();
      pixels += (long) sizes.get(i)[0] * sizes.get(i)[1];
    }
    pool.shutdown();
    System.out.printf("[corpus] %d JPEGs, %.1f MP on average, %.2f bits per pixel, in %.1f s%n", sizes.size(), pixels / 1e6 / sizes.size(),
        8.0 * bytes / pixels, (System.nanoTime() - t1) / 1e9);
  }

  /** Writes one picture and returns its size in bytes. */
  static long write(Path file, int w, int h, Random r) throws IOException {
    BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
    int[] row = new int[w];
    // two colour gradients, a few soft discs, noise
    float[] c0 = {r.nextFloat() * 255, r.nextFloat() * 255, r.nextFloat() * 255};
    float[] c1 = {r.nextFloat() * 255, r.nextFloat() * 255, r.nextFloat() * 255};
    int discs = 6;
    float[][] d = new float[discs][];
    for (int i = 0; i < discs; i++) {
      d[i] = new float[] {r.nextFloat() * w, r.nextFloat() * h, (0.05f + 0.2f * r.nextFloat()) * Math.min(w, h), r.nextFloat() * 255,
          r.nextFloat() * 255, r.nextFloat() * 255};
    }
    for (int y = 0; y < h; y++) {
      float fy = (float) y / h;
      for (int x = 0; x < w; x++) {
        float fx = (float) x / w, t = 0.5f * (fx + fy);
        float cr = c0[0] + (c1[0] - c0[0]) * t, cg = c0[1] + (c1[1] - c0[1]) * t, cb = c0[2] + (c1[2] - c0[2]) * t;
        for (float[] disc : d) {
          float dx = x - disc[0], dy = y - disc[1];
          if (dx * dx + dy * dy < disc[2] * disc[2]) {
            cr = disc[3];
            cg = disc[4];
            cb = disc[5];
          }
        }
        // fine texture: noise plus a high-frequency pattern, as foliage or fabric give
        float tex = 12 * (float) Math.sin(0.9 * x + 1.3 * y) * (float) Math.sin(0.23 * x - 0.31 * y);
        row[x] = (clamp(cr + tex + (float) r.nextGaussian() * 7) << 16) | (clamp(cg + tex + (float) r.nextGaussian() * 7) << 8)
            | clamp(cb + tex + (float) r.nextGaussian() * 7);
      }
      img.setRGB(0, y, w, 1, row, 0, w);
    }
    ImageWriter writer = ImageIO.getImageWritersByFormatName("jpeg").next();
    try (java.io.OutputStream fo = Files.newOutputStream(file);
        ImageOutputStream os = ImageIO.createImageOutputStream(fo)) {
      writer.setOutput(os);
      ImageWriteParam p = writer.getDefaultWriteParam();
      p.setCompressionMode(ImageWriteParam.MODE_EXPLICIT);
      p.setCompressionQuality(0.9f);
      writer.write(null, new IIOImage(img, null, null), p);
    } finally {
      writer.dispose();
    }
    return Files.size(file);
  }

  private static int clamp(float v) {
    return Math.max(0, Math.min(255, Math.round(v)));
  }
}
