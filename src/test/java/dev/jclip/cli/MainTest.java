package dev.jclip.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

class MainTest {
  private static String run(String... args) {
    CommandLine cl = Main.commandLine();
    StringWriter out = new StringWriter();
    cl.setOut(new PrintWriter(out));
    assertEquals(0, cl.execute(args));
    return out.toString();
  }

  @Test
  void versionNamesJclipAndJava() {
    String v = run("--version");
    assertTrue(v.startsWith("jclip "), v);
    assertTrue(v.contains("Java 25"), v);
    // every subcommand's -V says the same (picocli printed nothing for them)
    for (String sub : new String[] {"classify", "tokenize", "download", "inspect", "bench", "embed"}) assertEquals(v, run(sub, "-V"), sub);
    assertEquals(v, run("bench", "tokenizer", "-V"));
  }

  @Test
  void helpListsEverySubcommand() {
    String help = run("--help");
    for (String sub : Main.commandLine().getSubcommands().keySet()) {
      assertTrue(help.contains(sub), "help lacks " + sub + ":\n" + help);
    }
  }

  /** A misspelt precision list is a usage error naming the option and the value, before any device is touched. */
  @Test
  void gpuInfoRefusesAnUnknownBenchPrecision() {
    CliRun.Result r = CliRun.run(Main.commandLine(), "gpu-info", "--model-bench", "--precisions", "fp16,fp61");
    assertEquals(2, r.code(), r.out() + r.err());
    assertTrue(r.err().contains("--precisions") && r.err().contains("fp61"), r.err());
    assertTrue(!r.out().contains("CUDA"), "touched the driver: " + r.out());
  }

  /** A failed write to standard output (Java's print streams keep it to themselves) makes a successful command exit 1, with a line on stderr. */
  @org.junit.jupiter.api.Test
  void aFailedWriteToStandardOutputIsAnError() {
    java.io.ByteArrayOutputStream err = new java.io.ByteArrayOutputStream();
    java.io.PrintStream e = new java.io.PrintStream(err, true, java.nio.charset.StandardCharsets.UTF_8);
    org.junit.jupiter.api.Assertions.assertEquals(0, Main.outputChecked(0, false, e));
    org.junit.jupiter.api.Assertions.assertEquals(0, err.size());
    org.junit.jupiter.api.Assertions.assertEquals(1, Main.outputChecked(0, true, e));
    org.junit.jupiter.api.Assertions.assertTrue(err.toString(java.nio.charset.StandardCharsets.UTF_8).contains("writing standard output failed"));
    org.junit.jupiter.api.Assertions.assertEquals(2, Main.outputChecked(2, true, e));
  }

  /** A real process whose stdout is /dev/full: exit 1 and the line on stderr. */
  @org.junit.jupiter.api.Test
  void aCommandPrintingIntoAFullDiskExitsOne() throws Exception {
    org.junit.jupiter.api.Assumptions.assumeTrue(java.nio.file.Files.exists(java.nio.file.Path.of("/dev/full")), "no /dev/full here");
    Process p = new ProcessBuilder(dev.jclip.io.AtomicFileTest.java(), "-cp", System.getProperty("java.class.path"), Main.class.getName(), "--version")
        .redirectOutput(new java.io.File("/dev/full")).redirectError(ProcessBuilder.Redirect.PIPE).start();
    String err = new String(p.getErrorStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
    org.junit.jupiter.api.Assertions.assertTrue(p.waitFor(60, java.util.concurrent.TimeUnit.SECONDS));
    org.junit.jupiter.api.Assertions.assertEquals(1, p.exitValue(), err);
    org.junit.jupiter.api.Assertions.assertTrue(err.contains("writing standard output failed"), err);
  }
}
