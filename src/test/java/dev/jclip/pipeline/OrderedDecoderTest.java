package dev.jclip.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.image.ClipPreprocessor;
import dev.jclip.image.ImageDecoder;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link OrderedDecoder}: inputs come back in input order whatever order the workers finish in,
 * each preprocessed as one thread would, bad inputs as errors in their place; no more than the
 * window is read ahead; a failure of the source surfaces after the inputs before it.
 */
class OrderedDecoderTest {
  static final int R = 32;
  @TempDir static Path dir;
  static final List<Path> FILES = new ArrayList<>();

  @BeforeAll
  static void images() throws IOException {
    SplittableRandom rnd = new SplittableRandom(3);
    for (int i = 0; i < 60; i++) {
      Path f = dir.resolve(String.format("img_%03d.%s", i, i % 2 == 0 ? "png" : "jpg"));
      if (i % 7 == 3) {
        Files.write(f, new byte[0]); // zero bytes
      } else if (i % 11 == 5) {
        Files.writeString(f, "not an image " + i);
      } else {
        // Sizes from tiny to a few hundred pixels: workers finish out of order.
        int w = 8 + rnd.nextInt(i % 5 == 0 ? 900 : 40), h = 8 + rnd.nextInt(i % 5 == 0 ? 600 : 40);
        BufferedImage im = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        int base = rnd.nextInt(0xffffff);
        for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) im.setRGB(x, y, base ^ (x * 31 + y * 7));
        ImageIO.write(im, i % 2 == 0 ? "png" : "jpg", f.toFile());
      }
      FILES.add(f);
    }
  }

  /** The files in order, counting how many were read; item {@code failAt} throws (a broken source), -1 for none. */
  static final class CountingSource implements InputSource {
    final List<Path> files;
    final int failAt;
    int read;

    CountingSource(List<Path> files, int failAt) {
      this.files = files;
      this.failAt = failAt;
    }

    @Override
    public InputItem next() throws IOException {
      if (read == failAt) throw new IOException("the source broke at " + read);
      if (read == files.size()) return null;
      Path f = files.get(read);
      // Every 9th a bad row: an error from the source itself, kept in its place.
      InputItem it = read % 9 == 8 ? InputItem.bad(read, f.toString(), "bad row " + read)
          : new InputItem(read, f.toString(), f, null, null, Map.of(), null);
      read++;
      return it;
    }

    @Override
    public long size() {
      return files.size();
    }

    @Override
    public boolean hasCaptions() {
      return false;
    }

    @Override
    public String idColumn() {
      return "image_path";
    }

    @Override
    public void close() {}
  }

  @Test
  void inputOrderSameResultsAsOneThreadAndABoundedWindow() throws Exception {
    ImageDecoder decoder = new ImageDecoder();
    ClipPreprocessor pre = new ClipPreprocessor(R);
    for (int window : new int[] {1, 3, 16}) {
      CountingSource src = new CountingSource(FILES, -1);
      int returned = 0;
      try (OrderedDecoder d = new OrderedDecoder(src, decoder, R, 4, window)) {
        for (OrderedDecoder.Decoded x; (x = d.next()) != null; returned++) {
          // read ahead: the item just returned plus at most the window after it
          assertTrue(src.read - (returned + 1) <= window, "read " + src.read + " after returning " + (returned + 1) + ", window " + window);
          assertEquals(returned, x.item().index());
          Path f = FILES.get(returned);
          if (returned % 9 == 8) {
            assertEquals("bad row " + returned, x.error());
            assertNull(x.pixels());
            continue;
          }
          float[] want = null;
          String why = null;
          try {
            var im = decoder.decode(f);
            want = new float[pre.floatsPerImage()];
            pre.toTensor(im, want, 0);
          } catch (IOException e) {
            why = e.getMessage();
          }
          assertEquals(why, x.error(), f.toString());
          if (why == null) {
            assertArrayEquals(want, x.pixels(), f.toString());
          } else {
            assertNull(x.pixels());
            assertTrue(x.error().contains(f.getFileName().toString()), x.error());
          }
        }
        assertTrue(d.maxAhead() <= window, d.maxAhead() + " > " + window);
        assertNull(d.next(), "stays at the end");
        assertTrue(d.timings().get("decode_cpu_s") > 0, d.timings().toString());
      }
      assertEquals(FILES.size(), returned);
    }
  }

  @Test
  void aBrokenSourceFailsAfterTheInputsBeforeIt() throws Exception {
    CountingSource src = new CountingSource(FILES, 20);
    try (OrderedDecoder d = new OrderedDecoder(src, new ImageDecoder(), R, 3, 8)) {
      // The failure surfaces from next() (the reader runs up to the window ahead), never as a
      // hang; the items returned before it are the first ones, in order.
      int got = 0;
      IOException e = null;
      try {
        for (OrderedDecoder.Decoded x; (x = d.next()) != null; got++) assertEquals(got, x.item().index());
      } catch (IOException x) {
        e = x;
      }
      assertNotNull(e, "the source's failure is thrown");
      assertTrue(e.getMessage().contains("broke at 20"), e.getMessage());
      assertTrue(got < 20, got + " items before the failure");
    }
  }

  @Test
  void rejectsNoWorkers() {
    assertThrows(IllegalArgumentException.class, () -> new OrderedDecoder(new CountingSource(FILES, -1), new ImageDecoder(), R, 0, 4));
  }
}
