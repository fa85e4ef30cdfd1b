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
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  @TempDir Path tmp;

  private static Tensor random(String name, DType dt, Random r, long... shape) {
    byte[] b = new byte[(int) (Tensor.numel(shape) * dt.byteSize())];
    r.nextBytes(b);
    return new Tensor(name, dt, shape, ByteBuffer.wrap(b));
  }

  @Test
  void roundTripsEveryDtypeInOrderWithMetadata() throws IOException {
    Random r = new Random(42);
    List<Tensor> ts = new ArrayList<>();
    int i = 0;
    for (DType dt : DType.values()) {
      // odd sizes so that later tensors start unaligned, a scalar, and an empty tensor
      ts.add(random("z" + (i++) + "." + dt, dt, r, 3, 5));
      ts.add(random("a" + (i++) + ".scalar." + dt, dt, r));
      ts.add(random("m" + (i++) + ".empty." + dt, dt, r, 0, 4));
    }
    Map<String, String> md = new LinkedHashMap<>();
    md.put("format", "pt");
    md.put("unicode", "Ünïcödé \"quoted\" 🐱");
    Path f = tmp.resolve("all.safetensors");
    SafetensorsWriter.write(f, ts, md);

    byte[] raw = Files.readAllBytes(f);
    long hlen = ByteBuffer.wrap(raw, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
    assertEquals(0, (8 + hlen) % 8, "data must start 8-byte aligned");
    String header = new String(raw, 8, (int) hlen, StandardCharsets.UTF_8);
    assertEquals(header.strip(), header.substring(0, header.strip().length()), "padding goes after the JSON");

    try (SafetensorsReader st = SafetensorsReader.open(f)) {
      assertEquals(md, st.metadata());
      assertEquals(ts.stream().map(Tensor::name).toList(), st.names());
      for (Tensor want : ts) {
        Tensor got = st.tensor(want.name());
        assertEquals(want.dtype(), got.dtype(), want.name());
        assertArrayEquals(want.shape(), got.shape(), want.name());
        assertArrayEquals(want.toByteArray(), got.toByteArray(), want.name());
      }
      var missing = assertThrows(CheckpointException.class, () -> st.tensor("nope"));
      assertTrue(missing.getMessage().contains("nope") && missing.getMessage().contains(f.toString()));
    }
  }

  @Test
  void tensorsStayReadableAfterClose() throws IOException {
    Path f = tmp.resolve("x.safetensors");
    SafetensorsWriter.write(f, List.of(Tensor.ofFloats("x", new long[] {2}, new float[] {1.5f, -2})), null);
    Tensor x;
    try (SafetensorsReader st = SafetensorsReader.open(f)) {
      x = st.tensor("x");
      assertTrue(st.metadata().isEmpty());
    }
    assertArrayEquals(new float[] {1.5f, -2}, x.toFloatArray());
  }

  @Test
  void writerReplacesAtomicallyAndRejectsDuplicates() throws IOException {
    Path f = tmp.resolve("d.safetensors");
    Files.writeString(f, "old");
    Tensor a = Tensor.ofFloats("a", new long[] {1}, new float[] {1});
    assertThrows(IllegalArgumentException.class, () -> SafetensorsWriter.write(f, List.of(a, a), null));
    assertEquals("old", Files.readString(f), "a failed write leaves the old file");
    SafetensorsWriter.write(f, List.of(a), Map.of());
    try (SafetensorsReader st = SafetensorsReader.open(f)) {
      assertEquals(List.of("a"), st.names());
    }
    try (Stream<Path> s = Files.list(tmp)) {
      assertEquals(List.of(f), s.toList(), "no temporary files left behind");
    }
  }

  @Test
  void streamsTensorsWhoseShapesAreKnownUpFront() throws IOException {
    Path f = tmp.resolve("s.safetensors");
    List<SafetensorsWriter.Spec> specs =
        List.of(new SafetensorsWriter.Spec("a", DType.F32, new long[] {2}), new SafetensorsWriter.Spec("b", DType.U8, new long[] {3}));
    try (SafetensorsWriter.Stream s = SafetensorsWriter.open(f, specs, Map.of("k", "v"))) {
      s.write(Tensor.ofFloats("a", new long[] {2}, new float[] {1, 2}).data());
      assertThrows(IllegalArgumentException.class, () -> s.write(ByteBuffer.allocate(2)));
      assertThrows(IllegalStateException.class, s::finish);
      s.write(ByteBuffer.wrap(new byte[] {7, 8, 9}));
      s.finish();
    }
    try (SafetensorsReader st = SafetensorsReader.open(f)) {
      assertArrayEquals(new float[] {1, 2}, st.tensor("a").toFloatArray());
      assertArrayEquals(new byte[] {7, 8, 9}, st.tensor("b").toByteArray());
    }
    Path g = tmp.resolve("unfinished.safetensors");
    try (SafetensorsWriter.Stream s = SafetensorsWriter.open(g, specs, null)) {
      s.write(Tensor.ofFloats("a", new long[] {2}, new float[] {1, 2}).data());
    }
    assertFalse(Files.exists(g), "an unfinished stream leaves no file");
  }

  // ---- malformed files: each must give a CheckpointException naming the file and the problem ----

  private Path file(String name, byte[] bytes) throws IOException {
    Path f = tmp.resolve(name);
    Files.write(f, bytes);
    return f;
  }

  private Path withHeader(String name, String json, int dataBytes) throws IOException {
    byte[] h = json.getBytes(StandardCharsets.UTF_8);
    ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(h.length).put(h);
    return file(name, b.array());
  }

  private static Path lengthClaim(Path f, long claim, int fileSize) throws IOException {
    ByteBuffer b = ByteBuffer.allocate(fileSize).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(claim);
    Files.write(f, b.array());
    return f;
  }

  private static void assertBad(Path f, String... fragments) {
    CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsReader.open(f).close());
    String m = e.getMessage();
    assertTrue(m.contains(f.toString()), "message names the file: " + m);
    for (String frag : fragments) assertTrue(m.contains(frag), "message has '" + frag + "': " + m);
  }

  @Test
  void emptyAndTinyFiles() throws IOException {
    assertBad(file("empty.safetensors", new byte[0]), "0 bytes");
    assertBad(file("seven.safetensors", new byte[7]), "7 bytes");
    assertBad(file("zero-header.safetensors", new byte[8]), "header");
  }

  /** A safetensors file whose header is JSON but not an object is named as such through Checkpoint.open, not as an unknown format. */
  @Test
  void aHeaderThatIsNotAnObjectIsSaidToBeSo() throws IOException {
    byte[] json = "[1, 2]  ".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
    ByteBuffer b = ByteBuffer.allocate(8 + json.length + 16).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(json.length).put(json);
    Path f = file("array.safetensors", b.array());
    CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoint.open(f).close());
    assertTrue(e.getMessage().contains("header is not a JSON object"), e.getMessage());
  }

  /** HuggingFace q, k and v projections of different types: all three are listed. */
  @Test
  void qkvProjectionsThatDifferAreAllNamed() throws IOException {
    Map<String, Tensor> hf = new java.util.LinkedHashMap<>();
    try (Checkpoint ck = Checkpoint.open(dev.jclip.testing.Reference.file("models/vit-b32-tiny/state_dict.pt"))) {
      hf.putAll(HfNames.toHuggingFace(ck.tensors()));
    }
    String q = "text_model.encoder.layers.0.self_attn.q_proj.weight";
    Tensor t = hf.get(q);
    hf.put(q, new Tensor(q, DType.I16, t.shape(), ByteBuffer.allocate((int) (t.numel() * 2)).order(ByteOrder.LITTLE_ENDIAN)));
    CheckpointException e = assertThrows(CheckpointException.class, () -> CanonicalNames.canonicalize(Path.of("model.safetensors"), hf));
    assertTrue(e.getMessage().contains("q_proj.weight I16[") && e.getMessage().contains(", k_proj.weight ") && e.getMessage().contains(", v_proj.weight "),
        e.getMessage());
  }

  @Test
  void headerLengthClaims() throws IOException {
    assertBad(lengthClaim(tmp.resolve("trunc.safetensors"), 100, 50), "header length 100", "file size 50");
    assertBad(lengthClaim(tmp.resolve("tera.safetensors"), 1L << 40, 64), "header length 1099511627776");
    assertBad(lengthClaim(tmp.resolve("huge.safetensors"), -1L, 64), "header length 18446744073709551615");
    // A header above the 100 MB cap in a file that is big enough (sparse, so it costs no disk).
    Path big = tmp.resolve("cap.safetensors");
    try (FileChannel ch = FileChannel.open(big, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      ch.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 150_000_000L));
      ch.write(ByteBuffer.wrap(new byte[] {' '}), 150_000_100L);
    }
    assertBad(big, "exceeds the limit");
  }

  @Test
  void badJson() throws IOException {
    assertBad(withHeader("bad.safetensors", "{\"a\": {\"dtype\": ", 0), "not valid JSON");
    assertBad(withHeader("array.safetensors", "[1,2,3]", 0), "not a JSON object");
    assertBad(withHeader("trailing.safetensors", "{} {}", 0), "not valid JSON");
    assertBad(
        withHeader(
            "dup.safetensors",
            "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                + "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
            2),
            "not valid JSON", "Duplicate");
    assertBad(withHeader("entry.safetensors", "{\"a\": 5}", 0), "'a'", "expected an object");
    // a shape of a million zeros (a header that would take hundreds of MB as longs): refused by its length
    String dims = "[" + "0,".repeat(999_999) + "0]";
    assertBad(withHeader("dims.safetensors", "{" + entry("a", "F32", dims, 0, 0) + "}", 0), "'shape' has 1000000 dimensions, more than the 64");
    assertBad(withHeader("md.safetensors", "{\"__metadata__\": {\"k\": 1}}", 0), "__metadata__", "not a string");
    byte[] latin = {'{', '"', (byte) 0xff, '"', ':', '1', '}'};
    ByteBuffer b = ByteBuffer.allocate(8 + latin.length).order(ByteOrder.LITTLE_ENDIAN).putLong(latin.length).put(latin);
    assertBad(file("utf8.safetensors", b.array()), "UTF-8");
  }

  private static String entry(String name, String dtype, String shape, long begin, long end) {
    return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" + begin + "," + end + "]}";
  }

  @Test
  void badEntries() throws IOException {
    assertBad(withHeader("range.safetensors", "{" + entry("w", "F32", "[4]", 0, 16) + "}", 8), "'w'", "past the end");
    assertBad(withHeader("order.safetensors", "{" + entry("w", "U8", "[0]", 8, 4) + "}", 8), "'w'", "begin is after end");
    assertBad(
        withHeader("overlap.safetensors", "{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 4, 12) + "}", 12),
        "overlap");
    assertBad(withHeader("size.safetensors", "{" + entry("w", "F16", "[2,3]", 0, 8) + "}", 8), "'w'", "needs 12 bytes");
    assertBad(withHeader("dtype.safetensors", "{" + entry("w", "F8_E9", "[1]", 0, 1) + "}", 1), "'w'", "unknown dtype 'F8_E9'");
    assertBad(withHeader("neg.safetensors", "{" + entry("w", "U8", "[-1]", 0, 0) + "}", 0), "'w'", "non-negative");
    assertBad(withHeader("float.safetensors", "{" + entry("w", "U8", "[1.5]", 0, 0) + "}", 0), "'w'", "non-negative integer");
    assertBad(
        withHeader("bigshape.safetensors", "{" + entry("w", "F64", "[4294967296,4294967296]", 0, 0) + "}", 0),
        "'w'", "overflows");
    assertBad(
        withHeader("huge-offset.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,99999999999999999999]}}", 0),
        "'w'", "below 2^63");
    assertBad(withHeader("noshape.safetensors", "{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1), "'w'", "shape");
    assertBad(withHeader("nooffsets.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1), "'w'", "data_offsets");
  }

  @Test
  void missingFileIsAnIoError() {
    Path f = tmp.resolve("nothing-here.safetensors");
    var e = assertThrows(IOException.class, () -> SafetensorsReader.open(f));
    assertTrue(e.getMessage().contains(f.toString()));
  }

  // ---- the reference files ----

  @Test
  void readsThePreprocessReference() throws IOException {
    Path f = Reference.file("preprocess/preprocess.safetensors");
    try (SafetensorsReader st = SafetensorsReader.open(f)) {
      JsonNode images = JSON.readTree(st.metadata().get("images"));
      JsonNode resolutions = JSON.readTree(st.metadata().get("resolutions"));
      assertTrue(images.size() > 0);
      int expected = 0;
      for (var it = images.fieldNames(); it.hasNext(); ) {
        String image = it.next();
        assertTrue(Files.exists(Reference.dir().resolve("images").resolve(image)), image);
        for (JsonNode rn : resolutions) {
          int res = rn.asInt();
          Tensor rgb = st.tensor(image + "@" + res + ".rgb8");
          assertEquals(DType.U8, rgb.dtype());
          assertArrayEquals(new long[] {res, res, 3}, rgb.shape());
          expected++;
          if (st.contains(image + "@" + res)) {
            Tensor px = st.tensor(image + "@" + res);
            assertEquals(DType.F32, px.dtype());
            assertArrayEquals(new long[] {3, res, res}, px.shape());
            expected++;
          }
        }
        assertTrue(st.contains(image + "@224"), "README: float tensors are stored at 224");
      }
      assertEquals(expected, st.names().size(), "no tensors beyond those the README describes");
    }
  }

  @Test
  void readsGoldenAndHfFilesAsTheManifestsDescribe() throws IOException {
    int models = 0;
    try (Stream<Path> dirs = Files.list(Reference.dir().resolve("models"))) {
      for (Path dir : dirs.sorted().toList()) {
        JsonNode manifest = JSON.readTree(dir.resolve("manifest.json").toFile());
        int images = manifest.get("images").size();
        int texts = manifest.get("texts").size();
        int res = manifest.get("image_resolution").asInt();
        try (SafetensorsReader st = SafetensorsReader.open(dir.resolve("golden.safetensors"))) {
          assertArrayEquals(new long[] {texts, 77}, st.tensor("tokens").shape());
          assertEquals(DType.I32, st.tensor("tokens").dtype());
          assertArrayEquals(new long[] {images, 3, res, res}, st.tensor("pixels").shape());
          assertArrayEquals(new long[] {images, texts}, st.tensor("logits_per_image").shape());
          assertArrayEquals(new long[] {texts, images}, st.tensor("logits_per_text").shape());
          assertEquals(manifest.get("texts"), JSON.readTree(st.metadata().get("texts")));
          for (Tensor t : st.tensors()) {
            assertTrue(t.dtype() == DType.F32 || t.name().equals("tokens"), t.toString());
          }
          float[] tokens = st.tensor("tokens").toFloatArray();
          assertEquals(49406f, tokens[0], "tokens start with <|startoftext|>");
        }
        Path hf = dir.resolve("hf/model.safetensors");
        if (Files.exists(hf)) {
          JsonNode want = manifest.get("weights_hf");
          try (SafetensorsReader st = SafetensorsReader.open(hf)) {
            assertEquals(want.size(), st.names().size());
            for (Tensor t : st.tensors()) {
              JsonNode w = want.get(t.name());
              assertTrue(w != null, "manifest lists " + t.name());
              assertEquals(w.get("dtype").asText(), t.dtype() == DType.F16 ? "float16" : t.dtype() == DType.F32 ? "float32" : t.dtype().toString(), t.name());
              long[] shape = new long[w.get("shape").size()];
              for (int i = 0; i < shape.length; i++) shape[i] = w.get("shape").get(i).asLong();
              assertArrayEquals(shape, t.shape(), t.name());
              for (float v : t.toFloatArray()) assertFalse(Float.isNaN(v), t.name());
            }
          }
        }
        models++;
      }
    }
    assertTrue(models > 0);
  }
}
