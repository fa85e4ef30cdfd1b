package dev.jclip.backend.cpu;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.TreeSet;

/** What the CPU offers for bf16, read from {@code /proc/cpuinfo} (Linux; elsewhere: nothing known). */
public final class CpuFeatures {
  private static final Set<String> FLAGS = read();

  private CpuFeatures() {}

  private static Set<String> read() {
    Set<String> flags = new TreeSet<>();
    try {
      for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
        if (line.startsWith("flags")) {
          for (String f : line.substring(line.indexOf(':') + 1).trim().split("\\s+")) flags.add(f);
          break;
        }
      }
    } catch (IOException | RuntimeException e) {
      // not Linux, or no /proc: nothing known
    }
    return Set.copyOf(flags);
  }

  /** Whether the CPU has bf16 arithmetic: AVX-512 BF16 or AMX-BF16. */
  public static boolean bf16() {
    return FLAGS.contains("avx512_bf16") || FLAGS.contains("amx_bf16");
  }

  /** Whether the CPU has AMX tiles with bf16 products (oneDNN's fastest bf16 kernels). */
  public static boolean amx() {
    return FLAGS.contains("amx_bf16") && FLAGS.contains("amx_tile");
  }

  /** The bf16-relevant instruction sets found, for messages and benchmark reports. */
  public static String describe() {
    StringBuilder sb = new StringBuilder();
    for (String f : new String[] {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}) {
      if (FLAGS.contains(f)) sb.append(sb.isEmpty() ? "" : ", ").append(f);
    }
    return sb.isEmpty() ? "no AVX2/AVX-512/AMX flags found" : sb.toString();
  }
}
