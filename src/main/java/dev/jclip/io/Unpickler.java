package dev.jclip.io;

import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.nio.file.Path;

/**
 * A restricted unpickler for the {@code data.pkl} records of PyTorch checkpoints and TorchScript
 * archives. It never runs code from the file: there is no reflection and no class loading by name.
 * A pickle names the functions and classes it needs as "globals"; each one must be on a fixed
 * allowlist ({@link Global.Kind}) and is then interpreted by Java code here. Any other global (say
 * {@code os.system} or {@code builtins.eval}) stops loading at the opcode that names it, before
 * anything could be called, with an error naming the global.
 *
 * <p>Values: Python {@code None} is {@code null}; bool → {@link Boolean}; int → {@link Long} (or
 * {@link BigInteger} beyond 64 bits); float → {@link Double}; str → {@link String}; bytes → {@code
 * byte[]}; list → {@link List}; tuple → {@link Tuple}; dict and OrderedDict → {@link Map} (insertion
 * ordered); TorchScript module objects → {@link TorchObject}; tensors → {@link TensorRef} (a
 * description only: the bytes are sliced later from the archive); persistent ids are resolved by
 * the caller's {@link PersistentLoader}.
 *
 * <p>The opcodes are those of protocols 0–5 that these files use plus their close relatives; the
 * rest (extension registry, out-of-band buffers, {@code INST}/{@code OBJ}) are refused. Memory use
 * is bounded by the pickle's size: every opcode consumes at least one byte and pushes at most one
 * value, and no length read from the file is trusted before it is checked against what remains.
 */
public final class Unpickler {

  /** A tuple. */
  public record Tuple(List<Object> items) {
    public Tuple {
      items = java.util.Collections.unmodifiableList(new ArrayList<>(items));
    }

    public int size() {
      return items.size();
    }

    public Object get(int i) {
      return items.get(i);
    }
  }

  /** A TorchScript module (a {@code __torch__.*} class instance) seen as a map of attributes. */
  public record TorchObject(String className, Map<String, Object> attributes) {}

  /** A typed storage: the archive entry {@code data/<key>} holding {@code numel} elements. */
  public record StorageRef(String key, DType dtype, long numel, String location) {}

  /** A tensor view of a storage, as {@code torch._utils._rebuild_tensor_v2} describes it. */
  public record TensorRef(StorageRef storage, long offset, long[] shape, long[] stride) {}

  /** An allowed global: what the pickle may name, and how we interpret it. */
  public record Global(String module, String name, Kind kind, DType dtype) {
    public enum Kind {
      /** {@code collections.OrderedDict}: state dicts are OrderedDicts. */
      ORDERED_DICT,
      /** {@code torch._utils._rebuild_tensor_v2}: how every tensor is pickled. */
      REBUILD_TENSOR,
      /** {@code torch._utils._rebuild_parameter(_with_state)}: a pickled {@code nn.Parameter}. */
      REBUILD_PARAMETER,
      /** {@code torch.FloatStorage} etc.: names the element type inside a storage's persistent id. */
      STORAGE_TYPE,
      /** {@code torch.float16} etc.: dtype values some checkpoints carry as metadata. */
      DTYPE,
      /** {@code torch.Size}: a tuple subclass some checkpoints store in metadata. */
      TORCH_SIZE,
      /** {@code __torch__.*}: TorchScript module classes, built with NEWOBJ and filled by BUILD. */
      TORCHSCRIPT_CLASS
    }

    public String qualifiedName() {
      return module + "." + name;
    }
  }

  /** Resolves a persistent id (the argument of BINPERSID) to a value, e.g. a {@link StorageRef}. */
  @FunctionalInterface
  public interface PersistentLoader {
    Object load(Object pid) throws CheckpointException;
  }

  private static final Map<String, DType> STORAGE_TYPES =
      Map.ofEntries(
          Map.entry("FloatStorage", DType.F32),
          Map.entry("HalfStorage", DType.F16),
          Map.entry("BFloat16Storage", DType.BF16),
          Map.entry("DoubleStorage", DType.F64),
          Map.entry("LongStorage", DType.I64),
          Map.entry("IntStorage", DType.I32),
          Map.entry("ShortStorage", DType.I16),
          Map.entry("CharStorage", DType.I8),
          Map.entry("ByteStorage", DType.U8),
          Map.entry("BoolStorage", DType.BOOL));

