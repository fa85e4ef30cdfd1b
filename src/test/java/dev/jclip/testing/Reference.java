package dev.jclip.testing;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Locates the golden data made by the reference implementation ({@code ../shared/clip-reference}).
 *
 * <p>Overridable with the system property {@code jclip.reference} or the environment variable
 * {@code JCLIP_REFERENCE}. Tests that need it fail loudly when it is missing, unless {@code
 * jclip.reference.optional=true} is set (for builds outside the project's workspace).
 */
public final class Reference {
  private Reference() {}

  public static Path dir() {
    String p = System.getProperty("jclip.reference");
    if (p == null || p.isBlank()) p = System.getenv("JCLIP_REFERENCE");
    if (p == null || p.isBlank()) p = "../shared/clip-reference";
    Path dir = Path.of(p).toAbsolutePath().normalize();
    if (!Files.isDirectory(dir)) {
      if (Boolean.getBoolean("jclip.reference.optional")) {
        assumeTrue(false, "reference data not found at " + dir);
      }
      throw new IllegalStateException(
          "reference data not found at "
              + dir
              + ": set -Djclip.reference=DIR or JCLIP_REFERENCE=DIR to the clip-reference folder");
    }
    return dir;
  }

  public static Path file(String relative) {
    Path f = dir().resolve(relative);
    if (!Files.exists(f)) {
      throw new IllegalStateException("reference file missing: " + f);
    }
    return f;
  }
}
