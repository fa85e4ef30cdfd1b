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
import java.nio.charset.StandardCharsets;
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
  /** When > 0, the next full response stops sending after this many bytes, for {@link #stallMillis}, then sends the rest. */
  private volatile int stallAfter;
  private volatile int stallMillis;
  /** Milliseconds to wait between 64 KB pieces of a body (a slow server). */
  private volatile int slowMillis;
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
        int stall = stallAfter;
        if (stall > 0 && from == 0) {
          stallAfter = 0;
          out.write(body, 0, stall);
          out.flush();
          try {
            Thread.sleep(stallMillis);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
          from = stall;
        }
        for (int at = from; at < body.length; at += 65536) {
          out.write(body, at, Math.min(65536, body.length - at));
          out.flush();
          if (slowMillis > 0) {
            try {
              Thread.sleep(slowMillis);
            } catch (InterruptedException e) {
              Thread.currentThread().interrupt();
            }
          }
        }
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

  /** Two downloads of one file at once take turns: one request for the body, both get the whole file. */
  @Test
  void twoDownloadsAtOnceTakeTurns() throws Exception {
    slowMillis = 100; // 5 pieces: ~500 ms, so that the second starts (at 60 ms) while the first runs
    ModelRegistry.FileSpec f = new ModelRegistry.FileSpec("ViT-T.pt", url("ViT-T.pt"), sha);
    java.util.concurrent.ExecutorService two = java.util.concurrent.Executors.newFixedThreadPool(2);
    try {
      List<java.util.concurrent.Future<Path>> got = new ArrayList<>();
      for (int i = 0; i < 2; i++) {
        Downloader d = downloader(tmp.resolve("cache"), tmp.resolve("legacy"), null);
        got.add(two.submit(() -> d.fetch(f, d.cache())));
        Thread.sleep(60);
      }
      for (var g : got) assertArrayEquals(body, Files.readAllBytes(g.get(30, java.util.concurrent.TimeUnit.SECONDS)));
    } finally {
      two.shutdownNow();
    }
    assertEquals(1, requests.get(), "the second found the file done");
    assertFalse(Files.exists(tmp.resolve("cache/ViT-T.pt.part")));
  }

  /** Another process downloading the same file (holding its lock file): this one says so, waits, then downloads. */
  @Test
  void anotherProcessHoldingTheLockIsWaitedFor() throws Exception {
    Path cache = Files.createDirectories(tmp.resolve("cache"));
    Process child = new ProcessBuilder(AtomicFileTest.java(), "-cp", System.getProperty("java.class.path"), LockHolderMain.class.getName(),
        cache.resolve(".ViT-T.pt.lock").toString(), "1500").redirectErrorStream(true).start();
    try {
      java.io.BufferedReader r = new java.io.BufferedReader(new java.io.InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
      assertEquals("locked", r.readLine());
      ByteArrayOutputStream said = new ByteArrayOutputStream();
      Downloader d = downloader(cache, tmp.resolve("legacy"), new PrintStream(said, true));
      long t0 = System.nanoTime();
      Path p = d.fetch(new ModelRegistry.FileSpec("ViT-T.pt", url("ViT-T.pt"), sha), cache);
      assertTrue((System.nanoTime() - t0) / 1e6 > 500, "it waited for the other process");
      assertArrayEquals(body, Files.readAllBytes(p));
      assertTrue(said.toString().contains("another process is downloading ViT-T.pt"), said.toString());
    } finally {
      child.destroyForcibly();
    }
  }

  /** A server that goes silent mid-body is given up on after the stall timeout; the partial file resumes. */
  @Test
  void aStalledServerIsGivenUpOnAndResumed() throws IOException {
    Downloader d = downloader(tmp.resolve("cache"), tmp.resolve("legacy"), null);
    d.stallSeconds(1);
    stallAfter = 100_000;
    stallMillis = 4000;
    ModelRegistry.FileSpec f = new ModelRegistry.FileSpec("ViT-T.pt", url("ViT-T.pt"), sha);
    long t0 = System.nanoTime();
    var e = assertThrows(DownloadException.class, () -> d.fetch(f, d.cache()));
    assertTrue((System.nanoTime() - t0) / 1e9 < 3.5, "gave up after the stall timeout, not the server's pause");
    assertTrue(e.getMessage().contains("sent nothing for 1 s") && e.getMessage().contains("resume"), e.getMessage());
    assertFalse(Thread.currentThread().isInterrupted(), "the watchdog's interrupt is not left on the caller");
    assertTrue(Files.size(tmp.resolve("cache/ViT-T.pt.part")) >= 100_000);
    assertArrayEquals(body, Files.readAllBytes(d.fetch(f, d.cache())));
  }

  /**
   * A server that sends no length and closes early: an unpinned file is checked by its type and not
   * kept (here a JSON file cut in half); a whole one is kept.
   */
  @Test
  void anUnpinnedFileCutWithoutALengthIsNotKept() throws Exception {
    byte[] json = "{\"architectures\": [\"CLIPModel\"], \"projection_dim\": 512, \"padding\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}".getBytes(StandardCharsets.UTF_8);
    for (boolean whole : new boolean[] {false, true}) {
      try (ServerSocket raw = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
        Thread t = new Thread(() -> {
          try (java.net.Socket s = raw.accept()) {
            java.io.InputStream in = s.getInputStream();
            for (int state = 0; state < 4; ) { // the request's end: CRLF CRLF
              int c = in.read();
              if (c < 0) return;
              state = (c == '\r' && state % 2 == 0) || (c == '\n' && state % 2 == 1) ? state + 1 : 0;
            }
            OutputStream out = s.getOutputStream();
            out.write("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            out.write(json, 0, whole ? json.length : json.length / 2);
            out.flush();
          } catch (IOException ignored) {
            // the client went away
          }
        });
        t.start();
        Downloader d = downloader(tmp.resolve("cache"), tmp.resolve("legacy"), null);
        ModelRegistry.FileSpec f = new ModelRegistry.FileSpec("config.json", URI.create("http://127.0.0.1:" + raw.getLocalPort() + "/config.json"), null);
        Path dir = tmp.resolve("cache/hf");
        if (whole) {
          assertArrayEquals(json, Files.readAllBytes(d.fetch(f, dir)));
        } else {
          var e = assertThrows(DownloadException.class, () -> d.fetch(f, dir));
          assertTrue(e.getMessage().contains("not a whole config.json"), e.getMessage());
          assertFalse(Files.exists(dir.resolve("config.json")));
          assertFalse(Files.exists(dir.resolve("config.json.part")));
        }
        t.join(10_000);
      }
    }
  }

  /** A partial file that cannot be written (a folder in its place) is named as a local problem, not a lost connection. */
  @Test
  void aLocalWriteFailureIsNamedAsSuch() throws IOException {
    Downloader d = downloader(tmp.resolve("cache"), tmp.resolve("legacy"), null);
    Files.createDirectories(tmp.resolve("cache/ViT-T.pt.part"));
    ModelRegistry.FileSpec f = new ModelRegistry.FileSpec("ViT-T.pt", url("ViT-T.pt"), sha);
    var e = assertThrows(DownloadException.class, () -> d.fetch(f, d.cache()));
    assertTrue(e.getMessage().startsWith("cannot write") || e.getMessage().contains("cannot write"), e.getMessage());
    assertFalse(e.getMessage().contains("connection lost"), e.getMessage());
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
    // another file where it goes: said, and left alone
    Files.write(tmp.resolve("cache/ViT-T.pt"), new byte[] {1, 2, 3});
    e = assertThrows(DownloadException.class, () -> d.fetch(f, d.cache()));
    assertTrue(e.getMessage().contains("the file there now is not that one"), e.getMessage());
    assertEquals(3, Files.size(tmp.resolve("cache/ViT-T.pt")));
    // a file of that name in OpenAI's cache that is not that one: said too
    Files.write(Files.createDirectories(tmp.resolve("legacy")).resolve("ViT-T.pt"), new byte[] {4, 5});
    e = assertThrows(DownloadException.class, () -> d.fetch(f, d.cache()));
    assertTrue(e.getMessage().contains(tmp.resolve("legacy/ViT-T.pt") + " was found but not used: its SHA-256 differs"), e.getMessage());
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
