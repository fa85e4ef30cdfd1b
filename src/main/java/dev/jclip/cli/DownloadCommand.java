package dev.jclip.cli;

import dev.jclip.io.Downloader;
import dev.jclip.io.ModelRegistry;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code jclip download NAME...}: fetch registered checkpoints into the cache. */
@Command(
    name = "download",
    mixinStandardHelpOptions = true,
    description = {
      "Download registered checkpoints (OpenAI's nine models, HuggingFace repositories) into the cache"
          + " (~/.cache/jclip or $JCLIP_CACHE; files already in ~/.cache/clip are reused), resuming partial downloads"
          + " and verifying SHA-256. Prints each model's path.",
      "Example: jclip download ViT-B/32"
    })
public final class DownloadCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Parameters(paramLabel = "NAME", arity = "0..*", description = "model names (see --list); 'tokenizer' fetches the BPE vocabulary")
  List<String> names = List.of();

  @Option(names = "--list", description = "list the registered models and whether they are cached")
  boolean list;

  @Option(names = "--cache", paramLabel = "DIR", description = "cache folder (default ~/.cache/jclip or $JCLIP_CACHE)")
  Path cacheDir;

  /** Tests inject a downloader (local server, temp cache); null means the user's defaults. */
  Downloader downloader;

  @Override
  public Integer call() throws IOException {
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    ModelRegistry registry;
    try {
      registry = ModelRegistry.defaults();
    } catch (IOException e) {
      err.println("jclip download: " + e.getMessage());
      err.flush();
      return 1;
    }
    Downloader d = downloader;
    try {
      if (d == null) d = cacheDir == null ? Downloader.defaults(System.err) : Downloader.withCache(cacheDir, System.err);
    } catch (IllegalArgumentException e) { // a bad -Djclip.download.* value
      err.println("jclip download: " + e.getMessage());
      err.flush();
      return 2;
    }
    if (list || names.isEmpty()) {
      for (ModelRegistry.Model m : registry.models()) {
        Optional<Path> p = d.cached(m);
        out.printf("%-40s %-12s %s%s%n", m.name(), m.source(), m.description(), p.map(x -> "  [cached: " + x + "]").orElse(""));
      }
      out.flush();
      return 0;
    }
    int failures = 0;
    for (String name : names) {
      try {
        Path p = name.equalsIgnoreCase("tokenizer") ? d.fetch(registry.tokenizer(), d.cache()) : fetch(d, registry, name);
        out.println(p);
        out.flush();
      } catch (IOException e) {
        err.println("jclip download: " + e.getMessage());
        err.flush();
        failures++;
      }
    }
    return failures == 0 ? 0 : 1;
  }

  private static Path fetch(Downloader d, ModelRegistry registry, String name) throws IOException {
    Optional<ModelRegistry.Model> m = registry.find(name);
    if (m.isEmpty()) throw new IOException("'" + name + "' is not a registered model" + registry.sourceSaid() + "; 'jclip download --list' shows them");
    return d.fetch(m.get());
  }
}
