package dev.jclip.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.testing.Reference;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CheckpointTest {
  @TempDir Path tmp;

  static void assertSameTensors(Map<String, Tensor> want, Map<String, Tensor> got, String what) {
    assertEquals(new java.util.TreeSet<>(want.keySet()), new java.util.TreeSet<>(got.keySet()), what + ": names");
    for (var e : want.entrySet()) {
      Tensor g = got.get(e.getKey());
      assertEquals(e.getValue().dtype(), g.dtype(), what + " " + e.getKey());
      assertArrayEquals(e.getValue().shape(), g.shape(), what + " " + e.getKey());
      assertEquals(e.getValue().data(), g.data(), what + " " + e.getKey() + ": bytes differ");
    }
  }

  /** Every format of every reference model gives the same canonical tensors, bit for bit. */
  @Test
  void allFormatsGiveBitIdenticalCanonicalTensors() throws IOException {
    for (Path dir : TorchArchiveTest.modelDirs()) {
      try (Checkpoint sd = Checkpoint.open(dir.resolve("state_dict.pt"));
          Checkpoint jit = Checkpoint.open(dir.resolve("openai-jit.pt"))) {
        assertEquals(Checkpoint.Format.TORCH_SAVE, sd.format());
        assertEquals(Checkpoint.Format.TORCHSCRIPT, jit.format());
        assertEquals(CanonicalNames.Naming.OPENAI, sd.naming());
        assertSameTensors(sd.tensors(), jit.tensors(), dir + " openai-jit.pt");
        assertEquals(List.of("input_resolution", "context_length", "vocab_size"), List.copyOf(jit.extras().keySet()));
        assertTrue(sd.extras().isEmpty());
        if (Files.isDirectory(dir.resolve("hf"))) {
          try (Checkpoint hf = Checkpoint.open(dir.resolve("hf"));
              Checkpoint st = Checkpoint.open(dir.resolve("hf/model.safetensors"))) {
            assertEquals(Checkpoint.Format.HUGGINGFACE, hf.format());
            assertEquals(CanonicalNames.Naming.HUGGINGFACE, hf.naming());
            assertSameTensors(sd.tensors(), hf.tensors(), dir + " hf/");
            // The bare safetensors file (no config.json) maps the same.
            assertEquals(Checkpoint.Format.SAFETENSORS, st.format());
            assertSameTensors(sd.tensors(), st.tensors(), dir + " hf/model.safetensors");
          }
        }
      }
    }
  }

  /** HF names built from the OpenAI ones (independently, in the test) map back to the same bytes. */
  @Test
  void huggingFaceNamesMapBackBitIdentically() throws IOException {
    for (Path dir : TorchArchiveTest.modelDirs()) {
      try (Checkpoint sd = Checkpoint.open(dir.resolve("state_dict.pt"))) {
        if (!sd.tensors().containsKey("visual.proj")) continue; // HuggingFace has no ResNet CLIP
        Map<String, Tensor> hf = HfNames.toHuggingFace(sd.tensors());
        CanonicalNames.Result back = CanonicalNames.canonicalize(Path.of("hf"), hf);
        assertEquals(CanonicalNames.Naming.HUGGINGFACE, back.naming());
        assertSameTensors(sd.tensors(), back.tensors(), dir + " via HF names");
      }
    }
  }

  @Test
  void wrappersAndPrefixesAreStripped() throws IOException {
    Map<String, Tensor> raw = new LinkedHashMap<>();
    Tensor w = Tensor.ofFloats("x", new long[] {2}, new float[] {1, 2});
    raw.put("module.text.token_embedding.weight", w);
    raw.put("module.text.transformer.resblocks.0.ln_1.weight", w);
    raw.put("module.text.attn_mask", w);
    raw.put("module.visual.proj", w);
    CanonicalNames.Result r = CanonicalNames.canonicalize(Path.of("oc.pt"), raw);
    assertEquals(CanonicalNames.Naming.OPEN_CLIP_CUSTOM_TEXT, r.naming());
    assertEquals(List.of("token_embedding.weight", "transformer.resblocks.0.ln_1.weight", "visual.proj"), List.copyOf(r.tensors().keySet()));
    assertEquals(List.of("attn_mask"), List.copyOf(r.extras().keySet()));
  }

  @Test
  void safetensorsInOpenAiLayoutAndBadSafetensors() throws IOException {
    // A safetensors file with OpenAI names (open_clip's open_clip_model.safetensors layout).
    Path dir = TorchArchiveTest.modelDirs().get(0);
    try (Checkpoint sd = Checkpoint.open(dir.resolve("state_dict.pt"))) {
      Path st = tmp.resolve("open_clip_model.safetensors");
      SafetensorsWriter.write(st, List.copyOf(sd.tensors().values()), Map.of("format", "pt"));
      try (Checkpoint ck = Checkpoint.open(st)) {
        assertEquals(Checkpoint.Format.SAFETENSORS, ck.format());
        assertEquals(CanonicalNames.Naming.OPENAI, ck.naming());
        assertSameTensors(sd.tensors(), ck.tensors(), st.toString());
      }
      // Truncated: clean error naming the file.
      byte[] all = Files.readAllBytes(st);
      Path cut = tmp.resolve("cut.safetensors");
      Files.write(cut, java.util.Arrays.copyOf(all, all.length - 100));
      var e = assertThrows(CheckpointException.class, () -> Checkpoint.open(cut));
      assertTrue(e.getMessage().startsWith(cut + ": "), e.getMessage());
    }
    // A header claiming 1 TB.
    Path huge = tmp.resolve("huge.safetensors");
    java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(64).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    b.putLong(1L << 40).put("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}".getBytes(java.nio.charset.StandardCharsets.US_ASCII), 0, 48);
    Files.write(huge, b.array());
    var e = assertThrows(CheckpointException.class, () -> Checkpoint.open(huge));
    assertTrue(e.getMessage().startsWith(huge + ": "), e.getMessage());
  }

  @Test
  void unknownFormatsAreNamed() throws IOException {
    Path junk = tmp.resolve("junk.bin");
    Files.write(junk, "hello world, not a checkpoint".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
    var e = assertThrows(CheckpointException.class, () -> Checkpoint.open(junk));
    assertTrue(e.getMessage().startsWith(junk + ": ") && e.getMessage().contains("unrecognized"), e.getMessage());
    Path legacy = tmp.resolve("legacy.pt");
    Files.write(legacy, new byte[] {(byte) 0x80, 2, (byte) 0x8a, 10, 0x6c, (byte) 0xfc, (byte) 0x9c, 0x46, (byte) 0xf9, 0x20});
    var e2 = assertThrows(CheckpointException.class, () -> Checkpoint.open(legacy));
    assertTrue(e2.getMessage().contains("legacy"), e2.getMessage());
    Path folder = Files.createDirectory(tmp.resolve("empty-folder"));
    var e3 = assertThrows(CheckpointException.class, () -> Checkpoint.open(folder));
    assertTrue(e3.getMessage().contains("config.json"), e3.getMessage());
    assertThrows(java.nio.file.NoSuchFileException.class, () -> Checkpoint.open(tmp.resolve("absent.pt")));
  }

  @Test
  void tensorsOutliveTheCheckpoint() throws IOException {
    Path p = Reference.file("models/vit-b32-tiny/state_dict.pt");
    Tensor t;
    float[] before;
    try (Checkpoint ck = Checkpoint.open(p)) {
      t = ck.tensor("visual.proj");
      before = t.toFloatArray();
      var e = assertThrows(CheckpointException.class, () -> ck.tensor("visual.nope"));
      assertTrue(e.getMessage().contains("'visual.nope'"), e.getMessage());
    }
    System.gc();
    // The view keeps its mapping alive: still readable, same values, after close and a GC.
    assertArrayEquals(before, t.toFloatArray());
  }
}
