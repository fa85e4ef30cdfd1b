package dev.jclip.tokenizer;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.GZIPInputStream;
import java.util.zip.ZipException;

/**
 * A CLIP BPE vocabulary: the token strings by id and the merges in rank order.
 *
 * <p>Two sources give the same ids: OpenAI's {@code bpe_simple_vocab_16e6.txt.gz} (merges only;
 * the ids follow from the reference's construction: 256 byte characters, the same with {@code
 * </w>}, one token per merge, then {@code <|startoftext|>} and {@code <|endoftext|>}) and
 * HuggingFace's {@code vocab.json} + {@code merges.txt}.
 *
 * <pre>{@code
 * Vocabulary v = Vocabulary.load(Path.of("bpe_simple_vocab_16e6.txt.gz"));
 * int eot = v.id("<|endoftext|>"); // 49407
 * }</pre>
 */
public final class Vocabulary {
  /** Number of merges the reference reads: lines 1..48894 of the OpenAI file. */
  public static final int MERGES = 49152 - 256 - 2;

  public static final String START_OF_TEXT = "<|startoftext|>";
  public static final String END_OF_TEXT = "<|endoftext|>";
  static final String END_OF_WORD = "</w>";

  private final String source;
  private final String[] tokens;
  private final Map<String, Integer> ids;
  private final List<List<String>> merges;

  private Vocabulary(String source, String[] tokens, Map<String, Integer> ids, List<String[]> merges)
      throws IOException {
    this.source = source;
    this.tokens = tokens;
    this.ids = ids;
    this.merges = merges.stream().map(List::of).toList();
    validate();
  }

  /**
   * Loads a vocabulary: a {@code .gz} file in OpenAI's format, or a directory (or its {@code
   * vocab.json}) holding HuggingFace's {@code vocab.json} and {@code merges.txt}.
   *
   * @throws IOException naming the file and what is wrong with it
   */
  public static Vocabulary load(Path path) throws IOException {
    if (Files.isDirectory(path)) {
      return fromHuggingFace(path.resolve("vocab.json"), path.resolve("merges.txt"));
    }
    if (path.getFileName() != null && path.getFileName().toString().endsWith(".json")) {
      Path dir = path.toAbsolutePath().getParent();
      return fromHuggingFace(path, dir.resolve("merges.txt"));
    }
    return fromOpenAi(path);
  }

  /** Reads OpenAI's gzip-compressed merges file ({@code bpe_simple_vocab_16e6.txt.gz}). */
  public static Vocabulary fromOpenAi(Path gz) throws IOException {
    byte[] raw = readGzip(gz);
    String text = decodeUtf8(raw, gz);
    String[] lines = text.split("\n", -1);
    if (lines.length < MERGES + 1) {
      throw new IOException(
          gz + ": has " + lines.length + " lines, a CLIP BPE file has at least " + (MERGES + 1)
              + " (a version line and " + MERGES + " merges)");
    }
    List<String[]> merges = new ArrayList<>(MERGES);
    for (int i = 1; i <= MERGES; i++) merges.add(parseMerge(lines[i], gz, i + 1));

    char[] bytes = ByteEncoder.vocabularyOrder();
    List<String> vocab = new ArrayList<>(2 * 256 + MERGES + 2);
    for (char c : bytes) vocab.add(String.valueOf(c));
    for (char c : bytes) vocab.add(c + END_OF_WORD);
    for (String[] m : merges) vocab.add(m[0] + m[1]);
    vocab.add(START_OF_TEXT);
    vocab.add(END_OF_TEXT);
    // dict(zip(vocab, range(len(vocab)))): a repeated string keeps its last id.
    Map<String, Integer> ids = new HashMap<>(vocab.size() * 2);
    for (int i = 0; i < vocab.size(); i++) ids.put(vocab.get(i), i);
    return new Vocabulary(gz.toString(), vocab.toArray(String[]::new), ids, merges);
  }

