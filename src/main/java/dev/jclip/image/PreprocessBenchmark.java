package dev.jclip.image;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;

/**
 * Single-thread throughput of CLIP preprocessing (images per second per core), to compare with
 * Pillow + torchvision on the same machine and images ({@code scripts/bench-preprocess-pillow.py}
 * measures the other side the same way).
 *
 * <pre>
 * java [-Djclip.jpeg=native|java] [-Djclip.png=auto|java|imageio] -cp target/jclip.jar dev.jclip.image.PreprocessBenchmark [--size 224] [--rounds 7] FILE_OR_DIR...
 * </pre>
 *
 * Each round processes every image once: end to end (read + decode + resize + crop + normalise
 * into a batch buffer), and separately decode only and transform only (from decoded images). The
 * first rounds are warm-up; the report gives the median and the spread (min..max) of the measured
 * rounds. {@code --jpeg-draft} decodes JPEGs at reduced scale ({@link
 * ImageDecoder#withJpegDraft} at the {@code --size}), as Pillow after {@code draft("RGB", (R, R))}.
 */
public final class PreprocessBenchmark {
  private PreprocessBenchmark() {}

  public static void main(String[] args) throws IOException {
    int size = 224;
    int rounds = 7;
    int warmup = 3;
    boolean draft = false;
    List<Path> files = new ArrayList<>();
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--size" -> size = Integer.parseInt(args[++i]);
        case "--rounds" -> rounds = Integer.parseInt(args[++i]);
        case "--warmup" -> warmup = Integer.parseInt(args[++i]);
        case "--jpeg-draft" -> draft = true;
        default -> {
          Path p = Path.of(args[i]);
          if (Files.isDirectory(p)) {
            try (Stream<Path> s = Files.walk(p)) {
              s.filter(Files::isRegularFile).filter(PreprocessBenchmark::isImage).sorted().forEach(files::add);
            }
          } else {
            files.add(p);
          }
        }
      }
    }
    if (files.isEmpty()) {
      System.err.println("usage: PreprocessBenchmark [--size R] [--rounds N] [--warmup N] [--jpeg-draft] FILE_OR_DIR...");
      System.exit(2);
    }
    ImageDecoder decoder = new ImageDecoder().withJpegDraft(draft ? size : 0);
    ClipPreprocessor pre = new ClipPreprocessor(size);
    float[] batch = new float[pre.floatsPerImage()];
    long pixels = 0;
    List<DecodedImage> decoded = new ArrayList<>();
    for (Path f : files) {
      DecodedImage im = decoder.decode(f);
      decoded.add(im);
      pixels += (long) im.width() * im.height();
    }
    System.out.printf(
        Locale.ROOT,
        "%d images, %.1f megapixels in all, R=%d, %d warm-up + %d measured rounds, 1 thread (%s), JPEG path %s, PNG path %s%n",
        files.size(),
        pixels / 1e6,
        size,
        warmup,
        rounds,
        Runtime.version(),
        decoder.jpegCodec() + (draft ? " (draft " + size + ")" : ""),
        decoder.pngCodec() + (decoder.pngCodec() == ImageDecoder.PngCodec.AUTO && NativeDeflate.get() != null ? " (libdeflate)" : ""));
    double[] e2e = new double[rounds];
    double[] dec = new double[rounds];
    double[] tr = new double[rounds];
    for (int r = -warmup; r < rounds; r++) {
      long t0 = System.nanoTime();
      for (Path f : files) pre.toTensor(decoder.decode(f), batch, 0);
      long t1 = System.nanoTime();
      for (Path f : files) decoder.decode(f);
      long t2 = System.nanoTime();
      for (DecodedImage im : decoded) pre.toTensor(im, batch, 0);
      long t3 = System.nanoTime();
      if (r >= 0) {
        e2e[r] = files.size() / ((t1 - t0) / 1e9);
        dec[r] = files.size() / ((t2 - t1) / 1e9);
        tr[r] = files.size() / ((t3 - t2) / 1e9);
      }
    }
    report("end to end (decode + transform)", e2e, files.size(), pixels);
    report("decode only", dec, files.size(), pixels);
    report("transform only (resize, crop, normalise)", tr, files.size(), pixels);
  }

  private static void report(String what, double[] ips, int n, long pixels) {
    double[] s = ips.clone();
    Arrays.sort(s);
    double med = s[s.length / 2];
    System.out.printf(
        Locale.ROOT,
        "%-42s %8.1f images/s per core (min %.1f, max %.1f), %.1f input MP/s%n",
        what,
        med,
        s[0],
        s[s.length - 1],
        med * pixels / n / 1e6);
  }

  private static boolean isImage(Path p) {
    String n = p.getFileName().toString().toLowerCase(Locale.ROOT);
    return n.endsWith(".jpg") || n.endsWith(".jpeg") || n.endsWith(".png") || n.endsWith(".gif") || n.endsWith(".bmp") || n.endsWith(".webp")
        || n.endsWith(".tif") || n.endsWith(".tiff");
  }
}