  private static final Map<String, DType> DTYPES =
      Map.ofEntries(
          Map.entry("float32", DType.F32),
          Map.entry("float", DType.F32),
          Map.entry("float16", DType.F16),
          Map.entry("half", DType.F16),
          Map.entry("bfloat16", DType.BF16),
          Map.entry("float64", DType.F64),
          Map.entry("double", DType.F64),
          Map.entry("int64", DType.I64),
          Map.entry("long", DType.I64),
          Map.entry("int32", DType.I32),
          Map.entry("int", DType.I32),
          Map.entry("int16", DType.I16),
          Map.entry("int8", DType.I8),
          Map.entry("uint8", DType.U8),
          Map.entry("bool", DType.BOOL));

  /**
   * The allowlist. Returns the interpretation of {@code module.name}, or throws naming it.
   *
   * <p>Why each is here: OrderedDict is the type of every state dict; {@code _rebuild_tensor_v2}
   * rebuilds every tensor (torch 1.x and 2.x); {@code _rebuild_parameter} and {@code
   * _rebuild_parameter_with_state} appear when a model's parameters (not its state dict) are saved;
   * {@code torch.*Storage} name the element type of each storage; dtype and {@code torch.Size}
   * values appear in training checkpoints' metadata; {@code __torch__.*} are the classes TorchScript
   * writes for modules (OpenAI's released {@code .pt} files), which we treat as attribute maps.
   */
  static Global allow(String module, String name, Path source, String entry) throws CheckpointException {
    if (module.equals("collections") && name.equals("OrderedDict")) {
      return new Global(module, name, Global.Kind.ORDERED_DICT, null);
    }
    if (module.equals("torch._utils")
        && (name.equals("_rebuild_tensor_v2") || name.equals("_rebuild_parameter") || name.equals("_rebuild_parameter_with_state"))) {
      return new Global(module, name, name.equals("_rebuild_tensor_v2") ? Global.Kind.REBUILD_TENSOR : Global.Kind.REBUILD_PARAMETER, null);
    }
    if (module.equals("torch")) {
      DType st = STORAGE_TYPES.get(name);
      if (st != null) return new Global(module, name, Global.Kind.STORAGE_TYPE, st);
      DType dt = DTYPES.get(name);
      if (dt != null) return new Global(module, name, Global.Kind.DTYPE, dt);
      if (name.equals("Size")) return new Global(module, name, Global.Kind.TORCH_SIZE, null);
      if (name.endsWith("Storage")) {
        throw new CheckpointException(source, entry, "unsupported storage type torch." + name + ": jclip reads float16, bfloat16, float32, float64 and integer/bool storages");
      }
    }
    if (module.equals("__torch__") || module.startsWith("__torch__.")) {
      return new Global(module, name, Global.Kind.TORCHSCRIPT_CLASS, null);
    }
    throw new CheckpointException(
        source,
        entry,
        "pickle global '"
            + module
            + "."
            + name
            + "' is not allowed: jclip never runs code from a checkpoint, and only reads tensors,"
            + " dicts, lists and TorchScript modules (allowed: collections.OrderedDict,"
            + " torch._utils._rebuild_tensor_v2/_rebuild_parameter, torch.*Storage, torch dtypes,"
            + " torch.Size, __torch__.*)"
            + hint(module));
  }

  /**
   * What to do about a refused global: nothing for those only an attack would name; for a module
   * class ({@code torch.nn.*}), save the state dict; for anything else (argparse.Namespace, numpy
   * scalars: a training checkpoint's metadata beside its weights, or a model class of one's own),
   * either.
   */
  private static String hint(String module) {
    List<String> hostile = List.of("builtins", "__builtin__", "os", "posix", "nt", "subprocess", "sys", "shutil", "socket", "importlib",
        "runpy", "pty", "code", "pickle", "marshal", "ctypes", "types", "webbrowser", "commands");
    String top = module.contains(".") ? module.substring(0, module.indexOf('.')) : module;
    if (hostile.contains(top)) return "";
    if (module.equals("torch.nn") || module.startsWith("torch.nn.")) {
      return ". This file is a whole model saved with torch.save(model): save model.state_dict() instead";
    }
    if (top.equals("torch")) return "";
    return ". If this is a training checkpoint holding Python objects beside its weights (arguments, numpy values), save its state dict"
        + " alone (torch.save(checkpoint[\"state_dict\"], \"weights.pt\")); if it is a whole model saved with torch.save(model),"
        + " save model.state_dict() instead";
  }

