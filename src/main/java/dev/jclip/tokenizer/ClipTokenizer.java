package dev.jclip.tokenizer;

import dev.jclip.io.DType;
import dev.jclip.io.Tensor;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

/**
 * CLIP's BPE tokenizer, identical in output to the reference {@code SimpleTokenizer} and {@code
 * clip.tokenize}: text cleaning ({@link TextCleaner}), the token pattern ({@link PreTokenizer}),
 * byte-level BPE ({@link Bpe}) with a bounded thread-safe cache. One instance may be shared by any
 * number of threads.
 *
 * <pre>{@code
 * ClipTokenizer tok = ClipTokenizer.load(Path.of("bpe_simple_vocab_16e6.txt.gz"));
 * int[] ids = tok.encode("a photo of a cat");          // [320, 1125, 539, 320, 2368]
 * int[][] batch = tok.tokenize(List.of("a dog"), 77, false); // 49406, ids..., 49407, 0...
 * String text = tok.decode(ids);                       // "a photo of a cat "
 * }</pre>
 */
public final class ClipTokenizer {
  public static final int DEFAULT_CONTEXT_LENGTH = 77;
  /** BPE results kept in the cache; enough for every word of a large caption set. */
  public static final int DEFAULT_CACHE_SIZE = 1 << 16;
  /** The environment variable naming the default vocabulary file. */
  public static final String VOCAB_ENV = "JCLIP_VOCAB";
  public static final String VOCAB_FILE_NAME = "bpe_simple_vocab_16e6.txt.gz";

  private final Vocabulary vocab;
  private final Bpe bpe;
  private final int startId;
  private final int endId;

  public ClipTokenizer(Vocabulary vocab) {
    this(vocab, DEFAULT_CACHE_SIZE);
  }

  public ClipTokenizer(Vocabulary vocab, int cacheSize) {
    this.vocab = vocab;
    this.bpe = new Bpe(vocab, cacheSize);
    this.startId = vocab.id(Vocabulary.START_OF_TEXT);
    this.endId = vocab.id(Vocabulary.END_OF_TEXT);
  }

  /** Loads the vocabulary with {@link Vocabulary#load} and builds a tokenizer on it. */
  public static ClipTokenizer load(Path vocabulary) throws IOException {
    return new ClipTokenizer(Vocabulary.load(vocabulary));
  }

  /**
   * The default vocabulary: {@code $JCLIP_VOCAB}, else {@code ~/.cache/jclip/bpe_simple_vocab_16e6.txt.gz}.
   *
   * @throws IOException explaining how to get the file when neither exists
   */
  public static Path defaultVocabulary() throws IOException {
    String env = System.getenv(VOCAB_ENV);
    if (env != null && !env.isBlank()) {
      Path p = Path.of(env);
      if (!Files.exists(p)) {
        throw new IOException(VOCAB_ENV + " names " + p + ", which does not exist; point it at "
            + VOCAB_FILE_NAME + " (or a folder with vocab.json and merges.txt)");
      }
      return p;
    }
    Path cached = userCache().resolve(VOCAB_FILE_NAME);
    if (Files.exists(cached)) return cached;
    throw new IOException("no BPE vocabulary (" + VOCAB_ENV + " is not set and " + cached + " does not exist)" + HOW_TO_GET);
  }

  /** How to get the vocabulary, for messages that lack it. */
  public static final String HOW_TO_GET = ": run `jclip download tokenizer` when online, or name one with --vocab FILE (in Java:"
      + " Clip.Options.withVocabulary) or " + VOCAB_ENV + "=FILE. The file is clip/" + VOCAB_FILE_NAME
      + " of the openai/CLIP repository; a HuggingFace folder with vocab.json and merges.txt works too.";

  /** Where {@code jclip download tokenizer} puts it: the cache of {@link dev.jclip.io.Downloader#defaultCache()} ($JCLIP_CACHE honoured). */
  private static Path userCache() {
    return dev.jclip.io.Downloader.defaultCache();
  }

  public Vocabulary vocabulary() {
    return vocab;
  }

  public int startOfText() {
    return startId;
  }

  public int endOfText() {
    return endId;
  }

  /**
   * The position of the end-of-text token in the sequence {@code ids[from, from + length)}: the
   * first position of its largest id, as {@code model.py}'s {@code text.argmax(dim=-1)} finds it
   * (the end-of-text token has the vocabulary's largest id).
   */
  public static int endOfTextPosition(int[] ids, int from, int length) {
    int best = 0;
    for (int t = 1; t < length; t++) if (ids[from + t] > ids[from + best]) best = t;
    return best;
  }

