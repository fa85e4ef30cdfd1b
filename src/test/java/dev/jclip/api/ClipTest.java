package dev.jclip.api;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.io.SafetensorsReader;
import dev.jclip.io.Tensor;
import dev.jclip.testing.Reference;
import dev.jclip.testing.TestRandom;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The library surface on the reference's vit-b32-tiny: the README example, batching, threads. */
class ClipTest {
  static Path dir;
  static Clip clip;
  static List<String> texts;
  static float[][] goldenProbs;
  static List<String> images;

  @BeforeAll
  static void load() throws Exception {
    dir = Reference.dir().resolve("models/vit-b32-tiny");
    clip = Clip.load(dir.resolve("state_dict.pt").toString(),
        Clip.Options.defaults().withVocabulary(Reference.file("bpe_simple_vocab_16e6.txt.gz")).withBatchSize(3));
    // the golden file's texts are in its metadata; images in the order of the reference README's table
    try (SafetensorsReader g = SafetensorsReader.open(dir.resolve("golden.safetensors"))) {
      Tensor p = g.tensor("probs");
      int cols = (int) p.dim(1);
      float[] flat = p.toFloatArray();
      goldenProbs = new float[(int) p.dim(0)][cols];
      for (int i = 0; i < goldenProbs.length; i++) System.arraycopy(flat, i * cols, goldenProbs[i], 0, cols);
      texts = new com.fasterxml.jackson.databind.ObjectMapper().readValue(g.metadata().get("texts"),
          new com.fasterxml.jackson.core.type.TypeReference<List<String>>() {});
      images = new com.fasterxml.jackson.databind.ObjectMapper().readValue(g.metadata().get("images"),
          new com.fasterxml.jackson.core.type.TypeReference<List<String>>() {});
    }
  }

  @AfterAll
  static void close() {
    clip.close();
  }

  @Test
  void readmeExampleGivesTheGoldenProbabilities() throws Exception {
    float[][] probs = clip.probs(clip.preprocess(Reference.file("images/CLIP.png")), clip.tokenize("a diagram", "a dog", "a cat"));
    int row = images.indexOf("CLIP.png");
    assertTrue(row >= 0, "CLIP.png not among the golden images " + images);
    assertEquals(1, probs.length);
    assertEquals(3, probs[0].length);
    // the golden softmax runs over all its texts: restricted to three, it is renormalised over them
    int[] cols = new int[3];
    double sum = 0;
    for (int j = 0; j < 3; j++) {
      cols[j] = texts.indexOf(List.of("a diagram", "a dog", "a cat").get(j));
      assertTrue(cols[j] >= 0);
      sum += goldenProbs[row][cols[j]];
    }
    for (int j = 0; j < 3; j++) assertEquals(goldenProbs[row][cols[j]] / sum, probs[0][j], 1e-5, "probs[0][" + j + "]");
    System.out.println("[clip] Label probs: " + java.util.Arrays.toString(probs[0]));
  }

  @Test
  void batchesGiveTheSameFeaturesAsSingles() throws Exception {
    Path[] files = images.stream().map(n -> Reference.file("images/" + n)).toArray(Path[]::new);
    Clip.Pixels all = clip.preprocess(files);
    float[][] batched = clip.encodeImage(all); // batch size 3: several batches and a partial one
    for (int i = 0; i < files.length; i++) {
      float[] single = clip.encodeImage(clip.preprocess(files[i]))[0];
      assertClose(single, batched[i], 1e-5, "image " + files[i].getFileName());
    }
    // each text alone is cut at its own end-of-text, in a batch at the batch's longest (OpenBLAS
    // picks its kernels by M, so other batch sizes may differ in the last bits)
    float[][] t = clip.encodeText(clip.tokenize(texts, true));
    for (int i = 0; i < texts.size(); i++) {
      assertClose(clip.encodeText(clip.tokenize(List.of(texts.get(i)), true))[0], t[i], 1e-6, "text " + i);
    }
    float[][] probs = clip.probs(all, clip.tokenize(texts, true));
    for (int i = 0; i < probs.length; i++) for (int j = 0; j < probs[i].length; j++) assertEquals(goldenProbs[i][j], probs[i][j], 1e-4);
  }

