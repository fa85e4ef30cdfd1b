package dev.jclip.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.testing.Reference;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code jclip embed} on the real model code (vit-b32-tiny on the CPU): every good image is
 * embedded once, in sorted order, equal to what {@code embed-images} gives for the same file and to
 * the golden features; the bad file is in errors.jsonl; a re-run changes nothing.
 */
class EmbedCommandTest {
  @BeforeAll
  static void golden() throws IOException {
    ModelCommandsTest.golden();
  }

  @Test
  void embedsAFolderLikeEmbedImages(@TempDir Path tmp) throws IOException {
    Path in = Files.createDirectories(tmp.resolve("in"));
    List<String> names = new ArrayList<>(ModelCommandsTest.images);
    java.util.Collections.sort(names); // the job reads a folder in sorted order
    for (String n : names) Files.copy(Reference.file("images/" + n), in.resolve(n));
    Files.writeString(in.resolve("zz-not-an-image.jpg"), "hello");
    Path out = tmp.resolve("out");
    String[] args = {"--model", ModelCommandsTest.model.toString(), "--vocab", ModelCommandsTest.vocab(), "--device", "cpu", "--input",
        in.toString(), "--output", out.toString(), "--dtype", "float32", "--batch-size", "3", "--shard-size", "5", "--workers", "2",
        "--progress", "none"};
    CliRun.Result r = ModelCommandsTest.run(new EmbedCommand(), "", args);
    assertEquals(0, r.code(), r.err());

    List<float[]> rows = new ArrayList<>();
    try (var shards = Files.list(out.resolve("img_emb"))) {
      for (Path p : shards.sorted().toList()) for (float[] row : ModelCommandsTest.readNpy(p)) rows.add(row);
    }
    assertEquals(names.size(), rows.size(), "every good image exactly once");
    for (int i = 0; i < names.size(); i++) {
      float[] want = ModelCommandsTest.normalized(ModelCommandsTest.imageFeatures[ModelCommandsTest.images.indexOf(names.get(i))]);
      ModelCommandsTest.assertClose(want, rows.get(i), 1e-4, names.get(i));
    }
    // embed-images on the same files gives the same vectors
    List<String> ei = new ArrayList<>(List.of("--model", ModelCommandsTest.model.toString(), "--vocab", ModelCommandsTest.vocab(), "--device", "cpu",
        "--out", tmp.resolve("ei.npy").toString()));
    for (String n : names) ei.add(in.resolve(n).toString());
    assertEquals(0, ModelCommandsTest.run(new EmbedImagesCommand(), "", ei.toArray(String[]::new)).code());
    float[][] direct = ModelCommandsTest.readNpy(tmp.resolve("ei.npy"));
    for (int i = 0; i < names.size(); i++) ModelCommandsTest.assertClose(direct[i], rows.get(i), 1e-5, "embed vs embed-images " + names.get(i));

    String errors = Files.readString(out.resolve("errors.jsonl"));
    assertTrue(errors.contains("zz-not-an-image.jpg"), errors);
    assertTrue(Files.exists(out.resolve("job.json")));

    // a re-run finds every shard done and leaves the output as it was
    byte[] before = Files.readAllBytes(firstShard(out));
    r = ModelCommandsTest.run(new EmbedCommand(), "", args);
    assertEquals(0, r.code(), r.err());
    assertTrue(r.err().contains("already done"), r.err());
    byte[] after = Files.readAllBytes(firstShard(out));
    assertTrue(java.util.Arrays.equals(before, after));
  }

