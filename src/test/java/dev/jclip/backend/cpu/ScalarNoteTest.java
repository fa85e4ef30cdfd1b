package dev.jclip.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.Precision;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * A JVM started without {@code --add-modules jdk.incubator.vector} (a library user's plain {@code
 * java -cp}) runs the scalar kernels, several times slower: the first CPU backend says so where its
 * opener says (stderr, or Clip.Options.withMessages), once per JVM, with the flags to add; a JVM
 * with the module says nothing.
 */
class ScalarNoteTest {
  /** Makes two CPU backends and prints whether they run the vector kernels. */
  public static final class Child {
    public static void main(String[] args) {
      for (int i = 0; i < 2; i++) {
        // as Clip.load opens it, its notes going where Clip.Options.withMessages says
        try (CpuBackend b = (CpuBackend) dev.jclip.backend.Backends.open(dev.jclip.backend.DeviceSpec.parse("cpu"), Precision.FP32, 1,
            m -> System.out.println("said: " + m))) {
          System.out.println("vectorized=" + b.vectorized());
        }
      }
    }
  }

  private static String run(boolean module) throws Exception {
    java.util.List<String> cmd = new java.util.ArrayList<>(java.util.List.of(dev.jclip.io.AtomicFileTest.java(), "--enable-native-access=ALL-UNNAMED"));
    if (module) cmd.addAll(java.util.List.of("--add-modules", "jdk.incubator.vector"));
    cmd.addAll(java.util.List.of("-cp", System.getProperty("java.class.path"), Child.class.getName()));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(120, TimeUnit.SECONDS), "the child JVM ran past 120 s");
    assertEquals(0, p.exitValue(), out);
    return out;
  }

  @Test
  void scalarKernelsAreSaidOnceAndNamedTheFlag() throws Exception {
    String without = run(false);
    assertTrue(without.contains("vectorized=false"), without);
    assertEquals(1, without.split(java.util.regex.Pattern.quote(CpuBackend.SCALAR_NOTE), -1).length - 1, without);
    assertTrue(without.contains("said: " + CpuBackend.SCALAR_NOTE), "the note goes where the caller says: " + without);
    assertTrue(CpuBackend.SCALAR_NOTE.contains("--add-modules jdk.incubator.vector"));
    String with = run(true);
    assertTrue(with.contains("vectorized=true") && !with.contains("scalar kernels"), with);
  }
}
