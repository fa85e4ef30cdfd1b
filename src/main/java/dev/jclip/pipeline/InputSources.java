package dev.jclip.pipeline;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jclip.io.ParquetReader;
import java.io.BufferedInputStream;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemLoopException;
import java.nio.file.FileVisitOption;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;

/**
 * Opens the SOURCE of {@code jclip embed}. What the argument is decides the kind:
 *
 * <ul>
 *   <li>a directory: every regular, non-hidden file below it, recursively, sorted by relative
 *       path ('/'-separated, by UTF-16 code unit); a {@code .txt} file with the same stem as an image
 *       file beside it (clip-retrieval's convention, {@code cat.jpg} + {@code cat.txt}) is that
 *       image's caption, not an input. Formats are recognised by content, so a non-image file is
 *       an input that fails with its reason;
 *   <li>{@code *.csv}: a table with a header row (RFC 4180 quoting); {@code *.jsonl} / {@code
 *       *.ndjson}: one JSON object per line; {@code *.parquet}: an Apache Parquet table (its flat
 *       columns, read a row group at a time by {@link ParquetReader}; nested and repeated columns
 *       are not carried). The image column is {@code imageColumn} or else the first of {@value
 *       #DEFAULT_IMAGE_COLUMNS}; the caption column is {@code captionColumn} or else {@code
 *       caption} when present. Other columns are carried into the metadata as text (Parquet
 *       numbers in plain decimal form, booleans true/false, nulls as nulls: {@link
 *       ParquetReader#text}). Bad rows are items with an error named {@code t.csv:LINE}, {@code
 *       t.jsonl:LINE} or {@code t.parquet:row N} (N from 0, file order); a damaged Parquet row
 *       group stops the job with an IOException naming it;
 *   <li>{@code *.tar}, or a brace range such as {@code shards/{00000..00009}.tar}: webdataset
 *       shards as img2dataset writes them, members grouped by key (the member name up to the first
 *       '.' of its file name): the image member ({@code jpg jpeg png webp gif bmp tif tiff}), an optional
 *       {@code .txt} caption and an optional {@code .json} whose fields are carried;
 *   <li>any other file: a list of image paths, one per line (blank lines skipped).
 * </ul>
 *
 * Relative paths inside a list or table resolve against the folder of that file. URLs are
 * rejected per row: the job reads local files only.
 */
public final class InputSources {
  /** Image column names tried in order when none is given. */
  public static final String DEFAULT_IMAGE_COLUMNS = "image_path, filepath, file_path, path, image, file, url";

  private static final List<String> IMAGE_COLUMNS = List.of(DEFAULT_IMAGE_COLUMNS.split(", "));
  private static final Set<String> IMAGE_EXTENSIONS = Set.of("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff");
  private static final Pattern BRACE = Pattern.compile("\\{(\\d+)\\.\\.(\\d+)\\}");

  private InputSources() {}

  /**
   * @param imageColumn the table's image column, or null for the defaults
   * @param captionColumn the table's caption column, or null for "caption" when present
   */
  public static InputSource open(String source, String imageColumn, String captionColumn) throws IOException {
    String lower = source.toLowerCase(Locale.ROOT);
    if (lower.endsWith(".tar")) return new TarSource(expandBraces(source));
    Path p = Path.of(source);
    if (Files.isDirectory(p)) return new DirectorySource(p);
    if (!Files.isRegularFile(p)) throw new NoSuchFileException(source, null, "input not found (expected a folder, a list, a .csv/.jsonl/.parquet table or .tar shards)");
    if (lower.endsWith(".csv")) return new TableSource(p, false, imageColumn, captionColumn);
    if (lower.endsWith(".jsonl") || lower.endsWith(".ndjson")) return new TableSource(p, true, imageColumn, captionColumn);
    if (lower.endsWith(".parquet")) return new ParquetSource(p, imageColumn, captionColumn);
    return new ListSource(p);
  }

