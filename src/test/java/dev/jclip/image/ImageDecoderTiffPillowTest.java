package dev.jclip.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Pillow 9.4 as the oracle for TIFF: it writes files of every kind jclip decodes (and of kinds jclip
 * refuses) and reads those and the files {@link ImageDecoderTiffTest} builds (TestTiff and the JDK
 * writer: tiles, big-endian, planar, fill order 2, predictor, CCITT); for each it reports the mode,
 * size, pixel bytes, palette and the reference transform's output at 224 (Resize(224, bicubic) ->
 * CenterCrop(224) -> convert("RGB"), the torchvision sequence written with Pillow as
 * scripts/bench-preprocess-pillow.py does). jclip's decoding and {@link ClipPreprocessor#rgb8} must
 * give the same bytes, or jclip must refuse the file by name where Pillow opens a kind it does not
 * support. Skipped where /usr/bin/python3 (or python3) has no Pillow 9.4.
 */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class ImageDecoderTiffPillowTest {
  @TempDir Path tmp;

  static final String SCRIPT = """
      import hashlib, json, os, random, sys
      from PIL import Image
      indir, pildir, outdir, R = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
      rnd = random.Random(7)

      def content(mode, w, h):
          # A gradient with noise (runs for PackBits, structure for the predictor), alpha with 0 and 255.
          bands = {"1": 1, "L": 1, "LA": 2, "P": 3, "RGB": 3, "RGBA": 4, "CMYK": 4, "RGBX": 4, "I": 4}[mode]
          data = bytearray()
          for y in range(h):
              for x in range(w):
                  for b in range(bands):
                      v = (x * (3 + b) + y * (5 - b) + rnd.randrange(24)) & 255
                      if b == 3 or (mode == "LA" and b == 1):
                          v = rnd.choice((0, 255, v, v))
                      data.append(v)
          if mode == "1":
              return Image.frombytes("L", (w, h), bytes(data)).convert("1")
          if mode == "P":
              return Image.frombytes("RGB", (w, h), bytes(data)).quantize(rnd.choice((7, 60, 256)))
          if mode == "I":
              # 32-bit signed: values over the whole range, and some in 0..255
              ints = [int.from_bytes(data[i:i + 4], "little", signed=True) >> rnd.choice((0, 20, 24)) for i in range(0, len(data), 4)]
              im = Image.new("I", (w, h))
              im.putdata(ints)
              return im
          return Image.frombytes(mode, (w, h), bytes(data))

      sizes = [(1, 1), (37, 23), (250, 180), (64, 300), (301, 7)]
      n = 0
      for mode in ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "RGBX", "I"]:
          comps = [None, "tiff_lzw", "tiff_deflate", "tiff_adobe_deflate", "packbits"]
          if mode == "1":
              comps += ["group3", "group4", "tiff_ccitt"]
          for comp in comps:
              w, h = sizes[n % len(sizes)]
              n += 1
              content(mode, w, h).save(os.path.join(pildir, f"ok-{mode}-{comp or 'raw'}-{w}x{h}.tif"), compression=comp)
          if mode != "1":
              w, h = sizes[n % len(sizes)]
              n += 1
              for comp in ("tiff_lzw", "tiff_adobe_deflate"):
                  content(mode, w, h).save(os.path.join(pildir, f"ok-{mode}-{comp}-predictor-{w}x{h}.tif"), compression=comp, tiffinfo={317: 2})
      # Kinds jclip refuses: 16-bit unsigned or float gray, lossy JPEG, YCbCr, Lab, palette+alpha.
      g = content("L", 40, 30)
      rgb = content("RGB", 40, 30)
      refuse = {
          "i16": lambda: g.convert("I").point(lambda v: v * 200).convert("I;16"),
          "f32": lambda: g.convert("F"),
          "ycbcr": lambda: rgb.convert("YCbCr"),
          "lab": lambda: rgb.convert("LAB"),
          "pa": lambda: content("P", 40, 30).convert("PA"),
      }
      for name, make in refuse.items():
          try:
              make().save(os.path.join(pildir, f"refuse-{name}.tif"))
          except Exception as e:
              print(f"cannot write refuse-{name}.tif: {e!r}")
      rgb.save(os.path.join(pildir, "refuse-jpeg.tif"), compression="jpeg")

      """
      + PillowOracle.TRANSFORM
      + """

      with open(os.path.join(outdir, "manifest.jsonl"), "w") as m:
          for d in (indir, pildir):
              for f in sorted(os.listdir(d)):
                  rec = {"file": os.path.join(d, f), "name": f}
                  try:
                      im = Image.open(os.path.join(d, f))
                      im.load()
                      rec.update(mode=im.mode, width=im.size[0], height=im.size[1])
                      px = (im.convert("L") if im.mode == "1" else im).tobytes()
                      if im.mode == "RGBX":
                          px = im.convert("RGB").tobytes()  # jclip's RGB: X dropped
                      open(os.path.join(outdir, f + ".px"), "wb").write(px)
                      if im.mode == "P":
                          open(os.path.join(outdir, f + ".pal"), "wb").write(bytes(im.getpalette()))
                      if im.mode in ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "RGBX", "I"):
                          open(os.path.join(outdir, f + ".rgb8"), "wb").write(transform(im))
                  except Exception as e:
                      rec["error"] = repr(e)
                  m.write(json.dumps(rec) + "\\n")
      """;

  /** /usr/bin/python3 or python3 where it imports Pillow 9.4, else null. */
  static String pillow() throws InterruptedException {
    for (String python : new String[] {"/usr/bin/python3", "python3"}) {
      try {
        Process p = new ProcessBuilder(python, "-c", "import PIL; print(PIL.__version__)").redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
        if (p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0 && out.startsWith("9.4.")) return python;
      } catch (IOException e) {
        // not there: try the next
      }
    }
    return null;
  }

  @Test
  void decodingAndPreprocessingEqualPillows() throws Exception {
    String python = pillow();
    assumeTrue(python != null, "no python3 with Pillow 9.4");
    Path in = Files.createDirectories(tmp.resolve("in"));
    Path pil = Files.createDirectories(tmp.resolve("pillow"));
    Path out = Files.createDirectories(tmp.resolve("out"));
    // Files jclip must decode (the test's own, every supported kind), and edge cases where it may
    // refuse instead (whatever it does, it must not differ from Pillow).
    Map<String, Boolean> mustDecode = new TreeMap<>();
    List<ImageDecoderTiffTest.Case> built = new ArrayList<>(ImageDecoderTiffTest.builtCases(new Random(21)));
    built.addAll(ImageDecoderTiffTest.jdkCases(new Random(22)));
    built.addAll(ImageDecoderTiffTest.wideCases(new Random(25)));
    built.addAll(ImageDecoderTiffTest.headerCases(new Random(26)));
    for (ImageDecoderTiffTest.Case c : built) {
      Files.write(in.resolve(c.name()), c.file());
      mustDecode.put(c.name(), true);
    }
    for (Map.Entry<String, byte[]> e : planarCases(new Random(24)).entrySet()) {
      Files.write(in.resolve(e.getKey()), e.getValue());
      mustDecode.put(e.getKey(), true);
    }
    Map<String, byte[]> edges = edgeCases(new Random(23));
    edges.putAll(wideEdgeCases(new Random(27)));
    for (Map.Entry<String, byte[]> e : edges.entrySet()) {
      Files.write(in.resolve(e.getKey()), e.getValue());
      mustDecode.put(e.getKey(), false);
    }
    Files.writeString(tmp.resolve("oracle.py"), SCRIPT);
    Process p = new ProcessBuilder(python, tmp.resolve("oracle.py").toString(), in.toString(), pil.toString(), out.toString(), "224")
        .redirectErrorStream(true).redirectOutput(tmp.resolve("log.txt").toFile()).start();
    boolean ended = p.waitFor(240, TimeUnit.SECONDS);
    if (!ended) p.destroyForcibly().waitFor();
    String log = Files.readString(tmp.resolve("log.txt"));
    assertTrue(ended && p.exitValue() == 0, "oracle script failed:\n" + log);
    if (!log.isBlank()) System.out.println(log);

    ImageDecoder decoder = new ImageDecoder();
    ClipPreprocessor pre = new ClipPreprocessor(224);
    ObjectMapper json = new ObjectMapper();
    Map<String, Integer> comparedByMode = new TreeMap<>();
    List<String> refusedByJclip = new ArrayList<>();
    List<String> refusedByBoth = new ArrayList<>();
    List<String> failures = new ArrayList<>();
    PillowOracle.Tally tally = new PillowOracle.Tally();
    int pillowWritten = 0;
    try (Stream<String> lines = Files.lines(out.resolve("manifest.jsonl"))) {
      for (String line : (Iterable<String>) lines::iterator) {
        JsonNode rec = json.readTree(line);
        String name = rec.get("name").asText();
        Path file = Path.of(rec.get("file").asText());
        boolean fromPillow = file.startsWith(pil);
        if (fromPillow) pillowWritten++;
        boolean must = fromPillow ? name.startsWith("ok-") : mustDecode.get(name);
        DecodedImage im;
        try {
          im = decoder.decode(file);
        } catch (ImageDecodeException e) {
          if (!e.getMessage().startsWith(file + ": ")) failures.add(name + ": the message does not start with the file: " + e.getMessage());
          if (rec.has("error")) refusedByBoth.add(name);
          else if (must) failures.add(name + ": Pillow reads it as " + rec.get("mode").asText() + ", jclip refused: " + e.getMessage());
          else if (!e.getMessage().contains("is not supported")) failures.add(name + ": Pillow reads it, jclip: " + e.getMessage());
          else refusedByJclip.add(name + " (" + e.getMessage().substring(file.toString().length() + 2) + ")");
          continue;
        }
        if (rec.has("error")) {
          failures.add(name + ": Pillow cannot open it (" + rec.get("error").asText() + "), jclip decoded " + im);
          continue;
        }
        if (fromPillow && name.startsWith("refuse-")) failures.add(name + ": expected a refusal, decoded " + im);
        String mode = rec.get("mode").asText();
        // Pillow's RGBX is jclip's RGB (the oracle wrote its pixels converted to RGB).
        if (!(mode.equals("RGBX") ? "RGB" : mode).equals(im.mode().pillowName()) || rec.get("width").asInt() != im.width() || rec.get("height").asInt() != im.height()) {
          failures.add(name + ": Pillow " + mode + " " + rec.get("width") + "x" + rec.get("height") + ", jclip " + im);
          continue;
        }
        tally.pixels(out, name, im, mode, failures);
        tally.rgb8(out, name, pre.rgb8(im), failures);
        comparedByMode.merge(mode, 1, Integer::sum);
      }
    }
    int compared = comparedByMode.values().stream().mapToInt(Integer::intValue).sum();
    System.out.println("TIFF against Pillow 9.4: " + compared + " files compared " + comparedByMode + " (" + pillowWritten + " written by Pillow, the rest by the test), "
        + tally.summary() + "; refused by jclip where Pillow reads them: "
        + refusedByJclip.size() + "; refused by both: " + refusedByBoth);
    refusedByJclip.forEach(s -> System.out.println("  refused: " + s));
    assertEquals(List.of(), failures);
    assertTrue(compared >= mustDecode.values().stream().filter(b -> b).count() + 50, "compared only " + compared);
    for (String kind : new String[] {"i16", "f32", "ycbcr", "lab", "pa", "jpeg"}) {
      // Refused by jclip, or Pillow could not write it or read it back (YCbCr) and jclip refused it too.
      String f = "refuse-" + kind + ".tif";
      assertTrue(refusedByJclip.stream().anyMatch(s -> s.startsWith(f)) || refusedByBoth.contains(f) || log.contains(f), f);
    }
  }

  /**
   * Wide and extra-sample layouts where jclip may refuse (it must then match Pillow or refuse):
   * separate planes (uncompressed and Deflate), fill order 2, big-endian where Pillow has only
   * little-endian keys, 16-bit unsigned and 12-bit gray (I;16), float gray, palette+alpha, ExtraSamples
   * 999 on 16 bits, the predictor on uncompressed wide samples, swapped signatures on compressed
   * data, big-endian BigTIFF.
   */
  static Map<String, byte[]> wideEdgeCases(Random r) {
    Map<String, byte[]> files = new LinkedHashMap<>();
    int w = 29, h = 19;
    for (ImageDecoderTiffTest.Wide k : ImageDecoderTiffTest.WIDE) {
      for (int comp : new int[] {TestTiff.NONE, TestTiff.DEFLATE}) {
        if (k.samples() > 1) {
          TestTiff t = k.tiff(w, h);
          t.planar = 2;
          t.compression = comp;
          t.order = k.littleOnly() ? ByteOrder.LITTLE_ENDIAN : ByteOrder.BIG_ENDIAN;
          files.put("wedge-planar-" + k.name() + "-c" + comp + ".tif", filled(r, t));
        }
        TestTiff f = k.tiff(w, h);
        f.fillOrder = 2;
        f.compression = comp;
        files.put("wedge-fill2-" + k.name() + "-c" + comp + ".tif", filled(r, f));
        if (k.littleOnly() || (k.bits() == 32 && comp != TestTiff.NONE)) {
          TestTiff m = k.tiff(w, h);
          m.order = ByteOrder.BIG_ENDIAN;
          m.compression = comp;
          files.put("wedge-mm-" + k.name() + "-c" + comp + ".tif", filled(r, m));
        }
      }
      TestTiff p = k.tiff(w, h);
      p.predictor = 2;
      files.put("wedge-predictor-raw-" + k.name() + ".tif", filled(r, p));
    }
    for (int comp : new int[] {TestTiff.NONE, TestTiff.DEFLATE}) {
      for (ByteOrder order : new ByteOrder[] {ByteOrder.LITTLE_ENDIAN, ByteOrder.BIG_ENDIAN}) {
        String o = (order == ByteOrder.BIG_ENDIAN ? "-mm" : "-ii") + "-c" + comp + ".tif";
        for (int photo : new int[] {0, 1}) {
          for (int bits : new int[] {12, 16}) {
            TestTiff g = new TestTiff(w, h, photo, bits);
            g.order = order;
            g.compression = comp;
            if (bits == 12) {
              g.pixels(new byte[h * g.rowBytes(w)]);
              files.put("wedge-gray12-p" + photo + o, g.build());
            } else {
              files.put("wedge-gray16-p" + photo + o, filled(r, g));
            }
          }
          TestTiff f = new TestTiff(w, h, photo, 32);
          f.sampleFormat = 3;
          f.order = order;
          f.compression = comp;
          byte[] fl = new byte[w * h * 4];
          java.nio.ByteBuffer fb = java.nio.ByteBuffer.wrap(fl).order(order);
          for (int i = 0; i < w * h; i++) fb.putFloat(4 * i, (float) (r.nextGaussian() * 100 + 100));
          files.put("wedge-float-p" + photo + o, f.pixels(fl).build());
          TestTiff u = new TestTiff(w, h, photo, 32);
          u.order = order;
          u.compression = comp;
          files.put("wedge-uint32-p" + photo + o, filled(r, u));
        }
        TestTiff g16f2 = new TestTiff(w, h, 1, 16);
        g16f2.order = order;
        g16f2.compression = comp;
        g16f2.fillOrder = 2;
        files.put("wedge-gray16-fill2" + o, filled(r, g16f2));
        TestTiff pa = new TestTiff(w, h, 3, 8, 8);
        pa.extraSamples = new int[] {2};
        pa.order = order;
        pa.compression = comp;
        pa.colorMap = new int[768];
        for (int i = 0; i < 768; i++) pa.colorMap[i] = r.nextInt(65536);
        files.put("wedge-pa" + o, filled(r, pa));
        TestTiff corel = new TestTiff(w, h, 2, 16, 16, 16, 16);
        corel.extraSamples = new int[] {999};
        corel.order = order;
        corel.compression = comp;
        files.put("wedge-rgba16-999" + o, filled(r, corel));
        TestTiff s8 = new TestTiff(w, h, 1, 8);
        s8.sampleFormat = 2;
        s8.order = order;
        s8.compression = comp;
        files.put("wedge-int8s" + o, filled(r, s8));
      }
    }
    for (int comp : new int[] {TestTiff.LZW, TestTiff.DEFLATE, TestTiff.PACKBITS}) {
      for (ByteOrder order : new ByteOrder[] {ByteOrder.LITTLE_ENDIAN, ByteOrder.BIG_ENDIAN}) {
        TestTiff t = new TestTiff(w, h, 2, 8, 8, 8);
        t.order = order;
        t.compression = comp;
        t.signature = order == ByteOrder.LITTLE_ENDIAN ? new byte[] {'I', 'I', 0, 42} : new byte[] {'M', 'M', 42, 0};
        files.put("wedge-swapped-c" + comp + (order == ByteOrder.BIG_ENDIAN ? "-mm" : "-ii") + ".tif", filled(r, t));
      }
    }
    // Big-endian BigTIFF: TestTiff writes it little-endian, so this is a hand-made header over a
    // little-endian BigTIFF's body, enough for what Pillow and jclip do with it.
    TestTiff big = new TestTiff(w, h, 2, 8, 8, 8);
    big.bigTiff = true;
    byte[] b = filled(r, big);
    b[0] = b[1] = 'M';
    b[2] = 0;
    b[3] = 43;
    files.put("wedge-bigtiff-mm.tif", b);
    return files;
  }

  /** The file of {@code t} over random samples. */
  private static byte[] filled(Random r, TestTiff t) {
    byte[] px = new byte[t.height * (t.planar == 2 ? t.width * t.samples() * t.bits[0] / 8 : t.rowBytes(t.width))];
    r.nextBytes(px);
    return t.pixels(px).build();
  }

  /** Separate planes for every kind decoded from them, every compression, strips and tiles. */
  static Map<String, byte[]> planarCases(Random r) {
    Map<String, byte[]> files = new LinkedHashMap<>();
    int w = 45, h = 35;
    for (int comp : new int[] {TestTiff.NONE, TestTiff.PACKBITS, TestTiff.DEFLATE, TestTiff.ADOBE_DEFLATE}) {
      for (boolean tiles : new boolean[] {false, true}) {
        for (int kind = 0; kind < 3; kind++) {
          TestTiff t = kind == 0 ? new TestTiff(w, h, 2, 8, 8, 8) : kind == 1 ? new TestTiff(w, h, 2, 8, 8, 8, 8) : new TestTiff(w, h, 5, 8, 8, 8, 8);
          if (kind == 1) t.extraSamples = new int[] {2};
          t.planar = 2;
          t.compression = comp;
          t.order = tiles ? ByteOrder.BIG_ENDIAN : ByteOrder.LITTLE_ENDIAN;
          if (tiles) {
            t.tileWidth = 32;
            t.tileHeight = 16;
          } else {
            t.rowsPerStrip = 8;
          }
          if (comp == TestTiff.DEFLATE) t.predictor = 2;
          byte[] px = new byte[w * h * t.samples()];
          r.nextBytes(px);
          files.put("planar-" + new String[] {"rgb", "rgba", "cmyk"}[kind] + "-c" + comp + (tiles ? "-tiles" : "-strips") + ".tif", t.pixels(px).build());
        }
      }
    }
    return files;
  }

  /**
   * Layouts whose reading is a matter of interpretation (Pillow's, libtiff's, the reader's): jclip
   * must match Pillow or refuse. The horizontal predictor tag on uncompressed and PackBits data
   * (libtiff applies it only to LZW and Deflate), fill order 2 on compressed data, separate planes,
   * one-sample planar files, associated alpha in planes, predictor on low depths.
   */
  static Map<String, byte[]> edgeCases(Random r) {
    Map<String, byte[]> files = new LinkedHashMap<>();
    int w = 33, h = 21;
    for (int comp : new int[] {TestTiff.NONE, TestTiff.PACKBITS, TestTiff.DEFLATE}) {
      byte[] rgb = new byte[w * h * 3];
      r.nextBytes(rgb);
      TestTiff t = new TestTiff(w, h, 2, 8, 8, 8).pixels(rgb);
      t.compression = comp;
      t.predictor = 2;
      files.put("edge-rgb-predictor-c" + comp + ".tif", t.build());
      for (int bits : new int[] {1, 4, 8}) {
        for (int photo : new int[] {0, 1}) {
          byte[] g = new byte[h * ((w * bits + 7) / 8)];
          r.nextBytes(g);
          TestTiff f = new TestTiff(w, h, photo, bits).pixels(g);
          f.compression = comp;
          f.fillOrder = 2;
          files.put("edge-fill2-p" + photo + "-" + bits + "bit-c" + comp + ".tif", f.build());
          TestTiff pl = new TestTiff(w, h, photo, bits).pixels(g);
          pl.compression = comp;
          pl.planar = 2;
          files.put("edge-planar1-p" + photo + "-" + bits + "bit-c" + comp + ".tif", pl.build());
          if (bits < 8 && comp == TestTiff.DEFLATE) {
            TestTiff pr = new TestTiff(w, h, photo, bits).pixels(g);
            pr.compression = comp;
            pr.predictor = 2;
            files.put("edge-predictor-p" + photo + "-" + bits + "bit.tif", pr.build());
          }
        }
      }
      byte[] rgba = new byte[w * h * 4];
      r.nextBytes(rgba);
      TestTiff a = new TestTiff(w, h, 2, 8, 8, 8, 8).pixels(rgba);
      a.extraSamples = new int[] {1};
      a.planar = 2;
      a.compression = comp;
      files.put("edge-rgba-associated-planar-c" + comp + ".tif", a.build());
      TestTiff la = new TestTiff(w, h, 1, 8, 8);
      la.planar = 2;
      la.extraSamples = new int[] {2};
      la.compression = comp;
      byte[] lab = new byte[w * h * 2];
      r.nextBytes(lab);
      files.put("edge-la-planar-c" + comp + ".tif", la.pixels(lab).build());
      TestTiff cmyk = new TestTiff(w, h, 5, 8, 8, 8, 8);
      cmyk.planar = 2;
      cmyk.compression = comp;
      cmyk.order = ByteOrder.BIG_ENDIAN;
      files.put("edge-cmyk-planar-c" + comp + ".tif", cmyk.pixels(rgba).build());
    }
    return files;
  }
}
