package dev.jclip.cli;

import dev.jclip.api.Clip;
import java.io.IOException;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** The options every model command shares: which model, vocabulary, device, precision and threads. */
final class ModelOptions {
  @Option(names = "--model", required = true, paramLabel = "MODEL",
      description = "An OpenAI name (ViT-B/32, RN50, ...; downloaded when missing), a .pt or .safetensors file, or a HuggingFace folder.")
  String model;

  @Option(names = "--vocab", paramLabel = "FILE",
      description = "bpe_simple_vocab_16e6.txt.gz or a folder with vocab.json and merges.txt (default: the model folder's, $JCLIP_VOCAB, the cache).")
  Path vocab;

  @Option(names = "--device", paramLabel = "DEVICE", defaultValue = "auto",
      description = "auto (the GPU when one works, else the CPU; says which), cpu, cuda or cuda:N; embed also takes cuda:all"
          + " (one model per GPU) (default: ${DEFAULT-VALUE}).")
  String device;

  /** The command these options belong to (embed alone takes cuda:all). */
  @picocli.CommandLine.Spec(picocli.CommandLine.Spec.Target.MIXEE) picocli.CommandLine.Model.CommandSpec command;

  @Option(names = "--precision", paramLabel = "P", defaultValue = "fp32",
      description = "fp32 (reference parity, any device), bf16 (GPU, or a CPU with AVX-512 BF16 / AMX), fp16 (GPU) (default: ${DEFAULT-VALUE}).")
  String precision;

  @Option(names = "--threads", paramLabel = "N", description = "CPU threads (default: all processors).")
  Integer threads;

  @Option(names = "--activation", paramLabel = "ACT",
      description = "The MLPs' activation instead of the checkpoint's: quick_gelu or gelu (default: its config.json or open_clip_config.json,"
          + " else OpenAI's quick_gelu; open_clip's models trained without -quickgelu, LAION's among them, need gelu when loaded from a bare state dict).")
  String activation;

  /**
   * What is wrong with the device, precision, threads or activation given, or null: the commands
   * check it before they load anything, and exit 2 (a usage error) on it, as on their own options.
   */
  String invalid() {
    try {
      dev.jclip.backend.DeviceSpec d = dev.jclip.backend.DeviceSpec.parse(device);
      dev.jclip.backend.Precision p = dev.jclip.backend.Precision.parse(precision);
      if (d.kind() == dev.jclip.backend.DeviceSpec.Kind.CUDA_ALL && (command == null || !command.name().equals("embed"))) {
        return "--device cuda:all runs one model per GPU in jclip embed only; here, pick one GPU (cuda:N)";
      }
      if (d.kind() == dev.jclip.backend.DeviceSpec.Kind.CPU && p == dev.jclip.backend.Precision.FP16) {
        return "--precision fp16 runs on a GPU only; with --device cpu, give fp32 or bf16";
      }
      Clip.Options o = Clip.Options.defaults().withActivation(activation);
      if (threads != null) o.withThreads(threads);
      return null;
    } catch (IllegalArgumentException e) {
      return e.getMessage();
    }
  }

  /**
   * What is wrong with a command's output file {@code out} and its optional second output {@code
   * other} (given as {@code otherOption}, null for none), or null: a folder, a folder that does not
   * exist, or both naming one file. The model commands check it before they load anything, and
   * exit 2 on it.
   */
  static String outputsInvalid(Path out, String outOption, Path other, String otherOption) {
    try {
      Path target = dev.jclip.io.AtomicFile.resolveTarget(out);
      if (other != null && dev.jclip.io.AtomicFile.resolveTarget(other).equals(target)) return otherOption + " and " + outOption + " name the same file: " + out;
      return null;
    } catch (IOException e) {
      String m = String.valueOf(e.getMessage());
      return "cannot write " + (m.startsWith(out.toString()) ? m : out + ": " + m);
    }
  }

  Clip load(int batchSize) throws IOException {
    return load(batchSize, device);
  }

  /** The model on {@code onDevice} instead of {@code --device} (one model per GPU). */
  Clip load(int batchSize, String onDevice) throws IOException {
    Clip.Options o = Clip.Options.defaults().withDevice(onDevice).withPrecision(precision).withVocabulary(vocab).withBatchSize(batchSize)
        .withActivation(activation);
    if (threads != null) o = o.withThreads(threads);
    return Clip.load(model, o);
  }
}
