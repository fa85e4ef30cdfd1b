package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.Backends;
import org.junit.jupiter.api.Test;

/** cuBLAS's failed allocation (status 3) is named in the failure, so that {@code Clip} takes it for the GPU's memory running out. */
class CublasStatusTest {
  @Test
  void aFailedAllocationIsNamed() {
    assertEquals(" (CUBLAS_STATUS_ALLOC_FAILED)", Cublas.allocationFailure(3));
    assertEquals("", Cublas.allocationFailure(7));
    assertTrue(Backends.outOfMemory(new CudaException("cublasLtMatmul failed: cuBLAS status 3" + Cublas.allocationFailure(3))));
    assertFalse(Backends.outOfMemory(new CudaException("cublasLtMatmul failed: cuBLAS status 14" + Cublas.allocationFailure(14))));
  }
}
