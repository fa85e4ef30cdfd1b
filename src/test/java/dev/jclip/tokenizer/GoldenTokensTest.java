package dev.jclip.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jclip.io.Tensor;
import dev.jclip.testing.Reference;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The {@code tokens} of every model's golden file: clip.tokenize(texts, truncate=True). */
class GoldenTokensTest {
  @Test
  void goldenTokensOfEveryModel() throws Exception {
    ClipTokenizer tok = ClipTokenizer.load(Reference.file("bpe_simple_vocab_16e6.txt.gz"));
    ObjectMapper json = new ObjectMapper();
    int models = 0;
    try (var dirs = Files.list(Reference.file("models"))) {
      for (var dir : dirs.sorted().toList()) {
        var golden = dir.resolve("golden.safetensors");
        if (!Files.exists(golden)) continue;
        models++;
        // safetensors: u64 header length, JSON header, then the data of each tensor.
        byte[] file = Files.readAllBytes(golden);
        ByteBuffer b = ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN);
        int headerLength = (int) b.getLong(0);
        JsonNode header = json.readTree(new String(file, 8, headerLength, StandardCharsets.UTF_8));
        JsonNode spec = header.get("tokens");
        assertEquals("I32", spec.get("dtype").asText(), golden.toString());
        List<String> texts = new ArrayList<>();
        for (JsonNode t : json.readTree(header.get("__metadata__").get("texts").asText())) texts.add(t.asText());
        int rows = spec.get("shape").get(0).asInt();
        int cols = spec.get("shape").get(1).asInt();
        int start = 8 + headerLength + spec.get("data_offsets").get(0).asInt();
        int[] want = new int[rows * cols];
        for (int i = 0; i < want.length; i++) want[i] = b.getInt(start + 4 * i);

        Tensor got = tok.tokenizeToTensor(texts, cols, true);
        assertArrayEquals(new long[] {rows, cols}, got.shape());
        int[] gotIds = new int[rows * cols];
        got.data().asIntBuffer().get(gotIds);
        assertArrayEquals(want, gotIds, golden.toString());
      }
    }
    assertEquals(true, models > 0, "no golden files found");
  }
}
