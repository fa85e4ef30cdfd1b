package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jclip.backend.cpu.CpuBackend;
import dev.jclip.io.Checkpoint;
import dev.jclip.model.ClipConfig;
import dev.jclip.model.ClipGraphs;
import dev.jclip.testing.Reference;
import dev.jclip.tokenizer.ClipTokenizer;
import dev.jclip.tokenizer.Prompts;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The model benchmark's whole-prompt-set measurement (what the GPU run times) on the CPU, on the
 * reference's tiny ViT-B/32: both orders run every prompt, pipelined and resident (as the peer times
 * its own) with the same features, bit for bit, and batching by length pads less.
 */
class PromptSetBenchTest {
  @Test
  void bothOrdersRunAndBatchingByLengthPadsLess() throws Exception {
    ClipTokenizer tok = ClipTokenizer.load(Reference.file("bpe_simple_vocab_16e6.txt.gz"));
    List<String> classes = Prompts.readList(Reference.file("zeroshot/imagenet_classes.json")).subList(0, 6);
    List<String> templates = Prompts.readList(Reference.file("zeroshot/imagenet_templates.json"));
    int[][] prompts = tok.tokenize(Prompts.expand(classes, templates), 77, true);
    ObjectNode row = new ObjectMapper().createObjectNode();
    ByteArrayOutputStream log = new ByteArrayOutputStream();
    try (Checkpoint ck = Checkpoint.open(Reference.dir().resolve("models/vit-b32-tiny/state_dict.pt"));
        CpuBackend cpu = new CpuBackend()) {
      ClipGraphs graphs = new ClipGraphs(ClipConfig.infer(ck), ck.tensors());
      CudaModelBench.promptSet(cpu, graphs, prompts, 32, row, new PrintStream(log, true));
    }
    for (String order : new String[] {"given_order", "by_length"}) {
      assertTrue(row.get(order + "_resident_per_s").asDouble() > 0, row.toString());
      assertTrue(row.get(order + "_pipelined_per_s").asDouble() > 0, row.toString());
      assertTrue(row.get(order + "_pipelined_same_features").asBoolean(), row.toString());
    }
    double given = row.get("given_order_tokens_per_prompt").asDouble(), byLength = row.get("by_length_tokens_per_prompt").asDouble();
    assertTrue(byLength < given, "by length " + byLength + " tokens per prompt, given order " + given);
    // by length, at most one batch shape per distinct length, and the cut is never below a prompt's own length
    long real = 0;
    for (int[] p : prompts) {
      int best = 0;
      for (int t = 1; t < 77; t++) if (p[t] > p[best]) best = t;
      real += best + 1;
    }
    assertTrue(byLength >= (double) real / prompts.length, byLength + " < " + (double) real / prompts.length);
    assertEquals(2, log.toString().lines().filter(l -> l.startsWith("[model] text tower")).count(), log.toString());
  }
}
