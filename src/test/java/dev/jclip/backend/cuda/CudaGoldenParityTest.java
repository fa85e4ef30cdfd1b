package dev.jclip.backend.cuda;

import dev.jclip.backend.Precision;
import dev.jclip.model.GoldenParityTest;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every reference model on the GPU in fp32 (parity mode) against the golden outputs of openai/CLIP:
 * the same checks, tolerances and intermediates as {@link GoldenParityTest} on the reference
 * backend; and in fp16 and bf16, features within 5e-3 (fp16) or 2e-2 (bf16), ResNets within 40 unit roundoffs, and the same argmax on every probability row. In the GPU bundle the weights come as {@code model.safetensors} (see
 * scripts/gpu-bundle.sh); elsewhere from {@code state_dict.pt}. Each on both GEMM paths: cuBLASLt
 * runs the graphs with their residual ADDs folded into the LINEARs' epilogues (the executor fuses
 * them, the captured block outputs included), cuBLAS the graphs as built.
 */
@Tag("cuda")
class CudaGoldenParityTest {
  static CudaDevice device;

  @RegisterExtension
  static final CudaTestSupport.Gpu GPU = CudaTestSupport.gpu(d -> device = d);

  static Stream<Path> models() throws IOException {
    return GoldenParityTest.models();
  }

  /**
   * Each model on cuBLASLt (the fused graph), on cuBLAS, and on cuBLASLt with the pooled last
   * attention ({@link CudaBackend#pooledAttention}: "cublaslt pooled"), as separate cases.
   */
  static Stream<Arguments> fp32Models() throws IOException {
    return models().flatMap(m -> Stream.of(Arguments.of(m, "cublaslt"), Arguments.of(m, "cublas"), Arguments.of(m, "cublaslt pooled")));
  }

  @ParameterizedTest(name = "{0} {1}")
  @MethodSource("fp32Models")
  void modelMatchesGoldenOnTheGpu(Path dir, String gemm) throws IOException {
    Path weights = Files.exists(dir.resolve("model.safetensors")) ? dir.resolve("model.safetensors") : dir.resolve("state_dict.pt");
    try (CudaBackend backend = new CudaBackend(device, Precision.FP32, false, gemm.startsWith("cublaslt"))) {
      backend.pooledAttention(gemm.endsWith("pooled"));
      GoldenParityTest.check(dir, weights, backend, GoldenParityTest.Mode.FP32);
      assertUsedCublasLt(backend, gemm);
    }
  }

  /**
   * Each model in fp16 and in bf16 as separate cases (a failing fp16 must not hide bf16's errors):
   * on cuBLASLt with the flash attention kernel (the default), with the WMMA kernel, on cuBLAS, and on
   * cuBLASLt with flash and the pooled last attention, and (last, not yet run on a GPU) on the
   * defaults with the lean flash tile's base-2 softmax ({@code flashLean=exp2}: "cublaslt lean2").
   */
  static Stream<Arguments> halfModels() throws IOException {
    return models().flatMap(m -> Stream.of(Precision.FP16, Precision.BF16)
        .flatMap(p -> Stream.of(Arguments.of(m, p, "cublaslt", "flash"), Arguments.of(m, p, "cublaslt", "wmma"),
            Arguments.of(m, p, "cublas", "flash"), Arguments.of(m, p, "cublaslt pooled", "flash"), Arguments.of(m, p, "cublaslt lean2", "flash"))));
  }

  /**
   * fp16: features within 5e-3; bf16, with 8 significant bits to fp16's 11: within 2e-2 (the engine
   * issue's "~1e-2"; the full-geometry test's bound); ResNets within 40 unit roundoffs (see {@link
   * GoldenParityTest.Mode#tolerance}); the same argmax on every probability row in all.
   */
  @ParameterizedTest(name = "{0} {1} {2} {3}")
  @MethodSource("halfModels")
  void halfPrecisionKeepsFeaturesCloseAndTheArgmax(Path dir, Precision p, String gemm, String attention) throws IOException {
    Path weights = Files.exists(dir.resolve("model.safetensors")) ? dir.resolve("model.safetensors") : dir.resolve("state_dict.pt");
    try (CudaBackend backend = new CudaBackend(device, p, attention.equals("flash"), gemm.startsWith("cublaslt"))) {
      if (gemm.endsWith("lean2")) backend.flashLean(CudaOps.FlashLean.EXP2); // with the defaults (pooled last attention included)
      else backend.pooledAttention(gemm.endsWith("pooled"));
      GoldenParityTest.check(dir, weights, backend, p == Precision.BF16 ? GoldenParityTest.Mode.BF16_ACTIVATIONS : GoldenParityTest.Mode.HALF);
      assertUsedCublasLt(backend, gemm);
      if (gemm.endsWith("lean2")) { // every pipelined attention (not a pooled one, nor a ResNet's attention pool) ran the lean kernel
        System.out.printf("[cuda] %s %s lean2: %d of %d pipelined attention launches lean%n", dir.getFileName(), p, backend.flashLeanLaunches(),
            backend.flashPipelinedLaunches());
        org.junit.jupiter.api.Assertions.assertEquals(backend.flashPipelinedLaunches(), backend.flashLeanLaunches(),
            "pipelined attention launches that did not take the lean kernel");
      }
    }
  }

  static Stream<Arguments> halfPrecisions() throws IOException {
    return models().flatMap(m -> Stream.of(Arguments.of(m, Precision.FP16), Arguments.of(m, Precision.BF16)));
  }

  /**
   * The image tower in fp16 and bf16 (the defaults) over 6 perturbed copies of the golden images
   * against the GPU's fp32 parity mode on the same input ({@link GoldenParityTest#ensemble}; fp32
   * is held to the golden features above, within ~1e-5 on these models): every row within the
   * golden test's bound, and the spread printed, to set beside PyTorch's own (torch-16bit.py
   * --ensemble 6, the same run's torch16.txt).
   */
  @ParameterizedTest(name = "{0} {1}")
  @MethodSource("halfPrecisions")
  void halfPrecisionOverPerturbedImages(Path dir, Precision p) throws IOException {
    Path weights = Files.exists(dir.resolve("model.safetensors")) ? dir.resolve("model.safetensors") : dir.resolve("state_dict.pt");
    try (CudaBackend backend = new CudaBackend(device, p); CudaBackend fp32 = new CudaBackend(device, Precision.FP32)) {
      GoldenParityTest.ensemble(dir, weights, backend, fp32, p == Precision.BF16 ? GoldenParityTest.Mode.BF16_ACTIVATIONS : GoldenParityTest.Mode.HALF, 6);
    }
  }

  /** On the cuBLASLt path, the LINEARs did run as cuBLASLt matmuls, none on the cuBLAS fallback. */
  private static void assertUsedCublasLt(CudaBackend backend, String gemm) {
    if (!gemm.startsWith("cublaslt")) return;
    org.junit.jupiter.api.Assertions.assertTrue(backend.cublasLtPlans() > 0, "no LINEAR ran through cuBLASLt");
    org.junit.jupiter.api.Assertions.assertTrue(backend.cublasLtUnsupported().isEmpty(),
        "cuBLASLt had no algorithm for " + backend.cublasLtUnsupported());
  }
}
