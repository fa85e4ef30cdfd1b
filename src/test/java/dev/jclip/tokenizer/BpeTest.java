package dev.jclip.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.jclip.testing.Reference;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Both BPE implementations against a literal transcription of the reference's string-based loop
 * (the slow, obviously correct oracle), on the real merges and on a merge table in an order no
 * learned vocabulary has.
 */
class BpeTest {
  /** The reference's {@code bpe()}: strings, min over pairs by rank, merge all occurrences. */
  static List<String> referenceBpe(String token, Map<List<String>, Integer> ranks) {
    List<String> word = new ArrayList<>();
    for (int i = 0; i < token.length() - 1; i++) word.add(String.valueOf(token.charAt(i)));
    word.add(token.charAt(token.length() - 1) + "</w>");
    while (word.size() > 1) {
      List<String> best = null;
      int bestRank = Integer.MAX_VALUE;
      for (int i = 0; i + 1 < word.size(); i++) {
        Integer r = ranks.get(List.of(word.get(i), word.get(i + 1)));
        if (r != null && r < bestRank) {
          bestRank = r;
          best = List.of(word.get(i), word.get(i + 1));
        }
      }
      if (best == null) break;
      List<String> next = new ArrayList<>();
      int i = 0;
      while (i < word.size()) {
        int j = word.subList(i, word.size()).indexOf(best.get(0));
        if (j < 0) {
          next.addAll(word.subList(i, word.size()));
          break;
        }
        next.addAll(word.subList(i, i + j));
        i += j;
        if (i < word.size() - 1 && word.get(i + 1).equals(best.get(1))) {
          next.add(best.get(0) + best.get(1));
          i += 2;
        } else {
          next.add(word.get(i));
          i += 1;
        }
      }
      word = next;
    }
    return word;
  }

  private static void check(Vocabulary v, Random random, int words, int maxLength, String alphabet) {
    Map<List<String>, Integer> ranks = new HashMap<>();
    for (int r = 0; r < v.merges().size(); r++) ranks.put(v.merges().get(r), r);
    Bpe bpe = new Bpe(v, 0);
    for (int k = 0; k < words; k++) {
      int len = 1 + random.nextInt(maxLength);
      StringBuilder sb = new StringBuilder();
      for (int i = 0; i < len; i++) sb.append(alphabet.charAt(random.nextInt(alphabet.length())));
      byte[] utf8 = sb.toString().getBytes(StandardCharsets.UTF_8);
      StringBuilder encoded = new StringBuilder();
      for (byte b : utf8) encoded.append(ByteEncoder.encode(b));
      int[] want = referenceBpe(encoded.toString(), ranks).stream().mapToInt(v::id).toArray();
      int[] word = new int[utf8.length];
      for (int i = 0; i < utf8.length; i++) {
        String c = String.valueOf(ByteEncoder.encode(utf8[i]));
        word[i] = v.id(i == utf8.length - 1 ? c + "</w>" : c);
      }
      assertArrayEquals(want, bpe.mergeSimple(word), sb.toString());
      assertArrayEquals(want, bpe.mergeHeap(word), sb.toString());
      assertArrayEquals(want, bpe.encode(sb.toString(), utf8, utf8.length), sb.toString());
    }
  }

  @Test
  void realMergesAgreeWithTheReferenceLoop() throws Exception {
    Vocabulary v = Vocabulary.load(Reference.file("bpe_simple_vocab_16e6.txt.gz"));
    Random random = new Random(1);
    check(v, random, 3000, 12, "etaoinshrdlucmfwypvbgkqjxz");
    check(v, random, 300, 200, "aaaaabbbbbananas");
    check(v, random, 300, 20, "日本語中文한국어😀éß!?.,'");
  }

  @Test
  void outOfOrderMergesStillMatchTheReference(@TempDir Path dir) throws IOException {
    // Merges whose parts appear later than the merges using them, repeated pairs, and
    // overlapping ones ("a a" then "aa a"): the round-by-round semantics matter here.
    String[] merges = {"aa a</w>", "a a", "b a", "ba a", "a b", "ab a</w>", "aa aa", "b b", "a a</w>", "bb a", "a ba"};
    Map<String, Integer> ids = new HashMap<>();
    List<String> tokens = new ArrayList<>();
    for (char c : ByteEncoder.vocabularyOrder()) tokens.add(String.valueOf(c));
    for (char c : ByteEncoder.vocabularyOrder()) tokens.add(c + "</w>");
    for (String m : merges) tokens.add(m.replace(" ", ""));
    tokens.add("<|startoftext|>");
    tokens.add("<|endoftext|>");
    StringBuilder json = new StringBuilder("{");
    for (String t : tokens) {
      if (ids.containsKey(t)) continue;
      ids.put(t, ids.size());
      if (json.length() > 1) json.append(',');
      json.append(new com.fasterxml.jackson.databind.ObjectMapper().writeValueAsString(t)).append(':').append(ids.get(t));
    }
    json.append('}');
    Files.writeString(dir.resolve("vocab.json"), json);
    Files.writeString(dir.resolve("merges.txt"), "#version: 0.2\n" + String.join("\n", merges) + "\n");
    Vocabulary v = Vocabulary.load(dir);
    check(v, new Random(2), 5000, 24, "ab");
    check(v, new Random(3), 200, 300, "aab");
  }

  @Test
  void cacheIsBoundedAndTransparent() throws Exception {
    Vocabulary v = Vocabulary.load(Reference.file("bpe_simple_vocab_16e6.txt.gz"));
    Bpe cached = new Bpe(v, 16);
    Bpe uncached = new Bpe(v, 0);
    Random random = new Random(4);
    for (int k = 0; k < 2000; k++) {
      String w = "w" + random.nextInt(100);
      byte[] b = w.getBytes(StandardCharsets.UTF_8);
      assertEquals(Arrays.toString(uncached.encode(w, b, b.length)), Arrays.toString(cached.encode(w, b, b.length)));
    }
  }
}