  /**
   * A short text for an unpickled value in an error message: at most {@code maxChars} characters
   * and 3 levels of tuples, lists and dicts, so that a value nested thousands deep or holding
   * itself (a list appended to itself) is described, never walked to the end.
   */
  public static String brief(Object o, int maxChars) {
    StringBuilder b = new StringBuilder();
    brief(o, 0, b, maxChars);
    return b.length() > maxChars ? b.substring(0, maxChars) + "..." : b.toString();
  }

  private static void brief(Object o, int depth, StringBuilder b, int maxChars) {
    if (b.length() > maxChars) return;
    java.util.Collection<?> items = o instanceof Tuple t ? t.items() : o instanceof java.util.Collection<?> c ? c : null;
    if (items != null || o instanceof java.util.Map<?, ?>) {
      String open = o instanceof Tuple ? "(" : items != null ? "[" : "{", close = o instanceof Tuple ? ")" : items != null ? "]" : "}";
      if (depth >= 3) {
        b.append(open).append("...").append(close);
        return;
      }
      b.append(open);
      int i = 0;
      Iterable<?> it = items != null ? items : ((java.util.Map<?, ?>) o).entrySet();
      for (Object x : it) {
        if (b.length() > maxChars) break;
        if (i++ > 0) b.append(", ");
        if (x instanceof java.util.Map.Entry<?, ?> e) {
          brief(e.getKey(), depth + 1, b, maxChars);
          b.append(": ");
          brief(e.getValue(), depth + 1, b, maxChars);
        } else {
          brief(x, depth + 1, b, maxChars);
        }
      }
      b.append(close);
      return;
    }
    String s = o instanceof String str ? "'" + str + "'" : o instanceof Long || o instanceof Double || o instanceof Boolean ? String.valueOf(o) : typeName(o);
    int room = Math.max(0, maxChars + 1 - b.length()); // one over, so that the caller sees it was cut
    b.append(s.length() > room ? s.substring(0, room) : s);
  }

  private static final Object MARK = new Object() {
    @Override
    public String toString() {
      return "<mark>";
    }
  };

  private final ByteBuffer in;
  private final Path source;
  private final String entry;
  private final PersistentLoader loader;
  private final ArrayList<Object> stack = new ArrayList<>();
  private final ArrayList<Integer> marks = new ArrayList<>();
  private final HashMap<Long, Object> memo = new HashMap<>();

  private Unpickler(ByteBuffer in, Path source, String entry, PersistentLoader loader) {
    this.in = in.slice().order(ByteOrder.LITTLE_ENDIAN);
    this.source = source;
    this.entry = entry;
    this.loader = loader;
  }

  /**
   * Unpickles one object.
   *
   * @param source the file, for messages
   * @param entry the record inside it (e.g. {@code archive/data.pkl}), for messages
   */
  public static Object load(ByteBuffer pickle, Path source, String entry, PersistentLoader loader) throws CheckpointException {
    return new Unpickler(pickle, source, entry, loader).run();
  }

  private CheckpointException bad(String problem) {
    return new CheckpointException(source, entry, problem + " (pickle offset " + in.position() + ")");
  }

