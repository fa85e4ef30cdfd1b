package dev.jclip.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jclip.api.Clip;
import dev.jclip.image.DecodedImage;
import dev.jclip.image.ImageDecoder;
import dev.jclip.io.Downloader;
import dev.jclip.io.SafetensorsReader;
import dev.jclip.io.SafetensorsWriter;
import dev.jclip.io.Tensor;
import dev.jclip.pipeline.InputItem;
import dev.jclip.pipeline.InputSource;
import dev.jclip.pipeline.InputSources;
import dev.jclip.tokenizer.Prompts;
import dev.jclip.zeroshot.ZeroShotClassifier;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code jclip zeroshot}: the paper's zero-shot classifier with prompt ensembling over a folder,
 * list, CSV/JSONL/Parquet table or webdataset shards; predictions with probabilities as CSV or JSONL (by
 * the output's extension); top-1/top-5 accuracy when the input has a label column. Class
 * embeddings are computed once per (model, classes, templates) and cached in the user cache.
 */
@Command(name = "zeroshot", mixinStandardHelpOptions = true,
    description = "Zero-shot classification with prompt ensembling; predictions as CSV or JSONL, accuracy when labels are given.")
public final class ZeroShotCommand implements Callable<Integer> {
  @Mixin ModelOptions model;

  @Option(names = "--classes", required = true, paramLabel = "FILE", description = "Class names: a JSON list, or plain text with one a line.")
  Path classesFile;

  @Option(names = "--templates", required = true, paramLabel = "FILE", description = "Prompt templates with {} for the class name: a JSON list or one a line.")
  Path templatesFile;

  @Option(names = "--input", required = true, paramLabel = "SOURCE", description = "A folder of images, a .txt of paths, a .csv/.jsonl/.parquet table, or .tar shards.")
  String input;

  @Option(names = "--output", required = true, paramLabel = "FILE", description = "Predictions: FILE.csv or FILE.jsonl.")
  Path output;

  @Option(names = "--top-k", paramLabel = "K", defaultValue = "5", description = "Classes per prediction (default: ${DEFAULT-VALUE}).")
  int topK;

  @Option(names = "--image-column", paramLabel = "NAME", description = "Table column with the image path.")
  String imageColumn;

  @Option(names = "--label-column", paramLabel = "NAME", defaultValue = "label",
      description = "Table column with the true class name, for accuracy (default: ${DEFAULT-VALUE}).")
  String labelColumn;

  @Option(names = "--batch-size", paramLabel = "N", defaultValue = "64", description = "Images per forward pass (default: ${DEFAULT-VALUE}).")
  int batchSize;

  @Mixin DecodeOptions decode;

  @Option(names = "--no-cache", description = "Recompute the class embeddings instead of reading them from the cache.")
  boolean noCache;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() {
    PrintWriter err = spec.commandLine().getErr();
    String name = output.getFileName().toString().toLowerCase(Locale.ROOT);
    boolean jsonl = name.endsWith(".jsonl") || name.endsWith(".json");
    if (!jsonl && !name.endsWith(".csv")) return fail(err, 2, "--output must end in .csv or .jsonl: " + output);
    if (topK < 1 || batchSize < 1) return fail(err, 2, "--top-k and --batch-size must be at least 1");
    try (Clip clip = model.load(batchSize)) {
      List<String> classes = Prompts.readList(classesFile), templates = Prompts.readList(templatesFile);
      ZeroShotClassifier zs = classifier(clip, classes, templates, err);
      int k = Math.min(topK, classes.size());
      long seen = 0, labelled = 0, top1 = 0, top5 = 0, bad = 0;
      ObjectMapper json = new ObjectMapper();
      ImageDecoder decoder = decode.decoder(clip.config().imageResolution());
      try (InputSource source = InputSources.open(input, imageColumn, null);
          BufferedWriter out = Files.newBufferedWriter(output, StandardCharsets.UTF_8)) {
        if (!jsonl) out.write(csvHeader(source.idColumn(), k));
        List<InputItem> batch = new ArrayList<>();
        List<Clip.Pixels> pixels = new ArrayList<>();
        for (InputItem item = source.next(); ; item = source.next()) {
          if (item != null) {
            try {
              if (item.error() != null) throw new IOException(item.error());
              DecodedImage im = item.bytes() != null
                  ? decoder.decode(item.file() != null ? item.file() : Path.of(item.id()), item.bytes())
                  : decoder.decode(item.file());
              pixels.add(clip.preprocess(im));
              batch.add(item);
            } catch (IOException | RuntimeException e) {
              bad++;
              err.println("jclip zeroshot: skipped " + item.id() + ": " + e.getMessage());
            }
          }
          if (!batch.isEmpty() && (item == null || batch.size() == batchSize)) {
            float[][] probs = zs.probs(clip.encodeImage(Clip.Pixels.concat(pixels)));
            for (int i = 0; i < batch.size(); i++) {
              InputItem it = batch.get(i);
              int[] top = ZeroShotClassifier.topK(probs[i], Math.max(k, Math.min(5, classes.size())));
              String label = it.extra().get(labelColumn);
              if (label != null) {
                labelled++;
                if (classes.get(top[0]).equals(label)) top1++;
                for (int j = 0; j < Math.min(5, top.length); j++) if (classes.get(top[j]).equals(label)) top5++;
              }
              out.write(jsonl ? jsonLine(json, source.idColumn(), it.id(), label, classes, probs[i], top, k) : csvLine(it.id(), label, classes, probs[i], top, k));
              seen++;
            }
            batch.clear();
            pixels.clear();
          }
          if (item == null) break;
        }
      }
      err.printf("jclip zeroshot: %d images classified into %d classes (%d templates), %d skipped%n", seen, classes.size(), templates.size(), bad);
      if (labelled > 0) {
        err.printf("jclip zeroshot: top-1 accuracy %.4f, top-5 accuracy %.4f (%d labelled images)%n", (double) top1 / labelled,
            (double) top5 / labelled, labelled);
      }
      err.flush();
      return 0;
    } catch (IOException | IllegalArgumentException | IllegalStateException e) {
      return fail(err, 1, e.getMessage());
    }
  }

  /** Class embeddings from the cache when the same model, classes and templates were seen before. */
  private ZeroShotClassifier classifier(Clip clip, List<String> classes, List<String> templates, PrintWriter err) throws IOException {
    Path cacheFile = null;
    Path modelFile = clip.modelPath();
    if (!noCache && modelFile != null && Files.isRegularFile(modelFile)) {
      String key = sha256(Downloader.sha256(modelFile) + "\n" + String.join("\n", classes) + "\n\n" + String.join("\n", templates));
      cacheFile = Downloader.defaults(System.err).cache().resolve("zeroshot").resolve(key + ".safetensors");
      if (Files.exists(cacheFile)) {
        try (SafetensorsReader r = SafetensorsReader.open(cacheFile)) {
          Tensor t = r.tensor("class_embeddings");
          float[] flat = t.toFloatArray();
          int e = (int) t.dim(1);
          float[][] rows = new float[(int) t.dim(0)][e];
          for (int c = 0; c < rows.length; c++) System.arraycopy(flat, c * e, rows[c], 0, e);
          err.println("jclip zeroshot: class embeddings from the cache " + cacheFile);
          return ZeroShotClassifier.of(clip, classes, rows);
        } catch (IOException | IllegalArgumentException e) {
          err.println("jclip zeroshot: ignoring a damaged cache file " + cacheFile + " (" + e.getMessage() + ")");
        }
      }
    }
    ZeroShotClassifier zs = ZeroShotClassifier.build(clip, classes, templates);
    if (cacheFile != null) {
      float[][] rows = zs.classEmbeddings();
      int e = rows[0].length;
      float[] flat = new float[rows.length * e];
      for (int c = 0; c < rows.length; c++) System.arraycopy(rows[c], 0, flat, c * e, e);
      Files.createDirectories(cacheFile.getParent());
      SafetensorsWriter.write(cacheFile, List.of(Tensor.ofFloats("class_embeddings", new long[] {rows.length, e}, flat)),
          Map.of("classes", String.valueOf(classes.size()), "templates", String.valueOf(templates.size())));
    }
    return zs;
  }

  private static String csvHeader(String idColumn, int k) {
    StringBuilder sb = new StringBuilder(idColumn).append(",label");
    for (int j = 1; j <= k; j++) sb.append(",top").append(j).append(",top").append(j).append("_prob");
    return sb.append('\n').toString();
  }

  private static String csvLine(String id, String label, List<String> classes, float[] probs, int[] top, int k) {
    StringBuilder sb = new StringBuilder(csv(id)).append(',').append(label == null ? "" : csv(label));
    for (int j = 0; j < k; j++) sb.append(',').append(csv(classes.get(top[j]))).append(',').append(probs[top[j]]);
    return sb.append('\n').toString();
  }

  private static String csv(String s) {
    return s.contains(",") || s.contains("\"") || s.contains("\n") ? "\"" + s.replace("\"", "\"\"") + "\"" : s;
  }

  private static String jsonLine(ObjectMapper json, String idColumn, String id, String label, List<String> classes, float[] probs, int[] top, int k)
      throws IOException {
    ObjectNode o = json.createObjectNode().put(idColumn, id);
    if (label != null) o.put("label", label);
    ArrayNode a = o.putArray("top");
    for (int j = 0; j < k; j++) a.addObject().put("class", classes.get(top[j])).put("prob", probs[top[j]]);
    return json.writeValueAsString(o) + "\n";
  }

  private static String sha256(String s) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  private static int fail(PrintWriter err, int code, String message) {
    err.println("jclip zeroshot: " + message);
    err.flush();
    return code;
  }
}