  /**
   * {@code --activation} (a bare open_clip state dict trained without -quickgelu needs gelu): the
   * vectors are those of embed-images with the same override and differ from the checkpoint's
   * QuickGELU; job.json records it, and a folder started with it is not resumed without it.
   */
  @Test
  void anActivationOverrideIsUsedRecordedAndKeptOnResume(@TempDir Path tmp) throws IOException {
    Path in = Files.createDirectories(tmp.resolve("in"));
    List<String> names = new ArrayList<>(ModelCommandsTest.images.subList(0, 3));
    java.util.Collections.sort(names);
    for (String n : names) Files.copy(Reference.file("images/" + n), in.resolve(n));
    List<String> common = List.of("--model", ModelCommandsTest.model.toString(), "--vocab", ModelCommandsTest.vocab(), "--device", "cpu");
    List<String> job = new ArrayList<>(common);
    job.addAll(List.of("--input", in.toString(), "--output", tmp.resolve("out").toString(), "--dtype", "float32", "--progress", "none",
        "--workers", "2"));
    List<String> gelu = new ArrayList<>(job);
    gelu.addAll(List.of("--activation", "GELU"));
    CliRun.Result r = ModelCommandsTest.run(new EmbedCommand(), "", gelu.toArray(String[]::new));
    assertEquals(0, r.code(), r.err());
    float[][] rows = ModelCommandsTest.readNpy(tmp.resolve("out").resolve("img_emb").resolve("img_emb_0.npy"));
    assertEquals("gelu", new com.fasterxml.jackson.databind.ObjectMapper().readTree(tmp.resolve("out").resolve("job.json").toFile()).get("activation").asText());
    List<String> ei = new ArrayList<>(common);
    ei.addAll(List.of("--activation", "gelu", "--out", tmp.resolve("ei.npy").toString()));
    for (String n : names) ei.add(in.resolve(n).toString());
    assertEquals(0, ModelCommandsTest.run(new EmbedImagesCommand(), "", ei.toArray(String[]::new)).code());
    float[][] direct = ModelCommandsTest.readNpy(tmp.resolve("ei.npy"));
    for (int i = 0; i < names.size(); i++) {
      ModelCommandsTest.assertClose(direct[i], rows[i], 1e-5, "embed vs embed-images with --activation gelu " + names.get(i));
      float[] quick = ModelCommandsTest.normalized(ModelCommandsTest.imageFeatures[ModelCommandsTest.images.indexOf(names.get(i))]);
      double err = dev.jclip.backend.ReferenceOps.relativeError(rows[i], quick);
      assertTrue(err > 1e-3, names.get(i) + ": GELU's features within " + err + " of QuickGELU's: the override did nothing");
    }
    r = ModelCommandsTest.run(new EmbedCommand(), "", job.toArray(String[]::new)); // the checkpoint's activation now
    assertEquals(1, r.code(), r.err());
    assertTrue(r.err().contains("other options (activation: \"gelu\" then, not set now)"), r.err());
    // --activation naming the checkpoint's own (QuickGELU for a bare state dict) is no override: with or without it, the job resumes
    List<String> own = new ArrayList<>(job);
    own.set(own.indexOf(tmp.resolve("out").toString()), tmp.resolve("out-own").toString());
    List<String> ownNamed = new ArrayList<>(own);
    ownNamed.addAll(List.of("--activation", "quick_gelu"));
    r = ModelCommandsTest.run(new EmbedCommand(), "", ownNamed.toArray(String[]::new));
    assertEquals(0, r.code(), r.err());
    assertTrue(!new com.fasterxml.jackson.databind.ObjectMapper().readTree(tmp.resolve("out-own/.jclip/params.json").toFile()).has("activation"));
    r = ModelCommandsTest.run(new EmbedCommand(), "", own.toArray(String[]::new));
    assertEquals(0, r.code(), r.err());
    assertTrue(r.err().contains("already done"), r.err());
    r = ModelCommandsTest.run(new EmbedCommand(), "", ownNamed.toArray(String[]::new));
    assertEquals(0, r.code(), r.err());
    List<String> bad = new ArrayList<>(common);
    bad.addAll(List.of("--activation", "relu", "--out", tmp.resolve("bad.npy").toString(), in.resolve(names.get(0)).toString()));
    r = ModelCommandsTest.run(new EmbedImagesCommand(), "", bad.toArray(String[]::new));
    assertTrue(r.code() != 0 && r.err().contains("quick_gelu and gelu"), r.code() + ": " + r.err());
  }

