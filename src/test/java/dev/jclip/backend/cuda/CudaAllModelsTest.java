package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.Precision;
import dev.jclip.backend.cpu.CpuBackend;
import dev.jclip.model.GoldenParityTest;
import dev.jclip.model.RandomWeights;
import dev.jclip.testing.AllModelsFeatures;
import dev.jclip.testing.TestRandom;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Each of the nine OpenAI models at its full geometry (random weights) on the GPU as a user gets
 * it, the backend's defaults, against the CPU backend in fp32 (itself at reference parity): one
 * image at the model's resolution and two texts ({@link AllModelsFeatures#model}). fp32 within
 * 1e-4; fp16 within the golden test's 16-bit bound for the architecture ({@link
 * GoldenParityTest.Mode#tolerance}: 5e-3 for a ViT, 40 unit roundoffs for a ResNet, whose
 * attention pool amplifies its trunk's rounding).
 *
 * <p>The CPU's features: from {@code -Djclip.cuda.allModels=FILE} when set (the GPU bundle, which
 * has no CPU GEMM library, ships them computed at bundle time for a fresh seed: the weights and
 * inputs are made again from it here), else computed now for a fresh seed.
 *
 * <p>The golden test covers three small models and {@link CudaFullGeometryTest} ViT-B/32 and RN50
 * in depth; this one covers the shapes only the other seven have: RN50x4's, RN50x16's and
 * RN50x64's resolutions (288, 384, 448) and attention pools (82, 145 and 197 positions, 40, 48
 * and 64 heads), RN101's 23-block stage, the ViT-L towers (width 1024, 24 layers, 257 and 577
 * positions) and their 768-wide text towers. The weights are made in float32 on the heap: RN50x64
 * needs ~6 GB of it.
 */
@Tag("cuda")
class CudaAllModelsTest {
  private static CudaDevice device;
  private static AllModelsFeatures.Stored stored;

  @BeforeAll
  static void open() throws IOException {
    device = CudaTestSupport.openDevice();
    String file = System.getProperty("jclip.cuda.allModels");
    if (file != null) {
      stored = AllModelsFeatures.read(Path.of(file));
      System.out.printf("[cuda] all models: the CPU's features from %s (seed %d)%n", file, stored.seed());
    }
  }

  @AfterAll
  static void close() {
    if (device != null) device.close();
  }

  static List<String> models() {
    return RandomWeights.NAMES;
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("models")
  void matchesTheCpuBackend(String name) {
    long t0 = System.nanoTime();
    long seed = stored != null ? stored.seed() : TestRandom.create(getClass().getSimpleName() + "." + name).nextLong();
    AllModelsFeatures.Model model;
    float[][] want;
    try {
      model = AllModelsFeatures.model(name, seed);
      if (stored != null) {
        want = stored.features().get(name);
        assertTrue(want != null, "no CPU features for " + name + " in -Djclip.cuda.allModels");
      } else {
        try (CpuBackend cpu = new CpuBackend()) {
          want = model.features(cpu);
        }
      }
    } catch (OutOfMemoryError e) { // the weights are float32 on the heap: RN50x64 needs ~6 GB
      throw new AssertionError(name + " at full geometry needs more Java heap than this JVM has (" + (Runtime.getRuntime().maxMemory() >> 20)
          + " MB; RN50x64 needs ~6 GB: -Xmx)", e);
    }
    System.out.printf("[cuda] %s: weights, inputs and the CPU's features in %.1f s%n", name, (System.nanoTime() - t0) / 1e9);
    List<String> failures = new ArrayList<>();
    for (Precision p : new Precision[] {Precision.FP32, Precision.FP16}) {
      double tol = (p == Precision.FP32 ? GoldenParityTest.Mode.FP32 : GoldenParityTest.Mode.HALF).tolerance(model.config());
      long t1 = System.nanoTime();
      try (CudaBackend cuda = new CudaBackend(device, p)) {
        float[][] got = model.features(cuda);
        CudaFullGeometryTest.check(name, p + " image_features", got[0], want[0], tol, failures);
        CudaFullGeometryTest.check(name, p + " text_features", got[1], want[1], tol, failures);
      } catch (RuntimeException e) {
        failures.add(name + " " + p + ": " + e);
        e.printStackTrace(System.out);
      }
      System.out.printf("[cuda] %s %s: %.1f s (uploads, plans, both towers' first runs)%n", name, p, (System.nanoTime() - t1) / 1e9);
    }
    assertTrue(failures.isEmpty(), String.join("\n", failures));
  }
}
