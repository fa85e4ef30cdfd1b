package dev.jclip.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.platform.launcher.Launcher;
import org.junit.platform.launcher.LauncherDiscoveryRequest;
import org.junit.platform.launcher.MethodFilter;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;
import org.junit.platform.launcher.listeners.SummaryGeneratingListener;
import org.junit.platform.launcher.listeners.TestExecutionSummary;

/**
 * {@link HangGuard}: a test that waits forever in a watched native call ends its JVM with the
 * guard's exit status and names itself in the hang file, and the name it writes, quoted as run.sh
 * quotes it for the console launcher's {@code --exclude-methodname}, leaves exactly that test out
 * of the next run.
 */
class HangGuardTest {
  private static final String FIXTURE = "dev.jclip.backend.cuda.HangGuardFixture";

  @Test
  void onlyANativeCallOfTheWatchedBindingsCounts() {
    String cuda = "org.bytedeco.cuda.global.cudart";
    assertTrue(HangGuard.stuckFrame(stack(cuda, "cuStreamSynchronize", true), "org.bytedeco.cuda."));
    assertTrue(HangGuard.stuckFrame(stack(cuda, "cuMemcpyDtoH_v2", true), "org.bytedeco.cuda."));
    assertFalse(HangGuard.stuckFrame(stack(cuda, "cuModuleLoadData", true), "org.bytedeco.cuda."), "the driver compiling PTX");
    assertFalse(HangGuard.stuckFrame(stack("jdk.internal.misc.Unsafe", "park", true), "org.bytedeco.cuda."), "a thread waiting for the CPU's workers");
    assertFalse(HangGuard.stuckFrame(stack(cuda, "someJavaHelper", false), "org.bytedeco.cuda."), "Java code, not a native call");
    assertFalse(HangGuard.stuckFrame(new StackTraceElement[0], "org.bytedeco.cuda."));
  }

  private static StackTraceElement[] stack(String cls, String method, boolean nativeMethod) {
    return new StackTraceElement[] {
      new StackTraceElement(cls, method, null, nativeMethod ? -2 : 10), new StackTraceElement("dev.jclip.X", "run", "X.java", 5)
    };
  }

  @Test
  void aHungTestEndsItsJvmAndIsLeftOutOfTheNextRun(@TempDir Path dir) throws Exception {
    Path hangFile = dir.resolve("fixture.hung");
    Child first = child(hangFile, List.of());
    assertEquals(HangGuard.EXIT_STATUS, first.status, "the guard's exit status; output:\n" + first.output);
    assertTrue(first.output.contains("[hang] " + FIXTURE + "#waitsForever has waited in java.lang.Thread.sleepNanos0"), first.output);
    List<String> lines = Files.readAllLines(hangFile, StandardCharsets.UTF_8);
    assertEquals(1, lines.size(), lines.toString());
    String[] fields = lines.get(0).split("\t");
    assertEquals(FIXTURE + "#waitsForever", fields[0]);
    assertEquals("java.lang.Thread.sleepNanos0", fields[2]);
    assertTrue(Double.parseDouble(fields[1]) >= 1, lines.get(0));

    Child second = child(dir.resolve("again.hung"), List.of(Pattern.quote(fields[0])));
    assertEquals(0, second.status, second.output);
    assertTrue(second.output.contains("tests succeeded: 2, failed: 0"), second.output);
    assertFalse(Files.exists(dir.resolve("again.hung")));
  }

  @Test
  void offByDefault(@TempDir Path dir) throws Exception {
    // no hangSeconds: the fixture's short test runs, nothing is watched
    Child c = run(List.of("-Djclip.test.hangFile=" + dir.resolve("x.hung")), List.of());
    assertEquals(0, c.status, c.output);
    assertTrue(c.output.contains("tests succeeded: 3, failed: 0"), c.output);
  }

  private record Child(int status, String output) {}

  private static Child child(Path hangFile, List<String> excluded) throws IOException, InterruptedException {
    return run(List.of("-Djclip.test.hangFixture=true", "-Djclip.test.hangSeconds=1", "-Djclip.test.hangSampleMillis=100",
        "-Djclip.test.hangFrames=java.lang.Thread", "-Djclip.test.hangFile=" + hangFile), excluded);
  }

  private static Child run(List<String> props, List<String> excluded) throws IOException, InterruptedException {
    List<String> cmd = new ArrayList<>(List.of(dev.jclip.io.AtomicFileTest.java()));
    cmd.addAll(props);
    cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), ChildMain.class.getName()));
    cmd.addAll(excluded);
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    if (!p.waitFor(120, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new AssertionError("the child JVM did not end within 120 s: the guard did not halt it");
    }
    return new Child(p.exitValue(), new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8));
  }

  /** The child JVM: the fixture class through the launcher, with extension autodetection on as run.sh sets it. */
  public static final class ChildMain {
    public static void main(String[] excludedPatterns) {
      LauncherDiscoveryRequestBuilder request = LauncherDiscoveryRequestBuilder.request()
          .selectors(selectClass(FIXTURE))
          .configurationParameter("junit.jupiter.extensions.autodetection.enabled", "true");
      if (excludedPatterns.length > 0) request.filters(MethodFilter.excludeMethodNamePatterns(excludedPatterns));
      LauncherDiscoveryRequest r = request.build();
      Launcher launcher = LauncherFactory.create();
      SummaryGeneratingListener listener = new SummaryGeneratingListener();
      launcher.execute(r, listener);
      TestExecutionSummary s = listener.getSummary();
      System.out.println("tests succeeded: " + s.getTestsSucceededCount() + ", failed: " + s.getTestsFailedCount());
      s.getFailures().forEach(f -> f.getException().printStackTrace(System.out));
      System.exit(s.getTotalFailureCount() == 0 ? 0 : 1);
    }
  }
}
