package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Runs without a GPU: the committed PTX must match the kernel sources (stamped hash, and a fresh
 * nvcc compile where nvcc is installed) and be accepted by {@code ptxas -arch=sm_90}.
 */
class PtxBuildTest {
  @Test
  void committedPtxMatchesSourcesAndAssembles() throws IOException, InterruptedException {
    Path root = Path.of("").toAbsolutePath();
    Path script = root.resolve("scripts/build-ptx.sh");
    assertTrue(Files.isRegularFile(script), "missing " + script);
    Process p = new ProcessBuilder("bash", script.toString(), "--check").redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(5, TimeUnit.MINUTES), "build-ptx.sh --check did not finish");
    System.out.print(out);
    assertEquals(0, p.exitValue(), "build-ptx.sh --check failed:\n" + out);
    try (var kernels = Files.list(root.resolve("cuda-kernels"))) {
      List<Path> cu = kernels.filter(f -> f.toString().endsWith(".cu")).toList();
      assertTrue(!cu.isEmpty(), "no kernels found");
      for (Path f : cu) {
        String name = f.getFileName().toString().replace(".cu", "");
        assertTrue(out.contains("OK      " + name + ".ptx"), "no OK line for " + name + ":\n" + out);
      }
    }
  }
}
