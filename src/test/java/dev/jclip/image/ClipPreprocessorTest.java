package dev.jclip.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

class ClipPreprocessorTest {
  /** A large RGBA image's premultiplied copy is made for the call and not kept; a small one's is, and both give what a fresh preprocessor gives. */
  @Test
  void scratchForALargeImageIsNotKept() {
    ClipPreprocessor kept = new ClipPreprocessor(32);
    Random r = new Random(3);
    byte[] big = new byte[2400 * 2000 * 4], small = new byte[300 * 200 * 4];
    r.nextBytes(big);
    r.nextBytes(small);
    float[] a = new float[kept.floatsPerImage()], b = new float[kept.floatsPerImage()];
    kept.toTensor(DecodedImage.of("PNG", DecodedImage.Mode.RGBA, 300, 200, small), a, 0);
    assertTrue(kept.retainedBytes() >= small.length, "a small image's scratch is kept: " + kept.retainedBytes());
    kept.toTensor(DecodedImage.of("PNG", DecodedImage.Mode.RGBA, 2400, 2000, big), a, 0);
    assertTrue(kept.retainedBytes() <= ClipPreprocessor.RETAINED_BYTES, "after a 19 MB RGBA image it keeps " + kept.retainedBytes() + " bytes");
    new ClipPreprocessor(32).toTensor(DecodedImage.of("PNG", DecodedImage.Mode.RGBA, 2400, 2000, big), b, 0);
    assertArrayEquals(b, a);
    kept.toTensor(DecodedImage.of("PNG", DecodedImage.Mode.RGBA, 300, 200, small), a, 0);
    new ClipPreprocessor(32).toTensor(DecodedImage.of("PNG", DecodedImage.Mode.RGBA, 300, 200, small), b, 0);
    assertArrayEquals(b, a);
  }

  @Test
  void geometryFollowsTorchvision() {
    // short side to R, long side int(R * long / short) truncated
    assertEquals(new ClipPreprocessor.Geometry(224, 262, 0, 19, false), ClipPreprocessor.geometry(512, 600, 224));
    assertEquals(new ClipPreprocessor.Geometry(297, 224, 36, 0, false), ClipPreprocessor.geometry(1600, 1203, 224));
    // (225 - 224) / 2 = 0.5 rounds to 0 and (227 - 224) / 2 = 1.5 to 2: Python's half to even
    assertEquals(0, ClipPreprocessor.geometry(225, 224, 224).cropLeft());
    assertEquals(2, ClipPreprocessor.geometry(227, 224, 224).cropLeft());
    assertEquals(1, ClipPreprocessor.geometry(226, 224, 224).cropLeft());
    // already the right size: torchvision returns the image untouched
    assertTrue(ClipPreprocessor.geometry(300, 224, 224).resizeSkipped());
    assertTrue(ClipPreprocessor.geometry(224, 225, 224).resizeSkipped());
    assertFalse(ClipPreprocessor.geometry(225, 225, 224).resizeSkipped());
    // extreme aspect ratios stay exact in long arithmetic
    assertEquals(224L * 100000, ClipPreprocessor.geometry(100000, 1, 224).resizedWidth());
  }

  @Test
  void normalizeMatchesTorchsFloat32Arithmetic() {
    ClipPreprocessor pre = new ClipPreprocessor(2);
    byte[] rgb = {0, 0, 0, (byte) 255, (byte) 255, (byte) 255, 1, 2, 3, (byte) 128, 64, 32};
    float[] out = new float[3 + 12];
    pre.toTensor(rgb, 0, out, 3);
    float[] mean = {(float) 0.48145466, (float) 0.4578275, (float) 0.40821073};
    float[] std = {(float) 0.26862954, (float) 0.26130258, (float) 0.27577711};
    for (int c = 0; c < 3; c++) {
      for (int i = 0; i < 4; i++) {
        float x = (rgb[3 * i + c] & 0xff) / 255f;
        assertEquals((x - mean[c]) / std[c], out[3 + c * 4 + i], 0f, "channel " + c + " pixel " + i);
      }
    }
    assertEquals(0f, out[0]);
  }

  @Test
  void rgbaWithoutResizeKeepsColourUnderTransparency() {
    // 3x3 RGBA at R = 3: no resize, so no premultiplication; alpha is dropped as is.
    byte[] px = new byte[3 * 3 * 4];
    new Random(1).nextBytes(px);
    px[3] = 0; // a fully transparent pixel keeps its colour
    byte[] rgb = new ClipPreprocessor(3).rgb8(DecodedImage.of("PNG", DecodedImage.Mode.RGBA, 3, 3, px));
    for (int i = 0; i < 9; i++) {
      assertArrayEquals(new byte[] {px[4 * i], px[4 * i + 1], px[4 * i + 2]}, new byte[] {rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]});
    }
  }

  @Test
  void rgbaResizeIsPremultiplied() {
    // Transparent red next to opaque blue: premultiplied resizing lets no red bleed into the blue.
    byte[] px = new byte[8 * 8 * 4];
    for (int i = 0; i < 64; i++) {
      boolean left = (i % 8) < 4;
      px[4 * i] = (byte) (left ? 255 : 0);
      px[4 * i + 2] = (byte) (left ? 0 : 255);
      px[4 * i + 3] = (byte) (left ? 0 : 255);
    }
    byte[] rgb = new ClipPreprocessor(5).rgb8(DecodedImage.of("PNG", DecodedImage.Mode.RGBA, 8, 8, px));
    for (int i = 0; i < 25; i++) assertEquals(0, rgb[3 * i], "red at pixel " + i);
  }

  @Test
  void grayIsReplicatedAndCmykFollowsPillowsFormula() {
    byte[] g = {10, 20, 30, 40};
    byte[] rgb = new ClipPreprocessor(2).rgb8(DecodedImage.of("PNG", DecodedImage.Mode.L, 2, 2, g));
    assertArrayEquals(new byte[] {10, 10, 10, 20, 20, 20, 30, 30, 30, 40, 40, 40}, rgb);
    // C=255 K=0 -> R 0; M=128 K=0 -> 255 - 128 = 127; K=255 -> black
    byte[] cmyk = {(byte) 255, (byte) 128, 0, 0, 0, 0, 0, (byte) 255, 0, 0, 0, 0, 0, 0, 0, 0};
    rgb = new ClipPreprocessor(2).rgb8(DecodedImage.of("JPEG", DecodedImage.Mode.CMYK, 2, 2, cmyk));
    assertArrayEquals(new byte[] {0, 127, (byte) 255, 0, 0, 0, (byte) 255, (byte) 255, (byte) 255}, java.util.Arrays.copyOf(rgb, 9));
  }
}
