package dev.jclip.tokenizer;

/**
 * The few Python string semantics the reference tokenizer depends on, on code points: {@code
 * str.isspace}, {@code str.strip}, {@code str.lower} (CPython 3.11, Unicode 14), and the character
 * classes {@code \s}, {@code \p{L}}, {@code \p{N}} of the {@code regex} module as the reference
 * pattern uses them (with {@code IGNORECASE}).
 *
 * <p>Java's own {@link String#toLowerCase} and {@link Character#isWhitespace} differ from Python
 * in places (the final-sigma context, characters added after Unicode 14, the set of whitespace
 * characters), so these are spelled out here. Java 25 knows Unicode 16.0; the reference's {@code
 * regex} module has Unicode 15.0 and its {@code str} methods Unicode 14.0. Letters, numbers and
 * lower-case mappings added since are excluded explicitly (see {@link #isLetter} and {@link
 * #lower}); other properties of such new characters follow Java.
 */
final class PythonText {
  private PythonText() {}

  /**
   * Unicode White_Space: what the {@code regex} module's {@code \s} matches. Python's {@code
   * str.isspace} adds U+001C..U+001F (see {@link #isPythonSpace}).
   */
  static boolean isRegexSpace(int cp) {
    if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
    if (cp < 0x85) return false;
    return cp == 0x85
        || cp == 0xA0
        || cp == 0x1680
        || (cp >= 0x2000 && cp <= 0x200A)
        || cp == 0x2028
        || cp == 0x2029
        || cp == 0x202F
        || cp == 0x205F
        || cp == 0x3000;
  }

  /** Python's {@code str.isspace()}: White_Space plus the information separators U+001C..U+001F. */
  static boolean isPythonSpace(int cp) {
    return isRegexSpace(cp) || (cp >= 0x1C && cp <= 0x1F);
  }

  /**
   * Letters and numbers of Java 25 (Unicode 16.0) that are unassigned in Unicode 15.0, the
   * version of the reference's {@code regex} module (2022.10.31), so its {@code \p{L}} and {@code
   * \p{N}} do not match them: pairs of inclusive bounds, sorted. Derived by comparing Java's
   * general categories with the Unicode 15.0.0 data of the npm package {@code
   * @unicode/unicode-15.0.0} over all code points; no other code point differs in L or N.
   */
  private static final int[] NEW_SINCE_UNICODE_15 = {
    0x1C89, 0x1C8A, 0xA7CB, 0xA7CD, 0xA7DA, 0xA7DC, 0x105C0, 0x105F3, 0x10D40, 0x10D49,
    0x10D4A, 0x10D65, 0x10D6F, 0x10D85, 0x10EC2, 0x10EC4, 0x11380, 0x11389, 0x1138B, 0x1138B,
    0x1138E, 0x1138E, 0x11390, 0x113B5, 0x113B7, 0x113B7, 0x113D1, 0x113D1, 0x113D3, 0x113D3,
    0x116D0, 0x116E3, 0x11BC0, 0x11BE0, 0x11BF0, 0x11BF9, 0x13460, 0x143FA, 0x16100, 0x1611D,
    0x16130, 0x16139, 0x16D40, 0x16D6C, 0x16D70, 0x16D79, 0x18CFF, 0x18CFF, 0x1CCF0, 0x1CCF9,
    0x1E5D0, 0x1E5ED, 0x1E5F0, 0x1E5FA, 0x2EBF0, 0x2EE5D,
  };

  static boolean isNewSinceUnicode15(int cp) {
    if (cp < 0x1C89) return false;
    int lo = 0;
    int hi = NEW_SINCE_UNICODE_15.length / 2 - 1;
    while (lo <= hi) {
      int mid = (lo + hi) >>> 1;
      if (cp < NEW_SINCE_UNICODE_15[2 * mid]) hi = mid - 1;
      else if (cp > NEW_SINCE_UNICODE_15[2 * mid + 1]) lo = mid + 1;
      else return true;
    }
    return false;
  }

  /** {@code \p{L}}: general category Lu, Ll, Lt, Lm or Lo, in Unicode 15.0. */
  static boolean isLetter(int cp) {
    if (cp < 0x80) return ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
    return switch (Character.getType(cp)) {
      case Character.UPPERCASE_LETTER,
          Character.LOWERCASE_LETTER,
          Character.TITLECASE_LETTER,
          Character.MODIFIER_LETTER,
          Character.OTHER_LETTER ->
          !isNewSinceUnicode15(cp);
      default -> false;
    };
  }

  /** {@code \p{N}}: general category Nd, Nl or No, in Unicode 15.0. */
  static boolean isNumber(int cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    return switch (Character.getType(cp)) {
      case Character.DECIMAL_DIGIT_NUMBER, Character.LETTER_NUMBER, Character.OTHER_NUMBER ->
          !isNewSinceUnicode15(cp);
      default -> false;
    };
  }

