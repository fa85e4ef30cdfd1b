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
  }

  @Test
  void helpListsEverySubcommand() {
    String help = run("--help");
    for (String sub : Main.commandLine().getSubcommands().keySet()) {
      assertTrue(help.contains(sub), "help lacks " + sub + ":\n" + help);
    }
  }
}
