package dev.jclip.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * Standard input as texts, one JSON string a line ({@code tokenize}, {@code embed-texts}): strict
 * UTF-8 (a byte that is not is an error, not U+FFFD), a byte-order mark at the start skipped, blank
 * lines at the very end ignored (an editor's trailing newline) but a blank line before a text an
 * error, anything after the string on its line an error, and a text holding a lone surrogate
 * ({@code "\ud83d"}) refused as the reference's Python refuses to encode it. Errors are {@link
 * IllegalArgumentException}s starting "stdin line N: ".
 */
final class JsonTextLines {
  private final InputStream in;
  private final java.nio.charset.CharsetDecoder utf8 = StandardCharsets.UTF_8.newDecoder()
      .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
  private final java.io.ByteArrayOutputStream line = new java.io.ByteArrayOutputStream();
  private boolean ended;
  private final ObjectMapper json = new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);
  private int lineNo;
  /** Blank lines read and not yet known to be the end. */
  private int blanks;

  /**
   * Why {@code in}, the process's standard input, cannot hold texts, or null. Run with standard
   * input closed ({@code <&-}), the JVM finds descriptor 0 free and its first file opened takes it
   * (on Linux the runtime's {@code lib/modules}), so reading System.in would read that file: a
   * descriptor 0 that names a file of the Java runtime or this program's jar is taken as closed.
   * Null for any other stream, and where {@code /proc/self/fd} is not there to ask.
   */
  static String closedStdin(InputStream in) {
    if (in != System.in) return null;
    try {
      java.nio.file.Path fd0 = java.nio.file.Path.of("/proc/self/fd/0");
      if (!java.nio.file.Files.isSymbolicLink(fd0)) return null;
      java.nio.file.Path target = java.nio.file.Files.readSymbolicLink(fd0);
      if (!target.isAbsolute()) return null; // pipe:[...], socket:[...]: a real input
      java.nio.file.Path home = java.nio.file.Path.of(System.getProperty("java.home")).toRealPath();
      boolean ours = target.startsWith(home);
      java.security.CodeSource code = JsonTextLines.class.getProtectionDomain().getCodeSource();
      if (!ours && code != null && code.getLocation() != null && "file".equals(code.getLocation().getProtocol())) {
        java.nio.file.Path jar = java.nio.file.Path.of(code.getLocation().toURI());
        ours = java.nio.file.Files.isRegularFile(jar) && target.equals(jar.toRealPath());
      }
      return ours ? "standard input is closed: pipe the texts in, one JSON string a line (such as \"a dog\")" : null;
    } catch (IOException | java.net.URISyntaxException | RuntimeException e) {
      return null;
    }
  }

  JsonTextLines(InputStream in) {
    this.in = in instanceof java.io.BufferedInputStream ? in : new java.io.BufferedInputStream(in, 1 << 16);
  }

  /**
   * The next line's bytes decoded (its "\n" or "\r\n" dropped), or null at the end. Lines are cut
   * as bytes and each decoded alone, so that a line that is not UTF-8 is named by its own number,
   * whatever came before it.
   */
  private String readLine(int number) throws IOException {
    if (ended) return null;
    line.reset();
    for (int b; ; ) {
      b = in.read();
      if (b < 0) {
        ended = true;
        if (line.size() == 0) return null;
        break;
      }
      if (b == '\n') break;
      line.write(b);
    }
    byte[] bytes = line.toByteArray();
    int len = bytes.length > 0 && bytes[bytes.length - 1] == '\r' ? bytes.length - 1 : bytes.length;
    try {
      return utf8.reset().decode(java.nio.ByteBuffer.wrap(bytes, 0, len)).toString();
    } catch (CharacterCodingException e) {
      throw new IllegalArgumentException("stdin line " + number + ": not UTF-8 text");
    }
  }

  /** The number of the line {@link #next} returned last. */
  int lineNo() {
    return lineNo;
  }

  /** The next text, or null at the end. */
  String next() throws IOException {
    while (true) {
      String raw = readLine(lineNo + blanks + 1);
      if (raw == null) return null; // blank lines at the end: ignored
      if (lineNo + blanks == 0 && raw.startsWith("\uFEFF")) raw = raw.substring(1);
      if (raw.isBlank()) {
        blanks++;
        continue;
      }
      if (blanks > 0) throw new IllegalArgumentException("stdin line " + (lineNo + 1) + ": expected a JSON string such as \"a dog\", got an empty line");
      lineNo++;
      JsonNode node;
      try {
        node = json.readTree(raw);
      } catch (JsonProcessingException e) {
        // in the user's words, not the parser's (its messages name its own classes and features)
        String m = e.getOriginalMessage() == null ? "" : e.getOriginalMessage();
        String why = m.startsWith("Trailing token") ? "not a single JSON string: something follows it" : "not valid JSON";
        int column = e.getLocation() == null ? -1 : e.getLocation().getColumnNr();
        throw new IllegalArgumentException("stdin line " + lineNo + ": " + why + (column > 0 ? " (at column " + column + ")" : "") + ": " + abbreviate(raw));
      }
      if (node == null || !node.isTextual()) {
        throw new IllegalArgumentException("stdin line " + lineNo + ": expected a JSON string such as \"a dog\", got " + abbreviate(raw));
      }
      String text = node.textValue();
      for (int i = 0; i < text.length(); i++) {
        char c = text.charAt(i);
        if (Character.isHighSurrogate(c) && i + 1 < text.length() && Character.isLowSurrogate(text.charAt(i + 1))) {
          i++;
        } else if (Character.isSurrogate(c)) {
          throw new IllegalArgumentException(String.format("stdin line %d: the text holds a lone surrogate (\\u%04x), which is not Unicode text", lineNo, (int) c));
        }
      }
      return text;
    }
  }

  static String abbreviate(String s) {
    return s.length() > 80 ? s.substring(0, 80) + "..." : s;
  }
}
