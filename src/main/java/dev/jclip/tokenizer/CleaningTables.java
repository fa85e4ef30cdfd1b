package dev.jclip.tokenizer;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.BitSet;
import java.util.HashMap;
import java.util.Map;

/**
 * The data the text cleaning needs, read once from {@code tables.txt} (generated from CPython's
 * {@code html.entities.html5} and ftfy 6.3.1's character tables by {@code
 * scripts/tokenizer/gen_tables.py}): HTML5 named character references, the single-byte code pages
 * ftfy re-decodes mojibake with, and the character classes of its heuristics. Immutable.
 */
final class CleaningTables {
  private static final String RESOURCE = "tables.txt";
  private static final CleaningTables INSTANCE = load();

  /** HTML5 entity names (with the ';' where they have one) to their replacement text. */
  final Map<String, String> html5;
  /** Code page name to its decode table: 256 code points, -1 where the byte is undefined. */
  final Map<String, int[]> charmaps;
  /** Named character classes ({@code badness.*}, {@code clues.*}). */
  final Map<String, BitSet> classes;

  private CleaningTables(
      Map<String, String> html5,
      Map<String, int[]> charmaps,
      Map<String, BitSet> classes) {
    this.html5 = Map.copyOf(html5);
    this.charmaps = Map.copyOf(charmaps);
    this.classes = Map.copyOf(classes);
  }

  static CleaningTables get() {
    return INSTANCE;
  }

  int[] charmap(String name) {
    int[] t = charmaps.get(name);
    if (t == null) throw new IllegalStateException(RESOURCE + " lacks the code page " + name);
    return t;
  }

  BitSet charClass(String name) {
    BitSet s = classes.get(name);
    if (s == null) throw new IllegalStateException(RESOURCE + " lacks the character class " + name);
    return s;
  }

  private static CleaningTables load() {
    Map<String, String> html5 = new HashMap<>(4096);
    Map<String, int[]> charmaps = new HashMap<>();
    Map<String, BitSet> classes = new HashMap<>();
    try (InputStream in = CleaningTables.class.getResourceAsStream(RESOURCE)) {
      if (in == null) throw new IllegalStateException("resource " + RESOURCE + " missing from the jar");
      BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
      int lineNo = 0;
      for (String line; (line = r.readLine()) != null; ) {
        lineNo++;
        if (line.isEmpty() || line.startsWith("#")) continue;
        String[] f = line.split("\t", -1);
        if (f.length != 3) throw new IllegalStateException(RESOURCE + " line " + lineNo + ": expected 3 fields");
        switch (f[0]) {
          case "entity" -> {
            StringBuilder sb = new StringBuilder();
            for (String cp : f[2].split(" ")) sb.appendCodePoint(Integer.parseInt(cp, 16));
            html5.put(f[1], sb.toString());
          }
          case "charmap" -> {
            String[] e = f[2].split(" ");
            if (e.length != 256) throw new IllegalStateException(RESOURCE + " line " + lineNo + ": code page needs 256 entries");
            int[] t = new int[256];
            for (int b = 0; b < 256; b++) t[b] = e[b].equals("-") ? -1 : Integer.parseInt(e[b], 16);
            charmaps.put(f[1], t);
          }
          case "class" -> {
            BitSet s = new BitSet(0x10000);
            for (String rng : f[2].split(" ")) {
              int dash = rng.indexOf('-');
              int lo = Integer.parseInt(dash < 0 ? rng : rng.substring(0, dash), 16);
              int hi = dash < 0 ? lo : Integer.parseInt(rng.substring(dash + 1), 16);
              s.set(lo, hi + 1);
            }
            classes.put(f[1], s);
          }
          default -> throw new IllegalStateException(RESOURCE + " line " + lineNo + ": unknown kind " + f[0]);
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read resource " + RESOURCE, e);
    }
    return new CleaningTables(html5, charmaps, classes);
  }
}
