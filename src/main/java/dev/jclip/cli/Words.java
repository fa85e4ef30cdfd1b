package dev.jclip.cli;

/** Counts in words for the commands' messages: "1 shard", "3 shards", "1 class", "2 classes". */
final class Words {
  private Words() {}

  /** {@code n} and {@code noun}, with an s (es after s, x, ch or sh) unless {@code n} is 1. */
  static String count(long n, String noun) {
    if (n == 1) return "1 " + noun;
    boolean es = noun.endsWith("s") || noun.endsWith("x") || noun.endsWith("ch") || noun.endsWith("sh");
    return n + " " + noun + (es ? "es" : "s");
  }
}
