package dev.jclip.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.api.Clip;
import dev.jclip.testing.Reference;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code jclip zeroshot} on vit-b32-tiny reproduces the probabilities computed directly from
 * encode_image / encode_text with the same templates (mean of normalised template embeddings,
 * renormalised; softmax of exp(logit_scale) x cosine), reports accuracy from a label column, and
 * reuses its cached class embeddings.
 */
class ZeroShotCommandTest {
  static final List<String> CLASSES = List.of("diagram", "dog", "cat", "flower");
  static final List<String> TEMPLATES = List.of("a {}", "a photo of a {}.", "a drawing of the {}");

  @BeforeAll
  static void golden() throws IOException {
    ModelCommandsTest.golden();
  }

  @Test
  void probabilitiesEqualTheDirectComputation(@TempDir Path tmp) throws IOException, java.sql.SQLException {
    Path classes = Files.writeString(tmp.resolve("classes.txt"), String.join("\n", CLASSES) + "\n");
    Path templates = Files.writeString(tmp.resolve("templates.json"), new com.fasterxml.jackson.databind.ObjectMapper().writeValueAsString(TEMPLATES));
    List<String> imgs = List.of("CLIP.png", "rose.jpg", "chelsea.png");
    List<String> labels = List.of("diagram", "flower", "dog");
    StringBuilder csv = new StringBuilder("image_path,label\n");
    for (int i = 0; i < imgs.size(); i++) csv.append(Reference.file("images/" + imgs.get(i))).append(',').append(labels.get(i)).append('\n');
    Path input = Files.writeString(tmp.resolve("input.csv"), csv);
    Path out = tmp.resolve("pred.csv");
    String[] args = {"--model", ModelCommandsTest.model.toString(), "--vocab", ModelCommandsTest.vocab(), "--device", "cpu", "--classes",
        classes.toString(), "--templates", templates.toString(), "--input", input.toString(), "--output", out.toString(), "--top-k", "4",
        "--batch-size", "2"};
    CliRun.Result r = ModelCommandsTest.run(new ZeroShotCommand(), "", args);
    assertEquals(0, r.code(), r.err());
    assertTrue(r.err().contains("top-1 accuracy"), r.err());

    // the same numbers, computed directly with the model
    double[][] want;
    try (Clip clip = Clip.load(ModelCommandsTest.model.toString(),
        Clip.Options.defaults().withDevice("cpu").withVocabulary(Path.of(ModelCommandsTest.vocab())))) {
      float[][] img = clip.encodeImage(clip.preprocess(imgs.stream().map(n -> Reference.file("images/" + n)).toArray(Path[]::new)));
      double scale = Math.exp(logitScale());
      double[][] cls = new double[CLASSES.size()][];
      for (int c = 0; c < CLASSES.size(); c++) {
        double[] sum = null;
        for (String t : TEMPLATES) {
          float[] f = clip.encodeText(clip.tokenize(t.replace("{}", CLASSES.get(c))))[0];
          double[] u = unit(f);
          if (sum == null) sum = new double[u.length];
          for (int i = 0; i < u.length; i++) sum[i] += u[i];
        }
        cls[c] = unit(sum);
      }
      want = new double[imgs.size()][CLASSES.size()];
      for (int i = 0; i < imgs.size(); i++) {
        double[] u = unit(img[i]);
        double max = Double.NEGATIVE_INFINITY;
        for (int c = 0; c < CLASSES.size(); c++) {
          double dot = 0;
          for (int d = 0; d < u.length; d++) dot += u[d] * cls[c][d];
          want[i][c] = scale * dot;
          max = Math.max(max, want[i][c]);
        }
        double s = 0;
        for (int c = 0; c < CLASSES.size(); c++) s += want[i][c] = Math.exp(want[i][c] - max);
        for (int c = 0; c < CLASSES.size(); c++) want[i][c] /= s;
      }
    }
    List<String> lines = Files.readAllLines(out);
    assertEquals(1 + imgs.size(), lines.size(), String.join("\n", lines));
    for (int i = 0; i < imgs.size(); i++) {
      String[] f = lines.get(1 + i).split(",");
      assertTrue(f[0].endsWith(imgs.get(i)), f[0]);
      assertEquals(labels.get(i), f[1]);
      double prev = 2;
      for (int j = 0; j < CLASSES.size(); j++) {
        int c = CLASSES.indexOf(f[2 + 2 * j]);
        double p = Double.parseDouble(f[3 + 2 * j]);
        assertEquals(want[i][c], p, 1e-5, imgs.get(i) + " " + CLASSES.get(c));
        assertTrue(p <= prev, "classes sorted by probability");
        prev = p;
      }
    }

    // a second run reads the class embeddings from the cache and writes the same predictions
    String first = Files.readString(out);
    r = ModelCommandsTest.run(new ZeroShotCommand(), "", args);
    assertEquals(0, r.code(), r.err());
    assertTrue(r.err().contains("from the cache"), r.err());
    assertEquals(first, Files.readString(out));
    String cached = cacheFile(r.err());
    // a batch whose pixel buffers cannot fit is refused before anything is loaded (it used to overflow an int)
    String[] huge = args.clone();
    huge[java.util.Arrays.asList(huge).indexOf("--batch-size") + 1] = "20000";
    r = ModelCommandsTest.run(new ZeroShotCommand(), "", huge);
    assertEquals(2, r.code(), r.err());
    assertTrue(r.err().contains("--batch-size 20000: 3 batches of 20000 images of 224 px") && r.err().contains("give at most"), r.err());
    // another activation has class embeddings (and predictions) of its own, cached under another key
    String[] gelu = java.util.stream.Stream.concat(java.util.Arrays.stream(args), java.util.stream.Stream.of("--activation", "gelu")).toArray(String[]::new);
    r = ModelCommandsTest.run(new ZeroShotCommand(), "", gelu);
    assertEquals(0, r.code(), r.err());
    assertTrue(!first.equals(Files.readString(out)), "GELU's predictions are QuickGELU's");
    r = ModelCommandsTest.run(new ZeroShotCommand(), "", gelu);
    assertTrue(!cached.equals(cacheFile(r.err())), "GELU read QuickGELU's class embeddings: " + r.err());
    if (dev.jclip.backend.cpu.CpuFeatures.bf16()) { // 16 bits the same
      String[] bf16 = java.util.stream.Stream.concat(java.util.Arrays.stream(args), java.util.stream.Stream.of("--precision", "bf16")).toArray(String[]::new);
      assertEquals(0, ModelCommandsTest.run(new ZeroShotCommand(), "", bf16).code());
      r = ModelCommandsTest.run(new ZeroShotCommand(), "", bf16);
      assertTrue(!cached.equals(cacheFile(r.err())), "bf16 read fp32's class embeddings: " + r.err());
    }
    r = ModelCommandsTest.run(new ZeroShotCommand(), "", args);
    assertEquals(first, Files.readString(out), "the checkpoint's activation in fp32 reads its own cache");

    // the same table as Parquet (DuckDB converts it, a list column added) gives the same predictions
    Path parquet = tmp.resolve("input.parquet");
    try (java.sql.Connection db = java.sql.DriverManager.getConnection("jdbc:duckdb:");
        java.sql.Statement st = db.createStatement()) {
      st.execute("COPY (SELECT *, [1, 2] AS tags FROM read_csv('" + input + "', header = true)) TO '" + parquet + "' (FORMAT PARQUET)");
    }
    args[java.util.Arrays.asList(args).indexOf(input.toString())] = parquet.toString();
    r = ModelCommandsTest.run(new ZeroShotCommand(), "", args);
    assertEquals(0, r.code(), r.err());
    assertEquals(first, Files.readString(out));

    // --jpeg-draft reaches the decoder: the same predictions where no JPEG is large enough to be
    // drafted at the model's size (Pillow's rule: both sides at least twice it), others where one is
    if (new dev.jclip.image.ImageDecoder().jpegCodec() == dev.jclip.image.ImageDecoder.JpegCodec.NATIVE) {
      List<String> withDraft = new java.util.ArrayList<>(List.of(args));
      withDraft.add("--jpeg-draft");
      r = ModelCommandsTest.run(new ZeroShotCommand(), "", withDraft.toArray(String[]::new));
      assertEquals(0, r.code(), r.err());
      int size;
      try (Clip clip = Clip.load(ModelCommandsTest.model.toString(),
          Clip.Options.defaults().withDevice("cpu").withVocabulary(Path.of(ModelCommandsTest.vocab())))) {
        size = clip.config().imageResolution();
      }
      var im = new dev.jclip.image.ImageDecoder().decode(Reference.file("images/rose.jpg"));
      boolean drafted = Math.min(im.width(), im.height()) >= 2 * size;
      assertEquals(!drafted, first.equals(Files.readString(out)), "rose.jpg " + im.width() + "x" + im.height() + " at " + size + " px");
    }
  }

