package dev.jclip.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.api.Clip;
import dev.jclip.testing.Reference;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Tensors are views of the mapped checkpoint, read when a tower is first prepared: a file written
 * into after loading must fail with the file named (it used to give other features without a word,
 * or fault where the file became shorter), while a file only touched, or replaced by a rename,
 * goes on with the weights that were loaded.
 */
class CheckpointChangedOnDiskTest {
  @TempDir Path dir;

  private Path copy(String relative, String name) throws IOException {
    return Files.copy(Reference.file(relative), dir.resolve(name));
  }

  /** Where {@code tensor}'s bytes start in {@code file} (they are stored there as they are). */
  private static long offsetOf(Path file, Tensor tensor) throws IOException {
    byte[] all = Files.readAllBytes(file);
    byte[] head = new byte[64];
    tensor.data().duplicate().get(head);
    outer:
    for (int i = 0; i + head.length <= all.length; i++) {
      for (int j = 0; j < head.length; j++) if (all[i + j] != head[j]) continue outer;
      return i;
    }
    throw new AssertionError(tensor.name() + "'s bytes are not in " + file);
  }

  private static void writeAt(Path file, long at, byte[] bytes) throws IOException {
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
      ch.write(ByteBuffer.wrap(bytes), at);
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"models/vit-b32-tiny/state_dict.pt", "models/vit-b32-tiny/openai-jit.pt", "models/vit-b32-tiny/hf/model.safetensors"})
  void aTensorWrittenInPlaceIsCaught(String relative) throws IOException {
    writtenInPlace(relative);
  }

  /**
   * Zip checkpoints are guarded by their entries' CRC-32, checked when first read; with that
   * check off, by a CRC-32C of each tensor taken at opening, as safetensors files are.
   */
  @ParameterizedTest
  @ValueSource(strings = {"models/vit-b32-tiny/state_dict.pt", "models/rn50-tiny/openai-jit.pt"})
  void aTensorWrittenInPlaceIsCaughtWithTheZipCheckOff(String relative) throws IOException {
    String was = System.getProperty("jclip.zip.crc");
    System.setProperty("jclip.zip.crc", "off");
    try {
      writtenInPlace(relative);
    } finally {
      if (was == null) System.clearProperty("jclip.zip.crc");
      else System.setProperty("jclip.zip.crc", was);
    }
  }

  private void writtenInPlace(String relative) throws IOException {
    Path file = copy(relative, Path.of(relative).getFileName().toString());
    try (Checkpoint ck = Checkpoint.open(file)) {
      Tensor t = ck.tensors().values().stream().filter(x -> x.byteSize() >= 4096).findFirst().orElseThrow();
      assertDoesNotThrow(ck::checkUnchanged);
      Files.setLastModifiedTime(file, FileTime.fromMillis(Files.getLastModifiedTime(file).toMillis() + 5_000));
      assertDoesNotThrow(ck::checkUnchanged, "touched only: the bytes are the same");
      long at = offsetOf(file, t) + 1000;
      writeAt(file, at, new byte[] {(byte) ~Files.readAllBytes(file)[(int) at]});
      CheckpointException e = assertThrows(CheckpointException.class, ck::checkUnchanged);
      assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains("changed on disk after the model was loaded")
          && e.getMessage().contains("rename it over the old") && e.getMessage().contains(t.name()), e.getMessage());
    }
  }

  @Test
  void aFileCutShortIsCaughtBeforeItsMappingIsRead() throws IOException {
    Path file = copy("models/vit-b32-tiny/state_dict.pt", "m.pt");
    try (Checkpoint ck = Checkpoint.open(file)) {
      long size = Files.size(file);
      try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
        ch.truncate(size / 2);
      }
      CheckpointException e = assertThrows(CheckpointException.class, ck::checkUnchanged);
      assertTrue(e.getMessage().contains("was cut short on disk after it was loaded (" + size + " bytes then, " + size / 2 + " now)"), e.getMessage());
    }
  }

  /** A folder's message names the file that changed; a file moved away and back is still watched. */
  @Test
  void aFolderNamesTheChangedFileAndAFileMovedBackIsStillWatched() throws IOException {
    Path hf = Files.createDirectories(dir.resolve("hf"));
    for (String f : new String[] {"config.json", "model.safetensors", "vocab.json", "merges.txt"}) {
      Files.copy(Reference.file("models/vit-b32-tiny/hf/" + f), hf.resolve(f));
    }
    Path st = hf.resolve("model.safetensors");
    try (Checkpoint ck = Checkpoint.open(hf)) {
      Tensor t = ck.tensors().values().stream().filter(x -> x.byteSize() >= 4096).findFirst().orElseThrow();
      writeAt(st, offsetOf(st, t) + 100, new byte[] {9, 9, 9, 9});
      CheckpointException e = assertThrows(CheckpointException.class, ck::checkUnchanged);
      assertTrue(e.getMessage().contains("(changed: model.safetensors)"), e.getMessage());
    }
    Path pt = copy("models/vit-b32-tiny/state_dict.pt", "m.pt");
    try (Checkpoint ck = Checkpoint.open(pt)) {
      Path away = dir.resolve("m.bak");
      Files.move(pt, away);
      assertDoesNotThrow(ck::checkUnchanged, "moved away: the mapping keeps it");
      Files.move(away, pt);
      try (FileChannel ch = FileChannel.open(pt, StandardOpenOption.WRITE)) {
        ch.truncate(100_000);
      }
      CheckpointException e = assertThrows(CheckpointException.class, ck::checkUnchanged);
      assertTrue(e.getMessage().contains("was cut short"), e.getMessage());
    }
  }

  @Test
  void aFileReplacedByARenameLeavesTheLoadedWeights() throws IOException {
    Path file = copy("models/vit-b32-tiny/state_dict.pt", "m.pt");
    try (Checkpoint ck = Checkpoint.open(file)) {
      Tensor t = ck.tensors().get("visual.proj");
      byte[] before = new byte[(int) t.byteSize()];
      t.data().duplicate().get(before);
      Path other = Files.copy(Reference.file("models/vit-b16-336-tiny/state_dict.pt"), dir.resolve("new.pt"));
      Files.move(other, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
      assertDoesNotThrow(ck::checkUnchanged, "the mapping keeps the file that was loaded");
      byte[] after = new byte[before.length];
      t.data().duplicate().get(after);
      assertArrayEquals(before, after);
    }
  }

  /** Through the API: the text tower, prepared after the file was written into, is refused with the file named. */
  @Test
  void clipRefusesToPrepareATowerFromAChangedFile() throws IOException {
    Path file = copy("models/vit-b32-tiny/state_dict.pt", "m.pt");
    Path vocab = Reference.file("bpe_simple_vocab_16e6.txt.gz");
    try (Clip clip = Clip.load(file.toString(), Clip.Options.defaults().withDevice("cpu").withVocabulary(vocab).withThreads(1))) {
      clip.encodeImage(clip.preprocess(Reference.file("images/rose.jpg")));
      Tensor t;
      try (Checkpoint ck = Checkpoint.open(file)) {
        t = ck.tensors().get("token_embedding.weight");
        long at = offsetOf(file, t) + 4096;
        writeAt(file, at, new byte[] {1, 2, 3, 4, 5, 6, 7, 8});
      }
      UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> clip.encodeText(clip.tokenize("a dog")));
      assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains("changed on disk"), e.getMessage());
      // the image tower, prepared before, is asked nothing and goes on
      assertEquals(1, clip.encodeImage(clip.preprocess(Reference.file("images/rose.jpg"))).length);
    }
  }
}
