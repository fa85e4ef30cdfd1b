package dev.jclip.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jclip.api.Clip;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code jclip classify}: the reference README's example. Prints {@code Label probs: [[...]]} as
 * NumPy prints the reference's probabilities, or with {@code --json} one object with the labels,
 * logits and probabilities.
 *
 * <pre>
 * scripts/jclip classify --model ViT-B/32 CLIP.png "a diagram" "a dog" "a cat"
 * Label probs: [[0.9927937  0.00421068 0.00299572]]
 * </pre>
 */
@Command(name = "classify", mixinStandardHelpOptions = true,
    description = "Zero-shot classification of one image among text labels, as the reference README's example.")
public final class ClassifyCommand implements Callable<Integer> {
  @Mixin ModelOptions model;

  @Mixin DecodeOptions decode;

  @Option(names = "--json", description = "Print {\"labels\": [...], \"logits\": [...], \"probs\": [...]} instead.")
  boolean json;

  @Option(names = "--truncate", description = "Cut labels longer than the context (77 tokens) instead of failing (clip.tokenize(truncate=True)).")
  boolean truncate;

  @Parameters(index = "0", paramLabel = "IMAGE", description = "The image file.")
  Path image;

  @Parameters(index = "1..*", arity = "1..*", paramLabel = "LABEL", description = "Texts to score, e.g. \"a dog\".")
  List<String> labels;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() throws IOException {
    PrintWriter out = spec.commandLine().getOut(), err = spec.commandLine().getErr();
    String invalid = model.invalid() != null ? model.invalid() : decode.invalid();
    if (invalid != null) {
      err.println("jclip classify: " + invalid);
      err.flush();
      return 2;
    }
    try (Clip clip = model.load(32)) {
      float[][] imageFeatures = clip.encodeImage(clip.preprocess(decode.decoder(clip.config().imageResolution()).decode(image)));
      float[][] textFeatures;
      try {
        textFeatures = clip.encodeText(clip.tokenize(labels, truncate));
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException(e.getMessage() + (truncate || !e.getMessage().contains("too long") ? "" : "; use --truncate to cut it"), e);
      }
      float[][] probs = clip.probs(imageFeatures, textFeatures);
      if (json) {
        float[][] logits = clip.logits(imageFeatures, textFeatures);
        ObjectMapper m = new ObjectMapper();
        ObjectNode o = m.createObjectNode();
        ArrayNode l = o.putArray("labels");
        labels.forEach(l::add);
        ArrayNode lg = o.putArray("logits");
        for (float v : logits[0]) lg.add(v);
        ArrayNode p = o.putArray("probs");
        for (float v : probs[0]) p.add(v);
        out.println(m.writeValueAsString(o));
      } else {
        out.println("Label probs: " + NumpyFormat.format(probs));
      }
      out.flush();
      return 0;
    } catch (IOException | IllegalArgumentException | IllegalStateException e) {
      err.println("jclip classify: " + e.getMessage());
      err.flush();
      return 1;
    }
  }
}