  /**
   * embed-images and embed-texts report progress as embed does: lines (here every millisecond) with
   * counts and a last report, nothing with --progress none, and a bad mode exits 2.
   */
  @Test
  void embedImagesAndTextsReportProgress(@TempDir Path tmp) throws IOException {
    String[] common = {"--model", ModelCommandsTest.model.toString(), "--vocab", ModelCommandsTest.vocab(), "--device", "cpu"};
    String rose = dev.jclip.testing.Reference.file("images/rose.jpg").toString();
    EmbedImagesCommand ei = new EmbedImagesCommand();
    ei.progressIntervalMillis = 1;
    List<String> args = new ArrayList<>(List.of(common));
    args.addAll(List.of("--progress", "lines", "--batch-size", "1", "--out", tmp.resolve("i.npy").toString(), rose, rose, rose));
    CliRun.Result r = ModelCommandsTest.run(ei, "", args.toArray(String[]::new));
    assertEquals(0, r.code(), r.err());
    assertTrue(r.err().contains("jclip embed-images: 3/3 (100%)"), r.err());
    assertTrue(r.err().lastIndexOf("(100%)") < r.err().indexOf("wrote 3 x"), "the last report before the summary: " + r.err());
    args = new ArrayList<>(List.of(common));
    args.addAll(List.of("--progress", "lines", "--out", tmp.resolve("s.npy").toString(), rose));
    r = ModelCommandsTest.run(new EmbedImagesCommand(), "", args.toArray(String[]::new)); // shorter than its 10 s
    assertEquals(0, r.code(), r.err());
    assertTrue(!r.err().contains("(100%)") && r.err().contains("wrote 1 x"), "a short run prints its summary alone: " + r.err());
    EmbedTextsCommand et = new EmbedTextsCommand();
    et.progressIntervalMillis = 1;
    args = new ArrayList<>(List.of(common));
    args.addAll(List.of("--progress", "lines", "--batch-size", "1", "--out", tmp.resolve("t.npy").toString()));
    r = ModelCommandsTest.run(et, "\"a dog\"\n\"a cat\"\n", args.toArray(String[]::new));
    assertEquals(0, r.code(), r.err());
    assertTrue(r.err().contains("jclip embed-texts: 2 items"), r.err());
    args = new ArrayList<>(List.of(common));
    args.addAll(List.of("--progress", "none", "--out", tmp.resolve("n.npy").toString(), rose));
    EmbedImagesCommand quiet = new EmbedImagesCommand();
    quiet.progressIntervalMillis = 1;
    r = ModelCommandsTest.run(quiet, "", args.toArray(String[]::new));
    assertEquals(0, r.code(), r.err());
    assertTrue(!r.err().contains("(100%)"), r.err());
    args = new ArrayList<>(List.of(common));
    args.addAll(List.of("--progress", "loud", "--out", tmp.resolve("x.npy").toString(), rose));
    r = ModelCommandsTest.run(new EmbedImagesCommand(), "", args.toArray(String[]::new));
    assertEquals(2, r.code(), r.err());
    assertTrue(r.err().contains("--progress must be auto, bar, lines or none"), r.err());
  }

