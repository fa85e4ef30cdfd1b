package dev.jclip.io;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.zip.CRC32;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * The zip container of PyTorch checkpoints ({@code torch.save}) and TorchScript archives, read from
 * its central directory, with ZIP64 records where sizes or offsets exceed 32 bits.
 *
 * <p>Why not {@code java.util.zip}: {@code ZipFile} does not tell where an entry's bytes start in
 * the file, so stored entries could not be memory-mapped in place; here every stored entry is a
 * zero-copy slice of the mapped file. Every size and offset read from the file is checked against
 * the file size before use, so a damaged archive gives a {@link CheckpointException} naming the
 * entry, never an out-of-bounds access or a huge allocation. Deflated entries (PyTorch never writes
 * them, but a re-zipped archive may have them) are inflated into memory, bounded by their declared
 * size.
 *
 * <p>Every entry's bytes are checked against the CRC-32 of its central-directory record the first
 * time they are read, so a checkpoint damaged in place (a flipped bit from a bad disk or a bad copy,
 * which no size check can see) fails with the entry's name instead of loading wrong weights. The
 * check reads each byte once, at a few GB/s, when loading reads it anyway; {@code
 * -Djclip.zip.crc=off} skips it.
 */
public final class ZipArchive {
  private static final int EOCD_SIG = 0x06054b50;
  private static final int ZIP64_EOCD_SIG = 0x06064b50;
  private static final int ZIP64_LOCATOR_SIG = 0x07064b50;
  private static final int CENTRAL_SIG = 0x02014b50;
  private static final int LOCAL_SIG = 0x04034b50;
  private static final int STORED = 0;
  private static final int DEFLATED = 8;
  private static final long MAX_ARRAY = Integer.MAX_VALUE - 8;

  private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
  private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
  private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  /**
   * One member of the archive.
   *
   * @param dataOffset where its (stored or compressed) bytes start in the file
   * @param crc the CRC-32 of its uncompressed bytes, as the central directory gives it
   */
  public record Entry(String name, int method, long compressedSize, long size, long dataOffset, long crc) {}

  private final Path file;
  private final MemorySegment data;
  private final Map<String, Entry> entries;
  private final boolean checkCrc = crcProperty();
  private final Set<String> checked = ConcurrentHashMap.newKeySet();
  private final java.util.Queue<Verified> verified = new java.util.concurrent.ConcurrentLinkedQueue<>();

  /**
   * A stored entry read as a view of the mapped file whose bytes matched its CRC-32 when first
   * read: what {@link Checkpoint}'s guard checks again if the file changes, instead of taking a
   * checksum of its own at opening.
   */
  public record Verified(Path file, String name, ByteBuffer view, long crc) {}

  private ZipArchive(Path file, MemorySegment data, Map<String, Entry> entries) {
    this.file = file;
    this.data = data;
    this.entries = entries;
  }

  /** Reads the central directory of {@code file} and checks every entry's local header. */
  public static ZipArchive read(MappedFile file) throws CheckpointException {
    return new Parser(file.path(), file.segment()).parse();
  }

  /** The file, as used in error messages. */
  public Path file() {
    return file;
  }

  /**
   * The stored entries read so far whose CRC-32 was checked (none with {@code
   * -Djclip.zip.crc=off}), each once: views of the mapped file.
   */
  public List<Verified> verified() {
    return List.copyOf(verified);
  }

  /** All entries in central-directory order. */
  public List<Entry> entries() {
    return List.copyOf(entries.values());
  }

  /** The entry called {@code name}, or null. */
  public Entry entry(String name) {
    return entries.get(name);
  }

  /**
   * The uncompressed bytes of an entry, little-endian, position 0: a view of the mapped file for
   * stored entries, an inflated copy for deflated ones. The first read of an entry checks its
   * CRC-32.
   */
  public ByteBuffer bytes(Entry e) throws CheckpointException {
    if (e.size() > MAX_ARRAY) {
      throw new CheckpointException(file, e.name(), "entry of " + e.size() + " bytes is over the 2 GiB a single buffer can hold");
    }
    ByteBuffer b = e.method() == STORED
        ? data.asSlice(e.dataOffset(), e.size()).asByteBuffer().order(ByteOrder.LITTLE_ENDIAN)
        : inflate(e);
    if (checkCrc && !checked.contains(e.name())) {
      CRC32 crc = new CRC32();
      crc.update(b.duplicate());
      if (crc.getValue() != e.crc()) {
        throw new CheckpointException(
            file,
            e.name(),
            String.format("CRC-32 of the entry's %d bytes is %08x, the zip directory says %08x: the file is damaged (a bad download, copy or disk); fetch it again", e.size(), crc.getValue(), e.crc()));
      }
      checked.add(e.name());
      if (e.method() == STORED) verified.add(new Verified(file, e.name(), b.duplicate(), e.crc()));
    }
    return b;
  }

