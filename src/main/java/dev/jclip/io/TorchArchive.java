package dev.jclip.io;

import dev.jclip.io.Unpickler.StorageRef;
import dev.jclip.io.Unpickler.TensorRef;
import dev.jclip.io.Unpickler.TorchObject;
import dev.jclip.io.Unpickler.Tuple;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The tensors of a PyTorch zip checkpoint ({@code torch.save}, PyTorch ≥ 1.6) or of a TorchScript
 * archive ({@code torch.jit.save}, e.g. OpenAI's released {@code ViT-B-32.pt}), under the names the
 * file gives them.
 *
 * <p>Both are zips with one top folder (its name varies: {@code archive/}, {@code state_dict/},
 * ...) holding {@code data.pkl} and one entry {@code data/<key>} per storage. In a {@code
 * torch.save} file {@code data.pkl} is the saved object (a state dict, or a dict wrapping one under
 * {@code "state_dict"}/{@code "model"}); in a TorchScript archive it is the module tree, whose
 * tensors are flattened into state-dict names ({@code visual.transformer.resblocks.0.attn.in_proj_weight}).
 * TorchScript's {@code constants.pkl} (traced constants such as the causal mask) and {@code code/}
 * are not read: they hold no weights.
 *
 * <p>Tensors are views of the mapped file when their storage slice is contiguous; non-contiguous
 * views are copied into contiguous buffers.
 *
 * @param format {@code "torch.save"} or {@code "TorchScript"}
 * @param wrapper the key the state dict was found under ({@code "state_dict"}), or null at the top
 * @param tensors raw name → tensor, in file order
 */
public record TorchArchive(String format, String wrapper, Map<String, Tensor> tensors) {
  public static final String TORCH_SAVE = "torch.save";
  public static final String TORCHSCRIPT = "TorchScript";

  /** Keys under which training checkpoints wrap their state dict, in the order tried. */
  private static final List<String> WRAPPER_KEYS = List.of("state_dict", "model", "module", "model_state_dict");

  private static final int MAX_DEPTH = 64;
  private static final int MAX_MODULE_VISITS = 1_000_000;
  private static final long MAX_BUFFER = Integer.MAX_VALUE - 8;

  /** Reads the archive; {@code file} must stay open while the tensors are used. */
  public static TorchArchive read(MappedFile file) throws CheckpointException {
    return read(ZipArchive.read(file));
  }

  public static TorchArchive read(ZipArchive zip) throws CheckpointException {
    Path src = zip.file();
    String prefix = topFolder(zip);
    ZipArchive.Entry byteorder = zip.entry(prefix + "byteorder");
    if (byteorder != null) {
      String order = StandardCharsets.US_ASCII.decode(zip.bytes(byteorder)).toString().trim();
      if (!order.equals("little")) {
        throw new CheckpointException(src, prefix + "byteorder", "byte order '" + order + "' is not supported (only little-endian checkpoints)");
      }
    }
    String pkl = prefix + "data.pkl";
    Map<String, ZipArchive.Entry> storages = new HashMap<>();
    Object root =
        Unpickler.load(
            zip.bytes(zip.entry(pkl)),
            src,
            pkl,
            pid -> {
              StorageRef s = storageRef(pid, src, pkl);
              String key = prefix + "data/" + s.key();
              ZipArchive.Entry e = zip.entry(key);
              if (e == null) {
                throw new CheckpointException(src, key, "storage entry missing from the archive (data.pkl refers to it; the file is truncated or corrupt)");
              }
              storages.put(s.key(), e);
              return s;
            });
    boolean script = root instanceof TorchObject || zip.entry(prefix + "constants.pkl") != null;
    Materializer m = new Materializer(zip, prefix, storages);
    Map<String, Tensor> out = new LinkedHashMap<>();
    String wrapper = null;
    if (root instanceof TorchObject t) {
      flattenModule(t, "", out, m, Collections.newSetFromMap(new IdentityHashMap<>()), new int[1]);
    } else if (root instanceof Map<?, ?> map) {
      Map<?, ?> sd = map;
      if (!hasTensor(sd)) {
        for (String k : WRAPPER_KEYS) {
          if (sd.get(k) instanceof Map<?, ?> inner && hasTensor(inner)) {
            wrapper = k;
            sd = inner;
            break;
          }
          if (sd.get(k) instanceof TorchObject t) {
            wrapper = k;
            flattenModule(t, "", out, m, Collections.newSetFromMap(new IdentityHashMap<>()), new int[1]);
            sd = Map.of();
            break;
          }
        }
        if (wrapper == null) {
          throw new CheckpointException(src, pkl, "no tensors at the top level and no state dict under " + WRAPPER_KEYS + "; top-level keys: " + abbreviate(map.keySet()));
        }
      }
      for (Map.Entry<?, ?> e : sd.entrySet()) {
        // Non-tensor values beside the weights (epoch counters, names) are not weights: skipped.
        if (e.getValue() instanceof TensorRef r) {
          if (!(e.getKey() instanceof String name)) throw new CheckpointException(src, pkl, "tensor key " + e.getKey() + " is not a string");
          out.put(name, m.tensor(name, r));
        }
      }
    } else {
      throw new CheckpointException(src, pkl, "holds a " + Unpickler.typeName(root) + ", not a state dict or a TorchScript module");
    }
    if (out.isEmpty()) throw new CheckpointException(src, pkl, "holds no tensors");
    return new TorchArchive(script ? TORCHSCRIPT : TORCH_SAVE, wrapper, Collections.unmodifiableMap(out));
  }

  private static boolean hasTensor(Map<?, ?> m) {
    for (Object v : m.values()) if (v instanceof TensorRef) return true;
    return false;
  }

  private static String abbreviate(Set<?> keys) {
    List<String> l = keys.stream().map(String::valueOf).limit(20).toList();
    return l + (keys.size() > 20 ? " and " + (keys.size() - 20) + " more" : "");
  }

  /** The one folder holding data.pkl ({@code archive/}, {@code state_dict/}, ...), with its slash. */
  private static String topFolder(ZipArchive zip) throws CheckpointException {
    String found = null;
    for (ZipArchive.Entry e : zip.entries()) {
      String n = e.name();
      int slash = n.indexOf('/');
      if (slash > 0 && n.substring(slash + 1).equals("data.pkl")) {
        if (found != null) throw new CheckpointException(zip.file(), n, "two data.pkl records (" + found + "data.pkl and " + n + ")");
        found = n.substring(0, slash + 1);
      }
    }
    if (found == null) {
      boolean oldScript = zip.entries().stream().anyMatch(e -> e.name().endsWith("model.json"));
      throw new CheckpointException(
          zip.file(),
          "data.pkl",
          oldScript
              ? "TorchScript archive of the pre-1.4 (model.json) format: re-save it with a newer PyTorch"
              : "zip archive without a <folder>/data.pkl record: not a PyTorch checkpoint");
    }
    return found;
  }

  private static StorageRef storageRef(Object pid, Path src, String pkl) throws CheckpointException {
    // ('storage', torch.<Type>Storage, key, location, numel)
    if (!(pid instanceof Tuple t) || t.size() < 5 || !"storage".equals(t.get(0))) {
      throw new CheckpointException(src, pkl, "persistent id " + describe(pid) + " is not a ('storage', type, key, location, numel) tuple");
    }
    if (!(t.get(1) instanceof Unpickler.Global g) || g.kind() != Unpickler.Global.Kind.STORAGE_TYPE) {
      throw new CheckpointException(src, pkl, "persistent id names a " + Unpickler.typeName(t.get(1)) + ", not a storage type");
    }
    if (!(t.get(2) instanceof String key) || key.isEmpty() || key.contains("/") || key.contains("..")) {
      throw new CheckpointException(src, pkl, "storage key " + describe(t.get(2)) + " is not a plain name");
    }
    String location = t.get(3) instanceof String s ? s : Unpickler.brief(t.get(3), 80);
    if (!(t.get(4) instanceof Long numel) || numel < 0) {
      throw new CheckpointException(src, pkl + ":" + key, "storage size " + describe(t.get(4)) + " is not a non-negative int");
    }
    return new StorageRef(key, g.dtype(), numel, location);
  }

  private static String describe(Object o) {
    return Unpickler.brief(o, 80);
  }

  /**
   * Flattens a module tree into dotted names. A submodule shared by two parents appears under both
   * names (as in PyTorch's state_dict); {@code path} holds the modules being visited, to detect
   * cycles, and {@code visits} bounds the total work on pathological (deeply shared) trees.
   */
  private static void flattenModule(TorchObject obj, String prefix, Map<String, Tensor> out, Materializer m, Set<Object> path, int[] visits)
      throws CheckpointException {
    if (path.size() > MAX_DEPTH) throw new CheckpointException(m.zip.file(), prefix, "module tree deeper than " + MAX_DEPTH + " levels");
    if (++visits[0] > MAX_MODULE_VISITS) throw new CheckpointException(m.zip.file(), prefix, "module tree has more than " + MAX_MODULE_VISITS + " module references");
    if (!path.add(obj)) throw new CheckpointException(m.zip.file(), prefix, "module tree contains a cycle");
    for (Map.Entry<String, Object> e : obj.attributes().entrySet()) {
      String name = prefix + e.getKey();
      Object v = e.getValue();
      if (v instanceof TensorRef r) {
        out.put(name, m.tensor(name, r));
      } else if (v instanceof TorchObject child) {
        flattenModule(child, name + ".", out, m, path, visits);
      }
      // Other attributes (training flags, hooks, ints) carry no weights.
    }
    path.remove(obj);
  }

  /** Turns tensor descriptions into tensors over the archive's storages. */
  private static final class Materializer {
    final ZipArchive zip;
    final String prefix;
    final Map<String, ZipArchive.Entry> entries;
    final Map<String, ByteBuffer> buffers = new HashMap<>(); // one buffer per storage: shared storages stay shared

    Materializer(ZipArchive zip, String prefix, Map<String, ZipArchive.Entry> entries) {
      this.zip = zip;
      this.prefix = prefix;
      this.entries = entries;
    }

    Tensor tensor(String name, TensorRef r) throws CheckpointException {
      Path src = zip.file();
      StorageRef s = r.storage();
      String key = prefix + "data/" + s.key();
      DType dt = s.dtype();
      int el = dt.byteSize();
      ZipArchive.Entry e = entries.get(s.key());
      long[] shape = r.shape();
      long[] stride = r.stride();
      try {
        long declared = Math.multiplyExact(s.numel(), el);
        if (e.size() < declared) {
          throw new CheckpointException(src, name, "storage " + key + " has " + e.size() + " bytes, but is declared as " + s.numel() + " " + dt + " elements (" + declared + " bytes): truncated or corrupt");
        }
        long storageNumel = s.numel();
        long n = Tensor.numel(shape);
        if (Math.multiplyExact(n, el) > MAX_BUFFER) {
          throw new CheckpointException(src, name, "tensor of " + n + " " + dt + " elements is over the 2 GiB a single tensor may hold");
        }
        if (n == 0) return new Tensor(name, dt, shape, ByteBuffer.allocate(0));
        long extent = r.offset() + 1;
        for (int i = 0; i < shape.length; i++) extent = Math.addExact(extent, Math.multiplyExact(shape[i] - 1, stride[i]));
        if (extent > storageNumel) {
          throw new CheckpointException(
              src,
              name,
              "tensor "
                  + dt
                  + Arrays.toString(shape)
                  + " (offset "
                  + r.offset()
                  + ", stride "
                  + Arrays.toString(stride)
                  + ") needs "
                  + extent
                  + " elements of storage "
                  + key
                  + ", which holds "
                  + storageNumel
                  + ": storage shorter than the tensor");
        }
        ByteBuffer storage = buffers.get(s.key());
        if (storage == null) {
          storage = zip.bytes(e);
          buffers.put(s.key(), storage);
        }
        if (contiguous(shape, stride)) {
          ByteBuffer view = storage.slice((int) (r.offset() * el), (int) (n * el)).order(ByteOrder.LITTLE_ENDIAN);
          return new Tensor(name, dt, shape, view);
        }
        // A strided view (e.g. a transposed weight saved without .contiguous()): copy it into C
        // order. Views with more elements than their storage (expanded, stride 0) are refused so
        // a damaged stride cannot make us allocate far more than the file holds.
        if (n > storageNumel) {
          throw new CheckpointException(src, name, "strided view " + Arrays.toString(shape) + " stride " + Arrays.toString(stride) + " has more elements than its storage " + key + " (expanded tensors are not supported)");
        }
        return new Tensor(name, dt, shape, copyStrided(storage, r.offset(), shape, stride, el, (int) n));
      } catch (ArithmeticException ex) {
        throw new CheckpointException(src, name, "tensor size " + Arrays.toString(shape) + " / stride " + Arrays.toString(stride) + " overflows", ex);
      }
    }

    private static boolean contiguous(long[] shape, long[] stride) {
      long expect = 1;
      for (int i = shape.length - 1; i >= 0; i--) {
        if (shape[i] != 1 && stride[i] != expect) return false;
        expect *= shape[i];
      }
      return true;
    }

    private static ByteBuffer copyStrided(ByteBuffer src, long offset, long[] shape, long[] stride, int el, int n) {
      ByteBuffer out = ByteBuffer.allocate(n * el).order(ByteOrder.LITTLE_ENDIAN);
      int rank = shape.length;
      long[] idx = new long[rank];
      byte[] tmp = new byte[el];
      for (int k = 0; k < n; k++) {
        long at = offset;
        for (int d = 0; d < rank; d++) at += idx[d] * stride[d];
        src.get((int) (at * el), tmp);
        out.put(tmp);
        for (int d = rank - 1; d >= 0; d--) {
          if (++idx[d] < shape[d]) break;
          idx[d] = 0;
        }
      }
      return out.flip();
    }
  }
}
