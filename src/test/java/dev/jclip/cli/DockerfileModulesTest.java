package dev.jclip.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.spi.ToolProvider;
import org.junit.jupiter.api.Test;

/**
 * The Docker image's Java runtime is jlink'd from a fixed list of modules (plus what jdeps finds the
 * dependencies need, at build time): the list must hold every module that jclip's own classes use,
 * as jdeps reads them. A module missing there shows only when a command runs in the image (it once
 * lacked java.net.http, which every model command reaches through the downloader).
 */
class DockerfileModulesTest {
  @Test
  void theFixedListHoldsEveryModuleOurClassesUse() throws Exception {
    String dockerfile = Files.readString(Path.of("Dockerfile"));
    Matcher m = Pattern.compile("echo (java\\.base,[a-z.,]+);").matcher(dockerfile);
    assertTrue(m.find(), "Dockerfile: no fixed module list (echo java.base,...;) before its jdeps");
    Set<String> listed = new TreeSet<>(List.of(m.group(1).split(",")));

    ToolProvider jdeps = ToolProvider.findFirst("jdeps").orElseThrow(() -> new AssertionError("this JDK has no jdeps"));
    StringWriter out = new StringWriter(), err = new StringWriter();
    int rc = jdeps.run(new PrintWriter(out), new PrintWriter(err), "--print-module-deps", "--ignore-missing-deps", "--multi-release", "25",
        Path.of("target/classes").toString());
    assertEquals(0, rc, err.toString());
    List<String> missing = new ArrayList<>();
    for (String module : out.toString().strip().split(",")) {
      if (!listed.contains(module.strip())) missing.add(module.strip());
    }
    assertTrue(out.toString().contains("java.base"), "jdeps printed: " + out);
    assertTrue(missing.isEmpty(), "the Dockerfile's jlink list lacks " + missing + " (jdeps on target/classes: " + out.toString().strip() + ")");
  }
}