  /** {@code a/{000..002}.tar} → a/000.tar, a/001.tar, a/002.tar (zero padding kept). */
  static List<Path> expandBraces(String spec) {
    Matcher m = BRACE.matcher(spec);
    if (!m.find()) return List.of(Path.of(spec));
    String from = m.group(1);
    long a = Long.parseLong(from);
    long b = Long.parseLong(m.group(2));
    if (b < a || b - a > 10_000_000) throw new IllegalArgumentException(spec + ": bad shard range {" + from + ".." + m.group(2) + "}");
    List<Path> out = new ArrayList<>();
    for (long i = a; i <= b; i++) {
      String n = String.format("%0" + from.length() + "d", i);
      out.add(Path.of(spec.substring(0, m.start()) + n + spec.substring(m.end())));
    }
    return out;
  }

  static String extension(String name) {
    int slash = name.lastIndexOf('/');
    int dot = name.lastIndexOf('.');
    return dot > slash ? name.substring(dot + 1).toLowerCase(Locale.ROOT) : "";
  }

  private static String stem(String name) {
    int slash = name.lastIndexOf('/');
    int dot = name.lastIndexOf('.');
    return dot > slash ? name.substring(0, dot) : name;
  }

  private static String rejectUrl(String value) {
    String l = value.toLowerCase(Locale.ROOT);
    if (l.startsWith("http://") || l.startsWith("https://") || l.startsWith("s3://") || l.startsWith("gs://")) {
      return "'" + value + "' is a URL; jclip embed reads local files (download them first, e.g. with img2dataset)";
    }
    return null;
  }

  /**
   * A folder tree of images, walked in sorted order. Symbolic links are followed (to files and to
   * folders, as torchvision's {@code ImageFolder} does); what cannot be listed or followed is an
   * item with its reason rather than left out unseen: a broken link, a link loop, a folder that
   * cannot be read, a socket or a device.
   */
  static final class DirectorySource implements InputSource {
    private final List<String> files;
    private final Map<String, String> captionFiles;
    private final Map<String, String> problems = new HashMap<>();
    private final Path root;
    private int pos;

    DirectorySource(Path root) throws IOException {
      this.root = root;
      List<String> all = new ArrayList<>();
      Files.walkFileTree(root, EnumSet.of(FileVisitOption.FOLLOW_LINKS), Integer.MAX_VALUE, new SimpleFileVisitor<>() {
        private String rel(Path f) {
          // names joined by '/', the platform's separator aside: a '\\' is a character of a Linux file name
          StringBuilder b = new StringBuilder();
          for (Path part : root.relativize(f)) b.append(b.isEmpty() ? "" : "/").append(part);
          return b.toString();
        }

        private boolean hidden(Path f) {
          for (Path part : root.relativize(f)) if (part.toString().startsWith(".")) return true;
          return false;
        }

        @Override
        public FileVisitResult preVisitDirectory(Path d, BasicFileAttributes a) {
          return d.equals(root) || !hidden(d) ? FileVisitResult.CONTINUE : FileVisitResult.SKIP_SUBTREE;
        }

        @Override
        public FileVisitResult visitFile(Path f, BasicFileAttributes a) {
          if (hidden(f)) return FileVisitResult.CONTINUE;
          String r = rel(f);
          all.add(r);
          if (!a.isRegularFile()) problems.put(r, a.isSymbolicLink() ? brokenLink(f) : "not a regular file (a socket, pipe or device)");
          return FileVisitResult.CONTINUE;
        }

        @Override
        public FileVisitResult visitFileFailed(Path f, IOException e) throws IOException {
          if (f.equals(root)) throw e;
          if (hidden(f)) return FileVisitResult.CONTINUE;
          String r = rel(f);
          all.add(r);
          problems.put(r, e instanceof FileSystemLoopException
              ? "symbolic link loop: it leads back to a folder above it, not followed"
              : e instanceof AccessDeniedException ? "cannot be read: permission denied" : "cannot be read: " + e);
          return FileVisitResult.CONTINUE;
        }

        @Override
        public FileVisitResult postVisitDirectory(Path d, IOException e) throws IOException {
          if (e == null) return FileVisitResult.CONTINUE;
          if (d.equals(root)) throw e;
          String r = rel(d);
          all.add(r);
          problems.put(r, "folder could not be listed to the end: " + e.getMessage());
          return FileVisitResult.CONTINUE;
        }
      });
      Collections.sort(all);
      Map<String, String> imageStems = new LinkedHashMap<>();
      for (String f : all) if (IMAGE_EXTENSIONS.contains(extension(f)) && !problems.containsKey(f)) imageStems.put(stem(f), f);
      captionFiles = new LinkedHashMap<>();
      files = new ArrayList<>();
      for (String f : all) {
        // a .txt beside an image is its caption, unless it cannot be read as a file (a broken link): then an input with its reason
        String img = extension(f).equals("txt") && !problems.containsKey(f) ? imageStems.get(stem(f)) : null;
        if (img != null) captionFiles.put(img, f);
        else files.add(f);
      }
    }

