package dev.jclip.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Where an {@link AtomicFile} writes: through links, into non-regular files, with a new file's permissions. */
public class AtomicFileTest {
  @TempDir Path tmp;

  static void write(Path p, String text) throws IOException {
    try (AtomicFile f = AtomicFile.create(p)) {
      ByteBuffer b = ByteBuffer.wrap(text.getBytes(StandardCharsets.UTF_8));
      while (b.hasRemaining()) f.channel().write(b);
      f.commit();
    }
  }

  @Test
  void aLinkIsWrittenThroughNotReplaced() throws IOException {
    Files.createDirectories(tmp.resolve("real"));
    Path target = tmp.resolve("real/out.npy"), link = tmp.resolve("link.npy");
    Files.createSymbolicLink(link, Path.of("real/out.npy")); // dangling until written
    write(link, "first");
    assertTrue(Files.isSymbolicLink(link));
    assertEquals("first", Files.readString(target));
    write(link, "second");
    assertTrue(Files.isSymbolicLink(link));
    assertEquals("second", Files.readString(link));
  }

  @Test
  void aNewFileGetsTheDefaultPermissionsAndAReplacedOneKeepsItsOwn() throws IOException {
    Path plain = Files.createFile(tmp.resolve("made-by-java")); // the process's default for a new file
    Path out = tmp.resolve("new.npy");
    write(out, "x");
    assertEquals(Files.getPosixFilePermissions(plain), Files.getPosixFilePermissions(out));
    Files.setPosixFilePermissions(out, PosixFilePermissions.fromString("rw-r-----"));
    write(out, "y");
    assertEquals("rw-r-----", PosixFilePermissions.toString(Files.getPosixFilePermissions(out)));
    assertEquals("y", Files.readString(out));
  }

  @Test
  void aFifoIsWrittenInPlace() throws Exception {
    Path fifo = tmp.resolve("pipe");
    Process mk = new ProcessBuilder("mkfifo", fifo.toString()).start();
    org.junit.jupiter.api.Assumptions.assumeTrue(mk.waitFor(10, TimeUnit.SECONDS) && mk.exitValue() == 0, "no mkfifo here");
    CompletableFuture<String> read = CompletableFuture.supplyAsync(() -> {
      try {
        return Files.readString(fifo);
      } catch (IOException e) {
        throw new java.io.UncheckedIOException(e);
      }
    });
    write(fifo, "through the pipe");
    assertEquals("through the pipe", read.get(30, TimeUnit.SECONDS));
    assertTrue(!Files.isRegularFile(fifo) && Files.exists(fifo), "the FIFO is still a FIFO");
    try (var files = Files.list(tmp)) {
      assertEquals(1, files.count(), "nothing left beside it");
    }
  }

  @Test
  void aFolderOrAMissingFolderIsRefusedWhenCreated() throws IOException {
    IOException e = assertThrows(IOException.class, () -> AtomicFile.create(tmp));
    assertTrue(e.getMessage().contains("is a folder"), e.getMessage());
    e = assertThrows(IOException.class, () -> AtomicFile.create(tmp.resolve("no/such/out.npy")));
    assertTrue(e.getMessage().contains("does not exist"), e.getMessage());
  }

  @Test
  void closingWithoutACommitLeavesNothing() throws IOException {
    Path out = tmp.resolve("never.npy");
    try (AtomicFile f = AtomicFile.create(out)) {
      f.channel().write(ByteBuffer.wrap(new byte[] {1, 2, 3}));
    }
    try (var files = Files.list(tmp)) {
      assertEquals(0, files.count());
    }
  }

  /** A link's ".." after a linked folder, and a given path's, go where the OS would open them (not the text's parent). */
  @Test
  void dotDotAfterALinkedFolderIsTheOperatingSystems() throws IOException {
    Path mnt = Files.createDirectories(tmp.resolve("mnt/proj")), home = Files.createDirectories(tmp.resolve("home"));
    Files.createDirectories(tmp.resolve("mnt/runs"));
    Files.createDirectories(tmp.resolve("home/runs"));
    Files.createSymbolicLink(home.resolve("proj"), mnt);
    Files.createSymbolicLink(mnt.resolve("latest.npy"), Path.of("../runs/7.npy"));
    write(home.resolve("proj/latest.npy"), "through");
    assertEquals("through", Files.readString(tmp.resolve("mnt/runs/7.npy")));
    assertTrue(!Files.exists(tmp.resolve("home/runs/7.npy")));
    write(home.resolve("proj/../given.npy"), "given");
    assertEquals("given", Files.readString(tmp.resolve("mnt/given.npy")));
  }

  /** While the new file is written it is private (0600), whatever it will be; a replaced 0600 file stays 0600. */
  @Test
  void theTemporaryFileIsPrivateWhileWritten() throws IOException {
    Path out = tmp.resolve("secret.npy");
    Files.writeString(out, "old");
    Files.setPosixFilePermissions(out, PosixFilePermissions.fromString("rw-------"));
    try (AtomicFile f = AtomicFile.create(out)) {
      f.channel().write(ByteBuffer.wrap(new byte[] {1}));
      try (var files = Files.list(tmp)) {
        Path t = files.filter(p -> p.getFileName().toString().endsWith(".tmp")).findFirst().orElseThrow();
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(t)));
      }
      f.commit();
    }
    assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(out)));
  }

  /**
   * {@code /dev/stdout} is written through the process's descriptor: appended to a file the shell
   * opened with {@code >>}, which is not replaced; {@code /dev/full} fails the commit and stays a device.
   */
  @Test
  void standardOutputIsWrittenThroughItsDescriptor() throws Exception {
    Path log = tmp.resolve("app.log");
    Files.writeString(log, "OLD\n");
    Process p = new ProcessBuilder(java(), "-cp", System.getProperty("java.class.path"), AtomicFileStdout.class.getName(), "/dev/stdout", "NEW\n")
        .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile())).redirectError(ProcessBuilder.Redirect.INHERIT).start();
    assertTrue(p.waitFor(60, TimeUnit.SECONDS));
    assertEquals(0, p.exitValue());
    assertEquals("OLD\nNEW\nafter\n", Files.readString(log));
    org.junit.jupiter.api.Assumptions.assumeTrue(Files.exists(Path.of("/dev/full")), "no /dev/full here");
    Process full = new ProcessBuilder(java(), "-cp", System.getProperty("java.class.path"), AtomicFileStdout.class.getName(), "/dev/full", "x")
        .redirectErrorStream(true).start();
    String said = new String(full.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(full.waitFor(60, TimeUnit.SECONDS));
    assertEquals(3, full.exitValue(), said);
    assertTrue(!Files.isRegularFile(Path.of("/dev/full")), "/dev/full is still a device");
  }

  public static String java() {
    return ProcessHandle.current().info().command().orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString());
  }
}
