package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.Test;

/**
 * Says, in every default build, that the GPU tests (tag "cuda") were not run: they need an NVIDIA
 * GPU and run with {@code ./mvnw verify -Pcuda} (or the GPU bundle's run.sh).
 */
class CudaTestsNoticeTest {
  @Test
  void cudaTestsRunOnlyUnderTheCudaProfile() {
    assumeTrue(
        Boolean.getBoolean("jclip.cuda.required"),
        "CUDA tests skipped: they run with ./mvnw verify -Pcuda on a machine with an NVIDIA GPU (see docs/gpu.md)");
  }
}