    private static String brokenLink(Path link) {
      try {
        Path target = Files.readSymbolicLink(link);
        // follow the chain (the OS's error text differs by locale): a link met twice is a loop
        Set<Path> seen = new java.util.HashSet<>();
        for (Path p = link.toAbsolutePath().normalize(); Files.isSymbolicLink(p); ) {
          if (!seen.add(p) || seen.size() > 40) {
            return "symbolic link loop: " + link.getFileName() + " -> " + target + " leads back to " + (seen.size() > 1 ? "a link on its way" : "itself");
          }
          p = p.resolveSibling(Files.readSymbolicLink(p)).normalize();
        }
        return "broken symbolic link to " + target + " (no such file)";
      } catch (IOException e) {
        return "broken symbolic link";
      }
    }

    @Override
    public InputItem next() {
      if (pos >= files.size()) return null;
      long index = pos;
      String rel = files.get(pos++);
      String problem = problems.get(rel);
      if (problem != null) return InputItem.bad(index, rel, problem);
      String captionFile = captionFiles.get(rel);
      String caption = null;
      if (captionFile != null) {
        try {
          caption = Files.readString(root.resolve(captionFile), StandardCharsets.UTF_8).strip();
        } catch (java.nio.charset.CharacterCodingException e) {
          return InputItem.bad(index, rel, "caption file " + captionFile + " is not UTF-8 text");
        } catch (IOException e) {
          return InputItem.bad(index, rel, "cannot read caption file " + captionFile + ": " + e.getMessage());
        }
      }
      return new InputItem(index, rel, root.resolve(rel), null, caption, Map.of(), null);
    }

    @Override
    public long size() {
      return files.size();
    }

    @Override
    public boolean hasCaptions() {
      return !captionFiles.isEmpty();
    }

    @Override
    public String idColumn() {
      return "image_path";
    }

    @Override
    public void close() {}
  }

  /** A text file of paths. */
  static final class ListSource implements InputSource {
    private final List<String> lines = new ArrayList<>();
    private final Path base;
    private int pos;

    ListSource(Path list) throws IOException {
      base = list.toAbsolutePath().getParent();
      List<String> all;
      try {
        all = Files.readAllLines(list, StandardCharsets.UTF_8);
      } catch (java.nio.charset.CharacterCodingException e) {
        throw new java.io.IOException(list + " is not a list of images (a UTF-8 text file of paths or URLs, one a line): it is not UTF-8 text"
            + (looksLikeImage(list) ? "; it looks like an image: to embed it, give its folder or a list that names it" : ""), e);
      }
      for (String l : all) if (!l.isBlank()) lines.add(l.strip());
    }

    private static boolean looksLikeImage(Path file) {
      String name = file.getFileName().toString().toLowerCase(Locale.ROOT);
      return IMAGE_EXTENSIONS.stream().anyMatch(x -> name.endsWith("." + x));
    }

    @Override
    public InputItem next() {
      if (pos >= lines.size()) return null;
      long index = pos;
      String p = lines.get(pos++);
      String url = rejectUrl(p);
      if (url != null) return InputItem.bad(index, p, url);
      return new InputItem(index, p, base.resolve(p), null, null, Map.of(), null);
    }

    @Override
    public long size() {
      return lines.size();
    }

    @Override
    public boolean hasCaptions() {
      return false;
    }

    @Override
    public String idColumn() {
      return "image_path";
    }

    @Override
    public void close() {}
  }

  /**
   * The rules every table shares (CSV, JSON Lines, Parquet): which columns are the image and the
   * caption, and how a row becomes an item. Relative paths resolve against the table's folder.
   */
  static final class TableRows {
    private final Path base;