  private static boolean crcProperty() {
    String v = System.getProperty("jclip.zip.crc", "on");
    return switch (v) {
      case "on" -> true;
      case "off" -> false;
      default -> throw new IllegalArgumentException("-Djclip.zip.crc must be on or off, not '" + v + "'");
    };
  }

  private ByteBuffer inflate(Entry e) throws CheckpointException {
    Inflater inf = new Inflater(true);
    try {
      inf.setInput(data.asSlice(e.dataOffset(), e.compressedSize()).asByteBuffer());
      // Grow as data arrives instead of trusting the declared size: a damaged header cannot make us
      // allocate more than the stream really produces (and never more than it declares).
      byte[] out = new byte[(int) Math.min(e.size(), 1 << 20)];
      int n = 0;
      while (true) {
        if (n == out.length) {
          if (n >= e.size()) {
            if (!inf.finished() && inf.inflate(new byte[1]) > 0) {
              throw new CheckpointException(file, e.name(), "deflated data is longer than the declared " + e.size() + " bytes");
            }
            break;
          }
          out = java.util.Arrays.copyOf(out, (int) Math.min(e.size(), 2L * out.length));
        }
        int k = inf.inflate(out, n, out.length - n);
        n += k;
        if (k == 0 && (inf.finished() || inf.needsInput() || inf.needsDictionary())) break;
      }
      if (n != e.size()) {
        throw new CheckpointException(file, e.name(), "deflated data gives " + n + " bytes, the directory says " + e.size());
      }
      return ByteBuffer.wrap(out, 0, n).slice().order(ByteOrder.LITTLE_ENDIAN);
    } catch (DataFormatException ex) {
      throw new CheckpointException(file, e.name(), "corrupt deflated data: " + ex.getMessage(), ex);
    } catch (OutOfMemoryError oom) {
      throw new CheckpointException(file, e.name(), "not enough memory to inflate the entry's " + e.size() + " bytes (" + e.compressedSize()
          + " deflated) with a Java heap of " + Runtime.getRuntime().maxMemory() / (1 << 20) + " MB: give the JVM more (-Xmx), or re-save the"
          + " checkpoint uncompressed (torch.save stores its tensors uncompressed, and they are then mapped, not copied)", oom);
    } finally {
      inf.end();
    }
  }

  /** The parsing state; all reads go through bounds-checked helpers. */
  private static final class Parser {
    private final Path file;
    private final MemorySegment f;
    private final long size;

    Parser(Path file, MemorySegment f) {
      this.file = file;
      this.f = f;
      this.size = f.byteSize();
    }

    private CheckpointException bad(String key, String problem) {
      return new CheckpointException(file, key, problem);
    }

    private void need(long off, long len, String what) throws CheckpointException {
      if (off < 0 || len < 0 || off > size || len > size - off) {
        throw bad(null, "truncated or corrupt zip: " + what + " at offset " + off + " (+" + len + " bytes) lies outside the file of " + size + " bytes");
      }
    }

    private int u16(long off) {
      return f.get(U16, off) & 0xffff;
    }

    private long u32(long off) {
      return f.get(U32, off) & 0xffffffffL;
    }

    private long u64(long off, String key, String what) throws CheckpointException {
      long v = f.get(U64, off);
      if (v < 0) throw bad(key, what + " " + Long.toUnsignedString(v) + " is too large");
      return v;
    }

