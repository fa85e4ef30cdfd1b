package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * scripts/gpu-clocks.py, which sums up a GPU run's nvidia-smi samples (run.sh's gpu-clocks.csv) by
 * the stages report.txt names: each sample counted in the stage whose time window holds it, the
 * medians, the minimum and the share of samples with the power cap among the clock-event reasons,
 * on a report and samples made here in the formats run.sh writes.
 */
class GpuClocksScriptTest {
  @Test
  void samplesAreSummedUpByStage(@TempDir Path dir) throws Exception {
    Path report = Files.writeString(dir.resolve("report.txt"), String.join("\n",
        "== CUDA tests (JUnit, tag cuda, one JVM per class) (09:59:00, 40 s)",
        "== whole-model benchmark (random ViT-B/32; every precision, launches and CUDA graph) (10:00:00, 100 s)",
        "[model] something",
        "== PyTorch peer (HuggingFace CLIPModel, ViT-B/32 geometry, random weights) (10:00:02, 102 s)",
        "== summary (10:00:04, 104 s)", ""));
    List<String> csv = new ArrayList<>();
    csv.add("timestamp, clocks.current.sm [MHz], clocks.current.memory [MHz], power.draw [W], temperature.gpu, clocks_event_reasons.active");
    for (int i = 0; i < 40; i++) { // 10:00:00.0 to 10:00:03.9: 20 samples in each of the two stages
      int sm = i < 20 ? 1980 : 1700 + 10 * (i - 20);
      String reasons = i >= 20 && i % 2 == 0 ? "0x0000000000000004" : "0x0000000000000000";
      csv.add(String.format("2026/11/28 10:00:%02d.%03d, %d, 3201, %.2f, 61, %s", i / 10, 100 * (i % 10), sm, 500.0 + i, reasons));
    }
    csv.add("2026/11/28 10:00:0x.000, [N/A], 3201, 1.0, 61, 0x0"); // a row that does not parse is skipped
    Path samples = Files.write(dir.resolve("gpu-clocks.csv"), csv, StandardCharsets.UTF_8);
    String python = python();
    assumeTrue(python != null, "no python3 here");
    Process p = new ProcessBuilder(python, "scripts/gpu-clocks.py", report.toString(), samples.toString()).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(60, TimeUnit.SECONDS));
    assertEquals(0, p.exitValue(), out);
    String[] lines = out.strip().split("\n");
    assertEquals(3, lines.length, out); // the header, then only the two stages with samples
    assertTrue(lines[1].matches("whole-model benchmark.*\\s20\\s+1980\\s+1980\\s+1980\\s+510\\s+519\\s+0%\\s+0%"), lines[1]);
    // SM 1700..1890: median 1800 (index 9.5 rounds to 10: 1800), p5 1710, min 1700; power 520..539; half capped
    assertTrue(lines[2].matches("PyTorch peer.*\\s20\\s+1800\\s+1710\\s+1700\\s+530\\s+539\\s+50%\\s+0%"), lines[2]);
  }

  /** The python3 that runs the scripts under test, or null where there is none. */
  static String python() {
    for (String python : new String[] {"/usr/bin/python3", "python3"}) {
      try {
        Process p = new ProcessBuilder(python, "--version").redirectErrorStream(true).start();
        p.getInputStream().readAllBytes();
        if (p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0) return python;
      } catch (IOException | InterruptedException e) {
        // try the next
      }
    }
    return null;
  }
}
