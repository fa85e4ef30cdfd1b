package dev.jclip.tokenizer;

/**
 * The reference's token pattern as a linear scanner (no regular expression, so no backtracking
 * and no recursion on long inputs):
 *
 * <pre>
 * &lt;\|startoftext\|&gt;|&lt;\|endoftext\|&gt;|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 * </pre>
 *
 * with the {@code regex} module's {@code IGNORECASE} semantics: literal letters also match their
 * simple case-folding partners (only U+017F LONG S, for 's', matters after lower-casing).
 * Alternatives are tried in order at each position, as the regex does: a run of other characters
 * swallows a following "&lt;|" or "'", so "!&lt;|endoftext|&gt;" is not the special token.
 * Characters no alternative matches (whitespace, U+0345) are skipped.
 */
final class PreTokenizer {
  private PreTokenizer() {}

  /** Receives each match as a range of the text. */
  interface Sink {
    void token(String text, int start, int end);
  }

  private static final String[] CONTRACTIONS = {"s", "t", "re", "ve", "m", "ll", "d"};

  static void split(String text, Sink sink) {
    int n = text.length();
    int i = 0;
    while (i < n) {
      int cp = text.codePointAt(i);
      if (cp == '<') {
        int end = matchLiteral(text, i, Vocabulary.START_OF_TEXT);
        if (end < 0) end = matchLiteral(text, i, Vocabulary.END_OF_TEXT);
        if (end > 0) {
          sink.token(text, i, end);
          i = end;
          continue;
        }
      } else if (cp == '\'') {
        int end = -1;
        for (String c : CONTRACTIONS) {
          end = matchLiteral(text, i + 1, c);
          if (end > 0) break;
        }
        if (end > 0) {
          sink.token(text, i, end);
          i = end;
          continue;
        }
      }
      int j = i + Character.charCount(cp);
      if (PythonText.isLetter(cp)) {
        while (j < n) {
          int c = text.codePointAt(j);
          if (!PythonText.isLetter(c)) break;
          j += Character.charCount(c);
        }
      } else if (PythonText.isNumber(cp)) {
        // one code point: every digit is its own token
      } else if (PythonText.isOther(cp)) {
        while (j < n) {
          int c = text.codePointAt(j);
          if (!PythonText.isOther(c)) break;
          j += Character.charCount(c);
        }
      } else {
        i = j; // whitespace or U+0345: no alternative matches
        continue;
      }
      sink.token(text, i, j);
      i = j;
    }
  }

  /** The end of {@code literal} matched case-insensitively at {@code at}, or -1. */
  private static int matchLiteral(String text, int at, String literal) {
    int n = text.length();
    if (at + literal.length() > n) return -1;
    for (int k = 0; k < literal.length(); k++) {
      if (!sameIgnoringCase(text.charAt(at + k), literal.charAt(k))) return -1;
    }
    return at + literal.length();
  }

  /** {@code regex} IGNORECASE equality for an ASCII literal character (checked over all code points). */
  private static boolean sameIgnoringCase(char c, char literal) {
    if (c == literal) return true;
    if (literal >= 'a' && literal <= 'z') {
      return c == literal - 32 || (literal == 's' && c == '\u017f') || (literal == 'k' && c == '\u212a');
    }
    return false;
  }
}
