package dev.jclip.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.testing.Reference;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PromptsTest {
  @Test
  void expandsClassByClass() {
    assertEquals(List.of("a cat.", "art of cat", "a dog.", "art of dog"), Prompts.expand(List.of("cat", "dog"), List.of("a {}.", "art of {}")));
  }

  @Test
  void readsJsonAndPlainLists(@TempDir Path dir) throws IOException {
    Files.writeString(dir.resolve("a.txt"), "tench\n\n goldfish \r\n");
    assertEquals(List.of("tench", "goldfish"), Prompts.readList(dir.resolve("a.txt")));
    Files.writeString(dir.resolve("b.json"), "[\"a {}\", \"b {}\"]");
    assertEquals(List.of("a {}", "b {}"), Prompts.readList(dir.resolve("b.json")));
    Files.writeString(dir.resolve("c.json"), "[1, {");
    var e = assertThrows(IOException.class, () -> Prompts.readList(dir.resolve("c.json")));
    assertTrue(e.getMessage().contains("c.json"), e.getMessage());
    assertThrows(IOException.class, () -> Prompts.readList(dir.resolve("missing.txt")));
  }

  @Test
  void imagenetSetHas80TemplatesPerClass() throws IOException {
    Path z = Reference.dir().resolve("zeroshot");
    List<String> classes = Prompts.readList(z.resolve("imagenet_classes.json"));
    List<String> templates = Prompts.readList(z.resolve("imagenet_templates.json"));
    assertEquals(80, templates.size());
    List<String> all = Prompts.expand(classes, templates);
    assertEquals(classes.size() * 80, all.size());
    assertEquals(templates.get(0).replace("{}", classes.get(0)), all.get(0));
  }
}
