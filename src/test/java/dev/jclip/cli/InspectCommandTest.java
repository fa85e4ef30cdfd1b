package dev.jclip.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jclip.testing.Reference;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class InspectCommandTest {
  @TempDir Path tmp;

  private static CliRun.Result run(String... args) {
    return CliRun.run(Main.commandLine(), args);
  }

  @Test
  void printsFormatArchitectureParametersDtypesAndSha() throws IOException {
    try (var dirs = Files.list(Reference.dir().resolve("models"))) {
      for (Path dir : dirs.filter(Files::isDirectory).sorted().toList()) {
        JsonNode m = new ObjectMapper().readTree(dir.resolve("manifest.json").toFile());
        for (String file : new String[] {"state_dict.pt", "openai-jit.pt"}) {
          CliRun.Result r = run("inspect", dir.resolve(file).toString());
          assertEquals(0, r.code(), r.err());
          assertTrue(r.out().contains(m.get("files").get(file).get("sha256").asText()), r.out());
          assertTrue(r.out().contains("architecture: " + m.get("architecture").asText()), r.out());
          long params = 0;
          int f16 = 0;
          for (JsonNode t : m.get("weights_state_dict")) {
            long n = 1;
            for (JsonNode d : t.get("shape")) n *= d.asLong();
            params += n;
            if (t.get("dtype").asText().equals("float16")) f16++;
          }
          assertTrue(r.out().contains(String.format(Locale.ROOT, "parameters:   %,d in %d tensors", params, m.get("weights_state_dict").size())), r.out());
          assertTrue(r.out().contains(String.format(Locale.ROOT, "dtype F16     %,d tensors", f16)), r.out());
          assertTrue(r.out().contains(file.equals("state_dict.pt") ? "PyTorch zip" : "TorchScript"), r.out());
          assertTrue(r.out().contains("activation:   quick_gelu"), r.out());
        }
        if (Files.isDirectory(dir.resolve("hf"))) {
          CliRun.Result r = run("inspect", dir.resolve("hf").toString());
          assertEquals(0, r.code(), r.err());
          assertTrue(r.out().contains(m.get("files").get("hf/model.safetensors").get("sha256").asText() + "  model.safetensors"), r.out());
          assertTrue(r.out().contains("format:       HuggingFace folder") && r.out().contains("architecture: ViT"), r.out());
          assertTrue(r.out().contains("activation:   quick_gelu (hidden_act in"), r.out());
        }
      }
    }
    CliRun.Result g = run("inspect", "--activation", "gelu", Reference.file("models/vit-b32-tiny/state_dict.pt").toString());
    assertTrue(g.out().contains("activation:   gelu (override)"), g.out());
  }

  @Test
  void brokenFileGivesOneLineErrorAndCodeOne() throws IOException {
    Path junk = Files.writeString(tmp.resolve("junk.pt"), "definitely not a checkpoint");
    CliRun.Result r = run("inspect", junk.toString());
    assertEquals(1, r.code());
    assertTrue(r.err().startsWith("jclip inspect: " + junk + ": "), r.err());
    assertEquals(2, run("inspect", "--activation", "relu", junk.toString()).code());
  }
}
