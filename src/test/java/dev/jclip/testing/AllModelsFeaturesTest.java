package dev.jclip.testing;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.cpu.CpuBackend;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What the GPU bundle's all-models check relies on: a model made again from the stored seed is
 * the model the features were computed for (the same inputs, the same features bit for bit), and
 * the file gives back the seed and every feature exactly.
 */
class AllModelsFeaturesTest {
  @Test
  void theStoredSeedMakesTheSameModelAndTheFileKeepsEveryValue(@TempDir Path dir) throws IOException {
    long seed = TestRandom.create(getClass().getSimpleName()).nextLong();
    Map<String, float[][]> computed = AllModelsFeatures.compute(List.of("ViT-B/32"), seed);
    Path file = dir.resolve("all-models.json");
    AllModelsFeatures.write(file, seed, computed);
    AllModelsFeatures.Stored stored = AllModelsFeatures.read(file);
    assertEquals(seed, stored.seed());
    assertEquals(computed.keySet(), stored.features().keySet());
    float[][] want = computed.get("ViT-B/32");
    assertArrayEquals(want[0], stored.features().get("ViT-B/32")[0], "image features through the file");
    assertArrayEquals(want[1], stored.features().get("ViT-B/32")[1], "text features through the file");
    assertEquals(512, want[0].length);
    assertEquals(2 * 512, want[1].length);

    // the GPU machine's side: the model made again from the stored seed gives the stored features, bit for bit
    AllModelsFeatures.Model again = AllModelsFeatures.model("ViT-B/32", stored.seed());
    assertEquals(49407, again.tokens()[76], "the first text fills the context");
    try (CpuBackend cpu = new CpuBackend()) {
      float[][] got = again.features(cpu);
      assertArrayEquals(want[0], got[0], "image features of the model made again");
      assertArrayEquals(want[1], got[1], "text features of the model made again");
    }
  }

  @Test
  void aFileWithoutFeaturesIsRefusedByName(@TempDir Path dir) throws IOException {
    Path file = Files.writeString(dir.resolve("x.json"), "{\"seed\": 1, \"models\": {\"RN50\": {\"image_features\": [1.0]}}}");
    IOException e = assertThrows(IOException.class, () -> AllModelsFeatures.read(file));
    assertTrue(e.getMessage().contains("x.json") && e.getMessage().contains("RN50") && e.getMessage().contains("text_features"), e.getMessage());
  }
}
