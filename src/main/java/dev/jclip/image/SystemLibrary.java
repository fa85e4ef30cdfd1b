package dev.jclip.image;

import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.util.function.Function;

/** Binding a system library (the codecs Pillow itself uses) through the foreign-function API. */
final class SystemLibrary {
  private SystemLibrary() {}

  /**
   * The first of {@code names} that loads and binds, or null when none does (the caller then falls
   * back to a Java decoder).
   *
   * @param bind looks up the library's functions; may throw when a symbol is missing
   */
  static <T> T load(Function<SymbolLookup, T> bind, String... names) {
    for (String name : names) {
      try {
        return bind.apply(SymbolLookup.libraryLookup(name, Arena.global()));
      } catch (RuntimeException | LinkageError e) {
        // try the next name
      }
    }
    return null;
  }
}
