package dev.jclip.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * The text-cleaning pieces against behaviour documented by their Python originals (ftfy's and
 * CPython's documentation and source), independent of the reference cases.
 */
class CleaningTest {
  @Test
  void ftfyRepairsMojibakeAndNormalizesCharacters() {
    assertEquals("✔ No problems", Ftfy.fixText("âœ” No problems"));
    assertEquals("¯\\_(ツ)_/¯", Ftfy.fixText("&macr;\\_(ã\u0083\u0084)_/&macr;"));
    assertEquals("Broken text… it's flubberific!", Ftfy.fixText("Broken text&hellip; it&#x2019;s ﬂubberiﬁc!"));
    assertEquals("LOUD NOISES", Ftfy.fixText("ＬＯＵＤ\u3000ＮＯＩＳＥＳ"));
    assertEquals("voilà le travail", Ftfy.fixText("voilÃ le travail"));
    assertEquals("só", Ftfy.fixText("sÃ³"));
    assertEquals("à la mode", Ftfy.fixText("Ã la mode"));
    assertEquals("café \"quoted\"", Ftfy.fixText("cafÃ© â€œquotedâ€\u009d"));
  }

  @Test
  void ftfyEntitiesOnlyWithSemicolonAndNotInsideHtml() {
    assertEquals("PÉREZ", Ftfy.fixText("P&EACUTE;REZ"));
    assertEquals("ñ Ñ Ñ &nTILDE;", Ftfy.fixText("&ntilde; &Ntilde; &NTILDE; &nTILDE;"));
    assertEquals("this&not that", Ftfy.fixText("this&not that"));
    assertEquals("<b>&amp;</b>", Ftfy.fixText("<b>&amp;</b>"));
  }

  @Test
  void ftfyControlsLineBreaksAndSurrogates() {
    assertEquals("blue", Ftfy.fixText("\u001b[36;44mblue\u001b[0m"));
    assertEquals("a\nb\nc\nd", Ftfy.fixText("a\r\nb\rc\u2028d"));
    assertEquals("💩 \uFFFDx", Ftfy.fixText("\ud83d\udca9 \ud800x"));
    assertEquals("\uFFFD", Ftfy.fixText("\udca9"));
    assertEquals("ab", Ftfy.fixText("a\u0000\u0001\u007f\ufeffb"));
  }

  @Test
  void htmlUnescapeFollowsPython() {
    assertEquals("&", HtmlUnescape.unescape("&amp;"));
    assertEquals("&x", HtmlUnescape.unescape("&ampx"));
    assertEquals("¬it;", HtmlUnescape.unescape("&notit;"));
    assertEquals("€", HtmlUnescape.unescape("&#x80;"));
    assertEquals("\uFFFD", HtmlUnescape.unescape("&#0;"));
    assertEquals("\uFFFD", HtmlUnescape.unescape("&#xD800;"));
    assertEquals("\uFFFD", HtmlUnescape.unescape("&#x110000;"));
    assertEquals("\uFFFD", HtmlUnescape.unescape("&#99999999999999999999999999;"));
    assertEquals("", HtmlUnescape.unescape("&#1;"));
    assertEquals("A", HtmlUnescape.unescape("&#65"));
    assertEquals("\u00a0", HtmlUnescape.unescape("&nbsp"));
    assertEquals("&", HtmlUnescape.unescape("&AMP;"));
    assertEquals("&Amp;", HtmlUnescape.unescape("&Amp;"));
    assertEquals("\t", HtmlUnescape.unescape("&#9;"));
    assertEquals("<>", HtmlUnescape.unescape("&lt;&gt"));
    assertEquals("&;", HtmlUnescape.unescape("&;"));
    assertEquals("&#;", HtmlUnescape.unescape("&#;"));
    assertEquals("&#x;", HtmlUnescape.unescape("&#x;"));
    assertEquals("😀", HtmlUnescape.unescape("&#x1F600;"));
  }

  @Test
  void pythonLowerCase() {
    assertEquals("i\u0307stanbul", PythonText.lower("İSTANBUL"));
    assertEquals("ας", PythonText.lower("ΑΣ"));
    assertEquals("σ", PythonText.lower("Σ"));
    assertEquals("ας.", PythonText.lower("ΑΣ."));
    assertEquals("ασα", PythonText.lower("ΑΣΑ"));
    assertEquals("a σ", PythonText.lower("a Σ"));
    // CPython skips case-ignorable characters before testing for a cased one; Java does not.
    assertEquals("ας\u0345", PythonText.lower("ΑΣ\u0345"));
    assertEquals("straße ẞ".replace("ẞ", "ß"), PythonText.lower("STRAßE ẞ"));
    // Lower-case mappings added after Unicode 14 are not applied (Python 3.11).
    assertEquals("\ua7cb", PythonText.lower("\ua7cb"));
    assertEquals("😀a", PythonText.lower("😀A"));
  }

  @Test
  void letterClassesFollowUnicode15() {
    assertTrue(PythonText.isLetter('a') && PythonText.isLetter('日') && PythonText.isLetter(0x11F04)); // Kawi, 15.0
    assertFalse(PythonText.isLetter(0x10D50)); // Garay, 16.0: unassigned for the reference
    assertFalse(PythonText.isNumber(0x16D70)); // Kirat Rai digit, 16.0
    assertTrue(PythonText.isOther(0x10D50));
    assertTrue(PythonText.isNumber('٣') && PythonText.isNumber('²') && PythonText.isNumber('Ⅻ'));
    assertFalse(PythonText.isOther(0x345));
    assertFalse(PythonText.isLetter(0x345));
  }

  @Test
  void pythonWhitespace() {
    assertTrue(PythonText.isPythonSpace(0x1c));
    assertFalse(PythonText.isRegexSpace(0x1c));
    assertTrue(PythonText.isRegexSpace(0x85));
    assertTrue(PythonText.isRegexSpace(0x3000));
    assertFalse(PythonText.isRegexSpace(0x200b));
    assertEquals("a b", PythonText.strip("\u3000\u001f a b\u2029\n"));
    assertEquals("a b c", TextCleaner.collapseWhitespace(" a \t\u00a0 b\u2003c  "));
  }

  @Test
  void cleanMatchesTheReferencePipeline() {
    assertEquals("a photo of a cat.", TextCleaner.clean("  A Photo of a CAT.\n"));
    // ftfy leaves "&amp;amp;" to html.unescape, which runs twice.
    assertEquals("fish & chips", TextCleaner.clean("Fish &amp;amp; Chips"));
    assertEquals("it's", TextCleaner.clean("It’s"));
    assertEquals("", TextCleaner.clean("\u3000\t\u2003 \u001f"));
    // Zero-width space is a format character, not whitespace: it stays.
    assertEquals("\u200b", TextCleaner.clean(" \u200b "));
  }
}
