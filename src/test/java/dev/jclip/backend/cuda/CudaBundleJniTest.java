package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.bytedeco.javacpp.annotation.Properties;
import org.junit.jupiter.api.Test;

/**
 * The GPU bundle's jar keeps only the CUDA preset's JNI libraries that jclip loads (scripts/gpu-bundle.sh,
 * {@code JNI_KEEP}). No GPU needed: every {@code org.bytedeco.cuda.<preset>} the main and test code
 * names, with the presets each inherits (JavaCPP loads those first), must have its {@code
 * libjni<preset>.so} in that list, so that using another CUDA library cannot leave the GPU machine
 * without its JNI library.
 */
class CudaBundleJniTest {
  private static final Pattern USE = Pattern.compile("org\\.bytedeco\\.cuda\\.(?:global\\.)?([a-z][a-z0-9_]*)\\b");

  @Test
  void theBundleKeepsTheJniLibraryOfEveryCudaPresetTheCodeUses() throws Exception {
    String script = Files.readString(Path.of("scripts/gpu-bundle.sh"), StandardCharsets.UTF_8);
    Matcher keepLine = Pattern.compile("(?m)^JNI_KEEP=\"([^\"]*)\"$").matcher(script);
    assertTrue(keepLine.find(), "scripts/gpu-bundle.sh has no JNI_KEEP=\"...\" line");
    Set<String> keep = new TreeSet<>(java.util.List.of(keepLine.group(1).trim().split("\\s+")));

    Set<String> used = new TreeSet<>();
    for (String root : new String[] {"src/main/java", "src/test/java"}) {
      try (Stream<Path> files = Files.walk(Path.of(root))) {
        for (Path f : (Iterable<Path>) files.filter(p -> p.toString().endsWith(".java"))::iterator) {
          Matcher m = USE.matcher(read(f));
          while (m.find()) if (!m.group(1).equals("presets") && !m.group(1).equals("global")) used.add(m.group(1));
        }
      }
    }
    assertTrue(used.containsAll(Set.of("cudart", "cublas")), "the scan found no use of cudart and cublas: " + used);

    // each used preset and what it inherits, as JavaCPP loads them
    Set<String> needed = new TreeSet<>();
    Deque<String> todo = new ArrayDeque<>(used);
    while (!todo.isEmpty()) {
      String preset = todo.pop();
      if (!needed.add("libjni" + preset + ".so")) continue;
      Properties p = Class.forName("org.bytedeco.cuda.presets." + preset).getAnnotation(Properties.class);
      assertTrue(p != null, "org.bytedeco.cuda.presets." + preset + " has no @Properties");
      for (Class<?> parent : p.inherit()) {
        if (parent.getName().startsWith("org.bytedeco.cuda.presets.")) todo.push(parent.getSimpleName());
      }
    }
    assertEquals(needed, keep, "scripts/gpu-bundle.sh's JNI_KEEP must name exactly the CUDA JNI libraries jclip loads (presets used: " + used + ")");
  }

  private static String read(Path f) {
    try {
      return Files.readString(f, StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }
}
