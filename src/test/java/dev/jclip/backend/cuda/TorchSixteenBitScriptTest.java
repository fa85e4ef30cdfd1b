package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jclip.testing.Reference;
import dev.jclip.testing.TorchOracle;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * scripts/torch-16bit.py, which the GPU bundle runs after the peer (the reference models in
 * PyTorch's own fp16 and bf16 against the golden features), runs here on the CPU where a Python
 * with PyTorch is installed (Debian's python3-torch; skipped where none is): its float32 models are
 * at the golden features (else its 16-bit rows would not count), and it reports a bf16 and an fp16
 * row per reference model (on a CPU, fp16 operations this PyTorch lacks in Half are emulated: the
 * row names them).
 */
class TorchSixteenBitScriptTest {
  @Test
  void theScriptsFloat32ModelsAreAtTheGoldenFeatures(@TempDir Path tmp) throws Exception {
    String python = TorchOracle.python();
    assumeTrue(python != null, "no python3 with PyTorch here (Debian: apt-get install python3-torch)");
    Path json = tmp.resolve("torch16.json"), log = tmp.resolve("torch16.txt");
    Process p = new ProcessBuilder(python, "scripts/torch-16bit.py", "--reference", Reference.dir().toString(), "--device", "cpu",
        "--precisions", "fp16,bf16", "--json", json.toString())
        .redirectErrorStream(true).redirectOutput(log.toFile()).start();
    boolean ended = p.waitFor(300, TimeUnit.SECONDS);
    if (!ended) p.destroyForcibly().waitFor();
    String out = Files.readString(log, StandardCharsets.UTF_8);
    assertTrue(ended, "torch-16bit.py ran past 300 s:\n" + out);
    assertEquals(0, p.exitValue(), out);
    JsonNode rows = new ObjectMapper().readTree(json.toFile()).get("rows");
    List<String> fp32 = new ArrayList<>(), bf16 = new ArrayList<>(), fp16 = new ArrayList<>();
    for (JsonNode r : rows) {
      assertTrue(!r.has("error"), r.toString());
      String model = r.get("model").asText();
      if (r.get("precision").asText().equals("fp32")) {
        assertTrue(r.get("valid").asBoolean(), r.toString());
        assertTrue(r.get("image_worst").asDouble() <= 1e-4 && r.get("text_worst").asDouble() <= 1e-4, r.toString());
        fp32.add(model);
      } else {
        // 16 bits round: a row within float32's error of the golden features would mean the cast never happened
        boolean half = r.get("precision").asText().equals("fp16");
        double rounded = half ? 1e-4 : 1e-3;
        assertTrue(r.get("image_worst").asDouble() > rounded && r.get("text_worst").asDouble() > rounded, r.toString());
        if (half) {
          fp16.add(model); // its "fp16_emulated" lists what this PyTorch lacks in Half on a CPU: empty where it lacks nothing
        } else {
          bf16.add(model);
        }
      }
    }
    assertTrue(fp32.size() >= 3, out);
    assertEquals(fp32, bf16, out);
    assertEquals(fp32, fp16, out);
  }
}