  @Test
  void textsBatchedByLengthComeBackInTheirOwnOrder() throws Exception {
    // long and short texts interleaved: batched by length (batch size 3), each batch cut at its own
    // longest, and every row must still be that text's own features, in the order given
    List<String> mixed = new java.util.ArrayList<>();
    String[] words = "the quick brown fox jumps over a lazy dog near an old stone bridge at dawn while birds sing".split(" ");
    for (int i = 0; i < 10; i++) {
      int n = i % 2 == 0 ? 1 + i / 2 : words.length - i;
      mixed.add(String.join(" ", java.util.Arrays.copyOf(words, n)));
    }
    float[][] batched = clip.encodeText(clip.tokenize(mixed, true));
    assertEquals(mixed.size(), batched.length);
    for (int i = 0; i < mixed.size(); i++) {
      assertClose(clip.encodeText(clip.tokenize(List.of(mixed.get(i)), true))[0], batched[i], 1e-6, "text " + i + " '" + mixed.get(i) + "'");
    }
  }

  @Test
  void submitImageGivesWhatEncodeImageGives() throws Exception {
    Path[] files = images.stream().map(n -> Reference.file("images/" + n)).toArray(Path[]::new);
    Clip.Pixels all = clip.preprocess(files);
    float[][] want = clip.encodeImage(all);
    try (Clip.Pending p = clip.submitImage(all)) {
      assertTrue(p.isDone(), "the CPU encodes in submitImage");
      float[][] got = p.finish();
      assertEquals(want.length, got.length);
      for (int i = 0; i < want.length; i++) assertArrayEquals(want[i], got[i], "image " + i);
      assertTrue(got == p.finish(), "finish is idempotent");
    }
    Clip.Tokens tokens = clip.tokenize(texts, true);
    float[][] wantText = clip.encodeText(tokens);
    try (Clip.Pending p = clip.submitText(tokens)) {
      assertTrue(p.isDone());
      for (int i = 0; i < wantText.length; i++) assertArrayEquals(wantText[i], p.finish()[i], "text " + i);
    }
    // the batch encoder of the embedding pipeline: a pooled buffer larger than the batch
    ClipBatchEncoder enc = new ClipBatchEncoder(clip, "tiny");
    int e = enc.embedDim(), per = 3 * enc.imageSize() * enc.imageSize();
    float[] pooled = java.util.Arrays.copyOf(all.data(), all.data().length + per);
    float[] out = new float[files.length * e];
    try (dev.jclip.pipeline.BatchEncoder.Pending f = enc.submitImages(pooled, files.length, out)) {
      assertTrue(f == dev.jclip.pipeline.BatchEncoder.Pending.DONE, "encoded in submit on the CPU");
      f.finish();
    }
    for (int i = 0; i < files.length; i++) assertArrayEquals(want[i], java.util.Arrays.copyOfRange(out, i * e, (i + 1) * e), "row " + i);
  }

  /**
   * What a Clip keeps between calls is bounded and goes with it: many callers at once on the CPU
   * take turns past a few runs (so only that many executors were built for one shape), the kept
   * preprocessors are dropped by releaseIdle() and close(), a closed Clip refuses to preprocess,
   * and an interrupted caller gets its result with its interrupt flag kept.
   */
  @Test
  void whatAClipKeepsIsBoundedAndGoesWithIt() throws Exception {
    Path rose = Reference.file("images/rose.jpg");
    try (dev.jclip.io.Checkpoint ck = dev.jclip.io.Checkpoint.open(Reference.file("models/vit-b32-tiny/state_dict.pt"))) {
      dev.jclip.model.ClipConfig cfg = dev.jclip.model.ClipConfig.infer(ck);
      Clip c = Clip.create(cfg, ck.tensors(), null, Clip.Options.defaults().withDevice("cpu").withThreads(2));
      Clip.Pixels px = c.preprocess(rose);
      float[] want = c.encodeImage(px)[0];
      c.releaseIdle();
      ExecutorService pool = Executors.newFixedThreadPool(16);
      try {
        List<Future<float[]>> got = new ArrayList<>();
        for (int i = 0; i < 64; i++) got.add(pool.submit(() -> c.encodeImage(c.preprocess(rose))[0]));
        for (Future<float[]> f : got) assertArrayEquals(want, f.get(120, TimeUnit.SECONDS));
      } finally {
        pool.shutdown();
      }
      int[] kept = c.kept();
      int runs = Math.max(2, Runtime.getRuntime().availableProcessors() - 2 + 1);
      assertTrue(kept[0] <= Math.min(runs, 15), "idle executors of one shape after 16 callers on 2 threads: " + kept[0] + " (at most " + runs + " run at once)");
      assertTrue(kept[1] >= 1 && kept[1] <= Runtime.getRuntime().availableProcessors(), "kept preprocessors: " + kept[1]);
      c.releaseIdle();
      assertArrayEquals(new int[] {0, 0}, c.kept());
      Thread.currentThread().interrupt();
      try {
        assertArrayEquals(want, c.encodeImage(px)[0]);
      } finally {
        assertTrue(Thread.interrupted(), "the interrupt flag is kept");
      }
      c.preprocess(rose);
      c.close();
      assertArrayEquals(new int[] {0, 0}, c.kept());
      IllegalStateException closed = assertThrows(IllegalStateException.class, () -> c.preprocess(rose));
      assertTrue(closed.getMessage().contains("closed"), closed.getMessage());
    }
  }

