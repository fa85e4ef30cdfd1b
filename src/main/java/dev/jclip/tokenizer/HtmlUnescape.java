package dev.jclip.tokenizer;

import java.util.Map;

/**
 * Python's {@code html.unescape} (CPython 3.11): named references from the full HTML5 table, also
 * without the trailing semicolon where the longest prefix of the name is an entity ("&amp;ampx"
 * gives "&x", "&notit;" gives "¬it;"), decimal and hexadecimal references with the HTML5
 * replacements for invalid code points (0 and surrogates become U+FFFD, 0x80..0x9F are read as
 * Windows-1252, other control and non-characters are dropped).
 *
 * <p>One deliberate difference: a decimal reference of more than 4300 digits makes CPython raise
 * {@code ValueError} (its integer-parsing limit); here it is out of range and becomes U+FFFD.
 */
final class HtmlUnescape {
  private HtmlUnescape() {}

  private static final int MAX_NAME = 32;

  static String unescape(String s) {
    int amp = s.indexOf('&');
    if (amp < 0) return s;
    Map<String, String> html5 = CleaningTables.get().html5;
    int n = s.length();
    StringBuilder out = new StringBuilder(n);
    out.append(s, 0, amp);
    int i = amp;
    while (i < n) {
      char c = s.charAt(i);
      if (c != '&') {
        out.append(c);
        i++;
        continue;
      }
      int end = replaceAt(s, i, out, html5);
      if (end < 0) {
        out.append('&');
        i++;
      } else {
        i = end;
      }
    }
    return out.toString();
  }

  /** Replaces the reference starting with '&' at {@code at}; returns its end, or -1 if none. */
  private static int replaceAt(String s, int at, StringBuilder out, Map<String, String> html5) {
    int n = s.length();
    int j = at + 1;
    if (j < n && s.charAt(j) == '#') {
      int k = j + 1;
      boolean hex = k < n && (s.charAt(k) == 'x' || s.charAt(k) == 'X');
      int digitsStart = hex ? k + 1 : k;
      int e = digitsStart;
      while (e < n && (hex ? isHexDigit(s.charAt(e)) : isDigit(s.charAt(e)))) e++;
      if (e == digitsStart) {
        if (!hex) return -1;
        // "&#x" without hex digits: the decimal alternative cannot match 'x' either.
        return -1;
      }
      long num = parse(s, digitsStart, e, hex ? 16 : 10);
      if (e < n && s.charAt(e) == ';') e++;
      out.append(numeric(num));
      return e;
    }
    // [^\t\n\f <&#;]{1,32};? counted in code points.
    int e = j;
    int count = 0;
    while (e < n && count < MAX_NAME) {
      int cp = s.codePointAt(e);
      if (cp == '\t' || cp == '\n' || cp == '\f' || cp == ' ' || cp == '<' || cp == '&' || cp == '#' || cp == ';') break;
      e += Character.charCount(cp);
      count++;
    }
    if (count == 0) return -1;
    if (e < n && s.charAt(e) == ';') e++;
    String name = s.substring(j, e);
    String v = html5.get(name);
    if (v != null) {
      out.append(v);
      return e;
    }
    // The longest prefix (of at least 2 characters) that is an entity; names are ASCII, so
    // counting chars instead of code points finds the same prefix.
    for (int x = name.length() - 1; x > 1; x--) {
      v = html5.get(name.substring(0, x));
      if (v != null) {
        out.append(v).append(name, x, name.length());
        return e;
      }
    }
    out.append('&').append(name);
    return e;
  }

  private static boolean isDigit(char c) {
    return c >= '0' && c <= '9';
  }

  private static boolean isHexDigit(char c) {
    return isDigit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
  }

  /** The value, saturated just above the Unicode range (all such values give U+FFFD). */
  private static long parse(String s, int from, int to, int radix) {
    long v = 0;
    for (int i = from; i < to; i++) {
      v = v * radix + Character.digit(s.charAt(i), radix);
      if (v > 0x10FFFF) return 0x110000;
    }
    return v;
  }

  private static String numeric(long num) {
    if (num == 0x00) return "\uFFFD";
    if (num == 0x0D) return "\r";
    if (num >= 0x80 && num <= 0x9F) {
      // Windows-1252 meaning of these bytes, as HTML5 (and Python's _invalid_charrefs) specify.
      int cp = CleaningTables.get().charmap("sloppy-windows-1252")[(int) num];
      return new String(Character.toChars(cp));
    }
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return "\uFFFD";
    if (isInvalidCodePoint((int) num)) return "";
    return new String(Character.toChars((int) num));
  }

  /** Python's _invalid_codepoints (0x80..0x9F are handled before). */
  private static boolean isInvalidCodePoint(int cp) {
    return (cp >= 0x1 && cp <= 0x8)
        || cp == 0xB
        || (cp >= 0xE && cp <= 0x1F)
        || cp == 0x7F
        || (cp >= 0xFDD0 && cp <= 0xFDEF)
        || (cp & 0xFFFE) == 0xFFFE;
  }
}
