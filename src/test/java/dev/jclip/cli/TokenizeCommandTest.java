package dev.jclip.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.testing.Reference;
import java.io.ByteArrayInputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

class TokenizeCommandTest {
  private static CliRun.Result run(String stdin, String... args) {
    return run(stdin.getBytes(StandardCharsets.UTF_8), args);
  }

  private static CliRun.Result run(byte[] stdin, String... args) {
    TokenizeCommand cmd = new TokenizeCommand();
    cmd.in = new ByteArrayInputStream(stdin);
    return CliRun.run(new CommandLine(cmd), args);
  }

  /**
   * The input's edges: a byte-order mark and blank lines at the very end are taken; a blank line
   * before a text, bytes that are not UTF-8 and a lone surrogate are errors naming the line.
   */
  @Test
  void inputEdges() {
    CliRun.Result plain = run("\"a dog\"\n\"a cat\"\n", "--vocab", vocab(), "--bpe");
    assertEquals(0, plain.code(), plain.err());
    CliRun.Result r = run("\uFEFF\"a dog\"\n\"a cat\"\n\n\n", "--vocab", vocab(), "--bpe");
    assertEquals(0, r.code(), r.err());
    assertEquals(plain.out(), r.out());
    r = run("\"a dog\"\n\n\"a cat\"\n", "--vocab", vocab(), "--bpe");
    assertEquals(1, r.code());
    assertTrue(r.err().contains("line 2") && r.err().contains("empty line"), r.err());
    byte[] latin = "\"caf\u00e9\"\n".getBytes(StandardCharsets.ISO_8859_1);
    r = run(latin, "--vocab", vocab(), "--bpe");
    assertEquals(1, r.code());
    assertTrue(r.err().contains("line 1") && r.err().contains("not UTF-8"), r.err());
    // after 100 good lines: the bad one named by its own number, the good ones answered
    byte[] good = "\"a dog\"\r\n".repeat(100).getBytes(StandardCharsets.UTF_8);
    byte[] mixed = java.util.Arrays.copyOf(good, good.length + latin.length);
    System.arraycopy(latin, 0, mixed, good.length, latin.length);
    r = run(mixed, "--vocab", vocab(), "--bpe");
    assertEquals(1, r.code());
    assertTrue(r.err().contains("line 101") && r.err().contains("not UTF-8"), r.err());
    assertEquals(100, r.out().lines().count(), "the 100 good lines answered (CRLF taken)");
    r = run("\"ok\"\n\"\\ud83d\"\n", "--vocab", vocab(), "--bpe");
    assertEquals(1, r.code());
    assertTrue(r.err().contains("line 2") && r.err().contains("lone surrogate (\\ud83d)"), r.err());
    r = run("\"\\ud83d\\ude00\"\n", "--vocab", vocab(), "--bpe");
    assertEquals(0, r.code(), "a surrogate pair is a character: " + r.err());
  }

  private static String vocab() {
    return Reference.file("bpe_simple_vocab_16e6.txt.gz").toString();
  }

  @Test
  void writesOneArrayPerLineInOrder() {
    CliRun.Result r = run("\"a photo of a cat\"\n\"\"\n\"a dog\"\n", "--vocab", vocab(), "--bpe");
    assertEquals(0, r.code(), r.err());
    assertEquals("[320,1125,539,320,2368]\n[]\n[320,1929]\n", r.out());

    r = run("\"a dog\"\n", "--vocab", vocab(), "--context-length", "6");
    assertEquals("[49406,320,1929,49407,0,0]\n", r.out());
  }

  @Test
  void tooLongFailsUnlessTruncated() {
    String line = "\"" + "cat ".repeat(10) + "\"\n";
    CliRun.Result r = run(line, "--vocab", vocab(), "--context-length", "5");
    assertEquals(1, r.code());
    assertTrue(r.err().contains("line 1") && r.err().contains("too long") && r.err().contains("cat cat"), r.err());
    r = run(line, "--vocab", vocab(), "--context-length", "5", "--truncate");
    assertEquals(0, r.code(), r.err());
    assertEquals("[49406,2368,2368,2368,49407]\n", r.out());
  }

