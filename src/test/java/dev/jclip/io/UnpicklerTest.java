package dev.jclip.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.io.Unpickler.Tuple;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class UnpicklerTest {
  @TempDir Path tmp;

  private static Object load(byte[] pickle) throws CheckpointException {
    return Unpickler.load(ByteBuffer.wrap(pickle), Path.of("test.pt"), "archive/data.pkl", pid -> {
      throw new CheckpointException(java.nio.file.Path.of("test.pt"), "archive/data.pkl", "no persistent ids here");
    });
  }

  /** The classic exploit: {@code os.system("touch <file>")} via GLOBAL + REDUCE, and its relatives. */
  @Test
  void maliciousGlobalsAreRefusedAndNothingRuns() throws IOException {
    Path marker = tmp.resolve("pwned");
    String cmd = "touch " + marker;
    String[][] globals = {
      {"os", "system"}, {"posix", "system"}, {"builtins", "eval"}, {"builtins", "exec"}, {"subprocess", "Popen"},
      {"builtins", "getattr"}, {"torch", "load"}, {"numpy.core.multiarray", "_reconstruct"}, {"__builtin__", "eval"}
    };
    for (String[] g : globals) {
      // GLOBAL form (protocol 2) ...
      byte[] viaGlobal = new PickleBuilder().proto(2).global(g[0], g[1]).mark().str(cmd).tuple().reduce().stop().bytes();
      // ... and STACK_GLOBAL form (protocol 4)
      byte[] viaStack = new PickleBuilder().proto(4).shortStr(g[0]).shortStr(g[1]).op(0x93).mark().str(cmd).tuple().reduce().stop().bytes();
      for (byte[] p : List.of(viaGlobal, viaStack)) {
        var e = assertThrows(CheckpointException.class, () -> load(p));
        assertTrue(e.getMessage().contains("'" + g[0] + "." + g[1] + "' is not allowed"), e.getMessage());
        assertTrue(e.getMessage().startsWith("test.pt: 'archive/data.pkl': "), e.getMessage());
      }
    }
    // A refused global inside an otherwise valid state dict is refused too, wherever it sits.
    byte[] nested = new PickleBuilder().proto(2).global("collections", "OrderedDict").emptyTuple().reduce()
        .mark().str("weight").global("os", "system").mark().str(cmd).tuple().reduce().op('u').stop().bytes();
    assertThrows(CheckpointException.class, () -> load(nested));
    // Instantiating through INST/OBJ (which import by name) is not even an opcode we accept.
    byte[] inst = ("(S'" + cmd + "'\nios\nsystem\n.").getBytes(java.nio.charset.StandardCharsets.US_ASCII);
    assertThrows(CheckpointException.class, () -> load(inst));
    assertFalse(Files.exists(marker), "a command from the pickle ran");
  }

  /** A refused global's hint fits it: metadata beside the weights, a whole model, or none for what only an attack names. */
  @Test
  void refusedGlobalsSayWhatToDo() {
    String[][] cases = {
      {"argparse", "Namespace", "training checkpoint holding Python objects"},
      {"numpy.core.multiarray", "scalar", "training checkpoint holding Python objects"},
      {"torch.nn.modules.linear", "Linear", "This file is a whole model saved with torch.save(model): save model.state_dict() instead"},
      {"os", "system", null}, {"builtins", "eval", null}, {"torch", "load", null},
    };
    for (String[] c : cases) {
      byte[] p = new PickleBuilder().proto(2).global(c[0], c[1]).mark().tuple().reduce().stop().bytes();
      var e = assertThrows(CheckpointException.class, () -> load(p));
      if (c[2] == null) {
        assertFalse(e.getMessage().contains("torch.save"), e.getMessage());
      } else {
        assertTrue(e.getMessage().contains(c[2]), e.getMessage());
      }
    }
  }

  @Test
  void readsTheValueTypesCheckpointsUse() throws CheckpointException {
    byte[] p = new PickleBuilder().proto(2).op('}').mark()
        .str("int").integer(-5)
        .str("big").integer(1L << 40)
        .str("float").op('G').raw(0x3f, 0xf8, 0, 0, 0, 0, 0, 0) // 1.5 big-endian
        .str("none").op('N')
        .str("bools").op(0x88).op(0x89).op(0x86)
        .str("list").op(']').op('q').raw(7).mark().integer(1).integer(2).op('e')
        .str("again").op('h').raw(7)
        .op('u').stop().bytes();
    Object o = load(p);
    Map<?, ?> m = assertInstanceOf(Map.class, o);
    assertEquals(-5L, m.get("int"));
    assertEquals(1L << 40, m.get("big"));
    assertEquals(1.5, m.get("float"));
    assertTrue(m.containsKey("none"));
    assertNull(m.get("none"));
    assertEquals(new Tuple(List.of(true, false)), m.get("bools"));
    assertEquals(List.of(1L, 2L), m.get("list"));
    assertTrue(m.get("list") == m.get("again"), "memo must return the same object");
    assertEquals(List.of("int", "big", "float", "none", "bools", "list", "again"), List.copyOf(m.keySet()));
  }

  @Test
  void corruptPicklesGiveCleanErrors() {
    byte[][] cases = {
      {},                                  // empty
      {(byte) 0x80, 2},                    // no STOP
      {(byte) 0x80, 2, 'X', 1, 0, 0},      // string length past the end
      {(byte) 0x80, 2, 'h', 9, '.'},       // memo never stored
      {(byte) 0x80, 2, 'a', '.'},          // append on empty stack
      {(byte) 0x80, 2, 'K', 1, 'K', 2, '.'}, // two values at STOP
      {(byte) 0x80, 2, (byte) 0xff, '.'},  // unknown opcode
      {(byte) 0x80, 2, 'c', 'o', 's'},     // global without newline
      {(byte) 0x80, 2, ']', 'K', 1, 'K', 2, 's', '.'}, // SETITEM on a list
    };
    for (byte[] c : cases) {
      var e = assertThrows(CheckpointException.class, () -> load(c));
      assertTrue(e.getMessage().startsWith("test.pt: 'archive/data.pkl': "), e.getMessage());
    }
  }
}
