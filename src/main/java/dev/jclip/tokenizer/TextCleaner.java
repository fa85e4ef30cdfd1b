package dev.jclip.tokenizer;

/**
 * The reference's text cleaning: {@code whitespace_clean(basic_clean(text)).lower()}, i.e. ftfy's
 * {@code fix_text}, {@code html.unescape} twice, strip, runs of {@code \s} to one space, strip,
 * Python's lower case. Thread-safe and stateless.
 */
public final class TextCleaner {
  private TextCleaner() {}

  /** The string the token pattern runs on (the {@code cleaned} field of the reference cases). */
  public static String clean(String text) {
    if (Ftfy.isTriviallyClean(text)) {
      // Printable ASCII without '&': ftfy and html.unescape leave it as it is.
      return PythonText.lower(collapseWhitespace(text));
    }
    String t = Ftfy.fixText(text);
    t = HtmlUnescape.unescape(HtmlUnescape.unescape(t));
    t = PythonText.strip(t);
    t = collapseWhitespace(t);
    return PythonText.lower(t);
  }

  /** {@code re.sub(r'\s+', ' ', text).strip()} with the {@code regex} module's {@code \s}. */
  static String collapseWhitespace(String text) {
    int n = text.length();
    StringBuilder sb = null;
    int i = 0;
    while (i < n) {
      int cp = text.codePointAt(i);
      int len = Character.charCount(cp);
      if (PythonText.isRegexSpace(cp)) {
        int j = i + len;
        while (j < n && PythonText.isRegexSpace(text.codePointAt(j))) j += Character.charCount(text.codePointAt(j));
        boolean unchanged = cp == ' ' && j == i + 1;
        if (!unchanged && sb == null) sb = new StringBuilder(n).append(text, 0, i);
        if (sb != null) sb.append(' ');
        i = j;
      } else {
        if (sb != null) sb.appendCodePoint(cp);
        i += len;
      }
    }
    return PythonText.strip(sb == null ? text : sb.toString());
  }
}
