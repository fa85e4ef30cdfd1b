package dev.jclip.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.testing.Reference;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import java.util.zip.ZipOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ZipArchiveTest {
  @TempDir Path tmp;

  private static byte[] array(ByteBuffer b) {
    byte[] a = new byte[b.remaining()];
    b.duplicate().get(a);
    return a;
  }

  /** Every entry of every reference checkpoint has exactly the bytes java.util.zip reads. */
  @Test
  void readsEveryReferenceEntryLikeJavaUtilZip() throws IOException {
    List<Path> files = new ArrayList<>();
    try (var models = Files.list(Reference.dir().resolve("models"))) {
      for (Path m : models.sorted().toList()) {
        for (String f : List.of("state_dict.pt", "openai-jit.pt")) if (Files.exists(m.resolve(f))) files.add(m.resolve(f));
      }
    }
    assertTrue(files.size() >= 2, "no reference checkpoints found");
    for (Path p : files) {
      MappedFile mf = MappedFile.open(p);
      try (ZipFile jz = new ZipFile(p.toFile())) {
        ZipArchive z = ZipArchive.read(mf);
        assertEquals(Collections.list(jz.entries()).size(), z.entries().size(), p.toString());
        for (ZipArchive.Entry e : z.entries()) {
          ZipEntry je = jz.getEntry(e.name());
          assertNotNull(je, e.name());
          assertArrayEquals(jz.getInputStream(je).readAllBytes(), array(z.bytes(e)), p + " " + e.name());
          // PyTorch aligns stored tensor data to 64 bytes so it can be mapped in place.
          if (e.name().contains("/data/")) assertEquals(0, e.dataOffset() % 64, e.name());
        }
      }
    }
  }

  @Test
  void zip64DirectoryWithManyEntries() throws IOException {
    // More than 65535 entries forces ZIP64 end records (java.util.zip writes them then).
    ByteArrayOutputStream bo = new ByteArrayOutputStream();
    int n = 70_000;
    try (ZipOutputStream z = new ZipOutputStream(bo)) {
      for (int i = 0; i < n; i++) {
        byte[] d = {(byte) i, (byte) (i >> 8)};
        ZipEntry ze = new ZipEntry("a/" + i);
        ze.setMethod(ZipEntry.STORED);
        ze.setSize(2);
        CRC32 c = new CRC32();
        c.update(d);
        ze.setCrc(c.getValue());
        z.putNextEntry(ze);
        z.write(d);
      }
    }
    ZipArchive z = ZipArchive.read(MappedFile.ofBytes("many.zip", bo.toByteArray()));
    assertEquals(n, z.entries().size());
    ByteBuffer b = z.bytes(z.entry("a/69999"));
    assertEquals((byte) 69999, b.get(0));
    assertEquals((byte) (69999 >> 8), b.get(1));
  }

  /** A zip of one deflated entry, x/data.pkl, holding {@code content} (as java.util.zip writes it). */
  private static byte[] deflatedZip(byte[] content) throws IOException {
    ByteArrayOutputStream bo = new ByteArrayOutputStream();
    try (ZipOutputStream z = new ZipOutputStream(bo)) {
      z.putNextEntry(new ZipEntry("x/data.pkl"));
      z.write(content);
    }
    return bo.toByteArray();
  }

  @Test
  void deflatedEntriesAreInflated() throws IOException {
    byte[] text = "hello hello hello hello hello".repeat(1000).getBytes(StandardCharsets.US_ASCII);
    ZipArchive z = ZipArchive.read(MappedFile.ofBytes("deflated.zip", deflatedZip(text)));
    assertArrayEquals(text, array(z.bytes(z.entry("x/data.pkl"))));
  }

  /**
   * A sparse file of more than 4 GiB whose only entry starts past 4 GiB: offsets must come from
   * the ZIP64 extra field and the end records, and the entry is mapped in place.
   */
  @Test
  void zip64OffsetsBeyondFourGigabytes() throws IOException {
    Path f = tmp.resolve("huge.zip");
    long local = (5L << 30) + 123;
    byte[] name = "big/data/0".getBytes(StandardCharsets.US_ASCII);
    byte[] data = "tensor bytes".getBytes(StandardCharsets.US_ASCII);
    CRC32 crc = new CRC32();
    crc.update(data);
    ByteBuffer b = ByteBuffer.allocate(4096).order(ByteOrder.LITTLE_ENDIAN);
    // local header (sizes fit 32 bits; only the offset needs ZIP64)
    b.putInt(0x04034b50).putShort((short) 45).putShort((short) 0).putShort((short) 0).putShort((short) 0).putShort((short) 0);
    b.putInt((int) crc.getValue()).putInt(data.length).putInt(data.length).putShort((short) name.length).putShort((short) 0);
    b.put(name).put(data);
    long cd = local + b.position();
    int cdStart = b.position();
    b.putInt(0x02014b50).putShort((short) 45).putShort((short) 45).putShort((short) 0).putShort((short) 0).putShort((short) 0).putShort((short) 0);
    b.putInt((int) crc.getValue()).putInt(data.length).putInt(data.length).putShort((short) name.length).putShort((short) 12);
    b.putShort((short) 0).putShort((short) 0).putShort((short) 0).putInt(0).putInt(0xffffffff);
    b.put(name).putShort((short) 1).putShort((short) 8).putLong(local);
    long cdSize = b.position() - cdStart;
    long z64 = local + b.position();
    b.putInt(0x06064b50).putLong(44).putShort((short) 45).putShort((short) 45).putInt(0).putInt(0);
    b.putLong(1).putLong(1).putLong(cdSize).putLong(cd);
    b.putInt(0x07064b50).putInt(0).putLong(z64).putInt(1);
    b.putInt(0x06054b50).putShort((short) 0).putShort((short) 0).putShort((short) 0xffff).putShort((short) 0xffff);
    b.putInt(0xffffffff).putInt(0xffffffff).putShort((short) 0);
    try (RandomAccessFile raf = new RandomAccessFile(f.toFile(), "rw")) {
      raf.seek(local);
      raf.write(b.array(), 0, b.position());
    }
    {
      MappedFile mf = MappedFile.open(f);
      assertTrue(mf.size() > (4L << 30));
      ZipArchive z = ZipArchive.read(mf);
      ZipArchive.Entry e = z.entry("big/data/0");
      assertEquals(local + 30 + name.length, e.dataOffset());
      assertArrayEquals(data, array(z.bytes(e)));
    }
  }

  @Test
  void badInputsNameTheFileAndProblem() throws IOException {
    Path real = Reference.file("models/vit-b32-tiny/state_dict.pt");
    byte[] bytes = Files.readAllBytes(real);
    // not a zip at all
    var e1 = assertThrows(CheckpointException.class, () -> ZipArchive.read(MappedFile.ofBytes("junk.pt", "not a zip file, just text........".getBytes(StandardCharsets.US_ASCII))));
    assertTrue(e1.getMessage().startsWith("junk.pt: "), e1.getMessage());
    assertTrue(e1.getMessage().contains("end-of-central-directory"), e1.getMessage());
    // truncated: the directory is gone
    MappedFile whole = MappedFile.ofBytes("cut.pt", bytes);
    var e2 = assertThrows(CheckpointException.class, () -> ZipArchive.read(whole.prefix(bytes.length / 2)));
    assertTrue(e2.getMessage().contains("cut.pt") && e2.getMessage().contains("truncated"), e2.getMessage());
    // bad local header magic of the first entry
    byte[] bad = bytes.clone();
    bad[0] = 'X';
    var e3 = assertThrows(CheckpointException.class, () -> ZipArchive.read(MappedFile.ofBytes("magic.pt", bad)));
    assertTrue(e3.getMessage().contains("magic.pt: 'state_dict/data.pkl': ") && e3.getMessage().contains("signature"), e3.getMessage());
    // empty
    assertThrows(CheckpointException.class, () -> ZipArchive.read(MappedFile.ofBytes("empty.pt", new byte[0])));
  }

  /**
   * A flipped bit inside a tensor's bytes leaves every size and offset intact; only the CRC-32 can
   * see it. Reading the entry fails naming the file and the entry, so does loading the checkpoint,
   * and {@code -Djclip.zip.crc=off} reads the damaged bytes as they are.
   */
  @Test
  void damagedEntryBytesFailTheirCrc() throws IOException {
    Path real = Reference.file("models/vit-b32-tiny/state_dict.pt");
    byte[] bytes = Files.readAllBytes(real);
    ZipArchive.Entry big = ZipArchive.read(MappedFile.ofBytes("good.pt", bytes)).entries().stream()
        .filter(x -> x.name().contains("/data/"))
        .max(java.util.Comparator.comparingLong(ZipArchive.Entry::size))
        .orElseThrow();
    int at = (int) (big.dataOffset() + big.size() / 2);
    bytes[at] ^= 0x10;
    ZipArchive z = ZipArchive.read(MappedFile.ofBytes("bitrot.pt", bytes));
    var e = assertThrows(CheckpointException.class, () -> z.bytes(z.entry(big.name())));
    assertTrue(e.getMessage().startsWith("bitrot.pt: '" + big.name() + "': CRC-32"), e.getMessage());
    assertTrue(e.getMessage().contains("damaged"), e.getMessage());
    // a second read fails the same way: a failed entry is never marked as checked
    assertThrows(CheckpointException.class, () -> z.bytes(z.entry(big.name())));
    Path copy = tmp.resolve("bitrot.pt");
    Files.write(copy, bytes);
    var e2 = assertThrows(CheckpointException.class, () -> Checkpoint.open(copy).close());
    assertTrue(e2.getMessage().contains(copy.toString()) && e2.getMessage().contains("CRC-32"), e2.getMessage());
    String old = System.getProperty("jclip.zip.crc");
    System.setProperty("jclip.zip.crc", "off");
    try {
      ZipArchive unchecked = ZipArchive.read(MappedFile.ofBytes("bitrot.pt", bytes));
      assertEquals(bytes[at], unchecked.bytes(unchecked.entry(big.name())).get((int) (at - big.dataOffset())));
    } finally {
      if (old == null) System.clearProperty("jclip.zip.crc");
      else System.setProperty("jclip.zip.crc", old);
    }
  }

  /** A deflated entry whose inflated bytes do not match its CRC-32 fails the same way. */
  @Test
  void deflatedEntriesAreCrcChecked() throws IOException {
    byte[] zip = deflatedZip("hello hello hello".repeat(100).getBytes(StandardCharsets.US_ASCII));
    ZipArchive good = ZipArchive.read(MappedFile.ofBytes("d.zip", zip));
    long crc = good.entry("x/data.pkl").crc();
    // damage the central directory's CRC field (offset 16 of the record) instead of the data
    int cd = 0;
    for (int i = zip.length - 22; i >= 0; i--) {
      if (zip[i] == 0x50 && zip[i + 1] == 0x4b && zip[i + 2] == 1 && zip[i + 3] == 2) {
        cd = i;
        break;
      }
    }
    zip[cd + 16] ^= 1;
    ZipArchive z = ZipArchive.read(MappedFile.ofBytes("d.zip", zip));
    assertEquals(crc ^ 1, z.entry("x/data.pkl").crc());
    var e = assertThrows(CheckpointException.class, () -> z.bytes(z.entry("x/data.pkl")));
    assertTrue(e.getMessage().contains("CRC-32"), e.getMessage());
  }

  /** Opens a zip and reads its first entry; prints what happened. Run in a JVM with a small heap. */
  public static final class InflateChild {
    public static void main(String[] args) throws Exception {
      try {
        ZipArchive z = ZipArchive.read(MappedFile.open(Path.of(args[0])));
        z.bytes(z.entries().get(0));
        System.out.println("read");
      } catch (CheckpointException e) {
        System.out.println("refused: " + e.getMessage());
      }
    }
  }

  /**
   * A deflated entry larger than the heap (a 256 MB storage of zeros, 250 KB in the file) is
   * refused with a CheckpointException naming it and the memory, not an OutOfMemoryError.
   */
  @Test
  void aDeflatedEntryLargerThanTheHeapIsRefusedByName() throws Exception {
    Path zip = tmp.resolve("bomb.pt");
    try (ZipOutputStream z = new ZipOutputStream(Files.newOutputStream(zip))) {
      z.putNextEntry(new ZipEntry("bomb/data/0"));
      byte[] zeros = new byte[1 << 20];
      for (int i = 0; i < 256; i++) z.write(zeros);
      z.closeEntry();
    }
    assertTrue(Files.size(zip) < 1 << 20, Files.size(zip) + " bytes");
    Process p = new ProcessBuilder(AtomicFileTest.java(), "-Xmx64m", "-cp", System.getProperty("java.class.path"), InflateChild.class.getName(),
        zip.toString()).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(120, java.util.concurrent.TimeUnit.SECONDS), "the child JVM ran past 120 s");
    assertTrue(out.contains("refused: ") && out.contains("bomb.pt") && out.contains("bomb/data/0")
        && out.contains("not enough memory to inflate the entry's 268435456 bytes"), out);
  }
}
