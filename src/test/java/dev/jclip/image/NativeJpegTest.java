package dev.jclip.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.jclip.image.ImageDecoder.JpegCodec;
import dev.jclip.io.Downloader;
import dev.jclip.testing.Reference;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import javax.imageio.IIOImage;
import javax.imageio.ImageIO;
import javax.imageio.ImageTypeSpecifier;
import javax.imageio.ImageWriteParam;
import javax.imageio.ImageWriter;
import javax.imageio.metadata.IIOMetadata;
import javax.imageio.metadata.IIOMetadataNode;
import javax.imageio.stream.MemoryCacheImageOutputStream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * libjpeg-turbo through TurboJPEG ({@link NativeJpeg}) against the Java path (which matches
 * Pillow on every file tried) on JPEGs written here with every common sampling, progressive
 * scans, gray and restart intervals; against Pillow's hashes on arithmetic-coded fixtures (which
 * only the native path decodes); truncation, corruption, the pixel limit, threads. Skipped, with a
 * message, where libturbojpeg is not installed.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class NativeJpegTest {
  /** Pillow 9.4's sha256 of numpy.asarray(Image.open(f)), printed by make-jpeg-arithmetic-fixtures.py. */
  private static final String ARITHMETIC_RGB_SHA256 = "80ceb213d882a87bcaf25cd8a7b02bcc77d60c91066b1f1a607c82623d7530c9";

  private static final String ARITHMETIC_GRAY_SHA256 = "96f107db9fad231c39421b72a76be061db7e9a5b628eace88e4f7600679ca2b3";

  @TempDir Path tmp;

  private final ImageDecoder java = new ImageDecoder(ImageDecoder.DEFAULT_MAX_PIXELS, ImageDecoder.DEFAULT_MAX_FILE_BYTES, JpegCodec.JAVA);
  private ImageDecoder nativeDecoder;

  @BeforeAll
  static void library() {
    assumeTrue(
        NativeJpeg.get() != null,
        "libturbojpeg.so.0 is not installed (Debian/Ubuntu package libturbojpeg0): native JPEG tests skipped");
  }

  private ImageDecoder nat() {
    if (nativeDecoder == null) nativeDecoder = new ImageDecoder(ImageDecoder.DEFAULT_MAX_PIXELS, ImageDecoder.DEFAULT_MAX_FILE_BYTES, JpegCodec.NATIVE);
    return nativeDecoder;
  }

  // ---------------------------------------------------------------- JPEGs written here

  static ImageWriter jdkWriter() {
    Iterator<ImageWriter> it = ImageIO.getImageWritersByFormatName("jpeg");
    while (it.hasNext()) {
      ImageWriter w = it.next();
      if (w.getClass().getName().startsWith("com.sun.imageio.plugins.jpeg.")) return w;
    }
    throw new IllegalStateException("the JDK's JPEG writer is missing");
  }

  /**
   * A JPEG from the JDK's writer with the luma sampling factors {@code hY x vY} (chroma 1x1), a
   * restart interval in MCUs (0 for none), progressive or not.
   */
  static byte[] encode(BufferedImage im, float quality, boolean progressive, int hY, int vY, int restart) throws IOException {
    ImageWriter w = jdkWriter();
    try {
      ImageWriteParam p = w.getDefaultWriteParam();
      p.setCompressionMode(ImageWriteParam.MODE_EXPLICIT);
      p.setCompressionQuality(quality);
      if (progressive) p.setProgressiveMode(ImageWriteParam.MODE_DEFAULT);
      IIOMetadata meta = w.getDefaultImageMetadata(ImageTypeSpecifier.createFromRenderedImage(im), p);
      String fmt = "javax_imageio_jpeg_image_1.0";
      IIOMetadataNode root = (IIOMetadataNode) meta.getAsTree(fmt);
      var comps = root.getElementsByTagName("componentSpec");
      for (int i = 0; i < comps.getLength(); i++) {
        IIOMetadataNode c = (IIOMetadataNode) comps.item(i);
        boolean luma = i == 0 && comps.getLength() == 3;
        c.setAttribute("HsamplingFactor", String.valueOf(luma ? hY : 1));
        c.setAttribute("VsamplingFactor", String.valueOf(luma ? vY : 1));
      }
      if (restart > 0) {
        IIOMetadataNode seq = (IIOMetadataNode) root.getElementsByTagName("markerSequence").item(0);
        IIOMetadataNode dri = new IIOMetadataNode("dri");
        dri.setAttribute("interval", String.valueOf(restart));
        seq.insertBefore(dri, seq.getFirstChild());
      }
      meta.setFromTree(fmt, root);
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      try (MemoryCacheImageOutputStream s = new MemoryCacheImageOutputStream(out)) {
        w.setOutput(s);
        w.write(null, new IIOImage(im, null, meta), p);
      }
      return out.toByteArray();
    } finally {
      w.dispose();
    }
  }

  static BufferedImage picture(Random r, int w, int h, boolean gray) {
    BufferedImage im = new BufferedImage(w, h, gray ? BufferedImage.TYPE_BYTE_GRAY : BufferedImage.TYPE_INT_RGB);
    double fx = 0.05 + r.nextDouble() * 0.3;
    int block = 3 + r.nextInt(9);
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w; x++) {
        int red = (int) (128 + 100 * Math.sin(fx * x) + r.nextInt(40) - 20);
        int green = (x * 7 + y * 3) & 0xff;
        int blue = ((x / block + y / 7) % 2) * 255; // hard chroma edges
        im.getRaster().setPixel(x, y, gray ? new int[] {Math.max(0, Math.min(255, red))} : new int[] {Math.max(0, Math.min(255, red)), green, blue});
      }
    }
    return im;
  }

  /** The native decoder itself (no fallback allowed) against the whole Java path. */
  private void assertSameAsJavaPath(String what, byte[] jpeg) throws Exception {
    NativeJpeg lib = NativeJpeg.get();
    DecodedImage mine = lib.decode(lib.newSession(), Path.of(what), jpeg, java, 0);
    assertNotNull(mine, what + ": the native decoder handed the file back");
    DecodedImage ref = java.decode(Path.of(what), jpeg);
    assertEquals(ref.mode(), mine.mode(), what);
    assertEquals(ref.width(), mine.width(), what);
    assertEquals(ref.height(), mine.height(), what);
    byte[] a = ref.numpyBytes();
    byte[] b = mine.numpyBytes();
    for (int i = 0; i < a.length; i++) {
      if (a[i] != b[i]) fail(what + ": first difference at byte " + i + ": Java " + (a[i] & 0xff) + ", libjpeg-turbo " + (b[i] & 0xff));
    }
  }

  @Test
  void referenceJpegsDecodeAsTheJavaPath() throws Exception {
    for (String name : new String[] {"grace_hopper.jpg", "FreshFlower.jpg", "rose.jpg"}) {
      assertSameAsJavaPath(name, Files.readAllBytes(Reference.file("images/" + name)));
    }
  }

  @Test
  void randomSyntheticJpegsDecodeAsTheJavaPath() throws Exception {
    Random r = new Random(2115);
    int[][] sampling = {{1, 1}, {2, 1}, {2, 2}, {1, 2}}; // 4:4:4, 4:2:2, 4:2:0, 4:4:0
    for (int i = 0; i < 48; i++) {
      int w = 1 + (i < 8 ? i : r.nextInt(i % 3 == 0 ? 400 : 70));
      int h = 1 + (i < 8 ? 7 - i : r.nextInt(i % 3 == 1 ? 400 : 70));
      boolean gray = i % 6 == 5;
      boolean progressive = (i / 2) % 2 == 1;
      int[] s = sampling[i % 4];
      int restart = i % 5 == 2 ? 1 + r.nextInt(6) : 0;
      float q = 0.05f + r.nextFloat() * 0.95f;
      String what =
          String.format("%dx%d %s %s sampling %dx%d restart %d q %.2f", w, h, gray ? "gray" : "colour", progressive ? "progressive" : "baseline", s[0], s[1], restart, q);
      byte[] jpeg = encode(picture(r, w, h, gray), q, progressive, s[0], s[1], restart);
      // The writer did what was asked: SOF2 for progressive, a DRI marker, the luma sampling.
      int sof = sofOffset(jpeg);
      assertEquals(progressive ? 0xC2 : 0xC0, jpeg[sof + 1] & 0xff, what);
      if (!gray) assertEquals((s[0] << 4) | s[1], jpeg[sof + 11] & 0xff, what);
      assertEquals(restart > 0, hasMarker(jpeg, 0xDD), what);
      assertSameAsJavaPath(what, jpeg);
    }
  }

  /** Whether a marker segment of this type precedes the first scan. */
  private static boolean hasMarker(byte[] b, int marker) {
    int i = 2;
    while (i + 4 < b.length && (b[i + 1] & 0xff) != 0xDA) {
      if ((b[i + 1] & 0xff) == marker) return true;
      i += 2 + (((b[i + 2] & 0xff) << 8) | (b[i + 3] & 0xff));
    }
    return false;
  }

  @Test
  void cjpegVariantsDecodeAsTheJavaPath() throws Exception {
    Path cjpeg = findOnPath("cjpeg");
    assumeTrue(cjpeg != null, "cjpeg (Debian package libjpeg-turbo-progs) is not installed: cjpeg variants skipped");
    Random r = new Random(5);
    BufferedImage im = picture(r, 77, 53, false);
    Path ppm = tmp.resolve("src.ppm");
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    b.writeBytes(("P6\n" + im.getWidth() + " " + im.getHeight() + "\n255\n").getBytes());
    for (int y = 0; y < im.getHeight(); y++) {
      for (int x = 0; x < im.getWidth(); x++) {
        int rgb = im.getRGB(x, y);
        b.write(rgb >> 16);
        b.write(rgb >> 8);
        b.write(rgb);
      }
    }
    Files.write(ppm, b.toByteArray());
    String[][] variants = {
      {"-sample", "2x1"}, {"-sample", "1x2"}, {"-sample", "4x1"}, {"-sample", "1x4"}, {"-sample", "4x2"},
      {"-sample", "2x2,1x1,2x1"}, {"-restart", "1"}, {"-restart", "3B", "-progressive"}, {"-dct", "float"},
      {"-optimize"}, {"-rgb"}, {"-grayscale"}, {"-progressive", "-sample", "1x2"}, {"-quality", "100"}, {"-quality", "5"},
    };
    for (String[] v : variants) {
      List<String> cmd = new ArrayList<>(List.of(cjpeg.toString()));
      cmd.addAll(Arrays.asList(v));
      cmd.add(ppm.toString());
      Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.DISCARD).start();
      byte[] jpeg = p.getInputStream().readAllBytes();
      assertEquals(0, p.waitFor(), "cjpeg " + Arrays.toString(v));
      assertSameAsJavaPath("cjpeg " + String.join(" ", v), jpeg);
    }
  }

  private static Path findOnPath(String tool) {
    for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
      Path p = Path.of(dir, tool);
      if (Files.isExecutable(p)) return p;
    }
    return null;
  }

  // ---------------------------------------------------------------- what only the native path decodes

  private static byte[] fixture(String name) throws IOException {
    try (InputStream in = NativeJpegTest.class.getResourceAsStream(name)) {
      return in.readAllBytes();
    }
  }


  @Test
  void arithmeticCodedJpegsDecodeToPillowsPixels() throws Exception {
    String[][] cases = {
      {"synthetic-arithmetic.jpg", "RGB", ARITHMETIC_RGB_SHA256},
      {"synthetic-arithmetic-progressive.jpg", "RGB", ARITHMETIC_RGB_SHA256},
      {"synthetic-arithmetic-gray.jpg", "L", ARITHMETIC_GRAY_SHA256},
    };
    for (String[] c : cases) {
      DecodedImage im = nat().decode(Path.of(c[0]), fixture(c[0]));
      assertEquals(c[1], im.mode().pillowName(), c[0]);
      assertEquals(61, im.width(), c[0]);
      assertEquals(45, im.height(), c[0]);
      assertEquals(c[2], Downloader.sha256(im.numpyBytes()), c[0]);
      // The Java path cannot: a clear error naming the file.
      ImageDecodeException e = assertThrows(ImageDecodeException.class, () -> java.decode(Path.of(c[0]), fixture(c[0])));
      assertTrue(e.getMessage().contains(c[0]), e.getMessage());
    }
    // Cut short, it is truncated like any other JPEG.
    byte[] a = fixture("synthetic-arithmetic.jpg");
    ImageDecodeException e = assertThrows(ImageDecodeException.class, () -> nat().decode(Path.of("cut.jpg"), Arrays.copyOf(a, a.length / 2)));
    assertTrue(e.getMessage().contains("cut.jpg") && e.getMessage().contains("truncated"), e.getMessage());
    // Damaged so that libjpeg warns (garbage before the SOS marker): libjpeg-turbo's own message,
    // since the Java path, which decides other files with warnings, cannot read arithmetic coding.
    int sos = 2;
    while ((a[sos + 1] & 0xff) != 0xDA) sos += 2 + (((a[sos + 2] & 0xff) << 8) | (a[sos + 3] & 0xff));
    byte[] damaged = new byte[a.length + 2];
    System.arraycopy(a, 0, damaged, 0, sos);
    damaged[sos] = 0x12;
    damaged[sos + 1] = 0x34;
    System.arraycopy(a, sos, damaged, sos + 2, a.length - sos);
    e = assertThrows(ImageDecodeException.class, () -> nat().decode(Path.of("damaged.jpg"), damaged));
    assertTrue(e.getMessage().contains("damaged.jpg: corrupt arithmetic-coded JPEG file (libjpeg-turbo: Corrupt JPEG data: 2 extraneous bytes"), e.getMessage());
  }

  @Test
  void cmykAndYcckJpegsDecodeToPillowsInvertedCmyk() throws Exception {
    // Hashes printed by make-jpeg-cmyk-fixtures.py: Adobe CMYK (transform 0) and YCCK (2, 4:2:0).
    String[][] cases = {
      {"synthetic-cmyk.jpg", "a10dd6d5fc5e8da1e3adefab4ffc1aada52063f5f8d0417b4e114bd91748d065"},
      {"synthetic-ycck.jpg", "1ae3d2051ca80a03789ee32551e2e68b81854d95e50b900ee2bc5874ffde1845"},
    };
    NativeJpeg lib = NativeJpeg.get();
    for (String[] c : cases) {
      DecodedImage im = lib.decode(lib.newSession(), Path.of(c[0]), fixture(c[0]), java, 0);
      assertNotNull(im, c[0] + ": handed back");
      assertEquals(DecodedImage.Mode.CMYK, im.mode(), c[0]);
      assertEquals(43, im.width(), c[0]);
      assertEquals(29, im.height(), c[0]);
      assertEquals(c[1], Downloader.sha256(im.numpyBytes()), c[0]);
    }
    // (ImageDecoderTest checks the same fixtures through ImageDecoder on both paths.)
  }

  // ---------------------------------------------------------------- bad files

  @Test
  void truncatedFilesAreErrorsNamingTheFile() throws Exception {
    Random r = new Random(9);
    for (String name : new String[] {"grace_hopper.jpg", "FreshFlower.jpg"}) { // baseline, progressive
      byte[] full = Files.readAllBytes(Reference.file("images/" + name));
      List<Integer> cuts = new ArrayList<>(List.of(full.length - 1, full.length - 2, full.length - 3, full.length / 2, 700, 300, 20, 3));
      for (int i = 0; i < 12; i++) cuts.add(1 + r.nextInt(full.length - 2));
      for (int keep : cuts) {
        Path f = tmp.resolve("cut-" + keep + "-" + name);
        Files.write(f, Arrays.copyOf(full, keep));
        ImageDecodeException e = assertThrows(ImageDecodeException.class, () -> nat().decode(f), "cut at " + keep);
        assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
      }
    }
    // Cut inside the entropy data: the native decoder's own verdict, not the fallback's.
    byte[] full = Files.readAllBytes(Reference.file("images/grace_hopper.jpg"));
    NativeJpeg lib = NativeJpeg.get();
    ImageDecodeException e =
        assertThrows(ImageDecodeException.class, () -> lib.decode(lib.newSession(), Path.of("half.jpg"), Arrays.copyOf(full, full.length / 2), java, 0));
    assertTrue(e.getMessage().contains("half.jpg: truncated JPEG file (Premature end of JPEG file)"), e.getMessage());
    e = assertThrows(ImageDecodeException.class, () -> lib.decode(lib.newSession(), Path.of("no-eoi.jpg"), Arrays.copyOf(full, full.length - 2), java, 0));
    assertTrue(e.getMessage().contains("truncated"), e.getMessage());
  }

  @Test
  void randomCorruptionsGiveAnImageOrAnImageDecodeException() throws Exception {
    Random r = new Random(30);
    for (String name : new String[] {"grace_hopper.jpg", "FreshFlower.jpg"}) {
      byte[] full = Files.readAllBytes(Reference.file("images/" + name));
      for (int i = 0; i < 15; i++) {
        byte[] bad = full.clone();
        int n = 1 + r.nextInt(i < 5 ? 3 : 40);
        // Half of them also hit the headers (tables, SOF, SOS), the rest only the entropy data.
        int from = i % 2 == 0 ? 2 : 700;
        for (int k = 0; k < n; k++) bad[from + r.nextInt(bad.length - from)] = (byte) r.nextInt();
        if (i % 4 == 3) bad = Arrays.copyOf(bad, 600 + r.nextInt(bad.length - 600));
        Path f = tmp.resolve("noise-" + i + "-" + name);
        Files.write(f, bad);
        try {
          DecodedImage im = nat().decode(f);
          assertTrue(im.width() > 0 && im.height() > 0);
        } catch (ImageDecodeException expected) {
          assertTrue(expected.getMessage().contains(f.toString()), expected.getMessage());
        }
      }
    }
  }

  @Test
  void filesWithWarningsAreLeftToTheJavaPath() throws Exception {
    byte[] full = Files.readAllBytes(Reference.file("images/grace_hopper.jpg"));
    NativeJpeg lib = NativeJpeg.get();
    // An EOI marker inside the entropy data: libjpeg warns ("premature end of data segment") and
    // fills the rest with gray; only the first warning's text is known, so a truncation could hide
    // behind it: the Java path decides, exactly as before the native decoder existed.
    byte[] planted = full.clone();
    int k = full.length * 3 / 4;
    planted[k] = (byte) 0xFF;
    planted[k + 1] = (byte) 0xD9;
    assertNull(lib.decode(lib.newSession(), Path.of("planted.jpg"), planted, java, 0), "handed back to the Java path");
    assertSameOutcome(nat(), java, "planted.jpg", planted);
    // Bytes between the entropy data and EOI, and bytes after EOI: the image, as in Pillow.
    int eoi = full.length - 2;
    byte[] extra = new byte[full.length + 3];
    System.arraycopy(full, 0, extra, 0, eoi);
    extra[eoi] = 0x12;
    extra[eoi + 1] = 0x34;
    extra[eoi + 2] = 0x56;
    System.arraycopy(full, eoi, extra, eoi + 3, 2);
    byte[] clean = java.decode(Path.of("clean.jpg"), full).numpyBytes();
    assertArrayEquals(clean, nat().decode(Path.of("extra.jpg"), extra).numpyBytes());
    assertArrayEquals(clean, nat().decode(Path.of("trailing.jpg"), Arrays.copyOf(full, full.length + 7)).numpyBytes());
  }

  private static void assertSameOutcome(ImageDecoder a, ImageDecoder b, String name, byte[] file) throws Exception {
    String ra;
    String rb;
    try {
      ra = Downloader.sha256(a.decode(Path.of(name), file).numpyBytes());
    } catch (ImageDecodeException e) {
      ra = e.getMessage();
    }
    try {
      rb = Downloader.sha256(b.decode(Path.of(name), file).numpyBytes());
    } catch (ImageDecodeException e) {
      rb = e.getMessage();
    }
    assertEquals(rb, ra, name);
  }

  @Test
  void pixelLimitIsCheckedFromTheHeaderBeforeDecoding() throws Exception {
    ImageDecodeException e =
        assertThrows(
            ImageDecodeException.class,
            () -> new ImageDecoder(1000, ImageDecoder.DEFAULT_MAX_FILE_BYTES, JpegCodec.NATIVE).decode(Reference.file("images/rose.jpg")));
    assertTrue(e.getMessage().contains("limit of 1000") && e.getMessage().contains("rose.jpg"), e.getMessage());
    // A real file whose SOF claims 65000x65000: refused from the header, before any pixel buffer.
    byte[] b = Files.readAllBytes(Reference.file("images/grace_hopper.jpg"));
    int sof = sofOffset(b);
    b[sof + 5] = (byte) (65000 >> 8);
    b[sof + 6] = (byte) (65000 & 0xff);
    b[sof + 7] = (byte) (65000 >> 8);
    b[sof + 8] = (byte) (65000 & 0xff);
    Path f = tmp.resolve("bomb.jpg");
    Files.write(f, b);
    e = assertThrows(ImageDecodeException.class, () -> nat().decode(f));
    assertTrue(e.getMessage().contains("65000x65000") && e.getMessage().contains("decompression bomb"), e.getMessage());
    e = assertThrows(ImageDecodeException.class, () -> new ImageDecoder(Long.MAX_VALUE, ImageDecoder.DEFAULT_MAX_FILE_BYTES, JpegCodec.NATIVE).decode(f));
    assertTrue(e.getMessage().contains("too large"), e.getMessage());
  }

  private static int sofOffset(byte[] b) {
    int i = 2;
    while (i + 4 < b.length) {
      int m = b[i + 1] & 0xff;
      if (m >= 0xC0 && m <= 0xC2 || m == 0xC9 || m == 0xCA) return i;
      i += 2 + (((b[i + 2] & 0xff) << 8) | (b[i + 3] & 0xff));
    }
    throw new IllegalStateException("no SOF");
  }

  // ---------------------------------------------------------------- threads, selection

  @Test
  void oneDecoderServesManyThreads() throws Exception {
    List<byte[]> files = new ArrayList<>();
    List<byte[]> want = new ArrayList<>();
    Random r = new Random(4);
    for (int i = 0; i < 12; i++) {
      // Sizes that grow and shrink, so each thread's buffers are reused and regrown.
      byte[] jpeg = encode(picture(r, 20 + r.nextInt(300), 20 + r.nextInt(300), i % 5 == 0), 0.8f, i % 2 == 0, 2, 2, 0);
      files.add(jpeg);
      want.add(java.decode(Path.of("f" + i), jpeg).numpyBytes());
    }
    ImageDecoder shared = nat();
    ExecutorService pool = Executors.newFixedThreadPool(4);
    try {
      List<Future<?>> jobs = new ArrayList<>();
      for (int t = 0; t < 4; t++) {
        int seed = t;
        jobs.add(
            pool.submit(
                () -> {
                  Random rr = new Random(seed);
                  for (int k = 0; k < 60; k++) {
                    int i = rr.nextInt(files.size());
                    assertArrayEquals(want.get(i), shared.decode(Path.of("f" + i), files.get(i)).numpyBytes(), "file " + i);
                  }
                  return null;
                }));
      }
      for (Future<?> j : jobs) j.get();
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void theCodecIsChosenByNameOrProperty() {
    assertEquals(JpegCodec.NATIVE, nat().jpegCodec());
    assertEquals(JpegCodec.JAVA, java.jpegCodec());
    assertEquals(JpegCodec.NATIVE, new ImageDecoder(1000, 1000, JpegCodec.AUTO).jpegCodec());
    assertEquals(JpegCodec.JAVA, JpegCodec.parse("java"));
    assertEquals(JpegCodec.NATIVE, JpegCodec.parse(" Native "));
    assertEquals(JpegCodec.AUTO, JpegCodec.parse(null));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> JpegCodec.parse("turbo"));
    assertTrue(e.getMessage().contains("jclip.jpeg=turbo") && e.getMessage().contains("auto, native or java"), e.getMessage());
  }
}
