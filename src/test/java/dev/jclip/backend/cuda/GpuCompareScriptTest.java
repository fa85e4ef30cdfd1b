package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.jclip.backend.Precision;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * scripts/gpu-compare.py's kernel tables ({@code --kernels}, and the third file of a whole
 * comparison) read the GEMM benchmark's [linear] rows as CudaGemmBench prints them: the shape as
 * its {@code at} (the precision in Precision's own spelling), the method, the time and the rate;
 * one table row a shape, one column a method, the ew16s kernels' rows at each lag among them. Run
 * 8's rows printed "fp16", which the script once read only in upper case, and dropped the table.
 */
class GpuCompareScriptTest {
  @Test
  void theLinearRowsBecomeATableOneColumnAMethod(@TempDir Path dir) throws Exception {
    String at = String.format("%-13s %s %6d x %4d x %4d", "text c_fc", Precision.FP16, 78848, 2048, 512);
    List<String> lines = List.of(
        String.format("[linear] %s %-24s %7.3f ms %6.1f TFLOP/s (%.2fx the untuned path)", at, "tuned cuBLASLt + bias_act", 0.523, 316.1, 0.94),
        String.format("[linear] %s %-24s %7.3f ms %6.1f TFLOP/s (%.2fx the unfused path)", at, "sm90 epilogue_warps_16_split", 0.301, 548.9, 1.74),
        String.format("[linear] %s %-24s %7.3f ms %6.1f TFLOP/s (mainloop only: no epilogue)", at, "sm90 epilogue_warps_16_split loop", 0.231, 715.2),
        String.format("[linear] %s %-24s %7.3f ms %6.1f TFLOP/s (%.2fx the unfused path); mainloop only %7.3f ms", at,
            "sm90 epilogue_warps_16_split lag 3", 0.297, 556.3, 1.76, 0.240),
        "[attention] flash-pipe-st fp16 B=1024 N= 77 H= 8 causal:    0.188 ms (min 0.188, max 0.188),   66.2 TFLOP/s");
    Path bench = Files.write(dir.resolve("bench-gemm.txt"), lines, StandardCharsets.UTF_8);
    String python = GpuClocksScriptTest.python();
    assumeTrue(python != null, "no python3 here");
    Process p = new ProcessBuilder(python, "scripts/gpu-compare.py", "--kernels", bench.toString()).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(60, TimeUnit.SECONDS));
    assertEquals(0, p.exitValue(), out);
    assertTrue(out.contains("| shape | tuned cuBLASLt + bias_act | sm90 epilogue_warps_16_split | sm90 epilogue_warps_16_split loop"
        + " | sm90 epilogue_warps_16_split lag 3 |"), out);
    assertTrue(out.contains("| text c_fc fp16 78848x2048x512 | 0.523 (316) | 0.301 (549) | 0.231 (715) | 0.297 (556) |"), out);
    assertTrue(out.contains("| B=1024 N=77 H=8 causal | 0.188 |"), out);
  }
}
