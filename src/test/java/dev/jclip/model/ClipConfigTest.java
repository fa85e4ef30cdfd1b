package dev.jclip.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jclip.io.Checkpoint;
import dev.jclip.io.CheckpointException;
import dev.jclip.io.ConfigHints;
import dev.jclip.io.Tensor;
import dev.jclip.testing.Reference;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class ClipConfigTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  static List<Path> modelDirs() throws IOException {
    try (var s = Files.list(Reference.dir().resolve("models"))) {
      return s.filter(Files::isDirectory).sorted().toList();
    }
  }

  static List<Path> weightFiles(Path dir) {
    List<Path> l = new ArrayList<>();
    for (String f : List.of("state_dict.pt", "openai-jit.pt", "hf")) if (Files.exists(dir.resolve(f))) l.add(dir.resolve(f));
    return l;
  }

  /** The configuration inferred from every format equals the constructor arguments in manifest.json. */
  @Test
  void inferredConfigEqualsManifest() throws IOException {
    for (Path dir : modelDirs()) {
      JsonNode m = JSON.readTree(dir.resolve("manifest.json").toFile());
      for (Path f : weightFiles(dir)) {
        try (Checkpoint ck = Checkpoint.open(f)) {
          ClipConfig c = ClipConfig.infer(ck);
          assertEquals(m.get("constructor"), JSON.valueToTree(c.constructorArgs()), f.toString());
          assertEquals(m.get("architecture").asText(), c.architecture().referenceName(), f.toString());
          assertEquals(m.get("vision_heads").asInt(), c.visionHeads(), f.toString());
          assertEquals(Activation.QUICK_GELU, c.activation(), f.toString());
          assertEquals(Activation.GELU, c.withActivation(Activation.GELU).activation());
          // The shape table lists exactly the state dict's keys (in the reference order, which
          // torch.save and TorchScript files keep).
          if (f.endsWith("hf")) {
            assertEquals(new java.util.TreeSet<>(ck.tensors().keySet()), new java.util.TreeSet<>(c.expectedShapes().keySet()), f.toString());
          } else {
            assertEquals(List.copyOf(ck.tensors().keySet()), List.copyOf(c.expectedShapes().keySet()), f.toString());
          }
        }
      }
    }
  }

  private static Map<String, Tensor> stateDict(String model) throws IOException {
    try (Checkpoint ck = Checkpoint.open(Reference.file("models/" + model + "/state_dict.pt"))) {
      // Copy so the map outlives the mapping.
      Map<String, Tensor> m = new LinkedHashMap<>();
      for (var e : ck.tensors().entrySet()) {
        ByteBuffer b = ByteBuffer.allocate((int) e.getValue().byteSize());
        b.put(e.getValue().data()).flip();
        m.put(e.getKey(), new Tensor(e.getKey(), e.getValue().dtype(), e.getValue().shape(), b));
      }
      return m;
    }
  }

  private static Tensor zeros(String name, long... shape) {
    return new Tensor(name, dev.jclip.io.DType.F32, shape, ByteBuffer.allocate((int) Tensor.numel(shape) * 4));
  }

  @Test
  void wrongShapeNamesKeyExpectedAndFound() throws IOException {
    for (String model : List.of("vit-b32-tiny", "rn50-tiny")) {
      Path f = Path.of(model + ".pt");
      Map<String, Tensor> sd = stateDict(model);
      String key = model.startsWith("vit") ? "visual.transformer.resblocks.1.mlp.c_fc.weight" : "visual.layer2.1.conv2.weight";
      long[] good = sd.get(key).shape();
      long[] bad = good.clone();
      bad[1] += 1;
      sd.put(key, zeros(key, bad));
      var e = assertThrows(CheckpointException.class, () -> ClipConfig.infer(f, sd, ConfigHints.NONE));
      assertTrue(e.getMessage().startsWith(f + ": '" + key + "': "), e.getMessage());
      assertTrue(e.getMessage().contains(java.util.Arrays.toString(bad)) && e.getMessage().contains(java.util.Arrays.toString(good)), e.getMessage());
    }
  }

  /** A ResNet state dict without BatchNorm's num_batches_tracked (training counters) loads, as in PyTorch; its other weights stay required. */
  @Test
  void numBatchesTrackedMayBeLeftOut() throws IOException {
    Path f = Path.of("m.pt");
    Map<String, Tensor> sd = stateDict("rn50-tiny");
    ClipConfig want = ClipConfig.infer(f, sd, ConfigHints.NONE);
    int removed = 0;
    for (String k : List.copyOf(sd.keySet())) {
      if (k.endsWith(".num_batches_tracked")) {
        sd.remove(k);
        removed++;
      }
    }
    assertTrue(removed > 10, "rn50-tiny has " + removed + " num_batches_tracked");
    assertEquals(want.summary(), ClipConfig.infer(f, sd, ConfigHints.NONE).summary());
    sd.remove("visual.bn1.running_var");
    var e = assertThrows(CheckpointException.class, () -> ClipConfig.infer(f, sd, ConfigHints.NONE));
    assertTrue(e.getMessage().contains("1 weight of the inferred") && e.getMessage().contains("is missing: [visual.bn1.running_var]"), e.getMessage());
  }

  @Test
  void missingAndUnexpectedKeysAreListed() throws IOException {
    Path f = Path.of("m.pt");
    Map<String, Tensor> sd = stateDict("vit-b32-tiny");
    sd.remove("visual.ln_post.bias");
    sd.remove("transformer.resblocks.0.ln_2.weight");
    var e = assertThrows(CheckpointException.class, () -> ClipConfig.infer(f, sd, ConfigHints.NONE));
    assertTrue(e.getMessage().contains("visual.ln_post.bias") && e.getMessage().contains("transformer.resblocks.0.ln_2.weight") && e.getMessage().contains("missing"), e.getMessage());

    Map<String, Tensor> sd2 = stateDict("vit-b32-tiny");
    sd2.put("visual.transformer.resblocks.0.ls_1.gamma", zeros("g", 128));
    var e2 = assertThrows(CheckpointException.class, () -> ClipConfig.infer(f, sd2, ConfigHints.NONE));
    assertTrue(e2.getMessage().contains("ls_1.gamma"), e2.getMessage());

    // Nothing to infer from: every missing key is listed.
    Map<String, Tensor> sd3 = new LinkedHashMap<>();
    sd3.put("visual.proj", zeros("visual.proj", 4, 4));
    var e3 = assertThrows(CheckpointException.class, () -> ClipConfig.infer(f, sd3, ConfigHints.NONE));
    for (String k : List.of("text_projection", "positional_embedding", "token_embedding.weight", "ln_final.weight", "visual.conv1.weight", "visual.positional_embedding")) {
      assertTrue(e3.getMessage().contains(k), e3.getMessage());
    }
  }

  @Test
  void positionalEmbeddingMustBeASquareGrid() throws IOException {
    Map<String, Tensor> sd = stateDict("vit-b32-tiny");
    sd.put("visual.positional_embedding", zeros("visual.positional_embedding", 51, 128));
    var e = assertThrows(CheckpointException.class, () -> ClipConfig.infer(Path.of("g.pt"), sd, ConfigHints.NONE));
    assertTrue(e.getMessage().contains("'visual.positional_embedding'") && e.getMessage().contains("51"), e.getMessage());
  }

  @Test
  void hintsOverrideHeadsAndActivation() throws IOException {
    Map<String, Tensor> sd = stateDict("vit-b32-tiny");
    ClipConfig c = ClipConfig.infer(Path.of("h.pt"), sd, new ConfigHints("gelu", 4, 1, Map.of(), Path.of("config.json")));
    assertEquals(Activation.GELU, c.activation());
    assertEquals(4, c.visionHeads());
    assertEquals(1, c.transformerHeads());
    var e = assertThrows(CheckpointException.class, () -> ClipConfig.infer(Path.of("h.pt"), sd, new ConfigHints("swish", null, null, Map.of(), Path.of("config.json"))));
    assertTrue(e.getMessage().startsWith("config.json: 'hidden_act': ") && e.getMessage().contains("swish"), e.getMessage());
    assertEquals(Activation.QUICK_GELU, Activation.parse("QuickGELU".replace("GELU", "_gelu")));
  }
}
