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
class AtomicFileTest {
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
}
