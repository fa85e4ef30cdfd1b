package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The GPU bundle's run.sh (scripts/gpu-run.sh) names every test class tagged "cuda" in its list,
 * which runs them one JVM each within their own time limits, most important first; a class it
 * does not name runs only in the short catch-all stage at the end, if time is left.
 */
class GpuRunTestListTest {
  @Test
  void runShListsEveryCudaTestClass() throws IOException {
    Path root = Path.of("").toAbsolutePath();
    String script = Files.readString(root.resolve("scripts/gpu-run.sh"));
    Matcher m = Pattern.compile("classes=\"\\$\\{JCLIP_TESTS:-([A-Za-z0-9,]+)}\"").matcher(script);
    assertTrue(m.find(), "scripts/gpu-run.sh has no classes=\"${JCLIP_TESTS:-...}\" list");
    List<String> listed = List.of(m.group(1).split(","));
    List<String> missing = new ArrayList<>();
    try (Stream<Path> files = Files.list(root.resolve("src/test/java/dev/jclip/backend/cuda"))) {
      for (Path f : files.sorted().toList()) {
        String name = f.getFileName().toString();
        if (!name.endsWith(".java")) continue;
        String cls = name.substring(0, name.length() - ".java".length());
        if (Files.readString(f).contains("@Tag(\"cuda\")") && !listed.contains(cls)) missing.add(cls);
      }
    }
    assertTrue(missing.isEmpty(), "tagged cuda but not in scripts/gpu-run.sh's class list: " + missing);
  }
}
