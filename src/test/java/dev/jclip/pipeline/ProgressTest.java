package dev.jclip.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class ProgressTest {
  @Test
  void plainLinesCarryCountsRateEtaAndErrors() {
    ByteArrayOutputStream buf = new ByteArrayOutputStream();
    Progress p = new Progress(Progress.Mode.LINES, new PrintStream(buf, true, StandardCharsets.UTF_8), 1000);
    p.done.set(250);
    p.errors.set(3);
    p.report(false);
    String s = buf.toString(StandardCharsets.UTF_8);
    assertTrue(s.startsWith("embed: 250/1000 (25%), "), s);
    assertTrue(s.contains(" items/s, ETA "), s);
    assertTrue(s.trim().endsWith("3 errors"), s);
    assertTrue(s.endsWith("\n"));
  }

  @Test
  void barRedrawsInPlaceAndSkippedShardsLeaveTheTotal() {
    ByteArrayOutputStream buf = new ByteArrayOutputStream();
    Progress p = new Progress(Progress.Mode.BAR, new PrintStream(buf, true, StandardCharsets.UTF_8), 100);
    p.skipped.set(50);
    p.done.set(25);
    p.report(false);
    String s = buf.toString(StandardCharsets.UTF_8);
    assertTrue(s.startsWith("\r[###############---------------] 25/50 (50%)"), s);
    assertTrue(s.endsWith("\u001b[K"), s);
  }

  @Test
  void aMessageClearsTheBarLineFirst() {
    ByteArrayOutputStream buf = new ByteArrayOutputStream();
    java.io.PrintWriter w = new java.io.PrintWriter(buf, true, StandardCharsets.UTF_8);
    new Progress(Progress.Mode.BAR, w, 10, "x").message("skipped a");
    assertEquals("\r\u001b[Kskipped a" + System.lineSeparator(), buf.toString(StandardCharsets.UTF_8));
    buf.reset();
    Progress lines = new Progress(Progress.Mode.LINES, w, 10, "jclip zeroshot");
    lines.message("skipped b");
    lines.advance(true);
    lines.report(false);
    String s = buf.toString(StandardCharsets.UTF_8);
    assertTrue(s.startsWith("skipped b" + System.lineSeparator() + "jclip zeroshot: 1/10 (10%)"), s);
    assertTrue(s.trim().endsWith("1 error"), s);
  }

  @Test
  void unknownTotalAndNone() {
    ByteArrayOutputStream buf = new ByteArrayOutputStream();
    Progress p = new Progress(Progress.Mode.LINES, new PrintStream(buf, true, StandardCharsets.UTF_8), -1);
    p.done.set(7);
    assertTrue(p.line().startsWith("7 items, "), p.line());
    Progress none = new Progress(Progress.Mode.NONE, new PrintStream(buf, true, StandardCharsets.UTF_8), 5);
    buf.reset();
    none.report(true);
    assertEquals(0, buf.size());
    assertEquals("59s", Progress.duration(59));
    assertEquals("2m05s", Progress.duration(125));
    assertEquals("1h01m", Progress.duration(3661));
  }
}
