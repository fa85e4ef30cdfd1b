package dev.jclip.cli;

import dev.jclip.api.Clip;
import dev.jclip.image.ImageDecoder;
import dev.jclip.io.AtomicFile;
import dev.jclip.io.DType;
import dev.jclip.io.NpyWriter;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code jclip embed-images}: float32 [N, E] image embeddings in argument order, L2-normalised
 * unless {@code --no-normalize} (which gives {@code encode_image} exactly). An image that cannot be
 * decoded stops the command with its name, or with {@code --skip-bad} is left out and reported;
 * {@code --ids} then writes each row's image, so that the rows can still be told apart.
 */
@Command(name = "embed-images", mixinStandardHelpOptions = true, description = "Embed images into a .npy file (float32 [N, E], argument order).")
public final class EmbedImagesCommand implements Callable<Integer> {
  @Mixin ModelOptions model;

  @Option(names = "--batch-size", paramLabel = "N", description = "Images per forward pass (default: the device's, 256 on a GPU, 32 on the CPU).")
  Integer batchSize;

  @Option(names = "--no-normalize", description = "Write encode_image as is, without L2 normalisation.")
  boolean noNormalize;

  @Option(names = "--skip-bad", description = "Leave out images that cannot be read (reported on standard error) instead of failing.")
  boolean skipBad;

  @Option(names = "--ids", paramLabel = "FILE.txt",
      description = "Also write each row's image, one a line, as given (with --skip-bad the rows skip the bad images).")
  Path ids;

  @Mixin DecodeOptions decode;

  @Option(names = "--progress", paramLabel = "MODE", defaultValue = "auto",
      description = "auto (a bar on a terminal, lines every 10 s otherwise), bar, lines or none (default: ${DEFAULT-VALUE}).")
  String progress;

  /** Milliseconds between progress reports (a test shortens it). */
  long progressIntervalMillis = 10_000;

  @Option(names = "--out", required = true, paramLabel = "FILE.npy", description = "Output file.")
  Path out;

  @Parameters(arity = "1..*", paramLabel = "IMAGE", description = "Image files.")
  List<Path> images;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() {
    PrintWriter err = spec.commandLine().getErr();
    String invalid = model.invalid() != null ? model.invalid() : decode.invalid();
    if (invalid != null) {
      err.println("jclip embed-images: " + invalid);
      err.flush();
      return 2;
    }
    if (batchSize != null && batchSize < 1) {
      err.println("jclip embed-images: --batch-size must be at least 1, got " + batchSize);
      err.flush();
      return 2;
    }
    dev.jclip.pipeline.Progress.Mode mode;
    try {
      mode = dev.jclip.pipeline.Progress.mode(progress);
    } catch (IllegalArgumentException e) {
      err.println("jclip embed-images: " + e.getMessage());
      err.flush();
      return 2;
    }
    for (Path p : images) {
      if (ids != null && (p.toString().contains("\n") || p.toString().contains("\r"))) {
        err.println("jclip embed-images: --ids writes one image a line, and '" + p.toString().replace("\n", "\\n").replace("\r", "\\r") + "' has a line break in its name");
        err.flush();
        return 2;
      }
    }
    String badOut = ModelOptions.outputsInvalid(out, "--out", ids, "--ids");
    if (badOut != null) {
      err.println("jclip embed-images: " + badOut);
      err.flush();
      return 2;
    }
    try (Clip clip = model.load(batchSize != null ? batchSize : Clip.Options.DEVICE_BATCH);
        NpyWriter npy = NpyWriter.create(out, DType.F32, clip.config().embedDim());
        AtomicFile idFile = ids == null ? null : AtomicFile.create(ids);
        ProgressTicker ticker = new ProgressTicker(mode, err, images.size(), "jclip embed-images", progressIntervalMillis)) {
      ImageDecoder decoder = decode.decoder(clip.config().imageResolution());
      List<String> skipped = new ArrayList<>();
      StringBuilder rowIds = new StringBuilder();
      int written = 0, per = clip.batchSize();
      for (int i0 = 0; i0 < images.size(); i0 += per) {
        List<Clip.Pixels> batch = new ArrayList<>();
        for (Path p : images.subList(i0, Math.min(images.size(), i0 + per))) {
          try {
            batch.add(clip.preprocess(decoder.decode(p)));
            rowIds.append(p).append('\n');
          } catch (IOException | RuntimeException e) {
            if (!skipBad) throw new IOException("cannot embed " + p + ": " + e.getMessage() + " (use --skip-bad to leave such images out)", e);
            skipped.add(p.toString());
            String why = String.valueOf(e.getMessage());
            ticker.message("jclip embed-images: skipped " + (why.startsWith(p + ": ") ? why : p + ": " + why));
            ticker.progress.advance(true);
          }
        }
        if (batch.isEmpty()) continue;
        float[][] f = clip.encodeImage(Clip.Pixels.concat(batch));
        for (float[] row : f) {
          npy.writeRow(noNormalize ? row : EmbedTextsCommand.normalized(row));
          ticker.progress.advance(false);
        }
        written += f.length;
      }
      ticker.close();
      // both written before either is moved into place: a full disk fails the pair, not the second alone
      if (idFile != null) idFile.write(java.nio.ByteBuffer.wrap(rowIds.toString().getBytes(StandardCharsets.UTF_8)));
      npy.finish();
      if (idFile != null) idFile.commit();
      if (!skipped.isEmpty() && written == 0) {
        err.println("jclip embed-images: nothing was embedded: every image was skipped; " + out + " holds 0 rows");
        err.flush();
        return 1;
      }
      if (!skipped.isEmpty()) {
        err.println("jclip embed-images: " + skipped.size() + " of " + Words.count(images.size(), "image") + " skipped"
            + (ids != null ? "; " + ids + " names each row's image" : "; the rows are the other images in order (--ids FILE names each row's image)"));
      }
      err.println("jclip embed-images: wrote " + written + " x " + clip.config().embedDim() + " to " + out);
      err.flush();
      return 0;
    } catch (IOException | IllegalArgumentException | IllegalStateException e) {
      err.println("jclip embed-images: " + e.getMessage());
      err.flush();
      return 1;
    }
  }
}
