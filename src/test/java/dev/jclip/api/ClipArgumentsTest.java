package dev.jclip.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.cpu.CpuFeatures;
import dev.jclip.testing.Reference;
import java.io.InterruptedIOException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.RejectedExecutionException;
import org.junit.jupiter.api.Test;

/**
 * What the API refuses, and how: null and out-of-range arguments with the argument named, before
 * any work; a closed Clip or batcher whatever the call's size; an interrupted load naming the file.
 */
class ClipArgumentsTest {
  static final Path MODEL = Reference.dir().resolve("models/vit-b32-tiny/state_dict.pt");

  static Clip.Options options() {
    return Clip.Options.defaults().withDevice("cpu").withThreads(1).withVocabulary(Reference.file("bpe_simple_vocab_16e6.txt.gz"));
  }

  @Test
  void recordsAndOptionsCheckTheirArguments() {
    NullPointerException d = assertThrows(NullPointerException.class, () -> Clip.Options.defaults().withDevice(null));
    assertTrue(d.getMessage().startsWith("device"), d.getMessage());
    NullPointerException p = assertThrows(NullPointerException.class, () -> Clip.Options.defaults().withPrecision(null));
    assertTrue(p.getMessage().startsWith("precision"), p.getMessage());
    assertThrows(IllegalArgumentException.class, () -> new Clip.Tokens(-1, -77, new int[77]));
    assertThrows(IllegalArgumentException.class, () -> new Clip.Pixels(5, 0, new float[0]));
    Clip.Pixels one = new Clip.Pixels(1, 2, new float[12]);
    assertThrows(IndexOutOfBoundsException.class, () -> one.slice(0, 2));
    assertThrows(IndexOutOfBoundsException.class, () -> one.slice(1, 0));
    assertEquals(0, one.slice(1, 1).count());
  }

  @Test
  void loadingRefusesNullEmptyAndInterrupted() {
    assertThrows(NullPointerException.class, () -> Clip.load(null, options()));
    assertThrows(NullPointerException.class, () -> Clip.load(MODEL.toString(), null));
    IllegalArgumentException empty = assertThrows(IllegalArgumentException.class, () -> Clip.load(" ", options()));
    assertTrue(empty.getMessage().contains("no model named"), empty.getMessage());
    Thread.currentThread().interrupt();
    try {
      InterruptedIOException e = assertThrows(InterruptedIOException.class, () -> Clip.load(MODEL.toString(), options()).close());
      assertTrue(e.getMessage().contains(MODEL.toString()) && e.getMessage().contains("interrupted"), e.getMessage());
      assertTrue(Thread.currentThread().isInterrupted(), "the interrupt status stays set");
    } finally {
      Thread.interrupted();
    }
  }

  @Test
  void callsCheckTheirInputsAndAClosedClipRefusesEveryCall() throws Exception {
    Clip clip = Clip.load(MODEL.toString(), options());
    int r = clip.config().imageResolution(), e = clip.config().embedDim();
    try {
      NullPointerException t = assertThrows(NullPointerException.class, () -> clip.tokenize("a", null));
      assertTrue(t.getMessage().contains("text 1"), t.getMessage());
      // a whole argument null: named too
      assertEquals("texts", assertThrows(NullPointerException.class, () -> clip.tokenize((String[]) null)).getMessage());
      assertEquals("pixels", assertThrows(NullPointerException.class, () -> clip.encodeImage(null)).getMessage());
      assertEquals("tokens", assertThrows(NullPointerException.class, () -> clip.encodeText(null)).getMessage());
      assertEquals("imageFeatures", assertThrows(NullPointerException.class, () -> clip.probs((float[][]) null, new float[0][])).getMessage());
      assertEquals("images", assertThrows(NullPointerException.class, () -> clip.preprocess((Path[]) null)).getMessage());
      assertThrows(NullPointerException.class, () -> clip.preprocess(MODEL, null));
      IllegalArgumentException row = assertThrows(IllegalArgumentException.class, () -> clip.probs(new float[][] {null}, new float[][] {new float[e]}));
      assertTrue(row.getMessage().contains("row 0 is null"), row.getMessage());
      int[] ids = clip.tokenize("a dog").ids().clone();
      ids[1] = 99999;
      IllegalArgumentException id = assertThrows(IllegalArgumentException.class, () -> clip.encodeText(new Clip.Tokens(1, ids.length, ids)));
      assertTrue(id.getMessage().contains("token id 99999 of text 0, position 1"), id.getMessage());
      ClipBatchEncoder enc = new ClipBatchEncoder(clip, "tiny");
      IllegalArgumentException out = assertThrows(IllegalArgumentException.class, () -> enc.encodeImages(new float[2 * 3 * r * r], 2, new float[e]));
      assertTrue(out.getMessage().contains("need " + 2 * e), out.getMessage());
      IllegalArgumentException in = assertThrows(IllegalArgumentException.class, () -> enc.encodeImages(new float[3 * r * r], 2, new float[2 * e]));
      assertTrue(in.getMessage().contains("pixels holds"), in.getMessage());
      assertThrows(IllegalArgumentException.class, () -> enc.encodeTexts(List.of("a", "b"), new float[e]));
      clip.encodeImage(new Clip.Pixels(1, r, new float[3 * r * r]));
      assertTrue(clip.releaseIdle() >= 1, "the executor of that call was idle");
      assertEquals(0, clip.releaseIdle());
      ClipBatcher b = ClipBatcher.of(clip);
      b.close();
      assertThrows(RejectedExecutionException.class, () -> b.submitImages(new Clip.Pixels(0, r, new float[0])));
    } finally {
      clip.close();
    }
    assertThrows(IllegalStateException.class, () -> clip.encodeImage(new Clip.Pixels(0, r, new float[0])));
    assertThrows(IllegalStateException.class, () -> clip.encodeText(new Clip.Tokens(0, 77, new int[0])));
    assertThrows(IllegalStateException.class, () -> clip.probs(new float[0][], new float[0][]));
  }

  @Test
  void theDeviceNameSaysBf16() throws Exception {
    org.junit.jupiter.api.Assumptions.assumeTrue(CpuFeatures.bf16(), "no bf16 on this CPU");
    try (Clip clip = Clip.load(MODEL.toString(), options().withPrecision("bf16"))) {
      assertEquals("cpu/bf16", clip.device());
      assertTrue(clip.describe().contains("cpu/bf16"), clip.describe());
    }
  }
}
