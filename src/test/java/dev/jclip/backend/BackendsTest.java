package dev.jclip.backend;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.cuda.CudaException;
import org.junit.jupiter.api.Test;

/**
 * {@link Backends#outOfMemory}: what makes {@code Clip} free device memory and try again (idle
 * executors closed, a smaller batch, one batch at a time). A device allocation that did not fit
 * (the driver's or cuBLAS's), however deep in the causes; not any other CUDA failure, nor a host
 * OutOfMemoryError's message.
 */
class BackendsTest {
  @Test
  void tellsADeviceAllocationThatDidNotFit() {
    CudaException oom = new CudaException("cuMemAlloc(1073741824 bytes) failed: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory");
    assertTrue(Backends.outOfMemory(oom));
    assertTrue(Backends.outOfMemory(new IllegalStateException("executor", new RuntimeException("wrapped", oom))));
    assertTrue(Backends.outOfMemory(new CudaException("cublasGemmEx(NN 1 x 50x768x768) failed: cuBLAS status 3 (CUBLAS_STATUS_ALLOC_FAILED): "
        + "the resource allocation failed")));
    assertFalse(Backends.outOfMemory(new CudaException("cublasGemmEx(NN 1 x 50x768x768) failed: cuBLAS status 7: an invalid value")));
    assertFalse(Backends.outOfMemory(new CudaException("cuLaunchKernel(gemm) failed: CUDA_ERROR_ILLEGAL_ADDRESS (700): an illegal memory access")));
    assertFalse(Backends.outOfMemory(new RuntimeException("CUDA_ERROR_OUT_OF_MEMORY in a message that is not a CUDA failure")));
    assertFalse(Backends.outOfMemory(null));
  }
}
