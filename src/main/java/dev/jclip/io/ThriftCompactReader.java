package dev.jclip.io;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Reads one Thrift struct in the compact protocol (Parquet's footer and page headers) into a
 * generic tree, {@link Struct}: field id → value. Parquet readers look fields up by id, so a field
 * this reader does not know (a newer format version's statistics, encryption or geospatial
 * metadata) is parsed, kept and ignored rather than breaking the read.
 *
 * <p>Values: BOOL → Boolean; BYTE, I16, I32, I64 → Long; DOUBLE → Double; BINARY → byte[]; LIST
 * and SET → {@code List<Object>}; MAP → a list of alternating keys and values; STRUCT → Struct.
 *
 * <p>The input is untrusted: every length and count is checked against the bytes left (each
 * element takes at least one byte), nesting is limited to {@value #MAX_DEPTH} levels and varints
 * to 10 bytes, so a corrupt footer gives an {@link IOException} naming the byte offset, never an
 * OutOfMemoryError or StackOverflowError.
 */
final class ThriftCompactReader {
  static final int MAX_DEPTH = 64;

  // Compact protocol type codes (ThriftCompactWriter has the writer's copy of the same table).
  private static final int STOP = 0;
  private static final int BOOL_TRUE = ThriftCompactWriter.BOOL_TRUE;
  private static final int BOOL_FALSE = ThriftCompactWriter.BOOL_FALSE;
  private static final int BYTE = ThriftCompactWriter.BYTE;
  private static final int I16 = ThriftCompactWriter.I16;
  private static final int I32 = ThriftCompactWriter.I32;
  private static final int I64 = ThriftCompactWriter.I64;
  private static final int DOUBLE = ThriftCompactWriter.DOUBLE;
  private static final int BINARY = ThriftCompactWriter.BINARY;
  private static final int LIST = ThriftCompactWriter.LIST;
  private static final int SET = 10;
  private static final int MAP = 11;
  private static final int STRUCT = ThriftCompactWriter.STRUCT;

  /** A decoded struct: its fields by id, in the order read. */
  static final class Struct {
    private short[] ids = new short[8];
    private Object[] values = new Object[8];
    private int n;

    void put(short id, Object v) {
      if (n == ids.length) {
        ids = Arrays.copyOf(ids, n * 2);
        values = Arrays.copyOf(values, n * 2);
      }
      ids[n] = id;
      values[n++] = v;
    }

    /** The field's value, or null when absent (the last occurrence wins, as in Thrift's own readers). */
    Object get(int id) {
      for (int i = n - 1; i >= 0; i--) if (ids[i] == id) return values[i];
      return null;
    }

    boolean has(int id) {
      return get(id) != null;
    }

    /** An integer field; {@code def} when absent. A field of another type is a format error. */
    long i64(int id, long def) throws IOException {
      Object v = get(id);
      if (v == null) return def;
      if (v instanceof Long l) return l;
      throw new IOException("Thrift field " + id + " is " + kind(v) + ", expected an integer");
    }

    /** An integer field that must fit an int (sizes, counts, enum values). */
    int i32(int id, int def) throws IOException {
      long v = i64(id, def);
      if (v != (int) v) throw new IOException("Thrift field " + id + " = " + v + " does not fit 32 bits");
      return (int) v;
    }

    /** A required integer field. */
    long requireI64(int id, String name) throws IOException {
      if (get(id) == null) throw new IOException("required field " + name + " is missing");
      return i64(id, 0);
    }

    int requireI32(int id, String name) throws IOException {
      if (get(id) == null) throw new IOException("required field " + name + " is missing");
      return i32(id, 0);
    }

    boolean bool(int id, boolean def) throws IOException {
      Object v = get(id);
      if (v == null) return def;
      if (v instanceof Boolean b) return b;
      throw new IOException("Thrift field " + id + " is " + kind(v) + ", expected a bool");
    }

    byte[] binary(int id) throws IOException {
      Object v = get(id);
      if (v == null || v instanceof byte[]) return (byte[]) v;
      throw new IOException("Thrift field " + id + " is " + kind(v) + ", expected binary");
    }

    String string(int id) throws IOException {
      byte[] b = binary(id);
      return b == null ? null : new String(b, java.nio.charset.StandardCharsets.UTF_8);
    }

    Struct struct(int id) throws IOException {
      Object v = get(id);
      if (v == null || v instanceof Struct) return (Struct) v;
      throw new IOException("Thrift field " + id + " is " + kind(v) + ", expected a struct");
    }

    /** A list field's elements, empty when absent. */
    List<Object> list(int id) throws IOException {
      Object v = get(id);
      if (v == null) return List.of();
      if (v instanceof List<?> l) {
        @SuppressWarnings("unchecked")
        List<Object> o = (List<Object>) l;
        return o;
      }
      throw new IOException("Thrift field " + id + " is " + kind(v) + ", expected a list");
    }

    /** A list field of structs. */
    List<Struct> structs(int id) throws IOException {
      List<Struct> out = new ArrayList<>();
      for (Object o : list(id)) {
        if (!(o instanceof Struct s)) throw new IOException("Thrift field " + id + " holds " + kind(o) + ", expected structs");
        out.add(s);
      }
      return out;
    }

    private static String kind(Object v) {
      return switch (v) {
        case Long l -> "an integer";
        case Boolean b -> "a bool";
        case Double d -> "a double";
        case byte[] b -> "binary";
        case Struct s -> "a struct";
        default -> "a list";
      };
    }
  }

  private final byte[] buf;
  private final int start;
  private final int end;
  private int pos;

  /** Reads from {@code buf[off, off + len)}. */
  ThriftCompactReader(byte[] buf, int off, int len) {
    if (off < 0 || len < 0 || off > buf.length - len) throw new IllegalArgumentException("bad window " + off + "+" + len + " of " + buf.length);
    this.buf = buf;
    this.start = off;
    this.end = off + len;
    this.pos = off;
  }

  /** Bytes consumed so far. */
  int consumed() {
    return pos - start;
  }

  /** Reads one struct (up to and including its STOP). */
  Struct readStruct() throws IOException {
    return struct(0);
  }

  private Struct struct(int depth) throws IOException {
    if (depth >= MAX_DEPTH) throw error("structs nested deeper than " + MAX_DEPTH + " levels");
    Struct s = new Struct();
    short last = 0;
    while (true) {
      int h = u8();
      int type = h & 0x0F;
      if (type == STOP) return s;
      int delta = h >>> 4;
      short id;
      if (delta != 0) {
        id = (short) (last + delta);
      } else {
        long z = varint();
        id = (short) zigzag(z);
      }
      last = id;
      Object v =
          switch (type) {
            case BOOL_TRUE -> Boolean.TRUE;
            case BOOL_FALSE -> Boolean.FALSE;
            default -> value(type, depth);
          };
      s.put(id, v);
    }
  }

  private Object value(int type, int depth) throws IOException {
    return switch (type) {
      case BYTE -> (long) (byte) u8();
      case I16, I32, I64 -> zigzag(varint());
      case DOUBLE -> {
        need(8);
        long bits = 0;
        for (int i = 0; i < 8; i++) bits |= (buf[pos + i] & 0xFFL) << (8 * i);
        pos += 8;
        yield Double.longBitsToDouble(bits);
      }
      case BINARY -> {
        long len = varint();
        if (len > end - pos) throw error("binary of " + len + " bytes but only " + (end - pos) + " left");
        byte[] b = Arrays.copyOfRange(buf, pos, pos + (int) len);
        pos += (int) len;
        yield b;
      }
      case LIST, SET -> {
        int h = u8();
        long size = h >>> 4;
        if (size == 15) size = varint();
        int elem = h & 0x0F;
        yield elements(size, elem, depth);
      }
      case MAP -> {
        long size = varint();
        if (size == 0) yield List.of();
        int kv = u8();
        if (size > (end - pos) / 2) throw error("map of " + size + " entries but only " + (end - pos) + " bytes left");
        List<Object> out = new ArrayList<>();
        for (long i = 0; i < size; i++) {
          out.add(element(kv >>> 4, depth));
          out.add(element(kv & 0x0F, depth));
        }
        yield out;
      }
      case STRUCT -> struct(depth + 1);
      default -> throw error("unknown compact type " + type);
    };
  }

  private List<Object> elements(long size, int elem, int depth) throws IOException {
    // Every element takes at least one byte, so a larger count is a lie (or a truncated window).
    if (size > end - pos) throw error("list of " + size + " elements but only " + (end - pos) + " bytes left");
    List<Object> out = new ArrayList<>((int) size);
    for (long i = 0; i < size; i++) out.add(element(elem, depth));
    return out;
  }

  /** A collection element: like a field value, except that a bool is a whole byte. */
  private Object element(int type, int depth) throws IOException {
    if (type == BOOL_TRUE || type == BOOL_FALSE) return u8() == BOOL_TRUE;
    if (type == STOP) throw error("collection of element type 0");
    return value(type, depth + 1);
  }

  private int u8() throws IOException {
    need(1);
    return buf[pos++] & 0xFF;
  }

  private long varint() throws IOException {
    long v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      int b = u8();
      v |= (long) (b & 0x7F) << shift;
      if ((b & 0x80) == 0) return v;
    }
    throw error("varint longer than 10 bytes");
  }

  private static long zigzag(long z) {
    return (z >>> 1) ^ -(z & 1);
  }

  private void need(int n) throws IOException {
    if (end - pos < n) throw new IOException("Thrift data ends at byte " + (pos - start) + " inside a struct");
  }

  private IOException error(String m) {
    return new IOException("Thrift " + m + " (at byte " + (pos - start) + ")");
  }
}
