package dev.jclip.tokenizer;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.function.IntPredicate;

/**
 * ftfy's {@code badness.is_bad} (6.3.1): whether a text contains one of the short character
 * sequences typical of mojibake. ftfy writes it as one regular expression ({@code BADNESS_RE}) of
 * 37 fixed-length alternatives over its character categories; this evaluates the same
 * alternatives element by element with bit-set lookups on code points, which is linear with a
 * small constant (java.util.regex needed microseconds per character on these large classes).
 */
final class Badness {
  /** One alternative: a sequence of character tests, some optional, maybe anchored at the start. */
  private record Alternative(BitSet first, IntPredicate[] elements, boolean[] optional, boolean anchored) {}

  /** For each BMP character, the alternatives whose first set contains it (null: none). */
  private final Alternative[][] byFirst = new Alternative[0x10000][];

  private Badness(CleaningTables t) {
    BitSet c1 = t.charClass("badness.c1");
    BitSet bad = t.charClass("badness.bad");
    BitSet law = t.charClass("badness.law");
    BitSet currency = t.charClass("badness.currency");
    BitSet start = t.charClass("badness.start_punctuation");
    BitSet end = t.charClass("badness.end_punctuation");
    BitSet numeric = t.charClass("badness.numeric");
    BitSet kaomoji = t.charClass("badness.kaomoji");
    BitSet upperAcc = t.charClass("badness.upper_accented");
    BitSet lowerAcc = t.charClass("badness.lower_accented");
    BitSet upperCommon = t.charClass("badness.upper_common");
    BitSet lowerCommon = t.charClass("badness.lower_common");
    BitSet box = t.charClass("badness.box");
    BitSet common = t.charClass("badness.common");
    BitSet latin = chars("A-Za-z");
    BitSet lowerLatin = chars("a-z");

    List<Alternative> a = new ArrayList<>();
    a.add(alt(c1));
    a.add(alt(or(bad, lowerAcc, upperAcc, box, start, end, currency, numeric, law), bad));
    a.add(alt(latin, or(lowerCommon, upperCommon), bad));
    a.add(alt(bad, or(lowerAcc, upperAcc, box, start, end, currency, numeric, law)));
    a.add(alt(or(lowerAcc, lowerCommon, box, end, currency, numeric), upperAcc));
    a.add(alt(or(box, end, currency, numeric), lowerAcc));
    a.add(alt(or(lowerAcc, box, end), currency));
    BitSet space = new BitSet(0x10000);
    for (int cp = 0; cp < 0x10000; cp++) if (PythonText.isPythonSpace(cp)) space.set(cp);
    a.add(alt(space, upperAcc, currency));
    a.add(alt(or(upperAcc, box), or(numeric, law)));
    a.add(alt(or(lowerAcc, upperAcc, box, currency, end), start, numeric));
    a.add(alt(or(lowerAcc, upperAcc, currency, numeric, box, law), end, start));
    a.add(alt(or(currency, numeric, box), start));
    a.add(alt(lowerLatin, upperAcc, or(start, currency)));
    a.add(alt(box, kaomoji));
    a.add(alt(or(lowerAcc, upperAcc, currency, numeric, start, end, law), box));
    a.add(alt(box, end));
    a.add(alt(or(lowerAcc, upperAcc), or(start, end), (IntPredicate) Badness::isPythonWordChar));
    IntPredicate notLatin = cp -> !(cp < 0x80 && latin.get(cp));
    a.add(alt(chars("Œœ"), notLatin));
    a.add(alt(upperAcc, chars("°")));
    a.add(alt(chars("ÂÃÎÐ"), or(chars("€œŠš¢£Ÿž\u00a0\u00ad®©°·»–—´"), start, end)));
    a.add(alt(chars("×"), chars("²³")));
    BitSet arabicFollow = or(common, currency, bad, numeric, start, chars("ŸŠ®°µ»"));
    a.add(alt(chars("ØÙ"), arabicFollow, chars("ØÙ"), arabicFollow));
    a.add(alt(chars("à"), chars("²µ¹¼½¾")));
    a.add(alt(chars("√"), chars("±∂†≠®™´≤≥¥µø")));
    a.add(alt(chars("≈"), chars("°¢")));
    a.add(alt(chars("‚"), chars("Ä"), chars("ìîïòôúùû†°¢π")));
    a.add(alt(chars("‚"), chars("âó"), chars("àä°ê")));
    a.add(alt(chars("в"), chars("Ђ")));
    BitSet cyrillicPair = chars("ВГРС");
    a.add(alt(cyrillicPair, or(c1, bad, start, end, currency, chars("°µ")), cyrillicPair));
    IntPredicate notNewline = cp -> cp != '\n';
    a.add(alt(chars("Г"), chars("ў"), chars("В"), chars("Ђ"), chars("В"), notNewline, chars("A-Za-z ")));
    a.add(alt(chars("Ã"), chars("\u00a0¡")));
    a.add(new Alternative(
        lowerLatin,
        new IntPredicate[] {set(lowerLatin), set(space), set(chars("ÃÂ")), set(chars(" "))},
        new boolean[] {false, true, false, false},
        false));
    a.add(new Alternative(chars("ÃÂ"), new IntPredicate[] {set(chars("ÃÂ")), set(chars(" "))}, new boolean[2], true));
    a.add(alt(or(chars("a-z.,?!"), end), chars("Â"), or(chars(" "), start, end)));
    a.add(alt(chars("β"), chars("€"), chars("™\u00a0Ά\u00ad®°")));
    BitSet greekPair = chars("ΒΓΞΟ");
    a.add(alt(greekPair, or(c1, bad, start, end, currency, chars("°")), greekPair));
    a.add(alt(chars("ā"), chars("€")));
    java.util.Map<List<Alternative>, Alternative[]> shared = new java.util.HashMap<>();
    for (int c = 0; c < 0x10000; c++) {
      List<Alternative> here = new ArrayList<>();
      for (Alternative alt : a) if (alt.first.get(c)) here.add(alt);
      if (!here.isEmpty()) byFirst[c] = shared.computeIfAbsent(here, l -> l.toArray(Alternative[]::new));
    }
  }