  @Test
  void rejectsAnUnknownOutputFormat(@TempDir Path tmp) {
    CliRun.Result r = ModelCommandsTest.run(new ZeroShotCommand(), "", "--model", ModelCommandsTest.model.toString(), "--classes",
        "c.txt", "--templates", "t.txt", "--input", tmp.toString(), "--output", tmp.resolve("p.xlsx").toString());
    assertEquals(2, r.code());
    assertTrue(r.err().contains(".csv or .jsonl"), r.err());
  }

  private static double logitScale() throws IOException {
    try (var ck = dev.jclip.io.Checkpoint.open(ModelCommandsTest.model)) {
      return ck.tensor("logit_scale").toFloatArray()[0];
    }
  }

  private static double[] unit(float[] f) {
    double[] d = new double[f.length];
    for (int i = 0; i < f.length; i++) d[i] = f[i];
    return unit(d);
  }

  private static double[] unit(double[] d) {
    double n = 0;
    for (double v : d) n += v * v;
    n = Math.sqrt(n);
    double[] u = new double[d.length];
    for (int i = 0; i < d.length; i++) u[i] = d[i] / n;
    return u;
  }

  /** The cache file a zeroshot run says it read its class embeddings from. */
  static String cacheFile(String err) {
    java.util.regex.Matcher m = java.util.regex.Pattern.compile("class embeddings from the cache (\\S+)").matcher(err);
    assertTrue(m.find(), "no class embeddings read from the cache: " + err);
    return m.group(1);
  }

