package dev.jclip.backend;

import dev.jclip.backend.cuda.CudaDriver;
import dev.jclip.backend.cuda.CudaException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Consumer;

/**
 * Where to run: {@code auto} (the default: the first GPU when one works, else the CPU),
 * {@code cpu}, {@code cuda} (= {@code cuda:0}), {@code cuda:N}, or {@code cuda:all} (one model per
 * GPU, for batch jobs).
 *
 * <pre>{@code
 * List<DeviceSpec> devices = DeviceSpec.parse("auto").resolve(System.err::println);
 * }</pre>
 */
public record DeviceSpec(Kind kind, int ordinal) {
  public enum Kind {
    AUTO,
    CPU,
    CUDA,
    CUDA_ALL
  }

  public static final DeviceSpec AUTO = new DeviceSpec(Kind.AUTO, -1);
  public static final DeviceSpec CPU = new DeviceSpec(Kind.CPU, -1);

  /** Parses a {@code --device} value. */
  public static DeviceSpec parse(String s) {
    String v = s.trim().toLowerCase(Locale.ROOT);
    switch (v) {
      case "auto":
        return AUTO;
      case "cpu":
        return CPU;
      case "cuda", "gpu":
        return new DeviceSpec(Kind.CUDA, 0);
      case "cuda:all":
        return new DeviceSpec(Kind.CUDA_ALL, -1);
      default:
        if (v.startsWith("cuda:")) {
          try {
            int n = Integer.parseInt(v.substring(5));
            if (n >= 0) return new DeviceSpec(Kind.CUDA, n);
          } catch (NumberFormatException ignored) {
            // falls through to the error below
          }
        }
        throw new IllegalArgumentException("unknown device '" + s + "' (auto, cpu, cuda, cuda:N or cuda:all)");
    }
  }

  /**
   * The concrete devices this spec means on this machine: {@code auto} becomes {@code cuda:0} when
   * a GPU works and {@code cpu} otherwise, saying which through {@code log}; {@code cuda:all}
   * becomes every GPU. An explicit {@code cuda} that cannot work is an error with the reason.
   */
  public List<DeviceSpec> resolve(Consumer<String> log) {
    switch (kind) {
      case CPU:
        return List.of(CPU);
      case AUTO: {
        try {
          if (CudaDriver.deviceCount() > 0) {
            log.accept("jclip: using cuda:0 (--device cpu to run on the CPU)");
            return List.of(new DeviceSpec(Kind.CUDA, 0));
          }
          log.accept("jclip: no CUDA device found; using the CPU");
        } catch (CudaException | LinkageError e) {
          log.accept("jclip: no usable GPU (" + e.getMessage() + "); using the CPU");
        }
        return List.of(CPU);
      }
      case CUDA: {
        int count = cudaDevices();
        if (ordinal >= count) {
          throw new IllegalArgumentException("device " + this + ": this machine has " + count + " CUDA device(s)" + ELSE);
        }
        return List.of(this);
      }
      case CUDA_ALL: {
        int count = cudaDevices();
        if (count == 0) throw new IllegalArgumentException("device cuda:all: this machine has no CUDA device" + ELSE);
        List<DeviceSpec> all = new ArrayList<>();
        for (int i = 0; i < count; i++) all.add(new DeviceSpec(Kind.CUDA, i));
        return all;
      }
      default:
        throw new IllegalStateException(kind.toString());
    }
  }

  /** What to do instead, for the command line and for Java callers. */
  private static final String ELSE = "; use the CPU: --device cpu or auto (in Java: Clip.Options.withDevice(\"cpu\") or \"auto\")";

  /** The number of CUDA devices; an explicit request for a GPU on a machine without one names itself and the reason. */
  private int cudaDevices() {
    try {
      return CudaDriver.deviceCount();
    } catch (CudaException | LinkageError e) {
      throw new IllegalArgumentException("device " + this + ": no usable GPU (" + e.getMessage() + ")" + ELSE, e);
    }
  }

  public boolean isCuda() {
    return kind == Kind.CUDA;
  }

  @Override
  public String toString() {
    return switch (kind) {
      case AUTO -> "auto";
      case CPU -> "cpu";
      case CUDA -> "cuda:" + ordinal;
      case CUDA_ALL -> "cuda:all";
    };
  }
}
