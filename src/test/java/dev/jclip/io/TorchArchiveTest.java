package dev.jclip.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jclip.testing.Reference;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class TorchArchiveTest {
  static List<Path> modelDirs() throws IOException {
    try (var s = Files.list(Reference.dir().resolve("models"))) {
      List<Path> l = s.filter(Files::isDirectory).sorted().toList();
      assertFalse(l.isEmpty(), "no models in the reference data");
      return l;
    }
  }

  static String torchName(DType d) {
    return switch (d) {
      case F16 -> "float16";
      case BF16 -> "bfloat16";
      case F32 -> "float32";
      case F64 -> "float64";
      case I64 -> "int64";
      case I32 -> "int32";
      case I16 -> "int16";
      case I8 -> "int8";
      case U8 -> "uint8";
      case BOOL -> "bool";
    };
  }

  /** Asserts {@code tensors} has exactly the names, dtypes and shapes a manifest section lists, in order. */
  static void assertMatchesManifest(JsonNode section, Map<String, Tensor> tensors, String what) {
    List<String> want = new ArrayList<>();
    section.fieldNames().forEachRemaining(want::add);
    assertEquals(want, List.copyOf(tensors.keySet()), what + ": names");
    for (Iterator<Map.Entry<String, JsonNode>> it = section.fields(); it.hasNext(); ) {
      var e = it.next();
      Tensor t = tensors.get(e.getKey());
      assertEquals(e.getValue().get("dtype").asText(), torchName(t.dtype()), what + " " + e.getKey());
      long[] shape = new long[e.getValue().get("shape").size()];
      for (int i = 0; i < shape.length; i++) shape[i] = e.getValue().get("shape").get(i).asLong();
      assertArrayEquals(shape, t.shape(), what + " " + e.getKey());
    }
  }

  @Test
  void referenceCheckpointsMatchTheirManifestsAndEachOther() throws IOException {
    ObjectMapper json = new ObjectMapper();
    for (Path dir : modelDirs()) {
      JsonNode manifest = json.readTree(dir.resolve("manifest.json").toFile());
      MappedFile sdFile = MappedFile.open(dir.resolve("state_dict.pt"));
      MappedFile jitFile = MappedFile.open(dir.resolve("openai-jit.pt"));
      {
        TorchArchive sd = TorchArchive.read(sdFile);
        TorchArchive jit = TorchArchive.read(jitFile);
        assertEquals(TorchArchive.TORCH_SAVE, sd.format());
        assertEquals(TorchArchive.TORCHSCRIPT, jit.format());
        assertMatchesManifest(manifest.get("weights_state_dict"), sd.tensors(), dir + " state_dict.pt");
        assertMatchesManifest(manifest.get("weights_openai_jit"), jit.tensors(), dir + " openai-jit.pt");
        for (var e : sd.tensors().entrySet()) {
          assertEquals(e.getValue().data(), jit.tensors().get(e.getKey()).data(), dir + " " + e.getKey() + " differs between formats");
        }
      }
    }
  }

  private static byte[] stateDict(PickleBuilder body) {
    return body.stop().bytes();
  }

  private static PickleBuilder dictOf() {
    return new PickleBuilder().proto(2).global("collections", "OrderedDict").emptyTuple().reduce().mark();
  }

  @Test
  void stridedAndSharedStoragesAndOffsets() throws IOException {
    // storage 0: [0..5] as float32; "t" = its 2x3 transpose view, "row" = elements 3..5, "all" = 2x3 view
    byte[] pkl =
        stateDict(
            dictOf()
                .str("t").tensor("FloatStorage", "0", 6, 0, new long[] {3, 2}, new long[] {1, 3})
                .str("row").tensor("FloatStorage", "0", 6, 3, new long[] {3}, new long[] {1})
                .str("all").tensor("FloatStorage", "0", 6, 0, new long[] {2, 3}, new long[] {3, 1})
                .str("scalar").tensor("FloatStorage", "0", 6, 5, new long[] {}, new long[] {})
                .op('u'));
    byte[] zip = new TorchZipWriter("x").put("data.pkl", pkl).put("data/0", TorchZipWriter.floats(0, 1, 2, 3, 4, 5)).bytes();
    TorchArchive a = TorchArchive.read(MappedFile.ofBytes("syn.pt", zip));
    assertArrayEquals(new float[] {0, 3, 1, 4, 2, 5}, a.tensors().get("t").toFloatArray());
    assertArrayEquals(new float[] {3, 4, 5}, a.tensors().get("row").toFloatArray());
    assertArrayEquals(new float[] {0, 1, 2, 3, 4, 5}, a.tensors().get("all").toFloatArray());
    assertArrayEquals(new float[] {5}, a.tensors().get("scalar").toFloatArray());
    assertEquals(List.of("t", "row", "all", "scalar"), List.copyOf(a.tensors().keySet()));
  }

  @Test
  void everyStorageTypeRoundTrips() throws IOException {
    Map<String, Tensor> in = new java.util.LinkedHashMap<>();
    java.util.Random r = new java.util.Random(3);
    for (DType d : DType.values()) {
      byte[] b = new byte[6 * d.byteSize()];
      r.nextBytes(b);
      in.put("t_" + d, new Tensor("t_" + d, d, new long[] {2, 3}, java.nio.ByteBuffer.wrap(b)));
    }
    TorchArchive a = TorchArchive.read(MappedFile.ofBytes("dtypes.pt", TorchSaveWriter.write(in, "", false)));
    for (var e : in.entrySet()) {
      Tensor t = a.tensors().get(e.getKey());
      assertEquals(e.getValue().dtype(), t.dtype(), e.getKey());
      assertArrayEquals(e.getValue().shape(), t.shape(), e.getKey());
      assertEquals(e.getValue().data(), t.data(), e.getKey());
    }
  }

  @Test
  void wrappedStateDictIsFound() throws IOException {
    byte[] pkl =
        stateDict(
            new PickleBuilder().proto(2).op('}').mark()
                .str("epoch").integer(3)
                .str("state_dict").op('}').mark().str("module.w").tensor("HalfStorage", "0", 2, 0, new long[] {2}, new long[] {1}).op('u')
                .op('u'));
    byte[] zip = new TorchZipWriter("ck").put("data.pkl", pkl).put("data/0", new byte[] {0, 0x3c, 0, 0x40}).bytes();
    TorchArchive a = TorchArchive.read(MappedFile.ofBytes("wrapped.pt", zip));
    assertEquals("state_dict", a.wrapper());
    assertArrayEquals(new float[] {1, 2}, a.tensors().get("module.w").toFloatArray());
  }

  @Test
  void torchScriptModuleTreesFlattenSharedSubmodulesAndRefuseCycles() throws IOException {
    PickleBuilder p = new PickleBuilder().proto(2);
    p.global("__torch__.m", "Root").emptyTuple().op(0x81).op('q').raw(0).op('}').mark();
    p.str("lin").global("__torch__.m.___torch_mangle_3", "Linear").emptyTuple().op(0x81).op('q').raw(1).op('}').mark()
        .str("weight").tensor("FloatStorage", "0", 2, 0, new long[] {2}, new long[] {1})
        .str("training").op(0x89).str("_is_full_backward_hook").op('N')
        .op('u').op('b');
    p.str("tied").op('h').raw(1); // the same submodule under a second name
    p.str("training").op(0x89);
    p.op('u').op('b').stop();
    byte[] zip = new TorchZipWriter("archive").put("data.pkl", p.bytes()).put("data/0", TorchZipWriter.floats(7, 8))
        .put("constants.pkl", new PickleBuilder().proto(2).emptyTuple().stop().bytes()).bytes();
    TorchArchive a = TorchArchive.read(MappedFile.ofBytes("script.pt", zip));
    assertEquals(TorchArchive.TORCHSCRIPT, a.format());
    assertEquals(List.of("lin.weight", "tied.weight"), List.copyOf(a.tensors().keySet()));
    assertArrayEquals(new float[] {7, 8}, a.tensors().get("tied.weight").toFloatArray());

    // A module that contains itself.
    PickleBuilder c = new PickleBuilder().proto(2);
    c.global("__torch__.m", "Root").emptyTuple().op(0x81).op('q').raw(0).op('}').mark();
    c.str("w").tensor("FloatStorage", "0", 2, 0, new long[] {2}, new long[] {1});
    c.str("self").op('h').raw(0).op('u').op('b').stop();
    byte[] cyc = new TorchZipWriter("archive").put("data.pkl", c.bytes()).put("data/0", TorchZipWriter.floats(7, 8)).bytes();
    var e = assertThrows(CheckpointException.class, () -> TorchArchive.read(MappedFile.ofBytes("cycle.pt", cyc)));
    assertTrue(e.getMessage().contains("cycle"), e.getMessage());
  }

  private static CheckpointException fails(byte[] pkl, Map<String, byte[]> data) throws IOException {
    TorchZipWriter w = new TorchZipWriter("x").put("data.pkl", pkl);
    data.forEach(w::put);
    byte[] zip = w.bytes();
    return assertThrows(CheckpointException.class, () -> TorchArchive.read(MappedFile.ofBytes("bad.pt", zip)));
  }

  @Test
  void badTensorsNameFileAndKey() throws IOException {
    // data/1 is missing
    var e1 = fails(stateDict(dictOf().str("w").tensor("FloatStorage", "1", 2, 0, new long[] {2}, new long[] {1}).op('u')), Map.of());
    assertTrue(e1.getMessage().startsWith("bad.pt: 'x/data/1': ") && e1.getMessage().contains("missing"), e1.getMessage());
    // storage entry shorter than its declared size
    var e2 = fails(stateDict(dictOf().str("w").tensor("FloatStorage", "0", 4, 0, new long[] {4}, new long[] {1}).op('u')), Map.of("data/0", new byte[8]));
    assertTrue(e2.getMessage().startsWith("bad.pt: 'w': ") && e2.getMessage().contains("x/data/0"), e2.getMessage());
    // a view that needs more elements than the storage holds
    var e3 = fails(stateDict(dictOf().str("visual.proj").tensor("FloatStorage", "0", 2, 1, new long[] {2}, new long[] {1}).op('u')), Map.of("data/0", new byte[8]));
    assertTrue(e3.getMessage().startsWith("bad.pt: 'visual.proj': ") && e3.getMessage().contains("storage shorter than the tensor"), e3.getMessage());
    // unknown storage types (complex numbers) are named
    var e4 = fails(stateDict(dictOf().str("w").tensor("ComplexFloatStorage", "0", 1, 0, new long[] {1}, new long[] {1}).op('u')), Map.of("data/0", new byte[8]));
    assertTrue(e4.getMessage().contains("torch.ComplexFloatStorage"), e4.getMessage());
    // expanded views (stride 0 with more elements than the storage) are refused, not allocated
    var e5 = fails(stateDict(dictOf().str("w").tensor("FloatStorage", "0", 1, 0, new long[] {1 << 28}, new long[] {0}).op('u')), Map.of("data/0", new byte[4]));
    assertTrue(e5.getMessage().startsWith("bad.pt: 'w': ") && e5.getMessage().contains("expanded"), e5.getMessage());
    // no data.pkl
    byte[] zip = new TorchZipWriter("x").put("other", new byte[1]).bytes();
    var e6 = assertThrows(CheckpointException.class, () -> TorchArchive.read(MappedFile.ofBytes("nopkl.pt", zip)));
    assertTrue(e6.getMessage().contains("data.pkl"), e6.getMessage());
  }

  /**
   * A persistent id that holds itself (a list appended into a tuple inside it), or is nested
   * 200,000 deep, is refused with a short description, never walked to a StackOverflowError.
   */
  @Test
  void cyclicOrDeepPersistentIdsAreDescribedBriefly() throws IOException {
    // [] (memo 0); MARK, the list, TUPLE; APPEND: the list now holds a tuple holding the list
    byte[] cyclic = new PickleBuilder().proto(2).op(']').raw('q', 0).mark().raw('h', 0).op('t').op('a').op('Q').stop().bytes();
    var e = assertThrows(CheckpointException.class,
        () -> TorchArchive.read(MappedFile.ofBytes("cyc.pt", new TorchZipWriter("x").put("data.pkl", cyclic).bytes())));
    assertTrue(e.getMessage().contains("persistent id [([(...)])]") && e.getMessage().contains("is not a ('storage'"), e.getMessage());

    PickleBuilder deep = new PickleBuilder().proto(2);
    for (int i = 0; i < 200_000; i++) deep.op(']');
    for (int i = 0; i < 199_999; i++) deep.op('a');
    byte[] deepPkl = deep.op('Q').stop().bytes();
    e = assertThrows(CheckpointException.class,
        () -> TorchArchive.read(MappedFile.ofBytes("deep.pt", new TorchZipWriter("x").put("data.pkl", deepPkl).bytes())));
    assertTrue(e.getMessage().contains("persistent id [[[[...]]]]"), e.getMessage());

    List<Object> self = new ArrayList<>();
    self.add("a");
    self.add(self);
    assertEquals("['a', ['a', ['a', [...]]]]", Unpickler.brief(self, 80));
    assertEquals("'" + "x".repeat(10) + "...", Unpickler.brief("x".repeat(100), 11));
  }
}