  /** A class named twice is refused (the two would split its probability); a template without {} is warned of. */
  @org.junit.jupiter.api.Test
  void duplicateClassesAreRefusedAndATemplateWithoutTheClassIsWarnedOf() {
    java.io.StringWriter w = new java.io.StringWriter();
    java.io.PrintWriter err = new java.io.PrintWriter(w, true);
    ZeroShotCommand.checkClassesAndTemplates(java.util.List.of("rose", "tulip"), java.util.List.of("a photo of a {}."), err);
    org.junit.jupiter.api.Assertions.assertEquals("", w.toString());
    IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
        () -> ZeroShotCommand.checkClassesAndTemplates(java.util.List.of("rose", "tulip", "rose"), java.util.List.of("{}"), err));
    org.junit.jupiter.api.Assertions.assertTrue(e.getMessage().contains("'rose' twice (classes 1 and 3)"), e.getMessage());
    ZeroShotCommand.checkClassesAndTemplates(java.util.List.of("rose"), java.util.List.of("a photo", "a {}"), err);
    org.junit.jupiter.api.Assertions.assertTrue(w.toString().contains("the template 'a photo' has no {}"), w.toString());
  }

  /** Every input skipped: exit 1, with the output still written (the skipped rows are in --errors). */
  @Test
  void everyInputSkippedIsAFailure(@TempDir Path tmp) throws IOException {
    Path classes = Files.writeString(tmp.resolve("classes.txt"), String.join("\n", CLASSES) + "\n");
    Path templates = Files.writeString(tmp.resolve("templates.json"), new com.fasterxml.jackson.databind.ObjectMapper().writeValueAsString(TEMPLATES));
    Path in = Files.createDirectories(tmp.resolve("in"));
    Files.writeString(in.resolve("a.jpg"), "not a jpeg");
    Files.writeString(in.resolve("b.png"), "nor a png");
    String[] args = {"--model", ModelCommandsTest.model.toString(), "--vocab", ModelCommandsTest.vocab(), "--device", "cpu", "--classes",
        classes.toString(), "--templates", templates.toString(), "--input", in.toString(), "--output", tmp.resolve("p.csv").toString(),
        "--errors", tmp.resolve("e.jsonl").toString()};
    CliRun.Result r = ModelCommandsTest.run(new ZeroShotCommand(), "", args);
    assertEquals(1, r.code(), r.err());
    assertTrue(r.err().contains("0 images classified") && r.err().contains("2 skipped") && r.err().contains("nothing was classified"), r.err());
    assertEquals(2, Files.readAllLines(tmp.resolve("e.jsonl")).size());
  }
}