    TableRows(Path table) {
      this.base = table.toAbsolutePath().getParent();
    }

    /** {@code wanted}, or else the first of the default image columns present. */
    static String imageColumn(Path file, List<String> columns, String wanted) {
      if (wanted != null) {
        if (!columns.contains(wanted)) throw new IllegalArgumentException(file + ": no image column '" + wanted + "' (columns: " + columns + ")");
        return wanted;
      }
      for (String c : IMAGE_COLUMNS) if (columns.contains(c)) return c;
      throw new IllegalArgumentException(
          file + ": no image column: none of " + IMAGE_COLUMNS + " among the columns " + columns + "; name it with --image-column");
    }

    /** {@code wanted} (which must exist), or else "caption" when present, or else null. */
    static String captionColumn(Path file, List<String> columns, String wanted) {
      if (wanted != null && !columns.contains(wanted)) {
        throw new IllegalArgumentException(file + ": no caption column '" + wanted + "' (columns: " + columns + ")");
      }
      String c = wanted == null ? "caption" : wanted;
      return columns.contains(c) ? c : null;
    }

    /**
     * A row (column → text, in column order) as an item: the image path from {@code imageColumn},
     * the caption from {@code captionColumn} (may be null), every other column carried.
     *
     * @param where how an error names the row when it has no usable path ({@code t.csv:12})
     */
    InputItem item(long i, String where, Map<String, String> row, String imageColumn, String captionColumn) {
      String path = row.get(imageColumn);
      if (path == null || path.isBlank()) return InputItem.bad(i, where, "empty image path");
      String url = rejectUrl(path);
      if (url != null) return InputItem.bad(i, path, url);
      Path file;
      try {
        file = base.resolve(path);
      } catch (java.nio.file.InvalidPathException e) {
        return InputItem.bad(i, where, "not a valid path: " + e.getMessage());
      }
      String caption = captionColumn == null ? null : row.get(captionColumn);
      Map<String, String> extra = new LinkedHashMap<>(row);
      extra.remove(imageColumn);
      if (captionColumn != null) extra.remove(captionColumn);
      return new InputItem(i, path, file, null, caption, extra, null);
    }
  }

  /** A CSV or JSON Lines table. */
  static final class TableSource implements InputSource {
    private final Path file;
    private final TableRows rows;
    private final boolean jsonl;
    private final BufferedReader in;
    private final ObjectMapper json = new ObjectMapper();
    private final String imageColumn;
    private final String captionColumn;
    private final List<String> header;
    private long index;
    private long line; // 1-based line number of the last line read

    TableSource(Path file, boolean jsonl, String imageColumn, String captionColumn) throws IOException {
      this.file = file;
      this.jsonl = jsonl;
      this.rows = new TableRows(file);
      this.in =
          new BufferedReader(
              new java.io.InputStreamReader(
                  Files.newInputStream(file),
                  StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPLACE).onUnmappableCharacter(CodingErrorAction.REPLACE)),
              1 << 16);
      try {
        if (jsonl) {
          this.header = null;
          // JSON Lines has no header: the first object's fields stand for it for the image column
          // (a named one it lacks stops the job, as a CSV header's would), those of the objects in
          // the first 1000 lines for the caption column, and each row is checked again.
          List<String> fields = readAhead();
          String where = file + (fields == null ? "" : " (line " + firstObjectLine + ")");
          if (fields != null) TableRows.imageColumn(Path.of(where), fields, imageColumn);
          this.imageColumn = imageColumn;
          this.captionColumn = fields == null ? captionColumn : TableRows.captionColumn(Path.of(file + " (the first " + pending.size() + " lines)"),
              List.copyOf(aheadFields), captionColumn);
        } else {
          List<String> h = readRecord();
          if (h == null) throw new IOException(file + ": empty CSV file (a header row is needed)");
          if (!h.isEmpty() && h.get(0).startsWith("\uFEFF")) h.set(0, h.get(0).substring(1));
          this.header = h;
          this.imageColumn = TableRows.imageColumn(file, h, imageColumn);
          this.captionColumn = TableRows.captionColumn(file, h, captionColumn);
        }
      } catch (IOException | RuntimeException e) {
        in.close();
        throw e;
      }
    }

