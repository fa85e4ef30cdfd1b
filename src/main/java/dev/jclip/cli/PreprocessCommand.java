package dev.jclip.cli;

import dev.jclip.image.ClipPreprocessor;
import dev.jclip.image.ImageDecoder;
import dev.jclip.io.DType;
import dev.jclip.io.SafetensorsWriter;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code jclip preprocess --size R [--rgb8] --out FILE.safetensors IMAGE...}: CLIP's image
 * transform, written in the naming of the reference's preprocess.safetensors: {@code
 * <file-name>@<R>} float32 [3,R,R] and, with {@code --rgb8}, {@code <file-name>@<R>.rgb8} uint8
 * [R,R,3] (the image after resize, crop and RGB conversion).
 */
@Command(
    name = "preprocess",
    mixinStandardHelpOptions = true,
    description = {
      "Apply CLIP's image transform (Resize, CenterCrop, RGB, ToTensor, Normalize; Pillow-exact) and write the tensors to a safetensors file.",
      "Keys: <file-name>@<R> float32 [3,R,R]; with --rgb8 also <file-name>@<R>.rgb8 uint8 [R,R,3]."
    })
public final class PreprocessCommand implements Callable<Integer> {
  @Spec picocli.CommandLine.Model.CommandSpec spec;

  @Option(names = "--size", required = true, paramLabel = "R", description = "output resolution (e.g. 224, 336)")
  int size;

  @Option(names = "--rgb8", description = "also write the uint8 image before ToTensor")
  boolean rgb8;

  @Option(names = "--out", required = true, paramLabel = "FILE", description = "safetensors file to write")
  Path out;

  @Option(
      names = "--max-pixels",
      paramLabel = "N",
      description = "refuse images larger than N pixels (decompression bombs; default ${DEFAULT-VALUE})")
  long maxPixels = ImageDecoder.DEFAULT_MAX_PIXELS;

  @Option(names = "--threads", paramLabel = "N", description = "images decoded in parallel (default: the number of cores, ${DEFAULT-VALUE})")
  int threads = Runtime.getRuntime().availableProcessors();

  @Parameters(arity = "1..*", paramLabel = "IMAGE", description = "image files (JPEG, PNG, GIF, BMP, WebP, TIFF)")
  List<Path> images;

  /** The task's result, with its own exception (an ImageDecodeException naming the file) rethrown. */
  private static byte[] get(Future<byte[]> f) throws IOException {
    try {
      return f.get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted", e);
    } catch (ExecutionException e) {
      Throwable c = e.getCause();
      if (c instanceof IOException io) throw io;
      if (c instanceof RuntimeException re) throw re;
      if (c instanceof Error err) throw err;
      throw new IOException(c);
    }
  }

  @Override
  public Integer call() {
    if (size <= 0 || size > 4096) {
      spec.commandLine().getErr().println("jclip preprocess: --size must be between 1 and 4096, got " + size);
      return 2;
    }
    if (threads <= 0 || threads > dev.jclip.api.Clip.Options.MAX_THREADS) {
      spec.commandLine().getErr().println("jclip preprocess: --threads must be from 1 to " + dev.jclip.api.Clip.Options.MAX_THREADS);
      return 2;
    }
    if (maxPixels <= 0) {
      spec.commandLine().getErr().println("jclip preprocess: --max-pixels must be positive");
      return 2;
    }
    try {
      dev.jclip.io.AtomicFile.resolveTarget(out); // a folder or a missing folder fails now, not after the images
    } catch (IOException e) {
      spec.commandLine().getErr().println("jclip preprocess: --out " + e.getMessage());
      return 2;
    }
    Set<String> names = new HashSet<>();
    List<SafetensorsWriter.Spec> specs = new ArrayList<>();
    for (Path p : images) {
      String name = p.getFileName().toString();
      if (!names.add(name)) {
        spec.commandLine().getErr().println(
            "jclip preprocess: two images are named '" + name + "'; keys use the file name, so it must be unique");
        return 2;
      }
      specs.add(new SafetensorsWriter.Spec(name + "@" + size, DType.F32, new long[] {3, size, size}));
      if (rgb8) specs.add(new SafetensorsWriter.Spec(name + "@" + size + ".rgb8", DType.U8, new long[] {size, size, 3}));
    }
    Map<String, String> metadata = new LinkedHashMap<>();
    metadata.put("description", "jclip preprocess: CLIP _transform(R) outputs, keys <image>@<R> and <image>@<R>.rgb8");
    metadata.put("resolution", String.valueOf(size));
    int workers = Math.max(1, Math.min(threads, images.size()));
    ExecutorService pool = Executors.newFixedThreadPool(workers);
    // One decoder/preprocessor pair per worker thread (they keep scratch buffers).
    ThreadLocal<ClipPreprocessor> pre = ThreadLocal.withInitial(() -> new ClipPreprocessor(size));
    ImageDecoder decoder = new ImageDecoder(maxPixels);
    ClipPreprocessor normalizer = new ClipPreprocessor(size);
    float[] floats = new float[normalizer.floatsPerImage()];
    ByteBuffer fb = ByteBuffer.allocate(4 * floats.length).order(ByteOrder.LITTLE_ENDIAN);
    try (SafetensorsWriter.Stream w = SafetensorsWriter.open(out, specs, metadata)) {
      // Images are decoded in parallel, at most 2 per worker ahead of the writer, and written in
      // argument order.
      Deque<Future<byte[]>> pending = new ArrayDeque<>();
      int next = 0;
      int written = 0;
      while (written < images.size()) {
        while (next < images.size() && pending.size() < 2 * workers) {
          Path p = images.get(next++);
          pending.add(pool.submit(() -> pre.get().rgb8(decoder.decode(p))));
        }
        byte[] rgb = get(pending.removeFirst());
        normalizer.toTensor(rgb, 0, floats, 0);
        fb.clear();
        fb.asFloatBuffer().put(floats);
        w.write(fb);
        if (rgb8) w.write(ByteBuffer.wrap(rgb));
        written++;
      }
      w.finish();
    } catch (IOException | IllegalArgumentException e) {
      spec.commandLine().getErr().println("jclip preprocess: " + e.getMessage());
      return 1;
    } finally {
      pool.shutdownNow();
    }
    // beside the file on stdout, unless the file is stdout (or another device): then on stderr
    (dev.jclip.io.AtomicFile.writesInPlace(out) ? spec.commandLine().getErr() : spec.commandLine().getOut())
        .println("wrote " + images.size() + " image(s) at " + size + " to " + out);
    return 0;
  }
}
