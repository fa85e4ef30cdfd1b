package dev.jclip.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jclip.io.SafetensorsReader;
import dev.jclip.io.Tensor;
import dev.jclip.testing.Reference;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** classify, embed-images and embed-texts run in-process on the reference's vit-b32-tiny. */
class ModelCommandsTest {
  static Path dir, model;
  static List<String> texts, images;
  static float[][] probs, imageFeatures, textFeatures;

  @BeforeAll
  static void golden() throws IOException {
    dir = Reference.dir().resolve("models/vit-b32-tiny");
    model = dir.resolve("state_dict.pt");
    try (SafetensorsReader g = SafetensorsReader.open(dir.resolve("golden.safetensors"))) {
      ObjectMapper m = new ObjectMapper();
      texts = List.of(m.readValue(g.metadata().get("texts"), String[].class));
      images = List.of(m.readValue(g.metadata().get("images"), String[].class));
      probs = rows(g.tensor("probs"));
      imageFeatures = rows(g.tensor("image_features"));
      textFeatures = rows(g.tensor("text_features"));
    }
  }

  static float[][] rows(Tensor t) {
    float[] f = t.toFloatArray();
    int c = (int) t.dim(1);
    float[][] r = new float[(int) t.dim(0)][c];
    for (int i = 0; i < r.length; i++) System.arraycopy(f, i * c, r[i], 0, c);
    return r;
  }

  static CliRun.Result run(Object cmd, String stdin, String... args) {
    if (cmd instanceof EmbedTextsCommand e) e.in = new ByteArrayInputStream(stdin.getBytes(StandardCharsets.UTF_8));
    return CliRun.run(new CommandLine(cmd), args);
  }

  static String vocab() {
    return Reference.file("bpe_simple_vocab_16e6.txt.gz").toString();
  }

