package dev.jclip.testing;

import dev.jclip.io.DType;
import dev.jclip.io.NpyWriter;
import dev.jclip.io.Tensor;
import dev.jclip.model.ClipConfig;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * PyTorch as the oracle for configurations the reference data does not cover: a Python with
 * PyTorch (Debian's python3-torch, which .ci/run installs) runs src/test/python/torch_clip_features.py
 * on a model and inputs written here as .npy files, and its features come back.
 */
public final class TorchOracle {
  private TorchOracle() {}

  /** /usr/bin/python3 or python3 where it imports torch, else null. */
  public static String python() throws InterruptedException {
    for (String python : new String[] {"/usr/bin/python3", "python3"}) {
      try {
        Process p = new ProcessBuilder(python, "-c", "import torch").redirectErrorStream(true).start();
        p.getInputStream().readAllBytes();
        if (p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0) return python;
      } catch (IOException e) {
        // not there: try the next
      }
    }
    return null;
  }

  /**
   * PyTorch's {@code encode_image} and {@code encode_text} of the ViT {@code cfg} with {@code
   * weights} (canonical names) on {@code pixels} [B, 3, R, R] and {@code tokens} [T, context
   * length]: {image features [B·E], text features [T·E]}.
   */
  public static float[][] features(String python, Path dir, ClipConfig cfg, Map<String, Tensor> weights, float[] pixels, int[] tokens)
      throws IOException, InterruptedException {
    if (!cfg.isVit()) throw new IllegalArgumentException("the oracle builds ViTs");
    Files.createDirectories(dir);
    Map<String, Object> c = new LinkedHashMap<>(cfg.constructorArgs());
    c.put("vision_heads", cfg.visionHeads());
    c.put("vision_mlp", cfg.visionMlpWidth());
    c.put("transformer_mlp", cfg.transformerMlpWidth());
    c.put("activation", cfg.activation().hfName());
    Files.writeString(dir.resolve("config.json"), new com.fasterxml.jackson.databind.ObjectMapper().writeValueAsString(c));
    for (Tensor t : weights.values()) {
      long[] shape = t.rank() == 0 ? new long[] {1} : t.shape();
      NpyWriter.write(dir.resolve(t.name() + ".npy"), DType.F32, shape, t.toFloatArray());
    }
    int r = cfg.imageResolution(), ctx = cfg.contextLength();
    NpyWriter.write(dir.resolve("pixels.npy"), DType.F32, new long[] {pixels.length / (3L * r * r), 3, r, r}, pixels);
    float[] ids = new float[tokens.length];
    for (int i = 0; i < ids.length; i++) ids[i] = tokens[i]; // exact below 2^24
    NpyWriter.write(dir.resolve("tokens.npy"), DType.F32, new long[] {tokens.length / ctx, ctx}, ids);
    runScript(python, "torch_clip_features.py", dir);
    return new float[][] {readFloats(dir.resolve("image_features.npy")), readFloats(dir.resolve("text_features.npy"))};
  }

  /** Runs {@code src/test/python/SCRIPT DIR} (at most 300 s); its output, or an exception with it. */
  public static String runScript(String python, String script, Path dir) throws IOException, InterruptedException {
    Path log = dir.resolve("torch.txt");
    Process p = new ProcessBuilder(python, "src/test/python/" + script, dir.toString()).redirectErrorStream(true)
        .redirectOutput(log.toFile()).start();
    boolean ended = p.waitFor(300, TimeUnit.SECONDS);
    if (!ended) p.destroyForcibly().waitFor();
    String out = Files.readString(log, StandardCharsets.UTF_8);
    if (!ended || p.exitValue() != 0) throw new IllegalStateException(script + " " + (ended ? "failed" : "ran past 300 s") + ":\n" + out);
    return out;
  }

  /** The values of a little-endian float32 .npy file, in C order. */
  public static float[] readFloats(Path p) throws IOException {
    ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(p)).order(ByteOrder.LITTLE_ENDIAN);
    int major = b.get(6), headerLen = major == 1 ? b.getShort(8) & 0xffff : b.getInt(8), start = major == 1 ? 10 : 12;
    String header = new String(b.array(), start, headerLen, StandardCharsets.ISO_8859_1);
    if (!header.contains("'descr': '<f4'") || header.contains("'fortran_order': True")) throw new IOException(p + ": not a C-order float32 array: " + header);
    b.position(start + headerLen);
    float[] v = new float[b.remaining() / 4];
    for (int i = 0; i < v.length; i++) v[i] = b.getFloat();
    return v;
  }
}
