package dev.jclip.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.io.DType;
import dev.jclip.io.SafetensorsReader;
import dev.jclip.testing.Reference;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PreprocessCommandTest {
  @TempDir Path tmp;

  private static CliRun.Result run(String... args) {
    return CliRun.run(Main.commandLine(), args);
  }

  @Test
  void writesTheReferenceNamingAndValues() throws Exception {
    Path out = tmp.resolve("pre.safetensors");
    Path a = Reference.file("images/rose.jpg");
    Path b = Reference.file("images/debian-logo-256.png");
    CliRun.Result r = run("preprocess", "--size", "224", "--rgb8", "--out", out.toString(), a.toString(), b.toString());
    assertEquals(0, r.code(), r.err());
    try (SafetensorsReader got = SafetensorsReader.open(out);
        SafetensorsReader ref = SafetensorsReader.open(Reference.file("preprocess/preprocess.safetensors"))) {
      assertEquals(List.of("rose.jpg@224", "rose.jpg@224.rgb8", "debian-logo-256.png@224", "debian-logo-256.png@224.rgb8"), got.names());
      assertEquals(DType.F32, got.tensor("rose.jpg@224").dtype());
      assertArrayEquals(new long[] {3, 224, 224}, got.tensor("rose.jpg@224").shape());
      assertEquals(DType.U8, got.tensor("rose.jpg@224.rgb8").dtype());
      assertArrayEquals(new long[] {224, 224, 3}, got.tensor("rose.jpg@224.rgb8").shape());
      for (String k : got.names()) {
        if (k.endsWith(".rgb8")) {
          assertArrayEquals(ref.tensor(k).toByteArray(), got.tensor(k).toByteArray(), k);
        } else {
          float[] w = ref.tensor(k).toFloatArray();
          float[] g = got.tensor(k).toFloatArray();
          for (int i = 0; i < w.length; i++) assertEquals(w[i], g[i], 1e-5f, k);
        }
      }
    }
    Path noRgb = tmp.resolve("f.safetensors");
    assertEquals(0, run("preprocess", "--size", "336", "--out", noRgb.toString(), a.toString()).code());
    try (SafetensorsReader got = SafetensorsReader.open(noRgb)) {
      assertEquals(List.of("rose.jpg@336"), got.names());
    }
  }

  @Test
  void aBadImageFailsCleanlyAndWritesNothing() throws Exception {
    Path out = tmp.resolve("x.safetensors");
    Path text = tmp.resolve("text.jpg");
    Files.writeString(text, "hello");
    CliRun.Result r = run("preprocess", "--size", "224", "--out", out.toString(), Reference.file("images/rose.jpg").toString(), text.toString());
    assertEquals(1, r.code());
    assertTrue(r.err().contains("text.jpg") && r.err().contains("not a recognised image format"), r.err());
    assertFalse(Files.exists(out));
    try (var s = Files.list(tmp)) {
      assertEquals(1, s.count(), "no temporary file left");
    }
    r = run("preprocess", "--size", "224", "--out", out.toString(), tmp.resolve("nope.png").toString());
    assertEquals(1, r.code());
    assertTrue(r.err().contains("nope.png") && r.err().contains("no such file"), r.err());
    Path rose = Reference.file("images/rose.jpg");
    r = run("preprocess", "--size", "224", "--out", out.toString(), rose.toString(), rose.toString());
    assertEquals(2, r.code());
    assertTrue(r.err().contains("unique"), r.err());
  }

  /** {@code --out /dev/stdout}: stdout holds the safetensors file alone, byte for byte the file --out FILE writes; the summary goes to stderr. */
  @Test
  void toStandardOutputTheFileAloneGoesThere() throws Exception {
    Path file = tmp.resolve("file.safetensors"), piped = tmp.resolve("piped.safetensors");
    String image = Reference.file("images/rose.jpg").toString();
    assertEquals(0, run("preprocess", "--size", "32", "--out", file.toString(), image).code());
    Process p = new ProcessBuilder(dev.jclip.io.AtomicFileTest.java(), "-cp", System.getProperty("java.class.path"), Main.class.getName(), "preprocess",
        "--size", "32", "--out", "/dev/stdout", image).redirectOutput(piped.toFile()).redirectError(ProcessBuilder.Redirect.PIPE).start();
    String err = new String(p.getErrorStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
    assertTrue(p.waitFor(120, java.util.concurrent.TimeUnit.SECONDS));
    assertEquals(0, p.exitValue(), err);
    assertArrayEquals(Files.readAllBytes(file), Files.readAllBytes(piped));
    assertTrue(err.contains("wrote 1 image(s) at 32 to /dev/stdout"), err);
  }
}