  private static final Badness INSTANCE = new Badness(CleaningTables.get());

  static boolean isBad(String text) {
    return INSTANCE.test(text);
  }

  private boolean test(String text) {
    int[] cps = text.codePoints().toArray();
    for (int p = 0; p < cps.length; p++) {
      int c = cps[p];
      Alternative[] candidates = c <= 0xFFFF ? byFirst[c] : null;
      if (candidates == null) continue;
      for (Alternative alt : candidates) {
        if (alt.anchored && p > 0) continue;
        if (matches(alt, 1, cps, p + 1)) return true;
      }
    }
    return false;
  }

  private static boolean matches(Alternative alt, int k, int[] cps, int pos) {
    if (k == alt.elements.length) return true;
    boolean here = pos < cps.length && alt.elements[k].test(cps[pos]) && matches(alt, k + 1, cps, pos + 1);
    return here || (alt.optional[k] && matches(alt, k + 1, cps, pos));
  }

  /**
   * An alternative of character tests (a {@link BitSet} or an {@link IntPredicate}); its first
   * element must be a set, used to index the alternatives by their first character.
   */
  private Alternative alt(Object... elements) {
    IntPredicate[] e = new IntPredicate[elements.length];
    for (int i = 0; i < e.length; i++) {
      e[i] = elements[i] instanceof BitSet b ? set(b) : (IntPredicate) elements[i];
    }
    return new Alternative((BitSet) elements[0], e, new boolean[e.length], false);
  }

  private static IntPredicate set(BitSet s) {
    return cp -> cp <= 0xFFFF && s.get(cp);
  }

  private static BitSet or(BitSet... sets) {
    BitSet out = new BitSet(0x10000);
    for (BitSet s : sets) out.or(s);
    return out;
  }

  /** A set from literal characters and "x-y" ranges (BMP only, as every literal here is). */
  private static BitSet chars(String spec) {
    BitSet s = new BitSet(0x10000);
    for (int i = 0; i < spec.length(); i++) {
      char c = spec.charAt(i);
      if (i + 2 < spec.length() && spec.charAt(i + 1) == '-') {
        s.set(c, spec.charAt(i + 2) + 1);
        i += 2;
      } else {
        s.set(c);
      }
    }
    return s;
  }

  /** Python's {@code \w} for str patterns: alphanumeric ({@code str.isalnum}) or '_'. */
  private static boolean isPythonWordChar(int cp) {
    return cp == '_' || PythonText.isLetter(cp) || PythonText.isNumber(cp);
  }
}