  private Object run() throws CheckpointException {
    while (true) {
      if (!in.hasRemaining()) throw bad("pickle ends without STOP (truncated)");
      int pos = in.position();
      int op = in.get() & 0xff;
      switch (op) {
        case 0x80 -> { // PROTO
          int proto = u8();
          if (proto > 5) throw bad("pickle protocol " + proto + " is newer than 5");
        }
        case 0x95 -> { // FRAME: framing is only a read-ahead hint
          long len = in.getLong(need(8));
          if (len < 0 || len > in.remaining()) throw bad("frame of " + len + " bytes runs past the end");
        }
        case '.' -> { // STOP
          if (stack.size() != 1 || !marks.isEmpty()) {
            throw bad("STOP with " + stack.size() + " values and " + marks.size() + " marks on the stack (corrupt pickle)");
          }
          Object v = stack.get(0);
          if (v == MARK) throw bad("STOP on a mark");
          return v;
        }
        case '(' -> { // MARK
          marks.add(stack.size());
          stack.add(MARK);
        }
        case '0' -> pop(); // POP
        case '1' -> popMark(); // POP_MARK
        case '2' -> push(peek()); // DUP
        case 'N' -> push(null);
        case 0x88 -> push(Boolean.TRUE);
        case 0x89 -> push(Boolean.FALSE);
        case 'J' -> push((long) in.getInt(need(4)));
        case 'K' -> push((long) u8());
        case 'M' -> push((long) (in.getShort(need(2)) & 0xffff));
        case 0x8a -> push(longN(u8()));
        case 0x8b -> {
          int n = in.getInt(need(4));
          if (n < 0) throw bad("negative LONG4 length");
          push(longN(n));
        }
        case 'I' -> push(parseIntLine(line()));
        case 'G' -> push(Double.longBitsToDouble(Long.reverseBytes(in.getLong(need(8))))); // big-endian
        case 'X' -> push(utf8(len32()));
        case 0x8c -> push(utf8(u8()));
        case 0x8d -> push(utf8(len64()));
        case 'U' -> push(latin1(u8())); // SHORT_BINSTRING (Python 2 str)
        case 'T' -> push(latin1(len32())); // BINSTRING
        case 'B' -> push(bytes(len32()));
        case 'C' -> push(bytes(u8()));
        case 0x8e, 0x96 -> push(bytes(len64())); // BINBYTES8, BYTEARRAY8
        case '}' -> push(new LinkedHashMap<>());
        case ']' -> push(new ArrayList<>());
        case ')' -> push(new Tuple(List.of()));
        case 0x8f -> push(new ArrayList<>()); // EMPTY_SET: kept as a list (no hashing of values)
        case 't' -> push(new Tuple(popMark()));
        case 0x85 -> push(new Tuple(java.util.Collections.singletonList(pop())));
        case 0x86 -> {
          Object b = pop();
          Object a = pop();
          push(new Tuple(Arrays.asList(a, b)));
        }
        case 0x87 -> {
          Object c = pop();
          Object b = pop();
          Object a = pop();
          push(new Tuple(Arrays.asList(a, b, c)));
        }
        case 0x91 -> push(new ArrayList<>(popMark())); // FROZENSET
        case 'l' -> push(new ArrayList<>(popMark())); // LIST
        case 'd' -> { // DICT
          List<Object> items = popMark();
          Map<Object, Object> m = new LinkedHashMap<>();
          setItems(m, items);
          push(m);
        }
        case 'a' -> { // APPEND
          Object v = pop();
          list(peek(), "APPEND").add(v);
        }
        case 'e', 0x90 -> { // APPENDS, ADDITEMS
          List<Object> items = popMark();
          list(peek(), op == 'e' ? "APPENDS" : "ADDITEMS").addAll(items);
        }
        case 's' -> { // SETITEM
          Object v = pop();
          Object k = pop();
          setItems(dict(peek(), "SETITEM"), Arrays.asList(k, v));
        }
        case 'u' -> { // SETITEMS
          List<Object> items = popMark();
          setItems(dict(peek(), "SETITEMS"), items);
        }
        case 'q' -> memo.put((long) u8(), peek());
        case 'r' -> memo.put(in.getInt(need(4)) & 0xffffffffL, peek());
        case 'p' -> memo.put(parseIndex(line()), peek());
        case 0x94 -> memo.put((long) memo.size(), peek()); // MEMOIZE
        case 'h' -> push(memoGet(u8()));
        case 'j' -> push(memoGet(in.getInt(need(4)) & 0xffffffffL));
        case 'g' -> push(memoGet(parseIndex(line())));
        case 'c' -> { // GLOBAL "module\nname\n"
          String module = line();
          String name = line();
          push(allow(module, name, source, entry));
        }
        case 0x93 -> { // STACK_GLOBAL
          Object name = pop();
          Object module = pop();
          if (!(module instanceof String m) || !(name instanceof String n)) throw bad("STACK_GLOBAL needs two strings");
          push(allow(m, n, source, entry));
        }
        case 'R' -> { // REDUCE
          Object args = pop();
          Object fn = pop();
          push(reduce(fn, args));
        }
        case 0x81 -> { // NEWOBJ
          Object args = pop();
          Object cls = pop();
          push(newObject(cls, args));
        }
        case 0x92 -> { // NEWOBJ_EX
          Object kwargs = pop();
          Object args = pop();
          Object cls = pop();
          if (!(kwargs instanceof Map<?, ?> kw) || !kw.isEmpty()) throw bad("NEWOBJ_EX with keyword arguments is not supported");
          push(newObject(cls, args));
        }
        case 'b' -> { // BUILD
          Object state = pop();
          build(peek(), state);
        }
        case 'Q' -> { // BINPERSID
          Object pid = pop();
          push(loader.load(pid));
        }
        default ->
            throw new CheckpointException(
                source,
                entry,
                String.format(Locale.ROOT, "unsupported pickle opcode 0x%02x%s at offset %d", op, printable(op), pos));
      }
    }
  }

