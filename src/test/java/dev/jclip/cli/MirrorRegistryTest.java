package dev.jclip.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpServer;
import dev.jclip.testing.Reference;
import java.io.ByteArrayInputStream;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * A registry of one's own ({@code -Djclip.registry}, as {@code $JCLIP_REGISTRY}): a mirror on a
 * local server, from which {@code download} fetches a model (its SHA-256 checked) and {@code
 * tokenize} its vocabulary when the cache has none; where the vocabulary cannot be had, the
 * message says that the download was tried, why it failed, and how to get one.
 */
class MirrorRegistryTest {
  @TempDir Path tmp;
  private HttpServer server;
  private byte[] model, vocab;

  @BeforeEach
  void start() throws Exception {
    model = Files.readAllBytes(Reference.file("models/vit-b32-tiny/state_dict.pt"));
    vocab = Files.readAllBytes(Reference.file("bpe_simple_vocab_16e6.txt.gz"));
    server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
    server.createContext("/mirror/", ex -> {
      String path = ex.getRequestURI().getPath();
      byte[] body = path.endsWith("/tiny.pt") ? model : path.endsWith("/bpe_simple_vocab_16e6.txt.gz") ? vocab : null;
      if (body == null || ex.getRequestMethod().equals("HEAD")) {
        ex.sendResponseHeaders(body == null ? 404 : 200, -1);
        ex.close();
        return;
      }
      ex.sendResponseHeaders(200, body.length);
      try (OutputStream out = ex.getResponseBody()) {
        out.write(body);
      }
    });
    server.start();
  }

  @AfterEach
  void stop() {
    server.stop(0);
    System.clearProperty("jclip.registry");
    System.clearProperty("jclip.cache");
  }

  private Path registry(String vocabPath) throws Exception {
    String base = "http://127.0.0.1:" + server.getAddress().getPort() + "/mirror/";
    String json = """
        {"tokenizer": {"name": "bpe_simple_vocab_16e6.txt.gz", "url": "%s", "sha256": "%s"},
         "models": [{"name": "Tiny", "aliases": ["tiny-clip"], "source": "openai", "description": "a test model",
                     "files": [{"name": "tiny.pt", "url": "%s", "sha256": "%s"}]}]}
        """.formatted(base + vocabPath, sha(vocab), base + "tiny.pt", sha(model));
    return Files.writeString(tmp.resolve("registry.json"), json);
  }

  private static String sha(byte[] b) throws Exception {
    return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
  }

  private static CliRun.Result run(String stdin, String... args) {
    CommandLine cl = Main.commandLine();
    StringWriter out = new StringWriter(), err = new StringWriter();
    cl.setOut(new PrintWriter(out));
    cl.setErr(new PrintWriter(err));
    if (stdin != null) ((TokenizeCommand) cl.getSubcommands().get("tokenize").getCommand()).in = new ByteArrayInputStream(stdin.getBytes(StandardCharsets.UTF_8));
    int code = cl.execute(args);
    return new CliRun.Result(code, out.toString(), err.toString());
  }

  @Test
  void downloadAndTokenizeFromAMirror() throws Exception {
    System.setProperty("jclip.registry", registry("bpe_simple_vocab_16e6.txt.gz").toString());
    Path cache = Files.createDirectories(tmp.resolve("cache"));
    CliRun.Result list = run(null, "download", "--list", "--cache", cache.toString());
    assertEquals(0, list.code(), list.err());
    assertTrue(list.out().contains("Tiny") && !list.out().contains("ViT-B/32"), list.out());
    CliRun.Result d = run(null, "download", "--cache", cache.toString(), "tiny-clip");
    assertEquals(0, d.code(), d.err());
    assertEquals(sha(model), sha(Files.readAllBytes(cache.resolve("tiny.pt"))));

    System.setProperty("jclip.cache", cache.toString());
    CliRun.Result t = run("\"a dog\"\n", "tokenize", "--bpe");
    assertEquals(0, t.code(), t.err());
    assertEquals("[320,1929]", t.out().strip());
    assertTrue(Files.exists(cache.resolve("bpe_simple_vocab_16e6.txt.gz")), "the vocabulary went to the cache");
  }

  @Test
  void aVocabularyThatCannotBeHadSaysWhyAndHow() throws Exception {
    System.setProperty("jclip.registry", registry("gone.txt.gz").toString());
    System.setProperty("jclip.cache", Files.createDirectories(tmp.resolve("empty-cache")).toString());
    CliRun.Result t = run("\"a dog\"\n", "tokenize");
    assertEquals(1, t.code());
    assertTrue(t.err().contains("no BPE vocabulary in " + tmp.resolve("empty-cache")) && t.err().contains("downloading it failed (")
        && t.err().contains("404") && t.err().contains("jclip download tokenizer") && t.err().contains("--vocab FILE"), t.err());
  }

  @Test
  void aRegistryFileThatIsNotOneIsNamed() throws Exception {
    Path bad = Files.writeString(tmp.resolve("bad.json"), "{not json");
    System.setProperty("jclip.registry", bad.toString());
    CliRun.Result r = run(null, "download", "--list", "--cache", tmp.toString());
    assertEquals(1, r.code());
    assertTrue(r.err().startsWith("jclip download: " + bad) && r.err().contains("not a model registry") && !r.err().contains("\tat "), r.err());
    Path noTokenizer = Files.writeString(tmp.resolve("no-tokenizer.json"), "{\"models\": []}");
    System.setProperty("jclip.registry", noTokenizer.toString());
    r = run(null, "download", "--list", "--cache", tmp.toString());
    assertEquals(1, r.code());
    assertTrue(r.err().contains("'tokenizer': missing or not an object"), r.err());
    // a command given a local model does not need the registry, bad as it is
    r = run(null, "inspect", "--no-sha256", Reference.file("models/vit-b32-tiny/state_dict.pt").toString());
    assertEquals(0, r.code(), r.err());
  }

  @Test
  void aNameNotInAGivenRegistrySaysWhichRegistry() throws Exception {
    Path registry = registry("bpe_simple_vocab_16e6.txt.gz");
    System.setProperty("jclip.registry", registry.toString());
    CliRun.Result r = run(null, "download", "--cache", tmp.toString(), "ViT-B/32");
    assertEquals(1, r.code());
    assertTrue(r.err().contains("'ViT-B/32' is not a registered model (the registry " + registry + ", given by -Djclip.registry or JCLIP_REGISTRY"), r.err());
  }
}
