package dev.jclip.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jclip.testing.Reference;
import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class TokenizerTest {
  private static ClipTokenizer tok;
  private static List<String> caseTexts;

  @BeforeAll
  static void load() throws Exception {
    tok = ClipTokenizer.load(Reference.file("bpe_simple_vocab_16e6.txt.gz"));
    ObjectMapper json = new ObjectMapper();
    caseTexts = new ArrayList<>();
    for (String line : Files.readAllLines(Reference.file("tokenizer/cases.jsonl"))) {
      if (!line.isBlank()) caseTexts.add(json.readTree(line).get("text").asText());
    }
  }

  @Test
  void tokenizeFramesPadsAndTruncatesLikeTheReference() {
    int[] ids = tok.encode("a photo of a cat");
    int[] row = tok.tokenize("a photo of a cat", 77, false);
    assertEquals(77, row.length);
    assertEquals(49406, row[0]);
    assertArrayEquals(ids, Arrays.copyOfRange(row, 1, 1 + ids.length));
    assertEquals(49407, row[ids.length + 1]);
    for (int i = ids.length + 2; i < 77; i++) assertEquals(0, row[i]);

    String longText = "word ".repeat(100);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> tok.tokenize(longText, 77, false));
    assertTrue(e.getMessage().contains("\"word word") && e.getMessage().contains("77"), e.getMessage());
    int[] cut = tok.tokenize(longText, 77, true);
    assertEquals(49407, cut[76]);
    assertArrayEquals(Arrays.copyOf(tok.encode(longText), 75), Arrays.copyOfRange(cut, 1, 76));
    assertArrayEquals(new int[] {49407}, tok.tokenize("a cat", 1, true));
    assertThrows(IllegalArgumentException.class, () -> tok.tokenize("a", 0, true));
  }

  @Test
  void decodeRoundTripsTheCleanedText() {
    assertEquals("a photo of a cat . ", tok.decode(tok.encode("A photo of a cat.")));
    for (String text : caseTexts) {
      String cleaned = TextCleaner.clean(text).replace("\u0345", "");
      String decoded = tok.decode(tok.encode(text));
      assertEquals(cleaned.replace(" ", ""), decoded.replace(" ", ""), "round trip of " + text);
    }
    // Ids that cut a character in half decode to U+FFFD, as errors="replace" does.
    int leadByte = tok.vocabulary().id(String.valueOf(ByteEncoder.encode(0xC3)));
    assertEquals("\uFFFDa ", tok.decode(new int[] {leadByte, tok.vocabulary().id("a</w>")}));
    assertThrows(IllegalArgumentException.class, () -> tok.decode(new int[] {49408}));
  }

  @Test
  void specialTokenLiteralsAndCaseFolding() {
    assertArrayEquals(new int[] {49407}, tok.encode("<|endoftext|>"));
    assertArrayEquals(new int[] {49406}, tok.encode("<|STARTOFTEXT|>"));
    // A run of punctuation swallows the '<|', so the literal is not recognized there.
    assertTrue(tok.encode("!<|endoftext|>").length > 1);
    // IGNORECASE: long s matches 's' in the pattern, but the token is no longer the literal.
    assertEquals(List.of("<|ſtartoftext|>"), split("<|ſtartoftext|>"));
    assertTrue(tok.encode("<|ſtartoftext|>").length > 1);
    // U+0345 matches no alternative of the pattern and disappears.
    assertArrayEquals(tok.encode("a b"), tok.encode("a\u0345b"));
  }

  @Test
  void preTokenizerSplitsLikeThePattern() {
    assertEquals(List.of("it", "'s", "a", "'ll", "1", "2", "!?", "<|endoftext|>", "ab", "\u0301", "c"),
        split("it's a'll 12 !? <|endoftext|> ab\u0301c"));
    assertEquals(List.of("!<|", "endoftext", "|>"), split("!<|endoftext|>"));
    assertEquals(List.of("''", "s"), split("''s"));
    assertEquals(List.of("日本語", "😀👍"), split("日本語 😀👍"));
    assertEquals(List.of("a", "b"), split("a\u0345b"));
    assertEquals(List.of("x", "'ſ"), split("x'ſ"));
  }

  private static List<String> split(String s) {
    List<String> out = new ArrayList<>();
    PreTokenizer.split(s, (t, a, b) -> out.add(t.substring(a, b)));
    return out;
  }

  @Test
  void badInputsGiveDefinedResults() {
    // Lone surrogates become U+FFFD (ftfy's fix_surrogates), in either order.
    assertArrayEquals(tok.encode("a \uFFFD b"), tok.encode("a \ud800 b"));
    assertArrayEquals(tok.encode("\uFFFD\uFFFD"), tok.encode("\udc00\ud800"));
    // Control characters are removed or count as whitespace.
    StringBuilder controls = new StringBuilder();
    for (char c = 0; c < 0x20; c++) controls.append(c);
    controls.append('\u007f');
    assertArrayEquals(new int[0], tok.encode(controls.toString()));
    assertArrayEquals(tok.encode("a b"), tok.encode("a\u0000\u0007 \u2028b"));
    // ftfy reads a C1 control as Windows-1252: U+0085 is an ellipsis, not a line break.
    assertArrayEquals(tok.encode("a…b"), tok.encode("a\u0085b"));
    assertArrayEquals(new int[0], tok.encode(""));
  }

  @Test
  void megabyteInputsFinish() {
    // Guards against hangs and stack overflows (not a performance test).
    assertTimeoutPreemptively(Duration.ofSeconds(120), () -> {
      int mb = 1 << 20;
      assertTrue(tok.encode("a".repeat(mb)).length > 1000);
      assertTrue(tok.encode("photo of a dog, ".repeat(mb / 16)).length > mb / 8);
      assertTrue(tok.encode("Ã©".repeat(mb / 2)).length > 0);
      assertTrue(tok.encode("&amp;".repeat(mb / 5)).length > 0);
      assertTrue(tok.encode("😀".repeat(mb / 2)).length > 0);
      assertTrue(tok.encode("!".repeat(mb)).length > 0);
      assertTrue(tok.encode("1".repeat(mb)).length == mb);
      assertTrue(tok.encode("\u0301".repeat(mb)).length > 0);
    });
  }

  @Test
  void sharedAcrossThreadsGivesTheSameIds() throws Exception {
    ClipTokenizer small = new ClipTokenizer(tok.vocabulary(), 64); // tiny cache: constant eviction
    List<int[]> expected = new ArrayList<>();
    for (String t : caseTexts) expected.add(tok.encode(t));
    try (ExecutorService pool = Executors.newFixedThreadPool(4)) {
      List<Future<Boolean>> results = new ArrayList<>();
      for (int k = 0; k < 4; k++) {
        int offset = k;
        results.add(pool.submit(() -> {
          for (int i = 0; i < caseTexts.size(); i++) {
            int j = (i * 7 + offset * 131) % caseTexts.size();
            if (!Arrays.equals(expected.get(j), small.encode(caseTexts.get(j)))) return false;
          }
          return true;
        }));
      }
      for (Future<Boolean> f : results) assertTrue(f.get());
    }
  }
}