    private record Line(String text, long lineNo) {}

    /** Lines read ahead by {@link #readAhead}, returned by {@link #next} first. */
    private final java.util.ArrayDeque<Line> pending = new java.util.ArrayDeque<>();

    /** The next line (a byte-order mark at the file's start dropped), or null at the end. */
    private Line readLine() throws IOException {
      return pending.isEmpty() ? readRawLine() : pending.pollFirst();
    }

    private Line readRawLine() throws IOException {
      String l = in.readLine();
      if (l == null) return null;
      line++;
      if (line == 1 && l.startsWith("\uFEFF")) l = l.substring(1);
      return new Line(l, line);
    }

    /**
     * Reads up to 1000 lines ahead (kept to be read again): the fields of the first JSON object
     * among them (null where there is none: each row then says what is wrong with it), and in
     * {@link #aheadFields} those of every object read.
     */
    private List<String> readAhead() throws IOException {
      List<String> first = null;
      for (int i = 0; i < 1000; i++) {
        Line l = readRawLine();
        if (l == null) break;
        pending.addLast(l);
        if (l.text().isBlank()) continue;
        try {
          if (json.readTree(l.text()) instanceof ObjectNode o) {
            List<String> f = new ArrayList<>();
            o.fieldNames().forEachRemaining(f::add);
            aheadFields.addAll(f);
            if (first == null) {
              first = f;
              firstObjectLine = l.lineNo();
            }
          }
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
          // a bad row: reported when it is read
        }
      }
      return first;
    }

    private long firstObjectLine;
    private final Set<String> aheadFields = new java.util.LinkedHashSet<>();

    @Override
    public InputItem next() throws IOException {
      while (true) {
        if (jsonl) {
          Line l = readLine();
          if (l == null) return null;
          if (l.text().isBlank()) continue;
          return jsonRow(l.text(), l.lineNo());
        }
        long startLine = line + 1;
        List<String> rec;
        try {
          rec = readRecord();
        } catch (CsvException e) {
          return InputItem.bad(index++, file.getFileName() + ":" + startLine, e.getMessage());
        }
        if (rec == null) return null;
        if (rec.size() == 1 && rec.get(0).isEmpty()) continue; // blank line
        long i = index++;
        String where = file.getFileName() + ":" + startLine;
        if (rec.size() != header.size()) {
          return InputItem.bad(i, where, "line " + startLine + ": " + rec.size() + " fields, the header has " + header.size());
        }
        Map<String, String> row = new LinkedHashMap<>();
        for (int c = 0; c < header.size(); c++) row.put(header.get(c), rec.get(c));
        return rows.item(i, where, row, imageColumn, captionColumn);
      }
    }

