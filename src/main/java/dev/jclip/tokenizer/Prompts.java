package dev.jclip.tokenizer;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Zero-shot prompts: every class name in every template ({@code "a photo of a {}."}), class by
 * class, the order benchmarks and the PyTorch peer share.
 *
 * <pre>{@code
 * List<String> texts = Prompts.expand(Prompts.readList(dir.resolve("imagenet_classes.json")),
 *                                     Prompts.readList(dir.resolve("imagenet_templates.json")));
 * }</pre>
 */
public final class Prompts {
  private Prompts() {}

  /** For each class, each template with {@code {}} replaced by the class name. */
  public static List<String> expand(List<String> classes, List<String> templates) {
    List<String> out = new ArrayList<>(classes.size() * templates.size());
    for (String c : classes) for (String t : templates) out.add(t.replace("{}", c));
    return out;
  }

  /** A list of strings from a JSON array file, or from a text file with one entry a line (blank lines skipped). */
  public static List<String> readList(Path file) throws IOException {
    if (!Files.isRegularFile(file)) throw new NoSuchFileException(file.toString(), null, "no such list file");
    String text = Files.readString(file);
    if (text.stripLeading().startsWith("[")) {
      try {
        return List.of(new ObjectMapper().readValue(text, String[].class));
      } catch (IOException e) {
        throw new IOException(file + ": not a JSON list of strings (" + e.getMessage() + ")", e);
      }
    }
    List<String> out = new ArrayList<>();
    for (String line : text.split("\\R")) if (!line.isBlank()) out.add(line.strip());
    return out;
  }
}
