package dev.jclip.cli;

import dev.jclip.tokenizer.ClipTokenizer;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code jclip tokenize}: JSON Lines in (one JSON string per line), JSON Lines out (one array of
 * ints per line, in order). Other tools rely on this contract.
 *
 * <pre>
 * echo '"a photo of a cat"' | scripts/jclip tokenize --bpe
 * [320,1125,539,320,2368]
 * </pre>
 */
@Command(
    name = "tokenize",
    mixinStandardHelpOptions = true,
    description = {
      "Tokenize texts as CLIP does: JSON strings on stdin to arrays of token ids on stdout.",
      "Reads JSON Lines from standard input, one JSON string per line, and writes one JSON array of",
      "token ids per line, in the same order.",
    })
public final class TokenizeCommand implements Callable<Integer> {
  @Option(
      names = "--vocab",
      paramLabel = "FILE",
      description = {
        "bpe_simple_vocab_16e6.txt.gz, or a folder with HuggingFace vocab.json and merges.txt.",
        "Default: $JCLIP_VOCAB, then the cache's bpe_simple_vocab_16e6.txt.gz ($JCLIP_CACHE, else ~/.cache/jclip),",
        "downloaded there when missing."
      })
  Path vocab;

  @Option(names = "--context-length", paramLabel = "N", defaultValue = "77", description = "Ids per text, padded with 0 (default: ${DEFAULT-VALUE}).")
  int contextLength;

  @Option(names = "--truncate", description = "Cut texts that are too long (the last id becomes <|endoftext|>) instead of failing.")
  boolean truncate;

  @Option(names = "--bpe", description = "Write the BPE ids alone: no start/end tokens, no padding, no length limit.")
  boolean bpeOnly;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  /** The longest --context-length taken (a line's output holds that many ids). */
  static final int MAX_CONTEXT = 1 << 20;

  /** Standard input; tests replace it. */
  InputStream in = System.in;

  @Override
  public Integer call() throws IOException {
    PrintWriter err = spec.commandLine().getErr();
    if (contextLength < 1 || contextLength > MAX_CONTEXT) {
      err.println("jclip tokenize: --context-length must be from 1 to " + MAX_CONTEXT + ", got " + contextLength);
      return 2;
    }
    if (bpeOnly && spec.commandLine().getParseResult().hasMatchedOption("--context-length")) {
      err.println("jclip tokenize: --context-length has no effect with --bpe (which prints each text's BPE ids, unpadded)");
      return 2;
    }
    String closed = JsonTextLines.closedStdin(in);
    if (closed != null) {
      err.println("jclip tokenize: " + closed);
      return 1;
    }
    ClipTokenizer tokenizer;
    try {
      tokenizer = ClipTokenizer.load(vocab != null ? vocab : dev.jclip.api.Clip.defaultVocabulary());
    } catch (IOException e) {
      err.println("jclip tokenize: " + e.getMessage());
      return 1;
    }
    Writer out = spec.commandLine().getOut();
    if (out == null) out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8));
    JsonTextLines lines = new JsonTextLines(in);
    StringBuilder line = new StringBuilder();
    while (true) {
      String text;
      try {
        text = lines.next();
      } catch (IllegalArgumentException e) {
        err.println("jclip tokenize: " + e.getMessage());
        out.flush();
        return 1;
      }
      if (text == null) break;
      int lineNo = lines.lineNo();
      int[] ids;
      try {
        ids = bpeOnly ? tokenizer.encode(text) : tokenizer.tokenize(text, contextLength, truncate);
      } catch (IllegalArgumentException e) {
        err.println("jclip tokenize: stdin line " + lineNo + ": " + e.getMessage() + "; use --truncate to cut it");
        out.flush();
        return 1;
      }
      line.setLength(0);
      line.append('[');
      for (int i = 0; i < ids.length; i++) {
        if (i > 0) line.append(',');
        line.append(ids[i]);
      }
      line.append("]\n");
      out.write(line.toString());
      // Answer line by line when the caller waits for each result (an interactive pipe).
      if (in.available() == 0) out.flush();
    }
    out.flush();
    return 0;
  }

}
