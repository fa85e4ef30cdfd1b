package dev.jclip.backend.cpu;

import dev.jclip.model.GoldenParityTest;
import java.io.IOException;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every reference model on the CPU backend against openai/CLIP's golden outputs (features, logits,
 * probabilities, debug intermediates at relative error ≤ 1e-4, and the bit-exact end-of-text cut),
 * with the vector kernels and with their scalar twins.
 */
class CpuGoldenParityTest {
  static Stream<Path> models() throws IOException {
    return GoldenParityTest.models();
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("models")
  void vectorKernelsMatchTheReference(Path dir) throws IOException {
    try (CpuBackend cpu = new CpuBackend()) {
      GoldenParityTest.check(dir, dir.resolve("state_dict.pt"), cpu);
    }
  }

  /** bf16 weight GEMMs (AVX-512 BF16 / AMX): features within 2e-2, same argmax on every row. */
  @ParameterizedTest(name = "{0}")
  @MethodSource("models")
  void bf16MatchesTheReferenceWithinItsTolerance(Path dir) throws IOException {
    org.junit.jupiter.api.Assumptions.assumeTrue(CpuFeatures.bf16(), "this CPU has no bf16 instructions (" + CpuFeatures.describe() + ")");
    try (CpuBackend cpu = new CpuBackend(Runtime.getRuntime().availableProcessors(), true, dev.jclip.backend.Precision.BF16)) {
      GoldenParityTest.check(dir, dir.resolve("state_dict.pt"), cpu, GoldenParityTest.Mode.BF16);
    }
  }

  /**
   * The perturbed-image ensemble the GPU test measures 16-bit errors with ({@link
   * GoldenParityTest#ensemble}), here in fp32: every row within 1e-4 of the reference backend on
   * the same input, and the spread it reports is that of real, distinct rows.
   */
  @ParameterizedTest(name = "{0}")
  @MethodSource("models")
  void perturbedImagesMatchTheReference(Path dir) throws IOException {
    try (CpuBackend cpu = new CpuBackend(); dev.jclip.backend.ReferenceBackend reference = new dev.jclip.backend.ReferenceBackend()) {
      GoldenParityTest.Spread s = GoldenParityTest.ensemble(dir, dir.resolve("state_dict.pt"), cpu, reference, GoldenParityTest.Mode.FP32, 2);
      org.junit.jupiter.api.Assertions.assertEquals(16, s.rows());
      org.junit.jupiter.api.Assertions.assertTrue(s.max() <= 1e-4 && s.max() >= s.p90() && s.p90() >= s.median(), s.toString());
      org.junit.jupiter.api.Assertions.assertTrue(s.max() > 0, "the CPU backend matched the reference bit for bit on every row: " + s);
    }
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("models")
  void scalarKernelsMatchTheReference(Path dir) throws IOException {
    try (CpuBackend cpu = new CpuBackend(Runtime.getRuntime().availableProcessors(), false)) {
      GoldenParityTest.check(dir, dir.resolve("state_dict.pt"), cpu);
    }
  }
}