  @Test
  void jpegDraftGivesWhatEmbedImagesGivesWithIt(@TempDir Path tmp) throws IOException {
    org.junit.jupiter.api.Assumptions.assumeTrue(
        new dev.jclip.image.ImageDecoder().jpegCodec() == dev.jclip.image.ImageDecoder.JpegCodec.NATIVE, "libturbojpeg not installed");
    Path in = Files.createDirectories(tmp.resolve("in"));
    // Photos of 300-641 px: the draft decodes those at least twice the model's input size at 1/2
    // scale and the others at full size.
    List<String> names = List.of("draft-420.jpg", "draft-444.jpg", "draft-gray.jpg", "draft-progressive.jpg");
    for (String n : names) {
      try (var res = dev.jclip.image.ImageDecoder.class.getResourceAsStream(n)) {
        Files.copy(res, in.resolve(n));
      }
    }
    String[] common = {"--model", ModelCommandsTest.model.toString(), "--vocab", ModelCommandsTest.vocab(), "--device", "cpu"};
    java.util.function.BiFunction<String, Boolean, float[][]> embed = (dir, draft) -> {
      List<String> a = new ArrayList<>(List.of(common));
      a.addAll(List.of("--input", in.toString(), "--output", tmp.resolve(dir).toString(), "--dtype", "float32", "--batch-size", "3",
          "--workers", "2", "--progress", "none"));
      if (draft) a.add("--jpeg-draft");
      CliRun.Result r = ModelCommandsTest.run(new EmbedCommand(), "", a.toArray(String[]::new));
      assertEquals(0, r.code(), r.err());
      try {
        var job = new com.fasterxml.jackson.databind.ObjectMapper().readTree(tmp.resolve(dir).resolve("job.json").toFile());
        assertEquals(draft, job.get("jpeg_draft").asBoolean(), "job.json jpeg_draft");
        return ModelCommandsTest.readNpy(tmp.resolve(dir).resolve("img_emb").resolve("img_emb_0.npy"));
      } catch (IOException e) {
        throw new java.io.UncheckedIOException(e);
      }
    };
    float[][] drafted = embed.apply("draft", true);
    int resolution = new com.fasterxml.jackson.databind.ObjectMapper().readTree(tmp.resolve("draft").resolve("job.json").toFile()).get("image_size").asInt();
    int drafts = 0;
    float[][] full = embed.apply("full", false);
    List<String> ei = new ArrayList<>(List.of(common));
    ei.addAll(List.of("--jpeg-draft", "--out", tmp.resolve("ei.npy").toString()));
    for (String n : names) ei.add(in.resolve(n).toString());
    CliRun.Result r = ModelCommandsTest.run(new EmbedImagesCommand(), "", ei.toArray(String[]::new));
    assertEquals(0, r.code(), r.err());
    float[][] direct = ModelCommandsTest.readNpy(tmp.resolve("ei.npy"));
    assertEquals(names.size(), drafted.length);
    for (int i = 0; i < names.size(); i++) {
      ModelCommandsTest.assertClose(direct[i], drafted[i], 1e-5, "embed vs embed-images with --jpeg-draft " + names.get(i));
      // The draft is used where Pillow's rule says: the features move (slightly) away from the
      // full-size decode's; elsewhere they are the same.
      var im = new dev.jclip.image.ImageDecoder().decode(in.resolve(names.get(i)));
      boolean reduced = Math.min(im.width(), im.height()) >= 2 * resolution;
      double d = 0, n = 0;
      for (int k = 0; k < full[i].length; k++) {
        d += (drafted[i][k] - full[i][k]) * (drafted[i][k] - full[i][k]);
        n += full[i][k] * full[i][k];
      }
      double rel = Math.sqrt(d / n);
      assertTrue(reduced ? rel > 1e-4 && rel < 0.5 : rel == 0, names.get(i) + ": relative difference to full-size decoding " + rel);
      drafts += reduced ? 1 : 0;
    }
    assertTrue(drafts > 0, "no photo large enough for the draft at " + resolution + " px");
    // A folder started without the draft is not resumed with it.
    List<String> a = new ArrayList<>(List.of(common));
    a.addAll(List.of("--input", in.toString(), "--output", tmp.resolve("full").toString(), "--dtype", "float32", "--progress", "none",
        "--batch-size", "3", "--jpeg-draft"));
    r = ModelCommandsTest.run(new EmbedCommand(), "", a.toArray(String[]::new));
    assertEquals(1, r.code(), r.err());
    assertTrue(r.err().contains("other options"), r.err());
  }

  private static Path firstShard(Path out) throws IOException {
    try (var s = Files.list(out.resolve("img_emb"))) {
      return s.sorted().findFirst().orElseThrow();
    }
  }