  /** {@code SimpleTokenizer.encode}: the BPE ids of a text, without start and end tokens. */
  public int[] encode(String text) {
    String cleaned = TextCleaner.clean(text);
    IdSink sink = new IdSink(Math.max(8, cleaned.length() / 3));
    PreTokenizer.split(cleaned, sink);
    return sink.toArray();
  }

  /** Appends the ids of each pre-token to a growing array. */
  private final class IdSink implements PreTokenizer.Sink {
    int[] ids;
    int size;

    IdSink(int capacity) {
      ids = new int[capacity];
    }

    @Override
    public void token(String text, int start, int end) {
      String word = text.substring(start, end);
      int[] part;
      if (word.charAt(0) == '<' && word.equals(Vocabulary.START_OF_TEXT)) part = new int[] {startId};
      else if (word.charAt(0) == '<' && word.equals(Vocabulary.END_OF_TEXT)) part = new int[] {endId};
      else {
        byte[] utf8 = word.getBytes(StandardCharsets.UTF_8);
        part = bpe.encode(word, utf8, utf8.length);
      }
      if (size + part.length > ids.length) ids = Arrays.copyOf(ids, Math.max(ids.length * 2, size + part.length));
      System.arraycopy(part, 0, ids, size, part.length);
      size += part.length;
    }

    int[] toArray() {
      return Arrays.copyOf(ids, size);
    }
  }

  /**
   * {@code clip.tokenize(texts, context_length, truncate)}: per text the start token, the BPE ids
   * and the end token, zero-padded to {@code contextLength}.
   *
   * @throws IllegalArgumentException naming the text when it is too long and {@code truncate} is
   *     false; with {@code truncate} the ids are cut and the last kept slot becomes the end token
   */
  public int[][] tokenize(List<String> texts, int contextLength, boolean truncate) {
    int[][] out = new int[texts.size()][];
    for (int i = 0; i < out.length; i++) out[i] = tokenize(texts.get(i), contextLength, truncate);
    return out;
  }

  /**
   * {@link #tokenize(List, int, boolean)} as the model's input tensor: int32 {@code [T,
   * contextLength]} named "tokens", the layout of the reference's golden files.
   */
  public Tensor tokenizeToTensor(List<String> texts, int contextLength, boolean truncate) {
    int[][] rows = tokenize(texts, contextLength, truncate);
    ByteBuffer b = ByteBuffer.allocate(Math.multiplyExact(rows.length, contextLength) * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (int[] row : rows) for (int id : row) b.putInt(id);
    b.flip();
    return new Tensor("tokens", DType.I32, new long[] {rows.length, contextLength}, b);
  }

  /** {@link #tokenize(List, int, boolean)} for one text. */
  public int[] tokenize(String text, int contextLength, boolean truncate) {
    if (contextLength < 1) throw new IllegalArgumentException("context length must be at least 1, got " + contextLength);
    int[] ids = encode(text);
    int[] row = new int[contextLength];
    int total = ids.length + 2;
    if (total > contextLength && !truncate) {
      throw new IllegalArgumentException("Input " + abbreviate(text) + " is too long for context length "
          + contextLength + " (" + total + " tokens with start and end)");
    }
    row[0] = startId;
    int kept = Math.min(ids.length, contextLength - 1);
    System.arraycopy(ids, 0, row, 1, Math.max(0, kept));
    if (total > contextLength) row[contextLength - 1] = endId;
    else row[ids.length + 1] = endId;
    return row;
  }

  /** Whether {@link #tokenize} without truncation would reject the text. */
  public boolean isTooLong(String text, int contextLength) {
    return encode(text).length + 2 > contextLength;
  }

  /**
   * {@code SimpleTokenizer.decode}: the tokens' bytes as UTF-8 (invalid sequences become U+FFFD)
   * with every {@code </w>} replaced by a space. Start, end and padding ids are decoded like any
   * other id, as the reference does.
   */
  public String decode(int[] ids) {
    StringBuilder chars = new StringBuilder(ids.length * 4);
    for (int id : ids) chars.append(vocab.token(id));
    byte[] bytes = new byte[chars.length()];
    for (int i = 0; i < bytes.length; i++) {
      int b = ByteEncoder.decode(chars.charAt(i));
      if (b < 0) throw new IllegalStateException("vocabulary token has a character that stands for no byte: " + chars.charAt(i));
      bytes[i] = (byte) b;
    }
    return Utf8.decodeReplace(bytes, 0, bytes.length).replace(Vocabulary.END_OF_WORD, " ");
  }

  private static String abbreviate(String text) {
    String t = text.length() > 120 ? text.substring(0, 120) + "... (" + text.length() + " chars)" : text;
    return "\"" + t + "\"";
  }
}
