package dev.jclip.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jclip.model.Activation;
import dev.jclip.model.ClipConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * HuggingFace and open_clip folders and wrapped training checkpoints, built in a temporary folder
 * from each reference model's state_dict.pt (renamed by the test's own {@link HfNames}), so every
 * model of the reference set is covered whatever formats it ships.
 */
class CheckpointFolderTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  @TempDir Path tmp;

  /** A CLIPConfig config.json for the manifest's constructor arguments. */
  private static ObjectNode hfConfig(JsonNode ctor, String act) {
    ObjectNode c = JSON.createObjectNode();
    c.put("projection_dim", ctor.get("embed_dim").asInt());
    ObjectNode t = c.putObject("text_config");
    t.put("hidden_size", ctor.get("transformer_width").asInt());
    t.put("num_attention_heads", ctor.get("transformer_heads").asInt());
    t.put("num_hidden_layers", ctor.get("transformer_layers").asInt());
    t.put("max_position_embeddings", ctor.get("context_length").asInt());
    t.put("vocab_size", ctor.get("vocab_size").asInt());
    t.put("hidden_act", act);
    ObjectNode v = c.putObject("vision_config");
    v.put("hidden_size", ctor.get("vision_width").asInt());
    v.put("num_attention_heads", ctor.get("vision_width").asInt() / 64);
    v.put("num_hidden_layers", ctor.get("vision_layers").asInt());
    v.put("image_size", ctor.get("image_resolution").asInt());
    v.put("patch_size", ctor.get("vision_patch_size").asInt());
    v.put("hidden_act", act);
    return c;
  }

  @Test
  void huggingFaceFoldersWithPytorchBinSingleAndSharded() throws IOException {
    for (Path dir : TorchArchiveTest.modelDirs()) {
      JsonNode m = JSON.readTree(dir.resolve("manifest.json").toFile());
      if (!m.get("architecture").asText().equals("ViT")) continue; // no ResNet in HuggingFace
      try (Checkpoint sd = Checkpoint.open(dir.resolve("state_dict.pt"))) {
        Map<String, Tensor> hf = HfNames.toHuggingFace(sd.tensors());
        Path single = Files.createDirectories(tmp.resolve(dir.getFileName() + "-hf"));
        JSON.writeValue(single.resolve("config.json").toFile(), hfConfig(m.get("constructor"), "quick_gelu"));
        Files.write(single.resolve("pytorch_model.bin"), TorchSaveWriter.write(hf, "", false));

        Path sharded = Files.createDirectories(tmp.resolve(dir.getFileName() + "-hf-sharded"));
        JSON.writeValue(sharded.resolve("config.json").toFile(), hfConfig(m.get("constructor"), "gelu"));
        Map<String, Tensor> a = new LinkedHashMap<>();
        Map<String, Tensor> b = new LinkedHashMap<>();
        ObjectNode index = JSON.createObjectNode();
        ObjectNode weightMap = index.putObject("weight_map");
        for (var e : hf.entrySet()) {
          boolean first = e.getKey().startsWith("vision_model.");
          (first ? a : b).put(e.getKey(), e.getValue());
          weightMap.put(e.getKey(), first ? "pytorch_model-00001-of-00002.bin" : "pytorch_model-00002-of-00002.bin");
        }
        Files.write(sharded.resolve("pytorch_model-00001-of-00002.bin"), TorchSaveWriter.write(a, "", false));
        Files.write(sharded.resolve("pytorch_model-00002-of-00002.bin"), TorchSaveWriter.write(b, "", false));
        JSON.writeValue(sharded.resolve("pytorch_model.bin.index.json").toFile(), index);

        for (Path folder : new Path[] {single, sharded}) {
          try (Checkpoint ck = Checkpoint.open(folder)) {
            assertEquals(Checkpoint.Format.HUGGINGFACE, ck.format());
            assertEquals(CanonicalNames.Naming.HUGGINGFACE, ck.naming());
            CheckpointTest.assertSameTensors(sd.tensors(), ck.tensors(), folder.toString());
            ClipConfig c = ClipConfig.infer(ck);
            assertEquals(m.get("constructor"), JSON.valueToTree(c.constructorArgs()), folder.toString());
            assertEquals(folder == single ? Activation.QUICK_GELU : Activation.GELU, c.activation());
          }
        }
        try (Checkpoint ck = Checkpoint.open(sharded)) {
          assertEquals(2, ck.files().size());
        }

        // A config.json that disagrees with the weights is named.
        ObjectNode wrong = hfConfig(m.get("constructor"), "quick_gelu");
        wrong.put("projection_dim", m.get("constructor").get("embed_dim").asInt() + 1);
        JSON.writeValue(single.resolve("config.json").toFile(), wrong);
        try (Checkpoint ck = Checkpoint.open(single)) {
          var e = assertThrows(CheckpointException.class, () -> ClipConfig.infer(ck));
          assertTrue(e.getMessage().startsWith(single.resolve("config.json") + ": 'embed_dim': "), e.getMessage());
        }
        // A shard outside the folder is refused.
        ObjectNode evil = JSON.createObjectNode();
        evil.putObject("weight_map").put("logit_scale", "../../etc/passwd");
        JSON.writeValue(sharded.resolve("pytorch_model.bin.index.json").toFile(), evil);
        var e = assertThrows(CheckpointException.class, () -> Checkpoint.open(sharded));
        assertTrue(e.getMessage().contains("not a plain file name"), e.getMessage());
      }
    }
  }

  /** The reference hf/ folder re-written as two safetensors shards with model.safetensors.index.json. */
  @Test
  void shardedSafetensorsFolder() throws IOException {
    for (Path dir : TorchArchiveTest.modelDirs()) {
      Path hf = dir.resolve("hf");
      if (!Files.isDirectory(hf)) continue;
      Path sharded = Files.createDirectories(tmp.resolve(dir.getFileName() + "-st-sharded"));
      Files.copy(hf.resolve("config.json"), sharded.resolve("config.json"));
      java.util.List<Tensor> a = new java.util.ArrayList<>();
      java.util.List<Tensor> b = new java.util.ArrayList<>();
      ObjectNode index = JSON.createObjectNode();
      ObjectNode weightMap = index.putObject("weight_map");
      try (SafetensorsReader r = SafetensorsReader.open(hf.resolve("model.safetensors"));
          Checkpoint sd = Checkpoint.open(dir.resolve("state_dict.pt"))) {
        for (Tensor t : r.tensors()) {
          boolean first = t.name().startsWith("text_model.");
          (first ? a : b).add(t);
          weightMap.put(t.name(), first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors");
        }
        SafetensorsWriter.write(sharded.resolve("model-00001-of-00002.safetensors"), a, Map.of());
        SafetensorsWriter.write(sharded.resolve("model-00002-of-00002.safetensors"), b, Map.of());
        JSON.writeValue(sharded.resolve("model.safetensors.index.json").toFile(), index);
        try (Checkpoint ck = Checkpoint.open(sharded)) {
          assertEquals(2, ck.files().size());
          CheckpointTest.assertSameTensors(sd.tensors(), ck.tensors(), sharded.toString());
          assertEquals(JSON.readTree(dir.resolve("manifest.json").toFile()).get("constructor"), JSON.valueToTree(ClipConfig.infer(ck).constructorArgs()));
        }
        // A tensor that the index lists but no shard holds.
        weightMap.put("text_model.extra.weight", "model-00001-of-00002.safetensors");
        JSON.writeValue(sharded.resolve("model.safetensors.index.json").toFile(), index);
        var missing = assertThrows(CheckpointException.class, () -> Checkpoint.open(sharded));
        assertTrue(missing.getMessage().contains("'text_model.extra.weight'") && missing.getMessage().contains("missing from the shards"), missing.getMessage());
        // A shard that the index names but that is missing.
        Files.delete(sharded.resolve("model-00002-of-00002.safetensors"));
        var e = assertThrows(CheckpointException.class, () -> Checkpoint.open(sharded));
        assertTrue(e.getMessage().contains("model-00002-of-00002.safetensors") && e.getMessage().contains("missing"), e.getMessage());
      }
    }
  }

  @Test
  void openClipTrainingCheckpointsAndFolders() throws IOException {
    for (Path dir : TorchArchiveTest.modelDirs()) {
      JsonNode ctor = JSON.readTree(dir.resolve("manifest.json").toFile()).get("constructor");
      try (Checkpoint sd = Checkpoint.open(dir.resolve("state_dict.pt"))) {
        // {"epoch": 1, "state_dict": {"module.visual...": ...}}, as open_clip's training writes.
        Path ckpt = tmp.resolve(dir.getFileName() + "-epoch_1.pt");
        Files.write(ckpt, TorchSaveWriter.write(sd.tensors(), "module.", true));
        try (Checkpoint ck = Checkpoint.open(ckpt)) {
          assertEquals(Checkpoint.Format.TORCH_SAVE, ck.format());
          assertTrue(ck.formatDescription().contains("'state_dict'"), ck.formatDescription());
          CheckpointTest.assertSameTensors(sd.tensors(), ck.tensors(), ckpt.toString());
          assertEquals(ctor, JSON.valueToTree(ClipConfig.infer(ck).constructorArgs()));
        }
        // An open_clip hub folder: open_clip_config.json without quick_gelu means GELU.
        Path folder = Files.createDirectories(tmp.resolve(dir.getFileName() + "-open_clip"));
        ObjectNode cfg = JSON.createObjectNode();
        ObjectNode model = cfg.putObject("model_cfg");
        model.put("embed_dim", ctor.get("embed_dim").asInt());
        model.putObject("text_cfg").put("width", ctor.get("transformer_width").asInt()).put("heads", ctor.get("transformer_heads").asInt())
            .put("layers", ctor.get("transformer_layers").asInt()).put("context_length", ctor.get("context_length").asInt());
        model.putObject("vision_cfg").put("image_size", ctor.get("image_resolution").asInt()).put("width", ctor.get("vision_width").asInt());
        JSON.writeValue(folder.resolve("open_clip_config.json").toFile(), cfg);
        Files.write(folder.resolve("open_clip_pytorch_model.bin"), TorchSaveWriter.write(sd.tensors(), "", false));
        try (Checkpoint ck = Checkpoint.open(folder)) {
          assertEquals(Checkpoint.Format.OPEN_CLIP, ck.format());
          ClipConfig c = ClipConfig.infer(ck);
          assertEquals(Activation.GELU, c.activation());
          assertEquals(ctor, JSON.valueToTree(c.constructorArgs()));
        }
      }
    }
  }

  /**
   * A HuggingFace folder of a model with heads of 80 and 88 and MLPs other than 4 × width (as
   * laion's ViT-H-14 is published): the heads from config.json's num_attention_heads, the MLP widths
   * from the weights, the tensors those of the canonical state dict.
   */
  @Test
  void huggingFaceFolderWithOtherHeadSizes() throws IOException {
    ClipConfig want = dev.jclip.model.OtherHeadSizesTest.config();
    Map<String, Tensor> sd = dev.jclip.model.RandomWeights.generate(want, 9);
    Path folder = Files.createDirectories(tmp.resolve("vit-h-like-hf"));
    ObjectNode cfg = hfConfig(JSON.valueToTree(want.constructorArgs()), "gelu");
    ((ObjectNode) cfg.get("vision_config")).put("num_attention_heads", want.visionHeads()).put("intermediate_size", want.visionMlpWidth());
    ((ObjectNode) cfg.get("text_config")).put("intermediate_size", want.transformerMlpWidth());
    JSON.writeValue(folder.resolve("config.json").toFile(), cfg);
    java.util.List<Tensor> hf = new java.util.ArrayList<>();
    for (var e : HfNames.toHuggingFace(sd).entrySet()) hf.add(new Tensor(e.getKey(), e.getValue().dtype(), e.getValue().shape(), e.getValue().data()));
    SafetensorsWriter.write(folder.resolve("model.safetensors"), hf, Map.of());
    try (Checkpoint ck = Checkpoint.open(folder)) {
      assertEquals(Checkpoint.Format.HUGGINGFACE, ck.format());
      CheckpointTest.assertSameTensors(sd, ck.tensors(), folder.toString());
      ClipConfig c = ClipConfig.infer(ck);
      assertEquals(want.visionHeads(), c.visionHeads());
      assertEquals(want.transformerHeads(), c.transformerHeads());
      assertEquals(want.visionMlpWidth(), c.visionMlpWidth());
      assertEquals(want.transformerMlpWidth(), c.transformerMlpWidth());
      assertEquals(Activation.GELU, c.activation());
      assertEquals(want.summary(), c.summary());
    }
  }

  /**
   * transformers' text_config_dict / vision_config_dict override text_config / vision_config field
   * by field (they were ignored: a "gelu" there ran QuickGELU); a LayerNorm eps other than 1e-5 is
   * refused by name, as are the open_clip settings that change the computation without changing
   * the weights' names, while their reference values, written out, are taken.
   */
  @Test
  void configSettingsThatChangeTheComputationAreTakenOrRefusedByName() throws IOException {
    Path hf = dev.jclip.testing.Reference.file("models/vit-b32-tiny/hf");
    Path folder = Files.createDirectories(tmp.resolve("hf-dicts"));
    for (String f : new String[] {"model.safetensors", "vocab.json", "merges.txt"}) Files.copy(hf.resolve(f), folder.resolve(f));
    ObjectNode base = (ObjectNode) JSON.readTree(hf.resolve("config.json").toFile());
    ObjectNode cfg = base.deepCopy();
    ((ObjectNode) cfg.get("text_config")).remove("hidden_act");
    ((ObjectNode) cfg.get("vision_config")).remove("hidden_act");
    cfg.putObject("text_config_dict").put("hidden_act", "gelu");
    cfg.putObject("vision_config_dict").put("hidden_act", "gelu");
    JSON.writeValue(folder.resolve("config.json").toFile(), cfg);
    try (Checkpoint ck = Checkpoint.open(folder)) {
      assertEquals(Activation.GELU, ClipConfig.infer(ck).activation(), "the *_config_dict value wins");
    }
    ((ObjectNode) cfg.get("vision_config_dict")).put("hidden_act", "quick_gelu");
    JSON.writeValue(folder.resolve("config.json").toFile(), cfg);
    CheckpointException mixed = assertThrows(CheckpointException.class, () -> Checkpoint.open(folder));
    assertTrue(mixed.getMessage().contains("text_config_dict uses 'gelu' but vision_config_dict 'quick_gelu'"), mixed.getMessage());
    for (String tower : new String[] {"text_config", "vision_config"}) {
      ObjectNode eps = base.deepCopy();
      ((ObjectNode) eps.get(tower)).put("layer_norm_eps", 1e-6);
      JSON.writeValue(folder.resolve("config.json").toFile(), eps);
      CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoint.open(folder));
      assertTrue(e.getMessage().contains("'" + tower + ".layer_norm_eps': is 1.0E-6, which jclip does not run"), e.getMessage());
      ((ObjectNode) eps.get(tower)).put("layer_norm_eps", 1e-5);
      JSON.writeValue(folder.resolve("config.json").toFile(), eps);
      assertDoesNotThrowOpen(folder);
    }

    Path dir = TorchArchiveTest.modelDirs().stream().filter(d -> d.getFileName().toString().equals("vit-b32-tiny")).findFirst().orElseThrow();
    JsonNode ctor = JSON.readTree(dir.resolve("manifest.json").toFile()).get("constructor");
    Path oc = Files.createDirectories(tmp.resolve("open_clip-variants"));
    try (Checkpoint sd = Checkpoint.open(dir.resolve("state_dict.pt"))) {
      Files.write(oc.resolve("open_clip_pytorch_model.bin"), TorchSaveWriter.write(sd.tensors(), "", false));
    }
    String[][] refused = {
      {"text_cfg", "no_causal_mask", "true"}, {"text_cfg", "pool_type", "\"last\""}, {"text_cfg", "embed_cls", "true"},
      {"text_cfg", "norm_kwargs", "{\"eps\": 1e-6}"}, {"vision_cfg", "pool_type", "\"avg\""}, {"vision_cfg", "global_average_pool", "true"},
      {"vision_cfg", "attentional_pool", "true"}, {"vision_cfg", "norm_kwargs", "{\"eps\": 1e-6}"}, {"vision_cfg", "act_kwargs", "{\"approximate\": \"tanh\"}"},
      {"model_cfg", "norm_kwargs", "{\"eps\": 1e-6}"}, {"text_cfg", "hf_tokenizer_name", "\"bert-base-uncased\""},
      {"text_cfg", "tokenizer_kwargs", "{\"clean\": \"canonicalize\"}"}, {"vision_cfg", "no_ln_pre", "true"}, {"model_cfg", "init_logit_bias", "-10"},
    };
    for (String[] r : refused) {
      JSON.writeValue(oc.resolve("open_clip_config.json").toFile(), openClipConfig(ctor, r[0], r[1], JSON.readTree(r[2])));
      CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoint.open(oc), r[0] + "." + r[1]);
      assertTrue(e.getMessage().contains("'" + r[0] + "." + r[1] + "': is ") && e.getMessage().contains("which jclip does not run"), e.getMessage());
    }
    String[][] taken = {
      {"text_cfg", "no_causal_mask", "false"}, {"text_cfg", "pool_type", "\"argmax\""}, {"text_cfg", "norm_kwargs", "{\"eps\": 1e-5}"},
      {"vision_cfg", "pool_type", "\"tok\""}, {"vision_cfg", "global_average_pool", "false"}, {"vision_cfg", "final_ln_after_pool", "true"},
      {"vision_cfg", "norm_kwargs", "{}"}, {"text_cfg", "hf_model_name", "null"},
    };
    for (String[] r : taken) {
      JSON.writeValue(oc.resolve("open_clip_config.json").toFile(), openClipConfig(ctor, r[0], r[1], JSON.readTree(r[2])));
      assertDoesNotThrowOpen(oc);
    }
  }

  private static void assertDoesNotThrowOpen(Path folder) throws IOException {
    try (Checkpoint ck = Checkpoint.open(folder)) {
      ClipConfig.infer(ck);
    }
  }

  /** An open_clip_config.json for the manifest's constructor arguments, with {@code field} set to {@code value} in {@code where}. */
  private static ObjectNode openClipConfig(JsonNode ctor, String where, String field, JsonNode value) {
    ObjectNode cfg = JSON.createObjectNode();
    ObjectNode model = cfg.putObject("model_cfg");
    model.put("embed_dim", ctor.get("embed_dim").asInt()).put("quick_gelu", true);
    ObjectNode text = model.putObject("text_cfg").put("width", ctor.get("transformer_width").asInt()).put("heads", ctor.get("transformer_heads").asInt())
        .put("layers", ctor.get("transformer_layers").asInt()).put("context_length", ctor.get("context_length").asInt());
    ObjectNode vision = model.putObject("vision_cfg").put("image_size", ctor.get("image_resolution").asInt()).put("width", ctor.get("vision_width").asInt());
    (where.equals("text_cfg") ? text : where.equals("vision_cfg") ? vision : model).set(field, value);
    return cfg;
  }
}
