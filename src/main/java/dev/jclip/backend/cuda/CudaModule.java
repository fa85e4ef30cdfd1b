package dev.jclip.backend.cuda;

import static dev.jclip.backend.cuda.CudaDriver.check;
import static org.bytedeco.cuda.global.cudart.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
import static org.bytedeco.cuda.global.cudart.cuFuncSetAttribute;
import static org.bytedeco.cuda.global.cudart.cuLaunchKernel;
import static org.bytedeco.cuda.global.cudart.cuModuleGetFunction;
import static org.bytedeco.cuda.global.cudart.cuModuleLoadData;
import static org.bytedeco.cuda.global.cudart.cuModuleUnload;
import static org.bytedeco.cuda.global.cudart.cuOccupancyMaxActiveBlocksPerMultiprocessor;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.HashMap;
import java.util.Map;
import org.bytedeco.cuda.cudart.CUfunc_st;
import org.bytedeco.cuda.cudart.CUmod_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.cudart.CUtensorMap;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.DoublePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;

/**
 * A PTX module built from {@code cuda-kernels/<name>.cu} and loaded with {@code cuModuleLoadData};
 * its kernels are launched with {@code cuLaunchKernel}.
 *
 * <p>The driver compiles PTX for the GPU when a module is first loaded (gemm_sm90's 12 MB of PTX
 * take ~20 s; later loads find it in the driver's JIT cache). Where the jar also holds that
 * compilation done ahead of time for the device's compute capability ({@link #cubinResource}: the
 * GPU bundle adds them, {@code ptxas} run on the same PTX; a stamp beside each names the SHA-256 of
 * the PTX it was made from), that binary is loaded instead, if its stamp matches the PTX in the
 * jar; if the driver refuses it, the PTX is loaded as always.
 */
public final class CudaModule implements AutoCloseable {
  private final CudaDevice device;
  private final String name;
  private final CUmod_st module;
  private final Map<String, CUfunc_st> functions = new HashMap<>();
  private boolean closed;

  private CudaModule(CudaDevice device, String name, CUmod_st module) {
    this.device = device;
    this.name = name;
    this.module = module;
  }

  static CudaModule load(CudaDevice device, String name) {
    String resource = "/ptx/" + name + ".ptx";
    byte[] ptx = resource(resource);
    if (ptx == null) throw new CudaException("PTX resource " + resource + " is missing from the jar (run scripts/build-ptx.sh)");
    String cubin = cubinResource(name, device.computeCapability());
    byte[] binary = resource(cubin), stamp = resource(cubin + ".sha256");
    if (binary != null) {
      String why = stamp == null ? "it has no stamp" : !new String(stamp, java.nio.charset.StandardCharsets.US_ASCII).trim().equals(dev.jclip.io.Downloader.sha256(ptx))
          ? "it was made from other PTX" : null;
      if (why == null) {
        CUmod_st module = new CUmod_st();
        try (BytePointer image = new BytePointer(binary)) {
          int status = cuModuleLoadData(module, image);
          if (status == 0) return new CudaModule(device, name, module);
          why = "cuModuleLoadData returned " + status;
        }
      }
      System.err.println("jclip: " + cubin + " not used (" + why + "): compiling " + resource + " for the GPU instead");
    }
    CUmod_st module = new CUmod_st();
    try (BytePointer image = new BytePointer(ptx.length + 1)) {
      image.put(ptx).put(ptx.length, (byte) 0); // cuModuleLoadData wants a NUL-terminated PTX string
      check(cuModuleLoadData(module, image), "cuModuleLoadData(" + resource + ")");
    }
    return new CudaModule(device, name, module);
  }

  /**
   * The resource that holds module {@code name} compiled ahead of time for compute capability
   * {@code capability} ("9.0" → {@code /ptx/<name>.cc90.cubin}), with its stamp at the same name
   * plus {@code .sha256}.
   */
  static String cubinResource(String name, String capability) {
    return "/ptx/" + name + ".cc" + capability.replace(".", "") + ".cubin";
  }

