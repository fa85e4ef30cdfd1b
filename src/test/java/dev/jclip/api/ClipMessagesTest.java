package dev.jclip.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.testing.Reference;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * {@link Clip.Options#withMessages}: a Clip's notes go to the caller's consumer, a line each, not
 * to stderr; a redrawn progress bar reaches it as its last state.
 */
class ClipMessagesTest {
  @Test
  void aStreamsLinesReachTheConsumerWholeAndARedrawnBarAsItsLastState() {
    List<String> got = new ArrayList<>();
    PrintStream s = MessageStream.of(got::add);
    s.print("\rvocab [#   ]  10% 0.1/1.3 MB");
    s.print("\rvocab [####] 100% 1.3/1.3 MB");
    s.println();
    s.println("jclip: wait  ");
    s.println();
    byte[] utf8 = "café – ok\n".getBytes(StandardCharsets.UTF_8);
    for (byte b : utf8) s.write(b); // a character's bytes in separate writes
    s.printf("a%nb%n");
    s.print("crlf\r\n");
    assertEquals(List.of("vocab [####] 100% 1.3/1.3 MB", "jclip: wait", "café – ok", "a", "b", "crlf"), got);
    PrintStream failing = MessageStream.of(m -> {
      throw new IllegalStateException("the log is down");
    });
    failing.println("dropped, not thrown into the download");
    assertTrue(MessageStream.of(null) == System.err, "no consumer: stderr itself");
  }

  @Test
  void aClipsNotesGoToItsConsumer() throws Exception {
    List<String> got = Collections.synchronizedList(new ArrayList<>());
    PrintStream err = System.err;
    java.io.ByteArrayOutputStream stderr = new java.io.ByteArrayOutputStream();
    Clip.Options o = Clip.Options.defaults().withVocabulary(Reference.file("bpe_simple_vocab_16e6.txt.gz")).withMessages(got::add);
    assertNotNull(o.messages());
    assertEquals(o.messages(), o.withDevice("cpu").withPrecision("fp32").withThreads(1).withBatchSize(2).withActivation("gelu").messages(),
        "every with... keeps it");
    System.setErr(new PrintStream(stderr, true, StandardCharsets.UTF_8));
    try (Clip clip = Clip.load(Reference.file("models/vit-b32-tiny/state_dict.pt").toString(), o)) {
      clip.encodeText(clip.tokenize("a cat"));
    } finally {
      System.setErr(err);
    }
    // device auto says which device it took (the CPU here, or a GPU)
    assertTrue(got.stream().anyMatch(m -> m.toLowerCase(java.util.Locale.ROOT).matches(".*\\b(cpu|cuda)\\b.*")), got.toString());
    assertTrue(stderr.toString(StandardCharsets.UTF_8).lines().noneMatch(l -> got.contains(l)), "not on stderr as well: " + stderr);
  }
}