    ZipArchive parse() throws CheckpointException {
      if (size < 22) throw bad(null, "not a zip archive: " + size + " bytes is shorter than an end-of-directory record (truncated?)");
      // The end-of-central-directory record is the last 22 bytes plus a comment of up to 64 KiB.
      long eocd = -1;
      for (long p = size - 22; p >= Math.max(0, size - 22 - 65535); p--) {
        if (f.get(U32, p) == EOCD_SIG && p + 22 + u16(p + 20) == size) {
          eocd = p;
          break;
        }
      }
      if (eocd < 0) {
        throw bad(null, "no zip end-of-central-directory record found (the file is truncated or is not a zip archive)");
      }
      long count = u16(eocd + 10);
      long cdSize = u32(eocd + 12);
      long cdOffset = u32(eocd + 16);
      if (u16(eocd + 4) != 0 || u16(eocd + 6) != 0) throw bad(null, "multi-disk zip archives are not supported");
      long zip64Locator = eocd - 20;
      if (zip64Locator >= 0 && f.get(U32, zip64Locator) == ZIP64_LOCATOR_SIG) {
        long rec = u64(zip64Locator + 8, null, "ZIP64 record offset");
        need(rec, 56, "ZIP64 end-of-central-directory record");
        if (f.get(U32, rec) != ZIP64_EOCD_SIG) throw bad(null, "ZIP64 end-of-central-directory record has a bad signature at offset " + rec);
        count = u64(rec + 32, null, "ZIP64 entry count");
        cdSize = u64(rec + 40, null, "ZIP64 central directory size");
        cdOffset = u64(rec + 48, null, "ZIP64 central directory offset");
      } else if (count == 0xffff || cdSize == 0xffffffffL || cdOffset == 0xffffffffL) {
        throw bad(null, "zip archive needs ZIP64 records but has none (truncated or corrupt)");
      }
      need(cdOffset, cdSize, "central directory");
      if (cdOffset + cdSize > eocd) throw bad(null, "central directory overlaps the end record (corrupt zip)");
      if (count > cdSize / 46) throw bad(null, "zip directory claims " + count + " entries in " + cdSize + " bytes (corrupt zip)");

      Map<String, Entry> entries = new LinkedHashMap<>();
      long p = cdOffset;
      long end = cdOffset + cdSize;
      for (long i = 0; i < count; i++) {
        if (p + 46 > end) throw bad(null, "central directory ends inside entry " + i + " (corrupt zip)");
        if (f.get(U32, p) != CENTRAL_SIG) throw bad(null, "bad central directory signature at offset " + p + " (entry " + i + ")");
        int flags = u16(p + 8);
        int method = u16(p + 10);
        long crc = u32(p + 16);
        long csize = u32(p + 20);
        long usize = u32(p + 24);
        int nameLen = u16(p + 28);
        int extraLen = u16(p + 30);
        int commentLen = u16(p + 32);
        long local = u32(p + 42);
        long next = p + 46 + nameLen + extraLen + commentLen;
        if (next > end) throw bad(null, "central directory entry " + i + " runs past the directory (corrupt zip)");
        String name = decodeName(p + 46, nameLen, i);
        // ZIP64 extended information: only the fields whose 32-bit value is saturated are present.
        long x = p + 46 + nameLen;
        long xEnd = x + extraLen;
        while (x + 4 <= xEnd) {
          int id = u16(x);
          int len = u16(x + 2);
          if (x + 4 + len > xEnd) throw bad(name, "extra field runs past its entry (corrupt zip)");
          if (id == 0x0001) {
            long q = x + 4;
            long qEnd = q + len;
            if (usize == 0xffffffffL) {
              if (q + 8 > qEnd) throw bad(name, "ZIP64 extra field too short");
              usize = u64(q, name, "size");
              q += 8;
            }
            if (csize == 0xffffffffL) {
              if (q + 8 > qEnd) throw bad(name, "ZIP64 extra field too short");
              csize = u64(q, name, "compressed size");
              q += 8;
            }
            if (local == 0xffffffffL) {
              if (q + 8 > qEnd) throw bad(name, "ZIP64 extra field too short");
              local = u64(q, name, "local header offset");
            }
          }
          x += 4 + len;
        }
        if ((flags & 1) != 0) throw bad(name, "encrypted zip entries are not supported");
        if (method != STORED && method != DEFLATED) {
          throw bad(name, "zip compression method " + method + " is not supported (only stored and deflated)");
        }
        if (method == STORED && csize != usize) {
          throw bad(name, "stored entry has size " + usize + " but compressed size " + csize + " (corrupt zip)");
        }
        long dataOffset = localData(local, name, cdOffset);
        if (csize > cdOffset - dataOffset) {
          throw bad(name, "entry data (" + csize + " bytes at offset " + dataOffset + ") runs past the start of the central directory at " + cdOffset + " (truncated or corrupt zip)");
        }
        if (entries.put(name, new Entry(name, method, csize, usize, dataOffset, crc)) != null) {
          throw bad(name, "duplicate zip entry");
        }
        p = next;
      }
      return new ZipArchive(file, f, Collections.unmodifiableMap(entries));
    }

    private long localData(long local, String name, long cdOffset) throws CheckpointException {
      if (local < 0 || local + 30 > cdOffset) {
        throw bad(name, "local header offset " + local + " is outside the entry area (truncated or corrupt zip)");
      }
      if (f.get(U32, local) != LOCAL_SIG) throw bad(name, "bad local header signature at offset " + local + " (corrupt zip)");
      int nameLen = u16(local + 26);
      int extraLen = u16(local + 28);
      long data = local + 30 + nameLen + extraLen;
      if (data > cdOffset) throw bad(name, "local header runs into the central directory (corrupt zip)");
      String localName = decodeName(local + 30, nameLen, -1);
      if (!localName.equals(name)) {
        throw bad(name, "local header names '" + localName + "', the central directory '" + name + "' (corrupt zip)");
      }
      return data;
    }

    private String decodeName(long off, int len, long index) throws CheckpointException {
      need(off, len, "entry name");
      byte[] b = f.asSlice(off, len).toArray(ValueLayout.JAVA_BYTE);
      try {
        return StandardCharsets.UTF_8
            .newDecoder()
            .onMalformedInput(CodingErrorAction.REPORT)
            .onUnmappableCharacter(CodingErrorAction.REPORT)
            .decode(ByteBuffer.wrap(b))
            .toString();
      } catch (CharacterCodingException e) {
        throw bad(index >= 0 ? "entry " + index : null, "entry name is not valid UTF-8 (corrupt zip)");
      }
    }
  }

  /** Names of the entries, for messages. */
  List<String> names() {
    return new ArrayList<>(entries.keySet());
  }
}
