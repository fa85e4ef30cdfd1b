package dev.jclip.pipeline;

import java.nio.file.Path;

/** Runs an embedding job in a child JVM so that a test can kill it with SIGKILL. */
public final class EmbedJobChildMain {
  private EmbedJobChildMain() {}

  /** Args: input output batchSize shardSize sleepMillisPerBatch */
  public static void main(String[] args) throws Exception {
    EmbedJob.run(EmbedJobTest.options(args[0], Path.of(args[1]), Integer.parseInt(args[2]), Integer.parseInt(args[3])),
        new TestEncoder(EmbedJobTest.R, Long.parseLong(args[4])));
  }
}
