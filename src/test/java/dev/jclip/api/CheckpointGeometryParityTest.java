package dev.jclip.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jclip.backend.ReferenceOps;
import dev.jclip.image.ClipPreprocessor;
import dev.jclip.image.ImageDecoder;
import dev.jclip.io.DType;
import dev.jclip.io.NpyWriter;
import dev.jclip.model.ClipConfig;
import dev.jclip.testing.Reference;
import dev.jclip.testing.TestRandom;
import dev.jclip.testing.TorchOracle;
import dev.jclip.tokenizer.ClipTokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Model geometries the reference data does not hold, end to end as a user meets them: PyTorch
 * builds a random-weight CLIP at a geometry drawn anew each run (a ModifiedResNet and a ViT: stage
 * depths, widths, resolutions 224-384, patches 14/16/32, text widths, heads and depths, embedding
 * sizes, the token table in fp32 or fp16, at times every tensor in fp16) and writes it as the real files are written
 * (src/test/python/make_clip_checkpoint.py: {@code torch.save} state dict, a traced TorchScript
 * archive in the style of OpenAI's releases, HuggingFace safetensors for the ViT), with its own
 * features on real and random images and on real texts. Each file then goes through {@link
 * Clip#load} (the geometry inferred from the weights, as clip.model.build_model infers it) and
 * must give the same features and logits within the reference data's 1e-4. Skipped where no
 * Python with PyTorch is installed.
 */
class CheckpointGeometryParityTest {
  @TempDir Path tmp;

  private static final List<String> TEXTS = List.of("a diagram", "a photo of a flower",
      "Ünïcödé naïve café 🐱 — “quotes” &amp; entities",
      "an early <|endoftext|> token: pooling takes the first",
      "a caption long enough to be cut: " + "and on ".repeat(40) + "until it ends");

  @Test
  void resNetAndVitCheckpointsAtDrawnGeometriesMatchPyTorch() throws Exception {
    String python = TorchOracle.python();
    assumeTrue(python != null, "no python3 with PyTorch here (Debian: apt-get install python3-torch)");
    Random random = TestRandom.create("CheckpointGeometryParityTest");
    ClipTokenizer tokenizer = ClipTokenizer.load(Reference.file("bpe_simple_vocab_16e6.txt.gz"));
    check(python, tokenizer, random, resNet(random), "resnet");
    check(python, tokenizer, random, vit(random), "vit");
  }

  /** A ModifiedResNet: 1-3 blocks a stage, width 8-32 (heads of 64), OpenAI's resolutions up to 384. */
  static Map<String, Object> resNet(Random random) {
    Map<String, Object> c = text(random);
    c.put("image_resolution", pick(random, 224, 288, 384));
    c.put("vision_layers", List.of(1 + random.nextInt(3), 1 + random.nextInt(3), 1 + random.nextInt(3), 1 + random.nextInt(3)));
    c.put("vision_width", pick(random, 8, 16, 24, 32));
    c.put("vision_patch_size", null);
    return c;
  }

  /**
   * A ViT: patch 32, 16 or 14 at 224, or 16 or 14 at 336 (the grids of every OpenAI ViT, and the
   * reference data's 336-px B/16; a resolution is a whole number of patches, as build_model infers
   * it), 1-3 layers, width 64-192.
   */
  static Map<String, Object> vit(Random random) {
    Map<String, Object> c = text(random);
    int[][] grids = {{32, 224}, {16, 224}, {14, 224}, {16, 336}, {14, 336}};
    int[] g = grids[random.nextInt(grids.length)];
    c.put("image_resolution", g[1]);
    c.put("vision_layers", 1 + random.nextInt(3));
    c.put("vision_width", pick(random, 64, 128, 192));
    c.put("vision_patch_size", g[0]);
    return c;
  }

  private static Map<String, Object> text(Random random) {
    Map<String, Object> c = new LinkedHashMap<>();
    int width = pick(random, 64, 128, 192);
    c.put("embed_dim", pick(random, 32, 48, 64, 96));
    c.put("context_length", 77);
    c.put("vocab_size", 49408);
    c.put("transformer_width", width);
    c.put("transformer_heads", width / 64);
    c.put("transformer_layers", 1 + random.nextInt(3));
    c.put("logit_scale", Math.round((2.5 + 2.1 * random.nextDouble()) * 1000) / 1000.0);
    c.put("seed", random.nextInt(1 << 30));
    c.put("token_embedding_fp16", random.nextBoolean());
    c.put("all_fp16", random.nextInt(3) == 0); // every floating tensor stored in fp16, BatchNorm statistics and LayerNorms too
    return c;
  }

  private static int pick(Random random, int... values) {
    return values[random.nextInt(values.length)];
  }

  private void check(String python, ClipTokenizer tokenizer, Random random, Map<String, Object> c, String name) throws Exception {
    Path dir = tmp.resolve(name);
    Files.createDirectories(dir);
    Files.writeString(dir.resolve("config.json"), new ObjectMapper().writeValueAsString(c));
    int r = (Integer) c.get("image_resolution");
    // Two real images through the preprocessing, and one of noise.
    ClipPreprocessor pre = new ClipPreprocessor(r);
    ImageDecoder decoder = new ImageDecoder();
    float[] pixels = new float[3 * pre.floatsPerImage()];
    pre.toTensor(decoder.decode(Reference.file("images/grace_hopper.jpg")), pixels, 0);
    pre.toTensor(decoder.decode(Reference.file("images/CLIP.png")), pixels, pre.floatsPerImage());
    float[] noise = TestRandom.gaussian(random, pre.floatsPerImage(), 1);
    System.arraycopy(noise, 0, pixels, 2 * pre.floatsPerImage(), noise.length);
    int[][] rows = tokenizer.tokenize(TEXTS, 77, true);
    int[] ids = new int[rows.length * 77];
    for (int i = 0; i < rows.length; i++) System.arraycopy(rows[i], 0, ids, i * 77, 77);
    NpyWriter.write(dir.resolve("pixels.npy"), DType.F32, new long[] {3, 3, r, r}, pixels);
    float[] idsF = new float[ids.length];
    for (int i = 0; i < ids.length; i++) idsF[i] = ids[i];
    NpyWriter.write(dir.resolve("tokens.npy"), DType.F32, new long[] {rows.length, 77}, idsF);
    System.out.print(TorchOracle.runScript(python, "make_clip_checkpoint.py", dir));
    float[] wantImage = TorchOracle.readFloats(dir.resolve("image_features.npy"));
    float[] wantText = TorchOracle.readFloats(dir.resolve("text_features.npy"));
    float[] wantLogits = TorchOracle.readFloats(dir.resolve("logits_per_image.npy"));

    List<Path> files = new ArrayList<>(List.of(dir.resolve("state_dict.pt"), dir.resolve("openai-jit.pt")));
    if (Files.exists(dir.resolve("hf"))) files.add(dir.resolve("hf"));
    assertEquals(name.equals("vit") ? 3 : 2, files.size(), "the files PyTorch wrote for " + name);
    Clip.Options options = Clip.Options.defaults().withDevice("cpu").withVocabulary(Reference.file("bpe_simple_vocab_16e6.txt.gz"));
    for (Path file : files) {
      String what = name + " " + c + " from " + dir.relativize(file);
      try (Clip clip = Clip.load(file.toString(), options)) {
        ClipConfig cfg = clip.config();
        assertEquals(r, cfg.imageResolution(), what + ": resolution");
        assertEquals(c.get("embed_dim"), cfg.embedDim(), what + ": embedding size");
        float[][] image = clip.encodeImage(new Clip.Pixels(3, r, pixels));
        float[][] text = clip.encodeText(clip.tokenize(TEXTS, true));
        assertTrue(Arrays.equals(ids, clip.tokenize(TEXTS, true).ids()), what + ": the texts' ids");
        float[][] logits = clip.logits(image, text);
        int e = cfg.embedDim();
        double worst = 0;
        for (int i = 0; i < image.length; i++) worst = Math.max(worst, rowWithin(image[i], wantImage, i * e, what + ": image " + i));
        for (int t = 0; t < text.length; t++) worst = Math.max(worst, rowWithin(text[t], wantText, t * e, what + ": text " + t));
        float[] flat = new float[wantLogits.length];
        for (int i = 0; i < logits.length; i++) System.arraycopy(logits[i], 0, flat, i * text.length, text.length);
        double el = ReferenceOps.relativeError(flat, wantLogits);
        System.out.printf("[torch] %s: features %.2e (worst row), logits %.2e%n", what, worst, el);
        assertTrue(el <= 1e-4, what + ": logits off by " + el);
      }
    }
  }

  private static double rowWithin(float[] got, float[] want, int offset, String what) {
    float[] w = Arrays.copyOfRange(want, offset, offset + got.length);
    double err = ReferenceOps.relativeError(got, w);
    assertTrue(err <= 1e-4, what + ": relative error " + err + " against PyTorch");
    return err;
  }
}
