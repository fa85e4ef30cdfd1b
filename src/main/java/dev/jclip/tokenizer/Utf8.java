package dev.jclip.tokenizer;

/**
 * UTF-8 decoding with Python's exact semantics: strict decoding (returns null where Python raises
 * {@code UnicodeDecodeError}), ftfy's {@code utf-8-variants} extensions, and {@code
 * errors="replace"} (one U+FFFD per maximal ill-formed subpart, as CPython does).
 */
final class Utf8 {
  private Utf8() {}

  /**
   * Strict UTF-8. With {@code variants} (ftfy's {@code utf-8-variants}) also accepts {@code C0 80}
   * as U+0000 and a CESU-8 surrogate pair ({@code ED A0..AF 80..BF ED B0..BF 80..BF}) as the
   * supplementary character it encodes.
   */
  static String decodeStrict(byte[] b, boolean variants) {
    StringBuilder sb = new StringBuilder(b.length);
    int i = 0;
    int n = b.length;
    while (i < n) {
      int c = b[i] & 0xFF;
      if (c < 0x80) {
        sb.append((char) c);
        i++;
        continue;
      }
      if (variants) {
        if (c == 0xC0 && i + 1 < n && (b[i + 1] & 0xFF) == 0x80) {
          sb.append('\0');
          i += 2;
          continue;
        }
        if (c == 0xED && i + 5 < n && isCesuPair(b, i)) {
          int cp =
              ((b[i + 1] & 0x0F) << 16)
                  + ((b[i + 2] & 0x3F) << 10)
                  + ((b[i + 4] & 0x0F) << 6)
                  + (b[i + 5] & 0x3F)
                  + 0x10000;
          sb.appendCodePoint(cp);
          i += 6;
          continue;
        }
      }
      int len = validLength(b, i);
      if (len <= 0) return null;
      sb.appendCodePoint(codePoint(b, i, len));
      i += len;
    }
    return sb.toString();
  }

  private static boolean isCesuPair(byte[] b, int i) {
    int b1 = b[i + 1] & 0xFF, b2 = b[i + 2] & 0xFF, b3 = b[i + 3] & 0xFF, b4 = b[i + 4] & 0xFF, b5 = b[i + 5] & 0xFF;
    return b1 >= 0xA0 && b1 <= 0xAF && isCont(b2) && b3 == 0xED && b4 >= 0xB0 && b4 <= 0xBF && isCont(b5);
  }

  /** Python's {@code bytes.decode("utf-8", errors="replace")}. */
  static String decodeReplace(byte[] b, int off, int len) {
    StringBuilder sb = new StringBuilder(len);
    int i = off;
    int n = off + len;
    while (i < n) {
      int c = b[i] & 0xFF;
      if (c < 0x80) {
        sb.append((char) c);
        i++;
        continue;
      }
      int l = validLength(b, i, n);
      if (l > 0) {
        sb.appendCodePoint(codePoint(b, i, l));
        i += l;
      } else {
        sb.append('\uFFFD');
        i += Math.max(1, -l);
      }
    }
    return sb.toString();
  }

  private static boolean isCont(int x) {
    return (x & 0xC0) == 0x80;
  }

  private static int validLength(byte[] b, int i) {
    return validLength(b, i, b.length);
  }

  /**
   * The length of the well-formed sequence at {@code i}, or minus the length of its maximal
   * ill-formed subpart (at least 1) when it is not well formed.
   */
  private static int validLength(byte[] b, int i, int n) {
    int c = b[i] & 0xFF;
    int need;
    int lo = 0x80;
    int hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      need = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return -1;
    }
    for (int k = 1; k <= need; k++) {
      if (i + k >= n) return -k;
      int x = b[i + k] & 0xFF;
      boolean ok = k == 1 ? (x >= lo && x <= hi) : isCont(x);
      if (!ok) return -k;
    }
    return need + 1;
  }

  private static int codePoint(byte[] b, int i, int len) {
    int c = b[i] & 0xFF;
    int cp = len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    for (int k = 1; k < len; k++) cp = (cp << 6) | (b[i + k] & 0x3F);
    return cp;
  }
}
