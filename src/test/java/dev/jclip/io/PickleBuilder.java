package dev.jclip.io;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/** Writes pickle opcodes by hand, to build test inputs (benign and malicious) byte by byte. */
final class PickleBuilder {
  private final ByteArrayOutputStream out = new ByteArrayOutputStream();

  PickleBuilder proto(int p) {
    return op(0x80).raw(p);
  }

  PickleBuilder op(int code) {
    out.write(code);
    return this;
  }

  PickleBuilder raw(int... bytes) {
    for (int b : bytes) out.write(b);
    return this;
  }

  PickleBuilder global(String module, String name) {
    op('c');
    out.writeBytes((module + "\n" + name + "\n").getBytes(StandardCharsets.US_ASCII));
    return this;
  }

  PickleBuilder str(String s) {
    byte[] b = s.getBytes(StandardCharsets.UTF_8);
    op('X');
    le32(b.length);
    out.writeBytes(b);
    return this;
  }

  PickleBuilder shortStr(String s) {
    byte[] b = s.getBytes(StandardCharsets.UTF_8);
    op(0x8c).raw(b.length);
    out.writeBytes(b);
    return this;
  }

  PickleBuilder integer(long v) {
    if (v >= 0 && v < 256) return op('K').raw((int) v);
    if (v >= 0 && v < 65536) return op('M').raw((int) (v & 0xff), (int) (v >>> 8));
    if (v >= Integer.MIN_VALUE && v <= Integer.MAX_VALUE) {
      op('J');
      le32((int) v);
      return this;
    }
    op(0x8a).raw(8);
    for (int i = 0; i < 8; i++) out.write((int) (v >>> (8 * i)));
    return this;
  }

  PickleBuilder mark() {
    return op('(');
  }

  PickleBuilder tuple() {
    return op('t');
  }

  PickleBuilder emptyTuple() {
    return op(')');
  }

  PickleBuilder intTuple(long... v) {
    mark();
    for (long x : v) integer(x);
    return tuple();
  }

  PickleBuilder reduce() {
    return op('R');
  }

  PickleBuilder stop() {
    return op('.');
  }

  /** {@code _rebuild_tensor_v2(storage(type, key, numel), offset, shape, stride, False, OrderedDict())}. */
  PickleBuilder tensor(String storageType, String key, long numel, long offset, long[] shape, long[] stride) {
    global("torch._utils", "_rebuild_tensor_v2");
    mark();
    mark().str("storage").global("torch", storageType).str(key).str("cpu").integer(numel).tuple().op('Q');
    integer(offset).intTuple(shape).intTuple(stride).op(0x89);
    global("collections", "OrderedDict").emptyTuple().reduce();
    tuple();
    return reduce();
  }

  private void le32(int v) {
    for (int i = 0; i < 4; i++) out.write(v >>> (8 * i));
  }

  byte[] bytes() {
    return out.toByteArray();
  }
}
