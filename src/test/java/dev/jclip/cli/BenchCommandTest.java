package dev.jclip.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jclip.model.ClipGraphs;
import dev.jclip.model.RandomWeights;
import dev.jclip.testing.Reference;
import java.io.PrintWriter;
import java.io.StringWriter;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** The model benchmark's contract (not its speed): one JSON object last, with the agreed keys. */
class BenchCommandTest {
  @Test
  void jsonLastLineHasTheAgreedKeys() throws Exception {
    StringWriter out = new StringWriter(), err = new StringWriter();
    CommandLine cl = Main.commandLine();
    cl.setOut(new PrintWriter(out));
    cl.setErr(new PrintWriter(err));
    int code = cl.execute("bench", "--model", Reference.dir().resolve("models/vit-b32-tiny/state_dict.pt").toString(), "--vocab",
        Reference.file("bpe_simple_vocab_16e6.txt.gz").toString(), "--device", "cpu", "--batch", "2", "--repeats", "1", "--warmup", "0",
        "--min-seconds", "0", "--warmup-seconds", "0", "--json");
    assertEquals(0, code, err.toString());
    String[] lines = out.toString().strip().split("\n");
    JsonNode o = new ObjectMapper().readTree(lines[lines.length - 1]);
    for (String k : new String[] {"image_per_s", "text77_per_s", "text_prompt_per_s", "image_gflops", "gemm_peak_gflops"}) {
      assertTrue(o.has(k) && o.get(k).asDouble() > 0, k + " in " + o);
    }
    assertEquals(2, o.get("batch").asInt());
    assertEquals(1, o.get("min_runs").asInt(), "--repeats 1 with --min-seconds 0 times exactly one run");
  }

  @Test
  void flopCountsMatchTheIssueFigures() {
    var cfg = RandomWeights.config("ViT-B/32");
    ClipGraphs g = new ClipGraphs(cfg, RandomWeights.generate(cfg, 1));
    // the issue's figures for ViT-B/32: 8.82 GFLOP per image, 5.96 per 77-token text
    assertEquals(8.82, BenchCommand.flops(g.image(1, true)) / 1e9, 0.01);
    assertEquals(5.96, BenchCommand.flops(g.text(1, 77, true)) / 1e9, 0.01);
    // the graphs that run skip the last block's out-projection and MLP (2·rows·D·(D + 2·4D)) for
    // all rows but the pooled one: 49 of 50 tokens of width 768, 76 of 77 of width 512
    assertEquals(BenchCommand.flops(g.image(1, true)) - 2.0 * 49 * 768 * (768 + 2 * 3072), BenchCommand.flops(g.image(1)), 1);
    assertEquals(BenchCommand.flops(g.text(1, 77, true)) - 2.0 * 76 * 512 * (512 + 2 * 2048), BenchCommand.flops(g.text(1, 77)), 1);
  }

  /** {@code bench callers}: both ways timed in one run, one JSON object per number of callers, the batcher's batches counted. */
  @Test
  void callersComparesDirectCallsWithTheBatcher() throws Exception {
    for (String kind : new String[] {"image", "text"}) {
      StringWriter out = new StringWriter(), err = new StringWriter();
      CommandLine cl = Main.commandLine();
      cl.setOut(new PrintWriter(out));
      cl.setErr(new PrintWriter(err));
      int code = cl.execute("bench", "callers", "--model", Reference.dir().resolve("models/vit-b32-tiny/state_dict.pt").toString(), "--vocab",
          Reference.file("bpe_simple_vocab_16e6.txt.gz").toString(), "--device", "cpu", "--threads", "2", "--kind", kind, "--items", "2",
          "--callers", "1,3", "--seconds", "0.3", "--warmup-seconds", "0.1", "--json");
      assertEquals(0, code, err.toString());
      java.util.List<JsonNode> rows = new java.util.ArrayList<>();
      for (String l : out.toString().split("\n")) if (l.startsWith("{")) rows.add(new ObjectMapper().readTree(l));
      assertEquals(2, rows.size(), out.toString());
      for (int i = 0; i < 2; i++) {
        JsonNode o = rows.get(i);
        assertEquals(i == 0 ? 1 : 3, o.get("callers").asInt());
        assertEquals(kind, o.get("kind").asText());
        for (String k : new String[] {"direct_per_s", "batched_per_s", "ratio", "direct_p50_ms", "batched_p99_ms", "mean_batch"}) {
          assertTrue(o.get(k).asDouble() > 0, k + " in " + o);
        }
        assertEquals(o.get("batched_per_s").asDouble() / o.get("direct_per_s").asDouble(), o.get("ratio").asDouble(), 1e-9);
        long batches = 0;
        for (JsonNode n : o.get("batches_by_size")) batches += n.asLong();
        assertEquals(o.get("batches").asLong(), batches);
        assertEquals(0, o.get("padded_rows").asLong(), "no padding on the CPU");
        assertEquals(0, o.get("failed_batches").asLong());
      }
    }
    // two Clips behind the batcher: each ran batches, counted apart
    StringWriter two = new StringWriter(), twoErr = new StringWriter();
    CommandLine c2 = Main.commandLine();
    c2.setOut(new PrintWriter(two));
    c2.setErr(new PrintWriter(twoErr));
    assertEquals(0, c2.execute("bench", "callers", "--model", Reference.dir().resolve("models/vit-b32-tiny/state_dict.pt").toString(), "--vocab",
        Reference.file("bpe_simple_vocab_16e6.txt.gz").toString(), "--device", "cpu", "--threads", "1", "--clips", "2", "--callers", "4", "--seconds",
        "0.5", "--warmup-seconds", "0.1", "--json"), twoErr.toString());
    JsonNode o2 = null;
    for (String l : two.toString().split("\\n")) if (l.startsWith("{")) o2 = new ObjectMapper().readTree(l);
    assertEquals(2, o2.get("clips").asInt());
    assertEquals(2, o2.get("batches_by_clip").size());
    assertEquals(o2.get("batches").asLong(), o2.get("batches_by_clip").get(0).asLong() + o2.get("batches_by_clip").get(1).asLong());
    StringWriter err = new StringWriter();
    CommandLine cl = Main.commandLine();
    cl.setErr(new PrintWriter(err));
    assertEquals(2, cl.execute("bench", "callers", "--random", "ViT-B/32", "--kind", "audio"));
    assertTrue(err.toString().contains("--kind is image or text"), err.toString());
  }

  @Test
  void tokenizerSubcommandStillListed() {
    assertTrue(Main.commandLine().getSubcommands().get("bench").getSubcommands().containsKey("tokenizer"));
  }

  /** Neither --model nor --random: a usage error (exit 2) with the usage on stderr. */
  @Test
  void withoutAModelItIsAUsageError() {
    CliRun.Result r = CliRun.run(Main.commandLine(), "bench");
    assertEquals(2, r.code(), r.err());
    assertTrue(r.err().contains("give --model MODEL or --random NAME"), r.err());
  }
}
