package dev.jclip.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.model.ClipConfig;
import dev.jclip.testing.Reference;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Damages real checkpoints (byte flips, special values, truncations; seeded) and checks that
 * reading them, renaming and inferring the configuration either succeeds (the damage hit bytes no
 * reader looks at: header dates and versions, alignment padding, entries never read) or fails with
 * a {@link CheckpointException}/{@link IOException}: never another exception, a hang or an
 * out-of-memory error. Damage to a tensor's bytes must always fail (the zip CRC-32).
 */
class CheckpointFuzzTest {
  private static final int CASES_PER_FILE = 1000;

  /** Byte ranges worth damaging: data.pkl, local headers, and the central directory at the end. */
  private static List<long[]> hotRanges(byte[] file, Path p) throws CheckpointException {
    ZipArchive z = ZipArchive.read(MappedFile.ofBytes(p.toString(), file));
    List<long[]> hot = new ArrayList<>();
    long dataEnd = 0;
    for (ZipArchive.Entry e : z.entries()) {
      hot.add(new long[] {Math.max(0, e.dataOffset() - 96), e.dataOffset()});
      if (e.name().endsWith(".pkl") || e.name().endsWith("/version")) hot.add(new long[] {e.dataOffset(), e.dataOffset() + e.size()});
      dataEnd = Math.max(dataEnd, e.dataOffset() + e.size());
    }
    hot.add(new long[] {dataEnd, file.length});
    return hot;
  }

  /** The byte ranges of the tensor storages ({@code .../data/N}). */
  private static List<long[]> tensorData(byte[] file, Path p) throws CheckpointException {
    List<long[]> ranges = new ArrayList<>();
    for (ZipArchive.Entry e : ZipArchive.read(MappedFile.ofBytes(p.toString(), file)).entries()) {
      if (e.name().matches(".*/data/\\d+")) ranges.add(new long[] {e.dataOffset(), e.dataOffset() + e.size()});
    }
    return ranges;
  }

  private static boolean inside(long at, List<long[]> ranges) {
    for (long[] r : ranges) if (at >= r[0] && at < r[1]) return true;
    return false;
  }

  private static long pick(Random r, List<long[]> hot) {
    long[] range = hot.get(r.nextInt(hot.size()));
    return range[0] + (long) (r.nextDouble() * (range[1] - range[0]));
  }

  /** The whole read path a user goes through. */
  private static void readAll(MappedFile f) throws IOException {
    Checkpoint ck = Checkpoint.read(f);
    for (Tensor t : ck.tensors().values()) {
      if (t.byteSize() > 0) t.data().get(0); // the view must be inside the buffer
    }
    ClipConfig.infer(ck);
  }

  /**
   * HuggingFace folders: damage the safetensors header (names, dtypes, shapes, offsets) of a copy
   * of each reference hf/ folder in place, then open the folder (renaming q/k/v, transposing the
   * projections) and infer the configuration.
   */
  @Test
  void damagedHuggingFaceFoldersFailCleanly(@org.junit.jupiter.api.io.TempDir Path tmp) throws IOException {
    List<Path> folders = new ArrayList<>();
    try (var s = Files.list(Reference.dir().resolve("models"))) {
      for (Path d : s.sorted().toList()) if (Files.isDirectory(d.resolve("hf"))) folders.add(d.resolve("hf"));
    }
    org.junit.jupiter.api.Assumptions.assumeFalse(folders.isEmpty(), "no hf/ folders in the reference data");
    assertTimeoutPreemptively(Duration.ofMinutes(3), () -> {
      List<String> failures = new ArrayList<>();
      int clean = 0;
      for (Path hf : folders) {
        Path copy = Files.createDirectories(tmp.resolve(hf.getParent().getFileName().toString()));
        Files.copy(hf.resolve("config.json"), copy.resolve("config.json"));
        byte[] original = Files.readAllBytes(hf.resolve("model.safetensors"));
        Path st = copy.resolve("model.safetensors");
        Files.write(st, original);
        long headerEnd = 8 + (java.nio.ByteBuffer.wrap(original, 0, 8).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong());
        Random r = new Random(77);
        for (int c = 0; c < 400; c++) {
          boolean truncate = c % 10 == 0;
          String what;
          int at = -1;
          try (java.io.RandomAccessFile raf = new java.io.RandomAccessFile(st.toFile(), "rw")) {
            if (truncate) {
              long len = (long) (r.nextDouble() * original.length);
              raf.setLength(len);
              what = "truncate to " + len;
            } else {
              at = (int) (r.nextDouble() * headerEnd);
              byte[] special = {'0', '9', '-', '"', ',', ']', 'e', 0};
              byte v = r.nextBoolean() ? (byte) (original[at] ^ (1 << r.nextInt(8))) : special[r.nextInt(special.length)];
              raf.seek(at);
              raf.write(v);
              what = "byte " + at + " = " + v;
            }
          }
          try (Checkpoint ck = Checkpoint.open(copy)) {
            for (Tensor t : ck.tensors().values()) if (t.byteSize() > 0) t.data().get(0);
            ClipConfig.infer(ck);
          } catch (IOException e) {
            clean++;
          } catch (Throwable t) {
            StringWriter sw = new StringWriter();
            t.printStackTrace(new PrintWriter(sw));
            failures.add(hf + " case " + c + " (" + what + "): " + sw.toString().lines().limit(6).toList());
          }
          if (truncate) {
            Files.write(st, original); // restore
          } else {
            try (java.io.RandomAccessFile raf = new java.io.RandomAccessFile(st.toFile(), "rw")) {
              raf.seek(at);
              raf.write(original[at]);
            }
          }
        }
      }
      assertEquals(List.of(), failures.stream().limit(20).toList(), failures.size() + " cases failed uncleanly");
      assertTrue(clean > 0, "no damaged case was detected");
      System.out.println("fuzz hf/: " + clean + " clean errors");
    });
  }