  @Test
  void badInputNamesTheLine() {
    CliRun.Result r = run("\"ok\"\n{\"text\": 1}\n", "--vocab", vocab(), "--bpe");
    assertEquals(1, r.code());
    assertTrue(r.out().startsWith("["), r.out());
    assertTrue(r.err().contains("line 2") && r.err().contains("JSON string"), r.err());
    r = run("\"unterminated\n", "--vocab", vocab(), "--bpe");
    assertTrue(r.err().contains("line 1") && r.err().contains("not valid JSON"), r.err());
    // anything after the string is an error, never dropped
    for (String trailing : new String[] {"\"a\" \"b\"\n", "\"a\",\n", "\"a\" xyz\n"}) {
      r = run("\"ok\"\n" + trailing, "--vocab", vocab(), "--bpe");
      assertEquals(1, r.code(), trailing);
      assertTrue(r.err().contains("line 2") && (r.err().contains("something follows it") || r.err().contains("not valid JSON")), trailing + ": " + r.err());
      assertTrue(!r.err().contains("DeserializationFeature") && !r.err().contains("jackson"), "the parser's own words: " + r.err());
    }
    // a context length no text could fill, and one --bpe would not use, are usage errors
    r = run("\"a\"\n", "--vocab", vocab(), "--context-length", "2147483647");
    assertEquals(2, r.code(), r.err());
    r = run("\"a\"\n", "--vocab", vocab(), "--bpe", "--context-length", "3");
    assertEquals(2, r.code(), r.err());
    assertTrue(r.err().contains("no effect with --bpe"), r.err());
  }

  /**
   * A closed standard input ({@code <&-}) is said to be closed: the JVM's own {@code lib/modules}
   * then sits on descriptor 0, and reading it used to be "not UTF-8 text" (or worse, its bytes); a
   * file or /dev/null on standard input is read as before.
   */
  @Test
  void closedStandardInputIsSaidToBeClosed(@TempDir Path dir) throws Exception {
    Path texts = Files.writeString(dir.resolve("texts.jsonl"), "\"a dog\"\n");
    String vocab = Reference.dir().resolve("bpe_simple_vocab_16e6.txt.gz").toString();
    String[] closed = child("<&-", vocab);
    assertEquals("1", closed[0], closed[1]);
    assertTrue(closed[1].contains("jclip tokenize: standard input is closed"), closed[1]);
    String[] file = child("< '" + texts + "'", vocab);
    assertEquals("0", file[0], file[1]);
    assertTrue(file[1].startsWith("[49406,320,1929,49407,0,"), file[1]);
    String[] empty = child("< /dev/null", vocab);
    assertEquals("0", empty[0], empty[1]);
    assertEquals("", empty[1].strip());
  }

  /** {@code jclip tokenize} in a child JVM with standard input set by the shell's {@code redirect}: exit status and output. */
  private static String[] child(String redirect, String vocab) throws Exception {
    Process p = new ProcessBuilder("/bin/sh", "-c", "exec \"$0\" -cp \"$1\" dev.jclip.cli.Main tokenize --vocab \"$2\" " + redirect,
        dev.jclip.io.AtomicFileTest.java(), System.getProperty("java.class.path"), vocab).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(60, java.util.concurrent.TimeUnit.SECONDS));
    return new String[] {String.valueOf(p.exitValue()), out};
  }

  @Test
  void missingVocabularySaysHowToGetIt(@TempDir Path dir) {
    CliRun.Result r = run("\"x\"\n", "--vocab", dir.resolve("missing.gz").toString());
    assertEquals(1, r.code());
    assertTrue(r.err().contains("missing.gz"), r.err());
  }

  @Test
  void benchTokenizerRuns(@TempDir Path dir) throws Exception {
    Path classes = dir.resolve("c.json");
    Path templates = dir.resolve("t.json");
    Files.writeString(classes, "[\"cat\", \"dog\"]");
    Files.writeString(templates, "[\"a photo of a {}.\", \"a {} in the snow\"]");
    StringWriter out = new StringWriter();
    CommandLine cl = Main.commandLine();
    cl.setOut(new PrintWriter(out));
    int code = cl.execute("bench", "tokenizer", "--vocab", vocab(), "--classes", classes.toString(),
        "--templates", templates.toString(), "--threads", "2", "--repeats", "1", "--warmup", "0");
    assertEquals(0, code);
    assertTrue(out.toString().contains("4 texts") && out.toString().contains("tokens/s"), out.toString());
  }
}