  /** Past the idle bytes' cap the least recently used shape goes, not the one just used. */
  @Test
  void idleExecutorsPastTheCapGoLeastRecentlyUsedFirst() throws Exception {
    Path rose = Reference.file("images/rose.jpg");
    try (dev.jclip.io.Checkpoint ck = dev.jclip.io.Checkpoint.open(Reference.file("models/vit-b32-tiny/state_dict.pt"))) {
      dev.jclip.model.ClipConfig cfg = dev.jclip.model.ClipConfig.infer(ck);
      try (Clip c = Clip.create(cfg, ck.tensors(), null, Clip.Options.defaults().withDevice("cpu").withThreads(1))) {
        Clip.Pixels one = c.preprocess(rose), two = c.preprocess(rose, rose);
        int[] ids = new int[cfg.contextLength()];
        ids[0] = 49406;
        ids[1] = 320;
        ids[2] = 49407;
        Clip.Tokens text = new Clip.Tokens(1, ids.length, ids); // a text's activations: less than two images
        c.encodeImage(one);
        long a = c.idleBytes();
        c.encodeImage(two);
        long ab = c.idleBytes();
        assertTrue(a > 0 && ab > a, a + " then " + ab);
        c.idleBytesCap = ab;
        java.util.SortedSet<String> before = c.idleShapes();
        assertEquals(2, before.size(), before.toString());
        c.encodeImage(one); // the one-image shape is now the more recent
        c.encodeText(text); // over the cap: the two-image shape, least recently used, goes
        java.util.SortedSet<String> after = c.idleShapes();
        assertEquals(2, after.size(), before + " -> " + after);
        assertTrue(after.contains("image:1") && !after.contains("image:2"), before + " -> " + after);
        assertTrue(c.idleBytes() <= ab, c.idleBytes() + " > " + ab);
        c.idleBytesCap = 1; // each over the cap by itself: none is kept, and those kept stay
        c.encodeImage(two);
        assertEquals(after, c.idleShapes());
      }
    }
  }