    private InputItem jsonRow(String l, long lineNo) {
      long i = index++;
      String where = file.getFileName() + ":" + lineNo;
      JsonNode n;
      try {
        n = json.readTree(l);
      } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
        return InputItem.bad(i, where, "line " + lineNo + ": not valid JSON (" + e.getOriginalMessage() + ")");
      }
      if (!(n instanceof ObjectNode o)) return InputItem.bad(i, where, "line " + lineNo + ": not a JSON object");
      Map<String, String> row = new LinkedHashMap<>();
      for (Map.Entry<String, JsonNode> e : o.properties()) {
        JsonNode v = e.getValue();
        row.put(e.getKey(), v.isNull() ? null : v.isTextual() ? v.asText() : v.toString());
      }
      String col = imageColumn;
      if (col == null) {
        for (String c : IMAGE_COLUMNS) {
          if (row.containsKey(c)) {
            col = c;
            break;
          }
        }
        if (col == null) return InputItem.bad(i, where, "line " + lineNo + ": no image field (none of " + IMAGE_COLUMNS + ")");
      }
      if (!row.containsKey(col)) return InputItem.bad(i, where, "line " + lineNo + ": no field '" + col + "'");
      return rows.item(i, where, row, col, captionColumn);
    }

    /** One CSV record (RFC 4180: quoted fields may hold commas, doubled quotes and newlines); null at EOF. */
    private List<String> readRecord() throws IOException {
      int c = in.read();
      if (c < 0) return null;
      List<String> fields = new ArrayList<>();
      StringBuilder f = new StringBuilder();
      boolean quoted = false;
      boolean wasQuoted = false;
      long start = line + 1;
      while (true) {
        if (c < 0) {
          if (quoted) {
            line++;
            throw new CsvException("line " + start + ": unterminated quoted field at end of file");
          }
          fields.add(f.toString());
          line++;
          return fields;
        }
        if (quoted) {
          if (c == '"') {
            in.mark(1);
            int d = in.read();
            if (d == '"') {
              f.append('"');
            } else {
              quoted = false;
              if (d >= 0) in.reset();
            }
          } else {
            if (c == '\n') line++;
            f.append((char) c);
          }
        } else if (c == '"' && f.isEmpty() && !wasQuoted) {
          quoted = true;
          wasQuoted = true;
        } else if (c == ',') {
          fields.add(f.toString());
          f.setLength(0);
          wasQuoted = false;
        } else if (c == '\n' || c == '\r') {
          if (c == '\r') {
            in.mark(1);
            if (in.read() != '\n') in.reset();
          }
          fields.add(f.toString());
          line++;
          return fields;
        } else {
          f.append((char) c);
        }
        c = in.read();
      }
    }

    @Override
    public long size() {
      return -1;
    }

    @Override
    public boolean hasCaptions() {
      return captionColumn != null;
    }

    @Override
    public String idColumn() {
      return "image_path";
    }

    @Override
    public void close() throws IOException {
      in.close();
    }
  }

  /** A Parquet table, read a row group at a time (ParquetReader); values carried as text. */
  static final class ParquetSource implements InputSource {
    private final Path file;
    private final ParquetReader reader;
    private final TableRows rows;
    private final List<String> columns;
    private final String imageColumn;
    private final String captionColumn;

    ParquetSource(Path file, String imageColumn, String captionColumn) throws IOException {
      this.file = file;
      this.rows = new TableRows(file);
      this.reader = ParquetReader.open(file);
      try {
        this.columns = reader.columns();
        for (String wanted : new String[] {imageColumn, captionColumn}) {
          if (wanted != null && reader.skippedColumns().contains(wanted)) {
            throw new IllegalArgumentException(
                file + ": column '" + wanted + "' is a nested or repeated column (list, struct or map); image and caption columns must be flat text columns");
          }
        }
        this.imageColumn = TableRows.imageColumn(file, columns, imageColumn);
        this.captionColumn = TableRows.captionColumn(file, columns, captionColumn);
      } catch (RuntimeException e) {
        reader.close();
        throw e;
      }
    }

    @Override
    public InputItem next() throws IOException {
      Object[] values = reader.nextRow();
      if (values == null) return null;
      long i = reader.rowIndex();
      Map<String, String> row = new LinkedHashMap<>();
      for (int c = 0; c < values.length; c++) row.put(columns.get(c), ParquetReader.text(values[c]));
      return rows.item(i, file.getFileName() + ":row " + i, row, imageColumn, captionColumn);
    }

    @Override
    public long size() {
      return reader.rowCount();
    }

    @Override
    public boolean hasCaptions() {
      return captionColumn != null;
    }

    @Override
    public String idColumn() {
      return "image_path";
    }

    @Override
    public void close() throws IOException {
      reader.close();
    }
  }

  /** A malformed CSV record: skipped with its reason. */
  static final class CsvException extends IOException {
    private static final long serialVersionUID = 1L;

    CsvException(String m) {
      super(m);
    }
  }

  /** webdataset .tar shards. */
  static final class TarSource implements InputSource {
    private final List<Path> shards;
    private final ObjectMapper json = new ObjectMapper();
    private final boolean captions;
    private int shard = -1;
    private TarArchiveInputStream tar;
    private TarArchiveEntry pending;
    private long index;

    TarSource(List<Path> shards) throws IOException {
      this.shards = shards;
      for (Path p : shards) if (!Files.isRegularFile(p)) throw new NoSuchFileException(p.toString(), null, "tar shard not found");
      // Captions: img2dataset writes a .txt for every sample or for none; the first sample decides.
      boolean cap = false;
      if (!shards.isEmpty()) {
        try (TarArchiveInputStream t = new TarArchiveInputStream(new BufferedInputStream(Files.newInputStream(shards.get(0))))) {
          String key = null;
          TarArchiveEntry e;
          while ((e = t.getNextEntry()) != null) {
            if (!e.isFile()) continue;
            String k = key(e.getName());
            if (key != null && !k.equals(key)) break;
            key = k;
            if (extension(e.getName()).equals("txt")) cap = true;
          }
        } catch (IOException e) {
          // A damaged first shard is reported item by item when it is read.
        }
      }
      captions = cap;
    }

    static String key(String name) {
      int slash = name.lastIndexOf('/');
      int dot = name.indexOf('.', slash + 1);
      return dot < 0 ? name : name.substring(0, dot);
    }

    @Override
    public InputItem next() throws IOException {
      while (true) {
        if (tar == null) {
          if (++shard >= shards.size()) return null;
          tar = new TarArchiveInputStream(new BufferedInputStream(Files.newInputStream(shards.get(shard)), 1 << 16));
          pending = null;
        }
        InputItem item;
        try {
          item = readSample();
        } catch (IOException | RuntimeException e) {
          // A damaged archive cannot be resynchronised: report it once and go on with the next shard.
          closeTar();
          return InputItem.bad(index++, shards.get(shard).getFileName().toString(), "damaged tar shard, rest of it skipped: " + e.getMessage());
        }
        if (item != null) return item;
        closeTar();
      }
    }

    private void closeTar() throws IOException {
      if (tar != null) tar.close();
      tar = null;
    }

    private InputItem readSample() throws IOException {
      TarArchiveEntry e = pending != null ? pending : tar.getNextEntry();
      pending = null;
      while (e != null && !e.isFile()) e = tar.getNextEntry();
      if (e == null) return null;
      String key = key(e.getName());
      Map<String, byte[]> members = new LinkedHashMap<>();
      while (e != null) {
        if (e.isFile()) {
          if (!key(e.getName()).equals(key)) {
            pending = e;
            break;
          }
          if (e.getSize() > Integer.MAX_VALUE - 16) throw new IOException(e.getName() + ": member of " + e.getSize() + " bytes is too large");
          byte[] content = tar.readNBytes((int) e.getSize());
          if (content.length != e.getSize()) {
            throw new IOException(e.getName() + " is truncated (" + content.length + " of " + e.getSize() + " bytes)");
          }
          members.put(extension(e.getName()), content);
        }
        e = tar.getNextEntry();
      }
      long i = index++;
      String id = key.substring(key.lastIndexOf('/') + 1);
      byte[] img = null;
      String imgName = null;
      for (Map.Entry<String, byte[]> m : members.entrySet()) {
        if (IMAGE_EXTENSIONS.contains(m.getKey())) {
          img = m.getValue();
          imgName = key + "." + m.getKey();
          break;
        }
      }
      if (img == null) return InputItem.bad(i, id, "sample has no image member (members: " + members.keySet() + ")");
      String caption = members.containsKey("txt") ? new String(members.get("txt"), StandardCharsets.UTF_8) : null;
      Map<String, String> extra = new LinkedHashMap<>();
      if (members.containsKey("json")) {
        try {
          JsonNode n = json.readTree(members.get("json"));
          if (n instanceof ObjectNode o) {
            for (Map.Entry<String, JsonNode> f : o.properties()) {
              JsonNode v = f.getValue();
              extra.put(f.getKey(), v.isNull() ? null : v.isTextual() ? v.asText() : v.toString());
            }
          }
        } catch (IOException ex) {
          return InputItem.bad(i, id, key + ".json is not valid JSON: " + ex.getMessage());
        }
      }
      return new InputItem(i, id, Path.of(shards.get(shard).getFileName() + "!" + imgName), img, caption, extra, null);
    }

    @Override
    public long size() {
      return -1;
    }

    @Override
    public boolean hasCaptions() {
      return captions;
    }

    @Override
    public String idColumn() {
      return "key";
    }

    @Override
    public void close() throws IOException {
      closeTar();
    }
  }

  static Set<String> reservedColumns() {
    return new HashSet<>(List.of("image_path", "key", "caption", "width", "height"));
  }

}
