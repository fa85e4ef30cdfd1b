package dev.jclip.testing;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Ends a test JVM whose test waits forever in the GPU driver, so that the GPU bundle's run goes on
 * to its next class after {@code jclip.test.hangSeconds} instead of after the class's whole time
 * limit (scripts/gpu-run.sh). A kernel whose barrier never completes (a named barrier with the wrong
 * thread count waits forever; only mbarrier waits trap) leaves its stream busy for good: the test
 * thread then sits in one native call of the CUDA bindings (a synchronize, a copy, or a launch with
 * the queue full) with the same stack, and nothing in the process can end the kernel but the
 * process's end.
 *
 * <p>A daemon thread samples the test thread's stack every {@code jclip.test.hangSampleMillis}
 * (default 500). When its top frame has been a native method of a class named {@code
 * jclip.test.hangFrames} (default {@code org.bytedeco.cuda.}, the CUDA bindings; loading a module
 * or a kernel left out: the driver may take a minute to compile PTX) with the whole stack unchanged for {@code
 * jclip.test.hangSeconds}, it prints the test, the frame and the stack, appends a line {@code
 * class#method TAB seconds TAB frame} to {@code jclip.test.hangFile} (if set), and halts the JVM
 * with exit status {@value #EXIT_STATUS}. {@code run.sh} reads the file and runs the class again
 * without the hung test, if time is left.
 *
 * <p>Off unless {@code jclip.test.hangSeconds} is above 0. Registered by JUnit's extension
 * autodetection ({@code junit.jupiter.extensions.autodetection.enabled=true}, which run.sh passes;
 * META-INF/services in the test resources), so it watches every test class of the JVM.
 */
public final class HangGuard implements BeforeAllCallback, BeforeEachCallback, AfterEachCallback, AfterAllCallback {
  /** The test JVM's exit status when a hang ended it. */
  public static final int EXIT_STATUS = 86;

  private static final Object LOCK = new Object();
  private static Thread watcher;
  /** The thread running tests, and what it runs ("class#method", or "class (before all)"). */
  private static volatile Thread testThread;
  private static volatile String current = "";

  @Override
  public void beforeAll(ExtensionContext context) {
    if (seconds() <= 0) return;
    watch(Thread.currentThread(), context.getRequiredTestClass().getName() + " (before all)");
  }

  @Override
  public void beforeEach(ExtensionContext context) {
    if (seconds() <= 0) return;
    watch(Thread.currentThread(), context.getRequiredTestClass().getName() + "#" + context.getRequiredTestMethod().getName());
  }

  @Override
  public void afterEach(ExtensionContext context) {
    if (seconds() <= 0) return;
    current = context.getRequiredTestClass().getName() + " (after each)";
  }

  @Override
  public void afterAll(ExtensionContext context) {
    if (seconds() <= 0) return;
    current = context.getRequiredTestClass().getName() + " (after all)";
  }

  private static double seconds() {
    String s = System.getProperty("jclip.test.hangSeconds", "0").trim();
    try {
      return Double.parseDouble(s);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("jclip.test.hangSeconds must be a number of seconds, not \"" + s + "\"", e);
    }
  }

  private static void watch(Thread thread, String what) {
    testThread = thread;
    current = what;
    synchronized (LOCK) {
      if (watcher != null) return;
      long limitNanos = (long) (seconds() * 1e9);
      long sampleMillis = Long.getLong("jclip.test.hangSampleMillis", 500);
      String frames = System.getProperty("jclip.test.hangFrames", "org.bytedeco.cuda.");
      String file = System.getProperty("jclip.test.hangFile", "");
      watcher = new Thread(() -> loop(limitNanos, sampleMillis, frames, file), "jclip-hang-guard");
      watcher.setDaemon(true);
      watcher.start();
    }
  }

  private static void loop(long limitNanos, long sampleMillis, String frames, String file) {
    StackTraceElement[] last = null;
    String lastTest = null;
    long since = 0;
    while (true) {
      try {
        Thread.sleep(sampleMillis);
      } catch (InterruptedException e) {
        return;
      }
      Thread t = testThread;
      if (t == null) continue;
      String test = current;
      StackTraceElement[] stack = t.getStackTrace();
      if (!stuckFrame(stack, frames)) {
        last = null;
        continue;
      }
      long now = System.nanoTime();
      if (last == null || !Arrays.equals(stack, last) || !test.equals(lastTest)) {
        last = stack;
        lastTest = test;
        since = now;
        continue;
      }
      if (now - since >= limitNanos) {
        report(test, (now - since) / 1e9, stack, file);
        Runtime.getRuntime().halt(EXIT_STATUS);
      }
    }
  }

  /**
   * Whether a stack is one a hung kernel leaves: its top frame a native method of a class whose name
   * starts with {@code frames}, other than loading a module (the driver compiling PTX).
   */
  static boolean stuckFrame(StackTraceElement[] stack, String frames) {
    if (stack.length == 0) return false;
    StackTraceElement top = stack[0];
    if (!top.isNativeMethod() || !top.getClassName().startsWith(frames)) return false;
    String m = top.getMethodName();
    return !m.startsWith("cuModuleLoad") && !m.startsWith("cuModuleGetFunction") && !m.startsWith("cuLink") && !m.startsWith("cuLibraryLoad");
  }

  private static void report(String test, double seconds, StackTraceElement[] stack, String file) {
    String frame = stack[0].getClassName() + "." + stack[0].getMethodName();
    StringBuilder b = new StringBuilder();
    b.append(String.format("[hang] %s has waited in %s for %.0f s with the same stack: a kernel that never finishes"
        + " (a barrier waiting forever?). Halting this JVM (exit %d) so that the run goes on.%n", test, frame, seconds, EXIT_STATUS));
    for (StackTraceElement e : stack) b.append("[hang]     at ").append(e).append('\n');
    for (PrintStream out : new PrintStream[] {System.out, System.err}) {
      out.print(b);
      out.flush();
    }
    if (!file.isEmpty()) {
      try {
        Files.writeString(Path.of(file), test + "\t" + String.format("%.0f", seconds) + "\t" + frame + "\n", StandardCharsets.UTF_8,
            StandardOpenOption.CREATE, StandardOpenOption.APPEND);
      } catch (IOException e) {
        System.err.println("[hang] cannot write " + file + ": " + e.getMessage());
      }
    }
  }
}
