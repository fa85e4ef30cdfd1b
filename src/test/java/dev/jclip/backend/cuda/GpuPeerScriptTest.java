package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jclip.testing.Reference;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * scripts/gpu-peer.py (the PyTorch peer, run only on the GPU machine) runs end to end here against
 * stand-ins for torch and transformers (src/test/python/peer-stubs: tensors with a shape, models
 * that return at once): a script that cannot start, or breaks on a later branch (the prompt set,
 * the compiled rows), costs a GPU call its peer figures, so it fails the build instead. Session
 * 20's `import torch._dynamo` inside main() made torch a local name there and the script's first
 * use of it an UnboundLocalError; this test catches that.
 */
class GpuPeerScriptTest {
  @Test
  void runsEveryBranchAndWritesItsRows(@TempDir Path dir) throws Exception {
    String python = GpuClocksScriptTest.python();
    assumeTrue(python != null, "no python3 here");
    Path json = dir.resolve("peer.json");
    ProcessBuilder pb = new ProcessBuilder(python, "scripts/gpu-peer.py", "--reference", Reference.dir().toString(), "--json", json.toString(),
        "--batches", "1,2", "--compile-batches", "2").redirectErrorStream(true);
    pb.environment().put("PYTHONPATH", Path.of("src/test/python/peer-stubs").toAbsolutePath().toString());
    Process p = pb.start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(120, TimeUnit.SECONDS), out);
    assertEquals(0, p.exitValue(), out);
    assertTrue(out.contains("torch 0.0-stub"), "the stand-in, not a real torch, ran: " + out);
    JsonNode root = new ObjectMapper().readTree(json.toFile());
    assertEquals("float16", root.get("dtype").asText());
    JsonNode rows = root.get("results");
    assertEquals(3, rows.size(), rows.toString()); // eager at 1 and 2, compiled at 2
    String[] variants = {"eager", "eager", "compile"};
    int[] batches = {1, 2, 2};
    for (int i = 0; i < 3; i++) {
      JsonNode r = rows.get(i);
      assertEquals(variants[i], r.get("variant").asText(), r.toString());
      assertEquals(batches[i], r.get("batch").asInt(), r.toString());
      assertTrue(!r.has("error"), r.toString());
      assertTrue(r.get("unix_time").asDouble() > 1.7e9, r.toString());
      for (String k : new String[] {"image_per_s", "text77_per_s", "text_prompt_per_s"}) assertTrue(r.get(k).asDouble() > 0, k + " in " + r);
      assertTrue(r.get("prompt_padded_len").asInt() > 2, r.toString());
    }
    JsonNode ps = root.get("prompt_set");
    assertTrue(ps != null && !ps.has("error"), String.valueOf(ps));
    assertEquals(80000, ps.get("prompt_set").asInt());
    assertTrue(ps.get("by_length_tokens_per_prompt").asDouble() < ps.get("given_order_tokens_per_prompt").asDouble(), ps.toString());
  }
}
