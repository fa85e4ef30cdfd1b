package dev.jclip.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class InputSourcesTest {
  @TempDir Path dir;

  private static List<InputItem> all(InputSource s) throws IOException {
    List<InputItem> out = new ArrayList<>();
    InputItem it;
    while ((it = s.next()) != null) {
      assertEquals(out.size(), it.index(), "indices are consecutive");
      out.add(it);
    }
    return out;
  }

  private Path touch(String rel, String content) throws IOException {
    Path f = dir.resolve(rel);
    Files.createDirectories(f.getParent());
    Files.writeString(f, content);
    return f;
  }

  @Test
  void directoryIsRecursiveSortedWithCaptionSidecarsAndNoHiddenFiles() throws IOException {
    Path root = dir.resolve("imgs");
    touch("imgs/b/2.png", "x");
    touch("imgs/b/1.jpg", "x");
    touch("imgs/b/1.txt", " a caption \n");
    touch("imgs/a.webp", "x");
    touch("imgs/c.tiff", "x");
    touch("imgs/c.txt", "scanned page");
    touch("imgs/readme.txt", "not a caption: no image named readme");
    touch("imgs/.hidden.jpg", "x");
    touch("imgs/.cache/x.jpg", "x");
    try (InputSource s = InputSources.open(root.toString(), null, null)) {
      List<InputItem> items = all(s);
      assertEquals(List.of("a.webp", "b/1.jpg", "b/2.png", "c.tiff", "readme.txt"), items.stream().map(InputItem::id).toList());
      assertEquals("a caption", items.get(1).caption());
      assertNull(items.get(2).caption());
      assertEquals("scanned page", items.get(3).caption());
      assertTrue(s.hasCaptions());
      assertEquals(5, s.size());
      assertEquals(root.resolve("b/1.jpg"), items.get(1).file());
    }
  }

  /**
   * Links are followed, to files and to folders; what cannot be followed or read is an item with
   * its reason (so the job lists it as skipped), never left out unseen.
   */
  @Test
  void directoryFollowsLinksAndNamesWhatItCannotRead() throws IOException {
    Path root = dir.resolve("imgs");
    touch("imgs/a/1.jpg", "x");
    touch("elsewhere/2.png", "x");
    touch("elsewhere/2.txt", "caption through a linked folder");
    touch("other.jpg", "x");
    Files.createSymbolicLink(root.resolve("linked"), dir.resolve("elsewhere"));
    Files.createSymbolicLink(root.resolve("file-link.jpg"), dir.resolve("other.jpg"));
    Files.createSymbolicLink(root.resolve("gone.jpg"), dir.resolve("no-such.jpg"));
    Files.createSymbolicLink(root.resolve("a/loop"), root);
    Files.createSymbolicLink(root.resolve("gone.txt"), dir.resolve("no-such.txt"));
    Files.createSymbolicLink(root.resolve("self.jpg"), root.resolve("self.jpg"));
    touch("imgs/back\\slash.jpg", "x"); // a '\\' is a character of a Linux file name, not a separator
    Path locked = Files.createDirectories(root.resolve("locked"));
    touch("imgs/locked/3.jpg", "x");
    boolean canLock = locked.toFile().setReadable(false) && !Files.isReadable(locked); // root ignores modes
    try (InputSource s = InputSources.open(root.toString(), null, null)) {
      Map<String, InputItem> items = new java.util.TreeMap<>();
      for (InputItem it : all(s)) items.put(it.id(), it);
      List<String> expected = new ArrayList<>(List.of("a/1.jpg", "a/loop", "back\\slash.jpg", "file-link.jpg", "gone.jpg", "gone.txt", "linked/2.png", "self.jpg"));
      expected.add(canLock ? "locked" : "locked/3.jpg");
      assertEquals(expected.stream().sorted().toList(), List.copyOf(items.keySet()));
      assertNull(items.get("a/1.jpg").error());
      assertNull(items.get("file-link.jpg").error());
      assertEquals(root.resolve("linked/2.png"), items.get("linked/2.png").file());
      assertEquals("caption through a linked folder", items.get("linked/2.png").caption());
      assertTrue(items.get("gone.jpg").error().startsWith("broken symbolic link to "), items.get("gone.jpg").error());
      assertTrue(items.get("gone.jpg").error().contains("no-such.jpg"), items.get("gone.jpg").error());
      assertTrue(items.get("gone.txt").error().startsWith("broken symbolic link"), items.get("gone.txt").error());
      assertTrue(items.get("a/loop").error().contains("loop"), items.get("a/loop").error());
      assertTrue(items.get("self.jpg").error().startsWith("symbolic link loop: self.jpg -> "), items.get("self.jpg").error());
      assertNull(items.get("back\\slash.jpg").error());
      assertEquals(root.resolve("back\\slash.jpg"), items.get("back\\slash.jpg").file());
      if (canLock) assertTrue(items.get("locked").error().contains("permission denied"), items.get("locked").error());
      assertEquals(items.size(), s.size());
    } finally {
      locked.toFile().setReadable(true);
    }
  }

  @Test
  void listOfPathsResolvesAgainstItsFolderAndRejectsUrls() throws IOException {
    Path list = touch("lists/l.txt", "a.jpg\n\n  /abs/b.png \nhttps://example.com/c.jpg\n");
    try (InputSource s = InputSources.open(list.toString(), null, null)) {
      List<InputItem> items = all(s);
      assertEquals(3, items.size());
      assertEquals(dir.resolve("lists/a.jpg"), items.get(0).file());
      assertEquals(Path.of("/abs/b.png"), items.get(1).file());
      assertTrue(items.get(2).error().contains("URL"), items.get(2).error());
      assertFalse(s.hasCaptions());
    }
  }

  @Test
  void csvQuotingBomCrlfAndBadRows() throws IOException {
    Path csv =
        touch(
            "t.csv",
            "\uFEFFid,url,caption,note\r\n"
                + "1,x/a.jpg,\"multi\nline, \"\"quoted\"\"\",n1\r\n"
                + "2,b.jpg,plain,\r\n"
                + "3,c.jpg\r\n"
                + "\r\n"
                + "4,,empty path,n\r\n"
                + "5,d.jpg,\"unterminated,n\n");
    try (InputSource s = InputSources.open(csv.toString(), null, null)) {
      List<InputItem> items = all(s);
      assertEquals(5, items.size());
      assertEquals("x/a.jpg", items.get(0).id());
      assertEquals("multi\nline, \"quoted\"", items.get(0).caption());
      assertEquals(Map.of("id", "1", "note", "n1"), items.get(0).extra());
      assertEquals(dir.resolve("b.jpg"), items.get(1).file());
      assertTrue(items.get(2).error().contains("2 fields, the header has 4"), items.get(2).error());
      assertTrue(items.get(2).error().contains("line 5"), items.get(2).error());
      assertTrue(items.get(3).error().contains("empty image path"), items.get(3).error());
      assertTrue(items.get(4).error().contains("unterminated"), items.get(4).error());
    }
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> InputSources.open(csv.toString(), "image", null));
    assertTrue(e.getMessage().contains("[id, url, caption, note]"), e.getMessage());
    Path noImage = touch("n.csv", "a,b\n1,2\n");
    e = assertThrows(IllegalArgumentException.class, () -> InputSources.open(noImage.toString(), null, null));
    assertTrue(e.getMessage().contains("--image-column"), e.getMessage());
  }

  @Test
  void jsonLinesWithBadLines() throws IOException {
    Path f =
        touch(
            "t.jsonl",
            "{\"image_path\": \"a.jpg\", \"caption\": \"cat\", \"score\": 0.5, \"tags\": [1,2]}\n"
                + "not json\n"
                + "[1, 2]\n"
                + "\n"
                + "{\"caption\": \"no image\"}\n"
                + "{\"path\": \"b.jpg\"}\n");
    try (InputSource s = InputSources.open(f.toString(), null, null)) {
      List<InputItem> items = all(s);
      assertEquals(5, items.size());
      assertEquals("cat", items.get(0).caption());
      assertEquals(Map.of("score", "0.5", "tags", "[1,2]"), items.get(0).extra());
      assertTrue(items.get(1).error().contains("line 2: not valid JSON"), items.get(1).error());
      assertTrue(items.get(2).error().contains("not a JSON object"), items.get(2).error());
      assertTrue(items.get(3).error().contains("line 5: no image field"), items.get(3).error());
      assertEquals(dir.resolve("b.jpg"), items.get(4).file());
    }
  }

  /**
   * JSON Lines has no header: the first object's fields stand for one. A named image or caption
   * column it lacks stops the job as a CSV header's would (a typo used to embed "" for every
   * caption, or skip every row); without a "caption" field there are no captions; a byte-order
   * mark does not cost the first row.
   */
  @Test
  void jsonLinesColumnsAreCheckedOnTheFirstObject() throws IOException {
    Path f = touch("c.jsonl", "\uFEFF{\"image_path\": \"a.jpg\", \"caption\": \"cat\"}\n{\"image_path\": \"b.jpg\", \"caption\": \"dog\"}\n");
    try (InputSource s = InputSources.open(f.toString(), null, null)) {
      List<InputItem> items = all(s);
      assertEquals(2, items.size());
      assertEquals("cat", items.get(0).caption(), String.valueOf(items.get(0).error()));
      assertTrue(s.hasCaptions());
    }
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> InputSources.open(f.toString(), null, "nope"));
    assertTrue(e.getMessage().contains("no caption column 'nope'") && e.getMessage().contains("[image_path, caption]")
        && e.getMessage().contains("c.jsonl (the first 2 lines)"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> InputSources.open(f.toString(), "nope", null));
    assertTrue(e.getMessage().contains("no image column 'nope'"), e.getMessage());
    Path bare = touch("d.jsonl", "\nnot json\n{\"url\": \"a.jpg\"}\n{\"file\": \"b.jpg\"}\n");
    try (InputSource s = InputSources.open(bare.toString(), null, null)) {
      assertTrue(!s.hasCaptions());
      List<InputItem> items = all(s);
      assertEquals(3, items.size());
      assertTrue(items.get(0).error().contains("line 2: not valid JSON"), items.get(0).error());
      assertEquals(dir.resolve("a.jpg"), items.get(1).file());
      assertEquals(dir.resolve("b.jpg"), items.get(2).file());
    }
    // a caption left out of the first row: the column is the one later rows have
    Path sparse = touch("f.jsonl", "{\"image_path\": \"a.jpg\"}\n{\"image_path\": \"b.jpg\", \"caption\": \"a dog\"}\n");
    try (InputSource s = InputSources.open(sparse.toString(), null, null)) {
      assertTrue(s.hasCaptions());
      List<InputItem> items = all(s);
      assertEquals(2, items.size());
      assertNull(items.get(0).caption());
      assertEquals("a dog", items.get(1).caption());
    }
    Path noImage = touch("e.jsonl", "{\"caption\": \"a cat\"}\n");
    e = assertThrows(IllegalArgumentException.class, () -> InputSources.open(noImage.toString(), null, null));
    assertTrue(e.getMessage().contains("--image-column"), e.getMessage());
  }

  private static void entry(TarArchiveOutputStream t, String name, byte[] content) throws IOException {
    TarArchiveEntry e = new TarArchiveEntry(name);
    e.setSize(content.length);
    t.putArchiveEntry(e);
    t.write(content);
    t.closeArchiveEntry();
  }

  private Path tar(String name, Object... nameContent) throws IOException {
    Path f = dir.resolve(name);
    try (OutputStream os = Files.newOutputStream(f);
        TarArchiveOutputStream t = new TarArchiveOutputStream(os)) {
      t.setLongFileMode(TarArchiveOutputStream.LONGFILE_POSIX);
      for (int i = 0; i < nameContent.length; i += 2) {
        Object c = nameContent[i + 1];
        entry(t, (String) nameContent[i], c instanceof String s ? s.getBytes(StandardCharsets.UTF_8) : (byte[]) c);
      }
    }
    return f;
  }

  @Test
  void webdatasetShardsGroupedByKeyAcrossABraceRange() throws IOException {
    String longKey = "deep/" + "k".repeat(150);
    tar(
        "s-00.tar",
        "000000000.jpg", new byte[] {1, 2, 3},
        "000000000.txt", "a cat",
        "000000000.json", "{\"url\": \"http://x/1.jpg\", \"width\": 640, \"key\": \"000000000\"}",
        "000000001.json", "{}",
        "000000001.png", new byte[] {4});
    tar("s-01.tar", "000000002.txt", "caption only", longKey + ".jpg", new byte[] {5, 6}, longKey + ".txt", "long");
    try (InputSource s = InputSources.open(dir.resolve("s-{00..01}.tar").toString(), null, null)) {
      assertTrue(s.hasCaptions());
      assertEquals("key", s.idColumn());
      List<InputItem> items = all(s);
      assertEquals(4, items.size());
      assertEquals("000000000", items.get(0).id());
      assertArrayEquals(new byte[] {1, 2, 3}, items.get(0).bytes());
      assertEquals("a cat", items.get(0).caption());
      assertEquals("http://x/1.jpg", items.get(0).extra().get("url"));
      assertEquals("640", items.get(0).extra().get("width"));
      assertArrayEquals(new byte[] {4}, items.get(1).bytes());
      assertNull(items.get(1).caption());
      assertTrue(items.get(2).error().contains("no image member"), items.get(2).error());
      assertEquals("k".repeat(150), items.get(3).id());
      assertEquals("long", items.get(3).caption());
    }
  }

  @Test
  void truncatedTarReportsTheShardAndGoesOn() throws IOException {
    byte[] big = new byte[5000];
    Path a = tar("t-0.tar", "a.jpg", big, "b.jpg", big);
    byte[] whole = Files.readAllBytes(a);
    Files.write(a, java.util.Arrays.copyOf(whole, 512 + 5120 + 512 + 1000));
    tar("t-1.tar", "c.jpg", new byte[] {1});
    try (InputSource s = InputSources.open(dir.resolve("t-{0..1}.tar").toString(), null, null)) {
      List<InputItem> items = all(s);
      assertEquals("a", items.get(0).id());
      assertTrue(items.get(1).error().contains("t-0.tar") || items.get(1).id().contains("t-0.tar"), items.get(1).toString());
      assertTrue(items.get(1).error().contains("damaged tar"), items.get(1).error());
      assertEquals("c", items.get(items.size() - 1).id());
    }
  }

  /** DuckDB (test scope) turns a CSV into the equivalent Parquet table; both must give the same items. */
  private static void duckdb(String sql) throws SQLException {
    try (Connection db = DriverManager.getConnection("jdbc:duckdb:");
        Statement s = db.createStatement()) {
      s.execute(sql);
    }
  }

  @Test
  void parquetTableGivesTheSameItemsAsTheEquivalentCsv() throws Exception {
    Path csv =
        touch(
            "tables/t.csv",
            "id,image_path,caption,score,ok\n"
                + "1,a.jpg,\"a cat, \"\"quoted\"\" 猫 🐈\",0.25,true\n"
                + "2,sub/b.png,second,100000000000000000000,false\n"
                + "3,/abs/c.jpg,third,-3.5,true\n"
                + "4,https://example.com/d.jpg,a url,0,false\n"
                + "5,,no path,7,true\n"
                + "6,missing.jpg,,2.5,false\n");
    Path pq = dir.resolve("tables/t.parquet");
    duckdb(
        "COPY (SELECT *, [id, id] AS tags, {'k': id} AS nested FROM read_csv('" + csv + "', header = true)) TO '" + pq
            + "' (FORMAT PARQUET, COMPRESSION 'zstd', ROW_GROUP_SIZE 2)");
    List<InputItem> fromCsv;
    List<InputItem> fromParquet;
    try (InputSource c = InputSources.open(csv.toString(), null, null);
        InputSource p = InputSources.open(pq.toString(), null, null)) {
      fromCsv = all(c);
      fromParquet = all(p);
      assertTrue(p.hasCaptions());
      assertEquals(6, p.size());
    }
    assertEquals(6, fromParquet.size());
    for (int i = 0; i < 6; i++) {
      InputItem a = fromCsv.get(i);
      InputItem b = fromParquet.get(i);
      assertEquals(a.index(), b.index());
      assertEquals(a.file(), b.file());
      assertEquals(a.error(), b.error());
      assertEquals(a.extra(), b.extra(), "row " + i);
      // A CSV cannot tell an empty field from a missing one; Parquet's null stays null.
      assertEquals(i == 5 ? "" : a.caption(), i == 5 ? "" : b.caption());
      assertEquals(i == 4 ? "t.parquet:row 4" : a.id(), b.id());
    }
    assertEquals(dir.resolve("tables/a.jpg"), fromParquet.get(0).file());
    assertEquals(dir.resolve("tables/sub/b.png"), fromParquet.get(1).file());
    assertEquals("a cat, \"quoted\" 猫 🐈", fromParquet.get(0).caption());
    assertEquals(Map.of("id", "2", "score", "100000000000000000000", "ok", "false"), fromParquet.get(1).extra());
    assertTrue(fromParquet.get(3).error().contains("URL"), fromParquet.get(3).error());
    assertTrue(fromParquet.get(4).error().contains("empty image path"));
    assertNull(fromParquet.get(5).caption());

    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> InputSources.open(pq.toString(), "tags", null));
    assertTrue(e.getMessage().contains("nested or repeated"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> InputSources.open(pq.toString(), null, "nope"));
    assertTrue(e.getMessage().contains("no caption column 'nope'"), e.getMessage());
    try (InputSource p = InputSources.open(pq.toString(), "caption", "image_path")) {
      InputItem first = p.next();
      assertEquals(dir.resolve("tables").resolve(fromCsv.get(0).caption()), first.file());
      assertEquals("a.jpg", first.caption());
    }
  }

  @Test
  void missingInputsAndBadParquetFilesAreClearErrors() throws IOException {
    Path pq = touch("t.parquet", "PAR1");
    IOException bad = assertThrows(IOException.class, () -> InputSources.open(pq.toString(), null, null));
    assertTrue(bad.getMessage().startsWith(pq.toString()) && bad.getMessage().contains("not a Parquet file"), bad.getMessage());
    assertThrows(java.nio.file.NoSuchFileException.class, () -> InputSources.open(dir.resolve("nope").toString(), null, null));
    assertThrows(java.nio.file.NoSuchFileException.class, () -> InputSources.open(dir.resolve("x-{0..2}.tar").toString(), null, null));
    assertEquals(
        List.of(Path.of("a/007.tar"), Path.of("a/008.tar"), Path.of("a/009.tar"), Path.of("a/010.tar")),
        InputSources.expandBraces("a/{007..010}.tar"));
  }

  /** An input that is not UTF-8 text (an image given as --input, a Latin-1 list) says so, naming it; an image is recognised. */
  @Test
  void aListThatIsNotUtf8IsNamedAsSuch() throws IOException {
    Path image = dir.resolve("rose.jpg");
    Files.write(image, new byte[] {(byte) 0xff, (byte) 0xd8, (byte) 0xff, (byte) 0xe0, 0, 0x10});
    IOException e = assertThrows(IOException.class, () -> InputSources.open(image.toString(), null, null));
    assertTrue(e.getMessage().contains(image + " is not a list of images") && e.getMessage().contains("it looks like an image"), e.getMessage());
    Path latin = dir.resolve("list.txt");
    Files.write(latin, "caf\u00e9.jpg\n".getBytes(StandardCharsets.ISO_8859_1));
    e = assertThrows(IOException.class, () -> InputSources.open(latin.toString(), null, null));
    assertTrue(e.getMessage().contains("it is not UTF-8 text") && !e.getMessage().contains("looks like an image"), e.getMessage());
  }
}
