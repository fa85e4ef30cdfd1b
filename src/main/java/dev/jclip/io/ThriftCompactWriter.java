package dev.jclip.io;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/**
 * The write side of Apache Thrift's compact protocol, enough for Parquet's footer and page
 * headers: structs, i16/i32/i64 (zigzag varints), binary/string, bool fields and lists.
 *
 * <p>Usage follows the IDL: {@code beginStruct(); fieldI32(1, v); ... endStruct();}. Field ids
 * must increase within a struct (Parquet's IDL order), which keeps the short delta form valid.
 */
final class ThriftCompactWriter {
  // Compact protocol type codes.
  static final int BOOL_TRUE = 1;
  static final int BOOL_FALSE = 2;
  static final int BYTE = 3;
  static final int I16 = 4;
  static final int I32 = 5;
  static final int I64 = 6;
  static final int DOUBLE = 7;
  static final int BINARY = 8;
  static final int LIST = 9;
  static final int STRUCT = 12;

  private final ByteArrayOutputStream out = new ByteArrayOutputStream();
  /** Last field id per open struct: the compact protocol encodes ids as deltas. */
  private final short[] lastField = new short[32];

  private int depth = -1;

  byte[] toByteArray() {
    if (depth != -1) throw new IllegalStateException("unclosed struct");
    return out.toByteArray();
  }

  void beginStruct() {
    if (++depth >= lastField.length) throw new IllegalStateException("structs nested too deep");
    lastField[depth] = 0;
  }

  void endStruct() {
    out.write(0); // STOP
    depth--;
  }

  /** A struct-typed field: header now, then the caller writes the body and calls endStruct(). */
  void fieldStruct(int id) {
    fieldHeader(id, STRUCT);
    beginStruct();
  }

  void fieldI16(int id, int v) {
    fieldHeader(id, I16);
    varint(zigzag32(v));
  }

  void fieldI32(int id, int v) {
    fieldHeader(id, I32);
    varint(zigzag32(v));
  }

  void fieldI64(int id, long v) {
    fieldHeader(id, I64);
    varint(zigzag64(v));
  }

  void fieldBool(int id, boolean v) {
    fieldHeader(id, v ? BOOL_TRUE : BOOL_FALSE);
  }

  void fieldBinary(int id, byte[] v) {
    fieldHeader(id, BINARY);
    binary(v);
  }

  void fieldString(int id, String v) {
    fieldBinary(id, v.getBytes(StandardCharsets.UTF_8));
  }

  /** A list field's header; the caller then writes {@code size} elements of {@code elemType}. */
  void fieldList(int id, int elemType, int size) {
    fieldHeader(id, LIST);
    listHeader(elemType, size);
  }

  void listHeader(int elemType, int size) {
    if (size < 15) {
      out.write((size << 4) | elemType);
    } else {
      out.write(0xF0 | elemType);
      varint(size);
    }
  }

  /** A list element of type I32 (enums too). */
  void i32(int v) {
    varint(zigzag32(v));
  }

  void binary(byte[] v) {
    varint(v.length);
    out.write(v, 0, v.length);
  }

  void string(String v) {
    binary(v.getBytes(StandardCharsets.UTF_8));
  }

  private void fieldHeader(int id, int type) {
    if (depth < 0) throw new IllegalStateException("field outside a struct");
    int delta = id - lastField[depth];
    if (delta > 0 && delta <= 15) {
      out.write((delta << 4) | type);
    } else {
      out.write(type);
      varint(zigzag32((short) id));
    }
    lastField[depth] = (short) id;
  }

  private static long zigzag32(int v) {
    return ((v << 1) ^ (v >> 31)) & 0xffffffffL;
  }

  private static long zigzag64(long v) {
    return (v << 1) ^ (v >> 63);
  }

  private void varint(long v) {
    while ((v & ~0x7FL) != 0) {
      out.write((int) ((v & 0x7F) | 0x80));
      v >>>= 7;
    }
    out.write((int) v);
  }
}