  /**
   * {@code [^\s\p{L}\p{N}]} under {@code IGNORECASE}. The regex module matches a negated class
   * case-insensitively, so a character with a case variant inside {@code \p{L}} is excluded even
   * though it is not a letter itself: U+0345 COMBINING GREEK YPOGEGRAMMENI (whose upper case is
   * Greek iota) is the only such character, and the reference pattern matches it with no
   * alternative at all, i.e. drops it. Checked against regex over all code points.
   */
  static boolean isOther(int cp) {
    return !isRegexSpace(cp) && !isLetter(cp) && !isNumber(cp) && cp != 0x345;
  }

  /** Python's {@code s.strip()}: removes leading and trailing {@link #isPythonSpace} characters. */
  static String strip(String s) {
    int start = 0;
    int end = s.length();
    while (start < end) {
      int cp = s.codePointAt(start);
      if (!isPythonSpace(cp)) break;
      start += Character.charCount(cp);
    }
    while (end > start) {
      int cp = s.codePointBefore(end);
      if (!isPythonSpace(cp)) break;
      end -= Character.charCount(cp);
    }
    return s.substring(start, end);
  }

  /**
   * Code points whose lower-case mapping was added after Unicode 14 (the reference's Python 3.11),
   * so Python leaves them unchanged: U+1C89, U+A7CB, U+A7CC, U+A7DA, U+A7DC and Garay capitals
   * U+10D50..U+10D65 (found by comparing CPython 3.11's {@code str.lower} with Java 25 over every
   * code point).
   */
  private static boolean lowerAddedAfterUnicode14(int cp) {
    return cp == 0x1C89
        || cp == 0xA7CB
        || cp == 0xA7CC
        || cp == 0xA7DA
        || cp == 0xA7DC
        || (cp >= 0x10D50 && cp <= 0x10D65);
  }

  /**
   * Python's {@code str.lower()}: the full lower-case mapping (U+0130 becomes "i̇", two code
   * points) and the Final_Sigma rule exactly as CPython applies it (case-ignorable characters are
   * skipped before the cased test, so "ΑΣ\u0345" ends in "ς", where Java gives "σ").
   */
  static String lower(String s) {
    int n = s.length();
    int i = 0;
    // Fast path: nothing to change in the common ASCII lower-case text.
    while (i < n) {
      char c = s.charAt(i);
      if (c >= 0x80 || (c >= 'A' && c <= 'Z')) break;
      i++;
    }
    if (i == n) return s;
    StringBuilder sb = new StringBuilder(n + 8);
    sb.append(s, 0, i);
    while (i < n) {
      int cp = s.codePointAt(i);
      if (cp < 0x80) {
        sb.append((char) (cp >= 'A' && cp <= 'Z' ? cp + 32 : cp));
      } else if (cp == 0x130) {
        sb.append('i').append('\u0307');
      } else if (cp == 0x3A3) {
        sb.append(isFinalSigma(s, i) ? '\u03C2' : '\u03C3');
      } else if (lowerAddedAfterUnicode14(cp)) {
        sb.appendCodePoint(cp);
      } else {
        sb.appendCodePoint(Character.toLowerCase(cp));
      }
      i += Character.charCount(cp);
    }
    return sb.toString();
  }

  /** CPython's {@code handle_capital_sigma}: cased, case-ignorable*, Σ, not (case-ignorable* cased). */
  private static boolean isFinalSigma(String s, int at) {
    int j = at;
    int c = -1;
    while (j > 0) {
      c = s.codePointBefore(j);
      j -= Character.charCount(c);
      if (!isCaseIgnorable(c)) break;
      c = -1;
    }
    if (c < 0 || !isCased(c)) return false;
    j = at + 1;
    while (j < s.length()) {
      c = s.codePointAt(j);
      if (!isCaseIgnorable(c)) return !isCased(c);
      j += Character.charCount(c);
    }
    return true;
  }

  /** Unicode Cased: Lowercase, Uppercase (both with their Other_ contributions) or Lt. */
  private static boolean isCased(int cp) {
    return Character.isLowerCase(cp) || Character.isUpperCase(cp) || Character.isTitleCase(cp);
  }

  /** Unicode Case_Ignorable: Mn, Me, Cf, Lm, Sk, or Word_Break MidLetter/MidNumLet/Single_Quote. */
  private static boolean isCaseIgnorable(int cp) {
    switch (Character.getType(cp)) {
      case Character.NON_SPACING_MARK,
          Character.ENCLOSING_MARK,
          Character.FORMAT,
          Character.MODIFIER_LETTER,
          Character.MODIFIER_SYMBOL:
        return true;
      default:
        break;
    }
    return switch (cp) {
      case 0x27, 0x2E, 0x3A, 0xB7, 0x387, 0x55F, 0x5F4, 0x2018, 0x2019, 0x2024, 0x2027, 0xFE13,
          0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A ->
          true;
      default -> false;
    };
  }
}
