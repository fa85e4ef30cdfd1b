package dev.jclip.backend;

import dev.jclip.backend.cpu.CpuBackend;
import dev.jclip.backend.cuda.CudaBackend;
import dev.jclip.graph.Backend;
import java.util.List;
import java.util.function.Consumer;

/** Opens the backend a {@code --device} / {@code --precision} pair asks for. */
public final class Backends {
  private Backends() {}

  /**
   * The backend for {@code device} (resolved: {@code auto} becomes the first GPU when one works,
   * else the CPU, said through {@code log}) computing in {@code precision}.
   *
   * @param threads CPU threads (the CPU backend's kernels; ignored on a GPU)
   * @throws IllegalArgumentException for {@code cuda:all} (one model per GPU is a batch job's
   *     business), a missing GPU asked for explicitly, or a precision the device does not offer
   */
  public static Backend open(DeviceSpec device, Precision precision, int threads, Consumer<String> log) {
    if (device.kind() == DeviceSpec.Kind.CUDA_ALL) {
      throw new IllegalArgumentException("--device cuda:all runs one model per GPU in batch jobs (jclip embed); pick one GPU here (cuda:N)");
    }
    List<DeviceSpec> resolved = device.resolve(log);
    DeviceSpec d = resolved.get(0);
    if (d.isCuda()) return CudaBackend.open(d.ordinal(), precision);
    CpuBackend cpu = new CpuBackend(threads, true, precision);
    cpu.noteIfScalar(log);
    return cpu;
  }

  /**
   * Whether {@code e} (or a cause of it) is a device allocation that did not fit: the driver's
   * CUDA_ERROR_OUT_OF_MEMORY, or cuBLAS's CUBLAS_STATUS_ALLOC_FAILED.
   */
  public static boolean outOfMemory(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (!(t instanceof dev.jclip.backend.cuda.CudaException)) continue;
      String m = String.valueOf(t.getMessage());
      if (m.contains("CUDA_ERROR_OUT_OF_MEMORY") || m.contains("CUBLAS_STATUS_ALLOC_FAILED")) return true;
    }
    return false;
  }

  /** Whether one executor at a time must use {@code backend} (a GPU stream), rather than many. */
  public static boolean serialized(Backend backend) {
    return backend.oneRunAtATime();
  }
}
