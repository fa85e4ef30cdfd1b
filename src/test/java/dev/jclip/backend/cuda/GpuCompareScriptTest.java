package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
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
  /**
   * The tower table gives a ratio only where jclip's row is the peer's work: the same precision
   * (the peer runs fp16; a bf16 row gets none) and, for prompts, the same length (a mismatch is
   * flagged); texts and prompts have a column against torch.compile too. The whole prompt set sets
   * jclip's resident and pipelined passes beside the peer.
   */
  @Test
  void ratiosOnlyForTheSameWork(@TempDir Path dir) throws Exception {
    String row = "{\"precision\": \"%s\", \"flash_attention\": true, \"gemm\": \"cublaslt\", \"cuda_graph\": true, \"batch\": 1024,"
        + " \"image_per_s\": 1, \"text77_per_s\": 1, \"text_prompt_per_s\": 1, \"image_resident_per_s\": %d,"
        + " \"text77_resident_per_s\": %d, \"text_prompt_resident_per_s\": %d, \"prompt_len\": %d}";
    String ours = "{\"device\": \"cuda:0\", \"results\": [" + String.format(row, "FP16", 60000, 90000, 300000, 14) + ", "
        + String.format(row, "BF16", 61000, 91000, 310000, 14) + ", " + String.format(row, "FP16", 60000, 90000, 300000, 15).replace("1024", "1025")
        + "], \"prompt_set\": {\"batch\": 1024, \"given_order_resident_per_s\": 300000, \"given_order_pipelined_per_s\": 250000,"
        + " \"given_order_tokens_per_prompt\": 15.28, \"given_order_pipelined_same_features\": true}}";
    String peerRow = "{\"variant\": \"%s\", \"batch\": %d, \"image_per_s\": %d, \"text77_per_s\": %d, \"text_prompt_per_s\": %d,"
        + " \"prompt_padded_len\": 14}";
    String peer = "{\"gpu\": \"H200\", \"torch\": \"2.11\", \"transformers\": \"5.17\", \"dtype\": \"float16\", \"attn_implementation\":"
        + " \"sdpa\", \"results\": [" + String.format(peerRow, "eager", 1024, 30000, 45000, 100000) + ", "
        + String.format(peerRow, "compile", 1024, 40000, 60000, 150000) + ", " + String.format(peerRow, "eager", 1025, 30000, 45000, 100000) + "],"
        + " \"prompt_set\": {\"batch\": 1024, \"given_order_per_s\": 120000, \"given_order_tokens_per_prompt\": 15.28}}";
    String out = compare(dir, ours, peer);
    assertTrue(out.contains("| FP16+flash cublaslt graph | 1024 | 60,000 | 2.00x | 1.50x | - | 1 | 90,000 | 2.00x | 1.50x | 300,000 | 3.00x | 2.00x |"), out);
    assertTrue(out.contains("| BF16+flash cublaslt graph | 1024 | 61,000 | - | - | - | 1 | 91,000 | - | - | 310,000 | - | - |"), out);
    assertTrue(out.contains("| 300,000 | 3.00x (jclip 15 tokens, peer 14: not the same work) | - |"), out);
    // the prompt set: the peer against jclip resident (as the peer times itself) and pipelined; no serial pass since session 20
    assertTrue(out.contains("| given order | 120,000 (15.28) | 300,000 (15.28) | 2.50x | 250,000 (15.28) | 2.08x | - | - |"), out);
    assertTrue(out.contains("| ImageNet prompt set, 2x eager, both given order | defaults, resident, as the peer | 2.50x | yes |"), out);
  }

  /**
   * The rows that also timed the batch in parts (on one compute stream, and on two) get a table of
   * their own: each way beside the same row's whole batch and the peer's eager figure, a figure
   * whose parts' features disagree with the whole batch's shown but not set beside anything.
   */
  @Test
  void partsBesideTheWholeBatch(@TempDir Path dir) throws Exception {
    String row = "{\"precision\": \"FP16\", \"flash_attention\": true, \"gemm\": \"%s\", \"cuda_graph\": true, \"batch\": 1024,"
        + " \"image_per_s\": 1, \"text77_per_s\": 1, \"image_resident_per_s\": 50000, \"text77_resident_per_s\": 60000,"
        + " \"image_split2_one_stream_per_s\": 49000, \"image_split2_two_streams_per_s\": 55000, \"image_split2_error\": 2e-3,"
        + " \"text77_split2_one_stream_per_s\": 59000, \"text77_split2_two_streams_per_s\": 66000, \"text77_split2_error\": %s,"
        + " \"split4_failed\": \"out of memory\"}";
    String ours = "{\"device\": \"cuda:0\", \"results\": [" + String.format(row, "cublaslt", "1e-3") + ", "
        + String.format(row, "cublaslt tuned", "0.5") + ", " + String.format(row, "cublaslt tuned-text", "\"NaN\"")
            .replaceAll("\"image_split2_[a-z_]+\": [0-9e.-]+, ", "") + ", {\"precision\": \"FP16\", \"flash_attention\": true, \"gemm\": "
        + "\"cublaslt\", \"cuda_graph\": true, \"batch\": 32, \"image_per_s\": 1, \"text77_per_s\": 1, \"image_resident_per_s\": 30000,"
        + " \"text77_resident_per_s\": 40000, \"image_lanes2_one_stream_per_s\": 31000, \"image_lanes2_two_streams_per_s\": 45000,"
        + " \"image_lanes2_error\": 0, \"text77_lanes2_one_stream_per_s\": 41000, \"text77_lanes2_two_streams_per_s\": 60000,"
        + " \"text77_lanes2_error\": 1e-3}]}";
    String peer = "{\"gpu\": \"H200\", \"torch\": \"2.11\", \"transformers\": \"5.17\", \"dtype\": \"float16\", \"attn_implementation\":"
        + " \"sdpa\", \"results\": [{\"variant\": \"eager\", \"batch\": 1024, \"image_per_s\": 27500, \"text77_per_s\": 40000,"
        + " \"text_prompt_per_s\": 1}]}";
    String out = compare(dir, ours, peer);
    assertTrue(out.contains("| FP16+flash cublaslt | 1024 | 2 | 50,000 | 49,000 | 0.980x | 55,000 | 1.100x | 2.00x | 60,000 | 59,000 | 0.983x"
        + " | 66,000 | 1.100x | 1.65x | 2.0e-03 / 1.0e-03 |"), out);
    // the tuned row's texts disagree with its whole batch: shown, not compared
    assertTrue(out.contains("| FP16+flash cublaslt tuned | 1024 | 2 | 50,000 | 49,000 | 0.980x | 55,000 | 1.100x | 2.00x | 60,000"
        + " | (59,000: features differ) | - | (66,000: features differ) | - | - | 2.0e-03 / 5.0e-01 |"), out);
    assertTrue(out.contains("| FP16+flash cublaslt | 1024 | 4 | failed: out of memory |"), out);
    // two batches of 32 at once, against the row's one batch
    assertTrue(out.contains("| FP16+flash cublaslt | 32 | 2 batches | 30,000 | 31,000 | 1.033x | 45,000 | 1.500x | - | 40,000 | 41,000 | 1.025x"
        + " | 60,000 | 1.500x | - | 0.0e+00 / 1.0e-03 |"), out);
    // the tuned-text rows time the texts alone; a NaN error (Jackson's "NaN") counts as disagreeing
    assertTrue(out.contains("| FP16+flash cublaslt tuned-text | 1024 | 2 | 50,000 | - | - | - | - | - | 60,000 | (59,000: features differ) | - |"
        + " (66,000: features differ) | - | - | - / nan |"), out);
    // every line of the table has as many cells as its header
    List<String> lines = out.lines().toList();
    int header = lines.indexOf(lines.stream().filter(l -> l.startsWith("| jclip config | batch | parts |")).findFirst().orElseThrow());
    List<String> table = lines.subList(header, lines.size()).stream().takeWhile(l -> l.startsWith("|")).toList();
    assertEquals(2 + 7, table.size(), out); // header, rule, 3 rows in 2 parts and 3 failed in 4, 2 batches of 32
    for (String l : table) assertEquals(table.get(0).split("\\|", -1).length, l.split("\\|", -1).length, l);
  }

  /**
   * The pixels' way in (session 22): one line a batch, from the first default CUDA-graph row that
   * has the timings (the tuned rows repeat them; a launch row has no pipelined figure), with the
   * row's resident and pipelined milliseconds per batch beside the host copy, the DMA and its
   * GB/s, the fp16 alternative, and the pipelined stream with the pixels rounded on the host where
   * the row has it.
   */
  @Test
  void thePixelsWayInOneLineABatch(@TempDir Path dir) throws Exception {
    String row = "{\"precision\": \"FP16\", \"flash_attention\": true, \"gemm\": \"cublaslt\", \"cuda_graph\": true, \"batch\": %d,%s"
        + " \"image_per_s\": 1, \"text77_per_s\": 1, \"image_resident_per_s\": %d, \"image_pipelined_per_s\": %d, \"text77_resident_per_s\": 1,"
        + " \"pixels_host_copy_ms\": %s, \"pixels_pinned_dma_ms\": %s, \"pixels_host_fp16_ms\": 9.5, \"pixels_pinned_dma_fp16_ms\": 3.1}";
    String ours = "{\"device\": \"cuda:0\", \"results\": [" + String.format(row, 256, "", 64000, 32000, "2.25", "6.165")
            .replace("\"cuda_graph\": true", "\"cuda_graph\": false").replace("\"image_pipelined_per_s\": 32000, ", "") + ", "
        + String.format(row, 256, "", 64000, 32000, "2.25", "6.165") + ", "
        + String.format(row, 256, " \"config\": \"tuned\",", 1, 1, "99", "99") + ", "
        + String.format(row, 1024, " \"image_pipelined_host_cast_per_s\": 51200, \"image_host_cast_error\": 0,", 51200, 40960, "9", "0") + "]}";
    String peer = "{\"gpu\": \"H200\", \"torch\": \"2.11\", \"transformers\": \"5.17\", \"dtype\": \"float16\", \"attn_implementation\":"
        + " \"sdpa\", \"results\": []}";
    String out = compare(dir, ours, peer);
    assertTrue(out.contains("| 256 | 4.00 | 8.00 | 2.25 | 6.17 (25.0) | 9.50 | 3.10 | - |"), out);
    assertTrue(out.contains("| 1024 | 20.00 | 25.00 | 9.00 | 0.00 | 9.50 | 3.10 | 20.00 (0.0e+00) |"), out);
    assertFalse(out.contains("99.00"), "the tuned row's repeat: " + out);
  }

  /** gpu-compare.py's output on a model benchmark's and a peer's JSON (it must exit 0); skipped without python3. */
  private static String compare(Path dir, String ours, String peer) throws Exception {
    Path o = Files.writeString(dir.resolve("jclip.json"), ours), q = Files.writeString(dir.resolve("peer.json"), peer);
    String python = GpuClocksScriptTest.python();
    assumeTrue(python != null, "no python3 here");
    Process p = new ProcessBuilder(python, "scripts/gpu-compare.py", o.toString(), q.toString()).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(60, TimeUnit.SECONDS));
    assertEquals(0, p.exitValue(), out);
    return out;
  }

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
