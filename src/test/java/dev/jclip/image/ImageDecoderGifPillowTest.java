package dev.jclip.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
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
 * Pillow 9.4 as the oracle for GIF: it writes GIFs of its own and a script writes edge files byte
 * by byte (frames beyond the screen, empty frames, interlacing, colour tables, transparency,
 * extensions, every LZW code size, truncations and mutations of complete files, random code
 * streams, end codes on either side of Pillow's 64 KiB reads), and it reads those and the files of
 * {@link ImageDecoderGifTest}. For each, jclip must give Pillow's mode, size, pixels, palette and
 * the reference transform's output at 224, or refuse it where Pillow refuses it. The one kind jclip
 * refuses where Pillow opens it (a gray-ramp local colour table under a global one, which Pillow
 * reports as L over a palette image that its resize refuses) must be that kind. The files of
 * {@link ImageDecoderGifTest} must have the outcome their names give. Skipped where /usr/bin/python3
 * (or python3) has no Pillow 9.4.
 */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class ImageDecoderGifPillowTest {
  @TempDir Path tmp;

  static final String SCRIPT = """
      import json, os, random, struct, sys, io
      from PIL import Image
      indir, gendir, outdir, R = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
      rnd = random.Random(41)

      def widths(codes, bits):
          # the code widths a GIF decoder reads: bits + 1 after a clear, growing with the table
          clear = 1 << bits; out = []; first = True; nxt = clear + 2; cs = bits + 1
          for c in codes:
              out.append((c, cs))
              if c == clear: nxt = clear + 2; cs = bits + 1; first = True
              elif c == clear + 1: pass
              elif first: first = False
              elif nxt < 4096:
                  if nxt == (1 << cs) - 1 and cs < 12: cs += 1
                  nxt += 1
          return out

      def pack(codes, bits):
          acc = n = 0; out = bytearray()
          for c, w in widths(codes, bits):
              acc |= c << n; n += w
              while n >= 8: out.append(acc & 255); acc >>= 8; n -= 8
          if n: out.append(acc & 255)
          return bytes(out)

      def lzw(px, bits, eoi=True):
          clear = 1 << bits; codes = [clear]; table = {(i,): i for i in range(clear)}; nxt = clear + 2; w = ()
          for p in px:
              if w + (p,) in table: w = w + (p,); continue
              codes.append(table[w])
              if nxt < 4096: table[w + (p,)] = nxt; nxt += 1
              else: codes.append(clear); table = {(i,): i for i in range(clear)}; nxt = clear + 2
              w = (p,)
          if w: codes.append(table[w])
          if eoi: codes.append(clear + 1)
          return codes

      def blocks(data, size=255, terminator=True):
          out = bytearray()
          for i in range(0, len(data), size): out.append(len(data[i:i + size])); out += data[i:i + size]
          if terminator: out.append(0)
          return bytes(out)

      def gif(sw, sh, frame=None, gpal=None, lpal=None, trans=None, bits=8, data=b"\\0", interlace=False, pre=b"", post=b";"):
          x0, y0, w, h = frame or (0, 0, sw, sh)
          out = bytearray(b"GIF89a")
          flags = 0 if gpal is None else 0x80 | ((len(gpal) // 3).bit_length() - 2)
          out += struct.pack("<HHBBB", sw, sh, flags, 0, 0)
          if gpal is not None: out += gpal
          out += pre
          if trans is not None: out += bytes([0x21, 0xF9, 4, 1, 0, 0, trans, 0])
          lflags = (0x40 if interlace else 0) | (0 if lpal is None else 0x80 | ((len(lpal) // 3).bit_length() - 2))
          out += b"," + struct.pack("<HHHHB", x0, y0, w, h, lflags)
          if lpal is not None: out += lpal
          out.append(bits)
          return bytes(out + data + post)

      def rpal(n): return bytes(rnd.randrange(256) for _ in range(3 * n))
      ramp = bytes(i // 3 for i in range(768))
      def content(n, k): return [(i // 3 + i // 29) % k if rnd.random() < 0.7 else rnd.randrange(k) for i in range(n)]
      def put(name, b): open(os.path.join(gendir, name), "wb").write(b)

      # Pillow's own GIFs
      for w, h in [(1, 1), (7, 5), (64, 48), (301, 13), (13, 301), (200, 150)]:
          rgb = Image.frombytes("RGB", (w, h), bytes(rnd.randrange(256) for _ in range(w * h * 3)))
          for mode in ("P", "L"):
              im = rgb.quantize(rnd.choice((2, 7, 60, 256))) if mode == "P" else rgb.convert("L")
              for inter in (False, True):
                  b = io.BytesIO(); im.save(b, "GIF", interlace=inter); put(f"pil-{mode}-{w}x{h}-i{int(inter)}.gif", b.getvalue())
      # frames and screens
      for sw, sh, x0, y0, w, h in [(6, 4, 2, 1, 3, 2), (6, 4, 4, 3, 3, 2), (6, 4, 10, 8, 2, 2), (6, 4, 0, 0, 8, 5), (6, 4, 3, 2, 8, 5),
                                   (0, 0, 0, 0, 3, 2), (0, 0, 1, 1, 3, 2), (6, 4, 0, 0, 0, 2), (6, 4, 0, 1, 0, 2), (6, 4, 0, 3, 0, 3),
                                   (6, 4, 0, 0, 2, 0), (6, 4, 1, 0, 0, 2), (6, 4, 0, 0, 0, 0), (0, 0, 0, 0, 0, 0), (6, 4, 0, 0, 0, 5),
                                   (40, 30, 7, 5, 20, 12), (300, 200, 290, 190, 20, 20)]:
          for trans in (None, 7):
              for inter in (False, True):
                  n = max(w, 1) * max(h, 1)
                  if w == 0 and x0 == 0: n = max(w, sw) * max(y0 + h, sh)
                  px = content(max(n, 1), 200)
                  for extra in (0, 6):
                      put(f"geo-{sw}x{sh}-{x0},{y0}-{w}x{h}-t{trans}-i{int(inter)}-x{extra}.gif",
                          gif(sw, sh, (x0, y0, w, h), rpal(256), trans=trans, interlace=inter, data=blocks(pack(lzw(px + px[:extra], 8), 8))))
      # colour tables
      px = content(63, 8)
      d = blocks(pack(lzw(px, 8), 8))
      tables = {"none": None, "ramp256": ramp, "ramp4": ramp[:12], "ramp2": ramp[:6], "pal2": rpal(2), "pal8": rpal(8), "pal256": rpal(256), "nearramp": ramp[:21] + bytes([7, 7, 8])}
      for gn, gp in tables.items():
          for ln in ("none", "ramp4", "pal8", "pal256"):
              for trans in (None, 5):
                  put(f"tables-g{gn}-l{ln}-t{trans}.gif", gif(9, 7, None, gp, tables[ln], trans, data=d))
      # LZW code sizes: Pillow-style codes, literals only, random codes
      for bits in range(0, 14):
          k = 1 << bits
          for v in range(3):
              if v == 0: codes = lzw(content(55, min(k, 256)), bits) if bits <= 12 else [0, 1, 2]
              elif v == 1: codes = [min(k, 4096)] + [rnd.randrange(k) for _ in range(60)] + [k + 1]
              else: codes = [rnd.randrange(k + 8) for _ in range(80)]
              put(f"bits{bits}-v{v}.gif", gif(11, 5, None, rpal(256), bits=bits, data=blocks(pack(codes, min(bits, 12)))))
      # extensions and bytes before the frame
      ext = {"gce0": [0x21, 0xF9, 0], "gce1": [0x21, 0xF9, 1, 0, 0], "gce2": [0x21, 0xF9, 2, 0, 0, 0], "gce3": [0x21, 0xF9, 3, 0, 0, 0, 0],
             "gce3flag": [0x21, 0xF9, 3, 1, 0, 0, 0], "gce6": [0x21, 0xF9, 6, 1, 0, 0, 5, 9, 9, 2, 7, 7, 0],
             "gce9-then-noflag": [0x21, 0xF9, 4, 1, 0, 0, 9, 0, 0x21, 0xF9, 4, 0, 0, 0, 3, 0], "app0": [0x21, 0xFF, 0],
             "appns0": [0x21, 0xFF, 11] + list(b"NETSCAPE2.0") + [0], "appns": [0x21, 0xFF, 11] + list(b"NETSCAPE2.0") + [3, 1, 0, 0, 0],
             "appns12": [0x21, 0xFF, 12] + list(b"NETSCAPE2.0x") + [0], "appns10": [0x21, 0xFF, 10] + list(b"NETSCAPE2.") + [0],
             "comment": [0x21, 0xFE, 3, 97, 98, 99, 2, 100, 101, 0], "comment0": [0x21, 0xFE, 0], "plain": [0x21, 0x01, 12] + [0] * 12 + [0],
             "unknown0": [0x21, 0x33, 0], "unknown0-then-block": [0x21, 0x33, 0, 2, 1, 1, 0], "junk": [0, 1, 255, 120], "trailer": [59], "bang": [33]}
      px = content(24, 8)
      for name, pre in ext.items():
          put(f"ext-{name}.gif", gif(8, 6, (1, 1, 6, 4), rpal(256), pre=bytes(pre), data=blocks(pack(lzw(px, 8), 8))))
      for v in (b"GIF87a", b"GIF88a", b"GIF89b"):
          put(f"sig-{v.decode()}.gif", v + gif(8, 6, (1, 1, 6, 4), rpal(256), data=blocks(pack(lzw(px, 8), 8)))[6:])
      # cuts and mutations of complete files
      bases = {"p": gif(40, 30, (7, 5, 20, 12), rpal(256), rpal(16), 7, data=blocks(pack(lzw(content(240, 16), 8), 8), 50), interlace=True),
               "q": gif(64, 48, None, rpal(64), bits=6, data=blocks(pack(lzw(content(64 * 48, 64), 6), 6)))}
      for name, b in bases.items():
          put(f"base-{name}.gif", b)
          for c in sorted(set([4, 10, 12, 13, 14, len(b) // 3, len(b) // 2, len(b) - 3, len(b) - 2, len(b) - 1] + [rnd.randrange(4, len(b)) for _ in range(12)])):
              put(f"cut{c}-{name}.gif", b[:c])
          for m in range(20):
              bb = bytearray(b)
              for _ in range(rnd.choice((1, 2, 5))): bb[rnd.randrange(13, len(bb))] = rnd.randrange(256)
              put(f"mut{m}-{name}.gif", bytes(bb))
      # random code streams and random bytes as LZW data
      for i in range(150):
          w, h, bits = rnd.randrange(1, 40), rnd.randrange(1, 30), rnd.choice((0, 1, 2, 3, 4, 6, 8, 8, 9, 11, 12))
          kind = rnd.randrange(3)
          if kind == 0:
              data = blocks(bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 800))), rnd.choice((255, 1, 60)))
          else:
              clear = 1 << bits; codes = [clear]; nxt = clear + 2; first = True
              for _ in range(rnd.randrange(10, 2000)):
                  r = rnd.random()
                  if r < 0.003: codes.append(clear + 1); continue
                  if r < 0.02: codes.append(clear); nxt = clear + 2; first = True; continue
                  if first: codes.append(rnd.randrange(clear)); first = False; continue
                  c = rnd.randrange(min(nxt, 4095) + (2 if kind == 2 else 1))
                  codes.append(0 if c in (clear, clear + 1) else c)
                  if nxt < 4096: nxt += 1
              data = blocks(pack(codes, bits), rnd.choice((255, 3, 77)))
          put(f"rnd{i}-b{bits}.gif", gif(w + rnd.choice((0, 3)), h, (rnd.choice((0, 2)), rnd.choice((0, 1)), w, h), rpal(256), bits=bits,
                                         interlace=rnd.random() < 0.3, data=data, post=rnd.choice((b";", b"", b";" + bytes(50)))))
      # end codes on either side of Pillow's 64 KiB reads
      W, H = 400, 300
      px = [rnd.randrange(256) for _ in range(W * H)]
      codes = lzw(px, 8); pal = rpal(256)
      ends, pos = [], 0
      for c, w in widths(codes, 8): pos += w; ends.append(pos)
      put("big.gif", gif(W, H, None, pal, data=blocks(pack(codes, 8))))
      total = len(blocks(pack(codes, 8)))
      for boundary in (65536, 131072, total - 100):
          for delta in (-300, -3, 0, 3, 300):
              target = (boundary + delta) * 8 * 255 // 256
              at = next((i for i, p in enumerate(ends) if p >= target), len(codes) - 1)
              put(f"big-end-{boundary}{delta:+d}.gif", gif(W, H, None, pal, data=blocks(pack(codes[:at] + [257] + codes[at:], 8))))
      small = gif(16, 8, None, pal, data=blocks(pack(lzw(px[:64], 8)[:20] + [257] + lzw(px[:128], 8)[20:], 8)))
      for junk in (60000, 65400, 65536, 65600, 70000):
          put(f"small-end-junk{junk}.gif", small + bytes(junk))

      """
      + PillowOracle.TRANSFORM
      + """

      with open(os.path.join(outdir, "manifest.jsonl"), "w") as m:
          for d in (indir, gendir):
              for f in sorted(os.listdir(d)):
                  rec = {"file": os.path.join(d, f), "name": f}
                  try:
                      im = Image.open(os.path.join(d, f))
                      im.load()
                      rec.update(mode=im.mode, core=im.im.mode, width=im.size[0], height=im.size[1])
                      open(os.path.join(outdir, f + ".px"), "wb").write(im.tobytes())
                      if im.mode == "P":
                          open(os.path.join(outdir, f + ".pal"), "wb").write(bytes(im.getpalette()))
                      try:
                          open(os.path.join(outdir, f + ".rgb8"), "wb").write(transform(im))
                      except Exception as e:
                          rec["transform_error"] = repr(e)
                  except Exception as e:
                      rec["error"] = repr(e)
                  m.write(json.dumps(rec) + "\\n")
      """;

  @Test
  void decodingAndPreprocessingEqualPillows() throws Exception {
    String python = ImageDecoderTiffPillowTest.pillow();
    assumeTrue(python != null, "no python3 with Pillow 9.4");
    Path in = Files.createDirectories(tmp.resolve("in"));
    Path gen = Files.createDirectories(tmp.resolve("gen"));
    Path out = Files.createDirectories(tmp.resolve("out"));
    Map<String, byte[]> cases = ImageDecoderGifTest.cases(new Random(51));
    for (Map.Entry<String, byte[]> e : cases.entrySet()) Files.write(in.resolve(e.getKey()), e.getValue());
    Files.writeString(tmp.resolve("oracle.py"), SCRIPT);
    Process p = new ProcessBuilder(python, tmp.resolve("oracle.py").toString(), in.toString(), gen.toString(), out.toString(), "224")
        .redirectErrorStream(true).redirectOutput(tmp.resolve("log.txt").toFile()).start();
    boolean ended = p.waitFor(240, TimeUnit.SECONDS);
    if (!ended) p.destroyForcibly().waitFor();
    String log = Files.readString(tmp.resolve("log.txt"));
    assertTrue(ended && p.exitValue() == 0, "oracle script failed:\n" + log);

    ImageDecoder decoder = new ImageDecoder();
    ClipPreprocessor pre = new ClipPreprocessor(224);
    ObjectMapper json = new ObjectMapper();
    Map<String, Integer> comparedByMode = new TreeMap<>();
    Map<String, Integer> refusedByBoth = new TreeMap<>();
    List<String> refusedByJclip = new ArrayList<>();
    List<String> failures = new ArrayList<>();
    PillowOracle.Tally tally = new PillowOracle.Tally();
    int files = 0;
    try (Stream<String> lines = Files.lines(out.resolve("manifest.jsonl"))) {
      for (String line : (Iterable<String>) lines::iterator) {
        files++;
        JsonNode rec = json.readTree(line);
        String name = rec.get("name").asText();
        Path file = Path.of(rec.get("file").asText());
        boolean pillowReads = !rec.has("error");
        // Pillow's "L" over a "P" image: the gray-ramp local table under a global one.
        boolean quirk = pillowReads && !rec.get("mode").asText().equals(rec.get("core").asText());
        if (file.startsWith(in) && pillowReads != name.endsWith(".ok.gif") && !(quirk && name.endsWith(".bad.gif"))) {
          failures.add(name + ": the test expects " + (name.endsWith(".ok.gif") ? "decoding" : "a refusal") + ", Pillow: " + (pillowReads ? rec.get("mode").asText() : rec.get("error").asText()));
        }
        DecodedImage im;
        try {
          im = decoder.decode(file);
        } catch (ImageDecodeException e) {
          if (!e.getMessage().startsWith(file + ": ")) failures.add(name + ": the message does not start with the file: " + e.getMessage());
          if (!pillowReads) {
            String err = rec.get("error").asText();
            refusedByBoth.merge(err.contains("truncated") ? "truncated" : err.contains("broken") ? "broken" : err.replaceAll("[(<'].*", ""), 1, Integer::sum);
          } else if (quirk && e.getMessage().contains("is not supported")) {
            refusedByJclip.add(name + " (Pillow: " + rec.get("mode").asText() + " over " + rec.get("core").asText() + ", transform at 224: "
                + (rec.has("transform_error") ? rec.get("transform_error").asText() : "ok") + ")");
          } else {
            failures.add(name + ": Pillow reads it as " + rec.get("mode").asText() + ", jclip refused: " + e.getMessage());
          }
          continue;
        }
        if (!pillowReads) {
          failures.add(name + ": Pillow cannot read it (" + rec.get("error").asText() + "), jclip decoded " + im);
          continue;
        }
        String mode = rec.get("mode").asText();
        if (quirk || !mode.equals(im.mode().pillowName()) || rec.get("width").asInt() != im.width() || rec.get("height").asInt() != im.height()) {
          failures.add(name + ": Pillow " + mode + " (" + rec.get("core").asText() + ") " + rec.get("width") + "x" + rec.get("height") + ", jclip " + im);
          continue;
        }
        tally.pixels(out, name, im, mode, failures);
        if (rec.has("transform_error")) {
          failures.add(name + ": Pillow's transform failed (" + rec.get("transform_error").asText() + ")");
          continue;
        }
        tally.rgb8(out, name, pre.rgb8(im), failures);
        comparedByMode.merge(mode, 1, Integer::sum);
      }
    }
    int compared = comparedByMode.values().stream().mapToInt(Integer::intValue).sum();
    System.out.println("GIF against Pillow 9.4: " + files + " files (" + cases.size() + " from ImageDecoderGifTest), " + compared + " decoded by both " + comparedByMode + ", "
        + tally.summary() + "; refused by both: " + refusedByBoth
        + "; refused by jclip only: " + refusedByJclip.size());
    refusedByJclip.forEach(s -> System.out.println("  refused: " + s));
    assertEquals(List.of(), failures);
    assertTrue(compared >= 300, "compared only " + compared);
    assertTrue(refusedByBoth.getOrDefault("truncated", 0) >= 50 && refusedByBoth.getOrDefault("broken", 0) >= 20, refusedByBoth.toString());
    assertTrue(refusedByJclip.stream().allMatch(s -> s.startsWith("tables-")), refusedByJclip.toString());
  }
}
