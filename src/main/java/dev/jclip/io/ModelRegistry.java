package dev.jclip.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * The known checkpoints, read from {@code weights/registry.json} (packaged in the jar as {@value
 * #RESOURCE}): OpenAI's nine released models with the URLs and SHA-256 of openai/CLIP's {@code
 * clip.py}, the tokenizer vocabulary, and HuggingFace repositories (OpenAI's and LAION's open_clip
 * models).
 */
public final class ModelRegistry {
  public static final String RESOURCE = "/dev/jclip/weights/registry.json";
  private static final Pattern SHA256 = Pattern.compile("[0-9a-f]{64}");
  private static final Pattern FILE_NAME = Pattern.compile("[A-Za-z0-9._@-]+");

  /** One file of a model: where to get it, its name in the cache, and its SHA-256 (null when not pinned). */
  public record FileSpec(String name, URI url, String sha256) {}

  /**
   * A registered model.
   *
   * @param source {@code openai} (one TorchScript file) or {@code huggingface} (a folder of files)
   */
  public record Model(String name, List<String> aliases, String source, String description, List<FileSpec> files) {
    /** The folder (relative to the cache) this model's files go to: none for OpenAI's single files. */
    public String cacheSubfolder() {
      return source.equals("huggingface") ? "huggingface/" + name.replace('/', '-') : "";
    }

    public boolean matches(String query) {
      String q = query.toLowerCase(Locale.ROOT);
      if (name.toLowerCase(Locale.ROOT).equals(q)) return true;
      for (String a : aliases) if (a.toLowerCase(Locale.ROOT).equals(q)) return true;
      return false;
    }
  }

  private final List<Model> models;
  private final FileSpec tokenizer;

  private final Path source;

  private ModelRegistry(List<Model> models, FileSpec tokenizer, Path source) {
    this.models = List.copyOf(models);
    this.tokenizer = tokenizer;
    this.source = source;
  }

  /** Where this registry came from: the file given in place of the shipped one, or null for the shipped one. */
  public Path source() {
    return source;
  }

  /** " (the registry of FILE, in place of jclip's own)" for a registry read from a file, else "": for messages. */
  public String sourceSaid() {
    return source == null ? "" : " (the registry " + source + ", given by -Djclip.registry or JCLIP_REGISTRY in place of jclip's own)";
  }

  /**
   * The registry in effect: a file of the same form named by {@code -Djclip.registry} or {@code
   * $JCLIP_REGISTRY} (a mirror's URLs, for a network that cannot reach the public ones; pinned
   * SHA-256s still checked), else {@link #builtin()}.
   */
  public static ModelRegistry defaults() throws IOException {
    String file = System.getProperty("jclip.registry");
    if (file == null || file.isBlank()) file = System.getenv("JCLIP_REGISTRY");
    if (file == null || file.isBlank()) return builtin();
    Path p = Path.of(file);
    try (InputStream in = java.nio.file.Files.newInputStream(p)) {
      ModelRegistry r = parse(in, p);
      return new ModelRegistry(r.models, r.tokenizer, p);
    } catch (java.nio.file.NoSuchFileException e) {
      throw new java.nio.file.NoSuchFileException(file, null, "the model registry named by -Djclip.registry or JCLIP_REGISTRY does not exist");
    } catch (com.fasterxml.jackson.core.JacksonException e) {
      throw new CheckpointException(p, null, "not a model registry (JSON as weights/registry.json): " + e.getOriginalMessage(), e);
    }
  }

  /** The registry shipped with jclip. */
  public static ModelRegistry builtin() throws IOException {
    try (InputStream in = ModelRegistry.class.getResourceAsStream(RESOURCE)) {
      if (in == null) throw new IOException("the model registry " + RESOURCE + " is missing from the jclip jar (a broken build)");
      return parse(in, Path.of("registry.json"));
    }
  }

  /** Parses a registry file, checking every entry. */
  public static ModelRegistry parse(InputStream in, Path label) throws IOException {
    JsonNode root = new ObjectMapper().readTree(in);
    if (root == null || !root.isObject()) throw new CheckpointException(label, null, "not a model registry: expected a JSON object with \"tokenizer\" and \"models\"");
    if (!root.path("tokenizer").isObject()) throw new CheckpointException(label, "tokenizer", "missing or not an object (the vocabulary's name, url and sha256)");
    if (!root.path("models").isArray()) throw new CheckpointException(label, "models", "missing or not a list");
    List<Model> models = new ArrayList<>();
    for (JsonNode m : root.path("models")) {
      String name = text(m, "name", label);
      List<String> aliases = new ArrayList<>();
      for (JsonNode a : m.path("aliases")) aliases.add(a.asText());
      List<FileSpec> files = new ArrayList<>();
      for (JsonNode f : m.path("files")) files.add(file(f, label, name));
      if (files.isEmpty()) throw new CheckpointException(label, name, "model has no files");
      models.add(new Model(name, aliases, text(m, "source", label), m.path("description").asText(""), files));
    }
    return new ModelRegistry(models, file(root.path("tokenizer"), label, "tokenizer"), null);
  }

  private static String text(JsonNode n, String field, Path label) throws CheckpointException {
    JsonNode v = n.get(field);
    if (v == null || !v.isTextual() || v.asText().isEmpty()) throw new CheckpointException(label, field, "missing or not a string");
    return v.asText();
  }

  private static FileSpec file(JsonNode f, Path label, String model) throws CheckpointException {
    String name = text(f, "name", label);
    // Names become cache file names: no separators, no "..".
    if (!FILE_NAME.matcher(name).matches() || name.startsWith(".")) throw new CheckpointException(label, model, "file name '" + name + "' is not a plain file name");
    URI url = URI.create(text(f, "url", label));
    if (!"https".equals(url.getScheme()) && !"http".equals(url.getScheme())) throw new CheckpointException(label, model, "url " + url + " is not http(s)");
    JsonNode s = f.get("sha256");
    String sha = s == null || s.isNull() ? null : s.asText().toLowerCase(Locale.ROOT);
    if (sha != null && !SHA256.matcher(sha).matches()) throw new CheckpointException(label, model, "sha256 '" + sha + "' is not 64 hex digits");
    return new FileSpec(name, url, sha);
  }

  public List<Model> models() {
    return models;
  }

  /** The BPE vocabulary file. */
  public FileSpec tokenizer() {
    return tokenizer;
  }

  /** The model called {@code name} (or one of its aliases, case-insensitive). */
  public Optional<Model> find(String name) {
    return models.stream().filter(m -> m.matches(name)).findFirst();
  }
}
