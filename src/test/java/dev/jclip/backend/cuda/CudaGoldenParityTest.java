package dev.jclip.backend.cuda;

import dev.jclip.backend.Precision;
import dev.jclip.model.GoldenParityTest;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every reference model on the GPU in fp32 (parity mode) against the golden outputs of openai/CLIP:
 * the same checks, tolerances and intermediates as {@link GoldenParityTest} on the reference
 * backend; and in fp16 and bf16, features within 5e-3 and the same argmax on every probability row. In the GPU bundle the weights come as {@code model.safetensors} (see
 * scripts/gpu-bundle.sh); elsewhere from {@code state_dict.pt}.
 */
@Tag("cuda")
class CudaGoldenParityTest {
  static CudaDevice device;

  @BeforeAll
  static void open() {
    device = CudaTestSupport.openDevice();
  }

  @AfterAll
  static void close() {
    if (device != null) device.close();
  }

  static Stream<Path> models() throws IOException {
    return GoldenParityTest.models();
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("models")
  void modelMatchesGoldenOnTheGpu(Path dir) throws IOException {
    Path weights = Files.exists(dir.resolve("model.safetensors")) ? dir.resolve("model.safetensors") : dir.resolve("state_dict.pt");
    try (CudaBackend backend = new CudaBackend(device)) {
      GoldenParityTest.check(dir, weights, backend, GoldenParityTest.Mode.FP32);
    }
  }

  /** Each model in fp16 and in bf16, as separate cases: a failing fp16 must not hide bf16's errors. */
  static Stream<Arguments> halfModels() throws IOException {
    return models().flatMap(m -> Stream.of(Arguments.of(m, Precision.FP16), Arguments.of(m, Precision.BF16)));
  }

  @ParameterizedTest(name = "{0} {1}")
  @MethodSource("halfModels")
  void halfPrecisionKeepsFeaturesWithin5e3AndTheArgmax(Path dir, Precision p) throws IOException {
    Path weights = Files.exists(dir.resolve("model.safetensors")) ? dir.resolve("model.safetensors") : dir.resolve("state_dict.pt");
    try (CudaBackend backend = new CudaBackend(device, p)) {
      GoldenParityTest.check(dir, weights, backend, GoldenParityTest.Mode.HALF);
    }
  }
}
