package dev.jclip.backend.cuda;

import static dev.jclip.testing.AllModelsFeatures.run;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.Precision;
import dev.jclip.backend.ReferenceBackend;
import dev.jclip.backend.ReferenceOps;
import dev.jclip.graph.Executor;
import dev.jclip.model.ClipConfig;
import dev.jclip.model.ClipGraphs;
import dev.jclip.model.OtherHeadSizesTest;
import dev.jclip.model.RandomWeights;
import dev.jclip.testing.TestRandom;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * A small model with heads of 80 (image) and 88 (text) and MLPs other than 4 × width, as open_clip's
 * ViT-H-14 / ViT-g-14 / ViT-bigG-14 have: refused by the CUDA backend's defaults, and with {@code
 * anyHead} (attention_any.cu) run in every precision against the reference backend.
 */
@Tag("cuda")
class CudaOtherHeadSizesTest {
  @Test
  void otherHeadSizesAreRefusedByDefaultAndMatchTheReferenceWithAnyHead() {
    Random random = TestRandom.create(getClass().getSimpleName());
    ClipConfig cfg = OtherHeadSizesTest.config();
    ClipGraphs graphs = new ClipGraphs(cfg, RandomWeights.generate(cfg, random.nextLong()));
    int images = 2, texts = 3, len = 77, r = cfg.imageResolution();
    float[] pixels = TestRandom.gaussian(random, images * 3 * r * r, 1);
    int[] ids = OtherHeadSizesTest.texts(random, texts, len, cfg.vocabSize());
    try (CudaDevice device = CudaTestSupport.openDevice();
        ReferenceBackend ref = new ReferenceBackend()) {
      float[] wantImage = run("image_features", graphs.image(images), Map.of("pixels", pixels), ref);
      float[] wantText = run("text_features", graphs.text(texts, len), Map.of("tokens", ids), ref);
      List<String> failures = new ArrayList<>();
      for (Precision p : Precision.values()) {
        try (CudaBackend cuda = new CudaBackend(device, p)) {
          UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, () -> new Executor(graphs.image(images), cuda, List.of()).close());
          assertTrue(e.getMessage().contains("2 heads of 80") && e.getMessage().contains("--device cpu"), e.getMessage());
          cuda.anyHead(true);
          // fp32: the parity mode; 16 bits: weights and activations rounded, the attention's arithmetic fp32
          double tol = switch (p) {
            case FP32 -> 1e-4;
            case FP16 -> 5e-3;
            case BF16 -> 3e-2;
          };
          float[] image = run("image_features", graphs.image(images), Map.of("pixels", pixels), cuda);
          float[] text = run("text_features", graphs.text(texts, len), Map.of("tokens", ids), cuda);
          double ei = ReferenceOps.relativeError(image, wantImage), et = ReferenceOps.relativeError(text, wantText);
          System.out.printf("[cuda heads] %s: image %.2e, text %.2e (tolerance %.0e)%n", p, ei, et, tol);
          if (!(ei <= tol && et <= tol)) failures.add(p + ": image " + ei + ", text " + et + " > " + tol);
        }
      }
      assertTrue(failures.isEmpty(), String.join("; ", failures));
    }
  }
}
