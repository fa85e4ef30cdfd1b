package dev.jclip.tokenizer;

/**
 * GPT-2's reversible byte-to-character map ({@code bytes_to_unicode} in the reference): printable
 * Latin-1 bytes map to themselves, the other 68 bytes to U+0100.. in byte order, so every byte
 * string becomes a string without whitespace or control characters that BPE can work on.
 */
final class ByteEncoder {
  private ByteEncoder() {}

  private static final char[] BYTE_TO_CHAR = build();
  private static final short[] CHAR_TO_BYTE = invert(BYTE_TO_CHAR);

  private static short[] invert(char[] table) {
    short[] inverse = new short[256 + 68];
    java.util.Arrays.fill(inverse, (short) -1);
    for (int b = 0; b < 256; b++) inverse[table[b]] = (short) b;
    return inverse;
  }

  private static char[] build() {
    char[] table = new char[256];
    int next = 0;
    for (int b = 0; b < 256; b++) {
      boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      table[b] = printable ? (char) b : (char) (256 + next++);
    }
    return table;
  }

  /** The character standing for byte {@code b} (0..255). */
  static char encode(int b) {
    return BYTE_TO_CHAR[b & 0xFF];
  }

  /** The byte a character stands for, or -1 if it stands for none. */
  static int decode(char c) {
    return c < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[c] : -1;
  }

  /**
   * The 256 characters in the reference's vocabulary order: printable bytes first ({@code !..~},
   * {@code ¡..¬}, {@code ®..ÿ}), then the remapped ones; this order gives their ids 0..255.
   */
  static char[] vocabularyOrder() {
    char[] order = new char[256];
    int n = 0;
    for (int b = 0; b < 256; b++) if (BYTE_TO_CHAR[b] == b) order[n++] = (char) b;
    for (int b = 0; b < 256; b++) if (BYTE_TO_CHAR[b] != b) order[n++] = BYTE_TO_CHAR[b];
    return order;
  }
}
