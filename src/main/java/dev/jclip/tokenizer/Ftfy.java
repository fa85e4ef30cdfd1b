package dev.jclip.tokenizer;

import java.text.Normalizer;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A port of {@code ftfy.fix_text} (ftfy 6.3.1) with its default configuration, which the
 * reference tokenizer applies to every text.
 *
 * <p>Ported: the split into lines (segments of at most 1,000,000 code points), ftfy's own {@code
 * unescape_html} (only entities that end in ';', plus upper-cased Latin ones, and only until a
 * segment contains '<'), {@code fix_encoding} (mojibake detection with the {@code badness}
 * heuristic, re-encoding in latin-1, the sloppy Windows code pages 1250-1254 and 1257,
 * ISO-8859-2, MacRoman and CP437, {@code restore_byte_a0}, {@code replace_lossy_sequences}, the
 * {@code utf-8-variants} decoder for CESU-8 and Java-style NUL, {@code decode_inconsistent_utf8},
 * the latin-1 to windows-1252 step, {@code fix_c1_controls}), {@code fix_latin_ligatures}, {@code
 * fix_character_width}, {@code uncurl_quotes}, {@code fix_line_breaks}, {@code fix_surrogates},
 * {@code remove_terminal_escapes}, {@code remove_control_chars} and NFC, repeated until the text
 * no longer changes.
 *
 * <p>Not ported or different:
 *
 * <ul>
 *   <li>Unicode versions: NFC, NFKC (for the width map) and the {@code \w} class use Java's
 *       Unicode 16 tables where the reference uses Python 3.11's Unicode 14; this only matters
 *       for characters assigned after Unicode 14.
 *   <li>In the {@code utf-8-variants} codec, ftfy's regular expressions accept {@code $} before a
 *       final newline as the end of the bytes; this port treats only the real end as the end.
 *   <li>The fix-until-stable loops stop after {@value #MAX_ROUNDS} rounds (ftfy has no bound).
 *   <li>Java strings carry lone surrogates only where Python would see unpaired ones; a valid
 *       pair is one character, exactly like Python's non-BMP characters, so {@code fix_surrogates}
 *       only has to replace lone surrogates with U+FFFD.
 * </ul>
 */
final class Ftfy {
  private Ftfy() {}

  static final int MAX_DECODE_LENGTH = 1_000_000;
  static final int MAX_ROUNDS = 64;

  private static final List<String> CHARMAP_ENCODINGS =
      List.of(
          "latin-1",
          "sloppy-windows-1252",
          "sloppy-windows-1251",
          "sloppy-windows-1250",
          "sloppy-windows-1253",
          "sloppy-windows-1254",
          "sloppy-windows-1257",
          "iso-8859-2",
          "macroman",
          "cp437");

  private static final CleaningTables T = CleaningTables.get();
  /** Code page name to its encoder: char to byte, -1 where the char is not in the code page. */
  private static final Map<String, short[]> ENCODERS = buildEncoders();
  private static final Map<String, String> FTFY_ENTITIES = buildFtfyEntities();
  private static final Pattern HTML_ENTITY_RE = Pattern.compile("&#?[0-9A-Za-z]{1,24};");
  private static final Pattern ANSI_RE = Pattern.compile("\u001b\\[[\\p{Nd};]*[a-zA-Z]");
  private static final BitSet FIRST_OF_2 = T.charClass("clues.utf8_first_of_2");
  private static final BitSet FIRST_OF_3 = T.charClass("clues.utf8_first_of_3");
  private static final BitSet FIRST_OF_4 = T.charClass("clues.utf8_first_of_4");
  private static final BitSet CONTINUATION = T.charClass("clues.utf8_continuation");
  private static final BitSet CONTINUATION_STRICT = T.charClass("clues.utf8_continuation_strict");
  // Byte-level expressions, matched on bytes held as ISO-8859-1 strings.
  private static final Pattern ALTERED_UTF8_RE =
      Pattern.compile(
          "[\\xc2\\xc3\\xc5\\xce\\xd0\\xd9] "
              + "|[\\xe2\\xe3] [\\x80-\\x84\\x86-\\x9f\\xa1-\\xbf]"
              + "|[\\xe0-\\xe3][\\x80-\\x84\\x86-\\x9f\\xa1-\\xbf] "
              + "|\\xf0 [\\x80-\\xbf][\\x80-\\xbf]"
              + "|\\xf0[\\x80-\\xbf] [\\x80-\\xbf]"
              + "|\\xf0[\\x80-\\xbf][\\x80-\\xbf] ");
  private static final Pattern A_GRAVE_WORD_RE = Pattern.compile("\\xc3 (?! |quele|quela|quilo|s )");
  private static final Pattern LOSSY_UTF8_RE =
      Pattern.compile(
          "[\\xc2-\\xdf][\\x1a]"
              + "|[\\xc2-\\xc3][?]"
              + "|\\xed[\\xa0-\\xaf][\\x1a?]\\xed[\\xb0-\\xbf][\\x1a?\\x80-\\xbf]"
              + "|\\xed[\\xa0-\\xaf][\\x1a?\\x80-\\xbf]\\xed[\\xb0-\\xbf][\\x1a?]"
              + "|[\\xe0-\\xef][\\x1a?][\\x1a\\x80-\\xbf]"
              + "|[\\xe0-\\xef][\\x1a\\x80-\\xbf][\\x1a?]"
              + "|[\\xf0-\\xf4][\\x1a?][\\x1a\\x80-\\xbf][\\x1a\\x80-\\xbf]"
              + "|[\\xf0-\\xf4][\\x1a\\x80-\\xbf][\\x1a?][\\x1a\\x80-\\xbf]"
              + "|[\\xf0-\\xf4][\\x1a\\x80-\\xbf][\\x1a\\x80-\\xbf][\\x1a?]"
              + "|\\x1a");
  private static final Map<Integer, String> LIGATURES = buildLigatures();
  private static final String[] WIDTH_MAP = buildWidthMap();

  /** {@code ftfy.fix_text(text)} with the default configuration. */
  static String fixText(String text) {
    if (isTriviallyClean(text)) return text;
    StringBuilder out = new StringBuilder(text.length());
    boolean unescapeHtml = true;
    int pos = 0;
    int n = text.length();
    while (pos < n) {
      int brk = text.indexOf('\n', pos) + 1;
      if (brk == 0) brk = n;
      if (text.codePointCount(pos, brk) > MAX_DECODE_LENGTH) brk = text.offsetByCodePoints(pos, MAX_DECODE_LENGTH);
      String segment = text.substring(pos, brk);
      // "auto": once a segment contains '<' (real HTML), entities stay as they are from then on.
      if (unescapeHtml && segment.indexOf('<') >= 0) unescapeHtml = false;
      out.append(fixSegment(segment, unescapeHtml));
      pos = brk;
    }
    return out.toString();
  }

  /**
   * True when no step of fix_text can change the text: printable ASCII without '&', plus tab,
   * line feed and form feed.
   */
  static boolean isTriviallyClean(String text) {
    for (int i = 0, n = text.length(); i < n; i++) {
      char c = text.charAt(i);
      if (c >= 0x20 ? (c >= 0x7F || c == '&') : (c != '\n' && c != '\t' && c != '\f')) return false;
    }
    return true;
  }

  /** {@code fix_and_explain} for one segment. */
  private static String fixSegment(String text, boolean unescapeHtml) {
    if (unescapeHtml && text.indexOf('<') >= 0) unescapeHtml = false;
    for (int round = 0; round < MAX_ROUNDS; round++) {
      String orig = text;
      if (unescapeHtml) text = unescapeHtml(text);
      text = fixEncoding(text);
      text = fixC1Controls(text);
      text = fixLatinLigatures(text);
      text = fixCharacterWidth(text);
      text = uncurlQuotes(text);
      text = fixLineBreaks(text);
      text = fixSurrogates(text);
      text = removeTerminalEscapes(text);
      text = removeControlChars(text);
      text = Normalizer.normalize(text, Normalizer.Form.NFC);
      if (text.equals(orig)) return text;
    }
    return text;
  }

  // ---------------------------------------------------------------- unescape_html

  static String unescapeHtml(String text) {
    if (text.indexOf('&') < 0) return text;
    Matcher m = HTML_ENTITY_RE.matcher(text);
    return m.replaceAll(r -> Matcher.quoteReplacement(unescapeOne(r.group())));
  }

  private static String unescapeOne(String entity) {
    String v = FTFY_ENTITIES.get(entity);
    if (v != null) return v;
    if (entity.startsWith("&#")) {
      String unescaped = HtmlUnescape.unescape(entity);
      // Only a reference that consumed its ';' counts.
      return unescaped.indexOf(';') >= 0 ? entity : unescaped;
    }
    return entity;
  }

  private static Map<String, String> buildFtfyEntities() {
    Map<String, String> out = new HashMap<>();
    for (var e : T.html5.entrySet()) {
      String name = e.getKey();
      if (!name.endsWith(";")) continue;
      out.put("&" + name, e.getValue());
    }
    for (var e : T.html5.entrySet()) {
      String name = e.getKey();
      if (!name.endsWith(";") || !name.equals(name.toLowerCase(Locale.ROOT))) continue;
      // Upper-cased names are decoded only where they are not themselves (a prefix of) an entity.
      String upper = "&" + name.toUpperCase(Locale.ROOT);
      if (HtmlUnescape.unescape(upper).equals(upper)) {
        out.putIfAbsent(upper, e.getValue().toUpperCase(Locale.ROOT));
      }
    }
    return Map.copyOf(out);
  }

  // ---------------------------------------------------------------- fix_encoding

  static String fixEncoding(String text) {
    for (int round = 0; round < MAX_ROUNDS; round++) {
      String prev = text;
      text = fixEncodingOneStep(text);
      if (text.equals(prev)) return text;
    }
    return text;
  }

  private static String fixEncodingOneStep(String text) {
    if (text.isEmpty() || isAscii(text) || !isBad(text)) return text;
    boolean latin1Possible = false;
    for (String encoding : CHARMAP_ENCODINGS) {
      byte[] bytes = encode(text, encoding);
      if (bytes == null) continue;
      if (encoding.equals("latin-1")) latin1Possible = true;
      String b = latin1(bytes);
      if (!encoding.equals("macroman") && ALTERED_UTF8_RE.matcher(b).find()) b = restoreByteA0(b);
      if (encoding.startsWith("sloppy")) b = LOSSY_UTF8_RE.matcher(b).replaceAll("\u00ef\u00bf\u00bd");
      boolean variants = b.indexOf('\u00ed') >= 0 || b.indexOf('\u00c0') >= 0;
      String fixed = Utf8.decodeStrict(b.getBytes(java.nio.charset.StandardCharsets.ISO_8859_1), variants);
      if (fixed != null) return fixed;
    }
    if (hasUtf8Clue(text)) {
      String fixed = decodeInconsistentUtf8(text);
      if (!fixed.equals(text)) return fixed;
    }
    if (latin1Possible) {
      // "windows-1252" is never among the candidates (only its sloppy variant is), so ftfy always
      // tries strict windows-1252 here.
      String fixed = decodeCharmap(encode(text, "latin-1"), "windows-1252");
      if (fixed != null && !fixed.equals(text)) return fixed;
    }
    if (hasC1(text)) return fixC1Controls(text);
    return text;
  }

  private static boolean isAscii(String text) {
    for (int i = 0, n = text.length(); i < n; i++) if (text.charAt(i) >= 0x80) return false;
    return true;
  }

  /** {@code badness.is_bad}: whether the text contains a sequence typical of mojibake. */
  static boolean isBad(String text) {
    return Badness.isBad(text);
  }

  /** The bytes of {@code text} in a code page, or null if some character is not in it. */
  private static byte[] encode(String text, String encoding) {
    short[] enc = ENCODERS.get(encoding);
    byte[] out = new byte[text.length()];
    for (int i = 0; i < out.length; i++) {
      char c = text.charAt(i);
      int b = c < enc.length ? enc[c] : -1;
      if (b < 0) return null;
      out[i] = (byte) b;
    }
    return out;
  }

  private static String decodeCharmap(byte[] bytes, String encoding) {
    int[] table = T.charmap(encoding);
    StringBuilder sb = new StringBuilder(bytes.length);
    for (byte x : bytes) {
      int cp = table[x & 0xFF];
      if (cp < 0) return null;
      sb.appendCodePoint(cp);
    }
    return sb.toString();
  }

  private static Map<String, short[]> buildEncoders() {
    Map<String, short[]> out = new HashMap<>();
    for (String name : T.charmaps.keySet()) {
      int[] table = T.charmap(name);
      int max = 0;
      for (int cp : table) max = Math.max(max, cp);
      short[] enc = new short[max + 1];
      java.util.Arrays.fill(enc, (short) -1);
      for (int b = 0; b < 256; b++) if (table[b] >= 0) enc[table[b]] = (short) b;
      out.put(name, enc);
    }
    return Map.copyOf(out);
  }

  private static String latin1(byte[] bytes) {
    return new String(bytes, java.nio.charset.StandardCharsets.ISO_8859_1);
  }

  /** {@code restore_byte_a0}, on bytes held as an ISO-8859-1 string. */
  private static String restoreByteA0(String b) {
    b = A_GRAVE_WORD_RE.matcher(b).replaceAll("\u00c3\u00a0 ");
    return ALTERED_UTF8_RE.matcher(b).replaceAll(r -> r.group().replace(' ', '\u00a0'));
  }

  // ---------------------------------------------------------------- decode_inconsistent_utf8

  /** Whether {@code UTF8_DETECTOR_RE} matches anywhere. */
  private static boolean hasUtf8Clue(String text) {
    for (int i = 0, n = text.length(); i < n; i++) {
      if (utf8ClueEnd(text, i) > i) return true;
    }
    return false;
  }

  /**
   * The end of a {@code UTF8_DETECTOR_RE} match starting at {@code i}, or {@code i}: not preceded
   * by a strict continuation character, one or more units of a lead character and 1..3
   * continuation characters. A hand-written scanner, so a long run cannot overflow the stack.
   */
  private static int utf8ClueEnd(String text, int i) {
    if (i > 0 && CONTINUATION_STRICT.get(text.charAt(i - 1))) return i;
    int n = text.length();
    int j = i;
    while (j < n) {
      char c = text.charAt(j);
      int k;
      if (FIRST_OF_2.get(c) && continuations(text, j + 1, 1)) k = 2;
      else if (FIRST_OF_3.get(c) && continuations(text, j + 1, 2)) k = 3;
      else if (FIRST_OF_4.get(c) && continuations(text, j + 1, 3)) k = 4;
      else break;
      j += k;
    }
    return j;
  }

  private static boolean continuations(String text, int from, int count) {
    if (from + count > text.length()) return false;
    for (int i = from; i < from + count; i++) if (!CONTINUATION.get(text.charAt(i))) return false;
    return true;
  }

  static String decodeInconsistentUtf8(String text) {
    StringBuilder out = new StringBuilder(text.length());
    int n = text.length();
    int i = 0;
    while (i < n) {
      int end = utf8ClueEnd(text, i);
      if (end > i) {
        String sub = text.substring(i, end);
        // Shorter than the whole text, so this cannot recurse forever.
        out.append(sub.length() < n && isBad(sub) ? fixEncoding(sub) : sub);
        i = end;
      } else {
        out.append(text.charAt(i++));
      }
    }
    return out.toString();
  }

  // ---------------------------------------------------------------- character fixes

  private static boolean hasC1(String text) {
    for (int i = 0, n = text.length(); i < n; i++) {
      char c = text.charAt(i);
      if (c >= 0x80 && c <= 0x9F) return true;
    }
    return false;
  }

  /** C1 controls read as their Windows-1252 characters (sloppy: undefined ones stay). */
  static String fixC1Controls(String text) {
    if (!hasC1(text)) return text;
    int[] cp1252 = T.charmap("sloppy-windows-1252");
    StringBuilder sb = new StringBuilder(text.length());
    for (int i = 0, n = text.length(); i < n; i++) {
      char c = text.charAt(i);
      sb.append(c >= 0x80 && c <= 0x9F ? (char) cp1252[c] : c);
    }
    return sb.toString();
  }

  static String fixLatinLigatures(String text) {
    StringBuilder sb = null;
    for (int i = 0, n = text.length(); i < n; i++) {
      char c = text.charAt(i);
      String r = c >= 0x132 ? LIGATURES.get((int) c) : null;
      if (r != null && sb == null) sb = new StringBuilder(text.length() + 8).append(text, 0, i);
      if (sb != null) {
        if (r != null) sb.append(r);
        else sb.append(c);
      }
    }
    return sb == null ? text : sb.toString();
  }

  private static Map<Integer, String> buildLigatures() {
    return Map.ofEntries(
        Map.entry(0x132, "IJ"),
        Map.entry(0x133, "ij"),
        Map.entry(0x149, "\u02bcn"),
        Map.entry(0x1F1, "DZ"),
        Map.entry(0x1F2, "Dz"),
        Map.entry(0x1F3, "dz"),
        Map.entry(0x1C4, "D\u017d"),
        Map.entry(0x1C5, "D\u017e"),
        Map.entry(0x1C6, "d\u017e"),
        Map.entry(0x1C7, "LJ"),
        Map.entry(0x1C8, "Lj"),
        Map.entry(0x1C9, "lj"),
        Map.entry(0x1CA, "NJ"),
        Map.entry(0x1CB, "Nj"),
        Map.entry(0x1CC, "nj"),
        Map.entry(0xFB00, "ff"),
        Map.entry(0xFB01, "fi"),
        Map.entry(0xFB02, "fl"),
        Map.entry(0xFB03, "ffi"),
        Map.entry(0xFB04, "ffl"),
        Map.entry(0xFB05, "\u017ft"),
        Map.entry(0xFB06, "st"));
  }

  /** Index c - 0xFF00 for U+FF01..U+FFEF; null where the character is unchanged. */
  private static String[] buildWidthMap() {
    String[] map = new String[0xF0];
    for (int cp = 0xFF01; cp < 0xFFF0; cp++) {
      String s = String.valueOf((char) cp);
      String alt = Normalizer.normalize(s, Normalizer.Form.NFKC);
      if (!alt.equals(s)) map[cp - 0xFF00] = alt;
    }
    return map;
  }

  static String fixCharacterWidth(String text) {
    StringBuilder sb = null;
    for (int i = 0, n = text.length(); i < n; i++) {
      char c = text.charAt(i);
      String r = c == 0x3000 ? " " : (c > 0xFF00 && c < 0xFFF0 ? WIDTH_MAP[c - 0xFF00] : null);
      if (r != null && sb == null) sb = new StringBuilder(text.length()).append(text, 0, i);
      if (sb != null) {
        if (r != null) sb.append(r);
        else sb.append(c);
      }
    }
    return sb == null ? text : sb.toString();
  }

  static String uncurlQuotes(String text) {
    char[] a = null;
    for (int i = 0, n = text.length(); i < n; i++) {
      char c = text.charAt(i);
      char r = (c == 0x2BC || (c >= 0x2018 && c <= 0x201B)) ? '\'' : (c >= 0x201C && c <= 0x201F) ? '"' : 0;
      if (r != 0) {
        if (a == null) a = text.toCharArray();
        a[i] = r;
      }
    }
    return a == null ? text : new String(a);
  }

  static String fixLineBreaks(String text) {
    StringBuilder sb = null;
    for (int i = 0, n = text.length(); i < n; i++) {
      char c = text.charAt(i);
      boolean lineBreak = c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85;
      if (lineBreak && sb == null) sb = new StringBuilder(text.length()).append(text, 0, i);
      if (sb == null) continue;
      if (c == '\r' && i + 1 < n && text.charAt(i + 1) == '\n') continue; // "\r\n" -> "\n"
      sb.append(lineBreak ? '\n' : c);
    }
    return sb == null ? text : sb.toString();
  }

  static String fixSurrogates(String text) {
    StringBuilder sb = null;
    for (int i = 0, n = text.length(); i < n; i++) {
      char c = text.charAt(i);
      boolean lone = false;
      if (Character.isHighSurrogate(c)) {
        if (i + 1 < n && Character.isLowSurrogate(text.charAt(i + 1))) {
          if (sb != null) sb.append(c).append(text.charAt(i + 1));
          i++;
          continue;
        }
        lone = true;
      } else if (Character.isLowSurrogate(c)) {
        lone = true;
      }
      if (lone && sb == null) sb = new StringBuilder(text.length()).append(text, 0, i);
      if (sb != null) sb.append(lone ? '\uFFFD' : c);
    }
    return sb == null ? text : sb.toString();
  }

  static String removeTerminalEscapes(String text) {
    if (text.indexOf('\u001b') < 0) return text;
    return ANSI_RE.matcher(text).replaceAll("");
  }

  private static boolean isRemovedControl(char c) {
    return c < 0x09
        || c == 0x0B
        || (c >= 0x0E && c < 0x20)
        || c == 0x7F
        || (c >= 0x206A && c <= 0x206F)
        || c == 0xFEFF
        || (c >= 0xFFF9 && c <= 0xFFFC);
  }

  static String removeControlChars(String text) {
    StringBuilder sb = null;
    for (int i = 0, n = text.length(); i < n; i++) {
      char c = text.charAt(i);
      boolean removed = isRemovedControl(c);
      if (removed && sb == null) sb = new StringBuilder(text.length()).append(text, 0, i);
      if (sb != null && !removed) sb.append(c);
    }
    return sb == null ? text : sb.toString();
  }
}
