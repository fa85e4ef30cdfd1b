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

  private static Path firstShard(Path out) throws IOException {
    try (var s = Files.list(out.resolve("img_emb"))) {
      return s.sorted().findFirst().orElseThrow();
    }
  }
}
