package dev.jclip.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code jclip} command: {@code scripts/jclip --help} lists the subcommands. */
@Command(
    name = "jclip",
    mixinStandardHelpOptions = true,
    versionProvider = Main.Version.class,
    description = "OpenAI CLIP on the JVM: tokenize, preprocess, embed and classify.",
    subcommands = {
      CommandLine.HelpCommand.class,
      GpuInfoCommand.class,
      PreprocessCommand.class,
      InspectCommand.class,
      DownloadCommand.class,
      TokenizeCommand.class,
      BenchCommand.class,
      EmbedCommand.class,
      ZeroShotCommand.class,
      ClassifyCommand.class,
      EmbedImagesCommand.class,
      EmbedTextsCommand.class,
    })
public final class Main implements Runnable {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    spec.commandLine().usage(System.out);
  }

  public static void main(String[] args) {
    CommandLine cl = commandLine();
    System.exit(outputChecked(cl.execute(args), cl.getOut().checkError() | System.out.checkError(), System.err));
  }

  /**
   * A command's exit code, made 1 where writing standard output failed (a full disk, a closed
   * pipe: Java's print streams keep such errors to themselves), with a line on stderr saying so.
   */
  static int outputChecked(int rc, boolean outputFailed, java.io.PrintStream err) {
    if (!outputFailed) return rc;
    err.println("jclip: writing standard output failed (a full disk, or a closed pipe?): the output is incomplete");
    err.flush();
    return rc == 0 ? 1 : rc;
  }

  /** The configured command line, also used by tests to run subcommands in-process. */
  public static CommandLine commandLine() {
    CommandLine cl = new CommandLine(new Main()).setCaseInsensitiveEnumValuesAllowed(true);
    versions(cl);
    return cl;
  }

  /** Every subcommand's {@code -V} prints jclip's version too (picocli gives a subcommand none of its own). */
  private static void versions(CommandLine cl) {
    for (CommandLine sub : cl.getSubcommands().values()) {
      if (sub.getCommandSpec().version().length == 0) sub.getCommandSpec().versionProvider(new Version());
      versions(sub);
    }
  }

  /** The version from the jar manifest (or "dev" when run from classes). */
  public static String version() {
    String v = Main.class.getPackage().getImplementationVersion();
    return v == null ? "dev" : v;
  }

  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
      return new String[] {
        "jclip " + version(),
        "Java " + Runtime.version() + " (" + System.getProperty("java.vm.name") + ")",
      };
    }
  }
}