  /** A job records the precision its model computes in; options that say another are refused, not recorded. */
  @Test
  void anEmbedJobRecordsThePrecisionItsModelComputesIn(@org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
    ClipBatchEncoder enc = new ClipBatchEncoder(clip, "tiny");
    assertEquals("fp32", enc.precision());
    Path in = java.nio.file.Files.createDirectories(tmp.resolve("in"));
    java.nio.file.Files.copy(Reference.file("images/rose.jpg"), in.resolve("rose.jpg"));
    dev.jclip.pipeline.EmbedJob.Options o = new dev.jclip.pipeline.EmbedJob.Options().input(in.toString()).output(tmp.resolve("out"))
        .progress("none", 1000).log(new java.io.PrintStream(java.io.OutputStream.nullOutputStream()));
    IllegalArgumentException bad = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
        () -> dev.jclip.pipeline.EmbedJob.run(o.precision("fp16"), enc));
    assertTrue(bad.getMessage().contains("say precision fp16, but the model was loaded to compute in fp32"), bad.getMessage());
    dev.jclip.pipeline.EmbedJob.run(o.precision(null), enc);
    String job = java.nio.file.Files.readString(tmp.resolve("out/job.json"));
    assertTrue(job.contains("\"precision\":\"fp32\"") || job.contains("\"precision\" : \"fp32\""), job);
  }

  @Test
  void manyThreadsGetTheSameResults() throws Exception {
    Random rnd = TestRandom.create("ClipTest.threads");
    Path[] files = images.stream().map(n -> Reference.file("images/" + n)).toArray(Path[]::new);
    float[][] wantImages = clip.encodeImage(clip.preprocess(files));
    float[][] wantTexts = clip.encodeText(clip.tokenize(texts, true));
    ExecutorService pool = Executors.newFixedThreadPool(8);
    try {
      List<Future<?>> jobs = new ArrayList<>();
      for (int job = 0; job < 32; job++) {
        int i = rnd.nextInt(files.length), j = rnd.nextInt(texts.size());
        boolean image = rnd.nextBoolean();
        jobs.add(pool.submit(() -> {
          if (image) assertClose(wantImages[i], clip.encodeImage(clip.preprocess(files[i]))[0], 1e-5, "image " + i);
          else assertClose(wantTexts[j], clip.encodeText(clip.tokenize(List.of(texts.get(j)), true))[0], 1e-5, "text " + j);
          return null;
        }));
      }
      for (Future<?> f : jobs) f.get();
    } finally {
      pool.shutdown();
    }
  }

  /**
   * A service without a batcher: 8 threads calling with batches of many sizes and text lengths, so
   * that the CPU backend meets hundreds of GEMM shapes on each thread (its oneDNN memory objects by
   * shape are bounded per thread; {@code DnnlLinearTest} checks the bound itself, which crashed
   * the JVM under such a load until session 23). Every row is the features of its item encoded
   * alone.
   */
  @Test
  void manyThreadsCallingWithManyShapesGetEachItemsFeatures() throws Exception {
    Random rnd = TestRandom.create("ClipTest.shapes");
    try (Clip c = Clip.load(dir.resolve("state_dict.pt").toString(),
        Clip.Options.defaults().withVocabulary(Reference.file("bpe_simple_vocab_16e6.txt.gz")).withDevice("cpu").withThreads(2))) {
      List<String> words = List.of("a", "photo", "of", "the", "small", "dog", "cat", "diagram", "red", "car", "on", "grass");
      List<String> pool = new ArrayList<>();
      for (int i = 0; i < 40; i++) {
        StringBuilder t = new StringBuilder();
        for (int w = 0; w <= i; w++) t.append(w == 0 ? "" : " ").append(words.get(rnd.nextInt(words.size())));
        pool.add(t.toString()); // 1 to 40 words: cut lengths 3 to ~42
      }
      int per = 3 * c.config().imageResolution() * c.config().imageResolution();
      Clip.Pixels pixels = new Clip.Pixels(8, c.config().imageResolution(), TestRandom.gaussian(rnd, 8 * per, 1.0));
      float[][] wantTexts = new float[pool.size()][], wantImages = new float[8][];
      for (int i = 0; i < pool.size(); i++) wantTexts[i] = c.encodeText(c.tokenize(pool.get(i)))[0];
      for (int i = 0; i < 8; i++) wantImages[i] = c.encodeImage(pixels.slice(i, i + 1))[0];
      ExecutorService threads = Executors.newFixedThreadPool(8);
      try {
        List<Future<?>> jobs = new ArrayList<>();
        for (int job = 0; job < 240; job++) {
          boolean image = job % 6 == 5;
          int[] picks = rnd.ints(image ? 1 + rnd.nextInt(4) : 1 + rnd.nextInt(12), 0, image ? 8 : pool.size()).toArray();
          jobs.add(threads.submit(() -> {
            if (image) {
              List<Clip.Pixels> parts = new ArrayList<>();
              for (int p : picks) parts.add(pixels.slice(p, p + 1));
              float[][] got = c.encodeImage(Clip.Pixels.concat(parts));
              for (int k = 0; k < picks.length; k++) assertClose(wantImages[picks[k]], got[k], 1e-5, "image " + picks[k]);
            } else {
              List<String> t = new ArrayList<>();
              for (int p : picks) t.add(pool.get(p));
              float[][] got = c.encodeText(c.tokenize(t, false));
              for (int k = 0; k < picks.length; k++) assertClose(wantTexts[picks[k]], got[k], 1e-5, "text " + picks[k]);
            }
            return null;
          }));
        }
        for (Future<?> f : jobs) f.get();
      } finally {
        threads.shutdown();
      }
    }
  }

  @Test
  void bufferedImagesAreTakenAsRgb() throws Exception {
    BufferedImage im = javax.imageio.ImageIO.read(Reference.file("images/grace_hopper.jpg").toFile());
    float[] viaAwt = clip.encodeImage(clip.preprocess(im))[0];
    float[] viaFile = clip.encodeImage(clip.preprocess(Reference.file("images/grace_hopper.jpg")))[0];
    // AWT's JPEG decoder may round differently from libjpeg: close, not equal
    assertClose(viaFile, viaAwt, 5e-2, "grace_hopper via BufferedImage");
  }

  @Test
  void badInputsSayWhatIsWrong() throws Exception {
    Path bad = Files.createTempFile("jclip-bad", ".png");
    try {
      Files.writeString(bad, "not an image");
      Exception e = assertThrows(java.io.IOException.class, () -> clip.preprocess(bad));
      assertTrue(e.getMessage().contains(bad.getFileName().toString()), e.getMessage());
    } finally {
      Files.delete(bad);
    }
    Exception e = assertThrows(IllegalArgumentException.class, () -> Clip.load(dir.resolve("state_dict.pt").toString(), Clip.Options.defaults().withDevice("tpu")));
    assertTrue(e.getMessage().contains("tpu"));
    e = assertThrows(IllegalArgumentException.class, () -> clip.tokenize("word ".repeat(100)));
    assertTrue(e.getMessage().contains("too long"), e.getMessage());
    assertThrows(java.nio.file.NoSuchFileException.class, () -> Clip.load(dir.resolve("missing.pt").toString()));
  }

  /** Options.withActivation overrides the checkpoint's (a bare open_clip state dict trained without -quickgelu needs gelu). */
  @Test
  void anActivationOverrideReplacesTheCheckpoints() throws Exception {
    Clip.Options o = Clip.Options.defaults().withVocabulary(Reference.file("bpe_simple_vocab_16e6.txt.gz")).withBatchSize(3).withDevice("cpu");
    float[][] pixels = clip.encodeImage(clip.preprocess(Reference.file("images/" + images.get(0))));
    try (Clip gelu = Clip.load(dir.resolve("state_dict.pt").toString(), o.withActivation("gelu"));
        Clip quick = Clip.load(dir.resolve("state_dict.pt").toString(), o.withActivation("quick_gelu"))) {
      assertEquals(dev.jclip.model.Activation.GELU, gelu.config().activation());
      assertEquals("override", gelu.config().activationSource());
      float[] g = gelu.encodeImage(gelu.preprocess(Reference.file("images/" + images.get(0))))[0];
      float[] q = quick.encodeImage(quick.preprocess(Reference.file("images/" + images.get(0))))[0];
      assertClose(pixels[0], q, 1e-6, "quick_gelu is the checkpoint's own");
      double err = dev.jclip.backend.ReferenceOps.relativeError(g, pixels[0]);
      assertTrue(err > 1e-3, "GELU's features within " + err + " of QuickGELU's");
    }
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> o.withActivation("relu"));
    assertTrue(e.getMessage().contains("quick_gelu and gelu"), e.getMessage());
  }

  /**
   * The Python API's pieces: logits from features equal {@code exp(logit_scale)} times the cosines
   * of {@link Clip#normalize}d rows (the golden logits), {@code logitScale()} is the stored
   * parameter (3.9 for vit-b32-tiny, from its manifest), {@code tokenize(List)} refuses as {@code
   * tokenize(String...)} does, and the records compare and print by content.
   */
  @Test
  void pythonApiPieces() throws Exception {
    assertEquals(3.9f, clip.logitScale(), 1e-6f);
    Clip.Pixels px = clip.preprocess(Reference.file("images/rose.jpg"), Reference.file("images/coins.png"));
    Clip.Tokens tk = clip.tokenize(List.of("a red rose", "a pile of old coins", "a dog"));
    assertEquals(tk, clip.tokenize("a red rose", "a pile of old coins", "a dog"));
    assertEquals(tk.hashCode(), clip.tokenize("a red rose", "a pile of old coins", "a dog").hashCode());
    assertTrue(!tk.equals(clip.tokenize("a red rose", "a pile of old coins", "a cat")));
    assertEquals(px, clip.preprocess(Reference.file("images/rose.jpg"), Reference.file("images/coins.png")));
    assertEquals("Pixels[2 x 3 x 224 x 224]", px.toString());
    assertTrue(tk.toString().startsWith("Tokens[3 x 77: [49406, "), tk.toString());
    assertTrue(tk.toString().contains(", 49407], ["), tk.toString());
    float[][] img = Clip.normalize(clip.encodeImage(px)), txt = Clip.normalize(clip.encodeText(tk));
    float[][] logits = clip.logits(clip.encodeImage(px), clip.encodeText(tk));
    for (int i = 0; i < 2; i++) {
      double norm = 0;
      for (float v : img[i]) norm += v * v;
      assertEquals(1, norm, 1e-6, "normalised row " + i);
      for (int t = 0; t < 3; t++) {
        double dot = 0;
        for (int e = 0; e < img[i].length; e++) dot += img[i][e] * txt[t][e];
        assertEquals(Math.exp(clip.logitScale()) * dot, logits[i][t], 1e-4 * Math.abs(logits[i][t]) + 1e-5, "logit " + i + "," + t);
      }
    }
    assertArrayEquals(new float[] {0, 0}, Clip.normalize(new float[][] {{0, 0}})[0]);
    assertArrayEquals(new float[] {Float.NaN, Float.NaN}, Clip.normalize(new float[][] {{Float.NaN, 1}})[0]);
    String longText = "a caption that goes on " + "and on ".repeat(80);
    assertThrows(IllegalArgumentException.class, () -> clip.tokenize(List.of(longText)));
    assertEquals(1, clip.tokenize(List.of(longText), true).count());
    assertThrows(NullPointerException.class, () -> Clip.normalize(new float[][] {{1}, null}));
  }

  /** A classifier rebuilt from cached class embeddings scores as the one built; rows of another width are refused by class. */
  @Test
  void zeroShotClassifierFromCachedEmbeddings() throws Exception {
    List<String> classes = List.of("rose", "coin", "dog");
    dev.jclip.zeroshot.ZeroShotClassifier built = dev.jclip.zeroshot.ZeroShotClassifier.build(clip, classes, List.of("a photo of a {}.", "a {}."));
    dev.jclip.zeroshot.ZeroShotClassifier again = dev.jclip.zeroshot.ZeroShotClassifier.of(clip, classes, built.classEmbeddings());
    float[][] f = clip.encodeImage(clip.preprocess(Reference.file("images/rose.jpg")));
    assertArrayEquals(built.probs(f)[0], again.probs(f)[0]);
    float[][] narrow = new float[3][clip.config().embedDim() - 1];
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> dev.jclip.zeroshot.ZeroShotClassifier.of(clip, classes, narrow));
    assertTrue(e.getMessage().contains("class embedding 0 (rose) has " + (clip.config().embedDim() - 1) + " values"), e.getMessage());
    float[][] zero = {built.classEmbeddings()[0], new float[clip.config().embedDim()], built.classEmbeddings()[2]};
    e = assertThrows(IllegalArgumentException.class, () -> dev.jclip.zeroshot.ZeroShotClassifier.of(clip, classes, zero));
    assertTrue(e.getMessage().contains("class embedding 1 (coin) is all zeros"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> dev.jclip.zeroshot.ZeroShotClassifier.of(clip, List.of(), new float[0][]));
  }

  /** Bytes in memory preprocess as the file does; bad bytes are named by the name given. */
  @Test
  void preprocessFromBytes() throws Exception {
    Path rose = Reference.file("images/rose.jpg");
    assertEquals(clip.preprocess(rose), clip.preprocess(Path.of("upload-17"), Files.readAllBytes(rose)));
    Exception e = assertThrows(java.io.IOException.class, () -> clip.preprocess(Path.of("upload-18"), new byte[] {1, 2, 3}));
    assertTrue(e.getMessage().contains("upload-18"), e.getMessage());
  }

  static void assertClose(float[] want, float[] got, double tol, String what) {
    double err = dev.jclip.backend.ReferenceOps.relativeError(got, want);
    assertTrue(err <= tol, what + ": relative error " + err);
  }
}