  /** Reads HuggingFace's {@code vocab.json} (token to id) and {@code merges.txt}. */
  public static Vocabulary fromHuggingFace(Path vocabJson, Path mergesTxt) throws IOException {
    Map<String, Integer> ids = new HashMap<>(100_000);
    int maxId = -1;
    try (JsonParser p = new ObjectMapper().getFactory().createParser(openFile(vocabJson))) {
      if (p.nextToken() != JsonToken.START_OBJECT) {
        throw new IOException(vocabJson + ": expected a JSON object mapping tokens to ids");
      }
      while (p.nextToken() == JsonToken.FIELD_NAME) {
        String token = p.currentName();
        if (p.nextToken() != JsonToken.VALUE_NUMBER_INT) {
          throw new IOException(vocabJson + ": the id of token " + quote(token) + " is not an integer");
        }
        long id = p.getLongValue();
        if (id < 0 || id > 10_000_000) {
          throw new IOException(vocabJson + ": token " + quote(token) + " has id " + id + " out of range");
        }
        if (ids.put(token, (int) id) != null) {
          throw new IOException(vocabJson + ": token " + quote(token) + " appears twice");
        }
        maxId = Math.max(maxId, (int) id);
      }
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new IOException(vocabJson + ": not valid JSON: " + e.getOriginalMessage(), e);
    }
    String[] tokens = new String[maxId + 1];
    for (Map.Entry<String, Integer> e : ids.entrySet()) {
      if (tokens[e.getValue()] != null) {
        throw new IOException(vocabJson + ": id " + e.getValue() + " is given to both "
            + quote(tokens[e.getValue()]) + " and " + quote(e.getKey()));
      }
      tokens[e.getValue()] = e.getKey();
    }
    for (int i = 0; i < tokens.length; i++) {
      if (tokens[i] == null) throw new IOException(vocabJson + ": no token has id " + i + " (ids must be 0.." + maxId + ")");
    }

    String text = decodeUtf8(Files.readAllBytes(requireFile(mergesTxt)), mergesTxt);
    String[] lines = text.split("\n", -1);
    List<String[]> merges = new ArrayList<>(MERGES);
    // As HuggingFace's CLIPTokenizer: skip the "#version" line, keep at most MERGES merges.
    int first = lines.length > 0 && lines[0].startsWith("#version") ? 1 : 0;
    for (int i = first; i < lines.length && merges.size() < MERGES; i++) {
      if (lines[i].isBlank()) continue;
      merges.add(parseMerge(lines[i], mergesTxt, i + 1));
    }
    return new Vocabulary(vocabJson + " + " + mergesTxt, tokens, ids, merges);
  }

  private void validate() throws IOException {
    for (String special : new String[] {START_OF_TEXT, END_OF_TEXT}) {
      if (!ids.containsKey(special)) throw new IOException(source + ": has no token " + special);
    }
    for (char c : ByteEncoder.vocabularyOrder()) {
      String s = String.valueOf(c);
      if (!ids.containsKey(s) || !ids.containsKey(s + END_OF_WORD)) {
        throw new IOException(source + ": lacks the byte-level token " + quote(s) + " or " + quote(s + END_OF_WORD));
      }
    }
    for (int r = 0; r < merges.size(); r++) {
      List<String> m = merges.get(r);
      for (String part : new String[] {m.get(0), m.get(1), m.get(0) + m.get(1)}) {
        if (!ids.containsKey(part)) {
          throw new IOException(source + ": merge " + r + " (" + m.get(0) + " " + m.get(1) + ") uses "
              + quote(part) + ", which is not in the vocabulary");
        }
      }
    }
  }

  private static String[] parseMerge(String line, Path file, int lineNumber) throws IOException {
    // Python's str.split(): runs of whitespace, ignoring leading and trailing ones.
    String[] parts = line.strip().split("\\s+");
    if (parts.length != 2 || parts[0].isEmpty()) {
      throw new IOException(file + ": line " + lineNumber + " is not a merge of two symbols: " + quote(line));
    }
    return parts;
  }

  private static InputStream openFile(Path file) throws IOException {
    return Files.newInputStream(requireFile(file));
  }

  private static Path requireFile(Path file) throws IOException {
    if (!Files.isRegularFile(file)) throw new NoSuchFileException(file.toString(), null, "vocabulary file not found");
    return file;
  }

  private static byte[] readGzip(Path gz) throws IOException {
    try (InputStream in = new GZIPInputStream(openFile(gz), 1 << 16)) {
      ByteArrayOutputStream out = new ByteArrayOutputStream(2 << 20);
      byte[] buf = new byte[1 << 16];
      long total = 0;
      for (int n; (n = in.read(buf)) > 0; ) {
        total += n;
        // The real file is 1.6 MB unpacked; refuse a decompression bomb.
        if (total > 64L << 20) throw new IOException(gz + ": unpacks to more than 64 MiB, not a CLIP BPE file");
        out.write(buf, 0, n);
      }
      return out.toByteArray();
    } catch (ZipException | EOFException e) {
      throw new IOException(gz + ": not a valid gzip file (" + e.getMessage() + "); expected bpe_simple_vocab_16e6.txt.gz", e);
    }
  }

  private static String decodeUtf8(byte[] raw, Path file) throws IOException {
    try {
      return StandardCharsets.UTF_8.newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT)
          .decode(ByteBuffer.wrap(raw))
          .toString();
    } catch (CharacterCodingException e) {
      throw new IOException(file + ": not valid UTF-8 text", e);
    }
  }

  private static String quote(String s) {
    return "\"" + (s.length() > 40 ? s.substring(0, 40) + "..." : s) + "\"";
  }

  /** Where this vocabulary was read from. */
  public String source() {
    return source;
  }

  /** Number of ids (49408 for CLIP). */
  public int size() {
    return tokens.length;
  }

  /** The token string of an id. */
  public String token(int id) {
    if (id < 0 || id >= tokens.length) {
      throw new IllegalArgumentException("token id " + id + " is outside the vocabulary (0.." + (tokens.length - 1) + ")");
    }
    return tokens[id];
  }

  /** The id of a token string, or -1. */
  public int id(String token) {
    Integer id = ids.get(token);
    return id == null ? -1 : id;
  }

  /** The merges in rank order, each a pair of token strings (unmodifiable). */
  public List<List<String>> merges() {
    return merges;
  }
}
