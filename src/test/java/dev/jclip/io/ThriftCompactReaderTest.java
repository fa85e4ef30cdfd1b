package dev.jclip.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

class ThriftCompactReaderTest {
  @Test
  void readsWhatTheWriterWritesIncludingLongFieldIdsAndNesting() throws IOException {
    ThriftCompactWriter w = new ThriftCompactWriter();
    w.beginStruct();
    w.fieldI16(1, -7);
    w.fieldI32(2, Integer.MIN_VALUE);
    w.fieldI64(3, Long.MAX_VALUE);
    w.fieldBool(4, true);
    w.fieldBool(5, false);
    w.fieldString(40, "猫"); // a delta above 15: the long field header form
    w.fieldList(41, ThriftCompactWriter.I32, 20); // 20 elements: the long list header form
    for (int i = 0; i < 20; i++) w.i32(i - 10);
    w.fieldStruct(42);
    w.fieldStruct(1);
    w.fieldI64(9, 123);
    w.endStruct();
    w.endStruct();
    w.endStruct();
    byte[] b = w.toByteArray();
    ThriftCompactReader r = new ThriftCompactReader(b, 0, b.length);
    ThriftCompactReader.Struct s = r.readStruct();
    assertEquals(b.length, r.consumed());
    assertEquals(-7, s.i32(1, 0));
    assertEquals(Integer.MIN_VALUE, s.i32(2, 0));
    assertEquals(Long.MAX_VALUE, s.i64(3, 0));
    assertTrue(s.bool(4, false));
    assertEquals(false, s.bool(5, true));
    assertEquals("猫", s.string(40));
    List<Object> list = s.list(41);
    assertEquals(20, list.size());
    assertEquals(-10L, list.get(0));
    assertEquals(9L, list.get(19));
    assertEquals(123, s.struct(42).struct(1).i64(9, 0));
    assertEquals(5, s.i32(99, 5), "absent field: the default");
    IOException e = assertThrows(IOException.class, () -> s.i32(3, 0));
    assertTrue(e.getMessage().contains("does not fit 32 bits"), e.getMessage());
    assertThrows(IOException.class, () -> s.struct(40));
  }

  @Test
  void unknownFieldsOfEveryTypeAreParsedAndKept() throws IOException {
    byte[] b = {
      0x17, 0, 0, 0, 0, 0, 0, (byte) 0xF0, 0x3F, // field 1, DOUBLE: 1.0
      0x1B, 0x01, (byte) 0x85, 0x01, 0x61, 0x04, // field 2, MAP<BINARY, I32> of 1 entry: "a" → zigzag(4) = 2
      0x13, (byte) 0xFE, // field 3, BYTE: -2
      0x1A, 0x21, 0x01, 0x02, // field 4, SET<BOOL> of 2: true, false
      0x00
    };
    ThriftCompactReader.Struct s = new ThriftCompactReader(b, 0, b.length).readStruct();
    assertEquals(1.0, s.get(1));
    List<Object> map = s.list(2);
    assertArrayEquals("a".getBytes(StandardCharsets.UTF_8), (byte[]) map.get(0));
    assertEquals(2L, map.get(1));
    assertEquals(-2L, s.i64(3, 0));
    assertEquals(List.of(true, false), s.list(4));
  }

  @Test
  void truncatedAndLyingInputIsAnIOException() {
    byte[][] bad = {
      {}, // no STOP
      {0x15}, // an i32 field without its varint
      {0x18, 0x05, 'a'}, // binary of 5 bytes, 1 there
      {0x19, (byte) 0xF5, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, 0x0F}, // list of 2^32-1
      {0x16, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, 0x01}, // 11-byte varint
      {0x1D, 0}, // type 13: unknown
    };
    for (byte[] b : bad) {
      IOException e = assertThrows(IOException.class, () -> new ThriftCompactReader(b, 0, b.length).readStruct());
      assertTrue(e.getMessage().startsWith("Thrift"), e.getMessage());
    }
  }
}