  private static String printable(int op) {
    return op >= 0x20 && op < 0x7f ? " ('" + (char) op + "')" : "";
  }

  // ---- reading primitives (every length is checked before use) ----

  private int need(int n) throws CheckpointException {
    if (in.remaining() < n) throw bad("pickle truncated: needs " + n + " more bytes, " + in.remaining() + " left");
    int p = in.position();
    in.position(p + n);
    return p;
  }

  private int u8() throws CheckpointException {
    return in.get(need(1)) & 0xff;
  }

  private long len32() throws CheckpointException {
    return in.getInt(need(4)) & 0xffffffffL;
  }

  private long len64() throws CheckpointException {
    long n = in.getLong(need(8));
    if (n < 0) throw bad("negative length");
    return n;
  }

  private byte[] bytes(long n) throws CheckpointException {
    if (n > in.remaining()) throw bad("string of " + n + " bytes runs past the end of the pickle (" + in.remaining() + " left)");
    byte[] b = new byte[(int) n];
    in.get(need((int) n), b);
    return b;
  }

  private String utf8(long n) throws CheckpointException {
    byte[] b = bytes(n);
    try {
      return StandardCharsets.UTF_8
          .newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT)
          .decode(ByteBuffer.wrap(b))
          .toString();
    } catch (CharacterCodingException e) {
      throw bad("string is not valid UTF-8");
    }
  }

  private String latin1(long n) throws CheckpointException {
    return new String(bytes(n), StandardCharsets.ISO_8859_1);
  }

  /** A newline-terminated ASCII argument (GLOBAL, and the text forms of INT/PUT/GET). */
  private String line() throws CheckpointException {
    int start = in.position();
    int limit = Math.min(in.limit(), start + 4096);
    for (int i = start; i < limit; i++) {
      if (in.get(i) == '\n') {
        byte[] b = new byte[i - start];
        in.get(start, b);
        in.position(i + 1);
        for (byte c : b) {
          if (c < 0x20 || c > 0x7e) throw bad("non-ASCII byte in a text argument");
        }
        return new String(b, StandardCharsets.US_ASCII);
      }
    }
    throw bad("text argument without a newline (truncated or corrupt pickle)");
  }

  private Object longN(int n) throws CheckpointException {
    byte[] b = bytes(n);
    if (n == 0) return 0L;
    byte[] be = new byte[n];
    for (int i = 0; i < n; i++) be[i] = b[n - 1 - i];
    BigInteger v = new BigInteger(be);
    return v.bitLength() < 64 ? (Object) v.longValue() : v;
  }

  private Object parseIntLine(String s) throws CheckpointException {
    if (s.equals("00")) return Boolean.FALSE;
    if (s.equals("01")) return Boolean.TRUE;
    try {
      return Long.parseLong(s);
    } catch (NumberFormatException e) {
      throw bad("bad INT argument '" + s + "'");
    }
  }

  private long parseIndex(String s) throws CheckpointException {
    try {
      long v = Long.parseLong(s);
      if (v < 0) throw bad("negative memo index");
      return v;
    } catch (NumberFormatException e) {
      throw bad("bad memo index '" + s + "'");
    }
  }

  // ---- stack ----

  private void push(Object v) {
    stack.add(v);
  }

  private Object pop() throws CheckpointException {
    if (stack.isEmpty()) throw bad("stack underflow (corrupt pickle)");
    Object v = stack.remove(stack.size() - 1);
    if (v == MARK) throw bad("unexpected mark on the stack (corrupt pickle)");
    return v;
  }

  private Object peek() throws CheckpointException {
    if (stack.isEmpty()) throw bad("stack underflow (corrupt pickle)");
    Object v = stack.get(stack.size() - 1);
    if (v == MARK) throw bad("unexpected mark on the stack (corrupt pickle)");
    return v;
  }

  private List<Object> popMark() throws CheckpointException {
    if (marks.isEmpty()) throw bad("no mark on the stack (corrupt pickle)");
    int m = marks.remove(marks.size() - 1);
    List<Object> items = new ArrayList<>(stack.subList(m + 1, stack.size()));
    stack.subList(m, stack.size()).clear();
    return items;
  }

  private Object memoGet(long i) throws CheckpointException {
    if (!memo.containsKey(i)) throw bad("memo index " + i + " was never stored (corrupt pickle)");
    return memo.get(i);
  }

  @SuppressWarnings("unchecked")
  private List<Object> list(Object o, String op) throws CheckpointException {
    if (o instanceof List<?> l && !(o instanceof Tuple)) return (List<Object>) l;
    throw bad(op + " on a " + typeName(o) + ", not a list");
  }

  @SuppressWarnings("unchecked")
  private Map<Object, Object> dict(Object o, String op) throws CheckpointException {
    if (o instanceof Map<?, ?> m) return (Map<Object, Object>) m;
    throw bad(op + " on a " + typeName(o) + ", not a dict");
  }

  private void setItems(Map<Object, Object> m, List<Object> kv) throws CheckpointException {
    if (kv.size() % 2 != 0) throw bad("odd number of items for a dict");
    for (int i = 0; i < kv.size(); i += 2) {
      Object k = kv.get(i);
      // Only scalar keys: hashing lists or tuples that may (through the memo) contain themselves
      // would recurse without end.
      if (!(k == null || k instanceof String || k instanceof Long || k instanceof BigInteger || k instanceof Boolean || k instanceof Double)) {
        throw bad("unsupported dict key of type " + typeName(k));
      }
      m.put(k, kv.get(i + 1));
    }
  }

  static String typeName(Object o) {
    if (o == null) return "None";
    if (o instanceof Global g) return "global " + g.qualifiedName();
    if (o instanceof TorchObject t) return t.className();
    if (o instanceof Tuple) return "tuple";
    if (o instanceof List<?>) return "list";
    if (o instanceof Map<?, ?>) return "dict";
    if (o instanceof TensorRef) return "tensor";
    if (o instanceof StorageRef) return "storage";
    if (o instanceof String) return "str";
    if (o instanceof Long || o instanceof BigInteger) return "int";
    if (o instanceof Double) return "float";
    if (o instanceof Boolean) return "bool";
    if (o instanceof byte[]) return "bytes";
    return o.getClass().getSimpleName();
  }

  // ---- calls: only the allowlisted globals, each interpreted here ----

  private Object reduce(Object fn, Object argsObj) throws CheckpointException {
    if (!(fn instanceof Global g)) throw bad("REDUCE on a " + typeName(fn) + ", which is not callable");
    if (!(argsObj instanceof Tuple args)) throw bad("REDUCE arguments for " + g.qualifiedName() + " are a " + typeName(argsObj) + ", not a tuple");
    switch (g.kind()) {
      case ORDERED_DICT -> {
        Map<Object, Object> m = new LinkedHashMap<>();
        if (args.size() == 1 && args.get(0) instanceof List<?> pairs) {
          for (Object p : pairs) {
            if (!(p instanceof Tuple t) || t.size() != 2) throw bad("OrderedDict items must be (key, value) pairs");
            setItems(m, t.items());
          }
        } else if (args.size() != 0) {
          throw bad("OrderedDict called with " + args.size() + " arguments");
        }
        return m;
      }
      case REBUILD_TENSOR -> {
        // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        if (args.size() < 4) throw bad("_rebuild_tensor_v2 needs at least 4 arguments, got " + args.size());
        if (!(args.get(0) instanceof StorageRef s)) throw bad("_rebuild_tensor_v2: first argument is a " + typeName(args.get(0)) + ", not a storage");
        long offset = nonNegative(args.get(1), "storage offset");
        long[] shape = longs(args.get(2), "size");
        long[] stride = longs(args.get(3), "stride");
        if (shape.length != stride.length) {
          throw bad("_rebuild_tensor_v2: size " + Arrays.toString(shape) + " and stride " + Arrays.toString(stride) + " differ in rank");
        }
        return new TensorRef(s, offset, shape, stride);
      }
      case REBUILD_PARAMETER -> {
        // _rebuild_parameter(data, requires_grad, backward_hooks[, state]): the tensor is all we keep.
        if (args.size() < 1 || !(args.get(0) instanceof TensorRef t)) throw bad(g.name() + ": first argument is not a tensor");
        return t;
      }
      case TORCH_SIZE -> {
        if (args.size() != 1 || !(args.get(0) instanceof Tuple t)) throw bad("torch.Size needs one tuple");
        return t;
      }
      default -> throw bad("global " + g.qualifiedName() + " cannot be called");
    }
  }

  private Object newObject(Object cls, Object args) throws CheckpointException {
    if (!(cls instanceof Global g) || g.kind() != Global.Kind.TORCHSCRIPT_CLASS) {
      throw bad("NEWOBJ on " + typeName(cls) + ": only TorchScript (__torch__) classes can be instantiated");
    }
    if (!(args instanceof Tuple t) || t.size() != 0) throw bad("NEWOBJ of " + g.qualifiedName() + " with constructor arguments is not supported");
    return new TorchObject(g.qualifiedName(), new LinkedHashMap<>());
  }

  private void build(Object target, Object state) throws CheckpointException {
    switch (target) {
      case TorchObject t -> {
        Object s = state;
        // (state, slotstate) pairs: merge both dicts.
        if (s instanceof Tuple tu && tu.size() == 2) {
          if (tu.get(0) != null) putAttributes(t, tu.get(0));
          if (tu.get(1) != null) putAttributes(t, tu.get(1));
        } else {
          putAttributes(t, s);
        }
      }
      // A state dict's OrderedDict carries its _metadata (module versions) as instance state: not needed.
      case Map<?, ?> m -> {
        if (state != null && !(state instanceof Map<?, ?>)) throw bad("BUILD of a dict with a " + typeName(state) + " state");
      }
      // Tensors/parameters may carry Python attributes (rare): ignored, as they hold no weights.
      case TensorRef r -> {}
      default -> throw bad("BUILD on a " + typeName(target) + " is not supported");
    }
  }

  private void putAttributes(TorchObject t, Object s) throws CheckpointException {
    if (!(s instanceof Map<?, ?> m)) throw bad("BUILD of " + t.className() + " with a " + typeName(s) + " state, not a dict");
    for (Map.Entry<?, ?> e : m.entrySet()) {
      if (!(e.getKey() instanceof String k)) throw bad("attribute name of " + t.className() + " is a " + typeName(e.getKey()));
      t.attributes().put(k, e.getValue());
    }
  }

  private long nonNegative(Object o, String what) throws CheckpointException {
    if (o instanceof Long l && l >= 0) return l;
    throw bad("tensor " + what + " is " + (o instanceof Long ? o : typeName(o)) + ", not a non-negative int");
  }

  private long[] longs(Object o, String what) throws CheckpointException {
    if (!(o instanceof Tuple t)) throw bad("tensor " + what + " is a " + typeName(o) + ", not a tuple");
    long[] r = new long[t.size()];
    for (int i = 0; i < r.length; i++) r[i] = nonNegative(t.get(i), what);
    return r;
  }
}
