package dev.jclip.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jclip.testing.Reference;
import java.io.BufferedReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Every case of {@code tokenizer/cases.jsonl} (made by the reference SimpleTokenizer and
 * clip.tokenize): bpe, tokens77 and too_long must be identical, and so must the cleaned text. On failure the report gives the
 * count per category and the first mismatches, with whether the cleaned text already differs.
 */
class ReferenceCasesTest {
  private static ClipTokenizer tokenizer;

  @BeforeAll
  static void load() throws Exception {
    tokenizer = ClipTokenizer.load(Reference.file("bpe_simple_vocab_16e6.txt.gz"));
  }

  @Test
  void everyReferenceCaseMatches() throws Exception {
    ObjectMapper json = new ObjectMapper();
    int total = 0;
    List<String> mismatches = new ArrayList<>();
    Map<String, Integer> perCategory = new TreeMap<>();
    try (BufferedReader r = Files.newBufferedReader(Reference.file("tokenizer/cases.jsonl"), StandardCharsets.UTF_8)) {
      for (String line; (line = r.readLine()) != null; ) {
        if (line.isBlank()) continue;
        total++;
        JsonNode c = json.readTree(line);
        String text = c.get("text").asText();
        int[] wantBpe = ints(c.get("bpe"));
        int[] want77 = ints(c.get("tokens77"));
        boolean wantTooLong = c.get("too_long").asBoolean();
        String problem;
        try {
          int[] bpe = tokenizer.encode(text);
          int[] t77 = tokenizer.tokenize(text, 77, true);
          boolean tooLong = bpe.length + 2 > 77;
          problem =
              !Arrays.equals(bpe, wantBpe)
                  ? "bpe " + Arrays.toString(bpe) + " want " + Arrays.toString(wantBpe)
                  : !Arrays.equals(t77, want77)
                      ? "tokens77 " + Arrays.toString(t77)
                      : tooLong != wantTooLong ? "too_long " + tooLong : null;
          if (problem == null && wantTooLong != throwsWithoutTruncate(text)) problem = "tokenize without truncate disagrees with too_long";
          // Stricter than the ids: the cleaned text itself must be the reference's.
          if (problem == null && !TextCleaner.clean(text).equals(c.get("cleaned").asText())) problem = "cleaned text differs";
        } catch (RuntimeException e) {
          problem = "threw " + e;
        }
        if (problem != null) {
          String cleaned = TextCleaner.clean(text);
          String wantCleaned = c.get("cleaned").asText();
          perCategory.merge(c.get("category").asText(), 1, Integer::sum);
          mismatches.add("line " + total + " [" + c.get("category").asText() + "] " + json.writeValueAsString(text)
              + (cleaned.equals(wantCleaned) ? " (cleaned text matches)" : " CLEANED " + json.writeValueAsString(cleaned)
                  + " want " + json.writeValueAsString(wantCleaned)) + ": " + problem);
        }
      }
    }
    assertEquals(true, total > 0, "no cases read");
    if (!mismatches.isEmpty()) {
      fail(mismatches.size() + "/" + total + " cases differ " + perCategory + "; first ones:\n"
          + String.join("\n", mismatches.subList(0, Math.min(25, mismatches.size()))));
    }
    System.out.println("tokenizer reference cases: 0 mismatches / " + total);
  }

  private static boolean throwsWithoutTruncate(String text) {
    try {
      tokenizer.tokenize(text, 77, false);
      return false;
    } catch (IllegalArgumentException e) {
      return true;
    }
  }

  private static int[] ints(JsonNode array) {
    int[] out = new int[array.size()];
    for (int i = 0; i < out.length; i++) out[i] = array.get(i).asInt();
    return out;
  }
}
