package dev.jclip.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jclip.image.ClipPreprocessor;
import dev.jclip.image.ImageDecoder;
import dev.jclip.io.ParquetReference;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import java.util.zip.CRC32;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** End-to-end jobs over a generated corpus of good and bad files, with a test encoder. */
class EmbedJobTest {
  static final int R = 16;
  static final int GOOD = 2000;

  @TempDir static Path corpusDir;
  @TempDir Path tmp;

  static Path corpus;
  /** Relative path → expected reason fragment, for the bad files. */
  static final Map<String, String> BAD = new TreeMap<>();

  static final List<String> GOOD_FILES = new ArrayList<>();

  static EmbedJob.Options options(String input, Path output, int batch, int shard) {
    return new EmbedJob.Options()
        .input(input)
        .output(output)
        .batchSize(batch)
        .shardSize(shard)
        .workers(2)
        .model("test-projection", null)
        .precision("fp32")
        .progress("none", 1000)
        .log(new PrintStream(java.io.OutputStream.nullOutputStream()));
  }

  @BeforeAll
  static void makeCorpus() throws IOException {
    corpus = corpusDir.resolve("corpus");
    SplittableRandom rnd = new SplittableRandom(7);
    for (int i = 0; i < GOOD; i++) {
      int w = 4 + rnd.nextInt(40);
      int h = 4 + rnd.nextInt(40);
      BufferedImage im = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
      int base = rnd.nextInt(0xffffff);
      for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) im.setRGB(x, y, base ^ (x * 37 + y * 11));
      boolean jpeg = rnd.nextBoolean();
      boolean cmyk = i % 97 == 3;
      String rel = String.format("d%02d/img_%05d.%s", i % 17, i, jpeg || cmyk ? "jpg" : "png");
      Path f = corpus.resolve(rel);
      Files.createDirectories(f.getParent());
      if (cmyk) {
        writeCmykJpeg(w, h, base, f);
      } else {
        ImageIO.write(im, jpeg ? "jpg" : "png", f.toFile());
      }
      GOOD_FILES.add(rel);
    }
    byte[] sampleJpeg = Files.readAllBytes(corpus.resolve(GOOD_FILES.stream().filter(s -> s.endsWith(".jpg")).findFirst().orElseThrow()));
    for (int i = 0; i < 12; i++) {
      bad(String.format("d%02d/zero_%d.jpg", i, i), new byte[0], "empty file");
      bad(String.format("d%02d/trunc_%d.jpg", i, i), java.util.Arrays.copyOf(sampleJpeg, sampleJpeg.length / 3), "JPEG");
      byte[] junk = new byte[200 + i];
      new SplittableRandom(i).nextBytes(junk);
      junk[0] = (byte) 0x89;
      junk[1] = 'P';
      junk[2] = 'N';
      junk[3] = 'G';
      junk[4] = 0x0D;
      junk[5] = 0x0A;
      junk[6] = 0x1A;
      junk[7] = 0x0A;
      bad(String.format("d%02d/corrupt_%d.png", i, i), junk, "PNG");
      bad(String.format("d%02d/bomb_%d.png", i, i), pngHeader(60_000 + i, 60_000), "");
      bad(String.format("d%02d/notes_%d.md", i, i), ("# not an image " + i).getBytes(), "not a recognised image format");
    }
    GOOD_FILES.sort(null);
  }

  /** A 4-channel JPEG without colour conversion: decoded as CMYK (as Pillow opens such files). */
  private static void writeCmykJpeg(int w, int h, int seed, Path f) throws IOException {
    java.awt.image.WritableRaster r = java.awt.image.Raster.createInterleavedRaster(java.awt.image.DataBuffer.TYPE_BYTE, w, h, 4, null);
    for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) r.setPixel(x, y, new int[] {(x * 9 + seed) & 255, y * 5 & 255, (seed >> 8) & 255, 40});
    javax.imageio.ImageWriter wr = ImageIO.getImageWritersByFormatName("jpeg").next();
    try (javax.imageio.stream.ImageOutputStream os = ImageIO.createImageOutputStream(f.toFile())) {
      wr.setOutput(os);
      wr.write(null, new javax.imageio.IIOImage(r, null, null), wr.getDefaultWriteParam());
    } finally {
      wr.dispose();
    }
  }

  private static void bad(String rel, byte[] content, String reason) throws IOException {
    Path f = corpus.resolve(rel);
    Files.createDirectories(f.getParent());
    Files.write(f, content);
    BAD.put(rel, reason);
  }

  /** A PNG signature and IHDR claiming a huge image (a decompression bomb's header), nothing else. */
  static byte[] pngHeader(int w, int h) {
    ByteBuffer b = ByteBuffer.allocate(8 + 25).order(ByteOrder.BIG_ENDIAN);
    b.put(new byte[] {(byte) 0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A});
    b.putInt(13);
    int start = b.position();
    b.put(new byte[] {'I', 'H', 'D', 'R'}).putInt(w).putInt(h).put((byte) 8).put((byte) 2).put((byte) 0).put((byte) 0).put((byte) 0);
    CRC32 crc = new CRC32();
    crc.update(b.array(), start, 17);
    b.putInt((int) crc.getValue());
    return b.array();
  }

  /** Rows of an .npy file (float16 or float32) as floats. */
  static float[][] readNpy(Path f) throws IOException {
    ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(f)).order(ByteOrder.LITTLE_ENDIAN);
    int hl = b.getShort(8) & 0xffff;
    String header = new String(b.array(), 10, hl, java.nio.charset.StandardCharsets.US_ASCII);
    boolean f16 = header.contains("<f2");
    java.util.regex.Matcher m = java.util.regex.Pattern.compile("\\((\\d+), (\\d+)\\)").matcher(header);
    assertTrue(m.find(), header);
    int rows = Integer.parseInt(m.group(1));
    int cols = Integer.parseInt(m.group(2));
    b.position(10 + hl);
    assertEquals((long) rows * cols * (f16 ? 2 : 4), b.remaining(), f + " size");
    float[][] out = new float[rows][cols];
    for (int r = 0; r < rows; r++) for (int c = 0; c < cols; c++) out[r][c] = f16 ? Float.float16ToFloat(b.getShort()) : b.getFloat();
    return out;
  }

  @Test
  void everyGoodImageOnceInOrderEveryBadOneInErrors() throws Exception {
    Path out = tmp.resolve("out");
    EmbedJob.Result res = EmbedJob.run(options(corpus.toString(), out, 32, 500), new TestEncoder(R, 0));
    int total = GOOD + BAD.size();
    assertEquals(total, res.items());
    assertEquals(GOOD, res.embedded());
    assertEquals(BAD.size(), res.errors());

    // All files sorted by relative path, as the job numbers them.
    List<String> all = new ArrayList<>(GOOD_FILES);
    all.addAll(BAD.keySet());
    all.sort(null);
    int shards = (total + 499) / 500;
    assertEquals(shards, res.shards());

    ImageDecoder dec = new ImageDecoder();
    ClipPreprocessor pre = new ClipPreprocessor(R);
    TestEncoder enc = new TestEncoder(R, 0);
    List<String> seen = new ArrayList<>();
    int cmykSeen = 0;
    for (int n = 0; n < shards; n++) {
      float[][] emb = readNpy(out.resolve("img_emb/img_emb_" + n + ".npy"));
      ParquetReference.Table meta = ParquetReference.read(out.resolve("metadata/metadata_" + n + ".parquet"));
      assertEquals(List.of("image_path", "width", "height"), meta.columnNames());
      assertEquals(emb.length, meta.rows().size());
      List<String> inShard = all.subList(n * 500, Math.min(total, (n + 1) * 500)).stream().filter(s -> !BAD.containsKey(s)).toList();
      assertEquals(inShard, meta.column("image_path"), "shard " + n + " holds its good inputs in order");
      for (int i = 0; i < emb.length; i++) {
        String rel = (String) meta.rows().get(i).get(0);
        seen.add(rel);
        // The expected row, computed independently of the pipeline's threads and buffers.
        var im = dec.decode(corpus.resolve(rel));
        if (im.mode() == dev.jclip.image.DecodedImage.Mode.CMYK) cmykSeen++;
        assertEquals(im.width(), meta.rows().get(i).get(1));
        assertEquals(im.height(), meta.rows().get(i).get(2));
        float[] px = new float[3 * R * R];
        pre.toTensor(im, px, 0);
        float[] want = new float[TestEncoder.E];
        enc.encodeImages(px, 1, want);
        EmbedJob.normalize(want, TestEncoder.E);
        for (int k = 0; k < want.length; k++) want[k] = Float.float16ToFloat(Float.floatToFloat16(want[k]));
        assertArrayEquals(want, emb[i], rel);
      }
    }
    assertEquals(GOOD_FILES, seen, "every good image exactly once, in input order");
    assertTrue(cmykSeen >= 20, cmykSeen + " CMYK JPEGs embedded");

    ObjectMapper m = new ObjectMapper();
    List<String> errLines = Files.readAllLines(out.resolve("errors.jsonl"));
    assertEquals(BAD.size(), errLines.size());
    long prev = -1;
    for (String l : errLines) {
      JsonNode e = m.readTree(l);
      String rel = e.get("image_path").asText();
      assertTrue(BAD.containsKey(rel), rel + " is not a bad file");
      assertEquals(all.indexOf(rel), e.get("index").asLong());
      assertTrue(e.get("index").asLong() > prev, "errors in input order");
      prev = e.get("index").asLong();
      String reason = e.get("error").asText();
      assertTrue(reason.contains(BAD.get(rel)), rel + ": " + reason);
      if (rel.contains("bomb")) assertTrue(reason.toLowerCase().contains("pixel") || reason.toLowerCase().contains("bomb"), reason);
    }
    JsonNode job = m.readTree(out.resolve("job.json").toFile());
    assertEquals(GOOD, job.get("counts").get("embedded").asLong());
    assertEquals("test-projection", job.get("model").get("name").asText());
    String jpeg = job.get("jpeg_decoder").asText();
    assertTrue(jpeg.startsWith("libjpeg-turbo") || jpeg.startsWith("Java"), jpeg);
    for (String k : List.of("decode_cpu_s", "preprocess_cpu_s", "decode_wall_s", "preprocess_wall_s", "encode_s", "write_s", "wall_s")) {
      assertNotNull(job.get("run").get("timings").get(k), k);
    }
  }

  @Test
  void killedAtRandomPointsThenResumedEqualsAnUninterruptedRun() throws Exception {
    // A smaller slice of the corpus keeps each child JVM short.
    Path list = tmp.resolve("list.txt");
    List<String> lines = new ArrayList<>();
    List<String> all = new ArrayList<>(GOOD_FILES.subList(0, 300));
    all.addAll(BAD.keySet());
    all.sort(null);
    for (String s : all) lines.add(corpus.resolve(s).toString());
    Files.write(list, lines);

    Path reference = tmp.resolve("ref");
    EmbedJob.run(options(list.toString(), reference, 8, 40), new TestEncoder(R, 0));

    Path resumed = tmp.resolve("resumed");
    SplittableRandom rnd = new SplittableRandom(System.nanoTime());
    int kills = 0;
    // The child sleeps 60 ms per batch of 8, so a whole run takes over 3 s after JVM start-up and
    // each attempt below, killed within 1.5 s, gets through at most a few of the 9 shards.
    for (int attempt = 0; attempt < 4; attempt++) {
      Process p = child(list, resumed);
      long waitMs = 300 + rnd.nextInt(1200);
      if (p.waitFor(waitMs, TimeUnit.MILLISECONDS)) break; // finished before the kill
      p.destroyForcibly();
      p.waitFor();
      kills++;
    }
    Process p = child(list, resumed);
    String log = new String(p.getInputStream().readAllBytes());
    assertTrue(p.waitFor(120, TimeUnit.SECONDS));
    assertEquals(0, p.exitValue(), log);
    assertTrue(kills > 0, "at least one kill landed");
    assertSameTree(reference, resumed);
  }

  private Process child(Path list, Path out) throws IOException {
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    return new ProcessBuilder(
            java, "-cp", System.getProperty("java.class.path"), EmbedJobChildMain.class.getName(),
            list.toString(), out.toString(), "8", "40", "60")
        .redirectErrorStream(true)
        .start();
  }

  /** Every file byte for byte, except job.json's "run" section (worker count, timings, resumed shards). */
  static void assertSameTree(Path a, Path b) throws IOException {
    Map<String, byte[]> fa = files(a);
    Map<String, byte[]> fb = files(b);
    assertEquals(fa.keySet(), fb.keySet(), "same files");
    ObjectMapper m = new ObjectMapper();
    for (String k : fa.keySet()) {
      if (k.equals("job.json")) {
        ObjectNode ja = (ObjectNode) m.readTree(fa.get(k));
        ObjectNode jb = (ObjectNode) m.readTree(fb.get(k));
        ja.remove("run");
        jb.remove("run");
        assertEquals(ja, jb, "job.json");
      } else {
        assertArrayEquals(fa.get(k), fb.get(k), k);
      }
    }
  }

  private static Map<String, byte[]> files(Path root) throws IOException {
    Map<String, byte[]> m = new LinkedHashMap<>();
    try (Stream<Path> s = Files.walk(root)) {
      for (Path f : s.filter(Files::isRegularFile).sorted().toList()) m.put(root.relativize(f).toString(), Files.readAllBytes(f));
    }
    return m;
  }

  /** A list file {@code name} in the test's folder naming the first {@code n} good corpus images. */
  private Path goodList(String name, int n) throws IOException {
    Path list = tmp.resolve(name);
    Files.write(list, GOOD_FILES.subList(0, n).stream().map(s -> corpus.resolve(s).toString()).toList());
    return list;
  }

  @Test
  void reRunOfAFinishedJobChangesNothingAndOtherOptionsAreRefused() throws Exception {
    Path list = goodList("l.txt", 50);
    Path a = tmp.resolve("a");
    EmbedJob.run(options(list.toString(), a, 8, 20), new TestEncoder(R, 0));
    Path copy = tmp.resolve("copy");
    for (Map.Entry<String, byte[]> e : files(a).entrySet()) {
      Files.createDirectories(copy.resolve(e.getKey()).getParent());
      Files.write(copy.resolve(e.getKey()), e.getValue());
    }
    EmbedJob.Result r = EmbedJob.run(options(list.toString(), a, 8, 20), new TestEncoder(R, 0));
    assertEquals(3, r.shardsSkipped());
    assertSameTree(copy, a);
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> EmbedJob.run(options(list.toString(), a, 8, 30), new TestEncoder(R, 0)));
    assertTrue(e.getMessage().contains("other options"), e.getMessage());
  }

  /**
   * An output folder that is not empty and holds no embed job is refused before anything in it is
   * touched (a foreign clip-retrieval output was taken for finished shards, and other files were
   * deleted); a folder left with only the empty job folders of a run stopped before its
   * parameters is accepted; a file is refused.
   */
  @Test
  void aFolderThatHoldsNoJobIsRefusedAndLeftAsItWas() throws Exception {
    Path list = goodList("l.txt", 10);
    Path foreign = tmp.resolve("foreign");
    Files.createDirectories(foreign.resolve("metadata"));
    Files.createDirectories(foreign.resolve("img_emb"));
    Files.writeString(foreign.resolve("metadata/metadata_0.parquet"), "not ours");
    Files.writeString(foreign.resolve("img_emb/img_emb_5.npy"), "not ours either");
    Files.writeString(foreign.resolve("job.json"), "{}");
    Map<String, byte[]> before = files(foreign);
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> EmbedJob.run(options(list.toString(), foreign, 8, 4), new TestEncoder(R, 0)));
    assertTrue(e.getMessage().contains("holds no jclip embed job"), e.getMessage());
    assertEquals(before.keySet(), files(foreign).keySet());
    for (String k : before.keySet()) assertArrayEquals(before.get(k), files(foreign).get(k), k);

    Path skeleton = tmp.resolve("skeleton");
    for (String d : List.of("img_emb", "metadata", ".jclip")) Files.createDirectories(skeleton.resolve(d));
    Files.createFile(skeleton.resolve(".jclip/lock")); // a run stopped after taking its lock, before its parameters
    assertEquals(10, EmbedJob.run(options(list.toString(), skeleton, 8, 4), new TestEncoder(R, 0)).embedded());

    Path volume = tmp.resolve("volume"); // a fresh volume's root, with a desktop's hidden file
    Files.createDirectories(volume.resolve("lost+found"));
    Files.writeString(volume.resolve(".DS_Store"), "x");
    assertEquals(10, EmbedJob.run(options(list.toString(), volume, 8, 4), new TestEncoder(R, 0)).embedded());
    assertEquals("x", Files.readString(volume.resolve(".DS_Store")));

    Path file = tmp.resolve("a-file");
    Files.writeString(file, "x");
    e = assertThrows(IllegalArgumentException.class, () -> EmbedJob.run(options(list.toString(), file, 8, 4), new TestEncoder(R, 0)));
    assertTrue(e.getMessage().contains("is a file"), e.getMessage());
  }

  /**
   * The input is recorded as an absolute real path: the same list named another way resumes the
   * job, another list of the same name is refused with the field named; an input that changed
   * since its shards were committed (grown inside a committed shard, shifted, shrunk) stops the job
   * with the shard named, and the same input resumes again.
   */
  @Test
  void resumingComparesTheInputsRealPathAndSaysWhenItChanged() throws Exception {
    Path dir = tmp.resolve("lists");
    Files.createDirectories(dir.resolve("other"));
    Path list = dir.resolve("l.txt");
    List<String> paths = GOOD_FILES.subList(0, 12).stream().map(s -> corpus.resolve(s).toString()).toList();
    Files.write(list, paths.subList(0, 10));
    Path out = tmp.resolve("out");
    EmbedJob.run(options(list.toString(), out, 8, 4), new TestEncoder(R, 0));
    String recorded = new ObjectMapper().readTree(out.resolve(".jclip/params.json").toFile()).get("input").asText();
    assertEquals(list.toRealPath().toString(), recorded);
    // the same file by another name: resumed, every shard skipped
    EmbedJob.Result again = EmbedJob.run(options(dir.resolve("other/../l.txt").toString(), out, 8, 4), new TestEncoder(R, 0));
    assertEquals(3, again.shardsSkipped());
    // another file of the same name: refused, naming the input
    Path other = dir.resolve("other/l.txt");
    Files.write(other, paths.subList(0, 10));
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> EmbedJob.run(options(other.toString(), out, 8, 4), new TestEncoder(R, 0)));
    assertTrue(e.getMessage().contains("input: \"" + recorded + "\" then, \"" + other.toRealPath() + "\" now"), e.getMessage());
    assertFalse(e.getMessage().contains("shard_size"), e.getMessage());
    // the list grew into shard 1: shard 1 was committed with 4 inputs, and has others now: stopped, nothing written again
    List<String> inserted = new ArrayList<>(paths.subList(0, 10));
    inserted.add(5, paths.get(11));
    Files.write(list, inserted);
    java.io.IOException grew = assertThrows(java.io.IOException.class, () -> EmbedJob.run(options(list.toString(), out, 8, 4), new TestEncoder(R, 0)));
    assertTrue(grew.getMessage().contains("the input is not what it was") && grew.getMessage().contains("shard 1 was committed with 4 inputs, not these")
        && grew.getMessage().contains("embed into a new output folder"), grew.getMessage());
    assertTrue(Files.exists(out.resolve("job.json")) && Files.exists(out.resolve("errors.jsonl")), "a refused resume keeps the finished job's summary");
    // as many inputs as before, but one added in front and the last removed: every shard's inputs moved
    List<String> shifted = new ArrayList<>(paths.subList(0, 9));
    shifted.add(0, paths.get(11));
    Files.write(list, shifted);
    java.io.IOException moved = assertThrows(java.io.IOException.class, () -> EmbedJob.run(options(list.toString(), out, 8, 4), new TestEncoder(R, 0)));
    assertTrue(moved.getMessage().contains("shard 0 was committed with 4 inputs, not these"), moved.getMessage());
    // the list shrank before shard 2: the shard no input reaches is named
    Files.write(list, paths.subList(0, 8));
    java.io.IOException shrank = assertThrows(java.io.IOException.class, () -> EmbedJob.run(options(list.toString(), out, 8, 4), new TestEncoder(R, 0)));
    assertTrue(shrank.getMessage().contains("shard 2 was committed with 2 inputs, and the input now ends before it"), shrank.getMessage());
    // as it was: resumed, every shard skipped
    Files.write(list, paths.subList(0, 10));
    assertEquals(3, EmbedJob.run(options(list.toString(), out, 8, 4), new TestEncoder(R, 0)).shardsSkipped());
  }

  /**
   * A model file named another way (through a link, or another spelling of its path) resumes the
   * job, as does the same checkpoint (one SHA-256) under another name; another model is refused.
   * job.json records the input's real path, as params.json does.
   */
  @Test
  void resumingTakesTheSameModelNamedAnotherWay() throws Exception {
    Path list = tmp.resolve("m.txt");
    Files.write(list, GOOD_FILES.subList(0, 5).stream().map(s -> corpus.resolve(s).toString()).toList());
    Path model = Files.writeString(tmp.resolve("model.pt"), "weights");
    Path link = Files.createSymbolicLink(tmp.resolve("link.pt"), model);
    Path out = tmp.resolve("out-m");
    EmbedJob.run(options(list.toString(), out, 8, 4).model(model.toString(), "aa"), new TestEncoder(R, 0));
    assertEquals(list.toRealPath().toString(), new ObjectMapper().readTree(out.resolve("job.json").toFile()).get("input").asText());
    assertEquals(2, EmbedJob.run(options(list.toString(), out, 8, 4).model(link.toString(), "aa"), new TestEncoder(R, 0)).shardsSkipped());
    EmbedJob.precheck(options(list.toString(), out, 8, 4).model(tmp.resolve("x/../model.pt").toString(), null));
    EmbedJob.precheck(options(list.toString(), out, 8, 4).model("RN50", null)); // a registered name: the job compares the hashes
    assertEquals(2, EmbedJob.run(options(list.toString(), out, 8, 4).model("RN50", "aa"), new TestEncoder(R, 0)).shardsSkipped());
    Path other = Files.writeString(tmp.resolve("other.pt"), "other weights");
    IllegalArgumentException pre = assertThrows(IllegalArgumentException.class, () -> EmbedJob.precheck(options(list.toString(), out, 8, 4).model(other.toString(), null)));
    assertTrue(pre.getMessage().contains("model: "), pre.getMessage());
    // a copy of the checkpoint (the recorded hash) under another path passes the precheck
    Path copy = Files.writeString(tmp.resolve("copy.pt"), "weights");
    String sha = dev.jclip.io.Downloader.sha256(model);
    Path out2 = tmp.resolve("out-m2");
    EmbedJob.run(options(list.toString(), out2, 8, 4).model(model.toString(), sha), new TestEncoder(R, 0));
    EmbedJob.precheck(options(list.toString(), out2, 8, 4).model(copy.toString(), null));
    assertEquals(2, EmbedJob.run(options(list.toString(), out2, 8, 4).model(copy.toString(), sha), new TestEncoder(R, 0)).shardsSkipped());
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> EmbedJob.run(options(list.toString(), out, 8, 4).model(other.toString(), "bb"), new TestEncoder(R, 0)));
    assertTrue(e.getMessage().contains("model: "), e.getMessage());
  }

  /** A batch whose pixel buffers cannot fit the heap (or one array) is refused by name, before anything is created. */
  @Test
  void aBatchTooLargeForTheHeapIsRefusedBeforeAnythingIsCreated() throws Exception {
    Path list = tmp.resolve("big.txt");
    Files.write(list, GOOD_FILES.subList(0, 2).stream().map(s -> corpus.resolve(s).toString()).toList());
    int huge = (int) Math.min(Integer.MAX_VALUE, Runtime.getRuntime().maxMemory() / (3L * 224 * 224 * 4) + 1); // over the heap at 224 px
    Path out = tmp.resolve("o-big");
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> EmbedJob.precheck(options(list.toString(), out, huge, huge)));
    assertTrue(e.getMessage().startsWith("--batch-size " + huge + ": ") && e.getMessage().contains("give at most"), e.getMessage());
    assertFalse(Files.exists(out));
    assertEquals(null, BatchBuffers.tooLarge(256, 224, 3));
    assertTrue(BatchBuffers.tooLarge(Integer.MAX_VALUE, 224, 3).contains("more than a Java array holds"));
    // the job itself: a 2-input list caps the batch at 2, which fits
    assertEquals(2, EmbedJob.run(options(list.toString(), out, huge, huge), new TestEncoder(R, 0)).embedded());
  }

  /** A job that recorded the checkpoint's own activation by name (as jclip before session 28 did) resumes without the option. */
  @Test
  void anActivationRecordedThatIsTheCheckpointsOwnResumesWithoutTheOption() throws Exception {
    Path list = tmp.resolve("act.txt");
    Files.write(list, GOOD_FILES.subList(0, 3).stream().map(s -> corpus.resolve(s).toString()).toList());
    Path out = tmp.resolve("o-act");
    EmbedJob.run(options(list.toString(), out, 8, 4).activation("quick_gelu"), new TestEncoder(R, 0));
    assertEquals(1, EmbedJob.run(options(list.toString(), out, 8, 4).checkpointActivation("quick_gelu"), new TestEncoder(R, 0)).shardsSkipped());
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> EmbedJob.run(options(list.toString(), out, 8, 4).checkpointActivation("gelu"), new TestEncoder(R, 0)));
    assertTrue(e.getMessage().contains("activation: \"quick_gelu\" then, not set now"), e.getMessage());
  }

  /** The column options on a list (not a table) are said not to be used. */
  @Test
  void columnOptionsOnAListAreSaidUnused() throws Exception {
    Path list = tmp.resolve("cols.txt");
    Files.write(list, GOOD_FILES.subList(0, 2).stream().map(s -> corpus.resolve(s).toString()).toList());
    java.io.ByteArrayOutputStream log = new java.io.ByteArrayOutputStream();
    EmbedJob.run(options(list.toString(), tmp.resolve("o-cols"), 8, 4).imageColumn("url").log(new PrintStream(log, true, java.nio.charset.StandardCharsets.UTF_8)),
        new TestEncoder(R, 0));
    String said = log.toString(java.nio.charset.StandardCharsets.UTF_8);
    assertTrue(said.contains("--image-column and --caption-column name a table's columns") && said.contains("is not a table"), said);
  }

  /**
   * Before the model loads: standard input and pipes are refused as inputs, and an output folder
   * that cannot be made is named (under a file; on /proc, which says writable to root).
   */
  @Test
  void precheckRefusesPipesAndAnOutputItCannotMake() throws Exception {
    Path list = tmp.resolve("p.txt");
    Files.write(list, GOOD_FILES.subList(0, 2).stream().map(s -> corpus.resolve(s).toString()).toList());
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> EmbedJob.precheck(options("-", tmp.resolve("o1"), 8, 4)));
    assertTrue(e.getMessage().contains("not from standard input"), e.getMessage());
    Path fifo = tmp.resolve("fifo.txt");
    if (new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor() == 0) {
      e = assertThrows(IllegalArgumentException.class, () -> EmbedJob.precheck(options(fifo.toString(), tmp.resolve("o2"), 8, 4)));
      assertTrue(e.getMessage().contains("not a regular file or folder"), e.getMessage());
    }
    Path out = list.resolve("out"); // under a file
    java.nio.file.FileSystemException fe = assertThrows(java.nio.file.FileSystemException.class, () -> EmbedJob.precheck(options(list.toString(), out, 8, 4)));
    assertTrue(fe.getMessage().contains(out.toString()) && fe.getMessage().contains("cannot create the output folder"), fe.getMessage());
    EmbedJob.precheck(options(list.toString(), tmp.resolve("o3/deeper"), 8, 4));
    assertTrue(!Files.exists(tmp.resolve("o3")), "the precheck creates nothing");
    if (Files.isDirectory(Path.of("/proc/self"))) { // the kernel's file system: writable to root, but no place for files
      fe = assertThrows(java.nio.file.FileSystemException.class, () -> EmbedJob.precheck(options(list.toString(), Path.of("/proc/jclip-out"), 8, 4)));
      assertTrue(fe.getMessage().contains("/proc/jclip-out") && (fe.getMessage().contains("kernel's proc file system")
          || fe.getMessage().contains("read-only file system, or permission denied")), fe.getMessage());
    }
    // the job itself refuses standard input too
    e = assertThrows(IllegalArgumentException.class, () -> EmbedJob.run(options("-", tmp.resolve("o4"), 8, 4), new TestEncoder(R, 0)));
    assertTrue(e.getMessage().contains("not from standard input"), e.getMessage());
  }

  /** A params.json from before session 25 recorded the input as given: a relative one is read against the current folder. */
  @Test
  void aJobThatRecordedARelativeInputStillResumes() throws Exception {
    Path cwd = Path.of("").toAbsolutePath();
    Path list = cwd.resolve("target").resolve("embedjob-relative-" + ProcessHandle.current().pid() + ".txt");
    try {
      Files.write(list, GOOD_FILES.subList(0, 6).stream().map(s -> corpus.resolve(s).toString()).toList());
      Path out = tmp.resolve("old");
      EmbedJob.run(options(list.toString(), out, 8, 4), new TestEncoder(R, 0));
      Path params = out.resolve(".jclip/params.json");
      ObjectNode p = (ObjectNode) new ObjectMapper().readTree(params.toFile());
      p.put("input", cwd.relativize(list).toString());
      Files.write(params, new ObjectMapper().writerWithDefaultPrettyPrinter().writeValueAsBytes(p));
      assertEquals(2, EmbedJob.run(options(list.toString(), out, 8, 4), new TestEncoder(R, 0)).shardsSkipped());
    } finally {
      Files.deleteIfExists(list);
    }
  }

  @Test
  void captionsFromATableGiveTextEmbeddingsAndCarriedColumns() throws Exception {
    Path csv = tmp.resolve("t.csv");
    StringBuilder s = new StringBuilder("filepath,caption,license\n");
    for (int i = 0; i < 30; i++) s.append(corpus.resolve(GOOD_FILES.get(i))).append(",\"a, \"\"quoted\"\" cat ").append(i).append("\",cc-by\n");
    s.append("missing.jpg,no file,x\n");
    s.append("too,many,fields,here\n");
    Files.writeString(csv, s);
    Path out = tmp.resolve("o");
    EmbedJob.Result r = EmbedJob.run(options(csv.toString(), out, 8, 1000).dtype(EmbedJob.Dtype.FLOAT32), new TestEncoder(R, 0));
    assertEquals(32, r.items());
    assertEquals(30, r.embedded());
    ParquetReference.Table meta = ParquetReference.read(out.resolve("metadata/metadata_0.parquet"));
    assertEquals(List.of("image_path", "caption", "width", "height", "license"), meta.columnNames());
    assertEquals("a, \"quoted\" cat 7", meta.rows().get(7).get(1));
    assertEquals("cc-by", meta.rows().get(7).get(4));
    float[][] text = readNpy(out.resolve("text_emb/text_emb_0.npy"));
    assertEquals(30, text.length);
    float[] want = new float[TestEncoder.E];
    new TestEncoder(R, 0).encodeTexts(List.of("a, \"quoted\" cat 7"), want);
    EmbedJob.normalize(want, TestEncoder.E);
    assertArrayEquals(want, text[7]);
    List<String> errs = Files.readAllLines(out.resolve("errors.jsonl"));
    assertEquals(2, errs.size());
    assertTrue(errs.get(0).contains("no such file"), errs.get(0));
    assertTrue(errs.get(1).contains("4 fields, the header has 3"), errs.get(1));
    assertFalse(Files.exists(out.resolve("img_emb/img_emb_1.npy")));
  }

  @Test
  void aParquetTableGivesTheSameJobAsTheEquivalentCsv() throws Exception {
    // Beside the corpus folder, so that relative paths ("corpus/...") resolve against the table's folder.
    Path csv = corpusDir.resolve("pq-job.csv");
    Path pq = corpusDir.resolve("pq-job.parquet");
    StringBuilder s = new StringBuilder("filepath,caption,license,score\n");
    for (int i = 0; i < 40; i++) {
      String path =
          switch (i) {
            case 7 -> "corpus/missing.jpg";
            case 11 -> "https://example.com/x.jpg";
            case 13 -> "";
            default -> i % 2 == 0 ? "corpus/" + GOOD_FILES.get(i) : corpus.resolve(GOOD_FILES.get(i)).toString();
          };
      s.append(path).append(",\"猫 \"\"").append(i).append("\"\", a cat\",cc-by,").append(i * 0.25).append('\n');
    }
    Files.writeString(csv, s);
    try (java.sql.Connection db = java.sql.DriverManager.getConnection("jdbc:duckdb:");
        java.sql.Statement st = db.createStatement()) {
      st.execute(
          "COPY (SELECT *, [1, 2] AS tags FROM read_csv('" + csv + "', header = true)) TO '" + pq + "' (FORMAT PARQUET, COMPRESSION 'snappy', ROW_GROUP_SIZE 16)");
    }
    Path a = tmp.resolve("from-csv");
    Path b = tmp.resolve("from-parquet");
    EmbedJob.Result ra = EmbedJob.run(options(csv.toString(), a, 8, 16), new TestEncoder(R, 0));
    EmbedJob.Result rb = EmbedJob.run(options(pq.toString(), b, 8, 16), new TestEncoder(R, 0));
    assertEquals(40, rb.items());
    assertEquals(37, rb.embedded());
    assertEquals(ra.embedded(), rb.embedded());
    Map<String, byte[]> fa = files(a);
    Map<String, byte[]> fb = files(b);
    assertEquals(fa.keySet(), fb.keySet());
    for (String k : fa.keySet()) {
      // job.json and the resume parameters name the input; error records name the row without a path differently.
      if (k.equals("job.json") || k.endsWith("params.json") || k.contains("errors")) continue;
      if (k.startsWith(".jclip/shard_")) { // so do the digests of the inputs' ids and rows: the rest is the same
        com.fasterxml.jackson.databind.node.ObjectNode ja = (com.fasterxml.jackson.databind.node.ObjectNode) new ObjectMapper().readTree(fa.get(k));
        com.fasterxml.jackson.databind.node.ObjectNode jb = (com.fasterxml.jackson.databind.node.ObjectNode) new ObjectMapper().readTree(fb.get(k));
        assertTrue(ja.remove("inputs_sha256") != null && jb.remove("inputs_sha256") != null, k);
        assertTrue(ja.remove("rows_sha256") != null && jb.remove("rows_sha256") != null, k);
        assertEquals(ja, jb, k);
        continue;
      }
      assertArrayEquals(fa.get(k), fb.get(k), k);
    }
    ParquetReference.Table meta = ParquetReference.read(b.resolve("metadata/metadata_0.parquet"));
    assertEquals(List.of("image_path", "caption", "width", "height", "license", "score"), meta.columnNames());
    assertEquals("猫 \"3\", a cat", meta.rows().get(3).get(1));
    assertEquals("0.75", meta.rows().get(3).get(5));
    // The same failures at the same indices; only the name of the row without a path differs.
    ObjectMapper m = new ObjectMapper();
    List<String> ea = Files.readAllLines(a.resolve("errors.jsonl"));
    List<String> eb = Files.readAllLines(b.resolve("errors.jsonl"));
    assertEquals(3, eb.size());
    for (int i = 0; i < 3; i++) {
      JsonNode x = m.readTree(ea.get(i));
      JsonNode y = m.readTree(eb.get(i));
      assertEquals(x.get("index"), y.get("index"));
      assertEquals(x.get("error"), y.get("error"));
    }
    assertEquals("pq-job.parquet:row 13", m.readTree(eb.get(2)).get("image_path").asText());
  }

  @Test
  void webdatasetTarJobUsesKeysCaptionsAndCarriesJsonFields() throws Exception {
    Path t = tmp.resolve("shard-000.tar");
    try (var os = Files.newOutputStream(t);
        var tar = new org.apache.commons.compress.archivers.tar.TarArchiveOutputStream(os)) {
      for (int i = 0; i < 12; i++) {
        String key = String.format("%09d", i);
        byte[] img = i == 5 ? new byte[] {1, 2, 3} : Files.readAllBytes(corpus.resolve(GOOD_FILES.get(i)));
        String ext = GOOD_FILES.get(i).substring(GOOD_FILES.get(i).lastIndexOf('.') + 1);
        Object[][] members = {
          {key + "." + ext, img},
          {key + ".txt", ("caption " + i).getBytes()},
          {key + ".json", ("{\"key\": \"" + key + "\", \"url\": \"http://h/" + i + "\", \"status\": \"success\"}").getBytes()}
        };
        for (Object[] m : members) {
          var e = new org.apache.commons.compress.archivers.tar.TarArchiveEntry((String) m[0]);
          e.setSize(((byte[]) m[1]).length);
          tar.putArchiveEntry(e);
          tar.write((byte[]) m[1]);
          tar.closeArchiveEntry();
        }
      }
    }
    Path out = tmp.resolve("wds");
    EmbedJob.Result r = EmbedJob.run(options(t.toString(), out, 4, 100), new TestEncoder(R, 0));
    assertEquals(11, r.embedded());
    ParquetReference.Table meta = ParquetReference.read(out.resolve("metadata/metadata_0.parquet"));
    assertEquals(List.of("key", "caption", "width", "height", "url", "status"), meta.columnNames());
    assertEquals("000000006", meta.rows().get(5).get(0));
    assertEquals("caption 6", meta.rows().get(5).get(1));
    assertEquals("http://h/6", meta.rows().get(5).get(4));
    assertEquals(11, readNpy(out.resolve("text_emb/text_emb_0.npy")).length);
    List<String> errs = Files.readAllLines(out.resolve("errors.jsonl"));
    assertEquals(1, errs.size());
    assertTrue(errs.get(0).contains("\"key\":\"000000005\""), errs.get(0));
  }

  @Test
  void aFailingModelStopsTheJobWithItsErrorAndTheRerunCompletesIt() throws Exception {
    Path list = goodList("f.txt", 100);
    Path reference = tmp.resolve("fref");
    EmbedJob.run(options(list.toString(), reference, 8, 16), new TestEncoder(R, 0));
    Path out = tmp.resolve("fout");
    BatchEncoder failing = failingAt(7, "device lost");
    IllegalStateException e =
        assertThrows(IllegalStateException.class, () -> EmbedJob.run(options(list.toString(), out, 8, 16), failing));
    assertEquals("device lost", e.getMessage());
    // Batches 1-6 hold 48 inputs, shards 0-2 (16 each): those may have been committed before the
    // failure stopped the writer, nothing after them.
    long committed;
    try (Stream<Path> m = Files.list(out.resolve("metadata"))) {
      committed = m.filter(f -> f.getFileName().toString().startsWith("metadata_")).count();
    }
    assertTrue(committed <= 3, committed + " shards committed");
    assertFalse(Files.exists(out.resolve("metadata/metadata_3.parquet")));
    assertFalse(Files.exists(out.resolve("job.json")));
    EmbedJob.Result r = EmbedJob.run(options(list.toString(), out, 8, 16), new TestEncoder(R, 0));
    assertEquals(committed, r.shardsSkipped());
    assertSameTree(reference, out);
  }

  /** The test model, except that its {@code call}-th image batch throws {@code message}. */
  static BatchEncoder failingAt(int call, String message) {
    return new TestEncoder.Wrapping(R) {
      int calls;

      @Override
      public void encodeImages(float[] pixels, int count, float[] o) {
        if (++calls == call) throw new IllegalStateException(message);
        inner.encodeImages(pixels, count, o);
      }

      @Override
      public void encodeTexts(List<String> texts, float[] o) {}
    };
  }

  /** The absolute paths of the good corpus images {@code from} (inclusive) to {@code to} (exclusive). */
  private static List<String> goodPaths(int from, int to) {
    return GOOD_FILES.subList(from, to).stream().map(s -> corpus.resolve(s).toString()).toList();
  }

  /**
   * An input that grew after the job ended in a short last shard: the new inputs join that shard,
   * which is computed again, and the output is byte for byte a new job's on the grown input, for a
   * list (size known), a CSV (size unknown) and through a new shard; a grown archive, whose bytes
   * are not held, and an input whose last shard changed as it grew, stop the job as before.
   */
  @Test
  void anInputGrownPastItsShortLastShardJoinsIt() throws Exception {
    List<String> paths = goodPaths(0, 14);
    Path list = tmp.resolve("grow.txt");
    Files.write(list, paths.subList(0, 10)); // shards of 4: 4, 4, 2
    Path out = tmp.resolve("grow-out");
    EmbedJob.run(options(list.toString(), out, 3, 4), new TestEncoder(R, 0));
    byte[] shard0 = Files.readAllBytes(out.resolve("img_emb/img_emb_0.npy"));
    for (int n : new int[] {12, 14}) { // shard 2 filled; then shard 2 stays, shard 3 is new (2 inputs)
      Files.write(list, paths.subList(0, n));
      java.io.ByteArrayOutputStream log = new java.io.ByteArrayOutputStream();
      EmbedJob.Result r = EmbedJob.run(options(list.toString(), out, 3, 4).log(new PrintStream(log, true)), new TestEncoder(R, 0));
      assertEquals(n, r.items());
      assertEquals(n == 12 ? 2 : 3, r.shardsSkipped(), log.toString());
      assertEquals(n == 12, log.toString().contains("shard 2: computed again: the input ended in it (2 inputs) and has grown since"), log.toString());
      Path fresh = tmp.resolve("grow-fresh-" + n);
      EmbedJob.run(options(list.toString(), fresh, 3, 4), new TestEncoder(R, 0));
      assertSameTree(fresh, out);
    }
    assertArrayEquals(shard0, Files.readAllBytes(out.resolve("img_emb/img_emb_0.npy")), "a full shard is not written again");
    // a finished job run again writes nothing, its summary (the timings of the run that made it) included
    Map<String, byte[]> done = files(out);
    assertEquals(4, EmbedJob.run(options(list.toString(), out, 3, 4), new TestEncoder(R, 0)).shardsSkipped());
    assertSameFiles(done, files(out));

    // a CSV, whose size is not known in advance
    Path csv = tmp.resolve("grow.csv");
    Files.write(csv, java.util.stream.Stream.concat(java.util.stream.Stream.of("filepath"), paths.subList(0, 5).stream()).toList());
    Path outCsv = tmp.resolve("grow-csv");
    EmbedJob.run(options(csv.toString(), outCsv, 3, 4), new TestEncoder(R, 0));
    Files.write(csv, java.util.stream.Stream.concat(java.util.stream.Stream.of("filepath"), paths.subList(0, 7).stream()).toList());
    assertEquals(1, EmbedJob.run(options(csv.toString(), outCsv, 3, 4), new TestEncoder(R, 0)).shardsSkipped());
    Path freshCsv = tmp.resolve("grow-csv-fresh");
    EmbedJob.run(options(csv.toString(), freshCsv, 3, 4), new TestEncoder(R, 0));
    assertSameTree(freshCsv, outCsv);

    // the last shard's inputs changed as the input grew: stopped, the shard named, nothing rewritten
    Path out2 = tmp.resolve("grow-changed");
    Files.write(list, paths.subList(0, 10));
    EmbedJob.run(options(list.toString(), out2, 3, 4), new TestEncoder(R, 0));
    Map<String, byte[]> before = files(out2);
    List<String> changed = new ArrayList<>(paths.subList(0, 12));
    changed.set(9, paths.get(13));
    Files.write(list, changed);
    java.io.IOException e = assertThrows(java.io.IOException.class, () -> EmbedJob.run(options(list.toString(), out2, 3, 4), new TestEncoder(R, 0)));
    assertTrue(e.getMessage().contains("shard 2 was committed with 2 inputs, and 4 are at its places now"), e.getMessage());
    assertSameFiles(before, files(out2));

    // a grown archive: its members' bytes are not held while the shard is skipped, so the job stops
    Path tar = tmp.resolve("grow.tar");
    writeTar(tar, 3);
    Path outTar = tmp.resolve("grow-tar");
    EmbedJob.run(options(tar.toString(), outTar, 3, 2), new TestEncoder(R, 0));
    writeTar(tar, 4);
    e = assertThrows(java.io.IOException.class, () -> EmbedJob.run(options(tar.toString(), outTar, 3, 2), new TestEncoder(R, 0)));
    assertTrue(e.getMessage().contains("shard 1 was committed with 1 input, and 2 are at its places now")
        && e.getMessage().contains("a webdataset archive's inputs are not held to join a short last shard"), e.getMessage());

    // a caption edited in a committed shard (the ids the same) stops the job: its text embeddings would be stale
    Path captioned = tmp.resolve("cap.csv");
    List<String> rows = new ArrayList<>(List.of("filepath,caption"));
    for (int i = 0; i < 6; i++) rows.add(paths.get(i) + ",caption " + i);
    Files.write(captioned, rows);
    Path outCap = tmp.resolve("grow-cap");
    EmbedJob.run(options(captioned.toString(), outCap, 3, 4), new TestEncoder(R, 0));
    rows.set(2, paths.get(1) + ",another caption");
    rows.add(paths.get(6) + ",caption 6");
    Files.write(captioned, rows);
    Map<String, byte[]> capBefore = files(outCap);
    e = assertThrows(java.io.IOException.class, () -> EmbedJob.run(options(captioned.toString(), outCap, 3, 4), new TestEncoder(R, 0)));
    assertTrue(e.getMessage().contains("shard 0 was committed with 4 inputs, not these") && e.getMessage().contains("edited"), e.getMessage());
    assertSameFiles(capBefore, files(outCap));
  }

  /** A webdataset archive of the first {@code n} good corpus images, keyed 000000000, 000000001, ... */
  private static void writeTar(Path t, int n) throws IOException {
    try (var os = Files.newOutputStream(t);
        var tar = new org.apache.commons.compress.archivers.tar.TarArchiveOutputStream(os)) {
      for (int i = 0; i < n; i++) {
        byte[] img = Files.readAllBytes(corpus.resolve(GOOD_FILES.get(i)));
        var entry = new org.apache.commons.compress.archivers.tar.TarArchiveEntry(String.format("%09d", i) + GOOD_FILES.get(i).substring(GOOD_FILES.get(i).lastIndexOf('.')));
        entry.setSize(img.length);
        tar.putArchiveEntry(entry);
        tar.write(img);
        tar.closeArchiveEntry();
      }
    }
  }

  private static void assertSameFiles(Map<String, byte[]> before, Map<String, byte[]> after) {
    assertEquals(before.keySet(), after.keySet());
    for (String k : before.keySet()) assertArrayEquals(before.get(k), after.get(k), k);
  }

  /**
   * Inputs missing at the first run (a mount not yet there) are skipped and stay skipped on a plain
   * resume; with {@code retrySkipped} the shards that skipped them are computed again and the
   * output is a new job's byte for byte. A model failing inside a shard being computed again, or
   * the shard's inputs having changed, leaves the committed shard as it was.
   */
  @Test
  void retrySkippedComputesAgainTheShardsThatSkippedInputs() throws Exception {
    Path dir = tmp.resolve("late");
    Files.createDirectories(dir);
    List<String> names = new ArrayList<>();
    for (int i = 0; i < 10; i++) names.add(dir.resolve("img" + i + GOOD_FILES.get(i).substring(GOOD_FILES.get(i).lastIndexOf('.'))).toString());
    for (int i = 0; i < 10; i++) if (i != 1 && i != 2 && i != 9) Files.copy(corpus.resolve(GOOD_FILES.get(i)), Path.of(names.get(i)));
    Path list = tmp.resolve("late.txt");
    Files.write(list, names);
    Path out = tmp.resolve("late-out");
    EmbedJob.Result first = EmbedJob.run(options(list.toString(), out, 3, 4), new TestEncoder(R, 0));
    assertEquals(3, first.errors());
    for (int i : new int[] {1, 2, 9}) Files.copy(corpus.resolve(GOOD_FILES.get(i)), Path.of(names.get(i)));
    Map<String, byte[]> before = files(out);
    EmbedJob.Result plain = EmbedJob.run(options(list.toString(), out, 3, 4), new TestEncoder(R, 0));
    assertEquals(3, plain.errors(), "a plain resume keeps what was skipped");
    assertEquals(3, plain.shardsSkipped());

    // the model fails inside shard 0 computed again: shard 0 stays as it was
    IllegalStateException failed = assertThrows(IllegalStateException.class,
        () -> EmbedJob.run(options(list.toString(), out, 3, 4).retrySkipped(true), failingAt(2, "device lost")));
    assertEquals("device lost", failed.getMessage());
    for (String k : List.of("img_emb/img_emb_0.npy", "metadata/metadata_0.parquet", ".jclip/errors_0.jsonl", ".jclip/shard_0.json")) {
      assertArrayEquals(before.get(k), Files.readAllBytes(out.resolve(k)), k);
    }

    java.io.ByteArrayOutputStream log = new java.io.ByteArrayOutputStream();
    EmbedJob.Result retried = EmbedJob.run(options(list.toString(), out, 3, 4).retrySkipped(true).log(new PrintStream(log, true)), new TestEncoder(R, 0));
    assertEquals(0, retried.errors());
    assertEquals(1, retried.shardsSkipped(), "shard 1 skipped nothing and is kept");
    assertTrue(log.toString().contains("shard 0: computed again: 2 inputs were skipped (--retry-skipped)"), log.toString());
    assertTrue(log.toString().contains("shard 2: computed again: 1 input was skipped (--retry-skipped)"), log.toString());
    Path fresh = tmp.resolve("late-fresh");
    EmbedJob.run(options(list.toString(), fresh, 3, 4), new TestEncoder(R, 0));
    assertSameTree(fresh, out);
    assertEquals(3, EmbedJob.run(options(list.toString(), out, 3, 4).retrySkipped(true), new TestEncoder(R, 0)).shardsSkipped(),
        "nothing left to retry");

    // shards to retry (0 and 2), and shard 2's inputs are others now: stopped before anything is written
    // (shard 0 is not computed again first), the summary kept
    Path out2 = tmp.resolve("late-out2");
    Path moved = tmp.resolve("moved");
    Files.move(Path.of(names.get(1)), moved);
    Files.delete(Path.of(names.get(9)));
    EmbedJob.run(options(list.toString(), out2, 3, 4), new TestEncoder(R, 0));
    Files.move(moved, Path.of(names.get(1)));
    Map<String, byte[]> kept = files(out2);
    List<String> renamed = new ArrayList<>(names);
    renamed.set(8, names.get(0));
    Files.write(list, renamed);
    java.io.IOException e = assertThrows(java.io.IOException.class,
        () -> EmbedJob.run(options(list.toString(), out2, 3, 4).retrySkipped(true), new TestEncoder(R, 0)));
    assertTrue(e.getMessage().contains("shard 2 was committed with 2 inputs, not these"), e.getMessage());
    assertSameFiles(kept, files(out2));
    assertTrue(kept.containsKey("job.json") && kept.containsKey("errors.jsonl"));
  }

  @Test
  void severalModelsGiveTheSameOutputAsOne() throws Exception {
    Path list = tmp.resolve("m.txt");
    List<String> some = new ArrayList<>(GOOD_FILES.subList(0, 200));
    some.addAll(BAD.keySet());
    some.sort(null);
    Files.write(list, some.stream().map(s -> corpus.resolve(s).toString()).toList());
    Path one = tmp.resolve("one");
    EmbedJob.run(options(list.toString(), one, 4, 50), new TestEncoder(R, 0));
    Path three = tmp.resolve("three");
    // Different speeds make the models finish batches out of order.
    EmbedJob.Result r =
        EmbedJob.run(options(list.toString(), three, 4, 50), List.of(new TestEncoder(R, 0), new TestEncoder(R, 7), new TestEncoder(R, 3)));
    assertEquals(200, r.embedded());
    assertSameTree(one, three);
  }

  /** A brace pattern of .tar shards is recorded with its folder's real path: through a linked folder it is the same input. */
  @Test
  void aShardPatternThroughALinkedFolderIsTheSameInput() throws IOException {
    Path real = Files.createDirectories(tmp.resolve("real/shards"));
    Path link = Files.createSymbolicLink(tmp.resolve("link"), tmp.resolve("real"));
    assertEquals(real.toRealPath().resolve("{000..009}.tar").toString(), EmbedJob.canonicalInput(link.resolve("shards/{000..009}.tar").toString()));
    assertEquals(EmbedJob.canonicalInput(real.resolve("{000..009}.tar").toString()), EmbedJob.canonicalInput(link.resolve("shards/{000..009}.tar").toString()));
    assertEquals("https://example.com/list.csv", EmbedJob.canonicalInput("https://example.com/list.csv"));
  }

  /** While a run holds the output folder's lock, another run into it is refused; once it is released, the folder resumes. */
  @Test
  void aSecondRunIntoAFolderInUseIsRefused() throws Exception {
    Path list = goodList("l.txt", 6);
    Path out = tmp.resolve("busy");
    EmbedJob.run(options(list.toString(), out, 8, 4), new TestEncoder(R, 0));
    try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(out.resolve(".jclip/lock"), java.nio.file.StandardOpenOption.WRITE);
        java.nio.channels.FileLock held = ch.lock()) {
      IllegalStateException e =
          assertThrows(IllegalStateException.class, () -> EmbedJob.run(options(list.toString(), out, 8, 4), new TestEncoder(R, 0)));
      assertTrue(e.getMessage().contains("another jclip embed is writing to " + out), e.getMessage());
    }
    assertEquals(2, EmbedJob.run(options(list.toString(), out, 8, 4), new TestEncoder(R, 0)).shardsSkipped());
  }
}
