package dev.jclip.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code jclip bench}: benchmarks, one subcommand per component. */
@Command(
    name = "bench",
    mixinStandardHelpOptions = true,
    description = "Benchmarks: warm-up, then the median and spread of repeated runs.",
    subcommands = {BenchTokenizerCommand.class})
public final class BenchCommand implements Runnable {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    spec.commandLine().usage(spec.commandLine().getOut());
  }
}
