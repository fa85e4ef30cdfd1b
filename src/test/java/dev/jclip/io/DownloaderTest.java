package dev.jclip.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpServer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Downloads from a local HTTP server (no network): verify, resume, atomic rename, legacy cache, offline. */
class DownloaderTest {
  @TempDir Path tmp;
  private HttpServer server;
  private final byte[] body = new byte[300_000];
  private final AtomicInteger requests = new AtomicInteger();
  private final List<String> ranges = new ArrayList<>();
  /** When > 0, the next full response is cut after this many bytes. */
  private volatile int cutAfter;
  private String sha;

  @BeforeEach
  void start() throws Exception {
    new Random(5).nextBytes(body);
    sha = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(body));
    server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
    server.createContext("/m/", ex -> {
      requests.incrementAndGet();
      String range = ex.getRequestHeaders().getFirst("Range");
      synchronized (ranges) {
        ranges.add(range);
      }
      if (ex.getRequestURI().getPath().endsWith("/missing.pt")) {
        ex.sendResponseHeaders(404, -1);
        ex.close();
        return;
      }
      int from = 0;
      if (range != null && range.startsWith("bytes=")) from = Integer.parseInt(range.substring(6, range.indexOf('-')));
      if (ex.getRequestURI().getPath().endsWith("/hub.bin")) ex.getResponseHeaders().add("X-Linked-Etag", "\"" + sha + "\"");
      if (from > 0) {
        ex.getResponseHeaders().add("Content-Range", "bytes " + from + "-" + (body.length - 1) + "/" + body.length);
        ex.sendResponseHeaders(206, body.length - from);
      } else {
        ex.sendResponseHeaders(200, body.length);
      }
      try (OutputStream out = ex.getResponseBody()) {
        int cut = cutAfter;
        if (cut > 0 && from == 0) {
          cutAfter = 0;
          out.write(body, 0, cut);
          out.flush();
          throw new IOException("cut"); // drops the connection mid-body
        }
        out.write(body, from, body.length - from);
      }
    });
    server.start();
  }

  @AfterEach
  void stop() {
    server.stop(0);
  }

  private URI url(String name) {
    return URI.create("http://127.0.0.1:" + server.getAddress().getPort() + "/m/" + name);
  }

  private Downloader downloader(Path cache, Path legacy, PrintStream progress) {
    return new Downloader(cache, List.of(legacy), HttpClient.newHttpClient(), progress);
  }

  @Test
  void downloadsVerifiesAndCaches() throws IOException {
    ByteArrayOutputStream bar = new ByteArrayOutputStream();
    Downloader d = downloader(tmp.resolve("cache"), tmp.resolve("legacy"), new PrintStream(bar, true));
    ModelRegistry.FileSpec f = new ModelRegistry.FileSpec("ViT-T.pt", url("ViT-T.pt"), sha);
    Path p = d.fetch(f, d.cache());
    assertArrayEquals(body, Files.readAllBytes(p));
    assertEquals(tmp.resolve("cache/ViT-T.pt"), p);
    assertFalse(Files.exists(tmp.resolve("cache/ViT-T.pt.part")), "partial file left behind");
    assertTrue(bar.toString().contains("100%"), bar.toString());
    // Second time: no request at all (the SHA-256 check is remembered).
    int before = requests.get();
    assertEquals(p, d.fetch(f, d.cache()));
    assertEquals(before, requests.get());
  }

  @Test
  void resumesAPartialDownload() throws IOException {
    Downloader d = downloader(tmp.resolve("cache"), tmp.resolve("legacy"), null);
    ModelRegistry.FileSpec f = new ModelRegistry.FileSpec("ViT-T.pt", url("ViT-T.pt"), sha);
    cutAfter = 100_000;
    var e = assertThrows(IOException.class, () -> d.fetch(f, d.cache()));
    assertTrue(e.getMessage().contains("resume"), e.getMessage());
    assertFalse(Files.exists(tmp.resolve("cache/ViT-T.pt")), "a partial file must never take the final name");
    long part = Files.size(tmp.resolve("cache/ViT-T.pt.part"));
    assertTrue(part > 0 && part < body.length, "part " + part);
    Path p = d.fetch(f, d.cache());
    assertArrayEquals(body, Files.readAllBytes(p));
    assertTrue(ranges.contains("bytes=" + part + "-"), ranges.toString());
  }

  @Test
  void wrongShaIsRefusedAndNothingKept() throws IOException {
    Downloader d = downloader(tmp.resolve("cache"), tmp.resolve("legacy"), null);
    ModelRegistry.FileSpec f = new ModelRegistry.FileSpec("bad.pt", url("bad.pt"), "0".repeat(64));
    var e = assertThrows(DownloadException.class, () -> d.fetch(f, d.cache()));
    assertTrue(e.getMessage().contains(sha) && e.getMessage().contains("0".repeat(64)), e.getMessage());
    assertFalse(Files.exists(tmp.resolve("cache/bad.pt")));
    assertFalse(Files.exists(tmp.resolve("cache/bad.pt.part")));
    // HuggingFace-style: no pinned hash, checked against X-Linked-Etag.
    ModelRegistry.FileSpec hub = new ModelRegistry.FileSpec("hub.bin", url("hub.bin"), null);
    assertArrayEquals(body, Files.readAllBytes(d.fetch(hub, tmp.resolve("cache/hf"))));
    var e404 = assertThrows(DownloadException.class, () -> d.fetch(new ModelRegistry.FileSpec("missing.pt", url("missing.pt"), sha), d.cache()));
    assertTrue(e404.getMessage().contains("HTTP 404"), e404.getMessage());
  }

  @Test
  void reusesOpenAiCacheWithoutNetwork() throws IOException {
    Path legacy = Files.createDirectories(tmp.resolve("legacy"));
    Files.write(legacy.resolve("ViT-T.pt"), body);
    Downloader d = downloader(tmp.resolve("cache"), legacy, null);
    ModelRegistry.FileSpec f = new ModelRegistry.FileSpec("ViT-T.pt", url("ViT-T.pt"), sha);
    assertEquals(legacy.resolve("ViT-T.pt"), d.fetch(f, d.cache()));
    assertEquals(0, requests.get());
    // A legacy file that does not match is not used.
    Files.write(legacy.resolve("ViT-T.pt"), new byte[] {1, 2, 3});
    assertEquals(tmp.resolve("cache/ViT-T.pt"), d.fetch(f, d.cache()));
  }

  @Test
  void offlineSaysWhereToPutTheFile() throws IOException {
    int port;
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    Downloader d = downloader(tmp.resolve("cache"), tmp.resolve("legacy"), null);
    ModelRegistry.FileSpec f = new ModelRegistry.FileSpec("ViT-T.pt", URI.create("http://127.0.0.1:" + port + "/ViT-T.pt"), sha);
    var e = assertThrows(DownloadException.class, () -> d.fetch(f, d.cache()));
    assertTrue(e.getMessage().contains("cannot reach 127.0.0.1") && e.getMessage().contains(tmp.resolve("cache/ViT-T.pt").toString()) && e.getMessage().contains(sha), e.getMessage());
  }

  @Test
  void builtinRegistryHasTheNineOpenAiModelsAndTheVocabulary() throws IOException {
    ModelRegistry r = ModelRegistry.builtin();
    for (String n : List.of("RN50", "RN101", "RN50x4", "RN50x16", "RN50x64", "ViT-B/32", "ViT-B/16", "ViT-L/14", "ViT-L/14@336px")) {
      ModelRegistry.Model m = r.find(n).orElseThrow(() -> new AssertionError(n));
      assertEquals("openai", m.source());
      ModelRegistry.FileSpec f = m.files().get(0);
      // clip.py's convention: the URL's last folder is the file's SHA-256.
      String[] parts = f.url().getPath().split("/");
      assertEquals(parts[parts.length - 2], f.sha256(), n);
      assertEquals(parts[parts.length - 1], f.name(), n);
    }
    assertEquals(r.find("ViT-B/32"), r.find("vit-b-32"));
    assertTrue(r.find("openai/clip-vit-base-patch32").isPresent());
    assertEquals("924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a", r.tokenizer().sha256());
    // The vocabulary's pinned hash is the reference copy's.
    assertEquals(r.tokenizer().sha256(), Downloader.sha256(dev.jclip.testing.Reference.file("bpe_simple_vocab_16e6.txt.gz")));
  }
}
