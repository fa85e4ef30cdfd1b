package dev.jclip.testing;

import dev.jclip.io.Checkpoint;
import dev.jclip.io.SafetensorsReader;
import dev.jclip.io.SafetensorsWriter;
import dev.jclip.io.Tensor;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * Prepares the reference models for the GPU bundle (scripts/gpu-bundle.sh), which must stay under
 * 60 MB: each model's weights are written as {@code model.safetensors} under their canonical names
 * and stored dtypes, with one change: the rows of {@code token_embedding.weight} that no golden
 * token uses are zeroed, so the file compresses (most of a tiny model is its 49408-row token
 * table). Those rows are never read when the golden texts are encoded, so every golden output is
 * unchanged; golden.safetensors and manifest.json are copied as they are.
 *
 * <p>Usage: {@code BundleModels REFERENCE_DIR OUT_DIR}
 */
public final class BundleModels {
  private BundleModels() {}

  public static void main(String[] args) throws IOException {
    Path ref = Path.of(args[0]), out = Path.of(args[1]);
    try (Stream<Path> dirs = Files.list(ref.resolve("models"))) {
      for (Path dir : dirs.sorted().toList()) {
        if (!Files.exists(dir.resolve("golden.safetensors")) || !Files.exists(dir.resolve("state_dict.pt"))) continue;
        Path dst = out.resolve("models").resolve(dir.getFileName().toString());
        Files.createDirectories(dst);
        BitSet used = new BitSet();
        try (SafetensorsReader golden = SafetensorsReader.open(dir.resolve("golden.safetensors"))) {
          for (long id : golden.tensor("tokens").toLongArray()) used.set((int) id);
        }
        try (Checkpoint ck = Checkpoint.open(dir.resolve("state_dict.pt"))) {
          List<Tensor> tensors = new ArrayList<>();
          for (Map.Entry<String, Tensor> e : ck.tensors().entrySet()) {
            Tensor t = e.getValue().renamed(e.getKey());
            if (e.getKey().equals("token_embedding.weight")) t = keepRows(t, used);
            tensors.add(t);
          }
          Map<String, String> meta = new LinkedHashMap<>();
          meta.put("source", dir.getFileName() + "/state_dict.pt");
          meta.put("note", "token_embedding rows unused by the golden tokens are zero (GPU bundle)");
          SafetensorsWriter.write(dst.resolve("model.safetensors"), tensors, meta);
        }
        for (String f : new String[] {"golden.safetensors", "manifest.json"}) {
          Files.copy(dir.resolve(f), dst.resolve(f), StandardCopyOption.REPLACE_EXISTING);
        }
        System.out.println("bundled " + dir.getFileName() + " (" + used.cardinality() + " token rows kept)");
      }
    }
  }

  private static Tensor keepRows(Tensor t, BitSet rows) {
    ByteBuffer src = t.data();
    ByteBuffer dst = ByteBuffer.allocate(src.remaining()).order(ByteOrder.LITTLE_ENDIAN);
    int rowBytes = (int) (t.byteSize() / t.dim(0));
    for (int r = rows.nextSetBit(0); r >= 0 && r < t.dim(0); r = rows.nextSetBit(r + 1)) {
      for (int i = 0; i < rowBytes; i++) dst.put(r * rowBytes + i, src.get(r * rowBytes + i));
    }
    return new Tensor(t.name(), t.dtype(), t.shape(), dst);
  }
}
