package dev.jclip.io;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpConnectTimeoutException;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.channels.UnresolvedAddressException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * Fetches registered checkpoints into the user cache ({@code ~/.cache/jclip}, or {@code
 * $JCLIP_CACHE}), the way users expect from {@code clip.load("ViT-B/32")}:
 *
 * <ul>
 *   <li>a file already in the cache whose SHA-256 matches is used as is (the check is remembered
 *       in a {@code .sha256} side file keyed by size and modification time, so a cached ViT-B/32
 *       opens without re-hashing 350 MB);
 *   <li>a matching file in OpenAI's own cache ({@code ~/.cache/clip}) is used in place;
 *   <li>otherwise it is downloaded to {@code NAME.part} with a progress bar, resuming a partial
 *       download with an HTTP range request, verified (the registry's SHA-256, or for HuggingFace
 *       LFS files the hub's {@code X-Linked-Etag}), and renamed atomically into place, so the cache
 *       never holds a partial or corrupt file under the final name;
 *   <li>without a network the error says where to put the file by hand.
 * </ul>
 *
 * Two downloads of the same file at once (two processes, or two threads) take turns: the second
 * waits on a lock file ({@code .NAME.lock} beside it) and then finds the file done. A server that
 * sends nothing for {@link #stallSeconds} seconds mid-body is given up on (the partial file kept
 * for a resume). A file without a pinned hash whose length the server did not say is checked by
 * its type before it is kept (JSON parses, a safetensors header matches its size, a zip has its
 * directory): a connection closed early cannot end such a download as if complete. A local write
 * failure (disk full, permissions) is named as such, not as a lost connection.
 */
public final class Downloader {
  private static final Pattern SHA256 = Pattern.compile("[0-9a-f]{64}");

  private final Path cache;
  private final List<Path> legacyCaches;
  private final HttpClient http;
  private final PrintStream progress;

  /**
   * @param cache where downloads go
   * @param legacyCaches other caches whose verified files are used in place (e.g. ~/.cache/clip)
   * @param progress where the progress bar goes (null: silent)
   */
  public Downloader(Path cache, List<Path> legacyCaches, HttpClient http, PrintStream progress) {
    this.cache = cache;
    this.legacyCaches = List.copyOf(legacyCaches);
    this.http = http;
    this.progress = progress;
  }

  /**
   * The user's cache: the system property {@code jclip.cache} (the test build points it into
   * target/), else {@code $JCLIP_CACHE}, else {@code ~/.cache/jclip}; reusing {@code ~/.cache/clip}.
   */
  public static Downloader defaults(PrintStream progress) {
    return withCache(defaultCache(), progress);
  }

  /** The cache folder {@link #defaults} uses: {@code -Djclip.cache}, else {@code $JCLIP_CACHE}, else {@code ~/.cache/jclip}. */
  public static Path defaultCache() {
    String dir = System.getProperty("jclip.cache");
    if (dir == null || dir.isBlank()) dir = System.getenv("JCLIP_CACHE");
    return dir != null && !dir.isBlank() ? Path.of(dir) : Path.of(System.getProperty("user.home")).resolve(".cache/jclip");
  }

  /** Like {@link #defaults} with another cache folder. */
  public static Downloader withCache(Path cache, PrintStream progress) {
    Path home = Path.of(System.getProperty("user.home"));
    // NORMAL redirects: HuggingFace redirects to its CDN; never from https down to http.
    HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(20)).followRedirects(HttpClient.Redirect.NORMAL).build();
    return new Downloader(cache, List.of(home.resolve(".cache/clip")), http, progress);
  }

  public Path cache() {
    return cache;
  }

  /**
   * A path as given when it exists, else a registered model's location, downloading it if needed.
   *
   * @throws java.nio.file.NoSuchFileException when it is neither (the message lists the names)
   */
  /**
   * {@link #resolve(String, ModelRegistry)} with {@link ModelRegistry#defaults()}, read only when
   * {@code pathOrName} is no existing file or folder (so that a bad registry file does not stop a
   * command given a local model).
   */
  public Path resolve(String pathOrName) throws IOException {
    Path p = Path.of(pathOrName);
    if (Files.exists(p)) return p;
    return resolve(pathOrName, ModelRegistry.defaults());
  }

  public Path resolve(String pathOrName, ModelRegistry registry) throws IOException {
    Path p = Path.of(pathOrName);
    if (Files.exists(p)) return p;
    Optional<ModelRegistry.Model> m = registry.find(pathOrName);
    if (m.isEmpty()) {
      throw new java.nio.file.NoSuchFileException(
          pathOrName, null, "no such file, and not a registered model name (known: " + registry.models().stream().map(ModelRegistry.Model::name).toList() + ")"
              + registry.sourceSaid());
    }
    return fetch(m.get());
  }

  /** Where a model lives once fetched: its file (OpenAI) or folder (HuggingFace). */
  public Path location(ModelRegistry.Model m) {
    Path dir = m.cacheSubfolder().isEmpty() ? cache : cache.resolve(m.cacheSubfolder());
    return m.source().equals("huggingface") ? dir : dir.resolve(m.files().get(0).name());
  }

  /** The model's path if every file is already available (no network), else empty. */
  public Optional<Path> cached(ModelRegistry.Model m) throws IOException {
    Path dir = m.cacheSubfolder().isEmpty() ? cache : cache.resolve(m.cacheSubfolder());
    Path single = null;
    for (ModelRegistry.FileSpec f : m.files()) {
      Optional<Path> p = available(f, dir);
      if (p.isEmpty()) return Optional.empty();
      single = p.get();
    }
    return Optional.of(m.source().equals("huggingface") ? dir : single);
  }

  /** Fetches every file of {@code m} (downloading what is missing) and returns {@link #location}. */
  public Path fetch(ModelRegistry.Model m) throws IOException {
    Path dir = m.cacheSubfolder().isEmpty() ? cache : cache.resolve(m.cacheSubfolder());
    Path single = null;
    for (ModelRegistry.FileSpec f : m.files()) single = fetch(f, dir);
    return m.source().equals("huggingface") ? dir : single;
  }

  /** Seconds without a byte from the server, mid-body, before a download is given up on (resumable). */
  private volatile int stallSeconds = stallProperty();

  private static int stallProperty() {
    String v = System.getProperty("jclip.download.stallSeconds", "60");
    try {
      int s = Integer.parseInt(v.trim());
      if (s >= 1) return s;
    } catch (NumberFormatException e) {
      // said below
    }
    throw new IllegalArgumentException("-Djclip.download.stallSeconds must be a whole number of seconds, at least 1, not '" + v + "'");
  }

  /** Sets {@link #stallSeconds} (the tests use 1). */
  public void stallSeconds(int seconds) {
    if (seconds < 1) throw new IllegalArgumentException("stall timeout must be at least 1 s, got " + seconds);
    this.stallSeconds = seconds;
  }

  private static final int READING = 0, DONE = 1, STALLED = 2;

  /** In-process turns, by lock file (a FileLock is held per process: threads of one JVM wait here first). */
  private static final java.util.concurrent.ConcurrentHashMap<Path, java.util.concurrent.locks.ReentrantLock> TURNS = new java.util.concurrent.ConcurrentHashMap<>();

  /** Fetches one file into {@code dir} (or finds it verified in a legacy cache) and returns its path. */
  public Path fetch(ModelRegistry.FileSpec f, Path dir) throws IOException {
    Optional<Path> have = available(f, dir);
    if (have.isPresent()) return have.get();
    try {
      Files.createDirectories(dir);
    } catch (IOException e) {
      throw new DownloadException("cannot create the cache folder " + dir + ": " + describeLocal(e), e);
    }
    Path lockFile = dir.resolve("." + f.name() + ".lock");
    // keyed by the folder's real path: two threads reaching one cache through a link and its target take turns too
    java.util.concurrent.locks.ReentrantLock turn = TURNS.computeIfAbsent(lockFile.getParent().toRealPath().resolve(lockFile.getFileName()),
        k -> new java.util.concurrent.locks.ReentrantLock());
    try {
      turn.lockInterruptibly();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new DownloadException(f.url() + ": interrupted while waiting for another download of " + f.name(), e);
    }
    try (java.nio.channels.FileChannel ch = openLock(lockFile)) {
      java.nio.channels.FileLock lock = null;
      try {
        lock = ch.tryLock();
        if (lock == null) {
          if (progress != null) progress.println("jclip: another process is downloading " + f.name() + " into " + dir + "; waiting for it");
          lock = ch.lock();
        }
      } catch (java.nio.channels.OverlappingFileLockException e) {
        // this JVM holds it under another path (a hard link?): the turn above is held, go on
      } catch (java.nio.channels.FileLockInterruptionException e) {
        throw new DownloadException(f.url() + ": interrupted while waiting for another download of " + f.name(), e);
      } catch (IOException e) {
        // a file system without locks (NFS without lockd, some FUSE mounts): downloads go on uncoordinated, as before locks
        if (progress != null) progress.println("jclip: cannot lock " + lockFile + " (" + e.getMessage() + "); two downloads of " + f.name() + " at once would not take turns");
      }
      try {
        have = available(f, dir); // the other download may have finished it
        if (have.isPresent()) return have.get();
        return fetchLocked(f, dir);
      } finally {
        if (lock != null) lock.release();
      }
    } finally {
      turn.unlock();
    }
  }

  private static java.nio.channels.FileChannel openLock(Path lockFile) throws DownloadException {
    try {
      return java.nio.channels.FileChannel.open(lockFile, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
    } catch (IOException e) {
      throw new DownloadException("cannot write in the cache folder " + lockFile.getParent() + " (" + describeLocal(e) + ")", e);
    }
  }

  /** A local file error in words: permission denied, disk full, a folder in the way, or the exception's own message. */
  static String describeLocal(IOException e) {
    if (e instanceof java.nio.file.AccessDeniedException) return "permission denied";
    if (e instanceof java.nio.file.FileSystemException fs && fs.getReason() != null) return fs.getFile() + ": " + fs.getReason();
    return SafetensorsWriter.diskFullSaid(e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage());
  }

  private Path fetchLocked(ModelRegistry.FileSpec f, Path dir) throws IOException {
    Path target = dir.resolve(f.name());
    Path part = dir.resolve(f.name() + ".part");
    String got = download(f, part, target);
    String want = f.sha256();
    if (want != null && !want.equals(got)) {
      Files.deleteIfExists(part);
      throw new DownloadException(
          f.url() + ": downloaded file has SHA-256 " + got + " but " + want + " was expected; the partial file was deleted, try again"
              + " (a proxy or a changed upstream file?)");
    }
    try {
      Files.move(part, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } catch (AtomicMoveNotSupportedException e) {
      Files.move(part, target, StandardCopyOption.REPLACE_EXISTING);
    }
    remember(target, got);
    return target;
  }

  private Optional<Path> available(ModelRegistry.FileSpec f, Path dir) throws IOException {
    Path target = dir.resolve(f.name());
    if (Files.isRegularFile(target)) {
      if (f.sha256() == null) return Optional.of(target); // verified against the server's ETag when downloaded
      if (verified(target, f.sha256())) return Optional.of(target);
    }
    if (f.sha256() != null) {
      for (Path legacy : legacyCaches) {
        Path p = legacy.resolve(f.name());
        if (Files.isRegularFile(p) && sha256(p).equals(f.sha256())) return Optional.of(p);
      }
    }
    return Optional.empty();
  }

  /** True when {@code file} has SHA-256 {@code sha}, trusting a side file written for the same size and time. */
  private boolean verified(Path file, String sha) throws IOException {
    Path marker = marker(file);
    String stamp = sha + " " + Files.size(file) + " " + Files.getLastModifiedTime(file).toMillis();
    if (Files.isRegularFile(marker) && Files.readString(marker, StandardCharsets.US_ASCII).trim().equals(stamp)) return true;
    if (!sha256(file).equals(sha)) return false;
    Files.writeString(marker, stamp + "\n", StandardCharsets.US_ASCII);
    return true;
  }

  private void remember(Path file, String sha) throws IOException {
    Files.writeString(marker(file), sha + " " + Files.size(file) + " " + Files.getLastModifiedTime(file).toMillis() + "\n", StandardCharsets.US_ASCII);
  }

  private static Path marker(Path file) {
    return file.resolveSibling("." + file.getFileName() + ".sha256");
  }

  /** Downloads (resuming {@code part}) and returns the SHA-256 of the complete file. */
  private String download(ModelRegistry.FileSpec f, Path part, Path target) throws IOException {
    long have = Files.isRegularFile(part) ? Files.size(part) : 0;
    HttpRequest.Builder req = HttpRequest.newBuilder(f.url()).timeout(Duration.ofMinutes(5)).header("User-Agent", "jclip");
    if (have > 0) req.header("Range", "bytes=" + have + "-");
    HttpResponse<InputStream> resp;
    try {
      resp = http.send(req.build(), HttpResponse.BodyHandlers.ofInputStream());
    } catch (ConnectException | HttpConnectTimeoutException | UnresolvedAddressException e) {
      throw offline(f, target, e, legacyNote(f));
    } catch (HttpTimeoutException e) {
      throw offline(f, target, e, legacyNote(f));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new DownloadException(f.url() + ": interrupted", e);
    } catch (IOException e) {
      if (e.getCause() instanceof UnresolvedAddressException || e.getCause() instanceof ConnectException) throw offline(f, target, e, legacyNote(f));
      throw new DownloadException(f.url() + ": " + e, e);
    }
    int status = resp.statusCode();
    MessageDigest md = sha();
    boolean append;
    if (status == 206 && have > 0) {
      String range = resp.headers().firstValue("Content-Range").orElse("");
      if (!range.startsWith("bytes " + have + "-")) {
        resp.body().close();
        Files.deleteIfExists(part);
        throw new DownloadException(f.url() + ": server resumed at '" + range + "' instead of byte " + have + "; the partial file was deleted, try again");
      }
      append = true;
      try (InputStream in = Files.newInputStream(part)) {
        byte[] buf = new byte[1 << 20];
        for (int n; (n = in.read(buf)) > 0; ) md.update(buf, 0, n);
      }
    } else if (status == 200) {
      append = false;
      have = 0;
    } else if (status == 416 && have > 0) {
      // The partial file already holds everything: verify it as is.
      resp.body().close();
      return sha256(part);
    } else {
      resp.body().close();
      throw new DownloadException(f.url() + ": HTTP " + status + (status == 404 ? " (not found: the registry URL may be outdated)" : "") + "; nothing was written");
    }
    long length = resp.headers().firstValueAsLong("Content-Length").orElse(-1);
    long total = length < 0 ? -1 : have + length;
    long done = have;
    long lastPrint = 0;
    long start = System.nanoTime();
    OutputStream out;
    try {
      out = append
          ? Files.newOutputStream(part, StandardOpenOption.APPEND)
          : Files.newOutputStream(part, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE);
    } catch (IOException e) {
      resp.body().close();
      throw new DownloadException("cannot write " + part + ": " + describeLocal(e), e);
    }
    // A watchdog interrupts this thread when no byte has come for stallSeconds (the body's read
    // blocks without a timeout of its own once the headers are in). One state, changed by
    // compare-and-set: reading, then done (this thread) or stalled (the watchdog, which alone
    // interrupts, and only on winning), so that no interrupt outlives the download.
    Thread reader = Thread.currentThread();
    java.util.concurrent.atomic.AtomicLong lastByte = new java.util.concurrent.atomic.AtomicLong(System.nanoTime());
    java.util.concurrent.atomic.AtomicInteger state = new java.util.concurrent.atomic.AtomicInteger(READING);
    long stallNanos = stallSeconds * 1_000_000_000L;
    java.util.concurrent.ScheduledExecutorService watch = java.util.concurrent.Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "jclip-download-watchdog");
      t.setDaemon(true);
      return t;
    });
    watch.scheduleAtFixedRate(() -> {
      if (System.nanoTime() - lastByte.get() > stallNanos && state.compareAndSet(READING, STALLED)) reader.interrupt();
    }, 200, 200, java.util.concurrent.TimeUnit.MILLISECONDS);
    boolean printed = false;
    try (InputStream in = resp.body(); OutputStream o = out) {
      byte[] buf = new byte[1 << 16];
      while (true) {
        int n;
        try {
          n = in.read(buf);
        } catch (IOException e) {
          if (printed) progress.println();
          if (state.get() == STALLED) {
            throw new DownloadException(stalledAfter(f, done, part), e);
          }
          throw new DownloadException(
              f.url() + ": connection lost after " + done + " bytes (" + e.getMessage() + "); run the same command again to resume from " + part, e);
        }
        if (n <= 0) break;
        lastByte.set(System.nanoTime());
        try {
          o.write(buf, 0, n);
        } catch (IOException e) {
          if (printed) progress.println();
          if (state.get() == STALLED) throw new DownloadException("writing " + part + " took over " + stallSeconds + " s; run the same command again to resume", e);
          throw new DownloadException("cannot write " + part + " after " + done + " bytes: " + describeLocal(e)
              + "; free the space (or fix the folder) and run the same command again to resume", e);
        }
        md.update(buf, 0, n);
        done += n;
        long now = System.nanoTime();
        if (progress != null && now - lastPrint > 100_000_000L) {
          lastPrint = now;
          printed = true;
          bar(f.name(), done, total, have, now - start);
        }
      }
      if (!state.compareAndSet(READING, DONE)) {
        throw new DownloadException(stalledAfter(f, done, part));
      }
    } catch (IOException e) {
      if (e instanceof DownloadException d) throw d;
      throw new DownloadException("cannot write " + part + ": " + describeLocal(e), e); // closing (flushing) the file
    } finally {
      state.compareAndSet(READING, DONE);
      watch.shutdownNow();
      try {
        watch.awaitTermination(5, java.util.concurrent.TimeUnit.SECONDS); // a tick running now has interrupted, or will not
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      if (state.get() == STALLED) Thread.interrupted(); // the watchdog's interrupt, not the caller's
    }
    if (progress != null) {
      bar(f.name(), done, total, have, System.nanoTime() - start);
      progress.println();
    }
    if (total >= 0 && done != total) {
      throw new DownloadException(f.url() + ": got " + done + " of " + total + " bytes; run the same command again to resume from " + part);
    }
    if (total < 0 && f.sha256() == null) checkComplete(f, part);
    String got = HexFormat.of().formatHex(md.digest());
    if (f.sha256() == null) {
      Optional<String> etag = linkedEtag(resp);
      if (etag.isPresent() && !etag.get().equals(got)) {
        Files.deleteIfExists(part);
        throw new DownloadException(f.url() + ": downloaded file has SHA-256 " + got + " but the server's ETag says " + etag.get() + "; the partial file was deleted, try again");
      }
    }
    return got;
  }

  private String stalledAfter(ModelRegistry.FileSpec f, long done, Path part) {
    return f.url() + ": the server sent nothing for " + stallSeconds + " s after " + done + " bytes; run the same command again to resume from " + part;
  }

  /**
   * A file the server sent without its length and that no hash pins: a connection closed early
   * looks like the end, so the file is checked by its type (JSON parses, a safetensors header
   * matches the file's size, a zip archive has its directory); a file that fails is deleted.
   */
  private static void checkComplete(ModelRegistry.FileSpec f, Path part) throws IOException {
    String name = f.name().toLowerCase(Locale.ROOT);
    String problem = null;
    try {
      if (name.endsWith(".json")) {
        new com.fasterxml.jackson.databind.ObjectMapper().readTree(part.toFile());
      } else if (name.endsWith(".safetensors")) {
        SafetensorsReader.open(part).close();
      } else if (name.endsWith(".bin") || name.endsWith(".pt") || name.endsWith(".pth")) {
        ZipArchive.read(MappedFile.open(part));
      }
    } catch (IOException | RuntimeException e) {
      problem = e.getMessage();
    }
    if (problem != null) {
      Files.deleteIfExists(part);
      throw new DownloadException(f.url() + ": the server did not say the file's length, and what came is not a whole " + f.name() + " (" + problem
          + "): the connection was probably cut; the partial file was deleted, try again");
    }
  }

  /** HuggingFace sends the SHA-256 of LFS files as X-Linked-Etag on the (redirect) response. */
  private static Optional<String> linkedEtag(HttpResponse<?> resp) {
    for (HttpResponse<?> r = resp; r != null; r = r.previousResponse().orElse(null)) {
      for (String h : List.of("X-Linked-Etag", "ETag")) {
        Optional<String> v = r.headers().firstValue(h).map(s -> s.replace("W/", "").replace("\"", "").trim().toLowerCase(Locale.ROOT));
        if (v.isPresent() && SHA256.matcher(v.get()).matches()) return v;
      }
    }
    return Optional.empty();
  }

  private void bar(String name, long done, long total, long resumedFrom, long nanos) {
    double mb = done / 1e6;
    double rate = (done - resumedFrom) / 1e6 / Math.max(1e-9, nanos / 1e9);
    if (total > 0) {
      int width = 30;
      int fill = (int) (width * done / total);
      progress.printf(Locale.ROOT, "\r%s [%s%s] %3d%% %.1f/%.1f MB %.1f MB/s", name, "#".repeat(fill), " ".repeat(width - fill), 100 * done / total, mb, total / 1e6, rate);
    } else {
      progress.printf(Locale.ROOT, "\r%s %.1f MB %.1f MB/s", name, mb, rate);
    }
    progress.flush();
  }

  /** What the legacy caches hold under {@code f}'s name that was not used (another SHA-256), for messages; "" when nothing. */
  private String legacyNote(ModelRegistry.FileSpec f) {
    if (f.sha256() == null) return "";
    StringBuilder b = new StringBuilder();
    for (Path legacy : legacyCaches) {
      Path p = legacy.resolve(f.name());
      try {
        if (Files.isRegularFile(p) && !sha256(p).equals(f.sha256())) b.append("; ").append(p).append(" was found but not used: its SHA-256 differs");
      } catch (IOException e) {
        b.append("; ").append(p).append(" was found but could not be read (").append(describeLocal(e)).append(')');
      }
    }
    return b.toString();
  }

  private static DownloadException offline(ModelRegistry.FileSpec f, Path target, Exception e, String legacyNote) {
    URI u = f.url();
    return new DownloadException(
        "cannot reach "
            + u.getHost()
            + " to download "
            + f.name()
            + " ("
            + e.getClass().getSimpleName()
            + (e.getMessage() == null ? "" : ": " + e.getMessage())
            + "). Offline? Fetch "
            + u
            + " by other means and place it at "
            + target
            + (f.sha256() == null ? "" : " (SHA-256 " + f.sha256() + ")")
            + (f.sha256() != null && Files.isRegularFile(target) ? "; the file there now is not that one (its SHA-256 differs), and was left as it is" : "")
            + legacyNote,
        e);
  }

  /** A new SHA-256 digest (every JDK has one). */
  public static MessageDigest sha256Digest() {
    return sha();
  }

  private static MessageDigest sha() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("the JDK lacks SHA-256", e);
    }
  }

  /** The SHA-256 of {@code bytes}, as lower-case hex. */
  public static String sha256(byte[] bytes) {
    return HexFormat.of().formatHex(sha().digest(bytes));
  }

  /** The SHA-256 of a file, as lower-case hex. */
  public static String sha256(Path file) throws IOException {
    MessageDigest md = sha();
    byte[] buf = new byte[1 << 20];
    try (InputStream in = Files.newInputStream(file)) {
      for (int n; (n = in.read(buf)) > 0; ) md.update(buf, 0, n);
    }
    return HexFormat.of().formatHex(md.digest());
  }
}
