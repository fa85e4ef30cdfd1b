package dev.jclip.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

class DownloadCommandTest {
  @TempDir Path tmp;

  @Test
  void listsModelsAndRefusesUnknownNames() {
    CommandLine cl = Main.commandLine();
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    cl.setOut(new PrintWriter(out));
    cl.setErr(new PrintWriter(err));
    assertEquals(0, cl.execute("download", "--list", "--cache", tmp.toString()));
    for (String n : new String[] {"RN50x64", "ViT-L/14@336px", "openai/clip-vit-base-patch32"}) assertTrue(out.toString().contains(n), out.toString());
    assertEquals(1, cl.execute("download", "--cache", tmp.toString(), "ViT-Z/99"));
    assertTrue(err.toString().contains("'ViT-Z/99' is not a registered model"), err.toString());
  }
}
