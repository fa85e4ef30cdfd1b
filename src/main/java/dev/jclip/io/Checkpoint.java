package dev.jclip.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A CLIP checkpoint in any supported layout, opened, checked and renamed to OpenAI's state-dict
 * keys (see {@link CanonicalNames}).
 *
 * <pre>{@code
 * try (Checkpoint ck = Checkpoint.open(Path.of("ViT-B-32.pt"))) {
 *   Tensor proj = ck.tensor("visual.proj");          // [W, E], a view of the mapped file
 *   ClipConfig cfg = ClipConfig.infer(ck);           // dev.jclip.model
 * }
 * }</pre>
 *
 * <p>What {@link #open} accepts: a PyTorch zip ({@code torch.save}: {@code .pt}, {@code .pth},
 * {@code .bin}, possibly wrapping the state dict in {@code {"state_dict": ...}} with {@code
 * module.} prefixes), a TorchScript archive (OpenAI's released files), a {@code .safetensors}
 * file, a HuggingFace folder ({@code config.json} with {@code model.safetensors}, a sharded
 * {@code model.safetensors.index.json}, or {@code pytorch_model.bin}), or an open_clip folder
 * ({@code open_clip_config.json} with {@code open_clip_model.safetensors} or {@code
 * open_clip_pytorch_model.bin}). The format is told from the
 * content, not the file name. Loading never executes code from the file.
 *
 * <p>Tensors are views of memory-mapped files (except those converted from the HuggingFace layout
 * and non-contiguous ones, which are copies). They stay valid after {@link #close()}, which
 * releases file handles; a mapping is released by the garbage collector once no tensor refers to
 * it (see {@link MappedFile}).
 */
public final class Checkpoint implements AutoCloseable {
  /** The container format. */
  public enum Format {
    TORCH_SAVE("PyTorch zip (torch.save)"),
    TORCHSCRIPT("TorchScript archive"),
    SAFETENSORS("safetensors"),
    HUGGINGFACE("HuggingFace folder"),
    OPEN_CLIP("open_clip folder");

    private final String description;

    Format(String description) {
      this.description = description;
    }

    public String description() {
      return description;
    }
  }

  private final Path path;
  private final Format format;
  private final String detail;
  private final CanonicalNames.Naming naming;
  private final List<Path> files;
  private final Map<String, Tensor> tensors;
  private final Map<String, Tensor> extras;
  private final ConfigHints hints;
  private final List<AutoCloseable> resources;
  private final Guard guard;

  private Checkpoint(Path path, Format format, String detail, CanonicalNames.Result names, List<Path> files, ConfigHints hints, List<AutoCloseable> resources,
      List<ZipArchive.Verified> verified) {
    this.path = path;
    this.format = format;
    this.detail = detail;
    this.naming = names.naming();
    this.files = List.copyOf(files);
    this.tensors = Collections.unmodifiableMap(new LinkedHashMap<>(names.tensors()));
    this.extras = Collections.unmodifiableMap(new LinkedHashMap<>(names.extras()));
    this.hints = hints;
    this.resources = List.copyOf(resources);
    this.guard = new Guard(path, this.files, this.tensors, verified);
  }

  /**
   * What the files looked like when this checkpoint was opened, and a checksum of every byte a
   * tensor may still read from them, for {@link #checkUnchanged}: the CRC-32 of each zip entry
   * read as a view of the mapped file (checked against the zip directory's when it was first
   * read, so taking it costs nothing more), and a CRC-32C of each other tensor that is a view of a
   * mapped file (safetensors; zip entries with {@code -Djclip.zip.crc=off}), one pass over those
   * bytes at opening. Tensors on the Java heap (inflated entries, strided views, renamed or joined
   * copies) are copies made at opening, which no change of a file reaches.
   */
  private static final class Guard {
    private final Path path;
    private final List<Path> files;
    private final FileState[] states;
    /** Zip entries: the name used in a message (the first tensor in it, else the entry), the view and its CRC-32. */
    private final List<Region> entries = new ArrayList<>();
    /** Other mapped tensors and their CRC-32C at opening. */
    private final Map<String, Tensor> tensors = new LinkedHashMap<>();
    private final Map<String, Long> crcs = new LinkedHashMap<>();

    private record Region(String name, ByteBuffer view, long crc, long start, long end) {}

    Guard(Path path, List<Path> files, Map<String, Tensor> all, List<ZipArchive.Verified> verified) {
      this.path = path;
      this.files = files;
      this.states = new FileState[files.size()];
      for (int i = 0; i < states.length; i++) states[i] = FileState.of(files.get(i));
      List<Region> regions = new ArrayList<>();
      for (ZipArchive.Verified v : verified) {
        long start = java.lang.foreign.MemorySegment.ofBuffer(v.view()).address();
        regions.add(new Region(v.name(), v.view(), v.crc(), start, start + v.view().remaining()));
      }
      regions.sort(java.util.Comparator.comparingLong(Region::start));
      String[] firstTensor = new String[regions.size()];
      for (Map.Entry<String, Tensor> e : all.entrySet()) {
        ByteBuffer b = e.getValue().data();
        if (!b.isDirect()) continue; // a copy on the heap
        long a = java.lang.foreign.MemorySegment.ofBuffer(b).address(), z = a + b.remaining();
        int i = containing(regions, a, z);
        if (i >= 0) {
          if (firstTensor[i] == null) firstTensor[i] = e.getKey();
        } else {
          tensors.put(e.getKey(), e.getValue());
          crcs.put(e.getKey(), crc32c(e.getValue().data()));
        }
      }
      for (int i = 0; i < regions.size(); i++) {
        Region r = regions.get(i);
        if (firstTensor[i] != null) entries.add(new Region(firstTensor[i], r.view(), r.crc(), r.start(), r.end()));
      }
    }

    /** The region (sorted by start, not overlapping) holding [a, z), or -1. */
    private static int containing(List<Region> regions, long a, long z) {
      int lo = 0, hi = regions.size() - 1, found = -1;
      while (lo <= hi) { // the last region starting at or before a
        int mid = (lo + hi) >>> 1;
        if (regions.get(mid).start() <= a) {
          found = mid;
          lo = mid + 1;
        } else {
          hi = mid - 1;
        }
      }
      return found >= 0 && z <= regions.get(found).end() ? found : -1;
    }

    private static long crc32c(ByteBuffer b) {
      java.util.zip.CRC32C c = new java.util.zip.CRC32C();
      c.update(b.duplicate());
      return c.getValue();
    }

    private static long crc32(ByteBuffer b) {
      java.util.zip.CRC32 c = new java.util.zip.CRC32();
      c.update(b.duplicate());
      return c.getValue();
    }

    synchronized void check() throws CheckpointException {
      FileState[] now = new FileState[states.length];
      boolean changed = false;
      for (int i = 0; i < states.length; i++) {
        if (states[i] == null) continue; // not a file that could be asked (a byte array in the tests)
        now[i] = FileState.of(files.get(i));
        if (!states[i].equals(now[i])) changed = true;
      }
      if (!changed) return;
      List<String> which = new ArrayList<>();
      for (int i = 0; i < states.length; i++) {
        if (states[i] != null && !states[i].equals(now[i])) which.add(files.get(i).getFileName() + (now[i] == null ? " (gone from its path)" : ""));
      }
      String where = files.size() > 1 || !files.get(0).equals(path) ? " (changed: " + String.join(", ", which) + ")" : "";
      String again = "load the model again (to update a model file in use, write the new file beside it and rename it over the old"
          + " one, which leaves the loaded one intact)";
      for (int i = 0; i < states.length; i++) {
        FileState was = states[i], is = now[i];
        if (was != null && is != null && was.key() != null && was.key().equals(is.key()) && is.size() < was.size()) {
          throw new CheckpointException(files.get(i), null,
              "was cut short on disk after it was loaded (" + was.size() + " bytes then, " + is.size() + " now), so its weights can no longer be read; " + again);
        }
      }
      // Written in place, or only touched (a new time, owner or mode), or replaced by a rename
      // (the mapping keeps the old file): the bytes decide.
      for (Region r : entries) same(r.name(), () -> crc32(r.view()), r.crc(), where, again);
      for (Map.Entry<String, Tensor> e : tensors.entrySet()) same(e.getKey(), () -> crc32c(e.getValue().data()), crcs.get(e.getKey()), where, again);
      // the bytes are those loaded: what stat says now is the new normal; a file gone from its
      // path (the mapping keeps it) keeps its old state, to be compared again if it comes back
      for (int i = 0; i < states.length; i++) if (now[i] != null) states[i] = now[i];
    }

    private void same(String tensor, java.util.function.LongSupplier crc, long then, String where, String again) throws CheckpointException {
      long c;
      try {
        c = crc.getAsLong();
      } catch (InternalError fault) { // a page of the mapping no longer backed by the file
        throw new CheckpointException(path, tensor, "changed on disk after it was loaded (reading its bytes faulted)" + where + "; " + again, fault);
      }
      if (c != then) {
        throw new CheckpointException(path, tensor,
            "changed on disk after the model was loaded" + where + ": the bytes of this tensor are no longer those that were read then, and the"
                + " ones that were are gone; " + again);
      }
    }
  }

  /** A file's size, times and identity (inode), as stat gives them; null where it cannot be read. */
  private record FileState(long size, Object modified, Object changed, Object key) {
    static FileState of(Path p) {
      try {
        java.nio.file.attribute.BasicFileAttributes a = Files.readAttributes(p, java.nio.file.attribute.BasicFileAttributes.class);
        Object ctime = null;
        try {
          ctime = Files.getAttribute(p, "unix:ctime");
        } catch (UnsupportedOperationException | IllegalArgumentException | IOException e) {
          // not a Unix file system: size, modification time and key only
        }
        return new FileState(a.size(), a.lastModifiedTime(), ctime, a.fileKey());
      } catch (IOException | RuntimeException e) {
        return null;
      }
    }
  }

  /**
   * Refuses to go on with weights that changed on disk after this checkpoint was opened. Tensors
   * are views of the mapped files, read when a tower is first prepared, so a file written into in
   * place (a copy, a save to the same name, {@code rsync --inplace}) would otherwise give wrong
   * features without a word, or fault where it became shorter. Cheap when nothing changed (a stat
   * of each file); where a file's size, times or identity changed, every tensor's bytes are
   * checked against their CRC-32C taken at opening, so a file that was only touched, or replaced by
   * a rename (the mapping keeps the old one), passes. {@code Clip} calls it before it prepares a
   * tower.
   *
   * @throws CheckpointException naming the file (and the first tensor found changed)
   */
  public void checkUnchanged() throws CheckpointException {
    guard.check();
  }

  /** Opens a checkpoint file or HuggingFace folder. */
  public static Checkpoint open(Path path) throws IOException {
    if (Files.isDirectory(path)) return openFolder(path);
    if (!Files.exists(path)) throw new NoSuchFileException(path.toString(), null, "no such checkpoint file or folder");
    List<AutoCloseable> resources = new ArrayList<>();
    try {
      Loaded l = loadFile(path, resources);
      Checkpoint ck = new Checkpoint(path, l.format, l.detail, CanonicalNames.canonicalize(path, l.tensors), List.of(path), ConfigHints.NONE, resources, l.verified);
      resources = null;
      return ck;
    } finally {
      closeAll(resources);
    }
  }

  /**
   * Reads a checkpoint file that is already mapped (or a byte array, see {@link
   * MappedFile#ofBytes}); the caller keeps ownership of {@code file} and must keep it open while
   * the tensors are used. Only the zip formats (torch.save, TorchScript) are read this way:
   * safetensors files and folders go through {@link #open}.
   */
  public static Checkpoint read(MappedFile file) throws IOException {
    Loaded l = load(file);
    return new Checkpoint(file.path(), l.format, l.detail, CanonicalNames.canonicalize(file.path(), l.tensors), List.of(file.path()), ConfigHints.NONE, List.of(), l.verified);
  }

  /** Raw tensors of one file, under its own names. */
  private record Loaded(Format format, String detail, Map<String, Tensor> tensors, List<ZipArchive.Verified> verified) {}

  private static Loaded loadFile(Path path, List<AutoCloseable> resources) throws IOException {
    MappedFile mf = MappedFile.open(path);
    if (!isZip(mf) && looksLikeSafetensors(mf)) {
      return new Loaded(Format.SAFETENSORS, null, readSafetensors(path, resources), List.of());
    }
    return load(mf);
  }

  /**
   * safetensors: an 8-byte little-endian header length that fits the file, then JSON (a '{', or,
   * for a damaged header the reader then names, another JSON start after any white space).
   */
  private static boolean looksLikeSafetensors(MappedFile mf) {
    if (mf.size() < 9) return false;
    byte b = mf.segment().get(ValueLayout.JAVA_BYTE, 8);
    if (b == '{') return true;
    long n = mf.segment().get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN), 0);
    return n > 0 && n <= mf.size() - 8 && (b == '[' || b == '"' || b == ' ' || b == '\n' || b == '\r' || b == '\t');
  }

  private static boolean isZip(MappedFile mf) {
    return mf.size() >= 2 && mf.segment().get(ValueLayout.JAVA_BYTE, 0) == 'P' && mf.segment().get(ValueLayout.JAVA_BYTE, 1) == 'K';
  }

  private static Loaded load(MappedFile mf) throws IOException {
    Path path = mf.path();
    long size = mf.size();
    if (size < 8) throw new CheckpointException(path, null, "file of " + size + " bytes is too short to be a checkpoint");
    int b0 = mf.segment().get(ValueLayout.JAVA_BYTE, 0) & 0xff;
    int b1 = mf.segment().get(ValueLayout.JAVA_BYTE, 1) & 0xff;
    if (b0 == 'P' && b1 == 'K') {
      ZipArchive zip = ZipArchive.read(mf);
      TorchArchive a;
      try {
        a = TorchArchive.read(zip);
      } catch (StackOverflowError deep) {
        // The unpickler builds values without recursion; this guards whatever walks them.
        throw new CheckpointException(path, null, "its pickled structure is nested too deeply to read", deep);
      }
      Format f = a.format().equals(TorchArchive.TORCHSCRIPT) ? Format.TORCHSCRIPT : Format.TORCH_SAVE;
      return new Loaded(f, a.wrapper() == null ? null : "state dict under '" + a.wrapper() + "'", a.tensors(), zip.verified());
    }
    if (b0 == 0x80 && b1 <= 5) {
      throw new CheckpointException(
          path,
          null,
          "legacy (pre-1.6, non-zip) torch.save format is not supported: re-save it with torch.save(torch.load(f), f2)"
              + " from a PyTorch >= 1.6, or convert it to safetensors");
    }
    throw new CheckpointException(
        path,
        null,
        String.format(
            "unrecognized checkpoint format (starts with bytes %02x %02x): expected a PyTorch zip, a TorchScript archive or a safetensors file",
            b0,
            b1));
  }

  private static Map<String, Tensor> readSafetensors(Path path, List<AutoCloseable> resources) throws IOException {
    SafetensorsReader r = SafetensorsReader.open(path);
    resources.add(r);
    Map<String, Tensor> m = new LinkedHashMap<>();
    for (Tensor t : r.tensors()) m.put(t.name(), t);
    return m;
  }

  private static Checkpoint openFolder(Path dir) throws IOException {
    Path config = dir.resolve("config.json");
    Path openClipConfig = dir.resolve("open_clip_config.json");
    ConfigHints hints;
    List<Path> files = new ArrayList<>();
    Path indexFile = null;
    Format format;
    if (Files.isRegularFile(config)) {
      format = Format.HUGGINGFACE;
      hints = huggingFaceHints(config);
      for (String index : List.of("model.safetensors.index.json", "pytorch_model.bin.index.json")) {
        Path ix = dir.resolve(index);
        if (Files.isRegularFile(ix)) {
          files = shards(dir, ix);
          indexFile = ix;
          break;
        }
      }
      if (files.isEmpty()) files = firstExisting(dir, "model.safetensors", "pytorch_model.bin");
      if (files.isEmpty()) {
        throw new CheckpointException(dir, "model.safetensors", "missing: the folder has config.json but no model.safetensors, model.safetensors.index.json or pytorch_model.bin");
      }
    } else if (Files.isRegularFile(openClipConfig)) {
      format = Format.OPEN_CLIP;
      hints = openClipHints(openClipConfig);
      files = firstExisting(dir, "open_clip_model.safetensors", "open_clip_pytorch_model.bin");
      if (files.isEmpty()) {
        throw new CheckpointException(dir, "open_clip_model.safetensors", "missing: the folder has open_clip_config.json but no open_clip_model.safetensors or open_clip_pytorch_model.bin");
      }
    } else {
      throw new CheckpointException(
          dir,
          "config.json",
          "missing: a checkpoint folder must be a HuggingFace CLIPModel folder (config.json + model.safetensors or pytorch_model.bin)"
              + " or an open_clip folder (open_clip_config.json + open_clip_model.safetensors)");
    }
    List<AutoCloseable> resources = new ArrayList<>();
    try {
      Map<String, Tensor> raw = new LinkedHashMap<>();
      List<ZipArchive.Verified> verified = new ArrayList<>();
      Set<String> detail = new LinkedHashSet<>();
      for (Path f : files) {
        Loaded l = loadFile(f, resources);
        detail.add(l.format.description() + (l.detail == null ? "" : ", " + l.detail));
        verified.addAll(l.verified);
        for (var e : l.tensors.entrySet()) {
          if (raw.put(e.getKey(), e.getValue()) != null) throw new CheckpointException(f, e.getKey(), "tensor appears in two shards");
        }
      }
      if (indexFile != null) checkIndex(indexFile, raw.keySet());
      String d = String.join(", ", detail) + (files.size() > 1 ? ", " + files.size() + " shards" : "");
      Checkpoint ck = new Checkpoint(dir, format, d, CanonicalNames.canonicalize(dir, raw), files, hints, resources, verified);
      resources = null;
      return ck;
    } finally {
      closeAll(resources);
    }
  }

  private static List<Path> firstExisting(Path dir, String... names) {
    for (String n : names) if (Files.isRegularFile(dir.resolve(n))) return List.of(dir.resolve(n));
    return List.of();
  }

  private static JsonNode readJson(Path file) throws CheckpointException {
    try {
      if (Files.size(file) > 64L << 20) throw new CheckpointException(file, null, "JSON file over 64 MiB");
      return new ObjectMapper().readTree(file.toFile());
    } catch (CheckpointException e) {
      throw e;
    } catch (IOException e) {
      throw new CheckpointException(file, null, "unreadable JSON: " + e.getMessage(), e);
    }
  }

  private static ConfigHints huggingFaceHints(Path config) throws CheckpointException {
    JsonNode root = readJson(config);
    // transformers' CLIPConfig lets text_config_dict / vision_config_dict override text_config /
    // vision_config, field by field
    JsonNode text = merged(root.path("text_config"), root.path("text_config_dict"));
    JsonNode vision = merged(root.path("vision_config"), root.path("vision_config_dict"));
    for (String tower : List.of("text_config", "vision_config")) {
      JsonNode n = tower.equals("text_config") ? text : vision;
      JsonNode eps = n.get("layer_norm_eps");
      if (eps != null && !(eps.isNumber() && eps.doubleValue() == 1e-5)) {
        throw unsupported(config, tower + ".layer_norm_eps", eps, "LayerNorms with eps 1e-5, as the reference CLIP");
      }
    }
    // CLIPConfig's defaults (transformers' configuration_clip.py) when a field is omitted.
    String textAct = text.path("hidden_act").asText("quick_gelu");
    String visionAct = vision.path("hidden_act").asText("quick_gelu");
    if (!textAct.equals(visionAct)) {
      String t = root.path("text_config_dict").has("hidden_act") ? "text_config_dict" : "text_config";
      String v = root.path("vision_config_dict").has("hidden_act") ? "vision_config_dict" : "vision_config";
      throw new CheckpointException(config, "hidden_act", t + " uses '" + textAct + "' but " + v + " '" + visionAct + "': jclip runs one activation in both towers");
    }
    Map<String, Integer> declared = new LinkedHashMap<>();
    declare(declared, "embed_dim", root, "projection_dim");
    declare(declared, "image_resolution", vision, "image_size");
    declare(declared, "vision_patch_size", vision, "patch_size");
    declare(declared, "vision_width", vision, "hidden_size");
    declare(declared, "vision_layers", vision, "num_hidden_layers");
    declare(declared, "context_length", text, "max_position_embeddings");
    declare(declared, "vocab_size", text, "vocab_size");
    declare(declared, "transformer_width", text, "hidden_size");
    declare(declared, "transformer_layers", text, "num_hidden_layers");
    return new ConfigHints(textAct, intOrNull(vision, "num_attention_heads"), intOrNull(text, "num_attention_heads"), declared, config);
  }

  /**
   * open_clip's {@code open_clip_config.json}: {@code model_cfg} with {@code quick_gelu} (absent
   * means GELU), {@code vision_cfg} and {@code text_cfg}.
   */
  private static ConfigHints openClipHints(Path config) throws CheckpointException {
    JsonNode cfg = readJson(config).path("model_cfg");
    if (!cfg.isObject()) throw new CheckpointException(config, "model_cfg", "missing or not an object");
    JsonNode vision = cfg.path("vision_cfg");
    JsonNode text = cfg.path("text_cfg");
    refuseOpenClipVariants(config, cfg, vision, text);
    String act = cfg.path("quick_gelu").asBoolean(false) ? "quick_gelu" : "gelu";
    Integer visionHeads = null;
    Integer width = intOrNull(vision, "width");
    if (width != null && vision.path("layers").isInt()) {
      int headWidth = vision.path("head_width").asInt(64); // open_clip's VisionCfg default
      if (headWidth > 0) visionHeads = width / headWidth;
    }
    Map<String, Integer> declared = new LinkedHashMap<>();
    declare(declared, "embed_dim", cfg, "embed_dim");
    declare(declared, "image_resolution", vision, "image_size");
    declare(declared, "vision_patch_size", vision, "patch_size");
    declare(declared, "vision_width", vision, "width");
    if (vision.path("layers").isInt()) declare(declared, "vision_layers", vision, "layers");
    declare(declared, "context_length", text, "context_length");
    declare(declared, "vocab_size", text, "vocab_size");
    declare(declared, "transformer_width", text, "width");
    declare(declared, "transformer_layers", text, "layers");
    return new ConfigHints(act, visionHeads, intOrNull(text, "heads"), declared, config);
  }

  /** {@code base} with the fields of {@code override} put over it (an object, else {@code base} as it is). */
  private static JsonNode merged(JsonNode base, JsonNode override) {
    if (!override.isObject()) return base;
    com.fasterxml.jackson.databind.node.ObjectNode m = base.isObject()
        ? ((com.fasterxml.jackson.databind.node.ObjectNode) base).deepCopy()
        : com.fasterxml.jackson.databind.node.JsonNodeFactory.instance.objectNode();
    m.setAll((com.fasterxml.jackson.databind.node.ObjectNode) override);
    return m;
  }

  private static CheckpointException unsupported(Path config, String field, JsonNode value, String what) {
    return new CheckpointException(config, field, "is " + value + ", which jclip does not run: it runs " + what
        + " (the weights alone would not show the difference, so the model is refused rather than run another way)");
  }

  /**
   * The open_clip settings that change what a model computes without changing its weights' names,
   * which jclip would otherwise run as the reference CLIP without a word: each is refused by name
   * unless it has the value (or absence) that means the reference's computation.
   */
  private static void refuseOpenClipVariants(Path config, JsonNode cfg, JsonNode vision, JsonNode text) throws CheckpointException {
    record Rule(JsonNode node, String prefix, String field, java.util.function.Predicate<JsonNode> ok, String what) {}
    java.util.function.Predicate<JsonNode> falseOrAbsent = v -> v.isNull() || (v.isBoolean() && !v.booleanValue());
    java.util.function.Predicate<JsonNode> nullOrAbsent = JsonNode::isNull;
    java.util.function.Predicate<JsonNode> emptyOrAbsent = v -> v.isNull() || (v.isObject() && v.isEmpty());
    java.util.function.Predicate<JsonNode> defaultEps = v -> v.isNull() || (v.isObject() && (!v.has("eps") || v.get("eps").isNumber()
        && v.get("eps").doubleValue() == 1e-5) && v.size() == (v.has("eps") ? 1 : 0));
    String ln = "LayerNorms with eps 1e-5, as the reference CLIP";
    List<Rule> rules = List.of(
        new Rule(text, "text_cfg.", "no_causal_mask", falseOrAbsent, "the reference's causal text mask"),
        new Rule(text, "text_cfg.", "pool_type", v -> v.isNull() || v.asText().equals("argmax"), "the text pooled at the end-of-text token (pool_type argmax)"),
        new Rule(text, "text_cfg.", "embed_cls", falseOrAbsent, "the reference text tower, without a class token"),
        new Rule(text, "text_cfg.", "hf_model_name", nullOrAbsent, "the reference text tower, not a HuggingFace one"),
        new Rule(text, "text_cfg.", "norm_kwargs", defaultEps, ln),
        new Rule(text, "text_cfg.", "act_kwargs", emptyOrAbsent, "the activation without arguments"),
        new Rule(text, "text_cfg.", "hf_tokenizer_name", nullOrAbsent, "the reference's BPE tokenizer"),
        new Rule(text, "text_cfg.", "tokenizer_kwargs", emptyOrAbsent, "the reference's BPE tokenizer and its text cleaning"),
        new Rule(vision, "vision_cfg.", "no_ln_pre", falseOrAbsent, "the reference image tower, with ln_pre"),
        new Rule(cfg, "model_cfg.", "init_logit_bias", nullOrAbsent, "logits without a bias (SigLIP's)"),
        new Rule(vision, "vision_cfg.", "pool_type", v -> v.isNull() || v.asText().equals("tok"), "the image pooled at the class token (pool_type tok)"),
        new Rule(vision, "vision_cfg.", "global_average_pool", falseOrAbsent, "the image pooled at the class token"),
        new Rule(vision, "vision_cfg.", "attentional_pool", falseOrAbsent, "the image pooled at the class token"),
        new Rule(vision, "vision_cfg.", "input_patchnorm", falseOrAbsent, "the reference patch embedding"),
        new Rule(vision, "vision_cfg.", "timm_model_name", nullOrAbsent, "the reference image towers, not a timm one"),
        new Rule(vision, "vision_cfg.", "norm_kwargs", defaultEps, ln),
        new Rule(vision, "vision_cfg.", "act_kwargs", emptyOrAbsent, "the activation without arguments"),
        new Rule(cfg, "model_cfg.", "norm_kwargs", defaultEps, ln));
    for (Rule r : rules) {
      JsonNode v = r.node().path(r.field());
      if (v.isMissingNode()) continue;
      if (!r.ok().test(v)) throw unsupported(config, r.prefix() + r.field(), v, r.what());
    }
  }

  private static void declare(Map<String, Integer> m, String arg, JsonNode n, String field) {
    Integer v = intOrNull(n, field);
    if (v != null) m.put(arg, v);
  }

  private static Integer intOrNull(JsonNode n, String field) {
    JsonNode v = n.get(field);
    return v != null && v.canConvertToInt() ? v.intValue() : null;
  }

  /** Every tensor the index lists must have been found in the shards. */
  private static void checkIndex(Path index, Set<String> found) throws CheckpointException {
    JsonNode map = readJson(index).get("weight_map");
    for (var it = map.fieldNames(); it.hasNext(); ) {
      String name = it.next();
      if (!found.contains(name)) {
        throw new CheckpointException(index, name, "listed in the index (shard " + map.get(name).asText() + ") but missing from the shards");
      }
    }
  }

  private static List<Path> shards(Path dir, Path index) throws CheckpointException {
    JsonNode map = readJson(index).get("weight_map");
    if (map == null || !map.isObject()) throw new CheckpointException(index, "weight_map", "missing or not an object");
    Set<String> names = new LinkedHashSet<>();
    for (JsonNode v : map) {
      String s = v.asText();
      // Shards must be files of this folder: no paths that could reach elsewhere.
      if (!v.isTextual() || s.isEmpty() || s.contains("/") || s.contains("\\") || s.equals("..") || s.equals(".")) {
        throw new CheckpointException(index, s, "shard name is not a plain file name");
      }
      names.add(s);
    }
    List<Path> files = new ArrayList<>();
    for (String s : names) {
      Path f = dir.resolve(s);
      if (!Files.isRegularFile(f)) throw new CheckpointException(index, s, "shard file missing from " + dir);
      files.add(f);
    }
    return files;
  }

  private static void closeAll(List<AutoCloseable> resources) {
    if (resources == null) return;
    for (AutoCloseable r : resources) {
      try {
        r.close();
      } catch (Exception ignored) {
        // Closing after a failed open: the original error is the one to report.
      }
    }
  }

  /** The file or folder opened. */
  public Path path() {
    return path;
  }

  public Format format() {
    return format;
  }

  /** A human-readable description of the format, e.g. "PyTorch zip (torch.save), state dict under 'state_dict'". */
  public String formatDescription() {
    return format.description() + (detail == null ? "" : " (" + detail + ")");
  }

  /** The naming the file used before renaming. */
  public CanonicalNames.Naming naming() {
    return naming;
  }

  /** The weight files read (one, or the shards of a folder). */
  public List<Path> files() {
    return files;
  }

  /** Canonical (OpenAI state-dict) name → tensor, in file order. */
  public Map<String, Tensor> tensors() {
    return tensors;
  }

  /** Tensors that are not weights (TorchScript scalars, position_ids, attention masks). */
  public Map<String, Tensor> extras() {
    return extras;
  }

  /** What side files (config.json) say; {@link ConfigHints#NONE} when there are none. */
  public ConfigHints hints() {
    return hints;
  }

  /** The tensor of that canonical name, or an error naming it. */
  public Tensor tensor(String name) throws CheckpointException {
    Tensor t = tensors.get(name);
    if (t == null) throw new CheckpointException(path, name, "missing from the checkpoint");
    return t;
  }

  /** Number of weight elements. */
  public long parameterCount() {
    long n = 0;
    for (Tensor t : tensors.values()) n += t.numel();
    return n;
  }

  /** Releases file handles; the tensors stay usable (their mappings live as long as they do). */
  @Override
  public void close() {
    closeAll(resources);
  }
}
