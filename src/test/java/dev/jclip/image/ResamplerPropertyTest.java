package dev.jclip.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The windowed fixed-point resampler against {@link PlainResize} (exact) and against a double
 * precision bicubic (within 1 level), on random images of random sizes, channel counts, scale
 * directions and crop windows.
 */
class ResamplerPropertyTest {

  /** Image content with both smooth regions and hard edges (edges make the lobes overshoot). */
  private static byte[] image(Random r, int w, int h, int c) {
    byte[] b = new byte[w * h * c];
    int kind = r.nextInt(3);
    double fx = 0.02 + r.nextDouble() * 0.5;
    double fy = 0.02 + r.nextDouble() * 0.5;
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w; x++) {
        for (int k = 0; k < c; k++) {
          int v =
              switch (kind) {
                case 0 -> r.nextInt(256); // noise: worst case for the lobes
                case 1 -> (int) (127.5 + 127.5 * Math.sin(fx * x + k) * Math.cos(fy * y));
                default -> ((x / 3 + y / 5 + k) % 2 == 0) ? 0 : 255; // hard edges
              };
          b[(y * w + x) * c + k] = (byte) v;
        }
      }
    }
    return b;
  }

  private record Case(int w, int h, int c, int ow, int oh, int x0, int y0, int cw, int ch) {}

  private static Case randomCase(Random r, int maxIn, int maxOut) {
    int w = 1 + r.nextInt(maxIn);
    int h = 1 + r.nextInt(maxIn);
    int ow = r.nextInt(4) == 0 ? w : 1 + r.nextInt(maxOut); // sometimes one pass is skipped
    int oh = r.nextInt(4) == 0 ? h : 1 + r.nextInt(maxOut);
    int cw = 1 + r.nextInt(ow);
    int ch = 1 + r.nextInt(oh);
    return new Case(w, h, 1 + r.nextInt(4), ow, oh, r.nextInt(ow - cw + 1), r.nextInt(oh - ch + 1), cw, ch);
  }

  /**
   * "vector": the default Vector API passes (required when the module is present, as under
   * surefire); "512", "512-taps" and "horizontal": {@link ResampleVector} (with and without its
   * narrow horizontal layout) and {@link HorizontalVector} by name (skipped where the JVM's
   * vectors are too short); "scalar": the scalar twins.
   */
  private static Resampler resampler(String kind) {
    boolean module = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();
    Resampler rs =
        switch (kind) {
          case "scalar" -> new Resampler(false);
          case "vector" -> new Resampler(true);
          default -> {
            org.junit.jupiter.api.Assumptions.assumeTrue(module, "no jdk.incubator.vector");
            Resampler.VectorPass p = Resampler.VectorFactory.create(kind);
            org.junit.jupiter.api.Assumptions.assumeTrue(p != null, kind + " vectors not available on this JVM");
            yield new Resampler(p);
          }
        };
    if (kind.equals("vector") && module) assertTrue(rs.vectorized(), "vector pass not used");
    if (kind.equals("scalar")) assertTrue(!rs.vectorized());
    return rs;
  }

  private static void check(Random r, Case k, Resampler rs, boolean againstDouble) {
    byte[] src = image(r, k.w, k.h, k.c);
    byte[] got = new byte[k.cw * k.ch * k.c + 3];
    rs.bicubic(src, k.w, k.h, k.c, k.ow, k.oh, k.x0, k.y0, k.cw, k.ch, got, 3);
    byte[] full = PlainResize.bicubic(src, k.w, k.h, k.c, k.ow, k.oh);
    byte[] want = PlainResize.crop(full, k.ow, k.c, k.x0, k.y0, k.cw, k.ch);
    for (int i = 0; i < want.length; i++) {
      if (want[i] != got[3 + i]) {
        fail(k + ": first mismatch at byte " + i + ": plain " + (want[i] & 0xff) + ", fast " + (got[3 + i] & 0xff));
      }
    }
    if (againstDouble) {
      byte[] ideal = PlainResize.crop(PlainResize.bicubicDouble(src, k.w, k.h, k.c, k.ow, k.oh), k.ow, k.c, k.x0, k.y0, k.cw, k.ch);
      for (int i = 0; i < ideal.length; i++) {
        int d = Math.abs((ideal[i] & 0xff) - (want[i] & 0xff));
        if (d > 1) fail(k + ": byte " + i + " is " + (want[i] & 0xff) + ", double precision gives " + (ideal[i] & 0xff));
      }
    }
  }

  @org.junit.jupiter.params.ParameterizedTest(name = "{0}")
  @org.junit.jupiter.params.provider.ValueSource(strings = {"vector", "512", "512-taps", "horizontal", "scalar"})
  void bicubicMatchesThePlainImplementationExactly(String vector) {
    Random r = new Random(20261127);
    Resampler rs = resampler(vector); // reused: scratch buffers must not leak between calls
    for (int i = 0; i < 60; i++) check(r, randomCase(r, 300, 400), rs, true);
    // Extremes: 1 pixel, one row / column, huge reduction factors.
    check(r, new Case(1, 1, 3, 224, 224, 0, 0, 224, 224), rs, true);
    check(r, new Case(1, 9, 1, 224, 2016, 0, 896, 224, 224), rs, true);
    check(r, new Case(3000, 1, 4, 1, 1, 0, 0, 1, 1), rs, true);
    check(r, new Case(2000, 3, 3, 224, 1, 17, 0, 190, 1), rs, true);
  }

  @org.junit.jupiter.params.ParameterizedTest(name = "{0}")
  @org.junit.jupiter.params.provider.ValueSource(strings = {"vector", "512", "512-taps", "horizontal", "scalar"})
  void bicubicMatchesOnLargeImages(String vector) {
    Random r = new Random(4000);
    Resampler rs = resampler(vector);
    // 4000x3000 down to CLIP sizes (landscape and portrait), and a large upscale window.
    check(r, new Case(4000, 3000, 3, 298, 224, 37, 0, 224, 224), rs, false);
    check(r, new Case(1500, 2000, 3, 336, 448, 0, 56, 336, 336), rs, false);
    check(r, new Case(1203, 1600, 4, 224, 297, 0, 36, 224, 224), rs, false);
    check(r, new Case(70, 46, 3, 1511, 1000, 600, 400, 336, 336), rs, false);
  }

  @org.junit.jupiter.params.ParameterizedTest(name = "{0}")
  @org.junit.jupiter.params.provider.ValueSource(strings = {"vector", "512", "512-taps", "horizontal", "scalar"})
  void clipGeometriesBothDirectionsOddAndEvenCrops(String vector) {
    Random r = new Random(77);
    Resampler rs = resampler(vector);
    int odd = 0;
    int even = 0;
    for (int i = 0; i < 30; i++) {
      int w = 1 + r.nextInt(600);
      int h = 1 + r.nextInt(600);
      int size = r.nextBoolean() ? 224 : 1 + r.nextInt(300);
      ClipPreprocessor.Geometry g = ClipPreprocessor.geometry(w, h, size);
      long excess = Math.max(g.resizedWidth(), g.resizedHeight()) - size;
      if (excess % 2 == 1) odd++;
      else even++;
      check(r, new Case(w, h, 3, (int) g.resizedWidth(), (int) g.resizedHeight(), g.cropLeft(), g.cropTop(), size, size), rs, true);
    }
    assertTrue(odd > 0 && even > 0, "both crop parities exercised");
  }

  /**
   * The vector passes' edge cases on fresh random inputs: tiny and odd widths (windows not a
   * multiple of the 4 pixels or 16 bytes a vector holds), 1 to 4 channels, up- and downscaling,
   * one pass skipped; the destination is surrounded by sentinel bytes that must survive (the
   * horizontal pass stores whole vectors and relies on later stores to overwrite their tails).
   */
  @org.junit.jupiter.params.ParameterizedTest(name = "{0}")
  @org.junit.jupiter.params.provider.ValueSource(strings = {"vector", "512", "512-taps", "horizontal"})
  void vectorEdgeCasesMatchTheScalarTwinAndStayInsideTheWindow(String vector) {
    Random r = new Random(System.nanoTime());
    long seed = r.nextLong();
    r = new Random(seed);
    Resampler rs = resampler(vector);
    Resampler scalar = resampler("scalar");
    for (int i = 0; i < 400; i++) {
      int c = 1 + r.nextInt(4);
      int w = 1 + r.nextInt(r.nextBoolean() ? 9 : 70);
      int h = 1 + r.nextInt(r.nextBoolean() ? 9 : 70);
      int ow = r.nextInt(5) == 0 ? w : 1 + r.nextInt(r.nextBoolean() ? 12 : 150);
      int oh = r.nextInt(5) == 0 ? h : 1 + r.nextInt(r.nextBoolean() ? 12 : 150);
      int cw = 1 + r.nextInt(ow);
      int ch = 1 + r.nextInt(oh);
      Case k = new Case(w, h, c, ow, oh, r.nextInt(ow - cw + 1), r.nextInt(oh - ch + 1), cw, ch);
      byte[] src = image(r, w, h, c);
      int pad = 1 + r.nextInt(40);
      int n = cw * ch * c;
      byte[] got = new byte[pad + n + pad];
      byte[] twin = new byte[n];
      java.util.Arrays.fill(got, (byte) 0x5a);
      rs.bicubic(src, w, h, c, ow, oh, k.x0(), k.y0(), cw, ch, got, pad);
      scalar.bicubic(src, w, h, c, ow, oh, k.x0(), k.y0(), cw, ch, twin, 0);
      for (int j = 0; j < pad; j++) {
        if (got[j] != 0x5a || got[pad + n + j] != 0x5a) fail("seed " + seed + ", " + k + ": wrote outside the window");
      }
      for (int j = 0; j < n; j++) {
        if (got[pad + j] != twin[j]) fail("seed " + seed + ", " + k + ": first mismatch with the scalar twin at byte " + j);
      }
      if (i % 8 == 0) check(r, k, rs, false);
    }
  }

  /**
   * Mode I's rounding is Pillow's ROUND_UP compiled for x86-64: half away from zero, truncated, and
   * Integer.MIN_VALUE (cvttsd2si's "integer indefinite") where the value leaves the int range, where
   * a Java cast would saturate (32-bit TIFF samples near the ends of their range overshoot there).
   */
  @Test
  void intRoundingOutsideTheIntRangeIsIntMinAsOnX86() {
    assertEquals(3, Resampler.roundUp(2.5));
    assertEquals(-3, Resampler.roundUp(-2.5));
    assertEquals(2, Resampler.roundUp(2.4999));
    assertEquals(Integer.MAX_VALUE, Resampler.roundUp(2147483646.6));
    assertEquals(Integer.MIN_VALUE, Resampler.roundUp(2147483647.5));
    assertEquals(Integer.MIN_VALUE, Resampler.roundUp(3e12));
    assertEquals(Integer.MIN_VALUE, Resampler.roundUp(-2147483648.4));
    assertEquals(Integer.MIN_VALUE, Resampler.roundUp(-3e12));
    assertEquals(Integer.MIN_VALUE, Resampler.roundUp(Double.NaN));
  }

  @Test
  void nearestMatchesThePlainImplementation() {
    Random r = new Random(5);
    for (int i = 0; i < 60; i++) {
      Case k = randomCase(r, 300, 700);
      byte[] src = image(r, k.w, k.h, k.c);
      byte[] got = new byte[k.cw * k.ch * k.c];
      Resampler.nearest(src, k.w, k.h, k.c, k.ow, k.oh, k.x0, k.y0, k.cw, k.ch, got, 0);
      byte[] want = PlainResize.crop(PlainResize.nearest(src, k.w, k.h, k.c, k.ow, k.oh), k.ow, k.c, k.x0, k.y0, k.cw, k.ch);
      for (int j = 0; j < want.length; j++) {
        if (want[j] != got[j]) fail(k + ": first mismatch at byte " + j);
      }
    }
  }

  @Test
  void identityResizeIsACopy() {
    Random r = new Random(1);
    byte[] src = image(r, 37, 23, 3);
    byte[] out = new byte[src.length];
    new Resampler().bicubic(src, 37, 23, 3, 37, 23, 0, 0, 37, 23, out, 0);
    assertEquals(java.util.HexFormat.of().formatHex(src), java.util.HexFormat.of().formatHex(out));
  }
}
