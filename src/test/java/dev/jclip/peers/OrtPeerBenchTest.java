package dev.jclip.peers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The ONNX Runtime peer's own logic (the timing itself is run by scripts/peers/run.sh, not by tests). */
class OrtPeerBenchTest {
  @TempDir Path dir;

  @Test
  void statsUseTheMedianCallAndReportTheSpread() {
    OrtPeerBench.Stats s = OrtPeerBench.Stats.of(new double[] {0.5, 0.1, 0.2, 0.3}, 8);
    assertEquals(8 / 0.25, s.perS(), 1e-9); // even count: mean of the middle two
    assertEquals(8 / 0.5, s.perSMin(), 1e-9);
    assertEquals(8 / 0.1, s.perSMax(), 1e-9);
    assertEquals(4, s.reps());
    assertEquals(8 / 0.2, OrtPeerBench.Stats.of(new double[] {0.9, 0.2, 0.1}, 8).perS(), 1e-9);
    assertThrows(IllegalArgumentException.class, () -> OrtPeerBench.Stats.of(new double[0], 1));
  }

  @Test
  void padBatchPadsWithZeroToTheLongestRow() {
    List<long[]> rows = List.of(new long[] {49406, 1, 49407}, new long[] {49406, 5, 6, 7, 49407}, new long[] {49406, 49407});
    long[][] b = OrtPeerBench.padBatch(rows, 1, 3);
    assertArrayEquals(new long[] {49406, 5, 6, 7, 49407}, b[0]);
    assertArrayEquals(new long[] {49406, 49407, 0, 0, 0}, b[1]);
    assertEquals(3, OrtPeerBench.padBatch(rows, 0, 1)[0].length);
    assertThrows(IllegalArgumentException.class, () -> OrtPeerBench.padBatch(rows, 2, 2));
    assertThrows(IllegalArgumentException.class, () -> OrtPeerBench.padBatch(rows, 0, 4));
  }

  @Test
  void text77IsAFullContextWithEndOfTextLast() {
    long[] row = OrtPeerBench.text77Row();
    assertEquals(77, row.length);
    assertEquals(OrtPeerBench.SOT, row[0]);
    assertEquals(OrtPeerBench.EOT, row[76]);
    for (int i = 1; i < 76; i++) assertTrue(row[i] >= 0 && row[i] < OrtPeerBench.SOT, "id " + i);
  }

  @Test
  void optionsParseAndRejectNonsense() {
    OrtPeerBench.Options o = OrtPeerBench.Options.parse("--batch", "1, 32", "--threads", "4", "--spin");
    assertArrayEquals(new int[] {1, 32}, o.batches());
    assertEquals(4, o.threads());
    assertTrue(o.spin());
    assertEquals(2, OrtPeerBench.Options.parse().threads());
    assertTrue(assertThrows(IllegalArgumentException.class, () -> OrtPeerBench.Options.parse("--batch", "0"))
        .getMessage().contains("--batch"));
    assertTrue(assertThrows(IllegalArgumentException.class, () -> OrtPeerBench.Options.parse("--threads", "two"))
        .getMessage().contains("two"));
    assertTrue(assertThrows(IllegalArgumentException.class, () -> OrtPeerBench.Options.parse("--bogus", "1"))
        .getMessage().contains("--bogus"));
    assertThrows(IllegalArgumentException.class, () -> OrtPeerBench.Options.parse("--json"));
  }

  @Test
  void promptsFileIsValidatedWithItsName() throws IOException {
    ObjectMapper json = new ObjectMapper();
    Path missing = dir.resolve("prompts.json");
    assertTrue(assertThrows(IOException.class, () -> OrtPeerBench.readPrompts(missing, json)).getMessage().contains("export_onnx.py"));
    Files.writeString(missing, "{\"tokens\": [[49406, 320, 49407], [49406, 320]]}");
    IOException e = assertThrows(IOException.class, () -> OrtPeerBench.readPrompts(missing, json));
    assertTrue(e.getMessage().contains("prompts.json") && e.getMessage().contains("row 1"), e.getMessage());
    Files.writeString(missing, "{\"tokens\": [[49406, 320, 49407]]}");
    assertArrayEquals(new long[] {49406, 320, 49407}, OrtPeerBench.readPrompts(missing, json).get(0));
  }

  @Test
  void relativeErrorIsScaledByTheReference() {
    assertEquals(0.0, OrtPeerBench.relativeError(new float[] {1, 2}, new float[] {1, 2}));
    assertEquals(0.1, OrtPeerBench.relativeError(new float[] {3.3f, 4.4f}, new float[] {3, 4}), 1e-6);
  }
}
