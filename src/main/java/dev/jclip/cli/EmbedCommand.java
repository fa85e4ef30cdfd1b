package dev.jclip.cli;

import dev.jclip.api.Clip;
import dev.jclip.api.ClipBatchEncoder;
import dev.jclip.backend.DeviceSpec;
import dev.jclip.pipeline.BatchEncoder;
import dev.jclip.io.Downloader;
import dev.jclip.pipeline.EmbedJob;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code jclip embed}: a batch embedding job in clip-retrieval's layout (img_emb/, text_emb/,
 * metadata/, errors.jsonl, job.json), resumable: re-running the same command skips finished
 * shards. See docs/pipeline.md.
 */
@Command(name = "embed", mixinStandardHelpOptions = true,
    description = {
      "Embed a folder, a list of paths, a CSV/JSONL/Parquet table (image path and optional caption columns) or webdataset .tar shards",
      "into clip-retrieval's layout under DIR; resumable (re-run the same command after an interruption)."
    })
public final class EmbedCommand implements Callable<Integer> {
  @Mixin ModelOptions model;

  @Option(names = "--input", required = true, paramLabel = "SOURCE",
      description = "A folder of images (recursive), a .txt of paths, a .csv, .jsonl or .parquet table, or .tar shards (dir/{00000..00009}.tar).")
  String input;

  @Option(names = "--output", required = true, paramLabel = "DIR", description = "Output folder.")
  Path output;

  @Option(names = "--batch-size", paramLabel = "N", defaultValue = "256", description = "Images per forward pass (default: ${DEFAULT-VALUE}).")
  int batchSize;

  @Option(names = "--workers", paramLabel = "N", description = "Decoding threads (default: all processors).")
  Integer workers;

  @Option(names = "--shard-size", paramLabel = "N", defaultValue = "100000", description = "Inputs per output shard (default: ${DEFAULT-VALUE}).")
  int shardSize;

  @Option(names = "--dtype", paramLabel = "T", defaultValue = "float16", description = "float16 or float32 embeddings (default: ${DEFAULT-VALUE}).")
  String dtype;

  @Option(names = "--image-column", paramLabel = "NAME", description = "Table column with the image path (default: the first of image_path, filepath, path, ...).")
  String imageColumn;

  @Option(names = "--caption-column", paramLabel = "NAME", description = "Table column with the caption (default: caption, when present).")
  String captionColumn;

  @Option(names = "--retry-skipped", description = "When resuming, compute again the finished shards that skipped inputs (errors.jsonl)"
      + " and replace them once done; otherwise what a run skipped stays skipped.")
  boolean retrySkipped;

  @Mixin DecodeOptions decode;

  @Option(names = "--progress", paramLabel = "MODE", defaultValue = "auto", description = "auto, bar, lines or none (default: ${DEFAULT-VALUE}).")
  String progress;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() throws Exception {
    PrintWriter err = spec.commandLine().getErr();
    String invalid = model.invalid() != null ? model.invalid() : decode.invalid();
    if (invalid != null) {
      err.println("jclip embed: " + invalid);
      err.flush();
      return 2;
    }
    EmbedJob.Options o;
    try {
      o = new EmbedJob.Options().input(input).output(output).batchSize(batchSize).shardSize(shardSize).dtype(EmbedJob.Dtype.parse(dtype))
          .precision(model.precision).activation(model.activation).progress(progress, 10_000).jpegDraft(decode.jpegDraft).maxPixels(decode.maxPixels)
          .retrySkipped(retrySkipped).log(err, "jclip embed");
      if (workers != null) o = o.workers(workers);
      if (imageColumn != null) o = o.imageColumn(imageColumn);
      if (captionColumn != null) o = o.captionColumn(captionColumn);
      EmbedJob.checkOutputFolder(output); // before the model loads (the job checks again)
      String tooLarge = EmbedJob.batchTooLargeBeforeLoad(o); // an option's error: exit 2 (the job checks again with the model's resolution)
      if (tooLarge != null) throw new IllegalArgumentException(tooLarge);
    } catch (IllegalArgumentException e) {
      err.println("jclip embed: " + e.getMessage());
      err.flush();
      return 2;
    }
    o = o.model(model.model, null); // the name now, for the check below; its SHA-256 once loaded
    try {
      EmbedJob.precheck(o); // before a long model load: the input, the output folder, its lock, a resumed job's options
    } catch (IOException | IllegalArgumentException | IllegalStateException e) {
      err.println("jclip embed: " + e.getMessage());
      err.flush();
      return 1; // as when the job itself finds these
    }
    List<Clip> clips = new ArrayList<>();
    try {
      // --device cuda:all: one model per GPU, each taking the next batch; otherwise one model
      List<String> devices = new ArrayList<>();
      if (DeviceSpec.parse(model.device).kind() == DeviceSpec.Kind.CUDA_ALL) {
        for (DeviceSpec d : DeviceSpec.parse(model.device).resolve(err::println)) devices.add(d.toString());
      } else {
        devices.add(model.device);
      }
      List<BatchEncoder> encoders = new ArrayList<>();
      for (String d : devices) {
        Clip clip = model.load(batchSize, d);
        clips.add(clip);
        encoders.add(new ClipBatchEncoder(clip, model.model));
        err.println("jclip embed: " + clip.describe());
      }
      Path file = clips.get(0).modelPath();
      String sha = file != null && Files.isRegularFile(file) ? Downloader.sha256(file) : null;
      o = o.model(model.model, sha);
      // --activation naming the checkpoint's own is no override: the job records and compares it as not set
      dev.jclip.model.Activation own = clips.get(0).checkpointActivation();
      if (model.activation != null && dev.jclip.model.Activation.parse(model.activation) == own) o = o.activation(null);
      o = o.checkpointActivation(own.hfName());
      err.flush();
      EmbedJob.Result r = EmbedJob.run(o, encoders);
      err.printf("jclip embed: %s, %d embedded, %d skipped%s, %s (%d already done)%n", Words.count(r.items(), "input"), r.embedded(),
          r.errors(), r.errors() > 0 ? " (errors.jsonl)" : "", Words.count(r.shards(), "shard"), r.shardsSkipped());
      if (r.items() == 0) err.println("jclip embed: warning: " + input + " holds no inputs");
      err.flush();
      if (r.items() > 0 && r.errors() == r.items()) {
        err.println("jclip embed: nothing was embedded: every input was skipped (errors.jsonl in " + output + " says why; a run into a new"
            + " output folder tries them again" + (retrySkipped ? ")" : ", and so does a resume with --retry-skipped)"));
        err.flush();
        return 1;
      }
      return 0;
    } catch (IOException | IllegalArgumentException | IllegalStateException e) {
      err.println("jclip embed: " + e.getMessage());
      err.flush();
      return 1;
    } finally {
      for (Clip c : clips) c.close();
    }
  }
}