  static float[][] readNpy(Path p) throws IOException {
    ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(p)).order(ByteOrder.LITTLE_ENDIAN);
    int headerLen = b.getShort(8) & 0xffff;
    String header = new String(b.array(), 10, headerLen, StandardCharsets.ISO_8859_1);
    assertTrue(header.contains("'descr': '<f4'"), header);
    String shape = header.substring(header.indexOf("'shape': (") + 10, header.indexOf(")", header.indexOf("'shape': (")));
    String[] dims = shape.split(",");
    int n = Integer.parseInt(dims[0].trim()), e = Integer.parseInt(dims[1].trim());
    b.position(10 + headerLen);
    float[][] r = new float[n][e];
    for (float[] row : r) for (int i = 0; i < e; i++) row[i] = b.getFloat();
    return r;
  }

  static float[] normalized(float[] x) {
    return EmbedTextsCommand.normalized(x);
  }

  static void assertClose(float[] want, float[] got, double tol, String what) {
    double err = dev.jclip.backend.ReferenceOps.relativeError(got, want);
    assertTrue(err <= tol, what + ": relative error " + err);
  }

  /** The golden softmax runs over all texts; over a subset it is renormalised over those. */
  static double[] expectedProbs(int image, List<String> labels) {
    double[] p = new double[labels.size()];
    double s = 0;
    for (int j = 0; j < p.length; j++) s += p[j] = probs[image][texts.indexOf(labels.get(j))];
    for (int j = 0; j < p.length; j++) p[j] /= s;
    return p;
  }

  @Test
  void classifyPrintsLabelProbsLikeTheReference() {
    List<String> labels = List.of("a diagram", "a dog", "a cat");
    CliRun.Result r = run(new ClassifyCommand(), "", "--model", model.toString(), "--vocab", vocab(), "--device", "cpu",
        Reference.file("images/CLIP.png").toString(), "a diagram", "a dog", "a cat");
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().startsWith("Label probs: [[") && r.out().trim().endsWith("]]"), r.out());
    String[] nums = r.out().trim().substring("Label probs: [[".length(), r.out().trim().length() - 2).trim().split("\\s+");
    assertEquals(3, nums.length, r.out());
    double[] want = expectedProbs(images.indexOf("CLIP.png"), labels);
    for (int j = 0; j < 3; j++) assertEquals(want[j], Double.parseDouble(nums[j]), 1e-5, r.out());
  }

  @Test
  void classifyJson() throws IOException {
    List<String> labels = List.of("a red rose", "a dog", "a photo of a flower", "a pile of old coins");
    List<String> args = new ArrayList<>(List.of("--model", model.toString(), "--vocab", vocab(), "--json", Reference.file("images/rose.jpg").toString()));
    args.addAll(labels);
    CliRun.Result r = run(new ClassifyCommand(), "", args.toArray(String[]::new));
    assertEquals(0, r.code(), r.err());
    JsonNode o = new ObjectMapper().readTree(r.out());
    assertEquals(labels.size(), o.get("labels").size());
    for (int j = 0; j < labels.size(); j++) assertEquals(labels.get(j), o.get("labels").get(j).asText());
    double[] want = expectedProbs(images.indexOf("rose.jpg"), labels);
    for (int j = 0; j < labels.size(); j++) assertEquals(want[j], o.get("probs").get(j).asDouble(), 1e-5);
    // softmax of the logits gives the probabilities
    double max = Double.NEGATIVE_INFINITY, s = 0;
    for (JsonNode l : o.get("logits")) max = Math.max(max, l.asDouble());
    for (JsonNode l : o.get("logits")) s += Math.exp(l.asDouble() - max);
    assertEquals(Math.exp(o.get("logits").get(0).asDouble() - max) / s, o.get("probs").get(0).asDouble(), 1e-5);
  }

  /** A label over the 77 tokens fails with --truncate named, and with --truncate is cut as clip.tokenize(truncate=True) cuts it. */
  @Test
  void classifyTruncatesLongLabelsWhenAsked() {
    String rose = Reference.file("images/rose.jpg").toString();
    String longLabel = "a photo of a rose " + "and a very red petal ".repeat(20);
    CliRun.Result r = run(new ClassifyCommand(), "", "--model", model.toString(), "--vocab", vocab(), rose, "a dog", longLabel);
    assertEquals(1, r.code(), r.err());
    assertTrue(r.err().contains("too long for context length 77") && r.err().contains("use --truncate"), r.err());
    r = run(new ClassifyCommand(), "", "--model", model.toString(), "--vocab", vocab(), "--truncate", "--json", rose, "a dog", longLabel);
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().contains("\"probs\""), r.out());
  }

  @Test
  void classifyFailsCleanly() {
    CliRun.Result r = run(new ClassifyCommand(), "", "--model", model.toString(), "--vocab", vocab(), "missing.png", "a dog");
    assertEquals(1, r.code());
    assertTrue(r.err().contains("missing.png"), r.err());
    r = run(new ClassifyCommand(), "", "--model", model.toString(), "--vocab", vocab(), "--device", "cuda:7",
        Reference.file("images/CLIP.png").toString(), "a dog");
    assertEquals(1, r.code());
    assertTrue(r.err().contains("cuda:7"), r.err());
  }

  /** --max-pixels on the commands that decode images: an image over it is refused (or skipped) with the option named; 0 is a usage error. */
  @Test
  void maxPixelsIsTakenByTheImageCommands(@TempDir Path tmp) throws IOException {
    String rose = Reference.file("images/rose.jpg").toString(); // 70 x 46
    CliRun.Result r = run(new ClassifyCommand(), "", "--model", model.toString(), "--vocab", vocab(), "--max-pixels", "1000", rose, "a dog", "a rose");
    assertEquals(1, r.code(), r.err());
    assertTrue(r.err().contains("decompression bomb") && r.err().contains("--max-pixels"), r.err());
    r = run(new ClassifyCommand(), "", "--model", model.toString(), "--vocab", vocab(), "--max-pixels", "3220", rose, "a dog", "a rose");
    assertEquals(0, r.code(), r.err());
    r = run(new EmbedImagesCommand(), "", "--model", model.toString(), "--max-pixels", "5000", "--skip-bad", "--out", tmp.resolve("e.npy").toString(),
        rose, Reference.file("images/debian-logo-256.png").toString());
    assertEquals(0, r.code(), r.err());
    assertTrue(r.err().contains("skipped " + Reference.file("images/debian-logo-256.png")) && r.err().contains("decompression bomb"), r.err());
    assertEquals(1, readNpy(tmp.resolve("e.npy")).length);
    // every image skipped: a failure, not an empty success
    r = run(new EmbedImagesCommand(), "", "--model", model.toString(), "--max-pixels", "1000", "--skip-bad", "--out", tmp.resolve("f.npy").toString(), rose);
    assertEquals(1, r.code(), r.err());
    assertTrue(r.err().contains("nothing was embedded: every image was skipped"), r.err());
    r = run(new ClassifyCommand(), "", "--model", model.toString(), "--vocab", vocab(), "--max-pixels", "0", rose, "a dog");
    assertEquals(2, r.code(), r.err());
    assertTrue(r.err().contains("--max-pixels must be positive"), r.err());
  }

  @Test
  void embedImagesInArgumentOrder(@TempDir Path tmp) throws IOException {
    List<String> args = new ArrayList<>(List.of("--model", model.toString(), "--vocab", vocab(), "--batch-size", "3", "--out",
        tmp.resolve("img.npy").toString()));
    List<String> order = new ArrayList<>(images);
    java.util.Collections.reverse(order);
    for (String n : order) args.add(Reference.file("images/" + n).toString());
    CliRun.Result r = run(new EmbedImagesCommand(), "", args.toArray(String[]::new));
    assertEquals(0, r.code(), r.err());
    float[][] got = readNpy(tmp.resolve("img.npy"));
    assertEquals(order.size(), got.length);
    for (int i = 0; i < got.length; i++) assertClose(normalized(imageFeatures[images.indexOf(order.get(i))]), got[i], 1e-4, order.get(i));

    args.add(1 + args.indexOf("--out") + 1, "--no-normalize");
    r = run(new EmbedImagesCommand(), "", args.toArray(String[]::new));
    assertEquals(0, r.code(), r.err());
    got = readNpy(tmp.resolve("img.npy"));
    for (int i = 0; i < got.length; i++) assertClose(imageFeatures[images.indexOf(order.get(i))], got[i], 1e-4, order.get(i));
  }

  @Test
  void badImagesFailOrAreSkipped(@TempDir Path tmp) throws IOException {
    Path bad = tmp.resolve("broken.jpg");
    Files.write(bad, new byte[] {(byte) 0xFF, (byte) 0xD8, (byte) 0xFF, 0, 1, 2, 3});
    Path out = tmp.resolve("out.npy");
    String good = Reference.file("images/chelsea.png").toString();
    CliRun.Result r = run(new EmbedImagesCommand(), "", "--model", model.toString(), "--vocab", vocab(), "--out", out.toString(), good, bad.toString());
    assertEquals(1, r.code());
    assertTrue(r.err().contains("broken.jpg") && r.err().contains("--skip-bad"), r.err());
    assertFalse(Files.exists(out), "no partial output");
    r = run(new EmbedImagesCommand(), "", "--model", model.toString(), "--vocab", vocab(), "--skip-bad", "--out", out.toString(), good,
        bad.toString(), good);
    assertEquals(0, r.code(), r.err());
    assertTrue(r.err().contains("skipped " + bad), r.err());
    float[][] got = readNpy(out);
    assertEquals(2, got.length);
    assertClose(normalized(imageFeatures[images.indexOf("chelsea.png")]), got[1], 1e-4, "chelsea");
    assertTrue(r.err().contains("--ids FILE names each row's image"), r.err());
    // --ids names each row's image: the bad one in the middle is not there
    String coins = Reference.file("images/coins.png").toString();
    Path ids = tmp.resolve("ids.txt");
    r = run(new EmbedImagesCommand(), "", "--model", model.toString(), "--vocab", vocab(), "--skip-bad", "--ids", ids.toString(), "--out",
        out.toString(), good, bad.toString(), coins);
    assertEquals(0, r.code(), r.err());
    assertEquals(List.of(good, coins), Files.readAllLines(ids));
    got = readNpy(out);
    assertClose(normalized(imageFeatures[images.indexOf("coins.png")]), got[1], 1e-4, "coins");
    r = run(new EmbedImagesCommand(), "", "--model", model.toString(), "--ids", out.toString(), "--out", out.toString(), good);
    assertEquals(2, r.code(), r.err());
    assertTrue(r.err().contains("the same file"), r.err());
  }

  @Test
  void embedTextsFromJsonLines(@TempDir Path tmp) throws IOException {
    ObjectMapper m = new ObjectMapper();
    StringBuilder in = new StringBuilder();
    for (String t : texts) in.append(m.writeValueAsString(t)).append('\n');
    Path out = tmp.resolve("t.npy");
    CliRun.Result r = run(new EmbedTextsCommand(), in.toString(), "--model", model.toString(), "--vocab", vocab(), "--batch-size", "4", "--truncate",
        "--out", out.toString());
    assertEquals(0, r.code(), r.err());
    float[][] got = readNpy(out);
    assertEquals(texts.size(), got.length);
    for (int i = 0; i < got.length; i++) assertClose(normalized(textFeatures[i]), got[i], 1e-4, "text " + i);

    r = run(new EmbedTextsCommand(), in.toString(), "--model", model.toString(), "--vocab", vocab(), "--out", out.toString());
    assertEquals(1, r.code());
    assertTrue(r.err().contains("line " + texts.size()) && r.err().contains("--truncate"), r.err());
    r = run(new EmbedTextsCommand(), "\"ok\"\n42\n", "--model", model.toString(), "--vocab", vocab(), "--out", out.toString());
    assertEquals(1, r.code());
    assertTrue(r.err().contains("line 2"), r.err());
  }

  /** A bad --device, --precision, --threads or --activation is a usage error (exit 2) on every model command, said before anything loads. */
  @Test
  void badModelOptionsAreUsageErrors(@org.junit.jupiter.api.io.TempDir Path tmp) {
    String image = images.isEmpty() ? "x.png" : Reference.file("images/" + images.get(0)).toString();
    String[][] bad = {{"--device", "cuda:x"}, {"--precision", "fp64"}, {"--threads", "0"}, {"--activation", "relu"}, {"--device", "cuda:all"},
      {"--device", "cpu", "--precision", "fp16"}};
    for (String[] b : bad) {
      List<String> common = new java.util.ArrayList<>(List.of("--model", model.toString(), "--vocab", vocab()));
      common.addAll(List.of(b));
      List<String> ei = new java.util.ArrayList<>(common);
      ei.addAll(List.of("--out", tmp.resolve("x.npy").toString(), image));
      CliRun.Result r = run(new EmbedImagesCommand(), "", ei.toArray(String[]::new));
      assertEquals(2, r.code(), String.join(" ", b) + ": " + r.err());
      List<String> cl = new java.util.ArrayList<>(common);
      cl.addAll(List.of(image, "a dog"));
      r = run(new ClassifyCommand(), "", cl.toArray(String[]::new));
      assertEquals(2, r.code(), String.join(" ", b) + ": " + r.err());
      assertTrue(!r.err().isBlank(), r.err());
      if (b[1].equals("cuda:all")) assertTrue(r.err().contains("in jclip embed only"), r.err());
      if (b.length == 4) assertTrue(r.err().contains("fp16 runs on a GPU only"), r.err());
    }
  }

  /** embed-images needs no vocabulary: with none to be found (a fresh home, no $JCLIP_VOCAB), a bare state dict's images embed. */
  @Test
  void imagesNeedNoVocabulary(@org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
    Path out = tmp.resolve("x.npy");
    ProcessBuilder pb = new ProcessBuilder(dev.jclip.io.AtomicFileTest.java(), "-Duser.home=" + tmp, "-Djclip.cache=" + tmp.resolve("cache"),
        "--add-modules", "jdk.incubator.vector", "-cp", System.getProperty("java.class.path"), Main.class.getName(), "embed-images", "--model",
        model.toString(), "--device", "cpu", "--out", out.toString(), Reference.file("images/CLIP.png").toString());
    pb.environment().remove("JCLIP_VOCAB");
    pb.environment().remove("JCLIP_CACHE");
    Process p = pb.redirectErrorStream(true).start();
    String said = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(180, java.util.concurrent.TimeUnit.SECONDS));
    assertEquals(0, p.exitValue(), said);
    assertEquals(1, readNpy(out).length, said);
  }
}
