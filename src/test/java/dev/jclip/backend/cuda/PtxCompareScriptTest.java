package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * scripts/ptx-compare.py, which says whether a kernel change left the existing PTX entries alone:
 * on two small PTX files made here, an entry unchanged, one with its registers renumbered, one with
 * two moves swapped besides, one with an operand changed, one gone and one new, each put in its
 * class, and the exit status 1 for the changed and the gone ones, 0 without them.
 */
class PtxCompareScriptTest {
  private static String entry(String name, String... body) {
    return ".visible .entry " + name + "(\n\t.param .u64 p0\n)\n{\n\t.reg .b32 \t%r<9>;\n\t" + String.join("\n\t", body) + "\n$L__BB0_1:\n\tret;\n}\n";
  }

  @Test
  void classifiesEachEntry(@TempDir Path dir) throws Exception {
    String[] body = {"mov.u32 \t%r1, 0;", "mov.u32 \t%r2, 7;", "add.s32 \t%r3, %r1, %r2;", "mul.lo.s32 \t%r4, %r3, 3;", "@%p1 bra \t$L__BB0_1;"};
    String old = entry("same", body) + entry("renamed", body) + entry("moved", body) + entry("edited", body) + entry("gone", body);
    String[] renamed = {"mov.u32 \t%r5, 0;", "mov.u32 \t%r6, 7;", "add.s32 \t%r7, %r5, %r6;", "mul.lo.s32 \t%r8, %r7, 3;", "@%p1 bra \t$L__BB3_4;"};
    String[] moved = {"mov.u32 \t%r2, 7;", "mov.u32 \t%r1, 0;", "add.s32 \t%r3, %r1, %r2;", "mul.lo.s32 \t%r4, %r3, 3;", "@%p1 bra \t$L__BB0_1;"};
    String[] edited = {"mov.u32 \t%r1, 0;", "mov.u32 \t%r2, 7;", "add.s32 \t%r3, %r1, %r2;", "mul.lo.s32 \t%r4, %r3, 5;", "@%p1 bra \t$L__BB0_1;"};
    String now = entry("same", body) + entry("renamed", renamed) + entry("moved", moved) + entry("edited", edited) + entry("added", body);
    String out = run(dir, old, now, 1);
    assertTrue(out.contains("entries: 5 before, 5 after"), out);
    assertTrue(out.contains("new: 1 added\n") && out.contains("gone: 1 gone\n") && out.contains("same: 1\n"), out);
    assertTrue(out.contains("registers only: 1 renamed\n") && out.contains("moves only: 1 moved\n") && out.contains("changed: 1 edited\n"), out);
    // new entries and renamed registers alone: nothing existing changed
    String ok = run(dir, entry("same", body) + entry("renamed", body), entry("same", body) + entry("renamed", renamed) + entry("added", body), 0);
    assertTrue(ok.contains("changed: 0") && ok.contains("gone: 0"), ok);
  }

  private static String run(Path dir, String before, String after, int wantExit) throws Exception {
    Path a = Files.writeString(dir.resolve("before.ptx"), before), b = Files.writeString(dir.resolve("after.ptx"), after);
    assumeTrue(Files.isExecutable(Path.of("/usr/bin/python3")), "no python3 here");
    Process p = new ProcessBuilder("/usr/bin/python3", "scripts/ptx-compare.py", a.toString(), b.toString()).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(60, TimeUnit.SECONDS));
    assertEquals(wantExit, p.exitValue(), out);
    return out;
  }
}
