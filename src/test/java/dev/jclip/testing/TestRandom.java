package dev.jclip.testing;

import java.security.SecureRandom;
import java.util.Random;

/**
 * Fresh random inputs for every run, reproducible on demand: the seed is drawn anew each time and
 * printed; {@code -Djclip.test.seed=N} replays a failing run.
 */
public final class TestRandom {
  private TestRandom() {}

  public static Random create(String owner) {
    Long fixed = Long.getLong("jclip.test.seed");
    long seed = fixed != null ? fixed : new SecureRandom().nextLong();
    System.out.println("[seed] " + owner + ": " + seed + " (replay with -Djclip.test.seed=" + seed + ")");
    return new Random(seed);
  }

  /** {@code n} values drawn from N(0, scale²). */
  public static float[] gaussian(Random random, int n, double scale) {
    float[] a = new float[n];
    for (int i = 0; i < n; i++) a[i] = (float) (random.nextGaussian() * scale);
    return a;
  }
}