  @Test
  void damagedCheckpointsFailCleanly() throws IOException {
    List<Path> files = new ArrayList<>();
    for (String f : List.of("models/rn50-tiny/openai-jit.pt", "models/vit-b32-tiny/state_dict.pt")) files.add(Reference.file(f));
    assertTimeoutPreemptively(Duration.ofMinutes(3), () -> {
      int[] outcomes = new int[2]; // [read fine, clean error]
      List<String> failures = new ArrayList<>();
      for (Path p : files) {
        byte[] bytes = Files.readAllBytes(p);
        List<long[]> hot = hotRanges(bytes, p);
        List<long[]> tensors = tensorData(bytes, p);
        assertTrue(!tensors.isEmpty(), p + " has no tensor storages");
        MappedFile whole = MappedFile.ofBytes(p.getFileName().toString(), bytes);
        readAll(whole); // the undamaged file reads
        Random r = new Random(20261127L ^ p.getFileName().toString().hashCode());
        for (int c = 0; c < CASES_PER_FILE; c++) {
          int kind = r.nextInt(10);
          long[] at = new long[1 + r.nextInt(4)];
          byte[] saved = new byte[at.length];
          MappedFile target = whole;
          String what;
          if (kind < 3) {
            long len = kind == 0 ? (long) (r.nextDouble() * bytes.length) : pick(r, hot);
            target = whole.prefix(len);
            what = "truncate to " + len;
          } else {
            StringBuilder sb = new StringBuilder(kind < 7 ? "flip" : "set");
            for (int i = 0; i < at.length; i++) {
              at[i] = kind == 3 ? (long) (r.nextDouble() * bytes.length) : pick(r, hot);
              saved[i] = bytes[(int) at[i]];
              byte[] special = {0, (byte) 0xff, (byte) 0x7f, (byte) 0x80, 1, '.', 'X'};
              bytes[(int) at[i]] = kind < 7 ? (byte) (saved[i] ^ (1 << r.nextInt(8))) : special[r.nextInt(special.length)];
              sb.append(' ').append(at[i]);
            }
            what = sb.toString();
          }
          try {
            readAll(target);
            outcomes[0]++;
            if (kind >= 3 && kind < 7) {
              for (long a : at) if (inside(a, tensors)) failures.add(p + " case " + c + " (" + what + "): a flipped tensor byte at " + a + " went unnoticed");
            }
          } catch (IOException e) {
            outcomes[1]++;
            if (e.getMessage() == null || !e.getMessage().contains(p.getFileName().toString())) failures.add(p + " case " + c + " (" + what + "): message lacks the file: " + e.getMessage());
          } catch (Throwable t) {
            StringWriter sw = new StringWriter();
            t.printStackTrace(new PrintWriter(sw));
            failures.add(p + " case " + c + " (" + what + "): " + sw.toString().lines().limit(6).toList());
          } finally {
            if (kind >= 3) for (int i = at.length - 1; i >= 0; i--) bytes[(int) at[i]] = saved[i];
          }
        }
      }
      assertEquals(List.of(), failures.stream().limit(20).toList(), failures.size() + " of " + 2 * CASES_PER_FILE + " cases failed uncleanly");
      assertTrue(outcomes[1] > CASES_PER_FILE / 2, "too few damaged cases were detected: " + outcomes[1]);
      System.out.println("fuzz: " + outcomes[0] + " read fine (damage no reader looks at), " + outcomes[1] + " clean errors");
    });
  }
}
