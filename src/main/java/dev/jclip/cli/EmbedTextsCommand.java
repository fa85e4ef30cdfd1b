package dev.jclip.cli;

import dev.jclip.api.Clip;
import dev.jclip.io.DType;
import dev.jclip.io.NpyWriter;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code jclip embed-texts}: texts as JSON Lines on standard input (one JSON string a line), float32
 * [N, E] embeddings in input order, L2-normalised unless {@code --no-normalize}.
 *
 * <pre>
 * printf '"a dog"\n"a cat"\n' | scripts/jclip embed-texts --model ViT-B/32 --out texts.npy
 * </pre>
 */
@Command(name = "embed-texts", mixinStandardHelpOptions = true, description = "Embed texts (JSON Lines on standard input) into a .npy file (float32 [N, E]).")
public final class EmbedTextsCommand implements Callable<Integer> {
  @Mixin ModelOptions model;

  @Option(names = "--batch-size", paramLabel = "N", description = "Texts per forward pass (default: the device's, 256 on a GPU, 32 on the CPU).")
  Integer batchSize;

  @Option(names = "--no-normalize", description = "Write encode_text as is, without L2 normalisation.")
  boolean noNormalize;

  @Option(names = "--truncate", description = "Cut texts longer than the context instead of failing (clip.tokenize(truncate=True)).")
  boolean truncate;

  @Option(names = "--progress", paramLabel = "MODE", defaultValue = "auto",
      description = "auto (a bar on a terminal, lines every 10 s otherwise), bar, lines or none (default: ${DEFAULT-VALUE}).")
  String progress;

  /** Milliseconds between progress reports (a test shortens it). */
  long progressIntervalMillis = 10_000;

  @Option(names = "--out", required = true, paramLabel = "FILE.npy", description = "Output file.")
  Path out;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  /** Standard input; tests replace it. */
  InputStream in = System.in;

  @Override
  public Integer call() {
    PrintWriter err = spec.commandLine().getErr();
    String invalid = model.invalid();
    if (invalid != null) {
      err.println("jclip embed-texts: " + invalid);
      err.flush();
      return 2;
    }
    if (batchSize != null && batchSize < 1) {
      err.println("jclip embed-texts: --batch-size must be at least 1, got " + batchSize);
      err.flush();
      return 2;
    }
    String badOut = ModelOptions.outputsInvalid(out, "--out", null, null);
    if (badOut != null) {
      err.println("jclip embed-texts: " + badOut);
      err.flush();
      return 2;
    }
    dev.jclip.pipeline.Progress.Mode mode;
    try {
      mode = dev.jclip.pipeline.Progress.mode(progress);
    } catch (IllegalArgumentException e) {
      err.println("jclip embed-texts: " + e.getMessage());
      err.flush();
      return 2;
    }
    String closed = JsonTextLines.closedStdin(in);
    if (closed != null) {
      err.println("jclip embed-texts: " + closed);
      err.flush();
      return 1;
    }
    try (Clip clip = model.load(batchSize != null ? batchSize : Clip.Options.DEVICE_BATCH);
        NpyWriter npy = NpyWriter.create(out, DType.F32, clip.config().embedDim());
        ProgressTicker ticker = new ProgressTicker(mode, err, -1, "jclip embed-texts", progressIntervalMillis)) {
      JsonTextLines lines = new JsonTextLines(in);
      List<String> batch = new ArrayList<>();
      int written = 0, per = clip.batchSize();
      for (String raw; ; ) {
        raw = lines.next();
        if (raw != null) {
          if (!truncate && clip.tokenizer().isTooLong(raw, clip.config().contextLength())) {
            throw new IllegalArgumentException("stdin line " + lines.lineNo() + ": text is too long for context length " + clip.config().contextLength()
                + "; use --truncate to cut it");
          }
          batch.add(raw);
        }
        if (batch.size() == per || (raw == null && !batch.isEmpty())) {
          float[][] f = clip.encodeText(clip.tokenize(batch, truncate));
          for (float[] row : f) {
            npy.writeRow(noNormalize ? row : normalized(row));
            ticker.progress.advance(false);
          }
          written += f.length;
          batch.clear();
        }
        if (raw == null) break;
      }
      ticker.close();
      npy.finish();
      err.println("jclip embed-texts: wrote " + written + " x " + clip.config().embedDim() + " to " + out);
      err.flush();
      return 0;
    } catch (IOException | IllegalArgumentException | IllegalStateException e) {
      err.println("jclip embed-texts: " + e.getMessage());
      err.flush();
      return 1;
    }
  }

  /** {@code x / ‖x‖₂}, as {@link dev.jclip.api.Clip#normalize} computes it (a zero row stays zero). */
  static float[] normalized(float[] x) {
    return dev.jclip.api.Clip.normalize(new float[][] {x})[0];
  }
}
