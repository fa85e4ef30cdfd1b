package dev.jclip.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.testing.Reference;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class VocabularyTest {
  private static Vocabulary openai;
  private static Vocabulary hf;

  @BeforeAll
  static void load() throws Exception {
    openai = Vocabulary.load(Reference.file("bpe_simple_vocab_16e6.txt.gz"));
    hf = Vocabulary.load(Reference.file("models/vit-b32-tiny/hf"));
  }

  @Test
  void openAiFileHasTheReferenceLayout() {
    assertEquals(49408, openai.size());
    assertEquals(49406, openai.id("<|startoftext|>"));
    assertEquals(49407, openai.id("<|endoftext|>"));
    assertEquals(0, openai.id("!"));
    assertEquals(256, openai.id("!</w>"));
    assertEquals(Vocabulary.MERGES, openai.merges().size());
  }

  @Test
  void huggingFaceFilesGiveTheSameIds() throws Exception {
    assertEquals(openai.size(), hf.size());
    for (int id = 0; id < openai.size(); id++) {
      assertEquals(openai.token(id), hf.token(id), "token of id " + id);
      assertEquals(id, hf.id(openai.token(id)));
    }
    assertEquals(openai.merges().size(), hf.merges().size());
    for (int r = 0; r < openai.merges().size(); r++) {
      assertEquals(openai.merges().get(r), hf.merges().get(r), "merge " + r);
    }
    ClipTokenizer a = new ClipTokenizer(openai);
    ClipTokenizer b = new ClipTokenizer(hf);
    for (String t : List.of("a photo of a cat", "Ünïcödé naïve café 🐱 — “quotes” &amp; entities", "日本語 the 12 ☃ <|endoftext|>")) {
      assertArrayEquals(a.tokenize(t, 77, true), b.tokenize(t, 77, true), t);
    }
    // The vocab.json path alone also finds merges.txt beside it.
    assertEquals(hf.size(), Vocabulary.load(Reference.file("models/vit-b32-tiny/hf/vocab.json")).size());
  }

  @Test
  void missingFileIsNamed(@TempDir Path dir) {
    Path missing = dir.resolve("nope.txt.gz");
    NoSuchFileException e = assertThrows(NoSuchFileException.class, () -> Vocabulary.load(missing));
    assertTrue(e.getMessage().contains(missing.toString()), e.getMessage());
  }

  @Test
  void corruptFilesGiveClearErrors(@TempDir Path dir) throws Exception {
    Path notGzip = dir.resolve("a.txt.gz");
    Files.writeString(notGzip, "this is not gzip");
    assertMessage(notGzip, "not a valid gzip file");

    Path truncated = dir.resolve("b.txt.gz");
    byte[] all = Files.readAllBytes(Reference.file("bpe_simple_vocab_16e6.txt.gz"));
    Files.write(truncated, java.util.Arrays.copyOf(all, all.length / 2));
    assertMessage(truncated, "gzip");

    Path tooShort = dir.resolve("c.txt.gz");
    writeGzip(tooShort, "#version: 0.2\ni n\nt h\n");
    assertMessage(tooShort, "lines");

    Path badMerge = dir.resolve("d.txt.gz");
    StringBuilder sb = new StringBuilder("#version\n");
    for (int i = 0; i < Vocabulary.MERGES; i++) sb.append(i == 5 ? "onlyone" : "i n").append('\n');
    writeGzip(badMerge, sb.toString());
    assertMessage(badMerge, "line 7");

    Path badJson = dir.resolve("vocab.json");
    Files.writeString(badJson, "{\"a\": ");
    Files.writeString(dir.resolve("merges.txt"), "#version: 0.2\n");
    assertMessage(badJson, "not valid JSON");

    Files.writeString(badJson, "{\"a\": 0, \"b\": 2}");
    assertMessage(badJson, "no token has id 1");

    Files.writeString(badJson, "{\"a\": 0}");
    assertMessage(badJson, "<|startoftext|>");
  }

  private static void assertMessage(Path file, String expected) {
    IOException e = assertThrows(IOException.class, () -> Vocabulary.load(file));
    assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains(expected), e.getMessage());
  }

  private static void writeGzip(Path file, String text) throws IOException {
    try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(file))) {
      out.write(text.getBytes(StandardCharsets.UTF_8));
    }
  }
}
