package dev.jclip.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * GIF first frames as Pillow 9.4 gives them, with files built byte by byte and the outcome each
 * rule measured with Pillow predicts (docs/preprocessing.md, "GIF"): truncation in its three forms,
 * data after the pixels, frames beyond the logical screen, empty frames, interlacing, colour
 * tables, transparency, extensions and LZW corner cases. {@link ImageDecoderGifPillowTest} runs
 * the same files through Pillow itself.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ImageDecoderGifTest {
  @TempDir Path tmp;

  final ImageDecoder decoder = new ImageDecoder();

  private Path write(String name, byte[] data) throws IOException {
    Path f = tmp.resolve(name);
    Files.write(f, data);
    return f;
  }

  private DecodedImage decode(String name, byte[] data) throws IOException {
    return decoder.decode(write(name, data));
  }

  private ImageDecodeException bad(String name, byte[] data, String... fragments) throws IOException {
    Path f = write(name, data);
    ImageDecodeException e = assertThrows(ImageDecodeException.class, () -> decoder.decode(f), name);
    assertTrue(e.getMessage().startsWith(f + ": "), "names the file: " + e.getMessage());
    for (String s : fragments) assertTrue(e.getMessage().contains(s), "'" + s + "' in: " + e.getMessage());
    return e;
  }

  private static int[] random(Random r, int n, int colours) {
    int[] px = new int[n];
    for (int i = 0; i < n; i++) px[i] = r.nextInt(10) < 7 ? (i / 3 + i / 29) % colours : r.nextInt(colours); // runs and noise
    return px;
  }

  private static byte[] bytes(int[] px) {
    byte[] b = new byte[px.length];
    for (int i = 0; i < px.length; i++) b[i] = (byte) px[i];
    return b;
  }

  private static byte[] palette(Random r, int entries) {
    byte[] p = new byte[3 * entries];
    r.nextBytes(p);
    return p;
  }

  /** A 16x8 frame of 4 colours, its pixels and its codes. */
  private record Base(int[] px, int[] codes, byte[] pal) {
    static Base of(Random r) {
      int[] px = random(r, 16 * 8, 4);
      return new Base(px, TestGif.lzw(8, px), palette(r, 256));
    }

    TestGif gif() {
      TestGif g = new TestGif(16, 8);
      g.global = pal;
      return g;
    }

    byte[] data() {
      return TestGif.pack(8, codes);
    }
  }

  private static int[] insert(int[] codes, int at, int code) {
    int[] c = new int[codes.length + 1];
    System.arraycopy(codes, 0, c, 0, at);
    c[at] = code;
    System.arraycopy(codes, at, c, at + 1, codes.length - at);
    return c;
  }

  /**
   * The files of this test with what Pillow 9.4 was measured to do: a name ending in ".ok.gif"
   * decodes, ".bad.gif" is refused. {@link ImageDecoderGifPillowTest} checks them against Pillow.
   */
  static Map<String, byte[]> cases(Random r) {
    Map<String, byte[]> m = new LinkedHashMap<>();
    Base b = Base.of(r);
    byte[] d = b.data();
    TestGif g;
    // ---- complete frames: strings, sub-block sizes, code sizes, a full table with and without clear
    for (int size : new int[] {1, 7, 255}) {
      g = b.gif();
      g.data = TestGif.blocks(d, size, true);
      m.put("blocks" + size + ".ok.gif", g.build());
    }
    for (int bits : new int[] {2, 5, 8}) {
      g = new TestGif(37, 23);
      g.global = palette(r, 256);
      g.codeSize = bits;
      m.put("codesize" + bits + ".ok.gif", g.pixels(random(r, 37 * 23, 1 << Math.min(bits, 8))).build());
    }
    for (boolean clear : new boolean[] {true, false}) {
      g = new TestGif(120, 100);
      g.global = palette(r, 256);
      int[] px = new int[120 * 100];
      for (int i = 0; i < px.length; i++) px[i] = r.nextInt(256);
      g.data = TestGif.blocks(TestGif.pack(8, TestGif.lzw(8, px, clear)), 255, true);
      m.put("fulltable-" + (clear ? "clear" : "kept") + ".ok.gif", g.build());
    }
    // ---- truncation (a): the file ends inside the data or without a terminator
    g = b.gif();
    g.data = TestGif.blocks(d, 255, false);
    g.tail = new byte[0];
    m.put("no-terminator-no-trailer.ok.gif", g.build());
    byte[] full = TestGif.blocks(d, 255, false);
    for (int cut : new int[] {1, 2, full.length / 2, full.length - 1}) {
      g = b.gif();
      g.data = Arrays.copyOf(full, cut);
      g.tail = new byte[0];
      m.put("cut" + cut + ".bad.gif", g.build());
    }
    g = b.gif(); // all codes present, but in a sub-block announced 5 bytes longer than the file has
    g.data = TestGif.concat(new byte[] {(byte) (d.length + 5)}, d);
    g.tail = new byte[0];
    m.put("block-longer-than-file.bad.gif", g.build());
    // (b) an end code before the last pixel, properly terminated, with or without bytes after it
    int[] half = TestGif.lzw(8, Arrays.copyOf(b.px, 64));
    g = b.gif();
    g.codes(half);
    m.put("early-end-code.bad.gif", g.build());
    g.tail = TestGif.concat(new byte[] {';'}, new byte[1000]);
    m.put("early-end-code-junk1000.bad.gif", g.build());
    // ... resumed when Pillow has more of the file to read (64 KiB chunks from the data's start)
    g = b.gif();
    g.codes(insert(b.codes, 20, 257));
    g.tail = TestGif.concat(new byte[] {';'}, new byte[70000]);
    m.put("end-code-then-70000.ok.gif", g.build());
    g.tail = TestGif.concat(new byte[] {';'}, new byte[60000]);
    m.put("end-code-then-60000.bad.gif", g.build());
    // (c) a 0-length sub-block before enough codes: Pillow reads on through what follows
    g = b.gif();
    g.data = TestGif.blocks(TestGif.pack(8, Arrays.copyOf(half, half.length - 1)), 255, true);
    m.put("terminator-too-early.bad.gif", g.build());
    g = b.gif();
    g.data = TestGif.concat(new byte[] {10}, Arrays.copyOf(d, 10), new byte[] {0}, TestGif.blocks(Arrays.copyOfRange(d, 10, d.length), 255, true));
    m.put("zero-block-then-rest.ok.gif", g.build());
    // data after the pixels: more codes, no end code
    g = b.gif();
    int[] twice = Arrays.copyOf(b.px, 2 * b.px.length);
    System.arraycopy(b.px, 0, twice, b.px.length, b.px.length);
    int[] tc = TestGif.lzw(8, twice);
    g.codes(Arrays.copyOf(tc, tc.length - 1));
    m.put("codes-after-pixels.ok.gif", g.build());
    // a file over 64 KiB: an end code early resumes, one in the last chunk ends it
    int[] big = new int[300 * 250];
    for (int i = 0; i < big.length; i++) big[i] = r.nextInt(256);
    int[] bigCodes = TestGif.lzw(8, big);
    byte[] bigPal = palette(r, 256);
    for (int at : new int[] {100, bigCodes.length - 200}) {
      g = new TestGif(300, 250);
      g.global = bigPal;
      g.codes(insert(bigCodes, at, 257));
      m.put("big-end-code-at-" + at + (at == 100 ? ".ok.gif" : ".bad.gif"), g.build());
    }
    // ---- geometry
    int[][] frames = { // screen w, h, frame left, top, w, h, then 1 if it decodes
      {6, 4, 2, 1, 3, 2, 1}, {6, 4, 4, 3, 3, 2, 1}, {6, 4, 10, 8, 2, 2, 1}, {6, 4, 0, 0, 8, 5, 1}, {0, 0, 1, 1, 3, 2, 1},
      {6, 4, 0, 0, 0, 2, 1}, {6, 4, 0, 1, 0, 5, 1}, {6, 4, 0, 0, 0, 0, 1}, {6, 4, 1, 0, 0, 2, 0}, {6, 4, 0, 0, 2, 0, 0},
      {0, 0, 0, 0, 0, 0, 0}, {6, 0, 0, 0, 0, 0, 0},
    };
    for (int[] f : frames) {
      for (int t : new int[] {-1, 7}) {
        g = new TestGif(f[0], f[1]).frame(f[2], f[3], f[4], f[5]);
        g.global = palette(r, 256);
        if (t >= 0) g.transparent(t);
        int n = f[4] == 0 && f[2] == 0 ? Math.max(f[0], f[4]) * Math.max(f[1], f[3] + f[5]) : f[4] * f[5];
        g.pixels(random(r, Math.max(n, 1), 200));
        m.put("frame-" + f[0] + "x" + f[1] + "-" + f[2] + "," + f[3] + "-" + f[4] + "x" + f[5] + "-t" + t + (f[6] == 1 ? ".ok.gif" : ".bad.gif"), g.build());
      }
    }
    // ---- interlacing
    for (int h : new int[] {1, 2, 3, 9, 17}) {
      g = new TestGif(4, h);
      g.global = palette(r, 256);
      g.interlaced = true;
      m.put("interlaced-4x" + h + ".ok.gif", g.pixels(random(r, 4 * h, 256)).build());
    }
    // ---- colour tables
    int[] px8 = random(r, 9 * 7, 8);
    byte[][] tables = {null, TestGif.ramp(256), TestGif.ramp(2), palette(r, 2), palette(r, 8)};
    String[] tableNames = {"none", "ramp256", "ramp2", "pal2", "pal8"};
    for (int i = 0; i < tables.length; i++) {
      for (int j : new int[] {0, 1, 4}) {
        g = new TestGif(9, 7);
        g.global = tables[i];
        g.local = tables[j];
        boolean refused = tables[i] != null && i != 1 && i != 2 && j >= 1 && j <= 2; // gray-ramp local table under a global one
        m.put("tables-g" + tableNames[i] + "-l" + tableNames[j] + (refused ? ".bad.gif" : ".ok.gif"), g.pixels(px8).build());
      }
    }
    // ---- extensions and other blocks before the frame
    Object[][] ext = {
      {"gce-last-flag-wins.ok", new byte[] {0x21, (byte) 0xF9, 4, 1, 0, 0, 9, 0, 0x21, (byte) 0xF9, 4, 0, 0, 0, 3, 0}},
      {"gce-3-bytes.ok", new byte[] {0x21, (byte) 0xF9, 3, 0, 0, 0, 0}},
      {"gce-2-bytes.bad", new byte[] {0x21, (byte) 0xF9, 2, 0, 0, 0}},
      {"gce-3-bytes-flag.bad", new byte[] {0x21, (byte) 0xF9, 3, 1, 0, 0, 0}},
      {"gce-empty.bad", new byte[] {0x21, (byte) 0xF9, 0}},
      {"app-empty.bad", new byte[] {0x21, (byte) 0xFF, 0}},
      {"netscape-without-data.bad", TestGif.concat(new byte[] {0x21, (byte) 0xFF, 11}, "NETSCAPE2.0".getBytes(), new byte[] {0})},
      {"netscape.ok", TestGif.concat(new byte[] {0x21, (byte) 0xFF, 11}, "NETSCAPE2.0".getBytes(), new byte[] {3, 1, 0, 0, 0})},
      {"comment.ok", new byte[] {0x21, (byte) 0xFE, 3, 'a', 'b', 'c', 2, 'd', 'e', 0}},
      {"comment-empty.ok", new byte[] {0x21, (byte) 0xFE, 0}},
      {"plain-text.ok", TestGif.concat(new byte[] {0x21, 0x01, 12}, new byte[12], new byte[] {0})},
      {"unknown-empty-swallows-descriptor.bad", new byte[] {0x21, 0x33, 0}},
      {"junk-bytes.ok", new byte[] {0, 1, (byte) 0xFF, 'x'}},
      {"trailer-first.bad", new byte[] {';'}},
    };
    int[] px24 = random(r, 6 * 4, 8);
    for (Object[] e : ext) {
      g = new TestGif(8, 6).frame(1, 1, 6, 4);
      g.global = palette(r, 256);
      g.before.writeBytes((byte[]) e[1]);
      m.put("ext-" + e[0] + ".gif", g.pixels(px24).build());
    }
    g = new TestGif(8, 6).frame(1, 1, 6, 4);
    g.global = palette(r, 256);
    g.version = "GIF88a";
    m.put("signature-GIF88a.bad.gif", g.pixels(px24).build());
    g.version = "GIF87a";
    m.put("signature-GIF87a.ok.gif", g.build());
    // ---- LZW corner cases (code size 2: clear 4, end 5, first entry 6)
    Object[][] lzw = {
      {"kwkwk.ok", 2, 6, new int[] {4, 1, 6, 6, 0, 5}},
      {"no-clear-first.ok", 2, 2, new int[] {1, 2, 5}},
      {"clear-in-the-middle.ok", 2, 5, new int[] {4, 1, 2, 3, 0, 4, 3, 5}},
      {"code-beyond-next.bad", 2, 6, new int[] {4, 1, 7, 0, 0, 0}},
      {"first-code-above-clear.bad", 2, 2, new int[] {4, 6, 0, 0}},
      {"codesize12.ok", 12, 2, new int[] {4096, 65, 66}},
      {"codesize12-next.ok", 12, 3, new int[] {4096, 65, 4098}},
      {"codesize12-next-twice.bad", 12, 5, new int[] {4096, 65, 4098, 4098}},
      {"codesize9-literal-above-255.ok", 9, 1, new int[] {512, 300}},
      {"codesize0.ok", 0, 4, new int[] {1, 0, 0, 0, 0}},
    };
    for (Object[] c : lzw) {
      g = new TestGif((Integer) c[2], 1);
      g.global = palette(r, 256);
      g.codeSize = (Integer) c[1];
      m.put("lzw-" + c[0] + ".gif", g.codes((int[]) c[3]).build());
    }
    g = new TestGif(2, 1);
    g.global = palette(r, 256);
    g.codeSize = 13;
    m.put("lzw-codesize13.bad.gif", g.codes(0, 1).build());
    // ---- the fuzzing campaign's files (the truncated ones byte for byte)
    m.put("fuzz-truncated-64x64.bad.gif", fuzzTruncated(64));
    m.put("fuzz-truncated-13000sq.bad.gif", fuzzTruncated(13000));
    m.put("fuzz-frame-off-screen.bad.gif", fuzzOffScreen());
    return m;
  }

  /** img-truncated-gif-*.gif: a frame the size of the screen with one pixel, then an end code. */
  static byte[] fuzzTruncated(int size) {
    TestGif g = new TestGif(size, size);
    g.global = new byte[6]; // two black entries
    g.codeSize = 2;
    g.data = new byte[] {2, 0x44, 0x01, 0};
    return g.build();
  }

  /** As img-alloc-feff6acb.gif: a 23x17 screen, a 35825x2929 frame at (0, 3072), 1 KB of data. */
  static byte[] fuzzOffScreen() {
    TestGif g = new TestGif(23, 17).frame(0, 3072, 35825, 2929);
    g.global = palette(new Random(3), 16);
    byte[] junk = new byte[1000];
    new Random(4).nextBytes(junk);
    g.data = TestGif.blocks(junk, 255, true);
    return g.build();
  }

  @Test
  void everyCaseHasTheMeasuredOutcome() throws IOException {
    for (Map.Entry<String, byte[]> e : cases(new Random(31)).entrySet()) {
      String name = e.getKey();
      if (name.endsWith(".ok.gif")) {
        DecodedImage im = decode(name, e.getValue());
        assertTrue(im.width() > 0 && im.height() > 0, name);
      } else {
        bad(name, e.getValue());
      }
    }
  }

  @Test
  void completeFramesGiveTheirPixels() throws IOException {
    Random r = new Random(1);
    for (int bits : new int[] {2, 5, 8}) {
      int[] px = random(r, 37 * 23, 1 << bits);
      TestGif g = new TestGif(37, 23);
      g.global = palette(r, 256);
      g.codeSize = bits;
      for (int size : new int[] {1, 7, 255}) {
        g.data = TestGif.blocks(TestGif.pack(bits, TestGif.lzw(bits, px)), size, true);
        DecodedImage im = decode("c.gif", g.build());
        assertEquals(DecodedImage.Mode.P, im.mode());
        assertEquals(37, im.width());
        assertArrayEquals(bytes(px), im.numpyBytes(), "code size " + bits + ", blocks of " + size);
        assertArrayEquals(g.global, im.palette());
      }
    }
    // a full table, cleared or kept
    int[] px = new int[120 * 100];
    for (int i = 0; i < px.length; i++) px[i] = r.nextInt(256);
    for (boolean clear : new boolean[] {true, false}) {
      TestGif g = new TestGif(120, 100);
      g.data = TestGif.blocks(TestGif.pack(8, TestGif.lzw(8, px, clear)), 255, true);
      assertArrayEquals(bytes(px), decode("full.gif", g.build()).numpyBytes());
    }
  }

  @Test
  void truncationIsRefusedAsPillowRefusesIt() throws IOException {
    Base b = Base.of(new Random(2));
    byte[] d = b.data();
    // The file ends right after the last sub-block: no terminator, no trailer, yet all pixels.
    TestGif g = b.gif();
    g.data = TestGif.blocks(d, 255, false);
    g.tail = new byte[0];
    assertArrayEquals(bytes(b.px), decode("t.gif", g.build()).numpyBytes());
    // Cut anywhere inside the data.
    byte[] full = TestGif.blocks(d, 255, false);
    for (int cut = 1; cut < full.length; cut += 7) {
      g.data = Arrays.copyOf(full, cut);
      bad("cut.gif", g.build(), "truncated GIF file", "image file is truncated");
    }
    // A sub-block is used only once all of it is in the file, even if the codes needed are there.
    g.data = TestGif.concat(new byte[] {(byte) (d.length + 5)}, d);
    bad("long-block.gif", g.build(), "image file is truncated", "of the first frame's 128 pixels (16x8)");
    // An end code before the last pixel: truncated, even with a terminator, trailer and more bytes.
    g = b.gif();
    g.codes(TestGif.lzw(8, Arrays.copyOf(b.px, 64)));
    bad("eoi.gif", g.build(), "image file is truncated", "give 64 of the first frame's 128 pixels");
    g.tail = TestGif.concat(new byte[] {';'}, new byte[60000]);
    bad("eoi-60000.gif", g.build(), "image file is truncated");
    // ... but when Pillow has not read the whole file by then (64 KiB chunks), decoding resumes
    // after the end code.
    g = b.gif();
    g.codes(insert(b.codes, 20, 257));
    g.tail = TestGif.concat(new byte[] {';'}, new byte[70000]);
    assertArrayEquals(bytes(b.px), decode("eoi-70000.gif", g.build()).numpyBytes());
    // A 0-length sub-block does not end the data: what follows is read as more sub-blocks.
    g = b.gif();
    g.data = TestGif.concat(new byte[] {10}, Arrays.copyOf(d, 10), new byte[] {0}, TestGif.blocks(Arrays.copyOfRange(d, 10, d.length), 255, true));
    assertArrayEquals(bytes(b.px), decode("zero-block.gif", g.build()).numpyBytes());
    int[] half = TestGif.lzw(8, Arrays.copyOf(b.px, 64));
    g.data = TestGif.blocks(TestGif.pack(8, Arrays.copyOf(half, half.length - 1)), 255, true);
    bad("terminator.gif", g.build(), "image file is truncated");
    // Codes after the last pixel are ignored.
    int[] twice = Arrays.copyOf(b.px, 256);
    System.arraycopy(b.px, 0, twice, 128, 128);
    g.data = TestGif.blocks(TestGif.pack(8, TestGif.lzw(8, twice)), 255, true);
    assertArrayEquals(bytes(b.px), decode("after.gif", g.build()).numpyBytes());
  }

  private static long allocated() {
    return ((com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean()).getCurrentThreadAllocatedBytes();
  }

  /** The fuzzing campaign's files: refused by name, with no buffer of the declared size allocated. */
  @Test
  void fuzzFindingsAreRefusedWithoutLargeAllocations() throws IOException {
    assumeTrue(((com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean()).isThreadAllocatedMemorySupported());
    Base warm = Base.of(new Random(5));
    decode("warm.gif", warm.gif().pixels(warm.px).build()); // load the classes first
    Object[][] files = {
      {"img-truncated-gif-decodes-64x64.gif", fuzzTruncated(64), new String[] {"image file is truncated", "1 of the first frame's 4096 pixels (64x64)"}},
      {"img-truncated-gif-13000sq-alloc.gif", fuzzTruncated(13000), new String[] {"image file is truncated", "1 of the first frame's 169000000 pixels"}},
      {"img-alloc-feff6acb.gif", fuzzOffScreen(), new String[] {"35825x6001", "214985825 pixels", "limit"}},
    };
    for (Object[] f : files) {
      Path p = write((String) f[0], (byte[]) f[1]);
      byte[] content = Files.readAllBytes(p);
      long before = allocated();
      ImageDecodeException e = assertThrows(ImageDecodeException.class, () -> decoder.decode(p, content));
      long used = allocated() - before;
      assertTrue(e.getMessage().startsWith(p + ": "), e.getMessage());
      for (String s : (String[]) f[2]) assertTrue(e.getMessage().contains(s), "'" + s + "' in: " + e.getMessage());
      assertTrue(used < 4 << 20, f[0] + ": " + used + " bytes allocated");
    }
    // With a limit that lets the off-screen frame's 215 million pixels through, the data are
    // still shown to be missing before anything of that size is allocated.
    Path p = write("off-screen.gif", fuzzOffScreen());
    byte[] content = Files.readAllBytes(p);
    long before = allocated();
    ImageDecodeException e = assertThrows(ImageDecodeException.class, () -> new ImageDecoder(300_000_000L).decode(p, content));
    assertTrue(allocated() - before < 4 << 20, (allocated() - before) + " bytes");
    assertTrue(e.getMessage().contains("of the first frame's 104931425 pixels (35825x2929)"), e.getMessage());
  }

  @Test
  void theFrameGrowsTheScreenAndEmptyFramesFollowPillow() throws IOException {
    Random r = new Random(6);
    int[] px = random(r, 6, 200);
    // A 3x2 frame at (4, 3) on a 6x4 screen: the image is 7x5, the rest the transparent index.
    TestGif g = new TestGif(6, 4).frame(4, 3, 3, 2).transparent(7);
    g.global = palette(r, 256);
    DecodedImage im = decode("grow.gif", g.pixels(px).build());
    assertEquals(7, im.width());
    assertEquals(5, im.height());
    byte[] want = new byte[35];
    Arrays.fill(want, (byte) 7);
    for (int y = 0; y < 2; y++) for (int x = 0; x < 3; x++) want[(3 + y) * 7 + 4 + x] = (byte) px[y * 3 + x];
    assertArrayEquals(want, im.numpyBytes());
    // Entirely off the screen: 12x10, zeros (no transparency) around the frame.
    g = new TestGif(6, 4).frame(10, 8, 2, 2);
    im = decode("off.gif", g.pixels(Arrays.copyOf(px, 4)).build());
    assertEquals(12, im.width());
    assertEquals(10, im.height());
    assertEquals(px[3], im.numpyBytes()[9 * 12 + 11] & 0xff);
    assertEquals(0, im.numpyBytes()[0]);
    // Screen 0x0: the frame's extent.
    g = new TestGif(0, 0).frame(1, 1, 3, 2);
    im = decode("zero-screen.gif", g.pixels(px).build());
    assertEquals(4, im.width());
    assertEquals(3, im.height());
    // Width 0 at left 0: Pillow decodes the whole (grown) image from the data.
    int[] px30 = random(r, 30, 200);
    g = new TestGif(6, 4).frame(0, 1, 0, 4);
    im = decode("w0.gif", g.pixels(px30).build());
    assertEquals(6, im.width());
    assertEquals(5, im.height());
    assertArrayEquals(bytes(px30), im.numpyBytes());
    g = new TestGif(6, 4).frame(0, 0, 0, 0);
    assertArrayEquals(bytes(Arrays.copyOf(px30, 24)), decode("0x0.gif", g.pixels(Arrays.copyOf(px30, 24)).build()).numpyBytes());
    // Any other empty frame, or an empty image, is refused.
    bad("w0-left1.gif", new TestGif(6, 4).frame(1, 0, 0, 2).pixels(px).build(), "empty");
    bad("h0.gif", new TestGif(6, 4).frame(0, 0, 2, 0).pixels(px).build(), "empty");
    bad("nothing.gif", new TestGif(0, 0).frame(0, 0, 0, 0).pixels(px).build(), "empty");
    // The grown size goes through the pixel limit.
    byte[] grown = new TestGif(6, 4).frame(4, 3, 3, 2).pixels(px).build();
    ImageDecodeException e = assertThrows(ImageDecodeException.class, () -> new ImageDecoder(34).decode(write("limit.gif", grown)));
    assertTrue(e.getMessage().contains("7x5 = 35 pixels, above the limit of 34"), e.getMessage());
    assertEquals(7, new ImageDecoder(35).decode(write("limit.gif", grown)).width());
  }

  @Test
  void interlacedRowsFollowTheFourPasses() throws IOException {
    int[][] order = {{0}, {0, 1}, {0, 2, 1}, {0, 8, 4, 2, 6, 1, 3, 5, 7}};
    for (int[] rows : order) {
      int h = rows.length;
      int[] px = new int[4 * h];
      for (int i = 0; i < px.length; i++) px[i] = i / 4; // data row number
      TestGif g = new TestGif(4, h);
      g.interlaced = true;
      byte[] got = decode("i.gif", g.pixels(px).build()).numpyBytes();
      for (int k = 0; k < h; k++) assertEquals(k, got[rows[k] * 4], "data row " + k + " goes to image row " + rows[k] + " of " + h);
    }
  }

  @Test
  void colourTablesGivePillowsMode() throws IOException {
    Random r = new Random(7);
    int[] px = random(r, 12, 8);
    px[5] = 7;
    byte[] pal8 = palette(r, 8);
    TestGif g = new TestGif(4, 3);
    g.pixels(px);
    assertEquals(DecodedImage.Mode.L, decode("none.gif", g.build()).mode());
    g.global = TestGif.ramp(256);
    assertEquals(DecodedImage.Mode.L, decode("ramp.gif", g.build()).mode());
    g.global = TestGif.ramp(2);
    assertEquals(DecodedImage.Mode.L, decode("ramp2.gif", g.build()).mode());
    g.local = pal8;
    DecodedImage im = decode("local.gif", g.build());
    assertEquals(DecodedImage.Mode.P, im.mode());
    assertArrayEquals(pal8, Arrays.copyOf(im.palette(), 24));
    g.global = null;
    g.local = TestGif.ramp(8);
    assertEquals(DecodedImage.Mode.L, decode("local-ramp.gif", g.build()).mode());
    g.global = pal8;
    bad("local-ramp-under-global.gif", g.build(), "is not supported");
    // A 2-entry table with index 7 in the data: Pillow's palette continues as a gray ramp.
    g.global = palette(r, 2);
    g.local = null;
    im = decode("short.gif", g.build());
    assertEquals(DecodedImage.Mode.P, im.mode());
    assertArrayEquals(new byte[] {7, 7, 7}, Arrays.copyOfRange(im.palette(), 21, 24));
    // The last graphic control extension with the transparency flag gives the fill.
    g = new TestGif(8, 6).frame(1, 1, 4, 3);
    g.global = pal8;
    g.transparent(9).transparent(-1);
    assertEquals(9, decode("t.gif", g.pixels(px).build()).numpyBytes()[0]);
  }

  @Test
  void lzwCornerCases() throws IOException {
    Map<String, byte[]> cases = cases(new Random(8));
    Object[][] want = {
      {"lzw-kwkwk.ok.gif", new byte[] {1, 1, 1, 1, 1, 0}},
      {"lzw-no-clear-first.ok.gif", new byte[] {1, 2}},
      {"lzw-clear-in-the-middle.ok.gif", new byte[] {1, 2, 3, 0, 3}},
      {"lzw-codesize12.ok.gif", new byte[] {65, 66}},
      {"lzw-codesize12-next.ok.gif", new byte[] {65, 65, 65}},
      {"lzw-codesize9-literal-above-255.ok.gif", new byte[] {44}},
      {"lzw-codesize0.ok.gif", new byte[] {0, 0, 0, 0}},
    };
    for (Object[] w : want) assertArrayEquals((byte[]) w[1], decode((String) w[0], cases.get(w[0])).numpyBytes(), (String) w[0]);
    bad("beyond.gif", cases.get("lzw-code-beyond-next.bad.gif"), "broken data stream", "code 7 beyond the next table entry 6");
    bad("first.gif", cases.get("lzw-first-code-above-clear.bad.gif"), "broken data stream");
    bad("twice.gif", cases.get("lzw-codesize12-next-twice.bad.gif"), "broken data stream");
    bad("13.gif", cases.get("lzw-codesize13.bad.gif"), "code size 13");
  }

  @Test
  void headersAndExtensionsAsPillowReadsThem() throws IOException {
    Map<String, byte[]> cases = cases(new Random(9));
    bad("gce.gif", cases.get("ext-gce-2-bytes.bad.gif"), "graphic control extension of 2 bytes");
    bad("swallow.gif", cases.get("ext-unknown-empty-swallows-descriptor.bad.gif"), "corrupt GIF file");
    bad("v.gif", cases.get("signature-GIF88a.bad.gif"), "GIF87a or GIF89a");
    byte[] ok = cases.get("ext-junk-bytes.ok.gif");
    for (int cut = 4; cut < 13 + 768 + 11; cut += 37) bad("cut.gif", Arrays.copyOf(ok, cut), "corrupt GIF file");
  }
}
