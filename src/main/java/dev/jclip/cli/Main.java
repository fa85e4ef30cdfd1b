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
    System.exit(commandLine().execute(args));
  }

  /** The configured command line, also used by tests to run subcommands in-process. */
  public static CommandLine commandLine() {
    return new CommandLine(new Main()).setCaseInsensitiveEnumValuesAllowed(true);
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