  /**
   * What embed can tell before loading the model it tells first (the model path here does not
   * exist, so a later check could not be reached): a missing input, a folder another embed holds,
   * a job folder started with other options. A job whose every input is skipped exits 1.
   */
  @Test
  void checksBeforeTheModelLoadsAndFailsWhenNothingIsEmbedded(@TempDir Path tmp) throws IOException {
    Path in = Files.createDirectories(tmp.resolve("in"));
    Files.writeString(in.resolve("a.jpg"), "not a jpeg");
    Files.write(in.resolve("b.png"), new byte[0]);
    Path out = tmp.resolve("out");
    List<String> base = List.of("--model", ModelCommandsTest.model.toString(), "--vocab", ModelCommandsTest.vocab(), "--device", "cpu", "--output",
        out.toString(), "--progress", "none", "--shard-size", "5");
    List<String> args = new ArrayList<>(base);
    args.addAll(List.of("--input", in.toString()));
    CliRun.Result r = ModelCommandsTest.run(new EmbedCommand(), "", args.toArray(String[]::new));
    assertEquals(1, r.code(), r.err());
    assertTrue(r.err().contains("2 inputs, 0 embedded, 2 skipped (errors.jsonl)") && r.err().contains("nothing was embedded")
        && r.err().contains("--retry-skipped"), r.err());
    // the inputs mended: a plain resume keeps them skipped, --retry-skipped embeds them
    Path mended = tmp.resolve("mended");
    Files.copy(dev.jclip.testing.Reference.file("images/rose.jpg"), mended);
    Files.copy(mended, in.resolve("a.jpg"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    r = ModelCommandsTest.run(new EmbedCommand(), "", args.toArray(String[]::new));
    assertEquals(1, r.code(), r.err());
    List<String> retry = new ArrayList<>(args);
    retry.add("--retry-skipped");
    r = ModelCommandsTest.run(new EmbedCommand(), "", retry.toArray(String[]::new));
    assertEquals(0, r.code(), r.err());
    assertTrue(r.err().contains("jclip embed: shard 0: computed again: 2 inputs were skipped (--retry-skipped)")
        && r.err().contains("2 inputs, 1 embedded, 1 skipped (errors.jsonl), 1 shard (0 already done)"), r.err());

    List<String> noModel = new ArrayList<>(base);
    noModel.set(1, tmp.resolve("no-such-model.pt").toString());
    List<String> missing = new ArrayList<>(noModel);
    missing.addAll(List.of("--input", tmp.resolve("nowhere").toString()));
    r = ModelCommandsTest.run(new EmbedCommand(), "", missing.toArray(String[]::new));
    assertEquals(1, r.code(), r.err());
    assertTrue(r.err().contains("nowhere") && r.err().contains("input not found") && !r.err().contains("no-such-model"), r.err());

    List<String> other = new ArrayList<>(noModel);
    other.addAll(List.of("--input", in.toString()));
    other.set(other.indexOf("5"), "7");
    r = ModelCommandsTest.run(new EmbedCommand(), "", other.toArray(String[]::new));
    assertEquals(1, r.code(), r.err());
    // the options and the model's name both differ, and both are said before any model is read
    assertTrue(r.err().contains("holds a job started with other options (shard_size: 5 then, 7 now; model: ") && !r.err().contains("no such file"), r.err());

    try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(out.resolve(".jclip/lock"), java.nio.file.StandardOpenOption.WRITE);
        java.nio.channels.FileLock held = ch.lock()) {
      List<String> same = new ArrayList<>(noModel);
      same.addAll(List.of("--input", in.toString()));
      r = ModelCommandsTest.run(new EmbedCommand(), "", same.toArray(String[]::new));
      assertEquals(1, r.code(), r.err());
      assertTrue(r.err().contains("another jclip embed is writing to " + out) && !r.err().contains("no-such-model"), r.err());
    }
  }
}
