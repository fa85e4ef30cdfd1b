package dev.jclip.cli;

import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code str(array)} of a 2-D float32 NumPy array with NumPy's default print options (precision 8,
 * floatmode "maxprec", line width 75): what the reference's {@code print("Label probs:", probs)}
 * shows. Values print as the shortest decimal that reads back as the same float32, cut to 8
 * fractional digits; a column of them is aligned on the decimal point; scientific notation when
 * the non-zero magnitudes reach 1e8, fall below 1e-4 or span more than 1e3.
 */
final class NumpyFormat {
  private static final int LINE_WIDTH = 75, PRECISION = 8;

  private NumpyFormat() {}

  /** NumPy's print threshold: an array of more elements prints its first and last {@link #EDGE_ITEMS} of each axis. */
  private static final int THRESHOLD = 1000, EDGE_ITEMS = 3;

  static String format(float[][] rows) {
    int cols = rows.length == 0 ? 0 : rows[0].length;
    boolean summarize = (long) rows.length * cols > THRESHOLD;
    int[] rowsShown = shown(rows.length, summarize), colsShown = shown(cols, summarize);
    // The format is learnt from the values shown, as NumPy does.
    List<Float> finite = new ArrayList<>();
    for (int r : rowsShown) {
      if (r < 0) continue;
      for (int c : colsShown) if (c >= 0 && Float.isFinite(rows[r][c])) finite.add(rows[r][c]);
    }
    boolean exp = false;
    float max = 0, min = Float.POSITIVE_INFINITY;
    for (float v : finite) {
      if (v == 0) continue;
      max = Math.max(max, Math.abs(v));
      min = Math.min(min, Math.abs(v));
    }
    if (min != Float.POSITIVE_INFINITY) exp = max >= 1e8f || min < 1e-4f || max / min > 1000f;

    // First pass: each value's integer and fraction (and exponent) parts, to learn the padding.
    int padLeft = 0, padRight = 0, expDigits = 0;
    for (float v : finite) {
      String[] p = exp ? scientific(v) : positional(v);
      padLeft = Math.max(padLeft, p[0].length());
      padRight = Math.max(padRight, p[1].length());
      if (exp) expDigits = Math.max(expDigits, Math.max(2, p[2].length() - 1)); // at least two digits, as C printf
    }
    StringBuilder out = new StringBuilder("[");
    for (int k = 0; k < rowsShown.length; k++) {
      if (k > 0) out.append('\n').append(' ');
      int r = rowsShown[k];
      if (r < 0) {
        out.append("...");
        continue;
      }
      String[] words = new String[colsShown.length];
      for (int i = 0; i < words.length; i++) words[i] = colsShown[i] < 0 ? "..." : word(rows[r][colsShown[i]], exp, padLeft, padRight, expDigits);
      out.append(row(words));
    }
    return out.append(']').toString();
  }

  /** The indices an axis of {@code n} shows: all, or the first and last {@link #EDGE_ITEMS} with -1 ("...") between. */
  private static int[] shown(int n, boolean summarize) {
    if (!summarize || n <= 2 * EDGE_ITEMS) return java.util.stream.IntStream.range(0, n).toArray();
    int[] s = new int[2 * EDGE_ITEMS + 1];
    for (int i = 0; i < EDGE_ITEMS; i++) {
      s[i] = i;
      s[EDGE_ITEMS + 1 + i] = n - EDGE_ITEMS + i;
    }
    s[EDGE_ITEMS] = -1;
    return s;
  }

  /** One row as NumPy's _formatArray wraps it: "[a b c]", continuation lines indented by two. */
  private static String row(String[] words) {
    String indent = "  ";
    int elemWidth = LINE_WIDTH - 1 - 1; // one ']' per nesting level below the outer one, and the row's own
    StringBuilder s = new StringBuilder();
    StringBuilder line = new StringBuilder(indent);
    for (int i = 0; i < words.length; i++) {
      if (line.length() + words[i].length() > elemWidth && line.length() > indent.length()) {
        s.append(line.toString().stripTrailing()).append('\n');
        line = new StringBuilder(indent);
      }
      line.append(words[i]);
      if (i < words.length - 1) line.append(' ');
    }
    s.append(line);
    return "[" + s.substring(indent.length()) + "]";
  }

  private static String word(float v, boolean exp, int padLeft, int padRight, int expDigits) {
    if (Float.isNaN(v)) return pad("nan", padLeft + padRight + 1 + (exp ? expDigits + 2 : 0));
    if (Float.isInfinite(v)) return pad(v > 0 ? "inf" : "-inf", padLeft + padRight + 1 + (exp ? expDigits + 2 : 0));
    String[] p = exp ? scientific(v) : positional(v);
    // Scientific: every mantissa to the same digits, a shorter one with the float's own further
    // digits (numpy's min_digits: the exact value rounded there), not zeros.
    if (exp && p[1].length() < padRight && v != 0) p = scientific(new BigDecimal((double) v).round(new MathContext(padRight + 1, RoundingMode.HALF_EVEN)));
    StringBuilder b = new StringBuilder();
    b.append(" ".repeat(padLeft - p[0].length())).append(p[0]).append('.');
    if (exp) {
      b.append(p[1]).append("0".repeat(padRight - p[1].length()));
      String e = p[2];
      char sign = e.charAt(0);
      String digits = e.substring(1);
      b.append('e').append(sign).append("0".repeat(Math.max(0, expDigits - digits.length()))).append(digits);
    } else {
      b.append(p[1]).append(" ".repeat(padRight - p[1].length()));
    }
    return b.toString();
  }

  private static String pad(String s, int width) {
    return " ".repeat(Math.max(0, width - s.length())) + s;
  }

  /** {integer part, fraction} of the shortest float32 decimal, at most 8 fractional digits, no trailing zeros. */
  static String[] positional(float v) {
    BigDecimal d = new BigDecimal(Float.toString(v));
    // more digits than shown: the float's exact value rounded there (rounding the shortest decimal would round twice)
    if (d.scale() > PRECISION) d = new BigDecimal((double) v).setScale(PRECISION, RoundingMode.HALF_EVEN);
    d = d.stripTrailingZeros();
    String s = d.scale() <= 0 ? d.toBigInteger().toString() + "." : d.toPlainString();
    if (v == 0 && (Float.floatToRawIntBits(v) < 0)) s = "-0.";
    int dot = s.indexOf('.');
    return new String[] {s.substring(0, dot), s.substring(dot + 1)};
  }

  /** {integer digit, fraction, exponent with sign} of the shortest float32 decimal in scientific form. */
  static String[] scientific(float v) {
    if (v == 0) return new String[] {Float.floatToRawIntBits(v) < 0 ? "-0" : "0", "", "+0"};
    BigDecimal d = new BigDecimal(Float.toString(v));
    if (d.precision() > PRECISION + 1) d = d.round(new MathContext(PRECISION + 1, RoundingMode.HALF_EVEN));
    return scientific(d.stripTrailingZeros());
  }

  /** {integer digit, fraction, exponent with sign} of {@code d} in scientific form, its digits as they are. */
  private static String[] scientific(BigDecimal d) {
    int exponent = d.precision() - d.scale() - 1;
    BigDecimal mantissa = d.movePointLeft(exponent);
    String m = mantissa.toPlainString();
    int dot = m.indexOf('.');
    String ip = dot < 0 ? m : m.substring(0, dot), fp = dot < 0 ? "" : m.substring(dot + 1);
    return new String[] {ip, fp, (exponent < 0 ? "-" : "+") + Math.abs(exponent)};
  }
}