  /** A resource's bytes, or null when the jar has none by that name. */
  private static byte[] resource(String name) {
    try (InputStream in = CudaModule.class.getResourceAsStream(name)) {
      return in == null ? null : in.readAllBytes();
    } catch (IOException e) {
      throw new UncheckedIOException("reading " + name, e);
    }
  }

  /** The kernel {@code kernel} of this module. */
  public synchronized CUfunc_st function(String kernel) {
    ensureOpen();
    return functions.computeIfAbsent(
        kernel,
        k -> {
          CUfunc_st f = new CUfunc_st();
          check(cuModuleGetFunction(f, module, k), "cuModuleGetFunction(" + name + "." + k + ")");
          return f;
        });
  }

  /**
   * Lets {@code kernel} use {@code bytes} of dynamic shared memory (cuFuncSetAttribute
   * MAX_DYNAMIC_SHARED_SIZE_BYTES): needed above the 48 KB a launch may ask for by default.
   */
  public void allowSharedMemory(String kernel, int bytes) {
    CUfunc_st f = function(kernel);
    device.makeCurrent();
    check(cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes),
        "cuFuncSetAttribute(" + name + "." + kernel + ", MAX_DYNAMIC_SHARED_SIZE_BYTES, " + bytes + ")");
  }

  /**
   * How many blocks of {@code kernel} (of {@code threads} threads and {@code sharedBytes} of dynamic
   * shared memory) an SM of this device holds at once (cuOccupancyMaxActiveBlocksPerMultiprocessor:
   * its registers, shared memory and threads), or {@code fallback} where the driver does not say.
   * (Dynamic shared memory above 48 KB must have been allowed first: {@link #allowSharedMemory}.)
   */
  public int blocksPerMultiprocessor(String kernel, int threads, int sharedBytes, int fallback) {
    CUfunc_st f = function(kernel);
    device.makeCurrent();
    int[] blocks = new int[1];
    int status = cuOccupancyMaxActiveBlocksPerMultiprocessor(blocks, f, threads, sharedBytes);
    return status == 0 && blocks[0] > 0 ? blocks[0] : fallback;
  }

  /**
   * Launches {@code kernel} with the given arguments: {@link DeviceBuffer} (or null for a NULL
   * pointer), {@code Integer}, {@code Long}, {@code Float}, {@code Double} or {@link CUtensorMap}
   * (a {@code __grid_constant__} tensor-map parameter, the caller's), in the kernel's order.
   */
  public void launch(String kernel, int[] grid, int[] block, int sharedBytes, CUstream_st stream, Object... args) {
    CUfunc_st f = function(kernel);
    device.makeCurrent();
    Pointer[] holders = new Pointer[args.length]; // ours to free: every argument but a tensor map
    try (PointerPointer<Pointer> params = new PointerPointer<>(args.length)) {
      for (int i = 0; i < args.length; i++) {
        Object a = args[i];
        holders[i] =
            switch (a) {
              case null -> new LongPointer(1).put(0L);
              case DeviceBuffer b -> new LongPointer(1).put(b.address());
              case Integer v -> new IntPointer(1).put(v);
              case Long v -> new LongPointer(1).put(v);
              case Float v -> new FloatPointer(1).put(v);
              case Double v -> new DoublePointer(1).put(v);
              case CUtensorMap m -> m;
              default -> throw new IllegalArgumentException("kernel argument " + i + " of " + kernel + ": unsupported " + a.getClass());
            };
        params.put(i, holders[i]);
      }
      check(
          cuLaunchKernel(f, grid[0], grid[1], grid[2], block[0], block[1], block[2], sharedBytes, stream, params, (PointerPointer<?>) null),
          "cuLaunchKernel(" + name + "." + kernel + ", grid " + grid[0] + "x" + grid[1] + "x" + grid[2] + ", block " + block[0] + "x"
              + block[1] + "x" + block[2] + ")");
    } finally {
      for (Pointer p : holders) if (p != null && !(p instanceof CUtensorMap)) p.close();
    }
  }

  private void ensureOpen() {
    if (closed) throw new IllegalStateException("CUDA module " + name + " is closed");
  }

  @Override
  public void close() {
    if (closed) return;
    closed = true;
    device.makeCurrent();
    check(cuModuleUnload(module), "cuModuleUnload(" + name + ")");
  }
}
