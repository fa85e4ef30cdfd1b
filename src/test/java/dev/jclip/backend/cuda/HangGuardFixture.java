package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * A stand-in for a test whose kernel never finishes, for {@link dev.jclip.testing.HangGuard}'s test
 * and for trying scripts/gpu-run.sh's handling of a hang without a GPU (its name keeps it out of
 * the build's test run): with {@code -Djclip.test.hangFixture=true}, {@link #waitsForever} sleeps
 * for ten minutes, a native wait like a synchronize on a stream that never drains
 * ({@code -Djclip.test.hangFrames=java.lang.Thread} makes the guard watch it). {@code
 * JCLIP_TESTS=HangGuardFixture JCLIP_JAVA_OPTS="-Djclip.test.hangFixture=true
 * -Djclip.test.hangFrames=java.lang.Thread" run.sh tests} shows the class halted, then run again
 * without that test.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class HangGuardFixture {
  @Test
  @Order(1)
  void waitsForever() throws InterruptedException {
    if (Boolean.getBoolean("jclip.test.hangFixture")) Thread.sleep(600_000);
  }

  /** A second hang, with {@code -Djclip.test.hangFixtureTwice=true} as well: run.sh's second run again. */
  @Test
  @Order(2)
  void waitsForeverToo() throws InterruptedException {
    if (Boolean.getBoolean("jclip.test.hangFixture") && Boolean.getBoolean("jclip.test.hangFixtureTwice")) Thread.sleep(600_000);
  }

  @Test
  @Order(3)
  void passes() {
    assertEquals(4, 2 + 2);
  }
}
