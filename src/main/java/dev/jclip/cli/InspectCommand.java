package dev.jclip.cli;

import dev.jclip.io.Checkpoint;
import dev.jclip.io.DType;
import dev.jclip.io.Downloader;
import dev.jclip.io.ModelRegistry;
import dev.jclip.io.Tensor;
import dev.jclip.model.Activation;
import dev.jclip.model.ClipConfig;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.EnumMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code jclip inspect MODEL}: what a checkpoint holds, without running it. */
@Command(
    name = "inspect",
    mixinStandardHelpOptions = true,
    description = {
      "Show a checkpoint's format, inferred CLIP architecture, parameter count, dtypes and SHA-256.",
      "MODEL is a .pt/.pth/.bin file (torch.save or TorchScript, e.g. OpenAI's ViT-B-32.pt), a .safetensors file,"
          + " a HuggingFace CLIPModel or open_clip folder, or a registered model name (jclip download --list)."
    })
public final class InspectCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Parameters(paramLabel = "MODEL", description = "checkpoint file, HuggingFace folder, or a registered name (ViT-B/32: downloaded if not cached)")
  String model;

  @Option(
      names = "--activation",
      paramLabel = "ACT",
      description = "override the activation: quick_gelu or gelu (open_clip models without -quickgelu use gelu)")
  String activation;

  @Option(names = "--no-sha256", description = "skip hashing the weight files (large checkpoints)")
  boolean noSha;

  @Override
  public Integer call() throws IOException {
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    Activation override = null;
    if (activation != null) {
      try {
        override = Activation.parse(activation);
      } catch (IllegalArgumentException e) {
        err.println("jclip inspect: " + e.getMessage());
        return 2;
      }
    }
    try (Checkpoint ck = Checkpoint.open(Downloader.defaults(System.err).resolve(model))) {
      out.println("path:         " + ck.path());
      out.println("format:       " + ck.formatDescription());
      out.println("naming:       " + ck.naming().name().toLowerCase(Locale.ROOT).replace('_', ' ') + " tensor names (mapped to OpenAI's state-dict keys)");
      if (!noSha) {
        for (Path f : ck.files()) out.println("sha256:       " + dev.jclip.io.Downloader.sha256(f) + (f.equals(ck.path()) ? "" : "  " + f.getFileName()));
      }
      long params = ck.parameterCount();
      out.printf(Locale.ROOT, "parameters:   %,d in %d tensors%n", params, ck.tensors().size());
      Map<DType, long[]> hist = new EnumMap<>(DType.class);
      for (Tensor t : ck.tensors().values()) {
        long[] h = hist.computeIfAbsent(t.dtype(), d -> new long[3]);
        h[0]++;
        h[1] += t.numel();
        h[2] += t.byteSize();
      }
      for (var e : hist.entrySet()) {
        out.printf(Locale.ROOT, "dtype %-6s  %,d tensors, %,d parameters, %,d bytes%n", e.getKey(), e.getValue()[0], e.getValue()[1], e.getValue()[2]);
      }
      if (!ck.extras().isEmpty()) out.println("extras:       " + String.join(", ", ck.extras().keySet()) + " (not weights)");
      ClipConfig cfg = ClipConfig.infer(ck);
      if (override != null) cfg = cfg.withActivation(override);
      out.println("architecture: " + cfg.architecture().referenceName());
      out.println("config:       " + cfg.summary());
      out.println("constructor:  " + cfg.constructorArgs());
      out.println("vision heads: " + cfg.visionHeads());
      out.println("activation:   " + cfg.activation().hfName() + " (" + cfg.activationSource() + ")");
      out.flush();
      return 0;
    } catch (IOException e) {
      out.flush();
      err.println("jclip inspect: " + e.getMessage());
      err.flush();
      return 1;
    }
  }
}
