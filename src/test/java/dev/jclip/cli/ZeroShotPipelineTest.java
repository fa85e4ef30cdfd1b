package dev.jclip.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code jclip zeroshot} with parallel decoding writes the same file, byte for byte, as with one
 * worker, over good and bad inputs (zero-byte, truncated, corrupt, not an image, missing, a
 * decompression bomb's header) in several batches and a partial last one; a bad input never
 * stops the run; progress and the time summary go to stderr.
 */
class ZeroShotPipelineTest {
  static final List<String> CLASSES = List.of("diagram", "dog", "cat", "flower");
  static final int GOOD = 27;

  @TempDir static Path dir;
  static Path classes, templates, input;
  /** Input rows in order: the path and whether it is a good image. */
  static final List<String> ROWS = new ArrayList<>();
  static final List<Boolean> ROW_GOOD = new ArrayList<>();

  @BeforeAll
  static void corpus() throws IOException {
    ZeroShotCommandTest.golden();
    classes = Files.writeString(dir.resolve("classes.txt"), String.join("\n", CLASSES) + "\n");
    templates = Files.writeString(dir.resolve("templates.txt"), "a photo of a {}.\na drawing of the {}\n");
    SplittableRandom rnd = new SplittableRandom(11);
    List<Path> good = new ArrayList<>();
    for (int i = 0; i < GOOD; i++) {
      // Mostly small, a few large: workers finish out of input order.
      boolean large = i % 6 == 0;
      int w = 8 + rnd.nextInt(large ? 1200 : 60), h = 8 + rnd.nextInt(large ? 900 : 60);
      BufferedImage im = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
      int base = rnd.nextInt(0xffffff);
      for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) im.setRGB(x, y, base ^ (x * 37 + y * 11));
      String ext = i % 2 == 0 ? "png" : "jpg";
      Path f = dir.resolve("good_" + i + "." + ext);
      ImageIO.write(im, ext, f.toFile());
      good.add(f);
    }
    byte[] jpeg = Files.readAllBytes(good.get(1));
    List<Path> bad = new ArrayList<>();
    for (int i = 0; i < 3; i++) {
      bad.add(Files.write(dir.resolve("zero_" + i + ".jpg"), new byte[0]));
      bad.add(Files.write(dir.resolve("trunc_" + i + ".jpg"), Arrays.copyOf(jpeg, jpeg.length / 3)));
      byte[] junk = new byte[300 + i];
      new SplittableRandom(i).nextBytes(junk);
      System.arraycopy(new byte[] {(byte) 0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A}, 0, junk, 0, 8);
      bad.add(Files.write(dir.resolve("corrupt_" + i + ".png"), junk));
      bad.add(Files.writeString(dir.resolve("notes_" + i + ".md"), "# not an image " + i));
      bad.add(dir.resolve("missing_" + i + ".png"));
    }
    bad.add(Files.write(dir.resolve("bomb.png"), pngHeader(60_000, 60_000)));
    // Bad first and last, a run of bad inputs longer than a batch, the rest spread between good ones.
    List<Path> order = new ArrayList<>();
    order.add(bad.removeFirst());
    for (int i = 0; i < 6; i++) order.add(bad.removeFirst());
    Path lastBad = bad.removeLast();
    int g = 0;
    while (g < good.size()) {
      order.add(good.get(g++));
      if (g % 3 == 0 && !bad.isEmpty()) order.add(bad.removeFirst());
    }
    order.addAll(bad);
    order.add(lastBad);
    StringBuilder csv = new StringBuilder("image_path,label\n");
    int n = 0;
    for (Path p : order) {
      boolean ok = p.getFileName().toString().startsWith("good_");
      ROWS.add(p.toString());
      ROW_GOOD.add(ok);
      csv.append(p).append(',').append(CLASSES.get(n++ % CLASSES.size())).append('\n');
    }
    input = Files.writeString(dir.resolve("input.csv"), csv);
  }

  /** A PNG signature and IHDR claiming a huge image (a decompression bomb's header), nothing else. */
  static byte[] pngHeader(int w, int h) {
    java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(8 + 25);
    b.put(new byte[] {(byte) 0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A}).putInt(13);
    b.put(new byte[] {'I', 'H', 'D', 'R'}).putInt(w).putInt(h).put(new byte[] {8, 2, 0, 0, 0});
    java.util.zip.CRC32 crc = new java.util.zip.CRC32();
    crc.update(b.array(), 12, 17);
    return b.putInt((int) crc.getValue()).array();
  }

  static CliRun.Result zeroshot(Path out, String... more) {
    return zeroshot(new ZeroShotCommand(), out, more);
  }

  static CliRun.Result zeroshot(ZeroShotCommand cmd, Path out, String... more) {
    List<String> args = new ArrayList<>(List.of("--model", ModelCommandsTest.model.toString(), "--vocab", ModelCommandsTest.vocab(), "--device",
        "cpu", "--classes", classes.toString(), "--templates", templates.toString(), "--input", input.toString(), "--output", out.toString(),
        "--top-k", "3", "--batch-size", "4", "--no-cache"));
    args.addAll(List.of(more));
    if (!args.contains("--progress")) args.addAll(List.of("--progress", "none"));
    return ModelCommandsTest.run(cmd, "", args.toArray(String[]::new));
  }

  static List<String> lines(String err, String prefix) {
    return err.lines().filter(l -> l.startsWith(prefix)).toList();
  }

  @Test
  void parallelOutputIsByteIdenticalToOneWorker(@TempDir Path tmp) throws IOException {
    for (String ext : List.of("csv", "jsonl")) {
      Path serial = tmp.resolve("serial." + ext), parallel = tmp.resolve("parallel." + ext);
      CliRun.Result a = zeroshot(serial, "--workers", "1");
      CliRun.Result b = zeroshot(parallel, "--workers", "4");
      assertEquals(0, a.code(), a.err());
      assertEquals(0, b.code(), b.err());
      assertTrue(Arrays.equals(Files.readAllBytes(serial), Files.readAllBytes(parallel)), ext + ":\n" + Files.readString(serial) + "\nvs\n"
          + Files.readString(parallel));
      // the same messages for the same inputs, in input order, and the same totals and accuracy
      assertEquals(lines(a.err(), "jclip zeroshot: skipped"), lines(b.err(), "jclip zeroshot: skipped"));
      assertEquals(lines(a.err(), "jclip zeroshot: " + GOOD + " images classified"), lines(b.err(), "jclip zeroshot: " + GOOD + " images classified"));
      assertEquals(1, lines(b.err(), "jclip zeroshot: " + GOOD + " images classified into 4 classes (2 templates), " + (ROWS.size() - GOOD)
          + " skipped").size(), b.err());
      assertEquals(lines(a.err(), "jclip zeroshot: top-1 accuracy"), lines(b.err(), "jclip zeroshot: top-1 accuracy"));
      assertEquals(1, lines(b.err(), "jclip zeroshot: top-1 accuracy").size(), b.err());
    }
  }

  @Test
  void webdatasetShardsToo(@TempDir Path tmp) throws IOException {
    // Archive members are decoded from their bytes: the same order and messages with 1 and 3 workers.
    Path shard = tmp.resolve("s-0.tar");
    int members = 0;
    try (var t = new org.apache.commons.compress.archivers.tar.TarArchiveOutputStream(Files.newOutputStream(shard))) {
      for (int i = 0; i < ROWS.size(); i++) {
        Path f = Path.of(ROWS.get(i));
        if (!Files.exists(f)) continue;
        String name = f.getFileName().toString();
        byte[] content = Files.readAllBytes(f);
        var e = new org.apache.commons.compress.archivers.tar.TarArchiveEntry(String.format("%05d", i) + name.substring(name.lastIndexOf('.')));
        e.setSize(content.length);
        t.putArchiveEntry(e);
        t.write(content);
        t.closeArchiveEntry();
        members++;
      }
    }
    Path one = tmp.resolve("one.jsonl"), three = tmp.resolve("three.jsonl");
    List<String> args = List.of("--model", ModelCommandsTest.model.toString(), "--vocab", ModelCommandsTest.vocab(), "--device", "cpu",
        "--classes", classes.toString(), "--templates", templates.toString(), "--input", shard.toString(), "--batch-size", "4", "--no-cache",
        "--progress", "none", "--output");
    CliRun.Result a = ModelCommandsTest.run(new ZeroShotCommand(), "", concat(args, one.toString(), "--workers", "1"));
    CliRun.Result b = ModelCommandsTest.run(new ZeroShotCommand(), "", concat(args, three.toString(), "--workers", "3"));
    assertEquals(0, a.code(), a.err());
    assertEquals(0, b.code(), b.err());
    assertTrue(Arrays.equals(Files.readAllBytes(one), Files.readAllBytes(three)), Files.readString(one) + "\nvs\n" + Files.readString(three));
    assertEquals(GOOD, Files.readAllLines(one).size());
    assertEquals(lines(a.err(), "jclip zeroshot: skipped"), lines(b.err(), "jclip zeroshot: skipped"));
    assertEquals(members - GOOD, lines(b.err(), "jclip zeroshot: skipped").size(), b.err());
  }

  private static String[] concat(List<String> a, String... b) {
    List<String> all = new ArrayList<>(a);
    all.addAll(List.of(b));
    return all.toArray(String[]::new);
  }

  @Test
  void aBadInputNeverStopsTheRun(@TempDir Path tmp) throws IOException {
    Path out = tmp.resolve("pred.csv"), errors = tmp.resolve("skipped.jsonl");
    CliRun.Result r = zeroshot(out, "--workers", "3", "--errors", errors.toString());
    assertEquals(0, r.code(), r.err());
    // every good image has its row, in input order; every bad one a message naming it, in input order
    List<String> rows = Files.readAllLines(out);
    List<String> wantIds = new ArrayList<>(), wantSkipped = new ArrayList<>();
    for (int i = 0; i < ROWS.size(); i++) (ROW_GOOD.get(i) ? wantIds : wantSkipped).add(ROWS.get(i));
    assertEquals(1 + GOOD, rows.size(), String.join("\n", rows));
    assertEquals(wantIds, rows.subList(1, rows.size()).stream().map(l -> l.split(",")[0]).toList());
    List<String> skipped = lines(r.err(), "jclip zeroshot: skipped");
    assertEquals(wantSkipped.size(), skipped.size(), r.err());
    for (int i = 0; i < skipped.size(); i++) {
      assertTrue(skipped.get(i).startsWith("jclip zeroshot: skipped " + wantSkipped.get(i) + ": "), skipped.get(i));
    }
    // --errors lists them too, in input order, with their index in the input and the same reason
    List<String> errorLines = Files.readAllLines(errors);
    assertEquals(wantSkipped.size(), errorLines.size(), String.join("\n", errorLines));
    var json = new com.fasterxml.jackson.databind.ObjectMapper();
    for (int i = 0, k = 0; i < ROWS.size(); i++) {
      if (ROW_GOOD.get(i)) continue;
      var o = json.readTree(errorLines.get(k));
      assertEquals(i, o.get("index").asInt(), errorLines.get(k));
      assertEquals(ROWS.get(i), o.get("image_path").asText(), errorLines.get(k));
      assertEquals(skipped.get(k), "jclip zeroshot: skipped " + ROWS.get(i) + ": " + o.get("error").asText());
      k++;
    }
    assertTrue(r.err().contains(" skipped (listed in " + errors + ")"), r.err());
  }

  /** The predictions are written whole or not at all: a run that stops leaves the file that was there. */
  @Test
  void aFailedRunLeavesTheOldOutput(@TempDir Path tmp) throws IOException {
    Path out = tmp.resolve("pred.csv");
    Files.writeString(out, "yesterday's predictions\n");
    Path noImageColumn = tmp.resolve("t.csv");
    Files.writeString(noImageColumn, "name,label\na,b\n");
    List<String> args = new ArrayList<>(List.of("--model", ModelCommandsTest.model.toString(), "--vocab", ModelCommandsTest.vocab(), "--device",
        "cpu", "--classes", classes.toString(), "--templates", templates.toString(), "--input", noImageColumn.toString(), "--output",
        out.toString(), "--no-cache", "--progress", "none"));
    CliRun.Result r = ModelCommandsTest.run(new ZeroShotCommand(), "", args.toArray(String[]::new));
    assertEquals(1, r.code(), r.err());
    assertEquals("yesterday's predictions\n", Files.readString(out));
    try (var left = Files.list(tmp)) {
      assertEquals(List.of("pred.csv", "t.csv"), left.map(p -> p.getFileName().toString()).sorted().toList(), "no temporary file is left");
    }
    // an output folder that does not exist, and --errors naming the output, are usage errors before the model loads
    r = zeroshot(tmp.resolve("no/such/pred.csv"));
    assertEquals(2, r.code(), r.err());
    assertTrue(r.err().contains("does not exist"), r.err());
    r = zeroshot(out, "--errors", out.toString());
    assertEquals(2, r.code(), r.err());
    assertTrue(r.err().contains("the same file"), r.err());
  }

  @Test
  void progressAndWhereTheTimeWent(@TempDir Path tmp) {
    ZeroShotCommand cmd = new ZeroShotCommand();
    cmd.progressIntervalMillis = 20; // reports while the stages run, too
    CliRun.Result r = zeroshot(cmd, tmp.resolve("p.jsonl"), "--workers", "2", "--progress", "lines");
    assertEquals(0, r.code(), r.err());
    // the final report counts every input, good or bad (a CSV's size is not known in advance)
    String bad = (ROWS.size() - GOOD) + " errors";
    assertTrue(r.err().lines().anyMatch(l -> l.startsWith("jclip zeroshot: " + ROWS.size() + " items, ") && l.endsWith(bad)), r.err());
    assertTrue(r.err().contains("jclip zeroshot: where the time went"), r.err());
    for (String k : List.of("model_load_s", "class_embeddings_s", "decode_cpu_s", "preprocess_wall_s", "encode_s", "encoder_waiting_for_input_s", "write_s", "wall_s")) {
      assertTrue(r.err().lines().anyMatch(l -> l.trim().startsWith(k + " ")), k + " in\n" + r.err());
    }
  }

  @Test
  void rejectsBadWorkersAndProgress(@TempDir Path tmp) {
    CliRun.Result r = zeroshot(tmp.resolve("p.csv"), "--workers", "0");
    assertEquals(2, r.code(), r.err());
    assertTrue(r.err().contains("--workers"), r.err());
    r = zeroshot(tmp.resolve("p.csv"), "--progress", "sometimes");
    assertEquals(2, r.code(), r.err());
    assertTrue(r.err().contains("auto, bar, lines or none"), r.err());
  }
}
